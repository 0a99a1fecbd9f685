// _core training kernels: activations, fused softmax cross-entropy, optimizer updates.
#include <cstdint>
#include <string>

#include "bind_util.hpp"
#include "kernels/train.hpp"

namespace nncore::bind {

namespace {

// A float32 C-contiguous array of any rank: its data pointer and element count.
float* flat(const py::array& a, const char* name, bool writable, int64_t* size) {
  require_f32(a, name);
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  if (writable && !a.writeable()) throw py::value_error(std::string(name) + " is read-only");
  *size = static_cast<int64_t>(a.size());
  return static_cast<float*>(const_cast<void*>(a.data()));
}

float* same_size(const py::object& o, const char* name, int64_t n, bool writable = true) {
  if (o.is_none()) return nullptr;
  py::array a = o.cast<py::array>();
  int64_t k;
  float* p = flat(a, name, writable, &k);
  if (k != n)
    throw py::value_error(std::string(name) + " has " + std::to_string(k) +
                          " elements, expected " + std::to_string(n) + " (shape " + shape_str(a) +
                          ")");
  return p;
}

ActKind act_from(int a) {
  if (a < 0 || a > 4) throw py::value_error("unknown activation code " + std::to_string(a));
  return static_cast<ActKind>(a);
}

// Rows and last-axis length of an array seen as (N, C).
void rows_cols(const py::array& a, int64_t* n, int64_t* c) {
  if (a.ndim() < 1) throw py::value_error("activation input must have at least 1 dimension");
  *c = a.shape(a.ndim() - 1);
  *n = *c == 0 ? 0 : static_cast<int64_t>(a.size()) / *c;
}

void py_act_forward(py::array y, py::array x, int act) {
  int64_t nx, ny;
  const float* px = flat(x, "x", false, &nx);
  float* py_ = flat(y, "y", true, &ny);
  if (nx != ny || x.ndim() != y.ndim()) throw py::value_error("y must have the shape of x, got " + shape_str(y) + " vs " + shape_str(x));
  int64_t n, c;
  rows_cols(x, &n, &c);
  const ActKind k = act_from(act);
  py::gil_scoped_release r;
  activation_forward(py_, px, n, c, k);
}

void py_act_backward(py::array dx, py::array dy, py::array y, int act) {
  int64_t ndx, ndy, nyy;
  float* pdx = flat(dx, "dx", true, &ndx);
  const float* pdy = flat(dy, "dy", false, &ndy);
  const float* py_ = flat(y, "y", false, &nyy);
  if (ndx != ndy || ndy != nyy || dy.ndim() != y.ndim())
    throw py::value_error("dx, dy and y must have one shape, got " + shape_str(dx) + ", " +
                          shape_str(dy) + ", " + shape_str(y));
  int64_t n, c;
  rows_cols(y, &n, &c);
  if (n > 0 && y.shape(y.ndim() - 1) != dy.shape(dy.ndim() - 1))
    throw py::value_error("dy and y differ in the last axis");
  const ActKind k = act_from(act);
  py::gil_scoped_release r;
  activation_backward(pdx, pdy, py_, n, c, k);
}

// Returns nothing; fills loss (N,) and dlogits (N,C) if given.
void py_xent_sparse(py::array loss, py::object dlogits, py::array logits, py::array labels,
                    float grad_scale) {
  const float* z = require_c(logits, "logits", 2);
  const int64_t n = logits.shape(0), c = logits.shape(1);
  if (c < 1) throw py::value_error("logits must have at least one class");
  float* l = require_c(loss, "loss", 1, true);
  require_shape(loss, "loss", {n});
  if (!py::isinstance<py::array_t<int32_t>>(labels) || labels.itemsize() != 4 ||
      labels.dtype().kind() != 'i')
    throw py::type_error("labels must be an int32 array, got dtype " +
                         std::string(py::str(labels.dtype())));
  if (labels.ndim() != 1 || labels.shape(0) != n || !(labels.flags() & py::array::c_style))
    throw py::value_error("labels must be C-contiguous with shape (" + std::to_string(n) +
                          ",), got " + shape_str(labels));
  const int32_t* t = static_cast<const int32_t*>(labels.data());
  for (int64_t i = 0; i < n; ++i)
    if (t[i] < 0 || t[i] >= c)
      throw py::value_error("label " + std::to_string(t[i]) + " at index " + std::to_string(i) +
                            " is out of range [0, " + std::to_string(c) + ")");
  float* d = nullptr;
  if (!dlogits.is_none()) {
    py::array da = dlogits.cast<py::array>();
    d = require_c(da, "dlogits", 2, true);
    require_shape(da, "dlogits", {n, c});
  }
  py::gil_scoped_release r;
  softmax_xent_sparse(l, d, z, t, n, c, grad_scale);
}

void py_xent_dense(py::array loss, py::object dlogits, py::array logits, py::array targets,
                   float grad_scale) {
  const float* z = require_c(logits, "logits", 2);
  const int64_t n = logits.shape(0), c = logits.shape(1);
  if (c < 1) throw py::value_error("logits must have at least one class");
  float* l = require_c(loss, "loss", 1, true);
  require_shape(loss, "loss", {n});
  const float* t = require_c(targets, "targets", 2);
  require_shape(targets, "targets", {n, c});
  float* d = nullptr;
  if (!dlogits.is_none()) {
    py::array da = dlogits.cast<py::array>();
    d = require_c(da, "dlogits", 2, true);
    require_shape(da, "dlogits", {n, c});
  }
  py::gil_scoped_release r;
  softmax_xent_dense(l, d, z, t, n, c, grad_scale);
}

OptimParams base_params(float lr, float l1, float l2) {
  OptimParams p;
  p.lr = lr;
  p.l1 = l1;
  p.l2 = l2;
  return p;
}

void py_sgd(py::array w, py::array g, py::object m, float lr, float momentum, bool nesterov,
            float l1, float l2) {
  int64_t n;
  float* pw = flat(w, "w", true, &n);
  const float* pg = same_size(g, "g", n, false);
  float* pm = same_size(m, "m", n);
  OptimParams p = base_params(lr, l1, l2);
  p.momentum = momentum;
  p.nesterov = nesterov;
  if (momentum != 0.0f && !pm) throw py::value_error("SGD with momentum needs a momentum slot");
  py::gil_scoped_release r;
  sgd_update(pw, pm, pg, n, p);
}

void py_adam(py::array w, py::array g, py::array m, py::array v, float alpha, float beta1,
             float beta2, float eps, float l1, float l2) {
  int64_t n;
  float* pw = flat(w, "w", true, &n);
  const float* pg = same_size(g, "g", n, false);
  float* pm = same_size(m, "m", n);
  float* pv = same_size(v, "v", n);
  OptimParams p = base_params(0.0f, l1, l2);
  p.alpha = alpha;
  p.beta1 = beta1;
  p.beta2 = beta2;
  p.eps = eps;
  py::gil_scoped_release r;
  adam_update(pw, pm, pv, pg, n, p);
}

void py_rmsprop(py::array w, py::array g, py::array v, py::object mom, py::object avg, float lr,
                float rho, float momentum, float eps, float l1, float l2) {
  int64_t n;
  float* pw = flat(w, "w", true, &n);
  const float* pg = same_size(g, "g", n, false);
  float* pv = same_size(v, "v", n);
  float* pmom = same_size(mom, "momentum slot", n);
  float* pavg = same_size(avg, "average slot", n);
  OptimParams p = base_params(lr, l1, l2);
  p.rho = rho;
  p.momentum = momentum;
  p.eps = eps;
  py::gil_scoped_release r;
  rmsprop_update(pw, pv, pmom, pavg, pg, n, p);
}

void py_adamw(py::array w, py::array g, py::array m, py::array v, py::object vhat, float alpha,
              float beta1, float beta2, float eps, float wd_lr, float l1, float l2) {
  int64_t n;
  float* pw = flat(w, "w", true, &n);
  const float* pg = same_size(g, "g", n, false);
  float* pm = same_size(m, "m", n);
  float* pv = same_size(v, "v", n);
  float* pvh = same_size(vhat, "vhat", n);
  OptimParams p = base_params(0.0f, l1, l2);
  p.alpha = alpha;
  p.beta1 = beta1;
  p.beta2 = beta2;
  p.eps = eps;
  p.wd_lr = wd_lr;
  py::gil_scoped_release r;
  adamw_update(pw, pm, pv, pvh, pg, n, p);
}

void py_nadam(py::array w, py::array g, py::array m, py::array v, float lr, float beta1,
              float beta2, float eps, float c1, float c2, float bias2, float wd_lr, float l1,
              float l2) {
  int64_t n;
  float* pw = flat(w, "w", true, &n);
  const float* pg = same_size(g, "g", n, false);
  float* pm = same_size(m, "m", n);
  float* pv = same_size(v, "v", n);
  OptimParams p = base_params(lr, l1, l2);
  p.beta1 = beta1;
  p.beta2 = beta2;
  p.eps = eps;
  p.c1 = c1;
  p.c2 = c2;
  p.c3 = bias2;
  p.wd_lr = wd_lr;
  py::gil_scoped_release r;
  nadam_update(pw, pm, pv, pg, n, p);
}

void py_adamax(py::array w, py::array g, py::array m, py::array u, float lr, float beta1,
               float beta2, float eps, float bias1, float wd_lr, float l1, float l2) {
  int64_t n;
  float* pw = flat(w, "w", true, &n);
  const float* pg = same_size(g, "g", n, false);
  float* pm = same_size(m, "m", n);
  float* pu = same_size(u, "u", n);
  OptimParams p = base_params(lr, l1, l2);
  p.beta1 = beta1;
  p.beta2 = beta2;
  p.eps = eps;
  p.c3 = bias1;
  p.wd_lr = wd_lr;
  py::gil_scoped_release r;
  adamax_update(pw, pm, pu, pg, n, p);
}

void py_adagrad(py::array w, py::array g, py::array acc, float lr, float eps, float wd_lr,
                float l1, float l2) {
  int64_t n;
  float* pw = flat(w, "w", true, &n);
  const float* pg = same_size(g, "g", n, false);
  float* pa = same_size(acc, "accumulator", n);
  OptimParams p = base_params(lr, l1, l2);
  p.eps = eps;
  p.wd_lr = wd_lr;
  py::gil_scoped_release r;
  adagrad_update(pw, pa, pg, n, p);
}

void py_adadelta(py::array w, py::array g, py::array acc_g, py::array acc_dx, float lr, float rho,
                 float eps, float wd_lr, float l1, float l2) {
  int64_t n;
  float* pw = flat(w, "w", true, &n);
  const float* pg = same_size(g, "g", n, false);
  float* pag = same_size(acc_g, "accumulated grad", n);
  float* pad = same_size(acc_dx, "accumulated delta", n);
  OptimParams p = base_params(lr, l1, l2);
  p.rho = rho;
  p.eps = eps;
  p.wd_lr = wd_lr;
  py::gil_scoped_release r;
  adadelta_update(pw, pag, pad, pg, n, p);
}

void py_ftrl(py::array w, py::array g, py::array acc, py::array lin, float lr, float lr_power,
             float l1s, float l2s, float shrink, float wd_lr, float l1, float l2) {
  int64_t n;
  float* pw = flat(w, "w", true, &n);
  const float* pg = same_size(g, "g", n, false);
  float* pa = same_size(acc, "accumulator", n);
  float* pl = same_size(lin, "linear", n);
  OptimParams p = base_params(lr, l1, l2);
  p.lr_power = lr_power;
  p.ftrl_l1 = l1s;
  p.ftrl_l2 = l2s;
  p.ftrl_shrink = shrink;
  p.wd_lr = wd_lr;
  py::gil_scoped_release r;
  ftrl_update(pw, pa, pl, pg, n, p);
}

void py_lion(py::array w, py::array g, py::array m, float lr, float beta1, float beta2,
             float wd_lr, float l1, float l2) {
  int64_t n;
  float* pw = flat(w, "w", true, &n);
  const float* pg = same_size(g, "g", n, false);
  float* pm = same_size(m, "m", n);
  OptimParams p = base_params(lr, l1, l2);
  p.beta1 = beta1;
  p.beta2 = beta2;
  p.wd_lr = wd_lr;
  py::gil_scoped_release r;
  lion_update(pw, pm, pg, n, p);
}

}  // namespace

void bind_train(py::module_& m) {
  // The codes nncore.ops passes, taken from the enum here so they are written only once.
  py::dict codes;
  codes["linear"] = static_cast<int>(ActKind::linear);
  codes["relu"] = static_cast<int>(ActKind::relu);
  codes["sigmoid"] = static_cast<int>(ActKind::sigmoid);
  codes["tanh"] = static_cast<int>(ActKind::tanh);
  codes["softmax"] = static_cast<int>(ActKind::softmax);
  m.attr("activation_codes") = codes;
  m.def("activation_forward", &py_act_forward, py::arg("y"), py::arg("x"), py::arg("act"));
  m.def("activation_backward", &py_act_backward, py::arg("dx"), py::arg("dy"), py::arg("y"),
        py::arg("act"));
  m.def("softmax_xent_sparse", &py_xent_sparse, py::arg("loss"), py::arg("dlogits"),
        py::arg("logits"), py::arg("labels"), py::arg("grad_scale"));
  m.def("softmax_xent_dense", &py_xent_dense, py::arg("loss"), py::arg("dlogits"),
        py::arg("logits"), py::arg("targets"), py::arg("grad_scale"));
  m.def("sgd_update", &py_sgd, py::arg("w"), py::arg("g"), py::arg("m"), py::arg("lr"),
        py::arg("momentum"), py::arg("nesterov"), py::arg("l1"), py::arg("l2"));
  m.def("adam_update", &py_adam, py::arg("w"), py::arg("g"), py::arg("m"), py::arg("v"),
        py::arg("alpha"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("l1"),
        py::arg("l2"));
  m.def("rmsprop_update", &py_rmsprop, py::arg("w"), py::arg("g"), py::arg("v"), py::arg("mom"),
        py::arg("avg"), py::arg("lr"), py::arg("rho"), py::arg("momentum"), py::arg("eps"),
        py::arg("l1"), py::arg("l2"));
  m.def("adamw_update", &py_adamw, py::arg("w"), py::arg("g"), py::arg("m"), py::arg("v"),
        py::arg("vhat"), py::arg("alpha"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
        py::arg("wd_lr"), py::arg("l1"), py::arg("l2"));
  m.def("nadam_update", &py_nadam, py::arg("w"), py::arg("g"), py::arg("m"), py::arg("v"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("c1"),
        py::arg("c2"), py::arg("bias2"), py::arg("wd_lr"), py::arg("l1"), py::arg("l2"));
  m.def("adamax_update", &py_adamax, py::arg("w"), py::arg("g"), py::arg("m"), py::arg("u"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("bias1"),
        py::arg("wd_lr"), py::arg("l1"), py::arg("l2"));
  m.def("adagrad_update", &py_adagrad, py::arg("w"), py::arg("g"), py::arg("acc"), py::arg("lr"),
        py::arg("eps"), py::arg("wd_lr"), py::arg("l1"), py::arg("l2"));
  m.def("adadelta_update", &py_adadelta, py::arg("w"), py::arg("g"), py::arg("acc_g"),
        py::arg("acc_dx"), py::arg("lr"), py::arg("rho"), py::arg("eps"), py::arg("wd_lr"),
        py::arg("l1"), py::arg("l2"));
  m.def("ftrl_update", &py_ftrl, py::arg("w"), py::arg("g"), py::arg("acc"), py::arg("lin"),
        py::arg("lr"), py::arg("lr_power"), py::arg("l1s"), py::arg("l2s"), py::arg("shrink"),
        py::arg("wd_lr"), py::arg("l1"), py::arg("l2"));
  m.def("lion_update", &py_lion, py::arg("w"), py::arg("g"), py::arg("m"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("wd_lr"), py::arg("l1"), py::arg("l2"));
}

}  // namespace nncore::bind
