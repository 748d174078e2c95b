// Session benchmark (run on demand; prints figures, asserts nothing):
//  - CONFIG_GET_HOST_INFO round trips per second on one session over
//    loopback, ndmpd against ndmjob's own NDMP server in the same run;
//  - resident memory of the idle daemon with 0 and with 100 sessions open,
//    against ndmjob's server (one process per session) with 100.
//
// ndmjob's server binds 0.0.0.0, so run this in a private network
// namespace: tests/bench/session_bench.sh does.
//
//   session_bench --ndmjob /usr/lib/amanda/ndmjob [--seconds 3] [--rounds 5]

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "bench/ndmjob_server.h"
#include "integration/daemon.h"
#include "ndmpd/client/client.h"

namespace {

using namespace std::chrono_literals;
using ndmp::client::Client;
using Clock = std::chrono::steady_clock;
using ndmpd::bench::group_rss_kib;
using ndmpd::bench::median;
using ndmpd::bench::NdmjobServer;
using ndmpd::bench::rss_kib;

double round_trips_per_second(Client& c, std::chrono::milliseconds span) {
  std::uint64_t n = 0;
  const auto start = Clock::now();
  const auto end = start + span;
  while (Clock::now() < end) {
    for (int i = 0; i < 100; ++i) {
      try {
        if (c.call<NDMP4_CONFIG_GET_HOST_INFO>().error() != NDMP4_NO_ERR) {
          throw std::runtime_error("GET_HOST_INFO failed");
        }
      } catch (const std::exception& e) {
        throw std::runtime_error("after " + std::to_string(n + i) + " round trips: " + e.what());
      }
    }
    n += 100;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return n / secs;
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"ndmpd session benchmark"};
  std::string ndmjob = "/usr/lib/amanda/ndmjob";
  int seconds = 3, rounds = 5, sessions = 100;
  app.add_option("--ndmjob", ndmjob, "ndmjob binary (its daemon is the peer)");
  app.add_option("--seconds", seconds, "length of one measurement");
  app.add_option("--rounds", rounds, "measurements per server (median reported)");
  app.add_option("--sessions", sessions, "sessions held open for the memory figure");
  CLI11_PARSE(app, argc, argv);

  // The shipped limit is 64 sessions; this measures more.
  ndmpd::testing::Daemon ndmpd(ndmpd::testing::Daemon::Options::config(
      std::getenv("BENCH_CONFIG") ? std::getenv("BENCH_CONFIG")
                                  : "[limits]\nmax_sessions = 1000\n"));
  NdmjobServer peer(ndmjob, ndmpd.dir());

  Client a, b;
  try {
    a.connect(ndmpd.address());
    a.open_and_login_text(ndmpd.user(), ndmpd.password());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n%s\n", e.what(), ndmpd.log().c_str());
    return 1;
  }
  b.connect("127.0.0.1", peer.port());
  b.open_and_login_text("ndmp", "ndmp");
  round_trips_per_second(a, 500ms);  // warm-up
  round_trips_per_second(b, 500ms);
  std::vector<double> ra, rb;
  for (int i = 0; i < rounds; ++i) {  // alternate, so both see the same machine
    ra.push_back(round_trips_per_second(a, std::chrono::seconds(seconds)));
    rb.push_back(round_trips_per_second(b, std::chrono::seconds(seconds)));
  }
  a.close();
  b.close();
  const double mine = median(ra), theirs = median(rb);
  std::printf("CONFIG_GET_HOST_INFO round trips/s, one session, loopback (median of %d x %d s)\n",
              rounds, seconds);
  std::printf("  ndmpd          %10.0f\n", mine);
  std::printf("  ndmjob server  %10.0f\n", theirs);
  std::printf("  ratio ndmpd/ndmjob %.2f\n\n", mine / theirs);

  std::this_thread::sleep_for(300ms);
  const long idle = rss_kib(ndmpd.pid());
  std::vector<std::unique_ptr<Client>> open;
  for (int i = 0; i < sessions; ++i) {
    open.push_back(std::make_unique<Client>());
    open.back()->connect(ndmpd.address());
    open.back()->open_and_login_text(ndmpd.user(), ndmpd.password());
  }
  std::this_thread::sleep_for(300ms);
  const long busy = rss_kib(ndmpd.pid());
  open.clear();
  for (int i = 0; i < sessions; ++i) {
    open.push_back(std::make_unique<Client>());
    open.back()->connect("127.0.0.1", peer.port());
    open.back()->open_and_login_text("ndmp", "ndmp");
  }
  std::this_thread::sleep_for(300ms);
  int processes = 0;
  const long peer_busy = group_rss_kib(peer.pid(), processes);
  open.clear();
  std::printf("resident memory (VmRSS)\n");
  std::printf("  ndmpd idle, no session        %8ld KiB\n", idle);
  std::printf("  ndmpd with %d sessions       %8ld KiB (%.1f KiB per session)\n", sessions, busy,
              double(busy - idle) / sessions);
  std::printf("  ndmjob server, %d sessions   %8ld KiB in %d processes\n", sessions, peer_busy,
              processes);
  std::printf("  ratio ndmpd/ndmjob at %d sessions %.3f\n", sessions, double(busy) / peer_busy);
  return 0;
}

int main(int argc, char** argv) {
  return ndmpd::bench::bench_main("session_bench", run, argc, argv);
}
