// AVX-512 direct Conv2D forward: the GEMM micro-kernel's register tile (12 output pixels x 32
// filters, 24 zmm accumulators) fed straight from x instead of a packed im2col panel. Per input
// channel step: 2 filter-row loads and 12 broadcasts feed 24 FMAs. No im2col buffer, no A packing
// (the transposing pack is what limits im2col + GEMM for NHWC with small K).
// Summation order per output: (kh, kw, c) ascending, so results do not depend on the pixel split.
#include <immintrin.h>

#include "kernels/conv2d_direct.hpp"

namespace nncore {

namespace {

constexpr int kMR = 12;

// y rows of MR pixels (row stride F) at columns [f0, f0 + 16*NV) (lanes masked by m0, m1).
template <int MR, int NV>
void tile(float* y, const float* const* px, const float* w, const float* b, const Conv2dParams& p,
          int64_t kh0, int64_t kh1, int64_t f0, __mmask16 m0, __mmask16 m1) {
  const int64_t C = p.c, F = p.f;
  __m512 acc[MR][NV];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t kh = kh0; kh < kh1; ++kh) {
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      const int64_t tap = (kh * p.dh * p.w + kw * p.dw) * C;
      const float* wp = w + (kh * p.kw + kw) * C * F + f0;
      const float* a[MR];
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) a[i] = px[i] + tap;
      for (int64_t c = 0; c < C; ++c) {
        const __m512 w0 = _mm512_maskz_loadu_ps(m0, wp);
        const __m512 w1 = NV > 1 ? _mm512_maskz_loadu_ps(m1, wp + 16) : w0;
        wp += F;
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
          const __m512 ai = _mm512_set1_ps(a[i][c]);
          acc[i][0] = _mm512_fmadd_ps(ai, w0, acc[i][0]);
          if (NV > 1) acc[i][NV - 1] = _mm512_fmadd_ps(ai, w1, acc[i][NV - 1]);
        }
      }
    }
  }
  __m512 bias[NV];
  bias[0] = b ? _mm512_maskz_loadu_ps(m0, b + f0) : _mm512_setzero_ps();
  if (NV > 1) bias[NV - 1] = b ? _mm512_maskz_loadu_ps(m1, b + f0 + 16) : _mm512_setzero_ps();
  const bool relu = p.act == Act::relu;
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) {
      __m512 r = _mm512_add_ps(acc[i][v], bias[v]);
      if (relu) r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r, zero, _CMP_GT_OQ), r);
      _mm512_mask_storeu_ps(y + i * F + f0 + 16 * v, v == 0 ? m0 : m1, r);
    }
  }
}

template <int NV>
void tile_any(int mr, float* y, const float* const* px, const float* w, const float* b,
              const Conv2dParams& p, int64_t kh0, int64_t kh1, int64_t f0, __mmask16 m0,
              __mmask16 m1) {
  switch (mr) {
    case 12: return tile<12, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
    case 11: return tile<11, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
    case 10: return tile<10, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
    case 9: return tile<9, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
    case 8: return tile<8, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
    case 7: return tile<7, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
    case 6: return tile<6, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
    case 5: return tile<5, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
    case 4: return tile<4, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
    case 3: return tile<3, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
    case 2: return tile<2, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
    default: return tile<1, NV>(y, px, w, b, p, kh0, kh1, f0, m0, m1);
  }
}

inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF)
                 : (n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1));
}

}  // namespace

void conv2d_direct_forward_avx512(float* y, const float* x, const float* w, const float* b,
                                  const Conv2dParams& p, int64_t q0, int64_t q1, int64_t row_lo,
                                  int64_t row_hi) {
  const int64_t R = p.oh * p.ow, F = p.f;
  const float* px[kMR];
  for (int64_t q = q0; q < q1; q += kMR) {
    const int mr = static_cast<int>(q1 - q < kMR ? q1 - q : kMR);
    // Origin of each pixel's receptive field in x.
    for (int i = 0; i < mr; ++i) {
      const int64_t qi = q + i, n = qi / R, rem = qi % R, oh = rem / p.ow, ow = rem % p.ow;
      px[i] = x + ((n * p.h + oh * p.sh) * p.w + ow * p.sw) * p.c;
    }
    // Kernel rows that reach a non-zero input row [row_lo, row_hi) for some pixel of the block
    // (all of them when the block spans two images).
    int64_t kh0 = 0, kh1 = p.kh;
    const int64_t qa = q, qb = q + mr - 1;
    if (qa / R == qb / R && (row_lo > 0 || row_hi < p.h)) {
      const int64_t oha = (qa % R) / p.ow, ohb = (qb % R) / p.ow;
      while (kh0 < kh1 && ohb * p.sh + kh0 * p.dh < row_lo) ++kh0;
      while (kh1 > kh0 && oha * p.sh + (kh1 - 1) * p.dh >= row_hi) --kh1;
    }
    float* yq = y + q * F;
    for (int64_t f0 = 0; f0 < F; f0 += 32) {
      const int64_t left = F - f0;
      if (left > 16)
        tile_any<2>(mr, yq, px, w, b, p, kh0, kh1, f0, lanes(left), lanes(left - 16));
      else
        tile_any<1>(mr, yq, px, w, b, p, kh0, kh1, f0, lanes(left), 0);
    }
  }
}

}  // namespace nncore

namespace nncore {

namespace {

// dw rows [k0, k0 + MR) (MR kernel entries at x offsets off[]) x columns [f0, f0 + 16*NV):
// (+)= sum over the output pixels of images [n0, n1) of x[origin + off[i]] * g[pixel, f].
template <int MR, int NV>
void dw_tile(float* dw, const float* x, const float* g, const int64_t* off, const Conv2dParams& p,
             int64_t n0, int64_t n1, int64_t f0, __mmask16 m0, __mmask16 m1, bool accumulate) {
  const int64_t F = p.f;
  __m512 acc[MR][NV];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v)
      acc[i][v] = accumulate ? _mm512_maskz_loadu_ps(v == 0 ? m0 : m1, dw + i * F + f0 + 16 * v)
                             : _mm512_setzero_ps();
  int64_t o[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) o[i] = off[i];
  const float* gp = g + f0;
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const float* xo = x + ((n * p.h + oh * p.sh) * p.w) * p.c;
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const __m512 g0 = _mm512_maskz_loadu_ps(m0, gp);
        const __m512 g1 = NV > 1 ? _mm512_maskz_loadu_ps(m1, gp + 16) : g0;
        gp += F;
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
          const __m512 a = _mm512_set1_ps(xo[o[i]]);
          acc[i][0] = _mm512_fmadd_ps(a, g0, acc[i][0]);
          if (NV > 1) acc[i][NV - 1] = _mm512_fmadd_ps(a, g1, acc[i][NV - 1]);
        }
        xo += p.sw * p.c;
      }
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v)
      _mm512_mask_storeu_ps(dw + i * F + f0 + 16 * v, v == 0 ? m0 : m1, acc[i][v]);
}

template <int NV>
void dw_tile_any(int mr, float* dw, const float* x, const float* g, const int64_t* off,
                 const Conv2dParams& p, int64_t n0, int64_t n1, int64_t f0, __mmask16 m0,
                 __mmask16 m1, bool acc) {
  switch (mr) {
    case 12: return dw_tile<12, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
    case 11: return dw_tile<11, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
    case 10: return dw_tile<10, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
    case 9: return dw_tile<9, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
    case 8: return dw_tile<8, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
    case 7: return dw_tile<7, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
    case 6: return dw_tile<6, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
    case 5: return dw_tile<5, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
    case 4: return dw_tile<4, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
    case 3: return dw_tile<3, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
    case 2: return dw_tile<2, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
    default: return dw_tile<1, NV>(dw, x, g, off, p, n0, n1, f0, m0, m1, acc);
  }
}

}  // namespace

void conv2d_direct_dw_avx512(float* dw, const float* x, const float* g, const Conv2dParams& p,
                             int64_t n0, int64_t n1, bool accumulate) {
  const int64_t K = p.kh * p.kw * p.c, F = p.f;
  int64_t off[kMR];
  for (int64_t k0 = 0; k0 < K; k0 += kMR) {
    const int mr = static_cast<int>(K - k0 < kMR ? K - k0 : kMR);
    // Offset of kernel entry k = (kh, kw, c) from a pixel's receptive-field origin in x.
    for (int i = 0; i < mr; ++i) {
      const int64_t k = k0 + i, c = k % p.c, kw = (k / p.c) % p.kw, kh = k / (p.c * p.kw);
      off[i] = (kh * p.dh * p.w + kw * p.dw) * p.c + c;
    }
    for (int64_t f0 = 0; f0 < F; f0 += 32) {
      const int64_t left = F - f0;
      if (left > 16)
        dw_tile_any<2>(mr, dw + k0 * F, x, g, off, p, n0, n1, f0, lanes(left), lanes(left - 16),
                       accumulate);
      else
        dw_tile_any<1>(mr, dw + k0 * F, x, g, off, p, n0, n1, f0, lanes(left), 0, accumulate);
    }
  }
}

}  // namespace nncore
