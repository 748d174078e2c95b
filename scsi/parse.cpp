// Data-in parsers (see parse.h).  Every access goes through a span whose
// size has been checked first; lengths the device reports only ever shrink
// what is read, never grow it.

#include "scsi/parse.h"

#include <algorithm>
#include <cstddef>

#include "scsi/big_endian.h"

namespace scsi::parse {
namespace {

bool padding(std::uint8_t c) { return c == ' ' || c == '\0'; }

// ASCII fields are left-aligned and space padded; some devices pad with NULs
// or (serial numbers) on the left.
std::string trimmed(Span b) {
  std::size_t first = 0, last = b.size();
  while (first < last && padding(b[first])) ++first;
  while (last > first && padding(b[last - 1])) --last;
  return std::string(b.begin() + static_cast<std::ptrdiff_t>(first),
                     b.begin() + static_cast<std::ptrdiff_t>(last));
}

std::string trimmed_right(Span b) {
  std::size_t last = b.size();
  while (last > 0 && padding(b[last - 1])) --last;
  return std::string(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(last));
}

// Bytes [from, to) of `b`, clamped to its size.
Span clamp(Span b, std::size_t from, std::size_t to) {
  if (from >= b.size() || to <= from) return {};
  return b.subspan(from, std::min(to, b.size()) - from);
}

// The VPD page header (SPC-4 "VPD page format"): the page's bytes up to
// PAGE LENGTH, clamped; nullopt if it is not page `code`.
struct Vpd {
  Span page;  // whole page, header included
  bool truncated = false;
};
std::optional<Vpd> vpd(Span data, std::uint8_t code) {
  if (data.size() < 4 || data[1] != code) return std::nullopt;
  const std::size_t declared = 4 + std::size_t{be16(data, 2)};
  return Vpd{data.first(std::min(declared, data.size())), declared > data.size()};
}

}  // namespace

// ---- INQUIRY ------------------------------------------------------------------

// SPC-4 "Standard INQUIRY data" (INQUIRY command clause).
std::optional<StandardInquiry> standard_inquiry(Span data) {
  if (data.size() < 5) return std::nullopt;
  const Span d = data.first(std::min<std::size_t>(data.size(), 5 + std::size_t{data[4]}));
  if (d.size() < 8) return std::nullopt;
  StandardInquiry q;
  q.peripheral_qualifier = static_cast<std::uint8_t>(d[0] >> 5);
  q.peripheral_type = d[0] & 0x1F;
  q.removable = (d[1] & 0x80) != 0;
  q.version = d[2];
  q.hisup = (d[3] & 0x10) != 0;
  q.response_data_format = d[3] & 0x0F;
  q.sccs = (d[5] & 0x80) != 0;
  q.third_party_copy = (d[5] & 0x08) != 0;
  q.protect = (d[5] & 0x01) != 0;
  q.mchngr = (d[6] & 0x08) != 0;
  q.cmdque = (d[7] & 0x02) != 0;
  q.vendor = trimmed(clamp(d, 8, 16));
  q.product = trimmed(clamp(d, 16, 32));
  q.revision = trimmed(clamp(d, 32, 36));
  return q;
}

// ---- VPD ----------------------------------------------------------------------

// SPC-4 "Supported VPD Pages VPD page".
std::optional<std::vector<std::uint8_t>> supported_vpd_pages(Span data) {
  const auto v = vpd(data, 0x00);
  if (!v) return std::nullopt;
  return std::vector<std::uint8_t>(v->page.begin() + 4, v->page.end());
}

// SPC-4 "Unit Serial Number VPD page".
std::optional<std::string> unit_serial_number(Span data) {
  const auto v = vpd(data, 0x80);
  if (!v) return std::nullopt;
  return trimmed(v->page.subspan(4));
}

// SPC-4 "Device Identification VPD page" and "Designation descriptor".
std::optional<DeviceIdentification> device_identification(Span data) {
  const auto v = vpd(data, 0x83);
  if (!v) return std::nullopt;
  const Span p = v->page;
  DeviceIdentification ids;
  ids.truncated = v->truncated;
  std::size_t at = 4;
  while (at < p.size()) {
    if (at + 4 > p.size() || at + 4 + std::size_t{p[at + 3]} > p.size()) {
      ids.truncated = true;
      break;
    }
    Designator d;
    d.protocol_identifier = static_cast<std::uint8_t>(p[at] >> 4);
    d.code_set = p[at] & 0x0F;
    d.piv = (p[at + 1] & 0x80) != 0;
    d.association = (p[at + 1] >> 4) & 0x03;
    d.designator_type = p[at + 1] & 0x0F;
    const Span body = p.subspan(at + 4, p[at + 3]);
    d.designator.assign(body.begin(), body.end());
    ids.designators.push_back(std::move(d));
    at += 4 + std::size_t{p[at + 3]};
  }
  return ids;
}

std::optional<Designator> preferred_lu_designator(const DeviceIdentification& ids) {
  auto rank = [](std::uint8_t type) -> int {
    switch (type) {
      case kDesignatorNaa:
        return 0;
      case kDesignatorEui64:
        return 1;
      case kDesignatorT10VendorId:
        return 2;
      case kDesignatorVendorSpecific:
        return 3;
      default:
        return -1;
    }
  };
  const Designator* best = nullptr;
  for (const Designator& d : ids.designators) {
    if (d.association != 0 || rank(d.designator_type) < 0 || d.designator.empty()) continue;
    if (best == nullptr || rank(d.designator_type) < rank(best->designator_type) ||
        (d.designator_type == kDesignatorNaa && best->designator_type == kDesignatorNaa &&
         d.designator.size() > best->designator.size())) {
      best = &d;
    }
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}

Identity identity_from(const StandardInquiry& inquiry, const std::optional<std::string>& serial,
                       const std::optional<DeviceIdentification>& ids) {
  Identity id;
  id.peripheral_type = inquiry.peripheral_type;
  id.vendor = inquiry.vendor;
  id.product = inquiry.product;
  id.revision = inquiry.revision;
  if (serial) id.serial = *serial;
  if (ids) {
    if (auto d = preferred_lu_designator(*ids)) {
      id.designator = std::move(d->designator);
      id.designator_type = d->designator_type;
    }
  }
  return id;
}

// SPC-4 "Third-party Copy VPD page" (descriptor header: TYPE, LENGTH).
std::optional<ThirdPartyCopy> third_party_copy(Span data) {
  const auto v = vpd(data, 0x8F);
  if (!v) return std::nullopt;
  const Span p = v->page;
  ThirdPartyCopy t;
  t.truncated = v->truncated;
  std::size_t at = 4;
  while (at < p.size()) {
    if (at + 4 > p.size() || at + 4 + std::size_t{be16(p, at + 2)} > p.size()) {
      t.truncated = true;
      break;
    }
    const std::size_t len = be16(p, at + 2);
    const Span body = p.subspan(at + 4, len);
    t.descriptors.push_back({be16(p, at), Bytes(body.begin(), body.end())});
    at += 4 + len;
  }
  return t;
}

// SBC-3 "Block Limits VPD page".
std::optional<BlockLimits> block_limits(Span data) {
  const auto v = vpd(data, 0xB0);
  if (!v) return std::nullopt;
  const Span p = v->page;
  BlockLimits b;
  const std::size_t n = p.size();
  if (n > 4) b.wsnz = (p[4] & 0x01) != 0;
  if (n > 5) b.max_compare_and_write_length = p[5];
  if (n >= 8) b.optimal_transfer_granularity = be16(p, 6);
  if (n >= 12) b.max_transfer_length = be32(p, 8);
  if (n >= 16) b.optimal_transfer_length = be32(p, 12);
  if (n >= 20) b.max_prefetch_length = be32(p, 16);
  if (n >= 24) b.max_unmap_lba_count = be32(p, 20);
  if (n >= 28) b.max_unmap_descriptor_count = be32(p, 24);
  if (n >= 32) b.optimal_unmap_granularity = be32(p, 28);
  if (n >= 36) {
    b.unmap_granularity_alignment_valid = (p[32] & 0x80) != 0;
    b.unmap_granularity_alignment = be32(p, 32) & 0x7FFFFFFF;
  }
  if (n >= 44) b.max_write_same_length = be64(p, 36);
  return b;
}

// SSC-4 "Sequential-access device capabilities VPD page".
std::optional<SequentialAccessCapabilities> sequential_access_capabilities(Span data) {
  const auto v = vpd(data, 0xB0);
  if (!v || v->page.size() < 5) return std::nullopt;
  SequentialAccessCapabilities c;
  c.flags = v->page[4];
  c.worm = (c.flags & 0x01) != 0;
  return c;
}

std::optional<VpdB0> vpd_b0(Span data, std::uint8_t peripheral_type) {
  switch (peripheral_type) {
    case 0x00:
      if (auto b = block_limits(data)) return VpdB0{*b};
      return std::nullopt;
    case 0x01:
      if (auto c = sequential_access_capabilities(data)) return VpdB0{*c};
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

// ---- REPORT LUNS ---------------------------------------------------------------

// SPC-4 "REPORT LUNS parameter data format".
std::optional<ReportLuns> report_luns(Span data) {
  if (data.size() < 8) return std::nullopt;
  ReportLuns r;
  r.list_length = be32(data, 0);
  if (r.list_length % 8 != 0) return std::nullopt;
  const std::size_t avail = data.size() - 8;
  const std::size_t usable = std::min<std::size_t>(r.list_length, avail) / 8 * 8;
  r.truncated = r.list_length > avail;
  for (std::size_t at = 8; at < 8 + usable; at += 8) r.luns.push_back(be64(data, at));
  return r;
}

// ---- MODE SENSE ----------------------------------------------------------------

const ModePage* ModeParameters::find(std::uint8_t page_code, std::uint8_t subpage) const {
  for (const ModePage& p : pages) {
    if (p.page_code == page_code && p.subpage == subpage) return &p;
  }
  return nullptr;
}

namespace {

void decode_device_specific(ModeParameters& m) {
  m.write_protected = (m.device_specific & 0x80) != 0;
  m.buffered_mode = (m.device_specific >> 4) & 0x07;
  m.speed = m.device_specific & 0x0F;
}

// The block descriptors and mode pages that follow the header, within
// `d` (the mode data clamped to MODE DATA LENGTH).  SPC-4 "Mode parameter
// list format", "Mode page format and page codes".
bool descriptors_and_pages(Span d, std::size_t header, ModeParameters& m) {
  const std::size_t bd_size = m.long_lba ? 16 : 8;
  if (m.block_descriptor_length % bd_size != 0) return false;
  const std::size_t bd_end = header + m.block_descriptor_length;
  for (std::size_t at = header; at + bd_size <= std::min(bd_end, d.size()); at += bd_size) {
    BlockDescriptor b;
    if (m.long_lba) {
      b.number_of_blocks = be64(d, at);
      b.block_length = be32(d, at + 12);
    } else {
      b.density_code = d[at];
      b.number_of_blocks = be24(d, at + 1);
      b.block_length = be24(d, at + 5);
    }
    m.block_descriptors.push_back(b);
  }
  if (bd_end > d.size()) {
    m.truncated = true;
    return true;
  }
  std::size_t at = bd_end;
  while (at < d.size()) {
    const bool spf = (d[at] & 0x40) != 0;
    const std::size_t head = spf ? 4 : 2;
    if (at + head > d.size()) {
      m.truncated = true;
      break;
    }
    const std::size_t size = head + (spf ? std::size_t{be16(d, at + 2)} : std::size_t{d[at + 1]});
    if (at + size > d.size()) {
      m.truncated = true;
      break;
    }
    ModePage p;
    p.ps = (d[at] & 0x80) != 0;
    p.spf = spf;
    p.page_code = d[at] & 0x3F;
    p.subpage = spf ? d[at + 1] : 0;
    const Span body = d.subspan(at, size);
    p.bytes.assign(body.begin(), body.end());
    m.pages.push_back(std::move(p));
    at += size;
  }
  return true;
}

}  // namespace

// SPC-4 "Mode parameter header formats" (MODE SENSE(6) header).
std::optional<ModeParameters> mode_sense6(Span data) {
  if (data.size() < 4) return std::nullopt;
  ModeParameters m;
  m.mode_data_length = data[0];
  const std::size_t total = 1 + std::size_t{m.mode_data_length};
  if (total < 4) return std::nullopt;
  m.truncated = total > data.size();
  const Span d = data.first(std::min(total, data.size()));
  m.medium_type = d[1];
  m.device_specific = d[2];
  decode_device_specific(m);
  m.block_descriptor_length = d[3];
  if (!descriptors_and_pages(d, 4, m)) return std::nullopt;
  return m;
}

// SPC-4 "Mode parameter header formats" (MODE SENSE(10) header).
std::optional<ModeParameters> mode_sense10(Span data) {
  if (data.size() < 8) return std::nullopt;
  ModeParameters m;
  m.mode_data_length = be16(data, 0);
  const std::size_t total = 2 + std::size_t{m.mode_data_length};
  if (total < 8) return std::nullopt;
  m.truncated = total > data.size();
  const Span d = data.first(std::min(total, data.size()));
  m.medium_type = d[2];
  m.device_specific = d[3];
  decode_device_specific(m);
  m.long_lba = (d[4] & 0x01) != 0;
  m.block_descriptor_length = be16(d, 6);
  if (!descriptors_and_pages(d, 8, m)) return std::nullopt;
  return m;
}

// SMC-3 "Element address assignment mode page".
std::optional<ElementAddressAssignment> element_address_assignment(const ModePage& page) {
  const Span p(page.bytes);
  if (page.page_code != 0x1D || p.size() < 18) return std::nullopt;
  ElementAddressAssignment e;
  e.first_transport = be16(p, 2);
  e.transport_count = be16(p, 4);
  e.first_storage = be16(p, 6);
  e.storage_count = be16(p, 8);
  e.first_import_export = be16(p, 10);
  e.import_export_count = be16(p, 12);
  e.first_data_transfer = be16(p, 14);
  e.data_transfer_count = be16(p, 16);
  return e;
}

// SMC-3 "Device capabilities mode page".
std::optional<DeviceCapabilities> device_capabilities(const ModePage& page) {
  const Span p(page.bytes);
  if (page.page_code != 0x1F || p.size() < 16) return std::nullopt;
  DeviceCapabilities c;
  for (int i = 0; i < 4; ++i) {
    c.store[i] = (p[2] >> i & 0x01) != 0;
    c.move_from[i] = p[4 + static_cast<std::size_t>(i)];
    c.exchange_from[i] = p[12 + static_cast<std::size_t>(i)];
  }
  c.bytes = page.bytes;
  return c;
}

bool DeviceCapabilities::can_move(std::uint8_t from, std::uint8_t to) const {
  if (from < 1 || from > 4 || to < 1 || to > 4) return false;
  return (move_from[from - 1] >> (to - 1) & 0x01) != 0;
}

// ---- READ CAPACITY(16) ---------------------------------------------------------

// SBC-3 "READ CAPACITY (16) parameter data".
std::optional<Capacity16> read_capacity16(Span data) {
  if (data.size() < 12) return std::nullopt;
  Capacity16 c;
  c.last_lba = be64(data, 0);
  c.block_length = be32(data, 8);
  if (data.size() >= 16) {
    c.prot_en = (data[12] & 0x01) != 0;
    c.p_type = (data[12] >> 1) & 0x07;
    c.p_i_exponent = static_cast<std::uint8_t>(data[13] >> 4);
    c.lbppbe = data[13] & 0x0F;
    c.lbpme = (data[14] & 0x80) != 0;
    c.lbprz = (data[14] & 0x40) != 0;
    c.lowest_aligned_lba = be16(data, 14) & 0x3FFF;
  }
  return c;
}

// ---- READ POSITION -------------------------------------------------------------

// SSC-4 "READ POSITION data format, short form".
std::optional<PositionShort> read_position_short(Span data) {
  if (data.size() < 20) return std::nullopt;
  PositionShort p;
  p.bop = (data[0] & 0x80) != 0;
  p.eop = (data[0] & 0x40) != 0;
  p.locu = (data[0] & 0x20) != 0;
  p.bycu = (data[0] & 0x10) != 0;
  p.lolu = (data[0] & 0x04) != 0;
  p.perr = (data[0] & 0x02) != 0;
  p.bpew = (data[0] & 0x01) != 0;
  p.partition = data[1];
  p.first_location = be32(data, 4);
  p.last_location = be32(data, 8);
  p.blocks_in_buffer = be24(data, 13);
  p.bytes_in_buffer = be32(data, 16);
  return p;
}

// SSC-4 "READ POSITION data format, long form".
std::optional<PositionLong> read_position_long(Span data) {
  if (data.size() < 32) return std::nullopt;
  PositionLong p;
  p.bop = (data[0] & 0x80) != 0;
  p.eop = (data[0] & 0x40) != 0;
  p.mpu = (data[0] & 0x08) != 0;
  p.lonu = (data[0] & 0x04) != 0;
  p.bpew = (data[0] & 0x01) != 0;
  p.partition = be32(data, 4);
  p.logical_object = be64(data, 8);
  p.logical_file = be64(data, 16);
  p.logical_set = be64(data, 24);
  return p;
}

// SSC-4 "READ POSITION data format, extended form".
std::optional<PositionExtended> read_position_extended(Span data) {
  if (data.size() < 32 || be16(data, 2) < 0x1C) return std::nullopt;
  PositionExtended p;
  p.bop = (data[0] & 0x80) != 0;
  p.eop = (data[0] & 0x40) != 0;
  p.locu = (data[0] & 0x20) != 0;
  p.bycu = (data[0] & 0x10) != 0;
  p.lolu = (data[0] & 0x04) != 0;
  p.perr = (data[0] & 0x02) != 0;
  p.bpew = (data[0] & 0x01) != 0;
  p.partition = data[1];
  p.blocks_in_buffer = be24(data, 5);
  p.first_location = be64(data, 8);
  p.last_location = be64(data, 16);
  p.bytes_in_buffer = be64(data, 24);
  return p;
}

// ---- READ BLOCK LIMITS ---------------------------------------------------------

// SSC-4 "READ BLOCK LIMITS data" (MLOI 0).
std::optional<BlockLimitsSsc> read_block_limits(Span data) {
  if (data.size() < 6) return std::nullopt;
  BlockLimitsSsc b;
  b.granularity = data[0] & 0x1F;
  b.max_block_length = be24(data, 1);
  b.min_block_length = be16(data, 4);
  return b;
}

// ---- READ ELEMENT STATUS -------------------------------------------------------

namespace {

// SMC-3 "Volume tag information format": `t` holds what arrived of the 36
// bytes.
VolumeTag volume_tag(Span t) {
  VolumeTag v;
  v.identifier = trimmed_right(t.first(std::min<std::size_t>(t.size(), 32)));
  if (t.size() >= 36) v.sequence = be16(t, 34);
  return v;
}

// One element descriptor (SMC-3 "Element descriptors" of the four element
// types share bytes 0-11, then the volume tags, then the identification).
// `d` holds what arrived of the `declared` bytes; d.size() >= 12.
ElementDescriptor element_descriptor(Span d, std::size_t declared, bool pvoltag, bool avoltag) {
  ElementDescriptor e;
  e.truncated = d.size() < declared;
  e.address = be16(d, 0);
  e.full = (d[2] & 0x01) != 0;
  e.impexp = (d[2] & 0x02) != 0;
  e.except = (d[2] & 0x04) != 0;
  e.access = (d[2] & 0x08) != 0;
  e.exenab = (d[2] & 0x10) != 0;
  e.inenab = (d[2] & 0x20) != 0;
  e.asc = d[4];
  e.ascq = d[5];
  e.not_bus = (d[6] & 0x80) != 0;
  e.id_valid = (d[6] & 0x20) != 0;
  e.lu_valid = (d[6] & 0x10) != 0;
  e.lun = d[6] & 0x07;
  e.scsi_bus_address = d[7];
  e.svalid = (d[9] & 0x80) != 0;
  e.invert = (d[9] & 0x40) != 0;
  e.medium_type = d[9] & 0x07;
  e.source_address = be16(d, 10);
  std::size_t at = 12;
  auto tag = [&](bool present, std::optional<VolumeTag>& out) {
    if (!present) return;
    const Span t = clamp(d, at, std::min(at + 36, declared));
    if (!t.empty()) out = volume_tag(t);
    at += 36;
  };
  tag(pvoltag, e.primary_tag);
  tag(avoltag, e.alternate_tag);
  // The identification block: only when the descriptor has room for its
  // 4-byte header (SMC-2 devices end the descriptor at the tags).
  if (at + 4 <= declared && at + 4 <= d.size()) {
    const std::size_t len = d[at + 3];
    const Span id = clamp(d, at + 4, std::min(at + 4 + len, declared));
    if (len > 0) {
      ElementIdentifier i;
      i.code_set = d[at] & 0x0F;
      i.identifier_type = d[at + 1] & 0x0F;
      i.identifier.assign(id.begin(), id.end());
      e.identifier = std::move(i);
    }
  }
  return e;
}

}  // namespace

// SMC-3 "Element status data", "Element status page".
std::optional<ElementStatus> read_element_status(Span data) {
  if (data.size() < 8) return std::nullopt;
  ElementStatus s;
  s.first_address = be16(data, 0);
  s.elements_available = be16(data, 2);
  s.byte_count = be24(data, 5);
  const std::size_t declared_end = 8 + std::size_t{s.byte_count};
  s.truncated = declared_end > data.size();
  const Span r = data.first(std::min(declared_end, data.size()));
  std::size_t at = 8;
  while (at < r.size()) {
    if (at + 8 > r.size()) {
      s.truncated = true;
      break;
    }
    ElementStatusPage page;
    page.element_type = r[at] & 0x0F;
    page.pvoltag = (r[at + 1] & 0x80) != 0;
    page.avoltag = (r[at + 1] & 0x40) != 0;
    page.descriptor_length = be16(r, at + 2);
    page.byte_count = be24(r, at + 5);
    if (page.element_type < 1 || page.element_type > 4) return std::nullopt;
    if (page.byte_count > 0 && page.descriptor_length < 12) return std::nullopt;
    const std::size_t page_end = at + 8 + std::size_t{page.byte_count};
    const std::size_t end = std::min(page_end, r.size());
    if (page_end > r.size()) s.truncated = true;
    for (std::size_t d = at + 8; d < end; d += page.descriptor_length) {
      const std::size_t avail = std::min<std::size_t>(page.descriptor_length, end - d);
      if (avail < 12) {  // not even the fixed part: nothing to report
        s.truncated = true;
        break;
      }
      ElementDescriptor e = element_descriptor(r.subspan(d, avail), page.descriptor_length,
                                               page.pvoltag, page.avoltag);
      if (e.truncated) s.truncated = true;
      page.descriptors.push_back(std::move(e));
    }
    s.pages.push_back(std::move(page));
    at = page_end;
  }
  return s;
}

}  // namespace scsi::parse
