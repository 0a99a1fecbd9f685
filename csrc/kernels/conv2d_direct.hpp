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
// patch(x)ᵀ g, where g (rows of images [n0, n1), F) is the (masked) output gradient, pixel order.
// Same precondition as the forward.
typedef void (*conv2d_direct_dw_fn)(float* dw, const float* x, const float* g,
                                    const Conv2dParams& p, int64_t n0, int64_t n1, bool accumulate);

#if defined(NNCORE_X86)
void conv2d_direct_forward_avx512(float* y, const float* x, const float* w, const float* b,
                                  const Conv2dParams& p, int64_t q0, int64_t q1, int64_t row_lo,
                                  int64_t row_hi);
void conv2d_direct_dw_avx512(float* dw, const float* x, const float* g, const Conv2dParams& p,
                             int64_t n0, int64_t n1, bool accumulate);
void conv2d_direct_forward_avx2(float* y, const float* x, const float* w, const float* b,
                                const Conv2dParams& p, int64_t q0, int64_t q1, int64_t row_lo,
                                int64_t row_hi);
void conv2d_direct_dw_avx2(float* dw, const float* x, const float* g, const Conv2dParams& p,
                           int64_t n0, int64_t n1, bool accumulate);
#endif

}  // namespace nncore
