// Decoding sense data (SPC-4 4.5): fixed format (4.5.3) and descriptor
// format (4.5.2).  Names for keys, ASC/ASCQ and status come from
// libsgutils2's sg_lib, so that they match what sg3_utils prints.

#include "scsi/sense.h"

#include <scsi/sg_lib.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

#include "scsi/big_endian.h"

namespace scsi {
namespace {

using Span = std::span<const std::uint8_t>;

// Fixed format, SPC-4 4.5.3 table 27.  Bytes 0-7 are always where the
// standard puts them; from byte 8 on, only what the ADDITIONAL SENSE LENGTH
// (byte 7) covers counts, so a device's zero padding is never read as data.
Sense decode_fixed(Span b) {
  Sense s;
  s.deferred = (b[0] & 0x7F) == 0x71;
  s.key = static_cast<SenseKey>(b[2] & 0x0F);
  s.filemark = (b[2] & 0x80) != 0;
  s.eom = (b[2] & 0x40) != 0;
  s.ili = (b[2] & 0x20) != 0;
  if ((b[0] & 0x80) != 0 && b.size() >= 7) {
    s.information_valid = true;
    // A signed residue for stream commands: sign-extend from 32 bits.
    s.information = static_cast<std::int32_t>(static_cast<std::uint32_t>(be(b, 3, 4)));
  }
  const std::size_t end = b.size() >= 8 ? std::min<std::size_t>(b.size(), 8 + b[7]) : 0;
  if (end >= 12) {
    s.command_specific_valid = true;
    s.command_specific = be(b, 8, 4);
  }
  if (end >= 13) s.asc = b[12];
  if (end >= 14) s.ascq = b[13];
  if (end >= 18 && (b[15] & 0x80) != 0) {
    s.sense_key_specific_valid = true;
    std::copy_n(b.begin() + 15, 3, s.sense_key_specific);
  }
  return s;
}

// Descriptor format, SPC-4 4.5.2 table 12; the descriptors of 4.5.2.2
// (information 00h), 4.5.2.3 (command-specific 01h), 4.5.2.4 (sense-key
// specific 02h), 4.5.2.5 (stream commands 04h) and SBC's block commands
// (05h, ILI only).  The first descriptor of each type wins; a descriptor
// cut short by the buffer or the additional length is used only for the
// fields it holds whole.
Sense decode_descriptor(Span b) {
  Sense s;
  s.descriptor_format = true;
  s.deferred = (b[0] & 0x7F) == 0x73;
  s.key = static_cast<SenseKey>(b[1] & 0x0F);
  if (b.size() >= 3) s.asc = b[2];
  if (b.size() >= 4) s.ascq = b[3];
  if (b.size() < 8) return s;
  const std::size_t end = std::min<std::size_t>(b.size(), 8 + b[7]);
  bool seen_info = false, seen_csi = false, seen_sks = false, seen_stream = false;
  std::size_t at = 8;
  while (at + 2 <= end) {
    const std::uint8_t type = b[at];
    const std::size_t declared = 2 + std::size_t{b[at + 1]};
    const std::size_t avail = std::min(declared, end - at);
    const Span d = b.subspan(at, avail);
    switch (type) {
      case 0x00:  // INFORMATION: byte 2 b7 VALID, bytes 4-11
        if (!seen_info && d.size() >= 12) {
          seen_info = true;
          s.information_valid = (d[2] & 0x80) != 0;
          s.information = static_cast<std::int64_t>(be(d, 4, 8));
        }
        break;
      case 0x01:  // COMMAND-SPECIFIC INFORMATION: bytes 4-11
        if (!seen_csi && d.size() >= 12) {
          seen_csi = true;
          s.command_specific_valid = true;
          s.command_specific = be(d, 4, 8);
        }
        break;
      case 0x02:  // SENSE KEY SPECIFIC: bytes 4-6, SKSV = byte 4 b7
        if (!seen_sks && d.size() >= 7) {
          seen_sks = true;
          s.sense_key_specific_valid = (d[4] & 0x80) != 0;
          if (s.sense_key_specific_valid) std::copy_n(d.begin() + 4, 3, s.sense_key_specific);
        }
        break;
      case 0x04:  // stream commands: byte 3 FILEMARK b7, EOM b6, ILI b5
        if (!seen_stream && d.size() >= 4) {
          seen_stream = true;
          s.filemark = (d[3] & 0x80) != 0;
          s.eom = (d[3] & 0x40) != 0;
          s.ili = s.ili || (d[3] & 0x20) != 0;
        }
        break;
      case 0x05:  // block commands (SBC-3 4.18.2): byte 3 ILI b5
        if (d.size() >= 4 && (d[3] & 0x20) != 0) s.ili = true;
        break;
      default:
        break;
    }
    at += declared;  // past the declared length even when cut short: the loop ends
  }
  return s;
}

std::string sense_key_name(SenseKey k) {
  char buf[80];
  sg_get_sense_key_str(static_cast<int>(k), sizeof buf, buf);
  return buf;
}

std::string asc_name(std::uint8_t asc, std::uint8_t ascq) {
  char buf[160];
  sg_get_asc_ascq_str(asc, ascq, sizeof buf, buf);
  std::string_view s(buf);
  // sg_lib decorates known codes for its own multi-line output.
  constexpr std::string_view kPrefix = "Additional sense: ";
  if (s.substr(0, kPrefix.size()) == kPrefix) s.remove_prefix(kPrefix.size());
  return std::string(s);
}

std::string status_name(Status st) {
  char buf[80];
  sg_get_scsi_status_str(static_cast<int>(st), sizeof buf, buf);
  return buf;
}

// " [FILEMARK EOM ILI] info=-412 csi=0x5 sks=80 00 02": the facts a log
// reader needs beyond the key and ASC, only those present.
std::string details(const Sense& s) {
  std::string out;
  if (s.filemark || s.eom || s.ili) {
    out += " [";
    std::string bits;
    if (s.filemark) bits += "FILEMARK ";
    if (s.eom) bits += "EOM ";
    if (s.ili) bits += "ILI ";
    bits.pop_back();
    out += bits + "]";
  }
  if (s.information_valid) out += " info=" + std::to_string(s.information);
  if (s.command_specific_valid && s.command_specific != 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " csi=0x%llx",
                  static_cast<unsigned long long>(s.command_specific));
    out += buf;
  }
  if (s.sense_key_specific_valid) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " sks=%02x %02x %02x", s.sense_key_specific[0],
                  s.sense_key_specific[1], s.sense_key_specific[2]);
    out += buf;
  }
  return out;
}

}  // namespace

std::optional<Sense> decode_sense(std::span<const std::uint8_t> buf) {
  if (buf.empty()) return std::nullopt;
  switch (buf[0] & 0x7F) {
    case 0x70:
    case 0x71:
      if (buf.size() < 3) return std::nullopt;  // no sense key
      return decode_fixed(buf);
    case 0x72:
    case 0x73:
      if (buf.size() < 2) return std::nullopt;
      return decode_descriptor(buf);
    default:
      return std::nullopt;
  }
}

std::string Sense::describe() const {
  std::string out = deferred ? "deferred: " : "";
  out += sense_key_name(key) + ": " + asc_name(asc, ascq);
  return out + details(*this);
}

std::string describe_result(const Result& r) {
  if (!r.transport_error.empty()) return "transport error: " + r.transport_error;
  const std::optional<Sense> s = decode_sense(r.sense);
  if (!s) {
    if (r.status == Status::kCheckCondition) return status_name(r.status) + " (no sense data)";
    return status_name(r.status);
  }
  std::string key = sense_key_name(s->key);
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  std::string what = asc_name(s->asc, s->ascq);
  if (!what.empty()) what[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(what[0])));
  char code[8];
  std::snprintf(code, sizeof code, "%02X/%02X", s->asc, s->ascq);
  std::string out;
  if (r.status != Status::kCheckCondition) out = status_name(r.status) + ", ";
  if (s->deferred) out += "deferred ";
  return out + key + " " + code + " " + what + details(*s);
}

}  // namespace scsi
