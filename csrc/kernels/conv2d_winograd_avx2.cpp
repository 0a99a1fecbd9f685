// AVX2 Winograd F(2x2, 3x3) transforms: 8 channels (or filters) per vector, masked tails. The
// algorithm is conv2d_winograd_impl.hpp.
#include <immintrin.h>

#include "kernels/conv2d_winograd_impl.hpp"

namespace nncore {
namespace {

struct Avx2 {
  static constexpr int kWidth = 8;
  using vec = __m256;
  using mask = __m256i;  // lane i active when its sign bit is set
  static vec zero() { return _mm256_setzero_ps(); }
  static vec set1(float s) { return _mm256_set1_ps(s); }
  static mask lanes(int64_t n) {
    const int k = n >= 8 ? 8 : (n <= 0 ? 0 : static_cast<int>(n));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static vec load(mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  static void store(mask m, float* p, vec v) { _mm256_maskstore_ps(p, m, v); }
  static vec loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, vec v) { _mm256_storeu_ps(p, v); }
  static vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
  static vec sub(vec a, vec b) { return _mm256_sub_ps(a, b); }
  static vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
  // max(0, r) with NaN kept (MAXPS returns its second operand when either is NaN).
  static vec relu(vec r) { return _mm256_max_ps(_mm256_setzero_ps(), r); }
};

void input_avx2(float* v, int64_t ve, const float* x, const Conv2dParams& p, int64_t t0,
                int64_t count, const float* zeros) {
  wino_input<Avx2>(v, ve, x, p, t0, count, zeros);
}
void output_avx2(float* y, const float* m, int64_t me, const float* b, const Conv2dParams& p,
                 int64_t t0, int64_t count) {
  wino_output<Avx2>(y, m, me, b, p, t0, count);
}
void weights_avx2(float* u, const float* w, int64_t c, int64_t f) { wino_weights<Avx2>(u, w, c, f); }

void grad_avx2(float* mg, int64_t me, const float* g, const Conv2dParams& p, int64_t t0,
               int64_t count) {
  wino_grad<Avx2>(mg, me, g, p, t0, count);
}
void dw_back_avx2(float* dw, const float* z, int64_t c, int64_t f, bool accumulate) {
  wino_dw_back<Avx2>(dw, z, c, f, accumulate);
}

}  // namespace

const WinogradKernels kWinogradAvx2 = {input_avx2, output_avx2, weights_avx2, "winograd_f2x3_avx2",
                                       grad_avx2,  dw_back_avx2};

}  // namespace nncore
