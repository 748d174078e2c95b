// The TOML configuration: the shipped file loads, mistakes are reported
// with file, line and key, and password files are created and checked as
// the README promises.

#include "ndmpd/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

namespace ndmpd {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ndmpd-config-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& text) {
    const fs::path p = dir_ / "ndmpd.toml";
    std::ofstream(p) << text;
    return p;
  }
  std::string error_of(const std::string& text) {
    ConfigError e;
    EXPECT_FALSE(load_config(write(text), e).has_value()) << text;
    return e.message;
  }
  fs::path dir_;
};

TEST_F(ConfigTest, TheShippedConfigurationLoads) {
  ConfigError e;
  const auto c = load_config(fs::path(NDMPD_SOURCE_DIR) / "conf/ndmpd.toml", e);
  ASSERT_TRUE(c) << e.message;
  EXPECT_EQ(c->listen, (std::vector<std::string>{"0.0.0.0:10000", "[::]:10000"}));
  EXPECT_EQ(c->state_dir, "/var/lib/ndmpd");
  ASSERT_EQ(c->users.size(), 1u);
  EXPECT_EQ(c->users[0].name, "ndmp");
  EXPECT_TRUE(c->users[0].generate);
  EXPECT_FALSE(c->users[0].password.has_value());  // no compiled-in password
  EXPECT_TRUE(c->allows(AuthMethod::kMd5));
  EXPECT_TRUE(c->allows(AuthMethod::kText));
  EXPECT_FALSE(c->allows(AuthMethod::kNone));
  ASSERT_EQ(c->exports.size(), 1u);
  EXPECT_EQ(c->exports[0].name, "/vol0");
}

TEST_F(ConfigTest, EmptyFileGivesTheDefaults) {
  ConfigError e;
  const auto c = load_config(write(""), e);
  ASSERT_TRUE(c) << e.message;
  EXPECT_EQ(c->max_sessions, 64u);
  EXPECT_EQ(c->max_message_bytes, 16u << 20);
  EXPECT_TRUE(c->users.empty());
}

TEST_F(ConfigTest, ReadsEverySection) {
  ConfigError e;
  const auto c = load_config(write(R"(
[server]
listen = ["127.0.0.1:10001", "[::1]:10001"]
state_dir = "/tmp/x"
vendor = "V"
product = "P"
revision = "R"
[limits]
max_sessions = 3
max_message_bytes = 1048576
login_timeout = 5
idle_timeout = 60
shutdown_grace = 2
[auth]
methods = ["text", "none"]
failure_delay_ms = 10
max_failures = 2
[[users]]
name = "a"
password = "pa"
[[users]]
name = "b"
password_file = "/etc/b.pw"
[server_identity]
name = "filer"
password = "f"
[exports]
"/data" = "/srv/data"
[log]
level = "debug"
)"),
                             e);
  ASSERT_TRUE(c) << e.message;
  EXPECT_EQ(c->listen.size(), 2u);
  EXPECT_EQ(c->vendor, "V");
  EXPECT_EQ(c->max_sessions, 3u);
  EXPECT_EQ(c->login_timeout.count(), 5);
  EXPECT_EQ(c->auth_failure_delay.count(), 10);
  EXPECT_TRUE(c->allows(AuthMethod::kNone));
  EXPECT_FALSE(c->allows(AuthMethod::kMd5));
  ASSERT_EQ(c->users.size(), 2u);
  EXPECT_EQ(*c->users[0].password, "pa");
  EXPECT_EQ(*c->users[1].file, "/etc/b.pw");
  ASSERT_TRUE(c->server_identity);
  EXPECT_EQ(c->server_identity->name, "filer");
  EXPECT_EQ(c->exports[0].path, "/srv/data");
  EXPECT_EQ(c->log_level, "debug");
}

TEST_F(ConfigTest, DataConnectionsAndMover) {
  EXPECT_NE(error_of("[data_connections]\nallow = [\"10.0.0.0/40\"]\n")
                .find(":2: data_connections.allow: not a network: 10.0.0.0/40"),
            std::string::npos);
  EXPECT_NE(error_of("[data_connections]\nlisten_addresses = [\"0.0.0.0\"]\n")
                .find("data_connections.listen_addresses"),
            std::string::npos);
  EXPECT_NE(error_of("[data_connections]\nport_low = 5000\n").find("data_connections.port_low"),
            std::string::npos);
  EXPECT_NE(error_of("[data_connections]\nport_low = 5000\nport_high = 4000\n")
                .find("data_connections.port_high"),
            std::string::npos);
  EXPECT_NE(error_of("[mover]\nbuffer_mib = 0\n").find("mover.buffer_mib"), std::string::npos);
}

TEST_F(ConfigTest, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(
      error_of("[limits]\nmax_sessions = 0\n"),
      (dir_ / "ndmpd.toml").string() + ":2: limits.max_sessions: must be between 1 and 100000");
  EXPECT_NE(error_of("[server]\nlisten = [\"nowhere\"]\n").find(":2: server.listen: 'nowhere'"),
            std::string::npos);
  EXPECT_NE(error_of("[server]\nvendr = \"x\"\n").find(":2: server.vendr: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("\n\n[bogus]\nx=1\n").find(":3: bogus: unknown key"), std::string::npos);
  EXPECT_NE(error_of("[auth]\nmethods = [\"kerberos\"]\n").find(":2: auth.methods: 'kerberos'"),
            std::string::npos);
  EXPECT_NE(error_of("[limits]\nlogin_timeout = \"30s\"\n").find("must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of("[[users]]\nname = \"a\"\n").find("users[0].password"), std::string::npos);
  EXPECT_NE(
      error_of("[[users]]\nname=\"a\"\npassword=\"x\"\n[[users]]\nname=\"a\"\npassword=\"y\"\n")
          .find("defined twice"),
      std::string::npos);
  EXPECT_NE(error_of("[exports]\n\"vol\" = \"/x\"\n").find("must start with '/'"),
            std::string::npos);
  EXPECT_NE(error_of("[log]\nlevel = \"loud\"\n").find(":2: log.level"), std::string::npos);
  // A TOML syntax error carries its line.
  EXPECT_NE(error_of("[server]\nvendor = \n").find(":2:"), std::string::npos);
}

TEST_F(ConfigTest, DeviceSections) {
  ConfigError e;
  const auto c = load_config(write(R"(
[libraries.vtl0]
drives = 3
slots = 10
import_export = 2
cartridges = 4
barcode_prefix = "AB"
barcode_suffix = "L7"
cartridge_capacity_mb = 100
early_warning_mb = 10
write_protected = ["AB002L7"]
verify_reads = false
[disks.lun0]
path = "san/a.img"
size_mb = 8
block_size = 4096
[devices.tape9]
kind = "tape"
url = "iscsi://127.0.0.1:3260/iqn.x:tape/1"
[devices.robot]
kind = "changer"
path = "/dev/sg4"
)"),
                             e);
  ASSERT_TRUE(c) << e.message;
  ASSERT_EQ(c->devices.libraries.size(), 1u);
  const auto& lib = c->devices.libraries[0];
  EXPECT_EQ(lib.name, "vtl0");
  EXPECT_EQ(lib.dir, "library/vtl0");
  EXPECT_EQ(lib.drives, 3u);
  EXPECT_EQ(lib.slots, 10u);
  EXPECT_EQ(lib.import_export, 2u);
  EXPECT_FALSE(lib.verify_reads);
  ASSERT_EQ(lib.cartridges.size(), 4u);
  EXPECT_EQ(lib.cartridges[0].barcode, "AB001L7");
  EXPECT_EQ(lib.cartridges[0].capacity, 100u << 20);
  EXPECT_EQ(lib.cartridges[0].early_warning, 90u << 20);
  EXPECT_FALSE(lib.cartridges[0].write_protected);
  EXPECT_TRUE(lib.cartridges[1].write_protected);
  ASSERT_EQ(c->devices.disks.size(), 1u);
  EXPECT_EQ(c->devices.disks[0].size, 8u << 20);
  EXPECT_EQ(c->devices.disks[0].block_length, 4096u);
  ASSERT_EQ(c->devices.devices.size(), 2u);
  EXPECT_EQ(c->devices.devices[0].kind, tape::DeviceKind::kChanger);  // "robot" sorts first
  EXPECT_EQ(c->devices.devices[0].address, "/dev/sg4");
  EXPECT_EQ(c->devices.devices[1].address, "iscsi://127.0.0.1:3260/iqn.x:tape/1");
}

TEST_F(ConfigTest, DeviceSectionErrors) {
  EXPECT_NE(
      error_of("[libraries.v]\ncartridges = 20\nslots = 4\n").find("more cartridges than slots"),
      std::string::npos);
  EXPECT_NE(error_of("[libraries.v]\ncartridge_capacity_mb = 10\nearly_warning_mb = 10\n")
                .find("libraries.v.early_warning_mb"),
            std::string::npos);
  EXPECT_NE(error_of("[libraries.v]\ndrivs = 2\n").find(":2: libraries.v.drivs: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("[disks.d]\nblock_size = 1024\n").find("must be 512 or 4096"),
            std::string::npos);
  EXPECT_NE(error_of("[devices.x]\nkind = \"tape\"\n").find("give exactly one of url"),
            std::string::npos);
  EXPECT_NE(error_of("[devices.x]\nurl = \"http://a\"\n").find("must start with iscsi://"),
            std::string::npos);
  EXPECT_NE(error_of("[devices.x]\npath = \"/tmp/sg\"\n").find("must be a /dev/ path"),
            std::string::npos);
  EXPECT_NE(error_of("[devices.x]\nkind = \"toaster\"\npath = \"/dev/sg1\"\n")
                .find("must be tape, changer, disk or other"),
            std::string::npos);
}

TEST_F(ConfigTest, ListenAddresses) {
  std::string h;
  std::uint16_t p = 0;
  EXPECT_TRUE(parse_listen_address("127.0.0.1:10000", h, p));
  EXPECT_EQ(h, "127.0.0.1");
  EXPECT_EQ(p, 10000);
  EXPECT_TRUE(parse_listen_address("[::1]:0", h, p));
  EXPECT_EQ(h, "::1");
  EXPECT_EQ(p, 0);
  EXPECT_TRUE(parse_listen_address(":10000", h, p));
  EXPECT_EQ(h, "0.0.0.0");
  EXPECT_FALSE(parse_listen_address("::1:10000", h, p));
  EXPECT_FALSE(parse_listen_address("host", h, p));
  EXPECT_FALSE(parse_listen_address("a:65536", h, p));
  EXPECT_FALSE(parse_listen_address("a:", h, p));
  EXPECT_FALSE(parse_listen_address("[::1]", h, p));
}

TEST_F(ConfigTest, FirstStartGeneratesAPrivatePasswordAndKeepsIt) {
  ConfigError e;
  auto c = load_config(write("[[users]]\nname=\"ndmp\"\npassword_file=\"ndmp.password\"\n"
                             "generate=true\n[exports]\n\"/v\" = \"vol\"\n"),
                       e);
  ASSERT_TRUE(c) << e.message;
  c->state_dir = dir_ / "state";
  ASSERT_TRUE(prepare_state(*c, e)) << e.message;
  const fs::path pw = dir_ / "state/ndmp.password";
  struct stat st {};
  ASSERT_EQ(::stat(pw.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(c->users[0].password);
  const std::string first = *c->users[0].password;
  EXPECT_EQ(first.size(), 24u);
  EXPECT_EQ(first.find(','), std::string::npos);
  EXPECT_TRUE(fs::is_directory(dir_ / "state/vol"));
  EXPECT_EQ(c->exports[0].path, dir_ / "state/vol");

  auto again = load_config(dir_ / "ndmpd.toml", e);
  again->state_dir = dir_ / "state";
  ASSERT_TRUE(prepare_state(*again, e)) << e.message;
  EXPECT_EQ(*again->users[0].password, first);
}

TEST_F(ConfigTest, PasswordFilesReadableByOthersAreRefused) {
  const fs::path pw = dir_ / "pw";
  std::ofstream(pw) << "hunter2\n";
  ::chmod(pw.c_str(), 0644);
  ConfigError e;
  auto c = load_config(write("[[users]]\nname=\"a\"\npassword_file=\"" + pw.string() + "\"\n"), e);
  ASSERT_TRUE(c);
  c->state_dir = dir_ / "state";
  EXPECT_FALSE(prepare_state(*c, e));
  EXPECT_NE(e.message.find("chmod 600"), std::string::npos) << e.message;
  ::chmod(pw.c_str(), 0600);
  ASSERT_TRUE(prepare_state(*c, e)) << e.message;
  EXPECT_EQ(*c->users[0].password, "hunter2");
}

TEST_F(ConfigTest, MissingOrEmptyPasswordFileIsAnError) {
  ConfigError e;
  auto c = load_config(write("[[users]]\nname=\"a\"\npassword_file=\"absent\"\n"), e);
  c->state_dir = dir_ / "state";
  EXPECT_FALSE(prepare_state(*c, e));
  EXPECT_NE(e.message.find("absent"), std::string::npos);
  std::ofstream(dir_ / "state/empty") << "\n";
  ::chmod((dir_ / "state/empty").c_str(), 0600);
  c = load_config(write("[[users]]\nname=\"a\"\npassword_file=\"empty\"\n"), e);
  c->state_dir = dir_ / "state";
  EXPECT_FALSE(prepare_state(*c, e));
  EXPECT_NE(e.message.find("empty password"), std::string::npos);
}

}  // namespace
}  // namespace ndmpd
