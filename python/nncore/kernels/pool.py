"""2-D max and average pooling, NHWC: x (N,H,W,C) -> y (N,OH,OW,C).

Windows of pool_size (PH, PW) every strides (default: pool_size). 'valid': OH = (H - PH)//SH + 1;
'same': OH = ceil(H / SH) with pad_total = max((OH-1)*SH + PH - H, 0), pad_total//2 on top and the
rest at the bottom, as Keras/TF. Padded cells never take part: max pooling ignores them and average
pooling divides by the number of cells inside the input.

Max pooling returns argmax (N,OH,OW,C) int32: the flat index h*W + w of the maximum in the input
plane. Ties go to the FIRST maximum in row-major window order (its gradient goes there only). A
NaN anywhere in a window makes that output NaN, as PyTorch, with argmax at the window's first NaN.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .conv import _f32, _pair, _padding

__all__ = ["pool2d_output_shape", "max_pool2d", "max_pool2d_backward", "avg_pool2d",
           "avg_pool2d_backward"]


def _geometry(in_hw, pool_size, strides, padding, where):
    pool = _pair(pool_size, "pool_size", where)
    st = pool if strides is None else _pair(strides, "strides", where)
    same = _padding(padding, where)
    try:  # the one geometry function (C++), shared with the kernels' bindings
        out = tuple(_core.pool2d_geometry(tuple(in_hw), pool, st, same)[0])
    except ValueError as e:
        raise ValueError(f"{where}: {str(e).removeprefix('pool2d: ')}") from None
    return pool, st, same, out


def pool2d_output_shape(in_hw, pool_size, strides=None, padding="valid") -> tuple:
    """(OH, OW) of pooling an (H, W) input; strides default to pool_size."""
    where = "pool2d_output_shape"
    in_hw = _pair(in_hw, "in_hw", where, limit=None)
    return _geometry(in_hw, pool_size, strides, padding, where)[3]


def _input_shape(shape, where) -> tuple:
    if not isinstance(shape, (tuple, list)) or len(shape) != 4 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shape
    ):
        raise TypeError(f"{where}: input_shape must be 4 ints (N,H,W,C), got {shape!r}")
    shape = tuple(int(v) for v in shape)
    if shape[0] < 0 or min(shape[1:]) < 1:
        raise ValueError(f"{where}: input_shape must have N >= 0 and H, W, C >= 1, got {shape}")
    return shape


def _check_x(x, where):
    x = _f32(x, "x", 4, where)
    if min(x.shape[1:]) < 1:
        raise ValueError(f"{where}: x must have H, W, C >= 1, got shape {x.shape}")
    return x


def max_pool2d(x, pool_size, strides=None, padding="valid"):
    """(y, argmax): y[n,i,j,c] = max over the window of x[n,:,:,c]; argmax int32 (h*W + w)."""
    where = "max_pool2d"
    x = _check_x(x, where)
    pool, st, same, _ = _geometry(x.shape[1:3], pool_size, strides, padding, where)
    return tuple(_core.maxpool2d_forward(x, pool, st, same))


def max_pool2d_backward(dy, argmax, input_shape, pool_size=None, strides=None, padding="valid"):
    """dx (input_shape) with dx[n, argmax[n,i,j,c], c] += dy[n,i,j,c] for every output cell.

    pool_size (with strides and padding, as the max_pool2d call that made argmax) is optional:
    given, dy must have that pooling's output shape, and disjoint windows (strides >= pool_size)
    write dx in one pass instead of zeroing it and adding dy in; the result is the same."""
    where = "max_pool2d_backward"
    shape = _input_shape(input_shape, where)
    geometry = ()
    if pool_size is not None:
        pool, st, same, _ = _geometry(shape[1:3], pool_size, strides, padding, where)
        geometry = (pool, st, same)
    dy = _f32(dy, "dy", 4, where)
    argmax = np.asarray(argmax)
    if argmax.dtype != np.int32:
        raise TypeError(f"{where}: argmax must be int32 (as max_pool2d returns), got "
                        f"{argmax.dtype}")
    if argmax.shape != dy.shape:
        raise ValueError(f"{where}: argmax has shape {argmax.shape}, dy has shape {dy.shape}")
    if dy.shape[0] != shape[0] or dy.shape[3] != shape[3]:
        raise ValueError(f"{where}: dy has shape {dy.shape}, which does not match input_shape "
                         f"{shape} in batch or channels")
    return _core.maxpool2d_backward(dy, np.ascontiguousarray(argmax), list(shape), *geometry)


def avg_pool2d(x, pool_size, strides=None, padding="valid"):
    """y[n,i,j,c] = mean of x[n,:,:,c] over the window's cells inside the input."""
    where = "avg_pool2d"
    x = _check_x(x, where)
    pool, st, same, _ = _geometry(x.shape[1:3], pool_size, strides, padding, where)
    return _core.avgpool2d_forward(x, pool, st, same)


def avg_pool2d_backward(dy, input_shape, pool_size, strides=None, padding="valid"):
    """dx (input_shape): each dy[n,i,j,c] / count spread evenly over its window's valid cells."""
    where = "avg_pool2d_backward"
    shape = _input_shape(input_shape, where)
    dy = _f32(dy, "dy", 4, where)
    pool, st, same, (oh, ow) = _geometry(shape[1:3], pool_size, strides, padding, where)
    expect = (shape[0], oh, ow, shape[3])
    if dy.shape != expect:
        raise ValueError(f"{where}: dy has shape {dy.shape}, expected {expect} for input_shape "
                         f"{shape}")
    return _core.avgpool2d_backward(dy, list(shape), pool, st, same)
