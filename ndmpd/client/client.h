// A DMA-side NDMP v4 client on the same codec as the server: connect, log
// in, send a request and await its reply, and collect the posts (NOTIFY,
// LOG, FH) that arrive meanwhile.  Tests drive the daemon with it; the
// operator CLI will grow from it.
//
// Blocking, with a deadline on every wait.  Transport failures (timeout,
// connection lost, a record that does not frame) throw TransportError; NDMP
// errors come back in the Response.  One thread at a time.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

#include "xdr/codec.h"
#include "xdr/framer.h"
#include "xdr/header.h"
#include "xdr/messages.h"

namespace ndmp::client {

class TransportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One message as received: its header and undecoded body.
struct Message {
  ndmp4_header header{};
  xdr::Bytes body;
};

// The reply to a request: a header error, or a decoded body.
template <class T>
struct Response {
  ndmp4_error header_error = NDMP4_NO_ERR;
  xdr::Decoded<T> body;
  // The NDMP error: the header's, else the body's `error` field.
  ndmp4_error error() const {
    if (header_error != NDMP4_NO_ERR) return header_error;
    if constexpr (requires(const T& t) { t.error; }) {
      return body->error;
    } else {
      return NDMP4_NO_ERR;
    }
  }
  const T* operator->() const { return &*body; }
};

class Client {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Client(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects to HOST:PORT (or [V6]:PORT) and reads the server's first
  // message, NOTIFY_CONNECTION_STATUS.
  void connect(const std::string& address);
  void connect(const std::string& host, std::uint16_t port);

  // The NOTIFY_CONNECTION_STATUS the server opened with.
  ndmp4_connection_status_reason greeting_reason() const { return greeting_reason_; }
  std::uint16_t greeting_version() const { return greeting_version_; }
  const std::string& greeting_text() const { return greeting_text_; }

  // CONNECT_OPEN(4) and CONNECT_CLIENT_AUTH; throw std::runtime_error with
  // the NDMP error when refused.
  void open_and_login_text(const std::string& user, const std::string& password);
  void open_and_login_md5(const std::string& user, const std::string& password);

  // Sends `Code` with `request` and waits for its reply.
  template <std::uint32_t Code>
  Response<typename xdr::Message<Code>::Reply> call(
      const typename xdr::Message<Code>::Request& request) {
    using Reply = typename xdr::Message<Code>::Reply;
    Message m = call_raw(Code, xdr::Traits<typename xdr::Message<Code>::Request>::proc(), &request);
    Response<Reply> r;
    r.header_error = m.header.error_code;
    if (r.header_error == NDMP4_NO_ERR && !r.body.decode(m.body)) {
      throw TransportError("reply to " + xdr::message_name(Code) + " does not decode");
    }
    return r;
  }
  template <std::uint32_t Code>
  Response<typename xdr::Message<Code>::Reply> call() {
    return call<Code>(xdr::Void{});
  }

  // Sends a request without waiting (CONNECT_CLOSE; pipelining tests).
  // Returns its sequence number.
  std::uint32_t send(std::uint32_t code, xdrproc_t proc, const void* body);

  // Sends a message with this header code and an arbitrary body.
  std::uint32_t send_with_body(std::uint32_t code, std::span<const std::uint8_t> body);

  // Writes bytes as they are (malformed input for robustness tests).
  void send_bytes(std::span<const std::uint8_t> bytes);

  // Waits for the reply to request `sequence`; posts that arrive first are
  // kept for next_post().
  Message wait_reply(std::uint32_t sequence);

  // The next post (in arrival order), waiting up to `timeout` for one.
  std::optional<Message> next_post(std::chrono::milliseconds timeout);

  // True once the server has closed the connection (waits up to
  // `timeout`, discarding whatever arrives).
  bool wait_closed(std::chrono::milliseconds timeout);

  void close();
  bool is_open() const { return socket_.is_open(); }

  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  Message call_raw(std::uint32_t code, xdrproc_t proc, const void* body);
  // Reads one whole message before `deadline`; nullopt on timeout.
  std::optional<Message> read_message(Clock::time_point deadline);
  void write_all(std::span<const std::uint8_t> bytes);
  // Runs the io_context until `done` or the deadline; false on timeout.
  bool run_until(const bool& done, Clock::time_point deadline);

  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  std::chrono::milliseconds timeout_;
  xdr::RecordAssembler assembler_;
  std::vector<std::uint8_t> pending_;  // bytes read but not yet framed
  std::deque<Message> posts_;
  std::uint32_t next_sequence_ = 1;
  ndmp4_connection_status_reason greeting_reason_ = NDMP4_REFUSED;
  std::uint16_t greeting_version_ = 0;
  std::string greeting_text_;
};

// The NDMP error's name: "NDMP4_NOT_AUTHORIZED_ERR".
std::string error_name(ndmp4_error e);

}  // namespace ndmp::client
