// Direct (implicit-GEMM) Conv2D kernels, one per ISA file (the algorithm: conv2d_direct_impl.hpp).
// Free of templates and standard-library headers, like gemm_ukr.hpp, so nothing ISA-specific can
// leak into generic callers at link time.
#pragma once

#include "kernels/conv2d.hpp"

namespace nncore {

// x (N,H,W,C), w (KH,KW,C,F), b (F,) or null -> y pixels [q0, q1) of the flattened N*OH*OW output,
// act(conv + b). Needs every window inside x (no padding is read): the caller checks that. Rows of
// x outside [row_lo, row_hi) are known to be zero and may be skipped (the dx pass pads dy).
typedef void (*conv2d_direct_forward_fn)(float* y, const float* x, const float* w, const float* b,
                                         const Conv2dParams& p, int64_t q0, int64_t q1,
                                         int64_t row_lo, int64_t row_hi);
// dw (KH,KW,C,F) = (accumulate ? dw : 0) + sum over the output pixels of images [n0, n1) of
// patch(x)ᵀ g, where g (rows of images [n0, n1), F) is the output gradient, pixel order. With
// ymask (same rows as g), g is first masked by ymask > 0 (ReLU). With db, also
// db (F) = (accumulate ? db : 0) + the column sums of g in pixel order. Same precondition as the
// forward.
typedef void (*conv2d_direct_dw_fn)(float* dw, float* db, const float* x, const float* g,
                                    const float* ymask, const Conv2dParams& p, int64_t n0,
                                    int64_t n1, bool accumulate);

// The ISA-specific parts of Conv2D, one table per ISA (common/dispatch.hpp). The portable table
// has no direct kernels: forward and dW then run as im2col + sgemm.
struct Conv2dKernels {
  conv2d_direct_forward_fn forward;  // null: im2col + sgemm
  conv2d_direct_dw_fn dw;            // null: im2col + sgemm
  // g (n) = dy * (y > 0), elementwise
  void (*relu_mask)(float* g, const float* dy, const float* y, int64_t n);
  // acc (F) += sum of the rows of g (rows, F), in row order
  void (*add_column_sums)(float* acc, const float* g, int64_t rows, int64_t f);
  int64_t mr;  // pixel tile: forward splits align to it so tiles never depend on the split
  const char* forward_name;
  const char* backward_name;
};

#if defined(NNCORE_X86)
extern const Conv2dKernels kConv2dAvx2;    // conv2d_direct_avx2.cpp
extern const Conv2dKernels kConv2dAvx512;  // conv2d_direct_avx512.cpp
#endif

}  // namespace nncore
