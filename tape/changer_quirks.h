// Changers whose READ ELEMENT STATUS cannot be passed to a DMA as it is,
// and the repair.
//
// tgt 1.0.85's virtual changer (INQUIRY vendor "IET", product
// "VIRTUAL-CHANGER"):
//  - asked for all element types at once, it writes every element status
//    page after the first at the wrong offset: the report is garbage (and
//    in some states tgtd dies on it);
//  - its byte counts leave out the 8-byte page header, so the last 8 bytes
//    of every report are never sent, and the count says more than came;
//  - its "first element address reported" is the address of whatever
//    element followed the first one in its list;
//  - it refuses allocation lengths above 4096 bytes (HARDWARE ERROR).
//
// ElementStatusRepair answers every READ ELEMENT STATUS sent to such a
// changer (by the robot service's pass-through or by MediaChanger) with
// one command per element type, and rebuilds the report as SMC-3 lays it
// out: elements from the starting address in address order, at most the
// requested number, one page per run of one type, byte counts that match,
// cut at the caller's allocation length.  A descriptor the changer cut
// short is padded with zeros (the reserved bytes after the volume tag; for
// a drive with DVCID, the end of its identifier); without volume tags the
// cut takes half the fixed part of a type's last descriptor, so that
// element is asked for again alone, with volume tags, for its fixed part.
// Every other command, and every command to another changer, passes
// through untouched.  Whether a changer needs the repair is found from
// INQUIRY at its first READ ELEMENT STATUS.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "scsi/device.h"

namespace tape {

class ElementStatusRepair : public scsi::Device {
 public:
  explicit ElementStatusRepair(std::shared_ptr<scsi::Device> changer);

  scsi::Result execute(const scsi::Command& command) override;
  bool can_reset() const override { return changer_->can_reset(); }
  scsi::Result reset() override { return changer_->reset(); }
  std::string describe() const override { return changer_->describe(); }

  // Whether READ ELEMENT STATUS is being rebuilt (after the first one).
  bool repairing() const;

 private:
  bool needs_repair(const scsi::Command& command);
  scsi::Result rebuild(const scsi::Command& command);

  std::shared_ptr<scsi::Device> changer_;
  mutable std::mutex mutex_;
  enum class Verdict { kUnknown, kPassThrough, kRepair } verdict_ = Verdict::kUnknown;
};

// True for a changer that ElementStatusRepair must repair, by INQUIRY.
bool garbles_element_status(const scsi::Identity& identity);

}  // namespace tape
