// TapeDrive over a fault-injecting wrapper around an emulated drive: every
// sense path the client turns into an answer (incorrect length with the
// record's real length, filemark, end of data, early warning, overflow,
// write protection, not ready, unit attention, medium error, a transport
// failure, a slow device) is produced on purpose and checked.

#include "tape/tape_drive.h"

#include <gtest/gtest.h>

#include "scsi/cdb.h"
#include "scsi/emu/library.h"
#include "scsi/emu_support.h"
#include "scsi/fault.h"

namespace tape {
namespace {

using scsi::Bytes;
using scsi::SenseKey;

class TapeDriveFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    lib_ = scsi::emu::VirtualLibrary::open(
        scsi::testing::library_spec(dir_.path() / "vtl", 2, 16u << 20, 12u << 20),
        scsi::testing::test_installation_id(), error);
    ASSERT_TRUE(lib_) << error;
    auto unit = lib_->drives()[0];
    // Slot 1024 -> drive 256, through the changer unit.
    ASSERT_TRUE(lib_->changer()->execute(scsi::cdb::move_medium(0, 1024, 256, false), {}, {}).ok());
    faulty_ = std::make_shared<scsi::FaultInjectingDevice>(
        std::make_shared<scsi::emu::EmulatedDevice>(unit, "vtl.drive0"));
    drive_ = std::make_unique<TapeDrive>(faulty_);
    ASSERT_TRUE(drive_->wait_ready(std::chrono::seconds(5)).ok());
  }

  scsi::testing::ScratchDir dir_{"tapedrive"};
  std::unique_ptr<scsi::emu::VirtualLibrary> lib_;
  std::shared_ptr<scsi::FaultInjectingDevice> faulty_;
  std::unique_ptr<TapeDrive> drive_;
};

TEST_F(TapeDriveFaults, ReadsGiveTheRecordsRealLength) {
  const Bytes rec = scsi::testing::pattern(1000, 1);
  ASSERT_TRUE(drive_->write(rec).ok());
  ASSERT_TRUE(drive_->write(rec).ok());
  ASSERT_TRUE(drive_->rewind().ok());
  Bytes big(4096);
  TapeDrive::Read r = drive_->read(big);
  EXPECT_EQ(r.status.condition, Condition::kIncorrectLength);
  EXPECT_EQ(r.bytes, 1000u);
  EXPECT_EQ(r.record_length, 1000u);
  EXPECT_TRUE(std::equal(rec.begin(), rec.end(), big.begin()));
  Bytes small(100);
  r = drive_->read(small);
  EXPECT_EQ(r.status.condition, Condition::kIncorrectLength);
  EXPECT_EQ(r.bytes, 100u);
  EXPECT_EQ(r.record_length, 1000u);
  EXPECT_TRUE(std::equal(small.begin(), small.end(), rec.begin()));
}

TEST_F(TapeDriveFaults, FilemarkAndEndOfData) {
  ASSERT_TRUE(drive_->write(Bytes(10, 1)).ok());
  ASSERT_TRUE(drive_->write_filemarks(1).ok());
  ASSERT_TRUE(drive_->rewind().ok());
  Bytes buf(10);
  EXPECT_TRUE(drive_->read(buf).status.ok());
  TapeDrive::Read r = drive_->read(buf);
  EXPECT_EQ(r.status.condition, Condition::kFilemark);
  EXPECT_EQ(r.bytes, 0u);
  r = drive_->read(buf);
  EXPECT_EQ(r.status.condition, Condition::kEndOfData);
  // Spacing: residues.
  ASSERT_TRUE(drive_->rewind().ok());
  Status s = drive_->space_blocks(5);
  EXPECT_EQ(s.condition, Condition::kFilemark);
  EXPECT_EQ(s.residue, 4);
  s = drive_->space_filemarks(1);
  EXPECT_EQ(s.condition, Condition::kEndOfData);
  s = drive_->space_blocks(-5);
  EXPECT_EQ(s.condition, Condition::kFilemark);
  s = drive_->space_filemarks(-1);
  EXPECT_EQ(s.condition, Condition::kBeginningOfMedium);
  EXPECT_EQ(s.residue, 1);
}

TEST_F(TapeDriveFaults, EarlyWarningInjectedAtBlockN) {
  faulty_->early_warning_at_block(3);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(drive_->write(Bytes(100, 1)).ok()) << i;
  Status s = drive_->write(Bytes(100, 2));
  EXPECT_EQ(s.condition, Condition::kEarlyWarning);
  EXPECT_TRUE(s.eom);
  // The record that met early warning was written.
  ASSERT_TRUE(drive_->rewind().ok());
  EXPECT_EQ(drive_->space_end_of_data().condition, Condition::kOk);
  EXPECT_EQ(drive_->read_position().object, 4u);
}

TEST_F(TapeDriveFaults, EarlyWarningOfTheCartridgeItself) {
  // 16 MiB cartridge, early warning at 12 MiB.
  const Bytes mib(1u << 20, 3);
  int ok = 0;
  Status s;
  while ((s = drive_->write(mib)).ok()) ++ok;
  EXPECT_EQ(ok, 11);  // the 12th crosses early warning
  EXPECT_EQ(s.condition, Condition::kEarlyWarning);
  EXPECT_TRUE(drive_->read_position().bpew);
}

TEST_F(TapeDriveFaults, OverflowIsNotWritten) {
  faulty_->overflow_at_block(2);
  EXPECT_TRUE(drive_->write(Bytes(100)).ok());
  EXPECT_TRUE(drive_->write(Bytes(100)).ok());
  const Status s = drive_->write(Bytes(100));
  EXPECT_EQ(s.condition, Condition::kOverflow);
  EXPECT_TRUE(s.residue_valid);
  EXPECT_EQ(s.residue, 100);
  EXPECT_EQ(drive_->read_position().object, 2u);
}

TEST_F(TapeDriveFaults, WriteProtectAndMediumErrorAndNotReady) {
  faulty_->sense_on_opcode(0x0A, 1, {.key = SenseKey::kDataProtect, .asc = 0x27, .ascq = 0});
  EXPECT_EQ(drive_->write(Bytes(10)).condition, Condition::kWriteProtected);
  faulty_->sense_on_opcode(0x08, 1, {.key = SenseKey::kMediumError, .asc = 0x11, .ascq = 0});
  Bytes buf(10);
  EXPECT_EQ(drive_->read(buf).status.condition, Condition::kMediumError);
  faulty_->sense_on_command(1, {.key = SenseKey::kNotReady, .asc = 0x3A, .ascq = 0});
  EXPECT_EQ(drive_->test_unit_ready().condition, Condition::kNoMedium);
  faulty_->sense_on_command(1, {.key = SenseKey::kNotReady, .asc = 0x04, .ascq = 0x01});
  EXPECT_EQ(drive_->test_unit_ready().condition, Condition::kNotReady);
  // wait_ready passes over becoming-ready and unit attentions.
  faulty_->sense_on_command(1, {.key = SenseKey::kUnitAttention, .asc = 0x29, .ascq = 0});
  faulty_->sense_on_command(2, {.key = SenseKey::kNotReady, .asc = 0x04, .ascq = 0x01});
  EXPECT_TRUE(drive_->wait_ready(std::chrono::seconds(5)).ok());
}

TEST_F(TapeDriveFaults, TheCartridgesOwnWriteProtection) {
  ASSERT_TRUE(lib_->changer()->execute(scsi::cdb::move_medium(0, 256, 1024, false), {}, {}).ok());
  {
    std::string error;
    auto c = scsi::emu::Cartridge::open(lib_->cartridge_path("TST001L6"), error);
    ASSERT_TRUE(c) << error;
    c->set_write_protected(true);
  }
  ASSERT_TRUE(lib_->changer()->execute(scsi::cdb::move_medium(0, 1024, 256, false), {}, {}).ok());
  ASSERT_TRUE(drive_->wait_ready(std::chrono::seconds(5)).ok());
  EXPECT_TRUE(drive_->mode().write_protected);
  EXPECT_EQ(drive_->write(Bytes(10)).condition, Condition::kWriteProtected);
}

TEST_F(TapeDriveFaults, TransportFailureAndDelay) {
  faulty_->transport_error_on_command(1, "connection reset");
  const Status s = drive_->write(Bytes(10));
  EXPECT_EQ(s.condition, Condition::kTransport);
  EXPECT_EQ(s.detail, "connection reset");
  // The injected failure did not reach the drive: nothing was written.
  EXPECT_EQ(drive_->read_position().object, 0u);
  faulty_->delay(std::chrono::milliseconds(100));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(drive_->test_unit_ready().ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
}

TEST_F(TapeDriveFaults, MisbehavingDevicesAreInjectedPerOperationCode) {
  using Misbehaviour = scsi::FaultInjectingDevice::Misbehaviour;
  constexpr std::uint8_t kRead6 = 0x08;
  const Bytes rec = scsi::testing::pattern(1000, 2);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(drive_->write(rec).ok());
  ASSERT_TRUE(drive_->rewind().ok());
  // GOOD with half the record: the rest of the buffer zeroed.
  faulty_->misbehave_on_opcode(kRead6, Misbehaviour::kHalfData);
  Bytes buffer(1000, 0xEE);
  TapeDrive::Read r = drive_->read(buffer);
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.bytes, 500u);
  EXPECT_TRUE(std::equal(rec.begin(), rec.begin() + 500, buffer.begin()));
  EXPECT_TRUE(std::all_of(buffer.begin() + 500, buffer.end(), [](auto b) { return b == 0; }));
  // GOOD with nothing, and the drive does not move.
  faulty_->misbehave_on_opcode(kRead6, Misbehaviour::kEmptyGood);
  r = drive_->read(buffer);
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.bytes, 0u);
  EXPECT_EQ(drive_->read_position().object, 1u);
  // An exception out of execute().
  faulty_->misbehave_on_opcode(kRead6, Misbehaviour::kThrow);
  EXPECT_THROW(drive_->read(buffer), std::bad_alloc);
  EXPECT_EQ(faulty_->misbehaved(), 3u);
  // Other operation codes pass, and clear() ends the rule.
  EXPECT_TRUE(drive_->test_unit_ready().ok());
  faulty_->clear();
  r = drive_->read(buffer);
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(buffer, rec);
}

TEST_F(TapeDriveFaults, CapacityFromTheLogPage) {
  TapeDrive::Capacity c = drive_->capacity();
  ASSERT_TRUE(c.status.ok());
  EXPECT_EQ(c.total, 16u << 20);
  EXPECT_EQ(c.remaining, 16u << 20);
  ASSERT_TRUE(drive_->write(Bytes(2u << 20, 3)).ok());
  c = drive_->capacity();
  ASSERT_TRUE(c.status.ok());
  EXPECT_EQ(c.total, 16u << 20);
  EXPECT_LT(c.remaining, 15u << 20);
  EXPECT_GE(c.remaining, 13u << 20);
}

TEST_F(TapeDriveFaults, FixedBlocksAndModes) {
  ASSERT_TRUE(drive_->set_block_length(1024).ok());
  EXPECT_EQ(drive_->mode().block_length, 1024u);
  const Bytes data = scsi::testing::pattern(4096, 5);
  ASSERT_TRUE(drive_->write_fixed(data, 1024).ok());
  ASSERT_TRUE(drive_->write_filemarks(1).ok());
  ASSERT_TRUE(drive_->rewind().ok());
  Bytes back(8192);
  const TapeDrive::Read r = drive_->read_fixed(back, 1024);
  EXPECT_EQ(r.status.condition, Condition::kFilemark);
  EXPECT_EQ(r.bytes, 4096u);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), back.begin()));
  ASSERT_TRUE(drive_->set_block_length(0).ok());
  const TapeDrive::Limits l = drive_->block_limits();
  EXPECT_TRUE(l.status.ok());
  EXPECT_EQ(l.min, 1u);
  const auto id = drive_->identity();
  ASSERT_TRUE(id);
  EXPECT_EQ(id->peripheral_type, 1);
  EXPECT_EQ(id->designator.size(), 16u);
}

}  // namespace
}  // namespace tape
