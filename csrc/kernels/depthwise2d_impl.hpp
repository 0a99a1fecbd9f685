// The depthwise row kernel written once over a vector-ISA traits type V; included only by the
// per-ISA files, which compile it with their flags (internal linkage, as conv2d_direct_impl.hpp).
//
// V provides: kWidth, vec, mask, zero(), lanes(n), load(mask, p) (masked-off lanes read as 0, never
// fault), loadu(p), storeu(p, v) (whole vectors), bcast(p) (*p in every lane), fma(a, b, c) = a*b + c, add, relu (max(0, r), NaN kept), min_cap(cap, r) (NaN kept),
// set1, store(mask, p, v).
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
// whose taps all lie inside the row go kPT at a time; the others (at the borders) one by one,
// their outside taps skipped.
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
  float* yr = y + (n * p.oh + oh) * p.ow * O;
  int64_t ow = 0;
  while (ow < p.ow) {
    const int64_t iw0 = ow * p.sw - p.pl;
    if (iw0 >= 0 && ow + kPT <= p.ow && (ow + kPT - 1) * p.sw - p.pl + span < p.w) {
      dw_pixels<V, kPT, kBcast>(yr + ow * O, xn, k, b, p, ih0, iw0, i0, i1, 0, p.kw);
      ow += kPT;
      continue;
    }
    int64_t j0 = 0, j1 = p.kw;
    while (j0 < j1 && iw0 + j0 * p.dw < 0) ++j0;
    while (j1 > j0 && iw0 + (j1 - 1) * p.dw >= p.w) --j1;
    dw_pixels<V, 1, kBcast>(yr + ow * O, xn, k, b, p, ih0, iw0, i0, i1, j0, j1);
    ++ow;
  }
}

// Depth multiplier 1, or one input channel (the caller sends every other shape elsewhere).
template <class V>
void dw_row(float* y, const float* x, const float* k, const float* b, const Depthwise2dParams& p,
            int64_t n, int64_t oh) {
  if (p.m == 1) dw_row_t<V, false>(y, x, k, b, p, n, oh);
  else dw_row_t<V, true>(y, x, k, b, p, n, oh);
}

}  // namespace
}  // namespace nncore
