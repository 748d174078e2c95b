// The mover over a LOCAL data connection (an in-process pipe, as the data
// server of the same session will use it) and the pieces under it: the
// pipe's backpressure and ends, and the data-connection address policy.
#include <gtest/gtest.h>

#include <boost/asio/ip/address.hpp>
#include <cstdlib>

#include "harness.h"
#include "mover/address_policy.h"
#include "mover/data_stream.h"

namespace mover {
namespace {

namespace asio = boost::asio;
using testing::Harness;

std::uint8_t byte_at(std::uint64_t i) { return static_cast<std::uint8_t>(i * 31 + (i >> 11)); }

std::filesystem::path scratch() {
  char tmpl[] = "/tmp/ndmpd-mover-XXXXXX";
  return ::mkdtemp(tmpl);
}

// Pushes stream bytes [0, n) into the pipe in blocks, then finishes.
asio::awaitable<void> produce(std::shared_ptr<DataStream> end, std::uint64_t n) {
  std::uint64_t at = 0;
  while (at < n) {
    std::vector<std::uint8_t> block(std::min<std::uint64_t>(n - at, 77777));
    for (std::size_t i = 0; i < block.size(); ++i) block[i] = byte_at(at + i);
    const std::span<const std::uint8_t> one(block);
    if (co_await end->write(std::span(&one, 1))) co_return;
    at += block.size();
  }
  end->finish();
}

TEST(MoverLocal, BackupAcrossCartridgesThenRecover) {
  const auto dir = scratch();
  constexpr std::uint32_t kRecord = 32768;
  constexpr std::uint64_t kTotal = (9u << 20) + 4321;
  {
    Harness h(dir, 3, 6u << 20, 1u << 20);
    Mover& m = h.mover();
    ASSERT_EQ(m.set_record_size(kRecord), NDMP4_NO_ERR);
    ASSERT_EQ(m.set_window(0, kInfinity), NDMP4_NO_ERR);
    auto pipe = std::make_shared<LocalPipe>(h.io().get_executor(), 1u << 20);
    std::shared_ptr<DataStream> source = pipe->writer_end();
    ASSERT_EQ(m.connect_local(NDMP4_MOVER_MODE_READ, pipe->reader_end()), NDMP4_NO_ERR);
    asio::co_spawn(h.io(), produce(source, kTotal), asio::detached);
    std::vector<std::uint64_t> starts = {0};
    int slot = 0;
    for (int round = 0; round < 6; ++round) {
      ASSERT_TRUE(h.run_until([&] { return !h.events.empty(); }));
      const auto ev = h.events.front();
      h.events.clear();
      if (ev.halted) {
        EXPECT_EQ(ev.reason, NDMP4_MOVER_HALT_CONNECT_CLOSED);
        break;
      }
      ASSERT_EQ(ev.reason, NDMP4_MOVER_PAUSE_EOM);
      const std::uint64_t end = m.state().record_num * kRecord;
      EXPECT_EQ(m.state().bytes_moved, end);
      starts.push_back(end);
      const tape::Status fm = h.head().write_filemarks(1);  // the DMA ends the cartridge's image
      ASSERT_TRUE(fm.ok() || fm.condition == tape::Condition::kEarlyWarning) << fm.describe();
      h.load(++slot);
      ASSERT_EQ(m.set_window(end, kInfinity), NDMP4_NO_ERR);
      ASSERT_EQ(m.resume(), NDMP4_NO_ERR);
    }
    EXPECT_EQ(m.state().bytes_moved, kTotal);
    EXPECT_GE(starts.size(), 2u);
    h.head().write_filemarks(1);
    h.run([&]() -> asio::awaitable<void> { co_await m.stop(); });

    // Recover over LOCAL: the data server reads the pipe; each cartridge's
    // end is a filemark: EOF pauses, the next cartridge, continue.
    h.load(0);
    ASSERT_EQ(m.set_window(0, kInfinity), NDMP4_NO_ERR);
    auto back = std::make_shared<LocalPipe>(h.io().get_executor(), 1u << 20);
    std::shared_ptr<DataStream> sink = back->reader_end();
    ASSERT_EQ(m.connect_local(NDMP4_MOVER_MODE_WRITE, back->writer_end()), NDMP4_NO_ERR);
    ASSERT_EQ(m.read(0, kTotal), NDMP4_NO_ERR);
    std::vector<std::uint8_t> got;
    bool reading = true;
    asio::co_spawn(
        h.io(),
        [&]() -> asio::awaitable<void> {
          std::vector<std::uint8_t> buf(100000);
          while (got.size() < kTotal) {
            auto [ec, n] = co_await sink->read_some(buf);
            if (ec || n == 0) break;
            got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
          }
          reading = false;
        },
        asio::detached);
    for (int i = 1; i < static_cast<int>(starts.size()); ++i) {
      ASSERT_TRUE(h.run_until([&] { return !h.events.empty(); }));
      const auto ev = h.events.front();
      h.events.clear();
      ASSERT_FALSE(ev.halted);
      ASSERT_EQ(ev.reason, NDMP4_MOVER_PAUSE_EOF);
      EXPECT_EQ(ev.seek_position, starts[static_cast<std::size_t>(i)]);
      h.load(i);
      ASSERT_EQ(m.set_window(starts[static_cast<std::size_t>(i)], kInfinity), NDMP4_NO_ERR);
      ASSERT_EQ(m.resume(), NDMP4_NO_ERR);
    }
    ASSERT_TRUE(h.run_until([&] { return !reading; }));
    ASSERT_EQ(got.size(), kTotal);
    for (std::uint64_t i = 0; i < kTotal; ++i) {
      if (got[i] != byte_at(i)) FAIL() << "byte " << i;
    }
    // The data server lets go of its end: CONNECT_CLOSED.
    sink.reset();
    ASSERT_TRUE(h.run_until([&] { return !h.events.empty(); }));
    EXPECT_TRUE(h.events.front().halted);
    EXPECT_EQ(h.events.front().reason, NDMP4_MOVER_HALT_CONNECT_CLOSED);
  }
  std::filesystem::remove_all(dir);
}

// No tape under an active mover (NDMP prevents it; the engine must not
// crash on it either): INTERNAL_ERROR.
TEST(MoverLocal, NoTapeHaltsWithInternalError) {
  const auto dir = scratch();
  {
    Harness h(dir, 1, 8u << 20, 1u << 20);
    Mover& m = h.mover();
    ASSERT_EQ(m.set_window(0, kInfinity), NDMP4_NO_ERR);
    auto pipe = std::make_shared<LocalPipe>(h.io().get_executor(), 1u << 20);
    std::shared_ptr<DataStream> source = pipe->writer_end();
    ASSERT_EQ(m.connect_local(NDMP4_MOVER_MODE_READ, pipe->reader_end()), NDMP4_NO_ERR);
    h.drop_tape();
    asio::co_spawn(h.io(), produce(source, 1u << 20), asio::detached);
    ASSERT_TRUE(h.run_until([&] { return !h.events.empty(); }));
    EXPECT_TRUE(h.events.front().halted);
    EXPECT_EQ(h.events.front().reason, NDMP4_MOVER_HALT_INTERNAL_ERROR);
    EXPECT_EQ(m.state().state, NDMP4_MOVER_STATE_HALTED);
    EXPECT_EQ(m.state().bytes_moved, 0u);
  }
  std::filesystem::remove_all(dir);
}

TEST(LocalPipe, BackpressureAndEnds) {
  asio::io_context io;
  auto pipe = std::make_shared<LocalPipe>(io.get_executor(), 1000);
  auto writer = pipe->writer_end();
  auto reader = pipe->reader_end();
  int pushed = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::vector<std::uint8_t> b(400, 7);
        const std::span<const std::uint8_t> one(b);
        for (int i = 0; i < 5; ++i) {
          if (co_await writer->write(std::span(&one, 1))) co_return;
          ++pushed;
        }
        writer->finish();
      },
      asio::detached);
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(pushed, 2);  // a third block would pass the 1000 bytes
  EXPECT_EQ(pipe->buffered(), 800u);
  std::size_t total = 0;
  bool eof = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::vector<std::uint8_t> buf(300);
        for (;;) {
          auto [ec, n] = co_await reader->read_some(buf);
          total += n;
          if (ec == asio::error::eof) {
            eof = true;
            co_return;
          }
          if (ec) co_return;
        }
      },
      asio::detached);
  io.restart();
  io.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(pushed, 5);
  EXPECT_EQ(total, 2000u);
  EXPECT_TRUE(eof);
}

TEST(AddressPolicy, DefaultsAndNetworks) {
  std::string error;
  const std::vector<InterfaceAddress> ifs = {{asio::ip::make_address("127.0.0.1"), 8},
                                             {asio::ip::make_address("192.168.7.20"), 24},
                                             {asio::ip::make_address("10.1.2.3"), 8},
                                             {asio::ip::make_address("fe80::1"), 64},
                                             {asio::ip::make_address("2001:db8::5"), 64}};
  // Listening on one address: loopback and that address's network.
  auto p = AddressPolicy::make({}, {}, {"192.168.7.20"}, ifs, error);
  ASSERT_TRUE(p.has_value()) << error;
  EXPECT_TRUE(p->allows(asio::ip::make_address("127.0.0.1")));
  EXPECT_TRUE(p->allows(asio::ip::make_address("127.8.8.8")));
  EXPECT_TRUE(p->allows(asio::ip::make_address("::1")));
  EXPECT_TRUE(p->allows(asio::ip::make_address("192.168.7.99")));
  EXPECT_TRUE(p->allows(asio::ip::make_address("::ffff:192.168.7.99")));
  EXPECT_FALSE(p->allows(asio::ip::make_address("192.168.8.1")));
  EXPECT_FALSE(p->allows(asio::ip::make_address("10.1.2.4")));
  EXPECT_FALSE(p->allows(asio::ip::make_address("2001:db8::6")));
  const auto offered = p->offer(asio::ip::make_address("192.168.7.20"), false);
  ASSERT_EQ(offered.size(), 1u);
  EXPECT_EQ(offered[0].to_string(), "192.168.7.20");
  // A wildcard: every interface's network, and every address offered, the
  // one the DMA came in on first; IPv6 only when asked for.
  p = AddressPolicy::make({}, {}, {"0.0.0.0", "::"}, ifs, error);
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->allows(asio::ip::make_address("10.200.0.1")));
  EXPECT_TRUE(p->allows(asio::ip::make_address("2001:db8::6")));
  EXPECT_FALSE(p->allows(asio::ip::make_address("fe80::2")));  // link-local not offered
  auto v4 = p->offer(asio::ip::make_address("10.1.2.3"), false);
  ASSERT_EQ(v4.size(), 3u);
  EXPECT_EQ(v4[0].to_string(), "10.1.2.3");
  auto all = p->offer(asio::ip::make_address("10.1.2.3"), true);
  EXPECT_EQ(all.size(), 4u);
  // Configured networks replace the default entirely.
  p = AddressPolicy::make({"10.0.0.0/8", "2001:db8::/32", "172.16.0.9"}, {}, {"0.0.0.0"}, ifs,
                          error);
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->allows(asio::ip::make_address("127.0.0.1")));
  EXPECT_TRUE(p->allows(asio::ip::make_address("10.9.9.9")));
  EXPECT_TRUE(p->allows(asio::ip::make_address("172.16.0.9")));
  EXPECT_FALSE(p->allows(asio::ip::make_address("172.16.0.10")));
  EXPECT_TRUE(p->allows(asio::ip::make_address("2001:db8:1::1")));
  // Errors.
  EXPECT_FALSE(AddressPolicy::make({"10.0.0.0/33"}, {}, {}, {}, error).has_value());
  EXPECT_FALSE(AddressPolicy::make({"nonsense"}, {}, {}, {}, error).has_value());
  EXPECT_FALSE(AddressPolicy::make({"10.0.0.0/"}, {}, {}, {}, error).has_value());
  EXPECT_FALSE(AddressPolicy::make({}, {"0.0.0.0"}, {}, {}, error).has_value());
}

}  // namespace
}  // namespace mover
