// The emulated SMC media changer of the virtual tape library: a medium
// transport (picker), storage slots, an import/export element and the data
// transfer elements (the drives).  READ ELEMENT STATUS (VOLTAG: barcodes;
// DVCID: a drive element names its drive's NAA designator), MOVE MEDIUM,
// EXCHANGE MEDIUM, INITIALIZE ELEMENT STATUS (with range), POSITION TO
// ELEMENT, MODE SENSE pages 1Dh, 1Eh and 1Fh; 3B/0D when the destination
// is full and 3B/0E when the source is empty, 21/01 for an address that
// is not an element.
//
// Moving a cartridge into a drive opens its file and inserts it into the
// SscDrive; moving it out removes it (after a flush).  Every change of the
// inventory is reported to `on_change`, which persists it.
//
// Thread-safety: as LogicalUnit.  Lock order: changer, then drive.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scsi/emu/logical_unit.h"
#include "scsi/emu/ssc_drive.h"

namespace scsi::emu {

struct Element {
  enum Type : std::uint8_t { kTransport = 1, kStorage = 2, kImportExport = 3, kDataTransfer = 4 };
  Type type = kStorage;
  std::uint16_t address = 0;
  std::string barcode;       // the cartridge in it; empty: the element is empty
  std::uint16_t source = 0;  // where the cartridge was before (when full)
};

class SmcChanger : public LogicalUnit {
 public:
  using OpenCartridge =
      std::function<std::unique_ptr<Cartridge>(const std::string& barcode, std::string& error)>;
  using OnChange = std::function<void(const std::vector<Element>&)>;

  // `elements` is the whole inventory, its contents included; the data
  // transfer elements, in address order, are `drives[0]`, `drives[1]`...
  // A drive element that holds a cartridge must have it inserted already.
  SmcChanger(UnitIdentity identity, std::vector<Element> elements,
             std::vector<std::shared_ptr<SscDrive>> drives, OpenCartridge open, OnChange on_change);

  std::vector<Element> inventory() const;

 protected:
  Result execute_class(std::span<const std::uint8_t> cdb, std::span<const std::uint8_t> data_out,
                       std::span<std::uint8_t> data_in) override;

 private:
  Element* find(std::uint16_t address);
  std::shared_ptr<SscDrive> drive_at(const Element& e) const;
  Result read_element_status(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in);
  Result move(std::uint16_t transport, std::uint16_t from, std::uint16_t to);
  Result exchange(std::uint16_t transport, std::uint16_t from, std::uint16_t to1,
                  std::uint16_t to2);
  Result mode_sense(std::span<const std::uint8_t> cdb, std::span<std::uint8_t> data_in);
  // Takes the cartridge out of element `e` (a drive gives it up first).
  bool take(Element& e, std::string& barcode, Result& failure);
  // Puts `barcode` into `e` (a drive loads it).
  bool put(Element& e, const std::string& barcode, std::uint16_t source, Result& failure);
  std::uint16_t first_of(Element::Type t, std::uint16_t& count) const;

  std::vector<Element> elements_;
  std::vector<std::shared_ptr<SscDrive>> drives_;
  OpenCartridge open_;
  OnChange on_change_;
};

}  // namespace scsi::emu
