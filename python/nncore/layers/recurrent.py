"""SimpleRNN, LSTM (gates i, f, c, o) and GRU (z, r, h; reset_after True or False), Keras weight
layouts.

The time loop runs in C++ (nncore.kernels.simple_rnn / lstm / gru and their backward), masks
(Embedding(mask_zero=True), Masking), dropout and GRU reset_after=False included. The NumPy loop of
masked_rnn.py is its reference twin; a layer takes it only when `_fast` is cleared (the tests).
"""

from __future__ import annotations

import numpy as np

from .. import constraints, initializers, regularizers
from .. import kernels as _ops
from ..utils.random import get_rng
from . import masked_rnn as _masked
from .base import (Layer, as_f32, check_constraint, check_initializer, check_regularizer,
                   fmt_shape, positive_int)


class _RNN(Layer):
    _gates = 1
    _n_states = 1  # states returned with return_state (LSTM: h and c)
    _fast = True  # run the C++ time loop (False: the NumPy reference loop, for the tests)
    _reset_after = True
    _class = ""

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, seed=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        w = self.name
        self.units = positive_int(units, "units", w)
        if activation not in ("tanh", "relu") or (self._gates > 1 and activation != "tanh"):
            raise ValueError(f"{w}: activation {activation!r} is not supported here")
        self.activation = activation
        if stateful:
            raise ValueError(f"{w}: stateful=True is not supported")
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        for nm, r in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if isinstance(r, (bool, np.bool_)) or not isinstance(
                    r, (int, float, np.integer, np.floating)) or not np.isfinite(r):
                raise ValueError(f"{w}: {nm} must be a number, got {r!r}")
        # Keras clamps the rates to [0, 1] and applies them only strictly inside (0, 1).
        self.dropout = min(1.0, max(0.0, float(dropout)))
        self.recurrent_dropout = min(1.0, max(0.0, float(recurrent_dropout)))
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(
                seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{w}: seed must be an int >= 0 or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else np.random.default_rng(self.seed)
        self.use_bias = bool(use_bias)
        self.return_sequences = bool(return_sequences)
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.recurrent_initializer = check_initializer(recurrent_initializer)
        self.bias_initializer = check_initializer(bias_initializer)
        self.kernel_regularizer = check_regularizer(kernel_regularizer)
        self.recurrent_regularizer = check_regularizer(recurrent_regularizer)
        self.bias_regularizer = check_regularizer(bias_regularizer)
        where = f"layer {w!r} ({type(self).__name__})"
        self.kernel_constraint = check_constraint(kernel_constraint, where, "kernel_constraint")
        self.recurrent_constraint = check_constraint(recurrent_constraint, where,
                                                     "recurrent_constraint")
        self.bias_constraint = check_constraint(bias_constraint, where, "bias_constraint")

    def check_input_shape(self, s):
        if len(s) != 3 or s[2] is None:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) needs input (batch, "
                             f"timesteps, features), got {fmt_shape(s)}")

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def weight_specs(self, s):
        g = self._gates * self.units
        specs = [("kernel", (s[2], g), self.kernel_initializer, self.kernel_regularizer),
                 ("recurrent_kernel", (self.units, g), self.recurrent_initializer,
                  self.recurrent_regularizer)]
        if self.use_bias:
            specs.append(("bias", self._bias_shape(), self._bias_init(), self.bias_regularizer))
        return specs

    def compute_output_shape(self, s):
        out = (s[0], s[1], self.units) if self.return_sequences else (s[0], self.units)
        return [out] + [(s[0], self.units)] * self._n_states if self.return_state else out

    def _on_built(self):
        self.kernel, self.recurrent_kernel = self.weights[0], self.weights[1]
        self.bias = self.weights[2] if self.use_bias else None

    def _run(self, x, training, in_masks=None, rec_masks=None, mask=None):
        raise NotImplementedError

    _consumes_mask = True
    supports_masking = True
    _cell = ""

    def compute_mask(self, inputs, mask=None):
        out = mask if self.return_sequences else None
        return [out] + [None] * self._n_states if self.return_state else out

    def _drop_masks(self, rate, shape):
        """Keras's dropout masks for one call: (gates, *shape), kept entries 1/(1-rate)."""
        rng = self._rng if self._rng is not None else get_rng()
        keep = rng.random(shape, dtype=np.float32) >= np.float32(rate)
        return keep.astype(np.float32) * np.float32(1.0 / (1.0 - rate))

    def forward(self, x, training=False, need_ctx=False, mask=None):
        x = as_f32(x)
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != x.shape[:2]:
                raise ValueError(f"layer {self.name!r} ({type(self).__name__}): mask has shape "
                                 f"{mask.shape}, expected (batch, timesteps) = {x.shape[:2]}")
            if mask.all():
                mask = None
        b, g = x.shape[0], self._gates
        drop = bool(training) and 0.0 < self.dropout < 1.0
        rdrop = bool(training) and 0.0 < self.recurrent_dropout < 1.0
        in_masks = rec_masks = din = None
        # As Keras 3: masks are drawn once per call (fixed over the time steps); with recurrent
        # dropout its cell has one mask per gate for the inputs too, otherwise one input mask.
        if drop and rdrop:
            in_masks = self._drop_masks(self.dropout, (g, b, x.shape[2]))
        elif drop:
            din = self._drop_masks(self.dropout, (b, x.shape[2]))
            x = x * din[:, None, :]
        if rdrop:
            rec_masks = self._drop_masks(self.recurrent_dropout, (g, b, self.units))
        if self.go_backwards:  # the sequence is read from its end; outputs stay in that order
            x = np.ascontiguousarray(x[:, ::-1])
            mask = None if mask is None else mask[:, ::-1]
        if not self._fast:
            hs, c_last, cache = _masked.forward(
                self._cell, x, mask, self.kernel, self.recurrent_kernel, self.bias,
                self.activation, in_masks, rec_masks, self._reset_after)
            out = hs if self.return_sequences else np.ascontiguousarray(hs[:, -1])
            kind = "loop"
        else:
            out, c_last, cache = self._run(x, need_ctx, in_masks, rec_masks, mask)
            kind = "fast"
        ctx = (kind, cache, out.shape, din) if need_ctx else None
        if self.return_state:  # the h state is the last output; LSTM adds its cell state
            h = np.ascontiguousarray(out[:, -1]) if self.return_sequences else out
            return [out, h] + ([c_last] if self._n_states == 2 else []), ctx
        return out, ctx

    def backward(self, ctx, dy, need_input_grad=True):
        kind, cache, out_shape, din = ctx
        dc = None
        if self.return_state:
            dout, dh = dy[0], dy[1]
            if self._n_states == 2 and dy[2] is not None:
                dc = as_f32(dy[2])
            dout = np.zeros(out_shape, np.float32) if dout is None else np.array(dout, np.float32)
            if dh is not None:
                if self.return_sequences:
                    dout[:, -1] += dh
                else:
                    dout += dh
            dy = dout
        if kind == "loop":
            dy = as_f32(dy)
            if self.return_sequences:
                dhs = dy
            else:
                dhs = np.zeros((out_shape[0], cache[1].shape[1], out_shape[1]), np.float32)
                dhs[:, -1] = dy
            dx, dk, drk, db = _masked.backward(cache, dhs, self.kernel, self.recurrent_kernel,
                                               self.use_bias, dc)
        else:
            res = self._backward(dy, cache, dc)
            dx, dk, drk, db = res[0], res[-3], res[-2], res[-1]
        self._add_grad(0, dk)
        self._add_grad(1, drk)
        if self.use_bias:
            self._add_grad(2, db)
        if not need_input_grad:
            return None
        if self.go_backwards:
            dx = np.ascontiguousarray(dx[:, ::-1])
        return dx if din is None else dx * din[:, None, :]

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, use_bias=self.use_bias,
                   return_sequences=self.return_sequences, return_state=self.return_state,
                   go_backwards=self.go_backwards, dropout=self.dropout,
                   recurrent_dropout=self.recurrent_dropout, seed=self.seed,
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   recurrent_initializer=initializers.serialize(self.recurrent_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   recurrent_regularizer=regularizers.serialize(self.recurrent_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer),
                   kernel_constraint=constraints.serialize(self.kernel_constraint),
                   recurrent_constraint=constraints.serialize(self.recurrent_constraint),
                   bias_constraint=constraints.serialize(self.bias_constraint))
        if self._gates == 1:
            cfg["activation"] = self.activation
        return cfg


class SimpleRNN(_RNN):
    """h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)."""

    _cell = "simple"

    def _run(self, x, training, in_masks=None, rec_masks=None, mask=None):
        out, cache = _ops.simple_rnn(x, self.kernel, self.recurrent_kernel, self.bias,
                                     activation=self.activation,
                                     return_sequences=self.return_sequences, training=training,
                                     in_masks=in_masks, rec_masks=rec_masks, mask=mask)
        return out, None, cache

    def _backward(self, dy, cache, dc):
        return _ops.simple_rnn_backward(dy, cache)


class LSTM(_RNN):
    """Keras LSTM, gates i, f, c, o; unit_forget_bias puts 1 in the forget-gate bias."""

    _gates = 4
    _n_states = 2
    _cell = "lstm"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 unit_forget_bias=True, **kwargs):
        if recurrent_activation != "sigmoid":
            raise ValueError("LSTM: only recurrent_activation='sigmoid' is supported")
        super().__init__(units, activation=activation, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        u, init = self.units, self.bias_initializer

        def forget_one(shape):
            b = np.asarray(init(shape), np.float32)
            b[u:2 * u] = 1.0
            return b

        return forget_one

    def _run(self, x, training, in_masks=None, rec_masks=None, mask=None):
        return _ops.lstm(x, self.kernel, self.recurrent_kernel, self.bias,
                         return_sequences=self.return_sequences, training=training,
                         return_cell_state=True, in_masks=in_masks, rec_masks=rec_masks,
                         mask=mask)

    def _backward(self, dy, cache, dc):
        return _ops.lstm_backward(dy, cache, dc_last=dc)

    def get_config(self):
        cfg = super().get_config()
        cfg["unit_forget_bias"] = self.unit_forget_bias
        return cfg


class GRU(_RNN):
    """Keras GRU, gates z, r, h. reset_after=True: bias (2, 3*units) (input, recurrent),
    hh = tanh(x W_h + b0_h + r * (h U_h + b1_h)); reset_after=False: bias (3*units,),
    hh = tanh(x W_h + b_h + (r * h) U_h)."""

    _gates = 3
    _cell = "gru"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 reset_after=True, **kwargs):
        if recurrent_activation != "sigmoid":
            raise ValueError("GRU: only recurrent_activation='sigmoid' is supported")
        super().__init__(units, activation=activation, **kwargs)
        self._reset_after = bool(reset_after)

    @property
    def reset_after(self):
        return self._reset_after

    def _bias_shape(self):
        return (2, 3 * self.units) if self._reset_after else (3 * self.units,)

    def _run(self, x, training, in_masks=None, rec_masks=None, mask=None):
        out, cache = _ops.gru(x, self.kernel, self.recurrent_kernel, self.bias,
                              return_sequences=self.return_sequences, training=training,
                              in_masks=in_masks, rec_masks=rec_masks, mask=mask,
                              reset_after=self._reset_after)
        return out, None, cache

    def _backward(self, dy, cache, dc):
        return _ops.gru_backward(dy, cache)

    def get_config(self):
        cfg = super().get_config()
        cfg["reset_after"] = self._reset_after
        return cfg
