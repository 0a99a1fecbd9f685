// Work-unit sizing for parallel_units (common/parallel.hpp, which runs them).
#pragma once

#include <cstdint>

#include "common/parallel.hpp"

namespace nncore {

// Units of `align`-multiples covering [0, n): about `target` of them, sized from n alone. Never
// less than `align` (also for n == 0), so callers may divide by it.
inline int64_t unit_size(int64_t n, int64_t align, int64_t target) {
  const int64_t blocks = n > 0 ? (n + align - 1) / align : 1;
  return align * ((blocks + target - 1) / target);
}

}  // namespace nncore
