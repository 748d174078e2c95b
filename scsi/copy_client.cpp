#include "scsi/copy_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <limits>
#include <random>
#include <sstream>

#include "scsi/cdb.h"
#include "scsi/parse.h"
#include "scsi/sense.h"

namespace scsi::xcopy {

namespace {

constexpr std::uint8_t kDisk = 0x00;
constexpr std::uint8_t kTape = 0x01;
constexpr std::chrono::milliseconds kQuick{30000};
// Unit attentions queue up (power on, reset, medium changed): a few tries
// take them all without looping on a device that only ever says that.
constexpr int kUnitAttentionTries = 4;

bool unit_attention(const Result& r) {
  if (!r.check_condition()) return false;
  const auto s = decode_sense(r.sense);
  return s && s->key == SenseKey::kUnitAttention;
}

Result run_in(Device& device, Bytes cdb, std::span<std::uint8_t> buf,
              std::chrono::milliseconds timeout = kQuick) {
  Command c;
  c.cdb = std::move(cdb);
  c.direction = buf.empty() ? Direction::kNone : Direction::kIn;
  c.data_in = buf;
  c.timeout = timeout;
  Result r;
  for (int i = 0; i < kUnitAttentionTries; ++i) {
    r = device.execute(c);
    if (!unit_attention(r)) break;
  }
  return r;
}

std::span<const std::uint8_t> received(const Bytes& buf, const Result& r) {
  return std::span<const std::uint8_t>(buf.data(), std::min(buf.size(), r.data_in));
}

std::string hex2(unsigned v) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return {kHex[(v >> 4) & 15], kHex[v & 15]};
}

std::string describe_sense(std::span<const std::uint8_t> sense) {
  Result r;
  r.status = Status::kCheckCondition;
  r.sense.assign(sense.begin(), sense.end());
  return describe_result(r);  // "MEDIUM ERROR 11/00 unrecovered read error ..."
}

bool offers(const OperatingParameters& p, std::uint8_t code) {
  // A copy manager that reported no codes (or none at all: the defaults)
  // is tried with what the job needs; it refuses what it lacks with 26/09.
  return p.descriptor_codes.empty() ||
         std::find(p.descriptor_codes.begin(), p.descriptor_codes.end(), code) !=
             p.descriptor_codes.end();
}

// Whether VPD 8Fh's Supported Commands descriptor (type 0001h) lists
// `opcode` with `action`.  nullopt when the page has no such descriptor.
std::optional<bool> supports_command(const parse::ThirdPartyCopy& tpc, std::uint8_t opcode,
                                     std::uint8_t action) {
  for (const parse::ThirdPartyCopyDescriptor& d : tpc.descriptors) {
    if (d.type != 0x0001 || d.data.empty()) continue;
    const std::size_t list_end = std::min<std::size_t>(d.data.size(), 1u + d.data[0]);
    std::size_t at = 1;
    while (at + 2 <= list_end) {
      const std::uint8_t op = d.data[at];
      const std::size_t n = d.data[at + 1];
      if (at + 2 + n > list_end) break;
      if (op == opcode) {
        for (std::size_t i = 0; i < n; ++i) {
          if ((d.data[at + 2 + i] & 0x1F) == action) return true;
        }
        return false;
      }
      at += 2 + n;
    }
    return false;
  }
  return std::nullopt;
}

// One planned segment descriptor and what it carries.
struct Planned {
  Segment segment;
  std::uint64_t bytes = 0;     // bytes of the job it moves
  std::uint64_t expected = 0;  // what it writes, in residual units
  std::uint64_t unit = 1;      // bytes per residual unit
  std::uint64_t lead = 0;      // bytes of the first unit before the job's data (dest offset)
};

struct Plan {
  std::vector<Planned> segments;
  TargetDescriptor source, destination;
  std::string error;
};

std::uint64_t div_up(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

// Segments 08h, 09h and 0Ah carry a byte offset into a block in 16 bits:
// it reaches every byte of a block of at most this length.
constexpr std::uint64_t kLargestOffsetBlock = 0x10000;

// INVALID FIELD IN CDB answers to COPY STATUS on the status path, in a row
// for one running list, before the client concludes that the path does
// not see its lists (the first polls may come before the copy manager has
// registered the list).
constexpr int kStatusMisses = 3;

bool invalid_field_in_cdb(const Result& r) {
  if (!r.check_condition()) return false;
  const auto s = decode_sense(r.sense);
  return s && s->is(SenseKey::kIllegalRequest, 0x24, 0x00);
}

// A list identifier no other CopyClient of this process uses at the same
// time (they wrap after 255), from a random start so that two processes
// on one I_T nexus are unlikely to collide either.  Never 0: the client
// always uses LIST ID USAGE 00b or 10b, which name the list.
std::uint8_t next_list_id() {
  static std::atomic<unsigned> counter{[] {
    try {
      return static_cast<unsigned>(std::random_device{}());
    } catch (...) {
      // No entropy source: the clock is random enough for a start.
      return static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count());
    }
  }()};
  for (;;) {  // at most two turns: two consecutive values are not both 0 mod 256
    const auto id = static_cast<std::uint8_t>(counter.fetch_add(1, std::memory_order_relaxed));
    if (id != 0) return id;
  }
}

// Whether `sense` is whole: a sense format this client reads, with every
// byte its ADDITIONAL SENSE LENGTH announces.  A transport that cut it
// short (a small sense buffer) loses the forwarded device sense.
bool sense_complete(const Bytes& sense) {
  if (sense.size() < 8) return false;
  const std::uint8_t code = sense[0] & 0x7F;
  if (code < 0x70 || code > 0x73) return false;
  return sense.size() >= 8u + sense[7];
}

}  // namespace

std::optional<std::uint64_t> disk_capacity(const Endpoint& disk) {
  std::uint64_t bytes = 0;
  if (disk.tape || disk.block_length == 0 ||
      __builtin_mul_overflow(disk.blocks, std::uint64_t{disk.block_length}, &bytes)) {
    return std::nullopt;
  }
  return bytes;
}

std::optional<std::uint64_t> disk_start(const Endpoint& disk, std::uint64_t lba,
                                        std::uint64_t byte_offset, std::string& error) {
  const auto capacity = disk_capacity(disk);
  if (!capacity) {
    error = disk.tape ? "a tape has no LBA" : "the disk's capacity is unusable";
    return std::nullopt;
  }
  if (lba >= disk.blocks) {
    error = "LBA " + std::to_string(lba) + " is past the disk's last block (" +
            std::to_string(disk.blocks == 0 ? 0 : disk.blocks - 1) + ")";
    return std::nullopt;
  }
  std::uint64_t at = 0, start = 0;
  if (__builtin_mul_overflow(lba, std::uint64_t{disk.block_length}, &at) ||
      __builtin_add_overflow(at, byte_offset, &start) || start >= *capacity) {
    error = "LBA " + std::to_string(lba) + " plus " + std::to_string(byte_offset) +
            " bytes lies past the disk's end (" + std::to_string(*capacity) + " bytes)";
    return std::nullopt;
  }
  return start;
}

std::optional<Endpoint> describe_endpoint(std::shared_ptr<Device> device, std::string& error) {
  if (!device) {
    error = "no device";
    return std::nullopt;
  }
  const std::string name = device->describe();
  Endpoint ep;
  ep.device = device;

  Bytes inq_buf(96);
  Result r =
      run_in(*device, cdb::inquiry(false, 0, static_cast<std::uint16_t>(inq_buf.size())), inq_buf);
  if (!r.ok()) {
    error = name + ": INQUIRY failed: " + describe_result(r);
    return std::nullopt;
  }
  const auto inquiry = parse::standard_inquiry(received(inq_buf, r));
  if (!inquiry) {
    error = name + ": INQUIRY data too short";
    return std::nullopt;
  }
  if (inquiry->peripheral_type != kDisk && inquiry->peripheral_type != kTape) {
    error = name + ": peripheral device type " + hex2(inquiry->peripheral_type) +
            "h is neither a disk nor a tape";
    return std::nullopt;
  }
  ep.tape = inquiry->peripheral_type == kTape;

  Bytes id_buf(1024);
  r = run_in(*device, cdb::inquiry(true, 0x83, static_cast<std::uint16_t>(id_buf.size())), id_buf);
  std::optional<parse::Designator> designator;
  if (r.ok()) {
    if (const auto ids = parse::device_identification(received(id_buf, r))) {
      designator = parse::preferred_lu_designator(*ids);
    }
  }
  if (!designator) {
    error = name + ": no logical unit designator in VPD page 83h" +
            (r.ok() ? std::string() : " (" + describe_result(r) + ")");
    return std::nullopt;
  }
  if (designator->designator.empty() || designator->designator.size() > 20) {
    error = name + ": its designator is " + std::to_string(designator->designator.size()) +
            " bytes long; a target descriptor holds 1 to 20";
    return std::nullopt;
  }
  TargetDescriptor& d = ep.descriptor;
  d.peripheral_type = inquiry->peripheral_type;
  d.code_set = designator->code_set;
  d.association = designator->association;
  d.designator_type = designator->designator_type;
  d.designator = designator->designator;

  r = run_in(*device, cdb::test_unit_ready(), {});
  if (!r.ok()) {
    error = name + ": not ready: " + describe_result(r);
    return std::nullopt;
  }

  if (!ep.tape) {
    Bytes cap_buf(32);
    r = run_in(*device, cdb::read_capacity16(static_cast<std::uint32_t>(cap_buf.size())), cap_buf);
    const auto cap = r.ok() ? parse::read_capacity16(received(cap_buf, r)) : std::nullopt;
    if (!cap || cap->block_length == 0 || cap->block_length > 0xFFFFFF) {
      error = name + ": READ CAPACITY(16) " +
              (r.ok() ? "reported no usable block length" : "failed: " + describe_result(r));
      return std::nullopt;
    }
    ep.block_length = cap->block_length;
    ep.blocks = cap->last_lba + 1;
    if (cap->last_lba == std::numeric_limits<std::uint64_t>::max() || !disk_capacity(ep)) {
      error = name + ": READ CAPACITY(16) reports more than 2^64 bytes";
      return std::nullopt;
    }
  } else {
    std::optional<parse::ModeParameters> mode;
    for (const std::uint8_t page : {std::uint8_t{0x10}, std::uint8_t{0x00}}) {
      Bytes buf(255);
      r = run_in(*device, cdb::mode_sense6(false, 0, page, 0, 255), buf);
      if (r.ok()) mode = parse::mode_sense6(received(buf, r));
      if (mode && !mode->block_descriptors.empty()) break;
    }
    if (!mode || mode->block_descriptors.empty()) {
      error = name + ": MODE SENSE gave no block descriptor" +
              (r.ok() ? std::string() : ": " + describe_result(r));
      return std::nullopt;
    }
    ep.block_length = mode->block_descriptors.front().block_length;
  }
  d.block_length = ep.block_length;
  d.fixed = ep.tape && ep.block_length != 0;
  return ep;
}

CopyClient::CopyClient(std::shared_ptr<Device> manager, std::shared_ptr<Device> status_path,
                       ClientSettings settings)
    : manager_(std::move(manager)), status_path_(std::move(status_path)), settings_(settings) {}

bool CopyClient::open(std::string& error) {
  if (!manager_) {
    error = "no copy manager";
    return false;
  }
  const std::string name = manager_->describe();
  Bytes inq_buf(96);
  Result r = run_in(*manager_, cdb::inquiry(false, 0, 96), inq_buf);
  const auto inquiry = r.ok() ? parse::standard_inquiry(received(inq_buf, r)) : std::nullopt;
  if (!inquiry) {
    error = name + ": INQUIRY failed: " + (r.ok() ? "data too short" : describe_result(r));
    return false;
  }
  if (!inquiry->third_party_copy) {
    error = name + ": not a copy manager (standard INQUIRY does not set 3PC)";
    return false;
  }

  Bytes op_buf(512);
  r = run_in(*manager_,
             receive_copy_results_cdb(ResultsAction::kOperatingParameters, 0,
                                      static_cast<std::uint32_t>(op_buf.size())),
             op_buf);
  std::optional<OperatingParameters> op;
  if (r.ok()) op = parse_operating_parameters(received(op_buf, r));
  if (op) {
    params_ = *op;
    status_offered_ = true;
    details_offered_ = true;
  } else {
    // What LIO, the most restrictive copy manager known, accepts: anything
    // else that refuses RECEIVE COPY RESULTS accepts at least this.
    params_ = OperatingParameters{};
    params_.max_targets = 2;
    params_.max_segments = 1;
    params_.max_descriptor_list_length = 1024;
    params_.max_segment_length = 256u << 20;
    params_.max_concurrent_copies = 1;
    status_offered_ = false;
    details_offered_ = false;
    spdlog::info(
        "{}: no OPERATING PARAMETERS ({}); using 2 targets, 1 segment, 1024-byte lists, "
        "256 MiB segments",
        name, describe_result(r));
  }

  Bytes tpc_buf(4096);
  r = run_in(*manager_, cdb::inquiry(true, 0x8F, static_cast<std::uint16_t>(tpc_buf.size())),
             tpc_buf);
  if (r.ok()) {
    if (const auto tpc = parse::third_party_copy(received(tpc_buf, r))) {
      if (supports_command(*tpc, kExtendedCopy, 0x00) == false) {
        error = name + ": VPD page 8Fh does not list EXTENDED COPY (LID1)";
        return false;
      }
      if (const auto s = supports_command(*tpc, kReceiveCopyResults, 0x00)) {
        status_offered_ = status_offered_ && *s;
      }
      if (const auto s = supports_command(*tpc, kReceiveCopyResults, 0x04)) {
        details_offered_ = details_offered_ && *s;
      }
    }
  }
  if (params_.max_targets < 2) {
    error = name + ": accepts " + std::to_string(params_.max_targets) +
            " target descriptor(s); a copy needs 2";
    return false;
  }
  if (params_.max_segments == 0) params_.max_segments = 1;
  return true;
}

namespace {

// Splits `job` into segment descriptors within the manager's limits.
Plan plan_job(const CopyJob& job, const OperatingParameters& params,
              const ClientSettings& settings) {
  Plan plan;
  const Endpoint& src = job.source;
  const Endpoint& dst = job.destination;
  plan.source = src.descriptor;
  plan.destination = dst.descriptor;
  if (job.bytes == 0) return plan;

  std::uint64_t cap = settings.segment_bytes ? settings.segment_bytes : (8u << 20);
  if (params.max_segment_length != 0) cap = std::min<std::uint64_t>(cap, params.max_segment_length);
  cap = std::min<std::uint64_t>(cap, std::numeric_limits<std::uint32_t>::max());

  // Checked: a wrapped start would write at low LBAs, a wrapped end plan
  // an endless segment list.
  auto disk_range_ok = [&](const Endpoint& e, std::uint64_t lba, std::uint64_t offset,
                           const char* what, std::uint64_t& start) {
    std::string why;
    const auto at = disk_start(e, lba, offset, why);
    if (!at) {
      plan.error = std::string(what) + ": " + why;
      return false;
    }
    start = *at;
    const std::uint64_t capacity = disk_capacity(e).value_or(0);
    std::uint64_t end = 0;
    if (__builtin_add_overflow(start, job.bytes, &end) || end > capacity) {
      plan.error = std::string(what) + " range (" + std::to_string(job.bytes) +
                   " bytes from byte " + std::to_string(start) + ") runs past its capacity of " +
                   std::to_string(capacity) + " bytes";
      return false;
    }
    return true;
  };

  // The tape's record: bytes per READ/WRITE, and what the STREAM DEVICE
  // TRANSFER LENGTH says (bytes in variable mode, blocks in fixed mode).
  auto stream_record = [&](const Endpoint& tape, std::uint32_t& record,
                           std::uint32_t& stream_length) {
    if (tape.descriptor.fixed) {
      record = job.record_size ? job.record_size : tape.block_length;
      if (record % tape.block_length != 0) {
        plan.error = "record size " + std::to_string(record) +
                     " is not a multiple of the tape's fixed block length " +
                     std::to_string(tape.block_length);
        return false;
      }
      stream_length = record / tape.block_length;
    } else {
      record = job.record_size;
      if (record == 0) {
        plan.error = "a tape in variable block mode needs a record size";
        return false;
      }
      stream_length = record;
    }
    if (stream_length > 0xFFFFFF ||
        (params.max_stream_transfer != 0 && record > params.max_stream_transfer)) {
      plan.error = "record size " + std::to_string(record) + " exceeds what the copy manager moves";
      return false;
    }
    if (record > cap) {
      plan.error = "record size " + std::to_string(record) + " exceeds the largest segment (" +
                   std::to_string(cap) + " bytes)";
      return false;
    }
    return true;
  };

  // Disk <-> tape: segments of whole records within `cap`, in the
  // byte-offset form (08h block+offset -> stream, 09h stream ->
  // block+offset) where the copy manager offers it and the disk's blocks
  // are small enough for its 16-bit offset, else in the whole-block form
  // (00h, 01h), which needs start, length and record in whole blocks.
  auto plan_stream = [&](const Endpoint& disk, const Endpoint& tape, bool to_tape,
                         std::uint64_t start) {
    std::uint32_t record = 0, stream_length = 0;
    if (!stream_record(tape, record, stream_length)) return;
    const char* side = to_tape ? "source" : "destination";
    const std::uint8_t offset_code = to_tape ? 0x08 : 0x09;
    const std::uint8_t block_code = to_tape ? 0x00 : 0x01;
    const bool offset_fits = disk.block_length <= kLargestOffsetBlock;
    const bool offset_form = offers(params, offset_code) && offset_fits;
    if (!offset_form) {
      if (!offers(params, block_code) || start % disk.block_length != 0 ||
          record % disk.block_length != 0 || job.bytes % disk.block_length != 0) {
        plan.error = offset_fits
                         ? std::string("the copy manager lacks segment ") +
                               (to_tape ? "08h (block+offset -> stream) and 00h"
                                        : "09h (stream -> block+offset) and 01h") +
                               " does not fit"
                         : std::string("the ") + side + "'s block length (" +
                               std::to_string(disk.block_length) +
                               " bytes) is too large for segment " + (to_tape ? "08h" : "09h") +
                               "'s 16-bit byte offset, and segment " + (to_tape ? "00h" : "01h") +
                               " needs a start, length and record size in whole blocks";
        return;
      }
      cap = std::min<std::uint64_t>(cap, std::uint64_t{0xFFFF} * disk.block_length);
    }
    const std::uint64_t per = cap / record * record;
    if (per == 0) {
      plan.error = "a record does not fit the copy manager's segment limits";
      return;
    }
    // To tape, the last record is padded (written whole); from tape, the
    // rest of a last record is dropped and a last partial disk block padded.
    const bool residue =
        job.bytes % record != 0 || (!to_tape && (start + job.bytes) % disk.block_length != 0);
    plan.source.pad = plan.destination.pad = residue;
    for (std::uint64_t done = 0; done < job.bytes;) {
      const std::uint64_t n = std::min(per, job.bytes - done);
      const std::uint64_t at = start + done;
      Planned p;
      p.segment.type =
          to_tape ? (offset_form ? SegmentType::kBlockOffsetToStream : SegmentType::kBlockToStream)
                  : (offset_form ? SegmentType::kStreamToBlockOffset : SegmentType::kStreamToBlock);
      p.segment.source = 0;
      p.segment.destination = 1;
      p.segment.stream_length = stream_length;
      p.segment.lba = at / disk.block_length;
      if (offset_form) {
        p.segment.byte_count = static_cast<std::uint32_t>(n);
        p.segment.byte_offset = static_cast<std::uint16_t>(at % disk.block_length);
      } else {
        p.segment.blocks = static_cast<std::uint32_t>(n / disk.block_length);
      }
      p.bytes = n;
      if (to_tape) {
        p.unit = tape.descriptor.fixed ? tape.block_length : 1;
        p.expected = div_up(n, record) * record / p.unit;
      } else {
        p.unit = disk.block_length;
        p.lead = at % disk.block_length;
        p.expected = div_up(p.lead + n, disk.block_length);
      }
      plan.segments.push_back(p);
      done += n;
    }
  };

  if (!src.tape && dst.tape) {
    std::uint64_t start = 0;
    if (disk_range_ok(src, job.source_lba, job.source_byte_offset, "source", start)) {
      plan_stream(src, dst, true, start);
    }
    return plan;
  }

  if (src.tape && !dst.tape) {
    std::uint64_t start = 0;
    if (disk_range_ok(dst, job.destination_lba, job.destination_byte_offset, "destination",
                      start)) {
      plan_stream(dst, src, false, start);
    }
    return plan;
  }

  if (!src.tape && !dst.tape) {
    std::uint64_t s0 = 0, d0 = 0;
    if (!disk_range_ok(src, job.source_lba, job.source_byte_offset, "source", s0) ||
        !disk_range_ok(dst, job.destination_lba, job.destination_byte_offset, "destination", d0)) {
      return plan;
    }
    const std::uint32_t bl = src.block_length;
    const bool aligned =
        src.block_length == dst.block_length && s0 % bl == 0 && d0 % bl == 0 && job.bytes % bl == 0;
    if (aligned && offers(params, 0x02)) {
      const std::uint64_t per_blocks = std::min<std::uint64_t>(0xFFFF, cap / bl);
      if (per_blocks == 0) {
        plan.error = "a block does not fit the copy manager's segment limit";
        return plan;
      }
      const std::uint64_t total = job.bytes / bl;
      for (std::uint64_t done = 0; done < total;) {
        const std::uint64_t n = std::min(per_blocks, total - done);
        Planned p;
        p.segment.type = SegmentType::kBlockToBlock;
        p.segment.source = 0;
        p.segment.destination = 1;
        p.segment.blocks = static_cast<std::uint32_t>(n);
        p.segment.lba = s0 / bl + done;
        p.segment.destination_lba = d0 / bl + done;
        p.bytes = n * bl;
        p.unit = bl;
        p.expected = n;
        plan.segments.push_back(p);
        done += n;
      }
      return plan;
    }
    if (!offers(params, 0x0A)) {
      plan.error = "unaligned disk copies need segment 0Ah, which the copy manager lacks";
      return plan;
    }
    if (src.block_length > kLargestOffsetBlock || dst.block_length > kLargestOffsetBlock) {
      plan.error = "a block length of " +
                   std::to_string(std::max(src.block_length, dst.block_length)) +
                   " bytes is too large for segment 0Ah's 16-bit byte offsets; copy whole, "
                   "aligned blocks between disks of one block length (segment 02h)";
      return plan;
    }
    const bool residue = (d0 + job.bytes) % dst.block_length != 0;
    plan.source.pad = plan.destination.pad = residue;
    for (std::uint64_t done = 0; done < job.bytes;) {
      const std::uint64_t n = std::min(cap, job.bytes - done);
      Planned p;
      p.segment.type = SegmentType::kBlockOffsetToBlockOffset;
      p.segment.source = 0;
      p.segment.destination = 1;
      p.segment.byte_count = static_cast<std::uint32_t>(n);
      p.segment.lba = (s0 + done) / src.block_length;
      p.segment.byte_offset = static_cast<std::uint16_t>((s0 + done) % src.block_length);
      p.segment.destination_lba = (d0 + done) / dst.block_length;
      p.segment.destination_byte_offset =
          static_cast<std::uint16_t>((d0 + done) % dst.block_length);
      p.bytes = n;
      p.unit = dst.block_length;
      p.lead = (d0 + done) % dst.block_length;
      p.expected = div_up(p.lead + n, dst.block_length);
      plan.segments.push_back(p);
      done += n;
    }
    return plan;
  }
  plan.error = "tape to tape copies are not supported";
  return plan;
}

std::uint64_t transfer_bytes(const CopyStatus& s, std::uint32_t destination_block) {
  const std::uint64_t count = s.transfer_count;
  if (s.transfer_count_units == 0xF1) return count * destination_block;
  if (s.transfer_count_units <= 6) return count << (10 * s.transfer_count_units);
  return 0;  // a unit this client does not know: no progress from it
}

// The tape's logical object number (READ POSITION long, else short form).
std::optional<std::uint64_t> tape_position(Device& tape) {
  Bytes buf(32);
  Result r = run_in(tape, cdb::read_position(cdb::ReadPositionForm::kLong), buf);
  if (r.ok()) {
    if (const auto p = parse::read_position_long(received(buf, r)); p && !p->lonu) {
      return p->logical_object;
    }
  }
  Bytes sbuf(20);
  r = run_in(tape, cdb::read_position(cdb::ReadPositionForm::kShort), sbuf);
  if (r.ok()) {
    if (const auto p = parse::read_position_short(received(sbuf, r)); p && !p->lolu) {
      return p->first_location;
    }
  }
  return std::nullopt;
}

}  // namespace

CopyOutcome CopyClient::run(const CopyJob& job,
                            const std::function<void(const CopyProgress&)>& progress,
                            const std::atomic<bool>* cancel) {
  CopyOutcome out;
  const Plan plan = plan_job(job, params_, settings_);
  if (!plan.error.empty()) {
    out.error = plan.error;
    return out;
  }
  out.segments = static_cast<std::uint32_t>(plan.segments.size());
  if (plan.segments.empty()) {
    out.ok = true;
    return out;
  }

  // Segments per command: the manager's count, and what its descriptor
  // list length leaves after the two target descriptors.
  const std::size_t seg_size = 4u + segment_descriptor_length(plan.segments.front().segment.type);
  std::size_t per_command = std::max<std::size_t>(1, params_.max_segments);
  if (params_.max_descriptor_list_length != 0) {
    const std::size_t room = params_.max_descriptor_list_length > 2 * kTargetDescriptorLength
                                 ? params_.max_descriptor_list_length - 2 * kTargetDescriptorLength
                                 : 0;
    if (room < seg_size) {
      out.error = "the copy manager's descriptor list limit (" +
                  std::to_string(params_.max_descriptor_list_length) +
                  " bytes) holds no segment after two target descriptors";
      return out;
    }
    per_command = std::min(per_command, room / seg_size);
  }

  Device* tape = job.destination.tape ? job.destination.device.get() : nullptr;
  const std::optional<std::uint64_t> tape_start = tape ? tape_position(*tape) : std::nullopt;
  const std::uint32_t dest_block = job.destination.block_length ? job.destination.block_length : 1;

  CopyProgress shown{0, job.bytes};
  auto report = [&](std::uint64_t bytes) {
    if (!progress) return;
    shown.bytes_copied = std::max(shown.bytes_copied, std::min(bytes, job.bytes));
    progress(shown);
  };

  std::uint64_t done = 0;
  std::size_t next = 0;
  while (next < plan.segments.size()) {
    if (cancel && cancel->load()) {
      out.bytes_copied = done;
      out.error = "cancelled after " + std::to_string(done) + " bytes";
      return out;
    }
    // This command's segments: at most per_command and batch_bytes (one
    // segment at least).
    std::size_t end = next;
    std::uint64_t batch = 0;
    while (end < plan.segments.size() && end - next < per_command &&
           (end == next || batch + plan.segments[end].bytes <= settings_.batch_bytes)) {
      batch += plan.segments[end].bytes;
      ++end;
    }

    ParameterList list;
    list.list_id = next_list_id();
    list.list_id_usage = status_offered_ ? ListIdUsage::kHold : ListIdUsage::kDiscard;
    list.targets = {plan.source, plan.destination};
    for (std::size_t i = next; i < end; ++i) list.segments.push_back(plan.segments[i].segment);
    const Bytes data = build_parameter_list(list);

    Command command;
    command.cdb = extended_copy_cdb(static_cast<std::uint32_t>(data.size()));
    command.direction = Direction::kOut;
    command.data_out = data;
    command.timeout = settings_.command_timeout;
    ++out.commands;

    Result result;
    if (status_path_ && status_offered_ && status_visible_) {
      std::shared_ptr<Device> manager = manager_;
      std::future<Result> running =
          std::async(std::launch::async, [manager, &command] { return manager->execute(command); });
      const std::chrono::milliseconds interval =
          std::max(settings_.poll_interval, std::chrono::milliseconds(1));
      bool polling = true;
      int unknown = 0;  // INVALID FIELD IN CDB answers in a row
      // Bounded: the command itself ends within its timeout.
      while (running.wait_for(interval) != std::future_status::ready) {
        if (!polling) continue;
        Bytes buf(12);
        Result s = run_in(*status_path_,
                          receive_copy_results_cdb(ResultsAction::kCopyStatus, list.list_id, 12),
                          buf, std::min(settings_.command_timeout, kQuick));
        const auto status = s.ok() ? parse_copy_status(received(buf, s)) : std::nullopt;
        if (!status) {
          // A transport failure or an answer that is no sense: this path
          // gives no status.
          if (!s.check_condition() || s.transport_error.size()) polling = false;
          // The list is unknown there: right after the command went out it
          // may not be registered yet; after that, the status path is
          // another I_T nexus, to which this list (as every later one) is
          // invisible.
          if (invalid_field_in_cdb(s) && ++unknown >= kStatusMisses) {
            polling = false;
            status_visible_ = false;
            spdlog::info(
                "{}: COPY STATUS on the second path does not know list identifier {} while it "
                "runs (another I_T nexus, presumably): no progress until each command ends",
                status_path_->describe(), list.list_id);
          }
          continue;
        }
        unknown = 0;
        report(done + std::min(batch, transfer_bytes(*status, dest_block)));
      }
      result = running.get();
    } else {
      result = manager_->execute(command);
    }

    if (result.ok()) {
      if (status_offered_) {
        // Reading the final status releases what the manager holds for
        // this list identifier (LIST ID USAGE 00b).
        Bytes buf(12);
        run_in(*manager_, receive_copy_results_cdb(ResultsAction::kCopyStatus, list.list_id, 12),
               buf);
      }
      done += batch;
      report(done);
      next = end;
      continue;
    }

    out.bytes_copied = done;
    if (!result.transport_error.empty()) {
      out.error = "EXTENDED COPY to " + manager_->describe() +
                  " failed: " + result.transport_error + "; " + std::to_string(done) +
                  " bytes reached the destination for certain";
      return out;
    }
    // The command's own sense answers for this command alone; FAILED
    // SEGMENT DETAILS only stands in when the sense was lost or cut short
    // on the way (it would be the forwarded device sense that is missing).
    std::optional<CopyAbort> abort;
    if (result.check_condition() && sense_complete(result.sense)) {
      abort = parse_copy_aborted_sense(result.sense);
    }
    if (!abort && details_offered_ && list.list_id_usage != ListIdUsage::kNone) {
      Bytes buf(60 + 256);
      Result d = run_in(*manager_,
                        receive_copy_results_cdb(ResultsAction::kFailedSegmentDetails, list.list_id,
                                                 static_cast<std::uint32_t>(buf.size())),
                        buf);
      if (d.ok()) {
        if (const auto details = parse_failed_segment_details(received(buf, d))) {
          abort = parse_copy_aborted_sense(details->sense);
        }
      }
    }
    if (!abort && result.check_condition()) abort = parse_copy_aborted_sense(result.sense);
    if (!abort) {
      out.error = "EXTENDED COPY to " + manager_->describe() + " ended " + describe_result(result) +
                  "; " + std::to_string(done) + " bytes reached the destination";
      return out;
    }
    out.abort = abort;

    // How far the failing command came: whole segments before the failing
    // one, then the failing one's expected amount less the residual.
    std::uint64_t copied = done;
    std::size_t failing = next;
    const bool segments_ran = abort->key == SenseKey::kCopyAborted;
    if (segments_ran) {
      failing = std::min<std::size_t>(next + abort->segment, end);
      for (std::size_t i = next; i < failing; ++i) copied += plan.segments[i].bytes;
      if (failing < end && abort->residual) {
        const Planned& p = plan.segments[failing];
        const std::uint64_t residual = std::min<std::uint64_t>(*abort->residual, p.expected);
        const std::uint64_t written = (p.expected - residual) * p.unit;
        copied += std::min(p.bytes, written > p.lead ? written - p.lead : 0);
      }
    }
    out.bytes_copied = copied;

    std::optional<Sense> dst_sense, src_sense;
    if (abort->destination) dst_sense = decode_sense(abort->destination->sense);
    if (abort->source) src_sense = decode_sense(abort->source->sense);
    out.end_of_medium =
        dst_sense && (dst_sense->eom || dst_sense->key == SenseKey::kVolumeOverflow);

    // What the tape holds decides: a residual in the wrong unit or from a
    // copy manager that counts differently must not become the point an
    // operator resumes from.  Records are uniform (fixed blocks, or
    // variable records of record_size, the last one padded), so the
    // objects the tape moved over give the bytes.
    std::string unconfirmed;
    if (tape) {
      const std::optional<std::uint64_t> now = tape_start ? tape_position(*tape) : std::nullopt;
      const bool positioned = tape_start.has_value() && now.has_value();
      const std::uint64_t from = tape_start.value_or(0), to = now.value_or(0);
      const bool fixed = job.destination.descriptor.fixed;
      const std::uint64_t object = fixed ? job.destination.block_length : job.record_size;
      const std::uint64_t record = fixed && job.record_size ? job.record_size : object;
      if (!positioned || object == 0) {
        unconfirmed = "the tape's position could not be read to confirm it";
      } else if (to < from || to - from > div_up(job.bytes, record) * (record / object)) {
        unconfirmed = "the tape moved from object " + std::to_string(from) + " to " +
                      std::to_string(to) + ", which this copy cannot have written";
      } else {
        const std::uint64_t objects = to - from;
        const std::uint64_t on_tape = std::min(objects * object, job.bytes);
        if (on_tape != copied) {
          spdlog::warn(
              "{}: the copy manager's residual says {} bytes reached the tape, its position ({} "
              "objects of {} bytes written) says {}; using the tape's",
              tape->describe(), copied, objects, object, on_tape);
          copied = on_tape;
        }
      }
      if (!unconfirmed.empty()) {
        spdlog::warn("{}: {} bytes by the copy manager's residual, unconfirmed: {}",
                     tape->describe(), copied, unconfirmed);
        out.confirmed = false;
      }
    }
    out.bytes_copied = copied;

    if (out.end_of_medium && copied == job.bytes && out.confirmed) {
      // The last write reached early warning and counts as done: the copy
      // is complete, on a tape that has no room for another.
      out.ok = true;
      return out;
    }

    std::ostringstream os;
    os << "EXTENDED COPY to " << manager_->describe() << " failed";
    if (segments_ran) {
      os << " in segment " << (failing - next) << " of command " << out.commands << " (segment "
         << failing << " of " << plan.segments.size() << ")";
    }
    os << ": " << describe_sense(result.sense);
    if (abort->source) {
      os << "; the source (" << job.source.device->describe()
         << ") failed: " << describe_sense(abort->source->sense);
    }
    if (abort->destination) {
      os << "; the destination (" << job.destination.device->describe()
         << ") failed: " << describe_sense(abort->destination->sense);
    }
    if (abort->residual) {
      os << "; residual " << *abort->residual
         << (job.destination.tape && !job.destination.descriptor.fixed ? " bytes" : " blocks");
    }
    if (out.end_of_medium) os << "; the destination tape reached end of medium";
    os << "; " << copied << " of " << job.bytes << " bytes reached the destination";
    if (!unconfirmed.empty()) os << " by the copy manager's account, unconfirmed: " << unconfirmed;
    out.error = os.str();
    return out;
  }
  out.ok = true;
  out.bytes_copied = done;
  return out;
}

}  // namespace scsi::xcopy
