// The real transports against a real SCSI target: IscsiDevice talks to tgt
// over iSCSI on 127.0.0.1; SgDevice talks SG_IO, served over iSCSI by the
// sgiscsi_preload shim in a child process of this test binary (LD_PRELOAD
// has to be in place when a process starts).  CDBs are built by hand here.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "scsi/device.h"
#include "scsi/tgt_fixture.h"
#include "scsi/transport_iscsi.h"
#include "scsi/transport_sg.h"

namespace scsi {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// ---- helpers ---------------------------------------------------------------

Result run(Device& d, Bytes cdb, Direction dir = Direction::kNone, std::span<std::uint8_t> in = {},
           std::span<const std::uint8_t> out = {}, milliseconds timeout = milliseconds(30000)) {
  Command c;
  c.cdb = std::move(cdb);
  c.direction = dir;
  c.data_in = in;
  c.data_out = out;
  c.timeout = timeout;
  return d.execute(c);
}

std::string hex(std::span<const std::uint8_t> b) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (auto v : b) {
    if (!s.empty()) s += ' ';
    s += digits[v >> 4];
    s += digits[v & 15];
  }
  return s;
}

std::string show(const Result& r) {
  return "status " + std::to_string(static_cast<int>(r.status)) + " sense [" + hex(r.sense) +
         "] data_in " + std::to_string(r.data_in) + " residual " + std::to_string(r.residual) +
         " transport_error '" + r.transport_error + "'";
}

std::uint32_t be16(const std::uint8_t* p) { return (p[0] << 8) | p[1]; }
std::uint32_t be24(const std::uint8_t* p) { return (p[0] << 16) | (p[1] << 8) | p[2]; }
std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
}
std::uint64_t be64(const std::uint8_t* p) { return (std::uint64_t{be32(p)} << 32) | be32(p + 4); }
void put_be(std::uint8_t* p, std::uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i, v >>= 8) p[i] = static_cast<std::uint8_t>(v);
}

// Fixed-format sense (70h/71h): the fields the tape checks need.
struct FixedSense {
  std::uint8_t key = 0, asc = 0, ascq = 0;
  bool filemark = false, eom = false, ili = false, valid = false;
  std::int32_t information = 0;
};
bool parse_fixed(const Bytes& s, FixedSense& f) {
  if (s.size() < 14 || ((s[0] & 0x7F) != 0x70 && (s[0] & 0x7F) != 0x71)) return false;
  f.valid = (s[0] & 0x80) != 0;
  f.filemark = (s[2] & 0x80) != 0;
  f.eom = (s[2] & 0x40) != 0;
  f.ili = (s[2] & 0x20) != 0;
  f.key = s[2] & 0x0F;
  f.information = static_cast<std::int32_t>(be32(&s[3]));
  f.asc = s[12];
  f.ascq = s[13];
  return true;
}

bool is_unit_attention(const Result& r) {
  FixedSense f;
  return r.check_condition() && parse_fixed(r.sense, f) && f.key == 0x6;
}

// A new I_T nexus starts with a unit attention (power on / reset): take it,
// as the tape layer will.  Returns how many there were.
int clear_unit_attentions(Device& d) {
  int n = 0;
  for (int i = 0; i < 8; ++i) {
    const Result r = run(d, {0x00, 0, 0, 0, 0, 0});
    if (!is_unit_attention(r)) break;
    ++n;
  }
  return n;
}

std::string trimmed(const std::uint8_t* p, std::size_t n) {
  std::string s(reinterpret_cast<const char*>(p), n);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(seed + i * 7 + (i >> 8));
  return v;
}

// ---- checks that run through any transport ---------------------------------

// Standard INQUIRY and VPD 80h/83h; `pdt` is the expected peripheral type.
void check_identity(Device& d, std::uint8_t pdt) {
  SCOPED_TRACE(d.describe());
  std::uint8_t inq[255] = {};
  Result r = run(d, {0x12, 0, 0, 0, 0xFF, 0}, Direction::kIn, inq);
  ASSERT_TRUE(r.ok()) << show(r);
  EXPECT_EQ(inq[0] & 0x1F, pdt);
  EXPECT_EQ(inq[0] >> 5, 0) << "peripheral qualifier";
  // The residual is what the device did not send: additional length + 5.
  ASSERT_GE(r.data_in, 36u);
  EXPECT_EQ(r.data_in, inq[4] + 5u) << show(r);
  EXPECT_EQ(r.residual, sizeof inq - r.data_in);
  EXPECT_FALSE(trimmed(inq + 8, 8).empty()) << "vendor";
  EXPECT_FALSE(trimmed(inq + 16, 16).empty()) << "product";

  std::uint8_t serial[255] = {};
  r = run(d, {0x12, 0x01, 0x80, 0, 0xFF, 0}, Direction::kIn, serial);
  ASSERT_TRUE(r.ok()) << show(r);
  EXPECT_EQ(serial[1], 0x80);
  ASSERT_GE(r.data_in, 4u);
  EXPECT_EQ(r.data_in, be16(serial + 2) + 4u);
  EXPECT_GT(be16(serial + 2), 0u) << "empty unit serial number";

  std::uint8_t ids[255] = {};
  r = run(d, {0x12, 0x01, 0x83, 0, 0xFF, 0}, Direction::kIn, ids);
  ASSERT_TRUE(r.ok()) << show(r);
  EXPECT_EQ(ids[1], 0x83);
  const std::size_t end = std::min<std::size_t>(r.data_in, be16(ids + 2) + 4u);
  int lu_designators = 0;
  for (std::size_t p = 4; p + 4 <= end; p += 4 + ids[p + 3]) {
    ASSERT_LE(p + 4 + ids[p + 3], end) << "designator runs past the page";
    const int association = (ids[p + 1] >> 4) & 3;
    const int type = ids[p + 1] & 0x0F;
    if (association == 0 && ids[p + 3] > 0 && (type == 1 || type == 2 || type == 3 || type == 8)) {
      ++lu_designators;
    }
  }
  EXPECT_GE(lu_designators, 1) << "no logical unit designator in [" << hex({ids, end}) << "]";
}

// TEST UNIT READY, READ CAPACITY(16), then WRITE(16) and READ(16) of 8
// blocks at `lba`.
void check_disk(Device& d, std::uint64_t lba) {
  SCOPED_TRACE(d.describe());
  clear_unit_attentions(d);
  Result r = run(d, {0x00, 0, 0, 0, 0, 0});
  ASSERT_TRUE(r.ok()) << show(r);

  std::uint8_t cap[32] = {};
  r = run(d, {0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, sizeof cap, 0, 0}, Direction::kIn, cap);
  ASSERT_TRUE(r.ok()) << show(r);
  ASSERT_EQ(r.data_in, sizeof cap);
  const std::uint64_t last_lba = be64(cap);
  const std::uint32_t block = be32(cap + 8);
  EXPECT_EQ(block, 512u);
  EXPECT_EQ((last_lba + 1) * block, 64u << 20);

  const std::uint32_t blocks = 8;
  const auto data = pattern(blocks * block, static_cast<std::uint8_t>(lba));
  Bytes write16 = {0x8A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  put_be(&write16[2], lba, 8);
  put_be(&write16[10], blocks, 4);
  r = run(d, write16, Direction::kOut, {}, data);
  ASSERT_TRUE(r.ok()) << show(r);
  EXPECT_EQ(r.residual, 0u);

  std::vector<std::uint8_t> back(data.size(), 0xEE);
  Bytes read16 = write16;
  read16[0] = 0x88;
  r = run(d, read16, Direction::kIn, back);
  ASSERT_TRUE(r.ok()) << show(r);
  EXPECT_EQ(r.data_in, data.size());
  EXPECT_EQ(r.residual, 0u);
  EXPECT_TRUE(back == data) << "read back differs from what was written";
}

Bytes write6(std::uint32_t n) {
  return {0x0A,
          0x00,
          static_cast<std::uint8_t>(n >> 16),
          static_cast<std::uint8_t>(n >> 8),
          static_cast<std::uint8_t>(n),
          0};
}
Bytes read6(std::uint32_t n) {
  return {0x08,
          0x00,
          static_cast<std::uint8_t>(n >> 16),
          static_cast<std::uint8_t>(n >> 8),
          static_cast<std::uint8_t>(n),
          0};
}

// Variable-block SSC: records of 1000 and 512 bytes and a filemark, read
// back with lengths that do not match.  The data a READ returns with
// CHECK CONDITION (ILI) must reach the caller.
void check_tape_ili(Device& d) {
  SCOPED_TRACE(d.describe());
  clear_unit_attentions(d);
  const Bytes rewind = {0x01, 0, 0, 0, 0, 0};
  Result r = run(d, rewind);
  ASSERT_TRUE(r.ok()) << show(r);
  // MODE SELECT is not needed: tgt's drive starts in variable-block mode.
  const auto first = pattern(1000, 0x31);
  const auto second = pattern(512, 0x72);
  r = run(d, write6(1000), Direction::kOut, {}, first);
  ASSERT_TRUE(r.ok()) << show(r);
  r = run(d, write6(512), Direction::kOut, {}, second);
  ASSERT_TRUE(r.ok()) << show(r);
  r = run(d, {0x10, 0, 0, 0, 1, 0});  // WRITE FILEMARKS(6), 1
  ASSERT_TRUE(r.ok()) << show(r);
  r = run(d, rewind);
  ASSERT_TRUE(r.ok()) << show(r);

  // 4096 asked, the record has 1000: ILI, INFORMATION = +3096.  (tgt 1.0.85
  // sends 3096 bytes, the record and zeros, and a residual of 1000: only
  // the sense tells where the record ends.)
  std::vector<std::uint8_t> buf(4096, 0xEE);
  r = run(d, read6(4096), Direction::kIn, buf);
  ASSERT_TRUE(r.check_condition()) << show(r);
  FixedSense f;
  ASSERT_TRUE(parse_fixed(r.sense, f)) << show(r);
  EXPECT_EQ(f.key, 0x0);
  EXPECT_TRUE(f.ili);
  EXPECT_FALSE(f.filemark);
  EXPECT_TRUE(f.valid);
  EXPECT_EQ(f.information, 4096 - 1000);
  EXPECT_TRUE(std::equal(first.begin(), first.end(), buf.begin()))
      << "the record sent with CHECK CONDITION was lost";
  EXPECT_LE(r.data_in, buf.size());
  ::testing::Test::RecordProperty("ili_long_read_data_in", static_cast<int>(r.data_in));
  ::testing::Test::RecordProperty("ili_long_read_residual", static_cast<int>(r.residual));

  // 256 asked, the record has 512: ILI, INFORMATION = -256.  SSC wants the
  // first 256 bytes transferred; tgt 1.0.85 sends none (residual 256).
  // Whatever arrives must be the record's.
  std::fill(buf.begin(), buf.end(), 0xEE);
  r = run(d, read6(256), Direction::kIn, std::span<std::uint8_t>(buf.data(), 256));
  ASSERT_TRUE(r.check_condition()) << show(r);
  ASSERT_TRUE(parse_fixed(r.sense, f)) << show(r);
  EXPECT_TRUE(f.ili);
  EXPECT_EQ(f.information, 256 - 512);
  EXPECT_TRUE(r.data_in == 0 || r.data_in == 256) << show(r);
  EXPECT_TRUE(std::equal(second.begin(), second.begin() + r.data_in, buf.begin()))
      << "the truncated record sent with CHECK CONDITION was lost";
  ::testing::Test::RecordProperty("ili_short_read_data_in", static_cast<int>(r.data_in));

  // Then the filemark: FILEMARK, no data, INFORMATION = the whole request.
  r = run(d, read6(4096), Direction::kIn, buf);
  ASSERT_TRUE(r.check_condition()) << show(r);
  ASSERT_TRUE(parse_fixed(r.sense, f)) << show(r);
  EXPECT_TRUE(f.filemark);
  EXPECT_EQ(f.asc, 0x00);
  EXPECT_EQ(f.ascq, 0x01);
  EXPECT_EQ(f.information, 4096);
  ::testing::Test::RecordProperty("filemark_read_data_in", static_cast<int>(r.data_in));

  // An exact read is GOOD and counts its bytes.
  r = run(d, rewind);
  ASSERT_TRUE(r.ok()) << show(r);
  std::fill(buf.begin(), buf.end(), 0xEE);
  r = run(d, read6(1000), Direction::kIn, std::span<std::uint8_t>(buf.data(), 1000));
  ASSERT_TRUE(r.ok()) << show(r);
  EXPECT_EQ(r.data_in, 1000u);
  EXPECT_EQ(r.residual, 0u);
  EXPECT_TRUE(std::equal(first.begin(), first.end(), buf.begin()));
}

struct Element {
  std::uint8_t type = 0;
  std::uint16_t address = 0;
  bool full = false;
  std::string barcode;
};

// READ ELEMENT STATUS data: header, element status pages, descriptors.
// Every field is length-checked; a descriptor cut short (tgt 1.0.85 sends
// 8 bytes less than it announces) counts if its address and flags, and its
// volume tag when there is one, arrived.
std::vector<Element> parse_element_status(std::span<const std::uint8_t> d) {
  std::vector<Element> out;
  if (d.size() < 8) return out;
  const std::size_t end = std::min<std::size_t>(d.size(), 8 + be24(&d[5]));
  std::size_t page = 8;
  while (page + 8 <= end) {
    const std::uint8_t type = d[page];
    const bool pvoltag = (d[page + 1] & 0x80) != 0;
    const std::size_t desc_len = be16(&d[page + 2]);
    const std::size_t page_end = std::min<std::size_t>(end, page + 8 + be24(&d[page + 5]));
    const std::size_t needed = pvoltag ? 12 + 32 : 12;
    if (desc_len < needed) break;
    for (std::size_t p = page + 8; p + needed <= page_end; p += desc_len) {
      Element e;
      e.type = type;
      e.address = static_cast<std::uint16_t>(be16(&d[p]));
      e.full = (d[p + 2] & 0x01) != 0;
      if (pvoltag) e.barcode = trimmed(&d[p + 12], 32);
      out.push_back(e);
    }
    page += 8 + be24(&d[page + 5]);
  }
  return out;
}

// READ ELEMENT STATUS, one element type at a time, with volume tags.  (Asked
// for all types at once, tgt 1.0.85 lays the pages out wrong and corrupts
// its heap: tgtd dies a session or two later.)
void check_changer(Device& d) {
  SCOPED_TRACE(d.describe());
  clear_unit_attentions(d);
  std::vector<Element> elements;
  for (std::uint8_t type = 1; type <= 4; ++type) {
    std::vector<std::uint8_t> buf(4096, 0);
    const Result r = run(d,
                         {0xB8, static_cast<std::uint8_t>(0x10 | type), 0x00, 0x00, 0xFF, 0xFF,
                          0x00, 0x00, 0x10, 0x00, 0x00, 0x00},
                         Direction::kIn, buf);
    ASSERT_TRUE(r.ok()) << "element type " << int{type} << ": " << show(r);
    ASSERT_GT(r.data_in, 8u);
    for (const auto& e : parse_element_status({buf.data(), r.data_in})) {
      EXPECT_EQ(e.type, type);
      elements.push_back(e);
    }
  }
  auto find = [&](std::uint8_t type, std::uint16_t address) -> const Element* {
    for (const auto& e : elements) {
      if (e.type == type && e.address == address) return &e;
    }
    return nullptr;
  };
  const Element* picker = find(1, 16);
  ASSERT_NE(picker, nullptr) << "no medium transport element 16";
  EXPECT_FALSE(picker->full);
  for (int i = 0; i < 6; ++i) {
    const Element* slot = find(2, static_cast<std::uint16_t>(1024 + i));
    ASSERT_NE(slot, nullptr) << "no storage element " << 1024 + i;
    EXPECT_TRUE(slot->full);
    char barcode[16];
    std::snprintf(barcode, sizeof barcode, "LAB%03dL6", i + 1);
    EXPECT_EQ(slot->barcode, barcode);
  }
  const Element* mailslot = find(3, 768);
  ASSERT_NE(mailslot, nullptr) << "no import/export element 768";
  EXPECT_TRUE(mailslot->full);
  EXPECT_EQ(mailslot->barcode, "CLN001CU");
  for (std::uint16_t a : {1, 2}) {
    const Element* drive = find(4, a);
    ASSERT_NE(drive, nullptr) << "no data transfer element " << a;
    EXPECT_FALSE(drive->full);
  }
  EXPECT_EQ(elements.size(), 1u + 6u + 1u + 2u);
}

// A TCP port on 127.0.0.1 where nothing listens (bound, then released).
int unused_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

long long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

// ---- IscsiDevice -----------------------------------------------------------

class IscsiTransport : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    tgt_ = testing::Tgt::shared(error);
    ASSERT_NE(tgt_, nullptr) << error;
  }
  std::unique_ptr<Device> open(const std::string& url, const IscsiOptions& o = {}) {
    std::string error;
    auto d = open_iscsi(url, o, error);
    EXPECT_NE(d, nullptr) << error;
    return d;
  }
  testing::Tgt* tgt_ = nullptr;
};

TEST_F(IscsiTransport, IdentityOfDiskTapeAndChanger) {
  for (const auto& [url, pdt] : {std::pair{tgt_->disk0_url, 0x00},
                                 {tgt_->tape_url, 0x01},
                                 {tgt_->vtl_drive1_url, 0x01},
                                 {tgt_->vtl_changer_url, 0x08}}) {
    auto d = open(url);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->describe(), url);
    check_identity(*d, static_cast<std::uint8_t>(pdt));
  }
}

TEST_F(IscsiTransport, UnitAttentionsReachTheCaller) {
  // open_iscsi's INQUIRY must not have eaten the new nexus's unit attention.
  auto d = open(tgt_->disk1_url);
  ASSERT_NE(d, nullptr);
  const Result r = run(*d, {0x00, 0, 0, 0, 0, 0});
  ASSERT_TRUE(is_unit_attention(r)) << show(r);
  FixedSense f;
  parse_fixed(r.sense, f);
  EXPECT_EQ(f.asc, 0x29) << "power on, reset or bus device reset";
  EXPECT_TRUE(run(*d, {0x00, 0, 0, 0, 0, 0}).ok());
}

TEST_F(IscsiTransport, LogicalUnitResetIsATaskManagementFunction) {
  auto d = open(tgt_->disk1_url);
  ASSERT_NE(d, nullptr);
  clear_unit_attentions(*d);
  ASSERT_TRUE(d->can_reset());
  const Result r = d->reset();
  EXPECT_TRUE(r.transport_error.empty()) << r.transport_error;
  // The session survives it and the unit still answers, after whatever
  // unit attention the reset raised.
  clear_unit_attentions(*d);
  EXPECT_TRUE(run(*d, {0x00, 0, 0, 0, 0, 0}).ok());
}

TEST_F(IscsiTransport, DiskCapacityAndWriteReadRoundTrip) {
  auto d = open(tgt_->disk0_url);
  ASSERT_NE(d, nullptr);
  check_disk(*d, 1000);
}

TEST_F(IscsiTransport, TapeReadKeepsDataOfCheckCondition) {
  auto d = open(tgt_->tape_url);
  ASSERT_NE(d, nullptr);
  check_tape_ili(*d);
}

TEST_F(IscsiTransport, ChangerElementStatus) {
  auto d = open(tgt_->vtl_changer_url);
  ASSERT_NE(d, nullptr);
  check_changer(*d);
}

TEST_F(IscsiTransport, EmptyDriveIsNotReady) {
  auto d = open(tgt_->vtl_drive2_url);
  ASSERT_NE(d, nullptr);
  clear_unit_attentions(*d);
  const Result r = run(*d, {0x00, 0, 0, 0, 0, 0});
  ASSERT_TRUE(r.check_condition()) << show(r);
  FixedSense f;
  ASSERT_TRUE(parse_fixed(r.sense, f));
  EXPECT_EQ(f.key, 0x2);
  EXPECT_EQ(f.asc, 0x3A) << "medium not present";
}

TEST_F(IscsiTransport, InvalidCommandIsNotSent) {
  auto d = open(tgt_->disk0_url);
  ASSERT_NE(d, nullptr);
  std::uint8_t buf[8];
  Result r = run(*d, {});
  EXPECT_NE(r.transport_error.find("not sent"), std::string::npos) << show(r);
  r = run(*d, Bytes(17, 0));
  EXPECT_NE(r.transport_error.find("not sent"), std::string::npos) << show(r);
  r = run(*d, {0x00, 0, 0, 0, 0, 0}, Direction::kNone, buf);
  EXPECT_NE(r.transport_error.find("not sent"), std::string::npos) << show(r);
  // And the device is still fine.
  clear_unit_attentions(*d);
  EXPECT_TRUE(run(*d, {0x00, 0, 0, 0, 0, 0}).ok());
}

TEST_F(IscsiTransport, CheckConditionWithoutDataKeepsSense) {
  auto d = open(tgt_->disk0_url);
  ASSERT_NE(d, nullptr);
  clear_unit_attentions(*d);
  std::uint8_t buf[512];
  // Opcode 0xFF does not exist: ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE.
  const Result r = run(*d, {0xFF, 0, 0, 0, 0, 0}, Direction::kIn, buf);
  ASSERT_TRUE(r.check_condition()) << show(r);
  FixedSense f;
  ASSERT_TRUE(parse_fixed(r.sense, f)) << show(r);
  EXPECT_EQ(f.key, 0x5);
  EXPECT_EQ(f.asc, 0x20);
}

TEST_F(IscsiTransport, OpenFailsClearlyAndQuickly) {
  std::string error;
  EXPECT_EQ(open_iscsi("http://127.0.0.1/x/1", error), nullptr);
  EXPECT_NE(error.find("bad iSCSI URL"), std::string::npos) << error;

  const std::string nobody =
      "iscsi://127.0.0.1:" + std::to_string(unused_port()) + "/iqn.2026-11.org.ndmpd.test:x/1";
  auto t0 = Clock::now();
  EXPECT_EQ(open_iscsi(nobody, error), nullptr);
  EXPECT_LT(ms_since(t0), 2000);
  EXPECT_NE(error.find("connect to 127.0.0.1:"), std::string::npos) << error;

  const std::string base = "iscsi://127.0.0.1:" + std::to_string(tgt_->port()) + "/";
  t0 = Clock::now();
  EXPECT_EQ(open_iscsi(base + "iqn.2026-11.org.ndmpd.test:nosuch/1", error), nullptr);
  EXPECT_LT(ms_since(t0), 5000);
  EXPECT_NE(error.find("login to iqn.2026-11.org.ndmpd.test:nosuch"), std::string::npos) << error;

  EXPECT_EQ(open_iscsi(base + "iqn.2026-11.org.ndmpd.test:disk/9", error), nullptr);
  EXPECT_NE(error.find("no logical unit 9"), std::string::npos) << error;
}

TEST_F(IscsiTransport, CommandTimeoutDropsTheSessionThenRecovers) {
  auto d = open(tgt_->disk1_url);
  ASSERT_NE(d, nullptr);
  clear_unit_attentions(*d);
  // All 64 MiB in one READ(16) cannot arrive within a millisecond.
  std::vector<std::uint8_t> big(64u << 20);
  Bytes read16 = {0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  put_be(&read16[10], big.size() / 512, 4);
  const auto t0 = Clock::now();
  Result r = run(*d, read16, Direction::kIn, big, {}, milliseconds(1));
  EXPECT_LT(ms_since(t0), 1000);
  ASSERT_FALSE(r.transport_error.empty()) << show(r);
  EXPECT_NE(r.transport_error.find("no response within 1 ms"), std::string::npos)
      << r.transport_error;
  // The next command logs in again; the new nexus has its unit attention.
  clear_unit_attentions(*d);
  r = run(*d, {0x00, 0, 0, 0, 0, 0});
  EXPECT_TRUE(r.ok()) << show(r);
}

TEST_F(IscsiTransport, ConcurrentCommandsAreSerialized) {
  auto d = open(tgt_->disk0_url);
  ASSERT_NE(d, nullptr);
  clear_unit_attentions(*d);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::uint64_t lba = 4096 + 64 * t;
      const auto data = pattern(4096, static_cast<std::uint8_t>(t));
      Bytes write16 = {0x8A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      put_be(&write16[2], lba, 8);
      put_be(&write16[10], data.size() / 512, 4);
      Bytes read16 = write16;
      read16[0] = 0x88;
      for (int i = 0; i < 20; ++i) {
        std::vector<std::uint8_t> back(data.size());
        if (!run(*d, write16, Direction::kOut, {}, data).ok() ||
            !run(*d, read16, Direction::kIn, back).ok() || back != data) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// These use a private tgtd, which they freeze and kill.
class IscsiTargetFailure : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    tgt_ = testing::Tgt::start(error);
    ASSERT_NE(tgt_, nullptr) << error;
  }
  std::unique_ptr<testing::Tgt> tgt_;
};

TEST_F(IscsiTargetFailure, FrozenTargetTimesOutAndLoginIsBounded) {
  IscsiOptions o;
  o.login_timeout = milliseconds(500);
  o.reconnect_attempts = 2;
  o.reconnect_backoff = milliseconds(100);
  std::string error;
  auto d = open_iscsi(tgt_->disk0_url, o, error);
  ASSERT_NE(d, nullptr) << error;
  clear_unit_attentions(*d);
  ASSERT_TRUE(run(*d, {0x00, 0, 0, 0, 0, 0}).ok());

  ASSERT_EQ(kill(tgt_->pid(), SIGSTOP), 0);
  auto t0 = Clock::now();
  Result r = run(*d, {0x00, 0, 0, 0, 0, 0}, Direction::kNone, {}, {}, milliseconds(700));
  auto took = ms_since(t0);
  EXPECT_GE(took, 700);
  EXPECT_LT(took, 2000);
  EXPECT_NE(r.transport_error.find("no response within 700 ms"), std::string::npos) << show(r);

  // The session is gone; logging in to a frozen target is bounded too:
  // 2 attempts of 500 ms and a pause of 100 ms.
  t0 = Clock::now();
  r = run(*d, {0x00, 0, 0, 0, 0, 0});
  took = ms_since(t0);
  EXPECT_GE(took, 1000);
  EXPECT_LT(took, 2500);
  EXPECT_NE(r.transport_error.find("2 login attempts failed"), std::string::npos) << show(r);

  ASSERT_EQ(kill(tgt_->pid(), SIGCONT), 0);
  clear_unit_attentions(*d);
  r = run(*d, {0x00, 0, 0, 0, 0, 0});
  EXPECT_TRUE(r.ok()) << show(r);
}

TEST_F(IscsiTargetFailure, ConnectionLossMidCommandIsReported) {
  IscsiOptions o;
  o.reconnect_backoff = milliseconds(50);
  std::string error;
  auto d = open_iscsi(tgt_->disk0_url, o, error);
  ASSERT_NE(d, nullptr) << error;
  clear_unit_attentions(*d);
  // Frozen, the target holds the command; killed, it drops the connection.
  ASSERT_EQ(kill(tgt_->pid(), SIGSTOP), 0);
  Result r;
  const auto t0 = Clock::now();
  std::thread waiter([&] {
    r = run(*d, {0x00, 0, 0, 0, 0, 0}, Direction::kNone, {}, {}, milliseconds(20000));
  });
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_EQ(kill(tgt_->pid(), SIGKILL), 0);
  waiter.join();
  EXPECT_LT(ms_since(t0), 3000);
  EXPECT_NE(r.transport_error.find("connection lost"), std::string::npos) << show(r);

  // Nothing listens any more: the next command fails fast, bounded by the
  // reconnect attempts.
  const auto t1 = Clock::now();
  r = run(*d, {0x00, 0, 0, 0, 0, 0});
  EXPECT_LT(ms_since(t1), 3000);
  EXPECT_NE(r.transport_error.find("login attempts failed"), std::string::npos) << show(r);
}

TEST_F(IscsiTargetFailure, IdleConnectionLossIsNoticedBeforeSending) {
  IscsiOptions o;
  o.reconnect_backoff = milliseconds(50);
  std::string error;
  auto d = open_iscsi(tgt_->disk0_url, o, error);
  ASSERT_NE(d, nullptr) << error;
  clear_unit_attentions(*d);
  ASSERT_EQ(kill(tgt_->pid(), SIGKILL), 0);
  std::this_thread::sleep_for(milliseconds(200));
  const auto t0 = Clock::now();
  const Result r = run(*d, {0x00, 0, 0, 0, 0, 0});
  EXPECT_LT(ms_since(t0), 2000);
  EXPECT_NE(r.transport_error.find("session lost and 3 login attempts failed"), std::string::npos)
      << show(r);
}

TEST_F(IscsiTargetFailure, IdleSessionAnswersTargetPings) {
  // tgt pings every second and drops a connection after 2 unanswered pings.
  std::string error;
  ASSERT_TRUE(tgt_->tgtadm(
      {"--op", "update", "--mode", "target", "--tid", "1", "-n", "nop_interval", "-v", "1"}, error))
      << error;
  ASSERT_TRUE(tgt_->tgtadm(
      {"--op", "update", "--mode", "target", "--tid", "1", "-n", "nop_count", "-v", "2"}, error))
      << error;
  auto d = open_iscsi(tgt_->disk0_url, error);
  ASSERT_NE(d, nullptr) << error;
  clear_unit_attentions(*d);
  std::this_thread::sleep_for(milliseconds(4500));
  // Still the same session: no transport error, no new unit attention.
  const Result r = run(*d, {0x00, 0, 0, 0, 0, 0});
  EXPECT_TRUE(r.ok()) << show(r);
}

// ---- SgDevice --------------------------------------------------------------

TEST(SgTransport, OpenRejectsWhatIsNotPassThrough) {
  std::string error;
  EXPECT_EQ(open_sg("/nonexistent/sg0", error), nullptr);
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;

  char path[] = "/tmp/ndmpd-sg-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_EQ(open_sg(path, error), nullptr);
  EXPECT_NE(error.find("does not take SCSI pass-through"), std::string::npos) << error;
  unlink(path);
}

// Environment of the child that runs the DISABLED_SgShim tests.
constexpr const char* kSgDisk = "NDMPD_TEST_SG_DISK";
constexpr const char* kSgTape = "NDMPD_TEST_SG_TAPE";
constexpr const char* kSgChanger = "NDMPD_TEST_SG_CHANGER";
constexpr const char* kSgCharNode = "NDMPD_TEST_SG_CHAR_NODE";
constexpr const char* kBsgCharNode = "NDMPD_TEST_BSG_CHAR_NODE";
constexpr const char* kSgFrozen = "NDMPD_TEST_SG_FROZEN";
constexpr const char* kSgFrozenPid = "NDMPD_TEST_SG_FROZEN_PID";

int bsg_major() {
  std::ifstream in("/proc/devices");
  std::string line;
  while (std::getline(in, line)) {
    int major = 0;
    char name[64] = {};
    if (std::sscanf(line.c_str(), "%d %63s", &major, name) == 2 && std::string(name) == "bsg") {
      return major;
    }
  }
  return -1;
}

// The sg tests proper run in a child: this binary again, with LD_PRELOAD.
TEST(SgTransport, ThroughTheIscsiShim) {
  std::string error;
  testing::Tgt* tgt = testing::Tgt::shared(error);
  ASSERT_NE(tgt, nullptr) << error;
  auto frozen = testing::Tgt::start(error);
  ASSERT_NE(frozen, nullptr) << error;

  const std::string dir = tgt->dir() + "/sg";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  std::vector<std::pair<std::string, std::string>> map = {{dir + "/disk", tgt->disk1_url},
                                                          {dir + "/tape", tgt->tape_url},
                                                          {dir + "/changer", tgt->vtl_changer_url},
                                                          {dir + "/frozen", frozen->disk0_url}};
  for (const auto& [path, url] : map) std::ofstream(path).put('\n');
  std::vector<std::string> env = {
      std::string(kSgDisk) + "=" + dir + "/disk",
      std::string(kSgTape) + "=" + dir + "/tape",
      std::string(kSgChanger) + "=" + dir + "/changer",
      std::string(kSgFrozen) + "=" + dir + "/frozen",
      std::string(kSgFrozenPid) + "=" + std::to_string(frozen->pid()),
  };
  // Char nodes (root only) take libsgutils2 down its sg (SG_GET_VERSION_NUM,
  // v3) and bsg (v4) paths; regular files take the plain v3 path.
  std::string filter =
      "--gtest_filter=DISABLED_SgShim.Disk:DISABLED_SgShim.TapeReadKeepsDataOfCheckCondition:"
      "DISABLED_SgShim.Changer:DISABLED_SgShim.FrozenTargetTimesOut";
  if (mknod((dir + "/sgnode").c_str(), S_IFCHR | 0600, makedev(21, 250)) == 0) {
    map.emplace_back(dir + "/sgnode", tgt->disk1_url);
    env.push_back(std::string(kSgCharNode) + "=" + dir + "/sgnode");
    filter += ":DISABLED_SgShim.SgCharNode";
  }
  const int bsg = bsg_major();
  if (bsg > 0 && mknod((dir + "/bsgnode").c_str(), S_IFCHR | 0600, makedev(bsg, 250)) == 0) {
    map.emplace_back(dir + "/bsgnode", tgt->disk1_url);
    env.push_back(std::string(kBsgCharNode) + "=" + dir + "/bsgnode");
    filter += ":DISABLED_SgShim.BsgCharNodeUsesSgV4";
  }
  if (filter.find("CharNode") == std::string::npos) {
    std::printf("no sg/bsg char nodes (mknod needs root): those tests do not run\n");
  }
  std::string spec;
  for (const auto& [path, url] : map) spec += (spec.empty() ? "" : ";") + path + "=" + url;
  env.push_back("NDMPD_SGISCSI_MAP=" + spec);
  env.push_back("LD_PRELOAD=" + testing::sgiscsi_preload_path());
  env.push_back("NDMPD_SGISCSI_LOGIN_TIMEOUT_MS=2000");
  env.push_back("NDMPD_SGISCSI_TRACE=" + dir + "/trace");
  // Under AddressSanitizer the shim comes before its runtime.
  const char* asan = std::getenv("ASAN_OPTIONS");
  env.push_back(std::string("ASAN_OPTIONS=") + (asan ? std::string(asan) + ":" : "") +
                "verify_asan_link_order=0");

  char self[4096] = {};
  ASSERT_GT(readlink("/proc/self/exe", self, sizeof self - 1), 0);
  const auto child = testing::run_bounded({self, filter, "--gtest_also_run_disabled_tests"}, env,
                                          std::chrono::seconds(240), true);
  std::printf("---- child: %s %s ----\n%s---- end of child ----\n", self, filter.c_str(),
              child.output.c_str());
  EXPECT_FALSE(child.timed_out);
  EXPECT_EQ(child.exit_code, 0) << child.error;
  EXPECT_NE(child.output.find("[  PASSED  ]"), std::string::npos);
  EXPECT_EQ(child.output.find("[  SKIPPED ]"), std::string::npos);
}

// How many SG_IO calls on `variable`'s path the shim served with `interface`
// ("v3" or "v4"), from its trace.
int traced(const char* variable, const std::string& interface) {
  const char* trace = std::getenv("NDMPD_SGISCSI_TRACE");
  const char* path = std::getenv(variable);
  if (trace == nullptr || path == nullptr) return -1;
  std::ifstream in(trace);
  std::string line;
  int n = 0;
  const std::string prefix = std::string(path) + " " + interface + " ";
  while (std::getline(in, line)) n += line.rfind(prefix, 0) == 0;
  return n;
}

// Run only in the child that ThroughTheIscsiShim starts.
std::unique_ptr<Device> open_child_sg(const char* variable) {
  const char* path = std::getenv(variable);
  if (path == nullptr) return nullptr;
  std::string error;
  auto d = open_sg(path, error);
  EXPECT_NE(d, nullptr) << error;
  return d;
}

TEST(DISABLED_SgShim, Disk) {
  auto d = open_child_sg(kSgDisk);
  ASSERT_NE(d, nullptr) << "run by SgTransport.ThroughTheIscsiShim only";
  check_identity(*d, 0x00);
  check_disk(*d, 2000);
  // A regular file: libsgutils2 takes its plain sg v3 path.
  EXPECT_GE(traced(kSgDisk, "v3"), 6);
  EXPECT_EQ(traced(kSgDisk, "v4"), 0);
}

TEST(DISABLED_SgShim, TapeReadKeepsDataOfCheckCondition) {
  auto d = open_child_sg(kSgTape);
  ASSERT_NE(d, nullptr) << "run by SgTransport.ThroughTheIscsiShim only";
  check_identity(*d, 0x01);
  check_tape_ili(*d);
}

TEST(DISABLED_SgShim, Changer) {
  auto d = open_child_sg(kSgChanger);
  ASSERT_NE(d, nullptr) << "run by SgTransport.ThroughTheIscsiShim only";
  check_identity(*d, 0x08);
  check_changer(*d);
}

TEST(DISABLED_SgShim, SgCharNode) {
  auto d = open_child_sg(kSgCharNode);
  ASSERT_NE(d, nullptr) << "run by SgTransport.ThroughTheIscsiShim only";
  check_disk(*d, 3000);
  // An sg node: libsgutils2 asks SG_GET_VERSION_NUM (3.5.36) and uses v3.
  EXPECT_GE(traced(kSgCharNode, "v3"), 4);
  EXPECT_EQ(traced(kSgCharNode, "v4"), 0);
}

TEST(DISABLED_SgShim, BsgCharNodeUsesSgV4) {
  auto d = open_child_sg(kBsgCharNode);
  ASSERT_NE(d, nullptr) << "run by SgTransport.ThroughTheIscsiShim only";
  check_disk(*d, 4000);
  EXPECT_GE(traced(kBsgCharNode, "v4"), 4);
  EXPECT_EQ(traced(kBsgCharNode, "v3"), 0);
}

TEST(DISABLED_SgShim, FrozenTargetTimesOut) {
  auto d = open_child_sg(kSgFrozen);
  ASSERT_NE(d, nullptr) << "run by SgTransport.ThroughTheIscsiShim only";
  const pid_t pid = static_cast<pid_t>(std::atoi(std::getenv(kSgFrozenPid)));
  ASSERT_GT(pid, 0);
  clear_unit_attentions(*d);
  ASSERT_TRUE(run(*d, {0x00, 0, 0, 0, 0, 0}).ok());
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  const auto t0 = Clock::now();
  // SG_IO counts whole seconds: 1 s.
  Result r = run(*d, {0x00, 0, 0, 0, 0, 0}, Direction::kNone, {}, {}, milliseconds(300));
  const auto took = ms_since(t0);
  kill(pid, SIGCONT);
  EXPECT_GE(took, 1000);
  EXPECT_LT(took, 3000);
  EXPECT_NE(r.transport_error.find("DID_TIME_OUT"), std::string::npos) << show(r);
  clear_unit_attentions(*d);
  r = run(*d, {0x00, 0, 0, 0, 0, 0});
  EXPECT_TRUE(r.ok()) << show(r);
}

}  // namespace
}  // namespace scsi
