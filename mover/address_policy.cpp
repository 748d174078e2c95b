#include "mover/address_policy.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace mover {

namespace ip = boost::asio::ip;

namespace {

unsigned prefix_of(const sockaddr* mask) {
  if (!mask) return 0;
  unsigned bits = 0;
  const std::uint8_t* b = nullptr;
  std::size_t n = 0;
  if (mask->sa_family == AF_INET) {
    b = reinterpret_cast<const std::uint8_t*>(
        &reinterpret_cast<const sockaddr_in*>(mask)->sin_addr.s_addr);
    n = 4;
  } else if (mask->sa_family == AF_INET6) {
    b = reinterpret_cast<const sockaddr_in6*>(mask)->sin6_addr.s6_addr;
    n = 16;
  }
  for (std::size_t i = 0; i < n; ++i) bits += static_cast<unsigned>(std::popcount(b[i]));
  return bits;
}

std::optional<ip::address> address_of(const sockaddr* sa) {
  if (!sa) return std::nullopt;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return ip::address_v4(ntohl(in->sin_addr.s_addr));
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), in6->sin6_addr.s6_addr, 16);
    return ip::address_v6(bytes, in6->sin6_scope_id);
  }
  return std::nullopt;
}

// "[::1]" or "::1" or "127.0.0.1" -> address.
std::optional<ip::address> parse_host(std::string text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  boost::system::error_code ec;
  const ip::address a = ip::make_address(text, ec);
  if (ec) return std::nullopt;
  return a;
}

}  // namespace

std::vector<InterfaceAddress> interface_addresses() {
  std::vector<InterfaceAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (const ifaddrs* i = list; i; i = i->ifa_next) {
    if (!(i->ifa_flags & IFF_UP)) continue;
    const std::optional<ip::address> a = address_of(i->ifa_addr);
    if (!a) continue;
    out.push_back({*a, prefix_of(i->ifa_netmask)});
  }
  ::freeifaddrs(list);
  return out;
}

std::optional<AddressPolicy> AddressPolicy::make(const std::vector<std::string>& allow,
                                                 const std::vector<std::string>& offer,
                                                 const std::vector<std::string>& control_listen,
                                                 const std::vector<InterfaceAddress>& interfaces,
                                                 std::string& error) {
  AddressPolicy p;
  auto add_network = [&p](const ip::address& a, unsigned prefix) {
    if (a.is_v4()) {
      p.v4_.push_back(ip::network_v4(a.to_v4(), std::min(prefix, 32u)).canonical());
    } else {
      ip::address_v6 v6 = a.to_v6();
      v6.scope_id(0);
      p.v6_.push_back(ip::network_v6(v6, std::min(prefix, 128u)).canonical());
    }
  };
  for (const std::string& entry : allow) {
    const auto slash = entry.find('/');
    const std::optional<ip::address> a = parse_host(entry.substr(0, slash));
    unsigned prefix = a && a->is_v4() ? 32 : 128;
    if (a && slash != std::string::npos) {
      const std::string bits = entry.substr(slash + 1);
      if (bits.empty() || bits.size() > 3 ||
          !std::all_of(bits.begin(), bits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
          std::stoul(bits) > prefix) {
        error = "not a network: " + entry;
        return std::nullopt;
      }
      prefix = static_cast<unsigned>(std::stoul(bits));
    }
    if (!a) {
      error = "not a network: " + entry;
      return std::nullopt;
    }
    add_network(*a, prefix);
  }
  std::vector<ip::address> control;
  for (const std::string& host : control_listen) {
    const std::optional<ip::address> a = parse_host(host);
    if (!a) {
      error = "not an address: " + host;
      return std::nullopt;
    }
    control.push_back(*a);
  }
  // The interface addresses a control address stands for (all of its
  // family for a wildcard), with their prefixes.
  auto covered = [&interfaces](const ip::address& c) {
    std::vector<InterfaceAddress> out;
    for (const InterfaceAddress& i : interfaces) {
      if (i.address.is_v4() != c.is_v4()) continue;
      if (i.address.is_v6() && i.address.to_v6().is_link_local()) continue;
      if (c.is_unspecified() || i.address == c) out.push_back(i);
    }
    if (out.empty() && !c.is_unspecified()) out.push_back({c, c.is_v4() ? 32u : 128u});
    return out;
  };
  if (allow.empty()) {
    add_network(ip::make_address("127.0.0.0"), 8);
    add_network(ip::make_address("::1"), 128);
    for (const ip::address& c : control) {
      for (const InterfaceAddress& i : covered(c)) add_network(i.address, i.prefix);
    }
  }
  for (const std::string& host : offer) {
    const std::optional<ip::address> a = parse_host(host);
    if (!a || a->is_unspecified()) {
      error = "not an address to offer: " + host;
      return std::nullopt;
    }
    p.offer_.push_back(*a);
  }
  if (offer.empty()) {
    for (const ip::address& c : control) {
      for (const InterfaceAddress& i : covered(c)) p.offer_.push_back(i.address);
    }
  }
  std::vector<ip::address> unique;
  for (const ip::address& a : p.offer_) {
    if (std::find(unique.begin(), unique.end(), a) == unique.end()) unique.push_back(a);
  }
  p.offer_ = std::move(unique);
  return p;
}

bool AddressPolicy::allows(const ip::address& peer_in) const {
  ip::address peer = peer_in;
  if (peer.is_v6() && peer.to_v6().is_v4_mapped()) {
    peer = ip::make_address_v4(ip::v4_mapped, peer.to_v6());
  }
  if (peer.is_v4()) {
    const ip::network_v4 host(peer.to_v4(), 32);
    // is_subnet_of() is strict: a network of one host equals, not contains.
    return std::any_of(v4_.begin(), v4_.end(), [&host](const ip::network_v4& n) {
      return host == n || host.is_subnet_of(n);
    });
  }
  ip::address_v6 v6 = peer.to_v6();
  v6.scope_id(0);
  const ip::network_v6 host(v6, 128);
  return std::any_of(v6_.begin(), v6_.end(), [&host](const ip::network_v6& n) {
    return host.is_subnet_of(n) || host == n;
  });
}

std::vector<ip::address> AddressPolicy::offer(const ip::address& arrived_on, bool ipv6) const {
  std::vector<ip::address> out;
  ip::address lead = arrived_on;
  if (lead.is_v6() && lead.to_v6().is_v4_mapped()) {
    lead = ip::make_address_v4(ip::v4_mapped, lead.to_v6());
  }
  for (const ip::address& a : offer_) {
    if (a == lead) out.push_back(a);
  }
  for (const ip::address& a : offer_) {
    if (a != lead) out.push_back(a);
  }
  if (!ipv6) std::erase_if(out, [](const ip::address& a) { return a.is_v6(); });
  return out;
}

std::string AddressPolicy::describe() const {
  std::string out;
  auto add = [&out](const std::string& s) {
    if (!out.empty()) out += ", ";
    out += s;
  };
  for (const auto& n : v4_) add(n.to_string());
  for (const auto& n : v6_) add(n.to_string());
  return out;
}

}  // namespace mover
