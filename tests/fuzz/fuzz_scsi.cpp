// Fuzz target: the pure SCSI codecs.  The first byte picks what the rest
// is fed to: sense decoding (checked against libsgutils2's own reading of
// key and ASC/ASCQ), one of the data-in parsers, or the CDB builders (the
// bytes as arguments).  Beyond "no crash, no sanitizer report", each
// parse must account for no more bytes than it was given, and each CDB
// must carry its arguments back out or be empty exactly when they cannot
// fit.  A violated invariant aborts, which libFuzzer reports as a crash.

#include <scsi/sg_lib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "scsi/big_endian.h"
#include "scsi/cdb.h"
#include "scsi/parse.h"
#include "scsi/sense.h"

namespace {

using scsi::be;

using scsi::Bytes;
using Span = std::span<const std::uint8_t>;

void check(bool ok) {
  if (!ok) std::abort();
}

// Pulls little pieces of argument out of the input; zeros once it runs dry.
class Args {
 public:
  explicit Args(Span in) : in_(in) {}
  std::uint64_t take(std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = v << 8 | (at_ < in_.size() ? in_[at_++] : 0);
    return v;
  }
  bool flag() { return (take(1) & 1) != 0; }

 private:
  Span in_;
  std::size_t at_ = 0;
};

void fuzz_sense(Span b) {
  const auto s = scsi::decode_sense(b);
  scsi::Result r;
  r.status = scsi::Status::kCheckCondition;
  r.sense.assign(b.begin(), b.end());
  (void)scsi::describe_result(r);
  if (!s) return;
  (void)s->describe();
  sg_scsi_sense_hdr h{};
  check(sg_scsi_normalize_sense(b.data(), static_cast<int>(b.size()), &h));
  check(static_cast<int>(s->key) == h.sense_key && s->asc == h.asc && s->ascq == h.ascq);
  if (!s->descriptor_format) {
    check(!s->information_valid || b.size() >= 7);
    check(!s->command_specific_valid || b.size() >= 12);
    check(!s->sense_key_specific_valid || b.size() >= 18);
  } else {
    check(!s->information_valid || b.size() >= 20);
    check(!s->sense_key_specific_valid || b.size() >= 15);
  }
}

void fuzz_vpd(unsigned which, Span b) {
  namespace p = scsi::parse;
  switch (which) {
    case 0:
      if (auto v = p::supported_vpd_pages(b)) check(4 + v->size() <= b.size());
      break;
    case 1:
      if (auto v = p::unit_serial_number(b)) check(4 + v->size() <= b.size());
      break;
    case 2: {
      const auto ids = p::device_identification(b);
      if (!ids) break;
      std::size_t used = 4;
      for (const auto& d : ids->designators) used += 4 + d.designator.size();
      check(used <= b.size());
      if (auto best = p::preferred_lu_designator(*ids)) check(best->association == 0);
      p::StandardInquiry q;
      const scsi::Identity id = p::identity_from(q, std::nullopt, ids);
      check(id.designator.size() <= 255);
      break;
    }
    case 3: {
      const auto t = p::third_party_copy(b);
      if (!t) break;
      std::size_t used = 4;
      for (const auto& d : t->descriptors) used += 4 + d.data.size();
      check(used <= b.size());
      break;
    }
    default:
      if (!b.empty()) (void)p::vpd_b0(b, b[0] & 0x1F);
      break;
  }
}

void fuzz_mode(bool ten, Span b) {
  namespace p = scsi::parse;
  const auto m = ten ? p::mode_sense10(b) : p::mode_sense6(b);
  if (!m) return;
  std::size_t used = ten ? 8 : 4;
  used += m->block_descriptors.size() * (m->long_lba ? 16 : 8);
  for (const auto& page : m->pages) {
    used += page.bytes.size();
    check(!page.bytes.empty() && (page.bytes[0] & 0x3F) == page.page_code);
    if (auto e = p::element_address_assignment(page)) check(page.bytes.size() >= 18);
    if (auto c = p::device_capabilities(page)) {
      for (std::uint8_t from = 0; from <= 5; ++from) {
        for (std::uint8_t to = 0; to <= 5; ++to) (void)c->can_move(from, to);
      }
    }
  }
  check(used <= b.size());
}

void fuzz_element_status(Span b) {
  const auto s = scsi::parse::read_element_status(b);
  if (b.size() < 8) check(!s);
  if (!s) return;
  std::size_t used = 8;
  for (const auto& page : s->pages) {
    used += 8;
    check(page.element_type >= 1 && page.element_type <= 4);
    for (const auto& e : page.descriptors) {
      used += 12;
      check(page.descriptor_length >= 12);
      if (e.primary_tag) check(e.primary_tag->identifier.size() <= 32);
      if (e.alternate_tag) check(e.alternate_tag->identifier.size() <= 32);
      if (e.identifier) check(e.identifier->identifier.size() <= page.descriptor_length);
    }
  }
  check(used <= b.size());
}

void fuzz_cdbs(Span in) {
  namespace c = scsi::cdb;
  Args a(in);
  {
    const bool fixed = a.flag(), sili = a.flag();
    const auto len = static_cast<std::uint32_t>(a.take(4));
    const Bytes r = c::read6(fixed, sili, len);
    check(r.empty() == (len > c::kMax24 || (fixed && sili)));
    if (!r.empty()) check(r.size() == 6 && r[0] == 0x08 && be(r, 2, 3) == len);
  }
  {
    const auto count = static_cast<std::int32_t>(static_cast<std::uint32_t>(a.take(4)));
    const Bytes r = c::space6(c::SpaceCode::kFilemarks, count);
    check(r.empty() == (count < -0x800000 || count > 0x7FFFFF));
    if (!r.empty()) {
      // Sign-extend the 24-bit field back.
      auto back = static_cast<std::int32_t>(be(r, 2, 3) << 8) >> 8;
      check(back == count);
    }
  }
  {
    const auto count = static_cast<std::int64_t>(a.take(8));
    const Bytes r = c::space16(c::SpaceCode::kBlocks, count);
    check(r.size() == 16 && static_cast<std::int64_t>(be(r, 4, 8)) == count);
  }
  {
    const auto alloc = static_cast<std::uint32_t>(a.take(4));
    const auto type = static_cast<std::uint8_t>(a.take(1));
    const auto start = static_cast<std::uint16_t>(a.take(2));
    const Bytes r = c::read_element_status(a.flag(), static_cast<c::ElementType>(type), start, 1,
                                           a.flag(), a.flag(), alloc);
    check(r.empty() == (alloc > c::kMax24 || type > 0x0F));
    if (!r.empty()) check(be(r, 7, 3) == alloc && be(r, 2, 2) == start && (r[1] & 0x0F) == type);
  }
  {
    const auto pc = static_cast<std::uint8_t>(a.take(1));
    const auto page = static_cast<std::uint8_t>(a.take(1));
    const Bytes r = c::mode_sense10(a.flag(), a.flag(), pc, page, 0, 0xFFFF);
    check(r.empty() == (pc > 3 || page > 0x3F));
    if (!r.empty()) check(r[2] == (pc << 6 | page));
  }
  {
    const std::uint64_t lba = a.take(8);
    const auto blocks = static_cast<std::uint32_t>(a.take(4));
    const Bytes r = c::write16(lba, blocks, a.flag());
    check(be(r, 2, 8) == lba && be(r, 10, 4) == blocks);
  }
  {
    const auto dest = static_cast<std::uint8_t>(a.take(1));
    const std::uint64_t object = a.take(8);
    const Bytes r = c::locate16(object, dest, a.flag(), 0, a.flag());
    check(r.empty() == (dest > 7));
    if (!r.empty()) check(be(r, 4, 8) == object);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace p = scsi::parse;
  if (size == 0) return 0;
  const Span b(data + 1, size - 1);
  fuzz_sense(b);  // every input is also a sense buffer
  switch (data[0] % 17) {
    case 0:
      break;  // sense only
    case 1:
      if (auto q = p::standard_inquiry(b)) {
        check(b.size() >= 8 && q->vendor.size() <= 8 && q->product.size() <= 16 &&
              q->revision.size() <= 4);
      }
      break;
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
      fuzz_vpd(data[0] % 17 - 2u, b);
      break;
    case 7:
      if (auto r = p::report_luns(b)) {
        check(8 + 8 * r->luns.size() <= b.size() && 8 * r->luns.size() <= r->list_length);
        check(r->truncated == (r->list_length > b.size() - 8));
      }
      break;
    case 8:
    case 9:
      fuzz_mode(data[0] % 17 == 9, b);
      break;
    case 10:
      check(p::read_capacity16(b).has_value() == (b.size() >= 12));
      break;
    case 11:
      check(p::read_position_short(b).has_value() == (b.size() >= 20));
      break;
    case 12:
      check(p::read_position_long(b).has_value() == (b.size() >= 32));
      break;
    case 13:
      if (p::read_position_extended(b)) check(b.size() >= 32);
      break;
    case 14:
      check(p::read_block_limits(b).has_value() == (b.size() >= 6));
      break;
    case 15:
      fuzz_element_status(b);
      break;
    default:
      fuzz_cdbs(b);
      break;
  }
  return 0;
}
