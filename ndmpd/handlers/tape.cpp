// TAPE interface: OPEN, CLOSE, GET_STATE, MTIO, WRITE, READ, EXECUTE_CDB,
// with the semantics of draft-skardal-ndmpv4-04 section 3.4 (and what
// ndmjob's test-tape checks where the draft leaves room).
//
// The drive is moved through tape::TapeHead (the NDMP semantics of every
// motion, and host positioning for drives without usable READ POSITION)
// on the worker pool; the session awaits each operation, so OpenTape is
// touched by one thread at a time.
//
// Implicit filemark: records written with TAPE_WRITE and not yet followed
// by a filemark get one before REW, OFF and TAPE_CLOSE (draft 3.4.1).  Not
// before FSF/BSF/FSR/BSR: a DMA spacing back over what it just wrote must
// find the records, not a filemark (ndmjob's test-tape checks exactly this).

#include <spdlog/spdlog.h>

#include <chrono>

#include "ndmpd/dispatch.h"
#include "ndmpd/handlers/build.h"
#include "ndmpd/handlers/cdb_passthrough.h"
#include "ndmpd/offload.h"

namespace ndmpd {
namespace {

namespace asio = boost::asio;
using ndmp::xdr::Void;
using tape::Condition;

constexpr std::uint32_t kMaxRecord = 16u << 20;  // the largest record a TAPE_WRITE may carry
constexpr std::uint64_t kUnknown32 = 0xFFFFFFFFu;

// The NDMP error for a tape operation that did not succeed.
ndmp4_error error_of(const tape::Status& s) {
  switch (s.condition) {
    case Condition::kOk:
      return NDMP4_NO_ERR;
    case Condition::kNoMedium:
    case Condition::kNotReady:
      return NDMP4_NO_TAPE_LOADED_ERR;
    case Condition::kWriteProtected:
      return NDMP4_WRITE_PROTECT_ERR;
    default:
      return NDMP4_IO_ERR;
  }
}

void log_failure(SessionContext& s, std::string_view what, const tape::Status& st) {
  spdlog::warn("{} tape {}: {} failed: {}", s.tag(), s.tape ? s.tape->name : "?", what,
               st.describe());
}

// Writes the filemark that records written without one are owed.
tape::Status settle_pending_filemark(OpenTape& t) {
  if (!t.pending_filemark || !t.can_write()) return {};
  const tape::Status st = t.head->write_filemarks(1);
  if (st.ok() || st.condition == Condition::kEarlyWarning) {
    t.pending_filemark = false;
    return {};
  }
  return st;
}

// ---- OPEN / CLOSE ----

asio::awaitable<Reply> tape_open(SessionContext& s, const ndmp4_tape_open_request& req) {
  ndmp4_tape_open_reply rep{};
  const ndmp4_tape_open_mode mode = req.mode;
  if (mode != NDMP4_TAPE_READ_MODE && mode != NDMP4_TAPE_RDWR_MODE && mode != NDMP4_TAPE_RAW_MODE) {
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  if (s.tape || s.scsi) {
    rep.error = NDMP4_DEVICE_OPENED_ERR;
    co_return Reply::with(rep);
  }
  const std::string name = req.device ? req.device : "";
  const tape::DeviceRegistry::Entry* entry =
      s.server.registry ? s.server.registry->find(name) : nullptr;
  if (!entry || entry->kind != tape::DeviceKind::kTape) {
    rep.error = NDMP4_NO_DEVICE_ERR;
    co_return Reply::with(rep);
  }
  if (!s.server.locks.acquire(name, s.id)) {
    spdlog::info("{} TAPE_OPEN {}: held by session {}", s.tag(), name,
                 s.server.locks.holder(name).value_or(0));
    rep.error = NDMP4_DEVICE_BUSY_ERR;
    co_return Reply::with(rep);
  }

  auto t = std::make_unique<OpenTape>();
  t->name = name;
  t->mode = mode;
  t->device = entry->device;
  t->head = std::make_unique<tape::TapeHead>(entry->device);
  // The virtual library's drives take the mover's records in batches (a
  // MODE SELECT costs them nothing); a real drive gets one WRITE per record.
  t->head->set_batch_writes(entry->emulated);
  const std::optional<DeviceLocks::Parked> parked = s.server.locks.parked(name);

  // What the drive holds and where its head is, on the worker pool.
  struct Probe {
    tape::Status ready;
    bool write_protected = false;
    bool new_medium = false;  // UNIT ATTENTION 28/00: a cartridge arrived, at BOP
    bool reset = false;       // another unit attention (a reset): the position is in doubt
    tape::TapeDrive::Position position;
  };
  const Probe probe = co_await offload(s.server.workers, [&t] {
    Probe p;
    tape::TapeDrive& d = t->head->drive();
    // wait_ready consumes unit attentions: look at them first.
    for (int i = 0; i < 8; ++i) {
      p.ready = d.test_unit_ready();
      if (p.ready.condition != Condition::kUnitAttention) break;
      if (p.ready.sense && p.ready.sense->asc == 0x28) {
        p.new_medium = true;
      } else {
        p.reset = true;
      }
    }
    if (p.ready.condition == Condition::kNotReady ||
        p.ready.condition == Condition::kUnitAttention) {
      p.ready = d.wait_ready(std::chrono::seconds(10));
    }
    if (!p.ready.ok()) return p;
    p.write_protected = d.mode().write_protected;
    p.position = d.read_position();
    return p;
  });

  if (!probe.ready.ok()) {
    const bool no_tape = probe.ready.condition == Condition::kNoMedium ||
                         probe.ready.condition == Condition::kNotReady;
    if (!(no_tape && mode == NDMP4_TAPE_RAW_MODE)) {
      s.server.locks.release(name, s.id);
      rep.error = no_tape ? NDMP4_NO_TAPE_LOADED_ERR : NDMP4_IO_ERR;
      if (!no_tape) log_failure(s, "open", probe.ready);
      co_return Reply::with(rep);
    }
    t->loaded = false;
    t->head->forget();
  } else {
    if (mode == NDMP4_TAPE_RDWR_MODE && probe.write_protected) {
      s.server.locks.release(name, s.id);
      rep.error = NDMP4_WRITE_PROTECT_ERR;
      co_return Reply::with(rep);
    }
    // A drive that cannot say where its head is cannot be trusted to space
    // either: the host positions it.
    const tape::TapeDrive::Position& p = probe.position;
    t->head->set_positioning(p.status.ok() ? tape::TapeHead::Positioning::kDrive
                                           : tape::TapeHead::Positioning::kHost);
    // Where the head is: at BOP if the drive says so, or a new cartridge
    // arrived and the drive cannot say; else where this server left it, if
    // the drive agrees (or cannot tell, and nothing happened since); else
    // unknown until the DMA rewinds.
    tape::HeadPosition at;
    if ((p.status.ok() && p.bop) || (!p.status.ok() && probe.new_medium && !probe.reset)) {
      at.rewound();
    } else if (parked && !probe.new_medium && !probe.reset &&
               (!p.status.ok() || (parked->object && *parked->object == p.object))) {
      at = parked->position;
    } else {
      at.unknown();
      if (p.status.ok() && p.file) at.file = *p.file;
    }
    t->head->set_position(at);
    if (!p.status.ok()) {
      spdlog::debug("{} tape {}: no usable READ POSITION ({}), the host positions the drive",
                    s.tag(), name, p.status.describe());
    }
  }
  spdlog::info("{} TAPE_OPEN {} ({})", s.tag(), name,
               mode == NDMP4_TAPE_READ_MODE   ? "read"
               : mode == NDMP4_TAPE_RDWR_MODE ? "read/write"
                                              : "raw");
  s.tape = std::move(t);
  rep.error = NDMP4_NO_ERR;
  co_return Reply::with(rep);
}

// Closes the session's tape; `force` skips the implicit filemark's failure
// (the session is ending, or the DMA closes a second time).
asio::awaitable<ndmp4_error> close_tape(SessionContext& s, bool force) {
  OpenTape& t = *s.tape;
  if (t.loaded && !t.close_failed) {
    struct Done {
      tape::Status filemark;
      tape::TapeDrive::Position position;
    };
    const Done done = co_await offload(s.server.workers, [&t] {
      Done d;
      d.filemark = settle_pending_filemark(t);
      if (d.filemark.ok()) {
        // The next session finds the head where this one's position says.
        if (const tape::Status st = t.head->settle(); !st.ok()) t.head->forget();
        d.position = t.head->drive().read_position();
      }
      return d;
    });
    if (!done.filemark.ok() && !force) {
      log_failure(s, "close (implicit filemark)", done.filemark);
      t.close_failed = true;  // the next close closes without I/O
      co_return error_of(done.filemark) == NDMP4_NO_TAPE_LOADED_ERR ? NDMP4_NO_TAPE_LOADED_ERR
                                                                    : NDMP4_IO_ERR;
    }
    DeviceLocks::Parked parked;
    parked.position = t.head->position();
    if (done.position.status.ok()) parked.object = done.position.object;
    s.server.locks.park(t.name, parked);
  }
  spdlog::info("{} TAPE_CLOSE {}", s.tag(), t.name);
  s.server.locks.release(t.name, s.id);
  s.tape.reset();
  co_return NDMP4_NO_ERR;
}

// The checks before the DMA may use its open tape: it is open, and the
// mover does not have it (LISTEN or ACTIVE; draft 2.11.4, 3.4.3).
ndmp4_error tape_usable(const SessionContext& s) {
  if (!s.tape) return NDMP4_DEV_NOT_OPEN_ERR;
  if (s.mover_owns_tape()) return NDMP4_DEVICE_BUSY_ERR;
  return NDMP4_NO_ERR;
}

asio::awaitable<Reply> tape_close(SessionContext& s, const Void&) {
  ndmp4_tape_close_reply rep{};
  if (const ndmp4_error e = tape_usable(s); e != NDMP4_NO_ERR) {
    rep.error = e;
    co_return Reply::with(rep);
  }
  rep.error = co_await close_tape(s, false);
  co_return Reply::with(rep);
}

// ---- GET_STATE ----

asio::awaitable<Reply> tape_get_state(SessionContext& s, const Void&) {
  ndmp4_tape_get_state_reply rep{};
  if (!s.tape) {
    rep.error = NDMP4_DEV_NOT_OPEN_ERR;
    rep.unsupported = 0x3F;
    co_return Reply::with(rep);
  }
  OpenTape& t = *s.tape;
  struct Facts {
    tape::TapeDrive::Mode mode;
    tape::TapeDrive::Capacity capacity;
  };
  Facts f;
  // While the mover has the tape, its head is the mover's: report what is
  // known without commanding the drive.
  const bool mover_has_it = s.mover_owns_tape();
  if (t.loaded && !mover_has_it) {
    f = co_await offload(s.server.workers, [&t] {
      Facts x;
      x.mode = t.head->drive().mode();
      if (x.mode.status.ok()) x.capacity = t.head->drive().capacity();
      return x;
    });
  }
  rep.error = NDMP4_NO_ERR;
  rep.flags = NDMP4_TAPE_STATE_NOREWIND;  // closing never rewinds
  if (f.mode.status.ok() && f.mode.write_protected) rep.flags |= NDMP4_TAPE_STATE_WR_PROT;
  if (t.media_error) rep.flags |= NDMP4_TAPE_STATE_ERROR;
  rep.unsupported = NDMP4_TAPE_STATE_SOFT_ERRORS_UNS;
  rep.soft_errors = kUnknown32;
  const tape::HeadPosition& at = mover_has_it ? s.mover->last_position() : t.head->position();
  if (at.file && *at.file < kUnknown32) {
    rep.file_num = static_cast<u_int>(*at.file);
  } else {
    rep.file_num = kUnknown32;
    rep.unsupported |= NDMP4_TAPE_STATE_FILE_NUM_UNS;
  }
  if (at.record && *at.record < kUnknown32 && !t.blockno_unknown) {
    rep.blockno = static_cast<u_int>(*at.record);
  } else {
    rep.blockno = kUnknown32;
    rep.unsupported |= NDMP4_TAPE_STATE_BLOCKNO_UNS;
  }
  if (f.mode.status.ok()) {
    rep.block_size = f.mode.block_length;
  } else {
    rep.block_size = kUnknown32;
    rep.unsupported |= NDMP4_TAPE_STATE_BLOCK_SIZE_UNS;
  }
  if (f.capacity.status.ok()) {
    rep.total_space = f.capacity.total;
    rep.space_remain = f.capacity.remaining;
  } else {
    rep.total_space = ~0ull;
    rep.space_remain = ~0ull;
    rep.unsupported |= NDMP4_TAPE_STATE_TOTAL_SPACE_UNS | NDMP4_TAPE_STATE_SPACE_REMAIN_UNS;
  }
  co_return Reply::with(rep);
}

// ---- MTIO ----

struct MtioResult {
  ndmp4_error error = NDMP4_NO_ERR;
  std::uint32_t resid = 0;
};

MtioResult mtio(OpenTape& t, ndmp4_tape_mtio_op op, std::uint32_t count) {
  MtioResult out;
  tape::TapeHead& h = *t.head;
  auto fail = [&](const tape::Status& st) {
    if (st.condition == Condition::kMediumError) t.media_error = true;
    out.error = error_of(st);
    out.resid = count;
  };
  t.media_error = false;
  t.blockno_unknown = false;
  switch (op) {
    case NDMP4_MTIO_TUR: {
      const tape::Status st = h.test_unit_ready();
      if (!st.ok()) out.error = error_of(st);
      return out;
    }
    case NDMP4_MTIO_REW:
    case NDMP4_MTIO_OFF: {
      // The filemark owed to the records written; if it cannot be written
      // (no room left past the end of the medium), the rewind still goes
      // ahead: a DMA must be able to get its cartridge back.
      if (const tape::Status fm = settle_pending_filemark(t); !fm.ok()) {
        spdlog::warn("tape {}: the implicit filemark before {} failed: {}", t.name,
                     op == NDMP4_MTIO_REW ? "REW" : "OFF", fm.describe());
        t.pending_filemark = false;
      }
      tape::Status st = h.rewind();
      if (st.ok() && op == NDMP4_MTIO_OFF) {
        st = h.unload();
        if (st.ok()) t.loaded = false;
      }
      if (!st.ok()) {
        fail(st);
        out.resid = 0;
      }
      return out;
    }
    default:
      break;
  }
  if (count == 0) return out;  // no movement: v4's no-op (its enum has no NOP)
  if (op == NDMP4_MTIO_EOF) {
    const tape::Status st = h.write_filemarks(count);
    if (st.ok() || st.condition == Condition::kEarlyWarning) {
      t.pending_filemark = false;
      return out;
    }
    fail(st);
    if (st.condition == Condition::kOverflow && st.residue_valid && st.residue >= 0) {
      out.resid = static_cast<std::uint32_t>(std::min<std::int64_t>(st.residue, count));
    }
    return out;
  }
  tape::TapeHead::Motion m;
  switch (op) {
    case NDMP4_MTIO_FSF:
      m = h.forward_files(count);
      break;
    case NDMP4_MTIO_BSF:
      m = h.back_files(count);
      break;
    case NDMP4_MTIO_FSR:
      m = h.forward_records(count);
      break;
    case NDMP4_MTIO_BSR:
      m = h.back_records(count);
      break;
    default:
      out.error = NDMP4_ILLEGAL_ARGS_ERR;
      return out;
  }
  if (m.status.ok() || m.stopped_early()) {
    // A filemark, end of data or BOP ending the motion early is not an
    // error: the residual count says how early (draft 3.4.4).
    out.resid = m.resid;
    return out;
  }
  fail(m.status);
  out.resid = m.resid;
  return out;
}

asio::awaitable<Reply> tape_mtio(SessionContext& s, const ndmp4_tape_mtio_request& req) {
  ndmp4_tape_mtio_reply rep{};
  if (const ndmp4_error e = tape_usable(s); e != NDMP4_NO_ERR) {
    rep.error = e;
    co_return Reply::with(rep);
  }
  OpenTape& t = *s.tape;
  const ndmp4_tape_mtio_op op = req.tape_op;
  if (op < NDMP4_MTIO_FSF || op > NDMP4_MTIO_TUR) {
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  if (op == NDMP4_MTIO_EOF && !t.can_write()) {
    rep.error = NDMP4_PERMISSION_ERR;
    co_return Reply::with(rep);
  }
  if (!t.loaded && op != NDMP4_MTIO_TUR) {
    // A RAW open without a cartridge: one may have arrived since.
    const tape::Status st = co_await offload(s.server.workers, [&t] {
      tape::Status ready = t.head->drive().wait_ready(std::chrono::seconds(2));
      if (ready.ok()) {
        const tape::TapeDrive::Position p = t.head->drive().read_position();
        t.head->forget();
        t.head->set_positioning(p.status.ok() ? tape::TapeHead::Positioning::kDrive
                                              : tape::TapeHead::Positioning::kHost);
        if (p.status.ok() && p.bop) t.head->set_position({});
      }
      return ready;
    });
    if (!st.ok()) {
      rep.error = NDMP4_NO_TAPE_LOADED_ERR;
      rep.resid_count = req.count;
      co_return Reply::with(rep);
    }
    t.loaded = true;
  }
  const MtioResult r = co_await offload(s.server.workers,
                                        [&t, op, count = req.count] { return mtio(t, op, count); });
  if (op == NDMP4_MTIO_TUR && r.error == NDMP4_NO_ERR) t.loaded = true;
  rep.error = r.error;
  rep.resid_count = r.resid;
  co_return Reply::with(rep);
}

// ---- WRITE / READ ----

asio::awaitable<Reply> tape_write(SessionContext& s, const ndmp4_tape_write_request& req) {
  ndmp4_tape_write_reply rep{};
  if (const ndmp4_error e = tape_usable(s); e != NDMP4_NO_ERR) {
    rep.error = e;
    co_return Reply::with(rep);
  }
  OpenTape& t = *s.tape;
  if (!t.can_write()) {
    rep.error = NDMP4_PERMISSION_ERR;
    co_return Reply::with(rep);
  }
  const std::span<const std::uint8_t> data(
      reinterpret_cast<const std::uint8_t*>(req.data_out.data_out_val), req.data_out.data_out_len);
  if (data.empty()) {
    rep.error = NDMP4_NO_ERR;
    co_return Reply::with(rep);
  }
  if (data.size() > kMaxRecord) {
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  if (!t.loaded) {
    rep.error = NDMP4_NO_TAPE_LOADED_ERR;
    co_return Reply::with(rep);
  }
  // Early warning was met: the next write is refused once with EOM_ERR
  // (draft 3.4.6); later ones go on into the reserve.
  if (t.early_warning && !t.eom_reported) {
    t.eom_reported = true;
    rep.error = NDMP4_EOM_ERR;
    co_return Reply::with(rep);
  }
  const tape::Status st = co_await offload(s.server.workers, [&t, data] {
    t.media_error = false;
    t.blockno_unknown = false;
    return t.head->write(data);
  });
  switch (st.condition) {
    case Condition::kOk:
    case Condition::kEarlyWarning:
      rep.error = NDMP4_NO_ERR;
      rep.count = static_cast<u_int>(data.size());
      t.pending_filemark = true;
      if (st.condition == Condition::kEarlyWarning && !t.early_warning) {
        spdlog::info("{} tape {}: early warning", s.tag(), t.name);
        t.early_warning = true;
      }
      break;
    case Condition::kIllegalRequest:
      rep.error = NDMP4_ILLEGAL_ARGS_ERR;
      break;
    case Condition::kOverflow:
      rep.error = NDMP4_IO_ERR;  // past the physical end (draft 3.4.6)
      break;
    default:
      if (st.condition == Condition::kMediumError) t.media_error = true;
      log_failure(s, "write", st);
      rep.error = error_of(st);
      break;
  }
  co_return Reply::with(rep);
}

asio::awaitable<Reply> tape_read(SessionContext& s, const ndmp4_tape_read_request& req) {
  ndmp4_tape_read_reply rep{};
  if (const ndmp4_error e = tape_usable(s); e != NDMP4_NO_ERR) {
    rep.error = e;
    co_return Reply::with(rep);
  }
  OpenTape& t = *s.tape;
  if (req.count == 0) {
    rep.error = NDMP4_NO_ERR;
    co_return Reply::with(rep);
  }
  if (req.count > kMaxRecord) {
    rep.error = NDMP4_ILLEGAL_ARGS_ERR;
    co_return Reply::with(rep);
  }
  if (!t.loaded) {
    rep.error = NDMP4_NO_TAPE_LOADED_ERR;
    co_return Reply::with(rep);
  }
  std::vector<std::uint8_t> buffer(req.count);
  const tape::TapeDrive::Read r = co_await offload(s.server.workers, [&t, &buffer] {
    t.media_error = false;
    return t.head->read(buffer);
  });
  t.blockno_unknown = false;
  switch (r.status.condition) {
    case Condition::kOk:
    case Condition::kIncorrectLength:
      rep.error = NDMP4_NO_ERR;
      rep.data_in.data_in_len = static_cast<u_int>(r.bytes);
      rep.data_in.data_in_val = reinterpret_cast<char*>(buffer.data());
      break;
    case Condition::kFilemark:
      rep.error = NDMP4_EOF_ERR;  // the head stays before the filemark (draft 3.4.7)
      t.blockno_unknown = true;
      break;
    case Condition::kEndOfData:
      rep.error = NDMP4_EOM_ERR;  // blank tape (draft 3.4.7)
      break;
    default:
      if (r.status.condition == Condition::kMediumError) t.media_error = true;
      log_failure(s, "read", r.status);
      rep.error = error_of(r.status);
      break;
  }
  co_return Reply::with(rep);
}

// ---- EXECUTE_CDB ----

asio::awaitable<Reply> tape_execute_cdb(SessionContext& s, const ndmp4_execute_cdb_request& req) {
  if (const ndmp4_error e = tape_usable(s); e != NDMP4_NO_ERR) {
    ndmp4_execute_cdb_reply rep{};
    rep.error = e;
    co_return Reply::with(rep);
  }
  OpenTape& t = *s.tape;
  const std::uint8_t opcode =
      req.cdb.cdb_len > 0 ? static_cast<std::uint8_t>(req.cdb.cdb_val[0]) : 0;
  // The command finds the head where the position says.
  co_await offload(s.server.workers, [&t] {
    if (!t.head->settle().ok()) t.head->forget();
    return 0;
  });
  Reply r = co_await execute_cdb(s, *t.device, req);
  // What the command may have done to the position (draft 3.4.1: GET_STATE
  // may be imprecise afterwards): a rewind is known, anything that moves
  // the medium or changes the mode makes it unknown.
  t.blockno_unknown = false;
  switch (opcode) {
    case 0x01:  // REWIND
      t.head->set_position({});
      t.pending_filemark = false;
      break;
    case 0x00:
    case 0x03:
    case 0x05:
    case 0x12:
    case 0x1A:
    case 0x1E:
    case 0x34:
    case 0x4D:
    case 0x5A:
    case 0xA0:
      break;  // TUR, REQUEST SENSE, READ BLOCK LIMITS, INQUIRY, MODE SENSE, READ POSITION, LOG
              // SENSE...
    case 0x15:
    case 0x55:  // MODE SELECT: the block length may have changed
      t.head->mode_changed();
      break;
    default:
      t.head->forget();
      t.pending_filemark = false;
      break;
  }
  co_return r;
}

}  // namespace

asio::awaitable<void> SessionContext::release_devices() {
  if (tape) {
    try {
      co_await close_tape(*this, true);
    } catch (const std::exception& e) {
      spdlog::error("{} releasing the tape: {}", tag(), e.what());
      server.locks.release(tape->name, id);
      tape.reset();
    }
  }
  if (scsi) {
    spdlog::info("{} SCSI_CLOSE {} (session ends)", tag(), scsi->name);
    server.locks.release(scsi->name, id);
    scsi.reset();
  }
}

void register_tape_handlers(Dispatcher& d) {
  d.on<NDMP4_TAPE_OPEN>(tape_open);
  d.on<NDMP4_TAPE_CLOSE>(tape_close);
  d.on<NDMP4_TAPE_GET_STATE>(tape_get_state);
  d.on<NDMP4_TAPE_MTIO>(tape_mtio);
  d.on<NDMP4_TAPE_WRITE>(tape_write);
  d.on<NDMP4_TAPE_READ>(tape_read);
  d.on<NDMP4_TAPE_EXECUTE_CDB>(tape_execute_cdb);
}

}  // namespace ndmpd
