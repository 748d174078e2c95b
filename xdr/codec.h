// The XDR codec: typed encode/decode of NDMP v4 bodies over the C code that
// rpcgen generates from ndmp4.x.
//
// encode() and decode() are pure functions over byte buffers; they touch no
// global state and may be called from any thread.  A Decoded<T> owns what
// the XDR decoder allocated for a T and frees it with xdr_free when it goes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "xdr/ndmp4_wire.h"

namespace ndmp::xdr {

using Bytes = std::vector<std::uint8_t>;

// The XDR procedure of each generated type, for the typed helpers below.
template <class T>
struct Traits;

// A body that has no bytes on the wire (requests such as GET_HOST_INFO).
struct Void {};

// An rpcgen procedure as the generic xdrproc_t (through a plain function
// pointer type, which is how C code stores them).
template <class F>
xdrproc_t as_proc(F* fn) {
  return reinterpret_cast<xdrproc_t>(reinterpret_cast<void (*)()>(fn));
}

template <>
struct Traits<Void> {
  static xdrproc_t proc() { return as_proc(xdr_void); }
};

#define NDMP_XDR_TRAITS(T)                               \
  template <>                                            \
  struct Traits<T> {                                     \
    static xdrproc_t proc() { return as_proc(xdr_##T); } \
  };
#include "xdr/ndmp4_types.def"
#undef NDMP_XDR_TRAITS

// Appends the XDR encoding of the object at `obj` to `out`.  Returns false
// when the object cannot be encoded (a bound exceeded, an enum out of range
// for a union): a bug in the caller, never a property of peer input.
bool encode_into(xdrproc_t proc, const void* obj, Bytes& out);

// Decodes exactly `in` into the object of `size` bytes at `obj` (which it
// zeroes first).  Trailing bytes after a complete value are an error.  On
// failure everything the decoder allocated has been freed again and the
// object is zeroed; on success the caller frees it with free_decoded().
bool decode_into(xdrproc_t proc, std::span<const std::uint8_t> in, void* obj, std::size_t size);

// Frees what the decoder allocated inside the object at `obj` and zeroes it.
void free_decoded(xdrproc_t proc, void* obj, std::size_t size);

template <class T>
bool encode(const T& value, Bytes& out) {
  return encode_into(Traits<T>::proc(), &value, out);
}

template <class T>
Bytes encode(const T& value) {
  Bytes out;
  encode(value, out);
  return out;
}

// Owns one decoded value of generated type T.
template <class T>
class Decoded {
 public:
  Decoded() = default;
  Decoded(const Decoded&) = delete;
  Decoded& operator=(const Decoded&) = delete;
  Decoded(Decoded&& other) noexcept : value_(other.value_), owns_(other.owns_) {
    other.value_ = T{};
    other.owns_ = false;
  }
  Decoded& operator=(Decoded&& other) noexcept {
    if (this != &other) {
      reset();
      value_ = std::exchange(other.value_, T{});
      owns_ = std::exchange(other.owns_, false);
    }
    return *this;
  }
  ~Decoded() { reset(); }

  // Replaces the value with the decoding of `in`; false if it does not
  // decode (the value is then empty).
  bool decode(std::span<const std::uint8_t> in) {
    reset();
    owns_ = decode_into(Traits<T>::proc(), in, &value_, sizeof(T));
    return owns_;
  }

  const T& operator*() const { return value_; }
  const T* operator->() const { return &value_; }
  T& get() { return value_; }

 private:
  void reset() {
    if (owns_) free_decoded(Traits<T>::proc(), &value_, sizeof(T));
    value_ = T{};
    owns_ = false;
  }

  T value_{};
  bool owns_ = false;
};

template <class T>
bool decode(std::span<const std::uint8_t> in, Decoded<T>& out) {
  return out.decode(in);
}

}  // namespace ndmp::xdr
