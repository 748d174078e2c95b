#include "scsi/fault.h"

#include <algorithm>
#include <new>
#include <thread>

namespace scsi {

namespace {
constexpr std::uint8_t kWrite6 = 0x0A;

std::uint32_t write6_blocks(const Bytes& cdb) {
  if (cdb.size() < 6 || cdb[0] != kWrite6) return 0;
  const std::uint32_t length = (std::uint32_t{cdb[2]} << 16) | (cdb[3] << 8) | cdb[4];
  if (length == 0) return 0;
  return (cdb[1] & 0x01) ? length : 1;  // fixed: blocks; variable: one record
}
}  // namespace

FaultInjectingDevice::FaultInjectingDevice(std::shared_ptr<Device> inner)
    : inner_(std::move(inner)) {}

void FaultInjectingDevice::sense_on_command(std::uint64_t n, SenseSpec sense) {
  std::lock_guard lock(mutex_);
  sense_rules_.push_back({std::nullopt, n, sense});
}

void FaultInjectingDevice::sense_on_opcode(std::uint8_t opcode, std::uint64_t n, SenseSpec sense) {
  std::lock_guard lock(mutex_);
  sense_rules_.push_back({opcode, n, sense});
}

void FaultInjectingDevice::early_warning_at_block(std::uint64_t n) {
  std::lock_guard lock(mutex_);
  early_warning_at_ = blocks_ + n;
}

void FaultInjectingDevice::overflow_at_block(std::uint64_t n) {
  std::lock_guard lock(mutex_);
  overflow_at_ = blocks_ + n;
}

void FaultInjectingDevice::transport_error_on_command(std::uint64_t n, std::string what) {
  std::lock_guard lock(mutex_);
  transport_error_at_ = commands_ + n;
  transport_error_what_ = std::move(what);
}

void FaultInjectingDevice::delay(std::chrono::milliseconds d) {
  std::lock_guard lock(mutex_);
  delay_ = d;
}

void FaultInjectingDevice::clear() {
  std::lock_guard lock(mutex_);
  sense_rules_.clear();
  transport_error_at_.reset();
  early_warning_at_.reset();
  overflow_at_.reset();
  misbehaviour_.reset();
  delay_ = std::chrono::milliseconds(0);
}

void FaultInjectingDevice::misbehave_on_opcode(std::uint8_t opcode, Misbehaviour how) {
  std::lock_guard lock(mutex_);
  misbehaviour_ = {opcode, how};
}

std::uint64_t FaultInjectingDevice::misbehaved() const {
  std::lock_guard lock(mutex_);
  return misbehaved_;
}

std::uint64_t FaultInjectingDevice::commands_seen() const {
  std::lock_guard lock(mutex_);
  return commands_;
}

std::uint64_t FaultInjectingDevice::blocks_written() const {
  std::lock_guard lock(mutex_);
  return blocks_;
}

Result FaultInjectingDevice::execute(const Command& command) {
  std::chrono::milliseconds wait{0};
  bool early_warning = false;
  bool half_data = false;
  {
    std::lock_guard lock(mutex_);
    const std::uint64_t n = ++commands_;
    wait = delay_;
    if (transport_error_at_ && *transport_error_at_ == n) {
      transport_error_at_.reset();
      Result r;
      r.transport_error = transport_error_what_;
      return r;
    }
    const std::uint8_t op = command.cdb.empty() ? 0xFF : command.cdb[0];
    for (auto it = sense_rules_.begin(); it != sense_rules_.end(); ++it) {
      if (it->opcode && *it->opcode != op) continue;
      if (--it->remaining == 0) {
        const SenseSpec s = it->sense;
        sense_rules_.erase(it);
        return check_condition(s);
      }
    }
    if (misbehaviour_ && misbehaviour_->first == op) {
      ++misbehaved_;
      switch (misbehaviour_->second) {
        case Misbehaviour::kEmptyGood: {
          Result r;
          r.residual = command.data_in.size();
          return r;
        }
        case Misbehaviour::kThrow:
          throw std::bad_alloc();
        case Misbehaviour::kHalfData:
          half_data = true;
          break;
      }
    }
    const std::uint32_t blocks = write6_blocks(command.cdb);
    if (blocks != 0) {
      if (overflow_at_ && blocks_ + blocks > *overflow_at_) {
        // Refused whole: INFORMATION = all of it (blocks, or bytes in
        // variable mode).
        const bool fixed = command.cdb[1] & 0x01;
        const std::uint32_t length =
            (std::uint32_t{command.cdb[2]} << 16) | (command.cdb[3] << 8) | command.cdb[4];
        return check_condition({.key = SenseKey::kVolumeOverflow,
                                .asc = 0x00,
                                .ascq = 0x02,
                                .eom = true,
                                .information = fixed ? blocks : length});
      }
      early_warning = early_warning_at_ && blocks_ + blocks > *early_warning_at_;
    }
  }
  if (wait.count() > 0) std::this_thread::sleep_for(wait);
  Result r = inner_->execute(command);
  if (r.ok() && half_data) {
    const std::size_t keep = r.data_in / 2;
    std::fill(command.data_in.begin() + static_cast<std::ptrdiff_t>(keep), command.data_in.end(),
              0);
    r.residual += r.data_in - keep;
    r.data_in = keep;
  }
  if (r.ok()) {
    const std::uint32_t blocks = write6_blocks(command.cdb);
    std::lock_guard lock(mutex_);
    blocks_ += blocks;
    if (early_warning) {
      return check_condition(
          {.key = SenseKey::kNoSense, .asc = 0x00, .ascq = 0x02, .eom = true, .information = 0});
    }
  }
  return r;
}

}  // namespace scsi
