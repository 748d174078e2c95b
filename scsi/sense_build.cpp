// What the emulated targets answer: the sense they build, and data-in
// responses (the decoding side is sense.cpp).

#include <algorithm>

#include "scsi/sense.h"

namespace scsi {

Bytes fixed_sense(const SenseSpec& spec) {
  Bytes s(18, 0);
  s[0] = 0x70;
  s[2] = static_cast<std::uint8_t>(static_cast<std::uint8_t>(spec.key) & 0x0F);
  if (spec.filemark) s[2] |= 0x80;
  if (spec.eom) s[2] |= 0x40;
  if (spec.ili) s[2] |= 0x20;
  if (spec.information) {
    s[0] |= 0x80;  // VALID
    const auto v = static_cast<std::uint32_t>(*spec.information);
    s[3] = static_cast<std::uint8_t>(v >> 24);
    s[4] = static_cast<std::uint8_t>(v >> 16);
    s[5] = static_cast<std::uint8_t>(v >> 8);
    s[6] = static_cast<std::uint8_t>(v);
  }
  s[7] = 10;  // additional sense length: bytes 8-17
  if (spec.command_specific) {
    const std::uint32_t v = *spec.command_specific;
    s[8] = static_cast<std::uint8_t>(v >> 24);
    s[9] = static_cast<std::uint8_t>(v >> 16);
    s[10] = static_cast<std::uint8_t>(v >> 8);
    s[11] = static_cast<std::uint8_t>(v);
  }
  s[12] = spec.asc;
  s[13] = spec.ascq;
  if (spec.field_pointer) {
    const SenseSpec::FieldPointer& fp = *spec.field_pointer;
    s[15] = 0x80;  // SKSV
    if (fp.in_cdb) s[15] |= 0x40;
    if (fp.bit_valid) s[15] |= static_cast<std::uint8_t>(0x08 | (fp.bit & 0x07));
    s[16] = static_cast<std::uint8_t>(fp.field >> 8);
    s[17] = static_cast<std::uint8_t>(fp.field);
  }
  return s;
}

Result respond(std::span<const std::uint8_t> response, std::span<std::uint8_t> data_in) {
  const std::size_t n = std::min(response.size(), data_in.size());
  std::copy_n(response.begin(), n, data_in.begin());
  Result r;
  r.data_in = n;
  r.residual = data_in.size() - n;
  return r;
}

Result check_condition(const SenseSpec& spec) {
  Result r;
  r.status = Status::kCheckCondition;
  r.sense = fixed_sense(spec);
  return r;
}

}  // namespace scsi
