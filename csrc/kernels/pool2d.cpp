// Max and average pooling, NHWC: the innermost loop always runs over the C contiguous channels, so
// it vectorises; the window loops sit outside it.
//
// Parallel level (one per op): forwards split the N*OH output rows (rows are independent),
// backwards split the batch (windows of one image may overlap, so an image's dx belongs to one
// thread and is accumulated in the same order whatever the thread count).
#include "kernels/pool2d.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/parallel.hpp"

namespace nncore {

namespace {

constexpr double kMinWorkPerThread = 1.0e5;  // element reads per thread

// Window rows [h0, h1) and columns [w0, w1) of output (oh, ow), clipped to the input.
struct Window {
  int64_t h0, h1, w0, w1;
};

inline Window window(const Pool2dParams& p, int64_t oh, int64_t ow) {
  const int64_t hs = oh * p.sh - p.pt, ws = ow * p.sw - p.pl;
  return {std::max<int64_t>(hs, 0), std::min(hs + p.ph, p.h), std::max<int64_t>(ws, 0),
          std::min(ws + p.pw, p.w)};
}

// Running maximum of one window: y, a (C) take x's value and `cell` where x > y (strictly, so ties
// keep the first). SSE2 (baseline on x86-64) by hand: compilers keep the two-array select scalar.
inline void max_update(float* __restrict y, int32_t* __restrict a, const float* __restrict x,
                       int32_t cell, int64_t C) {
  int64_t c = 0;
#if defined(__SSE2__)
  const __m128i vcell = _mm_set1_epi32(cell);
  for (; c + 4 <= C; c += 4) {
    const __m128 v = _mm_loadu_ps(x + c), m = _mm_loadu_ps(y + c);
    const __m128 gtf = _mm_cmpgt_ps(v, m);
    const __m128i gt = _mm_castps_si128(gtf);
    const __m128i old = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + c));
    _mm_storeu_ps(y + c, _mm_or_ps(_mm_and_ps(gtf, v), _mm_andnot_ps(gtf, m)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a + c),
                     _mm_or_si128(_mm_and_si128(gt, vcell), _mm_andnot_si128(gt, old)));
  }
#endif
  for (; c < C; ++c) {
    if (x[c] > y[c]) {
      y[c] = x[c];
      a[c] = cell;
    }
  }
}

}  // namespace

void maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dParams& p) {
  const int64_t C = p.c;
  const int nt = threads_for(static_cast<double>(p.n) * p.oh * p.ow * p.ph * p.pw * C,
                             kMinWorkPerThread, p.num_threads);
  parallel_for(p.n * p.oh, nt, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t n = row / p.oh, oh = row % p.oh;
      const float* xn = x + n * p.h * p.w * C;
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const Window win = window(p, oh, ow);
        float* yo = y + (row * p.ow + ow) * C;
        int32_t* ao = argmax + (row * p.ow + ow) * C;
        // The first cell seeds the maximum; later cells replace it only when strictly greater.
        const int32_t first = static_cast<int32_t>(win.h0 * p.w + win.w0);
        std::memcpy(yo, xn + first * C, sizeof(float) * C);
        for (int64_t c = 0; c < C; ++c) ao[c] = first;
        for (int64_t ih = win.h0; ih < win.h1; ++ih) {
          for (int64_t iw = win.w0; iw < win.w1; ++iw) {
            const int32_t cell = static_cast<int32_t>(ih * p.w + iw);
            max_update(yo, ao, xn + cell * C, cell, C);
          }
        }
      }
    }
  });
}

bool maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Pool2dParams& p) {
  const int64_t C = p.c, plane = p.h * p.w, outs = p.oh * p.ow;
  const int nt = threads_for(static_cast<double>(p.n) * (outs + plane) * C, kMinWorkPerThread,
                             p.num_threads);
  std::atomic<bool> ok{true};
  parallel_for(p.n, nt, 1, [&](int64_t lo, int64_t hi) {
    bool good = true;
    for (int64_t n = lo; n < hi; ++n) {
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
  const int nt = threads_for(static_cast<double>(p.n) * p.oh * p.ow * p.ph * p.pw * C,
                             kMinWorkPerThread, p.num_threads);
  parallel_for(p.n * p.oh, nt, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
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
  const int nt = threads_for(static_cast<double>(p.n) * (outs * p.ph * p.pw + plane) * C,
                             kMinWorkPerThread, p.num_threads);
  parallel_for(p.n, nt, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
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
