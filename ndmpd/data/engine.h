// The data server's formatter interface: what a butype engine (tar) sees
// of the world while it makes or reads a backup image.
//
// An engine is blocking code that runs on a thread of its own (the data
// server starts one per operation).  It writes the image to a Sink or reads
// it from a Source, and tells the DMA what it did through a Reporter.  The
// data server implements all three on top of the session (the data
// connection, NOTIFY_DATA_READ, FH_* and LOG_* posts); the engine knows
// nothing of NDMP messages, sockets or the strand.  Tests implement them
// over memory.
//
// Thread safety: an engine calls its Sink, Source and Reporter from its own
// thread only; their implementations hand work to the session's strand.
// `Cancel::requested()` may be set by any thread (DATA_ABORT); an engine
// polls it between files and inside long files, and the Sink and Source
// return false / -1 once it is set, so that a blocked engine wakes up.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace ndmpd::data {

// NDMP_INVALID_U_QUAD: "unknown" (fh_info, node).
constexpr std::uint64_t kUnknown = ~0ull;

using Env = std::vector<std::pair<std::string, std::string>>;

class Cancel {
 public:
  void request() { flag_.store(true, std::memory_order_relaxed); }
  bool requested() const { return flag_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> flag_{false};
};

// Where a backup image goes.  Bytes are delivered in order; the offset of
// a byte in the image is the number of bytes written before it.
class Sink {
 public:
  virtual ~Sink() = default;
  // Blocks while the connection is full.  false: the connection is gone or
  // the operation was cancelled; the engine stops (its result says why).
  virtual bool write(std::span<const std::uint8_t> bytes) = 0;
  // The same for a block the engine gives away (no copy where the Sink can
  // keep it).
  virtual bool write_owned(std::vector<std::uint8_t>&& block) { return write(block); }
};

// Where a recovery reads the image from.  The engine asks for a range of
// the image with request(); read() then returns its bytes in order, and 0
// once the range is exhausted (ask again to go on) or the image ended.
// Only one range is outstanding: a new request() first discards what is
// left of the previous one.
class Source {
 public:
  virtual ~Source() = default;
  // Asks for `length` bytes from image offset `offset` (length kUnknown:
  // to the end of the image).  The data server posts NOTIFY_DATA_READ; over
  // LOCAL the mover seeks the tape.  false: cancelled or the connection is
  // gone.
  virtual bool request(std::uint64_t offset, std::uint64_t length) = 0;
  // Up to buffer.size() bytes of the current range; 0: the range or the
  // image ended; -1: cancelled or the connection failed.
  virtual std::ptrdiff_t read(std::span<std::uint8_t> buffer) = 0;
};

// One file's attributes as file history carries them (ndmp4_file_stat).
struct FileStat {
  enum class Type { kDir, kFifo, kChar, kBlock, kReg, kSymlink, kSocket, kOther };
  Type type = Type::kOther;
  std::uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky (07777)
  std::uint32_t uid = 0, gid = 0;
  std::uint64_t size = 0;
  std::int64_t mtime = 0, atime = 0, ctime = 0;  // seconds since the epoch
  std::uint32_t links = 0;
};

// File history, log lines and progress from an engine.
class Reporter {
 public:
  virtual ~Reporter() = default;
  enum class Level { kNormal, kDebug, kError, kWarning };  // NDMP4_LOG_*

  // HIST=F: path-based history.  `path` is absolute from the backup root
  // ("/" is the root itself, "/dir/file" below it).  fh_info = the image
  // offset where the file's headers start.
  virtual void add_file(const std::string& path, const FileStat& stat, std::uint64_t node,
                        std::uint64_t fh_info) = 0;
  // HIST=D: node-based history: one add_dir per directory entry (the root
  // directory names itself "." with parent = its own node), and one
  // add_node per file with its attributes and fh_info.
  virtual void add_dir(const std::string& name, std::uint64_t node, std::uint64_t parent) = 0;
  virtual void add_node(const FileStat& stat, std::uint64_t node, std::uint64_t fh_info) = 0;

  virtual void log(Level level, const std::string& text) = 0;
  // Recovery: the outcome of one nlist entry (LOG_FILE), `name` as the DMA
  // gave it (its original_path).  errno_value 0 = restored.
  virtual void file_result(const std::string& name, int errno_value) = 0;

  // Bytes of the image written or consumed so far, and files handled; the
  // data server reports them in DATA_GET_STATE and progress lines.
  // Called often: must be cheap.
  virtual void progress(std::uint64_t image_bytes, std::uint64_t files) = 0;
};

// What the engine leaves for DATA_GET_ENV, and how it ended.
struct Result {
  bool ok = false;
  bool cancelled = false;  // Cancel was requested
  std::string error;       // why not ok (also logged through the Reporter)
  std::uint64_t image_bytes = 0;
  std::uint64_t files = 0;
  Env env;  // the variables used (backup), as DATA_GET_ENV returns them
};

// The environment a tar backup runs with, parsed and checked by the data
// server (ndmp-v4.md "Backup types and environment variables").
struct BackupJob {
  std::filesystem::path root;  // the directory on this host (inside an export)
  std::string filesystem;      // FILESYSTEM as the DMA gave it
  Env env;                     // everything the DMA sent, for DATA_GET_ENV
  enum class Hist { kNone, kFile, kDir } hist = Hist::kNone;  // HIST=N, F (or Y), D
  unsigned level = 0;                                         // LEVEL 0-9
  bool update = true;                                         // UPDATE=Y
  std::optional<std::string> base_date;                       // BASE_DATE: a DUMP_DATE token
  std::vector<std::string> exclude;                           // EXCLUDE patterns (fnmatch)
  bool recursive = true;            // RECURSIVE=N: the root's own entries only
  std::uint32_t record_size = 0;    // the mover's record size, if known (for env)
  std::filesystem::path state_dir;  // where incremental state lives
};

// One nlist entry of DATA_START_RECOVER, resolved by the data server.
struct RecoverName {
  // The entry as file history named it: "/dir/file" from the backup root
  // ("/" is the root: everything).
  std::string original_path;
  // Where it goes, relative to RecoverJob::destination: "new/name"
  // (renamed), "/" (the destination itself), "" (its own path there).  The
  // data server has checked it has no ".." component.
  std::string destination_path;
  std::uint64_t fh_info = kUnknown;  // the image offset of its headers, if known
};

struct RecoverJob {
  // Everything is restored under this directory (it exists; the data
  // server checked it lies inside an export).  Nothing may be written
  // outside it.
  std::filesystem::path destination;
  Env env;
  // Empty: everything, each entry at its own path under `destination`.
  std::vector<RecoverName> names;
  bool direct = false;  // DIRECT=Y: read only the ranges the names' fh_info point at
  // DATA_START_RECOVER_FILEHIST: read the image and send its file history
  // (hist), write nothing.
  bool filehist_only = false;
  BackupJob::Hist hist = BackupJob::Hist::kFile;
};

}  // namespace ndmpd::data
