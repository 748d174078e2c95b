// The data server over NDMP: the real daemon with two exports (/src, the
// trees backed up; /dst, where recoveries go) and its embedded library,
// this test process as the DMA.  The DATA state machine and its errors,
// refused environments, LOCAL and TCP backups and recoveries with file
// history (both kinds), direct access recovery, incrementals, a hostile
// image, three-way peers that stall or reset, DATA_ABORT mid-backup and
// mid-recovery, and a DMA that goes away mid-backup.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon.h"
#include "data_helpers.h"
#include "dma.h"

namespace ndmpd {
namespace {

using namespace std::chrono_literals;
using namespace itest;  // NOLINT
namespace fs = std::filesystem;

constexpr std::uint32_t kRecord = 64 * 1024;
constexpr std::uint16_t kSlot1 = kFirstSlot, kSlot2 = kFirstSlot + 1;

// The daemon with /src and /dst exported (both made here).
Daemon::Options with_exports(const Scratch& s) {
  fs::create_directories(s / "src");
  fs::create_directories(s / "dst");
  Daemon::Options o;
  o.args = {"--export", "/src=" + (s / "src").string(), "--export", "/dst=" + (s / "dst").string()};
  return o;
}

// The next LOG_MESSAGE post (others are taken into `ev` too).
std::optional<LogMsg> next_log(DataDma& dma, Events& ev, std::chrono::milliseconds limit = 5000ms) {
  const auto until = std::chrono::steady_clock::now() + limit;
  const std::size_t before = ev.logs.size();
  while (std::chrono::steady_clock::now() < until) {
    auto m = dma.c.next_post(std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now()));
    if (!m) break;
    ev.take(*m);
    if (ev.logs.size() > before) return ev.logs.back();
  }
  return std::nullopt;
}

// The next NOTIFY_DATA_HALTED reason, or -1.
int next_data_halted(DataDma& dma, Events& ev, std::chrono::milliseconds limit = 5000ms) {
  const auto until = std::chrono::steady_clock::now() + limit;
  const std::size_t before = ev.data_halted.size();
  while (std::chrono::steady_clock::now() < until) {
    auto m = dma.c.next_post(std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now()));
    if (!m) break;
    ev.take(*m);
    if (ev.data_halted.size() > before) return ev.data_halted.back();
  }
  return -1;
}

// A small tree of every common kind, with fixed modes and mtimes.
void make_small_tree(const fs::path& root) {
  constexpr std::int64_t t = 1600000000;
  put_file(root / "a.txt", "hello, tape\n", 0644, t + 1);
  put_file(root / "empty", "", 0600, t + 2);
  put_file(root / "exec.sh", "#!/bin/sh\necho hi\n", 0755, t + 3);
  put_file(root / "with space.txt", "spaces in names\n", 0640, t + 4);
  std::string mid;
  for (int i = 0; i < 300 * 1024; ++i) mid.push_back(static_cast<char>('a' + i * 7 % 26));
  put_file(root / "dir/b.bin", mid, 0640, t + 5);
  put_file(root / "dir/sub/deep.txt", "deep\n", 0444, t + 6);
  fs::create_symlink("../a.txt", root / "dir/link");
  put_big_file(root / "big.dat", (3u << 20) + 777, 3);
  ::chmod((root / "big.dat").c_str(), 0600);
  set_mtime(root / "big.dat", t + 7);
  ::chmod((root / "dir/sub").c_str(), 0700);
  ::chmod((root / "dir").c_str(), 0750);
  set_mtime(root / "dir/sub", t + 8);
  set_mtime(root / "dir", t + 9);
  set_mtime(root, t + 10);
}

// Shows the daemon's log when a test ends by an exception (a request
// without a reply): gtest records it only after the Daemon is gone.
struct LogOnThrow {
  const Daemon& d;
  ~LogOnThrow() {
    if (std::uncaught_exceptions() > 0) {
      std::fprintf(stderr, "---- ndmpd log (exception) ----\n%s---- end ----\n", d.log().c_str());
    }
  }
};

// A tree far larger than every buffer between the engine and the tape.
void make_large_tree(const fs::path& root) {
  put_big_file(root / "one.bin", 24u << 20, 21);
  put_big_file(root / "two.bin", 24u << 20, 22);
  put_file(root / "small/s.txt", "small\n");
}

std::string describe(const std::map<std::string, Node>& tree) {
  std::ostringstream os;
  for (const auto& [k, v] : tree) os << "  " << k << ": " << v << "\n";
  return os.str();
}

// ---------------------------------------------------------------------------
// 1. The state machine and the request errors.

TEST(DataServerStates, RequestsAndErrorsAsTheSpecNamesThem) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  DataDma dma(d);
  Events ev;
  {
    const auto st = dma.data_state();
    ASSERT_EQ(st.error(), NDMP4_NO_ERR);
    EXPECT_EQ(st->state, NDMP4_DATA_STATE_IDLE);
    EXPECT_EQ(st->operation, NDMP4_DATA_OP_NOACTION);
    EXPECT_EQ(st->halt_reason, NDMP4_DATA_HALT_NA);
  }
  EXPECT_EQ(dma.data_abort(), NDMP4_ILLEGAL_STATE_ERR);
  EXPECT_EQ(dma.data_stop(), NDMP4_ILLEGAL_STATE_ERR);
  EXPECT_EQ(dma.data_env().first, NDMP4_ILLEGAL_STATE_ERR);
  EXPECT_EQ(dma.start_backup({{"FILESYSTEM", "/src"}}), NDMP4_ILLEGAL_STATE_ERR);
  EXPECT_EQ(dma.start_recover({{"PREFIX", "/dst"}}, {}), NDMP4_ILLEGAL_STATE_ERR);
  // An unknown butype: ILLEGAL_ARGS, and a LOG_MESSAGE that says so.
  EXPECT_EQ(dma.start_backup({{"FILESYSTEM", "/src"}}, "cpio"), NDMP4_ILLEGAL_ARGS_ERR);
  {
    const auto log = next_log(dma, ev);
    ASSERT_TRUE(log.has_value());
    EXPECT_NE(log->text.find("cpio"), std::string::npos) << log->text;
    EXPECT_EQ(log->type, NDMP4_LOG_ERROR);
  }
  EXPECT_EQ(dma.start_recover({{"PREFIX", "/dst"}}, {}, "dump"), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_IDLE);

  // LISTEN TCP: the address offered; again: ILLEGAL_STATE; ABORT: HALTED
  // (ABORTED) with the notification; STOP: IDLE.
  {
    const auto rep = dma.data_listen(NDMP4_ADDR_TCP);
    ASSERT_EQ(rep.error(), NDMP4_NO_ERR);
    ASSERT_EQ(rep->connect_addr.addr_type, NDMP4_ADDR_TCP);
    const auto& list = rep->connect_addr.ndmp4_addr_u.tcp_addr;
    ASSERT_GE(list.tcp_addr_len, 1u);
    EXPECT_EQ(list.tcp_addr_val[0].ip_addr, 0x7F000001u);
    EXPECT_NE(list.tcp_addr_val[0].port, 0u);
    const auto st = dma.data_state();
    EXPECT_EQ(st->state, NDMP4_DATA_STATE_LISTEN);
    EXPECT_EQ(st->data_connection_addr.addr_type, NDMP4_ADDR_TCP);
    EXPECT_EQ(dma.data_listen(NDMP4_ADDR_TCP).error(), NDMP4_ILLEGAL_STATE_ERR);
    EXPECT_EQ(dma.data_listen(NDMP4_ADDR_LOCAL).error(), NDMP4_ILLEGAL_STATE_ERR);
    EXPECT_EQ(dma.data_connect_local(), NDMP4_ILLEGAL_STATE_ERR);
    EXPECT_EQ(dma.data_env().first, NDMP4_ILLEGAL_STATE_ERR);
    EXPECT_EQ(dma.data_stop(), NDMP4_ILLEGAL_STATE_ERR);
    ASSERT_EQ(dma.data_abort(), NDMP4_NO_ERR);
    const auto h = dma.data_state();
    EXPECT_EQ(h->state, NDMP4_DATA_STATE_HALTED);
    EXPECT_EQ(h->halt_reason, NDMP4_DATA_HALT_ABORTED);
    EXPECT_EQ(next_data_halted(dma, ev), NDMP4_DATA_HALT_ABORTED);
    ASSERT_EQ(dma.data_stop(), NDMP4_NO_ERR);
    const auto i = dma.data_state();
    EXPECT_EQ(i->state, NDMP4_DATA_STATE_IDLE);
    EXPECT_EQ(i->halt_reason, NDMP4_DATA_HALT_NA);
    EXPECT_EQ(i->operation, NDMP4_DATA_OP_NOACTION);
  }
  // LISTEN TCP, a peer connects: CONNECTED with its address; ABORT.
  {
    const auto rep = dma.data_listen(NDMP4_ADDR_TCP);
    ASSERT_EQ(rep.error(), NDMP4_NO_ERR);
    ASSERT_GE(rep->connect_addr.ndmp4_addr_u.tcp_addr.tcp_addr_len, 1u);
    const std::uint16_t port = rep->connect_addr.ndmp4_addr_u.tcp_addr.tcp_addr_val[0].port;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    int state = -1;
    for (int i = 0; i < 250 && state != NDMP4_DATA_STATE_CONNECTED; ++i) {
      state = dma.data_state()->state;
      if (state != NDMP4_DATA_STATE_CONNECTED) std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(state, NDMP4_DATA_STATE_CONNECTED);
    const auto st = dma.data_state();
    EXPECT_EQ(st->data_connection_addr.addr_type, NDMP4_ADDR_TCP);
    if (st->data_connection_addr.addr_type == NDMP4_ADDR_TCP &&
        st->data_connection_addr.ndmp4_addr_u.tcp_addr.tcp_addr_len == 1) {
      EXPECT_EQ(st->data_connection_addr.ndmp4_addr_u.tcp_addr.tcp_addr_val[0].ip_addr,
                0x7F000001u);
    }
    EXPECT_EQ(dma.data_connect_local(), NDMP4_ILLEGAL_STATE_ERR);
    ASSERT_EQ(dma.data_abort(), NDMP4_NO_ERR);
    EXPECT_EQ(dma.data_state()->halt_reason, NDMP4_DATA_HALT_ABORTED);
    EXPECT_EQ(next_data_halted(dma, ev), NDMP4_DATA_HALT_ABORTED);
    // The data server closed the connection.
    char byte = 0;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(::recv(fd, &byte, 1, 0), 0);
    ::close(fd);
    ASSERT_EQ(dma.data_stop(), NDMP4_NO_ERR);
  }
  // LISTEN LOCAL, the same story.
  {
    const auto rep = dma.data_listen(NDMP4_ADDR_LOCAL);
    ASSERT_EQ(rep.error(), NDMP4_NO_ERR);
    EXPECT_EQ(rep->connect_addr.addr_type, NDMP4_ADDR_LOCAL);
    const auto st = dma.data_state();
    EXPECT_EQ(st->state, NDMP4_DATA_STATE_LISTEN);
    EXPECT_EQ(st->data_connection_addr.addr_type, NDMP4_ADDR_LOCAL);
    EXPECT_EQ(dma.data_listen(NDMP4_ADDR_LOCAL).error(), NDMP4_ILLEGAL_STATE_ERR);
    EXPECT_EQ(dma.data_connect_local(), NDMP4_ILLEGAL_STATE_ERR);
    ASSERT_EQ(dma.data_abort(), NDMP4_NO_ERR);
    const auto h = dma.data_state();
    EXPECT_EQ(h->state, NDMP4_DATA_STATE_HALTED);
    EXPECT_EQ(h->halt_reason, NDMP4_DATA_HALT_ABORTED);
    EXPECT_EQ(next_data_halted(dma, ev), NDMP4_DATA_HALT_ABORTED);
    ASSERT_EQ(dma.data_stop(), NDMP4_NO_ERR);
    EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_IDLE);
    EXPECT_EQ(dma.data_state()->halt_reason, NDMP4_DATA_HALT_NA);
  }
  // Address types this session may not use.
  EXPECT_EQ(dma.data_listen(static_cast<ndmp4_addr_type>(99)).error(), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(dma.data_listen(NDMP4_ADDR_IPC).error(), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(dma.data_listen(NDMP4_ADDR_TCP_IPV6).error(), NDMP4_ILLEGAL_ARGS_ERR);
  {
    ndmp4_addr ipc{};
    ipc.addr_type = NDMP4_ADDR_IPC;
    EXPECT_EQ(dma.data_connect_addr(ipc), NDMP4_ILLEGAL_ARGS_ERR);
    ndmp4_addr v6{};
    v6.addr_type = NDMP4_ADDR_TCP_IPV6;
    EXPECT_EQ(dma.data_connect_addr(v6), NDMP4_ILLEGAL_ARGS_ERR);
    ndmp4_addr none{};
    none.addr_type = NDMP4_ADDR_TCP;  // no address in the list
    EXPECT_EQ(dma.data_connect_addr(none), NDMP4_ILLEGAL_ARGS_ERR);
    // addr_type 99 on the wire (no XDR arm: the client cannot encode it).
    const std::uint8_t body[4] = {0, 0, 0, 99};
    const std::uint32_t seq = dma.c.send_with_body(NDMP4_DATA_CONNECT, body);
    const auto reply = dma.c.wait_reply(seq);
    ndmp4_error e = reply.header.error_code;
    if (e == NDMP4_NO_ERR) {
      ndmp::xdr::Decoded<ndmp4_data_connect_reply> r;
      ASSERT_TRUE(r.decode(reply.body));
      e = r->error;
    }
    EXPECT_TRUE(e == NDMP4_ILLEGAL_ARGS_ERR || e == NDMP4_XDR_DECODE_ERR)
        << ndmp::client::error_name(e);
  }
  // DATA_CONNECT: to a disallowed address, to nobody, LOCAL without a
  // listening mover.
  EXPECT_EQ(dma.data_connect_tcp(0xC0000201u, 10000), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(dma.data_connect_tcp(0x7F000001u, 1), NDMP4_CONNECT_ERR);
  EXPECT_EQ(dma.data_connect_local(), NDMP4_ILLEGAL_STATE_ERR);
  EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_IDLE);
  // The session goes on.
  EXPECT_EQ(dma.c.call<NDMP4_CONFIG_GET_HOST_INFO>().error(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.data_abort(), NDMP4_ILLEGAL_STATE_ERR);
  EXPECT_TRUE(d.running());
}

// DATA_START_BACKUP against a LOCAL mover that recovers (mode WRITE), and
// START_RECOVER against one that backs up: ILLEGAL_STATE; both stop cleanly.
TEST(DataServerStates, StartAgainstAMoverOfTheOtherModeIsRefused) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  put_file(s / "src/f.txt", "f\n");
  DataDma dma(d);
  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot1, NDMP4_TAPE_RDWR_MODE));
  for (const ndmp4_mover_mode mode : {NDMP4_MOVER_MODE_WRITE, NDMP4_MOVER_MODE_READ}) {
    SCOPED_TRACE(mode);
    ASSERT_EQ(dma.window(0, kInf), NDMP4_NO_ERR);
    ASSERT_EQ(dma.listen(mode, NDMP4_ADDR_LOCAL).first, NDMP4_NO_ERR);
    ASSERT_EQ(dma.data_connect_local(), NDMP4_NO_ERR);
    EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_CONNECTED);
    EXPECT_EQ(dma.mover()->state, NDMP4_MOVER_STATE_ACTIVE);
    if (mode == NDMP4_MOVER_MODE_WRITE) {
      EXPECT_EQ(dma.start_backup({{"FILESYSTEM", "/src"}}), NDMP4_ILLEGAL_STATE_ERR);
    } else {
      EXPECT_EQ(dma.start_recover({{"PREFIX", "/dst/x"}}, {}), NDMP4_ILLEGAL_STATE_ERR);
    }
    EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_CONNECTED);
    Events ev;
    ASSERT_EQ(dma.data_abort(), NDMP4_NO_ERR);
    EXPECT_EQ(next_data_halted(dma, ev), NDMP4_DATA_HALT_ABORTED);
    // The mover sees its connection end.
    for (int i = 0; i < 50 && ev.mover_halted.empty(); ++i) {
      if (auto m = dma.c.next_post(100ms)) ev.take(*m);
    }
    ASSERT_EQ(ev.mover_halted.size(), 1u);
    EXPECT_TRUE(ev.mover_halted[0] == NDMP4_MOVER_HALT_CONNECT_CLOSED ||
                ev.mover_halted[0] == NDMP4_MOVER_HALT_CONNECT_ERROR)
        << ev.mover_halted[0];
    EXPECT_EQ(dma.data_stop(), NDMP4_NO_ERR);
    EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
  }
  EXPECT_EQ(dma.close(), NDMP4_NO_ERR);
}

// ---------------------------------------------------------------------------
// 2. Environments the data server refuses, each with its reason.

TEST(DataServerEnv, RefusalsSayWhy) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  put_file(s / "src/file.txt", "x");
  fs::create_symlink("/etc", s / "src/escape");
  DataDma dma(d);
  Events ev;
  ASSERT_EQ(dma.data_listen(NDMP4_ADDR_LOCAL).error(), NDMP4_NO_ERR);
  struct Case {
    EnvList env;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {{{"HIST", "F"}}, "FILESYSTEM is missing"},
      {{{"FILESYSTEM", "/etc"}}, "not inside an exported filesystem"},
      {{{"FILESYSTEM", "/src/escape"}}, "not inside an exported filesystem"},
      {{{"FILESYSTEM", (s / "src/escape").string()}}, "not inside an exported filesystem"},
      {{{"FILESYSTEM", "/src/../etc"}}, "not inside an exported filesystem"},
      {{{"FILESYSTEM", "/src/file.txt"}}, "not a directory"},
      {{{"FILESYSTEM", "/src"}, {"LEVEL", "10"}}, "LEVEL=10"},
      {{{"FILESYSTEM", "/src"}, {"HIST", "Q"}}, "HIST=Q"},
      {{{"FILESYSTEM", "/src"}, {"UPDATE", "maybe"}}, "UPDATE=maybe"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.reason);
    EXPECT_EQ(dma.start_backup(c.env), NDMP4_ILLEGAL_ARGS_ERR);
    const auto log = next_log(dma, ev);
    ASSERT_TRUE(log.has_value());
    EXPECT_EQ(log->type, NDMP4_LOG_ERROR);
    EXPECT_TRUE(log->associated);
    EXPECT_NE(log->text.find(c.reason), std::string::npos) << log->text;
    EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_LISTEN);
  }
  // Recoveries: a destination outside the exports, directly or through
  // the symlink.
  for (const std::string& prefix : {std::string("/etc"), std::string("/src/escape/x")}) {
    SCOPED_TRACE(prefix);
    EXPECT_EQ(dma.start_recover({{"PREFIX", prefix}}, {}), NDMP4_ILLEGAL_ARGS_ERR);
    const auto log = next_log(dma, ev);
    ASSERT_TRUE(log.has_value());
    EXPECT_NE(log->text.find("destination"), std::string::npos) << log->text;
  }
  EXPECT_FALSE(fs::exists("/etc/x"));
  // Every name leads out: ILLEGAL_ARGS, with LOG_FILE for each.
  {
    const std::size_t files_before = ev.log_files.size();
    EXPECT_EQ(dma.start_recover({{"PREFIX", "/dst/r"}},
                                {{"/a", "../../a", kInf}, {"/b", "/etc/b", kInf}}),
              NDMP4_ILLEGAL_ARGS_ERR);
    for (int i = 0; i < 50 && ev.log_files.size() < files_before + 2; ++i) {
      auto m = dma.c.next_post(100ms);
      if (m) ev.take(*m);
    }
    ASSERT_EQ(ev.log_files.size(), files_before + 2);
    EXPECT_EQ(ev.log_files[files_before].first, "/a");
    EXPECT_EQ(ev.log_files[files_before].second, NDMP4_RECOVERY_FAILED_PERMISSION);
    EXPECT_EQ(ev.log_files[files_before + 1].first, "/b");
  }
  EXPECT_FALSE(fs::exists("/etc/b"));
  EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_LISTEN);
  ASSERT_EQ(dma.data_abort(), NDMP4_NO_ERR);
  ASSERT_EQ(dma.data_stop(), NDMP4_NO_ERR);
}

// ---------------------------------------------------------------------------
// 3. LOCAL backup to the library with path history, recovery of the whole
// image, then node history.

TEST(DataServerLocal, BackupWithHistoryThenRecoverTheTree) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  make_small_tree(s / "src");
  const auto tree = snapshot(s / "src", true);
  DataDma dma(d);
  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot1, NDMP4_TAPE_RDWR_MODE));

  DataDma::Outcome b;
  ASSERT_NO_FATAL_FAILURE(dma.local_backup({{"FILESYSTEM", "/src"}, {"HIST", "F"}}, kRecord, b));
  EXPECT_EQ(b.ev.data_halted, std::vector<int>{NDMP4_DATA_HALT_SUCCESSFUL}) << b.ev.all_logs();
  EXPECT_EQ(b.ev.mover_halted, std::vector<int>{NDMP4_MOVER_HALT_CONNECT_CLOSED});
  EXPECT_EQ(b.data_halt, NDMP4_DATA_HALT_SUCCESSFUL);
  EXPECT_EQ(b.mover_halt, NDMP4_MOVER_HALT_CONNECT_CLOSED);
  EXPECT_GT(b.data_bytes, 3u << 20);
  EXPECT_EQ(b.mover_bytes, b.data_bytes);
  EXPECT_EQ(b.record_num, (b.mover_bytes + kRecord - 1) / kRecord);
  // The environment the backup ran with.
  EXPECT_FALSE(b.env["DUMP_DATE"].empty());
  EXPECT_EQ(b.env["LEVEL"], "0");
  EXPECT_TRUE(b.env["TYPE"] == "tar" || b.env["TYPE"] == "TAR") << b.env["TYPE"];
  EXPECT_EQ(b.env["FILESYSTEM"], "/src");
  // Path history: every entry once, with its attributes and fh_info.
  std::set<std::string> named;
  std::set<std::uint64_t> offsets;
  for (const HistFile& f : b.ev.files) {
    EXPECT_TRUE(named.insert(f.path).second) << "twice: " << f.path;
    EXPECT_NE(f.fh_info, kInf) << f.path;
    EXPECT_LT(f.fh_info, b.data_bytes) << f.path;
    EXPECT_EQ(f.fh_info % 512, 0u) << f.path;
    EXPECT_TRUE(offsets.insert(f.fh_info).second) << f.path;
  }
  std::set<std::string> expected = {"/"};
  for (const auto& [rel, n] : tree) expected.insert("/" + rel);
  EXPECT_EQ(named, expected);
  for (const auto& [rel, n] : tree) {
    const HistFile* f = b.ev.file("/" + rel);
    if (f == nullptr) continue;
    SCOPED_TRACE(rel);
    const int type = n.type == 'd'   ? NDMP4_FILE_DIR
                     : n.type == 'f' ? NDMP4_FILE_REG
                     : n.type == 'l' ? NDMP4_FILE_SLINK
                                     : NDMP4_FILE_OTHER;
    EXPECT_EQ(f->stat.ftype, type);
    if (n.type == 'f') {
      EXPECT_EQ(f->stat.size, n.size);
    }
    if (n.type != 'l') {
      EXPECT_EQ(f->stat.fattr & 07777, n.mode);
      EXPECT_EQ(f->stat.mtime, static_cast<std::uint32_t>(n.mtime));
    }
  }
  // History goes before the halt.
  const auto halted_at =
      std::find(b.ev.codes.begin(), b.ev.codes.end(), std::uint32_t{NDMP4_NOTIFY_DATA_HALTED});
  EXPECT_EQ(std::find(halted_at, b.ev.codes.end(), std::uint32_t{NDMP4_FH_ADD_FILE}),
            b.ev.codes.end());
  ASSERT_EQ(dma.close(), NDMP4_NO_ERR);  // the filemark after the image

  // Recover the whole image.
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  DataDma::Outcome r;
  ASSERT_NO_FATAL_FAILURE(dma.local_recover({{"PREFIX", "/dst/r1"}}, {}, kRecord, r));
  EXPECT_EQ(r.ev.data_halted, std::vector<int>{NDMP4_DATA_HALT_SUCCESSFUL}) << r.ev.all_logs();
  ASSERT_EQ(r.ev.mover_halted.size(), 1u);
  EXPECT_EQ(r.ev.mover_halted[0], NDMP4_MOVER_HALT_CONNECT_CLOSED);
  EXPECT_TRUE(r.ev.read_errors.empty());
  ASSERT_FALSE(r.ev.data_reads.empty());
  EXPECT_EQ(r.ev.data_reads[0].first, 0u);
  EXPECT_GE(r.mover_bytes, b.data_bytes - 2 * kRecord);
  const auto restored = snapshot(s / "dst/r1", true);
  EXPECT_EQ(restored, tree) << "restored:\n" << describe(restored) << "source:\n" << describe(tree);

  // One subtree (no fh_info: found by reading), renamed.
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  DataDma::Outcome sub;
  ASSERT_NO_FATAL_FAILURE(
      dma.local_recover({{"PREFIX", "/dst/r2"}}, {{"/dir", "moved", kInf}}, kRecord, sub));
  EXPECT_EQ(sub.data_halt, NDMP4_DATA_HALT_SUCCESSFUL) << sub.ev.all_logs();
  EXPECT_EQ(sub.ev.log_files,
            (std::vector<std::pair<std::string, int>>{{"/dir", NDMP4_RECOVERY_SUCCESSFUL}}));
  std::map<std::string, Node> want_sub;
  for (const auto& [rel, nd] : tree) {
    if (rel == "dir") want_sub["moved"] = nd;
    if (rel.rfind("dir/", 0) == 0) want_sub["moved/" + rel.substr(4)] = nd;
  }
  const auto got_sub = snapshot(s / "dst/r2", true);
  EXPECT_EQ(got_sub, want_sub) << "restored:\n" << describe(got_sub);

  // The image's own file history: the same names at the same offsets.
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  DataDma::Outcome fh;
  ASSERT_NO_FATAL_FAILURE(
      dma.local_recover({{"HIST", "F"}}, {}, kRecord, fh, std::chrono::seconds(60), true));
  EXPECT_EQ(fh.data_halt, NDMP4_DATA_HALT_SUCCESSFUL) << fh.ev.all_logs();
  std::map<std::string, std::uint64_t> from_backup, from_image;
  for (const HistFile& f : b.ev.files) from_backup[f.path] = f.fh_info;
  for (const HistFile& f : fh.ev.files) from_image[f.path] = f.fh_info;
  EXPECT_EQ(from_image, from_backup);
  EXPECT_EQ(snapshot(s / "dst", false).size(), restored.size() + got_sub.size() + 2);
  ASSERT_EQ(dma.close(), NDMP4_NO_ERR);

  // Node history: FH_ADD_DIR ("." first, its own parent) and FH_ADD_NODE.
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  DataDma::Outcome n;
  ASSERT_NO_FATAL_FAILURE(dma.local_backup({{"FILESYSTEM", "/src"}, {"HIST", "D"}}, kRecord, n));
  EXPECT_EQ(n.data_halt, NDMP4_DATA_HALT_SUCCESSFUL) << n.ev.all_logs();
  EXPECT_TRUE(n.ev.files.empty());
  ASSERT_FALSE(n.ev.dirs.empty());
  EXPECT_EQ(n.ev.dirs[0].name, ".");
  EXPECT_EQ(n.ev.dirs[0].node, n.ev.dirs[0].parent);
  std::map<std::uint64_t, std::string> path_of = {{n.ev.dirs[0].node, ""}};
  std::set<std::string> dir_paths;
  for (std::size_t i = 1; i < n.ev.dirs.size(); ++i) {
    const HistDir& e = n.ev.dirs[i];
    const auto parent = path_of.find(e.parent);
    ASSERT_NE(parent, path_of.end()) << e.name << ": parent " << e.parent << " not named before";
    const std::string p = parent->second.empty() ? e.name : parent->second + "/" + e.name;
    EXPECT_TRUE(path_of.emplace(e.node, p).second) << "node named twice: " << p;
    dir_paths.insert(p);
  }
  std::set<std::string> tree_paths;
  for (const auto& [rel, nd] : tree) tree_paths.insert(rel);
  EXPECT_EQ(dir_paths, tree_paths);
  std::map<std::uint64_t, const HistNode*> node_of;
  for (const HistNode& h : n.ev.nodes) {
    EXPECT_TRUE(node_of.emplace(h.node, &h).second) << "ADD_NODE twice: " << h.node;
    EXPECT_TRUE(path_of.count(h.node)) << "ADD_NODE of an unnamed node " << h.node;
    EXPECT_LT(h.fh_info, n.data_bytes);
  }
  for (const auto& [node, p] : path_of) {
    const auto it = node_of.find(node);
    ASSERT_NE(it, node_of.end()) << "no ADD_NODE for " << (p.empty() ? "." : p);
    if (p.empty()) {
      EXPECT_EQ(it->second->stat.ftype, NDMP4_FILE_DIR);
      continue;
    }
    const Node& t = tree.at(p);
    SCOPED_TRACE(p);
    EXPECT_EQ(it->second->stat.ftype, t.type == 'd'   ? NDMP4_FILE_DIR
                                      : t.type == 'f' ? NDMP4_FILE_REG
                                                      : NDMP4_FILE_SLINK);
    if (t.type == 'f') {
      EXPECT_EQ(it->second->stat.size, t.size);
    }
  }
}

// ---------------------------------------------------------------------------
// 4. TCP both ways: MOVER_LISTEN + DATA_CONNECT (backup), DATA_LISTEN +
// MOVER_CONNECT (recovery).

TEST(DataServerTcp, BackupToAListeningMoverRecoverFromAListeningDataServer) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  make_small_tree(s / "src");
  const auto tree = snapshot(s / "src", true);
  DataDma dma(d);
  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot1, NDMP4_TAPE_RDWR_MODE));
  ASSERT_EQ(dma.record_size(kRecord), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(0, kInf), NDMP4_NO_ERR);
  const auto [lerr, maddr] = dma.listen(NDMP4_MOVER_MODE_READ);
  ASSERT_EQ(lerr, NDMP4_NO_ERR);
  ASSERT_EQ(dma.data_connect_tcp(maddr.first, maddr.second), NDMP4_NO_ERR);
  {
    const auto st = dma.data_state();
    EXPECT_EQ(st->state, NDMP4_DATA_STATE_CONNECTED);
    EXPECT_EQ(st->data_connection_addr.addr_type, NDMP4_ADDR_TCP);
  }
  ASSERT_EQ(dma.start_backup({{"FILESYSTEM", "/src"}, {"HIST", "F"}}), NDMP4_NO_ERR);
  DataDma::Outcome b;
  ASSERT_TRUE(dma.run(b.ev, DataDma::Answer{}));
  ASSERT_NO_FATAL_FAILURE(dma.finish(b, true));
  EXPECT_EQ(b.data_halt, NDMP4_DATA_HALT_SUCCESSFUL) << b.ev.all_logs();
  EXPECT_EQ(b.mover_halt, NDMP4_MOVER_HALT_CONNECT_CLOSED);
  EXPECT_EQ(b.mover_bytes, b.data_bytes);
  EXPECT_EQ(b.ev.files.size(), tree.size() + 1);
  ASSERT_EQ(dma.close(), NDMP4_NO_ERR);

  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  ASSERT_EQ(dma.record_size(kRecord), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(0, kInf), NDMP4_NO_ERR);
  const auto rep = dma.data_listen(NDMP4_ADDR_TCP);
  ASSERT_EQ(rep.error(), NDMP4_NO_ERR);
  ASSERT_GE(rep->connect_addr.ndmp4_addr_u.tcp_addr.tcp_addr_len, 1u);
  const auto daddr = rep->connect_addr.ndmp4_addr_u.tcp_addr.tcp_addr_val[0];
  ASSERT_EQ(dma.connect(NDMP4_MOVER_MODE_WRITE, daddr.ip_addr, daddr.port), NDMP4_NO_ERR);
  ASSERT_EQ(dma.start_recover({{"PREFIX", "/dst/tcp"}}, {}), NDMP4_NO_ERR);
  DataDma::Outcome r;
  DataDma::Answer how;
  how.reads = how.close_at_end = how.close_after_data = true;
  how.record_size = kRecord;
  ASSERT_TRUE(dma.run(r.ev, how));
  ASSERT_NO_FATAL_FAILURE(dma.finish(r, false));
  EXPECT_EQ(r.data_halt, NDMP4_DATA_HALT_SUCCESSFUL) << r.ev.all_logs();
  EXPECT_TRUE(r.ev.read_errors.empty());
  const auto restored = snapshot(s / "dst/tcp", true);
  EXPECT_EQ(restored, tree) << "restored:\n" << describe(restored);
}

// A data connection peer for DATA_CONNECT: a loopback listener, and the
// connection it accepts.
class PeerSocket {
 public:
  PeerSocket() {
    lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(lfd_, 1) == 0 &&
        ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port_ = ntohs(a.sin_port);
    }
    timeval tv{10, 0};
    ::setsockopt(lfd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~PeerSocket() {
    if (fd_ >= 0) ::close(fd_);
    if (lfd_ >= 0) ::close(lfd_);
  }
  std::uint16_t port() const { return port_; }
  bool accept_one() {
    fd_ = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd_ < 0) return false;
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return true;
  }
  std::size_t receive(std::size_t n) {
    std::vector<char> buf(1 << 16);
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = ::recv(fd_, buf.data(), std::min(buf.size(), n - got), 0);
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    return got;
  }
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
    fd_ = -1;
  }

 private:
  int lfd_ = -1, fd_ = -1;
  std::uint16_t port_ = 0;
};

// Three-way, the DMA's own socket as the mover: a peer that stops reading
// leaves the backup ACTIVE; the session is not idle meanwhile (idle
// timeout 1 s); DATA_ABORT frees the blocked data server.
TEST(DataServerTcp, BlockedBackupIsNotIdleAndAborts) {
  Scratch s;
  Daemon::Options o = with_exports(s);
  o.config_text = shipped_config_with("idle_timeout = 1800", "idle_timeout = 1");
  Daemon d(o);
  const LogOnThrow guard{d};
  make_large_tree(s / "src");
  DataDma dma(d);
  PeerSocket peer;
  ASSERT_NE(peer.port(), 0u);
  ASSERT_EQ(dma.data_connect_tcp(0x7F000001u, peer.port()), NDMP4_NO_ERR);
  ASSERT_TRUE(peer.accept_one());
  ASSERT_EQ(dma.start_backup({{"FILESYSTEM", "/src"}}), NDMP4_NO_ERR);
  EXPECT_EQ(peer.receive(1u << 20), 1u << 20);
  std::this_thread::sleep_for(2500ms);
  const auto st = dma.data_state();  // throws if the session was closed
  EXPECT_EQ(st->state, NDMP4_DATA_STATE_ACTIVE);
  EXPECT_EQ(st->operation, NDMP4_DATA_OP_BACKUP);
  EXPECT_EQ(st->data_connection_addr.addr_type, NDMP4_ADDR_TCP);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(dma.data_abort(), NDMP4_NO_ERR);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  Events ev;
  EXPECT_EQ(next_data_halted(dma, ev), NDMP4_DATA_HALT_ABORTED);
  EXPECT_EQ(dma.data_stop(), NDMP4_NO_ERR);
  // Without a job the session is idle again.
  EXPECT_TRUE(dma.c.wait_closed(5s));
}

// A backup that takes a while reports progress: LOG_MESSAGEs at the
// configured interval with bytes, files and rate, and DATA_GET_STATE with
// bytes processed and estimates of what is left.
TEST(DataServerProgress, LogLinesAndEstimatesWhileABackupRuns) {
  Scratch s;
  Daemon::Options o = with_exports(s);
  o.config_text = shipped_config_with("progress_interval = 30", "progress_interval = 1");
  Daemon d(o);
  const LogOnThrow guard{d};
  // 96 MiB: far more than the socket buffers and the server's pipeline
  // hold, so that the backup is still reading files (and estimating what
  // is left) while the test drains it, on a loaded machine too.
  put_big_file(s / "src" / "one.bin", 48u << 20, 21);
  put_big_file(s / "src" / "two.bin", 48u << 20, 22);
  DataDma dma(d);
  PeerSocket peer;
  ASSERT_EQ(dma.data_connect_tcp(0x7F000001u, peer.port()), NDMP4_NO_ERR);
  ASSERT_TRUE(peer.accept_one());
  ASSERT_EQ(dma.start_backup({{"FILESYSTEM", "/src"}}), NDMP4_NO_ERR);
  // Drain the image slowly: 4 MiB every 200 ms.
  Events ev;
  std::optional<LogMsg> progress;
  bool estimated = false;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until && (!progress || !estimated)) {
    if (peer.receive(4u << 20) == 0) break;
    const auto st = dma.data_state();
    if (st->state != NDMP4_DATA_STATE_ACTIVE) break;
    EXPECT_GT(st->bytes_processed, 0u);
    if ((st->unsupported & NDMP4_DATA_STATE_EST_BYTES_REMAIN_UNS) == 0 &&
        (st->unsupported & NDMP4_DATA_STATE_EST_TIME_REMAIN_UNS) == 0) {
      estimated = true;
      // 96 MiB of files: what is left never exceeds the tree.
      EXPECT_LE(st->est_bytes_remain + st->bytes_processed, 98u << 20);
      EXPECT_GT(st->est_bytes_remain, 0u);
    }
    while (auto m = dma.c.next_post(200ms)) {
      ev.take(*m);
      for (const LogMsg& l : ev.logs) {
        if (l.text.rfind("backup: ", 0) == 0) progress = l;
      }
    }
  }
  EXPECT_TRUE(estimated) << "DATA_GET_STATE never estimated what is left";
  ASSERT_TRUE(progress) << "no progress LOG_MESSAGE";
  EXPECT_EQ(progress->type, NDMP4_LOG_NORMAL);
  EXPECT_NE(progress->text.find(" MB, "), std::string::npos) << progress->text;
  EXPECT_NE(progress->text.find(" files, "), std::string::npos) << progress->text;
  EXPECT_NE(progress->text.find(" MB/s"), std::string::npos) << progress->text;
  ASSERT_EQ(dma.data_abort(), NDMP4_NO_ERR);
  EXPECT_EQ(next_data_halted(dma, ev), NDMP4_DATA_HALT_ABORTED);
  EXPECT_EQ(dma.data_stop(), NDMP4_NO_ERR);
}

// Three-way: the peer resets the data connection mid-backup: the data
// server halts CONNECT_ERROR.
TEST(DataServerTcp, PeerResetHaltsConnectError) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  make_large_tree(s / "src");
  DataDma dma(d);
  PeerSocket peer;
  ASSERT_EQ(dma.data_connect_tcp(0x7F000001u, peer.port()), NDMP4_NO_ERR);
  ASSERT_TRUE(peer.accept_one());
  ASSERT_EQ(dma.start_backup({{"FILESYSTEM", "/src"}, {"HIST", "F"}}), NDMP4_NO_ERR);
  EXPECT_EQ(peer.receive(256u << 10), 256u << 10);
  peer.reset();
  Events ev;
  EXPECT_EQ(next_data_halted(dma, ev, 10000ms), NDMP4_DATA_HALT_CONNECT_ERROR) << ev.all_logs();
  const auto st = dma.data_state();
  EXPECT_EQ(st->state, NDMP4_DATA_STATE_HALTED);
  EXPECT_EQ(st->halt_reason, NDMP4_DATA_HALT_CONNECT_ERROR);
  EXPECT_EQ(dma.data_stop(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_IDLE);
}

// The same after the peer stalled long enough for every buffer between
// the engine and the socket to fill (the engine waits to hand over a
// block): the reset must still halt the operation, CONNECT_ERROR.
TEST(DataServerTcp, PeerResetAfterAStallHaltsConnectError) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  make_large_tree(s / "src");
  DataDma dma(d);
  PeerSocket peer;
  ASSERT_EQ(dma.data_connect_tcp(0x7F000001u, peer.port()), NDMP4_NO_ERR);
  ASSERT_TRUE(peer.accept_one());
  ASSERT_EQ(dma.start_backup({{"FILESYSTEM", "/src"}}), NDMP4_NO_ERR);
  EXPECT_EQ(peer.receive(256u << 10), 256u << 10);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_ACTIVE);
  peer.reset();
  Events ev;
  EXPECT_EQ(next_data_halted(dma, ev, 10000ms), NDMP4_DATA_HALT_CONNECT_ERROR) << ev.all_logs();
  EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_HALTED);
}

// ---------------------------------------------------------------------------
// 5. Direct access recovery: three small files out of a large image,
// renamed; the mover moves little more than the records holding them.

void direct_access_recovery(std::uint64_t big) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  const fs::path src = s / "src";
  put_file(src / "a_small.txt", "the first small file\n", 0640, 1600000100);
  put_big_file(src / "big1.bin", big / 2, 11);
  put_big_file(src / "dir/big2.bin", big / 4, 12);
  put_file(src / "dir/c_small.txt", std::string(5000, 'c'), 0600, 1600000200);
  put_big_file(src / "z/big3.bin", big / 4, 13);
  put_file(src / "z/zz_small.txt", "the last one\n", 0644, 1600000300);
  DataDma dma(d);
  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot1, NDMP4_TAPE_RDWR_MODE));
  DataDma::Outcome b;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(dma.local_backup({{"FILESYSTEM", "/src"}, {"HIST", "F"}}, kRecord, b));
  std::cout << "[ info ] backup of " << b.data_bytes << " bytes took "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t0)
                   .count()
            << " ms\n";
  ASSERT_EQ(b.data_halt, NDMP4_DATA_HALT_SUCCESSFUL) << b.ev.all_logs();
  ASSERT_GT(b.data_bytes, big);
  ASSERT_EQ(dma.close(), NDMP4_NO_ERR);

  struct Want {
    std::string path, dest, result;
    std::uint64_t size = 0;
  };
  // Far end first, then back to the start, then the middle.
  const std::vector<Want> wants = {
      {"/z/zz_small.txt", "renamed/one.txt", "renamed/one.txt", 13},
      {"/a_small.txt", "renamed/two.txt", "renamed/two.txt", 21},
      {"/dir/c_small.txt", "/dst/dar/other/three.txt", "other/three.txt", 5000},
  };
  std::vector<DataDma::Name> names;
  std::uint64_t bound = 0;
  for (const Want& w : wants) {
    const HistFile* f = b.ev.file(w.path);
    ASSERT_NE(f, nullptr) << w.path;
    ASSERT_NE(f->fh_info, kInf);
    names.push_back({w.path, w.dest, f->fh_info});
    // The records holding the file: from its headers' record through its
    // data (the headers and the engine's first range within 4 KiB), one
    // record of slack.
    const std::uint64_t first = f->fh_info / kRecord;
    const std::uint64_t last = (f->fh_info + (4u << 10) + w.size + 1024) / kRecord;
    bound += (last - first + 2) * kRecord;
  }
  ASSERT_LT(bound, b.data_bytes / 50);

  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  DataDma::Outcome r;
  const auto t1 = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(
      dma.local_recover({{"PREFIX", "/dst/dar"}, {"DIRECT", "Y"}}, names, kRecord, r));
  const auto took = std::chrono::steady_clock::now() - t1;
  std::cout << "[ info ] direct access: the mover moved " << r.mover_bytes << " bytes of "
            << b.data_bytes << " (bound " << bound << ") in " << r.ev.data_reads.size()
            << " reads\n";
  EXPECT_EQ(r.data_halt, NDMP4_DATA_HALT_SUCCESSFUL) << r.ev.all_logs();
  EXPECT_TRUE(r.ev.read_errors.empty());
  EXPECT_LE(r.mover_bytes, bound) << "reads: " << r.ev.data_reads.size();
  EXPECT_LT(r.mover_bytes, b.data_bytes / 50);
  EXPECT_LT(took, 20s);
  for (const auto& [off, len] : r.ev.data_reads) EXPECT_NE(len, kInf) << "a read to the end";
  std::map<std::string, int> results(r.ev.log_files.begin(), r.ev.log_files.end());
  for (const Want& w : wants) {
    SCOPED_TRACE(w.path);
    ASSERT_TRUE(results.count(w.path)) << "no LOG_FILE";
    EXPECT_EQ(results[w.path], NDMP4_RECOVERY_SUCCESSFUL);
    const fs::path got = s / "dst/dar" / w.result;
    EXPECT_EQ(read_all(got), read_all(src / w.path.substr(1)));
    struct stat a {
    }, o{};
    ASSERT_EQ(::stat(got.c_str(), &a), 0);
    ASSERT_EQ(::stat((src / w.path.substr(1)).c_str(), &o), 0);
    EXPECT_EQ(a.st_mode & 07777, o.st_mode & 07777);
    EXPECT_EQ(a.st_mtim.tv_sec, o.st_mtim.tv_sec);
  }
  std::set<std::string> restored;
  for (const auto& [rel, n] : snapshot(s / "dst/dar", false)) restored.insert(rel);
  EXPECT_EQ(restored, (std::set<std::string>{"renamed", "renamed/one.txt", "renamed/two.txt",
                                             "other", "other/three.txt"}));
}

TEST(DataServerDar, ThreeSmallFilesOutOfA128MiBImage) { direct_access_recovery(128u << 20); }

TEST(DataServerDar, ThreeSmallFilesOutOfA1GiBImage) { direct_access_recovery(1u << 30); }

// ---------------------------------------------------------------------------
// 6. A level 0 and a level 1 through NDMP, restored in order: the second
// state exactly.

TEST(DataServerIncremental, LevelZeroThenOneRestoreToTheSecondState) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  const fs::path src = s / "src";
  put_file(src / "keep.txt", "unchanged\n");
  put_file(src / "change.txt", "before\n");
  put_file(src / "mode_only.txt", "mode changes\n", 0644);
  put_file(src / "delete.txt", "going away\n");
  put_file(src / "rename_me.txt", "renamed later\n", 0600);
  put_file(src / "dir_old/f1.txt", "in a renamed directory\n");
  put_file(src / "dir_old/sub/f2.txt", "deeper in it\n", 0640);
  put_file(src / "gone_dir/x.txt", "a removed directory\n");
  put_file(src / "stays/s.txt", "stays\n");
  // Changes in the clock tick the level 0 starts in count as after it.
  std::this_thread::sleep_for(50ms);
  DataDma dma(d);
  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot1, NDMP4_TAPE_RDWR_MODE));
  DataDma::Outcome l0;
  ASSERT_NO_FATAL_FAILURE(dma.local_backup(
      {{"FILESYSTEM", "/src"}, {"LEVEL", "0"}, {"UPDATE", "Y"}, {"HIST", "F"}}, kRecord, l0));
  ASSERT_EQ(l0.data_halt, NDMP4_DATA_HALT_SUCCESSFUL) << l0.ev.all_logs();
  ASSERT_NO_FATAL_FAILURE(dma.unload(kSlot1));

  std::this_thread::sleep_for(50ms);
  put_file(src / "new.txt", "added\n");
  put_file(src / "newdir/n.txt", "added in a new directory\n", 0600);
  put_file(src / "change.txt", "after: longer content than before\n");
  ::chmod((src / "mode_only.txt").c_str(), 0600);
  fs::remove(src / "delete.txt");
  fs::rename(src / "rename_me.txt", src / "renamed.txt");
  fs::rename(src / "dir_old", src / "dir_new");
  fs::remove_all(src / "gone_dir");
  const auto second = snapshot(src, false);

  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot2, NDMP4_TAPE_RDWR_MODE));
  DataDma::Outcome l1;
  ASSERT_NO_FATAL_FAILURE(dma.local_backup(
      {{"FILESYSTEM", "/src"}, {"LEVEL", "1"}, {"UPDATE", "Y"}, {"HIST", "F"}}, kRecord, l1));
  ASSERT_EQ(l1.data_halt, NDMP4_DATA_HALT_SUCCESSFUL) << l1.ev.all_logs();
  EXPECT_EQ(l1.env["LEVEL"], "1");
  EXPECT_LT(l1.data_bytes, l0.data_bytes + 64 * 1024);
  std::string l1_files;
  for (const HistFile& f : l1.ev.files) l1_files += " " + f.path;
  EXPECT_EQ(l1.ev.file("/keep.txt"), nullptr) << "an unchanged file in the level 1:" << l1_files;
  EXPECT_NE(l1.ev.file("/new.txt"), nullptr);
  EXPECT_NE(l1.ev.file("/change.txt"), nullptr);
  EXPECT_NE(l1.ev.file("/renamed.txt"), nullptr);
  EXPECT_EQ(l1.ev.file("/delete.txt"), nullptr);
  ASSERT_NO_FATAL_FAILURE(dma.unload(kSlot2));

  for (const std::uint16_t slot : {kSlot1, kSlot2}) {
    SCOPED_TRACE(slot);
    ASSERT_NO_FATAL_FAILURE(dma.load(slot, NDMP4_TAPE_READ_MODE));
    DataDma::Outcome r;
    ASSERT_NO_FATAL_FAILURE(dma.local_recover({{"PREFIX", "/dst/inc"}}, {}, kRecord, r));
    EXPECT_EQ(r.data_halt, NDMP4_DATA_HALT_SUCCESSFUL) << r.ev.all_logs();
    ASSERT_NO_FATAL_FAILURE(dma.unload(slot));
  }
  const auto restored = snapshot(s / "dst/inc", false);
  EXPECT_EQ(restored, second) << "restored:\n"
                              << describe(restored) << "second state:\n"
                              << describe(second);
}

// ---------------------------------------------------------------------------
// 7. A hostile image, written onto the cartridge with TAPE_WRITE: nothing
// lands outside the destination, the refusals are logged, the rest is
// restored.

TEST(DataServerSecurity, HostileImageStaysInsideTheDestination) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  Scratch outside;
  put_file(outside / "secret.txt", "not to be linked\n");
  const std::string secret = (outside / "secret.txt").string();
  const std::string abs_dir = "/ndmpd-dit-abs-" + std::to_string(::getpid());

  std::vector<std::uint8_t> image;
  auto add = [&image](const std::string& name, char type, const std::string& data,
                      const std::string& link = {}) {
    const auto h = ustar_header(name, type, data.size(), link);
    image.insert(image.end(), h.begin(), h.end());
    image.insert(image.end(), data.begin(), data.end());
    image.resize((image.size() + 511) / 512 * 512, 0);
  };
  add("good.txt", '0', "good content\n");
  add("../evil", '0', "evil 1\n");
  add(abs_dir + "/evil", '0', "evil 2\n");
  add("link", '2', "", outside.dir().string());
  add("link/evil", '0', "evil 3\n");
  add("hl", '1', "", secret);
  add("sub/../../evil2", '0', "evil 4\n");
  add("gooddir/", '5', "");
  add("gooddir/ok.txt", '0', "ok\n");
  image.resize(image.size() + 1024, 0);
  constexpr std::uint32_t kRec = 10240;
  image.resize((image.size() + kRec - 1) / kRec * kRec, 0);

  DataDma dma(d);
  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot1, NDMP4_TAPE_RDWR_MODE));
  for (std::size_t at = 0; at < image.size(); at += kRec) {
    const Bytes rec(image.begin() + static_cast<std::ptrdiff_t>(at),
                    image.begin() + static_cast<std::ptrdiff_t>(at + kRec));
    ASSERT_EQ(dma.write(rec), std::make_pair(NDMP4_NO_ERR, kRec));
  }
  ASSERT_EQ(dma.close(), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  DataDma::Outcome r;
  ASSERT_NO_FATAL_FAILURE(dma.local_recover({{"PREFIX", "/dst/sec"}}, {}, kRec, r));
  std::cout << "[ info ] hostile image: data halted " << r.data_halt << ", logs:\n"
            << r.ev.all_logs();

  // Nothing outside the destination.
  EXPECT_FALSE(fs::exists(s / "dst/evil"));
  EXPECT_FALSE(fs::exists(s / "dst/evil2"));
  EXPECT_FALSE(fs::exists(s / "evil"));
  EXPECT_FALSE(fs::exists(abs_dir));
  EXPECT_FALSE(fs::exists(outside / "evil"));
  std::set<std::string> outside_now;
  for (const auto& [rel, n] : snapshot(outside.dir(), false)) outside_now.insert(rel);
  EXPECT_EQ(outside_now, std::set<std::string>{"secret.txt"});
  struct stat st {};
  ASSERT_EQ(::stat(secret.c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u) << "the image hard-linked a file outside";
  for (const auto& [rel, n] : snapshot(s / "dst", false)) {
    EXPECT_EQ(rel.rfind("sec", 0), 0u) << rel;
  }
  // Inside: the good entries; nothing through the symlink.
  EXPECT_EQ(read_all(s / "dst/sec/good.txt"), "good content\n");
  EXPECT_EQ(read_all(s / "dst/sec/gooddir/ok.txt"), "ok\n");
  EXPECT_FALSE(fs::exists(s / "dst/sec" / abs_dir.substr(1)));
  if (fs::is_symlink(s / "dst/sec/link")) {
    EXPECT_EQ(fs::read_symlink(s / "dst/sec/link"), outside.dir());
  }
  // The refusals are named.
  for (const std::string& name :
       {std::string("../evil"), abs_dir + "/evil", std::string("link/evil"), std::string("hl"),
        std::string("sub/../../evil2")}) {
    EXPECT_TRUE(r.ev.has_log(name)) << name << " not named in:\n" << r.ev.all_logs();
  }
}

// ---------------------------------------------------------------------------
// 8. DATA_ABORT while a backup runs (the mover's window keeps it from
// finishing): ABORTED, the mover stops, the tape keeps what was written,
// and the devices serve the next backup.

TEST(DataServerAbort, AbortMidBackupThenBackUpAgain) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  make_large_tree(s / "src");
  DataDma dma(d);
  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot1, NDMP4_TAPE_RDWR_MODE));
  constexpr std::uint64_t kWindow = 2u << 20;
  ASSERT_EQ(dma.record_size(kRecord), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(0, kWindow), NDMP4_NO_ERR);
  ASSERT_EQ(dma.listen(NDMP4_MOVER_MODE_READ, NDMP4_ADDR_LOCAL).first, NDMP4_NO_ERR);
  ASSERT_EQ(dma.data_connect_local(), NDMP4_NO_ERR);
  ASSERT_EQ(dma.start_backup({{"FILESYSTEM", "/src"}, {"HIST", "F"}}), NDMP4_NO_ERR);
  Events ev;
  for (int i = 0; i < 100 && ev.mover_paused.empty(); ++i) {
    if (auto m = dma.c.next_post(100ms)) ev.take(*m);
  }
  ASSERT_EQ(ev.mover_paused.size(), 1u);
  EXPECT_EQ(ev.mover_paused[0].first, NDMP4_MOVER_PAUSE_EOW);
  {
    const auto st = dma.data_state();
    EXPECT_EQ(st->state, NDMP4_DATA_STATE_ACTIVE);
    EXPECT_EQ(st->operation, NDMP4_DATA_OP_BACKUP);
    EXPECT_GE(st->bytes_processed, kWindow);
  }
  EXPECT_EQ(dma.data_stop(), NDMP4_ILLEGAL_STATE_ERR);  // ACTIVE
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(dma.data_abort(), NDMP4_NO_ERR);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  {
    const auto st = dma.data_state();
    EXPECT_EQ(st->state, NDMP4_DATA_STATE_HALTED);
    EXPECT_EQ(st->halt_reason, NDMP4_DATA_HALT_ABORTED);
  }
  EXPECT_EQ(next_data_halted(dma, ev), NDMP4_DATA_HALT_ABORTED);
  // The mover, paused at the window's end, goes on with a new window and
  // meets the end of the aborted connection.
  for (int i = 0; i < 10 && ev.mover_halted.empty(); ++i) {
    if (auto m = dma.c.next_post(100ms)) ev.take(*m);
  }
  if (ev.mover_halted.empty()) {
    EXPECT_EQ(dma.mover()->state, NDMP4_MOVER_STATE_PAUSED);
    ASSERT_EQ(dma.window(kWindow, kInf - kWindow), NDMP4_NO_ERR);
    ASSERT_EQ(dma.cont(), NDMP4_NO_ERR);
    for (int i = 0; i < 100 && ev.mover_halted.empty(); ++i) {
      if (auto m = dma.c.next_post(100ms)) ev.take(*m);
    }
  }
  ASSERT_EQ(ev.mover_halted.size(), 1u);
  const int mover_reason = ev.mover_halted[0];
  std::cout << "[ info ] after DATA_ABORT the mover halted with reason " << mover_reason
            << (mover_reason == NDMP4_MOVER_HALT_CONNECT_CLOSED  ? " (CONNECT_CLOSED)"
                : mover_reason == NDMP4_MOVER_HALT_CONNECT_ERROR ? " (CONNECT_ERROR)"
                                                                 : "")
            << "\n";
  EXPECT_TRUE(mover_reason == NDMP4_MOVER_HALT_CONNECT_CLOSED ||
              mover_reason == NDMP4_MOVER_HALT_CONNECT_ERROR)
      << mover_reason;
  const auto ms = dma.mover();
  EXPECT_EQ(ms->state, NDMP4_MOVER_STATE_HALTED);
  EXPECT_GE(ms->bytes_moved, kWindow);
  EXPECT_EQ(dma.data_stop(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.close(), NDMP4_NO_ERR);

  // The tape keeps what was written: a tar header first.
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  for (std::uint64_t rec = 0; rec < kWindow / kRecord; ++rec) {
    const auto [e, data] = dma.read(kRecord);
    ASSERT_EQ(e, NDMP4_NO_ERR) << rec;
    ASSERT_EQ(data.size(), kRecord);
    if (rec == 0) {
      EXPECT_TRUE(looks_like_tar_header(data));
    }
  }
  ASSERT_EQ(dma.close(), NDMP4_NO_ERR);

  // The devices were released: the next backup runs.
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  DataDma::Outcome b;
  ASSERT_NO_FATAL_FAILURE(dma.local_backup({{"FILESYSTEM", "/src/small"}}, kRecord, b));
  EXPECT_EQ(b.data_halt, NDMP4_DATA_HALT_SUCCESSFUL) << b.ev.all_logs();
  EXPECT_EQ(b.mover_halt, NDMP4_MOVER_HALT_CONNECT_CLOSED);
}

// DATA_ABORT while the image streams at full speed (no window to stop
// it), then while a recovery streams: ABORTED both times, the mover halts,
// the session goes on.
TEST(DataServerAbort, AbortWhileBackupAndRecoveryStream) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  for (int i = 0; i < 4; ++i) {
    put_big_file(s / ("src/f" + std::to_string(i) + ".bin"), 64u << 20, 30 + i);
  }
  DataDma dma(d);
  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot1, NDMP4_TAPE_RDWR_MODE));
  // A whole backup first (on the second cartridge) to recover later.
  ASSERT_NO_FATAL_FAILURE(dma.unload(kSlot1));
  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot2, NDMP4_TAPE_RDWR_MODE));
  DataDma::Outcome full;
  ASSERT_NO_FATAL_FAILURE(dma.local_backup({{"FILESYSTEM", "/src"}}, kRecord, full));
  ASSERT_EQ(full.data_halt, NDMP4_DATA_HALT_SUCCESSFUL);
  ASSERT_NO_FATAL_FAILURE(dma.unload(kSlot2));

  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot1, NDMP4_TAPE_RDWR_MODE));
  ASSERT_EQ(dma.record_size(kRecord), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(0, kInf), NDMP4_NO_ERR);
  ASSERT_EQ(dma.listen(NDMP4_MOVER_MODE_READ, NDMP4_ADDR_LOCAL).first, NDMP4_NO_ERR);
  ASSERT_EQ(dma.data_connect_local(), NDMP4_NO_ERR);
  ASSERT_EQ(dma.start_backup({{"FILESYSTEM", "/src"}, {"HIST", "F"}}), NDMP4_NO_ERR);
  std::uint64_t seen = 0;
  for (int i = 0; i < 2000 && seen < (16u << 20); ++i) {
    const auto st = dma.data_state();
    ASSERT_EQ(st->state, NDMP4_DATA_STATE_ACTIVE) << "the backup ended before the abort";
    seen = st->bytes_processed;
    if (seen < (16u << 20)) std::this_thread::sleep_for(2ms);
  }
  ASSERT_EQ(dma.data_abort(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.data_state()->halt_reason, NDMP4_DATA_HALT_ABORTED);
  DataDma::Outcome b;
  ASSERT_TRUE(dma.run(b.ev, DataDma::Answer{}, 30s));
  EXPECT_EQ(b.ev.data_halted, std::vector<int>{NDMP4_DATA_HALT_ABORTED});
  ASSERT_EQ(b.ev.mover_halted.size(), 1u);
  std::cout << "[ info ] mover halted " << b.ev.mover_halted[0] << " after a streaming abort\n";
  EXPECT_TRUE(b.ev.mover_halted[0] == NDMP4_MOVER_HALT_CONNECT_CLOSED ||
              b.ev.mover_halted[0] == NDMP4_MOVER_HALT_CONNECT_ERROR);
  ASSERT_NO_FATAL_FAILURE(dma.finish(b, true));
  EXPECT_LT(b.data_bytes, full.data_bytes);
  EXPECT_GT(b.mover_bytes, 0u);
  EXPECT_LE(b.mover_bytes, b.data_bytes);
  ASSERT_NO_FATAL_FAILURE(dma.unload(kSlot1));

  // A recovery of the whole backup, aborted on the way.
  ASSERT_NO_FATAL_FAILURE(dma.load(kSlot2, NDMP4_TAPE_READ_MODE));
  ASSERT_EQ(dma.record_size(kRecord), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(0, kInf), NDMP4_NO_ERR);
  ASSERT_EQ(dma.listen(NDMP4_MOVER_MODE_WRITE, NDMP4_ADDR_LOCAL).first, NDMP4_NO_ERR);
  ASSERT_EQ(dma.data_connect_local(), NDMP4_NO_ERR);
  ASSERT_EQ(dma.start_recover({{"PREFIX", "/dst/part"}}, {}), NDMP4_NO_ERR);
  Events rev;
  // Answer the first NOTIFY_DATA_READ, then abort once some of it is in.
  for (int i = 0; i < 100 && rev.data_reads.empty(); ++i) {
    if (auto m = dma.c.next_post(100ms)) rev.take(*m);
  }
  ASSERT_EQ(rev.data_reads.size(), 1u);
  ASSERT_EQ(dma.read_range(rev.data_reads[0].first, rev.data_reads[0].second), NDMP4_NO_ERR);
  seen = 0;
  for (int i = 0; i < 2000 && seen < (16u << 20); ++i) {
    const auto st = dma.data_state();
    ASSERT_EQ(st->state, NDMP4_DATA_STATE_ACTIVE) << "the recovery ended before the abort";
    seen = st->bytes_processed;
    if (seen < (16u << 20)) std::this_thread::sleep_for(2ms);
  }
  ASSERT_EQ(dma.data_abort(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.data_state()->halt_reason, NDMP4_DATA_HALT_ABORTED);
  DataDma::Answer how;
  how.close_after_data = true;
  ASSERT_TRUE(dma.run(rev, how, 30s));
  EXPECT_EQ(rev.data_halted, std::vector<int>{NDMP4_DATA_HALT_ABORTED});
  ASSERT_EQ(rev.mover_halted.size(), 1u);
  std::cout << "[ info ] mover halted " << rev.mover_halted[0] << " after a recovery abort"
            << (rev.dma_closed_mover ? " (closed by the DMA)" : "") << "\n";
  EXPECT_EQ(dma.data_stop(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.close(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_IDLE);
}

// ---------------------------------------------------------------------------
// 9. The DMA goes away mid-backup: the next session gets the drive soon,
// and the records written are on the tape.

TEST(DataServerAbort, DmaGoneMidBackupReleasesTheDrive) {
  Scratch s;
  Daemon d(with_exports(s));
  const LogOnThrow guard{d};
  make_large_tree(s / "src");
  {
    DataDma dma(d);
    ASSERT_NO_FATAL_FAILURE(dma.load(kSlot1, NDMP4_TAPE_RDWR_MODE));
    ASSERT_EQ(dma.record_size(kRecord), NDMP4_NO_ERR);
    ASSERT_EQ(dma.window(0, 2u << 20), NDMP4_NO_ERR);
    ASSERT_EQ(dma.listen(NDMP4_MOVER_MODE_READ, NDMP4_ADDR_LOCAL).first, NDMP4_NO_ERR);
    ASSERT_EQ(dma.data_connect_local(), NDMP4_NO_ERR);
    ASSERT_EQ(dma.start_backup({{"FILESYSTEM", "/src"}, {"HIST", "F"}}), NDMP4_NO_ERR);
    Events ev;
    for (int i = 0; i < 100 && ev.mover_paused.empty(); ++i) {
      if (auto m = dma.c.next_post(100ms)) ev.take(*m);
    }
    ASSERT_EQ(ev.mover_paused.size(), 1u);
    EXPECT_EQ(dma.data_state()->state, NDMP4_DATA_STATE_ACTIVE);
    dma.c.close();
  }
  DataDma next(d);
  const auto t0 = std::chrono::steady_clock::now();
  ndmp4_error e = NDMP4_DEVICE_BUSY_ERR;
  while (e == NDMP4_DEVICE_BUSY_ERR && std::chrono::steady_clock::now() < t0 + 10s) {
    e = next.open("vtl0.drive0", NDMP4_TAPE_READ_MODE);
    if (e == NDMP4_DEVICE_BUSY_ERR) std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(e, NDMP4_NO_ERR);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  ASSERT_EQ(next.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  const auto [re, data] = next.read(kRecord);
  ASSERT_EQ(re, NDMP4_NO_ERR);
  EXPECT_TRUE(looks_like_tar_header(data));
  EXPECT_EQ(next.data_state()->state, NDMP4_DATA_STATE_IDLE);
  EXPECT_TRUE(d.wait_for_log("data operation ended: aborted", 5s));
  EXPECT_TRUE(d.running());
}

}  // namespace
}  // namespace ndmpd
