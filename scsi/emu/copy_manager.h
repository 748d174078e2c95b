// The emulated copy manager of the virtual SAN: a logical unit (peripheral
// device type 03h, processor) that answers EXTENDED COPY and RECEIVE COPY
// RESULTS with a CopyEngine over the devices its resolver reaches (the
// emulated disks and tapes; real LUNs too, through their transports).
// Standard INQUIRY sets 3PC; VPD page 8Fh (third-party copy) lists what it
// supports; OPERATING PARAMETERS tells its limits truthfully.
//
// Unlike the other units, it does not serialize EXTENDED COPY and RECEIVE
// COPY RESULTS under the unit's lock: several copies run at once, and COPY
// STATUS answers while they run.
#pragma once

#include <memory>

#include "scsi/copy_engine.h"
#include "scsi/emu/logical_unit.h"

namespace scsi::emu {

class CopyManagerUnit : public LogicalUnit {
 public:
  CopyManagerUnit(UnitIdentity identity, xcopy::Resolver resolver,
                  xcopy::EngineSettings settings = {});
  ~CopyManagerUnit() override;

  xcopy::CopyEngine& engine() { return *engine_; }

 protected:
  Result execute_class(std::span<const std::uint8_t> cdb, std::span<const std::uint8_t> data_out,
                       std::span<std::uint8_t> data_in) override;
  // EXTENDED COPY and RECEIVE COPY RESULTS run outside the unit's lock
  // (the engine guards its own state).
  bool runs_unlocked(std::span<const std::uint8_t> cdb) const override;
  Bytes vpd_page(std::uint8_t page) const override;
  std::vector<std::uint8_t> extra_vpd_pages() const override { return {0x8F}; }

 private:
  std::unique_ptr<xcopy::CopyEngine> engine_;
};

}  // namespace scsi::emu
