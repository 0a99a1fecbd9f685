// AVX-512 micro-kernels, 14 x 32: 28 zmm accumulators, 2 for the B row, A broadcast from memory.
// Per k step 2 loads and 14 broadcasts feed 28 independent FMAs, enough to keep both 512-bit FMA
// pipes busy through their latency. The fully unrolled constant-index loops keep acc in registers.
//
// Three entry points share one body: the packed tile, the tile reading row-major A in place, and
// the bottom edge with M < 14 rows. Each element is one FMA chain in k order and the same store
// formula in all three, so a row gets the same bits whichever entry computes it.
#include <immintrin.h>

#include "kernels/gemm_ukr.hpp"

namespace nncore {

namespace {

// A element (i, p): packed a[p * 14 + i], or in place a[i * lda + p].
template <int M, bool kPackedA>
inline __attribute__((always_inline)) void ukr_body(int64_t k, const float* a, int64_t lda,
                                                    const float* b, float* c, int64_t ldc,
                                                    float alpha, float beta) {
  __m512 acc[M][2];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();

  for (int64_t p = 0; p < k; ++p) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
    _mm_prefetch(reinterpret_cast<const char*>(b + 16 * 32), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      const __m512 ai = _mm512_set1_ps(kPackedA ? a[i] : a[i * lda]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kPackedA ? 14 : 1;
    b += 32;
  }

  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
      _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      float* ci = c + i * ldc;
      _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), _mm512_mul_ps(va, acc[i][0])));
      _mm512_storeu_ps(ci + 16,
                       _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), _mm512_mul_ps(va, acc[i][1])));
    }
  }
}

template <int M>
void rows_kernel(int64_t k, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                 float beta) {
  ukr_body<M, true>(k, a, 14, b, c, ldc, alpha, beta);
}

}  // namespace

void sgemm_ukr_avx512_14x32(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                            float alpha, float beta) {
  ukr_body<14, true>(k, a, 14, b, c, ldc, alpha, beta);
}

void sgemm_ukr_avx512_14x32_rowa(int64_t k, const float* a, int64_t lda, const float* b, float* c,
                                 int64_t ldc, float alpha, float beta) {
  ukr_body<14, false>(k, a, lda, b, c, ldc, alpha, beta);
}

// The bottom edge of a tile column (batch 32 = 14 + 14 + 4 rows) without padding to 14 rows.
void sgemm_ukr_avx512_14x32_rows(int64_t m, int64_t k, const float* a, const float* b, float* c,
                                 int64_t ldc, float alpha, float beta) {
  switch (m) {
    case 1: return rows_kernel<1>(k, a, b, c, ldc, alpha, beta);
    case 2: return rows_kernel<2>(k, a, b, c, ldc, alpha, beta);
    case 3: return rows_kernel<3>(k, a, b, c, ldc, alpha, beta);
    case 4: return rows_kernel<4>(k, a, b, c, ldc, alpha, beta);
    case 5: return rows_kernel<5>(k, a, b, c, ldc, alpha, beta);
    case 6: return rows_kernel<6>(k, a, b, c, ldc, alpha, beta);
    case 7: return rows_kernel<7>(k, a, b, c, ldc, alpha, beta);
    case 8: return rows_kernel<8>(k, a, b, c, ldc, alpha, beta);
    case 9: return rows_kernel<9>(k, a, b, c, ldc, alpha, beta);
    case 10: return rows_kernel<10>(k, a, b, c, ldc, alpha, beta);
    case 11: return rows_kernel<11>(k, a, b, c, ldc, alpha, beta);
    case 12: return rows_kernel<12>(k, a, b, c, ldc, alpha, beta);
    case 13: return rows_kernel<13>(k, a, b, c, ldc, alpha, beta);
    default: return sgemm_ukr_avx512_14x32(k, a, b, c, ldc, alpha, beta);
  }
}

namespace {

// Q panels of 32 columns: 2*Q accumulators.
template <int Q>
inline __attribute__((always_inline)) void gemv_panels(int64_t k, const float* a, int64_t inca,
                                                       const float* b, float* c, float alpha,
                                                       float beta) {
  __m512 acc[Q][2];
#pragma GCC unroll 4
  for (int q = 0; q < Q; ++q) acc[q][0] = acc[q][1] = _mm512_setzero_ps();
  const int64_t stride = 32 * k;  // between panels
  for (int64_t p = 0; p < k; ++p) {
    const __m512 ap = _mm512_set1_ps(a[p * inca]);
#pragma GCC unroll 4
    for (int q = 0; q < Q; ++q) {
      acc[q][0] = _mm512_fmadd_ps(ap, _mm512_load_ps(b + q * stride + p * 32), acc[q][0]);
      acc[q][1] = _mm512_fmadd_ps(ap, _mm512_load_ps(b + q * stride + p * 32 + 16), acc[q][1]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 4
  for (int q = 0; q < Q; ++q) {
    float* cq = c + 32 * q;
    if (beta == 0.0f) {
      _mm512_storeu_ps(cq, _mm512_mul_ps(va, acc[q][0]));
      _mm512_storeu_ps(cq + 16, _mm512_mul_ps(va, acc[q][1]));
    } else {
      const __m512 vb = _mm512_set1_ps(beta);
      _mm512_storeu_ps(cq, _mm512_fmadd_ps(vb, _mm512_loadu_ps(cq), _mm512_mul_ps(va, acc[q][0])));
      _mm512_storeu_ps(cq + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(cq + 16),
                                                _mm512_mul_ps(va, acc[q][1])));
    }
  }
}

}  // namespace

void sgemv_packed_avx512_32(int64_t k, int64_t panels, const float* a, int64_t inca,
                            const float* b, float* c, float alpha, float beta) {
  int64_t j = 0;
  for (; j + 4 <= panels; j += 4) gemv_panels<4>(k, a, inca, b + j * 32 * k, c + 32 * j, alpha, beta);
  for (; j < panels; ++j) gemv_panels<1>(k, a, inca, b + j * 32 * k, c + 32 * j, alpha, beta);
}

// 64 columns at a time in 4 accumulators (B rows streamed once), then 16-column masked tails.
void sgemv_rowb_avx512(int64_t k, int64_t n, const float* a, int64_t inca, const float* b,
                       int64_t ldb, float* c, float alpha, float beta) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) {
    __m512 acc[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) acc[q] = _mm512_setzero_ps();
    const float* bp = b + j;
    for (int64_t p = 0; p < k; ++p, bp += ldb) {
      const __m512 ap = _mm512_set1_ps(a[p * inca]);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) acc[q] = _mm512_fmadd_ps(ap, _mm512_loadu_ps(bp + 16 * q), acc[q]);
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      __m512 r = _mm512_mul_ps(va, acc[q]);
      if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + j + 16 * q), r);
      _mm512_storeu_ps(c + j + 16 * q, r);
    }
  }
  for (; j < n; j += 16) {
    const int64_t w = n - j < 16 ? n - j : 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << w) - 1u);
    __m512 acc = _mm512_setzero_ps();
    const float* bp = b + j;
    for (int64_t p = 0; p < k; ++p, bp += ldb)
      acc = _mm512_fmadd_ps(_mm512_set1_ps(a[p * inca]), _mm512_maskz_loadu_ps(mask, bp), acc);
    __m512 r = _mm512_mul_ps(va, acc);
    if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, c + j), r);
    _mm512_mask_storeu_ps(c + j, mask, r);
  }
}

}  // namespace nncore
