// AVX-512 micro-kernels, 14 x 32: 28 zmm accumulators, 2 for the B row, A broadcast from memory.
// Per k step 2 loads and 14 broadcasts feed 28 independent FMAs, enough to keep both 512-bit FMA
// pipes busy through their latency. The fully unrolled constant-index loops keep acc in registers.
#include <immintrin.h>

#include "kernels/gemm_ukr.hpp"

namespace nncore {

namespace {

// One kernel body for both A layouts: A element (i, p) is a[i * rs + p * cs].
template <bool kPackedA>
inline __attribute__((always_inline)) void ukr_14x32(int64_t k, const float* a, int64_t lda,
                                                     const float* b, float* c, int64_t ldc,
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

}  // namespace

void sgemm_ukr_avx512_14x32(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                            float alpha, float beta) {
  ukr_14x32<true>(k, a, 14, b, c, ldc, alpha, beta);
}

void sgemm_ukr_avx512_14x32_rowa(int64_t k, const float* a, int64_t lda, const float* b, float* c,
                                 int64_t ldc, float alpha, float beta) {
  ukr_14x32<false>(k, a, lda, b, c, ldc, alpha, beta);
}

}  // namespace nncore
