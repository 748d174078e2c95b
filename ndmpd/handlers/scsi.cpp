// SCSI interface: OPEN, CLOSE, GET_STATE, RESET_DEVICE, EXECUTE_CDB, for
// changers and any other configured SCSI device (draft 3.3).  A device is
// exclusive to the session that opened it; a session has one device (tape
// or SCSI) open at a time.

#include <spdlog/spdlog.h>

#include <chrono>

#include "ndmpd/dispatch.h"
#include "ndmpd/handlers/cdb_passthrough.h"
#include "ndmpd/offload.h"

namespace ndmpd {

namespace asio = boost::asio;
using ndmp::xdr::Void;

namespace {

// The longest a command may take when the DMA asks for "no timeout".
constexpr auto kForever = std::chrono::hours(24);
constexpr std::uint32_t kMaxDataIn = 16u << 20;

Reply scsi_open(SessionContext& s, const ndmp4_scsi_open_request& req) {
  ndmp4_scsi_open_reply rep{};
  if (s.tape || s.scsi) {
    rep.error = NDMP4_DEVICE_OPENED_ERR;
    return Reply::with(rep);
  }
  const std::string name = req.device ? req.device : "";
  const tape::DeviceRegistry::Entry* entry =
      s.server.registry ? s.server.registry->find(name) : nullptr;
  if (!entry) {
    rep.error = NDMP4_NO_DEVICE_ERR;
    return Reply::with(rep);
  }
  if (!s.server.locks.acquire(name, s.id)) {
    spdlog::info("{} SCSI_OPEN {}: held by session {}", s.tag(), name,
                 s.server.locks.holder(name).value_or(0));
    rep.error = NDMP4_DEVICE_BUSY_ERR;
    return Reply::with(rep);
  }
  s.scsi = std::make_unique<OpenScsi>(OpenScsi{name, entry->device});
  spdlog::info("{} SCSI_OPEN {}", s.tag(), name);
  rep.error = NDMP4_NO_ERR;
  return Reply::with(rep);
}

Reply scsi_close(SessionContext& s, const Void&) {
  ndmp4_scsi_close_reply rep{};
  if (!s.scsi) {
    rep.error = NDMP4_DEV_NOT_OPEN_ERR;
    return Reply::with(rep);
  }
  spdlog::info("{} SCSI_CLOSE {}", s.tag(), s.scsi->name);
  s.server.locks.release(s.scsi->name, s.id);
  s.scsi.reset();
  rep.error = NDMP4_NO_ERR;
  return Reply::with(rep);
}

Reply scsi_get_state(SessionContext& s, const Void&) {
  ndmp4_scsi_get_state_reply rep{};
  if (!s.scsi) {
    rep.error = NDMP4_DEV_NOT_OPEN_ERR;
    return Reply::with(rep);
  }
  // No SCSI bus addresses here (emulated units, iSCSI LUNs): -1 for each.
  rep.error = NDMP4_NO_ERR;
  rep.target_controller = -1;
  rep.target_id = -1;
  rep.target_lun = -1;
  return Reply::with(rep);
}

asio::awaitable<Reply> scsi_reset_device(SessionContext& s, const Void&) {
  ndmp4_scsi_reset_device_reply rep{};
  if (!s.scsi) {
    rep.error = NDMP4_DEV_NOT_OPEN_ERR;
    co_return Reply::with(rep);
  }
  std::shared_ptr<scsi::Device> device = s.scsi->device;
  if (!device->can_reset()) {
    rep.error = NDMP4_NOT_SUPPORTED_ERR;
    co_return Reply::with(rep);
  }
  auto reset = [device] { return device->reset(); };  // named: see offload.h
  const scsi::Result r = co_await offload(s.server.workers, reset);
  if (!r.transport_error.empty()) {
    spdlog::warn("{} SCSI_RESET_DEVICE {}: {}", s.tag(), s.scsi->name, r.transport_error);
    rep.error = NDMP4_IO_ERR;
  } else {
    spdlog::info("{} SCSI_RESET_DEVICE {}", s.tag(), s.scsi->name);
    rep.error = NDMP4_NO_ERR;
  }
  co_return Reply::with(rep);
}

asio::awaitable<Reply> scsi_execute_cdb(SessionContext& s, const ndmp4_execute_cdb_request& req) {
  if (!s.scsi) {
    ndmp4_execute_cdb_reply rep{};
    rep.error = NDMP4_DEV_NOT_OPEN_ERR;
    co_return Reply::with(rep);
  }
  std::shared_ptr<scsi::Device> device = s.scsi->device;
  co_return co_await execute_cdb(s, *device, req);
}

}  // namespace

asio::awaitable<Reply> execute_cdb(SessionContext& s, scsi::Device& device,
                                   const ndmp4_execute_cdb_request& req) {
  ndmp4_execute_cdb_reply rep{};
  const bool in = req.flags & NDMP4_SCSI_DATA_IN;
  const bool out = req.flags & NDMP4_SCSI_DATA_OUT;
  if ((req.flags & ~(NDMP4_SCSI_DATA_IN | NDMP4_SCSI_DATA_OUT)) != 0 || (in && out) ||
      req.cdb.cdb_len == 0 || req.cdb.cdb_len > 16 || (in && req.datain_len > kMaxDataIn) ||
      (!out && req.dataout.dataout_len != 0)) {
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  scsi::Command cmd;
  cmd.cdb.assign(reinterpret_cast<const std::uint8_t*>(req.cdb.cdb_val),
                 reinterpret_cast<const std::uint8_t*>(req.cdb.cdb_val) + req.cdb.cdb_len);
  std::vector<std::uint8_t> data_in(in ? req.datain_len : 0);
  if (in) {
    cmd.direction = scsi::Direction::kIn;
    cmd.data_in = data_in;
  } else if (out) {
    cmd.direction = scsi::Direction::kOut;
    cmd.data_out = std::span(reinterpret_cast<const std::uint8_t*>(req.dataout.dataout_val),
                             req.dataout.dataout_len);
  }
  cmd.timeout = req.timeout == 0 ? std::chrono::milliseconds(kForever)
                                 : std::chrono::milliseconds(req.timeout);
  const auto start = std::chrono::steady_clock::now();
  const scsi::Result r =
      co_await offload(s.server.workers, [&device, &cmd] { return device.execute(cmd); });
  if (!r.transport_error.empty()) {
    const bool timed_out = std::chrono::steady_clock::now() - start >= cmd.timeout;
    spdlog::warn("{} EXECUTE_CDB {:#04x} on {}: {}", s.tag(), cmd.cdb[0], device.describe(),
                 r.transport_error);
    rep.error = timed_out ? NDMP4_TIMEOUT_ERR : NDMP4_IO_ERR;
    co_return Reply::with(rep);
  }
  rep.error = NDMP4_NO_ERR;
  rep.status = static_cast<u_char>(r.status);
  rep.dataout_len = out ? req.dataout.dataout_len : 0;
  rep.datain.datain_len = static_cast<u_int>(std::min(r.data_in, data_in.size()));
  rep.datain.datain_val = reinterpret_cast<char*>(data_in.data());
  rep.ext_sense.ext_sense_len = static_cast<u_int>(std::min<std::size_t>(r.sense.size(), 255));
  rep.ext_sense.ext_sense_val = reinterpret_cast<char*>(const_cast<std::uint8_t*>(r.sense.data()));
  co_return Reply::with(rep);
}

void register_scsi_handlers(Dispatcher& d) {
  d.on<NDMP4_SCSI_OPEN>(scsi_open);
  d.on<NDMP4_SCSI_CLOSE>(scsi_close);
  d.on<NDMP4_SCSI_GET_STATE>(scsi_get_state);
  d.on<NDMP4_SCSI_RESET_DEVICE>(scsi_reset_device);
  d.on<NDMP4_SCSI_EXECUTE_CDB>(scsi_execute_cdb);
}

}  // namespace ndmpd
