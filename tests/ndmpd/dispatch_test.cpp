// The session rules that hold for every message, without a socket: the
// pre-authentication filter, unknown codes, undecodable bodies, version
// agreement, and extension negotiation in the specification's order.

#include <gtest/gtest.h>

#include "harness.h"

namespace ndmpd {
namespace {

using ndmp::xdr::Bytes;
using testing::Harness;

TEST(PreAuthFilter, AllowsOnlyTheFiveMessagesOfTheSpec) {
  for (const ndmp::xdr::MessageInfo& m : ndmp::xdr::all_messages()) {
    Harness h;
    const auto r = h.raw(m.code, {});
    const bool allowed = m.code == NDMP4_CONNECT_OPEN || m.code == NDMP4_CONNECT_CLOSE ||
                         m.code == NDMP4_CONNECT_CLIENT_AUTH ||
                         m.code == NDMP4_CONFIG_GET_SERVER_INFO ||
                         m.code == NDMP4_CONFIG_GET_AUTH_ATTR;
    if (m.code == NDMP4_CONNECT_CLOSE) {
      EXPECT_FALSE(r.has_value());
      EXPECT_TRUE(h.session().state.closing);
      continue;
    }
    ASSERT_TRUE(r.has_value()) << m.name;
    if (allowed) {
      EXPECT_NE(r->header_error, NDMP4_NOT_AUTHORIZED_ERR) << m.name;
    } else {
      EXPECT_EQ(r->header_error, NDMP4_NOT_AUTHORIZED_ERR) << m.name;
      EXPECT_TRUE(r->body.empty());
    }
  }
  Harness h;
  EXPECT_EQ(h.raw(0x12340000, {})->header_error, NDMP4_NOT_AUTHORIZED_ERR);
}

TEST(PreAuthFilter, ServerInfoAndAuthAttrAnswerBeforeLogin) {
  Harness h;
  auto [err, info] = h.call<NDMP4_CONFIG_GET_SERVER_INFO>();
  ASSERT_EQ(err, NDMP4_NO_ERR);
  EXPECT_STREQ(info->vendor_name, "ndmpd");
  ASSERT_EQ(info->auth_type.auth_type_len, 2u);
  EXPECT_EQ(info->auth_type.auth_type_val[0], NDMP4_AUTH_MD5);
  EXPECT_EQ(info->auth_type.auth_type_val[1], NDMP4_AUTH_TEXT);
  ndmp4_config_get_auth_attr_request a{NDMP4_AUTH_MD5};
  EXPECT_EQ(h.error_of<NDMP4_CONFIG_GET_AUTH_ATTR>(a), NDMP4_NO_ERR);
}

TEST(Dispatch, UnknownCodeIsNotSupportedAfterLogin) {
  Harness h;
  h.login();
  for (std::uint32_t code : {0x101u, 0x203u, 0x306u, 0x12340000u, 0xFFFFFFFFu}) {
    const auto r = h.raw(code, {});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->header_error, NDMP4_NOT_SUPPORTED_ERR) << std::hex << code;
    EXPECT_TRUE(r->body.empty());
  }
}

TEST(Dispatch, PostsSentByTheDmaAreNotSupported) {
  Harness h;
  h.login();
  EXPECT_EQ(h.raw(NDMP4_NOTIFY_DATA_HALTED, Bytes(4, 0))->header_error, NDMP4_NOT_SUPPORTED_ERR);
  EXPECT_EQ(h.raw(NDMP4_LOG_MESSAGE, {})->header_error, NDMP4_NOT_SUPPORTED_ERR);
}

TEST(Dispatch, UndecodableBodyGetsXdrDecodeError) {
  Harness h;
  // CONNECT_OPEN wants one word; two bytes do not decode.
  auto r = h.raw(NDMP4_CONNECT_OPEN, {0, 4});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header_error, NDMP4_XDR_DECODE_ERR);
  EXPECT_TRUE(r->body.empty());
  // A body-less request with trailing bytes, after login.
  h.login();
  r = h.raw(NDMP4_CONFIG_GET_HOST_INFO, {1, 2, 3, 4});
  EXPECT_EQ(r->header_error, NDMP4_XDR_DECODE_ERR);
  // The session goes on.
  EXPECT_EQ(h.error_of<NDMP4_CONFIG_GET_HOST_INFO>(), NDMP4_NO_ERR);
}

TEST(Dispatch, MessagesOfTypeReplyAreIgnored) {
  Harness h;
  EXPECT_FALSE(h.raw(NDMP4_CONNECT_OPEN, {0, 0, 0, 4}, NDMP4_MESSAGE_REPLY));
  EXPECT_TRUE(h.outbox().messages.empty());
}

TEST(ConnectOpen, Version4IsAcceptedOnce) {
  Harness h;
  ndmp4_connect_open_request v4{4}, v3{3}, v5{5};
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_OPEN>(v3), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_OPEN>(v5), NDMP4_ILLEGAL_ARGS_ERR);
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_OPEN>(v4), NDMP4_NO_ERR);  // after refusals
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_OPEN>(v4), NDMP4_ILLEGAL_STATE_ERR);
}

TEST(ConnectOpen, AfterAnotherRequestIsIllegalState) {
  Harness h;
  EXPECT_EQ(h.error_of<NDMP4_CONFIG_GET_SERVER_INFO>(), NDMP4_NO_ERR);
  ndmp4_connect_open_request v4{4};
  EXPECT_EQ(h.error_of<NDMP4_CONNECT_OPEN>(v4), NDMP4_ILLEGAL_STATE_ERR);
}

class ExtensionNegotiation : public ::testing::Test {
 protected:
  void SetUp() override { h.login(); }
  ndmp4_error set(std::vector<ndmp4_class_version> v) {
    ndmp4_config_set_ext_list_request r{};
    r.ndmp4_selected_ext.ndmp4_selected_ext_len = static_cast<u_int>(v.size());
    r.ndmp4_selected_ext.ndmp4_selected_ext_val = v.data();
    return h.error_of<NDMP4_CONFIG_SET_EXT_LIST>(r);
  }
  ndmp4_error echo() {
    ndmp4_test_echo_request e{};
    return h.error_of<NDMP4_TEST_ECHO>(e);
  }
  Harness h;
};

TEST_F(ExtensionNegotiation, GetListsTheConnectionAddressAndTestingClasses) {
  auto [err, rep] = h.call<NDMP4_CONFIG_GET_EXT_LIST>();
  ASSERT_EQ(err, NDMP4_NO_ERR);
  ASSERT_EQ(rep->error, NDMP4_NO_ERR);
  ASSERT_EQ(rep->class_list.class_list_len, 2u);
  // NetApp's connection address extension (IPv6 data connections), v1.
  EXPECT_EQ(rep->class_list.class_list_val[0].class_id, 0x2051);
  ASSERT_EQ(rep->class_list.class_list_val[0].class_version.class_version_len, 1u);
  EXPECT_EQ(rep->class_list.class_list_val[0].class_version.class_version_val[0], 1);
  // The testing class, v1.
  EXPECT_EQ(rep->class_list.class_list_val[1].class_id, 0x7FF0);
  ASSERT_EQ(rep->class_list.class_list_val[1].class_version.class_version_len, 1u);
  EXPECT_EQ(rep->class_list.class_list_val[1].class_version.class_version_val[0], 1);
}

TEST_F(ExtensionNegotiation, SetBeforeGetIsAPreconditionError) {
  EXPECT_EQ(set({{0x7FF0, 1}}), NDMP4_PRECONDITION_ERR);
  EXPECT_EQ(h.error_of<NDMP4_CONFIG_GET_EXT_LIST>(), NDMP4_NO_ERR);
  EXPECT_EQ(set({{0x7FF0, 1}}), NDMP4_NO_ERR);
}

TEST_F(ExtensionNegotiation, BadSelectionsSelectNothingAndMayBeRetried) {
  ASSERT_EQ(h.error_of<NDMP4_CONFIG_GET_EXT_LIST>(), NDMP4_NO_ERR);
  EXPECT_EQ(set({{0x2050, 1}}), NDMP4_CLASS_NOT_SUPPORTED_ERR);
  EXPECT_EQ(set({{0x7FF0, 2}}), NDMP4_VERSION_NOT_SUPPORTED_ERR);
  EXPECT_EQ(set({{0x7FF0, 1}, {0x7FF0, 1}}), NDMP4_EXT_DUPL_CLASSES_ERR);
  EXPECT_EQ(set({{0x7FF0, 1}}), NDMP4_NO_ERR);
  EXPECT_EQ(echo(), NDMP4_NO_ERR);
}

TEST_F(ExtensionNegotiation, AfterSelectionGetAndSetAreDoneAndNegotiated) {
  ASSERT_EQ(h.error_of<NDMP4_CONFIG_GET_EXT_LIST>(), NDMP4_NO_ERR);
  ASSERT_EQ(set({{0x7FF0, 1}}), NDMP4_NO_ERR);
  EXPECT_EQ(set({{0x7FF0, 1}}), NDMP4_EXT_DANDN_ILLEGAL_ERR);
  EXPECT_EQ(h.error_of<NDMP4_CONFIG_GET_EXT_LIST>(), NDMP4_EXT_DANDN_ILLEGAL_ERR);
}

TEST_F(ExtensionNegotiation, AnEmptySelectionTurnsExtensionsOff) {
  ASSERT_EQ(h.error_of<NDMP4_CONFIG_GET_EXT_LIST>(), NDMP4_NO_ERR);
  ASSERT_EQ(set({}), NDMP4_NO_ERR);
  EXPECT_EQ(echo(), NDMP4_NOT_SUPPORTED_ERR);
}

TEST_F(ExtensionNegotiation, AnExtensionRequestFirstSelectsTheDefaults) {
  EXPECT_EQ(echo(), NDMP4_NO_ERR);
  EXPECT_EQ(h.error_of<NDMP4_CONFIG_GET_EXT_LIST>(), NDMP4_EXT_DANDN_ILLEGAL_ERR);
  EXPECT_EQ(set({{0x7FF0, 1}}), NDMP4_EXT_DANDN_ILLEGAL_ERR);
}

TEST_F(ExtensionNegotiation, EchoReturnsItsData) {
  Bytes data(100000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 7);
  ndmp4_test_echo_request e{};
  e.data.data_len = static_cast<u_int>(data.size());
  e.data.data_val = reinterpret_cast<char*>(data.data());
  auto [err, rep] = h.call<NDMP4_TEST_ECHO>(e);
  ASSERT_EQ(err, NDMP4_NO_ERR);
  ASSERT_EQ(rep->data.data_len, data.size());
  EXPECT_EQ(0, std::memcmp(rep->data.data_val, data.data(), data.size()));
}

TEST_F(ExtensionNegotiation, UnknownExtensionClassCodeIsNotSupported) {
  EXPECT_EQ(h.raw(0x7FF10000, {})->header_error, NDMP4_NOT_SUPPORTED_ERR);
}

}  // namespace
}  // namespace ndmpd
