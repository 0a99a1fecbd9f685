"""Conv2D (NHWC, kernel (KH, KW, Cin, Cout)) on the im2col + GEMM kernel, ReLU fused."""

from __future__ import annotations

import numpy as np

from .. import _core, activations, initializers, regularizers
from .. import ops as _ops
from .base import (
    ActivationMixin,
    Layer,
    as_f32,
    check_initializer,
    check_regularizer,
    fmt_shape,
    int_tuple,
    positive_int,
)


def conv_out_dim(n, k, s, d, padding):
    if padding == "same":
        return -(-n // s)
    eff = d * (k - 1) + 1
    return (n - eff) // s + 1 if n >= eff else 0


def check_padding(padding, where):
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"{where}: padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def check_data_format(data_format, where):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{where}: only data_format='channels_last' (NHWC) is supported")


class Conv2D(ActivationMixin, Layer):
    """y = activation(conv2d(x, kernel) + bias), NHWC. padding 'valid' or 'same'."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        w = self.name
        self.filters = positive_int(filters, "filters", w)
        self.kernel_size = int_tuple(kernel_size, 2, "kernel_size", w)
        self.strides = int_tuple(strides, 2, "strides", w)
        self.padding = check_padding(padding, w)
        check_data_format(data_format, w)
        self.dilation_rate = int_tuple(dilation_rate, 2, "dilation_rate", w)
        if groups != 1:
            raise ValueError(f"{w}: groups != 1 is not supported")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{w}: strides > 1 together with dilation_rate > 1 is not supported")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.bias_initializer = check_initializer(bias_initializer)
        self.kernel_regularizer = check_regularizer(kernel_regularizer)
        self.bias_regularizer = check_regularizer(bias_regularizer)

    def check_input_shape(self, s):
        if len(s) != 4 or any(d is None for d in s[1:]):
            raise ValueError(f"layer {self.name!r} (Conv2D) needs input (batch, height, width, "
                             f"channels), got {fmt_shape(s)}")
        oh, ow = self._out_hw(s)
        if oh <= 0 or ow <= 0:
            raise ValueError(f"layer {self.name!r} (Conv2D): input {fmt_shape(s)} is smaller than "
                             f"the kernel {self.kernel_size} (dilation {self.dilation_rate}) with "
                             f"padding='valid'")

    def _out_hw(self, s):
        return tuple(conv_out_dim(s[1 + i], self.kernel_size[i], self.strides[i],
                                  self.dilation_rate[i], self.padding) for i in range(2))

    def weight_specs(self, s):
        specs = [("kernel", self.kernel_size + (s[3], self.filters), self.kernel_initializer,
                  self.kernel_regularizer)]
        if self.use_bias:
            specs.append(("bias", (self.filters,), self.bias_initializer, self.bias_regularizer))
        return specs

    def compute_output_shape(self, s):
        return (s[0],) + self._out_hw(s) + (self.filters,)

    def _on_built(self):
        self.kernel = self.weights[0]
        self.bias = self.weights[1] if self.use_bias else None

    def _geom(self):
        return dict(strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate)

    def forward(self, x, training=False, need_ctx=False, logits=False):
        x = as_f32(x)
        relu = self.activation == "relu" and not logits
        # The binding re-checks every shape: skip ops.conv2d's per-call validation, which cost
        # more than the kernel itself at batch 1.
        z = _core.conv2d_forward(x, self.kernel, self.bias, self.strides, self.padding == "same",
                                 self.dilation_rate, relu, False)
        out, act = self._activate(z, logits, fused_relu=relu)
        return out, ((x, act) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        x, act = ctx
        if self.activation == "relu" and not act[1]:
            dz, y, a = dy, act[0], "relu"
        else:
            dz, y, a = self._activation_grad(act, dy), None, None
        dx, dw, db = _ops.conv2d_backward(dz, x, self.kernel, y=y, activation=a,
                                          need_dx=need_input_grad, has_bias=self.use_bias,
                                          **self._geom())
        self._add_grad(0, dw)
        if self.use_bias:
            self._add_grad(1, db)
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(filters=self.filters, kernel_size=list(self.kernel_size),
                   strides=list(self.strides), padding=self.padding,
                   dilation_rate=list(self.dilation_rate), activation=self.activation,
                   use_bias=self.use_bias,
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        return cfg


class Conv1D(ActivationMixin, Layer):
    """y = activation(conv1d(x, kernel) + bias), x (N, L, C), kernel (K, Cin, F).
    padding 'valid', 'same' or 'causal' (left-padded by dilation_rate*(K-1), so output t sees
    inputs <= t only). Runs on the Conv2D kernels with x viewed as (N, 1, L, C): exact, since a
    height-1 kernel on a height-1 input needs no padding along that axis."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        w = self.name
        self.filters = positive_int(filters, "filters", w)
        self.kernel_size = int_tuple(kernel_size, 1, "kernel_size", w)
        self.strides = int_tuple(strides, 1, "strides", w)
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same", "causal"):
            raise ValueError(f"{w}: padding must be 'valid', 'same' or 'causal', got {padding!r}")
        self.padding = padding.lower()
        check_data_format(data_format, w)
        self.dilation_rate = int_tuple(dilation_rate, 1, "dilation_rate", w)
        if groups != 1:
            raise ValueError(f"{w}: groups != 1 is not supported")
        if self.strides[0] > 1 and self.dilation_rate[0] > 1:
            raise ValueError(f"{w}: strides > 1 together with dilation_rate > 1 is not supported")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.bias_initializer = check_initializer(bias_initializer)
        self.kernel_regularizer = check_regularizer(kernel_regularizer)
        self.bias_regularizer = check_regularizer(bias_regularizer)

    def _causal_pad(self):
        return self.dilation_rate[0] * (self.kernel_size[0] - 1) if self.padding == "causal" else 0

    def _out_len(self, n):
        pad = "same" if self.padding == "same" else "valid"
        return conv_out_dim(n + self._causal_pad(), self.kernel_size[0], self.strides[0],
                            self.dilation_rate[0], pad)

    def check_input_shape(self, s):
        if len(s) != 3 or any(d is None for d in s[1:]):
            raise ValueError(f"layer {self.name!r} (Conv1D) needs input (batch, steps, channels), "
                             f"got {fmt_shape(s)}")
        if self._out_len(s[1]) <= 0:
            raise ValueError(f"layer {self.name!r} (Conv1D): input {fmt_shape(s)} is shorter than "
                             f"the kernel {self.kernel_size[0]} (dilation "
                             f"{self.dilation_rate[0]}) with padding='valid'")

    def weight_specs(self, s):
        specs = [("kernel", self.kernel_size + (s[2], self.filters), self.kernel_initializer,
                  self.kernel_regularizer)]
        if self.use_bias:
            specs.append(("bias", (self.filters,), self.bias_initializer, self.bias_regularizer))
        return specs

    def compute_output_shape(self, s):
        return (s[0], self._out_len(s[1]), self.filters)

    def _on_built(self):
        self.kernel = self.weights[0]
        self.bias = self.weights[1] if self.use_bias else None

    def _geom(self):
        return dict(strides=(1, self.strides[0]), padding="same" if self.padding == "same"
                    else "valid", dilation_rate=(1, self.dilation_rate[0]))

    def forward(self, x, training=False, need_ctx=False, logits=False):
        x = as_f32(x)
        if x.ndim != 3 or x.shape[2] != self.kernel.shape[1]:
            raise ValueError(f"layer {self.name!r} (Conv1D) expects input (batch, steps, "
                             f"{self.kernel.shape[1]}), got {x.shape}")
        pad = self._causal_pad()
        if pad:
            x = np.pad(x, ((0, 0), (pad, 0), (0, 0)))
        x4 = x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])
        k4 = self.kernel.reshape((1,) + self.kernel.shape)
        relu = self.activation == "relu" and not logits
        z = _core.conv2d_forward(x4, k4, self.bias, (1, self.strides[0]),
                                 self.padding == "same", (1, self.dilation_rate[0]), relu, False)
        z = z.reshape(z.shape[0], z.shape[2], z.shape[3])
        out, act = self._activate(z, logits, fused_relu=relu)
        return out, ((x4, act) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        x4, act = ctx
        if self.activation == "relu" and not act[1]:
            dz, y, a = dy, act[0], "relu"
            y = y.reshape(y.shape[0], 1, y.shape[1], y.shape[2])
        else:
            dz, y, a = self._activation_grad(act, dy), None, None
        dz = as_f32(dz)
        dz = dz.reshape(dz.shape[0], 1, dz.shape[1], dz.shape[2])
        k4 = self.kernel.reshape((1,) + self.kernel.shape)
        dx, dw, db = _ops.conv2d_backward(dz, x4, k4, y=y, activation=a,
                                          need_dx=need_input_grad, has_bias=self.use_bias,
                                          **self._geom())
        self._add_grad(0, dw.reshape(self.kernel.shape))
        if self.use_bias:
            self._add_grad(1, db)
        if not need_input_grad:
            return None
        dx = dx.reshape(dx.shape[0], dx.shape[2], dx.shape[3])
        pad = self._causal_pad()
        return dx[:, pad:] if pad else dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(filters=self.filters, kernel_size=list(self.kernel_size),
                   strides=list(self.strides), padding=self.padding,
                   dilation_rate=list(self.dilation_rate), activation=self.activation,
                   use_bias=self.use_bias,
                   kernel_initializer=initializers.serialize(self.kernel_initializer),
                   bias_initializer=initializers.serialize(self.bias_initializer),
                   kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                   bias_regularizer=regularizers.serialize(self.bias_regularizer))
        return cfg


Convolution1D = Conv1D
