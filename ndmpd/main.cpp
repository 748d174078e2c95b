// ndmpd: the NDMP v4 server.  See README.md for the command line.

#include <signal.h>
#include <spdlog/spdlog.h>
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
  if (!ndmpd::init_logging(config.log_level)) {
    std::cerr << "ndmpd: unknown log level '" << config.log_level << "'\n";
    return 2;
  }
  if (!ndmpd::prepare_state(config, error)) {
    spdlog::critical("{}", error.message);
    return 1;
  }
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
