// The EXTENDED COPY / RECEIVE COPY RESULTS codecs: every segment type
// built and parsed back, every refusal the parser makes with the sense the
// standard names, the results pages both ways, and COPY ABORTED sense with
// forwarded device sense in fixed and descriptor formats.

#include <gtest/gtest.h>

#include <variant>

#include "scsi/xcopy.h"

namespace scsi::xcopy {
namespace {

TargetDescriptor disk_target(std::uint8_t tag, std::uint32_t block_length = 512) {
  TargetDescriptor t;
  t.peripheral_type = 0x00;
  t.designator = Bytes(16, tag);
  t.designator[0] = 0x60;  // NAA 6
  t.block_length = block_length;
  return t;
}

TargetDescriptor tape_target(std::uint8_t tag, bool fixed, std::uint32_t block_length) {
  TargetDescriptor t;
  t.peripheral_type = 0x01;
  t.designator = Bytes(16, tag);
  t.designator[0] = 0x60;
  t.fixed = fixed;
  t.block_length = block_length;
  return t;
}

ParameterList two_targets() {
  ParameterList l;
  l.list_id = 7;
  l.list_id_usage = ListIdUsage::kHold;
  l.priority = 3;
  l.targets = {disk_target(0x11), tape_target(0x22, false, 0)};
  return l;
}

ParameterList parsed(const Bytes& b, const Limits& limits = {}) {
  auto r = parse_parameter_list(b, limits);
  if (auto* e = std::get_if<ListError>(&r)) {
    ADD_FAILURE() << "refused: " << e->why;
    return {};
  }
  return std::get<ParameterList>(r);
}

ListError refused(const Bytes& b, const Limits& limits = {}) {
  auto r = parse_parameter_list(b, limits);
  if (auto* l = std::get_if<ParameterList>(&r)) {
    ADD_FAILURE() << "accepted a list with " << l->segments.size() << " segments";
    return {};
  }
  return std::get<ListError>(r);
}

void expect_sense(const ListError& e, std::uint8_t asc, std::uint8_t ascq) {
  EXPECT_EQ(e.sense.key, SenseKey::kIllegalRequest) << e.why;
  EXPECT_EQ(e.sense.asc, asc) << e.why;
  EXPECT_EQ(e.sense.ascq, ascq) << e.why;
  EXPECT_FALSE(e.why.empty());
}

// A list built, parsed and built again gives the same bytes.
void expect_round_trip(const ParameterList& l) {
  const Bytes b = build_parameter_list(l);
  const ParameterList p = parsed(b);
  EXPECT_EQ(build_parameter_list(p), b);
  ASSERT_EQ(p.segments.size(), l.segments.size());
  ASSERT_EQ(p.targets.size(), l.targets.size());
}

TEST(ExtendedCopyCodec, CdbCarriesListLengthAndServiceAction) {
  const Bytes c = extended_copy_cdb(0x01020304);
  ASSERT_EQ(c.size(), 16u);
  EXPECT_EQ(c[0], 0x83);
  EXPECT_EQ(c[1], 0x00);
  EXPECT_EQ(c[10], 0x01);
  EXPECT_EQ(c[13], 0x04);
  const Bytes r = receive_copy_results_cdb(ResultsAction::kFailedSegmentDetails, 9, 0x200);
  ASSERT_EQ(r.size(), 16u);
  EXPECT_EQ(r[0], 0x84);
  EXPECT_EQ(r[1], 0x04);
  EXPECT_EQ(r[2], 9);
  EXPECT_EQ(r[12], 0x02);
  EXPECT_EQ(r[13], 0x00);
}

TEST(ExtendedCopyCodec, HeaderFieldsRoundTrip) {
  ParameterList l = two_targets();
  l.str = true;
  l.inline_data = {1, 2, 3, 4, 5, 6, 7, 8};
  const Bytes b = build_parameter_list(l);
  EXPECT_EQ(b[0], 7);
  EXPECT_EQ(b[1], 0x20 | 0x03);  // STR, usage 00b, priority 3
  EXPECT_EQ(b[3], 64);           // two target descriptors
  const ParameterList p = parsed(b);
  EXPECT_EQ(p.list_id, 7);
  EXPECT_TRUE(p.str);
  EXPECT_EQ(p.list_id_usage, ListIdUsage::kHold);
  EXPECT_EQ(p.priority, 3);
  EXPECT_EQ(p.inline_data, l.inline_data);
}

TEST(ExtendedCopyCodec, IdentificationTargetDescriptorsForDiskAndTape) {
  ParameterList l;
  l.targets = {disk_target(0x11, 4096), tape_target(0x22, true, 65536),
               tape_target(0x33, false, 0)};
  l.targets[0].pad = true;
  l.targets[1].relative_port = 2;
  const Bytes b = build_parameter_list(l);
  EXPECT_EQ(b[16], 0xE4);
  EXPECT_EQ(b[16 + 1], 0x00);   // LUN, disk
  EXPECT_EQ(b[16 + 7], 16);     // designator length
  EXPECT_EQ(b[16 + 28], 0x04);  // PAD
  EXPECT_EQ(b[16 + 30], 0x10);  // 4096
  EXPECT_EQ(b[48 + 1], 0x01);   // tape
  EXPECT_EQ(b[48 + 28], 0x01);  // FIXED
  const ParameterList p = parsed(b);
  ASSERT_EQ(p.targets.size(), 3u);
  EXPECT_EQ(p.targets[0].designator, l.targets[0].designator);
  EXPECT_EQ(p.targets[0].block_length, 4096u);
  EXPECT_TRUE(p.targets[0].pad);
  EXPECT_EQ(p.targets[1].relative_port, 2);
  EXPECT_TRUE(p.targets[1].fixed);
  EXPECT_EQ(p.targets[1].block_length, 65536u);
  EXPECT_FALSE(p.targets[2].fixed);
  EXPECT_EQ(p.targets[2].designator_type, 3);
}

TEST(ExtendedCopyCodec, EverySegmentTypeRoundTrips) {
  ParameterList l = two_targets();
  l.inline_data = Bytes(64, 0xAB);
  Segment s;
  s.source = 0;
  s.destination = 1;

  s.type = SegmentType::kBlockToStream;
  s.stream_length = 262144;
  s.blocks = 65535;
  s.lba = 0x0102030405060708ull;
  s.cat = true;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kStreamToBlock;
  s.source = 1;
  s.destination = 0;
  s.stream_length = 512;
  s.blocks = 4;
  s.lba = 99;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kBlockToBlock;
  s.dc = true;
  s.blocks = 2048;
  s.lba = 10;
  s.destination_lba = 20;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kInlineToStream;
  s.destination = 1;
  s.stream_length = 32;
  s.inline_offset = 8;
  s.byte_count = 32;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kStreamToDiscard;
  s.source = 1;
  s.stream_length = 1024;
  s.byte_count = 4096;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kVerifyTarget;
  s.source = 1;
  s.tur = true;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kBlockOffsetToStream;
  s.destination = 1;
  s.stream_length = 65536;
  s.byte_count = 0xFFFFFFF0u;
  s.lba = 5;
  s.byte_offset = 100;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kStreamToBlockOffset;
  s.source = 1;
  s.stream_length = 65536;
  s.byte_count = 70000;
  s.lba = 6;
  s.byte_offset = 511;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kBlockOffsetToBlockOffset;
  s.byte_count = 1000;
  s.lba = 1;
  s.destination_lba = 2;
  s.byte_offset = 3;
  s.destination_byte_offset = 4;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kWriteFilemarks;
  s.destination = 1;
  s.immed = true;
  s.count = 3;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kSpace;
  s.destination = 1;
  s.space_code = 1;
  s.space_count = -2;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kLocate;
  s.destination = 1;
  s.logical_object = 123456;
  l.segments.push_back(s);
  s = {};
  s.type = SegmentType::kTapeImageCopy;
  s.source = 1;
  s.destination = 1;
  s.count = 0;
  l.segments.push_back(s);

  expect_round_trip(l);
  const ParameterList p = parsed(build_parameter_list(l));
  ASSERT_EQ(p.segments.size(), 13u);
  EXPECT_TRUE(p.segments[0].cat);
  EXPECT_EQ(p.segments[0].blocks, 65535u);
  EXPECT_EQ(p.segments[0].lba, 0x0102030405060708ull);
  EXPECT_EQ(p.segments[0].stream_length, 262144u);
  EXPECT_EQ(p.segments[0].offset_in_list, 16u + 64u);
  EXPECT_EQ(p.segments[1].source, 1);
  EXPECT_TRUE(p.segments[2].dc);
  EXPECT_EQ(p.segments[2].destination_lba, 20u);
  EXPECT_EQ(p.segments[3].inline_offset, 8u);
  EXPECT_EQ(p.segments[4].byte_count, 4096u);
  EXPECT_TRUE(p.segments[5].tur);
  EXPECT_EQ(p.segments[6].byte_count, 0xFFFFFFF0u);
  EXPECT_EQ(p.segments[6].byte_offset, 100);
  EXPECT_EQ(p.segments[7].byte_offset, 511);
  EXPECT_EQ(p.segments[8].destination_byte_offset, 4);
  EXPECT_TRUE(p.segments[9].immed);
  EXPECT_EQ(p.segments[9].count, 3u);
  EXPECT_EQ(p.segments[10].space_code, 1);
  EXPECT_EQ(p.segments[10].space_count, -2);
  EXPECT_EQ(p.segments[11].logical_object, 123456u);
  EXPECT_EQ(p.segments[12].count, 0u);
  EXPECT_EQ(p.inline_data.size(), 64u);
}

TEST(ExtendedCopyCodec, SegmentDescriptorLengthsAreTheStandards) {
  EXPECT_EQ(segment_descriptor_length(SegmentType::kBlockToStream), 0x14);
  EXPECT_EQ(segment_descriptor_length(SegmentType::kStreamToBlock), 0x14);
  EXPECT_EQ(segment_descriptor_length(SegmentType::kBlockToBlock), 0x18);
  EXPECT_EQ(segment_descriptor_length(SegmentType::kInlineToStream), 0x10);
  EXPECT_EQ(segment_descriptor_length(SegmentType::kStreamToDiscard), 0x0C);
  EXPECT_EQ(segment_descriptor_length(SegmentType::kVerifyTarget), 0x08);
  EXPECT_EQ(segment_descriptor_length(SegmentType::kBlockOffsetToStream), 0x18);
  EXPECT_EQ(segment_descriptor_length(SegmentType::kStreamToBlockOffset), 0x18);
  EXPECT_EQ(segment_descriptor_length(SegmentType::kBlockOffsetToBlockOffset), 0x1C);
  EXPECT_EQ(segment_descriptor_length(SegmentType::kWriteFilemarks), 0x08);
  EXPECT_EQ(segment_descriptor_length(SegmentType::kTapeImageCopy), 0x08);
  for (int code : {0x03, 0x05, 0x0B, 0x0E, 0x14, 0x15, 0xBE, 0xFF}) {
    EXPECT_FALSE(known_segment_type(static_cast<std::uint8_t>(code))) << code;
  }
}

TEST(ExtendedCopyCodec, ListShorterThanHeaderIsParameterListLengthError) {
  expect_sense(refused(Bytes(15, 0)), 0x1A, 0x00);
  expect_sense(refused(Bytes{}), 0x1A, 0x00);
}

TEST(ExtendedCopyCodec, ListShorterThanAnnouncedIsParameterListLengthError) {
  ParameterList l = two_targets();
  Segment s;
  s.type = SegmentType::kBlockToBlock;
  s.source = 0;
  s.destination = 0;
  s.blocks = 1;
  l.segments.push_back(s);
  l.inline_data = Bytes(8, 1);
  Bytes b = build_parameter_list(l);
  for (std::size_t cut : {1u, 8u, 28u, 40u}) {
    Bytes truncated(b.begin(), b.end() - static_cast<std::ptrdiff_t>(cut));
    expect_sense(refused(truncated), 0x1A, 0x00);
  }
  // A list longer than it announces is taken (the rest is ignored).
  b.push_back(0);
  EXPECT_EQ(parsed(b).segments.size(), 1u);
}

TEST(ExtendedCopyCodec, DescriptorListsOverTheMaximumAreParameterListLengthError) {
  ParameterList l = two_targets();
  Limits limits;
  limits.max_descriptor_list_length = 63;
  expect_sense(refused(build_parameter_list(l), limits), 0x1A, 0x00);
  limits.max_descriptor_list_length = 64;
  EXPECT_EQ(parsed(build_parameter_list(l), limits).targets.size(), 2u);
}

TEST(ExtendedCopyCodec, CountLimitsComeBeforeTheLengthLimit) {
  // One target over a limit of 1, in a list also over the length limit:
  // the sense names the count (what iscsi-test-cu checks for).
  ParameterList l = two_targets();
  Limits limits;
  limits.max_targets = 1;
  limits.max_descriptor_list_length = 32;
  expect_sense(refused(build_parameter_list(l), limits), 0x26, 0x06);
  limits.max_targets = 2;
  expect_sense(refused(build_parameter_list(l), limits), 0x1A, 0x00);
}

TEST(ExtendedCopyCodec, ReservedListIdUsageIsInvalidField) {
  Bytes b = build_parameter_list(two_targets());
  b[1] = static_cast<std::uint8_t>((b[1] & ~0x18) | 0x08);  // 01b
  const ListError e = refused(b);
  expect_sense(e, 0x26, 0x00);
  ASSERT_TRUE(e.sense.field_pointer);
  EXPECT_FALSE(e.sense.field_pointer->in_cdb);
  EXPECT_EQ(e.sense.field_pointer->field, 1);
}

TEST(ExtendedCopyCodec, NoListIdentifierUsageRequiresListIdZero) {
  ParameterList l = two_targets();
  l.list_id_usage = ListIdUsage::kNone;
  l.list_id = 5;
  expect_sense(refused(build_parameter_list(l)), 0x26, 0x00);
  l.list_id = 0;
  EXPECT_EQ(parsed(build_parameter_list(l)).list_id_usage, ListIdUsage::kNone);
}

TEST(ExtendedCopyCodec, TargetListLengthNotMultipleOf32IsInvalidField) {
  Bytes b = build_parameter_list(two_targets());
  b[3] = 63;
  b.pop_back();  // keep the list exactly as long as announced
  const ListError e = refused(b);
  expect_sense(e, 0x26, 0x00);
  ASSERT_TRUE(e.sense.field_pointer);
  EXPECT_EQ(e.sense.field_pointer->field, 2);
}

TEST(ExtendedCopyCodec, TooManyTargetDescriptors) {
  ParameterList l;
  Limits limits;
  limits.max_targets = 4;
  for (std::uint8_t i = 0; i < 5; ++i) l.targets.push_back(disk_target(i));
  expect_sense(refused(build_parameter_list(l), limits), 0x26, 0x06);
  l.targets.pop_back();
  EXPECT_EQ(parsed(build_parameter_list(l), limits).targets.size(), 4u);
}

TEST(ExtendedCopyCodec, UnsupportedTargetDescriptorType) {
  Bytes b = build_parameter_list(two_targets());
  for (std::uint8_t type : {0xE0, 0xE1, 0xE5, 0xEA, 0x00}) {
    Bytes c = b;
    c[16 + 32] = type;
    const ListError e = refused(c);
    expect_sense(e, 0x26, 0x07);
    ASSERT_TRUE(e.sense.field_pointer);
    EXPECT_EQ(e.sense.field_pointer->field, 48);
  }
}

TEST(ExtendedCopyCodec, BadIdentificationDescriptorsAreInvalidField) {
  const Bytes b = build_parameter_list(two_targets());
  Bytes c = b;
  c[16 + 1] |= 0x40;  // LU ID TYPE 01b (proxy token)
  expect_sense(refused(c), 0x26, 0x00);
  c = b;
  c[16 + 7] = 21;  // designator longer than the field
  expect_sense(refused(c), 0x26, 0x00);
  c = b;
  c[48 + 28] = 0x01;  // tape FIXED with block length 0
  expect_sense(refused(c), 0x26, 0x00);
  c = b;
  c[48 + 31] = 0x01;  // tape variable with a block length
  expect_sense(refused(c), 0x26, 0x00);
}

TEST(ExtendedCopyCodec, UnsupportedSegmentDescriptorType) {
  ParameterList l = two_targets();
  Segment s;
  s.type = SegmentType::kBlockToBlock;
  s.blocks = 1;
  l.segments.push_back(s);
  const Bytes b = build_parameter_list(l);
  for (std::uint8_t type : {0x03, 0x05, 0x0B, 0x0D, 0x14, 0xBE, 0xC0}) {
    Bytes c = b;
    c[80] = type;
    const ListError e = refused(c);
    expect_sense(e, 0x26, 0x09);
    ASSERT_TRUE(e.sense.field_pointer);
    EXPECT_EQ(e.sense.field_pointer->field, 80);
  }
}

TEST(ExtendedCopyCodec, WrongSegmentDescriptorLength) {
  ParameterList l = two_targets();
  Segment s;
  s.type = SegmentType::kBlockToStream;  // its length is 14h, not 18h
  l.segments.push_back(s);
  Segment w;
  w.type = SegmentType::kWriteFilemarks;
  l.segments.push_back(w);
  Bytes b = build_parameter_list(l);
  b[80 + 3] = 0x18;  // claims 28 bytes: the 0x10 descriptor after fills the rest
  b[80 + 24] = 0;    // make the bytes that follow meaningless
  const ListError e = refused(b);
  expect_sense(e, 0x26, 0x00);
  ASSERT_TRUE(e.sense.field_pointer);
  EXPECT_EQ(e.sense.field_pointer->field, 82);
}

TEST(ExtendedCopyCodec, SegmentRunningPastTheListIsParameterListLengthError) {
  ParameterList l = two_targets();
  Segment s;
  s.type = SegmentType::kBlockToBlock;
  l.segments.push_back(s);
  Bytes b = build_parameter_list(l);
  // Announce two bytes fewer of segments: the descriptor runs past them.
  b[11] = static_cast<std::uint8_t>(b[11] - 2);
  b.resize(b.size() - 2);
  expect_sense(refused(b), 0x1A, 0x00);
  // A segment list ending inside a descriptor header.
  b = build_parameter_list(two_targets());
  b[11] = 3;
  b.insert(b.end(), {0x02, 0x00, 0x00});
  expect_sense(refused(b), 0x1A, 0x00);
}

TEST(ExtendedCopyCodec, TooManySegmentDescriptors) {
  ParameterList l = two_targets();
  Limits limits;
  limits.max_segments = 3;
  Segment s;
  s.type = SegmentType::kBlockToBlock;
  s.blocks = 1;
  for (int i = 0; i < 4; ++i) l.segments.push_back(s);
  expect_sense(refused(build_parameter_list(l), limits), 0x26, 0x08);
  l.segments.pop_back();
  EXPECT_EQ(parsed(build_parameter_list(l), limits).segments.size(), 3u);
}

TEST(ExtendedCopyCodec, InlineDataOverTheLimit) {
  ParameterList l = two_targets();
  Limits limits;
  limits.max_inline_data = 16;
  l.inline_data = Bytes(20, 1);
  expect_sense(refused(build_parameter_list(l), limits), 0x26, 0x0B);
  l.inline_data.resize(16);
  EXPECT_EQ(parsed(build_parameter_list(l), limits).inline_data.size(), 16u);
}

TEST(ExtendedCopyCodec, EmptyDescriptorListsParse) {
  const ParameterList p = parsed(build_parameter_list(ParameterList{}));
  EXPECT_TRUE(p.targets.empty());
  EXPECT_TRUE(p.segments.empty());
  EXPECT_EQ(p.list_id_usage, ListIdUsage::kNone);
}

TEST(ReceiveCopyResultsCodec, CopyStatusRoundTrip) {
  CopyStatus s;
  s.hdd = true;
  s.state = CopyState::kDoneWithErrors;
  s.segments_processed = 0x0102;
  s.transfer_count_units = 0x01;
  s.transfer_count = 0xA0B0C0D0u;
  const Bytes b = encode_copy_status(s);
  ASSERT_EQ(b.size(), 12u);
  EXPECT_EQ(b[3], 8);
  EXPECT_EQ(b[4], 0x82);
  const auto p = parse_copy_status(b);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->hdd);
  EXPECT_EQ(p->state, CopyState::kDoneWithErrors);
  EXPECT_EQ(p->segments_processed, 0x0102);
  EXPECT_EQ(p->transfer_count_units, 1);
  EXPECT_EQ(p->transfer_count, 0xA0B0C0D0u);
  EXPECT_FALSE(parse_copy_status(Bytes(b.begin(), b.begin() + 11)));
  Bytes bad = b;
  bad[4] = 0x05;  // a status the standard does not define
  EXPECT_FALSE(parse_copy_status(bad));
}

TEST(ReceiveCopyResultsCodec, OperatingParametersRoundTrip) {
  OperatingParameters p;
  p.snlid = true;
  p.max_targets = 64;
  p.max_segments = 32;
  p.max_descriptor_list_length = 65536;
  p.max_segment_length = 256u << 20;
  p.max_inline_data = 4096;
  p.max_stream_transfer = 16u << 20;
  p.total_concurrent_copies = 8;
  p.max_concurrent_copies = 8;
  p.data_segment_granularity = 9;
  p.inline_data_granularity = 2;
  p.descriptor_codes = {0x00, 0x01, 0x02, 0x10, 0xE4};
  const Bytes b = encode_operating_parameters(p);
  ASSERT_EQ(b.size(), 49u);
  EXPECT_EQ(b[3], 45);
  EXPECT_EQ(b[43], 5);
  const auto q = parse_operating_parameters(b);
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->snlid);
  EXPECT_EQ(q->max_targets, 64);
  EXPECT_EQ(q->max_segments, 32);
  EXPECT_EQ(q->max_descriptor_list_length, 65536u);
  EXPECT_EQ(q->max_segment_length, 256u << 20);
  EXPECT_EQ(q->max_inline_data, 4096u);
  EXPECT_EQ(q->max_stream_transfer, 16u << 20);
  EXPECT_EQ(q->total_concurrent_copies, 8);
  EXPECT_EQ(q->max_concurrent_copies, 8);
  EXPECT_EQ(q->data_segment_granularity, 9);
  EXPECT_EQ(q->descriptor_codes, p.descriptor_codes);
  // Cut by a small allocation length: the fields still read, the codes cut.
  const auto cut = parse_operating_parameters(std::span(b).first(46));
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->descriptor_codes.size(), 2u);
  EXPECT_FALSE(parse_operating_parameters(std::span(b).first(43)));
}

TEST(ReceiveCopyResultsCodec, FailedSegmentDetailsRoundTrip) {
  FailedSegmentDetails d;
  d.command_status = Status::kCheckCondition;
  d.sense = fixed_sense({SenseKey::kCopyAborted, 0x0D, 0x01});
  const Bytes b = encode_failed_segment_details(d);
  ASSERT_EQ(b.size(), 60u + 18u);
  EXPECT_EQ(b[56], 0x02);
  EXPECT_EQ(b[59], 18);
  const auto p = parse_failed_segment_details(b);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->command_status, Status::kCheckCondition);
  EXPECT_EQ(p->sense, d.sense);
  // Cut by the allocation length: the sense comes back cut, not overrun.
  const auto cut = parse_failed_segment_details(std::span(b).first(64));
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->sense.size(), 4u);
  EXPECT_FALSE(parse_failed_segment_details(std::span(b).first(59)));
}

TEST(CopyAbortedSense, FixedFormatCarriesSegmentResidualAndBothDevicesSense) {
  CopyAbort a;
  a.segment = 0x0203;
  a.residual = 65536;
  SenseSpec eom;
  eom.key = SenseKey::kNoSense;
  eom.eom = true;
  eom.asc = 0x00;
  eom.ascq = 0x02;
  a.destination = CopyAbort::Forwarded{Status::kCheckCondition, fixed_sense(eom)};
  a.source = CopyAbort::Forwarded{Status::kCheckCondition,
                                  fixed_sense({SenseKey::kMediumError, 0x11, 0x00})};
  const Bytes s = copy_aborted_sense(a);
  ASSERT_GE(s.size(), 18u + 2u * 19u);
  EXPECT_EQ(s[0], 0xF0);  // VALID, current, fixed
  EXPECT_EQ(s[2] & 0x0F, 0x0A);
  EXPECT_EQ(s[7], s.size() - 8);
  EXPECT_EQ(s[10], 0x02);
  EXPECT_EQ(s[11], 0x03);
  EXPECT_EQ(s[12], 0x0D);
  EXPECT_EQ(s[13], 0x01);
  EXPECT_EQ(s[8], 18);       // source area right after the standard bytes
  EXPECT_EQ(s[9], 18 + 19);  // then the destination's
  EXPECT_EQ(s[18], 0x02);    // CHECK CONDITION

  // The generic decoder sees a COPY ABORTED with the residual.
  const auto g = decode_sense(s);
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->is(SenseKey::kCopyAborted, 0x0D, 0x01));
  EXPECT_TRUE(g->information_valid);
  EXPECT_EQ(g->information, 65536);

  const auto p = parse_copy_aborted_sense(s);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->key, SenseKey::kCopyAborted);
  EXPECT_EQ(p->segment, 0x0203);
  ASSERT_TRUE(p->residual);
  EXPECT_EQ(*p->residual, 65536u);
  ASSERT_TRUE(p->source);
  ASSERT_TRUE(p->destination);
  const auto src = decode_sense(p->source->sense);
  ASSERT_TRUE(src);
  EXPECT_TRUE(src->is(SenseKey::kMediumError, 0x11, 0x00));
  const auto dst = decode_sense(p->destination->sense);
  ASSERT_TRUE(dst);
  EXPECT_TRUE(dst->eom);
  EXPECT_EQ(p->destination->status, Status::kCheckCondition);
}

TEST(CopyAbortedSense, WithoutForwardedSenseOrResidual) {
  CopyAbort a;
  a.asc = 0x08;
  a.ascq = 0x04;
  a.segment = 1;
  const Bytes s = copy_aborted_sense(a);
  EXPECT_EQ(s.size(), 18u);
  EXPECT_EQ(s[0], 0x70);
  EXPECT_EQ(s[8], 0);
  EXPECT_EQ(s[9], 0);
  const auto p = parse_copy_aborted_sense(s);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->residual);
  EXPECT_FALSE(p->source);
  EXPECT_FALSE(p->destination);
  EXPECT_EQ(p->asc, 0x08);
  EXPECT_EQ(p->segment, 1);
}

TEST(CopyAbortedSense, LongForwardedSenseIsCutToFit252Bytes) {
  CopyAbort a;
  Bytes big(200, 0);
  big[0] = 0x70;
  big[2] = 0x03;
  big[7] = 192;
  big[12] = 0x11;
  a.source = CopyAbort::Forwarded{Status::kCheckCondition, big};
  a.destination = CopyAbort::Forwarded{Status::kCheckCondition, big};
  const Bytes s = copy_aborted_sense(a);
  EXPECT_LE(s.size(), 252u);
  const auto p = parse_copy_aborted_sense(s);
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->source);
  ASSERT_TRUE(p->destination);
  // Each cut sense says its own (shorter) length, and still decodes.
  EXPECT_EQ(p->source->sense.size(), std::size_t{p->source->sense[7]} + 8);
  const auto d = decode_sense(p->destination->sense);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->asc, 0x11);
}

TEST(CopyAbortedSense, OffsetsOutsideTheSenseAreIgnored) {
  Bytes s = copy_aborted_sense(CopyAbort{});
  s[8] = 200;  // points past the end
  s[9] = 5;    // points into the standard bytes
  const auto p = parse_copy_aborted_sense(s);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->source);
  EXPECT_FALSE(p->destination);
}

TEST(CopyAbortedSense, DescriptorFormatIsReadToo) {
  // 72h, COPY ABORTED 0D/01; information (residual 4096); command-specific
  // (segment 3); forwarded sense from the destination.
  const Bytes dst = fixed_sense({SenseKey::kVolumeOverflow, 0x00, 0x02});
  Bytes s = {0x72, 0x0A, 0x0D, 0x01, 0, 0, 0, 0};
  const Bytes info = {0x00, 0x0A, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x00};
  const Bytes csi = {0x01, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x03};
  Bytes fwd = {0x0C, static_cast<std::uint8_t>(2 + dst.size()), 0x02, 0x02};
  fwd.insert(fwd.end(), dst.begin(), dst.end());
  for (const Bytes* d : std::initializer_list<const Bytes*>{&info, &csi, &fwd})
    s.insert(s.end(), d->begin(), d->end());
  s[7] = static_cast<std::uint8_t>(s.size() - 8);
  const auto p = parse_copy_aborted_sense(s);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->key, SenseKey::kCopyAborted);
  ASSERT_TRUE(p->residual);
  EXPECT_EQ(*p->residual, 4096u);
  EXPECT_EQ(p->segment, 3);
  EXPECT_FALSE(p->source);
  ASSERT_TRUE(p->destination);
  EXPECT_EQ(p->destination->sense, dst);
  // A descriptor whose length runs past the sense is not read.
  Bytes cut = s;
  cut.resize(s.size() - 4);
  cut[7] = static_cast<std::uint8_t>(cut.size() - 8);
  const auto q = parse_copy_aborted_sense(cut);
  ASSERT_TRUE(q);
  EXPECT_FALSE(q->destination);
}

TEST(CopyAbortedSense, NoSenseIsNullopt) {
  EXPECT_FALSE(parse_copy_aborted_sense(Bytes{}));
  EXPECT_FALSE(parse_copy_aborted_sense(Bytes(8, 0)));
  EXPECT_FALSE(parse_copy_aborted_sense(Bytes{0x70, 0, 0, 0, 0, 0, 0, 0, 0}));
}

}  // namespace
}  // namespace scsi::xcopy
