// The emulated SBC disk: capacity, reads and writes at the edges, range
// errors, and the VPD pages a copy manager and initiators look at.

#include <gtest/gtest.h>

#include "emu_support.h"
#include "scsi/cdb.h"
#include "scsi/emu/sbc_disk.h"
#include "scsi/parse.h"

namespace scsi {
namespace {

using testing::Exec;
using testing::run;

class DiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    disk_ = emu::SbcDisk::open(
        emu::make_identity(0, "VIRTUAL DISK", testing::test_installation_id(), "lun0"),
        dir_.path() / "lun0.img", 4u << 20, 512, error);
    ASSERT_TRUE(disk_) << error;
  }
  testing::ScratchDir dir_{"sbc"};
  std::shared_ptr<emu::SbcDisk> disk_;
};

TEST_F(DiskTest, CapacityAndIdentity) {
  const Exec e = run(*disk_, cdb::read_capacity16(32), 32);
  ASSERT_TRUE(e.good());
  const auto c = parse::read_capacity16(e.data);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->last_lba, 8191u);
  EXPECT_EQ(c->block_length, 512u);
  const Exec inq = run(*disk_, cdb::inquiry(false, 0, 36), 36);
  EXPECT_EQ(parse::standard_inquiry(inq.data)->peripheral_type, 0x00);
  const Exec b0 = run(*disk_, cdb::inquiry(true, 0xB0, 255), 255);
  ASSERT_TRUE(b0.good());
  const auto vpd = parse::vpd_b0(b0.data, 0x00);
  ASSERT_TRUE(vpd);
}

TEST_F(DiskTest, WriteThenReadAtTheEdges) {
  const Bytes first = testing::pattern(512 * 3, 1), last = testing::pattern(512, 2);
  ASSERT_TRUE(run(*disk_, cdb::write16(0, 3, false), 0, first).good());
  ASSERT_TRUE(run(*disk_, cdb::write16(8191, 1, false), 0, last).good());
  EXPECT_EQ(run(*disk_, cdb::read16(0, 3, false), 512 * 3).data, first);
  EXPECT_EQ(run(*disk_, cdb::read16(8191, 1, false), 512).data, last);
  // Never written: zeros.
  EXPECT_EQ(run(*disk_, cdb::read16(4000, 1, false), 512).data, Bytes(512, 0));
  EXPECT_TRUE(run(*disk_, cdb::synchronize_cache16(0, 0, false)).good());
}

TEST_F(DiskTest, OutOfRangeAndOversizedTransfers) {
  EXPECT_TRUE(
      run(*disk_, cdb::read16(8191, 2, false), 1024).is(SenseKey::kIllegalRequest, 0x21, 0));
  EXPECT_TRUE(run(*disk_, cdb::read16(8192, 1, false), 512).is(SenseKey::kIllegalRequest, 0x21, 0));
  EXPECT_TRUE(run(*disk_, cdb::write16(~0ull, 1, false), 0, Bytes(512))
                  .is(SenseKey::kIllegalRequest, 0x21, 0));
  EXPECT_TRUE(run(*disk_, cdb::read16(0, emu::SbcDisk::kMaxTransferBlocks + 1, false), 0)
                  .is(SenseKey::kIllegalRequest, 0x24, 0));
  EXPECT_TRUE(
      run(*disk_, cdb::write16(0, 2, false), 0, Bytes(512)).is(SenseKey::kIllegalRequest, 0x1A, 0));
}

TEST_F(DiskTest, ExistingFileKeepsItsSize) {
  disk_.reset();
  std::string error;
  auto again = emu::SbcDisk::open(
      emu::make_identity(0, "VIRTUAL DISK", testing::test_installation_id(), "lun0"),
      dir_.path() / "lun0.img", 1u << 20, 512, error);
  ASSERT_TRUE(again) << error;
  EXPECT_EQ(again->blocks(), 8192u);
}

}  // namespace
}  // namespace scsi
