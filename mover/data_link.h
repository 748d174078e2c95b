// Making data connections: listening for one and dialing one, under the
// address policy.  Shared by the mover (MOVER_LISTEN / MOVER_CONNECT) and
// the data server (DATA_LISTEN / DATA_CONNECT), which speak the same NDMP
// addresses and follow the same rules.
//
// Everything runs on the caller's executor (a session's strand).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mover/address_policy.h"
#include "xdr/ndmp4_wire.h"

namespace mover {

struct LinkSettings {
  std::uint16_t port_low = 0, port_high = 0;  // listen ports; 0, 0: any
  std::size_t socket_buffer_bytes = 4u << 20;
  std::chrono::milliseconds connect_timeout{10000};
};

using AcceptorPtr = std::shared_ptr<boost::asio::ip::tcp::acceptor>;

// Opens an acceptor on each of `addresses` (a port in the settings' range,
// or any), appending to `acceptors` and `offered`.  `who` names the
// requester in log lines ("[s3 ...] MOVER_LISTEN").  IO_ERR if none opened.
ndmp4_error open_listeners(boost::asio::any_io_executor ex,
                           const std::vector<boost::asio::ip::address>& addresses,
                           const LinkSettings& settings, const std::string& who,
                           std::vector<AcceptorPtr>& acceptors,
                           std::vector<boost::asio::ip::tcp::endpoint>& offered);

// Waits for a peer the policy allows on `acceptor` (others are logged and
// dropped); the socket is tuned for data.  nullopt once the acceptor is
// closed.
boost::asio::awaitable<std::optional<boost::asio::ip::tcp::socket>> accept_allowed(
    boost::asio::ip::tcp::acceptor& acceptor, const AddressPolicy& policy,
    const LinkSettings& settings, const std::string& who);

// Dials each peer the policy allows, in turn, each within the connect
// timeout.  ILLEGAL_ARGS if the policy allows none, CONNECT_ERR if none
// answers; else `socket` holds the connection, tuned for data.
boost::asio::awaitable<ndmp4_error> dial(boost::asio::any_io_executor ex,
                                         const std::vector<boost::asio::ip::tcp::endpoint>& peers,
                                         const AddressPolicy& policy, const LinkSettings& settings,
                                         const std::string& who,
                                         std::optional<boost::asio::ip::tcp::socket>& socket);

}  // namespace mover
