// The cartridge file format (version 1) and how it is recovered.
//
// A cartridge is two files: the cartridge file `NAME` and its side index
// `NAME.index`.  Integers are little-endian; "CRC" is CRC-32C
// (scsi/crc32c.h).
//
// Cartridge file
//   [0, 4096): two superblock slots of 2048 bytes, at 0 and at 2048.
//      offset size
//        0     8   magic "NDMPVTC1"
//        8     4   format version (1)
//       12     4   flags: bit 0 = write-protected
//       16     8   generation; the slot that holds generation g is g % 2
//       24     8   capacity: bytes of block data the cartridge holds
//       32     8   early warning: bytes of block data where it begins
//       40    16   uuid, random at creation
//       56     4   offset of the first object (4096)
//       60     4   barcode length (0..32)
//       64    32   barcode, zero-padded
//       96     4   CRC of bytes 0..95
//      100  1948   zero
//     The valid slot (magic, version, CRC, sane fields) with the higher
//     generation is in force.  A change of attributes writes the other slot
//     with the next generation and fdatasyncs: a torn superblock write
//     leaves the previous slot in force.
//   [4096, end of data): the objects, back to back, numbered from 0.
//     header, 32 bytes:
//        0     4   magic "VBLK" (a block) or "VFMK" (a filemark)
//        4     4   payload length: 1..16 MiB for a block, 0 for a filemark
//        8     8   object number
//       16     8   file number (filemarks before this object)
//       24     4   link: CRC of the previous object's 8 trailer bytes
//                  (object 0: CRC of the uuid)
//       28     4   CRC of header bytes 0..27
//     payload
//     trailer, 8 bytes:
//        0     4   payload length, again (so that the head can step back)
//        4     4   CRC of the header's CRC (4 bytes) followed by the payload
//   An object costs 40 bytes beside its payload, so the block bytes in front
//   of object n at file offset o are o - 4096 - 40 n: nothing counts them.
//   The trailer CRC binds the payload to its header, and the link binds each
//   header to the object written before it: the objects form a hash chain,
//   so stale bytes left behind by an overwrite (after a power cut undid a
//   truncate) are not taken for the continuation of newer ones.
//
// Index file (a cache: it can always be rebuilt from the cartridge file)
//   header, 64 bytes:
//        0     8   magic "NDMPVTI1"
//        8     4   format version (1)
//       12     4   checkpoint interval (Cartridge::kCheckpointInterval)
//       16    16   the cartridge's uuid
//       32    28   zero
//       60     4   CRC of bytes 0..59
//   entries, 32 bytes each, in object order:
//        0     8   object number
//        8     8   file offset of the object's header
//       16     8   file number
//       24     4   flags: bit 0 = the object is a filemark
//       28     4   CRC of entry bytes 0..27
//   There is an entry for every object whose number is a multiple of the
//   checkpoint interval (256), for every filemark, and for every object
//   that begins 32 MiB or more after the previous entry's object (so that
//   recovery, which verifies what follows the last entry, reads little even
//   when blocks are large).  The index is also the list of filemarks; it is
//   kept in memory as a sorted vector.
//
// Writing.  An object goes to the end of data with one pwritev (header,
// payload, trailer; no user-space buffer), then its index entry, if it has
// one, is appended.  Writing at object n before the end first truncates the
// cartridge file at n's offset, then the index after n's entries.  WRITE
// FILEMARKS fdatasyncs the cartridge file; flush() and ERASE both files.
//
// Zero extents (an option, off by default: set_zero_extents, the library's
// zero_extents).  While a cartridge is open, an append that would end past
// the file's end first grows the file with zeros up to the next multiple of
// 2 MiB (kExtent); the objects then overwrite the zeros.  This is not part
// of the format (closing the cartridge, and open(), cut the file back to the
// end of data): it is for the page cache.  The kernel caches a file in
// folios (runs of pages) no larger than the write that first touches them
// and aligned to their size; objects of 32 + n + 8 bytes written back to
// back would leave most of the cached file in folios of 4 to 64 KiB, which
// read back about a third slower than a file written in large aligned
// pieces (as dd writes).  Zeros written in aligned 2 MiB pieces give folios
// of up to 2 MiB.  The cost is one extra write per byte, and it is dear: a
// backup in 10 KiB records through ndmjob ran three times slower with it
// (twice the dirty pages, and the zeros themselves reach the disk when
// writeback comes between them and the objects), so it is off unless a
// library asks for it.
//
// Recovery (open).  Whatever kill -9 interrupts, every completed write is
// whole and the interrupted one left a prefix of its bytes at the end of the
// file, possibly followed by zeros (or nothing, or a truncate not followed
// by its write).  So:
//   1. Index entries are accepted in order while each has a valid CRC,
//      follows its predecessor consistently (object numbers and offsets
//      increase; the file number grows by one after a filemark and only
//      then; it has a reason to be there; no checkpoint is missing in
//      between; the first is object 0)
//      and the header at its offset matches (CRC, object and file number,
//      kind).  The first one that fails ends the index; an index whose
//      header is invalid or names another uuid is discarded whole.
//   2. From the last accepted entry (or object 0), every object is verified:
//      header (magic, CRC, object number, file number, link), extent within
//      the file, trailer (length, CRC).  The first object that fails is the
//      end of data, and the file is truncated there: a torn tail is never
//      read back.  One exception: an object whose trailer does not match
//      but whose successor's header is valid and links to it is damage in
//      the middle, not a torn tail; it stays (reading it reports the CRC
//      error) and the scan goes on.
//   3. The index file is cut after the accepted entries that lie before the
//      end of data, and the checkpoints and filemarks that the scan found
//      are appended (an unusable index is rewritten whole).
// After a power cut, what a filemark or flush() synced is whole; damage to
// later objects that the tail scan does not reach reads back as a CRC error,
// never as data.
#include "scsi/emu/cartridge.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <system_error>
#include <utility>
#include <vector>

#include "scsi/crc32c.h"

namespace scsi::emu {
namespace {

constexpr std::uint64_t kDataStart = 4096;
constexpr std::size_t kSlotSize = 2048;
constexpr std::size_t kSuperblockCrcAt = 96;
constexpr std::size_t kHeaderSize = 32;
constexpr std::size_t kTrailerSize = 8;
constexpr std::uint64_t kOverhead = kHeaderSize + kTrailerSize;
constexpr std::size_t kIndexHeaderSize = 64;
constexpr std::size_t kEntrySize = 32;
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kMaxBarcode = 32;
constexpr std::uint32_t kFlagWriteProtected = 1;
constexpr std::uint32_t kFlagFilemark = 1;
// Besides every kCheckpointInterval objects, a checkpoint follows at most
// this many bytes of cartridge file after the one before it: recovery reads
// what lies after the last checkpoint, and blocks can be large.
constexpr std::uint64_t kCheckpointBytes = 32u << 20;
// Filemarks written per pwrite by write_filemarks().
constexpr std::uint32_t kFilemarkBatch = 1024;
// The file grows by zero extents of this size, aligned to it (see "Zero
// extents" above): the largest folio the page cache uses on x86-64 and
// arm64 with 4 KiB pages.
constexpr std::uint64_t kExtent = 2u << 20;
// The zeros come from this many bytes, repeated in an iovec array.
constexpr std::size_t kZeroChunk = 64u << 10;

using Uuid = std::array<std::uint8_t, 16>;
using Trailer = std::array<std::uint8_t, kTrailerSize>;

constexpr std::uint32_t fourcc(const char (&s)[5]) {
  return std::uint32_t{static_cast<std::uint8_t>(s[0])} |
         std::uint32_t{static_cast<std::uint8_t>(s[1])} << 8 |
         std::uint32_t{static_cast<std::uint8_t>(s[2])} << 16 |
         std::uint32_t{static_cast<std::uint8_t>(s[3])} << 24;
}
constexpr std::uint32_t kBlockMagic = fourcc("VBLK");
constexpr std::uint32_t kFilemarkMagic = fourcc("VFMK");
constexpr std::uint32_t kSuperblockMagicLow = fourcc("NDMP");
constexpr std::uint32_t kSuperblockMagicHigh = fourcc("VTC1");
constexpr std::uint32_t kIndexMagicLow = fourcc("NDMP");
constexpr std::uint32_t kIndexMagicHigh = fourcc("VTI1");

void put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t get32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string errno_text(const std::string& what, int err) {
  return what + ": " + std::error_code(err, std::generic_category()).message();
}

// ---- I/O: whole transfers, retried over short counts and EINTR ----

enum class Io { kOk, kShort, kError };  // kShort: end of file came first

template <typename Op>
Io transfer(Op op, iovec* iov, int count, std::uint64_t offset, int& err) {
  int first = 0;
  while (first < count) {
    if (iov[first].iov_len == 0) {
      ++first;
      continue;
    }
    const ssize_t n = op(iov + first, std::min(count - first, IOV_MAX), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      return Io::kError;
    }
    if (n == 0) return Io::kShort;
    offset += static_cast<std::uint64_t>(n);
    auto left = static_cast<std::size_t>(n);
    while (left > 0) {
      if (left >= iov[first].iov_len) {
        left -= iov[first].iov_len;
        ++first;
      } else {
        iov[first].iov_base = static_cast<std::uint8_t*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
        left = 0;
      }
    }
  }
  return Io::kOk;
}

Io read_at(int fd, iovec* iov, int count, std::uint64_t offset, int& err) {
  return transfer([fd](const iovec* v, int c, off_t o) { return ::preadv(fd, v, c, o); }, iov,
                  count, offset, err);
}
Io read_at(int fd, void* buffer, std::size_t size, std::uint64_t offset, int& err) {
  iovec v{buffer, size};
  return read_at(fd, &v, 1, offset, err);
}
bool write_at(int fd, iovec* iov, int count, std::uint64_t offset, int& err) {
  // A regular file never takes zero bytes of a non-empty write; if it did,
  // the loop must not spin.
  const Io r = transfer([fd](const iovec* v, int c, off_t o) { return ::pwritev(fd, v, c, o); },
                        iov, count, offset, err);
  if (r == Io::kShort) err = EIO;
  return r == Io::kOk;
}
bool write_at(int fd, const void* buffer, std::size_t size, std::uint64_t offset, int& err) {
  iovec v{const_cast<void*>(buffer), size};
  return write_at(fd, &v, 1, offset, err);
}

// ---- objects ----

struct Header {
  Cartridge::Kind kind = Cartridge::Kind::kBlock;
  std::uint32_t length = 0;
  std::uint64_t object = 0;
  std::uint64_t file = 0;
  std::uint32_t link = 0;
  std::uint32_t crc = 0;  // of the encoded bytes 0..27
};
using HeaderBytes = std::array<std::uint8_t, kHeaderSize>;

HeaderBytes encode_header(Header& h) {
  HeaderBytes b{};
  put32(&b[0], h.kind == Cartridge::Kind::kFilemark ? kFilemarkMagic : kBlockMagic);
  put32(&b[4], h.length);
  put64(&b[8], h.object);
  put64(&b[16], h.file);
  put32(&b[24], h.link);
  h.crc = crc32c(std::span(b).first(28));
  put32(&b[28], h.crc);
  return b;
}

std::optional<Header> decode_header(const std::uint8_t* b) {
  const std::uint32_t magic = get32(b);
  if (magic != kBlockMagic && magic != kFilemarkMagic) return std::nullopt;
  if (crc32c(std::span(b, 28)) != get32(b + 28)) return std::nullopt;
  Header h;
  h.kind = magic == kFilemarkMagic ? Cartridge::Kind::kFilemark : Cartridge::Kind::kBlock;
  h.length = get32(b + 4);
  h.object = get64(b + 8);
  h.file = get64(b + 16);
  h.link = get32(b + 24);
  h.crc = get32(b + 28);
  if (h.kind == Cartridge::Kind::kFilemark ? h.length != 0
                                           : (h.length == 0 || h.length > Cartridge::kMaxBlock)) {
    return std::nullopt;
  }
  return h;
}

std::uint32_t payload_crc(std::uint32_t header_crc, std::span<const std::uint8_t> payload) {
  std::array<std::uint8_t, 4> seed{};
  put32(seed.data(), header_crc);
  return crc32c_extend(crc32c(seed), payload);
}

Trailer encode_trailer(std::uint32_t length, std::uint32_t crc) {
  Trailer t{};
  put32(&t[0], length);
  put32(&t[4], crc);
  return t;
}

std::uint32_t link_after(const std::uint8_t* trailer) {
  return crc32c(std::span(trailer, kTrailerSize));
}

// ---- superblock ----

struct Superblock {
  Cartridge::Attributes attributes;
  Uuid uuid{};
  std::uint64_t generation = 0;
};

std::string check_attributes(const Cartridge::Attributes& a) {
  if (a.barcode.size() > kMaxBarcode) return "barcode longer than 32 characters";
  for (const char c : a.barcode) {
    if (c < 0x20 || c > 0x7E) return "barcode is not printable ASCII";
  }
  if (a.capacity == 0) return "capacity is zero";
  if (a.early_warning == 0 || a.early_warning > a.capacity) {
    return "early warning is not within (0, capacity]";
  }
  return {};
}

std::array<std::uint8_t, kSlotSize> encode_superblock(const Superblock& s) {
  std::array<std::uint8_t, kSlotSize> b{};
  put32(&b[0], kSuperblockMagicLow);
  put32(&b[4], kSuperblockMagicHigh);
  put32(&b[8], kVersion);
  put32(&b[12], s.attributes.write_protected ? kFlagWriteProtected : 0);
  put64(&b[16], s.generation);
  put64(&b[24], s.attributes.capacity);
  put64(&b[32], s.attributes.early_warning);
  std::copy(s.uuid.begin(), s.uuid.end(), b.begin() + 40);
  put32(&b[56], static_cast<std::uint32_t>(kDataStart));
  put32(&b[60], static_cast<std::uint32_t>(s.attributes.barcode.size()));
  std::copy(s.attributes.barcode.begin(), s.attributes.barcode.end(), b.begin() + 64);
  put32(&b[kSuperblockCrcAt], crc32c(std::span(b).first(kSuperblockCrcAt)));
  return b;
}

std::optional<Superblock> decode_superblock(const std::uint8_t* b) {
  if (get32(b) != kSuperblockMagicLow || get32(b + 4) != kSuperblockMagicHigh) return std::nullopt;
  if (crc32c(std::span(b, kSuperblockCrcAt)) != get32(b + kSuperblockCrcAt)) return std::nullopt;
  if (get32(b + 8) != kVersion || get32(b + 56) != kDataStart) return std::nullopt;
  const std::uint32_t barcode_length = get32(b + 60);
  if (barcode_length > kMaxBarcode) return std::nullopt;
  Superblock s;
  s.attributes.write_protected = (get32(b + 12) & kFlagWriteProtected) != 0;
  s.generation = get64(b + 16);
  s.attributes.capacity = get64(b + 24);
  s.attributes.early_warning = get64(b + 32);
  std::copy(b + 40, b + 56, s.uuid.begin());
  s.attributes.barcode.assign(reinterpret_cast<const char*>(b + 64), barcode_length);
  if (!check_attributes(s.attributes).empty()) return std::nullopt;
  return s;
}

// ---- index ----

struct Entry {
  std::uint64_t object = 0;
  std::uint64_t offset = 0;
  std::uint64_t file = 0;
  bool filemark = false;
};

std::array<std::uint8_t, kIndexHeaderSize> encode_index_header(const Uuid& uuid) {
  std::array<std::uint8_t, kIndexHeaderSize> b{};
  put32(&b[0], kIndexMagicLow);
  put32(&b[4], kIndexMagicHigh);
  put32(&b[8], kVersion);
  put32(&b[12], static_cast<std::uint32_t>(Cartridge::kCheckpointInterval));
  std::copy(uuid.begin(), uuid.end(), b.begin() + 16);
  put32(&b[60], crc32c(std::span(b).first(60)));
  return b;
}

void encode_entry(const Entry& e, std::uint8_t* b) {
  put64(b, e.object);
  put64(b + 8, e.offset);
  put64(b + 16, e.file);
  put32(b + 24, e.filemark ? kFlagFilemark : 0);
  put32(b + 28, crc32c(std::span<const std::uint8_t>(b, 28)));
}

std::optional<Entry> decode_entry(const std::uint8_t* b) {
  if (crc32c(std::span(b, 28)) != get32(b + 28)) return std::nullopt;
  const std::uint32_t flags = get32(b + 24);
  if ((flags & ~kFlagFilemark) != 0) return std::nullopt;
  return Entry{get64(b), get64(b + 8), get64(b + 16), (flags & kFlagFilemark) != 0};
}

// Whether object `object` at `offset` gets an index entry, given the entry
// before it (null for object 0).
bool needs_entry(std::uint64_t object, Cartridge::Kind kind, std::uint64_t offset,
                 const Entry* previous) {
  return object % Cartridge::kCheckpointInterval == 0 || kind == Cartridge::Kind::kFilemark ||
         previous == nullptr || offset - previous->offset >= kCheckpointBytes;
}

// Whether `e` can follow `prev` (null for the first entry) in an index of a
// cartridge file of `file_size` bytes.
bool follows(const Entry* prev, const Entry& e, std::uint64_t file_size) {
  constexpr std::uint64_t kInterval = Cartridge::kCheckpointInterval;
  if (e.offset < kDataStart || e.offset > file_size || file_size - e.offset < kOverhead) {
    return false;
  }
  if (prev == nullptr) return e.object == 0 && e.offset == kDataStart && e.file == 0;
  if (e.object <= prev->object || e.offset <= prev->offset) return false;
  const std::uint64_t distance = e.offset - prev->offset;
  if (distance / kOverhead < e.object - prev->object) return false;
  if (e.file != prev->file + (prev->filemark ? 1 : 0)) return false;
  if (!e.filemark && e.object % kInterval != 0 && distance < kCheckpointBytes) return false;
  // No checkpoint skipped in between (by count, or by distance: the object
  // before e was less than kCheckpointBytes past prev).
  return (prev->object / kInterval + 1) * kInterval >= e.object &&
         distance < kCheckpointBytes + kOverhead + Cartridge::kMaxBlock;
}

}  // namespace

// ---- the cartridge ----

struct Cartridge::Impl {
  std::filesystem::path path;
  std::filesystem::path index_path;
  int fd = -1;
  int index_fd = -1;
  Superblock superblock;
  std::uint32_t first_link = 0;  // the link of object 0

  std::uint64_t end = 0;  // end of data: object number and file offset
  std::uint64_t end_offset = kDataStart;
  std::uint32_t end_link = 0;  // the link of an object written at the end

  std::uint64_t pos = 0;
  std::uint64_t pos_offset = kDataStart;
  mutable std::optional<Header> here;  // the header at pos, once read

  // How far the file extends: end_offset, or more after a zero extent was
  // written ahead of the objects.  Never less than end_offset once an
  // append has returned.
  std::uint64_t file_end = kDataStart;

  std::vector<Entry> index;              // in object order
  std::vector<std::uint64_t> filemarks;  // object numbers, ascending
  std::vector<std::uint8_t> scratch;
  bool verify_reads = true;
  bool zero_extents = false;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    // A closed cartridge ends at its end of data.  A destructor has nobody
    // to tell if the truncate fails: the zeros then stay until the next
    // open() cuts them, as it cuts a torn tail.
    if (fd >= 0 && file_end > end_offset) {
      [[maybe_unused]] const int cut_back = ::ftruncate(fd, static_cast<off_t>(end_offset));
    }
    if (index_fd >= 0) ::close(index_fd);
    if (fd >= 0) ::close(fd);
  }

  std::string describe(const std::string& what, int err) const {
    return errno_text(path.string() + ": " + what, err);
  }

  std::uint64_t block_bytes_before(std::uint64_t object, std::uint64_t offset) const {
    return offset - kDataStart - kOverhead * object;
  }

  // The valid header of `object` at `offset`, or nullopt.
  std::optional<Header> header_at(std::uint64_t offset, std::uint64_t object) const {
    HeaderBytes b;
    int err = 0;
    if (read_at(fd, b.data(), b.size(), offset, err) != Io::kOk) return std::nullopt;
    auto h = decode_header(b.data());
    if (!h || h->object != object) return std::nullopt;
    return h;
  }

  bool load_here() const {
    if (pos >= end) return false;
    if (!here) here = header_at(pos_offset, pos);
    return here.has_value();
  }

  void move_to(std::uint64_t object, std::uint64_t offset, std::optional<Header> header) {
    pos = object;
    pos_offset = offset;
    here = std::move(header);
  }

  // Steps forward from (object, offset) to `n`, reading one header per
  // object passed.
  bool step_forward(std::uint64_t object, std::uint64_t offset, std::uint64_t n) {
    for (; object < n; ++object) {
      const auto h = header_at(offset, object);
      if (!h) return false;
      offset += kOverhead + h->length;
    }
    move_to(n, offset, std::nullopt);
    return true;
  }

  // Steps back from (object, offset) to `n` through the trailers' lengths;
  // the header found at the end confirms the walk.
  bool step_backward(std::uint64_t object, std::uint64_t offset, std::uint64_t n) {
    std::uint32_t length = 0;
    for (; object > n; --object) {
      std::array<std::uint8_t, kTrailerSize> t;
      int err = 0;
      if (offset < kDataStart + kOverhead) return false;
      if (read_at(fd, t.data(), t.size(), offset - kTrailerSize, err) != Io::kOk) return false;
      length = get32(t.data());
      if (length > kMaxBlock || offset - kDataStart - kOverhead < length) return false;
      offset -= kOverhead + length;
    }
    auto h = header_at(offset, n);
    if (!h || h->length != length) return false;
    move_to(n, offset, std::move(h));
    return true;
  }

  // The link that an object written at `pos` carries.
  bool link_at_position(std::uint32_t& link, std::string& error) const {
    if (pos == end) {
      link = end_link;
      return true;
    }
    if (pos == 0) {
      link = first_link;
      return true;
    }
    Trailer t;
    int err = 0;
    const Io r = read_at(fd, t.data(), t.size(), pos_offset - kTrailerSize, err);
    if (r != Io::kOk) {
      error = describe("reading a trailer", r == Io::kShort ? EIO : err);
      return false;
    }
    link = link_after(t.data());
    return true;
  }

  // Writes index entries [from, end) to the index file.
  bool persist_entries(std::size_t from, std::string& error) {
    if (from >= index.size()) return true;
    std::vector<std::uint8_t> b((index.size() - from) * kEntrySize);
    for (std::size_t i = from; i < index.size(); ++i) {
      encode_entry(index[i], &b[(i - from) * kEntrySize]);
    }
    int err = 0;
    if (!write_at(index_fd, b.data(), b.size(), kIndexHeaderSize + from * kEntrySize, err)) {
      error = errno_text(index_path.string() + ": writing the index", err);
      return false;
    }
    return true;
  }

  // Discards object n (at `offset`) and everything after it.
  bool cut(std::uint64_t n, std::uint64_t offset, std::uint32_t link, std::string& error) {
    if (::ftruncate(fd, static_cast<off_t>(offset)) != 0) {
      error = describe("truncating", errno);
      return false;
    }
    file_end = offset;
    const auto first_gone =
        std::lower_bound(index.begin(), index.end(), n,
                         [](const Entry& e, std::uint64_t o) { return e.object < o; });
    index.erase(first_gone, index.end());
    filemarks.erase(std::lower_bound(filemarks.begin(), filemarks.end(), n), filemarks.end());
    end = n;
    end_offset = offset;
    end_link = link;
    if (pos >= end) move_to(end, end_offset, std::nullopt);
    if (::ftruncate(index_fd, static_cast<off_t>(kIndexHeaderSize + index.size() * kEntrySize)) !=
        0) {
      error = errno_text(index_path.string() + ": truncating the index", errno);
      return false;
    }
    return true;
  }

  // Makes position() the end of data (a tape overwrites, it does not insert).
  bool truncate_at_position(std::string& error) {
    if (pos == end) return true;
    std::uint32_t link = 0;
    if (!link_at_position(link, error)) return false;
    return cut(pos, pos_offset, link, error);
  }

  // Before an append that ends at `to`: grows the file with zeros to the
  // kExtent boundary at or after `to`, one aligned piece of at most kExtent
  // bytes per pwritev, so that the page cache holds what follows in large
  // folios.  Only an optimization: if the zeros cannot be written (the
  // filesystem is full, say), the file is cut back to the end of data and
  // the append goes ahead without them, to succeed or fail on its own.
  void extend_for(std::uint64_t to) {
    file_end = std::max(file_end, end_offset);  // never zeros over objects
    if (!zero_extents || to <= file_end) return;
    static const std::array<std::uint8_t, kZeroChunk> zeros{};
    std::array<iovec, kExtent / kZeroChunk> iov;
    const std::uint64_t target = (to + kExtent - 1) / kExtent * kExtent;
    while (file_end < target) {
      const std::uint64_t piece = std::min(target - file_end, kExtent - file_end % kExtent);
      int count = 0;
      for (std::uint64_t left = piece; left > 0; ++count) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, kZeroChunk));
        iov[static_cast<std::size_t>(count)] = {const_cast<std::uint8_t*>(zeros.data()), n};
        left -= n;
      }
      int err = 0;
      if (!write_at(fd, iov.data(), count, file_end, err)) {
        if (::ftruncate(fd, static_cast<off_t>(end_offset)) == 0) file_end = end_offset;
        return;
      }
      file_end += piece;
    }
  }

  // Undoes a failed append of objects from (object, offset) on: the file and
  // the index lose them again.
  void roll_back(std::uint64_t object, std::uint64_t offset, std::uint32_t link,
                 std::string& error) {
    std::string more;
    if (!cut(object, offset, link, more)) error += "; " + more;
  }

  // The cartridge file always; the index (a cache, which recovery rebuilds
  // from the last checkpoint that made it to disk) only if `index`.
  bool sync(std::string& error, bool index_too) {
    if (::fdatasync(fd) != 0) {
      error = describe("fdatasync", errno);
      return false;
    }
    if (index_too && ::fdatasync(index_fd) != 0) {
      error = errno_text(index_path.string() + ": fdatasync", errno);
      return false;
    }
    return true;
  }

  bool write_superblock(const Superblock& s, std::string& error) {
    const auto b = encode_superblock(s);
    int err = 0;
    if (!write_at(fd, b.data(), b.size(), (s.generation % 2) * kSlotSize, err)) {
      error = describe("writing the superblock", err);
      return false;
    }
    if (::fdatasync(fd) != 0) {
      error = describe("fdatasync", errno);
      return false;
    }
    return true;
  }

  bool recover(std::uint64_t file_size, const std::vector<std::uint8_t>& index_file,
               std::string& error);
  bool verify_scan(std::uint64_t file_size, std::vector<Entry>& found, std::string& error);
  bool successor_links(std::uint64_t offset, std::uint64_t object, std::uint64_t file,
                       std::uint32_t link, std::uint64_t file_size) const;
};

// True if a valid object that links to its predecessor as given begins at
// `offset` and fits in the file.
bool Cartridge::Impl::successor_links(std::uint64_t offset, std::uint64_t object,
                                      std::uint64_t file, std::uint32_t link,
                                      std::uint64_t file_size) const {
  if (offset > file_size || file_size - offset < kOverhead) return false;
  const auto h = header_at(offset, object);
  return h && h->file == file && h->link == link && file_size - offset - kOverhead >= h->length;
}

// Verifies every object from the last entry of `found` (or from object 0)
// to the first one that fails; sets the end of data there and adds the
// entries it passes.
bool Cartridge::Impl::verify_scan(std::uint64_t file_size, std::vector<Entry>& found,
                                  std::string& error) {
  std::uint64_t object = 0;
  std::uint64_t offset = kDataStart;
  std::uint64_t file = 0;
  std::uint32_t link = first_link;
  int err = 0;
  if (!found.empty()) {
    object = found.back().object;
    offset = found.back().offset;
    file = found.back().file;
    if (object > 0) {
      Trailer t;
      if (read_at(fd, t.data(), t.size(), offset - kTrailerSize, err) != Io::kOk) {
        error = describe("reading a trailer", err != 0 ? err : EIO);
        return false;
      }
      link = link_after(t.data());
    }
  }
  std::vector<std::uint8_t> buffer;
  while (offset <= file_size && file_size - offset >= kOverhead) {
    HeaderBytes hb;
    const Io r = read_at(fd, hb.data(), hb.size(), offset, err);
    if (r == Io::kError) {
      error = describe("reading", err);
      return false;
    }
    if (r == Io::kShort) break;
    const auto h = decode_header(hb.data());
    if (!h || h->object != object || h->file != file || h->link != link) break;
    if (file_size - offset - kOverhead < h->length) break;  // cut short
    buffer.resize(std::size_t{h->length} + kTrailerSize);
    const Io rp = read_at(fd, buffer.data(), buffer.size(), offset + kHeaderSize, err);
    if (rp == Io::kError) {
      error = describe("reading", err);
      return false;
    }
    if (rp == Io::kShort) break;
    const std::uint8_t* trailer = buffer.data() + h->length;
    const bool intact =
        get32(trailer) == h->length &&
        get32(trailer + 4) == payload_crc(h->crc, std::span(buffer).first(h->length));
    const std::uint64_t next_offset = offset + kOverhead + h->length;
    const std::uint64_t next_file = file + (h->kind == Kind::kFilemark ? 1 : 0);
    const std::uint32_t next_link = link_after(trailer);
    // A torn write leaves nothing valid after it; damage in the middle does.
    if (!intact && !successor_links(next_offset, object + 1, next_file, next_link, file_size)) {
      break;
    }
    if ((found.empty() || found.back().object < object) &&
        needs_entry(object, h->kind, offset, found.empty() ? nullptr : &found.back())) {
      found.push_back({object, offset, file, h->kind == Kind::kFilemark});
    }
    ++object;
    offset = next_offset;
    file = next_file;
    link = next_link;
  }
  end = object;
  end_offset = offset;
  end_link = link;
  return true;
}

bool Cartridge::Impl::recover(std::uint64_t file_size, const std::vector<std::uint8_t>& index_file,
                              std::string& error) {
  first_link = crc32c(superblock.uuid);
  const auto expected_header = encode_index_header(superblock.uuid);
  const bool index_usable =
      index_file.size() >= kIndexHeaderSize &&
      std::equal(expected_header.begin(), expected_header.end(), index_file.begin());

  // 1. The index entries that hold.
  std::vector<Entry> entries;
  if (index_usable) {
    for (std::size_t at = kIndexHeaderSize; index_file.size() - at >= kEntrySize;
         at += kEntrySize) {
      const auto e = decode_entry(&index_file[at]);
      if (!e || !follows(entries.empty() ? nullptr : &entries.back(), *e, file_size)) break;
      const auto h = header_at(e->offset, e->object);
      if (!h || h->file != e->file || (h->kind == Kind::kFilemark) != e->filemark) break;
      entries.push_back(*e);
    }
  }
  std::size_t kept = entries.size();  // of the index file's entries

  // 2. The end of data.
  if (!verify_scan(file_size, entries, error)) return false;
  // (No sync: should a power cut undo the cut, the next open cuts again.)
  if (end_offset < file_size) {
    if (::ftruncate(fd, static_cast<off_t>(end_offset)) != 0) {
      error = describe("cutting the torn tail", errno);
      return false;
    }
  }
  file_end = end_offset;
  while (!entries.empty() && entries.back().object >= end) entries.pop_back();
  kept = std::min(kept, entries.size());

  // 3. The index file, made to match.
  index = std::move(entries);
  filemarks.clear();
  for (const Entry& e : index) {
    if (e.filemark) filemarks.push_back(e.object);
  }
  int err = 0;
  if (!index_usable) {
    kept = 0;
    if (!write_at(index_fd, expected_header.data(), expected_header.size(), 0, err)) {
      error = errno_text(index_path.string() + ": writing the index", err);
      return false;
    }
  }
  const std::uint64_t kept_size = kIndexHeaderSize + kept * kEntrySize;
  if (index_file.size() != kept_size || kept < index.size()) {
    if (::ftruncate(index_fd, static_cast<off_t>(kept_size)) != 0) {
      error = errno_text(index_path.string() + ": truncating the index", errno);
      return false;
    }
    if (!persist_entries(kept, error)) return false;
  }
  move_to(0, kDataStart, std::nullopt);
  return true;
}

Cartridge::Cartridge(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Cartridge::~Cartridge() = default;

std::unique_ptr<Cartridge> Cartridge::create(const std::filesystem::path& path,
                                             const Attributes& attributes, std::string& error) {
  if (std::string problem = check_attributes(attributes); !problem.empty()) {
    error = path.string() + ": " + problem;
    return nullptr;
  }
  Superblock s;
  s.attributes = attributes;
  if (::getrandom(s.uuid.data(), s.uuid.size(), 0) != static_cast<ssize_t>(s.uuid.size())) {
    error = errno_text("getrandom", errno);
    return nullptr;
  }

  // The cartridge appears whole or not at all: it is written under a
  // temporary name and linked into place (link(2) fails if the name exists).
  std::array<std::uint8_t, 8> nonce{};
  if (::getrandom(nonce.data(), nonce.size(), 0) != static_cast<ssize_t>(nonce.size())) {
    error = errno_text("getrandom", errno);
    return nullptr;
  }
  std::filesystem::path temporary = path;
  temporary += ".creating." + std::to_string(get64(nonce.data()));
  const int fd = ::open(temporary.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = errno_text(temporary.string() + ": create", errno);
    return nullptr;
  }
  std::array<std::uint8_t, kDataStart> first{};
  s.generation = 0;
  const auto slot0 = encode_superblock(s);
  s.generation = 1;
  const auto slot1 = encode_superblock(s);
  std::copy(slot0.begin(), slot0.end(), first.begin());
  std::copy(slot1.begin(), slot1.end(), first.begin() + kSlotSize);
  int err = 0;
  bool ok = write_at(fd, first.data(), first.size(), 0, err);
  if (ok && ::fdatasync(fd) != 0) {
    ok = false;
    err = errno;
  }
  ::close(fd);
  if (ok && ::link(temporary.c_str(), path.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  ::unlink(temporary.c_str());
  if (!ok) {
    error = err == EEXIST ? path.string() + ": already exists"
                          : errno_text(path.string() + ": create", err);
    return nullptr;
  }
  const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : ".";
  const int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0 || ::fsync(dir) != 0) {
    error = errno_text(parent.string() + ": fsync", errno);
    if (dir >= 0) ::close(dir);
    return nullptr;
  }
  ::close(dir);
  // open() builds the index (replacing any stale one left under the name).
  return open(path, error);
}

std::unique_ptr<Cartridge> Cartridge::open(const std::filesystem::path& path, std::string& error) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->index_path = path;
  impl->index_path += ".index";
  impl->fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (impl->fd < 0) {
    error = impl->describe("open", errno);
    return nullptr;
  }
  // One writer at a time: two handles appending to one file would interleave.
  if (::flock(impl->fd, LOCK_EX | LOCK_NB) != 0) {
    error = errno == EWOULDBLOCK ? path.string() + ": in use (opened elsewhere)"
                                 : impl->describe("flock", errno);
    return nullptr;
  }
  std::array<std::uint8_t, kDataStart> first{};
  int err = 0;
  const Io r = read_at(impl->fd, first.data(), first.size(), 0, err);
  if (r != Io::kOk) {
    error = r == Io::kShort ? path.string() + ": not a cartridge (too short)"
                            : impl->describe("reading the superblock", err);
    return nullptr;
  }
  auto a = decode_superblock(first.data());
  auto b = decode_superblock(first.data() + kSlotSize);
  if (a && a->generation % 2 != 0) a.reset();  // in the wrong slot: not written by us
  if (b && b->generation % 2 != 1) b.reset();
  if (!a && !b) {
    error = path.string() + ": not a cartridge (no valid superblock)";
    return nullptr;
  }
  impl->superblock = (a && (!b || a->generation > b->generation)) ? *a : *b;

  struct stat st {};
  if (::fstat(impl->fd, &st) != 0) {
    error = impl->describe("fstat", errno);
    return nullptr;
  }
  const auto file_size = static_cast<std::uint64_t>(st.st_size);

  impl->index_fd = ::open(impl->index_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (impl->index_fd < 0 || ::fstat(impl->index_fd, &st) != 0) {
    error = errno_text(impl->index_path.string() + ": open", errno);
    return nullptr;
  }
  std::vector<std::uint8_t> index_file(static_cast<std::size_t>(st.st_size));
  if (read_at(impl->index_fd, index_file.data(), index_file.size(), 0, err) == Io::kError) {
    error = errno_text(impl->index_path.string() + ": read", err);
    return nullptr;
  }
  if (!impl->recover(file_size, index_file, error)) return nullptr;
  return std::unique_ptr<Cartridge>(new Cartridge(std::move(impl)));
}

const Cartridge::Attributes& Cartridge::attributes() const { return impl_->superblock.attributes; }

bool Cartridge::set_write_protected(bool on) {
  Superblock next = impl_->superblock;
  next.attributes.write_protected = on;
  next.generation += 1;
  std::string error;
  const bool persisted = impl_->write_superblock(next, error);
  if (persisted) impl_->superblock.generation = next.generation;
  impl_->superblock.attributes.write_protected = on;  // for this load, in any case
  return persisted;
}

std::uint64_t Cartridge::position() const { return impl_->pos; }
std::uint64_t Cartridge::end_of_data() const { return impl_->end; }

std::uint64_t Cartridge::file_number() const {
  const auto& f = impl_->filemarks;
  return static_cast<std::uint64_t>(std::lower_bound(f.begin(), f.end(), impl_->pos) - f.begin());
}

std::uint64_t Cartridge::filemarks() const { return impl_->filemarks.size(); }

Cartridge::Object Cartridge::peek() const {
  if (impl_->pos >= impl_->end) return {};
  // An unreadable header shows as a block, so that reading it reports the
  // error (rather than a filemark that is not there).
  if (!impl_->load_here()) return {Kind::kBlock, 0};
  return {impl_->here->kind, impl_->here->length};
}

bool Cartridge::locate(std::uint64_t n) {
  Impl& m = *impl_;
  if (n > m.end) return false;
  if (n == m.pos) return true;
  if (n == m.end) {
    m.move_to(m.end, m.end_offset, std::nullopt);
    return true;
  }
  // The nearest known place before n (a checkpoint, or the head itself)
  // to step forward from, one header read per object; and after n (a
  // checkpoint, end of data, or the head) to step back from, one trailer
  // read per object plus the header at n.
  const auto above = std::upper_bound(m.index.begin(), m.index.end(), n,
                                      [](std::uint64_t o, const Entry& e) { return o < e.object; });
  std::uint64_t from = 0;
  std::uint64_t from_offset = kDataStart;
  if (above != m.index.begin()) {
    from = std::prev(above)->object;
    from_offset = std::prev(above)->offset;
  }
  std::uint64_t back = m.end;
  std::uint64_t back_offset = m.end_offset;
  if (above != m.index.end()) {
    back = above->object;
    back_offset = above->offset;
  }
  if (m.pos < n && m.pos > from) {
    from = m.pos;
    from_offset = m.pos_offset;
  }
  if (m.pos > n && m.pos < back) {
    back = m.pos;
    back_offset = m.pos_offset;
  }
  if (back - n + 1 < n - from && m.step_backward(back, back_offset, n)) return true;
  // Forward from the checkpoint (or the head) is the way that always works
  // when the cartridge is sound; a damaged trailer only costs the detour.
  return m.step_forward(from, from_offset, n);
}

std::optional<std::uint64_t> Cartridge::next_filemark(std::uint64_t from) const {
  const auto& f = impl_->filemarks;
  const auto it = std::lower_bound(f.begin(), f.end(), from);
  if (it == f.end()) return std::nullopt;
  return *it;
}

std::optional<std::uint64_t> Cartridge::previous_filemark(std::uint64_t from) const {
  const auto& f = impl_->filemarks;
  const auto it = std::lower_bound(f.begin(), f.end(), from);
  if (it == f.begin()) return std::nullopt;
  return *std::prev(it);
}

bool Cartridge::read_block(std::span<std::uint8_t> out, std::uint32_t& size, std::string& error) {
  Impl& m = *impl_;
  if (m.pos >= m.end) {
    error = "no block here: end of data";
    return false;
  }
  if (!m.load_here()) {
    error = m.path.string() + ": object " + std::to_string(m.pos) + ": unreadable header";
    return false;
  }
  const Header h = *m.here;
  if (h.kind != Kind::kBlock) {
    error = "no block here: a filemark";
    return false;
  }
  // One preadv: the payload (what does not fit in `out` into scratch), the
  // trailer, and the next object's header, which the next read needs.
  const std::size_t into_out = std::min<std::size_t>(h.length, out.size());
  m.scratch.resize(h.length - into_out);
  std::array<std::uint8_t, kTrailerSize + kHeaderSize> tail{};
  const bool more = m.pos + 1 < m.end;
  std::array<iovec, 3> iov{{{out.data(), into_out},
                            {m.scratch.data(), m.scratch.size()},
                            {tail.data(), kTrailerSize + (more ? kHeaderSize : 0)}}};
  int err = 0;
  const Io r =
      read_at(m.fd, iov.data(), static_cast<int>(iov.size()), m.pos_offset + kHeaderSize, err);
  if (r != Io::kOk) {
    error = m.describe("reading object " + std::to_string(m.pos), r == Io::kShort ? EIO : err);
    return false;
  }
  bool intact = get32(tail.data()) == h.length;
  if (intact && m.verify_reads) {
    std::uint32_t crc = payload_crc(h.crc, out.first(into_out));
    crc = crc32c_extend(crc, m.scratch);
    intact = get32(tail.data() + 4) == crc;
  }
  if (!intact) {
    error = m.path.string() + ": object " + std::to_string(m.pos) + ": CRC mismatch";
    return false;
  }
  size = h.length;
  const std::uint64_t next_offset = m.pos_offset + kOverhead + h.length;
  std::optional<Header> next;
  if (more) {
    next = decode_header(tail.data() + kTrailerSize);
    if (next && next->object != m.pos + 1) next.reset();
  }
  m.move_to(m.pos + 1, next_offset, std::move(next));
  return true;
}

void Cartridge::set_verify_reads(bool on) { impl_->verify_reads = on; }
void Cartridge::set_zero_extents(bool on) { impl_->zero_extents = on; }

void Cartridge::skip() {
  Impl& m = *impl_;
  // A header that cannot be read leaves nothing to step over by; the head
  // stays (reading there reports the error).
  if (!m.load_here()) return;
  m.move_to(m.pos + 1, m.pos_offset + kOverhead + m.here->length, std::nullopt);
}

Cartridge::WriteResult Cartridge::write_block(std::span<const std::uint8_t> data,
                                              std::string& error) {
  Impl& m = *impl_;
  const Attributes& a = m.superblock.attributes;
  if (a.write_protected) {
    error = "write protected";
    return WriteResult::kWriteProtected;
  }
  if (data.empty() || data.size() > kMaxBlock) {
    error = "block of " + std::to_string(data.size()) + " bytes: not within 1.." +
            std::to_string(kMaxBlock);
    return WriteResult::kIoError;
  }
  const std::uint64_t before = m.block_bytes_before(m.pos, m.pos_offset);
  const std::uint64_t after = before + data.size();
  if (after > a.capacity) {
    error = "the block does not fit on the cartridge";
    return WriteResult::kOverflow;
  }
  if (!m.truncate_at_position(error)) return WriteResult::kIoError;

  const std::uint64_t object = m.end;
  const std::uint64_t offset = m.end_offset;
  const std::uint32_t link = m.end_link;
  m.extend_for(offset + kOverhead + data.size());
  Header h{
      Kind::kBlock, static_cast<std::uint32_t>(data.size()), object, m.filemarks.size(), link, 0};
  const HeaderBytes header = encode_header(h);
  const Trailer trailer = encode_trailer(h.length, payload_crc(h.crc, data));
  std::array<iovec, 3> iov{{{const_cast<std::uint8_t*>(header.data()), header.size()},
                            {const_cast<std::uint8_t*>(data.data()), data.size()},
                            {const_cast<std::uint8_t*>(trailer.data()), trailer.size()}}};
  int err = 0;
  if (!write_at(m.fd, iov.data(), static_cast<int>(iov.size()), offset, err)) {
    error = m.describe("writing object " + std::to_string(object), err);
    m.roll_back(object, offset, link, error);
    return WriteResult::kIoError;
  }
  if (needs_entry(object, Kind::kBlock, offset, m.index.empty() ? nullptr : &m.index.back())) {
    m.index.push_back({object, offset, m.filemarks.size(), false});
    if (!m.persist_entries(m.index.size() - 1, error)) {
      m.roll_back(object, offset, link, error);
      return WriteResult::kIoError;
    }
  }
  m.end = object + 1;
  m.end_offset = offset + kOverhead + data.size();
  m.file_end = std::max(m.file_end, m.end_offset);
  m.end_link = link_after(trailer.data());
  m.move_to(m.end, m.end_offset, std::nullopt);
  return after >= a.early_warning ? WriteResult::kEarlyWarning : WriteResult::kOk;
}

Cartridge::WriteResult Cartridge::write_blocks(std::span<const std::uint8_t> data,
                                               std::uint32_t size, std::uint32_t& written,
                                               std::string& error) {
  written = 0;
  Impl& m = *impl_;
  const Attributes& a = m.superblock.attributes;
  if (a.write_protected) {
    error = "write protected";
    return WriteResult::kWriteProtected;
  }
  if (size == 0 || size > kMaxBlock || data.empty() || data.size() % size != 0) {
    error = std::to_string(data.size()) + " bytes are not whole blocks of " + std::to_string(size) +
            " (1.." + std::to_string(kMaxBlock) + ")";
    return WriteResult::kIoError;
  }
  const std::uint64_t count = data.size() / size;
  const std::uint64_t before = m.block_bytes_before(m.pos, m.pos_offset);
  const std::uint64_t room = before >= a.capacity ? 0 : (a.capacity - before) / size;
  const std::uint64_t fit = std::min(count, room);
  if (fit > 0 && !m.truncate_at_position(error)) return WriteResult::kIoError;

  // Up to kGroup objects per pwritev (3 iovecs each, within IOV_MAX); each
  // group is in the file, and its checkpoints in the index, before the
  // next one starts, so a failure keeps every group before it.
  constexpr std::size_t kGroup = 256;
  std::vector<HeaderBytes> headers;
  std::vector<Trailer> trailers;
  std::vector<iovec> iov;
  while (written < fit) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kGroup, fit - written));
    const std::uint64_t first = m.end;
    const std::uint64_t first_offset = m.end_offset;
    const std::uint32_t first_link = m.end_link;
    const std::size_t index_from = m.index.size();
    m.extend_for(first_offset + n * (kOverhead + size));
    headers.resize(n);
    trailers.resize(n);
    iov.clear();
    std::uint32_t link = first_link;
    std::uint64_t offset = first_offset;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t object = first + i;
      const auto block = data.subspan((written + i) * size, size);
      Header h{Kind::kBlock, size, object, m.filemarks.size(), link, 0};
      headers[i] = encode_header(h);
      trailers[i] = encode_trailer(h.length, payload_crc(h.crc, block));
      iov.push_back({headers[i].data(), headers[i].size()});
      iov.push_back({const_cast<std::uint8_t*>(block.data()), block.size()});
      iov.push_back({trailers[i].data(), trailers[i].size()});
      if (needs_entry(object, Kind::kBlock, offset, m.index.empty() ? nullptr : &m.index.back())) {
        m.index.push_back({object, offset, m.filemarks.size(), false});
      }
      link = link_after(trailers[i].data());
      offset += kOverhead + size;
    }
    int err = 0;
    if (!write_at(m.fd, iov.data(), static_cast<int>(iov.size()), first_offset, err)) {
      error = m.describe(
          "writing objects " + std::to_string(first) + ".." + std::to_string(first + n - 1), err);
      m.roll_back(first, first_offset, first_link, error);
      return WriteResult::kIoError;
    }
    if (!m.persist_entries(index_from, error)) {
      m.roll_back(first, first_offset, first_link, error);
      return WriteResult::kIoError;
    }
    m.end = first + n;
    m.end_offset = offset;
    m.file_end = std::max(m.file_end, m.end_offset);
    m.end_link = link;
    m.move_to(m.end, m.end_offset, std::nullopt);
    written += static_cast<std::uint32_t>(n);
  }
  if (fit < count) {
    error = "the blocks do not all fit on the cartridge";
    return WriteResult::kOverflow;
  }
  return before + fit * size >= a.early_warning ? WriteResult::kEarlyWarning : WriteResult::kOk;
}

Cartridge::WriteResult Cartridge::write_filemarks(std::uint32_t count, std::string& error) {
  Impl& m = *impl_;
  const Attributes& a = m.superblock.attributes;
  if (a.write_protected) {
    error = "write protected";
    return WriteResult::kWriteProtected;
  }
  if (count == 0) {  // nothing to write: a request to flush
    if (!m.sync(error, true)) return WriteResult::kIoError;
    return past_early_warning() ? WriteResult::kEarlyWarning : WriteResult::kOk;
  }
  const std::uint64_t before = m.block_bytes_before(m.pos, m.pos_offset);
  if (before >= a.capacity) {
    error = "the cartridge is full";
    return WriteResult::kOverflow;
  }
  if (!m.truncate_at_position(error)) return WriteResult::kIoError;

  const std::uint64_t first = m.end;
  const std::uint64_t first_offset = m.end_offset;
  const std::uint32_t first_link = m.end_link;
  std::vector<std::uint8_t> batch;
  for (std::uint32_t done = 0; done < count;) {
    const std::uint32_t n = std::min(count - done, kFilemarkBatch);
    batch.resize(std::size_t{n} * kOverhead);
    const std::size_t index_from = m.index.size();
    std::uint32_t link = m.end_link;
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint64_t object = m.end + i;
      const std::uint64_t file = m.filemarks.size() + i;
      Header h{Kind::kFilemark, 0, object, file, link, 0};
      const HeaderBytes header = encode_header(h);
      const Trailer trailer = encode_trailer(0, payload_crc(h.crc, {}));
      std::uint8_t* at = batch.data() + std::size_t{i} * kOverhead;
      std::copy(header.begin(), header.end(), at);
      std::copy(trailer.begin(), trailer.end(), at + kHeaderSize);
      link = link_after(trailer.data());
      m.index.push_back({object, m.end_offset + i * kOverhead, file, true});
    }
    m.extend_for(m.end_offset + batch.size());
    int err = 0;
    if (!write_at(m.fd, batch.data(), batch.size(), m.end_offset, err)) {
      error = m.describe("writing filemarks", err);
      m.roll_back(first, first_offset, first_link, error);
      return WriteResult::kIoError;
    }
    if (!m.persist_entries(index_from, error)) {
      m.roll_back(first, first_offset, first_link, error);
      return WriteResult::kIoError;
    }
    for (std::uint32_t i = 0; i < n; ++i) m.filemarks.push_back(m.end + i);
    m.end += n;
    m.end_offset += batch.size();
    m.file_end = std::max(m.file_end, m.end_offset);
    m.end_link = link;
    done += n;
  }
  m.move_to(m.end, m.end_offset, std::nullopt);
  // Filemarks are sync points, as on a real drive.
  if (!m.sync(error, false)) {
    m.roll_back(first, first_offset, first_link, error);
    return WriteResult::kIoError;
  }
  return before >= a.early_warning ? WriteResult::kEarlyWarning : WriteResult::kOk;
}

bool Cartridge::flush(std::string& error) { return impl_->sync(error, true); }

bool Cartridge::erase(std::string& error) {
  Impl& m = *impl_;
  if (m.superblock.attributes.write_protected) {
    error = "write protected";
    return false;
  }
  return m.truncate_at_position(error) && m.sync(error, true);
}

std::uint64_t Cartridge::bytes_used() const {
  return impl_->block_bytes_before(impl_->end, impl_->end_offset);
}

bool Cartridge::past_early_warning() const {
  return bytes_used() >= impl_->superblock.attributes.early_warning;
}

}  // namespace scsi::emu
