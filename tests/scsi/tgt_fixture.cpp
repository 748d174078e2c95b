#include "scsi/tgt_fixture.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

extern char** environ;

namespace scsi::testing {

namespace {

using Clock = std::chrono::steady_clock;

std::map<std::string, std::string> read_env_file(const std::string& path) {
  std::map<std::string, std::string> values;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos && eq > 0) values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return values;
}

}  // namespace

RunResult run_bounded(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                      std::chrono::milliseconds timeout, bool capture) {
  RunResult result;
  if (argv.empty()) {
    result.error = "no program";
    return result;
  }
  // The environment: ours, with `env` replacing or adding entries.
  std::vector<std::string> entries;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto key = entry.substr(0, entry.find('=') + 1);
    bool replaced = false;
    for (const auto& extra : env) replaced = replaced || extra.rfind(key, 0) == 0;
    if (!replaced) entries.push_back(entry);
  }
  entries.insert(entries.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : entries) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args(argv);
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  int pipe_fds[2] = {-1, -1};
  if (capture && pipe2(pipe_fds, O_CLOEXEC) != 0) {
    result.error = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (capture) {
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  }
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argp[0], &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (capture) close(pipe_fds[1]);
  if (rc != 0) {
    if (capture) close(pipe_fds[0]);
    result.error = "cannot run " + argv[0] + ": " + std::strerror(rc);
    return result;
  }

  const auto deadline = Clock::now() + timeout;
  bool open_pipe = capture;
  int status = 0;
  bool reaped = false;
  while (!reaped) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    if (open_pipe) {
      pollfd pfd{pipe_fds[0], POLLIN, 0};
      if (poll(&pfd, 1, static_cast<int>(std::min<long long>(left.count(), 100))) > 0) {
        char buf[4096];
        const ssize_t n = read(pipe_fds[0], buf, sizeof buf);
        if (n > 0) {
          result.output.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          open_pipe = false;
        }
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) reaped = true;
  }
  if (capture) {
    // What was written just before the exit.
    char buf[4096];
    ssize_t n;
    fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    while ((n = read(pipe_fds[0], buf, sizeof buf)) > 0) {
      result.output.append(buf, static_cast<std::size_t>(n));
    }
    close(pipe_fds[0]);
  }
  if (!result.timed_out && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

std::string sgiscsi_preload_path() { return NDMPD_SGISCSI_PRELOAD; }

std::unique_ptr<Tgt> Tgt::start(std::string& error) {
  char tmpl[] = "/tmp/ndmpd-tgt-XXXXXX";  // short: tgt's changer limits media paths
  if (mkdtemp(tmpl) == nullptr) {
    error = std::string("mkdtemp: ") + std::strerror(errno);
    return nullptr;
  }
  std::unique_ptr<Tgt> tgt(new Tgt);
  tgt->dir_ = tmpl;
  const RunResult run = run_bounded({NDMPD_TGT_SH, "start", tgt->dir_, std::to_string(getpid())},
                                    {}, std::chrono::seconds(60), true);
  const auto env = read_env_file(tgt->dir_ + "/tgt.env");
  if (run.exit_code != 0 || env.count("TGT_PID") == 0) {
    error = "tgt.sh start failed" + std::string(run.timed_out ? " (timed out)" : "") + ": " +
            run.error + run.output;
    std::string ignored;
    tgt->stop(ignored);
    return nullptr;
  }
  auto get = [&](const char* key) {
    const auto it = env.find(key);
    return it == env.end() ? std::string() : it->second;
  };
  tgt->pid_ = static_cast<pid_t>(std::atoi(get("TGT_PID").c_str()));
  tgt->port_ = std::atoi(get("TGT_PORT").c_str());
  tgt->ipc_socket_ = get("TGT_IPC_SOCKET");
  tgt->disk0_url = get("DISK0_URL");
  tgt->disk1_url = get("DISK1_URL");
  tgt->tape_url = get("TAPE_URL");
  tgt->vtl_drive1_url = get("VTL_DRIVE1_URL");
  tgt->vtl_drive2_url = get("VTL_DRIVE2_URL");
  tgt->vtl_changer_url = get("VTL_CHANGER_URL");
  if (tgt->pid_ <= 0 || tgt->port_ <= 0 || tgt->vtl_changer_url.empty()) {
    error = "tgt.sh wrote an incomplete " + tgt->dir_ + "/tgt.env";
    std::string ignored;
    tgt->stop(ignored);
    return nullptr;
  }
  return tgt;
}

bool Tgt::stop(std::string& error) {
  if (stopped_) return true;
  // A test may have left it stopped (SIGSTOP); tgtadm needs it running.
  // (Only if that PID is still a tgtd: a killed one's PID may be reused.)
  std::ifstream comm("/proc/" + std::to_string(pid_) + "/comm");
  std::string name;
  if (pid_ > 0 && std::getline(comm, name) && name == "tgtd") kill(pid_, SIGCONT);
  const RunResult run =
      run_bounded({NDMPD_TGT_SH, "stop", dir_}, {}, std::chrono::seconds(30), true);
  if (run.exit_code != 0) {
    error = "tgt.sh stop " + dir_ + " failed: " + run.error + run.output;
    return false;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
  stopped_ = true;
  return true;
}

bool Tgt::tgtadm(const std::vector<std::string>& args, std::string& error) const {
  std::vector<std::string> argv = {"/usr/sbin/tgtadm", "-C", std::to_string(port_), "--lld",
                                   "iscsi"};
  argv.insert(argv.end(), args.begin(), args.end());
  const RunResult run =
      run_bounded(argv, {"TGT_IPC_SOCKET=" + ipc_socket_}, std::chrono::seconds(10), true);
  if (run.exit_code == 0) return true;
  error = "tgtadm failed" + std::string(run.timed_out ? " (timed out)" : "") + ": " + run.error +
          run.output;
  return false;
}

Tgt::~Tgt() {
  std::string error;
  if (!stop(error)) std::fprintf(stderr, "%s\n", error.c_str());
}

namespace {

std::mutex shared_mutex;
std::unique_ptr<Tgt> shared_tgt;
bool shared_tried = false;
std::string shared_error;

class SharedTgtEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    std::lock_guard<std::mutex> lock(shared_mutex);
    shared_tgt.reset();
  }
};

[[maybe_unused]] ::testing::Environment* const shared_environment =
    ::testing::AddGlobalTestEnvironment(new SharedTgtEnvironment);

}  // namespace

Tgt* Tgt::shared(std::string& error) {
  std::lock_guard<std::mutex> lock(shared_mutex);
  if (!shared_tried) {
    shared_tried = true;
    shared_tgt = start(shared_error);
  }
  if (shared_tgt == nullptr) error = shared_error;
  return shared_tgt.get();
}

}  // namespace scsi::testing
