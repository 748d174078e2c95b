// Which addresses data connections may use.
//
// A mover (MOVER_CONNECT) or a data server (DATA_CONNECT) dials only peers
// inside the allowed networks, and a listening mover accepts only peers
// inside them: a DMA, or whoever speaks for it, must not be able to make
// the appliance connect to arbitrary hosts with backup data.  The default
// is loopback plus the networks of the addresses ndmpd listens on (every
// interface's network for a wildcard listener).
//
// The addresses a listening mover offers (MOVER_LISTEN's address array) are
// the configured ones, or by default the addresses ndmpd listens on, with
// a wildcard expanded to every interface address of its family.
//
// Immutable after construction; shared read-only.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mover {

// One interface address with its prefix length (from getifaddrs).
struct InterfaceAddress {
  boost::asio::ip::address address;
  unsigned prefix = 0;
};

// Every address of this host's interfaces that are up.
std::vector<InterfaceAddress> interface_addresses();

class AddressPolicy {
 public:
  // `allow`: networks in CIDR form ("10.0.0.0/8", "fd00::/8"), or a bare
  // address for a single host; empty means the default, computed from
  // `control_listen` (the hosts ndmpd listens on: "127.0.0.1", "0.0.0.0",
  // "::") and `interfaces`.  `offer`: the addresses to offer; empty means
  // the default.  nullopt with `error` set when an entry does not parse.
  static std::optional<AddressPolicy> make(const std::vector<std::string>& allow,
                                           const std::vector<std::string>& offer,
                                           const std::vector<std::string>& control_listen,
                                           const std::vector<InterfaceAddress>& interfaces,
                                           std::string& error);

  bool allows(const boost::asio::ip::address& peer) const;

  // The addresses to listen on and offer, best first: `arrived_on` (the
  // local address of the DMA's control connection) leads when it is one of
  // them.  IPv6 ones only when `ipv6` (the DMA selected the connection
  // address extension).
  std::vector<boost::asio::ip::address> offer(const boost::asio::ip::address& arrived_on,
                                              bool ipv6) const;

  // For logs: "127.0.0.0/8, ::1/128, 192.168.1.0/24".
  std::string describe() const;

 private:
  std::vector<boost::asio::ip::network_v4> v4_;
  std::vector<boost::asio::ip::network_v6> v6_;
  std::vector<boost::asio::ip::address> offer_;
};

}  // namespace mover
