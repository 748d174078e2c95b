// What became of a tape or changer command, in the terms the NDMP tape
// service, the robot service and the mover act on, decoded from SCSI
// status and sense.  Transport failures are their own condition: the
// command's effect on the device is then unknown.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "scsi/device.h"
#include "scsi/sense.h"

namespace tape {

enum class Condition {
  kOk,
  kFilemark,           // a read or space stopped after (or, backwards, before) a filemark
  kEndOfData,          // BLANK CHECK: nothing is recorded here
  kBeginningOfMedium,  // spacing backwards reached BOP
  kEarlyWarning,       // the write was done, but the cartridge is past early warning
  kOverflow,           // VOLUME OVERFLOW: not written, no room
  kIncorrectLength,    // a record of another length than asked for (ILI)
  kWriteProtected,     // DATA PROTECT
  kNoMedium,           // NOT READY, MEDIUM NOT PRESENT
  kNotReady,           // NOT READY for another reason
  kUnitAttention,      // the medium may have changed, or the device was reset
  kIllegalRequest,     // the device refused the command (unsupported, a bad field)
  kMediumError,        // MEDIUM or HARDWARE ERROR
  kSourceEmpty,        // changer: 3B/0E
  kDestinationFull,    // changer: 3B/0D
  kInvalidElement,     // changer: 21/01
  kRemovalPrevented,   // changer: 53/02
  kOther,              // any other CHECK CONDITION or status
  kTransport,          // the device could not be reached
};

std::string_view to_string(Condition c);

struct Status {
  Condition condition = Condition::kOk;
  // INFORMATION, when the device set it: what was not done (bytes or
  // blocks not transferred, a count not spaced).
  bool residue_valid = false;
  std::int64_t residue = 0;
  bool eom = false;  // the EOM bit (early warning, BOP, overflow)
  bool ili = false;
  std::optional<scsi::Sense> sense;
  // What went wrong, in words: the transport's error, a status that is not
  // CHECK CONDITION, data that does not parse, a refused motion.
  std::string detail;

  bool ok() const { return condition == Condition::kOk; }
  // "END OF DATA (BLANK CHECK 00/05 ...)" for logs and errors.
  std::string describe() const;
};

// Classifies a Result.  A CHECK CONDITION without decodable sense is kOther.
Status classify(const scsi::Result& r);

}  // namespace tape
