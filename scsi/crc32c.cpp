#include "scsi/crc32c.h"

#include <array>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace scsi {
namespace {

constexpr std::uint32_t kPolynomial = 0x82F63B78u;  // reflected 0x1EDC6F41

using SliceTables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr SliceTables make_slice_tables() {
  SliceTables t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1u) != 0 ? kPolynomial : 0u);
    t[0][i] = c;
  }
  for (std::size_t s = 1; s < 8; ++s) {
    for (std::size_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
  }
  return t;
}

constexpr SliceTables kSlice = make_slice_tables();

std::uint64_t load_le64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The functions below work on the CRC register itself: the caller does the
// pre- and post-inversion, so that the register is linear in its input and
// streams can be combined.
std::uint32_t update_portable(std::uint32_t c, const std::uint8_t* p, std::size_t n) {
  while (n >= 8) {
    const std::uint64_t w = load_le64(p) ^ c;
    c = kSlice[7][w & 0xFFu] ^ kSlice[6][(w >> 8) & 0xFFu] ^ kSlice[5][(w >> 16) & 0xFFu] ^
        kSlice[4][(w >> 24) & 0xFFu] ^ kSlice[3][(w >> 32) & 0xFFu] ^ kSlice[2][(w >> 40) & 0xFFu] ^
        kSlice[1][(w >> 48) & 0xFFu] ^ kSlice[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = (c >> 8) ^ kSlice[0][(c ^ *p++) & 0xFFu];
  return c;
}

#if defined(__x86_64__)

// Three streams over consecutive stretches of `kLong` (then `kShort`) bytes
// keep the crc32 instruction's pipeline full (latency 3, throughput 1).
// The streams are joined by shifting a register over the bytes that follow
// it: feeding n zero bytes to the register is linear in the register, so it
// is four table lookups, one per register byte.
constexpr std::size_t kLong = 8192;
constexpr std::size_t kShort = 256;

class Shift {
 public:
  explicit Shift(std::size_t bytes) {
    std::array<std::uint32_t, 32> basis{};
    for (std::size_t bit = 0; bit < 32; ++bit) {
      std::uint32_t c = 1u << bit;
      for (std::size_t i = 0; i < bytes; ++i) c = (c >> 8) ^ kSlice[0][c & 0xFFu];
      basis[bit] = c;
    }
    for (std::size_t j = 0; j < 4; ++j) {
      for (std::size_t v = 0; v < 256; ++v) {
        std::uint32_t x = 0;
        for (std::size_t k = 0; k < 8; ++k) {
          if ((v >> k) & 1u) x ^= basis[8 * j + k];
        }
        table_[j][v] = x;
      }
    }
  }
  std::uint32_t operator()(std::uint32_t c) const {
    return table_[0][c & 0xFFu] ^ table_[1][(c >> 8) & 0xFFu] ^ table_[2][(c >> 16) & 0xFFu] ^
           table_[3][c >> 24];
  }

 private:
  std::array<std::array<std::uint32_t, 256>, 4> table_{};
};

const Shift& shift_long() {
  static const Shift s(kLong);
  return s;
}
const Shift& shift_short() {
  static const Shift s(kShort);
  return s;
}

__attribute__((target("sse4.2"))) std::uint64_t crc_word(std::uint64_t c, const std::uint8_t* p) {
  std::uint64_t w;
  std::memcpy(&w, p, sizeof w);  // x86 is little-endian, as the CRC wants
  return _mm_crc32_u64(c, w);
}

template <std::size_t kStretch>
__attribute__((target("sse4.2"))) std::uint64_t three_streams(std::uint64_t c0,
                                                              const std::uint8_t* p,
                                                              const Shift& shift) {
  std::uint64_t c1 = 0;
  std::uint64_t c2 = 0;
  for (std::size_t i = 0; i < kStretch; i += 8) {
    c0 = crc_word(c0, p + i);
    c1 = crc_word(c1, p + kStretch + i);
    c2 = crc_word(c2, p + 2 * kStretch + i);
  }
  c0 = shift(static_cast<std::uint32_t>(c0)) ^ c1;
  return shift(static_cast<std::uint32_t>(c0)) ^ c2;
}

__attribute__((target("sse4.2"))) std::uint32_t update_hardware(std::uint32_t crc,
                                                                const std::uint8_t* p,
                                                                std::size_t n) {
  std::uint64_t c = crc;
  while (n > 0 && (reinterpret_cast<std::uintptr_t>(p) & 7u) != 0) {
    c = _mm_crc32_u8(static_cast<std::uint32_t>(c), *p++);
    --n;
  }
  if (n >= 3 * kLong) {
    const Shift& shift = shift_long();
    do {
      c = three_streams<kLong>(c, p, shift);
      p += 3 * kLong;
      n -= 3 * kLong;
    } while (n >= 3 * kLong);
  }
  if (n >= 3 * kShort) {
    const Shift& shift = shift_short();
    do {
      c = three_streams<kShort>(c, p, shift);
      p += 3 * kShort;
      n -= 3 * kShort;
    } while (n >= 3 * kShort);
  }
  for (; n >= 8; n -= 8, p += 8) c = crc_word(c, p);
  for (; n > 0; --n) c = _mm_crc32_u8(static_cast<std::uint32_t>(c), *p++);
  return static_cast<std::uint32_t>(c);
}

// With AVX-512 and VPCLMULQDQ, long buffers are folded 256 bytes at a time
// (four 512-bit registers, each four 128-bit lanes) by carry-less
// multiplication, which outruns the crc32 instruction about twofold; the
// folded 128 bits and the tail then go through crc32.
//
// Folding, in the reflected bit order of the CRC: a 128-bit lane whose low
// and high quadwords are the polynomials L and H (bit i of a quadword is
// the coefficient of x^(63-i)) stands for L x^64 + H.  Moved D bits further
// down the message it is L x^(64+D) + H x^D, which modulo P is
// clmul(L, x^(63+D) mod P) ^ clmul(H, x^(D-1) mod P): the carry-less product
// of two reflected quadwords is the reflected product times x.  So the lane
// stays a 128-bit value congruent to what it replaces, and the register
// that the crc32 instruction computes from the last 128 bits (from zero) is
// the CRC register of everything folded.
constexpr std::uint32_t kPolynomialNormal = 0x1EDC6F41u;

constexpr std::uint32_t reflect32(std::uint32_t v) {
  std::uint32_t r = 0;
  for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
  return r;
}

// x^n mod P, as a quadword operand (coefficient of x^d at bit 63 - d).
constexpr std::uint64_t power_operand(unsigned n) {
  std::uint32_t r = 1;
  for (unsigned i = 0; i < n; ++i) {
    r = (r & 0x80000000u) != 0 ? (r << 1) ^ kPolynomialNormal : r << 1;
  }
  return std::uint64_t{reflect32(r)} << 32;
}

struct FoldKeys {
  std::uint64_t low;   // multiplies L: x^(63+D) mod P
  std::uint64_t high;  // multiplies H: x^(D-1) mod P
};
constexpr FoldKeys fold_keys(unsigned bits) {
  return {power_operand(63 + bits), power_operand(bits - 1)};
}
constexpr FoldKeys kFold2048 = fold_keys(2048);
constexpr FoldKeys kFold1536 = fold_keys(1536);
constexpr FoldKeys kFold1024 = fold_keys(1024);
constexpr FoldKeys kFold512 = fold_keys(512);
constexpr FoldKeys kFold384 = fold_keys(384);
constexpr FoldKeys kFold256 = fold_keys(256);
constexpr FoldKeys kFold128 = fold_keys(128);

#define NDMP_TARGET_VECTOR __attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2")))

NDMP_TARGET_VECTOR __m512i keys512(FoldKeys k) {
  const auto low = static_cast<long long>(k.low);
  const auto high = static_cast<long long>(k.high);
  return _mm512_set_epi64(high, low, high, low, high, low, high, low);
}

// Every lane of x moved by the keys' distance, xor `y`.
NDMP_TARGET_VECTOR __m512i fold512(__m512i x, __m512i keys, __m512i y) {
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, keys, 0x00),
                                   _mm512_clmulepi64_epi128(x, keys, 0x11), y, 0x96);
}

NDMP_TARGET_VECTOR __m128i fold128(__m128i x, FoldKeys k) {
  const __m128i keys =
      _mm_set_epi64x(static_cast<long long>(k.high), static_cast<long long>(k.low));
  return _mm_xor_si128(_mm_clmulepi64_si128(x, keys, 0x00), _mm_clmulepi64_si128(x, keys, 0x11));
}

// The register after the four lanes x0..x3 (64 bytes each, in message
// order) have been folded into the last 128 bits, run through crc32 from
// zero.
NDMP_TARGET_VECTOR std::uint32_t reduce(__m512i x0, __m512i x1, __m512i x2, __m512i x3) {
  x3 = fold512(x0, keys512(kFold1536), x3);
  x3 = fold512(x1, keys512(kFold1024), x3);
  x3 = fold512(x2, keys512(kFold512), x3);
  alignas(64) std::uint8_t lanes[64];
  _mm512_store_si512(lanes, x3);
  const auto lane = [&lanes](int i) {
    return _mm_load_si128(reinterpret_cast<const __m128i*>(lanes) + i);
  };
  __m128i v = lane(3);
  v = _mm_xor_si128(v, fold128(lane(0), kFold384));
  v = _mm_xor_si128(v, fold128(lane(1), kFold256));
  v = _mm_xor_si128(v, fold128(lane(2), kFold128));
  const std::uint64_t c = _mm_crc32_u64(0, static_cast<std::uint64_t>(_mm_cvtsi128_si64(v)));
  return static_cast<std::uint32_t>(
      _mm_crc32_u64(c, static_cast<std::uint64_t>(_mm_extract_epi64(v, 1))));
}

// The first 256 bytes, with the register entering as the first 32 bits of
// the message.
NDMP_TARGET_VECTOR void load_first(std::uint32_t crc, const std::uint8_t* p, __m512i& x0,
                                   __m512i& x1, __m512i& x2, __m512i& x3) {
  x0 = _mm512_xor_si512(_mm512_loadu_si512(p),
                        _mm512_zextsi128_si512(_mm_cvtsi32_si128(static_cast<int>(crc))));
  x1 = _mm512_loadu_si512(p + 64);
  x2 = _mm512_loadu_si512(p + 128);
  x3 = _mm512_loadu_si512(p + 192);
}

NDMP_TARGET_VECTOR void fold256(const std::uint8_t* p, __m512i k2048, __m512i& x0, __m512i& x1,
                                __m512i& x2, __m512i& x3) {
  x0 = fold512(x0, k2048, _mm512_loadu_si512(p));
  x1 = fold512(x1, k2048, _mm512_loadu_si512(p + 64));
  x2 = fold512(x2, k2048, _mm512_loadu_si512(p + 128));
  x3 = fold512(x3, k2048, _mm512_loadu_si512(p + 192));
}

// The vector unit folds while the integer unit runs crc32: a stretch of
// kHybridSteps x 256 bytes is folded, and the three stretches of
// kHybridSteps x kHybridWord bytes after it go through crc32 as three
// streams, in the same loop, so that both units are busy (about 1.4 times
// the speed of folding alone).  The four registers are then joined by
// shifting.
constexpr std::size_t kHybridSteps = 64;
constexpr std::size_t kHybridWord = 48;  // bytes of each crc32 stream per step
constexpr std::size_t kHybridStretch = kHybridSteps * kHybridWord;
constexpr std::size_t kHybridBlock = kHybridSteps * 256 + 3 * kHybridStretch;

const Shift& shift_hybrid() {
  static const Shift s(kHybridStretch);
  return s;
}

NDMP_TARGET_VECTOR std::uint32_t hybrid_block(std::uint32_t crc, const std::uint8_t* p,
                                              __m512i k2048, const Shift& shift) {
  const std::uint8_t* s = p + kHybridSteps * 256;
  __m512i x0, x1, x2, x3;
  load_first(crc, p, x0, x1, x2, x3);
  std::uint64_t c0 = 0;
  std::uint64_t c1 = 0;
  std::uint64_t c2 = 0;
  for (std::size_t step = 0; step < kHybridSteps; ++step) {
    if (step > 0) fold256(p + 256 * step, k2048, x0, x1, x2, x3);
    const std::uint8_t* w = s + kHybridWord * step;
    for (std::size_t i = 0; i < kHybridWord; i += 8) {
      c0 = crc_word(c0, w + i);
      c1 = crc_word(c1, w + kHybridStretch + i);
      c2 = crc_word(c2, w + 2 * kHybridStretch + i);
    }
  }
  std::uint32_t c = shift(reduce(x0, x1, x2, x3)) ^ static_cast<std::uint32_t>(c0);
  c = shift(c) ^ static_cast<std::uint32_t>(c1);
  return shift(c) ^ static_cast<std::uint32_t>(c2);
}

NDMP_TARGET_VECTOR std::uint32_t update_vector(std::uint32_t crc, const std::uint8_t* p,
                                               std::size_t n) {
  const __m512i k2048 = keys512(kFold2048);
  if (n >= kHybridBlock) {
    const Shift& shift = shift_hybrid();
    do {
      crc = hybrid_block(crc, p, k2048, shift);
      p += kHybridBlock;
      n -= kHybridBlock;
    } while (n >= kHybridBlock);
  }
  if (n < 1024) return update_hardware(crc, p, n);
  __m512i x0, x1, x2, x3;
  load_first(crc, p, x0, x1, x2, x3);
  p += 256;
  n -= 256;
  while (n >= 256) {
    fold256(p, k2048, x0, x1, x2, x3);
    p += 256;
    n -= 256;
  }
  return update_hardware(reduce(x0, x1, x2, x3), p, n);
}

#undef NDMP_TARGET_VECTOR

#endif

using Update = std::uint32_t (*)(std::uint32_t, const std::uint8_t*, std::size_t);

Update choose() {
#if defined(__x86_64__)
  if (crc32c_impl::hardware_available()) {
    // Build the tables now, so that the first checksum does not pay for it.
    shift_long();
    shift_short();
    if (crc32c_impl::vector_available()) shift_hybrid();
    return crc32c_impl::vector_available() ? update_vector : update_hardware;
  }
#endif
  return update_portable;
}

}  // namespace

namespace crc32c_impl {

bool hardware_available() {
#if defined(__x86_64__)
  static const bool available = __builtin_cpu_supports("sse4.2");
  return available;
#else
  return false;
#endif
}

bool vector_available() {
#if defined(__x86_64__)
  static const bool available = hardware_available() && __builtin_cpu_supports("avx512f") &&
                                __builtin_cpu_supports("vpclmulqdq") &&
                                __builtin_cpu_supports("pclmul");
  return available;
#else
  return false;
#endif
}

std::uint32_t extend_portable(std::uint32_t crc, std::span<const std::uint8_t> data) {
  return ~update_portable(~crc, data.data(), data.size());
}

std::uint32_t extend_hardware(std::uint32_t crc, std::span<const std::uint8_t> data) {
#if defined(__x86_64__)
  return ~update_hardware(~crc, data.data(), data.size());
#else
  return extend_portable(crc, data);
#endif
}

std::uint32_t extend_vector(std::uint32_t crc, std::span<const std::uint8_t> data) {
#if defined(__x86_64__)
  return ~update_vector(~crc, data.data(), data.size());
#else
  return extend_portable(crc, data);
#endif
}

}  // namespace crc32c_impl

std::uint32_t crc32c_extend(std::uint32_t crc, std::span<const std::uint8_t> data) {
  static const Update update = choose();
  return ~update(~crc, data.data(), data.size());
}

std::uint32_t crc32c(std::span<const std::uint8_t> data) { return crc32c_extend(0, data); }

}  // namespace scsi
