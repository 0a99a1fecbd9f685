"""Core layers: Input, Dense, Flatten, Dropout, Activation."""

from __future__ import annotations

import math

import numpy as np

from .. import _core, activations
from ..ops import gemm as _gemm
from ..utils.random import get_rng
from .base import (
    MAX_DIM,
    ActivationMixin,
    Layer,
    check_initializer,
    check_regularizer,
    fmt_shape,
    positive_int,
    shape_tuple,
)


class InputLayer(Layer):
    """Declares the per-sample input shape of a Sequential model; holds no weights."""

    def __init__(self, shape=None, batch_size=None, name=None, dtype=None, batch_shape=None,
                 input_shape=None, **kwargs):
        if shape is None:
            shape = input_shape if input_shape is not None else (
                tuple(batch_shape[1:]) if batch_shape is not None else None)
        if shape is None:
            raise ValueError("Input: give shape=, e.g. Input(shape=(28, 28, 1))")
        super().__init__(name=name, dtype=dtype, input_shape=shape, **kwargs)
        self.batch_size = batch_size

    def forward(self, x, training=False):
        return x

    def backward(self, dy):
        return dy

    def get_config(self):
        return {"name": self.name, "shape": list(self._input_shape_arg)}


def Input(shape=None, batch_size=None, name=None, dtype=None, batch_shape=None):  # noqa: N802
    """Keras's Input: in a Sequential model it only fixes the input shape."""
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype,
                      batch_shape=batch_shape)


class Dense(ActivationMixin, Layer):
    """y = activation(x @ kernel + bias); kernel (in, units), bias (units,).
    Acts on the last axis."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(units, "units", self.name)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.bias_initializer = check_initializer(bias_initializer)
        self.kernel_regularizer = check_regularizer(kernel_regularizer)
        self.bias_regularizer = check_regularizer(bias_regularizer)

    def check_input_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"layer {self.name!r} (Dense) needs an input of shape (batch, ..., "
                             f"features), got {fmt_shape(input_shape)}")

    def weight_specs(self, input_shape):
        specs = [("kernel", (input_shape[-1], self.units), self.kernel_initializer,
                  self.kernel_regularizer)]
        if self.use_bias:
            specs.append(("bias", (self.units,), self.bias_initializer, self.bias_regularizer))
        return specs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def _on_built(self):
        self.kernel = self.weights[0]
        self.bias = self.weights[1] if self.use_bias else None

    def forward(self, x, training=False, logits=False):
        x2 = x.reshape(-1, x.shape[-1])
        relu = self.activation == "relu"
        # Straight to the kernel: x2 is float32 (see Conv2D.forward) and the binding checks shapes.
        z = np.empty((x2.shape[0], self.units), np.float32)
        _core.sgemm(z, x2, self.kernel, False, False, 1.0, 0.0, self.bias, relu)
        if x.ndim != 2:
            z = z.reshape(x.shape[:-1] + (self.units,))
        if training:
            self._x2 = x2
        return self._activate(z, training, logits, fused_relu=relu)

    def backward(self, dy):
        dz = self._activation_grad(dy).reshape(-1, self.units)
        _gemm.matmul(self._x2, dz, out=self.grads[0], transpose_a=True)
        if self.use_bias:
            np.sum(dz, axis=0, out=self.grads[1])
        if not self.need_input_grad:
            return None
        dx = _gemm.matmul(dz, self.kernel, transpose_b=True)
        return dx.reshape(dy.shape[:-1] + (self.kernel.shape[0],))

    def get_config(self):
        from .. import initializers, regularizers

        cfg = super().get_config()
        cfg.update(units=self.units, activation=self.activation, use_bias=self.use_bias,
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        return cfg


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1*d2*...)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{self.name}: only data_format='channels_last' is supported")

    def check_input_shape(self, input_shape):
        if len(input_shape) < 2 or any(d is None for d in input_shape[1:]):
            raise ValueError(f"layer {self.name!r} (Flatten) needs a fully known input shape, "
                             f"got {fmt_shape(input_shape)}")
        size = math.prod(input_shape[1:])
        if size > MAX_DIM:
            raise ValueError(f"layer {self.name!r} (Flatten): input shape "
                             f"{fmt_shape(input_shape)} flattens to {size} features, more than "
                             f"{MAX_DIM}")

    def compute_output_shape(self, input_shape):
        # math.prod: exact Python ints (np.prod wraps around int64 on hostile shapes).
        return (input_shape[0], math.prod(input_shape[1:]))

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape((dy.shape[0],) + tuple(self.input_shape[1:]))


class Reshape(Layer):
    """(batch, *input dims) -> (batch, *target_shape), Keras's Reshape: the batch axis is kept,
    the per-sample element count must match, and one entry of target_shape may be -1 (inferred).
    Row-major (C order), so e.g. a conv feature map (H, W, C) -> (H, W*C) reads it as H steps of
    W*C features."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        where = f"layer {self.name!r} (Reshape)"
        if isinstance(target_shape, (int, np.integer)) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (tuple, list)) or not 0 < len(target_shape) <= 8:
            raise ValueError(f"{where}: target_shape must be a tuple of 1 to 8 ints, got "
                             f"{target_shape!r}")
        dims = []
        for d in target_shape:
            if isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d == -1:
                dims.append(-1)
            else:
                dims.append(positive_int(d, "each target_shape entry (or -1)", where))
        if dims.count(-1) > 1:
            raise ValueError(f"{where}: target_shape may have at most one unknown dimension "
                             f"(-1), got {tuple(dims)}")
        self.target_shape = tuple(dims)

    def _resolved(self, input_shape) -> tuple:
        where = f"layer {self.name!r} (Reshape)"
        if len(input_shape) < 2 or any(d is None for d in input_shape[1:]):
            raise ValueError(f"{where} needs a fully known input shape, got "
                             f"{fmt_shape(input_shape)}")
        size = math.prod(input_shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"{where}: cannot reshape input {fmt_shape(input_shape)} "
                                 f"({size} values per sample) to {self.target_shape}: {size} is "
                                 f"not a multiple of {known}")
            missing = size // known
            if missing > MAX_DIM:
                raise ValueError(f"{where}: the inferred dimension {missing} is too large")
            return tuple(missing if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(f"{where}: cannot reshape input {fmt_shape(input_shape)} ({size} "
                             f"values per sample) to {self.target_shape} ({known} values)")
        return self.target_shape

    def check_input_shape(self, input_shape):
        self._resolved(input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolved(input_shape)

    def forward(self, x, training=False):
        return x.reshape((x.shape[0],) + tuple(self.output_shape[1:]))

    def backward(self, dy):
        if not self.need_input_grad:
            return None
        return dy.reshape((dy.shape[0],) + tuple(self.input_shape[1:]))

    def get_config(self):
        cfg = super().get_config()
        cfg["target_shape"] = list(self.target_shape)
        return cfg


class Dropout(Layer):
    """Training: zero each input with probability `rate`, scale the rest by 1/(1-rate).
    Inference: identity."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"{self.name}: rate must be a number in [0, 1), got {rate!r}")
        if noise_shape is not None:
            raise ValueError(f"{self.name}: noise_shape is not supported")
        self.rate = float(rate)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def forward(self, x, training=False):
        if not training:
            return x
        if self.rate == 0.0:
            self._mask = None
            return x
        rng = self._rng if self._rng is not None else get_rng()
        keep = rng.random(x.shape, dtype=np.float32) >= np.float32(self.rate)
        self._mask = keep.astype(np.float32) * np.float32(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, dy):
        return dy if self._mask is None else dy * self._mask

    def get_config(self):
        cfg = super().get_config()
        cfg.update(rate=self.rate, seed=self.seed)
        return cfg


class Activation(ActivationMixin, Layer):
    """y = activation(x): 'linear', 'relu', 'sigmoid', 'tanh', 'softmax' (last axis)."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def forward(self, x, training=False, logits=False):
        # Never in place: x is the previous layer's output, which its backward may still need.
        return self._activate(x, training, logits, inplace=False)

    def backward(self, dy):
        return self._activation_grad(dy)

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self.activation
        return cfg


__all__ = ["Input", "InputLayer", "Dense", "Flatten", "Dropout", "Activation", "shape_tuple"]
