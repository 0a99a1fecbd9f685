// Optimizer updates, Keras's formulas, one fused pass per parameter: the regularization gradient
// (l1 * sign(w) + 2 * l2 * w) is added to g on the fly and w and the slots are updated in place.
// Parallel level: element ranges (no reductions).
#include <cmath>
#include <utility>

#include "common/parallel.hpp"
#include "kernels/train.hpp"

namespace nncore {

namespace {

inline float reg_grad(float g, float w, const OptimParams& p) {
  if (p.l1 != 0.0f) g += p.l1 * (w > 0.0f ? 1.0f : (w < 0.0f ? -1.0f : 0.0f));
  if (p.l2 != 0.0f) g += 2.0f * p.l2 * w;
  return g;
}

template <class F>
void elementwise(int64_t n, F&& f) {
  parallel_for(n, threads_for(double(n) * 4, 1 << 16), 64, std::forward<F>(f));
}

}  // namespace

// w, m, g (n,). momentum == 0: w -= lr g.  Else m = mu m - lr g;  w += m  (nesterov: mu m - lr g).
void sgd_update(float* w, float* m, const float* g, int64_t n, const OptimParams& p) {
  elementwise(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float gi = reg_grad(g[i], w[i], p);
      if (!m || p.momentum == 0.0f) {
        w[i] -= p.lr * gi;
      } else {
        const float mi = p.momentum * m[i] - p.lr * gi;
        m[i] = mi;
        w[i] += p.nesterov ? p.momentum * mi - p.lr * gi : mi;
      }
    }
  });
}

// m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  w -= alpha m / (sqrt(v) + eps)
void adam_update(float* w, float* m, float* v, const float* g, int64_t n, const OptimParams& p) {
  const float one_b1 = 1.0f - p.beta1, one_b2 = 1.0f - p.beta2;
  elementwise(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float gi = reg_grad(g[i], w[i], p);
      const float mi = m[i] + (gi - m[i]) * one_b1;
      const float vi = v[i] + (gi * gi - v[i]) * one_b2;
      m[i] = mi;
      v[i] = vi;
      w[i] -= p.alpha * mi / (std::sqrt(vi) + p.eps);
    }
  });
}

// v = rho v + (1-rho) g^2;  centered: a = rho a + (1-rho) g, den = v - a^2 + eps, else v + eps;
// inc = lr g / sqrt(den);  momentum: mom = mu mom + inc, w -= mom;  else w -= inc.
void rmsprop_update(float* w, float* v, float* mom, float* avg, const float* g, int64_t n,
                    const OptimParams& p) {
  const float one_rho = 1.0f - p.rho;
  elementwise(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float gi = reg_grad(g[i], w[i], p);
      const float vi = p.rho * v[i] + one_rho * gi * gi;
      v[i] = vi;
      float den = vi + p.eps;
      if (avg) {
        const float ai = p.rho * avg[i] + one_rho * gi;
        avg[i] = ai;
        den = vi - ai * ai + p.eps;
      }
      const float inc = p.lr * gi / std::sqrt(den);
      if (mom) {
        const float mi = p.momentum * mom[i] + inc;
        mom[i] = mi;
        w[i] -= mi;
      } else {
        w[i] -= inc;
      }
    }
  });
}

}  // namespace nncore
