// Recurrent kernels (SimpleRNN, LSTM, GRU) over a whole sequence, forward and backward through
// time, in Keras's parametrisation (formulas in rnn.cpp).
#pragma once

#include <cstdint>

namespace nncore {

// gru: Keras reset_after=True (bias (2,G)); gru_reset_before: reset_after=False (bias (G,)).
enum class RnnCell : int { simple_tanh = 0, simple_relu = 1, lstm = 2, gru = 3, gru_reset_before = 4 };

inline bool rnn_is_gru(RnnCell cell) {
  return cell == RnnCell::gru || cell == RnnCell::gru_reset_before;
}

// Gate blocks per cell: G = gates * units columns in kernel / recurrent_kernel.
inline int64_t rnn_gates(RnnCell cell) {
  return cell == RnnCell::lstm ? 4 : rnn_is_gru(cell) ? 3 : 1;
}

struct RnnShape {
  int64_t batch, steps, features, units;  // B, T, F, U
};

struct RnnParams {
  RnnCell cell = RnnCell::simple_tanh;
  bool return_sequences = false;
  bool training = true;  // false: state slots are reused (2 of them), nothing for backward is kept
};

// Keras 3's dropout inside the time loop (its per-gate cell, `implementation=1`), masks fixed over
// the time steps of a call, already scaled (kept entries 1/(1-rate), dropped 0); g = gates:
//   in  (g,B,F) or null: gate k projects (x_t * in[k]) W_k
//   rec (g,B,U) or null: gate k's recurrent term is (h_{t-1} * rec[k]) U_k (GRU: + b1_k; GRU
//                        reset_before's candidate (r * h_{t-1} * rec[2]) U_h); the state update
//                        (LSTM c, GRU z*h_{t-1}) uses the unmasked h_{t-1}.
// The backward takes the same masks: dW_k, dU_k read the masked x / h, dx and dh_{t-1} are
// multiplied by them.
struct RnnDropout {
  const float* in = nullptr;
  const float* rec = nullptr;
};

// Keras's step mask: mask (B,T) row-major, or null (every step runs). At a step whose entry is 0
// the row's state is carried over unchanged (h_t = h_{t-1}, LSTM c_t = c_{t-1}; the step's output
// with return_sequences is that carried state), and in the backward the step passes dh (and dc)
// through to t-1 unchanged and contributes nothing to dW, dU, db or dx.

// Workspace, all time-major so each step is one contiguous (B, .) block:
//   xt    (T,B,F)   x transposed to time-major
//   gates (T,B,G)   x W + b, then in place the activated gates (LSTM i,f,c,o; GRU z,r,hh)
//   hs    (S,B,U)   hs[0] = h0, hs[t+1] = h_t          S = T+1 when training, else 2 (ping-pong)
//   cs    (S,B,U)   LSTM cell states, same indexing     (null for other cells)
//   aux   (T,B,U)   training only: LSTM tanh(c_t), GRU h_{t-1} U_h + b1_h, GRU reset_before
//                   r_t * h_{t-1} (recurrent dropout: r_t * h_{t-1} * rec[2]) (null otherwise)
// Rows of masked steps in gates / cs / aux are not meaningful (the backward does not read them;
// aux rows of reset_before are zeros there, as its dU GEMM reads them).
// Rows the caller does not provide (h0, c0, bias) are zeros.

// x (B,T,F), w (F,G), u (U,G), b (G,) [GRU reset_after: (2,G)] or null, h0/c0 (B,U) or null
//   -> out (B,T,U) if return_sequences else (B,U)
// May throw std::bad_alloc (scratch) before any work starts; nothing else.
void rnn_forward(float* out, float* xt, float* gates, float* hs, float* cs, float* aux,
                 const float* x, const float* w, const float* u, const float* b, const float* h0,
                 const float* c0, const RnnShape& s, const RnnParams& p,
                 const RnnDropout& drop = RnnDropout(), const uint8_t* mask = nullptr);

// dout like out, dc_last (B,U) the gradient of the final LSTM cell state c_T (LSTM return_state)
// or null (zeros; always null for other cells), the forward's workspace (training)
//   -> dx (B,T,F), dh0 (B,U), dc0 (B,U) [LSTM, else null], dw (F,G), du (U,G), db like b or null
// May throw std::bad_alloc (scratch) before any work starts; nothing else.
void rnn_backward(float* dx, float* dh0, float* dc0, float* dw, float* du, float* db,
                  const float* dout, const float* dc_last, const float* xt, const float* w, const float* u,
                  const float* gates, const float* hs, const float* cs, const float* aux,
                  const RnnShape& s, const RnnParams& p,
                  const RnnDropout& drop = RnnDropout(), const uint8_t* mask = nullptr);

}  // namespace nncore
