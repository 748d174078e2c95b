// EXTENDED COPY (LID1) and RECEIVE COPY RESULTS codecs (see xcopy.h).
// Byte positions follow SPC-4 (6.4, 6.5) and reference/xcopy-spc4.md; every
// read goes through a span whose length has been checked first.

#include "scsi/xcopy.h"

#include <algorithm>
#include <cstddef>

#include "scsi/big_endian.h"

namespace scsi::xcopy {
namespace {

using Span = std::span<const std::uint8_t>;

std::uint8_t bit(bool on, int n) { return on ? static_cast<std::uint8_t>(1u << n) : 0; }

// A refusal pointing at byte `field` (bit `bit_no` if >= 0) of the list.
ListError refuse(std::uint8_t asc, std::uint8_t ascq, std::uint32_t field, int bit_no,
                 std::string why) {
  ListError e;
  e.sense.key = SenseKey::kIllegalRequest;
  e.sense.asc = asc;
  e.sense.ascq = ascq;
  SenseSpec::FieldPointer fp;
  fp.in_cdb = false;
  fp.field = static_cast<std::uint16_t>(std::min<std::uint32_t>(field, 0xFFFF));
  if (bit_no >= 0) {
    fp.bit_valid = true;
    fp.bit = static_cast<std::uint8_t>(bit_no);
  }
  e.sense.field_pointer = fp;
  e.why = std::move(why);
  return e;
}

ListError length_error(std::string why) {
  ListError e;
  e.sense.key = SenseKey::kIllegalRequest;
  e.sense.asc = 0x1A;  // PARAMETER LIST LENGTH ERROR
  e.sense.ascq = 0x00;
  e.why = std::move(why);
  return e;
}

constexpr std::uint8_t kPeripheralTape = 0x01;

// Decodes the E4h descriptor at `d` (32 bytes), which starts at byte `at`
// of the list.
std::variant<TargetDescriptor, ListError> parse_target(Span d, std::uint32_t at) {
  if (d[0] != kIdentificationDescriptor) {
    return refuse(0x26, 0x07, at, -1,
                  "target descriptor type " + std::to_string(d[0]) + " is not supported");
  }
  TargetDescriptor t;
  t.lu_id_type = static_cast<std::uint8_t>(d[1] >> 6);
  t.nul = (d[1] & 0x20) != 0;
  t.peripheral_type = d[1] & 0x1F;
  t.relative_port = be16(d, 2);
  t.code_set = d[4] & 0x0F;
  t.association = static_cast<std::uint8_t>((d[5] >> 4) & 0x03);
  t.designator_type = d[5] & 0x0F;
  const std::uint8_t length = d[7];
  if (t.lu_id_type != 0) {
    return refuse(0x26, 0x00, at + 1, 7, "only LU ID TYPE 00b (LUN) is supported");
  }
  if (length > 20) {
    return refuse(0x26, 0x00, at + 7, -1, "designator longer than 20 bytes");
  }
  t.designator.assign(d.begin() + 8, d.begin() + 8 + length);
  t.pad = (d[28] & 0x04) != 0;
  t.fixed = (d[28] & 0x01) != 0;
  t.block_length = be24(d, 29);
  if (t.peripheral_type == kPeripheralTape) {
    // FIXED=0 with a length, or FIXED=1 without one, is what SPC-4 forbids.
    if (t.fixed != (t.block_length != 0)) {
      return refuse(0x26, 0x00, at + 28, 0, "stream FIXED bit and block length disagree");
    }
  } else {
    t.fixed = false;
  }
  return t;
}

// Decodes the body of a segment descriptor whose type and length have
// been checked (`d` holds exactly the descriptor).
Segment parse_segment(Span d, std::uint32_t at) {
  Segment s;
  s.type = static_cast<SegmentType>(d[0]);
  s.cat = (d[1] & 0x01) != 0;
  s.offset_in_list = at;
  s.source = be16(d, 4);
  s.destination = be16(d, 6);
  switch (s.type) {
    case SegmentType::kBlockToStream:
    case SegmentType::kStreamToBlock:
      s.stream_length = be24(d, 9);
      s.blocks = be16(d, 14);
      s.lba = be(d, 16, 8);
      break;
    case SegmentType::kBlockToBlock:
      s.dc = (d[1] & 0x02) != 0;
      s.blocks = be16(d, 10);
      s.lba = be(d, 12, 8);
      s.destination_lba = be(d, 20, 8);
      break;
    case SegmentType::kInlineToStream:
      s.stream_length = be24(d, 9);
      s.inline_offset = be32(d, 12);
      s.byte_count = be32(d, 16);
      break;
    case SegmentType::kStreamToDiscard:
      s.stream_length = be24(d, 9);
      s.byte_count = be32(d, 12);
      break;
    case SegmentType::kVerifyTarget:
      s.tur = (d[8] & 0x01) != 0;
      break;
    case SegmentType::kBlockOffsetToStream:
    case SegmentType::kStreamToBlockOffset:
      s.stream_length = be24(d, 9);
      s.byte_count = be32(d, 12);
      s.lba = be(d, 16, 8);
      s.byte_offset = be16(d, 26);
      break;
    case SegmentType::kBlockOffsetToBlockOffset:
      s.byte_count = be32(d, 8);
      s.lba = be(d, 12, 8);
      s.destination_lba = be(d, 20, 8);
      s.byte_offset = be16(d, 28);
      s.destination_byte_offset = be16(d, 30);
      break;
    case SegmentType::kWriteFilemarks:
      s.immed = (d[8] & 0x01) != 0;
      s.count = be24(d, 9);
      break;
    case SegmentType::kSpace: {
      s.space_code = d[8] & 0x07;
      std::uint32_t v = be24(d, 9);
      if (v & 0x800000u) v |= 0xFF000000u;  // sign-extend the 24-bit count
      s.space_count = static_cast<std::int32_t>(v);
      break;
    }
    case SegmentType::kLocate:
      s.logical_object = be32(d, 8);
      break;
    case SegmentType::kTapeImageCopy:
      s.count = be32(d, 8);
      break;
  }
  return s;
}

}  // namespace

// ---- CDBs ----

Bytes extended_copy_cdb(std::uint32_t parameter_list_length) {
  Bytes c(16, 0);
  c[0] = kExtendedCopy;
  c[1] = 0x00;  // LID1
  put_be(c, 10, 4, parameter_list_length);
  return c;
}

Bytes receive_copy_results_cdb(ResultsAction action, std::uint8_t list_id,
                               std::uint32_t allocation_length) {
  Bytes c(16, 0);
  c[0] = kReceiveCopyResults;
  c[1] = static_cast<std::uint8_t>(action);
  c[2] = list_id;
  put_be(c, 10, 4, allocation_length);
  return c;
}

// ---- segment types ----

bool known_segment_type(std::uint8_t code) {
  switch (code) {
    case 0x00:
    case 0x01:
    case 0x02:
    case 0x04:
    case 0x06:
    case 0x07:
    case 0x08:
    case 0x09:
    case 0x0A:
    case 0x10:
    case 0x11:
    case 0x12:
    case 0x13:
      return true;
    default:
      return false;
  }
}

std::uint16_t segment_descriptor_length(SegmentType type) {
  switch (type) {
    case SegmentType::kBlockToStream:
    case SegmentType::kStreamToBlock:
      return 0x14;
    case SegmentType::kBlockToBlock:
    case SegmentType::kBlockOffsetToStream:
    case SegmentType::kStreamToBlockOffset:
      return 0x18;
    case SegmentType::kInlineToStream:
      return 0x10;
    case SegmentType::kStreamToDiscard:
      return 0x0C;
    case SegmentType::kBlockOffsetToBlockOffset:
      return 0x1C;
    case SegmentType::kVerifyTarget:
    case SegmentType::kWriteFilemarks:
    case SegmentType::kSpace:
    case SegmentType::kLocate:
    case SegmentType::kTapeImageCopy:
      return 0x08;
  }
  return 0;
}

// ---- parameter list ----

std::variant<ParameterList, ListError> parse_parameter_list(Span data, const Limits& limits) {
  if (data.size() < kHeaderLength) {
    return length_error("parameter list shorter than its 16-byte header");
  }
  ParameterList list;
  list.list_id = data[0];
  list.str = (data[1] & 0x20) != 0;
  const std::uint8_t usage = static_cast<std::uint8_t>((data[1] >> 3) & 0x03);
  list.priority = data[1] & 0x07;
  const std::uint32_t target_bytes = be16(data, 2);
  const std::uint32_t segment_bytes = be32(data, 8);
  const std::uint32_t inline_bytes = be32(data, 12);

  // Lengths first: what the header announces must have arrived.
  const std::uint64_t announced =
      std::uint64_t{kHeaderLength} + target_bytes + segment_bytes + std::uint64_t{inline_bytes};
  if (announced > data.size()) {
    return length_error("the header announces " + std::to_string(announced) +
                        " bytes; the parameter list has " + std::to_string(data.size()));
  }
  if (usage == 0x01) return refuse(0x26, 0x00, 1, 4, "LIST ID USAGE 01b is reserved");
  list.list_id_usage = static_cast<ListIdUsage>(usage);
  if (list.list_id_usage == ListIdUsage::kNone && list.list_id != 0) {
    return refuse(0x26, 0x00, 0, -1, "LIST ID USAGE 11b requires LIST IDENTIFIER 0");
  }
  if (target_bytes % kTargetDescriptorLength != 0) {
    return refuse(0x26, 0x00, 2, -1, "target descriptor list length is not a multiple of 32");
  }
  const std::uint32_t target_count = target_bytes / kTargetDescriptorLength;
  if (target_count > limits.max_targets) {
    return ListError{{SenseKey::kIllegalRequest, 0x26, 0x06},
                     std::to_string(target_count) + " target descriptors; at most " +
                         std::to_string(limits.max_targets)};
  }

  // The counts come before the total length, so that a list one
  // descriptor over a limit gets the sense that names the limit (26/06,
  // 26/08), as initiators test for, whatever the length limit.
  const bool too_long =
      std::uint64_t{target_bytes} + segment_bytes > limits.max_descriptor_list_length;

  std::uint32_t at = kHeaderLength;
  for (std::uint32_t i = 0; i < target_count; ++i, at += kTargetDescriptorLength) {
    auto t = parse_target(data.subspan(at, kTargetDescriptorLength), at);
    if (auto* e = std::get_if<ListError>(&t)) return std::move(*e);
    list.targets.push_back(std::move(std::get<TargetDescriptor>(t)));
  }

  const std::uint32_t segments_end = at + segment_bytes;
  while (at < segments_end) {
    if (segments_end - at < 4) {
      return length_error("a segment descriptor is cut off by the segment list's end");
    }
    const std::uint8_t code = data[at];
    if (!known_segment_type(code)) {
      return refuse(0x26, 0x09, at, -1,
                    "segment descriptor type " + std::to_string(code) + " is not supported");
    }
    const auto type = static_cast<SegmentType>(code);
    const std::uint16_t length = be16(data, at + 2);
    if (std::uint64_t{at} + 4 + length > segments_end) {
      return length_error("a segment descriptor runs past the segment list's end");
    }
    if (length != segment_descriptor_length(type)) {
      return refuse(0x26, 0x00, at + 2, -1,
                    "segment descriptor length " + std::to_string(length) + " is wrong for type " +
                        std::to_string(code));
    }
    if (list.segments.size() >= limits.max_segments) {
      return ListError{{SenseKey::kIllegalRequest, 0x26, 0x08},
                       "more than " + std::to_string(limits.max_segments) + " segment descriptors"};
    }
    list.segments.push_back(parse_segment(data.subspan(at, 4u + length), at));
    at += 4u + length;
  }
  if (too_long) {
    return length_error("descriptor lists of " + std::to_string(target_bytes + segment_bytes) +
                        " bytes exceed the maximum of " +
                        std::to_string(limits.max_descriptor_list_length));
  }

  if (inline_bytes > limits.max_inline_data) {
    return ListError{{SenseKey::kIllegalRequest, 0x26, 0x0B},
                     std::to_string(inline_bytes) + " bytes of inline data; at most " +
                         std::to_string(limits.max_inline_data)};
  }
  list.inline_data.assign(data.begin() + at, data.begin() + at + inline_bytes);
  return list;
}

Bytes build_parameter_list(const ParameterList& list) {
  std::size_t segment_bytes = 0;
  for (const Segment& s : list.segments) segment_bytes += 4u + segment_descriptor_length(s.type);
  const std::size_t target_bytes = list.targets.size() * kTargetDescriptorLength;
  Bytes b(kHeaderLength + target_bytes + segment_bytes + list.inline_data.size(), 0);
  b[0] = list.list_id;
  b[1] = static_cast<std::uint8_t>(bit(list.str, 5) |
                                   (static_cast<std::uint8_t>(list.list_id_usage) & 0x03) << 3 |
                                   (list.priority & 0x07));
  put_be(b, 2, 2, target_bytes);
  put_be(b, 8, 4, segment_bytes);
  put_be(b, 12, 4, list.inline_data.size());

  std::size_t at = kHeaderLength;
  for (const TargetDescriptor& t : list.targets) {
    b[at] = kIdentificationDescriptor;
    b[at + 1] = static_cast<std::uint8_t>((t.lu_id_type & 0x03) << 6 | bit(t.nul, 5) |
                                          (t.peripheral_type & 0x1F));
    put_be(b, at + 2, 2, t.relative_port);
    b[at + 4] = t.code_set & 0x0F;
    b[at + 5] = static_cast<std::uint8_t>((t.association & 0x03) << 4 | (t.designator_type & 0x0F));
    const std::size_t n = std::min<std::size_t>(t.designator.size(), 20);
    b[at + 7] = static_cast<std::uint8_t>(n);
    std::copy_n(t.designator.begin(), n, b.begin() + static_cast<std::ptrdiff_t>(at + 8));
    b[at + 28] = static_cast<std::uint8_t>(bit(t.pad, 2) | bit(t.fixed, 0));
    put_be(b, at + 29, 3, t.block_length);
    at += kTargetDescriptorLength;
  }

  for (const Segment& s : list.segments) {
    const std::uint16_t length = segment_descriptor_length(s.type);
    b[at] = static_cast<std::uint8_t>(s.type);
    b[at + 1] = static_cast<std::uint8_t>(bit(s.cat, 0) |
                                          bit(s.dc && s.type == SegmentType::kBlockToBlock, 1));
    put_be(b, at + 2, 2, length);
    put_be(b, at + 4, 2, s.source);
    put_be(b, at + 6, 2, s.destination);
    switch (s.type) {
      case SegmentType::kBlockToStream:
      case SegmentType::kStreamToBlock:
        put_be(b, at + 9, 3, s.stream_length);
        put_be(b, at + 14, 2, s.blocks);
        put_be(b, at + 16, 8, s.lba);
        break;
      case SegmentType::kBlockToBlock:
        put_be(b, at + 10, 2, s.blocks);
        put_be(b, at + 12, 8, s.lba);
        put_be(b, at + 20, 8, s.destination_lba);
        break;
      case SegmentType::kInlineToStream:
        put_be(b, at + 9, 3, s.stream_length);
        put_be(b, at + 12, 4, s.inline_offset);
        put_be(b, at + 16, 4, s.byte_count);
        break;
      case SegmentType::kStreamToDiscard:
        put_be(b, at + 9, 3, s.stream_length);
        put_be(b, at + 12, 4, s.byte_count);
        break;
      case SegmentType::kVerifyTarget:
        b[at + 8] = bit(s.tur, 0);
        break;
      case SegmentType::kBlockOffsetToStream:
      case SegmentType::kStreamToBlockOffset:
        put_be(b, at + 9, 3, s.stream_length);
        put_be(b, at + 12, 4, s.byte_count);
        put_be(b, at + 16, 8, s.lba);
        put_be(b, at + 26, 2, s.byte_offset);
        break;
      case SegmentType::kBlockOffsetToBlockOffset:
        put_be(b, at + 8, 4, s.byte_count);
        put_be(b, at + 12, 8, s.lba);
        put_be(b, at + 20, 8, s.destination_lba);
        put_be(b, at + 28, 2, s.byte_offset);
        put_be(b, at + 30, 2, s.destination_byte_offset);
        break;
      case SegmentType::kWriteFilemarks:
        b[at + 8] = bit(s.immed, 0);
        put_be(b, at + 9, 3, s.count);
        break;
      case SegmentType::kSpace:
        b[at + 8] = s.space_code & 0x07;
        put_be(b, at + 9, 3, static_cast<std::uint32_t>(s.space_count) & 0xFFFFFFu);
        break;
      case SegmentType::kLocate:
        put_be(b, at + 8, 4, s.logical_object);
        break;
      case SegmentType::kTapeImageCopy:
        put_be(b, at + 8, 4, s.count);
        break;
    }
    at += 4u + length;
  }
  std::copy(list.inline_data.begin(), list.inline_data.end(),
            b.begin() + static_cast<std::ptrdiff_t>(at));
  return b;
}

// ---- RECEIVE COPY RESULTS ----

Bytes encode_copy_status(const CopyStatus& s) {
  Bytes b(12, 0);
  put_be(b, 0, 4, 8);
  b[4] = static_cast<std::uint8_t>(bit(s.hdd, 7) | (static_cast<std::uint8_t>(s.state) & 0x7F));
  put_be(b, 5, 2, s.segments_processed);
  b[7] = s.transfer_count_units;
  put_be(b, 8, 4, s.transfer_count);
  return b;
}

std::optional<CopyStatus> parse_copy_status(Span data) {
  if (data.size() < 12 || be32(data, 0) < 8) return std::nullopt;
  CopyStatus s;
  s.hdd = (data[4] & 0x80) != 0;
  const std::uint8_t state = data[4] & 0x7F;
  if (state > 0x02) return std::nullopt;
  s.state = static_cast<CopyState>(state);
  s.segments_processed = be16(data, 5);
  s.transfer_count_units = data[7];
  s.transfer_count = be32(data, 8);
  return s;
}

Bytes encode_operating_parameters(const OperatingParameters& p) {
  const std::size_t codes = std::min<std::size_t>(p.descriptor_codes.size(), 255);
  Bytes b(44 + codes, 0);
  put_be(b, 0, 4, b.size() - 4);
  b[4] = bit(p.snlid, 0);
  put_be(b, 8, 2, p.max_targets);
  put_be(b, 10, 2, p.max_segments);
  put_be(b, 12, 4, p.max_descriptor_list_length);
  put_be(b, 16, 4, p.max_segment_length);
  put_be(b, 20, 4, p.max_inline_data);
  put_be(b, 24, 4, p.held_data_limit);
  put_be(b, 28, 4, p.max_stream_transfer);
  put_be(b, 34, 2, p.total_concurrent_copies);
  b[36] = p.max_concurrent_copies;
  b[37] = p.data_segment_granularity;
  b[38] = p.inline_data_granularity;
  b[39] = p.held_data_granularity;
  b[43] = static_cast<std::uint8_t>(codes);
  std::copy_n(p.descriptor_codes.begin(), codes, b.begin() + 44);
  return b;
}

std::optional<OperatingParameters> parse_operating_parameters(Span data) {
  if (data.size() < 44) return std::nullopt;
  OperatingParameters p;
  p.snlid = (data[4] & 0x01) != 0;
  p.max_targets = be16(data, 8);
  p.max_segments = be16(data, 10);
  p.max_descriptor_list_length = be32(data, 12);
  p.max_segment_length = be32(data, 16);
  p.max_inline_data = be32(data, 20);
  p.held_data_limit = be32(data, 24);
  p.max_stream_transfer = be32(data, 28);
  p.total_concurrent_copies = be16(data, 34);
  p.max_concurrent_copies = data[36];
  p.data_segment_granularity = data[37];
  p.inline_data_granularity = data[38];
  p.held_data_granularity = data[39];
  // The list may be cut by the allocation length, or by AVAILABLE DATA.
  const std::size_t available = std::min<std::size_t>(data.size(), 4 + std::size_t{be32(data, 0)});
  const std::size_t end = std::min<std::size_t>(available, 44 + std::size_t{data[43]});
  if (end > 44) p.descriptor_codes.assign(data.begin() + 44, data.begin() + end);
  return p;
}

Bytes encode_failed_segment_details(const FailedSegmentDetails& d) {
  const std::size_t n = std::min<std::size_t>(d.sense.size(), 0xFFFF);
  Bytes b(60 + n, 0);
  put_be(b, 0, 4, b.size() - 4);
  b[56] = static_cast<std::uint8_t>(d.command_status);
  put_be(b, 58, 2, n);
  std::copy_n(d.sense.begin(), n, b.begin() + 60);
  return b;
}

std::optional<FailedSegmentDetails> parse_failed_segment_details(Span data) {
  if (data.size() < 60 || be32(data, 0) < 56) return std::nullopt;
  FailedSegmentDetails d;
  d.command_status = static_cast<Status>(data[56]);
  const std::size_t n = std::min<std::size_t>(be16(data, 58), data.size() - 60);
  d.sense.assign(data.begin() + 60, data.begin() + 60 + static_cast<std::ptrdiff_t>(n));
  return d;
}

// ---- COPY ABORTED sense ----

namespace {

constexpr std::size_t kMaxSense = 252;

// The bytes a forwarded sense occupies: what the device said it returned
// (fixed: 8 + ADDITIONAL SENSE LENGTH; descriptor: the same), bounded by
// what arrived.
std::size_t sense_length(Span s) {
  if (s.size() < 8) return s.size();
  return std::min<std::size_t>(s.size(), 8 + std::size_t{s[7]});
}

// Appends "status + sense" at the end of `b`, cut to leave `room` bytes;
// returns the area's offset, or 0 if nothing fits.
std::uint8_t append_forwarded(Bytes& b, const CopyAbort::Forwarded& f, std::size_t room) {
  if (room < 2) return 0;
  const Span s(f.sense);
  const std::size_t n = std::min(sense_length(s), room - 1);
  const auto offset = static_cast<std::uint8_t>(b.size());
  b.push_back(static_cast<std::uint8_t>(f.status));
  const std::size_t from = b.size();
  b.insert(b.end(), s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
  // A fixed or descriptor sense cut short says so in its own length byte.
  if (n >= 8 && (b[from] & 0x7F) >= 0x70 && (b[from] & 0x7F) <= 0x73) {
    b[from + 7] = static_cast<std::uint8_t>(n - 8);
  }
  return offset;
}

std::optional<CopyAbort::Forwarded> forwarded_at(Span sense, std::size_t offset) {
  // An area lies after the 18 standard bytes and inside the sense.
  if (offset < 18 || offset >= sense.size()) return std::nullopt;
  CopyAbort::Forwarded f;
  f.status = static_cast<Status>(sense[offset]);
  const Span rest = sense.subspan(offset + 1);
  const std::size_t n = sense_length(rest);
  f.sense.assign(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(n));
  return f;
}

}  // namespace

Bytes copy_aborted_sense(const CopyAbort& abort) {
  Bytes b(18, 0);
  b[0] = 0x70;
  b[2] = static_cast<std::uint8_t>(static_cast<std::uint8_t>(abort.key) & 0x0F);
  if (abort.residual) {
    b[0] |= 0x80;  // VALID
    put_be(b, 3, 4, *abort.residual);
  }
  put_be(b, 10, 2, abort.segment);
  b[12] = abort.asc;
  b[13] = abort.ascq;
  // Both areas share what is left; the source's half is given back to the
  // destination when there is no source sense.
  const std::size_t room = kMaxSense - b.size();
  if (abort.source) {
    const std::size_t share = abort.destination ? room / 2 : room;
    b[8] = append_forwarded(b, *abort.source, share);
  }
  if (abort.destination) b[9] = append_forwarded(b, *abort.destination, kMaxSense - b.size());
  b[7] = static_cast<std::uint8_t>(b.size() - 8);
  return b;
}

std::optional<CopyAbort> parse_copy_aborted_sense(Span sense) {
  if (sense.size() < 8) return std::nullopt;
  const std::uint8_t code = sense[0] & 0x7F;
  const std::size_t length = sense_length(sense);
  const Span s = sense.first(length);
  CopyAbort a;
  if (code == 0x70 || code == 0x71) {
    if (s.size() < 14) return std::nullopt;
    a.key = static_cast<SenseKey>(s[2] & 0x0F);
    if (s[0] & 0x80) a.residual = be32(s, 3);
    a.asc = s[12];
    a.ascq = s[13];
    a.segment = be16(s, 10);
    if (s.size() >= 18) {
      a.source = forwarded_at(s, s[8]);
      a.destination = forwarded_at(s, s[9]);
    }
    return a;
  }
  if (code != 0x72 && code != 0x73) return std::nullopt;
  a.key = static_cast<SenseKey>(s[1] & 0x0F);
  a.asc = s[2];
  a.ascq = s[3];
  std::size_t at = 8;
  while (at + 2 <= s.size()) {
    const std::uint8_t type = s[at];
    const std::size_t n = 2 + std::size_t{s[at + 1]};
    if (at + n > s.size()) break;
    const Span d = s.subspan(at, n);
    if (type == 0x00 && n >= 12 && (d[2] & 0x80)) {
      a.residual = static_cast<std::uint32_t>(be(d, 4, 8));
    } else if (type == 0x01 && n >= 12) {
      a.segment = static_cast<std::uint16_t>(be(d, 4, 8) & 0xFFFF);
    } else if (type == 0x0C && n >= 4) {
      CopyAbort::Forwarded f;
      f.status = static_cast<Status>(d[3]);
      f.sense.assign(d.begin() + 4, d.end());
      const std::uint8_t source = d[2] & 0x0F;
      if (source == 1) a.source = std::move(f);
      if (source == 2) a.destination = std::move(f);
    }
    at += n;
  }
  return a;
}

}  // namespace scsi::xcopy
