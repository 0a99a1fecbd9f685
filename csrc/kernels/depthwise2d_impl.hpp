// The depthwise row kernel written once over a vector-ISA traits type V; included only by the
// per-ISA files, which compile it with their flags (internal linkage, as conv2d_direct_impl.hpp).
//
// V provides: kWidth, vec, mask, zero(), lanes(n), load(mask, p) (masked-off lanes read as 0, never
// fault), loadu(p), storeu(p, v) (whole vectors), bcast(p) (*p in every lane), fma(a, b, c) = a*b + c, add, relu (max(0, r), NaN kept), min_cap(cap, r) (NaN kept),
// set1, store(mask, p, v); for dw_pool2_row cmpmask, take(v, best), select(m, v, best) (the max
// pooling scan's step).
//
// dw_kgrad (the weight and bias gradients) follows the same rule: fixed chunks of rows, a fixed
// summation pattern inside each (dw_dot).
//
// Every output is its taps inside x accumulated in row-major order from zero (one FMA each), then
// bias, activation, cap: the order is fixed by the geometry alone, so neither the tiling nor the
// thread split changes a bit.
#pragma once

#include "kernels/depthwise2d.hpp"

namespace nncore {
namespace {

// PT output pixels (consecutive in the row, input columns sw apart) x NV vectors of channels
// [c0, cend): PT*NV independent accumulators, so the FMA latency of one sum is hidden by the others.
template <class V, int PT, int NV, bool kFull, bool kBcast>
inline void dw_tile(float* yo, const float* xn, const float* k, const float* b,
                    const Depthwise2dParams& p, int64_t ih0, int64_t iw0, int64_t i0, int64_t i1,
                    int64_t j0, int64_t j1, int64_t c0, int64_t cend) {
  constexpr int W = V::kWidth;
  const int64_t C = p.c, O = C * p.m, xstep = p.sw * C;
  typename V::mask mk[NV];
  typename V::vec acc[PT][NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) mk[v] = V::lanes(cend - c0 - v * W);
#pragma GCC unroll 8
  for (int t = 0; t < PT; ++t)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[t][v] = V::zero();
  for (int64_t i = i0; i < i1; ++i) {
    const float* xr = xn + ((ih0 + i * p.dh) * p.w + iw0) * C + (kBcast ? 0 : c0);
    const float* kr = k + i * p.kw * O + c0;
    for (int64_t j = j0; j < j1; ++j) {
      const float* xs = xr + j * p.dw * C;
      const float* ks = kr + j * O;
      typename V::vec kv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) kv[v] = kFull ? V::loadu(ks + v * W) : V::load(mk[v], ks + v * W);
#pragma GCC unroll 8
      for (int t = 0; t < PT; ++t)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
          const float* xp = xs + t * xstep + (kBcast ? 0 : v * W);
          const typename V::vec xv =
              kBcast ? V::bcast(xp) : (kFull ? V::loadu(xp) : V::load(mk[v], xp));
          acc[t][v] = V::fma(xv, kv[v], acc[t][v]);
        }
    }
  }
  const bool relu = p.act == Act::relu;
  const typename V::vec cap = V::set1(p.cap);
  typename V::vec bias[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v)
    bias[v] = !b ? V::zero() : (kFull ? V::loadu(b + c0 + v * W) : V::load(mk[v], b + c0 + v * W));
#pragma GCC unroll 8
  for (int t = 0; t < PT; ++t)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      typename V::vec r = acc[t][v];
      if (b) r = V::add(r, bias[v]);
      if (relu) r = V::relu(r);
      if (p.has_cap) r = V::min_cap(cap, r);
      float* yp = yo + t * O + c0 + v * W;
      if (kFull) V::storeu(yp, r);
      else V::store(mk[v], yp, r);
    }
}

// PT pixels starting at output column ow (their input column origin iw0), every channel.
template <class V, int PT, bool kBcast>
inline void dw_pixels(float* yo, const float* xn, const float* k, const float* b,
                      const Depthwise2dParams& p, int64_t ih0, int64_t iw0, int64_t i0, int64_t i1,
                      int64_t j0, int64_t j1) {
  constexpr int W = V::kWidth, kNV = PT == 1 ? 4 : 2;
  const int64_t O = p.c * p.m;
  int64_t c0 = 0;
  for (; c0 + kNV * W <= O; c0 += kNV * W)
    dw_tile<V, PT, kNV, true, kBcast>(yo, xn, k, b, p, ih0, iw0, i0, i1, j0, j1, c0, c0 + kNV * W);
  for (; c0 + W <= O; c0 += W)
    dw_tile<V, PT, 1, true, kBcast>(yo, xn, k, b, p, ih0, iw0, i0, i1, j0, j1, c0, c0 + W);
  if (c0 < O)  // the last channels, one masked vector
    dw_tile<V, PT, 1, false, kBcast>(yo, xn, k, b, p, ih0, iw0, i0, i1, j0, j1, c0, O);
}

// y row (n, oh): every output pixel, every channel; depth multiplier 1 (kBcast false), or one
// input channel broadcast to all M outputs (kBcast: also a Conv2D with one input channel). Pixels
// whose taps all lie inside the row go kPT at a time, then 2 at a time; the others (at the
// borders) one by one, their outside taps skipped.
template <class V, bool kBcast>
void dw_row_t(float* y, const float* x, const float* k, const float* b, const Depthwise2dParams& p,
            int64_t n, int64_t oh) {
  constexpr int kPT = 4;
  const int64_t C = p.c;
  const float* xn = x + n * p.h * p.w * C;
  // Taps i in [i0, i1) keep the input row ih0 + i*dh inside [0, H).
  const int64_t ih0 = oh * p.sh - p.pt;
  int64_t i0 = 0, i1 = p.kh;
  while (i0 < i1 && ih0 + i0 * p.dh < 0) ++i0;
  while (i1 > i0 && ih0 + (i1 - 1) * p.dh >= p.h) --i1;
  const int64_t span = (p.kw - 1) * p.dw;  // a pixel's taps cover input columns [iw0, iw0 + span]
  const int64_t O = C * p.m;
  float* const yr = y;  // the caller's output row (n, oh)
  int64_t ow = 0;
  while (ow < p.ow) {
    const int64_t iw0 = ow * p.sw - p.pl;
    if (iw0 >= 0 && ow + kPT <= p.ow && (ow + kPT - 1) * p.sw - p.pl + span < p.w) {
      dw_pixels<V, kPT, kBcast>(yr + ow * O, xn, k, b, p, ih0, iw0, i0, i1, 0, p.kw);
      ow += kPT;
      continue;
    }
    // Two pixels with all their taps inside (the end of a 'valid' row): half a tile, not two
    // single pixels, whose one chain of FMAs per vector waits on the FMA latency.
    if (iw0 >= 0 && ow + 2 <= p.ow && (ow + 1) * p.sw - p.pl + span < p.w) {
      dw_pixels<V, 2, kBcast>(yr + ow * O, xn, k, b, p, ih0, iw0, i0, i1, 0, p.kw);
      ow += 2;
      continue;
    }
    int64_t j0 = 0, j1 = p.kw;
    while (j0 < j1 && iw0 + j0 * p.dw < 0) ++j0;
    while (j1 > j0 && iw0 + (j1 - 1) * p.dw >= p.w) --j1;
    dw_pixels<V, 1, kBcast>(yr + ow * O, xn, k, b, p, ih0, iw0, i0, i1, j0, j1);
    ++ow;
  }
}

// y (PW, O): the 2x2 stride-2 max pooling of the two rows s (2, OW, O), each window's cells in
// row-major order with the pooling scan's step (V::take / V::select), so its bits.
template <class V>
void dw_pool2_row(float* y, const float* s, int64_t ow, int64_t O, int64_t pw) {
  constexpr int W = V::kWidth;
  const float* const r1 = s + ow * O;
  for (int64_t j = 0; j < pw; ++j) {
    const float* cells[4] = {s + 2 * j * O, s + (2 * j + 1) * O, r1 + 2 * j * O,
                             r1 + (2 * j + 1) * O};
    float* yo = y + j * O;
    int64_t c = 0;
    for (; c + W <= O; c += W) {
      typename V::vec best = V::loadu(cells[0] + c);
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) {
        const typename V::vec v = V::loadu(cells[t] + c);
        best = V::select(V::take(v, best), v, best);
      }
      V::storeu(yo + c, best);
    }
    if (c < O) {
      const typename V::mask m = V::lanes(O - c);
      typename V::vec best = V::load(m, cells[0] + c);
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) {
        const typename V::vec v = V::load(m, cells[t] + c);
        best = V::select(V::take(v, best), v, best);
      }
      V::store(m, yo + c, best);
    }
  }
}

// Depth multiplier 1, or one input channel (the caller sends every other shape elsewhere).
template <class V>
void dw_row(float* y, const float* x, const float* k, const float* b, const Depthwise2dParams& p,
            int64_t n, int64_t oh) {
  if (p.m == 1) dw_row_t<V, false>(y, x, k, b, p, n, oh);
  else dw_row_t<V, true>(y, x, k, b, p, n, oh);
}


// dst[c0, cend) += sum over pixels ow in [lo, hi) of a(ow) * d(ow), where d(ow) = dyr[ow*O + c]
// and a(ow) = xr[(ow*sw + off)*C + c] (kBcast: xr[(ow*sw + off)*C], one input channel), or 1 when
// kOnes (the bias). Pixels go 4 at a time into 4 sums per vector, combined (s0+s1)+(s2+s3), then
// the tail pixels into s0 first: a fixed pattern set by lo and hi alone.
template <class V, int NV, bool kFull, bool kBcast, bool kOnes>
inline void dw_dot(float* dst, const float* dyr, const float* xr, const Depthwise2dParams& p,
                   int64_t off, int64_t lo, int64_t hi, int64_t c0, int64_t cend) {
  constexpr int W = V::kWidth;
  const int64_t C = p.c, O = C * p.m;
  typename V::mask mk[NV];
  typename V::vec acc[4][NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) mk[v] = V::lanes(cend - c0 - v * W);
#pragma GCC unroll 8
  for (int t = 0; t < 4; ++t)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[t][v] = V::zero();
  auto step = [&](int t, int64_t ow) {
    const float* dp = dyr + ow * O + c0;
    const float* xp = kOnes ? nullptr : xr + (ow * p.sw + off) * C + (kBcast ? 0 : c0);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const typename V::vec dv = kFull ? V::loadu(dp + v * W) : V::load(mk[v], dp + v * W);
      if (kOnes) {
        acc[t][v] = V::add(acc[t][v], dv);
      } else {
        const typename V::vec xv = kBcast ? V::bcast(xp)
                                          : (kFull ? V::loadu(xp + v * W) : V::load(mk[v], xp + v * W));
        acc[t][v] = V::fma(xv, dv, acc[t][v]);
      }
    }
  };
  int64_t ow = lo;
  for (; ow + 4 <= hi; ow += 4) {
    step(0, ow);
    step(1, ow + 1);
    step(2, ow + 2);
    step(3, ow + 3);
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v)
    acc[0][v] = V::add(V::add(acc[0][v], acc[1][v]), V::add(acc[2][v], acc[3][v]));
  for (; ow < hi; ++ow) step(0, ow);
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    float* d = dst + c0 + v * W;
    if (kFull) V::storeu(d, V::add(V::loadu(d), acc[0][v]));
    else V::store(mk[v], d, V::add(V::load(mk[v], d), acc[0][v]));
  }
}

template <class V, bool kBcast, bool kOnes>
inline void dw_dot_all(float* dst, const float* dyr, const float* xr, const Depthwise2dParams& p,
                       int64_t off, int64_t lo, int64_t hi) {
  constexpr int W = V::kWidth;
  const int64_t O = p.c * p.m;
  int64_t c0 = 0;
  for (; c0 + 2 * W <= O; c0 += 2 * W)
    dw_dot<V, 2, true, kBcast, kOnes>(dst, dyr, xr, p, off, lo, hi, c0, c0 + 2 * W);
  for (; c0 + W <= O; c0 += W)
    dw_dot<V, 1, true, kBcast, kOnes>(dst, dyr, xr, p, off, lo, hi, c0, c0 + W);
  if (c0 < O) dw_dot<V, 1, false, kBcast, kOnes>(dst, dyr, xr, p, off, lo, hi, c0, O);
}

// Output pixels ow whose input column ow*sw + off lies in [0, W): [*lo, *hi).
inline void dw_col_range(const Depthwise2dParams& p, int64_t off, int64_t* lo, int64_t* hi) {
  *lo = off >= 0 ? 0 : (-off + p.sw - 1) / p.sw;
  const int64_t last = p.w - 1 - off;  // ow*sw <= last
  *hi = last < 0 ? 0 : (last / p.sw + 1 < p.ow ? last / p.sw + 1 : p.ow);
  if (*hi < *lo) *hi = *lo;
}

// The partial dk and db of output rows [r0, r1) (see depthwise2d_kgrad_fn).
template <class V, bool kBcast>
void dw_kgrad_t(float* part, const float* dy, const float* x, const Depthwise2dParams& p,
                int64_t r0, int64_t r1) {
  const int64_t C = p.c, O = C * p.m, taps = p.kh * p.kw;
  float* pb = part + taps * O;
  for (int64_t e = 0; e < (taps + 1) * O; ++e) part[e] = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / p.oh, oh = r % p.oh;
    const float* dyr = dy + r * p.ow * O;
    const float* xn = x + n * p.h * p.w * C;
    dw_dot_all<V, kBcast, true>(pb, dyr, nullptr, p, 0, 0, p.ow);
    const int64_t ih0 = oh * p.sh - p.pt;
    for (int64_t i = 0; i < p.kh; ++i) {
      const int64_t ih = ih0 + i * p.dh;
      if (ih < 0 || ih >= p.h) continue;
      const float* xr = xn + ih * p.w * C;
      for (int64_t j = 0; j < p.kw; ++j) {
        const int64_t off = j * p.dw - p.pl;
        int64_t lo, hi;
        dw_col_range(p, off, &lo, &hi);
        if (lo < hi) dw_dot_all<V, kBcast, false>(part + (i * p.kw + j) * O, dyr, xr, p, off, lo, hi);
      }
    }
  }
}

template <class V>
void dw_kgrad(float* part, const float* dy, const float* x, const Depthwise2dParams& p, int64_t r0,
              int64_t r1) {
  if (p.m == 1) dw_kgrad_t<V, false>(part, dy, x, p, r0, r1);
  else dw_kgrad_t<V, true>(part, dy, x, p, r0, r1);
}

}  // namespace
}  // namespace nncore
