// CopyEngine: a software copy manager.  It executes EXTENDED COPY (LID1)
// parameter lists against the devices their target descriptors name, and
// answers RECEIVE COPY RESULTS about them.  The emulated copy manager LUN
// (scsi/emu/copy_manager.h) runs on it; so can ndmpd itself when the SAN
// has no copy manager of its own.
//
// What it does, per SPC-4 (reference/xcopy-spc4.md):
// - target descriptors E4h, resolved designator -> Device by a Resolver;
//   disks (SBC: READ(16)/WRITE(16)) and tapes (SSC: READ(6)/WRITE(6),
//   fixed or variable, SILI=0; WRITE FILEMARKS, SPACE, LOCATE);
// - each device checked before any I/O: a disk's block length and capacity
//   (READ CAPACITY(16): a range past the end is refused before anything is
//   written), a tape's block mode and length (MODE SENSE) against its
//   descriptor;
// - segment descriptors 00h 01h 02h 04h 06h 07h 08h 09h 0Ah 10h 11h 12h 13h,
//   in order, with the residue rules (CAT, PAD) carried between segments;
// - bounded memory (a copy holds at most settings.buffer_bytes of data) and
//   reads overlapped with writes, so that source and destination stream;
// - exact failure sense: the parse errors before any segment runs, and
//   COPY ABORTED with the failing segment, the residual and the failing
//   device's own sense forwarded (copy_aborted_sense() in xcopy.h);
// - several copies at once (distinct list identifiers per initiator), each
//   followed by COPY STATUS while it runs, with FAILED SEGMENT DETAILS kept
//   after a failure as the LIST ID USAGE asks.
//
// Thread-safety: extended_copy() and receive_copy_results() may be called
// from any thread, concurrently; an extended_copy() blocks its caller until
// the copy ends.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "scsi/device.h"
#include "scsi/xcopy.h"

namespace scsi::xcopy {

// Finds the logical unit a target descriptor names (by designator, type
// and association); null if none is reachable.
using Resolver = std::function<std::shared_ptr<Device>(const TargetDescriptor&)>;

struct EngineSettings {
  Limits limits;                                  // what parameter lists may hold
  std::uint32_t max_segment_length = 0;           // bytes per segment; 0 = no limit
  std::uint32_t max_stream_transfer = 16u << 20;  // largest stream record it will move
  std::uint32_t chunk_bytes = 1u << 20;           // one disk READ/WRITE, at most
  std::size_t buffer_bytes = 8u << 20;            // data in flight per copy, at most
  std::uint8_t max_concurrent_copies = 8;
  std::chrono::milliseconds command_timeout{120000};  // per device command
};

class CopyEngine {
 public:
  CopyEngine(Resolver resolver, EngineSettings settings);
  ~CopyEngine();
  CopyEngine(const CopyEngine&) = delete;
  CopyEngine& operator=(const CopyEngine&) = delete;

  // EXTENDED COPY: `cdb` (16 bytes, 83h/00h) and its parameter list, from
  // the initiator `initiator` (list identifiers are per initiator).
  // Blocks until the copy ends; returns GOOD or CHECK CONDITION with the
  // sense described above.
  Result extended_copy(std::span<const std::uint8_t> cdb, std::span<const std::uint8_t> parameters,
                       const std::string& initiator = {});

  // RECEIVE COPY RESULTS (84h): COPY STATUS, OPERATING PARAMETERS, FAILED
  // SEGMENT DETAILS; anything else or an unknown list identifier: ILLEGAL
  // REQUEST, INVALID FIELD IN CDB.  Answers while copies run.
  Result receive_copy_results(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in,
                              const std::string& initiator = {});

  // What OPERATING PARAMETERS reports: the settings, truthfully.
  OperatingParameters operating_parameters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace scsi::xcopy
