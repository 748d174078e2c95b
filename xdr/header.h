// The 24-byte NDMP message header and whole messages (header + body) as the
// session sends and receives them.  Pure functions; any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "xdr/codec.h"
#include "xdr/framer.h"

namespace ndmp::xdr {

inline constexpr std::size_t kHeaderSize = 24;

// Decodes the header at the start of `record`; nullopt if the record is
// shorter than a header.  (Any 24 bytes decode: enums are not range-checked
// here.)
std::optional<ndmp4_header> decode_header(std::span<const std::uint8_t> record);

// The body that follows the header in `record` (which must hold a header).
std::span<const std::uint8_t> body_of(std::span<const std::uint8_t> record);

// The 28 bytes that go before a body of `body_size` bytes when a message is
// sent as one record of one fragment: the fragment header, then the NDMP
// header.  With frame_head(), a session writes head and body as two buffers
// and never copies the body.
std::array<std::uint8_t, kFragmentHeaderSize + kHeaderSize> frame_head(const ndmp4_header& header,
                                                                       std::size_t body_size);

// Encodes a message: `header` followed by the body `body` encoded with
// `proc` (nullptr: no body, as in a reply that carries only a header error).
// Appends to `out`, after a 4-byte slot for the record-marking fragment
// header, which it fills in: `out` is ready to write to the socket.
// False if the body does not encode.
bool encode_message(const ndmp4_header& header, xdrproc_t proc, const void* body, Bytes& out);

template <class T>
bool encode_message(const ndmp4_header& header, const T& body, Bytes& out) {
  return encode_message(header, Traits<T>::proc(), &body, out);
}

}  // namespace ndmp::xdr
