#include "common/dispatch.hpp"

namespace nncore {
namespace {

std::vector<KernelFamily>& registry() {
  static std::vector<KernelFamily> families;
  return families;
}

}  // namespace

const std::vector<KernelFamily>& kernel_families() { return registry(); }

KernelFamilyRegistrar::KernelFamilyRegistrar(const char* family, const char* (*kernel_for)(Isa)) {
  registry().push_back({family, kernel_for});
}

}  // namespace nncore
