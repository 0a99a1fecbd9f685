// _core.maxpool2d_* / avgpool2d_*: shape checks, geometry ('valid'/'same'), GIL release.
#include <pybind11/stl.h>

#include <string>
#include <utility>

#include "bind_util.hpp"
#include "common/array_pool.hpp"
#include "kernels/pool2d.hpp"

namespace nncore::bind {

namespace {

using Pair = std::pair<int64_t, int64_t>;

// One axis (pool2d_axis), with the binding's message.
std::pair<int64_t, int64_t> axis(int64_t in, int64_t k, int64_t s, bool same, const char* dim) {
  int64_t out, pad;
  if (!pool2d_axis(in, k, s, same, &out, &pad))
    throw py::value_error(std::string("pool2d: pool ") + dim + " " + std::to_string(k) +
                          " is larger than the input " + dim + " " + std::to_string(in) +
                          " with padding='valid'");
  return {out, pad};
}

Pool2dParams make_params(const std::vector<int64_t>& shape, Pair pool, Pair strides, bool same) {
  if (shape.size() != 4) throw py::value_error("pool2d: input shape must have 4 entries (N,H,W,C)");
  for (int i = 0; i < 4; ++i)
    if (shape[i] < (i == 0 ? 0 : 1))
      throw py::value_error("pool2d: input shape must have N >= 0 and H, W, C >= 1");
  if (pool.first < 1 || pool.second < 1) throw py::value_error("pool2d: pool_size must be >= 1");
  if (strides.first < 1 || strides.second < 1)
    throw py::value_error("pool2d: strides must be >= 1");
  Pool2dParams p;
  p.n = shape[0], p.h = shape[1], p.w = shape[2], p.c = shape[3];
  if (p.h > INT32_MAX / p.w) throw py::value_error("pool2d: H*W must fit in int32 for argmax");
  int64_t sz;
  if (__builtin_mul_overflow(p.n, p.h * p.w, &sz) || __builtin_mul_overflow(sz, p.c, &sz) ||
      __builtin_mul_overflow(p.h * p.w, p.c, &sz) || sz > (INT64_MAX >> 3))
    throw py::value_error("pool2d: input size overflows");
  p.ph = pool.first, p.pw = pool.second, p.sh = strides.first, p.sw = strides.second;
  std::tie(p.oh, p.pt) = axis(p.h, p.ph, p.sh, same, "height");
  std::tie(p.ow, p.pl) = axis(p.w, p.pw, p.sw, same, "width");
  return p;
}

std::vector<int64_t> shape_of(const py::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

py::array_t<float> new_f32(const std::vector<int64_t>& shape) { return pooled_array<float>(shape); }

// y of max pooling without the argmax (inference).
py::array_t<float> py_maxpool2d_values(py::array x, Pair pool, Pair strides, bool same) {
  const float* xp = require_c(x, "x", 4);
  Pool2dParams p = make_params(shape_of(x), pool, strides, same);
  auto y = new_f32({p.n, p.oh, p.ow, p.c});
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release r;
    maxpool2d_forward(yp, nullptr, xp, p);
  }
  return y;
}

py::tuple py_maxpool2d_forward(py::array x, Pair pool, Pair strides, bool same) {
  const float* xp = require_c(x, "x", 4);
  Pool2dParams p = make_params(shape_of(x), pool, strides, same);
  auto y = new_f32({p.n, p.oh, p.ow, p.c});
  auto am = pooled_array<int32_t>({p.n, p.oh, p.ow, p.c});
  float* yp = y.mutable_data();
  int32_t* ap = am.mutable_data();
  {
    py::gil_scoped_release r;
    maxpool2d_forward(yp, ap, xp, p);
  }
  return py::make_tuple(y, am);
}

py::array_t<float> py_maxpool2d_backward(py::array dy, py::array argmax,
                                         std::vector<int64_t> input_shape, py::object pool,
                                         py::object strides, bool same) {
  const float* dyp = require_c(dy, "dy", 4);
  if (!py::isinstance<py::array_t<int32_t>>(argmax) || argmax.dtype().kind() != 'i' ||
      argmax.itemsize() != 4)
    throw py::type_error("argmax must be an int32 array, got dtype " +
                         std::string(py::str(argmax.dtype())));
  if (argmax.ndim() != 4 || !(argmax.flags() & py::array::c_style))
    throw py::value_error("argmax must be a 4-D C-contiguous array, got shape " +
                          shape_str(argmax));
  Pool2dParams p = make_params(input_shape, {1, 1}, {1, 1}, false);
  p.oh = dy.shape(1), p.ow = dy.shape(2);
  if (dy.shape(0) != p.n || dy.shape(3) != p.c)
    throw py::value_error("max_pool2d_backward: dy has shape " + shape_str(dy) +
                          ", which does not match input_shape's batch and channels");
  require_shape(argmax, "argmax", shape_of(dy));
  // With the forward's geometry (pool, strides, same), the one-pass path for disjoint windows.
  const bool windows = !pool.is_none();
  if (windows) {
    const Pair pl = pool.cast<Pair>();
    const Pool2dParams q =
        make_params(input_shape, pl, strides.is_none() ? pl : strides.cast<Pair>(), same);
    if (q.oh != p.oh || q.ow != p.ow)
      throw py::value_error("max_pool2d_backward: dy has shape " + shape_str(dy) +
                            ", which is not the output of this pooling of input_shape");
    p = q;
  }
  const int32_t* ap = static_cast<const int32_t*>(argmax.data());
  auto dx = new_f32(input_shape);
  float* dxp = dx.mutable_data();
  bool ok;
  {
    py::gil_scoped_release r;
    ok = windows ? maxpool2d_backward_windows(dxp, dyp, ap, p)
                 : maxpool2d_backward(dxp, dyp, ap, p);
  }
  if (!ok)
    throw py::value_error("max_pool2d_backward: argmax holds an index outside [0, H*W) = [0, " +
                          std::to_string(p.h * p.w) + ")");
  return dx;
}

py::array_t<float> py_avgpool2d_forward(py::array x, Pair pool, Pair strides, bool same) {
  const float* xp = require_c(x, "x", 4);
  Pool2dParams p = make_params(shape_of(x), pool, strides, same);
  auto y = new_f32({p.n, p.oh, p.ow, p.c});
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release r;
    avgpool2d_forward(yp, xp, p);
  }
  return y;
}

py::array_t<float> py_avgpool2d_backward(py::array dy, std::vector<int64_t> input_shape, Pair pool,
                                         Pair strides, bool same) {
  const float* dyp = require_c(dy, "dy", 4);
  Pool2dParams p = make_params(input_shape, pool, strides, same);
  require_shape(dy, "dy", {p.n, p.oh, p.ow, p.c});
  auto dx = new_f32(input_shape);
  float* dxp = dx.mutable_data();
  {
    py::gil_scoped_release r;
    avgpool2d_backward(dxp, dyp, p);
  }
  return dx;
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("pool2d_geometry", [](Pair in_hw, Pair pool, Pair strides, bool same) {
    if (in_hw.first < 1 || in_hw.second < 1 || pool.first < 1 || pool.second < 1 ||
        strides.first < 1 || strides.second < 1)
      throw py::value_error("pool2d_geometry: sizes, pool and strides must be >= 1");
    const auto h = axis(in_hw.first, pool.first, strides.first, same, "height");
    const auto w = axis(in_hw.second, pool.second, strides.second, same, "width");
    return std::make_pair(Pair{h.first, w.first}, Pair{h.second, w.second});
  }, py::arg("in_hw"), py::arg("pool"), py::arg("strides"), py::arg("same"),
     "((OH, OW), (pad_top, pad_left)) of a pooling; ValueError if it does not fit.");
  m.def("maxpool2d_forward", &py_maxpool2d_forward, py::arg("x"), py::arg("pool"),
        py::arg("strides"), py::arg("same"), "(y, argmax int32 h*W+w) of max pooling, NHWC.");
  m.def("maxpool2d_values", &py_maxpool2d_values, py::arg("x"), py::arg("pool"),
        py::arg("strides"), py::arg("same"),
        "y of max pooling without the argmax (inference), bitwise the y of maxpool2d_forward.");
  m.def("maxpool2d_backward", &py_maxpool2d_backward, py::arg("dy"), py::arg("argmax"),
        py::arg("input_shape"), py::arg("pool") = py::none(), py::arg("strides") = py::none(),
        py::arg("same") = false,
        "dx of max pooling: dy routed to argmax. With the forward's pool (strides, same), "
        "disjoint windows are written in one pass (the same dx).");
  m.def("avgpool2d_forward", &py_avgpool2d_forward, py::arg("x"), py::arg("pool"),
        py::arg("strides"), py::arg("same"), "Average pooling over the valid cells, NHWC.");
  m.def("avgpool2d_backward", &py_avgpool2d_backward, py::arg("dy"), py::arg("input_shape"),
        py::arg("pool"), py::arg("strides"), py::arg("same"), "dx of average pooling.");
}

}  // namespace nncore::bind
