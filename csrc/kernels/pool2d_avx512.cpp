// Max pooling window scan for AVX-512: 16 channels per vector, masked tail (flags from the file name).
#include <immintrin.h>

#include "kernels/pool2d_kernels.hpp"

namespace nncore {
namespace {

template <bool kArg>
void window_max_avx512_t(float* __restrict y,
                                                          int32_t* __restrict a,
                                                          const float* __restrict xn,
                                                          const PoolWindow& win, int64_t W,
                                                          int64_t C) {
  const int32_t first = static_cast<int32_t>(win.h0 * W + win.w0);
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = C - c >= 16 ? static_cast<__mmask16>(0xFFFF)
                                    : static_cast<__mmask16>((1u << (C - c)) - 1);
    __m512 best = _mm512_maskz_loadu_ps(m, xn + first * C + c);
    __m512i arg = _mm512_set1_epi32(first);
    for (int64_t ih = win.h0; ih < win.h1; ++ih) {
      for (int64_t iw = win.w0; iw < win.w1; ++iw) {
        const int32_t cell = static_cast<int32_t>(ih * W + iw);
        const __m512 v = _mm512_maskz_loadu_ps(m, xn + cell * C + c);
        const __mmask16 gt = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(best, best, _CMP_ORD_Q),
                                                     v, best, _CMP_NLE_UQ);
        best = _mm512_mask_mov_ps(best, gt, v);
        arg = _mm512_mask_mov_epi32(arg, gt, _mm512_set1_epi32(cell));
      }
    }
    _mm512_mask_storeu_ps(y + c, m, best);
    if (kArg) _mm512_mask_storeu_epi32(a + c, m, arg);
  }
}

void window_max_avx512(float* __restrict y, int32_t* __restrict a, const float* __restrict xn,
                       const PoolWindow& win, int64_t W, int64_t C) {
  window_max_avx512_t<true>(y, a, xn, win, W, C);
}

void window_max_values_avx512(float* __restrict y, int32_t* __restrict a,
                              const float* __restrict xn, const PoolWindow& win, int64_t W,
                              int64_t C) {
  window_max_avx512_t<false>(y, a, xn, win, W, C);
}

}  // namespace

const Pool2dKernels kPool2dAvx512 = {window_max_avx512, window_max_values_avx512, "avx512_16",
                                     "generic"};

}  // namespace nncore
