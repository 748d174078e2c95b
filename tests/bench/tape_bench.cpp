// Tape benchmark (run on demand; prints figures, asserts nothing): write
// and read 1 GiB in 256 KiB records (or --record bytes) through the whole
// emulated path — TapeDrive -> EmulatedDevice -> SscDrive -> Cartridge
// file — against dd of the same amount, in the same record size, to and
// from a file in the same directory, in the same run, rounds alternating,
// medians reported.  Also the same records written in fixed-block mode,
// about 1 MiB per WRITE: what one command per record costs.
//
//   tape_bench [--dir DIR] [--mib 1024] [--rounds 5] [--record 262144]

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "scsi/cdb.h"
#include "scsi/emu/library.h"
#include "scsi/page_bytes.h"
#include "tape/registry.h"
#include "tape/tape_drive.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Runs dd with `args`; returns its wall time.
double run_dd(const std::vector<std::string>& args) {
  const auto start = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    std::vector<std::string> a = {"dd"};
    a.insert(a.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execvp("dd", argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return seconds_since(start);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"emulated tape throughput against dd"};
  std::string dir_arg;
  int mib = 1024, rounds = 5;
  std::size_t record_size = 256u << 10;
  app.add_option("--dir", dir_arg, "scratch directory (default: a new one in /tmp)");
  app.add_option("--mib", mib, "MiB per pass");
  app.add_option("--rounds", rounds, "passes of each");
  app.add_option("--record", record_size, "record size in bytes")
      ->check(CLI::Range(1, 0xFFFFFF));  // a 24-bit length
  CLI11_PARSE(app, argc, argv);

  char tmpl[] = "/tmp/ndmpd-tapebench-XXXXXX";
  const fs::path dir = dir_arg.empty() ? fs::path(::mkdtemp(tmpl)) : fs::path(dir_arg);
  const std::size_t records = std::size_t(mib) * (1u << 20) / record_size;
  // Records per fixed-block WRITE: about 1 MiB.
  const std::size_t per_write = std::max<std::size_t>(1, (1u << 20) / record_size);

  tape::RegistrySpec spec;
  spec.state_dir = dir;
  scsi::emu::LibrarySpec lib;
  lib.name = "bench";
  lib.dir = "vtl";
  lib.drives = 1;
  lib.slots = 1;
  lib.import_export = 0;
  lib.cartridges.push_back(
      {"BENCH1L6", std::uint64_t(mib + 64) << 20, std::uint64_t(mib + 32) << 20, false});
  spec.libraries.push_back(lib);
  std::string error;
  auto registry = tape::DeviceRegistry::open(spec, error);
  if (!registry) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  scsi::Bytes none;
  registry->libraries()[0]->changer()->execute(scsi::cdb::move_medium(0, 1024, 256, false), {},
                                               none);
  tape::TapeDrive drive(registry->find("bench.drive0")->device);
  drive.wait_ready(std::chrono::seconds(5));

  // Page-aligned buffers, as dd's are (and as the mover's are).
  scsi::PageBytes record(record_size);
  for (std::size_t i = 0; i < record.size(); ++i) record[i] = static_cast<std::uint8_t>(i * 131);
  scsi::PageBytes back(record_size);
  scsi::PageBytes batch(per_write * record_size);
  for (std::size_t i = 0; i < batch.size(); ++i) batch[i] = record[i % record_size];
  const std::string dd_file = (dir / "dd.out").string();
  const std::string count = "count=" + std::to_string(records);
  const std::string bs = "bs=" + std::to_string(record_size);

  const auto unit = registry->libraries()[0]->drives()[0];
  std::vector<double> tw, tw_fixed, tr, tr_unverified, dw, dr;
  for (int round = 0; round < rounds; ++round) {
    // Tape: write, a filemark (which syncs, as conv=fdatasync does), read.
    drive.rewind();
    auto start = Clock::now();
    for (std::size_t i = 0; i < records; ++i) {
      const tape::Status s = drive.write(record);
      if (!s.ok()) {
        std::fprintf(stderr, "write %zu: %s\n", i, s.describe().c_str());
        return 1;
      }
    }
    drive.write_filemarks(1);
    tw.push_back(seconds_since(start));
    drive.rewind();
    start = Clock::now();
    for (std::size_t i = 0; i < records; ++i) {
      const tape::TapeDrive::Read r = drive.read(back);
      if (!r.status.ok()) {
        std::fprintf(stderr, "read %zu: %s\n", i, r.status.describe().c_str());
        return 1;
      }
    }
    tr.push_back(seconds_since(start));
    // The same read without the per-record CRC check.
    unit->set_verify_reads(false);
    drive.rewind();
    start = Clock::now();
    for (std::size_t i = 0; i < records; ++i) drive.read(back);
    tr_unverified.push_back(seconds_since(start));
    unit->set_verify_reads(true);
    // The same records in fixed-block mode, per_write of them per WRITE.
    drive.rewind();
    if (const tape::Status s = drive.set_block_length(static_cast<std::uint32_t>(record_size));
        !s.ok()) {
      std::fprintf(stderr, "fixed-block mode: %s\n", s.describe().c_str());
      return 1;
    }
    start = Clock::now();
    for (std::size_t i = 0; i < records; i += per_write) {
      const std::size_t n = std::min(per_write, records - i);
      const tape::Status s = drive.write_fixed(std::span(batch).first(n * record_size),
                                               static_cast<std::uint32_t>(record_size));
      if (!s.ok()) {
        std::fprintf(stderr, "fixed write %zu: %s\n", i, s.describe().c_str());
        return 1;
      }
    }
    drive.write_filemarks(1);
    tw_fixed.push_back(seconds_since(start));
    drive.set_block_length(0);
    // dd: the same bytes to a file in the same directory, and back.
    dw.push_back(run_dd({"if=/dev/zero", "of=" + dd_file, bs, count, "conv=fdatasync"}));
    dr.push_back(run_dd({"if=" + dd_file, "of=/dev/null", bs, count}));
  }
  const double mb = double(records) * record_size / 1e6;
  std::printf("%d MiB in records of %zu bytes, median of %d rounds (dir %s)\n", mib, record_size,
              rounds, dir.c_str());
  std::printf("  write: emulated tape %7.0f MB/s   dd %7.0f MB/s   ratio %.2f\n", mb / median(tw),
              mb / median(dw), median(dw) / median(tw));
  std::printf(
      "  write: emulated tape %7.0f MB/s   dd %7.0f MB/s   ratio %.2f  (fixed-block mode, %zu "
      "records per WRITE)\n",
      mb / median(tw_fixed), mb / median(dw), median(dw) / median(tw_fixed), per_write);
  std::printf("  read:  emulated tape %7.0f MB/s   dd %7.0f MB/s   ratio %.2f  (CRC checked)\n",
              mb / median(tr), mb / median(dr), median(dr) / median(tr));
  std::printf(
      "  read:  emulated tape %7.0f MB/s   dd %7.0f MB/s   ratio %.2f  (verify_reads=false)\n",
      mb / median(tr_unverified), mb / median(dr), median(dr) / median(tr_unverified));
  registry.reset();
  if (dir_arg.empty()) fs::remove_all(dir);
  return 0;
}
