// Dynamic scheduling on top of parallel_run: threads claim fixed work units one at a time.
//
// A static split hands each thread half the work up front; when another process takes one of the
// cores, the other thread finishes early and spins at the barrier (measured: two thirds of the CPU
// samples of the MNIST conv stack on a loaded 2-core machine were libgomp spin-waits). Claiming
// units from a shared counter lets the faster thread take more. Results stay bitwise identical for
// any thread count as long as each unit's result depends only on the unit, never on which thread
// runs it or in which order units finish: units must write disjoint outputs.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/parallel.hpp"

namespace nncore {

// Runs f(tid, unit) for every unit in [0, units) on up to nt threads, units claimed dynamically
// (tid < nt names the thread, e.g. for its own scratch).
template <class F>
void parallel_units(int64_t units, int nt, F&& f) {
  if (units <= 0) return;
  if (nt > units) nt = static_cast<int>(units);
  std::atomic<int64_t> next{0};
  parallel_run(nt, [&](int tid, int) {
    for (int64_t u = next.fetch_add(1, std::memory_order_relaxed); u < units;
         u = next.fetch_add(1, std::memory_order_relaxed))
      f(tid, u);
  });
}

// Units of `align`-multiples covering [0, n): about `target` of them, sized from n alone. Never
// less than `align` (also for n == 0), so callers may divide by it.
inline int64_t unit_size(int64_t n, int64_t align, int64_t target) {
  const int64_t blocks = n > 0 ? (n + align - 1) / align : 1;
  return align * ((blocks + target - 1) / target);
}

}  // namespace nncore
