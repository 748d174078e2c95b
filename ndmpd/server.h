// The server: one listener per configured address, the set of live
// sessions with its limit, and orderly shutdown.
//
// Thread-safety: construct and call run() from the main thread; stop() may
// be called from any thread (the signal handler does).
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ndmpd/dispatch.h"
#include "ndmpd/server_context.h"

namespace ndmpd {

class Session;

class Server {
 public:
  Server(boost::asio::io_context& io, ServerContext& context);
  ~Server();

  // Opens every listener; false (with the reason logged) if one fails.
  bool open(const std::vector<std::string>& addresses);

  // The addresses actually bound ("127.0.0.1:40123"), in order.
  std::vector<std::string> bound_addresses() const;

  // Starts accepting.  Call once, after open().
  void start();

  // Stops accepting and shuts every session down; when the last one has
  // closed (or the grace period is over) the io_context is stopped.
  void stop();

  std::size_t session_count() const;

 private:
  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor);
  boost::asio::awaitable<void> refuse(boost::asio::ip::tcp::socket socket, std::string why);
  void on_session_closed(Session* s);
  void finish_if_done();

  boost::asio::io_context& io_;
  ServerContext& context_;
  std::shared_ptr<const Dispatcher> dispatcher_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  boost::asio::steady_timer grace_timer_;

  mutable std::mutex mutex_;
  std::map<Session*, std::shared_ptr<Session>> sessions_;
  std::uint64_t next_id_ = 1;
  std::atomic<bool> stopping_{false};
};

}  // namespace ndmpd
