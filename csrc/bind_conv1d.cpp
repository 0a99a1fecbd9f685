// _core.conv1d_forward / conv1d_backward (stride 1, undilated Conv1D: conv1d.hpp) and
// _core.conv1d_uses_winograd: shape checks, geometry ('valid' / 'same' / 'causal'), GIL release.
#include <pybind11/stl.h>

#include <string>

#include "bind_util.hpp"
#include "common/array_pool.hpp"
#include "kernels/conv1d.hpp"

namespace nncore::bind {

namespace {

// TF's 'same' for stride 1: pad_total = K - 1, pad_left = pad_total / 2; 'causal': all K - 1 on
// the left; 'valid': none, OL = L - K + 1.
Conv1dParams make_params(const py::array& x, const py::array& w, const std::string& padding,
                         bool relu) {
  if (x.ndim() != 3 || w.ndim() != 3)
    throw py::value_error("conv1d: x must be (N, L, C) and w (K, C, F), got " + shape_str(x) +
                          " and " + shape_str(w));
  Conv1dParams p;
  p.n = x.shape(0), p.l = x.shape(1), p.c = x.shape(2);
  p.k = w.shape(0), p.f = w.shape(2);
  if (p.l < 1 || p.c < 1 || p.f < 1)
    throw py::value_error("conv1d: x must have L, C >= 1 and w F >= 1, got x " + shape_str(x) +
                          " and w " + shape_str(w));
  if (w.shape(1) != p.c)
    throw py::value_error("conv1d: w has shape " + shape_str(w) + " but x " + shape_str(x) +
                          " has " + std::to_string(p.c) + " channels");
  if (p.k < kConv1dMinK || p.k > kConv1dMaxK)
    throw py::value_error("conv1d: kernel size must be in [" + std::to_string(kConv1dMinK) + ", " +
                          std::to_string(kConv1dMaxK) + "], got " + std::to_string(p.k));
  if (padding == "same") p.ol = p.l, p.pl = (p.k - 1) / 2;
  else if (padding == "causal") p.ol = p.l, p.pl = p.k - 1;
  else if (padding == "valid") p.ol = p.l - p.k + 1, p.pl = 0;
  else throw py::value_error("conv1d: padding must be 'valid', 'same' or 'causal', got '" +
                             padding + "'");
  if (p.ol < 1)
    throw py::value_error("conv1d: input length " + std::to_string(p.l) +
                          " is shorter than the kernel " + std::to_string(p.k) +
                          " with padding='valid'");
  p.act = relu ? Act::relu : Act::none;
  return p;
}

py::array_t<float> new_f32(std::initializer_list<int64_t> shape) {
  return pooled_array<float>(std::vector<int64_t>(shape));
}

py::array_t<float> py_conv1d_forward(py::array x, py::array w, py::object b,
                                     const std::string& padding, bool relu) {
  const float* xp = require_c(x, "x", 3);
  const float* wp = require_c(w, "w", 3);
  const Conv1dParams p = make_params(x, w, padding, relu);
  py::array barr;
  const float* bp = optional(b, "b", {p.f}, &barr);
  auto y = new_f32({p.n, p.ol, p.f});
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release r;
    conv1d_winograd_forward(yp, xp, wp, bp, p);
  }
  return y;
}

py::tuple py_conv1d_backward(py::array dz, py::array x, py::array w, py::object y,
                             const std::string& padding, bool relu, bool need_dx, bool has_bias) {
  const float* xp = require_c(x, "x", 3);
  const float* wp = require_c(w, "w", 3);
  const Conv1dParams p = make_params(x, w, padding, relu);
  const float* dzp = require_c(dz, "dy", 3);
  require_shape(dz, "dy", {p.n, p.ol, p.f});
  py::array yarr;
  const float* yp = optional(y, "y", {p.n, p.ol, p.f}, &yarr);
  if (relu && yp == nullptr) throw py::value_error("conv1d_backward: relu=True needs y");
  auto dw = new_f32({p.k, p.c, p.f});
  float* dxp;
  float* dbp;
  py::object dx = optional_out(need_dx, {p.n, p.l, p.c}, &dxp);
  py::object db = optional_out(has_bias, {p.f}, &dbp);
  float* dwp = dw.mutable_data();
  {
    py::gil_scoped_release r;
    conv1d_backward(dxp, dwp, dbp, dzp, xp, wp, yp, p);
  }
  return py::make_tuple(dx, dw, db);
}

}  // namespace

void bind_conv1d(py::module_& m) {
  m.def("conv1d_forward", &py_conv1d_forward, py::arg("x"), py::arg("w"), py::arg("b"),
        py::arg("padding"), py::arg("relu"),
        "y = act(conv1d(x, w) + b), stride 1, undilated, as Winograd F(8-K+1, K); x (N,L,C), "
        "w (K,C,F) float32 C-contiguous, 2 <= K <= 7, padding 'valid', 'same' or 'causal'.");
  m.def("conv1d_backward", &py_conv1d_backward, py::arg("dy"), py::arg("x"), py::arg("w"),
        py::arg("y"), py::arg("padding"), py::arg("relu"), py::arg("need_dx"),
        py::arg("has_bias"),
        "(dx or None, dw, db or None) of conv1d_forward; relu masks dy by y > 0.");
  m.def("conv1d_uses_winograd", &conv1d_winograd_pays, py::arg("k"), py::arg("c"), py::arg("f"),
        "Whether a stride-1 undilated Conv1D with kernel size k, c input and f output channels "
        "runs on conv1d_forward / conv1d_backward (else on the Conv2D kernels with H = 1).");
}

}  // namespace nncore::bind
