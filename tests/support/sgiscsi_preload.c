/* sgiscsi_preload: an LD_PRELOAD shim that serves Linux SCSI pass-through
 * (ioctl SG_IO, sg v3 and v4) on chosen paths with libiscsi, so that code
 * written for /dev/sgN and /dev/bsg/H:C:T:L (libsgutils2's sg_pt, scsi::SgDevice)
 * runs unmodified against an iSCSI target, on a machine without kernel
 * SCSI.  For tests only.
 *
 * Environment (read once, at the first intercepted call):
 *   NDMPD_SGISCSI_MAP="PATH=URL;PATH=URL..."   which paths are which LUNs
 *   NDMPD_SGISCSI_INITIATOR=IQN    default iqn.2026-11.org.ndmpd:sgiscsi
 *   NDMPD_SGISCSI_LOGIN_TIMEOUT_MS default 10000 (one connect + login)
 *   NDMPD_SGISCSI_RECONNECTS       default 3 (login attempts when a session is down)
 *   NDMPD_SGISCSI_DEBUG=1          one line per command on stderr
 *   NDMPD_SGISCSI_TRACE=FILE       appends "PATH v3|v4 OPCODE STATUS" per SG_IO
 *                                  (tests check which interface was used)
 *
 * A mapped PATH must exist (an empty file, or a char node: with the sg
 * major, libsgutils2 asks SG_GET_VERSION_NUM and uses sg v3; with the bsg
 * major, it uses sg v4).  open()ing it opens the node with O_PATH, so that
 * no driver is involved and fstat() still tells its type, then logs in to
 * the URL (bounded) and checks the LUN with INQUIRY; a failure is ENXIO.
 * Each such file descriptor has its own iSCSI session and lock: SG_IO on
 * one fd runs one command at a time; different fds run in parallel.
 * close() logs out.  A command timeout or a lost connection drops the
 * session (the command gets a host status: DID_TIME_OUT, or
 * DID_TRANSPORT_DISRUPTED) and the next SG_IO logs in again first.
 *
 * Emulated ioctls: SG_IO (v3 'S' and v4 'Q', flat or iovec buffers, no
 * bidi), SG_GET_VERSION_NUM (30536: sg v3), SG_[GS]ET_TIMEOUT,
 * SG_[GS]ET_RESERVED_SIZE, SG_EMULATED_HOST, SG_GET_SCSI_ID,
 * SG_GET_SG_TABLESIZE, SCSI_IOCTL_GET_IDLUN, SCSI_IOCTL_GET_BUS_NUMBER;
 * others fail with ENOTTY.  Not emulated: the asynchronous sg read()/write()
 * interface, task management, dup()ed descriptors (only the fd open()
 * returned is served), and use in a child after fork() without exec(). */
#define _GNU_SOURCE
/* The intercepted functions must be the plain ones, not fortified inlines
 * or their 64-bit-offset redirections. */
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <linux/bsg.h>
#include <poll.h>
#include <pthread.h>
#include <scsi/sg.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SCSI_IOCTL_GET_IDLUN
#define SCSI_IOCTL_GET_IDLUN 0x5382
#endif
#ifndef SCSI_IOCTL_GET_BUS_NUMBER
#define SCSI_IOCTL_GET_BUS_NUMBER 0x5386
#endif

/* Linux host byte values (include/scsi/scsi_status.h). */
enum {
  kDidNoConnect = 0x01,
  kDidTimeOut = 0x03,
  kDidError = 0x07,
  kDidTransportDisrupted = 0x0e,
};
enum { kDriverSense = 0x08 };
enum { kSgVersion = 30536, kMaxSessions = 256, kDefaultTimeoutMs = 60000 };

/* ---- what the environment says (immutable after init) ------------------- */

struct mapping {
  char *path;
  char *url;
};

static struct mapping *maps;
static size_t nmaps;
static const char *initiator = "iqn.2026-11.org.ndmpd:sgiscsi";
static int login_timeout_ms = 10000;
static int reconnects = 3;
static int debug;
static const char *trace_path;

static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_ioctl)(int, unsigned long, ...);

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void *next_symbol(const char *name) {
  void *p = dlsym(RTLD_NEXT, name);
  if (p == NULL) {
    fprintf(stderr, "sgiscsi: cannot find %s: %s\n", name, dlerror());
    abort();
  }
  return p;
}

static int env_int(const char *name, int fallback, int min) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return fallback;
  char *end;
  long n = strtol(v, &end, 10);
  if (*end != '\0' || n < min || n > 1000000000) {
    fprintf(stderr, "sgiscsi: ignoring %s=%s\n", name, v);
    return fallback;
  }
  return (int)n;
}

static void parse_map(const char *spec) {
  size_t cap = 1;
  for (const char *c = spec; *c; ++c) cap += *c == ';';
  maps = calloc(cap, sizeof *maps);
  if (maps == NULL) return;
  const char *p = spec;
  while (*p) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (eq != NULL && eq > p && (size_t)(eq - p) + 1 < len) {
      maps[nmaps].path = strndup(p, (size_t)(eq - p));
      maps[nmaps].url = strndup(eq + 1, len - (size_t)(eq - p) - 1);
      if (maps[nmaps].path && maps[nmaps].url) ++nmaps;
    } else if (len > 0) {
      fprintf(stderr, "sgiscsi: ignoring map entry '%.*s' (want PATH=URL)\n", (int)len, p);
    }
    p += len + (end != NULL);
  }
}

static void init(void) {
  void *p = next_symbol("openat");
  memcpy(&real_openat, &p, sizeof p);
  p = next_symbol("close");
  memcpy(&real_close, &p, sizeof p);
  p = next_symbol("ioctl");
  memcpy(&real_ioctl, &p, sizeof p);
  const char *v = getenv("NDMPD_SGISCSI_INITIATOR");
  if (v != NULL && *v) initiator = v;
  login_timeout_ms = env_int("NDMPD_SGISCSI_LOGIN_TIMEOUT_MS", login_timeout_ms, 1);
  reconnects = env_int("NDMPD_SGISCSI_RECONNECTS", reconnects, 1);
  debug = env_int("NDMPD_SGISCSI_DEBUG", 0, 0);
  trace_path = getenv("NDMPD_SGISCSI_TRACE");
  v = getenv("NDMPD_SGISCSI_MAP");
  if (v != NULL) parse_map(v);
}

static const char *mapped_url(const char *path) {
  if (path == NULL) return NULL;
  for (size_t i = 0; i < nmaps; ++i) {
    if (strcmp(maps[i].path, path) == 0) return maps[i].url;
  }
  return NULL;
}

/* ---- one iSCSI session per opened fd ------------------------------------ */

struct pending {
  int done;
  int status;
  char error[256]; /* libiscsi's text when the callback ran (later overwritten) */
};

struct session {
  pthread_mutex_t lock; /* one command at a time on this fd */
  int refs;             /* under table_lock: the table's, plus calls in progress */
  int fd;
  char path[1024];
  char url[1024];
  char portal[MAX_STRING_SIZE + 1];
  char iqn[MAX_STRING_SIZE + 1];
  char user[MAX_STRING_SIZE + 1];
  char password[MAX_STRING_SIZE + 1];
  int lun;
  struct iscsi_context *ctx; /* NULL while the session is down */
  struct pending connect;    /* libiscsi keeps a pointer to it */
  unsigned timeout_ms;       /* SG_SET_TIMEOUT: used when SG_IO says 0 */
  int reserved_size;
  int peripheral_type;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session *table[kMaxSessions];
static atomic_int nsessions;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_done(struct iscsi_context *ctx, int status, void *data, void *private_data) {
  (void)data;
  struct pending *p = private_data;
  p->status = status;
  p->done = 1;
  if (status != SCSI_STATUS_GOOD) snprintf(p->error, sizeof p->error, "%s", iscsi_get_error(ctx));
}

enum pumped { kDone, kTimedOut, kFailed };

/* Drives ctx until p->done or the deadline; never sleeps more than a
 * second at a time, so that libiscsi's timers keep ticking. */
static enum pumped pump(struct iscsi_context *ctx, const struct pending *p, int64_t deadline) {
  while (!p->done) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return kTimedOut;
    struct pollfd pfd = {.fd = iscsi_get_fd(ctx), .events = (short)iscsi_which_events(ctx)};
    int n = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return kFailed;
    }
    /* May fail after the callback ran: callers look at p->done first. */
    if (iscsi_service(ctx, n > 0 ? pfd.revents : 0) < 0) return kFailed;
  }
  return kDone;
}

/* libiscsi writes data-out with writev(), which raises SIGPIPE when the
 * target is gone: block it around libiscsi calls, consume what was raised. */
struct nosigpipe {
  sigset_t old;
  int was_pending;
};

static void block_sigpipe(struct nosigpipe *g) {
  sigset_t sigs, pending;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGPIPE);
  sigpending(&pending);
  g->was_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &sigs, &g->old);
}

static void unblock_sigpipe(const struct nosigpipe *g) {
  sigset_t sigs, pending;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGPIPE);
  sigpending(&pending);
  if (!g->was_pending && sigismember(&pending, SIGPIPE) == 1) {
    struct timespec zero = {0, 0};
    sigtimedwait(&sigs, NULL, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static void drop_session(struct session *s) {
  if (s->ctx != NULL) {
    iscsi_destroy_context(s->ctx); /* closes the connection */
    s->ctx = NULL;
  }
}

/* Connect and log in, bounded by login_timeout_ms.  0, or -1 and err. */
static int login(struct session *s, char *err, size_t errlen) {
  int64_t deadline = now_ms() + login_timeout_ms;
  struct iscsi_context *ctx = iscsi_create_context(initiator);
  if (ctx == NULL) {
    snprintf(err, errlen, "cannot create an iSCSI context");
    return -1;
  }
  iscsi_set_targetname(ctx, s->iqn);
  iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL);
  iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C);
  if (s->user[0]) iscsi_set_initiator_username_pwd(ctx, s->user, s->password);
  /* libiscsi's reconnect replays commands in flight: never for tape. */
  iscsi_set_noautoreconnect(ctx, 1);
  memset(&s->connect, 0, sizeof s->connect);
  if (iscsi_connect_async(ctx, s->portal, on_done, &s->connect) != 0) {
    snprintf(err, errlen, "connect to %s: %s", s->portal, iscsi_get_error(ctx));
    iscsi_destroy_context(ctx);
    return -1;
  }
  int fd = iscsi_get_fd(ctx);
  if (fd >= 0) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
  enum pumped r = pump(ctx, &s->connect, deadline);
  if (r != kDone || s->connect.status != SCSI_STATUS_GOOD) {
    snprintf(err, errlen, "connect to %s: %s", s->portal,
             r == kTimedOut        ? "timed out"
             : s->connect.error[0] ? s->connect.error
                                   : iscsi_get_error(ctx));
    iscsi_destroy_context(ctx);
    return -1;
  }
  struct pending done = {0};
  if (iscsi_login_async(ctx, on_done, &done) != 0) {
    snprintf(err, errlen, "login to %s: %s", s->iqn, iscsi_get_error(ctx));
    iscsi_destroy_context(ctx);
    return -1;
  }
  r = pump(ctx, &done, deadline);
  if (r != kDone || done.status != SCSI_STATUS_GOOD) {
    snprintf(err, errlen, "login to %s at %s: %s", s->iqn, s->portal,
             r == kTimedOut  ? "timed out"
             : done.error[0] ? done.error
                             : iscsi_get_error(ctx));
    iscsi_destroy_context(ctx); /* calls the login callback if still pending */
    return -1;
  }
  s->ctx = ctx;
  return 0;
}

/* Whether an idle session still has its connection, answering what the
 * target sent meanwhile (NOP-In pings).  Checked before a command is sent,
 * while logging in again is harmless.  (Unlike scsi::IscsiDevice there is
 * no keep-alive thread: a target that drops unanswered idle sessions costs
 * a new login and a unit attention here.) */
static int session_alive(struct session *s) {
  int fd = iscsi_get_fd(s->ctx);
  if (fd < 0) return 0;
  for (int round = 0; round < 8; ++round) { /* a few PDUs at most */
    struct pollfd pfd = {.fd = fd,
                         .events = (short)(POLLIN | (iscsi_which_events(s->ctx) & POLLOUT))};
    int n = poll(&pfd, 1, 0);
    if (n < 0) return errno == EINTR;
    if (n == 0) return 1;
    if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) return 0;
    if (pfd.revents & POLLIN) {
      char byte;
      ssize_t got = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (got == 0) return 0; /* the target closed the connection */
      if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return 0;
    }
    if (iscsi_service(s->ctx, pfd.revents) < 0) return 0;
  }
  return 1;
}

static int ensure_session(struct session *s, char *err, size_t errlen) {
  if (s->ctx != NULL && !session_alive(s)) drop_session(s);
  for (int i = 0; s->ctx == NULL && i < reconnects; ++i) {
    if (i > 0) usleep(500 * 1000);
    if (login(s, err, errlen) == 0) return 0;
  }
  return s->ctx != NULL ? 0 : -1;
}

/* One command and what became of it. */
struct request {
  const unsigned char *cdb;
  int cdb_len;
  int direction; /* SCSI_XFER_* */
  uint32_t length;
  struct scsi_iovec *iov; /* the caller's buffers */
  int niov;
  unsigned timeout_ms;
  unsigned char *sense;
  unsigned max_sense;
};

struct outcome {
  int host_status; /* 0: the device answered */
  int status;
  unsigned sense_len;
  uint32_t resid;
  unsigned duration_ms;
};

static void run(struct session *s, const struct request *q, struct outcome *o) {
  int64_t start = now_ms();
  char err[1024] = "";
  memset(o, 0, sizeof *o);
  o->resid = q->length;
  if (ensure_session(s, err, sizeof err) != 0) {
    if (debug) fprintf(stderr, "sgiscsi: %s: %s\n", s->url, err);
    o->host_status = kDidNoConnect;
    o->duration_ms = (unsigned)(now_ms() - start);
    return;
  }
  const int64_t sent = now_ms(); /* a login before does not eat the timeout */
  unsigned char cdb[SCSI_CDB_MAX_SIZE] = {0};
  memcpy(cdb, q->cdb, (size_t)q->cdb_len);
  struct scsi_task *task = scsi_create_task(q->cdb_len, cdb, q->direction, (int)q->length);
  if (task == NULL) {
    o->host_status = kDidError;
    return;
  }
  /* Always our buffers: libiscsi would drop data-in that comes with
   * CHECK CONDITION (SSC READ with ILI or FILEMARK) otherwise. */
  if (q->direction == SCSI_XFER_READ) scsi_task_set_iov_in(task, q->iov, q->niov);
  if (q->direction == SCSI_XFER_WRITE) scsi_task_set_iov_out(task, q->iov, q->niov);
  struct pending done = {0};
  enum pumped r = kFailed;
  if (iscsi_scsi_command_async(s->ctx, s->lun, task, on_done, NULL, &done) == 0) {
    r = pump(s->ctx, &done, sent + q->timeout_ms);
  }
  int answered = done.done && done.status >= 0 && done.status <= 0xff;
  if (!answered) {
    snprintf(err, sizeof err, "%s", iscsi_get_error(s->ctx));
    drop_session(s); /* the target aborts the task with the connection */
    o->host_status =
        r == kTimedOut || done.status == SCSI_STATUS_TIMEOUT ? kDidTimeOut : kDidTransportDisrupted;
    if (debug) {
      fprintf(stderr, "sgiscsi: %s: cdb %02x: %s\n", s->url, q->cdb[0],
              r == kTimedOut ? "timed out" : err);
    }
  } else {
    o->status = done.status;
    o->resid = 0;
    if (task->residual_status == SCSI_RESIDUAL_UNDERFLOW) {
      o->resid = task->residual < q->length ? (uint32_t)task->residual : q->length;
    }
    if (done.status == SCSI_STATUS_CHECK_CONDITION && task->datain.data != NULL &&
        task->datain.size >= 2) {
      /* The sense segment: a 2-byte length, then the sense data. */
      unsigned n = ((unsigned)task->datain.data[0] << 8) | task->datain.data[1];
      if (n > (unsigned)task->datain.size - 2) n = (unsigned)task->datain.size - 2;
      if (n > q->max_sense) n = q->max_sense;
      if (q->sense != NULL) memcpy(q->sense, task->datain.data + 2, n);
      o->sense_len = q->sense != NULL ? n : 0;
    }
    if (r == kFailed) drop_session(s);
  }
  scsi_free_scsi_task(task);
  o->duration_ms = (unsigned)(now_ms() - start);
  if (debug) {
    fprintf(stderr, "sgiscsi: %s: cdb %02x len %u -> host %#x status %#x sense %u resid %u\n",
            s->url, q->cdb[0], q->length, o->host_status, o->status, o->sense_len, o->resid);
  }
}

static int iov_total_ok(const struct scsi_iovec *iov, int n, uint32_t need) {
  uint64_t total = 0;
  for (int i = 0; i < n; ++i) {
    if (iov[i].iov_base == NULL && iov[i].iov_len > 0) return 0;
    total += iov[i].iov_len;
  }
  return total >= need;
}

static void trace(const struct session *s, const char *interface, const struct request *q,
                  const struct outcome *o) {
  if (trace_path == NULL || *trace_path == '\0') return;
  FILE *f = fopen(trace_path, "ae");
  if (f == NULL) return;
  fprintf(f, "%s %s %02x %02x\n", s->path, interface, q->cdb[0], (unsigned)o->status);
  fclose(f);
}

static int sg_io_v3(struct session *s, sg_io_hdr_t *h) {
  if (h->cmd_len < 1 || h->cmd_len > SCSI_CDB_MAX_SIZE || h->cmdp == NULL) {
    errno = EINVAL;
    return -1;
  }
  struct request q = {.cdb = h->cmdp, .cdb_len = h->cmd_len, .length = h->dxfer_len};
  switch (h->dxfer_direction) {
    case SG_DXFER_NONE:
      q.direction = SCSI_XFER_NONE;
      break;
    case SG_DXFER_TO_DEV:
      q.direction = SCSI_XFER_WRITE;
      break;
    case SG_DXFER_FROM_DEV:
    case SG_DXFER_TO_FROM_DEV:
      q.direction = SCSI_XFER_READ;
      break;
    default:
      errno = EINVAL;
      return -1;
  }
  if (q.length == 0) q.direction = SCSI_XFER_NONE;
  if (q.direction == SCSI_XFER_NONE) q.length = 0;
  if (q.length > INT32_MAX) {
    errno = EINVAL;
    return -1;
  }
  struct scsi_iovec flat = {h->dxferp, q.length};
  if (q.length > 0) {
    if (h->iovec_count > 0) {
      q.iov = (struct scsi_iovec *)h->dxferp; /* sg_iovec_t: same layout */
      q.niov = h->iovec_count;
    } else {
      q.iov = &flat;
      q.niov = 1;
    }
    if (q.iov == NULL || !iov_total_ok(q.iov, q.niov, q.length)) {
      errno = EFAULT;
      return -1;
    }
  }
  q.timeout_ms = h->timeout ? h->timeout : s->timeout_ms;
  q.sense = h->sbp;
  q.max_sense = h->sbp ? h->mx_sb_len : 0;

  struct outcome o;
  run(s, &q, &o);
  trace(s, "v3", &q, &o);
  h->status = (unsigned char)o.status;
  h->masked_status = (unsigned char)((o.status >> 1) & 0x7f);
  h->msg_status = 0;
  h->sb_len_wr = (unsigned char)o.sense_len;
  h->host_status = (unsigned short)o.host_status;
  h->driver_status = o.sense_len > 0 ? kDriverSense : 0;
  h->resid = (int)o.resid;
  h->duration = o.duration_ms;
  h->info = (o.status || o.host_status || h->driver_status) ? SG_INFO_CHECK : SG_INFO_OK;
  return 0;
}

static int sg_io_v4(struct session *s, struct sg_io_v4 *h) {
  if (h->protocol != BSG_PROTOCOL_SCSI || h->subprotocol != BSG_SUB_PROTOCOL_SCSI_CMD) {
    errno = EINVAL; /* task management is not emulated */
    return -1;
  }
  if (h->request_len < 1 || h->request_len > SCSI_CDB_MAX_SIZE || h->request == 0) {
    errno = EINVAL;
    return -1;
  }
  if (h->din_xfer_len > 0 && h->dout_xfer_len > 0) {
    errno = EOPNOTSUPP; /* bidirectional */
    return -1;
  }
  struct request q = {.cdb = (const unsigned char *)(uintptr_t)h->request,
                      .cdb_len = (int)h->request_len};
  uint64_t xferp = 0;
  uint32_t niov = 0;
  if (h->din_xfer_len > 0) {
    q.direction = SCSI_XFER_READ;
    q.length = h->din_xfer_len;
    xferp = h->din_xferp;
    niov = h->din_iovec_count;
  } else if (h->dout_xfer_len > 0) {
    q.direction = SCSI_XFER_WRITE;
    q.length = h->dout_xfer_len;
    xferp = h->dout_xferp;
    niov = h->dout_iovec_count;
  } else {
    q.direction = SCSI_XFER_NONE;
  }
  if (q.length > INT32_MAX || niov > 1024) {
    errno = EINVAL;
    return -1;
  }
  struct scsi_iovec flat = {(void *)(uintptr_t)xferp, q.length};
  if (q.length > 0) {
    if (niov > 0) {
      q.iov = (struct scsi_iovec *)(uintptr_t)xferp;
      q.niov = (int)niov;
    } else {
      q.iov = &flat;
      q.niov = 1;
    }
    if (q.iov == NULL || !iov_total_ok(q.iov, q.niov, q.length)) {
      errno = EFAULT;
      return -1;
    }
  }
  q.timeout_ms = h->timeout ? h->timeout : s->timeout_ms;
  q.sense = (unsigned char *)(uintptr_t)h->response;
  q.max_sense = h->response ? h->max_response_len : 0;

  struct outcome o;
  run(s, &q, &o);
  trace(s, "v4", &q, &o);
  h->device_status = (uint32_t)o.status;
  h->transport_status = (uint32_t)o.host_status;
  h->driver_status = o.sense_len > 0 ? kDriverSense : 0;
  h->response_len = o.sense_len;
  h->din_resid = q.direction == SCSI_XFER_READ ? (int32_t)o.resid : 0;
  h->dout_resid = q.direction == SCSI_XFER_WRITE ? (int32_t)o.resid : 0;
  h->duration = o.duration_ms;
  h->info = (o.status || o.host_status || h->driver_status) ? SG_INFO_CHECK : SG_INFO_OK;
  return 0;
}

static int serve_ioctl(struct session *s, unsigned long request, void *arg) {
  int *iarg = arg;
  if (arg == NULL && request != SG_GET_TIMEOUT) {
    errno = EFAULT;
    return -1;
  }
  switch (request) {
    case SG_IO:
      if (*iarg == 'S') return sg_io_v3(s, arg);
      if (*iarg == 'Q') return sg_io_v4(s, arg);
      errno = ENOSYS;
      return -1;
    case SG_GET_VERSION_NUM:
      *iarg = kSgVersion;
      return 0;
    case SG_GET_TIMEOUT: /* the result is the value, in USER_HZ ticks */
      return (int)(s->timeout_ms / 10);
    case SG_SET_TIMEOUT:
      if (*iarg < 0) {
        errno = EIO;
        return -1;
      }
      s->timeout_ms = (unsigned)*iarg * 10u;
      return 0;
    case SG_GET_RESERVED_SIZE:
      *iarg = s->reserved_size;
      return 0;
    case SG_SET_RESERVED_SIZE:
      if (*iarg < 0) {
        errno = EINVAL;
        return -1;
      }
      s->reserved_size = *iarg;
      return 0;
    case SG_EMULATED_HOST:
      *iarg = 0;
      return 0;
    case SG_GET_SG_TABLESIZE:
      *iarg = 128;
      return 0;
    case SG_GET_SCSI_ID: {
      struct sg_scsi_id *id = arg;
      memset(id, 0, sizeof *id);
      id->lun = s->lun;
      id->scsi_type = s->peripheral_type;
      id->h_cmd_per_lun = 1;
      id->d_queue_depth = 1;
      return 0;
    }
    case SCSI_IOCTL_GET_IDLUN:
      iarg[0] = (s->lun & 0xff) << 8;
      iarg[1] = 0;
      return 0;
    case SCSI_IOCTL_GET_BUS_NUMBER:
      *iarg = 0;
      return 0;
    default:
      errno = ENOTTY;
      return -1;
  }
}

/* ---- the session table -------------------------------------------------- */

static struct session *acquire(int fd) {
  struct session *s = NULL;
  pthread_mutex_lock(&table_lock);
  for (int i = 0; i < kMaxSessions; ++i) {
    if (table[i] != NULL && table[i]->fd == fd) {
      s = table[i];
      ++s->refs;
      break;
    }
  }
  pthread_mutex_unlock(&table_lock);
  return s;
}

/* Drops one reference; the last one logs out (never under table_lock:
 * libiscsi calls close(), which comes back here). */
static void release(struct session *s) {
  pthread_mutex_lock(&table_lock);
  int last = --s->refs == 0;
  pthread_mutex_unlock(&table_lock);
  if (!last) return;
  if (s->ctx != NULL && session_alive(s)) {
    struct pending done = {0};
    if (iscsi_logout_async(s->ctx, on_done, &done) == 0) pump(s->ctx, &done, now_ms() + 2000);
  }
  drop_session(s);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static struct session *detach(int fd) {
  struct session *s = NULL;
  pthread_mutex_lock(&table_lock);
  for (int i = 0; i < kMaxSessions; ++i) {
    if (table[i] != NULL && table[i]->fd == fd) {
      s = table[i];
      table[i] = NULL;
      atomic_fetch_sub(&nsessions, 1);
      break;
    }
  }
  pthread_mutex_unlock(&table_lock);
  return s;
}

/* Logs in for a freshly opened (O_PATH) fd; 0, or -1 with errno set. */
static int attach(int fd, const char *path, const char *url) {
  struct session *s = calloc(1, sizeof *s);
  if (s == NULL) {
    errno = ENOMEM;
    return -1;
  }
  pthread_mutex_init(&s->lock, NULL);
  s->refs = 1;
  s->fd = fd;
  s->timeout_ms = kDefaultTimeoutMs;
  s->reserved_size = 1 << 20;
  s->peripheral_type = 0x1f;
  snprintf(s->path, sizeof s->path, "%s", path);
  snprintf(s->url, sizeof s->url, "%s", url);
  char err[1024] = "";
  struct iscsi_context *tmp = iscsi_create_context(initiator);
  struct iscsi_url *u = tmp ? iscsi_parse_full_url(tmp, url) : NULL;
  if (u == NULL) {
    fprintf(stderr, "sgiscsi: %s: bad URL '%s': %s\n", path, url,
            tmp ? iscsi_get_error(tmp) : "no context");
    if (tmp) iscsi_destroy_context(tmp);
    free(s);
    errno = EINVAL;
    return -1;
  }
  snprintf(s->portal, sizeof s->portal, "%s", u->portal);
  snprintf(s->iqn, sizeof s->iqn, "%s", u->target);
  snprintf(s->user, sizeof s->user, "%s", u->user);
  snprintf(s->password, sizeof s->password, "%s", u->passwd);
  s->lun = u->lun;
  iscsi_destroy_url(u);
  iscsi_destroy_context(tmp);

  struct nosigpipe g;
  block_sigpipe(&g);
  int rc = login(s, err, sizeof err);
  if (rc == 0) {
    /* INQUIRY: the LUN exists (no unit attention is consumed by it). */
    unsigned char inq[36] = {0}, sense[32];
    const unsigned char cdb[6] = {0x12, 0, 0, 0, sizeof inq, 0};
    struct scsi_iovec iov = {inq, sizeof inq};
    struct request q = {.cdb = cdb,
                        .cdb_len = 6,
                        .direction = SCSI_XFER_READ,
                        .length = sizeof inq,
                        .iov = &iov,
                        .niov = 1,
                        .timeout_ms = (unsigned)login_timeout_ms,
                        .sense = sense,
                        .max_sense = sizeof sense};
    struct outcome o;
    run(s, &q, &o);
    if (o.host_status != 0 || o.status != 0 || (inq[0] >> 5) != 0) {
      snprintf(err, sizeof err, "no usable logical unit %d (host %#x status %#x PQ %d)", s->lun,
               o.host_status, o.status, inq[0] >> 5);
      rc = -1;
    } else {
      s->peripheral_type = inq[0] & 0x1f;
    }
  }
  if (rc != 0) {
    fprintf(stderr, "sgiscsi: %s -> %s: %s\n", path, url, err);
    drop_session(s);
    unblock_sigpipe(&g);
    pthread_mutex_destroy(&s->lock);
    free(s);
    errno = ENXIO;
    return -1;
  }
  unblock_sigpipe(&g);

  pthread_mutex_lock(&table_lock);
  int slot = -1;
  for (int i = 0; i < kMaxSessions && slot < 0; ++i) {
    if (table[i] == NULL) slot = i;
  }
  if (slot >= 0) {
    table[slot] = s;
    atomic_fetch_add(&nsessions, 1);
  }
  pthread_mutex_unlock(&table_lock);
  if (slot < 0) {
    release(s);
    errno = EMFILE;
    return -1;
  }
  if (debug) fprintf(stderr, "sgiscsi: fd %d = %s -> %s\n", fd, path, url);
  return 0;
}

static int open_mapped(int dirfd, const char *path, int flags, const char *url) {
  /* O_PATH: the node only has to exist; no driver is opened, no file is
   * created or truncated, and fstat() still shows what it is. */
  int fd = real_openat(dirfd, path, O_PATH | (flags & O_CLOEXEC));
  if (fd < 0) return fd;
  if (attach(fd, path, url) != 0) {
    int e = errno;
    real_close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static mode_t mode_arg(int flags, va_list ap) {
#ifdef __OPEN_NEEDS_MODE
  if (__OPEN_NEEDS_MODE(flags)) return va_arg(ap, mode_t);
#else
  if (flags & O_CREAT) return va_arg(ap, mode_t);
#endif
  return 0;
}

static int do_open(int dirfd, const char *path, int flags, mode_t mode) {
  pthread_once(&init_once, init);
  const char *url = mapped_url(path);
  if (url != NULL) return open_mapped(dirfd, path, flags, url);
  return real_openat(dirfd, path, flags, mode);
}

/* ---- the intercepted calls ---------------------------------------------- */

int open(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return do_open(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return do_open(AT_FDCWD, path, flags | O_LARGEFILE, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return do_open(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return do_open(dirfd, path, flags | O_LARGEFILE, mode);
}

/* _FORTIFY_SOURCE callers (libsgutils2 among them) use these. */
int __open_2(const char *path, int flags) { return do_open(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags) {
  return do_open(AT_FDCWD, path, flags | O_LARGEFILE, 0);
}
int __openat_2(int dirfd, const char *path, int flags) { return do_open(dirfd, path, flags, 0); }
int __openat64_2(int dirfd, const char *path, int flags) {
  return do_open(dirfd, path, flags | O_LARGEFILE, 0);
}

int close(int fd) {
  pthread_once(&init_once, init);
  if (atomic_load(&nsessions) > 0) {
    struct session *s = detach(fd);
    if (s != NULL) {
      struct nosigpipe g;
      block_sigpipe(&g);
      release(s);
      unblock_sigpipe(&g);
    }
  }
  return real_close(fd);
}

int ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  pthread_once(&init_once, init);
  struct session *s = atomic_load(&nsessions) > 0 ? acquire(fd) : NULL;
  if (s == NULL) return real_ioctl(fd, request, arg);
  struct nosigpipe g;
  block_sigpipe(&g);
  pthread_mutex_lock(&s->lock);
  int rc = serve_ioctl(s, request, arg);
  int e = errno;
  pthread_mutex_unlock(&s->lock);
  release(s);
  unblock_sigpipe(&g);
  errno = e;
  return rc;
}
