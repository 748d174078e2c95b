// The backup types (butypes) the data server offers, each with the
// environment defaults and NDMP4_BUTYPE_* attributes that
// CONFIG_GET_BUTYPE_INFO reports.  Filled at start-up by the data server's
// formats; read-only afterwards.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace ndmpd {

struct Butype {
  std::string name;
  std::vector<std::pair<std::string, std::string>> default_env;
  unsigned attrs = 0;
};

class ButypeRegistry {
 public:
  void add(Butype b) { butypes_.push_back(std::move(b)); }
  const std::vector<Butype>& all() const { return butypes_; }
  const Butype* find(const std::string& name) const {
    for (const Butype& b : butypes_) {
      if (b.name == name) return &b;
    }
    return nullptr;
  }

 private:
  std::vector<Butype> butypes_;
};

// Registers `tar` (POSIX pax via libarchive).
void register_tar_butype(ButypeRegistry& registry);

}  // namespace ndmpd
