#include "xdr/codec.h"

#include <cstring>

#include "xdr/call.h"

namespace ndmp::xdr {
bool encode_into(xdrproc_t proc, const void* obj, Bytes& out) {
  void* mutable_obj = const_cast<void*>(obj);  // XDR_ENCODE does not write
  // A sizing pass first, so that the output grows once.
  const unsigned long size = xdr_sizeof(proc, mutable_obj);
  if (size == 0 && proc != Traits<Void>::proc()) {
    return false;
  }
  const std::size_t base = out.size();
  out.resize(base + size);
  if (size == 0) return true;
  XDR x;
  xdrmem_create(&x, reinterpret_cast<char*>(out.data() + base), static_cast<u_int>(size),
                XDR_ENCODE);
  const bool ok = ndmp_xdr_call(proc, &x, mutable_obj) && xdr_getpos(&x) == size;
  xdr_destroy(&x);
  if (!ok) out.resize(base);
  return ok;
}

bool decode_into(xdrproc_t proc, std::span<const std::uint8_t> in, void* obj, std::size_t size) {
  std::memset(obj, 0, size);
  XDR x;
  // XDR_DECODE only reads the buffer; xdrmem_create wants a char*.
  xdrmem_create(&x, reinterpret_cast<char*>(const_cast<std::uint8_t*>(in.data())),
                static_cast<u_int>(in.size()), XDR_DECODE);
  bool ok = ndmp_xdr_call(proc, &x, obj);
  if (ok && xdr_getpos(&x) != in.size()) ok = false;  // trailing bytes
  xdr_destroy(&x);
  if (!ok) free_decoded(proc, obj, size);
  return ok;
}

void free_decoded(xdrproc_t proc, void* obj, std::size_t size) {
  // xdr_free runs the procedure in XDR_FREE mode, which frees what the
  // decoder allocated (also after a partial decode) and nulls the pointers.
  xdr_free(proc, reinterpret_cast<char*>(obj));
  std::memset(obj, 0, size);
}

}  // namespace ndmp::xdr
