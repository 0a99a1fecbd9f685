// The fused elementwise step of each recurrent cell, one batch row at a time (see rnn.cpp for the
// formulas). This file is compiled once per ISA: rnn_cells_generic.cpp (baseline flags),
// rnn_cells_avx2.cpp and rnn_cells_avx512.cpp each include it with NNCORE_RNN_CELLS_IMPL defined
// and define the table; rnn.cpp picks one by the active ISA.
// Everything defined here has internal linkage, so the linker can never hand an AVX-512 copy to a
// caller on another ISA; no standard-library headers are used for the same reason.
#pragma once

#include <stdint.h>

namespace nncore {

struct RnnRowKernels {
  // z (U) pre-activation -> h (U)
  void (*simple_fwd)(float* h, const float* z, int64_t n, bool relu);
  // g (4U) pre-activations -> gates in place; c_prev -> c, h; tc = tanh(c) if non-null
  void (*lstm_fwd)(float* g, float* c, float* h, float* tc, const float* c_prev, int64_t n);
  // g (3U) = x W + b0 -> [z r hh] in place; rec (3U) = h_prev U + b1; rh kept if non-null
  void (*gru_fwd)(float* g, float* h, float* rh, const float* rec, const float* h_prev, int64_t n);
  // dh (U) from step t+1, dy = dout row or null, h = h_t -> dz (U)
  void (*simple_bwd)(float* dz, const float* dh, const float* dy, const float* h, int64_t n,
                     bool relu);
  // gates, c_prev, tc = tanh(c_t) -> dz (4U); dc (U) updated in place to dc_{t-1}
  void (*lstm_bwd)(float* dz, float* dc, const float* dh, const float* dy, const float* g,
                   const float* c_prev, const float* tc, int64_t n);
  // [z r hh], rh, h_prev -> dzx (3U) input side, dzr (3U) recurrent side; dh <- z * (dh + dy)
  void (*gru_bwd)(float* dzx, float* dzr, float* dh, const float* dy, const float* g,
                  const float* rh, const float* h_prev, int64_t n);
  // GRU reset_after=False, the step's two halves around the GEMM rh U_h:
  // g (3U) = [xz+hz, xr+hr, .] -> z, r in place; rh = r * (h_prev * hm), hm (U) or null (ones)
  void (*gru0_reset_fwd)(float* g, float* rh, const float* h_prev, const float* hm, int64_t n);
  // g[2U:] = xh + rh U_h -> hh in place; h = z*h_prev + (1-z)*hh
  void (*gru0_fwd)(float* g, float* h, const float* h_prev, int64_t n);
  // d = dh + dy -> dz[0:U] = dz_z, dz[2U:] = dz_h (the candidate's pre-activation); dh <- z * d
  void (*gru0_bwd_out)(float* dz, float* dh, const float* dy, const float* g, const float* h_prev,
                       int64_t n);
  // dq = dz_h U_hᵀ (U) -> dz[U:2U] = dz_r; dh += dq * r * hm (hm null: ones)
  void (*gru0_bwd_reset)(float* dz, float* dh, const float* dq, const float* g,
                         const float* h_prev, const float* hm, int64_t n);
  const char* name;  // the ISA the file was compiled for
};

// One table per ISA (common/dispatch.hpp), defined by rnn_cells_<isa>.cpp.
extern const RnnRowKernels kRnnCellsGeneric;
#if defined(NNCORE_X86)
extern const RnnRowKernels kRnnCellsAvx2;
extern const RnnRowKernels kRnnCellsAvx512;
#endif

}  // namespace nncore

#if defined(NNCORE_RNN_CELLS_IMPL)

// The clamps and sign selections are ternaries on floats; with trapping math GCC keeps them as
// branches and the loops do not vectorise. Nothing here relies on FP exception flags.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

namespace nncore {
namespace {

// exp, sigmoid and tanh in plain float arithmetic (Cephes-style range reduction and polynomial,
// ~2 ulp), written so that loops over them vectorise and give the same bits in every lane. NaN
// propagates.
inline float exp_fast(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float n = x * 1.44269504088896341f + magic;
  int32_t bits;
  __builtin_memcpy(&bits, &n, sizeof bits);
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
  // 2^n; shifted unsigned: for a NaN x, ni is garbage and a signed shift would overflow (UB,
  // found by tools/sanitize.sh); the result is NaN through p either way.
  const uint32_t sbits = static_cast<uint32_t>(ni + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &sbits, sizeof scale);
  return p * scale;
}

inline float sigmoid_fast(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

// tanh: an odd polynomial below |x| = 0.625 (where (1-e)/(1+e) would lose relative precision to
// cancellation), (1 - e^-2|x|) / (1 + e^-2|x|) with the sign restored above (Cephes tanhf).
inline float tanh_fast(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float e = exp_fast(-2.0f * ax);
  float t = (1.0f - e) / (1.0f + e);
  t = x < 0.0f ? -t : t;
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  return ax < 0.625f ? small : t;
}

// ---- forward rows: one batch row of one step

// z (U) pre-activation -> h (U)
void simple_fwd_row(float* __restrict h, const float* __restrict z, int64_t n, bool relu) {
  if (relu) {
    for (int64_t j = 0; j < n; ++j) h[j] = z[j] < 0.0f ? 0.0f : z[j];  // NaN stays
  } else {
    for (int64_t j = 0; j < n; ++j) h[j] = tanh_fast(z[j]);
  }
}

// g (4U) pre-activations -> activated in place; c_prev -> c, h; tc = tanh(c) if kept
template <bool kKeep>
void lstm_fwd_row_t(float* __restrict g, float* __restrict c, float* __restrict h,
                    float* __restrict tc, const float* __restrict c_prev, int64_t n) {
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
    if (kKeep) tc[j] = t;
  }
}

void lstm_fwd_row(float* g, float* c, float* h, float* tc, const float* c_prev, int64_t n) {
  if (tc) lstm_fwd_row_t<true>(g, c, h, tc, c_prev, n);
  else lstm_fwd_row_t<false>(g, c, h, tc, c_prev, n);
}

// g (3U) = x W + b0 -> [z r hh] in place; rec (3U) = h_prev U + b1; rh = rec_h kept if asked
void gru_fwd_row(float* __restrict g, float* __restrict h, float* __restrict rh,
                 const float* __restrict rec, const float* __restrict h_prev, int64_t n) {
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
  if (rh) __builtin_memcpy(rh, rec + 2 * n, sizeof(float) * n);
}

// ---- backward rows

// dh (U): gradient from step t+1 (read); dy: dout row or null; h: h_t -> dz (U)
template <bool kDy, bool kRelu>
void simple_bwd_row_t(float* __restrict dz, const float* __restrict dh, const float* __restrict dy,
                      const float* __restrict h, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float d = kDy ? dh[j] + dy[j] : dh[j];
    dz[j] = kRelu ? (h[j] > 0.0f ? d : 0.0f) : d * (1.0f - h[j] * h[j]);
  }
}

void simple_bwd_row(float* dz, const float* dh, const float* dy, const float* h, int64_t n,
                    bool relu) {
  if (relu) {
    if (dy) simple_bwd_row_t<true, true>(dz, dh, dy, h, n);
    else simple_bwd_row_t<false, true>(dz, dh, dy, h, n);
  } else {
    if (dy) simple_bwd_row_t<true, false>(dz, dh, dy, h, n);
    else simple_bwd_row_t<false, false>(dz, dh, dy, h, n);
  }
}

// g (4U) activated gates, c_prev, tc = tanh(c_t); dc (U) updated in place to dc_{t-1}
template <bool kDy>
void lstm_bwd_row_t(float* __restrict dz, float* __restrict dc, const float* __restrict dh,
                    const float* __restrict dy, const float* __restrict g,
                    const float* __restrict c_prev, const float* __restrict tc, int64_t n) {
  const float* gi = g;
  const float* gf = g + n;
  const float* gc = g + 2 * n;
  const float* go = g + 3 * n;
  for (int64_t j = 0; j < n; ++j) {
    const float d = kDy ? dh[j] + dy[j] : dh[j];
    const float i = gi[j], f = gf[j], cc = gc[j], o = go[j], t = tc[j];
    const float dcv = dc[j] + d * o * (1.0f - t * t);
    dz[j] = dcv * cc * i * (1.0f - i);
    dz[n + j] = dcv * c_prev[j] * f * (1.0f - f);
    dz[2 * n + j] = dcv * i * (1.0f - cc * cc);
    dz[3 * n + j] = d * t * o * (1.0f - o);
    dc[j] = dcv * f;
  }
}

void lstm_bwd_row(float* dz, float* dc, const float* dh, const float* dy, const float* g,
                  const float* c_prev, const float* tc, int64_t n) {
  if (dy) lstm_bwd_row_t<true>(dz, dc, dh, dy, g, c_prev, tc, n);
  else lstm_bwd_row_t<false>(dz, dc, dh, dy, g, c_prev, tc, n);
}

// g (3U) = [z r hh], rh, h_prev -> dzx (3U) input-side and dzr (3U) recurrent-side pre-activation
// gradients; dh (U) is replaced by the direct part z * dh (the GEMM adds dzr U^T after)
template <bool kDy>
void gru_bwd_row_t(float* __restrict dzx, float* __restrict dzr, float* __restrict dh,
                   const float* __restrict dy, const float* __restrict g,
                   const float* __restrict rh, const float* __restrict h_prev, int64_t n) {
  const float* gz = g;
  const float* gr = g + n;
  const float* gh = g + 2 * n;
  for (int64_t j = 0; j < n; ++j) {
    const float d = kDy ? dh[j] + dy[j] : dh[j];
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

void gru_bwd_row(float* dzx, float* dzr, float* dh, const float* dy, const float* g,
                 const float* rh, const float* h_prev, int64_t n) {
  if (dy) gru_bwd_row_t<true>(dzx, dzr, dh, dy, g, rh, h_prev, n);
  else gru_bwd_row_t<false>(dzx, dzr, dh, dy, g, rh, h_prev, n);
}

// ---- GRU reset_after=False: hh = tanh(xh + (r * h_prev) U_h), the GEMM between the two halves

template <bool kMask>
void gru0_reset_fwd_row_t(float* __restrict g, float* __restrict rh,
                          const float* __restrict h_prev, const float* __restrict hm, int64_t n) {
  float* gz = g;
  float* gr = g + n;
  for (int64_t j = 0; j < n; ++j) {
    const float z = sigmoid_fast(gz[j]);
    const float r = sigmoid_fast(gr[j]);
    const float hin = kMask ? h_prev[j] * hm[j] : h_prev[j];
    gz[j] = z;
    gr[j] = r;
    rh[j] = r * hin;
  }
}

void gru0_reset_fwd_row(float* g, float* rh, const float* h_prev, const float* hm, int64_t n) {
  if (hm) gru0_reset_fwd_row_t<true>(g, rh, h_prev, hm, n);
  else gru0_reset_fwd_row_t<false>(g, rh, h_prev, hm, n);
}

void gru0_fwd_row(float* __restrict g, float* __restrict h, const float* __restrict h_prev,
                  int64_t n) {
  const float* gz = g;
  float* gh = g + 2 * n;
  for (int64_t j = 0; j < n; ++j) {
    const float z = gz[j];
    const float hh = tanh_fast(gh[j]);
    gh[j] = hh;
    h[j] = z * h_prev[j] + (1.0f - z) * hh;
  }
}

template <bool kDy>
void gru0_bwd_out_row_t(float* __restrict dz, float* __restrict dh, const float* __restrict dy,
                        const float* __restrict g, const float* __restrict h_prev, int64_t n) {
  const float* gz = g;
  const float* gh = g + 2 * n;
  for (int64_t j = 0; j < n; ++j) {
    const float d = kDy ? dh[j] + dy[j] : dh[j];
    const float z = gz[j], hh = gh[j];
    dz[j] = d * (h_prev[j] - hh) * z * (1.0f - z);
    dz[2 * n + j] = d * (1.0f - z) * (1.0f - hh * hh);
    dh[j] = d * z;
  }
}

void gru0_bwd_out_row(float* dz, float* dh, const float* dy, const float* g, const float* h_prev,
                      int64_t n) {
  if (dy) gru0_bwd_out_row_t<true>(dz, dh, dy, g, h_prev, n);
  else gru0_bwd_out_row_t<false>(dz, dh, dy, g, h_prev, n);
}

template <bool kMask>
void gru0_bwd_reset_row_t(float* __restrict dz, float* __restrict dh, const float* __restrict dq,
                          const float* __restrict g, const float* __restrict h_prev,
                          const float* __restrict hm, int64_t n) {
  const float* gr = g + n;
  for (int64_t j = 0; j < n; ++j) {
    const float r = gr[j];
    const float hin = kMask ? h_prev[j] * hm[j] : h_prev[j];
    dz[n + j] = dq[j] * hin * r * (1.0f - r);
    dh[j] += kMask ? dq[j] * r * hm[j] : dq[j] * r;
  }
}

void gru0_bwd_reset_row(float* dz, float* dh, const float* dq, const float* g, const float* h_prev,
                        const float* hm, int64_t n) {
  if (hm) gru0_bwd_reset_row_t<true>(dz, dh, dq, g, h_prev, hm, n);
  else gru0_bwd_reset_row_t<false>(dz, dh, dq, g, h_prev, hm, n);
}

}  // namespace

// NNCORE_RNN_CELLS_TABLE names this file's table (kRnnCells<Isa>), NNCORE_RNN_CELLS_NAME its ISA.
const RnnRowKernels NNCORE_RNN_CELLS_TABLE = {simple_fwd_row, lstm_fwd_row, gru_fwd_row,
                                              simple_bwd_row, lstm_bwd_row, gru_bwd_row,
                                              gru0_reset_fwd_row, gru0_fwd_row,
                                              gru0_bwd_out_row, gru0_bwd_reset_row,
                                              NNCORE_RNN_CELLS_NAME};
}  // namespace nncore

#endif  // NNCORE_RNN_CELLS_IMPL
