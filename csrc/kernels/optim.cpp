// Optimizer updates, Keras's formulas, one fused pass per parameter: the regularization gradient
// (l1 * sign(w) + 2 * l2 * w) is added to g on the fly and w and the slots are updated in place.
// Loops are branch-free so they vectorize; options are hoisted out of them as template flags.
// Parallel level: element ranges (no reductions), so any thread count gives identical bits.
#include <algorithm>
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

// ---- added optimizers (Keras 3 formulas). Each: gi = g + regularization gradient at the old w;
// w = w - wd_lr * w (decoupled weight decay, Keras applies it before the update step); then the step.

inline float decayed(float w, float wd_lr) { return w - w * wd_lr; }

template <bool Amsgrad>
void adamw_impl(float* __restrict w, float* __restrict m, float* __restrict v,
                float* __restrict vhat, const float* __restrict g, int64_t lo, int64_t hi,
                const OptimParams& p) {
  const float one_b1 = 1.0f - p.beta1, one_b2 = 1.0f - p.beta2, alpha = p.alpha, eps = p.eps;
  const float l1 = p.l1, two_l2 = 2.0f * p.l2, wd_lr = p.wd_lr;
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = reg_grad(g[i], w[i], l1, two_l2);
    const float wi = decayed(w[i], wd_lr);
    const float mi = m[i] + (gi - m[i]) * one_b1;
    float vi = v[i] + (gi * gi - v[i]) * one_b2;
    m[i] = mi;
    v[i] = vi;
    if constexpr (Amsgrad) {
      vi = std::max(vhat[i], vi);
      vhat[i] = vi;
    }
    w[i] = wi - alpha * mi / (std::sqrt(vi) + eps);
  }
}

void nadam_impl(float* __restrict w, float* __restrict m, float* __restrict v,
                const float* __restrict g, int64_t lo, int64_t hi, const OptimParams& p) {
  const float one_b1 = 1.0f - p.beta1, one_b2 = 1.0f - p.beta2, lr = p.lr, eps = p.eps;
  const float c1 = p.c1, c2 = p.c2, bias2 = p.c3;
  const float l1 = p.l1, two_l2 = 2.0f * p.l2, wd_lr = p.wd_lr;
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = reg_grad(g[i], w[i], l1, two_l2);
    const float wi = decayed(w[i], wd_lr);
    const float mi = m[i] + (gi - m[i]) * one_b1;
    const float vi = v[i] + (gi * gi - v[i]) * one_b2;
    m[i] = mi;
    v[i] = vi;
    const float m_hat = c1 * mi + c2 * gi;
    w[i] = wi - m_hat * lr / (std::sqrt(vi / bias2) + eps);
  }
}

void adamax_impl(float* __restrict w, float* __restrict m, float* __restrict u,
                 const float* __restrict g, int64_t lo, int64_t hi, const OptimParams& p) {
  const float one_b1 = 1.0f - p.beta1, b2 = p.beta2, lr = p.lr, eps = p.eps, bias1 = p.c3;
  const float l1 = p.l1, two_l2 = 2.0f * p.l2, wd_lr = p.wd_lr;
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = reg_grad(g[i], w[i], l1, two_l2);
    const float wi = decayed(w[i], wd_lr);
    const float mi = m[i] + (gi - m[i]) * one_b1;
    const float ui = std::max(b2 * u[i], std::fabs(gi));
    m[i] = mi;
    u[i] = ui;
    w[i] = wi - lr * mi / (bias1 * (ui + eps));
  }
}

void adagrad_impl(float* __restrict w, float* __restrict acc, const float* __restrict g,
                  int64_t lo, int64_t hi, const OptimParams& p) {
  const float lr = p.lr, eps = p.eps, l1 = p.l1, two_l2 = 2.0f * p.l2, wd_lr = p.wd_lr;
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = reg_grad(g[i], w[i], l1, two_l2);
    const float wi = decayed(w[i], wd_lr);
    const float ai = acc[i] + gi * gi;
    acc[i] = ai;
    w[i] = wi - lr * gi / std::sqrt(ai + eps);
  }
}

void adadelta_impl(float* __restrict w, float* __restrict acc_g, float* __restrict acc_dx,
                   const float* __restrict g, int64_t lo, int64_t hi, const OptimParams& p) {
  const float lr = p.lr, rho = p.rho, one_rho = 1.0f - p.rho, eps = p.eps;
  const float l1 = p.l1, two_l2 = 2.0f * p.l2, wd_lr = p.wd_lr;
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = reg_grad(g[i], w[i], l1, two_l2);
    const float wi = decayed(w[i], wd_lr);
    const float ag = rho * acc_g[i] + one_rho * gi * gi;
    acc_g[i] = ag;
    const float delta = -(std::sqrt(acc_dx[i] + eps) * gi) / std::sqrt(ag + eps);
    acc_dx[i] = rho * acc_dx[i] + one_rho * delta * delta;
    w[i] = wi + lr * delta;
  }
}

template <bool SqrtPower>
inline float ftrl_pow(float a, float neg_power) {
  if constexpr (SqrtPower) return std::sqrt(a);
  return std::pow(a, neg_power);
}

template <bool SqrtPower>
void ftrl_impl(float* __restrict w, float* __restrict acc, float* __restrict lin,
               const float* __restrict g, int64_t lo, int64_t hi, const OptimParams& p) {
  const float lr = p.lr, neg_power = -p.lr_power, l1s = p.ftrl_l1, two_l2s = 2.0f * p.ftrl_l2;
  const float two_shrink = 2.0f * p.ftrl_shrink;
  const float l1 = p.l1, two_l2 = 2.0f * p.l2, wd_lr = p.wd_lr;
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = reg_grad(g[i], w[i], l1, two_l2);
    const float wi = decayed(w[i], wd_lr);
    const float a_old = acc[i], a_new = a_old + gi * gi;
    const float p_new = ftrl_pow<SqrtPower>(a_new, neg_power);
    const float p_old = ftrl_pow<SqrtPower>(a_old, neg_power);
    const float li = lin[i] + ((gi + two_shrink * wi) - (p_new - p_old) / lr * wi);
    lin[i] = li;
    const float quadratic = p_new / lr + two_l2s;
    const float clipped = std::min(std::max(li, -l1s), l1s);
    w[i] = (clipped - li) / quadratic;
    acc[i] = a_new;
  }
}

void lion_impl(float* __restrict w, float* __restrict m, const float* __restrict g, int64_t lo,
               int64_t hi, const OptimParams& p) {
  const float lr = p.lr, b1 = p.beta1, b2 = p.beta2, l1 = p.l1, two_l2 = 2.0f * p.l2;
  const float wd_lr = p.wd_lr;
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = reg_grad(g[i], w[i], l1, two_l2);
    const float wi = decayed(w[i], wd_lr);
    const float c = m[i] * b1 + gi * (1.0f - b1);
    const float sign = static_cast<float>(c > 0.0f) - static_cast<float>(c < 0.0f);
    w[i] = wi - lr * sign;
    m[i] = m[i] * b2 + gi * (1.0f - b2);
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

// alpha as Adam; vhat (amsgrad) may be null: vhat = max(vhat, v) replaces v in the step.
void adamw_update(float* w, float* m, float* v, float* vhat, const float* g, int64_t n,
                  const OptimParams& p) {
  elementwise(n, [&](int64_t lo, int64_t hi) {
    if (vhat)
      adamw_impl<true>(w, m, v, vhat, g, lo, hi, p);
    else
      adamw_impl<false>(w, m, v, vhat, g, lo, hi, p);
  });
}

// m += (g - m)(1 - b1);  v += (g^2 - v)(1 - b2);  w -= lr (c1 m + c2 g) / (sqrt(v / c3) + eps)
void nadam_update(float* w, float* m, float* v, const float* g, int64_t n, const OptimParams& p) {
  elementwise(n, [&](int64_t lo, int64_t hi) { nadam_impl(w, m, v, g, lo, hi, p); });
}

// m += (g - m)(1 - b1);  u = max(b2 u, |g|);  w -= lr m / (c3 (u + eps)),  c3 = 1 - b1^t
void adamax_update(float* w, float* m, float* u, const float* g, int64_t n, const OptimParams& p) {
  elementwise(n, [&](int64_t lo, int64_t hi) { adamax_impl(w, m, u, g, lo, hi, p); });
}

// acc += g^2;  w -= lr g / sqrt(acc + eps)
void adagrad_update(float* w, float* acc, const float* g, int64_t n, const OptimParams& p) {
  elementwise(n, [&](int64_t lo, int64_t hi) { adagrad_impl(w, acc, g, lo, hi, p); });
}

// ag = rho ag + (1-rho) g^2;  d = -sqrt(adx + eps) g / sqrt(ag + eps);
// adx = rho adx + (1-rho) d^2;  w += lr d
void adadelta_update(float* w, float* acc_g, float* acc_dx, const float* g, int64_t n,
                     const OptimParams& p) {
  elementwise(n, [&](int64_t lo, int64_t hi) { adadelta_impl(w, acc_g, acc_dx, g, lo, hi, p); });
}

// a' = a + g^2;  lin += g + 2 shrink w - (a'^-lp - a^-lp) / lr * w;
// w = (clip(lin, -l1, l1) - lin) / (a'^-lp / lr + 2 l2);  a = a'
void ftrl_update(float* w, float* acc, float* lin, const float* g, int64_t n,
                 const OptimParams& p) {
  const bool sqrt_power = p.lr_power == -0.5f;
  elementwise(n, [&](int64_t lo, int64_t hi) {
    if (sqrt_power)
      ftrl_impl<true>(w, acc, lin, g, lo, hi, p);
    else
      ftrl_impl<false>(w, acc, lin, g, lo, hi, p);
  });
}

// w -= lr sign(b1 m + (1 - b1) g);  m = b2 m + (1 - b2) g
void lion_update(float* w, float* m, const float* g, int64_t n, const OptimParams& p) {
  elementwise(n, [&](int64_t lo, int64_t hi) { lion_impl(w, m, g, lo, hi, p); });
}

}  // namespace nncore
