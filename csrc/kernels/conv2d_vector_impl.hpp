// The elementwise passes of the Conv2D backward, compiled once per ISA by the files that include
// this header (conv2d.cpp for the portable table, conv2d_direct_<isa>.cpp with their flags).
// Exact operations (a select, and sums in row order per column), so every ISA gives the same
// bits. Internal linkage only, no standard-library headers (see gemm_ukr.hpp).
#pragma once

#include <stdint.h>

namespace nncore {
namespace {

// g = dy * (y > 0), elementwise over n values.
void relu_mask(float* __restrict g, const float* __restrict dy, const float* __restrict y,
               int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float d = dy[i];  // loaded unconditionally so the loop vectorises to a blend
    g[i] = y[i] > 0.0f ? d : 0.0f;
  }
}

// acc (F) += sum of the rows of g (rows, F), in row order.
void add_column_sums(float* __restrict acc, const float* __restrict g, int64_t rows, int64_t F) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* gr = g + r * F;
    for (int64_t j = 0; j < F; ++j) acc[j] += gr[j];
  }
}

}  // namespace
}  // namespace nncore
