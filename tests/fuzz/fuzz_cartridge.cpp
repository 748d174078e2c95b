// Fuzz target: opening a cartridge of the virtual tape library from
// arbitrary files, the emulated drive's least trusted input (the files lie
// on a disk that a power cut, a failing sector or a careless copy can leave
// in any state).  The input is a 4-byte little-endian length L, then L
// bytes of the map file, then the data file.
//
// Beyond "no crash, no sanitizer report": open() either refuses with a
// reason or recovers to a cartridge whose files end exactly at its end of
// data; every object up to it can be visited (a block reads back whole or
// fails, never short); and the cartridge then takes a block at the end and
// a filemark in the middle as any other would, and opens again with what
// those left: exactly that when open() verified the table whole, no more
// when it took entries before its window on trust (they are verified as
// they are read, and a later open may verify them and end before).  A
// violated invariant aborts, which libFuzzer reports as a crash.
//
// Built with -DNDMPD_CARTRIDGE_SEEDS it is instead a program that writes
// the seed corpus (real cartridges, whole and damaged) into the directory
// it is given (run once by hand; the corpus is committed):
//   fuzz_cartridge_seeds tests/fuzz/corpus/cartridge

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "scsi/emu/cartridge.h"

namespace {

namespace fs = std::filesystem;
using scsi::emu::Cartridge;
using Bytes = std::vector<std::uint8_t>;
using Span = std::span<const std::uint8_t>;

constexpr std::uint64_t kMapStart = 4096;
constexpr std::uint64_t kEntrySize = 32;

// Aborts with the line of the invariant that failed, for the reproducer.
void check_at(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_cartridge: invariant at line %d failed\n", line);
  std::abort();
}
#define check(ok) check_at((ok), __LINE__)

void write_file(const fs::path& p, Span b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  check(static_cast<bool>(out));
}

// A scratch directory, once per process: in /dev/shm where there is one,
// so that the cartridge's fdatasyncs cost nothing.
struct Scratch {
  Scratch() {
    std::string tmpl = (fs::is_directory("/dev/shm") ? std::string("/dev/shm") : "/tmp") +
                       "/ndmpd-fuzz-cartridge-XXXXXX";
    check(::mkdtemp(tmpl.data()) != nullptr);
    top = tmpl;
    map = top / "c.tape";
    data = top / "c.tape.data";
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(top, ec);
  }
  fs::path top, map, data;
};

std::unique_ptr<Cartridge> open_cartridge(const Scratch& s) {
  std::string error;
  auto c = Cartridge::open(s.map, error);
  check(c != nullptr || !error.empty());
  return c;
}

// Visits every object from the beginning; returns the filemarks seen.
std::uint64_t visit_all(Cartridge& c) {
  const std::uint64_t eod = c.end_of_data();
  std::uint64_t marks = 0;
  Bytes buffer;
  for (std::uint64_t n = 0; n < eod; ++n) {
    check(c.position() == n);
    const Cartridge::Object o = c.peek();
    check(o.kind != Cartridge::Kind::kEndOfData);
    if (o.kind == Cartridge::Kind::kBlock) {
      check(o.size <= Cartridge::kMaxBlock);
      buffer.resize(o.size);
      std::uint32_t size = 0;
      std::string error;
      if (c.read_block(buffer, size, error)) {
        check(size == o.size && o.size > 0);
        check(c.position() == n + 1);
        continue;
      }
      check(!error.empty() && c.position() == n);
    } else {
      ++marks;
    }
    c.skip();
  }
  check(c.position() == eod && c.peek().kind == Cartridge::Kind::kEndOfData);
  return marks;
}

// Whether the block at `n` reads back as `expected`.
bool reads_back(Cartridge& c, std::uint64_t n, Span expected) {
  if (!c.locate(n)) return false;
  Bytes back(expected.size() + 1);
  std::uint32_t size = 0;
  std::string error;
  return c.read_block(back, size, error) && size == expected.size() &&
         std::equal(expected.begin(), expected.end(), back.begin());
}

// Whether the object at `n` shows as an entry that cannot be read.
bool unreadable(Cartridge& c, std::uint64_t n) {
  if (!c.locate(n)) return false;
  const Cartridge::Object o = c.peek();
  return o.kind == Cartridge::Kind::kBlock && o.size == 0;
}

void fuzz(const Scratch& s, Span map, Span data) {
  write_file(s.map, map);
  write_file(s.data, data);
  // open() verifies the last kTailObjects entries after those that a sync
  // made durable (cartridge.cpp); those before are verified when read.  A
  // table no longer than that, with none synced, is verified whole, and
  // then every reopen below must agree exactly.
  constexpr std::uint64_t kTailObjects = 256;
  bool verified_whole = (map.size() - kMapStart) / kEntrySize <= kTailObjects;
  std::uint64_t eod = 0;
  const std::uint8_t block[3] = {1, 2, 3};
  {
    auto c = open_cartridge(s);
    if (!c) return;
    eod = c->end_of_data();
    check(c->synced() <= eod);
    verified_whole = verified_whole && c->synced() == 0;
    // The files end at the end of data: the torn tail is cut.
    check(eod <= (map.size() - kMapStart) / kEntrySize);
    check(fs::file_size(s.map) == kMapStart + eod * kEntrySize);
    check(fs::file_size(s.data) == c->bytes_used() && c->bytes_used() <= data.size());
    // Filemarks counted along the table agree with the count at its end
    // when open() verified it whole (entries before its window may come
    // from anywhere, and are checked one by one as they are read).
    const std::uint64_t marks = visit_all(*c);
    check(!verified_whole || marks == c->filemarks());
    if (const auto f = c->next_filemark(0)) check(*f < eod);
    if (const auto f = c->previous_filemark(eod)) check(*f < eod);
    check(!c->locate(eod + 1) && c->position() == eod);

    // A block at the end of data.
    std::string error;
    const auto r = c->write_block(block, error);
    if (r == Cartridge::WriteResult::kWriteProtected) return;
    if (r == Cartridge::WriteResult::kOverflow) {
      check(c->end_of_data() == eod);
      return;
    }
    check(r == Cartridge::WriteResult::kOk || r == Cartridge::WriteResult::kEarlyWarning);
    check(c->end_of_data() == eod + 1);
    check(reads_back(*c, eod, block));
  }
  {
    // It is there after a reopen (a reopen that verifies entries the first
    // open did not may end before it), and a filemark written in the
    // middle discards what follows it.
    auto c = open_cartridge(s);
    check(c != nullptr && c->end_of_data() <= eod + 1);
    check(!verified_whole || c->end_of_data() == eod + 1);
    if (c->end_of_data() == eod + 1) check(reads_back(*c, eod, block));
    eod = c->end_of_data();
    const std::uint64_t middle = eod / 2;
    std::string error;
    check(c->locate(middle));
    const auto r = c->write_filemarks(1, error);
    if (r == Cartridge::WriteResult::kIoError) {
      // Refused only where an entry it needs cannot be read.
      check(unreadable(*c, middle) || (middle > 0 && unreadable(*c, middle - 1)));
      return;
    }
    check(r == Cartridge::WriteResult::kOk || r == Cartridge::WriteResult::kEarlyWarning);
    check(c->end_of_data() == middle + 1 && c->synced() == middle + 1);
  }
  // The filemark was synced: it is never cut.
  std::string error;
  auto c = Cartridge::open(s.map, error);
  if (c == nullptr || c->end_of_data() != eod / 2 + 1) {
    std::fprintf(stderr, "fuzz_cartridge: after a filemark at %llu: %s\n",
                 static_cast<unsigned long long>(eod / 2),
                 c == nullptr ? error.c_str()
                              : ("end of data " + std::to_string(c->end_of_data()) + ", synced " +
                                 std::to_string(c->synced()))
                                    .c_str());
  }
  check(c != nullptr && c->end_of_data() == eod / 2 + 1);
  if (c->end_of_data() == eod / 2 + 1) {
    check(c->locate(eod / 2) && c->peek().kind == Cartridge::Kind::kFilemark);
  }
}

}  // namespace

#ifndef NDMPD_CARTRIDGE_SEEDS

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Scratch scratch;
  if (size < 4) return 0;
  const std::size_t map_size = std::size_t{data[0]} | std::size_t{data[1]} << 8 |
                               std::size_t{data[2]} << 16 | std::size_t{data[3]} << 24;
  const Span rest(data + 4, size - 4);
  if (map_size < kMapStart || map_size > rest.size()) return 0;
  fuzz(scratch, rest.first(map_size), rest.subspan(map_size));
  return 0;
}

#else  // NDMPD_CARTRIDGE_SEEDS

#include <iostream>

namespace {

Bytes read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Writes one seed: the cartridge's two files as they are now, each
// `change` applied to the map or the data first; and runs the target over
// it (in a scratch directory of its own), so that every seed is known to
// hold the invariants.
struct Change {
  bool in_map;
  std::uint64_t offset;  // from the end when `from_end`
  bool from_end;
  Bytes bytes;          // written there (the file grows if need be)
  std::int64_t resize;  // then: >= 0 cuts or grows the file to this many bytes
};

void write_seed(const Scratch& s, const fs::path& dir, const std::string& name,
                const std::vector<Change>& changes = {}) {
  Bytes map = read_file(s.map);
  Bytes data = read_file(s.data);
  for (const Change& c : changes) {
    Bytes& f = c.in_map ? map : data;
    const std::uint64_t at = c.from_end ? f.size() - c.offset : c.offset;
    if (f.size() < at + c.bytes.size()) f.resize(at + c.bytes.size());
    std::copy(c.bytes.begin(), c.bytes.end(), f.begin() + static_cast<std::ptrdiff_t>(at));
    if (c.resize >= 0) f.resize(static_cast<std::size_t>(c.resize));
  }
  Bytes input = {static_cast<std::uint8_t>(map.size()), static_cast<std::uint8_t>(map.size() >> 8),
                 static_cast<std::uint8_t>(map.size() >> 16),
                 static_cast<std::uint8_t>(map.size() >> 24)};
  input.insert(input.end(), map.begin(), map.end());
  input.insert(input.end(), data.begin(), data.end());
  write_file(dir / name, input);
  static const Scratch check_scratch;
  fuzz(check_scratch, Span(input).subspan(4, map.size()), Span(input).subspan(4 + map.size()));
}

std::unique_ptr<Cartridge> fresh(const Scratch& s, std::uint64_t capacity, bool protect) {
  std::error_code ec;
  fs::remove(s.map, ec);
  fs::remove(s.data, ec);
  std::string error;
  auto c = Cartridge::create(s.map, {"SEED01L6", capacity, capacity * 3 / 4, protect}, error);
  if (!c) std::cerr << error << "\n";
  return c;
}

void write_objects(Cartridge& c, int count, int filemark_every, std::uint32_t size) {
  std::string error;
  for (int i = 0; i < count; ++i) {
    if (filemark_every > 0 && i % filemark_every == filemark_every - 1) {
      c.write_filemarks(1, error);
    } else {
      c.write_block(Bytes(size + static_cast<std::uint32_t>(i % 7), static_cast<std::uint8_t>(i)),
                    error);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_cartridge_seeds DIR\n";
    return 2;
  }
  const fs::path dir = argv[1];
  fs::create_directories(dir);
  const Scratch s;
  fresh(s, 1 << 20, false).reset();
  write_seed(s, dir, "blank");
  fresh(s, 1 << 20, true).reset();
  write_seed(s, dir, "blank-write-protected");
  {
    auto c = fresh(s, 1 << 20, false);
    write_objects(*c, 12, 4, 20);
  }
  write_seed(s, dir, "blocks-and-filemarks");
  write_seed(s, dir, "torn-entry", {{true, 20, true, Bytes(20, 0), -1}});
  write_seed(s, dir, "torn-entry-cut",
             {{true, 0, false, {}, static_cast<std::int64_t>(fs::file_size(s.map) - 20)}});
  write_seed(s, dir, "torn-block",
             {{false, 0, false, {}, static_cast<std::int64_t>(fs::file_size(s.data) - 5)}});
  write_seed(s, dir, "zeros-after-the-table", {{true, 0, true, Bytes(256, 0), -1}});
  write_seed(s, dir, "damaged-entry", {{true, kMapStart + 3 * kEntrySize + 9, false, {0xFF}, -1}});
  write_seed(s, dir, "damaged-block", {{false, 30, false, {0xEE}, -1}});
  {
    auto c = fresh(s, 200, false);
    write_objects(*c, 12, 0, 20);  // past early warning, then overflow
  }
  write_seed(s, dir, "full");
  {
    auto c = fresh(s, 1 << 20, false);
    write_objects(*c, 300, 50, 1);  // more than open()'s window
  }
  write_seed(s, dir, "window-of-zeros",
             {{true, 280 * kEntrySize, true, Bytes(280 * kEntrySize, 0), -1}});
  std::cout << "seeds written to " << dir << "\n";
  return 0;
}

#endif  // NDMPD_CARTRIDGE_SEEDS
