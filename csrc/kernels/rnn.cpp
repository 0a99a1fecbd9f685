// Recurrent layers over a whole sequence, Keras parametrisation (G = gates * U columns):
//   SimpleRNN h_t = act(x_t W + h_{t-1} U + b)                            act = tanh | relu
//   LSTM      [i f c o] = x_t W + h_{t-1} U + b;  i,f,o = sigmoid, c~ = tanh(c)
//             c_t = f*c_{t-1} + i*c~;  h_t = o*tanh(c_t)
//   GRU       (reset_after) [xz xr xh] = x_t W + b0;  [rz rr rh] = h_{t-1} U + b1
//             z = sigmoid(xz+rz); r = sigmoid(xr+rr); hh = tanh(xh + r*rh)
//             h_t = z*h_{t-1} + (1-z)*hh
//
// Forward: one GEMM projects every time step (x W + b, time-major) before the loop; each step is
// then one small GEMM (h_{t-1} U, accumulated onto its projection block) and one fused elementwise
// pass (rnn_cells.hpp). Backward through time: each step is one fused elementwise pass producing
// the pre-activation gradient dZ_t and one GEMM dh_{t-1} = dZ_t Uᵀ; afterwards dW = Xᵀ dZ,
// dU = Hprevᵀ dZ and dX = dZ Wᵀ are single GEMMs over all T*B rows, db a column sum in row order.
// U (forward) and Uᵀ (backward) are packed for the GEMM micro-kernel once per call.
// Dropout (RnnDropout, Keras's per-gate cell): with recurrent masks each step runs one GEMM per gate
// on h_{t-1} * rec[k] against that gate's block U_k (packed separately), and the backward's
// dh_{t-1} sums the gates' (dZr_k U_kᵀ) * rec[k] in gate order; input masks turn the projection,
// dW and dX into one GEMM per gate on the masked inputs. Masks are fixed over time, so they cost
// only elementwise passes and narrower GEMMs, never a Python step.
//
// Parallel level: each time loop is one parallel region, each thread owning a contiguous range of
// batch rows (rows of a recurrence are independent: no barrier inside the loop) and calling
// single-threaded GEMMs on them. The big GEMMs outside the loops split themselves; the column sums
// split columns only (each column summed in row order). Every element is computed by the same code
// whatever the split, so results are bitwise identical for any thread count.
#include "kernels/rnn.hpp"

#include <atomic>
#include <cstring>
#include <new>

#include "common/cpu.hpp"
#include "common/dispatch.hpp"
#include "common/parallel.hpp"
#include "common/scratch.hpp"
#include "kernels/gemm.hpp"
#include "kernels/rnn_cells.hpp"

namespace nncore {

namespace {

#if defined(NNCORE_X86)
constexpr PerIsa<RnnRowKernels> kRnnCells = {&kRnnCellsGeneric, &kRnnCellsAvx2, &kRnnCellsAvx512};
#else
constexpr PerIsa<RnnRowKernels> kRnnCells = {&kRnnCellsGeneric, nullptr, nullptr};
#endif
NNCORE_KERNEL_FAMILY(rnn_cells, kRnnCells, name);

const RnnRowKernels& row_kernels() { return kRnnCells.active(); }

// Per-step GEMM flops per thread below which one thread runs the whole recurrence.
constexpr double kMinStepFlopsPerThread = 2.0e5;
constexpr int64_t kMinRowsPerThread = 4;

// Runs f(lo, hi) over contiguous ranges of batch rows, one per thread, for the whole time loop.
// Batch rows of a recurrence are independent, so the threads never wait for each other inside the
// loop, and each row goes through the same code whatever the split (bitwise identical results).
// Returns false if a thread ran out of memory (its GEMM's first scratch allocation): the exception
// is caught inside the region, where it must not escape, and the caller rethrows it outside.
template <class F>
bool batch_parallel(int64_t B, int64_t U, int64_t G, F&& f) {
  int nt = threads_for(2.0 * static_cast<double>(B) * U * G, kMinStepFlopsPerThread);
  if (nt > B / kMinRowsPerThread) nt = B / kMinRowsPerThread > 1 ? B / kMinRowsPerThread : 1;
  std::atomic<bool> ok{true};
  parallel_run(nt, [&](int tid, int nth) {
    int64_t lo, hi;
    split_range(B, tid, nth, 1, &lo, &hi);
    if (lo >= hi) return;
    try {
      f(lo, hi);
    } catch (const std::bad_alloc&) {
      ok.store(false);
    }
  });
  return ok.load();
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
// Memory-bound: a second thread only pays once the sum is far bigger than a thread wake-up.
void column_sum(float* out, const float* a, int64_t rows, int64_t cols) {
  const int nt = threads_for(static_cast<double>(rows) * cols, 4.0e6);
  parallel_for(cols, nt, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) out[j] = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const float* ar = a + r * cols;
      for (int64_t j = lo; j < hi; ++j) out[j] += ar[j];
    }
  });
}

// Floats of a packed (K,N) operand rounded up to whole cache lines (packs laid side by side stay
// 64-byte aligned).
int64_t packed_floats(Isa isa, int64_t k, int64_t n) {
  return (sgemm_packed_b_floats(isa, k, n) + 15) / 16 * 16;
}

// The recurrent kernel u (U, G = ng*U) packed into buf for h·U (transposed: for dZ·Uᵀ): whole,
// or with recurrent dropout one (U, U) block per gate (each gate's h is masked differently).
void pack_recurrent(GemmPackedB* out, float* buf, Isa isa, const float* u, int64_t U,
                    int64_t ng, bool transposed, bool per_gate) {
  const int64_t G = ng * U;
  if (per_gate) {
    for (int64_t q = 0; q < ng; ++q)
      out[q] = sgemm_pack_b(buf + q * packed_floats(isa, U, U), isa, u + q * U, G, transposed, U,
                            U);
  } else {
    out[0] = transposed ? sgemm_pack_b(buf, isa, u, G, true, G, U)
                        : sgemm_pack_b(buf, isa, u, G, false, U, G);
  }
}

// dst (T*B, C) = src (T*B, C) * mask (B, C) broadcast over the T time steps.
void mask_rows(float* dst, const float* src, const float* mask, int64_t T, int64_t B, int64_t C) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t b = 0; b < B; ++b) {
      const float* sr = src + (t * B + b) * C;
      const float* mr = mask + b * C;
      float* dr = dst + (t * B + b) * C;
      for (int64_t j = 0; j < C; ++j) dr[j] = sr[j] * mr[j];
    }
}

}  // namespace

void rnn_forward(float* out, float* xt, float* gates, float* hs, float* cs, float* aux,
                 const float* x, const float* w, const float* u, const float* b, const float* h0,
                 const float* c0, const RnnShape& s, const RnnParams& p,
                 const RnnDropout& drop) {
  const int64_t B = s.batch, T = s.steps, F = s.features, U = s.units;
  const int64_t ng = rnn_gates(p.cell);
  const int64_t G = ng * U;
  const int64_t BU = B * U, BG = B * G;
  const bool gru = p.cell == RnnCell::gru, lstm = p.cell == RnnCell::lstm;
  const bool relu = p.cell == RnnCell::simple_relu;
  const float* const rmask = drop.rec;
  // Scratch: U packed once for the per-step GEMMs (with recurrent dropout: each gate's block U_k
  // packed on its own), then (GRU) rec (B,G) = h_{t-1} U + b1, (recurrent dropout) hm (B,U) the
  // masked h_{t-1}, (input dropout) xm (T,B,F) the masked inputs of one gate.
  const Isa isa = active_isa();
  const int64_t npack = rmask ? ng * packed_floats(isa, U, U) : packed_floats(isa, U, G);
  const int64_t nrec = gru ? BG : 0, nhm = rmask ? BU : 0, nxm = drop.in ? T * B * F : 0;
  float* const buf = thread_scratch(ScratchSlot::rnn).floats(npack + nrec + nhm + nxm);
  float* const rec = buf + npack;
  float* const hm = rec + nrec;
  float* const xm = hm + nhm;
  GemmPackedB up[4];
  pack_recurrent(up, buf, isa, u, U, ng, false, rmask != nullptr);

  // gates (T*B, G) = xt (T*B, F) @ w + b   (GRU: input bias row b0 only); with input dropout
  // gate by gate, gates[:, k] = (xt * in[k]) @ w_k + b_k
  to_time_major(xt, x, B, T, F);
  if (drop.in) {
    for (int64_t q = 0; q < ng; ++q) {
      mask_rows(xm, xt, drop.in + q * B * F, T, B, F);
      GemmParams proj;
      proj.bias = b ? b + q * U : nullptr;
      sgemm(gates + q * U, G, xm, F, w + q * U, G, T * B, U, F, proj);
    }
  } else {
    GemmParams proj;
    proj.bias = b;
    sgemm(gates, G, xt, F, w, G, T * B, G, F, proj);
  }

  if (h0) std::memcpy(hs, h0, sizeof(float) * BU);
  else std::memset(hs, 0, sizeof(float) * BU);
  if (lstm) {
    if (c0) std::memcpy(cs, c0, sizeof(float) * BU);
    else std::memset(cs, 0, sizeof(float) * BU);
  }

  const RnnRowKernels& k = row_kernels();
  const bool ok = batch_parallel(B, U, G, [&](int64_t lo, int64_t hi) {
    const int64_t m = hi - lo;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t prev = p.training ? t : t % 2, cur = p.training ? t + 1 : (t + 1) % 2;
      const float* h_prev = hs + prev * BU + lo * U;
      float* h_cur = hs + cur * BU + lo * U;
      float* g = gates + t * BG + lo * G;
      if (rmask) {  // gate by gate, the recurrent term reads h_prev * rec[k]
        float* hmr = hm + lo * U;
        for (int64_t q = 0; q < ng; ++q) {
          const float* mk = rmask + (q * B + lo) * U;
          for (int64_t e = 0; e < m * U; ++e) hmr[e] = h_prev[e] * mk[e];
          GemmParams rp;
          if (gru) {  // rec_k = hm U_k + b1_k
            rp.bias = b ? b + G + q * U : nullptr;
            sgemm_prepacked(rec + lo * G + q * U, G, hmr, U, up[q], m, rp);
          } else {  // g_k += hm U_k
            rp.beta = 1.0f;
            sgemm_prepacked(g + q * U, G, hmr, U, up[q], m, rp);
          }
        }
      } else {
        GemmParams rp;
        if (gru) {  // rec = h_prev U + b1
          rp.bias = b ? b + G : nullptr;
          sgemm_prepacked(rec + lo * G, G, h_prev, U, up[0], m, rp);
        } else {  // g += h_prev U
          rp.beta = 1.0f;
          sgemm_prepacked(g, G, h_prev, U, up[0], m, rp);
        }
      }
      float* tsave = p.training && aux ? aux + t * BU + lo * U : nullptr;
      for (int64_t i = 0; i < m; ++i) {
        float* hi_row = h_cur + i * U;
        if (lstm)
          k.lstm_fwd(g + i * G, cs + cur * BU + (lo + i) * U, hi_row,
                     tsave ? tsave + i * U : nullptr, cs + prev * BU + (lo + i) * U, U);
        else if (gru)
          k.gru_fwd(g + i * G, hi_row, tsave ? tsave + i * U : nullptr, rec + (lo + i) * G,
                    h_prev + i * U, U);
        else
          k.simple_fwd(hi_row, g + i * G, U, relu);
        if (p.return_sequences)
          std::memcpy(out + ((lo + i) * T + t) * U, hi_row, sizeof(float) * U);
      }
    }
  });
  if (!ok) throw std::bad_alloc();
  if (!p.return_sequences) {
    const int64_t last = p.training ? T : T % 2;
    std::memcpy(out, hs + last * BU, sizeof(float) * BU);
  }
}

void rnn_backward(float* dx, float* dh0, float* dc0, float* dw, float* du, float* db,
                  const float* dout, const float* dc_last, const float* xt, const float* w,
                  const float* u, const float* gates, const float* hs, const float* cs,
                  const float* aux, const RnnShape& s, const RnnParams& p,
                  const RnnDropout& drop) {
  const int64_t B = s.batch, T = s.steps, F = s.features, U = s.units;
  const int64_t ng = rnn_gates(p.cell);
  const int64_t G = ng * U;
  const int64_t BU = B * U, BG = B * G;
  const bool gru = p.cell == RnnCell::gru, lstm = p.cell == RnnCell::lstm;
  const bool relu = p.cell == RnnCell::simple_relu;
  const float* const rmask = drop.rec;

  // Scratch: Uᵀ packed once for the per-step GEMMs (recurrent dropout: each U_kᵀ on its own),
  // dz (T,B,G) [GRU: input-side then recurrent-side], dxt (T,B,F); with recurrent dropout tmp (B,U)
  // for one gate's dZr_k U_kᵀ and hm (T,B,U) the masked states of one gate; with input dropout
  // xm (T,B,F) the masked inputs of one gate and dxk (T,B,F) one gate's dZ_k W_kᵀ.
  const Isa isa = active_isa();
  const size_t nz = static_cast<size_t>(T * BG) * (gru ? 2 : 1);
  const size_t npack = static_cast<size_t>(rmask ? ng * packed_floats(isa, U, U)
                                                 : packed_floats(isa, G, U));
  const size_t nx = static_cast<size_t>(T * B * F);
  const size_t ntmp = rmask ? static_cast<size_t>(BU) : 0;
  const size_t nhm = rmask ? static_cast<size_t>(T * BU) : 0;
  const size_t nxm = drop.in ? 2 * nx : 0;
  float* const buf = thread_scratch(ScratchSlot::rnn).floats(npack + nz + nx + ntmp + nhm + nxm);
  GemmPackedB ut[4];
  pack_recurrent(ut, buf, isa, u, U, ng, true, rmask != nullptr);
  float* const dz = buf + npack;
  float* const dzr = gru ? dz + T * BG : dz;  // the recurrent-side gradient
  float* const dxt = dz + nz;
  float* const tmp = dxt + nx;
  float* const hm = tmp + ntmp;
  float* const xm = hm + nhm;
  float* const dxk = xm + (drop.in ? nx : 0);

  // dh0 / dc0 double as the running dh_t / dc_t buffers; they end as the initial-state gradients.
  float* const dh = dh0;
  std::memset(dh, 0, sizeof(float) * BU);
  if (lstm && dc_last) std::memcpy(dc0, dc_last, sizeof(float) * BU);
  else if (lstm) std::memset(dc0, 0, sizeof(float) * BU);

  const RnnRowKernels& k = row_kernels();
  const bool ok = batch_parallel(B, U, G, [&](int64_t lo, int64_t hi) {
    const int64_t m = hi - lo;
    for (int64_t t = T - 1; t >= 0; --t) {
      const float* g = gates + t * BG + lo * G;
      float* dzt = dz + t * BG + lo * G;
      float* dzrt = dzr + t * BG + lo * G;
      float* dht = dh + lo * U;
      const bool has_dy = p.return_sequences || t == T - 1;
      for (int64_t i = 0; i < m; ++i) {
        const int64_t row = lo + i;
        const float* dy = !has_dy              ? nullptr
                          : p.return_sequences ? dout + (row * T + t) * U
                                               : dout + row * U;
        if (lstm)
          k.lstm_bwd(dzt + i * G, dc0 + row * U, dht + i * U, dy, g + i * G,
                     cs + t * BU + row * U, aux + t * BU + row * U, U);
        else if (gru)
          k.gru_bwd(dzt + i * G, dzrt + i * G, dht + i * U, dy, g + i * G,
                    aux + t * BU + row * U, hs + t * BU + row * U, U);
        else
          k.simple_bwd(dzt + i * G, dht + i * U, dy, hs + (t + 1) * BU + row * U, U, relu);
      }
      // dh_{t-1} = dZr_t Uᵀ   (GRU: added to the direct part z * dh already in dh)
      if (rmask) {  // dh_{t-1} = sum_k (dZr_k U_kᵀ) * rec[k], gates in order
        float* tr = tmp + lo * U;
        for (int64_t q = 0; q < ng; ++q) {
          GemmParams rp;
          sgemm_prepacked(tr, U, dzrt + q * U, G, ut[q], m, rp);
          const float* mk = rmask + (q * B + lo) * U;
          if (q == 0 && !gru)
            for (int64_t e = 0; e < m * U; ++e) dht[e] = tr[e] * mk[e];
          else
            for (int64_t e = 0; e < m * U; ++e) dht[e] += tr[e] * mk[e];
        }
      } else {
        GemmParams rp;
        rp.beta = gru ? 1.0f : 0.0f;
        sgemm_prepacked(dht, U, dzrt, G, ut[0], m, rp);
      }
    }
  });
  if (!ok) throw std::bad_alloc();

  // Weight gradients over all T*B rows at once.
  GemmParams tp;
  tp.trans_a = true;
  if (drop.in) {  // dW_k = (X * in[k])ᵀ dZx_k
    for (int64_t q = 0; q < ng; ++q) {
      mask_rows(xm, xt, drop.in + q * B * F, T, B, F);
      sgemm(dw + q * U, G, xm, F, dz + q * U, G, F, U, T * B, tp);
    }
  } else {
    sgemm(dw, G, xt, F, dz, G, F, G, T * B, tp);  // dW = Xᵀ dZx
  }
  if (rmask) {  // dU_k = (Hprev * rec[k])ᵀ dZr_k
    for (int64_t q = 0; q < ng; ++q) {
      mask_rows(hm, hs, rmask + q * BU, T, B, U);
      sgemm(du + q * U, G, hm, U, dzr + q * U, G, U, U, T * B, tp);
    }
  } else {
    sgemm(du, G, hs, U, dzr, G, U, G, T * B, tp);  // dU = Hprevᵀ dZr  (hs[0:T] = h_{-1}..h_{T-2})
  }
  if (db) {
    column_sum(db, dz, T * B, G);
    if (gru) column_sum(db + G, dzr, T * B, G);
  }
  GemmParams xp;
  xp.trans_b = true;
  if (drop.in) {  // dX = sum_k (dZx_k W_kᵀ) * in[k], gates in order
    for (int64_t q = 0; q < ng; ++q) {
      sgemm(dxk, F, dz + q * U, G, w + q * U, G, T * B, F, U, xp);
      const float* mk = drop.in + q * B * F;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t bb = 0; bb < B; ++bb) {
          const float* src = dxk + (t * B + bb) * F;
          const float* mr = mk + bb * F;
          float* dst = dxt + (t * B + bb) * F;
          if (q == 0)
            for (int64_t j = 0; j < F; ++j) dst[j] = src[j] * mr[j];
          else
            for (int64_t j = 0; j < F; ++j) dst[j] += src[j] * mr[j];
        }
    }
  } else {
    sgemm(dxt, F, dz, G, w, G, T * B, F, G, xp);  // dX = dZx Wᵀ
  }
  to_batch_major(dx, dxt, B, T, F);
}

}  // namespace nncore
