// Amanda ndmjob's own NDMP server as the peer of a benchmark: started in
// a process group of its own (one forked process per session, which it
// never reaps), stopped by that group; the figures the benchmarks take of
// both servers (resident memory of a process or a whole process group,
// medians of rounds); and the main() they share.
//
// Benchmark code only (header-only; it throws std::runtime_error when the
// server will not start).  One thread owns an NdmjobServer; the free
// functions read /proc and may be called from any thread.
//
// ndmjob's server binds 0.0.0.0 and writes Amanda debug logs under
// /var/log/amanda: run the benchmarks in private network and mount
// namespaces, as tests/bench/*.sh do.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ndmpd/client/client.h"

namespace ndmpd::bench {

// A memory figure of /proc/PID/status in KiB ("VmRSS:" resident now,
// "VmHWM:" its peak); 0 once the process is gone.
inline long status_kib(pid_t pid, std::string_view field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field)) return std::stol(line.substr(field.size()));
  }
  return 0;
}

inline long rss_kib(pid_t pid) { return status_kib(pid, "VmRSS:"); }

// The sum of status_kib(`field`) over every live process in process group
// `pgid`; zombies hold no memory and are not counted in `processes` either.
inline long group_status_kib(pid_t pgid, std::string_view field, int& processes) {
  long total = 0;
  processes = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string s;
    std::getline(stat, s);
    // The command name may hold spaces and parentheses: the fields start
    // after the last ')'.
    const auto close = s.rfind(')');
    if (close == std::string::npos || close + 2 > s.size()) continue;
    std::istringstream rest(s.substr(close + 2));
    std::string state;
    long ppid = 0, pgrp = 0;
    rest >> state >> ppid >> pgrp;
    if (pgrp == pgid && state != "Z") {
      total += status_kib(std::stoi(name), field);
      ++processes;
    }
  }
  return total;
}

inline long group_rss_kib(pid_t pgid, int& processes) {
  return group_status_kib(pgid, "VmRSS:", processes);
}

// A loopback port nobody listens on (at the moment of asking).
inline std::uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// REQUIRES: `v` is not empty.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A benchmark's main(): stdout line-buffered, so that each figure shows as
// soon as it is measured; an exception (a server that will not start, a
// failed call) ends the run with a message and exit status 1.
inline int bench_main(const char* name, int (*run)(int, char**), int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

// `ndmjob -o daemon` on a free port, its configuration in `dir`; user ndmp,
// password ndmp.  The constructor returns once the port answers (5 s at
// most); the destructor kills the process group (the daemon and every
// session process it forked) and reaps the daemon.
class NdmjobServer {
 public:
  static constexpr const char* kUser = "ndmp";
  static constexpr const char* kPassword = "ndmp";

  // REQUIRES: `dir` exists and is writable.
  NdmjobServer(const std::string& ndmjob, const std::filesystem::path& dir) : port_(free_port()) {
    using namespace std::chrono_literals;
    const auto conf = dir / "ndmjob.conf";
    // Without a butype table DATA_START_* refuses every butype.
    std::ofstream(conf) << "[butype tar]\n\tv4attr 0x1A06\n";
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::setpgid(0, 0);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      const std::string p = std::to_string(port_), c = "config-file=" + conf.string();
      ::execl(ndmjob.c_str(), ndmjob.c_str(), "-o", "daemon", "-p", p.c_str(), "-o", c.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Both sides set the group, so that a kill of the group cannot race
    // the child's own setpgid.
    ::setpgid(pid_, pid_);
    for (int i = 0; i < 100; ++i) {
      try {
        ndmp::client::Client probe(1s);
        probe.connect("127.0.0.1", port_);
        return;
      } catch (const std::exception&) {
        std::this_thread::sleep_for(50ms);
      }
    }
    stop();
    throw std::runtime_error("ndmjob server did not start");
  }
  ~NdmjobServer() { stop(); }
  NdmjobServer(const NdmjobServer&) = delete;
  NdmjobServer& operator=(const NdmjobServer&) = delete;

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }  // also its process group

 private:
  void stop() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ::kill(-pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::uint16_t port_;
  pid_t pid_ = -1;
};

}  // namespace ndmpd::bench
