#include "scsi/emu/smc_changer.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace scsi::emu {

namespace {

enum Opcode : std::uint8_t {
  kInitializeElementStatus = 0x07,
  kModeSense6 = 0x1A,
  kPositionToElement = 0x2B,
  kInitializeElementStatusWithRange = 0x37,
  kModeSense10 = 0x5A,
  kMoveMedium = 0xA5,
  kExchangeMedium = 0xA6,
  kReadElementStatus = 0xB8,
};

Result invalid_element() { return sense(SenseKey::kIllegalRequest, 0x21, 0x01); }
Result destination_full() { return sense(SenseKey::kIllegalRequest, 0x3B, 0x0D); }
Result source_empty() { return sense(SenseKey::kIllegalRequest, 0x3B, 0x0E); }

constexpr std::size_t kVolumeTagLength = 36;

}  // namespace

SmcChanger::SmcChanger(UnitIdentity identity, std::vector<Element> elements,
                       std::vector<std::shared_ptr<SscDrive>> drives, OpenCartridge open,
                       OnChange on_change)
    : LogicalUnit(std::move(identity)),
      elements_(std::move(elements)),
      drives_(std::move(drives)),
      open_(std::move(open)),
      on_change_(std::move(on_change)) {
  std::stable_sort(elements_.begin(), elements_.end(),
                   [](const Element& a, const Element& b) { return a.address < b.address; });
}

std::vector<Element> SmcChanger::inventory() const {
  std::lock_guard lock(mutex());
  return elements_;
}

Element* SmcChanger::find(std::uint16_t address) {
  for (Element& e : elements_) {
    if (e.address == address) return &e;
  }
  return nullptr;
}

std::shared_ptr<SscDrive> SmcChanger::drive_at(const Element& e) const {
  std::size_t index = 0;
  for (const Element& x : elements_) {
    if (x.type != Element::kDataTransfer) continue;
    if (&x == &e) return index < drives_.size() ? drives_[index] : nullptr;
    ++index;
  }
  return nullptr;
}

std::uint16_t SmcChanger::first_of(Element::Type t, std::uint16_t& count) const {
  count = 0;
  std::uint16_t first = 0;
  for (const Element& e : elements_) {
    if (e.type != t) continue;
    if (count++ == 0) first = e.address;
  }
  return first;
}

Result SmcChanger::execute_class(std::span<const std::uint8_t> cdb, std::span<const std::uint8_t>,
                                 std::span<std::uint8_t> data_in) {
  switch (cdb[0]) {
    case kReadElementStatus:
      return read_element_status(cdb, data_in);
    case kMoveMedium:
      return move(static_cast<std::uint16_t>(get_be(cdb, 2, 2)),
                  static_cast<std::uint16_t>(get_be(cdb, 4, 2)),
                  static_cast<std::uint16_t>(get_be(cdb, 6, 2)));
    case kExchangeMedium:
      return exchange(static_cast<std::uint16_t>(get_be(cdb, 2, 2)),
                      static_cast<std::uint16_t>(get_be(cdb, 4, 2)),
                      static_cast<std::uint16_t>(get_be(cdb, 6, 2)),
                      static_cast<std::uint16_t>(get_be(cdb, 8, 2)));
    case kInitializeElementStatus:
      return {};  // the inventory is always known
    case kInitializeElementStatusWithRange: {
      if (!(cdb[1] & 0x01)) return {};  // RANGE=0: all elements
      const std::uint16_t start = static_cast<std::uint16_t>(get_be(cdb, 2, 2));
      if (!find(start)) return invalid_element();
      return {};
    }
    case kPositionToElement: {
      const std::uint16_t transport = static_cast<std::uint16_t>(get_be(cdb, 2, 2));
      const Element* t = transport == 0 ? nullptr : find(transport);
      if ((transport != 0 && (!t || t->type != Element::kTransport)) ||
          !find(static_cast<std::uint16_t>(get_be(cdb, 4, 2)))) {
        return invalid_element();
      }
      return {};
    }
    case kModeSense6:
    case kModeSense10:
      return mode_sense(cdb, data_in);
    default:
      return invalid_opcode();
  }
}

Result SmcChanger::read_element_status(std::span<const std::uint8_t> cdb,
                                       std::span<std::uint8_t> data_in) {
  const bool voltag = cdb[1] & 0x10;
  const std::uint8_t type = cdb[1] & 0x0F;
  const std::uint16_t start = static_cast<std::uint16_t>(get_be(cdb, 2, 2));
  const std::uint16_t count = static_cast<std::uint16_t>(get_be(cdb, 4, 2));
  const bool dvcid = cdb[6] & 0x01;
  const std::size_t alloc = std::min<std::size_t>(get_be(cdb, 7, 3), data_in.size());
  if (type > 4) return invalid_field_in_cdb(1);

  // The first `count` elements (of the requested type, or of any) in
  // address order from `start`; then grouped by type, one element status
  // page per type.
  std::vector<const Element*> chosen;
  for (const Element& e : elements_) {  // kept in address order
    if ((type == 0 || e.type == type) && e.address >= start && chosen.size() < count) {
      chosen.push_back(&e);
    }
  }
  std::stable_sort(chosen.begin(), chosen.end(),
                   [](const Element* a, const Element* b) { return a->type < b->type; });
  if (chosen.empty() && !find(start) && start != 0) return invalid_element();

  Bytes r(8, 0);
  std::uint16_t reported = 0;
  std::size_t i = 0;
  while (i < chosen.size()) {
    const std::uint8_t t = chosen[i]->type;
    const bool ids = dvcid && t == Element::kDataTransfer;
    // Descriptor: 12 fixed bytes, the primary volume tag, the device id.
    const std::size_t id_length = ids ? 4 + 16 : 0;
    const std::size_t dlen = 12 + (voltag ? kVolumeTagLength : 0) + id_length;
    const std::size_t page_at = r.size();
    r.resize(r.size() + 8, 0);
    r[page_at] = t;
    r[page_at + 1] = voltag ? 0x80 : 0x00;
    put_be(r, page_at + 2, 2, dlen);
    std::size_t bytes = 0;
    for (; i < chosen.size() && chosen[i]->type == t; ++i) {
      const Element& e = *chosen[i];
      Bytes d(dlen, 0);
      put_be(d, 0, 2, e.address);
      const bool full = !e.barcode.empty();
      std::uint8_t flags = full ? 0x01 : 0x00;
      if (t == Element::kImportExport) flags |= 0x20 | 0x10;  // InEnab, ExEnab
      if (t != Element::kTransport) flags |= 0x08;            // Access
      d[2] = flags;
      if (full && e.source != 0) {
        d[9] = 0x80;  // SValid
        put_be(d, 10, 2, e.source);
      }
      std::size_t at = 12;
      if (voltag) {
        if (full) put_ascii(d, at, 32, e.barcode);  // an empty element's tag stays zero
        at += kVolumeTagLength;
      }
      if (ids) {
        const std::shared_ptr<SscDrive> drive = drive_at(e);
        d[at] = 0x01;      // code set: binary
        d[at + 1] = 0x03;  // identifier type: NAA
        d[at + 3] = 16;
        if (drive) {
          const Bytes& naa = drive->identity().naa;
          std::copy(naa.begin(), naa.end(), d.begin() + static_cast<std::ptrdiff_t>(at + 4));
        }
      }
      r.insert(r.end(), d.begin(), d.end());
      bytes += d.size();
      ++reported;
    }
    put_be(r, page_at + 5, 3, bytes);
  }
  put_be(r, 0, 2, chosen.empty() ? 0 : chosen.front()->address);
  put_be(r, 2, 2, reported);
  put_be(r, 5, 3, r.size() - 8);
  return respond(r, data_in.first(alloc));
}

bool SmcChanger::take(Element& e, std::string& barcode, Result& failure) {
  if (e.barcode.empty()) {
    failure = source_empty();
    return false;
  }
  if (e.type == Element::kDataTransfer) {
    const std::shared_ptr<SscDrive> drive = drive_at(e);
    if (drive) {
      std::string error;
      if (!drive->remove(error)) {
        spdlog::warn("changer: cannot take {} out of the drive at {}: {}", e.barcode, e.address,
                     error);
        failure = sense(SenseKey::kIllegalRequest, 0x53, 0x02);  // MEDIUM REMOVAL PREVENTED
        return false;
      }
    }
  }
  barcode = e.barcode;
  e.barcode.clear();
  e.source = 0;
  return true;
}

bool SmcChanger::put(Element& e, const std::string& barcode, std::uint16_t source,
                     Result& failure) {
  if (e.type == Element::kDataTransfer) {
    const std::shared_ptr<SscDrive> drive = drive_at(e);
    if (drive) {
      std::string error;
      std::unique_ptr<Cartridge> c = open_(barcode, error);
      if (!c) {
        spdlog::error("changer: cannot load {}: {}", barcode, error);
        failure = sense(SenseKey::kHardwareError, 0x3B, 0x00);  // SEQUENTIAL POSITIONING ERROR
        return false;
      }
      drive->insert(std::move(c));
    }
  }
  e.barcode = barcode;
  e.source = source;
  return true;
}

Result SmcChanger::move(std::uint16_t transport, std::uint16_t from, std::uint16_t to) {
  if (transport != 0) {
    const Element* t = find(transport);
    if (!t || t->type != Element::kTransport) return invalid_element();
  }
  Element* src = find(from);
  Element* dst = find(to);
  if (!src || !dst) return invalid_element();
  if (src->barcode.empty()) return source_empty();
  if (from == to) return {};
  if (!dst->barcode.empty()) return destination_full();
  std::string barcode;
  Result failure;
  if (!take(*src, barcode, failure)) return failure;
  if (!put(*dst, barcode, from, failure)) {
    // Back where it came from (a drive source reloads it).
    Result ignored;
    put(*src, barcode, 0, ignored);
    return failure;
  }
  spdlog::info("changer: moved {} from {} to {}", barcode, from, to);
  if (on_change_) on_change_(elements_);
  return {};
}

Result SmcChanger::exchange(std::uint16_t transport, std::uint16_t from, std::uint16_t to1,
                            std::uint16_t to2) {
  if (transport != 0) {
    const Element* t = find(transport);
    if (!t || t->type != Element::kTransport) return invalid_element();
  }
  Element* src = find(from);
  Element* first = find(to1);
  Element* second = find(to2);
  if (!src || !first || !second) return invalid_element();
  if (src->barcode.empty() || first->barcode.empty()) return source_empty();
  if (second != src && !second->barcode.empty()) return destination_full();
  // The source's cartridge goes to the first destination, whose cartridge
  // goes to the second destination.
  std::string a, b;
  Result failure;
  if (!take(*src, a, failure)) return failure;
  if (!take(*first, b, failure)) {
    Result ignored;
    put(*src, a, 0, ignored);
    return failure;
  }
  if (!put(*second, b, to1, failure) || !put(*first, a, from, failure)) {
    spdlog::error("changer: exchange {} -> {} -> {} failed half way", from, to1, to2);
    if (on_change_) on_change_(elements_);
    return failure;
  }
  spdlog::info("changer: exchanged {} ({} -> {}) and {} ({} -> {})", a, from, to1, b, to1, to2);
  if (on_change_) on_change_(elements_);
  return {};
}

Result SmcChanger::mode_sense(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in) {
  const bool ten = cdb[0] == kModeSense10;
  const std::uint8_t control = cdb[2] >> 6;
  const std::uint8_t page = cdb[2] & 0x3F;
  if (control == 3) return sense(SenseKey::kIllegalRequest, 0x39, 0x00);
  const std::size_t alloc = std::min<std::size_t>(ten ? get_be(cdb, 7, 2) : cdb[4], data_in.size());
  const bool zeros = control == 1;  // nothing is changeable
  Bytes pages;
  bool known = false;
  if (page == 0x1D || page == 0x3F) {  // element address assignment
    known = true;
    Bytes p(20, 0);
    p[0] = 0x1D;
    p[1] = 0x12;
    if (!zeros) {
      std::uint16_t n = 0;
      std::uint16_t first = first_of(Element::kTransport, n);
      put_be(p, 2, 2, first);
      put_be(p, 4, 2, n);
      first = first_of(Element::kStorage, n);
      put_be(p, 6, 2, first);
      put_be(p, 8, 2, n);
      first = first_of(Element::kImportExport, n);
      put_be(p, 10, 2, first);
      put_be(p, 12, 2, n);
      first = first_of(Element::kDataTransfer, n);
      put_be(p, 14, 2, first);
      put_be(p, 16, 2, n);
    }
    pages.insert(pages.end(), p.begin(), p.end());
  }
  if (page == 0x1E || page == 0x3F) {  // transport geometry: no rotation
    known = true;
    pages.insert(pages.end(), {0x1E, 0x02, 0x00, 0x00});
  }
  if (page == 0x1F || page == 0x3F) {  // device capabilities
    known = true;
    Bytes p(20, 0);
    p[0] = 0x1F;
    p[1] = 0x12;
    if (!zeros) {
      p[2] = 0x0E;  // StorDT, StorI/E, StorST: cartridges can be kept there
      // MOVE MEDIUM from each type to storage, I/E and drives; EXCHANGE too.
      p[4] = 0x0E;  // transport ->
      p[5] = 0x0E;  // storage ->
      p[6] = 0x0E;  // import/export ->
      p[7] = 0x0E;  // data transfer ->
      p[12] = 0x0E;
      p[13] = 0x0E;
      p[14] = 0x0E;
      p[15] = 0x0E;
    }
    pages.insert(pages.end(), p.begin(), p.end());
  }
  if (!known) return invalid_field_in_cdb(2);
  Bytes r;
  if (ten) {
    r.assign(8, 0);
  } else {
    r.assign(4, 0);
  }
  r.insert(r.end(), pages.begin(), pages.end());
  if (ten) {
    put_be(r, 0, 2, r.size() - 2);
  } else {
    r[0] = static_cast<std::uint8_t>(r.size() - 1);
  }
  return respond(r, data_in.first(alloc));
}

}  // namespace scsi::emu
