// Softmax fused with cross-entropy: one pass per row gives the per-sample loss and d loss/d logits,
// computed from logits (log-sum-exp with the row max subtracted), so no probability is ever log'd
// after underflowing to 0. Parallel level: rows.
#include <algorithm>
#include <cmath>

#include "common/parallel.hpp"
#include "kernels/train.hpp"

namespace nncore {

namespace {

// Row max and log(sum(exp(z - max))) of z (C,).
inline void row_lse(const float* z, int64_t c, float* mx_out, float* lse_out) {
  float mx = z[0];
  for (int64_t j = 1; j < c; ++j) mx = std::max(mx, z[j]);
  float s = 0.0f;
  for (int64_t j = 0; j < c; ++j) s += std::exp(z[j] - mx);
  *mx_out = mx;
  *lse_out = std::log(s);
}

}  // namespace

// logits (N,C), labels (N,) -> loss (N,), dlogits (N,C)
void softmax_xent_sparse(float* loss, float* dlogits, const float* logits, const int32_t* labels,
                         int64_t n, int64_t c, float grad_scale) {
  parallel_for(n, threads_for(double(n) * c * 8, 1 << 16), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float* z = logits + i * c;
      float mx, lse;
      row_lse(z, c, &mx, &lse);
      const int32_t t = labels[i];
      loss[i] = lse - (z[t] - mx);
      if (dlogits) {
        float* d = dlogits + i * c;
        for (int64_t j = 0; j < c; ++j) d[j] = std::exp(z[j] - mx - lse) * grad_scale;
        d[t] -= grad_scale;
      }
    }
  });
}

// logits (N,C), targets (N,C) -> loss (N,), dlogits (N,C)
void softmax_xent_dense(float* loss, float* dlogits, const float* logits, const float* targets,
                        int64_t n, int64_t c, float grad_scale) {
  parallel_for(n, threads_for(double(n) * c * 8, 1 << 16), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float* z = logits + i * c;
      const float* t = targets + i * c;
      float mx, lse;
      row_lse(z, c, &mx, &lse);
      // -sum t_j (z_j - mx - lse)
      float l = 0.0f, tsum = 0.0f;
      for (int64_t j = 0; j < c; ++j) {
        l -= t[j] * (z[j] - mx - lse);
        tsum += t[j];
      }
      loss[i] = l;
      if (dlogits) {
        float* d = dlogits + i * c;
        for (int64_t j = 0; j < c; ++j)
          d[j] = (std::exp(z[j] - mx - lse) * tsum - t[j]) * grad_scale;
      }
    }
  });
}

}  // namespace nncore
