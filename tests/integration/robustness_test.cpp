// Bad input over TCP: a normal session keeps getting correct answers while
// other connections send truncated records, garbage bodies, unknown codes,
// a 2 GiB fragment header, requests before login, or connect and vanish by
// the thousand; afterwards the daemon holds no more descriptors than before.

#include <gtest/gtest.h>

#include <thread>

#include "daemon.h"
#include "ndmpd/client/client.h"

namespace ndmpd {
namespace {

using namespace std::chrono_literals;
using ndmp::client::Client;
using ndmp::xdr::Bytes;
using testing::Daemon;

class Robustness : public ::testing::Test {
 protected:
  void SetUp() override {
    witness_.connect(daemon_.address());
    witness_.open_and_login_md5(daemon_.user(), daemon_.password());
    check_witness();
    // The witness's own descriptor is counted in the baseline.
    baseline_fds_ = daemon_.fd_count();
  }

  // The normal session still gets a correct answer.
  void check_witness() {
    const auto r = witness_.call<NDMP4_CONFIG_GET_HOST_INFO>();
    ASSERT_EQ(r.error(), NDMP4_NO_ERR);
    EXPECT_STREQ(r->os_type, "Linux");
  }

  void expect_fds_back_to_baseline() {
    int fds = 0;
    for (int i = 0; i < 250; ++i) {  // closing is asynchronous: up to 5 s
      fds = daemon_.fd_count();
      if (fds <= baseline_fds_) break;
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_LE(fds, baseline_fds_);
  }

  Daemon daemon_;
  Client witness_;
  int baseline_fds_ = 0;
};

TEST_F(Robustness, TruncatedRecordThenHangUp) {
  Client c;
  c.connect(daemon_.address());
  // A fragment header for 100 bytes, then only 50 of them, then silence.
  Bytes bytes = {0x80, 0, 0, 100};
  bytes.resize(54, 0x11);
  c.send_bytes(bytes);
  check_witness();
  c.close();
  check_witness();
  expect_fds_back_to_baseline();
}

TEST_F(Robustness, GarbageBodyGetsXdrDecodeErrorAndTheSessionGoesOn) {
  Client c;
  c.connect(daemon_.address());
  c.open_and_login_text(daemon_.user(), daemon_.password());
  // GET_AUTH_ATTR wants one word: five bytes are one too many.
  const Bytes five = {0, 0, 0, 2, 0x01};
  auto m = c.wait_reply(c.send_with_body(NDMP4_CONFIG_GET_AUTH_ATTR, five));
  EXPECT_EQ(m.header.error_code, NDMP4_XDR_DECODE_ERR);
  EXPECT_TRUE(m.body.empty());
  // SET_EXT_LIST announcing 0xdeadbeef entries, with four bytes behind.
  const Bytes huge = {0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1};
  m = c.wait_reply(c.send_with_body(NDMP4_CONFIG_SET_EXT_LIST, huge));
  EXPECT_EQ(m.header.error_code, NDMP4_XDR_DECODE_ERR);
  // A body-less request with a body.
  m = c.wait_reply(c.send_with_body(NDMP4_CONFIG_GET_HOST_INFO, five));
  EXPECT_EQ(m.header.error_code, NDMP4_XDR_DECODE_ERR);
  EXPECT_EQ(c.call<NDMP4_CONFIG_GET_SERVER_INFO>().error(), NDMP4_NO_ERR);
  check_witness();
}

TEST_F(Robustness, UnknownMessageCodeIsNotSupported) {
  Client c;
  c.connect(daemon_.address());
  c.open_and_login_text(daemon_.user(), daemon_.password());
  for (std::uint32_t code : {0x0999u, 0x20501234u, 0x7FFE0001u}) {
    const auto m = c.wait_reply(c.send_with_body(code, Bytes{0, 0, 0, 1}));
    EXPECT_EQ(m.header.error_code, NDMP4_NOT_SUPPORTED_ERR) << std::hex << code;
  }
  EXPECT_EQ(c.call<NDMP4_CONFIG_GET_HOST_INFO>().error(), NDMP4_NO_ERR);
  check_witness();
}

TEST_F(Robustness, TwoGigabyteFragmentHeaderClosesThatSessionOnly) {
  Client c;
  c.connect(daemon_.address());
  c.send_bytes(Bytes{0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4});
  EXPECT_TRUE(c.wait_closed(5s));
  EXPECT_TRUE(daemon_.wait_for_log("exceeds the limit", 2s));
  check_witness();
  expect_fds_back_to_baseline();
}

TEST_F(Robustness, ThousandConnectionsOpenedAndDropped) {
  for (int i = 0; i < 1000; ++i) {
    Client c(5s);
    c.connect(daemon_.address());
    if (i % 100 == 0) check_witness();
  }
  // And some that never read the greeting: a bare socket closed at once.
  for (int i = 0; i < 200; ++i) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket s(io);
    s.connect({boost::asio::ip::make_address(daemon_.host()), daemon_.port()});
    s.close();
  }
  check_witness();
  expect_fds_back_to_baseline();
  EXPECT_TRUE(daemon_.running());
}

TEST_F(Robustness, RequestBeforeLoginIsNotAuthorized) {
  Client c;
  c.connect(daemon_.address());
  for (std::uint32_t code : {NDMP4_CONFIG_GET_HOST_INFO, NDMP4_TAPE_OPEN, NDMP4_DATA_GET_STATE,
                             NDMP4_MOVER_GET_STATE, NDMP4_CONNECT_SERVER_AUTH}) {
    const auto m = c.wait_reply(c.send_with_body(code, {}));
    EXPECT_EQ(m.header.error_code, NDMP4_NOT_AUTHORIZED_ERR) << std::hex << code;
  }
  EXPECT_EQ(c.call<NDMP4_CONFIG_GET_SERVER_INFO>().error(), NDMP4_NO_ERR);
  check_witness();
}

TEST_F(Robustness, RecordShorterThanAHeaderIsDiscarded) {
  Client c;
  c.connect(daemon_.address());
  c.send_bytes(Bytes{0x80, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0});
  // Nothing comes back for it, and the session still works.
  EXPECT_EQ(c.call<NDMP4_CONFIG_GET_SERVER_INFO>().error(), NDMP4_NO_ERR);
  check_witness();
}

TEST_F(Robustness, RandomBytesNeverHurtTheWitness) {
  std::uint32_t x = 12345;
  for (int round = 0; round < 50; ++round) {
    Client c(2s);
    try {
      c.connect(daemon_.address());
    } catch (const std::exception& e) {
      FAIL() << "round " << round << ": " << e.what() << "\n" << daemon_.log();
    }
    Bytes junk(1 + round * 37);
    for (auto& b : junk) {
      x = x * 1103515245u + 12345u;
      b = static_cast<std::uint8_t>(x >> 16);
    }
    // Keep fragment lengths sane half of the time so that records form.
    if (round % 2 == 0 && junk.size() >= 4) {
      const std::size_t n = junk.size() - 4;
      junk[0] = 0x80;
      junk[1] = 0;
      junk[2] = static_cast<std::uint8_t>(n >> 8);
      junk[3] = static_cast<std::uint8_t>(n);
    }
    try {
      c.send_bytes(junk);
    } catch (const ndmp::client::TransportError&) {
      // The server may already have closed this connection.
    }
  }
  check_witness();
  expect_fds_back_to_baseline();
}

}  // namespace
}  // namespace ndmpd
