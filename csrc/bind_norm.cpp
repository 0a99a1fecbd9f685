// _core.batchnorm_* / layernorm_* / embedding_forward / embedding_backward: shape checks, outputs, GIL release.
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

// What every normalization binding starts from: x (M, N) float32 C and the optional per-feature
// gamma and beta of length N (checked in that order).
struct NormInput {
  const float* x;
  int64_t m, n;
  const float* gamma;
  const float* beta;
};

NormInput norm_input(const py::array& x, const OptArr& gamma, const OptArr& beta) {
  const float* xp = require_c(x, "x", 2);
  const int64_t m = x.shape(0), n = x.shape(1);
  return {xp, m, n, opt_vec(gamma, "gamma", n), opt_vec(beta, "beta", n)};
}

typedef void (*norm_backward_fn)(float* dx, float* dgamma, float* dbeta, const float* dy,
                                 const float* x, const float* mean, const float* inv,
                                 const float* gamma, int64_t m, int64_t n);

// The backward passes share one signature: dy, x (M, N), the saved mean and inv (N per feature
// for batch norm, M per row for layer norm) -> (dx, dgamma, dbeta).
py::tuple norm_backward(norm_backward_fn kernel, bool stats_per_row, const py::array& dy,
                        const py::array& x, const py::array& mean, const py::array& inv,
                        const OptArr& gamma) {
  const NormInput in = norm_input(x, std::nullopt, std::nullopt);
  const float* dyp = require_c(dy, "dy", 2);
  require_shape(dy, "dy", {in.m, in.n});
  const int64_t stats = stats_per_row ? in.m : in.n;
  const float* mp = vec(mean, "mean", stats);
  const float* ip = vec(inv, "inv", stats);
  const float* g = opt_vec(gamma, "gamma", in.n);
  auto dx = f32({in.m, in.n});
  auto dg = f32({in.n}), db = f32({in.n});
  float *dxp = dx.mutable_data(), *dgp = dg.mutable_data(), *dbp = db.mutable_data();
  {
    py::gil_scoped_release r;
    kernel(dxp, dgp, dbp, dyp, in.x, mp, ip, g, in.m, in.n);
  }
  return py::make_tuple(dx, dg, db);
}

py::tuple py_bn_forward_train(py::array x, OptArr gamma, OptArr beta, float eps) {
  const NormInput in = norm_input(x, gamma, beta);
  if (in.m < 1) throw py::value_error("batchnorm_forward_train: x needs at least one row");
  auto y = f32({in.m, in.n});
  auto mean = f32({in.n}), var = f32({in.n}), inv = f32({in.n});
  float *yp = y.mutable_data(), *mp = mean.mutable_data(), *vp = var.mutable_data(),
        *ip = inv.mutable_data();
  {
    py::gil_scoped_release r;
    batchnorm_forward_train(yp, mp, vp, ip, in.x, in.gamma, in.beta, in.m, in.n, eps);
  }
  return py::make_tuple(y, mean, var, inv);
}

py::tuple py_bn_backward_train(py::array dy, py::array x, py::array mean, py::array inv,
                               OptArr gamma) {
  return norm_backward(batchnorm_backward_train, false, dy, x, mean, inv, gamma);
}

py::tuple py_ln_forward(py::array x, OptArr gamma, OptArr beta, float eps) {
  const NormInput in = norm_input(x, gamma, beta);
  if (in.n < 1) throw py::value_error("layernorm_forward: rows must have at least one value");
  auto y = f32({in.m, in.n});
  auto mean = f32({in.m}), inv = f32({in.m});
  float *yp = y.mutable_data(), *mp = mean.mutable_data(), *ip = inv.mutable_data();
  {
    py::gil_scoped_release r;
    layernorm_forward(yp, mp, ip, in.x, in.gamma, in.beta, in.m, in.n, eps);
  }
  return py::make_tuple(y, mean, inv);
}

py::tuple py_ln_backward(py::array dy, py::array x, py::array mean, py::array inv,
                         OptArr gamma) {
  return norm_backward(layernorm_backward, true, dy, x, mean, inv, gamma);
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

// e (V, D), idx (N,) int64 -> y (N, D) = e[idx]; an index outside [0, V) is a ValueError.
py::array_t<float> py_embedding_forward(py::array e, py::array idx) {
  const float* ep = require_c(e, "e", 2);
  const int64_t v = e.shape(0), d = e.shape(1);
  if (!py::isinstance<py::array_t<int64_t>>(idx) || idx.dtype().kind() != 'i' ||
      idx.itemsize() != 8 || idx.ndim() != 1 || !(idx.flags() & py::array::c_style))
    throw py::type_error("embedding_forward: idx must be a C-contiguous 1-D int64 array");
  const int64_t n = idx.shape(0);
  const int64_t* ip = static_cast<const int64_t*>(idx.data());
  for (int64_t i = 0; i < n; ++i)
    if (ip[i] < 0 || ip[i] >= v)
      throw py::value_error("embedding_forward: index " + std::to_string(ip[i]) +
                            " is outside [0, " + std::to_string(v) + ")");
  auto y = f32({n, d});
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release r;
    embedding_forward(yp, ep, ip, n, d);
  }
  return y;
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
  m.def("embedding_forward", &py_embedding_forward, py::arg("e"), py::arg("idx"),
        "e (V, D), idx (N,) int64 -> (N, D): the rows e[idx] (a gather, rows split over threads)");
  m.def("embedding_backward", &py_embedding_backward, py::arg("de"), py::arg("idx"),
        py::arg("dy"), py::arg("accumulate"),
        "de (V, D) (+)= scatter-add of dy (N, D) into rows idx (N,) (deterministic)");
}

}  // namespace nncore::bind
