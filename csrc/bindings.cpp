// The pybind11 module nncore._core. Each kernel family registers its functions from its own
// bind_*.cpp; this file only assembles them and records how the module was built.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

namespace nncore::bind {
void bind_gemm(py::module_& m);
void bind_train(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_rnn(py::module_& m);
void bind_norm(py::module_& m);
}  // namespace nncore::bind

PYBIND11_MODULE(_core, m) {
  m.doc() = "nncore C++ kernels (float32, OpenMP). Use nncore.ops, not this module.";
  nncore::bind::bind_gemm(m);
  nncore::bind::bind_train(m);
  nncore::bind::bind_conv(m);
  nncore::bind::bind_pool(m);
  nncore::bind::bind_rnn(m);
  nncore::bind::bind_norm(m);
#if defined(__clang__)
  m.attr("compiler") = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.attr("compiler") = "gcc " __VERSION__;
#else
  m.attr("compiler") = "unknown";
#endif
}
