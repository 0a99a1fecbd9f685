"""Core layers: Input, Dense, Flatten, Dropout, Activation."""

from __future__ import annotations

import math

import numpy as np

from .. import _core, activations
from ..kernels import gemm as _gemm
from ..utils.random import get_rng
from .base import (
    MAX_DIM,
    ActivationMixin,
    KerasTensor,
    Layer,
    Node,
    as_f32,
    check_initializer,
    check_constraint,
    check_regularizer,
    fmt_shape,
    positive_int,
    shape_tuple,
)


class InputLayer(Layer):
    """The source of a graph: holds no weights; its one node has no inputs and outputs the model's
    input tensor. dtype is what the model converts that input to (float32 by default)."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, batch_shape=None,
                 input_shape=None, sparse=None, input_tensor=None, **kwargs):
        if shape is None:
            shape = input_shape if input_shape is not None else (
                tuple(batch_shape[1:]) if batch_shape is not None else None)
        if shape is None:
            raise ValueError("Input: give shape=, e.g. Input(shape=(28, 28, 1))")
        if batch_shape is not None and batch_size is None:
            batch_size = batch_shape[0]
        if sparse:
            raise ValueError("Input: sparse inputs are not supported")
        kwargs.pop("trainable", None)
        super().__init__(name=name, input_shape=shape, **kwargs)
        if batch_size is not None:
            batch_size = positive_int(batch_size, "batch_size", self.name)
        self.batch_size = batch_size
        if dtype in ("string", "str"):
            self.dtype = "string"  # Keras's name; the data are kept as Python strings
        else:
            try:
                dt = np.dtype("float32" if dtype is None else dtype)
            except TypeError:
                raise ValueError(f"Input {self.name!r}: unknown dtype {dtype!r}") from None
            if dt.kind not in "biuf":
                raise ValueError(f"Input {self.name!r}: dtype must be numeric or 'string', "
                                 f"got {dt}")
            self.dtype = str(dt)
        self.output_dtype = self.dtype
        self.built = True
        shape = (batch_size,) + tuple(self._input_shape_arg)
        self._build_shape = self._out_shape = shape
        self._tensor = KerasTensor(shape, self.dtype, name=self.name)
        self._inbound_nodes.append(Node(self, [], self._tensor))

    def forward(self, x, training=False, need_ctx=False):
        return x, None

    def backward(self, ctx, dy, need_input_grad=True):
        return dy

    def get_config(self):
        return {"name": self.name, "shape": list(self._input_shape_arg), "dtype": self.dtype,
                "batch_size": self.batch_size}


def Input(shape=None, batch_size=None, name=None, dtype=None, batch_shape=None, sparse=None,
          tensor=None, optional=False):  # noqa: N802
    """Keras's Input: a symbolic tensor (shape with a None batch axis) to build models on."""
    if tensor is not None or optional:
        raise ValueError("Input: tensor= and optional= are not supported")
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype,
                      batch_shape=batch_shape, sparse=sparse)._tensor


class Dense(ActivationMixin, Layer):
    """y = activation(x @ kernel + bias); kernel (in, units), bias (units,).
    Acts on the last axis."""

    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(units, "units", self.name)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.bias_initializer = check_initializer(bias_initializer)
        self.kernel_regularizer = check_regularizer(kernel_regularizer)
        self.bias_regularizer = check_regularizer(bias_regularizer)
        where = f"layer {self.name!r} (Dense)"
        self.kernel_constraint = check_constraint(kernel_constraint, where, "kernel_constraint")
        self.bias_constraint = check_constraint(bias_constraint, where, "bias_constraint")

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

    def forward(self, x, training=False, need_ctx=False, logits=False):
        x = as_f32(x)
        x2 = x.reshape(-1, x.shape[-1])
        relu = self.activation == "relu" and not logits
        # Straight to the kernel: x2 is float32 C-contiguous and the binding checks shapes.
        z = np.empty((x2.shape[0], self.units), np.float32)
        _core.sgemm(z, x2, self.kernel, False, False, 1.0, 0.0, self.bias, relu)
        if x.ndim != 2:
            z = z.reshape(x.shape[:-1] + (self.units,))
        out, act = self._activate(z, logits, fused_relu=relu)
        return out, ((x2, x.shape, act) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        x2, in_shape, act = ctx
        dz = self._activation_grad(act, dy).reshape(-1, self.units)
        g, beta = self._grad_out(0)
        _gemm.matmul(x2, dz, out=g, transpose_a=True, beta=beta)
        if self.use_bias:
            g, beta = self._grad_out(1)
            if beta:
                g += dz.sum(axis=0)
            else:
                np.sum(dz, axis=0, out=g)
        if not need_input_grad:
            return None
        dx = _gemm.matmul(dz, self.kernel, transpose_b=True)
        return dx.reshape(in_shape)

    def get_config(self):
        from .. import constraints, initializers, regularizers

        cfg = super().get_config()
        cfg.update(units=self.units, activation=self.activation, use_bias=self.use_bias,
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer),
                   kernel_constraint=constraints.serialize(self.kernel_constraint),
                   bias_constraint=constraints.serialize(self.bias_constraint))
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

    def forward(self, x, training=False, need_ctx=False):
        return x.reshape(x.shape[0], -1), (x.shape if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        return dy.reshape(ctx) if need_input_grad else None


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

    def forward(self, x, training=False, need_ctx=False):
        out = x.reshape((x.shape[0],) + self._resolved((None,) + x.shape[1:]))
        return out, (x.shape if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        return dy.reshape(ctx) if need_input_grad else None

    def get_config(self):
        cfg = super().get_config()
        cfg["target_shape"] = list(self.target_shape)
        return cfg


class Dropout(Layer):
    """Training: zero each input with probability `rate`, scale the rest by 1/(1-rate).
    Inference: identity."""

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, (bool, np.bool_)) or not isinstance(
                rate, (int, float, np.integer, np.floating)) or not 0 <= rate < 1:
            raise ValueError(f"{self.name}: rate must be a number in [0, 1), got {rate!r}")
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(
                seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{self.name}: seed must be an int >= 0 or None, got {seed!r}")
        seed = None if seed is None else int(seed)
        if noise_shape is not None:
            raise ValueError(f"{self.name}: noise_shape is not supported")
        self.rate = float(rate)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def forward(self, x, training=False, need_ctx=False):
        if not training or self.rate == 0.0:
            return x, None
        rng = self._rng if self._rng is not None else get_rng()
        keep = rng.random(x.shape, dtype=np.float32) >= np.float32(self.rate)
        mask = keep.astype(np.float32) * np.float32(1.0 / (1.0 - self.rate))
        return x * mask, (mask if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return dy if ctx is None else dy * ctx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(rate=self.rate, seed=self.seed)
        return cfg


class Activation(ActivationMixin, Layer):
    """y = activation(x): 'linear', 'relu', 'sigmoid', 'tanh', 'softmax' (last axis)."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def forward(self, x, training=False, need_ctx=False, logits=False):
        # Never in place: x is the previous layer's output, which its backward may still need.
        out, act = self._activate(as_f32(x), logits, inplace=False)
        return out, (act if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        return self._activation_grad(ctx, dy) if need_input_grad else None

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self.activation
        return cfg


__all__ = ["Input", "InputLayer", "Dense", "Flatten", "Dropout", "Activation", "shape_tuple"]
