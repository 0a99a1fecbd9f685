// Max and average pooling, NHWC: the innermost loop always runs over the C contiguous channels, so
// it vectorises; the window loops sit outside it.
//
// Parallel level (one per op): forwards split the N*OH output rows (rows are independent),
// backwards split the batch (windows of one image may overlap, so an image's dx belongs to one
// thread and is accumulated in the same order whatever the thread count). Threads claim runs of
// rows / images dynamically (parallel_units), so a core shared with another process does less.
#include "kernels/pool2d.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(NNCORE_X86)
#include <immintrin.h>
#endif

#include "common/cpu.hpp"

#include "common/parallel.hpp"
#include "common/parallel_units.hpp"

namespace nncore {

namespace {

constexpr double kMinWorkPerThread = 1.0e5;  // element reads per thread
constexpr int64_t kUnits = 64;               // dynamically claimed work units per call

// Window rows [h0, h1) and columns [w0, w1) of output (oh, ow), clipped to the input.
struct Window {
  int64_t h0, h1, w0, w1;
};

inline Window window(const Pool2dParams& p, int64_t oh, int64_t ow) {
  const int64_t hs = oh * p.sh - p.pt, ws = ow * p.sw - p.pl;
  return {std::max<int64_t>(hs, 0), std::min(hs + p.ph, p.h), std::max<int64_t>(ws, 0),
          std::min(ws + p.pw, p.w)};
}

// Maximum of one window, per channel: y, a (C) = value and cell (h*W + w) of the first maximum
// over the window's cells (row-major; a later cell wins only when strictly greater, so ties keep the
// first). A NaN wins over any number and then stays (y = NaN, a = the first NaN's cell), as
// PyTorch: a later cell v replaces the running best b when !(v <= b) && b == b. The running
// maximum of each group of channels stays in registers across the cells.
// SSE2 (baseline on x86-64) by hand: compilers keep the two-array select scalar.
inline void window_max(float* __restrict y, int32_t* __restrict a, const float* __restrict xn,
                       const Window& win, int64_t W, int64_t C) {
  const int32_t first = static_cast<int32_t>(win.h0 * W + win.w0);
  int64_t c = 0;
#if defined(__SSE2__)
  for (; c + 4 <= C; c += 4) {
    __m128 best = _mm_loadu_ps(xn + first * C + c);
    __m128i arg = _mm_set1_epi32(first);
    for (int64_t ih = win.h0; ih < win.h1; ++ih) {
      for (int64_t iw = win.w0; iw < win.w1; ++iw) {
        const int32_t cell = static_cast<int32_t>(ih * W + iw);
        const __m128 v = _mm_loadu_ps(xn + cell * C + c);
        const __m128 gtf = _mm_and_ps(_mm_cmpnle_ps(v, best), _mm_cmpord_ps(best, best));
        const __m128i gt = _mm_castps_si128(gtf);
        best = _mm_or_ps(_mm_and_ps(gtf, v), _mm_andnot_ps(gtf, best));
        arg = _mm_or_si128(_mm_and_si128(gt, _mm_set1_epi32(cell)), _mm_andnot_si128(gt, arg));
      }
    }
    _mm_storeu_ps(y + c, best);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a + c), arg);
  }
#endif
  for (; c < C; ++c) {
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
    a[c] = arg;
  }
}

#if defined(NNCORE_X86)
// The same for AVX-512 and AVX2 (selected at run time; `target` lets this file stay baseline).
__attribute__((target("avx512f"))) void window_max_avx512(float* __restrict y,
                                                          int32_t* __restrict a,
                                                          const float* __restrict xn,
                                                          const Window& win, int64_t W,
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
    _mm512_mask_storeu_epi32(a + c, m, arg);
  }
}

__attribute__((target("avx2"))) void window_max_avx2(float* __restrict y, int32_t* __restrict a,
                                                     const float* __restrict xn,
                                                     const Window& win, int64_t W, int64_t C) {
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
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a + c), arg);
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
    a[c] = arg;
  }
}
#endif

typedef void (*window_max_fn)(float* __restrict, int32_t* __restrict, const float* __restrict,
                              const Window&, int64_t, int64_t);

window_max_fn pick_window_max() {
#if defined(NNCORE_X86)
  if (active_isa() == Isa::avx512) return window_max_avx512;
  if (active_isa() == Isa::avx2) return window_max_avx2;
#endif
  return window_max;
}

}  // namespace

void maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dParams& p) {
  const int64_t C = p.c;
  if (p.n * p.oh == 0) return;  // empty batch: nothing to write
  const int nt = threads_for(static_cast<double>(p.n) * p.oh * p.ow * p.ph * p.pw * C,
                             kMinWorkPerThread, p.num_threads);
  const window_max_fn wmax = pick_window_max();
  const int64_t rows = p.n * p.oh, unit = unit_size(rows, 1, kUnits);
  parallel_units((rows + unit - 1) / unit, nt, [&](int, int64_t u) {
    for (int64_t row = u * unit; row < std::min(rows, (u + 1) * unit); ++row) {
      const int64_t n = row / p.oh, oh = row % p.oh;
      const float* xn = x + n * p.h * p.w * C;
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const Window win = window(p, oh, ow);
        float* yo = y + (row * p.ow + ow) * C;
        int32_t* ao = argmax + (row * p.ow + ow) * C;
        wmax(yo, ao, xn, win, p.w, C);
      }
    }
  });
}

bool maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Pool2dParams& p) {
  const int64_t C = p.c, plane = p.h * p.w, outs = p.oh * p.ow;
  if (p.n == 0) return true;  // empty batch
  const int nt = threads_for(static_cast<double>(p.n) * (outs + plane) * C, kMinWorkPerThread,
                             p.num_threads);
  std::atomic<bool> ok{true};
  const int64_t unit = unit_size(p.n, 1, kUnits);
  parallel_units((p.n + unit - 1) / unit, nt, [&](int, int64_t u) {
    bool good = true;
    for (int64_t n = u * unit; n < std::min(p.n, (u + 1) * unit); ++n) {
      float* dxn = dx + n * plane * C;
      std::memset(dxn, 0, sizeof(float) * plane * C);
      const float* dyn = dy + n * outs * C;
      const int32_t* an = argmax + n * outs * C;
      for (int64_t o = 0; o < outs; ++o) {
        const float* g = dyn + o * C;
        const int32_t* a = an + o * C;
        for (int64_t c = 0; c < C; ++c) {
          const int64_t cell = a[c];
          if (cell < 0 || cell >= plane) {
            good = false;
            continue;
          }
          dxn[cell * C + c] += g[c];
        }
      }
    }
    if (!good) ok.store(false);
  });
  return ok.load();
}

void avgpool2d_forward(float* y, const float* x, const Pool2dParams& p) {
  const int64_t C = p.c;
  if (p.n * p.oh == 0) return;  // empty batch
  const int nt = threads_for(static_cast<double>(p.n) * p.oh * p.ow * p.ph * p.pw * C,
                             kMinWorkPerThread, p.num_threads);
  const int64_t rows = p.n * p.oh, unit = unit_size(rows, 1, kUnits);
  parallel_units((rows + unit - 1) / unit, nt, [&](int, int64_t u) {
    for (int64_t row = u * unit; row < std::min(rows, (u + 1) * unit); ++row) {
      const int64_t n = row / p.oh, oh = row % p.oh;
      const float* xn = x + n * p.h * p.w * C;
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const Window win = window(p, oh, ow);
        float* yo = y + (row * p.ow + ow) * C;
        std::fill(yo, yo + C, 0.0f);
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) {
            const float* xc = xn + (ih * p.w + iw) * C;
            for (int64_t c = 0; c < C; ++c) yo[c] += xc[c];
          }
        // Keras/TF average over the cells inside the input only.
        const float inv = 1.0f / static_cast<float>((win.h1 - win.h0) * (win.w1 - win.w0));
        for (int64_t c = 0; c < C; ++c) yo[c] *= inv;
      }
    }
  });
}

void avgpool2d_backward(float* dx, const float* dy, const Pool2dParams& p) {
  const int64_t C = p.c, plane = p.h * p.w, outs = p.oh * p.ow;
  if (p.n == 0) return;  // empty batch
  const int nt = threads_for(static_cast<double>(p.n) * (outs * p.ph * p.pw + plane) * C,
                             kMinWorkPerThread, p.num_threads);
  const int64_t unit = unit_size(p.n, 1, kUnits);
  parallel_units((p.n + unit - 1) / unit, nt, [&](int, int64_t u) {
    for (int64_t n = u * unit; n < std::min(p.n, (u + 1) * unit); ++n) {
      float* dxn = dx + n * plane * C;
      std::memset(dxn, 0, sizeof(float) * plane * C);
      for (int64_t oh = 0; oh < p.oh; ++oh)
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const Window win = window(p, oh, ow);
          const float* g = dy + ((n * p.oh + oh) * p.ow + ow) * C;
          const float inv = 1.0f / static_cast<float>((win.h1 - win.h0) * (win.w1 - win.w0));
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) {
              float* d = dxn + (ih * p.w + iw) * C;
              for (int64_t c = 0; c < C; ++c) d[c] += g[c] * inv;
            }
        }
    }
  });
}

}  // namespace nncore
