"""Activation layers: ReLU, LeakyReLU, PReLU, ELU, Softmax (Keras 3 definitions)."""

from __future__ import annotations

import numpy as np

from .. import activations, initializers, regularizers
from .base import Layer, as_f32, check_initializer, check_regularizer, fmt_shape


def _number(v, name, where, lo=None):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: {name} must be a number, got {v!r}")
    v = float(v)
    if not np.isfinite(v) or (lo is not None and v < lo):
        raise ValueError(f"{where}: {name} must be a finite number"
                         + (f" >= {lo}" if lo is not None else "") + f", got {v!r}")
    return v


class ReLU(Layer):
    """y = min(x, max_value) for x > threshold, negative_slope * (x - threshold) at and below it
    (so 0 at x == threshold, as Keras)."""

    supports_masking = True

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        w = self.name
        self.max_value = None if max_value is None else _number(max_value, "max_value", w, 0.0)
        self.negative_slope = _number(negative_slope, "negative_slope", w, 0.0)
        self.threshold = _number(threshold, "threshold", w)

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        y = activations.relu_general(x, self.negative_slope, self.max_value, self.threshold)
        return y, (x if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return activations.relu_general_grad(as_f32(dy), ctx, self.negative_slope,
                                             self.max_value, self.threshold)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(max_value=self.max_value, negative_slope=self.negative_slope,
                   threshold=self.threshold)
        return cfg


class LeakyReLU(Layer):
    """y = x for x >= 0, negative_slope * x below (Keras 3 default 0.3; `alpha` is the old
    name)."""

    supports_masking = True

    def __init__(self, negative_slope=0.3, alpha=None, **kwargs):
        super().__init__(**kwargs)
        if alpha is not None:
            negative_slope = alpha
        self.negative_slope = _number(negative_slope, "negative_slope", self.name, 0.0)

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        return activations.relu_general(x, self.negative_slope, None, 0.0), (
            x if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return activations.relu_general_grad(as_f32(dy), ctx, self.negative_slope, None, 0.0)

    def get_config(self):
        cfg = super().get_config()
        cfg["negative_slope"] = self.negative_slope
        return cfg


class ELU(Layer):
    """y = x for x > 0, alpha * (exp(x) - 1) otherwise."""

    supports_masking = True

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number(alpha, "alpha", self.name)

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        y = np.where(x > 0, x, np.float32(self.alpha) * np.expm1(np.minimum(x, 0)))
        return y.astype(np.float32), (x if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        x = ctx
        d = np.where(x > 0, np.float32(1), np.float32(self.alpha) * np.exp(np.minimum(x, 0)))
        return (as_f32(dy) * d).astype(np.float32)

    def get_config(self):
        cfg = super().get_config()
        cfg["alpha"] = self.alpha
        return cfg


class PReLU(Layer):
    """y = x for x > 0, alpha * x otherwise; alpha learned, of the input's per-sample shape with
    the `shared_axes` (1-based, as Keras) set to 1."""

    supports_masking = True

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        if alpha_constraint is not None:
            raise ValueError(f"{self.name}: alpha_constraint is not supported")
        self.alpha_initializer = check_initializer(alpha_initializer)
        self.alpha_regularizer = check_regularizer(alpha_regularizer)
        if shared_axes is None:
            self.shared_axes = None
        else:
            sa = [shared_axes] if isinstance(shared_axes, (int, np.integer)) else shared_axes
            self.shared_axes = [int(a) for a in sa]

    def check_input_shape(self, s):
        where = f"layer {self.name!r} (PReLU)"
        if len(s) < 2:
            raise ValueError(f"{where} needs an input of rank >= 2, got {fmt_shape(s)}")
        for a in self.shared_axes or ():
            if not 1 <= a < len(s):
                raise ValueError(f"{where}: shared axis {a} is out of range for input "
                                 f"{fmt_shape(s)}")
        if any(d is None for i, d in enumerate(s[1:], 1) if i not in (self.shared_axes or ())):
            raise ValueError(f"{where} needs the non-shared axes known, got {fmt_shape(s)}")

    def weight_specs(self, s):
        shape = tuple(1 if i in (self.shared_axes or ()) else d for i, d in enumerate(s[1:], 1))
        return [("alpha", shape, self.alpha_initializer, self.alpha_regularizer)]

    def _on_built(self):
        self.alpha = self.weights[0]

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        try:
            y = np.where(x > 0, x, self.alpha * x)
        except ValueError:
            raise ValueError(f"layer {self.name!r} (PReLU) has alpha of shape {self.alpha.shape}"
                             f", which does not fit input shape {x.shape}") from None
        return y.astype(np.float32), (x if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        x = ctx
        dy = as_f32(dy)
        neg = np.minimum(x, 0)
        axes = (0,) + tuple(i + 1 for i, a in enumerate(self.alpha.shape) if a == 1
                            and x.shape[i + 1] != 1)
        da = np.sum(dy * neg, axis=axes, keepdims=True, dtype=np.float64).reshape(
            self.alpha.shape)
        self._add_grad(0, da.astype(np.float32))
        if not need_input_grad:
            return None
        return np.where(x > 0, dy, dy * self.alpha).astype(np.float32)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(alpha_initializer=initializers.serialize(self.alpha_initializer),
                   alpha_regularizer=regularizers.serialize(self.alpha_regularizer),
                   shared_axes=self.shared_axes)
        return cfg


class Softmax(Layer):
    """y = exp(x - max) / sum(exp(x - max)) over `axis` (an int or a tuple; default -1)."""

    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        ax = axis if isinstance(axis, (list, tuple)) else [axis]
        if not ax or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in ax):
            raise ValueError(f"{self.name}: axis must be an int or a tuple of ints, got {axis!r}")
        self.axis = tuple(int(a) for a in ax) if isinstance(axis, (list, tuple)) else int(axis)

    def check_input_shape(self, s):
        for a in (self.axis if isinstance(self.axis, tuple) else (self.axis,)):
            if not -len(s) <= a < len(s) or a % len(s) == 0:
                raise ValueError(f"layer {self.name!r} (Softmax): axis {a} is not a non-batch "
                                 f"axis of input {fmt_shape(s)}")

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        if x.ndim < 2:
            raise ValueError(f"layer {self.name!r} (Softmax) needs an input of rank >= 2, got "
                             f"shape {x.shape}")
        m = np.max(x, axis=self.axis, keepdims=True)
        with np.errstate(under="ignore"):
            e = np.exp(x - m)
        y = e / np.sum(e, axis=self.axis, keepdims=True)
        return y, (y if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        y = ctx
        dy = as_f32(dy)
        return y * (dy - np.sum(dy * y, axis=self.axis, keepdims=True))

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = list(self.axis) if isinstance(self.axis, tuple) else self.axis
        return cfg
