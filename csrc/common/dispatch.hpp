// The one way a kernel family picks its ISA-specific code (after BLIS's per-CPU context and
// PyTorch's DispatchStub):
//
//   struct FooKernels { foo_fn run; int64_t block; const char* name; };   // family's table type
//   extern const FooKernels kFooAvx2;             // defined in foo_avx2.cpp (compiled with -mavx2)
//   const FooKernels kFooGeneric = {...};         // portable fallback, in foo.cpp
//   constexpr PerIsa<FooKernels> kFoo = {&kFooGeneric, &kFooAvx2, nullptr};
//   NNCORE_KERNEL_FAMILY(foo, kFoo, name);        // show_config()["kernels"]["foo"]
//   ... const FooKernels& k = kFoo.active();      // at each call, so set_isa takes effect at once
//
// Tables are plain constant data (kernel pointers, the block sizes they were tuned with, a name),
// filled at compile time; CPUID only decides which one active_isa() selects. A missing entry
// (nullptr) falls back to the next lower ISA, so a family may have fewer tables than ISAs.
#pragma once

#include <vector>

#include "common/cpu.hpp"

namespace nncore {

template <class T>
struct PerIsa {
  const T* generic;
  const T* avx2;
  const T* avx512;

  // The table for `isa`, or the nearest lower one present (generic must be present).
  const T& get(Isa isa) const {
    if (isa == Isa::avx512 && avx512) return *avx512;
    if (isa != Isa::generic && avx2) return *avx2;
    return *generic;
  }
  const T& active() const { return get(active_isa()); }
};

// The kernel families, for show_config()["kernels"]: name and, per ISA, the kernel it would use.
struct KernelFamily {
  const char* family;
  const char* (*kernel_for)(Isa);
};
// In registration order (static initialisation; order between files is unspecified, callers sort).
const std::vector<KernelFamily>& kernel_families();
struct KernelFamilyRegistrar {
  KernelFamilyRegistrar(const char* family, const char* (*kernel_for)(Isa));
};

// Registers `family`, named by the table member `name` (a table may serve several families).
#define NNCORE_KERNEL_FAMILY(family, per_isa, name)                                    \
  static const ::nncore::KernelFamilyRegistrar nncore_family_##family(                 \
      #family, [](::nncore::Isa isa) -> const char* { return (per_isa).get(isa).name; })

}  // namespace nncore
