// NDMP data connection addresses (ndmp4_addr) to and from asio endpoints,
// for the MOVER and DATA interfaces, which speak the same addresses.
//
// NDMP4_ADDR_TCP carries IPv4 addresses as host-order integers; IPv6 goes
// in NetApp's NDMP4_ADDR_TCP_IPV6 (class 0x2051), offered and accepted only
// once the DMA selected that class with CONFIG_SET_EXT_LIST: a DMA that
// did not cannot decode it.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <string>
#include <vector>

#include "ndmpd/dispatch.h"

namespace ndmpd {

// Storage for an ndmp4_addr being encoded; keep it until the encoding.
struct AddrStorage {
  std::vector<ndmp4_tcp_addr> v4;
  std::vector<ndmp4_tcp_ipv6_addr> v6;
};

// Endpoints of one family as an ndmp4_addr of that family's type.
ndmp4_addr to_addr(const std::vector<boost::asio::ip::tcp::endpoint>& eps, bool v6,
                   AddrStorage& store);
// The address of one connected endpoint, as GET_STATE shows it: a
// v4-mapped address as IPv4; IPv6 only if the session selected NetApp's
// class (else a zeroed address).
ndmp4_addr connection_addr(const SessionContext& s, const boost::asio::ip::tcp::endpoint& e,
                           AddrStorage& store);
// The address type is one this session may use.
bool addr_type_valid(const SessionContext& s, ndmp4_addr_type t);
// The endpoints of a TCP or TCP_IPV6 address; false if it names none.
bool peers_of(const ndmp4_addr& a, std::vector<boost::asio::ip::tcp::endpoint>& peers);
// The addresses to listen on for a LISTEN of type `t` (TCP or TCP_IPV6).
std::vector<boost::asio::ip::address> listen_addresses(const SessionContext& s, ndmp4_addr_type t);
// "127.0.0.1:4000, [::1]:4001" for log lines.
std::string describe(const std::vector<boost::asio::ip::tcp::endpoint>& eps);

}  // namespace ndmpd
