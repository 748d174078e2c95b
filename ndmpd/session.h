// One NDMP connection: a reader that assembles records and dispatches each
// request in turn, a writer that drains the outbound queue (replies and
// posts, in the order they were handed over), and a watchdog for the login
// and idle timeouts and for shutdown.  All three run on the session's
// strand, which is the executor of its socket.
//
// Thread-safety: start() once, from any thread.  shutdown() and
// stop_now() may be called from any thread.  Everything else runs on the
// strand.
#pragma once

#include <array>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "ndmpd/dispatch.h"
#include "ndmpd/outbox.h"
#include "xdr/header.h"

namespace ndmpd {

class Session : public std::enable_shared_from_this<Session>, private Outbox {
 public:
  using Socket = boost::asio::ip::tcp::socket;
  // Called on the session's strand when the session has closed its socket.
  using OnClosed = std::function<void(Session*)>;

  Session(Socket socket, ServerContext& server, std::shared_ptr<const Dispatcher> dispatcher,
          std::uint64_t id, OnClosed on_closed);
  ~Session() override;

  void start();

  // Server shutdown: let the current request finish, send
  // NOTIFY_CONNECTION_STATUS(SHUTDOWN), close.
  void shutdown();

  // Close at once (shutdown grace exceeded).
  void stop_now();

  std::uint64_t id() const { return context_.id; }

 private:
  struct Outgoing {
    std::array<std::uint8_t, ndmp::xdr::kFragmentHeaderSize + ndmp::xdr::kHeaderSize> head;
    ndmp::xdr::Bytes body;
    std::size_t sent = 0;  // bytes of head + body already written
    std::size_t size() const { return head.size() + body.size(); }
  };
  enum class Phase { kRunning, kDraining, kClosed };

  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> reader();
  boost::asio::awaitable<void> writer();
  boost::asio::awaitable<void> watchdog();
  boost::asio::awaitable<void> drain(std::chrono::milliseconds limit);
  void close();

  // Outbox
  void reply(std::uint32_t code, std::uint32_t reply_sequence, ndmp4_error header_error,
             ndmp::xdr::Bytes body) override;
  void post(std::uint32_t code, ndmp::xdr::Bytes body) override;
  void enqueue(ndmp4_header_message_type type, std::uint32_t code, std::uint32_t reply_sequence,
               ndmp4_error error, ndmp::xdr::Bytes body);
  // Writes what it can of `m` at once, without blocking; true if all of it.
  bool try_write_now(Outgoing& m);

  Socket socket_;
  std::shared_ptr<const Dispatcher> dispatcher_;
  SessionContext context_;
  OnClosed on_closed_;

  std::deque<Outgoing> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint32_t next_sequence_ = 1;
  boost::asio::steady_timer writer_wake_;  // cancelled when there is work
  boost::asio::steady_timer writer_done_;  // cancelled when the writer ends
  boost::asio::steady_timer space_;        // cancelled when the queue shrinks
  boost::asio::steady_timer watchdog_timer_;
  Phase phase_ = Phase::kRunning;
  bool writer_running_ = false;
  bool writer_idle_ = false;    // the writer waits for work: nothing is being written
  bool busy_ = false;           // a request is being handled
  bool shutting_down_ = false;  // server shutdown requested
  std::chrono::steady_clock::time_point last_activity_;
};

}  // namespace ndmpd
