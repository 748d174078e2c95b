// The CopyEngine and the emulated copy manager LUN against real emulated
// units: SbcDisk over scratch files, SscDrive with cartridges of a
// VirtualLibrary, FaultInjectingDevice around them where a failure is
// needed.  Every sense the engine produces is checked field by field.

#include "scsi/copy_engine.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <new>
#include <thread>

#include "emu_support.h"
#include "scsi/cdb.h"
#include "scsi/emu/copy_manager.h"
#include "scsi/emu/sbc_disk.h"
#include "scsi/fault.h"
#include "scsi/parse.h"
#include "scsi/xcopy.h"

namespace scsi {
namespace {

using testing::Exec;
using testing::run;
using xcopy::CopyAbort;
using xcopy::Segment;
using xcopy::SegmentType;

constexpr std::uint8_t kRead16 = 0x88;
constexpr std::uint8_t kWrite16 = 0x8A;
constexpr std::uint8_t kRead6 = 0x08;
constexpr std::uint8_t kWrite6 = 0x0A;
constexpr std::uint8_t kWriteFilemarks6 = 0x10;

// Disks, a library with one loaded drive, and a resolver over them.
class Rig {
 public:
  explicit Rig(std::uint64_t tape_capacity = 64u << 20, std::uint64_t early_warning = 60u << 20) {
    std::string error;
    lib_ = emu::VirtualLibrary::open(
        testing::library_spec(dir_.path() / "vtl", 2, tape_capacity, early_warning),
        testing::test_installation_id(), error);
    EXPECT_TRUE(lib_) << error;
    drive_ = lib_->drives()[0];
    EXPECT_TRUE(run(*lib_->changer(), cdb::move_medium(0, 1024, 256, false)).good());
    run(*drive_, cdb::test_unit_ready());  // the unit attention of the load
    tape_ = std::make_shared<emu::EmulatedDevice>(drive_, "tape");
    devices_[drive_->identity().naa] = tape_;
  }

  std::shared_ptr<emu::SbcDisk> disk(const std::string& name, std::uint64_t size,
                                     std::uint32_t block_length = 512) {
    std::string error;
    auto d =
        emu::SbcDisk::open(emu::make_identity(0x00, "DISK", testing::test_installation_id(), name),
                           dir_.path() / (name + ".img"), size, block_length, error);
    EXPECT_TRUE(d) << error;
    devices_[d->identity().naa] = std::make_shared<emu::EmulatedDevice>(d, name);
    return d;
  }

  // Puts `device` in the place of the unit `naa` names (a fault wrapper).
  void route(const Bytes& naa, std::shared_ptr<Device> device) {
    devices_[naa] = std::move(device);
  }
  std::shared_ptr<Device> device(const Bytes& naa) { return devices_.at(naa); }

  xcopy::Resolver resolver() {
    return [this](const xcopy::TargetDescriptor& d) -> std::shared_ptr<Device> {
      const auto it = devices_.find(d.designator);
      return it == devices_.end() ? nullptr : it->second;
    };
  }

  // The library's second drive, loaded with the second cartridge.
  std::shared_ptr<Device> second_tape() {
    drive2_ = lib_->drives()[1];
    EXPECT_TRUE(run(*lib_->changer(), cdb::move_medium(0, 1025, 257, false)).good());
    run(*drive2_, cdb::test_unit_ready());
    auto d = std::make_shared<emu::EmulatedDevice>(drive2_, "tape2");
    devices_[drive2_->identity().naa] = d;
    return d;
  }
  emu::SscDrive& drive2() { return *drive2_; }

  const std::filesystem::path& dir() const { return dir_.path(); }
  emu::SscDrive& drive() { return *drive_; }
  const std::shared_ptr<Device>& tape() { return tape_; }

 private:
  testing::ScratchDir dir_{"xcopy"};
  std::unique_ptr<emu::VirtualLibrary> lib_;
  std::shared_ptr<emu::SscDrive> drive_, drive2_;
  std::shared_ptr<Device> tape_;
  std::map<Bytes, std::shared_ptr<Device>> devices_;
};

xcopy::TargetDescriptor describe(const emu::LogicalUnit& unit, bool pad = false, bool fixed = false,
                                 std::uint32_t block_length = 0) {
  xcopy::TargetDescriptor d;
  d.peripheral_type = unit.identity().peripheral_type;
  d.designator = unit.identity().naa;
  d.designator_type = 3;
  d.code_set = 1;
  d.pad = pad;
  d.fixed = fixed;
  d.block_length = block_length;
  return d;
}

struct Outcome {
  Result result;
  std::optional<Sense> sense;
  std::optional<CopyAbort> abort;
  bool good() const { return result.ok(); }
  bool is(SenseKey k, std::uint8_t asc, std::uint8_t ascq) const {
    return sense && sense->is(k, asc, ascq);
  }
};

Outcome finish(Result r) {
  Outcome o;
  o.result = std::move(r);
  if (o.result.check_condition()) {
    o.sense = decode_sense(o.result.sense);
    if (o.sense && o.sense->key == SenseKey::kCopyAborted) {
      o.abort = xcopy::parse_copy_aborted_sense(o.result.sense);
    }
  }
  return o;
}

Outcome copy(xcopy::CopyEngine& engine, const xcopy::ParameterList& list,
             const std::string& initiator = {}) {
  const Bytes params = xcopy::build_parameter_list(list);
  return finish(engine.extended_copy(
      xcopy::extended_copy_cdb(static_cast<std::uint32_t>(params.size())), params, initiator));
}

xcopy::ParameterList make_list(std::vector<xcopy::TargetDescriptor> targets,
                               std::vector<Segment> segments,
                               xcopy::ListIdUsage usage = xcopy::ListIdUsage::kNone,
                               std::uint8_t id = 0) {
  xcopy::ParameterList l;
  l.list_id = id;
  l.list_id_usage = usage;
  l.targets = std::move(targets);
  l.segments = std::move(segments);
  return l;
}

// Block-number-stamped pattern: every 512 bytes start with their absolute
// block number, then bytes that depend on it, so misplaced data shows.
Bytes stamped(std::uint64_t first_block, std::size_t blocks) {
  Bytes b(blocks * 512);
  for (std::size_t i = 0; i < blocks; ++i) {
    const std::uint64_t n = first_block + i;
    std::uint8_t* p = b.data() + i * 512;
    std::memcpy(p, &n, 8);
    for (std::size_t j = 8; j < 512; ++j) p[j] = static_cast<std::uint8_t>(n * 31 + j * 7 + 1);
  }
  return b;
}

void fill(Device& disk, std::uint64_t lba, const Bytes& data) {
  Command c;
  c.cdb = cdb::write16(lba, static_cast<std::uint32_t>(data.size() / 512), false);
  c.direction = Direction::kOut;
  c.data_out = data;
  ASSERT_TRUE(disk.execute(c).ok());
}

Bytes read_disk(Device& disk, std::uint64_t lba, std::uint32_t blocks, std::uint32_t bl = 512) {
  Bytes b(std::size_t{blocks} * bl);
  Command c;
  c.cdb = cdb::read16(lba, blocks, false);
  c.direction = Direction::kIn;
  c.data_in = b;
  EXPECT_TRUE(disk.execute(c).ok());
  return b;
}

// The records (and filemarks, as empty optionals) from the head to EOD.
std::vector<std::optional<Bytes>> read_tape(Device& tape) {
  std::vector<std::optional<Bytes>> out;
  Bytes buf(8u << 20);
  for (int guard = 0; guard < 100000; ++guard) {
    const Result r = testing::execute(tape, cdb::read6(false, true, 8u << 20), buf);
    if (r.ok()) {
      out.emplace_back(Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(r.data_in)));
      continue;
    }
    const auto s = decode_sense(r.sense);
    if (s && s->filemark) {
      out.emplace_back(std::nullopt);
      continue;
    }
    break;  // BLANK CHECK: end of data
  }
  return out;
}

void rewind(Device& tape) { ASSERT_TRUE(testing::execute(tape, cdb::rewind(false)).ok()); }

Bytes concat(const std::vector<std::optional<Bytes>>& records) {
  Bytes all;
  for (const auto& r : records)
    if (r) all.insert(all.end(), r->begin(), r->end());
  return all;
}

Segment block_to_stream(std::uint16_t src, std::uint16_t dst, std::uint64_t lba,
                        std::uint32_t blocks, std::uint32_t record, bool cat = false) {
  Segment s;
  s.type = SegmentType::kBlockToStream;
  s.source = src;
  s.destination = dst;
  s.lba = lba;
  s.blocks = blocks;
  s.stream_length = record;
  s.cat = cat;
  return s;
}

Segment stream_to_block(std::uint16_t src, std::uint16_t dst, std::uint64_t lba,
                        std::uint32_t blocks, std::uint32_t record, bool cat = false) {
  Segment s = block_to_stream(src, dst, lba, blocks, record, cat);
  s.type = SegmentType::kStreamToBlock;
  return s;
}

Segment block_to_block(std::uint16_t src, std::uint16_t dst, std::uint64_t from, std::uint64_t to,
                       std::uint32_t blocks) {
  Segment s;
  s.type = SegmentType::kBlockToBlock;
  s.source = src;
  s.destination = dst;
  s.lba = from;
  s.destination_lba = to;
  s.blocks = blocks;
  return s;
}

class ExtendedCopy : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = rig_.disk("a", 64u << 20);
    b_ = rig_.disk("b", 64u << 20);
    fill(*rig_.device(a_->identity().naa), 0, stamped(0, 8192));
  }
  xcopy::CopyEngine engine(xcopy::EngineSettings s = {}) { return {rig_.resolver(), s}; }
  Device& A() { return *rig_.device(a_->identity().naa); }
  Device& B() { return *rig_.device(b_->identity().naa); }

  Rig rig_;
  std::shared_ptr<emu::SbcDisk> a_, b_;
};

// ---- parameter list errors (libiscsi's ExtendedCopy.ParamHdr/DescrLimits/DescrType) ----

TEST_F(ExtendedCopy, ParameterListLengthZeroIsGood) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  EXPECT_TRUE(e.extended_copy(xcopy::extended_copy_cdb(0), {}).ok());
}

TEST_F(ExtendedCopy, TruncatedListIsParameterListLengthError) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  const Bytes params = xcopy::build_parameter_list(
      make_list({describe(*a_)}, {block_to_block(0, 0, 0, 4096, 2048)}));
  // The CDB announces more than the data-out holds.
  Outcome o = finish(e.extended_copy(
      xcopy::extended_copy_cdb(static_cast<std::uint32_t>(params.size() + 1)), params));
  EXPECT_TRUE(o.is(SenseKey::kIllegalRequest, 0x1A, 0x00));
  // A list cut inside the target descriptor and inside the segment.
  for (const std::size_t cut : {std::size_t{16 + 31}, params.size() - 1}) {
    const std::span<const std::uint8_t> part(params.data(), cut);
    o = finish(e.extended_copy(xcopy::extended_copy_cdb(static_cast<std::uint32_t>(cut)), part));
    EXPECT_TRUE(o.is(SenseKey::kIllegalRequest, 0x1A, 0x00)) << cut;
    EXPECT_FALSE(o.sense && o.sense->information_valid);
  }
}

TEST_F(ExtendedCopy, OtherServiceActionIsInvalidFieldInCdb) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  Bytes cdb = xcopy::extended_copy_cdb(0);
  cdb[1] = 0x01;  // LID4
  const Outcome o = finish(e.extended_copy(cdb, {}));
  ASSERT_TRUE(o.is(SenseKey::kIllegalRequest, 0x24, 0x00));
  EXPECT_TRUE(o.sense->sense_key_specific_valid);
}

TEST_F(ExtendedCopy, TooManyTargetsAndSegmentsAre2606And2608) {
  xcopy::EngineSettings s;
  s.limits.max_targets = 2;
  s.limits.max_segments = 1;
  xcopy::CopyEngine e(rig_.resolver(), s);
  Outcome o = copy(e, make_list({describe(*a_), describe(*a_), describe(*b_)},
                                {block_to_block(0, 0, 0, 4096, 1)}));
  EXPECT_TRUE(o.is(SenseKey::kIllegalRequest, 0x26, 0x06));
  o = copy(e, make_list({describe(*a_)},
                        {block_to_block(0, 0, 0, 4096, 1), block_to_block(0, 0, 0, 4096, 1)}));
  EXPECT_TRUE(o.is(SenseKey::kIllegalRequest, 0x26, 0x08));
}

TEST_F(ExtendedCopy, UnsupportedDescriptorTypesAre2607And2609) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  Bytes params =
      xcopy::build_parameter_list(make_list({describe(*a_)}, {block_to_block(0, 0, 0, 4096, 1)}));
  Bytes t = params;
  t[16] = 0xE0;  // Fibre Channel N_Port_Name target descriptor
  Outcome o =
      finish(e.extended_copy(xcopy::extended_copy_cdb(static_cast<std::uint32_t>(t.size())), t));
  EXPECT_TRUE(o.is(SenseKey::kIllegalRequest, 0x26, 0x07));
  Bytes g = params;
  g[16 + 32] = 0x03;  // stream->stream: not offered
  o = finish(e.extended_copy(xcopy::extended_copy_cdb(static_cast<std::uint32_t>(g.size())), g));
  EXPECT_TRUE(o.is(SenseKey::kIllegalRequest, 0x26, 0x09));
}

// ---- failures while segments run ----

TEST_F(ExtendedCopy, BadTargetIndexIsUnreachableCopyTarget) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  const Outcome o = copy(e, make_list({describe(*a_)}, {block_to_block(0, 1, 0, 4096, 2048)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x08, 0x04));
  ASSERT_TRUE(o.abort);
  EXPECT_EQ(o.abort->segment, 0);
  EXPECT_FALSE(o.abort->residual);
}

TEST_F(ExtendedCopy, UnknownDesignatorIsCopyTargetDeviceNotReachable) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  xcopy::TargetDescriptor ghost = describe(*a_);
  ghost.designator[15] ^= 0xFF;
  const Outcome o = copy(e, make_list({describe(*a_), ghost}, {block_to_block(0, 0, 0, 4096, 8),
                                                               block_to_block(0, 1, 0, 0, 8)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x02));
  EXPECT_EQ(o.abort->segment, 1);  // the first segment ran
}

TEST_F(ExtendedCopy, WrongTypeOrBlockLengthIsIncorrectCopyTargetDeviceType) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  xcopy::TargetDescriptor as_tape = describe(*a_);
  as_tape.peripheral_type = 0x01;
  Outcome o = copy(e, make_list({as_tape, describe(*b_)}, {block_to_block(0, 1, 0, 0, 8)}));
  EXPECT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x03));
  o = copy(e, make_list({describe(*a_, false, false, 4096), describe(*b_)},
                        {block_to_block(0, 1, 0, 0, 8)}));
  EXPECT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x03));
}

TEST_F(ExtendedCopy, TapeSegmentAimedAtDiskIsInvalidOperationForCopyDestination) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  Segment fm;
  fm.type = SegmentType::kWriteFilemarks;
  fm.destination = 0;
  fm.count = 1;
  const Outcome o = copy(e, make_list({describe(*a_)}, {fm}));
  EXPECT_TRUE(o.is(SenseKey::kCopyAborted, 0x26, 0x0C));
}

TEST_F(ExtendedCopy, CopyPastCapacityForwardsLbaOutOfRange) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  const std::uint64_t last = a_->blocks() - 1;
  const Outcome o = copy(e, make_list({describe(*a_)}, {block_to_block(0, 0, 0, last, 2048)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01));
  ASSERT_TRUE(o.abort && o.abort->destination);
  const auto fwd = decode_sense(o.abort->destination->sense);
  ASSERT_TRUE(fwd);
  EXPECT_TRUE(fwd->is(SenseKey::kIllegalRequest, 0x21, 0x00));
  EXPECT_FALSE(o.abort->residual);  // nothing of the segment was written
}

TEST_F(ExtendedCopy, BlockToBlock2048BlocksWithListIdUsageDiscard) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  const Outcome o =
      copy(e, make_list({describe(*a_), describe(*b_)}, {block_to_block(0, 1, 10, 100, 2048)},
                        xcopy::ListIdUsage::kDiscard, 1));
  ASSERT_TRUE(o.good()) << describe_result(o.result);
  EXPECT_EQ(read_disk(B(), 100, 2048), stamped(10, 2048));
  // 10b keeps nothing after success.
  Bytes st(12);
  const Result r = e.receive_copy_results(
      xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kCopyStatus, 1, 12), st);
  EXPECT_TRUE(finish(r).is(SenseKey::kIllegalRequest, 0x24, 0x00));
}

TEST_F(ExtendedCopy, BlockToBlockDestinationCountAcrossBlockSizes) {
  auto big = rig_.disk("big", 16u << 20, 4096);
  xcopy::CopyEngine e(rig_.resolver(), {});
  // DC=1: 3 destination blocks of 4096 = 24 source blocks of 512.
  Segment s = block_to_block(0, 1, 0, 5, 3);
  s.dc = true;
  const Outcome o = copy(e, make_list({describe(*a_), describe(*big)}, {s}));
  ASSERT_TRUE(o.good()) << describe_result(o.result);
  EXPECT_EQ(read_disk(*rig_.device(big->identity().naa), 5, 3, 4096), stamped(0, 24));
}

TEST_F(ExtendedCopy, BlockOffsetToBlockOffsetKeepsTheBytesAround) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  const Bytes before = read_disk(A(), 200, 4);
  Segment s;
  s.type = SegmentType::kBlockOffsetToBlockOffset;
  s.source = 0;
  s.destination = 0;
  s.byte_count = 1000;
  s.lba = 3;
  s.byte_offset = 100;
  s.destination_lba = 200;
  s.destination_byte_offset = 300;
  const Outcome o = copy(e, make_list({describe(*a_)}, {s}));
  ASSERT_TRUE(o.good()) << describe_result(o.result);
  Bytes want = before;
  const Bytes src = stamped(0, 8);
  std::copy_n(src.begin() + 3 * 512 + 100, 1000, want.begin() + 300);
  EXPECT_EQ(read_disk(A(), 200, 4), want);
}

TEST_F(ExtendedCopy, UnexpectedInexactSegmentWithoutPad) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  // 3 blocks into 1000-byte records: 536 bytes remain, CAT=0, no PAD.
  const Outcome o = copy(
      e, make_list({describe(*a_), describe(rig_.drive())}, {block_to_stream(0, 1, 0, 3, 1000)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x26, 0x0A));
  rewind(*rig_.tape());
  EXPECT_EQ(read_tape(*rig_.tape()).size(), 1u);  // the whole record went out
}

// ---- tape segments ----

TEST_F(ExtendedCopy, BlockToStreamVariableRecordsPadsTheLast) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  const Outcome o = copy(e, make_list({describe(*a_, true), describe(rig_.drive(), true)},
                                      {block_to_stream(0, 1, 0, 20, 4000)}));
  ASSERT_TRUE(o.good()) << describe_result(o.result);
  rewind(*rig_.tape());
  const auto recs = read_tape(*rig_.tape());
  ASSERT_EQ(recs.size(), 3u);  // 10240 bytes: 4000, 4000, 2240 + zeros
  for (const auto& r : recs) EXPECT_EQ(r->size(), 4000u);
  Bytes want = stamped(0, 20);
  want.resize(12000, 0);
  EXPECT_EQ(concat(recs), want);
}

TEST_F(ExtendedCopy, CatCarriesResidueIntoTheNextSegment) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  // 3 + 5 blocks = 4096 bytes in 1024-byte records: 1536 + 2560.
  const Outcome o = copy(
      e, make_list({describe(*a_), describe(rig_.drive())},
                   {block_to_stream(0, 1, 7, 3, 1024, true), block_to_stream(0, 1, 10, 5, 1024)}));
  ASSERT_TRUE(o.good()) << describe_result(o.result);
  rewind(*rig_.tape());
  const auto recs = read_tape(*rig_.tape());
  EXPECT_EQ(recs.size(), 4u);
  EXPECT_EQ(concat(recs), stamped(7, 8));
}

TEST_F(ExtendedCopy, StreamToBlockAndStreamToBlockOffset) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  const Bytes data = stamped(500, 16);
  for (std::size_t i = 0; i < 4; ++i) {
    const std::span<const std::uint8_t> rec(data.data() + i * 2048, 2048);
    ASSERT_TRUE(testing::execute(*rig_.tape(), cdb::write6(false, 2048), {}, rec).ok());
  }
  rewind(*rig_.tape());
  const Bytes around = read_disk(B(), 40, 3);
  Segment s9;
  s9.type = SegmentType::kStreamToBlockOffset;
  s9.source = 1;
  s9.destination = 0;
  s9.stream_length = 2048;
  s9.byte_count = 700;
  s9.lba = 40;
  s9.byte_offset = 500;
  // 01h: 8 blocks from two records; then 09h: 700 bytes of the third
  // record at byte 500 of block 40; its rest is source residue, discarded
  // by the source's PAD.
  const Outcome o = copy(e, make_list({describe(*b_), describe(rig_.drive(), true)},
                                      {stream_to_block(1, 0, 0, 8, 2048), s9}));
  ASSERT_TRUE(o.good()) << describe_result(o.result);
  EXPECT_EQ(read_disk(B(), 0, 8), Bytes(data.begin(), data.begin() + 4096));
  Bytes want = around;
  std::copy_n(data.begin() + 4096, 700, want.begin() + 500);
  EXPECT_EQ(read_disk(B(), 40, 3), want);
}

TEST_F(ExtendedCopy, BlockOffsetToStreamAndInlineToStream) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  xcopy::ParameterList l = make_list({describe(*a_, true), describe(rig_.drive(), true)}, {});
  l.inline_data = Bytes{'H', 'D', 'R', '1', 1, 2, 3, 4};
  Segment in;
  in.type = SegmentType::kInlineToStream;
  in.destination = 1;
  in.stream_length = 8;
  in.inline_offset = 0;
  in.byte_count = 8;
  Segment s8;
  s8.type = SegmentType::kBlockOffsetToStream;
  s8.source = 0;
  s8.destination = 1;
  s8.stream_length = 512;
  s8.byte_count = 1000;
  s8.lba = 2;
  s8.byte_offset = 10;
  l.segments = {in, s8};
  const Outcome o = copy(e, l);
  ASSERT_TRUE(o.good()) << describe_result(o.result);
  rewind(*rig_.tape());
  const auto recs = read_tape(*rig_.tape());
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(*recs[0], l.inline_data);
  const Bytes src = stamped(0, 8);
  Bytes want(src.begin() + 2 * 512 + 10, src.begin() + 2 * 512 + 1010);
  want.resize(1024, 0);
  EXPECT_EQ(Bytes(recs[1]->begin(), recs[1]->end()), Bytes(want.begin(), want.begin() + 512));
  EXPECT_EQ(*recs[2], Bytes(want.begin() + 512, want.end()));
}

TEST_F(ExtendedCopy, StreamToDiscardSpaceLocateAndFilemarks) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  for (int i = 0; i < 4; ++i) {
    const Bytes rec = testing::pattern(1000, static_cast<std::uint32_t>(i));
    ASSERT_TRUE(testing::execute(*rig_.tape(), cdb::write6(false, 1000), {}, rec).ok());
  }
  Segment loc;
  loc.type = SegmentType::kLocate;
  loc.destination = 1;
  loc.logical_object = 1;
  Segment disc;
  disc.type = SegmentType::kStreamToDiscard;
  disc.source = 1;
  disc.stream_length = 1000;
  disc.byte_count = 1000;
  Segment sp;
  sp.type = SegmentType::kSpace;
  sp.destination = 1;
  sp.space_code = 3;  // end of data
  Segment fm;
  fm.type = SegmentType::kWriteFilemarks;
  fm.destination = 1;
  fm.count = 2;
  const Outcome o =
      copy(e, make_list({describe(*a_), describe(rig_.drive())}, {loc, disc, sp, fm}));
  ASSERT_TRUE(o.good()) << describe_result(o.result);
  Bytes pos(32);
  ASSERT_TRUE(
      testing::execute(*rig_.tape(), cdb::read_position(cdb::ReadPositionForm::kLong), pos).ok());
  EXPECT_EQ(parse::read_position_long(pos)->logical_object, 6u);  // 4 records + 2 filemarks
  // Locate 1 + discard one record: the head was at 2 before SPACE.
  ASSERT_TRUE(testing::execute(*rig_.tape(), cdb::locate10(1, false, false, 0)).ok());
  const auto recs = read_tape(*rig_.tape());
  EXPECT_EQ(recs.size(), 5u);
}

TEST_F(ExtendedCopy, VerifyTargetWithTurForwardsNotReady) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  Segment v;
  v.type = SegmentType::kVerifyTarget;
  v.source = 0;
  v.tur = true;
  Outcome o = copy(e, make_list({describe(rig_.drive())}, {v}));
  ASSERT_TRUE(o.good());
  std::string error;
  auto cart = rig_.drive().remove(error);
  ASSERT_TRUE(cart) << error;
  o = copy(e, make_list({describe(rig_.drive())}, {v}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01));
  ASSERT_TRUE(o.abort->source);
  EXPECT_TRUE(decode_sense(o.abort->source->sense)->is(SenseKey::kNotReady, 0x3A, 0x00));
}

TEST_F(ExtendedCopy, TapeImageCopyKeepsRecordSizesAndFilemarks) {
  // Source: the first drive; destination: the second, with the other cartridge.
  auto src = rig_.tape();
  auto dst = rig_.second_tape();
  std::vector<Bytes> recs = {testing::pattern(100, 1), testing::pattern(70000, 2),
                             testing::pattern(3, 3)};
  ASSERT_TRUE(testing::execute(*src, cdb::write6(false, 100), {}, recs[0]).ok());
  ASSERT_TRUE(testing::execute(*src, cdb::write6(false, 70000), {}, recs[1]).ok());
  ASSERT_TRUE(testing::execute(*src, cdb::write_filemarks6(1, false)).ok());
  ASSERT_TRUE(testing::execute(*src, cdb::write6(false, 3), {}, recs[2]).ok());
  ASSERT_TRUE(testing::execute(*src, cdb::write_filemarks6(2, false)).ok());
  ASSERT_TRUE(
      testing::execute(*src, cdb::write6(false, 100), {}, recs[0]).ok());  // after two filemarks
  rewind(*src);
  xcopy::CopyEngine e(rig_.resolver(), {});
  Segment img;
  img.type = SegmentType::kTapeImageCopy;
  img.source = 0;
  img.destination = 1;
  img.count = 2;  // stop after two consecutive filemarks
  const Outcome o = copy(e, make_list({describe(rig_.drive()), describe(rig_.drive2())}, {img}));
  ASSERT_TRUE(o.good()) << describe_result(o.result);
  rewind(*dst);
  const auto got = read_tape(*dst);
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(*got[0], recs[0]);
  EXPECT_EQ(*got[1], recs[1]);
  EXPECT_FALSE(got[2]);
  EXPECT_EQ(*got[3], recs[2]);
  EXPECT_FALSE(got[4]);
  EXPECT_FALSE(got[5]);
}

TEST_F(ExtendedCopy, ShortRecordWhileReadingForwardsTheSourceSense) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  const Bytes rec = testing::pattern(1000, 9);
  ASSERT_TRUE(testing::execute(*rig_.tape(), cdb::write6(false, 1000), {}, rec).ok());
  ASSERT_TRUE(testing::execute(*rig_.tape(), cdb::write_filemarks6(1, false)).ok());
  rewind(*rig_.tape());
  // Records of 1024 asked for: the 1000-byte one is short (ILI).
  Outcome o = copy(
      e, make_list({describe(*b_), describe(rig_.drive())}, {stream_to_block(1, 0, 0, 2, 1024)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01));
  ASSERT_TRUE(o.abort->source);
  auto fwd = decode_sense(o.abort->source->sense);
  EXPECT_TRUE(fwd->ili);
  EXPECT_EQ(fwd->information, 24);
  // Then the filemark.
  o = copy(e,
           make_list({describe(*b_), describe(rig_.drive())}, {stream_to_block(1, 0, 0, 2, 1024)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01));
  fwd = decode_sense(o.abort->source->sense);
  EXPECT_TRUE(fwd->filemark);
}

TEST_F(ExtendedCopy, EarlyWarningEndsTheCopyWithTheExactResidual) {
  // A cartridge of 8 MiB with early warning at 6 MiB.
  Rig small(8u << 20, 6u << 20);
  auto src = small.disk("src", 16u << 20);
  fill(*small.device(src->identity().naa), 0, stamped(0, 20480));  // 10 MiB
  xcopy::CopyEngine e(small.resolver(), {});
  Segment s;
  s.type = SegmentType::kBlockOffsetToStream;
  s.source = 0;
  s.destination = 1;
  s.stream_length = 256u << 10;
  s.byte_count = 10u << 20;
  const Outcome o = copy(e, make_list({describe(*src), describe(small.drive())}, {s}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01));
  ASSERT_TRUE(o.abort && o.abort->destination && o.abort->residual);
  const auto fwd = decode_sense(o.abort->destination->sense);
  EXPECT_TRUE(fwd->eom);
  EXPECT_TRUE(fwd->is(SenseKey::kNoSense, 0x00, 0x02));
  EXPECT_EQ(o.abort->segment, 0);
  rewind(*small.tape());
  const auto recs = read_tape(*small.tape());
  const std::uint64_t on_tape = recs.size() * (256u << 10);
  EXPECT_GE(on_tape, 6u << 20);  // the WRITE that reached early warning counts
  EXPECT_EQ(*o.abort->residual, (10u << 20) - on_tape);
  const Bytes all = stamped(0, 20480);
  EXPECT_EQ(concat(recs), Bytes(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(on_tape)));
}

TEST_F(ExtendedCopy, MediumErrorMidSegmentForwardsSourceSenseAndResidual) {
  auto faulty = std::make_shared<FaultInjectingDevice>(rig_.device(a_->identity().naa));
  rig_.route(a_->identity().naa, faulty);
  xcopy::EngineSettings st;
  st.chunk_bytes = 256u << 10;
  xcopy::CopyEngine e(rig_.resolver(), st);
  // The third READ(16) fails: two chunks (512 KiB, 8 records) reach the tape.
  faulty->sense_on_opcode(kRead16, 3, {.key = SenseKey::kMediumError, .asc = 0x11, .ascq = 0x00});
  const Outcome o =
      copy(e, make_list({describe(*a_), describe(rig_.drive())},
                        {block_to_stream(0, 1, 0, 4096, 64u << 10)}, xcopy::ListIdUsage::kHold, 7));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01));
  ASSERT_TRUE(o.abort->source);
  EXPECT_TRUE(decode_sense(o.abort->source->sense)->is(SenseKey::kMediumError, 0x11, 0x00));
  ASSERT_TRUE(o.abort->residual);
  EXPECT_EQ(*o.abort->residual, (2u << 20) - (512u << 10));  // bytes: variable-mode tape
  rewind(*rig_.tape());
  EXPECT_EQ(read_tape(*rig_.tape()).size(), 8u);
  // FAILED SEGMENT DETAILS returns the same, once.
  Bytes fsd(300);
  const auto cdb =
      xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kFailedSegmentDetails, 7, 300);
  Result r = e.receive_copy_results(cdb, fsd);
  ASSERT_TRUE(r.ok());
  const auto d = xcopy::parse_failed_segment_details(std::span(fsd).first(r.data_in));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->command_status, Status::kCheckCondition);
  EXPECT_EQ(d->sense, o.result.sense);
  Bytes st_buf(12);
  r = e.receive_copy_results(
      xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kCopyStatus, 7, 12), st_buf);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(xcopy::parse_copy_status(st_buf)->state, xcopy::CopyState::kDoneWithErrors);
  r = e.receive_copy_results(cdb, fsd);
  EXPECT_TRUE(finish(r).is(SenseKey::kIllegalRequest, 0x24, 0x00));  // discarded once read
}

TEST_F(ExtendedCopy, TransportErrorIsThirdPartyDeviceFailureWithoutSense) {
  auto faulty = std::make_shared<FaultInjectingDevice>(rig_.device(b_->identity().naa));
  rig_.route(b_->identity().naa, faulty);
  xcopy::CopyEngine e(rig_.resolver(), {});
  faulty->transport_error_on_command(3);  // INQUIRY, READ CAPACITY, then the WRITE
  const Outcome o =
      copy(e, make_list({describe(*a_), describe(*b_)}, {block_to_block(0, 1, 0, 0, 64)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01));
  EXPECT_FALSE(o.abort->source);
  EXPECT_FALSE(o.abort->destination);
}

TEST_F(ExtendedCopy, ListIdInUseIsOperationInProgressAndTooManyCopiesInsufficientResources) {
  auto slow = std::make_shared<FaultInjectingDevice>(rig_.device(a_->identity().naa));
  rig_.route(a_->identity().naa, slow);
  xcopy::EngineSettings st;
  st.max_concurrent_copies = 2;
  st.chunk_bytes = 64u << 10;
  xcopy::CopyEngine e(rig_.resolver(), st);
  slow->delay(std::chrono::milliseconds(20));
  const auto list = make_list({describe(*a_), describe(*b_)}, {block_to_block(0, 1, 0, 0, 4096)},
                              xcopy::ListIdUsage::kHold, 5);
  auto first = std::async(std::launch::async, [&] { return copy(e, list); });
  auto second = std::async(std::launch::async, [&] {
    auto l = list;
    l.list_id = 6;
    return copy(e, l);
  });
  // Wait (bounded) until both run.
  Bytes buf(12);
  for (int i = 0; i < 500; ++i) {
    const Result a = e.receive_copy_results(
        xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kCopyStatus, 5, 12), buf);
    const Result b = e.receive_copy_results(
        xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kCopyStatus, 6, 12), buf);
    if (a.ok() && b.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  Outcome o = copy(e, list);
  EXPECT_TRUE(o.is(SenseKey::kIllegalRequest, 0x00, 0x16));
  auto third = list;
  third.list_id = 9;
  o = copy(e, third);
  EXPECT_TRUE(o.is(SenseKey::kIllegalRequest, 0x55, 0x03));
  slow->delay(std::chrono::milliseconds(0));
  EXPECT_TRUE(first.get().good());
  EXPECT_TRUE(second.get().good());
}

// ---- review fixes: ranges, block lengths, EOM accounting, short data ----

Segment block_offset_to_block_offset(std::uint16_t src, std::uint16_t dst, std::uint64_t from,
                                     std::uint16_t from_offset, std::uint64_t to,
                                     std::uint16_t to_offset, std::uint32_t bytes) {
  Segment s;
  s.type = SegmentType::kBlockOffsetToBlockOffset;
  s.source = src;
  s.destination = dst;
  s.lba = from;
  s.byte_offset = from_offset;
  s.destination_lba = to;
  s.destination_byte_offset = to_offset;
  s.byte_count = bytes;
  return s;
}

// Sets the drive's block length (0: variable mode) with MODE SELECT(6).
void set_block_length(emu::SscDrive& drive, std::uint32_t length) {
  Bytes ms = {0, 0, 0x10, 8, 0, 0, 0, 0, 0, 0, 0, 0};
  ms[9] = static_cast<std::uint8_t>(length >> 16);
  ms[10] = static_cast<std::uint8_t>(length >> 8);
  ms[11] = static_cast<std::uint8_t>(length);
  ASSERT_TRUE(run(drive, cdb::mode_select6(true, false, 12), 0, ms).good());
}

void expect_forwarded_lba_out_of_range(const Outcome& o, bool source) {
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01)) << describe_result(o.result);
  ASSERT_TRUE(o.abort);
  const auto& fw = source ? o.abort->source : o.abort->destination;
  ASSERT_TRUE(fw);
  EXPECT_FALSE(source ? o.abort->destination : o.abort->source);
  const auto fwd = decode_sense(fw->sense);
  ASSERT_TRUE(fwd);
  EXPECT_TRUE(fwd->is(SenseKey::kIllegalRequest, 0x21, 0x00));
  EXPECT_FALSE(o.abort->residual);
}

TEST_F(ExtendedCopy, LbaOverflowIsRefusedBeforeAnyWrite) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  const Bytes low = read_disk(B(), 0, 16);
  // 2^55 * 512 wraps to 0: destination LBA 2^55 + 5 would land on LBA 5.
  const std::uint64_t wrapping = (1ull << 55) + 5;
  Outcome o =
      copy(e, make_list({describe(*a_), describe(*b_)}, {block_to_block(0, 1, 0, wrapping, 8)}));
  expect_forwarded_lba_out_of_range(o, false);
  EXPECT_EQ(o.abort->segment, 0);
  // The byte forms too (LBA x block length + offset), on either side.
  o = copy(e, make_list({describe(*a_), describe(*b_)},
                        {block_offset_to_block_offset(0, 1, 0, 0, wrapping, 10, 100)}));
  expect_forwarded_lba_out_of_range(o, false);
  o = copy(e, make_list({describe(*a_), describe(*b_)},
                        {block_offset_to_block_offset(0, 1, ~std::uint64_t{0}, 0, 0, 0, 100)}));
  expect_forwarded_lba_out_of_range(o, true);
  // A range that starts inside the disk and runs past its end: nothing of
  // it is written, not even the blocks that exist.
  const std::uint64_t last = b_->blocks() - 1;
  const Bytes tail = read_disk(B(), last - 3, 4);
  o = copy(e, make_list({describe(*a_), describe(*b_)},
                        {block_to_block(0, 1, 0, 0, 4), block_to_block(0, 1, 0, last - 3, 8)}));
  expect_forwarded_lba_out_of_range(o, false);
  EXPECT_EQ(o.abort->segment, 1);
  EXPECT_EQ(read_disk(B(), last - 3, 4), tail);
  Bytes want = stamped(0, 4);
  want.insert(want.end(), low.begin() + 4 * 512, low.end());
  EXPECT_EQ(read_disk(B(), 0, 16), want);  // only the first segment wrote
}

TEST_F(ExtendedCopy, FixedBlockLengthMismatchIsIncorrectCopyTargetDeviceType) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  auto attempt = [&](const xcopy::TargetDescriptor& tape, std::uint32_t field) {
    return copy(e, make_list({describe(*a_), tape}, {block_to_stream(0, 1, 0, 8, field)}));
  };
  // Variable-mode drive, fixed descriptor.
  Outcome o = attempt(describe(rig_.drive(), false, true, 512), 1);
  EXPECT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x03)) << describe_result(o.result);
  // Drive fixed at 1024: a descriptor of 512, and a variable one.
  set_block_length(rig_.drive(), 1024);
  o = attempt(describe(rig_.drive(), false, true, 512), 1);
  EXPECT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x03)) << describe_result(o.result);
  o = attempt(describe(rig_.drive()), 4096);
  EXPECT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x03)) << describe_result(o.result);
  Bytes pos(32);
  ASSERT_TRUE(
      testing::execute(*rig_.tape(), cdb::read_position(cdb::ReadPositionForm::kLong), pos).ok());
  EXPECT_EQ(parse::read_position_long(pos)->logical_object, 0u);  // nothing was written
  // The descriptor that agrees moves the data.
  o = attempt(describe(rig_.drive(), false, true, 1024), 2);
  ASSERT_TRUE(o.good()) << describe_result(o.result);
  set_block_length(rig_.drive(), 0);
  rewind(*rig_.tape());
  EXPECT_EQ(concat(read_tape(*rig_.tape())), stamped(0, 8));
}

TEST_F(ExtendedCopy, DiskBlockLargerThanAChunkIsIncorrectCopyTargetDeviceType) {
  xcopy::EngineSettings st;
  st.chunk_bytes = 256;  // smaller than one 512-byte block
  xcopy::CopyEngine e(rig_.resolver(), st);
  const Outcome o =
      copy(e, make_list({describe(*a_), describe(*b_)}, {block_to_block(0, 1, 0, 0, 8)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x03)) << describe_result(o.result);
  EXPECT_EQ(o.abort->segment, 0);
  EXPECT_FALSE(o.abort->residual);
}

TEST_F(ExtendedCopy, MediumErrorWithEomIsNotCountedAsWritten) {
  auto faulty = std::make_shared<FaultInjectingDevice>(rig_.tape());
  rig_.route(rig_.drive().identity().naa, faulty);
  xcopy::CopyEngine e(rig_.resolver(), {});
  // The third WRITE(6) fails (not executed) with MEDIUM ERROR and EOM set.
  faulty->sense_on_opcode(kWrite6, 3,
                          {.key = SenseKey::kMediumError, .asc = 0x0C, .ascq = 0x00, .eom = true});
  const Outcome o = copy(
      e, make_list({describe(*a_), describe(rig_.drive())}, {block_to_stream(0, 1, 0, 64, 4096)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01)) << describe_result(o.result);
  ASSERT_TRUE(o.abort->destination);
  EXPECT_TRUE(decode_sense(o.abort->destination->sense)->is(SenseKey::kMediumError, 0x0C, 0x00));
  ASSERT_TRUE(o.abort->residual);
  EXPECT_EQ(*o.abort->residual, 64u * 512 - 2 * 4096);  // two records written, six not
  rewind(*rig_.tape());
  EXPECT_EQ(read_tape(*rig_.tape()).size(), 2u);
}

TEST_F(ExtendedCopy, EomWithInformationPastTheTransferReportsNoResidual) {
  auto faulty = std::make_shared<FaultInjectingDevice>(rig_.tape());
  rig_.route(rig_.drive().identity().naa, faulty);
  xcopy::CopyEngine e(rig_.resolver(), {});
  // Early warning claiming 5000 bytes not written of a 4096-byte WRITE.
  faulty->sense_on_opcode(
      kWrite6, 2,
      {.key = SenseKey::kNoSense, .asc = 0x00, .ascq = 0x02, .eom = true, .information = 5000});
  Outcome o = copy(
      e, make_list({describe(*a_), describe(rig_.drive())}, {block_to_stream(0, 1, 0, 64, 4096)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01)) << describe_result(o.result);
  EXPECT_FALSE(o.abort->residual);
  EXPECT_FALSE(o.sense->information_valid);
  // VOLUME OVERFLOW without INFORMATION: nothing of that WRITE was written.
  faulty->clear();
  faulty->sense_on_opcode(
      kWrite6, 2, {.key = SenseKey::kVolumeOverflow, .asc = 0x00, .ascq = 0x02, .eom = true});
  o = copy(
      e, make_list({describe(*a_), describe(rig_.drive())}, {block_to_stream(0, 1, 0, 64, 4096)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01)) << describe_result(o.result);
  ASSERT_TRUE(o.abort->residual);
  EXPECT_EQ(*o.abort->residual, 64u * 512 - 4096);
}

TEST_F(ExtendedCopy, WriteFilemarksAtEarlyWarningHasResidualZero) {
  auto faulty = std::make_shared<FaultInjectingDevice>(rig_.tape());
  rig_.route(rig_.drive().identity().naa, faulty);
  xcopy::CopyEngine e(rig_.resolver(), {});
  faulty->sense_on_opcode(kWriteFilemarks6, 1,
                          {.key = SenseKey::kNoSense, .asc = 0x00, .ascq = 0x02, .eom = true});
  Segment fm;
  fm.type = SegmentType::kWriteFilemarks;
  fm.destination = 0;
  fm.count = 2;
  const Outcome o = copy(e, make_list({describe(rig_.drive())}, {fm}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01)) << describe_result(o.result);
  ASSERT_TRUE(o.abort->destination);
  EXPECT_TRUE(decode_sense(o.abort->destination->sense)->eom);
  ASSERT_TRUE(o.abort->residual);
  EXPECT_EQ(*o.abort->residual, 0u);
}

TEST_F(ExtendedCopy, TapeImageCopyRecordAtEarlyWarningCountsInCopyStatus) {
  auto src = rig_.tape();
  rig_.second_tape();
  const Bytes rec = testing::pattern(3000, 4);
  ASSERT_TRUE(testing::execute(*src, cdb::write6(false, 3000), {}, rec).ok());
  rewind(*src);
  auto faulty = std::make_shared<FaultInjectingDevice>(rig_.device(rig_.drive2().identity().naa));
  rig_.route(rig_.drive2().identity().naa, faulty);
  faulty->early_warning_at_block(0);
  xcopy::CopyEngine e(rig_.resolver(), {});
  Segment img;
  img.type = SegmentType::kTapeImageCopy;
  img.source = 0;
  img.destination = 1;
  const Outcome o = copy(e, make_list({describe(rig_.drive()), describe(rig_.drive2())}, {img},
                                      xcopy::ListIdUsage::kHold, 4));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01)) << describe_result(o.result);
  ASSERT_TRUE(o.abort->destination && o.abort->residual);
  EXPECT_EQ(*o.abort->residual, 0u);
  Bytes st(12);
  ASSERT_TRUE(e.receive_copy_results(
                   xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kCopyStatus, 4, 12), st)
                  .ok());
  const auto status = xcopy::parse_copy_status(st);
  EXPECT_EQ(status->state, xcopy::CopyState::kDoneWithErrors);
  EXPECT_EQ(status->transfer_count_units, 0);
  EXPECT_EQ(status->transfer_count, 3000u);
  EXPECT_EQ(status->segments_processed, 0);  // the failed segment is not processed
}

TEST_F(ExtendedCopy, ShortReadModifyWriteIsDataUnderrun) {
  auto tampered = std::make_shared<FaultInjectingDevice>(rig_.device(b_->identity().naa));
  tampered->misbehave_on_opcode(kRead16, FaultInjectingDevice::Misbehaviour::kHalfData);
  rig_.route(b_->identity().naa, tampered);
  xcopy::CopyEngine e(rig_.resolver(), {});
  const Bytes before = read_disk(*rig_.device(b_->identity().naa), 20, 2);
  // 100 bytes at byte 300 of block 20: the block is read, merged, written.
  const Outcome o = copy(e, make_list({describe(*a_), describe(*b_)},
                                      {block_offset_to_block_offset(0, 1, 0, 0, 20, 300, 100)}));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x04)) << describe_result(o.result);
  EXPECT_EQ(o.abort->segment, 0);
  EXPECT_FALSE(o.abort->residual);
  EXPECT_GE(tampered->misbehaved(), 1u);
  EXPECT_EQ(read_disk(*rig_.device(b_->identity().naa), 20, 2), before);  // nothing written back
}

TEST_F(ExtendedCopy, TapeImageCopyOfEmptyGoodReadsIsDataUnderrun) {
  rig_.second_tape();
  auto tampered = std::make_shared<FaultInjectingDevice>(rig_.tape());
  tampered->misbehave_on_opcode(kRead6, FaultInjectingDevice::Misbehaviour::kEmptyGood);
  rig_.route(rig_.drive().identity().naa, tampered);
  xcopy::CopyEngine e(rig_.resolver(), {});
  Segment img;
  img.type = SegmentType::kTapeImageCopy;
  img.source = 0;
  img.destination = 1;
  const auto list = make_list({describe(rig_.drive()), describe(rig_.drive2())}, {img});
  auto job = std::async(std::launch::async, [&] { return copy(e, list); });
  ASSERT_EQ(job.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  const Outcome o = job.get();
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x04)) << describe_result(o.result);
  EXPECT_EQ(tampered->misbehaved(), 1u);
  ASSERT_TRUE(o.abort->residual);
  EXPECT_EQ(*o.abort->residual, 0u);  // 13h: INFORMATION zero
}

TEST_F(ExtendedCopy, ExceptionFromADeviceIsCopyAbortedAndFreesTheListId) {
  // On the reader's thread (READ(16) of the source), then on the writer's
  // (WRITE(16) of the destination).
  for (const std::uint8_t opcode : {kRead16, kWrite16}) {
    Rig rig;
    auto a = rig.disk("a", 16u << 20);
    auto b = rig.disk("b", 16u << 20);
    const Bytes& naa = opcode == kRead16 ? a->identity().naa : b->identity().naa;
    auto throwing = std::make_shared<FaultInjectingDevice>(rig.device(naa));
    throwing->misbehave_on_opcode(opcode, FaultInjectingDevice::Misbehaviour::kThrow);
    rig.route(naa, throwing);
    xcopy::CopyEngine e(rig.resolver(), {});
    const auto list = make_list({describe(*a), describe(*b)}, {block_to_block(0, 1, 0, 0, 64)},
                                xcopy::ListIdUsage::kHold, 2);
    Outcome o = copy(e, list);
    ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01)) << describe_result(o.result);
    EXPECT_EQ(o.abort->segment, 0);
    // The list identifier is free again: the same copy runs (and fails) anew.
    o = copy(e, list);
    EXPECT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01)) << describe_result(o.result);
    Bytes st(12);
    ASSERT_TRUE(e.receive_copy_results(
                     xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kCopyStatus, 2, 12), st)
                    .ok());
    EXPECT_EQ(xcopy::parse_copy_status(st)->state, xcopy::CopyState::kDoneWithErrors);
  }
}

// ---- RECEIVE COPY RESULTS ----

class ReceiveCopyResults : public ExtendedCopy {};

TEST_F(ReceiveCopyResults, OperatingParametersTellTheLimits) {
  xcopy::EngineSettings st;
  st.limits.max_targets = 5;
  st.limits.max_segments = 9;
  st.max_concurrent_copies = 3;
  st.max_stream_transfer = 1u << 20;
  xcopy::CopyEngine e(rig_.resolver(), st);
  Bytes buf(256);
  const Result r = e.receive_copy_results(
      xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kOperatingParameters, 0, 256), buf);
  ASSERT_TRUE(r.ok());
  const auto p = xcopy::parse_operating_parameters(std::span(buf).first(r.data_in));
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->snlid);
  EXPECT_EQ(p->max_targets, 5);
  EXPECT_EQ(p->max_segments, 9);
  EXPECT_EQ(p->max_concurrent_copies, 3);
  EXPECT_EQ(p->total_concurrent_copies, 3);
  EXPECT_EQ(p->max_stream_transfer, 1u << 20);
  EXPECT_TRUE(std::is_sorted(p->descriptor_codes.begin(), p->descriptor_codes.end()));
  EXPECT_EQ(p->descriptor_codes.back(), 0xE4);
  EXPECT_EQ(p->descriptor_codes.size(), 14u);
}

TEST_F(ReceiveCopyResults, UnknownListIdIsInvalidFieldInCdbAtByte2) {
  xcopy::CopyEngine e(rig_.resolver(), {});
  Bytes buf(12);
  const Outcome o = finish(e.receive_copy_results(
      xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kCopyStatus, 1, 12), buf));
  ASSERT_TRUE(o.is(SenseKey::kIllegalRequest, 0x24, 0x00));
  ASSERT_TRUE(o.sense->sense_key_specific_valid);
  EXPECT_EQ(o.sense->sense_key_specific[2], 2);
}

TEST_F(ReceiveCopyResults, CopyStatusWhileRunningThenDoneThenDiscarded) {
  auto slow = std::make_shared<FaultInjectingDevice>(rig_.device(b_->identity().naa));
  rig_.route(b_->identity().naa, slow);
  xcopy::EngineSettings st;
  st.chunk_bytes = 64u << 10;
  xcopy::CopyEngine e(rig_.resolver(), st);
  slow->delay(std::chrono::milliseconds(10));
  const auto list = make_list({describe(*a_), describe(*b_)}, {block_to_block(0, 1, 0, 0, 4096)},
                              xcopy::ListIdUsage::kHold, 3);
  auto job = std::async(std::launch::async, [&] { return copy(e, list); });
  const auto cdb = xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kCopyStatus, 3, 12);
  Bytes buf(12);
  bool seen_running = false;
  std::uint32_t last_count = 0;
  for (int i = 0; i < 2000 && !seen_running; ++i) {
    const Result r = e.receive_copy_results(cdb, buf);
    if (r.ok()) {
      const auto s = xcopy::parse_copy_status(buf);
      if (s->state == xcopy::CopyState::kInProgress && s->transfer_count > 0) {
        seen_running = true;
        last_count = s->transfer_count;
        EXPECT_EQ(s->segments_processed, 0);  // the one segment is not done yet
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(seen_running);
  EXPECT_LT(last_count, 4096u * 512);
  slow->delay(std::chrono::milliseconds(0));
  ASSERT_TRUE(job.get().good());
  Result r = e.receive_copy_results(cdb, buf);
  ASSERT_TRUE(r.ok());
  const auto s = xcopy::parse_copy_status(buf);
  EXPECT_EQ(s->state, xcopy::CopyState::kDone);
  EXPECT_EQ(s->transfer_count_units, 0);
  EXPECT_EQ(s->transfer_count, 4096u * 512);
  EXPECT_EQ(s->segments_processed, 1);
  // Held until read, then gone.
  r = e.receive_copy_results(cdb, buf);
  EXPECT_TRUE(finish(r).is(SenseKey::kIllegalRequest, 0x24, 0x00));
}

TEST_F(ReceiveCopyResults, CutAnswersDoNotReleaseTheResults) {
  auto faulty = std::make_shared<FaultInjectingDevice>(rig_.device(b_->identity().naa));
  rig_.route(b_->identity().naa, faulty);
  xcopy::CopyEngine e(rig_.resolver(), {});
  faulty->sense_on_opcode(kWrite16, 1, {.key = SenseKey::kMediumError, .asc = 0x0C, .ascq = 0x00});
  const Outcome o =
      copy(e, make_list({describe(*a_), describe(*b_)}, {block_to_block(0, 1, 0, 0, 8)},
                        xcopy::ListIdUsage::kHold, 8));
  ASSERT_TRUE(o.is(SenseKey::kCopyAborted, 0x0D, 0x01)) << describe_result(o.result);
  Bytes buf(300);
  auto fsd = [&](std::uint32_t alloc) {
    return e.receive_copy_results(
        xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kFailedSegmentDetails, 8, alloc),
        buf);
  };
  auto status = [&](std::uint32_t alloc) {
    return e.receive_copy_results(
        xcopy::receive_copy_results_cdb(xcopy::ResultsAction::kCopyStatus, 8, alloc), buf);
  };
  // ALLOCATION LENGTH 0 and a cut page keep FAILED SEGMENT DETAILS.
  Result r = fsd(0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.data_in, 0u);
  r = fsd(20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.data_in, 20u);
  // A COPY STATUS cut at 8 bytes keeps the status.
  r = status(8);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.data_in, 8u);
  r = status(12);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(xcopy::parse_copy_status(std::span(buf).first(12))->state,
            xcopy::CopyState::kDoneWithErrors);
  EXPECT_TRUE(finish(status(12)).is(SenseKey::kIllegalRequest, 0x24, 0x00));  // read whole: gone
  // The whole details page, then nothing.
  r = fsd(300);
  ASSERT_TRUE(r.ok());
  const auto d = xcopy::parse_failed_segment_details(std::span(buf).first(r.data_in));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sense, o.result.sense);
  EXPECT_TRUE(finish(fsd(300)).is(SenseKey::kIllegalRequest, 0x24, 0x00));
}

// ---- the copy manager LUN ----

TEST(CopyManagerUnit, InquirySaysThirdPartyCopyAndVpd8FListsTheCommands) {
  Rig rig;
  auto unit = std::make_shared<emu::CopyManagerUnit>(
      emu::make_identity(0x03, "XCOPY", testing::test_installation_id(), "cm"), rig.resolver());
  const Exec inq = run(*unit, cdb::inquiry(false, 0, 96), 96);
  ASSERT_TRUE(inq.good());
  const auto si = parse::standard_inquiry(inq.data);
  EXPECT_EQ(si->peripheral_type, 0x03);
  EXPECT_TRUE(si->third_party_copy);
  const Exec pages = run(*unit, cdb::inquiry(true, 0, 255), 255);
  const auto list = parse::supported_vpd_pages(pages.data);
  EXPECT_NE(std::find(list->begin(), list->end(), 0x8F), list->end());
  const Exec tpc = run(*unit, cdb::inquiry(true, 0x8F, 1024), 1024);
  ASSERT_TRUE(tpc.good());
  const auto p = parse::third_party_copy(tpc.data);
  ASSERT_TRUE(p);
  ASSERT_GE(p->descriptors.size(), 3u);
  EXPECT_EQ(p->descriptors[0].type, 0x0001);
  const Bytes& cmds = p->descriptors[0].data;
  ASSERT_GE(cmds.size(), 9u);
  EXPECT_EQ(cmds[1], 0x83);
  EXPECT_EQ(cmds[4], 0x84);
  EXPECT_EQ(p->descriptors[1].type, 0x0004);
  EXPECT_EQ(p->descriptors[2].type, 0x0008);
  for (const auto& d : p->descriptors) EXPECT_EQ((d.data.size() + 4) % 4, 0u);
  EXPECT_TRUE(run(*unit, cdb::test_unit_ready()).good());
  EXPECT_TRUE(run(*unit, cdb::read16(0, 1, false), 512).is(SenseKey::kIllegalRequest, 0x20, 0x00));
}

// A 1 GiB disk LUN -> tape -> a second 1 GiB LUN through the copy manager
// LUN, with residue carried between segments and the last one padded.
void round_trip(bool fixed) {
  constexpr std::uint64_t kSize = 1ull << 30;
  Rig rig(3ull << 30, (3ull << 30) - (64u << 20));
  const auto a_path = rig.dir() / "src.img";
  {
    const int fd = ::open(a_path.c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    constexpr std::size_t kChunk = 4u << 20;
    for (std::uint64_t off = 0; off < kSize; off += kChunk) {
      const Bytes b = stamped(off / 512, kChunk / 512);
      ASSERT_EQ(::pwrite(fd, b.data(), b.size(), static_cast<off_t>(off)),
                static_cast<ssize_t>(b.size()));
    }
    ::close(fd);
  }
  auto src = rig.disk("src", kSize);
  auto dst = rig.disk("dst", kSize);
  ASSERT_EQ(src->blocks(), kSize / 512);
  emu::CopyManagerUnit cm(emu::make_identity(0x03, "XCOPY", testing::test_installation_id(), "cm"),
                          rig.resolver());
  std::uint32_t record = 192u << 10;  // does not divide 1 GiB: the last one is padded
  xcopy::TargetDescriptor tape = describe(rig.drive(), true);
  std::uint32_t length_field = record;
  if (fixed) {
    Bytes ms = {0, 0, 0x10, 8, 0, 0, 0, 0, 0, 0, 0, 0};
    ms[9] = 0x01;  // block length 64 KiB (bytes 9-11 of the descriptor part)
    ms[10] = 0x00;
    ms[11] = 0x00;
    ASSERT_TRUE(run(rig.drive(), cdb::mode_select6(true, false, 12), 0, ms).good());
    tape = describe(rig.drive(), true, true, 64u << 10);
    length_field = 3;  // 3 blocks of 64 KiB per WRITE
  }
  // Disk -> tape: 08h segments of odd byte counts (CAT=1 carries the part
  // record), the last CAT=0 with PAD.
  xcopy::ParameterList out = make_list({describe(*src, true), tape}, {});
  constexpr std::uint64_t kSeg = 100'000'003;
  for (std::uint64_t off = 0; off < kSize; off += kSeg) {
    Segment s;
    s.type = SegmentType::kBlockOffsetToStream;
    s.source = 0;
    s.destination = 1;
    s.stream_length = length_field;
    s.byte_count = static_cast<std::uint32_t>(std::min(kSeg, kSize - off));
    s.lba = off / 512;
    s.byte_offset = static_cast<std::uint16_t>(off % 512);
    s.cat = off + kSeg < kSize;
    out.segments.push_back(s);
  }
  auto send = [&](const xcopy::ParameterList& l) {
    const Bytes params = xcopy::build_parameter_list(l);
    return run(cm, xcopy::extended_copy_cdb(static_cast<std::uint32_t>(params.size())), 0, params);
  };
  Exec e = send(out);
  ASSERT_TRUE(e.good()) << describe_result(e.result);
  rewind(*rig.tape());
  // Tape -> disk: 01h segments of 65535 blocks (records split across
  // segments: source residue carried), the last one discards the pad.
  xcopy::ParameterList back = make_list({describe(*dst, true), tape}, {});
  const std::uint64_t blocks = kSize / 512;
  for (std::uint64_t lba = 0; lba < blocks; lba += 65535) {
    Segment s = stream_to_block(
        1, 0, lba, static_cast<std::uint32_t>(std::min<std::uint64_t>(65535, blocks - lba)),
        length_field, lba + 65535 < blocks);
    back.segments.push_back(s);
  }
  e = send(back);
  ASSERT_TRUE(e.good()) << describe_result(e.result);
  // The tape holds ceil(1 GiB / 192 KiB) records.
  Bytes pos(32);
  ASSERT_TRUE(
      testing::execute(*rig.tape(), cdb::read_position(cdb::ReadPositionForm::kLong), pos).ok());
  const std::uint64_t units = (kSize + record - 1) / record;
  EXPECT_EQ(parse::read_position_long(pos)->logical_object, fixed ? units * 3 : units);
  // Byte-identical.
  const int fa = ::open(a_path.c_str(), O_RDONLY);
  const int fb = ::open((rig.dir() / "dst.img").c_str(), O_RDONLY);
  ASSERT_GE(fa, 0);
  ASSERT_GE(fb, 0);
  Bytes x(8u << 20), y(8u << 20);
  bool same = true;
  for (std::uint64_t off = 0; off < kSize && same; off += x.size()) {
    ASSERT_EQ(::pread(fa, x.data(), x.size(), static_cast<off_t>(off)),
              static_cast<ssize_t>(x.size()));
    ASSERT_EQ(::pread(fb, y.data(), y.size(), static_cast<off_t>(off)),
              static_cast<ssize_t>(y.size()));
    same = x == y;
    EXPECT_TRUE(same) << "differs in the 8 MiB at " << off;
  }
  ::close(fa);
  ::close(fb);
}

TEST(CopyManagerUnit, RoundTripOneGibVariableRecords) { round_trip(false); }
TEST(CopyManagerUnit, RoundTripOneGibFixedBlocks) { round_trip(true); }

}  // namespace
}  // namespace scsi
