// The ISA-specific part of pooling (the max pooling window scan), one table per ISA
// (common/dispatch.hpp). Free of templates and standard-library headers (see gemm_ukr.hpp).
#pragma once

#include <stdint.h>

namespace nncore {

// Window rows [h0, h1) and columns [w0, w1) of one output, clipped to the input.
struct PoolWindow {
  int64_t h0, h1, w0, w1;
};

// y, a (C) = value and cell (h*W + w) of the first maximum of xn (H,W,C) over the window, per
// channel: row-major scan, a later cell wins only when strictly greater (ties keep the first); a
// NaN wins over any number and then stays (a = the first NaN's cell), as PyTorch.
typedef void (*window_max_fn)(float* __restrict y, int32_t* __restrict a,
                              const float* __restrict xn, const PoolWindow& win, int64_t W,
                              int64_t C);

struct Pool2dKernels {
  window_max_fn window_max;
  // The same maximum values without the cells (inference: a is not written and may be null);
  // the argmax bookkeeping is dead code there, so the scan is a plain max.
  window_max_fn window_max_values;
  const char* max_name;
  const char* avg_name;
};

// The active ISA's value-only scan (window_max_values; pool2d.cpp), for kernels that pool what
// they just computed (depthwise2d_forward_maxpool2) with the pooling layer's own bits.
window_max_fn active_window_max_values();

#if defined(NNCORE_X86)
extern const Pool2dKernels kPool2dAvx2;    // pool2d_avx2.cpp
extern const Pool2dKernels kPool2dAvx512;  // pool2d_avx512.cpp
#endif

}  // namespace nncore
