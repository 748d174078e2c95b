#include "sample_stream.h"

#include <cstring>

#include "xdr/call.h"

namespace ndmp::xdr::testing {
namespace {

struct State {
  std::uint32_t rng;
  u_int pos;
  std::uint32_t next() {
    rng = rng * 1664525u + 1013904223u;  // LCG: deterministic per seed
    return rng >> 8;
  }
};

State* state_of(XDR* x) { return static_cast<State*>(x->x_private); }

bool_t get_long(XDR* x, long* out) {
  State* s = state_of(x);
  s->pos += 4;
  // Mostly 0..2 (lengths, enum arms); now and then up to 63, so that
  // arrays and strings are sometimes longer than a couple of elements.
  const std::uint32_t r = s->next();
  *out = (r % 16 == 0) ? static_cast<long>(7 + r % 57) : static_cast<long>(r % 3u);
  return TRUE;
}

bool_t get_bytes(XDR* x, char* buf, u_int len) {
  State* s = state_of(x);
  for (u_int i = 0; i < len; ++i) buf[i] = static_cast<char>('a' + s->next() % 26);
  s->pos += len;
  return TRUE;
}

bool_t put_long(XDR*, const long*) { return FALSE; }
bool_t put_bytes(XDR*, const char*, u_int) { return FALSE; }
u_int get_pos(XDR* x) { return state_of(x)->pos; }
bool_t set_pos(XDR*, u_int) { return FALSE; }
int32_t* inline_none(XDR*, u_int) { return nullptr; }  // no fast path: every field asks
void destroy(XDR*) {}
bool_t control(XDR*, int, void*) { return FALSE; }

}  // namespace

bool sample(xdrproc_t proc, void* obj, std::size_t size, std::uint32_t seed) {
  static XDR::xdr_ops ops = [] {
    XDR::xdr_ops o{};
    o.x_getlong = get_long;
    o.x_putlong = put_long;
    o.x_getbytes = get_bytes;
    o.x_putbytes = put_bytes;
    o.x_getpostn = get_pos;
    o.x_setpostn = set_pos;
    o.x_inline = inline_none;
    o.x_destroy = destroy;
    o.x_control = control;
    return o;
  }();
  State state{seed * 2654435761u + 1u, 0};
  XDR x{};
  x.x_op = XDR_DECODE;
  x.x_ops = &ops;
  x.x_private = &state;
  std::memset(obj, 0, size);
  if (ndmp_xdr_call(proc, &x, obj)) return true;
  free_decoded(proc, obj, size);
  return false;
}

}  // namespace ndmp::xdr::testing
