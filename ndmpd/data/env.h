// From a DMA's DATA_START_BACKUP / DATA_START_RECOVER to a job: the
// environment variables read and checked (ndmp-v4.md "Backup types and
// environment variables"), paths resolved against the exported
// filesystems, and the nlist turned into names relative to the recovery's
// destination.  Pure functions, apart from resolving paths on this host.
//
// Paths a DMA may give (FILESYSTEM, PREFIX, an nlist destination):
//  - an export's name, or a path below it: "/vol0", "/vol0/home";
//  - a path on this host inside an export's directory.
// Symlinks are resolved before the check: a path that leads out of every
// export is refused with the reason, which the data server logs to the
// DMA (LOG_MESSAGE) and replies ILLEGAL_ARGS.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ndmpd/data/engine.h"

namespace ndmpd::data {

struct ExportedFs {
  std::string name;            // "/vol0"
  std::filesystem::path path;  // where it is on this host
};

// The directory on this host `value` names, inside an export; nullopt and
// `why` if none.  With `create`, missing directories below the export are
// made (a recovery's destination).
std::optional<std::filesystem::path> resolve_in_exports(const std::string& value,
                                                        const std::vector<ExportedFs>& exports,
                                                        bool create, std::string& why);

// "y", "yes", "t", "true", "1" / "n", "no", "f", "false", "0", any case.
std::optional<bool> parse_yes_no(const std::string& value);

// The value of `name` (the last one given), if given.
std::optional<std::string> env_value(const Env& env, const std::string& name);

// DATA_START_BACKUP's environment as a job.  Refuses (nullopt, `why`) a
// missing or unexported FILESYSTEM, a LEVEL outside 0-9, values that are
// not what their variable takes.
std::optional<BackupJob> backup_job_from_env(const Env& env, const std::vector<ExportedFs>& exports,
                                             const std::filesystem::path& state_dir,
                                             std::string& why);

// One nlist entry as the DMA sent it.
struct RawName {
  std::string original_path, destination_path;
  std::uint64_t fh_info = kUnknown;
};

// DATA_START_RECOVER's environment and nlist as a job.  The destination is
// PREFIX, else FILESYSTEM, else the export holding the first absolute
// destination path.  Names whose destination lies outside it, or that
// climb with "..", are refused one by one: they land in `refused` with
// the reason and the rest goes on.
std::optional<RecoverJob> recover_job_from_env(
    const Env& env, const std::vector<RawName>& nlist, const std::vector<ExportedFs>& exports,
    bool filehist_only, std::vector<std::pair<std::string, std::string>>& refused,
    std::string& why);

}  // namespace ndmpd::data
