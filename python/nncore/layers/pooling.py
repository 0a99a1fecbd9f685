"""MaxPooling2D and AveragePooling2D, NHWC."""

from __future__ import annotations

from .. import _core
from .. import ops as _ops
from .base import Layer, as_f32, fmt_shape, int_tuple
from .conv import check_data_format, check_padding


def pool_out_dim(n, k, s, padding):
    if padding == "same":
        return -(-n // s)
    return (n - k) // s + 1 if n >= k else 0


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
        if len(s) != 4 or any(d is None for d in s[1:]):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) needs input (batch, "
                             f"height, width, channels), got {fmt_shape(s)}")
        oh, ow = self._out_hw(s)
        if oh <= 0 or ow <= 0:
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
        y, argmax = _core.maxpool2d_forward(x, self.pool_size, self.strides, self.padding == "same")
        return y, ((argmax, x.shape) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return _ops.max_pool2d_backward(dy, ctx[0], ctx[1])


class AveragePooling2D(_Pool2D):
    """y = mean over each pool window (with 'same', over the in-bounds part)."""

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        y = _ops.avg_pool2d(x, self.pool_size, self.strides, self.padding)
        return y, (x.shape if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return _ops.avg_pool2d_backward(dy, ctx, self.pool_size, self.strides, self.padding)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
