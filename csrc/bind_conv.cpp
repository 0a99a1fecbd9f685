// _core.conv2d_forward / conv2d_backward: shape checks, geometry ('valid'/'same'), GIL release.
#include <pybind11/stl.h>

#include <array>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "bind_util.hpp"
#include "common/array_pool.hpp"
#include "kernels/conv2d.hpp"
#include "kernels/conv2d_winograd.hpp"
#include "kernels/depthwise2d.hpp"

namespace nncore::bind {

namespace {

using Pair = std::pair<int64_t, int64_t>;

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    throw py::value_error(std::string("conv2d: ") + what + " overflows int64");
  return r;
}

int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    throw py::value_error(std::string("conv2d: ") + what + " overflows int64");
  return r;
}

// One axis (conv2d_axis), with the binding's checks and messages.
std::pair<int64_t, int64_t> axis(int64_t in, int64_t k, int64_t s, int64_t d, bool same,
                                 const char* dim) {
  const int64_t ek = checked_mul(k - 1, d, "dilated kernel size") + 1;
  int64_t out, pad;
  if (!conv2d_axis(in, k, s, d, same, &out, &pad))
    throw py::value_error(std::string("conv2d: kernel ") + dim + " (dilated: " +
                          std::to_string(ek) + ") is larger than the input " + dim + " " +
                          std::to_string(in) + " with padding='valid'");
  return {out, pad};
}

// The geometry both parameter sets share (Conv2dParams, Depthwise2dParams): input sizes, kernel
// extent, strides, dilation, the output size and leading pads of each axis, the fused ReLU.
template <class P>
void set_geometry(P& p, const py::array& x, const py::array& k, Pair strides, bool same,
                  Pair dilation, bool relu) {
  p.n = x.shape(0), p.h = x.shape(1), p.w = x.shape(2), p.c = x.shape(3);
  p.kh = k.shape(0), p.kw = k.shape(1);
  p.sh = strides.first, p.sw = strides.second, p.dh = dilation.first, p.dw = dilation.second;
  std::tie(p.oh, p.pt) = axis(p.h, p.kh, p.sh, p.dh, same, "height");
  std::tie(p.ow, p.pl) = axis(p.w, p.kw, p.sw, p.dw, same, "width");
  p.act = relu ? Act::relu : Act::none;
}

Conv2dParams make_params(const py::array& x, const py::array& w, Pair strides, bool same,
                         Pair dilation, bool relu) {
  if (x.shape(1) < 1 || x.shape(2) < 1 || x.shape(3) < 1)
    throw py::value_error("conv2d: x must have H, W, C >= 1, got shape " + shape_str(x));
  if (w.shape(0) < 1 || w.shape(1) < 1 || w.shape(3) < 1)
    throw py::value_error("conv2d: w must have KH, KW, F >= 1, got shape " + shape_str(w));
  if (w.shape(2) != x.shape(3))
    throw py::value_error("conv2d: w has shape " + shape_str(w) + " but x " + shape_str(x) +
                          " has " + std::to_string(x.shape(3)) + " channels");
  if (strides.first < 1 || strides.second < 1)
    throw py::value_error("conv2d: strides must be >= 1");
  if (dilation.first < 1 || dilation.second < 1)
    throw py::value_error("conv2d: dilation_rate must be >= 1");
  Conv2dParams p;
  set_geometry(p, x, w, strides, same, dilation, relu);
  p.f = w.shape(3);
  // Sizes the kernels form: the output and one image's patch matrix.
  const int64_t rows = checked_mul(checked_mul(p.n, p.oh, "output size"), p.ow, "output size");
  checked_mul(checked_mul(rows, p.f, "output size"), 4, "output size");
  // (oh * ow is checked on its own: with N = 0 the output-size check above passes whatever it is.)
  checked_mul(checked_mul(checked_mul(p.oh, p.ow, "patch matrix size"),
                          checked_mul(checked_mul(p.kh, p.kw, "patch matrix size"), p.c,
                                      "patch matrix size"),
                          "patch matrix size"),
              4, "patch matrix size");
  // The zero-padded copy of x that 'same' windows read: (OH-1)*sh + ekh rows, likewise columns.
  const int64_t ph = checked_add(checked_mul(p.oh - 1, p.sh, "padded input size"),
                                 (p.kh - 1) * p.dh + 1, "padded input size");
  const int64_t pw = checked_add(checked_mul(p.ow - 1, p.sw, "padded input size"),
                                 (p.kw - 1) * p.dw + 1, "padded input size");
  checked_mul(checked_mul(checked_mul(checked_mul(p.n, ph, "padded input size"), pw,
                                      "padded input size"),
                          p.c, "padded input size"),
              4, "padded input size");
  return p;
}

py::array_t<float> new_f32(std::initializer_list<int64_t> shape) {
  return pooled_array<float>(std::vector<int64_t>(shape));
}

py::array_t<float> py_conv2d_forward(py::array x, py::array w, py::object b, Pair strides,
                                     bool same, Pair dilation, bool relu, bool reference) {
  const float* xp = require_c(x, "x", 4);
  const float* wp = require_c(w, "w", 4);
  Conv2dParams p = make_params(x, w, strides, same, dilation, relu);
  py::array barr;
  const float* bp = optional(b, "b", {p.f}, &barr);
  auto y = new_f32({p.n, p.oh, p.ow, p.f});
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release r;
    if (reference) conv2d_forward_ref(yp, xp, wp, bp, p);
    else conv2d_forward(yp, xp, wp, bp, p);
  }
  return y;
}

py::tuple py_conv2d_backward(py::array dy, py::array x, py::array w, py::object y, Pair strides,
                             bool same, Pair dilation, bool relu, bool need_dx, bool has_bias,
                             bool reference) {
  const float* xp = require_c(x, "x", 4);
  const float* wp = require_c(w, "w", 4);
  Conv2dParams p = make_params(x, w, strides, same, dilation, relu);
  const float* dyp = require_c(dy, "dy", 4);
  require_shape(dy, "dy", {p.n, p.oh, p.ow, p.f});
  const float* yp = nullptr;
  py::array yarr;
  if (relu) {
    if (y.is_none()) throw py::value_error("conv2d_backward: activation='relu' needs y");
    yarr = y.cast<py::array>();
    yp = require_c(yarr, "y", 4);
    require_shape(yarr, "y", {p.n, p.oh, p.ow, p.f});
  }
  auto dw = new_f32({p.kh, p.kw, p.c, p.f});
  float* dxp;
  float* dbp;
  py::object dx = optional_out(need_dx, {p.n, p.h, p.w, p.c}, &dxp);
  py::object db = optional_out(has_bias, {p.f}, &dbp);
  float* dwp = dw.mutable_data();
  {
    py::gil_scoped_release r;
    if (reference) conv2d_backward_ref(dxp, dwp, dbp, dyp, xp, wp, yp, p);
    else conv2d_backward(dxp, dwp, dbp, dyp, xp, wp, yp, p);
  }
  return py::make_tuple(dx, dw, db);
}

// x (N,H,W,C), k (KH,KW,C,M), b (C*M,) or None -> y (N,OH,OW,C*M); cap: min(cap, .) last;
// maxpool2: then a 2x2 stride-2 'valid' max pooling in the same pass -> (N,OH/2,OW/2,C*M).
py::array_t<float> py_depthwise2d_forward(py::array x, py::array k, py::object b, Pair strides,
                                          bool same, Pair dilation, bool relu, py::object cap,
                                          bool reference, bool maxpool2) {
  const float* xp = require_c(x, "x", 4);
  const float* kp = require_c(k, "k", 4);
  if (x.shape(1) < 1 || x.shape(2) < 1 || x.shape(3) < 1)
    throw py::value_error("depthwise2d: x must have H, W, C >= 1, got shape " + shape_str(x));
  if (k.shape(0) < 1 || k.shape(1) < 1 || k.shape(3) < 1 || k.shape(2) != x.shape(3))
    throw py::value_error("depthwise2d: k has shape " + shape_str(k) + ", which does not fit x " +
                          shape_str(x) + " (KH, KW, M >= 1, C equal to x's channels)");
  if (strides.first < 1 || strides.second < 1 || dilation.first < 1 || dilation.second < 1)
    throw py::value_error("depthwise2d: strides and dilation_rate must be >= 1");
  Depthwise2dParams p;
  set_geometry(p, x, k, strides, same, dilation, relu);
  p.m = k.shape(3);
  if (!cap.is_none()) {
    p.cap = cap.cast<float>();
    p.has_cap = true;
  }
  const int64_t o = checked_mul(p.c, p.m, "output channels");
  const int64_t rows = checked_mul(checked_mul(p.n, p.oh, "output size"), p.ow, "output size");
  checked_mul(checked_mul(rows, o, "output size"), 4, "output size");
  py::array barr;
  const float* bp = optional(b, "b", {o}, &barr);
  if (maxpool2) {
    if (reference)
      throw py::value_error("depthwise2d: maxpool2 has no reference path (pool the reference)");
    if (p.oh < 2 || p.ow < 2)
      throw py::value_error("depthwise2d: maxpool2 needs an output of at least 2x2, got " +
                            std::to_string(p.oh) + "x" + std::to_string(p.ow));
    auto y = new_f32({p.n, p.oh / 2, p.ow / 2, o});
    float* yp = y.mutable_data();
    {
      py::gil_scoped_release r;
      depthwise2d_forward_maxpool2(yp, xp, kp, bp, p);
    }
    return y;
  }
  auto y = new_f32({p.n, p.oh, p.ow, o});
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release r;
    if (reference) depthwise2d_forward_ref(yp, xp, kp, bp, p);
    else depthwise2d_forward(yp, xp, kp, bp, p);
  }
  return y;
}


// dy (N,OH,OW,C*M), x (N,H,W,C), k (KH,KW,C,M) -> (dx or None, dk, db or None) of
// depthwise2d_forward without activation (dy is the gradient of the pre-activation sum).
py::tuple py_depthwise2d_backward(py::array dy, py::array x, py::array k, Pair strides, bool same,
                                  Pair dilation, bool need_dx, bool has_bias, bool reference) {
  const float* xp = require_c(x, "x", 4);
  const float* kp = require_c(k, "k", 4);
  const float* dyp = require_c(dy, "dy", 4);
  if (x.shape(1) < 1 || x.shape(2) < 1 || x.shape(3) < 1)
    throw py::value_error("depthwise2d_backward: x must have H, W, C >= 1, got shape " +
                          shape_str(x));
  if (k.shape(0) < 1 || k.shape(1) < 1 || k.shape(3) < 1 || k.shape(2) != x.shape(3))
    throw py::value_error("depthwise2d_backward: k has shape " + shape_str(k) +
                          ", which does not fit x " + shape_str(x) +
                          " (KH, KW, M >= 1, C equal to x's channels)");
  if (strides.first < 1 || strides.second < 1 || dilation.first < 1 || dilation.second < 1)
    throw py::value_error("depthwise2d_backward: strides and dilation_rate must be >= 1");
  Depthwise2dParams p;
  set_geometry(p, x, k, strides, same, dilation, false);
  p.m = k.shape(3);
  const int64_t o = checked_mul(p.c, p.m, "output channels");
  checked_mul(checked_mul(checked_mul(p.n, p.oh, "output size"), p.ow, "output size"), o,
              "output size");
  if (dy.shape(0) != p.n || dy.shape(1) != p.oh || dy.shape(2) != p.ow || dy.shape(3) != o)
    throw py::value_error("depthwise2d_backward: dy has shape " + shape_str(dy) + " but x " +
                          shape_str(x) + " and k " + shape_str(k) + " give the output (" +
                          std::to_string(p.n) + ", " + std::to_string(p.oh) + ", " +
                          std::to_string(p.ow) + ", " + std::to_string(o) + ")");
  py::object dx = py::none(), db = py::none();
  float* dxp = nullptr;
  float* dbp = nullptr;
  if (need_dx) {
    auto a = new_f32({p.n, p.h, p.w, p.c});
    dxp = a.mutable_data();
    dx = a;
  }
  if (has_bias) {
    auto a = new_f32({o});
    dbp = a.mutable_data();
    db = a;
  }
  auto dk = new_f32({p.kh, p.kw, p.c, p.m});
  float* dkp = dk.mutable_data();
  {
    py::gil_scoped_release r;
    if (reference) depthwise2d_backward_ref(dxp, dkp, dbp, dyp, xp, kp, p);
    else depthwise2d_backward(dxp, dkp, dbp, dyp, xp, kp, p);
  }
  return py::make_tuple(dx, dk, db);
}


// A 3x3 kernel's Winograd transform, made once (the inference plan keeps one per Conv2D layer):
// immutable after construction, so any number of threads may read it at once.
struct WinogradWeights {
  std::unique_ptr<float, decltype(&std::free)> data{nullptr, &std::free};
  int64_t c = 0, f = 0;
  Isa isa = Isa::generic;
};

std::shared_ptr<WinogradWeights> make_winograd_weights(py::array w) {
  const float* wp = require_c(w, "w", 4);
  if (w.shape(0) != 3 || w.shape(1) != 3 || w.shape(2) < 1 || w.shape(3) < 1)
    throw py::value_error("conv2d_winograd_weights: w must be (3, 3, C, F), got shape " +
                          shape_str(w));
  auto out = std::make_shared<WinogradWeights>();
  out->c = w.shape(2), out->f = w.shape(3);
  {
    py::gil_scoped_release r;
    out->isa = active_isa();
    const int64_t floats = conv2d_winograd_weights_floats(out->c, out->f);
    const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
    out->data.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!out->data) throw std::bad_alloc();
    conv2d_winograd_pack(out->data.get(), wp, out->c, out->f);
  }
  return out;
}

py::array_t<float> py_conv2d_forward_cached(py::array x, py::array w,
                                            const std::shared_ptr<WinogradWeights>& u,
                                            py::object b, Pair strides, bool same, Pair dilation,
                                            bool relu) {
  const float* xp = require_c(x, "x", 4);
  const float* wp = require_c(w, "w", 4);
  Conv2dParams p = make_params(x, w, strides, same, dilation, relu);
  if (u && (u->c != p.c || u->f != p.f))
    throw py::value_error("conv2d_forward_cached: the transformed weights are for " +
                          std::to_string(u->c) + " -> " + std::to_string(u->f) +
                          " channels, w has shape " + shape_str(w));
  py::array barr;
  const float* bp = optional(b, "b", {p.f}, &barr);
  auto y = new_f32({p.n, p.oh, p.ow, p.f});
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release r;
    conv2d_forward_cached(yp, xp, wp, u ? u->data.get() : nullptr, u ? u->isa : Isa::generic, bp,
                          p);
  }
  return y;
}
}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d_geometry", [](Pair in_hw, Pair kernel, Pair strides, bool same, Pair dilation) {
    if (in_hw.first < 1 || in_hw.second < 1 || kernel.first < 1 || kernel.second < 1 ||
        strides.first < 1 || strides.second < 1 || dilation.first < 1 || dilation.second < 1)
      throw py::value_error("conv2d_geometry: sizes, strides and dilation must be >= 1");
    const auto h = axis(in_hw.first, kernel.first, strides.first, dilation.first, same, "height");
    const auto w = axis(in_hw.second, kernel.second, strides.second, dilation.second, same, "width");
    return std::make_pair(Pair{h.first, w.first}, Pair{h.second, w.second});
  }, py::arg("in_hw"), py::arg("kernel"), py::arg("strides"), py::arg("same"), py::arg("dilation"),
     "((OH, OW), (pad_top, pad_left)) of a convolution; ValueError if it does not fit.");
  m.def("conv2d_forward", &py_conv2d_forward, py::arg("x"), py::arg("w"), py::arg("b"),
        py::arg("strides"), py::arg("same"), py::arg("dilation"), py::arg("relu"),
        py::arg("reference") = false,
        "y = act(conv2d(x, w) + b); x (N,H,W,C), w (KH,KW,C,F) float32 C-contiguous.");
  m.def("conv2d_backward", &py_conv2d_backward, py::arg("dy"), py::arg("x"), py::arg("w"),
        py::arg("y"), py::arg("strides"), py::arg("same"), py::arg("dilation"), py::arg("relu"),
        py::arg("need_dx"), py::arg("has_bias"), py::arg("reference") = false,
        "(dx or None, dw, db or None) of conv2d_forward; relu masks dy by y > 0.");
  m.def("depthwise2d_forward", &py_depthwise2d_forward, py::arg("x"), py::arg("k"), py::arg("b"),
        py::arg("strides"), py::arg("same"), py::arg("dilation"), py::arg("relu"),
        py::arg("cap") = py::none(), py::arg("reference") = false, py::arg("maxpool2") = false,
        "y = min(cap, act(depthwise(x, k) + b)); x (N,H,W,C), k (KH,KW,C,M) -> (N,OH,OW,C*M); "
        "maxpool2: then MaxPooling2D(2) 'valid' in the same pass -> (N,OH/2,OW/2,C*M).");
  m.def("depthwise2d_backward", &py_depthwise2d_backward, py::arg("dy"), py::arg("x"), py::arg("k"),
        py::arg("strides"), py::arg("same"), py::arg("dilation"), py::arg("need_dx"),
        py::arg("has_bias"), py::arg("reference") = false,
        "(dx or None, dk, db or None) of depthwise2d_forward before its activation.");
  py::class_<WinogradWeights, std::shared_ptr<WinogradWeights>>(
      m, "WinogradWeights", "A 3x3 kernel's Winograd transform (conv2d_winograd_weights).")
      .def_property_readonly("shape", [](const WinogradWeights& u) {
        return py::make_tuple(3, 3, u.c, u.f);
      });
  m.def("conv2d_winograd_weights", &make_winograd_weights, py::arg("w"),
        "The Winograd F(2x2,3x3) transform of w (3,3,C,F) float32, packed for the ISA active now, "
        "for conv2d_forward_cached.");
  m.def("conv2d_forward_cached", &py_conv2d_forward_cached, py::arg("x"), py::arg("w"),
        py::arg("u"), py::arg("b"), py::arg("strides"), py::arg("same"), py::arg("dilation"),
        py::arg("relu"),
        "conv2d_forward(x, w, b, ...) with w's Winograd transform u (conv2d_winograd_weights(w), "
        "or None) made once: Winograd on u wherever it applies by the shape rule without its "
        "minimum batch (the bits of conv2d_forward where that runs Winograd too) under the ISA u "
        "was made for; otherwise conv2d_forward.");
}

}  // namespace nncore::bind
