#include "scsi/emu/logical_unit.h"

#include <openssl/evp.h>

#include <algorithm>

namespace scsi::emu {

namespace {

// IEEE company id for the NAA designators.  AC-DE-48 is the OUI that IEEE
// 802 reserves for examples and private use, so it collides with no
// vendor's registered identifiers.
constexpr std::uint32_t kCompanyId = 0xACDE48;

constexpr std::uint8_t kInquiry = 0x12;
constexpr std::uint8_t kRequestSense = 0x03;
constexpr std::uint8_t kReportLuns = 0xA0;
constexpr std::uint8_t kTestUnitReady = 0x00;

}  // namespace

UnitIdentity make_identity(std::uint8_t peripheral_type, const std::string& product,
                           std::span<const std::uint8_t> installation_id, const std::string& name) {
  // SHA-256(installation id | 0 | name): 100 bits of it make the vendor
  // specific parts of the NAA designator, 5 bytes the serial.
  std::vector<std::uint8_t> input(installation_id.begin(), installation_id.end());
  input.push_back(0);
  input.insert(input.end(), name.begin(), name.end());
  std::uint8_t h[32];
  unsigned int n = 0;
  EVP_Digest(input.data(), input.size(), h, &n, EVP_sha256(), nullptr);

  UnitIdentity id;
  id.peripheral_type = peripheral_type;
  id.removable = peripheral_type == 0x01 || peripheral_type == 0x08;
  id.product = product;
  id.naa.resize(16);
  // NAA (4 bits) = 6 | company id (24) | vendor specific id (36) | extension (64)
  id.naa[0] = static_cast<std::uint8_t>(0x60 | ((kCompanyId >> 20) & 0x0F));
  id.naa[1] = static_cast<std::uint8_t>(kCompanyId >> 12);
  id.naa[2] = static_cast<std::uint8_t>(kCompanyId >> 4);
  id.naa[3] = static_cast<std::uint8_t>(((kCompanyId & 0x0F) << 4) | (h[0] & 0x0F));
  std::copy(h + 1, h + 13, id.naa.begin() + 4);
  static constexpr char kHex[] = "0123456789ABCDEF";
  id.serial = "NDMPD";
  for (int i = 20; i < 25; ++i) {
    id.serial.push_back(kHex[h[i] >> 4]);
    id.serial.push_back(kHex[h[i] & 15]);
  }
  return id;
}

LogicalUnit::LogicalUnit(UnitIdentity identity) : identity_(std::move(identity)) {}

void LogicalUnit::set_unit_attention(std::uint8_t asc, std::uint8_t ascq) {
  std::lock_guard lock(mutex_);
  unit_attention_ = true;
  ua_asc_ = asc;
  ua_ascq_ = ascq;
}

void LogicalUnit::reset() {
  std::lock_guard lock(mutex_);
  reset_class();
  unit_attention_ = true;
  ua_asc_ = 0x29;
  ua_ascq_ = 0x03;
}

Result LogicalUnit::execute(std::span<const std::uint8_t> cdb,
                            std::span<const std::uint8_t> data_out,
                            std::span<std::uint8_t> data_in) {
  if (cdb.empty()) return invalid_opcode();
  const std::size_t need = cdb_length(cdb[0]);
  if (need == 0) return invalid_opcode();
  if (cdb.size() < need) return invalid_field_in_cdb(static_cast<std::uint16_t>(cdb.size()));
  std::unique_lock lock(mutex_);
  const std::uint8_t op = cdb[0];
  if (op == kInquiry) return inquiry(cdb, data_in);
  if (op == kRequestSense) return request_sense(cdb, data_in);
  if (op == kReportLuns) {
    const std::uint32_t alloc = get_be(cdb, 6, 4);
    if (alloc < 16) return invalid_field_in_cdb(6);
    Bytes r(16, 0);
    r[3] = 8;  // one LUN: 0
    return respond(r, data_in.first(std::min<std::size_t>(alloc, data_in.size())));
  }
  if (unit_attention_) {
    unit_attention_ = false;
    return sense(SenseKey::kUnitAttention, ua_asc_, ua_ascq_);
  }
  if (op == kTestUnitReady) return test_unit_ready();
  if (runs_unlocked(cdb)) lock.unlock();
  return execute_class(cdb, data_out, data_in);
}

Result LogicalUnit::inquiry(std::span<const std::uint8_t> cdb,
                            std::span<std::uint8_t> data_in) const {
  const bool evpd = cdb[1] & 0x01;
  const std::uint8_t page = cdb[2];
  const std::size_t alloc = std::min<std::size_t>(get_be(cdb, 3, 2), data_in.size());
  const std::uint8_t pdt = identity_.peripheral_type;
  if (!evpd) {
    if (page != 0) return invalid_field_in_cdb(2);
    Bytes r(36, 0);
    r[0] = pdt;
    r[1] = identity_.removable ? 0x80 : 0x00;
    r[2] = 0x06;  // SPC-4
    r[3] = 0x02;  // response data format 2
    r[4] = static_cast<std::uint8_t>(r.size() - 5);
    r[5] = identity_.third_party_copy ? 0x08 : 0x00;
    r[7] = 0x02;  // CmdQue
    put_ascii(r, 8, 8, identity_.vendor);
    put_ascii(r, 16, 16, identity_.product);
    put_ascii(r, 32, 4, identity_.revision);
    return respond(r, data_in.first(alloc));
  }
  Bytes r = {pdt, page, 0, 0};
  switch (page) {
    case 0x00: {
      std::vector<std::uint8_t> pages = {0x00, 0x80, 0x83};
      for (std::uint8_t p : extra_vpd_pages()) pages.push_back(p);
      std::sort(pages.begin(), pages.end());
      r.insert(r.end(), pages.begin(), pages.end());
      break;
    }
    case 0x80:
      r.insert(r.end(), identity_.serial.begin(), identity_.serial.end());
      break;
    case 0x83: {
      // NAA designator of the logical unit (binary), then a T10 vendor id
      // (ASCII: vendor padded to 8, then the serial).
      r.insert(r.end(), {0x01, 0x03, 0x00, static_cast<std::uint8_t>(identity_.naa.size())});
      r.insert(r.end(), identity_.naa.begin(), identity_.naa.end());
      Bytes t10(8, ' ');
      put_ascii(t10, 0, 8, identity_.vendor);
      t10.insert(t10.end(), identity_.serial.begin(), identity_.serial.end());
      r.insert(r.end(), {0x02, 0x01, 0x00, static_cast<std::uint8_t>(t10.size())});
      r.insert(r.end(), t10.begin(), t10.end());
      break;
    }
    default: {
      Bytes body = vpd_page(page);
      if (body.empty()) return invalid_field_in_cdb(2);
      r.insert(r.end(), body.begin(), body.end());
    }
  }
  put_be(r, 2, 2, r.size() - 4);
  return respond(r, data_in.first(alloc));
}

Result LogicalUnit::request_sense(std::span<const std::uint8_t> cdb,
                                  std::span<std::uint8_t> data_in) {
  if (cdb[1] & 0x01) return invalid_field_in_cdb(1, 0);  // descriptor format: not offered
  const std::size_t alloc = std::min<std::size_t>(cdb[4], data_in.size());
  Bytes s;
  if (unit_attention_) {
    unit_attention_ = false;
    s = fixed_sense({.key = SenseKey::kUnitAttention, .asc = ua_asc_, .ascq = ua_ascq_});
  } else {
    // The pollable state: a unit that is not ready says why.
    const Result tur = test_unit_ready();
    s = tur.check_condition() ? tur.sense : fixed_sense({});
  }
  return respond(s, data_in.first(alloc));
}

Bytes LogicalUnit::vpd_page(std::uint8_t) const { return {}; }

namespace {
Result field_error(std::uint8_t asc, bool in_cdb, std::uint16_t byte, int bit) {
  SenseSpec::FieldPointer fp;
  fp.in_cdb = in_cdb;
  fp.field = byte;
  if (bit >= 0) {
    fp.bit_valid = true;
    fp.bit = static_cast<std::uint8_t>(bit);
  }
  return check_condition(
      {.key = SenseKey::kIllegalRequest, .asc = asc, .ascq = 0, .field_pointer = fp});
}
}  // namespace

Result invalid_field_in_cdb(std::uint16_t byte, int bit) {
  return field_error(0x24, true, byte, bit);
}
Result invalid_field_in_parameters(std::uint16_t byte, int bit) {
  return field_error(0x26, false, byte, bit);
}
Result parameter_list_length_error() { return sense(SenseKey::kIllegalRequest, 0x1A, 0x00); }
Result invalid_opcode() { return sense(SenseKey::kIllegalRequest, 0x20, 0x00); }
Result sense(SenseKey key, std::uint8_t asc, std::uint8_t ascq) {
  return check_condition({.key = key, .asc = asc, .ascq = ascq});
}

void put_ascii(Bytes& b, std::size_t at, std::size_t n, const std::string& s) {
  for (std::size_t i = 0; i < n; ++i)
    b[at + i] = i < s.size() ? static_cast<std::uint8_t>(s[i]) : ' ';
}

std::size_t cdb_length(std::uint8_t opcode) {
  switch (opcode >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 0;
  }
}

Result EmulatedDevice::execute(const Command& command) {
  std::span<const std::uint8_t> out;
  std::span<std::uint8_t> in;
  if (command.direction == Direction::kOut) out = command.data_out;
  if (command.direction == Direction::kIn) in = command.data_in;
  return unit_->execute(command.cdb, out, in);
}

}  // namespace scsi::emu
