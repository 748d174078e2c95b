#include "ndmpd/data/incremental.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <system_error>
#include <utility>

namespace ndmpd::data {

namespace {

constexpr std::string_view kMagic = "ndmpd-dumpdates 1";
constexpr unsigned kMaxLevel = 9;

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

std::uint64_t fnv1a(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

const char kHex[] = "0123456789ABCDEF";

void append_hex_byte(std::string& out, unsigned char c) {
  out += '%';
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

// A field that survives a line- and space-separated file whatever bytes
// it holds (paths may hold newlines), and that is never empty.
std::string escape_field(std::string_view s) {
  std::string out = "=";
  out.reserve(s.size() + 1);
  for (unsigned char c : s) {
    if (c == '%' || c <= 0x20 || c >= 0x7f) {
      append_hex_byte(out, c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::optional<std::string> unescape_field(std::string_view s) {
  if (s.empty() || s[0] != '=') return std::nullopt;
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 1; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// A file name for any FILESYSTEM string: no '/', no "." or "..", bounded.
std::string file_name_for(std::string_view filesystem) {
  std::string name = "fs-";
  for (unsigned char c : filesystem) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '-') {
      name += static_cast<char>(c);
    } else {
      append_hex_byte(name, c);
    }
  }
  if (name.size() > 200) {
    // The full FILESYSTEM is inside the file and checked on load, so a
    // clash of two long names is reported, not mixed up.
    char hash[24];
    std::snprintf(hash, sizeof hash, "~%016" PRIx64, fnv1a(filesystem));
    name.resize(150);
    name += hash;
  }
  return name;
}

bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

bool parse_i64(std::string_view s, std::int64_t& out) {
  bool negative = !s.empty() && s[0] == '-';
  std::uint64_t v = 0;
  if (!parse_u64(negative ? s.substr(1) : s, v)) return false;
  if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
  out = negative ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
  return true;
}

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i <= line.size()) {
    std::size_t j = line.find(' ', i);
    if (j == std::string_view::npos) j = line.size();
    words.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  return words;
}

std::string serialize(const std::string& filesystem, const std::vector<DumpRecord>& records) {
  std::string out;
  out += kMagic;
  out += '\n';
  out += "filesystem " + escape_field(filesystem) + "\n";
  for (const DumpRecord& r : records) {
    out += "record " + std::to_string(r.level) + " " + std::to_string(r.start_ns) + " " +
           escape_field(r.token) + " " + std::to_string(r.dirs.size()) + "\n";
    for (const SnapshotDir& d : r.dirs) {
      out += "dir " + std::to_string(d.dev) + " " + std::to_string(d.ino) + " " +
             escape_field(d.path) + "\n";
    }
  }
  char sum[40];
  std::snprintf(sum, sizeof sum, "checksum %016" PRIx64 "\n", fnv1a(out));
  out += sum;
  return out;
}

// Parses `text`; an empty optional with `why` when it is not a history
// file of `filesystem` exactly as serialize() writes them.
std::optional<std::vector<DumpRecord>> parse(std::string_view text, const std::string& filesystem,
                                             std::string& why) {
  if (text.empty() || text.back() != '\n') {
    why = "truncated (no final newline)";
    return std::nullopt;
  }
  std::size_t last = text.rfind('\n', text.size() - 2);
  std::size_t body_end = last == std::string_view::npos ? 0 : last + 1;
  std::string_view sum_line = text.substr(body_end, text.size() - body_end - 1);
  std::string_view body = text.substr(0, body_end);
  char expected[40];
  std::snprintf(expected, sizeof expected, "checksum %016" PRIx64, fnv1a(body));
  if (sum_line != expected) {
    why = "checksum mismatch or missing";
    return std::nullopt;
  }

  std::vector<std::string_view> lines;
  for (std::size_t i = 0; i < body.size();) {
    std::size_t j = body.find('\n', i);
    lines.push_back(body.substr(i, j - i));
    i = j + 1;
  }
  if (lines.size() < 2 || lines[0] != kMagic) {
    why = "not a dumpdates file (bad first line)";
    return std::nullopt;
  }
  std::vector<std::string_view> w = split_words(lines[1]);
  std::optional<std::string> fs;
  if (w.size() != 2 || w[0] != "filesystem" || !(fs = unescape_field(w[1]))) {
    why = "bad filesystem line";
    return std::nullopt;
  }
  if (*fs != filesystem) {
    why = "it belongs to another FILESYSTEM";
    return std::nullopt;
  }
  std::vector<DumpRecord> records;
  std::size_t i = 2;
  while (i < lines.size()) {
    w = split_words(lines[i]);
    DumpRecord r;
    std::uint64_t level = 0, ndirs = 0;
    std::optional<std::string> token;
    if (w.size() != 5 || w[0] != "record" || !parse_u64(w[1], level) || level > kMaxLevel ||
        !parse_i64(w[2], r.start_ns) || !(token = unescape_field(w[3])) ||
        !parse_u64(w[4], ndirs) || ndirs > lines.size() - i - 1) {
      why = "bad record at line " + std::to_string(i + 1);
      return std::nullopt;
    }
    r.level = static_cast<unsigned>(level);
    r.token = std::move(*token);
    r.dirs.reserve(ndirs);
    ++i;
    for (std::uint64_t k = 0; k < ndirs; ++k, ++i) {
      w = split_words(lines[i]);
      SnapshotDir d;
      std::optional<std::string> path;
      if (w.size() != 4 || w[0] != "dir" || !parse_u64(w[1], d.dev) || !parse_u64(w[2], d.ino) ||
          !(path = unescape_field(w[3]))) {
        why = "bad dir line at line " + std::to_string(i + 1);
        return std::nullopt;
      }
      d.path = std::move(*path);
      r.dirs.push_back(std::move(d));
    }
    records.push_back(std::move(r));
  }
  return records;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Holds an flock for as long as it lives.
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      errno_ = errno;
      return;
    }
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        errno_ = errno;
        ::close(fd_);
        fd_ = -1;
        return;
      }
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool held() const { return fd_ >= 0; }
  int error() const { return errno_; }

 private:
  int fd_ = -1;
  int errno_ = 0;
};

}  // namespace

std::string make_dump_date(unsigned level, std::int64_t start_ns) {
  return std::to_string(level) + "." + std::to_string(start_ns);
}

std::int64_t dump_clock_now_ns() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

DumpDates::DumpDates(std::filesystem::path state_dir, std::string filesystem)
    : state_dir_(std::move(state_dir)), filesystem_(std::move(filesystem)) {}

std::filesystem::path DumpDates::file() const {
  return state_dir_ / "dumpdates" / file_name_for(filesystem_);
}

bool DumpDates::read_file(std::vector<DumpRecord>& out, std::string& error) const {
  const std::filesystem::path path = file();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      out.clear();
      return true;
    }
    error = "cannot open dump dates " + path.string() + ": " + errno_text(errno);
    return false;
  }
  std::string text;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "cannot read dump dates " + path.string() + ": " + errno_text(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  std::string why;
  std::optional<std::vector<DumpRecord>> records = parse(text, filesystem_, why);
  if (!records) {
    error = "dump dates " + path.string() + " are damaged (" + why +
            "); move the file away to start a new history with a level 0";
    return false;
  }
  out = std::move(*records);
  return true;
}

bool DumpDates::load(std::string& error) { return read_file(records_, error); }

const DumpRecord* DumpDates::base_for_level(unsigned level) const {
  const DumpRecord* best = nullptr;
  for (const DumpRecord& r : records_) {
    if (r.level < level && (best == nullptr || r.start_ns > best->start_ns)) best = &r;
  }
  return best;
}

const DumpRecord* DumpDates::find(std::string_view token) const {
  for (const DumpRecord& r : records_) {
    if (r.token == token) return &r;
  }
  return nullptr;
}

std::int64_t DumpDates::unique_start(std::int64_t now_ns) const {
  std::int64_t start = now_ns;
  for (const DumpRecord& r : records_) start = std::max(start, r.start_ns + 1);
  return start;
}

bool DumpDates::commit(DumpRecord record, std::string& error) {
  const std::filesystem::path dir = state_dir_ / "dumpdates";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    error = "cannot create " + dir.string() + ": " + ec.message();
    return false;
  }
  const std::filesystem::path path = file();
  FileLock lock(path.string() + ".lock");
  if (!lock.held()) {
    error = "cannot lock dump dates " + path.string() + ": " + errno_text(lock.error());
    return false;
  }
  std::vector<DumpRecord> records;
  if (!read_file(records, error)) return false;
  std::erase_if(records, [&](const DumpRecord& r) { return r.level >= record.level; });
  records.push_back(std::move(record));
  std::sort(records.begin(), records.end(),
            [](const DumpRecord& a, const DumpRecord& b) { return a.level < b.level; });
  const std::string text = serialize(filesystem_, records);

  const std::string tmp = path.string() + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot create " + tmp + ": " + errno_text(errno);
    return false;
  }
  if (!write_all(fd, text) || ::fsync(fd) != 0) {
    error = "cannot write " + tmp + ": " + errno_text(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot replace " + path.string() + ": " + errno_text(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  // The rename itself must reach the disk before the DMA is told the
  // backup is recorded.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  records_ = std::move(records);
  return true;
}

std::optional<IncrementalBase> IncrementalBase::plan(const DumpDates& dates, unsigned level,
                                                     const std::optional<std::string>& base_date,
                                                     std::string& warning, std::string& error) {
  IncrementalBase b;
  if (level > kMaxLevel) {
    error = "LEVEL " + std::to_string(level) + " is not 0-9";
    return std::nullopt;
  }
  const DumpRecord* base = nullptr;
  if (base_date) {
    base = dates.find(*base_date);
    if (base == nullptr) {
      error = "BASE_DATE " + *base_date + " names no backup recorded for this FILESYSTEM";
      return std::nullopt;
    }
    b.incremental_ = true;
    b.level_ = std::min(base->level + 1, kMaxLevel);
  } else {
    b.level_ = level;
    b.incremental_ = level > 0;
    if (level > 0) {
      base = dates.base_for_level(level);
      if (base == nullptr) {
        warning = "LEVEL " + std::to_string(level) +
                  ": no earlier backup of a lower level of this FILESYSTEM; backing up everything";
      }
    }
  }
  if (base != nullptr) {
    b.full_ = false;
    b.since_ns_ = base->start_ns;
    b.base_token_ = base->token;
    b.base_dirs_.reserve(base->dirs.size());
    for (const SnapshotDir& d : base->dirs) b.base_dirs_.emplace(Key{d.dev, d.ino}, d.path);
  }
  return b;
}

bool IncrementalBase::changed(const struct timespec& mtime, const struct timespec& ctime) const {
  if (full_) return true;
  auto ns = [](const struct timespec& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
  };
  return ns(mtime) >= since_ns_ || ns(ctime) >= since_ns_;
}

bool IncrementalBase::new_directory(std::uint64_t dev, std::uint64_t ino,
                                    const std::string& path) const {
  if (full_) return false;  // everything is in the image anyway
  auto it = base_dirs_.find(Key{dev, ino});
  return it == base_dirs_.end() || it->second != path;
}

}  // namespace ndmpd::data
