// Sense data: decoding what a device returned (fixed 70h/71h and
// descriptor 72h/73h formats) into the facts callers act on, and building
// sense for the emulated targets.  Pure functions over byte spans; every
// field is length-checked.  Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "scsi/device.h"

namespace scsi {

enum class SenseKey : std::uint8_t {
  kNoSense = 0x0,
  kRecoveredError = 0x1,
  kNotReady = 0x2,
  kMediumError = 0x3,
  kHardwareError = 0x4,
  kIllegalRequest = 0x5,
  kUnitAttention = 0x6,
  kDataProtect = 0x7,
  kBlankCheck = 0x8,
  kVendorSpecific = 0x9,
  kCopyAborted = 0xA,
  kAbortedCommand = 0xB,
  kVolumeOverflow = 0xD,
  kMiscompare = 0xE,
  kCompleted = 0xF,
};

struct Sense {
  bool descriptor_format = false;
  bool deferred = false;  // 71h / 73h: about an earlier command
  SenseKey key = SenseKey::kNoSense;
  std::uint8_t asc = 0;
  std::uint8_t ascq = 0;
  // Stream (tape) bits: fixed byte 2, or the stream commands descriptor (04h).
  bool filemark = false;
  bool eom = false;
  bool ili = false;
  // INFORMATION: fixed bytes 3-6 (only with VALID), descriptor 00h (8 bytes).
  // For tape commands it is a signed residue; `information` holds the
  // sign-extended value (fixed format: 32 bits; descriptor: 64 bits).
  bool information_valid = false;
  std::int64_t information = 0;
  // COMMAND-SPECIFIC INFORMATION: fixed bytes 8-11, descriptor 01h.
  bool command_specific_valid = false;
  std::uint64_t command_specific = 0;
  // SENSE-KEY SPECIFIC (fixed bytes 15-17 / descriptor 02h), when SKSV.
  bool sense_key_specific_valid = false;
  std::uint8_t sense_key_specific[3] = {0, 0, 0};

  // "Illegal Request: Invalid field in cdb" etc., from libsgutils2.
  std::string describe() const;
  bool is(SenseKey k, std::uint8_t a, std::uint8_t q) const {
    return key == k && asc == a && ascq == q;
  }
};

// Decodes `buf` (as returned by the device, possibly with trailing zeros);
// nullopt if it holds no sense (too short, unknown response code).
std::optional<Sense> decode_sense(std::span<const std::uint8_t> buf);

// What an emulated target says: fixed-format sense (response code 70h),
// 18 bytes, with the ADDITIONAL SENSE LENGTH set.
struct SenseSpec {
  SenseKey key = SenseKey::kNoSense;
  std::uint8_t asc = 0;
  std::uint8_t ascq = 0;
  bool filemark = false;
  bool eom = false;
  bool ili = false;
  std::optional<std::int64_t> information;  // VALID=1 and bytes 3-6 (32-bit, two's complement)
  std::optional<std::uint32_t> command_specific;
  // SKSV=1 with a field pointer: byte `field` of the CDB (c_d) or parameter
  // list, bit `bit` (when bit_valid).
  struct FieldPointer {
    bool in_cdb = true;
    std::uint16_t field = 0;
    bool bit_valid = false;
    std::uint8_t bit = 0;
  };
  std::optional<FieldPointer> field_pointer;
};
Bytes fixed_sense(const SenseSpec& spec);

// Convenience: CHECK CONDITION with that sense, as a target's Result.
Result check_condition(const SenseSpec& spec);

// A target's GOOD answer: a complete response copied into the initiator's
// buffer, truncated to it (data_in and residual set).
Result respond(std::span<const std::uint8_t> response, std::span<std::uint8_t> data_in);

// A short, log-friendly line: "ILLEGAL REQUEST 24/00 invalid field in cdb".
std::string describe_result(const Result& r);

}  // namespace scsi
