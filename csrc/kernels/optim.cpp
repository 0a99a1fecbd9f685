// Optimizer updates, Keras's formulas, one fused pass per parameter: the regularization gradient
// (l1 * sign(w) + 2 * l2 * w) is added to g on the fly and w and the slots are updated in place.
// Loops are branch-free so they vectorize; options are hoisted out of them as template flags.
// Parallel level: element ranges (no reductions), so any thread count gives identical bits.
#include <cmath>
#include <utility>

#include "common/parallel.hpp"
#include "kernels/train.hpp"

namespace nncore {

namespace {

inline float reg_grad(float g, float w, float l1, float two_l2) {
  const float sign = static_cast<float>(w > 0.0f) - static_cast<float>(w < 0.0f);
  return g + l1 * sign + two_l2 * w;
}

template <class F>
void elementwise(int64_t n, F&& f) {
  parallel_for(n, threads_for(double(n), 1 << 17), 64, std::forward<F>(f));
}

template <bool Momentum, bool Nesterov>
void sgd_impl(float* __restrict w, float* __restrict m, const float* __restrict g, int64_t lo,
              int64_t hi, const OptimParams& p) {
  const float lr = p.lr, mu = p.momentum, l1 = p.l1, two_l2 = 2.0f * p.l2;
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = reg_grad(g[i], w[i], l1, two_l2);
    if constexpr (!Momentum) {
      w[i] -= lr * gi;
    } else {
      const float mi = mu * m[i] - lr * gi;
      m[i] = mi;
      w[i] += Nesterov ? mu * mi - lr * gi : mi;
    }
  }
}

template <bool Momentum, bool Centered>
void rmsprop_impl(float* __restrict w, float* __restrict v, float* __restrict mom,
                  float* __restrict avg, const float* __restrict g, int64_t lo, int64_t hi,
                  const OptimParams& p) {
  const float lr = p.lr, rho = p.rho, one_rho = 1.0f - p.rho, mu = p.momentum, eps = p.eps;
  const float l1 = p.l1, two_l2 = 2.0f * p.l2;
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = reg_grad(g[i], w[i], l1, two_l2);
    const float vi = rho * v[i] + one_rho * gi * gi;
    v[i] = vi;
    float den = vi + eps;
    if constexpr (Centered) {
      const float ai = rho * avg[i] + one_rho * gi;
      avg[i] = ai;
      den = vi - ai * ai + eps;
    }
    const float inc = lr * gi / std::sqrt(den);
    if constexpr (Momentum) {
      const float mi = mu * mom[i] + inc;
      mom[i] = mi;
      w[i] -= mi;
    } else {
      w[i] -= inc;
    }
  }
}

// Scalars copied to locals and restrict pointers: the loop vectorizes (sqrt and div included).
void adam_impl(float* __restrict w, float* __restrict m, float* __restrict v,
               const float* __restrict g, int64_t lo, int64_t hi, const OptimParams& p) {
  const float one_b1 = 1.0f - p.beta1, one_b2 = 1.0f - p.beta2, alpha = p.alpha, eps = p.eps;
  const float l1 = p.l1, two_l2 = 2.0f * p.l2;
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = reg_grad(g[i], w[i], l1, two_l2);
    const float mi = m[i] + (gi - m[i]) * one_b1;
    const float vi = v[i] + (gi * gi - v[i]) * one_b2;
    m[i] = mi;
    v[i] = vi;
    w[i] -= alpha * mi / (std::sqrt(vi) + eps);
  }
}

}  // namespace

// w, m, g (n,). momentum == 0: w -= lr g.  Else m = mu m - lr g;  w += m  (nesterov: mu m - lr g).
void sgd_update(float* w, float* m, const float* g, int64_t n, const OptimParams& p) {
  const bool mom = m && p.momentum != 0.0f;
  elementwise(n, [&](int64_t lo, int64_t hi) {
    if (!mom)
      sgd_impl<false, false>(w, m, g, lo, hi, p);
    else if (p.nesterov)
      sgd_impl<true, true>(w, m, g, lo, hi, p);
    else
      sgd_impl<true, false>(w, m, g, lo, hi, p);
  });
}

// m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  w -= alpha m / (sqrt(v) + eps)
void adam_update(float* w, float* m, float* v, const float* g, int64_t n, const OptimParams& p) {
  elementwise(n, [&](int64_t lo, int64_t hi) { adam_impl(w, m, v, g, lo, hi, p); });
}

// v = rho v + (1-rho) g^2;  centered: a = rho a + (1-rho) g, den = v - a^2 + eps, else v + eps;
// inc = lr g / sqrt(den);  momentum: mom = mu mom + inc, w -= mom;  else w -= inc.
void rmsprop_update(float* w, float* v, float* mom, float* avg, const float* g, int64_t n,
                    const OptimParams& p) {
  elementwise(n, [&](int64_t lo, int64_t hi) {
    if (mom && avg)
      rmsprop_impl<true, true>(w, v, mom, avg, g, lo, hi, p);
    else if (mom)
      rmsprop_impl<true, false>(w, v, mom, avg, g, lo, hi, p);
    else if (avg)
      rmsprop_impl<false, true>(w, v, mom, avg, g, lo, hi, p);
    else
      rmsprop_impl<false, false>(w, v, mom, avg, g, lo, hi, p);
  });
}

}  // namespace nncore
