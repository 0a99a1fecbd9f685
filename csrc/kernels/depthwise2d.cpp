// DepthwiseConv2D forward, NHWC: the innermost loop runs over the contiguous channels (they are
// independent), the taps of a pixel sit outside it; taps outside the input are skipped.
//
// Parallel level (one per op): the N*OH output rows, claimed dynamically (parallel_units). Every
// output is one sum over its taps in row-major order from zero, so any split gives the same bits.
#include "kernels/depthwise2d.hpp"

#include <algorithm>

#include "common/cpu.hpp"
#include "common/dispatch.hpp"
#include "common/parallel.hpp"
#include "common/parallel_units.hpp"

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
    float* yo = y + ((n * p.oh + oh) * p.ow + ow) * O;
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

const Depthwise2dKernels kDepthwise2dGeneric = {row_generic, "generic"};
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
      row(y, x, k, b, p, r / p.oh, r % p.oh);
  });
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
