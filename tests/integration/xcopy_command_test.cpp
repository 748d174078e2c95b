// `ndmpd xcopy` as an operator runs it: the real binary, a scratch
// configuration and state directory, the virtual SAN's disks and library
// and the emulated copy manager.  Disk -> disk, disk -> tape and back, a
// copy across two cartridges after an end of medium (and one that ends
// exactly at early warning), and the refusals (an unknown device, a running
// daemon holding the devices, nothing to copy, LBAs and offsets past a
// disk's end or past 2^64).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "integration/daemon.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ndmpd::testing::run_command;
using ndmpd::testing::RunResult;

constexpr std::uint64_t kDiskBytes = 64u << 20;

std::vector<std::uint8_t> pattern(std::size_t n, std::uint32_t seed) {
  std::vector<std::uint8_t> b(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    b[i] = static_cast<std::uint8_t>(x >> 16);
  }
  return b;
}

class XcopyCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ndmpd-xcopy-cmd-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    config_ = dir_ / "ndmpd.toml";
    std::ofstream(config_) << "[server]\nstate_dir = \"" << (dir_ / "state").string() << "\"\n"
                           << R"(
[libraries.vtl0]
drives = 2
slots = 4
import_export = 0
cartridges = 3
cartridge_capacity_mb = 8
early_warning_mb = 2

[disks.lun0]
size_mb = 64
[disks.lun1]
size_mb = 64

[copy_managers.xcopy0]
max_segment_mib = 2
)";
    // lun0 holds the data before the registry first opens it (an existing
    // file keeps its size).
    fs::create_directories(dir_ / "state" / "san");
    data_ = pattern(kDiskBytes, 3);
    std::ofstream(dir_ / "state" / "san" / "lun0.img", std::ios::binary)
        .write(reinterpret_cast<const char*>(data_.data()),
               static_cast<std::streamsize>(data_.size()));
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  RunResult xcopy(std::vector<std::string> args) {
    std::vector<std::string> argv = {NDMPD_BINARY, "xcopy", "--config", config_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 120s);
  }
  std::vector<std::uint8_t> lun1(std::uint64_t offset, std::size_t n) {
    std::vector<std::uint8_t> b(n);
    const int fd = ::open((dir_ / "state" / "san" / "lun1.img").c_str(), O_RDONLY);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pread(fd, b.data(), n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
    ::close(fd);
    return b;
  }
  std::vector<std::uint8_t> source(std::uint64_t offset, std::size_t n) const {
    return {data_.begin() + static_cast<std::ptrdiff_t>(offset),
            data_.begin() + static_cast<std::ptrdiff_t>(offset + n)};
  }

  fs::path dir_, config_;
  std::vector<std::uint8_t> data_;
};

TEST_F(XcopyCommand, DiskToDisk) {
  const RunResult r =
      xcopy({"lun0", "lun1", "--bytes", "10M", "--source-lba", "16", "--destination-lba", "8"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("outcome:      OK"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("copied:       10485760 of 10485760 bytes"), std::string::npos)
      << r.output;
  EXPECT_EQ(lun1(8 * 512, 10u << 20), source(16 * 512, 10u << 20));
  EXPECT_EQ(lun1(0, 8 * 512), std::vector<std::uint8_t>(8 * 512, 0));  // before it: untouched
}

TEST_F(XcopyCommand, DiskToTapeAndBack) {
  const std::uint64_t n = (5u << 20) + 4096;  // no multiple of the record size
  const std::string bytes = std::to_string(n);
  RunResult r = xcopy(
      {"lun0", "vtl0.drive0", "--load", "NDMP001L6", "--bytes", bytes, "--record-size", "256K"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("loaded NDMP001L6 into vtl0.drive0"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "state" / "library" / "vtl0" / "cartridges" / "NDMP001L6.tape"));

  // A new process finds the cartridge still loaded, at the beginning.
  r = xcopy(
      {"vtl0.drive0", "lun1", "--load", "NDMP001L6", "--bytes", bytes, "--record-size", "256K"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(lun1(0, n), source(0, n));
}

TEST_F(XcopyCommand, EndOfMediumThenTheRestOnAnotherCartridge) {
  const std::uint64_t n = 10u << 20;  // early warning comes at 6 MiB
  RunResult r = xcopy({"lun0", "vtl0.drive0", "--load", "NDMP001L6", "--bytes", std::to_string(n),
                       "--record-size", "256K"});
  ASSERT_EQ(r.status, 4) << r.output;
  EXPECT_NE(r.output.find("end of medium"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("destination sense:"), std::string::npos) << r.output;
  // The copy manager's segment number is the command's, and says so.
  EXPECT_NE(r.output.find(", failing segment 2 of EXTENDED COPY command 1"), std::string::npos)
      << r.output;
  const auto at = r.output.find("--source-offset ");
  ASSERT_NE(at, std::string::npos) << r.output;
  const std::uint64_t done = std::stoull(r.output.substr(at + 16));
  EXPECT_GE(done, 6u << 20);
  EXPECT_LT(done, n);

  r = xcopy({"lun0", "vtl0.drive1", "--load", "NDMP002L6", "--source-offset", std::to_string(done),
             "--bytes", std::to_string(n - done), "--record-size", "256K"});
  ASSERT_EQ(r.status, 0) << r.output;

  // Both cartridges back, one after the other, equal the source.
  r = xcopy({"vtl0.drive0", "lun1", "--bytes", std::to_string(done), "--record-size", "256K"});
  ASSERT_EQ(r.status, 0) << r.output;
  r = xcopy({"vtl0.drive1", "lun1", "--destination-offset", std::to_string(done), "--bytes",
             std::to_string(n - done), "--record-size", "256K"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(lun1(0, n), source(0, n));
}

TEST_F(XcopyCommand, RefusesUnknownDevicesAndAnEmptyDrive) {
  RunResult r = xcopy({"lun0", "nosuchlun", "--bytes", "1M"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("'nosuchlun' is neither"), std::string::npos) << r.output;
  r = xcopy({"lun0", "vtl0.drive1", "--bytes", "1M"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("not ready"), std::string::npos) << r.output;
  r = xcopy({"vtl0.drive1", "lun1"});
  EXPECT_NE(r.status, 0) << r.output;
}

TEST_F(XcopyCommand, CopyEndingAtEarlyWarningIsOkAndSaysTheCartridgeIsFull) {
  // 6 MiB: the last record is the one that reaches early warning.
  const RunResult r = xcopy({"lun0", "vtl0.drive0", "--load", "NDMP001L6", "--bytes",
                             std::to_string(6u << 20), "--record-size", "256K"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("outcome:      OK; the destination cartridge is past its early warning"),
            std::string::npos)
      << r.output;
}

TEST_F(XcopyCommand, RefusesNothingToCopyAndNumbersPastTheDisk) {
  RunResult r = xcopy({"lun0", "lun1", "--bytes", "0"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("nothing to copy"), std::string::npos) << r.output;
  // Without a length the copy runs to the disk's end: from past it there
  // is none, and the LBA is refused by name.
  r = xcopy({"lun0", "lun1", "--source-lba", "131072"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("source: LBA 131072 is past the disk's last block"), std::string::npos)
      << r.output;
  r = xcopy({"lun0", "lun1", "--source-lba", "131071", "--source-offset", "512"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("lies past the disk's end"), std::string::npos) << r.output;
  // LBA 8 plus this offset wraps around to byte 0 of lun1.
  r = xcopy({"lun0", "lun1", "--destination-lba", "8", "--destination-offset",
             std::to_string(std::numeric_limits<std::uint64_t>::max() - 8 * 512 + 1), "--bytes",
             "1M"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("destination: LBA 8 plus"), std::string::npos) << r.output;
  r = xcopy({"lun0", "lun1", "--blocks", std::to_string(1ull << 60)});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("more than any disk holds"), std::string::npos) << r.output;
  r = xcopy({"lun0", "lun1", "--source-lba", "16", "--bytes", std::to_string(kDiskBytes)});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("source: 67108864 bytes from byte 8192 run past the disk's end"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(lun1(0, 1u << 20), std::vector<std::uint8_t>(1u << 20, 0));  // nothing written
}

TEST(XcopyBesideTheDaemon, ARunningDaemonHoldsTheDevices) {
  ndmpd::testing::Daemon daemon;  // the shipped configuration
  const RunResult r =
      run_command({NDMPD_BINARY, "xcopy", "--config",
                   (fs::path(NDMPD_SOURCE_DIR) / "conf" / "ndmpd.toml").string(), "--state-dir",
                   (daemon.dir() / "state").string(), "lun0", "lun1", "--bytes", "1M"},
                  60s);
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("a running ndmpd holds the state directory"), std::string::npos)
      << r.output;
  EXPECT_TRUE(daemon.running());
}

}  // namespace

namespace {

TEST(XcopyConfiguration, CopyManagerKeysAreValidatedWithFileLineAndKey) {
  char tmpl[] = "/tmp/ndmpd-xcopy-conf-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  const fs::path bad = dir / "bad.toml";
  std::ofstream(bad) << "[copy_managers.xc]\nmax_segments = 0\n";
  RunResult r = run_command({NDMPD_BINARY, "--check-config", bad.string()}, 30s);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(bad.string() + ":2: copy_managers.xc.max_segments: must be between 1"),
            std::string::npos)
      << r.output;
  std::ofstream(bad, std::ios::trunc) << "[copy_managers.xc]\nbuffer_mb = 8\n";
  r = run_command({NDMPD_BINARY, "--check-config", bad.string()}, 30s);
  EXPECT_NE(r.output.find("copy_managers.xc.buffer_mb: unknown key"), std::string::npos)
      << r.output;
  std::ofstream(bad, std::ios::trunc) << "[devices.cm]\nkind = \"copy_manager\"\n"
                                      << "url = \"iscsi://127.0.0.1:3260/iqn.x/0\"\n";
  r = run_command({NDMPD_BINARY, "--check-config", bad.string()}, 30s);
  EXPECT_EQ(r.status, 0) << r.output;
  r = run_command({NDMPD_BINARY, "--check-config",
                   (fs::path(NDMPD_SOURCE_DIR) / "conf" / "ndmpd.toml").string()},
                  30s);
  EXPECT_EQ(r.status, 0) << r.output;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
