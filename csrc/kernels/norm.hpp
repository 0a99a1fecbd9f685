// Normalization and embedding-gradient kernels: per-ISA row kernels (norm_rows.hpp)
// under portable drivers that split the work with parallel_for.
// Every reduction is done by one thread in a fixed order (channels / columns are split across
// threads, never the rows being summed), so results are bitwise identical for any thread count.
#pragma once

#include <cstdint>

namespace nncore {

// x (M, C) -> y (M, C), mean/var/inv (C,): batch statistics over the rows (biased variance),
// y = (x - mean) * inv * gamma + beta, inv = 1/sqrt(var + eps). gamma/beta may be null.
void batchnorm_forward_train(float* y, float* mean, float* var, float* inv, const float* x,
                             const float* gamma, const float* beta, int64_t m, int64_t c,
                             float eps);
// dy, x (M, C), mean/inv (C,) -> dx (M, C), dgamma/dbeta (C,).
void batchnorm_backward_train(float* dx, float* dgamma, float* dbeta, const float* dy,
                              const float* x, const float* mean, const float* inv,
                              const float* gamma, int64_t m, int64_t c);
// x (M, K) -> y (M, K), mean/inv (M,): each row normalized over its K values (K >= 1).
void layernorm_forward(float* y, float* mean, float* inv, const float* x, const float* gamma,
                       const float* beta, int64_t m, int64_t k, float eps);
// dy, x (M, K), mean/inv (M,) -> dx (M, K), dgamma/dbeta (K,).
void layernorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                        const float* mean, const float* inv, const float* gamma, int64_t m,
                        int64_t k);
// E (V, D), idx (N,) (each in [0, V), checked by the caller) -> y (N, D): y[i] = E[idx[i]].
void embedding_forward(float* y, const float* e, const int64_t* idx, int64_t n, int64_t d);
// dE (V, D) (+)= scatter of dy (N, D) to rows idx (N,) (each in [0, V), checked by the caller).
void embedding_backward(float* de, const int64_t* idx, const float* dy, int64_t n, int64_t v,
                        int64_t d, bool accumulate);

}  // namespace nncore
