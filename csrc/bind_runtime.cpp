// _core's run-time configuration: ISA, threads, and which kernel each family uses.
#include <pybind11/stl.h>

#include <map>
#include <string>
#include <vector>

#include "bind_util.hpp"
#include "common/cpu.hpp"
#include "common/dispatch.hpp"
#include "common/parallel.hpp"

namespace nncore::bind {

namespace {

Isa isa_from(const std::string& name) {
  Isa isa;
  if (!parse_isa(name.c_str(), &isa))
    throw py::value_error("unknown ISA '" + name + "' (valid: " + kIsaNames + ")");
  return isa;
}

// family -> kernel name for `isa` (any ISA this binary has, supported by the CPU or not).
std::map<std::string, std::string> kernels_for(Isa isa) {
  std::map<std::string, std::string> out;
  for (const KernelFamily& f : kernel_families()) out[f.family] = f.kernel_for(isa);
  return out;
}

}  // namespace

void bind_runtime(py::module_& m) {
  if (*isa_env_error()) throw py::value_error(isa_env_error());
  m.attr("max_threads") = kMaxThreads;
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1 || n > kMaxThreads)
      throw py::value_error("number of threads must be in [1, " + std::to_string(kMaxThreads) +
                            "], got " + std::to_string(n));
    set_num_threads(n);
  });
  m.def("in_forked_child", &in_forked_child);
  m.def("cpu_isa", [] { return std::string(isa_name(cpu_best_isa())); });
  m.def("get_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("set_isa", [](const std::string& name) {
    Isa isa = isa_from(name);
    if (!set_active_isa(isa))
      throw py::value_error(std::string("ISA '") + name + "' is not supported by this CPU (best: " +
                            isa_name(cpu_best_isa()) + ")");
  });
  m.def("supported_isas", [] {
    std::vector<std::string> out;
    for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512})
      if (isa_supported(isa)) out.push_back(isa_name(isa));
    return out;
  });
  m.def("kernels", [](const std::string& isa) { return kernels_for(isa_from(isa)); },
        py::arg("isa"), "Kernel family -> the kernel it runs under `isa` (the dispatch tables).");
}

}  // namespace nncore::bind
