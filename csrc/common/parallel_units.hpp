// Work-unit sizing for parallel_units (common/parallel.hpp, which runs them).
#pragma once

#include <atomic>
#include <cstdint>
#include <new>

#include "common/parallel.hpp"

namespace nncore {

// Units of `align`-multiples covering [0, n): about `target` of them, sized from n alone. Never
// less than `align` (also for n == 0), so callers may divide by it.
inline int64_t unit_size(int64_t n, int64_t align, int64_t target) {
  const int64_t blocks = n > 0 ? (n + align - 1) / align : 1;
  return align * ((blocks + target - 1) / target);
}

// parallel_units whose body may throw std::bad_alloc (an sgemm packing buffer in a worker thread):
// the exception is caught inside the region and rethrown after it, never escaping a pool thread.
template <class F>
void parallel_units_guarded(int64_t units, int nt, F&& f) {
  std::atomic<bool> failed{false};
  parallel_units(units, nt, [&](int tid, int64_t u) {
    if (failed.load(std::memory_order_relaxed)) return;
    try {
      f(tid, u);
    } catch (...) {
      failed.store(true);
    }
  });
  if (failed.load()) throw std::bad_alloc();
}

}  // namespace nncore
