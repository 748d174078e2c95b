// CONNECT_CLIENT_AUTH, CONNECT_SERVER_AUTH and CONFIG_GET_AUTH_ATTR:
// methods, challenges, failures and the limits on them.

#include <gtest/gtest.h>

#include "harness.h"
#include "ndmpd/auth.h"

namespace ndmpd {
namespace {

using testing::Harness;

ndmp4_connect_client_auth_request text(const char* user, const char* password) {
  ndmp4_connect_client_auth_request a{};
  a.auth_data.auth_type = NDMP4_AUTH_TEXT;
  a.auth_data.ndmp4_auth_data_u.auth_text = {const_cast<char*>(user), const_cast<char*>(password)};
  return a;
}

// Asks for a challenge and answers it with `password`.
ndmp4_error md5_login(Harness& h, const char* user, const std::string& password) {
  ndmp4_config_get_auth_attr_request attr{NDMP4_AUTH_MD5};
  auto [err, rep] = h.call<NDMP4_CONFIG_GET_AUTH_ATTR>(attr);
  EXPECT_EQ(err, NDMP4_NO_ERR);
  EXPECT_EQ(rep->server_attr.auth_type, NDMP4_AUTH_MD5);
  Challenge c;
  std::memcpy(c.data(), rep->server_attr.ndmp4_auth_attr_u.challenge, 64);
  const Md5Digest d = md5_digest(password, c);
  ndmp4_connect_client_auth_request a{};
  a.auth_data.auth_type = NDMP4_AUTH_MD5;
  a.auth_data.ndmp4_auth_data_u.auth_md5.auth_id = const_cast<char*>(user);
  std::memcpy(a.auth_data.ndmp4_auth_data_u.auth_md5.auth_digest, d.data(), 16);
  return h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(a);
}

TEST(ClientAuth, TextWithTheRightPasswordLogsIn) {
  Harness h;
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(text("dma", "secret")), NDMP4_NO_ERR);
  EXPECT_TRUE(h.session().state.authenticated);
  EXPECT_EQ(h.session().state.user, "dma");
  EXPECT_EQ(h.error_of<NDMP4_CONFIG_GET_HOST_INFO>(), NDMP4_NO_ERR);
}

TEST(ClientAuth, WrongPasswordUnknownUserAndEmptyPasswordAreRefused) {
  Harness h;
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(text("dma", "Secret")), NDMP4_NOT_AUTHORIZED_ERR);
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(text("dma", "secret ")),
            NDMP4_NOT_AUTHORIZED_ERR);
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(text("nobody", "secret")),
            NDMP4_NOT_AUTHORIZED_ERR);
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(text("dma", "")), NDMP4_NOT_AUTHORIZED_ERR);
  EXPECT_FALSE(h.session().state.authenticated);
  EXPECT_EQ(h.error_of<NDMP4_CONFIG_GET_HOST_INFO>(), NDMP4_NOT_AUTHORIZED_ERR);
}

TEST(ClientAuth, Md5WithTheRightPasswordLogsIn) {
  Harness h;
  EXPECT_EQ(md5_login(h, "dma", "secret"), NDMP4_NO_ERR);
  EXPECT_TRUE(h.session().state.authenticated);
}

TEST(ClientAuth, Md5WithAWrongPasswordIsRefused) {
  Harness h;
  EXPECT_EQ(md5_login(h, "dma", "secreT"), NDMP4_NOT_AUTHORIZED_ERR);
  EXPECT_EQ(md5_login(h, "root", "secret"), NDMP4_NOT_AUTHORIZED_ERR);
  EXPECT_EQ(md5_login(h, "dma", "secret"), NDMP4_NO_ERR);
}

TEST(ClientAuth, Md5WithoutAChallengeOrReusingOneIsRefused) {
  Harness h;
  ndmp4_connect_client_auth_request a{};
  a.auth_data.auth_type = NDMP4_AUTH_MD5;
  a.auth_data.ndmp4_auth_data_u.auth_md5.auth_id = const_cast<char*>("dma");
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(a), NDMP4_NOT_AUTHORIZED_ERR);

  // A digest that was right for a challenge is no good once it is used.
  ndmp4_config_get_auth_attr_request attr{NDMP4_AUTH_MD5};
  auto [err, rep] = h.call<NDMP4_CONFIG_GET_AUTH_ATTR>(attr);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  Challenge c;
  std::memcpy(c.data(), rep->server_attr.ndmp4_auth_attr_u.challenge, 64);
  const Md5Digest wrong = md5_digest("nope", c);
  std::memcpy(a.auth_data.ndmp4_auth_data_u.auth_md5.auth_digest, wrong.data(), 16);
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(a), NDMP4_NOT_AUTHORIZED_ERR);
  const Md5Digest right = md5_digest("secret", c);
  std::memcpy(a.auth_data.ndmp4_auth_data_u.auth_md5.auth_digest, right.data(), 16);
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(a), NDMP4_NOT_AUTHORIZED_ERR);
}

TEST(ClientAuth, EachChallengeIsFresh) {
  Harness h;
  ndmp4_config_get_auth_attr_request attr{NDMP4_AUTH_MD5};
  auto [e1, r1] = h.call<NDMP4_CONFIG_GET_AUTH_ATTR>(attr);
  auto [e2, r2] = h.call<NDMP4_CONFIG_GET_AUTH_ATTR>(attr);
  EXPECT_NE(0, std::memcmp(r1->server_attr.ndmp4_auth_attr_u.challenge,
                           r2->server_attr.ndmp4_auth_attr_u.challenge, 64));
  // Only the most recent challenge counts.
  Challenge first;
  std::memcpy(first.data(), r1->server_attr.ndmp4_auth_attr_u.challenge, 64);
  const Md5Digest d = md5_digest("secret", first);
  ndmp4_connect_client_auth_request a{};
  a.auth_data.auth_type = NDMP4_AUTH_MD5;
  a.auth_data.ndmp4_auth_data_u.auth_md5.auth_id = const_cast<char*>("dma");
  std::memcpy(a.auth_data.ndmp4_auth_data_u.auth_md5.auth_digest, d.data(), 16);
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(a), NDMP4_NOT_AUTHORIZED_ERR);
}

TEST(ClientAuth, NoneIsRefusedUnlessConfigured) {
  ndmp4_connect_client_auth_request none{};
  none.auth_data.auth_type = NDMP4_AUTH_NONE;
  {
    Harness h;
    EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(none), NDMP4_ILLEGAL_ARGS_ERR);
    ndmp4_config_get_auth_attr_request attr{NDMP4_AUTH_NONE};
    EXPECT_EQ(h.error_of<NDMP4_CONFIG_GET_AUTH_ATTR>(attr), NDMP4_ILLEGAL_ARGS_ERR);
    EXPECT_FALSE(h.session().state.authenticated);
  }
  Config c = testing::test_config();
  c.auth_methods = {AuthMethod::kNone};
  Harness h(c);
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(text("dma", "secret")),
            NDMP4_ILLEGAL_ARGS_ERR);  // text is not allowed here
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(none), NDMP4_NO_ERR);
  EXPECT_TRUE(h.session().state.authenticated);
}

TEST(ClientAuth, MethodsCanBeTurnedOff) {
  Config c = testing::test_config();
  c.auth_methods = {AuthMethod::kMd5};
  Harness h(c);
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(text("dma", "secret")), NDMP4_ILLEGAL_ARGS_ERR);
  ndmp4_config_get_auth_attr_request attr{NDMP4_AUTH_TEXT};
  EXPECT_EQ(h.error_of<NDMP4_CONFIG_GET_AUTH_ATTR>(attr), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(md5_login(h, "dma", "secret"), NDMP4_NO_ERR);
}

TEST(ClientAuth, SecondLoginIsIllegalState) {
  Harness h;
  h.login();
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(text("dma", "secret")), NDMP4_ILLEGAL_STATE_ERR);
}

TEST(ClientAuth, TooManyFailuresCloseTheSession) {
  Config c = testing::test_config();
  c.auth_max_failures = 3;
  Harness h(c);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(text("dma", "x")), NDMP4_NOT_AUTHORIZED_ERR);
    EXPECT_FALSE(h.session().state.closing);
  }
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(text("dma", "x")), NDMP4_NOT_AUTHORIZED_ERR);
  EXPECT_TRUE(h.session().state.closing);
}

TEST(ClientAuth, AFailureWaitsBeforeAnswering) {
  Config c = testing::test_config();
  c.auth_failure_delay = std::chrono::milliseconds(150);
  Harness h(c);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_CLIENT_AUTH>(text("dma", "x")), NDMP4_NOT_AUTHORIZED_ERR);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(150));
}

TEST(ServerAuth, NeedsLoginAndAConfiguredIdentity) {
  Harness h;
  ndmp4_connect_server_auth_request r{};
  r.client_attr.auth_type = NDMP4_AUTH_MD5;
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_SERVER_AUTH>(r), NDMP4_NOT_AUTHORIZED_ERR);
  h.login();
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_SERVER_AUTH>(r), NDMP4_NOT_SUPPORTED_ERR);
}

TEST(ServerAuth, ProvesTheServerIdentityWithTheDmasChallenge) {
  Config c = testing::test_config();
  c.server_identity = Credential{"filer1", std::string("filer-secret"), std::nullopt, false, "t"};
  Harness h(c);
  h.login();
  ndmp4_connect_server_auth_request r{};
  r.client_attr.auth_type = NDMP4_AUTH_MD5;
  for (int i = 0; i < 64; ++i) r.client_attr.ndmp4_auth_attr_u.challenge[i] = static_cast<char>(i);
  auto [err, rep] = h.call<NDMP4_CONNECT_SERVER_AUTH>(r);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  ASSERT_EQ(rep->error, NDMP4_NO_ERR);
  ASSERT_EQ(rep->server_result.auth_type, NDMP4_AUTH_MD5);
  EXPECT_STREQ(rep->server_result.ndmp4_auth_data_u.auth_md5.auth_id, "filer1");
  Challenge ch;
  for (int i = 0; i < 64; ++i) ch[i] = static_cast<std::uint8_t>(i);
  const Md5Digest expect = md5_digest("filer-secret", ch);
  EXPECT_EQ(
      0, std::memcmp(rep->server_result.ndmp4_auth_data_u.auth_md5.auth_digest, expect.data(), 16));
}

}  // namespace
}  // namespace ndmpd
