#include "ndmpd/server_context.h"

#include "xdr/ndmp4_wire.h"

namespace ndmpd {

namespace {

std::string hex(const scsi::Bytes& b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (std::uint8_t x : b) {
    s.push_back(kHex[x >> 4]);
    s.push_back(kHex[x & 15]);
  }
  return s;
}

DeviceDescription describe(const tape::DeviceRegistry::Entry& e) {
  DeviceDescription d;
  d.name = e.name;
  if (e.identity) {
    d.model = e.identity->vendor + " " + e.identity->product;
    if (!e.identity->serial.empty())
      d.capabilities.emplace_back("SERIAL_NUMBER", e.identity->serial);
    if (!e.identity->designator.empty()) {
      d.capabilities.emplace_back("DESIGNATOR", hex(e.identity->designator));
    }
  } else {
    d.model = "unavailable";
  }
  d.capabilities.emplace_back("DEVICE_TYPE", std::string(tape::to_string(e.kind)));
  d.capabilities.emplace_back("TRANSPORT", e.device->describe());
  if (e.kind == tape::DeviceKind::kTape) {
    // What TAPE_MTIO REW and OFF and TAPE_OPEN's RAW mode do on this drive.
    d.attr = NDMP4_TAPE_ATTR_REWIND | NDMP4_TAPE_ATTR_UNLOAD | NDMP4_TAPE_ATTR_RAW;
  }
  return d;
}

}  // namespace

void ServerContext::attach(std::shared_ptr<tape::DeviceRegistry> devices) {
  registry = std::move(devices);
  tapes.clear();
  changers.clear();
  if (!registry) return;
  for (const tape::DeviceRegistry::Entry& e : registry->entries()) {
    if (e.kind == tape::DeviceKind::kTape) {
      tapes.push_back(describe(e));
    } else {
      changers.push_back(describe(e));  // robots and every other SCSI device
    }
  }
}

}  // namespace ndmpd
