// DATA interface (draft-skardal-ndmpv4-04 3.5): the NDMP face of the
// session's DataServer.  Requests are checked in the order ndmjob's
// test-data expects (arguments, then state); the environment is read by
// data/env.h, and a refusal is explained to the DMA in a LOG_MESSAGE
// before the ILLEGAL_ARGS reply, so that an operator sees why.
//
// Addresses: handlers/addresses.h.

#include <spdlog/spdlog.h>

#include <boost/asio/this_coro.hpp>

#include "ndmpd/dispatch.h"
#include "ndmpd/handlers/addresses.h"
#include "ndmpd/handlers/build.h"

namespace ndmpd {

namespace asio = boost::asio;
using asio::ip::tcp;
using ndmp::xdr::Void;

DataServer& SessionContext::data_on(asio::any_io_executor strand) {
  if (!data) {
    DataServer::Hooks h;
    h.post = [this](std::uint32_t code, ndmp::xdr::Bytes body) {
      outbox.post(code, std::move(body));
    };
    h.tag = [this] { return tag(); };
    data = std::make_unique<DataServer>(strand, server.data_settings, server.data_policy,
                                        std::move(h));
  }
  return *data;
}

asio::awaitable<void> SessionContext::stop_data() {
  if (data) co_await data->shutdown();
}

namespace {

asio::awaitable<DataServer*> data_of(SessionContext& s) {
  co_return &s.data_on(co_await asio::this_coro::executor);
}

// Tells the DMA why a request was refused.
void explain(SessionContext& s, const std::string& text) {
  spdlog::warn("{} {}", s.tag(), text);
  ndmp4_log_message_post p{};
  p.log_type = NDMP4_LOG_ERROR;
  p.message_id = 0;
  p.entry = build::str(text);
  p.associated_message_valid = NDMP4_HAS_ASSOCIATED_MESSAGE;
  p.associated_message_sequence = s.request_sequence;
  s.outbox.post<NDMP4_LOG_MESSAGE>(p);
}

data::Env env_of(const ndmp4_pval* v, u_int n) {
  data::Env env;
  for (u_int i = 0; i < n; ++i) {
    env.emplace_back(v[i].name ? v[i].name : "", v[i].value ? v[i].value : "");
  }
  return env;
}

asio::awaitable<Reply> get_state(SessionContext& s, const Void&) {
  const DataServer::State st = (co_await data_of(s))->state();
  ndmp4_data_get_state_reply rep{};
  rep.error = NDMP4_NO_ERR;
  rep.operation = st.operation;
  rep.state = st.state;
  rep.halt_reason = st.halt_reason;
  rep.bytes_processed = st.bytes_processed;
  rep.unsupported = 0;
  if (st.est_bytes_remain) {
    rep.est_bytes_remain = *st.est_bytes_remain;
  } else {
    rep.unsupported |= NDMP4_DATA_STATE_EST_BYTES_REMAIN_UNS;
  }
  if (st.est_time_remain) {
    rep.est_time_remain = *st.est_time_remain;
  } else {
    rep.unsupported |= NDMP4_DATA_STATE_EST_TIME_REMAIN_UNS;
  }
  AddrStorage store;
  if (st.link == DataServer::State::Link::kTcp) {
    rep.data_connection_addr = connection_addr(s, st.endpoint, store);
  } else {
    rep.data_connection_addr.addr_type = NDMP4_ADDR_LOCAL;
  }
  rep.read_offset = st.read_offset;
  rep.read_length = st.read_length;
  co_return Reply::with(rep);
}

asio::awaitable<Reply> listen(SessionContext& s, const ndmp4_data_listen_request& req) {
  DataServer& d = *co_await data_of(s);
  ndmp4_data_listen_reply rep{};
  rep.connect_addr.addr_type = NDMP4_ADDR_LOCAL;
  if (!addr_type_valid(s, req.addr_type)) {
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  if (d.state().state != NDMP4_DATA_STATE_IDLE) {
    rep.error = NDMP4_ILLEGAL_STATE_ERR;
    co_return Reply::with(rep);
  }
  if (req.addr_type == NDMP4_ADDR_LOCAL) {
    rep.error = d.listen_local();
    spdlog::info("{} DATA_LISTEN LOCAL", s.tag());
    co_return Reply::with(rep);
  }
  std::vector<tcp::endpoint> offered;
  const std::vector<asio::ip::address> addresses = listen_addresses(s, req.addr_type);
  rep.error = addresses.empty() ? NDMP4_IO_ERR : d.listen_tcp(addresses, offered);
  if (rep.error != NDMP4_NO_ERR) {
    spdlog::warn("{} DATA_LISTEN: no address to listen on", s.tag());
    co_return Reply::with(rep);
  }
  AddrStorage store;
  rep.connect_addr = to_addr(offered, req.addr_type == NDMP4_ADDR_TCP_IPV6, store);
  spdlog::info("{} DATA_LISTEN on {}", s.tag(), describe(offered));
  co_return Reply::with(rep);
}

asio::awaitable<Reply> connect(SessionContext& s, const ndmp4_data_connect_request& req) {
  DataServer& d = *co_await data_of(s);
  ndmp4_data_connect_reply rep{};
  const ndmp4_addr& a = req.addr;
  std::vector<tcp::endpoint> peers;
  if (!addr_type_valid(s, a.addr_type) ||
      (a.addr_type != NDMP4_ADDR_LOCAL && !peers_of(a, peers))) {
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  if (d.state().state != NDMP4_DATA_STATE_IDLE) {
    rep.error = NDMP4_ILLEGAL_STATE_ERR;
    co_return Reply::with(rep);
  }
  if (a.addr_type == NDMP4_ADDR_LOCAL) {
    // The mover of this session must be listening LOCAL.
    if (!s.mover || s.mover->state().state != NDMP4_MOVER_STATE_LISTEN ||
        s.mover->state().connection.kind != mover::Connection::Kind::kLocal) {
      spdlog::info("{} DATA_CONNECT LOCAL: the mover is not listening", s.tag());
      rep.error = NDMP4_ILLEGAL_STATE_ERR;
      co_return Reply::with(rep);
    }
    const ndmp4_mover_mode mode = s.mover->state().mode;
    if (!s.mover->attach_local(d.join_local(mode))) {
      rep.error = NDMP4_CONNECT_ERR;
      co_return Reply::with(rep);
    }
    spdlog::info("{} DATA_CONNECT LOCAL", s.tag());
    co_return Reply::with(rep);
  }
  rep.error = co_await d.connect_tcp(peers);
  co_return Reply::with(rep);
}

std::vector<data::RawName> names_of(const ndmp4_name* v, u_int n) {
  std::vector<data::RawName> out;
  for (u_int i = 0; i < n; ++i) {
    data::RawName r;
    r.original_path = v[i].original_path ? v[i].original_path : "";
    r.destination_path = v[i].destination_path ? v[i].destination_path : "";
    r.fh_info = v[i].fh_info;
    out.push_back(std::move(r));
  }
  return out;
}

asio::awaitable<Reply> start_backup(SessionContext& s, const ndmp4_data_start_backup_request& req) {
  DataServer& d = *co_await data_of(s);
  ndmp4_data_start_backup_reply rep{};
  const std::string butype = req.butype_name ? req.butype_name : "";
  if (s.server.butypes.find(butype) == nullptr) {
    explain(s, "DATA_START_BACKUP: unknown backup type '" + butype + "'");
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  const DataServer::State st = d.state();
  if (st.state != NDMP4_DATA_STATE_CONNECTED && st.state != NDMP4_DATA_STATE_LISTEN) {
    rep.error = NDMP4_ILLEGAL_STATE_ERR;
    co_return Reply::with(rep);
  }
  std::string why;
  std::optional<data::BackupJob> job = data::backup_job_from_env(
      env_of(req.env.env_val, req.env.env_len), s.server.exports, s.server.config.state_dir, why);
  if (!job) {
    explain(s, "DATA_START_BACKUP refused: " + why);
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  if (s.mover) job->record_size = s.mover->state().record_size;
  rep.error = co_await d.start_backup(std::move(*job));
  co_return Reply::with(rep);
}

asio::awaitable<Reply> start_recover_as(SessionContext& s,
                                        const ndmp4_data_start_recover_request& req,
                                        bool filehist_only) {
  DataServer& d = *co_await data_of(s);
  ndmp4_data_start_recover_reply rep{};
  const char* what = filehist_only ? "DATA_START_RECOVER_FILEHIST" : "DATA_START_RECOVER";
  const std::string butype = req.butype_name ? req.butype_name : "";
  if (s.server.butypes.find(butype) == nullptr) {
    explain(s, std::string(what) + ": unknown backup type '" + butype + "'");
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  const DataServer::State st = d.state();
  if (st.state != NDMP4_DATA_STATE_CONNECTED && st.state != NDMP4_DATA_STATE_LISTEN) {
    rep.error = NDMP4_ILLEGAL_STATE_ERR;
    co_return Reply::with(rep);
  }
  std::string why;
  std::vector<std::pair<std::string, std::string>> refused;
  std::optional<data::RecoverJob> job = data::recover_job_from_env(
      env_of(req.env.env_val, req.env.env_len), names_of(req.nlist.nlist_val, req.nlist.nlist_len),
      s.server.exports, filehist_only, refused, why);
  if (!job) {
    explain(s, std::string(what) + " refused: " + why);
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  for (const auto& [name, reason] : refused) {
    explain(s, std::string(what) + ": " + name + " not restored: " + reason);
    ndmp4_log_file_post p{};
    p.name = build::str(name);
    p.recovery_status = NDMP4_RECOVERY_FAILED_PERMISSION;
    s.outbox.post<NDMP4_LOG_FILE>(p);
  }
  if (!refused.empty() && job->names.empty()) {
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;  // nothing left to restore
    co_return Reply::with(rep);
  }
  rep.error = co_await d.start_recover(std::move(*job));
  co_return Reply::with(rep);
}

asio::awaitable<Reply> start_recover(SessionContext& s,
                                     const ndmp4_data_start_recover_request& req) {
  co_return co_await start_recover_as(s, req, false);
}

asio::awaitable<Reply> start_recover_filehist(SessionContext& s,
                                              const ndmp4_data_start_recover_request& req) {
  co_return co_await start_recover_as(s, req, true);
}

asio::awaitable<Reply> abort(SessionContext& s, const Void&) {
  DataServer& d = *co_await data_of(s);
  ndmp4_data_abort_reply rep{};
  rep.error = co_await d.abort();
  co_return Reply::with(rep);
}

asio::awaitable<Reply> stop(SessionContext& s, const Void&) {
  DataServer& d = *co_await data_of(s);
  ndmp4_data_stop_reply rep{};
  rep.error = d.stop();
  co_return Reply::with(rep);
}

asio::awaitable<Reply> get_env(SessionContext& s, const Void&) {
  DataServer& d = *co_await data_of(s);
  ndmp4_data_get_env_reply rep{};
  const DataServer::State st = d.state();
  const data::Env* env = d.backup_env();
  if (st.operation != NDMP4_DATA_OP_BACKUP ||
      (st.state != NDMP4_DATA_STATE_HALTED && st.state != NDMP4_DATA_STATE_ACTIVE) || !env) {
    rep.error = NDMP4_ILLEGAL_STATE_ERR;
    co_return Reply::with(rep);
  }
  std::vector<ndmp4_pval> pv = build::pvals(*env);
  build::array(rep.env.env_len, rep.env.env_val, pv);
  co_return Reply::with(rep);
}

}  // namespace

void register_data_handlers(Dispatcher& d) {
  d.on<NDMP4_DATA_GET_STATE>(get_state);
  d.on<NDMP4_DATA_LISTEN>(listen);
  d.on<NDMP4_DATA_CONNECT>(connect);
  d.on<NDMP4_DATA_START_BACKUP>(start_backup);
  d.on<NDMP4_DATA_START_RECOVER>(start_recover);
  d.on<NDMP4_DATA_START_RECOVER_FILEHIST>(start_recover_filehist);
  d.on<NDMP4_DATA_ABORT>(abort);
  d.on<NDMP4_DATA_STOP>(stop);
  d.on<NDMP4_DATA_GET_ENV>(get_env);
}

}  // namespace ndmpd
