// IscsiDevice: a scsi::Device that is one logical unit of an iSCSI target,
// reached with libiscsi (the initiator runs in this process; no kernel
// SCSI is needed).  Opened from "iscsi://[user[%password]@]host[:port]/
// target-iqn/lun".
//
// One iSCSI session (one libiscsi context) per device.  execute() drives
// it with its own poll loop, so every wait is bounded: TCP connect and
// login by IscsiOptions::login_timeout, a command by Command::timeout.
// Between commands a keep-alive thread of the device answers the target's
// pings (NOP-In), so an idle session is not dropped.
// When a command times out or the connection drops under it, the session
// is torn down (the target aborts the task when the connection goes) and
// the command ends with transport_error: its effect is unknown, and it is
// never re-sent.  The next command logs in again, with at most
// IscsiOptions::reconnect_attempts attempts, before it is sent.  libiscsi's
// own automatic reconnect (which replays in-flight commands: a tape WRITE
// twice) is off.
//
// Status and sense are passed through untouched: a UNIT ATTENTION (after a
// login, say) is a CHECK CONDITION like any other; the layers above decide.
// Data-in goes straight into Command::data_in, also when the command ends
// in CHECK CONDITION (the data an SSC READ sends with ILI or FILEMARK is
// kept).  Result::residual is the iSCSI residual count (underflow; 0 for
// overflow) and Result::data_in the transfer length minus it: the target's
// word.  tgt 1.0.85 gets both wrong with ILI and FILEMARK (it pads a short
// record with filler up to its wrong count); the sense INFORMATION field is
// right, and the tape layer must go by it.
//
// Thread-safety: execute() may be called from any thread; commands run one
// at a time, in the order they arrive.  It blocks (up to the command's
// timeout plus, when the session is down, the reconnect bound): never call
// it from the event loop.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "scsi/device.h"

struct iscsi_context;

namespace scsi {

struct IscsiOptions {
  // Our iSCSI name; targets that restrict access see this one.
  std::string initiator_name = "iqn.2026-11.org.ndmpd:initiator";
  // Bounds one attempt at TCP connect + login.
  std::chrono::milliseconds login_timeout{10000};
  // Login attempts (at least 1) made by a command that finds the session
  // down (after a timeout or a lost connection); it fails with
  // transport_error after that, unsent.
  int reconnect_attempts = 3;
  // Pause between two of those attempts.
  std::chrono::milliseconds reconnect_backoff{500};
};

class IscsiDevice : public Device {
 public:
  ~IscsiDevice() override;
  IscsiDevice(const IscsiDevice&) = delete;
  IscsiDevice& operator=(const IscsiDevice&) = delete;

  // REQUIRES: command.cdb is 1..16 bytes; data_out is non-empty only for
  // Direction::kOut and data_in only for Direction::kIn; each below 2 GiB.
  // A command that breaks this is not sent (transport_error says why).
  Result execute(const Command& command) override;

  // LOGICAL UNIT RESET task management function, bounded by the login
  // timeout.
  bool can_reset() const override { return true; }
  Result reset() override;

  // The URL without credentials.
  std::string describe() const override;

 private:
  friend std::unique_ptr<Device> open_iscsi(const std::string& url, const IscsiOptions& options,
                                            std::string& error);
  struct Target;
  IscsiDevice(std::unique_ptr<Target> target, IscsiOptions options);

  // Session management; all REQUIRE the command lock (mutex_).
  bool login(std::string& error);
  bool ensure_session(std::string& error);
  bool session_alive();
  void drop_session();
  void logout();
  // The keep-alive thread's loop.
  void keep_alive();

  std::unique_ptr<Target> target_;
  IscsiOptions options_;
  iscsi_context* session_ = nullptr;

  // A ticket lock: commands are served in arrival order.  A command holds
  // mutex_ while it runs.
  std::mutex mutex_;
  std::condition_variable turn_;
  std::uint64_t next_ticket_ = 0;
  std::uint64_t serving_ = 0;
  bool closing_ = false;
  // Services the idle session once a second: targets ping idle sessions
  // (NOP-In) and drop those that do not answer (LIO after ~45 s), which
  // would cost a new login and a unit attention.
  std::thread keepalive_;
};

// Logs in to the logical unit of `url` and checks that it exists (standard
// INQUIRY, which reports no unit attention).  nullptr and `error` (bad URL,
// connection refused, login rejected, no such LUN, timeout) on failure.
std::unique_ptr<Device> open_iscsi(const std::string& url, const IscsiOptions& options,
                                   std::string& error);
std::unique_ptr<Device> open_iscsi(const std::string& url, std::string& error);

}  // namespace scsi
