// The NDMP mover (draft-skardal-ndmpv4-04 2.3.5, 3.6): moves a backup
// stream between a data connection and the tape drive, record by record,
// inside the window the DMA sets, and pauses whenever the DMA must act.
//
// NDMP names the mover's modes from the data connection's side: mode READ
// reads the connection and writes the tape (a backup), mode WRITE reads
// the tape and writes the connection (a recovery).
//
// State machine (Figure 8): IDLE -> LISTEN (listen) or ACTIVE (connect);
// LISTEN -> ACTIVE when the peer connects; ACTIVE <-> PAUSED (EOM, EOF,
// SEEK, EOW / continue); any but IDLE -> HALTED (abort, close, the peer
// closing, a media or connection error); HALTED -> IDLE (stop).  Every
// pause and halt is reported through Hooks (the session posts
// NOTIFY_MOVER_PAUSED / NOTIFY_MOVER_HALTED), after the state changed, so
// that a DMA polling get_state() sees the same story.
//
// The engine, while ACTIVE:
//  - mode READ: a reader fills blocks of whole records from the connection
//    (one read may fill many records; a bounded queue of blocks gives
//    backpressure), and the tape writer writes each block's records in one
//    trip to the worker pool, so that the connection and the tape overlap.
//    Before a record that would end past the window: pause EOW.  A record
//    that meets early warning is written and counted, then pause EOM; one
//    the tape refuses for lack of room (VOLUME OVERFLOW) is kept and
//    written after continue, on whatever cartridge is loaded then.  A hard
//    error halts MEDIA_ERROR.  At the end of the stream the last partial
//    record is padded with zeros (bytes_moved excludes the pad), written,
//    and the mover halts CONNECT_CLOSED.
//  - mode WRITE: MOVER_READ(offset, length) asks for stream bytes.  Outside
//    the window: pause SEEK (seek_position = the byte wanted).  Inside, the
//    mover positions the tape (forward or back over records, from
//    record_num) and reads batches of records, the next batch while the
//    last one is sent.  A filemark pauses EOF (the head before it), blank
//    tape EOM, a media error halts MEDIA_ERROR.  The peer closing the
//    connection halts CONNECT_CLOSED.
//
// All members run on the session's strand; tape I/O runs on the worker
// pool, one operation at a time, and never while the mover is not ACTIVE:
// abort(), close() and shutdown() wait for it, so when they return the
// DMA may use the tape.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mover/address_policy.h"
#include "mover/data_link.h"
#include "mover/data_stream.h"
#include "tape/tape_head.h"
#include "xdr/ndmp4_wire.h"

namespace mover {

constexpr std::uint64_t kInfinity = ~0ull;

// The link settings (listen ports, socket buffers, connect timeout) and
// the engine's.
struct Settings : LinkSettings {
  std::uint32_t max_record_size = 1u << 20;
  std::size_t buffer_bytes = 8u << 20;  // records queued between connection and tape
  std::size_t batch_bytes = 1u << 20;   // records per trip to the worker pool
};

// What the mover needs from its session.
struct Hooks {
  // The tape drive the session has open now (nullptr: none).
  std::function<tape::TapeHead*()> tape;
  // Records went to the tape: a filemark is owed before the next motion.
  std::function<void()> wrote;
  // The tape met early warning under the mover (it reported EOM).
  std::function<void()> early_warning;
  std::function<void(ndmp4_mover_pause_reason, std::uint64_t seek_position)> paused;
  std::function<void(ndmp4_mover_halt_reason)> halted;
  // For log lines: "[s3 127.0.0.1:5555 ndmp]".
  std::function<std::string()> tag;
};

// Where the data connection is, for MOVER_GET_STATE.
struct Connection {
  enum class Kind { kNone, kLocal, kTcp } kind = Kind::kNone;
  boost::asio::ip::tcp::endpoint endpoint;  // kTcp: the peer, or in LISTEN our end
};

struct State {
  ndmp4_mover_mode mode = NDMP4_MOVER_MODE_NOACTION;
  ndmp4_mover_state state = NDMP4_MOVER_STATE_IDLE;
  ndmp4_mover_pause_reason pause_reason = NDMP4_MOVER_PAUSE_NA;
  ndmp4_mover_halt_reason halt_reason = NDMP4_MOVER_HALT_NA;
  std::uint32_t record_size = 10240;  // ndmjob's default (20 x 512), for test-mover
  std::uint64_t record_num = 0;
  std::uint64_t bytes_moved = 0;
  std::uint64_t seek_position = 0;
  std::uint64_t bytes_left_to_read = 0;
  std::uint64_t window_offset = 0;
  std::uint64_t window_length = 0;
  Connection connection;
  std::vector<boost::asio::ip::tcp::endpoint> listening;  // LISTEN: what was offered
};

class Mover {
 public:
  Mover(boost::asio::any_io_executor strand, boost::asio::thread_pool& workers,
        const Settings& settings, const AddressPolicy& policy, Hooks hooks);
  ~Mover();
  Mover(const Mover&) = delete;
  Mover& operator=(const Mover&) = delete;

  const State& state() const { return st_; }
  // The mover has the tape (LISTEN or ACTIVE): the DMA may not touch it.
  bool owns_tape() const {
    return st_.state == NDMP4_MOVER_STATE_LISTEN || st_.state == NDMP4_MOVER_STATE_ACTIVE;
  }
  // The head's position as the mover last left it (for TAPE_GET_STATE
  // while the mover owns the tape).
  const tape::HeadPosition& last_position() const { return last_position_; }

  // Each returns the NDMP error of the request; the caller has checked
  // what concerns the tape service (open, writable).
  ndmp4_error set_record_size(std::uint32_t length);
  ndmp4_error set_window(std::uint64_t offset, std::uint64_t length);
  // PRECONDITION if the record size and window do not allow `mode`.
  ndmp4_error check_ready(ndmp4_mover_mode mode) const;
  // TCP: listens on every address of `addresses` (each its own port) and
  // fills `offered`.  IO_ERR if none could be opened.
  ndmp4_error listen_tcp(ndmp4_mover_mode mode,
                         const std::vector<boost::asio::ip::address>& addresses,
                         std::vector<boost::asio::ip::tcp::endpoint>& offered);
  // LOCAL: waits for the data server of this session to attach().
  ndmp4_error listen_local(ndmp4_mover_mode mode);
  // Dials each allowed address in turn.  ILLEGAL_ARGS if the policy allows
  // none of them, CONNECT_ERR if none answers.
  boost::asio::awaitable<ndmp4_error> connect_tcp(
      ndmp4_mover_mode mode, const std::vector<boost::asio::ip::tcp::endpoint>& peers);
  // LOCAL: the data server of this session is the other end.
  ndmp4_error connect_local(ndmp4_mover_mode mode, std::unique_ptr<DataStream> stream);
  // LISTEN(LOCAL) -> ACTIVE: the data server connects its end.
  bool attach_local(std::unique_ptr<DataStream> stream);
  ndmp4_error read(std::uint64_t offset, std::uint64_t length);
  ndmp4_error resume();  // MOVER_CONTINUE, once the caller checked the tape
  boost::asio::awaitable<ndmp4_error> abort();
  boost::asio::awaitable<ndmp4_error> close();
  boost::asio::awaitable<ndmp4_error> stop();
  // The session ends: halt (ABORTED) whatever runs, and wait for it.
  boost::asio::awaitable<void> shutdown();

 private:
  struct Block;
  struct ReadBatch;

  void become_active(std::unique_ptr<DataStream> stream, Connection c);
  void pause(ndmp4_mover_pause_reason reason, std::uint64_t seek_position);
  void halt(ndmp4_mover_halt_reason reason);
  void close_connections(bool graceful = false);
  boost::asio::awaitable<void> wait_for_engine();
  boost::asio::awaitable<void> wait(boost::asio::steady_timer& t);
  // Waits until ACTIVE again (true) or halted (false).
  boost::asio::awaitable<bool> wait_resumed();

  boost::asio::awaitable<void> accept_loop(std::shared_ptr<boost::asio::ip::tcp::acceptor> a);
  boost::asio::awaitable<void> run_engine();
  boost::asio::awaitable<void> backup_reader();
  boost::asio::awaitable<void> backup_writer();
  boost::asio::awaitable<void> recover_pump();
  boost::asio::awaitable<void> recover_watch();

  std::uint64_t window_end() const;

  boost::asio::any_io_executor strand_;
  boost::asio::thread_pool& workers_;
  Settings settings_;
  const AddressPolicy& policy_;
  Hooks hooks_;
  State st_;
  tape::HeadPosition last_position_;
  std::uint64_t read_at_ = 0;            // mode WRITE: the next stream byte to send
  std::uint64_t window_generation_ = 0;  // counts SET_WINDOWs (read-ahead is per window)

  std::vector<std::shared_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::unique_ptr<DataStream> stream_;
  bool engine_running_ = false;
  int tasks_ = 0;  // engine coroutines still running

  // mode READ: blocks filled by the reader, waiting for the tape.
  std::deque<std::unique_ptr<Block>> filled_;
  std::vector<std::unique_ptr<Block>> spare_;
  std::size_t queued_bytes_ = 0;
  bool stream_ended_ = false;  // the reader met the end of the stream
  std::optional<ndmp4_mover_halt_reason> stream_failed_;

  boost::asio::steady_timer wake_;         // state changes, requests, data
  boost::asio::steady_timer space_;        // the reader may go on
  boost::asio::steady_timer engine_done_;  // the last engine coroutine ended
};

}  // namespace mover
