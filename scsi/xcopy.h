// EXTENDED COPY (LID1) and RECEIVE COPY RESULTS: the pure codecs.
//
// Both directions, for both sides: the copy client builds a parameter list
// and parses the copy manager's results; the copy manager (CopyEngine)
// parses the parameter list and builds its results.  Every field is
// length-checked; a parameter list that cannot be taken gives the sense the
// standard asks for (SPC-4 6.4.5 and 6.4.6, reference/xcopy-spc4.md),
// which the copy manager returns as it is.
//
// Thread-safety: pure functions over byte spans.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "scsi/device.h"
#include "scsi/sense.h"

namespace scsi::xcopy {

inline constexpr std::uint8_t kExtendedCopy = 0x83;  // EXTENDED COPY, service action 00h (LID1)
inline constexpr std::uint8_t kReceiveCopyResults = 0x84;  // RECEIVE COPY RESULTS

// RECEIVE COPY RESULTS service actions (LID1).
enum class ResultsAction : std::uint8_t {
  kCopyStatus = 0x00,
  kReceiveData = 0x01,
  kOperatingParameters = 0x03,
  kFailedSegmentDetails = 0x04,
};

// ---- CDBs ----
Bytes extended_copy_cdb(std::uint32_t parameter_list_length);
Bytes receive_copy_results_cdb(ResultsAction action, std::uint8_t list_id,
                               std::uint32_t allocation_length);

// ---- the parameter list ----

enum class ListIdUsage : std::uint8_t {
  kHold = 0,     // 00b: results kept until read
  kDiscard = 2,  // 10b: results discarded on success; kept on failure (FAILED SEGMENT DETAILS)
  kNone = 3,     // 11b: no list identifier (LIST IDENTIFIER must be 0); nothing kept
};

inline constexpr std::uint8_t kIdentificationDescriptor = 0xE4;  // the only target type handled
inline constexpr std::size_t kTargetDescriptorLength = 32;
inline constexpr std::size_t kHeaderLength = 16;
inline constexpr std::uint16_t kReceivingUnit = 0xFFFF;  // target id: the copy manager itself
inline constexpr std::uint16_t kMaxTargetIndex = 0x07FF;

// An identification target descriptor (E4h), 32 bytes, with its
// device-type parameters (disk: PAD and DISK BLOCK LENGTH; tape: PAD,
// FIXED and STREAM BLOCK LENGTH).
struct TargetDescriptor {
  std::uint8_t lu_id_type = 0;       // byte 1 b7-6 (00b: LUN)
  bool nul = false;                  // byte 1 b5: NUL (this descriptor names no unit)
  std::uint8_t peripheral_type = 0;  // byte 1 b4-0: 00h disk, 01h tape, 03h processor
  std::uint16_t relative_port = 0;   // bytes 2-3 (0 = any)
  std::uint8_t code_set = 1;         // byte 4 b3-0
  std::uint8_t association = 0;      // byte 5 b5-4
  std::uint8_t designator_type = 3;  // byte 5 b3-0 (3 = NAA)
  Bytes designator;                  // byte 7 DESIGNATOR LENGTH (<= 20), bytes 8-27
  bool pad = false;                  // byte 28 b2
  bool fixed = false;                // byte 28 b0 (tape only)
  std::uint32_t block_length = 0;    // bytes 29-31: disk block length / stream block length
};

// Segment descriptor type codes (SPC-4 table 114) this codec knows.
enum class SegmentType : std::uint8_t {
  kBlockToStream = 0x00,
  kStreamToBlock = 0x01,
  kBlockToBlock = 0x02,
  kInlineToStream = 0x04,
  kStreamToDiscard = 0x06,
  kVerifyTarget = 0x07,
  kBlockOffsetToStream = 0x08,
  kStreamToBlockOffset = 0x09,
  kBlockOffsetToBlockOffset = 0x0A,
  kWriteFilemarks = 0x10,
  kSpace = 0x11,
  kLocate = 0x12,
  kTapeImageCopy = 0x13,
};
// Whether `code` is one of the types above.
bool known_segment_type(std::uint8_t code);
// The DESCRIPTOR LENGTH (bytes after byte 3) the standard fixes for a type.
std::uint16_t segment_descriptor_length(SegmentType type);

// One segment descriptor.  Which fields mean something depends on `type`
// (the table in reference/xcopy-spc4.md); the others stay 0 and are
// neither encoded nor checked.
struct Segment {
  SegmentType type = SegmentType::kBlockToBlock;
  bool cat = false;                   // byte 1 b0
  bool dc = false;                    // byte 1 b1 (02h only: destination count)
  std::uint16_t source = 0;           // bytes 4-5: target index, or kReceivingUnit
  std::uint16_t destination = 0;      // bytes 6-7
  std::uint32_t stream_length = 0;    // 00h 01h 04h 06h 08h 09h: STREAM DEVICE TRANSFER LENGTH
  std::uint32_t blocks = 0;           // 00h 01h 02h: BLOCK DEVICE NUMBER OF BLOCKS (16-bit)
  std::uint32_t byte_count = 0;       // 04h 06h 08h 09h 0Ah: NUMBER OF BYTES
  std::uint64_t lba = 0;              // 00h 01h 08h 09h: the disk's LBA; 02h 0Ah: source LBA
  std::uint64_t destination_lba = 0;  // 02h 0Ah
  std::uint16_t byte_offset = 0;      // 08h 09h: BLOCK DEVICE BYTE OFFSET; 0Ah: source offset
  std::uint16_t destination_byte_offset = 0;  // 0Ah
  std::uint32_t inline_offset = 0;            // 04h: INLINE DATA OFFSET (multiple of 4)
  bool tur = false;                           // 07h: byte 8 b0
  bool immed = false;                         // 10h: W_IMMED
  std::uint32_t count = 0;           // 10h: FILEMARK COUNT; 13h: COUNT (filemarks, 0 = to EOD)
  std::uint8_t space_code = 0;       // 11h: CODE (0 blocks, 1 filemarks, 3 end of data)
  std::int32_t space_count = 0;      // 11h: signed 24-bit COUNT
  std::uint32_t logical_object = 0;  // 12h: LOGICAL OBJECT IDENTIFIER

  // Byte offset of this descriptor within the parameter list (set by the
  // parser, for field pointers; ignored by the builder).
  std::uint32_t offset_in_list = 0;
};

struct ParameterList {
  std::uint8_t list_id = 0;
  bool str = false;  // byte 1 b5: sequential striped
  ListIdUsage list_id_usage = ListIdUsage::kNone;
  std::uint8_t priority = 0;  // byte 1 b2-0
  std::vector<TargetDescriptor> targets;
  std::vector<Segment> segments;
  Bytes inline_data;
};

// What the copy manager accepts: the parser refuses more with the sense
// the standard names (too many target descriptors 26/06, too many segment
// descriptors 26/08, inline data length exceeded 26/0B, a descriptor list
// longer than max_descriptor_list_length: PARAMETER LIST LENGTH ERROR).
struct Limits {
  std::uint16_t max_targets = 64;
  std::uint16_t max_segments = 64;
  std::uint32_t max_descriptor_list_length = 64 * 1024;  // targets + segments, bytes
  std::uint32_t max_inline_data = 1024 * 1024;
};

// Why a parameter list was refused: the sense the copy manager returns
// (CHECK CONDITION, ILLEGAL REQUEST unless stated, with a field pointer into
// the parameter list where one helps), and a sentence for logs.
struct ListError {
  SenseSpec sense;
  std::string why;
};

// Parses a parameter list of exactly `data.size()` bytes (the CDB's
// PARAMETER LIST LENGTH).  Refusals, in the order the standard's checks
// come: shorter than the header or than the lengths it announces -> 1A/00;
// LIST ID USAGE 01b, or 11b with a LIST IDENTIFIER, or a target descriptor
// list length not a multiple of 32 -> 26/00; too many target descriptors
// -> 26/06; a target descriptor type other than E4h -> 26/07; a bad E4h
// (designator length > 20, LU ID TYPE other than 00b, tape FIXED/length
// combinations the standard forbids) -> 26/00; a segment type not known ->
// 26/09; a segment DESCRIPTOR LENGTH not the type's -> 26/00 (or 1A/00 if
// it runs past the list); too many segment descriptors -> 26/08; target
// and segment descriptors together longer than max_descriptor_list_length
// -> 1A/00 (after the counts, so that one descriptor too many gets the
// sense naming that limit); inline data over the limit -> 26/0B.  Target
// indexes that name no descriptor are
// not refused here: the standard makes them COPY ABORTED 08/04 when the
// segment runs.
std::variant<ParameterList, ListError> parse_parameter_list(std::span<const std::uint8_t> data,
                                                            const Limits& limits);

// Encodes `list` (segments with their fixed lengths, inline data padded by
// nobody: offsets are the caller's).  The result parses back equal.
Bytes build_parameter_list(const ParameterList& list);

// ---- RECEIVE COPY RESULTS ----

enum class CopyState : std::uint8_t {
  kInProgress = 0x00,
  kDone = 0x01,
  kDoneWithErrors = 0x02,
};

// COPY STATUS (service action 00h), 12 bytes.
struct CopyStatus {
  bool hdd = false;  // held data discarded
  CopyState state = CopyState::kInProgress;
  std::uint16_t segments_processed = 0;
  std::uint8_t transfer_count_units = 0;  // 00h bytes, 01h KiB, 02h MiB, ... F1h destination blocks
  std::uint32_t transfer_count = 0;
};
Bytes encode_copy_status(const CopyStatus& s);
std::optional<CopyStatus> parse_copy_status(std::span<const std::uint8_t> data);

// OPERATING PARAMETERS (service action 03h).
struct OperatingParameters {
  bool snlid = false;  // supports no list identifier (LIST ID USAGE 11b)
  std::uint16_t max_targets = 0;
  std::uint16_t max_segments = 0;
  std::uint32_t max_descriptor_list_length = 0;
  std::uint32_t max_segment_length = 0;  // bytes; 0 = no limit
  std::uint32_t max_inline_data = 0;
  std::uint32_t held_data_limit = 0;
  std::uint32_t max_stream_transfer = 0;
  std::uint16_t total_concurrent_copies = 0;
  std::uint8_t max_concurrent_copies = 0;
  std::uint8_t data_segment_granularity = 0;   // log2 bytes
  std::uint8_t inline_data_granularity = 0;    // log2 bytes
  std::uint8_t held_data_granularity = 0;      // log2 bytes
  std::vector<std::uint8_t> descriptor_codes;  // segment then target type codes, ascending
};
Bytes encode_operating_parameters(const OperatingParameters& p);
std::optional<OperatingParameters> parse_operating_parameters(std::span<const std::uint8_t> data);

// FAILED SEGMENT DETAILS (service action 04h): the EXTENDED COPY's status
// and sense, kept for a list that failed (LIST ID USAGE 00b/10b).
struct FailedSegmentDetails {
  Status command_status = Status::kGood;  // byte 56
  Bytes sense;                            // bytes 60.., SENSE DATA LENGTH of them
};
Bytes encode_failed_segment_details(const FailedSegmentDetails& d);
std::optional<FailedSegmentDetails> parse_failed_segment_details(
    std::span<const std::uint8_t> data);

// ---- COPY ABORTED sense ----

// Where a failing copy stopped, as the copy manager reports it: sense key
// COPY ABORTED (or what the standard names), the failing segment's number
// in COMMAND-SPECIFIC INFORMATION bytes 2-3, INFORMATION = the residual
// (when data of the segment was written), and the sense of the source and
// destination devices whose command failed, forwarded.
struct CopyAbort {
  SenseKey key = SenseKey::kCopyAborted;
  std::uint8_t asc = 0x0D;  // 0D/01 third party device failure, ...
  std::uint8_t ascq = 0x01;
  std::uint16_t segment = 0;
  std::optional<std::uint32_t> residual;
  struct Forwarded {
    Status status = Status::kCheckCondition;
    Bytes sense;  // the device's own sense, as it returned it
  };
  std::optional<Forwarded> source;
  std::optional<Forwarded> destination;
};

// Fixed-format sense (70h) for a CopyAbort: byte 8 and 9 are the offsets
// (from byte 0) of the source and destination "status + sense" areas that
// follow byte 17, bytes 10-11 the segment number; at most 252 bytes (a
// forwarded sense is cut to fit).
Bytes copy_aborted_sense(const CopyAbort& abort);

// Reads a copy manager's sense the other way: fixed format as above, or
// descriptor format (COMMAND-SPECIFIC INFORMATION descriptor 01h for the
// segment, INFORMATION 00h for the residual, forwarded sense descriptors
// 0Ch with SOURCE 1 = source, 2 = destination).  nullopt if `sense` holds
// no sense.  Defensive: offsets that point outside the sense are ignored.
std::optional<CopyAbort> parse_copy_aborted_sense(std::span<const std::uint8_t> sense);

}  // namespace scsi::xcopy
