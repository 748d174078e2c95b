#include "ndmpd/data/tar_recover.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ndmpd::data {
namespace {

// Large reads keep libarchive's per-call overhead out of the profile.
constexpr std::size_t kReadBufferSize = 1 << 20;
// Direct access: the first range at an fh_info must hold the entry's
// headers (pax extended header + ustar header: about 1.5 KiB; longer ones
// take another range).
constexpr std::uint64_t kFirstRangeLength = 4 << 10;
// Further header ranges inside a directory's subtree grow up to this, so a
// big subtree costs few requests while a small one overreads little.
constexpr std::uint64_t kMaxRangeLength = 4 << 20;
constexpr std::uint64_t kBlockSize = 512;
constexpr char kDirentsXattr[] = "ndmpd.dirents";
// Pruning an incremental's deleted subtrees holds one descriptor per level.
constexpr int kMaxPruneDepth = 512;
// libarchive answers ARCHIVE_RETRY for each damaged 512-byte header it
// skips; a run this long is not a damaged header but garbage.
constexpr int kMaxConsecutiveRetries = 1 << 16;

// No ARCHIVE_EXTRACT_SPARSE: the image's sparse map already says where
// the holes are, and archive_write_disk leaves them as holes (it seeks over
// them) without it.  The flag would only look for zeros in the data too,
// at the price of one write() per file system block (4 KiB), which makes
// the recovery markedly slower than tar -x.
constexpr int kWriteFlags = ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                            ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR |
                            ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT;

std::uint64_t round_up_block(std::uint64_t n) {
  return (n + kBlockSize - 1) / kBlockSize * kBlockSize;
}

// An image name made relative and checked: "" is the backup root; nullopt
// when it is absolute or climbs with "..".  "." and empty components go.
std::optional<std::string> normalize_name(std::string_view raw) {
  if (raw.empty() || raw.front() == '/') return std::nullopt;
  std::string out;
  out.reserve(raw.size());
  std::size_t pos = 0;
  while (pos <= raw.size()) {
    std::size_t slash = raw.find('/', pos);
    if (slash == std::string_view::npos) slash = raw.size();
    std::string_view part = raw.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return std::nullopt;
    if (!out.empty()) out.push_back('/');
    out.append(part);
  }
  return out;
}

// A path the DMA gave ("/dir/file", "new/name", "" or "/"), relative.
std::optional<std::string> normalize_request_path(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) return std::string();
  return normalize_name(path);
}

std::string join_relative(const std::string& a, std::string_view b) {
  if (a.empty()) return std::string(b);
  if (b.empty()) return a;
  std::string out = a;
  out.push_back('/');
  out.append(b);
  return out;
}

// Whether relative name `rel` is `top` or lies below it ("" holds all).
bool is_within(std::string_view rel, std::string_view top) {
  if (top.empty()) return true;
  if (rel.size() < top.size() || rel.compare(0, top.size(), top) != 0) return false;
  return rel.size() == top.size() || rel[top.size()] == '/';
}

std::string history_path(const std::string& rel) { return "/" + rel; }

const char* entry_pathname(archive_entry* entry) {
  const char* name = archive_entry_pathname(entry);
  return name != nullptr ? name : archive_entry_pathname_utf8(entry);
}

FileStat file_stat_of(archive_entry* entry) {
  FileStat s;
  switch (archive_entry_filetype(entry)) {
    case AE_IFDIR:
      s.type = FileStat::Type::kDir;
      break;
    case AE_IFIFO:
      s.type = FileStat::Type::kFifo;
      break;
    case AE_IFCHR:
      s.type = FileStat::Type::kChar;
      break;
    case AE_IFBLK:
      s.type = FileStat::Type::kBlock;
      break;
    case AE_IFREG:
      s.type = FileStat::Type::kReg;
      break;
    case AE_IFLNK:
      s.type = FileStat::Type::kSymlink;
      break;
    case AE_IFSOCK:
      s.type = FileStat::Type::kSocket;
      break;
    default:
      s.type = FileStat::Type::kOther;
      break;
  }
  s.mode = archive_entry_perm(entry) & 07777;
  s.uid = static_cast<std::uint32_t>(archive_entry_uid(entry));
  s.gid = static_cast<std::uint32_t>(archive_entry_gid(entry));
  s.size = static_cast<std::uint64_t>(std::max<la_int64_t>(archive_entry_size(entry), 0));
  s.mtime = archive_entry_mtime(entry);
  s.atime = archive_entry_atime_is_set(entry) ? archive_entry_atime(entry) : s.mtime;
  s.ctime = archive_entry_ctime_is_set(entry) ? archive_entry_ctime(entry) : s.mtime;
  s.links = archive_entry_nlink(entry);
  return s;
}

// Removes the "ndmpd.dirents" pseudo-xattr from the entry (it must never
// reach the disk) and returns its names, sorted.
std::optional<std::vector<std::string>> take_dirents(archive_entry* entry) {
  if (archive_entry_xattr_reset(entry) == 0) return std::nullopt;
  struct Xattr {
    std::string name;
    std::string value;
  };
  std::vector<Xattr> others;
  std::optional<std::string> dirents;
  const char* name = nullptr;
  const void* value = nullptr;
  std::size_t size = 0;
  while (archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK) {
    std::string v(static_cast<const char*>(value), value != nullptr ? size : 0);
    if (name != nullptr && std::strcmp(name, kDirentsXattr) == 0) {
      dirents = std::move(v);
    } else {
      others.push_back({name != nullptr ? name : "", std::move(v)});
    }
  }
  if (!dirents) return std::nullopt;
  archive_entry_xattr_clear(entry);
  for (const Xattr& x : others) {
    archive_entry_xattr_add_entry(entry, x.name.c_str(), x.value.data(), x.value.size());
  }
  std::vector<std::string> names;
  std::size_t pos = 0;
  while (pos < dirents->size()) {
    std::size_t nul = dirents->find('\0', pos);
    if (nul == std::string::npos) nul = dirents->size();
    if (nul > pos) names.emplace_back(dirents->substr(pos, nul - pos));
    pos = nul + 1;
  }
  std::sort(names.begin(), names.end());
  return names;
}

struct FdCloser {
  int fd = -1;
  explicit FdCloser(int f) : fd(f) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// Opens directory `rel` below the directory `root_fd` one component at a
// time without following any symlink, so that what is removed afterwards
// is inside the destination whatever the image planted.
int open_dir_beneath(int root_fd, const std::string& rel) {
  int fd = ::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::size_t pos = 0;
  while (fd >= 0 && pos < rel.size()) {
    std::size_t slash = rel.find('/', pos);
    if (slash == std::string::npos) slash = rel.size();
    std::string part = rel.substr(pos, slash - pos);
    pos = slash + 1;
    int next = ::openat(fd, part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ::close(fd);
    fd = next;
  }
  return fd;
}

// Lists a directory's names (without "." and "..").
bool list_dir(int dir_fd, std::vector<std::string>& names) {
  int dup_fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup_fd < 0) return false;
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    ::close(dup_fd);
    return false;
  }
  while (dirent* d = ::readdir(dir)) {
    if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
    names.emplace_back(d->d_name);
  }
  ::closedir(dir);
  return true;
}

// Removes `name` in `dir_fd`, a whole directory tree included, never
// following a symlink.  0 or an errno.
int remove_beneath(int dir_fd, const std::string& name, int depth) {
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? 0 : errno;
  }
  if (!S_ISDIR(st.st_mode)) return ::unlinkat(dir_fd, name.c_str(), 0) == 0 ? 0 : errno;
  if (depth >= kMaxPruneDepth) return ELOOP;
  FdCloser sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (sub.fd < 0) return errno;
  std::vector<std::string> children;
  if (!list_dir(sub.fd, children)) return errno != 0 ? errno : EIO;
  for (const std::string& child : children) {
    if (int e = remove_beneath(sub.fd, child, depth + 1); e != 0) return e;
  }
  return ::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) == 0 ? 0 : errno;
}

// The libarchive read side over a Source: sequential (the whole image
// from offset 0) or direct (ranges from an fh_info on, asked for as the
// entries need them).
class ImageReader {
 public:
  ImageReader(Source& source, std::vector<std::uint8_t>& buffer, std::uint64_t& bytes_read)
      : source_(source), buffer_(buffer), bytes_read_(bytes_read) {}
  ImageReader(const ImageReader&) = delete;
  ImageReader& operator=(const ImageReader&) = delete;
  ~ImageReader() {
    if (archive_ != nullptr) archive_read_free(archive_);
  }

  // false: the Source refused the request, or libarchive could not start
  // (error() says which).
  bool open(bool direct, std::uint64_t offset) {
    direct_ = direct;
    base_ = offset;
    next_offset_ = offset;
    const std::uint64_t length = direct ? kFirstRangeLength : kUnknown;
    if (!source_.request(offset, length)) {
      source_failed_ = true;
      return false;
    }
    range_left_ = length;
    archive_ = archive_read_new();
    if (archive_ == nullptr) return false;
    archive_read_support_format_tar(archive_);
    return archive_read_open(archive_, this, nullptr, &ImageReader::read_callback, nullptr) ==
           ARCHIVE_OK;
  }

  archive* get() const { return archive_; }
  bool source_failed() const { return source_failed_; }
  std::string error() const {
    const char* text = archive_ != nullptr ? archive_error_string(archive_) : nullptr;
    return text != nullptr ? text : "cannot read the image";
  }
  // The image offset where the current entry's headers start (fh_info).
  std::uint64_t header_offset() const {
    return base_ + static_cast<std::uint64_t>(archive_read_header_position(archive_));
  }

  // Direct access: called after each header, so that the next range asked
  // for ends with the entry's data (rounded to the 512-byte block).
  void entry_needs(archive_entry* entry) {
    if (!direct_) return;
    std::uint64_t stored = 0;
    if (archive_entry_sparse_reset(entry) > 0) {
      la_int64_t off = 0, len = 0;
      while (archive_entry_sparse_next(entry, &off, &len) == ARCHIVE_OK) {
        stored += static_cast<std::uint64_t>(std::max<la_int64_t>(len, 0));
      }
    } else if (archive_entry_size_is_set(entry) && archive_entry_filetype(entry) == AE_IFREG) {
      stored = static_cast<std::uint64_t>(std::max<la_int64_t>(archive_entry_size(entry), 0));
    }
    // Bytes libarchive has consumed: the end of the headers (and of a pax
    // sparse map, which it reads with them).
    const la_int64_t consumed = archive_filter_bytes(archive_, 0);
    if (consumed < 0) return;
    want_end_ = base_ + static_cast<std::uint64_t>(consumed) + round_up_block(stored);
  }

 private:
  static la_ssize_t read_callback(archive* a, void* self, const void** out) {
    return static_cast<ImageReader*>(self)->read_more(a, out);
  }

  la_ssize_t read_more(archive* a, const void** out) {
    // Two rounds at most: the current range, then (direct) a new one.
    for (int round = 0; round < 2; ++round) {
      if (range_left_ > 0) {
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(buffer_.size(), range_left_));
        const std::ptrdiff_t n = source_.read(std::span<std::uint8_t>(buffer_.data(), want));
        if (n < 0) {
          source_failed_ = true;
          archive_set_error(a, EIO, "reading the image failed");
          return -1;
        }
        if (n == 0) return 0;  // the image (or the range the Source had) ended
        if (range_left_ != kUnknown) range_left_ -= static_cast<std::uint64_t>(n);
        next_offset_ += static_cast<std::uint64_t>(n);
        bytes_read_ += static_cast<std::uint64_t>(n);
        *out = buffer_.data();
        return n;
      }
      if (!direct_) return 0;
      std::uint64_t length = 0;
      if (want_end_ > next_offset_) {
        length = round_up_block(want_end_ - next_offset_);
      } else {
        // Only headers are needed (the next entry of a subtree): a chunk
        // that grows while the subtree goes on.
        length = next_chunk_;
        next_chunk_ = std::min(next_chunk_ * 2, kMaxRangeLength);
      }
      if (!source_.request(next_offset_, length)) {
        source_failed_ = true;
        archive_set_error(a, EIO, "requesting the image failed");
        return -1;
      }
      range_left_ = length;
    }
    return 0;
  }

  Source& source_;
  std::vector<std::uint8_t>& buffer_;
  std::uint64_t& bytes_read_;
  archive* archive_ = nullptr;
  bool direct_ = false;
  bool source_failed_ = false;
  std::uint64_t base_ = 0;
  std::uint64_t next_offset_ = 0;
  std::uint64_t range_left_ = 0;
  std::uint64_t want_end_ = 0;
  std::uint64_t next_chunk_ = kFirstRangeLength;
};

// One nlist name and what became of it.
struct NameState {
  const RecoverName* request = nullptr;
  std::string original;  // relative image name ("" = the root)
  std::string target;    // relative to the destination ("" = the destination)
  bool valid = true;
  bool found = false;
  bool done = false;
  bool direct = false;  // handled by direct access (not the sequential pass)
  int error = 0;
};

// How a pass over the image ended.
enum class PassEnd { kEnd, kStopped, kFatal, kCancelled, kSourceFailed };

class Recovery {
 public:
  Recovery(const RecoverJob& job, Source& source, Reporter& reporter, const Cancel& cancel)
      : job_(job), source_(source), reporter_(reporter), cancel_(cancel) {}
  Recovery(const Recovery&) = delete;
  Recovery& operator=(const Recovery&) = delete;
  ~Recovery() {
    if (disk_ != nullptr) archive_write_free(disk_);
    if (dest_fd_ >= 0) ::close(dest_fd_);
  }

  Result run();

 private:
  bool setup_destination();
  void setup_names();
  PassEnd sequential_pass();
  PassEnd direct_pass(NameState& name);
  PassEnd filehist_pass();
  // Restores the entry the reader just read a header for, as `out_rel`.
  PassEnd restore_entry(ImageReader& reader, archive_entry* entry, const std::string& rel,
                        const std::string& out_rel, NameState* name);
  PassEnd next_header(ImageReader& reader, archive_entry*& entry);
  std::optional<std::string> map_name(const std::string& rel, NameState** name);
  std::optional<std::string> map_hardlink(const std::string& rel);
  std::string absolute(const std::string& out_rel) const {
    if (out_rel.empty()) return dest_;
    return dest_ == "/" ? "/" + out_rel : dest_ + "/" + out_rel;
  }
  void prune(const std::string& out_rel, const std::vector<std::string>& keep,
             const std::string& entry_name);
  void clear_directory_in_the_way(const std::string& out_rel, const std::string& entry_name);
  void fix_existing_directories();
  void warn(const std::string& entry_name, const std::string& why) {
    reporter_.log(Reporter::Level::kWarning, "tar recover: " + entry_name + ": " + why);
  }
  void fail_name(NameState* name, int err) {
    if (name != nullptr && name->error == 0) name->error = err != 0 ? err : EIO;
  }
  void progress() { reporter_.progress(bytes_read_, files_); }
  PassEnd fatal(const std::string& text) {
    fatal_error_ = text;
    return PassEnd::kFatal;
  }

  const RecoverJob& job_;
  Source& source_;
  Reporter& reporter_;
  const Cancel& cancel_;
  std::vector<std::uint8_t> buffer_ = std::vector<std::uint8_t>(kReadBufferSize);
  std::uint64_t bytes_read_ = 0;
  std::uint64_t files_ = 0;
  std::string dest_;
  int dest_fd_ = -1;
  archive* disk_ = nullptr;
  std::vector<NameState> names_;
  bool restore_all_ = false;
  std::string all_target_;    // restore_all_: where the root goes
  bool incremental_ = false;  // an "ndmpd.dirents" list was seen
  std::string fatal_error_;
  bool damaged_ = false;
  // libarchive defers a directory's times to its close only when it made
  // the directory; one that existed (the destination itself, or any
  // directory an incremental restores over) would keep the time its
  // children's creation gave it.  These get their times again at the end.
  struct DirTimes {
    std::string out_rel;
    timespec times[2];  // atime, mtime
  };
  std::vector<DirTimes> existing_dirs_;
};

bool Recovery::setup_destination() {
  char* real = ::realpath(job_.destination.c_str(), nullptr);
  if (real == nullptr) {
    fatal_error_ = "destination " + job_.destination.string() + ": " + std::strerror(errno);
    return false;
  }
  dest_ = real;
  std::free(real);
  dest_fd_ = ::open(dest_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dest_fd_ < 0) {
    fatal_error_ = "destination " + dest_ + ": " + std::strerror(errno);
    return false;
  }
  disk_ = archive_write_disk_new();
  if (disk_ == nullptr || archive_write_disk_set_options(disk_, kWriteFlags) != ARCHIVE_OK) {
    fatal_error_ = "cannot set up libarchive's disk writer";
    return false;
  }
  return true;
}

void Recovery::setup_names() {
  for (const RecoverName& n : job_.names) {
    NameState s;
    s.request = &n;
    auto original = normalize_request_path(n.original_path);
    std::optional<std::string> target;
    if (original) {
      target = n.destination_path.empty() ? original : normalize_request_path(n.destination_path);
    }
    if (!original || !target) {
      s.valid = false;
      s.done = true;
      s.error = EINVAL;
      warn(n.original_path, "refused: the name or its destination climbs out with \"..\"");
    } else {
      s.original = *original;
      s.target = *target;
    }
    names_.push_back(std::move(s));
  }
  if (names_.empty()) {
    restore_all_ = true;
  } else if (names_.size() == 1 && names_[0].valid && names_[0].original.empty()) {
    restore_all_ = true;
    all_target_ = names_[0].target;
  }
}

// The destination-relative path of image name `rel`, and the nlist name it
// falls under; nullopt when it is not selected.
std::optional<std::string> Recovery::map_name(const std::string& rel, NameState** name) {
  *name = nullptr;
  if (restore_all_) {
    if (!names_.empty()) *name = &names_[0];
    return join_relative(all_target_, rel);
  }
  NameState* best = nullptr;
  for (NameState& n : names_) {
    if (!n.valid || n.direct || !is_within(rel, n.original)) continue;
    if (best == nullptr || n.original.size() > best->original.size()) best = &n;
  }
  if (best == nullptr) return std::nullopt;
  *name = best;
  std::string_view suffix = std::string_view(rel).substr(best->original.size());
  if (!suffix.empty() && suffix.front() == '/') suffix.remove_prefix(1);
  return join_relative(best->target, suffix);
}

// A hard link's target is renamed like the entry it names; any nlist name
// (direct ones included) may have restored it.
std::optional<std::string> Recovery::map_hardlink(const std::string& rel) {
  if (restore_all_) return join_relative(all_target_, rel);
  const NameState* best = nullptr;
  for (const NameState& n : names_) {
    if (!n.valid || !is_within(rel, n.original)) continue;
    if (best == nullptr || n.original.size() > best->original.size()) best = &n;
  }
  if (best == nullptr) return std::nullopt;
  std::string_view suffix = std::string_view(rel).substr(best->original.size());
  if (!suffix.empty() && suffix.front() == '/') suffix.remove_prefix(1);
  return join_relative(best->target, suffix);
}

PassEnd Recovery::next_header(ImageReader& reader, archive_entry*& entry) {
  for (int retries = 0; retries < kMaxConsecutiveRetries; ++retries) {
    if (cancel_.requested()) return PassEnd::kCancelled;
    const int r = archive_read_next_header(reader.get(), &entry);
    if (r == ARCHIVE_OK) return PassEnd::kStopped;  // an entry is ready
    if (r == ARCHIVE_WARN) {
      reporter_.log(Reporter::Level::kWarning, "tar recover: " + reader.error());
      return PassEnd::kStopped;
    }
    if (r == ARCHIVE_EOF) return PassEnd::kEnd;
    if (r == ARCHIVE_RETRY) {
      // A damaged header: libarchive skips it and looks for the next one.
      if (!damaged_) {
        reporter_.log(Reporter::Level::kError, "tar recover: damaged image: " + reader.error());
      }
      damaged_ = true;
      continue;
    }
    if (cancel_.requested()) return PassEnd::kCancelled;
    if (reader.source_failed()) return PassEnd::kSourceFailed;
    return fatal(reader.error());
  }
  return fatal("damaged image: no valid header found");
}

void Recovery::prune(const std::string& out_rel, const std::vector<std::string>& keep,
                     const std::string& entry_name) {
  FdCloser dir(open_dir_beneath(dest_fd_, out_rel));
  if (dir.fd < 0) {
    warn(entry_name,
         std::string("cannot apply the incremental's deletions: ") + std::strerror(errno));
    return;
  }
  std::vector<std::string> present;
  if (!list_dir(dir.fd, present)) {
    warn(entry_name, std::string("cannot list the directory: ") + std::strerror(errno));
    return;
  }
  for (const std::string& n : present) {
    if (std::binary_search(keep.begin(), keep.end(), n)) continue;
    if (int e = remove_beneath(dir.fd, n, 0); e != 0) {
      warn(join_relative(entry_name, n), std::string("cannot remove: ") + std::strerror(e));
    }
  }
}

// An incremental may turn a directory into a file: libarchive only removes
// an empty directory in the way, so remove the whole subtree first.
void Recovery::clear_directory_in_the_way(const std::string& out_rel,
                                          const std::string& entry_name) {
  if (out_rel.empty()) return;
  struct stat st {};
  if (::lstat(absolute(out_rel).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
  const std::size_t slash = out_rel.rfind('/');
  const std::string parent = slash == std::string::npos ? "" : out_rel.substr(0, slash);
  const std::string base = slash == std::string::npos ? out_rel : out_rel.substr(slash + 1);
  FdCloser dir(open_dir_beneath(dest_fd_, parent));
  if (dir.fd < 0) return;  // libarchive will report what is wrong
  if (int e = remove_beneath(dir.fd, base, 0); e != 0) {
    warn(entry_name, std::string("cannot remove the directory in the way: ") + std::strerror(e));
  }
}

void Recovery::fix_existing_directories() {
  // Opened beneath the destination without following symlinks: the image
  // may have replaced a directory by a symlink since.
  for (const DirTimes& d : existing_dirs_) {
    FdCloser dir(open_dir_beneath(dest_fd_, d.out_rel));
    if (dir.fd < 0 || ::futimens(dir.fd, d.times) != 0) {
      warn(history_path(d.out_rel),
           std::string("cannot set the directory's times: ") + std::strerror(errno));
    }
  }
  existing_dirs_.clear();
}

PassEnd Recovery::restore_entry(ImageReader& reader, archive_entry* entry, const std::string& rel,
                                const std::string& out_rel, NameState* name) {
  const std::string display = history_path(rel);
  if (name != nullptr) name->found = true;

  std::optional<std::vector<std::string>> dirents;
  if (archive_entry_filetype(entry) == AE_IFDIR) {
    dirents = take_dirents(entry);
    if (dirents) incremental_ = true;
  } else if (incremental_ && restore_all_ && archive_entry_hardlink(entry) == nullptr) {
    clear_directory_in_the_way(out_rel, display);
  }

  if (const char* link = archive_entry_hardlink(entry); link != nullptr) {
    auto link_rel = normalize_name(link);
    if (!link_rel) {
      warn(display, std::string("refused: hard link to \"") + link + "\" outside the image");
      fail_name(name, EPERM);
      return PassEnd::kStopped;
    }
    auto link_out = map_hardlink(*link_rel);
    if (!link_out) {
      warn(display, "not restored: its hard link target /" + *link_rel + " is not restored");
      fail_name(name, ENOENT);
      return PassEnd::kStopped;
    }
    archive_entry_set_hardlink(entry, absolute(*link_out).c_str());
  }
  const std::string out_path = absolute(out_rel);
  archive_entry_set_pathname(entry, out_path.c_str());

  bool existing_dir = false;
  if (archive_entry_filetype(entry) == AE_IFDIR && archive_entry_mtime_is_set(entry)) {
    struct stat st {};
    existing_dir = ::lstat(out_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  int r = archive_write_header(disk_, entry);
  if (r == ARCHIVE_WARN) {
    warn(display, archive_error_string(disk_) != nullptr ? archive_error_string(disk_) : "warning");
  } else if (r != ARCHIVE_OK) {
    const char* why = archive_error_string(disk_);
    warn(display, std::string("not restored: ") + (why != nullptr ? why : "refused"));
    fail_name(name, archive_errno(disk_) > 0 ? archive_errno(disk_) : EPERM);
    if (r == ARCHIVE_FATAL) return fatal("disk writer failed: " + std::string(why ? why : ""));
    return PassEnd::kStopped;
  }

  bool write_ok = true;
  if (archive_entry_size(entry) > 0) {
    for (;;) {
      if (cancel_.requested()) return PassEnd::kCancelled;
      const void* block = nullptr;
      std::size_t size = 0;
      la_int64_t offset = 0;
      const int rr = archive_read_data_block(reader.get(), &block, &size, &offset);
      if (rr == ARCHIVE_EOF) break;
      if (rr < ARCHIVE_WARN) {
        archive_write_finish_entry(disk_);
        if (cancel_.requested()) return PassEnd::kCancelled;
        if (reader.source_failed()) return PassEnd::kSourceFailed;
        fail_name(name, EIO);
        return fatal(reader.error());
      }
      if (write_ok && size > 0) {
        const la_ssize_t w = archive_write_data_block(disk_, block, size, offset);
        if (w < ARCHIVE_WARN) {
          const char* why = archive_error_string(disk_);
          warn(display, std::string("write failed: ") + (why != nullptr ? why : "error"));
          fail_name(name, archive_errno(disk_) > 0 ? archive_errno(disk_) : EIO);
          write_ok = false;
        }
      }
      progress();
    }
  }
  r = archive_write_finish_entry(disk_);
  if (r == ARCHIVE_WARN) {
    warn(display, archive_error_string(disk_) != nullptr ? archive_error_string(disk_) : "warning");
  } else if (r != ARCHIVE_OK) {
    const char* why = archive_error_string(disk_);
    warn(display, std::string("not completed: ") + (why != nullptr ? why : "error"));
    fail_name(name, archive_errno(disk_) > 0 ? archive_errno(disk_) : EIO);
    write_ok = false;
    if (r == ARCHIVE_FATAL) return fatal("disk writer failed: " + std::string(why ? why : ""));
  }
  if (dirents && restore_all_) prune(out_rel, *dirents, display);
  if (existing_dir && write_ok) {
    DirTimes t{out_rel, {}};
    t.times[1].tv_sec = archive_entry_mtime(entry);
    t.times[1].tv_nsec = archive_entry_mtime_nsec(entry);
    t.times[0] = t.times[1];
    if (archive_entry_atime_is_set(entry)) {
      t.times[0].tv_sec = archive_entry_atime(entry);
      t.times[0].tv_nsec = archive_entry_atime_nsec(entry);
    }
    existing_dirs_.push_back(std::move(t));
  }
  if (write_ok) ++files_;
  progress();
  return PassEnd::kStopped;
}

PassEnd Recovery::sequential_pass() {
  ImageReader reader(source_, buffer_, bytes_read_);
  if (!reader.open(false, 0)) {
    if (cancel_.requested()) return PassEnd::kCancelled;
    if (reader.source_failed()) return PassEnd::kSourceFailed;
    return fatal(reader.error());
  }
  const auto all_done = [this] {
    return std::all_of(names_.begin(), names_.end(), [](const NameState& n) { return n.done; });
  };
  for (;;) {
    archive_entry* entry = nullptr;
    if (PassEnd e = next_header(reader, entry); e != PassEnd::kStopped) return e;
    const char* raw = entry_pathname(entry);
    auto rel = normalize_name(raw != nullptr ? raw : "");
    if (!restore_all_) {
      // A directory's subtree is contiguous: leaving it finishes the name.
      for (NameState& n : names_) {
        if (n.found && !n.done && (!rel || !is_within(*rel, n.original))) n.done = true;
      }
      if (all_done()) return PassEnd::kStopped;
    }
    if (!rel) {
      const std::string shown = raw != nullptr ? raw : "(no name)";
      warn(shown, "refused: absolute name or \"..\" component");
      if (restore_all_ && !names_.empty()) fail_name(&names_[0], EPERM);
      continue;
    }
    NameState* name = nullptr;
    auto out_rel = map_name(*rel, &name);
    if (!out_rel) continue;  // not selected: libarchive skips its data
    if (PassEnd e = restore_entry(reader, entry, *rel, *out_rel, name); e != PassEnd::kStopped) {
      return e;
    }
    if (name != nullptr && !restore_all_ && archive_entry_filetype(entry) != AE_IFDIR &&
        *rel == name->original) {
      name->done = true;
    }
    if (!restore_all_ && all_done()) return PassEnd::kStopped;
  }
}

PassEnd Recovery::direct_pass(NameState& name) {
  ImageReader reader(source_, buffer_, bytes_read_);
  if (!reader.open(true, name.request->fh_info)) {
    if (cancel_.requested()) return PassEnd::kCancelled;
    if (reader.source_failed()) return PassEnd::kSourceFailed;
    return fatal(reader.error());
  }
  bool first = true;
  for (;;) {
    archive_entry* entry = nullptr;
    const PassEnd e = next_header(reader, entry);
    if (e == PassEnd::kFatal && first) {
      // Not a header where the DMA said: fall back to the sequential pass.
      warn(name.request->original_path, "no entry at fh_info " +
                                            std::to_string(name.request->fh_info) + ": " +
                                            fatal_error_ + "; searching the image");
      fatal_error_.clear();
      name.direct = false;
      return PassEnd::kStopped;
    }
    if (e == PassEnd::kEnd) {
      if (first) name.direct = false;
      return PassEnd::kStopped;
    }
    if (e != PassEnd::kStopped) return e;
    reader.entry_needs(entry);
    const char* raw = entry_pathname(entry);
    auto rel = normalize_name(raw != nullptr ? raw : "");
    if (first) {
      if (!rel || *rel != name.original) {
        warn(name.request->original_path, "fh_info " + std::to_string(name.request->fh_info) +
                                              " names \"" + (raw ? raw : "") +
                                              "\" instead; searching the image");
        name.direct = false;
        return PassEnd::kStopped;
      }
    } else if (!rel || !is_within(*rel, name.original)) {
      break;  // past the subtree
    }
    const bool is_dir = archive_entry_filetype(entry) == AE_IFDIR;
    std::string_view suffix = std::string_view(*rel).substr(name.original.size());
    if (!suffix.empty() && suffix.front() == '/') suffix.remove_prefix(1);
    if (PassEnd r = restore_entry(reader, entry, *rel, join_relative(name.target, suffix), &name);
        r != PassEnd::kStopped) {
      return r;
    }
    if (first && !is_dir) break;
    first = false;
  }
  name.done = true;
  return PassEnd::kStopped;
}

PassEnd Recovery::filehist_pass() {
  ImageReader reader(source_, buffer_, bytes_read_);
  if (!reader.open(false, 0)) {
    if (cancel_.requested()) return PassEnd::kCancelled;
    if (reader.source_failed()) return PassEnd::kSourceFailed;
    return fatal(reader.error());
  }
  std::unordered_map<std::string, std::uint64_t> dir_nodes;
  std::uint64_t next_node = 1;
  std::uint64_t root_node = kUnknown;
  for (;;) {
    archive_entry* entry = nullptr;
    if (PassEnd e = next_header(reader, entry); e != PassEnd::kStopped) return e;
    const char* raw = entry_pathname(entry);
    auto rel = normalize_name(raw != nullptr ? raw : "");
    if (!rel) {
      warn(raw != nullptr ? raw : "(no name)", "skipped: absolute name or \"..\" component");
      continue;
    }
    const std::uint64_t fh_info = reader.header_offset();
    const FileStat stat = file_stat_of(entry);
    const std::uint64_t node = next_node++;
    ++files_;
    if (job_.hist == BackupJob::Hist::kFile) {
      reporter_.add_file(history_path(*rel), stat, node, fh_info);
    } else if (job_.hist == BackupJob::Hist::kDir) {
      if (rel->empty()) {
        root_node = node;
        reporter_.add_dir(".", node, node);
      } else {
        const std::size_t slash = rel->rfind('/');
        const std::string parent = slash == std::string::npos ? "" : rel->substr(0, slash);
        const std::string base = slash == std::string::npos ? *rel : rel->substr(slash + 1);
        std::uint64_t parent_node = root_node;
        if (auto it = dir_nodes.find(parent); it != dir_nodes.end()) parent_node = it->second;
        if (parent_node == kUnknown) {
          // An image without its root entry: give the root a node anyway.
          root_node = parent_node = next_node++;
          reporter_.add_dir(".", root_node, root_node);
        }
        reporter_.add_dir(base, node, parent_node);
      }
      reporter_.add_node(stat, node, fh_info);
    }
    if (stat.type == FileStat::Type::kDir) dir_nodes.emplace(*rel, node);
    progress();
  }
}

Result Recovery::run() {
  Result result;
  PassEnd end = PassEnd::kEnd;
  if (job_.filehist_only) {
    end = filehist_pass();
  } else if (!setup_destination()) {
    end = PassEnd::kFatal;
  } else {
    setup_names();
    std::vector<NameState*> direct;
    if (job_.direct && !restore_all_) {
      for (NameState& n : names_) {
        if (n.valid && n.request->fh_info != kUnknown) {
          n.direct = true;
          direct.push_back(&n);
        }
      }
      std::stable_sort(direct.begin(), direct.end(), [](const NameState* a, const NameState* b) {
        return a->request->fh_info < b->request->fh_info;
      });
    }
    for (NameState* n : direct) {
      end = direct_pass(*n);
      if (end != PassEnd::kStopped && end != PassEnd::kEnd) break;
    }
    if (end == PassEnd::kStopped || end == PassEnd::kEnd) {
      const bool any_left = std::any_of(names_.begin(), names_.end(), [](const NameState& n) {
        return n.valid && !n.direct && !n.done;
      });
      if (restore_all_ || any_left) end = sequential_pass();
    }
    // Directories get their modes and times now, after their contents,
    // whatever ended the recovery: what was restored stays consistent.
    if (archive_write_close(disk_) != ARCHIVE_OK) {
      const char* why = archive_error_string(disk_);
      reporter_.log(Reporter::Level::kWarning,
                    std::string("tar recover: fixing directories up: ") + (why ? why : "error"));
    }
    fix_existing_directories();
  }

  const bool complete = end == PassEnd::kEnd || end == PassEnd::kStopped;
  result.image_bytes = bytes_read_;
  result.files = files_;
  if (cancel_.requested() && !complete) end = PassEnd::kCancelled;
  switch (end) {
    case PassEnd::kEnd:
    case PassEnd::kStopped:
      result.ok = !damaged_;
      if (damaged_) result.error = "damaged image: some headers were skipped";
      break;
    case PassEnd::kCancelled:
      result.cancelled = true;
      result.error = "recovery cancelled";
      break;
    case PassEnd::kSourceFailed:
      result.error = "reading the image failed";
      break;
    case PassEnd::kFatal:
      result.error = fatal_error_.empty() ? "damaged image" : fatal_error_;
      break;
  }
  if (!result.ok && !result.cancelled) {
    reporter_.log(Reporter::Level::kError, "tar recover: " + result.error);
  }
  for (NameState& n : names_) {
    int err = n.error;
    if (err == 0 && !n.found) err = complete ? ENOENT : (result.cancelled ? ECANCELED : EIO);
    reporter_.file_result(n.request->original_path, err);
  }
  progress();
  return result;
}

}  // namespace

Result run_tar_recover(const RecoverJob& job, Source& source, Reporter& reporter,
                       const Cancel& cancel) {
  try {
    Recovery recovery(job, source, reporter, cancel);
    return recovery.run();
  } catch (const std::exception& e) {
    Result result;
    result.error = std::string("tar recover: ") + e.what();
    reporter.log(Reporter::Level::kError, result.error);
    return result;
  }
}

}  // namespace ndmpd::data
