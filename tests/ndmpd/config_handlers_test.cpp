// CONFIG_* replies: what this server reports about itself.

#include <gtest/gtest.h>
#include <sys/utsname.h>

#include "harness.h"

namespace ndmpd {
namespace {

using testing::Harness;

TEST(ConfigHandlers, HostInfo) {
  Harness h;
  h.login();
  auto [err, r] = h.call<NDMP4_CONFIG_GET_HOST_INFO>();
  ASSERT_EQ(err, NDMP4_NO_ERR);
  EXPECT_EQ(r->error, NDMP4_NO_ERR);
  struct utsname u {};
  ::uname(&u);
  EXPECT_STREQ(r->os_type, u.sysname);
  EXPECT_STREQ(r->os_vers, u.release);
  EXPECT_GT(std::strlen(r->hostname), 0u);
  EXPECT_EQ(std::strlen(r->hostid), 8u);
}

TEST(ConfigHandlers, HostnameAndVendorStringsComeFromTheConfig) {
  Config c = testing::test_config();
  c.hostname = "filer7";
  c.vendor = "ACME";
  c.product = "Appliance";
  c.revision = "9.9";
  Harness h(c);
  h.login();
  auto [e1, host] = h.call<NDMP4_CONFIG_GET_HOST_INFO>();
  EXPECT_STREQ(host->hostname, "filer7");
  auto [e2, server] = h.call<NDMP4_CONFIG_GET_SERVER_INFO>();
  EXPECT_STREQ(server->vendor_name, "ACME");
  EXPECT_STREQ(server->product_name, "Appliance");
  EXPECT_STREQ(server->revision_number, "9.9");
}

TEST(ConfigHandlers, ConnectionTypesAreLocalAndTcp) {
  Harness h;
  h.login();
  auto [err, r] = h.call<NDMP4_CONFIG_GET_CONNECTION_TYPE>();
  ASSERT_EQ(r->addr_types.addr_types_len, 2u);
  EXPECT_EQ(r->addr_types.addr_types_val[0], NDMP4_ADDR_LOCAL);
  EXPECT_EQ(r->addr_types.addr_types_val[1], NDMP4_ADDR_TCP);
}

TEST(ConfigHandlers, ButypeInfoListsTarWithItsDefaults) {
  Harness h;
  h.login();
  auto [err, r] = h.call<NDMP4_CONFIG_GET_BUTYPE_INFO>();
  ASSERT_EQ(r->butype_info.butype_info_len, 1u);
  const ndmp4_butype_info& tar = r->butype_info.butype_info_val[0];
  EXPECT_STREQ(tar.butype_name, "tar");
  EXPECT_TRUE(tar.attrs & NDMP4_BUTYPE_RECOVER_FILEHIST);
  EXPECT_TRUE(tar.attrs & NDMP4_BUTYPE_BACKUP_FH_FILE);
  bool has_hist = false;
  for (u_int i = 0; i < tar.default_env.default_env_len; ++i) {
    if (std::string(tar.default_env.default_env_val[i].name) == "HIST") has_hist = true;
  }
  EXPECT_TRUE(has_hist);
}

TEST(ConfigHandlers, FsInfoReportsEachExportWithStatvfsFigures) {
  Config c = testing::test_config();
  c.exports.push_back({"/gone", "/nonexistent/ndmpd-test", "t"});
  Harness h(c);
  h.login();
  auto [err, r] = h.call<NDMP4_CONFIG_GET_FS_INFO>();
  ASSERT_EQ(err, NDMP4_NO_ERR);
  ASSERT_EQ(r->fs_info.fs_info_len, 2u);
  const ndmp4_fs_info& ok = r->fs_info.fs_info_val[0];
  EXPECT_STREQ(ok.fs_logical_device, "/vol0");
  EXPECT_EQ(ok.unsupported & 0x7, 0u);
  EXPECT_GT(ok.total_size, 0u);
  EXPECT_LE(ok.used_size, ok.total_size);
  EXPECT_LE(ok.avail_size, ok.total_size);
  EXPECT_GT(std::strlen(ok.fs_type), 0u);
  EXPECT_STREQ(ok.fs_status, "online");
  const ndmp4_fs_info& gone = r->fs_info.fs_info_val[1];
  EXPECT_STREQ(gone.fs_logical_device, "/gone");
  EXPECT_EQ(gone.unsupported & 0x1F, 0x1Fu);
  EXPECT_EQ(std::string(gone.fs_status).rfind("unavailable", 0), 0u);
}

TEST(ConfigHandlers, TapeAndScsiInfoListTheRegistry) {
  Harness h;
  h.login();
  h.server().tapes.push_back({"tape0", "EMU  TAPE", NDMP4_TAPE_ATTR_REWIND, {{"SERIAL", "X1"}}});
  auto [e1, tapes] = h.call<NDMP4_CONFIG_GET_TAPE_INFO>();
  ASSERT_EQ(tapes->tape_info.tape_info_len, 1u);
  EXPECT_STREQ(tapes->tape_info.tape_info_val[0].model, "EMU  TAPE");
  ASSERT_EQ(tapes->tape_info.tape_info_val[0].caplist.caplist_len, 1u);
  EXPECT_STREQ(tapes->tape_info.tape_info_val[0].caplist.caplist_val[0].device, "tape0");
  auto [e2, scsi] = h.call<NDMP4_CONFIG_GET_SCSI_INFO>();
  EXPECT_EQ(scsi->scsi_info.scsi_info_len, 0u);
}

}  // namespace
}  // namespace ndmpd
