#include "common/cpu.hpp"

#include <atomic>
#if defined(NNCORE_X86) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif
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

// Walks the deterministic cache parameter leaf (4 on Intel, 0x8000001D on AMD): subleaf i
// describes one cache (type in EAX[4:0], 0 = no more; level EAX[7:5]); its size is
// ways * partitions * line size * sets = (EBX[31:22]+1) (EBX[21:12]+1) (EBX[11:0]+1) (ECX+1).
CacheSizes detect_caches() {
  CacheSizes c{32L << 10, 1L << 20, 32L << 20, false};
#if defined(NNCORE_X86) && (defined(__GNUC__) || defined(__clang__))
  unsigned a, b, cx, d;
  if (!__get_cpuid(0, &a, &b, &cx, &d)) return c;
  const bool amd = b == 0x68747541u;  // "Auth" of AuthenticAMD
  unsigned leaf = 4;
  if (amd || b == 0x6f677948u) {  // AMD, Hygon: needs the topology extensions (CPUID 0x80000001 ECX[22])
    if (!__get_cpuid(0x80000001u, &a, &b, &cx, &d) || !(cx & (1u << 22))) return c;
    leaf = 0x8000001Du;
  } else if (a < 4) {
    return c;
  }
  bool any = false;
  for (unsigned i = 0; i < 16; ++i) {
    __cpuid_count(leaf, i, a, b, cx, d);
    const unsigned type = a & 31u, level = (a >> 5) & 7u;
    if (type == 0) break;
    if (type == 2) continue;  // instruction cache
    const long size = static_cast<long>((b >> 22) + 1) * (((b >> 12) & 0x3ffu) + 1) *
                      ((b & 0xfffu) + 1) * (static_cast<long>(cx) + 1);
    if (size <= 0) continue;
    if (level == 1) c.l1d = size;
    else if (level == 2) c.l2 = size;
    else if (level == 3) c.l3 = size;
    else continue;
    any = true;
  }
  c.from_cpuid = any;
#endif
  return c;
}

}  // namespace

const CacheSizes& cpu_caches() {
  static const CacheSizes caches = detect_caches();
  return caches;
}

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
