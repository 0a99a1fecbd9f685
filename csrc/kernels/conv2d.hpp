// Conv2D on NHWC activations with Keras's kernel layout, as im2col + one sgemm per batch tile.
#pragma once

#include <cstdint>

#include "kernels/gemm.hpp"

namespace nncore {

// Geometry of one convolution. The binding derives oh/ow/pt/pl from the padding mode and checks
// that every index the kernels form stays inside x; the kernels trust it.
struct Conv2dParams {
  int64_t n, h, w, c;      // input x (N,H,W,C)
  int64_t kh, kw, f;       // kernel (KH,KW,C,F)
  int64_t oh, ow;          // output y (N,OH,OW,F)
  int64_t sh, sw;          // strides
  int64_t dh, dw;          // dilation
  int64_t pt, pl;          // zero padding at the top / left (bottom / right follow from oh, ow)
  Act act = Act::none;     // fused activation of the forward
  int num_threads = 0;     // 0: nncore's setting
};

// Geometry of one axis, the only place it is computed (the bindings and, through
// _core.conv2d_geometry, nncore.ops and the layers use it): output length and leading pad for
// input `in`, kernel k, stride s, dilation d. Keras/TF 'same': out = ceil(in / s), pad_total =
// max((out - 1) * s + (k - 1) * d + 1 - in, 0), pad = pad_total / 2; 'valid': out = (in - ek) / s
// + 1, pad 0. Needs in, k, s, d >= 1 and (k - 1) * d + 1 representable; returns false (for
// 'valid') when the dilated kernel is larger than the input.
inline bool conv2d_axis(int64_t in, int64_t k, int64_t s, int64_t d, bool same, int64_t* out,
                        int64_t* pad) {
  const int64_t ek = (k - 1) * d + 1;
  if (same) {  // (in + s - 1) / s would overflow for s near INT64_MAX
    *out = (in - 1) / s + 1;
    // (out - 1) * s <= in - 1, so the sum below stays in range.
    const int64_t total = ((*out - 1) * s - in) + ek;
    *pad = total > 0 ? total / 2 : 0;
    return true;
  }
  if (ek > in) return false;
  *out = (in - ek) / s + 1;
  *pad = 0;
  return true;
}

// x (N,H,W,C), w (KH,KW,C,F), b (F,) or null -> y (N,OH,OW,F) = act(conv(x, w) + b)
// May throw std::bad_alloc (scratch; on the Winograd and im2col paths also from a worker's GEMM
// packing scratch, after part of y is written: y is then unspecified).
void conv2d_forward(float* y, const float* x, const float* w, const float* b,
                    const Conv2dParams& p);

// dy (N,OH,OW,F), x (N,H,W,C), w (KH,KW,C,F), y (N,OH,OW,F) (only read when p.act == relu: the
// gradient is masked by y > 0) -> dx (N,H,W,C) or null, dw (KH,KW,C,F), db (F,) or null.
// dw and db are bitwise identical for any thread count. May throw std::bad_alloc.
void conv2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                     const float* w, const float* y, const Conv2dParams& p);

// Plain loops (float accumulation), readable oracles for the two above.
void conv2d_forward_ref(float* y, const float* x, const float* w, const float* b,
                        const Conv2dParams& p);
void conv2d_backward_ref(float* dx, float* dw, float* db, const float* dy, const float* x,
                         const float* w, const float* y, const Conv2dParams& p);

}  // namespace nncore
