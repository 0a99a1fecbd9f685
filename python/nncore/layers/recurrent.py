"""SimpleRNN, LSTM (gates i, f, c, o) and GRU (z, r, h; reset_after=True), Keras weight layouts.

The time loop runs in C++ (nncore.ops.simple_rnn / lstm / gru and their backward).
"""

from __future__ import annotations

import numpy as np

from .. import initializers, regularizers
from .. import kernels as _ops
from . import masked_rnn as _masked
from .base import Layer, as_f32, check_initializer, check_regularizer, fmt_shape, positive_int


class _RNN(Layer):
    _gates = 1
    _class = ""

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, **kwargs):
        super().__init__(**kwargs)
        w = self.name
        self.units = positive_int(units, "units", w)
        if activation not in ("tanh", "relu") or (self._gates > 1 and activation != "tanh"):
            raise ValueError(f"{w}: activation {activation!r} is not supported here")
        self.activation = activation
        if stateful:
            raise ValueError(f"{w}: stateful=True is not supported")
        if return_state and self._gates == 4:
            raise ValueError(f"{w}: return_state=True is not supported for LSTM yet (its final "
                             "cell state is not exposed by the kernel)")
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        if dropout or recurrent_dropout:
            raise ValueError(f"{w}: dropout/recurrent_dropout are not supported; "
                             "use a Dropout layer")
        self.use_bias = bool(use_bias)
        self.return_sequences = bool(return_sequences)
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.recurrent_initializer = check_initializer(recurrent_initializer)
        self.bias_initializer = check_initializer(bias_initializer)
        self.kernel_regularizer = check_regularizer(kernel_regularizer)
        self.recurrent_regularizer = check_regularizer(recurrent_regularizer)
        self.bias_regularizer = check_regularizer(bias_regularizer)

    def check_input_shape(self, s):
        if len(s) != 3 or s[2] is None or s[1] is None:
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
        return [out, (s[0], self.units)] if self.return_state else out

    def _on_built(self):
        self.kernel, self.recurrent_kernel = self.weights[0], self.weights[1]
        self.bias = self.weights[2] if self.use_bias else None

    def _run(self, x, training):
        raise NotImplementedError

    _consumes_mask = True
    supports_masking = True
    _cell = ""

    def compute_mask(self, inputs, mask=None):
        out = mask if self.return_sequences else None
        return [out, None] if self.return_state else out

    def forward(self, x, training=False, need_ctx=False, mask=None):
        x = as_f32(x)
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != x.shape[:2]:
                raise ValueError(f"layer {self.name!r} ({type(self).__name__}): mask has shape "
                                 f"{mask.shape}, expected (batch, timesteps) = {x.shape[:2]}")
            if mask.all():
                mask = None
        if self.go_backwards:  # the sequence is read from its end; outputs stay in that order
            x = np.ascontiguousarray(x[:, ::-1])
            mask = None if mask is None else mask[:, ::-1]
        if mask is not None:
            hs, cache = _masked.forward(self._cell, x, mask, self.kernel, self.recurrent_kernel,
                                        self.bias, self.activation)
            out = hs if self.return_sequences else np.ascontiguousarray(hs[:, -1])
            cache = ("masked", cache, hs.shape) if need_ctx else None
        else:
            out, cache = self._run(x, need_ctx)
        if self.return_state:  # SimpleRNN/GRU: the state is the last output
            return [out, np.ascontiguousarray(out[:, -1]) if self.return_sequences else out], cache
        return out, cache

    def backward(self, ctx, dy, need_input_grad=True):
        masked = isinstance(ctx, tuple) and ctx[0] == "masked"
        if self.return_state:
            dout, dh = dy
            if dout is None:
                shape = ctx[2] if masked else ctx.out_shape
                if masked and not self.return_sequences:
                    shape = (shape[0], shape[2])
                dout = np.zeros(shape, np.float32)
            else:
                dout = np.array(dout, np.float32)
            if dh is not None:
                if self.return_sequences:
                    dout[:, -1] += dh
                else:
                    dout += dh
            dy = dout
        if masked:
            _, cache, hs_shape = ctx
            dy = as_f32(dy)
            if self.return_sequences:
                dhs = dy
            else:
                dhs = np.zeros(hs_shape, np.float32)
                dhs[:, -1] = dy
            dx, dk, drk, db = _masked.backward(cache, dhs, self.kernel, self.recurrent_kernel,
                                               self.use_bias)
        else:
            res = self._backward(dy, ctx)
            dx, dk, drk, db = res[0], res[-3], res[-2], res[-1]
        self._add_grad(0, dk)
        self._add_grad(1, drk)
        if self.use_bias:
            self._add_grad(2, db)
        if not need_input_grad:
            return None
        return np.ascontiguousarray(dx[:, ::-1]) if self.go_backwards else dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, use_bias=self.use_bias,
                   return_sequences=self.return_sequences, return_state=self.return_state,
                   go_backwards=self.go_backwards,
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   recurrent_initializer=initializers.serialize(self.recurrent_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   recurrent_regularizer=regularizers.serialize(self.recurrent_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        if self._gates == 1:
            cfg["activation"] = self.activation
        return cfg


class SimpleRNN(_RNN):
    """h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)."""

    _cell = "simple"

    def _run(self, x, training):
        return _ops.simple_rnn(x, self.kernel, self.recurrent_kernel, self.bias,
                               activation=self.activation, return_sequences=self.return_sequences,
                               training=training)

    def _backward(self, dy, cache):
        return _ops.simple_rnn_backward(dy, cache)


class LSTM(_RNN):
    """Keras LSTM, gates i, f, c, o; unit_forget_bias puts 1 in the forget-gate bias."""

    _gates = 4
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

    def _run(self, x, training):
        return _ops.lstm(x, self.kernel, self.recurrent_kernel, self.bias,
                         return_sequences=self.return_sequences, training=training)

    def _backward(self, dy, cache):
        return _ops.lstm_backward(dy, cache)

    def get_config(self):
        cfg = super().get_config()
        cfg["unit_forget_bias"] = self.unit_forget_bias
        return cfg


class GRU(_RNN):
    """Keras GRU (reset_after=True), gates z, r, h; bias (2, 3*units) (input, recurrent)."""

    _gates = 3
    _cell = "gru"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 reset_after=True, **kwargs):
        if recurrent_activation != "sigmoid" or not reset_after:
            raise ValueError("GRU: only recurrent_activation='sigmoid', reset_after=True")
        super().__init__(units, activation=activation, **kwargs)

    def _bias_shape(self):
        return (2, 3 * self.units)

    def _run(self, x, training):
        return _ops.gru(x, self.kernel, self.recurrent_kernel, self.bias,
                        return_sequences=self.return_sequences, training=training)

    def _backward(self, dy, cache):
        return _ops.gru_backward(dy, cache)
