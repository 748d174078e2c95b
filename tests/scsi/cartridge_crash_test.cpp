// kill -9 in the middle of writing: a child process (cartridge_writer)
// writes blocks and filemarks to a cartridge and is killed with SIGKILL at
// random points, 200 times over on the same cartridge.  After each kill the
// cartridge is reopened (which recovers it): every acknowledged object must
// read back intact, the objects that were in flight must be absent or
// intact, and nothing may follow them.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "scsi/emu/cartridge.h"

extern char** environ;

namespace scsi::emu {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// As cartridge_writer.cpp sends it.
struct Report {
  std::uint8_t type;  // 1: about to write, 2: acknowledged
  std::uint8_t filemark;
  std::uint16_t reserved;
  std::uint32_t size;
  std::uint64_t object;
  std::uint64_t hash;
};
static_assert(sizeof(Report) == 24);
constexpr std::uint8_t kAbout = 1;
constexpr std::uint8_t kAcknowledged = 2;

std::uint64_t fnv1a(std::span<const std::uint8_t> data) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (const std::uint8_t b : data) h = (h ^ b) * 0x100000001B3ull;
  return h;
}

// What an object on the cartridge must be.
struct Record {
  bool filemark = false;
  std::uint32_t size = 0;
  std::uint64_t hash = 0;
  bool operator==(const Record&) const = default;
};

class Writer {
 public:
  // Starts cartridge_writer with its stdout on a pipe.
  bool start(const fs::path& cartridge, int round, std::uint64_t from) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    const std::string path = cartridge.string(), r = std::to_string(round),
                      f = std::to_string(from);
    char* argv[] = {const_cast<char*>(CARTRIDGE_WRITER), const_cast<char*>(path.c_str()),
                    const_cast<char*>(r.c_str()), const_cast<char*>(f.c_str()), nullptr};
    const int rc = ::posix_spawn(&pid_, CARTRIDGE_WRITER, &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    fd_ = fds[0];
    if (rc != 0) pid_ = -1;
    return rc == 0;
  }

  // Waits up to `timeout` for reports; false at end of file (the child is
  // gone and everything it sent has been read).
  bool receive(std::chrono::milliseconds timeout, std::vector<Report>& out) {
    pollfd p{fd_, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n <= 0) return true;
    std::uint8_t buffer[4096];
    const ssize_t got = ::read(fd_, buffer, sizeof buffer);
    if (got < 0) return errno == EINTR || errno == EAGAIN;
    if (got == 0) return false;
    pending_.insert(pending_.end(), buffer, buffer + got);
    std::size_t at = 0;
    for (; pending_.size() - at >= sizeof(Report); at += sizeof(Report)) {
      Report r;
      std::memcpy(&r, pending_.data() + at, sizeof r);
      out.push_back(r);
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(at));
    return true;
  }

  // SIGKILL, then reaps it (bounded).  Returns the wait status.
  std::optional<int> kill_and_reap() {
    if (pid_ <= 0) return std::nullopt;
    ::kill(pid_, SIGKILL);
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(1ms);
    }
    return std::nullopt;
  }

  ~Writer() {
    kill_and_reap();
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::vector<std::uint8_t> pending_;
};

// Checks objects [from, to) of `c` against `model` (indexed by object
// number).  Returns a description of the first difference, or "".
std::string compare(Cartridge& c, const std::vector<Record>& model, std::uint64_t from,
                    std::uint64_t to, std::vector<std::uint8_t>& buffer) {
  if (!c.locate(from)) return "cannot locate " + std::to_string(from);
  for (std::uint64_t n = from; n < to; ++n) {
    const auto o = c.peek();
    const Record& want = model[n];
    const std::string where = "object " + std::to_string(n) + ": ";
    if (want.filemark) {
      if (o.kind != Cartridge::Kind::kFilemark) return where + "not a filemark";
      c.skip();
      continue;
    }
    if (o.kind != Cartridge::Kind::kBlock) return where + "not a block";
    std::uint32_t size = 0;
    std::string error;
    if (!c.read_block(buffer, size, error)) return where + error;
    if (size != want.size) return where + "size " + std::to_string(size);
    if (fnv1a(std::span(buffer).first(size)) != want.hash) return where + "content differs";
  }
  return {};
}

TEST(CartridgeCrash, KilledWritersLoseNothingAcknowledged) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr ? tmp : "/tmp") + "/cartridge_crash.XXXXXX";
  ASSERT_NE(::mkdtemp(templ.data()), nullptr);
  const fs::path dir = templ;
  const fs::path path = dir / "CRASH1L8.vtape";
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  {
    std::string error;
    auto c = Cartridge::create(path, {"CRASH1L8", 1ull << 40, 1ull << 39, false}, error);
    ASSERT_NE(c, nullptr) << error;
  }

  std::vector<Record> model;  // the cartridge as it must be
  std::uint64_t model_bytes = 0;
  std::vector<std::uint8_t> buffer(Cartridge::kMaxBlock);
  std::mt19937_64 rng(20240601);
  int killed_in_flight = 0, in_flight_kept = 0, in_flight_lost = 0, entries_cut = 0, bytes_cut = 0;
  int acknowledged_total = 0;
  const auto test_start = Clock::now();

  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // Mostly append; sometimes overwrite from an earlier object, which also
    // keeps the cartridge from growing without bound.
    std::uint64_t start = model.size();
    if (model_bytes > (192u << 20)) {
      start = rng() % (model.size() / 2 + 1);
    } else if (rng() % 5 == 0) {
      start = rng() % (model.size() + 1);
    }
    const int mode = round % 3;  // 0: delay from spawn, 1: delay from first write, 2: acks
    const auto delay = std::chrono::milliseconds(rng() % 51);
    const std::uint64_t acks_wanted = rng() % 300;

    Writer writer;
    ASSERT_TRUE(writer.start(path, round, start));
    std::vector<Report> reports;
    const auto spawned = Clock::now();
    auto kill_at = mode == 0 ? spawned + delay : Clock::time_point::max();
    std::uint64_t acks = 0;
    bool alive = true;
    while (alive) {
      const auto now = Clock::now();
      ASSERT_LT(now - spawned, 20s) << "the writer never got to the kill point";
      if (now >= kill_at || (mode == 2 && acks >= acks_wanted)) break;
      const auto wait = std::min<Clock::duration>(kill_at - now, 100ms);
      const std::size_t seen = reports.size();
      alive = writer.receive(std::chrono::duration_cast<std::chrono::milliseconds>(wait) + 1ms,
                             reports);
      for (std::size_t i = seen; i < reports.size(); ++i) {
        if (reports[i].type == kAcknowledged) ++acks;
        if (mode == 1 && kill_at == Clock::time_point::max()) kill_at = Clock::now() + delay;
      }
    }
    const auto status = writer.kill_and_reap();
    ASSERT_TRUE(status.has_value()) << "the writer did not die";
    ASSERT_TRUE(WIFSIGNALED(*status) || (WIFEXITED(*status) && WEXITSTATUS(*status) == 0))
        << "the writer failed (status " << *status << ")";
    // Everything it sent before it died.
    const auto drain_deadline = Clock::now() + 5s;
    while (writer.receive(100ms, reports)) {
      ASSERT_LT(Clock::now(), drain_deadline);
    }

    // What was attempted (in flight until acknowledged) and acknowledged.
    std::map<std::uint64_t, Record> attempted;
    std::uint64_t acknowledged_end = start;
    std::uint64_t attempted_end = start;
    bool any_acknowledged = false;
    for (const Report& r : reports) {
      const Record rec{r.filemark != 0, r.size, r.hash};
      if (r.type == kAbout) {
        ASSERT_EQ(r.object, attempted_end) << "objects out of order";
        attempted[r.object] = rec;
        attempted_end = r.object + 1;
      } else {
        ASSERT_EQ(r.type, kAcknowledged);
        ASSERT_TRUE(attempted.count(r.object) && attempted[r.object] == rec);
        acknowledged_end = std::max(acknowledged_end, r.object + 1);
        any_acknowledged = true;
        ++acknowledged_total;
      }
    }
    if (attempted_end > acknowledged_end) ++killed_in_flight;

    // Reopen: recovery happens here.
    const fs::path data_path = path.string() + ".data";
    const auto map_before = fs::file_size(path);
    const auto data_before = fs::file_size(data_path);
    std::string error;
    auto c = Cartridge::open(path, error);
    ASSERT_NE(c, nullptr) << error;
    const std::uint64_t eod = c->end_of_data();
    const std::uint64_t map_after = fs::file_size(path);
    const std::uint64_t data_after = fs::file_size(data_path);
    if (map_after < map_before) ++entries_cut;  // a torn entry
    if (data_after < data_before) ++bytes_cut;  // blocks whose entries were not written

    // Before the start, nothing changed (a sample; earlier rounds read all
    // of it).
    for (int i = 0; i < 8 && start > 0; ++i) {
      const std::uint64_t n = rng() % start;
      ASSERT_EQ(compare(*c, model, n, n + 1, buffer), "");
    }
    // Either the writer changed nothing (killed before its first write cut
    // the cartridge) or: everything acknowledged, then a prefix of what was
    // in flight, and nothing else.
    const bool unchanged =
        !any_acknowledged && eod == model.size() && compare(*c, model, start, eod, buffer).empty();
    if (!unchanged) {
      ASSERT_GE(eod, acknowledged_end) << "an acknowledged object is missing";
      ASSERT_LE(eod, attempted_end) << "objects that were never written";
      model.resize(start);
      for (std::uint64_t n = start; n < eod; ++n) model.push_back(attempted[n]);
      ASSERT_EQ(compare(*c, model, start, eod, buffer), "");
      if (attempted_end > acknowledged_end) {
        (eod > acknowledged_end ? in_flight_kept : in_flight_lost) += 1;
      }
    }
    model_bytes = 0;
    for (const Record& r : model) model_bytes += r.size;
    ASSERT_EQ(c->bytes_used(), model_bytes);
    // Nothing after the end of data: a 32-byte entry per object in the
    // map, the blocks' bytes in the data file.
    ASSERT_EQ(map_after, 4096 + 32 * eod);
    ASSERT_EQ(data_after, model_bytes);
    ASSERT_EQ(c->peek().kind, Cartridge::Kind::kEndOfData);
  }

  // Finally, all of it.
  std::string error;
  auto c = Cartridge::open(path, error);
  ASSERT_NE(c, nullptr) << error;
  ASSERT_EQ(c->end_of_data(), model.size());
  EXPECT_EQ(compare(*c, model, 0, model.size(), buffer), "");

  std::printf(
      "[ crash    ] %d acknowledged objects; kills with a write in flight: %d (kept %d, "
      "lost %d); torn entries cut: %d, unlisted block bytes cut: %d; final %zu objects, "
      "%.1f MiB; "
      "%.1f s\n",
      acknowledged_total, killed_in_flight, in_flight_kept, in_flight_lost, entries_cut, bytes_cut,
      model.size(), static_cast<double>(model_bytes) / (1 << 20),
      std::chrono::duration<double>(Clock::now() - test_start).count());
  // The kills must land while writing, or the test proves little.
  EXPECT_GT(killed_in_flight, 20);
}

}  // namespace
}  // namespace scsi::emu
