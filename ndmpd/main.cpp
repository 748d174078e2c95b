// ndmpd: the NDMP v4 server.  See README.md for the command line.

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fstream>
#include <iostream>
#include <thread>

#include "ndmpd/config.h"
#include "ndmpd/logging.h"
#include "ndmpd/server.h"
#include "ndmpd/version.h"
#include "ndmpd/xcopy_command.h"

namespace {

namespace asio = boost::asio;
using ndmpd::Config;

// Writes the bound addresses to `path` (one per line) once every listener
// is open, by renaming a complete file into place: scripts and tests wait
// for it instead of guessing when the daemon is ready.
bool write_listen_file(const std::string& path, const std::vector<std::string>& addresses) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& a : addresses) out << a << '\n';
    if (!out.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

unsigned default_threads(unsigned configured, unsigned per_core, unsigned at_least) {
  if (configured != 0) return configured;
  return std::max(at_least, per_core * std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ndmpd: NDMP v4 server (data, tape, SCSI and mover services)"};
  std::string config_file, check_file, state_dir, user, password_file, log_level, listen_file;
  std::vector<std::string> listen, exports;
  bool foreground = false, version = false;
  app.add_option("--config", config_file, "configuration file (TOML)");
  app.add_option("--check-config", check_file, "check a configuration file and exit");
  app.add_option("--listen", listen, "ADDR:PORT to listen on (replaces the configured ones)");
  app.add_option("--state-dir", state_dir, "state directory (replaces the configured one)");
  app.add_option("--user", user, "add a login for this run (with --password-file)");
  app.add_option("--password-file", password_file, "file holding --user's password (mode 0600)");
  app.add_option("--export", exports, "NAME=PATH: export a filesystem for this run");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.add_option("--listen-file", listen_file,
                 "write the bound addresses here once listening (for scripts)");
  app.add_flag("--foreground", foreground, "stay in the foreground (the only mode)");
  app.add_flag("--version", version, "print the version and exit");

  // ndmpd xcopy: a server-free copy through a copy manager (see README).
  ndmpd::XcopyOptions xo;
  std::uint64_t xcopy_bytes = 0, xcopy_blocks = 0;
  CLI::App* xcopy = app.add_subcommand(
      "xcopy", "copy between two devices with SCSI EXTENDED COPY through a copy manager");
  xcopy->fallthrough();  // --config, --state-dir, --log-level may follow the subcommand
  xcopy->add_option("source", xo.source, "device name, /dev/sg* path or iscsi:// URL")->required();
  xcopy->add_option("destination", xo.destination, "device name, /dev/sg* path or iscsi:// URL")
      ->required();
  xcopy->add_option("--manager", xo.manager,
                    "copy manager: its name or address (default: the only one configured)");
  xcopy->add_option("--source-lba", xo.source_lba, "first block of a disk source");
  xcopy->add_option("--source-offset", xo.source_offset,
                    "bytes past --source-lba (to resume after an end of medium)");
  xcopy->add_option("--destination-lba", xo.destination_lba, "first block of a disk destination");
  xcopy->add_option("--destination-offset", xo.destination_offset, "bytes past --destination-lba");
  CLI::Option* bytes_opt = xcopy->add_option("--bytes", xcopy_bytes, "how much (K, M, G: KiB...)")
                               ->transform(CLI::AsSizeValue(false));
  CLI::Option* blocks_opt =
      xcopy->add_option("--blocks", xcopy_blocks, "how much, in blocks of the disk");
  xcopy
      ->add_option("--record-size", xo.record_size,
                   "tape record size in bytes (K, M: KiB...); 0: the drive's block length")
      ->transform(CLI::AsSizeValue(false));
  xcopy->add_option("--load", xo.load,
                    "load this cartridge into the tape drive first (emulated library)");
  xcopy->add_option("--batch-mib", xo.batch_mib, "data per EXTENDED COPY command")
      ->check(CLI::Range(1, 1 << 20));
  xcopy->add_option("--segment-mib", xo.segment_mib, "data per segment descriptor")
      ->check(CLI::Range(1, 4095));
  bool no_status = false;
  xcopy->add_flag("--no-status", no_status, "do not poll COPY STATUS while a command runs");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::cout << "ndmpd " << ndmpd::kVersion << " (NDMP version 4)\n";
    return 0;
  }
  ndmpd::init_logging("info");
  if (!check_file.empty()) {
    ndmpd::ConfigError error;
    if (!ndmpd::load_config(check_file, error)) {
      std::cerr << error.message << '\n';
      return 1;
    }
    std::cout << check_file << ": OK\n";
    return 0;
  }
  if (config_file.empty()) {
    std::cerr << "ndmpd: --config FILE is required (see --help)\n";
    return 2;
  }
  ndmpd::ConfigError error;
  std::optional<Config> loaded = ndmpd::load_config(config_file, error);
  if (!loaded) {
    std::cerr << error.message << '\n';
    return 1;
  }
  Config& config = *loaded;
  if (!listen.empty()) config.listen = listen;
  if (!state_dir.empty()) config.state_dir = state_dir;
  // Every path the daemon keeps is absolute: libarchive's disk writer may
  // change the working directory of the process for a moment (a recovery
  // of a name longer than PATH_MAX).
  config.state_dir = std::filesystem::absolute(config.state_dir);
  if (!log_level.empty()) config.log_level = log_level;
  if (!user.empty() || !password_file.empty()) {
    if (user.empty() || password_file.empty() || user.find(',') != std::string::npos) {
      std::cerr << "ndmpd: --user NAME and --password-file FILE go together\n";
      return 2;
    }
    std::erase_if(config.users, [&](const ndmpd::Credential& c) { return c.name == user; });
    config.users.push_back(
        {user, std::nullopt, std::filesystem::absolute(password_file), false, "--user"});
  }
  for (const std::string& e : exports) {
    const auto eq = e.find('=');
    if (eq == std::string::npos || eq == 0 || e[0] != '/' || eq + 1 == e.size()) {
      std::cerr << "ndmpd: --export wants NAME=PATH with NAME starting with '/'\n";
      return 2;
    }
    config.exports.push_back(
        {e.substr(0, eq), std::filesystem::absolute(e.substr(eq + 1)), "--export"});
  }
  if (xcopy->parsed()) {
    if (bytes_opt->count() != 0) xo.bytes = xcopy_bytes;
    if (blocks_opt->count() != 0) xo.blocks = xcopy_blocks;
    xo.poll_status = !no_status;
    // The copy's own lines are on stderr; the registry's start-up chatter
    // only below the operator's chosen level.
    if (!ndmpd::init_logging(log_level.empty() ? "warn" : log_level)) {
      std::cerr << "ndmpd: unknown log level '" << log_level << "'\n";
      return 2;
    }
    std::error_code ec;
    if (std::filesystem::create_directories(config.state_dir, ec)) {
      ::chmod(config.state_dir.c_str(), 0700);
    }
    if (ec) {
      std::cerr << "ndmpd xcopy: " << config.state_dir.string() << ": " << ec.message() << '\n';
      return 2;
    }
    config.devices.state_dir = config.state_dir;
    return ndmpd::run_xcopy(config, xo, std::cout, std::cerr);
  }
  if (!ndmpd::init_logging(config.log_level)) {
    std::cerr << "ndmpd: unknown log level '" << config.log_level << "'\n";
    return 2;
  }
  if (!ndmpd::prepare_state(config, error)) {
    spdlog::critical("{}", error.message);
    return 1;
  }
  // A shared lock on the state directory: `ndmpd xcopy`, which opens the
  // emulated devices itself, takes it exclusively and so never runs beside
  // a daemon (and the daemon never starts beside it).
  bool state_busy = false;
  std::string lock_error;
  const int state_lock = ndmpd::lock_state_dir(config.state_dir, false, state_busy, lock_error);
  if (state_lock < 0 && state_busy) {
    spdlog::critical("{}: an `ndmpd xcopy` is using the state directory's devices", lock_error);
    return 1;
  }
  if (state_lock < 0) spdlog::warn("{}", lock_error);
  if (config.users.empty() && !config.allows(ndmpd::AuthMethod::kNone)) {
    spdlog::warn("no users are configured: no DMA can log in");
  }
  ::signal(SIGPIPE, SIG_IGN);

  asio::thread_pool workers(default_threads(config.worker_threads, 2, 4));
  asio::io_context io;
  ndmpd::ServerContext context(config, workers);
  ndmpd::register_tar_butype(context.butypes);
  std::string device_error;
  std::shared_ptr<tape::DeviceRegistry> registry =
      tape::DeviceRegistry::open(config.devices, device_error);
  if (!registry) {
    spdlog::critical("devices: {}", device_error);
    return 1;
  }
  context.attach(std::move(registry));
  ndmpd::Server server(io, context);
  if (!server.open(config.listen)) return 1;
  if (!listen_file.empty() && !write_listen_file(listen_file, server.bound_addresses())) {
    spdlog::critical("cannot write {}", listen_file);
    return 1;
  }
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](boost::system::error_code ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: stopping", signo);
    server.stop();
  });
  server.start();
  spdlog::info("ndmpd {} ready: state in {}, {} export(s), {} user(s)", ndmpd::kVersion,
               config.state_dir.string(), config.exports.size(), config.users.size());

  const unsigned threads = default_threads(config.io_threads, 1, 1);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  workers.join();
  spdlog::info("ndmpd stopped");
  return 0;
}
