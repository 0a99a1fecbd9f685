"""2-D convolution, NHWC, Keras layouts: x (N,H,W,C), w (KH,KW,C,F), b (F,) -> y (N,OH,OW,F).

    y[n,i,j,f] = act(b[f] + sum_{kh,kw,c} xpad[n, i*sh + kh*dh, j*sw + kw*dw, c] * w[kh,kw,c,f])

where xpad is x zero-padded as Keras/TF do: 'valid' pads nothing; 'same' gives OH = ceil(H/sh) and
pads pad_total = max((OH-1)*sh + (KH-1)*dh + 1 - H, 0) rows, pad_total//2 at the top and the rest
at the bottom (likewise for the width). Computed as im2col + one GEMM per batch tile, with the bias
and ReLU fused; results are bitwise identical for any thread count.
"""

from __future__ import annotations

import numpy as np

from .. import _core

__all__ = ["conv2d_output_shape", "conv2d", "conv2d_backward"]

_ACTIVATIONS = (None, "relu")


_MAX_PARAM = 2**31 - 1  # strides, kernel/pool sizes, dilations: as the layers (MAX_DIM)


def _pair(value, name: str, where: str, limit: int | None = _MAX_PARAM) -> tuple:
    """An int or a pair of ints in [1, limit] as a 2-tuple (bools are rejected). The limit keeps
    the kernels' geometry far from int64 overflow; None for sizes that have no such cap."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"{where}: {name} must be >= 1, got {value!r}")
    if limit is not None and max(pair) > limit:
        raise ValueError(f"{where}: {name} must be <= {limit}, got {value!r}")
    return pair


def _padding(padding, where: str) -> bool:
    """True for 'same', False for 'valid' (case-insensitive, as Keras)."""
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"{where}: padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower() == "same"


def _activation(activation, where: str) -> bool:
    if activation not in _ACTIVATIONS:
        raise ValueError(f"{where}: activation must be None or 'relu', got {activation!r}")
    return activation == "relu"


def _f32(x, name: str, ndim: int, where: str) -> np.ndarray:
    # Fast path for what layers pass every step: float32 C-contiguous arrays go through untouched.
    if type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous:
        arr = x
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{where}: {name} must be a real numeric array, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.ndim != ndim:
        raise ValueError(f"{where}: {name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def conv2d_output_shape(in_hw, kernel_size, strides=(1, 1), padding="valid",
                        dilation_rate=(1, 1)) -> tuple:
    """(OH, OW) of a convolution of an (H, W) input: 'valid' (H - (KH-1)*dh - 1)//sh + 1,
    'same' ceil(H / sh). ValueError if the dilated kernel is larger than the input with 'valid'."""
    where = "conv2d_output_shape"
    h, w = _pair(in_hw, "in_hw", where, limit=None)
    kh, kw = _pair(kernel_size, "kernel_size", where)
    sh, sw = _pair(strides, "strides", where)
    dh, dw = _pair(dilation_rate, "dilation_rate", where)
    return _out_hw((h, w), (kh, kw), (sh, sw), _padding(padding, where), (dh, dw), where)


def _out_hw(in_hw, kernel, strides, same, dilation, where) -> tuple:
    """(OH, OW) from the one geometry function (C++), which the kernels' bindings use too."""
    try:
        return tuple(_core.conv2d_geometry(in_hw, kernel, strides, same, dilation)[0])
    except ValueError as e:
        raise ValueError(f"{where}: {str(e).removeprefix('conv2d: ')}") from None


def _check_shapes(x, w, where):
    if w.shape[2] != x.shape[3]:
        raise ValueError(f"{where}: w has shape {w.shape} (Cin={w.shape[2]}) but x has shape "
                         f"{x.shape} (C={x.shape[3]})")
    if min(x.shape[1:]) < 1 or min(w.shape) < 1:
        raise ValueError(f"{where}: empty dimension in x {x.shape} or w {w.shape}")


def conv2d(x, w, b=None, *, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
           activation=None):
    """y = act(conv(x, w) + b) (see the module docstring). x (N,H,W,C), w (KH,KW,C,F), b (F,) or
    None, activation None or 'relu'. Returns a new float32 array (N,OH,OW,F)."""
    where = "conv2d"
    x = _f32(x, "x", 4, where)
    w = _f32(w, "w", 4, where)
    _check_shapes(x, w, where)
    if b is not None:
        b = _f32(b, "b", 1, where)
        if b.shape[0] != w.shape[3]:
            raise ValueError(f"{where}: b has shape {b.shape}, expected ({w.shape[3]},) for w "
                             f"{w.shape}")
    st = _pair(strides, "strides", where)
    dil = _pair(dilation_rate, "dilation_rate", where)
    same = _padding(padding, where)
    relu = _activation(activation, where)
    return _core.conv2d_forward(x, w, b, st, same, dil, relu)


def conv2d_backward(dy, x, w, *, y=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
                    activation=None, need_dx=True, has_bias=True):
    """Gradients of conv2d given dy = dL/dy (N,OH,OW,F): returns (dx or None, dw, db or None).

    With activation='relu', pass the forward output `y`; the gradient is masked by y > 0 inside the
    kernel (dz = dy * (y > 0)). Then db = sum_{n,i,j} dz, dw = Pᵀ @ dz (P the im2col patches of x),
    dx = col2im(dz @ Wᵀ). need_dx=False skips dx (a first layer), has_bias=False skips db.
    dw and db are bitwise identical for any thread count.
    """
    where = "conv2d_backward"
    x = _f32(x, "x", 4, where)
    w = _f32(w, "w", 4, where)
    dy = _f32(dy, "dy", 4, where)
    _check_shapes(x, w, where)
    st = _pair(strides, "strides", where)
    dil = _pair(dilation_rate, "dilation_rate", where)
    same = _padding(padding, where)
    relu = _activation(activation, where)
    oh, ow = _out_hw(x.shape[1:3], w.shape[:2], st, same, dil, where)
    expect = (x.shape[0], oh, ow, w.shape[3])
    if dy.shape != expect:
        raise ValueError(f"{where}: dy has shape {dy.shape}, expected {expect} for x {x.shape} "
                         f"and w {w.shape}")
    if relu:
        if y is None:
            raise ValueError(f"{where}: activation='relu' needs y, the forward output")
        y = _f32(y, "y", 4, where)
        if y.shape != expect:
            raise ValueError(f"{where}: y has shape {y.shape}, expected {expect}")
    else:
        y = None
    return _core.conv2d_backward(dy, x, w, y, st, same, dil, relu, bool(need_dx), bool(has_bias))
