// What every session shares: the configuration, authentication, the
// registries of backup types and devices, host facts, and the worker pool
// for blocking work.  Built once before the first listener opens; after
// that read-only, apart from the internally locked LoginThrottle.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <string>
#include <vector>

#include "mover/address_policy.h"
#include "mover/mover.h"
#include "ndmpd/auth.h"
#include "ndmpd/config.h"
#include "ndmpd/data/butype.h"
#include "ndmpd/data/env.h"
#include "ndmpd/data_server.h"
#include "ndmpd/devices.h"
#include "ndmpd/host_info.h"
#include "tape/registry.h"

namespace ndmpd {

// A device as CONFIG_GET_TAPE_INFO / GET_SCSI_INFO describe it.
struct DeviceDescription {
  std::string name;   // what TAPE_OPEN / SCSI_OPEN take
  std::string model;  // vendor and product from INQUIRY
  unsigned attr = 0;  // NDMP4_TAPE_ATTR_* for drives
  std::vector<std::pair<std::string, std::string>> capabilities;
};

struct ServerContext {
  ServerContext(const Config& cfg, boost::asio::thread_pool& pool)
      : config(cfg),
        auth(cfg),
        throttle(cfg.auth_failure_delay, std::chrono::seconds(600)),
        host(HostInfo::discover(cfg)),
        data_policy(make_data_policy(cfg)),
        mover_settings(make_mover_settings(cfg)),
        data_settings(make_data_settings(cfg)),
        exports(make_exports(cfg)),
        workers(pool) {}

  const Config& config;
  const Authenticator auth;
  LoginThrottle throttle;
  const HostInfo host;
  const mover::AddressPolicy data_policy;  // where data connections may go
  const mover::Settings mover_settings;
  const DataSettings data_settings;
  const std::vector<data::ExportedFs> exports;  // what FILESYSTEM and PREFIX may name
  ButypeRegistry butypes;
  std::shared_ptr<tape::DeviceRegistry> registry;  // the devices DMAs may open
  DeviceLocks locks;                               // which session holds which
  std::vector<DeviceDescription> tapes;            // what CONFIG_GET_TAPE_INFO lists
  std::vector<DeviceDescription> changers;         // and CONFIG_GET_SCSI_INFO
  boost::asio::thread_pool& workers;

  static mover::AddressPolicy make_data_policy(const Config& cfg);
  static mover::Settings make_mover_settings(const Config& cfg);
  static DataSettings make_data_settings(const Config& cfg);
  static std::vector<data::ExportedFs> make_exports(const Config& cfg);

  // Fills `registry` and the descriptions from it.
  void attach(std::shared_ptr<tape::DeviceRegistry> devices);
};

}  // namespace ndmpd
