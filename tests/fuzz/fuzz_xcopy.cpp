// Fuzz target: the EXTENDED COPY parameter-list decoder and the RECEIVE
// COPY RESULTS / COPY ABORTED sense decoders (scsi/xcopy.h).  The first
// byte picks the decoder.  Beyond "no crash, no sanitizer report":
// - a parameter list that parses stays within the limits it was parsed
//   under, accounts for no more bytes than it was given, and builds back
//   into bytes that parse to the same list (build(parse(x)) is a fixed
//   point);
// - a refusal is ILLEGAL REQUEST with PARAMETER LIST LENGTH ERROR or one of
//   the 26h codes the standard names, and says why;
// - the results pages and COPY ABORTED sense re-encode to something that
//   parses back to the same fields, within the 252 bytes sense may hold.
// A violated invariant aborts, which libFuzzer reports as a crash.
//
// Built with -DNDMPD_XCOPY_SEEDS it is instead a program that writes the
// seed corpus into the directory it is given (run once by hand; the corpus
// is committed):  fuzz_xcopy_seeds tests/fuzz/corpus/xcopy

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <variant>

#include "scsi/xcopy.h"

namespace {

namespace x = scsi::xcopy;
using scsi::Bytes;
using Span = std::span<const std::uint8_t>;

// Aborts with the line of the invariant that failed, for the reproducer.
void check_at(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_xcopy: invariant at line %d failed\n", line);
  std::abort();
}
#define check(ok) check_at((ok), __LINE__)

void fuzz_list(Span b, const x::Limits& limits) {
  const auto r = x::parse_parameter_list(b, limits);
  if (const auto* e = std::get_if<x::ListError>(&r)) {
    check(e->sense.key == scsi::SenseKey::kIllegalRequest);
    check(e->sense.asc == 0x1A || e->sense.asc == 0x26);
    check(!e->why.empty());
    return;
  }
  const auto& list = std::get<x::ParameterList>(r);
  check(list.targets.size() <= limits.max_targets);
  check(list.segments.size() <= limits.max_segments);
  check(list.inline_data.size() <= limits.max_inline_data);
  const Bytes built = x::build_parameter_list(list);
  check(built.size() <= b.size());
  const auto again = x::parse_parameter_list(built, limits);
  check(std::holds_alternative<x::ParameterList>(again));
  check(x::build_parameter_list(std::get<x::ParameterList>(again)) == built);
  for (const x::Segment& s : list.segments) {
    check(x::known_segment_type(static_cast<std::uint8_t>(s.type)));
    check(s.offset_in_list + 4u + x::segment_descriptor_length(s.type) <= b.size());
  }
}

void fuzz_results(Span b) {
  if (auto s = x::parse_copy_status(b)) {
    const auto again = x::parse_copy_status(x::encode_copy_status(*s));
    check(again && again->segments_processed == s->segments_processed &&
          again->transfer_count == s->transfer_count && again->state == s->state);
  }
  if (auto p = x::parse_operating_parameters(b)) {
    check(44 + p->descriptor_codes.size() <= b.size());
    const auto again = x::parse_operating_parameters(x::encode_operating_parameters(*p));
    check(again && again->descriptor_codes == p->descriptor_codes &&
          again->max_segment_length == p->max_segment_length &&
          again->max_targets == p->max_targets);
  }
  if (auto d = x::parse_failed_segment_details(b)) {
    check(60 + d->sense.size() <= b.size());
    const auto again = x::parse_failed_segment_details(x::encode_failed_segment_details(*d));
    check(again && again->sense == d->sense && again->command_status == d->command_status);
  }
}

void fuzz_sense(Span b) {
  const auto a = x::parse_copy_aborted_sense(b);
  if (!a) return;
  // Each forwarded sense lies inside what was given (two areas may overlap
  // in a hostile sense, so their sum may not).
  if (a->source) check(a->source->sense.size() < b.size());
  if (a->destination) check(a->destination->sense.size() < b.size());
  const Bytes s = x::copy_aborted_sense(*a);
  check(s.size() <= 252);
  const auto again = x::parse_copy_aborted_sense(s);
  check(again && again->segment == a->segment && again->residual == a->residual &&
        again->asc == a->asc && again->ascq == a->ascq);
  if (a->source) check(again->source.has_value());
  if (a->destination) check(again->destination.has_value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const Span in(data + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      // Small limits, taken from the input, reach the refusals quickly.
      if (in.size() < 3) return 0;
      x::Limits limits;
      limits.max_targets = static_cast<std::uint16_t>(1 + in[0] % 72);
      limits.max_segments = static_cast<std::uint16_t>(1 + in[1] % 72);
      limits.max_inline_data = std::uint32_t{in[2]} * 64;
      fuzz_list(in.subspan(3), limits);
      break;
    }
    case 1:
      fuzz_list(in, x::Limits{});
      break;
    case 2:
      fuzz_results(in);
      break;
    default:
      fuzz_sense(in);
      break;
  }
  return 0;
}

#ifdef NDMPD_XCOPY_SEEDS
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

namespace {

void write_seed(const std::filesystem::path& dir, const std::string& name, std::uint8_t mode,
                const Bytes& body) {
  std::ofstream out(dir / name, std::ios::binary);
  out.put(static_cast<char>(mode));
  out.write(reinterpret_cast<const char*>(body.data()), static_cast<std::streamsize>(body.size()));
}

x::TargetDescriptor target(std::uint8_t type, std::uint8_t tag, bool fixed, std::uint32_t length) {
  x::TargetDescriptor t;
  t.peripheral_type = type;
  t.designator = Bytes(16, tag);
  t.designator[0] = 0x60;
  t.fixed = fixed;
  t.block_length = length;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_xcopy_seeds DIR\n";
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);

  // One list per segment type, between a disk and a tape (and the disk to
  // itself for the block->block ones), plus inline data.
  const std::uint8_t codes[] = {0x00, 0x01, 0x02, 0x04, 0x06, 0x07, 0x08,
                                0x09, 0x0A, 0x10, 0x11, 0x12, 0x13};
  for (std::uint8_t code : codes) {
    x::ParameterList l;
    l.list_id = code;
    l.list_id_usage = x::ListIdUsage::kHold;
    l.targets = {target(0x00, 0x11, false, 512), target(0x01, 0x22, code % 2 == 0, 0)};
    if (l.targets[1].fixed) l.targets[1].block_length = 65536;
    x::Segment s;
    s.type = static_cast<x::SegmentType>(code);
    s.cat = code % 3 == 0;
    s.source = 0;
    s.destination = 1;
    s.stream_length = 65536;
    s.blocks = 256;
    s.byte_count = 131072;
    s.lba = 8;
    s.count = 2;
    s.space_code = 1;
    s.space_count = -1;
    s.logical_object = 5;
    if (code == 0x04) l.inline_data = Bytes(64, 0x5A), s.byte_count = 64;
    l.segments.push_back(s);
    const Bytes b = x::build_parameter_list(l);
    write_seed(dir, "list-segment-" + std::to_string(code), 1, b);
    Bytes limited(3 + b.size());
    limited[0] = 4;  // targets, segments, inline data limits (see case 0)
    limited[1] = 4;
    limited[2] = 2;
    std::copy(b.begin(), b.end(), limited.begin() + 3);
    write_seed(dir, "list-limited-" + std::to_string(code), 0, limited);
  }

  x::CopyStatus status;
  status.state = x::CopyState::kInProgress;
  status.segments_processed = 3;
  status.transfer_count = 4096;
  write_seed(dir, "results-copy-status", 2, x::encode_copy_status(status));
  x::OperatingParameters params;
  params.snlid = true;
  params.max_targets = 64;
  params.max_segments = 64;
  params.descriptor_codes = {0x00, 0x01, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x0A, 0xE4};
  write_seed(dir, "results-operating-parameters", 2, x::encode_operating_parameters(params));
  x::FailedSegmentDetails details;
  details.command_status = scsi::Status::kCheckCondition;
  details.sense = scsi::fixed_sense({scsi::SenseKey::kCopyAborted, 0x0D, 0x01});
  write_seed(dir, "results-failed-segment-details", 2, x::encode_failed_segment_details(details));

  x::CopyAbort abort;
  abort.segment = 2;
  abort.residual = 65536;
  abort.source = x::CopyAbort::Forwarded{
      scsi::Status::kCheckCondition, scsi::fixed_sense({scsi::SenseKey::kMediumError, 0x11, 0x00})};
  scsi::SenseSpec eom{scsi::SenseKey::kNoSense, 0x00, 0x02};
  eom.eom = true;
  abort.destination =
      x::CopyAbort::Forwarded{scsi::Status::kCheckCondition, scsi::fixed_sense(eom)};
  write_seed(dir, "sense-copy-aborted-fixed", 3, x::copy_aborted_sense(abort));
  const Bytes descriptor = {0x72, 0x0A, 0x0D, 0x01, 0, 0, 0, 28,   0x00, 0x0A, 0x80, 0,
                            0,    0,    0,    0,    0, 0, 1, 0,    0x01, 0x0A, 0,    0,
                            0,    0,    0,    0,    0, 0, 0, 0x03, 0x0C, 0x02, 0x02, 0x02};
  write_seed(dir, "sense-copy-aborted-descriptor", 3, descriptor);
  return 0;
}
#endif
