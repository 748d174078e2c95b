// A Device wrapper that injects faults, for tests of the layers above (the
// tape client, the mover, the copy engine): a given sense on the Nth
// command (or the Nth command of an operation code), early warning or
// volume overflow from block N of the writes on, a transport error, a
// delay, a device that breaks the rules (short data with GOOD status, an
// exception).  Everything else passes through to the wrapped device
// unchanged.
//
// Thread-safety: execute() and the rule setters may be called from any
// thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "scsi/device.h"
#include "scsi/sense.h"

namespace scsi {

class FaultInjectingDevice : public Device {
 public:
  explicit FaultInjectingDevice(std::shared_ptr<Device> inner);

  // The `n`th command from now (1 = the next one; counting every command,
  // or only those with `opcode`) is not executed: it ends in CHECK
  // CONDITION with `sense`.
  void sense_on_command(std::uint64_t n, SenseSpec sense);
  void sense_on_opcode(std::uint8_t opcode, std::uint64_t n, SenseSpec sense);

  // WRITE(6): once `n` blocks have been written through this wrapper (from
  // now), every further write is executed and then reports early warning
  // (NO SENSE, EOM, 00/02), as a drive past its early-warning point does.
  void early_warning_at_block(std::uint64_t n);

  // WRITE(6): writes that would take the count past `n` blocks are not
  // executed: VOLUME OVERFLOW, EOM, 00/02, INFORMATION = what was not written.
  void overflow_at_block(std::uint64_t n);

  // The `n`th command from now is not executed and fails as a transport
  // failure would (connection lost).
  void transport_error_on_command(std::uint64_t n, std::string what = "injected transport failure");

  // Every command from now waits `d` before it executes.
  void delay(std::chrono::milliseconds d);

  // What no device should do, for the defences of the layers above: every
  // command with `opcode` from now on...
  enum class Misbehaviour {
    kHalfData,   // is executed, then reports GOOD with only half its data in
                 // (the rest of the buffer zeroed, the residual grown)
    kEmptyGood,  // is not executed: GOOD with no data at all
    kThrow,      // is not executed: execute() throws std::bad_alloc
  };
  void misbehave_on_opcode(std::uint8_t opcode, Misbehaviour how);
  // Commands a misbehaviour rule applied to.
  std::uint64_t misbehaved() const;

  // Removes every rule.
  void clear();

  std::uint64_t commands_seen() const;
  std::uint64_t blocks_written() const;

  Result execute(const Command& command) override;
  std::string describe() const override { return "faulty(" + inner_->describe() + ")"; }

 private:
  struct SenseRule {
    std::optional<std::uint8_t> opcode;
    std::uint64_t remaining;  // matching commands still to let through + 1
    SenseSpec sense;
  };
  std::shared_ptr<Device> inner_;
  mutable std::mutex mutex_;
  std::vector<SenseRule> sense_rules_;
  std::optional<std::uint64_t> transport_error_at_;
  std::string transport_error_what_;
  std::optional<std::uint64_t> early_warning_at_, overflow_at_;
  std::optional<std::pair<std::uint8_t, Misbehaviour>> misbehaviour_;
  std::uint64_t misbehaved_ = 0;
  std::chrono::milliseconds delay_{0};
  std::uint64_t commands_ = 0;
  std::uint64_t blocks_ = 0;
};

}  // namespace scsi
