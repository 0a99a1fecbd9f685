// The projective image resampler of the augmentation layers (RandomRotation, RandomTranslation,
// RandomZoom), with the semantics of TensorFlow's ImageProjectiveTransformV3 (what Keras 3's
// ops.image.affine_transform calls): output pixel (x, y) of image b reads the input at
// ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1, from the 8 numbers
// t[b] = [a0 a1 a2 b0 b1 b2 c0 c1]; k == 0 (or a non-finite coordinate) reads the fill value.
// Coordinates are mapped by fill_mode (constant: as is; nearest: clamp; reflect: dcba|abcd|dcba;
// wrap: TF's periodic rule), then read by interpolation (nearest: round half away from zero;
// bilinear: the four neighbours); a tap outside the image reads fill_value. Coordinates and tap
// weights are double; each output value is summed in double and rounded once.
// NHWC, any channel count, float32 or float64. nncore/layers/augmentation.py holds the NumPy
// twin (affine_plan / affine_apply / affine_backward) the tests compare against.
#pragma once

#include <cstdint>

namespace nncore {

enum AffineFill : int { kFillConstant = 0, kFillNearest = 1, kFillReflect = 2, kFillWrap = 3 };
enum AffineInterp : int { kInterpBilinear = 0, kInterpNearest = 1 };

// y (b, h, w, c) from x (b, h, w, c); parallel over (image, output row) units, so bitwise
// identical for any thread count.
template <class T>
void affine_forward(const T* x, const double* t, int64_t b, int64_t h, int64_t w, int64_t c,
                    int fill, int interp, double fill_value, T* y);
// The adjoint: dx (b, h, w, c) = sum over output pixels and taps of weight * dy (taps outside
// the image get nothing: the fill value is a constant). Parallel over images; within an image
// the sums run in one fixed order, so bitwise identical for any thread count.
template <class T>
void affine_backward(const T* dy, const double* t, int64_t b, int64_t h, int64_t w, int64_t c,
                     int fill, int interp, T* dx);

}  // namespace nncore
