// The emulated SSC tape drive: a sequential-access logical unit over a
// Cartridge file.  Variable and fixed block modes (MODE SELECT block
// descriptor, READ BLOCK LIMITS), READ with ILI and FILEMARK sense and the
// right INFORMATION field, end of data as BLANK CHECK 00/05, early warning
// (EOM, 00/02) and VOLUME OVERFLOW, write protection (DATA PROTECT 27/00),
// READ POSITION (short and long), LOCATE(10/16), SPACE(6/16), WRITE
// FILEMARKS, ERASE, REWIND, LOAD UNLOAD, TEST UNIT READY (NOT READY 3A/00
// when empty), PREVENT ALLOW MEDIUM REMOVAL, LOG SENSE (tape capacity).
//
// A cartridge comes and goes through insert()/remove() (the changer moves
// it); inserting one raises UNIT ATTENTION 28/00 as a real drive does.
//
// Thread-safety: as LogicalUnit; insert()/remove() may be called from any
// thread (they take the unit's mutex).
#pragma once

#include <memory>

#include "scsi/emu/cartridge.h"
#include "scsi/emu/logical_unit.h"

namespace scsi::emu {

class SscDrive : public LogicalUnit {
 public:
  static constexpr std::uint32_t kMaxBlockLength = 8u << 20;  // READ BLOCK LIMITS

  explicit SscDrive(UnitIdentity identity);
  ~SscDrive() override;

  // Puts a cartridge into the drive: loaded, at the beginning, and a unit
  // attention (not ready to ready transition) for the next command.
  // REQUIRES: the drive is empty.
  void insert(std::unique_ptr<Cartridge> cartridge);

  // Takes the cartridge out (what was written is flushed first).  Null if
  // the drive is empty or an initiator prevents medium removal (then
  // `error` says which).
  std::unique_ptr<Cartridge> remove(std::string& error);

  // Whether reads check each block's CRC-32C (the default; see
  // Cartridge::set_verify_reads).  Applies to the cartridge inside and to
  // every one inserted later.
  void set_verify_reads(bool on);

  bool has_cartridge() const;
  std::string barcode() const;  // of the cartridge inside, or ""

 protected:
  Result execute_class(std::span<const std::uint8_t> cdb, std::span<const std::uint8_t> data_out,
                       std::span<std::uint8_t> data_in) override;
  Result test_unit_ready() override;
  Bytes vpd_page(std::uint8_t page) const override;
  std::vector<std::uint8_t> extra_vpd_pages() const override { return {0xB0}; }
  void reset_class() override { prevent_removal_ = false; }

 private:
  Result not_ready() const;
  Result read6(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in);
  Result write6(std::span<const std::uint8_t> cdb, std::span<const std::uint8_t> data_out);
  Result write_filemarks(std::span<const std::uint8_t> cdb);
  Result space(int code, std::int64_t count);
  Result locate(std::uint64_t object);
  Result read_position(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in);
  Result load_unload(std::span<const std::uint8_t> cdb);
  Result log_sense(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in);
  Result mode_sense(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in);
  Result mode_select(std::span<const std::uint8_t> cdb, std::span<const std::uint8_t> data_out);
  Result medium_error(std::uint8_t asc, std::uint8_t ascq, const std::string& why);
  Bytes mode_pages(std::uint8_t page, std::uint8_t control, bool& known) const;

  std::unique_ptr<Cartridge> cartridge_;
  bool loaded_ = false;             // threaded and ready (LOAD UNLOAD unloads)
  std::uint32_t block_length_ = 0;  // 0: variable block mode
  bool prevent_removal_ = false;
  bool verify_reads_ = true;
  std::string last_error_;  // for logs
};

}  // namespace scsi::emu
