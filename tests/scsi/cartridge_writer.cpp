// The child of the cartridge crash test: opens a cartridge, moves to a
// given object, and writes blocks (one at a time, or several of one size in
// one call) and filemarks until it is killed (or has
// written kMaxObjects), telling the parent on stdout what it is about to
// write and what was acknowledged.
//
//   cartridge_writer CARTRIDGE ROUND START
//
// Objects are drawn from a generator seeded by ROUND; a block's content
// begins with its object number and ROUND, so that a block read back in the
// wrong place cannot pass for the right one.  Reports are fixed-size binary
// records (smaller than PIPE_BUF, so each write to the pipe is atomic).
// Exit status: 0 after kMaxObjects, 2 on any failure.

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "scsi/emu/cartridge.h"

namespace {

// Shared with cartridge_crash_test.cpp (by copy: the two are separate
// programs).
struct Report {
  std::uint8_t type;  // 1: about to write, 2: acknowledged
  std::uint8_t filemark;
  std::uint16_t reserved;
  std::uint32_t size;
  std::uint64_t object;
  std::uint64_t hash;  // FNV-1a 64 of a block's content
};
static_assert(sizeof(Report) == 24);

constexpr std::uint64_t kMaxObjects = 20000;

std::uint64_t fnv1a(const std::vector<std::uint8_t>& data) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (const std::uint8_t b : data) h = (h ^ b) * 0x100000001B3ull;
  return h;
}

bool send(const Report& r) {
  const char* p = reinterpret_cast<const char*>(&r);
  std::size_t left = sizeof r;
  while (left > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

std::vector<std::uint8_t> content(std::uint32_t round, std::uint64_t object, std::uint32_t size) {
  std::vector<std::uint8_t> b(size);
  std::uint64_t x = (object + 1) * 0x9E3779B97F4A7C15ull ^ (std::uint64_t{round} << 32);
  for (std::uint32_t i = 0; i < size; ++i) {
    if (i % 8 == 0) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
    b[i] = static_cast<std::uint8_t>(x >> (8 * (i % 8)));
  }
  std::uint8_t id[16];
  for (int i = 0; i < 8; ++i) id[i] = static_cast<std::uint8_t>(object >> (8 * i));
  for (int i = 0; i < 4; ++i) id[8 + i] = static_cast<std::uint8_t>(round >> (8 * i));
  for (int i = 0; i < 4; ++i) id[12 + i] = static_cast<std::uint8_t>(size >> (8 * i));
  std::memcpy(b.data(), id, std::min<std::size_t>(size, sizeof id));
  return b;
}

std::uint32_t block_size(std::mt19937_64& rng) {
  const auto bucket = rng() % 100;
  if (bucket < 70) return static_cast<std::uint32_t>(1 + rng() % 4096);
  if (bucket < 95) return static_cast<std::uint32_t>(1 + rng() % (256 << 10));
  return static_cast<std::uint32_t>(1 + rng() % (1 << 20));
}

int fail(const std::string& what) {
  std::fprintf(stderr, "cartridge_writer: %s\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return fail("usage: cartridge_writer CARTRIDGE ROUND START");
  const auto round = static_cast<std::uint32_t>(std::strtoul(argv[2], nullptr, 10));
  const std::uint64_t start = std::strtoull(argv[3], nullptr, 10);
  std::string error;
  auto cartridge = scsi::emu::Cartridge::open(argv[1], error);
  if (!cartridge) return fail(error);
  if (!cartridge->locate(start)) return fail("cannot locate to " + std::to_string(start));

  std::mt19937_64 rng(round * 7919ull + 17);
  while (cartridge->position() < start + kMaxObjects) {
    const std::uint64_t object = cartridge->position();
    if (rng() % 16 == 0) {
      const auto count = static_cast<std::uint32_t>(1 + rng() % 3);
      for (std::uint32_t i = 0; i < count; ++i) {
        if (!send({1, 1, 0, 0, object + i, 0})) return fail("report");
      }
      const auto r = cartridge->write_filemarks(count, error);
      if (r != scsi::emu::Cartridge::WriteResult::kOk) return fail("write filemarks: " + error);
      for (std::uint32_t i = 0; i < count; ++i) {
        if (!send({2, 1, 0, 0, object + i, 0})) return fail("report");
      }
      continue;
    }
    if (rng() % 8 == 0) {
      // A fixed-block WRITE: several blocks of one size in one call.
      const auto count = static_cast<std::uint32_t>(2 + rng() % 7);
      const auto size = static_cast<std::uint32_t>(1 + rng() % (64u << 10));
      std::vector<std::uint8_t> data;
      std::vector<std::uint64_t> hashes;
      for (std::uint32_t i = 0; i < count; ++i) {
        const auto block = content(round, object + i, size);
        hashes.push_back(fnv1a(block));
        data.insert(data.end(), block.begin(), block.end());
      }
      for (std::uint32_t i = 0; i < count; ++i) {
        if (!send({1, 0, 0, size, object + i, hashes[i]})) return fail("report");
      }
      std::uint32_t written = 0;
      const auto r = cartridge->write_blocks(data, size, written, error);
      if (r != scsi::emu::Cartridge::WriteResult::kOk || written != count) {
        return fail("write blocks: " + error);
      }
      for (std::uint32_t i = 0; i < count; ++i) {
        if (!send({2, 0, 0, size, object + i, hashes[i]})) return fail("report");
      }
      continue;
    }
    const std::uint32_t size = block_size(rng);
    const auto data = content(round, object, size);
    const std::uint64_t hash = fnv1a(data);
    if (!send({1, 0, 0, size, object, hash})) return fail("report");
    const auto r = cartridge->write_block(data, error);
    if (r != scsi::emu::Cartridge::WriteResult::kOk) return fail("write: " + error);
    if (!send({2, 0, 0, size, object, hash})) return fail("report");
  }
  return 0;
}
