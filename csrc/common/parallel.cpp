// The thread pool behind run_units (see parallel.hpp for the contract).
//
// One job at a time. Its units are claimed from `ticket_` = generation << 32 | next unit with a
// compare-and-swap, so a claim can only succeed on the job it was read for: a worker that reads a
// job late and finds its units taken never touches the job's context, and the caller waits only
// for units actually claimed (`done_`), not for workers to show up.
#include "common/parallel.hpp"

#include <pthread.h>
#include <sched.h>
#include <strings.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace nncore {
namespace {

std::atomic<bool> g_forked_child{false};

// OMP_NUM_THREADS as the OpenMP runtime reads it: a positive integer, optionally the first of a
// list ("4,2": the outer level's count), blanks around it allowed. Anything else ("2abc", "0",
// "-1", "") is not a thread count and, as in libgomp, is ignored: the default applies. Returns 0
// then.
int threads_from_env(const char* env) {
  const char* s = env;
  while (*s == ' ' || *s == '\t') ++s;
  if (*s < '0' || *s > '9') return 0;
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  while (*end == ' ' || *end == '\t') ++end;
  if ((*end != '\0' && *end != ',') || v < 1) return 0;
  return v > kMaxThreads ? kMaxThreads : static_cast<int>(v);
}

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS"))
    if (int v = threads_from_env(env)) return v;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n >= 1) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n >= 1 ? static_cast<int>(n) : 1;
}

std::atomic<int>& threads_slot() {
  static std::atomic<int> slot{default_threads()};
  return slot;
}

// Any fork makes the child serial: the pool's threads are not copied into it.
void on_fork_child() { g_forked_child.store(true); }

struct ForkHook {
  ForkHook() { pthread_atfork(nullptr, nullptr, on_fork_child); }
} g_fork_hook;

inline void cpu_relax() {
#if defined(__SSE2__)
  _mm_pause();
#endif
}

// How long an idle thread spins before it sleeps. Between the kernels of a training step Python
// runs for tens of microseconds; a worker that sleeps through that costs little (it joins the
// next op late and the caller starts without it), while one that spins takes a core that the
// caller or another process could use. OMP_WAIT_POLICY is honoured as OpenMP defines it;
// NNCORE_SPIN_US (microseconds, read once at load) overrides both, for measurements.
std::chrono::microseconds spin_budget() {
  if (const char* us = std::getenv("NNCORE_SPIN_US")) {
    char* end = nullptr;
    const long v = std::strtol(us, &end, 10);
    if (end != us && *end == '\0' && v >= 0 && v <= 1000000) return std::chrono::microseconds(v);
  }
  const char* env = std::getenv("OMP_WAIT_POLICY");
  if (env && (!strcasecmp(env, "passive"))) return std::chrono::microseconds(0);
  if (env && (!strcasecmp(env, "active"))) return std::chrono::microseconds(20000);
  return std::chrono::microseconds(50);
}

// Spins until pred() or the budget is spent; true if pred() held.
template <class P>
bool spin_until(P&& pred, std::chrono::microseconds budget) {
  if (pred()) return true;
  if (budget.count() == 0) return false;
  const auto until = std::chrono::steady_clock::now() + budget;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      cpu_relax();
      if (pred()) return true;
    }
    if (std::chrono::steady_clock::now() >= until) return false;
  }
}

thread_local bool tl_in_unit = false;

class Pool {
 public:
  // False (nothing run) if another op holds the pool: the caller then runs inline.
  bool run(int nt, int64_t units, unit_fn fn, void* ctx) {
    std::unique_lock<std::mutex> job(job_mutex_, std::try_to_lock);
    if (!job.owns_lock()) return false;
    start_workers(nt - 1);
    fn_.store(fn, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    units_.store(units, std::memory_order_relaxed);
    nt_.store(nt, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    const uint64_t gen = (ticket_.load(std::memory_order_relaxed) >> 32) + 1;
    ticket_.store(gen << 32);  // publishes the job (seq_cst: ordered before the sleepers_ check)
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lk(m_);
      work_cv_.notify_all();
    }
    tl_in_unit = true;
    work(gen, 0);
    tl_in_unit = false;
    // Every unit is claimed now; wait for the ones other threads still run.
    auto finished = [&] { return done_.load(std::memory_order_acquire) >= units; };
    if (!spin_until(finished, spin_)) {
      std::unique_lock<std::mutex> lk(m_);
      caller_waiting_.store(true);
      done_cv_.wait(lk, finished);
      caller_waiting_.store(false);
    }
    return true;
  }

 private:
  // Claims and runs units of job `gen` until none is left.
  void work(uint64_t gen, int tid) {
    const unit_fn fn = fn_.load(std::memory_order_relaxed);
    void* const ctx = ctx_.load(std::memory_order_relaxed);
    const int64_t units = units_.load(std::memory_order_relaxed);
    uint64_t t = ticket_.load(std::memory_order_acquire);
    for (;;) {
      if ((t >> 32) != gen || static_cast<int64_t>(t & 0xffffffffu) >= units) return;
      if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
      fn(ctx, tid, static_cast<int64_t>(t & 0xffffffffu));
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == units && caller_waiting_.load()) {
        std::lock_guard<std::mutex> lk(m_);
        done_cv_.notify_one();
      }
      t = ticket_.load(std::memory_order_acquire);
    }
  }

  void worker(int tid) {
    tl_in_unit = true;  // a worker never starts a nested op
    uint64_t seen = 0;
    for (;;) {
      auto fresh = [&] { return (ticket_.load(std::memory_order_acquire) >> 32) != seen; };
      if (!spin_until(fresh, spin_)) {
        std::unique_lock<std::mutex> lk(m_);
        sleepers_.fetch_add(1);
        work_cv_.wait(lk, fresh);
        sleepers_.fetch_sub(1);
      }
      seen = ticket_.load(std::memory_order_acquire) >> 32;
      if (tid < nt_.load(std::memory_order_relaxed)) work(seen, tid);
    }
  }

  void start_workers(int n) {
    for (; started_ < n; ++started_) std::thread([this, tid = started_ + 1] { worker(tid); }).detach();
  }

  std::mutex job_mutex_;  // one op at a time
  std::atomic<uint64_t> ticket_{0};
  std::atomic<unit_fn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> units_{0};
  std::atomic<int> nt_{0};
  std::atomic<int64_t> done_{0};
  int started_ = 0;  // workers (tids 1..started_), under job_mutex_
  std::mutex m_;     // for sleeping only
  std::condition_variable work_cv_, done_cv_;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_waiting_{false};
  const std::chrono::microseconds spin_ = spin_budget();
};

// Never destroyed: its detached workers may still be waiting when the process exits.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int get_num_threads() { return threads_slot().load(std::memory_order_relaxed); }
void set_num_threads(int n) {
  threads_slot().store(n < 1 ? 1 : n > kMaxThreads ? kMaxThreads : n, std::memory_order_relaxed);
}
bool in_forked_child() { return g_forked_child.load(std::memory_order_relaxed); }

void run_units(int nt, int64_t units, unit_fn fn, void* ctx) {
  if (units <= 0) return;
  if (nt > units) nt = static_cast<int>(units);
  if (nt > kMaxThreads) nt = kMaxThreads;
  if (nt > 1 && !tl_in_unit && !in_forked_child() && units < (int64_t(1) << 32) &&
      pool().run(nt, units, fn, ctx))
    return;
  for (int64_t u = 0; u < units; ++u) fn(ctx, 0, u);
}

}  // namespace nncore
