"""Noise and dropout layers, active only with training=True (identity in inference):
SpatialDropout1D/2D (whole channels dropped), GaussianNoise (x + N(0, stddev)),
GaussianDropout (x * N(1, rate / (1 - rate)))."""

from __future__ import annotations

import numpy as np

from ..utils.random import get_rng
from .base import Layer, as_f32, fmt_shape


def _rate(v, where, hi_open=True):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not (
            0 <= v < 1):
        raise ValueError(f"{where}: rate must be a number in [0, 1), got {v!r}")
    return float(v)


class _Noise(Layer):
    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def _gen(self):
        return self._rng if self._rng is not None else get_rng()

    def forward(self, x, training=False, need_ctx=False):
        if not training or self._inactive():
            return x, None
        x = as_f32(x)
        mult, add = self._noise(x)
        y = x if mult is None else x * mult
        if add is not None:
            y = y + add
        return y.astype(np.float32, copy=False), (mult if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return dy if ctx is None else as_f32(dy) * ctx

    def get_config(self):
        cfg = super().get_config()
        cfg["seed"] = self.seed
        return cfg


class _SpatialDropout(_Noise):
    _rank = 1

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _rate(rate, self.name)

    def check_input_shape(self, s):
        if len(s) != self._rank + 2:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) needs an input of "
                             f"rank {self._rank + 2} (channels last), got {fmt_shape(s)}")

    def _inactive(self):
        return self.rate == 0.0

    def _noise(self, x):
        if x.ndim != self._rank + 2:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) expects rank "
                             f"{self._rank + 2}, got shape {x.shape}")
        shape = (x.shape[0],) + (1,) * self._rank + (x.shape[-1],)
        keep = self._gen().random(shape, dtype=np.float32) >= np.float32(self.rate)
        return keep.astype(np.float32) * np.float32(1.0 / (1.0 - self.rate)), None

    def get_config(self):
        cfg = super().get_config()
        cfg["rate"] = self.rate
        return cfg


class SpatialDropout1D(_SpatialDropout):
    """Dropout of whole channels of (batch, steps, channels), kept ones scaled by 1/(1-rate)."""

    supports_masking = True
    _rank = 1


class SpatialDropout2D(_SpatialDropout):
    """Dropout of whole channels of (batch, H, W, channels), kept ones scaled by 1/(1-rate)."""
    _rank = 2

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        from .conv import check_data_format

        super().__init__(rate, seed=seed, **kwargs)
        check_data_format(data_format, self.name)


class GaussianNoise(_Noise):
    """Training: y = x + noise, noise ~ N(0, stddev^2)."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or stddev < 0:
            raise ValueError(f"{self.name}: stddev must be a number >= 0, got {stddev!r}")
        self.stddev = float(stddev)

    def _inactive(self):
        return self.stddev == 0.0

    def _noise(self, x):
        return None, self._gen().normal(0.0, self.stddev, x.shape).astype(np.float32)

    def get_config(self):
        cfg = super().get_config()
        cfg["stddev"] = self.stddev
        return cfg


class GaussianDropout(_Noise):
    """Training: y = x * noise, noise ~ N(1, rate / (1 - rate))."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _rate(rate, self.name)

    def _inactive(self):
        return self.rate == 0.0

    def _noise(self, x):
        sd = np.sqrt(self.rate / (1.0 - self.rate))
        return self._gen().normal(1.0, sd, x.shape).astype(np.float32), None

    def get_config(self):
        cfg = super().get_config()
        cfg["rate"] = self.rate
        return cfg


class ActivityRegularization(Layer):
    """Identity whose output adds Keras's activity penalty to the loss:
    (l1 * sum|x| + l2 * sum x^2) / batch, as Keras 3 (its activity_regularizer, divided by the
    batch size). Written in nncore.ops, so the penalty is traced and differentiated."""

    supports_masking = True

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        for nm, v in (("l1", l1), ("l2", l2)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(
                    v, (int, float, np.integer, np.floating)) or not np.isfinite(v) or v < 0:
                raise ValueError(f"{self.name}: {nm} must be a finite number >= 0, got {v!r}")
        self.l1, self.l2 = float(l1), float(l2)

    def call(self, x):
        from .. import ops

        axes = tuple(range(1, len(x.shape)))
        if self.l1 or self.l2:
            per_sample = 0
            if self.l1:
                per_sample = ops.sum(ops.abs(x), axis=axes) * self.l1
            if self.l2:
                per_sample = per_sample + ops.sum(ops.square(x), axis=axes) * self.l2
            self.add_loss(ops.mean(per_sample))
        return x

    def get_config(self):
        cfg = super().get_config()
        cfg.update(l1=self.l1, l2=self.l2)
        return cfg
