// The daemon over TCP: greeting, logins, CONFIG answers, ordering, the
// session limit, timeouts, CONNECT_CLOSE and shutdown on SIGTERM.

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "daemon.h"
#include "ndmpd/client/client.h"

namespace ndmpd {
namespace {

using namespace std::chrono_literals;
using ndmp::client::Client;
using ndmp::client::TransportError;
using testing::Daemon;

TEST(Session, GreetsWithConnectedVersion4) {
  Daemon d;
  Client c;
  c.connect(d.address());
  EXPECT_EQ(c.greeting_reason(), NDMP4_CONNECTED);
  EXPECT_EQ(c.greeting_version(), 4);
  EXPECT_EQ(c.greeting_text(), "");
}

TEST(Session, TextAndMd5LoginsThenConfigAnswers) {
  Daemon d;
  {
    Client c;
    c.connect(d.address());
    c.open_and_login_text(d.user(), d.password());
    const auto host = c.call<NDMP4_CONFIG_GET_HOST_INFO>();
    EXPECT_EQ(host.error(), NDMP4_NO_ERR);
    EXPECT_STREQ(host->os_type, "Linux");
  }
  Client c;
  c.connect(d.address());
  c.open_and_login_md5(d.user(), d.password());
  const auto fs = c.call<NDMP4_CONFIG_GET_FS_INFO>();
  ASSERT_EQ(fs.error(), NDMP4_NO_ERR);
  ASSERT_EQ(fs->fs_info.fs_info_len, 1u);
  EXPECT_STREQ(fs->fs_info.fs_info_val[0].fs_logical_device, "/vol0");
  EXPECT_EQ(c.call<NDMP4_CONFIG_GET_BUTYPE_INFO>().error(), NDMP4_NO_ERR);
  EXPECT_EQ(c.call<NDMP4_CONFIG_GET_TAPE_INFO>().error(), NDMP4_NO_ERR);
  EXPECT_EQ(c.call<NDMP4_CONFIG_GET_SCSI_INFO>().error(), NDMP4_NO_ERR);
  EXPECT_TRUE(d.wait_for_log("logged in (md5)", 2s));
}

TEST(Session, WrongPasswordsAreRefusedAndLogged) {
  Daemon d;
  Client c;
  c.connect(d.address());
  EXPECT_THROW(c.open_and_login_text(d.user(), "wrong"), std::runtime_error);
  Client m;
  m.connect(d.address());
  EXPECT_THROW(m.open_and_login_md5(d.user(), "wrong"), std::runtime_error);
  EXPECT_TRUE(d.wait_for_log("login failed for user 'dma' (md5)", 2s));
  EXPECT_TRUE(d.wait_for_log("login failed for user 'dma' (text)", 2s));
}

TEST(Session, PipelinedRequestsAreAnsweredInOrder) {
  Daemon d;
  Client c;
  c.connect(d.address());
  c.open_and_login_text(d.user(), d.password());
  const auto void_proc = ndmp::xdr::Traits<ndmp::xdr::Void>::proc();
  std::vector<std::uint32_t> seqs;
  const std::uint32_t codes[] = {NDMP4_CONFIG_GET_HOST_INFO, NDMP4_CONFIG_GET_SERVER_INFO, 0x0abc,
                                 NDMP4_CONFIG_GET_CONNECTION_TYPE};
  for (std::uint32_t code : codes) seqs.push_back(c.send(code, void_proc, nullptr));
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    const auto m = c.wait_reply(seqs[i]);
    EXPECT_EQ(m.header.message_code, codes[i]);
    EXPECT_EQ(m.header.message_type, NDMP4_MESSAGE_REPLY);
    EXPECT_EQ(m.header.error_code, codes[i] == 0x0abc ? NDMP4_NOT_SUPPORTED_ERR : NDMP4_NO_ERR);
  }
}

TEST(Session, LargeRepliesArriveIntactAndInOrder) {
  // Replies larger than the socket buffer go out in pieces; several queued
  // behind each other keep their order and their bytes.
  Daemon d;
  Client c(std::chrono::seconds(30));
  c.connect(d.address());
  c.open_and_login_text(d.user(), d.password());
  const std::size_t sizes[] = {1, 100000, 4u << 20, 15u << 20, 3};
  std::vector<ndmp::xdr::Bytes> payloads;
  std::vector<std::uint32_t> seqs;
  for (std::size_t i = 0; i < std::size(sizes); ++i) {
    ndmp::xdr::Bytes data(sizes[i]);
    for (std::size_t k = 0; k < data.size(); ++k) data[k] = static_cast<std::uint8_t>(k * 31 + i);
    ndmp4_test_echo_request e{};
    e.data.data_len = static_cast<u_int>(data.size());
    e.data.data_val = reinterpret_cast<char*>(data.data());
    seqs.push_back(c.send(NDMP4_TEST_ECHO, ndmp::xdr::Traits<ndmp4_test_echo_request>::proc(), &e));
    payloads.push_back(std::move(data));
  }
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    const auto m = c.wait_reply(seqs[i]);
    ASSERT_EQ(m.header.error_code, NDMP4_NO_ERR);
    ndmp::xdr::Decoded<ndmp4_test_echo_reply> r;
    ASSERT_TRUE(r.decode(m.body));
    ASSERT_EQ(r->data.data_len, payloads[i].size());
    EXPECT_EQ(0, std::memcmp(r->data.data_val, payloads[i].data(), payloads[i].size())) << i;
  }
}

TEST(Session, ServerSequenceNumbersStartAtOneAndIncrease) {
  Daemon d;
  Client c;
  c.connect(d.address());  // the greeting was sequence 1
  const auto void_proc = ndmp::xdr::Traits<ndmp::xdr::Void>::proc();
  const auto a = c.wait_reply(c.send(NDMP4_CONFIG_GET_SERVER_INFO, void_proc, nullptr));
  const auto b = c.wait_reply(c.send(NDMP4_CONFIG_GET_SERVER_INFO, void_proc, nullptr));
  EXPECT_EQ(a.header.sequence, 2u);
  EXPECT_EQ(b.header.sequence, 3u);
  EXPECT_EQ(b.header.reply_sequence, 2u);
}

TEST(Session, ConnectCloseClosesTheConnection) {
  Daemon d;
  Client c;
  c.connect(d.address());
  c.open_and_login_text(d.user(), d.password());
  c.send(NDMP4_CONNECT_CLOSE, ndmp::xdr::Traits<ndmp::xdr::Void>::proc(), nullptr);
  EXPECT_TRUE(c.wait_closed(5s));
  EXPECT_TRUE(d.wait_for_log("DMA closed the session", 2s));
}

TEST(Session, TheSessionLimitRefusesWithAReason) {
  Daemon d(Daemon::Options::config("[limits]\nmax_sessions = 2\n"));
  Client a, b, c;
  a.connect(d.address());
  b.connect(d.address());
  c.connect(d.address());
  EXPECT_EQ(a.greeting_reason(), NDMP4_CONNECTED);
  EXPECT_EQ(b.greeting_reason(), NDMP4_CONNECTED);
  EXPECT_EQ(c.greeting_reason(), NDMP4_REFUSED);
  EXPECT_NE(c.greeting_text().find("session limit"), std::string::npos);
  EXPECT_TRUE(c.wait_closed(5s));
  // When one leaves, a new one gets in.
  a.close();
  bool admitted = false;
  for (int i = 0; i < 100 && !admitted; ++i) {
    Client e;
    e.connect(d.address());
    admitted = e.greeting_reason() == NDMP4_CONNECTED;
    if (!admitted) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(admitted);
}

TEST(Session, NoLoginWithinTheLoginTimeoutCloses) {
  Daemon d(Daemon::Options::config("[limits]\nlogin_timeout = 1\n"));
  Client c;
  c.connect(d.address());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.wait_closed(10s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 500ms);
  EXPECT_TRUE(d.wait_for_log("no login within 1 s", 2s));
}

TEST(Session, AnIdleSessionIsClosed) {
  Daemon d(Daemon::Options::config("[limits]\nidle_timeout = 1\n"));
  Client c;
  c.connect(d.address());
  c.open_and_login_text(d.user(), d.password());
  EXPECT_TRUE(c.wait_closed(10s));
  EXPECT_TRUE(d.wait_for_log("idle for 1 s", 2s));
}

TEST(Session, SigtermSendsShutdownToEverySessionAndExitsZero) {
  Daemon d;
  Client a, b;
  a.connect(d.address());
  b.connect(d.address());
  a.open_and_login_text(d.user(), d.password());
  EXPECT_EQ(d.stop(), 0);
  for (Client* c : {&a, &b}) {
    const auto post = c->next_post(5s);
    ASSERT_TRUE(post.has_value());
    EXPECT_EQ(post->header.message_code, NDMP4_NOTIFY_CONNECTION_STATUS);
    ndmp::xdr::Decoded<ndmp4_notify_connection_status_post> p;
    ASSERT_TRUE(p.decode(post->body));
    EXPECT_EQ(p->reason, NDMP4_SHUTDOWN);
    EXPECT_TRUE(c->wait_closed(5s));
  }
  EXPECT_NE(d.log().find("ndmpd stopped"), std::string::npos);
}

TEST(Session, ListensOnIpv6Loopback) {
  std::unique_ptr<Daemon> d;
  try {
    d = std::make_unique<Daemon>(Daemon::Options::listen_on("[::1]:0"));
  } catch (const std::exception& e) {
    // Only a machine without IPv6 on loopback lands here; say so loudly.
    FAIL() << "cannot listen on [::1]: " << e.what();
  }
  Client c;
  c.connect(d->address());
  c.open_and_login_md5(d->user(), d->password());
  EXPECT_EQ(c.call<NDMP4_CONFIG_GET_HOST_INFO>().error(), NDMP4_NO_ERR);
}

TEST(CommandLine, CheckConfigReportsLineAndKey) {
  const auto ok = testing::run_command(
      {NDMPD_BINARY, "--check-config", std::string(NDMPD_SOURCE_DIR) + "/conf/ndmpd.toml"}, 10s);
  EXPECT_EQ(ok.status, 0) << ok.output;
  const std::filesystem::path bad = std::filesystem::temp_directory_path() /
                                    ("ndmpd-bad-" + std::to_string(::getpid()) + ".toml");
  std::ofstream(bad) << "[server]\nvendor = \"x\"\n\n[limits]\nmax_sesions = 3\n";
  const auto r = testing::run_command({NDMPD_BINARY, "--check-config", bad.string()}, 10s);
  std::filesystem::remove(bad);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find(":5: limits.max_sesions: unknown key"), std::string::npos) << r.output;
}

TEST(CommandLine, VersionAndUsage) {
  const auto v = testing::run_command({NDMPD_BINARY, "--version"}, 10s);
  EXPECT_EQ(v.status, 0);
  EXPECT_NE(v.output.find("ndmpd 0.1.0"), std::string::npos);
  const auto none = testing::run_command({NDMPD_BINARY}, 10s);
  EXPECT_NE(none.status, 0);
  const auto half = testing::run_command(
      {NDMPD_BINARY, "--config", std::string(NDMPD_SOURCE_DIR) + "/conf/ndmpd.toml", "--user", "x"},
      10s);
  EXPECT_EQ(half.status, 2);
}

TEST(CommandLine, ListenFlagsReplaceTheConfiguredAddresses) {
  Daemon d(Daemon::Options::extra({"--listen", "127.0.0.2:0"}));
  // Both --listen addresses were bound; the configured wildcards were not.
  EXPECT_TRUE(d.wait_for_log("listening on 127.0.0.2:", 2s));
  EXPECT_EQ(d.log().find("listening on 0.0.0.0"), std::string::npos);
}

}  // namespace
}  // namespace ndmpd
