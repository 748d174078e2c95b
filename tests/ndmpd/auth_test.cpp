// The NDMP MD5 digest as the specification lays out its 128 input bytes,
// and the login throttle.

#include "ndmpd/auth.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

namespace ndmpd {
namespace {

// MD5 of the 128 bytes built here by hand, field by field.
Md5Digest reference(const std::string& password, const Challenge& c) {
  const std::size_t n = std::min<std::size_t>(password.size(), 32);
  std::vector<std::uint8_t> buf;
  buf.insert(buf.end(), password.begin(), password.begin() + static_cast<std::ptrdiff_t>(n));
  buf.insert(buf.end(), 64 - 2 * n, 0);
  buf.insert(buf.end(), c.begin(), c.end());
  buf.insert(buf.end(), password.begin(), password.begin() + static_cast<std::ptrdiff_t>(n));
  EXPECT_EQ(buf.size(), 128u);
  Md5Digest d;
  unsigned len = 0;
  EVP_Digest(buf.data(), buf.size(), d.data(), &len, EVP_md5(), nullptr);
  return d;
}

TEST(Md5Digest, MatchesTheSpecificationsLayout) {
  Challenge c;
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = static_cast<std::uint8_t>(0xA0 ^ i);
  for (const std::string& p :
       std::vector<std::string>{"a", "secret", std::string(31, 'x'), std::string(32, 'y')}) {
    EXPECT_EQ(md5_digest(p, c), reference(p, c)) << p;
  }
}

TEST(Md5Digest, LongPasswordsAreCutTo32Bytes) {
  Challenge c{};
  const std::string p32(32, 'z');
  EXPECT_EQ(md5_digest(p32 + "extra", c), md5_digest(p32, c));
  EXPECT_NE(md5_digest(std::string(31, 'z'), c), md5_digest(p32, c));
}

TEST(Md5Digest, KnownAnswer) {
  // Password "ndmp" with a zero challenge: MD5("ndmp" + 56 zeros + 64 zeros + "ndmp").
  Challenge c{};
  const Md5Digest d = md5_digest("ndmp", c);
  EXPECT_EQ(d, reference("ndmp", c));
  // The same digest computed over a literal buffer.
  std::uint8_t buf[128] = {'n', 'd', 'm', 'p'};
  buf[124] = 'n';
  buf[125] = 'd';
  buf[126] = 'm';
  buf[127] = 'p';
  Md5Digest lit;
  unsigned len = 0;
  EVP_Digest(buf, sizeof buf, lit.data(), &len, EVP_md5(), nullptr);
  EXPECT_EQ(d, lit);
}

TEST(Authenticator, ChecksTextAndMd5) {
  Config c;
  c.users.push_back({"dma", std::string("pw"), std::nullopt, false, "t"});
  Authenticator a(c);
  EXPECT_TRUE(a.check_text("dma", "pw"));
  EXPECT_FALSE(a.check_text("dma", "pw2"));
  EXPECT_FALSE(a.check_text("dma", ""));
  EXPECT_FALSE(a.check_text("other", "pw"));
  Challenge ch{};
  ch[5] = 9;
  const Md5Digest d = md5_digest("pw", ch);
  EXPECT_TRUE(a.check_md5("dma", ch, d));
  EXPECT_FALSE(a.check_md5("other", ch, d));
  ch[5] = 8;
  EXPECT_FALSE(a.check_md5("dma", ch, d));
}

TEST(LoginThrottle, DoublesPerFailureUpToACapAndResetsOnSuccess) {
  LoginThrottle t(std::chrono::milliseconds(10), std::chrono::seconds(600));
  EXPECT_EQ(t.on_failure("a").count(), 10);
  EXPECT_EQ(t.on_failure("a").count(), 20);
  EXPECT_EQ(t.on_failure("a").count(), 40);
  EXPECT_EQ(t.on_failure("b").count(), 10);  // per address
  for (int i = 0; i < 10; ++i) t.on_failure("a");
  EXPECT_EQ(t.on_failure("a").count(), 320);  // capped at 32 x base
  t.on_success("a");
  EXPECT_EQ(t.on_failure("a").count(), 10);
}

TEST(LoginThrottle, ForgetsOldFailures) {
  LoginThrottle t(std::chrono::milliseconds(10), std::chrono::seconds(0));
  t.on_failure("a");
  t.on_failure("a");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(t.on_failure("a").count(), 10);
}

}  // namespace
}  // namespace ndmpd
