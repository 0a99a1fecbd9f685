// AVX-512 micro-kernel, 14 x 32: 28 zmm accumulators, 2 for the B row, A broadcast from memory.
// Per k step 2 loads and 14 broadcasts feed 28 independent FMAs, enough to keep both 512-bit FMA
// pipes busy through their latency. The fully unrolled constant-index loops keep acc in registers.
#include <immintrin.h>

#include "kernels/gemm_ukr.hpp"

namespace nncore {

void sgemm_ukr_avx512_14x32(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                            float alpha, float beta) {
  __m512 acc[14][2];
#pragma GCC unroll 14
  for (int i = 0; i < 14; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();

  for (int64_t p = 0; p < k; ++p) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
    _mm_prefetch(reinterpret_cast<const char*>(b + 16 * 32), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < 14; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += 14;
    b += 32;
  }

  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 14
    for (int i = 0; i < 14; ++i) {
      _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc[i][0]));
      _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc[i][1]));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
    for (int i = 0; i < 14; ++i) {
      float* ci = c + i * ldc;
      _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), _mm512_mul_ps(va, acc[i][0])));
      _mm512_storeu_ps(ci + 16,
                       _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), _mm512_mul_ps(va, acc[i][1])));
    }
  }
}

namespace {

// The first M (< 14) rows of the 14 x 32 tile with exactly the arithmetic of the full kernel (one
// FMA chain per element in k order, same store formula), so a row gets the same bits wherever it
// falls. The bottom edge of every RNN step (batch 32 = 14 + 14 + 4) runs here instead of a padded
// 14-row tile.
template <int M>
void rows_kernel(int64_t k, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                 float beta) {
  __m512 acc[M][2];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += 14;
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

}  // namespace

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

}  // namespace nncore
