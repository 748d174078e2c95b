// The cartridge format (version 2) and how it is recovered.
//
// A cartridge is two files: the map `NAME` (superblock and object table)
// and the data file `NAME.data` (the blocks' bytes, back to back, nothing
// else).  Integers are little-endian; "CRC" is CRC-32C (scsi/crc32c.h).
//
// Why two files.  The blocks' bytes are what a tape mostly holds, and a
// file written in large pieces at aligned offsets (as dd writes it) is
// written and read back fastest: the page cache holds it in large folios.
// Any framing between the blocks of one file (version 1 put a 32-byte
// header and an 8-byte trailer around each) breaks that alignment and cost
// a quarter of the throughput.  So the data file holds only the blocks:
// block n starts where block n - 1 ends, the first at offset 0, and a
// WRITE of 256 KiB records writes what dd writes.  Everything else is in
// the map.
//
// Map file
//   [0, 4096): two superblock slots of 2048 bytes, at 0 and at 2048.
//      offset size
//        0     8   magic "NDMPVTC1"
//        8     4   format version (2)
//       12     4   flags: bit 0 = write-protected
//       16     8   generation; the slot that holds generation g is g % 2
//                  (at most 2^62: a larger one is damage)
//       24     8   capacity: bytes of block data the cartridge holds
//       32     8   early warning: bytes of block data where it begins
//       40    16   uuid, random at creation
//       56     4   offset of the first entry (4096)
//       60     4   barcode length (0..32)
//       64    32   barcode, zero-padded
//       96     4   CRC of bytes 0..95
//      100     8   synced: objects that a sync made durable (0: none known)
//      108     8     the bytes of block data before them
//      116     8     the filemarks before them
//      124     4     the chain CRC of the last of them
//      128     4   CRC of bytes 16..23 (the generation) and 100..127; if it
//                  does not hold, none is known synced
//      132  1916   zero
//     The valid slot (magic, version, CRC, sane fields) with the higher
//     generation is in force.  A change of attributes or of `synced` writes
//     the other slot with the next generation and fdatasyncs: a torn
//     superblock write leaves the previous slot in force.  (`synced` came
//     after the first cartridges of version 2, which have zeros there; a
//     build from before it leaves the field as it was when it writes, and
//     the chain CRC tells that it no longer holds.)
//   [4096, ...): the object table, one 32-byte entry per object, object n
//   at 4096 + 32 n:
//        0     4   magic "VBLK" (a block) or "VFMK" (a filemark)
//        4     4   length: 1..16 MiB for a block, 0 for a filemark
//        8     8   offset of the block in the data file (for a filemark,
//                  where the next block goes)
//       16     8   file number (filemarks before this object)
//       24     4   CRC of the block's bytes (0 for a filemark)
//       28     4   chain CRC: the CRC of the previous entry's chain CRC
//                  (object 0: the CRC of the uuid), 4 bytes, followed by
//                  bytes 0..27
//   The chain binds each entry to the one written before it, so that
//   stale entries left behind by an overwrite (after a power cut undid a
//   truncate) are not taken for the continuation of newer ones.  An entry
//   is valid if its chain CRC holds against the entry before it, its
//   fields are sane, and its block lies within the data file; an entry
//   that is not reads back as an error, never as data.
//
// Positioning is arithmetic: object n's entry is at a known offset, so
// LOCATE reads one page of the table and nothing else, on a cartridge of
// any size.  The table needs no index.  File numbers grow along the table,
// so the filemark queries are binary searches over it.
//
// Writing.  A block's bytes go to the end of the data file with one pwrite
// (a fixed-block WRITE's blocks with one pwrite for all of them), and only
// then its entry (or theirs, up to 4096 per pwrite) to the end of the
// table: when an entry is in the file, so are the bytes it describes.
// Writing at object n before the end first brings `synced` down to n,
// then truncates the table at n's entry and syncs it (a power cut then
// cannot bring back the entries after n behind new ones), then the data
// file at n's offset.  WRITE FILEMARKS, flush() and ERASE fdatasync the
// data file, then the map, then record `synced` in the superblock.
//
// Recovery (open).  kill -9 interrupts at most one write, which leaves a
// prefix of its bytes at the end of its file: a torn entry, or block bytes
// that no entry describes yet.  After a power cut, what was not synced may
// be missing in any order: pages of the table's tail read as zeros, with
// pages that did reach the disk after them.  What was synced is whole: the
// superblock's `synced` says how many objects that is and where they end
// (every sync records it after the data and the table are durable; an
// overwrite brings it down before it cuts), and open() never cuts or
// verifies those: damage to them reads back as an error.  It holds if the
// last of those entries still carries the recorded chain CRC, which binds
// every entry before it; otherwise none is known synced.  So:
//   1. The table's whole entries are counted from the map's size.  The
//      last kTailObjects (256) of them, none before `synced`, are verified
//      in order: chain CRC, data offset and file number following from the
//      entry before, block within the data file.  The first that fails,
//      and all after it, are cut.  (Entries before the window are verified
//      when they are read.)  If none holds and the window is lost writes
//      (every entry zeros or with an entry's magic), the window before it
//      is verified the same way, and so on back (not past `synced`): the
//      end is where the entries stop holding.  If none holds after
//      `synced`, the end is there, as the superblock recorded it.  If none
//      holds and the window is noise, the end is at its start, after an
//      entry that must hold against its own predecessor, or the cartridge
//      is refused.
//   2. Walking back from the new end, within the last kTailBytes (32 MiB)
//      of block data and kTailBlocks (65536) blocks (into the window
//      before, should this one empty; not past `synced`), each block's CRC
//      is checked; a block whose bytes do
//      not match is cut with all after it, until one matches or a filemark
//      comes (WRITE FILEMARKS synced what is before it).  (A mismatch that
//      a matching block follows is damage in the middle, not a torn tail:
//      it stays, and reading it reports the CRC error.)
//   3. The map is truncated after the last entry kept, and the data file
//      after that entry's block: bytes that no entry describes are cut.
// After a power cut, what a filemark or flush() synced is whole; damage to
// earlier objects that the tail scan does not reach reads back as an error,
// never as data.
//
// Version 1 cartridges (one framed file and a side index, before
// 2026-11-22) are refused with a message that says so.
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

constexpr std::uint64_t kMapStart = 4096;
constexpr std::size_t kSlotSize = 2048;
constexpr std::size_t kSuperblockCrcAt = 96;
constexpr std::size_t kSyncedAt = 100;
constexpr std::size_t kSyncedCrcAt = 128;
constexpr std::size_t kEntrySize = 32;
constexpr std::uint32_t kVersion = 2;
constexpr std::size_t kMaxBarcode = 32;
constexpr std::uint32_t kFlagWriteProtected = 1;
// Recovery verifies the last this many entries (and the windows before
// them that are lost writes), and the blocks at the end, up to kTailBytes
// of block data or kTailBlocks blocks.
constexpr std::uint64_t kTailObjects = 256;
constexpr std::uint64_t kTailBytes = 32u << 20;
constexpr std::uint64_t kTailBlocks = 65536;
// Entries read (and cached) at a time: one 4 KiB page of the table.
constexpr std::uint64_t kPageEntries = 128;
// Entries written per pwrite by write_blocks() and write_filemarks().
constexpr std::uint64_t kEntryBatch = 4096;

using Uuid = std::array<std::uint8_t, 16>;
using EntryBytes = std::array<std::uint8_t, kEntrySize>;

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
bool write_at(int fd, const void* buffer, std::size_t size, std::uint64_t offset, int& err) {
  iovec v{const_cast<void*>(buffer), size};
  // A regular file never takes zero bytes of a non-empty write; if it did,
  // the loop must not spin.
  const Io r = transfer([fd](const iovec* p, int c, off_t o) { return ::pwritev(fd, p, c, o); }, &v,
                        1, offset, err);
  if (r == Io::kShort) err = EIO;
  return r == Io::kOk;
}

// ---- entries ----

struct Entry {
  Cartridge::Kind kind = Cartridge::Kind::kBlock;
  std::uint32_t length = 0;
  std::uint64_t offset = 0;  // in the data file
  std::uint64_t file = 0;
  std::uint32_t block_crc = 0;
  std::uint32_t chain = 0;

  std::uint64_t data_after() const { return offset + length; }
  std::uint64_t file_after() const { return file + (kind == Cartridge::Kind::kFilemark ? 1 : 0); }
};

std::uint32_t chain_crc(std::uint32_t previous, const std::uint8_t* b) {
  std::array<std::uint8_t, 4> seed{};
  put32(seed.data(), previous);
  return crc32c_extend(crc32c(seed), std::span(b, 28));
}

// Encodes `e` after an entry whose chain CRC is `previous`; sets e.chain.
void encode_entry(Entry& e, std::uint32_t previous, std::uint8_t* b) {
  put32(b, e.kind == Cartridge::Kind::kFilemark ? kFilemarkMagic : kBlockMagic);
  put32(b + 4, e.length);
  put64(b + 8, e.offset);
  put64(b + 16, e.file);
  put32(b + 24, e.block_crc);
  e.chain = chain_crc(previous, b);
  put32(b + 28, e.chain);
}

// The entry at `b` if it is sane and chains to `previous`.
std::optional<Entry> decode_entry(const std::uint8_t* b, std::uint32_t previous) {
  const std::uint32_t magic = get32(b);
  if (magic != kBlockMagic && magic != kFilemarkMagic) return std::nullopt;
  if (chain_crc(previous, b) != get32(b + 28)) return std::nullopt;
  Entry e;
  e.kind = magic == kFilemarkMagic ? Cartridge::Kind::kFilemark : Cartridge::Kind::kBlock;
  e.length = get32(b + 4);
  e.offset = get64(b + 8);
  e.file = get64(b + 16);
  e.block_crc = get32(b + 24);
  e.chain = get32(b + 28);
  const bool sane = e.kind == Cartridge::Kind::kFilemark
                        ? e.length == 0 && e.block_crc == 0
                        : e.length != 0 && e.length <= Cartridge::kMaxBlock;
  if (!sane || e.offset > (std::uint64_t{1} << 62) || e.file > (std::uint64_t{1} << 62)) {
    return std::nullopt;
  }
  return e;
}

// ---- superblock ----

// Where the objects that a sync made durable end: what open() never cuts.
struct SyncPoint {
  std::uint64_t objects = 0;
  std::uint64_t data = 0;   // bytes of block data before them
  std::uint64_t file = 0;   // filemarks before them
  std::uint32_t chain = 0;  // the chain CRC of the last of them
};

struct Superblock {
  Cartridge::Attributes attributes;
  Uuid uuid{};
  std::uint64_t generation = 0;
  SyncPoint synced;
};

// The CRC that binds `synced` to its slot's generation.
std::uint32_t synced_crc(const std::uint8_t* b) {
  return crc32c_extend(crc32c(std::span(b + 16, 8)),
                       std::span(b + kSyncedAt, kSyncedCrcAt - kSyncedAt));
}

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
  put32(&b[56], static_cast<std::uint32_t>(kMapStart));
  put32(&b[60], static_cast<std::uint32_t>(s.attributes.barcode.size()));
  std::copy(s.attributes.barcode.begin(), s.attributes.barcode.end(), b.begin() + 64);
  put32(&b[kSuperblockCrcAt], crc32c(std::span(b).first(kSuperblockCrcAt)));
  put64(&b[kSyncedAt], s.synced.objects);
  put64(&b[kSyncedAt + 8], s.synced.data);
  put64(&b[kSyncedAt + 16], s.synced.file);
  put32(&b[kSyncedAt + 24], s.synced.chain);
  put32(&b[kSyncedCrcAt], synced_crc(b.data()));
  return b;
}

// A slot with a valid magic and CRC but another format version sets
// `version` and gives nullopt.
std::optional<Superblock> decode_superblock(const std::uint8_t* b, std::uint32_t& version) {
  if (get32(b) != kSuperblockMagicLow || get32(b + 4) != kSuperblockMagicHigh) return std::nullopt;
  if (crc32c(std::span(b, kSuperblockCrcAt)) != get32(b + kSuperblockCrcAt)) return std::nullopt;
  if (get32(b + 8) != kVersion) {
    version = get32(b + 8);
    return std::nullopt;
  }
  if (get32(b + 56) != kMapStart) return std::nullopt;
  // A generation no cartridge reaches (one per sync) is damage; taken, it
  // would keep the slot in force past every later write (whose generation
  // would wrap around).
  if (get64(b + 16) > (std::uint64_t{1} << 62)) return std::nullopt;
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
  if (synced_crc(b) == get32(b + kSyncedCrcAt)) {
    s.synced = {get64(b + kSyncedAt), get64(b + kSyncedAt + 8), get64(b + kSyncedAt + 16),
                get32(b + kSyncedAt + 24)};
  }
  return s;
}

std::filesystem::path data_path_of(const std::filesystem::path& path) {
  std::filesystem::path p = path;
  p += ".data";
  return p;
}

bool fsync_directory_of(const std::filesystem::path& path, std::string& error) {
  const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : ".";
  const int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0 || ::fsync(dir) != 0) {
    error = errno_text(parent.string() + ": fsync", errno);
    if (dir >= 0) ::close(dir);
    return false;
  }
  ::close(dir);
  return true;
}

}  // namespace

// ---- the cartridge ----

struct Cartridge::Impl {
  std::filesystem::path path;
  std::filesystem::path data_path;
  int fd = -1;       // the map
  int data_fd = -1;  // the blocks
  Superblock superblock;
  std::uint32_t first_chain = 0;  // what object 0's entry chains to

  // End of data: objects, bytes of block data, the last entry's chain CRC
  // and the filemarks before it.
  std::uint64_t end = 0;
  std::uint64_t data_end = 0;
  std::uint32_t end_chain = 0;
  std::uint64_t end_file = 0;

  std::uint64_t pos = 0;

  // One page of the table, as read: the entries [page_first, page_first +
  // page_count), preceded by the entry before page_first (if any), whose
  // chain CRC the first one is checked against.
  mutable std::uint64_t page_first = 0;
  mutable std::uint64_t page_count = 0;
  mutable std::vector<std::uint8_t> page;

  std::vector<std::uint8_t> scratch;
  bool verify_reads = true;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (data_fd >= 0) ::close(data_fd);
    if (fd >= 0) ::close(fd);
  }

  std::string describe(const std::string& what, int err) const {
    return errno_text(path.string() + ": " + what, err);
  }

  static std::uint64_t entry_offset(std::uint64_t n) { return kMapStart + n * kEntrySize; }

  void forget_page() const { page_count = 0; }

  // The valid entry of object n < end, or nullopt (unreadable, damaged).
  std::optional<Entry> entry(std::uint64_t n) const {
    if (n >= end) return std::nullopt;
    if (n < page_first || n >= page_first + page_count) {
      forget_page();
      const std::uint64_t first = n / kPageEntries * kPageEntries;
      const std::uint64_t count = std::min(kPageEntries, end - first);
      const std::uint64_t from = first == 0 ? 0 : first - 1;  // and the one before
      page.resize(static_cast<std::size_t>((first + count - from) * kEntrySize));
      int err = 0;
      if (read_at(fd, page.data(), page.size(), entry_offset(from), err) != Io::kOk) {
        return std::nullopt;
      }
      page_first = first;
      page_count = count;
    }
    const std::uint64_t before = page_first == 0 ? 0 : 1;
    const std::uint8_t* b = page.data() + (n - page_first + before) * kEntrySize;
    const std::uint32_t previous = n == 0 ? first_chain : get32(b - kEntrySize + 28);
    auto e = decode_entry(b, previous);
    if (e && e->data_after() > data_end) return std::nullopt;
    return e;
  }

  // Block bytes before object n <= end; nullopt if its entry is unreadable.
  std::optional<std::uint64_t> data_before(std::uint64_t n) const {
    if (n == end) return data_end;
    const auto e = entry(n);
    if (!e) return std::nullopt;
    return e->offset;
  }

  // Filemarks before object n <= end.
  std::optional<std::uint64_t> file_of(std::uint64_t n) const {
    if (n == end) return end_file;
    const auto e = entry(n);
    if (!e) return std::nullopt;
    return e->file;
  }

  // The smallest j in [lo, hi] with file_of(j) >= f, given file_of(hi) >= f
  // (file numbers do not decrease along the table); nullopt if an entry on
  // the way is unreadable.
  std::optional<std::uint64_t> first_with_file(std::uint64_t lo, std::uint64_t hi,
                                               std::uint64_t f) const {
    while (lo < hi) {
      const std::uint64_t mid = lo + (hi - lo) / 2;
      const auto file = file_of(mid);
      if (!file) return std::nullopt;
      if (*file >= f) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return lo;
  }

  // Discards object n and everything after it; `chain` and `file` are what
  // an entry written at n chains to and counts, `data` its data offset.
  bool cut(std::uint64_t n, std::uint64_t data, std::uint32_t chain, std::uint64_t file,
           std::string& error) {
    forget_page();
    // What open() never cuts comes down to n first (durably), then the
    // table: a crash between the two leaves block bytes that no entry
    // describes, which open() cuts.  The cut table is synced before
    // anything is written after it, so that a power cut cannot bring back
    // the entries it discarded behind the new ones.
    if (superblock.synced.objects > n && !record_synced({n, data, file, chain}, error)) {
      return false;
    }
    if (::ftruncate(fd, static_cast<off_t>(entry_offset(n))) != 0) {
      error = describe("truncating the table", errno);
      return false;
    }
    end = n;
    end_chain = chain;
    end_file = file;
    data_end = std::min(data_end, data);
    pos = std::min(pos, end);
    if (::fdatasync(fd) != 0) {
      error = describe("fdatasync", errno);
      return false;
    }
    if (::ftruncate(data_fd, static_cast<off_t>(data)) != 0) {
      error = errno_text(data_path.string() + ": truncating", errno);
      return false;
    }
    data_end = data;
    return true;
  }

  // Makes position() the end of data (a tape overwrites, it does not insert).
  bool truncate_at_position(std::string& error) {
    if (pos == end) return true;
    const auto here = entry(pos);
    std::optional<Entry> previous;
    if (pos > 0) previous = entry(pos - 1);
    if (!here || (pos > 0 && !previous)) {
      error = path.string() + ": object " + std::to_string(pos) +
              ": unreadable entry; cannot write here";
      return false;
    }
    return cut(pos, here->offset, pos == 0 ? first_chain : previous->chain, here->file, error);
  }

  // Undoes a failed append at the end of data as it was before it.
  void roll_back(std::uint64_t n, std::uint64_t data, std::uint32_t chain, std::uint64_t file,
                 std::string& error) {
    std::string more;
    if (!cut(n, data, chain, file, more)) error += "; " + more;
  }

  // Appends `count` entries (encoded in `bytes`) after their blocks, which
  // are in the data file up to `new_data_end`.
  bool append_entries(std::span<const std::uint8_t> bytes, std::uint64_t count,
                      std::uint64_t new_data_end, std::uint32_t chain, std::uint64_t file,
                      std::string& error) {
    int err = 0;
    if (!write_at(fd, bytes.data(), bytes.size(), entry_offset(end), err)) {
      error = describe(
          "writing entries " + std::to_string(end) + ".." + std::to_string(end + count - 1), err);
      return false;
    }
    forget_page();
    end += count;
    data_end = new_data_end;
    end_chain = chain;
    end_file = file;
    pos = end;
    return true;
  }

  // The blocks first, then the table: so that after a power cut the table
  // never describes bytes that the sync did not keep.  Then the superblock
  // records that the objects up to the end of data are durable, which
  // open() then never cuts.
  bool sync(std::string& error) {
    if (::fdatasync(data_fd) != 0) {
      error = errno_text(data_path.string() + ": fdatasync", errno);
      return false;
    }
    if (::fdatasync(fd) != 0) {
      error = describe("fdatasync", errno);
      return false;
    }
    return record_synced({end, data_end, end_file, end_chain}, error);
  }

  // Makes `synced` p in the superblock (written and fdatasynced); nothing
  // if it is p already, or if the cartridge is write-protected (a flush on
  // unloading it then leaves its files as they were).
  bool record_synced(const SyncPoint& p, std::string& error) {
    if (superblock.attributes.write_protected ||
        (superblock.synced.objects == p.objects && superblock.synced.chain == p.chain)) {
      return true;
    }
    Superblock next = superblock;
    next.synced = p;
    next.generation += 1;
    if (!write_superblock(next, error)) return false;
    superblock = next;
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

  // Whether block `e`'s bytes are in the data file and match their CRC.
  bool block_intact(const Entry& e, std::string& error, bool& failed) {
    scratch.resize(e.length);
    int err = 0;
    const Io r = read_at(data_fd, scratch.data(), scratch.size(), e.offset, err);
    if (r == Io::kError) {
      error = errno_text(data_path.string() + ": reading", err);
      failed = true;
      return false;
    }
    return r == Io::kOk && crc32c(scratch) == e.block_crc;
  }

  bool recover(std::uint64_t map_size, std::uint64_t data_size, std::string& error);
};

bool Cartridge::Impl::recover(std::uint64_t map_size, std::uint64_t data_size, std::string& error) {
  first_chain = crc32c(superblock.uuid);
  const std::uint64_t whole = map_size < kMapStart ? 0 : (map_size - kMapStart) / kEntrySize;
  // What a sync made durable is never cut, nor verified here: damage to it
  // reads back as an error.  The superblock's record of it holds if the
  // table still reaches it and the last of its entries still carries its
  // chain CRC (which binds every entry before it): otherwise none is known
  // synced (a build from before the record wrote the table since, or that
  // entry's chain is damaged).
  SyncPoint sync_point = superblock.synced;
  if (sync_point.objects > 0) {
    std::array<std::uint8_t, 4> chain_bytes{};
    int err = 0;
    const bool holds = sync_point.objects <= whole && sync_point.data <= data_size &&
                       read_at(fd, chain_bytes.data(), chain_bytes.size(),
                               entry_offset(sync_point.objects - 1) + 28, err) == Io::kOk &&
                       get32(chain_bytes.data()) == sync_point.chain;
    if (!holds) sync_point = {};
  }
  superblock.synced = sync_point;
  const std::uint64_t synced = sync_point.objects;

  // 1. The entries of the window [start, limit), in order, as far as they
  // hold; the window starts at `synced` at the earliest.
  // `only_lost_writes` says whether every entry of the window that was
  // read is zeros or at least has an entry's magic: what a power cut leaves
  // of appends it did not let reach the disk (pages of zeros, and pages
  // that did get there after them), not noise.
  std::uint64_t start = whole;
  std::vector<Entry> window;
  bool only_lost_writes = true;
  const auto scan_before = [&](std::uint64_t limit) {
    start = std::max(limit > kTailObjects ? limit - kTailObjects : 0, synced);
    const std::uint64_t from = start == 0 ? 0 : start - 1;
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>((limit - from) * kEntrySize));
    int err = 0;
    if (read_at(fd, bytes.data(), bytes.size(), entry_offset(from), err) == Io::kError) {
      error = describe("reading the table", err);
      return false;
    }
    window.clear();
    only_lost_writes = true;
    for (std::uint64_t n = start; n < limit; ++n) {
      const std::uint8_t* b = bytes.data() + (n - from) * kEntrySize;
      const std::uint32_t magic = get32(b);
      if (magic != kBlockMagic && magic != kFilemarkMagic &&
          std::any_of(b, b + kEntrySize, [](std::uint8_t v) { return v != 0; })) {
        only_lost_writes = false;
      }
    }
    std::uint32_t chain = first_chain;
    std::optional<std::uint64_t> data;  // where the next block must start, once known
    std::optional<std::uint64_t> file;
    if (start == 0) {
      data = 0;
      file = 0;
    } else {
      chain = get32(bytes.data() + 28);  // the entry before the window: checked when read
    }
    for (std::uint64_t n = start; n < limit; ++n) {
      const auto e = decode_entry(bytes.data() + (n - from) * kEntrySize, chain);
      if (!e || (data && e->offset != *data) || (file && e->file != *file) ||
          e->data_after() > data_size) {
        break;
      }
      window.push_back(*e);
      chain = e->chain;
      data = e->data_after();
      file = e->file_after();
    }
    return true;
  };
  if (!scan_before(whole)) return false;
  // A window of which nothing holds, if it is lost writes: the window
  // before it is scanned, and so on (a power cut in a long append can
  // leave more than a window of them).
  while (window.empty() && start > synced && only_lost_writes) {
    if (!scan_before(start)) return false;
  }

  // 2. Blocks at the end whose bytes did not all make it, within the last
  // kTailBytes of block data (and on into the window before, should the
  // walk empty this one).  A filemark ends the walk: WRITE FILEMARKS synced
  // what came before it.
  std::uint64_t checked_bytes = 0;
  std::uint64_t checked_blocks = 0;
  while (!window.empty() && checked_bytes < kTailBytes && checked_blocks < kTailBlocks &&
         window.back().kind == Kind::kBlock) {
    bool failed = false;
    const bool intact = block_intact(window.back(), error, failed);
    if (failed) return false;
    if (intact) break;
    checked_bytes += window.back().length;
    checked_blocks += 1;
    window.pop_back();
    if (window.empty() && start > synced && !scan_before(start)) return false;
  }

  // 3. The end of data, and both files cut there.
  end = start + window.size();
  if (!window.empty()) {
    end_chain = window.back().chain;
    data_end = window.back().data_after();
    end_file = window.back().file_after();
  } else if (start == 0) {
    end_chain = first_chain;
    data_end = 0;
    end_file = 0;
  } else if (start == synced) {
    // Nothing after what a sync made durable holds: the end is there, as
    // the superblock recorded it.
    end_chain = sync_point.chain;
    data_end = sync_point.data;
    end_file = sync_point.file;
  } else {
    // Nothing of the window holds, and it is noise (or the first entry of
    // the window before a walk does not hold): the end is at its start,
    // after an entry that step 1 did not verify; it must at least hold
    // against its own predecessor, or the cartridge is refused, not
    // guessed at.
    end = start;
    data_end = data_size;
    const auto previous = entry(start - 1);
    forget_page();
    if (!previous) {
      error = path.string() + ": the table is damaged before its last " +
              std::to_string(whole - start) + " entries";
      return false;
    }
    end_chain = previous->chain;
    data_end = previous->data_after();
    end_file = previous->file_after();
  }
  // (No sync: should a power cut undo a cut, the next open cuts again.)
  if (map_size > entry_offset(end) && ::ftruncate(fd, static_cast<off_t>(entry_offset(end))) != 0) {
    error = describe("cutting the torn tail", errno);
    return false;
  }
  if (data_size > data_end && ::ftruncate(data_fd, static_cast<off_t>(data_end)) != 0) {
    error = errno_text(data_path.string() + ": cutting the torn tail", errno);
    return false;
  }
  pos = 0;
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

  // The map appears whole or not at all: it is written under a temporary
  // name and linked into place (link(2) fails if the name exists).  The
  // data file comes after it: a name that was not taken has no blocks.
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
  std::array<std::uint8_t, kMapStart> first{};
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
  // A data file left under the name by something else holds no block of
  // this cartridge.
  const std::filesystem::path data_path = data_path_of(path);
  const int data_fd = ::open(data_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (data_fd < 0) {
    error = errno_text(data_path.string() + ": create", errno);
    return nullptr;
  }
  ::close(data_fd);
  if (!fsync_directory_of(path, error)) return nullptr;
  return open(path, error);
}

std::unique_ptr<Cartridge> Cartridge::open(const std::filesystem::path& path, std::string& error) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->data_path = data_path_of(path);
  impl->fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (impl->fd < 0) {
    error = impl->describe("open", errno);
    return nullptr;
  }
  // One writer at a time: two handles appending to one cartridge would
  // interleave.
  if (::flock(impl->fd, LOCK_EX | LOCK_NB) != 0) {
    error = errno == EWOULDBLOCK ? path.string() + ": in use (opened elsewhere)"
                                 : impl->describe("flock", errno);
    return nullptr;
  }
  std::array<std::uint8_t, kMapStart> first{};
  int err = 0;
  const Io r = read_at(impl->fd, first.data(), first.size(), 0, err);
  if (r != Io::kOk) {
    error = r == Io::kShort ? path.string() + ": not a cartridge (too short)"
                            : impl->describe("reading the superblock", err);
    return nullptr;
  }
  std::uint32_t version = kVersion;
  auto a = decode_superblock(first.data(), version);
  auto b = decode_superblock(first.data() + kSlotSize, version);
  if (a && a->generation % 2 != 0) a.reset();  // in the wrong slot: not written by us
  if (b && b->generation % 2 != 1) b.reset();
  if (!a && !b) {
    error = version != kVersion
                ? path.string() + ": a cartridge of format version " + std::to_string(version) +
                      ", which this ndmpd (version " + std::to_string(kVersion) + ") does not read"
                : path.string() + ": not a cartridge (no valid superblock)";
    return nullptr;
  }
  impl->superblock = (a && (!b || a->generation > b->generation)) ? *a : *b;

  struct stat st {};
  if (::fstat(impl->fd, &st) != 0) {
    error = impl->describe("fstat", errno);
    return nullptr;
  }
  const auto map_size = static_cast<std::uint64_t>(st.st_size);
  // A table with entries needs its data file; an empty one gets a new one.
  const int create = map_size >= kMapStart + kEntrySize ? 0 : O_CREAT;
  impl->data_fd = ::open(impl->data_path.c_str(), O_RDWR | O_CLOEXEC | create, 0644);
  if (impl->data_fd < 0 || ::fstat(impl->data_fd, &st) != 0) {
    error = errno_text(impl->data_path.string() + ": open", errno);
    return nullptr;
  }
  if (!impl->recover(map_size, static_cast<std::uint64_t>(st.st_size), error)) return nullptr;
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
  Impl& m = *impl_;
  if (const auto f = m.file_of(m.pos)) return *f;
  // An unreadable entry: the count of the nearest readable one before it,
  // within two pages of the table (a damaged filemark goes uncounted; a
  // longer run of damage is not walked: 0).
  for (std::uint64_t n = m.pos; n-- > 0 && m.pos - n <= 2 * kPageEntries;) {
    if (const auto e = m.entry(n)) return e->file_after();
  }
  return 0;
}

std::uint64_t Cartridge::filemarks() const { return impl_->end_file; }

Cartridge::Object Cartridge::peek() const {
  if (impl_->pos >= impl_->end) return {};
  const auto e = impl_->entry(impl_->pos);
  // An unreadable entry shows as a block, so that reading it reports the
  // error (rather than a filemark that is not there).
  if (!e) return {Kind::kBlock, 0};
  return {e->kind, e->length};
}

bool Cartridge::locate(std::uint64_t n) {
  if (n > impl_->end) return false;
  impl_->pos = n;
  return true;
}

std::optional<std::uint64_t> Cartridge::next_filemark(std::uint64_t from) const {
  const Impl& m = *impl_;
  if (from >= m.end) return std::nullopt;
  const auto f = m.file_of(from);
  if (!f || *f >= m.end_file) return std::nullopt;
  // The filemark numbered *f is the object before the first with *f + 1
  // filemarks before it.
  const auto j = m.first_with_file(from + 1, m.end, *f + 1);
  if (!j) return std::nullopt;
  return *j - 1;
}

std::optional<std::uint64_t> Cartridge::previous_filemark(std::uint64_t from) const {
  const Impl& m = *impl_;
  from = std::min(from, m.end);
  const auto f = m.file_of(from);
  if (!f || *f == 0) return std::nullopt;
  // The filemark numbered *f - 1 is the object before the first with *f
  // filemarks before it.
  const auto j = m.first_with_file(1, from, *f);
  if (!j) return std::nullopt;
  return *j - 1;
}

bool Cartridge::read_block(std::span<std::uint8_t> out, std::uint32_t& size, std::string& error) {
  Impl& m = *impl_;
  if (m.pos >= m.end) {
    error = "no block here: end of data";
    return false;
  }
  const auto e = m.entry(m.pos);
  if (!e) {
    error = m.path.string() + ": object " + std::to_string(m.pos) + ": unreadable entry";
    return false;
  }
  if (e->kind != Kind::kBlock) {
    error = "no block here: a filemark";
    return false;
  }
  // One preadv, straight into `out`; what does not fit goes to scratch
  // (for the CRC).
  const std::size_t into_out = std::min<std::size_t>(e->length, out.size());
  m.scratch.resize(m.verify_reads ? e->length - into_out : 0);
  std::array<iovec, 2> iov{{{out.data(), into_out}, {m.scratch.data(), m.scratch.size()}}};
  int err = 0;
  // (One iovec when one will do: the kernel copies a single user buffer
  // faster than an iovec array.)
  const Io r = read_at(m.data_fd, iov.data(), m.scratch.empty() ? 1 : 2, e->offset, err);
  if (r != Io::kOk) {
    error = errno_text(m.data_path.string() + ": reading object " + std::to_string(m.pos),
                       r == Io::kShort ? EIO : err);
    return false;
  }
  if (m.verify_reads && crc32c_extend(crc32c(out.first(into_out)), m.scratch) != e->block_crc) {
    error = m.path.string() + ": object " + std::to_string(m.pos) + ": CRC mismatch";
    return false;
  }
  size = e->length;
  m.pos += 1;
  return true;
}

void Cartridge::set_verify_reads(bool on) { impl_->verify_reads = on; }

void Cartridge::skip() {
  if (impl_->pos < impl_->end) impl_->pos += 1;
}

Cartridge::WriteResult Cartridge::write_block(std::span<const std::uint8_t> data,
                                              std::string& error) {
  std::uint32_t written = 0;
  if (data.empty() || data.size() > kMaxBlock) {
    if (impl_->superblock.attributes.write_protected) {
      error = "write protected";
      return WriteResult::kWriteProtected;
    }
    error = "block of " + std::to_string(data.size()) + " bytes: not within 1.." +
            std::to_string(kMaxBlock);
    return WriteResult::kIoError;
  }
  const WriteResult r = write_blocks(data, static_cast<std::uint32_t>(data.size()), written, error);
  if (r == WriteResult::kOverflow) error = "the block does not fit on the cartridge";
  return r;
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
  const auto before = m.data_before(m.pos);
  if (!before) {
    error = m.path.string() + ": object " + std::to_string(m.pos) +
            ": unreadable entry; cannot write here";
    return WriteResult::kIoError;
  }
  const std::uint64_t room = *before >= a.capacity ? 0 : (a.capacity - *before) / size;
  const std::uint64_t fit = std::min(count, room);
  if (fit > 0) {
    if (!m.truncate_at_position(error)) return WriteResult::kIoError;
    const std::uint64_t first = m.end;
    const std::uint64_t first_data = m.data_end;
    const std::uint32_t first_chain = m.end_chain;
    const std::uint64_t file = m.end_file;
    // The blocks, in one write: they lie back to back in the data file as
    // in `data`.
    const auto blocks = data.first(static_cast<std::size_t>(fit * size));
    int err = 0;
    if (!write_at(m.data_fd, blocks.data(), blocks.size(), first_data, err)) {
      error = errno_text(m.data_path.string() + ": writing objects " + std::to_string(first) +
                             ".." + std::to_string(first + fit - 1),
                         err);
      m.roll_back(first, first_data, first_chain, file, error);
      return WriteResult::kIoError;
    }
    // Then their entries, in writes of up to kEntryBatch (a WRITE of
    // 1-byte blocks may carry millions).
    std::vector<std::uint8_t> entries;
    for (std::uint64_t i = 0; i < fit;) {
      const std::uint64_t n = std::min<std::uint64_t>(kEntryBatch, fit - i);
      entries.resize(static_cast<std::size_t>(n * kEntrySize));
      std::uint32_t chain = m.end_chain;
      for (std::uint64_t k = 0; k < n; ++k, ++i) {
        Entry e{Kind::kBlock,
                size,
                first_data + i * size,
                file,
                crc32c(blocks.subspan(static_cast<std::size_t>(i * size), size)),
                0};
        encode_entry(e, chain, entries.data() + k * kEntrySize);
        chain = e.chain;
      }
      if (!m.append_entries(entries, n, first_data + i * size, chain, file, error)) {
        m.roll_back(first, first_data, first_chain, file, error);
        return WriteResult::kIoError;
      }
    }
    written = static_cast<std::uint32_t>(fit);
  }
  if (fit < count) {
    error = "the blocks do not all fit on the cartridge";
    return WriteResult::kOverflow;
  }
  return *before + fit * size >= a.early_warning ? WriteResult::kEarlyWarning : WriteResult::kOk;
}

Cartridge::WriteResult Cartridge::write_filemarks(std::uint32_t count, std::string& error) {
  Impl& m = *impl_;
  const Attributes& a = m.superblock.attributes;
  if (a.write_protected) {
    error = "write protected";
    return WriteResult::kWriteProtected;
  }
  if (count == 0) {  // nothing to write: a request to flush
    if (!m.sync(error)) return WriteResult::kIoError;
    return past_early_warning() ? WriteResult::kEarlyWarning : WriteResult::kOk;
  }
  const auto before = m.data_before(m.pos);
  if (!before) {
    error = m.path.string() + ": object " + std::to_string(m.pos) +
            ": unreadable entry; cannot write here";
    return WriteResult::kIoError;
  }
  if (*before >= a.capacity) {
    error = "the cartridge is full";
    return WriteResult::kOverflow;
  }
  if (!m.truncate_at_position(error)) return WriteResult::kIoError;

  const std::uint64_t first = m.end;
  const std::uint64_t data = m.data_end;
  const std::uint32_t first_chain = m.end_chain;
  const std::uint64_t first_file = m.end_file;
  std::vector<std::uint8_t> batch;
  for (std::uint32_t done = 0; done < count;) {
    const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(count - done, kEntryBatch));
    batch.resize(std::size_t{n} * kEntrySize);
    std::uint32_t chain = m.end_chain;
    for (std::uint32_t i = 0; i < n; ++i) {
      Entry e{Kind::kFilemark, 0, data, m.end_file + i, 0, 0};
      encode_entry(e, chain, batch.data() + std::size_t{i} * kEntrySize);
      chain = e.chain;
    }
    if (!m.append_entries(batch, n, data, chain, m.end_file + n, error)) {
      m.roll_back(first, data, first_chain, first_file, error);
      return WriteResult::kIoError;
    }
    done += n;
  }
  // Filemarks are sync points, as on a real drive.
  if (!m.sync(error)) {
    m.roll_back(first, data, first_chain, first_file, error);
    return WriteResult::kIoError;
  }
  return *before >= a.early_warning ? WriteResult::kEarlyWarning : WriteResult::kOk;
}

bool Cartridge::flush(std::string& error) { return impl_->sync(error); }

bool Cartridge::erase(std::string& error) {
  Impl& m = *impl_;
  if (m.superblock.attributes.write_protected) {
    error = "write protected";
    return false;
  }
  return m.truncate_at_position(error) && m.sync(error);
}

std::uint64_t Cartridge::synced() const {
  return std::min(impl_->superblock.synced.objects, impl_->end);
}

std::uint64_t Cartridge::bytes_used() const { return impl_->data_end; }

bool Cartridge::past_early_warning() const {
  return bytes_used() >= impl_->superblock.attributes.early_warning;
}

}  // namespace scsi::emu
