"""Conv2D (NHWC, kernel (KH, KW, Cin, Cout)) on the im2col + GEMM kernel, ReLU fused."""

from __future__ import annotations

import numpy as np

from .. import _core, activations, constraints, initializers, regularizers
from .. import kernels as _ops
from .base import (
    ActivationMixin,
    Layer,
    _known_positive,
    as_f32,
    check_dynamic_shape,
    check_initializer,
    check_constraint,
    check_regularizer,
    fmt_shape,
    int_tuple,
    positive_int,
)


def conv_out_dim(n, k, s, d, padding):
    """Output length of one axis, from the one geometry function the kernels use (C++);
    0 when the dilated kernel does not fit a 'valid' input."""
    if n is None:
        return None  # an axis of unknown length (a variable-length sequence or image)
    try:
        return _core.conv2d_geometry((n, 1), (k, 1), (s, 1), padding == "same", (d, 1))[0][0]
    except ValueError:
        return 0


def check_padding(padding, where):
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"{where}: padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def check_data_format(data_format, where):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{where}: only data_format='channels_last' (NHWC) is supported")


class _ConvBase(ActivationMixin, Layer):
    """Argument handling shared by every convolution layer (rank 1: Conv1D, which also takes
    padding='causal'; rank 2: the others)."""

    def _init_geometry(self, kernel_size, strides, padding, data_format, dilation_rate,
                       activation, use_bias, bias_initializer, bias_regularizer, rank=2):
        w = self.name
        self.kernel_size = int_tuple(kernel_size, rank, "kernel_size", w)
        self.strides = int_tuple(strides, rank, "strides", w)
        if rank == 1 and isinstance(padding, str) and padding.lower() == "causal":
            self.padding = "causal"
        else:
            try:
                self.padding = check_padding(padding, w)
            except ValueError:
                if rank == 1:
                    raise ValueError(f"{w}: padding must be 'valid', 'same' or 'causal', got "
                                     f"{padding!r}") from None
                raise
        check_data_format(data_format, w)
        self.dilation_rate = int_tuple(dilation_rate, rank, "dilation_rate", w)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{w}: strides > 1 together with dilation_rate > 1 is not supported")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = check_initializer(bias_initializer)
        self.bias_regularizer = check_regularizer(bias_regularizer)

    def _need4(self, s):
        if len(s) != 4 or s[3] is None:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) needs input (batch, "
                             f"height, width, channels), got {fmt_shape(s)}")

    def _check_x(self, x, c):
        x = as_f32(x)
        if x.ndim != 4 or x.shape[3] != c:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) expects input (batch, "
                             f"height, width, {c}), got shape {x.shape}")
        check_dynamic_shape(self, x.shape)
        return x

    def _kernel_args(self, filters, kernel_initializer, kernel_regularizer):
        self.filters = positive_int(filters, "filters", self.name)
        self.kernel_initializer = check_initializer(kernel_initializer)
        self.kernel_regularizer = check_regularizer(kernel_regularizer)

    def _constraint_args(self, kernel_constraint, bias_constraint):
        where = f"layer {self.name!r} ({type(self).__name__})"
        self.kernel_constraint = check_constraint(kernel_constraint, where, "kernel_constraint")
        self.bias_constraint = check_constraint(bias_constraint, where, "bias_constraint")

    def _kernel_cfg(self):
        return dict(filters=self.filters,
                    kernel_initializer=initializers.serialize(self.kernel_initializer),
                    kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                    kernel_constraint=constraints.serialize(self.kernel_constraint),
                    bias_constraint=constraints.serialize(self.bias_constraint))

    def _geom_cfg(self):
        return dict(kernel_size=list(self.kernel_size), strides=list(self.strides),
                    padding=self.padding, data_format="channels_last",
                    dilation_rate=list(self.dilation_rate), activation=self.activation,
                    use_bias=self.use_bias,
                    bias_initializer=initializers.serialize(self.bias_initializer),
                    bias_regularizer=regularizers.serialize(self.bias_regularizer))


class Conv2D(_ConvBase):
    """y = activation(conv2d(x, kernel) + bias), NHWC. padding 'valid' or 'same'."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self._kernel_args(filters, kernel_initializer, kernel_regularizer)
        self._constraint_args(kernel_constraint, bias_constraint)
        self._init_geometry(kernel_size, strides, padding, data_format, dilation_rate,
                            activation, use_bias, bias_initializer, bias_regularizer)
        self.groups = positive_int(groups, "groups", self.name)
        if self.filters % self.groups:
            raise ValueError(f"{self.name}: filters {self.filters} must be a multiple of groups "
                             f"{self.groups}")

    def check_input_shape(self, s):
        if len(s) != 4 or s[3] is None:
            raise ValueError(f"layer {self.name!r} (Conv2D) needs input (batch, height, width, "
                             f"channels), got {fmt_shape(s)}")
        if s[3] % self.groups:
            raise ValueError(f"layer {self.name!r} (Conv2D): {s[3]} input channels of "
                             f"{fmt_shape(s)} are not a multiple of groups {self.groups}")
        if not _known_positive(self._out_hw(s)):
            raise ValueError(f"layer {self.name!r} (Conv2D): input {fmt_shape(s)} is smaller than "
                             f"the kernel {self.kernel_size} (dilation {self.dilation_rate}) with "
                             f"padding='valid'")

    def _out_hw(self, s):
        return tuple(conv_out_dim(s[1 + i], self.kernel_size[i], self.strides[i],
                                  self.dilation_rate[i], self.padding) for i in range(2))

    def weight_specs(self, s):
        specs = [("kernel", self.kernel_size + (s[3] // self.groups, self.filters),
                  self.kernel_initializer, self.kernel_regularizer)]
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

    def _group_slices(self):
        """Per group: (input channel slice, filter slice); group g sees channels
        [g*Cin/G, (g+1)*Cin/G) and makes filters [g*F/G, (g+1)*F/G) (Keras's layout)."""
        cg, fg = self.kernel.shape[2], self.filters // self.groups
        return [(slice(g * cg, (g + 1) * cg), slice(g * fg, (g + 1) * fg))
                for g in range(self.groups)]

    def forward(self, x, training=False, need_ctx=False, logits=False):
        x = as_f32(x)
        check_dynamic_shape(self, x.shape)
        relu = self.activation == "relu" and not logits
        if self.groups > 1:  # one conv per group on the same kernels
            parts = [_core.conv2d_forward(np.ascontiguousarray(x[..., ci]),
                                          np.ascontiguousarray(self.kernel[..., fo]),
                                          None if self.bias is None else
                                          np.ascontiguousarray(self.bias[fo]),
                                          self.strides, self.padding == "same",
                                          self.dilation_rate, relu, False)
                     for ci, fo in self._group_slices()]
            z = np.concatenate(parts, axis=-1)
            out, act = self._activate(z, logits, fused_relu=relu)
            return out, ((x, act) if need_ctx else None)
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
        if self.groups > 1:
            dws, dbs, dxs = [], [], []
            for ci, fo in self._group_slices():
                r = _ops.conv2d_backward(
                    np.ascontiguousarray(dz[..., fo]), np.ascontiguousarray(x[..., ci]),
                    np.ascontiguousarray(self.kernel[..., fo]),
                    y=None if y is None else np.ascontiguousarray(y[..., fo]), activation=a,
                    need_dx=need_input_grad, has_bias=self.use_bias, **self._geom())
                dxs.append(r[0])
                dws.append(r[1])
                dbs.append(r[2])
            self._add_grad(0, np.concatenate(dws, axis=-1))
            if self.use_bias:
                self._add_grad(1, np.concatenate(dbs))
            return np.concatenate(dxs, axis=-1) if need_input_grad else None
        dx, dw, db = _ops.conv2d_backward(dz, x, self.kernel, y=y, activation=a,
                                          need_dx=need_input_grad, has_bias=self.use_bias,
                                          **self._geom())
        self._add_grad(0, dw)
        if self.use_bias:
            self._add_grad(1, db)
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(**self._kernel_cfg(), **self._geom_cfg(), groups=self.groups)
        return cfg


class Conv1D(_ConvBase):
    """y = activation(conv1d(x, kernel) + bias), x (N, L, C), kernel (K, Cin, F).
    padding 'valid', 'same' or 'causal' (left-padded by dilation_rate*(K-1), so output t sees
    inputs <= t only). Stride 1, undilated, kernel size 2..7 and channels where it pays
    (_core.conv1d_uses_winograd: C >= 16, F >= 32, C*F >= 2048): its own kernels, a 1-D Winograd forward and input gradient and a
    weight gradient as one GEMM on the padded batch (csrc/kernels/conv1d.hpp). Otherwise the Conv2D
    kernels with x viewed as (N, 1, L, C): exact, since a height-1 kernel on a height-1 input needs
    no padding along that axis."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self._kernel_args(filters, kernel_initializer, kernel_regularizer)
        self._constraint_args(kernel_constraint, bias_constraint)
        self._init_geometry(kernel_size, strides, padding, data_format, dilation_rate,
                            activation, use_bias, bias_initializer, bias_regularizer, rank=1)
        if groups != 1:
            raise ValueError(f"{self.name}: groups != 1 is not supported")

    def _causal_pad(self):
        return self.dilation_rate[0] * (self.kernel_size[0] - 1) if self.padding == "causal" else 0

    def _out_len(self, n):
        pad = "same" if self.padding == "same" else "valid"
        return None if n is None else conv_out_dim(n + self._causal_pad(), self.kernel_size[0], self.strides[0],
                            self.dilation_rate[0], pad)

    def check_input_shape(self, s):
        if len(s) != 3 or s[2] is None:
            raise ValueError(f"layer {self.name!r} (Conv1D) needs input (batch, steps, channels), "
                             f"got {fmt_shape(s)}")
        if not _known_positive([self._out_len(s[1])]):
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
        if self._out_len(x.shape[1]) <= 0:  # (any call: its length may differ from the build's)
            raise ValueError(f"layer {self.name!r} (Conv1D): input {x.shape} is shorter than "
                             f"the kernel {self.kernel_size[0]} (dilation "
                             f"{self.dilation_rate[0]}) with padding='valid'")
        relu = self.activation == "relu" and not logits
        if self._own_kernel():
            z = _core.conv1d_forward(x, self.kernel, self.bias, self.padding, relu)
            out, act = self._activate(z, logits, fused_relu=relu)
            return out, ((x, act) if need_ctx else None)
        pad = self._causal_pad()
        if pad:
            x = np.pad(x, ((0, 0), (pad, 0), (0, 0)))
        x4 = x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])
        k4 = self.kernel.reshape((1,) + self.kernel.shape)
        z = _core.conv2d_forward(x4, k4, self.bias, (1, self.strides[0]),
                                 self.padding == "same", (1, self.dilation_rate[0]), relu, False)
        z = z.reshape(z.shape[0], z.shape[2], z.shape[3])
        out, act = self._activate(z, logits, fused_relu=relu)
        return out, ((x4, act) if need_ctx else None)

    def _own_kernel(self):
        k, c, f = self.kernel.shape
        return (self.strides[0] == 1 and self.dilation_rate[0] == 1
                and _core.conv1d_uses_winograd(k, c, f))

    def backward(self, ctx, dy, need_input_grad=True):
        x4, act = ctx
        if x4.ndim == 3:  # forward ran on the Conv1D kernels
            relu = self.activation == "relu" and not act[1]
            dz = as_f32(dy if relu else self._activation_grad(act, dy))
            dx, dw, db = _core.conv1d_backward(dz, x4, self.kernel, act[0] if relu else None,
                                               self.padding, relu, need_input_grad, self.use_bias)
            self._add_grad(0, dw)
            if self.use_bias:
                self._add_grad(1, db)
            return dx
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
        cfg.update(**self._kernel_cfg(), **self._geom_cfg())
        return cfg


Convolution1D = Conv1D


def _geom_1axis(n, k, s, d, padding):
    """(out, pad_before, pad_after) of one axis, TF's rule ('same': pad_before = total // 2)."""
    eff = d * (k - 1) + 1
    if padding == "same":
        out = -(-n // s)
        total = max((out - 1) * s + eff - n, 0)
        return out, total // 2, total - total // 2
    return ((n - eff) // s + 1 if n >= eff else 0), 0, 0


class Conv2DTranspose(_ConvBase):
    """The transpose (input gradient) of a Conv2D: x (N, H, W, Cin), kernel (KH, KW, filters,
    Cin) as Keras -> (N, OH, OW, filters) with OH = H*s ('same') or H*s + max(KH_eff - s, 0)
    ('valid'). Runs on the Conv2D kernels: forward = conv input-gradient, backward = conv
    forward (dx) and conv weight-gradient (dkernel)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self._kernel_args(filters, kernel_initializer, kernel_regularizer)
        self._constraint_args(kernel_constraint, bias_constraint)
        if output_padding is not None:
            raise ValueError(f"{self.name}: output_padding is not supported")
        self._init_geometry(kernel_size, strides, padding, data_format, dilation_rate,
                            activation, use_bias, bias_initializer, bias_regularizer)

    def _out_hw(self, s):
        out = []
        for i in range(2):
            k = self.dilation_rate[i] * (self.kernel_size[i] - 1) + 1
            st = self.strides[i]
            out.append(None if s[1 + i] is None else
                       s[1 + i] * st + (max(k - st, 0) if self.padding == "valid" else 0))
        return tuple(out)

    def check_input_shape(self, s):
        self._need4(s)

    def weight_specs(self, s):
        specs = [("kernel", self.kernel_size + (self.filters, s[3]), self.kernel_initializer,
                  self.kernel_regularizer)]
        if self.use_bias:
            specs.append(("bias", (self.filters,), self.bias_initializer, self.bias_regularizer))
        return specs

    def compute_output_shape(self, s):
        return (s[0],) + self._out_hw(s) + (self.filters,)

    def _on_built(self):
        self.kernel = self.weights[0]
        self.bias = self.weights[1] if self.use_bias else None

    def _conv_geom(self):
        return dict(strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate)

    def forward(self, x, training=False, need_ctx=False, logits=False):
        x = self._check_x(x, self.kernel.shape[3])
        oh, ow = self._out_hw(x.shape)
        # The conv this is the transpose of maps (N, OH, OW, filters) -> x's shape; its input
        # gradient at dy = x is our output. (The kernel also forms a weight gradient of zeros.)
        ghost = np.zeros((x.shape[0], oh, ow, self.filters), np.float32)
        z, _, _ = _ops.conv2d_backward(x, ghost, self.kernel, need_dx=True, has_bias=False,
                                       **self._conv_geom())
        if self.use_bias:
            z += self.bias
        out, act = self._activate(z, logits)
        return out, ((x, act) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        x, act = ctx
        dz = as_f32(self._activation_grad(act, dy))
        _, dw, _ = _ops.conv2d_backward(x, dz, self.kernel, need_dx=False, has_bias=False,
                                        **self._conv_geom())
        self._add_grad(0, dw)
        if self.use_bias:
            self._add_grad(1, dz.sum(axis=(0, 1, 2), dtype=np.float64).astype(np.float32))
        if not need_input_grad:
            return None
        return _core.conv2d_forward(dz, self.kernel, None, self.strides, self.padding == "same",
                                    self.dilation_rate, False, False)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(**self._kernel_cfg(), output_padding=None, **self._geom_cfg())
        return cfg


def _depthwise_backward(layer, dz, x, need_dx, has_bias):
    """(dx or None, dk, db or None) of the C++ depthwise kernel, before the activation."""
    return _core.depthwise2d_backward(dz, x, layer.depthwise_kernel, layer.strides,
                                      layer.padding == "same", layer.dilation_rate, need_dx,
                                      has_bias)


class DepthwiseConv2D(_ConvBase):
    """Each input channel convolved with its own depth_multiplier filters: depthwise_kernel
    (KH, KW, C, depth_multiplier) -> C*depth_multiplier channels (the C++ depthwise2d kernels:
    forward with bias and ReLU fused, backward dx, dk and db in one call)."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, depthwise_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier", self.name)
        self._init_geometry(kernel_size, strides, padding, data_format, dilation_rate,
                            activation, use_bias, bias_initializer, bias_regularizer)
        self.depthwise_initializer = check_initializer(depthwise_initializer)
        self.depthwise_regularizer = check_regularizer(depthwise_regularizer)
        where = f"layer {self.name!r} ({type(self).__name__})"
        self.depthwise_constraint = check_constraint(depthwise_constraint, where,
                                                     "depthwise_constraint")
        self.bias_constraint = check_constraint(bias_constraint, where, "bias_constraint")

    def _out_hw(self, s):
        return tuple(None if s[1 + i] is None else
                     _geom_1axis(s[1 + i], self.kernel_size[i], self.strides[i],
                                 self.dilation_rate[i], self.padding)[0] for i in range(2))

    def check_input_shape(self, s):
        self._need4(s)
        if not _known_positive(self._out_hw(s)):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): input {fmt_shape(s)} "
                             f"is smaller than the kernel {self.kernel_size} (dilation "
                             f"{self.dilation_rate}) with padding='valid'")

    def _out_channels(self, c):
        return c * self.depth_multiplier

    def weight_specs(self, s):
        specs = [("depthwise_kernel", self.kernel_size + (s[3], self.depth_multiplier),
                  self.depthwise_initializer, self.depthwise_regularizer)]
        if self.use_bias:
            specs.append(("bias", (s[3] * self.depth_multiplier,), self.bias_initializer,
                          self.bias_regularizer))
        return specs

    def compute_output_shape(self, s):
        return (s[0],) + self._out_hw(s) + (self._out_channels(s[3]),)

    def _on_built(self):
        self.depthwise_kernel = self.weights[0]
        self.bias = self.weights[1] if self.use_bias else None

    def forward(self, x, training=False, need_ctx=False, logits=False):
        x = self._check_x(x, self.depthwise_kernel.shape[2])
        relu = self.activation == "relu" and not logits
        z = _core.depthwise2d_forward(x, self.depthwise_kernel, self.bias, self.strides,
                                      self.padding == "same", self.dilation_rate, relu)
        out, act = self._activate(z, logits, fused_relu=relu)
        return out, ((x, act) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        x, act = ctx
        dz = as_f32(self._activation_grad(act, dy))
        dx, dk, db = _depthwise_backward(self, dz, x, need_input_grad, self.use_bias)
        self._add_grad(0, dk)
        if self.use_bias:
            self._add_grad(1, db)
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(depth_multiplier=self.depth_multiplier, **self._geom_cfg(),
                   depthwise_initializer=initializers.serialize(self.depthwise_initializer),
                   depthwise_regularizer=regularizers.serialize(self.depthwise_regularizer),
                   depthwise_constraint=constraints.serialize(self.depthwise_constraint),
                   bias_constraint=constraints.serialize(self.bias_constraint))
        return cfg


class SeparableConv2D(DepthwiseConv2D):
    """DepthwiseConv2D (no bias) then a 1x1 Conv2D to `filters` (pointwise_kernel
    (1, 1, C*depth_multiplier, filters)), bias, activation."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding,
                         depth_multiplier=depth_multiplier, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         depthwise_initializer=depthwise_initializer,
                         bias_initializer=bias_initializer,
                         depthwise_regularizer=depthwise_regularizer,
                         bias_regularizer=bias_regularizer,
                         depthwise_constraint=depthwise_constraint,
                         bias_constraint=bias_constraint, **kwargs)
        self.filters = positive_int(filters, "filters", self.name)
        self.pointwise_initializer = check_initializer(pointwise_initializer)
        self.pointwise_regularizer = check_regularizer(pointwise_regularizer)
        self.pointwise_constraint = check_constraint(
            pointwise_constraint, f"layer {self.name!r} (SeparableConv2D)", "pointwise_constraint")

    def _out_channels(self, c):
        return self.filters

    def weight_specs(self, s):
        cm = s[3] * self.depth_multiplier
        specs = [("depthwise_kernel", self.kernel_size + (s[3], self.depth_multiplier),
                  self.depthwise_initializer, self.depthwise_regularizer),
                 ("pointwise_kernel", (1, 1, cm, self.filters), self.pointwise_initializer,
                  self.pointwise_regularizer)]
        if self.use_bias:
            specs.append(("bias", (self.filters,), self.bias_initializer, self.bias_regularizer))
        return specs

    def _on_built(self):
        self.depthwise_kernel, self.pointwise_kernel = self.weights[0], self.weights[1]
        self.bias = self.weights[2] if self.use_bias else None

    def forward(self, x, training=False, need_ctx=False, logits=False):
        x = self._check_x(x, self.depthwise_kernel.shape[2])
        d = _core.depthwise2d_forward(x, self.depthwise_kernel, None, self.strides,
                                      self.padding == "same", self.dilation_rate, False)
        z = _core.conv2d_forward(d, self.pointwise_kernel, self.bias, (1, 1), False, (1, 1),
                                 False, False)
        out, act = self._activate(z, logits)
        return out, ((x, d, act) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        x, d, act = ctx
        dz = as_f32(self._activation_grad(act, dy))
        dd, dpw, db = _ops.conv2d_backward(dz, d, self.pointwise_kernel, need_dx=True,
                                           has_bias=self.use_bias)
        dx, dk, _ = _depthwise_backward(self, dd, x, need_input_grad, False)
        self._add_grad(0, dk)
        self._add_grad(1, dpw)
        if self.use_bias:
            self._add_grad(2, db)
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(filters=self.filters,
                   pointwise_initializer=initializers.serialize(self.pointwise_initializer),
                   pointwise_regularizer=regularizers.serialize(self.pointwise_regularizer),
                   pointwise_constraint=constraints.serialize(self.pointwise_constraint))
        return cfg


Convolution2DTranspose = Conv2DTranspose
SeparableConvolution2D = SeparableConv2D
