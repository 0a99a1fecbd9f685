// _core.sgemm.
#include <algorithm>

#include "bind_util.hpp"
#include "common/cpu.hpp"
#include "kernels/gemm.hpp"

namespace nncore::bind {

namespace {

// c = act(alpha * op(a) @ op(b) + beta * c + bias). Shapes are checked here, not trusted.
void py_sgemm(py::array c, py::array a, py::array b, bool trans_a, bool trans_b, float alpha,
              float beta, py::object bias, bool relu, int num_threads, bool reference) {
  Matrix mc = as_matrix(c, "out", true);
  Matrix ma = as_matrix(a, "a", false);
  Matrix mb = as_matrix(b, "b", false);
  // The kernel writes each row of out as cols contiguous floats, ldc apart: a row vector whose
  // columns are strided (as_matrix calls it column-major) would be written past its elements.
  const bool strided_cols = mc.cols > 1 && c.strides(1) != static_cast<py::ssize_t>(sizeof(float));
  if ((mc.rows > 0 && strided_cols) || (mc.col_major && mc.rows > 1 && mc.cols > 1))
    throw py::value_error("out must be row-major with contiguous rows (unit column stride), got "
                          "shape " + shape_str(c) + " with strides (" +
                          std::to_string(c.strides(0)) + ", " + std::to_string(c.strides(1)) +
                          ")");
  // A column-major operand is the transpose of a row-major one: flip the flag instead of copying.
  const bool ta = trans_a != ma.col_major, tb = trans_b != mb.col_major;
  const int64_t m = trans_a ? ma.cols : ma.rows, k = trans_a ? ma.rows : ma.cols;
  const int64_t kb = trans_b ? mb.cols : mb.rows, n = trans_b ? mb.rows : mb.cols;
  if (k != kb)
    throw py::value_error("matmul: inner dimensions differ: op(a) is (" + std::to_string(m) + ", " +
                          std::to_string(k) + "), op(b) is (" + std::to_string(kb) + ", " +
                          std::to_string(n) + ")");
  if (mc.rows != m || mc.cols != n)
    throw py::value_error("matmul: out has shape " + shape_str(c) + ", expected (" +
                          std::to_string(m) + ", " + std::to_string(n) + ")");
  const float* bias_ptr = nullptr;
  py::array bias_arr;
  if (!bias.is_none()) {
    bias_arr = bias.cast<py::array>();
    bias_ptr = require_c(bias_arr, "bias", 1);
    require_shape(bias_arr, "bias", {n});
  }
  if (num_threads < 0) throw py::value_error("num_threads must be >= 0");
  GemmParams p;
  p.trans_a = ta;
  p.trans_b = tb;
  p.alpha = alpha;
  p.beta = beta;
  p.bias = bias_ptr;
  p.act = relu ? Act::relu : Act::none;
  p.num_threads = num_threads;
  // Leading dimensions as the kernel sees them (row stride of the stored matrix).
  const int64_t lda = ma.ld, ldb = mb.ld, ldc = mc.ld;
  {
    py::gil_scoped_release release;
    if (reference)
      sgemm_ref(mc.ptr, ldc, ma.ptr, lda, mb.ptr, ldb, m, n, k, p);
    else
      sgemm(mc.ptr, ldc, ma.ptr, lda, mb.ptr, ldb, m, n, k, p);
  }
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("sgemm", &py_sgemm, py::arg("out"), py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
        py::arg("bias") = py::none(), py::arg("relu") = false, py::arg("num_threads") = 0,
        py::arg("reference") = false,
        "out = act(alpha * op(a) @ op(b) + beta * out + bias), in place. float32 2-D arrays.");
  m.def("sgemm_kernel_name", &sgemm_kernel_name);
  m.def("cpu_caches", [] {
    const CacheSizes& c = cpu_caches();
    py::dict d;
    d["l1d"] = c.l1d, d["l2"] = c.l2, d["l3"] = c.l3;
    d["source"] = c.from_cpuid ? "cpuid" : "default";
    return d;
  }, "Data cache sizes in bytes (CPUID leaf 4 / 0x8000001D, else the tuning defaults).");
  m.def("gemm_blocks", [](const std::string& name) {
    Isa isa;
    if (!parse_isa(name.c_str(), &isa))
      throw py::value_error("gemm_blocks: unknown ISA '" + name + "' (valid: " + kIsaNames + ")");
    const GemmBlocks b = sgemm_blocks(isa);
    py::dict d;
    d["mr"] = b.mr, d["nr"] = b.nr, d["mc"] = b.mc, d["kc"] = b.kc, d["nc"] = b.nc;
    return d;
  }, py::arg("isa"), "The GEMM's register tile and cache blocks under `isa` on this CPU.");
}

}  // namespace nncore::bind
