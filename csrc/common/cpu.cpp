#include "common/cpu.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace nncore {
namespace {

Isa detect_cpu() {
#if defined(NNCORE_X86) && (defined(__GNUC__) || defined(__clang__))
  // __builtin_cpu_supports checks the CPUID bits and that the OS saves the wider registers (XGETBV).
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::generic;
}

// detect_cpu() lowered below every ISA named in NNCORE_TEST_CPU_MASK.
Isa detect() {
  int best = static_cast<int>(detect_cpu());
  if (const char* mask = std::getenv("NNCORE_TEST_CPU_MASK")) {
    std::string s(mask);
    for (size_t i = 0; i <= s.size();) {
      size_t j = s.find(',', i);
      if (j == std::string::npos) j = s.size();
      Isa hidden;
      if (parse_isa(s.substr(i, j - i).c_str(), &hidden) && hidden != Isa::generic &&
          static_cast<int>(hidden) <= best)
        best = static_cast<int>(hidden) - 1;
      i = j + 1;
    }
  }
  return static_cast<Isa>(best);
}

std::string& env_error() {
  static std::string err;
  return err;
}

Isa initial_isa() {
  Isa best = cpu_best_isa();
  const char* env = std::getenv("NNCORE_ISA");
  Isa forced;
  if (env && *env) {
    if (!parse_isa(env, &forced)) {
      env_error() = std::string("NNCORE_ISA='") + env + "' is not an ISA nncore knows (valid: " +
                    kIsaNames + ")";
      return best;
    }
    if (isa_supported(forced)) return forced;
  }
  return best;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

}  // namespace

Isa cpu_best_isa() {
  static const Isa best = detect();
  return best;
}

bool isa_supported(Isa isa) { return static_cast<int>(isa) <= static_cast<int>(cpu_best_isa()); }

const char* isa_env_error() {
  active_slot();  // NNCORE_ISA is read once, on first use
  return env_error().c_str();
}

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

bool set_active_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
  return true;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

bool parse_isa(const char* s, Isa* out) {
  if (!std::strcmp(s, "generic")) *out = Isa::generic;
  else if (!std::strcmp(s, "avx2")) *out = Isa::avx2;
  else if (!std::strcmp(s, "avx512")) *out = Isa::avx512;
  else return false;
  return true;
}

}  // namespace nncore
