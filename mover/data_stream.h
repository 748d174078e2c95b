// A data connection as the mover (and the data server) use it: a byte
// stream with asynchronous reads and writes and a close that ends both.
//
// Two kinds:
//  - TcpStream: a connected socket, with large socket buffers.
//  - LocalPipe: NDMP's LOCAL connection, for a data server and a mover of
//    the same session: an in-process bounded queue of blocks, no socket.
//    The writer hands over whole blocks (moved, not copied); the reader
//    copies out of them straight into its records.  Both ends block
//    (asynchronously) when the queue is full or empty: backpressure both
//    ways.
//
// Everything runs on one executor (the session's strand); not thread-safe.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace mover {

class DataStream {
 public:
  virtual ~DataStream() = default;
  // Up to buffer.size() bytes; 0 bytes with eof at the end of the stream.
  virtual boost::asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read_some(
      std::span<std::uint8_t> buffer) = 0;
  // All of the buffers, in order.
  virtual boost::asio::awaitable<boost::system::error_code> write(
      std::span<const std::span<const std::uint8_t>> buffers) = 0;
  // No more writes from this end: the reader sees the end of the stream
  // once it has read what was written.
  virtual void finish() = 0;
  // Ends the connection at once; pending operations complete with
  // operation_aborted.
  virtual void close() = 0;
};

class TcpStream final : public DataStream {
 public:
  explicit TcpStream(boost::asio::ip::tcp::socket socket);
  boost::asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read_some(
      std::span<std::uint8_t> buffer) override;
  boost::asio::awaitable<boost::system::error_code> write(
      std::span<const std::span<const std::uint8_t>> buffers) override;
  void finish() override;
  void close() override;
  boost::asio::ip::tcp::socket& socket() { return socket_; }

 private:
  boost::asio::ip::tcp::socket socket_;
};

// Sets the socket options of a data connection: buffers of `buffer_bytes`
// each way (0 leaves the system's), no Nagle delay, keepalive.
void tune_data_socket(boost::asio::ip::tcp::socket& s, std::size_t buffer_bytes);

class LocalPipe : public std::enable_shared_from_this<LocalPipe> {
 public:
  // At most `capacity` bytes wait in the pipe.
  LocalPipe(boost::asio::any_io_executor ex, std::size_t capacity);

  // The two ends.  Each end is a DataStream; closing either ends both.
  std::unique_ptr<DataStream> writer_end();
  std::unique_ptr<DataStream> reader_end();

  // A block handed over whole (the writer's fast path).
  boost::asio::awaitable<boost::system::error_code> push(std::vector<std::uint8_t> block);
  boost::asio::awaitable<std::pair<boost::system::error_code, std::size_t>> pull(
      std::span<std::uint8_t> buffer);
  void finish();
  void close();
  // The reading end went away: the writer's end reads the end of stream.
  void reader_gone();
  // Waits until the reading end went away or the pipe closed.
  boost::asio::awaitable<void> wait_reader_gone();
  std::size_t buffered() const { return bytes_; }

 private:
  void wake(boost::asio::steady_timer& t) { t.cancel(); }

  std::size_t capacity_;
  std::deque<std::vector<std::uint8_t>> blocks_;
  std::size_t front_used_ = 0;  // bytes of blocks_.front() already read
  std::size_t bytes_ = 0;       // unread bytes in blocks_
  bool finished_ = false;
  bool closed_ = false;
  bool reader_gone_ = false;
  boost::asio::steady_timer readable_;
  boost::asio::steady_timer gone_;
  boost::asio::steady_timer writable_;
};

}  // namespace mover
