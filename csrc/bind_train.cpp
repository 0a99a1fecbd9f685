// _core training kernels: activations, fused softmax cross-entropy, optimizer updates.
#include <array>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

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
  if (nx != ny || x.ndim() != y.ndim())
    throw py::value_error("y must have the shape of x, got " + shape_str(y) + " vs " +
                          shape_str(x));
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

// The fused losses' common arguments: logits (N, C >= 1), loss (N,) written, dlogits (N, C)
// written or None.
const float* xent_logits(const py::array& logits, int64_t* n, int64_t* c) {
  const float* z = require_c(logits, "logits", 2);
  *n = logits.shape(0), *c = logits.shape(1);
  if (*c < 1) throw py::value_error("logits must have at least one class");
  return z;
}

float* xent_loss(const py::array& loss, int64_t n) {
  float* l = require_c(loss, "loss", 1, true);
  require_shape(loss, "loss", {n});
  return l;
}

float* optional_dlogits(const py::object& dlogits, int64_t n, int64_t c) {
  if (dlogits.is_none()) return nullptr;
  py::array da = dlogits.cast<py::array>();
  float* d = require_c(da, "dlogits", 2, true);
  require_shape(da, "dlogits", {n, c});
  return d;
}

// Returns nothing; fills loss (N,) and dlogits (N,C) if given.
void py_xent_sparse(py::array loss, py::object dlogits, py::array logits, py::array labels,
                    float grad_scale) {
  int64_t n, c;
  const float* z = xent_logits(logits, &n, &c);
  float* l = xent_loss(loss, n);
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
  float* d = optional_dlogits(dlogits, n, c);
  py::gil_scoped_release r;
  softmax_xent_sparse(l, d, z, t, n, c, grad_scale);
}

void py_xent_dense(py::array loss, py::object dlogits, py::array logits, py::array targets,
                   float grad_scale) {
  int64_t n, c;
  const float* z = xent_logits(logits, &n, &c);
  float* l = xent_loss(loss, n);
  const float* t = require_c(targets, "targets", 2);
  require_shape(targets, "targets", {n, c});
  float* d = optional_dlogits(dlogits, n, c);
  py::gil_scoped_release r;
  softmax_xent_dense(l, d, z, t, n, c, grad_scale);
}

// ---- Optimizer updates: one binding for every fused update, driven by a table row per optimizer.
// Python signature: name(w, g, <slots...>, <hyper-parameters...>); w and the slots are written in
// place, every array has w's element count.

struct Slot {
  const char* arg;    // keyword name
  const char* label;  // name in error messages
};

// Every kernel behind the same signature: slots[i] is the i-th slot of the table row (or null).
typedef void (*update_fn)(float* w, float* const* slots, const float* g, int64_t n,
                          const OptimParams& p);
// A check beyond the shapes: an error message, or nullptr when the call is valid.
typedef const char* (*check_fn)(float* const* slots, const OptimParams& p);

template <class M>
struct member_value;
template <class T>
struct member_value<T OptimParams::*> {
  using type = T;
};
// Bit i of `Optional` set: slot i may be None (the kernel gets nullptr), so it is taken as an
// object; otherwise it must be an array.
template <uint32_t Optional, size_t I>
using slot_arg = std::conditional_t<((Optional >> I) & 1u) != 0, py::object, py::array>;

// Binds `name` (w, g, slots..., the OptimParams members Fields... under the names params...).
template <uint32_t Optional, auto... Fields, size_t... Si, size_t... Pi>
void def_update(py::module_& m, const char* name, update_fn run, check_fn check,
                const std::array<Slot, sizeof...(Si)>& slots,
                const std::array<const char*, sizeof...(Pi)>& params, std::index_sequence<Si...>,
                std::index_sequence<Pi...>) {
  static_assert(sizeof...(Fields) == sizeof...(Pi), "one name per hyper-parameter");
  m.def(
      name,
      [run, check, slots](py::array w, py::array g, slot_arg<Optional, Si>... slot,
                          typename member_value<decltype(Fields)>::type... value) {
        int64_t n;
        float* pw = flat(w, "w", true, &n);
        const float* pg = same_size(g, "g", n, false);
        float* ps[sizeof...(Si)] = {same_size(slot, slots[Si].label, n)...};
        OptimParams p;
        ((p.*Fields = value), ...);
        if (check)
          if (const char* error = check(ps, p)) throw py::value_error(error);
        py::gil_scoped_release r;
        run(pw, ps, pg, n, p);
      },
      py::arg("w"), py::arg("g"), py::arg(slots[Si].arg)..., py::arg(params[Pi])...);
}

template <uint32_t Optional, auto... Fields, size_t NS, size_t NP>
void def_update(py::module_& m, const char* name, update_fn run, check_fn check,
                const std::array<Slot, NS>& slots, const std::array<const char*, NP>& params) {
  def_update<Optional, Fields...>(m, name, run, check, slots, params,
                                  std::make_index_sequence<NS>(), std::make_index_sequence<NP>());
}

using P = OptimParams;

void bind_updates(py::module_& m) {
  def_update<0b1, &P::lr, &P::momentum, &P::nesterov, &P::l1, &P::l2>(
      m, "sgd_update",
      [](float* w, float* const* s, const float* g, int64_t n, const P& p) {
        sgd_update(w, s[0], g, n, p);
      },
      [](float* const* s, const P& p) -> const char* {
        return p.momentum != 0.0f && !s[0] ? "SGD with momentum needs a momentum slot" : nullptr;
      },
      std::array<Slot, 1>{{{"m", "m"}}},
      std::array<const char*, 5>{"lr", "momentum", "nesterov", "l1", "l2"});
  def_update<0, &P::alpha, &P::beta1, &P::beta2, &P::eps, &P::l1, &P::l2>(
      m, "adam_update",
      [](float* w, float* const* s, const float* g, int64_t n, const P& p) {
        adam_update(w, s[0], s[1], g, n, p);
      },
      nullptr, std::array<Slot, 2>{{{"m", "m"}, {"v", "v"}}},
      std::array<const char*, 6>{"alpha", "beta1", "beta2", "eps", "l1", "l2"});
  def_update<0b110, &P::lr, &P::rho, &P::momentum, &P::eps, &P::l1, &P::l2>(
      m, "rmsprop_update",
      [](float* w, float* const* s, const float* g, int64_t n, const P& p) {
        rmsprop_update(w, s[0], s[1], s[2], g, n, p);
      },
      nullptr,
      std::array<Slot, 3>{{{"v", "v"}, {"mom", "momentum slot"}, {"avg", "average slot"}}},
      std::array<const char*, 6>{"lr", "rho", "momentum", "eps", "l1", "l2"});
  def_update<0b100, &P::alpha, &P::beta1, &P::beta2, &P::eps, &P::wd_lr, &P::l1, &P::l2>(
      m, "adamw_update",
      [](float* w, float* const* s, const float* g, int64_t n, const P& p) {
        adamw_update(w, s[0], s[1], s[2], g, n, p);
      },
      nullptr, std::array<Slot, 3>{{{"m", "m"}, {"v", "v"}, {"vhat", "vhat"}}},
      std::array<const char*, 7>{"alpha", "beta1", "beta2", "eps", "wd_lr", "l1", "l2"});
  def_update<0, &P::lr, &P::beta1, &P::beta2, &P::eps, &P::c1, &P::c2, &P::c3, &P::wd_lr, &P::l1,
             &P::l2>(
      m, "nadam_update",
      [](float* w, float* const* s, const float* g, int64_t n, const P& p) {
        nadam_update(w, s[0], s[1], g, n, p);
      },
      nullptr, std::array<Slot, 2>{{{"m", "m"}, {"v", "v"}}},
      std::array<const char*, 10>{"lr", "beta1", "beta2", "eps", "c1", "c2", "bias2", "wd_lr",
                                  "l1", "l2"});
  def_update<0, &P::lr, &P::beta1, &P::beta2, &P::eps, &P::c3, &P::wd_lr, &P::l1, &P::l2>(
      m, "adamax_update",
      [](float* w, float* const* s, const float* g, int64_t n, const P& p) {
        adamax_update(w, s[0], s[1], g, n, p);
      },
      nullptr, std::array<Slot, 2>{{{"m", "m"}, {"u", "u"}}},
      std::array<const char*, 8>{"lr", "beta1", "beta2", "eps", "bias1", "wd_lr", "l1", "l2"});
  def_update<0, &P::lr, &P::eps, &P::wd_lr, &P::l1, &P::l2>(
      m, "adagrad_update",
      [](float* w, float* const* s, const float* g, int64_t n, const P& p) {
        adagrad_update(w, s[0], g, n, p);
      },
      nullptr, std::array<Slot, 1>{{{"acc", "accumulator"}}},
      std::array<const char*, 5>{"lr", "eps", "wd_lr", "l1", "l2"});
  def_update<0, &P::lr, &P::rho, &P::eps, &P::wd_lr, &P::l1, &P::l2>(
      m, "adadelta_update",
      [](float* w, float* const* s, const float* g, int64_t n, const P& p) {
        adadelta_update(w, s[0], s[1], g, n, p);
      },
      nullptr,
      std::array<Slot, 2>{{{"acc_g", "accumulated grad"}, {"acc_dx", "accumulated delta"}}},
      std::array<const char*, 6>{"lr", "rho", "eps", "wd_lr", "l1", "l2"});
  def_update<0, &P::lr, &P::lr_power, &P::ftrl_l1, &P::ftrl_l2, &P::ftrl_shrink, &P::wd_lr, &P::l1,
             &P::l2>(
      m, "ftrl_update",
      [](float* w, float* const* s, const float* g, int64_t n, const P& p) {
        ftrl_update(w, s[0], s[1], g, n, p);
      },
      nullptr, std::array<Slot, 2>{{{"acc", "accumulator"}, {"lin", "linear"}}},
      std::array<const char*, 8>{"lr", "lr_power", "l1s", "l2s", "shrink", "wd_lr", "l1", "l2"});
  def_update<0, &P::lr, &P::beta1, &P::beta2, &P::wd_lr, &P::l1, &P::l2>(
      m, "lion_update",
      [](float* w, float* const* s, const float* g, int64_t n, const P& p) {
        lion_update(w, s[0], g, n, p);
      },
      nullptr, std::array<Slot, 1>{{{"m", "m"}}},
      std::array<const char*, 6>{"lr", "beta1", "beta2", "wd_lr", "l1", "l2"});
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
  bind_updates(m);
}

}  // namespace nncore::bind
