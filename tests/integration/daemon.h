// Starts the real ndmpd binary for a test: on an ephemeral loopback port,
// with a private state directory, the shipped configuration (or a given
// one) and a login "dma" added with --user.  Stops it by PID.  Every wait
// is bounded.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace ndmpd::testing {

class Daemon {
 public:
  struct Options {
    std::string config_text;  // empty: conf/ndmpd.toml
    std::vector<std::string> args;
    std::string listen = "127.0.0.1:0";

    static Options config(std::string text) {
      Options o;
      o.config_text = std::move(text);
      return o;
    }
    static Options listen_on(std::string address) {
      Options o;
      o.listen = std::move(address);
      return o;
    }
    static Options extra(std::vector<std::string> arguments) {
      Options o;
      o.args = std::move(arguments);
      return o;
    }
  };

  Daemon();  // the shipped configuration
  explicit Daemon(Options options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  const std::string& address() const { return address_; }  // "127.0.0.1:40123"
  const std::string& host() const { return host_; }
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  const std::filesystem::path& dir() const { return dir_; }

  // SIGTERM, then waits up to `limit` for the exit; returns the exit status
  // (or -1 if it had to be killed, -2 if it died of a signal).
  int stop(std::chrono::milliseconds limit = std::chrono::seconds(20));
  bool running();

  // What the daemon has logged so far.
  std::string log() const;
  // Waits until the log contains `text`.
  bool wait_for_log(const std::string& text, std::chrono::milliseconds limit) const;

  // Open file descriptors of the daemon process.
  int fd_count() const;

 private:
  void start(const Options& options);

  std::filesystem::path dir_;
  std::string address_, host_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  int status_ = 0;
  std::string user_ = "dma";
  std::string password_ = "dma-pass-1";
};

// Runs a command (argv) to completion with a time limit; returns its exit
// status and output (stdout and stderr together).
struct RunResult {
  int status = -1;
  std::string output;
};
RunResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds limit);

}  // namespace ndmpd::testing
