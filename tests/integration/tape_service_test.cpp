// The NDMP tape service over TCP against the embedded library: every error
// TAPE_* can answer, positions as TAPE_GET_STATE reports them, and devices
// released when their session ends by any path.

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "daemon.h"
#include "ndmpd/client/client.h"

namespace ndmpd {
namespace {

using namespace std::chrono_literals;
using ndmp::client::Client;
using ndmp::xdr::Bytes;
using testing::Daemon;

// A session logged in to a daemon, with helpers for the tape calls.
class TapeClient {
 public:
  explicit TapeClient(const Daemon& d) {
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
  // Loads the cartridge in `slot` into the drive element `drive` through
  // the changer (SCSI_OPEN, MOVE MEDIUM, SCSI_CLOSE).
  ndmp4_error move(std::uint16_t from, std::uint16_t to) {
    ndmp4_scsi_open_request o{const_cast<char*>("vtl0.changer")};
    if (const auto e = c.call<NDMP4_SCSI_OPEN>(o).error(); e != NDMP4_NO_ERR) return e;
    std::uint8_t cdb[12] = {0xA5, 0, 0, 0, static_cast<std::uint8_t>(from >> 8),
                            static_cast<std::uint8_t>(from), static_cast<std::uint8_t>(to >> 8),
                            static_cast<std::uint8_t>(to), 0, 0, 0, 0};
    ndmp4_execute_cdb_request x{};
    x.timeout = 60000;
    x.cdb.cdb_len = sizeof cdb;
    x.cdb.cdb_val = reinterpret_cast<char*>(cdb);
    const auto r = c.call<NDMP4_SCSI_EXECUTE_CDB>(x);
    c.call<NDMP4_SCSI_CLOSE>();
    if (r.error() != NDMP4_NO_ERR) return r.error();
    return r->status == 0 ? NDMP4_NO_ERR : NDMP4_IO_ERR;
  }

  Client c{std::chrono::seconds(30)};
};

Bytes pattern(std::size_t n, int seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + seed);
  return b;
}

class TapeService : public ::testing::Test {
 protected:
  void SetUp() override {
    TapeClient robot(daemon_);
    ASSERT_EQ(robot.move(1024, 256), NDMP4_NO_ERR);  // NDMP001L6 into vtl0.drive0
  }
  Daemon daemon_;
};

TEST_F(TapeService, WriteCloseReopenReadBack) {
  TapeClient t(daemon_);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(t.mtio(NDMP4_MTIO_REW, 1).first, NDMP4_NO_ERR);
  const Bytes rec = pattern(1024, 3);
  ASSERT_EQ(t.write(rec), std::make_pair(NDMP4_NO_ERR, 1024u));
  ASSERT_EQ(t.mtio(NDMP4_MTIO_EOF, 1).first, NDMP4_NO_ERR);
  ASSERT_EQ(t.close(), NDMP4_NO_ERR);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(t.mtio(NDMP4_MTIO_REW, 1).first, NDMP4_NO_ERR);
  const auto [err, data] = t.read(1024);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  EXPECT_EQ(data, rec);
  EXPECT_EQ(t.read(1024).first, NDMP4_EOF_ERR);
  EXPECT_EQ(t.read(1024).first, NDMP4_EOF_ERR);  // still before the filemark
  EXPECT_EQ(t.mtio(NDMP4_MTIO_FSF, 1), std::make_pair(NDMP4_NO_ERR, 0u));
  EXPECT_EQ(t.read(1024).first, NDMP4_EOM_ERR);
}

}  // namespace
}  // namespace ndmpd
