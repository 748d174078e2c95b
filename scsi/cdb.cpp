// CDB builders (see cdb.h): every CDB starts zeroed, so reserved fields,
// CONTROL and fields this project never sets stay 0.

#include "scsi/cdb.h"

#include <cstddef>

#include "scsi/big_endian.h"

namespace scsi::cdb {
namespace {

Bytes make(std::size_t size, std::uint8_t opcode) {
  Bytes c(size, 0);
  c[0] = opcode;
  return c;
}

std::uint8_t bit(bool b, int n) { return b ? static_cast<std::uint8_t>(1u << n) : 0; }

}  // namespace

// ---- SPC-4 ---------------------------------------------------------------

Bytes inquiry(bool evpd, std::uint8_t page, std::uint16_t alloc) {
  if (!evpd && page != 0) return {};
  Bytes c = make(6, 0x12);
  c[1] = bit(evpd, 0);
  c[2] = page;
  put_be(c, 3, 2, alloc);
  return c;
}

Bytes test_unit_ready() { return make(6, 0x00); }

Bytes request_sense(std::uint8_t alloc, bool descriptor_format) {
  Bytes c = make(6, 0x03);
  c[1] = bit(descriptor_format, 0);
  c[4] = alloc;
  return c;
}

Bytes report_luns(std::uint8_t select_report, std::uint32_t alloc) {
  Bytes c = make(12, 0xA0);
  c[2] = select_report;
  put_be(c, 6, 4, alloc);
  return c;
}

Bytes mode_sense6(bool dbd, std::uint8_t page_control, std::uint8_t page, std::uint8_t subpage,
                  std::uint8_t alloc) {
  if (page_control > 3 || page > 0x3F) return {};
  Bytes c = make(6, 0x1A);
  c[1] = bit(dbd, 3);
  c[2] = static_cast<std::uint8_t>(page_control << 6 | page);
  c[3] = subpage;
  c[4] = alloc;
  return c;
}

Bytes mode_sense10(bool llbaa, bool dbd, std::uint8_t page_control, std::uint8_t page,
                   std::uint8_t subpage, std::uint16_t alloc) {
  if (page_control > 3 || page > 0x3F) return {};
  Bytes c = make(10, 0x5A);
  c[1] = bit(llbaa, 4) | bit(dbd, 3);
  c[2] = static_cast<std::uint8_t>(page_control << 6 | page);
  c[3] = subpage;
  put_be(c, 7, 2, alloc);
  return c;
}

Bytes mode_select6(bool pf, bool sp, std::uint8_t length) {
  Bytes c = make(6, 0x15);
  c[1] = bit(pf, 4) | bit(sp, 0);
  c[4] = length;
  return c;
}

Bytes mode_select10(bool pf, bool sp, std::uint16_t length) {
  Bytes c = make(10, 0x55);
  c[1] = bit(pf, 4) | bit(sp, 0);
  put_be(c, 7, 2, length);
  return c;
}

Bytes prevent_allow_medium_removal(bool prevent) {
  Bytes c = make(6, 0x1E);
  c[4] = bit(prevent, 0);
  return c;
}

Bytes log_sense(std::uint8_t pc, std::uint8_t page, std::uint8_t subpage, std::uint16_t pointer,
                std::uint16_t alloc) {
  if (pc > 3 || page > 0x3F) return {};
  Bytes c = make(10, 0x4D);
  c[2] = static_cast<std::uint8_t>(pc << 6 | page);
  c[3] = subpage;
  c[5] = static_cast<std::uint8_t>(pointer >> 8);
  c[6] = static_cast<std::uint8_t>(pointer);
  c[7] = static_cast<std::uint8_t>(alloc >> 8);
  c[8] = static_cast<std::uint8_t>(alloc);
  return c;
}

// ---- SBC-3 ---------------------------------------------------------------

Bytes read_capacity16(std::uint32_t alloc) {
  Bytes c = make(16, 0x9E);
  c[1] = 0x10;  // SERVICE ACTION: READ CAPACITY(16)
  put_be(c, 10, 4, alloc);
  return c;
}

namespace {
Bytes rw16(std::uint8_t opcode, std::uint64_t lba, std::uint32_t blocks, bool fua) {
  Bytes c = make(16, opcode);
  c[1] = bit(fua, 3);
  put_be(c, 2, 8, lba);
  put_be(c, 10, 4, blocks);
  return c;
}
}  // namespace

Bytes read16(std::uint64_t lba, std::uint32_t blocks, bool fua) {
  return rw16(0x88, lba, blocks, fua);
}

Bytes write16(std::uint64_t lba, std::uint32_t blocks, bool fua) {
  return rw16(0x8A, lba, blocks, fua);
}

Bytes synchronize_cache10(std::uint32_t lba, std::uint16_t blocks, bool immed) {
  Bytes c = make(10, 0x35);
  c[1] = bit(immed, 1);
  put_be(c, 2, 4, lba);
  put_be(c, 7, 2, blocks);
  return c;
}

Bytes synchronize_cache16(std::uint64_t lba, std::uint32_t blocks, bool immed) {
  Bytes c = make(16, 0x91);
  c[1] = bit(immed, 1);
  put_be(c, 2, 8, lba);
  put_be(c, 10, 4, blocks);
  return c;
}

// ---- SSC-4 ---------------------------------------------------------------

Bytes read6(bool fixed, bool sili, std::uint32_t length) {
  if (length > kMax24 || (fixed && sili)) return {};
  Bytes c = make(6, 0x08);
  c[1] = bit(sili, 1) | bit(fixed, 0);
  put_be(c, 2, 3, length);
  return c;
}

Bytes write6(bool fixed, std::uint32_t length) {
  if (length > kMax24) return {};
  Bytes c = make(6, 0x0A);
  c[1] = bit(fixed, 0);
  put_be(c, 2, 3, length);
  return c;
}

Bytes write_filemarks6(std::uint32_t count, bool immed) {
  if (count > kMax24) return {};
  Bytes c = make(6, 0x10);
  c[1] = bit(immed, 0);
  put_be(c, 2, 3, count);
  return c;
}

Bytes space6(SpaceCode code, std::int32_t count) {
  if (count < -0x800000 || count > 0x7FFFFF) return {};
  Bytes c = make(6, 0x11);
  c[1] = static_cast<std::uint8_t>(code) & 0x0F;
  put_be(c, 2, 3, static_cast<std::uint32_t>(count));  // two's complement, low 24 bits
  return c;
}

Bytes space16(SpaceCode code, std::int64_t count, std::uint16_t parameter_length) {
  Bytes c = make(16, 0x91);
  c[1] = static_cast<std::uint8_t>(code) & 0x0F;
  put_be(c, 4, 8, static_cast<std::uint64_t>(count));
  put_be(c, 12, 2, parameter_length);
  return c;
}

Bytes locate10(std::uint32_t block, bool bt, bool cp, std::uint8_t partition, bool immed) {
  Bytes c = make(10, 0x2B);
  c[1] = bit(bt, 2) | bit(cp, 1) | bit(immed, 0);
  put_be(c, 3, 4, block);
  c[8] = partition;
  return c;
}

Bytes locate16(std::uint64_t object, std::uint8_t dest_type, bool cp, std::uint8_t partition,
               bool immed) {
  if (dest_type > 7) return {};
  Bytes c = make(16, 0x92);
  c[1] = static_cast<std::uint8_t>(dest_type << 3) | bit(cp, 1) | bit(immed, 0);
  c[3] = partition;
  put_be(c, 4, 8, object);
  return c;
}

Bytes read_position(ReadPositionForm form, std::uint16_t alloc) {
  switch (form) {
    case ReadPositionForm::kShort:
    case ReadPositionForm::kLong:
      if (alloc != 0) return {};
      break;
    case ReadPositionForm::kExtended:
      break;
    default:
      return {};
  }
  Bytes c = make(10, 0x34);
  c[1] = static_cast<std::uint8_t>(form);
  put_be(c, 7, 2, alloc);
  return c;
}

Bytes rewind(bool immed) {
  Bytes c = make(6, 0x01);
  c[1] = bit(immed, 0);
  return c;
}

Bytes load_unload(bool load, bool hold, bool eot, bool retension, bool immed) {
  Bytes c = make(6, 0x1B);
  c[1] = bit(immed, 0);
  c[4] = bit(hold, 3) | bit(eot, 2) | bit(retension, 1) | bit(load, 0);
  return c;
}

Bytes read_block_limits() { return make(6, 0x05); }

Bytes erase6(bool long_erase, bool immed) {
  Bytes c = make(6, 0x19);
  c[1] = bit(immed, 1) | bit(long_erase, 0);
  return c;
}

// ---- SMC-3 ---------------------------------------------------------------

Bytes read_element_status(bool voltag, ElementType element_type, std::uint16_t start,
                          std::uint16_t count, bool dvcid, bool curdata, std::uint32_t alloc) {
  const auto type = static_cast<std::uint8_t>(element_type);
  if (alloc > kMax24 || type > 0x0F) return {};
  Bytes c = make(12, 0xB8);
  c[1] = bit(voltag, 4) | type;
  put_be(c, 2, 2, start);
  put_be(c, 4, 2, count);
  c[6] = bit(curdata, 1) | bit(dvcid, 0);
  put_be(c, 7, 3, alloc);
  return c;
}

Bytes move_medium(std::uint16_t transport, std::uint16_t source, std::uint16_t destination,
                  bool invert) {
  Bytes c = make(12, 0xA5);
  put_be(c, 2, 2, transport);
  put_be(c, 4, 2, source);
  put_be(c, 6, 2, destination);
  c[10] = bit(invert, 0);
  return c;
}

Bytes exchange_medium(std::uint16_t transport, std::uint16_t source, std::uint16_t dest1,
                      std::uint16_t dest2, bool inv1, bool inv2) {
  Bytes c = make(12, 0xA6);
  put_be(c, 2, 2, transport);
  put_be(c, 4, 2, source);
  put_be(c, 6, 2, dest1);
  put_be(c, 8, 2, dest2);
  c[10] = bit(inv2, 1) | bit(inv1, 0);
  return c;
}

Bytes initialize_element_status() { return make(6, 0x07); }

Bytes initialize_element_status_with_range(std::uint16_t start, std::uint16_t count) {
  Bytes c = make(10, 0x37);
  c[1] = 0x01;  // RANGE
  put_be(c, 2, 2, start);
  put_be(c, 6, 2, count);
  return c;
}

Bytes position_to_element(std::uint16_t transport, std::uint16_t destination, bool invert) {
  Bytes c = make(10, 0x2B);
  put_be(c, 2, 2, transport);
  put_be(c, 4, 2, destination);
  c[8] = bit(invert, 0);
  return c;
}

}  // namespace scsi::cdb
