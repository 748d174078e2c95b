#include "ndmpd/client/client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <ctime>

#include "ndmpd/auth.h"
#include "ndmpd/config.h"

namespace ndmp::client {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
// Far more than any message the tests expect; the server's own limit is
// what is under test, not the client's.
constexpr std::size_t kMaxRecord = 64u << 20;
}  // namespace

std::string error_name(ndmp4_error e) {
  static const char* const kNames[] = {"NO_ERR",
                                       "NOT_SUPPORTED_ERR",
                                       "DEVICE_BUSY_ERR",
                                       "DEVICE_OPENED_ERR",
                                       "NOT_AUTHORIZED_ERR",
                                       "PERMISSION_ERR",
                                       "DEV_NOT_OPEN_ERR",
                                       "IO_ERR",
                                       "TIMEOUT_ERR",
                                       "ILLEGAL_ARGS_ERR",
                                       "NO_TAPE_LOADED_ERR",
                                       "WRITE_PROTECT_ERR",
                                       "EOF_ERR",
                                       "EOM_ERR",
                                       "FILE_NOT_FOUND_ERR",
                                       "BAD_FILE_ERR",
                                       "NO_DEVICE_ERR",
                                       "NO_BUS_ERR",
                                       "XDR_DECODE_ERR",
                                       "ILLEGAL_STATE_ERR",
                                       "UNDEFINED_ERR",
                                       "XDR_ENCODE_ERR",
                                       "NO_MEM_ERR",
                                       "CONNECT_ERR",
                                       "SEQUENCE_NUM_ERR",
                                       "READ_IN_PROGRESS_ERR",
                                       "PRECONDITION_ERR",
                                       "CLASS_NOT_SUPPORTED_ERR",
                                       "VERSION_NOT_SUPPORTED_ERR",
                                       "EXT_DUPL_CLASSES_ERR",
                                       "EXT_DANDN_ILLEGAL_ERR"};
  const auto i = static_cast<std::size_t>(e);
  if (i < std::size(kNames)) return std::string("NDMP4_") + kNames[i];
  return "NDMP4 error " + std::to_string(i);
}

Client::Client(std::chrono::milliseconds timeout)
    : socket_(io_), timeout_(timeout), assembler_(kMaxRecord) {}

Client::~Client() { close(); }

void Client::close() {
  boost::system::error_code ec;
  if (socket_.is_open()) {
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }
}

bool Client::run_until(const bool& done, Clock::time_point deadline) {
  io_.restart();
  while (!done) {
    const auto now = Clock::now();
    if (now >= deadline || io_.run_one_for(deadline - now) == 0) {
      if (done) break;
      if (Clock::now() < deadline) continue;
      boost::system::error_code ec;
      socket_.cancel(ec);  // let the pending operation finish, aborted
      io_.restart();
      io_.run();
      return false;
    }
  }
  return true;
}

void Client::connect(const std::string& address) {
  std::string host;
  std::uint16_t port = 0;
  if (!ndmpd::parse_listen_address(address, host, port)) {
    throw TransportError("not HOST:PORT: " + address);
  }
  connect(host, port);
}

void Client::connect(const std::string& host, std::uint16_t port) {
  const tcp::endpoint ep(asio::ip::make_address(host), port);
  bool done = false;
  boost::system::error_code result;
  socket_.async_connect(ep, [&](boost::system::error_code ec) {
    result = ec;
    done = true;
  });
  if (!run_until(done, Clock::now() + timeout_)) throw TransportError("connect: timeout");
  if (result) throw TransportError("connect: " + result.message());
  socket_.set_option(tcp::no_delay(true));

  const auto m = read_message(Clock::now() + timeout_);
  if (!m) throw TransportError("no NOTIFY_CONNECTION_STATUS from the server");
  if (m->header.message_code != NDMP4_NOTIFY_CONNECTION_STATUS) {
    throw TransportError("the server's first message is " +
                         xdr::message_name(m->header.message_code));
  }
  xdr::Decoded<ndmp4_notify_connection_status_post> post;
  if (!post.decode(m->body)) throw TransportError("NOTIFY_CONNECTION_STATUS does not decode");
  greeting_reason_ = post->reason;
  greeting_version_ = post->protocol_version;
  greeting_text_ = post->text_reason ? post->text_reason : "";
}

void Client::open_and_login_text(const std::string& user, const std::string& password) {
  ndmp4_connect_open_request open{4};
  if (const auto r = call<NDMP4_CONNECT_OPEN>(open); r.error() != NDMP4_NO_ERR) {
    throw std::runtime_error("CONNECT_OPEN: " + error_name(r.error()));
  }
  ndmp4_connect_client_auth_request auth{};
  auth.auth_data.auth_type = NDMP4_AUTH_TEXT;
  auth.auth_data.ndmp4_auth_data_u.auth_text = {const_cast<char*>(user.c_str()),
                                                const_cast<char*>(password.c_str())};
  if (const auto r = call<NDMP4_CONNECT_CLIENT_AUTH>(auth); r.error() != NDMP4_NO_ERR) {
    throw std::runtime_error("CONNECT_CLIENT_AUTH: " + error_name(r.error()));
  }
}

void Client::open_and_login_md5(const std::string& user, const std::string& password) {
  ndmp4_connect_open_request open{4};
  if (const auto r = call<NDMP4_CONNECT_OPEN>(open); r.error() != NDMP4_NO_ERR) {
    throw std::runtime_error("CONNECT_OPEN: " + error_name(r.error()));
  }
  ndmp4_config_get_auth_attr_request attr{NDMP4_AUTH_MD5};
  const auto a = call<NDMP4_CONFIG_GET_AUTH_ATTR>(attr);
  if (a.error() != NDMP4_NO_ERR) {
    throw std::runtime_error("CONFIG_GET_AUTH_ATTR: " + error_name(a.error()));
  }
  ndmpd::Challenge challenge;
  std::memcpy(challenge.data(), a->server_attr.ndmp4_auth_attr_u.challenge, 64);
  ndmp4_connect_client_auth_request auth{};
  auth.auth_data.auth_type = NDMP4_AUTH_MD5;
  auth.auth_data.ndmp4_auth_data_u.auth_md5.auth_id = const_cast<char*>(user.c_str());
  const auto digest = ndmpd::md5_digest(password, challenge);
  std::memcpy(auth.auth_data.ndmp4_auth_data_u.auth_md5.auth_digest, digest.data(), 16);
  if (const auto r = call<NDMP4_CONNECT_CLIENT_AUTH>(auth); r.error() != NDMP4_NO_ERR) {
    throw std::runtime_error("CONNECT_CLIENT_AUTH: " + error_name(r.error()));
  }
}

std::uint32_t Client::send(std::uint32_t code, xdrproc_t proc, const void* body) {
  ndmp4_header h{};
  h.sequence = next_sequence_++;
  h.time_stamp = static_cast<std::uint32_t>(std::time(nullptr));
  h.message_type = NDMP4_MESSAGE_REQUEST;
  h.message_code = code;
  xdr::Bytes out;
  if (!xdr::encode_message(h, proc, body, out)) {
    throw TransportError("request " + xdr::message_name(code) + " does not encode");
  }
  write_all(out);
  return h.sequence;
}

std::uint32_t Client::send_with_body(std::uint32_t code, std::span<const std::uint8_t> body) {
  ndmp4_header h{};
  h.sequence = next_sequence_++;
  h.message_type = NDMP4_MESSAGE_REQUEST;
  h.message_code = code;
  const auto head = xdr::frame_head(h, body.size());
  xdr::Bytes out(head.begin(), head.end());
  out.insert(out.end(), body.begin(), body.end());
  write_all(out);
  return h.sequence;
}

void Client::send_bytes(std::span<const std::uint8_t> bytes) { write_all(bytes); }

void Client::write_all(std::span<const std::uint8_t> bytes) {
  bool done = false;
  boost::system::error_code result;
  asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()),
                    [&](boost::system::error_code ec, std::size_t) {
                      result = ec;
                      done = true;
                    });
  if (!run_until(done, Clock::now() + timeout_)) throw TransportError("write: timeout");
  if (result) throw TransportError("write: " + result.message());
}

Message Client::call_raw(std::uint32_t code, xdrproc_t proc, const void* body) {
  return wait_reply(send(code, proc, body));
}

Message Client::wait_reply(std::uint32_t sequence) {
  const auto deadline = Clock::now() + timeout_;
  for (;;) {
    auto m = read_message(deadline);
    if (!m) throw TransportError("no reply to request " + std::to_string(sequence));
    if (m->header.message_type == NDMP4_MESSAGE_REPLY && m->header.reply_sequence == sequence) {
      return std::move(*m);
    }
    if (m->header.message_type == NDMP4_MESSAGE_REQUEST) posts_.push_back(std::move(*m));
    // A reply to another request (one sent without waiting) is dropped.
  }
}

std::optional<Message> Client::next_post(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (posts_.empty()) {
    auto m = read_message(deadline);
    if (!m) return std::nullopt;
    if (m->header.message_type == NDMP4_MESSAGE_REQUEST) posts_.push_back(std::move(*m));
  }
  Message m = std::move(posts_.front());
  posts_.pop_front();
  return m;
}

bool Client::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  try {
    while (read_message(deadline)) {
    }
  } catch (const TransportError&) {
    return true;  // EOF or reset
  }
  return false;
}

std::optional<Message> Client::read_message(Clock::time_point deadline) {
  std::array<std::uint8_t, 65536> buf;
  for (;;) {
    while (!pending_.empty()) {
      const auto r = assembler_.feed(pending_);
      pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(r.consumed));
      if (r.status == xdr::RecordAssembler::Status::kTooLarge) {
        throw TransportError("the server sent an oversize record");
      }
      if (r.status == xdr::RecordAssembler::Status::kRecord) {
        const xdr::Bytes record = assembler_.take_record();
        const auto h = xdr::decode_header(record);
        if (!h) throw TransportError("the server sent a record without a header");
        const auto body = xdr::body_of(record);
        return Message{*h, xdr::Bytes(body.begin(), body.end())};
      }
    }
    bool done = false;
    boost::system::error_code result;
    std::size_t n = 0;
    socket_.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t k) {
      result = ec;
      n = k;
      done = true;
    });
    if (!run_until(done, deadline)) return std::nullopt;
    if (result) throw TransportError("read: " + result.message());
    pending_.insert(pending_.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
}

}  // namespace ndmp::client
