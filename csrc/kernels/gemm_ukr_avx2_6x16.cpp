// AVX2+FMA micro-kernel, 6 x 16: 12 ymm accumulators, 2 for the B row, 1 for the A broadcast.
#include <immintrin.h>

#include "kernels/gemm_ukr.hpp"

namespace nncore {

void sgemm_ukr_avx2_6x16(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                         float alpha, float beta) {
  __m256 acc[6][2];
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();

  for (int64_t p = 0; p < k; ++p) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += 6;
    b += 16;
  }

  const __m256 va = _mm256_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc[i][0]));
      _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc[i][1]));
    }
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      float* ci = c + i * ldc;
      _mm256_storeu_ps(ci, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), _mm256_mul_ps(va, acc[i][0])));
      _mm256_storeu_ps(ci + 8,
                       _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), _mm256_mul_ps(va, acc[i][1])));
    }
  }
}

}  // namespace nncore

namespace nncore {

namespace {

// Q panels of 16 columns: 2*Q accumulators, one FMA chain per element in k order (the tile
// kernel's arithmetic and store formula, so a row gives the same bits on either path).
template <int Q>
inline __attribute__((always_inline)) void gemv_panels16(int64_t k, const float* a, int64_t inca,
                                                         const float* b, float* c, float alpha,
                                                         float beta) {
  __m256 acc[Q][2];
#pragma GCC unroll 4
  for (int q = 0; q < Q; ++q) acc[q][0] = acc[q][1] = _mm256_setzero_ps();
  const int64_t stride = 16 * k;  // between panels
  for (int64_t p = 0; p < k; ++p) {
    const __m256 ap = _mm256_broadcast_ss(a + p * inca);
#pragma GCC unroll 4
    for (int q = 0; q < Q; ++q) {
      acc[q][0] = _mm256_fmadd_ps(ap, _mm256_load_ps(b + q * stride + p * 16), acc[q][0]);
      acc[q][1] = _mm256_fmadd_ps(ap, _mm256_load_ps(b + q * stride + p * 16 + 8), acc[q][1]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha);
#pragma GCC unroll 4
  for (int q = 0; q < Q; ++q) {
    float* cq = c + 16 * q;
    if (beta == 0.0f) {
      _mm256_storeu_ps(cq, _mm256_mul_ps(va, acc[q][0]));
      _mm256_storeu_ps(cq + 8, _mm256_mul_ps(va, acc[q][1]));
    } else {
      const __m256 vb = _mm256_set1_ps(beta);
      _mm256_storeu_ps(cq, _mm256_fmadd_ps(vb, _mm256_loadu_ps(cq), _mm256_mul_ps(va, acc[q][0])));
      _mm256_storeu_ps(cq + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(cq + 8),
                                               _mm256_mul_ps(va, acc[q][1])));
    }
  }
}

}  // namespace

void sgemv_packed_avx2_16(int64_t k, int64_t panels, const float* a, int64_t inca,
                          const float* b, float* c, float alpha, float beta) {
  int64_t j = 0;
  for (; j + 4 <= panels; j += 4) gemv_panels16<4>(k, a, inca, b + j * 16 * k, c + 16 * j, alpha, beta);
  for (; j < panels; ++j) gemv_panels16<1>(k, a, inca, b + j * 16 * k, c + 16 * j, alpha, beta);
}

// 32 columns at a time in 4 accumulators (B rows streamed once), then 8-column masked tails.
void sgemv_rowb_avx2(int64_t k, int64_t n, const float* a, int64_t inca, const float* b,
                     int64_t ldb, float* c, float alpha, float beta) {
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    __m256 acc[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) acc[q] = _mm256_setzero_ps();
    const float* bp = b + j;
    for (int64_t p = 0; p < k; ++p, bp += ldb) {
      const __m256 ap = _mm256_broadcast_ss(a + p * inca);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) acc[q] = _mm256_fmadd_ps(ap, _mm256_loadu_ps(bp + 8 * q), acc[q]);
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      __m256 r = _mm256_mul_ps(va, acc[q]);
      if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + j + 8 * q), r);
      _mm256_storeu_ps(c + j + 8 * q, r);
    }
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (; j < n; j += 8) {
    const int w = n - j < 8 ? static_cast<int>(n - j) : 8;
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(w), lane);
    __m256 acc = _mm256_setzero_ps();
    const float* bp = b + j;
    for (int64_t p = 0; p < k; ++p, bp += ldb)
      acc = _mm256_fmadd_ps(_mm256_broadcast_ss(a + p * inca), _mm256_maskload_ps(bp, mask), acc);
    __m256 r = _mm256_mul_ps(va, acc);
    if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c + j, mask), r);
    _mm256_maskstore_ps(c + j, mask, r);
  }
}

}  // namespace nncore
