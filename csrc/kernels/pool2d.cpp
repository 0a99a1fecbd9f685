// Max and average pooling, NHWC: the innermost loop always runs over the C contiguous channels, so
// it vectorises; the window loops sit outside it.
//
// Parallel level (one per op): forwards split the N*OH output rows (rows are independent),
// backwards split the batch (windows of one image may overlap, so an image's dx belongs to one
// thread and is accumulated in the same order whatever the thread count). Threads claim runs of
// rows / images dynamically (parallel_units), so a core shared with another process does less.
#include "kernels/pool2d.hpp"
#include "kernels/pool2d_kernels.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "common/cpu.hpp"
#include "common/dispatch.hpp"
#include "common/parallel.hpp"
#include "common/parallel_units.hpp"

namespace nncore {

namespace {

constexpr double kMinWorkPerThread = 1.0e5;  // element reads per thread
constexpr int64_t kUnits = 64;               // dynamically claimed work units per call

using Window = PoolWindow;

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
template <bool kArg>
inline void window_max_t(float* __restrict y, int32_t* __restrict a, const float* __restrict xn,
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
    if (kArg) _mm_storeu_si128(reinterpret_cast<__m128i*>(a + c), arg);
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
    if (kArg) a[c] = arg;
  }
}

void window_max(float* __restrict y, int32_t* __restrict a, const float* __restrict xn,
                const Window& win, int64_t W, int64_t C) {
  window_max_t<true>(y, a, xn, win, W, C);
}
void window_max_values(float* __restrict y, int32_t* __restrict a, const float* __restrict xn,
                       const Window& win, int64_t W, int64_t C) {
  window_max_t<false>(y, a, xn, win, W, C);
}

// Portable table: the SSE2 window maximum above; average pooling is baseline code on every ISA
// (the compiler vectorises its channel loops; measured memory-bound).
#if defined(__SSE2__)
const Pool2dKernels kPool2dGeneric = {window_max, window_max_values, "sse2_4", "generic"};
#else
const Pool2dKernels kPool2dGeneric = {window_max, window_max_values, "scalar", "generic"};
#endif
#if defined(NNCORE_X86)
constexpr PerIsa<Pool2dKernels> kPool2d = {&kPool2dGeneric, &kPool2dAvx2, &kPool2dAvx512};
#else
constexpr PerIsa<Pool2dKernels> kPool2d = {&kPool2dGeneric, nullptr, nullptr};
#endif
NNCORE_KERNEL_FAMILY(maxpool2d, kPool2d, max_name);
NNCORE_KERNEL_FAMILY(avgpool2d, kPool2d, avg_name);

}  // namespace

window_max_fn active_window_max_values() { return kPool2d.active().window_max_values; }

void maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dParams& p) {
  const int64_t C = p.c;
  if (p.n * p.oh == 0) return;  // empty batch: nothing to write
  const int nt = threads_for(static_cast<double>(p.n) * p.oh * p.ow * p.ph * p.pw * C,
                             kMinWorkPerThread, p.num_threads);
  // Without argmax (inference), the value-only scan: the same maxima, bit for bit.
  const window_max_fn wmax =
      argmax ? kPool2d.active().window_max : kPool2d.active().window_max_values;
  const int64_t rows = p.n * p.oh, unit = unit_size(rows, 1, kUnits);
  parallel_units((rows + unit - 1) / unit, nt, [&](int, int64_t u) {
    for (int64_t row = u * unit; row < std::min(rows, (u + 1) * unit); ++row) {
      const int64_t n = row / p.oh, oh = row % p.oh;
      const float* xn = x + n * p.h * p.w * C;
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const Window win = window(p, oh, ow);
        float* yo = y + (row * p.ow + ow) * C;
        int32_t* ao = argmax ? argmax + (row * p.ow + ow) * C : nullptr;
        wmax(yo, ao, xn, win, p.w, C);
      }
    }
  });
}

namespace {

// One image of maxpool2d_backward_windows: dx written in one pass, window by window, each cell
// dx = (argmax == cell) ? 0 + dy : 0 (the general path's 0 + dy, so -0.0 stays +0.0 as there),
// cells outside every window zeroed. Returns false when some argmax is not inside its own window
// (each output's argmax matches at most one of its window's cells, so fewer than outs * C matches
// means some did not); the caller then redoes the image the general way.
bool maxpool_backward_image_windows(float* __restrict dxn, const float* __restrict dyn,
                                    const int32_t* __restrict an, const Pool2dParams& p) {
  const int64_t C = p.c, W = p.w;
  int64_t matches = 0;
  int64_t row_done = 0;  // dx rows [0, row_done) written
  for (int64_t oh = 0; oh < p.oh; ++oh) {
    const Window rows = window(p, oh, 0);
    if (rows.h0 > row_done)
      std::memset(dxn + row_done * W * C, 0, sizeof(float) * (rows.h0 - row_done) * W * C);
    for (int64_t ih = rows.h0; ih < rows.h1; ++ih) {
      float* const dr = dxn + ih * W * C;
      int64_t col_done = 0;
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const Window win = window(p, oh, ow);
        if (win.w0 > col_done)
          std::memset(dr + col_done * C, 0, sizeof(float) * (win.w0 - col_done) * C);
        const float* const g = dyn + (oh * p.ow + ow) * C;
        const int32_t* const a = an + (oh * p.ow + ow) * C;
        for (int64_t iw = win.w0; iw < win.w1; ++iw) {
          const int32_t cell = static_cast<int32_t>(ih * W + iw);
          float* const d = dr + iw * C;
          int64_t c = 0;
#if defined(__SSE2__)
          // SSE2 by hand (baseline on x86-64): the compiler left the select and count scalar.
          const __m128i cellv = _mm_set1_epi32(cell);
          const __m128 zero = _mm_setzero_ps();
          __m128i hits = _mm_setzero_si128();
          for (; c + 4 <= C; c += 4) {
            const __m128i m = _mm_cmpeq_epi32(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + c)), cellv);
            const __m128 v = _mm_add_ps(zero, _mm_loadu_ps(g + c));
            _mm_storeu_ps(d + c, _mm_and_ps(_mm_castsi128_ps(m), v));
            hits = _mm_sub_epi32(hits, m);  // m is -1 where it matches
          }
          alignas(16) int32_t h4[4];
          _mm_store_si128(reinterpret_cast<__m128i*>(h4), hits);
          matches += static_cast<int64_t>(h4[0]) + h4[1] + h4[2] + h4[3];
#endif
          for (; c < C; ++c) {
            const bool m = a[c] == cell;
            d[c] = m ? 0.0f + g[c] : 0.0f;
            matches += m;
          }
        }
        col_done = std::max(col_done, win.w1);
      }
      if (col_done < W) std::memset(dr + col_done * C, 0, sizeof(float) * (W - col_done) * C);
    }
    row_done = std::max(row_done, rows.h1);
  }
  if (row_done < p.h)
    std::memset(dxn + row_done * W * C, 0, sizeof(float) * (p.h - row_done) * W * C);
  return matches == p.oh * p.ow * C;
}

// The general path's work for one image: zeros, then every dy added at its argmax cell.
bool maxpool_backward_image_scatter(float* dxn, const float* dyn, const int32_t* an,
                                    const Pool2dParams& p) {
  const int64_t C = p.c, plane = p.h * p.w, outs = p.oh * p.ow;
  std::memset(dxn, 0, sizeof(float) * plane * C);
  bool good = true;
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
  return good;
}

}  // namespace

bool maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Pool2dParams& p) {
  const int64_t C = p.c, plane = p.h * p.w, outs = p.oh * p.ow;
  if (p.n == 0) return true;  // empty batch
  const int nt = threads_for(static_cast<double>(p.n) * (outs + plane) * C, kMinWorkPerThread,
                             p.num_threads);
  std::atomic<bool> ok{true};
  const int64_t unit = unit_size(p.n, 1, kUnits);
  parallel_units((p.n + unit - 1) / unit, nt, [&](int, int64_t u) {
    for (int64_t n = u * unit; n < std::min(p.n, (u + 1) * unit); ++n)
      if (!maxpool_backward_image_scatter(dx + n * plane * C, dy + n * outs * C,
                                          argmax + n * outs * C, p))
        ok.store(false);
  });
  return ok.load();
}

bool maxpool2d_backward_windows(float* dx, const float* dy, const int32_t* argmax,
                                const Pool2dParams& p) {
  // Overlapping windows (a cell may collect several dy): the general scatter.
  if (p.sh < p.ph || p.sw < p.pw) return maxpool2d_backward(dx, dy, argmax, p);
  const int64_t C = p.c, plane = p.h * p.w, outs = p.oh * p.ow;
  if (p.n == 0) return true;
  const int nt = threads_for(static_cast<double>(p.n) * (outs + plane) * C, kMinWorkPerThread,
                             p.num_threads);
  std::atomic<bool> ok{true};
  const int64_t unit = unit_size(p.n, 1, kUnits);
  parallel_units((p.n + unit - 1) / unit, nt, [&](int, int64_t u) {
    for (int64_t n = u * unit; n < std::min(p.n, (u + 1) * unit); ++n) {
      float* dxn = dx + n * plane * C;
      const float* dyn = dy + n * outs * C;
      const int32_t* an = argmax + n * outs * C;
      if (!maxpool_backward_image_windows(dxn, dyn, an, p) &&
          !maxpool_backward_image_scatter(dxn, dyn, an, p))
        ok.store(false);
    }
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
