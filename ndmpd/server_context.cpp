#include "ndmpd/server_context.h"

#include <spdlog/spdlog.h>

#include "xdr/ndmp4_wire.h"

namespace ndmpd {

mover::AddressPolicy ServerContext::make_data_policy(const Config& cfg) {
  std::vector<std::string> hosts;
  for (const std::string& l : cfg.listen) {
    std::string host;
    std::uint16_t port = 0;
    if (parse_listen_address(l, host, port)) hosts.push_back(host.empty() ? "0.0.0.0" : host);
  }
  std::string error;
  std::optional<mover::AddressPolicy> p = mover::AddressPolicy::make(
      cfg.data_allow, cfg.data_listen_addresses, hosts, mover::interface_addresses(), error);
  if (!p) {
    // load_config() checked the entries; a listen address may still fail.
    spdlog::error("data connections: {}; allowing loopback only", error);
    p = mover::AddressPolicy::make({"127.0.0.0/8", "::1"}, {}, {"127.0.0.1"}, {}, error);
  }
  spdlog::info("data connections allowed with {}", p->describe());
  return *p;
}

mover::Settings ServerContext::make_mover_settings(const Config& cfg) {
  mover::Settings s;
  s.max_record_size = cfg.mover_max_record_bytes;
  s.buffer_bytes = cfg.mover_buffer_bytes;
  s.socket_buffer_bytes = cfg.data_socket_buffer_bytes;
  s.connect_timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg.data_connect_timeout);
  s.port_low = cfg.data_port_low;
  s.port_high = cfg.data_port_high;
  return s;
}

DataSettings ServerContext::make_data_settings(const Config& cfg) {
  DataSettings d;
  d.link = make_mover_settings(cfg);
  d.buffer_bytes = cfg.mover_buffer_bytes;
  d.progress_interval = cfg.data_progress_interval;
  return d;
}

std::vector<data::ExportedFs> ServerContext::make_exports(const Config& cfg) {
  std::vector<data::ExportedFs> out;
  for (const Export& e : cfg.exports) out.push_back({e.name, e.path});
  return out;
}

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
