// FarmHash fingerprint64 (farmhashna) and SipHash-2-4, written from their published
// definitions; see hash.hpp. All arithmetic is modulo 2^64, bytes read little-endian.
#include "kernels/hash.hpp"

#include <charconv>
#include <cstring>

#include "common/parallel.hpp"

namespace nncore {

namespace {

constexpr uint64_t kK0 = 0xC3A5C85C97CB3127ULL;
constexpr uint64_t kK1 = 0xB492B66FBE98F273ULL;
constexpr uint64_t kK2 = 0x9AE16A3B2F90404FULL;

inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

inline uint64_t rotr(uint64_t v, int s) { return s == 0 ? v : (v >> s) | (v << (64 - s)); }
inline uint64_t rotl(uint64_t v, int s) { return (v << s) | (v >> (64 - s)); }
inline uint64_t shift_mix(uint64_t v) { return v ^ (v >> 47); }

inline uint64_t len16(uint64_t u, uint64_t v, uint64_t mul) {
  uint64_t a = (u ^ v) * mul;
  a ^= a >> 47;
  uint64_t b = (v ^ a) * mul;
  b ^= b >> 47;
  return b * mul;
}

uint64_t len0to16(const uint8_t* s, size_t n) {
  if (n >= 8) {
    const uint64_t mul = kK2 + n * 2;
    const uint64_t a = load64(s) + kK2;
    const uint64_t b = load64(s + n - 8);
    const uint64_t c = rotr(b, 37) * mul + a;
    const uint64_t d = (rotr(a, 25) + b) * mul;
    return len16(c, d, mul);
  }
  if (n >= 4) {
    const uint64_t mul = kK2 + n * 2;
    const uint64_t a = load32(s);
    return len16(n + (a << 3), load32(s + n - 4), mul);
  }
  if (n > 0) {
    const uint32_t y = static_cast<uint32_t>(s[0]) + (static_cast<uint32_t>(s[n >> 1]) << 8);
    const uint32_t z = static_cast<uint32_t>(n) + (static_cast<uint32_t>(s[n - 1]) << 2);
    return shift_mix(y * kK2 ^ z * kK0) * kK2;
  }
  return kK2;
}

uint64_t len17to32(const uint8_t* s, size_t n) {
  const uint64_t mul = kK2 + n * 2;
  const uint64_t a = load64(s) * kK1;
  const uint64_t b = load64(s + 8);
  const uint64_t c = load64(s + n - 8) * mul;
  const uint64_t d = load64(s + n - 16) * kK2;
  return len16(rotr(a + b, 43) + rotr(c, 30) + d, a + rotr(b + kK2, 18) + c, mul);
}

uint64_t len33to64(const uint8_t* s, size_t n) {
  const uint64_t mul = kK2 + n * 2;
  const uint64_t a = load64(s) * kK2;
  const uint64_t b = load64(s + 8);
  const uint64_t c = load64(s + n - 8) * mul;
  const uint64_t d = load64(s + n - 16) * kK2;
  const uint64_t y = rotr(a + b, 43) + rotr(c, 30) + d;
  const uint64_t z = len16(y, a + rotr(b + kK2, 18) + c, mul);
  const uint64_t e = load64(s + 16) * mul;
  const uint64_t f = load64(s + 24);
  const uint64_t g = (y + load64(s + n - 32)) * mul;
  const uint64_t h = (z + load64(s + n - 24)) * mul;
  return len16(rotr(e + f, 43) + rotr(g, 30) + h, e + rotr(f + a, 18) + g, mul);
}

// A 16-byte hash of s[0:32] with seeds a, b -> (first, second).
inline void weak32(const uint8_t* s, uint64_t a, uint64_t b, uint64_t* first, uint64_t* second) {
  const uint64_t w = load64(s), x = load64(s + 8), y = load64(s + 16), z = load64(s + 24);
  a += w;
  b = rotr(b + a + z, 21);
  const uint64_t c = a;
  a += x + y;
  b += rotr(a, 44);
  *first = a + z;
  *second = b + c;
}

inline void sip_round(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
  v0 += v1;
  v1 = rotl(v1, 13) ^ v0;
  v0 = rotl(v0, 32);
  v2 += v3;
  v3 = rotl(v3, 16) ^ v2;
  v0 += v3;
  v3 = rotl(v3, 21) ^ v0;
  v2 += v1;
  v1 = rotl(v1, 17) ^ v2;
  v2 = rotl(v2, 32);
}

// Strings per parallel unit, and the least work worth a second thread.
constexpr int64_t kUnit = 256;
constexpr double kMinBytesPerThread = 1 << 16;

}  // namespace

uint64_t fingerprint64(const uint8_t* s, size_t n) {
  if (n <= 16) return len0to16(s, n);
  if (n <= 32) return len17to32(s, n);
  if (n <= 64) return len33to64(s, n);
  const uint64_t seed = 81;
  uint64_t x = seed;
  uint64_t y = seed * kK1 + 113;
  uint64_t z = shift_mix(y * kK2 + 113) * kK2;
  uint64_t v0 = 0, v1 = 0, w0 = 0, w1 = 0;
  x = x * kK2 + load64(s);
  const size_t end = ((n - 1) / 64) * 64;  // whole 64-byte blocks before the last 1..64 bytes
  const size_t last = n - 64;
  size_t i = 0;
  for (;;) {
    const uint8_t* p = s + i;
    x = rotr(x + y + v0 + load64(p + 8), 37) * kK1;
    y = rotr(y + v1 + load64(p + 48), 42) * kK1;
    x ^= w1;
    y += v0 + load64(p + 40);
    z = rotr(z + w0, 33) * kK1;
    weak32(p, v1 * kK1, x + w0, &v0, &v1);
    weak32(p + 32, z + w1, y + load64(p + 16), &w0, &w1);
    const uint64_t t = z;
    z = x;
    x = t;
    i += 64;
    if (i == end) break;
  }
  const uint64_t mul = kK1 + ((z & 0xFF) << 1);
  const uint8_t* p = s + last;
  w0 += (n - 1) & 63;
  v0 += w0;
  w0 += v0;
  x = rotr(x + y + v0 + load64(p + 8), 37) * mul;
  y = rotr(y + v1 + load64(p + 48), 42) * mul;
  x ^= w1 * 9;
  y += v0 * 9 + load64(p + 40);
  z = rotr(z + w0, 33) * mul;
  weak32(p, v1 * mul, x + w0, &v0, &v1);
  weak32(p + 32, z + w1, y + load64(p + 16), &w0, &w1);
  const uint64_t t = z;
  z = x;
  x = t;
  return len16(len16(v0, w0, mul) + shift_mix(y) * kK0 + z, len16(v1, w1, mul) + x, mul);
}

uint64_t siphash24(uint64_t k0, uint64_t k1, const uint8_t* s, size_t n) {
  uint64_t v0 = k0 ^ 0x736F6D6570736575ULL;
  uint64_t v1 = k1 ^ 0x646F72616E646F6DULL;
  uint64_t v2 = k0 ^ 0x6C7967656E657261ULL;
  uint64_t v3 = k1 ^ 0x7465646279746573ULL;
  const size_t full = n - n % 8;
  for (size_t i = 0; i < full; i += 8) {
    const uint64_t m = load64(s + i);
    v3 ^= m;
    sip_round(v0, v1, v2, v3);
    sip_round(v0, v1, v2, v3);
    v0 ^= m;
  }
  uint64_t m = static_cast<uint64_t>(n & 0xFF) << 56;
  for (size_t j = 0; j < n % 8; ++j) m |= static_cast<uint64_t>(s[full + j]) << (8 * j);
  v3 ^= m;
  sip_round(v0, v1, v2, v3);
  sip_round(v0, v1, v2, v3);
  v0 ^= m;
  v2 ^= 0xFF;
  for (int r = 0; r < 4; ++r) sip_round(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

void hash_strings(const uint8_t* data, const int64_t* offsets, int64_t count, bool keyed,
                  uint64_t k0, uint64_t k1, uint64_t* out) {
  if (count <= 0) return;
  const double bytes = static_cast<double>(offsets[count] - offsets[0]) + 16.0 * count;
  const int nt = threads_for(bytes, kMinBytesPerThread);
  const int64_t units = (count + kUnit - 1) / kUnit;
  parallel_units(units, nt, [&](int, int64_t u) {
    const int64_t lo = u * kUnit, hi = lo + kUnit < count ? lo + kUnit : count;
    for (int64_t i = lo; i < hi; ++i) {
      const uint8_t* s = data + offsets[i];
      const size_t n = static_cast<size_t>(offsets[i + 1] - offsets[i]);
      out[i] = keyed ? siphash24(k0, k1, s, n) : fingerprint64(s, n);
    }
  });
}

void hash_ints(const int64_t* values, int64_t count, bool keyed, uint64_t k0, uint64_t k1,
               uint64_t* out) {
  if (count <= 0) return;
  const int nt = threads_for(24.0 * count, kMinBytesPerThread);
  const int64_t units = (count + kUnit - 1) / kUnit;
  parallel_units(units, nt, [&](int, int64_t u) {
    const int64_t lo = u * kUnit, hi = lo + kUnit < count ? lo + kUnit : count;
    char buf[24];
    for (int64_t i = lo; i < hi; ++i) {
      const auto r = std::to_chars(buf, buf + sizeof(buf), values[i]);
      const auto* s = reinterpret_cast<const uint8_t*>(buf);
      const size_t n = static_cast<size_t>(r.ptr - buf);
      out[i] = keyed ? siphash24(k0, k1, s, n) : fingerprint64(s, n);
    }
  });
}

}  // namespace nncore
