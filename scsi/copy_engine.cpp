#include "scsi/copy_engine.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "scsi/big_endian.h"
#include "scsi/cdb.h"
#include "scsi/page_bytes.h"
#include "scsi/parse.h"
#include "scsi/sense.h"

namespace scsi::xcopy {

namespace {

constexpr std::uint8_t kDiskType = 0x00;
constexpr std::uint8_t kTapeType = 0x01;
constexpr std::uint8_t kProcessorType = 0x03;

// The segment types this engine runs, ascending, then the one target
// descriptor type: what OPERATING PARAMETERS and VPD 8Fh list.
constexpr std::uint8_t kSupportedCodes[] = {0x00, 0x01, 0x02, 0x04, 0x06, 0x07, 0x08,
                                            0x09, 0x0A, 0x10, 0x11, 0x12, 0x13, 0xE4};

Result cdb_field_error(std::uint16_t byte) {
  return check_condition({.key = SenseKey::kIllegalRequest,
                          .asc = 0x24,
                          .ascq = 0x00,
                          .field_pointer = SenseSpec::FieldPointer{.in_cdb = true, .field = byte}});
}

// Why a segment stopped, before the segment number and residual are added:
// COPY ABORTED with an additional sense code, and the failing device's own
// status and sense.
struct Failure {
  std::uint8_t asc = 0x0D;
  std::uint8_t ascq = 0x01;
  std::optional<CopyAbort::Forwarded> source;
  std::optional<CopyAbort::Forwarded> destination;
  bool zero_residual = false;     // 13h, 10h at early warning: INFORMATION is zero
  bool residual_unknown = false;  // what the destination took is unknown: VALID=0
};

Failure device_failure(const Result& r, bool is_source) {
  Failure f;
  if (!r.transport_error.empty()) return f;  // 0D/01 with nothing to forward
  CopyAbort::Forwarded fw{r.status, r.sense};
  if (is_source) {
    f.source = std::move(fw);
  } else {
    f.destination = std::move(fw);
  }
  return f;
}

Failure plain(std::uint8_t asc, std::uint8_t ascq) {
  return Failure{asc, ascq, {}, {}, false, false};
}

// A range of a disk past its capacity fails before anything is read or
// written: the engine answers what the disk itself would (ILLEGAL REQUEST,
// LOGICAL BLOCK ADDRESS OUT OF RANGE) without sending a command that could
// write part of the range first.  Addresses that do not even fit 64 bits
// (LBA x block length wrapping) are out of range too.
Failure lba_out_of_range(bool is_source) {
  Result r = check_condition({.key = SenseKey::kIllegalRequest, .asc = 0x21, .ascq = 0x00});
  return device_failure(r, is_source);
}

// a * b + c, or nullopt when it does not fit 64 bits.
std::optional<std::uint64_t> mul_add(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  std::uint64_t m = 0;
  std::uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &m) || __builtin_add_overflow(m, c, &r)) return std::nullopt;
  return r;
}

// What a tape WRITE (or WRITE FILEMARKS) that ended in CHECK CONDITION
// did, in the units it asked for (`units`): at early warning (EOM on NO
// SENSE or RECOVERED ERROR) it was performed, less INFORMATION when VALID;
// VOLUME OVERFLOW performs nothing unless INFORMATION says what was left;
// any other failure counts as nothing done.  nullopt: not known (deferred
// sense, INFORMATION outside 0..units), and then no residual is reported.
std::optional<std::uint64_t> units_done(const Result& r, std::uint64_t units) {
  if (!r.check_condition()) return 0;
  const auto sense = decode_sense(r.sense);
  if (!sense) return 0;
  if (sense->deferred) return std::nullopt;
  const bool early_warning =
      sense->key == SenseKey::kNoSense || sense->key == SenseKey::kRecoveredError;
  if (!sense->eom || (!early_warning && sense->key != SenseKey::kVolumeOverflow)) return 0;
  if (!sense->information_valid) return early_warning ? units : 0;
  if (sense->information < 0 || static_cast<std::uint64_t>(sense->information) > units) {
    return std::nullopt;
  }
  return units - static_cast<std::uint64_t>(sense->information);
}

// A target descriptor bound to the device it names.
struct Target {
  std::shared_ptr<Device> device;  // null for the receiving unit itself
  std::uint8_t type = 0;
  bool pad = false;
  bool fixed = false;
  std::uint32_t block_length = 0;  // disk: logical block; fixed tape: block
  std::uint64_t blocks = 0;        // disk: capacity in logical blocks
};

// ---- the bounded buffer between the reader and the writer of a segment ----

struct Chunk {
  PageBytes buf;
  std::size_t begin = 0, end = 0;
};

// Chunks of processed data from a segment's reader thread to its writer.
// At most `limit` bytes of buffers exist at a time (at least one buffer,
// so that a unit larger than the limit still moves).
class ChunkQueue {
 public:
  explicit ChunkQueue(std::size_t limit) : limit_(limit) {}

  // Producer: a buffer of `capacity` bytes, when the bound allows; false
  // once the consumer has cancelled.
  bool acquire(PageBytes& out, std::size_t capacity) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock,
             [&] { return cancelled_ || in_flight_ == 0 || in_flight_ + capacity <= limit_; });
    if (cancelled_) return false;
    in_flight_ += capacity;
    if (!pool_.empty()) {
      out = std::move(pool_.back());
      pool_.pop_back();
      pooled_ -= out.capacity();
    }
    out.resize(capacity);
    return true;
  }
  void push(Chunk c) {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(c));
    cv_.notify_all();
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    cv_.notify_all();
  }
  // Consumer: the next chunk; false at the end.
  bool pop(Chunk& c) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return false;
    c = std::move(queue_.front());
    queue_.pop_front();
    return true;
  }
  void release(PageBytes buf) {
    std::lock_guard lock(mutex_);
    in_flight_ -= std::min(in_flight_, buf.size());
    // Kept for reuse (a new buffer costs a page fault per page) while the
    // buffers in use and kept stay within the bound.
    if (in_flight_ + pooled_ + buf.capacity() <= limit_) {
      pooled_ += buf.capacity();
      pool_.push_back(std::move(buf));
    }
    cv_.notify_all();
  }
  // Either side gives up: the producer stops at its next acquire.
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    closed_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Chunk> queue_;
  std::vector<PageBytes> pool_;
  std::size_t pooled_ = 0;  // bytes of buffers in pool_
  std::size_t in_flight_ = 0;
  const std::size_t limit_;
  bool closed_ = false;
  bool cancelled_ = false;
};

// The writer's view of destination data: residual destination data first,
// then the processed chunks.  take() hands out spans into the chunks when a
// whole request lies in one (no copy), and stages otherwise.
class Feed {
 public:
  Feed(ChunkQueue& q, Bytes pending) : q_(q), pending_(std::move(pending)) {}
  ~Feed() {
    if (have_) q_.release(std::move(cur_.buf));
  }

  // At most `n` bytes, a positive multiple of `granule`; empty when fewer
  // than `granule` bytes remain (they are then in leftover()).
  std::span<const std::uint8_t> take(std::size_t n, std::size_t granule) {
    if (have_ && cur_.begin == cur_.end) drop();
    if (pending_.empty()) {
      if (!have_) next();
      if (have_ && cur_.end - cur_.begin >= granule) {
        const std::size_t k = std::min(cur_.end - cur_.begin, n) / granule * granule;
        const std::span<const std::uint8_t> s(cur_.buf.data() + cur_.begin, k);
        cur_.begin += k;
        return s;
      }
    }
    // Stage: pending bytes, then chunk bytes, up to n.
    stage_.swap(pending_);
    pending_.clear();
    while (stage_.size() < n) {
      if (have_ && cur_.begin == cur_.end) drop();
      if (!have_ && !next()) break;
      const std::size_t k = std::min(cur_.end - cur_.begin, n - stage_.size());
      stage_.insert(stage_.end(), cur_.buf.begin() + static_cast<std::ptrdiff_t>(cur_.begin),
                    cur_.buf.begin() + static_cast<std::ptrdiff_t>(cur_.begin + k));
      cur_.begin += k;
    }
    const std::size_t k = stage_.size() / granule * granule;
    pending_.assign(stage_.begin() + static_cast<std::ptrdiff_t>(k), stage_.end());
    stage_.resize(k);
    return {stage_.data(), k};
  }

  // What is left once take() returned empty: fewer than one granule.
  Bytes leftover() {
    Bytes out = std::move(pending_);
    pending_.clear();
    for (;;) {
      if (have_) {
        out.insert(out.end(), cur_.buf.begin() + static_cast<std::ptrdiff_t>(cur_.begin),
                   cur_.buf.begin() + static_cast<std::ptrdiff_t>(cur_.end));
        drop();
      }
      if (!next()) break;
    }
    return out;
  }

 private:
  bool next() {
    have_ = q_.pop(cur_);
    return have_;
  }
  void drop() {
    q_.release(std::move(cur_.buf));
    cur_ = {};
    have_ = false;
  }

  ChunkQueue& q_;
  Bytes pending_;
  Bytes stage_;
  Chunk cur_;
  bool have_ = false;
};

// What RECEIVE COPY RESULTS knows about one list identifier.
struct CopyRecord {
  std::atomic<bool> running{true};
  std::atomic<std::uint16_t> segments_processed{0};
  std::atomic<std::uint64_t> bytes_written{0};
  bool failed = false;
  bool status_held = true;  // COPY STATUS not yet read after the end
  std::optional<FailedSegmentDetails> details;
};

// What a running copy needs of the engine.
struct EngineCore {
  Resolver resolver;
  EngineSettings settings;

  Result command(Device& d, Bytes cdb, Direction dir, std::span<const std::uint8_t> out,
                 std::span<std::uint8_t> in) const {
    Command c;
    c.cdb = std::move(cdb);
    c.direction = dir;
    c.data_out = out;
    c.data_in = in;
    c.timeout = settings.command_timeout;
    return d.execute(c);
  }
};

// One EXTENDED COPY being executed.
class Run {
 public:
  using Record = CopyRecord;
  Run(const EngineCore& engine, const ParameterList& list, Record* record)
      : e_(engine), list_(list), record_(record), targets_(list.targets.size()) {}

  // nullopt: every segment done.
  std::optional<CopyAbort> execute() {
    for (std::size_t i = 0; i < list_.segments.size(); ++i) {
      index_ = static_cast<std::uint16_t>(i);
      last_ = i + 1 == list_.segments.size();
      written_ = 0;
      std::optional<Failure> f = segment(list_.segments[i]);
      if (f) return abort(*f);
      // SEGMENTS PROCESSED counts segments done: a failed one is not (as
      // FreeBSD CTL reports its current segment).
      if (record_) record_->segments_processed.store(static_cast<std::uint16_t>(i + 1));
    }
    return std::nullopt;
  }

  // The segment running (or that failed), for a failure found outside it.
  std::uint16_t segment_index() const { return index_; }

 private:
  enum class SinkKind { kTape, kDiskBlocks, kDiskRange, kDiscard };
  enum class SourceKind { kDisk, kTape, kInline };

  struct Plan {
    SourceKind source = SourceKind::kDisk;
    const Target* src = nullptr;
    std::uint64_t src_byte = 0;     // disk source: byte address of the first byte
    bool src_whole_blocks = false;  // 00h/02h: read only as much as needed after residue
    std::uint32_t src_unit = 0;     // tape source: bytes per READ
    std::uint32_t src_length = 0;   // tape source: the READ's TRANSFER LENGTH field
    std::span<const std::uint8_t> inline_data;
    SinkKind sink = SinkKind::kDiscard;
    const Target* dst = nullptr;
    std::uint64_t dst_byte = 0;    // disk destination: byte address of the first byte
    std::uint64_t dst_blocks = 0;  // kDiskBlocks with an exact count (01h, 02h DC=1)
    bool dst_exact = false;
    std::uint32_t dst_unit = 0;      // tape destination: bytes per WRITE
    std::uint32_t dst_length = 0;    // the WRITE's TRANSFER LENGTH field
    std::uint64_t process = 0;       // bytes processed by the segment
    bool exact_destination = false;  // 01h 09h 0Ah 02h DC=1: residue there is inexact
  };

  CopyAbort abort(const Failure& f) const {
    CopyAbort a;
    a.asc = f.asc;
    a.ascq = f.ascq;
    a.segment = index_;
    a.source = f.source;
    a.destination = f.destination;
    if (f.residual_unknown) {
      a.residual = std::nullopt;
    } else if (f.zero_residual) {
      a.residual = 0;
    } else if (written_ > 0 && expected_ >= written_) {
      a.residual = static_cast<std::uint32_t>(
          std::min<std::uint64_t>((expected_ - written_) / residual_unit_, 0xFFFFFFFFu));
    }
    return a;
  }

  // ---- targets ----

  std::optional<Failure> target(std::uint16_t id, const Target*& out) {
    static const Target self{nullptr, kProcessorType, false, false, 0};
    if (id == kReceivingUnit) {
      out = &self;
      return std::nullopt;
    }
    if (id >= targets_.size()) return plain(0x08, 0x04);  // UNREACHABLE COPY TARGET
    if (targets_[id]) {
      out = &*targets_[id];
      return std::nullopt;
    }
    const TargetDescriptor& d = list_.targets[id];
    if (d.nul) return plain(0x0D, 0x02);
    std::shared_ptr<Device> dev = e_.resolver ? e_.resolver(d) : nullptr;
    if (!dev) return plain(0x0D, 0x02);  // COPY TARGET DEVICE NOT REACHABLE
    Bytes inq(96);
    const Result r = e_.command(*dev, cdb::inquiry(false, 0, 96), Direction::kIn, {}, inq);
    if (!r.ok()) return plain(0x0D, 0x02);
    const auto si = parse::standard_inquiry(std::span(inq).first(std::min(r.data_in, inq.size())));
    if (!si || si->peripheral_qualifier != 0) return plain(0x0D, 0x02);
    if (si->peripheral_type != d.peripheral_type) return plain(0x0D, 0x03);
    Target t;
    t.device = dev;
    t.type = d.peripheral_type;
    t.pad = d.pad;
    t.fixed = d.fixed;
    t.block_length = d.block_length;
    if (t.type == kDiskType) {
      Bytes cap(32);
      const Result c =
          e_.command(*dev, cdb::read_capacity16(32), Direction::kIn, {}, std::span(cap));
      if (!c.ok()) return device_failure(c, false);
      const auto p = parse::read_capacity16(std::span(cap).first(std::min(c.data_in, cap.size())));
      if (!p || p->block_length == 0) return plain(0x0D, 0x03);
      if (d.block_length != 0 && d.block_length != p->block_length) return plain(0x0D, 0x03);
      // Every disk command moves whole blocks: a block larger than one chunk
      // (or than any real disk's) would need a buffer past the bounds.
      if (p->block_length > cdb::kMax24 ||
          p->block_length > std::max<std::size_t>(e_.settings.chunk_bytes, 1)) {
        return plain(0x0D, 0x03);
      }
      t.block_length = p->block_length;
      t.blocks = p->last_lba == ~std::uint64_t{0} ? p->last_lba : p->last_lba + 1;
    } else if (t.type == kTapeType) {
      if (!t.fixed) t.block_length = 0;
      // The drive's own block length (0: variable mode) decides what a
      // WRITE(6) FIXED moves; a descriptor that disagrees would make the
      // drive move other amounts than the segment asks, with GOOD status.
      Bytes ms(64);
      const Result m = e_.command(*dev, cdb::mode_sense6(false, 0, 0x10, 0, 64), Direction::kIn, {},
                                  std::span(ms));
      if (!m.ok()) return device_failure(m, false);
      const auto mp = parse::mode_sense6(std::span(ms).first(std::min(m.data_in, ms.size())));
      if (!mp) return plain(0x0D, 0x03);
      if (!mp->block_descriptors.empty() &&
          mp->block_descriptors.front().block_length != t.block_length) {
        return plain(0x0D, 0x03);
      }
    } else {
      return plain(0x0D, 0x03);  // a type this engine moves no data with
    }
    targets_[id] = std::move(t);
    out = &*targets_[id];
    return std::nullopt;
  }

  std::optional<Failure> typed(std::uint16_t id, std::uint8_t type, const Target*& out) {
    if (auto f = target(id, out)) return f;
    if (out->type != type) return plain(0x26, 0x0C);  // INVALID OPERATION FOR COPY SOURCE OR DEST
    return std::nullopt;
  }

  // ---- segments ----

  std::optional<Failure> segment(const Segment& s) {
    switch (s.type) {
      case SegmentType::kBlockToStream:
      case SegmentType::kBlockOffsetToStream:
      case SegmentType::kStreamToBlock:
      case SegmentType::kStreamToBlockOffset:
      case SegmentType::kBlockToBlock:
      case SegmentType::kBlockOffsetToBlockOffset:
      case SegmentType::kInlineToStream:
      case SegmentType::kStreamToDiscard:
        return data_segment(s);
      case SegmentType::kVerifyTarget: {
        const Target* t = nullptr;
        if (auto f = target(s.source, t)) return f;
        if (s.tur && t->device) {
          const Result r = e_.command(*t->device, cdb::test_unit_ready(), Direction::kNone, {}, {});
          if (!r.ok()) return device_failure(r, true);
        }
        return std::nullopt;
      }
      case SegmentType::kWriteFilemarks:
      case SegmentType::kSpace:
      case SegmentType::kLocate: {
        const Target* t = nullptr;
        if (auto f = typed(s.destination, kTapeType, t)) return f;
        Bytes c;
        if (s.type == SegmentType::kWriteFilemarks) c = cdb::write_filemarks6(s.count, s.immed);
        if (s.type == SegmentType::kSpace)
          c = cdb::space6(static_cast<cdb::SpaceCode>(s.space_code & 0x0F), s.space_count);
        if (s.type == SegmentType::kLocate) c = cdb::locate10(s.logical_object, false, false, 0);
        if (c.empty()) return plain(0x26, 0x00);
        const Result r = e_.command(*t->device, std::move(c), Direction::kNone, {}, {});
        if (r.ok()) return std::nullopt;
        Failure f = device_failure(r, false);
        // Filemarks written at early warning are all written: residual 0.
        if (s.type == SegmentType::kWriteFilemarks && s.count > 0 &&
            units_done(r, s.count).value_or(0) == s.count) {
          f.zero_residual = true;
        }
        return f;
      }
      case SegmentType::kTapeImageCopy:
        return image_copy(s);
    }
    return plain(0x26, 0x09);
  }

  std::optional<Failure> plan(const Segment& s, Plan& p) {
    const Target* a = nullptr;
    const Target* b = nullptr;
    auto stream_unit = [&](const Target& t, std::uint32_t length, std::uint32_t& unit,
                           std::uint32_t& field) -> std::optional<Failure> {
      const std::uint64_t bytes = t.fixed ? std::uint64_t{length} * t.block_length : length;
      if (length == 0 || length > cdb::kMax24 || bytes > e_.settings.max_stream_transfer) {
        return plain(0x26, 0x00);
      }
      unit = static_cast<std::uint32_t>(bytes);
      field = length;
      return std::nullopt;
    };
    switch (s.type) {
      case SegmentType::kBlockToStream:
      case SegmentType::kBlockOffsetToStream: {
        if (auto f = typed(s.source, kDiskType, a)) return f;
        if (auto f = typed(s.destination, kTapeType, b)) return f;
        if (auto f = stream_unit(*b, s.stream_length, p.dst_unit, p.dst_length)) return f;
        p.source = SourceKind::kDisk;
        p.sink = SinkKind::kTape;
        if (s.type == SegmentType::kBlockToStream) {
          if (!address(s.lba, *a, 0, p.src_byte)) return lba_out_of_range(true);
          p.process = std::uint64_t{s.blocks} * a->block_length;
          p.src_whole_blocks = true;
        } else {
          if (!address(s.lba, *a, s.byte_offset, p.src_byte)) return lba_out_of_range(true);
          p.process = s.byte_count;
        }
        break;
      }
      case SegmentType::kStreamToBlock:
      case SegmentType::kStreamToBlockOffset: {
        if (auto f = typed(s.source, kTapeType, a)) return f;
        if (auto f = typed(s.destination, kDiskType, b)) return f;
        if (auto f = stream_unit(*a, s.stream_length, p.src_unit, p.src_length)) return f;
        p.source = SourceKind::kTape;
        p.exact_destination = true;
        if (s.type == SegmentType::kStreamToBlock) {
          p.sink = SinkKind::kDiskBlocks;
          if (!address(s.lba, *b, 0, p.dst_byte)) return lba_out_of_range(false);
          p.dst_blocks = s.blocks;
          p.dst_exact = true;
          const std::uint64_t want = std::uint64_t{s.blocks} * b->block_length;
          p.process = want > dst_residue_.size() ? want - dst_residue_.size() : 0;
        } else {
          p.sink = SinkKind::kDiskRange;
          if (!address(s.lba, *b, s.byte_offset, p.dst_byte)) return lba_out_of_range(false);
          p.process = s.byte_count;
        }
        break;
      }
      case SegmentType::kBlockToBlock:
      case SegmentType::kBlockOffsetToBlockOffset: {
        if (auto f = typed(s.source, kDiskType, a)) return f;
        if (auto f = typed(s.destination, kDiskType, b)) return f;
        p.source = SourceKind::kDisk;
        if (s.type == SegmentType::kBlockToBlock) {
          p.sink = SinkKind::kDiskBlocks;
          if (!address(s.lba, *a, 0, p.src_byte)) return lba_out_of_range(true);
          p.src_whole_blocks = true;
          if (!address(s.destination_lba, *b, 0, p.dst_byte)) return lba_out_of_range(false);
          if (s.dc) {
            p.dst_blocks = s.blocks;
            p.dst_exact = true;
            p.exact_destination = true;
            const std::uint64_t want = std::uint64_t{s.blocks} * b->block_length;
            p.process = want > dst_residue_.size() ? want - dst_residue_.size() : 0;
          } else {
            p.process = std::uint64_t{s.blocks} * a->block_length;
          }
        } else {
          p.sink = SinkKind::kDiskRange;
          if (!address(s.lba, *a, s.byte_offset, p.src_byte)) return lba_out_of_range(true);
          if (!address(s.destination_lba, *b, s.destination_byte_offset, p.dst_byte)) {
            return lba_out_of_range(false);
          }
          p.process = s.byte_count;
          p.exact_destination = true;
        }
        break;
      }
      case SegmentType::kInlineToStream: {
        if (auto f = typed(s.destination, kTapeType, b)) return f;
        if (auto f = stream_unit(*b, s.stream_length, p.dst_unit, p.dst_length)) return f;
        if (std::uint64_t{s.inline_offset} + s.byte_count > list_.inline_data.size()) {
          return plain(0x26, 0x0B);  // INLINE DATA LENGTH EXCEEDED
        }
        p.source = SourceKind::kInline;
        p.inline_data = std::span(list_.inline_data).subspan(s.inline_offset, s.byte_count);
        p.sink = SinkKind::kTape;
        p.process = s.byte_count;
        break;
      }
      case SegmentType::kStreamToDiscard: {
        if (auto f = typed(s.source, kTapeType, a)) return f;
        if (auto f = stream_unit(*a, s.stream_length, p.src_unit, p.src_length)) return f;
        p.source = SourceKind::kTape;
        p.sink = SinkKind::kDiscard;
        p.process = s.byte_count;
        break;
      }
      default:
        return plain(0x26, 0x09);
    }
    p.src = a;
    p.dst = b;
    if (e_.settings.max_segment_length != 0 && p.process > e_.settings.max_segment_length) {
      return plain(0x26, 0x00);
    }
    // Both disk ranges lie within capacity, or nothing is read or written.
    if (p.source == SourceKind::kDisk && !within(*a, p.src_byte, p.process)) {
      return lba_out_of_range(true);
    }
    if (p.sink == SinkKind::kDiskBlocks) {
      // 01h and 02h DC=1 write exactly their blocks; 02h DC=0 what arrives
      // (residue included), the last block padded.
      const std::uint64_t bytes = p.dst_exact ? std::uint64_t{p.dst_blocks} * b->block_length
                                              : dst_residue_.size() + p.process;
      if (!within(*b, p.dst_byte, bytes)) return lba_out_of_range(false);
    } else if (p.sink == SinkKind::kDiskRange && !within(*b, p.dst_byte, p.process)) {
      return lba_out_of_range(false);
    }
    return std::nullopt;
  }

  // The byte address of `offset` bytes into block `lba` of disk `t`; false
  // when it does not fit 64 bits.
  static bool address(std::uint64_t lba, const Target& t, std::uint64_t offset,
                      std::uint64_t& out) {
    const auto v = mul_add(lba, t.block_length, offset);
    if (v) out = *v;
    return v.has_value();
  }

  // Whether `bytes` from byte address `first` end within the disk's
  // capacity (the blocks they touch, partial ones included).
  static bool within(const Target& t, std::uint64_t first, std::uint64_t bytes) {
    if (bytes == 0) return true;  // nothing is read or written
    std::uint64_t end = 0;
    if (__builtin_add_overflow(first, bytes, &end)) return false;
    const std::uint64_t bl = t.block_length;
    const std::uint64_t blocks = end / bl + (end % bl != 0 ? 1 : 0);
    return blocks <= t.blocks;
  }

  // The reader: `p.process` bytes of processed data into `q`, source
  // residue first; what is read beyond them becomes the new source residue.
  void read_side(const Plan& p, ChunkQueue& q, Bytes& src_residue, std::optional<Failure>& fail) {
    std::uint64_t left = p.process;
    const std::size_t chunk = std::max<std::size_t>(e_.settings.chunk_bytes, 1);
    auto emit = [&](PageBytes buf, std::size_t begin, std::size_t end) {
      // Everything beyond what the segment processes is residue.
      const std::size_t use = static_cast<std::size_t>(std::min<std::uint64_t>(end - begin, left));
      src_residue.insert(src_residue.end(), buf.begin() + static_cast<std::ptrdiff_t>(begin + use),
                         buf.begin() + static_cast<std::ptrdiff_t>(end));
      left -= use;
      if (use > 0) {
        q.push({std::move(buf), begin, begin + use});
      } else {
        q.release(std::move(buf));
      }
    };
    if (p.source == SourceKind::kInline) {
      std::size_t at = 0;
      while (at < p.inline_data.size()) {
        const std::size_t n = std::min(chunk, p.inline_data.size() - at);
        PageBytes buf;
        if (!q.acquire(buf, n)) break;
        std::copy_n(p.inline_data.begin() + static_cast<std::ptrdiff_t>(at), n, buf.begin());
        emit(std::move(buf), 0, n);
        at += n;
      }
      q.close();
      return;
    }
    // Residual source data is processed before anything read now.
    Bytes old;
    old.swap(src_residue);
    const std::uint64_t from_residue = std::min<std::uint64_t>(old.size(), left);
    if (from_residue > 0) {
      PageBytes buf;
      if (q.acquire(buf, old.size())) {
        std::copy(old.begin(), old.end(), buf.begin());
        emit(std::move(buf), 0, old.size());
      }
    } else {
      src_residue = std::move(old);
    }
    if (p.source == SourceKind::kDisk) {
      const std::uint32_t bl = p.src->block_length;
      // 00h/02h read just enough whole blocks after the residue; the
      // offset forms read their designated byte range whatever the residue.
      std::uint64_t need = p.src_whole_blocks ? left : p.process;
      std::uint64_t lba = p.src_byte / bl;
      std::size_t skip = static_cast<std::size_t>(p.src_byte % bl);
      const std::uint64_t max_blocks = std::max<std::uint64_t>(chunk / bl, 1);
      while (need > 0) {
        const std::uint64_t blocks = std::min<std::uint64_t>(
            (skip + need + bl - 1) / bl, std::min<std::uint64_t>(max_blocks, 65535));
        const std::size_t bytes = static_cast<std::size_t>(blocks * bl);
        PageBytes buf;
        if (!q.acquire(buf, bytes)) break;
        const Result r =
            e_.command(*p.src->device, cdb::read16(lba, static_cast<std::uint32_t>(blocks), false),
                       Direction::kIn, {}, std::span(buf));
        if (!r.ok()) {
          q.release(std::move(buf));
          fail = device_failure(r, true);
          break;
        }
        if (r.data_in < bytes) {
          q.release(std::move(buf));
          fail = plain(0x0D, 0x04);  // COPY TARGET DEVICE DATA UNDERRUN
          break;
        }
        // Whole-block reads hand on all they read (emit() keeps what the
        // segment does not process as residue); the offset forms their range.
        const std::size_t end =
            p.src_whole_blocks
                ? bytes
                : static_cast<std::size_t>(std::min<std::uint64_t>(bytes, skip + need));
        need -= std::min<std::uint64_t>(need, end - skip);
        emit(std::move(buf), skip, end);
        skip = 0;
        lba += blocks;
      }
    } else {  // tape: reads of src_unit bytes until enough
      const std::uint32_t unit = p.src_unit;
      const std::size_t per = std::max<std::size_t>(chunk / unit, 1);
      while (left > 0 && !fail) {
        const std::size_t records = std::min<std::uint64_t>(per, (left + unit - 1) / unit);
        PageBytes buf;
        if (!q.acquire(buf, records * unit)) break;
        std::size_t got = 0;
        for (std::size_t i = 0; i < records; ++i) {
          const std::span<std::uint8_t> into(buf.data() + got, unit);
          const Result r = e_.command(*p.src->device, cdb::read6(p.src->fixed, false, p.src_length),
                                      Direction::kIn, {}, into);
          if (!r.ok()) {
            // Short record (ILI), filemark, end of data, or a failure:
            // the source's sense says which.
            fail = device_failure(r, true);
            break;
          }
          if (r.data_in < unit) {
            fail = plain(0x0D, 0x04);
            break;
          }
          got += unit;
        }
        if (got > 0) {
          emit(std::move(buf), 0, got);
        } else {
          q.release(std::move(buf));
        }
      }
    }
    q.close();
  }

  std::optional<Failure> data_segment(const Segment& s) {
    Plan p;
    if (auto f = plan(s, p)) return f;
    const bool inline_source = p.source == SourceKind::kInline;
    const bool src_pad = p.src && !inline_source ? p.src->pad : false;
    const bool dst_pad = p.dst && p.sink != SinkKind::kDiscard ? p.dst->pad : false;

    // What a fully successful segment writes, for the residual.
    const std::uint64_t dest_data = dst_residue_.size() + p.process;
    residual_unit_ = 1;
    expected_ = 0;
    const bool pads = !s.cat && dst_pad && !p.exact_destination;
    if (p.sink == SinkKind::kTape) {
      expected_ = dest_data / p.dst_unit * p.dst_unit;
      if (pads && dest_data % p.dst_unit != 0) expected_ += p.dst_unit;
      if (p.dst->fixed) residual_unit_ = p.dst->block_length;
    } else if (p.sink == SinkKind::kDiskBlocks) {
      const std::uint32_t bl = p.dst->block_length;
      residual_unit_ = bl;
      if (p.dst_exact) {
        expected_ = p.dst_blocks * bl;
      } else {
        expected_ = dest_data / bl * bl;
        if (pads && dest_data % bl != 0) expected_ += bl;
      }
    } else if (p.sink == SinkKind::kDiskRange) {
      const std::uint32_t bl = p.dst->block_length;
      residual_unit_ = bl;
      const std::uint64_t first = p.dst_byte / bl;
      const std::uint64_t last = (p.dst_byte + std::min(dest_data, p.process) + bl - 1) / bl;
      expected_ = (p.process == 0 ? 0 : last - first) * bl;
    }

    // Source residue of a segment without a source (04h) stays as it is.
    ChunkQueue q(std::max<std::size_t>(e_.settings.buffer_bytes, 1));
    std::optional<Failure> read_fail;
    Bytes reader_residue;
    if (!inline_source) reader_residue.swap(src_residue_);
    std::thread reader([&] {
      // Nothing may escape a thread (std::terminate): an allocation that
      // fails ends the segment as a failure of the copy manager itself.
      try {
        read_side(p, q, reader_residue, read_fail);
      } catch (...) {
        read_fail = plain(0x0D, 0x01);
        q.cancel();
      }
    });
    // Whatever leaves this scope (a failure, an exception from the writer),
    // the reader is stopped and joined first.
    struct Joiner {
      ChunkQueue& q;
      std::thread& t;
      ~Joiner() {
        q.cancel();
        if (t.joinable()) t.join();
      }
    } joiner{q, reader};
    std::optional<Failure> write_fail;
    Bytes leftover;
    {
      Feed feed(q, std::move(dst_residue_));
      dst_residue_.clear();
      write_fail = write_side(p, feed);
      if (!write_fail) leftover = feed.leftover();
      q.cancel();
    }
    reader.join();
    if (!inline_source) src_residue_ = std::move(reader_residue);
    // A reader that failed starves the writer: its failure is the cause,
    // unless the destination itself failed.
    if (read_fail && !(write_fail && write_fail->destination)) return read_fail;
    if (write_fail) return write_fail;

    // The residue rules (SPC-4 "PAD and CAT bit definitions").
    if (s.cat) {
      dst_residue_ = std::move(leftover);
      if (last_) discard_residue();
      return std::nullopt;
    }
    if (dst_pad && p.exact_destination && !leftover.empty()) return plain(0x26, 0x0A);
    if (!src_pad && !dst_pad) {
      if (!leftover.empty() || !src_residue_.empty()) return plain(0x26, 0x0A);
      return std::nullopt;
    }
    if (src_pad) src_residue_.clear();
    if (last_) src_residue_.clear();
    if (!dst_pad) return std::nullopt;  // source PAD only: both residues go
    if (!leftover.empty()) {
      const std::size_t unit = p.sink == SinkKind::kTape ? p.dst_unit : p.dst->block_length;
      leftover.resize(unit, 0);
      if (auto f = write_padded(p, leftover)) return f;
    }
    return std::nullopt;
  }

  void discard_residue() {
    src_residue_.clear();
    dst_residue_.clear();
  }

  // One tape WRITE; counts what the drive wrote (also at early warning and
  // at volume overflow, where INFORMATION says what was not written).
  std::optional<Failure> tape_write(const Target& t, std::uint32_t length,
                                    std::span<const std::uint8_t> data) {
    const Result r = e_.command(*t.device, cdb::write6(t.fixed, length), Direction::kOut, data, {});
    if (r.ok()) {
      account(data.size());
      return std::nullopt;
    }
    Failure f = device_failure(r, false);
    // INFORMATION counts blocks in fixed mode, bytes in variable mode.
    const std::uint64_t unit = t.fixed ? t.block_length : 1;
    const std::optional<std::uint64_t> done = units_done(r, data.size() / unit);
    if (done) {
      account(*done * unit);
    } else {
      f.residual_unknown = true;
    }
    return f;
  }

  std::optional<Failure> disk_write(const Target& t, std::uint64_t lba,
                                    std::span<const std::uint8_t> data) {
    const auto blocks = static_cast<std::uint32_t>(data.size() / t.block_length);
    const Result r =
        e_.command(*t.device, cdb::write16(lba, blocks, false), Direction::kOut, data, {});
    if (!r.ok()) return device_failure(r, false);
    account(data.size());
    return std::nullopt;
  }

  void account(std::uint64_t bytes) {
    written_ += bytes;
    if (record_) record_->bytes_written.fetch_add(bytes);
  }

  std::optional<Failure> write_side(const Plan& p, Feed& feed) {
    const std::size_t chunk = std::max<std::size_t>(e_.settings.chunk_bytes, 1);
    switch (p.sink) {
      case SinkKind::kDiscard:
        while (!feed.take(chunk, 1).empty()) {
        }
        return std::nullopt;
      case SinkKind::kTape:
        for (;;) {
          const auto s = feed.take(p.dst_unit, p.dst_unit);
          if (s.empty()) return std::nullopt;
          if (auto f = tape_write(*p.dst, p.dst_length, s)) return f;
        }
      case SinkKind::kDiskBlocks: {
        const std::uint32_t bl = p.dst->block_length;
        const std::size_t max =
            std::max<std::size_t>(std::min<std::size_t>(chunk, 65535ull * bl) / bl, 1) * bl;
        std::uint64_t lba = p.dst_byte / bl;
        std::uint64_t left = p.dst_exact ? p.dst_blocks * bl : ~std::uint64_t{0};
        while (left > 0) {
          const auto s =
              feed.take(static_cast<std::size_t>(std::min<std::uint64_t>(max, left)), bl);
          if (s.empty()) break;
          if (auto f = disk_write(*p.dst, lba, s)) return f;
          lba += s.size() / bl;
          left -= s.size();
          next_lba_ = lba;
        }
        next_lba_ = lba;
        if (p.dst_exact && left > 0) return plain(0x0D, 0x04);  // not enough data arrived
        return std::nullopt;
      }
      case SinkKind::kDiskRange:
        return range_write(p, feed);
    }
    return std::nullopt;
  }

  // 09h/0Ah: `process` bytes at a byte address; the partial blocks at both
  // ends are read, merged and written back (read-modify-write).
  std::optional<Failure> range_write(const Plan& p, Feed& feed) {
    const Target& t = *p.dst;
    const std::uint32_t bl = t.block_length;
    const std::size_t window_blocks = std::max<std::size_t>(
        std::min<std::size_t>(e_.settings.chunk_bytes, 65535ull * bl) / bl, 1);
    std::uint64_t at = p.dst_byte;
    std::uint64_t left = p.process;
    Bytes win;
    while (left > 0) {
      const std::uint64_t lba = at / bl;
      const std::size_t head = static_cast<std::size_t>(at % bl);
      const std::uint64_t span_bytes = std::min<std::uint64_t>(left, window_blocks * bl - head);
      const std::uint64_t blocks = (head + span_bytes + bl - 1) / bl;
      win.assign(static_cast<std::size_t>(blocks * bl), 0);
      const bool partial_head = head != 0;
      const bool partial_tail = (head + span_bytes) % bl != 0;
      if (partial_head || partial_tail) {
        // Only the partial blocks need their old contents.
        auto read_block = [&](std::uint64_t b) -> std::optional<Failure> {
          const std::span<std::uint8_t> into(win.data() + (b - lba) * bl, bl);
          const Result r =
              e_.command(*t.device, cdb::read16(b, 1, false), Direction::kIn, {}, into);
          if (!r.ok()) return device_failure(r, false);
          // GOOD with less than the block: writing the window back would
          // put zeros over bytes outside the range.
          if (r.data_in < bl) return plain(0x0D, 0x04);
          return std::nullopt;
        };
        if (partial_head) {
          if (auto f = read_block(lba)) return f;
        }
        if (partial_tail && (blocks > 1 || !partial_head)) {
          if (auto f = read_block(lba + blocks - 1)) return f;
        }
      }
      std::size_t filled = 0;
      while (filled < span_bytes) {
        const auto s = feed.take(static_cast<std::size_t>(span_bytes - filled), 1);
        if (s.empty()) return plain(0x0D, 0x04);
        std::copy(s.begin(), s.end(), win.begin() + static_cast<std::ptrdiff_t>(head + filled));
        filled += s.size();
      }
      if (auto f = disk_write(t, lba, win)) return f;
      at += span_bytes;
      left -= span_bytes;
    }
    return std::nullopt;
  }

  std::optional<Failure> write_padded(const Plan& p, std::span<const std::uint8_t> data) {
    if (p.sink == SinkKind::kTape) return tape_write(*p.dst, p.dst_length, data);
    return disk_write(*p.dst, next_lba_, data);
  }

  // 13h: record by record, sizes and filemarks as they are, until COUNT
  // consecutive filemarks (0: none stop it) or the end of data.
  std::optional<Failure> image_copy(const Segment& s) {
    const Target* a = nullptr;
    const Target* b = nullptr;
    if (auto f = typed(s.source, kTapeType, a)) return f;
    if (auto f = typed(s.destination, kTapeType, b)) return f;
    std::optional<Failure> f = image_loop(*a, *b, s.count);
    if (f) f->zero_residual = true;
    return f;
  }

  std::optional<Failure> image_loop(const Target& src, const Target& dst, std::uint32_t count) {
    const std::uint32_t max = std::min<std::uint32_t>(e_.settings.max_stream_transfer, cdb::kMax24);
    Bytes buf(max);
    std::uint32_t consecutive = 0;
    for (;;) {
      const Result r = e_.command(*src.device, cdb::read6(false, false, max), Direction::kIn, {},
                                  std::span(buf));
      std::size_t size = 0;
      if (r.ok()) {
        size = std::min(r.data_in, buf.size());
      } else if (r.check_condition()) {
        const auto sense = decode_sense(r.sense);
        if (!sense) return device_failure(r, true);
        if (sense->key == SenseKey::kBlankCheck) return std::nullopt;  // end of data
        if (sense->filemark) {
          const Result w =
              e_.command(*dst.device, cdb::write_filemarks6(1, false), Direction::kNone, {}, {});
          if (!w.ok()) return device_failure(w, false);
          // Every turn of this loop either writes a filemark or at least one
          // byte to the destination, which ends at its end of medium: the
          // loop is bounded by the destination's capacity.
          ++consecutive;
          if (count != 0 && consecutive >= count) return std::nullopt;
          continue;
        }
        if (sense->eom && sense->key == SenseKey::kNoSense && !sense->ili) {
          return std::nullopt;  // end of partition
        }
        // ILI with a positive residue: a record shorter than the buffer,
        // which is how its size is learnt.
        if (sense->ili && sense->key == SenseKey::kNoSense && sense->information_valid &&
            sense->information > 0 && sense->information <= max) {
          size = max - static_cast<std::size_t>(sense->information);
        } else {
          return device_failure(r, true);
        }
      } else {
        return device_failure(r, true);
      }
      consecutive = 0;
      // GOOD (or a short record) with no data is no record: a source that
      // answers so would keep the loop going forever.
      if (size == 0) return plain(0x0D, 0x04);
      const std::span<const std::uint8_t> rec(buf.data(), size);
      Result w;
      std::uint64_t unit = 1;
      if (dst.fixed) {
        if (size % dst.block_length != 0) return plain(0x26, 0x0A);
        unit = dst.block_length;
        w = e_.command(*dst.device,
                       cdb::write6(true, static_cast<std::uint32_t>(size / dst.block_length)),
                       Direction::kOut, rec, {});
      } else {
        w = e_.command(*dst.device, cdb::write6(false, static_cast<std::uint32_t>(size)),
                       Direction::kOut, rec, {});
      }
      if (!w.ok()) {
        // A record written at early warning counts in COPY STATUS.
        account(units_done(w, size / unit).value_or(0) * unit);
        return device_failure(w, false);
      }
      account(size);
    }
  }

  const EngineCore& e_;
  const ParameterList& list_;
  Record* record_;
  std::vector<std::optional<Target>> targets_;
  Bytes src_residue_, dst_residue_;
  std::uint16_t index_ = 0;
  bool last_ = false;
  std::uint64_t written_ = 0;   // bytes the destination took in this segment
  std::uint64_t expected_ = 0;  // bytes it would have taken
  std::uint64_t residual_unit_ = 1;
  std::uint64_t next_lba_ = 0;  // after the last disk write of the segment
};

}  // namespace

struct CopyEngine::Impl : EngineCore {
  using Record = CopyRecord;
  using Key = std::pair<std::string, std::uint8_t>;
  std::mutex mutex;
  std::map<Key, std::shared_ptr<Record>> lists;
  unsigned running = 0;
};

CopyEngine::CopyEngine(Resolver resolver, EngineSettings settings)
    : impl_(std::make_unique<Impl>()) {
  impl_->resolver = std::move(resolver);
  impl_->settings = settings;
}

CopyEngine::~CopyEngine() = default;

OperatingParameters CopyEngine::operating_parameters() const {
  const EngineSettings& s = impl_->settings;
  OperatingParameters p;
  p.snlid = true;
  p.max_targets = s.limits.max_targets;
  p.max_segments = s.limits.max_segments;
  p.max_descriptor_list_length = s.limits.max_descriptor_list_length;
  p.max_segment_length = s.max_segment_length;
  p.max_inline_data = s.limits.max_inline_data;
  p.held_data_limit = 0;  // no segment type that holds data is offered
  p.max_stream_transfer = std::min<std::uint32_t>(s.max_stream_transfer, cdb::kMax24);
  p.total_concurrent_copies = s.max_concurrent_copies;
  p.max_concurrent_copies = s.max_concurrent_copies;
  p.data_segment_granularity = 0;  // any byte count
  p.inline_data_granularity = 0;
  p.held_data_granularity = 0;
  p.descriptor_codes.assign(std::begin(kSupportedCodes), std::end(kSupportedCodes));
  return p;
}

Result CopyEngine::extended_copy(std::span<const std::uint8_t> cdb,
                                 std::span<const std::uint8_t> parameters,
                                 const std::string& initiator) {
  if (cdb.size() < 16 || cdb[0] != kExtendedCopy) return cdb_field_error(0);
  if ((cdb[1] & 0x1F) != 0x00) return cdb_field_error(1);  // only LID1
  const std::uint32_t length = be32(cdb, 10);
  if (length == 0) return {};
  if (parameters.size() < length) {
    return check_condition({.key = SenseKey::kIllegalRequest, .asc = 0x1A, .ascq = 0x00});
  }
  auto parsed = parse_parameter_list(parameters.first(length), impl_->settings.limits);
  if (auto* err = std::get_if<ListError>(&parsed)) {
    Result r;
    r.status = Status::kCheckCondition;
    r.sense = fixed_sense(err->sense);
    return r;
  }
  const ParameterList& list = std::get<ParameterList>(parsed);

  std::shared_ptr<Impl::Record> record;
  const Impl::Key key{initiator, list.list_id};
  {
    std::lock_guard lock(impl_->mutex);
    if (list.list_id_usage != ListIdUsage::kNone) {
      const auto it = impl_->lists.find(key);
      if (it != impl_->lists.end() && it->second->running.load()) {
        return check_condition({.key = SenseKey::kIllegalRequest,
                                .asc = 0x00,
                                .ascq = 0x16});  // OPERATION IN PROGRESS
      }
    }
    if (impl_->running >= impl_->settings.max_concurrent_copies) {
      return check_condition(
          {.key = SenseKey::kIllegalRequest, .asc = 0x55, .ascq = 0x03});  // INSUFFICIENT RESOURCES
    }
    ++impl_->running;
    if (list.list_id_usage != ListIdUsage::kNone) {
      record = std::make_shared<Impl::Record>();
      impl_->lists[key] = record;  // a new copy discards what the old one held
    }
  }

  // However the copy ends (an exception included), it no longer runs: the
  // count goes down and the list identifier is free again.
  struct Done {
    Impl& impl;
    Impl::Record* record;
    ~Done() {
      std::lock_guard lock(impl.mutex);
      --impl.running;
      if (record) record->running.store(false);
    }
  };

  std::optional<CopyAbort> abort;
  Result result;
  {
    const Done done{*impl_, record.get()};
    Run run(*impl_, list, record.get());
    try {
      abort = run.execute();
    } catch (...) {
      // Out of memory (or anything else thrown below): the copy manager
      // itself failed in this segment.
      abort = CopyAbort{};
      abort->segment = run.segment_index();
    }
    if (abort) {
      result.status = Status::kCheckCondition;
      result.sense = copy_aborted_sense(*abort);
    }
    if (record) {
      std::lock_guard lock(impl_->mutex);
      record->failed = abort.has_value();
      if (abort) record->details = FailedSegmentDetails{result.status, result.sense};
    }
  }

  std::lock_guard lock(impl_->mutex);
  // 10b keeps nothing after success; 00b keeps the status until read.
  if (record && list.list_id_usage == ListIdUsage::kDiscard && !abort) {
    const auto it = impl_->lists.find(key);
    if (it != impl_->lists.end() && it->second == record) impl_->lists.erase(it);
  }
  return result;
}

Result CopyEngine::receive_copy_results(std::span<const std::uint8_t> cdb,
                                        std::span<std::uint8_t> data_in,
                                        const std::string& initiator) {
  if (cdb.size() < 16 || cdb[0] != kReceiveCopyResults) return cdb_field_error(0);
  const std::uint8_t action = cdb[1] & 0x1F;
  const std::uint8_t list_id = cdb[2];
  const std::uint32_t alloc = be32(cdb, 10);
  const std::span<std::uint8_t> out = data_in.first(std::min<std::size_t>(alloc, data_in.size()));

  if (action == static_cast<std::uint8_t>(ResultsAction::kOperatingParameters)) {
    return respond(encode_operating_parameters(operating_parameters()), out);
  }
  if (action != static_cast<std::uint8_t>(ResultsAction::kCopyStatus) &&
      action != static_cast<std::uint8_t>(ResultsAction::kFailedSegmentDetails)) {
    return cdb_field_error(1);
  }
  std::lock_guard lock(impl_->mutex);
  const Impl::Key key{initiator, list_id};
  const auto it = impl_->lists.find(key);
  if (it == impl_->lists.end()) return cdb_field_error(2);
  Impl::Record& rec = *it->second;
  const bool running = rec.running.load();

  if (action == static_cast<std::uint8_t>(ResultsAction::kCopyStatus)) {
    if (!running && !rec.status_held) return cdb_field_error(2);
    CopyStatus st;
    st.state = running ? CopyState::kInProgress
                       : (rec.failed ? CopyState::kDoneWithErrors : CopyState::kDone);
    st.segments_processed = rec.segments_processed.load();
    std::uint64_t count = rec.bytes_written.load();
    std::uint8_t units = 0;
    while (count > 0xFFFFFFFFu && units < 6) {
      count >>= 10;
      ++units;
    }
    st.transfer_count_units = units;
    st.transfer_count = static_cast<std::uint32_t>(count);
    const Bytes page = encode_copy_status(st);
    const Result r = respond(page, out);
    // Only an answer the application client received whole releases it.
    if (!running && out.size() >= page.size()) {
      rec.status_held = false;
      if (!rec.details) impl_->lists.erase(it);
    }
    return r;
  }

  // FAILED SEGMENT DETAILS: not while the copy runs.
  if (running) return cdb_field_error(2);
  Bytes data = rec.details ? encode_failed_segment_details(*rec.details) : Bytes(4, 0);
  const Result r = respond(data, out);
  if (rec.details && out.size() >= data.size()) {
    rec.details.reset();
    if (!rec.status_held) impl_->lists.erase(it);
  }
  return r;
}

}  // namespace scsi::xcopy
