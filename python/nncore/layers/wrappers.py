"""Wrappers: TimeDistributed (one layer applied to every step) and Bidirectional (a recurrent
layer run forward and, as a copy with go_backwards flipped, backward; outputs merged).

A wrapper owns its inner layers' weight arrays (the same objects, so optimizers and set_weights
update them in place) and has its own gradient slots: its backward runs the inner backward on
fresh inner slots and adds the result into its own."""

from __future__ import annotations

import numpy as np

from .base import Layer, fmt_shape

_MERGE_MODES = ("concat", "sum", "ave", "mul", None)


class _Wrapper(Layer):
    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"{type(self).__name__}: layer must be a Layer instance, got "
                             f"{type(layer).__name__}")
        super().__init__(**kwargs)
        self.layer = layer

    def _adopt(self, inner):
        """Take inner's (built) weights as this layer's, after those already adopted."""
        self._weights.extend(inner._weights)
        self._weight_names.extend(f"{self.name}/{n}" for n in inner._weight_names)
        self._weight_trainable.extend(inner._weight_trainable)
        self._regularizers.extend(inner._regularizers)
        self._constraints.extend(inner._constraints)
        self.grads.extend(np.zeros_like(w) for w in inner._weights)
        self._fresh.extend(True for _ in inner._weights)

    def _inner_backward(self, inner, offset, ctx, dy, need_input_grad):
        inner._zero_grads()
        dx = inner.backward(ctx, dy, need_input_grad=need_input_grad)
        inner._finish_grads()
        for i, g in enumerate(inner.grads):
            if inner._weight_trainable[i]:
                self._add_grad(offset + i, g.copy())  # inner slots are reused next step
        return dx

    @classmethod
    def from_config(cls, config):
        from ..saving.serialization import deserialize_layer

        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize_layer(config["backward_layer"])
        return cls(**config)

    def get_config(self):
        from ..saving.serialization import serialize_layer

        cfg = super().get_config()
        cfg["layer"] = serialize_layer(self.layer)
        return cfg


class TimeDistributed(_Wrapper):
    """y[:, t] = layer(x[:, t]) for every step t: x (batch, steps, ...) is run as one batch of
    batch*steps samples. A mask on the input passes through (Keras's supports_masking)."""

    supports_masking = True

    def check_input_shape(self, s):
        if len(s) < 3:
            raise ValueError(f"layer {self.name!r} (TimeDistributed) needs input (batch, steps, "
                             f"...), got {fmt_shape(s)}")

    def build(self, input_shape):
        inner = (None,) + tuple(input_shape[2:])
        if self.layer.built:
            self.layer._check_compatible(inner)
        self.layer._maybe_build(inner)
        self._adopt(self.layer)

    def compute_output_shape(self, s):
        out = self.layer.compute_output_shape((None,) + tuple(s[2:]))
        if isinstance(out, list):
            raise ValueError(f"layer {self.name!r} (TimeDistributed): the inner layer must have "
                             "one output")
        return (s[0], s[1]) + tuple(out[1:])

    def forward(self, x, training=False, need_ctx=False):
        x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(f"layer {self.name!r} (TimeDistributed) expects (batch, steps, ...), "
                             f"got shape {x.shape}")
        n, t = x.shape[:2]
        y, ctx = self.layer.forward(x.reshape((n * t,) + x.shape[2:]), training=training,
                                    need_ctx=need_ctx)
        y = np.asarray(y)
        return y.reshape((n, t) + y.shape[1:]), ((ctx, n, t) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        ictx, n, t = ctx
        dy = np.asarray(dy, np.float32)
        dx = self._inner_backward(self.layer, 0, ictx, dy.reshape((n * t,) + dy.shape[2:]),
                                  need_input_grad)
        if not need_input_grad or dx is None:
            return None
        return dx.reshape((n, t) + dx.shape[1:])


class Bidirectional(_Wrapper):
    """Keras's Bidirectional: `layer` (SimpleRNN, LSTM, GRU) reads the sequence forward, a copy
    with go_backwards flipped (or `backward_layer`) reads it backward; with return_sequences the
    backward outputs are flipped back into time order, and (as Keras) both directions output
    zeros at masked steps. merge_mode 'concat' (last axis), 'sum',
    'ave', 'mul' or None (the two outputs as a list). Weights: forward layer's, then backward's."""

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        from .recurrent import _RNN

        super().__init__(layer, **kwargs)
        if not isinstance(layer, _RNN):
            raise ValueError(f"{self.name}: Bidirectional wraps SimpleRNN, LSTM or GRU, got "
                             f"{type(layer).__name__}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"{self.name}: merge_mode must be one of {list(_MERGE_MODES)}, got "
                             f"{merge_mode!r}")
        if layer.return_state:
            raise ValueError(f"{self.name}: return_state=True inside Bidirectional is not "
                             "supported")
        self.merge_mode = merge_mode
        if backward_layer is None:
            cfg = layer.get_config()
            cfg["name"] = "backward_" + layer.name.removeprefix("forward_")
            cfg["go_backwards"] = not layer.go_backwards
            backward_layer = type(layer).from_config(cfg)
        elif (not isinstance(backward_layer, _RNN)
              or backward_layer.return_sequences != layer.return_sequences
              or backward_layer.go_backwards == layer.go_backwards):
            raise ValueError(f"{self.name}: backward_layer must be a recurrent layer with the "
                             "same return_sequences and the opposite go_backwards")
        self.forward_layer, self.backward_layer = layer, backward_layer
        self.return_sequences = layer.return_sequences
        self._initial_weights = weights

    def check_input_shape(self, s):
        self.forward_layer.check_input_shape(s)

    def build(self, input_shape):
        for inner in (self.forward_layer, self.backward_layer):
            inner._maybe_build(tuple(input_shape))
            self._adopt(inner)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def compute_output_shape(self, s):
        f = self.forward_layer.compute_output_shape(s)
        if self.merge_mode is None:
            return [f, self.backward_layer.compute_output_shape(s)]
        if self.merge_mode == "concat":
            return tuple(f[:-1]) + (f[-1] + self.backward_layer.units,)
        return f

    _consumes_mask = True
    supports_masking = True

    def compute_mask(self, inputs, mask=None):
        out = mask if self.return_sequences else None
        return [out, out] if self.merge_mode is None else out

    def forward(self, x, training=False, need_ctx=False, mask=None):
        kw = {} if mask is None else {"mask": mask}
        yf, cf = self.forward_layer.forward(x, training=training, need_ctx=need_ctx, **kw)
        yb, cb = self.backward_layer.forward(x, training=training, need_ctx=need_ctx, **kw)
        keep = None
        if self.return_sequences:
            yb = np.ascontiguousarray(yb[:, ::-1])
            if mask is not None:  # as Keras's Bidirectional: masked steps output zeros
                keep = np.asarray(mask, np.float32)[..., None]
                yf, yb = yf * keep, yb * keep
        m = self.merge_mode
        if m == "concat":
            y = np.concatenate([yf, yb], axis=-1)
        elif m == "sum":
            y = yf + yb
        elif m == "ave":
            y = (yf + yb) * np.float32(0.5)
        elif m == "mul":
            y = yf * yb
        else:
            y = [yf, yb]
        ctx = (cf, cb, (yf, yb) if m == "mul" else None, keep) if need_ctx else None
        return y, ctx

    def backward(self, ctx, dy, need_input_grad=True):
        cf, cb, saved, keep = ctx
        m = self.merge_mode
        if m == "concat":
            dy = np.asarray(dy, np.float32)
            u = self.forward_layer.units
            dyf, dyb = dy[..., :u], dy[..., u:]
        elif m == "sum":
            dyf = dyb = dy
        elif m == "ave":
            dyf = dyb = np.asarray(dy, np.float32) * np.float32(0.5)
        elif m == "mul":
            dyf, dyb = dy * saved[1], dy * saved[0]
        else:
            dyf, dyb = dy
        if m is None:
            dyf = np.zeros_like(dyb) if dyf is None else dyf
            dyb = np.zeros_like(dyf) if dyb is None else dyb
        dyf = np.ascontiguousarray(dyf, np.float32)
        dyb = np.ascontiguousarray(dyb, np.float32)
        if keep is not None:  # the zeroed masked steps pass no gradient
            dyf, dyb = dyf * keep, dyb * keep
        if self.return_sequences:
            dyb = np.ascontiguousarray(dyb[:, ::-1])
        nf = len(self.forward_layer._weights)
        dxf = self._inner_backward(self.forward_layer, 0, cf, dyf, need_input_grad)
        dxb = self._inner_backward(self.backward_layer, nf, cb, dyb, need_input_grad)
        return dxf + dxb if need_input_grad else None

    def get_config(self):
        from ..saving.serialization import serialize_layer

        cfg = super().get_config()
        cfg["merge_mode"] = self.merge_mode
        cfg["backward_layer"] = serialize_layer(self.backward_layer)
        return cfg
