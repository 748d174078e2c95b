// scsi::Device: the one way ndmpd talks to any device.  Tape drives,
// changers, disks and copy managers, real (sg, iscsi) or emulated, all
// execute CDBs through it.
//
// execute() blocks until the command completes or its timeout passes: call
// it from a worker thread, never from the event loop (execute_async() in
// ndmpd does the hop).  Implementations are thread-safe: commands from
// several threads are executed one at a time, in the order they arrive.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace scsi {

using Bytes = std::vector<std::uint8_t>;

// SCSI status byte values (SAM-5).
enum class Status : std::uint8_t {
  kGood = 0x00,
  kCheckCondition = 0x02,
  kConditionMet = 0x04,
  kBusy = 0x08,
  kReservationConflict = 0x18,
  kTaskSetFull = 0x28,
  kAcaActive = 0x30,
  kTaskAborted = 0x40,
};

enum class Direction { kNone, kIn, kOut };

struct Command {
  Bytes cdb;
  Direction direction = Direction::kNone;
  std::span<const std::uint8_t> data_out;  // kOut: the bytes to send
  std::span<std::uint8_t> data_in;         // kIn: where data-in goes (its size
                                           // is the allocation / transfer length)
  std::chrono::milliseconds timeout{60000};
};

// What became of a command.  A transport failure (connection lost,
// timeout, no such device) is `transport_error` non-empty: the command's
// effect on the device is then unknown.
struct Result {
  Status status = Status::kGood;
  Bytes sense;               // as the device returned it (fixed or descriptor format)
  std::size_t data_in = 0;   // bytes of data-in actually received
  std::size_t residual = 0;  // bytes requested but not transferred, as the transport says
  std::string transport_error;

  bool ok() const { return transport_error.empty() && status == Status::kGood; }
  bool check_condition() const {
    return transport_error.empty() && status == Status::kCheckCondition;
  }
};

// Standard identification of a logical unit, as INQUIRY reports it.
struct Identity {
  std::uint8_t peripheral_type = 0x1F;  // 00 disk, 01 tape, 08 changer, 0x1F unknown
  std::string vendor;                   // INQUIRY bytes 8-15, trimmed
  std::string product;                  // bytes 16-31, trimmed
  std::string revision;                 // bytes 32-35, trimmed
  std::string serial;                   // VPD 80h
  Bytes designator;                     // VPD 83h: the preferred LU designator (NAA first)
  std::uint8_t designator_type = 0;     // its designator type (3 = NAA)
};

class Device {
 public:
  virtual ~Device() = default;

  // Executes one command.  Blocking; thread-safe.
  virtual Result execute(const Command& command) = 0;

  // A logical unit reset (SAM: LOGICAL UNIT RESET), as NDMP's
  // SCSI_RESET_DEVICE asks.  Blocking; thread-safe.  Only when can_reset().
  virtual bool can_reset() const { return false; }
  virtual Result reset() {
    Result r;
    r.transport_error = "this transport cannot reset a logical unit";
    return r;
  }

  // "iscsi://127.0.0.1:3260/iqn.../1", "/dev/sg3", "emulated:vtl0.drive0".
  virtual std::string describe() const = 0;
};

}  // namespace scsi
