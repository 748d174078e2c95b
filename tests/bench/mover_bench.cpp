// Mover benchmark (run on demand; prints figures, asserts nothing): a
// backup of N MiB through the mover to an emulated tape, the data coming
//  - over TCP from a second process (fork; it connects to the mover's
//    listening address on loopback and sends), and
//  - over LOCAL from an in-process source (blocks handed to the pipe),
// against dd writing the same bytes to a file in the same directory
// (conv=fdatasync; the mover's run ends with a filemark, which syncs), in
// the same run, rounds alternating, medians reported.
//
//   mover_bench [--mib 1024] [--record-kib 256] [--rounds 3] [--dir DIR]
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "../mover/harness.h"
#include "mover/data_stream.h"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double dd(const fs::path& file, std::size_t record, std::size_t records) {
  const auto start = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string of = "of=" + file.string(), bs = "bs=" + std::to_string(record),
                      count = "count=" + std::to_string(records);
    ::execlp("dd", "dd", "if=/dev/zero", of.c_str(), bs.c_str(), count.c_str(), "conv=fdatasync",
             "status=none", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return seconds_since(start);
}

// Sends `bytes` to 127.0.0.1:port from a child process.
pid_t tcp_source(std::uint16_t port, std::uint64_t bytes) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ::_exit(1);
  std::vector<char> buf(1u << 20);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>(i * 131);
  std::uint64_t sent = 0;
  while (sent < bytes) {
    const ssize_t w = ::send(fd, buf.data(), std::min<std::uint64_t>(buf.size(), bytes - sent), 0);
    if (w <= 0) ::_exit(1);
    sent += static_cast<std::uint64_t>(w);
  }
  ::shutdown(fd, SHUT_WR);
  char c;
  while (::recv(fd, &c, 1, 0) > 0) {
  }
  ::_exit(0);
}

// One backup through the mover; returns seconds, or a negative on failure.
double backup(mover::testing::Harness& h, bool tcp, std::uint32_t record, std::uint64_t bytes) {
  mover::Mover& m = h.mover();
  h.head().rewind();
  if (m.set_record_size(record) != NDMP4_NO_ERR || m.set_window(0, mover::kInfinity)) return -1;
  h.events.clear();
  const auto start = Clock::now();
  pid_t child = -1;
  if (tcp) {
    std::vector<asio::ip::tcp::endpoint> offered;
    if (m.listen_tcp(NDMP4_MOVER_MODE_READ, {asio::ip::make_address("127.0.0.1")}, offered) !=
        NDMP4_NO_ERR) {
      return -1;
    }
    child = tcp_source(offered[0].port(), bytes);
  } else {
    auto pipe = std::make_shared<mover::LocalPipe>(h.io().get_executor(), 8u << 20);
    std::shared_ptr<mover::DataStream> source = pipe->writer_end();
    if (m.connect_local(NDMP4_MOVER_MODE_READ, pipe->reader_end()) != NDMP4_NO_ERR) return -1;
    asio::co_spawn(
        h.io(),
        [source, bytes]() -> asio::awaitable<void> {
          std::vector<std::uint8_t> tmpl(1u << 20);
          for (std::size_t i = 0; i < tmpl.size(); ++i)
            tmpl[i] = static_cast<std::uint8_t>(i * 131);
          for (std::uint64_t at = 0; at < bytes; at += tmpl.size()) {
            const std::span<const std::uint8_t> one(
                tmpl.data(), std::min<std::uint64_t>(tmpl.size(), bytes - at));
            if (co_await source->write(std::span(&one, 1))) co_return;
          }
          source->finish();
        },
        asio::detached);
  }
  const bool halted = h.run_until([&] { return !h.events.empty(); }, std::chrono::seconds(600));
  h.head().write_filemarks(1);
  const double t = seconds_since(start);
  if (child > 0) ::waitpid(child, nullptr, 0);
  const bool ok = halted && h.events.front().halted &&
                  h.events.front().reason == NDMP4_MOVER_HALT_CONNECT_CLOSED &&
                  m.state().bytes_moved == bytes;
  h.run([&]() -> asio::awaitable<void> { co_await m.stop(); });
  return ok ? t : -1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mover backup throughput (TCP, LOCAL) against dd"};
  std::string dir_arg;
  int mib = 1024, rounds = 3, record_kib = 256;
  app.add_option("--dir", dir_arg, "scratch directory (default: a new one in /tmp)");
  app.add_option("--mib", mib, "MiB per backup")->check(CLI::Range(16, 8192));
  app.add_option("--record-kib", record_kib, "mover record size, KiB")->check(CLI::Range(1, 1024));
  app.add_option("--rounds", rounds, "backups of each kind")->check(CLI::Range(1, 50));
  CLI11_PARSE(app, argc, argv);
  char tmpl[] = "/tmp/ndmpd-moverbench-XXXXXX";
  const fs::path dir = dir_arg.empty() ? fs::path(::mkdtemp(tmpl)) : fs::path(dir_arg);
  const std::uint64_t bytes = std::uint64_t(mib) << 20;
  const std::uint32_t record = static_cast<std::uint32_t>(record_kib) << 10;
  std::vector<double> tcp, local, ddt;
  {
    mover::testing::Harness h(dir, 1, bytes + (256u << 20), 64u << 20);
    for (int r = 0; r < rounds; ++r) {
      const double a = backup(h, true, record, bytes);
      const double b = backup(h, false, record, bytes);
      const double c = dd(dir / "dd.out", record, bytes / record);
      if (a < 0 || b < 0) {
        std::fprintf(stderr, "a backup failed\n");
        return 1;
      }
      tcp.push_back(a);
      local.push_back(b);
      ddt.push_back(c);
    }
  }
  const double mb = static_cast<double>(bytes) / 1e6;
  const double t = median(tcp), l = median(local), d = median(ddt);
  std::printf("mover backup to the emulated tape: %d MiB in %u KiB records, median of %d rounds\n",
              mib, record >> 10, rounds);
  std::printf("  TCP (second process)   %7.0f MB/s   ratio to dd %.2f\n", mb / t, d / t);
  std::printf("  LOCAL (in process)     %7.0f MB/s   ratio to dd %.2f\n", mb / l, d / l);
  std::printf("  dd conv=fdatasync      %7.0f MB/s\n", mb / d);
  std::error_code ec;
  if (dir_arg.empty()) fs::remove_all(dir, ec);
  return 0;
}
