// DepthwiseConv2D forward and backward on NHWC activations with Keras's kernel layout (the layer's
// forward and backward in training, the inference plan in models/inference.py).
#pragma once

#include <cstdint>

#include "kernels/gemm.hpp"

namespace nncore {

// Geometry of one depthwise convolution; the binding derives oh/ow/pt/pl with conv2d_axis.
struct Depthwise2dParams {
  int64_t n, h, w, c;  // input x (N,H,W,C)
  int64_t kh, kw, m;   // kernel (KH,KW,C,M), M = depth multiplier
  int64_t oh, ow;      // output y (N,OH,OW,C*M)
  int64_t sh, sw;      // strides
  int64_t dh, dw;      // dilation
  int64_t pt, pl;      // zero padding at the top / left: taps outside x are skipped, never read
  Act act = Act::none;  // fused activation: relu = max(0, z), NaN kept
  float cap = 0.0f;     // with has_cap: min(cap, act(z)) after it (ReLU6), NaN kept
  bool has_cap = false;
  int num_threads = 0;  // 0: nncore's setting
};

// x (N,H,W,C), k (KH,KW,C,M), b (C*M,) or null -> y (N,OH,OW,C*M), channel c*M + m:
// y = cap(act(sum over the taps inside x, row-major, of x * k  +  b)).
// Each output is summed in the same order whatever the thread count (rows are split, not taps).
void depthwise2d_forward(float* y, const float* x, const float* k, const float* b,
                         const Depthwise2dParams& p);

// The forward followed by a 2x2 max pooling of stride 2 ('valid'), in one pass (the inference
// plan's Conv2D / DepthwiseConv2D + MaxPooling2D(2)): y (N, OH/2, OW/2, C*M). Per pooled row the two
// convolution rows go to a thread's scratch through the forward's own row kernel, then the pooling
// layer's value scan (pool2d_kernels.hpp) takes each window: bitwise the forward, then
// maxpool2d_forward without argmax. Any thread count gives the same bits. May throw
// std::bad_alloc (a worker's scratch), after the region.
void depthwise2d_forward_maxpool2(float* y, const float* x, const float* k, const float* b,
                                  const Depthwise2dParams& p);

// Plain loops, the readable oracle of the above (same tap order, no FMA contraction guaranteed).
void depthwise2d_forward_ref(float* y, const float* x, const float* k, const float* b,
                             const Depthwise2dParams& p);

// One output row (n, oh), written at y (its OW*C*M floats): the ISA-specific part
// (depthwise2d_impl.hpp), for depth multiplier 1 or one input channel.
typedef void (*depthwise2d_row_fn)(float* y, const float* x, const float* k, const float* b,
                                   const Depthwise2dParams& p, int64_t n, int64_t oh);

// Partial weight and bias gradients of output rows [r0, r1) (r = n*OH + oh), written over
// part[0, KH*KW*C*M) (as k) and part[KH*KW*C*M, +C*M) (as b): every element is the sum over the
// rows in order, each row's pixels summed in a fixed pattern (4 interleaved sums, then combined).
// The ISA part, for depth multiplier 1 or one input channel.
typedef void (*depthwise2d_kgrad_fn)(float* part, const float* dy, const float* x,
                                     const Depthwise2dParams& p, int64_t r0, int64_t r1);

// y (PW, O) = the 2x2 stride-2 max pooling of two rows s (2, OW, O) (OW >= 2*PW): each window's
// cells scanned row-major as the pooling layer's value scan does (pool2d_kernels.hpp), so the same
// bits, NaN included. Null for the portable ISA (the scan itself runs there).
typedef void (*depthwise2d_pool2_fn)(float* y, const float* s, int64_t ow, int64_t o, int64_t pw);

struct Depthwise2dKernels {
  depthwise2d_row_fn row;
  depthwise2d_kgrad_fn kgrad;
  depthwise2d_pool2_fn pool2;
  const char* name;
};

// dy (N,OH,OW,C*M), x (N,H,W,C), k (KH,KW,C,M) -> dx (N,H,W,C) (null: not computed),
// dk (KH,KW,C,M), db (C*M,) (null: not computed); all written, not accumulated. p as the forward
// (its act/cap ignored: dy is the gradient of the pre-activation sum).
// dx: with strides 1 and M = 1 the forward row kernel on dy with the kernel flipped (a pixel's
// taps in row-major order of the flipped kernel), else per input pixel its taps in row-major
// order. dk, db: fixed chunks of output rows (from the geometry, not the thread count) summed in
// chunk order. So any thread count gives the same bits.
void depthwise2d_backward(float* dx, float* dk, float* db, const float* dy, const float* x,
                          const float* k, const Depthwise2dParams& p);

// Plain loops, the readable oracle of the above (float64 sums; not the same bits).
void depthwise2d_backward_ref(float* dx, float* dk, float* db, const float* dy, const float* x,
                              const float* k, const Depthwise2dParams& p);

#if defined(NNCORE_X86)
extern const Depthwise2dKernels kDepthwise2dAvx2;    // depthwise2d_avx2.cpp
extern const Depthwise2dKernels kDepthwise2dAvx512;  // depthwise2d_avx512.cpp
#endif

}  // namespace nncore
