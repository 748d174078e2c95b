// The virtual tape library of the embedded default: an SMC changer, its
// SSC drives and a set of cartridges, all under one directory of the state
// directory.  Created on first start from its specification; its
// inventory (which cartridge is in which element) survives restarts.
//
// Layout of `dir`:
//   cartridges/BARCODE.tape (+ .idx)   one file per cartridge (cartridge.h)
//   inventory                          "ADDRESS BARCODE SOURCE" per full element,
//                                      rewritten atomically (temp, fsync, rename)
//
// Element addresses: transport 1; import/export 16..; drives 256..;
// storage slots 1024...
//
// Thread-safety: open() once; the units it returns are thread-safe.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "scsi/emu/smc_changer.h"
#include "scsi/emu/ssc_drive.h"

namespace scsi::emu {

struct CartridgeSpec {
  std::string barcode;
  std::uint64_t capacity = 0;
  std::uint64_t early_warning = 0;  // bytes of data at which early warning begins
  bool write_protected = false;
};

struct LibrarySpec {
  std::string name;  // "vtl0": units are "vtl0.changer", "vtl0.drive0"...
  std::filesystem::path dir;
  unsigned drives = 2;
  unsigned slots = 16;
  unsigned import_export = 1;
  bool verify_reads = true;               // the drives check every block's CRC on read
  std::vector<CartridgeSpec> cartridges;  // new ones go into the first free slots
};

class VirtualLibrary {
 public:
  static constexpr std::uint16_t kTransportAddress = 1;
  static constexpr std::uint16_t kFirstImportExport = 16;
  static constexpr std::uint16_t kFirstDrive = 256;
  static constexpr std::uint16_t kFirstSlot = 1024;

  static std::unique_ptr<VirtualLibrary> open(const LibrarySpec& spec,
                                              std::span<const std::uint8_t> installation_id,
                                              std::string& error);

  const std::string& name() const { return name_; }
  const std::shared_ptr<SmcChanger>& changer() const { return changer_; }
  const std::vector<std::shared_ptr<SscDrive>>& drives() const { return drives_; }
  std::string changer_name() const { return name_ + ".changer"; }
  std::string drive_name(std::size_t i) const { return name_ + ".drive" + std::to_string(i); }

  // The file of a cartridge.
  std::filesystem::path cartridge_path(const std::string& barcode) const;

 private:
  VirtualLibrary() = default;

  std::string name_;
  std::filesystem::path dir_;
  std::shared_ptr<SmcChanger> changer_;
  std::vector<std::shared_ptr<SscDrive>> drives_;
};

}  // namespace scsi::emu
