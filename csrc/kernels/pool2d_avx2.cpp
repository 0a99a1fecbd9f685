// Max pooling window scan for AVX2: 8 channels per vector, a scalar tail (flags from the file name).
#include <immintrin.h>

#include "kernels/pool2d_kernels.hpp"

namespace nncore {
namespace {

template <bool kArg>
void window_max_avx2_t(float* __restrict y, int32_t* __restrict a, const float* __restrict xn,
                     const PoolWindow& win, int64_t W, int64_t C) {
  const int32_t first = static_cast<int32_t>(win.h0 * W + win.w0);
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) {
    __m256 best = _mm256_loadu_ps(xn + first * C + c);
    __m256i arg = _mm256_set1_epi32(first);
    for (int64_t ih = win.h0; ih < win.h1; ++ih) {
      for (int64_t iw = win.w0; iw < win.w1; ++iw) {
        const int32_t cell = static_cast<int32_t>(ih * W + iw);
        const __m256 v = _mm256_loadu_ps(xn + cell * C + c);
        const __m256 gt = _mm256_and_ps(_mm256_cmp_ps(v, best, _CMP_NLE_UQ),
                                        _mm256_cmp_ps(best, best, _CMP_ORD_Q));
        best = _mm256_blendv_ps(best, v, gt);
        arg = _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(arg), _mm256_castsi256_ps(_mm256_set1_epi32(cell)), gt));
      }
    }
    _mm256_storeu_ps(y + c, best);
    if (kArg) _mm256_storeu_si256(reinterpret_cast<__m256i*>(a + c), arg);
  }
  for (; c < C; ++c) {  // the last channels, scalar
    float best = xn[first * C + c];
    int32_t arg = first;
    for (int64_t ih = win.h0; ih < win.h1; ++ih) {
      for (int64_t iw = win.w0; iw < win.w1; ++iw) {
        const int32_t cell = static_cast<int32_t>(ih * W + iw);
        const float v = xn[cell * C + c];
        if (!(v <= best) && best == best) {
          best = v;
          arg = cell;
        }
      }
    }
    y[c] = best;
    if (kArg) a[c] = arg;
  }
}

void window_max_avx2(float* __restrict y, int32_t* __restrict a, const float* __restrict xn,
                     const PoolWindow& win, int64_t W, int64_t C) {
  window_max_avx2_t<true>(y, a, xn, win, W, C);
}

void window_max_values_avx2(float* __restrict y, int32_t* __restrict a, const float* __restrict xn,
                            const PoolWindow& win, int64_t W, int64_t C) {
  window_max_avx2_t<false>(y, a, xn, win, W, C);
}

}  // namespace

const Pool2dKernels kPool2dAvx2 = {window_max_avx2, window_max_values_avx2, "avx2_8", "generic"};

}  // namespace nncore
