// _core.batchnorm_* / layernorm_* / embedding_backward: shape checks, outputs, GIL release.
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "bind_util.hpp"
#include "common/array_pool.hpp"
#include "kernels/norm.hpp"

namespace nncore::bind {

namespace {

using OptArr = std::optional<py::array>;

// Optional per-feature vector (gamma / beta): None -> nullptr, else float32 C (n,).
const float* opt_vec(const OptArr& a, const char* name, int64_t n) {
  if (!a || a->is_none()) return nullptr;
  const float* p = require_c(*a, name, 1);
  require_shape(*a, name, {n});
  return p;
}

const float* vec(const py::array& a, const char* name, int64_t n) {
  const float* p = require_c(a, name, 1);
  require_shape(a, name, {n});
  return p;
}

py::array_t<float> f32(std::vector<int64_t> shape) { return pooled_array<float>(shape); }

py::tuple py_bn_forward_train(py::array x, OptArr gamma, OptArr beta, float eps) {
  const float* xp = require_c(x, "x", 2);
  const int64_t m = x.shape(0), c = x.shape(1);
  if (m < 1) throw py::value_error("batchnorm_forward_train: x needs at least one row");
  const float* g = opt_vec(gamma, "gamma", c);
  const float* b = opt_vec(beta, "beta", c);
  auto y = f32({m, c});
  auto mean = f32({c}), var = f32({c}), inv = f32({c});
  float *yp = y.mutable_data(), *mp = mean.mutable_data(), *vp = var.mutable_data(),
        *ip = inv.mutable_data();
  {
    py::gil_scoped_release r;
    batchnorm_forward_train(yp, mp, vp, ip, xp, g, b, m, c, eps);
  }
  return py::make_tuple(y, mean, var, inv);
}

py::tuple py_bn_backward_train(py::array dy, py::array x, py::array mean, py::array inv,
                               OptArr gamma) {
  const float* xp = require_c(x, "x", 2);
  const int64_t m = x.shape(0), c = x.shape(1);
  const float* dyp = require_c(dy, "dy", 2);
  require_shape(dy, "dy", {m, c});
  const float* mp = vec(mean, "mean", c);
  const float* ip = vec(inv, "inv", c);
  const float* g = opt_vec(gamma, "gamma", c);
  auto dx = f32({m, c});
  auto dg = f32({c}), db = f32({c});
  float *dxp = dx.mutable_data(), *dgp = dg.mutable_data(), *dbp = db.mutable_data();
  {
    py::gil_scoped_release r;
    batchnorm_backward_train(dxp, dgp, dbp, dyp, xp, mp, ip, g, m, c);
  }
  return py::make_tuple(dx, dg, db);
}

py::tuple py_ln_forward(py::array x, OptArr gamma, OptArr beta, float eps) {
  const float* xp = require_c(x, "x", 2);
  const int64_t m = x.shape(0), k = x.shape(1);
  if (k < 1) throw py::value_error("layernorm_forward: rows must have at least one value");
  const float* g = opt_vec(gamma, "gamma", k);
  const float* b = opt_vec(beta, "beta", k);
  auto y = f32({m, k});
  auto mean = f32({m}), inv = f32({m});
  float *yp = y.mutable_data(), *mp = mean.mutable_data(), *ip = inv.mutable_data();
  {
    py::gil_scoped_release r;
    layernorm_forward(yp, mp, ip, xp, g, b, m, k, eps);
  }
  return py::make_tuple(y, mean, inv);
}

py::tuple py_ln_backward(py::array dy, py::array x, py::array mean, py::array inv,
                         OptArr gamma) {
  const float* xp = require_c(x, "x", 2);
  const int64_t m = x.shape(0), k = x.shape(1);
  const float* dyp = require_c(dy, "dy", 2);
  require_shape(dy, "dy", {m, k});
  const float* mp = vec(mean, "mean", m);
  const float* ip = vec(inv, "inv", m);
  const float* g = opt_vec(gamma, "gamma", k);
  auto dx = f32({m, k});
  auto dg = f32({k}), db = f32({k});
  float *dxp = dx.mutable_data(), *dgp = dg.mutable_data(), *dbp = db.mutable_data();
  {
    py::gil_scoped_release r;
    layernorm_backward(dxp, dgp, dbp, dyp, xp, mp, ip, g, m, k);
  }
  return py::make_tuple(dx, dg, db);
}

void py_embedding_backward(py::array de, py::array idx, py::array dy, bool accumulate) {
  float* dep = require_c(de, "de", 2, true);
  const int64_t v = de.shape(0), d = de.shape(1);
  if (!py::isinstance<py::array_t<int64_t>>(idx) || idx.dtype().kind() != 'i' ||
      idx.itemsize() != 8 || idx.ndim() != 1 || !(idx.flags() & py::array::c_style))
    throw py::type_error("embedding_backward: idx must be a C-contiguous 1-D int64 array");
  const int64_t n = idx.shape(0);
  const float* dyp = require_c(dy, "dy", 2);
  require_shape(dy, "dy", {n, d});
  const int64_t* ip = static_cast<const int64_t*>(idx.data());
  for (int64_t i = 0; i < n; ++i)
    if (ip[i] < 0 || ip[i] >= v)
      throw py::value_error("embedding_backward: index " + std::to_string(ip[i]) +
                            " is outside [0, " + std::to_string(v) + ")");
  {
    py::gil_scoped_release r;
    embedding_backward(dep, ip, dyp, n, v, d, accumulate);
  }
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def("batchnorm_forward_train", &py_bn_forward_train, py::arg("x"), py::arg("gamma"),
        py::arg("beta"), py::arg("eps"),
        "x (M, C) -> (y, mean, var, inv): batch statistics over the rows, fused normalization");
  m.def("batchnorm_backward_train", &py_bn_backward_train, py::arg("dy"), py::arg("x"),
        py::arg("mean"), py::arg("inv"), py::arg("gamma"), "-> (dx, dgamma, dbeta)");
  m.def("layernorm_forward", &py_ln_forward, py::arg("x"), py::arg("gamma"), py::arg("beta"),
        py::arg("eps"), "x (M, K) -> (y, mean (M,), inv (M,)): each row normalized");
  m.def("layernorm_backward", &py_ln_backward, py::arg("dy"), py::arg("x"), py::arg("mean"),
        py::arg("inv"), py::arg("gamma"), "-> (dx, dgamma, dbeta)");
  m.def("embedding_backward", &py_embedding_backward, py::arg("de"), py::arg("idx"),
        py::arg("dy"), py::arg("accumulate"),
        "de (V, D) (+)= scatter-add of dy (N, D) into rows idx (N,) (deterministic)");
}

}  // namespace nncore::bind
