#include "tape/registry.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <set>

#include "scsi/emu/copy_manager.h"
#include "scsi/transport_iscsi.h"
#include "scsi/transport_sg.h"
#include "tape/changer_quirks.h"
#include "tape/tape_drive.h"

namespace tape {

namespace fs = std::filesystem;

std::string_view to_string(DeviceKind k) {
  switch (k) {
    case DeviceKind::kTape:
      return "tape";
    case DeviceKind::kChanger:
      return "changer";
    case DeviceKind::kDisk:
      return "disk";
    case DeviceKind::kCopyManager:
      return "copy_manager";
    case DeviceKind::kOther:
      return "other";
  }
  return "?";
}

std::unique_ptr<scsi::Device> open_device(const std::string& address, std::string& error) {
  if (address.rfind("iscsi://", 0) == 0) return scsi::open_iscsi(address, error);
  if (address.rfind("/dev/", 0) == 0) return scsi::open_sg(address, error);
  error = "not an iscsi:// URL or a /dev/ path: " + address;
  return nullptr;
}

namespace {

// A real device that is (re)opened on use until it answers, so that a LUN
// that was away at start-up works once it is back.
class ReopeningDevice : public scsi::Device {
 public:
  ReopeningDevice(std::string address, std::unique_ptr<scsi::Device> first)
      : address_(std::move(address)), device_(std::move(first)) {}

  scsi::Result execute(const scsi::Command& command) override {
    scsi::Device* d = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (!device_) {
        std::string error;
        device_ = open_device(address_, error);
        if (!device_) {
          scsi::Result r;
          r.transport_error = "cannot open " + address_ + ": " + error;
          return r;
        }
      }
      d = device_.get();
    }
    // The device itself serializes its commands; it is never replaced while
    // it exists, so `d` stays valid.
    return d->execute(command);
  }
  bool can_reset() const override {
    std::lock_guard lock(mutex_);
    return !device_ || device_->can_reset();
  }
  scsi::Result reset() override {
    scsi::Device* d = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (!device_) {
        scsi::Result r;
        r.transport_error = "cannot reset " + address_ + ": not open";
        return r;
      }
      d = device_.get();
    }
    return d->reset();
  }
  std::string describe() const override { return address_; }

 private:
  std::string address_;
  mutable std::mutex mutex_;
  std::unique_ptr<scsi::Device> device_;
};

}  // namespace

bool DeviceRegistry::installation_id(const fs::path& state_dir, scsi::Bytes& id,
                                     std::string& error) {
  const fs::path file = state_dir / "installation-id";
  std::ifstream in(file);
  std::string hex;
  if (in && std::getline(in, hex) && hex.size() == 32 &&
      hex.find_first_not_of("0123456789abcdef") == std::string::npos) {
    id.clear();
    for (std::size_t i = 0; i < 32; i += 2) {
      id.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return true;
  }
  id.assign(16, 0);
  if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) {
    error = "no random bytes for the installation id";
    return false;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  hex.clear();
  for (std::uint8_t b : id) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 15]);
  }
  std::ofstream out(file, std::ios::trunc);
  out << hex << "\n";
  if (!out.flush()) {
    error = file.string() + ": cannot write";
    return false;
  }
  return true;
}

bool DeviceRegistry::add(Entry e, std::string& error) {
  if (find(e.name)) {
    error = "device name '" + e.name + "' is used twice";
    return false;
  }
  if (!e.identity) {
    Status s;
    e.identity = inquire_identity(*e.device, &s, std::chrono::seconds(10));
    if (!e.identity) {
      spdlog::warn("device {} ({}) does not answer INQUIRY: {}", e.name, e.device->describe(),
                   s.describe());
    }
  }
  if (e.identity) {
    spdlog::info("device {}: {} {} {} serial {} ({})", e.name, to_string(e.kind),
                 e.identity->vendor, e.identity->product, e.identity->serial, e.device->describe());
  }
  entries_.push_back(std::move(e));
  return true;
}

std::unique_ptr<DeviceRegistry> DeviceRegistry::open(const RegistrySpec& spec, std::string& error) {
  std::unique_ptr<DeviceRegistry> reg(new DeviceRegistry());
  scsi::Bytes id;
  if (!installation_id(spec.state_dir, id, error)) return nullptr;
  auto in_state = [&](const fs::path& p) { return p.is_absolute() ? p : spec.state_dir / p; };

  for (scsi::emu::LibrarySpec lib_spec : spec.libraries) {
    lib_spec.dir = in_state(lib_spec.dir);
    std::unique_ptr<scsi::emu::VirtualLibrary> lib =
        scsi::emu::VirtualLibrary::open(lib_spec, id, error);
    if (!lib) return nullptr;
    auto changer = std::make_shared<scsi::emu::EmulatedDevice>(lib->changer(), lib->changer_name());
    if (!reg->add({lib->changer_name(), DeviceKind::kChanger, changer, std::nullopt, true},
                  error)) {
      return nullptr;
    }
    for (std::size_t i = 0; i < lib->drives().size(); ++i) {
      auto drive =
          std::make_shared<scsi::emu::EmulatedDevice>(lib->drives()[i], lib->drive_name(i));
      if (!reg->add({lib->drive_name(i), DeviceKind::kTape, drive, std::nullopt, true}, error)) {
        return nullptr;
      }
    }
    reg->libraries_.push_back(std::move(lib));
  }
  for (const DiskSpec& d : spec.disks) {
    const fs::path path = in_state(d.path);
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    auto disk = scsi::emu::SbcDisk::open(scsi::emu::make_identity(0x00, "VIRTUAL DISK", id, d.name),
                                         path, d.size, d.block_length, error);
    if (!disk) {
      error = "disk " + d.name + ": " + error;
      return nullptr;
    }
    auto dev = std::make_shared<scsi::emu::EmulatedDevice>(disk, d.name);
    if (!reg->add({d.name, DeviceKind::kDisk, dev, std::nullopt, true}, error)) return nullptr;
  }
  // Copy managers come after the disks and tapes, and before the real
  // devices only because their resolver reads the registry when a copy
  // runs, not now: every entry added below is reachable too.
  for (const CopyManagerSpec& m : spec.copy_managers) {
    scsi::emu::UnitIdentity identity = scsi::emu::make_identity(0x03, "COPY MANAGER", id, m.name);
    identity.third_party_copy = true;
    const DeviceRegistry* self = reg.get();
    auto unit = std::make_shared<scsi::emu::CopyManagerUnit>(
        std::move(identity),
        [self](const scsi::xcopy::TargetDescriptor& t) { return self->resolve(t); }, m.settings);
    auto dev = std::make_shared<scsi::emu::EmulatedDevice>(unit, m.name);
    if (!reg->add({m.name, DeviceKind::kCopyManager, dev, std::nullopt, true}, error)) {
      return nullptr;
    }
  }
  for (const ExternalSpec& x : spec.devices) {
    std::string why;
    std::unique_ptr<scsi::Device> first = open_device(x.address, why);
    if (!first && x.address.rfind("iscsi://", 0) != 0 && x.address.rfind("/dev/", 0) != 0) {
      error = x.origin + ": " + why;
      return nullptr;
    }
    if (!first) spdlog::warn("device {} ({}): {}; will retry on use", x.name, x.address, why);
    std::shared_ptr<scsi::Device> dev =
        std::make_shared<ReopeningDevice>(x.address, std::move(first));
    // A changer whose element status reports need rebuilding gets them
    // rebuilt (changer_quirks.h); others pass through it untouched.
    if (x.kind == DeviceKind::kChanger) dev = std::make_shared<ElementStatusRepair>(dev);
    if (!reg->add({x.name, x.kind, dev, std::nullopt, false}, error)) return nullptr;
  }
  return reg;
}

const DeviceRegistry::Entry* DeviceRegistry::find(const std::string& name) const {
  for (const Entry& e : entries_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::shared_ptr<scsi::Device> DeviceRegistry::resolve(
    const scsi::xcopy::TargetDescriptor& target) const {
  if (target.nul || target.designator.empty()) return nullptr;
  auto matches = [&](const scsi::Identity& id) {
    return id.designator == target.designator && id.designator_type == target.designator_type &&
           id.peripheral_type == target.peripheral_type;
  };
  for (const Entry& e : entries_) {
    if (e.kind != DeviceKind::kDisk && e.kind != DeviceKind::kTape) continue;
    if (e.identity) {
      if (matches(*e.identity)) return e.device;
      continue;
    }
    // A real device that was away at start-up: ask it now, once it answers.
    std::optional<scsi::Identity> id;
    {
      std::lock_guard lock(late_mutex_);
      if (auto it = late_identities_.find(e.name); it != late_identities_.end()) id = it->second;
    }
    if (!id) {
      id = inquire_identity(*e.device, nullptr, std::chrono::seconds(10));
      if (!id) continue;
      std::lock_guard lock(late_mutex_);
      late_identities_[e.name] = *id;
    }
    if (matches(*id)) return e.device;
  }
  return nullptr;
}

std::vector<const DeviceRegistry::Entry*> DeviceRegistry::of(DeviceKind kind) const {
  std::vector<const Entry*> out;
  for (const Entry& e : entries_) {
    if (e.kind == kind) out.push_back(&e);
  }
  return out;
}

}  // namespace tape
