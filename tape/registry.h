// The device registry: the names DMAs pass to TAPE_OPEN and SCSI_OPEN,
// each mapped to a scsi::Device on any transport (the embedded virtual
// library and SAN, or real LUNs over sg or iscsi), with the inquiry data
// that CONFIG_GET_TAPE_INFO and GET_SCSI_INFO report.
//
// Copy managers are devices too (kind copy_manager): the emulated one runs
// a CopyEngine whose target descriptors resolve to this registry's disks
// and tapes by their VPD 83h designators; a real one is reached like any
// other real device.
//
// Built once at start-up from a RegistrySpec (the configuration's device
// sections); afterwards read-only and safe from any thread.  A real device
// that cannot be reached at start-up is still registered: it is opened
// again on each use until it answers.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "scsi/copy_engine.h"
#include "scsi/device.h"
#include "scsi/emu/library.h"
#include "scsi/emu/sbc_disk.h"

namespace tape {

enum class DeviceKind { kTape, kChanger, kDisk, kCopyManager, kOther };
std::string_view to_string(DeviceKind k);

// A disk LUN of the virtual SAN.
struct DiskSpec {
  std::string name;
  std::filesystem::path path;  // relative: in the state directory
  std::uint64_t size = 0;      // bytes, for a file that does not exist yet
  std::uint32_t block_length = 512;
};

// A real device: "iscsi://host:port/iqn/lun" or a /dev/sg* or /dev/bsg/* path.
struct ExternalSpec {
  std::string name;
  DeviceKind kind = DeviceKind::kTape;
  std::string address;
  std::string origin;  // where it was configured, for messages
};

// An emulated copy manager (a processor LUN answering EXTENDED COPY) over
// the registry's disks and tapes.
struct CopyManagerSpec {
  std::string name;
  scsi::xcopy::EngineSettings settings;
};

struct RegistrySpec {
  std::filesystem::path state_dir;
  std::vector<scsi::emu::LibrarySpec> libraries;  // dir relative: in the state directory
  std::vector<DiskSpec> disks;
  std::vector<CopyManagerSpec> copy_managers;
  std::vector<ExternalSpec> devices;
};

class DeviceRegistry {
 public:
  struct Entry {
    std::string name;
    DeviceKind kind;
    std::shared_ptr<scsi::Device> device;
    std::optional<scsi::Identity> identity;  // from INQUIRY; empty if it did not answer
    bool emulated = false;
  };

  // Creates the emulated devices (first start: their files too) and opens
  // the real ones.  Fails on a configuration that cannot work (a bad
  // library, a duplicate name); an unreachable real device is a warning.
  static std::unique_ptr<DeviceRegistry> open(const RegistrySpec& spec, std::string& error);

  const Entry* find(const std::string& name) const;
  const std::vector<Entry>& entries() const { return entries_; }
  std::vector<const Entry*> of(DeviceKind kind) const;

  // The virtual libraries (tests reach their drives and changer directly).
  const std::vector<std::unique_ptr<scsi::emu::VirtualLibrary>>& libraries() const {
    return libraries_;
  }

  // The per-installation id that makes emulated designators unique
  // (state_dir/installation-id, created on first start).
  static bool installation_id(const std::filesystem::path& state_dir, scsi::Bytes& id,
                              std::string& error);

  // The disk or tape of this registry that a target descriptor names: the
  // same designator (type and value) and peripheral device type as its
  // VPD 83h reports.  Null if none (or the descriptor is NUL).  What the
  // emulated copy managers resolve with; thread-safe.
  std::shared_ptr<scsi::Device> resolve(const scsi::xcopy::TargetDescriptor& target) const;

 private:
  bool add(Entry e, std::string& error);

  std::vector<std::unique_ptr<scsi::emu::VirtualLibrary>> libraries_;
  std::vector<Entry> entries_;
  // Identities of real devices that did not answer at start-up, learned
  // when a copy first needs them.
  mutable std::mutex late_mutex_;
  mutable std::map<std::string, scsi::Identity> late_identities_;
};

// Opens a real device by address (iscsi:// URL or a device path).
std::unique_ptr<scsi::Device> open_device(const std::string& address, std::string& error);

}  // namespace tape
