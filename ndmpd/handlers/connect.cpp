// CONNECT interface: OPEN, CLIENT_AUTH, CLOSE, SERVER_AUTH.

#include <spdlog/spdlog.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>

#include "ndmpd/dispatch.h"
#include "ndmpd/handlers/build.h"

namespace ndmpd {
namespace {

namespace asio = boost::asio;

Reply connect_open(SessionContext& s, const ndmp4_connect_open_request& req) {
  ndmp4_connect_open_reply rep{};
  if (s.state.version_agreed || s.state.other_request) {
    rep.error = NDMP4_ILLEGAL_STATE_ERR;  // the version is settled already
  } else if (req.protocol_version != NDMP4_VER) {
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;  // the DMA may retry with another
    spdlog::info("{} DMA asked for NDMP version {}; this server speaks {}", s.tag(),
                 req.protocol_version, NDMP4_VER);
  } else {
    s.state.version_agreed = true;
    rep.error = NDMP4_NO_ERR;
  }
  return Reply::with(rep);
}

std::string_view name_of(const ndmp4_auth_data& d) {
  switch (d.auth_type) {
    case NDMP4_AUTH_TEXT:
      return d.ndmp4_auth_data_u.auth_text.auth_id;
    case NDMP4_AUTH_MD5:
      return d.ndmp4_auth_data_u.auth_md5.auth_id;
    default:
      return "";
  }
}

// Checks the credentials; sets `why` when they are refused.
bool verify(SessionContext& s, const ndmp4_auth_data& d, std::string& why) {
  switch (d.auth_type) {
    case NDMP4_AUTH_NONE:
      return true;  // allowed: checked by the caller
    case NDMP4_AUTH_TEXT: {
      const ndmp4_auth_text& t = d.ndmp4_auth_data_u.auth_text;
      if (s.server.auth.check_text(t.auth_id, t.auth_password)) return true;
      why = "wrong user or password";
      return false;
    }
    case NDMP4_AUTH_MD5: {
      // Each challenge serves one attempt.
      const std::optional<Challenge> challenge = std::exchange(s.state.challenge, std::nullopt);
      if (!challenge) {
        why = "no MD5 challenge was requested (CONFIG_GET_AUTH_ATTR) before this attempt";
        return false;
      }
      const ndmp4_auth_md5& m = d.ndmp4_auth_data_u.auth_md5;
      std::array<std::uint8_t, 16> digest;
      std::memcpy(digest.data(), m.auth_digest, digest.size());
      if (s.server.auth.check_md5(m.auth_id, *challenge, digest)) return true;
      why = "wrong user or password";
      return false;
    }
  }
  return false;
}

std::optional<AuthMethod> method_of(ndmp4_auth_type t) {
  switch (t) {
    case NDMP4_AUTH_NONE:
      return AuthMethod::kNone;
    case NDMP4_AUTH_TEXT:
      return AuthMethod::kText;
    case NDMP4_AUTH_MD5:
      return AuthMethod::kMd5;
  }
  return std::nullopt;
}

asio::awaitable<Reply> connect_client_auth(SessionContext& s,
                                           const ndmp4_connect_client_auth_request& req) {
  ndmp4_connect_client_auth_reply rep{};
  const ndmp4_auth_data& d = req.auth_data;
  const std::optional<AuthMethod> method = method_of(d.auth_type);
  if (s.state.authenticated) {
    rep.error = NDMP4_ILLEGAL_STATE_ERR;
    co_return Reply::with(rep);
  }
  if (!method || !s.server.config.allows(*method)) {
    spdlog::warn("{} login refused: method {} is not allowed", s.tag(),
                 method ? to_string(*method) : "unknown");
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  std::string why;
  const std::string user(name_of(d));
  if (!verify(s, d, why)) {
    ++s.state.auth_failures;
    const auto delay = s.server.throttle.on_failure(s.peer_address());
    spdlog::warn("{} login failed for user '{}' ({}): {}; answering in {} ms", s.tag(), user,
                 to_string(*method), why, delay.count());
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    co_await timer.async_wait(asio::use_awaitable);
    if (s.state.auth_failures >= s.server.config.auth_max_failures) {
      spdlog::warn("{} {} failed logins: closing the session", s.tag(), s.state.auth_failures);
      s.state.closing = true;
    }
    rep.error = NDMP4_NOT_AUTHORIZED_ERR;
    co_return Reply::with(rep);
  }
  s.server.throttle.on_success(s.peer_address());
  s.state.authenticated = true;
  s.state.user = user;
  s.state.auth_method = *method;
  spdlog::info("{} logged in ({})", s.tag(), to_string(*method));
  rep.error = NDMP4_NO_ERR;
  co_return Reply::with(rep);
}

Reply connect_close(SessionContext& s, const ndmp::xdr::Void&) {
  spdlog::info("{} DMA closed the session", s.tag());
  s.state.closing = true;
  return Reply::none();
}

// The DMA asks this server to prove who it is, with the identity of
// [server_identity] in the configuration.
Reply connect_server_auth(SessionContext& s, const ndmp4_connect_server_auth_request& req) {
  ndmp4_connect_server_auth_reply rep{};
  rep.server_result.auth_type = NDMP4_AUTH_NONE;
  const std::optional<Credential>& id = s.server.config.server_identity;
  const std::optional<AuthMethod> method = method_of(req.client_attr.auth_type);
  if (!id || !id->password) {
    rep.error = NDMP4_NOT_SUPPORTED_ERR;
    return Reply::with(rep);
  }
  if (!method || !s.server.config.allows(*method)) {
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    return Reply::with(rep);
  }
  rep.error = NDMP4_NO_ERR;
  rep.server_result.auth_type = req.client_attr.auth_type;
  switch (*method) {
    case AuthMethod::kNone:
      break;
    case AuthMethod::kText:
      rep.server_result.ndmp4_auth_data_u.auth_text = {build::str(id->name),
                                                       build::str(*id->password)};
      break;
    case AuthMethod::kMd5: {
      Challenge c;
      std::memcpy(c.data(), req.client_attr.ndmp4_auth_attr_u.challenge, c.size());
      const Md5Digest digest = md5_digest(*id->password, c);
      ndmp4_auth_md5& m = rep.server_result.ndmp4_auth_data_u.auth_md5;
      m.auth_id = build::str(id->name);
      std::memcpy(m.auth_digest, digest.data(), digest.size());
      break;
    }
  }
  return Reply::with(rep);
}

}  // namespace

void register_connect_handlers(Dispatcher& d) {
  d.on<NDMP4_CONNECT_OPEN>(connect_open);
  d.on<NDMP4_CONNECT_CLIENT_AUTH>(connect_client_auth);
  d.on<NDMP4_CONNECT_CLOSE>(connect_close);
  d.on<NDMP4_CONNECT_SERVER_AUTH>(connect_server_auth);
}

}  // namespace ndmpd
