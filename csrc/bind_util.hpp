// Array checks shared by the bind_*.cpp files. The Python wrappers (nncore/ops) already convert and
// validate; these checks run again so that no call into _core, however made, can read out of bounds.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/array_pool.hpp"

namespace nncore::bind {

namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

inline void require_f32(const py::array& a, const char* name) {
  if (!py::isinstance<py::array_t<float>>(a) || a.dtype().kind() != 'f' || a.itemsize() != 4)
    throw py::type_error(std::string(name) + " must be a float32 array, got dtype " +
                         std::string(py::str(a.dtype())));
}

// float32, C-contiguous, given rank; writable if asked. Returns the data pointer.
inline float* require_c(const py::array& a, const char* name, int ndim, bool writable = false) {
  require_f32(a, name);
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) +
                          "-D, got shape " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  if (writable && !a.writeable()) throw py::value_error(std::string(name) + " is read-only");
  return static_cast<float*>(const_cast<void*>(a.data()));
}

inline void require_shape(const py::array& a, const char* name, const std::vector<int64_t>& shape) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) {
    std::string want = "(";
    for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    throw py::value_error(std::string(name) + " must have shape " + want +
                          (shape.size() == 1 ? ",)" : ")") + ", got " + shape_str(a));
  }
}

// An optional float32 C-contiguous array of exactly `shape`: None -> nullptr; else its data, the
// array kept alive in *keep for as long as the pointer is used.
inline const float* optional(const py::object& o, const char* name, std::vector<int64_t> shape,
                             py::array* keep) {
  if (o.is_none()) return nullptr;
  *keep = o.cast<py::array>();
  const float* ptr = require_c(*keep, name, static_cast<int>(shape.size()));
  require_shape(*keep, name, shape);
  return ptr;
}

// An output a call may skip (a backward's dx or db): a new float32 array of `shape` from the
// array pool, its data in *ptr, when wanted; else None and *ptr = nullptr.
inline py::object optional_out(bool want, const std::vector<int64_t>& shape, float** ptr) {
  if (!want) {
    *ptr = nullptr;
    return py::none();
  }
  auto a = pooled_array<float>(shape);
  *ptr = a.mutable_data();
  return std::move(a);
}

// A 2-D float32 view with unit stride along one axis: rows x cols, leading dimension ld, and
// whether it is stored transposed (column-major), so transposed views need no copy.
struct Matrix {
  float* ptr;
  int64_t rows, cols, ld;
  bool col_major;
};

inline Matrix as_matrix(const py::array& a, const char* name, bool writable) {
  require_f32(a, name);
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + " must be 2-D, got shape " + shape_str(a));
  if (writable && !a.writeable()) throw py::value_error(std::string(name) + " is read-only");
  const int64_t r = a.shape(0), c = a.shape(1), s0 = a.strides(0), s1 = a.strides(1);
  float* p = static_cast<float*>(const_cast<void*>(a.data()));
  auto stride_ok = [](int64_t s, int64_t extent) { return s % 4 == 0 && s / 4 >= extent; };
  if ((s1 == 4 || c <= 1) && (r <= 1 || stride_ok(s0, c))) return {p, r, c, r <= 1 ? c : s0 / 4, false};
  if ((s0 == 4 || r <= 1) && (c <= 1 || stride_ok(s1, r))) return {p, r, c, c <= 1 ? r : s1 / 4, true};
  throw py::value_error(std::string(name) + " must have unit stride along one axis");
}

}  // namespace nncore::bind
