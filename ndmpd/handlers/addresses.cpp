#include "ndmpd/handlers/addresses.h"

#include <cstring>

#include "ndmpd/handlers/build.h"

namespace ndmpd {

namespace asio = boost::asio;
using asio::ip::tcp;

ndmp4_addr to_addr(const std::vector<tcp::endpoint>& eps, bool v6, AddrStorage& store) {
  ndmp4_addr a{};
  if (!v6) {
    a.addr_type = NDMP4_ADDR_TCP;
    for (const tcp::endpoint& e : eps) {
      if (!e.address().is_v4()) continue;
      ndmp4_tcp_addr t{};
      t.ip_addr = e.address().to_v4().to_uint();
      t.port = e.port();
      store.v4.push_back(t);
    }
    build::array(a.ndmp4_addr_u.tcp_addr.tcp_addr_len, a.ndmp4_addr_u.tcp_addr.tcp_addr_val,
                 store.v4);
  } else {
    a.addr_type = NDMP4_ADDR_TCP_IPV6;
    for (const tcp::endpoint& e : eps) {
      if (!e.address().is_v6()) continue;
      ndmp4_tcp_ipv6_addr t{};
      const auto bytes = e.address().to_v6().to_bytes();
      std::memcpy(t.ip_addr, bytes.data(), 16);
      t.port = e.port();
      store.v6.push_back(t);
    }
    build::array(a.ndmp4_addr_u.tcp_ipv6_addr.tcp_ipv6_addr_len,
                 a.ndmp4_addr_u.tcp_ipv6_addr.tcp_ipv6_addr_val, store.v6);
  }
  return a;
}

ndmp4_addr connection_addr(const SessionContext& s, const tcp::endpoint& e, AddrStorage& store) {
  tcp::endpoint shown = e;
  if (e.address().is_v6() && e.address().to_v6().is_v4_mapped()) {
    shown = tcp::endpoint(asio::ip::make_address_v4(asio::ip::v4_mapped, e.address().to_v6()),
                          e.port());
  }
  const bool v6 = shown.address().is_v6();
  if (v6 && !s.ipv6_addresses()) {
    return ndmp4_addr{};  // this DMA cannot be shown IPv6
  }
  return to_addr({shown}, v6, store);
}

bool addr_type_valid(const SessionContext& s, ndmp4_addr_type t) {
  return t == NDMP4_ADDR_LOCAL || t == NDMP4_ADDR_TCP ||
         (t == NDMP4_ADDR_TCP_IPV6 && s.ipv6_addresses());
}

bool peers_of(const ndmp4_addr& a, std::vector<tcp::endpoint>& peers) {
  if (a.addr_type == NDMP4_ADDR_TCP) {
    const auto& list = a.ndmp4_addr_u.tcp_addr;
    for (u_int i = 0; i < list.tcp_addr_len; ++i) {
      peers.emplace_back(asio::ip::address_v4(list.tcp_addr_val[i].ip_addr),
                         list.tcp_addr_val[i].port);
    }
  } else if (a.addr_type == NDMP4_ADDR_TCP_IPV6) {
    const auto& list = a.ndmp4_addr_u.tcp_ipv6_addr;
    for (u_int i = 0; i < list.tcp_ipv6_addr_len; ++i) {
      asio::ip::address_v6::bytes_type b;
      std::memcpy(b.data(), list.tcp_ipv6_addr_val[i].ip_addr, 16);
      peers.emplace_back(asio::ip::address_v6(b), list.tcp_ipv6_addr_val[i].port);
    }
  }
  return !peers.empty();
}

std::vector<asio::ip::address> listen_addresses(const SessionContext& s, ndmp4_addr_type t) {
  const bool v6 = t == NDMP4_ADDR_TCP_IPV6;
  std::vector<asio::ip::address> out;
  for (const auto& a : s.server.data_policy.offer(s.local_address, true)) {
    if (a.is_v6() == v6) out.push_back(a);
  }
  return out;
}

std::string describe(const std::vector<tcp::endpoint>& eps) {
  std::string text;
  for (const auto& e : eps) {
    text += (text.empty() ? "" : ", ") + e.address().to_string() + ":" + std::to_string(e.port());
  }
  return text;
}

}  // namespace ndmpd
