// Test helper: writes tar images in memory with libarchive's write API,
// following the image conventions of the tar butype (POSIX pax, unblocked,
// root "." first, depth-first pre-order, fh_info = the offset of an
// entry's first header byte, "ndmpd.dirents" on incremental directories).
// Entries can come from a directory on disk (add_tree) or be crafted one by
// one, hostile names included (libarchive's writer takes them as given).
//
// Single-threaded; one builder per image.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace ndmpd::data::testing {

class ImageBuilder {
 public:
  ImageBuilder() {
    archive_ = archive_write_new();
    archive_write_set_format_pax(archive_);
    archive_write_set_bytes_per_block(archive_, 0);
    if (archive_write_open(archive_, this, nullptr, &ImageBuilder::write_callback, nullptr) !=
        ARCHIVE_OK) {
      throw std::runtime_error("archive_write_open failed");
    }
    disk_ = archive_read_disk_new();
    resolver_ = archive_entry_linkresolver_new();
    archive_entry_linkresolver_set_strategy(resolver_, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
  }
  ImageBuilder(const ImageBuilder&) = delete;
  ImageBuilder& operator=(const ImageBuilder&) = delete;
  ~ImageBuilder() {
    if (archive_ != nullptr) archive_write_free(archive_);
    if (disk_ != nullptr) archive_read_free(disk_);
    if (resolver_ != nullptr) archive_entry_linkresolver_free(resolver_);
  }

  // Writes `entry` (and `data`, the whole logical content for a regular
  // file; a sparse entry's holes are dropped by the writer); returns its
  // fh_info.
  std::uint64_t add(archive_entry* entry, std::span<const std::uint8_t> data = {}) {
    // The previous entry's padding to 512 bytes is only written when it is
    // finished: finish it first, or the offset would fall short of it.
    archive_write_finish_entry(archive_);
    const std::uint64_t offset = image_.size();
    const char* raw = archive_entry_pathname(entry);
    const std::string name = raw != nullptr ? raw : "";
    if (archive_write_header(archive_, entry) < ARCHIVE_WARN) {
      throw std::runtime_error(std::string("write_header: ") + archive_error_string(archive_));
    }
    if (!data.empty() && archive_write_data(archive_, data.data(), data.size()) < 0) {
      throw std::runtime_error(std::string("write_data: ") + archive_error_string(archive_));
    }
    offsets_[name] = offset;
    return offset;
  }

  static constexpr std::int64_t kMtime = 1700000000;

  std::uint64_t add_dir(const std::string& name, unsigned mode = 0755,
                        const std::optional<std::vector<std::string>>& dirents = std::nullopt) {
    archive_entry* e = make(name, AE_IFDIR, mode);
    if (dirents) set_dirents(e, *dirents);
    const std::uint64_t off = add(e);
    archive_entry_free(e);
    return off;
  }
  std::uint64_t add_file(const std::string& name, const std::string& content,
                         unsigned mode = 0644) {
    archive_entry* e = make(name, AE_IFREG, mode);
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    const std::uint64_t off =
        add(e, std::span(reinterpret_cast<const std::uint8_t*>(content.data()), content.size()));
    archive_entry_free(e);
    return off;
  }
  std::uint64_t add_symlink(const std::string& name, const std::string& target) {
    archive_entry* e = make(name, AE_IFLNK, 0777);
    archive_entry_set_symlink(e, target.c_str());
    const std::uint64_t off = add(e);
    archive_entry_free(e);
    return off;
  }
  // A hard link entry; with `content`, one that carries data (as some tar
  // writers make them), which a reader writes into the linked file.
  std::uint64_t add_hardlink(const std::string& name, const std::string& target,
                             const std::string& content = "") {
    archive_entry* e = make(name, AE_IFREG, 0644);
    archive_entry_set_hardlink(e, target.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    const std::uint64_t off =
        add(e, std::span(reinterpret_cast<const std::uint8_t*>(content.data()), content.size()));
    archive_entry_free(e);
    return off;
  }

  // The tree under `root`, "." first then depth-first pre-order (sorted
  // names), with hard links, sparse maps, xattrs and ACLs as libarchive
  // reads them from disk.  With `dirents`, each directory carries its
  // "ndmpd.dirents" list (an incremental image that happens to hold
  // everything).
  // `include` (if given) picks the non-directories to write: directories
  // are always written, as an incremental image has them.
  void add_tree(const std::filesystem::path& root, bool dirents = false,
                std::function<bool(const std::string&)> include = nullptr) {
    include_ = std::move(include);
    walk(root, ".", dirents, 0);
  }

  // Ends the image (libarchive's end-of-archive blocks) and returns it.
  std::vector<std::uint8_t> finish() {
    archive_write_close(archive_);
    return std::move(image_);
  }

  // fh_info of each entry, by the name written.
  const std::map<std::string, std::uint64_t>& offsets() const { return offsets_; }

  static archive_entry* make(const std::string& name, unsigned type, unsigned mode) {
    archive_entry* e = archive_entry_new();
    archive_entry_copy_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, mode);
    archive_entry_set_mtime(e, kMtime, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    return e;
  }
  static void set_dirents(archive_entry* e, std::vector<std::string> names) {
    std::sort(names.begin(), names.end());
    std::string value;
    for (const std::string& n : names) {
      value += n;
      value.push_back('\0');
    }
    archive_entry_xattr_add_entry(e, "ndmpd.dirents", value.data(), value.size());
  }

 private:
  static la_ssize_t write_callback(archive*, void* self, const void* buffer, size_t length) {
    auto* b = static_cast<ImageBuilder*>(self);
    const auto* p = static_cast<const std::uint8_t*>(buffer);
    b->image_.insert(b->image_.end(), p, p + length);
    return static_cast<la_ssize_t>(length);
  }

  void walk(const std::filesystem::path& path, const std::string& name, bool dirents, int depth) {
    if (depth > 64) throw std::runtime_error("tree too deep");
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) throw std::runtime_error("lstat " + path.string());
    archive_entry* e = archive_entry_new();
    archive_entry_copy_pathname(e, name.c_str());
    archive_entry_copy_sourcepath(e, path.c_str());
    if (!S_ISDIR(st.st_mode) && include_ && !include_(name)) {
      archive_entry_free(e);
      return;
    }
    int fd = S_ISREG(st.st_mode) ? ::open(path.c_str(), O_RDONLY | O_CLOEXEC) : -1;
    if (archive_read_disk_entry_from_file(disk_, e, fd, &st) < ARCHIVE_WARN) {
      throw std::runtime_error("entry_from_file " + path.string());
    }
    std::vector<std::string> children;
    if (S_ISDIR(st.st_mode)) {
      for (const auto& c : std::filesystem::directory_iterator(path)) {
        children.push_back(c.path().filename().string());
      }
      std::sort(children.begin(), children.end());
      if (dirents) set_dirents(e, children);
    }
    archive_entry* spare = nullptr;
    archive_entry_linkify(resolver_, &e, &spare);
    std::vector<std::uint8_t> data;
    if (fd >= 0 && archive_entry_size(e) > 0) {
      data.resize(static_cast<std::size_t>(st.st_size));
      std::size_t got = 0;
      while (got < data.size()) {
        const ssize_t n =
            ::pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(got));
        if (n <= 0) throw std::runtime_error("read " + path.string());
        got += static_cast<std::size_t>(n);
      }
    }
    if (fd >= 0) ::close(fd);
    add(e, data);
    archive_entry_free(e);
    if (spare != nullptr) archive_entry_free(spare);
    for (const std::string& c : children) {
      walk(path / c, name == "." ? c : name + "/" + c, dirents, depth + 1);
    }
  }

  archive* archive_ = nullptr;
  archive* disk_ = nullptr;
  archive_entry_linkresolver* resolver_ = nullptr;
  std::function<bool(const std::string&)> include_;
  std::vector<std::uint8_t> image_;
  std::map<std::string, std::uint64_t> offsets_;
};

}  // namespace ndmpd::data::testing
