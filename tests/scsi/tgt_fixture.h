// scsi::testing::Tgt: a private tgtd (tgt's userspace iSCSI target) on
// 127.0.0.1 with the disks, tape drive and tape library that
// tests/support/tgt.sh sets up, for tests of the real SCSI transports.
//
// Tgt::start() runs "tgt.sh start" in a fresh temporary directory and reads
// the tgt.env it writes; the destructor runs "tgt.sh stop" (by the PID
// recorded there, nothing else) and removes the directory.  tgt.sh also
// leaves a watchdog that stops tgtd when this process dies, so a crashed
// test leaves nothing running.  Tgt::shared() is the one instance all the
// suites of a test binary use: started on first use, stopped when the test
// program ends (a GoogleTest environment).
//
// Thread-safety: start() and shared() may be called from any thread; a Tgt
// itself is used by one test at a time.  Every wait here is bounded.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace scsi::testing {

class Tgt {
 public:
  // Starts a private instance (about a second).  nullptr and `error` (with
  // tgt.sh's output) if it could not.
  static std::unique_ptr<Tgt> start(std::string& error);

  // The instance shared by the whole test binary.  nullptr and `error` if it
  // could not start; the failure is remembered, later calls do not retry.
  static Tgt* shared(std::string& error);

  ~Tgt();
  Tgt(const Tgt&) = delete;
  Tgt& operator=(const Tgt&) = delete;

  // Stops tgtd and removes the directory; idempotent.  false and `error`
  // if tgt.sh could not stop it.
  bool stop(std::string& error);

  // Runs "tgtadm -C PORT --lld iscsi ARGS..." against this tgtd (to change
  // a target's parameters, say).  false and `error` (its output) if it fails.
  bool tgtadm(const std::vector<std::string>& args, std::string& error) const;

  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }

  // iSCSI URLs (iscsi://127.0.0.1:PORT/IQN/LUN) of the logical units.
  std::string disk0_url;        // SBC, 64 MiB
  std::string disk1_url;        // SBC, 64 MiB
  std::string tape_url;         // SSC, cartridge loaded
  std::string vtl_drive1_url;   // SSC, empty; element 1 of the changer
  std::string vtl_drive2_url;   // SSC, empty; element 2
  std::string vtl_changer_url;  // SMC

 private:
  Tgt() = default;
  std::string dir_;
  std::string ipc_socket_;  // tgtd's management socket, less ".PORT"
  pid_t pid_ = 0;
  int port_ = 0;
  bool stopped_ = false;
};

// What run_bounded() saw.
struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal or not started
  bool timed_out = false;
  std::string output;  // stdout and stderr, when captured
  std::string error;   // why it could not start
};

// Runs argv[0] (a path) with `env` added to this process's environment,
// stdin from /dev/null, and waits at most `timeout`; then it is killed
// (SIGKILL, by PID).  With `capture`, stdout and stderr are collected;
// otherwise they are this process's.
RunResult run_bounded(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                      std::chrono::milliseconds timeout, bool capture);

// The sgiscsi_preload shim (LD_PRELOAD) built beside the tests.
std::string sgiscsi_preload_path();

}  // namespace scsi::testing
