// The devices a session holds: the tape drive it opened with TAPE_OPEN and
// the SCSI device (a changer, say) it opened with SCSI_OPEN, each exclusive
// to that session while open (DeviceLocks, shared by all sessions).
//
// OpenTape moves the tape through a tape::TapeHead, which keeps the
// position NDMP reports in TAPE_GET_STATE (file number and block number
// within the file), counted as the operations go, the way a tape driver
// does: SSC drives report positions as logical objects, not files, and
// some (tgt) report none at all.
//
// DeviceLocks is internally locked; OpenTape and OpenScsi belong to one
// session and are used on its strand or, during a blocking operation that
// the session awaits, on a worker thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "scsi/device.h"
#include "tape/tape_head.h"
#include "xdr/ndmp4_wire.h"

namespace ndmpd {

// Who holds which device, and where each tape drive was left.
class DeviceLocks {
 public:
  // Takes `name` for `session`; false if another session holds it.
  bool acquire(const std::string& name, std::uint64_t session);
  // Gives it back (only its holder can).
  void release(const std::string& name, std::uint64_t session);
  std::optional<std::uint64_t> holder(const std::string& name) const;

  // The position a tape drive was closed at, with the drive's own logical
  // object number when it could tell, so that the next TAPE_OPEN can trust
  // it (a drive does not move between sessions unless someone moves it).
  struct Parked {
    tape::HeadPosition position;
    std::optional<std::uint64_t> object;
  };
  void park(const std::string& name, Parked p);
  std::optional<Parked> parked(const std::string& name) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> held_;
  std::map<std::string, Parked> parked_;
};

struct OpenTape {
  std::string name;
  ndmp4_tape_open_mode mode = NDMP4_TAPE_READ_MODE;
  std::shared_ptr<scsi::Device> device;
  std::unique_ptr<tape::TapeHead> head;
  bool loaded = true;             // a RAW open may find no cartridge
  bool pending_filemark = false;  // records written and no filemark after them yet
  bool early_warning = false;     // early warning met: the next write gets EOM_ERR
  bool eom_reported = false;      // ... which it did
  bool media_error = false;       // the last operation met a media error (ERROR flag)
  bool close_failed = false;      // a close's implicit filemark failed: close without I/O
  // A read met a filemark: the head is before it, and NDMP (as ndmjob
  // checks) reports the block number unknown until the head moves.
  bool blockno_unknown = false;

  bool can_write() const { return mode != NDMP4_TAPE_READ_MODE; }
};

struct OpenScsi {
  std::string name;
  std::shared_ptr<scsi::Device> device;
};

}  // namespace ndmpd
