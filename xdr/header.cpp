#include "xdr/header.h"

namespace ndmp::xdr {

std::optional<ndmp4_header> decode_header(std::span<const std::uint8_t> record) {
  if (record.size() < kHeaderSize) return std::nullopt;
  ndmp4_header h{};
  // A header is six 32-bit words; it has nothing to allocate or free.
  if (!decode_into(Traits<ndmp4_header>::proc(), record.first(kHeaderSize), &h, sizeof h)) {
    return std::nullopt;
  }
  return h;
}

std::span<const std::uint8_t> body_of(std::span<const std::uint8_t> record) {
  return record.subspan(kHeaderSize);
}

std::array<std::uint8_t, kFragmentHeaderSize + kHeaderSize> frame_head(const ndmp4_header& header,
                                                                       std::size_t body_size) {
  std::array<std::uint8_t, kFragmentHeaderSize + kHeaderSize> out{};
  const std::uint32_t words[] = {
      header.sequence,     header.time_stamp,     static_cast<std::uint32_t>(header.message_type),
      header.message_code, header.reply_sequence, static_cast<std::uint32_t>(header.error_code)};
  put_fragment_header(static_cast<std::uint32_t>(kHeaderSize + body_size), true, out);
  std::size_t at = kFragmentHeaderSize;
  for (const std::uint32_t w : words) {
    out[at++] = static_cast<std::uint8_t>(w >> 24);
    out[at++] = static_cast<std::uint8_t>(w >> 16);
    out[at++] = static_cast<std::uint8_t>(w >> 8);
    out[at++] = static_cast<std::uint8_t>(w);
  }
  return out;
}

bool encode_message(const ndmp4_header& header, xdrproc_t proc, const void* body, Bytes& out) {
  const std::size_t start = out.size();
  out.resize(start + kFragmentHeaderSize);
  if (!encode(header, out) || (proc != nullptr && !encode_into(proc, body, out))) {
    out.resize(start);
    return false;
  }
  const std::size_t length = out.size() - start - kFragmentHeaderSize;
  if (length > kMaxFragmentLength) {
    out.resize(start);
    return false;
  }
  put_fragment_header(static_cast<std::uint32_t>(length), true,
                      std::span(out).subspan(start, kFragmentHeaderSize));
  return true;
}

}  // namespace ndmp::xdr
