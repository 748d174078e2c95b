#include "ndmpd/server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "ndmpd/session.h"
#include "xdr/header.h"

namespace ndmpd {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
constexpr auto kToken = asio::as_tuple(asio::use_awaitable);

std::string text_of(const tcp::endpoint& ep) {
  const auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}
}  // namespace

Server::Server(asio::io_context& io, ServerContext& context)
    : io_(io), context_(context), dispatcher_(Dispatcher::create()), grace_timer_(io) {}

Server::~Server() = default;

bool Server::open(const std::vector<std::string>& addresses) {
  for (const std::string& text : addresses) {
    std::string host;
    std::uint16_t port = 0;
    if (!parse_listen_address(text, host, port)) {
      spdlog::error("cannot listen on '{}': not HOST:PORT", text);
      return false;
    }
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) {
      spdlog::error("cannot listen on '{}': {} is not an IP address", text, host);
      return false;
    }
    const tcp::endpoint ep(address, port);
    auto acceptor = std::make_unique<tcp::acceptor>(io_);
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && address.is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      spdlog::error("cannot listen on {}: {}", text, ec.message());
      return false;
    }
    spdlog::info("listening on {}", text_of(acceptor->local_endpoint()));
    acceptors_.push_back(std::move(acceptor));
  }
  return true;
}

std::vector<std::string> Server::bound_addresses() const {
  std::vector<std::string> out;
  for (const auto& a : acceptors_) {
    boost::system::error_code ec;
    const auto ep = a->local_endpoint(ec);
    if (!ec) out.push_back(text_of(ep));
  }
  return out;
}

void Server::start() {
  for (auto& a : acceptors_) {
    asio::co_spawn(io_, accept_loop(*a), asio::detached);
  }
}

asio::awaitable<void> Server::accept_loop(tcp::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io_), kToken);
    if (stopping_) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      // Out of descriptors or a transient failure: say so, pause, go on.
      spdlog::warn("accept failed: {}", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(kToken);
      continue;
    }
    std::shared_ptr<Session> session;
    {
      std::lock_guard lock(mutex_);
      if (sessions_.size() < context_.config.max_sessions) {
        session = std::make_shared<Session>(std::move(socket), context_, dispatcher_, next_id_++,
                                            [this](Session* s) { on_session_closed(s); });
        sessions_.emplace(session.get(), session);
      }
    }
    if (session) {
      session->start();
    } else {
      const std::string why =
          "session limit reached (" + std::to_string(context_.config.max_sessions) + " sessions)";
      asio::co_spawn(socket.get_executor(), refuse(std::move(socket), why), asio::detached);
    }
  }
}

// NOTIFY_CONNECTION_STATUS(REFUSED) with the reason, then close.
asio::awaitable<void> Server::refuse(tcp::socket socket, std::string why) {
  boost::system::error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  spdlog::warn("refusing {}: {}", ec ? std::string("?") : text_of(peer), why);
  ndmp4_notify_connection_status_post post{};
  post.reason = NDMP4_REFUSED;
  post.protocol_version = NDMP4_VER;
  post.text_reason = why.data();
  ndmp4_header h{};
  h.sequence = 1;
  h.time_stamp = static_cast<std::uint32_t>(std::time(nullptr));
  h.message_type = NDMP4_MESSAGE_REQUEST;
  h.message_code = NDMP4_NOTIFY_CONNECTION_STATUS;
  ndmp::xdr::Bytes out;
  if (ndmp::xdr::encode_message(h, post, out)) {
    asio::steady_timer limit(socket.get_executor(), std::chrono::seconds(5));
    limit.async_wait([&socket](boost::system::error_code e) {
      if (!e) socket.close();
    });
    co_await asio::async_write(socket, asio::buffer(out), kToken);
    limit.cancel();
  }
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

void Server::on_session_closed(Session* s) {
  std::shared_ptr<Session> keep;  // released outside the lock
  {
    std::lock_guard lock(mutex_);
    const auto it = sessions_.find(s);
    if (it != sessions_.end()) {
      keep = std::move(it->second);
      sessions_.erase(it);
    }
  }
  if (stopping_) asio::post(io_, [this] { finish_if_done(); });
}

std::size_t Server::session_count() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

void Server::stop() {
  asio::post(io_, [this] {
    if (stopping_.exchange(true)) return;
    spdlog::info("shutting down: no new sessions; {} open", session_count());
    for (auto& a : acceptors_) {
      boost::system::error_code ec;
      a->close(ec);
    }
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard lock(mutex_);
      for (auto& [p, s] : sessions_) live.push_back(s);
    }
    for (auto& s : live) s->shutdown();
    grace_timer_.expires_after(context_.config.shutdown_grace);
    grace_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      std::vector<std::shared_ptr<Session>> left;
      {
        std::lock_guard lock(mutex_);
        for (auto& [p, s] : sessions_) left.push_back(s);
      }
      if (!left.empty()) {
        spdlog::warn("shutdown grace over: closing {} sessions", left.size());
      }
      for (auto& s : left) s->stop_now();
    });
    finish_if_done();
  });
}

void Server::finish_if_done() {
  if (session_count() != 0) return;
  grace_timer_.cancel();
  spdlog::info("all sessions closed");
  io_.stop();
}

}  // namespace ndmpd
