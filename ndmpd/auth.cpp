#include "ndmpd/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

namespace ndmpd {

std::optional<Challenge> make_challenge() {
  Challenge c;
  if (RAND_bytes(c.data(), static_cast<int>(c.size())) != 1) return std::nullopt;
  return c;
}

Md5Digest md5_digest(std::string_view password, const Challenge& challenge) {
  const std::size_t len = std::min<std::size_t>(password.size(), 32);
  std::uint8_t buf[128] = {};
  std::memcpy(buf, password.data(), len);
  std::memcpy(buf + 64 - len, challenge.data(), challenge.size());
  std::memcpy(buf + 128 - len, password.data(), len);
  Md5Digest out{};
  unsigned int out_len = 0;
  EVP_Digest(buf, sizeof buf, out.data(), &out_len, EVP_md5(), nullptr);
  OPENSSL_cleanse(buf, sizeof buf);
  return out;
}

Authenticator::Authenticator(const Config& config) {
  for (const Credential& c : config.users) {
    if (c.password) users_.push_back({c.name, *c.password});
  }
}

const Authenticator::Entry* Authenticator::find(std::string_view user) const {
  for (const Entry& e : users_) {
    if (e.name == user) return &e;
  }
  return nullptr;
}

namespace {

// Compares two secrets of any lengths in time that depends on neither: both
// are hashed first, and the digests compared with CRYPTO_memcmp.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char da[32], db[32];
  unsigned int n = 0;
  EVP_Digest(a.data(), a.size(), da, &n, EVP_sha256(), nullptr);
  EVP_Digest(b.data(), b.size(), db, &n, EVP_sha256(), nullptr);
  return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

// What an unknown user is checked against, so that unknown users and wrong
// passwords take the same time.
constexpr std::string_view kNoSuchUser = "\x01no-such-user\x01";

}  // namespace

bool Authenticator::check_text(std::string_view user, std::string_view password) const {
  const Entry* e = find(user);
  const bool match = same_secret(e != nullptr ? e->password : kNoSuchUser, password);
  return e != nullptr && !password.empty() && match;
}

bool Authenticator::check_md5(std::string_view user, const Challenge& challenge,
                              std::span<const std::uint8_t, 16> digest) const {
  const Entry* e = find(user);
  const Md5Digest expected = md5_digest(e != nullptr ? e->password : kNoSuchUser, challenge);
  const bool match = CRYPTO_memcmp(expected.data(), digest.data(), expected.size()) == 0;
  return e != nullptr && !e->password.empty() && match;
}

LoginThrottle::LoginThrottle(std::chrono::milliseconds base, std::chrono::seconds window)
    : base_(base), window_(window) {}

std::chrono::milliseconds LoginThrottle::on_failure(const std::string& address) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  // Forget stale records so that the map cannot grow without bound.
  for (auto it = records_.begin(); it != records_.end();) {
    it = now - it->second.last > window_ ? records_.erase(it) : std::next(it);
  }
  // Bound the memory a flood of distinct addresses can take.
  if (records_.size() >= kMaxAddresses && !records_.count(address)) {
    records_.erase(std::min_element(
        records_.begin(), records_.end(),
        [](const auto& a, const auto& b) { return a.second.last < b.second.last; }));
  }
  Record& r = records_[address];
  r.failures = std::min(r.failures + 1, 6u);
  r.last = now;
  return base_ * (1u << (r.failures - 1));
}

void LoginThrottle::on_success(const std::string& address) {
  std::lock_guard lock(mutex_);
  records_.erase(address);
}

}  // namespace ndmpd
