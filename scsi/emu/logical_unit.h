// The emulated logical units of the virtual SAN, as a SCSI target sees
// them: a CDB and its data-out come in; status, sense and data-in go out.
// They are product code (the embedded default runs on them), independent
// of how CDBs reach them: an EmulatedDevice hands them CDBs in process, and
// another front end (iSCSI) could serve the same objects.
//
// LogicalUnit implements what every SPC device answers (INQUIRY with VPD
// pages 00h, 80h, 83h and device pages, REPORT LUNS, REQUEST SENSE, TEST
// UNIT READY, unit attentions) and routes the rest to its device class
// (SSC tape drive, SMC changer, SBC disk), which answers INVALID COMMAND
// OPERATION CODE for what it does not know.
//
// Thread-safety: execute() may be called from any thread; each unit
// serializes its commands with its own mutex, except the operation codes a
// device class names in runs_unlocked() (after unit attention handling,
// which stays under the mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "scsi/big_endian.h"
#include "scsi/device.h"
#include "scsi/sense.h"

namespace scsi::emu {

// What INQUIRY and VPD 80h/83h say about a unit.
struct UnitIdentity {
  std::uint8_t peripheral_type = 0;  // 00h disk, 01h tape, 08h changer
  bool removable = false;            // RMB
  std::string vendor = "NDMPD";      // 8 characters at most
  std::string product;               // 16 at most
  std::string revision = "0100";     // 4 at most
  std::string serial;                // VPD 80h
  Bytes naa;                         // VPD 83h: NAA IEEE Registered Extended, 16 bytes
  bool third_party_copy = false;     // 3PC (a copy manager)
};

// Makes a stable NAA 6 (IEEE Registered Extended) designator and a serial
// from a per-installation id and a unit name: the same inputs give the
// same designator after a restart; different names differ.
UnitIdentity make_identity(std::uint8_t peripheral_type, const std::string& product,
                           std::span<const std::uint8_t> installation_id, const std::string& name);

class LogicalUnit {
 public:
  explicit LogicalUnit(UnitIdentity identity);
  virtual ~LogicalUnit() = default;
  LogicalUnit(const LogicalUnit&) = delete;
  LogicalUnit& operator=(const LogicalUnit&) = delete;

  // Executes one command.  `data_in` is the initiator's buffer (its size
  // is what the initiator allows); Result::data_in says how much was filled.
  Result execute(std::span<const std::uint8_t> cdb, std::span<const std::uint8_t> data_out,
                 std::span<std::uint8_t> data_in);

  const UnitIdentity& identity() const { return identity_; }

  // A unit attention (e.g. 28/00 after a cartridge was loaded) for the next
  // command that is not INQUIRY, REPORT LUNS or REQUEST SENSE.
  void set_unit_attention(std::uint8_t asc, std::uint8_t ascq);

  // LOGICAL UNIT RESET: the class forgets its transient state (reset_class),
  // and the next command gets UNIT ATTENTION 29/03 (logical unit reset
  // occurred).
  void reset();

 protected:
  // The device class's commands.  Called with the unit's mutex held, except
  // for CDBs for which runs_unlocked() is true.
  virtual Result execute_class(std::span<const std::uint8_t> cdb,
                               std::span<const std::uint8_t> data_out,
                               std::span<std::uint8_t> data_in) = 0;
  // Whether execute_class() runs this CDB without the unit's mutex (a
  // command that blocks long and must not stop others, such as EXTENDED
  // COPY; the class then guards its own state).  Unit attentions are
  // reported and cleared under the mutex first, as for any command.
  virtual bool runs_unlocked(std::span<const std::uint8_t> /*cdb*/) const { return false; }
  // TEST UNIT READY: GOOD, or NOT READY with the reason.
  virtual Result test_unit_ready() { return {}; }
  // Device-specific VPD pages (besides 00h, 80h, 83h): empty if unknown.
  virtual Bytes vpd_page(std::uint8_t page) const;
  virtual std::vector<std::uint8_t> extra_vpd_pages() const { return {}; }
  // What a logical unit reset clears in the device class (called with the
  // unit's mutex held).
  virtual void reset_class() {}

  // The lock all of a unit's state is under (for units whose state is
  // also changed from outside execute(), such as a drive the changer loads).
  std::mutex& mutex() const { return mutex_; }

 private:
  Result inquiry(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in) const;
  Result request_sense(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in);

  const UnitIdentity identity_;
  mutable std::mutex mutex_;
  bool unit_attention_ = false;
  std::uint8_t ua_asc_ = 0, ua_ascq_ = 0;
};

// ---- helpers for the device classes ----

// respond() (sense.h) copies a complete response into the initiator's buffer.

// CHECK CONDITION, ILLEGAL REQUEST, INVALID FIELD IN CDB (24/00) pointing
// at `byte` (and `bit`, if given) of the CDB.
Result invalid_field_in_cdb(std::uint16_t byte, int bit = -1);
// ... INVALID FIELD IN PARAMETER LIST (26/00).
Result invalid_field_in_parameters(std::uint16_t byte, int bit = -1);
// ... PARAMETER LIST LENGTH ERROR (1A/00).
Result parameter_list_length_error();
// ... INVALID COMMAND OPERATION CODE (20/00).
Result invalid_opcode();
// CHECK CONDITION with `key` asc/ascq and nothing else.
Result sense(SenseKey key, std::uint8_t asc, std::uint8_t ascq);

// Big-endian field access on byte spans (callers have checked the length).
// (n <= 4: the emulated units' fields; scsi/big_endian.h for the rest.)
inline std::uint32_t get_be(std::span<const std::uint8_t> b, std::size_t at, std::size_t n) {
  return static_cast<std::uint32_t>(be(b, at, n));
}
inline std::uint64_t get_be64(std::span<const std::uint8_t> b, std::size_t at) {
  return be64(b, at);
}
// Writes `s` padded with spaces (or cut) to `n` bytes at `at`.
void put_ascii(Bytes& b, std::size_t at, std::size_t n, const std::string& s);

// The CDB length that the operation code's group implies (6, 10, 12, 16;
// 0 for variable or vendor groups).
std::size_t cdb_length(std::uint8_t opcode);

// A Device over a LogicalUnit, in process ("emulated:NAME").
class EmulatedDevice : public Device {
 public:
  EmulatedDevice(std::shared_ptr<LogicalUnit> unit, std::string name)
      : unit_(std::move(unit)), name_(std::move(name)) {}
  Result execute(const Command& command) override;
  bool can_reset() const override { return true; }
  Result reset() override {
    unit_->reset();
    return {};
  }
  std::string describe() const override { return "emulated:" + name_; }
  const std::shared_ptr<LogicalUnit>& unit() const { return unit_; }

 private:
  std::shared_ptr<LogicalUnit> unit_;
  std::string name_;
};

}  // namespace scsi::emu
