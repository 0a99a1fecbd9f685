// _core.affine_transform / affine_transform_backward: the projective image resampler
// (kernels/affine.hpp) over NHWC float32 or float64 images; checks, output, GIL release.
#include <string>

#include "bind_util.hpp"
#include "kernels/affine.hpp"

namespace nncore::bind {

namespace {

int fill_code(const std::string& s) {
  if (s == "constant") return kFillConstant;
  if (s == "nearest") return kFillNearest;
  if (s == "reflect") return kFillReflect;
  if (s == "wrap") return kFillWrap;
  throw py::value_error("fill_mode must be 'constant', 'nearest', 'reflect' or 'wrap', got '" +
                        s + "'");
}

int interp_code(const std::string& s) {
  if (s == "bilinear") return kInterpBilinear;
  if (s == "nearest") return kInterpNearest;
  throw py::value_error("interpolation must be 'bilinear' or 'nearest', got '" + s + "'");
}

// 4-D C-contiguous float32/float64 images; returns 4 (float32) or 8 (float64).
int check_images(const py::array& a, const char* name) {
  if (a.dtype().kind() != 'f' || (a.itemsize() != 4 && a.itemsize() != 8))
    throw py::type_error(std::string(name) + " must be a float32 or float64 array, got dtype " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != 4)
    throw py::value_error(std::string(name) + " must be 4-D (batch, height, width, channels), "
                          "got shape " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  return static_cast<int>(a.itemsize());
}

const double* check_transforms(const py::array& t, int64_t b) {
  if (t.dtype().kind() != 'f' || t.itemsize() != 8)
    throw py::type_error("transforms must be a float64 array, got dtype " +
                         std::string(py::str(t.dtype())));
  if (!(t.flags() & py::array::c_style)) throw py::value_error("transforms must be C-contiguous");
  require_shape(t, "transforms", {b, 8});
  return static_cast<const double*>(t.data());
}

py::array forward_py(const py::array& x, const py::array& transforms, const std::string& fill_mode,
                     const std::string& interpolation, double fill_value) {
  const int isz = check_images(x, "images");
  const int64_t b = x.shape(0), h = x.shape(1), w = x.shape(2), c = x.shape(3);
  const double* t = check_transforms(transforms, b);
  const int fill = fill_code(fill_mode), interp = interp_code(interpolation);
  py::array y(x.dtype(), {b, h, w, c});
  void* out = y.mutable_data();
  const void* in = x.data();
  {
    py::gil_scoped_release r;
    if (isz == 4)
      affine_forward(static_cast<const float*>(in), t, b, h, w, c, fill, interp, fill_value,
                     static_cast<float*>(out));
    else
      affine_forward(static_cast<const double*>(in), t, b, h, w, c, fill, interp, fill_value,
                     static_cast<double*>(out));
  }
  return y;
}

py::array backward_py(const py::array& dy, const py::array& transforms,
                      const std::string& fill_mode, const std::string& interpolation) {
  const int isz = check_images(dy, "dy");
  const int64_t b = dy.shape(0), h = dy.shape(1), w = dy.shape(2), c = dy.shape(3);
  const double* t = check_transforms(transforms, b);
  const int fill = fill_code(fill_mode), interp = interp_code(interpolation);
  py::array dx(dy.dtype(), {b, h, w, c});
  void* out = dx.mutable_data();
  const void* in = dy.data();
  {
    py::gil_scoped_release r;
    if (isz == 4)
      affine_backward(static_cast<const float*>(in), t, b, h, w, c, fill, interp,
                      static_cast<float*>(out));
    else
      affine_backward(static_cast<const double*>(in), t, b, h, w, c, fill, interp,
                      static_cast<double*>(out));
  }
  return dx;
}

}  // namespace

void bind_affine(py::module_& m) {
  m.def("affine_transform", &forward_py, py::arg("images"), py::arg("transforms"),
        py::arg("fill_mode") = "constant", py::arg("interpolation") = "bilinear",
        py::arg("fill_value") = 0.0,
        "Projective resampling of NHWC images (float32/float64) by per-image transforms (B, 8) "
        "float64 [a0 a1 a2 b0 b1 b2 c0 c1], TF ImageProjectiveTransformV3 semantics.");
  m.def("affine_transform_backward", &backward_py, py::arg("dy"), py::arg("transforms"),
        py::arg("fill_mode") = "constant", py::arg("interpolation") = "bilinear",
        "The adjoint of affine_transform: d(images) from dy (same shape and dtype).");
}

}  // namespace nncore::bind
