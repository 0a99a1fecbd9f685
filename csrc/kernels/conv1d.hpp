// Conv1D (stride 1, undilated) on (N, L, C) activations with Keras's (K, C, F) kernel: a 1-D
// Winograd F(m, K) forward and input gradient, and the weight gradient as one GEMM over the
// zero-padded batch. Strided or dilated Conv1D layers run on the Conv2D kernels instead (H = 1).
//
// Forward, per output tile of m = 8 - K + 1 positions, with the 8 input rows d it reads:
//   y = Aᵀ [ (G g) ⊙ (Bᵀ d) ]   (Toom-Cook on the points 0, ±1, ±2, ±1/2 and ∞)
// summed over the channels, the 8 elementwise products become 8 independent GEMMs
//   M[e] (tiles, F) = V[e] (tiles, C) @ U[e] (C, F),  V[e] = (Bᵀ d)[e], U[e] = (G g)[e],
// on nncore's own micro-kernels (sgemm_prepacked, U packed once per call). 8 multiplications per m
// outputs instead of K·m: 0.4x the GEMM flops for K = 5 (F(4, 5)).
//   input gradient: dx[u] = Σ_k dz[u + pl - k] W[k]ᵀ, the same forward on dz with the flipped,
//                   transposed kernel W'[k] = W[K-1-k]ᵀ and leading pad K-1-pl;
//   weight gradient: dW (K·C, F) = Σ_n Pₙᵀ dzₙ, where Pₙ's row t is the contiguous K·C run of
//                    the padded input starting at row t: with all samples padded into one
//                    buffer (the K-1 rows straddling two samples meet zero rows of dz) it is one
//                    GEMM whose A is the padded input itself with row stride C (no im2col);
//   db = column sums of dz.
//
// Parallel level (one per op): the forward's tiles are cut into blocks sized from the shapes
// alone; blocks are the work units and write disjoint outputs. The weight gradient is one sgemm,
// which splits rows / columns, never K. So every result is bitwise identical for any thread count.
#pragma once

#include <cstdint>

#include "kernels/gemm.hpp"

namespace nncore {

// y (N, OL, F)[n, t] = act(Σ_k x[n, t - pl + k] W[k] + b), x (N, L, C) read as zero outside
// [0, L), W (K, C, F).
struct Conv1dParams {
  int64_t n, l, c;     // x (N, L, C)
  int64_t k, f;        // kernel (K, C, F)
  int64_t ol;          // y (N, OL, F)
  int64_t pl;          // zero rows before x (0 <= pl <= K - 1)
  Act act = Act::none;
  int num_threads = 0;  // 0: nncore's setting
};

// Kernel sizes the Winograd transforms exist for (tile m = 8 - K + 1 >= 2).
constexpr int64_t kConv1dMinK = 2, kConv1dMaxK = 7;

// The shapes where the Winograd path beats the Conv2D kernels (measured, see conv1d.cpp).
bool conv1d_winograd_pays(int64_t k, int64_t c, int64_t f);

// y (N, OL, F) = act(conv1d(x, w) + b), b (F,) or null. Needs kConv1dMinK <= K <= kConv1dMaxK.
// May throw std::bad_alloc (scratch, or a worker's GEMM packing; y is then unspecified).
void conv1d_winograd_forward(float* y, const float* x, const float* w, const float* b,
                             const Conv1dParams& p);

// dz (N, OL, F) (masked by y > 0 when p.act == relu, y (N, OL, F) then read), x, w of the forward
// -> dx (N, L, C) or null, dw (K, C, F), db (F,) or null. May throw std::bad_alloc.
void conv1d_backward(float* dx, float* dw, float* db, const float* dz, const float* x,
                     const float* w, const float* y, const Conv1dParams& p);

}  // namespace nncore
