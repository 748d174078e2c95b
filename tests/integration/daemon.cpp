#include "daemon.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "ndmpd/config.h"

namespace ndmpd::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path make_dir() {
  char tmpl[] = "/tmp/ndmpd-test-XXXXXX";
  const char* d = ::mkdtemp(tmpl);
  if (d == nullptr) throw std::runtime_error("mkdtemp failed");
  return d;
}

// Waits up to `limit` for `pid` to exit; true with its status if it did.
bool wait_exit(pid_t pid, std::chrono::milliseconds limit, int& status) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return true;
    if (r < 0) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

}  // namespace

Daemon::Daemon() : Daemon(Options{}) {}

Daemon::Daemon(Options options) : dir_(make_dir()) { start(options); }

Daemon::~Daemon() {
  if (pid_ > 0) stop(5s);
  // A failed test shows what the daemon said: CI keeps only the output.
  if (::testing::Test::HasFailure()) {
    std::fprintf(stderr, "---- ndmpd log ----\n%s---- end of ndmpd log ----\n", log().c_str());
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void Daemon::start(const Options& options) {
  fs::path config = fs::path(NDMPD_SOURCE_DIR) / "conf/ndmpd.toml";
  if (!options.config_text.empty()) {
    config = dir_ / "ndmpd.toml";
    std::ofstream(config) << options.config_text;
  }
  const fs::path pw = dir_ / "dma.password";
  std::ofstream(pw) << password_ << "\n";
  ::chmod(pw.c_str(), 0600);
  const fs::path listen_file = dir_ / "listen";
  const fs::path log = dir_ / "ndmpd.log";

  std::vector<std::string> args = {NDMPD_BINARY,
                                   "--config",
                                   config.string(),
                                   "--listen",
                                   options.listen,
                                   "--state-dir",
                                   (dir_ / "state").string(),
                                   "--user",
                                   user_,
                                   "--password-file",
                                   pw.string(),
                                   "--listen-file",
                                   listen_file.string(),
                                   "--foreground"};
  args.insert(args.end(), options.args.begin(), options.args.end());

  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDERR_FILENO);
      ::dup2(fd, STDOUT_FILENO);
    }
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    // Close everything else the test process holds (sockets of other
    // tests): the daemon's descriptor count must be its own.
    for (int i = 3; i < 1024; ++i) ::close(i);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (!fs::exists(listen_file)) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("ndmpd exited at start:\n" + read_file(log));
    }
    if (std::chrono::steady_clock::now() > end) {
      throw std::runtime_error("ndmpd did not start listening:\n" + read_file(log));
    }
    std::this_thread::sleep_for(10ms);
  }
  std::ifstream in(listen_file);
  std::getline(in, address_);
  if (!ndmpd::parse_listen_address(address_, host_, port_)) {
    throw std::runtime_error("bad listen file: " + address_);
  }
}

int Daemon::stop(std::chrono::milliseconds limit) {
  if (pid_ <= 0) return status_;
  ::kill(pid_, SIGTERM);
  int status = 0;
  if (!wait_exit(pid_, limit, status)) {
    ::kill(pid_, SIGKILL);
    wait_exit(pid_, 5s, status);
    status_ = -1;
  } else {
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -2;
  }
  pid_ = -1;
  return status_;
}

bool Daemon::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -2;
    pid_ = -1;
    return false;
  }
  return true;
}

std::string Daemon::log() const { return read_file(dir_ / "ndmpd.log"); }

bool Daemon::wait_for_log(const std::string& text, std::chrono::milliseconds limit) const {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (log().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(20ms);
  }
  return log().find(text) != std::string::npos;
}

int Daemon::fd_count() const {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid_) + "/fd", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

RunResult run_command(const std::vector<std::string>& argv_in, std::chrono::milliseconds limit) {
  const fs::path out = make_dir() / "out";
  RunResult result;
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, STDIN_FILENO);
    for (int i = 3; i < 1024; ++i) ::close(i);
    std::vector<std::string> args = argv_in;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  if (!wait_exit(pid, limit, status)) {
    ::kill(pid, SIGKILL);
    wait_exit(pid, 5s, status);
    result.status = -1;
  } else {
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -2;
  }
  result.output = read_file(out);
  std::error_code ec;
  fs::remove_all(out.parent_path(), ec);
  return result;
}

}  // namespace ndmpd::testing
