// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78), the checksum of
// iSCSI (RFC 3720), ext4 and the emulated cartridge files.
//
// The fastest way the CPU offers is chosen once, at first use: folding by
// carry-less multiplication (AVX-512 VPCLMULQDQ) for long buffers, with
// the crc32 instruction running three more streams in the same loop, the
// SSE4.2 crc32 instruction (three interleaved streams, so that its latency
// is hidden), or a slicing-by-8 table.  Thread-safe: pure functions over
// immutable tables.
#pragma once

#include <cstdint>
#include <span>

namespace scsi {

// The CRC-32C of `data` (crc32c("123456789") == 0xE3069283).
std::uint32_t crc32c(std::span<const std::uint8_t> data);

// The CRC-32C of a || data, given crc == crc32c(a): a long checksum can be
// computed piece by piece.
std::uint32_t crc32c_extend(std::uint32_t crc, std::span<const std::uint8_t> data);

// Both implementations, so that tests and benchmarks can compare them.
namespace crc32c_impl {
bool hardware_available();
std::uint32_t extend_portable(std::uint32_t crc, std::span<const std::uint8_t> data);
// REQUIRES hardware_available().
std::uint32_t extend_hardware(std::uint32_t crc, std::span<const std::uint8_t> data);
bool vector_available();
// REQUIRES vector_available().
std::uint32_t extend_vector(std::uint32_t crc, std::span<const std::uint8_t> data);
}  // namespace crc32c_impl

}  // namespace scsi
