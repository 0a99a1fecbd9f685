// CPU feature detection and the run-time choice of kernel ISA.
#pragma once

namespace nncore {

enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

// Best ISA the CPU and the OS both support (AVX state enabled in XCR0).
Isa cpu_best_isa();
// ISA the kernels use now: NNCORE_ISA at load time if set and supported, else cpu_best_isa().
Isa active_isa();
// Force an ISA (tests use this to cover every path). Returns false, changing nothing, if unsupported.
bool set_active_isa(Isa isa);
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);
// Parses "generic" / "avx2" / "avx512"; returns false on anything else.
bool parse_isa(const char* s, Isa* out);

}  // namespace nncore
