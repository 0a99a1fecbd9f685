// Recurrent layers over a whole sequence, Keras parametrisation (G = gates * U columns):
//   SimpleRNN  h_t = act(x_t W + h_{t-1} U + b)                              act = tanh | relu
//   LSTM       [i f c o] = x_t W + h_{t-1} U + b;  i,f,o = sigmoid, c~ = tanh(c)
//              c_t = f*c_{t-1} + i*c~;  h_t = o*tanh(c_t)
//   GRU        (reset_after) [xz xr xh] = x_t W + b0;  [rz rr rh] = h_{t-1} U + b1
//              z = sigmoid(xz+rz); r = sigmoid(xr+rr); hh = tanh(xh + r*rh); h_t = z*h_{t-1} + (1-z)*hh
//
// Forward: one GEMM projects every time step (x W + b, time-major) before the loop; each step is then
// one small GEMM (h_{t-1} U, accumulated onto its projection block) and one fused elementwise pass.
// Backward through time: each step is one fused elementwise pass producing the pre-activation gradient
// dZ_t and one GEMM dh_{t-1} = dZ_t U^T; afterwards dW = X^T dZ, dU = Hprev^T dZ, dX = dZ W^T are single
// GEMMs over all T*B rows and db is a column sum in fixed row order.
//
// Parallel level: the GEMMs split themselves; the elementwise passes split the batch rows, and every
// row is computed by the same code whatever the split, so results are bitwise identical for any
// thread count. The column sums split columns only (each column is summed in row order).
#include "kernels/rnn.hpp"

#include <cstring>

#include "common/parallel.hpp"
#include "common/scratch.hpp"
#include "kernels/gemm.hpp"

namespace nncore {
namespace {

// exp, sigmoid and tanh in plain float arithmetic (Cephes-style range reduction and polynomial, ~2
// ulp), written so that loops over them vectorise and give the same bits in every lane. NaN propagates.
inline float exp_fast(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float n = x * 1.44269504088896341f + magic;
  int32_t bits;
  std::memcpy(&bits, &n, sizeof bits);
  const int32_t ni = bits - 0x4B400000;  // the integer n (|n| <= 127)
  n -= magic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t sbits = (ni + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &sbits, sizeof scale);
  return p * scale;
}

inline float sigmoid_fast(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

inline float tanh_fast(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float e = exp_fast(-2.0f * ax);
  const float t = (1.0f - e) / (1.0f + e);
  return x < 0.0f ? -t : t;
}

// ---- forward rows: one batch row of one step ------------------------------------------------------

// z (U) pre-activation -> h (U)
void simple_fwd_row(float* h, const float* z, int64_t n, bool relu) {
  if (relu) {
    for (int64_t j = 0; j < n; ++j) h[j] = z[j] > 0.0f ? z[j] : 0.0f;
  } else {
    for (int64_t j = 0; j < n; ++j) h[j] = tanh_fast(z[j]);
  }
}

// g (4U) pre-activations -> activated in place; c_prev -> c, h; tc = tanh(c) if kept
void lstm_fwd_row(float* g, float* c, float* h, float* tc, const float* c_prev, int64_t n) {
  float* gi = g;
  float* gf = g + n;
  float* gc = g + 2 * n;
  float* go = g + 3 * n;
  for (int64_t j = 0; j < n; ++j) {
    const float i = sigmoid_fast(gi[j]), f = sigmoid_fast(gf[j]);
    const float cc = tanh_fast(gc[j]), o = sigmoid_fast(go[j]);
    const float cv = f * c_prev[j] + i * cc;
    const float t = tanh_fast(cv);
    gi[j] = i;
    gf[j] = f;
    gc[j] = cc;
    go[j] = o;
    c[j] = cv;
    h[j] = o * t;
    if (tc) tc[j] = t;
  }
}

// g (3U) = x W + b0 -> [z r hh] in place; rec (3U) = h_prev U + b1; rh = rec_h kept if asked
void gru_fwd_row(float* g, float* h, float* rh, const float* rec, const float* h_prev, int64_t n) {
  float* gz = g;
  float* gr = g + n;
  float* gh = g + 2 * n;
  for (int64_t j = 0; j < n; ++j) {
    const float z = sigmoid_fast(gz[j] + rec[j]);
    const float r = sigmoid_fast(gr[j] + rec[n + j]);
    const float hh = tanh_fast(gh[j] + r * rec[2 * n + j]);
    gz[j] = z;
    gr[j] = r;
    gh[j] = hh;
    h[j] = z * h_prev[j] + (1.0f - z) * hh;
  }
  if (rh) std::memcpy(rh, rec + 2 * n, sizeof(float) * n);
}

// ---- backward rows ---------------------------------------------------------------------------------

// dh (U): gradient from step t+1 (read); dy: dout row or null; h: h_t -> dz (U)
void simple_bwd_row(float* dz, const float* dh, const float* dy, const float* h, int64_t n,
                    bool relu) {
  for (int64_t j = 0; j < n; ++j) {
    const float d = dy ? dh[j] + dy[j] : dh[j];
    dz[j] = relu ? (h[j] > 0.0f ? d : 0.0f) : d * (1.0f - h[j] * h[j]);
  }
}

// g (4U) activated gates, c_prev, tc = tanh(c_t); dc (U) updated in place to dc_{t-1}
void lstm_bwd_row(float* dz, float* dc, const float* dh, const float* dy, const float* g,
                  const float* c_prev, const float* tc, int64_t n) {
  const float* gi = g;
  const float* gf = g + n;
  const float* gc = g + 2 * n;
  const float* go = g + 3 * n;
  for (int64_t j = 0; j < n; ++j) {
    const float d = dy ? dh[j] + dy[j] : dh[j];
    const float i = gi[j], f = gf[j], cc = gc[j], o = go[j], t = tc[j];
    const float dcv = dc[j] + d * o * (1.0f - t * t);
    dz[j] = dcv * cc * i * (1.0f - i);
    dz[n + j] = dcv * c_prev[j] * f * (1.0f - f);
    dz[2 * n + j] = dcv * i * (1.0f - cc * cc);
    dz[3 * n + j] = d * t * o * (1.0f - o);
    dc[j] = dcv * f;
  }
}

// g (3U) = [z r hh], rh, h_prev -> dzx (3U) input-side and dzr (3U) recurrent-side pre-activation
// gradients; dh (U) is replaced by the direct part z * dh (the GEMM adds dzr U^T after)
void gru_bwd_row(float* dzx, float* dzr, float* dh, const float* dy, const float* g,
                 const float* rh, const float* h_prev, int64_t n) {
  const float* gz = g;
  const float* gr = g + n;
  const float* gh = g + 2 * n;
  for (int64_t j = 0; j < n; ++j) {
    const float d = dy ? dh[j] + dy[j] : dh[j];
    const float z = gz[j], r = gr[j], hh = gh[j];
    const float dzz = d * (h_prev[j] - hh) * z * (1.0f - z);
    const float dah = d * (1.0f - z) * (1.0f - hh * hh);
    const float drr = dah * rh[j] * r * (1.0f - r);
    dzx[j] = dzz;
    dzx[n + j] = drr;
    dzx[2 * n + j] = dah;
    dzr[j] = dzz;
    dzr[n + j] = drr;
    dzr[2 * n + j] = dah * r;
    dh[j] = d * z;
  }
}

// Elementwise work per thread below which one thread does a whole step (thread wake-up costs more).
constexpr double kMinElemsPerThread = 8192.0;

int elem_threads(int64_t rows, int64_t cols) {
  return threads_for(static_cast<double>(rows) * static_cast<double>(cols), kMinElemsPerThread);
}

// dst (B,T,C) <-> src (T,B,C)
void to_time_major(float* dst, const float* src, int64_t B, int64_t T, int64_t C) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(dst + (t * B + b) * C, src + (b * T + t) * C, sizeof(float) * C);
}
void to_batch_major(float* dst, const float* src, int64_t B, int64_t T, int64_t C) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      std::memcpy(dst + (b * T + t) * C, src + (t * B + b) * C, sizeof(float) * C);
}

// out (C,) = sum over rows of a (R,C), each column summed in row order (split over columns only).
void column_sum(float* out, const float* a, int64_t rows, int64_t cols) {
  const int nt = threads_for(static_cast<double>(rows) * cols, 65536.0);
  parallel_for(cols, nt, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) out[j] = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const float* ar = a + r * cols;
      for (int64_t j = lo; j < hi; ++j) out[j] += ar[j];
    }
  });
}

}  // namespace

void rnn_forward(float* out, float* xt, float* gates, float* hs, float* cs, float* aux,
                 const float* x, const float* w, const float* u, const float* b, const float* h0,
                 const float* c0, const RnnShape& s, const RnnParams& p) {
  const int64_t B = s.batch, T = s.steps, F = s.features, U = s.units;
  const int64_t G = rnn_gates(p.cell) * U;
  const int64_t BU = B * U, BG = B * G;
  const bool gru = p.cell == RnnCell::gru, lstm = p.cell == RnnCell::lstm;
  const bool relu = p.cell == RnnCell::simple_relu;
  float* rec = gru ? thread_scratch(ScratchSlot::rnn).floats(static_cast<size_t>(BG)) : nullptr;

  // gates (T*B, G) = xt (T*B, F) @ w + b   (GRU: input bias row b0 only)
  to_time_major(xt, x, B, T, F);
  GemmParams proj;
  proj.bias = b;
  sgemm(gates, G, xt, F, w, G, T * B, G, F, proj);

  if (h0) std::memcpy(hs, h0, sizeof(float) * BU);
  else std::memset(hs, 0, sizeof(float) * BU);
  if (lstm) {
    if (c0) std::memcpy(cs, c0, sizeof(float) * BU);
    else std::memset(cs, 0, sizeof(float) * BU);
  }

  const int nt = elem_threads(B, G);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t prev = p.training ? t : t % 2, cur = p.training ? t + 1 : (t + 1) % 2;
    const float* h_prev = hs + prev * BU;
    float* h_cur = hs + cur * BU;
    float* g = gates + t * BG;
    if (gru) {  // rec = h_prev U + b1
      GemmParams rp;
      rp.bias = b ? b + G : nullptr;
      sgemm(rec, G, h_prev, U, u, G, B, G, U, rp);
    } else {  // g += h_prev U
      GemmParams rp;
      rp.beta = 1.0f;
      sgemm(g, G, h_prev, U, u, G, B, G, U, rp);
    }
    float* tsave = p.training && aux ? aux + t * BU : nullptr;
    parallel_for(B, nt, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        if (lstm)
          lstm_fwd_row(g + i * G, cs + cur * BU + i * U, h_cur + i * U,
                       tsave ? tsave + i * U : nullptr, cs + prev * BU + i * U, U);
        else if (gru)
          gru_fwd_row(g + i * G, h_cur + i * U, tsave ? tsave + i * U : nullptr, rec + i * G,
                      h_prev + i * U, U);
        else
          simple_fwd_row(h_cur + i * U, g + i * G, U, relu);
        if (p.return_sequences)
          std::memcpy(out + (i * T + t) * U, h_cur + i * U, sizeof(float) * U);
      }
    });
  }
  if (!p.return_sequences) {
    const int64_t last = p.training ? T : T % 2;
    std::memcpy(out, hs + last * BU, sizeof(float) * BU);
  }
}

void rnn_backward(float* dx, float* dh0, float* dc0, float* dw, float* du, float* db,
                  const float* dout, const float* xt, const float* w, const float* u,
                  const float* gates, const float* hs, const float* cs, const float* aux,
                  const RnnShape& s, const RnnParams& p) {
  const int64_t B = s.batch, T = s.steps, F = s.features, U = s.units;
  const int64_t G = rnn_gates(p.cell) * U;
  const int64_t BU = B * U, BG = B * G;
  const bool gru = p.cell == RnnCell::gru, lstm = p.cell == RnnCell::lstm;
  const bool relu = p.cell == RnnCell::simple_relu;

  // Scratch: dz (T,B,G) [GRU: input-side then recurrent-side], dxt (T,B,F).
  const size_t nz = static_cast<size_t>(T * BG) * (gru ? 2 : 1);
  float* const buf = thread_scratch(ScratchSlot::rnn).floats(nz + static_cast<size_t>(T * B * F));
  float* const dz = buf;
  float* const dzr = gru ? buf + T * BG : buf;  // the recurrent-side gradient
  float* const dxt = buf + nz;

  // dh0 / dc0 double as the running dh_{t} / dc_{t} buffers; they end as the initial-state gradients.
  float* const dh = dh0;
  std::memset(dh, 0, sizeof(float) * BU);
  if (lstm) std::memset(dc0, 0, sizeof(float) * BU);

  const int nt = elem_threads(B, G);
  for (int64_t t = T - 1; t >= 0; --t) {
    const float* g = gates + t * BG;
    const float* h_prev = hs + t * BU;
    float* dzt = dz + t * BG;
    float* dzrt = dzr + t * BG;
    const bool has_dy = p.return_sequences || t == T - 1;
    parallel_for(B, nt, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const float* dy = !has_dy ? nullptr
                          : p.return_sequences ? dout + (i * T + t) * U
                                               : dout + i * U;
        if (lstm)
          lstm_bwd_row(dzt + i * G, dc0 + i * U, dh + i * U, dy, g + i * G, cs + t * BU + i * U,
                       aux + t * BU + i * U, U);
        else if (gru)
          gru_bwd_row(dzt + i * G, dzrt + i * G, dh + i * U, dy, g + i * G, aux + t * BU + i * U,
                      h_prev + i * U, U);
        else
          simple_bwd_row(dzt + i * G, dh + i * U, dy, hs + (t + 1) * BU + i * U, U, relu);
      }
    });
    // dh_{t-1} = dZr_t U^T   (GRU: added to the direct part z * dh already in dh)
    GemmParams rp;
    rp.trans_b = true;
    rp.beta = gru ? 1.0f : 0.0f;
    sgemm(dh, U, dzrt, G, u, G, B, U, G, rp);
  }

  // Weight gradients over all T*B rows at once.
  GemmParams tp;
  tp.trans_a = true;
  sgemm(dw, G, xt, F, dz, G, F, G, T * B, tp);   // dW = Xᵀ dZx
  sgemm(du, G, hs, U, dzr, G, U, G, T * B, tp);  // dU = Hprevᵀ dZr  (hs[0:T] = h_{-1}..h_{T-2})
  if (db) {
    column_sum(db, dz, T * B, G);
    if (gru) column_sum(db + G, dzr, T * B, G);
  }
  GemmParams xp;
  xp.trans_b = true;
  sgemm(dxt, F, dz, G, w, G, T * B, F, G, xp);  // dX = dZx Wᵀ
  to_batch_major(dx, dxt, B, T, F);
}

}  // namespace nncore
