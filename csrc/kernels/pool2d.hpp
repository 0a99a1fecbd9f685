// Max and average pooling on NHWC activations, forward and backward.
#pragma once

#include <cstdint>

namespace nncore {

// Geometry of one pooling. The binding derives oh/ow/pt/pl from the padding mode; every window
// holds at least one input element (the 'same' padding is always smaller than the pool).
struct Pool2dParams {
  int64_t n, h, w, c;  // input x (N,H,W,C)
  int64_t ph, pw;      // pool size
  int64_t sh, sw;      // strides
  int64_t oh, ow;      // output (N,OH,OW,C)
  int64_t pt, pl;      // implicit padding at the top / left (padded cells are never read)
  int num_threads = 0;
};

// Geometry of one axis, the only place it is computed (bindings, and nncore.ops through
// _core.pool2d_geometry): output length and leading pad for input `in`, pool k, stride s
// (all >= 1), as Keras/TF: 'valid' out = (in - k) / s + 1; 'same' out = ceil(in / s) with pad_total
// = max((out - 1) * s + k - in, 0), pad = pad_total / 2 (never a whole window). Returns false
// (for 'valid') when the pool is larger than the input.
inline bool pool2d_axis(int64_t in, int64_t k, int64_t s, bool same, int64_t* out, int64_t* pad) {
  if (same) {  // (in + s - 1) / s would overflow for s near INT64_MAX
    *out = (in - 1) / s + 1;
    const int64_t total = ((*out - 1) * s - in) + k;  // (out - 1) * s <= in - 1: no overflow
    *pad = total > 0 ? total / 2 : 0;
    return true;
  }
  if (k > in) return false;
  *out = (in - k) / s + 1;
  *pad = 0;
  return true;
}

// x (N,H,W,C) -> y (N,OH,OW,C), argmax (N,OH,OW,C) = h*W + w of the first maximum in the window
// (row-major scan order; ties go to the first). argmax may be null (inference): y is the same.
void maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dParams& p);

// dy (N,OH,OW,C), argmax (N,OH,OW,C) -> dx (N,H,W,C): every dy added to its argmax's input cell.
// Only p.n, h, w, c, oh, ow are used. Returns false (dx then partly written) if some argmax lies
// outside [0, H*W).
bool maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Pool2dParams& p);

// maxpool2d_backward with the pooling's whole geometry in p (pool, strides, padding as the forward
// that made argmax): the same dx, bit for bit. Windows that do not overlap (strides >= pool) are
// written in one pass, each cell dy or zero, instead of zeroing dx and scattering dy into it; an
// image whose argmax do not all lie in their own windows runs the general scatter.
bool maxpool2d_backward_windows(float* dx, const float* dy, const int32_t* argmax,
                                const Pool2dParams& p);

// x (N,H,W,C) -> y (N,OH,OW,C) = mean over the window's cells inside the input.
void avgpool2d_forward(float* y, const float* x, const Pool2dParams& p);

// dy (N,OH,OW,C) -> dx (N,H,W,C): dy / count spread over each window's cells inside the input.
void avgpool2d_backward(float* dx, const float* dy, const Pool2dParams& p);

}  // namespace nncore
