// AVX2+FMA depthwise row kernel: 8 channels per vector, masked tails (depthwise2d_impl.hpp).
#include <immintrin.h>

#include "kernels/depthwise2d_impl.hpp"

namespace nncore {
namespace {

struct Avx2 {
  static constexpr int kWidth = 8;
  using vec = __m256;
  using mask = __m256i;  // lane i active when its sign bit is set
  static vec zero() { return _mm256_setzero_ps(); }
  static vec set1(float v) { return _mm256_set1_ps(v); }
  static mask lanes(int64_t n) {
    const int k = n >= 8 ? 8 : (n <= 0 ? 0 : static_cast<int>(n));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static vec load(mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  static vec loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, vec v) { _mm256_storeu_ps(p, v); }
  static vec bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
  // MAXPS / MINPS return their second operand when either is NaN: NaN is kept.
  static vec relu(vec r) { return _mm256_max_ps(_mm256_setzero_ps(), r); }
  static vec min_cap(vec cap, vec r) { return _mm256_min_ps(cap, r); }
  static void store(mask m, float* p, vec v) { _mm256_maskstore_ps(p, m, v); }
  // The max pooling scan's step (pool2d_avx2.cpp): v replaces best where best is a number and
  // v is not <= best (so a NaN wins and then stays).
  using cmpmask = __m256;
  static cmpmask take(vec v, vec best) {
    return _mm256_and_ps(_mm256_cmp_ps(v, best, _CMP_NLE_UQ), _mm256_cmp_ps(best, best, _CMP_ORD_Q));
  }
  static vec select(cmpmask m, vec v, vec best) { return _mm256_blendv_ps(best, v, m); }
};

void row_avx2(float* y, const float* x, const float* k, const float* b, const Depthwise2dParams& p,
              int64_t n, int64_t oh) {
  dw_row<Avx2>(y, x, k, b, p, n, oh);
}

void kgrad_avx2(float* part, const float* dy, const float* x, const Depthwise2dParams& p,
                 int64_t r0, int64_t r1) {
  dw_kgrad<Avx2>(part, dy, x, p, r0, r1);
}

void pool2_avx2(float* y, const float* s, int64_t ow, int64_t o, int64_t pw) {
  dw_pool2_row<Avx2>(y, s, ow, o, pw);
}

}  // namespace

const Depthwise2dKernels kDepthwise2dAvx2 = {row_avx2, kgrad_avx2, pool2_avx2, "avx2_8x4"};

}  // namespace nncore
