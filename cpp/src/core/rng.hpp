// Counter-based RNG (Philox4x32-10, Salmon et al. 2011). Every random number is a pure function
// of (seed, stream, counter, index), so a step's noise, dropout masks and data order depend only
// on the seed and the step number: runs are reproducible for any thread count, and a resumed
// run draws exactly what an uninterrupted one would have.
#pragma once

#include <math.h>
#include <string.h>

#include <cstdint>

#include "core/hd.hpp"

namespace dcgan {

// Independent streams: one per purpose, so adding draws to one never shifts another.
enum class Stream : uint32_t {
  Init = 1,
  Noise = 2,
  Dropout = 3,
  Shuffle = 4,
  Generate = 5,
  PreciseBn = 6,
  Augment = 7
};

struct Philox {
  uint32_t key0, key1;
  uint32_t c2, c3;  // high half of the counter: (stream, sub-counter)

  DCGAN_HD Philox(uint64_t seed, Stream stream, uint64_t counter) {
    key0 = static_cast<uint32_t>(seed);
    key1 = static_cast<uint32_t>(seed >> 32);
    // 24 bits of stream tag, 40 bits of counter: plenty for steps x passes.
    const uint64_t hi = (static_cast<uint64_t>(stream) << 40) ^ (counter & ((1ull << 40) - 1));
    c2 = static_cast<uint32_t>(hi);
    c3 = static_cast<uint32_t>(hi >> 32);
  }

  // Four 32-bit words for block `block`.
  DCGAN_HD inline void block(uint64_t block, uint32_t out[4]) const {
    uint32_t c0 = static_cast<uint32_t>(block), c1 = static_cast<uint32_t>(block >> 32);
    uint32_t x2 = c2, x3 = c3, k0 = key0, k1 = key1;
    for (int r = 0; r < 10; ++r) {
      round(c0, c1, x2, x3, k0, k1);
      bump_key(k0, k1);
    }
    out[0] = c0, out[1] = c1, out[2] = x2, out[3] = x3;
  }
  // One Philox round on a counter (x0..x3) with round key (k0, k1), and the key schedule.
  // (Separate so that a loop over many blocks can run each round across all of them.)
  DCGAN_HD static inline void round(uint32_t& x0, uint32_t& x1, uint32_t& x2, uint32_t& x3,
                                    uint32_t k0, uint32_t k1) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * x0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * x2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ x1 ^ k0;
    const uint32_t n1 = static_cast<uint32_t>(p1);
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ x3 ^ k1;
    const uint32_t n3 = static_cast<uint32_t>(p0);
    x0 = n0, x1 = n1, x2 = n2, x3 = n3;
  }
  DCGAN_HD static inline void bump_key(uint32_t& k0, uint32_t& k1) {
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }

  // Uniform in [0, 1) with 24 random bits.
  DCGAN_HD static inline float to_unit(uint32_t x) {
    return static_cast<float>(x >> 8) * (1.0f / 16777216.0f);
  }
  // Uniform in (0, 1]: safe for log().
  DCGAN_HD static inline float to_open_unit(uint32_t x) {
    return (static_cast<float>(x >> 8) + 1.0f) * (1.0f / 16777216.0f);
  }

  // Element i of a standard normal sequence (Box-Muller over pairs of words).
  DCGAN_HD inline float normal(uint64_t i) const {
    uint32_t w[4];
    block(i >> 1, w);
    const int pair = static_cast<int>(i & 1);
    const double u1 = to_open_unit(w[2 * pair]);
    const double u2 = to_unit(w[2 * pair + 1]);
    // In double, from IEEE-exact operations only (no libm log or cos, whose host and device
    // versions differ in the last bit): the same bits on every backend.
    return static_cast<float>(sqrt(-2.0 * exact_log(u1)) * exact_cos_2pi(u2));
  }

  // log(x) for a positive normal x: x = m 2^e with m in [sqrt(1/2), sqrt(2)), and
  // log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, by its series to s^23
  // (truncation below 1e-18). Built from +, -, *, / and bit operations only.
  DCGAN_HD static inline double exact_log(double x) {
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;  // m in [1, 2)
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) m *= 0.5, e += 1;
    const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double p = 1.0 / 23.0;
    for (int k = 21; k >= 1; k -= 2) p = p * s2 + 1.0 / k;
    return 2.0 * s * p + e * 0.69314718055994530942;
  }

  // cos(2 pi u) for u in [0, 1): u = q / 4 + t with |t| <= 1/8, then the Taylor series of
  // cos and sin at x = 2 pi t (|x| <= pi / 4, terms to x^16 and x^17: error below 1e-17).
  DCGAN_HD static inline double exact_cos_2pi(double u) {
    const double q = floor(4.0 * u + 0.5);
    const double x = 6.283185307179586477 * (u - 0.25 * q), x2 = x * x;
    double c = 1.0, sn = 1.0;
    for (int k = 16; k >= 2; k -= 2) c = 1.0 - c * x2 / (k * (k - 1.0));
    for (int k = 17; k >= 3; k -= 2) sn = 1.0 - sn * x2 / (k * (k - 1.0));
    sn *= x;
    switch (static_cast<int>(q) & 3) {
      case 0:
        return c;
      case 1:
        return -sn;
      case 2:
        return -c;
      default:
        return sn;
    }
  }

  // Element i of a uniform [0, 1) sequence.
  DCGAN_HD inline float uniform(uint64_t i) const {
    uint32_t w[4];
    block(i >> 2, w);
    return to_unit(w[i & 3]);
  }
};

}  // namespace dcgan
