// DepthwiseConv2D forward and backward, NHWC: the innermost loop runs over the contiguous channels
// (they are independent), the taps of a pixel sit outside it; taps outside the input are skipped.
//
// Parallel level (one per op): the N*OH output rows (forward, weight gradient) or the N*H input
// rows (input gradient), claimed dynamically (parallel_units). Every forward output and input
// gradient is one sum over its taps in a fixed order from zero; the weight gradient is summed per
// fixed chunk of rows, then over the chunks in order: any split gives the same bits.
#include "kernels/depthwise2d.hpp"

#include <algorithm>

#include "common/cpu.hpp"
#include "common/dispatch.hpp"
#include "common/parallel.hpp"
#include "common/parallel_units.hpp"
#include "common/scratch.hpp"
#include "kernels/pool2d_kernels.hpp"

namespace nncore {

namespace {

constexpr double kMinWorkPerThread = 1.0e5;  // multiply-adds per thread
constexpr int64_t kUnits = 64;               // dynamically claimed work units per call

inline float finish(float z, const Depthwise2dParams& p) {
  if (p.act == Act::relu) z = z < 0.0f ? 0.0f : z;  // NaN kept (the comparison is false)
  if (p.has_cap) z = z > p.cap ? p.cap : z;         // likewise
  return z;
}

// Portable row, any depth multiplier: output channel o = c*M + m reads input channel o / M. The
// channels go in blocks of kBlock accumulators (on the stack), which the compiler vectorises.
void row_generic(float* y, const float* x, const float* k, const float* b,
                 const Depthwise2dParams& p, int64_t n, int64_t oh) {
  constexpr int64_t kBlock = 64;
  const int64_t C = p.c, M = p.m, O = C * M;
  const float* xn = x + n * p.h * p.w * C;
  const int64_t ih0 = oh * p.sh - p.pt;
  int64_t i0 = 0, i1 = p.kh;
  while (i0 < i1 && ih0 + i0 * p.dh < 0) ++i0;
  while (i1 > i0 && ih0 + (i1 - 1) * p.dh >= p.h) --i1;
  float acc[kBlock];
  for (int64_t ow = 0; ow < p.ow; ++ow) {
    const int64_t iw0 = ow * p.sw - p.pl;
    int64_t j0 = 0, j1 = p.kw;
    while (j0 < j1 && iw0 + j0 * p.dw < 0) ++j0;
    while (j1 > j0 && iw0 + (j1 - 1) * p.dw >= p.w) --j1;
    float* yo = y + ow * O;
    for (int64_t o0 = 0; o0 < O; o0 += kBlock) {
      const int64_t nb = std::min(kBlock, O - o0);
      for (int64_t o = 0; o < nb; ++o) acc[o] = 0.0f;
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) {
          const float* xs = xn + ((ih0 + i * p.dh) * p.w + iw0 + j * p.dw) * C;
          const float* ks = k + (i * p.kw + j) * O + o0;
          if (M == 1) {
            const float* xc = xs + o0;
            for (int64_t o = 0; o < nb; ++o) acc[o] += xc[o] * ks[o];
          } else if (C == 1) {
            const float xv = xs[0];
            for (int64_t o = 0; o < nb; ++o) acc[o] += xv * ks[o];
          } else {
            for (int64_t o = 0; o < nb; ++o) acc[o] += xs[(o0 + o) / M] * ks[o];
          }
        }
      for (int64_t o = 0; o < nb; ++o) yo[o0 + o] = finish(b ? acc[o] + b[o0 + o] : acc[o], p);
    }
  }
}

// Portable partial dk/db of rows [r0, r1), any depth multiplier (depthwise2d_kgrad_fn): the same
// summation pattern as dw_dot (4 interleaved sums over the pixels, combined, then the tail).
void kgrad_generic(float* part, const float* dy, const float* x, const Depthwise2dParams& p,
                   int64_t r0, int64_t r1) {
  const int64_t C = p.c, M = p.m, O = C * M, taps = p.kh * p.kw;
  float* pb = part + taps * O;
  for (int64_t e = 0; e < (taps + 1) * O; ++e) part[e] = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = r / p.oh, oh = r % p.oh;
    const float* dyr = dy + r * p.ow * O;
    const float* xn = x + n * p.h * p.w * C;
    const int64_t ih0 = oh * p.sh - p.pt;
    for (int64_t t = -1; t < taps; ++t) {  // t = -1: the bias
      const int64_t i = t < 0 ? 0 : t / p.kw, j = t < 0 ? 0 : t % p.kw;
      const int64_t ih = ih0 + i * p.dh, off = j * p.dw - p.pl;
      if (t >= 0 && (ih < 0 || ih >= p.h)) continue;
      int64_t lo = 0, hi = p.ow;
      if (t >= 0) {
        lo = off >= 0 ? 0 : (-off + p.sw - 1) / p.sw;
        const int64_t last = p.w - 1 - off;
        hi = last < 0 ? 0 : std::min(p.ow, last / p.sw + 1);
      }
      if (lo >= hi) continue;
      float* dst = t < 0 ? pb : part + t * O;
      const float* xr = xn + ih * p.w * C;
      for (int64_t o = 0; o < O; ++o) {
        const int64_t c = o / M;
        auto term = [&](int64_t ow) {
          const float d = dyr[ow * O + o];
          return t < 0 ? d : xr[(ow * p.sw + off) * C + c] * d;
        };
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int64_t ow = lo;
        for (; ow + 4 <= hi; ow += 4) {
          s0 += term(ow);
          s1 += term(ow + 1);
          s2 += term(ow + 2);
          s3 += term(ow + 3);
        }
        s0 = (s0 + s1) + (s2 + s3);
        for (; ow < hi; ++ow) s0 += term(ow);
        dst[o] += s0;
      }
    }
  }
}

// dx row (n, ih), any strides and depth multiplier: per input pixel, its taps (i, j) whose output
// pixel ((ih + pt - i*dh) / sh, (iw + pl - j*dw) / sw) exists, in row-major order; with M > 1 the
// M products of a channel are summed first.
void dx_row_generic(float* dx, const float* dy, const float* k, const Depthwise2dParams& p,
                    int64_t n, int64_t ih) {
  const int64_t C = p.c, M = p.m, O = C * M;
  for (int64_t iw = 0; iw < p.w; ++iw) {
    float* d = dx + ((n * p.h + ih) * p.w + iw) * C;
    for (int64_t c = 0; c < C; ++c) d[c] = 0.0f;
    for (int64_t i = 0; i < p.kh; ++i) {
      const int64_t th = ih + p.pt - i * p.dh;
      if (th < 0 || th % p.sh != 0 || th / p.sh >= p.oh) continue;
      for (int64_t j = 0; j < p.kw; ++j) {
        const int64_t tw = iw + p.pl - j * p.dw;
        if (tw < 0 || tw % p.sw != 0 || tw / p.sw >= p.ow) continue;
        const float* g = dy + ((n * p.oh + th / p.sh) * p.ow + tw / p.sw) * O;
        const float* kk = k + (i * p.kw + j) * O;
        if (M == 1) {
          for (int64_t c = 0; c < C; ++c) d[c] += g[c] * kk[c];
        } else {
          for (int64_t c = 0; c < C; ++c) {
            float s = 0.0f;
            for (int64_t m = 0; m < M; ++m) s += g[c * M + m] * kk[c * M + m];
            d[c] += s;
          }
        }
      }
    }
  }
}

const Depthwise2dKernels kDepthwise2dGeneric = {row_generic, kgrad_generic, nullptr, "generic"};
#if defined(NNCORE_X86)
constexpr PerIsa<Depthwise2dKernels> kDepthwise2d = {&kDepthwise2dGeneric, &kDepthwise2dAvx2,
                                                     &kDepthwise2dAvx512};
#else
constexpr PerIsa<Depthwise2dKernels> kDepthwise2d = {&kDepthwise2dGeneric, nullptr, nullptr};
#endif
NNCORE_KERNEL_FAMILY(depthwise2d, kDepthwise2d, name);

}  // namespace

void depthwise2d_forward(float* y, const float* x, const float* k, const float* b,
                         const Depthwise2dParams& p) {
  const int64_t rows = p.n * p.oh;
  if (rows == 0 || p.ow == 0) return;
  const int nt = threads_for(static_cast<double>(rows) * p.ow * p.c * p.m * p.kh * p.kw,
                             kMinWorkPerThread, p.num_threads);
  // The vector rows take depth multiplier 1 (the common case) and one input channel (a Conv2D
  // on a grayscale image); others run the portable row.
  const depthwise2d_row_fn row = p.m == 1 || p.c == 1 ? kDepthwise2d.active().row : row_generic;
  const int64_t unit = unit_size(rows, 1, kUnits);
  parallel_units((rows + unit - 1) / unit, nt, [&](int, int64_t u) {
    for (int64_t r = u * unit; r < std::min(rows, (u + 1) * unit); ++r)
      row(y + r * p.ow * p.c * p.m, x, k, b, p, r / p.oh, r % p.oh);
  });
}

void depthwise2d_forward_maxpool2(float* y, const float* x, const float* k, const float* b,
                                  const Depthwise2dParams& p) {
  const int64_t ph = p.oh / 2, pw = p.ow / 2, O = p.c * p.m, rows = p.n * ph;
  if (rows == 0 || pw == 0) return;
  const int nt = threads_for(static_cast<double>(rows) * 2 * p.ow * O * p.kh * p.kw,
                             kMinWorkPerThread, p.num_threads);
  const depthwise2d_row_fn row = p.m == 1 || p.c == 1 ? kDepthwise2d.active().row : row_generic;
  const window_max_fn wmax = active_window_max_values();
  const depthwise2d_pool2_fn pool2 = kDepthwise2d.active().pool2;
  const int64_t unit = unit_size(rows, 1, kUnits);
  // A worker's scratch may fail to grow (std::bad_alloc): caught in the region, rethrown after.
  parallel_units_guarded((rows + unit - 1) / unit, nt, [&](int, int64_t u) {
    // Two convolution rows (2, OW, O): a small image the window scan reads as it reads x.
    float* const s = thread_scratch(ScratchSlot::misc).floats(static_cast<size_t>(2 * p.ow * O));
    for (int64_t r = u * unit; r < std::min(rows, (u + 1) * unit); ++r) {
      const int64_t n = r / ph, q = r % ph;
      row(s, x, k, b, p, n, 2 * q);
      row(s + p.ow * O, x, k, b, p, n, 2 * q + 1);
      float* yr = y + r * pw * O;
      if (pool2) {
        pool2(yr, s, p.ow, O, pw);
      } else {
        for (int64_t j = 0; j < pw; ++j)
          wmax(yr + j * O, nullptr, s, PoolWindow{0, 2, 2 * j, 2 * j + 2}, p.ow, O);
      }
    }
  });
}

void depthwise2d_backward(float* dx, float* dk, float* db, const float* dy, const float* x,
                          const float* k, const Depthwise2dParams& p) {
  const int64_t O = p.c * p.m, taps = p.kh * p.kw, rows = p.n * p.oh;
  const double work = static_cast<double>(rows) * p.ow * O * taps;
  const int nt = threads_for(work, kMinWorkPerThread, p.num_threads);
  const Depthwise2dKernels& isa = kDepthwise2d.active();
  // Scratch before the parallel regions: the flipped kernel, then one partial (dk, db) per chunk.
  const int64_t unit = unit_size(rows, 1, kUnits);
  const int64_t chunks = rows > 0 ? (rows + unit - 1) / unit : 0;
  const int64_t part = (taps + 1) * O;
  float* buf = thread_scratch(ScratchSlot::misc).floats(static_cast<size_t>(taps * O + chunks * part));
  float* kflip = buf;
  float* parts = buf + taps * O;
  if (dx) {
    if (p.sh == 1 && p.sw == 1 && p.m == 1) {
      // dx = the forward of dy with the flipped kernel: dx[ih] = sum_i dy[ih + pt - i*dh] k[i], and
      // with i' = KH-1-i that is dy[ih - pt' + i'*dh] kflip[i'] for pt' = (KH-1)*dh - pt (>= 0 for
      // 'same' and 'valid'); stride 1, the same dilation, output H x W.
      for (int64_t t = 0; t < taps; ++t)
        for (int64_t o = 0; o < O; ++o) kflip[(taps - 1 - t) * O + o] = k[t * O + o];
      Depthwise2dParams q = p;
      q.h = p.oh, q.w = p.ow, q.oh = p.h, q.ow = p.w;
      q.pt = (p.kh - 1) * p.dh - p.pt, q.pl = (p.kw - 1) * p.dw - p.pl;
      q.act = Act::none, q.has_cap = false;
      depthwise2d_forward(dx, dy, kflip, nullptr, q);
    } else {
      const int64_t xrows = p.n * p.h;
      const int64_t xunit = unit_size(xrows, 1, kUnits);
      const int xnt = threads_for(static_cast<double>(xrows) * p.w * O * taps, kMinWorkPerThread,
                                  p.num_threads);
      parallel_units((xrows + xunit - 1) / xunit, xnt, [&](int, int64_t u) {
        for (int64_t r = u * xunit; r < std::min(xrows, (u + 1) * xunit); ++r)
          dx_row_generic(dx, dy, k, p, r / p.h, r % p.h);
      });
    }
  }
  const depthwise2d_kgrad_fn kgrad = p.m == 1 || p.c == 1 ? isa.kgrad : kgrad_generic;
  parallel_units(chunks, nt, [&](int, int64_t u) {
    kgrad(parts + u * part, dy, x, p, u * unit, std::min(rows, (u + 1) * unit));
  });
  // The chunks in order, element by element (disjoint element ranges per unit).
  const int64_t eunit = unit_size(part, 64, 16);
  parallel_units((part + eunit - 1) / eunit, chunks * part >= 1 << 16 ? nt : 1, [&](int, int64_t u) {
    const int64_t e0 = u * eunit, e1 = std::min(part, (u + 1) * eunit);
    for (int64_t e = e0; e < e1; ++e) {
      float s = 0.0f;
      for (int64_t c = 0; c < chunks; ++c) s += parts[c * part + e];
      if (e < taps * O) dk[e] = s;
      else if (db) db[e - taps * O] = s;
    }
  });
}

void depthwise2d_backward_ref(float* dx, float* dk, float* db, const float* dy, const float* x,
                              const float* k, const Depthwise2dParams& p) {
  const int64_t C = p.c, M = p.m, O = C * M;
  // One tap at a time over every output pixel, float64 sums per element of dk, db; dx summed in
  // float64 per input element through a second pass of the same tap loop.
  for (int64_t i = 0; i < p.kh; ++i)
    for (int64_t j = 0; j < p.kw; ++j)
      for (int64_t o = 0; o < O; ++o) {
        double s = 0.0;
        for (int64_t n = 0; n < p.n; ++n)
          for (int64_t oh = 0; oh < p.oh; ++oh)
            for (int64_t ow = 0; ow < p.ow; ++ow) {
              const int64_t ih = oh * p.sh - p.pt + i * p.dh, iw = ow * p.sw - p.pl + j * p.dw;
              if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
              s += static_cast<double>(x[((n * p.h + ih) * p.w + iw) * C + o / M]) *
                   dy[((n * p.oh + oh) * p.ow + ow) * O + o];
            }
        dk[(i * p.kw + j) * O + o] = static_cast<float>(s);
      }
  if (db)
    for (int64_t o = 0; o < O; ++o) {
      double s = 0.0;
      for (int64_t r = 0; r < p.n * p.oh * p.ow; ++r) s += dy[r * O + o];
      db[o] = static_cast<float>(s);
    }
  if (!dx) return;
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t ih = 0; ih < p.h; ++ih)
      for (int64_t iw = 0; iw < p.w; ++iw)
        for (int64_t c = 0; c < C; ++c) {
          double s = 0.0;
          for (int64_t oh = 0; oh < p.oh; ++oh)
            for (int64_t ow = 0; ow < p.ow; ++ow) {
              const int64_t i = ih - oh * p.sh + p.pt, j = iw - ow * p.sw + p.pl;
              if (i < 0 || j < 0 || i % p.dh != 0 || j % p.dw != 0) continue;
              if (i / p.dh >= p.kh || j / p.dw >= p.kw) continue;
              for (int64_t m = 0; m < M; ++m)
                s += static_cast<double>(dy[((n * p.oh + oh) * p.ow + ow) * O + c * M + m]) *
                     k[((i / p.dh) * p.kw + j / p.dw) * O + c * M + m];
            }
          dx[((n * p.h + ih) * p.w + iw) * C + c] = static_cast<float>(s);
        }
}

void depthwise2d_forward_ref(float* y, const float* x, const float* k, const float* b,
                             const Depthwise2dParams& p) {
  const int64_t C = p.c, M = p.m;
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t oh = 0; oh < p.oh; ++oh)
      for (int64_t ow = 0; ow < p.ow; ++ow)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t m = 0; m < M; ++m) {
            float s = 0.0f;
            for (int64_t i = 0; i < p.kh; ++i)
              for (int64_t j = 0; j < p.kw; ++j) {
                const int64_t ih = oh * p.sh - p.pt + i * p.dh, iw = ow * p.sw - p.pl + j * p.dw;
                if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
                s += x[((n * p.h + ih) * p.w + iw) * C + c] * k[((i * p.kw + j) * C + c) * M + m];
              }
            const int64_t o = c * M + m;
            y[((n * p.oh + oh) * p.ow + ow) * C * M + o] = finish(b ? s + b[o] : s, p);
          }
}

}  // namespace nncore
