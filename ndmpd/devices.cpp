#include "ndmpd/devices.h"

namespace ndmpd {

bool DeviceLocks::acquire(const std::string& name, std::uint64_t session) {
  std::lock_guard lock(mutex_);
  const auto [it, inserted] = held_.emplace(name, session);
  return inserted || it->second == session;
}

void DeviceLocks::release(const std::string& name, std::uint64_t session) {
  std::lock_guard lock(mutex_);
  const auto it = held_.find(name);
  if (it != held_.end() && it->second == session) held_.erase(it);
}

std::optional<std::uint64_t> DeviceLocks::holder(const std::string& name) const {
  std::lock_guard lock(mutex_);
  const auto it = held_.find(name);
  if (it == held_.end()) return std::nullopt;
  return it->second;
}

void DeviceLocks::park(const std::string& name, Parked p) {
  std::lock_guard lock(mutex_);
  parked_[name] = std::move(p);
}

std::optional<DeviceLocks::Parked> DeviceLocks::parked(const std::string& name) const {
  std::lock_guard lock(mutex_);
  const auto it = parked_.find(name);
  if (it == parked_.end()) return std::nullopt;
  return it->second;
}

}  // namespace ndmpd
