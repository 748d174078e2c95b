// Big-endian fields, as CDBs, parameter data, sense data and EXTENDED COPY
// lists carry them: `n` bytes at byte `at` of a span whose length the
// caller has checked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace scsi {

inline std::uint64_t be(std::span<const std::uint8_t> b, std::size_t at, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | b[at + i];
  return v;
}
inline std::uint16_t be16(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint16_t>(be(b, at, 2));
}
inline std::uint32_t be24(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint32_t>(be(b, at, 3));
}
inline std::uint32_t be32(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint32_t>(be(b, at, 4));
}
inline std::uint64_t be64(std::span<const std::uint8_t> b, std::size_t at) { return be(b, at, 8); }

// Writes the low `n` bytes of `v` at `at`.
inline void put_be(std::span<std::uint8_t> b, std::size_t at, std::size_t n, std::uint64_t v) {
  for (std::size_t i = 0; i < n; ++i) b[at + n - 1 - i] = static_cast<std::uint8_t>(v >> (8 * i));
}

}  // namespace scsi
