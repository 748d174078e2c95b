// Sense decoding: fixed and descriptor formats, the tape (SSC) cases the
// mover acts on, short and padded buffers, round trips through
// fixed_sense(), and libsgutils2's own decoding as a second opinion.
// Vectors marked "tgt" are raw sense bytes tgt 1.0.85 returned over iSCSI.

#include "scsi/sense.h"

#include <gtest/gtest.h>
#include <scsi/sg_lib.h>

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

namespace scsi {
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

Sense must_decode(const Bytes& b) {
  const std::optional<Sense> s = decode_sense(b);
  EXPECT_TRUE(s.has_value());
  return s.value_or(Sense{});
}

// ---- fixed format: the tape cases ------------------------------------------

TEST(SenseFixed, IliShortReadPositiveResidue) {  // tgt: READ(6) of 4096, record of 1000
  const Sense s = must_decode(hex("f0 00 20 00 00 0c 18 0a 00 00 00 00 00 00 00 00 00 00"));
  EXPECT_FALSE(s.descriptor_format);
  EXPECT_FALSE(s.deferred);
  EXPECT_EQ(s.key, SenseKey::kNoSense);
  EXPECT_TRUE(s.ili);
  EXPECT_FALSE(s.filemark);
  EXPECT_FALSE(s.eom);
  EXPECT_TRUE(s.information_valid);
  EXPECT_EQ(s.information, 3096);
  EXPECT_TRUE(s.is(SenseKey::kNoSense, 0, 0));
}

TEST(SenseFixed, IliNegativeInformationIsSignExtended) {  // tgt: READ(6) of 100, record of 512
  const Sense s = must_decode(hex("f0 00 20 ff ff fe 64 0a 00 00 00 00 00 00 00 00 00 00"));
  EXPECT_TRUE(s.ili);
  EXPECT_TRUE(s.information_valid);
  EXPECT_EQ(s.information, -412);
}

TEST(SenseFixed, InformationWithoutValidIsIgnored) {
  const Sense s = must_decode(hex("70 00 20 00 00 0c 18 0a 00 00 00 00 00 00 00 00 00 00"));
  EXPECT_TRUE(s.ili);
  EXPECT_FALSE(s.information_valid);
  EXPECT_EQ(s.information, 0);
}

TEST(SenseFixed, Filemark) {  // tgt: READ(6) of 4096 across a filemark
  const Sense s = must_decode(hex("f0 00 80 00 00 10 00 0a 00 00 00 00 00 01 00 00 00 00"));
  EXPECT_TRUE(s.filemark);
  EXPECT_FALSE(s.ili);
  EXPECT_TRUE(s.is(SenseKey::kNoSense, 0x00, 0x01));
  EXPECT_EQ(s.information, 4096);
}

TEST(SenseFixed, BlankCheckEndOfData) {
  const Sense s = must_decode(hex("70 00 08 00 00 00 00 0a 00 00 00 00 00 05 00 00 00 00"));
  EXPECT_TRUE(s.is(SenseKey::kBlankCheck, 0x00, 0x05));
  EXPECT_FALSE(s.eom);
}

TEST(SenseFixed, BlankCheckTgtStyleEomWithoutAscq) {  // tgt at EOD: EOM set, 00/00
  const Sense s = must_decode(hex("70 00 48 00 00 00 00 0a 00 00 00 00 00 00 00 00 00 00"));
  EXPECT_EQ(s.key, SenseKey::kBlankCheck);
  EXPECT_TRUE(s.eom);
  EXPECT_EQ(s.asc, 0);
  EXPECT_EQ(s.ascq, 0);
}

TEST(SenseFixed, EarlyWarningIsNoSenseWithEom) {
  const Sense s = must_decode(hex("70 00 40 00 00 00 00 0a 00 00 00 00 00 02 00 00 00 00"));
  EXPECT_TRUE(s.is(SenseKey::kNoSense, 0x00, 0x02));
  EXPECT_TRUE(s.eom);
}

TEST(SenseFixed, VolumeOverflowAtHardEnd) {
  const Sense s = must_decode(hex("f0 00 4d 00 00 00 40 0a 00 00 00 00 00 02 00 00 00 00"));
  EXPECT_TRUE(s.is(SenseKey::kVolumeOverflow, 0x00, 0x02));
  EXPECT_TRUE(s.eom);
  EXPECT_EQ(s.information, 64);
}

TEST(SenseFixed, DataProtectWriteProtected) {
  const Sense s = must_decode(hex("70 00 07 00 00 00 00 0a 00 00 00 00 27 00 00 00 00 00"));
  EXPECT_TRUE(s.is(SenseKey::kDataProtect, 0x27, 0x00));
}

TEST(SenseFixed, CopyAbortedWithCommandSpecificAndSenseKeySpecific) {
  // A copy manager failing segment 3 with 1000 blocks still to write, the
  // field pointer at parameter-list byte 0x0030.
  const Sense s = must_decode(hex("f0 00 0a 00 00 03 e8 0a 00 00 00 03 0d 01 00 80 00 30"));
  EXPECT_TRUE(s.is(SenseKey::kCopyAborted, 0x0D, 0x01));
  EXPECT_EQ(s.information, 1000);
  EXPECT_TRUE(s.command_specific_valid);
  EXPECT_EQ(s.command_specific, 3u);
  ASSERT_TRUE(s.sense_key_specific_valid);
  EXPECT_EQ(s.sense_key_specific[0], 0x80);
  EXPECT_EQ(s.sense_key_specific[1], 0x00);
  EXPECT_EQ(s.sense_key_specific[2], 0x30);
}

TEST(SenseFixed, SenseKeySpecificWithoutSksvIsIgnored) {
  const Sense s = must_decode(hex("70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 40 00 02"));
  EXPECT_FALSE(s.sense_key_specific_valid);
  EXPECT_EQ(s.sense_key_specific[0], 0);
}

TEST(SenseFixed, Deferred) {
  const Sense s = must_decode(hex("71 00 03 00 00 00 00 0a 00 00 00 00 0c 00 00 00 00 00"));
  EXPECT_TRUE(s.deferred);
  EXPECT_TRUE(s.is(SenseKey::kMediumError, 0x0C, 0x00));
}

TEST(SenseFixed, TrailingZerosChangeNothing) {
  Bytes b = hex("f0 00 20 ff ff fe 64 0a 00 00 00 00 00 00 00 00 00 00");
  const Sense a = must_decode(b);
  b.resize(252, 0);
  const Sense padded = must_decode(b);
  EXPECT_EQ(padded.information, a.information);
  EXPECT_EQ(padded.ili, a.ili);
  EXPECT_EQ(padded.key, a.key);
  EXPECT_FALSE(padded.sense_key_specific_valid);
}

TEST(SenseFixed, BytesBeyondAdditionalLengthAreAbsent) {
  // ADDITIONAL SENSE LENGTH 4 covers bytes 8-11 only: the 3B/0E and the SKS
  // that follow in the buffer are not sense data.
  const Sense s = must_decode(hex("70 00 05 00 00 00 00 04 00 00 00 07 3b 0e 00 80 00 04"));
  EXPECT_EQ(s.key, SenseKey::kIllegalRequest);
  EXPECT_TRUE(s.command_specific_valid);
  EXPECT_EQ(s.command_specific, 7u);
  EXPECT_EQ(s.asc, 0);
  EXPECT_EQ(s.ascq, 0);
  EXPECT_FALSE(s.sense_key_specific_valid);
}

TEST(SenseFixed, EveryTruncationUsesWhatIsPresent) {
  const Bytes full = hex("f0 00 a5 ff ff ff fe 0a 00 00 00 09 24 00 00 c0 00 02");
  for (std::size_t n = 0; n <= full.size(); ++n) {
    SCOPED_TRACE(n);
    const std::optional<Sense> s = decode_sense(std::span(full).first(n));
    if (n < 3) {
      EXPECT_FALSE(s.has_value());
      continue;
    }
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->key, SenseKey::kIllegalRequest);
    EXPECT_TRUE(s->filemark);
    EXPECT_TRUE(s->ili);
    EXPECT_EQ(s->information_valid, n >= 7);
    if (n >= 7) {
      EXPECT_EQ(s->information, -2);
    }
    EXPECT_EQ(s->command_specific_valid, n >= 12);
    EXPECT_EQ(s->asc, n >= 13 ? 0x24 : 0);
    EXPECT_EQ(s->sense_key_specific_valid, n >= 18);
  }
}

TEST(SenseDecode, NotSense) {
  EXPECT_FALSE(decode_sense({}).has_value());
  for (std::uint8_t code : {0x00, 0x7F, 0x60, 0x74, 0x0F}) {
    Bytes b = hex("70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 00 00 00");
    b[0] = code;
    EXPECT_FALSE(decode_sense(b).has_value()) << int{code};
  }
}

// ---- descriptor format ---------------------------------------------------------

TEST(SenseDescriptor, AllFourDescriptors) {
  const Bytes b =
      hex("72 0a 0d 01 00 00 00 24"              // COPY ABORTED 0D/01, 36 bytes of descriptors
          "00 0a 80 00 00 00 00 00 00 00 01 f4"  // information, VALID, 500
          "01 0a 00 00 00 00 00 00 00 00 00 02"  // command-specific: segment 2
          "02 06 00 00 80 00 10 00"              // sense-key specific, SKSV, field 0x0010
          "04 02 00 a0");                        // stream: FILEMARK | ILI
  const Sense s = must_decode(b);
  EXPECT_TRUE(s.descriptor_format);
  EXPECT_FALSE(s.deferred);
  EXPECT_TRUE(s.is(SenseKey::kCopyAborted, 0x0D, 0x01));
  EXPECT_TRUE(s.information_valid);
  EXPECT_EQ(s.information, 500);
  EXPECT_TRUE(s.command_specific_valid);
  EXPECT_EQ(s.command_specific, 2u);
  ASSERT_TRUE(s.sense_key_specific_valid);
  EXPECT_EQ(s.sense_key_specific[0], 0x80);
  EXPECT_EQ(s.sense_key_specific[2], 0x10);
  EXPECT_TRUE(s.filemark);
  EXPECT_FALSE(s.eom);
  EXPECT_TRUE(s.ili);
}

TEST(SenseDescriptor, NegativeInformationIs64Bit) {
  const Sense s =
      must_decode(hex("72 00 00 00 00 00 00 10"
                      "00 0a 80 00 ff ff ff ff ff ff ff 9c"
                      "04 02 00 20"));
  EXPECT_EQ(s.information, -100);
  EXPECT_TRUE(s.ili);
}

TEST(SenseDescriptor, DeferredEomAndUnknownDescriptorsSkipped) {
  const Sense s =
      must_decode(hex("73 0d 00 02 00 00 00 0a"
                      "0c 04 01 02 03 04"  // forwarded sense: not decoded here
                      "04 02 00 40"));
  EXPECT_TRUE(s.deferred);
  EXPECT_TRUE(s.is(SenseKey::kVolumeOverflow, 0x00, 0x02));
  EXPECT_TRUE(s.eom);
}

TEST(SenseDescriptor, InformationWithoutValid) {
  const Sense s = must_decode(hex("72 03 11 00 00 00 00 0c 00 0a 00 00 00 00 00 00 00 00 10 00"));
  EXPECT_FALSE(s.information_valid);
}

TEST(SenseDescriptor, DescriptorCutShortIsNotRead) {
  // The information descriptor claims 10 bytes but the ADDITIONAL SENSE
  // LENGTH ends it after 6; the buffer holds the rest.
  const Sense s = must_decode(hex("72 05 24 00 00 00 00 06 00 0a 80 00 00 00 00 00 00 00 00 05"));
  EXPECT_TRUE(s.is(SenseKey::kIllegalRequest, 0x24, 0x00));
  EXPECT_FALSE(s.information_valid);
}

TEST(SenseDescriptor, ShortBuffers) {
  EXPECT_FALSE(decode_sense(hex("72")).has_value());
  const Sense two = must_decode(hex("72 06"));
  EXPECT_EQ(two.key, SenseKey::kUnitAttention);
  EXPECT_EQ(two.asc, 0);
  const Sense four = must_decode(hex("72 06 29 00"));
  EXPECT_TRUE(four.is(SenseKey::kUnitAttention, 0x29, 0x00));
  // Additional length beyond the buffer: descriptors that fit are used.
  const Sense cut = must_decode(hex("72 00 00 00 00 00 00 ff 04 02 00 80 00 0a 80"));
  EXPECT_TRUE(cut.filemark);
  EXPECT_FALSE(cut.information_valid);
}

// ---- round trips with fixed_sense() ------------------------------------------

TEST(SenseRoundTrip, FixedSenseDecodesToItsSpec) {
  std::vector<SenseSpec> specs;
  for (SenseKey k :
       {SenseKey::kNoSense, SenseKey::kNotReady, SenseKey::kMediumError, SenseKey::kIllegalRequest,
        SenseKey::kUnitAttention, SenseKey::kDataProtect, SenseKey::kBlankCheck,
        SenseKey::kCopyAborted, SenseKey::kVolumeOverflow, SenseKey::kCompleted}) {
    for (int flags = 0; flags < 8; ++flags) {
      SenseSpec s;
      s.key = k;
      s.asc = static_cast<std::uint8_t>(0x20 + flags);
      s.ascq = static_cast<std::uint8_t>(flags * 3);
      s.filemark = flags & 1;
      s.eom = flags & 2;
      s.ili = flags & 4;
      specs.push_back(s);
    }
  }
  for (std::int64_t info : {std::int64_t{0}, std::int64_t{1}, std::int64_t{-1}, std::int64_t{3096},
                            std::int64_t{-412}, std::int64_t{INT32_MAX}, std::int64_t{INT32_MIN}}) {
    SenseSpec s;
    s.key = SenseKey::kNoSense;
    s.ili = true;
    s.information = info;
    specs.push_back(s);
  }
  SenseSpec copy;
  copy.key = SenseKey::kCopyAborted;
  copy.asc = 0x0D;
  copy.ascq = 0x01;
  copy.information = 123456;
  copy.command_specific = 0xDEADBEEF;
  copy.field_pointer = SenseSpec::FieldPointer{false, 0x1234, true, 5};
  specs.push_back(copy);
  SenseSpec cdb_field;
  cdb_field.key = SenseKey::kIllegalRequest;
  cdb_field.asc = 0x24;
  cdb_field.field_pointer = SenseSpec::FieldPointer{true, 1, false, 0};
  specs.push_back(cdb_field);

  for (const SenseSpec& spec : specs) {
    const Bytes b = fixed_sense(spec);
    const Sense s = must_decode(b);
    EXPECT_EQ(s.key, spec.key);
    EXPECT_EQ(s.asc, spec.asc);
    EXPECT_EQ(s.ascq, spec.ascq);
    EXPECT_EQ(s.filemark, spec.filemark);
    EXPECT_EQ(s.eom, spec.eom);
    EXPECT_EQ(s.ili, spec.ili);
    EXPECT_EQ(s.information_valid, spec.information.has_value());
    if (spec.information) {
      EXPECT_EQ(s.information, *spec.information);
    }
    EXPECT_TRUE(s.command_specific_valid);  // fixed format always carries bytes 8-11
    EXPECT_EQ(s.command_specific, spec.command_specific.value_or(0));
    EXPECT_EQ(s.sense_key_specific_valid, spec.field_pointer.has_value());
    if (spec.field_pointer) {
      const auto& fp = *spec.field_pointer;
      EXPECT_EQ((s.sense_key_specific[0] & 0x40) != 0, fp.in_cdb);
      EXPECT_EQ((s.sense_key_specific[0] & 0x08) != 0, fp.bit_valid);
      if (fp.bit_valid) {
        EXPECT_EQ(s.sense_key_specific[0] & 0x07, fp.bit);
      }
      EXPECT_EQ(s.sense_key_specific[1] << 8 | s.sense_key_specific[2], fp.field);
    }
  }
}

// ---- libsgutils2 as a second opinion ------------------------------------------

TEST(SenseDecode, AgreesWithSgLibOnKeyAscAscqAndStreamBits) {
  const std::vector<Bytes> vectors = {
      hex("f0 00 20 00 00 0c 18 0a 00 00 00 00 00 00 00 00 00 00"),
      hex("f0 00 80 00 00 10 00 0a 00 00 00 00 00 01 00 00 00 00"),
      hex("70 00 48 00 00 00 00 0a 00 00 00 00 00 00 00 00 00 00"),
      hex("70 00 05 00 00 00 00 04 00 00 00 07 3b 0e 00 80 00 04"),
      hex("f0 00 0a 00 00 03 e8 0a 00 00 00 03 0d 01 00 80 00 30"),
      hex("72 0a 0d 01 00 00 00 24 00 0a 80 00 00 00 00 00 00 00 01 f4 01 0a 00 00 00 00 00 00 00"
          " 00 00 02 02 06 00 00 80 00 10 00 04 02 00 a0"),
      hex("73 0d 00 02 00 00 00 0a 0c 04 01 02 03 04 04 02 00 40"),
  };
  for (const Bytes& v : vectors) {
    for (std::size_t n = 0; n <= v.size(); ++n) {
      SCOPED_TRACE(::testing::Message() << "vector " << int{v[0]} << " length " << n);
      const std::span<const std::uint8_t> b(v.data(), n);
      const std::optional<Sense> s = decode_sense(b);
      sg_scsi_sense_hdr h{};
      const bool sg = sg_scsi_normalize_sense(b.data(), static_cast<int>(n), &h);
      if (!s) continue;  // we want a key; sg_lib is content with a response code
      ASSERT_TRUE(sg);
      EXPECT_EQ(static_cast<int>(s->key), h.sense_key);
      EXPECT_EQ(s->asc, h.asc);
      EXPECT_EQ(s->ascq, h.ascq);
      if (!s->descriptor_format && n >= 7) {
        bool fm = false, eom = false, ili = false;
        sg_get_sense_filemark_eom_ili(b.data(), static_cast<int>(n), &fm, &eom, &ili);
        EXPECT_EQ(s->filemark, fm);
        EXPECT_EQ(s->eom, eom);
        EXPECT_EQ(s->ili, ili);
        std::uint64_t info = 0;
        EXPECT_EQ(s->information_valid,
                  sg_get_sense_info_fld(b.data(), static_cast<int>(n), &info));
        if (s->information_valid) {
          EXPECT_EQ(static_cast<std::uint32_t>(s->information), info);
        }
      }
    }
  }
}

// ---- describe ------------------------------------------------------------------

TEST(SenseDescribe, NamesComeFromSgLib) {
  const Sense s = must_decode(hex("70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 00 00 00"));
  EXPECT_EQ(s.describe(), "Illegal Request: Invalid field in cdb");
  const Sense fm = must_decode(hex("f0 00 80 00 00 10 00 0a 00 00 00 00 00 01 00 00 00 00"));
  EXPECT_EQ(fm.describe(), "No Sense: Filemark detected [FILEMARK] info=4096");
}

TEST(SenseDescribe, ResultLines) {
  SenseSpec spec;
  spec.key = SenseKey::kIllegalRequest;
  spec.asc = 0x24;
  EXPECT_EQ(describe_result(check_condition(spec)), "ILLEGAL REQUEST 24/00 invalid field in cdb");

  SenseSpec ili;
  ili.ili = true;
  ili.information = -412;
  EXPECT_EQ(describe_result(check_condition(ili)),
            "NO SENSE 00/00 no additional sense information [ILI] info=-412");

  SenseSpec empty;
  empty.key = SenseKey::kIllegalRequest;
  empty.asc = 0x3B;
  empty.ascq = 0x0E;
  EXPECT_EQ(describe_result(check_condition(empty)),
            "ILLEGAL REQUEST 3B/0E medium source element empty");

  Result busy;
  busy.status = Status::kBusy;
  EXPECT_EQ(describe_result(busy), "Busy");

  Result good;
  EXPECT_EQ(describe_result(good), "Good");

  Result bare;
  bare.status = Status::kCheckCondition;
  EXPECT_EQ(describe_result(bare), "Check Condition (no sense data)");

  Result lost;
  lost.status = Status::kCheckCondition;
  lost.transport_error = "connection reset by peer";
  EXPECT_EQ(describe_result(lost), "transport error: connection reset by peer");

  Result odd;  // unknown response code: still reported, never decoded
  odd.status = Status::kCheckCondition;
  odd.sense = hex("7f 00 05 00");
  EXPECT_EQ(describe_result(odd), "Check Condition (no sense data)");
}

TEST(SenseDescribe, DeferredAndVendorAsc) {
  const Sense s = must_decode(hex("73 04 99 42"));
  const std::string d = s.describe();
  EXPECT_EQ(d.rfind("deferred: Hardware Error: ", 0), 0u) << d;
  EXPECT_NE(d.find("99"), std::string::npos) << d;
}

}  // namespace
}  // namespace scsi
