// nncore's own thread count and the one way kernels go parallel.
//
// Every kernel enters OpenMP only through parallel_run, which runs the body inline (no OpenMP call at
// all) when one thread is asked for or when we are in a forked child: GNU libgomp's thread pool
// does not survive fork() and a parallel region in the child would hang.
#pragma once

#include <omp.h>

#include <cstdint>

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

// Runs body(tid, nthreads) on nt threads. Splits must depend only on (tid, nthreads) and be aligned so
// that results are bitwise identical for any thread count.
template <class F>
void parallel_run(int nt, F&& body) {
  if (nt <= 1 || in_forked_child()) {
    body(0, 1);
    return;
  }
#pragma omp parallel num_threads(nt)
  body(omp_get_thread_num(), omp_get_num_threads());
}

// A barrier inside parallel_run's body; a no-op when the body runs inline.
inline void parallel_barrier(int nthreads) {
  if (nthreads > 1) {
#pragma omp barrier
  }
}

// [lo, hi) of `n` items for thread `tid` of `nt`, in contiguous chunks that are multiples of `align`.
inline void split_range(int64_t n, int tid, int nt, int64_t align, int64_t* lo, int64_t* hi) {
  int64_t units = (n + align - 1) / align;
  int64_t base = units / nt, extra = units % nt;
  int64_t u0 = tid * base + (tid < extra ? tid : extra);
  int64_t u1 = u0 + base + (tid < extra ? 1 : 0);
  *lo = u0 * align < n ? u0 * align : n;
  *hi = u1 * align < n ? u1 * align : n;
}

// Runs f(lo, hi) over [0, n) split into per-thread chunks aligned to `align`.
template <class F>
void parallel_for(int64_t n, int nt, int64_t align, F&& f) {
  parallel_run(nt, [&](int tid, int nth) {
    int64_t lo, hi;
    split_range(n, tid, nth, align, &lo, &hi);
    if (lo < hi) f(lo, hi);
  });
}

}  // namespace nncore
