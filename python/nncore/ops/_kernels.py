"""The kernel functions nncore.ops uses: the one place that names the raw kernel package, so
moving it (nncore.ops -> nncore.kernels) changes only the import below."""

from __future__ import annotations

import numpy as np

from .. import _core
from ..kernels import conv as _conv
from ..kernels import pool as _pool

_F32 = np.float32


def gemm(a, b, transpose_a=False, transpose_b=False):
    """op(a) @ op(b) for 2-D float32 arrays on nncore's GEMM (bitwise equal for any thread
    count). A transposed operand is read in place when the other order is contiguous."""
    if transpose_a:
        a = a.T
    if transpose_b:
        b = b.T
    m, k = a.shape
    k2, n = b.shape
    if k != k2:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    ta = not a.flags.c_contiguous
    if ta:
        if a.flags.f_contiguous:
            a = a.T
        else:
            a, ta = np.ascontiguousarray(a), False
    tb = not b.flags.c_contiguous
    if tb:
        if b.flags.f_contiguous:
            b = b.T
        else:
            b, tb = np.ascontiguousarray(b), False
    out = np.empty((m, n), _F32)
    if m and n:
        if k == 0:
            out.fill(0)
        else:
            _core.sgemm(out, a, b, ta, tb, 1.0, 0.0, None, False)
    return out


def gemm_bias(x, w, b, relu):
    """x @ w + b (then ReLU when asked) in one GEMM with the fused epilogue (x, w float32 2-D,
    x C-contiguous or copied)."""
    x = np.ascontiguousarray(x, dtype=_F32)
    w = np.ascontiguousarray(w, dtype=_F32)
    b = np.ascontiguousarray(b, dtype=_F32)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"matmul: shapes {x.shape} and {w.shape} do not align")
    out = np.empty((x.shape[0], w.shape[1]), _F32)
    if out.size:
        if x.shape[1] == 0:
            out[...] = np.maximum(b, 0) if relu else b
        else:
            _core.sgemm(out, x, w, False, False, 1.0, 0.0, b, bool(relu))
    return out


def conv2d(x, w, strides, padding, dilation_rate):
    return _conv.conv2d(x, w, None, strides=strides, padding=padding,
                        dilation_rate=dilation_rate)


def conv2d_backward(dy, x, w, strides, padding, dilation_rate, need_dx=True):
    dx, dw, _ = _conv.conv2d_backward(np.ascontiguousarray(dy, _F32), x, w, strides=strides,
                                      padding=padding, dilation_rate=dilation_rate,
                                      need_dx=need_dx, has_bias=False)
    return dx, dw


def max_pool(x, pool_size, strides, padding):
    return _pool.max_pool2d(x, pool_size, strides, padding)


def max_pool_backward(dy, argmax, input_shape, pool_size=None, strides=None, padding="valid"):
    return _pool.max_pool2d_backward(np.ascontiguousarray(dy, _F32), argmax, input_shape,
                                     pool_size, strides, padding)


def avg_pool(x, pool_size, strides, padding):
    return _pool.avg_pool2d(x, pool_size, strides, padding)


def avg_pool_backward(dy, input_shape, pool_size, strides, padding):
    return _pool.avg_pool2d_backward(np.ascontiguousarray(dy, _F32), input_shape, pool_size,
                                     strides, padding)
