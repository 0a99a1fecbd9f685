// Training kernels: activations, fused softmax + cross-entropy, fused optimizer updates.
// Every kernel is row- or element-wise, so results are bitwise identical for any thread count.
#pragma once

#include <cstdint>

namespace nncore {

enum class ActKind : int { linear = 0, relu = 1, sigmoid = 2, tanh = 3, softmax = 4 };

// x (N,C) -> y (N,C). Element-wise kinds ignore the row split (n*c elements); softmax is per row.
// y may alias x.
void activation_forward(float* y, const float* x, int64_t n, int64_t c, ActKind act);
// dx (N,C) from dy and the forward OUTPUT y (N,C). dx may alias dy.
void activation_backward(float* dx, const float* dy, const float* y, int64_t n, int64_t c,
                         ActKind act);

// logits (N,C), labels (N,) in [0,C) -> loss (N,) = logsumexp(z) - z[label],
// dlogits (N,C) = (softmax(z) - onehot) * grad_scale. dlogits may be null (loss only).
void softmax_xent_sparse(float* loss, float* dlogits, const float* logits, const int32_t* labels,
                         int64_t n, int64_t c, float grad_scale);
// logits (N,C), targets (N,C) -> loss (N,) = -sum_j t_j log softmax(z)_j,
// dlogits = (softmax(z) * sum_j t_j - t) * grad_scale. dlogits may be null.
void softmax_xent_dense(float* loss, float* dlogits, const float* logits, const float* targets,
                        int64_t n, int64_t c, float grad_scale);

struct OptimParams {
  float lr = 0.01f;
  float l1 = 0.0f, l2 = 0.0f;  // regularization: g += l1 * sign(w) + 2 * l2 * w
  float momentum = 0.0f;       // SGD, RMSprop
  bool nesterov = false;       // SGD
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-7f;  // Adam (eps also RMSprop)
  float alpha = 0.0f;          // Adam: lr * sqrt(1 - beta2^t) / (1 - beta1^t)
  float rho = 0.9f;            // RMSprop, Adadelta
  // Added for the optimizers below. wd_lr: decoupled weight decay, w -= wd_lr * w before the step
  // (wd_lr = weight_decay * lr); the L1/L2 gradient still uses the weight before the decay.
  float wd_lr = 0.0f;
  float c1 = 0.0f, c2 = 0.0f;  // Nadam: m_hat = c1 m + c2 g;  c3 = 1 / (1 - beta2^t)
  float c3 = 0.0f;
  // Ftrl: lr_power (<= 0), l1 and l2 strengths (l2 here already includes beta / (2 lr)), shrinkage.
  float lr_power = -0.5f, ftrl_l1 = 0.0f, ftrl_l2 = 0.0f, ftrl_shrink = 0.0f;
};

// w, g, slots: n floats each. Keras's formulas (see the Python optimizers for the math).
void sgd_update(float* w, float* m, const float* g, int64_t n, const OptimParams& p);  // m may be null
void adam_update(float* w, float* m, float* v, const float* g, int64_t n, const OptimParams& p);
// mom (momentum > 0) and avg (centered) may be null.
void rmsprop_update(float* w, float* v, float* mom, float* avg, const float* g, int64_t n,
                    const OptimParams& p);

// vhat (amsgrad) may be null. Adam with decoupled weight decay (AdamW) and/or AMSGrad.
void adamw_update(float* w, float* m, float* v, float* vhat, const float* g, int64_t n,
                  const OptimParams& p);
void nadam_update(float* w, float* m, float* v, const float* g, int64_t n, const OptimParams& p);
void adamax_update(float* w, float* m, float* u, const float* g, int64_t n, const OptimParams& p);
void adagrad_update(float* w, float* acc, const float* g, int64_t n, const OptimParams& p);
void adadelta_update(float* w, float* acc_g, float* acc_dx, const float* g, int64_t n,
                     const OptimParams& p);
void ftrl_update(float* w, float* acc, float* lin, const float* g, int64_t n,
                 const OptimParams& p);
void lion_update(float* w, float* m, const float* g, int64_t n, const OptimParams& p);

}  // namespace nncore
