// The environment of DATA_START_BACKUP / DATA_START_RECOVER as jobs:
// paths resolved against the exports (names, host paths, symlinks out),
// values checked, nlist entries made relative to the destination.
#include "ndmpd/data/env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace ndmpd::data {
namespace {

namespace fs = std::filesystem;

class EnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ndmpd-env-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "vol0" / "home" / "a");
    fs::create_directories(dir_ / "outside");
    fs::create_directory_symlink(dir_ / "outside", dir_ / "vol0" / "escape");
    exports_ = {{"/vol0", dir_ / "vol0"}};
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::vector<ExportedFs> exports_;
};

TEST_F(EnvTest, ResolvesExportNamesAndHostPaths) {
  std::string why;
  auto by_name = resolve_in_exports("/vol0/home", exports_, false, why);
  ASSERT_TRUE(by_name) << why;
  EXPECT_EQ(*by_name, fs::canonical(dir_ / "vol0" / "home"));
  auto by_path = resolve_in_exports((dir_ / "vol0" / "home" / "a").string(), exports_, false, why);
  ASSERT_TRUE(by_path) << why;
  EXPECT_EQ(*by_path, fs::canonical(dir_ / "vol0" / "home" / "a"));
  auto root = resolve_in_exports("/vol0", exports_, false, why);
  ASSERT_TRUE(root) << why;
  EXPECT_EQ(*root, fs::canonical(dir_ / "vol0"));
}

TEST_F(EnvTest, RefusesPathsOutsideTheExports) {
  std::string why;
  EXPECT_FALSE(resolve_in_exports("/etc", exports_, false, why));
  EXPECT_NE(why.find("not inside an exported filesystem"), std::string::npos) << why;
  EXPECT_NE(why.find("/vol0"), std::string::npos) << why;                  // names what is exported
  EXPECT_FALSE(resolve_in_exports("/vol0/escape", exports_, false, why));  // a symlink out
  EXPECT_FALSE(resolve_in_exports("/vol0/../etc", exports_, false, why));
  EXPECT_FALSE(resolve_in_exports("vol0/home", exports_, false, why));  // relative
  EXPECT_FALSE(resolve_in_exports((dir_ / "outside").string(), exports_, false, why));
  // A prefix of the name is not the export.
  EXPECT_FALSE(resolve_in_exports("/vol01", exports_, false, why));
}

TEST_F(EnvTest, CreatesARecoveryDestinationInsideOnly) {
  std::string why;
  auto made = resolve_in_exports("/vol0/restore/deep", exports_, true, why);
  ASSERT_TRUE(made) << why;
  EXPECT_TRUE(fs::is_directory(dir_ / "vol0" / "restore" / "deep"));
  EXPECT_FALSE(resolve_in_exports("/vol0/escape/new", exports_, true, why));
  EXPECT_FALSE(fs::exists(dir_ / "outside" / "new"));
}

TEST_F(EnvTest, BackupJobReadsTheVariables) {
  std::string why;
  Env env = {{"FILESYSTEM", "/vol0/home"},
             {"HIST", "d"},
             {"LEVEL", "3"},
             {"UPDATE", "n"},
             {"EXCLUDE", "*.o,tmp"},
             {"EXCLUDE", "core"},
             {"RECURSIVE", "no"},
             {"BASE_DATE", "1.5"},
             {"TYPE", "tar"}};
  auto job = backup_job_from_env(env, exports_, "/state", why);
  ASSERT_TRUE(job) << why;
  EXPECT_EQ(job->root, fs::canonical(dir_ / "vol0" / "home"));
  EXPECT_EQ(job->filesystem, "/vol0/home");
  EXPECT_EQ(job->hist, BackupJob::Hist::kDir);
  EXPECT_EQ(job->level, 3u);
  EXPECT_FALSE(job->update);
  EXPECT_FALSE(job->recursive);
  EXPECT_EQ(job->exclude, (std::vector<std::string>{"*.o", "tmp", "core"}));
  EXPECT_EQ(job->base_date, "1.5");
  EXPECT_EQ(job->state_dir, "/state");
  EXPECT_EQ(job->env, env);
  // HIST=Y is path-based history; defaults: level 0, update, recursive.
  job = backup_job_from_env({{"FILESYSTEM", "/vol0"}, {"HIST", "Y"}}, exports_, "/s", why);
  ASSERT_TRUE(job) << why;
  EXPECT_EQ(job->hist, BackupJob::Hist::kFile);
  EXPECT_EQ(job->level, 0u);
  EXPECT_TRUE(job->update);
  EXPECT_TRUE(job->recursive);
}

TEST_F(EnvTest, BackupJobRefusesBadValues) {
  std::string why;
  EXPECT_FALSE(backup_job_from_env({{"HIST", "y"}}, exports_, "/s", why));
  EXPECT_NE(why.find("FILESYSTEM is missing"), std::string::npos) << why;
  EXPECT_FALSE(backup_job_from_env({{"FILESYSTEM", "/etc"}}, exports_, "/s", why));
  EXPECT_NE(why.find("FILESYSTEM"), std::string::npos) << why;
  for (const char* level : {"10", "-1", "a", ""}) {
    EXPECT_FALSE(
        backup_job_from_env({{"FILESYSTEM", "/vol0"}, {"LEVEL", level}}, exports_, "/s", why))
        << level;
  }
  EXPECT_FALSE(backup_job_from_env({{"FILESYSTEM", "/vol0"}, {"HIST", "Q"}}, exports_, "/s", why));
  EXPECT_FALSE(
      backup_job_from_env({{"FILESYSTEM", "/vol0"}, {"UPDATE", "maybe"}}, exports_, "/s", why));
  EXPECT_FALSE(
      backup_job_from_env({{"FILESYSTEM", "/vol0"}, {"TYPE", "dump"}}, exports_, "/s", why));
}

TEST_F(EnvTest, RecoverJobMakesNamesRelativeToTheDestination) {
  std::string why;
  std::vector<std::pair<std::string, std::string>> refused;
  const std::string prefix = (dir_ / "vol0" / "restore").string();
  std::vector<RawName> nlist = {
      {"a/f1", prefix + "/new/name", 42},          // ndmjob: -C + "/" + the new name
      {"/c/file", prefix + "//c/file", kUnknown},  // not renamed
      {"/d", "", kUnknown},                        // no destination: its own path
      {"/e", "elsewhere/e", 7},                    // relative destination
      {"/x", "/etc/x", kUnknown},                  // outside: refused
      {"/y", "../y", kUnknown},                    // climbs: refused
  };
  auto job = recover_job_from_env({{"PREFIX", prefix}, {"DIRECT", "y"}}, nlist, exports_, false,
                                  refused, why);
  ASSERT_TRUE(job) << why;
  EXPECT_EQ(job->destination, fs::canonical(dir_ / "vol0" / "restore"));
  EXPECT_TRUE(job->direct);
  ASSERT_EQ(job->names.size(), 4u);
  EXPECT_EQ(job->names[0].original_path, "/a/f1");
  EXPECT_EQ(job->names[0].destination_path, "new/name");
  EXPECT_EQ(job->names[0].fh_info, 42u);
  EXPECT_EQ(job->names[1].original_path, "/c/file");
  EXPECT_EQ(job->names[1].destination_path, "c/file");
  EXPECT_EQ(job->names[2].destination_path, "d");
  EXPECT_EQ(job->names[3].destination_path, "elsewhere/e");
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_EQ(refused[0].first, "/x");
  EXPECT_EQ(refused[1].first, "/y");
}

TEST_F(EnvTest, RecoverJobNeedsADestinationInsideTheExports) {
  std::string why;
  std::vector<std::pair<std::string, std::string>> refused;
  EXPECT_FALSE(recover_job_from_env({}, {}, exports_, false, refused, why));
  EXPECT_NE(why.find("PREFIX"), std::string::npos) << why;
  EXPECT_FALSE(recover_job_from_env({{"PREFIX", "/etc"}}, {}, exports_, false, refused, why));
  EXPECT_FALSE(recover_job_from_env({{"PREFIX", "/vol0"}, {"DIRECT", "x"}}, {}, exports_, false,
                                    refused, why));
  // A lone "/" into the destination is everything.
  auto job = recover_job_from_env({{"FILESYSTEM", "/vol0"}}, {{"/", "", kUnknown}}, exports_, false,
                                  refused, why);
  ASSERT_TRUE(job) << why;
  EXPECT_TRUE(job->names.empty());
  // The table of contents needs no destination.
  job = recover_job_from_env({{"HIST", "y"}}, {}, exports_, true, refused, why);
  ASSERT_TRUE(job) << why;
  EXPECT_TRUE(job->filehist_only);
  EXPECT_EQ(job->hist, BackupJob::Hist::kFile);
}

}  // namespace
}  // namespace ndmpd::data
