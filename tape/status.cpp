#include "tape/status.h"

namespace tape {

std::string_view to_string(Condition c) {
  switch (c) {
    case Condition::kOk:
      return "OK";
    case Condition::kFilemark:
      return "FILEMARK";
    case Condition::kEndOfData:
      return "END OF DATA";
    case Condition::kBeginningOfMedium:
      return "BEGINNING OF MEDIUM";
    case Condition::kEarlyWarning:
      return "EARLY WARNING";
    case Condition::kOverflow:
      return "VOLUME OVERFLOW";
    case Condition::kIncorrectLength:
      return "INCORRECT LENGTH";
    case Condition::kWriteProtected:
      return "WRITE PROTECTED";
    case Condition::kNoMedium:
      return "NO MEDIUM";
    case Condition::kNotReady:
      return "NOT READY";
    case Condition::kUnitAttention:
      return "UNIT ATTENTION";
    case Condition::kIllegalRequest:
      return "ILLEGAL REQUEST";
    case Condition::kMediumError:
      return "MEDIUM ERROR";
    case Condition::kSourceEmpty:
      return "SOURCE EMPTY";
    case Condition::kDestinationFull:
      return "DESTINATION FULL";
    case Condition::kInvalidElement:
      return "INVALID ELEMENT";
    case Condition::kRemovalPrevented:
      return "REMOVAL PREVENTED";
    case Condition::kOther:
      return "ERROR";
    case Condition::kTransport:
      return "TRANSPORT FAILURE";
  }
  return "?";
}

std::string Status::describe() const {
  std::string s(to_string(condition));
  if (!detail.empty()) return s + ": " + detail;
  if (sense) s += " (" + sense->describe() + ")";
  if (residue_valid) s += " residue " + std::to_string(residue);
  return s;
}

Status classify(const scsi::Result& r) {
  Status s;
  if (!r.transport_error.empty()) {
    s.condition = Condition::kTransport;
    s.detail = r.transport_error;
    return s;
  }
  if (r.status == scsi::Status::kGood || r.status == scsi::Status::kConditionMet) return s;
  if (r.status != scsi::Status::kCheckCondition) {
    s.condition = Condition::kOther;
    s.detail = "SCSI status " + std::to_string(static_cast<int>(r.status));
    return s;
  }
  s.sense = scsi::decode_sense(r.sense);
  if (!s.sense) {
    s.condition = Condition::kOther;
    return s;
  }
  const scsi::Sense& k = *s.sense;
  s.residue_valid = k.information_valid;
  s.residue = k.information;
  s.eom = k.eom;
  s.ili = k.ili;
  using scsi::SenseKey;
  switch (k.key) {
    case SenseKey::kNoSense:
    case SenseKey::kRecoveredError:
      // The stream bits carry the news: filemark, then EOM, then ILI.
      if (k.filemark) {
        s.condition = Condition::kFilemark;
      } else if (k.eom) {
        // 00/04: beginning of partition; 00/02 (or anything else with EOM
        // on a write): early warning.
        s.condition = (k.asc == 0x00 && k.ascq == 0x04) ? Condition::kBeginningOfMedium
                                                        : Condition::kEarlyWarning;
      } else if (k.ili) {
        s.condition = Condition::kIncorrectLength;
      } else if (k.asc == 0x00 && k.ascq == 0x05) {
        // END-OF-DATA DETECTED without BLANK CHECK: tgt's SPACE says it so.
        s.condition = Condition::kEndOfData;
      } else if (k.asc == 0x00 && k.ascq == 0x04) {
        // BEGINNING-OF-PARTITION without the EOM bit (tgt).
        s.condition = Condition::kBeginningOfMedium;
      } else {
        s.condition = k.key == SenseKey::kRecoveredError ? Condition::kOk : Condition::kOther;
      }
      break;
    case SenseKey::kBlankCheck:
      // Any BLANK CHECK is end of data (tgt says 00/00 with EOM, not 00/05).
      s.condition = Condition::kEndOfData;
      break;
    case SenseKey::kVolumeOverflow:
      s.condition = Condition::kOverflow;
      break;
    case SenseKey::kDataProtect:
      s.condition = Condition::kWriteProtected;
      break;
    case SenseKey::kNotReady:
      s.condition = k.asc == 0x3A ? Condition::kNoMedium : Condition::kNotReady;
      break;
    case SenseKey::kUnitAttention:
      s.condition = Condition::kUnitAttention;
      break;
    case SenseKey::kIllegalRequest:
      if (k.asc == 0x3B && k.ascq == 0x0E) {
        s.condition = Condition::kSourceEmpty;
      } else if (k.asc == 0x3B && k.ascq == 0x0D) {
        s.condition = Condition::kDestinationFull;
      } else if (k.asc == 0x21 && k.ascq == 0x01) {
        s.condition = Condition::kInvalidElement;
      } else if (k.asc == 0x53 && k.ascq == 0x02) {
        s.condition = Condition::kRemovalPrevented;
      } else {
        s.condition = Condition::kIllegalRequest;
      }
      break;
    case SenseKey::kMediumError:
    case SenseKey::kHardwareError:
      s.condition = Condition::kMediumError;
      break;
    default:
      s.condition = Condition::kOther;
      break;
  }
  return s;
}

}  // namespace tape
