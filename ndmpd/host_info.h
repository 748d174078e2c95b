// Facts about this host for CONFIG_GET_HOST_INFO and CONFIG_GET_FS_INFO.
// HostInfo is discovered once at start-up; filesystem figures are read on
// every request (statvfs may block: call fs_info() on the worker pool).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ndmpd/config.h"

namespace ndmpd {

struct HostInfo {
  std::string hostname;
  std::string os_type;  // "Linux"
  std::string os_vers;  // kernel release
  std::string hostid;   // 8 hex digits, stable across restarts

  static HostInfo discover(const Config& config);
};

struct FsInfo {
  unsigned unsupported = 0;     // NDMP4_FS_INFO_*_UNS
  std::string fs_type;          // "ext4"
  std::string logical_device;   // the export's name
  std::string physical_device;  // the mount source
  std::uint64_t total_size = 0, used_size = 0, avail_size = 0;
  std::uint64_t total_inodes = 0, used_inodes = 0;
  std::vector<std::pair<std::string, std::string>> env;
  std::string status;  // "online", or why not
};

// Figures for each export of the configuration.  Blocking.
std::vector<FsInfo> fs_info(const std::vector<Export>& exports);

}  // namespace ndmpd
