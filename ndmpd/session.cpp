#include "ndmpd/session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <ctime>

#include "xdr/framer.h"

namespace ndmpd {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using ndmp::xdr::Bytes;

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
// The reader stops taking requests while more than this waits to be sent
// (a DMA that does not read its replies must not make the server buffer
// without bound).
constexpr std::size_t kQueueHighWater = 64u << 20;
constexpr std::size_t kReadChunk = 32u << 10;
constexpr std::size_t kMaxBuffersPerWrite = 64;
constexpr auto kDrainLimit = std::chrono::seconds(5);

std::string endpoint_text(const asio::ip::tcp::socket& s) {
  boost::system::error_code ec;
  const auto ep = s.remote_endpoint(ec);
  if (ec) return "?";
  const auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

}  // namespace

Session::Session(Socket socket, ServerContext& server, std::shared_ptr<const Dispatcher> dispatcher,
                 std::uint64_t id, OnClosed on_closed)
    : socket_(std::move(socket)),
      dispatcher_(std::move(dispatcher)),
      context_(server, *dispatcher_, *this, endpoint_text(socket_), id),
      on_closed_(std::move(on_closed)),
      writer_wake_(socket_.get_executor()),
      writer_done_(socket_.get_executor()),
      space_(socket_.get_executor()),
      watchdog_timer_(socket_.get_executor()),
      last_activity_(std::chrono::steady_clock::now()) {
  boost::system::error_code ec;
  const auto local = socket_.local_endpoint(ec);
  if (!ec) context_.local_address = local.address();
}

Session::~Session() = default;

void Session::start() { asio::co_spawn(socket_.get_executor(), run(), asio::detached); }

void Session::shutdown() {
  asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
    self->shutting_down_ = true;
    self->watchdog_timer_.cancel();
  });
}

void Session::stop_now() {
  asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->close(); });
}

asio::awaitable<void> Session::run() {
  auto self = shared_from_this();
  boost::system::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  socket_.set_option(asio::socket_base::keep_alive(true), ignored);
  socket_.non_blocking(true, ignored);  // for try_write_now(); async operations do not care
  spdlog::info("{} connected", context_.tag());

  // The server speaks first: NOTIFY_CONNECTION_STATUS with its version.
  ndmp4_notify_connection_status_post hello{};
  hello.reason = NDMP4_CONNECTED;
  hello.protocol_version = NDMP4_VER;
  hello.text_reason = const_cast<char*>("");
  Outbox::post<NDMP4_NOTIFY_CONNECTION_STATUS>(hello);

  writer_running_ = true;
  asio::co_spawn(socket_.get_executor(), writer(), asio::detached);

  try {
    co_await (reader() || watchdog());
  } catch (const std::exception& e) {
    // A failure of the session itself (not of a request): end it cleanly.
    spdlog::error("{} session failed: {}", context_.tag(), e.what());
  }

  if (shutting_down_ && phase_ == Phase::kRunning) {
    ndmp4_notify_connection_status_post bye{};
    bye.reason = NDMP4_SHUTDOWN;
    bye.protocol_version = NDMP4_VER;
    bye.text_reason = const_cast<char*>("");
    Outbox::post<NDMP4_NOTIFY_CONNECTION_STATUS>(bye);
  }
  co_await drain(kDrainLimit);
  close();
  // The data server and the mover stop first (the mover may be writing the tape), then whatever
  // the session held goes back (an implicit filemark first), so that another session can open
  // it at once.
  co_await context_.stop_data();
  co_await context_.stop_mover();
  co_await context_.release_devices();
  spdlog::info("{} closed", context_.tag());
  if (on_closed_) on_closed_(this);
}

asio::awaitable<void> Session::reader() {
  std::vector<std::uint8_t> buf(kReadChunk);
  ndmp::xdr::RecordAssembler assembler(context_.server.config.max_message_bytes);
  while (phase_ == Phase::kRunning && !context_.state.closing && !shutting_down_) {
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf), kToken);
    if (ec == asio::error::operation_aborted) co_return;  // shutdown or a timeout
    if (ec) {
      if (ec != asio::error::eof) {
        spdlog::info("{} connection lost: {}", context_.tag(), ec.message());
      }
      phase_ = Phase::kClosed;  // nothing more can be sent either
      co_return;
    }
    last_activity_ = std::chrono::steady_clock::now();
    std::span<const std::uint8_t> data(buf.data(), n);
    while (!data.empty()) {
      const auto r = assembler.feed(data);
      data = data.subspan(r.consumed);
      if (r.status == ndmp::xdr::RecordAssembler::Status::kTooLarge) {
        spdlog::warn("{} record of {} bytes exceeds the limit of {}: closing the session",
                     context_.tag(), assembler.announced_length(),
                     context_.server.config.max_message_bytes);
        phase_ = Phase::kClosed;
        co_return;
      }
      if (r.status != ndmp::xdr::RecordAssembler::Status::kRecord) continue;
      const Bytes record = assembler.take_record();
      const auto header = ndmp::xdr::decode_header(record);
      if (!header) {
        // The spec: a message whose header cannot be decoded is discarded.
        spdlog::warn("{} discarding a {}-byte record: too short for a header", context_.tag(),
                     record.size());
        continue;
      }
      while (queued_bytes_ > kQueueHighWater && phase_ == Phase::kRunning) {
        space_.expires_at(std::chrono::steady_clock::time_point::max());
        co_await space_.async_wait(kToken);
      }
      busy_ = true;
      // A request whose handler fails unexpectedly (throws) ends the session:
      // the DMA gets UNDEFINED_ERR for it, and what the session held is
      // released as on any other end.  The exception must not leave this
      // coroutine: it would strand the watchdog running beside it.
      bool failed = false;
      try {
        co_await dispatcher_->dispatch(context_, *header, ndmp::xdr::body_of(record));
      } catch (const std::exception& e) {
        spdlog::error("{} {} failed: {}; session failed, closing it", context_.tag(),
                      ndmp::xdr::message_name(header->message_code), e.what());
        failed = true;
      }
      busy_ = false;
      if (failed) {
        context_.outbox.reply(header->message_code, header->sequence, NDMP4_UNDEFINED_ERR, {});
        co_return;
      }
      last_activity_ = std::chrono::steady_clock::now();
      if (context_.state.closing || shutting_down_ || phase_ != Phase::kRunning) co_return;
    }
  }
}

asio::awaitable<void> Session::watchdog() {
  const Config& cfg = context_.server.config;
  const auto started = std::chrono::steady_clock::now();
  for (;;) {
    // Cancelled when the reader ended first: nothing left to watch.
    if ((co_await asio::this_coro::cancellation_state).cancelled() !=
        asio::cancellation_type::none) {
      co_return;
    }
    const auto now = std::chrono::steady_clock::now();
    // A session whose mover has a job (listening, moving, or paused for the
    // DMA) is not idle, however quiet its DMA is.
    if (context_.mover_has_job() || context_.data_has_job()) last_activity_ = now;
    if (shutting_down_ && !busy_) co_return;  // ends the reader with it
    if (!busy_ && !context_.state.authenticated && now - started >= cfg.login_timeout) {
      spdlog::warn("{} no login within {} s: closing", context_.tag(), cfg.login_timeout.count());
      co_return;
    }
    if (!busy_ && now - last_activity_ >= cfg.idle_timeout) {
      spdlog::info("{} idle for {} s: closing", context_.tag(), cfg.idle_timeout.count());
      co_return;
    }
    auto next = last_activity_ + cfg.idle_timeout;
    if (!context_.state.authenticated) next = std::min(next, started + cfg.login_timeout);
    if (busy_ || next <= now) next = now + std::chrono::seconds(1);
    watchdog_timer_.expires_at(next);
    co_await watchdog_timer_.async_wait(kToken);
  }
}

asio::awaitable<void> Session::writer() {
  auto self = shared_from_this();
  std::vector<asio::const_buffer> buffers;
  while (phase_ != Phase::kClosed) {
    if (queue_.empty()) {
      if (phase_ == Phase::kDraining) break;
      writer_wake_.expires_at(std::chrono::steady_clock::time_point::max());
      writer_idle_ = true;
      co_await writer_wake_.async_wait(kToken);
      writer_idle_ = false;
      continue;
    }
    // Everything queued goes out in one gathered write.
    buffers.clear();
    std::size_t count = 0;
    for (const Outgoing& m : queue_) {
      if (count == kMaxBuffersPerWrite) break;
      const std::size_t skip = m.sent;  // only the first can be partly sent
      if (skip < m.head.size()) buffers.emplace_back(asio::buffer(m.head) + skip);
      if (!m.body.empty()) {
        buffers.emplace_back(asio::buffer(m.body) +
                             (skip > m.head.size() ? skip - m.head.size() : 0));
      }
      ++count;
    }
    auto [ec, n] = co_await asio::async_write(socket_, buffers, kToken);
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        spdlog::info("{} write failed: {}", context_.tag(), ec.message());
      }
      phase_ = Phase::kClosed;
      break;
    }
    for (std::size_t i = 0; i < count; ++i) {
      queued_bytes_ -= queue_.front().size() - queue_.front().sent;
      queue_.pop_front();
    }
    space_.cancel();
  }
  writer_running_ = false;
  writer_idle_ = false;
  writer_done_.cancel();
  if (phase_ == Phase::kClosed) {
    // The connection is gone: make the reader notice.
    boost::system::error_code ignored;
    socket_.cancel(ignored);
  }
}

asio::awaitable<void> Session::drain(std::chrono::milliseconds limit) {
  if (phase_ == Phase::kRunning) phase_ = Phase::kDraining;
  writer_wake_.cancel();
  space_.cancel();
  if (!writer_running_) co_return;
  writer_done_.expires_after(limit);
  co_await writer_done_.async_wait(kToken);
}

void Session::close() {
  phase_ = Phase::kClosed;
  boost::system::error_code ignored;
  if (socket_.is_open()) {
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }
  writer_wake_.cancel();
  writer_done_.cancel();
  space_.cancel();
  watchdog_timer_.cancel();
}

void Session::reply(std::uint32_t code, std::uint32_t reply_sequence, ndmp4_error header_error,
                    Bytes body) {
  enqueue(NDMP4_MESSAGE_REPLY, code, reply_sequence, header_error, std::move(body));
}

void Session::post(std::uint32_t code, Bytes body) {
  enqueue(NDMP4_MESSAGE_REQUEST, code, 0, NDMP4_NO_ERR, std::move(body));
}

void Session::enqueue(ndmp4_header_message_type type, std::uint32_t code,
                      std::uint32_t reply_sequence, ndmp4_error error, Bytes body) {
  if (phase_ == Phase::kClosed) return;
  if (error != NDMP4_NO_ERR) body.clear();  // a header error has no body
  ndmp4_header h{};
  h.sequence = next_sequence_++;
  h.time_stamp = static_cast<std::uint32_t>(std::time(nullptr));
  h.message_type = type;
  h.message_code = code;
  h.reply_sequence = reply_sequence;
  h.error_code = error;
  Outgoing m{ndmp::xdr::frame_head(h, body.size()), std::move(body)};
  // Nothing else is queued or being written: send it now, which saves the
  // writer a wake-up for the common reply that fits the socket buffer.
  if (queue_.empty() && writer_idle_ && try_write_now(m)) return;
  queued_bytes_ += m.size() - m.sent;
  queue_.push_back(std::move(m));
  writer_wake_.cancel();
}

bool Session::try_write_now(Outgoing& m) {
  // The socket is in non-blocking mode (run()): write_some returns at once.
  const std::array<asio::const_buffer, 2> buffers = {asio::buffer(m.head), asio::buffer(m.body)};
  boost::system::error_code ec;
  const std::size_t n = socket_.write_some(buffers, ec);
  if (ec) return false;  // would block, or an error the writer will meet and report
  m.sent = n;
  return n == m.size();
}

}  // namespace ndmpd
