// The tape and robot services over tgt's iSCSI devices (a private tgtd per
// test, frozen or not as the test needs): SCSI_EXECUTE_CDB's timeout ends
// in TIMEOUT_ERR and the session goes on; a host-positioned drive (tgt's
// tape, tape/tape_head.h) is released with every record when its session's
// connection is cut mid-write.

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "daemon.h"
#include "ndmpd/client/client.h"
#include "scsi/tgt_fixture.h"

namespace ndmpd {
namespace {

using namespace std::chrono_literals;
using ndmp::client::Client;
using ndmp::xdr::Bytes;
using testing::Daemon;

// The shipped configuration plus tgt's devices.
std::string config_with_tgt(const scsi::testing::Tgt& tgt) {
  std::ifstream in(std::string(NDMPD_SOURCE_DIR) + "/conf/ndmpd.toml");
  std::stringstream ss;
  ss << in.rdbuf() << "\n[devices.tgt_tape]\nkind = \"tape\"\nurl = \"" << tgt.tape_url
     << "\"\n[devices.tgt_changer]\nkind = \"changer\"\nurl = \"" << tgt.vtl_changer_url << "\"\n";
  return ss.str();
}

Bytes pattern(std::size_t n, int seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 13 + seed + (i >> 8));
  return b;
}

class Session {
 public:
  explicit Session(const Daemon& d) {
    c.connect(d.address());
    c.open_and_login_md5(d.user(), d.password());
  }
  ndmp4_error open(const char* device, ndmp4_tape_open_mode mode) {
    ndmp4_tape_open_request r{const_cast<char*>(device), mode};
    return c.call<NDMP4_TAPE_OPEN>(r).error();
  }
  ndmp4_error mtio(ndmp4_tape_mtio_op op, std::uint32_t count) {
    ndmp4_tape_mtio_request r{op, count};
    return c.call<NDMP4_TAPE_MTIO>(r).error();
  }
  ndmp4_error write(const Bytes& data) {
    ndmp4_tape_write_request r{};
    r.data_out.data_out_len = static_cast<u_int>(data.size());
    r.data_out.data_out_val = reinterpret_cast<char*>(const_cast<std::uint8_t*>(data.data()));
    return c.call<NDMP4_TAPE_WRITE>(r).error();
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
  // SCSI_EXECUTE_CDB without data: (NDMP error, SCSI status).
  std::pair<ndmp4_error, int> scsi_cdb(Bytes cdb, std::uint32_t timeout_ms) {
    ndmp4_execute_cdb_request x{};
    x.timeout = timeout_ms;
    x.cdb.cdb_len = static_cast<u_int>(cdb.size());
    x.cdb.cdb_val = reinterpret_cast<char*>(cdb.data());
    const auto r = c.call<NDMP4_SCSI_EXECUTE_CDB>(x);
    return {r.error(), r.error() == NDMP4_NO_ERR ? r->status : -1};
  }
  Client c{std::chrono::seconds(60)};
};

class TgtService : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    tgt_ = scsi::testing::Tgt::start(error);
    ASSERT_NE(tgt_, nullptr) << error;
    daemon_ = std::make_unique<Daemon>(Daemon::Options::config(config_with_tgt(*tgt_)));
  }
  void TearDown() override {
    if (tgt_) kill(tgt_->pid(), SIGCONT);  // never leave it frozen
    daemon_.reset();
  }
  std::unique_ptr<scsi::testing::Tgt> tgt_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(TgtService, ExecuteCdbTimesOutAndTheSessionGoesOn) {
  Session s(*daemon_);
  ndmp4_scsi_open_request o{const_cast<char*>("tgt_changer")};
  ASSERT_EQ(s.c.call<NDMP4_SCSI_OPEN>(o).error(), NDMP4_NO_ERR);
  // The new nexus's unit attentions first.
  std::pair<ndmp4_error, int> tur;
  for (int i = 0; i < 5; ++i) {
    tur = s.scsi_cdb({0x00, 0, 0, 0, 0, 0}, 10000);
    if (tur.second == 0) break;
  }
  ASSERT_EQ(tur, std::make_pair(NDMP4_NO_ERR, 0));

  ASSERT_EQ(kill(tgt_->pid(), SIGSTOP), 0);
  const auto t0 = std::chrono::steady_clock::now();
  const auto frozen = s.scsi_cdb({0x00, 0, 0, 0, 0, 0}, 700);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(frozen.first, NDMP4_TIMEOUT_ERR);
  EXPECT_GE(took, 700ms);
  EXPECT_LT(took, 5s);
  ASSERT_EQ(kill(tgt_->pid(), SIGCONT), 0);

  // The session goes on: the device answers again (after the unit
  // attention of its new nexus).
  for (int i = 0; i < 5; ++i) {
    tur = s.scsi_cdb({0x00, 0, 0, 0, 0, 0}, 10000);
    if (tur.second == 0) break;
  }
  EXPECT_EQ(tur, std::make_pair(NDMP4_NO_ERR, 0));
  EXPECT_EQ(s.c.call<NDMP4_SCSI_CLOSE>().error(), NDMP4_NO_ERR);
}

TEST_F(TgtService, CutMidWriteReleasesTheHostPositionedDrive) {
  Session b(*daemon_);
  std::vector<Bytes> written;
  {
    Session a(*daemon_);
    ASSERT_EQ(a.open("tgt_tape", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
    ASSERT_EQ(a.mtio(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
    for (int i = 0; i < 20; ++i) {
      written.push_back(pattern(32 * 1024 + i, i));
      ASSERT_EQ(a.write(written.back()), NDMP4_NO_ERR);
    }
    EXPECT_EQ(b.open("tgt_tape", NDMP4_TAPE_READ_MODE), NDMP4_DEVICE_BUSY_ERR);
    const Bytes last = pattern(512 * 1024, 77);
    ndmp4_tape_write_request w{};
    w.data_out.data_out_len = static_cast<u_int>(last.size());
    w.data_out.data_out_val = reinterpret_cast<char*>(const_cast<std::uint8_t*>(last.data()));
    a.c.send(NDMP4_TAPE_WRITE, ndmp::xdr::Traits<ndmp4_tape_write_request>::proc(), &w);
    a.c.close();
  }
  const auto t0 = std::chrono::steady_clock::now();
  ndmp4_error e = NDMP4_DEVICE_BUSY_ERR;
  for (int i = 0; i < 200 && e == NDMP4_DEVICE_BUSY_ERR; ++i) {
    e = b.open("tgt_tape", NDMP4_TAPE_READ_MODE);
    if (e == NDMP4_DEVICE_BUSY_ERR) std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(e, NDMP4_NO_ERR);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  ASSERT_EQ(b.mtio(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  for (const Bytes& rec : written) {
    const auto r = b.read(1 << 20);
    ASSERT_EQ(r.first, NDMP4_NO_ERR);
    ASSERT_EQ(r.second, rec);
  }
  auto r = b.read(1 << 20);
  if (r.first == NDMP4_NO_ERR) {
    EXPECT_EQ(r.second, pattern(512 * 1024, 77));
    r = b.read(1 << 20);
  }
  EXPECT_EQ(r.first, NDMP4_EOF_ERR);  // the filemark written on release
  EXPECT_EQ(b.mtio(NDMP4_MTIO_FSF, 1), NDMP4_NO_ERR);
  EXPECT_EQ(b.read(100).first, NDMP4_EOM_ERR);
}

}  // namespace
}  // namespace ndmpd
