// Data-in parsers: real responses of tgt 1.0.85 (captured over iSCSI from
// its tape drive, disk and VTL changer; the "kTgt..." vectors), hand-built
// responses of the kind real drives, libraries and arrays send, every
// truncation of them, and length fields that contradict the data.

#include "scsi/parse.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace scsi::parse {
namespace {

// clang-format off
// 66 bytes
constexpr const char* kTgtTapeInquiry =
    "01 80 05 12 3d 00 00 02 49 45 54 20 20 20 20 20 56 49 52 54 55 41 4c 2d "
    "54 41 50 45 20 20 20 20 30 30 30 31 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 02 00 09 60 03 00 00 00";
// 10 bytes
constexpr const char* kTgtTapeVpd00 =
    "01 00 00 06 00 80 83 b0 b1 b2";
// 40 bytes
constexpr const char* kTgtTapeVpd80 =
    "01 80 00 24 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 62 65 61 66 32 31";
// 76 bytes
constexpr const char* kTgtTapeVpd83 =
    "01 83 00 48 02 01 00 24 49 45 54 20 20 20 20 20 30 30 30 32 30 30 30 31 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 03 00 08 "
    "30 00 00 02 00 00 00 01 01 03 00 10 60 00 00 00 00 00 00 00 0e 00 00 00 "
    "00 02 00 01";
// 64 bytes
constexpr const char* kTgtTapeVpdb0 =
    "01 b0 00 3c 00 80 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00";
// 6 bytes
constexpr const char* kTgtTapeRbl =
    "09 10 00 00 00 04";
// 162 bytes
constexpr const char* kTgtTapeMs6 =
    "a1 00 10 08 00 00 00 00 00 00 00 00 00 00 01 0a 00 08 00 00 00 00 08 00 "
    "00 00 02 0e 80 80 00 0a 00 00 00 00 00 00 00 00 00 00 0a 0a 02 00 00 00 "
    "00 00 00 00 02 00 4a 01 00 1c 04 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 0f 0e 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 10 0e 00 00 00 80 80 00 00 00 00 00 00 00 00 00 1c 0a "
    "08 00 00 00 00 00 00 00 00 00 1d 1e 01 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00";
// 166 bytes
constexpr const char* kTgtTapeMs10 =
    "00 a4 00 10 00 00 00 08 00 00 00 00 00 00 00 00 00 00 01 0a 00 08 00 00 "
    "00 00 08 00 00 00 02 0e 80 80 00 0a 00 00 00 00 00 00 00 00 00 00 0a 0a "
    "02 00 00 00 00 00 00 00 02 00 4a 01 00 1c 04 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 0f 0e 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 10 0e 00 00 00 80 80 00 00 00 00 00 00 00 "
    "00 00 1c 0a 08 00 00 00 00 00 00 00 00 00 1d 1e 01 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00";
// 20 bytes
constexpr const char* kTgtTapeRpShort =
    "14 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00";
// 32 bytes
constexpr const char* kTgtTapeRpLong =
    "20 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00";
// 66 bytes
[[maybe_unused]] constexpr const char* kTgtDiskInquiry =
    "00 00 05 12 3d 00 00 02 49 45 54 20 20 20 20 20 56 49 52 54 55 41 4c 2d "
    "44 49 53 4b 20 20 20 20 30 30 30 31 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 04 c0 09 60 03 00 00 00";
// 64 bytes
constexpr const char* kTgtDiskVpdb0 =
    "00 b0 00 3c 00 80 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00";
// 32 bytes
constexpr const char* kTgtDiskRc16 =
    "00 00 00 00 00 07 ff ff 00 00 02 00 00 03 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00";
// 32 bytes
constexpr const char* kTgtDiskLuns =
    "00 00 00 18 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 "
    "00 02 00 00 00 00 00 00";
// 110 bytes
constexpr const char* kTgtDiskMs10 =
    "00 6c 00 10 00 00 00 08 00 00 00 00 00 00 02 00 00 00 02 0e 80 80 00 0a "
    "00 00 00 00 00 00 00 00 00 00 08 12 14 00 ff ff 00 00 ff ff ff ff 80 14 "
    "00 00 00 00 00 00 0a 0a 02 10 00 00 00 00 00 00 02 00 4a 01 00 1c 04 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 1c 0a 08 00 00 00 00 00 00 00 00 00";
// 66 bytes
constexpr const char* kTgtChangerInquiry =
    "08 80 05 12 3d 00 00 02 49 45 54 20 20 20 20 20 56 49 52 54 55 41 4c 2d "
    "43 48 41 4e 47 45 52 20 30 30 30 31 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 04 80 09 60 03 00 00 00";
// 76 bytes
[[maybe_unused]] constexpr const char* kTgtChangerVpd83 =
    "08 83 00 48 02 01 00 24 49 45 54 20 20 20 20 20 30 30 30 33 30 30 30 33 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 03 00 08 "
    "30 00 00 03 00 00 00 03 01 03 00 10 60 00 00 00 00 00 00 00 0e 00 00 00 "
    "00 03 00 03";
// 24 bytes
constexpr const char* kTgtChangerMs61d =
    "17 00 00 00 1d 12 00 10 00 01 04 00 00 06 03 00 00 01 00 01 00 02 00 00";
// 24 bytes
constexpr const char* kTgtChangerMs61f =
    "17 00 00 00 1f 12 0f 07 0f 0f 0f 0f 00 00 00 00 0f 0f 0f 0f 00 00 00 00";
// 28 bytes
constexpr const char* kTgtChangerMs101d =
    "00 1a 00 00 00 00 00 00 1d 12 00 10 00 01 04 00 00 06 03 00 00 01 00 01 "
    "00 02 00 00";
// 60 bytes
constexpr const char* kTgtResMt =
    "03 00 00 01 00 00 00 3c 01 80 00 34 00 00 00 34 00 10 00 00 00 00 00 00 "
    "00 00 00 00 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20";
// 320 bytes
constexpr const char* kTgtResSt =
    "04 00 00 06 00 00 01 40 02 80 00 34 00 00 01 38 04 00 01 00 00 00 00 00 "
    "00 80 00 01 4c 41 42 30 30 31 4c 36 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20 00 00 00 00 00 00 00 00 04 01 01 00 "
    "00 00 00 00 00 00 00 00 4c 41 42 30 30 32 4c 36 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 00 00 00 00 00 00 00 00 "
    "04 02 01 00 00 00 00 00 00 00 00 00 4c 41 42 30 30 33 4c 36 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 00 00 00 00 "
    "00 00 00 00 04 03 01 00 00 00 00 00 00 00 00 00 4c 41 42 30 30 34 4c 36 "
    "20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "00 00 00 00 00 00 00 00 04 04 01 00 00 00 00 00 00 00 00 00 4c 41 42 30 "
    "30 35 4c 36 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 00 00 00 00 00 00 00 00 04 05 01 00 00 00 00 00 00 00 00 00 "
    "4c 41 42 30 30 36 4c 36 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20";
// 60 bytes
constexpr const char* kTgtResIe =
    "03 00 00 01 00 00 00 3c 03 80 00 34 00 00 00 34 03 00 01 00 00 00 00 00 "
    "00 00 00 00 43 4c 4e 30 30 31 43 55 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20";
// 180 bytes
[[maybe_unused]] constexpr const char* kTgtResDtEmpty =
    "00 01 00 02 00 00 00 b4 04 80 00 56 00 00 00 ac 00 01 00 00 00 00 00 00 "
    "00 00 00 00 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20 00 00 00 00 02 01 00 22 49 45 54 20 "
    "20 20 20 20 56 49 52 54 55 41 4c 2d 54 41 50 45 20 20 20 20 62 65 61 66 "
    "33 31 00 00 00 00 00 02 00 00 00 00 00 00 00 00 00 00 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 00 00 00 00 02 01 00 22 49 45 54 20 20 20 20 20 56 49 52 54 55 41 "
    "4c 2d 54 41 50 45 20 20 20 20 62 65";
// 180 bytes
constexpr const char* kTgtResDtLoaded =
    "00 01 00 02 00 00 00 b4 04 80 00 56 00 00 00 ac 00 01 01 00 00 00 00 00 "
    "00 80 04 01 4c 41 42 30 30 32 4c 36 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20 00 00 00 00 02 01 00 22 49 45 54 20 "
    "20 20 20 20 56 49 52 54 55 41 4c 2d 54 41 50 45 20 20 20 20 62 65 61 66 "
    "33 31 00 00 00 00 00 02 00 00 00 00 00 00 00 00 00 00 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 00 00 00 00 02 01 00 22 49 45 54 20 20 20 20 20 56 49 52 54 55 41 "
    "4c 2d 54 41 50 45 20 20 20 20 62 65";
// 108 bytes
constexpr const char* kTgtResDtLoadedNovol =
    "00 01 00 02 00 00 00 6c 04 00 00 32 00 00 00 64 00 01 01 00 00 00 00 00 "
    "00 80 04 01 02 01 00 22 49 45 54 20 20 20 20 20 56 49 52 54 55 41 4c 2d "
    "54 41 50 45 20 20 20 20 62 65 61 66 33 31 00 00 00 00 00 02 00 00 00 00 "
    "00 00 00 00 00 00 02 01 00 22 49 45 54 20 20 20 20 20 56 49 52 54 55 41 "
    "4c 2d 54 41 50 45 20 20 20 20 62 65";
// 512 bytes
constexpr const char* kTgtResAll512 =
    "00 01 00 0a 00 00 02 10 01 80 00 34 00 00 00 34 00 10 00 00 00 00 00 00 "
    "00 00 00 00 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 02 80 00 34 00 00 01 38 04 00 01 00 00 00 00 00 00 80 00 01 "
    "4c 41 42 30 30 31 4c 36 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 00 00 00 00 00 00 00 00 04 01 01 00 00 00 00 00 "
    "00 00 00 00 4c 41 42 30 30 32 4c 36 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20 00 00 00 00 00 00 00 00 04 02 01 00 "
    "00 00 00 00 00 00 00 00 4c 41 42 30 30 33 4c 36 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 00 00 00 00 00 00 00 00 "
    "04 03 01 00 00 00 00 00 00 00 00 00 4c 41 42 30 30 34 4c 36 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 00 00 00 00 "
    "00 00 00 00 04 04 01 00 00 00 00 00 00 00 00 00 4c 41 42 30 30 35 4c 36 "
    "20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "00 00 00 00 00 00 00 00 04 05 01 00 00 00 00 00 00 00 00 00 4c 41 42 30 "
    "30 36 4c 36 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 03 80 00 34 00 00 00 34 03 00 01 00 00 00 00 00 "
    "00 00 00 00 43 4c 4e 30 30 31 43 55 20 20 20 20 20 20 20 20 20 20 20 20 "
    "20 20 20 20 20 20 20 20 20 20 20 20 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00";
// clang-format on

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

Bytes ascii(const std::string& s) { return Bytes(s.begin(), s.end()); }

std::string text(const Bytes& b) { return std::string(b.begin(), b.end()); }

// ---- standard INQUIRY -----------------------------------------------------------

TEST(ParseInquiry, TgtTapeDrive) {
  const auto q = standard_inquiry(hex(kTgtTapeInquiry));
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->peripheral_qualifier, 0);
  EXPECT_EQ(q->peripheral_type, 0x01);
  EXPECT_TRUE(q->removable);
  EXPECT_EQ(q->version, 0x05);
  EXPECT_EQ(q->response_data_format, 2);
  EXPECT_TRUE(q->hisup);
  EXPECT_FALSE(q->third_party_copy);
  EXPECT_TRUE(q->cmdque);
  EXPECT_EQ(q->vendor, "IET");
  EXPECT_EQ(q->product, "VIRTUAL-TAPE");
  EXPECT_EQ(q->revision, "0001");
}

TEST(ParseInquiry, LtoDriveAndCopyCapableDisk) {
  // An LTO-8 drive as such drives answer a 56-byte INQUIRY.
  Bytes lto = hex("01 80 06 02 33 00 10 02");
  for (const char* s : {"IBM     ", "ULT3580-TD8     ", "Q3F0"}) {
    const Bytes a = ascii(s);
    lto.insert(lto.end(), a.begin(), a.end());
  }
  lto.resize(56, 0);
  const auto q = standard_inquiry(lto);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->peripheral_type, 0x01);
  EXPECT_EQ(q->version, 0x06);
  EXPECT_EQ(q->vendor, "IBM");
  EXPECT_EQ(q->product, "ULT3580-TD8");
  EXPECT_EQ(q->revision, "Q3F0");
  EXPECT_FALSE(q->hisup);

  Bytes disk = hex("20 00 06 12 1f 89 00 02");  // PQ 1, SCCS, 3PC, PROTECT
  disk.resize(36, ' ');
  const auto d = standard_inquiry(disk);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->peripheral_qualifier, 1);
  EXPECT_EQ(d->peripheral_type, 0x00);
  EXPECT_FALSE(d->removable);
  EXPECT_TRUE(d->sccs);
  EXPECT_TRUE(d->third_party_copy);
  EXPECT_TRUE(d->protect);
  EXPECT_EQ(d->vendor, "");
}

TEST(ParseInquiry, ChangerAndTruncations) {
  const Bytes full = hex(kTgtChangerInquiry);
  const auto c = standard_inquiry(full);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->peripheral_type, 0x08);
  EXPECT_EQ(c->product, "VIRTUAL-CHANGER");
  for (std::size_t n = 0; n <= full.size(); ++n) {
    SCOPED_TRACE(n);
    const auto q = standard_inquiry(std::span(full).first(n));
    ASSERT_EQ(q.has_value(), n >= 8);
    if (!q) continue;
    EXPECT_EQ(q->peripheral_type, 0x08);
    EXPECT_EQ(q->vendor, n >= 16 ? "IET" : std::string("IET").substr(0, n > 8 ? n - 8 : 0));
    EXPECT_LE(q->product.size(), n > 16 ? n - 16 : 0);
    EXPECT_EQ(q->revision.empty(), n <= 32);
  }
}

TEST(ParseInquiry, AdditionalLengthBoundsTheStrings) {
  Bytes b = hex(kTgtTapeInquiry);
  b[4] = 0x1B;  // 32 bytes: the product ends at byte 31, no revision
  const auto q = standard_inquiry(b);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->product, "VIRTUAL-TAPE");
  EXPECT_EQ(q->revision, "");
  b[4] = 2;  // the header itself is cut: inconsistent
  EXPECT_FALSE(standard_inquiry(b).has_value());
}

// ---- VPD pages -------------------------------------------------------------------

TEST(ParseVpd, SupportedPagesAndSerial) {
  const auto pages = supported_vpd_pages(hex(kTgtTapeVpd00));
  ASSERT_TRUE(pages.has_value());
  EXPECT_EQ(*pages, (std::vector<std::uint8_t>{0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2}));
  EXPECT_EQ(unit_serial_number(hex(kTgtTapeVpd80)), "beaf21");
  // Wrong page code: not this page.
  EXPECT_FALSE(supported_vpd_pages(hex(kTgtTapeVpd80)).has_value());
  EXPECT_FALSE(unit_serial_number(hex(kTgtTapeVpd00)).has_value());
  // A PAGE LENGTH shorter than the transfer: the rest is not the page.
  EXPECT_EQ(unit_serial_number(hex("01 80 00 04 41 42 43 44 45 46")), "ABCD");
  EXPECT_EQ(unit_serial_number(hex("01 80 00 08 00 00 58 59 00 00")), "XY");
  EXPECT_EQ(unit_serial_number(hex("01 80 00 00")), "");
  EXPECT_FALSE(unit_serial_number(hex("01 80 00")).has_value());
}

TEST(ParseVpd, TgtDeviceIdentification) {
  const auto ids = device_identification(hex(kTgtTapeVpd83));
  ASSERT_TRUE(ids.has_value());
  EXPECT_FALSE(ids->truncated);
  ASSERT_EQ(ids->designators.size(), 3u);
  const Designator& t10 = ids->designators[0];
  EXPECT_EQ(t10.code_set, 2);
  EXPECT_EQ(t10.association, 0);
  EXPECT_EQ(t10.designator_type, kDesignatorT10VendorId);
  EXPECT_EQ(t10.designator.size(), 36u);
  EXPECT_EQ(text(t10.designator).substr(0, 16), "IET     00020001");
  EXPECT_EQ(ids->designators[1].designator_type, kDesignatorNaa);
  EXPECT_EQ(ids->designators[1].designator, hex("30 00 00 02 00 00 00 01"));
  EXPECT_EQ(ids->designators[2].designator, hex("60 00 00 00 00 00 00 00 0e 00 00 00 00 02 00 01"));
  const auto best = preferred_lu_designator(*ids);
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(best->designator.size(), 16u);  // NAA 6 over the 8-byte NAA 3
}

// A SAN disk's page: every designator a real array lists.
Bytes array_vpd83() {
  return hex(
      "00 83 00 68"
      "02 01 00 18 41 43 4d 45 20 20 20 20 41 52 52 41 59 30 30 30 30 30 30 30 30 31 32 33"  // T10
      "01 02 00 08 00 11 22 33 44 55 66 77"                          // EUI-64
      "01 03 00 08 50 01 23 45 67 89 ab cd"                          // NAA 5
      "01 03 00 10 60 01 23 45 67 89 ab cd 00 00 00 00 00 00 00 2a"  // NAA 6
      "61 94 00 04 00 00 00 01"                                      // SAS rel. target port
      "61 95 00 04 00 00 00 02"                                      // target port group
      "53 a8 00 0c 6e 61 61 2e 36 30 30 31 32 33 00 00");            // SCSI name, target
}

TEST(ParseVpd, DeviceIdentificationWithEveryKindOfDescriptor) {
  const auto ids = device_identification(array_vpd83());
  ASSERT_TRUE(ids.has_value());
  EXPECT_FALSE(ids->truncated);
  ASSERT_EQ(ids->designators.size(), 7u);
  EXPECT_EQ(text(ids->designators[0].designator), "ACME    ARRAY00000000123");
  EXPECT_EQ(ids->designators[1].designator_type, kDesignatorEui64);
  const Designator& port = ids->designators[4];
  EXPECT_EQ(port.protocol_identifier, 6);  // SAS
  EXPECT_TRUE(port.piv);
  EXPECT_EQ(port.association, 1);
  EXPECT_EQ(port.designator_type, 4);
  const Designator& name = ids->designators[6];
  EXPECT_EQ(name.code_set, 3);
  EXPECT_EQ(name.association, 2);
  EXPECT_EQ(name.designator_type, 8);
  const auto best = preferred_lu_designator(*ids);
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(best->designator, hex("60 01 23 45 67 89 ab cd 00 00 00 00 00 00 00 2a"));
}

TEST(ParseVpd, PreferenceOrderWithoutNaa) {
  DeviceIdentification ids;
  ids.designators.push_back({0, 2, false, 0, kDesignatorVendorSpecific, hex("01")});
  ids.designators.push_back({0, 2, false, 0, kDesignatorT10VendorId, hex("02")});
  ids.designators.push_back({0, 1, false, 1, kDesignatorNaa, hex("50 00 00 00 00 00 00 03")});
  ids.designators.push_back({0, 1, false, 0, kDesignatorEui64, hex("04 04 04 04 04 04 04 04")});
  EXPECT_EQ(preferred_lu_designator(ids)->designator_type, kDesignatorEui64);  // NAA is a port's
  ids.designators.pop_back();
  EXPECT_EQ(preferred_lu_designator(ids)->designator_type, kDesignatorT10VendorId);
  ids.designators.erase(ids.designators.begin() + 1);
  EXPECT_EQ(preferred_lu_designator(ids)->designator_type, kDesignatorVendorSpecific);
  ids.designators.erase(ids.designators.begin());
  EXPECT_FALSE(preferred_lu_designator(ids).has_value());
}

TEST(ParseVpd, DeviceIdentificationTruncatedAtEveryLength) {
  const Bytes full = array_vpd83();
  std::size_t previous = 0;
  for (std::size_t n = 0; n <= full.size(); ++n) {
    SCOPED_TRACE(n);
    const auto ids = device_identification(std::span(full).first(n));
    ASSERT_EQ(ids.has_value(), n >= 4);
    if (!ids) continue;
    EXPECT_EQ(ids->truncated, n < full.size());
    EXPECT_GE(ids->designators.size(), previous);
    previous = ids->designators.size();
    std::size_t used = 4;
    for (const Designator& d : ids->designators) used += 4 + d.designator.size();
    EXPECT_LE(used, n);
  }
  EXPECT_EQ(previous, 7u);
}

TEST(ParseVpd, DesignatorOverrunningThePage) {
  // The page says 16 bytes; the second descriptor claims 20 of them.
  const auto ids =
      device_identification(hex("00 83 00 10 01 03 00 08 50 01 02 03 04 05 06 07 01 02 00 14"));
  ASSERT_TRUE(ids.has_value());
  EXPECT_TRUE(ids->truncated);
  ASSERT_EQ(ids->designators.size(), 1u);
  EXPECT_EQ(ids->designators[0].designator_type, kDesignatorNaa);
}

TEST(ParseVpd, IdentityFromTgtTape) {
  const auto inq = standard_inquiry(hex(kTgtTapeInquiry));
  ASSERT_TRUE(inq.has_value());
  const Identity id = identity_from(*inq, unit_serial_number(hex(kTgtTapeVpd80)),
                                    device_identification(hex(kTgtTapeVpd83)));
  EXPECT_EQ(id.peripheral_type, 0x01);
  EXPECT_EQ(id.vendor, "IET");
  EXPECT_EQ(id.product, "VIRTUAL-TAPE");
  EXPECT_EQ(id.revision, "0001");
  EXPECT_EQ(id.serial, "beaf21");
  EXPECT_EQ(id.designator_type, kDesignatorNaa);
  EXPECT_EQ(id.designator, hex("60 00 00 00 00 00 00 00 0e 00 00 00 00 02 00 01"));

  const Identity bare = identity_from(*inq, std::nullopt, std::nullopt);
  EXPECT_EQ(bare.serial, "");
  EXPECT_TRUE(bare.designator.empty());
  EXPECT_EQ(bare.designator_type, 0);
}

TEST(ParseVpd, ThirdPartyCopy) {
  const Bytes page =
      hex("00 8f 00 20"
          "00 01 00 08 04 83 02 00 10 84 02 03"    // supported commands (EXTENDED COPY, RCR)
          "00 04 00 04 00 00 00 10"                // parameter data
          "00 08 00 08 06 00 01 02 0a 10 11 e4");  // supported descriptors
  const auto t = third_party_copy(page);
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(t->truncated);
  ASSERT_EQ(t->descriptors.size(), 3u);
  EXPECT_EQ(t->descriptors[0].type, 0x0001);
  EXPECT_EQ(t->descriptors[0].data, hex("04 83 02 00 10 84 02 03"));
  EXPECT_EQ(t->descriptors[1].type, 0x0004);
  EXPECT_EQ(t->descriptors[2].type, 0x0008);
  EXPECT_EQ(t->descriptors[2].data.size(), 8u);
  for (std::size_t n = 0; n < page.size(); ++n) {
    const auto cut = third_party_copy(std::span(page).first(n));
    ASSERT_EQ(cut.has_value(), n >= 4);
    if (!cut) continue;
    EXPECT_TRUE(cut->truncated);
    EXPECT_LE(cut->descriptors.size(), n < 16 ? 0u : n < 24 ? 1u : 2u);
  }
  EXPECT_FALSE(third_party_copy(hex(kTgtTapeVpd83)).has_value());
}

TEST(ParseVpd, B0DependsOnTheDeviceType) {
  const Bytes disk =
      hex("00 b0 00 3c 01 80 00 08 00 00 40 00 00 00 08 00 00 00 00 00 00 00 10 00 00 00 00 10"
          "00 00 00 08 80 00 00 03 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
          "00 00 00 00 00 00 00 00");
  const auto v = vpd_b0(disk, 0x00);
  ASSERT_TRUE(v.has_value());
  const BlockLimits& b = std::get<BlockLimits>(*v);
  EXPECT_TRUE(b.wsnz);
  EXPECT_EQ(b.max_compare_and_write_length, 0x80);
  EXPECT_EQ(b.optimal_transfer_granularity, 8);
  EXPECT_EQ(b.max_transfer_length, 0x4000u);
  EXPECT_EQ(b.optimal_transfer_length, 0x800u);
  EXPECT_EQ(b.max_unmap_lba_count, 0x1000u);
  EXPECT_EQ(b.max_unmap_descriptor_count, 0x10u);
  EXPECT_EQ(b.optimal_unmap_granularity, 8u);
  EXPECT_TRUE(b.unmap_granularity_alignment_valid);
  EXPECT_EQ(b.unmap_granularity_alignment, 3u);
  EXPECT_EQ(b.max_write_same_length, 0x10000u);

  const Bytes tape = hex("01 b0 00 04 01 00 00 00");
  const auto t = vpd_b0(tape, 0x01);
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(std::get<SequentialAccessCapabilities>(*t).worm);
  EXPECT_FALSE(vpd_b0(tape, 0x08).has_value());
  EXPECT_FALSE(vpd_b0(hex("01 b0 00 00"), 0x01).has_value());

  // tgt answers B0h on a tape with the SBC page; read as SSC it says no WORM.
  const auto tgt = vpd_b0(hex(kTgtTapeVpdb0), 0x01);
  ASSERT_TRUE(tgt.has_value());
  EXPECT_FALSE(std::get<SequentialAccessCapabilities>(*tgt).worm);
  const auto tgt_disk = vpd_b0(hex(kTgtDiskVpdb0), 0x00);
  ASSERT_TRUE(tgt_disk.has_value());
  EXPECT_EQ(std::get<BlockLimits>(*tgt_disk).max_transfer_length, 0u);

  // A short page: fields beyond it stay 0.
  const auto cut = block_limits(std::span(disk).first(14));
  ASSERT_TRUE(cut.has_value());
  EXPECT_EQ(cut->max_transfer_length, 0x4000u);
  EXPECT_EQ(cut->optimal_transfer_length, 0u);
}

// ---- REPORT LUNS -----------------------------------------------------------------

TEST(ParseReportLuns, TgtTarget) {
  const auto r = report_luns(hex(kTgtDiskLuns));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->list_length, 24u);
  EXPECT_FALSE(r->truncated);
  EXPECT_EQ(r->luns, (std::vector<std::uint64_t>{0, 0x0001000000000000, 0x0002000000000000}));
}

TEST(ParseReportLuns, TruncatedAndInconsistent) {
  const Bytes full = hex(kTgtDiskLuns);
  for (std::size_t n = 0; n < full.size(); ++n) {
    const auto r = report_luns(std::span(full).first(n));
    ASSERT_EQ(r.has_value(), n >= 8);
    if (!r) continue;
    EXPECT_TRUE(r->truncated);
    EXPECT_EQ(r->luns.size(), (n - 8) / 8);
  }
  EXPECT_FALSE(
      report_luns(hex("00 00 00 0c 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")).has_value());
  const auto more = report_luns(hex("00 00 00 08 00 00 00 00 00 05 00 00 00 00 00 00 ff ff"));
  ASSERT_TRUE(more.has_value());
  EXPECT_EQ(more->luns, (std::vector<std::uint64_t>{0x0005000000000000}));
}

// ---- MODE SENSE ------------------------------------------------------------------

TEST(ParseModeSense, TgtTapeAllPages) {
  const auto m = mode_sense6(hex(kTgtTapeMs6));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->mode_data_length, 161);
  EXPECT_FALSE(m->truncated);
  EXPECT_FALSE(m->write_protected);
  EXPECT_EQ(m->buffered_mode, 1);
  EXPECT_EQ(m->block_descriptor_length, 8);
  ASSERT_EQ(m->block_descriptors.size(), 1u);
  EXPECT_EQ(m->block_descriptors[0].density_code, 0);
  EXPECT_EQ(m->block_descriptors[0].block_length, 0u);  // variable-block mode
  std::vector<int> codes;
  for (const ModePage& p : m->pages) codes.push_back(p.page_code);
  EXPECT_EQ(codes, (std::vector<int>{0x00, 0x01, 0x02, 0x0A, 0x0A, 0x0F, 0x10, 0x1C, 0x1D}));
  const ModePage* ext = m->find(0x0A, 0x01);  // control extension: a sub_page format page
  ASSERT_NE(ext, nullptr);
  EXPECT_TRUE(ext->spf);
  EXPECT_EQ(ext->bytes.size(), 32u);
  const ModePage* dc = m->find(0x0F);
  ASSERT_NE(dc, nullptr);
  EXPECT_EQ(dc->bytes.size(), 16u);
  EXPECT_EQ(m->find(0x0A)->bytes.size(), 12u);
  EXPECT_EQ(m->find(0x3E), nullptr);
}

TEST(ParseModeSense, TgtDiskMode10) {
  const auto m = mode_sense10(hex(kTgtDiskMs10));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->mode_data_length, 0x6C);
  EXPECT_FALSE(m->long_lba);
  ASSERT_EQ(m->block_descriptors.size(), 1u);
  EXPECT_EQ(m->block_descriptors[0].block_length, 512u);
  EXPECT_EQ(m->block_descriptors[0].short_lba_count(), 0u);
  EXPECT_EQ(m->pages.size(), 6u);
  EXPECT_NE(m->find(0x08), nullptr);
}

TEST(ParseModeSense, WriteProtectedTapeWithDensity) {
  // LTO-8 cartridge, write protected, buffered mode 1, fixed 256 KiB blocks.
  const auto m = mode_sense6(hex("0b 5e 90 08 5e 00 00 00 00 04 00 00"));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->medium_type, 0x5E);
  EXPECT_TRUE(m->write_protected);
  EXPECT_EQ(m->buffered_mode, 1);
  EXPECT_EQ(m->speed, 0);
  EXPECT_EQ(m->block_descriptors[0].density_code, 0x5E);
  EXPECT_EQ(m->block_descriptors[0].block_length, 0x40000u);
  EXPECT_TRUE(m->pages.empty());
}

TEST(ParseModeSense, LongLbaDescriptor) {
  const auto m =
      mode_sense10(hex("00 1a 00 00 01 00 00 10 00 00 00 01 00 00 00 00 00 00 00 00 00 00 10 00"
                       "08 02 04 00"));
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(m->long_lba);
  ASSERT_EQ(m->block_descriptors.size(), 1u);
  EXPECT_EQ(m->block_descriptors[0].number_of_blocks, 0x100000000u);
  EXPECT_EQ(m->block_descriptors[0].block_length, 4096u);
  ASSERT_EQ(m->pages.size(), 1u);
  EXPECT_EQ(m->pages[0].page_code, 0x08);
  EXPECT_EQ(m->pages[0].bytes, hex("08 02 04 00"));
}

TEST(ParseModeSense, ChangerPages) {
  for (const Bytes& data : {hex(kTgtChangerMs61d), hex(kTgtChangerMs101d)}) {
    const auto m = data[0] == 0 ? mode_sense10(data) : mode_sense6(data);
    ASSERT_TRUE(m.has_value());
    EXPECT_TRUE(m->block_descriptors.empty());
    const ModePage* p = m->find(0x1D);
    ASSERT_NE(p, nullptr);
    const auto e = element_address_assignment(*p);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->first_transport, 0x0010);
    EXPECT_EQ(e->transport_count, 1);
    EXPECT_EQ(e->first_storage, 0x0400);
    EXPECT_EQ(e->storage_count, 6);
    EXPECT_EQ(e->first_import_export, 0x0300);
    EXPECT_EQ(e->import_export_count, 1);
    EXPECT_EQ(e->first_data_transfer, 0x0001);
    EXPECT_EQ(e->data_transfer_count, 2);
    EXPECT_FALSE(device_capabilities(*p).has_value());
  }
  const auto m = mode_sense6(hex(kTgtChangerMs61f));
  ASSERT_TRUE(m.has_value());
  const auto c = device_capabilities(*m->find(0x1F));
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->store[0] && c->store[1] && c->store[2] && c->store[3]);
  EXPECT_TRUE(c->can_move(2, 4));
  EXPECT_TRUE(c->can_move(4, 3));
  EXPECT_FALSE(c->can_move(0, 1));
  EXPECT_FALSE(c->can_move(1, 5));
  EXPECT_EQ(c->exchange_from[1], 0x0F);
  EXPECT_EQ(c->bytes.size(), 20u);

  // A library whose transport cannot store and whose drives only reach slots.
  ModePage caps;
  caps.page_code = 0x1F;
  caps.bytes = hex("1f 12 0e 00 00 0e 0e 02 00 00 00 00 00 00 00 00 00 00 00 00");
  const auto lib = device_capabilities(caps);
  ASSERT_TRUE(lib.has_value());
  EXPECT_FALSE(lib->store[0]);
  EXPECT_TRUE(lib->store[3]);
  EXPECT_FALSE(lib->can_move(1, 2));
  EXPECT_TRUE(lib->can_move(2, 4));
  EXPECT_TRUE(lib->can_move(4, 2));
  EXPECT_FALSE(lib->can_move(4, 3));
}

TEST(ParseModeSense, TruncatedAtEveryLength) {
  const Bytes full = hex(kTgtTapeMs6);
  std::size_t previous = 0;
  for (std::size_t n = 0; n <= full.size(); ++n) {
    SCOPED_TRACE(n);
    const auto m = mode_sense6(std::span(full).first(n));
    ASSERT_EQ(m.has_value(), n >= 4);
    if (!m) continue;
    EXPECT_EQ(m->truncated, n < full.size());
    EXPECT_EQ(m->block_descriptors.size(), n >= 12 ? 1u : 0u);
    EXPECT_GE(m->pages.size(), previous);
    previous = m->pages.size();
    std::size_t used = 4 + 8 * m->block_descriptors.size();
    for (const ModePage& p : m->pages) used += p.bytes.size();
    EXPECT_LE(used, n);
  }
  EXPECT_EQ(previous, 9u);
  const Bytes ten = hex(kTgtTapeMs10);
  for (std::size_t n = 0; n <= ten.size(); ++n) {
    const auto m = mode_sense10(std::span(ten).first(n));
    ASSERT_EQ(m.has_value(), n >= 8);
  }
}

TEST(ParseModeSense, Inconsistent) {
  EXPECT_FALSE(mode_sense6(hex("02 00 00 00")).has_value());  // header cut by MDL
  EXPECT_FALSE(mode_sense6(hex("0b 00 00 05 00 00 00 00 00 00 00 00")).has_value());  // BDL 5
  EXPECT_FALSE(mode_sense10(hex("00 05 00 00 00 00 00 00")).has_value());
  EXPECT_FALSE(mode_sense10(hex("00 16 00 00 01 00 00 08 00 00 00 00 00 00 00 00"
                                "00 00 00 00 00 00 00 00"))
                   .has_value());  // LONGLBA with an 8-byte BDL
  // MODE DATA LENGTH shorter than the transfer: the rest is not mode data.
  const auto m = mode_sense6(hex("05 00 00 00 1d 00 ff ff ff ff"));
  ASSERT_TRUE(m.has_value());
  ASSERT_EQ(m->pages.size(), 1u);
  EXPECT_EQ(m->pages[0].bytes, hex("1d 00"));
  // A page that runs past the mode data: dropped, flagged.
  const auto cut = mode_sense6(hex("07 00 00 00 1d 12 00 10"));
  ASSERT_TRUE(cut.has_value());
  EXPECT_TRUE(cut->truncated);
  EXPECT_TRUE(cut->pages.empty());
  ModePage small;
  small.page_code = 0x1D;
  small.bytes = hex("1d 02 00 10");
  EXPECT_FALSE(element_address_assignment(small).has_value());
}

// ---- READ CAPACITY(16) ------------------------------------------------------------

TEST(ParseReadCapacity16, TgtDiskAndThinProvisionedDisk) {
  const auto c = read_capacity16(hex(kTgtDiskRc16));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->last_lba, 524287u);
  EXPECT_EQ(c->block_length, 512u);
  EXPECT_EQ(c->lbppbe, 3);
  EXPECT_FALSE(c->lbpme);

  const Bytes thin = hex("00 00 00 01 00 00 00 00 00 00 10 00 05 14 c0 07 00 00 00 00");
  const auto t = read_capacity16(thin);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->last_lba, 0x100000000u);
  EXPECT_EQ(t->block_length, 4096u);
  EXPECT_TRUE(t->prot_en);
  EXPECT_EQ(t->p_type, 2);
  EXPECT_EQ(t->p_i_exponent, 1);
  EXPECT_EQ(t->lbppbe, 4);
  EXPECT_TRUE(t->lbpme);
  EXPECT_TRUE(t->lbprz);
  EXPECT_EQ(t->lowest_aligned_lba, 7);
  for (std::size_t n = 0; n < 16; ++n) {
    const auto cut = read_capacity16(std::span(thin).first(n));
    ASSERT_EQ(cut.has_value(), n >= 12);
    if (cut) {
      EXPECT_EQ(cut->block_length, 4096u);
      EXPECT_FALSE(cut->lbpme);
    }
  }
}

// ---- READ POSITION ---------------------------------------------------------------

TEST(ParseReadPosition, ShortForm) {
  const auto bop =
      read_position_short(hex("80 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
                              " 00 00 00"));
  ASSERT_TRUE(bop.has_value());
  EXPECT_TRUE(bop->bop);
  EXPECT_FALSE(bop->eop);
  const auto mid =
      read_position_short(hex("01 02 00 00 00 01 23 45 00 01 23 47 00 00 00 02 00"
                              " 00 80 00"));
  ASSERT_TRUE(mid.has_value());
  EXPECT_FALSE(mid->bop);
  EXPECT_TRUE(mid->bpew);
  EXPECT_EQ(mid->partition, 2);
  EXPECT_EQ(mid->first_location, 0x12345u);
  EXPECT_EQ(mid->last_location, 0x12347u);
  EXPECT_EQ(mid->blocks_in_buffer, 2u);
  EXPECT_EQ(mid->bytes_in_buffer, 0x8000u);
  const auto flags =
      read_position_short(hex("76 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
                              " 00 00 00"));
  ASSERT_TRUE(flags.has_value());
  EXPECT_TRUE(flags->eop && flags->locu && flags->bycu && flags->lolu && flags->perr);
  EXPECT_FALSE(flags->bop || flags->bpew);
  // tgt 1.0.85 puts the data length (14h) into byte 0: BYCU and LOLU read
  // as set, i.e. "position unknown", which is the truth for its stub.
  const auto tgt = read_position_short(hex(kTgtTapeRpShort));
  ASSERT_TRUE(tgt.has_value());
  EXPECT_TRUE(tgt->lolu);
  EXPECT_TRUE(tgt->bycu);
  EXPECT_FALSE(read_position_short(hex("80 00 00")).has_value());
}

TEST(ParseReadPosition, LongAndExtendedForms) {
  const auto l = read_position_long(
      hex("48 00 00 00 00 00 00 01 00 00 00 00 00 00 10 00 00 00 00 00 00 00 00 03"
          "00 00 00 00 00 00 00 00"));
  ASSERT_TRUE(l.has_value());
  EXPECT_TRUE(l->eop);
  EXPECT_TRUE(l->mpu);
  EXPECT_FALSE(l->lonu);
  EXPECT_EQ(l->partition, 1u);
  EXPECT_EQ(l->logical_object, 0x1000u);
  EXPECT_EQ(l->logical_file, 3u);
  EXPECT_EQ(l->logical_set, 0u);
  const auto tgt = read_position_long(hex(kTgtTapeRpLong));
  ASSERT_TRUE(tgt.has_value());
  EXPECT_FALSE(tgt->bop || tgt->mpu || tgt->lonu);
  EXPECT_FALSE(read_position_long(hex(kTgtTapeRpShort)).has_value());

  const Bytes ext =
      hex("81 03 00 1c 00 00 00 05 00 00 00 00 00 00 00 10 00 00 00 00 00 00 00 14"
          "00 00 00 00 00 05 00 00");
  const auto e = read_position_extended(ext);
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->bop);
  EXPECT_TRUE(e->bpew);
  EXPECT_EQ(e->partition, 3);
  EXPECT_EQ(e->blocks_in_buffer, 5u);
  EXPECT_EQ(e->first_location, 0x10u);
  EXPECT_EQ(e->last_location, 0x14u);
  EXPECT_EQ(e->bytes_in_buffer, 0x50000u);
  Bytes bad = ext;
  bad[3] = 0x10;  // ADDITIONAL LENGTH too small for the form
  EXPECT_FALSE(read_position_extended(bad).has_value());
  EXPECT_FALSE(read_position_extended(std::span(ext).first(31)).has_value());
}

// ---- READ BLOCK LIMITS -----------------------------------------------------------

TEST(ParseReadBlockLimits, TgtAndGranularity) {
  // tgt: granularity 9 (512-byte multiples), max 1 MiB, min 4; sg_read_block_limits
  // 1.46 misreads this as 152043520 because it ignores the GRANULARITY byte.
  const auto b = read_block_limits(hex(kTgtTapeRbl));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->granularity, 9);
  EXPECT_EQ(b->max_block_length, 0x100000u);
  EXPECT_EQ(b->min_block_length, 4);
  const auto lto = read_block_limits(hex("00 ff ff ff 00 01"));
  ASSERT_TRUE(lto.has_value());
  EXPECT_EQ(lto->max_block_length, 0xFFFFFFu);
  EXPECT_EQ(lto->min_block_length, 1);
  EXPECT_FALSE(read_block_limits(hex("09 10 00 00 00")).has_value());
}

// ---- READ ELEMENT STATUS ---------------------------------------------------------

TEST(ParseElementStatus, TgtStorageWithVolumeTags) {
  const auto s = read_element_status(hex(kTgtResSt));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->first_address, 0x0400);
  EXPECT_EQ(s->elements_available, 6);
  // tgt counts the header in BYTE COUNT OF REPORT AVAILABLE and sends 8 bytes
  // less than its pages hold: the last descriptor arrives 8 bytes short.
  EXPECT_TRUE(s->truncated);
  ASSERT_EQ(s->pages.size(), 1u);
  const ElementStatusPage& p = s->pages[0];
  EXPECT_EQ(p.element_type, 2);
  EXPECT_TRUE(p.pvoltag);
  EXPECT_FALSE(p.avoltag);
  EXPECT_EQ(p.descriptor_length, 52);
  ASSERT_EQ(p.descriptors.size(), 6u);
  for (std::size_t i = 0; i < 6; ++i) {
    const ElementDescriptor& e = p.descriptors[i];
    EXPECT_EQ(e.address, 0x0400 + i);
    EXPECT_TRUE(e.full);
    EXPECT_EQ(e.svalid, i == 0);  // LAB001L6 had been to drive 1 and back
    if (i == 0) {
      EXPECT_EQ(e.source_address, 0x0001);
    }
    ASSERT_TRUE(e.primary_tag.has_value());
    EXPECT_EQ(e.primary_tag->identifier, "LAB00" + std::to_string(i + 1) + "L6");
    EXPECT_FALSE(e.alternate_tag.has_value());
    EXPECT_FALSE(e.identifier.has_value());
    EXPECT_EQ(e.truncated, i == 5);
  }
}

TEST(ParseElementStatus, TgtDataTransferWithDvcid) {
  const auto s = read_element_status(hex(kTgtResDtLoaded));
  ASSERT_TRUE(s.has_value());
  ASSERT_EQ(s->pages.size(), 1u);
  const ElementStatusPage& p = s->pages[0];
  EXPECT_EQ(p.element_type, 4);
  EXPECT_EQ(p.descriptor_length, 86);
  ASSERT_EQ(p.descriptors.size(), 2u);
  const ElementDescriptor& d0 = p.descriptors[0];
  EXPECT_EQ(d0.address, 1);
  EXPECT_TRUE(d0.full);
  EXPECT_TRUE(d0.svalid);
  EXPECT_EQ(d0.source_address, 0x0401);
  EXPECT_EQ(d0.primary_tag->identifier, "LAB002L6");
  ASSERT_TRUE(d0.identifier.has_value());
  EXPECT_EQ(d0.identifier->code_set, 2);
  EXPECT_EQ(d0.identifier->identifier_type, 1);
  EXPECT_EQ(d0.identifier->identifier.size(), 34u);
  EXPECT_EQ(text(d0.identifier->identifier).substr(0, 30), "IET     VIRTUAL-TAPE    beaf31");
  EXPECT_FALSE(d0.truncated);
  // The second drive's descriptor is the one tgt cuts 8 bytes short: its
  // identifier arrives with 26 of its 34 bytes.
  const ElementDescriptor& d1 = p.descriptors[1];
  EXPECT_EQ(d1.address, 2);
  EXPECT_FALSE(d1.full);
  EXPECT_TRUE(d1.truncated);
  ASSERT_TRUE(d1.identifier.has_value());
  EXPECT_EQ(text(d1.identifier->identifier), "IET     VIRTUAL-TAPE    be");
  EXPECT_EQ(d1.primary_tag->identifier, "");
}

TEST(ParseElementStatus, TgtOtherElementTypes) {
  const auto mt = read_element_status(hex(kTgtResMt));
  ASSERT_TRUE(mt.has_value());
  ASSERT_EQ(mt->pages.size(), 1u);
  EXPECT_EQ(mt->pages[0].element_type, 1);
  ASSERT_EQ(mt->pages[0].descriptors.size(), 1u);
  EXPECT_EQ(mt->pages[0].descriptors[0].address, 0x0010);
  EXPECT_FALSE(mt->pages[0].descriptors[0].full);

  const auto ie = read_element_status(hex(kTgtResIe));
  ASSERT_TRUE(ie.has_value());
  EXPECT_EQ(ie->pages[0].element_type, 3);
  ASSERT_EQ(ie->pages[0].descriptors.size(), 1u);
  EXPECT_EQ(ie->pages[0].descriptors[0].primary_tag->identifier, "CLN001CU");

  const auto novol = read_element_status(hex(kTgtResDtLoadedNovol));
  ASSERT_TRUE(novol.has_value());
  const ElementStatusPage& p = novol->pages[0];
  EXPECT_FALSE(p.pvoltag);
  EXPECT_EQ(p.descriptor_length, 50);
  ASSERT_EQ(p.descriptors.size(), 2u);
  EXPECT_FALSE(p.descriptors[0].primary_tag.has_value());
  ASSERT_TRUE(p.descriptors[0].identifier.has_value());
  EXPECT_EQ(p.descriptors[0].identifier->identifier.size(), 34u);
  EXPECT_EQ(p.descriptors[1].identifier->identifier.size(), 26u);
}

TEST(ParseElementStatus, TgtAllTypesReportIsRejected) {
  // tgt 1.0.85 writes each element type's page over the previous one when
  // asked for all types at once; the second "page" has element type 0.
  EXPECT_FALSE(read_element_status(hex(kTgtResAll512)).has_value());
}

// A library's report, built per SMC-3: a transport, two slots (one with
// primary and alternate tags), a mail slot open to the operator, and a
// drive in an abnormal state with its device identifier (DVCID).
Bytes library_report() {
  std::string r =
      "00 10 00 06 00 00 01 a4"  // header: first 0x0010, 6 elements, 420 bytes
      // transport page, 16-byte descriptors (12 + an empty identification)
      "01 00 00 10 00 00 00 10"
      "00 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
      // storage page with PVolTag and AVolTag: 12 + 36 + 36 + 4 = 88
      "02 c0 00 58 00 00 00 b0";
  auto tag = [](const std::string& id, int seq) {
    std::string s;
    char buf[4];
    for (std::size_t i = 0; i < 32; ++i) {
      std::snprintf(buf, sizeof buf, "%02x ", i < id.size() ? id[i] : ' ');
      s += buf;
    }
    std::snprintf(buf, sizeof buf, "%02x ", seq);
    return s + "00 00 00 " + buf;
  };
  r += "10 00 09 00 00 00 00 00 00 c0 00 01" + tag("A00001L8", 1) + tag("ALT-A00001", 2) +
       "00 00 00 00";
  r += "10 01 08 00 00 00 00 00 00 00 00 00" + tag("", 0) + tag("", 0) + "00 00 00 00";
  // import/export page, PVolTag only: 12 + 36 + 4 = 52
  r += "03 80 00 34 00 00 00 34";
  r += "03 00 3b 00 00 00 00 00 00 80 10 00" + tag("CLN001L1", 0) + "00 00 00 00";
  // data transfer page, PVolTag, DVCID: 12 + 36 + 4 + 20 = 72
  r += "04 80 00 48 00 00 00 90";
  r += "01 00 0d 00 30 03 b0 05 00 80 10 01" + tag("A00002L8", 0) +
       "02 01 00 14 49 42 4d 20 20 20 20 20 31 30 57 54 30 31 32 33 34 35 20 20";
  r += "01 01 08 00 00 00 06 00 00 00 00 00" + tag("", 0) + "00 00 00 00";
  Bytes b = hex(r);
  b.resize(8 + 420, 0);  // the second drive's identifier length is 0: padding
  return b;
}

TEST(ParseElementStatus, LibraryWithEveryField) {
  const Bytes data = library_report();
  const auto s = read_element_status(data);
  ASSERT_TRUE(s.has_value());
  EXPECT_FALSE(s->truncated);
  EXPECT_EQ(s->elements_available, 6);
  ASSERT_EQ(s->pages.size(), 4u);

  const ElementDescriptor& transport = s->pages[0].descriptors.at(0);
  EXPECT_EQ(transport.address, 0x0010);
  EXPECT_FALSE(transport.identifier.has_value());

  const ElementStatusPage& slots = s->pages[1];
  EXPECT_TRUE(slots.pvoltag);
  EXPECT_TRUE(slots.avoltag);
  ASSERT_EQ(slots.descriptors.size(), 2u);
  const ElementDescriptor& a = slots.descriptors[0];
  EXPECT_EQ(a.address, 0x1000);
  EXPECT_TRUE(a.full);
  EXPECT_TRUE(a.access);
  EXPECT_TRUE(a.svalid);
  EXPECT_TRUE(a.invert);
  EXPECT_EQ(a.source_address, 1);
  EXPECT_EQ(a.primary_tag->identifier, "A00001L8");
  EXPECT_EQ(a.primary_tag->sequence, 1);
  EXPECT_EQ(a.alternate_tag->identifier, "ALT-A00001");
  EXPECT_EQ(a.alternate_tag->sequence, 2);
  EXPECT_FALSE(slots.descriptors[1].full);
  EXPECT_EQ(slots.descriptors[1].primary_tag->identifier, "");

  const ElementDescriptor& mail = s->pages[2].descriptors.at(0);
  EXPECT_TRUE(mail.full);
  EXPECT_TRUE(mail.impexp);
  EXPECT_FALSE(mail.except);
  EXPECT_TRUE(mail.access);
  EXPECT_TRUE(mail.exenab);
  EXPECT_TRUE(mail.inenab);
  EXPECT_EQ(mail.primary_tag->identifier, "CLN001L1");

  const ElementStatusPage& drives = s->pages[3];
  ASSERT_EQ(drives.descriptors.size(), 2u);
  const ElementDescriptor& d = drives.descriptors[0];
  EXPECT_EQ(d.address, 0x0100);
  EXPECT_TRUE(d.full);
  EXPECT_TRUE(d.except);
  EXPECT_TRUE(d.access);
  EXPECT_EQ(d.asc, 0x30);
  EXPECT_EQ(d.ascq, 0x03);
  EXPECT_TRUE(d.not_bus);
  EXPECT_TRUE(d.id_valid);
  EXPECT_TRUE(d.lu_valid);
  EXPECT_EQ(d.lun, 0);
  EXPECT_EQ(d.scsi_bus_address, 5);
  EXPECT_TRUE(d.svalid);
  EXPECT_EQ(d.source_address, 0x1001);
  EXPECT_EQ(d.primary_tag->identifier, "A00002L8");
  ASSERT_TRUE(d.identifier.has_value());
  EXPECT_EQ(d.identifier->code_set, 2);
  EXPECT_EQ(d.identifier->identifier_type, 1);
  EXPECT_EQ(text(d.identifier->identifier), "IBM     10WT012345  ");
  const ElementDescriptor& idle = drives.descriptors[1];
  EXPECT_EQ(idle.lun, 6);
  EXPECT_FALSE(idle.lu_valid);
  EXPECT_FALSE(idle.identifier.has_value());
}

TEST(ParseElementStatus, TruncatedAtEveryLength) {
  for (const Bytes& full : {library_report(), hex(kTgtResDtLoaded), hex(kTgtResSt)}) {
    std::size_t previous = 0;
    for (std::size_t n = 0; n <= full.size(); ++n) {
      SCOPED_TRACE(n);
      const auto s = read_element_status(std::span(full).first(n));
      ASSERT_EQ(s.has_value(), n >= 8);
      if (!s) continue;
      std::size_t count = 0, bytes = 8;
      for (const ElementStatusPage& p : s->pages) {
        bytes += 8;
        count += p.descriptors.size();
        for (const ElementDescriptor& e : p.descriptors) {
          bytes += 12;
          if (e.identifier) {
            EXPECT_LE(e.identifier->identifier.size(), full.size());
          }
        }
      }
      EXPECT_LE(bytes, n);
      EXPECT_GE(count, previous);
      previous = count;
      if (n < full.size()) {
        EXPECT_TRUE(s->truncated);
      }
    }
  }
}

TEST(ParseElementStatus, Inconsistent) {
  // Element type 7 is no element type.
  EXPECT_FALSE(read_element_status(hex("00 01 00 01 00 00 00 18 07 00 00 10 00 00 00 10"
                                       "00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00"))
                   .has_value());
  // A descriptor length below the 12 fixed bytes.
  EXPECT_FALSE(read_element_status(hex("00 01 00 01 00 00 00 10 02 00 00 08 00 00 00 08"
                                       "00 01 00 00 00 00 00 00"))
                   .has_value());
  // An empty page with a zero descriptor length is fine.
  const auto empty = read_element_status(hex("00 00 00 00 00 00 00 08 04 00 00 00 00 00 00 00"));
  ASSERT_TRUE(empty.has_value());
  ASSERT_EQ(empty->pages.size(), 1u);
  EXPECT_TRUE(empty->pages[0].descriptors.empty());
  // The header's byte count bounds the report: a page beyond it is ignored.
  const auto bounded = read_element_status(hex("00 00 00 00 00 00 00 00 04 00 00 10 00 00 00 10"));
  ASSERT_TRUE(bounded.has_value());
  EXPECT_TRUE(bounded->pages.empty());
  EXPECT_FALSE(bounded->truncated);
  // A byte count not a multiple of the descriptor length: the remainder is a
  // short descriptor.
  const auto odd =
      read_element_status(hex("00 01 00 01 00 00 00 1c 02 00 00 10 00 00 00 14"
                              "00 01 01 00 00 00 00 00 00 00 00 00 00 00 00 00"
                              "00 02 00 00"));
  ASSERT_TRUE(odd.has_value());
  EXPECT_EQ(odd->pages[0].descriptors.size(), 1u);
  EXPECT_TRUE(odd->truncated);
}

}  // namespace
}  // namespace scsi::parse
