#include "ndmpd/dispatch.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace ndmpd {

std::string SessionContext::tag() const {
  std::string t = "[s" + std::to_string(id) + " " + peer;
  if (state.authenticated) t += " " + (state.user.empty() ? std::string("-") : state.user);
  return t + "]";
}

std::string SessionContext::peer_address() const {
  if (!peer.empty() && peer.front() == '[') return peer.substr(1, peer.find(']') - 1);
  return peer.substr(0, peer.rfind(':'));
}

std::shared_ptr<const Dispatcher> Dispatcher::create() {
  auto d = std::make_shared<Dispatcher>();
  register_connect_handlers(*d);
  register_config_handlers(*d);
  register_tape_handlers(*d);
  register_scsi_handlers(*d);
  register_mover_handlers(*d);
  register_data_handlers(*d);
  register_test_extension(*d);
  return d;
}

void Dispatcher::add(std::uint32_t code, SyncFn sync, AsyncFn async) {
  const ndmp::xdr::MessageInfo* info = ndmp::xdr::find_message(code);
  handlers_[code] = Entry{info, std::move(sync), std::move(async)};
}

namespace {

// What a DMA may send before it has logged in (draft-skardal-ndmpv4-04,
// 3.1): everything else gets NOT_AUTHORIZED.
bool allowed_before_login(std::uint32_t code) {
  switch (code) {
    case NDMP4_CONNECT_OPEN:
    case NDMP4_CONNECT_CLOSE:
    case NDMP4_CONNECT_CLIENT_AUTH:
    case NDMP4_CONFIG_GET_SERVER_INFO:
    case NDMP4_CONFIG_GET_AUTH_ATTR:
      return true;
    default:
      return false;
  }
}

}  // namespace

ndmp4_error Dispatcher::admit(SessionContext& session, std::uint32_t code,
                              const Entry*& entry) const {
  SessionState& st = session.state;
  if (code != NDMP4_CONNECT_OPEN) st.other_request = true;
  if (!st.authenticated && !allowed_before_login(code)) return NDMP4_NOT_AUTHORIZED_ERR;
  const auto it = handlers_.find(code);
  if (it == handlers_.end()) return NDMP4_NOT_SUPPORTED_ERR;
  if (const std::uint16_t cls = extension_class(code); cls != 0) {
    // An extension request without negotiation selects the default version
    // of every class, and closes negotiation.
    if (st.ext_phase != ExtPhase::kSelected) {
      st.extensions.clear();
      for (const auto& [id, versions] : extension_classes_) st.extensions[id] = versions.front();
      st.ext_phase = ExtPhase::kSelected;
    }
    if (!st.extensions.count(cls)) return NDMP4_NOT_SUPPORTED_ERR;
  }
  entry = &it->second;
  return NDMP4_NO_ERR;
}

boost::asio::awaitable<void> Dispatcher::dispatch(SessionContext& session,
                                                  const ndmp4_header& header,
                                                  std::span<const std::uint8_t> body) const {
  if (header.message_type != NDMP4_MESSAGE_REQUEST) {
    spdlog::debug("{} ignoring a message of type {} (code {:#x})", session.tag(),
                  static_cast<int>(header.message_type), header.message_code);
    co_return;
  }
  const std::uint32_t code = header.message_code;
  session.request_sequence = header.sequence;
  // The log line's arguments cost more than the request itself: build them
  // only when debug lines are wanted.
  const bool debug = spdlog::should_log(spdlog::level::debug);
  if (debug)
    spdlog::debug("{} <- {} seq={} ({} bytes)", session.tag(), ndmp::xdr::message_name(code),
                  header.sequence, body.size());

  const Entry* entry = nullptr;
  ndmp4_error error = admit(session, code, entry);
  ndmp::xdr::AnyBody request;
  if (error == NDMP4_NO_ERR && !request.decode(entry->info->request, body)) {
    error = NDMP4_XDR_DECODE_ERR;
  }
  if (error != NDMP4_NO_ERR) {
    if (debug)
      spdlog::debug("{} -> {} refused: header error {}", session.tag(),
                    ndmp::xdr::message_name(code), static_cast<int>(error));
    session.outbox.reply(code, header.sequence, error, {});
    co_return;
  }

  // (No co_await inside a conditional expression: GCC 12 miscompiles it.)
  Reply reply;
  if (entry->sync) {
    reply = entry->sync(session, request.get());
  } else {
    reply = co_await entry->async(session, request.get());
  }
  if (!reply.send) co_return;
  if (reply.header_error == NDMP4_NO_ERR && reply.proc != entry->info->reply.proc) {
    // A handler answered with the wrong body type: a bug, never sent.
    spdlog::error("{} handler of {} built a reply of the wrong type", session.tag(),
                  ndmp::xdr::message_name(code));
    reply = Reply::header(NDMP4_XDR_ENCODE_ERR);
  }
  if (debug)
    spdlog::debug("{} -> {} reply ({} bytes)", session.tag(), ndmp::xdr::message_name(code),
                  reply.body.size());
  session.outbox.reply(code, header.sequence, reply.header_error, std::move(reply.body));
}

}  // namespace ndmpd
