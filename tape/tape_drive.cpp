#include "tape/tape_drive.h"

#include <algorithm>
#include <thread>

#include "scsi/cdb.h"
#include "scsi/parse.h"

namespace tape {

namespace cdb = scsi::cdb;
namespace parse = scsi::parse;
using scsi::Bytes;

TapeDrive::TapeDrive(std::shared_ptr<scsi::Device> device, Timeouts timeouts)
    : device_(std::move(device)), timeouts_(timeouts) {}

scsi::Result TapeDrive::run(Bytes c, std::chrono::milliseconds timeout) {
  scsi::Command cmd;
  cmd.cdb = std::move(c);
  cmd.timeout = timeout;
  return device_->execute(cmd);
}

scsi::Result TapeDrive::run_in(Bytes c, std::span<std::uint8_t> in, std::chrono::milliseconds t) {
  scsi::Command cmd;
  cmd.cdb = std::move(c);
  cmd.direction = scsi::Direction::kIn;
  cmd.data_in = in;
  cmd.timeout = t;
  return device_->execute(cmd);
}

scsi::Result TapeDrive::run_out(Bytes c, std::span<const std::uint8_t> out,
                                std::chrono::milliseconds t) {
  scsi::Command cmd;
  cmd.cdb = std::move(c);
  cmd.direction = scsi::Direction::kOut;
  cmd.data_out = out;
  cmd.timeout = t;
  return device_->execute(cmd);
}

Status TapeDrive::test_unit_ready() {
  return classify(run(cdb::test_unit_ready(), timeouts_.quick));
}

Status TapeDrive::wait_ready(std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    Status s = test_unit_ready();
    if (s.condition != Condition::kUnitAttention && s.condition != Condition::kNotReady) return s;
    if (std::chrono::steady_clock::now() >= end) return s;
    if (s.condition == Condition::kNotReady) {
      // Becoming ready (loading, 04/01) takes a moment; 04/02 needs a LOAD.
      if (s.sense && s.sense->asc == 0x04 && s.sense->ascq == 0x02) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

namespace {

// Bytes a variable-mode read transferred, and the record's length, from a
// CHECK CONDITION with ILI: INFORMATION = requested - actual.
void incorrect_length(const Status& s, std::size_t requested, std::size_t transport_bytes,
                      TapeDrive::Read& out) {
  if (s.residue_valid) {
    const std::int64_t actual = static_cast<std::int64_t>(requested) - s.residue;
    if (actual >= 0) {
      out.record_length = static_cast<std::size_t>(actual);
      out.bytes = std::min(requested, static_cast<std::size_t>(actual));
      // A shorter record: no more than the transport carried (tgt sends
      // only requested - actual bytes of it).
      if (static_cast<std::size_t>(actual) < requested)
        out.bytes = std::min(out.bytes, transport_bytes);
      return;
    }
  }
  out.bytes = transport_bytes;
}

}  // namespace

TapeDrive::Read TapeDrive::read(std::span<std::uint8_t> buffer, bool suppress_incorrect_length) {
  Read out;
  if (buffer.empty()) return out;
  if (buffer.size() > cdb::kMax24) buffer = buffer.first(cdb::kMax24);
  const scsi::Result r = run_in(
      cdb::read6(false, suppress_incorrect_length, static_cast<std::uint32_t>(buffer.size())),
      buffer, timeouts_.io);
  out.status = classify(r);
  switch (out.status.condition) {
    case Condition::kOk:
      out.bytes = r.data_in;
      out.record_length = r.data_in;
      break;
    case Condition::kIncorrectLength:
      incorrect_length(out.status, buffer.size(), r.data_in, out);
      break;
    case Condition::kFilemark:
    case Condition::kEndOfData:
      out.bytes = 0;  // nothing of a record comes with these in variable mode
      break;
    default:
      out.bytes = out.status.condition == Condition::kTransport ? 0 : r.data_in;
      break;
  }
  return out;
}

TapeDrive::Read TapeDrive::read_fixed(std::span<std::uint8_t> buffer, std::uint32_t block_length) {
  Read out;
  if (block_length == 0 || buffer.size() < block_length) {
    out.status.condition = Condition::kIllegalRequest;
    return out;
  }
  const std::size_t blocks = std::min<std::size_t>(buffer.size() / block_length, cdb::kMax24);
  buffer = buffer.first(blocks * block_length);
  const scsi::Result r =
      run_in(cdb::read6(true, false, static_cast<std::uint32_t>(blocks)), buffer, timeouts_.io);
  out.status = classify(r);
  if (out.status.ok()) {
    out.bytes = buffer.size();
  } else if (out.status.residue_valid && out.status.residue >= 0 &&
             static_cast<std::size_t>(out.status.residue) <= blocks) {
    // INFORMATION counts the blocks not transferred.
    out.bytes = (blocks - static_cast<std::size_t>(out.status.residue)) * block_length;
  } else {
    out.bytes = std::min(r.data_in, buffer.size()) / block_length * block_length;
  }
  return out;
}

Status TapeDrive::write(std::span<const std::uint8_t> record) {
  if (record.size() > cdb::kMax24) {
    Status s;
    s.condition = Condition::kIllegalRequest;
    return s;
  }
  return classify(
      run_out(cdb::write6(false, static_cast<std::uint32_t>(record.size())), record, timeouts_.io));
}

Status TapeDrive::write_fixed(std::span<const std::uint8_t> data, std::uint32_t block_length) {
  if (block_length == 0 || data.size() % block_length != 0 ||
      data.size() / block_length > cdb::kMax24) {
    Status s;
    s.condition = Condition::kIllegalRequest;
    return s;
  }
  return classify(run_out(cdb::write6(true, static_cast<std::uint32_t>(data.size() / block_length)),
                          data, timeouts_.io));
}

Status TapeDrive::write_filemarks(std::uint32_t count, bool immediate) {
  return classify(run(cdb::write_filemarks6(count, immediate), timeouts_.io));
}

Status TapeDrive::rewind() { return classify(run(cdb::rewind(false), timeouts_.positioning)); }

Status TapeDrive::load() {
  return classify(run(cdb::load_unload(true, false, false, false, false), timeouts_.positioning));
}

Status TapeDrive::unload() {
  return classify(run(cdb::load_unload(false, false, false, false, false), timeouts_.positioning));
}

Status TapeDrive::erase() {
  return classify(run(cdb::erase6(false, false), timeouts_.positioning));
}

namespace {
// Counts beyond a signed 24-bit field go with SPACE(16).
Bytes space_cdb(cdb::SpaceCode code, std::int64_t count) {
  if (count >= -8388608 && count <= 8388607)
    return cdb::space6(code, static_cast<std::int32_t>(count));
  return cdb::space16(code, count);
}
}  // namespace

Status TapeDrive::space_blocks(std::int64_t count) {
  return classify(run(space_cdb(cdb::SpaceCode::kBlocks, count), timeouts_.positioning));
}

Status TapeDrive::space_filemarks(std::int64_t count) {
  return classify(run(space_cdb(cdb::SpaceCode::kFilemarks, count), timeouts_.positioning));
}

Status TapeDrive::space_end_of_data() {
  return classify(run(cdb::space6(cdb::SpaceCode::kEndOfData, 0), timeouts_.positioning));
}

Status TapeDrive::locate(std::uint64_t object) {
  Bytes c = object <= 0xFFFFFFFFu
                ? cdb::locate10(static_cast<std::uint32_t>(object), false, false, 0)
                : cdb::locate16(object, 0, false, 0);
  return classify(run(std::move(c), timeouts_.positioning));
}

TapeDrive::Position TapeDrive::read_position() {
  Position p;
  std::uint8_t buf[32] = {};
  scsi::Result r = run_in(cdb::read_position(cdb::ReadPositionForm::kLong), buf, timeouts_.quick);
  p.status = classify(r);
  if (p.status.ok()) {
    const auto l = parse::read_position_long(std::span(buf, r.data_in));
    // Reserved bits of byte 0 set (tgt 1.0.85 puts the data length there):
    // not the long form at all, whatever the rest says.
    if (l && !l->lonu && (buf[0] & 0x32) == 0) {
      p.object = l->logical_object;
      if (!l->mpu) p.file = l->logical_file;
      p.bop = l->bop;
      p.eop = l->eop;
      p.bpew = l->bpew;
      return p;
    }
  }
  if (p.status.condition == Condition::kTransport) return p;
  // The short form: every SSC drive has it.
  r = run_in(cdb::read_position(cdb::ReadPositionForm::kShort), std::span(buf, 20),
             timeouts_.quick);
  p.status = classify(r);
  if (!p.status.ok()) return p;
  const auto s = parse::read_position_short(std::span(buf, r.data_in));
  if (!s || s->lolu) {
    p.status.condition = Condition::kOther;
    return p;
  }
  p.object = s->first_location;
  p.bop = s->bop;
  p.eop = s->eop;
  p.bpew = s->bpew;
  return p;
}

TapeDrive::Limits TapeDrive::block_limits() {
  Limits l;
  std::uint8_t buf[6] = {};
  const scsi::Result r = run_in(cdb::read_block_limits(), buf, timeouts_.quick);
  l.status = classify(r);
  if (!l.status.ok()) return l;
  const auto p = parse::read_block_limits(std::span(buf, r.data_in));
  if (!p) {
    l.status.condition = Condition::kOther;
    return l;
  }
  l.min = p->min_block_length;
  l.max = p->max_block_length;
  l.granularity = p->granularity;
  return l;
}

TapeDrive::Mode TapeDrive::mode() {
  Mode m;
  std::uint8_t buf[255] = {};
  const scsi::Result r =
      run_in(cdb::mode_sense6(false, 0, 0x00, 0, sizeof buf), buf, timeouts_.quick);
  m.status = classify(r);
  if (!m.status.ok()) return m;
  const auto p = parse::mode_sense6(std::span(buf, r.data_in));
  if (!p) {
    m.status.condition = Condition::kOther;
    return m;
  }
  m.write_protected = p->write_protected;
  m.buffered_mode = p->buffered_mode;
  if (!p->block_descriptors.empty()) {
    m.block_length = p->block_descriptors.front().block_length;
    m.density = p->block_descriptors.front().density_code;
  }
  return m;
}

TapeDrive::Capacity TapeDrive::capacity() {
  Capacity c;
  std::uint8_t buf[64] = {};
  const scsi::Result r = run_in(cdb::log_sense(1, 0x31, 0, 0, sizeof buf), buf, timeouts_.quick);
  c.status = classify(r);
  if (!c.status.ok()) return c;
  // Parameters after the 4-byte page header: code (2), control, length, value.
  const std::size_t n = std::min<std::size_t>(r.data_in, sizeof buf);
  bool have_total = false, have_remaining = false;
  for (std::size_t at = 4; at + 4 <= n;) {
    const std::uint16_t code = static_cast<std::uint16_t>(buf[at] << 8 | buf[at + 1]);
    const std::size_t len = buf[at + 3];
    if (at + 4 + len > n) break;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < len; ++i) v = v << 8 | buf[at + 4 + i];
    if (code == 1) {
      c.remaining = v << 20;  // MiB
      have_remaining = true;
    } else if (code == 3) {
      c.total = v << 20;
      have_total = true;
    }
    at += 4 + len;
  }
  if (!have_total || !have_remaining) c.status.condition = Condition::kOther;
  return c;
}

Status TapeDrive::set_block_length(std::uint32_t block_length) {
  // Keep the density and buffered mode the drive reports.
  const Mode now = mode();
  std::uint8_t p[12] = {};
  p[2] = static_cast<std::uint8_t>((now.status.ok() ? now.buffered_mode : 1) << 4);
  p[3] = 8;  // one block descriptor
  p[4] = now.status.ok() ? now.density : 0;
  p[9] = static_cast<std::uint8_t>(block_length >> 16);
  p[10] = static_cast<std::uint8_t>(block_length >> 8);
  p[11] = static_cast<std::uint8_t>(block_length);
  return classify(run_out(cdb::mode_select6(true, false, sizeof p), p, timeouts_.quick));
}

Status TapeDrive::prevent_removal(bool prevent) {
  return classify(run(cdb::prevent_allow_medium_removal(prevent), timeouts_.quick));
}

std::optional<scsi::Identity> TapeDrive::identity(Status* status) {
  return inquire_identity(*device_, status, timeouts_.quick);
}

std::optional<scsi::Identity> inquire_identity(scsi::Device& device, Status* status,
                                               std::chrono::milliseconds timeout) {
  auto in = [&](Bytes c, std::span<std::uint8_t> buf, Status& s) {
    scsi::Command cmd;
    cmd.cdb = std::move(c);
    cmd.direction = scsi::Direction::kIn;
    cmd.data_in = buf;
    cmd.timeout = timeout;
    const scsi::Result r = device.execute(cmd);
    s = classify(r);
    return s.ok() ? r.data_in : std::size_t{0};
  };
  std::uint8_t std_buf[96] = {}, serial_buf[255] = {}, id_buf[1024] = {};
  Status s;
  std::size_t n = 0;
  // A unit attention (reset, medium change) may come first: once more.
  for (int attempt = 0; attempt < 3; ++attempt) {
    n = in(scsi::cdb::inquiry(false, 0, sizeof std_buf), std_buf, s);
    if (s.condition != Condition::kUnitAttention) break;
  }
  if (status) *status = s;
  if (!s.ok()) return std::nullopt;
  const auto inquiry = parse::standard_inquiry(std::span(std_buf, n));
  if (!inquiry) return std::nullopt;
  Status ignored;
  std::optional<std::string> serial;
  n = in(scsi::cdb::inquiry(true, 0x80, sizeof serial_buf), serial_buf, ignored);
  if (n) serial = parse::unit_serial_number(std::span(serial_buf, n));
  std::optional<parse::DeviceIdentification> ids;
  n = in(scsi::cdb::inquiry(true, 0x83, sizeof id_buf), id_buf, ignored);
  if (n) ids = parse::device_identification(std::span(id_buf, n));
  return parse::identity_from(*inquiry, serial, ids);
}

}  // namespace tape
