#include "common/parallel.hpp"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdlib>

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
  int n = omp_get_num_procs();
  return n >= 1 ? n : 1;
}

std::atomic<int>& threads_slot() {
  static std::atomic<int> slot{default_threads()};
  return slot;
}

// Any fork makes the child serial, not only one after nncore's own parallel regions: another
// extension linked to the same libgomp may have started its thread pool, and a parallel region in
// the child would then hang just the same.
void on_fork_child() { g_forked_child.store(true); }

struct ForkHook {
  ForkHook() { pthread_atfork(nullptr, nullptr, on_fork_child); }
} g_fork_hook;

}  // namespace

int get_num_threads() { return threads_slot().load(std::memory_order_relaxed); }
void set_num_threads(int n) {
  threads_slot().store(n < 1 ? 1 : n > kMaxThreads ? kMaxThreads : n, std::memory_order_relaxed);
}
bool in_forked_child() { return g_forked_child.load(std::memory_order_relaxed); }

}  // namespace nncore
