#include "ndmpd/host_info.h"

#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include "xdr/ndmp4_wire.h"

namespace ndmpd {
namespace {

std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Undoes the octal escapes (\040 for a space) of /proc/self/mountinfo.
std::string unescape_mount_field(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string oct = s.substr(i + 1, 3);
      if (oct.find_first_not_of("01234567") == std::string::npos) {
        out.push_back(static_cast<char>(std::stoi(oct, nullptr, 8)));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

struct Mount {
  std::string point, type, source;
};

// The mount that holds `path`: the longest mount point that is a prefix.
Mount mount_of(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  Mount best;
  while (std::getline(in, line)) {
    // id parent major:minor root mount-point options [optional...] - type source super
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    std::string f;
    while (fields >> f && f != "-") {
    }
    std::string type, source;
    fields >> type >> source;
    point = unescape_mount_field(point);
    const bool prefix = path == point || point == "/" ||
                        (path.compare(0, point.size(), point) == 0 && path.size() > point.size() &&
                         path[point.size()] == '/');
    if (prefix && point.size() >= best.point.size()) {
      best = {point, type, unescape_mount_field(source)};
    }
  }
  return best;
}

}  // namespace

HostInfo HostInfo::discover(const Config& config) {
  HostInfo h;
  char name[256] = {};
  if (!config.hostname.empty()) {
    h.hostname = config.hostname;
  } else if (::gethostname(name, sizeof name - 1) == 0) {
    h.hostname = name;
  }
  struct utsname u {};
  if (::uname(&u) == 0) {
    h.os_type = u.sysname;
    h.os_vers = u.release;
  }
  // The host id: the start of systemd's machine id when there is one (it
  // survives reboots and differs between hosts); otherwise a hash of the
  // host name.  gethostid() is avoided: it may resolve the host name.
  std::string id = first_line("/etc/machine-id");
  if (id.size() >= 8 && id.find_first_not_of("0123456789abcdef") == std::string::npos) {
    h.hostid = id.substr(0, 8);
  } else {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x",
                  static_cast<unsigned>(std::hash<std::string>{}(h.hostname) & 0xffffffffu));
    h.hostid = buf;
  }
  return h;
}

std::vector<FsInfo> fs_info(const std::vector<Export>& exports) {
  std::vector<FsInfo> out;
  for (const Export& e : exports) {
    FsInfo fs;
    fs.logical_device = e.name;
    std::error_code ec;
    const std::filesystem::path real = std::filesystem::canonical(e.path, ec);
    struct statvfs sv {};
    if (ec || ::statvfs(real.c_str(), &sv) != 0) {
      fs.unsupported = NDMP4_FS_INFO_TOTAL_SIZE_UNS | NDMP4_FS_INFO_USED_SIZE_UNS |
                       NDMP4_FS_INFO_AVAIL_SIZE_UNS | NDMP4_FS_INFO_TOTAL_INODES_UNS |
                       NDMP4_FS_INFO_USED_INODES_UNS;
      fs.status = "unavailable: " + (ec ? ec.message() : std::string(std::strerror(errno)));
      fs.env = {{"LOCAL_NAME", e.path.string()}};
      out.push_back(std::move(fs));
      continue;
    }
    const Mount m = mount_of(real.string());
    fs.fs_type = m.type;
    fs.physical_device = m.source;
    const std::uint64_t unit = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
    fs.total_size = std::uint64_t{sv.f_blocks} * unit;
    fs.used_size = std::uint64_t{sv.f_blocks - sv.f_bfree} * unit;
    fs.avail_size = std::uint64_t{sv.f_bavail} * unit;
    if (sv.f_files != 0) {
      fs.total_inodes = sv.f_files;
      fs.used_inodes = sv.f_files - sv.f_ffree;
    } else {  // filesystems without an inode count (btrfs, some FUSE)
      fs.unsupported |= NDMP4_FS_INFO_TOTAL_INODES_UNS | NDMP4_FS_INFO_USED_INODES_UNS;
    }
    fs.env = {{"LOCAL_NAME", real.string()}, {"TYPE", m.type}, {"MOUNT_POINT", m.point}};
    fs.status = (sv.f_flag & ST_RDONLY) ? "online, read-only" : "online";
    out.push_back(std::move(fs));
  }
  return out;
}

}  // namespace ndmpd
