// A tape cartridge of the virtual tape library, stored in two files.
//
// The cartridge holds a sequence of logical objects, as SSC counts them:
// data blocks (records of 1 byte up to kMaxBlock) and filemarks, numbered
// from 0 at the beginning of the partition; end of data (EOD) follows the
// last object.  Writing at object N first discards N and everything after
// it (a tape overwrites, it does not insert).
//
// The blocks' bytes lie back to back in a data file (NAME.data), so that
// records of 256 KiB are written and read as dd would write and read them;
// a map file (NAME) holds the attributes and a table of 32-byte entries,
// one per object (kind, length, offset, file number, CRC-32C).  The format
// is described in cartridge.cpp.
//
// Crash safety: every write_block(), write_blocks() and write_filemarks()
// that has returned is in both files before it returns (pwrite, no
// user-space buffer; the blocks before their entries), so it survives
// kill -9 of the process; write_filemarks() and flush() also fdatasync, so
// that what came before a filemark survives a power cut too, and record
// that in the superblock: open() never cuts what a sync made durable
// (damage to it reads back as an error).  A write before the end of data
// syncs the cut table first, so that a power cut cannot bring back what
// the overwrite discarded.  A write cut short by a crash leaves a torn
// tail, which open() detects (chain CRCs of the last entries, CRC-32C of
// the last blocks, sizes) and cuts: it is never read back as data.
//
// Locate is fast on a cartridge of any size: object n's entry is at a
// known offset in the table, so locate() reads nothing and the next read
// one page of entries; the filemark queries are binary searches over the
// table's file numbers.
//
// One Cartridge object at a time may have a cartridge open (open() takes
// an exclusive flock on the map; a second open fails "in use" until the
// first object is destroyed).
//
// Thread-safety: none; the emulated drive that owns a loaded cartridge
// serializes access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace scsi::emu {

class Cartridge {
 public:
  static constexpr std::size_t kMaxBlock = 16u << 20;

  struct Attributes {
    std::string barcode;              // volume tag, at most 32 characters
    std::uint64_t capacity = 0;       // bytes of block data the cartridge holds
    std::uint64_t early_warning = 0;  // bytes of block data at which early warning begins
                                      // (0 < early_warning <= capacity)
    bool write_protected = false;
  };

  // Creates a new, blank cartridge at `path` (its map; the data file is
  // `path` + ".data").  Fails if `path` exists.
  static std::unique_ptr<Cartridge> create(const std::filesystem::path& path,
                                           const Attributes& attributes, std::string& error);

  // Opens an existing cartridge, recovering from a crash: a torn tail is
  // cut off.
  static std::unique_ptr<Cartridge> open(const std::filesystem::path& path, std::string& error);

  ~Cartridge();
  Cartridge(const Cartridge&) = delete;
  Cartridge& operator=(const Cartridge&) = delete;

  const Attributes& attributes() const;
  // Persisted; false if the superblock could not be written (the setting
  // holds for as long as this object lives, in any case).
  bool set_write_protected(bool on);

  // ---- position ----
  enum class Kind { kBlock, kFilemark, kEndOfData };
  struct Object {
    Kind kind = Kind::kEndOfData;
    std::uint32_t size = 0;  // bytes, for a block
  };

  std::uint64_t position() const;     // the object number the head is at
  std::uint64_t end_of_data() const;  // number of objects on the cartridge
  std::uint64_t file_number() const;  // filemarks before position()
  std::uint64_t filemarks() const;    // filemarks on the cartridge
  bool at_beginning() const { return position() == 0; }

  // What is at position() (kEndOfData at the end).  Does not move.  An
  // object whose entry cannot be read shows as a block of size 0, whose
  // read_block() fails.
  Object peek() const;

  // Moves to object `n` (n <= end_of_data(); false otherwise, and the
  // position is then unchanged).  Reads nothing.
  bool locate(std::uint64_t n);

  // The object number of the first filemark at or after object `from`, or
  // of the last one before `from`; nullopt if there is none (or if an
  // entry on the way cannot be read).
  std::optional<std::uint64_t> next_filemark(std::uint64_t from) const;
  std::optional<std::uint64_t> previous_filemark(std::uint64_t from) const;

  // ---- reading ----
  // Whether read_block() checks each block's CRC-32C (the default).  Off,
  // a block is read without it (its entry is checked in any case); the CRC
  // then protects against decay on the disk only when verified by open()'s
  // recovery scan.  Not persisted.
  void set_verify_reads(bool on);

  // Reads the block at position() into `out` (up to out.size() bytes) and
  // moves past it.  Returns its full size (which may exceed out.size()).
  // Precondition: peek().kind == kBlock.  false on an I/O error or a CRC
  // mismatch (the position then stays), with `error` set.
  bool read_block(std::span<std::uint8_t> out, std::uint32_t& size, std::string& error);

  // Moves past the object at position() (block or filemark); nothing at
  // end of data.
  void skip();

  // ---- writing (truncate at position(), then append) ----
  enum class WriteResult {
    kOk,
    kEarlyWarning,    // written; the cartridge is now past early warning
    kOverflow,        // not written: it would not fit
    kWriteProtected,  // not written
    kIoError,         // not written (or not completely: the tail is cut)
  };
  WriteResult write_block(std::span<const std::uint8_t> data, std::string& error);
  // Writes `data` as whole blocks of `size` bytes each, as consecutive
  // objects (a fixed-block WRITE): the blocks in one write, then their
  // entries.  `written` says how many blocks are on the cartridge when it
  // returns: all of them on kOk and kEarlyWarning; those that fit on
  // kOverflow; none on kIoError.  The same durability as write_block():
  // every block counted in `written` survives kill -9.
  WriteResult write_blocks(std::span<const std::uint8_t> data, std::uint32_t size,
                           std::uint32_t& written, std::string& error);
  WriteResult write_filemarks(std::uint32_t count, std::string& error);
  // Makes everything written durable (fdatasync of the data file, then of
  // the map).
  bool flush(std::string& error);
  // ERASE: discards position() and everything after it (EOD = position()).
  bool erase(std::string& error);

  // Objects that a sync (WRITE FILEMARKS, flush(), ERASE, an overwrite's
  // cut) has made durable, up to end_of_data(): what open() never cuts.
  std::uint64_t synced() const;

  // Bytes of block data up to end of data; true once past early warning.
  std::uint64_t bytes_used() const;
  bool past_early_warning() const;

 private:
  struct Impl;
  explicit Cartridge(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace scsi::emu
