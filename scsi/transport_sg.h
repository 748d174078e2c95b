// SgDevice: a scsi::Device that is a kernel SCSI pass-through node
// (/dev/sgN, /dev/bsg/H:C:T:L), driven with libsgutils2's sg_pt API, which
// picks the SG_IO flavour (sg v3 or v4) the node needs.
//
// The kernel enforces Command::timeout (rounded up to whole seconds, as
// SG_IO counts them) and aborts or resets on expiry; that, a vanished
// device or an HBA error ends the command with transport_error, and its
// effect is then unknown.  Status and sense are passed through untouched
// (unit attentions included).  Result::data_in is the transfer length minus
// the residual the driver reports.
//
// Thread-safety: execute() may be called from any thread; commands run one
// at a time, in the order they arrive.  It blocks for up to the command's
// timeout (and whatever recovery the kernel does): never call it from the
// event loop.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "scsi/device.h"

struct sg_pt_base;

namespace scsi {

class SgDevice : public Device {
 public:
  ~SgDevice() override;
  SgDevice(const SgDevice&) = delete;
  SgDevice& operator=(const SgDevice&) = delete;

  // REQUIRES: command.cdb is 1..252 bytes (drivers may take fewer); data_out is
  // non-empty only for Direction::kOut and data_in only for Direction::kIn;
  // each below 2 GiB.  A command that breaks this is not sent
  // (transport_error says why).
  Result execute(const Command& command) override;

  // SG_SCSI_RESET with SG_SCSI_RESET_DEVICE (a logical unit reset).
  bool can_reset() const override { return true; }
  Result reset() override;

  // The path it was opened with.
  std::string describe() const override { return path_; }

 private:
  friend std::unique_ptr<Device> open_sg(const std::string& path, std::string& error);
  SgDevice(std::string path, int fd, sg_pt_base* pt);

  std::string path_;
  int fd_;
  sg_pt_base* pt_;  // reused for every command, under the lock

  // A ticket lock: commands are served in arrival order.
  std::mutex mutex_;
  std::condition_variable turn_;
  std::uint64_t next_ticket_ = 0;
  std::uint64_t serving_ = 0;
};

// Opens a SCSI pass-through node read-write.  nullptr and `error` if it
// cannot be opened or does not take SCSI pass-through (a regular file, an
// NVMe node, a missing driver).
std::unique_ptr<Device> open_sg(const std::string& path, std::string& error);

}  // namespace scsi
