#include "ndmpd/data_server.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "ndmpd/data/tar_backup.h"
#include "ndmpd/data/tar_recover.h"
#include "ndmpd/handlers/build.h"
#include "xdr/messages.h"

namespace ndmpd {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using data::kUnknown;

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kBlock = 1u << 20;         // image bytes per channel message
constexpr std::size_t kSmallWrite = 256u << 10;  // smaller Sink writes are gathered

ndmp4_file_type file_type(data::FileStat::Type t) {
  using T = data::FileStat::Type;
  switch (t) {
    case T::kDir:
      return NDMP4_FILE_DIR;
    case T::kFifo:
      return NDMP4_FILE_FIFO;
    case T::kChar:
      return NDMP4_FILE_CSPEC;
    case T::kBlock:
      return NDMP4_FILE_BSPEC;
    case T::kReg:
      return NDMP4_FILE_REG;
    case T::kSymlink:
      return NDMP4_FILE_SLINK;
    case T::kSocket:
    case T::kOther:
      break;
  }
  return NDMP4_FILE_OTHER;
}

u_int clamp32(std::int64_t v) {
  return static_cast<u_int>(std::clamp<std::int64_t>(v, 0, 0xFFFFFFFF));
}

ndmp4_file_stat file_stat(const data::FileStat& s) {
  ndmp4_file_stat f{};
  f.unsupported = 0;
  f.fs_type = NDMP4_FS_UNIX;
  f.ftype = file_type(s.type);
  f.mtime = clamp32(s.mtime);
  f.atime = clamp32(s.atime);
  f.ctime = clamp32(s.ctime);
  f.owner = s.uid;
  f.group = s.gid;
  f.fattr = s.mode & 07777;
  f.size = s.size;
  f.links = s.links;
  return f;
}

ndmp4_recovery_status recovery_status(int e) {
  switch (e) {
    case 0:
      return NDMP4_RECOVERY_SUCCESSFUL;
    case EACCES:
    case EPERM:
    case EROFS:
      return NDMP4_RECOVERY_FAILED_PERMISSION;
    case ENOENT:
      return NDMP4_RECOVERY_FAILED_NOT_FOUND;
    case ENOTDIR:
      return NDMP4_RECOVERY_FAILED_NO_DIRECTORY;
    case ENOMEM:
      return NDMP4_RECOVERY_FAILED_OUT_OF_MEMORY;
    case EIO:
    case ENOSPC:
      return NDMP4_RECOVERY_FAILED_IO_ERROR;
    case EEXIST:
      return NDMP4_RECOVERY_FAILED_FILE_PATH_EXISTS;
    default:
      return NDMP4_RECOVERY_FAILED_UNDEFINED_ERROR;
  }
}

}  // namespace

// What the engine's thread and the strand share for one operation: the
// channel of image blocks, the cancel flag, progress counters, and the
// file history batches.  The engine's thread calls the Sink / Source /
// Reporter members; the strand the pumps'.
class DataServer::Bridge final : public data::Sink, public data::Source, public data::Reporter {
 public:
  using Channel =
      asio::experimental::concurrent_channel<void(error_code, std::vector<std::uint8_t>)>;

  Bridge(asio::any_io_executor strand, std::size_t buffer_bytes, std::size_t history_batch,
         std::function<void(std::uint32_t, ndmp::xdr::Bytes)> post)
      : channel(strand, std::max<std::size_t>(2, buffer_bytes / kBlock)),
        strand_(strand),
        history_batch_(std::max<std::size_t>(1, history_batch)),
        post_(std::move(post)) {}

  data::Cancel cancel;
  Channel channel;
  std::atomic<std::uint64_t> bytes{0}, files{0};
  std::atomic<std::uint64_t> read_offset{0}, read_length{0};
  std::atomic<bool> connection_failed{false};
  // A backup's size, as a walk ahead of the engine finds it (kUnknown
  // until it is done).
  std::atomic<std::uint64_t> estimate{kUnknown};
  data::Result result;  // set by the engine's thread before it signals the end
  std::atomic<bool> result_ready{false};

  // Ends the channel both ways: what waits to send or receive fails, and
  // so does what comes later (close() alone leaves a waiting sender).
  void shut() {
    channel.close();
    channel.cancel();
  }

  // ---- Sink (the engine's thread)
  bool write(std::span<const std::uint8_t> b) override {
    if (cancel.requested()) return false;
    if (out_.empty() && b.size() >= kSmallWrite) {
      return send(std::vector<std::uint8_t>(b.begin(), b.end()));
    }
    out_.insert(out_.end(), b.begin(), b.end());
    if (out_.size() < kBlock) return true;
    return send(std::exchange(out_, {}));
  }
  bool write_owned(std::vector<std::uint8_t>&& block) override {
    if (cancel.requested()) return false;
    if (!out_.empty() || block.size() < kSmallWrite) return write(block);
    return send(std::move(block));
  }
  // The image is complete: what is gathered, then the end marker (an
  // empty block).
  bool finish_image() {
    if (!out_.empty() && !send(std::exchange(out_, {}))) return false;
    return send({});
  }

  // ---- Source (the engine's thread)
  bool request(std::uint64_t offset, std::uint64_t length) override {
    // The mover sends exactly what each NOTIFY_DATA_READ asked for: what
    // is left of the last range comes first and is dropped.
    std::vector<std::uint8_t> scratch;
    while (left_ != 0 && left_ != kUnknown && !ended_) {
      scratch.resize(std::min<std::uint64_t>(left_, kBlock));
      if (read(scratch) <= 0) break;
    }
    if (cancel.requested() || ended_ || failed_) return false;
    left_ = length;
    read_offset = offset;
    read_length = length;
    ndmp4_notify_data_read_post p{};
    p.offset = offset;
    p.length = length;
    post(NDMP4_NOTIFY_DATA_READ, ndmp::xdr::encode(p));
    return true;
  }
  std::ptrdiff_t read(std::span<std::uint8_t> buffer) override {
    if (cancel.requested() || failed_) return -1;
    if (left_ == 0 || ended_ || buffer.empty()) return 0;
    if (in_used_ == in_.size()) {
      try {
        in_ = channel.async_receive(asio::use_future).get();
      } catch (const std::exception&) {
        failed_ = true;
        return -1;
      }
      in_used_ = 0;
      if (in_.empty()) {
        ended_ = true;
        return 0;
      }
    }
    std::size_t n = std::min(buffer.size(), in_.size() - in_used_);
    if (left_ != kUnknown) n = static_cast<std::size_t>(std::min<std::uint64_t>(n, left_));
    std::memcpy(buffer.data(), in_.data() + in_used_, n);
    in_used_ += n;
    if (left_ != kUnknown) left_ -= n;
    return static_cast<std::ptrdiff_t>(n);
  }

  // ---- Reporter (the engine's thread)
  void add_file(const std::string& path, const data::FileStat& stat, std::uint64_t node,
                std::uint64_t fh_info) override {
    files_.push_back({path, file_stat(stat), node, fh_info});
    if (files_.size() >= history_batch_) flush_files();
  }
  void add_dir(const std::string& name, std::uint64_t node, std::uint64_t parent) override {
    dirs_.push_back({name, ndmp4_file_stat{}, node, parent});
    if (dirs_.size() >= history_batch_) flush_dirs();
  }
  void add_node(const data::FileStat& stat, std::uint64_t node, std::uint64_t fh_info) override {
    nodes_.push_back({"", file_stat(stat), node, fh_info});
    if (nodes_.size() >= history_batch_) {
      flush_dirs();  // a node's directory entry goes first
      flush_nodes();
    }
  }
  void log(Level level, const std::string& text) override {
    ndmp4_log_message_post p{};
    switch (level) {
      case Level::kNormal:
        p.log_type = NDMP4_LOG_NORMAL;
        break;
      case Level::kDebug:
        p.log_type = NDMP4_LOG_DEBUG;
        break;
      case Level::kError:
        p.log_type = NDMP4_LOG_ERROR;
        break;
      case Level::kWarning:
        p.log_type = NDMP4_LOG_WARNING;
        break;
    }
    p.message_id = ++message_id_;
    p.entry = build::str(text);
    p.associated_message_valid = NDMP4_NO_ASSOCIATED_MESSAGE;
    post(NDMP4_LOG_MESSAGE, ndmp::xdr::encode(p));
  }
  void file_result(const std::string& name, int errno_value) override {
    ndmp4_log_file_post p{};
    p.name = build::str(name);
    p.recovery_status = recovery_status(errno_value);
    post(NDMP4_LOG_FILE, ndmp::xdr::encode(p));
  }
  void progress(std::uint64_t image_bytes, std::uint64_t file_count) override {
    bytes.store(image_bytes, std::memory_order_relaxed);
    files.store(file_count, std::memory_order_relaxed);
  }

  // Sends what file history is pending (before the operation's end).
  void flush_history() {
    flush_files();
    flush_dirs();
    flush_nodes();
  }

  // A post from the engine's thread, in order with the others.
  void post(std::uint32_t code, ndmp::xdr::Bytes body) {
    asio::post(strand_, [post = post_, code, body = std::move(body)]() mutable {
      post(code, std::move(body));
    });
  }

 private:
  struct Entry {
    std::string name;
    ndmp4_file_stat stat;
    std::uint64_t node, other;  // other: fh_info, or a directory's parent
  };

  bool send(std::vector<std::uint8_t> block) {
    try {
      channel.async_send(error_code{}, std::move(block), asio::use_future).get();
      return true;
    } catch (const std::exception&) {
      return false;  // the channel closed: cancelled or the connection failed
    }
  }

  void flush_files() {
    if (files_.empty()) return;
    std::vector<ndmp4_file_name> names(files_.size());
    std::vector<ndmp4_file_stat> stats(files_.size());
    std::vector<ndmp4_file> list(files_.size());
    for (std::size_t i = 0; i < files_.size(); ++i) {
      names[i].fs_type = NDMP4_FS_UNIX;
      names[i].ndmp4_file_name_u.unix_name = build::str(files_[i].name);
      stats[i] = files_[i].stat;
      list[i].names = {1, &names[i]};
      list[i].stats = {1, &stats[i]};
      list[i].node = files_[i].node;
      list[i].fh_info = files_[i].other;
    }
    ndmp4_fh_add_file_post p{};
    build::array(p.files.files_len, p.files.files_val, list);
    post(NDMP4_FH_ADD_FILE, ndmp::xdr::encode(p));
    files_.clear();
  }
  void flush_dirs() {
    if (dirs_.empty()) return;
    std::vector<ndmp4_file_name> names(dirs_.size());
    std::vector<ndmp4_dir> list(dirs_.size());
    for (std::size_t i = 0; i < dirs_.size(); ++i) {
      names[i].fs_type = NDMP4_FS_UNIX;
      names[i].ndmp4_file_name_u.unix_name = build::str(dirs_[i].name);
      list[i].names = {1, &names[i]};
      list[i].node = dirs_[i].node;
      list[i].parent = dirs_[i].other;
    }
    ndmp4_fh_add_dir_post p{};
    build::array(p.dirs.dirs_len, p.dirs.dirs_val, list);
    post(NDMP4_FH_ADD_DIR, ndmp::xdr::encode(p));
    dirs_.clear();
  }
  void flush_nodes() {
    if (nodes_.empty()) return;
    std::vector<ndmp4_file_stat> stats(nodes_.size());
    std::vector<ndmp4_node> list(nodes_.size());
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      stats[i] = nodes_[i].stat;
      list[i].stats = {1, &stats[i]};
      list[i].node = nodes_[i].node;
      list[i].fh_info = nodes_[i].other;
    }
    ndmp4_fh_add_node_post p{};
    build::array(p.nodes.nodes_len, p.nodes.nodes_val, list);
    post(NDMP4_FH_ADD_NODE, ndmp::xdr::encode(p));
    nodes_.clear();
  }

  asio::any_io_executor strand_;
  std::size_t history_batch_;
  std::function<void(std::uint32_t, ndmp::xdr::Bytes)> post_;
  std::vector<std::uint8_t> out_;  // Sink: gathered small writes
  std::vector<std::uint8_t> in_;   // Source: the block being read
  std::size_t in_used_ = 0;
  std::uint64_t left_ = 0;  // Source: bytes left in the current range
  bool ended_ = false;      // Source: the image ended
  bool failed_ = false;     // Source: the channel closed
  std::vector<Entry> files_, dirs_, nodes_;
  unsigned message_id_ = 0;
};

// ---------------------------------------------------------------------------

DataServer::DataServer(asio::any_io_executor strand, const DataSettings& settings,
                       const mover::AddressPolicy& policy, Hooks hooks)
    : strand_(strand),
      settings_(settings),
      policy_(policy),
      hooks_(std::move(hooks)),
      connected_(strand),
      done_(strand),
      progress_(strand) {
  connected_.expires_at(asio::steady_timer::time_point::max());
  done_.expires_at(asio::steady_timer::time_point::max());
}

DataServer::~DataServer() {
  if (bridge_) {
    bridge_->cancel.request();
    bridge_->shut();
  }
  if (engine_.joinable()) engine_.join();
  if (estimator_.joinable()) estimator_.join();
}

DataServer::State DataServer::state() const {
  State s = state_;
  if (bridge_ && state_.state == NDMP4_DATA_STATE_ACTIVE) {
    s.bytes_processed = bridge_->bytes.load(std::memory_order_relaxed);
    const std::uint64_t total = bridge_->estimate.load();
    if (state_.operation == NDMP4_DATA_OP_BACKUP && total != kUnknown) {
      const std::uint64_t remain = total > s.bytes_processed ? total - s.bytes_processed : 0;
      s.est_bytes_remain = remain;
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
      if (s.bytes_processed > 0 && seconds > 0) {
        const double rate = static_cast<double>(s.bytes_processed) / seconds;
        s.est_time_remain =
            static_cast<std::uint32_t>(std::min(static_cast<double>(remain) / rate, 4294967295.0));
      }
    }
  }
  if (bridge_) {
    s.read_offset = bridge_->read_offset.load();
    s.read_length = bridge_->read_length.load();
  }
  return s;
}

const data::Env* DataServer::backup_env() const { return env_ ? &*env_ : nullptr; }

ndmp4_error DataServer::listen_tcp(const std::vector<asio::ip::address>& addresses,
                                   std::vector<tcp::endpoint>& offered) {
  if (state_.state != NDMP4_DATA_STATE_IDLE) return NDMP4_ILLEGAL_STATE_ERR;
  offered.clear();
  if (mover::open_listeners(strand_, addresses, settings_.link, hooks_.tag() + " DATA_LISTEN",
                            acceptors_, offered) != NDMP4_NO_ERR) {
    close_link();
    return NDMP4_IO_ERR;
  }
  state_.state = NDMP4_DATA_STATE_LISTEN;
  state_.link = State::Link::kTcp;
  state_.endpoint = offered.front();
  state_.listening = offered;
  for (auto& a : acceptors_) asio::co_spawn(strand_, accept_loop(a), asio::detached);
  return NDMP4_NO_ERR;
}

ndmp4_error DataServer::listen_local() {
  if (state_.state != NDMP4_DATA_STATE_IDLE) return NDMP4_ILLEGAL_STATE_ERR;
  state_.state = NDMP4_DATA_STATE_LISTEN;
  state_.link = State::Link::kLocal;
  return NDMP4_NO_ERR;
}

std::unique_ptr<mover::DataStream> DataServer::join_local(ndmp4_mover_mode mover_mode) {
  const bool from_listen = listening_local();
  if (!from_listen && state_.state != NDMP4_DATA_STATE_IDLE) return nullptr;
  pipe_ = std::make_shared<mover::LocalPipe>(strand_, settings_.buffer_bytes);
  const bool backup = mover_mode == NDMP4_MOVER_MODE_READ;
  stream_ = backup ? pipe_->writer_end() : pipe_->reader_end();
  local_mode_ = mover_mode;
  state_.state = NDMP4_DATA_STATE_CONNECTED;
  state_.link = State::Link::kLocal;
  connected_.cancel();
  return backup ? pipe_->reader_end() : pipe_->writer_end();
}

asio::awaitable<ndmp4_error> DataServer::connect_tcp(const std::vector<tcp::endpoint>& peers) {
  if (state_.state != NDMP4_DATA_STATE_IDLE) co_return NDMP4_ILLEGAL_STATE_ERR;
  std::optional<tcp::socket> socket;
  const ndmp4_error e = co_await mover::dial(strand_, peers, policy_, settings_.link,
                                             hooks_.tag() + " DATA_CONNECT", socket);
  if (e != NDMP4_NO_ERR) co_return e;
  if (state_.state != NDMP4_DATA_STATE_IDLE) co_return NDMP4_ILLEGAL_STATE_ERR;
  error_code ec;
  state_.endpoint = socket->remote_endpoint(ec);
  stream_ = std::make_unique<mover::TcpStream>(std::move(*socket));
  state_.state = NDMP4_DATA_STATE_CONNECTED;
  state_.link = State::Link::kTcp;
  co_return NDMP4_NO_ERR;
}

asio::awaitable<void> DataServer::accept_loop(mover::AcceptorPtr acceptor) {
  std::optional<tcp::socket> socket =
      co_await mover::accept_allowed(*acceptor, policy_, settings_.link, hooks_.tag() + " data");
  if (!socket || state_.state != NDMP4_DATA_STATE_LISTEN) co_return;
  error_code ec;
  state_.endpoint = socket->remote_endpoint(ec);
  stream_ = std::make_unique<mover::TcpStream>(std::move(*socket));
  for (auto& a : acceptors_) a->close(ec);
  acceptors_.clear();
  state_.listening.clear();
  state_.state = NDMP4_DATA_STATE_CONNECTED;
  connected_.cancel();
}

asio::awaitable<bool> DataServer::wait_connected() {
  // A DMA that made the mover connect to our LISTEN may start before the
  // connection is accepted here (ndmjob's swap-connect does): give it the
  // connect timeout.
  if (state_.state == NDMP4_DATA_STATE_LISTEN && state_.link == State::Link::kTcp) {
    asio::steady_timer limit(strand_, settings_.link.connect_timeout);
    limit.async_wait([this](error_code ec) {
      if (!ec) connected_.cancel();
    });
    while (state_.state == NDMP4_DATA_STATE_LISTEN &&
           limit.expiry() > std::chrono::steady_clock::now()) {
      connected_.expires_at(asio::steady_timer::time_point::max());
      co_await connected_.async_wait(kToken);
    }
    limit.cancel();
  }
  co_return state_.state == NDMP4_DATA_STATE_CONNECTED;
}

asio::awaitable<ndmp4_error> DataServer::start_backup(data::BackupJob job) {
  if (!co_await wait_connected()) co_return NDMP4_ILLEGAL_STATE_ERR;
  if (local_mode_ && *local_mode_ != NDMP4_MOVER_MODE_READ) {
    spdlog::warn("{} DATA_START_BACKUP: the LOCAL mover is in mode WRITE (a recovery)",
                 hooks_.tag());
    co_return NDMP4_ILLEGAL_STATE_ERR;
  }
  env_.reset();
  spdlog::info("{} backup of {} ({}) started", hooks_.tag(), job.filesystem, job.root.string());
  const std::filesystem::path root = job.root;
  launch(NDMP4_DATA_OP_BACKUP, [job = std::move(job)](Bridge& b) {
    data::Result r = data::run_tar_backup(job, b, b, b.cancel);
    return r;
  });
  // The estimate for DATA_GET_STATE.  A whole filesystem: what statvfs
  // says is used.  A directory: the bytes of its files, by a walk of its
  // own at low priority (metadata only), given up past kEstimateEntries
  // entries so that a tree of many small files does not pay twice for its
  // metadata (DATA_GET_STATE then says the estimate is unsupported).
  estimator_ = std::thread([bridge = bridge_, root] {
    constexpr std::uint64_t kEstimateEntries = 5000;
    struct stat here {
    }, parent{};
    struct statvfs vfs {};
    if (::stat(root.c_str(), &here) == 0 && ::stat((root / "..").c_str(), &parent) == 0 &&
        (here.st_dev != parent.st_dev || here.st_ino == parent.st_ino) &&
        ::statvfs(root.c_str(), &vfs) == 0) {
      bridge->estimate = static_cast<std::uint64_t>(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
      return;
    }
    setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
    std::uint64_t total = 0, entries = 0;
    std::error_code ec;
    auto it = std::filesystem::recursive_directory_iterator(
        root, std::filesystem::directory_options::skip_permission_denied, ec);
    for (; !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (bridge->cancel.requested() || bridge->result_ready || ++entries > kEstimateEntries) {
        return;
      }
      std::error_code sec;
      const auto st = it->symlink_status(sec);
      if (!sec && std::filesystem::is_regular_file(st)) {
        total += it->file_size(sec) + 512;  // and its header
      } else {
        total += 512;
      }
    }
    bridge->estimate = total;
  });
  co_return NDMP4_NO_ERR;
}

asio::awaitable<ndmp4_error> DataServer::start_recover(data::RecoverJob job) {
  if (!co_await wait_connected()) co_return NDMP4_ILLEGAL_STATE_ERR;
  if (local_mode_ && *local_mode_ != NDMP4_MOVER_MODE_WRITE) {
    spdlog::warn("{} DATA_START_RECOVER: the LOCAL mover is in mode READ (a backup)", hooks_.tag());
    co_return NDMP4_ILLEGAL_STATE_ERR;
  }
  const ndmp4_data_operation op =
      job.filehist_only ? NDMP4_DATA_OP_RECOVER_FILEHIST : NDMP4_DATA_OP_RECOVER;
  spdlog::info("{} {} into {} started ({} names{})", hooks_.tag(),
               job.filehist_only ? "file history recovery" : "recovery", job.destination.string(),
               job.names.size(), job.direct ? ", direct access" : "");
  launch(op, [job = std::move(job)](Bridge& b) {
    data::Result r = data::run_tar_recover(job, b, b, b.cancel);
    return r;
  });
  co_return NDMP4_NO_ERR;
}

void DataServer::launch(ndmp4_data_operation op, std::function<data::Result(Bridge&)> body) {
  state_.state = NDMP4_DATA_STATE_ACTIVE;
  state_.operation = op;
  state_.halt_reason = NDMP4_DATA_HALT_NA;
  state_.bytes_processed = 0;
  aborting_ = false;
  started_ = std::chrono::steady_clock::now();
  bridge_ = std::make_shared<Bridge>(strand_, settings_.buffer_bytes, settings_.history_batch,
                                     hooks_.post);
  engine_running_ = pump_running_ = operation_running_ = true;
  const bool backup = op == NDMP4_DATA_OP_BACKUP;
  std::shared_ptr<Bridge> bridge = bridge_;
  engine_ = std::thread([this, bridge, body = std::move(body), backup] {
    data::Result r;
    try {
      r = body(*bridge);
    } catch (const std::exception& e) {
      r.ok = false;
      r.error = e.what();
    }
    if (backup && !bridge->cancel.requested()) bridge->finish_image();
    bridge->flush_history();
    bridge->result = std::move(r);
    bridge->result_ready = true;
    asio::post(strand_, [this] {
      engine_running_ = false;
      done_.cancel();
    });
  });
  asio::co_spawn(strand_, run_operation(bridge, backup), asio::detached);
  asio::co_spawn(strand_, progress_loop(bridge), asio::detached);
}

asio::awaitable<void> DataServer::wait_cleared(const bool& flag) {
  while (flag) co_await done_.async_wait(kToken);
}

// The operation from start to halt: the pump between the engine and the
// connection, the engine's end, the connection's end.
asio::awaitable<void> DataServer::run_operation(std::shared_ptr<Bridge> b, bool backup) {
  if (backup) {
    asio::co_spawn(strand_, backup_pump(b), asio::detached);
  } else {
    asio::co_spawn(strand_, recover_pump(b), asio::detached);
  }
  co_await wait_cleared(engine_running_);
  if (engine_.joinable()) engine_.join();
  if (estimator_.joinable()) estimator_.join();  // it stops when the result is ready
  if (!backup && pump_running_) {
    // The engine needs no more of the image.  The mover learns it from the
    // connection closing; it may still be sending: give it a moment to
    // see the end, then cut the connection.
    if (stream_) stream_->finish();
    asio::steady_timer grace(strand_, std::chrono::seconds(2));
    grace.async_wait([this](error_code ec) {
      if (!ec) done_.cancel();
    });
    while (pump_running_ && grace.expiry() > std::chrono::steady_clock::now()) {
      co_await done_.async_wait(kToken);
    }
    grace.cancel();
    if (pump_running_ && stream_) stream_->close();
    b->shut();
  }
  co_await wait_cleared(pump_running_);
  finished(b);
  operation_running_ = false;
  done_.cancel();
}

// Image blocks from the engine to the connection, until the end marker.
asio::awaitable<void> DataServer::backup_pump(std::shared_ptr<Bridge> b) {
  for (;;) {
    auto [ec, block] = co_await b->channel.async_receive(kToken);
    if (ec || block.empty()) break;
    error_code wec;
    if (pipe_) {
      wec = co_await pipe_->push(std::move(block));
    } else if (stream_) {
      const std::span<const std::uint8_t> one(block);
      wec = co_await stream_->write(std::span(&one, 1));
    } else {
      wec = asio::error::not_connected;
    }
    if (wec) {
      if (!b->cancel.requested()) {
        spdlog::warn("{} backup: the data connection failed: {}", hooks_.tag(), wec.message());
        b->connection_failed = true;
      }
      b->cancel.request();
      b->shut();
      break;
    }
  }
  if (stream_) stream_->finish();
  pump_running_ = false;
  done_.cancel();
}

// Image bytes from the connection to the engine.
asio::awaitable<void> DataServer::recover_pump(std::shared_ptr<Bridge> b) {
  std::vector<std::uint8_t> buffer;
  while (stream_) {
    buffer.resize(kBlock);
    auto [ec, n] = co_await stream_->read_some(buffer);
    if (n > 0) {
      buffer.resize(n);
      auto [sec] = co_await b->channel.async_send(error_code{}, std::move(buffer), kToken);
      if (sec) break;
      buffer = {};
    }
    if (ec == asio::error::eof) {
      co_await b->channel.async_send(error_code{}, std::vector<std::uint8_t>{}, kToken);
      break;
    }
    if (ec) {
      if (engine_running_ && !b->cancel.requested()) {
        spdlog::warn("{} recovery: the data connection failed: {}", hooks_.tag(), ec.message());
        b->connection_failed = true;
      }
      b->shut();
      break;
    }
  }
  pump_running_ = false;
  done_.cancel();
}

asio::awaitable<void> DataServer::progress_loop(std::shared_ptr<Bridge> b) {
  const auto started = std::chrono::steady_clock::now();
  for (;;) {
    // halt() cancels the wait: nothing lingers after the operation.
    progress_.expires_after(settings_.progress_interval);
    auto [ec] = co_await progress_.async_wait(kToken);
    if (ec || bridge_ != b || state_.state != NDMP4_DATA_STATE_ACTIVE) co_return;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const std::uint64_t bytes = b->bytes.load();
    const double rate = seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0;
    b->log(data::Reporter::Level::kNormal,
           fmt::format("{}: {} MB, {} files, {:.1f} MB/s",
                       state_.operation == NDMP4_DATA_OP_BACKUP ? "backup" : "recovery",
                       bytes / 1000000, b->files.load(), rate));
  }
}

void DataServer::finished(const std::shared_ptr<Bridge>& b) {
  if (b != bridge_ || state_.state != NDMP4_DATA_STATE_ACTIVE) return;
  const data::Result& r = b->result;
  if (state_.operation == NDMP4_DATA_OP_BACKUP) env_ = r.env;
  ndmp4_data_halt_reason reason = NDMP4_DATA_HALT_SUCCESSFUL;
  if (aborting_) {
    reason = NDMP4_DATA_HALT_ABORTED;
  } else if (b->connection_failed) {
    reason = NDMP4_DATA_HALT_CONNECT_ERROR;  // the engine was cancelled because of it
  } else if (r.cancelled) {
    reason = NDMP4_DATA_HALT_ABORTED;
  } else if (!r.ok) {
    reason = NDMP4_DATA_HALT_INTERNAL_ERROR;
  }
  spdlog::info("{} data operation ended: {} ({} bytes, {} files){}{}", hooks_.tag(),
               reason == NDMP4_DATA_HALT_SUCCESSFUL ? "successful"
               : reason == NDMP4_DATA_HALT_ABORTED  ? "aborted"
                                                    : "failed",
               r.image_bytes, r.files, r.error.empty() ? "" : ": ", r.error);
  halt(reason);
  b->bytes = std::max<std::uint64_t>(b->bytes.load(), r.image_bytes);
  state_.bytes_processed = b->bytes.load();
}

void DataServer::halt(ndmp4_data_halt_reason reason) {
  if (bridge_) state_.bytes_processed = bridge_->bytes.load();
  state_.state = NDMP4_DATA_STATE_HALTED;
  state_.halt_reason = reason;
  progress_.cancel();
  close_link();
  ndmp4_notify_data_halted_post p{};
  p.reason = reason;
  hooks_.post(NDMP4_NOTIFY_DATA_HALTED, ndmp::xdr::encode(p));
}

void DataServer::close_link() {
  error_code ec;
  for (auto& a : acceptors_) a->close(ec);
  acceptors_.clear();
  state_.listening.clear();
  // Dropping our end finishes it: a LOCAL mover reads the end of the
  // image after what was written, a TCP peer after what was sent.
  stream_.reset();
  pipe_.reset();
  connected_.cancel();
}

asio::awaitable<ndmp4_error> DataServer::abort() {
  if (state_.state == NDMP4_DATA_STATE_IDLE) co_return NDMP4_ILLEGAL_STATE_ERR;
  if (state_.state == NDMP4_DATA_STATE_HALTED) co_return NDMP4_NO_ERR;
  if (state_.state == NDMP4_DATA_STATE_ACTIVE && bridge_) {
    aborting_ = true;
    bridge_->cancel.request();
    bridge_->shut();
    if (stream_) stream_->close();
    co_await wait_cleared(operation_running_);  // it halts ABORTED
    co_return NDMP4_NO_ERR;
  }
  spdlog::info("{} data connection aborted", hooks_.tag());
  halt(NDMP4_DATA_HALT_ABORTED);
  co_return NDMP4_NO_ERR;
}

ndmp4_error DataServer::stop() {
  if (state_.state != NDMP4_DATA_STATE_HALTED) return NDMP4_ILLEGAL_STATE_ERR;
  if (operation_running_) return NDMP4_ILLEGAL_STATE_ERR;
  close_link();
  bridge_.reset();
  env_.reset();
  local_mode_.reset();
  state_ = State{};
  return NDMP4_NO_ERR;
}

asio::awaitable<void> DataServer::shutdown() {
  if (has_job()) co_await abort();
  co_await wait_cleared(operation_running_);
  close_link();
}

}  // namespace ndmpd
