"""Recurrent layers over whole sequences (SimpleRNN, LSTM, GRU), forward and backward through time.

Keras parametrisation; inputs are (batch, timesteps, features), float32. With G = gates * units:

- SimpleRNN: h_t = act(x_t W + h_{t-1} U + b), act tanh or relu; W (F,U), U (U,U), b (U,).
- LSTM: [i f c o] = x_t W + h_{t-1} U + b (Keras gate order i, f, c, o); W (F,4U), U (U,4U),
  b (4U,); c_t = sigmoid(f)*c_{t-1} + sigmoid(i)*tanh(c); h_t = sigmoid(o)*tanh(c_t).
- GRU (Keras reset_after=True): [xz xr xh] = x_t W + b[0]; [rz rr rh] = h_{t-1} U + b[1];
  z = sigmoid(xz+rz), r = sigmoid(xr+rr), hh = tanh(xh + r*rh), h_t = z*h_{t-1} + (1-z)*hh;
  W (F,3U), U (U,3U), b (2,3U).
  reset_after=False: [xz xr xh] = x_t W + b; z = sigmoid(xz + h_{t-1} U_z),
  r = sigmoid(xr + h_{t-1} U_r), hh = tanh(xh + (r*h_{t-1}) U_h); b (3U,).

Each forward is one C++ call (the time loop runs in C++ with the GIL released) and returns
(out, cache): out is h_T (B,U), or every h_t (B,T,U) with return_sequences=True; cache is an opaque
object for the matching backward (None with training=False, which keeps nothing). The backward is
one C++ call too; it reads kernel and recurrent_kernel from the cache by reference, so update the
weights only after the backward. Missing initial states are zeros; bias=None means no bias (its
gradient is None).
Results are bitwise identical for any thread count.

Dropout inside the time loop (Keras 3's per-gate cell): in_masks (gates, B, F) and rec_masks
(gates, B, U), already scaled (kept entries 1/(1-rate)), fixed over the time steps; gate k projects
(x_t * in_masks[k]) W_k and adds (h_{t-1} * rec_masks[k]) U_k, while the state update uses the
unmasked h_{t-1} / c_{t-1}. The cache keeps the masks for the backward.

Keras's step mask: mask (B,T) bool (Embedding(mask_zero=True), Masking). At a step whose entry is
False the row's state is carried over (h_t = h_{t-1}, LSTM c_t = c_{t-1}), so with
return_sequences the step's output repeats the carried state (h0 for leading masked steps), and
the step gets no gradient: dh (and dc) pass through it to t-1, and it adds nothing to dx, dW, dU
or db.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from ._util import as_f32

__all__ = ["simple_rnn", "simple_rnn_backward", "lstm", "lstm_backward", "gru", "gru_backward"]

_CELLS = _core.rnn_cell_codes  # defined once, in the C++ enum
_SIMPLE_TANH, _SIMPLE_RELU, _LSTM, _GRU, _GRU0 = (
    _CELLS["simple_tanh"], _CELLS["simple_relu"], _CELLS["lstm"], _CELLS["gru"],
    _CELLS["gru_reset_before"])
_GATES = {_SIMPLE_TANH: 1, _SIMPLE_RELU: 1, _LSTM: 4, _GRU: 3, _GRU0: 3}


# Workspace reuse. A forward's workspace (a few MB for typical layers) is written once and read
# once; taking fresh pages from the OS for it every call cost more than the kernel itself at
# MNIST-sized shapes. Workspaces go back to this pool when their cache is garbage-collected (or
# right after an inference call) and are handed to the next call with the same shapes. Bounded: at
# most _POOL_PER_KEY free workspaces of at most _POOL_MAX_BYTES each for each of the _POOL_KEYS
# most recent shapes (big workspaces are not kept: there the kernel time dominates anyway).
_POOL_KEYS, _POOL_PER_KEY, _POOL_MAX_BYTES = 4, 2, 16 << 20
_pool: dict = {}


def _pool_take(key):
    free = _pool.get(key)
    if free:
        try:
            return free.pop()
        except IndexError:  # another thread took it first
            return None
    return None


def _pool_give(key, workspace) -> None:
    if sum(a.nbytes for a in workspace if a is not None) > _POOL_MAX_BYTES:
        return
    free = _pool.get(key)
    if free is None:
        if len(_pool) >= _POOL_KEYS:
            try:
                del _pool[next(iter(_pool))]
            except (KeyError, RuntimeError, StopIteration):
                pass
        free = _pool.setdefault(key, [])
    if len(free) < _POOL_PER_KEY:
        free.append(workspace)


class RnnCache:
    """What a recurrent backward needs from its forward (time-major arrays). Treat as opaque."""

    __slots__ = ("cell", "name", "kernel", "recurrent_kernel", "has_bias", "return_sequences",
                 "out_shape", "key", "workspace", "in_masks", "rec_masks", "mask")

    def __repr__(self) -> str:
        return f"RnnCache({self.name}, out_shape={self.out_shape})"

    def __del__(self):
        try:
            _pool_give(self.key, self.workspace)
        except Exception:  # interpreter shutdown: module globals may be gone
            pass


def _check_masks(cell, name, in_masks, rec_masks, batch, features, units):
    out = []
    for mname, m, width in (("in_masks", in_masks, features), ("rec_masks", rec_masks, units)):
        if m is not None:
            m = as_f32(m, mname, ndim=3, where=name)
            want = (_GATES[cell], batch, width)
            if m.shape != want:
                raise ValueError(f"{name}: {mname} must have shape (gates, batch, "
                                 f"{'features' if width == features else 'units'}) = {want}, "
                                 f"got {m.shape}")
        out.append(m)
    return out


def _check_step_mask(name, mask, batch, steps):
    """The step mask as a C-contiguous bool (B,T) array, or None when absent or all True."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        if m.dtype.kind not in "iu":
            raise TypeError(f"{name}: mask must be a boolean (batch, timesteps) array, got dtype "
                            f"{m.dtype}")
        m = m != 0
    if m.shape != (batch, steps):
        raise ValueError(f"{name}: mask must have shape (batch, timesteps) = {(batch, steps)}, "
                         f"got {m.shape}")
    if m.all():
        return None
    return np.ascontiguousarray(m)


def _forward(cell, name, x, kernel, recurrent_kernel, bias, h0, c0, return_sequences, training,
             want_c=False, in_masks=None, rec_masks=None, mask=None):
    x = as_f32(x, "x", ndim=3, where=name)
    kernel = as_f32(kernel, "kernel", ndim=2, where=name)
    recurrent_kernel = as_f32(recurrent_kernel, "recurrent_kernel", ndim=2, where=name)
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    g = _GATES[cell] * units
    if min(steps, features) < 1:
        raise ValueError(f"{name}: x must be (batch, timesteps, features) with timesteps and "
                         f"features >= 1, got shape {x.shape}")
    if units < 1 or recurrent_kernel.shape != (units, g):
        raise ValueError(f"{name}: recurrent_kernel must have shape (units, {_GATES[cell]}*units)"
                         f", got {recurrent_kernel.shape}")
    if kernel.shape != (features, g):
        raise ValueError(f"{name}: kernel must have shape (features, {_GATES[cell]}*units) = "
                         f"{(features, g)} for x {x.shape} and recurrent_kernel "
                         f"{recurrent_kernel.shape}, got {kernel.shape}")
    if bias is not None:
        bias = as_f32(bias, "bias", where=name)
        want = (2, g) if cell == _GRU else (g,)
        if bias.shape != want:
            raise ValueError(f"{name}: bias must have shape {want}, got {bias.shape}")
    states = []
    for sname, s in (("h0", h0), ("c0", c0)):
        if s is not None:
            s = as_f32(s, sname, ndim=2, where=name)
            if s.shape != (batch, units):
                raise ValueError(f"{name}: {sname} must have shape (batch, units) = "
                                 f"{(batch, units)}, got {s.shape}")
        states.append(s)
    in_masks, rec_masks = _check_masks(cell, name, in_masks, rec_masks, batch, features, units)
    mask = _check_step_mask(name, mask, batch, steps)
    training = bool(training)
    key = (cell, batch, steps, features, units, training)
    out, workspace = _core.rnn_forward(
        cell, x, kernel, recurrent_kernel, bias, states[0], states[1], bool(return_sequences),
        training, _pool_take(key), in_masks, rec_masks, mask)
    if want_c:  # final cell state: cs[T] when training, the ping-pong slot T % 2 otherwise
        cs = workspace[3]
        c_last = cs[steps if training else steps % 2].copy()
    if not training:
        _pool_give(key, workspace)
        return (out, c_last, None) if want_c else (out, None)
    cache = RnnCache()
    cache.cell, cache.name = cell, name
    cache.kernel, cache.recurrent_kernel = kernel, recurrent_kernel
    cache.has_bias, cache.return_sequences = bias is not None, bool(return_sequences)
    cache.out_shape = out.shape
    cache.key, cache.workspace = key, workspace
    cache.in_masks, cache.rec_masks, cache.mask = in_masks, rec_masks, mask
    return (out, c_last, cache) if want_c else (out, cache)


def _backward(dout, cache, name, cells, dc_last=None):
    if not isinstance(cache, RnnCache) or cache.cell not in cells:
        raise TypeError(f"{name}_backward: cache must be the cache returned by {name}(..., "
                        f"training=True), got {type(cache).__name__}")
    dout = as_f32(dout, "dout", where=f"{name}_backward")
    if dout.shape != cache.out_shape:
        raise ValueError(f"{name}_backward: dout must have the output's shape {cache.out_shape}, "
                         f"got {dout.shape}")
    if dc_last is not None:
        dc_last = as_f32(dc_last, "dc_last", where=f"{name}_backward")
        if dc_last.shape != cache.workspace[2].shape[1:]:
            raise ValueError(f"{name}_backward: dc_last must have shape (batch, units) = "
                             f"{cache.workspace[2].shape[1:]}, got {dc_last.shape}")
    xt, gates, hs, cs, aux = cache.workspace
    return _core.rnn_backward(cache.cell, dout, xt, cache.kernel, cache.recurrent_kernel, gates, hs,
                              cs, aux, cache.return_sequences, cache.has_bias, dc_last,
                              cache.in_masks, cache.rec_masks, cache.mask)


def simple_rnn(x, kernel, recurrent_kernel, bias, h0=None, *, activation="tanh",
               return_sequences=False, training=True, in_masks=None, rec_masks=None, mask=None):
    """SimpleRNN: h_t = act(x_t W + h_{t-1} U + b), act 'tanh' (default) or 'relu'.

    x (B,T,F), kernel W (F,U), recurrent_kernel U (U,U), bias (U,) or None, h0 (B,U) or None,
    mask (B,T) bool or None (Keras's step mask).
    Returns (out, cache): out (B,U) = h_T, or (B,T,U) with return_sequences=True.
    """
    if activation not in ("tanh", "relu"):
        raise ValueError(f"simple_rnn: activation must be 'tanh' or 'relu', got {activation!r}")
    cell = _SIMPLE_TANH if activation == "tanh" else _SIMPLE_RELU
    return _forward(cell, "simple_rnn", x, kernel, recurrent_kernel, bias, h0, None,
                    return_sequences, training, in_masks=in_masks, rec_masks=rec_masks, mask=mask)


def simple_rnn_backward(dout, cache):
    """Gradients of simple_rnn given dout (same shape as out) -> (dx, dh0, dkernel,
    drecurrent_kernel, dbias); dbias is None without bias, dh0 is the initial state's gradient."""
    dx, dh0, _, dw, du, db = _backward(dout, cache, "simple_rnn", (_SIMPLE_TANH, _SIMPLE_RELU))
    return dx, dh0, dw, du, db


def lstm(x, kernel, recurrent_kernel, bias, h0=None, c0=None, *, return_sequences=False,
         training=True, return_cell_state=False, in_masks=None, rec_masks=None, mask=None):
    """LSTM (Keras gate order i, f, c, o; sigmoid gates, tanh activation).

    x (B,T,F), kernel (F,4U), recurrent_kernel (U,4U), bias (4U,) or None, h0/c0 (B,U) or None,
    mask (B,T) bool or None (Keras's step mask).
    Returns (out, cache): out (B,U) = h_T, or (B,T,U) with return_sequences=True;
    with return_cell_state=True (out, c_T, cache), c_T (B,U) the final cell state.
    """
    return _forward(_LSTM, "lstm", x, kernel, recurrent_kernel, bias, h0, c0, return_sequences,
                    training, return_cell_state, in_masks, rec_masks, mask)


def lstm_backward(dout, cache, dc_last=None):
    """Gradients of lstm -> (dx, dh0, dc0, dkernel, drecurrent_kernel, dbias); dc_last (B,U) is
    the gradient of the final cell state c_T (or None: zeros)."""
    return tuple(_backward(dout, cache, "lstm", (_LSTM,), dc_last))


def gru(x, kernel, recurrent_kernel, bias, h0=None, *, return_sequences=False, training=True,
        in_masks=None, rec_masks=None, mask=None, reset_after=True):
    """GRU, Keras's gate order z, r, h. reset_after=True: bias (2,3U) (rows: input, recurrent),
    hh = tanh(x W_h + b0_h + r * (h U_h + b1_h)); reset_after=False: bias (3U,),
    hh = tanh(x W_h + b_h + (r * h) U_h).

    x (B,T,F), kernel (F,3U), recurrent_kernel (U,3U), bias or None, h0 (B,U) or None,
    mask (B,T) bool or None (Keras's step mask).
    Returns (out, cache): out (B,U) = h_T, or (B,T,U) with return_sequences=True.
    """
    cell = _GRU if reset_after else _GRU0
    return _forward(cell, "gru", x, kernel, recurrent_kernel, bias, h0, None, return_sequences,
                    training, in_masks=in_masks, rec_masks=rec_masks, mask=mask)


def gru_backward(dout, cache):
    """Gradients of gru -> (dx, dh0, dkernel, drecurrent_kernel, dbias); dbias is shaped like
    bias ((2,3U) with reset_after=True, else (3U,))."""
    dx, dh0, _, dw, du, db = _backward(dout, cache, "gru", (_GRU, _GRU0))
    return dx, dh0, dw, du, db
