// The Conv1D Winograd transforms' inner loops (conv1d.hpp), written once here and compiled per ISA
// (conv1d_generic.cpp, conv1d_avx2.cpp, conv1d_avx512.cpp: flags from the file name), so the
// vector width and FMA are the CPU's. Each output element is one fixed sum of 8 products in point
// order: bitwise the same for any thread count and block size.
#pragma once

#include <cstdint>

#include "kernels/conv1d.hpp"

namespace nncore {

constexpr int kConv1dPoints = 8;  // points per tile: m + K - 1

// The Toom-Cook matrices of F(m, r), m = 8 - r + 1 (conv1d.cpp builds them).
struct Conv1dTransform {
  int m = 0, r = 0;
  float bt[kConv1dPoints][kConv1dPoints] = {};    // V = Bᵀ d
  float g[kConv1dPoints][kConv1dMaxK] = {};       // U = G g
  float at[kConv1dPoints][kConv1dPoints] = {};    // y = Aᵀ M (rows [0, m))
};

struct Conv1dTiles {
  int64_t m, per_sample, total;  // tile width, tiles per sample, tiles in the batch
};

struct Conv1dKernels {
  // v[e * ve + i * C + c] = (Bᵀ d)[e] of tile t0 + i; tile (s, j) reads rows j*m - pl + [0, 8)
  // of sample s, zero outside [0, L) (read from `zeros`, at least C zero floats).
  void (*input)(float* v, int64_t ve, const float* x, const Conv1dParams& p,
                const Conv1dTransform& tr, const Conv1dTiles& tl, int64_t t0, int64_t count,
                const float* zeros);
  // y rows of tiles [t0, t0 + count) = act(Aᵀ M + b), mb[e * me + i * F + f].
  void (*output)(float* y, const float* mb, int64_t me, const float* b, const Conv1dParams& p,
                 const Conv1dTransform& tr, const Conv1dTiles& tl, int64_t t0, int64_t count);
  const char* name;
};

extern const Conv1dKernels kConv1dGeneric;
#if defined(NNCORE_X86)
extern const Conv1dKernels kConv1dAvx2;
extern const Conv1dKernels kConv1dAvx512;
#endif

}  // namespace nncore

#if defined(NNCORE_CONV1D_IMPL)
namespace nncore {
namespace {

// out[c] = Σ_q coef[q] * rows[q][c], q = 0..7 in order.
inline void combine8(float* __restrict out, const float* const* rows, const float* coef,
                     int64_t len) {
  const float *__restrict r0 = rows[0], *__restrict r1 = rows[1], *__restrict r2 = rows[2],
              *__restrict r3 = rows[3], *__restrict r4 = rows[4], *__restrict r5 = rows[5],
              *__restrict r6 = rows[6], *__restrict r7 = rows[7];
  const float a0 = coef[0], a1 = coef[1], a2 = coef[2], a3 = coef[3], a4 = coef[4],
              a5 = coef[5], a6 = coef[6], a7 = coef[7];
  for (int64_t c = 0; c < len; ++c) {
    float s = a0 * r0[c];
    s += a1 * r1[c];
    s += a2 * r2[c];
    s += a3 * r3[c];
    s += a4 * r4[c];
    s += a5 * r5[c];
    s += a6 * r6[c];
    s += a7 * r7[c];
    out[c] = s;
  }
}

void conv1d_input(float* v, int64_t ve, const float* x, const Conv1dParams& p,
                  const Conv1dTransform& tr, const Conv1dTiles& tl, int64_t t0, int64_t count,
                  const float* zeros) {
  for (int64_t i = 0; i < count; ++i) {
    const int64_t s = (t0 + i) / tl.per_sample, j = (t0 + i) % tl.per_sample;
    const int64_t start = j * tl.m - p.pl;
    const float* rows[kConv1dPoints];
    for (int q = 0; q < kConv1dPoints; ++q) {
      const int64_t pos = start + q;
      rows[q] = pos >= 0 && pos < p.l ? x + (s * p.l + pos) * p.c : zeros;
    }
    for (int e = 0; e < kConv1dPoints; ++e) combine8(v + e * ve + i * p.c, rows, tr.bt[e], p.c);
  }
}

void conv1d_output(float* y, const float* mb, int64_t me, const float* b, const Conv1dParams& p,
                   const Conv1dTransform& tr, const Conv1dTiles& tl, int64_t t0, int64_t count) {
  const int64_t F = p.f;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t s = (t0 + i) / tl.per_sample, j = (t0 + i) % tl.per_sample;
    const float* rows[kConv1dPoints];
    for (int e = 0; e < kConv1dPoints; ++e) rows[e] = mb + e * me + i * F;
    for (int64_t o = 0; o < tl.m; ++o) {
      const int64_t t = j * tl.m + o;
      if (t >= p.ol) break;
      float* __restrict yr = y + (s * p.ol + t) * F;
      combine8(yr, rows, tr.at[o], F);
      if (b)
        for (int64_t f = 0; f < F; ++f) yr[f] += b[f];
      if (p.act == Act::relu)
        for (int64_t f = 0; f < F; ++f) yr[f] = yr[f] > 0.0f ? yr[f] : 0.0f;
    }
  }
}

}  // namespace

const Conv1dKernels NNCORE_CONV1D_TABLE = {conv1d_input, conv1d_output, NNCORE_CONV1D_NAME};

}  // namespace nncore
#endif
