#include "scsi/transport_sg.h"

#include <scsi/sg.h>
#include <scsi/sg_pt.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>

namespace scsi {

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

constexpr std::size_t kMaxCdb = 252;
constexpr int kMaxSense = 252;  // SPC's limit; sg v3 counts it in a byte

std::string invalid(const Command& c) {
  if (c.cdb.empty() || c.cdb.size() > kMaxCdb) {
    return "CDB of " + std::to_string(c.cdb.size()) + " bytes (1 to 252 allowed)";
  }
  if (c.timeout.count() <= 0) return "timeout must be positive";
  if (c.direction != Direction::kOut && !c.data_out.empty()) return "data-out without kOut";
  if (c.direction != Direction::kIn && !c.data_in.empty()) return "data-in buffer without kIn";
  if (c.data_out.size() > INT_MAX || c.data_in.size() > INT_MAX) return "transfer of 2 GiB or more";
  return {};
}

// libsgutils2's strings end in newlines; a Result's error is one line.
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

SgDevice::SgDevice(std::string path, int fd, sg_pt_base* pt)
    : path_(std::move(path)), fd_(fd), pt_(pt) {}

SgDevice::~SgDevice() {
  destruct_scsi_pt_obj(pt_);
  scsi_pt_close_device(fd_);
}

Result SgDevice::reset() {
  InTurn turn(mutex_, turn_, next_ticket_, serving_);
  Result r;
  int what = SG_SCSI_RESET_DEVICE;
  if (::ioctl(fd_, SG_SCSI_RESET, &what) != 0) {
    r.transport_error = path_ + ": SG_SCSI_RESET: " + std::strerror(errno);
  }
  return r;
}

Result SgDevice::execute(const Command& command) {
  InTurn turn(mutex_, turn_, next_ticket_, serving_);
  Result result;
  if (const std::string why = invalid(command); !why.empty()) {
    result.transport_error = path_ + ": command not sent: " + why;
    return result;
  }
  // Keeps the file descriptor and what sg_pt learnt about the node.
  clear_scsi_pt_obj(pt_);
  set_scsi_pt_cdb(pt_, command.cdb.data(), static_cast<int>(command.cdb.size()));
  std::uint8_t sense[kMaxSense];
  set_scsi_pt_sense(pt_, sense, kMaxSense);
  std::size_t length = 0;
  if (command.direction == Direction::kIn && !command.data_in.empty()) {
    length = command.data_in.size();
    set_scsi_pt_data_in(pt_, command.data_in.data(), static_cast<int>(length));
  } else if (command.direction == Direction::kOut && !command.data_out.empty()) {
    length = command.data_out.size();
    set_scsi_pt_data_out(pt_, command.data_out.data(), static_cast<int>(length));
  }
  // SG_IO counts whole seconds here, and 0 would mean the 60 s default.
  const auto seconds = std::chrono::ceil<std::chrono::seconds>(command.timeout).count();
  const int timeout_secs = static_cast<int>(std::clamp<long long>(seconds, 1, INT_MAX / 1000));

  const int rc = do_scsi_pt(pt_, fd_, timeout_secs, 0);
  if (rc < 0) {
    result.transport_error = path_ + ": SG_IO failed: " + std::strerror(-rc);
    return result;
  }
  if (rc > 0) {
    result.transport_error =
        path_ + ": SG_IO not attempted (sg_pt code " + std::to_string(rc) + ")";
    return result;
  }
  char text[256] = {};
  switch (get_scsi_pt_result_category(pt_)) {
    case SCSI_PT_RESULT_OS_ERR:
      result.transport_error =
          path_ + ": " + one_line(get_scsi_pt_os_err_str(pt_, sizeof text, text));
      return result;
    case SCSI_PT_RESULT_TRANSPORT_ERR:
      result.transport_error = path_ + ": transport error: " +
                               one_line(get_scsi_pt_transport_err_str(pt_, sizeof text, text)) +
                               "; the command's effect is unknown";
      return result;
    default:  // GOOD, STATUS, SENSE: the device answered
      break;
  }
  result.status = static_cast<Status>(get_scsi_pt_status_response(pt_) & 0xFF);
  const int sense_len = std::clamp(get_scsi_pt_sense_len(pt_), 0, kMaxSense);
  result.sense.assign(sense, sense + sense_len);
  const long long resid =
      std::clamp<long long>(get_scsi_pt_resid(pt_), 0, static_cast<long long>(length));
  result.residual = static_cast<std::size_t>(resid);
  if (command.direction == Direction::kIn) result.data_in = length - result.residual;
  return result;
}

std::unique_ptr<Device> open_sg(const std::string& path, std::string& error) {
  const int fd = scsi_pt_open_device(path.c_str(), false, 0);
  if (fd < 0) {
    error = "open " + path + ": " + std::strerror(-fd);
    return nullptr;
  }
  const int kind = check_pt_file_handle(fd, path.c_str(), 0);
  if (kind < 0 || kind >= 3) {
    error = path + (kind < 0 ? std::string(": ") + std::strerror(-kind)
                             : std::string(" is an NVMe device, not SCSI"));
    scsi_pt_close_device(fd);
    return nullptr;
  }
  // sg, bsg and SCSI block and tape nodes answer this; anything else
  // (a regular file, a tty) would fail every command with ENOTTY.
  int version = 0;
  if (ioctl(fd, SG_GET_VERSION_NUM, &version) < 0) {
    error = path + " does not take SCSI pass-through (SG_GET_VERSION_NUM: " + std::strerror(errno) +
            ")";
    scsi_pt_close_device(fd);
    return nullptr;
  }
  sg_pt_base* pt = construct_scsi_pt_obj_with_fd(fd, 0);
  if (pt == nullptr || get_scsi_pt_os_err(pt) != 0) {
    error = path + ": cannot set up pass-through" +
            (pt == nullptr ? std::string(" (out of memory)")
                           : std::string(": ") + std::strerror(get_scsi_pt_os_err(pt)));
    if (pt != nullptr) destruct_scsi_pt_obj(pt);
    scsi_pt_close_device(fd);
    return nullptr;
  }
  return std::unique_ptr<Device>(new SgDevice(path, fd, pt));
}

}  // namespace scsi
