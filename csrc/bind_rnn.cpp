// _core.rnn_forward / _core.rnn_backward: SimpleRNN, LSTM and GRU over whole sequences, with
// Keras's per-gate dropout masks and its step mask optionally.
// Every shape is checked here (again after nncore.ops.rnn): no call can read or write out of bounds.
#include <algorithm>
#include <initializer_list>
#include <string>
#include <vector>

#include "bind_util.hpp"
#include "kernels/rnn.hpp"

namespace nncore::bind {

namespace {

RnnCell cell_from(int cell) {
  if (cell < 0 || cell > 4)
    throw py::value_error("rnn: unknown cell " + std::to_string(cell) +
                          " (0 simple tanh, 1 simple relu, 2 lstm, 3 gru, 4 gru reset_before)");
  return static_cast<RnnCell>(cell);
}

// The optional step mask: None -> nullptr; else a C-contiguous (B, T) array of bool or uint8 (one
// byte per step, nonzero = the step runs), kept alive in *keep.
const uint8_t* step_mask(const py::object& o, int64_t B, int64_t T, py::array* keep) {
  if (o.is_none()) return nullptr;
  *keep = o.cast<py::array>();
  const char kind = keep->dtype().kind();
  if (keep->itemsize() != 1 || (kind != 'b' && kind != 'u'))
    throw py::type_error("rnn: mask must be a bool or uint8 array, got dtype " +
                         std::string(py::str(keep->dtype())));
  if (!(keep->flags() & py::array::c_style))
    throw py::value_error("rnn: mask must be C-contiguous");
  require_shape(*keep, "mask", {B, T});
  return static_cast<const uint8_t*>(keep->data());
}

// a * b, or ValueError when the product of sizes gets absurd (keeps every index in int64 range).
int64_t mul(int64_t a, int64_t b) {
  constexpr int64_t kLimit = int64_t(1) << 40;
  if (a < 0 || b < 0 || (a != 0 && b > kLimit / a))
    throw py::value_error("rnn: array sizes are too large");
  return a * b;
}

py::array_t<float> empty(std::initializer_list<int64_t> shape) {
  return py::array_t<float>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

float* data(py::array_t<float>& a) { return a.mutable_data(); }


// A workspace array handed in for reuse (checked: float32, C-contiguous, writable, exact shape), or
// a new one when none is given.
py::array_t<float> reuse_or_new(const py::object& given, const char* name,
                                std::initializer_list<int64_t> shape) {
  if (given.is_none()) return empty(shape);
  py::array a = given.cast<py::array>();
  require_c(a, name, static_cast<int>(shape.size()), true);
  require_shape(a, name, std::vector<int64_t>(shape));
  return py::reinterpret_borrow<py::array_t<float>>(a);
}

// The bytes [lo, hi) of a C-contiguous array, named for the error message.
struct Span {
  const char* lo;
  const char* hi;
  const char* name;
};

Span span_of(const py::array& a, const char* name) {
  const char* p = static_cast<const char*>(a.data());
  return {p, p + a.nbytes(), name};
}

bool overlap(const Span& a, const Span& b) {
  return a.lo != a.hi && b.lo != b.hi && a.lo < b.hi && b.lo < a.hi;
}

// The kernel writes every workspace array while it reads the inputs: reused workspace arrays must
// not share a byte with each other or with an input.
void require_disjoint(const std::vector<Span>& written, const std::vector<Span>& read) {
  for (size_t i = 0; i < written.size(); ++i) {
    for (size_t j = i + 1; j < written.size(); ++j)
      if (overlap(written[i], written[j]))
        throw py::value_error(std::string("rnn: ") + written[i].name + " and " + written[j].name +
                              " overlap in memory");
    for (const Span& r : read)
      if (overlap(written[i], r))
        throw py::value_error(std::string("rnn: ") + written[i].name + " overlaps the input " +
                              r.name + " in memory");
  }
}

py::tuple rnn_forward_py(int cell_id, py::array x, py::array kernel, py::array recurrent_kernel,
                         py::object bias, py::object h0, py::object c0, bool return_sequences,
                         bool training, py::object workspace, py::object in_masks,
                         py::object rec_masks, py::object mask) {
  const RnnCell cell = cell_from(cell_id);
  const float* xp = require_c(x, "x", 3);
  const float* wp = require_c(kernel, "kernel", 2);
  const float* up = require_c(recurrent_kernel, "recurrent_kernel", 2);
  const int64_t B = x.shape(0), T = x.shape(1), F = x.shape(2), U = recurrent_kernel.shape(0);
  if (B < 0 || T < 1 || F < 1 || U < 1)
    throw py::value_error("rnn: timesteps, features and units must be >= 1 (batch >= 0); x has "
                          "shape " + shape_str(x) + ", recurrent_kernel " +
                          shape_str(recurrent_kernel));
  const int64_t G = mul(rnn_gates(cell), U);
  require_shape(kernel, "kernel", {F, G});
  require_shape(recurrent_kernel, "recurrent_kernel", {U, G});
  mul(mul(mul(T + 1, B), G + F + U), 4);  // every buffer below is smaller than this
  mul(U + 64, G + 64);                     // and the packed recurrent kernel
  py::array keep_b, keep_h, keep_c;
  const float* bp = optional(bias, "bias",
                             cell == RnnCell::gru ? std::vector<int64_t>{2, G}
                                                  : std::vector<int64_t>{G}, &keep_b);
  py::array keep_m;
  const uint8_t* mp = step_mask(mask, B, T, &keep_m);
  const float* hp = optional(h0, "h0", {B, U}, &keep_h);
  const bool lstm = cell == RnnCell::lstm;
  if (!lstm && !c0.is_none()) throw py::value_error("rnn: c0 is only for LSTM");
  const float* cp = optional(c0, "c0", {B, U}, &keep_c);
  py::array keep_in, keep_rec;
  RnnDropout drop;
  drop.in = optional(in_masks, "in_masks", {rnn_gates(cell), B, F}, &keep_in);
  drop.rec = optional(rec_masks, "rec_masks", {rnn_gates(cell), B, U}, &keep_rec);

  // Workspace (xt, gates, hs, cs, aux), see kernels/rnn.hpp; the caller may pass the arrays of an
  // earlier call to reuse (fresh pages cost more than these kernels at small sizes).
  std::vector<py::object> ws(5, py::none());
  if (!workspace.is_none()) {
    auto tup = workspace.cast<py::tuple>();
    if (tup.size() != 5) throw py::value_error("rnn: workspace must be a 5-tuple");
    for (size_t i = 0; i < 5; ++i) ws[i] = tup[i];
  }
  const int64_t S = training ? T + 1 : 2;
  auto out = return_sequences ? empty({B, T, U}) : empty({B, U});
  auto xt = reuse_or_new(ws[0], "workspace xt", {T, B, F});
  auto gates = reuse_or_new(ws[1], "workspace gates", {T, B, G});
  auto hs = reuse_or_new(ws[2], "workspace hs", {S, B, U});
  py::object cs = py::none(), aux = py::none();
  float* csp = nullptr;
  float* auxp = nullptr;
  if (lstm) {
    auto a = reuse_or_new(ws[3], "workspace cs", {S, B, U});
    csp = data(a);
    cs = a;
  }
  if (training && (lstm || rnn_is_gru(cell))) {
    auto a = reuse_or_new(ws[4], "workspace aux", {T, B, U});
    auxp = data(a);
    aux = a;
  }
  std::vector<Span> written{span_of(xt, "workspace xt"), span_of(gates, "workspace gates"),
                            span_of(hs, "workspace hs")};
  if (!cs.is_none()) written.push_back(span_of(cs.cast<py::array>(), "workspace cs"));
  if (!aux.is_none()) written.push_back(span_of(aux.cast<py::array>(), "workspace aux"));
  std::vector<Span> read{span_of(x, "x"), span_of(kernel, "kernel"),
                         span_of(recurrent_kernel, "recurrent_kernel")};
  if (bp) read.push_back(span_of(keep_b, "bias"));
  if (hp) read.push_back(span_of(keep_h, "h0"));
  if (cp) read.push_back(span_of(keep_c, "c0"));
  if (drop.in) read.push_back(span_of(keep_in, "in_masks"));
  if (drop.rec) read.push_back(span_of(keep_rec, "rec_masks"));
  if (mp) read.push_back(span_of(keep_m, "mask"));
  require_disjoint(written, read);
  RnnShape s{B, T, F, U};
  RnnParams p;
  p.cell = cell;
  p.return_sequences = return_sequences;
  p.training = training;
  float *op = data(out), *xtp = data(xt), *gp = data(gates), *hsp = data(hs);
  if (B == 0) return py::make_tuple(out, py::make_tuple(xt, gates, hs, cs, aux));  // empty batch
  {
    py::gil_scoped_release release;
    rnn_forward(op, xtp, gp, hsp, csp, auxp, xp, wp, up, bp, hp, cp, s, p, drop, mp);
  }
  return py::make_tuple(out, py::make_tuple(xt, gates, hs, cs, aux));
}

py::tuple rnn_backward_py(int cell_id, py::array dout, py::array xt, py::array kernel,
                          py::array recurrent_kernel, py::array gates, py::array hs, py::object cs,
                          py::object aux, bool return_sequences, bool has_bias,
                          py::object dc_last, py::object in_masks, py::object rec_masks,
                          py::object mask) {
  const RnnCell cell = cell_from(cell_id);
  const float* xtp = require_c(xt, "xt", 3);
  const float* wp = require_c(kernel, "kernel", 2);
  const float* up = require_c(recurrent_kernel, "recurrent_kernel", 2);
  const int64_t T = xt.shape(0), B = xt.shape(1), F = xt.shape(2), U = recurrent_kernel.shape(0);
  if (B < 0 || T < 1 || F < 1 || U < 1)
    throw py::value_error("rnn backward: empty cache arrays");
  const int64_t G = mul(rnn_gates(cell), U);
  mul(mul(mul(T + 1, B), 2 * G + F + U), 4);
  mul(U + 64, G + 64);
  require_shape(kernel, "kernel", {F, G});
  require_shape(recurrent_kernel, "recurrent_kernel", {U, G});
  const float* dp = require_c(dout, "dout", return_sequences ? 3 : 2);
  if (return_sequences) require_shape(dout, "dout", {B, T, U});
  else require_shape(dout, "dout", {B, U});
  const float* gp = require_c(gates, "gates", 3);
  require_shape(gates, "gates", {T, B, G});
  const float* hsp = require_c(hs, "hs", 3);
  require_shape(hs, "hs", {T + 1, B, U});
  const bool lstm = cell == RnnCell::lstm, gru = rnn_is_gru(cell);
  py::array keep_c, keep_a;
  const float* csp = nullptr;
  const float* auxp = nullptr;
  if (lstm) {
    if (cs.is_none()) throw py::value_error("rnn backward: LSTM needs the cell states");
    csp = optional(cs, "cs", {T + 1, B, U}, &keep_c);
  }
  if (lstm || gru) {
    if (aux.is_none()) throw py::value_error("rnn backward: missing saved activations");
    auxp = optional(aux, "aux", {T, B, U}, &keep_a);
  }
  py::array keep_dcl;
  if (!lstm && !dc_last.is_none()) throw py::value_error("rnn backward: dc_last is only for LSTM");
  const float* dclp = optional(dc_last, "dc_last", {B, U}, &keep_dcl);
  py::array keep_in, keep_rec;
  RnnDropout drop;
  drop.in = optional(in_masks, "in_masks", {rnn_gates(cell), B, F}, &keep_in);
  drop.rec = optional(rec_masks, "rec_masks", {rnn_gates(cell), B, U}, &keep_rec);
  py::array keep_m;
  const uint8_t* mp = step_mask(mask, B, T, &keep_m);
  auto dx = empty({B, T, F});
  auto dh0 = empty({B, U});
  auto dw = empty({F, G});
  auto du = empty({U, G});
  py::object dc0 = py::none(), db = py::none();
  float* dc0p = nullptr;
  float* dbp = nullptr;
  if (lstm) {
    auto a = empty({B, U});
    dc0p = data(a);
    dc0 = a;
  }
  const bool two_bias = cell == RnnCell::gru;
  if (has_bias) {
    auto a = two_bias ? empty({2, G}) : empty({G});
    dbp = data(a);
    db = a;
  }
  RnnShape s{B, T, F, U};
  RnnParams p;
  p.cell = cell;
  p.return_sequences = return_sequences;
  p.training = true;
  float *dxp = data(dx), *dh0p = data(dh0), *dwp = data(dw), *dup = data(du);
  if (B == 0) {  // empty batch: the weight gradients are sums over no rows
    std::fill(dwp, dwp + F * G, 0.0f);
    std::fill(dup, dup + U * G, 0.0f);
    if (dbp) std::fill(dbp, dbp + (two_bias ? 2 * G : G), 0.0f);
    return py::make_tuple(dx, dh0, dc0, dw, du, db);
  }
  {
    py::gil_scoped_release release;
    rnn_backward(dxp, dh0p, dc0p, dwp, dup, dbp, dp, dclp, xtp, wp, up, gp, hsp, csp, auxp, s, p,
                 drop, mp);
  }
  return py::make_tuple(dx, dh0, dc0, dw, du, db);
}

}  // namespace

void bind_rnn(py::module_& m) {
  // The cell codes nncore.ops passes, taken from the enum here so they are written only once.
  py::dict cells;
  cells["simple_tanh"] = static_cast<int>(RnnCell::simple_tanh);
  cells["simple_relu"] = static_cast<int>(RnnCell::simple_relu);
  cells["lstm"] = static_cast<int>(RnnCell::lstm);
  cells["gru"] = static_cast<int>(RnnCell::gru);
  cells["gru_reset_before"] = static_cast<int>(RnnCell::gru_reset_before);
  m.attr("rnn_cell_codes") = cells;
  m.def("rnn_forward", &rnn_forward_py, py::arg("cell"), py::arg("x"), py::arg("kernel"),
        py::arg("recurrent_kernel"), py::arg("bias"), py::arg("h0"), py::arg("c0"),
        py::arg("return_sequences"), py::arg("training"), py::arg("workspace") = py::none(),
        py::arg("in_masks") = py::none(), py::arg("rec_masks") = py::none(),
        py::arg("mask") = py::none(),
        "Whole-sequence recurrent forward -> (out, (xt, gates, hs, cs, aux)); in_masks (g,B,F) / "
        "rec_masks (g,B,U): Keras's per-gate dropout masks, fixed over time; mask (B,T) bool: "
        "Keras's step mask (masked steps carry the state over); use nncore.kernels.rnn.");
  m.def("rnn_backward", &rnn_backward_py, py::arg("cell"), py::arg("dout"), py::arg("xt"),
        py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("gates"), py::arg("hs"),
        py::arg("cs"), py::arg("aux"), py::arg("return_sequences"), py::arg("has_bias"),
        py::arg("dc_last") = py::none(), py::arg("in_masks") = py::none(),
        py::arg("rec_masks") = py::none(), py::arg("mask") = py::none(),
        "Backward through time -> (dx, dh0, dc0, dkernel, drecurrent_kernel, dbias).");
}

}  // namespace nncore::bind
