// ElementStatusRepair against tgt 1.0.85's changer (a private tgtd on
// 127.0.0.1, shared with the conformance suite) and against the virtual
// library's emulated changer.
//
// tgt first shows what the repair is for: the raw device's READ ELEMENT
// STATUS is asserted to be wrong in the ways changer_quirks.h lists, so
// that a change in tgt shows up here.  What this tgt (Debian
// 1.0.85-1+deb12u1) does beyond that list, also asserted:
//  - it ignores NUMBER OF ELEMENTS: every element of the type from the
//    starting address comes;
//  - it does not refuse allocation lengths above 4096 bytes (its report is
//    built in a 4096-byte buffer all the same).
// Through the repair the reports must be as SMC-3 lays them out.  The
// emulated changer needs no repair: everything must pass through
// byte for byte.
//
// tgt's library (tests/support/tgt.sh): drives 1 and 2 (empty), transport
// 16, import/export 768 holding CLN001CU, slots 1024..1029 holding
// LAB001L6..LAB006L6.  Every test leaves it so (a test that moves a
// cartridge moves it back, and TearDown puts back any cartridge a failed
// test left in a drive), as the conformance suite does.

#include "tape/changer_quirks.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "scsi/cdb.h"
#include "scsi/emu_support.h"
#include "scsi/parse.h"
#include "scsi/tgt_fixture.h"
#include "scsi/transport_iscsi.h"
#include "tape/media_changer.h"
#include "tape/tape_drive.h"

namespace tape {
namespace {

namespace cdb = scsi::cdb;
namespace parse = scsi::parse;
using scsi::Bytes;
using namespace std::chrono_literals;

// One element as a report shows it.
struct Element {
  std::uint8_t type = 0;
  std::uint16_t address = 0;
  bool full = false;
  std::string barcode;
  friend bool operator==(const Element&, const Element&) = default;
};

std::ostream& operator<<(std::ostream& os, const Element& e) {
  return os << "{type " << int(e.type) << " @" << e.address << (e.full ? " full " : " empty ")
            << e.barcode << "}";
}

// tgt's library between tests, in address order.
const std::vector<Element> kTgtLibrary = {
    {4, 1, false, ""},           {4, 2, false, ""},           {1, 16, false, ""},
    {3, 768, true, "CLN001CU"},  {2, 1024, true, "LAB001L6"}, {2, 1025, true, "LAB002L6"},
    {2, 1026, true, "LAB003L6"}, {2, 1027, true, "LAB004L6"}, {2, 1028, true, "LAB005L6"},
    {2, 1029, true, "LAB006L6"},
};

std::vector<Element> tgt_elements(std::uint16_t from, std::size_t count, std::uint8_t type = 0) {
  std::vector<Element> out;
  for (const Element& e : kTgtLibrary) {
    if (e.address >= from && (type == 0 || e.type == type) && out.size() < count) out.push_back(e);
  }
  return out;
}

// What one command gave.
struct Answer {
  scsi::Result result;
  Bytes data;  // data-in, cut to what came
  std::optional<parse::ElementStatus> status;
};

Answer run(scsi::Device& device, const Bytes& c, std::size_t buffer) {
  Answer a;
  Bytes buf(buffer);
  scsi::Command cmd;
  cmd.cdb = c;
  cmd.direction = buffer > 0 ? scsi::Direction::kIn : scsi::Direction::kNone;
  cmd.data_in = buf;
  cmd.timeout = 30s;
  a.result = device.execute(cmd);
  buf.resize(std::min(a.result.data_in, buf.size()));
  a.data = std::move(buf);
  if (a.result.ok() && !c.empty() && c[0] == 0xB8) a.status = parse::read_element_status(a.data);
  return a;
}

Bytes res(bool voltag, cdb::ElementType type, std::uint16_t start, std::uint16_t count, bool dvcid,
          std::uint32_t alloc) {
  return cdb::read_element_status(voltag, type, start, count, dvcid, false, alloc);
}

// Every descriptor of a report, in report order.
std::vector<Element> elements_of(const parse::ElementStatus& s) {
  std::vector<Element> out;
  for (const parse::ElementStatusPage& p : s.pages) {
    for (const parse::ElementDescriptor& d : p.descriptors) {
      out.push_back({p.element_type, d.address, d.full,
                     d.primary_tag ? d.primary_tag->identifier : std::string()});
    }
  }
  return out;
}

// A report as SMC-3 lays it out: byte counts that add up, every descriptor
// whole, one page per run of one element type, addresses ascending, and a
// header that names the first element and counts them.
::testing::AssertionResult WellFormed(const Answer& a, std::uint16_t descriptor_length) {
  if (!a.result.ok()) return ::testing::AssertionFailure() << "the command failed";
  if (!a.status) return ::testing::AssertionFailure() << "the report does not parse";
  const parse::ElementStatus& s = *a.status;
  if (s.truncated) return ::testing::AssertionFailure() << "something announced did not come";
  if (s.byte_count + 8u != a.data.size()) {
    return ::testing::AssertionFailure()
           << "byte count " << s.byte_count << " for " << a.data.size() << " bytes";
  }
  std::size_t count = 0;
  std::optional<std::uint16_t> last;
  std::uint8_t last_type = 0;
  for (const parse::ElementStatusPage& p : s.pages) {
    if (p.element_type == last_type) {
      return ::testing::AssertionFailure() << "two pages in a row of type " << int(last_type);
    }
    last_type = p.element_type;
    if (p.descriptor_length != descriptor_length || p.descriptors.empty() ||
        p.byte_count != p.descriptors.size() * descriptor_length) {
      return ::testing::AssertionFailure()
             << "page of type " << int(p.element_type) << ": descriptor length "
             << p.descriptor_length << ", byte count " << p.byte_count << ", "
             << p.descriptors.size() << " descriptors";
    }
    for (const parse::ElementDescriptor& d : p.descriptors) {
      if (d.truncated) return ::testing::AssertionFailure() << d.address << " came cut short";
      if (last && d.address <= *last) {
        return ::testing::AssertionFailure() << d.address << " after " << *last;
      }
      last = d.address;
      ++count;
    }
  }
  if (s.elements_available != count) {
    return ::testing::AssertionFailure()
           << s.elements_available << " elements announced, " << count << " came";
  }
  const std::uint16_t first = s.pages.empty() ? 0 : s.pages.front().descriptors.front().address;
  if (s.first_address != first) {
    return ::testing::AssertionFailure()
           << "first element address " << s.first_address << ", not " << first;
  }
  return ::testing::AssertionSuccess();
}

std::string padded(const std::string& s, std::size_t n) {
  std::string out = s.substr(0, n);
  out.resize(n, ' ');
  return out;
}

// ---------------------------------------------------------------------------
// tgt

struct TgtChangerDevices {
  std::shared_ptr<scsi::Device> changer;
  std::vector<std::shared_ptr<scsi::Device>> drives;  // elements 1 and 2
};

const TgtChangerDevices* tgt_changer() {
  static std::unique_ptr<TgtChangerDevices> devices;
  static bool tried = false;
  if (tried) return devices.get();
  tried = true;
  std::string error;
  scsi::testing::Tgt* t = scsi::testing::Tgt::shared(error);
  if (!t) {
    ADD_FAILURE() << "tgt did not start: " << error;
    return nullptr;
  }
  std::vector<std::shared_ptr<scsi::Device>> opened;
  for (const std::string* url : {&t->vtl_changer_url, &t->vtl_drive1_url, &t->vtl_drive2_url}) {
    opened.push_back(scsi::open_iscsi(*url, error));
    if (!opened.back()) {
      ADD_FAILURE() << *url << ": " << error;
      return nullptr;
    }
  }
  devices = std::make_unique<TgtChangerDevices>();
  devices->changer = opened[0];
  devices->drives = {opened[1], opened[2]};
  return devices.get();
}

class TgtChanger : public ::testing::Test {
 protected:
  void SetUp() override {
    devices_ = tgt_changer();
    ASSERT_TRUE(devices_);
    raw_ = devices_->changer;
    ASSERT_TRUE(MediaChanger(raw_).wait_ready(10s).ok());
    repair_ = std::make_shared<ElementStatusRepair>(raw_);
    // The library as tgt.sh made it (one element type at a time, which
    // tgt reports right but for the last 8 bytes).
    ASSERT_EQ(inventory(), kTgtLibrary) << "the library is not as the suites leave it";
  }

  void TearDown() override {
    // A failed test may have left a cartridge in a drive: put it back.
    const Inventory inv = MediaChanger(raw_).inventory();
    ASSERT_TRUE(inv.status.ok()) << inv.status.describe();
    for (const ChangerElement* d : inv.of(ChangerElement::kDataTransfer)) {
      if (d->full && d->source) {
        EXPECT_TRUE(MediaChanger(raw_).move(d->address, *d->source).ok()) << d->address;
      }
    }
  }

  std::vector<Element> inventory() {
    const Inventory inv = MediaChanger(raw_).inventory();
    EXPECT_TRUE(inv.status.ok()) << inv.status.describe();
    std::vector<Element> out;
    for (const ChangerElement& e : inv.elements) {
      out.push_back({static_cast<std::uint8_t>(e.type), e.address, e.full, e.barcode});
    }
    std::sort(out.begin(), out.end(),
              [](const Element& a, const Element& b) { return a.address < b.address; });
    return out;
  }

  const TgtChangerDevices* devices_ = nullptr;
  std::shared_ptr<scsi::Device> raw_;
  std::shared_ptr<ElementStatusRepair> repair_;
};

TEST_F(TgtChanger, RawTypedReportsAreWrongAsTheQuirksSay) {
  // The byte counts count 8 bytes that never come, so the last descriptor
  // is cut short.
  const Answer storage =
      run(*raw_, res(true, cdb::ElementType::kStorage, 0, 0xFFFF, false, 4096), 4096);
  ASSERT_TRUE(storage.status);
  EXPECT_EQ(storage.data.size(), 8u + 8u + 6u * 52u - 8u);
  EXPECT_EQ(storage.status->byte_count, 8u + 6u * 52u);
  EXPECT_TRUE(storage.status->truncated);
  ASSERT_EQ(storage.status->pages.size(), 1u);
  EXPECT_TRUE(storage.status->pages[0].descriptors.back().truncated);

  // The first element address: whatever followed the transport in tgt's list.
  const Answer transport =
      run(*raw_, res(true, cdb::ElementType::kMediumTransport, 0, 0xFFFF, false, 4096), 4096);
  ASSERT_TRUE(transport.status);
  ASSERT_EQ(elements_of(*transport.status).size(), 1u);
  EXPECT_EQ(elements_of(*transport.status)[0].address, 16u);
  EXPECT_NE(transport.status->first_address, 16u) << "tgt reports the first address right now";

  // NUMBER OF ELEMENTS is ignored.
  const Answer two = run(*raw_, res(true, cdb::ElementType::kStorage, 1026, 2, false, 4096), 4096);
  ASSERT_TRUE(two.status);
  EXPECT_EQ(two.status->elements_available, 4u) << "tgt honours NUMBER OF ELEMENTS now";

  // An allocation length above 4096 is not refused by this tgt (the
  // quirks list says HARDWARE ERROR).
  const Answer large =
      run(*raw_, res(true, cdb::ElementType::kStorage, 0, 0xFFFF, false, 8192), 8192);
  EXPECT_TRUE(large.result.ok()) << "tgt refuses allocation lengths above 4096 now";
  EXPECT_EQ(large.data, storage.data);
}

TEST_F(TgtChanger, RepairedAllTypesReportHasEveryElementOnce) {
  EXPECT_FALSE(repair_->repairing());
  const Answer a = run(*repair_, res(true, cdb::ElementType::kAll, 0, 0xFFFF, false, 4096), 4096);
  ASSERT_TRUE(WellFormed(a, 52));
  EXPECT_TRUE(repair_->repairing());
  EXPECT_EQ(elements_of(*a.status), kTgtLibrary);
  EXPECT_EQ(a.status->first_address, 1u);
  EXPECT_EQ(a.status->elements_available, 10u);
  // Address order makes one page per element type here.
  std::vector<int> types;
  for (const parse::ElementStatusPage& p : a.status->pages) {
    types.push_back(p.element_type);
    EXPECT_TRUE(p.pvoltag);
    EXPECT_FALSE(p.avoltag);
  }
  EXPECT_EQ(types, (std::vector<int>{4, 1, 3, 2}));
  EXPECT_EQ(a.data.size(), 8u + 4u * 8u + 10u * 52u);
  // The same without volume tags: 16-byte descriptors.
  const Answer bare =
      run(*repair_, res(false, cdb::ElementType::kAll, 0, 0xFFFF, false, 4096), 4096);
  ASSERT_TRUE(WellFormed(bare, 16));
  std::vector<Element> want = kTgtLibrary;
  for (Element& e : want) e.barcode.clear();
  EXPECT_EQ(elements_of(*bare.status), want);
  EXPECT_FALSE(bare.status->pages[0].pvoltag);
}

TEST_F(TgtChanger, RepairHonoursStartingAddressAndNumberOfElements) {
  struct Case {
    cdb::ElementType type;
    std::uint16_t start, count;
  };
  for (const Case& c :
       {Case{cdb::ElementType::kAll, 768, 3}, Case{cdb::ElementType::kAll, 2, 2},
        Case{cdb::ElementType::kAll, 17, 1}, Case{cdb::ElementType::kAll, 1027, 100},
        Case{cdb::ElementType::kStorage, 1026, 2}, Case{cdb::ElementType::kDataTransfer, 0, 1}}) {
    SCOPED_TRACE("type " + std::to_string(int(c.type)) + " from " + std::to_string(c.start) + ", " +
                 std::to_string(c.count));
    const Answer a = run(*repair_, res(true, c.type, c.start, c.count, false, 4096), 4096);
    ASSERT_TRUE(WellFormed(a, 52));
    const std::vector<Element> want =
        tgt_elements(c.start, c.count, static_cast<std::uint8_t>(c.type));
    EXPECT_EQ(elements_of(*a.status), want);
    EXPECT_EQ(a.status->first_address, want.front().address);
  }
  // 768 and two slots: a page of each type.
  const Answer a = run(*repair_, res(true, cdb::ElementType::kAll, 768, 3, false, 4096), 4096);
  ASSERT_TRUE(a.status);
  ASSERT_EQ(a.status->pages.size(), 2u);
  EXPECT_EQ(a.status->pages[0].element_type, 3);
  EXPECT_EQ(a.status->pages[1].element_type, 2);
  EXPECT_EQ(a.status->pages[1].descriptors.size(), 2u);
  // Past the last element: nothing, and no error.
  const Answer none = run(*repair_, res(true, cdb::ElementType::kAll, 3000, 10, false, 4096), 4096);
  ASSERT_TRUE(none.status);
  EXPECT_EQ(none.data.size(), 8u);
  EXPECT_EQ(none.status->elements_available, 0u);
  EXPECT_EQ(none.status->byte_count, 0u);
  EXPECT_TRUE(none.status->pages.empty());
}

TEST_F(TgtChanger, RepairedTypedQueriesGiveWholeDescriptors) {
  const Answer storage =
      run(*repair_, res(true, cdb::ElementType::kStorage, 0, 0xFFFF, false, 4096), 4096);
  ASSERT_TRUE(WellFormed(storage, 52));
  EXPECT_EQ(elements_of(*storage.status), tgt_elements(1024, 6));
  EXPECT_EQ(storage.status->first_address, 1024u);
  EXPECT_EQ(storage.data.size(), 8u + 8u + 6u * 52u);
  // The transport's report names it first.
  const Answer transport =
      run(*repair_, res(true, cdb::ElementType::kMediumTransport, 0, 0xFFFF, false, 4096), 4096);
  ASSERT_TRUE(WellFormed(transport, 52));
  EXPECT_EQ(transport.status->first_address, 16u);
  EXPECT_EQ(elements_of(*transport.status), tgt_elements(16, 1));
  const Answer ie =
      run(*repair_, res(true, cdb::ElementType::kImportExport, 0, 0xFFFF, false, 4096), 4096);
  ASSERT_TRUE(WellFormed(ie, 52));
  EXPECT_EQ(elements_of(*ie.status), tgt_elements(768, 1));
}

TEST_F(TgtChanger, RepairedAllocationLengths) {
  const Bytes full_cdb = res(true, cdb::ElementType::kAll, 0, 0xFFFF, false, 4096);
  const Answer full = run(*repair_, full_cdb, 4096);
  ASSERT_TRUE(WellFormed(full, 52));
  // Larger than the changer takes from the repair: the same report.
  const Answer large =
      run(*repair_, res(true, cdb::ElementType::kAll, 0, 0xFFFF, false, 8192), 8192);
  ASSERT_TRUE(large.result.ok());
  EXPECT_EQ(large.data, full.data);
  EXPECT_EQ(large.result.residual, 8192u - full.data.size());
  // Small: the report is cut there, without an error; the header still
  // counts what is available.
  for (const std::size_t buffer : {std::size_t{100}, std::size_t{4096}}) {
    const Answer cut =
        run(*repair_, res(true, cdb::ElementType::kAll, 0, 0xFFFF, false, 100), buffer);
    ASSERT_TRUE(cut.result.ok()) << buffer;
    EXPECT_EQ(cut.data, Bytes(full.data.begin(), full.data.begin() + 100)) << buffer;
    EXPECT_EQ(cut.result.residual, buffer - 100) << buffer;
    ASSERT_TRUE(cut.status);
    EXPECT_TRUE(cut.status->truncated);
    EXPECT_EQ(cut.status->byte_count, full.status->byte_count);
    EXPECT_EQ(cut.status->elements_available, 10u);
    EXPECT_EQ(cut.status->first_address, 1u);
  }
  // Not even the header.
  const Answer tiny = run(*repair_, res(true, cdb::ElementType::kAll, 0, 0xFFFF, false, 6), 4096);
  ASSERT_TRUE(tiny.result.ok());
  EXPECT_EQ(tiny.data, Bytes(full.data.begin(), full.data.begin() + 6));
}

TEST_F(TgtChanger, RepairedDvcidNamesTheDrives) {
  std::vector<scsi::Identity> ids;
  for (const auto& d : devices_->drives) {
    const auto id = inquire_identity(*d);
    ASSERT_TRUE(id);
    ids.push_back(*id);
  }
  for (const bool voltag : {true, false}) {
    SCOPED_TRACE(voltag ? "with volume tags" : "without volume tags");
    const std::uint16_t length = voltag ? 86 : 50;
    const Answer a =
        run(*repair_, res(voltag, cdb::ElementType::kDataTransfer, 0, 0xFFFF, true, 4096), 4096);
    ASSERT_TRUE(WellFormed(a, length));
    ASSERT_EQ(a.status->pages.size(), 1u);
    const auto& drives = a.status->pages[0].descriptors;
    ASSERT_EQ(drives.size(), 2u);
    for (std::size_t i = 0; i < drives.size(); ++i) {
      EXPECT_EQ(drives[i].address, i + 1);
      ASSERT_TRUE(drives[i].identifier) << i;
      EXPECT_EQ(drives[i].identifier->code_set, 2);  // ASCII
      const std::string text(drives[i].identifier->identifier.begin(),
                             drives[i].identifier->identifier.end());
      // Vendor, product, serial; tgt never sends the last 8 bytes of a
      // report, so the last drive's serial is cut (zeros, as the repair pads).
      const std::string name = padded(ids[i].vendor, 8) + padded(ids[i].product, 16);
      EXPECT_EQ(text.substr(0, name.size()), name) << i;
      EXPECT_EQ(text.size(), 34u);
      const std::string serial = text.substr(name.size()).c_str();
      EXPECT_EQ(ids[i].serial.rfind(serial, 0), 0u) << serial << " of " << ids[i].serial;
      if (i == 0) {
        EXPECT_EQ(serial, ids[i].serial);
      }
    }
  }
  // All types with DVCID: every element once, the drives named.
  const Answer all = run(*repair_, res(true, cdb::ElementType::kAll, 0, 0xFFFF, true, 4096), 4096);
  ASSERT_TRUE(WellFormed(all, 86));
  EXPECT_EQ(elements_of(*all.status), kTgtLibrary);
  EXPECT_TRUE(all.status->pages[0].descriptors[0].identifier);
}

TEST_F(TgtChanger, WithoutVolumeTagsTheLastElementOfATypeComesWhole) {
  // The last slot's cartridge into the last drive: without volume tags,
  // tgt sends only the first 8 of that drive's 16 bytes.
  MediaChanger through(repair_);
  ASSERT_TRUE(through.move(1029, 2).ok());
  const Bytes c = res(false, cdb::ElementType::kDataTransfer, 0, 0xFFFF, false, 4096);
  const Answer raw = run(*raw_, c, 4096);
  ASSERT_TRUE(raw.status);
  EXPECT_TRUE(raw.status->truncated);
  EXPECT_EQ(raw.data.size(), 8u + 8u + 2u * 16u - 8u);

  const Answer a = run(*repair_, c, 4096);
  ASSERT_TRUE(WellFormed(a, 16));
  ASSERT_EQ(a.status->pages[0].descriptors.size(), 2u);
  const parse::ElementDescriptor& d2 = a.status->pages[0].descriptors[1];
  EXPECT_EQ(d2.address, 2u);
  EXPECT_TRUE(d2.full);
  EXPECT_TRUE(d2.svalid);
  EXPECT_EQ(d2.source_address, 1029u);
  EXPECT_FALSE(d2.primary_tag);
  // The slot it came from, last of the storage elements, is empty.
  const Answer slots =
      run(*repair_, res(false, cdb::ElementType::kStorage, 1028, 0xFFFF, false, 4096), 4096);
  ASSERT_TRUE(WellFormed(slots, 16));
  std::vector<Element> want = {{2, 1028, true, ""}, {2, 1029, false, ""}};
  EXPECT_EQ(elements_of(*slots.status), want);
  ASSERT_TRUE(through.move(2, 1029).ok());
  EXPECT_EQ(inventory(), kTgtLibrary);
}

TEST_F(TgtChanger, OtherCommandsPassThroughUnchanged) {
  // Commands that read: the same bytes either way.
  for (const Bytes& c : {cdb::inquiry(false, 0, 96), cdb::inquiry(true, 0x83, 255),
                         cdb::mode_sense6(true, 0, 0x1D, 0, 255),
                         // An element type SMC does not know: the changer's own answer.
                         Bytes{0xB8, 0x15, 0, 0, 0xFF, 0xFF, 0, 0, 0x10, 0, 0, 0}}) {
    SCOPED_TRACE(int(c[0]));
    const Answer raw = run(*raw_, c, 4096);
    const Answer repaired = run(*repair_, c, 4096);
    EXPECT_EQ(repaired.result.status, raw.result.status);
    EXPECT_EQ(repaired.result.sense, raw.result.sense);
    EXPECT_EQ(repaired.data, raw.data);
  }
  EXPECT_TRUE(run(*repair_, cdb::test_unit_ready(), 0).result.ok());

  // MOVE MEDIUM: slot 1024 into drive 1, which then holds LAB001L6 ...
  MediaChanger through(repair_);
  ASSERT_TRUE(through.move(1024, 1).ok());
  const Answer drives =
      run(*repair_, res(true, cdb::ElementType::kDataTransfer, 0, 0xFFFF, false, 4096), 4096);
  ASSERT_TRUE(WellFormed(drives, 52));
  const parse::ElementDescriptor& d1 = drives.status->pages[0].descriptors[0];
  EXPECT_EQ(d1.address, 1u);
  EXPECT_TRUE(d1.full);
  ASSERT_TRUE(d1.primary_tag);
  EXPECT_EQ(d1.primary_tag->identifier, "LAB001L6");
  EXPECT_TRUE(d1.svalid);
  EXPECT_EQ(d1.source_address, 1024u);
  TapeDrive tape(devices_->drives[0]);
  EXPECT_TRUE(tape.wait_ready(10s).ok());
  // ... a full destination and an empty source are refused as the changer
  // refuses them ...
  EXPECT_EQ(through.move(1025, 1).condition, Condition::kDestinationFull);
  EXPECT_EQ(through.move(2, 1024).condition, Condition::kSourceEmpty);
  // ... and back.
  ASSERT_TRUE(through.move(1, 1024).ok());
  EXPECT_EQ(inventory(), kTgtLibrary);
}

// All element types at once, raw: on a tgtd of its own, since tgtd may die
// of it (it did here, on the shared one, after a storage report with the
// drives' sessions open), and the suites sharing the other must not lose it.
TEST(TgtChangerAllTypes, RawReportIsGarbledRepairedIsWhole) {
  std::string error;
  const std::unique_ptr<scsi::testing::Tgt> tgt = scsi::testing::Tgt::start(error);
  ASSERT_TRUE(tgt) << error;
  std::shared_ptr<scsi::Device> raw = scsi::open_iscsi(tgt->vtl_changer_url, error);
  ASSERT_TRUE(raw) << error;
  ASSERT_TRUE(MediaChanger(raw).wait_ready(10s).ok());
  const Bytes all_cdb = res(true, cdb::ElementType::kAll, 0, 0xFFFF, false, 4096);
  ElementStatusRepair repair(raw);
  const Answer repaired = run(repair, all_cdb, 4096);
  ASSERT_TRUE(WellFormed(repaired, 52));
  EXPECT_EQ(elements_of(*repaired.status), kTgtLibrary);

  const Answer a = run(*raw, all_cdb, 4096);
  // Every page after the first is written at the wrong offset: the report
  // does not parse (or, were tgtd to die of it, does not come at all).
  EXPECT_TRUE(!a.result.ok() || !a.status || elements_of(*a.status) != kTgtLibrary)
      << "tgt's all-types report is right now";
  if (a.result.ok()) {
    EXPECT_FALSE(a.status.has_value()) << "tgt's garbled all-types report parses now";
    // The header counts every element and 8 bytes that do not come.
    ASSERT_GE(a.data.size(), 8u);
    EXPECT_EQ(a.data[3], kTgtLibrary.size());
    EXPECT_EQ(a.data.size(), 8u + kTgtLibrary.size() * 52u);
  }
}

// ---------------------------------------------------------------------------
// The emulated changer reports as SMC-3 says: nothing to repair.

TEST(EmulatedChangerQuirks, EverythingPassesThroughUnchanged) {
  scsi::testing::ScratchDir dir("changerquirks");
  std::string error;
  const auto lib =
      scsi::emu::VirtualLibrary::open(scsi::testing::library_spec(dir.path() / "vtl", 5),
                                      scsi::testing::test_installation_id(), error);
  ASSERT_TRUE(lib) << error;
  const auto raw = std::make_shared<scsi::emu::EmulatedDevice>(lib->changer(), lib->changer_name());
  ElementStatusRepair repair(raw);
  MediaChanger changer(raw);
  ASSERT_TRUE(changer.wait_ready(10s).ok());
  // A cartridge in a drive, so that drives report full and DVCID has a
  // loaded drive to name.
  ASSERT_TRUE(changer.move(1025, 256).ok());
  EXPECT_FALSE(repair.repairing());
  std::size_t reports = 0;
  for (const Bytes& c : {res(true, cdb::ElementType::kAll, 0, 0xFFFF, false, 4096),
                         res(false, cdb::ElementType::kAll, 0, 0xFFFF, false, 4096),
                         res(true, cdb::ElementType::kAll, 0, 0xFFFF, true, 8192),
                         res(true, cdb::ElementType::kAll, 17, 3, false, 4096),
                         res(true, cdb::ElementType::kStorage, 1026, 2, false, 4096),
                         res(true, cdb::ElementType::kDataTransfer, 0, 0xFFFF, true, 4096),
                         res(true, cdb::ElementType::kAll, 0, 0xFFFF, false, 100),
                         Bytes{0xB8, 0x15, 0, 0, 0xFF, 0xFF, 0, 0, 0x10, 0, 0, 0},
                         cdb::inquiry(false, 0, 96), cdb::mode_sense6(true, 0, 0x1D, 0, 255)}) {
    SCOPED_TRACE(::testing::PrintToString(c));
    const Answer direct = run(*raw, c, 8192);
    const Answer through = run(repair, c, 8192);
    EXPECT_EQ(through.result.status, direct.result.status);
    EXPECT_EQ(through.result.sense, direct.result.sense);
    EXPECT_EQ(through.result.data_in, direct.result.data_in);
    EXPECT_EQ(through.result.residual, direct.result.residual);
    EXPECT_EQ(through.data, direct.data);
    if (direct.status) ++reports;
  }
  EXPECT_EQ(reports, 7u);
  EXPECT_FALSE(repair.repairing());
  // The emulated changer's all-types report is whole as it is: transport,
  // import/export, 2 drives, 8 slots.
  const Answer all = run(repair, res(true, cdb::ElementType::kAll, 0, 0xFFFF, false, 4096), 4096);
  ASSERT_TRUE(all.status);
  EXPECT_FALSE(all.status->truncated);
  EXPECT_EQ(elements_of(*all.status).size(), 12u);
  EXPECT_TRUE(changer.move(256, 1025).ok());
}

}  // namespace
}  // namespace tape
