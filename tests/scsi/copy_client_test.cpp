// The copy client against the emulated copy manager over real emulated
// disks and tapes (no mocks): target descriptors from VPD 83h, planning
// within the manager's limits, round trips disk -> tape -> disk in both
// block modes, the end of a cartridge and the resumption on the next one,
// a failing source's sense forwarded with the exact byte count, progress
// through COPY STATUS, and the conservative defaults for a manager that
// does not answer RECEIVE COPY RESULTS.  Then the review's cases: the
// command's own sense before FAILED SEGMENT DETAILS, list identifiers
// distinct between clients, operator numbers that would overflow, block
// lengths past a 16-bit byte offset, the tape's position over a residual
// that disagrees, and a status path that does not see the client's lists.
// Last, the same over real logical units: tgt's iSCSI disks.

#include "scsi/copy_client.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <mutex>
#include <set>

#include "emu_support.h"
#include "scsi/cdb.h"
#include "scsi/emu/copy_manager.h"
#include "scsi/emu/sbc_disk.h"
#include "scsi/fault.h"
#include "scsi/parse.h"
#include "scsi/tgt_fixture.h"
#include "scsi/transport_iscsi.h"

namespace scsi {
namespace {

using testing::Exec;
using testing::run;
namespace xc = xcopy;

constexpr std::uint32_t kRecord = 256u << 10;

class CopyClientTest : public ::testing::Test {
 protected:
  // Two disks of `disk_bytes`, a library with three cartridges of
  // `capacity` (early warning at `early_warning`), the first one loaded in
  // drive 0, and a copy manager with `settings` over all of them.
  void build(std::uint64_t capacity = 256u << 20, std::uint64_t early_warning = 250u << 20,
             xc::EngineSettings settings = {}, std::uint64_t disk_bytes = 128u << 20) {
    std::string error;
    for (int i = 0; i < 2; ++i) {
      disk_path_[i] = dir_.path() / ("disk" + std::to_string(i) + ".img");
      disk_[i] = emu::SbcDisk::open(
          emu::make_identity(0x00, "VIRTUAL DISK", testing::test_installation_id(),
                             "disk" + std::to_string(i)),
          disk_path_[i], disk_bytes, 512, error);
      ASSERT_TRUE(disk_[i]) << error;
      disk_dev_[i] = std::make_shared<emu::EmulatedDevice>(disk_[i], "disk" + std::to_string(i));
    }
    lib_ = emu::VirtualLibrary::open(
        testing::library_spec(dir_.path() / "vtl", 3, capacity, early_warning),
        testing::test_installation_id(), error);
    ASSERT_TRUE(lib_) << error;
    drive_ = lib_->drives()[0];
    drive_dev_ = std::make_shared<emu::EmulatedDevice>(drive_, "vtl.drive0");
    ASSERT_TRUE(run(*lib_->changer(), cdb::move_medium(0, 1024, 256, false)).good());

    emu::UnitIdentity id =
        emu::make_identity(0x03, "COPY MANAGER", testing::test_installation_id(), "xcopy");
    id.third_party_copy = true;
    manager_unit_ = std::make_shared<emu::CopyManagerUnit>(
        id, [this](const xc::TargetDescriptor& t) { return resolve(t); }, settings);
    manager_ = std::make_shared<emu::EmulatedDevice>(manager_unit_, "xcopy");
  }

  // What the copy manager reaches: the units by their NAA, the source disk
  // through a FaultInjectingDevice once a test installs one.
  std::shared_ptr<Device> resolve(const xc::TargetDescriptor& t) {
    std::lock_guard lock(mutex_);
    if (t.designator == disk_[0]->identity().naa && t.peripheral_type == 0x00) {
      return faulty_source_ ? std::shared_ptr<Device>(faulty_source_) : disk_dev_[0];
    }
    if (t.designator == disk_[1]->identity().naa && t.peripheral_type == 0x00) return disk_dev_[1];
    if (t.designator == drive_->identity().naa && t.peripheral_type == 0x01) return drive_dev_;
    for (const auto& [designator, device] : real_) {
      if (t.designator == designator) return device;
    }
    return nullptr;
  }

  // A real logical unit the copy manager reaches by the designator its
  // VPD 83h gives (as the registry maps configured real devices).
  xc::Endpoint add_real(std::shared_ptr<Device> d) {
    xc::Endpoint ep = endpoint(d);
    std::lock_guard lock(mutex_);
    real_.emplace_back(ep.descriptor.designator, std::move(d));
    return ep;
  }

  void fault_source() {
    std::lock_guard lock(mutex_);
    faulty_source_ = std::make_shared<FaultInjectingDevice>(disk_dev_[0]);
  }

  void fill_disk(int i, const Bytes& data) {
    const int fd = ::open(disk_path_[i].c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  Bytes read_disk(int i, std::uint64_t offset, std::size_t n) {
    Bytes b(n);
    const int fd = ::open(disk_path_[i].c_str(), O_RDONLY);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pread(fd, b.data(), n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
    ::close(fd);
    return b;
  }

  // Takes the unit attentions a cartridge change left.
  void settle() {
    for (int i = 0; i < 4 && !run(*drive_, cdb::test_unit_ready()).good(); ++i) {
    }
  }
  std::uint64_t tape_objects() {
    settle();
    const Exec e = run(*drive_, cdb::read_position(cdb::ReadPositionForm::kLong), 32);
    EXPECT_TRUE(e.good());
    const auto p = parse::read_position_long(e.data);
    return p ? p->logical_object : ~0ull;
  }
  void rewind() {
    settle();
    ASSERT_TRUE(run(*drive_, cdb::rewind(false)).good());
  }
  // Everything on the loaded cartridge from the beginning, record by
  // record (one block per read in fixed mode); `records` counts them.
  Bytes read_tape(std::uint32_t max_record, bool fixed = false, std::size_t* records = nullptr) {
    rewind();
    Bytes all;
    std::size_t n = 0;
    for (int i = 0; i < 1 << 20; ++i) {
      const Exec e = run(*drive_, cdb::read6(fixed, false, fixed ? 1 : max_record), max_record);
      if (e.good() || (e.sense && e.sense->ili)) {
        all.insert(all.end(), e.data.begin(), e.data.end());
        ++n;
        continue;
      }
      EXPECT_TRUE(e.sense && e.sense->key == SenseKey::kBlankCheck) << describe_result(e.result);
      break;
    }
    if (records) *records = n;
    return all;
  }
  void swap_cartridge(std::uint16_t out_slot, std::uint16_t in_slot) {
    ASSERT_TRUE(run(*lib_->changer(), cdb::move_medium(0, 256, out_slot, false)).good());
    ASSERT_TRUE(run(*lib_->changer(), cdb::move_medium(0, in_slot, 256, false)).good());
    settle();
  }
  void set_fixed_block(std::uint32_t length) {
    Bytes p(12, 0);
    p[3] = 8;
    p[9] = static_cast<std::uint8_t>(length >> 16);
    p[10] = static_cast<std::uint8_t>(length >> 8);
    p[11] = static_cast<std::uint8_t>(length);
    settle();
    ASSERT_TRUE(run(*drive_, cdb::mode_select6(true, false, 12), 0, p).good());
  }

  xc::Endpoint endpoint(std::shared_ptr<Device> d) {
    std::string error;
    auto ep = xc::describe_endpoint(std::move(d), error);
    EXPECT_TRUE(ep) << error;
    return ep.value_or(xc::Endpoint{});
  }
  std::unique_ptr<xc::CopyClient> client(xc::ClientSettings s = {}, bool status = true) {
    auto c = std::make_unique<xc::CopyClient>(manager_, status ? manager_ : nullptr, s);
    std::string error;
    EXPECT_TRUE(c->open(error)) << error;
    return c;
  }
  xc::CopyJob job(std::shared_ptr<Device> from, std::shared_ptr<Device> to, std::uint64_t bytes,
                  std::uint32_t record = kRecord) {
    xc::CopyJob j;
    j.source = endpoint(std::move(from));
    j.destination = endpoint(std::move(to));
    j.bytes = bytes;
    j.record_size = record;
    return j;
  }

  testing::ScratchDir dir_{"xcopy-client"};
  std::filesystem::path disk_path_[2];
  std::shared_ptr<emu::SbcDisk> disk_[2];
  std::shared_ptr<emu::EmulatedDevice> disk_dev_[2];
  std::unique_ptr<emu::VirtualLibrary> lib_;
  std::shared_ptr<emu::SscDrive> drive_;
  std::shared_ptr<emu::EmulatedDevice> drive_dev_;
  std::shared_ptr<emu::CopyManagerUnit> manager_unit_;
  std::shared_ptr<emu::EmulatedDevice> manager_;
  std::mutex mutex_;
  std::shared_ptr<FaultInjectingDevice> faulty_source_;
  std::vector<std::pair<Bytes, std::shared_ptr<Device>>> real_;
};

// A pass-through path to the copy manager that notes the LIST IDENTIFIER
// of every EXTENDED COPY it carries; the manager runs them all.
class ListIdRecorder : public Device {
 public:
  explicit ListIdRecorder(std::shared_ptr<Device> inner) : inner_(std::move(inner)) {}
  Result execute(const Command& command) override {
    if (!command.cdb.empty() && command.cdb[0] == 0x83 && !command.data_out.empty()) {
      std::lock_guard lock(mutex_);
      ids_.push_back(command.data_out[0]);
    }
    return inner_->execute(command);
  }
  std::string describe() const override { return "recorded(" + inner_->describe() + ")"; }
  std::vector<std::uint8_t> ids() const {
    std::lock_guard lock(mutex_);
    return ids_;
  }

 private:
  std::shared_ptr<Device> inner_;
  mutable std::mutex mutex_;
  std::vector<std::uint8_t> ids_;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

TEST_F(CopyClientTest, DescribeEndpointNamesDiskAndTapeByTheirNaa) {
  build();
  std::string error;
  const auto disk = xc::describe_endpoint(disk_dev_[0], error);
  ASSERT_TRUE(disk) << error;
  EXPECT_FALSE(disk->tape);
  EXPECT_EQ(disk->block_length, 512u);
  EXPECT_EQ(disk->blocks, (128u << 20) / 512);
  EXPECT_EQ(disk->descriptor.peripheral_type, 0x00);
  EXPECT_EQ(disk->descriptor.designator_type, parse::kDesignatorNaa);
  EXPECT_EQ(disk->descriptor.designator, disk_[0]->identity().naa);
  EXPECT_EQ(disk->descriptor.block_length, 512u);

  const auto tape = xc::describe_endpoint(drive_dev_, error);
  ASSERT_TRUE(tape) << error;
  EXPECT_TRUE(tape->tape);
  EXPECT_EQ(tape->descriptor.peripheral_type, 0x01);
  EXPECT_EQ(tape->descriptor.designator, drive_->identity().naa);
  EXPECT_FALSE(tape->descriptor.fixed);  // variable block mode
  EXPECT_EQ(tape->block_length, 0u);

  set_fixed_block(64u << 10);
  const auto fixed = xc::describe_endpoint(drive_dev_, error);
  ASSERT_TRUE(fixed) << error;
  EXPECT_TRUE(fixed->descriptor.fixed);
  EXPECT_EQ(fixed->block_length, 64u << 10);

  // An empty drive is not ready; a changer is no copy endpoint.
  auto empty = std::make_shared<emu::EmulatedDevice>(lib_->drives()[1], "vtl.drive1");
  EXPECT_FALSE(xc::describe_endpoint(empty, error));
  EXPECT_NE(error.find("not ready"), std::string::npos) << error;
  auto changer = std::make_shared<emu::EmulatedDevice>(lib_->changer(), "vtl.changer");
  EXPECT_FALSE(xc::describe_endpoint(changer, error));
  EXPECT_NE(error.find("neither a disk nor a tape"), std::string::npos) << error;
}

TEST_F(CopyClientTest, OpenReadsTheManagersLimitsAndRefusesADisk) {
  xc::EngineSettings s;
  s.limits.max_segments = 5;
  s.max_segment_length = 3u << 20;
  build(256u << 20, 250u << 20, s);
  auto c = client();
  EXPECT_TRUE(c->status_offered());
  EXPECT_EQ(c->parameters().max_segments, 5u);
  EXPECT_EQ(c->parameters().max_segment_length, 3u << 20);

  xc::CopyClient not_a_manager(disk_dev_[0], nullptr);
  std::string error;
  EXPECT_FALSE(not_a_manager.open(error));
  EXPECT_NE(error.find("3PC"), std::string::npos) << error;
}

TEST_F(CopyClientTest, DiskToTapeToDiskVariableRecordsPadsTheLastOne) {
  build();
  const std::uint64_t n = (48u << 20) + 100000;  // no multiple of the record size
  const Bytes data = testing::pattern(n, 7);
  fill_disk(0, data);

  auto c = client();
  const xc::CopyOutcome out = c->run(job(disk_dev_[0], drive_dev_, n));
  ASSERT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.bytes_copied, n);
  EXPECT_FALSE(out.end_of_medium);
  EXPECT_EQ(tape_objects(), (n + kRecord - 1) / kRecord);

  std::size_t records = 0;
  const Bytes on_tape = read_tape(kRecord, false, &records);
  EXPECT_EQ(records, (n + kRecord - 1) / kRecord);
  ASSERT_EQ(on_tape.size(), records * kRecord);  // every record whole, the last one padded
  EXPECT_TRUE(std::equal(data.begin(), data.end(), on_tape.begin()));
  EXPECT_TRUE(std::all_of(on_tape.begin() + static_cast<std::ptrdiff_t>(n), on_tape.end(),
                          [](std::uint8_t b) { return b == 0; }));

  rewind();
  const xc::CopyOutcome back = c->run(job(drive_dev_, disk_dev_[1], n));
  ASSERT_TRUE(back.ok) << back.error;
  EXPECT_EQ(back.bytes_copied, n);
  EXPECT_EQ(read_disk(1, 0, n), data);
}

TEST_F(CopyClientTest, DiskToTapeToDiskFixedBlocks) {
  build();
  set_fixed_block(64u << 10);
  const std::uint64_t n = (32u << 20) + (192u << 10);  // whole blocks, no whole record
  const Bytes data = testing::pattern(n, 8);
  fill_disk(0, data);
  auto c = client();
  const xc::CopyOutcome out = c->run(job(disk_dev_[0], drive_dev_, n));
  ASSERT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.bytes_copied, n);
  const Bytes on_tape = read_tape(64u << 10, true);
  ASSERT_GE(on_tape.size(), n);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), on_tape.begin()));

  rewind();
  const xc::CopyOutcome back = c->run(job(drive_dev_, disk_dev_[1], n));
  ASSERT_TRUE(back.ok) << back.error;
  EXPECT_EQ(read_disk(1, 0, n), data);
}

TEST_F(CopyClientTest, EndOfMediumStopsExactlyAndTheNextCartridgeTakesTheRest) {
  build(24u << 20, 20u << 20);
  const std::uint64_t n = 36u << 20;
  const Bytes data = testing::pattern(n, 9);
  fill_disk(0, data);
  xc::ClientSettings s;
  s.batch_bytes = 16u << 20;  // the end of medium comes in the second command
  s.segment_bytes = 4u << 20;
  auto c = client(s);

  xc::CopyJob first = job(disk_dev_[0], drive_dev_, n);
  const xc::CopyOutcome out = c->run(first);
  ASSERT_FALSE(out.ok);
  EXPECT_TRUE(out.end_of_medium) << out.error;
  ASSERT_TRUE(out.abort);
  ASSERT_TRUE(out.abort->destination);
  EXPECT_GE(out.bytes_copied, 20u << 20);
  EXPECT_LT(out.bytes_copied, 24u << 20);
  EXPECT_EQ(out.bytes_copied % kRecord, 0u);
  EXPECT_EQ(tape_objects() * kRecord, out.bytes_copied);
  EXPECT_TRUE(out.confirmed);  // the residual and the tape's position agree
  EXPECT_NE(out.error.find("end of medium"), std::string::npos) << out.error;

  // A fresh cartridge takes the rest, from where the first one stopped.
  swap_cartridge(1024, 1025);
  xc::CopyJob rest = job(disk_dev_[0], drive_dev_, n - out.bytes_copied);
  rest.source_byte_offset = out.bytes_copied;
  const xc::CopyOutcome second = c->run(rest);
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_FALSE(second.end_of_medium);
  EXPECT_EQ(second.bytes_copied, n - out.bytes_copied);

  Bytes joined = read_tape(kRecord);
  swap_cartridge(1025, 1024);
  Bytes head = read_tape(kRecord);
  EXPECT_EQ(head.size(), out.bytes_copied);
  head.insert(head.end(), joined.begin(), joined.end());
  ASSERT_EQ(head.size(), n);
  EXPECT_TRUE(head == data);
}

TEST_F(CopyClientTest, SourceMediumErrorIsForwardedWithTheExactCount) {
  xc::EngineSettings es;
  es.chunk_bytes = 1u << 20;
  build(256u << 20, 250u << 20, es);
  const std::uint64_t n = 32u << 20;
  const Bytes data = testing::pattern(n, 10);
  fill_disk(0, data);
  fault_source();
  // The 12th READ(16) of the source: in the middle of the second segment.
  faulty_source_->sense_on_opcode(0x88, 12,
                                  {.key = SenseKey::kMediumError, .asc = 0x11, .ascq = 0x00});
  xc::ClientSettings s;
  s.segment_bytes = 8u << 20;
  auto c = client(s);
  const xc::CopyOutcome out = c->run(job(disk_dev_[0], drive_dev_, n));
  ASSERT_FALSE(out.ok);
  EXPECT_FALSE(out.end_of_medium);
  ASSERT_TRUE(out.abort);
  EXPECT_EQ(out.abort->key, SenseKey::kCopyAborted);
  ASSERT_TRUE(out.abort->source) << out.error;
  const auto src = decode_sense(out.abort->source->sense);
  ASSERT_TRUE(src);
  EXPECT_TRUE(src->is(SenseKey::kMediumError, 0x11, 0x00));
  EXPECT_LT(out.bytes_copied, n);
  EXPECT_LE(out.bytes_copied, 11u << 20);  // nothing past the failed read
  // Exact: what the tape holds.
  std::size_t records = 0;
  const Bytes on_tape = read_tape(kRecord, false, &records);
  EXPECT_EQ(on_tape.size(), out.bytes_copied);
  EXPECT_TRUE(std::equal(on_tape.begin(), on_tape.end(), data.begin()));
  const std::string e = lower(out.error);
  EXPECT_NE(e.find("the source"), std::string::npos) << out.error;
  EXPECT_NE(e.find("medium error"), std::string::npos) << out.error;
  EXPECT_NE(e.find(std::to_string(out.bytes_copied) + " of"), std::string::npos) << out.error;
}

TEST_F(CopyClientTest, ProgressComesFromCopyStatusWhileACommandRuns) {
  build();
  const std::uint64_t n = 24u << 20;
  const Bytes data = testing::pattern(n, 11);
  fill_disk(0, data);
  fault_source();
  faulty_source_->delay(std::chrono::milliseconds(25));
  xc::ClientSettings s;
  s.poll_interval = std::chrono::milliseconds(20);
  auto c = client(s);
  std::vector<std::uint64_t> seen;
  const xc::CopyOutcome out = c->run(job(disk_dev_[0], disk_dev_[1], n), [&](const auto& p) {
    EXPECT_EQ(p.bytes_total, n);
    seen.push_back(p.bytes_copied);
  });
  ASSERT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.commands, 1u);  // one command: the progress came from COPY STATUS
  ASSERT_GE(seen.size(), 3u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  std::vector<std::uint64_t> partial;
  for (std::uint64_t b : seen) {
    if (b > 0 && b < n) partial.push_back(b);
  }
  partial.erase(std::unique(partial.begin(), partial.end()), partial.end());
  EXPECT_GE(partial.size(), 2u) << "distinct in-progress figures";
  EXPECT_EQ(seen.back(), n);
  EXPECT_EQ(read_disk(1, 0, n), data);

  // Without a status path it waits for each command and still completes.
  faulty_source_->clear();
  std::vector<std::uint64_t> quiet;
  auto blind = client(s, false);
  const xc::CopyOutcome again = blind->run(job(disk_dev_[0], disk_dev_[1], n),
                                           [&](const auto& p) { quiet.push_back(p.bytes_copied); });
  ASSERT_TRUE(again.ok) << again.error;
  EXPECT_EQ(quiet, std::vector<std::uint64_t>{n});
}

TEST_F(CopyClientTest, TightLimitsMeanMoreCommandsNotWrongData) {
  xc::EngineSettings es;
  es.limits.max_segments = 1;
  es.max_segment_length = 1u << 20;
  build(256u << 20, 250u << 20, es);
  const std::uint64_t n = (6u << 20) + 4096;
  const Bytes data = testing::pattern(n, 12);
  fill_disk(0, data);
  auto c = client();
  const xc::CopyOutcome out = c->run(job(disk_dev_[0], disk_dev_[1], n));
  ASSERT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.commands, 7u);
  EXPECT_EQ(out.segments, 7u);
  EXPECT_EQ(read_disk(1, 0, n), data);

  // Tape both ways under the same limits: 1 MiB segments of 4 records.
  const xc::CopyOutcome to_tape = c->run(job(disk_dev_[0], drive_dev_, n));
  ASSERT_TRUE(to_tape.ok) << to_tape.error;
  EXPECT_EQ(to_tape.commands, 7u);
  rewind();
  const std::vector<std::uint8_t> zeros(n, 0);
  fill_disk(1, zeros);
  const xc::CopyOutcome back = c->run(job(drive_dev_, disk_dev_[1], n));
  ASSERT_TRUE(back.ok) << back.error;
  EXPECT_EQ(read_disk(1, 0, n), data);
}

TEST_F(CopyClientTest, AManagerWithoutCopyResultsGetsTheConservativeDefaults) {
  build();
  const std::uint64_t n = 3u << 20;
  const Bytes data = testing::pattern(n, 13);
  fill_disk(0, data);
  auto refusing = std::make_shared<FaultInjectingDevice>(manager_);
  // OPERATING PARAMETERS is refused as LIO refuses it.
  refusing->sense_on_opcode(0x84, 1, {.key = SenseKey::kIllegalRequest, .asc = 0x20, .ascq = 0x00});
  xc::ClientSettings s;
  s.segment_bytes = 1u << 20;
  xc::CopyClient c(refusing, refusing, s);
  std::string error;
  ASSERT_TRUE(c.open(error)) << error;
  EXPECT_FALSE(c.status_offered());
  EXPECT_EQ(c.parameters().max_segments, 1u);
  EXPECT_EQ(c.parameters().max_descriptor_list_length, 1024u);
  const xc::CopyOutcome out = c.run(job(disk_dev_[0], disk_dev_[1], n));
  ASSERT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.commands, 3u);  // one segment per command
  EXPECT_EQ(read_disk(1, 0, n), data);
}

}  // namespace
}  // namespace scsi

namespace scsi {
namespace {

TEST_F(CopyClientTest, CommandSenseIsPreferredOverFailedSegmentDetails) {
  xc::EngineSettings es;
  es.chunk_bytes = 1u << 20;
  build(256u << 20, 250u << 20, es);
  const std::uint64_t n = 8u << 20;  // one command, one segment
  fill_disk(0, testing::pattern(n, 14));
  fault_source();
  faulty_source_->sense_on_opcode(0x88, 3,
                                  {.key = SenseKey::kMediumError, .asc = 0x11, .ascq = 0x00});
  auto counted = std::make_shared<FaultInjectingDevice>(manager_);
  xc::CopyClient c(counted, nullptr);
  std::string error;
  ASSERT_TRUE(c.open(error)) << error;
  ASSERT_TRUE(c.status_offered());  // FAILED SEGMENT DETAILS would be there to read
  const std::uint64_t before = counted->commands_seen();
  const xc::CopyOutcome out = c.run(job(disk_dev_[0], drive_dev_, n));
  ASSERT_FALSE(out.ok);
  EXPECT_EQ(out.commands, 1u);
  // The EXTENDED COPY alone: its sense was whole, so no RECEIVE COPY
  // RESULTS followed (which could read another client's list).
  EXPECT_EQ(counted->commands_seen() - before, 1u);
  ASSERT_TRUE(out.abort);
  ASSERT_TRUE(out.abort->source) << out.error;
  const auto src = decode_sense(out.abort->source->sense);
  ASSERT_TRUE(src);
  EXPECT_TRUE(src->is(SenseKey::kMediumError, 0x11, 0x00));
  EXPECT_EQ(read_tape(kRecord).size(), out.bytes_copied);
}

TEST_F(CopyClientTest, ListIdentifiersDifferBetweenClientsOnOneManager) {
  xc::EngineSettings es;
  es.limits.max_segments = 1;
  es.max_segment_length = 1u << 20;
  build(256u << 20, 250u << 20, es);
  const std::uint64_t n = 3u << 20;
  const Bytes data = testing::pattern(n, 15);
  fill_disk(0, data);
  auto recorder = std::make_shared<ListIdRecorder>(manager_);
  std::string error;
  xc::CopyClient a(recorder, recorder), b(recorder, recorder);
  ASSERT_TRUE(a.open(error)) << error;
  ASSERT_TRUE(b.open(error)) << error;
  const xc::CopyOutcome first = a.run(job(disk_dev_[0], disk_dev_[1], n));
  ASSERT_TRUE(first.ok) << first.error;
  const xc::CopyOutcome second = b.run(job(disk_dev_[0], disk_dev_[1], n));
  ASSERT_TRUE(second.ok) << second.error;
  const std::vector<std::uint8_t> ids = recorder->ids();
  ASSERT_EQ(ids.size(), 6u);  // three commands each
  EXPECT_EQ(std::set<std::uint8_t>(ids.begin(), ids.end()).size(), ids.size());
  EXPECT_EQ(std::count(ids.begin(), ids.end(), std::uint8_t{0}), 0);
  EXPECT_EQ(read_disk(1, 0, n), data);
}

TEST_F(CopyClientTest, OperatorNumbersThatWouldOverflowAreRefused) {
  build();
  auto c = client();
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();

  // LBA 8 plus this offset wraps to byte 0: it must not write there.
  xc::CopyJob wrap = job(disk_dev_[0], disk_dev_[1], 1u << 20);
  wrap.destination_lba = 8;
  wrap.destination_byte_offset = max - 8 * 512 + 1;
  xc::CopyOutcome out = c->run(wrap);
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.commands, 0u);
  EXPECT_NE(out.error.find("past the disk's end"), std::string::npos) << out.error;
  EXPECT_EQ(read_disk(1, 0, 1u << 20), Bytes(1u << 20, 0));

  // A length that wraps start + bytes: refused, not planned.
  xc::CopyJob huge = job(disk_dev_[0], drive_dev_, max - 100);
  huge.source_lba = 8;
  out = c->run(huge);
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.segments, 0u);
  EXPECT_NE(out.error.find("runs past its capacity"), std::string::npos) << out.error;

  // An LBA past the last block.
  xc::CopyJob past = job(disk_dev_[0], disk_dev_[1], 512);
  past.source_lba = (128u << 20) / 512;
  out = c->run(past);
  EXPECT_FALSE(out.ok);
  EXPECT_NE(out.error.find("past the disk's last block"), std::string::npos) << out.error;

  std::string error;
  const auto disk = xc::describe_endpoint(disk_dev_[0], error);
  ASSERT_TRUE(disk) << error;
  EXPECT_EQ(xc::disk_start(*disk, 3, 100, error), 3u * 512 + 100);
  EXPECT_FALSE(xc::disk_start(*disk, max / 256, 0, error));
}

TEST_F(CopyClientTest, ByteOffsetSegmentsRefuseBlocksLongerThan64KiB) {
  build();
  auto c = client();
  // A disk of 128 KiB blocks (as a real array may report): its byte
  // offsets do not fit segments 08h, 09h and 0Ah.
  auto big_blocks = [&](xc::Endpoint e) {
    e.block_length = 128u << 10;
    e.descriptor.block_length = e.block_length;
    e.blocks = (128u << 20) / e.block_length;
    return e;
  };
  xc::CopyJob to_tape = job(disk_dev_[0], drive_dev_, 1u << 20);
  to_tape.source = big_blocks(to_tape.source);
  to_tape.source_byte_offset = 100;
  xc::CopyOutcome out = c->run(to_tape);
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.commands, 0u);
  EXPECT_NE(out.error.find("16-bit byte offset"), std::string::npos) << out.error;

  xc::CopyJob from_tape = job(drive_dev_, disk_dev_[1], 1u << 20);
  from_tape.destination = big_blocks(from_tape.destination);
  from_tape.destination_byte_offset = 512;
  out = c->run(from_tape);
  EXPECT_FALSE(out.ok);
  EXPECT_NE(out.error.find("09h's 16-bit byte offset"), std::string::npos) << out.error;

  xc::CopyJob disks = job(disk_dev_[0], disk_dev_[1], 1000);
  disks.source = big_blocks(disks.source);
  out = c->run(disks);
  EXPECT_FALSE(out.ok);
  EXPECT_NE(out.error.find("0Ah's 16-bit byte offsets"), std::string::npos) << out.error;
  EXPECT_EQ(read_disk(1, 0, 4096), Bytes(4096, 0));
}

TEST_F(CopyClientTest, TapePositionOverridesAResidualThatDisagrees) {
  build();
  const std::uint64_t n = 8u << 20;
  fill_disk(0, testing::pattern(n, 16));
  // The second EXTENDED COPY does not run, yet its sense claims that half
  // of its segment (2 of 4 MiB: a residual of 2 MiB) reached the tape.
  auto lying = std::make_shared<FaultInjectingDevice>(manager_);
  lying->sense_on_opcode(0x83, 2,
                         {.key = SenseKey::kCopyAborted,
                          .asc = 0x0D,
                          .ascq = 0x01,
                          .information = std::int64_t{2} << 20,
                          .command_specific = 0});
  xc::ClientSettings s;
  s.batch_bytes = 4u << 20;
  s.segment_bytes = 4u << 20;
  xc::CopyClient c(lying, nullptr, s);
  std::string error;
  ASSERT_TRUE(c.open(error)) << error;
  const xc::CopyOutcome out = c.run(job(disk_dev_[0], drive_dev_, n));
  ASSERT_FALSE(out.ok);
  EXPECT_EQ(out.commands, 2u);
  EXPECT_TRUE(out.confirmed);
  EXPECT_EQ(out.bytes_copied, 4u << 20) << out.error;  // the residual would say 6 MiB
  EXPECT_EQ(tape_objects() * kRecord, out.bytes_copied);
}

TEST_F(CopyClientTest, AnUnreadableTapePositionLeavesTheCountUnconfirmed) {
  build(24u << 20, 20u << 20);
  const std::uint64_t n = 36u << 20;
  fill_disk(0, testing::pattern(n, 17));
  // The client's own path to the drive answers READ POSITION once (before
  // the copy), then refuses it in both forms.
  auto blind = std::make_shared<FaultInjectingDevice>(drive_dev_);
  const SenseSpec refused{.key = SenseKey::kHardwareError, .asc = 0x44, .ascq = 0x00};
  blind->sense_on_opcode(0x34, 2, refused);
  blind->sense_on_opcode(0x34, 2, refused);
  xc::ClientSettings s;
  s.batch_bytes = 16u << 20;
  s.segment_bytes = 4u << 20;
  auto c = client(s);
  xc::CopyJob j = job(disk_dev_[0], drive_dev_, n);
  j.destination.device = blind;
  const xc::CopyOutcome out = c->run(j);
  ASSERT_FALSE(out.ok);
  EXPECT_TRUE(out.end_of_medium) << out.error;
  EXPECT_FALSE(out.confirmed);
  EXPECT_NE(out.error.find("unconfirmed"), std::string::npos) << out.error;
}

TEST_F(CopyClientTest, AStatusPathThatDoesNotKnowTheListStopsPolling) {
  build();
  const std::uint64_t n = 24u << 20;
  const Bytes data = testing::pattern(n, 18);
  fill_disk(0, data);
  fault_source();
  faulty_source_->delay(std::chrono::milliseconds(10));
  // Another copy manager unit over the same devices stands for a second
  // I_T nexus: it knows none of this client's list identifiers.
  emu::UnitIdentity id =
      emu::make_identity(0x03, "COPY MANAGER", testing::test_installation_id(), "xcopy-other");
  id.third_party_copy = true;
  auto other = std::make_shared<emu::CopyManagerUnit>(
      id, [this](const xc::TargetDescriptor& t) { return resolve(t); });
  auto other_path = std::make_shared<FaultInjectingDevice>(
      std::make_shared<emu::EmulatedDevice>(other, "xcopy-other"));
  xc::ClientSettings s;
  s.batch_bytes = 8u << 20;
  s.poll_interval = std::chrono::milliseconds(5);
  xc::CopyClient c(manager_, other_path, s);
  std::string error;
  ASSERT_TRUE(c.open(error)) << error;
  std::vector<std::uint64_t> seen;
  const xc::CopyOutcome out = c.run(job(disk_dev_[0], disk_dev_[1], n),
                                    [&](const auto& p) { seen.push_back(p.bytes_copied); });
  ASSERT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.commands, 3u);
  // A few tries in the first command, none after: not a poll every 5 ms
  // of every command.
  EXPECT_GE(other_path->commands_seen(), 1u);
  EXPECT_LE(other_path->commands_seen(), 3u);
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{8u << 20, 16u << 20, 24u << 20}));
  EXPECT_EQ(read_disk(1, 0, n), data);
}

// The same client and engine against real logical units: tgt's iSCSI
// disks (over libiscsi) copied onto an emulated cartridge and back into the
// other disk.  The endpoints come from tgt's own VPD 83h and READ CAPACITY;
// the engine's READ(16) and WRITE(16) go to tgt.
TEST_F(CopyClientTest, TgtDisksOverIscsiToAnEmulatedTapeAndBack) {
  std::string error;
  testing::Tgt* tgt = testing::Tgt::shared(error);
  ASSERT_TRUE(tgt) << error;
  std::shared_ptr<Device> from = open_iscsi(tgt->disk0_url, error);
  ASSERT_TRUE(from) << tgt->disk0_url << ": " << error;
  std::shared_ptr<Device> to = open_iscsi(tgt->disk1_url, error);
  ASSERT_TRUE(to) << tgt->disk1_url << ": " << error;
  build();

  const std::uint64_t n = (8u << 20) + 100000;  // no multiple of the record size
  Bytes data = testing::pattern(n, 31);
  Bytes padded = data;
  padded.resize((n + 511) / 512 * 512, 0);
  // (A unit attention from the login may come first: one more try.)
  Result w;
  for (int i = 0; i < 2; ++i) {
    w = testing::execute(
        *from, cdb::write16(0, static_cast<std::uint32_t>(padded.size() / 512), false), {}, padded);
    if (w.ok()) break;
  }
  ASSERT_TRUE(w.ok()) << describe_result(w);
  const xc::Endpoint source = add_real(from);
  const xc::Endpoint destination = add_real(to);
  EXPECT_FALSE(source.tape);
  EXPECT_EQ(source.block_length, 512u);
  EXPECT_NE(source.descriptor.designator, destination.descriptor.designator);

  auto c = client();
  xc::CopyJob out_job;
  out_job.source = source;
  out_job.destination = endpoint(drive_dev_);
  out_job.bytes = n;
  out_job.record_size = kRecord;
  const xc::CopyOutcome out = c->run(out_job);
  ASSERT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.bytes_copied, n);
  std::size_t records = 0;
  const Bytes on_tape = read_tape(kRecord, false, &records);
  EXPECT_EQ(records, (n + kRecord - 1) / kRecord);
  ASSERT_GE(on_tape.size(), n);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), on_tape.begin()));

  rewind();
  xc::CopyJob back_job;
  back_job.source = endpoint(drive_dev_);
  back_job.destination = destination;
  back_job.bytes = n;
  back_job.record_size = kRecord;
  const xc::CopyOutcome back = c->run(back_job);
  ASSERT_TRUE(back.ok) << back.error;
  EXPECT_EQ(back.bytes_copied, n);
  Bytes got(padded.size());
  ASSERT_TRUE(testing::execute(
                  *to, cdb::read16(0, static_cast<std::uint32_t>(got.size() / 512), false), got, {})
                  .ok());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), got.begin())) << "tgt's second disk";
}

}  // namespace
}  // namespace scsi
