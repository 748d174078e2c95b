// The NDMP mover over TCP against the embedded library, with this test
// process as the DMA (one NDMP session) and as the data server (a plain
// socket thread that connects to MOVER_LISTEN's address, or that MOVER_CONNECT
// dials): backups across cartridges with EOM pauses and cartridge changes
// through the robot, recoveries across cartridges with SEEK pauses and new
// windows, every pause and halt reason, a DMA that goes away while the
// mover writes, the address policy, and the request errors.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "daemon.h"
#include "dma.h"
#include "ndmpd/client/client.h"

namespace ndmpd {
namespace {

using namespace std::chrono_literals;
using namespace itest;  // NOLINT
using ndmp::xdr::Bytes;

constexpr std::uint64_t kInf = ~0ull;

// A cartridge-sized stream is large: small cartridges (8 MiB, early
// warning 2 MiB before the end) keep the tests quick.
std::string small_cartridges() {
  std::string config =
      shipped_config_with("cartridge_capacity_mb = 2048", "cartridge_capacity_mb = 8");
  config.replace(config.find("early_warning_mb = 32"), 21, "early_warning_mb = 2");
  return config;
}

// The byte at stream offset i of the test pattern.
std::uint8_t byte_at(std::uint64_t i) {
  return static_cast<std::uint8_t>((i * 2654435761u) >> 13 ^ (i >> 16));
}
Bytes stream_bytes(std::uint64_t from, std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = byte_at(from + i);
  return b;
}

// The data server's side of a data connection: a blocking socket.
class Peer {
 public:
  ~Peer() {
    if (fd_ >= 0) ::close(fd_);
  }
  // Connects to host-order IPv4 `ip`:`port`.
  bool connect_to(std::uint32_t ip, std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(ip);
    a.sin_port = htons(port);
    timeval tv{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  // Listens on 127.0.0.1 (for MOVER_CONNECT); returns the port.
  std::uint16_t listen_loopback() {
    lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd_, 1) != 0 ||
        ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return 0;
    }
    return ntohs(a.sin_port);
  }
  bool accept_one() {
    timeval tv{30, 0};
    ::setsockopt(lfd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    fd_ = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
    ::close(lfd_);
    lfd_ = -1;
    if (fd_ >= 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd_ >= 0;
  }
  // Sends stream bytes [0, n) in pieces; false if the connection failed.
  bool send_stream(std::uint64_t n, std::atomic<std::uint64_t>* sent = nullptr) {
    std::uint64_t at = 0;
    while (at < n) {
      const Bytes chunk = stream_bytes(
          at, static_cast<std::size_t>(std::min<std::uint64_t>(n - at, 100000 + at % 7777)));
      std::size_t off = 0;
      while (off < chunk.size()) {
        const ssize_t w = ::send(fd_, chunk.data() + off, chunk.size() - off, MSG_NOSIGNAL);
        if (w <= 0) return false;
        off += static_cast<std::size_t>(w);
      }
      at += chunk.size();
      if (sent) *sent = at;
    }
    return true;
  }
  // Receives up to `n` bytes (less if the mover ends the connection).
  Bytes receive(std::uint64_t n) {
    Bytes out;
    std::vector<std::uint8_t> buf(1 << 16);
    while (out.size() < n) {
      const ssize_t r =
          ::recv(fd_, buf.data(), std::min<std::uint64_t>(buf.size(), n - out.size()), 0);
      if (r <= 0) break;
      out.insert(out.end(), buf.begin(), buf.begin() + r);
    }
    return out;
  }
  void finish() { ::shutdown(fd_, SHUT_WR); }
  void close() {
    ::close(fd_);
    fd_ = -1;
  }
  // Closes with a reset (SO_LINGER 0): a connection error for the mover.
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }

 private:
  int fd_ = -1;
  int lfd_ = -1;
};

// A DMA with the mover calls.
class MoverDma : public Dma {
 public:
  using Dma::Dma;

  // The next NOTIFY_MOVER_PAUSED or _HALTED (other posts skipped).
  struct Event {
    bool halted = false;
    int reason = -1;
    std::uint64_t seek_position = 0;
  };
  std::optional<Event> next_event(std::chrono::seconds limit = 60s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      auto m = c.next_post(std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now()));
      if (!m) break;
      if (m->header.message_code == NDMP4_NOTIFY_MOVER_PAUSED) {
        ndmp::xdr::Decoded<ndmp4_notify_mover_paused_post> p;
        EXPECT_TRUE(p.decode(m->body));
        return Event{false, p->reason, p->seek_position};
      }
      if (m->header.message_code == NDMP4_NOTIFY_MOVER_HALTED) {
        ndmp::xdr::Decoded<ndmp4_notify_mover_halted_post> p;
        EXPECT_TRUE(p.decode(m->body));
        return Event{true, p->reason, 0};
      }
    }
    return std::nullopt;
  }
  // Swaps the cartridge in drive 0: close, back to `from_slot`, `to_slot`
  // in, open.
  void change(std::uint16_t from_slot, std::uint16_t to_slot, ndmp4_tape_open_mode mode) {
    ASSERT_EQ(close(), NDMP4_NO_ERR);
    ASSERT_EQ(scsi_open("vtl0.changer"), NDMP4_NO_ERR);
    ASSERT_EQ(cdb(false, move_medium(kDrive0, from_slot), 0, 0).status, 0);
    ASSERT_EQ(cdb(false, move_medium(to_slot, kDrive0), 0, 0).status, 0);
    ASSERT_EQ(scsi_close(), NDMP4_NO_ERR);
    ASSERT_EQ(open("vtl0.drive0", mode), NDMP4_NO_ERR);
    ASSERT_EQ(mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  }
};

// Where a backup's segments went: cartridge slot, stream offset, bytes.
struct Segment {
  std::uint16_t slot;
  std::uint64_t offset;
  std::uint64_t bytes;
};

TEST(Mover, BackupAcrossCartridgesThenRecoverWithSeeks) {
  Daemon d(Daemon::Options::config(small_cartridges()));
  MoverDma dma(d);
  constexpr std::uint32_t kRecord = 64 * 1024;
  constexpr std::uint64_t kTotal = (20u << 20) + 12345;  // ~3.5 cartridges, a partial last record
  ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.record_size(kRecord), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(0, kInf), NDMP4_NO_ERR);
  const auto [err, addr] = dma.listen(NDMP4_MOVER_MODE_READ);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  EXPECT_EQ(addr.first, 0x7F000001u);
  {
    const auto st = dma.mover();
    EXPECT_EQ(st->state, NDMP4_MOVER_STATE_LISTEN);
    EXPECT_EQ(st->mode, NDMP4_MOVER_MODE_READ);
  }
  bool sent_all = false;
  std::thread data_server([&sent_all, addr = addr] {
    Peer p;
    if (!p.connect_to(addr.first, addr.second)) return;
    sent_all = p.send_stream(kTotal);
    p.finish();
    p.receive(1);  // until the mover closes
  });
  // Tape requests while the mover has the tape: DEVICE_BUSY, GET_STATE fine.
  EXPECT_EQ(dma.write(Bytes(10, 1)).first, NDMP4_DEVICE_BUSY_ERR);
  EXPECT_EQ(dma.mtio(NDMP4_MTIO_REW, 1).first, NDMP4_DEVICE_BUSY_ERR);
  EXPECT_EQ(dma.close(), NDMP4_DEVICE_BUSY_ERR);
  EXPECT_EQ(dma.state().error(), NDMP4_NO_ERR);

  std::vector<Segment> segments;
  std::uint16_t slot = kFirstSlot;
  std::uint64_t segment_start = 0;
  for (int round = 0; round < 10; ++round) {
    const auto ev = dma.next_event();
    ASSERT_TRUE(ev.has_value());
    const auto st = dma.mover();
    ASSERT_EQ(st.error(), NDMP4_NO_ERR);
    if (ev->halted) {
      EXPECT_EQ(ev->reason, NDMP4_MOVER_HALT_CONNECT_CLOSED);
      EXPECT_EQ(st->state, NDMP4_MOVER_STATE_HALTED);
      EXPECT_EQ(st->halt_reason, NDMP4_MOVER_HALT_CONNECT_CLOSED);
      EXPECT_EQ(st->bytes_moved, kTotal);  // without the pad
      EXPECT_EQ(st->record_num, (kTotal + kRecord - 1) / kRecord);
      segments.push_back({slot, segment_start, kTotal - segment_start});
      break;
    }
    // EOM: the record that met early warning is written and counted.
    ASSERT_EQ(ev->reason, NDMP4_MOVER_PAUSE_EOM);
    EXPECT_EQ(st->state, NDMP4_MOVER_STATE_PAUSED);
    EXPECT_EQ(st->pause_reason, NDMP4_MOVER_PAUSE_EOM);
    const std::uint64_t end = std::uint64_t{st->record_num} * kRecord;
    EXPECT_EQ(st->bytes_moved, end);
    EXPECT_GE(end - segment_start, 5u << 20);  // not before early warning
    segments.push_back({slot, segment_start, end - segment_start});
    segment_start = end;
    dma.change(slot, static_cast<std::uint16_t>(slot + 1), NDMP4_TAPE_RDWR_MODE);
    ++slot;
    ASSERT_EQ(dma.window(end, kInf), NDMP4_NO_ERR);
    ASSERT_EQ(dma.cont(), NDMP4_NO_ERR);
  }
  data_server.join();
  EXPECT_TRUE(sent_all);
  ASSERT_GE(segments.size(), 3u);
  ASSERT_EQ(dma.close(), NDMP4_NO_ERR);  // the implicit filemark ends the last segment
  ASSERT_EQ(dma.stop(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.mover()->state, NDMP4_MOVER_STATE_IDLE);
  EXPECT_EQ(dma.mover()->record_size, kRecord);  // persists over STOP

  // Read it all back, cartridge by cartridge: a window per segment, the
  // second segment in two windows; each window's end pauses SEEK.
  ASSERT_EQ(dma.scsi_open("vtl0.changer"), NDMP4_NO_ERR);
  ASSERT_EQ(dma.cdb(false, Dma::move_medium(kDrive0, slot), 0, 0).status, 0);
  ASSERT_EQ(dma.cdb(false, Dma::move_medium(kFirstSlot, kDrive0), 0, 0).status, 0);
  ASSERT_EQ(dma.scsi_close(), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> windows;  // (offset, length) per pause
  std::vector<std::size_t> window_segment;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (i == 1) {
      const std::uint64_t half = segments[i].bytes / kRecord / 2 * kRecord;
      windows.emplace_back(segments[i].offset, half);
      windows.emplace_back(segments[i].offset + half, segments[i].bytes - half);
      window_segment.push_back(i);
      window_segment.push_back(i);
    } else {
      windows.emplace_back(segments[i].offset, segments[i].bytes);
      window_segment.push_back(i);
    }
  }
  ASSERT_EQ(dma.window(windows[0].first, windows[0].second), NDMP4_NO_ERR);
  const auto [lerr, laddr] = dma.listen(NDMP4_MOVER_MODE_WRITE);
  ASSERT_EQ(lerr, NDMP4_NO_ERR);
  Bytes received;
  std::thread reader([&received, laddr = laddr] {
    Peer p;
    if (!p.connect_to(laddr.first, laddr.second)) return;
    received = p.receive(kTotal);
    p.close();  // the recovery has what it wanted
  });
  // Wait until the connection is there, then ask for the whole stream.
  for (int i = 0; i < 500 && dma.mover()->state != NDMP4_MOVER_STATE_ACTIVE; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(dma.read_range(0, kTotal), NDMP4_NO_ERR);
  EXPECT_EQ(dma.read_range(0, kTotal), NDMP4_READ_IN_PROGRESS_ERR);
  for (std::size_t w = 1; w < windows.size(); ++w) {
    const auto ev = dma.next_event();
    ASSERT_TRUE(ev.has_value());
    ASSERT_FALSE(ev->halted);
    ASSERT_EQ(ev->reason, NDMP4_MOVER_PAUSE_SEEK);
    EXPECT_EQ(ev->seek_position, windows[w].first);
    const auto st = dma.mover();
    EXPECT_EQ(st->state, NDMP4_MOVER_STATE_PAUSED);
    EXPECT_EQ(st->bytes_moved, windows[w].first);
    EXPECT_EQ(st->bytes_left_to_read, kTotal - windows[w].first);
    if (window_segment[w] != window_segment[w - 1]) {
      dma.change(segments[window_segment[w - 1]].slot, segments[window_segment[w]].slot,
                 NDMP4_TAPE_READ_MODE);
    }  // else: the head is where the new window starts
    ASSERT_EQ(dma.window(windows[w].first, windows[w].second), NDMP4_NO_ERR);
    ASSERT_EQ(dma.cont(), NDMP4_NO_ERR);
  }
  reader.join();
  ASSERT_EQ(received.size(), kTotal);
  EXPECT_TRUE(received == stream_bytes(0, kTotal));
  // The data server closed the connection: CONNECT_CLOSED.
  const auto ev = dma.next_event();
  ASSERT_TRUE(ev.has_value());
  EXPECT_TRUE(ev->halted);
  EXPECT_EQ(ev->reason, NDMP4_MOVER_HALT_CONNECT_CLOSED);
  EXPECT_EQ(dma.mover()->bytes_moved, kTotal);
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
}

// Backup through MOVER_CONNECT (the data server listens) with a window of
// four records: EOW before the fifth, then the rest in a new window; the
// tape holds the records and the zero-padded last one.
TEST(Mover, EndOfWindowThenTheRestWithPaddedLastRecord) {
  Daemon d;
  MoverDma dma(d);
  constexpr std::uint32_t kRecord = 10240;
  constexpr std::uint64_t kTotal = 6 * kRecord + 1000;
  ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  ASSERT_EQ(dma.record_size(kRecord), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(0, 4 * kRecord), NDMP4_NO_ERR);
  Peer p;
  const std::uint16_t port = p.listen_loopback();
  ASSERT_NE(port, 0);
  std::thread data_server([&p] {
    if (!p.accept_one()) return;
    p.send_stream(kTotal);
    p.finish();
    p.receive(1);
  });
  ASSERT_EQ(dma.connect(NDMP4_MOVER_MODE_READ, 0x7F000001u, port), NDMP4_NO_ERR);
  auto ev = dma.next_event();
  ASSERT_TRUE(ev.has_value());
  ASSERT_FALSE(ev->halted);
  EXPECT_EQ(ev->reason, NDMP4_MOVER_PAUSE_EOW);
  auto st = dma.mover();
  EXPECT_EQ(st->record_num, 4u);
  EXPECT_EQ(st->bytes_moved, 4u * kRecord);
  EXPECT_EQ(st->data_connection_addr.addr_type, NDMP4_ADDR_TCP);
  // While paused the DMA may use the tape (a filemark here would split
  // the image; GET_STATE is enough).
  EXPECT_EQ(dma.where().second, 4u);
  EXPECT_EQ(dma.window(4 * kRecord, 3 * kRecord + 1), NDMP4_ILLEGAL_ARGS_ERR);  // not whole records
  ASSERT_EQ(dma.window(4 * kRecord, kInf), NDMP4_NO_ERR);
  ASSERT_EQ(dma.cont(), NDMP4_NO_ERR);
  ev = dma.next_event();
  ASSERT_TRUE(ev.has_value());
  EXPECT_TRUE(ev->halted);
  EXPECT_EQ(ev->reason, NDMP4_MOVER_HALT_CONNECT_CLOSED);
  data_server.join();
  st = dma.mover();
  EXPECT_EQ(st->bytes_moved, kTotal);
  EXPECT_EQ(st->record_num, 7u);
  // HALTED: the DMA writes its filemark and reads the records back.
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_EOF, 1), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  for (int r = 0; r < 7; ++r) {
    const auto [err, data] = dma.read(kRecord);
    ASSERT_EQ(err, NDMP4_NO_ERR);
    ASSERT_EQ(data.size(), kRecord);
    const std::size_t real = r < 6 ? kRecord : 1000;
    EXPECT_TRUE(std::equal(data.begin(), data.begin() + real,
                           stream_bytes(static_cast<std::uint64_t>(r) * kRecord, real).begin()));
    EXPECT_TRUE(std::all_of(data.begin() + real, data.end(), [](std::uint8_t b) { return !b; }));
  }
  EXPECT_EQ(dma.read(kRecord).first, NDMP4_EOF_ERR);
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
}

// Recovery of a range in the middle of the image (not on a record
// boundary), then one before it (the mover spaces back), then on into the
// filemark (EOF), past it (blank tape: EOM), and MOVER_CLOSE.
TEST(Mover, RecoverRangesFilemarkAndBlankTape) {
  Daemon d;
  MoverDma dma(d);
  constexpr std::uint32_t kRecord = 8192;
  constexpr int kRecords = 40;
  ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  for (int r = 0; r < kRecords; ++r) {
    ASSERT_EQ(dma.write(stream_bytes(static_cast<std::uint64_t>(r) * kRecord, kRecord)).first,
              NDMP4_NO_ERR);
  }
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_EOF, 1), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  ASSERT_EQ(dma.record_size(kRecord), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(0, kInf), NDMP4_NO_ERR);
  const auto [err, addr] = dma.listen(NDMP4_MOVER_MODE_WRITE);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  Peer p;
  ASSERT_TRUE(p.connect_to(addr.first, addr.second));
  for (int i = 0; i < 500 && dma.mover()->state != NDMP4_MOVER_STATE_ACTIVE; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  // The middle: records 20..22, from inside record 20.
  const std::uint64_t a = 20 * kRecord + 100, n = 2 * kRecord + 50;
  ASSERT_EQ(dma.read_range(a, n), NDMP4_NO_ERR);
  EXPECT_TRUE(p.receive(n) == stream_bytes(a, n));
  // Before it: the mover spaces back.
  const std::uint64_t b = 3 * kRecord + 7, m = 1000;
  for (int i = 0; i < 500 && dma.mover()->bytes_left_to_read != 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(dma.read_range(b, m), NDMP4_NO_ERR);
  EXPECT_TRUE(p.receive(m) == stream_bytes(b, m));
  for (int i = 0; i < 500 && dma.mover()->bytes_left_to_read != 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  // To the end and beyond: the filemark pauses EOF with everything before
  // it sent.
  const std::uint64_t c = 30 * kRecord;
  ASSERT_EQ(dma.read_range(c, kInf), NDMP4_NO_ERR);
  EXPECT_TRUE(p.receive(10 * kRecord) == stream_bytes(c, 10 * kRecord));
  auto ev = dma.next_event();
  ASSERT_TRUE(ev.has_value());
  ASSERT_FALSE(ev->halted);
  EXPECT_EQ(ev->reason, NDMP4_MOVER_PAUSE_EOF);
  EXPECT_EQ(dma.mover()->pause_reason, NDMP4_MOVER_PAUSE_EOF);
  // The head is before the filemark: the DMA spaces over it; blank tape
  // follows: EOM.
  EXPECT_EQ(dma.mtio(NDMP4_MTIO_FSF, 1), std::make_pair(NDMP4_NO_ERR, 0u));
  ASSERT_EQ(dma.window(kRecords * kRecord, kInf), NDMP4_NO_ERR);
  ASSERT_EQ(dma.cont(), NDMP4_NO_ERR);
  ev = dma.next_event();
  ASSERT_TRUE(ev.has_value());
  ASSERT_FALSE(ev->halted);
  EXPECT_EQ(ev->reason, NDMP4_MOVER_PAUSE_EOM);
  // Nothing more: MOVER_CLOSE ends the connection (CONNECT_CLOSED).
  ASSERT_EQ(dma.mover_close(), NDMP4_NO_ERR);
  ev = dma.next_event();
  ASSERT_TRUE(ev.has_value());
  EXPECT_TRUE(ev->halted);
  EXPECT_EQ(ev->reason, NDMP4_MOVER_HALT_CONNECT_CLOSED);
  EXPECT_TRUE(p.receive(1).empty());  // the mover closed its end
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
}

// ABORT while a backup streams: HALTED (ABORTED) before the reply, the
// notification first; the tape is the DMA's again at once.
TEST(Mover, AbortWhileActive) {
  Daemon d;
  MoverDma dma(d);
  ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(0, kInf), NDMP4_NO_ERR);
  const auto [err, addr] = dma.listen(NDMP4_MOVER_MODE_READ);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  std::atomic<std::uint64_t> sent{0};
  std::thread data_server([&sent, addr = addr] {
    Peer p;
    if (p.connect_to(addr.first, addr.second)) p.send_stream(1ull << 40, &sent);
  });
  for (int i = 0; i < 1000 && sent < (4u << 20); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(dma.abort(), NDMP4_NO_ERR);
  const auto st = dma.mover();
  EXPECT_EQ(st->state, NDMP4_MOVER_STATE_HALTED);
  EXPECT_EQ(st->halt_reason, NDMP4_MOVER_HALT_ABORTED);
  EXPECT_EQ(st->pause_reason, NDMP4_MOVER_PAUSE_NA);
  const auto ev = dma.next_event(1s);  // already there
  ASSERT_TRUE(ev.has_value());
  EXPECT_TRUE(ev->halted);
  EXPECT_EQ(ev->reason, NDMP4_MOVER_HALT_ABORTED);
  data_server.join();                    // its connection was closed
  EXPECT_EQ(dma.abort(), NDMP4_NO_ERR);  // HALTED: allowed, stays HALTED
  EXPECT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.abort(), NDMP4_ILLEGAL_STATE_ERR);  // IDLE
}

// The data server resets its connection mid-backup: CONNECT_ERROR.
TEST(Mover, ConnectionResetHaltsWithConnectError) {
  Daemon d;
  MoverDma dma(d);
  ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(0, kInf), NDMP4_NO_ERR);
  const auto [err, addr] = dma.listen(NDMP4_MOVER_MODE_READ);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  {
    Peer p;
    ASSERT_TRUE(p.connect_to(addr.first, addr.second));
    ASSERT_TRUE(p.send_stream(3 * 10240 + 5));
    std::this_thread::sleep_for(200ms);
    p.reset();
  }
  const auto ev = dma.next_event();
  ASSERT_TRUE(ev.has_value());
  EXPECT_TRUE(ev->halted);
  EXPECT_EQ(ev->reason, NDMP4_MOVER_HALT_CONNECT_ERROR);
  // The whole records that came before the reset are on tape.
  EXPECT_EQ(dma.mover()->record_num, 3u);
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
}

// A cartridge whose records do not read back (its file damaged on disk):
// the mover halts MEDIA_ERROR.
TEST(Mover, UnreadableRecordHaltsWithMediaError) {
  Daemon d;
  MoverDma dma(d);
  constexpr std::uint32_t kRecord = 65536;
  ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  for (int r = 0; r < 8; ++r) ASSERT_EQ(dma.write(pattern(kRecord, r)).first, NDMP4_NO_ERR);
  ASSERT_EQ(dma.close(), NDMP4_NO_ERR);
  // Damage the middle of the cartridge's data.
  std::filesystem::path file;
  for (const auto& e : std::filesystem::recursive_directory_iterator(d.dir())) {
    if (e.path().filename().string().rfind("NDMP001L6", 0) == 0 && e.path().extension() != ".idx" &&
        e.is_regular_file() && (file.empty() || e.file_size() > std::filesystem::file_size(file))) {
      file = e.path();
    }
  }
  ASSERT_FALSE(file.empty());
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4 * kRecord + 1000);
    const char junk[64] = "this was not written by the tape drive";
    f.write(junk, sizeof junk);
  }
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  ASSERT_EQ(dma.record_size(kRecord), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(0, kInf), NDMP4_NO_ERR);
  const auto [err, addr] = dma.listen(NDMP4_MOVER_MODE_WRITE);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  Peer p;
  ASSERT_TRUE(p.connect_to(addr.first, addr.second));
  for (int i = 0; i < 500 && dma.mover()->state != NDMP4_MOVER_STATE_ACTIVE; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(dma.read_range(0, 8 * kRecord), NDMP4_NO_ERR);
  const auto ev = dma.next_event();
  ASSERT_TRUE(ev.has_value());
  EXPECT_TRUE(ev->halted);
  EXPECT_EQ(ev->reason, NDMP4_MOVER_HALT_MEDIA_ERROR);
  const Bytes got = p.receive(8 * kRecord);
  EXPECT_LT(got.size(), 5u * kRecord);  // nothing of the damaged record
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
}

// The DMA's control connection goes away while the mover writes: the
// session ends, the mover stops, the tape keeps every record it wrote (with
// the filemark owed after them), and another session gets the drive at once.
TEST(Mover, DmaGoneWhileActiveKeepsTheRecordsAndReleasesTheDrive) {
  Daemon d;
  constexpr std::uint32_t kRecord = 32768;
  std::uint64_t seen_records = 0;
  std::atomic<std::uint64_t> sent{0};
  std::thread data_server;
  {
    MoverDma dma(d);
    ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
    ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
    ASSERT_EQ(dma.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
    ASSERT_EQ(dma.record_size(kRecord), NDMP4_NO_ERR);
    ASSERT_EQ(dma.window(0, kInf), NDMP4_NO_ERR);
    const auto [err, addr] = dma.listen(NDMP4_MOVER_MODE_READ);
    ASSERT_EQ(err, NDMP4_NO_ERR);
    data_server = std::thread([&sent, addr = addr] {
      Peer p;
      if (p.connect_to(addr.first, addr.second)) p.send_stream(1ull << 40, &sent);
    });
    for (int i = 0; i < 1000 && dma.mover()->record_num < 100; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    seen_records = dma.mover()->record_num;
    ASSERT_GE(seen_records, 100u);
  }                    // the DMA's connection closes here
  data_server.join();  // the mover closed the data connection
  MoverDma next(d);
  const auto until = std::chrono::steady_clock::now() + 1s;
  ndmp4_error e = NDMP4_DEVICE_BUSY_ERR;
  while (e == NDMP4_DEVICE_BUSY_ERR && std::chrono::steady_clock::now() < until + 1s) {
    e = next.open("vtl0.drive0", NDMP4_TAPE_READ_MODE);
    if (e == NDMP4_DEVICE_BUSY_ERR) std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(e, NDMP4_NO_ERR);
  EXPECT_LT(std::chrono::steady_clock::now(), until);
  ASSERT_EQ(next.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  std::uint64_t records = 0;
  for (;;) {
    const auto [err, data] = next.read(kRecord);
    if (err == NDMP4_EOF_ERR) break;  // the filemark owed to the mover's records
    ASSERT_EQ(err, NDMP4_NO_ERR);
    ASSERT_EQ(data.size(), kRecord);
    ASSERT_TRUE(data == stream_bytes(records * kRecord, kRecord)) << records;
    ++records;
    ASSERT_LT(records, 1u << 20);
  }
  EXPECT_GE(records, seen_records);
  EXPECT_LE(records * kRecord, sent.load());
}

// A quiet DMA whose mover has a job is not idle: the idle timeout waits.
TEST(Mover, IdleTimeoutSparesASessionWithAMoverJob) {
  Daemon d(Daemon::Options::config(shipped_config_with("idle_timeout = 1800", "idle_timeout = 1")));
  MoverDma dma(d);
  ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(dma.listen(NDMP4_MOVER_MODE_READ).first, NDMP4_NO_ERR);
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(dma.mover()->state, NDMP4_MOVER_STATE_LISTEN);
  EXPECT_EQ(dma.abort(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
  // Without a job it is idle again.
  EXPECT_TRUE(dma.c.wait_closed(5s));
}

// MOVER_CONNECT dials only what the policy allows; the refusal is logged.
TEST(Mover, ConnectToADisallowedAddressIsRefused) {
  Daemon d;
  MoverDma dma(d);
  ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  // 192.0.2.1 (TEST-NET-1): never dialled.
  EXPECT_EQ(dma.connect(NDMP4_MOVER_MODE_READ, 0xC0000201u, 10000), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_TRUE(d.wait_for_log("192.0.2.1:10000 is not an allowed data connection address", 5s));
  EXPECT_EQ(dma.mover()->state, NDMP4_MOVER_STATE_IDLE);
  // Loopback is allowed; nobody listens on port 1: CONNECT_ERR.
  EXPECT_EQ(dma.connect(NDMP4_MOVER_MODE_READ, 0x7F000001u, 1), NDMP4_CONNECT_ERR);
  EXPECT_EQ(dma.mover()->state, NDMP4_MOVER_STATE_IDLE);
}

// A data connection from outside the allowed networks is not accepted.
TEST(Mover, ListenAcceptsOnlyAllowedPeers) {
  Daemon d(
      Daemon::Options::config(shipped_config_with("allow = []", "allow = [\"127.0.0.2/32\"]")));
  MoverDma dma(d);
  ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  const auto [err, addr] = dma.listen(NDMP4_MOVER_MODE_READ);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  Peer p;  // from 127.0.0.1: refused
  ASSERT_TRUE(p.connect_to(addr.first, addr.second));
  EXPECT_TRUE(d.wait_for_log("refused a data connection from 127.0.0.1", 5s));
  EXPECT_EQ(dma.mover()->state, NDMP4_MOVER_STATE_LISTEN);
  EXPECT_EQ(dma.abort(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
}

// The request errors of the state machine (draft 3.6.2) that ndmjob's
// test-mover does not reach.
TEST(Mover, RequestErrors) {
  Daemon d;
  MoverDma dma(d);
  EXPECT_EQ(dma.record_size(0), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(dma.record_size(64u << 20), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(dma.window(10, kInf - 5), NDMP4_ILLEGAL_ARGS_ERR);  // overflows
  EXPECT_EQ(dma.read_range(0, 10), NDMP4_ILLEGAL_STATE_ERR);
  EXPECT_EQ(dma.listen(NDMP4_MOVER_MODE_READ, NDMP4_ADDR_TCP_IPV6).first,
            NDMP4_ILLEGAL_ARGS_ERR);  // the extension was not selected
  EXPECT_EQ(dma.listen(static_cast<ndmp4_mover_mode>(7)).first, NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(dma.listen(NDMP4_MOVER_MODE_READ).first, NDMP4_DEV_NOT_OPEN_ERR);
  ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  EXPECT_EQ(dma.listen(NDMP4_MOVER_MODE_READ).first, NDMP4_PERMISSION_ERR);
  ASSERT_EQ(dma.record_size(8192), NDMP4_NO_ERR);
  ASSERT_EQ(dma.window(100, 8192), NDMP4_NO_ERR);  // IDLE: the mode is not known yet
  EXPECT_EQ(dma.listen(NDMP4_MOVER_MODE_WRITE).first, NDMP4_PRECONDITION_ERR);  // not aligned
  ASSERT_EQ(dma.window(8192, 8192), NDMP4_NO_ERR);
  const auto [err, addr] = dma.listen(NDMP4_MOVER_MODE_WRITE);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  EXPECT_EQ(dma.mover()->record_num, 1u);                     // offset / record size
  EXPECT_EQ(dma.read_range(0, 10), NDMP4_ILLEGAL_STATE_ERR);  // LISTEN, not ACTIVE
  EXPECT_EQ(dma.mover_close(), NDMP4_ILLEGAL_STATE_ERR);
  EXPECT_EQ(dma.close(), NDMP4_DEVICE_BUSY_ERR);
  Peer p;
  ASSERT_TRUE(p.connect_to(addr.first, addr.second));
  for (int i = 0; i < 500 && dma.mover()->state != NDMP4_MOVER_STATE_ACTIVE; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(dma.read_range(5, 0), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(dma.read_range(kInf - 1, 5), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(dma.window(0, 8192), NDMP4_ILLEGAL_STATE_ERR);  // ACTIVE
  EXPECT_EQ(dma.stop(), NDMP4_ILLEGAL_STATE_ERR);
  EXPECT_EQ(dma.cont(), NDMP4_ILLEGAL_STATE_ERR);
  const auto st = dma.mover();
  EXPECT_EQ(st->data_connection_addr.addr_type, NDMP4_ADDR_TCP);
  ASSERT_EQ(st->data_connection_addr.ndmp4_addr_u.tcp_addr.tcp_addr_len, 1u);
  EXPECT_EQ(st->data_connection_addr.ndmp4_addr_u.tcp_addr.tcp_addr_val[0].ip_addr, 0x7F000001u);
  EXPECT_EQ(dma.abort(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.mover()->window_length, 0u);  // reset by STOP
}

// IPv6 data connections through NetApp's connection address extension.
TEST(Mover, Ipv6ThroughTheConnectionAddressExtension) {
  Daemon d(Daemon::Options::config(
      shipped_config_with("listen_addresses = []", "listen_addresses = [\"127.0.0.1\", \"::1\"]")));
  MoverDma dma(d);
  ASSERT_EQ(dma.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(dma.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  // Plain TCP offers only the IPv4 address.
  EXPECT_EQ(dma.listen(NDMP4_MOVER_MODE_READ).first, NDMP4_NO_ERR);
  EXPECT_EQ(dma.abort(), NDMP4_NO_ERR);
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
  // Select class 0x2051 version 1.
  ASSERT_EQ(dma.c.call<NDMP4_CONFIG_GET_EXT_LIST>().error(), NDMP4_NO_ERR);
  ndmp4_class_version cv{};
  cv.class_id = NDMP4_CAE_CLASS;
  cv.class_version = NDMP4_CAE_CLASS_VERSION;
  ndmp4_config_set_ext_list_request set{};
  set.ndmp4_selected_ext.ndmp4_selected_ext_len = 1;
  set.ndmp4_selected_ext.ndmp4_selected_ext_val = &cv;
  ASSERT_EQ(dma.c.call<NDMP4_CONFIG_SET_EXT_LIST>(set).error(), NDMP4_NO_ERR);
  ndmp4_mover_listen_request r{NDMP4_MOVER_MODE_READ, NDMP4_ADDR_TCP_IPV6};
  const auto rep = dma.c.call<NDMP4_MOVER_LISTEN>(r);
  ASSERT_EQ(rep.error(), NDMP4_NO_ERR);
  ASSERT_EQ(rep->connect_addr.addr_type, NDMP4_ADDR_TCP_IPV6);
  const auto& list = rep->connect_addr.ndmp4_addr_u.tcp_ipv6_addr;
  ASSERT_EQ(list.tcp_ipv6_addr_len, 1u);
  const std::uint8_t loopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  EXPECT_EQ(std::memcmp(list.tcp_ipv6_addr_val[0].ip_addr, loopback6, 16), 0);
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  std::memcpy(&a.sin6_addr, loopback6, 16);
  a.sin6_port = htons(list.tcp_ipv6_addr_val[0].port);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ndmp4_mover_get_state_reply st{};
  for (int i = 0; i < 500; ++i) {
    const auto s = dma.mover();
    st.state = s->state;
    if (s->state == NDMP4_MOVER_STATE_ACTIVE) {
      EXPECT_EQ(s->data_connection_addr.addr_type, NDMP4_ADDR_TCP_IPV6);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(st.state, NDMP4_MOVER_STATE_ACTIVE);
  EXPECT_EQ(dma.abort(), NDMP4_NO_ERR);
  ::close(fd);
  EXPECT_EQ(dma.stop(), NDMP4_NO_ERR);
}

}  // namespace
}  // namespace ndmpd
