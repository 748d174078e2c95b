#include "scsi/emu/library.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace scsi::emu {

namespace fs = std::filesystem;

fs::path VirtualLibrary::cartridge_path(const std::string& barcode) const {
  return dir_ / "cartridges" / (barcode + ".tape");
}

namespace {

bool valid_barcode(const std::string& b) {
  if (b.empty() || b.size() > 32) return false;
  for (char c : b) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  }
  return true;
}

// Reads "ADDRESS BARCODE SOURCE" lines.  A missing file is an empty map.
bool load_inventory(const fs::path& file,
                    std::map<std::uint16_t, std::pair<std::string, std::uint16_t>>& out,
                    std::string& error) {
  std::ifstream in(file);
  if (!in) return true;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    unsigned address = 0, source = 0;
    std::string barcode;
    if (!(fields >> address >> barcode >> source) || address > 0xFFFF || source > 0xFFFF) {
      error = file.string() + ":" + std::to_string(n) + ": not ADDRESS BARCODE SOURCE";
      return false;
    }
    out[static_cast<std::uint16_t>(address)] = {barcode, static_cast<std::uint16_t>(source)};
  }
  return true;
}

bool save_inventory(const fs::path& dir, const std::vector<Element>& elements, std::string& error) {
  std::string text = "# ndmpd virtual library inventory: ADDRESS BARCODE SOURCE\n";
  for (const Element& e : elements) {
    if (e.barcode.empty()) continue;
    text += std::to_string(e.address) + " " + e.barcode + " " + std::to_string(e.source) + "\n";
  }
  const fs::path file = dir / "inventory";
  const fs::path tmp = dir / "inventory.tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = tmp.string() + ": " + std::strerror(errno);
    return false;
  }
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0) {
    error = file.string() + ": cannot write the inventory";
    return false;
  }
  // The rename itself must survive a power cut: sync the directory.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

}  // namespace

std::unique_ptr<VirtualLibrary> VirtualLibrary::open(const LibrarySpec& spec,
                                                     std::span<const std::uint8_t> installation_id,
                                                     std::string& error) {
  if (spec.drives == 0 || spec.drives > 64 || spec.slots == 0 || spec.slots > 4096 ||
      spec.import_export > 16) {
    error = spec.name + ": drives 1-64, slots 1-4096, import_export 0-16";
    return nullptr;
  }
  std::unique_ptr<VirtualLibrary> lib(new VirtualLibrary());
  lib->name_ = spec.name;
  lib->dir_ = spec.dir;
  std::error_code ec;
  fs::create_directories(spec.dir / "cartridges", ec);
  if (ec) {
    error = spec.dir.string() + ": " + ec.message();
    return nullptr;
  }

  // Cartridges: create the files of new ones; apply write protection.
  std::set<std::string> known;
  for (const CartridgeSpec& c : spec.cartridges) {
    if (!valid_barcode(c.barcode) || !known.insert(c.barcode).second) {
      error = spec.name + ": bad or duplicate barcode '" + c.barcode + "'";
      return nullptr;
    }
    const fs::path path = lib->cartridge_path(c.barcode);
    std::unique_ptr<Cartridge> cart;
    if (!fs::exists(path)) {
      Cartridge::Attributes a{c.barcode, c.capacity, c.early_warning, c.write_protected};
      cart = Cartridge::create(path, a, error);
      if (cart)
        spdlog::info("{}: created cartridge {} ({} bytes)", spec.name, c.barcode, c.capacity);
    } else {
      cart = Cartridge::open(path, error);
      if (cart && cart->attributes().write_protected != c.write_protected) {
        cart->set_write_protected(c.write_protected);
      }
    }
    if (!cart) {
      error = spec.name + ": cartridge " + c.barcode + ": " + error;
      return nullptr;
    }
  }

  // Elements, then their contents from the inventory.
  std::vector<Element> elements;
  elements.push_back({Element::kTransport, kTransportAddress, {}, 0});
  for (unsigned i = 0; i < spec.import_export; ++i) {
    elements.push_back(
        {Element::kImportExport, static_cast<std::uint16_t>(kFirstImportExport + i), {}, 0});
  }
  for (unsigned i = 0; i < spec.drives; ++i) {
    elements.push_back(
        {Element::kDataTransfer, static_cast<std::uint16_t>(kFirstDrive + i), {}, 0});
  }
  for (unsigned i = 0; i < spec.slots; ++i) {
    elements.push_back({Element::kStorage, static_cast<std::uint16_t>(kFirstSlot + i), {}, 0});
  }
  std::map<std::uint16_t, std::pair<std::string, std::uint16_t>> inventory;
  if (!load_inventory(spec.dir / "inventory", inventory, error)) return nullptr;
  std::set<std::string> placed;
  for (Element& e : elements) {
    const auto it = inventory.find(e.address);
    if (it == inventory.end() || e.type == Element::kTransport) continue;
    const std::string& barcode = it->second.first;
    if (!fs::exists(lib->cartridge_path(barcode)) || !placed.insert(barcode).second) {
      spdlog::warn("{}: inventory names {} at {}, which does not exist: dropped", spec.name,
                   barcode, e.address);
      continue;
    }
    e.barcode = barcode;
    e.source = it->second.second;
  }
  // Cartridges of the specification that are nowhere yet go to free slots.
  for (const CartridgeSpec& c : spec.cartridges) {
    if (placed.count(c.barcode)) continue;
    bool done = false;
    for (Element& e : elements) {
      if (e.type == Element::kStorage && e.barcode.empty()) {
        e.barcode = c.barcode;
        e.source = 0;
        placed.insert(c.barcode);
        done = true;
        break;
      }
    }
    if (!done) {
      spdlog::warn("{}: no free slot for cartridge {}", spec.name, c.barcode);
    }
  }

  // Units: the drives (with what the inventory put into them), the changer.
  std::size_t drive_index = 0;
  for (const Element& e : elements) {
    if (e.type != Element::kDataTransfer) continue;
    auto drive = std::make_shared<SscDrive>(
        make_identity(0x01, "VIRTUAL TAPE", installation_id, lib->drive_name(drive_index++)));
    drive->set_verify_reads(spec.verify_reads);
    if (!e.barcode.empty()) {
      std::unique_ptr<Cartridge> c = Cartridge::open(lib->cartridge_path(e.barcode), error);
      if (!c) {
        error = spec.name + ": cartridge " + e.barcode + ": " + error;
        return nullptr;
      }
      drive->insert(std::move(c));
    }
    lib->drives_.push_back(std::move(drive));
  }
  // The changer may outlive this object: its callbacks hold copies.
  const fs::path dir = spec.dir;
  const std::string name = spec.name;
  SmcChanger::OpenCartridge open_cartridge = [dir](const std::string& barcode, std::string& err) {
    return Cartridge::open(dir / "cartridges" / (barcode + ".tape"), err);
  };
  SmcChanger::OnChange on_change = [dir, name](const std::vector<Element>& now) {
    std::string err;
    if (!save_inventory(dir, now, err)) spdlog::error("{}: {}", name, err);
  };
  if (!save_inventory(dir, elements, error)) return nullptr;
  lib->changer_ = std::make_shared<SmcChanger>(
      make_identity(0x08, "VIRTUAL LIBRARY", installation_id, lib->changer_name()),
      std::move(elements), lib->drives_, std::move(open_cartridge), std::move(on_change));
  return lib;
}

}  // namespace scsi::emu
