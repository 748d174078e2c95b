// Authentication of DMAs (CONNECT_CLIENT_AUTH) and of this server to a DMA
// (CONNECT_SERVER_AUTH): TEXT and MD5 exactly as NDMP v4 computes them, with
// constant-time comparisons, and a throttle that slows repeated failures
// from one peer address.
//
// Authenticator is immutable after construction and safe from any thread.
// LoginThrottle is internally locked and shared by all sessions.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ndmpd/config.h"

namespace ndmpd {

using Challenge = std::array<std::uint8_t, 64>;
using Md5Digest = std::array<std::uint8_t, 16>;

// A fresh random challenge (OpenSSL's CSPRNG); nullopt if it fails.
std::optional<Challenge> make_challenge();

// The NDMP MD5 digest: MD5 over 128 bytes = password (at most 32 bytes) |
// zero padding (64 - 2 * len) | challenge | password.  A password over 32
// bytes is cut to 32 (and then has no padding).  The password must not be
// empty.
Md5Digest md5_digest(std::string_view password, const Challenge& challenge);

class Authenticator {
 public:
  explicit Authenticator(const Config& config);

  // True if `user` has password `password`, compared in constant time.
  bool check_text(std::string_view user, std::string_view password) const;

  // True if `digest` is the MD5 digest of `user`'s password and `challenge`.
  bool check_md5(std::string_view user, const Challenge& challenge,
                 std::span<const std::uint8_t, 16> digest) const;

 private:
  struct Entry {
    std::string name;
    std::string password;
  };
  const Entry* find(std::string_view user) const;
  std::vector<Entry> users_;
};

// Remembers recent failed logins per peer address and says how long to wait
// before answering the next failure: base, 2 * base, 4 * base ... capped at
// 32 * base.  A success clears the address; failures older than the window
// are forgotten.
class LoginThrottle {
 public:
  LoginThrottle(std::chrono::milliseconds base, std::chrono::seconds window);
  std::chrono::milliseconds on_failure(const std::string& address);
  void on_success(const std::string& address);

 private:
  struct Record {
    unsigned failures = 0;
    std::chrono::steady_clock::time_point last;
  };
  static constexpr std::size_t kMaxAddresses = 4096;
  std::chrono::milliseconds base_;
  std::chrono::seconds window_;
  std::mutex mutex_;
  std::map<std::string, Record> records_;
};

}  // namespace ndmpd
