// AVX2+FMA direct Conv2D: 6 x 16 register tile (12 ymm accumulators, as the AVX2 GEMM kernel),
// masked loads/stores for filter tails. The algorithm is conv2d_direct_impl.hpp.
#include <immintrin.h>

#include "kernels/conv2d_direct_impl.hpp"
#include "kernels/conv2d_vector_impl.hpp"

namespace nncore {
namespace {

struct Avx2 {
  static constexpr int kWidth = 8, kMR = 6;
  using vec = __m256;
  using mask = __m256i;  // lane i active when its sign bit is set
  static vec zero() { return _mm256_setzero_ps(); }
  static mask lanes(int64_t n) {
    const int k = n >= 8 ? 8 : (n <= 0 ? 0 : static_cast<int>(n));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static vec load(mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  static vec bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
  // max(0, r) with NaN kept (MAXPS returns its second operand when either is NaN).
  static vec relu(vec r) { return _mm256_max_ps(_mm256_setzero_ps(), r); }
  static void store(mask m, float* p, vec v) { _mm256_maskstore_ps(p, m, v); }
  static vec mask_positive(vec y, vec g) {  // y > 0 ? g : 0
    return _mm256_and_ps(g, _mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ));
  }
};

}  // namespace

void conv2d_direct_forward_avx2(float* y, const float* x, const float* w, const float* b,
                                const Conv2dParams& p, int64_t q0, int64_t q1, int64_t row_lo,
                                int64_t row_hi) {
  direct_forward<Avx2>(y, x, w, b, p, q0, q1, row_lo, row_hi);
}

void conv2d_direct_dw_avx2(float* dw, float* db, const float* x, const float* g,
                           const float* ymask, const Conv2dParams& p, int64_t n0, int64_t n1,
                           bool accumulate) {
  direct_dw<Avx2>(dw, db, x, g, ymask, p, n0, n1, accumulate);
}

const Conv2dKernels kConv2dAvx2 = {conv2d_direct_forward_avx2, conv2d_direct_dw_avx2,
                                       relu_mask, add_column_sums, 6, "direct_avx2_6x16",
                                       "direct_avx2_6x16"};

}  // namespace nncore
