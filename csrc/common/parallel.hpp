// nncore's own thread count and the one way kernels go parallel: a small thread pool of its own.
//
// A parallel op is a set of work units that threads claim one at a time from a shared counter
// (run_units). The caller works too and returns once every unit is done; a worker that wakes late
// finds nothing left and is never waited for. So a thread descheduled by another process costs at
// most the unit it holds: no barriers, no static shares (measured with OpenMP's static teams: two
// thirds of the CPU samples of the MNIST conv stack on a loaded 2-core machine were spin-waits).
// Idle workers spin briefly, then sleep (OMP_WAIT_POLICY=passive: no spin; =active: a long spin).
//
// Results stay bitwise identical for any thread count as long as each unit's result depends only
// on the unit, never on which thread runs it or in which order units finish: units write disjoint
// outputs, and `tid` (< nt) only names per-thread scratch.
//
// Everything runs inline on the caller (no thread involved) when one thread is asked for, inside
// another unit (no nesting), while another caller's op is running (two Python threads calling
// kernels at once), and in a forked child: the pool's threads do not survive fork().
#pragma once

#include <cstdint>
#include <type_traits>

namespace nncore {

// Most threads nncore runs (set_num_threads refuses more; a larger OMP_NUM_THREADS is capped).
constexpr int kMaxThreads = 1024;

int get_num_threads();
void set_num_threads(int n);  // 1 <= n <= kMaxThreads
// True in a process forked from one that had loaded nncore; such a child runs serially.
bool in_forked_child();

// Threads to use for `work` units (e.g. flops) given `min_work` per thread and a cap (0 = setting).
inline int threads_for(double work, double min_work, int cap = 0) {
  int nt = cap > 0 ? cap : get_num_threads();
  if (in_forked_child()) return 1;
  double fit = work / min_work;
  if (fit < nt) nt = fit < 1.0 ? 1 : static_cast<int>(fit);
  return nt;
}

typedef void (*unit_fn)(void* ctx, int tid, int64_t unit);
// Runs fn(ctx, tid, u) for every u in [0, units) on up to nt threads (the caller is tid 0);
// returns when all are done. fn must not throw.
void run_units(int nt, int64_t units, unit_fn fn, void* ctx);

// f(tid, unit) for every unit in [0, units), claimed dynamically by up to nt threads.
template <class F>
void parallel_units(int64_t units, int nt, F&& f) {
  if (units <= 0) return;
  using Fn = typename std::remove_reference<F>::type;
  run_units(nt, units, [](void* ctx, int tid, int64_t u) { (*static_cast<Fn*>(ctx))(tid, u); },
            const_cast<void*>(static_cast<const void*>(&f)));
}

// body(part, nparts) for part in [0, nt): `part` is a unit, not a thread (one thread may run
// several parts, in any order), so parts must not wait for each other.
template <class F>
void parallel_run(int nt, F&& body) {
  if (nt <= 1) {
    body(0, 1);
    return;
  }
  parallel_units(nt, nt, [&](int, int64_t part) { body(static_cast<int>(part), nt); });
}

// [lo, hi) of `n` items for part `tid` of `nt`, in contiguous chunks that are multiples of `align`.
inline void split_range(int64_t n, int tid, int nt, int64_t align, int64_t* lo, int64_t* hi) {
  int64_t units = (n + align - 1) / align;
  int64_t base = units / nt, extra = units % nt;
  int64_t u0 = tid * base + (tid < extra ? tid : extra);
  int64_t u1 = u0 + base + (tid < extra ? 1 : 0);
  *lo = u0 * align < n ? u0 * align : n;
  *hi = u1 * align < n ? u1 * align : n;
}

// Runs f(lo, hi) over [0, n) split into nt chunks aligned to `align` (claimed dynamically).
template <class F>
void parallel_for(int64_t n, int nt, int64_t align, F&& f) {
  parallel_run(nt, [&](int part, int nparts) {
    int64_t lo, hi;
    split_range(n, part, nparts, align, &lo, &hi);
    if (lo < hi) f(lo, hi);
  });
}

}  // namespace nncore
