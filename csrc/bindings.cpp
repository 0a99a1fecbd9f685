// The pybind11 module nncore._core. Each kernel family registers its functions from its own
// bind_*.cpp (listed in bind_list.hpp); this file only assembles them and records how the module
// was built.
#include <pybind11/pybind11.h>

#include "bind_list.hpp"

namespace py = pybind11;

namespace nncore::bind {
#define NNCORE_DECLARE_BINDING(name) void bind_##name(py::module_& m);
NNCORE_BINDINGS(NNCORE_DECLARE_BINDING)
#undef NNCORE_DECLARE_BINDING
}  // namespace nncore::bind

PYBIND11_MODULE(_core, m) {
  m.doc() = "nncore C++ kernels (float32, own thread pool). Use nncore.ops, not this module.";
#define NNCORE_CALL_BINDING(name) nncore::bind::bind_##name(m);
  NNCORE_BINDINGS(NNCORE_CALL_BINDING)
#undef NNCORE_CALL_BINDING
  m.attr("__version__") = NNCORE_VERSION;  // from pyproject.toml, through CMakeLists.txt
#if defined(__clang__)
  m.attr("compiler") = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.attr("compiler") = "gcc " __VERSION__;
#else
  m.attr("compiler") = "unknown";
#endif
}
