#include "scsi/transport_iscsi.h"

#include <fcntl.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <system_error>
#include <thread>

namespace scsi {

namespace {

using Clock = std::chrono::steady_clock;

// What a libiscsi callback reports; the poll loop runs until `done`.
struct Pending {
  bool done = false;
  int status = 0;
  // libiscsi's error text when the callback ran: what it does next (try to
  // reconnect, say) overwrites the cause.
  std::string error;
  // A task management function's response (RFC 7143 11.6.1), when it ran.
  std::uint32_t tmf_response = 0xFF;
};

std::string error_text(iscsi_context* ctx) {
  std::string s = iscsi_get_error(ctx);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '.')) s.pop_back();
  return s;
}

void on_done(iscsi_context* ctx, int status, void*, void* private_data) {
  auto* p = static_cast<Pending*>(private_data);
  p->status = status;
  p->done = true;
  if (status != SCSI_STATUS_GOOD) p->error = error_text(ctx);
}

// A task management function's callback: data is its response code.
void on_tmf_done(iscsi_context* ctx, int status, void* data, void* private_data) {
  auto* p = static_cast<Pending*>(private_data);
  if (status == SCSI_STATUS_GOOD && data) p->tmf_response = *static_cast<std::uint32_t*>(data);
  on_done(ctx, status, data, private_data);
}

enum class Pumped { kDone, kTimedOut, kFailed };

// Drives the context until the callback of `pending` has run, the
// deadline passes or the connection fails.  The poll never sleeps more
// than a second, so that libiscsi's own timers (iscsi_service) keep ticking.
Pumped pump(iscsi_context* ctx, const Pending& pending, Clock::time_point deadline,
            std::string& error) {
  while (!pending.done) {
    const auto now = Clock::now();
    if (now >= deadline) return Pumped::kTimedOut;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    pollfd pfd{};
    pfd.fd = iscsi_get_fd(ctx);
    pfd.events = static_cast<short>(iscsi_which_events(ctx));
    const int n = poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (n < 0) {
      if (errno == EINTR) continue;
      error = std::string("poll: ") + std::strerror(errno);
      return Pumped::kFailed;
    }
    // A failure can come after the callback ran: the caller looks at
    // `pending` first, then drops the broken connection.
    if (iscsi_service(ctx, n > 0 ? pfd.revents : 0) < 0) {
      error = error_text(ctx);
      return Pumped::kFailed;
    }
  }
  return Pumped::kDone;
}

// libiscsi writes data-out with writev(), which raises SIGPIPE when the
// target has gone; a library must not kill its process for that.  The
// signal is blocked in this thread while libiscsi runs, and one it raised
// is consumed before the mask is restored.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlocked() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{};
        sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

std::string ms_text(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

// Why a command cannot be sent as it is; empty if it can.
std::string invalid(const Command& c) {
  if (c.cdb.empty() || c.cdb.size() > SCSI_CDB_MAX_SIZE) {
    return "CDB of " + std::to_string(c.cdb.size()) + " bytes (1 to 16 allowed)";
  }
  if (c.timeout.count() <= 0) return "timeout must be positive";
  if (c.direction != Direction::kOut && !c.data_out.empty()) return "data-out without kOut";
  if (c.direction != Direction::kIn && !c.data_in.empty()) return "data-in buffer without kIn";
  if (c.data_out.size() > INT_MAX || c.data_in.size() > INT_MAX) return "transfer of 2 GiB or more";
  return {};
}

}  // namespace

struct IscsiDevice::Target {
  std::string portal;  // host:port
  std::string iqn;
  std::string user;
  std::string password;
  int lun = 0;
  std::string public_url;  // without credentials
  // libiscsi keeps a pointer to the connect callback's state after the
  // connect; it lives as long as the device so that it never dangles.
  Pending connect;
};

namespace {

// Serves commands in arrival order (std::mutex alone is not fair).
class InTurn {
 public:
  InTurn(std::mutex& m, std::condition_variable& cv, std::uint64_t& next, std::uint64_t& serving)
      : lock_(m), cv_(cv), serving_(serving) {
    const std::uint64_t ticket = next++;
    cv_.wait(lock_, [&] { return serving_ == ticket; });
  }
  ~InTurn() {
    ++serving_;
    lock_.unlock();
    cv_.notify_all();
  }
  InTurn(const InTurn&) = delete;
  InTurn& operator=(const InTurn&) = delete;

 private:
  std::unique_lock<std::mutex> lock_;
  std::condition_variable& cv_;
  std::uint64_t& serving_;
};

}  // namespace

IscsiDevice::IscsiDevice(std::unique_ptr<Target> target, IscsiOptions options)
    : target_(std::move(target)), options_(std::move(options)) {
  keepalive_ = std::thread([this] { keep_alive(); });
}

IscsiDevice::~IscsiDevice() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing_ = true;
  }
  turn_.notify_all();
  keepalive_.join();
  SigpipeBlocked no_sigpipe;
  logout();
}

std::string IscsiDevice::describe() const { return target_->public_url; }

bool IscsiDevice::login(std::string& error) {
  const auto deadline = Clock::now() + options_.login_timeout;
  iscsi_context* ctx = iscsi_create_context(options_.initiator_name.c_str());
  if (ctx == nullptr) {
    error = "cannot create an iSCSI context";
    return false;
  }
  auto fail = [&](const std::string& what) {
    error = what;
    iscsi_destroy_context(ctx);
    return false;
  };
  if (iscsi_set_targetname(ctx, target_->iqn.c_str()) != 0 ||
      iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL) != 0 ||
      iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C) != 0) {
    return fail("iSCSI context set-up: " + error_text(ctx));
  }
  if (!target_->user.empty() && iscsi_set_initiator_username_pwd(ctx, target_->user.c_str(),
                                                                 target_->password.c_str()) != 0) {
    return fail("CHAP set-up: " + error_text(ctx));
  }
  iscsi_set_noautoreconnect(ctx, 1);

  target_->connect = Pending{};
  if (iscsi_connect_async(ctx, target_->portal.c_str(), on_done, &target_->connect) != 0) {
    return fail("connect to " + target_->portal + ": " + error_text(ctx));
  }
  // A child process (ndmpd runs helpers) must not inherit the session.
  const int fd = iscsi_get_fd(ctx);
  if (fd >= 0) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
  std::string why;
  Pumped p = pump(ctx, target_->connect, deadline, why);
  if (p == Pumped::kTimedOut) {
    return fail("connect to " + target_->portal + ": no answer within " +
                ms_text(options_.login_timeout));
  }
  if (p == Pumped::kFailed || target_->connect.status != SCSI_STATUS_GOOD) {
    const std::string& cause = target_->connect.error.empty() ? why : target_->connect.error;
    return fail("connect to " + target_->portal + ": " + cause);
  }

  Pending login;
  if (iscsi_login_async(ctx, on_done, &login) != 0) {
    return fail("login to " + target_->iqn + ": " + error_text(ctx));
  }
  p = pump(ctx, login, deadline, why);
  if (p == Pumped::kTimedOut) {
    return fail("login to " + target_->iqn + " at " + target_->portal + ": no answer within " +
                ms_text(options_.login_timeout));
  }
  if (p == Pumped::kFailed || login.status != SCSI_STATUS_GOOD) {
    return fail("login to " + target_->iqn + " at " + target_->portal +
                " failed: " + (login.error.empty() ? why : login.error));
  }
  session_ = ctx;
  return true;
}

// Services an idle session without blocking: answers what the target
// sent meanwhile (a NOP-In ping wants its NOP-Out, or the target drops
// the session) and finds out whether the connection is still there.
// Called before each command, while logging in again is still harmless,
// and by the keep-alive thread.
bool IscsiDevice::session_alive() {
  const int fd = iscsi_get_fd(session_);
  if (fd < 0) return false;
  // A few PDUs at most arrive while idle; the bound keeps this short.
  for (int round = 0; round < 8; ++round) {
    pollfd pfd{fd, static_cast<short>(POLLIN | (iscsi_which_events(session_) & POLLOUT)), 0};
    const int n = poll(&pfd, 1, 0);
    if (n < 0) return errno == EINTR;
    if (n == 0) return true;
    if ((pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return false;
    if ((pfd.revents & POLLIN) != 0) {
      char byte;
      const ssize_t got = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (got == 0) return false;  // the target closed the connection
      if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    }
    if (iscsi_service(session_, pfd.revents) < 0) return false;
  }
  return true;
}

void IscsiDevice::keep_alive() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!closing_) {
    turn_.wait_for(lock, std::chrono::seconds(1), [&] { return closing_; });
    // A running command holds the lock; one waiting for its turn will
    // service the session itself.
    if (closing_ || session_ == nullptr || next_ticket_ != serving_) continue;
    SigpipeBlocked no_sigpipe;
    if (!session_alive()) drop_session();
  }
}

void IscsiDevice::drop_session() {
  if (session_ == nullptr) return;
  // Closes the connection: the target aborts what was in flight.  Pending
  // callbacks run now, with SCSI_STATUS_CANCELLED.
  iscsi_destroy_context(session_);
  session_ = nullptr;
}

void IscsiDevice::logout() {
  if (session_ == nullptr) return;
  if (session_alive()) {
    Pending done;
    if (iscsi_logout_async(session_, on_done, &done) == 0) {
      std::string ignored;
      pump(session_, done, Clock::now() + std::chrono::seconds(2), ignored);
    }
  }
  drop_session();
}

bool IscsiDevice::ensure_session(std::string& error) {
  if (session_ != nullptr && !session_alive()) drop_session();
  if (session_ != nullptr) return true;
  const int attempts = std::max(1, options_.reconnect_attempts);
  std::string last;
  for (int i = 0; i < attempts; ++i) {
    if (i > 0) std::this_thread::sleep_for(options_.reconnect_backoff);
    if (login(last)) return true;
  }
  error = "session lost and " + std::to_string(attempts) + " login attempt" +
          (attempts > 1 ? "s" : "") + " failed; last: " + last;
  return false;
}

Result IscsiDevice::reset() {
  InTurn turn(mutex_, turn_, next_ticket_, serving_);
  Result result;
  SigpipeBlocked no_sigpipe;
  std::string error;
  if (!ensure_session(error)) {
    result.transport_error = describe() + ": " + error;
    return result;
  }
  Pending pending;
  if (iscsi_task_mgmt_lun_reset_async(session_, target_->lun, on_tmf_done, &pending) != 0) {
    result.transport_error = describe() + ": LUN reset not sent: " + error_text(session_);
    drop_session();
    return result;
  }
  const Pumped p = pump(session_, pending, Clock::now() + options_.login_timeout, error);
  if (p != Pumped::kDone || !pending.done || pending.status != SCSI_STATUS_GOOD) {
    result.transport_error = describe() + ": LUN reset failed" +
                             (pending.error.empty() ? std::string() : ": " + pending.error);
    drop_session();
  } else if (pending.tmf_response != ISCSI_TMR_FUNC_COMPLETE) {
    // The target refused (function not supported, say): the session stays.
    result.transport_error =
        describe() + ": LUN reset refused, response " + std::to_string(pending.tmf_response);
  }
  return result;
}

Result IscsiDevice::execute(const Command& command) {
  InTurn turn(mutex_, turn_, next_ticket_, serving_);
  Result result;
  if (const std::string why = invalid(command); !why.empty()) {
    result.transport_error = describe() + ": command not sent: " + why;
    return result;
  }
  SigpipeBlocked no_sigpipe;
  std::string error;
  if (!ensure_session(error)) {
    result.transport_error = describe() + ": " + error;
    return result;
  }

  int direction = SCSI_XFER_NONE;
  std::size_t length = 0;
  if (command.direction == Direction::kIn && !command.data_in.empty()) {
    direction = SCSI_XFER_READ;
    length = command.data_in.size();
  } else if (command.direction == Direction::kOut && !command.data_out.empty()) {
    direction = SCSI_XFER_WRITE;
    length = command.data_out.size();
  }
  unsigned char cdb[SCSI_CDB_MAX_SIZE] = {};
  std::copy(command.cdb.begin(), command.cdb.end(), cdb);
  scsi_task* task = scsi_create_task(static_cast<int>(command.cdb.size()), cdb, direction,
                                     static_cast<int>(length));
  if (task == nullptr) {
    result.transport_error = describe() + ": out of memory for the task";
    return result;
  }
  // Without a buffer of ours, libiscsi collects data-in itself and drops it
  // when the status is CHECK CONDITION (it puts the sense there instead).
  if (direction == SCSI_XFER_READ &&
      scsi_task_add_data_in_buffer(task, static_cast<int>(length), command.data_in.data()) != 0) {
    scsi_free_scsi_task(task);
    result.transport_error = describe() + ": out of memory for the data-in buffer";
    return result;
  }
  // libiscsi only reads through this pointer.
  iscsi_data out{length, const_cast<unsigned char*>(command.data_out.data())};
  Pending pending;
  if (iscsi_scsi_command_async(session_, target_->lun, task, on_done,
                               direction == SCSI_XFER_WRITE ? &out : nullptr, &pending) != 0) {
    result.transport_error = describe() + ": command not sent: " + error_text(session_);
    scsi_free_scsi_task(task);
    drop_session();
    return result;
  }

  const Pumped p = pump(session_, pending, Clock::now() + command.timeout, error);
  const bool answered = pending.done && pending.status != SCSI_STATUS_CANCELLED &&
                        pending.status != SCSI_STATUS_ERROR &&
                        pending.status != SCSI_STATUS_TIMEOUT && pending.status >= 0 &&
                        pending.status <= 0xFF;
  if (!answered) {
    if (p == Pumped::kTimedOut) {
      result.transport_error = describe() + ": no response within " + ms_text(command.timeout) +
                               "; session dropped, the command's effect is unknown";
    } else if (pending.done && pending.status == SCSI_STATUS_TIMEOUT) {
      result.transport_error = describe() + ": timed out in libiscsi; session dropped";
    } else {
      if (!pending.error.empty()) error = pending.error;
      result.transport_error =
          describe() + ": connection lost (" + error + "); the command's effect is unknown";
    }
    drop_session();
    scsi_free_scsi_task(task);
    return result;
  }

  result.status = static_cast<Status>(pending.status);
  if (task->residual_status == SCSI_RESIDUAL_UNDERFLOW) {
    result.residual = std::min<std::size_t>(task->residual, length);
  }
  if (direction == SCSI_XFER_READ) result.data_in = length - result.residual;
  if (pending.status == SCSI_STATUS_CHECK_CONDITION && task->datain.data != nullptr &&
      task->datain.size >= 2) {
    // The sense segment: a 2-byte length, then the sense data.
    const unsigned char* seg = task->datain.data;
    std::size_t n = (static_cast<std::size_t>(seg[0]) << 8) | seg[1];
    n = std::min<std::size_t>(n, static_cast<std::size_t>(task->datain.size) - 2);
    result.sense.assign(seg + 2, seg + 2 + n);
  }
  scsi_free_scsi_task(task);
  // The answer came, but the connection broke while it was read.
  if (p == Pumped::kFailed) drop_session();
  return result;
}

std::unique_ptr<Device> open_iscsi(const std::string& url, const IscsiOptions& options,
                                   std::string& error) {
  if (options.login_timeout.count() <= 0) {
    error = "login_timeout must be positive";
    return nullptr;
  }
  auto target = std::make_unique<IscsiDevice::Target>();
  {
    iscsi_context* ctx = iscsi_create_context(options.initiator_name.c_str());
    if (ctx == nullptr) {
      error = "cannot create an iSCSI context (initiator name '" + options.initiator_name + "')";
      return nullptr;
    }
    iscsi_url* parsed = iscsi_parse_full_url(ctx, url.c_str());
    if (parsed == nullptr) {
      error = "bad iSCSI URL '" + url + "': " + error_text(ctx) +
              " (expected iscsi://host[:port]/target-iqn/lun)";
      iscsi_destroy_context(ctx);
      return nullptr;
    }
    target->portal = parsed->portal;
    target->iqn = parsed->target;
    target->user = parsed->user;
    target->password = parsed->passwd;
    target->lun = parsed->lun;
    iscsi_destroy_url(parsed);
    iscsi_destroy_context(ctx);
  }
  target->public_url =
      "iscsi://" + target->portal + "/" + target->iqn + "/" + std::to_string(target->lun);

  std::unique_ptr<IscsiDevice> device;
  try {
    device.reset(new IscsiDevice(std::move(target), options));
  } catch (const std::system_error& e) {  // no thread for the keep-alive
    error = std::string("cannot start the keep-alive thread: ") + e.what();
    return nullptr;
  }
  {
    SigpipeBlocked no_sigpipe;
    std::lock_guard<std::mutex> lock(device->mutex_);
    std::string why;
    if (!device->login(why)) {
      error = device->describe() + ": " + why;
      return nullptr;
    }
  }
  // INQUIRY tells whether the LUN exists, and reports no unit attention:
  // those stay for the caller.
  std::uint8_t inquiry[96] = {};
  Command c;
  c.cdb = {0x12, 0x00, 0x00, 0x00, sizeof inquiry, 0x00};
  c.direction = Direction::kIn;
  c.data_in = inquiry;
  c.timeout = options.login_timeout;
  const Result r = device->execute(c);
  if (!r.transport_error.empty()) {
    error = r.transport_error;
    return nullptr;
  }
  const bool no_lun = (r.check_condition() && r.sense.size() >= 14 && (r.sense[0] & 0x7F) <= 0x71 &&
                       r.sense[12] == 0x25) ||
                      (r.check_condition() && r.sense.size() >= 4 && (r.sense[0] & 0x7F) >= 0x72 &&
                       r.sense[2] == 0x25) ||
                      (r.ok() && r.data_in >= 1 && (inquiry[0] >> 5) != 0);
  if (no_lun) {
    error = device->describe() + ": the target has no logical unit " +
            std::to_string(device->target_->lun);
    return nullptr;
  }
  if (!r.ok()) {
    error = device->describe() + ": INQUIRY failed with status " +
            std::to_string(static_cast<int>(r.status));
    return nullptr;
  }
  return device;
}

std::unique_ptr<Device> open_iscsi(const std::string& url, std::string& error) {
  return open_iscsi(url, IscsiOptions{}, error);
}

}  // namespace scsi
