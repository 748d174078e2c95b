// Incremental tar backups: levels, BASE_DATE, the ndmpd.dirents of every
// directory, renamed and new directories, and the dump dates on disk.
#include "ndmpd/data/incremental.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "data/memory_reporter.h"
#include "ndmpd/data/tar_backup.h"

namespace ndmpd::data {
namespace {

using testing::MemoryReporter;

class Scratch {
 public:
  Scratch() {
    char tmpl[] = "/tmp/ndmpd-dincr-XXXXXX";
    char* p = ::mkdtemp(tmpl);
    if (p != nullptr) path_ = p;
  }
  ~Scratch() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

class MemorySink : public Sink {
 public:
  bool write(std::span<const std::uint8_t> bytes) override {
    image.insert(image.end(), bytes.begin(), bytes.end());
    return true;
  }
  std::vector<std::uint8_t> image;
};

struct ImageEntry {
  std::string name;
  bool dir = false;
  std::string data;
  bool has_dirents = false;
  std::vector<std::string> dirents;
};

std::vector<ImageEntry> read_image(const std::vector<std::uint8_t>& image, std::string& error) {
  std::vector<ImageEntry> out;
  struct archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  if (archive_read_open_memory(a, image.data(), image.size()) != ARCHIVE_OK) {
    error = "cannot open image";
    archive_read_free(a);
    return out;
  }
  struct archive_entry* e = nullptr;
  int r;
  while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    ImageEntry x;
    x.name = archive_entry_pathname(e);
    // libarchive ends directory names with '/'.
    if (x.name.size() > 1 && x.name.back() == '/') x.name.pop_back();
    x.dir = archive_entry_filetype(e) == AE_IFDIR;
    archive_entry_xattr_reset(e);
    const char* xname;
    const void* xvalue;
    size_t xsize;
    while (archive_entry_xattr_next(e, &xname, &xvalue, &xsize) == ARCHIVE_OK) {
      // The pax writer stores an xattr twice (LIBARCHIVE.xattr and
      // SCHILY.xattr) and the reader reports both: take the first.
      if (std::string(xname) != "ndmpd.dirents" || x.has_dirents) continue;
      x.has_dirents = true;
      std::string value(static_cast<const char*>(xvalue), xsize);
      for (std::size_t i = 0; i < value.size();) {
        std::size_t nul = value.find('\0', i);
        if (nul == std::string::npos) {
          error = x.name + ": dirents without a final NUL";
          break;
        }
        x.dirents.push_back(value.substr(i, nul - i));
        i = nul + 1;
      }
    }
    char buffer[65536];
    la_ssize_t n;
    while ((n = archive_read_data(a, buffer, sizeof buffer)) > 0) {
      x.data.append(buffer, static_cast<std::size_t>(n));
    }
    out.push_back(std::move(x));
  }
  if (r != ARCHIVE_EOF) error = "image does not read to its end";
  archive_read_free(a);
  return out;
}

const ImageEntry* find(const std::vector<ImageEntry>& entries, const std::string& name) {
  for (const ImageEntry& e : entries) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::vector<std::string> names_of(const std::vector<ImageEntry>& entries) {
  std::vector<std::string> names;
  for (const ImageEntry& e : entries) names.push_back(e.name);
  return names;
}

std::string env_value(const Env& env, const std::string& name) {
  for (const auto& [k, v] : env) {
    if (k == name) return v;
  }
  return "";
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::filesystem::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << p;
}

// File times come from the kernel's coarse clock (one tick, a few ms): a
// pause makes "before" and "after" a backup's start unambiguous.
void tick() { std::this_thread::sleep_for(std::chrono::milliseconds(30)); }

class Incremental : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(scratch_.path().empty());
    root_ = scratch_.path() / "tree";
    state_ = scratch_.path() / "state";
    std::filesystem::create_directories(root_);
  }

  BackupJob job(unsigned level) const {
    BackupJob j;
    j.root = root_;
    j.filesystem = "/vol0/tree";
    j.level = level;
    j.update = true;
    j.state_dir = state_;
    return j;
  }

  struct Run {
    Result result;
    std::vector<ImageEntry> image;
    MemoryReporter reporter;
  };
  Run run(const BackupJob& j) {
    Run out;
    MemorySink sink;
    Cancel cancel;
    out.result = run_tar_backup(j, sink, out.reporter, cancel);
    std::string error;
    if (out.result.ok) {
      out.image = read_image(sink.image, error);
      EXPECT_EQ(error, "");
    } else {
      EXPECT_TRUE(sink.image.empty()) << "a refused backup wrote an image";
    }
    return out;
  }

  Scratch scratch_;
  std::filesystem::path root_, state_;
};

TEST_F(Incremental, LevelOneHoldsExactlyTheChangesAndEveryDirectory) {
  std::filesystem::create_directories(root_ / "keep");
  std::filesystem::create_directories(root_ / "d1" / "y");
  std::filesystem::create_directories(root_ / "olddir" / "sub");
  write_file(root_ / "a.txt", "a0");
  write_file(root_ / "b.txt", "b0");
  write_file(root_ / "c.txt", "c0");
  write_file(root_ / "keep" / "k1", "k1");
  write_file(root_ / "d1" / "x.txt", "x");
  write_file(root_ / "d1" / "y" / "z.txt", "z");
  write_file(root_ / "olddir" / "f1", "f1");
  write_file(root_ / "olddir" / "sub" / "f2", "f2");
  tick();

  Run full = run(job(0));
  ASSERT_TRUE(full.result.ok) << full.result.error;
  EXPECT_EQ(full.image.size(), 14u);
  for (const ImageEntry& e : full.image) EXPECT_FALSE(e.has_dirents) << e.name;
  tick();

  write_file(root_ / "new.txt", "new");                                   // add
  write_file(root_ / "a.txt", "a1");                                      // modify
  std::filesystem::remove(root_ / "b.txt");                               // delete
  std::filesystem::rename(root_ / "c.txt", root_ / "c2.txt");             // rename a file
  std::filesystem::rename(root_ / "olddir", root_ / "newdir");            // rename a directory
  std::filesystem::rename(root_ / "d1" / "y", root_ / "keep" / "moved");  // move a directory

  BackupJob j = job(1);
  j.hist = BackupJob::Hist::kFile;
  Run incr = run(j);
  ASSERT_TRUE(incr.result.ok) << incr.result.error;
  EXPECT_EQ(names_of(incr.image),
            (std::vector<std::string>{".", "a.txt", "c2.txt", "d1", "keep", "keep/moved",
                                      "keep/moved/z.txt", "new.txt", "newdir", "newdir/f1",
                                      "newdir/sub", "newdir/sub/f2"}));
  EXPECT_EQ(find(incr.image, "a.txt")->data, "a1");
  EXPECT_EQ(find(incr.image, "newdir/sub/f2")->data, "f2");
  // Every directory, with its entries as they are now.
  for (const ImageEntry& e : incr.image) EXPECT_EQ(e.has_dirents, e.dir) << e.name;
  EXPECT_EQ(find(incr.image, ".")->dirents,
            (std::vector<std::string>{"a.txt", "c2.txt", "d1", "keep", "new.txt", "newdir"}));
  EXPECT_EQ(find(incr.image, "d1")->dirents, (std::vector<std::string>{"x.txt"}));
  EXPECT_EQ(find(incr.image, "keep")->dirents, (std::vector<std::string>{"k1", "moved"}));
  EXPECT_EQ(find(incr.image, "newdir")->dirents, (std::vector<std::string>{"f1", "sub"}));
  EXPECT_EQ(find(incr.image, "newdir/sub")->dirents, (std::vector<std::string>{"f2"}));
  EXPECT_EQ(incr.reporter.files.size(), incr.image.size());

  const std::string base = env_value(full.result.env, "DUMP_DATE");
  const std::string token = env_value(incr.result.env, "DUMP_DATE");
  EXPECT_EQ(base.rfind("0.", 0), 0u);
  EXPECT_EQ(token.rfind("1.", 0), 0u);
  EXPECT_EQ(env_value(incr.result.env, "LEVEL"), "1");

  // A second level 1 compares with the level 0 again, not with the first 1.
  tick();
  write_file(root_ / "keep" / "k1", "k1 changed");
  tick();
  Run again = run(job(1));
  ASSERT_TRUE(again.result.ok) << again.result.error;
  EXPECT_NE(find(again.image, "a.txt"), nullptr);
  EXPECT_NE(find(again.image, "keep/k1"), nullptr);
  // And a level 2 compares with that latest level 1.
  tick();
  write_file(root_ / "d1" / "x.txt", "x changed");
  Run two = run(job(2));
  ASSERT_TRUE(two.result.ok) << two.result.error;
  EXPECT_EQ(names_of(two.image), (std::vector<std::string>{".", "d1", "d1/x.txt", "keep",
                                                           "keep/moved", "newdir", "newdir/sub"}));
}

TEST_F(Incremental, ExcludedDirectoryIsWholeOnceIncluded) {
  std::filesystem::create_directories(root_ / "cache" / "inner");
  write_file(root_ / "cache" / "inner" / "old", "old");
  write_file(root_ / "top", "t");
  tick();
  BackupJob j0 = job(0);
  j0.exclude = {"cache"};
  Run full = run(j0);
  ASSERT_TRUE(full.result.ok) << full.result.error;
  EXPECT_EQ(names_of(full.image), (std::vector<std::string>{".", "top"}));
  tick();
  Run incr = run(job(1));
  ASSERT_TRUE(incr.result.ok) << incr.result.error;
  EXPECT_EQ(names_of(incr.image),
            (std::vector<std::string>{".", "cache", "cache/inner", "cache/inner/old"}));
}

TEST_F(Incremental, UpdateNoLeavesTheStateAlone) {
  write_file(root_ / "f", "f");
  BackupJob j = job(0);
  j.update = false;
  Run r = run(j);
  ASSERT_TRUE(r.result.ok) << r.result.error;
  EXPECT_FALSE(std::filesystem::exists(state_ / "dumpdates") &&
               !std::filesystem::is_empty(state_ / "dumpdates"));
  EXPECT_FALSE(env_value(r.result.env, "DUMP_DATE").empty());
  EXPECT_EQ(env_value(r.result.env, "UPDATE"), "N");

  Run recorded = run(job(0));
  ASSERT_TRUE(recorded.result.ok);
  DumpDates dates(state_, "/vol0/tree");
  const std::string before = slurp(dates.file());
  ASSERT_FALSE(before.empty());
  tick();
  BackupJob j1 = job(1);
  j1.update = false;
  Run incr = run(j1);
  ASSERT_TRUE(incr.result.ok) << incr.result.error;
  EXPECT_EQ(slurp(dates.file()), before);
  // The UPDATE=N token is not a base for anything.
  BackupJob by_token = job(0);
  by_token.base_date = env_value(incr.result.env, "DUMP_DATE");
  EXPECT_FALSE(run(by_token).result.ok);
}

TEST_F(Incremental, BaseDateNamesTheBase) {
  write_file(root_ / "old", "o");
  tick();
  Run full = run(job(0));
  ASSERT_TRUE(full.result.ok) << full.result.error;
  tick();
  write_file(root_ / "fresh", "f");
  tick();

  BackupJob unknown = job(0);
  unknown.base_date = "0.12345";
  Run bad = run(unknown);
  EXPECT_FALSE(bad.result.ok);
  EXPECT_NE(bad.result.error.find("BASE_DATE"), std::string::npos) << bad.result.error;
  EXPECT_TRUE(bad.reporter.logged(Reporter::Level::kError, "0.12345"));

  BackupJob j = job(0);
  j.base_date = env_value(full.result.env, "DUMP_DATE");
  Run incr = run(j);
  ASSERT_TRUE(incr.result.ok) << incr.result.error;
  EXPECT_EQ(names_of(incr.image), (std::vector<std::string>{".", "fresh"}));
  EXPECT_TRUE(find(incr.image, ".")->has_dirents);
  EXPECT_EQ(env_value(incr.result.env, "BASE_DATE"), *j.base_date);
  EXPECT_EQ(env_value(incr.result.env, "LEVEL"), "1");
  // A chain: BASE_DATE = the incremental's own token.
  tick();
  write_file(root_ / "fresher", "f");
  tick();
  BackupJob next = job(0);
  next.base_date = env_value(incr.result.env, "DUMP_DATE");
  Run chained = run(next);
  ASSERT_TRUE(chained.result.ok) << chained.result.error;
  EXPECT_EQ(names_of(chained.image), (std::vector<std::string>{".", "fresher"}));
}

TEST_F(Incremental, LevelWithoutLowerHistoryIsFullWithWarning) {
  std::filesystem::create_directories(root_ / "d");
  write_file(root_ / "d" / "f", "f");
  Run r = run(job(3));
  ASSERT_TRUE(r.result.ok) << r.result.error;
  EXPECT_TRUE(r.reporter.logged(Reporter::Level::kWarning, "LEVEL 3"));
  EXPECT_EQ(names_of(r.image), (std::vector<std::string>{".", "d", "d/f"}));
  EXPECT_EQ(find(r.image, "d")->dirents, (std::vector<std::string>{"f"}));
}

TEST(DumpDatesState, SurvivesReloadAndKeepsOneRecordPerLevel) {
  Scratch scratch;
  const std::string fs = "/vol 0/odd\nname%";
  DumpDates dates(scratch.path(), fs);
  std::string error;
  ASSERT_TRUE(dates.load(error)) << error;
  EXPECT_TRUE(dates.records().empty());
  auto record = [&](unsigned level, std::int64_t start) {
    DumpRecord r{
        level, start, make_dump_date(level, start), {{1, 2, "."}, {1, 3, "dir with\nnewline"}}};
    EXPECT_TRUE(dates.commit(r, error)) << error;
  };
  record(0, 100);
  record(1, 200);
  record(2, 300);
  record(1, 400);  // drops the level 2 and the old level 1
  EXPECT_EQ(dates.file().parent_path(), scratch.path() / "dumpdates");
  EXPECT_EQ(dates.file().filename().string().find('/'), std::string::npos);

  DumpDates reloaded(scratch.path(), fs);
  ASSERT_TRUE(reloaded.load(error)) << error;
  ASSERT_EQ(reloaded.records().size(), 2u);
  EXPECT_EQ(reloaded.records()[0].token, "0.100");
  EXPECT_EQ(reloaded.records()[1].token, "1.400");
  EXPECT_EQ(reloaded.records()[1].dirs.size(), 2u);
  EXPECT_EQ(reloaded.records()[1].dirs[1].path, "dir with\nnewline");
  EXPECT_EQ(reloaded.records()[1].dirs[1].ino, 3u);
  ASSERT_NE(reloaded.base_for_level(2), nullptr);
  EXPECT_EQ(reloaded.base_for_level(2)->token, "1.400");
  EXPECT_EQ(reloaded.base_for_level(1)->token, "0.100");
  EXPECT_EQ(reloaded.base_for_level(0), nullptr);
  EXPECT_EQ(reloaded.find("1.200"), nullptr);
  EXPECT_GT(reloaded.unique_start(50), 400);

  // Another FILESYSTEM has its own history.
  DumpDates other(scratch.path(), "/vol1");
  ASSERT_TRUE(other.load(error)) << error;
  EXPECT_TRUE(other.records().empty());
}

TEST(DumpDatesState, DamagedFileIsAnError) {
  Scratch scratch;
  DumpDates dates(scratch.path(), "/vol0");
  std::string error;
  DumpRecord r{0, 100, "0.100", {{1, 2, "."}}};
  ASSERT_TRUE(dates.commit(r, error)) << error;
  const std::string good = slurp(dates.file());

  // One changed byte.
  std::string flipped = good;
  flipped[flipped.find("0.100")] = '7';
  write_file(dates.file(), flipped);
  DumpDates a(scratch.path(), "/vol0");
  EXPECT_FALSE(a.load(error));
  EXPECT_NE(error.find(dates.file().string()), std::string::npos) << error;
  // Truncated.
  write_file(dates.file(), good.substr(0, good.size() / 2));
  DumpDates b(scratch.path(), "/vol0");
  EXPECT_FALSE(b.load(error));
  // A commit does not paper over it.
  DumpRecord r2{1, 200, "1.200", {}};
  EXPECT_FALSE(b.commit(r2, error));
  EXPECT_EQ(slurp(dates.file()), good.substr(0, good.size() / 2));

  // The backup refuses to start on it.
  const std::filesystem::path root = scratch.path() / "tree";
  std::filesystem::create_directories(root);
  BackupJob j;
  j.root = root;
  j.filesystem = "/vol0";
  j.level = 1;
  j.state_dir = scratch.path();
  MemorySink sink;
  MemoryReporter reporter;
  Cancel cancel;
  Result res = run_tar_backup(j, sink, reporter, cancel);
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.error.find("damaged"), std::string::npos) << res.error;
  EXPECT_TRUE(sink.image.empty());
}

}  // namespace
}  // namespace ndmpd::data
