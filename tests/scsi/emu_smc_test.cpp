// The emulated SMC changer and the virtual library: element status with
// volume tags and drive identifiers, moves and exchanges with their
// errors, and an inventory that survives a restart.

#include <gtest/gtest.h>

#include "emu_support.h"
#include "scsi/cdb.h"
#include "scsi/parse.h"

namespace scsi {
namespace {

using testing::Exec;
using testing::run;

class ChangerTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void open() {
    lib_.reset();
    std::string error;
    lib_ = emu::VirtualLibrary::open(testing::library_spec(dir_.path() / "vtl", 5),
                                     testing::test_installation_id(), error);
    ASSERT_TRUE(lib_) << error;
  }
  emu::SmcChanger& changer() { return *lib_->changer(); }

  // READ ELEMENT STATUS of one type with volume tags (and DVCID).
  parse::ElementStatus status(cdb::ElementType type, bool dvcid = false) {
    const Exec e =
        run(changer(), cdb::read_element_status(true, type, 0, 100, dvcid, false, 8192), 8192);
    EXPECT_TRUE(e.good());
    auto s = parse::read_element_status(e.data);
    EXPECT_TRUE(s.has_value());
    return s.value_or(parse::ElementStatus{});
  }
  std::string barcode_at(std::uint16_t address) {
    const Exec e =
        run(changer(),
            cdb::read_element_status(true, cdb::ElementType::kAll, address, 1, false, false, 1024),
            1024);
    const auto s = parse::read_element_status(e.data);
    if (!s || s->pages.empty() || s->pages[0].descriptors.empty()) return "?";
    const auto& d = s->pages[0].descriptors[0];
    EXPECT_EQ(d.address, address);
    return d.full && d.primary_tag ? d.primary_tag->identifier : "";
  }
  Exec move(std::uint16_t from, std::uint16_t to) {
    return run(changer(), cdb::move_medium(0, from, to, false));
  }

  testing::ScratchDir dir_{"smc"};
  std::unique_ptr<emu::VirtualLibrary> lib_;
};

TEST_F(ChangerTest, ElementAddressAssignmentPage) {
  const Exec e = run(changer(), cdb::mode_sense6(true, 0, 0x1D, 0, 255), 255);
  ASSERT_TRUE(e.good());
  const auto mp = parse::mode_sense6(e.data);
  ASSERT_TRUE(mp);
  const auto a = parse::element_address_assignment(*mp->find(0x1D));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first_transport, 1);
  EXPECT_EQ(a->transport_count, 1);
  EXPECT_EQ(a->first_storage, 1024);
  EXPECT_EQ(a->storage_count, 8);
  EXPECT_EQ(a->first_import_export, 16);
  EXPECT_EQ(a->import_export_count, 1);
  EXPECT_EQ(a->first_data_transfer, 256);
  EXPECT_EQ(a->data_transfer_count, 2);
  const Exec caps = run(changer(), cdb::mode_sense6(true, 0, 0x1F, 0, 255), 255);
  const auto cp = parse::device_capabilities(*parse::mode_sense6(caps.data)->find(0x1F));
  ASSERT_TRUE(cp);
  EXPECT_TRUE(cp->can_move(2, 4));  // storage -> drive
  EXPECT_TRUE(cp->can_move(4, 2));
}

TEST_F(ChangerTest, StorageSlotsCarryTheBarcodes) {
  const auto s = status(cdb::ElementType::kStorage);
  ASSERT_EQ(s.pages.size(), 1u);
  ASSERT_EQ(s.pages[0].descriptors.size(), 8u);
  EXPECT_TRUE(s.pages[0].pvoltag);
  for (int i = 0; i < 8; ++i) {
    const auto& d = s.pages[0].descriptors[static_cast<std::size_t>(i)];
    EXPECT_EQ(d.address, 1024 + i);
    EXPECT_EQ(d.full, i < 5);
    EXPECT_TRUE(d.access);
    if (i < 5) {
      ASSERT_TRUE(d.primary_tag);
      EXPECT_EQ(d.primary_tag->identifier, "TST00" + std::to_string(i + 1) + "L6");
    }
  }
}

TEST_F(ChangerTest, DriveElementsNameTheirDrivesDesignators) {
  const auto s = status(cdb::ElementType::kDataTransfer, true);
  ASSERT_EQ(s.pages.size(), 1u);
  ASSERT_EQ(s.pages[0].descriptors.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& d = s.pages[0].descriptors[i];
    ASSERT_TRUE(d.identifier);
    EXPECT_EQ(d.identifier->identifier_type, 3);  // NAA
    EXPECT_EQ(d.identifier->identifier, lib_->drives()[i]->identity().naa);
  }
}

TEST_F(ChangerTest, MoveIntoADriveLoadsItAndBackUnloads) {
  ASSERT_TRUE(move(1026, 257).good());
  EXPECT_EQ(barcode_at(257), "TST003L6");
  EXPECT_EQ(barcode_at(1026), "");
  EXPECT_EQ(lib_->drives()[1]->barcode(), "TST003L6");
  const auto s = status(cdb::ElementType::kDataTransfer);
  const auto& d = s.pages[0].descriptors[1];
  EXPECT_TRUE(d.full);
  EXPECT_TRUE(d.svalid);
  EXPECT_EQ(d.source_address, 1026);
  // The drive saw the cartridge arrive.
  EXPECT_TRUE(
      run(*lib_->drives()[1], cdb::test_unit_ready()).is(SenseKey::kUnitAttention, 0x28, 0));
  EXPECT_TRUE(run(*lib_->drives()[1], cdb::test_unit_ready()).good());
  // Out to another slot.
  ASSERT_TRUE(move(257, 1030).good());
  EXPECT_EQ(barcode_at(1030), "TST003L6");
  EXPECT_FALSE(lib_->drives()[1]->has_cartridge());
  EXPECT_TRUE(run(*lib_->drives()[1], cdb::test_unit_ready()).is(SenseKey::kNotReady, 0x3A, 0));
  // To and from the import/export element.
  ASSERT_TRUE(move(1030, 16).good());
  EXPECT_EQ(barcode_at(16), "TST003L6");
  ASSERT_TRUE(move(16, 1026).good());
}

TEST_F(ChangerTest, MoveErrors) {
  EXPECT_TRUE(move(1030, 256).is(SenseKey::kIllegalRequest, 0x3B, 0x0E));   // source empty
  EXPECT_TRUE(move(1024, 1025).is(SenseKey::kIllegalRequest, 0x3B, 0x0D));  // destination full
  EXPECT_TRUE(move(999, 256).is(SenseKey::kIllegalRequest, 0x21, 0x01));    // no such element
  EXPECT_TRUE(move(1024, 999).is(SenseKey::kIllegalRequest, 0x21, 0x01));
  EXPECT_TRUE(run(changer(), cdb::move_medium(1024, 1024, 256, false))
                  .is(SenseKey::kIllegalRequest, 0x21, 0x01));  // not a transport
  // Nothing moved.
  EXPECT_EQ(barcode_at(1024), "TST001L6");
  EXPECT_EQ(barcode_at(256), "");
}

TEST_F(ChangerTest, RemovalPreventedByTheDrive) {
  ASSERT_TRUE(move(1024, 256).good());
  EXPECT_TRUE(
      run(*lib_->drives()[0], cdb::test_unit_ready()).is(SenseKey::kUnitAttention, 0x28, 0));
  ASSERT_TRUE(run(*lib_->drives()[0], cdb::prevent_allow_medium_removal(true)).good());
  EXPECT_TRUE(move(256, 1024).is(SenseKey::kIllegalRequest, 0x53, 0x02));
  ASSERT_TRUE(run(*lib_->drives()[0], cdb::prevent_allow_medium_removal(false)).good());
  EXPECT_TRUE(move(256, 1024).good());
}

TEST_F(ChangerTest, ExchangeMedium) {
  ASSERT_TRUE(move(1024, 256).good());
  // Drive's TST001 -> slot 1030 (empty); slot 1025's TST002 -> drive.
  ASSERT_TRUE(run(changer(), cdb::exchange_medium(0, 1025, 256, 1030, false, false)).good());
  EXPECT_EQ(barcode_at(256), "TST002L6");
  EXPECT_EQ(barcode_at(1030), "TST001L6");
  EXPECT_EQ(barcode_at(1025), "");
  EXPECT_EQ(lib_->drives()[0]->barcode(), "TST002L6");
  // Second destination full.
  EXPECT_TRUE(run(changer(), cdb::exchange_medium(0, 1026, 256, 1027, false, false))
                  .is(SenseKey::kIllegalRequest, 0x3B, 0x0D));
  // Source empty.
  EXPECT_TRUE(run(changer(), cdb::exchange_medium(0, 1025, 256, 1031, false, false))
                  .is(SenseKey::kIllegalRequest, 0x3B, 0x0E));
}

TEST_F(ChangerTest, InitializeAndPosition) {
  EXPECT_TRUE(run(changer(), cdb::initialize_element_status()).good());
  EXPECT_TRUE(run(changer(), cdb::initialize_element_status_with_range(1024, 4)).good());
  EXPECT_TRUE(run(changer(), cdb::position_to_element(1, 256, false)).good());
  EXPECT_TRUE(run(changer(), cdb::position_to_element(1, 5000, false))
                  .is(SenseKey::kIllegalRequest, 0x21, 0x01));
}

TEST_F(ChangerTest, InventoryAndDriveContentsSurviveARestart) {
  ASSERT_TRUE(move(1024, 256).good());
  ASSERT_TRUE(move(1025, 16).good());
  // Write to the loaded cartridge, then "restart".
  ASSERT_TRUE(run(*lib_->drives()[0], cdb::test_unit_ready()).sense);  // UA
  ASSERT_TRUE(run(*lib_->drives()[0], cdb::write6(false, 5), 0, Bytes(5, 7)).good());
  open();
  EXPECT_EQ(barcode_at(256), "TST001L6");
  EXPECT_EQ(barcode_at(16), "TST002L6");
  EXPECT_EQ(barcode_at(1024), "");
  EXPECT_EQ(lib_->drives()[0]->barcode(), "TST001L6");
  run(*lib_->drives()[0], cdb::test_unit_ready());
  const Exec e = run(*lib_->drives()[0], cdb::read6(false, false, 5), 5);
  ASSERT_TRUE(e.good());
  EXPECT_EQ(e.data, Bytes(5, 7));
}

TEST_F(ChangerTest, NewCartridgesInTheSpecificationGoToFreeSlots) {
  ASSERT_TRUE(move(1024, 1031).good());
  lib_.reset();
  std::string error;
  lib_ = emu::VirtualLibrary::open(testing::library_spec(dir_.path() / "vtl", 6),
                                   testing::test_installation_id(), error);
  ASSERT_TRUE(lib_) << error;
  EXPECT_EQ(barcode_at(1031), "TST001L6");  // kept where it was moved
  EXPECT_EQ(barcode_at(1024), "TST006L6");  // the new one: the first free slot
}

}  // namespace
}  // namespace scsi
