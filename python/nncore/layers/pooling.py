"""Pooling, channels last: MaxPooling1D/2D, AveragePooling1D/2D (windows on the C++ kernels; the
1-D ones view (N, L, C) as (N, 1, L, C)) and the global poolings (NumPy reductions)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .. import kernels as _ops
from .base import Layer, _known_positive, as_f32, check_dynamic_shape, fmt_shape, int_tuple
from .conv import check_data_format, check_padding


def pool_out_dim(n, k, s, padding):
    """Output length of one axis, from the one geometry function the kernels use (C++);
    0 when the window does not fit a 'valid' input."""
    if n is None:
        return None  # an axis of unknown length
    try:
        return _core.pool2d_geometry((n, 1), (k, 1), (s, 1), padding == "same")[0][0]
    except ValueError:
        return 0


class _Pool2D(Layer):
    _kind = ""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        w = self.name
        self.pool_size = int_tuple(pool_size, 2, "pool_size", w)
        self.strides = self.pool_size if strides is None else int_tuple(strides, 2, "strides", w)
        self.padding = check_padding(padding, w)
        check_data_format(data_format, w)

    def _out_hw(self, s):
        return tuple(pool_out_dim(s[1 + i], self.pool_size[i], self.strides[i], self.padding)
                     for i in range(2))

    def check_input_shape(self, s):
        if len(s) != 4 or s[3] is None:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) needs input (batch, "
                             f"height, width, channels), got {fmt_shape(s)}")
        if not _known_positive(self._out_hw(s)):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): input {fmt_shape(s)} "
                             f"is smaller than pool_size {self.pool_size}")

    def compute_output_shape(self, s):
        return (s[0],) + self._out_hw(s) + (s[3],)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(pool_size=list(self.pool_size), strides=list(self.strides),
                   padding=self.padding)
        return cfg


class MaxPooling2D(_Pool2D):
    """y = max over each pool window (argmax kept for backward)."""

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        check_dynamic_shape(self, x.shape)
        y, argmax = _core.maxpool2d_forward(x, self.pool_size, self.strides, self.padding == "same")
        return y, ((argmax, x.shape) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        # The layer's own (checked) geometry straight to the kernel, as forward does: disjoint
        # windows then write dx in one pass.
        return _core.maxpool2d_backward(np.ascontiguousarray(dy, np.float32), ctx[0],
                                        list(ctx[1]), self.pool_size, self.strides,
                                        self.padding == "same")


class AveragePooling2D(_Pool2D):
    """y = mean over each pool window (with 'same', over the in-bounds part)."""

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        check_dynamic_shape(self, x.shape)
        y = _ops.avg_pool2d(x, self.pool_size, self.strides, self.padding)
        return y, (x.shape if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return _ops.avg_pool2d_backward(dy, ctx, self.pool_size, self.strides, self.padding)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class _Pool1D(Layer):
    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        w = self.name
        self.pool_size = int_tuple(pool_size, 1, "pool_size", w)
        self.strides = self.pool_size if strides is None else int_tuple(strides, 1, "strides", w)
        self.padding = check_padding(padding, w)
        check_data_format(data_format, w)

    def _out_len(self, n):
        return pool_out_dim(n, self.pool_size[0], self.strides[0], self.padding)

    def check_input_shape(self, s):
        if len(s) != 3 or s[2] is None:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) needs input (batch, "
                             f"steps, channels), got {fmt_shape(s)}")
        if not _known_positive([self._out_len(s[1])]):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): input {fmt_shape(s)} "
                             f"is shorter than pool_size {self.pool_size[0]}")

    def compute_output_shape(self, s):
        return (s[0], self._out_len(s[1]), s[2])

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        if x.ndim != 3:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) expects input (batch, "
                             f"steps, channels), got shape {x.shape}")
        check_dynamic_shape(self, x.shape)
        y, ctx = self._forward2d(x.reshape(x.shape[0], 1, x.shape[1], x.shape[2]),
                                                need_ctx)
        return y.reshape(y.shape[0], y.shape[2], y.shape[3]), ctx

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dy = as_f32(dy)
        dx = self._backward2d(ctx, dy.reshape(dy.shape[0], 1, dy.shape[1],
                                                             dy.shape[2]))
        return dx.reshape(dx.shape[0], dx.shape[2], dx.shape[3])

    def get_config(self):
        cfg = super().get_config()
        cfg.update(pool_size=list(self.pool_size), strides=list(self.strides),
                   padding=self.padding)
        return cfg


class MaxPooling1D(_Pool1D):
    """y = max over each window of steps (argmax kept for backward)."""

    def _forward2d(self, x4, need_ctx):
        y, argmax = _core.maxpool2d_forward(x4, (1, self.pool_size[0]), (1, self.strides[0]),
                                            self.padding == "same")
        return y, ((argmax, x4.shape) if need_ctx else None)

    def _backward2d(self, ctx, dy4):
        return _core.maxpool2d_backward(np.ascontiguousarray(dy4), ctx[0], list(ctx[1]),
                                        (1, self.pool_size[0]),
                                        (1, self.strides[0]), self.padding == "same")


class AveragePooling1D(_Pool1D):
    """y = mean over each window of steps (with 'same', over the in-bounds part)."""

    def _forward2d(self, x4, need_ctx):
        y = _ops.avg_pool2d(x4, (1, self.pool_size[0]), (1, self.strides[0]), self.padding)
        return y, (x4.shape if need_ctx else None)

    def _backward2d(self, ctx, dy4):
        return _ops.avg_pool2d_backward(dy4, ctx, (1, self.pool_size[0]), (1, self.strides[0]),
                                        self.padding)


class _GlobalPool(Layer):
    _rank = 1  # spatial axes

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, self.name)
        self.keepdims = bool(keepdims)

    def check_input_shape(self, s):
        if len(s) != self._rank + 2 or s[-1] is None:
            what = "steps" if self._rank == 1 else "height, width"
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) needs input (batch, "
                             f"{what}, channels), got {fmt_shape(s)}")

    def compute_output_shape(self, s):
        if self.keepdims:
            return (s[0],) + (1,) * self._rank + (s[-1],)
        return (s[0], s[-1])

    def _axes(self):
        return tuple(range(1, self._rank + 1))

    def _check(self, x):
        x = as_f32(x)
        if x.ndim != self._rank + 2 or 0 in x.shape[1:]:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) expects a non-empty "
                             f"input of rank {self._rank + 2}, got shape {x.shape}")
        return x

    def get_config(self):
        cfg = super().get_config()
        cfg.update(data_format="channels_last", keepdims=self.keepdims)
        return cfg


class _GlobalAverage(_GlobalPool):
    """y = mean over the spatial axes (1-D: over the unmasked steps when given a mask)."""

    def forward(self, x, training=False, need_ctx=False, mask=None):
        x = self._check(x)
        if mask is not None:
            w = np.asarray(mask, np.float32)[..., None]  # (N, L, 1)
            cnt = np.maximum(w.sum(axis=1, keepdims=True), np.float32(1e-7))
            w = w / cnt
            y = (x * w).sum(axis=1, keepdims=self.keepdims, dtype=np.float32)
            return y, (("masked", w, x.shape) if need_ctx else None)
        y = np.mean(x, axis=self._axes(), keepdims=self.keepdims, dtype=np.float32)
        return y, (x.shape if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        if ctx[0] == "masked":
            _, w, shape = ctx
            return (as_f32(dy).reshape(shape[0], 1, shape[-1]) * w).astype(np.float32)
        shape = ctx
        n = np.float32(np.prod(shape[1:-1]))
        dy = as_f32(dy).reshape((shape[0],) + (1,) * self._rank + (shape[-1],))
        return np.broadcast_to(dy / n, shape).copy()


class _GlobalMax(_GlobalPool):
    """y = max over the spatial axes; the gradient goes to the first maximum."""

    def forward(self, x, training=False, need_ctx=False):
        x = self._check(x)
        y = np.max(x, axis=self._axes(), keepdims=self.keepdims)
        if not need_ctx:
            return y, None
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        return y, (np.argmax(flat, axis=1), x.shape)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        arg, shape = ctx
        n, c = shape[0], shape[-1]
        dx = np.zeros((n, int(np.prod(shape[1:-1])), c), np.float32)
        dy = as_f32(dy).reshape(n, c)
        np.put_along_axis(dx, arg[:, None, :], dy[:, None, :], axis=1)
        return dx.reshape(shape)


class GlobalAveragePooling1D(_GlobalAverage):
    _rank = 1
    _consumes_mask = True


class GlobalAveragePooling2D(_GlobalAverage):
    _rank = 2


class GlobalMaxPooling1D(_GlobalMax):
    _rank = 1


class GlobalMaxPooling2D(_GlobalMax):
    _rank = 2


MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalMaxPool2D = GlobalMaxPooling2D
