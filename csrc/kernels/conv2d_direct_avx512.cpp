// AVX-512 direct Conv2D: 12 x 32 register tile (24 zmm accumulators), masked filter tails.
// Per step: 2 vector loads and 12 broadcasts feed 24 FMAs. The algorithm is conv2d_direct_impl.hpp.
#include <immintrin.h>

// GCC 12 reports the _mm512_undefined_ps inside _mm512_max_ps as maybe-uninitialized: a false
// positive (the masked-off lanes it stands for are never selected).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/conv2d_direct_impl.hpp"
#include "kernels/conv2d_vector_impl.hpp"

namespace nncore {
namespace {

struct Avx512 {
  static constexpr int kWidth = 16, kMR = 12;
  using vec = __m512;
  using mask = __mmask16;
  static vec zero() { return _mm512_setzero_ps(); }
  static mask lanes(int64_t n) {
    return n >= 16 ? static_cast<mask>(0xFFFF)
                   : (n <= 0 ? static_cast<mask>(0) : static_cast<mask>((1u << n) - 1));
  }
  static vec load(mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static vec bcast(const float* p) { return _mm512_set1_ps(*p); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
  // max(0, r) with NaN kept, as the GEMM epilogue (MAXPS returns its second operand when either
  // is NaN).
  static vec relu(vec r) { return _mm512_max_ps(_mm512_setzero_ps(), r); }
  static void store(mask m, float* p, vec v) { _mm512_mask_storeu_ps(p, m, v); }
  // y > 0 ? g : 0
  static vec mask_positive(vec y, vec g) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), g);
  }
};

}  // namespace

void conv2d_direct_forward_avx512(float* y, const float* x, const float* w, const float* b,
                                  const Conv2dParams& p, int64_t q0, int64_t q1, int64_t row_lo,
                                  int64_t row_hi) {
  direct_forward<Avx512>(y, x, w, b, p, q0, q1, row_lo, row_hi);
}

void conv2d_direct_dw_avx512(float* dw, float* db, const float* x, const float* g,
                           const float* ymask, const Conv2dParams& p, int64_t n0, int64_t n1,
                           bool accumulate) {
  direct_dw<Avx512>(dw, db, x, g, ymask, p, n0, n1, accumulate);
}

const Conv2dKernels kConv2dAvx512 = {conv2d_direct_forward_avx512, conv2d_direct_dw_avx512,
                                       relu_mask, add_column_sums, 12, "direct_avx512_12x32",
                                       "direct_avx512_12x32"};

}  // namespace nncore
