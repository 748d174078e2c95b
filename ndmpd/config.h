// ndmpd's configuration: the TOML file (conf/ndmpd.toml is the embedded
// default), plus what the command line adds for one run.
//
// load_config() parses and validates without touching anything outside the
// file; prepare_state() then creates the state directory and what lives in
// it (generated passwords) and reads password files.  A Config is plain data,
// immutable once the daemon runs, and shared read-only by every thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tape/registry.h"

namespace ndmpd {

enum class AuthMethod { kNone, kText, kMd5 };

std::string_view to_string(AuthMethod m);

struct Credential {
  std::string name;
  std::optional<std::string> password;        // inline in the file
  std::optional<std::filesystem::path> file;  // or in a file of mode 0600
  bool generate = false;                      // create `file` on first start
  std::string origin;                         // "ndmpd.toml:42" or "--user"
};

struct Export {
  std::string name;            // what a DMA names: FILESYSTEM, fs_logical_device
  std::filesystem::path path;  // where it is on this host
  std::string origin;
};

struct Config {
  std::filesystem::path source;  // the file it came from

  // [server]
  std::vector<std::string> listen = {"0.0.0.0:10000", "[::]:10000"};
  std::filesystem::path state_dir = "/var/lib/ndmpd";
  std::string hostname;  // empty: the host's own name
  std::string vendor = "ndmpd";
  std::string product = "ndmpd";
  std::string revision = "0.1.0";
  unsigned io_threads = 0;      // 0: one per core
  unsigned worker_threads = 0;  // blocking work; 0: 2 per core, at least 4

  // [limits]
  unsigned max_sessions = 64;
  std::size_t max_message_bytes = 16u << 20;  // one NDMP record
  std::chrono::seconds login_timeout{30};
  std::chrono::seconds idle_timeout{1800};
  std::chrono::seconds shutdown_grace{30};

  // [auth]
  std::vector<AuthMethod> auth_methods = {AuthMethod::kMd5, AuthMethod::kText};
  std::chrono::milliseconds auth_failure_delay{500};
  unsigned auth_max_failures = 5;  // per session, then it is closed
  std::vector<Credential> users;
  std::optional<Credential> server_identity;  // for CONNECT_SERVER_AUTH

  // [data_connections]: who the mover and the data server may connect to
  // and accept from (CIDR networks; empty: loopback and the networks ndmpd
  // listens on), the addresses a listening mover offers (empty: those
  // ndmpd listens on, wildcards expanded), the ports it listens on
  // (0, 0: any) and the socket buffers.
  std::vector<std::string> data_allow;
  std::vector<std::string> data_listen_addresses;
  std::uint16_t data_port_low = 0, data_port_high = 0;
  std::size_t data_socket_buffer_bytes = 4u << 20;
  std::chrono::seconds data_connect_timeout{10};

  // [mover]
  std::uint32_t mover_max_record_bytes = 1u << 20;
  std::size_t mover_buffer_bytes = 8u << 20;

  // [data]: the data server's LOG_MESSAGE progress lines.
  std::chrono::seconds data_progress_interval{30};

  // [exports]
  std::vector<Export> exports;

  // [libraries.NAME], [disks.NAME], [copy_managers.NAME], [devices.NAME]:
  // the device registry.
  tape::RegistrySpec devices;

  // [log]
  std::string log_level = "info";

  bool allows(AuthMethod m) const;
};

// A configuration error, located where it can be: "FILE:LINE: KEY: what".
struct ConfigError {
  std::string message;
};

// Parses and validates FILE.  Relative paths in it are taken relative to the
// state directory.  Returns the error instead when anything is wrong.
std::optional<Config> load_config(const std::filesystem::path& file, ConfigError& error);

// Parses "HOST:PORT", "[V6]:PORT" or ":PORT" into host and port.
bool parse_listen_address(const std::string& text, std::string& host, std::uint16_t& port);

// Creates the state directory, generates the passwords that are to be
// generated (mode 0600, logged), and reads every password file into the
// credentials.  Errors (a password file readable by others, unreadable,
// empty) are returned, not thrown.
bool prepare_state(Config& config, ConfigError& error);

}  // namespace ndmpd
