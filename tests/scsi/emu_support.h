// Test support for the emulated logical units: run a CDB against a unit and
// look at status, sense and data; build a virtual library in a scratch
// directory that is removed afterwards.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "scsi/device.h"
#include "scsi/emu/library.h"
#include "scsi/sense.h"

namespace scsi::testing {

struct Exec {
  Result result;
  Bytes data;                  // data-in, cut to what was transferred
  std::optional<Sense> sense;  // decoded, on CHECK CONDITION
  bool good() const { return result.ok(); }
  bool is(SenseKey k, std::uint8_t asc, std::uint8_t ascq) const {
    return sense && sense->is(k, asc, ascq);
  }
};

inline Exec run(emu::LogicalUnit& unit, const Bytes& cdb, std::size_t in = 0,
                const Bytes& out = {}) {
  Exec e;
  Bytes buf(in);
  e.result = unit.execute(cdb, out, buf);
  buf.resize(std::min(e.result.data_in, buf.size()));
  e.data = std::move(buf);
  if (e.result.check_condition()) e.sense = decode_sense(e.result.sense);
  return e;
}

// One CDB through any Device (an emulated unit's EmulatedDevice, an iSCSI
// or sg LUN): data-in into `in` or data-out from `out`, as given.
inline Result execute(Device& d, Bytes cdb, std::span<std::uint8_t> in = {},
                      std::span<const std::uint8_t> out = {}) {
  Command c;
  c.cdb = std::move(cdb);
  c.direction = !in.empty() ? Direction::kIn : (!out.empty() ? Direction::kOut : Direction::kNone);
  c.data_in = in;
  c.data_out = out;
  return d.execute(c);
}

// A scratch directory, removed with everything in it.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& what) {
    char tmpl[64];
    std::snprintf(tmpl, sizeof tmpl, "/tmp/ndmpd-%s-XXXXXX", what.c_str());
    path_ = ::mkdtemp(tmpl);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline emu::LibrarySpec library_spec(const std::filesystem::path& dir, unsigned cartridges,
                                     std::uint64_t capacity = 64u << 20,
                                     std::uint64_t early_warning = 60u << 20) {
  emu::LibrarySpec spec;
  spec.name = "vtl";
  spec.dir = dir;
  spec.drives = 2;
  spec.slots = 8;
  spec.import_export = 1;
  for (unsigned i = 1; i <= cartridges; ++i) {
    emu::CartridgeSpec c;
    c.barcode = "TST00" + std::to_string(i) + "L6";
    c.capacity = capacity;
    c.early_warning = early_warning;
    spec.cartridges.push_back(c);
  }
  return spec;
}

inline const Bytes& test_installation_id() {
  static const Bytes id(16, 0x42);
  return id;
}

// Fills `n` bytes with a pattern that depends on `seed` and the offset.
inline Bytes pattern(std::size_t n, std::uint32_t seed) {
  Bytes b(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    b[i] = static_cast<std::uint8_t>(x >> 16);
  }
  return b;
}

}  // namespace scsi::testing
