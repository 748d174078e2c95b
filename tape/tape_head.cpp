#include "tape/tape_head.h"

#include <algorithm>

#include "scsi/cdb.h"

namespace tape {
namespace {

// Host positioning reads records into a buffer at least this large, so
// that a drive which sends nothing of a record longer than the buffer
// rarely needs a second pass.
constexpr std::size_t kHostReadBuffer = 1u << 20;

// The buffer host positioning reads into for a caller's buffer of `asked`
// bytes.  tgt 1.0.85 swaps the residual and the transfer count of a short
// read: of a record of L bytes read with a buffer of R > L, only the first
// R - L bytes come (the rest is never sent, though the sense says L).
// Twice the caller's buffer makes every record the caller can take whole
// arrive whole.
std::size_t host_read_size(std::size_t asked) {
  return std::min<std::size_t>(std::max(2 * asked, kHostReadBuffer), scsi::cdb::kMax24);
}

// Whether a read of `read` bytes may have brought less of a record of
// `length` bytes than the caller's `asked` bytes: nothing of a longer
// record, and R - L bytes of a shorter one on drives like tgt.
bool cut_short(std::size_t length, std::size_t read, std::size_t asked) {
  return length > read || read - length < std::min(length, asked);
}

// How much of `count` was not done, from the residue the drive reported;
// with none reported, nothing is taken as done.
std::uint32_t resid_of(const Status& st, std::uint32_t count) {
  if (st.ok()) return 0;
  if (!st.residue_valid || st.residue < 0) return count;
  return static_cast<std::uint32_t>(std::min<std::int64_t>(st.residue, count));
}

bool ends_motion(Condition c) {
  return c == Condition::kOk || c == Condition::kFilemark || c == Condition::kEndOfData ||
         c == Condition::kBeginningOfMedium;
}

Status with(Condition c, std::string detail = {}) {
  Status s;
  s.condition = c;
  s.detail = std::move(detail);
  return s;
}

void add(std::optional<std::uint64_t>& v, std::uint64_t n) {
  if (v) *v += n;
}

}  // namespace

bool TapeHead::Motion::stopped_early() const {
  return status.condition != Condition::kOk && ends_motion(status.condition);
}

TapeHead::TapeHead(std::shared_ptr<scsi::Device> device, TapeTimeouts timeouts)
    : drive_(std::move(device), timeouts) {}

void TapeHead::set_position(const HeadPosition& p) {
  position_ = p;
  past_filemark_ = false;
}

void TapeHead::forget() {
  position_.unknown();
  past_filemark_ = false;
  file_records_.clear();
  block_length_.reset();
}

std::optional<std::uint32_t> TapeHead::block_length() {
  if (!know_block_length().ok()) return std::nullopt;
  return block_length_;
}

// MODE SENSE may be the first command after a reset or a cartridge change:
// its unit attention is the caller's to see, not to be consumed on the way.
// Any other failure leaves the length unknown (variable block mode is
// assumed).
Status TapeHead::know_block_length() {
  if (block_length_) return {};
  const TapeDrive::Mode m = drive_.mode();
  if (m.status.ok()) {
    block_length_ = m.block_length;
    return {};
  }
  return attention(m.status);
}

// A unit attention: 28/00 means a (new) cartridge at BOP; anything else
// (a reset, mode parameters changed) leaves the position unknown.
Status TapeHead::attention(const Status& s) {
  if (s.condition != Condition::kUnitAttention) return s;
  const bool new_medium = s.sense && s.sense->asc == 0x28;
  forget();
  if (new_medium) position_.rewound();
  return s;
}

Status TapeHead::not_known() const {
  return with(Condition::kOther,
              "the head's position is not known on a drive the host positions: rewind first");
}

Status TapeHead::test_unit_ready() {
  Status s = attention(drive_.test_unit_ready());
  if (s.condition == Condition::kUnitAttention) s = attention(drive_.test_unit_ready());
  return s;
}

Status TapeHead::rewind() {
  Status s = attention(drive_.rewind());
  if (s.condition == Condition::kUnitAttention) s = attention(drive_.rewind());
  past_filemark_ = false;
  if (s.ok()) {
    position_.rewound();
  } else {
    position_.unknown();
  }
  return s;
}

Status TapeHead::unload() {
  Status s = attention(drive_.unload());
  if (s.condition == Condition::kUnitAttention) s = attention(drive_.unload());
  forget();
  return s;
}

// ---- reading and writing ----

TapeDrive::Read TapeHead::read(std::span<std::uint8_t> buffer) {
  TapeDrive::Read out;
  if (buffer.empty()) return out;
  if (Status s = know_block_length(); s.condition == Condition::kUnitAttention) {
    out.status = std::move(s);
    return out;
  }
  const std::optional<std::uint32_t> fixed = block_length_;
  if (positioning_ == Positioning::kHost && past_filemark_) {
    out.status = with(Condition::kFilemark);
    return out;
  }
  if (fixed && *fixed != 0) {
    out = drive_.read_fixed(buffer, *fixed);
    out.status = attention(out.status);
    if (out.status.condition == Condition::kFilemark) {
      if (positioning_ == Positioning::kHost) {
        past_filemark_ = true;
        if (position_.known())
          file_records_[*position_.file] = *position_.record + out.bytes / *fixed;
      } else {
        drive_.space_blocks(-1);  // back before the filemark
      }
      if (out.bytes > 0) out.status = {};  // the blocks are this read's, the filemark the next's
    }
    if (out.status.ok() || out.status.condition == Condition::kFilemark ||
        out.status.condition == Condition::kEndOfData) {
      add(position_.record, out.bytes / *fixed);
    } else {
      position_.unknown();
    }
    return out;
  }

  if (positioning_ == Positioning::kDrive) {
    out = drive_.read(buffer, true);
    out.status = attention(out.status);
    switch (out.status.condition) {
      case Condition::kOk:
      case Condition::kIncorrectLength:
        add(position_.record, 1);
        break;
      case Condition::kFilemark:
        // The drive passed the filemark; NDMP keeps the head before it.
        if (const Status back = drive_.space_blocks(-1);
            !back.ok() && back.condition != Condition::kFilemark) {
          position_.unknown();
        }
        break;
      case Condition::kEndOfData:
        break;
      default:
        position_.unknown();
        break;
    }
    return out;
  }

  // Host positioning: read into a buffer large enough for most records.
  const std::size_t want = host_read_size(buffer.size());
  if (scratch_.size() < want) scratch_.resize(want);
  TapeDrive::Read r = drive_.read(std::span(scratch_).first(want), true);
  r.status = attention(r.status);
  if (r.status.condition == Condition::kIncorrectLength && r.record_length &&
      cut_short(*r.record_length, want, buffer.size())) {
    // Longer than even that, so nothing came; or so nearly as long that
    // less than the caller's share came.  Go back over it and read it
    // whole: a read of the exact length is whole.
    if (!position_.known()) {
      out.status = not_known();
      position_.unknown();
      return out;
    }
    const std::size_t whole = *r.record_length;
    scratch_.resize(whole);
    const HeadPosition here = position_;
    add(position_.record, 1);  // the drive passed it
    if (const Status s = seek(here); !s.ok()) {
      out.status = s;
      return out;
    }
    r = drive_.read(std::span(scratch_).first(whole), true);
    r.status = attention(r.status);
  }
  out.status = r.status;
  out.record_length = r.record_length;
  switch (r.status.condition) {
    case Condition::kOk:
    case Condition::kIncorrectLength:
      out.bytes = std::min(r.bytes, buffer.size());
      std::copy_n(scratch_.begin(), out.bytes, buffer.begin());
      // The drive was asked for more than the caller, so its verdict on the
      // length is not the caller's: with SILI, only a record longer than the
      // caller's buffer is an incorrect length (on drives that ignore SILI,
      // every record shorter than the scratch buffer reports ILI).
      if (r.record_length) {
        out.status =
            *r.record_length > buffer.size() ? with(Condition::kIncorrectLength) : Status{};
      } else if (out.status.ok() && r.bytes > buffer.size()) {
        out.status = with(Condition::kIncorrectLength);
      }
      out.status.ili = out.status.condition == Condition::kIncorrectLength;
      add(position_.record, 1);
      break;
    case Condition::kFilemark:
      past_filemark_ = true;
      if (position_.known()) file_records_[*position_.file] = *position_.record;
      break;
    case Condition::kEndOfData:
      break;
    default:
      position_.unknown();
      break;
  }
  return out;
}

void TapeHead::wrote_at_head() {
  // Whatever was recorded from here on is gone.
  if (position_.file) {
    file_records_.erase(file_records_.lower_bound(*position_.file), file_records_.end());
  } else {
    file_records_.clear();
  }
}

Status TapeHead::write(std::span<const std::uint8_t> data) {
  if (Status s = settle(); !s.ok()) return s;
  if (Status s = know_block_length(); s.condition == Condition::kUnitAttention) return s;
  const std::optional<std::uint32_t> fixed = block_length_;
  Status s;
  std::uint64_t records = 1;
  if (fixed && *fixed != 0) {
    if (data.size() % *fixed != 0) {
      return with(Condition::kIllegalRequest, "not a multiple of the block length");
    }
    records = data.size() / *fixed;
    s = attention(drive_.write_fixed(data, *fixed));
  } else {
    s = attention(drive_.write(data));
  }
  if (s.ok() || s.condition == Condition::kEarlyWarning) {
    wrote_at_head();
    add(position_.record, records);
  } else if (s.condition != Condition::kIllegalRequest &&
             s.condition != Condition::kWriteProtected) {
    wrote_at_head();
    position_.unknown();
  }
  return s;
}

TapeHead::Writes TapeHead::write_records(std::span<const std::uint8_t> data,
                                         std::size_t record_size) {
  Writes w;
  if (record_size == 0 || data.size() % record_size != 0) {
    w.status = with(Condition::kIllegalRequest, "not a whole number of records");
    return w;
  }
  const std::size_t count = data.size() / record_size;
  const bool may_batch = batch_writes_ && positioning_ == Positioning::kDrive && count > 1 &&
                         record_size <= kBatchBytes / 2;  // (and so within a 24-bit length)
  const std::optional<std::uint32_t> mode = may_batch ? block_length() : std::nullopt;
  if (mode && *mode == 0) {
    const std::size_t per_write = kBatchBytes / record_size;
    while (w.records < count) {
      const std::size_t n = std::min(per_write, count - w.records);
      if (n < 2) break;  // one record: an ordinary WRITE
      Writes batch;
      if (!write_batch(data.subspan(w.records * record_size, n * record_size),
                       static_cast<std::uint32_t>(record_size), batch)) {
        batch_writes_ = false;  // the drive would not take the mode: one record per WRITE
        break;
      }
      w.records += batch.records;
      w.status = batch.status;
      if (!batch.status.ok()) return w;
    }
  }
  for (; w.records < count; ++w.records) {
    w.status = write(data.subspan(w.records * record_size, record_size));
    if (!w.status.ok()) {
      if (w.status.condition == Condition::kEarlyWarning) ++w.records;
      return w;
    }
  }
  return w;
}

bool TapeHead::write_batch(std::span<const std::uint8_t> data, std::uint32_t record_size,
                           Writes& out) {
  if (Status s = settle(); !s.ok()) {
    out.status = s;
    return true;
  }
  if (Status s = drive_.set_block_length(record_size); !s.ok()) {
    block_length_.reset();  // unknown now; sensed again when asked
    if (s.condition == Condition::kIllegalRequest) return false;
    out.status = attention(s);
    return true;
  }
  const std::size_t count = data.size() / record_size;
  const Status& s = out.status = attention(drive_.write_fixed(data, record_size));
  if (s.condition == Condition::kIllegalRequest) {  // nothing written: not in batches, then
    if (drive_.set_block_length(0).ok()) {
      block_length_ = 0;
    } else {
      block_length_.reset();
    }
    return false;
  }
  // How many blocks reached the tape: all of them, or at early warning and
  // on overflow all but INFORMATION's count.  Any other failure, or an
  // overflow that does not say, leaves the count and the position unknown.
  const bool counted =
      s.ok() || ((s.condition == Condition::kEarlyWarning || s.condition == Condition::kOverflow) &&
                 (s.residue_valid || s.condition == Condition::kEarlyWarning));
  if (counted) {
    const std::size_t not_written =
        s.residue_valid && s.residue > 0
            ? std::min<std::size_t>(count, static_cast<std::size_t>(s.residue))
            : 0;
    out.records = count - not_written;
  }
  if (s.condition != Condition::kWriteProtected) {
    wrote_at_head();
    if (counted) {
      add(position_.record, out.records);
    } else {
      position_.unknown();
    }
  }
  // Back to variable block mode, whatever the WRITE did.
  const Status back = drive_.set_block_length(0);
  if (back.ok()) {
    block_length_ = 0;
  } else {
    block_length_.reset();
    if (out.status.ok()) out.status = attention(back);
  }
  return true;
}

Status TapeHead::write_filemarks(std::uint32_t count) {
  if (count == 0) return {};
  if (Status s = settle(); !s.ok()) return s;
  const Status s = attention(drive_.write_filemarks(count));
  if (s.ok() || s.condition == Condition::kEarlyWarning) {
    wrote_at_head();
    if (position_.known()) {
      file_records_[*position_.file] = *position_.record;
      for (std::uint32_t i = 1; i < count; ++i) file_records_[*position_.file + i] = 0;
    }
    add(position_.file, count);
    position_.record = 0;
  } else if (s.condition != Condition::kWriteProtected &&
             s.condition != Condition::kIllegalRequest) {
    wrote_at_head();
    position_.unknown();
  }
  return s;
}

Status TapeHead::settle() {
  if (positioning_ != Positioning::kHost || !past_filemark_) return {};
  if (!position_.known()) return not_known();
  return seek(position_);
}

// ---- motions ----

TapeHead::Motion TapeHead::forward_files(std::uint32_t count) {
  if (count == 0) return {};
  return positioning_ == Positioning::kHost ? host_forward_files(count)
                                            : drive_forward_files(count);
}

TapeHead::Motion TapeHead::back_files(std::uint32_t count) {
  if (count == 0) return {};
  return positioning_ == Positioning::kHost ? host_back_files(count) : drive_back_files(count);
}

TapeHead::Motion TapeHead::forward_records(std::uint32_t count) {
  if (count == 0) return {};
  return positioning_ == Positioning::kHost ? host_forward_records(count)
                                            : drive_forward_records(count);
}

TapeHead::Motion TapeHead::back_records(std::uint32_t count) {
  if (count == 0) return {};
  return positioning_ == Positioning::kHost ? host_back_records(count) : drive_back_records(count);
}

// The drive spaces; its residues say how far.

bool TapeHead::spaced(const Status& s, std::uint32_t count, Motion& m) {
  m.status = attention(s);
  if (!ends_motion(m.status.condition)) {
    position_.unknown();  // it failed somewhere on the way
    m.resid = count;
    return false;
  }
  m.resid = resid_of(m.status, count);
  return true;
}

TapeHead::Motion TapeHead::drive_forward_files(std::uint32_t count) {
  Motion m;
  if (!spaced(drive_.space_filemarks(count), count, m)) return m;
  const std::uint32_t done = count - m.resid;
  if (done > 0) {
    add(position_.file, done);
    position_.record = 0;
  }
  if (m.status.condition == Condition::kEndOfData) position_.record.reset();
  return m;
}

TapeHead::Motion TapeHead::drive_back_files(std::uint32_t count) {
  Motion m;
  if (!spaced(drive_.space_filemarks(-std::int64_t{count}), count, m)) return m;
  if (m.status.condition == Condition::kBeginningOfMedium) {
    position_.rewound();
    return m;
  }
  // On the BOP side of a filemark: at the end of a file of unknown length.
  const std::uint32_t done = count - m.resid;
  if (position_.file && *position_.file >= done) {
    *position_.file -= done;
  } else {
    position_.file.reset();
  }
  position_.record.reset();
  return m;
}

TapeHead::Motion TapeHead::drive_forward_records(std::uint32_t count) {
  Motion m;
  if (!spaced(drive_.space_blocks(count), count, m)) return m;
  add(position_.record, count - m.resid);
  if (m.status.condition == Condition::kFilemark) {
    // SSC leaves the head after the filemark; NDMP wants it before.
    const Status back = drive_.space_blocks(-1);
    if (!back.ok() && back.condition != Condition::kFilemark) position_.unknown();
  }
  return m;
}

TapeHead::Motion TapeHead::drive_back_records(std::uint32_t count) {
  Motion m;
  if (!spaced(drive_.space_blocks(-std::int64_t{count}), count, m)) return m;
  if (m.status.condition == Condition::kBeginningOfMedium) {
    position_.rewound();
    return m;
  }
  if (m.status.condition == Condition::kFilemark) {
    // SSC stops before the filemark; NDMP wants the head after it, at the
    // start of the file.
    const Status fwd = drive_.space_blocks(1);
    if (!fwd.ok() && fwd.condition != Condition::kFilemark) {
      position_.unknown();
    } else {
      position_.record = 0;
    }
    return m;
  }
  if (position_.record && *position_.record >= count - m.resid) {
    *position_.record -= count - m.resid;
  } else {
    position_.record.reset();
  }
  return m;
}

// The host reads forward and rewinds to go back.

TapeHead::Met TapeHead::step(Status& status) {
  if (Status s = know_block_length(); s.condition == Condition::kUnitAttention) {
    status = std::move(s);
    return Met::kError;
  }
  const std::optional<std::uint32_t> fixed = block_length_;
  std::uint8_t one = 0;
  TapeDrive::Read r;
  if (fixed && *fixed != 0) {
    if (scratch_.size() < *fixed) scratch_.resize(*fixed);
    r = drive_.read_fixed(std::span(scratch_).first(*fixed), *fixed);
  } else {
    r = drive_.read(std::span(&one, 1), true);
  }
  status = attention(r.status);
  switch (status.condition) {
    case Condition::kOk:
    case Condition::kIncorrectLength:
      return Met::kRecord;
    case Condition::kFilemark:
      return Met::kFilemark;
    case Condition::kEndOfData:
      return Met::kEndOfData;
    default:
      return Met::kError;
  }
}

Status TapeHead::seek(const HeadPosition& target) {
  const std::uint64_t file = target.file.value_or(0);
  const std::uint64_t record = target.record.value_or(0);
  // Where the drive's head really is: past the filemark a read met, if so.
  std::optional<HeadPosition> at;
  if (position_.known()) {
    at = past_filemark_ ? HeadPosition{*position_.file + 1, 0} : position_;
  }
  past_filemark_ = false;
  // Forward from there when that reaches the target, else from BOP.
  std::uint64_t at_file = 0, at_record = 0;
  const bool from_here = at && (*at->file < file || (*at->file == file && *at->record <= record));
  if (from_here) {
    at_file = *at->file;
    at_record = *at->record;
  }
  if (!from_here) {
    if (Status s = attention(drive_.rewind()); !s.ok()) {
      position_.unknown();
      return s;
    }
  }
  if (file > at_file) {
    // Every filemark up to the target is known to be there.
    if (Status s = attention(drive_.space_filemarks(std::int64_t(file - at_file))); !s.ok()) {
      position_.unknown();
      return s;
    }
    at_record = 0;
  }
  for (; at_record < record; ++at_record) {
    Status s;
    if (step(s) != Met::kRecord) {
      position_.unknown();
      return s.ok() ? with(Condition::kOther, "a record the host counted is not there") : s;
    }
  }
  position_.file = file;
  position_.record = record;
  return {};
}

TapeHead::Motion TapeHead::host_forward_files(std::uint32_t count) {
  Motion m;
  for (std::uint32_t done = 0; done < count; ++done) {
    if (past_filemark_) {
      past_filemark_ = false;
      add(position_.file, 1);
      position_.record = 0;
      continue;
    }
    if (position_.known() && file_records_.count(*position_.file)) {
      // The filemark is known to be there: let the drive space over it.
      const Status s = attention(drive_.space_filemarks(1));
      if (s.ok()) {
        add(position_.file, 1);
        position_.record = 0;
        continue;
      }
      position_.unknown();
      m.status = s;
      m.resid = count - done;
      return m;
    }
    for (;;) {
      Status s;
      const Met met = step(s);
      if (met == Met::kRecord) {
        add(position_.record, 1);
        continue;
      }
      if (met == Met::kFilemark) {
        if (position_.known()) file_records_[*position_.file] = *position_.record;
        add(position_.file, 1);
        position_.record = 0;
        break;
      }
      m.status = met == Met::kEndOfData ? with(Condition::kEndOfData) : s;
      if (met == Met::kError) position_.unknown();
      m.resid = count - done;
      return m;
    }
  }
  return m;
}

TapeHead::Motion TapeHead::host_back_files(std::uint32_t count) {
  Motion m;
  if (!position_.known()) {
    m.status = not_known();
    m.resid = count;
    return m;
  }
  const std::uint64_t file = *position_.file;
  if (count > file) {
    // Back to BOP over the filemarks there are.  Not rewind(): a unit
    // attention ends a motion, it is not retried.
    past_filemark_ = false;
    const Status s = attention(drive_.rewind());
    if (!s.ok()) {
      position_.unknown();
      m.status = s;
      m.resid = count;
      return m;
    }
    position_.rewound();
    m.status = with(Condition::kBeginningOfMedium);
    m.resid = static_cast<std::uint32_t>(count - file);
    return m;
  }
  const std::uint64_t target = file - count;
  if (const auto it = file_records_.find(target); it != file_records_.end()) {
    const Status s = seek({target, it->second});
    if (!s.ok()) {
      m.status = s;
      m.resid = count;
    }
    return m;
  }
  // Count the target file's records by reading it; the read that meets its
  // filemark leaves the drive past it, the position before it.
  if (const Status s = seek({target, 0}); !s.ok()) {
    m.status = s;
    m.resid = count;
    return m;
  }
  for (;;) {
    Status s;
    const Met met = step(s);
    if (met == Met::kRecord) {
      add(position_.record, 1);
      continue;
    }
    if (met == Met::kFilemark) {
      file_records_[target] = *position_.record;
      past_filemark_ = true;
      return m;
    }
    position_.unknown();
    m.status = met == Met::kEndOfData
                   ? with(Condition::kOther, "a filemark the host counted is not there")
                   : s;
    m.resid = count;
    return m;
  }
}

TapeHead::Motion TapeHead::host_forward_records(std::uint32_t count) {
  Motion m;
  if (past_filemark_) {
    m.status = with(Condition::kFilemark);
    m.resid = count;
    return m;
  }
  for (std::uint32_t done = 0; done < count; ++done) {
    Status s;
    const Met met = step(s);
    if (met == Met::kRecord) {
      add(position_.record, 1);
      continue;
    }
    m.resid = count - done;
    if (met == Met::kFilemark) {
      past_filemark_ = true;
      if (position_.known()) file_records_[*position_.file] = *position_.record;
      m.status = with(Condition::kFilemark);
    } else if (met == Met::kEndOfData) {
      m.status = with(Condition::kEndOfData);
    } else {
      position_.unknown();
      m.status = s;
    }
    return m;
  }
  return m;
}

TapeHead::Motion TapeHead::host_back_records(std::uint32_t count) {
  Motion m;
  if (!position_.known()) {
    m.status = not_known();
    m.resid = count;
    return m;
  }
  const std::uint64_t file = *position_.file;
  const std::uint64_t record = *position_.record;
  const std::uint64_t back = std::min<std::uint64_t>(count, record);
  m.resid = static_cast<std::uint32_t>(count - back);
  if (back > 0 || past_filemark_) {
    if (const Status s = seek({file, record - back}); !s.ok()) {
      m.status = s;
      m.resid = count;
      return m;
    }
  }
  if (m.resid > 0) {
    m.status = with(file > 0 ? Condition::kFilemark : Condition::kBeginningOfMedium);
  }
  return m;
}

}  // namespace tape
