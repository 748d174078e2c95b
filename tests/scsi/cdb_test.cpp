// CDB builders, byte for byte: against hand-written hex of the standards'
// layouts, against libiscsi's own builders (an independent implementation)
// where it has one, and against the CDBs of the tgt scenario scripts that
// were run on tgt 1.0.85 (/work/shared/interop/scsi/scenarios).

#include "scsi/cdb.h"

#include <gtest/gtest.h>
#include <iscsi/scsi-lowlevel.h>

#include <cstdint>
#include <string>

namespace scsi::cdb {
namespace {

Bytes hex(const std::string& s) {
  Bytes out;
  int nibbles = 0;
  unsigned v = 0;
  for (char c : s) {
    if (c == ' ') continue;
    v = v << 4 | static_cast<unsigned>(std::stoi(std::string(1, c), nullptr, 16));
    if (++nibbles == 2) {
      out.push_back(static_cast<std::uint8_t>(v));
      nibbles = 0;
      v = 0;
    }
  }
  return out;
}

// The CDB a libiscsi builder produced; frees the task.
Bytes from_libiscsi(scsi_task* task) {
  EXPECT_NE(task, nullptr);
  if (task == nullptr) return {};
  Bytes cdb(task->cdb, task->cdb + task->cdb_size);
  scsi_free_scsi_task(task);
  return cdb;
}

// ---- SPC-4 ---------------------------------------------------------------

TEST(CdbSpc, Inquiry) {
  EXPECT_EQ(inquiry(false, 0, 96), hex("12 00 00 00 60 00"));
  EXPECT_EQ(inquiry(true, 0x83, 0x1000), hex("12 01 83 10 00 00"));
  EXPECT_EQ(inquiry(true, 0x00, 255), hex("12 01 00 00 ff 00"));
  EXPECT_TRUE(inquiry(false, 0x80, 255).empty());
  EXPECT_EQ(inquiry(true, 0xB0, 252), from_libiscsi(scsi_cdb_inquiry(1, 0xB0, 252)));
  EXPECT_EQ(inquiry(false, 0, 36), from_libiscsi(scsi_cdb_inquiry(0, 0, 36)));
}

TEST(CdbSpc, TestUnitReady) {
  EXPECT_EQ(test_unit_ready(), hex("00 00 00 00 00 00"));
  EXPECT_EQ(test_unit_ready(), from_libiscsi(scsi_cdb_testunitready()));
}

TEST(CdbSpc, RequestSense) {
  EXPECT_EQ(request_sense(18, false), hex("03 00 00 00 12 00"));
  EXPECT_EQ(request_sense(252, true), hex("03 01 00 00 fc 00"));
}

TEST(CdbSpc, ReportLuns) {
  EXPECT_EQ(report_luns(0, 64), hex("a0 00 00 00 00 00 00 00 00 40 00 00"));
  EXPECT_EQ(report_luns(2, 0x01020304), hex("a0 00 02 00 00 00 01 02 03 04 00 00"));
  EXPECT_EQ(report_luns(0, 4096), from_libiscsi(scsi_reportluns_cdb(0, 4096)));
}

TEST(CdbSpc, ModeSense6) {
  EXPECT_EQ(mode_sense6(true, 0, 0x1D, 0, 255), hex("1a 08 1d 00 ff 00"));   // changer.cdb
  EXPECT_EQ(mode_sense6(false, 0, 0x3F, 0, 255), hex("1a 00 3f 00 ff 00"));  // tape.cdb
  EXPECT_EQ(mode_sense6(false, 2, 0x10, 0x01, 40), hex("1a 00 90 01 28 00"));
  EXPECT_EQ(
      mode_sense6(true, 1, 0x3F, 0xFF, 200),
      from_libiscsi(scsi_cdb_modesense6(1, SCSI_MODESENSE_PC_CHANGEABLE,
                                        SCSI_MODESENSE_PAGECODE_RETURN_ALL_PAGES, 0xFF, 200)));
  EXPECT_TRUE(mode_sense6(false, 4, 0x1D, 0, 255).empty());
  EXPECT_TRUE(mode_sense6(false, 0, 0x40, 0, 255).empty());
}

TEST(CdbSpc, ModeSense10) {
  EXPECT_EQ(mode_sense10(false, true, 0, 0x1D, 0, 255), hex("5a 08 1d 00 00 00 00 00 ff 00"));
  EXPECT_EQ(mode_sense10(true, false, 3, 0x3F, 0, 0x1234), hex("5a 10 ff 00 00 00 00 12 34 00"));
  EXPECT_EQ(mode_sense10(true, true, 0, 0x08, 0, 252),
            from_libiscsi(scsi_cdb_modesense10(1, 1, SCSI_MODESENSE_PC_CURRENT,
                                               SCSI_MODESENSE_PAGECODE_CACHING, 0, 252)));
  EXPECT_TRUE(mode_sense10(false, false, 0, 0x40, 0, 1).empty());
  EXPECT_TRUE(mode_sense10(false, false, 7, 0x00, 0, 1).empty());
}

TEST(CdbSpc, ModeSelect) {
  EXPECT_EQ(mode_select6(true, false, 12), hex("15 10 00 00 0c 00"));
  EXPECT_EQ(mode_select6(true, true, 12), from_libiscsi(scsi_cdb_modeselect6(1, 1, 12)));
  EXPECT_EQ(mode_select10(true, false, 0x0110), hex("55 10 00 00 00 00 00 01 10 00"));
  EXPECT_EQ(mode_select10(false, true, 300), from_libiscsi(scsi_cdb_modeselect10(0, 1, 300)));
}

TEST(CdbSpc, PreventAllowMediumRemoval) {
  EXPECT_EQ(prevent_allow_medium_removal(true), hex("1e 00 00 00 01 00"));
  EXPECT_EQ(prevent_allow_medium_removal(false), hex("1e 00 00 00 00 00"));
  EXPECT_EQ(prevent_allow_medium_removal(true), from_libiscsi(scsi_cdb_preventallow(1)));
}

TEST(CdbSpc, LogSense) {
  EXPECT_EQ(log_sense(1, 0x31, 0, 0, 64), hex("4d 00 71 00 00 00 00 00 40 00"));
  EXPECT_EQ(log_sense(3, 0x00, 0x05, 0x0102, 0x0304), hex("4d 00 c0 05 00 01 02 03 04 00"));
  EXPECT_TRUE(log_sense(4, 0x31, 0, 0, 64).empty());
  EXPECT_TRUE(log_sense(1, 0x40, 0, 0, 64).empty());
}

// ---- SBC-3 ---------------------------------------------------------------

TEST(CdbSbc, ReadCapacity16) {
  EXPECT_EQ(read_capacity16(32), hex("9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00"));
  EXPECT_EQ(read_capacity16(32), from_libiscsi(scsi_cdb_readcapacity16()));
}

TEST(CdbSbc, Read16Write16) {
  EXPECT_EQ(read16(0x0102030405060708, 0x0A0B0C0D, false),
            hex("88 00 01 02 03 04 05 06 07 08 0a 0b 0c 0d 00 00"));
  EXPECT_EQ(write16(0xFFFFFFFF, 1, true), hex("8a 08 00 00 00 00 ff ff ff ff 00 00 00 01 00 00"));
  EXPECT_EQ(read16(0x123456789A, 128, true),
            from_libiscsi(scsi_cdb_read16(0x123456789A, 128 * 512, 512, 0, 0, 1, 0, 0)));
  EXPECT_EQ(write16(7, 2048, false),
            from_libiscsi(scsi_cdb_write16(7, 2048 * 4096, 4096, 0, 0, 0, 0, 0)));
}

TEST(CdbSbc, SynchronizeCache) {
  EXPECT_EQ(synchronize_cache10(0x11223344, 0x5566, true), hex("35 02 11 22 33 44 00 55 66 00"));
  EXPECT_EQ(synchronize_cache10(0, 0, false),
            from_libiscsi(scsi_cdb_synchronizecache10(0, 0, 0, 0)));
  EXPECT_EQ(synchronize_cache10(1000, 8, true),
            from_libiscsi(scsi_cdb_synchronizecache10(1000, 8, 0, 1)));
  EXPECT_EQ(synchronize_cache16(0x0102030405060708, 0x090A0B0C, true),
            hex("91 02 01 02 03 04 05 06 07 08 09 0a 0b 0c 00 00"));
  EXPECT_EQ(synchronize_cache16(1 << 20, 64, false),
            from_libiscsi(scsi_cdb_synchronizecache16(1 << 20, 64, 0, 0)));
}

// ---- SSC-4 ---------------------------------------------------------------

TEST(CdbSsc, Read6) {
  EXPECT_EQ(read6(false, false, 65536), hex("08 00 01 00 00 00"));  // tape.cdb: 64 KiB
  EXPECT_EQ(read6(true, false, 1), hex("08 01 00 00 01 00"));
  EXPECT_EQ(read6(false, false, 4096), hex("08 00 00 10 00 00"));  // tape.cdb: 4096 bytes
  EXPECT_EQ(read6(false, true, 100), hex("08 02 00 00 64 00"));    // tape.cdb: SILI
  EXPECT_EQ(read6(false, false, kMax24), hex("08 00 ff ff ff 00"));
  EXPECT_TRUE(read6(false, false, kMax24 + 1).empty());
  EXPECT_TRUE(read6(true, true, 1).empty());
}

TEST(CdbSsc, Write6) {
  EXPECT_EQ(write6(true, 1), hex("0a 01 00 00 01 00"));
  EXPECT_EQ(write6(false, 65536), hex("0a 00 01 00 00 00"));  // tape.cdb
  EXPECT_EQ(write6(false, 1000), hex("0a 00 00 03 e8 00"));   // tape.cdb
  EXPECT_EQ(write6(false, 0x123456), hex("0a 00 12 34 56 00"));
  EXPECT_TRUE(write6(false, 0x1000000).empty());
}

TEST(CdbSsc, WriteFilemarks6) {
  EXPECT_EQ(write_filemarks6(1, false), hex("10 00 00 00 01 00"));  // tape.cdb
  EXPECT_EQ(write_filemarks6(0, true), hex("10 01 00 00 00 00"));
  EXPECT_EQ(write_filemarks6(kMax24, false), hex("10 00 ff ff ff 00"));
  EXPECT_TRUE(write_filemarks6(kMax24 + 1, false).empty());
}

TEST(CdbSsc, Space6SignedCount) {
  EXPECT_EQ(space6(SpaceCode::kFilemarks, 1), hex("11 01 00 00 01 00"));   // tape.cdb
  EXPECT_EQ(space6(SpaceCode::kBlocks, 1), hex("11 00 00 00 01 00"));      // tape.cdb
  EXPECT_EQ(space6(SpaceCode::kFilemarks, -1), hex("11 01 ff ff ff 00"));  // tape.cdb
  EXPECT_EQ(space6(SpaceCode::kEndOfData, 0), hex("11 03 00 00 00 00"));   // tape.cdb
  EXPECT_EQ(space6(SpaceCode::kBlocks, -8388608), hex("11 00 80 00 00 00"));
  EXPECT_EQ(space6(SpaceCode::kSequentialFilemarks, 8388607), hex("11 02 7f ff ff 00"));
  EXPECT_EQ(space6(SpaceCode::kBlocks, -2), hex("11 00 ff ff fe 00"));
  EXPECT_TRUE(space6(SpaceCode::kBlocks, 8388608).empty());
  EXPECT_TRUE(space6(SpaceCode::kBlocks, -8388609).empty());
}

TEST(CdbSsc, Space16) {
  EXPECT_EQ(space16(SpaceCode::kFilemarks, -3),
            hex("91 01 00 00 ff ff ff ff ff ff ff fd 00 00 00 00"));
  EXPECT_EQ(space16(SpaceCode::kBlocks, 0x0102030405060708, 0x0A0B),
            hex("91 00 00 00 01 02 03 04 05 06 07 08 0a 0b 00 00"));
  EXPECT_EQ(space16(SpaceCode::kEndOfData, 0),
            hex("91 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00"));
}

TEST(CdbSsc, Locate) {
  EXPECT_EQ(locate10(0, false, false, 0), hex("2b 00 00 00 00 00 00 00 00 00"));  // tape.cdb
  EXPECT_EQ(locate10(0x01020304, true, true, 2, true), hex("2b 07 00 01 02 03 04 00 02 00"));
  EXPECT_EQ(locate16(0x1122334455667788, 1, true, 3),
            hex("92 0a 00 03 11 22 33 44 55 66 77 88 00 00 00 00"));
  EXPECT_EQ(locate16(5, 0, false, 0, true), hex("92 01 00 00 00 00 00 00 00 00 00 05 00 00 00 00"));
  EXPECT_EQ(locate16(0, 7, false, 0)[1], 0x38);
  EXPECT_TRUE(locate16(0, 8, false, 0).empty());
}

TEST(CdbSsc, ReadPosition) {
  EXPECT_EQ(read_position(ReadPositionForm::kShort), hex("34 00 00 00 00 00 00 00 00 00"));
  EXPECT_EQ(read_position(ReadPositionForm::kLong), hex("34 06 00 00 00 00 00 00 00 00"));
  EXPECT_EQ(read_position(ReadPositionForm::kExtended, 32), hex("34 08 00 00 00 00 00 00 20 00"));
  EXPECT_TRUE(read_position(ReadPositionForm::kShort, 20).empty());
  EXPECT_TRUE(read_position(ReadPositionForm::kLong, 32).empty());
  EXPECT_TRUE(read_position(static_cast<ReadPositionForm>(0x07)).empty());
}

TEST(CdbSsc, RewindLoadEraseLimits) {
  EXPECT_EQ(rewind(false), hex("01 00 00 00 00 00"));
  EXPECT_EQ(rewind(true), hex("01 01 00 00 00 00"));
  EXPECT_EQ(load_unload(true, false, false, false, false), hex("1b 00 00 00 01 00"));
  EXPECT_EQ(load_unload(false, false, false, false, false), hex("1b 00 00 00 00 00"));  // tape.cdb
  EXPECT_EQ(load_unload(false, false, false, false, true), hex("1b 01 00 00 00 00"));
  EXPECT_EQ(load_unload(true, true, true, true, true), hex("1b 01 00 00 0f 00"));
  EXPECT_EQ(load_unload(false, true, false, false, false), hex("1b 00 00 00 08 00"));
  EXPECT_EQ(load_unload(false, false, true, false, false), hex("1b 00 00 00 04 00"));
  EXPECT_EQ(load_unload(false, false, false, true, false), hex("1b 00 00 00 02 00"));
  EXPECT_EQ(read_block_limits(), hex("05 00 00 00 00 00"));  // tape.cdb
  EXPECT_EQ(erase6(true, false), hex("19 01 00 00 00 00"));  // tape.cdb
  EXPECT_EQ(erase6(false, true), hex("19 02 00 00 00 00"));
  EXPECT_EQ(erase6(true, true), hex("19 03 00 00 00 00"));
}

// ---- SMC-3 ---------------------------------------------------------------

TEST(CdbSmc, ReadElementStatus) {
  // changer.cdb: all types with VOLTAG; data transfer elements with VOLTAG + DVCID.
  EXPECT_EQ(read_element_status(true, ElementType::kAll, 0, 0xFFFF, false, false, 4096),
            hex("b8 10 00 00 ff ff 00 00 10 00 00 00"));
  EXPECT_EQ(read_element_status(true, ElementType::kDataTransfer, 0, 0xFFFF, true, false, 4096),
            hex("b8 14 00 00 ff ff 01 00 10 00 00 00"));
  EXPECT_EQ(read_element_status(false, ElementType::kStorage, 0x0400, 6, false, true, 0xABCDEF),
            hex("b8 02 04 00 00 06 02 ab cd ef 00 00"));
  EXPECT_EQ(read_element_status(false, ElementType::kImportExport, 0x0300, 1, true, true, 60),
            hex("b8 03 03 00 00 01 03 00 00 3c 00 00"));
  EXPECT_TRUE(read_element_status(false, ElementType::kAll, 0, 1, false, false, 0x1000000).empty());
  EXPECT_TRUE(
      read_element_status(false, static_cast<ElementType>(0x10), 0, 1, false, false, 8).empty());
}

TEST(CdbSmc, MoveMedium) {
  EXPECT_EQ(move_medium(0x0010, 0x0400, 0x0001, false),
            hex("a5 00 00 10 04 00 00 01 00 00 00 00"));  // changer.cdb
  EXPECT_EQ(move_medium(0x0010, 0x0300, 0x0401, true), hex("a5 00 00 10 03 00 04 01 00 00 01 00"));
}

TEST(CdbSmc, ExchangeMedium) {
  EXPECT_EQ(exchange_medium(0x0010, 0x0402, 0x0001, 0x0403, false, false),
            hex("a6 00 00 10 04 02 00 01 04 03 00 00"));  // changer.cdb
  EXPECT_EQ(exchange_medium(1, 2, 3, 4, true, false), hex("a6 00 00 01 00 02 00 03 00 04 01 00"));
  EXPECT_EQ(exchange_medium(1, 2, 3, 4, false, true), hex("a6 00 00 01 00 02 00 03 00 04 02 00"));
}

TEST(CdbSmc, InitializeAndPosition) {
  EXPECT_EQ(initialize_element_status(), hex("07 00 00 00 00 00"));  // changer.cdb
  EXPECT_EQ(initialize_element_status_with_range(0x0400, 6), hex("37 01 04 00 00 00 00 06 00 00"));
  EXPECT_EQ(initialize_element_status_with_range(0xABCD, 0), hex("37 01 ab cd 00 00 00 00 00 00"));
  EXPECT_EQ(position_to_element(0x0010, 0x0400, false),
            hex("2b 00 00 10 04 00 00 00 00 00"));  // changer.cdb
  EXPECT_EQ(position_to_element(0x0010, 0x0001, true), hex("2b 00 00 10 00 01 00 00 01 00"));
}

}  // namespace
}  // namespace scsi::cdb
