#include "mover/data_stream.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>

namespace mover {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
}  // namespace

// ---- TCP ----

TcpStream::TcpStream(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}

asio::awaitable<std::pair<error_code, std::size_t>> TcpStream::read_some(
    std::span<std::uint8_t> buffer) {
  auto [ec, n] =
      co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()), kToken);
  co_return std::make_pair(ec, n);
}

asio::awaitable<error_code> TcpStream::write(std::span<const std::span<const std::uint8_t>> bufs) {
  std::vector<asio::const_buffer> seq;
  seq.reserve(bufs.size());
  for (const auto& b : bufs) seq.emplace_back(b.data(), b.size());
  auto [ec, n] = co_await asio::async_write(socket_, seq, kToken);
  (void)n;
  co_return ec;
}

void TcpStream::finish() {
  error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

void TcpStream::close() {
  error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

void tune_data_socket(asio::ip::tcp::socket& s, std::size_t buffer_bytes) {
  error_code ignored;
  if (buffer_bytes > 0) {
    s.set_option(asio::socket_base::receive_buffer_size(static_cast<int>(buffer_bytes)), ignored);
    s.set_option(asio::socket_base::send_buffer_size(static_cast<int>(buffer_bytes)), ignored);
  }
  s.set_option(asio::ip::tcp::no_delay(true), ignored);
  s.set_option(asio::socket_base::keep_alive(true), ignored);
}

// ---- LOCAL ----

LocalPipe::LocalPipe(asio::any_io_executor ex, std::size_t capacity)
    : capacity_(capacity == 0 ? 1 : capacity), readable_(ex), gone_(ex), writable_(ex) {
  readable_.expires_at(asio::steady_timer::time_point::max());
  writable_.expires_at(asio::steady_timer::time_point::max());
  gone_.expires_at(asio::steady_timer::time_point::max());
}

void LocalPipe::reader_gone() {
  reader_gone_ = true;
  finished_ = true;  // nobody reads what would be written
  wake(gone_);
  wake(writable_);
}

asio::awaitable<void> LocalPipe::wait_reader_gone() {
  auto keep = shared_from_this();
  while (!closed_ && !reader_gone_) co_await gone_.async_wait(kToken);
}

asio::awaitable<error_code> LocalPipe::push(std::vector<std::uint8_t> block) {
  auto keep = shared_from_this();
  // A block larger than the capacity goes in alone, into an empty pipe.
  while (!closed_ && !finished_ && bytes_ > 0 && bytes_ + block.size() > capacity_) {
    co_await writable_.async_wait(kToken);
  }
  if (closed_) co_return asio::error::operation_aborted;
  if (finished_) co_return asio::error::broken_pipe;
  if (block.empty()) co_return error_code{};
  bytes_ += block.size();
  blocks_.push_back(std::move(block));
  wake(readable_);
  co_return error_code{};
}

asio::awaitable<std::pair<error_code, std::size_t>> LocalPipe::pull(
    std::span<std::uint8_t> buffer) {
  auto keep = shared_from_this();
  while (!closed_ && bytes_ == 0 && !finished_) {
    co_await readable_.async_wait(kToken);
  }
  if (closed_) co_return std::make_pair(error_code(asio::error::operation_aborted), 0);
  if (bytes_ == 0) co_return std::make_pair(error_code(asio::error::eof), 0);
  std::size_t n = 0;
  while (n < buffer.size() && !blocks_.empty()) {
    std::vector<std::uint8_t>& front = blocks_.front();
    const std::size_t take = std::min(buffer.size() - n, front.size() - front_used_);
    std::memcpy(buffer.data() + n, front.data() + front_used_, take);
    n += take;
    front_used_ += take;
    if (front_used_ == front.size()) {
      blocks_.pop_front();
      front_used_ = 0;
    }
  }
  bytes_ -= n;
  wake(writable_);
  co_return std::make_pair(error_code{}, n);
}

void LocalPipe::finish() {
  finished_ = true;
  wake(readable_);
  wake(writable_);
}

void LocalPipe::close() {
  closed_ = true;
  blocks_.clear();
  bytes_ = 0;
  wake(readable_);
  wake(writable_);
  wake(gone_);
}

namespace {

class LocalEnd final : public DataStream {
 public:
  LocalEnd(std::shared_ptr<LocalPipe> pipe, bool writer)
      : pipe_(std::move(pipe)), writer_(writer) {}
  ~LocalEnd() override {
    if (writer_) {
      pipe_->finish();
    } else {
      pipe_->reader_gone();
    }
  }

  // The writer's end reads nothing but the end: it comes when the reader
  // went away.
  asio::awaitable<std::pair<error_code, std::size_t>> read_some(
      std::span<std::uint8_t> buffer) override {
    if (writer_) {
      co_await pipe_->wait_reader_gone();
      co_return std::make_pair(error_code(asio::error::eof), 0);
    }
    co_return co_await pipe_->pull(buffer);
  }
  asio::awaitable<error_code> write(std::span<const std::span<const std::uint8_t>> bufs) override {
    if (!writer_) co_return asio::error::operation_not_supported;
    std::size_t total = 0;
    for (const auto& b : bufs) total += b.size();
    std::vector<std::uint8_t> block;
    block.reserve(total);
    for (const auto& b : bufs) block.insert(block.end(), b.begin(), b.end());
    co_return co_await pipe_->push(std::move(block));
  }
  void finish() override {
    if (writer_) {
      pipe_->finish();
    } else {
      pipe_->reader_gone();
    }
  }
  void close() override { pipe_->close(); }

 private:
  std::shared_ptr<LocalPipe> pipe_;
  bool writer_;
};

}  // namespace

std::unique_ptr<DataStream> LocalPipe::writer_end() {
  return std::make_unique<LocalEnd>(shared_from_this(), true);
}

std::unique_ptr<DataStream> LocalPipe::reader_end() {
  return std::make_unique<LocalEnd>(shared_from_this(), false);
}

}  // namespace mover
