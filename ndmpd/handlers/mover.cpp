// MOVER interface (draft-skardal-ndmpv4-04 3.6): the NDMP face of the
// session's mover::Mover.  Checks come in the order ndmjob's test-mover
// requires (arguments, then the mover's state, then the tape, then the
// record size and window); the mover does the rest.
// Addresses: handlers/addresses.h.

#include <spdlog/spdlog.h>

#include <boost/asio/this_coro.hpp>
#include <cstring>

#include "ndmpd/dispatch.h"
#include "ndmpd/handlers/addresses.h"
#include "ndmpd/handlers/build.h"

namespace ndmpd {

namespace asio = boost::asio;
using asio::ip::tcp;
using ndmp::xdr::Void;

mover::Mover& SessionContext::mover_on(asio::any_io_executor strand) {
  if (!mover) {
    mover::Hooks h;
    h.tape = [this]() -> tape::TapeHead* { return tape ? tape->head.get() : nullptr; };
    h.wrote = [this] {
      if (tape) tape->pending_filemark = true;
    };
    h.early_warning = [this] {
      if (tape) tape->early_warning = tape->eom_reported = true;
    };
    h.paused = [this](ndmp4_mover_pause_reason reason, std::uint64_t seek_position) {
      ndmp4_notify_mover_paused_post p{};
      p.reason = reason;
      p.seek_position = seek_position;
      outbox.post<NDMP4_NOTIFY_MOVER_PAUSED>(p);
    };
    h.halted = [this](ndmp4_mover_halt_reason reason) {
      ndmp4_notify_mover_halted_post p{};
      p.reason = reason;
      outbox.post<NDMP4_NOTIFY_MOVER_HALTED>(p);
    };
    h.tag = [this] { return tag(); };
    mover = std::make_unique<mover::Mover>(strand, server.workers, server.mover_settings,
                                           server.data_policy, std::move(h));
  }
  return *mover;
}

asio::awaitable<void> SessionContext::stop_mover() {
  if (mover) co_await mover->shutdown();
}

bool SessionContext::ipv6_addresses() const { return state.extensions.count(NDMP4_CAE_CLASS) != 0; }

namespace {

bool mode_valid(ndmp4_mover_mode m) {
  return m == NDMP4_MOVER_MODE_READ || m == NDMP4_MOVER_MODE_WRITE;
}

// The tape checks of LISTEN, CONNECT and CONTINUE.
ndmp4_error tape_ready(const SessionContext& s, ndmp4_mover_mode mode) {
  if (!s.tape) return NDMP4_DEV_NOT_OPEN_ERR;
  if (mode == NDMP4_MOVER_MODE_READ && !s.tape->can_write()) return NDMP4_PERMISSION_ERR;
  return NDMP4_NO_ERR;
}

asio::awaitable<mover::Mover*> mover_of(SessionContext& s) {
  co_return &s.mover_on(co_await asio::this_coro::executor);
}

asio::awaitable<Reply> get_state(SessionContext& s, const Void&) {
  const mover::Mover& m = *co_await mover_of(s);
  const mover::State& st = m.state();
  ndmp4_mover_get_state_reply rep{};
  rep.error = NDMP4_NO_ERR;
  rep.mode = st.mode;
  rep.state = st.state;
  rep.pause_reason = st.pause_reason;
  rep.halt_reason = st.halt_reason;
  rep.record_size = st.record_size;
  rep.record_num = static_cast<u_int>(std::min<std::uint64_t>(st.record_num, 0xFFFFFFFFu));
  rep.bytes_moved = st.bytes_moved;
  rep.seek_position = st.seek_position;
  rep.bytes_left_to_read = st.bytes_left_to_read;
  rep.window_offset = st.window_offset;
  rep.window_length = st.window_length;
  AddrStorage store;
  if (st.connection.kind == mover::Connection::Kind::kTcp) {
    // One address, no environment (draft 3.6.1.1).
    rep.data_connection_addr = connection_addr(s, st.connection.endpoint, store);
  } else {
    rep.data_connection_addr.addr_type = NDMP4_ADDR_LOCAL;
  }
  co_return Reply::with(rep);
}

asio::awaitable<Reply> set_record_size(SessionContext& s,
                                       const ndmp4_mover_set_record_size_request& req) {
  mover::Mover& m = *co_await mover_of(s);
  ndmp4_mover_set_record_size_reply rep{};
  rep.error = m.set_record_size(req.len);
  co_return Reply::with(rep);
}

asio::awaitable<Reply> set_window(SessionContext& s, const ndmp4_mover_set_window_request& req) {
  mover::Mover& m = *co_await mover_of(s);
  ndmp4_mover_set_window_reply rep{};
  rep.error = m.set_window(req.offset, req.length);
  co_return Reply::with(rep);
}

asio::awaitable<Reply> listen(SessionContext& s, const ndmp4_mover_listen_request& req) {
  mover::Mover& m = *co_await mover_of(s);
  ndmp4_mover_listen_reply rep{};
  rep.connect_addr.addr_type = NDMP4_ADDR_LOCAL;  // what an error reply carries
  auto fail = [&rep](ndmp4_error e) {
    rep.error = e;
    return Reply::with(rep);
  };
  if (!mode_valid(req.mode)) co_return fail(NDMP4_ILLEGAL_ARGS_ERR);
  if (!addr_type_valid(s, req.addr_type)) co_return fail(NDMP4_ILLEGAL_ARGS_ERR);
  if (m.state().state != NDMP4_MOVER_STATE_IDLE) co_return fail(NDMP4_ILLEGAL_STATE_ERR);
  if (const ndmp4_error e = tape_ready(s, req.mode); e != NDMP4_NO_ERR) co_return fail(e);
  if (const ndmp4_error e = m.check_ready(req.mode); e != NDMP4_NO_ERR) co_return fail(e);
  if (req.addr_type == NDMP4_ADDR_LOCAL) {
    rep.error = m.listen_local(req.mode);
    spdlog::info("{} MOVER_LISTEN LOCAL", s.tag());
    co_return Reply::with(rep);
  }
  const bool v6 = req.addr_type == NDMP4_ADDR_TCP_IPV6;
  const std::vector<asio::ip::address> addresses = listen_addresses(s, req.addr_type);
  std::vector<tcp::endpoint> offered;
  rep.error = addresses.empty() ? NDMP4_IO_ERR : m.listen_tcp(req.mode, addresses, offered);
  if (rep.error != NDMP4_NO_ERR) {
    spdlog::warn("{} MOVER_LISTEN: no address to listen on", s.tag());
    co_return Reply::with(rep);
  }
  AddrStorage store;
  rep.connect_addr = to_addr(offered, v6, store);
  spdlog::info("{} MOVER_LISTEN {} on {}", s.tag(),
               req.mode == NDMP4_MOVER_MODE_READ ? "READ (backup)" : "WRITE (recover)",
               describe(offered));
  co_return Reply::with(rep);
}

asio::awaitable<Reply> connect(SessionContext& s, const ndmp4_mover_connect_request& req) {
  mover::Mover& m = *co_await mover_of(s);
  ndmp4_mover_connect_reply rep{};
  auto fail = [&rep](ndmp4_error e) {
    rep.error = e;
    return Reply::with(rep);
  };
  if (!mode_valid(req.mode)) co_return fail(NDMP4_ILLEGAL_ARGS_ERR);
  const ndmp4_addr& a = req.addr;
  if (!addr_type_valid(s, a.addr_type)) co_return fail(NDMP4_ILLEGAL_ARGS_ERR);
  std::vector<tcp::endpoint> peers;
  if (a.addr_type != NDMP4_ADDR_LOCAL && !peers_of(a, peers)) {
    co_return fail(NDMP4_ILLEGAL_ARGS_ERR);
  }
  if (m.state().state != NDMP4_MOVER_STATE_IDLE) co_return fail(NDMP4_ILLEGAL_STATE_ERR);
  if (const ndmp4_error e = tape_ready(s, req.mode); e != NDMP4_NO_ERR) co_return fail(e);
  if (const ndmp4_error e = m.check_ready(req.mode); e != NDMP4_NO_ERR) co_return fail(e);
  if (a.addr_type == NDMP4_ADDR_LOCAL) {
    // LOCAL: the data server of this session must be listening.
    if (!s.data || !s.data->listening_local()) {
      spdlog::info("{} MOVER_CONNECT LOCAL: the data server is not listening", s.tag());
      co_return fail(NDMP4_CONNECT_ERR);
    }
    rep.error = m.connect_local(req.mode, s.data->join_local(req.mode));
    co_return Reply::with(rep);
  }
  rep.error = co_await m.connect_tcp(req.mode, peers);
  co_return Reply::with(rep);
}

asio::awaitable<Reply> read(SessionContext& s, const ndmp4_mover_read_request& req) {
  mover::Mover& m = *co_await mover_of(s);
  ndmp4_mover_read_reply rep{};
  rep.error = m.read(req.offset, req.length);
  co_return Reply::with(rep);
}

asio::awaitable<Reply> continue_(SessionContext& s, const Void&) {
  mover::Mover& m = *co_await mover_of(s);
  ndmp4_mover_continue_reply rep{};
  if (m.state().state != NDMP4_MOVER_STATE_PAUSED) {
    rep.error = NDMP4_ILLEGAL_STATE_ERR;
  } else if (const ndmp4_error e = tape_ready(s, m.state().mode); e != NDMP4_NO_ERR) {
    rep.error = e;
  } else {
    rep.error = m.resume();
  }
  co_return Reply::with(rep);
}

asio::awaitable<Reply> abort(SessionContext& s, const Void&) {
  mover::Mover& m = *co_await mover_of(s);
  ndmp4_mover_abort_reply rep{};
  rep.error = co_await m.abort();
  co_return Reply::with(rep);
}

asio::awaitable<Reply> stop(SessionContext& s, const Void&) {
  mover::Mover& m = *co_await mover_of(s);
  ndmp4_mover_stop_reply rep{};
  rep.error = co_await m.stop();
  co_return Reply::with(rep);
}

asio::awaitable<Reply> close(SessionContext& s, const Void&) {
  mover::Mover& m = *co_await mover_of(s);
  ndmp4_mover_close_reply rep{};
  rep.error = co_await m.close();
  co_return Reply::with(rep);
}

}  // namespace

void register_mover_handlers(Dispatcher& d) {
  d.on<NDMP4_MOVER_GET_STATE>(get_state);
  d.on<NDMP4_MOVER_SET_RECORD_SIZE>(set_record_size);
  d.on<NDMP4_MOVER_SET_WINDOW>(set_window);
  d.on<NDMP4_MOVER_LISTEN>(listen);
  d.on<NDMP4_MOVER_CONNECT>(connect);
  d.on<NDMP4_MOVER_READ>(read);
  d.on<NDMP4_MOVER_CONTINUE>(continue_);
  d.on<NDMP4_MOVER_ABORT>(abort);
  d.on<NDMP4_MOVER_STOP>(stop);
  d.on<NDMP4_MOVER_CLOSE>(close);
  // NetApp's connection address extension: IPv6 data connections.
  d.add_extension_class(NDMP4_CAE_CLASS, {NDMP4_CAE_CLASS_VERSION});
}

}  // namespace ndmpd
