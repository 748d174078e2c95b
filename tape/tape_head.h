// TapeHead: the head of one tape drive as NDMP counts it (the file, that
// is the filemarks before the head, and the record within the file) and
// every motion of it with NDMP's semantics (draft-skardal-ndmpv4-04 3.4):
//  - a read that meets a filemark reports it and leaves the head on its
//    BOP side, so every read there meets it again until the DMA spaces
//    over it (FSF);
//  - FSF stops after the filemark, BSF on its BOP side; FSR stops on the
//    BOP side of a filemark, BSR on its EOT side (at the file's start);
//  - each motion reports how much of its count was not done.
// The NDMP tape service and the mover both move the tape through it.
//
// Two ways of moving:
//  - kDrive: the drive's SPACE commands and residues are trusted (SSC
//    drives, the virtual library's drives).
//  - kHost: for drives whose positioning cannot be trusted, found by having
//    no usable READ POSITION (tgt 1.0.85: SPACE over blocks runs through
//    filemarks, backward SPACE lands one record off, no residues).  Only
//    REWIND, READ, WRITE, WRITE FILEMARKS and forward SPACE over filemarks
//    known to exist are used: forward motions read record by record,
//    backward ones rewind and come forward again.  A read that meets a
//    filemark leaves the drive past it; the head stays before it by
//    account (settle() makes the two agree).  Records longer than the
//    caller's buffer are read whole (such drives send no data for them,
//    and of a record of L bytes read with R > L only R - L bytes: reads go
//    into a buffer of the host's, twice the caller's, and a record that may
//    have come cut is read again at its exact length).
//    Backward motions need a known position: after the position was lost
//    (a pass-through command), rewind first.
//
// A unit attention is never retried on the caller's behalf for reads,
// writes and spacing (a new cartridge, or a reset, must not turn a write
// into one at another place): it is returned, and the position updated
// (BOP after 28/00, unknown otherwise).  REWIND, TEST UNIT READY and
// unload are retried once.
//
// Blocking, not thread-safe: one owner at a time, on a worker thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "tape/tape_drive.h"

namespace tape {

struct HeadPosition {
  std::optional<std::uint64_t> file = 0;
  std::optional<std::uint64_t> record = 0;

  bool known() const { return file && record; }
  void rewound() { file = 0, record = 0; }
  void unknown() { file.reset(), record.reset(); }
  friend bool operator==(const HeadPosition&, const HeadPosition&) = default;
};

class TapeHead {
 public:
  enum class Positioning { kDrive, kHost };

  explicit TapeHead(std::shared_ptr<scsi::Device> device, TapeTimeouts timeouts = {});

  TapeDrive& drive() { return drive_; }
  Positioning positioning() const { return positioning_; }
  void set_positioning(Positioning p) { positioning_ = p; }
  const HeadPosition& position() const { return position_; }
  void set_position(const HeadPosition& p);

  struct Motion {
    // What ended the motion: kOk (all done), kFilemark, kEndOfData,
    // kBeginningOfMedium (stopped early, resid says how early), or an error.
    Status status;
    std::uint32_t resid = 0;  // of the count, what was not done
    bool stopped_early() const;
  };
  Motion forward_files(std::uint32_t count);    // FSF
  Motion back_files(std::uint32_t count);       // BSF
  Motion forward_records(std::uint32_t count);  // FSR
  Motion back_records(std::uint32_t count);     // BSR
  Status rewind();
  Status unload();  // the position is unknown afterwards
  Status test_unit_ready();

  // One record (variable block mode) or as many whole blocks as fit (fixed
  // block mode).  An incorrect length is not an error: bytes says what
  // came, record_length what the record held.  At a filemark: kFilemark,
  // the head stays before it; fixed-mode blocks before a filemark are
  // returned and the filemark left for the next read.
  TapeDrive::Read read(std::span<std::uint8_t> buffer);
  // One record, or whole blocks in fixed block mode (kIllegalRequest if
  // the data is not a multiple of the block length).
  Status write(std::span<const std::uint8_t> data);
  Status write_filemarks(std::uint32_t count);

  // data.size() / record_size records of record_size bytes (a whole
  // number of them), written in order until one fails: one WRITE per
  // record, or, where the head may batch (set_batch_writes) and the drive
  // is in variable block mode, records that go out together in fixed block
  // mode, block length record_size, up to kBatchBytes per WRITE, the drive
  // put back in variable mode after each.  Blocks of one length written
  // either way are the same records on the tape.  `records`: how many
  // reached the tape (those written past early warning included).
  struct Writes {
    std::size_t records = 0;
    Status status;  // of the last WRITE: kOk, kEarlyWarning, kOverflow, an error
  };
  Writes write_records(std::span<const std::uint8_t> data, std::size_t record_size);
  // Whether write_records() may batch: for drives whose MODE SELECT costs
  // nothing (the virtual library's).  A real drive may stop streaming on a
  // mode change, so it writes one record per command.  Only with kDrive
  // positioning, in any case.
  void set_batch_writes(bool on) { batch_writes_ = on; }
  static constexpr std::size_t kBatchBytes = 2u << 20;

  // Brings the drive's head where position() says.  Before anything else
  // uses the drive (a pass-through command, the next session).
  Status settle();
  // Something else moved the head (and may have changed the mode).
  void forget();
  // Something else changed the mode parameters (MODE SELECT).
  void mode_changed() { block_length_.reset(); }
  // The block length (0: variable), from MODE SENSE when first asked.
  std::optional<std::uint32_t> block_length();

 private:
  enum class Met { kRecord, kFilemark, kEndOfData, kError };
  // Host positioning: reads one record or block, nothing kept.
  Met step(Status& status);
  // Host positioning: takes the drive's head to `target` (known).
  Status seek(const HeadPosition& target);
  Status attention(const Status& s);
  // Reads the block length unless known; a unit attention is returned.
  Status know_block_length();
  Status not_known() const;
  void wrote_at_head();
  // write_records() for one batch of `count` records in fixed block mode;
  // false (nothing written) if the drive would not take the mode.
  bool write_batch(std::span<const std::uint8_t> data, std::uint32_t record_size, Writes& out);

  // The outcome of a SPACE over `count` into `m`; false (the position
  // unknown, nothing done) if the drive did not end the motion normally.
  bool spaced(const Status& s, std::uint32_t count, Motion& m);
  Motion drive_forward_files(std::uint32_t count);
  Motion drive_back_files(std::uint32_t count);
  Motion drive_forward_records(std::uint32_t count);
  Motion drive_back_records(std::uint32_t count);
  Motion host_forward_files(std::uint32_t count);
  Motion host_back_files(std::uint32_t count);
  Motion host_forward_records(std::uint32_t count);
  Motion host_back_records(std::uint32_t count);

  TapeDrive drive_;
  Positioning positioning_ = Positioning::kDrive;
  HeadPosition position_;
  std::optional<std::uint32_t> block_length_;
  bool batch_writes_ = false;
  // Host positioning: the drive's head is past the filemark that ends the
  // file the position is in (a read met it).
  bool past_filemark_ = false;
  // Host positioning: files known to end with a filemark, and their records.
  std::map<std::uint64_t, std::uint64_t> file_records_;
  std::vector<std::uint8_t> scratch_;
};

}  // namespace tape
