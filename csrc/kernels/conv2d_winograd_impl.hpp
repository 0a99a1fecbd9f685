// The Winograd F(2x2, 3x3) transforms written once over a vector-traits type V; included only by
// the per-ISA files (conv2d_winograd.cpp for the portable table, conv2d_winograd_<isa>.cpp with
// their flags). Internal linkage only, no standard-library templates (see gemm_ukr.hpp).
//
// V provides: kWidth, vec, mask, zero(), set1(s), lanes(n), load(mask, p) (masked-off lanes read
// as 0, never fault), store(mask, p, v), loadu(p) / storeu(p, v) (a full vector), add, sub, mul,
// relu.
//
// The matrices (Lavin & Gray 2015):
//   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G  = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   Aᵀ = [1 1 1 0; 0 1 -1 -1]
// Vectors run along the channels (input, weights) or the filters (output): NHWC keeps them
// contiguous, so every load and store is a plain (masked at the tail) vector access.
#pragma once

#include "kernels/conv2d_winograd.hpp"

namespace nncore {
namespace {

template <class V>
void wino_input(float* v, int64_t ve, const float* x, const Conv2dParams& p, int64_t t0,
                int64_t count, const float* zeros) {
  using vec = typename V::vec;
  constexpr int W = V::kWidth;
  const int64_t C = p.c, th_n = (p.oh + 1) / 2, tw_n = (p.ow + 1) / 2;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t t = t0 + i, n = t / (th_n * tw_n), r = t % (th_n * tw_n);
    const int64_t ih0 = 2 * (r / tw_n) - p.pt, iw0 = 2 * (r % tw_n) - p.pl;
    const float* px[16];  // the 4x4 patch's pixels, zeros where outside x
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) {
        const int64_t ih = ih0 + a, iw = iw0 + b;
        px[a * 4 + b] = (ih >= 0 && ih < p.h && iw >= 0 && iw < p.w)
                            ? x + ((n * p.h + ih) * p.w + iw) * C
                            : zeros;
      }
    float* out = v + i * C;
    for (int64_t c = 0; c < C; c += W) {
      // Full vectors take plain loads and stores (masked stores are slow on AMD), the tail masks.
      const bool full = c + W <= C;
      const typename V::mask m = V::lanes(C - c);
      vec d[16], tmp[16];
#pragma GCC unroll 16
      for (int k = 0; k < 16; ++k) d[k] = full ? V::loadu(px[k] + c) : V::load(m, px[k] + c);
      // tmp = Bᵀ d (rows), then V = tmp B (columns): the same four sums each way.
#pragma GCC unroll 4
      for (int b = 0; b < 4; ++b) {
        tmp[0 * 4 + b] = V::sub(d[0 * 4 + b], d[2 * 4 + b]);
        tmp[1 * 4 + b] = V::add(d[1 * 4 + b], d[2 * 4 + b]);
        tmp[2 * 4 + b] = V::sub(d[2 * 4 + b], d[1 * 4 + b]);
        tmp[3 * 4 + b] = V::sub(d[1 * 4 + b], d[3 * 4 + b]);
      }
#pragma GCC unroll 4
      for (int a = 0; a < 4; ++a) {
        const vec* s = tmp + a * 4;
        const vec r[4] = {V::sub(s[0], s[2]), V::add(s[1], s[2]), V::sub(s[2], s[1]),
                          V::sub(s[1], s[3])};
#pragma GCC unroll 4
        for (int b = 0; b < 4; ++b) {
          float* dst = out + (a * 4 + b) * ve + c;
          if (full) V::storeu(dst, r[b]);
          else V::store(m, dst, r[b]);
        }
      }
    }
  }
}

template <class V>
void wino_output(float* y, const float* mm, int64_t me, const float* b, const Conv2dParams& p,
                 int64_t t0, int64_t count) {
  using vec = typename V::vec;
  constexpr int W = V::kWidth;
  const int64_t F = p.f, th_n = (p.oh + 1) / 2, tw_n = (p.ow + 1) / 2;
  const bool relu = p.act == Act::relu;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t t = t0 + i, n = t / (th_n * tw_n), r = t % (th_n * tw_n);
    const int64_t oh0 = 2 * (r / tw_n), ow0 = 2 * (r % tw_n);
    const bool row1 = oh0 + 1 < p.oh, col1 = ow0 + 1 < p.ow;
    float* y00 = y + ((n * p.oh + oh0) * p.ow + ow0) * F;
    const float* in = mm + i * F;
    for (int64_t f = 0; f < F; f += W) {
      const bool full = f + W <= F;
      const typename V::mask m = V::lanes(F - f);
      vec s[16], tmp[8];
#pragma GCC unroll 16
      for (int k = 0; k < 16; ++k) s[k] = full ? V::loadu(in + k * me + f) : V::load(m, in + k * me + f);
      // tmp = Aᵀ M (2x4), then Y = tmp A (2x2).
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        tmp[0 * 4 + c] = V::add(V::add(s[0 * 4 + c], s[1 * 4 + c]), s[2 * 4 + c]);
        tmp[1 * 4 + c] = V::sub(V::sub(s[1 * 4 + c], s[2 * 4 + c]), s[3 * 4 + c]);
      }
      const vec bias = !b ? V::zero() : full ? V::loadu(b + f) : V::load(m, b + f);
      vec o[4];
#pragma GCC unroll 2
      for (int a = 0; a < 2; ++a) {
        const vec* q = tmp + a * 4;
        o[a * 2 + 0] = V::add(V::add(V::add(q[0], q[1]), q[2]), bias);
        o[a * 2 + 1] = V::add(V::sub(V::sub(q[1], q[2]), q[3]), bias);
      }
      if (relu)
        for (int k = 0; k < 4; ++k) o[k] = V::relu(o[k]);
      float* const dst[4] = {y00 + f, col1 ? y00 + F + f : nullptr,
                             row1 ? y00 + p.ow * F + f : nullptr,
                             row1 && col1 ? y00 + (p.ow + 1) * F + f : nullptr};
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        if (!dst[k]) continue;
        if (full) V::storeu(dst[k], o[k]);
        else V::store(m, dst[k], o[k]);
      }
    }
  }
}

template <class V>
void wino_weights(float* u, const float* w, int64_t C, int64_t F) {
  using vec = typename V::vec;
  constexpr int W = V::kWidth;
  const vec half = V::set1(0.5f);
  const int64_t plane = C * F;  // w tap stride, and u element stride
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t f = 0; f < F; f += W) {
      const typename V::mask m = V::lanes(F - f);
      vec g[9], tmp[12];
#pragma GCC unroll 9
      for (int k = 0; k < 9; ++k) g[k] = V::load(m, w + k * plane + c * F + f);
      // tmp = G g (4x3), then U = tmp Gᵀ (4x4).
#pragma GCC unroll 3
      for (int b = 0; b < 3; ++b) {
        const vec g0 = g[0 * 3 + b], g1 = g[1 * 3 + b], g2 = g[2 * 3 + b];
        const vec s = V::add(g0, g2);
        tmp[0 * 3 + b] = g0;
        tmp[1 * 3 + b] = V::mul(V::add(s, g1), half);
        tmp[2 * 3 + b] = V::mul(V::sub(s, g1), half);
        tmp[3 * 3 + b] = g2;
      }
      float* out = u + c * F + f;
#pragma GCC unroll 4
      for (int a = 0; a < 4; ++a) {
        const vec g0 = tmp[a * 3 + 0], g1 = tmp[a * 3 + 1], g2 = tmp[a * 3 + 2];
        const vec s = V::add(g0, g2);
        V::store(m, out + (a * 4 + 0) * plane, g0);
        V::store(m, out + (a * 4 + 1) * plane, V::mul(V::add(s, g1), half));
        V::store(m, out + (a * 4 + 2) * plane, V::mul(V::sub(s, g1), half));
        V::store(m, out + (a * 4 + 3) * plane, g2);
      }
    }
  }
}

// The weight gradient's transforms (backward only). Since Y = Aᵀ (U ⊙ V) A and U = G g Gᵀ, the
// gradient of a 3x3 kernel is dg = sum over tiles Gᵀ [ (A dY Aᵀ) ⊙ V ] G: the input transform is
// the forward's, these are the other two.
//
// mg[e * me + i * F + f] = (A dY Aᵀ)[e] of tile t0 + i, where dY is the tile's 2x2 output
// gradient (pixels outside g read as 0), g (N, OH, OW, F).
template <class V>
void wino_grad(float* mg, int64_t me, const float* g, const Conv2dParams& p, int64_t t0,
               int64_t count) {
  using vec = typename V::vec;
  constexpr int W = V::kWidth;
  const int64_t F = p.f, th_n = (p.oh + 1) / 2, tw_n = (p.ow + 1) / 2;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t t = t0 + i, n = t / (th_n * tw_n), r = t % (th_n * tw_n);
    const int64_t oh0 = 2 * (r / tw_n), ow0 = 2 * (r % tw_n);
    const bool row1 = oh0 + 1 < p.oh, col1 = ow0 + 1 < p.ow;
    const float* g00 = g + ((n * p.oh + oh0) * p.ow + ow0) * F;
    const float* const src[4] = {g00, col1 ? g00 + F : nullptr, row1 ? g00 + p.ow * F : nullptr,
                                 row1 && col1 ? g00 + (p.ow + 1) * F : nullptr};
    float* out = mg + i * F;
    for (int64_t f = 0; f < F; f += W) {
      const bool full = f + W <= F;
      const typename V::mask m = V::lanes(F - f);
      vec d[4];
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k)
        d[k] = !src[k] ? V::zero() : full ? V::loadu(src[k] + f) : V::load(m, src[k] + f);
      // A = [1 0; 1 1; 1 -1; 0 -1]: tmp = A dY (4x2), then tmp Aᵀ (4x4).
      const vec z = V::zero();
      vec tmp[8];
#pragma GCC unroll 2
      for (int b = 0; b < 2; ++b) {
        tmp[0 * 2 + b] = d[b];
        tmp[1 * 2 + b] = V::add(d[b], d[2 + b]);
        tmp[2 * 2 + b] = V::sub(d[b], d[2 + b]);
        tmp[3 * 2 + b] = V::sub(z, d[2 + b]);
      }
#pragma GCC unroll 4
      for (int a = 0; a < 4; ++a) {
        const vec q0 = tmp[a * 2], q1 = tmp[a * 2 + 1];
        const vec r4[4] = {q0, V::add(q0, q1), V::sub(q0, q1), V::sub(z, q1)};
#pragma GCC unroll 4
        for (int b = 0; b < 4; ++b) {
          float* dst = out + (a * 4 + b) * me + f;
          if (full) V::storeu(dst, r4[b]);
          else V::store(m, dst, r4[b]);
        }
      }
    }
  }
}

// dw (3,3,C,F) = Gᵀ Z G (accumulate: +=) for z[e * C * F + c * F + f], the transformed gradient
// summed over the tiles. Gᵀ = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1].
template <class V>
void wino_dw_back(float* dw, const float* z, int64_t C, int64_t F, bool accumulate) {
  using vec = typename V::vec;
  constexpr int W = V::kWidth;
  const vec half = V::set1(0.5f);
  const int64_t plane = C * F;
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t f = 0; f < F; f += W) {
      const typename V::mask m = V::lanes(F - f);
      const float* in = z + c * F + f;
      vec s[16], tmp[12];
#pragma GCC unroll 16
      for (int k = 0; k < 16; ++k) s[k] = V::load(m, in + k * plane);
      // tmp = Gᵀ Z (3x4), then tmp G (3x3).
#pragma GCC unroll 4
      for (int b = 0; b < 4; ++b) {
        const vec h = V::mul(V::add(s[1 * 4 + b], s[2 * 4 + b]), half);
        tmp[0 * 4 + b] = V::add(s[0 * 4 + b], h);
        tmp[1 * 4 + b] = V::mul(V::sub(s[1 * 4 + b], s[2 * 4 + b]), half);
        tmp[2 * 4 + b] = V::add(h, s[3 * 4 + b]);
      }
      float* out = dw + c * F + f;
#pragma GCC unroll 3
      for (int a = 0; a < 3; ++a) {
        const vec* q = tmp + a * 4;
        const vec h = V::mul(V::add(q[1], q[2]), half);
        const vec r3[3] = {V::add(q[0], h), V::mul(V::sub(q[1], q[2]), half), V::add(h, q[3])};
#pragma GCC unroll 3
        for (int b = 0; b < 3; ++b) {
          float* dst = out + (a * 3 + b) * plane;
          V::store(m, dst, accumulate ? V::add(V::load(m, dst), r3[b]) : r3[b]);
        }
      }
    }
  }
}

}  // namespace
}  // namespace nncore
