// Tape service benchmark (run on demand; prints figures, asserts nothing):
// what a DMA sees of a server's tape service when it writes an image with
// TAPE_WRITE and reads it back with TAPE_READ, one request at a time, over
// loopback; ndmpd (the embedded library, a cartridge moved into
// vtl0.drive0) against ndmjob's own NDMP server (its file-backed tape
// simulator) in the same run, rounds alternating between them, medians
// reported.  Each round is a job on a session of its own: login,
// TAPE_OPEN RDWR, REW, N MiB in records of R KiB, EOF, REW, every record
// read back and compared, TAPE_CLOSE.  Then the resident memory of both
// servers with the last round's sessions still open (ndmjob: its daemon
// and that session's process), and dd of as many bytes to a file on the
// same filesystem as a reference.
//
// Bytes are what the benchmark stops on: a record that does not come back
// as written ends the run with an error (exit 1).
//
// ndmjob's server binds 0.0.0.0 and logs under /var/log/amanda: run this
// through tests/bench/tape_service_bench.sh.
//
//   tape_service_bench --ndmjob /usr/lib/amanda/ndmjob [--mib 256] [--record-kib 256]
//                      [--rounds 5] [--no-dd]

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/ndmjob_server.h"
#include "integration/daemon.h"
#include "ndmpd/client/client.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ndmp::client::Client;
using ndmp::client::error_name;
using ndmpd::bench::median;

constexpr std::uint16_t kFirstSlot = 1024, kDrive0 = 256;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Throws with `what` and the NDMP error unless `e` is NDMP4_NO_ERR.
void expect_ok(ndmp4_error e, const std::string& what) {
  if (e != NDMP4_NO_ERR) throw std::runtime_error(what + ": " + error_name(e));
}

// The image: record `i` is a fixed pseudo-random record with `i` in its
// first eight bytes, so that a record lost, repeated or reordered on the
// way back is caught as well as a corrupted one.
class Image {
 public:
  // REQUIRES: record_bytes >= 8.
  explicit Image(std::size_t record_bytes) : record_(record_bytes) {
    std::uint32_t x = 0x9E3779B9u;
    for (auto& b : record_) {
      x = x * 1664525u + 1013904223u;
      b = static_cast<std::uint8_t>(x >> 24);
    }
  }
  std::span<const std::uint8_t> record(std::uint64_t i) {
    std::memcpy(record_.data(), &i, sizeof i);
    return record_;
  }

 private:
  std::vector<std::uint8_t> record_;
};

// One NDMP server under measurement: where it is, the tape device to open,
// and the times of its rounds.
struct Server {
  std::string name;
  std::string host;
  std::uint16_t port = 0;
  std::string user, password, device;
  std::unique_ptr<Client> session;
  std::vector<double> write_s, eof_s, read_s;

  void login() {
    session = std::make_unique<Client>(120s);  // an EOF may flush the whole image
    session->connect(host, port);
    session->open_and_login_text(user, password);
  }
  ndmp4_error mtio(ndmp4_tape_mtio_op op, std::uint32_t count) {
    ndmp4_tape_mtio_request r{op, count};
    return session->call<NDMP4_TAPE_MTIO>(r).error();
  }
};

// MOVE MEDIUM `from` -> `to` through ndmpd's changer vtl0.changer.
void load_cartridge(Client& c, std::uint16_t from, std::uint16_t to) {
  ndmp4_scsi_open_request o{const_cast<char*>("vtl0.changer")};
  expect_ok(c.call<NDMP4_SCSI_OPEN>(o).error(), "SCSI_OPEN vtl0.changer");
  std::uint8_t move[12] = {0xA5, 0, 0, 0};
  move[4] = static_cast<std::uint8_t>(from >> 8);
  move[5] = static_cast<std::uint8_t>(from);
  move[6] = static_cast<std::uint8_t>(to >> 8);
  move[7] = static_cast<std::uint8_t>(to);
  ndmp4_execute_cdb_request x{};
  x.timeout = 60000;
  x.cdb.cdb_len = sizeof move;
  x.cdb.cdb_val = reinterpret_cast<char*>(move);
  const auto r = c.call<NDMP4_SCSI_EXECUTE_CDB>(x);
  expect_ok(r.error(), "SCSI_EXECUTE_CDB MOVE MEDIUM");
  if (r->status != 0)
    throw std::runtime_error("MOVE MEDIUM: SCSI status " + std::to_string(r->status));
  expect_ok(c.call<NDMP4_SCSI_CLOSE>().error(), "SCSI_CLOSE");
}

// One round against `s` on a new session (which stays open): write
// `records` records of `image`, EOF, read them back and compare; appends
// the times to `s`.
void round_trip(Server& s, Image& image, std::uint64_t records, std::uint32_t record_bytes) {
  s.login();
  Client& c = *s.session;
  const std::string at = s.name + ": ";
  ndmp4_tape_open_request o{const_cast<char*>(s.device.c_str()), NDMP4_TAPE_RDWR_MODE};
  expect_ok(c.call<NDMP4_TAPE_OPEN>(o).error(), at + "TAPE_OPEN " + s.device);
  expect_ok(s.mtio(NDMP4_MTIO_REW, 1), at + "REW");

  auto start = Clock::now();
  for (std::uint64_t i = 0; i < records; ++i) {
    const auto rec = image.record(i);
    ndmp4_tape_write_request w{};
    w.data_out.data_out_len = static_cast<u_int>(rec.size());
    w.data_out.data_out_val = reinterpret_cast<char*>(const_cast<std::uint8_t*>(rec.data()));
    const auto r = c.call<NDMP4_TAPE_WRITE>(w);
    const std::string which = at + "TAPE_WRITE of record " + std::to_string(i);
    expect_ok(r.error(), which);
    if (r->count != rec.size()) {
      throw std::runtime_error(which + " wrote " + std::to_string(r->count) + " bytes");
    }
  }
  s.write_s.push_back(seconds_since(start));
  start = Clock::now();
  expect_ok(s.mtio(NDMP4_MTIO_EOF, 1), at + "EOF");
  s.eof_s.push_back(seconds_since(start));

  expect_ok(s.mtio(NDMP4_MTIO_REW, 1), at + "REW");
  start = Clock::now();
  for (std::uint64_t i = 0; i < records; ++i) {
    const auto rec = image.record(i);
    const auto r = c.call<NDMP4_TAPE_READ>(ndmp4_tape_read_request{record_bytes});
    const std::string which = at + "TAPE_READ of record " + std::to_string(i);
    expect_ok(r.error(), which);
    if (r->data_in.data_in_len != rec.size() ||
        std::memcmp(r->data_in.data_in_val, rec.data(), rec.size()) != 0) {
      throw std::runtime_error(which + ": " + std::to_string(r->data_in.data_in_len) +
                               " bytes, not the record written");
    }
  }
  s.read_s.push_back(seconds_since(start));
  const auto past = c.call<NDMP4_TAPE_READ>(ndmp4_tape_read_request{record_bytes}).error();
  if (past != NDMP4_EOF_ERR) {
    throw std::runtime_error(at + "TAPE_READ past the last record: " + error_name(past) +
                             ", not NDMP4_EOF_ERR");
  }
  expect_ok(c.call<NDMP4_TAPE_CLOSE>().error(), at + "TAPE_CLOSE");
}

// Runs `command` through the shell; its wall time, or throws if it fails.
double timed_shell(const std::string& command) {
  const auto start = Clock::now();
  if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
  return seconds_since(start);
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"NDMP tape service throughput: ndmpd against ndmjob's server"};
  std::string ndmjob = "/usr/lib/amanda/ndmjob";
  int mib = 256, record_kib = 256, rounds = 5;
  bool no_dd = false;
  app.add_option("--ndmjob", ndmjob, "ndmjob binary (its daemon is the peer)");
  app.add_option("--mib", mib, "MiB written and read per round")->check(CLI::Range(1, 1900));
  app.add_option("--record-kib", record_kib,
                 "record size (one TAPE_WRITE / TAPE_READ), KiB; ndmjob's server takes 256 at most")
      ->check(CLI::Range(1, 16384));
  app.add_option("--rounds", rounds, "rounds per server (median reported)")
      ->check(CLI::Range(1, 1000));
  app.add_flag("--no-dd", no_dd, "skip the dd reference line");
  CLI11_PARSE(app, argc, argv);

  const std::uint32_t record_bytes = std::uint32_t(record_kib) << 10;
  const std::uint64_t records = (std::uint64_t(mib) << 20) / record_bytes;
  if (records == 0) throw std::runtime_error("--mib is smaller than one record");
  const double mb = double(records) * record_bytes / 1e6;

  // The shipped configuration: cartridges of 2048 MB in the embedded library.
  ndmpd::testing::Daemon daemon;
  const fs::path scratch = daemon.dir() / "ndmjob";
  fs::create_directories(scratch);
  const fs::path tape = scratch / "tape";
  std::ofstream{tape};  // the simulator opens an existing file only
  ndmpd::bench::NdmjobServer peer(ndmjob, scratch);

  Server mine{.name = "ndmpd",
              .host = daemon.host(),
              .port = daemon.port(),
              .user = daemon.user(),
              .password = daemon.password(),
              .device = "vtl0.drive0"};
  Server theirs{.name = "ndmjob server",
                .host = "127.0.0.1",
                .port = peer.port(),
                .user = ndmpd::bench::NdmjobServer::kUser,
                .password = ndmpd::bench::NdmjobServer::kPassword,
                .device = tape.string()};
  try {
    mine.login();
    load_cartridge(*mine.session, kFirstSlot, kDrive0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n%s\n", e.what(), daemon.log().c_str());
    return 1;
  }
  theirs.login();
  // Sessions logged in, no data moved yet.
  const long mine_before = ndmpd::bench::rss_kib(daemon.pid());
  int processes = 0;
  const long theirs_before = ndmpd::bench::group_rss_kib(peer.pid(), processes);

  Image image(record_bytes);
  std::vector<double> dd_write, dd_read;
  const std::string dd_file = (scratch / "dd.out").string();
  const std::string dd_args =
      " bs=" + std::to_string(record_kib) + "k count=" + std::to_string(records) + " status=none";
  for (int i = 0; i < rounds; ++i) {  // alternate, so both see the same machine
    round_trip(mine, image, records, record_bytes);
    round_trip(theirs, image, records, record_bytes);
    if (!no_dd) {
      dd_write.push_back(
          timed_shell("dd if=/dev/zero of=" + dd_file + dd_args + " conv=fdatasync"));
      dd_read.push_back(timed_shell("dd if=" + dd_file + " of=/dev/null" + dd_args));
    }
  }
  const long mine_after = ndmpd::bench::rss_kib(daemon.pid());
  const long mine_peak = ndmpd::bench::status_kib(daemon.pid(), "VmHWM:");
  const long theirs_after = ndmpd::bench::group_rss_kib(peer.pid(), processes);
  int peak_processes = 0;
  const long theirs_peak = ndmpd::bench::group_status_kib(peer.pid(), "VmHWM:", peak_processes);

  std::printf(
      "TAPE_WRITE / TAPE_READ, one request at a time, loopback: %d MiB in %llu records of "
      "%d KiB, median of %d rounds\n",
      mib, static_cast<unsigned long long>(records), record_kib, rounds);
  std::printf("  %-14s %10s %10s %12s %10s\n", "MB/s", "write", "EOF ms", "write+EOF", "read");
  for (const Server* s : {&mine, &theirs}) {
    const double w = median(s->write_s), e = median(s->eof_s), r = median(s->read_s);
    std::vector<double> we;
    for (std::size_t i = 0; i < s->write_s.size(); ++i) we.push_back(s->write_s[i] + s->eof_s[i]);
    std::printf("  %-14s %10.0f %10.1f %12.0f %10.0f\n", s->name.c_str(), mb / w, e * 1e3,
                mb / median(we), mb / r);
  }
  std::printf("  ratio ndmpd/ndmjob: write %.2f, read %.2f\n",
              median(theirs.write_s) / median(mine.write_s),
              median(theirs.read_s) / median(mine.read_s));
  if (!no_dd) {
    std::printf("  dd (same filesystem, bs=%dk)   write+fdatasync %.0f MB/s, read %.0f MB/s\n",
                record_kib, mb / median(dd_write), mb / median(dd_read));
  }
  std::printf("\nresident memory (VmRSS), sessions still open\n");
  std::printf("  ndmpd           before %8ld KiB, after %8ld KiB, peak (VmHWM) %8ld KiB\n",
              mine_before, mine_after, mine_peak);
  std::printf(
      "  ndmjob server   before %8ld KiB, after %8ld KiB, peak (VmHWM) %8ld KiB "
      "(sum over %d processes)\n",
      theirs_before, theirs_after, theirs_peak, processes);
  std::printf("  ratio ndmpd/ndmjob after %.2f\n", double(mine_after) / theirs_after);
  mine.session->close();
  theirs.session->close();
  return 0;
}

int main(int argc, char** argv) {
  return ndmpd::bench::bench_main("tape_service_bench", run, argc, argv);
}
