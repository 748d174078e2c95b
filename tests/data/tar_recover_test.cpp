// The tar recovery engine over in-memory Sources of images written by
// libarchive (tests/data/image_builder.h), restoring into scratch
// directories under a fresh mkdtemp() in /tmp.
#include "ndmpd/data/tar_recover.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "data/image_builder.h"
#include "data/memory_reporter.h"
#include "ndmpd/data/tar_backup.h"

namespace ndmpd::data {
namespace {

using testing::MemoryReporter;

namespace fs = std::filesystem;
using testing::ImageBuilder;

// ---- in-memory engine interfaces

class MemorySource : public Source {
 public:
  explicit MemorySource(std::vector<std::uint8_t> image) : image_(std::move(image)) {}

  bool request(std::uint64_t offset, std::uint64_t length) override {
    ++requests;
    if (cancel != nullptr && cancel->requested()) return false;
    const std::uint64_t size = image_.size();
    pos_ = std::min<std::uint64_t>(offset, size);
    end_ = length == kUnknown || length > size - pos_ ? size : pos_ + length;
    requested_bytes += length == kUnknown ? size - pos_ : length;
    return true;
  }

  std::ptrdiff_t read(std::span<std::uint8_t> buffer) override {
    if (fail_reads || (cancel != nullptr && cancel->requested())) return -1;
    const std::uint64_t limit = std::min<std::uint64_t>(end_, truncate_at);
    if (pos_ >= limit) return 0;
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>({buffer.size(), limit - pos_, chunk}));
    std::memcpy(buffer.data(), image_.data() + pos_, n);
    pos_ += n;
    bytes_read += n;
    if (cancel != nullptr && cancel_after != 0 && bytes_read >= cancel_after) cancel->request();
    return static_cast<std::ptrdiff_t>(n);
  }

  std::uint64_t requests = 0;
  std::uint64_t requested_bytes = 0;
  std::uint64_t bytes_read = 0;
  std::uint64_t truncate_at = ~0ull;
  std::uint64_t chunk = 256 << 10;  // what one read of the data connection brings
  bool fail_reads = false;
  Cancel* cancel = nullptr;
  std::uint64_t cancel_after = 0;

 private:
  std::vector<std::uint8_t> image_;
  std::uint64_t pos_ = 0;
  std::uint64_t end_ = 0;
};

// ---- scratch trees

class TarRecoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tar_recover_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    scratch_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(scratch_, ec);
  }
  fs::path make_dir(const std::string& name) {
    fs::path p = scratch_ / name;
    fs::create_directories(p);
    return p;
  }

  fs::path scratch_;
};

std::string pattern(std::size_t size, std::uint64_t seed) {
  std::string s(size, '\0');
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i + 8 <= size; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  for (std::size_t i = size / 8 * 8; i < size; ++i) s[i] = static_cast<char>(rng());
  return s;
}

void write_file(const fs::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  ASSERT_TRUE(out.good()) << p;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void set_mtime(const fs::path& p, std::int64_t sec, long nsec) {
  timespec ts[2] = {{static_cast<time_t>(sec), nsec}, {static_cast<time_t>(sec), nsec}};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << p;
}

std::set<std::string> list_tree(const fs::path& root) {
  std::set<std::string> out;
  out.insert("");
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    out.insert(it->path().lexically_relative(root).string());
  }
  return out;
}

std::string xattr_of(const fs::path& p, const char* name) {
  char buf[256];
  const ssize_t n = ::lgetxattr(p.c_str(), name, buf, sizeof buf);
  return n < 0 ? std::string("<none>") : std::string(buf, static_cast<std::size_t>(n));
}

// Type, mode, owner, mtime, content and link target of every file of two
// trees (their roots included) compare equal.
void expect_same_tree(const fs::path& want, const fs::path& got) {
  const std::set<std::string> a = list_tree(want), b = list_tree(got);
  ASSERT_EQ(a, b);
  for (const std::string& rel : a) {
    const fs::path pa = rel.empty() ? want : want / rel, pb = rel.empty() ? got : got / rel;
    struct stat sa {
    }, sb{};
    ASSERT_EQ(::lstat(pa.c_str(), &sa), 0) << pa;
    ASSERT_EQ(::lstat(pb.c_str(), &sb), 0) << pb;
    SCOPED_TRACE("entry \"" + rel + "\"");
    EXPECT_EQ(sa.st_mode & S_IFMT, sb.st_mode & S_IFMT);
    EXPECT_EQ(sa.st_uid, sb.st_uid);
    EXPECT_EQ(sa.st_gid, sb.st_gid);
    EXPECT_EQ(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
    EXPECT_EQ(sa.st_mtim.tv_nsec, sb.st_mtim.tv_nsec);
    if (S_ISLNK(sa.st_mode)) {
      EXPECT_EQ(fs::read_symlink(pa), fs::read_symlink(pb));
      continue;
    }
    EXPECT_EQ(sa.st_mode & 07777, sb.st_mode & 07777);
    if (S_ISREG(sa.st_mode)) {
      EXPECT_EQ(sa.st_size, sb.st_size);
      EXPECT_TRUE(read_file(pa) == read_file(pb)) << "content differs";
    }
    if (S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode)) {
      EXPECT_EQ(sa.st_rdev, sb.st_rdev);
    }
  }
}

RecoverJob restore_all_job(const fs::path& dest) {
  RecoverJob job;
  job.destination = dest;
  return job;
}

// The rich tree of the full-restore test.  Returns false (with a reason)
// for the parts this machine cannot make.
struct RichTree {
  bool has_xattr = false;
  bool has_device = false;
  std::string long_path;  // over 1024 bytes
};

RichTree make_rich_tree(const fs::path& root) {
  RichTree t;
  fs::create_directories(root / "docs");
  write_file(root / "docs" / "a.txt", "hello, hard links\n");
  fs::create_hard_link(root / "docs" / "a.txt", root / "docs" / "a_link.txt");
  write_file(root / "docs" / "b.bin", pattern(300 << 10, 1));
  fs::create_symlink("docs/a.txt", root / "lnk");
  fs::create_symlink("does/not/exist", root / "dangling");
  {
    // 64 MiB with two 4 KiB islands of data: holes must stay holes.
    const int fd = ::open((root / "sparse.img").c_str(), O_CREAT | O_WRONLY, 0640);
    const std::string island = pattern(4096, 2);
    EXPECT_EQ(::pwrite(fd, island.data(), island.size(), 1 << 20), 4096);
    EXPECT_EQ(::pwrite(fd, island.data(), island.size(), 40 << 20), 4096);
    EXPECT_EQ(::ftruncate(fd, 64 << 20), 0);
    ::close(fd);
  }
  EXPECT_EQ(::mkfifo((root / "fifo").c_str(), 0620), 0);
  write_file(root / std::string(255, 'n'), "longest name\n");
  fs::path deep = root / "deep";
  for (int i = 0; i < 5; ++i) deep /= std::string(220, static_cast<char>('a' + i));
  fs::create_directories(deep);
  write_file(deep / "leaf.txt", "far down\n");
  t.long_path = fs::relative(deep / "leaf.txt", root).string();
  EXPECT_GT(t.long_path.size(), 1024u);
  fs::create_directories(root / "été");
  write_file(root / "été" / "日本語.txt", "utf-8\n");
  write_file(root / "xattr.txt", "with an xattr\n");
  t.has_xattr = ::lsetxattr((root / "xattr.txt").c_str(), "user.ndmpd_test", "value42", 7, 0) == 0;
  write_file(root / "setuid", "#!/bin/sh\n");
  fs::permissions(root / "setuid", static_cast<fs::perms>(04755));
  write_file(root / "setgid", "#!/bin/sh\n");
  fs::permissions(root / "setgid", static_cast<fs::perms>(02750));
  fs::create_directories(root / "sticky");
  fs::permissions(root / "sticky", static_cast<fs::perms>(01777));
  fs::create_directories(root / "empty");
  write_file(root / "owned", "someone else's\n");
  EXPECT_EQ(::lchown((root / "owned").c_str(), 1234, 5678), 0);
  EXPECT_EQ(::lchown((root / "lnk").c_str(), 1234, 1234), 0);
  t.has_device = ::mknod((root / "null_dev").c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0;
  fs::create_directories(root / "sub" / "inner");
  write_file(root / "sub" / "inner" / "file1", "one\n");
  write_file(root / "sub" / "file2", "two\n");
  // Distinct times everywhere, directories last (bottom-up).
  std::vector<fs::path> all;
  for (auto& e : fs::recursive_directory_iterator(root)) all.push_back(e.path());
  std::sort(all.begin(), all.end(), [](const fs::path& a, const fs::path& b) {
    return a.string().size() > b.string().size();
  });
  std::int64_t when = 1600000000;
  for (const fs::path& p : all) set_mtime(p, when += 3600, 123456789);
  set_mtime(root, 1650000000, 5);
  return t;
}

std::vector<std::uint8_t> image_of(const fs::path& root,
                                   std::map<std::string, std::uint64_t>* offsets = nullptr) {
  ImageBuilder b;
  b.add_tree(root);
  if (offsets != nullptr) *offsets = b.offsets();
  return b.finish();
}

// ---- full restore

TEST_F(TarRecoverTest, FullRestoreReproducesRichTree) {
  const fs::path src = make_dir("src"), dest = make_dir("dest");
  const RichTree tree = make_rich_tree(src);
  std::vector<std::uint8_t> image = image_of(src);
  image.resize(image.size() + 10 * 512, 0);  // the mover's zero padding

  MemorySource source(image);
  MemoryReporter reporter;
  Cancel cancel;
  const Result r = run_tar_recover(restore_all_job(dest), source, reporter, cancel);
  ASSERT_TRUE(r.ok) << r.error << "\n" << reporter.all_logs();
  EXPECT_FALSE(r.cancelled);
  EXPECT_TRUE(reporter.logs.empty()) << reporter.all_logs();
  EXPECT_EQ(source.requests, 1u);
  EXPECT_GT(r.image_bytes, 0u);
  EXPECT_EQ(r.files, list_tree(src).size());
  EXPECT_GT(reporter.progress_calls, 0u);
  EXPECT_EQ(reporter.last_files, r.files);
  EXPECT_TRUE(reporter.results.empty());  // no nlist: nothing to report per name

  expect_same_tree(src, dest);

  struct stat a {
  }, b{}, s{};
  ASSERT_EQ(::stat((dest / "docs" / "a.txt").c_str(), &a), 0);
  ASSERT_EQ(::stat((dest / "docs" / "a_link.txt").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "hard link not restored as one";
  ASSERT_EQ(::stat((dest / "sparse.img").c_str(), &s), 0);
  EXPECT_EQ(s.st_size, 64 << 20);
  EXPECT_LT(s.st_blocks, 2048) << "holes were filled";  // < 1 MiB allocated
  EXPECT_EQ(read_file(dest / tree.long_path), "far down\n");
  if (tree.has_xattr) {
    EXPECT_EQ(xattr_of(dest / "xattr.txt", "user.ndmpd_test"), "value42");
  }
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(dest / "fifo")));
  if (tree.has_device) {
    EXPECT_TRUE(fs::is_character_file(fs::symlink_status(dest / "null_dev")));
  }
}

// ---- selective restore

// The two engines together: what run_tar_backup writes, run_tar_recover
// restores identically, POSIX ACLs included (setfacl from the acl package,
// which scripts/setup.sh installs).
class CollectingSink : public Sink {
 public:
  bool write(std::span<const std::uint8_t> b) override {
    image.insert(image.end(), b.begin(), b.end());
    return true;
  }
  std::vector<std::uint8_t> image;
};

std::string command_output(const std::string& command) {
  std::string out;
  if (FILE* f = ::popen(command.c_str(), "r")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    ::pclose(f);
  }
  return out;
}

TEST_F(TarRecoverTest, WhatTheBackupEngineWritesComesBackIdentical) {
  const fs::path src = make_dir("src"), dest = make_dir("dest");
  const RichTree t = make_rich_tree(src);
  const bool acl =
      std::system(("setfacl -m u:1234:rw,g:5678:r " + (src / "docs" / "b.bin").string() +
                   " && setfacl -d -m u:1234:rwx " + (src / "sub").string())
                      .c_str()) == 0;
  ASSERT_TRUE(acl) << "setfacl failed (the acl package, POSIX ACLs on /tmp)";
  set_mtime(src / "sub", 1600000000, 7);
  BackupJob job;
  job.root = src;
  job.filesystem = "/src";
  job.hist = BackupJob::Hist::kFile;
  CollectingSink sink;
  MemoryReporter backup_reporter;
  Cancel cancel;
  const Result b = run_tar_backup(job, sink, backup_reporter, cancel);
  ASSERT_TRUE(b.ok) << b.error << backup_reporter.all_logs();

  MemorySource source(sink.image);
  MemoryReporter reporter;
  const Result r = run_tar_recover(restore_all_job(dest), source, reporter, cancel);
  ASSERT_TRUE(r.ok) << r.error << reporter.all_logs();
  expect_same_tree(src, dest);
  EXPECT_EQ(fs::hard_link_count(dest / "docs" / "a.txt"), 2u);
  if (t.has_xattr) {
    EXPECT_EQ(xattr_of(dest / "xattr.txt", "user.ndmpd_test"), "value42");
  }
  for (const char* rel : {"docs/b.bin", "sub"}) {
    SCOPED_TRACE(rel);
    const std::string want = command_output("getfacl -cp " + (src / rel).string());
    EXPECT_NE(want.find("user:1234:"), std::string::npos) << want;
    EXPECT_EQ(command_output("getfacl -cp " + (dest / rel).string()), want);
  }
}

TEST_F(TarRecoverTest, SelectiveRestoreRenamesFilesAndDirectory) {
  const fs::path src = make_dir("src"), dest = make_dir("dest");
  make_rich_tree(src);
  MemorySource source(image_of(src));
  MemoryReporter reporter;
  Cancel cancel;
  RecoverJob job = restore_all_job(dest);
  job.names = {{"/docs/a.txt", "restored/first.txt", kUnknown},
               {"/docs/b.bin", "", kUnknown},
               {"/sub", "moved/sub2", kUnknown}};
  const Result r = run_tar_recover(job, source, reporter, cancel);
  ASSERT_TRUE(r.ok) << r.error << "\n" << reporter.all_logs();
  EXPECT_EQ(read_file(dest / "restored" / "first.txt"), "hello, hard links\n");
  EXPECT_EQ(read_file(dest / "docs" / "b.bin"), pattern(300 << 10, 1));
  EXPECT_EQ(read_file(dest / "moved" / "sub2" / "inner" / "file1"), "one\n");
  EXPECT_EQ(read_file(dest / "moved" / "sub2" / "file2"), "two\n");
  // The renamed directory carries the original's attributes.
  EXPECT_EQ(fs::last_write_time(dest / "moved" / "sub2"), fs::last_write_time(src / "sub"));
  // Nothing else came along.
  EXPECT_FALSE(fs::exists(fs::symlink_status(dest / "sub")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(dest / "docs" / "a.txt")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(dest / "sparse.img")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(dest / "lnk")));
  EXPECT_EQ(r.files, 6u);  // two files, the directory, its subdirectory and two files below
  for (const RecoverName& n : job.names) {
    EXPECT_EQ(reporter.results[n.original_path], 0) << n.original_path;
    EXPECT_EQ(reporter.result_calls[n.original_path], 1) << n.original_path;
  }
}

TEST_F(TarRecoverTest, MissingNameReportsEnoent) {
  const fs::path dest = make_dir("dest");
  ImageBuilder b;
  b.add_dir(".");
  b.add_file("here", "present\n");
  MemorySource source(b.finish());
  MemoryReporter reporter;
  Cancel cancel;
  RecoverJob job = restore_all_job(dest);
  job.names = {{"/here", "", kUnknown}, {"/not/there", "", kUnknown}};
  const Result r = run_tar_recover(job, source, reporter, cancel);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(reporter.results["/here"], 0);
  EXPECT_EQ(reporter.results["/not/there"], ENOENT);
  EXPECT_EQ(reporter.result_calls["/not/there"], 1);
  EXPECT_EQ(read_file(dest / "here"), "present\n");
}

// A single "/" name is everything, here renamed into a subdirectory.
TEST_F(TarRecoverTest, RootNameRestoresEverythingRenamed) {
  const fs::path dest = make_dir("dest");
  ImageBuilder b;
  b.add_dir(".", 0750);
  b.add_dir("d");
  b.add_file("d/f", "f\n");
  b.add_file("g", "g\n");
  MemorySource source(b.finish());
  MemoryReporter reporter;
  Cancel cancel;
  RecoverJob job = restore_all_job(dest);
  job.names = {{"/", "restored_root", kUnknown}};
  const Result r = run_tar_recover(job, source, reporter, cancel);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(read_file(dest / "restored_root" / "d" / "f"), "f\n");
  EXPECT_EQ(read_file(dest / "restored_root" / "g"), "g\n");
  EXPECT_EQ(fs::status(dest / "restored_root").permissions(), static_cast<fs::perms>(0750));
  EXPECT_EQ(r.files, 4u);
  EXPECT_EQ(reporter.results["/"], 0);
  EXPECT_EQ(reporter.result_calls["/"], 1);
}

// Sequential search stops once every name is found and finished.
TEST_F(TarRecoverTest, SequentialSelectionStopsEarly) {
  const fs::path dest = make_dir("dest");
  ImageBuilder b;
  b.add_dir(".");
  b.add_dir("d");
  b.add_file("d/wanted", pattern(10000, 3));
  b.add_file("d/other", "x");
  for (int i = 0; i < 32; ++i) b.add_file("big" + std::to_string(i), pattern(1 << 20, 100 + i));
  std::vector<std::uint8_t> image = b.finish();
  MemorySource source(image);
  MemoryReporter reporter;
  Cancel cancel;
  RecoverJob job = restore_all_job(dest);
  job.names = {{"/d", "dd", kUnknown}};
  const Result r = run_tar_recover(job, source, reporter, cancel);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(read_file(dest / "dd" / "wanted"), pattern(10000, 3));
  EXPECT_EQ(read_file(dest / "dd" / "other"), "x");
  EXPECT_EQ(reporter.results["/d"], 0);
  EXPECT_LT(source.bytes_read, 4u << 20) << "read " << source.bytes_read << " of " << image.size();
}

// ---- direct access

TEST_F(TarRecoverTest, DirectAccessReadsOnlyTheNamedEntries) {
  const fs::path dest = make_dir("dest");
  ImageBuilder b;
  b.add_dir(".");
  std::map<std::string, std::string> wanted;
  for (int i = 0; i < 66; ++i) {
    if (i == 1 || i == 30 || i == 65) {
      const std::string name = "dir/wanted" + std::to_string(i);
      if (i == 1) b.add_dir("dir");
      wanted[name] = pattern(100 << 10, 1000 + i);
      b.add_file(name, wanted[name]);
    }
    b.add_file("filler" + std::to_string(i), pattern(1 << 20, 2000 + i));
  }
  b.add_dir("tree");
  b.add_file("tree/t1", "t1\n");
  b.add_dir("tree/sub");
  b.add_file("tree/sub/t2", pattern(70 << 10, 7));
  b.add_file("after_tree", pattern(1 << 20, 8));
  const auto offsets = b.offsets();
  std::vector<std::uint8_t> image = b.finish();
  ASSERT_GT(image.size(), 64u << 20);

  MemorySource source(image);
  MemoryReporter reporter;
  Cancel cancel;
  RecoverJob job = restore_all_job(dest);
  job.direct = true;
  // Out of order on purpose: the engine sorts by fh_info.
  job.names = {{"/dir/wanted65", "", offsets.at("dir/wanted65")},
               {"/dir/wanted1", "one", offsets.at("dir/wanted1")},
               {"/dir/wanted30", "", offsets.at("dir/wanted30")}};
  Result r = run_tar_recover(job, source, reporter, cancel);
  ASSERT_TRUE(r.ok) << r.error << "\n" << reporter.all_logs();
  EXPECT_EQ(read_file(dest / "one"), wanted["dir/wanted1"]);
  EXPECT_EQ(read_file(dest / "dir" / "wanted30"), wanted["dir/wanted30"]);
  EXPECT_EQ(read_file(dest / "dir" / "wanted65"), wanted["dir/wanted65"]);
  for (const RecoverName& n : job.names) EXPECT_EQ(reporter.results[n.original_path], 0);
  std::printf(
      "[ direct   ] 3 x 100 KiB of a %zu MiB image: %llu bytes requested in %llu requests\n",
      image.size() >> 20, static_cast<unsigned long long>(source.requested_bytes),
      static_cast<unsigned long long>(source.requests));
  EXPECT_LT(source.requested_bytes, 1u << 20);
  EXPECT_LT(source.bytes_read, 1u << 20);
  EXPECT_EQ(r.image_bytes, source.bytes_read);

  // A directory by fh_info: its whole subtree, and not much more.
  const fs::path dest2 = make_dir("dest2");
  MemorySource source2(image);
  MemoryReporter reporter2;
  job.destination = dest2;
  job.names = {{"/tree", "t", offsets.at("tree")}};
  r = run_tar_recover(job, source2, reporter2, cancel);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(read_file(dest2 / "t" / "t1"), "t1\n");
  EXPECT_EQ(read_file(dest2 / "t" / "sub" / "t2"), pattern(70 << 10, 7));
  EXPECT_FALSE(fs::exists(dest2 / "after_tree"));
  EXPECT_EQ(reporter2.results["/tree"], 0);
  EXPECT_LT(source2.requested_bytes, 512u << 10);
}

TEST_F(TarRecoverTest, DirectAccessFallsBackToSearch) {
  const fs::path dest = make_dir("dest");
  ImageBuilder b;
  b.add_dir(".");
  b.add_file("a", "aaa\n");
  b.add_file("b", "bbb\n");
  b.add_file("c", "ccc\n");
  const auto offsets = b.offsets();
  MemorySource source(b.finish());
  MemoryReporter reporter;
  Cancel cancel;
  RecoverJob job = restore_all_job(dest);
  job.direct = true;
  job.names = {{"/a", "", offsets.at("a")},
               {"/b", "", kUnknown},                 // no fh_info: sequential
               {"/c", "", offsets.at("a") + 1024}};  // wrong fh_info: searched
  const Result r = run_tar_recover(job, source, reporter, cancel);
  ASSERT_TRUE(r.ok) << r.error << "\n" << reporter.all_logs();
  EXPECT_EQ(read_file(dest / "a"), "aaa\n");
  EXPECT_EQ(read_file(dest / "b"), "bbb\n");
  EXPECT_EQ(read_file(dest / "c"), "ccc\n");
  for (const RecoverName& n : job.names) EXPECT_EQ(reporter.results[n.original_path], 0);
  EXPECT_TRUE(reporter.logged(Reporter::Level::kWarning, "/c")) << reporter.all_logs();
}

// ---- hostile images

TEST_F(TarRecoverTest, HostileImageWritesNothingOutside) {
  const fs::path dest = make_dir("dest"), outside = make_dir("outside");
  write_file(outside / "victim", "original\n");
  const std::string abs_name = (outside / "abs_x").string();
  ImageBuilder b;
  b.add_dir(".");
  b.add_file("good1", "good one\n");
  b.add_file("../x", "escape 1\n");
  b.add_file(abs_name, "escape 2\n");
  b.add_file("a/../../x2", "escape 3\n");
  b.add_symlink("link", outside.string());
  b.add_file("link/file", "escape 4\n");
  b.add_symlink("up", "..");
  b.add_file("up/escaped", "escape 5\n");
  b.add_dir("link/newdir");
  b.add_hardlink("hl", "link/victim", "overwritten\n");
  b.add_hardlink("hl2", "../outside/victim");
  b.add_file("good2", "good two\n");
  MemorySource source(b.finish());
  MemoryReporter reporter;
  Cancel cancel;
  const Result r = run_tar_recover(restore_all_job(dest), source, reporter, cancel);
  EXPECT_TRUE(r.ok) << r.error;

  EXPECT_EQ(read_file(dest / "good1"), "good one\n");
  EXPECT_EQ(read_file(dest / "good2"), "good two\n");
  EXPECT_TRUE(fs::is_symlink(dest / "link"));
  // Outside: exactly what was there.
  EXPECT_EQ(list_tree(outside), (std::set<std::string>{"", "victim"}));
  EXPECT_EQ(read_file(outside / "victim"), "original\n");
  EXPECT_EQ(list_tree(scratch_),
            (std::set<std::string>{"", "dest", "outside", "outside/victim", "dest/good1",
                                   "dest/good2", "dest/link", "dest/up"}));
  for (const std::string& name :
       {std::string("../x"), abs_name, std::string("a/../../x2"), std::string("/link/file"),
        std::string("/up/escaped"), std::string("/link/newdir"), std::string("/hl"),
        std::string("/hl2")}) {
    EXPECT_TRUE(reporter.logged(Reporter::Level::kWarning, name)) << name << " not logged:\n"
                                                                  << reporter.all_logs();
  }
  EXPECT_EQ(r.files, 5u);  // ".", good1, link, up, good2
}

// ---- incrementals

TEST_F(TarRecoverTest, LevelZeroThenLevelOneReproducesLevelOneTree) {
  const fs::path src = make_dir("src"), dest = make_dir("dest");
  write_file(src / "keep.txt", "keep\n");
  write_file(src / "mod.txt", "v1\n");
  write_file(src / "del.txt", "deleted later\n");
  write_file(src / "old_name.txt", "renamed later\n");
  fs::create_directories(src / "dir_old" / "deep");
  write_file(src / "dir_old" / "x.txt", "x\n");
  write_file(src / "dir_old" / "deep" / "y.txt", "y\n");
  fs::create_directories(src / "stay");
  write_file(src / "stay" / "s.txt", "s\n");
  fs::create_directories(src / "emptied");
  write_file(src / "emptied" / "gone1", "1\n");
  fs::create_directories(src / "emptied" / "gone_dir");
  write_file(src / "emptied" / "gone_dir" / "gone2", "2\n");
  const std::vector<std::uint8_t> image0 = image_of(src);

  // What happens between the two backups.
  fs::remove(src / "del.txt");
  fs::rename(src / "old_name.txt", src / "new_name.txt");
  fs::rename(src / "dir_old", src / "dir_new");
  write_file(src / "mod.txt", "v2, longer\n");
  write_file(src / "stay" / "added.txt", "added\n");
  fs::remove_all(src / "emptied" / "gone_dir");
  fs::remove(src / "emptied" / "gone1");
  set_mtime(src / "stay", 1700000000, 0);

  ImageBuilder b1;
  b1.add_tree(src, true, [](const std::string& name) {
    return name == "new_name.txt" || name == "mod.txt" || name == "stay/added.txt" ||
           name.rfind("dir_new/", 0) == 0;
  });
  const std::vector<std::uint8_t> image1 = b1.finish();

  for (const auto* image : {&image0, &image1}) {
    MemorySource source(*image);
    MemoryReporter reporter;
    Cancel cancel;
    const Result r = run_tar_recover(restore_all_job(dest), source, reporter, cancel);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_TRUE(reporter.logs.empty()) << reporter.all_logs();
  }
  expect_same_tree(src, dest);
  EXPECT_EQ(xattr_of(dest, "ndmpd.dirents"), "<none>");
  EXPECT_EQ(xattr_of(dest, "user.ndmpd.dirents"), "<none>");
}

// An incremental where a directory became a file and a file a directory.
TEST_F(TarRecoverTest, IncrementalChangesTypes) {
  const fs::path dest = make_dir("dest");
  fs::create_directories(dest / "was_dir" / "sub");
  write_file(dest / "was_dir" / "sub" / "x", "x\n");
  write_file(dest / "was_file", "file\n");
  ImageBuilder b;
  b.add_dir(".", 0755, std::vector<std::string>{"was_dir", "was_file"});
  b.add_file("was_dir", "now a file\n");
  b.add_dir("was_file", 0755, std::vector<std::string>{"inside"});
  b.add_file("was_file/inside", "inside\n");
  MemorySource source(b.finish());
  MemoryReporter reporter;
  Cancel cancel;
  const Result r = run_tar_recover(restore_all_job(dest), source, reporter, cancel);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(reporter.logs.empty()) << reporter.all_logs();
  EXPECT_EQ(read_file(dest / "was_dir"), "now a file\n");
  EXPECT_EQ(read_file(dest / "was_file" / "inside"), "inside\n");
  EXPECT_EQ(list_tree(dest), (std::set<std::string>{"", "was_dir", "was_file", "was_file/inside"}));
}

// A selective restore from an incremental deletes nothing.
TEST_F(TarRecoverTest, SelectiveRestoreFromIncrementalKeepsOtherFiles) {
  const fs::path dest = make_dir("dest");
  write_file(dest / "unrelated", "stay\n");
  ImageBuilder b;
  b.add_dir(".", 0755, std::vector<std::string>{"d"});
  b.add_dir("d", 0755, std::vector<std::string>{"f"});
  b.add_file("d/f", "f\n");
  MemorySource source(b.finish());
  MemoryReporter reporter;
  Cancel cancel;
  RecoverJob job = restore_all_job(dest);
  job.names = {{"/d", "", kUnknown}};
  const Result r = run_tar_recover(job, source, reporter, cancel);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(read_file(dest / "d" / "f"), "f\n");
  EXPECT_EQ(read_file(dest / "unrelated"), "stay\n");
}

// ---- file history

TEST_F(TarRecoverTest, FilehistOnlySendsHistoryWithOffsets) {
  const fs::path dest = make_dir("dest");
  ImageBuilder b;
  b.add_dir(".");
  b.add_dir("d");
  b.add_file("d/f1", pattern(5000, 1), 0640);
  b.add_dir("d/sub");
  b.add_file("d/sub/f2", "two\n");
  b.add_symlink("s", "d/f1");
  b.add_file("g", std::string(1 << 20, 'g'));
  const auto offsets = b.offsets();
  const std::vector<std::uint8_t> image = b.finish();

  RecoverJob job = restore_all_job(dest);
  job.filehist_only = true;
  job.hist = BackupJob::Hist::kFile;
  {
    MemorySource source(image);
    MemoryReporter reporter;
    Cancel cancel;
    const Result r = run_tar_recover(job, source, reporter, cancel);
    ASSERT_TRUE(r.ok) << r.error;
    ASSERT_EQ(reporter.files.size(), offsets.size());
    const std::vector<std::string> paths = {"/", "/d", "/d/f1", "/d/sub", "/d/sub/f2", "/s", "/g"};
    for (std::size_t i = 0; i < paths.size(); ++i) {
      EXPECT_EQ(reporter.files[i].path, paths[i]);
      const std::string name = i == 0 ? "." : paths[i].substr(1);
      EXPECT_EQ(reporter.files[i].fh_info, offsets.at(name)) << name;
    }
    EXPECT_EQ(reporter.files[2].stat.type, FileStat::Type::kReg);
    EXPECT_EQ(reporter.files[2].stat.mode, 0640u);
    EXPECT_EQ(reporter.files[2].stat.size, 5000u);
    EXPECT_EQ(reporter.files[2].stat.mtime, ImageBuilder::kMtime);
    EXPECT_EQ(reporter.files[1].stat.type, FileStat::Type::kDir);
    EXPECT_EQ(reporter.files[5].stat.type, FileStat::Type::kSymlink);
    EXPECT_TRUE(reporter.dirs.empty());
    EXPECT_EQ(r.image_bytes, image.size());
  }
  EXPECT_TRUE(fs::is_empty(dest));

  job.hist = BackupJob::Hist::kDir;
  MemorySource source(image);
  MemoryReporter reporter;
  Cancel cancel;
  const Result r = run_tar_recover(job, source, reporter, cancel);
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_FALSE(reporter.dirs.empty());
  EXPECT_EQ(reporter.dirs[0].name, ".");
  EXPECT_EQ(reporter.dirs[0].node, reporter.dirs[0].parent);
  EXPECT_TRUE(reporter.files.empty());
  // Rebuild the paths from the directory entries; each node's fh_info is
  // its entry's offset.
  std::map<std::uint64_t, std::string> path_of;
  for (const auto& d : reporter.dirs) {
    if (d.name == ".") {
      path_of[d.node] = ".";
    } else {
      ASSERT_TRUE(path_of.count(d.parent)) << d.name;
      const std::string& p = path_of[d.parent];
      path_of[d.node] = p == "." ? d.name : p + "/" + d.name;
    }
  }
  ASSERT_EQ(reporter.nodes.size(), offsets.size());
  for (const auto& n : reporter.nodes) {
    ASSERT_TRUE(path_of.count(n.node));
    EXPECT_EQ(n.fh_info, offsets.at(path_of[n.node])) << path_of[n.node];
  }
  EXPECT_TRUE(fs::is_empty(dest));
}

// ---- failures

TEST_F(TarRecoverTest, TruncatedImageFailsAndKeepsEarlierFiles) {
  const fs::path dest = make_dir("dest");
  ImageBuilder b;
  b.add_dir(".");
  for (int i = 0; i < 5; ++i) b.add_file("f" + std::to_string(i), pattern(100 << 10, i));
  const auto offsets = b.offsets();
  MemorySource source(b.finish());
  source.truncate_at = offsets.at("f3") + 50000;
  MemoryReporter reporter;
  Cancel cancel;
  const Result r = run_tar_recover(restore_all_job(dest), source, reporter, cancel);
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.cancelled);
  EXPECT_FALSE(r.error.empty());
  EXPECT_TRUE(reporter.logged(Reporter::Level::kError, r.error)) << reporter.all_logs();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(read_file(dest / ("f" + std::to_string(i))), pattern(100 << 10, i)) << i;
  }
  EXPECT_FALSE(fs::exists(dest / "f4"));
}

// A damaged header is skipped (libarchive looks for the next one); the
// recovery says the image was damaged but restores what it can.
TEST_F(TarRecoverTest, DamagedHeaderFailsButRestoresTheRest) {
  const fs::path dest = make_dir("dest");
  ImageBuilder b;
  b.add_dir(".");
  for (int i = 0; i < 4; ++i) b.add_file("f" + std::to_string(i), pattern(10000, i));
  const auto offsets = b.offsets();
  std::vector<std::uint8_t> image = b.finish();
  image[offsets.at("f1") + 3] ^= 0x5a;  // the checksum no longer matches
  MemorySource source(image);
  MemoryReporter reporter;
  Cancel cancel;
  const Result r = run_tar_recover(restore_all_job(dest), source, reporter, cancel);
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.error.empty());
  EXPECT_TRUE(reporter.logged(Reporter::Level::kError, "damaged")) << reporter.all_logs();
  EXPECT_EQ(read_file(dest / "f0"), pattern(10000, 0));
  EXPECT_EQ(read_file(dest / "f3"), pattern(10000, 3));
}

TEST_F(TarRecoverTest, SourceFailureFails) {
  const fs::path dest = make_dir("dest");
  ImageBuilder b;
  b.add_dir(".");
  b.add_file("f", "f\n");
  MemorySource source(b.finish());
  source.fail_reads = true;
  MemoryReporter reporter;
  Cancel cancel;
  RecoverJob job = restore_all_job(dest);
  job.names = {{"/f", "", kUnknown}};
  const Result r = run_tar_recover(job, source, reporter, cancel);
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.cancelled);
  EXPECT_FALSE(r.error.empty());
  EXPECT_NE(reporter.results["/f"], 0);
}

TEST_F(TarRecoverTest, CancelStops) {
  const fs::path dest = make_dir("dest");
  ImageBuilder b;
  b.add_dir(".");
  for (int i = 0; i < 20; ++i) b.add_file("f" + std::to_string(i), pattern(1 << 20, i));
  MemorySource source(b.finish());
  Cancel cancel;
  source.cancel = &cancel;
  source.cancel_after = 3 << 20;
  MemoryReporter reporter;
  const Result r = run_tar_recover(restore_all_job(dest), source, reporter, cancel);
  EXPECT_TRUE(r.cancelled);
  EXPECT_FALSE(r.ok);
  EXPECT_LT(r.files, 10u);
  EXPECT_LT(source.bytes_read, 8u << 20);
  EXPECT_FALSE(fs::exists(dest / "f19"));
}

// ---- speed against GNU tar (a figure, not an assertion)

// NDMPD_SPEED_DIR=/dev/shm runs it on tmpfs, where the file system's own
// cost (ext4's inode allocator after deletions dominates on /tmp) no longer
// hides the user-space difference.
TEST_F(TarRecoverTest, SpeedAgainstTar) {
  if (const char* dir = std::getenv("NDMPD_SPEED_DIR"); dir != nullptr) {
    std::string tmpl = std::string(dir) + "/tar_recover_speed.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    fs::remove_all(scratch_);
    scratch_ = tmpl;
  }
  const fs::path src = make_dir("src");
  for (int i = 0; i < 12; ++i) {
    write_file(src / ("big" + std::to_string(i)), pattern(8 << 20, i));
  }
  for (int d = 0; d < 20; ++d) {
    const fs::path dir = src / ("d" + std::to_string(d));
    fs::create_directories(dir);
    for (int i = 0; i < 100; ++i) write_file(dir / std::to_string(i), pattern(3000, d * 100 + i));
  }
  const std::vector<std::uint8_t> image = image_of(src);
  const fs::path image_file = scratch_ / "image.tar";
  {
    std::ofstream out(image_file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(image.data()),
              static_cast<std::streamsize>(image.size()));
  }
  // Wall time on a shared machine is noisy: the best of three rounds,
  // and the CPU time (user + system) each side spent, which is steadier.
  const auto cpu_seconds = [](int who) {
    rusage u{};
    ::getrusage(who, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  double best_tar = 1e9, best_ours = 1e9, cpu_tar = 1e9, cpu_ours = 1e9;
  // Alternating who goes first, and keeping every restored tree until the
  // end: ext4 makes inode allocation slow right after deletions, which
  // would otherwise favour whoever runs second.
  for (int round = 0; round < 4; ++round) {
    const auto run_tar = [&] {
      const fs::path tar_dest = make_dir("tar" + std::to_string(round));
      const std::string cmd =
          "tar -xf '" + image_file.string() + "' -C '" + tar_dest.string() + "'";
      const double c0 = cpu_seconds(RUSAGE_CHILDREN);
      const auto t0 = std::chrono::steady_clock::now();
      ASSERT_EQ(std::system(cmd.c_str()), 0);
      const auto t1 = std::chrono::steady_clock::now();
      cpu_tar = std::min(cpu_tar, cpu_seconds(RUSAGE_CHILDREN) - c0);
      best_tar = std::min(best_tar, std::chrono::duration<double>(t1 - t0).count());
    };
    const auto run_ours = [&] {
      const fs::path our_dest = make_dir("ours" + std::to_string(round));
      MemorySource source(image);
      source.chunk = 1 << 20;
      MemoryReporter reporter;
      Cancel cancel;
      const double c0 = cpu_seconds(RUSAGE_THREAD);
      const auto t0 = std::chrono::steady_clock::now();
      const Result r = run_tar_recover(restore_all_job(our_dest), source, reporter, cancel);
      const auto t1 = std::chrono::steady_clock::now();
      cpu_ours = std::min(cpu_ours, cpu_seconds(RUSAGE_THREAD) - c0);
      ASSERT_TRUE(r.ok) << r.error;
      best_ours = std::min(best_ours, std::chrono::duration<double>(t1 - t0).count());
      if (round == 0) expect_same_tree(src, our_dest);
    };
    if (round % 2 == 0) {
      run_tar();
      run_ours();
    } else {
      run_ours();
      run_tar();
    }
  }
  const double mib = static_cast<double>(image.size()) / (1 << 20);
  std::printf(
      "[ speed    ] %.0f MiB image, 2012 files: tar -xf %.3f s (%.0f MiB/s, cpu %.3f s), "
      "run_tar_recover %.3f s (%.0f MiB/s, cpu %.3f s): %.2fx tar (cpu %.2fx)\n",
      mib, best_tar, mib / best_tar, cpu_tar, best_ours, mib / best_ours, cpu_ours,
      best_tar / best_ours, cpu_tar / cpu_ours);
  EXPECT_GT(best_ours, 0.0);
}

}  // namespace
}  // namespace ndmpd::data
