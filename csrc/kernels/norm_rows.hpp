// The ISA-specific inner loops of the normalization and embedding-gradient kernels (norm.hpp): one
// table per ISA (common/dispatch.hpp). This file is compiled once per ISA: norm_rows_generic.cpp
// (baseline flags), norm_rows_avx2.cpp and norm_rows_avx512.cpp each include it with
// NNCORE_NORM_ROWS_IMPL defined and name their table; batchnorm.cpp splits the work across threads
// and calls the active table. Everything defined here has internal linkage and no standard-library
// header is used, so the linker can never hand an AVX-512 copy of a function to another ISA.
//
// Each function is one thread's share: a block of columns over all rows, or one row. The order of
// every sum depends only on the data's shape, never on the thread count, so results are bitwise
// identical for any number of threads. Totals are double, of short float groups that vectorise: a
// column sum adds kNormGroup rows in float per group, a row sum adds 512 values on 4 vector chains
// per group (row_sum); the FMA builds fuse multiply-adds, so each ISA has its own bits (all within
// float32 rounding of the float64 reference).
#pragma once

#include <stdint.h>

namespace nncore {

constexpr int64_t kNormColBlock = 16;  // columns per block: one 64-byte line of a row
constexpr int64_t kNormRowGroup = 16;  // rows a column sum adds in float before its double total

struct NormRowKernels {
  // Columns [0, nb) (nb <= kNormColBlock) of x (m >= 1 rows, leading dimension ld): biased batch
  // moments by two passes (no E[x^2] - E[x]^2 cancellation): mean, var, inv = 1/sqrt(var + eps).
  void (*col_moments)(float* mean, float* var, float* inv, const float* x, int64_t m, int64_t ld,
                      int64_t nb, float eps);
  // Columns [0, nb) of dy, x: dbeta = sum_r dy, dgamma = sum_r dy * (x - mean) * inv, with mean
  // and inv per column (batch norm: mean[j], inv[j]).
  void (*col_grads)(float* dgamma, float* dbeta, const float* dy, const float* x,
                    const float* mean, const float* inv, int64_t m, int64_t ld, int64_t nb);
  // The same sums with mean and inv per row (layer norm: mean[r], inv[r]).
  void (*col_grads_row_stats)(float* dgamma, float* dbeta, const float* dy, const float* x,
                              const float* mean, const float* inv, int64_t m, int64_t ld,
                              int64_t nb);
  // One row of n values: y = x * scale + shift (the batch norm forward, folded per channel).
  void (*scale_shift)(float* y, const float* x, const float* scale, const float* shift,
                      int64_t n);
  // One row of the batch norm input gradient: dx = k * (fm * dy - dbeta - xhat * dgamma),
  // xhat = (x - mean) * inv, k = gamma * inv / fm per channel.
  void (*bn_dx)(float* dx, const float* dy, const float* x, const float* mean, const float* inv,
                const float* k, const float* dbeta, const float* dgamma, float fm, int64_t n);
  // One row of layer norm (n >= 1 values): its mean and inv, y = (x - mean) * inv * gamma + beta
  // (gamma / beta may be null).
  void (*ln_forward)(float* y, float* mean, float* inv, const float* x, const float* gamma,
                     const float* beta, int64_t n, float eps);
  // One row of the layer norm input gradient: g = dy * gamma, dx = inv * (g - mean(g) - xhat *
  // mean(g * xhat)) (gamma may be null).
  void (*ln_dx)(float* dx, const float* dy, const float* x, float mean, float inv,
                const float* gamma, int64_t n);
  // ln_dx, and the row's terms of the layer norm weight gradients added to n float partials:
  // gb[j] += dy[j], gg[j] += dy[j] * xhat[j] (the same terms col_grads_row_stats adds), so
  // dx and dgamma/dbeta take one pass over dy and x.
  void (*ln_dx_grads)(float* dx, float* gb, float* gg, const float* dy, const float* x,
                      float mean, float inv, const float* gamma, int64_t n);
  // dst += src, n values, in index order (the embedding gradient's scatter-add).
  void (*add)(float* dst, const float* src, int64_t n);
  const char* name;  // the ISA the file was compiled for
};

// One table per ISA, defined by norm_rows_<isa>.cpp.
extern const NormRowKernels kNormRowsGeneric;
#if defined(NNCORE_X86)
extern const NormRowKernels kNormRowsAvx2;
extern const NormRowKernels kNormRowsAvx512;
#endif

}  // namespace nncore

#if defined(NNCORE_NORM_ROWS_IMPL)

namespace nncore {
namespace {

constexpr int kLanes = 8;  // partial sums of a row reduction

// The 8 partial sums added in one fixed tree.
inline double lanes_total(const double* a) {
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

constexpr int64_t kNormGroup = kNormRowGroup;

// NB > 0: a full block known at compile time (the loops over it unroll into vectors); NB == 0: nb.
// Each column sum adds kNormGroup rows at a time in float (one vector chain per 8 columns), then
// that group's sum into the double total: the float work vectorises, the total stays double.
template <int64_t NB>
inline void col_moments_t(float* __restrict mean, float* __restrict var, float* __restrict inv,
                          const float* __restrict x, int64_t m, int64_t ld, int64_t nb_rt,
                          float eps) {
  const int64_t nb = NB ? NB : nb_rt;
  double s[kNormColBlock], q[kNormColBlock];
  float g[kNormColBlock], mu[kNormColBlock];
  for (int64_t j = 0; j < nb; ++j) s[j] = 0.0, q[j] = 0.0;
  for (int64_t r0 = 0; r0 < m; r0 += kNormGroup) {
    const int64_t r1 = m - r0 < kNormGroup ? m : r0 + kNormGroup;
    for (int64_t j = 0; j < nb; ++j) g[j] = 0.0f;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * ld;
      for (int64_t j = 0; j < nb; ++j) g[j] += xr[j];
    }
    for (int64_t j = 0; j < nb; ++j) s[j] += g[j];
  }
  for (int64_t j = 0; j < nb; ++j) s[j] /= double(m), mu[j] = float(s[j]);
  // Deviations from the float mean: sum (x - mu')^2 = sum (x - mu)^2 + m (mu - mu')^2, and
  // (mu - mu')^2 is below float32 rounding of mu squared.
  for (int64_t r0 = 0; r0 < m; r0 += kNormGroup) {
    const int64_t r1 = m - r0 < kNormGroup ? m : r0 + kNormGroup;
    for (int64_t j = 0; j < nb; ++j) g[j] = 0.0f;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * ld;
      for (int64_t j = 0; j < nb; ++j) {
        const float d = xr[j] - mu[j];
        g[j] += d * d;
      }
    }
    for (int64_t j = 0; j < nb; ++j) q[j] += g[j];
  }
  for (int64_t j = 0; j < nb; ++j) {
    const double v = q[j] / double(m);
    mean[j] = mu[j];
    var[j] = float(v);
    inv[j] = float(1.0 / __builtin_sqrt(v + double(eps)));
  }
}

void col_moments(float* mean, float* var, float* inv, const float* x, int64_t m, int64_t ld,
                 int64_t nb, float eps) {
  if (nb == kNormColBlock) col_moments_t<kNormColBlock>(mean, var, inv, x, m, ld, nb, eps);
  else col_moments_t<0>(mean, var, inv, x, m, ld, nb, eps);
}

template <int64_t NB, bool RowStats>
inline void col_grads_t(float* __restrict dgamma, float* __restrict dbeta,
                        const float* __restrict dy, const float* __restrict x,
                        const float* __restrict mean, const float* __restrict inv, int64_t m,
                        int64_t ld, int64_t nb_rt) {
  const int64_t nb = NB ? NB : nb_rt;
  double sb[kNormColBlock], sg[kNormColBlock];
  float gb[kNormColBlock], gg[kNormColBlock];
  for (int64_t j = 0; j < nb; ++j) sb[j] = 0.0, sg[j] = 0.0;
  for (int64_t r0 = 0; r0 < m; r0 += kNormGroup) {  // as col_moments_t: float groups, double total
    const int64_t r1 = m - r0 < kNormGroup ? m : r0 + kNormGroup;
    for (int64_t j = 0; j < nb; ++j) gb[j] = 0.0f, gg[j] = 0.0f;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * ld;
      const float* dr = dy + r * ld;
      for (int64_t j = 0; j < nb; ++j) {
        const float mu = RowStats ? mean[r] : mean[j];
        const float iv = RowStats ? inv[r] : inv[j];
        gb[j] += dr[j];
        gg[j] += dr[j] * ((xr[j] - mu) * iv);
      }
    }
    for (int64_t j = 0; j < nb; ++j) sb[j] += gb[j], sg[j] += gg[j];
  }
  for (int64_t j = 0; j < nb; ++j) dbeta[j] = float(sb[j]), dgamma[j] = float(sg[j]);
}

void col_grads(float* dgamma, float* dbeta, const float* dy, const float* x, const float* mean,
               const float* inv, int64_t m, int64_t ld, int64_t nb) {
  if (nb == kNormColBlock)
    col_grads_t<kNormColBlock, false>(dgamma, dbeta, dy, x, mean, inv, m, ld, nb);
  else col_grads_t<0, false>(dgamma, dbeta, dy, x, mean, inv, m, ld, nb);
}

void col_grads_row_stats(float* dgamma, float* dbeta, const float* dy, const float* x,
                         const float* mean, const float* inv, int64_t m, int64_t ld, int64_t nb) {
  if (nb == kNormColBlock)
    col_grads_t<kNormColBlock, true>(dgamma, dbeta, dy, x, mean, inv, m, ld, nb);
  else col_grads_t<0, true>(dgamma, dbeta, dy, x, mean, inv, m, ld, nb);
}

void scale_shift(float* __restrict y, const float* __restrict x, const float* __restrict scale,
                 const float* __restrict shift, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = x[j] * scale[j] + shift[j];
}

void bn_dx(float* __restrict dx, const float* __restrict dy, const float* __restrict x,
           const float* __restrict mean, const float* __restrict inv, const float* __restrict k,
           const float* __restrict dbeta, const float* __restrict dgamma, float fm, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float xh = (x[j] - mean[j]) * inv[j];
    dx[j] = k[j] * (fm * dy[j] - dbeta[j] - xh * dgamma[j]);
  }
}

// Row sums on explicit 8-float vectors (GCC/Clang vector extensions: one ymm with AVX2/AVX-512,
// two xmm in the generic build, where -Wpsabi's note on their ABI does not apply: everything here
// has internal linkage). Vector v of a row (values 8v .. 8v+7) goes to accumulator v mod 4
// (4 independent add chains) up to the last multiple of 32 values in a group of kNormGroup * 32;
// they are combined in a fixed tree ((a0+a1)+(a2+a3)), the group's remaining vectors added in
// order, and the result into 8 double lanes; the last n mod 8 values are summed in order in
// float, added after lanes_total. t8(j) is the float vector of terms j .. j+7, t1(j) one term.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8f __attribute__((vector_size(32)));

inline v8f load8(const float* p) {
  v8f v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

inline void store8(float* p, v8f v) { __builtin_memcpy(p, &v, sizeof v); }

template <class F8, class F1>
inline double row_sum(int64_t n, F8 t8, F1 t1) {
  constexpr int64_t kSpan = 32 * kNormGroup;
  double tot[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t n8 = n - n % 8;
  int64_t j = 0;
  while (j < n8) {
    const int64_t end = n8 - j < kSpan ? n8 : j + kSpan;
    const v8f zero = {0, 0, 0, 0, 0, 0, 0, 0};
    v8f a0 = zero, a1 = zero, a2 = zero, a3 = zero;
    for (; j + 32 <= end; j += 32) {
      const v8f t0 = t8(j), t1 = t8(j + 8), t2 = t8(j + 16), t3 = t8(j + 24);
      a0 += t0, a1 += t1, a2 += t2, a3 += t3;
    }
    v8f s = (a0 + a1) + (a2 + a3);
    for (; j + 8 <= end; j += 8) s += t8(j);
    for (int l = 0; l < kLanes; ++l) tot[l] += double(s[l]);
  }
  float t = 0.0f;
  for (; j < n; ++j) t += t1(j);
  return lanes_total(tot) + double(t);
}

template <bool Gamma, bool Beta>
inline void ln_forward_t(float* __restrict y, float* mean, float* inv, const float* __restrict x,
                         const float* __restrict gamma, const float* __restrict beta, int64_t n,
                         float eps) {
  const double mu = row_sum(n, [&](int64_t j) { return load8(x + j); },
                            [&](int64_t j) { return x[j]; }) / double(n);
  const float fmu = float(mu);
  // Deviations from the float mean (see col_moments_t).
  const double q = row_sum(n, [&](int64_t j) {
    const v8f d = load8(x + j) - fmu;
    return d * d;
  }, [&](int64_t j) {
    const float d = x[j] - fmu;
    return d * d;
  });
  const float iv = float(1.0 / __builtin_sqrt(q / double(n) + double(eps)));
  *mean = fmu, *inv = iv;
  for (int64_t j = 0; j < n; ++j) {
    float v = (x[j] - fmu) * iv;
    if (Gamma) v *= gamma[j];
    if (Beta) v += beta[j];
    y[j] = v;
  }
}

void ln_forward(float* y, float* mean, float* inv, const float* x, const float* gamma,
                const float* beta, int64_t n, float eps) {
  if (gamma && beta) ln_forward_t<true, true>(y, mean, inv, x, gamma, beta, n, eps);
  else if (gamma) ln_forward_t<true, false>(y, mean, inv, x, gamma, beta, n, eps);
  else if (beta) ln_forward_t<false, true>(y, mean, inv, x, gamma, beta, n, eps);
  else ln_forward_t<false, false>(y, mean, inv, x, gamma, beta, n, eps);
}

template <bool Gamma>
inline void ln_dx_t(float* __restrict dx, const float* __restrict dy, const float* __restrict x,
                    float mean, float inv, const float* __restrict gamma, int64_t n) {
  auto g8 = [&](int64_t j) { return Gamma ? load8(dy + j) * load8(gamma + j) : load8(dy + j); };
  auto g1 = [&](int64_t j) { return Gamma ? dy[j] * gamma[j] : dy[j]; };
  const float mg = float(row_sum(n, g8, g1) / double(n));
  const float mgx = float(row_sum(n, [&](int64_t j) { return g8(j) * ((load8(x + j) - mean) * inv); },
                                  [&](int64_t j) { return g1(j) * ((x[j] - mean) * inv); }) /
                          double(n));
  for (int64_t j = 0; j < n; ++j) {
    const float xh = (x[j] - mean) * inv;
    dx[j] = inv * (g1(j) - mg - xh * mgx);
  }
}

void ln_dx(float* dx, const float* dy, const float* x, float mean, float inv, const float* gamma,
           int64_t n) {
  if (gamma) ln_dx_t<true>(dx, dy, x, mean, inv, gamma, n);
  else ln_dx_t<false>(dx, dy, x, mean, inv, gamma, n);
}

void ln_dx_grads(float* __restrict dx, float* __restrict gb, float* __restrict gg,
                 const float* __restrict dy, const float* __restrict x, float mean, float inv,
                 const float* gamma, int64_t n) {
  ln_dx(dx, dy, x, mean, inv, gamma, n);
  for (int64_t j = 0; j < n; ++j) {
    gb[j] += dy[j];
    gg[j] += dy[j] * ((x[j] - mean) * inv);
  }
}

void add(float* __restrict dst, const float* __restrict src, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
}

}  // namespace

// NNCORE_NORM_ROWS_TABLE names this file's table (kNormRows<Isa>), NNCORE_NORM_ROWS_NAME its ISA.
const NormRowKernels NNCORE_NORM_ROWS_TABLE = {col_moments, col_grads,  col_grads_row_stats,
                                               scale_shift, bn_dx,      ln_forward,
                                               ln_dx,       ln_dx_grads, add,
                                               NNCORE_NORM_ROWS_NAME};

}  // namespace nncore

#endif  // NNCORE_NORM_ROWS_IMPL
