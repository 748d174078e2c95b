// The NDMP tape service (TAPE_*) and robot service (SCSI_*) over TCP
// against the embedded library of the shipped configuration: every error
// these interfaces answer, positions as TAPE_GET_STATE reports them, early
// warning and overflow, the pass-through of CDBs with data and sense, the
// device lists of CONFIG_GET_TAPE_INFO and GET_SCSI_INFO, and devices
// released when their session ends by any path.

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "daemon.h"
#include "dma.h"
#include "ndmpd/client/client.h"

namespace ndmpd {
namespace {

using namespace std::chrono_literals;
using ndmp::client::Client;
using ndmp::xdr::Bytes;
using testing::Daemon;

using namespace itest;  // NOLINT

class TapeService : public ::testing::Test {
 protected:
  void SetUp() override {
    Dma robot(daemon_);
    ASSERT_EQ(robot.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);  // NDMP001L6 into vtl0.drive0
  }
  Daemon daemon_;
};

TEST_F(TapeService, WriteCloseReopenReadBack) {
  Dma t(daemon_);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  const Bytes rec = pattern(1024, 3);
  ASSERT_EQ(t.write(rec), std::make_pair(NDMP4_NO_ERR, 1024u));
  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_EOF, 1), NDMP4_NO_ERR);
  ASSERT_EQ(t.close(), NDMP4_NO_ERR);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  const auto [err, data] = t.read(1024);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  EXPECT_EQ(data, rec);
  EXPECT_EQ(t.read(1024).first, NDMP4_EOF_ERR);
  EXPECT_EQ(t.read(1024).first, NDMP4_EOF_ERR);  // still before the filemark
  EXPECT_EQ(t.mtio(NDMP4_MTIO_FSF, 1), std::make_pair(NDMP4_NO_ERR, 0u));
  EXPECT_EQ(t.read(1024).first, NDMP4_EOM_ERR);
}

TEST_F(TapeService, OpenErrors) {
  Dma t(daemon_);
  EXPECT_EQ(t.open("bogus", NDMP4_TAPE_READ_MODE), NDMP4_NO_DEVICE_ERR);
  EXPECT_EQ(t.open("", NDMP4_TAPE_READ_MODE), NDMP4_NO_DEVICE_ERR);
  EXPECT_EQ(t.open("vtl0.changer", NDMP4_TAPE_READ_MODE), NDMP4_NO_DEVICE_ERR);  // not a drive
  EXPECT_EQ(t.open("vtl0.drive0", static_cast<ndmp4_tape_open_mode>(123)), NDMP4_ILLEGAL_ARGS_ERR);
  // vtl0.drive1 is empty: no cartridge for READ or RDWR; RAW opens anyway.
  EXPECT_EQ(t.open("vtl0.drive1", NDMP4_TAPE_READ_MODE), NDMP4_NO_TAPE_LOADED_ERR);
  EXPECT_EQ(t.open("vtl0.drive1", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_TAPE_LOADED_ERR);
  ASSERT_EQ(t.open("vtl0.drive1", NDMP4_TAPE_RAW_MODE), NDMP4_NO_ERR);
  EXPECT_EQ(t.mtio(NDMP4_MTIO_REW, 1).first, NDMP4_NO_TAPE_LOADED_ERR);
  EXPECT_EQ(t.mtio(NDMP4_MTIO_TUR, 0).first, NDMP4_NO_TAPE_LOADED_ERR);
  EXPECT_EQ(t.read(100).first, NDMP4_NO_TAPE_LOADED_ERR);
  EXPECT_EQ(t.write(pattern(100, 1)).first, NDMP4_NO_TAPE_LOADED_ERR);
  EXPECT_EQ(t.state().error(), NDMP4_NO_ERR);
  // One device per session: another TAPE_OPEN, or a SCSI_OPEN, is refused.
  EXPECT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_DEVICE_OPENED_ERR);
  EXPECT_EQ(t.scsi_open("vtl0.changer"), NDMP4_DEVICE_OPENED_ERR);
  ASSERT_EQ(t.close(), NDMP4_NO_ERR);
  EXPECT_EQ(t.close(), NDMP4_DEV_NOT_OPEN_ERR);
  // A cartridge arrives in the RAW-opened drive: TUR sees it.
  ASSERT_EQ(t.open("vtl0.drive1", NDMP4_TAPE_RAW_MODE), NDMP4_NO_ERR);
  {
    Dma robot(daemon_);
    ASSERT_EQ(robot.move(kFirstSlot + 1, kDrive1), NDMP4_NO_ERR);
  }
  EXPECT_EQ(t.mtio(NDMP4_MTIO_TUR, 0).first, NDMP4_NO_ERR);
  EXPECT_EQ(t.mtio(NDMP4_MTIO_REW, 1).first, NDMP4_NO_ERR);
  EXPECT_EQ(t.read(100).first, NDMP4_EOM_ERR);  // a blank cartridge
  EXPECT_EQ(t.close(), NDMP4_NO_ERR);
}

TEST_F(TapeService, EveryCallNeedsAnOpenTape) {
  Dma t(daemon_);
  EXPECT_EQ(t.close(), NDMP4_DEV_NOT_OPEN_ERR);
  EXPECT_EQ(t.state().error(), NDMP4_DEV_NOT_OPEN_ERR);
  EXPECT_EQ(t.mtio(NDMP4_MTIO_REW, 1).first, NDMP4_DEV_NOT_OPEN_ERR);
  EXPECT_EQ(t.write(pattern(10, 1)).first, NDMP4_DEV_NOT_OPEN_ERR);
  EXPECT_EQ(t.read(10).first, NDMP4_DEV_NOT_OPEN_ERR);
  EXPECT_EQ(t.cdb(true, {0x00, 0, 0, 0, 0, 0}, 0, 0).error, NDMP4_DEV_NOT_OPEN_ERR);
  // The session goes on.
  EXPECT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
}

TEST_F(TapeService, ReadModeRefusesWritingAndBadArgumentsAreRefused) {
  Dma t(daemon_);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  EXPECT_EQ(t.write(pattern(1024, 1)).first, NDMP4_PERMISSION_ERR);
  EXPECT_EQ(t.mtio(NDMP4_MTIO_EOF, 1).first, NDMP4_PERMISSION_ERR);
  EXPECT_EQ(t.mtio(static_cast<ndmp4_tape_mtio_op>(99), 1).first, NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(t.read(0x80000000u).first, NDMP4_ILLEGAL_ARGS_ERR);
  const auto zero = t.read(0);
  EXPECT_EQ(zero.first, NDMP4_NO_ERR);
  EXPECT_TRUE(zero.second.empty());
  // Neither moved the tape.
  EXPECT_EQ(t.where(), std::make_pair(0u, 0u));
  ASSERT_EQ(t.close(), NDMP4_NO_ERR);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  EXPECT_EQ(t.write({}), std::make_pair(NDMP4_NO_ERR, 0u));  // v4: NO_ERR, nothing written
  EXPECT_EQ(t.read(10).first, NDMP4_EOM_ERR);
}

TEST_F(TapeService, FilemarksAndResidualsAsTheDraftStates) {
  Dma t(daemon_);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  // File 0: 3 records; file 1: 2 records; file 2: empty; then end of data.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(t.write(pattern(700, i)).first, NDMP4_NO_ERR);
  EXPECT_EQ(t.where(), std::make_pair(0u, 3u));
  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_EOF, 1), NDMP4_NO_ERR);
  EXPECT_EQ(t.where(), std::make_pair(1u, 0u));
  for (int i = 0; i < 2; ++i) ASSERT_EQ(t.write(pattern(900, 10 + i)).first, NDMP4_NO_ERR);
  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_EOF, 2), NDMP4_NO_ERR);
  EXPECT_EQ(t.where(), std::make_pair(3u, 0u));

  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  EXPECT_EQ(t.where(), std::make_pair(0u, 0u));
  // FSR stops on the BOP side of the filemark, with the residual.
  EXPECT_EQ(t.mtio(NDMP4_MTIO_FSR, 10), std::make_pair(NDMP4_NO_ERR, 7u));
  EXPECT_EQ(t.where(), std::make_pair(0u, 3u));
  EXPECT_EQ(t.read(700).first, NDMP4_EOF_ERR);
  EXPECT_EQ(t.where().first, 0u);
  EXPECT_EQ(t.where().second, ~0u);  // block number unknown after meeting a filemark
  // BSR stops on the EOT side of a filemark (the file's start).
  EXPECT_EQ(t.mtio(NDMP4_MTIO_BSR, 5), std::make_pair(NDMP4_NO_ERR, 2u));
  EXPECT_EQ(t.where(), std::make_pair(0u, 0u));
  auto r = t.read(700);
  EXPECT_EQ(r.first, NDMP4_NO_ERR);
  EXPECT_EQ(r.second, pattern(700, 0));
  // FSF over two filemarks, then reads of file 2 meet its filemark.
  EXPECT_EQ(t.mtio(NDMP4_MTIO_FSF, 2), std::make_pair(NDMP4_NO_ERR, 0u));
  EXPECT_EQ(t.where(), std::make_pair(2u, 0u));
  EXPECT_EQ(t.read(700).first, NDMP4_EOF_ERR);
  // FSF past the last filemark: end of data, with the residual.
  EXPECT_EQ(t.mtio(NDMP4_MTIO_FSF, 5), std::make_pair(NDMP4_NO_ERR, 4u));
  EXPECT_EQ(t.where().first, 3u);
  EXPECT_EQ(t.read(700).first, NDMP4_EOM_ERR);
  // BSF: onto the BOP side of the filemark that ends file 1; its last record
  // is before the head.
  EXPECT_EQ(t.mtio(NDMP4_MTIO_BSF, 2), std::make_pair(NDMP4_NO_ERR, 0u));
  EXPECT_EQ(t.where().first, 1u);
  EXPECT_EQ(t.read(900).first, NDMP4_EOF_ERR);
  EXPECT_EQ(t.mtio(NDMP4_MTIO_BSR, 1), std::make_pair(NDMP4_NO_ERR, 0u));
  r = t.read(900);
  EXPECT_EQ(r.first, NDMP4_NO_ERR);
  EXPECT_EQ(r.second, pattern(900, 11));
  // BSF past BOP: at BOP with the residual.
  EXPECT_EQ(t.mtio(NDMP4_MTIO_BSF, 10), std::make_pair(NDMP4_NO_ERR, 9u));
  EXPECT_EQ(t.where(), std::make_pair(0u, 0u));
  // Counts of 0 move nothing (v4 has no NOP code).
  EXPECT_EQ(t.mtio(NDMP4_MTIO_FSF, 0), std::make_pair(NDMP4_NO_ERR, 0u));
  EXPECT_EQ(t.mtio(NDMP4_MTIO_BSR, 0), std::make_pair(NDMP4_NO_ERR, 0u));
  EXPECT_EQ(t.where(), std::make_pair(0u, 0u));
  EXPECT_EQ(t.mtio(NDMP4_MTIO_TUR, 0), std::make_pair(NDMP4_NO_ERR, 0u));
  // A record shorter than the read and one longer: what there is, and the
  // first count bytes.
  r = t.read(4096);
  EXPECT_EQ(r.first, NDMP4_NO_ERR);
  EXPECT_EQ(r.second, pattern(700, 0));
  r = t.read(100);
  EXPECT_EQ(r.first, NDMP4_NO_ERR);
  const Bytes second = pattern(700, 1);
  EXPECT_EQ(r.second, Bytes(second.begin(), second.begin() + 100));
  EXPECT_EQ(t.where(), std::make_pair(0u, 2u));
}

TEST_F(TapeService, ImplicitFilemarkOnCloseAndRewind) {
  Dma t(daemon_);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(t.write(pattern(512, 1)).first, NDMP4_NO_ERR);
  // Spacing back over what was just written finds the record, not a filemark.
  EXPECT_EQ(t.mtio(NDMP4_MTIO_BSR, 1), std::make_pair(NDMP4_NO_ERR, 0u));
  EXPECT_EQ(t.mtio(NDMP4_MTIO_FSR, 1), std::make_pair(NDMP4_NO_ERR, 0u));
  ASSERT_EQ(t.close(), NDMP4_NO_ERR);  // writes the filemark the record is owed
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  // The position survives close and open: after the filemark.
  EXPECT_EQ(t.where(), std::make_pair(1u, 0u));
  EXPECT_EQ(t.read(512).first, NDMP4_EOM_ERR);
  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  EXPECT_EQ(t.read(512).first, NDMP4_NO_ERR);
  EXPECT_EQ(t.read(512).first, NDMP4_EOF_ERR);
  ASSERT_EQ(t.close(), NDMP4_NO_ERR);
  // REW after a write: the filemark first.
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_FSF, 1), NDMP4_NO_ERR);
  ASSERT_EQ(t.write(pattern(512, 2)).first, NDMP4_NO_ERR);
  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  EXPECT_EQ(t.mtio(NDMP4_MTIO_FSF, 3), std::make_pair(NDMP4_NO_ERR, 1u));
  // OFF: rewound and unloaded (after the filemark a write is owed); the
  // drive then has no tape until the changer takes the cartridge away.
  ASSERT_EQ(t.write(pattern(512, 3)).first, NDMP4_NO_ERR);
  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_OFF, 1), NDMP4_NO_ERR);
  EXPECT_EQ(t.read(512).first, NDMP4_NO_TAPE_LOADED_ERR);
  EXPECT_EQ(t.mtio(NDMP4_MTIO_TUR, 0).first, NDMP4_NO_TAPE_LOADED_ERR);
  ASSERT_EQ(t.close(), NDMP4_NO_ERR);
  EXPECT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_TAPE_LOADED_ERR);
  ASSERT_EQ(t.move(kDrive0, kFirstSlot), NDMP4_NO_ERR);
  ASSERT_EQ(t.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  EXPECT_EQ(t.where(), std::make_pair(0u, 0u));  // a cartridge just loaded is at BOP
  EXPECT_EQ(t.mtio(NDMP4_MTIO_FSF, 2), std::make_pair(NDMP4_NO_ERR, 0u));
  EXPECT_EQ(t.read(512).second, pattern(512, 3));
  EXPECT_EQ(t.read(512).first, NDMP4_EOF_ERR);
}

TEST_F(TapeService, GetStateReportsTheCartridge) {
  Dma t(daemon_);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  auto s = t.state();
  ASSERT_EQ(s.error(), NDMP4_NO_ERR);
  EXPECT_EQ(s->flags & NDMP4_TAPE_STATE_WR_PROT, 0u);
  EXPECT_EQ(s->flags & NDMP4_TAPE_STATE_ERROR, 0u);
  EXPECT_NE(s->flags & NDMP4_TAPE_STATE_NOREWIND, 0u);  // closing never rewinds
  EXPECT_NE(s->unsupported & NDMP4_TAPE_STATE_SOFT_ERRORS_UNS, 0u);
  EXPECT_EQ(s->unsupported & (NDMP4_TAPE_STATE_FILE_NUM_UNS | NDMP4_TAPE_STATE_BLOCKNO_UNS |
                              NDMP4_TAPE_STATE_BLOCK_SIZE_UNS | NDMP4_TAPE_STATE_TOTAL_SPACE_UNS |
                              NDMP4_TAPE_STATE_SPACE_REMAIN_UNS),
            0u);
  EXPECT_EQ(s->block_size, 0u);  // variable block mode
  const std::uint64_t total = s->total_space, before = s->space_remain;
  EXPECT_EQ(total, 2048ull << 20);  // the shipped cartridge_capacity_mb
  EXPECT_EQ(before, total);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(t.write(pattern(1 << 20, i)).first, NDMP4_NO_ERR);
  s = t.state();
  EXPECT_LE(s->space_remain, before - (3ull << 20));
  EXPECT_EQ(s->blockno, 4u);
}

TEST(TapeServiceConfig, WriteProtectedCartridge) {
  Daemon d(Daemon::Options::config(
      shipped_config_with("write_protected = []", "write_protected = [\"NDMP002L6\"]")));
  Dma t(d);
  ASSERT_EQ(t.move(kFirstSlot + 1, kDrive0), NDMP4_NO_ERR);
  EXPECT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_WRITE_PROTECT_ERR);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  EXPECT_NE(t.state()->flags & NDMP4_TAPE_STATE_WR_PROT, 0u);
  ASSERT_EQ(t.close(), NDMP4_NO_ERR);
  // RAW opens it; writing is refused by the cartridge.
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RAW_MODE), NDMP4_NO_ERR);
  EXPECT_EQ(t.write(pattern(512, 1)).first, NDMP4_WRITE_PROTECT_ERR);
  EXPECT_EQ(t.mtio(NDMP4_MTIO_EOF, 1).first, NDMP4_WRITE_PROTECT_ERR);
  EXPECT_EQ(t.close(), NDMP4_NO_ERR);
}

TEST(TapeServiceConfig, EarlyWarningThenEndOfMedium) {
  // 8 MiB cartridges with early warning 2 MiB before the end.
  std::string config =
      shipped_config_with("cartridge_capacity_mb = 2048", "cartridge_capacity_mb = 8");
  config.replace(config.find("early_warning_mb = 32"), 21, "early_warning_mb = 2");
  Daemon d(Daemon::Options::config(config));
  Dma t(d);
  ASSERT_EQ(t.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  const std::uint32_t record = 256 * 1024;
  std::vector<Bytes> file0, file1;
  // Up to early warning: the first write past it is refused once (EOM_ERR).
  for (int i = 0; i < 64; ++i) {
    const Bytes rec = pattern(record, i);
    const auto [err, count] = t.write(rec);
    if (err == NDMP4_EOM_ERR) break;
    ASSERT_EQ(err, NDMP4_NO_ERR);
    EXPECT_EQ(count, record);
    file0.push_back(rec);
  }
  EXPECT_GE(file0.size() * record, 5u << 20);  // not before early warning
  EXPECT_LT(file0.size() * record, 7u << 20);
  // Into the reserve: two more records and a filemark.
  for (int i = 0; i < 2; ++i) {
    file0.push_back(pattern(record, 100 + i));
    ASSERT_EQ(t.write(file0.back()).first, NDMP4_NO_ERR);
  }
  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_EOF, 1), NDMP4_NO_ERR);
  // On to the physical end: IO_ERR, and that record is not written.
  bool overflow = false;
  for (int i = 0; i < 64 && !overflow; ++i) {
    const Bytes rec = pattern(record, 200 + i);
    const auto [err, count] = t.write(rec);
    if (err == NDMP4_NO_ERR) {
      file1.push_back(rec);
    } else {
      EXPECT_EQ(err, NDMP4_IO_ERR);
      overflow = true;
    }
  }
  ASSERT_TRUE(overflow);
  EXPECT_LE((file0.size() + file1.size()) * record, 8u << 20);  // no more than it holds
  // The rewind goes ahead although its filemark does not fit; every record
  // written reads back.
  ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  for (const auto* file : {&file0, &file1}) {
    for (const Bytes& rec : *file) {
      const auto r = t.read(record);
      ASSERT_EQ(r.first, NDMP4_NO_ERR);
      ASSERT_EQ(r.second, rec);
    }
    if (file == &file0) {
      EXPECT_EQ(t.read(record).first, NDMP4_EOF_ERR);
      ASSERT_EQ(t.mtio_ok(NDMP4_MTIO_FSF, 1), NDMP4_NO_ERR);
    }
  }
  EXPECT_EQ(t.read(record).first, NDMP4_EOM_ERR);
}

TEST_F(TapeService, ExecuteCdbPassesDataAndSense) {
  Dma t(daemon_);
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  // INQUIRY: data in.
  auto r = t.cdb(true, {0x12, 0, 0, 0, 96, 0}, NDMP4_SCSI_DATA_IN, 96);
  ASSERT_EQ(r.error, NDMP4_NO_ERR);
  EXPECT_EQ(r.status, 0);
  ASSERT_GE(r.data.size(), 36u);
  EXPECT_EQ(r.data[0] & 0x1F, 0x01);  // a tape drive
  EXPECT_EQ(std::string(r.data.begin() + 8, r.data.begin() + 13), "NDMPD");
  // WRITE(6) of one record: data out.
  const Bytes rec = pattern(300, 9);
  r = t.cdb(true, {0x0A, 0, 0, 0x01, 0x2C, 0}, NDMP4_SCSI_DATA_OUT, 0, rec);
  ASSERT_EQ(r.error, NDMP4_NO_ERR);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.dataout_len, 300u);
  // The pass-through moved the tape: the position is no longer known...
  EXPECT_EQ(t.where(), std::make_pair(~0u, ~0u));
  // ...until a rewind (here through the pass-through too).
  r = t.cdb(true, {0x01, 0, 0, 0, 0, 0}, 0, 0);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(t.where(), std::make_pair(0u, 0u));
  const auto back = t.read(300);
  EXPECT_EQ(back.second, rec);
  // A CHECK CONDITION comes back with its sense: BLANK CHECK at end of data.
  r = t.cdb(true, {0x08, 0x00, 0, 0x01, 0x00, 0}, NDMP4_SCSI_DATA_IN, 256);
  ASSERT_EQ(r.error, NDMP4_NO_ERR);
  EXPECT_EQ(r.status, 0x02);
  EXPECT_EQ(key_asc(r.sense).first, 0x08);
  // Malformed requests: both directions, no CDB, a CDB longer than 16.
  EXPECT_EQ(t.cdb(true, {0x00, 0, 0, 0, 0, 0}, NDMP4_SCSI_DATA_IN | NDMP4_SCSI_DATA_OUT, 0).error,
            NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(t.cdb(true, {}, 0, 0).error, NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(t.cdb(true, Bytes(17, 0), 0, 0).error, NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(t.cdb(true, {0x00, 0, 0, 0, 0, 0}, 0x80, 0).error, NDMP4_ILLEGAL_ARGS_ERR);
  // The session goes on.
  EXPECT_EQ(t.mtio(NDMP4_MTIO_TUR, 0).first, NDMP4_NO_ERR);
}

TEST_F(TapeService, RobotServiceMovesAndReports) {
  Dma r(daemon_);
  EXPECT_EQ(r.scsi_close(), NDMP4_DEV_NOT_OPEN_ERR);
  EXPECT_EQ(r.c.call<NDMP4_SCSI_GET_STATE>().error(), NDMP4_DEV_NOT_OPEN_ERR);
  EXPECT_EQ(r.c.call<NDMP4_SCSI_RESET_DEVICE>().error(), NDMP4_DEV_NOT_OPEN_ERR);
  EXPECT_EQ(r.cdb(false, {0x00, 0, 0, 0, 0, 0}, 0, 0).error, NDMP4_DEV_NOT_OPEN_ERR);
  EXPECT_EQ(r.scsi_open("bogus"), NDMP4_NO_DEVICE_ERR);
  ASSERT_EQ(r.scsi_open("vtl0.changer"), NDMP4_NO_ERR);
  EXPECT_EQ(r.scsi_open("vtl0.changer"), NDMP4_DEVICE_OPENED_ERR);
  EXPECT_EQ(r.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_DEVICE_OPENED_ERR);
  const auto st = r.c.call<NDMP4_SCSI_GET_STATE>();
  ASSERT_EQ(st.error(), NDMP4_NO_ERR);
  EXPECT_EQ(st->target_controller, -1);
  // READ ELEMENT STATUS, all types with volume tags: drive 256 holds
  // NDMP001L6 (moved there in SetUp), slot 1024 is empty.
  auto res =
      r.cdb(false, {0xB8, 0x10, 0, 0, 0, 64, 0, 0, 0x20, 0, 0, 0}, NDMP4_SCSI_DATA_IN, 0x2000);
  ASSERT_EQ(res.error, NDMP4_NO_ERR);
  ASSERT_EQ(res.status, 0);
  // Walk the report: address -> (full, barcode).
  auto walk = [](const Bytes& d) {
    std::map<int, std::pair<bool, std::string>> m;
    std::size_t at = 8;
    while (at + 8 <= d.size()) {
      const std::size_t len = d[at + 2] << 8 | d[at + 3];
      const std::size_t bytes = d[at + 5] << 16 | d[at + 6] << 8 | d[at + 7];
      const bool pvol = d[at + 1] & 0x80;
      for (std::size_t e = at + 8; e + len <= at + 8 + bytes && e + len <= d.size(); e += len) {
        std::string tag;
        if (pvol) {
          tag.assign(d.begin() + static_cast<std::ptrdiff_t>(e + 12),
                     d.begin() + static_cast<std::ptrdiff_t>(e + 44));
          tag.erase(tag.find_last_not_of(' ') + 1);
        }
        m[d[e] << 8 | d[e + 1]] = {(d[e + 2] & 1) != 0, tag};
      }
      at += 8 + bytes;
    }
    return m;
  };
  auto inv = walk(res.data);
  EXPECT_EQ(inv[kDrive0], std::make_pair(true, std::string("NDMP001L6")));
  EXPECT_FALSE(inv[kFirstSlot].first);
  EXPECT_EQ(inv[kFirstSlot + 1], std::make_pair(true, std::string("NDMP002L6")));
  // MOVE MEDIUM into an occupied element: CHECK CONDITION with the sense
  // (ILLEGAL REQUEST, 3B/0D medium destination element full).
  auto mv = r.cdb(false, Dma::move_medium(kFirstSlot + 1, kDrive0), 0, 0);
  ASSERT_EQ(mv.error, NDMP4_NO_ERR);
  EXPECT_EQ(mv.status, 0x02);
  EXPECT_EQ(key_asc(mv.sense), std::make_pair(0x05, 0x3B));
  // Unload the drive back to its slot; the report agrees.
  mv = r.cdb(false, Dma::move_medium(kDrive0, kFirstSlot), 0, 0);
  EXPECT_EQ(mv.status, 0);
  res = r.cdb(false, {0xB8, 0x10, 0, 0, 0, 64, 0, 0, 0x20, 0, 0, 0}, NDMP4_SCSI_DATA_IN, 0x2000);
  inv = walk(res.data);
  EXPECT_FALSE(inv[kDrive0].first);
  EXPECT_EQ(inv[kFirstSlot], std::make_pair(true, std::string("NDMP001L6")));
  // Data out: MODE SELECT(6) of a header only.
  const Bytes header = {0, 0, 0, 0};
  const auto ms = r.cdb(false, {0x15, 0x10, 0, 0, 4, 0}, NDMP4_SCSI_DATA_OUT, 0, header);
  EXPECT_EQ(ms.error, NDMP4_NO_ERR);
  EXPECT_EQ(ms.dataout_len, 4u);
  // RESET_DEVICE: the changer reports the reset as a unit attention.
  ASSERT_EQ(r.c.call<NDMP4_SCSI_RESET_DEVICE>().error(), NDMP4_NO_ERR);
  const auto tur = r.cdb(false, {0x00, 0, 0, 0, 0, 0}, 0, 0);
  EXPECT_EQ(tur.status, 0x02);
  EXPECT_EQ(key_asc(tur.sense), std::make_pair(0x06, 0x29));
  EXPECT_EQ(r.cdb(false, {0x00, 0, 0, 0, 0, 0}, 0, 0).status, 0);
  EXPECT_EQ(r.scsi_close(), NDMP4_NO_ERR);
}

TEST_F(TapeService, ConfigListsEveryDeviceWithItsIdentity) {
  Dma t(daemon_);
  const auto tapes = t.c.call<NDMP4_CONFIG_GET_TAPE_INFO>();
  ASSERT_EQ(tapes.error(), NDMP4_NO_ERR);
  std::map<std::string, std::map<std::string, std::string>> seen;
  for (u_int i = 0; i < tapes->tape_info.tape_info_len; ++i) {
    const ndmp4_device_info& info = tapes->tape_info.tape_info_val[i];
    EXPECT_STREQ(info.model, "NDMPD VIRTUAL TAPE");
    ASSERT_EQ(info.caplist.caplist_len, 1u);
    const ndmp4_device_capability& cap = info.caplist.caplist_val[0];
    EXPECT_EQ(cap.attr, NDMP4_TAPE_ATTR_REWIND | NDMP4_TAPE_ATTR_UNLOAD | NDMP4_TAPE_ATTR_RAW);
    for (u_int k = 0; k < cap.capability.capability_len; ++k) {
      seen[cap.device][cap.capability.capability_val[k].name] =
          cap.capability.capability_val[k].value;
    }
  }
  ASSERT_EQ(seen.size(), 2u);
  ASSERT_TRUE(seen.count("vtl0.drive0"));
  ASSERT_TRUE(seen.count("vtl0.drive1"));
  const std::string serial = seen["vtl0.drive0"]["SERIAL_NUMBER"];
  EXPECT_FALSE(serial.empty());
  EXPECT_EQ(seen["vtl0.drive0"]["DESIGNATOR"].size(), 32u);  // NAA 6, 16 bytes in hex
  EXPECT_NE(seen["vtl0.drive0"]["DESIGNATOR"], seen["vtl0.drive1"]["DESIGNATOR"]);
  // The serial is the one the drive itself reports (VPD 80h).
  ASSERT_EQ(t.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
  const auto vpd = t.cdb(true, {0x12, 0x01, 0x80, 0, 255, 0}, NDMP4_SCSI_DATA_IN, 255);
  ASSERT_GE(vpd.data.size(), 4u);
  std::string reported(vpd.data.begin() + 4, vpd.data.end());
  reported.erase(reported.find_last_not_of(' ') + 1);
  EXPECT_EQ(reported, serial);
  ASSERT_EQ(t.close(), NDMP4_NO_ERR);

  const auto scsi = t.c.call<NDMP4_CONFIG_GET_SCSI_INFO>();
  ASSERT_EQ(scsi.error(), NDMP4_NO_ERR);
  std::map<std::string, std::string> models;
  for (u_int i = 0; i < scsi->scsi_info.scsi_info_len; ++i) {
    const ndmp4_device_info& info = scsi->scsi_info.scsi_info_val[i];
    for (u_int k = 0; k < info.caplist.caplist_len; ++k) {
      models[info.caplist.caplist_val[k].device] = info.model;
    }
  }
  EXPECT_EQ(models["vtl0.changer"], "NDMPD VIRTUAL LIBRARY");
  EXPECT_EQ(models["lun0"], "NDMPD VIRTUAL DISK");
}

// ---- contention and release ----

TEST_F(TapeService, SecondSessionIsBusyUntilTheFirstCloses) {
  Dma a(daemon_), b(daemon_);
  ASSERT_EQ(a.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
  EXPECT_EQ(b.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_DEVICE_BUSY_ERR);
  EXPECT_EQ(b.scsi_open("vtl0.drive0"), NDMP4_DEVICE_BUSY_ERR);
  // The other drive and the changer are free.
  EXPECT_EQ(b.open("vtl0.drive1", NDMP4_TAPE_RAW_MODE), NDMP4_NO_ERR);
  EXPECT_EQ(b.close(), NDMP4_NO_ERR);
  ASSERT_EQ(b.scsi_open("vtl0.changer"), NDMP4_NO_ERR);
  EXPECT_EQ(a.scsi_open("vtl0.changer"), NDMP4_DEVICE_OPENED_ERR);  // a has its tape
  EXPECT_EQ(b.scsi_close(), NDMP4_NO_ERR);
  ASSERT_EQ(a.close(), NDMP4_NO_ERR);
  EXPECT_EQ(b.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_NO_ERR);
}

// Opens `device` from `b` as soon as it is free; the time that took.
std::chrono::milliseconds open_when_free(Dma& b, const std::string& device,
                                         ndmp4_tape_open_mode mode) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 500; ++i) {
    const ndmp4_error e = b.open(device, mode);
    if (e == NDMP4_NO_ERR) break;
    EXPECT_EQ(e, NDMP4_DEVICE_BUSY_ERR);
    std::this_thread::sleep_for(10ms);
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

TEST_F(TapeService, ConnectionCutMidWriteReleasesTheDriveWithEveryRecord) {
  Dma b(daemon_);
  std::vector<Bytes> written;
  {
    Dma a(daemon_);
    ASSERT_EQ(a.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
    ASSERT_EQ(a.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
    for (int i = 0; i < 40; ++i) {
      written.push_back(pattern(64 * 1024 + i, i));
      ASSERT_EQ(a.write(written.back()).first, NDMP4_NO_ERR);
    }
    EXPECT_EQ(b.open("vtl0.drive0", NDMP4_TAPE_READ_MODE), NDMP4_DEVICE_BUSY_ERR);
    // One more write goes out, and the connection is cut before its reply.
    const Bytes last = pattern(1 << 20, 99);
    ndmp4_tape_write_request w{};
    w.data_out.data_out_len = static_cast<u_int>(last.size());
    w.data_out.data_out_val = reinterpret_cast<char*>(const_cast<std::uint8_t*>(last.data()));
    a.c.send(NDMP4_TAPE_WRITE, ndmp::xdr::Traits<ndmp4_tape_write_request>::proc(), &w);
    a.c.close();
  }
  const auto took = open_when_free(b, "vtl0.drive0", NDMP4_TAPE_READ_MODE);
  EXPECT_LT(took, 1000ms);
  ASSERT_EQ(b.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  for (const Bytes& rec : written) {
    const auto r = b.read(2 << 20);
    ASSERT_EQ(r.first, NDMP4_NO_ERR);
    ASSERT_EQ(r.second, rec);
  }
  // The cut write either made it whole or not at all; then the filemark
  // written on release, then end of data.
  auto r = b.read(2 << 20);
  if (r.first == NDMP4_NO_ERR) {
    EXPECT_EQ(r.second, pattern(1 << 20, 99));
    r = b.read(2 << 20);
  }
  EXPECT_EQ(r.first, NDMP4_EOF_ERR);
  EXPECT_EQ(b.mtio(NDMP4_MTIO_FSF, 1), std::make_pair(NDMP4_NO_ERR, 0u));
  EXPECT_EQ(b.read(100).first, NDMP4_EOM_ERR);
  EXPECT_TRUE(daemon_.wait_for_log("TAPE_CLOSE vtl0.drive0", 2s));
}

TEST_F(TapeService, ConnectCloseAndAFailedRequestReleaseDevices) {
  Dma b(daemon_);
  {
    Dma a(daemon_);
    ASSERT_EQ(a.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
    ASSERT_EQ(a.write(pattern(1000, 1)).first, NDMP4_NO_ERR);
    a.c.send(NDMP4_CONNECT_CLOSE, ndmp::xdr::Traits<ndmp::xdr::Void>::proc(), nullptr);
    EXPECT_TRUE(a.c.wait_closed(5s));
  }
  EXPECT_LT(open_when_free(b, "vtl0.drive0", NDMP4_TAPE_READ_MODE), 1000ms);
  ASSERT_EQ(b.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  EXPECT_EQ(b.read(1000).second, pattern(1000, 1));
  EXPECT_EQ(b.read(1000).first, NDMP4_EOF_ERR);  // the implicit filemark
  ASSERT_EQ(b.close(), NDMP4_NO_ERR);
  {
    // A request that fails unexpectedly ends its session, which gives back
    // its changer.
    Dma a(daemon_);
    ASSERT_EQ(a.scsi_open("vtl0.changer"), NDMP4_NO_ERR);
    EXPECT_EQ(b.scsi_open("vtl0.changer"), NDMP4_DEVICE_BUSY_ERR);
    a.c.send(NDMP4_TEST_FAIL, ndmp::xdr::Traits<ndmp::xdr::Void>::proc(), nullptr);
    EXPECT_TRUE(a.c.wait_closed(5s));
  }
  const auto start = std::chrono::steady_clock::now();
  ndmp4_error e = NDMP4_DEVICE_BUSY_ERR;
  for (int i = 0; i < 100 && e == NDMP4_DEVICE_BUSY_ERR; ++i) {
    e = b.scsi_open("vtl0.changer");
    if (e == NDMP4_DEVICE_BUSY_ERR) std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(e, NDMP4_NO_ERR);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(daemon_.wait_for_log("session failed", 2s));
}

TEST(TapeServiceConfig, IdleTimeoutReleasesTheDrive) {
  Daemon d(Daemon::Options::config(shipped_config_with("idle_timeout = 1800", "idle_timeout = 1")));
  {
    Dma a(d);
    ASSERT_EQ(a.move(kFirstSlot, kDrive0), NDMP4_NO_ERR);
    ASSERT_EQ(a.open("vtl0.drive0", NDMP4_TAPE_RDWR_MODE), NDMP4_NO_ERR);
    ASSERT_EQ(a.write(pattern(4096, 5)).first, NDMP4_NO_ERR);
    EXPECT_TRUE(a.c.wait_closed(5s));  // the daemon closes the idle session
  }
  // A new session finds the drive free, with the record and its filemark.
  Dma c(d);
  EXPECT_LT(open_when_free(c, "vtl0.drive0", NDMP4_TAPE_READ_MODE), 1000ms);
  ASSERT_EQ(c.mtio_ok(NDMP4_MTIO_REW, 1), NDMP4_NO_ERR);
  EXPECT_EQ(c.read(4096).second, pattern(4096, 5));
  EXPECT_EQ(c.read(4096).first, NDMP4_EOF_ERR);
}

}  // namespace
}  // namespace ndmpd
