// The NDMP data server of one session (draft-skardal-ndmpv4-04 2.3.4, 3.5):
// the state machine, its data connection, and the formatter (a butype
// engine of ndmpd/data/) that makes or reads the image.
//
// State machine (Figure 6): IDLE -> LISTEN (listen) or CONNECTED
// (connect); LISTEN -> CONNECTED when the peer connects; CONNECTED ->
// ACTIVE (start backup / recover); ACTIVE -> HALTED when the operation
// ends (successful, aborted, an internal or connection error); LISTEN,
// CONNECTED, ACTIVE -> HALTED on abort; HALTED -> IDLE (stop).  Every halt
// posts NOTIFY_DATA_HALTED, after the state changed.
//
// The engine runs on a thread of its own (it is blocking code: a directory
// walk, file reads, libarchive); blocks of the image pass between it and
// the strand through a bounded channel, so the data connection and the
// filesystem overlap and memory stays bounded.  File history, LOG_* posts
// and NOTIFY_DATA_READ are encoded on the engine's thread and handed to
// the strand in order.
//
// All members run on the session's strand.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mover/address_policy.h"
#include "mover/data_link.h"
#include "mover/data_stream.h"
#include "ndmpd/data/engine.h"
#include "xdr/codec.h"
#include "xdr/ndmp4_wire.h"

namespace ndmpd {

struct DataSettings {
  mover::LinkSettings link;
  std::size_t buffer_bytes = 8u << 20;         // image bytes between the engine and the connection
  std::chrono::seconds progress_interval{30};  // LOG_MESSAGE with bytes, files and rate
  std::size_t history_batch = 512;             // file history entries per FH post
};

class DataServer {
 public:
  // Where the data server's posts go (the session's outbox), and its tag
  // for log lines.
  struct Hooks {
    std::function<void(std::uint32_t code, ndmp::xdr::Bytes body)> post;
    std::function<std::string()> tag;
  };

  struct State {
    ndmp4_data_operation operation = NDMP4_DATA_OP_NOACTION;
    ndmp4_data_state state = NDMP4_DATA_STATE_IDLE;
    ndmp4_data_halt_reason halt_reason = NDMP4_DATA_HALT_NA;
    std::uint64_t bytes_processed = 0;
    std::optional<std::uint64_t> est_bytes_remain;
    std::optional<std::uint32_t> est_time_remain;  // seconds
    enum class Link { kNone, kLocal, kTcp } link = Link::kNone;
    boost::asio::ip::tcp::endpoint endpoint;  // kTcp: the peer, or in LISTEN our end
    std::vector<boost::asio::ip::tcp::endpoint> listening;
    std::uint64_t read_offset = 0, read_length = 0;  // the last NOTIFY_DATA_READ
  };

  DataServer(boost::asio::any_io_executor strand, const DataSettings& settings,
             const mover::AddressPolicy& policy, Hooks hooks);
  ~DataServer();  // REQUIRES: shutdown() awaited if an operation ran
  DataServer(const DataServer&) = delete;
  DataServer& operator=(const DataServer&) = delete;

  State state() const;
  // The environment DATA_GET_ENV returns (after a backup started), or
  // nullptr.
  const data::Env* backup_env() const;
  bool has_job() const {
    return state_.state != NDMP4_DATA_STATE_IDLE && state_.state != NDMP4_DATA_STATE_HALTED;
  }

  ndmp4_error listen_tcp(const std::vector<boost::asio::ip::address>& addresses,
                         std::vector<boost::asio::ip::tcp::endpoint>& offered);
  ndmp4_error listen_local();
  bool listening_local() const {
    return state_.state == NDMP4_DATA_STATE_LISTEN && state_.link == State::Link::kLocal;
  }
  // LOCAL: the mover of this session is the other end, in `mover_mode`
  // (READ: a backup, the data server writes).  From LISTEN (the mover
  // connects) or IDLE (the data server connects to a listening mover).
  // Returns the mover's end of the pipe, or nullptr in the wrong state.
  std::unique_ptr<mover::DataStream> join_local(ndmp4_mover_mode mover_mode);
  boost::asio::awaitable<ndmp4_error> connect_tcp(
      const std::vector<boost::asio::ip::tcp::endpoint>& peers);

  // REQUIRES: the job checked (root inside an export, names resolved).
  boost::asio::awaitable<ndmp4_error> start_backup(data::BackupJob job);
  boost::asio::awaitable<ndmp4_error> start_recover(data::RecoverJob job);
  boost::asio::awaitable<ndmp4_error> abort();
  ndmp4_error stop();
  // The session ends: abort whatever runs, and wait for it.
  boost::asio::awaitable<void> shutdown();

 private:
  class Bridge;

  boost::asio::awaitable<bool> wait_connected();
  void halt(ndmp4_data_halt_reason reason);
  void close_link();
  boost::asio::awaitable<void> accept_loop(mover::AcceptorPtr acceptor);
  void launch(ndmp4_data_operation op, std::function<data::Result(Bridge&)> body);
  boost::asio::awaitable<void> run_operation(std::shared_ptr<Bridge> bridge, bool backup);
  boost::asio::awaitable<void> backup_pump(std::shared_ptr<Bridge> bridge);
  boost::asio::awaitable<void> recover_pump(std::shared_ptr<Bridge> bridge);
  boost::asio::awaitable<void> progress_loop(std::shared_ptr<Bridge> bridge);
  // Waits on done_ until `flag` is false.
  boost::asio::awaitable<void> wait_cleared(const bool& flag);
  void finished(const std::shared_ptr<Bridge>& bridge);

  boost::asio::any_io_executor strand_;
  DataSettings settings_;
  const mover::AddressPolicy& policy_;
  Hooks hooks_;
  State state_;
  std::optional<ndmp4_mover_mode> local_mode_;  // LOCAL: the mover's mode
  std::vector<mover::AcceptorPtr> acceptors_;
  std::unique_ptr<mover::DataStream> stream_;
  std::shared_ptr<mover::LocalPipe> pipe_;  // LOCAL
  std::shared_ptr<Bridge> bridge_;          // the running operation
  std::thread engine_;
  std::thread estimator_;  // a backup's size, for DATA_GET_STATE
  std::chrono::steady_clock::time_point started_;
  bool engine_running_ = false;     // the engine's thread runs
  bool pump_running_ = false;       // blocks move between the channel and the connection
  bool operation_running_ = false;  // from start to the halt (run_operation)
  bool aborting_ = false;
  std::optional<data::Env> env_;
  boost::asio::steady_timer connected_;  // LISTEN -> CONNECTED
  boost::asio::steady_timer done_;       // the engine, a pump or an operation ended
  boost::asio::steady_timer progress_;   // the next progress LOG_MESSAGE
};

}  // namespace ndmpd
