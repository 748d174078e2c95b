// Throughput of the CopyEngine, block->stream: a file-backed emulated disk
// (filled with data first) copied by one EXTENDED COPY onto an emulated tape,
// in variable records of 256 KiB and in fixed blocks, against
// `dd if=<disk file> of=<scratch file> bs=256K` of the same bytes in the same
// run.  Both run warm (nothing is dropped from the page cache), both write
// into fresh space (dd's old file removed, the cartridge erased, untimed),
// both start with no writeback pending (sync, untimed).  Medians of 5
// rounds (or ROUNDS); the process's peak resident memory (VmHWM) before and after, and
// the engine's own bound.  Prints figures; asserts nothing about time.
//
// Usage: xcopy_bench [MiB [ROUNDS]]   (default 1024 5)

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "scsi/cdb.h"
#include "scsi/copy_engine.h"
#include "scsi/emu/library.h"
#include "scsi/emu/sbc_disk.h"

namespace {

using Clock = std::chrono::steady_clock;

long vm_hwm_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

scsi::Result exec(scsi::Device& d, scsi::Bytes cdb, std::span<const std::uint8_t> out = {}) {
  scsi::Command c;
  c.cdb = std::move(cdb);
  c.direction = out.empty() ? scsi::Direction::kNone : scsi::Direction::kOut;
  c.data_out = out;
  return d.execute(c);
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double run_dd(const std::string& in, const std::string& out) {
  // A fresh file, as the cartridge is rewritten from the beginning (its
  // file cut back to the superblock): both write new pages.  Removing the
  // old file is not timed.  (Truncating an existing file to 0 instead
  // would make ext4 flush it on close (auto_da_alloc), timing the disk.)
  std::filesystem::remove(out);
  ::sync();
  const auto t = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string i = "if=" + in, o = "of=" + out;
    ::execlp("dd", "dd", i.c_str(), o.c_str(), "bs=256K", "status=none", nullptr);
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::fprintf(stderr, "dd failed\n");
  return seconds_since(t);
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024;
  const int rounds = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  const std::uint64_t size = mib << 20;
  char tmpl[] = "/tmp/ndmpd-xcopy-bench-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const std::filesystem::path dir = tmpl;
  const std::string disk_file = (dir / "disk.img").string();
  const std::string dd_out = (dir / "dd.out").string();

  {  // the disk's data: a non-trivial pattern, written once
    const int fd = ::open(disk_file.c_str(), O_RDWR | O_CREAT, 0600);
    std::vector<std::uint8_t> b(8u << 20);
    for (std::uint64_t off = 0; off < size; off += b.size()) {
      for (std::size_t i = 0; i < b.size(); i += 8) {
        const std::uint64_t v = (off + i) * 0x9E3779B97F4A7C15ull;
        std::memcpy(b.data() + i, &v, 8);
      }
      if (::pwrite(fd, b.data(), b.size(), static_cast<off_t>(off)) < 0) return 1;
    }
    ::fsync(fd);
    ::close(fd);
  }
  const scsi::Bytes install(16, 0x42);
  std::string error;
  auto disk = scsi::emu::SbcDisk::open(scsi::emu::make_identity(0, "DISK", install, "bench"),
                                       disk_file, size, 512, error);
  scsi::emu::LibrarySpec spec;
  spec.name = "vtl";
  spec.dir = dir / "vtl";
  spec.drives = 1;
  spec.slots = 2;
  spec.cartridges.push_back({"BENCH1L6", size * 2 + (64u << 20), size * 2, false});
  auto lib = scsi::emu::VirtualLibrary::open(spec, install, error);
  if (!disk || !lib) {
    std::fprintf(stderr, "setup: %s\n", error.c_str());
    return 1;
  }
  auto changer = std::make_shared<scsi::emu::EmulatedDevice>(lib->changer(), "changer");
  exec(*changer, scsi::cdb::move_medium(0, 1024, 256, false));
  auto drive = lib->drives()[0];
  auto tape = std::make_shared<scsi::emu::EmulatedDevice>(drive, "tape");
  auto disk_dev = std::make_shared<scsi::emu::EmulatedDevice>(disk, "disk");
  exec(*tape, scsi::cdb::test_unit_ready());  // the load's unit attention

  scsi::xcopy::EngineSettings settings;
  scsi::xcopy::CopyEngine engine(
      [&](const scsi::xcopy::TargetDescriptor& d) -> std::shared_ptr<scsi::Device> {
        if (d.designator == disk->identity().naa) return disk_dev;
        if (d.designator == drive->identity().naa) return tape;
        return nullptr;
      },
      settings);

  auto copy_once = [&](bool fixed) -> double {
    exec(*tape, scsi::cdb::rewind(false));
    // The last round's records are erased untimed, as dd's old file is
    // removed untimed: both then write into fresh space.
    exec(*tape, scsi::cdb::erase6(false, false));
    scsi::Bytes ms = {0, 0, 0x10, 8, 0, 0, 0, 0, 0, 0, 0, 0};
    if (fixed) ms[9] = 0x01;  // block length 64 KiB (descriptor bytes 5-7)
    exec(*tape, scsi::cdb::mode_select6(true, false, 12), ms);
    scsi::xcopy::ParameterList l;
    scsi::xcopy::TargetDescriptor src, dst;
    src.peripheral_type = 0;
    src.designator = disk->identity().naa;
    dst.peripheral_type = 1;
    dst.designator = drive->identity().naa;
    dst.pad = src.pad = true;
    if (fixed) {
      dst.fixed = true;
      dst.block_length = 64u << 10;
    }
    l.targets = {src, dst};
    const std::uint64_t per = 1ull << 30;  // bytes per 08h segment
    for (std::uint64_t off = 0; off < size; off += per) {
      scsi::xcopy::Segment s;
      s.type = scsi::xcopy::SegmentType::kBlockOffsetToStream;
      s.source = 0;
      s.destination = 1;
      s.stream_length = fixed ? 4 : 256u << 10;  // 256 KiB per WRITE either way
      s.byte_count = static_cast<std::uint32_t>(std::min(per, size - off));
      s.lba = off / 512;
      l.segments.push_back(s);
    }
    const scsi::Bytes params = scsi::xcopy::build_parameter_list(l);
    ::sync();  // no writeback left over from the round before
    const auto t = Clock::now();
    const scsi::Result r = engine.extended_copy(
        scsi::xcopy::extended_copy_cdb(static_cast<std::uint32_t>(params.size())), params);
    const double s = seconds_since(t);
    if (!r.ok()) std::fprintf(stderr, "copy failed: %s\n", scsi::describe_result(r).c_str());
    // What reached the tape: every block of the disk, in 256 KiB writes.
    std::vector<std::uint8_t> pos(32);
    scsi::Command c;
    c.cdb = scsi::cdb::read_position(scsi::cdb::ReadPositionForm::kLong);
    c.direction = scsi::Direction::kIn;
    c.data_in = pos;
    tape->execute(c);
    std::uint64_t objects = 0;
    for (int i = 8; i < 16; ++i) objects = objects << 8 | pos[static_cast<std::size_t>(i)];
    const std::uint64_t want =
        fixed ? size / (64u << 10) : (size + (256u << 10) - 1) / (256u << 10);
    if (objects != want) {
      std::fprintf(stderr, "tape holds %llu objects, expected %llu\n",
                   static_cast<unsigned long long>(objects), static_cast<unsigned long long>(want));
    }
    return s;
  };

  const long hwm_before = vm_hwm_kib();
  std::vector<double> var, fix, dd;
  for (int round = 0; round < rounds; ++round) {
    dd.push_back(run_dd(disk_file, dd_out));
    var.push_back(copy_once(false));
    fix.push_back(copy_once(true));
    // Each round's figures: this machine's page cache has slow rounds
    // (the hypervisor takes back free memory), which medians then show.
    std::printf("  round %d: dd %.3f s, variable %.3f s, fixed %.3f s\n", round + 1, dd.back(),
                var.back(), fix.back());
  }
  const long hwm_after = vm_hwm_kib();
  const double mb = static_cast<double>(size) / (1 << 20);
  const double d = median(dd), v = median(var), f = median(fix);
  std::printf("xcopy_bench: %llu MiB, block->stream, medians of %d rounds, warm cache\n",
              static_cast<unsigned long long>(mib), rounds);
  std::printf("  dd bs=256K                 %7.3f s  %8.1f MiB/s\n", d, mb / d);
  std::printf("  engine variable 256 KiB    %7.3f s  %8.1f MiB/s  %.2fx dd\n", v, mb / v, d / v);
  std::printf("  engine fixed 4x64 KiB      %7.3f s  %8.1f MiB/s  %.2fx dd\n", f, mb / f, d / f);
  std::printf("  VmHWM before %ld KiB, after %ld KiB; engine bound %zu KiB data per copy\n",
              hwm_before, hwm_after, settings.buffer_bytes >> 10);
  lib.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
