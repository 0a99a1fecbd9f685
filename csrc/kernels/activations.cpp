// Activation functions forward and backward (backward from the forward output y).
// Parallel level: element ranges (or rows for softmax), no reductions across the split.
#include <algorithm>
#include <cmath>

#include "common/parallel.hpp"
#include "kernels/train.hpp"

namespace nncore {

namespace {

inline float sigmoid(float x) {
  // Stable for large |x|: exp never overflows.
  if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
  float e = std::exp(x);
  return e / (1.0f + e);
}

// y (C,) = softmax(x (C,)); y may alias x.
inline void softmax_row(float* y, const float* x, int64_t c) {
  float mx = x[0];
  for (int64_t j = 1; j < c; ++j) mx = std::max(mx, x[j]);
  float s = 0.0f;
  for (int64_t j = 0; j < c; ++j) {
    y[j] = std::exp(x[j] - mx);
    s += y[j];
  }
  const float inv = 1.0f / s;
  for (int64_t j = 0; j < c; ++j) y[j] *= inv;
}

}  // namespace

// x (N,C) -> y (N,C)
void activation_forward(float* y, const float* x, int64_t n, int64_t c, ActKind act) {
  const int64_t total = n * c;
  if (act == ActKind::softmax) {
    parallel_for(n, threads_for(double(total) * 8, 1 << 16), 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) softmax_row(y + i * c, x + i * c, c);
    });
    return;
  }
  const double cost = act == ActKind::relu || act == ActKind::linear ? 1 : 16;
  parallel_for(total, threads_for(total * cost, 1 << 16), 64, [&](int64_t lo, int64_t hi) {
    switch (act) {
      case ActKind::relu:
        for (int64_t i = lo; i < hi; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];  // NaN stays
        break;
      case ActKind::sigmoid:
        for (int64_t i = lo; i < hi; ++i) y[i] = sigmoid(x[i]);
        break;
      case ActKind::tanh:
        for (int64_t i = lo; i < hi; ++i) y[i] = std::tanh(x[i]);
        break;
      default:
        if (y != x) std::copy(x + lo, x + hi, y + lo);
    }
  });
}

// dy, y (N,C) -> dx (N,C)
void activation_backward(float* dx, const float* dy, const float* y, int64_t n, int64_t c,
                         ActKind act) {
  const int64_t total = n * c;
  if (act == ActKind::softmax) {
    // dx = y * (dy - <dy, y>) per row.
    parallel_for(n, threads_for(double(total) * 3, 1 << 16), 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const float* yr = y + i * c;
        const float* dr = dy + i * c;
        float* out = dx + i * c;
        float dot = 0.0f;
        for (int64_t j = 0; j < c; ++j) dot += dr[j] * yr[j];
        for (int64_t j = 0; j < c; ++j) out[j] = yr[j] * (dr[j] - dot);
      }
    });
    return;
  }
  parallel_for(total, threads_for(double(total), 1 << 16), 64, [&](int64_t lo, int64_t hi) {
    switch (act) {
      case ActKind::relu:
        for (int64_t i = lo; i < hi; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        break;
      case ActKind::sigmoid:
        for (int64_t i = lo; i < hi; ++i) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
        break;
      case ActKind::tanh:
        for (int64_t i = lo; i < hi; ++i) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
      default:
        if (dx != dy) std::copy(dy + lo, dy + hi, dx + lo);
    }
  });
}

}  // namespace nncore
