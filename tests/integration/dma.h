// A DMA for the integration tests: a logged-in session with helpers for
// the tape, SCSI and robot calls, and the shipped configuration's library.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "daemon.h"
#include "ndmpd/client/client.h"

namespace ndmpd::itest {

using ndmp::client::Client;
using ndmp::xdr::Bytes;
using testing::Daemon;

constexpr std::uint16_t kDrive0 = 256, kDrive1 = 257, kFirstSlot = 1024;

// A session logged in to a daemon, with helpers for the tape and SCSI calls.
class Dma {
 public:
  explicit Dma(const Daemon& d) {
    c.connect(d.address());
    c.open_and_login_md5(d.user(), d.password());
  }

  ndmp4_error open(const std::string& device, ndmp4_tape_open_mode mode) {
    ndmp4_tape_open_request r{const_cast<char*>(device.c_str()), mode};
    return c.call<NDMP4_TAPE_OPEN>(r).error();
  }
  ndmp4_error close() { return c.call<NDMP4_TAPE_CLOSE>().error(); }
  std::pair<ndmp4_error, std::uint32_t> mtio(ndmp4_tape_mtio_op op, std::uint32_t count) {
    ndmp4_tape_mtio_request r{op, count};
    const auto rep = c.call<NDMP4_TAPE_MTIO>(r);
    return {rep.error(), rep.header_error == NDMP4_NO_ERR ? rep->resid_count : 0};
  }
  ndmp4_error mtio_ok(ndmp4_tape_mtio_op op, std::uint32_t count) { return mtio(op, count).first; }
  std::pair<ndmp4_error, std::uint32_t> write(const Bytes& data) {
    ndmp4_tape_write_request r{};
    r.data_out.data_out_len = static_cast<u_int>(data.size());
    r.data_out.data_out_val = reinterpret_cast<char*>(const_cast<std::uint8_t*>(data.data()));
    const auto rep = c.call<NDMP4_TAPE_WRITE>(r);
    return {rep.error(), rep.header_error == NDMP4_NO_ERR ? rep->count : 0};
  }
  std::pair<ndmp4_error, Bytes> read(std::uint32_t count) {
    ndmp4_tape_read_request r{count};
    const auto rep = c.call<NDMP4_TAPE_READ>(r);
    Bytes data;
    if (rep.header_error == NDMP4_NO_ERR) {
      data.assign(rep->data_in.data_in_val, rep->data_in.data_in_val + rep->data_in.data_in_len);
    }
    return {rep.error(), data};
  }
  ndmp::client::Response<ndmp4_tape_get_state_reply> state() {
    return c.call<NDMP4_TAPE_GET_STATE>();
  }
  // (file_num, blockno), ~0u where GET_STATE says it is not known.
  std::pair<std::uint32_t, std::uint32_t> where() {
    const auto s = state();
    EXPECT_EQ(s.error(), NDMP4_NO_ERR);
    return {(s->unsupported & NDMP4_TAPE_STATE_FILE_NUM_UNS) ? ~0u : s->file_num,
            (s->unsupported & NDMP4_TAPE_STATE_BLOCKNO_UNS) ? ~0u : s->blockno};
  }

  ndmp4_error scsi_open(const std::string& device) {
    ndmp4_scsi_open_request o{const_cast<char*>(device.c_str())};
    return c.call<NDMP4_SCSI_OPEN>(o).error();
  }
  ndmp4_error scsi_close() { return c.call<NDMP4_SCSI_CLOSE>().error(); }

  // EXECUTE_CDB on the tape (`tape`) or the SCSI device.
  struct Cdb {
    ndmp4_error error = NDMP4_NO_ERR;
    std::uint8_t status = 0;
    Bytes data, sense;
    std::uint32_t dataout_len = 0;
  };
  Cdb cdb(bool tape, const Bytes& cdb, std::uint32_t flags, std::uint32_t datain_len,
          const Bytes& out = {}, std::uint32_t timeout_ms = 60000) {
    ndmp4_execute_cdb_request x{};
    x.flags = flags;
    x.timeout = timeout_ms;
    x.datain_len = datain_len;
    x.cdb.cdb_len = static_cast<u_int>(cdb.size());
    x.cdb.cdb_val = reinterpret_cast<char*>(const_cast<std::uint8_t*>(cdb.data()));
    x.dataout.dataout_len = static_cast<u_int>(out.size());
    x.dataout.dataout_val = reinterpret_cast<char*>(const_cast<std::uint8_t*>(out.data()));
    const auto r = tape ? c.call<NDMP4_TAPE_EXECUTE_CDB>(x) : c.call<NDMP4_SCSI_EXECUTE_CDB>(x);
    Cdb out_;
    out_.error = r.error();
    if (r.header_error == NDMP4_NO_ERR && r.error() == NDMP4_NO_ERR) {
      out_.status = r->status;
      out_.dataout_len = r->dataout_len;
      out_.data.assign(r->datain.datain_val, r->datain.datain_val + r->datain.datain_len);
      out_.sense.assign(r->ext_sense.ext_sense_val,
                        r->ext_sense.ext_sense_val + r->ext_sense.ext_sense_len);
    }
    return out_;
  }

  // MOVE MEDIUM through the changer (SCSI_OPEN, EXECUTE_CDB, SCSI_CLOSE).
  ndmp4_error move(std::uint16_t from, std::uint16_t to) {
    if (const auto e = scsi_open("vtl0.changer"); e != NDMP4_NO_ERR) return e;
    const Cdb r = cdb(false, move_medium(from, to), 0, 0);
    scsi_close();
    if (r.error != NDMP4_NO_ERR) return r.error;
    return r.status == 0 ? NDMP4_NO_ERR : NDMP4_IO_ERR;
  }
  static Bytes move_medium(std::uint16_t from, std::uint16_t to) {
    return {0xA5,
            0,
            0,
            0,
            static_cast<std::uint8_t>(from >> 8),
            static_cast<std::uint8_t>(from),
            static_cast<std::uint8_t>(to >> 8),
            static_cast<std::uint8_t>(to),
            0,
            0,
            0,
            0};
  }

  // ---- MOVER requests
  ndmp4_error record_size(std::uint32_t n) {
    ndmp4_mover_set_record_size_request r{n};
    return c.call<NDMP4_MOVER_SET_RECORD_SIZE>(r).error();
  }
  ndmp4_error window(std::uint64_t offset, std::uint64_t length) {
    ndmp4_mover_set_window_request r{offset, length};
    return c.call<NDMP4_MOVER_SET_WINDOW>(r).error();
  }
  // LISTEN over TCP: the first offered (ip, port), or the error.
  std::pair<ndmp4_error, std::pair<std::uint32_t, std::uint16_t>> listen(
      ndmp4_mover_mode mode, ndmp4_addr_type type = NDMP4_ADDR_TCP) {
    ndmp4_mover_listen_request r{mode, type};
    const auto rep = c.call<NDMP4_MOVER_LISTEN>(r);
    if (rep.error() != NDMP4_NO_ERR) return {rep.error(), {0, 0}};
    EXPECT_EQ(rep->connect_addr.addr_type, type);
    if (type != NDMP4_ADDR_TCP) return {NDMP4_NO_ERR, {0, 0}};
    const auto& list = rep->connect_addr.ndmp4_addr_u.tcp_addr;
    EXPECT_GE(list.tcp_addr_len, 1u);
    if (list.tcp_addr_len == 0) return {NDMP4_IO_ERR, {0, 0}};
    return {NDMP4_NO_ERR, {list.tcp_addr_val[0].ip_addr, list.tcp_addr_val[0].port}};
  }
  ndmp4_error connect(ndmp4_mover_mode mode, std::uint32_t ip, std::uint16_t port) {
    ndmp4_tcp_addr t{};
    t.ip_addr = ip;
    t.port = port;
    ndmp4_mover_connect_request r{};
    r.mode = mode;
    r.addr.addr_type = NDMP4_ADDR_TCP;
    r.addr.ndmp4_addr_u.tcp_addr.tcp_addr_len = 1;
    r.addr.ndmp4_addr_u.tcp_addr.tcp_addr_val = &t;
    return c.call<NDMP4_MOVER_CONNECT>(r).error();
  }
  ndmp::client::Response<ndmp4_mover_get_state_reply> mover() {
    return c.call<NDMP4_MOVER_GET_STATE>();
  }
  ndmp4_error read_range(std::uint64_t offset, std::uint64_t length) {
    ndmp4_mover_read_request r{offset, length};
    return c.call<NDMP4_MOVER_READ>(r).error();
  }
  ndmp4_error cont() { return c.call<NDMP4_MOVER_CONTINUE>().error(); }
  ndmp4_error abort() { return c.call<NDMP4_MOVER_ABORT>().error(); }
  ndmp4_error stop() { return c.call<NDMP4_MOVER_STOP>().error(); }
  ndmp4_error mover_close() { return c.call<NDMP4_MOVER_CLOSE>().error(); }

  Client c{std::chrono::seconds(30)};
};

inline Bytes pattern(std::size_t n, int seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + seed + (i >> 9));
  return b;
}

// The shipped configuration with `from` replaced by `to` (which must be there).
inline std::string shipped_config_with(const std::string& from, const std::string& to) {
  std::ifstream in(std::string(NDMPD_SOURCE_DIR) + "/conf/ndmpd.toml");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// The fixed-format sense key and ASC of a CHECK CONDITION.
inline std::pair<int, int> key_asc(const Bytes& sense) {
  if (sense.size() < 14 || (sense[0] & 0x7F) < 0x70 || (sense[0] & 0x7F) > 0x71) return {-1, -1};
  return {sense[2] & 0x0F, sense[12]};
}

}  // namespace ndmpd::itest
