// The emulated SSC tape drive at the CDB level: the sense, INFORMATION and
// data of every stream condition exactly as SSC-4 specifies them.

#include <gtest/gtest.h>

#include "emu_support.h"
#include "scsi/cdb.h"
#include "scsi/parse.h"

namespace scsi {
namespace {

using testing::Exec;
using testing::run;

class SscDriveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    lib_ =
        emu::VirtualLibrary::open(testing::library_spec(dir_.path() / "vtl", 3, 8u << 20, 6u << 20),
                                  testing::test_installation_id(), error);
    ASSERT_TRUE(lib_) << error;
    drive_ = lib_->drives()[0];
    // Load the first cartridge: slot 1024 -> drive 256.
    ASSERT_TRUE(run(*lib_->changer(), cdb::move_medium(0, 1024, 256, false)).good());
    const Exec ua = run(*drive_, cdb::test_unit_ready());
    ASSERT_TRUE(ua.is(SenseKey::kUnitAttention, 0x28, 0x00));
    ASSERT_TRUE(run(*drive_, cdb::test_unit_ready()).good());
  }

  Exec write(const Bytes& record) {
    return run(*drive_, cdb::write6(false, static_cast<std::uint32_t>(record.size())), 0, record);
  }
  Exec read(std::uint32_t length, bool sili = false) {
    return run(*drive_, cdb::read6(false, sili, length), length);
  }
  Exec filemarks(std::uint32_t n) { return run(*drive_, cdb::write_filemarks6(n, false)); }
  Exec rewind() { return run(*drive_, cdb::rewind(false)); }
  std::uint64_t position() {
    const Exec e = run(*drive_, cdb::read_position(cdb::ReadPositionForm::kLong), 32);
    EXPECT_TRUE(e.good());
    const auto p = parse::read_position_long(e.data);
    EXPECT_TRUE(p.has_value());
    return p ? p->logical_object : ~0ull;
  }

  testing::ScratchDir dir_{"ssc"};
  std::unique_ptr<emu::VirtualLibrary> lib_;
  std::shared_ptr<emu::SscDrive> drive_;
};

TEST_F(SscDriveTest, InquiryNamesATapeDriveWithSerialAndNaa) {
  const Exec std_inq = run(*drive_, cdb::inquiry(false, 0, 96), 96);
  ASSERT_TRUE(std_inq.good());
  const auto inq = parse::standard_inquiry(std_inq.data);
  ASSERT_TRUE(inq);
  EXPECT_EQ(inq->peripheral_type, 0x01);
  EXPECT_TRUE(inq->removable);
  EXPECT_EQ(inq->vendor, "NDMPD");
  const Exec pages = run(*drive_, cdb::inquiry(true, 0x00, 255), 255);
  const auto list = parse::supported_vpd_pages(pages.data);
  ASSERT_TRUE(list);
  EXPECT_EQ(*list, (std::vector<std::uint8_t>{0x00, 0x80, 0x83, 0xB0}));
  const Exec serial = run(*drive_, cdb::inquiry(true, 0x80, 255), 255);
  EXPECT_EQ(parse::unit_serial_number(serial.data).value_or(""), drive_->identity().serial);
  const Exec ids = run(*drive_, cdb::inquiry(true, 0x83, 255), 255);
  const auto d = parse::device_identification(ids.data);
  ASSERT_TRUE(d);
  const auto naa = parse::preferred_lu_designator(*d);
  ASSERT_TRUE(naa);
  EXPECT_EQ(naa->designator_type, parse::kDesignatorNaa);
  EXPECT_EQ(naa->designator.size(), 16u);
  EXPECT_EQ(naa->designator[0] >> 4, 6);  // NAA IEEE Registered Extended
  // The other drive has another designator and serial.
  EXPECT_NE(lib_->drives()[1]->identity().naa, drive_->identity().naa);
  EXPECT_NE(lib_->drives()[1]->identity().serial, drive_->identity().serial);
  // Unknown VPD page.
  EXPECT_TRUE(
      run(*drive_, cdb::inquiry(true, 0x99, 255), 255).is(SenseKey::kIllegalRequest, 0x24, 0x00));
}

TEST_F(SscDriveTest, EmptyDriveIsNotReadyMediumNotPresent) {
  const auto& other = lib_->drives()[1];
  EXPECT_TRUE(run(*other, cdb::test_unit_ready()).is(SenseKey::kNotReady, 0x3A, 0x00));
  EXPECT_TRUE(run(*other, cdb::read6(false, false, 10), 10).is(SenseKey::kNotReady, 0x3A, 0x00));
  // REQUEST SENSE reports the same state.
  const Exec rs = run(*other, cdb::request_sense(18, false), 18);
  ASSERT_TRUE(rs.good());
  const auto s = decode_sense(rs.data);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->is(SenseKey::kNotReady, 0x3A, 0x00));
  // READ BLOCK LIMITS needs no medium.
  const Exec bl = run(*other, cdb::read_block_limits(), 6);
  ASSERT_TRUE(bl.good());
  EXPECT_EQ(parse::read_block_limits(bl.data)->max_block_length, emu::SscDrive::kMaxBlockLength);
}

TEST_F(SscDriveTest, VariableRecordsFilemarksAndEndOfData) {
  const Bytes a = testing::pattern(1000, 1), b = testing::pattern(70000, 2);
  ASSERT_TRUE(write(a).good());
  ASSERT_TRUE(write(b).good());
  ASSERT_TRUE(filemarks(1).good());
  ASSERT_TRUE(write(a).good());
  ASSERT_TRUE(filemarks(2).good());
  EXPECT_EQ(position(), 6u);
  ASSERT_TRUE(rewind().good());
  EXPECT_EQ(position(), 0u);

  Exec e = read(1000);
  ASSERT_TRUE(e.good());
  EXPECT_EQ(e.data, a);
  // A read longer than the record: ILI, INFORMATION = requested - actual.
  e = read(80000);
  ASSERT_TRUE(e.sense);
  EXPECT_EQ(e.sense->key, SenseKey::kNoSense);
  EXPECT_TRUE(e.sense->ili);
  EXPECT_TRUE(e.sense->information_valid);
  EXPECT_EQ(e.sense->information, 10000);
  EXPECT_EQ(e.data, b);  // the data comes with the CHECK CONDITION
  // At the filemark: FILEMARK, 00/01, INFORMATION = requested, no data, and
  // the head is past it.
  e = read(512);
  ASSERT_TRUE(e.sense);
  EXPECT_TRUE(e.sense->filemark);
  EXPECT_TRUE(e.sense->is(SenseKey::kNoSense, 0x00, 0x01));
  EXPECT_EQ(e.sense->information, 512);
  EXPECT_TRUE(e.data.empty());
  EXPECT_EQ(position(), 3u);
  // A read shorter than the record: ILI with negative INFORMATION; the
  // head moves past the whole record.
  e = read(10);
  ASSERT_TRUE(e.sense);
  EXPECT_TRUE(e.sense->ili);
  EXPECT_EQ(e.sense->information, 10 - 1000);
  EXPECT_EQ(e.data, Bytes(a.begin(), a.begin() + 10));
  EXPECT_EQ(position(), 4u);
  EXPECT_TRUE(read(10).sense->filemark);
  EXPECT_TRUE(read(10).sense->filemark);
  // End of data: BLANK CHECK 00/05, INFORMATION = requested.
  e = read(64);
  ASSERT_TRUE(e.is(SenseKey::kBlankCheck, 0x00, 0x05));
  EXPECT_EQ(e.sense->information, 64);
}

TEST_F(SscDriveTest, SiliSuppressesOnlyTheShortRecordCondition) {
  ASSERT_TRUE(write(testing::pattern(100, 3)).good());
  ASSERT_TRUE(write(testing::pattern(100, 4)).good());
  ASSERT_TRUE(rewind().good());
  Exec e = read(200, true);
  EXPECT_TRUE(e.good());
  EXPECT_EQ(e.data.size(), 100u);
  EXPECT_EQ(e.result.residual, 100u);
  e = read(50, true);  // longer than asked for: still ILI
  ASSERT_TRUE(e.sense);
  EXPECT_TRUE(e.sense->ili);
  EXPECT_EQ(e.sense->information, -50);
}

TEST_F(SscDriveTest, FixedBlockMode) {
  // MODE SELECT block length 512, then 4 blocks in one WRITE.
  Bytes sel(12, 0);
  sel[3] = 8;
  sel[10] = 0x02;  // 512
  ASSERT_TRUE(run(*drive_, cdb::mode_select6(true, false, 12), 0, sel).good());
  const Exec ms = run(*drive_, cdb::mode_sense6(false, 0, 0, 0, 255), 255);
  const auto mp = parse::mode_sense6(ms.data);
  ASSERT_TRUE(mp && !mp->block_descriptors.empty());
  EXPECT_EQ(mp->block_descriptors[0].block_length, 512u);
  const Bytes four = testing::pattern(2048, 5);
  ASSERT_TRUE(run(*drive_, cdb::write6(true, 4), 0, four).good());
  ASSERT_TRUE(filemarks(1).good());
  ASSERT_TRUE(run(*drive_, cdb::write6(true, 1), 0, testing::pattern(512, 6)).good());
  ASSERT_TRUE(rewind().good());
  // Six blocks asked for: four, then the filemark: INFORMATION = 6 - 4.
  Exec e = run(*drive_, cdb::read6(true, false, 6), 6 * 512);
  ASSERT_TRUE(e.sense);
  EXPECT_TRUE(e.sense->filemark);
  EXPECT_EQ(e.sense->information, 2);
  EXPECT_EQ(e.data, four);
  // FIXED with SILI is illegal; FIXED in variable mode is illegal.
  EXPECT_TRUE(run(*drive_, cdb::read6(false, false, 1), 1).sense->ili);  // variable read of 512
  Bytes cdb_bad = cdb::read6(true, false, 1);
  cdb_bad[1] |= 0x02;
  EXPECT_TRUE(run(*drive_, cdb_bad, 512).is(SenseKey::kIllegalRequest, 0x24, 0x00));
  sel[10] = 0;  // back to variable
  ASSERT_TRUE(run(*drive_, cdb::mode_select6(true, false, 12), 0, sel).good());
  EXPECT_TRUE(
      run(*drive_, cdb::write6(true, 1), 0, Bytes(512)).is(SenseKey::kIllegalRequest, 0x24, 0x00));
  // A block length over the limit is refused in the parameter list.
  sel[9] = 0xFF;
  EXPECT_TRUE(run(*drive_, cdb::mode_select6(true, false, 12), 0, sel)
                  .is(SenseKey::kIllegalRequest, 0x26, 0x00));
}

TEST_F(SscDriveTest, FixedModeIncorrectLengthBlock) {
  ASSERT_TRUE(write(testing::pattern(512, 1)).good());
  ASSERT_TRUE(write(testing::pattern(300, 2)).good());  // not 512
  ASSERT_TRUE(rewind().good());
  Bytes sel(12, 0);
  sel[3] = 8;
  sel[10] = 0x02;
  ASSERT_TRUE(run(*drive_, cdb::mode_select6(true, false, 12), 0, sel).good());
  const Exec e = run(*drive_, cdb::read6(true, false, 3), 3 * 512);
  ASSERT_TRUE(e.sense);
  EXPECT_TRUE(e.sense->ili);
  EXPECT_EQ(e.sense->information, 2);  // 3 asked, 1 read before the odd one
  EXPECT_EQ(e.data.size(), 512u);
  EXPECT_EQ(position(), 2u);  // past the odd block
}

TEST_F(SscDriveTest, SpaceBlocksAndFilemarksWithResidues) {
  // 0:r 1:r 2:FM 3:r 4:FM 5:r  EOD=6
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(write(testing::pattern(10, i)).good());
  ASSERT_TRUE(filemarks(1).good());
  ASSERT_TRUE(write(testing::pattern(10, 9)).good());
  ASSERT_TRUE(filemarks(1).good());
  ASSERT_TRUE(write(testing::pattern(10, 8)).good());
  ASSERT_TRUE(rewind().good());

  // Forward 5 blocks: stops after the filemark at 2, INFORMATION = 5 - 2.
  Exec e = run(*drive_, cdb::space6(cdb::SpaceCode::kBlocks, 5));
  ASSERT_TRUE(e.sense);
  EXPECT_TRUE(e.sense->filemark);
  EXPECT_EQ(e.sense->information, 3);
  EXPECT_EQ(position(), 3u);
  // Backward 2 blocks from 3: over 2 (the filemark): stops on its BOP side.
  e = run(*drive_, cdb::space6(cdb::SpaceCode::kBlocks, -2));
  ASSERT_TRUE(e.sense);
  EXPECT_TRUE(e.sense->filemark);
  EXPECT_EQ(e.sense->information, 2);
  EXPECT_EQ(position(), 2u);
  // Forward two filemarks from 2: after the one at 4.
  EXPECT_TRUE(run(*drive_, cdb::space6(cdb::SpaceCode::kFilemarks, 2)).good());
  EXPECT_EQ(position(), 5u);
  // One more filemark: there is none: BLANK CHECK at end of data.
  e = run(*drive_, cdb::space6(cdb::SpaceCode::kFilemarks, 1));
  EXPECT_TRUE(e.is(SenseKey::kBlankCheck, 0x00, 0x05));
  EXPECT_EQ(e.sense->information, 1);
  EXPECT_EQ(position(), 6u);
  // Back one filemark: on the BOP side of the one at 4.
  EXPECT_TRUE(run(*drive_, cdb::space6(cdb::SpaceCode::kFilemarks, -1)).good());
  EXPECT_EQ(position(), 4u);
  // Back three filemarks: only one more exists: BOP, EOM bit, 00/04.
  e = run(*drive_, cdb::space6(cdb::SpaceCode::kFilemarks, -3));
  ASSERT_TRUE(e.sense);
  EXPECT_TRUE(e.sense->eom);
  EXPECT_TRUE(e.sense->is(SenseKey::kNoSense, 0x00, 0x04));
  EXPECT_EQ(e.sense->information, 2);
  EXPECT_EQ(position(), 0u);
  // Backward blocks at BOP.
  e = run(*drive_, cdb::space6(cdb::SpaceCode::kBlocks, -1));
  EXPECT_TRUE(e.sense && e.sense->eom);
  // End of data, and SPACE(16).
  EXPECT_TRUE(run(*drive_, cdb::space6(cdb::SpaceCode::kEndOfData, 0)).good());
  EXPECT_EQ(position(), 6u);
  EXPECT_TRUE(run(*drive_, cdb::space16(cdb::SpaceCode::kBlocks, -1)).good());
  EXPECT_EQ(position(), 5u);
  // Forward blocks into end of data.
  e = run(*drive_, cdb::space6(cdb::SpaceCode::kBlocks, 4));
  EXPECT_TRUE(e.is(SenseKey::kBlankCheck, 0x00, 0x05));
  EXPECT_EQ(e.sense->information, 3);
}

TEST_F(SscDriveTest, LocateAndReadPositionBothForms) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(write(testing::pattern(10, i)).good());
  ASSERT_TRUE(filemarks(1).good());
  ASSERT_TRUE(write(testing::pattern(10, 7)).good());
  EXPECT_TRUE(run(*drive_, cdb::locate10(3, false, false, 0)).good());
  EXPECT_EQ(position(), 3u);
  const Exec s = run(*drive_, cdb::read_position(cdb::ReadPositionForm::kShort), 20);
  const auto sp = parse::read_position_short(s.data);
  ASSERT_TRUE(sp);
  EXPECT_EQ(sp->first_location, 3u);
  EXPECT_FALSE(sp->bop);
  EXPECT_TRUE(run(*drive_, cdb::locate16(6, 0, false, 0)).good());
  const Exec l = run(*drive_, cdb::read_position(cdb::ReadPositionForm::kLong), 32);
  const auto lp = parse::read_position_long(l.data);
  ASSERT_TRUE(lp);
  EXPECT_EQ(lp->logical_object, 6u);
  EXPECT_EQ(lp->logical_file, 1u);  // one filemark before
  // LOCATE(16) by logical file: after the first filemark.
  EXPECT_TRUE(run(*drive_, cdb::locate16(1, 1, false, 0)).good());
  EXPECT_EQ(position(), 6u);
  // Beyond end of data: BLANK CHECK, at end of data.
  EXPECT_TRUE(run(*drive_, cdb::locate10(100, false, false, 0)).is(SenseKey::kBlankCheck, 0, 5));
  EXPECT_EQ(position(), 7u);
  EXPECT_TRUE(run(*drive_, cdb::locate10(0, false, false, 0)).good());
  const Exec b = run(*drive_, cdb::read_position(cdb::ReadPositionForm::kShort), 20);
  EXPECT_TRUE(parse::read_position_short(b.data)->bop);
}

TEST_F(SscDriveTest, WritingInTheMiddleDiscardsWhatFollowed) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(write(testing::pattern(10, i)).good());
  ASSERT_TRUE(run(*drive_, cdb::locate10(2, false, false, 0)).good());
  ASSERT_TRUE(write(testing::pattern(20, 99)).good());
  EXPECT_TRUE(read(20).is(SenseKey::kBlankCheck, 0x00, 0x05));
  ASSERT_TRUE(run(*drive_, cdb::locate10(2, false, false, 0)).good());
  EXPECT_EQ(read(20).data, testing::pattern(20, 99));
  // ERASE at 1 leaves one record.
  ASSERT_TRUE(run(*drive_, cdb::locate10(1, false, false, 0)).good());
  ASSERT_TRUE(run(*drive_, cdb::erase6(false, false)).good());
  ASSERT_TRUE(rewind().good());
  EXPECT_TRUE(read(10).good());
  EXPECT_TRUE(read(10).is(SenseKey::kBlankCheck, 0x00, 0x05));
}

TEST_F(SscDriveTest, EarlyWarningThenVolumeOverflow) {
  // The cartridge holds 8 MiB, early warning at 6 MiB.
  const Bytes record = testing::pattern(1u << 20, 11);
  int written = 0;
  Exec e;
  for (; written < 5; ++written) {
    e = write(record);
    ASSERT_TRUE(e.good()) << written;
  }
  // The 6th MiB reaches early warning: written, then NO SENSE, EOM, 00/02.
  e = write(record);
  ASSERT_TRUE(e.sense);
  EXPECT_TRUE(e.sense->is(SenseKey::kNoSense, 0x00, 0x02));
  EXPECT_TRUE(e.sense->eom);
  EXPECT_EQ(e.sense->information, 0);
  ++written;
  for (; written < 8; ++written) {  // the 7th and 8th still fit: early warning again
    e = write(record);
    EXPECT_TRUE(e.sense && e.sense->eom && e.sense->key == SenseKey::kNoSense) << written;
  }
  // No room: VOLUME OVERFLOW, EOM, nothing written, INFORMATION = length.
  e = write(record);
  ASSERT_TRUE(e.sense);
  EXPECT_EQ(e.sense->key, SenseKey::kVolumeOverflow);
  EXPECT_TRUE(e.sense->eom);
  EXPECT_EQ(e.sense->information, 1 << 20);
  // READ POSITION says beyond early warning.
  const Exec s = run(*drive_, cdb::read_position(cdb::ReadPositionForm::kShort), 20);
  EXPECT_TRUE(parse::read_position_short(s.data)->bpew);
  // Everything written reads back; then end of data.
  ASSERT_TRUE(rewind().good());
  for (int i = 0; i < written; ++i) ASSERT_EQ(read(1u << 20).data, record) << i;
  EXPECT_TRUE(read(10).is(SenseKey::kBlankCheck, 0x00, 0x05));
}

TEST_F(SscDriveTest, WriteProtectedCartridge) {
  // Unload, protect the cartridge file, load it again.
  ASSERT_TRUE(run(*lib_->changer(), cdb::move_medium(0, 256, 1024, false)).good());
  {
    std::string error;
    auto c = emu::Cartridge::open(lib_->cartridge_path("TST001L6"), error);
    ASSERT_TRUE(c) << error;
    c->set_write_protected(true);
  }
  ASSERT_TRUE(run(*lib_->changer(), cdb::move_medium(0, 1024, 256, false)).good());
  run(*drive_, cdb::test_unit_ready());  // the unit attention
  EXPECT_TRUE(write(Bytes(10)).is(SenseKey::kDataProtect, 0x27, 0x00));
  EXPECT_TRUE(filemarks(1).is(SenseKey::kDataProtect, 0x27, 0x00));
  EXPECT_TRUE(run(*drive_, cdb::erase6(false, false)).is(SenseKey::kDataProtect, 0x27, 0x00));
  const Exec ms = run(*drive_, cdb::mode_sense6(false, 0, 0, 0, 255), 255);
  EXPECT_TRUE(parse::mode_sense6(ms.data)->write_protected);
}

TEST_F(SscDriveTest, UnloadThenLoad) {
  ASSERT_TRUE(write(Bytes(10, 1)).good());
  ASSERT_TRUE(run(*drive_, cdb::load_unload(false, false, false, false, false)).good());
  EXPECT_TRUE(run(*drive_, cdb::test_unit_ready()).is(SenseKey::kNotReady, 0x04, 0x02));
  ASSERT_TRUE(run(*drive_, cdb::load_unload(true, false, false, false, false)).good());
  EXPECT_TRUE(run(*drive_, cdb::test_unit_ready()).good());
  EXPECT_EQ(position(), 0u);
  EXPECT_EQ(read(10).data, Bytes(10, 1));
}

TEST_F(SscDriveTest, LogSenseTapeCapacity) {
  const Exec list = run(*drive_, cdb::log_sense(1, 0x00, 0, 0, 64), 64);
  ASSERT_TRUE(list.good());
  EXPECT_EQ(list.data, (Bytes{0x00, 0x00, 0x00, 0x02, 0x00, 0x31}));
  const Exec before = run(*drive_, cdb::log_sense(1, 0x31, 0, 0, 64), 64);
  ASSERT_TRUE(before.good());
  ASSERT_EQ(before.data.size(), 4u + 4 * 8);
  EXPECT_EQ(before.data[0], 0x31);
  auto value = [](const Bytes& page, std::uint16_t code) -> std::uint32_t {
    for (std::size_t at = 4; at + 8 <= page.size(); at += 8) {
      if ((page[at] << 8 | page[at + 1]) == code && page[at + 3] == 4) {
        return static_cast<std::uint32_t>(page[at + 4] << 24 | page[at + 5] << 16 |
                                          page[at + 6] << 8 | page[at + 7]);
      }
    }
    ADD_FAILURE() << "no parameter " << code;
    return 0;
  };
  EXPECT_EQ(value(before.data, 3), 8u);  // 8 MiB cartridge
  EXPECT_EQ(value(before.data, 1), 8u);  // nothing written yet
  ASSERT_TRUE(write(Bytes(3u << 20, 7)).good());
  const Exec after = run(*drive_, cdb::log_sense(1, 0x31, 0, 0, 64), 64);
  ASSERT_TRUE(after.good());
  EXPECT_EQ(value(after.data, 3), 8u);
  EXPECT_LE(value(after.data, 1), 5u);
  EXPECT_GE(value(after.data, 1), 4u);
  // The allocation length truncates; unknown pages, subpages, other page
  // controls and a parameter pointer are refused.
  EXPECT_EQ(run(*drive_, cdb::log_sense(1, 0x31, 0, 0, 8), 8).data.size(), 8u);
  EXPECT_TRUE(run(*drive_, cdb::log_sense(1, 0x2E, 0, 0, 64), 64)
                  .is(SenseKey::kIllegalRequest, 0x24, 0x00));
  EXPECT_TRUE(run(*drive_, cdb::log_sense(1, 0x31, 1, 0, 64), 64)
                  .is(SenseKey::kIllegalRequest, 0x24, 0x00));
  EXPECT_TRUE(run(*drive_, cdb::log_sense(0, 0x31, 0, 0, 64), 64)
                  .is(SenseKey::kIllegalRequest, 0x24, 0x00));
  EXPECT_TRUE(run(*drive_, cdb::log_sense(1, 0x31, 0, 1, 64), 64)
                  .is(SenseKey::kIllegalRequest, 0x24, 0x00));
  // An empty drive has no capacity to report.
  ASSERT_TRUE(run(*drive_, cdb::load_unload(false, false, false, false, false)).good());
  EXPECT_TRUE(
      run(*drive_, cdb::log_sense(1, 0x31, 0, 0, 64), 64).is(SenseKey::kNotReady, 0x04, 0x02));
}

TEST_F(SscDriveTest, LogicalUnitResetRaisesUnitAttentionAndAllowsRemoval) {
  ASSERT_TRUE(write(Bytes(10, 1)).good());
  ASSERT_TRUE(run(*drive_, cdb::prevent_allow_medium_removal(true)).good());
  std::string error;
  EXPECT_EQ(drive_->remove(error), nullptr);
  emu::EmulatedDevice device(drive_, "vtl.drive0");
  ASSERT_TRUE(device.can_reset());
  EXPECT_TRUE(device.reset().ok());
  EXPECT_TRUE(run(*drive_, cdb::test_unit_ready()).is(SenseKey::kUnitAttention, 0x29, 0x03));
  EXPECT_TRUE(run(*drive_, cdb::test_unit_ready()).good());
  // The medium stays where it was; the reset released the prevention.
  EXPECT_EQ(position(), 1u);
  auto cartridge = drive_->remove(error);
  EXPECT_NE(cartridge, nullptr) << error;
  drive_->insert(std::move(cartridge));
}

TEST_F(SscDriveTest, MalformedCdbsAreRefusedNotMisread) {
  EXPECT_TRUE(run(*drive_, Bytes{0x08, 0, 0}, 10).is(SenseKey::kIllegalRequest, 0x24, 0x00));
  EXPECT_TRUE(run(*drive_, Bytes{0xE0, 0, 0, 0, 0, 0}).is(SenseKey::kIllegalRequest, 0x20, 0x00));
  EXPECT_TRUE(run(*drive_, Bytes{}).is(SenseKey::kIllegalRequest, 0x20, 0x00));
  // A WRITE whose data-out is shorter than its transfer length.
  EXPECT_TRUE(run(*drive_, cdb::write6(false, 100), 0, Bytes(50))
                  .is(SenseKey::kIllegalRequest, 0x1A, 0x00));
  // A READ whose buffer is smaller than its transfer length.
  EXPECT_TRUE(
      run(*drive_, cdb::read6(false, false, 100), 50).is(SenseKey::kIllegalRequest, 0x24, 0x00));
}

}  // namespace
}  // namespace scsi
