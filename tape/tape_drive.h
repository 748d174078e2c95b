// TapeDrive: an SSC client over any scsi::Device.  It sends the CDBs and
// turns status and sense into plain answers: how many bytes a read gave
// and how long the record really was, a filemark, end of data, early
// warning, overflow, write protection, no medium.
//
// Works around known device deviations instead of trusting them: the
// length of a record read short comes from the sense INFORMATION field
// (tgt 1.0.85 reports a wrong transport residual with ILI and FILEMARK),
// and no more bytes count as read than the transport carried (of a record
// shorter than the buffer, tgt sends only buffer - record bytes), any BLANK
// CHECK is end of data (tgt answers 00/00 rather than 00/05), READ
// POSITION falls back from the long to the short form.
//
// Blocking (one SCSI command at a time, each with its timeout): use it on
// a worker thread.  Not thread-safe: one owner at a time (the session
// that opened the drive, or its mover).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "scsi/device.h"
#include "tape/status.h"

namespace tape {

// How long each kind of tape command may take.
struct TapeTimeouts {
  std::chrono::milliseconds io{std::chrono::minutes(15)};
  std::chrono::milliseconds positioning{std::chrono::hours(2)};  // rewind, space, locate
  std::chrono::milliseconds quick{std::chrono::seconds(60)};     // TUR, mode, inquiry
};

class TapeDrive {
 public:
  using Timeouts = TapeTimeouts;

  explicit TapeDrive(std::shared_ptr<scsi::Device> device, Timeouts timeouts = {});

  scsi::Device& device() { return *device_; }

  Status test_unit_ready();
  // TEST UNIT READY until ready or `limit` passes; unit attentions (a new
  // cartridge, a reset) are consumed on the way.
  Status wait_ready(std::chrono::milliseconds limit);

  struct Read {
    Status status;
    std::size_t bytes = 0;                     // bytes placed in the buffer
    std::optional<std::size_t> record_length;  // the record's real length, when known
  };
  // Variable block mode: one record, up to buffer.size() bytes.  A record
  // shorter or longer than the buffer is status kIncorrectLength with
  // record_length set (the longer one is cut at buffer.size()).
  Read read(std::span<std::uint8_t> buffer, bool suppress_incorrect_length = false);
  // Fixed block mode: buffer.size() / block_length blocks.
  Read read_fixed(std::span<std::uint8_t> buffer, std::uint32_t block_length);

  // Variable block mode: one record.  kEarlyWarning means it was written.
  Status write(std::span<const std::uint8_t> record);
  // Fixed block mode: data.size() / block_length blocks.
  Status write_fixed(std::span<const std::uint8_t> data, std::uint32_t block_length);
  Status write_filemarks(std::uint32_t count, bool immediate = false);

  Status rewind();
  Status load();
  Status unload();
  Status erase();
  // Negative counts move towards the beginning.  The residue says how many
  // were not spaced over when the space stopped early.
  Status space_blocks(std::int64_t count);
  Status space_filemarks(std::int64_t count);
  Status space_end_of_data();
  Status locate(std::uint64_t object);

  struct Position {
    Status status;
    std::uint64_t object = 0;           // logical object (block id) at the head
    std::optional<std::uint64_t> file;  // filemarks before it, when the drive says
    bool bop = false, eop = false, bpew = false;
  };
  Position read_position();

  struct Limits {
    Status status;
    std::uint32_t min = 0, max = 0, granularity = 0;
  };
  Limits block_limits();

  struct Mode {
    Status status;
    std::uint32_t block_length = 0;  // 0: variable
    bool write_protected = false;
    std::uint8_t density = 0;
    std::uint8_t buffered_mode = 0;
  };
  Mode mode();
  struct Capacity {
    Status status;
    std::uint64_t total = 0;      // bytes the cartridge holds
    std::uint64_t remaining = 0;  // bytes left after end of data
  };
  // LOG SENSE, tape capacity page (31h); kIllegalRequest if the drive has
  // no such page.
  Capacity capacity();

  // MODE SELECT with a block descriptor: 0 selects variable block mode.
  Status set_block_length(std::uint32_t block_length);
  Status prevent_removal(bool prevent);

  // INQUIRY, VPD 80h and 83h.
  std::optional<scsi::Identity> identity(Status* status = nullptr);

 private:
  scsi::Result run(scsi::Bytes cdb, std::chrono::milliseconds timeout);
  scsi::Result run_in(scsi::Bytes cdb, std::span<std::uint8_t> in, std::chrono::milliseconds t);
  scsi::Result run_out(scsi::Bytes cdb, std::span<const std::uint8_t> out,
                       std::chrono::milliseconds t);

  std::shared_ptr<scsi::Device> device_;
  Timeouts timeouts_;
};

// INQUIRY with VPD 80h and 83h over any device (tape, changer, disk).
std::optional<scsi::Identity> inquire_identity(
    scsi::Device& device, Status* status = nullptr,
    std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace tape
