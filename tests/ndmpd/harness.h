// Drives the Dispatcher without a socket: requests go in as header + body
// bytes, replies and posts come out of a recording Outbox.  Handlers run on
// a private io_context; blocking work on a private worker pool.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <vector>

#include "ndmpd/dispatch.h"

namespace ndmpd::testing {

struct Recorded {
  bool is_reply;
  std::uint32_t code;
  std::uint32_t reply_sequence;
  ndmp4_error header_error;
  ndmp::xdr::Bytes body;
};

class RecordingOutbox : public Outbox {
 public:
  void reply(std::uint32_t code, std::uint32_t seq, ndmp4_error err,
             ndmp::xdr::Bytes body) override {
    messages.push_back({true, code, seq, err, std::move(body)});
  }
  void post(std::uint32_t code, ndmp::xdr::Bytes body) override {
    messages.push_back({false, code, 0, NDMP4_NO_ERR, std::move(body)});
  }
  std::vector<Recorded> messages;
};

// A configuration for tests: user "dma" / "secret", no login delay.
inline Config test_config() {
  Config c;
  c.users.push_back({"dma", std::string("secret"), std::nullopt, false, "test"});
  c.auth_failure_delay = std::chrono::milliseconds(0);
  c.exports.push_back({"/vol0", std::filesystem::temp_directory_path(), "test"});
  return c;
}

class Harness {
 public:
  explicit Harness(Config config = test_config())
      : config_(std::move(config)),
        pool_(2),
        server_(config_, pool_),
        dispatcher_(Dispatcher::create()),
        session_(server_, *dispatcher_, outbox_, "127.0.0.1:5000", 1) {
    register_tar_butype(server_.butypes);
  }
  ~Harness() { pool_.join(); }

  // Dispatches raw bytes as the body of a request with `code`; returns the
  // reply (the last message recorded), or nullopt if there was none.
  std::optional<Recorded> raw(std::uint32_t code, const ndmp::xdr::Bytes& body,
                              ndmp4_header_message_type type = NDMP4_MESSAGE_REQUEST) {
    const std::size_t before = outbox_.messages.size();
    ndmp4_header h{};
    h.sequence = ++sequence_;
    h.message_type = type;
    h.message_code = code;
    boost::asio::io_context io;
    boost::asio::co_spawn(io, dispatcher_->dispatch(session_, h, body), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
    io.run();
    if (outbox_.messages.size() == before) return std::nullopt;
    Recorded r = outbox_.messages.back();
    EXPECT_TRUE(r.is_reply);
    EXPECT_EQ(r.reply_sequence, h.sequence);
    EXPECT_EQ(r.code, code);
    return r;
  }

  // Sends a typed request; returns the header error and the decoded reply.
  template <std::uint32_t Code>
  std::pair<ndmp4_error, ndmp::xdr::Decoded<typename ndmp::xdr::Message<Code>::Reply>> call(
      const typename ndmp::xdr::Message<Code>::Request& req) {
    const auto r = raw(Code, ndmp::xdr::encode(req));
    std::pair<ndmp4_error, ndmp::xdr::Decoded<typename ndmp::xdr::Message<Code>::Reply>> out;
    EXPECT_TRUE(r.has_value());
    if (!r) return out;
    out.first = r->header_error;
    if (r->header_error == NDMP4_NO_ERR) {
      EXPECT_TRUE(out.second.decode(r->body));
    }
    return out;
  }
  template <std::uint32_t Code>
  auto call() {
    return call<Code>(ndmp::xdr::Void{});
  }

  // The error of a request: the header's, else the body's.
  template <std::uint32_t Code>
  ndmp4_error error_of(const typename ndmp::xdr::Message<Code>::Request& req) {
    auto [header, body] = call<Code>(req);
    return header != NDMP4_NO_ERR ? header : body->error;
  }
  template <std::uint32_t Code>
  ndmp4_error error_of() {
    return error_of<Code>(ndmp::xdr::Void{});
  }

  void login() {
    ndmp4_connect_client_auth_request a{};
    a.auth_data.auth_type = NDMP4_AUTH_TEXT;
    a.auth_data.ndmp4_auth_data_u.auth_text = {const_cast<char*>("dma"),
                                               const_cast<char*>("secret")};
    ASSERT_EQ(error_of<NDMP4_CONNECT_CLIENT_AUTH>(a), NDMP4_NO_ERR);
  }

  SessionContext& session() { return session_; }
  RecordingOutbox& outbox() { return outbox_; }
  ServerContext& server() { return server_; }

 private:
  Config config_;
  boost::asio::thread_pool pool_;
  ServerContext server_;
  std::shared_ptr<const Dispatcher> dispatcher_;
  RecordingOutbox outbox_;
  SessionContext session_;
  std::uint32_t sequence_ = 0;
};

}  // namespace ndmpd::testing
