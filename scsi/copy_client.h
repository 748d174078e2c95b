// CopyClient: the initiator side of EXTENDED COPY, as the mover and the
// operator's `ndmpd xcopy` use it.  It works against any copy manager
// reachable as a scsi::Device (the emulated one, or one on a real SAN over
// sg or iscsi):
// - learns each device's designator from VPD 83h (and its type, block
//   length or tape block mode) and turns it into a target descriptor;
// - reads the copy manager's OPERATING PARAMETERS (defaults that fit every
//   known copy manager when it has none) and keeps every parameter list
//   within them (descriptor counts, segment length, list length);
// - sends the copy in bounded batches (one EXTENDED COPY each, with a list
//   identifier of its own), follows each with COPY STATUS on a second path
//   where the copy manager offers it, and falls back to the command's
//   completion where it does not;
// - on failure reads the command's COPY ABORTED sense (FAILED SEGMENT
//   DETAILS only when that sense was lost or cut short), computes how many
//   bytes reached the destination, and confirms that with the destination
//   tape's READ POSITION.
//
// List identifiers come from one process-wide counter with a random start,
// so that clients sharing a copy manager (and an I_T nexus) neither collide
// nor read each other's results.
//
// Thread-safety: one CopyClient per job; run() blocks its caller (it runs
// each EXTENDED COPY on a thread of its own while it polls COPY STATUS).
// Several CopyClients may run at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "scsi/device.h"
#include "scsi/xcopy.h"

namespace scsi::xcopy {

// A device taking part in a copy: how the copy manager names it, and what
// the client learned about it.
struct Endpoint {
  std::shared_ptr<Device>
      device;                   // the client's own path to it (INQUIRY, MODE SENSE, READ POSITION)
  TargetDescriptor descriptor;  // what goes into the parameter list
  bool tape = false;
  std::uint32_t block_length = 0;  // disk: logical block length; fixed tape: block length
  std::uint64_t blocks = 0;        // disk: capacity in blocks
};

// Builds an Endpoint from the device's INQUIRY, VPD 83h and READ CAPACITY
// (disk) or MODE SENSE block descriptor (tape: fixed when its block length
// is not 0).  A TEST UNIT READY first takes any pending unit attention (a
// cartridge just loaded), which would otherwise fail the copy manager's
// first command to the device.  nullopt with `error` if the device is
// neither disk nor tape, is not ready, or has no usable designator.
std::optional<Endpoint> describe_endpoint(std::shared_ptr<Device> device, std::string& error);

// A disk's capacity in bytes; nullopt for a tape, a block length of 0, or a
// capacity past 2^64 - 1 bytes.
std::optional<std::uint64_t> disk_capacity(const Endpoint& disk);

// The byte at which a disk range starts, lba * block_length + byte_offset,
// with the arithmetic checked (operators type these numbers).  nullopt with
// `error` when the LBA is not on the disk, the start overflows or lies at
// or past the disk's end.
std::optional<std::uint64_t> disk_start(const Endpoint& disk, std::uint64_t lba,
                                        std::uint64_t byte_offset, std::string& error);

struct ClientSettings {
  std::uint64_t batch_bytes = 80ull << 20;  // data per EXTENDED COPY command, at most
  std::uint32_t segment_bytes = 8u << 20;  // data per segment, at most (within the manager's limit)
  std::chrono::milliseconds command_timeout{600000};
  std::chrono::milliseconds poll_interval{200};  // COPY STATUS, when offered
};

// What to copy.  A disk range starts at byte lba * block_length +
// byte_offset (so that a copy cut short at a tape's end of medium resumes
// exactly where it stopped, on a fresh cartridge); a tape is read or
// written from where its head is, in records of `record_size` bytes
// (variable mode), or in blocks (fixed mode: record_size is a multiple of
// the block length, each WRITE carries record_size / block_length blocks);
// the last record of a disk -> tape copy is zero-padded to a whole record
// (PAD), and a tape -> disk copy of a length that is no multiple of the
// record size drops the rest of the last record.
struct CopyJob {
  Endpoint source;
  Endpoint destination;
  std::uint64_t source_lba = 0;               // disk source
  std::uint64_t source_byte_offset = 0;       // disk source: bytes past source_lba
  std::uint64_t destination_lba = 0;          // disk destination
  std::uint64_t destination_byte_offset = 0;  // disk destination: bytes past destination_lba
  std::uint64_t bytes = 0;                    // how much to copy
  std::uint32_t record_size = 0;              // tape records (variable mode); 0 = the block length
};

struct CopyProgress {
  std::uint64_t bytes_copied = 0;  // reached the destination, for certain
  std::uint64_t bytes_total = 0;
};

struct CopyOutcome {
  bool ok = false;
  std::uint64_t bytes_copied = 0;  // exact, also on failure
  // The destination tape reached early warning (or overflowed).  With `ok`
  // too: everything was written, the last record past early warning.
  bool end_of_medium = false;
  // bytes_copied agrees with the destination tape's position (READ
  // POSITION before and after), or the destination is a disk.  false: the
  // count could not be confirmed; do not resume a copy from it.
  bool confirmed = true;
  std::optional<CopyAbort> abort;  // the copy manager's account of the failure
  std::string error;               // a sentence for the operator
  std::uint32_t commands = 0;      // EXTENDED COPY commands sent
  std::uint32_t segments = 0;      // segment descriptors planned (all commands)
};

class CopyClient {
 public:
  // `manager`: the copy manager's logical unit.  `status_path`: a second
  // path to it for COPY STATUS while a copy runs (null: poll nothing, wait
  // for completion).
  CopyClient(std::shared_ptr<Device> manager, std::shared_ptr<Device> status_path,
             ClientSettings settings = {});

  // Reads OPERATING PARAMETERS (and VPD 8Fh).  false with `error` if the
  // unit is no copy manager (no 3PC, EXTENDED COPY refused).
  bool open(std::string& error);
  const OperatingParameters& parameters() const { return params_; }
  // Whether RECEIVE COPY RESULTS answers COPY STATUS (and FAILED SEGMENT
  // DETAILS) for this copy manager; false after open() fell back to the
  // conservative defaults.
  bool status_offered() const { return status_offered_; }

  // Runs `job` to the end, or to the first failure.  `progress` is called
  // after each batch and on each COPY STATUS answer; `cancel` is read
  // between batches.
  CopyOutcome run(const CopyJob& job, const std::function<void(const CopyProgress&)>& progress = {},
                  const std::atomic<bool>* cancel = nullptr);

 private:
  std::shared_ptr<Device> manager_;
  std::shared_ptr<Device> status_path_;
  ClientSettings settings_;
  OperatingParameters params_;
  bool status_offered_ = false;
  bool details_offered_ = false;
  // Whether COPY STATUS on status_path_ knows this client's lists: a second
  // path that is another I_T nexus does not (list identifiers are per
  // nexus), which shows only once a copy runs.
  bool status_visible_ = true;
};

}  // namespace scsi::xcopy
