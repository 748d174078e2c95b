#include "ndmpd/data/env.h"

#include <algorithm>
#include <cctype>
#include <system_error>

namespace ndmpd::data {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// `p` is `base` or below it (both normal, absolute).
bool within(const fs::path& p, const fs::path& base) {
  auto b = base.begin(), e = base.end();
  auto i = p.begin();
  for (; b != e; ++b, ++i) {
    if (b->empty()) continue;  // a trailing separator
    if (i == p.end() || *i != *b) return false;
  }
  return true;
}

bool has_dotdot(const fs::path& p) {
  return std::any_of(p.begin(), p.end(), [](const fs::path& c) { return c == ".."; });
}

// The path with its symlinks resolved as far as it exists, the rest
// appended lexically.
fs::path resolved(const fs::path& p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(p, ec);
  return ec ? p.lexically_normal() : r;
}

std::string names_of(const std::vector<ExportedFs>& exports) {
  std::string s;
  for (const ExportedFs& e : exports) s += (s.empty() ? "" : ", ") + e.name;
  return s.empty() ? "none" : s;
}

}  // namespace

std::optional<bool> parse_yes_no(const std::string& value) {
  const std::string v = lower(value);
  if (v == "y" || v == "yes" || v == "t" || v == "true" || v == "1") return true;
  if (v == "n" || v == "no" || v == "f" || v == "false" || v == "0") return false;
  return std::nullopt;
}

std::optional<std::string> env_value(const Env& env, const std::string& name) {
  std::optional<std::string> v;
  for (const auto& [k, val] : env) {
    if (k == name) v = val;
  }
  return v;
}

std::optional<fs::path> resolve_in_exports(const std::string& value,
                                           const std::vector<ExportedFs>& exports, bool create,
                                           std::string& why) {
  if (value.empty() || value[0] != '/') {
    why = "'" + value + "' is not an absolute path";
    return std::nullopt;
  }
  const fs::path asked = fs::path(value).lexically_normal();
  if (has_dotdot(asked)) {
    why = "'" + value + "' climbs with '..'";
    return std::nullopt;
  }
  // An export's name (or below it) first, then a host path.
  std::optional<fs::path> candidate;
  for (const ExportedFs& e : exports) {
    const fs::path name = fs::path(e.name).lexically_normal();
    if (within(asked, name)) {
      candidate = e.path / asked.lexically_relative(name);
      break;
    }
  }
  if (!candidate) candidate = asked;
  const fs::path real = resolved(*candidate);
  for (const ExportedFs& e : exports) {
    const fs::path base = resolved(e.path);
    if (!within(real, base)) continue;
    std::error_code ec;
    if (create && !fs::exists(real, ec)) {
      fs::create_directories(real, ec);
      if (ec) {
        why = "cannot create " + real.string() + ": " + ec.message();
        return std::nullopt;
      }
      // A symlink planted while creating would show here.
      if (!within(resolved(real), base)) {
        why = "'" + value + "' leads out of " + e.name;
        return std::nullopt;
      }
    }
    if (!fs::is_directory(real, ec)) {
      why = "'" + value + "' (" + real.string() + ") is not a directory";
      return std::nullopt;
    }
    return real;
  }
  why = "'" + value + "' is not inside an exported filesystem (exports: " + names_of(exports) + ")";
  return std::nullopt;
}

std::optional<BackupJob> backup_job_from_env(const Env& env, const std::vector<ExportedFs>& exports,
                                             const fs::path& state_dir, std::string& why) {
  BackupJob job;
  job.env = env;
  job.state_dir = state_dir;
  const std::optional<std::string> filesystem = env_value(env, "FILESYSTEM");
  if (!filesystem) {
    why = "FILESYSTEM is missing: name the directory to back up";
    return std::nullopt;
  }
  std::string where;
  std::optional<fs::path> root = resolve_in_exports(*filesystem, exports, false, where);
  if (!root) {
    why = "FILESYSTEM " + where;
    return std::nullopt;
  }
  job.root = *root;
  job.filesystem = *filesystem;
  for (const auto& [k, v] : env) {
    if (k == "HIST") {
      const std::string h = lower(v);
      if (h == "f") {
        job.hist = BackupJob::Hist::kFile;
      } else if (h == "d") {
        job.hist = BackupJob::Hist::kDir;
      } else if (auto b = parse_yes_no(v)) {
        job.hist = *b ? BackupJob::Hist::kFile : BackupJob::Hist::kNone;
      } else {
        why = "HIST=" + v + ": use Y, N, F (path-based) or D (node-based)";
        return std::nullopt;
      }
    } else if (k == "LEVEL") {
      if (v.size() != 1 || v[0] < '0' || v[0] > '9') {
        why = "LEVEL=" + v + ": use 0 to 9";
        return std::nullopt;
      }
      job.level = static_cast<unsigned>(v[0] - '0');
    } else if (k == "UPDATE" || k == "RECURSIVE") {
      const std::optional<bool> b = parse_yes_no(v);
      if (!b) {
        why = k + "=" + v + ": use Y or N";
        return std::nullopt;
      }
      (k == "UPDATE" ? job.update : job.recursive) = *b;
    } else if (k == "BASE_DATE") {
      if (!v.empty()) job.base_date = v;
    } else if (k == "EXCLUDE") {
      // Comma-separated; ndmjob sends one variable per pattern.
      std::size_t at = 0;
      while (at <= v.size()) {
        const std::size_t comma = std::min(v.find(',', at), v.size());
        if (comma > at) job.exclude.push_back(v.substr(at, comma - at));
        at = comma + 1;
      }
    } else if (k == "TYPE") {
      if (lower(v) != "tar") {
        why = "TYPE=" + v + ": this backup type is tar";
        return std::nullopt;
      }
    }
  }
  return job;
}

std::optional<RecoverJob> recover_job_from_env(
    const Env& env, const std::vector<RawName>& nlist, const std::vector<ExportedFs>& exports,
    bool filehist_only, std::vector<std::pair<std::string, std::string>>& refused,
    std::string& why) {
  RecoverJob job;
  job.env = env;
  job.filehist_only = filehist_only;
  if (auto d = env_value(env, "DIRECT")) {
    const std::optional<bool> b = parse_yes_no(*d);
    if (!b) {
      why = "DIRECT=" + *d + ": use Y or N";
      return std::nullopt;
    }
    job.direct = *b;
  }
  if (auto h = env_value(env, "HIST")) {
    const std::string v = lower(*h);
    job.hist = v == "d"                                         ? BackupJob::Hist::kDir
               : (v == "f" || parse_yes_no(*h).value_or(false)) ? BackupJob::Hist::kFile
                                                                : BackupJob::Hist::kNone;
  }
  if (filehist_only) {
    if (job.hist == BackupJob::Hist::kNone) job.hist = BackupJob::Hist::kFile;
    return job;
  }
  std::optional<std::string> where = env_value(env, "PREFIX");
  if (!where || where->empty()) where = env_value(env, "FILESYSTEM");
  if (!where || where->empty()) {
    for (const RawName& n : nlist) {
      if (!n.destination_path.empty() && n.destination_path[0] == '/') {
        for (const ExportedFs& e : exports) {
          std::string ignored;
          auto p = resolve_in_exports(e.name, exports, false, ignored);
          if (p && within(resolved(n.destination_path), *p)) {
            where = e.name;
            break;
          }
        }
        break;
      }
    }
  }
  if (!where || where->empty()) {
    why = "no destination: give PREFIX (or FILESYSTEM)";
    return std::nullopt;
  }
  std::string reason;
  std::optional<fs::path> dest = resolve_in_exports(*where, exports, true, reason);
  if (!dest) {
    why = "destination " + reason;
    return std::nullopt;
  }
  job.destination = *dest;
  // The destination as the DMA wrote it, and as resolved: absolute
  // destination paths may use either.
  const fs::path asked = fs::path(*where).lexically_normal();
  for (const RawName& raw : nlist) {
    RecoverName n;
    n.fh_info = raw.fh_info;
    fs::path orig = fs::path("/" + raw.original_path).lexically_normal();
    std::string o = orig.string();
    while (o.size() > 1 && o.back() == '/') o.pop_back();
    n.original_path = o;
    if (has_dotdot(orig)) {
      refused.emplace_back(raw.original_path, "the name climbs with '..'");
      continue;
    }
    fs::path d;
    if (raw.destination_path.empty()) {
      d = fs::path(o).relative_path();
    } else if (raw.destination_path[0] == '/') {
      const fs::path abs = fs::path(raw.destination_path).lexically_normal();
      if (within(abs, asked)) {
        d = abs.lexically_relative(asked);
      } else if (within(resolved(abs), job.destination)) {
        d = resolved(abs).lexically_relative(job.destination);
      } else {
        refused.emplace_back(raw.original_path, "destination " + raw.destination_path +
                                                    " is outside " + job.destination.string());
        continue;
      }
    } else {
      d = fs::path(raw.destination_path).lexically_normal();
    }
    if (has_dotdot(d)) {
      refused.emplace_back(raw.original_path, "the destination climbs with '..'");
      continue;
    }
    n.destination_path = d == "." || d.empty() ? "/" : d.string();
    job.names.push_back(std::move(n));
  }
  // One "/" restoring to the destination itself is everything.
  if (job.names.size() == 1 && job.names[0].original_path == "/" &&
      job.names[0].destination_path == "/") {
    job.names.clear();
  }
  return job;
}

}  // namespace ndmpd::data
