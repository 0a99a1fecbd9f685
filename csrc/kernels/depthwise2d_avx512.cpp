// AVX-512 depthwise row kernel: 16 channels per vector, masked tails (depthwise2d_impl.hpp).
#include <immintrin.h>

// GCC 12 reports the _mm512_undefined_ps inside _mm512_max_ps / _mm512_min_ps as
// maybe-uninitialized: a false positive (as in conv2d_direct_avx512.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/depthwise2d_impl.hpp"

namespace nncore {
namespace {

struct Avx512 {
  static constexpr int kWidth = 16;
  using vec = __m512;
  using mask = __mmask16;
  static vec zero() { return _mm512_setzero_ps(); }
  static vec set1(float v) { return _mm512_set1_ps(v); }
  static mask lanes(int64_t n) {
    return n >= 16 ? static_cast<__mmask16>(0xFFFF)
                   : (n <= 0 ? static_cast<__mmask16>(0)
                             : static_cast<__mmask16>((1u << n) - 1));
  }
  static vec load(mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static vec loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, vec v) { _mm512_storeu_ps(p, v); }
  static vec bcast(const float* p) { return _mm512_set1_ps(*p); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
  // VMAXPS / VMINPS return their second operand when either is NaN: NaN is kept.
  static vec relu(vec r) { return _mm512_max_ps(_mm512_setzero_ps(), r); }
  static vec min_cap(vec cap, vec r) { return _mm512_min_ps(cap, r); }
  static void store(mask m, float* p, vec v) { _mm512_mask_storeu_ps(p, m, v); }
  // The max pooling scan's step (pool2d_avx512.cpp): v replaces best where best is a number and
  // v is not <= best (so a NaN wins and then stays).
  using cmpmask = __mmask16;
  static cmpmask take(vec v, vec best) {
    return _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(best, best, _CMP_ORD_Q), v, best,
                                   _CMP_NLE_UQ);
  }
  static vec select(cmpmask m, vec v, vec best) { return _mm512_mask_mov_ps(best, m, v); }
};

void row_avx512(float* y, const float* x, const float* k, const float* b,
                const Depthwise2dParams& p, int64_t n, int64_t oh) {
  dw_row<Avx512>(y, x, k, b, p, n, oh);
}

void kgrad_avx512(float* part, const float* dy, const float* x, const Depthwise2dParams& p,
                 int64_t r0, int64_t r1) {
  dw_kgrad<Avx512>(part, dy, x, p, r0, r1);
}

void pool2_avx512(float* y, const float* s, int64_t ow, int64_t o, int64_t pw) {
  dw_pool2_row<Avx512>(y, s, ow, o, pw);
}

}  // namespace

const Depthwise2dKernels kDepthwise2dAvx512 = {row_avx512, kgrad_avx512, pool2_avx512,
                                               "avx512_16x4"};

}  // namespace nncore
