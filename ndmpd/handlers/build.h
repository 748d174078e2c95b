// Helpers for filling the C structs that rpcgen generates: they point into
// C++ storage that the caller keeps alive until the struct is encoded (which
// Reply::with and Outbox::post do at once).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "xdr/ndmp4_wire.h"

namespace ndmpd::build {

// A char* for an XDR string field.  Encoding never writes through it.
inline char* str(const std::string& s) { return const_cast<char*>(s.c_str()); }

// Points an XDR variable-length array (len, val) at a vector's elements.
template <class Len, class T>
void array(Len& len, T*& val, std::vector<T>& v) {
  len = static_cast<Len>(v.size());
  val = v.empty() ? nullptr : v.data();
}

// ndmp4_pval entries for (name, value) pairs; the pairs must outlive them.
inline std::vector<ndmp4_pval> pvals(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::vector<ndmp4_pval> out;
  out.reserve(kv.size());
  for (const auto& [k, v] : kv) out.push_back({str(k), str(v)});
  return out;
}

}  // namespace ndmpd::build
