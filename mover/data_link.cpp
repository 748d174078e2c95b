#include "mover/data_link.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "mover/data_stream.h"

namespace mover {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using asio::ip::tcp;
using boost::system::error_code;

namespace {
constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
}  // namespace

ndmp4_error open_listeners(asio::any_io_executor ex,
                           const std::vector<asio::ip::address>& addresses,
                           const LinkSettings& settings, const std::string& who,
                           std::vector<AcceptorPtr>& acceptors,
                           std::vector<tcp::endpoint>& offered) {
  const std::size_t before = offered.size();
  const bool ranged = settings.port_low != 0 && settings.port_high >= settings.port_low;
  for (const asio::ip::address& a : addresses) {
    auto acceptor = std::make_shared<tcp::acceptor>(ex);
    error_code ec;
    for (unsigned port = ranged ? settings.port_low : 0;; ++port) {
      ec.clear();
      if (acceptor->is_open()) acceptor->close(ec);
      acceptor->open(a.is_v4() ? tcp::v4() : tcp::v6(), ec);
      if (!ec && a.is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
      if (!ec) acceptor->bind(tcp::endpoint(a, static_cast<std::uint16_t>(port)), ec);
      if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
      if (!ec || !ranged || port >= settings.port_high) break;
    }
    if (ec) {
      spdlog::warn("{}: cannot listen on {}: {}", who, a.to_string(), ec.message());
      continue;
    }
    offered.push_back(acceptor->local_endpoint(ec));
    acceptors.push_back(std::move(acceptor));
  }
  return offered.size() > before ? NDMP4_NO_ERR : NDMP4_IO_ERR;
}

asio::awaitable<std::optional<tcp::socket>> accept_allowed(tcp::acceptor& acceptor,
                                                           const AddressPolicy& policy,
                                                           const LinkSettings& settings,
                                                           const std::string& who) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kToken);
    if (ec || !acceptor.is_open()) co_return std::nullopt;
    error_code pec;
    const tcp::endpoint peer = socket.remote_endpoint(pec);
    if (pec || !policy.allows(peer.address())) {
      spdlog::warn("{}: refused a data connection from {} (allowed: {})", who,
                   pec ? "?" : peer.address().to_string(), policy.describe());
      continue;
    }
    tune_data_socket(socket, settings.socket_buffer_bytes);
    spdlog::info("{}: data connection from {}:{}", who, peer.address().to_string(), peer.port());
    co_return std::move(socket);
  }
}

asio::awaitable<ndmp4_error> dial(asio::any_io_executor ex, const std::vector<tcp::endpoint>& peers,
                                  const AddressPolicy& policy, const LinkSettings& settings,
                                  const std::string& who, std::optional<tcp::socket>& out) {
  std::vector<tcp::endpoint> allowed;
  for (const tcp::endpoint& p : peers) {
    if (policy.allows(p.address()) && p.port() != 0) {
      allowed.push_back(p);
    } else {
      spdlog::warn("{}: {}:{} is not an allowed data connection address (allowed: {})", who,
                   p.address().to_string(), p.port(), policy.describe());
    }
  }
  if (allowed.empty()) co_return NDMP4_ILLEGAL_ARGS_ERR;
  for (const tcp::endpoint& p : allowed) {
    tcp::socket socket(ex);
    asio::steady_timer limit(ex, settings.connect_timeout);
    auto result = co_await (socket.async_connect(p, kToken) || limit.async_wait(kToken));
    if (result.index() == 0 && !std::get<0>(std::get<0>(result))) {
      tune_data_socket(socket, settings.socket_buffer_bytes);
      spdlog::info("{}: connected to {}:{}", who, p.address().to_string(), p.port());
      out.emplace(std::move(socket));
      co_return NDMP4_NO_ERR;
    }
    spdlog::warn("{}: {}:{}: {}", who, p.address().to_string(), p.port(),
                 result.index() == 0 ? std::get<0>(std::get<0>(result)).message() : "timed out");
  }
  co_return NDMP4_CONNECT_ERR;
}

}  // namespace mover
