#include "tape/media_changer.h"

#include <algorithm>
#include <thread>

#include "scsi/cdb.h"
#include "scsi/parse.h"

namespace tape {

namespace cdb = scsi::cdb;
namespace parse = scsi::parse;

const ChangerElement* Inventory::find(std::uint16_t address) const {
  for (const ChangerElement& e : elements) {
    if (e.address == address) return &e;
  }
  return nullptr;
}

std::vector<const ChangerElement*> Inventory::of(ChangerElement::Type t) const {
  std::vector<const ChangerElement*> out;
  for (const ChangerElement& e : elements) {
    if (e.type == t) out.push_back(&e);
  }
  return out;
}

MediaChanger::MediaChanger(std::shared_ptr<scsi::Device> device,
                           std::chrono::milliseconds move_timeout)
    : device_(std::move(device)), move_timeout_(move_timeout) {}

scsi::Result MediaChanger::run(scsi::Bytes c, std::chrono::milliseconds timeout) {
  scsi::Command cmd;
  cmd.cdb = std::move(c);
  cmd.timeout = timeout;
  return device_->execute(cmd);
}

Status MediaChanger::wait_ready(std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    Status s = classify(run(cdb::test_unit_ready(), std::chrono::seconds(60)));
    if (s.condition != Condition::kUnitAttention && s.condition != Condition::kNotReady) return s;
    if (std::chrono::steady_clock::now() >= end) return s;
    if (s.condition == Condition::kNotReady)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Inventory MediaChanger::inventory() {
  Inventory inv;
  // Where the elements are: the element address assignment page.
  std::uint8_t mode[255] = {};
  scsi::Command ms;
  ms.cdb = cdb::mode_sense6(true, 0, 0x1D, 0, sizeof mode);
  ms.direction = scsi::Direction::kIn;
  ms.data_in = mode;
  ms.timeout = std::chrono::seconds(60);
  scsi::Result r = device_->execute(ms);
  inv.status = classify(r);
  if (!inv.status.ok()) return inv;
  const auto params = parse::mode_sense6(std::span(mode, r.data_in));
  const parse::ModePage* page = params ? params->find(0x1D) : nullptr;
  const auto layout = page ? parse::element_address_assignment(*page) : std::nullopt;
  if (!layout) {
    inv.status.condition = Condition::kOther;
    inv.status.detail = "no element address assignment page";
    return inv;
  }
  struct Range {
    ChangerElement::Type type;
    std::uint16_t first, count;
  };
  const Range ranges[] = {
      {ChangerElement::kTransport, layout->first_transport, layout->transport_count},
      {ChangerElement::kStorage, layout->first_storage, layout->storage_count},
      {ChangerElement::kImportExport, layout->first_import_export, layout->import_export_count},
      {ChangerElement::kDataTransfer, layout->first_data_transfer, layout->data_transfer_count},
  };
  for (const Range& range : ranges) {
    if (range.count == 0) continue;
    // One element type per command: some changers garble a mixed report.
    const bool drives = range.type == ChangerElement::kDataTransfer;
    bool dvcid = drives;
    std::vector<std::uint8_t> buf(8 + 8 + std::size_t{range.count} * 128);
    std::size_t n = 0;
    for (;;) {
      scsi::Command c;
      c.cdb = cdb::read_element_status(true, static_cast<cdb::ElementType>(range.type), range.first,
                                       range.count, dvcid, false,
                                       static_cast<std::uint32_t>(buf.size()));
      c.direction = scsi::Direction::kIn;
      c.data_in = buf;
      c.timeout = std::chrono::seconds(120);
      r = device_->execute(c);
      const Status s = classify(r);
      if (s.condition == Condition::kIllegalRequest && dvcid) {
        dvcid = false;  // the changer does not know DVCID: ask without
        continue;
      }
      if (!s.ok()) {
        inv.status = s;
        return inv;
      }
      n = r.data_in;
      break;
    }
    if (drives) inv.dvcid = dvcid;
    const auto status = parse::read_element_status(std::span(buf.data(), n));
    if (!status) {
      inv.status.condition = Condition::kOther;
      inv.status.detail = "READ ELEMENT STATUS data does not parse";
      return inv;
    }
    for (const parse::ElementStatusPage& p : status->pages) {
      for (const parse::ElementDescriptor& d : p.descriptors) {
        ChangerElement e;
        e.type = static_cast<ChangerElement::Type>(p.element_type);
        e.address = d.address;
        e.full = d.full;
        e.accessible = d.access;
        e.exception = d.except;
        if (d.primary_tag) e.barcode = d.primary_tag->identifier;
        if (d.svalid) e.source = d.source_address;
        if (d.identifier && !d.identifier->identifier.empty()) {
          e.identifier = d.identifier->identifier;
          e.identifier_type = d.identifier->identifier_type;
          e.identifier_code_set = d.identifier->code_set;
        }
        inv.elements.push_back(std::move(e));
      }
    }
  }
  return inv;
}

Status MediaChanger::move(std::uint16_t from, std::uint16_t to, std::uint16_t transport) {
  return classify(run(cdb::move_medium(transport, from, to, false), move_timeout_));
}

Status MediaChanger::exchange(std::uint16_t from, std::uint16_t to1, std::uint16_t to2,
                              std::uint16_t transport) {
  return classify(
      run(cdb::exchange_medium(transport, from, to1, to2, false, false), move_timeout_));
}

Status MediaChanger::initialize_element_status() {
  return classify(run(cdb::initialize_element_status(), std::chrono::minutes(30)));
}

}  // namespace tape
