// The direct Conv2D kernels written once over a vector-ISA traits type V; included only by the
// per-ISA files (conv2d_direct_avx512.cpp, conv2d_direct_avx2.cpp), which compile it with their
// flags. Everything here has internal linkage and uses no standard-library templates, so no
// ISA-specific instantiation can be shared with generic code at link time (see gemm_ukr.hpp).
//
// V provides: kWidth (floats per vector), kMR (pixels or kernel rows per register tile), vec, mask,
// zero(), lanes(n) (mask of the first n lanes), load(mask, p) (masked-off lanes read as 0, never
// fault), bcast(p), fma(a, b, c) = a*b + c, add, relu, store(mask, p, v).
//
// Register tile: kMR rows x 2 vectors of filters, like the GEMM micro-kernel, with A broadcast
// straight from x (forward) and B rows straight from the gradient (weight gradient): no im2col, no
// packing. Summation order per output is fixed by the shapes, never by the caller's pixel split.
#pragma once

#include "kernels/conv2d_direct.hpp"

namespace nncore {
namespace {

// y rows of MR pixels (row stride F) at columns [f0, f0 + NV*W); kernel rows [kh0, kh1) only.
template <class V, int MR, int NV>
void fwd_tile(float* y, const float* const* px, const float* w, const float* b,
              const Conv2dParams& p, int64_t kh0, int64_t kh1, int64_t f0,
              typename V::mask m0, typename V::mask m1) {
  constexpr int W = V::kWidth;
  const int64_t C = p.c, F = p.f;
  typename V::vec acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  const float* a[MR];  // pixel origins; a tap is one index into all of them
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) a[i] = px[i];
  for (int64_t kh = kh0; kh < kh1; ++kh) {
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      const int64_t tap = (kh * p.dh * p.w + kw * p.dw) * C;
      const float* wp = w + (kh * p.kw + kw) * C * F + f0;
      for (int64_t c = tap; c < tap + C; ++c) {
        const typename V::vec w0 = V::load(m0, wp);
        const typename V::vec w1 = NV > 1 ? V::load(m1, wp + W) : w0;
        wp += F;
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
          const typename V::vec ai = V::bcast(a[i] + c);
          acc[i][0] = V::fma(ai, w0, acc[i][0]);
          if (NV > 1) acc[i][NV - 1] = V::fma(ai, w1, acc[i][NV - 1]);
        }
      }
    }
  }
  typename V::vec bias[NV];
  bias[0] = b ? V::load(m0, b + f0) : V::zero();
  if (NV > 1) bias[NV - 1] = b ? V::load(m1, b + f0 + W) : V::zero();
  const bool relu = p.act == Act::relu;
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) {
      typename V::vec r = V::add(acc[i][v], bias[v]);
      if (relu) r = V::relu(r);
      V::store(v == 0 ? m0 : m1, y + i * F + f0 + W * v, r);
    }
  }
}

// dw rows [k0, k0 + MR) (kernel entries at x offsets off[]) x columns [f0, f0 + NV*W):
// (+)= sum over the output pixels of images [n0, n1) of x[origin + off[i]] * g[pixel, f].
template <class V, int MR, int NV>
void dw_tile(float* dw, const float* x, const float* g, const int64_t* off, const Conv2dParams& p,
             int64_t n0, int64_t n1, int64_t f0, typename V::mask m0, typename V::mask m1,
             bool accumulate) {
  constexpr int W = V::kWidth;
  const int64_t F = p.f;
  typename V::vec acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v)
      acc[i][v] = accumulate ? V::load(v == 0 ? m0 : m1, dw + i * F + f0 + W * v) : V::zero();
  int64_t o[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) o[i] = off[i];
  const float* gp = g + f0;
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const float* xo = x + ((n * p.h + oh * p.sh) * p.w) * p.c;
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const typename V::vec g0 = V::load(m0, gp);
        const typename V::vec g1 = NV > 1 ? V::load(m1, gp + W) : g0;
        gp += F;
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
          const typename V::vec a = V::bcast(xo + o[i]);
          acc[i][0] = V::fma(a, g0, acc[i][0]);
          if (NV > 1) acc[i][NV - 1] = V::fma(a, g1, acc[i][NV - 1]);
        }
        xo += p.sw * p.c;
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) V::store(v == 0 ? m0 : m1, dw + i * F + f0 + W * v, acc[i][v]);
}

// Run-time tile height -> compile-time template (tails of the pixel or kernel-entry range).
template <class V, int NV, int MR = V::kMR>
void fwd_tile_any(int mr, float* y, const float* const* px, const float* w, const float* b,
                  const Conv2dParams& p, int64_t kh0, int64_t kh1, int64_t f0,
                  typename V::mask m0, typename V::mask m1) {
  if constexpr (MR > 1) {
    if (mr < MR) return fwd_tile_any<V, NV, MR - 1>(mr, y, px, w, b, p, kh0, kh1, f0, m0, m1);
  }
  fwd_tile<V, MR, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
}

template <class V, int NV, int MR = V::kMR>
void dw_tile_any(int mr, float* dw, const float* x, const float* g, const int64_t* off,
                 const Conv2dParams& p, int64_t n0, int64_t n1, int64_t f0, typename V::mask m0,
                 typename V::mask m1, bool accumulate) {
  if constexpr (MR > 1) {
    if (mr < MR)
      return dw_tile_any<V, NV, MR - 1>(mr, dw, x, g, off, p, n0, n1, f0, m0, m1, accumulate);
  }
  dw_tile<V, MR, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, accumulate);
}

template <class V>
void direct_forward(float* y, const float* x, const float* w, const float* b,
                    const Conv2dParams& p, int64_t q0, int64_t q1, int64_t row_lo,
                    int64_t row_hi) {
  constexpr int MR = V::kMR, W = V::kWidth;
  const int64_t R = p.oh * p.ow, F = p.f;
  const float* px[MR];
  // (n, oh, ow) of pixel q, stepped along instead of divided out per pixel.
  int64_t n = q0 / R, oh = (q0 % R) / p.ow, ow = q0 % p.ow;
  for (int64_t q = q0; q < q1; q += MR) {
    const int mr = static_cast<int>(q1 - q < MR ? q1 - q : MR);
    // Origin of each pixel's receptive field in x.
    int64_t n_first = n, oh_first = oh, oh_last = oh;
    for (int i = 0; i < mr; ++i) {
      px[i] = x + ((n * p.h + oh * p.sh) * p.w + ow * p.sw) * p.c;
      oh_last = n == n_first ? oh : p.oh;
      if (++ow == p.ow) {
        ow = 0;
        if (++oh == p.oh) oh = 0, ++n;
      }
    }
    // Kernel rows that reach a non-zero input row [row_lo, row_hi) for some pixel of the tile
    // (all of them when the tile spans two images).
    int64_t kh0 = 0, kh1 = p.kh;
    if (oh_last < p.oh && (row_lo > 0 || row_hi < p.h)) {
      while (kh0 < kh1 && oh_last * p.sh + kh0 * p.dh < row_lo) ++kh0;
      while (kh1 > kh0 && oh_first * p.sh + (kh1 - 1) * p.dh >= row_hi) --kh1;
    }
    float* yq = y + q * F;
    for (int64_t f0 = 0; f0 < F; f0 += 2 * W) {
      const int64_t left = F - f0;
      if (left > W)
        fwd_tile_any<V, 2>(mr, yq, px, w, b, p, kh0, kh1, f0, V::lanes(left), V::lanes(left - W));
      else
        fwd_tile_any<V, 1>(mr, yq, px, w, b, p, kh0, kh1, f0, V::lanes(left), V::lanes(0));
    }
  }
}

template <class V>
void direct_dw(float* dw, const float* x, const float* g, const Conv2dParams& p, int64_t n0,
               int64_t n1, bool accumulate) {
  constexpr int MR = V::kMR, W = V::kWidth;
  const int64_t K = p.kh * p.kw * p.c, F = p.f;
  int64_t off[MR];
  for (int64_t k0 = 0; k0 < K; k0 += MR) {
    const int mr = static_cast<int>(K - k0 < MR ? K - k0 : MR);
    // Offset of kernel entry k = (kh, kw, c) from a pixel's receptive-field origin in x.
    for (int i = 0; i < mr; ++i) {
      const int64_t k = k0 + i, c = k % p.c, kw = (k / p.c) % p.kw, kh = k / (p.c * p.kw);
      off[i] = (kh * p.dh * p.w + kw * p.dw) * p.c + c;
    }
    for (int64_t f0 = 0; f0 < F; f0 += 2 * W) {
      const int64_t left = F - f0;
      if (left > W)
        dw_tile_any<V, 2>(mr, dw + k0 * F, x, g, off, p, n0, n1, f0, V::lanes(left),
                          V::lanes(left - W), accumulate);
      else
        dw_tile_any<V, 1>(mr, dw + k0 * F, x, g, off, p, n0, n1, f0, V::lanes(left),
                          V::lanes(0), accumulate);
    }
  }
}

}  // namespace
}  // namespace nncore
