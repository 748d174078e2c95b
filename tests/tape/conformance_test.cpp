// One conformance suite for TapeDrive and MediaChanger, run unchanged
// against the emulated devices of the virtual library and against tgt
// 1.0.85's SSC tape and SMC changer over libiscsi (a private tgtd on
// 127.0.0.1, started and stopped by PID).
//
// Where tgt departs from SSC-4 / SMC-3 the test asserts the departure (a
// `Deviation`), so that a change in either implementation shows up.  The
// list of tgt 1.0.85's deviations:
//  - READ POSITION: byte 0 holds the data length, so no position can be read
//    (kNoReadPosition).
//  - LOCATE and ERASE: tgt refuses them, INVALID COMMAND OPERATION CODE
//    (kNoLocate, kNoErase).
//  - SILI is ignored: a short record still reports ILI (kSiliIgnored).
//  - A read shorter than the record (ILI, negative INFORMATION) transfers
//    no data at all (kNoDataFromLongerRecord).
//  - A read longer than the record (ILI, positive INFORMATION) of R bytes
//    for a record of L transfers only its first R - L bytes, and says so
//    in the transport's count (kShortReadCut).
//  - SPACE over blocks does not stop at a filemark: it runs on to end of
//    data and reports NO SENSE 00/05 (kSpaceBlocksPassesFilemarks).
//  - SPACE backwards over N filemarks leaves the head on the EOT side of
//    the (N+1)th filemark, not on the BOP side of the Nth
//    (kBackwardFilemarksEotSide); SPACE into end of data or BOP gives no
//    INFORMATION (kNoSpaceResidue), and BOP comes without the EOM bit.
//  - LOAD UNLOAD does nothing: no unload, no rewind (kLoadUnloadIgnored).
//  - Past its size the cartridge keeps taking writes, each reported as
//    early warning: there is no VOLUME OVERFLOW (kNoOverflow).
//  - EXCHANGE MEDIUM: tgt refuses it (kNoExchange).
//  - DVCID names a drive by vendor, product and serial in ASCII, cut 8 bytes
//    short, not by its NAA designator (kDvcidAscii).
//  - A cartridge cannot be write-protected from the initiator side, so the
//    write-protect path is only checked on the emulated drive
//    (kNoWriteProtect).
// Deviations the TapeDrive client absorbs, checked like any other result:
// BLANK CHECK with 00/00 and EOM instead of 00/05 at end of data, and a
// wrong transport residual with ILI and FILEMARK (the client counts from
// the sense INFORMATION instead).

#include <gtest/gtest.h>

#include <set>

#include "scsi/emu_support.h"
#include "scsi/tgt_fixture.h"
#include "scsi/transport_iscsi.h"
#include "tape/media_changer.h"
#include "tape/registry.h"
#include "tape/tape_drive.h"

namespace tape {
namespace {

using scsi::Bytes;
using namespace std::chrono_literals;

enum class Deviation {
  kNoReadPosition,
  kNoLocate,
  kNoErase,
  kSiliIgnored,
  kNoDataFromLongerRecord,
  kShortReadCut,
  kSpaceBlocksPassesFilemarks,
  kBackwardFilemarksEotSide,
  kNoSpaceResidue,
  kLoadUnloadIgnored,
  kNoOverflow,
  kNoExchange,
  kDvcidAscii,
  kNoWriteProtect,
};

struct Target {
  std::string name;
  std::shared_ptr<scsi::Device> tape;                         // a drive with a cartridge loaded
  std::shared_ptr<scsi::Device> changer;                      // a changer with cartridges in slots
  std::vector<std::shared_ptr<scsi::Device>> changer_drives;  // in element order
  std::set<Deviation> deviations;
  // Sets or clears a cartridge's write-protect tab (emulated only).
  std::function<bool(const std::string& barcode, bool on)> write_protect;

  bool deviates(Deviation d) const { return deviations.count(d) != 0; }
};

// The emulated library: 2 drives, 8 slots, 5 cartridges of 64 MiB (early
// warning at 60 MiB); the tape device is drive 0 with TST001L6 moved in.
Target* emulated() {
  static scsi::testing::ScratchDir dir("conformance");
  static std::unique_ptr<DeviceRegistry> registry;
  static Target target;
  if (registry) return &target;
  RegistrySpec spec;
  spec.state_dir = dir.path();
  spec.libraries.push_back(scsi::testing::library_spec("vtl", 5));
  std::string error;
  registry = DeviceRegistry::open(spec, error);
  if (!registry) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  target.name = "emulated";
  target.changer = registry->find("vtl.changer")->device;
  target.changer_drives = {registry->find("vtl.drive0")->device,
                           registry->find("vtl.drive1")->device};
  // A drive of its own for the tape tests: drive 1 holds the last cartridge.
  MediaChanger changer(target.changer);
  if (!changer.move(1024 + 4, 257).ok()) ADD_FAILURE() << "cannot load the tape tests' cartridge";
  target.tape = target.changer_drives[1];
  const std::filesystem::path lib_dir = dir.path() / "vtl";
  target.write_protect = [lib_dir](const std::string& barcode, bool on) {
    std::string err;
    auto c = scsi::emu::Cartridge::open(lib_dir / "cartridges" / (barcode + ".tape"), err);
    if (!c) return false;
    c->set_write_protected(on);
    return true;
  };
  return &target;
}

Target* tgt() {
  static std::unique_ptr<Target> target;
  static bool tried = false;
  if (tried) return target.get();
  tried = true;
  std::string error;
  scsi::testing::Tgt* t = scsi::testing::Tgt::shared(error);
  if (!t) {
    ADD_FAILURE() << "tgt did not start: " << error;
    return nullptr;
  }
  auto open = [&](const std::string& url) -> std::shared_ptr<scsi::Device> {
    std::string err;
    std::shared_ptr<scsi::Device> d = scsi::open_iscsi(url, err);
    if (!d) ADD_FAILURE() << url << ": " << err;
    return d;
  };
  target = std::make_unique<Target>();
  target->name = "tgt";
  target->tape = open(t->tape_url);
  target->changer = open(t->vtl_changer_url);
  target->changer_drives = {open(t->vtl_drive1_url), open(t->vtl_drive2_url)};
  target->deviations = {Deviation::kNoReadPosition,
                        Deviation::kNoLocate,
                        Deviation::kNoErase,
                        Deviation::kSiliIgnored,
                        Deviation::kNoDataFromLongerRecord,
                        Deviation::kShortReadCut,
                        Deviation::kSpaceBlocksPassesFilemarks,
                        Deviation::kBackwardFilemarksEotSide,
                        Deviation::kNoSpaceResidue,
                        Deviation::kLoadUnloadIgnored,
                        Deviation::kNoOverflow,
                        Deviation::kNoExchange,
                        Deviation::kDvcidAscii,
                        Deviation::kNoWriteProtect};
  return target.get();
}

enum class Kind { kEmulated, kTgt };

Target* target_of(Kind k) { return k == Kind::kEmulated ? emulated() : tgt(); }

std::string kind_name(const ::testing::TestParamInfo<Kind>& p) {
  return p.param == Kind::kEmulated ? "Emulated" : "Tgt";
}

// ---------------------------------------------------------------------------
// Tape drive

class TapeConformance : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    t_ = target_of(GetParam());
    ASSERT_TRUE(t_ && t_->tape);
    drive_ = std::make_unique<TapeDrive>(t_->tape);
    ASSERT_TRUE(drive_->wait_ready(10s).ok());
    ASSERT_TRUE(drive_->set_block_length(0).ok());
    ASSERT_TRUE(drive_->rewind().ok());
  }

  // Writes `records` (sizes) then a filemark, from the beginning.
  std::vector<Bytes> write_file(const std::vector<std::size_t>& sizes, std::uint32_t seed) {
    std::vector<Bytes> out;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      out.push_back(scsi::testing::pattern(sizes[i], seed + static_cast<std::uint32_t>(i)));
      EXPECT_TRUE(drive_->write(out.back()).ok()) << i;
    }
    EXPECT_TRUE(drive_->write_filemarks(1).ok());
    return out;
  }

  Target* t_ = nullptr;
  std::unique_ptr<TapeDrive> drive_;
};

TEST_P(TapeConformance, IdentifiesAsATapeDrive) {
  const auto id = drive_->identity();
  ASSERT_TRUE(id);
  EXPECT_EQ(id->peripheral_type, 0x01);
  EXPECT_FALSE(id->vendor.empty());
  EXPECT_FALSE(id->serial.empty());
  const TapeDrive::Limits l = drive_->block_limits();
  ASSERT_TRUE(l.status.ok());
  EXPECT_GE(l.min, 1u);
  EXPECT_GE(l.max, 256u * 1024u);
  EXPECT_FALSE(drive_->mode().write_protected);
}

TEST_P(TapeConformance, RecordsAndFilemarksReadBackExactly) {
  const auto first = write_file({1, 512, 1000, 65536, 262144}, 10);
  const auto second = write_file({70000, 3}, 20);
  ASSERT_TRUE(drive_->write_filemarks(1).ok());  // two filemarks end the data
  ASSERT_TRUE(drive_->rewind().ok());
  for (const auto* file : {&first, &second}) {
    for (const Bytes& rec : *file) {
      Bytes buf(rec.size());
      const TapeDrive::Read r = drive_->read(buf);
      ASSERT_TRUE(r.status.ok()) << r.status.describe();
      EXPECT_EQ(r.bytes, rec.size());
      EXPECT_EQ(buf, rec);
    }
    Bytes buf(100);
    const TapeDrive::Read fm = drive_->read(buf);
    EXPECT_EQ(fm.status.condition, Condition::kFilemark);
    EXPECT_EQ(fm.bytes, 0u);
  }
  Bytes buf(100);
  EXPECT_EQ(drive_->read(buf).status.condition, Condition::kFilemark);
  EXPECT_EQ(drive_->read(buf).status.condition, Condition::kEndOfData);
}

TEST_P(TapeConformance, IncorrectLengthBothWays) {
  const auto recs = write_file({1000, 1000, 1000}, 30);
  ASSERT_TRUE(drive_->rewind().ok());
  Bytes big(5000);
  TapeDrive::Read r = drive_->read(big);
  EXPECT_EQ(r.status.condition, Condition::kIncorrectLength);
  EXPECT_EQ(r.bytes, 1000u);
  EXPECT_EQ(r.record_length, 1000u);
  EXPECT_TRUE(std::equal(recs[0].begin(), recs[0].end(), big.begin()));
  Bytes small(10);
  r = drive_->read(small);
  EXPECT_EQ(r.status.condition, Condition::kIncorrectLength);
  EXPECT_EQ(r.bytes, 10u);
  EXPECT_EQ(r.record_length, 1000u);
  if (t_->deviates(Deviation::kNoDataFromLongerRecord)) {
    EXPECT_EQ(small, Bytes(10, 0)) << "tgt now sends the start of a longer record";
  } else {
    EXPECT_TRUE(std::equal(small.begin(), small.end(), recs[1].begin()));
  }
  // A buffer longer than the record but less than twice as long: every byte
  // the client reports is the record's.  (tgt sends only buffer - record
  // bytes of it: kShortReadCut.)
  Bytes mid(1500, 0xEE);
  r = drive_->read(mid);
  EXPECT_EQ(r.status.condition, Condition::kIncorrectLength);
  EXPECT_EQ(r.record_length, 1000u);
  if (t_->deviates(Deviation::kShortReadCut)) {
    EXPECT_EQ(r.bytes, 500u) << "tgt now sends the whole of a shorter record";
  } else {
    EXPECT_EQ(r.bytes, 1000u);
  }
  EXPECT_TRUE(
      std::equal(mid.begin(), mid.begin() + static_cast<std::ptrdiff_t>(r.bytes), recs[2].begin()));
  ASSERT_TRUE(drive_->space_blocks(-1).ok());  // back onto the third record
  // SILI: a short record is not an error...
  r = drive_->read(big, true);
  if (t_->deviates(Deviation::kSiliIgnored)) {
    EXPECT_EQ(r.status.condition, Condition::kIncorrectLength) << "tgt ignores SILI";
  } else {
    EXPECT_TRUE(r.status.ok()) << r.status.describe();
  }
  EXPECT_EQ(r.bytes, 1000u);
}

TEST_P(TapeConformance, SpacingOverBlocksStopsAtAFilemark) {
  write_file({10, 10}, 40);  // 0 1 FM(2)
  write_file({10}, 50);      // 3 FM(4)
  ASSERT_TRUE(drive_->rewind().ok());
  const Status s = drive_->space_blocks(5);
  if (t_->deviates(Deviation::kSpaceBlocksPassesFilemarks)) {
    EXPECT_NE(s.condition, Condition::kFilemark) << "tgt now stops at filemarks";
    return;
  }
  EXPECT_EQ(s.condition, Condition::kFilemark);
  EXPECT_EQ(s.residue, 3);
  Bytes buf(10);
  ASSERT_TRUE(drive_->read(buf).status.ok());
  EXPECT_EQ(buf, scsi::testing::pattern(10, 50));
  // Backwards over blocks: stops on the BOP side of FM(2), so the next read
  // meets it.
  EXPECT_EQ(drive_->space_blocks(-3).condition, Condition::kFilemark);
  EXPECT_EQ(drive_->read(buf).status.condition, Condition::kFilemark);
  // Back before FM(2), then back over the two records into BOP.
  EXPECT_TRUE(drive_->space_filemarks(-1).ok());
  const Status bop = drive_->space_blocks(-10);
  EXPECT_EQ(bop.condition, Condition::kBeginningOfMedium);
  EXPECT_EQ(bop.residue, 8);
}

TEST_P(TapeConformance, SpacingOverFilemarks) {
  write_file({10, 10}, 40);  // 0 1 FM(2)
  write_file({10}, 50);      // 3 FM(4)
  write_file({10}, 60);      // 5 FM(6)
  ASSERT_TRUE(drive_->rewind().ok());
  EXPECT_TRUE(drive_->space_filemarks(2).ok());  // after FM(4)
  Bytes buf(10);
  TapeDrive::Read r = drive_->read(buf);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(buf, scsi::testing::pattern(10, 60));
  Status s = drive_->space_filemarks(2);  // only one more
  EXPECT_EQ(s.condition, Condition::kEndOfData) << s.describe();
  if (t_->deviates(Deviation::kNoSpaceResidue)) {
    EXPECT_FALSE(s.residue_valid) << "tgt now reports the residue";
  } else {
    EXPECT_EQ(s.residue, 1) << s.describe();
  }
  // Back over FM(6) and FM(4): the head is on the BOP side of FM(4).
  s = drive_->space_filemarks(-2);
  EXPECT_TRUE(s.ok()) << s.describe();
  if (t_->deviates(Deviation::kBackwardFilemarksEotSide)) {
    // tgt: on the EOT side of FM(2), before record 3.
    r = drive_->read(buf);
    ASSERT_TRUE(r.status.ok()) << r.status.describe();
    EXPECT_EQ(buf, scsi::testing::pattern(10, 50));
  } else {
    EXPECT_EQ(drive_->read(buf).status.condition, Condition::kFilemark);  // FM(4)
    EXPECT_TRUE(drive_->space_filemarks(-1).ok());                        // BOP side of FM(4) again
    EXPECT_TRUE(drive_->space_blocks(-1).ok());                           // onto record 3
    r = drive_->read(buf);
    ASSERT_TRUE(r.status.ok());
    EXPECT_EQ(buf, scsi::testing::pattern(10, 50));
  }
  s = drive_->space_filemarks(-5);
  EXPECT_EQ(s.condition, Condition::kBeginningOfMedium) << s.describe();
  r = drive_->read(buf);
  EXPECT_EQ(buf, scsi::testing::pattern(10, 40));
  EXPECT_TRUE(drive_->space_end_of_data().ok());
  EXPECT_EQ(drive_->read(buf).status.condition, Condition::kEndOfData);
}

TEST_P(TapeConformance, PositionAndLocate) {
  write_file({10, 10, 10}, 70);  // 0 1 2 FM(3)
  write_file({10}, 80);          // 4 FM(5)
  TapeDrive::Position p = drive_->read_position();
  if (t_->deviates(Deviation::kNoReadPosition)) {
    EXPECT_FALSE(p.status.ok() && p.object == 6) << "tgt's READ POSITION became usable";
  } else {
    ASSERT_TRUE(p.status.ok());
    EXPECT_EQ(p.object, 6u);
    EXPECT_FALSE(p.bop);
  }
  const Status s = drive_->locate(4);
  if (t_->deviates(Deviation::kNoLocate)) {
    EXPECT_EQ(s.condition, Condition::kIllegalRequest) << "tgt implements LOCATE now";
    return;
  }
  ASSERT_TRUE(s.ok()) << s.describe();
  Bytes buf(10);
  ASSERT_TRUE(drive_->read(buf).status.ok());
  EXPECT_EQ(buf, scsi::testing::pattern(10, 80));
  EXPECT_EQ(drive_->locate(100).condition, Condition::kEndOfData);
  ASSERT_TRUE(drive_->locate(0).ok());
  p = drive_->read_position();
  ASSERT_TRUE(p.status.ok());
  EXPECT_TRUE(p.bop);
  EXPECT_EQ(p.object, 0u);
}

TEST_P(TapeConformance, FixedBlockMode) {
  ASSERT_TRUE(drive_->set_block_length(512).ok());
  EXPECT_EQ(drive_->mode().block_length, 512u);
  const Bytes data = scsi::testing::pattern(512 * 8, 90);
  ASSERT_TRUE(drive_->write_fixed(data, 512).ok());
  ASSERT_TRUE(drive_->write_filemarks(1).ok());
  ASSERT_TRUE(drive_->rewind().ok());
  Bytes back(512 * 10);
  const TapeDrive::Read r = drive_->read_fixed(back, 512);
  EXPECT_EQ(r.status.condition, Condition::kFilemark);
  EXPECT_EQ(r.bytes, data.size());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), back.begin()));
  ASSERT_TRUE(drive_->set_block_length(0).ok());
  EXPECT_EQ(drive_->mode().block_length, 0u);
}

TEST_P(TapeConformance, WritingInTheMiddleEndsTheData) {
  write_file({10, 10, 10, 10}, 100);
  ASSERT_TRUE(drive_->rewind().ok());
  ASSERT_TRUE(drive_->space_blocks(2).ok());
  ASSERT_TRUE(drive_->write(Bytes(20, 0xAB)).ok());
  Bytes buf(20);
  EXPECT_EQ(drive_->read(buf).status.condition, Condition::kEndOfData);
  ASSERT_TRUE(drive_->rewind().ok());
  ASSERT_TRUE(drive_->space_blocks(2).ok());
  ASSERT_TRUE(drive_->read(buf).status.ok());
  EXPECT_EQ(buf, Bytes(20, 0xAB));
  const Status e = drive_->erase();
  if (t_->deviates(Deviation::kNoErase)) {
    EXPECT_EQ(e.condition, Condition::kIllegalRequest);
  } else {
    EXPECT_TRUE(e.ok()) << e.describe();
  }
}

TEST_P(TapeConformance, EarlyWarningThenOverflowKeepWhatWasWritten) {
  // Fill the cartridge (64 MiB on both targets) with 1 MiB records.
  const Bytes mib = scsi::testing::pattern(1u << 20, 110);
  int accepted = 0;
  bool warned = false;
  Status s;
  for (int i = 0; i < 80; ++i) {
    s = drive_->write(mib);
    if (s.ok() || s.condition == Condition::kEarlyWarning) {
      ++accepted;
      warned |= s.condition == Condition::kEarlyWarning;
      continue;
    }
    break;
  }
  EXPECT_TRUE(warned) << "no early warning before the end";
  EXPECT_GT(accepted, 50);
  if (t_->deviates(Deviation::kNoOverflow)) {
    EXPECT_EQ(accepted, 80) << "tgt now stops writing at the end of the cartridge";
  } else {
    EXPECT_EQ(s.condition, Condition::kOverflow) << s.describe();
    EXPECT_LE(accepted, 64);
  }
  // Every record that was accepted reads back.
  ASSERT_TRUE(drive_->rewind().ok());
  Bytes buf(1u << 20);
  for (int i = 0; i < accepted; ++i) {
    const TapeDrive::Read r = drive_->read(buf);
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.describe();
    ASSERT_EQ(buf, mib) << i;
  }
  EXPECT_EQ(drive_->read(buf).status.condition, Condition::kEndOfData);
}

TEST_P(TapeConformance, UnloadAndLoad) {
  write_file({10}, 120);
  ASSERT_TRUE(drive_->unload().ok());
  const Status s = drive_->test_unit_ready();
  if (t_->deviates(Deviation::kLoadUnloadIgnored)) {
    EXPECT_TRUE(s.ok()) << "tgt's UNLOAD now unloads";
  } else {
    EXPECT_EQ(s.condition, Condition::kNotReady);
  }
  ASSERT_TRUE(drive_->load().ok());
  ASSERT_TRUE(drive_->wait_ready(10s).ok());
  if (t_->deviates(Deviation::kLoadUnloadIgnored)) {
    // LOAD did not rewind either: the head is still at end of data.
    Bytes at_end(10);
    EXPECT_EQ(drive_->read(at_end).status.condition, Condition::kEndOfData);
    ASSERT_TRUE(drive_->rewind().ok());
  } else {
    const TapeDrive::Position p = drive_->read_position();
    EXPECT_TRUE(p.status.ok() && p.bop);
  }
  Bytes buf(10);
  ASSERT_TRUE(drive_->read(buf).status.ok());
  EXPECT_EQ(buf, scsi::testing::pattern(10, 120));
}

INSTANTIATE_TEST_SUITE_P(Targets, TapeConformance, ::testing::Values(Kind::kEmulated, Kind::kTgt),
                         kind_name);

// ---------------------------------------------------------------------------
// Media changer

class ChangerConformance : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    t_ = target_of(GetParam());
    ASSERT_TRUE(t_ && t_->changer);
    changer_ = std::make_unique<MediaChanger>(t_->changer);
    ASSERT_TRUE(changer_->wait_ready(10s).ok());
    inv_ = changer_->inventory();
    ASSERT_TRUE(inv_.status.ok()) << inv_.status.describe();
  }

  const ChangerElement* first(ChangerElement::Type type, bool full) const {
    for (const ChangerElement* e : inv_.of(type)) {
      if (e->full == full) return e;
    }
    return nullptr;
  }

  Target* t_ = nullptr;
  std::unique_ptr<MediaChanger> changer_;
  Inventory inv_;
};

TEST_P(ChangerConformance, InventoryHasEveryElementType) {
  EXPECT_GE(inv_.of(ChangerElement::kTransport).size(), 1u);
  EXPECT_GE(inv_.of(ChangerElement::kStorage).size(), 6u);
  EXPECT_GE(inv_.of(ChangerElement::kImportExport).size(), 1u);
  EXPECT_EQ(inv_.of(ChangerElement::kDataTransfer).size(), 2u);
  int labelled = 0;
  for (const ChangerElement* e : inv_.of(ChangerElement::kStorage)) {
    if (e->full) {
      EXPECT_FALSE(e->barcode.empty()) << e->address;
      ++labelled;
    }
  }
  EXPECT_GE(labelled, 4);
}

TEST_P(ChangerConformance, DriveElementsNameTheirDrives) {
  ASSERT_TRUE(inv_.dvcid);
  const auto drives = inv_.of(ChangerElement::kDataTransfer);
  ASSERT_EQ(drives.size(), t_->changer_drives.size());
  for (std::size_t i = 0; i < drives.size(); ++i) {
    const auto id = inquire_identity(*t_->changer_drives[i]);
    ASSERT_TRUE(id);
    ASSERT_FALSE(drives[i]->identifier.empty());
    if (t_->deviates(Deviation::kDvcidAscii)) {
      // tgt: "VENDOR  PRODUCT         SERIAL", cut short: the vendor is there.
      const std::string text(drives[i]->identifier.begin(), drives[i]->identifier.end());
      EXPECT_EQ(text.rfind(id->vendor, 0), 0u) << text;
    } else {
      EXPECT_EQ(drives[i]->identifier_type, 3);  // NAA
      EXPECT_EQ(drives[i]->identifier, id->designator);
    }
  }
}

TEST_P(ChangerConformance, MoveIntoADriveAndBack) {
  const ChangerElement* slot = first(ChangerElement::kStorage, true);
  const ChangerElement* drive = first(ChangerElement::kDataTransfer, false);
  ASSERT_TRUE(slot && drive);
  const std::uint16_t from = slot->address, to = drive->address;
  const std::string barcode = slot->barcode;
  ASSERT_TRUE(changer_->move(from, to).ok());
  Inventory now = changer_->inventory();
  ASSERT_TRUE(now.status.ok());
  EXPECT_TRUE(now.find(to)->full);
  EXPECT_EQ(now.find(to)->barcode, barcode);
  EXPECT_FALSE(now.find(from)->full);
  ASSERT_TRUE(now.find(to)->source.has_value());
  EXPECT_EQ(*now.find(to)->source, from);
  // The drive has the cartridge: it becomes ready.
  std::size_t index = 0;
  for (const ChangerElement* d : inv_.of(ChangerElement::kDataTransfer)) {
    if (d->address == to) break;
    ++index;
  }
  TapeDrive tape(t_->changer_drives[index]);
  EXPECT_TRUE(tape.wait_ready(10s).ok());
  ASSERT_TRUE(changer_->move(to, from).ok());
  now = changer_->inventory();
  EXPECT_FALSE(now.find(to)->full);
  EXPECT_EQ(now.find(from)->barcode, barcode);
}

TEST_P(ChangerConformance, MoveErrors) {
  const ChangerElement* full = first(ChangerElement::kStorage, true);
  // An empty element of any kind (tgt's slots are all full).
  const ChangerElement* empty = nullptr;
  for (const ChangerElement& e : inv_.elements) {
    if (!e.full && e.type != ChangerElement::kTransport && !empty) empty = &e;
  }
  ASSERT_TRUE(full && empty);
  EXPECT_EQ(changer_->move(empty->address, full->address).condition, Condition::kSourceEmpty);
  const ChangerElement* other_full = nullptr;
  for (const ChangerElement* e : inv_.of(ChangerElement::kStorage)) {
    if (e->full && e != full) other_full = e;
  }
  ASSERT_TRUE(other_full);
  EXPECT_EQ(changer_->move(full->address, other_full->address).condition,
            Condition::kDestinationFull);
  const Status bad = changer_->move(full->address, 0x7FFF);
  EXPECT_TRUE(bad.condition == Condition::kInvalidElement ||
              bad.condition == Condition::kIllegalRequest)
      << bad.describe();
  const Inventory now = changer_->inventory();
  EXPECT_TRUE(now.find(full->address)->full);
  EXPECT_FALSE(now.find(empty->address)->full);
}

TEST_P(ChangerConformance, ExchangeMedium) {
  const ChangerElement* a = first(ChangerElement::kStorage, true);
  const ChangerElement* drive = first(ChangerElement::kDataTransfer, false);
  ASSERT_TRUE(a && drive);
  ASSERT_TRUE(changer_->move(a->address, drive->address).ok());
  const ChangerElement* b = nullptr;
  const ChangerElement* empty = nullptr;
  Inventory now = changer_->inventory();
  for (const ChangerElement* e : now.of(ChangerElement::kStorage)) {
    if (e->full && !b) b = e;
    if (!e->full && !empty) empty = e;
  }
  ASSERT_TRUE(b && empty);
  const std::uint16_t drive_address = drive->address, b_address = b->address,
                      empty_address = empty->address, a_address = a->address;
  const std::string b_barcode = b->barcode;
  // b -> the drive; the drive's cartridge -> the empty slot.
  const Status s = changer_->exchange(b_address, drive_address, empty_address);
  if (t_->deviates(Deviation::kNoExchange)) {
    EXPECT_EQ(s.condition, Condition::kIllegalRequest);
    ASSERT_TRUE(changer_->move(drive_address, a_address).ok());
    return;
  }
  ASSERT_TRUE(s.ok()) << s.describe();
  now = changer_->inventory();
  EXPECT_EQ(now.find(drive_address)->barcode, b_barcode);
  EXPECT_TRUE(now.find(empty_address)->full);
  EXPECT_FALSE(now.find(b_address)->full);
  // Put everything back.
  ASSERT_TRUE(changer_->move(drive_address, b_address).ok());
  ASSERT_TRUE(changer_->move(empty_address, a_address).ok());
}

TEST_P(ChangerConformance, WriteProtectedCartridgeRefusesWrites) {
  if (t_->deviates(Deviation::kNoWriteProtect)) {
    EXPECT_FALSE(t_->write_protect) << "no way to write-protect a tgt cartridge";
    return;
  }
  const ChangerElement* slot = first(ChangerElement::kStorage, true);
  const ChangerElement* drive = first(ChangerElement::kDataTransfer, false);
  ASSERT_TRUE(slot && drive);
  const std::string barcode = slot->barcode;
  ASSERT_TRUE(t_->write_protect(barcode, true));
  ASSERT_TRUE(changer_->move(slot->address, drive->address).ok());
  std::size_t index = 0;
  for (const ChangerElement* d : inv_.of(ChangerElement::kDataTransfer)) {
    if (d->address == drive->address) break;
    ++index;
  }
  TapeDrive tape(t_->changer_drives[index]);
  ASSERT_TRUE(tape.wait_ready(10s).ok());
  EXPECT_TRUE(tape.mode().write_protected);
  EXPECT_EQ(tape.write(Bytes(10)).condition, Condition::kWriteProtected);
  EXPECT_EQ(tape.write_filemarks(1).condition, Condition::kWriteProtected);
  ASSERT_TRUE(changer_->move(drive->address, slot->address).ok());
  EXPECT_TRUE(t_->write_protect(barcode, false));
}

INSTANTIATE_TEST_SUITE_P(Targets, ChangerConformance,
                         ::testing::Values(Kind::kEmulated, Kind::kTgt), kind_name);

}  // namespace
}  // namespace tape
