#include "scsi/emu/sbc_disk.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace scsi::emu {

namespace {
enum Opcode : std::uint8_t {
  kModeSense6 = 0x1A,
  kReadCapacity10 = 0x25,
  kRead10 = 0x28,
  kWrite10 = 0x2A,
  kSynchronizeCache10 = 0x35,
  kModeSense10 = 0x5A,
  kRead16 = 0x88,
  kWrite16 = 0x8A,
  kSynchronizeCache16 = 0x91,
  kServiceActionIn16 = 0x9E,
};
constexpr std::uint8_t kReadCapacity16 = 0x10;

Result lba_out_of_range() { return sense(SenseKey::kIllegalRequest, 0x21, 0x00); }
}  // namespace

std::shared_ptr<SbcDisk> SbcDisk::open(UnitIdentity identity, const std::filesystem::path& path,
                                       std::uint64_t size, std::uint32_t block_length,
                                       std::string& error) {
  if (block_length != 512 && block_length != 4096) {
    error = "block length must be 512 or 4096";
    return nullptr;
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = path.string() + ": " + std::strerror(errno);
    return nullptr;
  }
  struct stat st {};
  ::fstat(fd, &st);
  std::uint64_t bytes = 0;
  if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) bytes = 0;
  } else if (st.st_size == 0 && size != 0) {
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      error = path.string() + ": " + std::strerror(errno);
      ::close(fd);
      return nullptr;
    }
    bytes = size;
  } else {
    bytes = static_cast<std::uint64_t>(st.st_size);
  }
  if (bytes < block_length) {
    error = path.string() + ": smaller than one block";
    ::close(fd);
    return nullptr;
  }
  identity.peripheral_type = 0x00;
  return std::shared_ptr<SbcDisk>(
      new SbcDisk(std::move(identity), fd, bytes / block_length, block_length));
}

SbcDisk::SbcDisk(UnitIdentity identity, int fd, std::uint64_t blocks, std::uint32_t block_length)
    : LogicalUnit(std::move(identity)), fd_(fd), blocks_(blocks), block_length_(block_length) {}

SbcDisk::~SbcDisk() { ::close(fd_); }

Bytes SbcDisk::vpd_page(std::uint8_t page) const {
  if (page == 0xB0) {  // block limits
    Bytes p(0x3C, 0);
    put_be(p, 4, 4, kMaxTransferBlocks);  // maximum transfer length
    put_be(p, 8, 4, 128);                 // optimal transfer length
    return p;
  }
  if (page == 0xB1) {  // block device characteristics: not rotating
    Bytes p(0x3C, 0);
    put_be(p, 0, 2, 1);
    return p;
  }
  return {};
}

Result SbcDisk::execute_class(std::span<const std::uint8_t> cdb,
                              std::span<const std::uint8_t> data_out,
                              std::span<std::uint8_t> data_in) {
  switch (cdb[0]) {
    case kReadCapacity10: {
      Bytes r(8, 0);
      put_be(r, 0, 4, blocks_ - 1 > 0xFFFFFFFEu ? 0xFFFFFFFFu : blocks_ - 1);
      put_be(r, 4, 4, block_length_);
      return respond(r, data_in);
    }
    case kServiceActionIn16: {
      if ((cdb[1] & 0x1F) != kReadCapacity16) return invalid_field_in_cdb(1);
      Bytes r(32, 0);
      put_be(r, 0, 8, blocks_ - 1);
      put_be(r, 8, 4, block_length_);
      const std::size_t alloc = std::min<std::size_t>(get_be(cdb, 10, 4), data_in.size());
      return respond(r, data_in.first(alloc));
    }
    case kRead10:
      return transfer(false, get_be(cdb, 2, 4), get_be(cdb, 7, 2), 7, data_out, data_in);
    case kWrite10:
      return transfer(true, get_be(cdb, 2, 4), get_be(cdb, 7, 2), 7, data_out, data_in);
    case kRead16:
      return transfer(false, get_be64(cdb, 2), get_be(cdb, 10, 4), 10, data_out, data_in);
    case kWrite16:
      return transfer(true, get_be64(cdb, 2), get_be(cdb, 10, 4), 10, data_out, data_in);
    case kSynchronizeCache10:
    case kSynchronizeCache16:
      if (::fdatasync(fd_) != 0) {
        spdlog::error("disk {}: fdatasync: {}", identity().serial, std::strerror(errno));
        return sense(SenseKey::kMediumError, 0x0C, 0x00);
      }
      return {};
    case kModeSense6:
    case kModeSense10:
      return mode_sense(cdb, data_in);
    default:
      return invalid_opcode();
  }
}

Result SbcDisk::transfer(bool write, std::uint64_t lba, std::uint32_t count,
                         std::uint16_t length_field, std::span<const std::uint8_t> data_out,
                         std::span<std::uint8_t> data_in) {
  if (count > kMaxTransferBlocks) return invalid_field_in_cdb(length_field);
  if (lba > blocks_ || count > blocks_ - lba) return lba_out_of_range();
  const std::size_t bytes = std::size_t{count} * block_length_;
  const off_t offset = static_cast<off_t>(lba * block_length_);
  std::size_t done = 0;
  if (write) {
    if (data_out.size() < bytes) return parameter_list_length_error();
    while (done < bytes) {
      const ssize_t n =
          ::pwrite(fd_, data_out.data() + done, bytes - done, offset + static_cast<off_t>(done));
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        spdlog::error("disk {}: write: {}", identity().serial, std::strerror(errno));
        return sense(SenseKey::kMediumError, 0x0C, 0x00);
      }
      done += static_cast<std::size_t>(n);
    }
    return {};
  }
  if (data_in.size() < bytes) return invalid_field_in_cdb(length_field);
  while (done < bytes) {
    const ssize_t n =
        ::pread(fd_, data_in.data() + done, bytes - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      spdlog::error("disk {}: read: {}", identity().serial, std::strerror(errno));
      return sense(SenseKey::kMediumError, 0x11, 0x00);
    }
    if (n == 0) {  // a file shorter than its size (truncated under us): zeros
      std::fill(data_in.begin() + static_cast<std::ptrdiff_t>(done),
                data_in.begin() + static_cast<std::ptrdiff_t>(bytes), 0);
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  Result r;
  r.data_in = bytes;
  r.residual = data_in.size() - bytes;
  return r;
}

Result SbcDisk::mode_sense(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in) {
  const bool ten = cdb[0] == kModeSense10;
  const std::uint8_t control = cdb[2] >> 6;
  const std::uint8_t page = cdb[2] & 0x3F;
  if (control == 3) return sense(SenseKey::kIllegalRequest, 0x39, 0x00);
  const std::size_t alloc = std::min<std::size_t>(ten ? get_be(cdb, 7, 2) : cdb[4], data_in.size());
  Bytes pages;
  bool known = page == 0x00;
  if (page == 0x08 || page == 0x3F) {  // caching: write-through (WCE=0)
    known = true;
    Bytes p(20, 0);
    p[0] = 0x08;
    p[1] = 0x12;
    pages.insert(pages.end(), p.begin(), p.end());
  }
  if (page == 0x0A || page == 0x3F) {  // control
    known = true;
    Bytes p(12, 0);
    p[0] = 0x0A;
    p[1] = 0x0A;
    pages.insert(pages.end(), p.begin(), p.end());
  }
  if (!known) return invalid_field_in_cdb(2);
  Bytes r(ten ? 8 : 4, 0);
  r.insert(r.end(), pages.begin(), pages.end());
  if (ten) {
    put_be(r, 0, 2, r.size() - 2);
  } else {
    r[0] = static_cast<std::uint8_t>(r.size() - 1);
  }
  return respond(r, data_in.first(alloc));
}

}  // namespace scsi::emu
