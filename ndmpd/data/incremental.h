// Incremental backup state of the tar butype: the dump dates of each
// FILESYSTEM (which backups of which level succeeded, and when), and for
// each of them a snapshot of the directories it saw, so that a later
// incremental finds what changed, what was renamed and what is new.
//
// DUMP_DATE token: "<level>.<start>", where <start> is the backup's start
// time in nanoseconds since the epoch (CLOCK_REALTIME_COARSE, the clock the
// kernel stamps mtime and ctime with, so that a change made after the start
// never carries an earlier time), e.g. "1.1763800000123456789".  A token is
// unique per FILESYSTEM: a backup starting in the same clock tick as the
// last recorded one takes the next nanosecond.  A DMA treats it as opaque
// and hands it back as BASE_DATE.
//
// On disk: <state_dir>/dumpdates/<escaped FILESYSTEM>, one text file per
// FILESYSTEM, replaced atomically (temporary file, fsync, rename, fsync of
// the directory) under an flock of "<file>.lock", so that it survives
// crashes and restarts and two backups of one FILESYSTEM do not lose each
// other's record.  Its format (every string field is escaped: "=" then the
// bytes with '%', controls, space, DEL and non-ASCII as %XX):
//
//   ndmpd-dumpdates 1
//   filesystem =<FILESYSTEM>
//   record <level> <start ns> =<token> <number of dir lines>
//   dir <dev> <ino> =<path relative to the root, "." for the root>
//   ...
//   checksum <FNV-1a 64 of every byte above, 16 hex digits>
//
// Anything else (truncation, a bad count, a wrong checksum) makes load()
// fail: a damaged history is an error, never "no history", because that
// would silently turn the next incremental into a different backup.
//
// Like dumpdates(5): at most one record per level; recording level N drops
// the records of levels >= N.  A BASE_DATE backup is recorded one level
// above its base (at most 9), so that a chain of BASE_DATE backups keeps
// every token it still needs.
//
// Thread safety: a DumpDates object is used by one thread; different
// objects (even of one FILESYSTEM, in different threads or processes) may
// commit concurrently.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ndmpd::data {

// A directory as a backup saw it: its identity and where it was.
struct SnapshotDir {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::string path;  // entry name in the image: "." for the root, "a/b" below it
};

// One successful backup of a FILESYSTEM.
struct DumpRecord {
  unsigned level = 0;
  std::int64_t start_ns = 0;  // files changed at or after this time are in later incrementals
  std::string token;          // its DUMP_DATE
  std::vector<SnapshotDir> dirs;
};

// "<level>.<start_ns>".
std::string make_dump_date(unsigned level, std::int64_t start_ns);

// The time to stamp a backup's start with (see the token above).
std::int64_t dump_clock_now_ns();

class DumpDates {
 public:
  // No I/O: load() reads.
  DumpDates(std::filesystem::path state_dir, std::string filesystem);

  // Reads the FILESYSTEM's history; a missing file is an empty history.
  // false with `error` (naming the file) when it cannot be read or is
  // damaged.
  bool load(std::string& error);

  const std::vector<DumpRecord>& records() const { return records_; }
  // The most recent record of a level below `level` (nullptr: none).
  const DumpRecord* base_for_level(unsigned level) const;
  const DumpRecord* find(std::string_view token) const;
  // A start time for a new backup: `now_ns`, or just after the latest
  // recorded start when the clock has not moved past it.
  std::int64_t unique_start(std::int64_t now_ns) const;

  // Under the lock: re-reads the file (another backup may have committed),
  // drops records of levels >= record.level, adds `record`, writes the
  // file atomically.  false with `error` when any of that fails (a damaged
  // file included); the file is then unchanged.
  bool commit(DumpRecord record, std::string& error);

  // The file this FILESYSTEM's history lives in.
  std::filesystem::path file() const;

 private:
  bool read_file(std::vector<DumpRecord>& out, std::string& error) const;

  std::filesystem::path state_dir_;
  std::string filesystem_;
  std::vector<DumpRecord> records_;
};

// What an incremental compares against, from LEVEL / BASE_DATE and the
// history.
class IncrementalBase {
 public:
  // LEVEL 0 and no BASE_DATE: a full backup.  LEVEL N > 0: since the
  // latest record of a lower level (none: a full backup, `warning` says
  // so).  BASE_DATE: since the record it names; nullopt with `error` when
  // the history has no such token.
  static std::optional<IncrementalBase> plan(const DumpDates& dates, unsigned level,
                                             const std::optional<std::string>& base_date,
                                             std::string& warning, std::string& error);

  // LEVEL > 0 or BASE_DATE: directories carry "ndmpd.dirents".
  bool incremental() const { return incremental_; }
  // The level this backup is recorded at.
  unsigned level() const { return level_; }
  // The base's token ("" for a full backup).
  const std::string& base_token() const { return base_token_; }

  // Whether a non-directory with these times must be in the image.
  bool changed(const struct timespec& mtime, const struct timespec& ctime) const;
  // Whether a directory is new at `path` since the base (created there or
  // renamed / moved there): then its whole subtree is in the image.
  bool new_directory(std::uint64_t dev, std::uint64_t ino, const std::string& path) const;

 private:
  struct Key {
    std::uint64_t dev, ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      return std::hash<std::uint64_t>()(k.ino * 0x9E3779B97F4A7C15ull ^ k.dev);
    }
  };

  bool incremental_ = false;
  bool full_ = true;  // no base: everything is changed
  unsigned level_ = 0;
  std::int64_t since_ns_ = 0;
  std::string base_token_;
  std::unordered_map<Key, std::string, KeyHash> base_dirs_;
};

}  // namespace ndmpd::data
