// Fuzz target: arbitrary bytes as they would arrive on an NDMP connection.
// They go through the record framer; every record's header is decoded, its
// body decoded with the request and reply codecs of its code (and what
// decodes must re-encode to a decodable value), and the record dispatched
// to a session, pre-login or logged in as the first byte says.  Anything
// that crashes, leaks, hangs or trips a sanitizer is a finding.

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "ndmpd/dispatch.h"
#include "xdr/framer.h"
#include "xdr/header.h"
#include "xdr/messages.h"

namespace {

using ndmp::xdr::AnyBody;
using ndmp::xdr::Bytes;

class NullOutbox : public ndmpd::Outbox {
 public:
  void reply(std::uint32_t, std::uint32_t, ndmp4_error, Bytes) override {}
  void post(std::uint32_t, Bytes) override {}
};

struct World {
  World() : pool(1), server(make_config(), pool), dispatcher(ndmpd::Dispatcher::create()) {
    spdlog::set_level(spdlog::level::off);  // millions of runs: no log lines
    ndmpd::register_tar_butype(server.butypes);
  }
  static const ndmpd::Config& make_config() {
    static ndmpd::Config c = [] {
      ndmpd::Config k;
      k.users.push_back({"dma", std::string("secret"), std::nullopt, false, "fuzz"});
      k.auth_failure_delay = std::chrono::milliseconds(0);
      k.auth_max_failures = 1000000;
      k.exports.push_back({"/vol0", "/nonexistent/ndmpd-fuzz", "fuzz"});
      // DATA_LISTEN and MOVER_LISTEN open real sockets: on loopback only.
      k.listen = {"127.0.0.1:10000"};
      return k;
    }();
    return c;
  }
  // The io_context lives as long as the pool: a pool thread finishing an
  // offloaded step still holds work on it when the input's session ends, and
  // an io_context destroyed under that thread is a use after free.
  boost::asio::io_context io;
  boost::asio::thread_pool pool;
  ndmpd::ServerContext server;
  std::shared_ptr<const ndmpd::Dispatcher> dispatcher;
};

void check_codecs(const ndmp4_header& h, std::span<const std::uint8_t> body) {
  const ndmp::xdr::MessageInfo* m = ndmp::xdr::find_message(h.message_code);
  if (m == nullptr) return;
  for (const ndmp::xdr::BodyCodec* codec : {&m->request, &m->reply}) {
    if (codec->proc == nullptr) continue;
    AnyBody decoded;
    if (!decoded.decode(*codec, body)) continue;
    Bytes again;
    if (!decoded.encode(again)) std::abort();  // what decodes must encode
    AnyBody second;
    if (!second.decode(*codec, again)) std::abort();
    Bytes third;
    if (!second.encode(third) || third != again) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;
  if (size == 0) return 0;
  const bool logged_in = data[0] & 1;
  const std::size_t chunk = 1 + (data[0] >> 1);  // feed in pieces of 1..128 bytes
  std::span<const std::uint8_t> in(data + 1, size - 1);

  NullOutbox outbox;
  boost::asio::io_context& io = world.io;  // outlives the session (its mover's timers)
  ndmpd::SessionContext session(world.server, *world.dispatcher, outbox, "127.0.0.1:1", 1);
  session.state.authenticated = logged_in;
  ndmp::xdr::RecordAssembler assembler(1 << 20);
  // Whatever the input started, the data server and the mover stop before
  // the session goes (as Session::run does): listeners close, waits end.
  struct StopJobs {
    boost::asio::io_context& io;
    ndmpd::SessionContext& session;
    ~StopJobs() {
      boost::asio::co_spawn(io, session.stop_data(), boost::asio::detached);
      boost::asio::co_spawn(io, session.stop_mover(), boost::asio::detached);
      io.restart();
      io.run();
    }
  } stop_jobs{io, session};
  while (!in.empty()) {
    std::span<const std::uint8_t> piece = in.first(std::min(chunk, in.size()));
    in = in.subspan(piece.size());
    while (!piece.empty()) {
      const auto r = assembler.feed(piece);
      piece = piece.subspan(r.consumed);
      if (r.status == ndmp::xdr::RecordAssembler::Status::kTooLarge) return 0;
      if (r.status != ndmp::xdr::RecordAssembler::Status::kRecord) continue;
      const Bytes record = assembler.take_record();
      const auto header = ndmp::xdr::decode_header(record);
      if (!header) continue;
      check_codecs(*header, ndmp::xdr::body_of(record));
      // The request runs until it is answered; what it leaves waiting (a
      // DATA_LISTEN's acceptor, a start waiting for its connection) goes
      // on in the background, as in a session, bounded by the end of the
      // input.
      // A request still running after the bound completes later, in StopJobs
      // or a later request's turn: its flag must outlive this iteration.
      auto answered = std::make_shared<bool>(false);
      boost::asio::co_spawn(
          io, world.dispatcher->dispatch(session, *header, ndmp::xdr::body_of(record)),
          [answered](std::exception_ptr) { *answered = true; });
      io.restart();
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      while (!*answered && std::chrono::steady_clock::now() < until) {
        io.run_one_for(std::chrono::milliseconds(10));
      }
      io.poll();
      if (session.state.closing) return 0;
    }
  }
  return 0;
}
