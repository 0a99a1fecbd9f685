"""Masking: steps whose features all equal mask_value are masked (and zeroed), as Keras."""

from __future__ import annotations

import numpy as np

from .base import Layer, as_f32, fmt_shape


class Masking(Layer):
    """mask[b, t] = any(x[b, t, :] != mask_value); y = x * mask (on the last axis)."""

    supports_masking = True
    _makes_mask = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise ValueError(f"{self.name}: mask_value must be a number, got {mask_value!r}")
        self.mask_value = float(mask_value)

    def check_input_shape(self, s):
        if len(s) < 3:
            raise ValueError(f"layer {self.name!r} (Masking) needs input (batch, steps, ...), got "
                             f"{fmt_shape(s)}")

    def _keep(self, x):
        return np.any(x != np.float32(self.mask_value), axis=-1)

    def compute_mask(self, inputs, mask=None):
        keep = self._keep(as_f32(inputs))
        return keep if mask is None else keep & mask

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        keep = self._keep(x)[..., None]
        return x * keep, (keep if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        return as_f32(dy) * ctx if need_input_grad else None

    def get_config(self):
        cfg = super().get_config()
        cfg["mask_value"] = self.mask_value
        return cfg
