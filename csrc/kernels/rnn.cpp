// Recurrent layers over a whole sequence, Keras parametrisation (G = gates * U columns):
//   SimpleRNN h_t = act(x_t W + h_{t-1} U + b)                            act = tanh | relu
//   LSTM      [i f c o] = x_t W + h_{t-1} U + b;  i,f,o = sigmoid, c~ = tanh(c)
//             c_t = f*c_{t-1} + i*c~;  h_t = o*tanh(c_t)
//   GRU       (reset_after) [xz xr xh] = x_t W + b0;  [rz rr rh] = h_{t-1} U + b1
//             z = sigmoid(xz+rz); r = sigmoid(xr+rr); hh = tanh(xh + r*rh)
//             h_t = z*h_{t-1} + (1-z)*hh
//             (reset_before, Keras reset_after=False) [xz xr xh] = x_t W + b;
//             z = sigmoid(xz + h_{t-1} U_z); r = sigmoid(xr + h_{t-1} U_r);
//             hh = tanh(xh + (r*h_{t-1}) U_h); h_t as above
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
// GRU reset_before needs r before its candidate's GEMM, so each step is two GEMMs ([U_z U_r],
// then U_h on r*h_{t-1}) around the two halves of its elementwise pass, and the backward likewise
// (dq = dZ_h U_hᵀ first, then dZ_r and dh_{t-1} += [dZ_z dZ_r] [U_z U_r]ᵀ); dU_h reads r*h_{t-1},
// kept in aux.
// Step mask (Keras masking): a per-row select in each step. A masked row skips the elementwise
// pass and copies h_{t-1} (and c_{t-1}) forward; in the backward its dZ row is zero and the
// dh (+ dout) it received is restored into dh_{t-1} after the step's GEMM (dc is left as is). The
// GEMMs still run over all rows of a thread's range (rows are independent in them), so the mask
// costs only these copies; with a null mask the loops take no extra step.
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

// The recurrent kernel u (U, G) as the column blocks the per-step GEMMs use: whole; with
// recurrent dropout one (U, U) block per gate (each gate's h is masked differently); GRU
// reset_before without it [U_z U_r] (U, 2U) and U_h (the candidate's GEMM comes after r).
struct RecBlocks {
  int n = 0;
  int64_t col[4] = {0, 0, 0, 0}, width[4] = {0, 0, 0, 0};
};

RecBlocks rec_blocks(RnnCell cell, int64_t U, bool per_gate) {
  const int64_t ng = rnn_gates(cell);
  RecBlocks r;
  if (per_gate) {
    r.n = static_cast<int>(ng);
    for (int q = 0; q < r.n; ++q) r.col[q] = q * U, r.width[q] = U;
  } else if (cell == RnnCell::gru_reset_before) {
    r.n = 2;
    r.col[1] = 2 * U, r.width[0] = 2 * U, r.width[1] = U;
  } else {
    r.n = 1;
    r.width[0] = ng * U;
  }
  return r;
}

// Floats of the blocks packed for h·U_block, or transposed for dZ_block·U_blockᵀ.
int64_t rec_pack_floats(Isa isa, const RecBlocks& r, int64_t U, bool transposed) {
  int64_t n = 0;
  for (int q = 0; q < r.n; ++q)
    n += transposed ? packed_floats(isa, r.width[q], U) : packed_floats(isa, U, r.width[q]);
  return n;
}

void pack_recurrent(GemmPackedB* out, float* buf, Isa isa, const float* u, int64_t U, int64_t G,
                    const RecBlocks& r, bool transposed) {
  for (int q = 0; q < r.n; ++q) {
    const int64_t w = r.width[q];
    out[q] = transposed ? sgemm_pack_b(buf, isa, u + r.col[q], G, true, w, U)
                        : sgemm_pack_b(buf, isa, u + r.col[q], G, false, U, w);
    buf += transposed ? packed_floats(isa, w, U) : packed_floats(isa, U, w);
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
                 const RnnDropout& drop, const uint8_t* mask) {
  const int64_t B = s.batch, T = s.steps, F = s.features, U = s.units;
  const int64_t ng = rnn_gates(p.cell);
  const int64_t G = ng * U;
  const int64_t BU = B * U, BG = B * G;
  const bool gru = p.cell == RnnCell::gru, lstm = p.cell == RnnCell::lstm;
  const bool gru0 = p.cell == RnnCell::gru_reset_before;
  const bool relu = p.cell == RnnCell::simple_relu;
  const float* const rmask = drop.rec;
  // Scratch: U packed once for the per-step GEMMs (rec_blocks), then (GRU) rec (B,G) =
  // h_{t-1} U + b1, (recurrent dropout) hm (B,U) the masked h_{t-1}, (input dropout) xm (T,B,F)
  // the masked inputs of one gate, (GRU reset_before at inference) rhs (B,U) = r * h_{t-1}.
  const Isa isa = active_isa();
  const RecBlocks blocks = rec_blocks(p.cell, U, rmask != nullptr);
  const int64_t npack = rec_pack_floats(isa, blocks, U, false);
  const int64_t nrec = gru ? BG : 0, nhm = rmask ? BU : 0, nxm = drop.in ? T * B * F : 0;
  const bool keep_rh = p.training && aux;
  const int64_t nrh = gru0 && !keep_rh ? BU : 0;
  float* const buf =
      thread_scratch(ScratchSlot::rnn).floats(npack + nrec + nhm + nxm + nrh);
  float* const rec = buf + npack;
  float* const hm = rec + nrec;
  float* const xm = hm + nhm;
  float* const rhs = xm + nxm;
  GemmPackedB up[4];
  pack_recurrent(up, buf, isa, u, U, G, blocks, false);
  // Blocks before the cell's elementwise pass; GRU reset_before's last block (U_h) runs after r.
  const int nfirst = gru0 ? blocks.n - 1 : blocks.n;

  // gates (T*B, G) = xt (T*B, F) @ w + b   (GRU reset_after: input bias row b0 only); with input
  // dropout gate by gate, gates[:, k] = (xt * in[k]) @ w_k + b_k
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
    const uint8_t* const mrow = mask ? mask + lo * T : nullptr;  // row lo+i, step t: mrow[i*T+t]
    for (int64_t t = 0; t < T; ++t) {
      const int64_t prev = p.training ? t : t % 2, cur = p.training ? t + 1 : (t + 1) % 2;
      const float* h_prev = hs + prev * BU + lo * U;
      float* h_cur = hs + cur * BU + lo * U;
      float* g = gates + t * BG + lo * G;
      // The recurrent GEMMs before the elementwise pass: g += h_prev U (GRU reset_after:
      // rec = h_prev U + b1); with recurrent dropout gate by gate on h_prev * rec[k].
      for (int q = 0; q < nfirst; ++q) {
        const int64_t col = blocks.col[q];
        const float* a = h_prev;
        if (rmask) {
          float* hmr = hm + lo * U;
          const float* mk = rmask + (q * B + lo) * U;
          for (int64_t e = 0; e < m * U; ++e) hmr[e] = h_prev[e] * mk[e];
          a = hmr;
        }
        GemmParams rp;
        if (gru) {
          rp.bias = b ? b + G + col : nullptr;
          sgemm_prepacked(rec + lo * G + col, G, a, U, up[q], m, rp);
        } else {
          rp.beta = 1.0f;
          sgemm_prepacked(g + col, G, a, U, up[q], m, rp);
        }
      }
      float* tsave = keep_rh ? aux + t * BU + lo * U : nullptr;
      if (gru0) {  // z, r; rh = r * h_prev (* rec[2]); then g_h += rh U_h
        float* rhr = keep_rh ? tsave : rhs + lo * U;
        const float* hm2 = rmask ? rmask + (2 * B + lo) * U : nullptr;
        for (int64_t i = 0; i < m; ++i) {
          if (mrow && !mrow[i * T + t])  // skipped step: zeros, as the dU GEMM reads every row
            std::memset(rhr + i * U, 0, sizeof(float) * U);
          else
            k.gru0_reset_fwd(g + i * G, rhr + i * U, h_prev + i * U, hm2 ? hm2 + i * U : nullptr,
                             U);
        }
        GemmParams rp;
        rp.beta = 1.0f;
        sgemm_prepacked(g + 2 * U, G, rhr, U, up[blocks.n - 1], m, rp);
      }
      for (int64_t i = 0; i < m; ++i) {
        float* hi_row = h_cur + i * U;
        if (mrow && !mrow[i * T + t]) {  // masked step: the state carries over
          std::memcpy(hi_row, h_prev + i * U, sizeof(float) * U);
          if (lstm)
            std::memcpy(cs + cur * BU + (lo + i) * U, cs + prev * BU + (lo + i) * U,
                        sizeof(float) * U);
        } else if (lstm) {
          k.lstm_fwd(g + i * G, cs + cur * BU + (lo + i) * U, hi_row,
                     tsave ? tsave + i * U : nullptr, cs + prev * BU + (lo + i) * U, U);
        } else if (gru) {
          k.gru_fwd(g + i * G, hi_row, tsave ? tsave + i * U : nullptr, rec + (lo + i) * G,
                    h_prev + i * U, U);
        } else if (gru0) {
          k.gru0_fwd(g + i * G, hi_row, h_prev + i * U, U);
        } else {
          k.simple_fwd(hi_row, g + i * G, U, relu);
        }
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
                  const RnnDropout& drop, const uint8_t* mask) {
  const int64_t B = s.batch, T = s.steps, F = s.features, U = s.units;
  const int64_t ng = rnn_gates(p.cell);
  const int64_t G = ng * U;
  const int64_t BU = B * U, BG = B * G;
  const bool gru = p.cell == RnnCell::gru, lstm = p.cell == RnnCell::lstm;
  const bool gru0 = p.cell == RnnCell::gru_reset_before;
  const bool relu = p.cell == RnnCell::simple_relu;
  const float* const rmask = drop.rec;

  // Scratch: Uᵀ packed once for the per-step GEMMs (rec_blocks), dz (T,B,G) [GRU reset_after:
  // input-side then recurrent-side], dxt (T,B,F); with recurrent dropout tmp (B,U) for one gate's
  // dZr_k U_kᵀ and hm (T,B,U) the masked states of one gate; with input dropout xm (T,B,F) the
  // masked inputs of one gate and dxk (T,B,F) one gate's dZ_k W_kᵀ; with a step mask carry (B,U)
  // the gradients masked steps pass through; GRU reset_before dq (B,U) = dZ_h U_hᵀ.
  const Isa isa = active_isa();
  const RecBlocks blocks = rec_blocks(p.cell, U, rmask != nullptr);
  const int nfirst = gru0 ? blocks.n - 1 : blocks.n;
  const size_t nz = static_cast<size_t>(T * BG) * (gru ? 2 : 1);
  const size_t npack = static_cast<size_t>(rec_pack_floats(isa, blocks, U, true));
  const size_t nx = static_cast<size_t>(T * B * F);
  const size_t ntmp = rmask ? static_cast<size_t>(BU) : 0;
  const size_t nhm = rmask ? static_cast<size_t>(T * BU) : 0;
  const size_t nxm = drop.in ? 2 * nx : 0;
  const size_t ncarry = mask ? static_cast<size_t>(BU) : 0;
  const size_t ndq = gru0 ? static_cast<size_t>(BU) : 0;
  float* const buf = thread_scratch(ScratchSlot::rnn)
                         .floats(npack + nz + nx + ntmp + nhm + nxm + ncarry + ndq);
  GemmPackedB ut[4];
  pack_recurrent(ut, buf, isa, u, U, G, blocks, true);
  float* const dz = buf + npack;
  float* const dzr = gru ? dz + T * BG : dz;  // the recurrent-side gradient
  float* const dxt = dz + nz;
  float* const tmp = dxt + nx;
  float* const hm = tmp + ntmp;
  float* const xm = hm + nhm;
  float* const dxk = xm + (drop.in ? nx : 0);
  float* const carry = xm + nxm;
  float* const dq = carry + ncarry;

  // dh0 / dc0 double as the running dh_t / dc_t buffers; they end as the initial-state gradients.
  float* const dh = dh0;
  std::memset(dh, 0, sizeof(float) * BU);
  if (lstm && dc_last) std::memcpy(dc0, dc_last, sizeof(float) * BU);
  else if (lstm) std::memset(dc0, 0, sizeof(float) * BU);

  const RnnRowKernels& k = row_kernels();
  const bool ok = batch_parallel(B, U, G, [&](int64_t lo, int64_t hi) {
    const int64_t m = hi - lo;
    const uint8_t* const mrow = mask ? mask + lo * T : nullptr;  // row lo+i, step t: mrow[i*T+t]
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
        if (mrow && !mrow[i * T + t]) {  // masked step: no gradient into it, dh (and dc) pass
          std::memset(dzt + i * G, 0, sizeof(float) * G);
          if (gru) std::memset(dzrt + i * G, 0, sizeof(float) * G);
          float* cr = carry + row * U;
          const float* dr = dht + i * U;
          if (dy)
            for (int64_t j = 0; j < U; ++j) cr[j] = dr[j] + dy[j];
          else
            std::memcpy(cr, dr, sizeof(float) * U);
        } else if (lstm) {
          k.lstm_bwd(dzt + i * G, dc0 + row * U, dht + i * U, dy, g + i * G,
                     cs + t * BU + row * U, aux + t * BU + row * U, U);
        } else if (gru) {
          k.gru_bwd(dzt + i * G, dzrt + i * G, dht + i * U, dy, g + i * G,
                    aux + t * BU + row * U, hs + t * BU + row * U, U);
        } else if (gru0) {
          k.gru0_bwd_out(dzt + i * G, dht + i * U, dy, g + i * G, hs + t * BU + row * U, U);
        } else {
          k.simple_bwd(dzt + i * G, dht + i * U, dy, hs + (t + 1) * BU + row * U, U, relu);
        }
      }
      if (gru0) {  // dq = dZ_h U_hᵀ -> dZ_r and dh += dq * r (* rec[2])
        float* dqr = dq + lo * U;
        GemmParams rp;
        sgemm_prepacked(dqr, U, dzt + 2 * U, G, ut[blocks.n - 1], m, rp);
        const float* hm2 = rmask ? rmask + (2 * B + lo) * U : nullptr;
        for (int64_t i = 0; i < m; ++i) {
          if (mrow && !mrow[i * T + t]) continue;  // its dZ row stays zero
          k.gru0_bwd_reset(dzt + i * G, dht + i * U, dqr + i * U, g + i * G,
                           hs + t * BU + (lo + i) * U, hm2 ? hm2 + i * U : nullptr, U);
        }
      }
      // dh_{t-1} = dZr_t Uᵀ   (GRU: added to the direct part already in dh)
      if (rmask) {  // dh_{t-1} = sum_k (dZr_k U_kᵀ) * rec[k], gates in order
        float* tr = tmp + lo * U;
        for (int q = 0; q < nfirst; ++q) {
          GemmParams rp;
          sgemm_prepacked(tr, U, dzrt + q * U, G, ut[q], m, rp);
          const float* mk = rmask + (q * B + lo) * U;
          if (q == 0 && !gru && !gru0)
            for (int64_t e = 0; e < m * U; ++e) dht[e] = tr[e] * mk[e];
          else
            for (int64_t e = 0; e < m * U; ++e) dht[e] += tr[e] * mk[e];
        }
      } else {
        GemmParams rp;
        rp.beta = gru || gru0 ? 1.0f : 0.0f;
        sgemm_prepacked(dht, U, dzrt, G, ut[0], m, rp);
      }
      if (mrow)  // the masked rows' dh_{t-1} is the gradient they passed through
        for (int64_t i = 0; i < m; ++i)
          if (!mrow[i * T + t])
            std::memcpy(dht + i * U, carry + (lo + i) * U, sizeof(float) * U);
    }
  });
  if (!ok) throw std::bad_alloc();

  // Weight gradients over all T*B rows at once (masked steps' dZ rows are zeros).
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
  // dU = Hprevᵀ dZr (hs[0:T] = h_{-1}..h_{T-2}); GRU reset_before: its U_h block from aux = r*h
  const int64_t nhprev = gru0 ? 2 : ng;  // gates whose recurrent term reads h_{t-1}
  if (rmask) {  // dU_k = (Hprev * rec[k])ᵀ dZr_k
    for (int64_t q = 0; q < nhprev; ++q) {
      mask_rows(hm, hs, rmask + q * BU, T, B, U);
      sgemm(du + q * U, G, hm, U, dzr + q * U, G, U, U, T * B, tp);
    }
  } else {
    sgemm(du, G, hs, U, dzr, G, U, nhprev * U, T * B, tp);
  }
  if (gru0) sgemm(du + 2 * U, G, aux, U, dz + 2 * U, G, U, U, T * B, tp);
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
