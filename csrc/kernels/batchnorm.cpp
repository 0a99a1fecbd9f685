// Batch and layer normalization, fused forward and backward, and the embedding gradient (see
// norm.hpp). This file splits the work across threads; the loops themselves are per-ISA
// (norm_rows.hpp, one table per ISA). Parallel level: column blocks (batch norm statistics, the
// embedding columns, the layer norm dgamma/dbeta totals of the row groups' partials), rows (the
// elementwise passes, layer norm rows) or groups of kNormRowGroup rows (the layer norm backward);
// no sum is ever split across threads.
#include <cstring>
#include <vector>

#include "common/dispatch.hpp"
#include "common/parallel.hpp"
#include "kernels/norm.hpp"
#include "kernels/norm_rows.hpp"

namespace nncore {

namespace {

#if defined(NNCORE_X86)
constexpr PerIsa<NormRowKernels> kNormRows = {&kNormRowsGeneric, &kNormRowsAvx2,
                                              &kNormRowsAvx512};
#else
constexpr PerIsa<NormRowKernels> kNormRows = {&kNormRowsGeneric, nullptr, nullptr};
#endif
NNCORE_KERNEL_FAMILY(batchnorm, kNormRows, name);
NNCORE_KERNEL_FAMILY(layernorm, kNormRows, name);
NNCORE_KERNEL_FAMILY(embedding_backward, kNormRows, name);

int threads_rows(int64_t m, int64_t k) { return threads_for(double(m) * double(k), 32768.0); }

// f(b, nb) for the column blocks [b, b + nb) of [0, n), the blocks split across nt threads.
template <class F>
void for_col_blocks(int64_t n, int nt, F&& f) {
  parallel_for(n, nt, kNormColBlock, [&](int64_t c0, int64_t c1) {
    for (int64_t b = c0; b < c1; b += kNormColBlock)
      f(b, (c1 - b) < kNormColBlock ? (c1 - b) : kNormColBlock);
  });
}

// f(r) for every row r of [0, m), the rows split across nt threads.
template <class F>
void for_rows(int64_t m, int nt, F&& f) {
  parallel_for(m, nt, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) f(r);
  });
}

}  // namespace

void batchnorm_forward_train(float* y, float* mean, float* var, float* inv, const float* x,
                             const float* gamma, const float* beta, int64_t m, int64_t c,
                             float eps) {
  const NormRowKernels& k = kNormRows.active();
  const int nt = threads_rows(m, c);
  for_col_blocks(c, nt, [&](int64_t b, int64_t nb) {
    k.col_moments(mean + b, var + b, inv + b, x + b, m, c, nb, eps);
  });
  // y = (x - mean) * inv * gamma + beta, folded into one scale and shift per channel.
  std::vector<float> scale(c), shift(c);
  for (int64_t j = 0; j < c; ++j) {
    scale[j] = gamma ? inv[j] * gamma[j] : inv[j];
    shift[j] = (beta ? beta[j] : 0.0f) - mean[j] * scale[j];
  }
  for_rows(m, nt, [&](int64_t r) {
    k.scale_shift(y + r * c, x + r * c, scale.data(), shift.data(), c);
  });
}

void batchnorm_backward_train(float* dx, float* dgamma, float* dbeta, const float* dy,
                              const float* x, const float* mean, const float* inv,
                              const float* gamma, int64_t m, int64_t c) {
  const NormRowKernels& k = kNormRows.active();
  const int nt = threads_rows(m, c);
  for_col_blocks(c, nt, [&](int64_t b, int64_t nb) {
    k.col_grads(dgamma + b, dbeta + b, dy + b, x + b, mean + b, inv + b, m, c, nb);
  });
  // dx = gamma * inv / m * (m * dy - dbeta - xhat * dgamma)
  const float fm = float(m);
  std::vector<float> scale(c);
  for (int64_t j = 0; j < c; ++j) scale[j] = (gamma ? gamma[j] : 1.0f) * inv[j] / fm;
  for_rows(m, nt, [&](int64_t r) {
    k.bn_dx(dx + r * c, dy + r * c, x + r * c, mean, inv, scale.data(), dbeta, dgamma, fm, c);
  });
}

void layernorm_forward(float* y, float* mean, float* inv, const float* x, const float* gamma,
                       const float* beta, int64_t m, int64_t n, float eps) {
  const NormRowKernels& k = kNormRows.active();
  for_rows(m, threads_rows(m, n), [&](int64_t r) {
    k.ln_forward(y + r * n, mean + r, inv + r, x + r * n, gamma, beta, n, eps);
  });
}

void layernorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                        const float* mean, const float* inv, const float* gamma, int64_t m,
                        int64_t n) {
  // One pass over dy and x: each group of kNormRowGroup rows makes its rows' dx and its float
  // partial sums of dbeta/dgamma per column (a group is never split across threads); then each
  // column adds the groups' partials in group order in double. The same sums, in the same order,
  // as col_grads_row_stats, so the result does not depend on the thread count.
  const NormRowKernels& k = kNormRows.active();
  const int nt = threads_rows(m, n);
  const int64_t groups = (m + kNormRowGroup - 1) / kNormRowGroup;
  std::vector<float> part(static_cast<size_t>(groups) * 2 * static_cast<size_t>(n), 0.0f);
  parallel_for(groups, nt, 1, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      float* gb = part.data() + g * 2 * n;
      float* gg = gb + n;
      const int64_t r1 = (g + 1) * kNormRowGroup < m ? (g + 1) * kNormRowGroup : m;
      for (int64_t r = g * kNormRowGroup; r < r1; ++r)
        k.ln_dx_grads(dx + r * n, gb, gg, dy + r * n, x + r * n, mean[r], inv[r], gamma, n);
    }
  });
  parallel_for(n, nt, kNormColBlock, [&](int64_t c0, int64_t c1) {
    for (int64_t j = c0; j < c1; ++j) {
      double sb = 0.0, sg = 0.0;
      for (int64_t g = 0; g < groups; ++g) {
        sb += part[g * 2 * n + j];
        sg += part[g * 2 * n + n + j];
      }
      dbeta[j] = float(sb), dgamma[j] = float(sg);
    }
  });
}

void embedding_forward(float* y, const float* e, const int64_t* idx, int64_t n, int64_t d) {
  // A gather: rows split across threads, each row one copy.
  parallel_for(n, threads_for(double(n) * double(d), 32768.0), 1, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i)
      std::memcpy(y + i * d, e + idx[i] * d, static_cast<size_t>(d) * sizeof(float));
  });
}

void embedding_backward(float* de, const int64_t* idx, const float* dy, int64_t n, int64_t v,
                        int64_t d, bool accumulate) {
  // Columns split across threads; each thread's columns add the rows in index order.
  const NormRowKernels& k = kNormRows.active();
  parallel_for(d, threads_for(double(n) * double(d), 32768.0), kNormColBlock,
               [&](int64_t c0, int64_t c1) {
                 if (!accumulate)
                   for (int64_t r = 0; r < v; ++r)
                     for (int64_t j = c0; j < c1; ++j) de[r * d + j] = 0.0f;
                 for (int64_t i = 0; i < n; ++i)
                   k.add(de + idx[i] * d + c0, dy + i * d + c0, c1 - c0);
               });
}

}  // namespace nncore
