"""Numeric preprocessing: Rescaling (y = x * scale + offset) and Normalization
(y = (x - mean) / max(sqrt(variance), 1e-7), or the inverse with invert=True; mean and variance
given or learnt by adapt(data))."""

from __future__ import annotations

import numpy as np

from .base import Layer, as_f32, fmt_shape

_EPS = 1e-7  # Keras's backend.epsilon()


class Rescaling(Layer):
    """y = x * scale + offset (scale and offset numbers or arrays broadcast on the input)."""

    supports_masking = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = self._num(scale, "scale")
        self.offset = self._num(offset, "offset")

    def _num(self, v, name):
        a = np.asarray(v, dtype=np.float64)
        if a.dtype.kind != "f" or not np.all(np.isfinite(a)):
            raise ValueError(f"{self.name}: {name} must be finite numbers, got {v!r}")
        return float(a) if a.ndim == 0 else a

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        return (x * np.float32(self.scale) if np.ndim(self.scale) == 0
                else x * self.scale.astype(np.float32)) + np.asarray(self.offset, np.float32), None

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return as_f32(dy) * np.asarray(self.scale, np.float32)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(scale=self.scale if np.ndim(self.scale) == 0 else self.scale.tolist(),
                   offset=self.offset if np.ndim(self.offset) == 0 else self.offset.tolist())
        return cfg


class Normalization(Layer):
    """Feature-wise standardization over `axis` (default -1; None: one mean/variance for all).
    Without mean/variance, build makes non-trainable weights mean (zeros) and variance (ones),
    filled by adapt(data)."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            self.axis = ()
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            self.axis = (int(axis),)
        else:
            self.axis = tuple(int(a) for a in axis)
        if (mean is None) != (variance is None):
            raise ValueError(f"{self.name}: give both mean and variance, or neither")
        self.input_mean = None if mean is None else np.asarray(mean, np.float32)
        self.input_variance = None if variance is None else np.asarray(variance, np.float32)
        self.invert = bool(invert)

    def _keep(self, ndim):
        where = f"layer {self.name!r} (Normalization)"
        keep = []
        for a in self.axis:
            if not -ndim <= a < ndim:
                raise ValueError(f"{where}: axis {a} is out of range for rank {ndim}")
            keep.append(a % ndim)
        return sorted(keep)

    def check_input_shape(self, s):
        for a in self._keep(len(s)):
            if s[a] is None or a == 0:
                raise ValueError(f"layer {self.name!r} (Normalization): axis {a} of input "
                                 f"{fmt_shape(s)} must be known and not the batch axis")

    def _param_shape(self, s):
        keep = self._keep(len(s))
        return tuple(s[a] for a in keep)

    def weight_specs(self, s):
        if self.input_mean is not None:
            return []
        shape = self._param_shape(s)
        return [("mean", shape, "zeros", None, False), ("variance", shape, "ones", None, False)]

    def _on_built(self):
        if self.input_mean is None:
            self.mean, self.variance = self.weights[0], self.weights[1]
        else:
            shape = self._param_shape(self._build_shape)
            self.mean = np.broadcast_to(self.input_mean, shape).astype(np.float32)
            self.variance = np.broadcast_to(self.input_variance, shape).astype(np.float32)

    def _broadcast(self, v, ndim):
        keep = self._keep(ndim)
        shape = [1] * ndim
        for a, d in zip(keep, v.shape):
            shape[a] = d
        return v.reshape(shape)

    def adapt(self, data, batch_size=None, steps=None):
        """Set mean and variance (population) from data: an array, or an iterable of batches."""
        if self.input_mean is not None:
            raise ValueError(f"{self.name}: adapt() cannot be used with a given mean/variance")
        arrs = [np.asarray(data)] if hasattr(data, "shape") or isinstance(data, list) else [
            np.asarray(b[0] if isinstance(b, tuple) else b) for b in data]
        x = np.concatenate([a.reshape((-1,) + a.shape[1:]) for a in arrs]).astype(np.float64)
        if x.ndim == 1:
            x = x[:, None]
        self._maybe_build((None,) + x.shape[1:])
        keep = self._keep(x.ndim)
        red = tuple(a for a in range(x.ndim) if a not in keep)
        mean = x.mean(axis=red)
        var = x.var(axis=red)
        self.mean[...] = mean.reshape(self.mean.shape)
        self.variance[...] = var.reshape(self.variance.shape)

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        m = self._broadcast(self.mean, x.ndim)
        sd = np.maximum(np.sqrt(self._broadcast(self.variance, x.ndim)), np.float32(_EPS))
        y = m + x * sd if self.invert else (x - m) / sd
        return y.astype(np.float32, copy=False), (sd if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return (as_f32(dy) * ctx if self.invert else as_f32(dy) / ctx).astype(np.float32)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axis=list(self.axis) if len(self.axis) != 1 else self.axis[0],
                   invert=self.invert,
                   mean=None if self.input_mean is None else self.input_mean.tolist(),
                   variance=None if self.input_variance is None else
                   self.input_variance.tolist())
        if not self.axis:
            cfg["axis"] = None
        return cfg
