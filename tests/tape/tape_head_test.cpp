// TapeHead: NDMP's tape motions (draft-skardal-ndmpv4-04 3.4) with exact
// residual counts and the (file, record) position after every step.  One
// suite, run unchanged against
//  - the virtual library's emulated drive, positioned by the drive (kDrive);
//  - the same drive positioned by the host (kHost): host positioning must
//    be right on a drive that needs none;
//  - tgt 1.0.85's tape drive (the tgtd on 127.0.0.1 the test binary
//    shares), positioned by the host, as the NDMP tape service does for it.
// Each test starts from a rewound tape and writes its own layout; the
// motion tests run twice, once with the head that wrote the layout (host
// positioning then knows where the filemarks are) and once with a head new
// to the tape.  Unit attentions come from a logical unit reset
// (scsi::Device::reset(): the emulated unit's, or an iSCSI LUN RESET, after
// which tgt reports a unit attention too).
//
// Where the drive positions, a backward motion over filemarks or a motion
// into end of data leaves the record number unknown (the drive does not say
// how many records it passed); the host, which counts them, knows it.  The
// expectations say so with host_knows().

#include "tape/tape_head.h"

#include <gtest/gtest.h>

#include <functional>

#include "scsi/emu_support.h"
#include "scsi/fault.h"
#include "scsi/tgt_fixture.h"
#include "scsi/transport_iscsi.h"
#include "tape/media_changer.h"

namespace tape {
namespace {

using scsi::Bytes;
using Pos = std::optional<std::uint64_t>;
using namespace std::chrono_literals;

enum class Rig { kEmulatedDrive, kEmulatedHost, kTgtHost };

std::string rig_name(const ::testing::TestParamInfo<Rig>& p) {
  switch (p.param) {
    case Rig::kEmulatedDrive:
      return "EmulatedDrivePositions";
    case Rig::kEmulatedHost:
      return "EmulatedHostPositions";
    case Rig::kTgtHost:
      return "TgtHostPositions";
  }
  return "Unknown";
}

// Drive 0 of a virtual library of its own, with a cartridge moved in.
std::shared_ptr<scsi::Device> emulated_drive() {
  static scsi::testing::ScratchDir dir("tapehead");
  static std::unique_ptr<scsi::emu::VirtualLibrary> lib;
  static std::shared_ptr<scsi::Device> drive;
  if (drive) return drive;
  std::string error;
  lib = scsi::emu::VirtualLibrary::open(scsi::testing::library_spec(dir.path() / "vtl", 1),
                                        scsi::testing::test_installation_id(), error);
  if (!lib) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  MediaChanger changer(
      std::make_shared<scsi::emu::EmulatedDevice>(lib->changer(), lib->changer_name()));
  const Status moved =
      changer.move(scsi::emu::VirtualLibrary::kFirstSlot, scsi::emu::VirtualLibrary::kFirstDrive);
  if (!moved.ok()) {
    ADD_FAILURE() << "cannot load a cartridge: " << moved.describe();
    return nullptr;
  }
  drive = std::make_shared<scsi::emu::EmulatedDevice>(lib->drives()[0], lib->drive_name(0));
  return drive;
}

// tgt's tape drive (cartridge loaded), on the tgtd the whole binary shares.
std::shared_ptr<scsi::Device> tgt_drive() {
  static std::shared_ptr<scsi::Device> drive;
  static bool tried = false;
  if (tried) return drive;
  tried = true;
  std::string error;
  scsi::testing::Tgt* t = scsi::testing::Tgt::shared(error);
  if (!t) {
    ADD_FAILURE() << "tgt did not start: " << error;
    return nullptr;
  }
  drive = scsi::open_iscsi(t->tape_url, error);
  if (!drive) ADD_FAILURE() << t->tape_url << ": " << error;
  return drive;
}

std::string show(const Pos& p) { return p ? std::to_string(*p) : std::string("?"); }
std::string show(const HeadPosition& p) {
  return "(file " + show(p.file) + ", record " + show(p.record) + ")";
}

// The layout most tests write: rec rec FM | rec FM | rec rec rec FM | FM |
// end of data.  Files 0-3 end with a filemark; file 4 is empty.
const std::vector<std::vector<std::size_t>> kFiles = {{100, 200}, {300}, {400, 500, 600}, {}};

Bytes content(std::size_t file, std::size_t record) {
  return scsi::testing::pattern(kFiles[file][record],
                                static_cast<std::uint32_t>(1000 + file * 10 + record));
}

class TapeHeadTest : public ::testing::TestWithParam<Rig> {
 protected:
  void SetUp() override {
    device_ = GetParam() == Rig::kTgtHost ? tgt_drive() : emulated_drive();
    ASSERT_TRUE(device_);
    TapeDrive drive(device_, timeouts());
    ASSERT_TRUE(drive.wait_ready(10s).ok());
    ASSERT_TRUE(drive.set_block_length(0).ok());
    ASSERT_TRUE(drive.rewind().ok());
    head_ = new_head();
    ASSERT_TRUE(head_->rewind().ok());
    ASSERT_TRUE(At(0, 0));
  }

  static TapeTimeouts timeouts() {
    TapeTimeouts t;
    t.io = 30s;
    t.positioning = 60s;
    t.quick = 10s;
    return t;
  }

  std::unique_ptr<TapeHead> new_head() const {
    auto h = std::make_unique<TapeHead>(device_, timeouts());
    h->set_positioning(host() ? TapeHead::Positioning::kHost : TapeHead::Positioning::kDrive);
    return h;
  }

  bool host() const { return GetParam() != Rig::kEmulatedDrive; }
  // A record number that host positioning counts and a drive's SPACE does
  // not report.
  Pos host_knows(std::uint64_t record) const { return host() ? Pos(record) : std::nullopt; }

  ::testing::AssertionResult At(Pos file, Pos record) const {
    const HeadPosition want{file, record};
    if (head_->position() == want) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "the head is at " << show(head_->position()) << ", not " << show(want);
  }

  static ::testing::AssertionResult Moved(const TapeHead::Motion& m, Condition c,
                                          std::uint32_t resid) {
    if (m.status.condition != c || m.resid != resid) {
      return ::testing::AssertionFailure()
             << "motion ended " << m.status.describe() << " resid " << m.resid << ", not "
             << to_string(c) << " resid " << resid;
    }
    if (m.stopped_early() != (c != Condition::kOk)) {
      return ::testing::AssertionFailure() << "stopped_early() is " << m.stopped_early();
    }
    return ::testing::AssertionSuccess();
  }

  // Reads with a buffer larger than any record of the layout: the record
  // (file, record) must come whole.
  ::testing::AssertionResult ReadsRecord(std::size_t file, std::size_t record) {
    return ReadsRecord(content(file, record));
  }
  ::testing::AssertionResult ReadsRecord(const Bytes& want) {
    Bytes buf(want.size() + 100);
    const TapeDrive::Read r = head_->read(buf);
    if (!r.status.ok()) return ::testing::AssertionFailure() << "read: " << r.status.describe();
    if (r.bytes != want.size() || r.record_length != want.size()) {
      return ::testing::AssertionFailure() << "read " << r.bytes << " bytes of a record of "
                                           << show(Pos(r.record_length)) << ", not " << want.size();
    }
    if (!std::equal(want.begin(), want.end(), buf.begin())) {
      return ::testing::AssertionFailure() << "another record's bytes came";
    }
    return ::testing::AssertionSuccess();
  }

  // A read that meets a filemark or end of data: no bytes.
  ::testing::AssertionResult ReadMeets(Condition c) {
    Bytes buf(1000);
    const TapeDrive::Read r = head_->read(buf);
    if (r.status.condition != c || r.bytes != 0) {
      return ::testing::AssertionFailure() << "read: " << r.status.describe() << " with " << r.bytes
                                           << " bytes, not " << to_string(c);
    }
    return ::testing::AssertionSuccess();
  }

  // Writes kFiles through the head (write_filemarks(2) ends it), checking
  // the position after every step, and rewinds.
  void write_layout() {
    for (std::size_t f = 0; f < 3; ++f) {
      for (std::size_t r = 0; r < kFiles[f].size(); ++r) {
        ASSERT_TRUE(head_->write(content(f, r)).ok()) << f << "/" << r;
        ASSERT_TRUE(At(f, r + 1));
      }
      if (f < 2) {
        ASSERT_TRUE(head_->write_filemarks(1).ok());
        ASSERT_TRUE(At(f + 1, 0));
      }
    }
    ASSERT_TRUE(head_->write_filemarks(2).ok());
    ASSERT_TRUE(At(4, 0));
    ASSERT_TRUE(head_->rewind().ok());
    ASSERT_TRUE(At(0, 0));
  }

  // Runs `steps` from BOP with the head that wrote the layout, then with a
  // head new to the tape.
  void with_each_head(const std::function<void()>& steps) {
    {
      SCOPED_TRACE("the head that wrote the layout");
      ASSERT_TRUE(head_->rewind().ok());
      steps();
    }
    if (HasFatalFailure()) return;
    SCOPED_TRACE("a head new to the tape");
    head_ = new_head();
    ASSERT_TRUE(head_->rewind().ok());
    steps();
  }

  std::shared_ptr<scsi::Device> device_;
  std::unique_ptr<TapeHead> head_;
};

TEST_P(TapeHeadTest, ReadsTheLayoutBackRecordByRecord) {
  ASSERT_NO_FATAL_FAILURE(write_layout());
  with_each_head([&] {
    for (std::size_t f = 0; f < kFiles.size(); ++f) {
      for (std::size_t r = 0; r < kFiles[f].size(); ++r) {
        ASSERT_TRUE(ReadsRecord(f, r)) << f << "/" << r;
        ASSERT_TRUE(At(f, r + 1));
      }
      // At a filemark every read meets it again, and nothing moves.
      for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(ReadMeets(Condition::kFilemark)) << f;
        ASSERT_TRUE(At(f, kFiles[f].size()));
      }
      ASSERT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
      ASSERT_TRUE(At(f + 1, 0));
    }
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(ReadMeets(Condition::kEndOfData));
      ASSERT_TRUE(At(4, 0));
    }
  });
}

TEST_P(TapeHeadTest, ForwardFiles) {
  ASSERT_NO_FATAL_FAILURE(write_layout());
  with_each_head([&] {
    EXPECT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(1, 0));
    EXPECT_TRUE(ReadsRecord(1, 0));
    EXPECT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(2, 0));
    ASSERT_TRUE(head_->rewind().ok());
    EXPECT_TRUE(Moved(head_->forward_files(2), Condition::kOk, 0));
    EXPECT_TRUE(At(2, 0));
    EXPECT_TRUE(ReadsRecord(2, 0));
    EXPECT_TRUE(At(2, 1));
    // Past end of data: over FM(2) and FM(3), three not done.
    EXPECT_TRUE(Moved(head_->forward_files(5), Condition::kEndOfData, 3));
    EXPECT_TRUE(At(4, host_knows(0)));
    EXPECT_TRUE(ReadMeets(Condition::kEndOfData));
    EXPECT_TRUE(At(4, host_knows(0)));
    EXPECT_TRUE(Moved(head_->forward_files(1), Condition::kEndOfData, 1));
    EXPECT_TRUE(At(4, host_knows(0)));
    // From BOP straight to end of data.
    ASSERT_TRUE(head_->rewind().ok());
    EXPECT_TRUE(Moved(head_->forward_files(10), Condition::kEndOfData, 6));
    EXPECT_TRUE(At(4, host_knows(0)));
  });
}

TEST_P(TapeHeadTest, BackFiles) {
  ASSERT_NO_FATAL_FAILURE(write_layout());
  with_each_head([&] {
    // From the middle of file 2: back over FM(1), onto its BOP side.
    ASSERT_TRUE(Moved(head_->forward_files(2), Condition::kOk, 0));
    ASSERT_TRUE(Moved(head_->forward_records(2), Condition::kOk, 0));
    ASSERT_TRUE(At(2, 2));
    EXPECT_TRUE(Moved(head_->back_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(1, host_knows(1)));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(At(1, host_knows(1)));
    EXPECT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(2, 0));
    EXPECT_TRUE(ReadsRecord(2, 0));
    EXPECT_TRUE(At(2, 1));

    // From the start of file 2: the filemark just behind counts.
    ASSERT_TRUE(head_->rewind().ok());
    ASSERT_TRUE(Moved(head_->forward_files(2), Condition::kOk, 0));
    EXPECT_TRUE(Moved(head_->back_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(1, host_knows(1)));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
    // From a filemark's BOP side: back over the one before.
    EXPECT_TRUE(Moved(head_->back_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(0, host_knows(2)));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(At(0, host_knows(2)));
    EXPECT_TRUE(Moved(head_->forward_files(2), Condition::kOk, 0));
    EXPECT_TRUE(At(2, 0));
    EXPECT_TRUE(Moved(head_->back_files(2), Condition::kOk, 0));
    EXPECT_TRUE(At(0, host_knows(2)));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));

    // Past BOP: over FM(1) and FM(0), three not done.
    ASSERT_TRUE(head_->rewind().ok());
    ASSERT_TRUE(Moved(head_->forward_files(2), Condition::kOk, 0));
    ASSERT_TRUE(ReadsRecord(2, 0));
    EXPECT_TRUE(Moved(head_->back_files(5), Condition::kBeginningOfMedium, 3));
    EXPECT_TRUE(At(0, 0));
    EXPECT_TRUE(ReadsRecord(0, 0));
    EXPECT_TRUE(At(0, 1));
    EXPECT_TRUE(Moved(head_->back_files(1), Condition::kBeginningOfMedium, 1));
    EXPECT_TRUE(At(0, 0));

    // From end of data: onto the BOP side of FM(3), then of FM(2).
    ASSERT_TRUE(Moved(head_->forward_files(9), Condition::kEndOfData, 5));
    EXPECT_TRUE(Moved(head_->back_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(3, host_knows(0)));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(Moved(head_->back_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(2, host_knows(3)));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(At(2, host_knows(3)));
  });
}

TEST_P(TapeHeadTest, ForwardRecordsStopBeforeAFilemark) {
  ASSERT_NO_FATAL_FAILURE(write_layout());
  with_each_head([&] {
    EXPECT_TRUE(Moved(head_->forward_records(1), Condition::kOk, 0));
    EXPECT_TRUE(At(0, 1));
    // One record left before FM(0): the filemark stops the motion, and the
    // head stays on its BOP side.
    EXPECT_TRUE(Moved(head_->forward_records(5), Condition::kFilemark, 4));
    EXPECT_TRUE(At(0, 2));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(At(0, 2));
    EXPECT_TRUE(Moved(head_->forward_records(1), Condition::kFilemark, 1));
    EXPECT_TRUE(At(0, 2));
    EXPECT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(1, 0));
    EXPECT_TRUE(ReadsRecord(1, 0));
    EXPECT_TRUE(Moved(head_->forward_records(3), Condition::kFilemark, 3));
    EXPECT_TRUE(At(1, 1));
    EXPECT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(2, 0));
    // Exactly the records there are: no filemark met yet.
    EXPECT_TRUE(Moved(head_->forward_records(3), Condition::kOk, 0));
    EXPECT_TRUE(At(2, 3));
    EXPECT_TRUE(Moved(head_->forward_records(1), Condition::kFilemark, 1));
    EXPECT_TRUE(At(2, 3));
    EXPECT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(3, 0));
    // An empty file: its filemark at once.
    EXPECT_TRUE(Moved(head_->forward_records(1), Condition::kFilemark, 1));
    EXPECT_TRUE(At(3, 0));
    EXPECT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(4, 0));
    EXPECT_TRUE(Moved(head_->forward_records(2), Condition::kEndOfData, 2));
    EXPECT_TRUE(At(4, 0));
    EXPECT_TRUE(ReadMeets(Condition::kEndOfData));
  });
}

TEST_P(TapeHeadTest, BackRecordsStopAtTheStartOfAFile) {
  ASSERT_NO_FATAL_FAILURE(write_layout());
  with_each_head([&] {
    ASSERT_TRUE(Moved(head_->forward_files(2), Condition::kOk, 0));
    ASSERT_TRUE(Moved(head_->forward_records(3), Condition::kOk, 0));
    ASSERT_TRUE(At(2, 3));
    EXPECT_TRUE(Moved(head_->back_records(1), Condition::kOk, 0));
    EXPECT_TRUE(At(2, 2));
    EXPECT_TRUE(ReadsRecord(2, 2));
    EXPECT_TRUE(At(2, 3));
    // Three records back, then FM(1) stops it: the head is on its EOT side,
    // at the start of file 2.
    EXPECT_TRUE(Moved(head_->back_records(5), Condition::kFilemark, 2));
    EXPECT_TRUE(At(2, 0));
    EXPECT_TRUE(ReadsRecord(2, 0));
    EXPECT_TRUE(At(2, 1));
    EXPECT_TRUE(Moved(head_->back_records(1), Condition::kOk, 0));
    EXPECT_TRUE(At(2, 0));
    EXPECT_TRUE(Moved(head_->back_records(1), Condition::kFilemark, 1));
    EXPECT_TRUE(At(2, 0));
    EXPECT_TRUE(ReadsRecord(2, 0));

    // After a read met FM(0): back over the record before it.
    ASSERT_TRUE(head_->rewind().ok());
    ASSERT_TRUE(ReadsRecord(0, 0));
    ASSERT_TRUE(ReadsRecord(0, 1));
    ASSERT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(Moved(head_->back_records(1), Condition::kOk, 0));
    EXPECT_TRUE(At(0, 1));
    EXPECT_TRUE(ReadsRecord(0, 1));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(At(0, 2));
    // Past BOP.
    EXPECT_TRUE(Moved(head_->back_records(5), Condition::kBeginningOfMedium, 3));
    EXPECT_TRUE(At(0, 0));
    EXPECT_TRUE(Moved(head_->back_records(1), Condition::kBeginningOfMedium, 1));
    EXPECT_TRUE(At(0, 0));
    EXPECT_TRUE(ReadsRecord(0, 0));

    // In the empty file 3, after a read met its filemark: FM(2) is right
    // behind.
    ASSERT_TRUE(head_->rewind().ok());
    ASSERT_TRUE(Moved(head_->forward_files(3), Condition::kOk, 0));
    ASSERT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(Moved(head_->back_records(1), Condition::kFilemark, 1));
    EXPECT_TRUE(At(3, 0));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
    EXPECT_TRUE(At(4, 0));
    EXPECT_TRUE(ReadMeets(Condition::kEndOfData));
  });
}

TEST_P(TapeHeadTest, ReadsWithBuffersSmallerAndLargerThanTheRecord) {
  // Host positioning reads into a buffer of its own (1 MiB, or twice the
  // caller's).  `big` is longer than that, and `near` nearly as long: on a
  // drive that sends nothing of a longer record and only R - L bytes of a
  // shorter one (tgt), the head must go back and read them whole.
  const Bytes a = scsi::testing::pattern(1000, 1);
  const Bytes big = scsi::testing::pattern((1u << 20) + 1000, 2);
  const Bytes near = scsi::testing::pattern((1u << 20) - 10, 3);
  const Bytes c = scsi::testing::pattern(100, 4);
  const Bytes d = scsi::testing::pattern(50, 5);
  for (const Bytes* rec : {&a, &big, &near, &c, &d}) ASSERT_TRUE(head_->write(*rec).ok());
  ASSERT_TRUE(head_->write_filemarks(1).ok());
  ASSERT_TRUE(At(1, 0));

  with_each_head([&] {
    // Smaller than the record: its first bytes, and its real length.
    for (const Bytes* rec : {&a, &big, &near}) {
      Bytes small(64);
      const TapeDrive::Read r = head_->read(small);
      EXPECT_EQ(r.status.condition, Condition::kIncorrectLength) << r.status.describe();
      EXPECT_EQ(r.bytes, small.size());
      EXPECT_EQ(r.record_length, rec->size());
      EXPECT_TRUE(std::equal(small.begin(), small.end(), rec->begin())) << rec->size();
    }
    EXPECT_TRUE(At(0, 3));

    // Larger than the record: all of it, and no error (whether or not the
    // drive honours SILI).
    Bytes large(1000, 0xEE);
    TapeDrive::Read r = head_->read(large);
    EXPECT_TRUE(r.status.ok()) << r.status.describe();
    EXPECT_EQ(r.bytes, c.size());
    EXPECT_EQ(r.record_length, c.size());
    EXPECT_TRUE(std::equal(c.begin(), c.end(), large.begin()));
    EXPECT_EQ(large[c.size()], 0xEE);
    EXPECT_TRUE(At(0, 4));

    // Exactly the record's length.
    Bytes exact(d.size());
    r = head_->read(exact);
    EXPECT_TRUE(r.status.ok()) << r.status.describe();
    EXPECT_EQ(r.bytes, d.size());
    EXPECT_EQ(r.record_length, d.size());
    EXPECT_EQ(exact, d);
    EXPECT_TRUE(At(0, 5));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));

    // Back to the long records, read whole with buffers a little larger.
    EXPECT_TRUE(Moved(head_->back_records(4), Condition::kOk, 0));
    EXPECT_TRUE(At(0, 1));
    EXPECT_TRUE(ReadsRecord(big));
    EXPECT_TRUE(ReadsRecord(near));
    EXPECT_TRUE(At(0, 3));
    EXPECT_TRUE(ReadsRecord(c));
  });
}

TEST_P(TapeHeadTest, WriteAfterAReadMetAFilemarkReplacesIt) {
  ASSERT_NO_FATAL_FAILURE(write_layout());
  // The drive's head may be past FM(0); the write goes before it.
  ASSERT_TRUE(ReadsRecord(0, 0));
  ASSERT_TRUE(ReadsRecord(0, 1));
  ASSERT_TRUE(ReadMeets(Condition::kFilemark));
  const Bytes x = scsi::testing::pattern(700, 77);
  ASSERT_TRUE(head_->write(x).ok());
  EXPECT_TRUE(At(0, 3));
  ASSERT_TRUE(head_->rewind().ok());
  EXPECT_TRUE(ReadsRecord(0, 0));
  EXPECT_TRUE(ReadsRecord(0, 1));
  EXPECT_TRUE(ReadsRecord(x));
  EXPECT_TRUE(At(0, 3));
  // Everything after the record is gone.
  EXPECT_TRUE(ReadMeets(Condition::kEndOfData));
  EXPECT_TRUE(At(0, 3));
}

TEST_P(TapeHeadTest, FilemarksAfterAReadMetAFilemarkReplaceIt) {
  ASSERT_NO_FATAL_FAILURE(write_layout());
  ASSERT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
  ASSERT_TRUE(ReadsRecord(1, 0));
  ASSERT_TRUE(ReadMeets(Condition::kFilemark));
  ASSERT_TRUE(head_->write_filemarks(2).ok());
  EXPECT_TRUE(At(3, 0));
  // Now: rec rec FM | rec FM | FM | end of data.
  for (const std::uint32_t fresh : {0, 1}) {
    SCOPED_TRACE(fresh ? "a head new to the tape" : "the head that wrote");
    if (fresh) head_ = new_head();
    ASSERT_TRUE(head_->rewind().ok());
    EXPECT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
    EXPECT_TRUE(ReadsRecord(1, 0));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(At(1, 1));
    EXPECT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
    EXPECT_TRUE(At(2, 0));
    EXPECT_TRUE(Moved(head_->forward_files(3), Condition::kEndOfData, 2));
    EXPECT_TRUE(At(3, host_knows(0)));
    EXPECT_TRUE(ReadMeets(Condition::kEndOfData));
  }
}

TEST_P(TapeHeadTest, SettleTakesTheDriveBackBeforeTheFilemark) {
  ASSERT_NO_FATAL_FAILURE(write_layout());
  // A read meets FM(0) (record 0 of file 1 follows it), ...
  ASSERT_TRUE(ReadsRecord(0, 0));
  ASSERT_TRUE(ReadsRecord(0, 1));
  ASSERT_TRUE(ReadMeets(Condition::kFilemark));
  ASSERT_TRUE(head_->settle().ok());
  EXPECT_TRUE(At(0, 2));
  // ... so anything else reading the drive meets it too.
  TapeDrive other(device_, timeouts());
  Bytes buf(1000);
  EXPECT_EQ(other.read(buf).status.condition, Condition::kFilemark);
  head_->forget();

  // The same after a forward motion the filemark stopped: FM(1), then file 2.
  ASSERT_TRUE(head_->rewind().ok());
  ASSERT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
  ASSERT_TRUE(Moved(head_->forward_records(2), Condition::kFilemark, 1));
  ASSERT_TRUE(head_->settle().ok());
  EXPECT_TRUE(At(1, 1));
  EXPECT_EQ(other.read(buf).status.condition, Condition::kFilemark);
  head_->forget();

  // settle() is a no-op elsewhere: the head reads on from where it is.
  ASSERT_TRUE(head_->rewind().ok());
  ASSERT_TRUE(ReadsRecord(0, 0));
  ASSERT_TRUE(head_->settle().ok());
  EXPECT_TRUE(At(0, 1));
  const TapeDrive::Read r = other.read(buf);
  ASSERT_TRUE(r.status.ok() || r.status.condition == Condition::kIncorrectLength);
  EXPECT_EQ(r.record_length, kFiles[0][1]);
}

TEST_P(TapeHeadTest, AForgottenPositionNeedsARewind) {
  ASSERT_NO_FATAL_FAILURE(write_layout());
  ASSERT_TRUE(Moved(head_->forward_files(2), Condition::kOk, 0));
  ASSERT_TRUE(ReadsRecord(2, 0));
  head_->forget();
  EXPECT_FALSE(head_->position().known());
  EXPECT_FALSE(head_->position().file);
  if (host()) {
    // The host cannot go back without knowing from where: refused.
    TapeHead::Motion m = head_->back_files(1);
    EXPECT_FALSE(m.status.ok());
    EXPECT_FALSE(m.stopped_early()) << m.status.describe();
    EXPECT_EQ(m.resid, 1u);
    m = head_->back_records(2);
    EXPECT_FALSE(m.status.ok());
    EXPECT_FALSE(m.stopped_early()) << m.status.describe();
    EXPECT_EQ(m.resid, 2u);
    EXPECT_FALSE(head_->position().known());
    // Forward still works: the head did not move.
    EXPECT_TRUE(ReadsRecord(2, 1));
    EXPECT_FALSE(head_->position().known());
  } else {
    // The drive spaces back over FM(1); where that is stays unknown.
    EXPECT_TRUE(Moved(head_->back_files(1), Condition::kOk, 0));
    EXPECT_FALSE(head_->position().file);
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
  }
  ASSERT_TRUE(head_->rewind().ok());
  EXPECT_TRUE(At(0, 0));
  ASSERT_TRUE(Moved(head_->forward_files(1), Condition::kOk, 0));
  EXPECT_TRUE(Moved(head_->back_files(1), Condition::kOk, 0));
  EXPECT_TRUE(At(0, host_knows(2)));
  EXPECT_TRUE(ReadMeets(Condition::kFilemark));
}

TEST_P(TapeHeadTest, UnitAttentionIsReturnedAndLosesThePosition) {
  ASSERT_TRUE(device_->can_reset());
  ASSERT_NO_FATAL_FAILURE(write_layout());
  ASSERT_TRUE(ReadsRecord(0, 0));

  // A reset: the next read reports it and is not done.
  ASSERT_TRUE(device_->reset().ok());
  Bytes buf(1000);
  TapeDrive::Read r = head_->read(buf);
  EXPECT_EQ(r.status.condition, Condition::kUnitAttention) << r.status.describe();
  EXPECT_EQ(r.bytes, 0u);
  EXPECT_FALSE(head_->position().file);
  EXPECT_FALSE(head_->position().record);
  ASSERT_TRUE(head_->rewind().ok());
  EXPECT_TRUE(At(0, 0));
  EXPECT_TRUE(ReadsRecord(0, 0));

  // rewind() takes the unit attention itself and tries once more.
  ASSERT_TRUE(device_->reset().ok());
  EXPECT_TRUE(head_->rewind().ok());
  EXPECT_TRUE(At(0, 0));

  // A write after a reset is not done.
  ASSERT_TRUE(device_->reset().ok());
  EXPECT_EQ(head_->write(Bytes(10, 0x55)).condition, Condition::kUnitAttention);
  EXPECT_FALSE(head_->position().known());
  ASSERT_TRUE(head_->rewind().ok());
  EXPECT_TRUE(ReadsRecord(0, 0));

  // Nor a motion, forward or back (even one the host does by rewinding).
  ASSERT_TRUE(device_->reset().ok());
  TapeHead::Motion m = head_->forward_files(1);
  EXPECT_EQ(m.status.condition, Condition::kUnitAttention) << m.status.describe();
  EXPECT_EQ(m.resid, 1u);
  EXPECT_FALSE(head_->position().known());
  ASSERT_TRUE(head_->rewind().ok());
  ASSERT_TRUE(Moved(head_->forward_files(2), Condition::kOk, 0));
  ASSERT_TRUE(ReadsRecord(2, 0));
  ASSERT_TRUE(device_->reset().ok());
  m = head_->back_files(5);
  EXPECT_EQ(m.status.condition, Condition::kUnitAttention) << m.status.describe();
  EXPECT_EQ(m.resid, 5u);
  EXPECT_FALSE(head_->position().known());
  ASSERT_TRUE(head_->rewind().ok());

  // After the mode parameters changed the head asks for the block length
  // again: that MODE SENSE must not swallow the unit attention.
  ASSERT_TRUE(ReadsRecord(0, 0));
  head_->mode_changed();
  ASSERT_TRUE(device_->reset().ok());
  r = head_->read(buf);
  EXPECT_EQ(r.status.condition, Condition::kUnitAttention) << r.status.describe();
  EXPECT_FALSE(head_->position().known());
  ASSERT_TRUE(head_->rewind().ok());
  EXPECT_TRUE(ReadsRecord(0, 0));

  // TEST UNIT READY takes it and tries once more; the position is lost.
  ASSERT_TRUE(device_->reset().ok());
  EXPECT_TRUE(head_->test_unit_ready().ok());
  EXPECT_FALSE(head_->position().known());
  ASSERT_TRUE(head_->rewind().ok());
  EXPECT_TRUE(At(0, 0));
}

// write_records() with batches allowed: where the head batches (the
// emulated drive, positioned by the drive) the records go out in fixed
// block mode; elsewhere one WRITE each.  Either way the tape holds the same
// records, the head counts them, and the drive is left in variable mode.
TEST_P(TapeHeadTest, WriteRecordsLeavesTheSameRecordsAndTheModeAsItWas) {
  constexpr std::size_t kSize = 1000;
  constexpr std::size_t kCount = 7;
  Bytes data;
  for (std::size_t i = 0; i < kCount; ++i) {
    const Bytes r = scsi::testing::pattern(kSize, static_cast<std::uint32_t>(7000 + i));
    data.insert(data.end(), r.begin(), r.end());
  }
  for (const bool batch : {true, false}) {
    SCOPED_TRACE(batch ? "batches allowed" : "one WRITE per record");
    head_ = new_head();
    head_->set_batch_writes(batch);
    ASSERT_TRUE(head_->rewind().ok());
    const TapeHead::Writes w = head_->write_records(data, kSize);
    ASSERT_TRUE(w.status.ok()) << w.status.describe();
    EXPECT_EQ(w.records, kCount);
    EXPECT_TRUE(At(0, kCount));
    ASSERT_TRUE(head_->write_filemarks(1).ok());
    EXPECT_EQ(head_->block_length(), std::optional<std::uint32_t>(0));
    TapeDrive fresh(device_, timeouts());
    EXPECT_EQ(fresh.mode().block_length, 0u) << "the drive's own mode";
    ASSERT_TRUE(head_->rewind().ok());
    for (std::size_t i = 0; i < kCount; ++i) {
      ASSERT_TRUE(ReadsRecord(Bytes(data.begin() + static_cast<std::ptrdiff_t>(i * kSize),
                                    data.begin() + static_cast<std::ptrdiff_t>((i + 1) * kSize))))
          << i;
    }
    EXPECT_TRUE(ReadMeets(Condition::kFilemark));
  }
  // Not whole records: refused, nothing written.
  head_ = new_head();
  ASSERT_TRUE(head_->rewind().ok());
  const TapeHead::Writes bad = head_->write_records(std::span(data).first(1500), kSize);
  EXPECT_EQ(bad.status.condition, Condition::kIllegalRequest);
  EXPECT_EQ(bad.records, 0u);
}

INSTANTIATE_TEST_SUITE_P(Drives, TapeHeadTest,
                         ::testing::Values(Rig::kEmulatedDrive, Rig::kEmulatedHost, Rig::kTgtHost),
                         rig_name);

// A cartridge of 1 MiB (early warning at 512 KiB) in drive 0 of a library
// of its own, seen through a FaultInjectingDevice.
class TapeHeadBatches : public ::testing::Test {
 protected:
  static constexpr std::size_t kSize = 10240;
  static constexpr std::size_t kCount = 64;  // 640 KiB per write_records()

  void SetUp() override {
    std::string error;
    lib_ = scsi::emu::VirtualLibrary::open(
        scsi::testing::library_spec(dir_.path() / "vtl", 1, 1u << 20, 512u << 10),
        scsi::testing::test_installation_id(), error);
    ASSERT_TRUE(lib_) << error;
    MediaChanger changer(
        std::make_shared<scsi::emu::EmulatedDevice>(lib_->changer(), lib_->changer_name()));
    ASSERT_TRUE(
        changer.move(scsi::emu::VirtualLibrary::kFirstSlot, scsi::emu::VirtualLibrary::kFirstDrive)
            .ok());
    faulty_ = std::make_shared<scsi::FaultInjectingDevice>(
        std::make_shared<scsi::emu::EmulatedDevice>(lib_->drives()[0], lib_->drive_name(0)));
    head_ = std::make_unique<TapeHead>(faulty_);
    head_->set_batch_writes(true);
    ASSERT_TRUE(head_->drive().wait_ready(std::chrono::seconds(10)).ok());
    ASSERT_TRUE(head_->rewind().ok());
  }

  static Bytes records(std::uint32_t seed) {
    Bytes data;
    for (std::size_t i = 0; i < kCount; ++i) {
      const Bytes r = scsi::testing::pattern(kSize, seed + static_cast<std::uint32_t>(i));
      data.insert(data.end(), r.begin(), r.end());
    }
    return data;
  }

  // From BOP: the records of `parts` in order, then end of data.
  void expect_tape_holds(const std::vector<Bytes>& parts) {
    ASSERT_TRUE(head_->rewind().ok());
    Bytes buf(kSize + 100);
    std::size_t n = 0;
    for (const Bytes& part : parts) {
      for (std::size_t at = 0; at < part.size(); at += kSize, ++n) {
        const TapeDrive::Read r = head_->read(buf);
        ASSERT_TRUE(r.status.ok()) << "record " << n << ": " << r.status.describe();
        ASSERT_EQ(r.bytes, kSize) << "record " << n;
        ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + kSize,
                               part.begin() + static_cast<std::ptrdiff_t>(at)))
            << "record " << n;
      }
    }
    EXPECT_EQ(head_->read(buf).status.condition, Condition::kEndOfData) << "after " << n;
  }

  static Bytes first(const Bytes& b, std::size_t records) {
    return Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(records * kSize));
  }

  scsi::testing::ScratchDir dir_{"tapehead-batches"};
  std::unique_ptr<scsi::emu::VirtualLibrary> lib_;
  std::shared_ptr<scsi::FaultInjectingDevice> faulty_;
  std::unique_ptr<TapeHead> head_;
};

// A batch that crosses early warning is written whole and counted, in a
// handful of commands; one that meets the end of the cartridge writes what
// fits, says how much, and the head counts exactly that.
TEST_F(TapeHeadBatches, EarlyWarningAndOverflowInABatchAreCounted) {
  const Bytes a = records(100);
  const std::uint64_t before = faulty_->commands_seen();
  const TapeHead::Writes wa = head_->write_records(a, kSize);
  EXPECT_EQ(wa.status.condition, Condition::kEarlyWarning) << wa.status.describe();
  EXPECT_EQ(wa.records, kCount);
  EXPECT_EQ(head_->position(), (HeadPosition{0, kCount}));
  EXPECT_LT(faulty_->commands_seen() - before, 8u) << "64 records in one batch";

  // 384 KiB of room left: 38 records of 10 KiB fit, 26 do not.
  const Bytes b = records(200);
  const TapeHead::Writes wb = head_->write_records(b, kSize);
  EXPECT_EQ(wb.status.condition, Condition::kOverflow) << wb.status.describe();
  EXPECT_EQ(wb.records, 38u);
  EXPECT_EQ(head_->position(), (HeadPosition{0, kCount + 38}));
  EXPECT_EQ(head_->block_length(), std::optional<std::uint32_t>(0));
  expect_tape_holds({a, first(b, 38)});
}

// A WRITE that fails in a batch: nothing of it is counted, the position is
// unknown (as after any failed WRITE), and the drive is back in variable
// block mode.
TEST_F(TapeHeadBatches, AFailedBatchCountsNothingAndRestoresTheMode) {
  const Bytes a = records(300);
  ASSERT_TRUE(head_->write_records(std::span(a).first(4 * kSize), kSize).status.ok());
  faulty_->sense_on_opcode(0x0A, 1,
                           {.key = scsi::SenseKey::kMediumError, .asc = 0x0C, .ascq = 0x00});
  const TapeHead::Writes w = head_->write_records(a, kSize);
  EXPECT_EQ(w.status.condition, Condition::kMediumError) << w.status.describe();
  EXPECT_EQ(w.records, 0u);
  EXPECT_FALSE(head_->position().known());
  TapeDrive fresh(faulty_);
  EXPECT_EQ(fresh.mode().block_length, 0u);
  expect_tape_holds({first(a, 4)});
}

// A drive that refuses the fixed block mode gets one WRITE per record, from
// then on.
TEST_F(TapeHeadBatches, ADriveThatRefusesTheModeGetsOneWritePerRecord) {
  faulty_->sense_on_opcode(0x15, 1,
                           {.key = scsi::SenseKey::kIllegalRequest, .asc = 0x26, .ascq = 0x00});
  const Bytes a = records(400);
  std::uint64_t before = faulty_->commands_seen();
  const TapeHead::Writes w = head_->write_records(std::span(a).first(16 * kSize), kSize);
  ASSERT_TRUE(w.status.ok()) << w.status.describe();
  EXPECT_EQ(w.records, 16u);
  EXPECT_GE(faulty_->commands_seen() - before, 16u);
  before = faulty_->commands_seen();
  ASSERT_TRUE(
      head_->write_records(std::span(a).subspan(16 * kSize, 16 * kSize), kSize).status.ok());
  EXPECT_EQ(faulty_->commands_seen() - before, 16u) << "no more MODE SELECTs";
  EXPECT_EQ(head_->position(), (HeadPosition{0, 32}));
  expect_tape_holds({first(a, 32)});
}

}  // namespace
}  // namespace tape
