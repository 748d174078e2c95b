// The emulated SBC disk of the virtual SAN: a direct-access logical unit
// over a file or a block device.  READ CAPACITY(10/16), READ and WRITE
// (10/16), SYNCHRONIZE CACHE(10/16), MODE SENSE (caching and control
// pages), VPD B0h (block limits) and B1h (block device characteristics).
//
// Thread-safety: as LogicalUnit.  The backing file is accessed with
// pread/pwrite, so reads and writes of the unit are serialized by the
// unit's mutex only.
#pragma once

#include <filesystem>
#include <memory>

#include "scsi/emu/logical_unit.h"

namespace scsi::emu {

class SbcDisk : public LogicalUnit {
 public:
  static constexpr std::uint32_t kMaxTransferBlocks = 65536;

  // Opens (creating a sparse file of `size` bytes if it does not exist; a
  // block device or an existing file keeps its size) the backing store.
  static std::shared_ptr<SbcDisk> open(UnitIdentity identity, const std::filesystem::path& path,
                                       std::uint64_t size, std::uint32_t block_length,
                                       std::string& error);
  ~SbcDisk() override;

  std::uint64_t blocks() const { return blocks_; }
  std::uint32_t block_length() const { return block_length_; }

 protected:
  Result execute_class(std::span<const std::uint8_t> cdb, std::span<const std::uint8_t> data_out,
                       std::span<std::uint8_t> data_in) override;
  Bytes vpd_page(std::uint8_t page) const override;
  std::vector<std::uint8_t> extra_vpd_pages() const override { return {0xB0, 0xB1}; }

 private:
  SbcDisk(UnitIdentity identity, int fd, std::uint64_t blocks, std::uint32_t block_length);
  Result transfer(bool write, std::uint64_t lba, std::uint32_t count, std::uint16_t length_field,
                  std::span<const std::uint8_t> data_out, std::span<std::uint8_t> data_in);
  Result mode_sense(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in);

  int fd_;
  std::uint64_t blocks_;
  std::uint32_t block_length_;
};

}  // namespace scsi::emu
