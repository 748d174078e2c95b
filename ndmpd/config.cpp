#include "ndmpd/config.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "mover/address_policy.h"

namespace ndmpd {

std::string_view to_string(AuthMethod m) {
  switch (m) {
    case AuthMethod::kNone:
      return "none";
    case AuthMethod::kText:
      return "text";
    case AuthMethod::kMd5:
      return "md5";
  }
  return "?";
}

bool Config::allows(AuthMethod m) const {
  return std::find(auth_methods.begin(), auth_methods.end(), m) != auth_methods.end();
}

bool parse_listen_address(const std::string& text, std::string& host, std::uint16_t& port) {
  std::string h, p;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
    if (h.empty()) return false;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string::npos) return false;  // bare IPv6 needs []
    if (h.empty()) h = "0.0.0.0";
  }
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || ptr != p.data() + p.size() || p.empty() || value > 65535) {
    return false;
  }
  host = h;
  port = static_cast<std::uint16_t>(value);
  return true;
}

namespace {

// Walks one TOML table, remembering which keys were read so that unknown
// keys (typos) are reported with their line.
class Section {
 public:
  Section(const toml::table& table, std::string prefix, const std::string& file)
      : table_(table), prefix_(std::move(prefix)), file_(file) {}

  std::string where(const toml::node* node, std::string_view key) const {
    std::ostringstream os;
    os << file_;
    if (node != nullptr && node->source().begin.line != 0) {
      os << ':' << node->source().begin.line;
    } else if (table_.source().begin.line != 0) {
      os << ':' << table_.source().begin.line;
    }
    os << ": " << prefix_ << key;
    return os.str();
  }

  bool fail(const toml::node* node, std::string_view key, std::string_view what) {
    if (error_.empty()) error_ = where(node, key) + ": " + std::string(what);
    return false;
  }

  const toml::node* get(std::string_view key) {
    seen_.insert(std::string(key));
    return table_.get(key);
  }

  bool string(std::string_view key, std::string& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return true;
    if (!n->is_string()) return fail(n, key, "must be a string");
    out = n->value<std::string>().value_or("");
    return true;
  }

  bool boolean(std::string_view key, bool& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return true;
    if (!n->is_boolean()) return fail(n, key, "must be true or false");
    out = n->value<bool>().value_or(false);
    return true;
  }

  template <class T>
  bool integer(std::string_view key, T& out, std::int64_t lo, std::int64_t hi) {
    const toml::node* n = get(key);
    if (n == nullptr) return true;
    if (!n->is_integer()) return fail(n, key, "must be an integer");
    const std::int64_t v = n->value<std::int64_t>().value_or(0);
    if (v < lo || v > hi) {
      return fail(n, key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    out = static_cast<T>(v);
    return true;
  }

  bool strings(std::string_view key, std::vector<std::string>& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return true;
    const toml::array* a = n->as_array();
    if (a == nullptr) return fail(n, key, "must be an array of strings");
    std::vector<std::string> v;
    for (const toml::node& e : *a) {
      if (!e.is_string()) return fail(&e, key, "must be an array of strings");
      v.push_back(e.value<std::string>().value_or(""));
    }
    out = std::move(v);
    return true;
  }

  // Reports the first key that nobody asked for.
  bool no_unknown_keys() {
    for (const auto& [k, v] : table_) {
      if (!seen_.count(std::string(k.str()))) {
        return fail(&v, k.str(), "unknown key");
      }
    }
    return error_.empty();
  }

  const std::string& error() const { return error_; }
  const std::string& prefix() const { return prefix_; }

 private:
  const toml::table& table_;
  std::string prefix_;
  const std::string& file_;
  std::set<std::string> seen_;
  std::string error_;
};

bool read_credential(const toml::table& t, const std::string& prefix, const std::string& file,
                     Credential& c, std::string& error) {
  Section s(t, prefix, file);
  std::string password, password_file;
  bool ok = s.string("name", c.name) && s.string("password", password) &&
            s.string("password_file", password_file) && s.boolean("generate", c.generate) &&
            s.no_unknown_keys();
  if (ok && c.name.empty()) ok = s.fail(nullptr, "name", "is required");
  if (ok && c.name.find(',') != std::string::npos) {
    ok = s.fail(t.get("name"), "name", "must not contain ','");
  }
  if (ok && password.empty() == password_file.empty()) {
    ok = s.fail(nullptr, "password", "give exactly one of password and password_file");
  }
  if (ok && c.generate && password_file.empty()) {
    ok = s.fail(t.get("generate"), "generate", "needs password_file");
  }
  if (!ok) {
    error = s.error();
    return false;
  }
  if (!password.empty()) c.password = password;
  if (!password_file.empty()) c.file = password_file;
  const auto line = t.source().begin.line;
  c.origin = file + (line ? ":" + std::to_string(line) : std::string());
  return true;
}

std::optional<AuthMethod> parse_method(const std::string& s) {
  if (s == "none") return AuthMethod::kNone;
  if (s == "text") return AuthMethod::kText;
  if (s == "md5") return AuthMethod::kMd5;
  return std::nullopt;
}

bool fill(const toml::table& root, const std::string& file, Config& c, std::string& error) {
  Section top(root, "", file);
  auto table = [&](std::string_view key) -> const toml::table* {
    const toml::node* n = top.get(key);
    if (n == nullptr) return nullptr;
    if (!n->is_table()) {
      top.fail(n, key, "must be a table");
      return nullptr;
    }
    return n->as_table();
  };
  auto done = [&](Section& s) {
    if (!s.no_unknown_keys()) {
      error = s.error();
      return false;
    }
    return true;
  };

  if (const toml::table* t = table("server")) {
    Section s(*t, "server.", file);
    std::string state_dir;
    s.strings("listen", c.listen) && s.string("state_dir", state_dir) &&
        s.string("hostname", c.hostname) && s.string("vendor", c.vendor) &&
        s.string("product", c.product) && s.string("revision", c.revision) &&
        s.integer("io_threads", c.io_threads, 0, 256) &&
        s.integer("worker_threads", c.worker_threads, 0, 1024);
    for (const std::string& a : c.listen) {
      std::string h;
      std::uint16_t p = 0;
      if (!parse_listen_address(a, h, p)) {
        s.fail(t->get("listen"), "listen", "'" + a + "' is not HOST:PORT or [V6]:PORT");
        break;
      }
    }
    if (!state_dir.empty()) c.state_dir = state_dir;
    if (!done(s)) return false;
  }
  if (const toml::table* t = table("limits")) {
    Section s(*t, "limits.", file);
    std::int64_t login = c.login_timeout.count(), idle = c.idle_timeout.count(),
                 grace = c.shutdown_grace.count();
    s.integer("max_sessions", c.max_sessions, 1, 100000) &&
        s.integer("max_message_bytes", c.max_message_bytes, 65536, 1 << 30) &&
        s.integer("login_timeout", login, 1, 86400) &&
        s.integer("idle_timeout", idle, 1, 30 * 86400) &&
        s.integer("shutdown_grace", grace, 0, 3600);
    c.login_timeout = std::chrono::seconds(login);
    c.idle_timeout = std::chrono::seconds(idle);
    c.shutdown_grace = std::chrono::seconds(grace);
    if (!done(s)) return false;
  }
  if (const toml::table* t = table("data_connections")) {
    Section s(*t, "data_connections.", file);
    std::size_t buffer_kib = c.data_socket_buffer_bytes >> 10;
    std::int64_t timeout = c.data_connect_timeout.count();
    s.strings("allow", c.data_allow) && s.strings("listen_addresses", c.data_listen_addresses) &&
        s.integer("port_low", c.data_port_low, 0, 65535) &&
        s.integer("port_high", c.data_port_high, 0, 65535) &&
        s.integer("socket_buffer_kib", buffer_kib, 0, 1 << 20) &&
        s.integer("connect_timeout", timeout, 1, 3600);
    c.data_socket_buffer_bytes = buffer_kib << 10;
    c.data_connect_timeout = std::chrono::seconds(timeout);
    if (s.error().empty() && (c.data_port_low == 0) != (c.data_port_high == 0)) {
      s.fail(t->get("port_low"), "port_low", "give both port_low and port_high, or neither");
    } else if (s.error().empty() && c.data_port_high < c.data_port_low) {
      s.fail(t->get("port_high"), "port_high", "must not be below port_low");
    }
    std::string policy_error;
    if (s.error().empty() &&
        !mover::AddressPolicy::make(c.data_allow, c.data_listen_addresses, {}, {}, policy_error)) {
      s.fail(t->get(policy_error.rfind("not a network", 0) == 0 ? "allow" : "listen_addresses"),
             policy_error.rfind("not a network", 0) == 0 ? "allow" : "listen_addresses",
             policy_error);
    }
    if (!done(s)) return false;
  }
  if (const toml::table* t = table("mover")) {
    Section s(*t, "mover.", file);
    std::size_t record_kib = c.mover_max_record_bytes >> 10,
                buffer_mib = c.mover_buffer_bytes >> 20;
    s.integer("max_record_size_kib", record_kib, 1, 16384) &&
        s.integer("buffer_mib", buffer_mib, 1, 4096);
    c.mover_max_record_bytes = static_cast<std::uint32_t>(record_kib << 10);
    c.mover_buffer_bytes = buffer_mib << 20;
    if (!done(s)) return false;
  }
  if (const toml::table* t = table("data")) {
    Section s(*t, "data.", file);
    std::int64_t interval = c.data_progress_interval.count();
    s.integer("progress_interval", interval, 1, 86400);
    c.data_progress_interval = std::chrono::seconds(interval);
    if (!done(s)) return false;
  }
  if (const toml::table* t = table("auth")) {
    Section s(*t, "auth.", file);
    std::vector<std::string> methods;
    std::int64_t delay = c.auth_failure_delay.count();
    s.strings("methods", methods) && s.integer("failure_delay_ms", delay, 0, 60000) &&
        s.integer("max_failures", c.auth_max_failures, 1, 1000);
    if (t->get("methods") != nullptr && s.error().empty()) {
      c.auth_methods.clear();
      for (const std::string& m : methods) {
        const auto parsed = parse_method(m);
        if (!parsed) {
          s.fail(t->get("methods"), "methods", "'" + m + "' is not one of none, text, md5");
          break;
        }
        if (!c.allows(*parsed)) c.auth_methods.push_back(*parsed);
      }
      if (c.auth_methods.empty() && s.error().empty()) {
        s.fail(t->get("methods"), "methods", "must name at least one method");
      }
    }
    c.auth_failure_delay = std::chrono::milliseconds(delay);
    if (!done(s)) return false;
  }
  if (const toml::node* n = top.get("users")) {
    const toml::array* a = n->as_array();
    if (a == nullptr || !a->is_array_of_tables()) {
      error = top.where(n, "users") + ": must be an array of tables ([[users]])";
      return false;
    }
    std::size_t i = 0;
    for (const toml::node& e : *a) {
      Credential cred;
      if (!read_credential(*e.as_table(), "users[" + std::to_string(i++) + "].", file, cred,
                           error)) {
        return false;
      }
      for (const Credential& other : c.users) {
        if (other.name == cred.name) {
          error = top.where(&e, "users") + ": user '" + cred.name + "' is defined twice";
          return false;
        }
      }
      c.users.push_back(std::move(cred));
    }
  }
  if (const toml::table* t = table("server_identity")) {
    Credential cred;
    if (!read_credential(*t, "server_identity.", file, cred, error)) return false;
    c.server_identity = std::move(cred);
  }
  if (const toml::table* t = table("exports")) {
    for (const auto& [k, v] : *t) {
      const std::string name(k.str());
      if (!v.is_string() || v.value<std::string>().value_or("").empty()) {
        error = Section(*t, "exports.", file).where(&v, name) + ": must be a non-empty path";
        return false;
      }
      if (name.empty() || name.front() != '/') {
        error = Section(*t, "exports.", file).where(&v, name) +
                ": an export's name must start with '/'";
        return false;
      }
      const auto line = v.source().begin.line;
      c.exports.push_back({name, *v.value<std::string>(),
                           file + (line ? ":" + std::to_string(line) : std::string())});
    }
  }
  // [libraries.NAME]: virtual tape libraries.
  if (const toml::table* t = table("libraries")) {
    for (const auto& [k, v] : *t) {
      const std::string name(k.str());
      const std::string prefix = "libraries." + name + ".";
      if (!v.is_table()) {
        error = Section(*t, "libraries.", file).where(&v, name) + ": must be a table";
        return false;
      }
      Section s(*v.as_table(), prefix, file);
      scsi::emu::LibrarySpec lib;
      lib.name = name;
      std::string dir = "library/" + name, barcode_prefix = "NDMP", barcode_suffix = "L6";
      unsigned cartridges = 0;
      std::uint64_t capacity_mb = 2048, early_warning_mb = 32;
      std::vector<std::string> protect;
      s.string("dir", dir) && s.integer("drives", lib.drives, 1, 64) &&
          s.integer("slots", lib.slots, 1, 4096) &&
          s.integer("import_export", lib.import_export, 0, 16) &&
          s.integer("cartridges", cartridges, 0, 4096) &&
          s.string("barcode_prefix", barcode_prefix) &&
          s.string("barcode_suffix", barcode_suffix) &&
          s.integer("cartridge_capacity_mb", capacity_mb, 1, std::int64_t{1} << 24) &&
          s.integer("early_warning_mb", early_warning_mb, 0, std::int64_t{1} << 24) &&
          s.boolean("verify_reads", lib.verify_reads) && s.strings("write_protected", protect);
      if (s.error().empty() && early_warning_mb >= capacity_mb) {
        s.fail(v.as_table()->get("early_warning_mb"), "early_warning_mb",
               "must be less than cartridge_capacity_mb");
      }
      if (s.error().empty() && cartridges > lib.slots) {
        s.fail(v.as_table()->get("cartridges"), "cartridges", "more cartridges than slots");
      }
      if (!done(s)) return false;
      lib.dir = dir;
      for (unsigned i = 1; i <= cartridges; ++i) {
        char number[8];
        std::snprintf(number, sizeof number, "%03u", i);
        scsi::emu::CartridgeSpec cart;
        cart.barcode = barcode_prefix + number + barcode_suffix;
        cart.capacity = capacity_mb << 20;
        // Early warning comes `early_warning_mb` before the end.
        cart.early_warning = (capacity_mb - early_warning_mb) << 20;
        cart.write_protected =
            std::find(protect.begin(), protect.end(), cart.barcode) != protect.end();
        lib.cartridges.push_back(std::move(cart));
      }
      c.devices.libraries.push_back(std::move(lib));
    }
  }
  // [disks.NAME]: disk LUNs of the virtual SAN.
  if (const toml::table* t = table("disks")) {
    for (const auto& [k, v] : *t) {
      const std::string name(k.str());
      if (!v.is_table()) {
        error = Section(*t, "disks.", file).where(&v, name) + ": must be a table";
        return false;
      }
      Section s(*v.as_table(), "disks." + name + ".", file);
      tape::DiskSpec d;
      d.name = name;
      std::string path = "san/" + name + ".img";
      std::uint64_t size_mb = 1024;
      s.string("path", path) && s.integer("size_mb", size_mb, 1, std::int64_t{1} << 30) &&
          s.integer("block_size", d.block_length, 512, 4096);
      if (s.error().empty() && d.block_length != 512 && d.block_length != 4096) {
        s.fail(v.as_table()->get("block_size"), "block_size", "must be 512 or 4096");
      }
      if (!done(s)) return false;
      d.path = path;
      d.size = size_mb << 20;
      c.devices.disks.push_back(std::move(d));
    }
  }
  // [copy_managers.NAME]: emulated copy managers over the registry's disks
  // and tapes.
  if (const toml::table* t = table("copy_managers")) {
    for (const auto& [k, v] : *t) {
      const std::string name(k.str());
      if (!v.is_table()) {
        error = Section(*t, "copy_managers.", file).where(&v, name) + ": must be a table";
        return false;
      }
      Section s(*v.as_table(), "copy_managers." + name + ".", file);
      tape::CopyManagerSpec m;
      m.name = name;
      scsi::xcopy::EngineSettings& e = m.settings;
      std::uint64_t buffer_mib = e.buffer_bytes >> 20, chunk_kib = e.chunk_bytes >> 10,
                    segment_mib = e.max_segment_length >> 20,
                    list_kib = e.limits.max_descriptor_list_length >> 10,
                    stream_mib = e.max_stream_transfer >> 20;
      std::int64_t timeout =
          std::chrono::duration_cast<std::chrono::seconds>(e.command_timeout).count();
      s.integer("max_concurrent_copies", e.max_concurrent_copies, 1, 255) &&
          s.integer("buffer_mib", buffer_mib, 1, 1024) &&
          s.integer("chunk_kib", chunk_kib, 4, 16384) &&
          s.integer("max_segment_mib", segment_mib, 0, 4095) &&
          s.integer("max_segments", e.limits.max_segments, 1, 65535) &&
          s.integer("max_targets", e.limits.max_targets, 2, 2048) &&
          s.integer("max_list_kib", list_kib, 1, 1024) &&
          s.integer("max_stream_transfer_mib", stream_mib, 1, 16) &&
          s.integer("device_timeout", timeout, 1, 3600);
      if (s.error().empty() && (chunk_kib << 10) > (buffer_mib << 20)) {
        s.fail(v.as_table()->get("chunk_kib"), "chunk_kib", "must not exceed buffer_mib");
      }
      if (!done(s)) return false;
      e.buffer_bytes = buffer_mib << 20;
      e.chunk_bytes = static_cast<std::uint32_t>(chunk_kib << 10);
      e.max_segment_length = static_cast<std::uint32_t>(segment_mib << 20);
      e.limits.max_descriptor_list_length = static_cast<std::uint32_t>(list_kib << 10);
      e.max_stream_transfer = static_cast<std::uint32_t>(stream_mib << 20);
      e.command_timeout = std::chrono::seconds(timeout);
      c.devices.copy_managers.push_back(std::move(m));
    }
  }
  // [devices.NAME]: real devices (iSCSI LUNs, SCSI generic nodes).
  if (const toml::table* t = table("devices")) {
    for (const auto& [k, v] : *t) {
      const std::string name(k.str());
      if (!v.is_table()) {
        error = Section(*t, "devices.", file).where(&v, name) + ": must be a table";
        return false;
      }
      Section s(*v.as_table(), "devices." + name + ".", file);
      tape::ExternalSpec x;
      x.name = name;
      std::string kind = "tape", url, path;
      s.string("kind", kind) && s.string("url", url) && s.string("path", path);
      if (s.error().empty()) {
        if (kind == "tape") {
          x.kind = tape::DeviceKind::kTape;
        } else if (kind == "changer") {
          x.kind = tape::DeviceKind::kChanger;
        } else if (kind == "disk") {
          x.kind = tape::DeviceKind::kDisk;
        } else if (kind == "copy_manager") {
          x.kind = tape::DeviceKind::kCopyManager;
        } else if (kind == "other") {
          x.kind = tape::DeviceKind::kOther;
        } else {
          s.fail(v.as_table()->get("kind"), "kind",
                 "must be tape, changer, disk or other (or copy_manager)");
        }
      }
      if (s.error().empty() && url.empty() == path.empty()) {
        s.fail(v.as_table(), "url", "give exactly one of url (iscsi://) and path (/dev/sg*)");
      }
      if (s.error().empty() && !url.empty() && url.rfind("iscsi://", 0) != 0) {
        s.fail(v.as_table()->get("url"), "url", "must start with iscsi://");
      }
      if (s.error().empty() && !path.empty() && path.rfind("/dev/", 0) != 0) {
        s.fail(v.as_table()->get("path"), "path", "must be a /dev/ path");
      }
      if (!done(s)) return false;
      x.address = url.empty() ? path : url;
      const auto line = v.source().begin.line;
      x.origin = file + (line ? ":" + std::to_string(line) : std::string());
      c.devices.devices.push_back(std::move(x));
    }
  }
  if (const toml::table* t = table("log")) {
    Section s(*t, "log.", file);
    s.string("level", c.log_level);
    if (s.error().empty() && spdlog::level::from_str(c.log_level) == spdlog::level::off &&
        c.log_level != "off") {
      s.fail(t->get("level"), "level", "must be trace, debug, info, warn, error, critical or off");
    }
    if (!done(s)) return false;
  }
  if (!top.error().empty() || !top.no_unknown_keys()) {
    error = top.error();
    return false;
  }
  return true;
}

}  // namespace

std::optional<Config> load_config(const std::filesystem::path& file, ConfigError& error) {
  Config c;
  c.source = file;
  toml::table root;
  try {
    root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << file.string();
    if (e.source().begin.line != 0) os << ':' << e.source().begin.line;
    os << ": " << e.description();
    error.message = os.str();
    return std::nullopt;
  }
  std::string message;
  if (!fill(root, file.string(), c, message)) {
    error.message = message;
    return std::nullopt;
  }
  return c;
}

namespace {

std::filesystem::path in_state_dir(const Config& c, const std::filesystem::path& p) {
  return p.is_absolute() ? p : c.state_dir / p;
}

// 18 random bytes as 24 characters of base64url: no ',' (which ndmjob's
// agent syntax cannot carry) and well under MD5 auth's 32-byte limit.
bool generate_password(std::string& out) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char raw[18];
  if (RAND_bytes(raw, sizeof raw) != 1) return false;
  out.clear();
  for (std::size_t i = 0; i < sizeof raw; i += 3) {
    const std::uint32_t v = (raw[i] << 16) | (raw[i + 1] << 8) | raw[i + 2];
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  return true;
}

bool read_password_file(const std::filesystem::path& path, std::string& out, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    error = path.string() + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = path.string() + ": not a regular file";
    return false;
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    error = path.string() + ": password file must not be readable by group or others (chmod 600)";
    return false;
  }
  std::string content;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 && content.size() < 65536) {
    content.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (n < 0) {
    error = path.string() + ": " + std::strerror(errno);
    return false;
  }
  const auto eol = content.find_first_of("\r\n");
  if (eol != std::string::npos) content.resize(eol);
  if (content.empty()) {
    error = path.string() + ": empty password";
    return false;
  }
  out = content;
  return true;
}

bool load_credential(const Config& c, Credential& cred, std::string& error) {
  if (cred.password) return true;
  const std::filesystem::path path = in_state_dir(c, *cred.file);
  if (cred.generate && !std::filesystem::exists(path)) {
    std::string password;
    if (!generate_password(password)) {
      error = "cannot generate a random password";
      return false;
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      error = path.string() + ": " + std::strerror(errno);
      return false;
    }
    const std::string line = password + "\n";
    const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                    ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      error = path.string() + ": cannot write the generated password";
      return false;
    }
    spdlog::warn("generated a password for user '{}' in {} (mode 0600)", cred.name, path.string());
  }
  std::string password;
  if (!read_password_file(path, password, error)) {
    error = cred.origin + ": " + error;
    return false;
  }
  cred.password = password;
  return true;
}

}  // namespace

bool prepare_state(Config& config, ConfigError& error) {
  std::error_code ec;
  if (std::filesystem::create_directories(config.state_dir, ec)) {
    ::chmod(config.state_dir.c_str(), 0700);  // it holds passwords and cartridges
  }
  if (ec) {
    error.message = config.state_dir.string() + ": " + ec.message();
    return false;
  }
  config.devices.state_dir = config.state_dir;
  for (Credential& cred : config.users) {
    if (!load_credential(config, cred, error.message)) return false;
  }
  if (config.server_identity && !load_credential(config, *config.server_identity, error.message)) {
    return false;
  }
  for (Export& e : config.exports) {
    // A relative export lives in the state directory (the embedded default's
    // volume) and is created on first start; an absolute one must exist.
    if (!e.path.is_absolute()) {
      e.path = in_state_dir(config, e.path);
      std::filesystem::create_directories(e.path, ec);
      if (ec) {
        error.message = e.origin + ": " + e.path.string() + ": " + ec.message();
        return false;
      }
    }
  }
  return true;
}

}  // namespace ndmpd
