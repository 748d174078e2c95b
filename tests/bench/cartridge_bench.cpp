// Throughput of the cartridge file against dd on the same filesystem: 1 GiB
// written and read back in blocks of RECORD bytes (default 256 KiB) through
// scsi::emu::Cartridge, and `dd bs=RECORD` writing and reading a plain file
// of the same size, alternating, five rounds; prints medians and ratios.
// Also CRC-32C throughput.  RECORD=10240 is what ndmjob's tar backups write
// (20 blocks of 512 bytes).
//
//   cartridge_bench [DIRECTORY [RECORD]]   (default: $TMPDIR, else /tmp)
//
// Neither side syncs while timed: both measure the path into and out of the
// page cache, which is where a cartridge's cost over a plain file shows.
// (Before each timed write everything is synced, so that the writeback of
// what an earlier step wrote does not land on the next one.)

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "scsi/crc32c.h"
#include "scsi/emu/cartridge.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using scsi::emu::Cartridge;

constexpr std::size_t kBlock = 256 << 10;  // the CRC figures' block
constexpr int kRounds = 5;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Runs dd with `args`; returns its wall time, or a negative number.
double run_dd(const std::vector<std::string>& args) {
  std::vector<char*> argv{const_cast<char*>("dd")};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(const_cast<char*>("status=none"));
  argv.push_back(nullptr);
  const auto start = Clock::now();
  pid_t pid = 0;
  if (posix_spawnp(&pid, "dd", nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return -1;
  }
  return seconds_since(start);
}

void remove_cartridge(const fs::path& p) {
  fs::remove(p);
  fs::remove(fs::path(p.string() + ".data"));
}

double cartridge_write(const fs::path& p, const std::vector<std::uint8_t>& block,
                       std::size_t blocks) {
  remove_cartridge(p);
  ::sync();
  const auto start = Clock::now();
  std::string error;
  auto c = Cartridge::create(p, {"BENCH1", 1ull << 40, 1ull << 39, false}, error);
  if (!c) {
    std::fprintf(stderr, "create: %s\n", error.c_str());
    return -1;
  }
  for (std::size_t i = 0; i < blocks; ++i) {
    if (c->write_block(block, error) != Cartridge::WriteResult::kOk) {
      std::fprintf(stderr, "write: %s\n", error.c_str());
      return -1;
    }
  }
  c.reset();
  return seconds_since(start);
}

double cartridge_read(const fs::path& p, std::vector<std::uint8_t>& buffer, std::size_t blocks) {
  const auto start = Clock::now();
  std::string error;
  auto c = Cartridge::open(p, error);
  if (!c) {
    std::fprintf(stderr, "open: %s\n", error.c_str());
    return -1;
  }
  std::uint32_t size = 0;
  for (std::size_t i = 0; i < blocks; ++i) {
    if (!c->read_block(buffer, size, error) || size != buffer.size()) {
      std::fprintf(stderr, "read: %s\n", error.c_str());
      return -1;
    }
  }
  c.reset();
  return seconds_since(start);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void crc_figures() {
  std::vector<std::uint8_t> b(kBlock);
  std::mt19937_64 rng(1);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  const auto measure = [&](auto extend) {
    const auto start = Clock::now();
    std::uint32_t c = 0;
    for (int i = 0; i < 4096; ++i) c = extend(c, b);
    const double s = seconds_since(start);
    if (c == 0x12345678u) std::printf(" ");  // keeps the loop
    return 1.0 / s;                          // GiB/s: 4096 x 256 KiB = 1 GiB
  };
  std::printf("CRC-32C over 256 KiB blocks: portable %.2f GiB/s",
              measure(scsi::crc32c_impl::extend_portable));
  if (scsi::crc32c_impl::hardware_available()) {
    std::printf(", sse4.2 %.2f GiB/s", measure(scsi::crc32c_impl::extend_hardware));
  }
  if (scsi::crc32c_impl::vector_available()) {
    std::printf(", vpclmulqdq with crc32 %.2f GiB/s", measure(scsi::crc32c_impl::extend_vector));
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const char* tmp = std::getenv("TMPDIR");
  const fs::path dir = argc > 1 ? argv[1] : (tmp != nullptr ? tmp : "/tmp");
  const std::size_t record = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : kBlock;
  if (record == 0 || record > Cartridge::kMaxBlock) {
    std::fprintf(stderr, "RECORD must be 1..%zu bytes\n", Cartridge::kMaxBlock);
    return 2;
  }
  const std::size_t blocks = (1u << 30) / record;  // about 1 GiB
  const std::string bs = "bs=" + std::to_string(record);
  const std::string count = "count=" + std::to_string(blocks);
  const fs::path plain = dir / "cartridge_bench.dd";
  const fs::path cartridge = dir / "cartridge_bench.vtape";
  crc_figures();

  std::vector<std::uint8_t> block(record);
  std::mt19937_64 rng(2);
  for (auto& x : block) x = static_cast<std::uint8_t>(rng());
  std::vector<std::uint8_t> buffer(record);

  std::vector<double> dd_w, dd_r, c_w, c_r;
  for (int round = 0; round < kRounds; ++round) {
    const auto dd = [&] {
      fs::remove(plain);
      ::sync();
      dd_w.push_back(run_dd({"if=/dev/zero", "of=" + plain.string(), bs, count}));
      dd_r.push_back(run_dd({"if=" + plain.string(), "of=/dev/null", bs}));
      fs::remove(plain);
    };
    const auto ours = [&] {
      c_w.push_back(cartridge_write(cartridge, block, blocks));
      c_r.push_back(cartridge_read(cartridge, buffer, blocks));
      remove_cartridge(cartridge);
    };
    if (round % 2 == 0) {
      dd();
      ours();
    } else {
      ours();
      dd();
    }
    std::printf("round %d: write dd %.3f s, cartridge %.3f s; read dd %.3f s, cartridge %.3f s\n",
                round, dd_w.back(), c_w.back(), dd_r.back(), c_r.back());
    for (double t : {dd_w.back(), dd_r.back(), c_w.back(), c_r.back()}) {
      if (t < 0) {
        std::fprintf(stderr, "a run failed\n");
        return 1;
      }
    }
  }
  const double w_dd = median(dd_w), w_c = median(c_w), r_dd = median(dd_r), r_c = median(c_r);
  const double bytes = static_cast<double>(blocks * record);
  std::printf("medians of %d rounds, %zu blocks of %zu bytes, in %s:\n", kRounds, blocks, record,
              dir.string().c_str());
  std::printf("  write: dd %.0f MiB/s, cartridge %.0f MiB/s, cartridge/dd = %.2f\n",
              bytes / w_dd / (1 << 20), bytes / w_c / (1 << 20), w_dd / w_c);
  std::printf("  read:  dd %.0f MiB/s, cartridge %.0f MiB/s, cartridge/dd = %.2f\n",
              bytes / r_dd / (1 << 20), bytes / r_c / (1 << 20), r_dd / r_c);
  return 0;
}
