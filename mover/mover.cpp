#include "mover/mover.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>

#include "mover/offload.h"
#include "scsi/page_bytes.h"

namespace mover {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using asio::ip::tcp;
using boost::system::error_code;
using tape::Condition;

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);

}  // namespace

// Records from the connection: data holds whole records (the last one of
// the stream may be partial until padded), `done` bytes of them are on
// tape.
struct Mover::Block {
  scsi::PageBytes data;  // records at page-aligned offsets when their size allows
  std::size_t filled = 0;
  std::size_t done = 0;
  bool last = false;  // the stream ended after this block
};

// Records from the tape: record i of the batch is stream record first + i,
// its bytes at i * record_size.
struct Mover::ReadBatch {
  std::uint64_t first = 0;
  std::uint64_t generation = 0;  // of the window it was read in
  scsi::PageBytes data;
  std::vector<std::uint32_t> lengths;
  bool ended = false;  // stopped by `end` (a filemark, blank tape, an error)
  tape::Status end;
};

// Counts an engine coroutine while it runs.
class TaskCount {
 public:
  TaskCount(int& n, asio::steady_timer& done) : n_(n), done_(done) { ++n_; }
  ~TaskCount() {
    if (--n_ == 0) done_.cancel();
  }
  TaskCount(const TaskCount&) = delete;
  TaskCount& operator=(const TaskCount&) = delete;

 private:
  int& n_;
  asio::steady_timer& done_;
};

Mover::Mover(asio::any_io_executor strand, asio::thread_pool& workers, const Settings& settings,
             const AddressPolicy& policy, Hooks hooks)
    : strand_(strand),
      workers_(workers),
      settings_(settings),
      policy_(policy),
      hooks_(std::move(hooks)),
      wake_(strand),
      space_(strand),
      engine_done_(strand) {
  // Waiting means waiting for a cancel(): the timers never expire.
  wake_.expires_at(asio::steady_timer::time_point::max());
  space_.expires_at(asio::steady_timer::time_point::max());
  engine_done_.expires_at(asio::steady_timer::time_point::max());
}

Mover::~Mover() { close_connections(); }

asio::awaitable<void> Mover::wait(asio::steady_timer& t) { co_await t.async_wait(kToken); }

std::uint64_t Mover::window_end() const {
  if (st_.window_length == kInfinity) return kInfinity;
  const std::uint64_t end = st_.window_offset + st_.window_length;
  return end < st_.window_offset ? kInfinity : end;
}

// ---- requests ----

ndmp4_error Mover::set_record_size(std::uint32_t length) {
  if (st_.state != NDMP4_MOVER_STATE_IDLE) return NDMP4_ILLEGAL_STATE_ERR;
  if (length == 0 || length > settings_.max_record_size) return NDMP4_ILLEGAL_ARGS_ERR;
  st_.record_size = length;
  st_.window_offset = 0;
  st_.window_length = 0;
  return NDMP4_NO_ERR;
}

ndmp4_error Mover::set_window(std::uint64_t offset, std::uint64_t length) {
  if (st_.state != NDMP4_MOVER_STATE_IDLE && st_.state != NDMP4_MOVER_STATE_PAUSED) {
    return NDMP4_ILLEGAL_STATE_ERR;  // v4: not in LISTEN (ndmjob's test-mover checks it)
  }
  if (st_.record_size == 0) return NDMP4_PRECONDITION_ERR;
  // "All ones" is the largest window from any offset (a DMA's next
  // cartridge starts at the bytes already written, with an infinite length).
  const bool infinite = length == kInfinity || offset + length == kInfinity;
  if (!infinite && offset + length < offset) return NDMP4_ILLEGAL_ARGS_ERR;
  if (st_.state == NDMP4_MOVER_STATE_PAUSED) {
    if (st_.mode == NDMP4_MOVER_MODE_READ && !infinite && length % st_.record_size != 0) {
      return NDMP4_ILLEGAL_ARGS_ERR;
    }
    if (st_.mode == NDMP4_MOVER_MODE_WRITE && offset % st_.record_size != 0) {
      return NDMP4_ILLEGAL_ARGS_ERR;
    }
  }
  st_.window_offset = offset;
  st_.window_length = length;
  st_.record_num = offset / st_.record_size;
  ++window_generation_;
  return NDMP4_NO_ERR;
}

ndmp4_error Mover::check_ready(ndmp4_mover_mode mode) const {
  if (st_.record_size == 0) return NDMP4_PRECONDITION_ERR;
  const bool infinite =
      st_.window_length == kInfinity || st_.window_offset + st_.window_length == kInfinity;
  if (mode == NDMP4_MOVER_MODE_READ && !infinite && st_.window_length % st_.record_size != 0) {
    return NDMP4_PRECONDITION_ERR;
  }
  if (mode == NDMP4_MOVER_MODE_WRITE && st_.window_offset % st_.record_size != 0) {
    return NDMP4_PRECONDITION_ERR;
  }
  return NDMP4_NO_ERR;
}

ndmp4_error Mover::listen_tcp(ndmp4_mover_mode mode,
                              const std::vector<asio::ip::address>& addresses,
                              std::vector<tcp::endpoint>& offered) {
  if (st_.state != NDMP4_MOVER_STATE_IDLE) return NDMP4_ILLEGAL_STATE_ERR;
  offered.clear();
  if (open_listeners(strand_, addresses, settings_, hooks_.tag() + " MOVER_LISTEN", acceptors_,
                     offered) != NDMP4_NO_ERR) {
    close_connections();
    return NDMP4_IO_ERR;
  }
  st_.state = NDMP4_MOVER_STATE_LISTEN;
  st_.mode = mode;
  st_.listening = offered;
  st_.connection = {Connection::Kind::kTcp, offered.front()};
  for (auto& acceptor : acceptors_) {
    asio::co_spawn(strand_, accept_loop(acceptor), asio::detached);
  }
  return NDMP4_NO_ERR;
}

ndmp4_error Mover::listen_local(ndmp4_mover_mode mode) {
  if (st_.state != NDMP4_MOVER_STATE_IDLE) return NDMP4_ILLEGAL_STATE_ERR;
  st_.state = NDMP4_MOVER_STATE_LISTEN;
  st_.mode = mode;
  st_.connection = {Connection::Kind::kLocal, {}};
  return NDMP4_NO_ERR;
}

bool Mover::attach_local(std::unique_ptr<DataStream> stream) {
  if (st_.state != NDMP4_MOVER_STATE_LISTEN || st_.connection.kind != Connection::Kind::kLocal) {
    return false;
  }
  become_active(std::move(stream), {Connection::Kind::kLocal, {}});
  return true;
}

ndmp4_error Mover::connect_local(ndmp4_mover_mode mode, std::unique_ptr<DataStream> stream) {
  if (st_.state != NDMP4_MOVER_STATE_IDLE) return NDMP4_ILLEGAL_STATE_ERR;
  st_.mode = mode;
  become_active(std::move(stream), {Connection::Kind::kLocal, {}});
  return NDMP4_NO_ERR;
}

asio::awaitable<ndmp4_error> Mover::connect_tcp(ndmp4_mover_mode mode,
                                                const std::vector<tcp::endpoint>& peers) {
  if (st_.state != NDMP4_MOVER_STATE_IDLE) co_return NDMP4_ILLEGAL_STATE_ERR;
  std::optional<tcp::socket> socket;
  const ndmp4_error e =
      co_await dial(strand_, peers, policy_, settings_, hooks_.tag() + " MOVER_CONNECT", socket);
  if (e != NDMP4_NO_ERR) co_return e;
  // The DMA may have aborted while the connection was being made.
  if (st_.state != NDMP4_MOVER_STATE_IDLE) co_return NDMP4_ILLEGAL_STATE_ERR;
  error_code ec;
  const tcp::endpoint peer = socket->remote_endpoint(ec);
  st_.mode = mode;
  become_active(std::make_unique<TcpStream>(std::move(*socket)), {Connection::Kind::kTcp, peer});
  co_return NDMP4_NO_ERR;
}

ndmp4_error Mover::read(std::uint64_t offset, std::uint64_t length) {
  if (st_.state != NDMP4_MOVER_STATE_ACTIVE || st_.mode != NDMP4_MOVER_MODE_WRITE) {
    return NDMP4_ILLEGAL_STATE_ERR;
  }
  if (st_.bytes_left_to_read != 0) return NDMP4_READ_IN_PROGRESS_ERR;
  if (length == 0) return NDMP4_ILLEGAL_ARGS_ERR;
  if (length != kInfinity && offset + length < offset) return NDMP4_ILLEGAL_ARGS_ERR;
  st_.seek_position = offset;
  st_.bytes_left_to_read = length;
  read_at_ = offset;
  wake_.cancel();
  return NDMP4_NO_ERR;
}

ndmp4_error Mover::resume() {
  if (st_.state != NDMP4_MOVER_STATE_PAUSED) return NDMP4_ILLEGAL_STATE_ERR;
  st_.state = NDMP4_MOVER_STATE_ACTIVE;
  st_.pause_reason = NDMP4_MOVER_PAUSE_NA;
  wake_.cancel();
  return NDMP4_NO_ERR;
}

asio::awaitable<ndmp4_error> Mover::abort() {
  if (st_.state == NDMP4_MOVER_STATE_IDLE) co_return NDMP4_ILLEGAL_STATE_ERR;
  halt(NDMP4_MOVER_HALT_ABORTED);
  co_await wait_for_engine();
  co_return NDMP4_NO_ERR;
}

asio::awaitable<ndmp4_error> Mover::close() {
  // The draft allows it in PAUSED; ndmjob's DMA also sends it while ACTIVE
  // when a recovery is complete.
  if (st_.state != NDMP4_MOVER_STATE_PAUSED && st_.state != NDMP4_MOVER_STATE_ACTIVE) {
    co_return NDMP4_ILLEGAL_STATE_ERR;
  }
  if (stream_) stream_->finish();
  halt(NDMP4_MOVER_HALT_CONNECT_CLOSED);
  co_await wait_for_engine();
  co_return NDMP4_NO_ERR;
}

asio::awaitable<ndmp4_error> Mover::stop() {
  if (st_.state != NDMP4_MOVER_STATE_HALTED) co_return NDMP4_ILLEGAL_STATE_ERR;
  co_await wait_for_engine();
  close_connections();
  stream_.reset();
  filled_.clear();
  queued_bytes_ = 0;
  stream_ended_ = false;
  stream_failed_.reset();
  const std::uint32_t record_size = st_.record_size;  // persists (draft 3.6.2.10)
  st_ = State{};
  st_.record_size = record_size;
  read_at_ = 0;
  co_return NDMP4_NO_ERR;
}

asio::awaitable<void> Mover::shutdown() {
  if (st_.state != NDMP4_MOVER_STATE_IDLE && st_.state != NDMP4_MOVER_STATE_HALTED) {
    halt(NDMP4_MOVER_HALT_ABORTED);
  }
  co_await wait_for_engine();
  close_connections();
}

// ---- transitions ----

void Mover::pause(ndmp4_mover_pause_reason reason, std::uint64_t seek_position) {
  st_.state = NDMP4_MOVER_STATE_PAUSED;
  st_.pause_reason = reason;
  spdlog::info("{} mover paused: {} at {}", hooks_.tag(), static_cast<int>(reason), seek_position);
  hooks_.paused(reason, seek_position);
}

void Mover::halt(ndmp4_mover_halt_reason reason) {
  if (st_.state == NDMP4_MOVER_STATE_HALTED || st_.state == NDMP4_MOVER_STATE_IDLE) return;
  st_.state = NDMP4_MOVER_STATE_HALTED;
  st_.halt_reason = reason;
  st_.pause_reason = NDMP4_MOVER_PAUSE_NA;
  close_connections(reason == NDMP4_MOVER_HALT_CONNECT_CLOSED);
  wake_.cancel();
  space_.cancel();
  spdlog::info("{} mover halted: {} ({} bytes moved, {} records)", hooks_.tag(),
               static_cast<int>(reason), st_.bytes_moved, st_.record_num);
  hooks_.halted(reason);
}

void Mover::close_connections(bool graceful) {
  for (auto& a : acceptors_) {
    error_code ignored;
    a->close(ignored);
  }
  acceptors_.clear();
  if (!stream_) return;
  // A LOCAL pipe still holds what the mover handed over: a graceful end
  // lets the data server read it (the data server's end then goes, and
  // with it the engine's last wait).  A socket delivers what it was given
  // even when closed.
  if (graceful && st_.connection.kind == Connection::Kind::kLocal) {
    stream_->finish();
  } else {
    stream_->close();
  }
}

asio::awaitable<void> Mover::wait_for_engine() {
  while (tasks_ > 0) co_await wait(engine_done_);
}

asio::awaitable<bool> Mover::wait_resumed() {
  while (st_.state == NDMP4_MOVER_STATE_PAUSED) co_await wait(wake_);
  co_return st_.state == NDMP4_MOVER_STATE_ACTIVE;
}

void Mover::become_active(std::unique_ptr<DataStream> stream, Connection c) {
  close_connections();  // the acceptors: one peer only
  stream_ = std::move(stream);
  st_.state = NDMP4_MOVER_STATE_ACTIVE;
  st_.connection = c;
  st_.listening.clear();
  stream_ended_ = false;
  stream_failed_.reset();
  if (st_.mode == NDMP4_MOVER_MODE_READ) {
    asio::co_spawn(strand_, backup_reader(), asio::detached);
    asio::co_spawn(strand_, backup_writer(), asio::detached);
  } else {
    asio::co_spawn(strand_, recover_pump(), asio::detached);
    asio::co_spawn(strand_, recover_watch(), asio::detached);
  }
}

asio::awaitable<void> Mover::accept_loop(std::shared_ptr<tcp::acceptor> acceptor) {
  TaskCount count(tasks_, engine_done_);
  std::optional<tcp::socket> socket =
      co_await accept_allowed(*acceptor, policy_, settings_, hooks_.tag() + " mover");
  if (!socket || st_.state != NDMP4_MOVER_STATE_LISTEN) co_return;
  error_code ec;
  const tcp::endpoint peer = socket->remote_endpoint(ec);
  become_active(std::make_unique<TcpStream>(std::move(*socket)), {Connection::Kind::kTcp, peer});
}

// ---- mode READ: connection -> tape ----

asio::awaitable<void> Mover::backup_reader() {
  TaskCount count(tasks_, engine_done_);
  const std::size_t rs = st_.record_size;
  const std::size_t per_block = std::max<std::size_t>(1, settings_.batch_bytes / rs);
  const std::size_t capacity = per_block * rs;
  const std::size_t budget = std::max(settings_.buffer_bytes, 2 * capacity);
  while (st_.state != NDMP4_MOVER_STATE_HALTED) {
    if (queued_bytes_ + capacity > budget) {
      co_await wait(space_);
      continue;
    }
    std::unique_ptr<Block> b;
    if (!spare_.empty()) {
      b = std::move(spare_.back());
      spare_.pop_back();
    } else {
      b = std::make_unique<Block>();
    }
    b->data.resize(capacity);
    b->filled = 0;
    b->done = 0;
    b->last = false;
    while (b->filled < capacity) {
      auto [ec, n] = co_await stream_->read_some(std::span(b->data).subspan(b->filled));
      if (st_.state == NDMP4_MOVER_STATE_HALTED) co_return;
      b->filled += n;
      if (ec == asio::error::eof || (!ec && n == 0)) {
        stream_ended_ = true;
        break;
      }
      if (ec) {
        spdlog::warn("{} mover: data connection failed: {}", hooks_.tag(), ec.message());
        stream_ended_ = true;
        stream_failed_ = NDMP4_MOVER_HALT_CONNECT_ERROR;
        break;
      }
    }
    b->last = stream_ended_;
    queued_bytes_ += capacity;
    filled_.push_back(std::move(b));
    wake_.cancel();
    if (stream_ended_) co_return;
  }
}

asio::awaitable<void> Mover::backup_writer() {
  TaskCount count(tasks_, engine_done_);
  const std::size_t rs = st_.record_size;
  for (;;) {
    if (st_.state == NDMP4_MOVER_STATE_HALTED) co_return;
    if (st_.state == NDMP4_MOVER_STATE_PAUSED) {
      if (!co_await wait_resumed()) co_return;
      continue;
    }
    if (filled_.empty()) {
      if (stream_ended_) {
        halt(stream_failed_.value_or(NDMP4_MOVER_HALT_CONNECT_CLOSED));
        co_return;
      }
      co_await wait(wake_);
      continue;
    }
    Block& b = *filled_.front();
    const std::size_t left = b.filled - b.done;
    const bool pad_last = b.last && left % rs != 0 && !stream_failed_;
    const std::size_t records = left / rs + (pad_last ? 1 : 0);
    if (records == 0) {
      queued_bytes_ -= b.data.size();
      spare_.push_back(std::move(filled_.front()));
      filled_.pop_front();
      if (spare_.size() > 2) spare_.pop_back();
      space_.cancel();
      continue;
    }
    // The window: a record that would end past it waits for the next one.
    const std::uint64_t at = st_.record_num * rs;
    const std::uint64_t end = window_end();
    const std::uint64_t fit = end == kInfinity ? records : (end > at ? (end - at) / rs : 0);
    const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(records, fit));
    if (k == 0) {
      pause(NDMP4_MOVER_PAUSE_EOW, at);
      continue;
    }
    tape::TapeHead* head = hooks_.tape();
    if (!head) {
      spdlog::error("{} mover: no tape open while active", hooks_.tag());
      halt(NDMP4_MOVER_HALT_INTERNAL_ERROR);
      co_return;
    }
    if (b.done + k * rs > b.filled) {
      std::memset(b.data.data() + b.filled, 0, b.done + k * rs - b.filled);  // the pad
    }
    const std::span<const std::uint8_t> records_out(b.data.data() + b.done, k * rs);
    const tape::TapeHead::Writes out = co_await offload(
        workers_, [head, records_out, rs] { return head->write_records(records_out, rs); });
    last_position_ = head->position();
    if (out.records > 0) {
      const std::size_t bytes = std::min(out.records * rs, b.filled - b.done);
      st_.bytes_moved += bytes;  // without the pad
      st_.record_num += out.records;
      b.done = std::min(b.done + out.records * rs, b.filled);
      hooks_.wrote();
    }
    if (out.status.ok()) continue;
    if (st_.state == NDMP4_MOVER_STATE_HALTED) co_return;
    switch (out.status.condition) {
      case Condition::kEarlyWarning:
      case Condition::kOverflow:
        // Early warning: the record was written and counted.  Overflow: it
        // was not, and is written after continue, on the next cartridge.
        hooks_.early_warning();
        pause(NDMP4_MOVER_PAUSE_EOM, st_.record_num * rs);
        break;
      default:
        spdlog::warn("{} mover: tape write failed: {}", hooks_.tag(), out.status.describe());
        halt(NDMP4_MOVER_HALT_MEDIA_ERROR);
        co_return;
    }
  }
}

// ---- mode WRITE: tape -> connection ----

asio::awaitable<void> Mover::recover_watch() {
  TaskCount count(tasks_, engine_done_);
  std::array<std::uint8_t, 512> sink{};
  for (;;) {
    auto [ec, n] = co_await stream_->read_some(sink);
    if (st_.state == NDMP4_MOVER_STATE_HALTED || ec == asio::error::operation_aborted ||
        ec == asio::error::operation_not_supported) {
      co_return;
    }
    if (ec || n == 0) {
      // The data server closed the connection (a recovery that has what
      // it wanted, or gave up).
      halt(ec == asio::error::eof || n == 0 ? NDMP4_MOVER_HALT_CONNECT_CLOSED
                                            : NDMP4_MOVER_HALT_CONNECT_ERROR);
      co_return;
    }
  }
}

asio::awaitable<void> Mover::recover_pump() {
  TaskCount count(tasks_, engine_done_);
  const std::size_t rs = st_.record_size;
  const std::size_t per_batch = std::max<std::size_t>(1, settings_.batch_bytes / rs);
  auto read_batch = [this, rs](tape::TapeHead* head, std::uint64_t first, std::size_t n,
                               ReadBatch& into) -> asio::awaitable<void> {
    into.first = first;
    into.generation = window_generation_;
    into.data.resize(n * rs);
    into.lengths.clear();
    into.ended = false;
    ReadBatch* b = &into;
    co_await offload(workers_, [head, b, n, rs] {
      for (std::size_t i = 0; i < n; ++i) {
        const tape::TapeDrive::Read r = head->read(std::span(b->data).subspan(i * rs, rs));
        if (r.status.ok() || r.status.condition == Condition::kIncorrectLength) {
          b->lengths.push_back(static_cast<std::uint32_t>(r.bytes));
          continue;
        }
        b->ended = true;
        b->end = r.status;
        break;
      }
      return 0;
    });
  };
  ReadBatch current, ahead;
  bool have_ahead = false;
  for (;;) {
    if (st_.state == NDMP4_MOVER_STATE_HALTED) co_return;
    if (st_.state == NDMP4_MOVER_STATE_PAUSED) {
      have_ahead = false;  // the DMA may move the tape while paused
      if (!co_await wait_resumed()) co_return;
      continue;
    }
    if (st_.bytes_left_to_read == 0) {
      co_await wait(wake_);
      continue;
    }
    const std::uint64_t want = read_at_;
    const std::uint64_t wend = window_end();
    if (want < st_.window_offset || want >= wend) {
      have_ahead = false;
      pause(NDMP4_MOVER_PAUSE_SEEK, want);
      continue;
    }
    tape::TapeHead* head = hooks_.tape();
    if (!head) {
      halt(NDMP4_MOVER_HALT_INTERNAL_ERROR);
      co_return;
    }
    const std::uint64_t rec = want / rs;
    const std::uint64_t stop =
        st_.bytes_left_to_read == kInfinity || want + st_.bytes_left_to_read < want
            ? wend
            : std::min(wend, want + st_.bytes_left_to_read);
    if (have_ahead && ahead.first == rec && ahead.generation == window_generation_) {
      std::swap(current, ahead);
      have_ahead = false;
    } else {
      have_ahead = false;
      if (rec != st_.record_num) {
        // Position over records to the one holding `want`.
        const bool forward = rec > st_.record_num;
        const std::uint64_t n = forward ? rec - st_.record_num : st_.record_num - rec;
        const auto m = co_await offload(workers_, [head, forward, n] {
          const auto c = static_cast<std::uint32_t>(std::min<std::uint64_t>(n, 0xFFFFFFFFu));
          return forward ? head->forward_records(c) : head->back_records(c);
        });
        last_position_ = head->position();
        if (st_.state != NDMP4_MOVER_STATE_ACTIVE) continue;
        const std::uint64_t moved = n - m.resid;
        st_.record_num = forward ? st_.record_num + moved : st_.record_num - moved;
        if (!m.status.ok()) {
          if (forward && m.status.condition == Condition::kFilemark) {
            pause(NDMP4_MOVER_PAUSE_EOF, want);
          } else if (forward && m.status.condition == Condition::kEndOfData) {
            pause(NDMP4_MOVER_PAUSE_EOM, want);
          } else if (m.stopped_early()) {
            pause(NDMP4_MOVER_PAUSE_SEEK, want);  // not in this tape file
          } else {
            spdlog::warn("{} mover: positioning failed: {}", hooks_.tag(), m.status.describe());
            halt(NDMP4_MOVER_HALT_MEDIA_ERROR);
            co_return;
          }
          continue;
        }
      }
      const std::uint64_t last_rec = (stop - 1) / rs;
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(last_rec - rec + 1, per_batch));
      co_await read_batch(head, rec, n, current);
      last_position_ = head->position();
      st_.record_num = rec + current.lengths.size();
      if (st_.state == NDMP4_MOVER_STATE_HALTED) co_return;
    }
    // What of the batch goes to the connection.
    std::vector<std::span<const std::uint8_t>> slices;
    std::uint64_t deliver = 0;
    for (std::size_t i = 0; i < current.lengths.size(); ++i) {
      const std::uint64_t start = (current.first + i) * rs;
      const std::uint64_t from = std::max(want, start);
      const std::uint64_t to = std::min<std::uint64_t>(start + current.lengths[i], stop);
      if (to <= from) continue;
      slices.emplace_back(current.data.data() + i * rs + (from - start), to - from);
      deliver += to - from;
    }
    // The next batch is read while this one is sent, when it will be
    // wanted: the request and the window go on past this batch.
    const std::uint64_t next_rec = current.first + current.lengths.size();
    const bool prefetch =
        !current.ended && next_rec * rs < stop && next_rec * rs == want + deliver && deliver > 0;
    error_code ec;
    if (prefetch) {
      const std::uint64_t last_rec = (stop - 1) / rs;
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(last_rec - next_rec + 1, per_batch));
      ec = co_await (stream_->write(slices) && read_batch(head, next_rec, n, ahead));
      last_position_ = head->position();
      st_.record_num = next_rec + ahead.lengths.size();
      have_ahead = true;
    } else if (!slices.empty()) {
      ec = co_await stream_->write(slices);
    }
    if (st_.state == NDMP4_MOVER_STATE_HALTED) co_return;
    if (ec) {
      halt(ec == asio::error::broken_pipe || ec == asio::error::connection_reset ||
                   ec == asio::error::eof
               ? NDMP4_MOVER_HALT_CONNECT_CLOSED
               : NDMP4_MOVER_HALT_CONNECT_ERROR);
      co_return;
    }
    st_.bytes_moved += deliver;
    read_at_ += deliver;
    if (st_.bytes_left_to_read != kInfinity) st_.bytes_left_to_read -= deliver;
    if (!current.ended) continue;
    // What stopped the batch, once the data before it is out.
    have_ahead = false;
    switch (current.end.condition) {
      case Condition::kFilemark:
        pause(NDMP4_MOVER_PAUSE_EOF, read_at_);  // the head is before the filemark
        break;
      case Condition::kEndOfData:
        pause(NDMP4_MOVER_PAUSE_EOM, read_at_);  // blank tape (draft 3.6.2.5)
        break;
      default:
        spdlog::warn("{} mover: tape read failed: {}", hooks_.tag(), current.end.describe());
        halt(NDMP4_MOVER_HALT_MEDIA_ERROR);
        co_return;
    }
  }
}

}  // namespace mover
