#include "ndmpd/data/tar_backup.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ndmpd/data/incremental.h"

namespace ndmpd::data {

namespace {

// Sink writes: large enough that the per-write cost of the data connection
// vanishes, small enough that progress and backpressure stay fine-grained.
constexpr std::size_t kBlockBytes = 1 << 20;
// File reads: large sequential reads are what keeps up with `tar -cf`.
constexpr std::size_t kReadBytes = 1 << 20;

constexpr const char* kDirentsXattr = "ndmpd.dirents";

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

std::string history_path(const std::string& rel) { return rel == "." ? "/" : "/" + rel; }

FileStat file_stat(const struct stat& st) {
  FileStat f;
  switch (st.st_mode & S_IFMT) {
    case S_IFDIR:
      f.type = FileStat::Type::kDir;
      break;
    case S_IFIFO:
      f.type = FileStat::Type::kFifo;
      break;
    case S_IFCHR:
      f.type = FileStat::Type::kChar;
      break;
    case S_IFBLK:
      f.type = FileStat::Type::kBlock;
      break;
    case S_IFREG:
      f.type = FileStat::Type::kReg;
      break;
    case S_IFLNK:
      f.type = FileStat::Type::kSymlink;
      break;
    case S_IFSOCK:
      f.type = FileStat::Type::kSocket;
      break;
    default:
      f.type = FileStat::Type::kOther;
      break;
  }
  f.mode = st.st_mode & 07777;
  f.uid = st.st_uid;
  f.gid = st.st_gid;
  f.size = static_cast<std::uint64_t>(st.st_size);
  f.mtime = st.st_mtim.tv_sec;
  f.atime = st.st_atim.tv_sec;
  f.ctime = st.st_ctim.tv_sec;
  f.links = static_cast<std::uint32_t>(st.st_nlink);
  return f;
}

bool same_timespec(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct ArchiveWriteFree {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct ArchiveReadFree {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct EntryFree {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};
struct ResolverFree {
  void operator()(struct archive_entry_linkresolver* r) const {
    archive_entry_linkresolver_free(r);
  }
};

// The image as libarchive hands it over (unblocked: byte by byte as it is
// produced, so produced() is an exact image offset), gathered into blocks
// for the Sink.
class ImageOutput {
 public:
  ImageOutput(Sink& sink, Reporter& reporter) : sink_(sink), reporter_(reporter) {
    block_.reserve(kBlockBytes);
  }

  static la_ssize_t write_callback(struct archive*, void* self, const void* buffer, size_t length) {
    return static_cast<ImageOutput*>(self)->take(static_cast<const std::uint8_t*>(buffer), length);
  }

  // The image offset of the next byte libarchive produces.
  std::uint64_t produced() const { return produced_; }
  std::uint64_t delivered() const { return delivered_; }
  bool failed() const { return failed_; }
  void set_files(std::uint64_t files) { files_ = files; }

  // Hands the partial last block to the Sink.
  bool flush() {
    if (failed_) return false;
    if (block_.empty()) return true;
    return deliver_block();
  }

  // After a failure or a cancel: libarchive still writes its end blocks
  // when it is freed, and they must not reach the Sink.
  void discard() { discard_ = true; }

 private:
  la_ssize_t take(const std::uint8_t* p, std::size_t length) {
    if (discard_) return static_cast<la_ssize_t>(length);
    if (failed_) return -1;
    produced_ += length;
    std::size_t left = length;
    while (left > 0) {
      if (block_.empty() && left >= kBlockBytes) {
        // Whole blocks straight from libarchive's buffer.
        std::size_t whole = left - left % kBlockBytes;
        if (!deliver(p, whole)) return -1;
        p += whole;
        left -= whole;
        continue;
      }
      std::size_t n = std::min(left, kBlockBytes - block_.size());
      block_.insert(block_.end(), p, p + n);
      p += n;
      left -= n;
      if (block_.size() == kBlockBytes && !deliver_block()) return -1;
    }
    return static_cast<la_ssize_t>(length);
  }

  bool deliver(const std::uint8_t* p, std::size_t n) {
    return delivered(n, sink_.write(std::span<const std::uint8_t>(p, n)));
  }
  // The gathered block goes to the Sink whole (it keeps it, no copy).
  bool deliver_block() {
    const std::size_t n = block_.size();
    const bool ok = sink_.write_owned(std::exchange(block_, {}));
    block_.reserve(kBlockBytes);
    return delivered(n, ok);
  }
  bool delivered(std::size_t n, bool ok) {
    if (!ok) {
      failed_ = true;
      return false;
    }
    delivered_ += n;
    reporter_.progress(delivered_, files_);
    return true;
  }

  Sink& sink_;
  Reporter& reporter_;
  std::vector<std::uint8_t> block_;  // gathered bytes, up to kBlockBytes
  std::uint64_t produced_ = 0;
  std::uint64_t delivered_ = 0;
  std::uint64_t files_ = 0;
  bool failed_ = false;
  bool discard_ = false;
};

// The meaning of a yes/no variable as the DMA spelled it.
bool env_says(const Env& env, const std::string& name, bool& value) {
  for (const auto& [k, v] : env) {
    if (k != name) continue;
    if (v == "y" || v == "Y" || v == "yes" || v == "YES" || v == "t" || v == "T") {
      value = true;
      return true;
    }
    if (v == "n" || v == "N" || v == "no" || v == "NO" || v == "f" || v == "F") {
      value = false;
      return true;
    }
    return false;
  }
  return false;
}

void env_set(Env& env, const std::string& name, const std::string& value) {
  for (auto& [k, v] : env) {
    if (k == name) {
      v = value;
      return;
    }
  }
  env.emplace_back(name, value);
}

class Backup {
 public:
  Backup(const BackupJob& job, Sink& sink, Reporter& reporter, const Cancel& cancel)
      : job_(job), reporter_(reporter), cancel_(cancel), out_(sink, reporter) {}

  Result run();

 private:
  enum class Stop { kNone, kCancelled, kFailed };

  bool setup_archive();
  bool directory(Fd fd, int parent_fd, const std::string& name, const std::string& rel,
                 const struct stat& st, std::uint64_t parent_ino, bool whole_subtree);
  bool child(int dir_fd, const std::string& dir_rel, std::uint64_t dir_ino, const std::string& name,
             bool whole_subtree);
  bool list_directory(int fd, const std::string& rel, std::vector<std::string>& names);
  bool emit(int fd, int parent_fd, const std::string& name, const std::string& rel,
            const struct stat& st, std::uint64_t parent_ino,
            const std::vector<std::string>* dirents);
  bool write_data(int fd, const std::string& rel, const struct stat& before);
  bool write_bytes(const void* p, std::size_t n);
  bool write_zeros(std::int64_t n);
  void history(const std::string& name, const std::string& rel, const struct stat& st,
               std::uint64_t parent_ino, std::uint64_t fh_info);
  bool excluded(const std::string& name, const std::string& rel) const;
  std::string source_path(int parent_fd, int own_fd, const std::string& name,
                          const std::string& rel) const;
  bool cancelled();
  bool fail(const std::string& why);
  bool fail_archive(const std::string& what);
  void warn(const std::string& text) { reporter_.log(Reporter::Level::kWarning, text); }
  Result finish(Result r);

  const BackupJob& job_;
  Reporter& reporter_;
  const Cancel& cancel_;
  ImageOutput out_;

  std::unique_ptr<struct archive, ArchiveWriteFree> archive_;
  std::unique_ptr<struct archive, ArchiveReadFree> disk_;
  // The same, without looking for holes: for files whose blocks cover
  // their size (most), which saves the SEEK_DATA / SEEK_HOLE walk.
  std::unique_ptr<struct archive, ArchiveReadFree> dense_disk_;
  std::unique_ptr<struct archive_entry, EntryFree> entry_;
  std::unique_ptr<struct archive_entry_linkresolver, ResolverFree> resolver_;
  std::vector<std::uint8_t> read_buffer_;
  std::vector<std::uint8_t> zeros_;

  std::optional<IncrementalBase> base_;
  std::vector<SnapshotDir> snapshot_;
  std::unordered_set<std::uint64_t> noded_;  // multi-link inodes already sent by add_node
  dev_t root_dev_ = 0;
  bool proc_fd_ = false;
  std::uint64_t files_ = 0;
  Stop stop_ = Stop::kNone;
  std::string error_;
};

bool Backup::cancelled() {
  if (stop_ == Stop::kNone && cancel_.requested()) stop_ = Stop::kCancelled;
  return stop_ != Stop::kNone;
}

bool Backup::fail(const std::string& why) {
  if (stop_ == Stop::kNone) {
    if (cancel_.requested()) {
      stop_ = Stop::kCancelled;
    } else {
      stop_ = Stop::kFailed;
      error_ = why;
    }
  }
  return false;
}

bool Backup::fail_archive(const std::string& what) {
  if (out_.failed()) return fail("the data connection refused the image (" + what + ")");
  const char* text = archive_error_string(archive_.get());
  return fail(what + ": " + (text ? text : "libarchive error"));
}

bool Backup::setup_archive() {
  archive_.reset(archive_write_new());
  disk_.reset(archive_read_disk_new());
  dense_disk_.reset(archive_read_disk_new());
  entry_.reset(archive_entry_new());
  resolver_.reset(archive_entry_linkresolver_new());
  if (!archive_ || !disk_ || !dense_disk_ || !entry_ || !resolver_) return fail("out of memory");
  if (archive_write_set_format_pax(archive_.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_per_block(archive_.get(), 0) != ARCHIVE_OK) {
    return fail_archive("cannot set up the pax writer");
  }
  // Names are bytes on disk, in no known charset (and the daemon runs in
  // the "C" locale): store them as they are (hdrcharset=BINARY) instead of
  // translating to UTF-8, which fails with a warning for any non-ASCII
  // name and would not give the same bytes back on recovery.
  if (archive_write_set_format_option(archive_.get(), "pax", "hdrcharset", "BINARY") !=
      ARCHIVE_OK) {
    return fail_archive("cannot set up the pax writer");
  }
  if (archive_write_open(archive_.get(), &out_, nullptr, &ImageOutput::write_callback, nullptr) !=
      ARCHIVE_OK) {
    return fail_archive("cannot open the image");
  }
  archive_entry_linkresolver_set_strategy(resolver_.get(), archive_format(archive_.get()));
  if (archive_read_disk_set_standard_lookup(disk_.get()) != ARCHIVE_OK ||
      archive_read_disk_set_standard_lookup(dense_disk_.get()) != ARCHIVE_OK ||
      archive_read_disk_set_behavior(dense_disk_.get(), ARCHIVE_READDISK_NO_SPARSE) != ARCHIVE_OK) {
    return fail("cannot set up owner name lookup");
  }
  read_buffer_.resize(kReadBytes);
  zeros_.assign(kReadBytes, 0);
  proc_fd_ = ::access("/proc/self/fd", X_OK) == 0;
  return true;
}

// Where libarchive finds an entry by name (for what it reads by path: a
// directory's default ACL, a symlink's target, xattrs of entries without
// a descriptor).  /proc/self/fd/N/name resolves through the directory we
// hold, so it works at any depth and path length and cannot be redirected
// by a rename of a parent.
std::string Backup::source_path(int parent_fd, int own_fd, const std::string& name,
                                const std::string& rel) const {
  if (proc_fd_) {
    if (parent_fd < 0) return "/proc/self/fd/" + std::to_string(own_fd);
    return "/proc/self/fd/" + std::to_string(parent_fd) + "/" + name;
  }
  return rel == "." ? job_.root.string() : (job_.root / rel).string();
}

bool Backup::excluded(const std::string& name, const std::string& rel) const {
  for (const std::string& pattern : job_.exclude) {
    if (pattern.empty()) continue;
    if (::fnmatch(pattern.c_str(), name.c_str(), 0) == 0 ||
        ::fnmatch(pattern.c_str(), rel.c_str(), 0) == 0) {
      return true;
    }
  }
  return false;
}

bool Backup::list_directory(int fd, const std::string& rel, std::vector<std::string>& names) {
  int dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) {
    warn("cannot read directory " + history_path(rel) + ": " + errno_text(errno) +
         "; its contents are not in the image");
    return false;
  }
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    int e = errno;
    ::close(dup_fd);
    warn("cannot read directory " + history_path(rel) + ": " + errno_text(e) +
         "; its contents are not in the image");
    return false;
  }
  ::rewinddir(dir);
  for (;;) {
    errno = 0;
    struct dirent* d = ::readdir(dir);
    if (d == nullptr) {
      if (errno != 0) {
        int e = errno;
        ::closedir(dir);
        warn("cannot read directory " + history_path(rel) + ": " + errno_text(e) +
             "; its contents are not in the image");
        names.clear();
        return false;
      }
      break;
    }
    if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
    names.emplace_back(d->d_name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return true;
}

bool Backup::directory(Fd fd, int parent_fd, const std::string& name, const std::string& rel,
                       const struct stat& st, std::uint64_t parent_ino, bool whole_subtree) {
  const bool root = parent_fd < 0;
  // A mount point is written as a directory; its contents belong to
  // another filesystem's backup.
  bool descend = st.st_dev == root_dev_ && (job_.recursive || root);
  std::vector<std::string> names;
  if (descend && !list_directory(fd.get(), rel, names)) descend = false;
  if (descend) {
    // Only directories whose contents are in this backup's scope: one we
    // did not descend into (excluded, unreadable, RECURSIVE=N) is new to
    // the next incremental, which then takes its whole subtree.
    snapshot_.push_back(SnapshotDir{static_cast<std::uint64_t>(st.st_dev),
                                    static_cast<std::uint64_t>(st.st_ino), rel});
    if (base_->incremental() && !whole_subtree && base_->new_directory(st.st_dev, st.st_ino, rel)) {
      whole_subtree = true;
    }
  }
  // Without a listing there is nothing to say which names to remove on
  // recovery, so such a directory carries no dirents.
  const std::vector<std::string>* dirents = base_->incremental() && descend ? &names : nullptr;
  if (!emit(fd.get(), parent_fd, name, rel, st, parent_ino, dirents)) return false;
  if (!descend) return true;
  for (const std::string& n : names) {
    if (cancelled()) return false;
    if (!child(fd.get(), rel, st.st_ino, n, whole_subtree)) return false;
  }
  return true;
}

bool Backup::child(int dir_fd, const std::string& dir_rel, std::uint64_t dir_ino,
                   const std::string& name, bool whole_subtree) {
  const std::string rel = dir_rel == "." ? name : dir_rel + "/" + name;
  if (excluded(name, rel)) return true;
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    warn("cannot stat " + history_path(rel) + ": " + errno_text(errno) + "; skipped");
    return true;
  }
  if (S_ISSOCK(st.st_mode)) {
    warn("skipping socket " + history_path(rel) + " (tar cannot hold sockets)");
    return true;
  }
  if (S_ISDIR(st.st_mode)) {
    Fd fd(::openat(dir_fd, name.c_str(),
                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!fd.valid()) {
      warn("cannot open directory " + history_path(rel) + ": " + errno_text(errno) + "; skipped");
      return true;
    }
    if (::fstat(fd.get(), &st) != 0) {
      warn("cannot stat " + history_path(rel) + ": " + errno_text(errno) + "; skipped");
      return true;
    }
    return directory(std::move(fd), dir_fd, name, rel, st, dir_ino, whole_subtree);
  }
  if (base_->incremental() && !whole_subtree && !base_->changed(st.st_mtim, st.st_ctim)) {
    return true;
  }
  Fd fd;
  if (S_ISREG(st.st_mode)) {
    // O_NOATIME: a backup should not look like a reader to the owner (it
    // is refused for files of others unless privileged: then without).
    const int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    fd = Fd(::openat(dir_fd, name.c_str(), flags | O_NOATIME));
    if (!fd.valid() && errno == EPERM) fd = Fd(::openat(dir_fd, name.c_str(), flags));
    if (!fd.valid()) {
      warn("cannot open " + history_path(rel) + ": " + errno_text(errno) + "; skipped");
      return true;
    }
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      warn(history_path(rel) + " changed type or vanished while opened; skipped");
      return true;
    }
  }
  return emit(fd.get(), dir_fd, name, rel, st, dir_ino, nullptr);
}

bool Backup::emit(int fd, int parent_fd, const std::string& name, const std::string& rel,
                  const struct stat& st, std::uint64_t parent_ino,
                  const std::vector<std::string>* dirents) {
  struct archive_entry* entry = entry_.get();
  archive_entry_clear(entry);
  archive_entry_copy_pathname(entry, rel.c_str());
  archive_entry_copy_sourcepath(entry, source_path(parent_fd, fd, name, rel).c_str());
  struct archive* disk =
      S_ISREG(st.st_mode) && std::uint64_t(st.st_blocks) * 512 >= std::uint64_t(st.st_size)
          ? dense_disk_.get()
          : disk_.get();
  int r = archive_read_disk_entry_from_file(disk, entry, fd, &st);
  if (r < ARCHIVE_WARN) {
    const char* text = archive_error_string(disk);
    warn("cannot read the attributes of " + history_path(rel) + ": " +
         (text ? text : "unknown error") + "; skipped");
    return true;
  }
  if (r == ARCHIVE_WARN) {
    const char* text = archive_error_string(disk);
    warn(history_path(rel) + ": " + (text ? text : "some attributes could not be read"));
  }
  if (dirents != nullptr) {
    std::string value;
    for (const std::string& n : *dirents) {
      value += n;
      value += '\0';
    }
    archive_entry_xattr_add_entry(entry, kDirentsXattr, value.data(), value.size());
  }
  struct archive_entry* spare = nullptr;
  archive_entry_linkify(resolver_.get(), &entry, &spare);
  // The tar strategy neither defers nor replaces entries.
  if (entry == nullptr) return true;

  const std::uint64_t fh_info = out_.produced();
  r = archive_write_header(archive_.get(), entry);
  if (r == ARCHIVE_FATAL || out_.failed()) return fail_archive("cannot write " + history_path(rel));
  if (r == ARCHIVE_FAILED) {
    const char* text = archive_error_string(archive_.get());
    warn("cannot write " + history_path(rel) + ": " + (text ? text : "unknown error") +
         "; skipped");
    return true;
  }
  if (r == ARCHIVE_WARN) {
    const char* text = archive_error_string(archive_.get());
    warn(history_path(rel) + ": " + (text ? text : "written with a warning"));
  }
  ++files_;
  out_.set_files(files_);
  history(name, rel, st, parent_ino, fh_info);

  if (S_ISREG(st.st_mode) && archive_entry_hardlink(entry) == nullptr &&
      archive_entry_size(entry) > 0) {
    if (!write_data(fd, rel, st)) return false;
  }
  if (archive_write_finish_entry(archive_.get()) == ARCHIVE_FATAL || out_.failed()) {
    return fail_archive("cannot write " + history_path(rel));
  }
  return !cancelled();
}

void Backup::history(const std::string& name, const std::string& rel, const struct stat& st,
                     std::uint64_t parent_ino, std::uint64_t fh_info) {
  switch (job_.hist) {
    case BackupJob::Hist::kNone:
      return;
    case BackupJob::Hist::kFile:
      reporter_.add_file(history_path(rel), file_stat(st), st.st_ino, fh_info);
      return;
    case BackupJob::Hist::kDir: {
      const bool root = rel == ".";
      reporter_.add_dir(root ? "." : name, st.st_ino, root ? st.st_ino : parent_ino);
      // A node is one inode: a second name of a hard-linked file is only
      // another directory entry.
      if (S_ISDIR(st.st_mode) || st.st_nlink <= 1 || noded_.insert(st.st_ino).second) {
        reporter_.add_node(file_stat(st), st.st_ino, fh_info);
      }
      return;
    }
  }
}

bool Backup::write_bytes(const void* p, std::size_t n) {
  la_ssize_t w = archive_write_data(archive_.get(), p, n);
  if (w < 0 || out_.failed()) return fail_archive("cannot write file data");
  return true;
}

bool Backup::write_zeros(std::int64_t n) {
  while (n > 0) {
    if (cancelled()) return false;
    std::size_t chunk = static_cast<std::size_t>(std::min<std::int64_t>(n, kReadBytes));
    if (!write_bytes(zeros_.data(), chunk)) return false;
    n -= static_cast<std::int64_t>(chunk);
  }
  return true;
}

bool Backup::write_data(int fd, const std::string& rel, const struct stat& before) {
  struct archive_entry* entry = entry_.get();
  const std::int64_t size = archive_entry_size(entry);
  // The data regions; holes between them go to libarchive as zeros, which
  // its pax writer drops (the sparse map describes them).
  std::vector<std::pair<std::int64_t, std::int64_t>> regions;
  if (archive_entry_sparse_reset(entry) > 0) {
    la_int64_t offset = 0, length = 0;
    while (archive_entry_sparse_next(entry, &offset, &length) == ARCHIVE_OK) {
      regions.emplace_back(offset, length);
    }
  } else {
    regions.emplace_back(0, size);
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  std::int64_t pos = 0;
  int read_errno = 0;
  bool short_read = false;
  for (auto [offset, length] : regions) {
    const std::int64_t start = std::clamp<std::int64_t>(offset, pos, size);
    const std::int64_t end = std::clamp<std::int64_t>(offset + length, start, size);
    if (!write_zeros(start - pos)) return false;
    pos = start;
    while (pos < end) {
      if (cancelled()) return false;
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::int64_t>(end - pos, kReadBytes));
      ssize_t got = 0;
      if (read_errno == 0 && !short_read) {
        do {
          got = ::pread(fd, read_buffer_.data(), want, pos);
        } while (got < 0 && errno == EINTR);
        if (got < 0) {
          read_errno = errno;
          got = 0;
        } else if (got == 0) {
          short_read = true;
        }
      }
      if (got == 0) {
        // The header announced `size` bytes: keep the image readable.
        if (!write_zeros(end - pos)) return false;
        pos = end;
        break;
      }
      if (!write_bytes(read_buffer_.data(), static_cast<std::size_t>(got))) return false;
      pos += got;
    }
  }
  if (!write_zeros(size - pos)) return false;

  struct stat after {};
  const bool restat = ::fstat(fd, &after) == 0;
  if (read_errno != 0) {
    warn("cannot read " + history_path(rel) + ": " + errno_text(read_errno) +
         "; its data in the image is padded with zeros");
  } else if (short_read || !restat || after.st_size != before.st_size ||
             !same_timespec(after.st_mtim, before.st_mtim) ||
             !same_timespec(after.st_ctim, before.st_ctim)) {
    warn(history_path(rel) + " changed while it was read (" +
         (short_read ? "it shrank" : "size, mtime or ctime differ") + "); the image holds " +
         std::to_string(size) + " bytes of it");
  }
  return true;
}

Result Backup::finish(Result r) {
  r.image_bytes = out_.produced();
  r.files = files_;
  if (!r.ok) {
    out_.discard();
    if (stop_ == Stop::kCancelled) {
      r.cancelled = true;
      if (r.error.empty()) r.error = "backup cancelled";
      reporter_.log(Reporter::Level::kNormal, "backup of " + job_.root.string() + " cancelled");
    } else {
      if (r.error.empty()) r.error = error_.empty() ? "backup failed" : error_;
      reporter_.log(Reporter::Level::kError, r.error);
    }
  }
  return r;
}

Result Backup::run() {
  Result result;
  // The incremental state first: a damaged history must stop the backup
  // before it writes an image nobody could place in a chain.
  DumpDates dates(job_.state_dir, job_.filesystem);
  const bool need_state = !job_.state_dir.empty();
  if (need_state) {
    std::string error;
    if (!dates.load(error)) {
      stop_ = Stop::kFailed;
      result.error = error;
      return finish(std::move(result));
    }
  } else if (job_.level > 0 || job_.base_date || job_.update) {
    warn("no state directory: dump dates are neither read nor recorded");
  }
  {
    std::string warning, error;
    base_ = IncrementalBase::plan(dates, job_.level, job_.base_date, warning, error);
    if (!base_) {
      stop_ = Stop::kFailed;
      result.error = error;
      return finish(std::move(result));
    }
    if (!warning.empty()) warn(warning);
  }
  const std::int64_t start_ns = dates.unique_start(dump_clock_now_ns());
  const std::string token = make_dump_date(base_->level(), start_ns);

  Fd root(::open(job_.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct stat root_st {};
  if (!root.valid() || ::fstat(root.get(), &root_st) != 0) {
    stop_ = Stop::kFailed;
    result.error = "cannot open the backup root " + job_.root.string() + ": " + errno_text(errno);
    return finish(std::move(result));
  }
  root_dev_ = root_st.st_dev;
  if (!setup_archive()) return finish(std::move(result));

  if (!directory(std::move(root), -1, ".", ".", root_st, root_st.st_ino, false)) {
    return finish(std::move(result));
  }
  if (cancelled()) return finish(std::move(result));
  if (archive_write_close(archive_.get()) != ARCHIVE_OK || out_.failed()) {
    fail_archive("cannot end the image");
    return finish(std::move(result));
  }
  if (!out_.flush()) {
    fail("the data connection refused the end of the image");
    return finish(std::move(result));
  }
  reporter_.progress(out_.delivered(), files_);

  // Only now does the backup count as a base for later incrementals.
  bool update = job_.update;
  if (update && need_state) {
    std::string error;
    DumpRecord record{base_->level(), start_ns, token, std::move(snapshot_)};
    if (!dates.commit(std::move(record), error)) {
      stop_ = Stop::kFailed;
      result.error = "the image is complete but its dump date was not recorded: " + error;
      return finish(std::move(result));
    }
  }

  result.ok = true;
  result.env = job_.env;
  env_set(result.env, "TYPE", "tar");
  env_set(result.env, "FILESYSTEM", job_.filesystem);
  env_set(result.env, "LEVEL", std::to_string(base_->level()));
  {
    // Keep the DMA's spelling when it means what was done.
    const char* hist = job_.hist == BackupJob::Hist::kNone   ? "N"
                       : job_.hist == BackupJob::Hist::kFile ? "F"
                                                             : "D";
    bool said = false;
    std::string given;
    for (const auto& [k, v] : job_.env) {
      if (k == "HIST") given = v;
    }
    bool keep = false;
    if (!given.empty()) {
      char c = static_cast<char>(given[0] | 0x20);
      keep =
          given.size() == 1 && ((job_.hist == BackupJob::Hist::kNone && c == 'n') ||
                                (job_.hist == BackupJob::Hist::kFile && (c == 'y' || c == 'f')) ||
                                (job_.hist == BackupJob::Hist::kDir && c == 'd'));
    }
    if (!keep) env_set(result.env, "HIST", hist);
    if (!env_says(job_.env, "UPDATE", said) || said != job_.update) {
      env_set(result.env, "UPDATE", job_.update ? "Y" : "N");
    }
  }
  env_set(result.env, "DUMP_DATE", token);
  if (job_.base_date) env_set(result.env, "BASE_DATE", *job_.base_date);
  if (job_.record_size != 0) env_set(result.env, "RECORD_SIZE", std::to_string(job_.record_size));
  return finish(std::move(result));
}

}  // namespace

Result run_tar_backup(const BackupJob& job, Sink& sink, Reporter& reporter, const Cancel& cancel) {
  try {
    Backup backup(job, sink, reporter, cancel);
    return backup.run();
  } catch (const std::exception& e) {
    Result r;
    r.error = std::string("backup failed: ") + e.what();
    reporter.log(Reporter::Level::kError, r.error);
    return r;
  }
}

}  // namespace ndmpd::data
