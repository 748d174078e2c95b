// Request dispatch: the sans-I/O heart of a session.  It takes one decoded
// header and the raw body of a request, applies the rules that hold for
// every message (pre-authentication filter, unknown codes, undecodable
// bodies, extension negotiation), and runs the handler that the message
// table names.  It knows nothing of sockets: tests drive it with a recording
// Outbox.
//
// The Dispatcher is built once and shared by all sessions (read-only).  A
// handler runs on its session's strand and may co_await (timers, work on
// the worker pool).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "mover/mover.h"
#include "ndmpd/data_server.h"
#include "ndmpd/devices.h"
#include "ndmpd/outbox.h"
#include "ndmpd/server_context.h"
#include "ndmpd/session_state.h"
#include "xdr/messages.h"

namespace ndmpd {

// What a handler answers: an encoded reply body, or a header-only error, or
// nothing (CONNECT_CLOSE).
struct Reply {
  ndmp4_error header_error = NDMP4_NO_ERR;
  ndmp::xdr::Bytes body;
  xdrproc_t proc = nullptr;  // what encoded `body`, checked against the table
  bool send = true;

  template <class T>
  static Reply with(const T& body) {
    Reply r;
    r.proc = ndmp::xdr::Traits<T>::proc();
    if (!ndmp::xdr::encode(body, r.body)) {
      r.header_error = NDMP4_XDR_ENCODE_ERR;
      r.body.clear();
    }
    return r;
  }
  static Reply header(ndmp4_error e) {
    Reply r;
    r.header_error = e;
    return r;
  }
  static Reply none() {
    Reply r;
    r.send = false;
    return r;
  }
};

class Dispatcher;

// A session as its handlers see it.
class SessionContext {
 public:
  SessionContext(ServerContext& server_context, const Dispatcher& dispatcher_ref,
                 Outbox& outbox_ref, std::string peer_text, std::uint64_t session_id)
      : server(server_context),
        dispatcher(dispatcher_ref),
        outbox(outbox_ref),
        peer(std::move(peer_text)),
        id(session_id) {}

  ServerContext& server;
  const Dispatcher& dispatcher;
  Outbox& outbox;
  const std::string peer;  // "127.0.0.1:40522"
  const std::uint64_t id;  // for logs
  SessionState state;
  std::uint32_t request_sequence = 0;  // of the request being handled

  // The devices this session has open (TAPE_OPEN, SCSI_OPEN).
  std::unique_ptr<OpenTape> tape;
  std::unique_ptr<OpenScsi> scsi;

  // The local address the DMA's connection arrived on (the mover offers it
  // first).
  boost::asio::ip::address local_address;
  // The session's mover, made at its first MOVER request (on the strand).
  std::unique_ptr<mover::Mover> mover;
  mover::Mover& mover_on(boost::asio::any_io_executor strand);
  // The mover has the tape (LISTEN or ACTIVE): the DMA may not use it.
  bool mover_owns_tape() const { return mover && mover->owns_tape(); }
  // The mover is LISTEN, ACTIVE or PAUSED (the idle timeout waits).
  bool mover_has_job() const {
    return mover && mover->state().state != NDMP4_MOVER_STATE_IDLE &&
           mover->state().state != NDMP4_MOVER_STATE_HALTED;
  }
  // Halts the mover, if it runs, and waits for it (the session ends).
  boost::asio::awaitable<void> stop_mover();

  // The session's data server, made at its first DATA request.
  std::unique_ptr<DataServer> data;
  DataServer& data_on(boost::asio::any_io_executor strand);
  // The data server listens, is connected or runs an operation.
  bool data_has_job() const { return data && data->has_job(); }
  // Aborts the data server's operation, if any, and waits for it.
  boost::asio::awaitable<void> stop_data();
  // The DMA selected NetApp's connection address extension (IPv6).
  bool ipv6_addresses() const;

  // Closes whatever the session holds, as TAPE_CLOSE / SCSI_CLOSE would
  // (the implicit filemark included), whatever happens: the session is
  // ending.  Blocking work runs on the worker pool.
  boost::asio::awaitable<void> release_devices();

  // "[s12 127.0.0.1:40522 ndmp]" for log lines.
  std::string tag() const;
  // The peer's address without the port: "127.0.0.1", "::1".
  std::string peer_address() const;
};

class Dispatcher {
 public:
  template <std::uint32_t Code>
  using Request = typename ndmp::xdr::Message<Code>::Request;
  template <std::uint32_t Code>
  using SyncHandler = Reply (*)(SessionContext&, const Request<Code>&);
  template <std::uint32_t Code>
  using AsyncHandler = boost::asio::awaitable<Reply> (*)(SessionContext&, const Request<Code>&);

  // A dispatcher with every handler of this server registered.
  static std::shared_ptr<const Dispatcher> create();

  // Handles one request and hands its reply (if any) to the session's
  // outbox.  `header` must be of type REQUEST.
  boost::asio::awaitable<void> dispatch(SessionContext& session, const ndmp4_header& header,
                                        std::span<const std::uint8_t> body) const;

  // Extension classes this server offers, each with its versions (the
  // first is the default).
  const std::map<std::uint16_t, std::vector<std::uint16_t>>& extension_classes() const {
    return extension_classes_;
  }

  template <std::uint32_t Code>
  void on(SyncHandler<Code> fn) {
    add(
        Code,
        [fn](SessionContext& s, const void* req) {
          return fn(s, *static_cast<const Request<Code>*>(req));
        },
        nullptr);
  }
  template <std::uint32_t Code>
  void on(AsyncHandler<Code> fn) {
    add(Code, nullptr, [fn](SessionContext& s, const void* req) {
      return fn(s, *static_cast<const Request<Code>*>(req));
    });
  }
  void add_extension_class(std::uint16_t id, std::vector<std::uint16_t> versions) {
    extension_classes_[id] = std::move(versions);
  }

 private:
  using SyncFn = std::function<Reply(SessionContext&, const void*)>;
  using AsyncFn = std::function<boost::asio::awaitable<Reply>(SessionContext&, const void*)>;
  struct Entry {
    const ndmp::xdr::MessageInfo* info;
    SyncFn sync;
    AsyncFn async;
  };
  void add(std::uint32_t code, SyncFn sync, AsyncFn async);
  // The checks that come before the handler; NDMP4_NO_ERR to go on.
  ndmp4_error admit(SessionContext& session, std::uint32_t code, const Entry*& entry) const;

  std::map<std::uint32_t, Entry> handlers_;
  std::map<std::uint16_t, std::vector<std::uint16_t>> extension_classes_;
};

// Registration, one function per NDMP interface (handlers/*.cpp).
void register_connect_handlers(Dispatcher& d);
void register_config_handlers(Dispatcher& d);
void register_tape_handlers(Dispatcher& d);
void register_scsi_handlers(Dispatcher& d);
void register_mover_handlers(Dispatcher& d);
void register_data_handlers(Dispatcher& d);
void register_test_extension(Dispatcher& d);

// The extension class of a message code (its top 16 bits); 0 for the core.
inline std::uint16_t extension_class(std::uint32_t code) {
  return static_cast<std::uint16_t>(code >> 16);
}

}  // namespace ndmpd
