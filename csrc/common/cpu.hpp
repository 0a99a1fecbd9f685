// CPU feature detection and the run-time choice of kernel ISA.
#pragma once

namespace nncore {

enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

// Best ISA the CPU and the OS both support (AVX state enabled in XCR0).
Isa cpu_best_isa();
// ISA the kernels use now: NNCORE_ISA at load time if set and supported, else cpu_best_isa().
// (A valid NNCORE_ISA this CPU lacks falls back to cpu_best_isa(); a name nncore does not know is
// reported by isa_env_error and refused when the module loads.)
Isa active_isa();
// Non-empty when NNCORE_ISA names no ISA: the message lists the valid names.
const char* isa_env_error();
// Force an ISA (tests use this to cover every path). Returns false, changing nothing, if unsupported.
bool set_active_isa(Isa isa);
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);
// Parses "generic" / "avx2" / "avx512"; returns false on anything else.
bool parse_isa(const char* s, Isa* out);
constexpr const char* kIsaNames = "generic, avx2, avx512";

// Data cache sizes in bytes per core (L3: the size one core's slice of the hierarchy shares), from
// CPUID: leaf 4 (Intel) or leaf 0x8000001D (AMD, with the topology extension), the deterministic
// cache parameters both describe. `from_cpuid` is false when neither answered; the sizes are then
// the defaults the kernels were tuned with (32 KB, 1 MB, 32 MB).
struct CacheSizes {
  long l1d, l2, l3;
  bool from_cpuid;
};
const CacheSizes& cpu_caches();

// Test-only: NNCORE_TEST_CPU_MASK="avx512" (or "avx2", a comma list) hides those ISAs from
// detection, as if the CPU lacked them, so the refusal paths run on every machine.

}  // namespace nncore
