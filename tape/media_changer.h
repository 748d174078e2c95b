// MediaChanger: an SMC client over any scsi::Device.  The inventory comes
// from the element address assignment page (1Dh) and READ ELEMENT STATUS
// one element type at a time (with volume tags, and for drives with DVCID:
// the identifier that names each drive); moves and exchanges say clearly
// why they failed (source empty, destination full, invalid element).
//
// Blocking; one owner at a time (the session that opened the changer).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "scsi/device.h"
#include "tape/status.h"

namespace tape {

struct ChangerElement {
  enum Type : std::uint8_t { kTransport = 1, kStorage = 2, kImportExport = 3, kDataTransfer = 4 };
  Type type = kStorage;
  std::uint16_t address = 0;
  bool full = false;
  bool accessible = false;
  bool exception = false;
  std::string barcode;                  // the primary volume tag, when reported
  std::optional<std::uint16_t> source;  // where the cartridge came from (SValid)
  scsi::Bytes identifier;               // data transfer elements with DVCID: the drive's id
  std::uint8_t identifier_type = 0;     // as VPD 83h designator types (3: NAA)
  std::uint8_t identifier_code_set = 0;
};

struct Inventory {
  Status status;
  std::vector<ChangerElement> elements;  // transport, storage, import/export, drives
  bool dvcid = false;                    // the changer gave drive identifiers

  const ChangerElement* find(std::uint16_t address) const;
  std::vector<const ChangerElement*> of(ChangerElement::Type t) const;
};

class MediaChanger {
 public:
  explicit MediaChanger(std::shared_ptr<scsi::Device> device,
                        std::chrono::milliseconds move_timeout = std::chrono::minutes(10));

  scsi::Device& device() { return *device_; }

  Status wait_ready(std::chrono::milliseconds limit);
  Inventory inventory();
  // transport 0: the changer's default transport.
  Status move(std::uint16_t from, std::uint16_t to, std::uint16_t transport = 0);
  Status exchange(std::uint16_t from, std::uint16_t to1, std::uint16_t to2,
                  std::uint16_t transport = 0);
  Status initialize_element_status();

 private:
  scsi::Result run(scsi::Bytes cdb, std::chrono::milliseconds timeout);

  std::shared_ptr<scsi::Device> device_;
  std::chrono::milliseconds move_timeout_;
};

}  // namespace tape
