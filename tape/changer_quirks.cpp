#include "tape/changer_quirks.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "scsi/big_endian.h"
#include "scsi/cdb.h"
#include "scsi/parse.h"

namespace tape {
namespace {

constexpr std::uint8_t kReadElementStatus = 0xB8;
// What the repaired changer accepts as an allocation length.
constexpr std::uint32_t kPerTypeAllocation = 4096;

// Every element descriptor begins with these: address, flags, ASC/ASCQ,
// bus, SValid and medium type, source address.
constexpr std::size_t kFixedPart = 12;

struct Descriptor {
  std::uint8_t type = 0;
  std::uint8_t page_flags = 0;  // PVolTag, AVolTag
  std::uint16_t address = 0;
  scsi::Bytes bytes;       // ELEMENT DESCRIPTOR LENGTH of them
  bool fixed_cut = false;  // not even the fixed part came whole
};

// The descriptors of one report, trusting each page's descriptor length
// and count but not that every byte came: a cut descriptor is padded (one
// of which less than the fixed part came is marked).
void collect(std::span<const std::uint8_t> data, std::vector<Descriptor>& out) {
  if (data.size() < 8) return;
  std::size_t at = 8;
  while (at + 8 <= data.size()) {
    const std::uint8_t type = data[at] & 0x0F;
    const std::uint8_t flags = data[at + 1] & 0xC0;
    const std::uint16_t length = static_cast<std::uint16_t>(scsi::be(data, at + 2, 2));
    const std::uint32_t bytes = scsi::be(data, at + 5, 3);
    if (type < 1 || type > 4 || length < kFixedPart) return;
    for (std::size_t d = at + 8; d < at + 8 + bytes && d + 2 <= data.size(); d += length) {
      Descriptor e;
      e.type = type;
      e.page_flags = flags;
      e.address = static_cast<std::uint16_t>(scsi::be(data, d, 2));
      e.bytes.assign(length, 0);
      const std::size_t present = std::min<std::size_t>(length, data.size() - d);
      std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(d), present, e.bytes.begin());
      e.fixed_cut = present < kFixedPart;
      out.push_back(std::move(e));
    }
    at += 8 + bytes;
  }
}

}  // namespace

bool garbles_element_status(const scsi::Identity& identity) {
  return identity.vendor == "IET" && identity.product == "VIRTUAL-CHANGER";
}

ElementStatusRepair::ElementStatusRepair(std::shared_ptr<scsi::Device> changer)
    : changer_(std::move(changer)) {}

bool ElementStatusRepair::repairing() const {
  std::lock_guard lock(mutex_);
  return verdict_ == Verdict::kRepair;
}

bool ElementStatusRepair::needs_repair(const scsi::Command& command) {
  if (command.cdb.size() != 12 || command.cdb[0] != kReadElementStatus ||
      command.direction != scsi::Direction::kIn || (command.cdb[1] & 0x0F) > 4) {
    return false;
  }
  {
    std::lock_guard lock(mutex_);
    if (verdict_ != Verdict::kUnknown) return verdict_ == Verdict::kRepair;
  }
  std::uint8_t buf[96] = {};
  scsi::Command inq;
  inq.cdb = scsi::cdb::inquiry(false, 0, sizeof buf);
  inq.direction = scsi::Direction::kIn;
  inq.data_in = buf;
  inq.timeout = command.timeout;
  const scsi::Result r = changer_->execute(inq);
  if (!r.ok()) return false;  // ask again next time
  const auto std_inq = scsi::parse::standard_inquiry(std::span(buf, r.data_in));
  if (!std_inq) return false;
  scsi::Identity id;
  id.vendor = std_inq->vendor;
  id.product = std_inq->product;
  const bool repair = garbles_element_status(id);
  std::lock_guard lock(mutex_);
  verdict_ = repair ? Verdict::kRepair : Verdict::kPassThrough;
  if (repair) {
    spdlog::info("changer {} ({} {}): READ ELEMENT STATUS is rebuilt one element type at a time",
                 changer_->describe(), id.vendor, id.product);
  }
  return repair;
}

scsi::Result ElementStatusRepair::execute(const scsi::Command& command) {
  if (!needs_repair(command)) return changer_->execute(command);
  return rebuild(command);
}

scsi::Result ElementStatusRepair::rebuild(const scsi::Command& command) {
  const std::span<const std::uint8_t> c = command.cdb;
  const std::uint8_t type = c[1] & 0x0F;
  const std::uint16_t start = static_cast<std::uint16_t>(scsi::be(c, 2, 2));
  const std::uint16_t count = static_cast<std::uint16_t>(scsi::be(c, 4, 2));

  std::vector<Descriptor> found;
  scsi::Bytes buf(kPerTypeAllocation);
  for (std::uint8_t t = 1; t <= 4; ++t) {
    if (type != 0 && t != type) continue;
    scsi::Command one;
    one.cdb.assign(c.begin(), c.end());
    one.cdb[1] = static_cast<std::uint8_t>((c[1] & 0xF0) | t);
    scsi::put_be(one.cdb, 4, 2,
                 0xFFFF);  // every element from `start`: the count applies after merging
    scsi::put_be(one.cdb, 7, 3, kPerTypeAllocation);
    one.direction = scsi::Direction::kIn;
    std::fill(buf.begin(), buf.end(), 0);
    one.data_in = buf;
    one.timeout = command.timeout;
    scsi::Result r = changer_->execute(one);
    if (!r.ok()) return r;  // a unit attention, a refusal: the caller sees it as it is
    const std::size_t before = found.size();
    collect(std::span(buf.data(), std::min(r.data_in, buf.size())), found);
    for (std::size_t i = before; i < found.size(); ++i) {
      if (!found[i].fixed_cut) continue;
      // The report's last 8 bytes never come: without volume tags that is
      // half the last descriptor, its SValid and source address with it.
      // Asked alone with volume tags, the element's fixed part comes whole.
      scsi::put_be(one.cdb, 2, 2, found[i].address);
      one.cdb[1] |= 0x10;
      std::fill(buf.begin(), buf.end(), 0);
      r = changer_->execute(one);
      if (!r.ok()) return r;
      std::vector<Descriptor> alone;
      collect(std::span(buf.data(), std::min(r.data_in, buf.size())), alone);
      for (const Descriptor& e : alone) {
        if (e.address != found[i].address || e.fixed_cut) continue;
        std::copy_n(e.bytes.begin(), kFixedPart, found[i].bytes.begin());
        found[i].fixed_cut = false;
      }
    }
  }

  // From the starting address, in address order, at most `count` of them.
  std::erase_if(found, [start](const Descriptor& d) { return d.address < start; });
  std::stable_sort(found.begin(), found.end(),
                   [](const Descriptor& a, const Descriptor& b) { return a.address < b.address; });
  if (found.size() > count) found.resize(count);

  scsi::Bytes report(8, 0);
  for (std::size_t i = 0; i < found.size();) {
    std::size_t j = i;
    while (j < found.size() && found[j].type == found[i].type &&
           found[j].page_flags == found[i].page_flags &&
           found[j].bytes.size() == found[i].bytes.size()) {
      ++j;
    }
    const std::size_t length = found[i].bytes.size();
    scsi::Bytes page(8, 0);
    page[0] = found[i].type;
    page[1] = found[i].page_flags;
    scsi::put_be(page, 2, 2, static_cast<std::uint32_t>(length));
    scsi::put_be(page, 5, 3, static_cast<std::uint32_t>((j - i) * length));
    report.insert(report.end(), page.begin(), page.end());
    for (std::size_t k = i; k < j; ++k) {
      report.insert(report.end(), found[k].bytes.begin(), found[k].bytes.end());
    }
    i = j;
  }
  scsi::put_be(report, 0, 2, found.empty() ? 0 : found.front().address);
  scsi::put_be(report, 2, 2, static_cast<std::uint32_t>(found.size()));
  scsi::put_be(report, 5, 3, static_cast<std::uint32_t>(report.size() - 8));

  scsi::Result out;
  const std::size_t alloc = std::min<std::size_t>(scsi::be(c, 7, 3), command.data_in.size());
  out.data_in = std::min(alloc, report.size());
  std::copy_n(report.begin(), out.data_in, command.data_in.begin());
  out.residual = command.data_in.size() - out.data_in;
  return out;
}

}  // namespace tape
