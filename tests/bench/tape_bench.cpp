// Tape benchmark (run on demand; prints figures, asserts nothing): write
// and read 1 GiB in 256 KiB records (or --record bytes) through the whole
// emulated path — TapeDrive -> EmulatedDevice -> SscDrive -> Cartridge
// file — against dd of the same amount, in the same record size, to and
// from a file in the same directory, in the same run, rounds alternating,
// medians reported.  Also the same records written in fixed-block mode,
// about 1 MiB per WRITE: what one command per record costs.
//
// Reads are measured twice: from the page cache (the bytes just written,
// as dd reads them back) and from the disk, which is how a restore reads a
// cartridge written days ago: the cartridge's pages dropped with
// POSIX_FADV_DONTNEED (what stays resident is printed), then the tape read
// against dd of the cartridge's own data file, dropped again.  The
// page-cache read is also set against the cost of the CRC-32C check alone,
// measured in the same run: a checked read costs the unverified read plus
// that.
//
//   tape_bench [--dir DIR] [--mib 1024] [--rounds 5] [--record 262144]

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "scsi/cdb.h"
#include "scsi/crc32c.h"
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

// Drops `path`'s clean pages from the page cache; returns the fraction of
// its pages still resident afterwards (mincore), or -1 if it cannot tell.
double drop_cache(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  double resident = -1;
  const off_t size = ::lseek(fd, 0, SEEK_END);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (size > 0) {
    void* map = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
    if (map != MAP_FAILED) {
      std::vector<unsigned char> in((static_cast<std::size_t>(size) + page - 1) / page);
      if (::mincore(map, static_cast<std::size_t>(size), in.data()) == 0) {
        resident = double(std::count_if(in.begin(), in.end(),
                                        [](unsigned char c) { return (c & 1) != 0; })) /
                   double(in.size());
      }
      ::munmap(map, static_cast<std::size_t>(size));
    }
  }
  ::close(fd);
  return resident;
}

volatile std::uint32_t crc_sink = 0;

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
  const fs::path cartridge = registry->libraries()[0]->cartridge_path("BENCH1L6");
  fs::path cartridge_data = cartridge;
  cartridge_data += ".data";
  std::vector<double> tw, tw_fixed, tr, tr_unverified, dw, dr, tr_disk, dr_disk, crc;
  double resident_after_drop = 0;
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
    // The CRC-32C check alone, over the record buffer just read (in cache,
    // as the check finds it after its pread).
    start = Clock::now();
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < records; ++i) sum ^= scsi::crc32c(back);
    crc.push_back(seconds_since(start));
    crc_sink = sum;  // keeps the loop
    // From the disk: the cartridge's pages dropped, then a checked read,
    // and dd of the same file, dropped again.  A first, untimed dd brings
    // the bytes into whatever cache lies below this machine (a VM's host
    // caches what it reads), so that both timed reads find them the same.
    const std::string data_if = "if=" + cartridge_data.string();
    drop_cache(cartridge_data);
    run_dd({data_if, "of=/dev/null", bs, count});
    drive.rewind();
    resident_after_drop =
        std::max({resident_after_drop, drop_cache(cartridge), drop_cache(cartridge_data)});
    start = Clock::now();
    for (std::size_t i = 0; i < records; ++i) {
      if (const tape::TapeDrive::Read r = drive.read(back); !r.status.ok()) {
        std::fprintf(stderr, "read %zu from disk: %s\n", i, r.status.describe().c_str());
        return 1;
      }
    }
    tr_disk.push_back(seconds_since(start));
    resident_after_drop = std::max(resident_after_drop, drop_cache(cartridge_data));
    dr_disk.push_back(run_dd({data_if, "of=/dev/null", bs, count}));
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
  std::printf(
      "         the check alone: %.1f ms per GiB; the unverified read plus the check would be "
      "%.2f of dd's\n",
      median(crc) * 1e3 * 1024 / mib, median(dr) / (median(tr_unverified) + median(crc)));
  std::printf(
      "  read from disk: emulated tape %7.0f MB/s   dd %7.0f MB/s   ratio %.2f  (CRC checked; "
      "dd of its data file; at most %.1f%% of the pages left resident)\n",
      mb / median(tr_disk), mb / median(dr_disk), median(dr_disk) / median(tr_disk),
      resident_after_drop * 100);
  // Every round, for the noise: seconds per pass.
  const auto rounds_of = [](const char* what, const std::vector<double>& v) {
    std::printf("  %-26s", what);
    for (const double t : v) std::printf(" %.3f", t);
    std::printf("\n");
  };
  std::printf("seconds per round:\n");
  rounds_of("write, tape", tw);
  rounds_of("write, tape, fixed-block", tw_fixed);
  rounds_of("write, dd", dw);
  rounds_of("read, tape, checked", tr);
  rounds_of("read, tape, unverified", tr_unverified);
  rounds_of("read, dd", dr);
  rounds_of("the check alone", crc);
  rounds_of("read from disk, tape", tr_disk);
  rounds_of("read from disk, dd", dr_disk);
  registry.reset();
  if (dir_arg.empty()) fs::remove_all(dir);
  return 0;
}
