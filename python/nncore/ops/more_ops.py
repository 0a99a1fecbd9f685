"""More of Keras's ops (keras.ops): elementwise math and activations, reductions, shape and
index ops, linear algebra helpers and creation functions, with Keras's names and defaults.

Same contract as numpy_ops.py: every op is a forward and, next to it, its backward rule (or none
for integer / boolean results and piecewise-constant functions). Elementwise unary ops are one
table (name -> forward, derivative); ops that are compositions of others (normalize, moments,
vstack, unstack, ...) are written as such and record the nodes of their parts.
"""

from __future__ import annotations

import builtins as _builtins
import math as _math

import numpy as np

from ..layers.node import KerasTensor
from . import numpy_ops as _np_ops
from ._graph import Op, apply
from .numpy_ops import _axis_arg, _expand, _norm_axes, _reshape_b, _shape_arg, _std_dtype

_F32 = np.float32


def _float(x):
    """Integer / boolean inputs of a float-valued op compute in float32 (as Keras's do)."""
    x = np.asarray(x)
    return x if x.dtype.kind in "fc" else x.astype(_F32)


def _plain(fn):
    return lambda *a, **k: (fn(*a, **k), None)


# ---- elementwise unary: name -> (forward(x, **static), d/dx(dy, y, x, **static) or None) --------
_SQRT_2_PI = _math.sqrt(2.0 / _math.pi)
_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _erf(x):
    x = _float(x)
    if x.dtype == np.float64:
        return np.vectorize(_math.erf, otypes=[np.float64])(x) if x.size else x.copy()
    # Chebyshev-fitted erfc (fractional error < 1.2e-7), evaluated in float64.
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (
        0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (
            1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    r = 1.0 - t * np.exp(poly)
    return np.where(x >= 0, r, -r).astype(x.dtype)


def _sig(x):
    return _np_ops._sigmoid(x)


def _softplus(x):
    x = _float(x)
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _gelu(x, approximate=True):
    x = _float(x)
    if approximate:
        return 0.5 * x * (1 + np.tanh(_SQRT_2_PI * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x / np.asarray(_math.sqrt(2.0), x.dtype)))


def _gelu_d(dy, y, x, approximate=True):
    if approximate:
        u = _SQRT_2_PI * (x + 0.044715 * x ** 3)
        t = np.tanh(u)
        du = _SQRT_2_PI * (1 + 3 * 0.044715 * x * x)
        return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
    cdf = 0.5 * (1 + _erf(x / np.asarray(_math.sqrt(2.0), x.dtype)))
    pdf = np.exp(-0.5 * x * x) / _math.sqrt(2 * _math.pi)
    return dy * (cdf + x * pdf)


def _elu(x, alpha=1.0):
    x = _float(x)
    with np.errstate(over="ignore"):
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _hard_sigmoid(x):
    return np.clip(_float(x) / 6 + 0.5, 0, 1)


def _in_open(x, lo, hi):
    return (x > lo) & (x < hi)


_UNARY = {
    "sin": (np.sin, lambda dy, y, x: dy * np.cos(x)),
    "cos": (np.cos, lambda dy, y, x: -dy * np.sin(x)),
    "tan": (np.tan, lambda dy, y, x: dy * (1 + y * y)),
    "arcsin": (np.arcsin, lambda dy, y, x: dy / np.sqrt(1 - x * x)),
    "arccos": (np.arccos, lambda dy, y, x: -dy / np.sqrt(1 - x * x)),
    "arctan": (np.arctan, lambda dy, y, x: dy / (1 + x * x)),
    "sinh": (np.sinh, lambda dy, y, x: dy * np.cosh(x)),
    "cosh": (np.cosh, lambda dy, y, x: dy * np.sinh(x)),
    "arcsinh": (np.arcsinh, lambda dy, y, x: dy / np.sqrt(x * x + 1)),
    "arccosh": (np.arccosh, lambda dy, y, x: dy / np.sqrt(x * x - 1)),
    "arctanh": (np.arctanh, lambda dy, y, x: dy / (1 - x * x)),
    "exp2": (np.exp2, lambda dy, y, x: dy * y * np.asarray(_math.log(2.0), y.dtype)),
    "expm1": (np.expm1, lambda dy, y, x: dy * (y + 1)),
    "log2": (np.log2, lambda dy, y, x: dy / (x * np.asarray(_math.log(2.0), x.dtype))),
    "log10": (np.log10, lambda dy, y, x: dy / (x * np.asarray(_math.log(10.0), x.dtype))),
    "reciprocal": (np.reciprocal, lambda dy, y, x: -dy * y * y),
    "rsqrt": (lambda x: 1 / np.sqrt(x), lambda dy, y, x: -0.5 * dy * y * y * y),
    "erf": (_erf, lambda dy, y, x: dy * (2 / _math.sqrt(_math.pi)) * np.exp(-x * x)),
    "softplus": (_softplus, lambda dy, y, x: dy * _sig(x)),
    "softsign": (lambda x: x / (1 + np.abs(x)), lambda dy, y, x: dy / (1 + np.abs(x)) ** 2),
    "silu": (lambda x: x * _sig(x),
             lambda dy, y, x: dy * (_sig(x) * (1 + x * (1 - _sig(x))))),
    "gelu": (_gelu, _gelu_d),
    "elu": (_elu, lambda dy, y, x, alpha=1.0: dy * np.where(x > 0, 1, y + alpha)),
    "selu": (lambda x: _SELU_SCALE * _elu(x, _SELU_ALPHA),
             lambda dy, y, x: dy * np.where(x > 0, _SELU_SCALE, y + _SELU_SCALE * _SELU_ALPHA)),
    "leaky_relu": (lambda x, negative_slope=0.2: np.where(x > 0, x, negative_slope * x),
                   lambda dy, y, x, negative_slope=0.2: dy * np.where(x > 0, 1,
                                                                     negative_slope)),
    "relu6": (lambda x: np.clip(x, 0, 6), lambda dy, y, x: dy * _in_open(x, 0, 6)),
    "hard_sigmoid": (_hard_sigmoid, lambda dy, y, x: dy * (_in_open(x, -3, 3) / 6)),
    "hard_silu": (lambda x: x * _hard_sigmoid(x),
                  lambda dy, y, x: dy * (_hard_sigmoid(x) + x * (_in_open(x, -3, 3) / 6))),
    "log_sigmoid": (lambda x: -_softplus(-x), lambda dy, y, x: dy * _sig(-x)),
    "copy": (lambda x: np.array(x, copy=True), lambda dy, y, x: dy),
    "cbrt": (np.cbrt, lambda dy, y, x: dy / (3 * y * y)),
    "deg2rad": (np.deg2rad, lambda dy, y, x: dy * np.asarray(_math.pi / 180, dy.dtype)),
    "rad2deg": (np.rad2deg, lambda dy, y, x: dy * np.asarray(180 / _math.pi, dy.dtype)),
    "fabs": (np.fabs, lambda dy, y, x: dy * np.sign(x)),
    "erfc": (lambda x: 1 - _erf(x), lambda dy, y, x: -dy * (2 / _math.sqrt(_math.pi)) *
             np.exp(-x * x)),
    "hard_tanh": (lambda x: np.clip(x, -1, 1), lambda dy, y, x: dy * _in_open(x, -1, 1)),
    "tanh_shrink": (lambda x: x - np.tanh(x), lambda dy, y, x: dy * np.tanh(x) ** 2),
    "sparse_sigmoid": (lambda x: np.clip(0.5 * (x + 1), 0, 1),
                       lambda dy, y, x: dy * (0.5 * _in_open(x, -1, 1))),
    "sparse_plus": (lambda x: np.where(x <= -1, 0, np.where(x >= 1, x, (x + 1) ** 2 / 4)),
                    lambda dy, y, x: dy * np.where(x <= -1, 0, np.where(x >= 1, 1,
                                                                         (x + 1) / 2))),
    "soft_shrink": (lambda x, threshold=0.5: np.where(x > threshold, x - threshold, np.where(
        x < -threshold, x + threshold, 0)),
        lambda dy, y, x, threshold=0.5: dy * (np.abs(x) > threshold)),
    "hard_shrink": (lambda x, threshold=0.5: np.where(np.abs(x) > threshold, x, 0),
                    lambda dy, y, x, threshold=0.5: dy * (np.abs(x) > threshold)),
    "squareplus": (lambda x, b=4: (x + np.sqrt(x * x + b)) / 2,
                   lambda dy, y, x, b=4: dy * 0.5 * (1 + x / np.sqrt(x * x + b))),
    "threshold": (lambda x, threshold, default_value: np.where(x > threshold, x,
                                                               default_value),
                  lambda dy, y, x, threshold, default_value: dy * (x > threshold)),
    "signbit": (np.signbit, None), "isposinf": (np.isposinf, None),
    "isneginf": (np.isneginf, None),
    # piecewise constant: Keras's gradient is zero (none here)
    "sign": (np.sign, None), "floor": (np.floor, None), "ceil": (np.ceil, None),
    "trunc": (np.trunc, None),
    "round": (lambda x, decimals=0: np.round(x, decimals), None),
    # boolean results
    "logical_not": (np.logical_not, None), "isnan": (np.isnan, None),
    "isinf": (np.isinf, None), "isfinite": (np.isfinite, None),
}
# ops whose integer input keeps its dtype (the others compute in float)
_KEEP_INT = {"signbit", "isposinf", "isneginf", "hard_tanh", "sign",
             "floor", "ceil", "trunc", "round", "copy", "logical_not", "isnan",
             "isinf", "isfinite", "relu6", "leaky_relu"}


def _unary_op(name, fwd, grad):
    keep = name in _KEEP_INT

    def f(x, **k):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return (fwd(np.asarray(x) if keep else _float(x), **k), None)

    def b(dy, y, v, s, n, **k):
        x = np.asarray(v[0])
        if x.dtype.kind not in "fc":
            return [None]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return [np.asarray(grad(dy, y, x, **k), dtype=dy.dtype)]

    return Op(name, f, b if grad is not None else None)


_UNARY_OPS = {name: _unary_op(name, f, g) for name, (f, g) in _UNARY.items()}


def _u(name, x, **static):
    return apply(_UNARY_OPS[name], [x], static)


def sin(x): return _u("sin", x)  # noqa: E704
def cos(x): return _u("cos", x)  # noqa: E704
def tan(x): return _u("tan", x)  # noqa: E704
def arcsin(x): return _u("arcsin", x)  # noqa: E704
def arccos(x): return _u("arccos", x)  # noqa: E704
def arctan(x): return _u("arctan", x)  # noqa: E704
def sinh(x): return _u("sinh", x)  # noqa: E704
def cosh(x): return _u("cosh", x)  # noqa: E704
def arcsinh(x): return _u("arcsinh", x)  # noqa: E704
def arccosh(x): return _u("arccosh", x)  # noqa: E704
def arctanh(x): return _u("arctanh", x)  # noqa: E704
def exp2(x): return _u("exp2", x)  # noqa: E704
def expm1(x): return _u("expm1", x)  # noqa: E704
def log2(x): return _u("log2", x)  # noqa: E704
def log10(x): return _u("log10", x)  # noqa: E704
def reciprocal(x): return _u("reciprocal", x)  # noqa: E704
def rsqrt(x): return _u("rsqrt", x)  # noqa: E704
def erf(x): return _u("erf", x)  # noqa: E704
def softplus(x): return _u("softplus", x)  # noqa: E704
def softsign(x): return _u("softsign", x)  # noqa: E704
def silu(x): return _u("silu", x)  # noqa: E704
def selu(x): return _u("selu", x)  # noqa: E704
def relu6(x): return _u("relu6", x)  # noqa: E704
def hard_sigmoid(x): return _u("hard_sigmoid", x)  # noqa: E704
def hard_silu(x): return _u("hard_silu", x)  # noqa: E704
def log_sigmoid(x): return _u("log_sigmoid", x)  # noqa: E704
def copy(x): return _u("copy", x)  # noqa: E704
def sign(x): return _u("sign", x)  # noqa: E704
def floor(x): return _u("floor", x)  # noqa: E704
def ceil(x): return _u("ceil", x)  # noqa: E704
def trunc(x): return _u("trunc", x)  # noqa: E704
def logical_not(x): return _u("logical_not", x)  # noqa: E704
def isnan(x): return _u("isnan", x)  # noqa: E704
def isinf(x): return _u("isinf", x)  # noqa: E704
def isfinite(x): return _u("isfinite", x)  # noqa: E704
def cbrt(x): return _u("cbrt", x)  # noqa: E704
def deg2rad(x): return _u("deg2rad", x)  # noqa: E704
def rad2deg(x): return _u("rad2deg", x)  # noqa: E704
def fabs(x): return _u("fabs", x)  # noqa: E704
def erfc(x): return _u("erfc", x)  # noqa: E704
def hard_tanh(x): return _u("hard_tanh", x)  # noqa: E704
def tanh_shrink(x): return _u("tanh_shrink", x)  # noqa: E704
def sparse_sigmoid(x): return _u("sparse_sigmoid", x)  # noqa: E704
def sparse_plus(x): return _u("sparse_plus", x)  # noqa: E704
def signbit(x): return _u("signbit", x)  # noqa: E704
def isposinf(x): return _u("isposinf", x)  # noqa: E704
def isneginf(x): return _u("isneginf", x)  # noqa: E704


def soft_shrink(x, threshold=0.5):
    return _u("soft_shrink", x, threshold=float(threshold))


def hard_shrink(x, threshold=0.5):
    return _u("hard_shrink", x, threshold=float(threshold))


def squareplus(x, b=4):
    return _u("squareplus", x, b=float(b))


def threshold(x, threshold, default_value):
    return _u("threshold", x, threshold=float(threshold), default_value=float(default_value))


def gelu(x, approximate=True):
    return _u("gelu", x, approximate=bool(approximate))


def elu(x, alpha=1.0):
    return _u("elu", x, alpha=float(alpha))


def leaky_relu(x, negative_slope=0.2):
    return _u("leaky_relu", x, negative_slope=float(negative_slope))


def round(x, decimals=0):  # noqa: A001 (Keras's name)
    return _u("round", x, decimals=int(decimals))


swish, hard_swish = silu, hard_silu


def _nan_to_num_f(x, nan=0.0, posinf=None, neginf=None):
    return np.nan_to_num(x, copy=True, nan=nan, posinf=posinf, neginf=neginf), None


_NAN_TO_NUM = Op("nan_to_num", _nan_to_num_f,
                 lambda dy, y, v, s, n, **k: [dy * np.isfinite(v[0])])


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    return apply(_NAN_TO_NUM, [x], {"nan": float(nan),
                                    "posinf": None if posinf is None else float(posinf),
                                    "neginf": None if neginf is None else float(neginf)})


# ---- elementwise binary -------------------------------------------------------------------------
def _logaddexp_b(dy, y, v, s, n):
    a, b = v
    return [dy * np.exp(a - y) if n[0] else None, dy * np.exp(b - y) if n[1] else None]


def _arctan2_b(dy, y, v, s, n):
    a, b = v
    r = a * a + b * b
    return [dy * b / r if n[0] else None, -dy * a / r if n[1] else None]


def _mod_b(dy, y, v, s, n):
    a, b = v
    return [dy if n[0] else None, -dy * np.floor_divide(a, b) if n[1] else None]


def _hypot_b(dy, y, v, s, n):
    a, b = v
    return [dy * a / y if n[0] else None, dy * b / y if n[1] else None]


def _logaddexp2_b(dy, y, v, s, n):
    a, b = v
    return [dy * np.exp2(a - y) if n[0] else None, dy * np.exp2(b - y) if n[1] else None]


def _fmod_b(dy, y, v, s, n):
    a, b = v
    return [dy if n[0] else None, -dy * np.trunc(a / b) if n[1] else None]


def _div_no_nan(a, b):
    a, b = np.asarray(a), np.asarray(b)
    zero = b == 0
    return np.where(zero, 0, a / np.where(zero, 1, b))


def _div_no_nan_b(dy, y, v, s, n):
    a, b = v
    nz = np.asarray(b) != 0
    bs = np.where(nz, b, 1)
    return [dy * nz / bs if n[0] else None, -dy * nz * y / bs if n[1] else None]


def _binary(name, fn, bwd):
    def f(a, b):
        with np.errstate(invalid="ignore", divide="ignore"):
            return fn(a, b), None

    return Op(name, f, bwd)


def _float2(fn):
    return lambda a, b: fn(_float(a), _float(b))


_BINARY_OPS = {op.name: op for op in (
    _binary("logaddexp", _float2(np.logaddexp), _logaddexp_b),
    _binary("arctan2", _float2(np.arctan2), _arctan2_b),
    _binary("mod", np.mod, _mod_b),
    _binary("hypot", _float2(np.hypot), _hypot_b),
    _binary("floor_divide", np.floor_divide, None),
    _binary("logical_xor", np.logical_xor, None),
    _binary("logaddexp2", _float2(np.logaddexp2), _logaddexp2_b),
    _binary("fmod", np.fmod, _fmod_b),
    _binary("divide_no_nan", _float2(_div_no_nan), _div_no_nan_b),
    _binary("heaviside", np.heaviside, None),
)}


def logaddexp(x1, x2): return apply(_BINARY_OPS["logaddexp"], [x1, x2])  # noqa: E704
def arctan2(x1, x2): return apply(_BINARY_OPS["arctan2"], [x1, x2])  # noqa: E704
def mod(x1, x2): return apply(_BINARY_OPS["mod"], [x1, x2])  # noqa: E704
def hypot(x1, x2): return apply(_BINARY_OPS["hypot"], [x1, x2])  # noqa: E704
def floor_divide(x1, x2): return apply(_BINARY_OPS["floor_divide"], [x1, x2])  # noqa: E704
def logical_xor(x1, x2): return apply(_BINARY_OPS["logical_xor"], [x1, x2])  # noqa: E704
def logaddexp2(x1, x2): return apply(_BINARY_OPS["logaddexp2"], [x1, x2])  # noqa: E704
def fmod(x1, x2): return apply(_BINARY_OPS["fmod"], [x1, x2])  # noqa: E704
def divide_no_nan(x1, x2): return apply(_BINARY_OPS["divide_no_nan"], [x1, x2])  # noqa: E704
def heaviside(x1, x2): return apply(_BINARY_OPS["heaviside"], [x1, x2])  # noqa: E704


# ---- reductions ---------------------------------------------------------------------------------
def _logsumexp_f(x, axis=None, keepdims=False):
    x = _float(x)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    y = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return (y if keepdims else np.squeeze(y, axis=_norm_axes(axis, x.ndim))), None


def _logsumexp_b(dy, y, v, s, n, axis=None, keepdims=False):
    x = v[0]
    shp = np.shape(x)
    return [_expand(dy, shp, axis, keepdims) * np.exp(x - _expand(y, shp, axis, keepdims))]


def _moved(x, axes):
    """x with `axes` moved last and flattened into one: (array (..., K), inverse info)."""
    nd = np.ndim(x)
    keep = [a for a in range(nd) if a not in axes]
    perm = keep + list(axes)
    xt = np.transpose(x, perm)
    lead = xt.shape[:len(keep)]
    return xt.reshape(lead + (-1,)), (perm, xt.shape)


def _unmoved(g, info):
    perm, tshape = info
    return np.transpose(g.reshape(tshape), np.argsort(perm))


def _prod_b(dy, y, v, s, n, axis=None, keepdims=False, dtype=None):
    x = np.asarray(v[0])
    if x.dtype.kind != "f":
        return [None]
    axes = _norm_axes(axis, x.ndim)
    xm, info = _moved(x, axes)
    # product of all the others: exclusive cumulative products from both sides (exact at zeros)
    left = np.cumprod(np.concatenate([np.ones_like(xm[..., :1]), xm[..., :-1]], -1), -1)
    right = np.cumprod(np.concatenate([np.ones_like(xm[..., :1]), xm[..., :0:-1]], -1),
                       -1)[..., ::-1]
    others = _unmoved(left * right, info)
    return [_expand(dy, x.shape, axis, keepdims) * others]


_LOGSUMEXP = Op("logsumexp", _logsumexp_f, _logsumexp_b)
_PROD = Op("prod", _plain(lambda x, axis=None, keepdims=False, dtype=None: np.prod(
    x, axis=axis, keepdims=keepdims, dtype=dtype)), _prod_b)
_ANY = Op("any", _plain(lambda x, axis=None, keepdims=False: np.any(x, axis=axis,
                                                                      keepdims=keepdims)))
_ALL = Op("all", _plain(lambda x, axis=None, keepdims=False: np.all(x, axis=axis,
                                                                      keepdims=keepdims)))
_COUNT_NONZERO = Op("count_nonzero", _plain(lambda x, axis=None: np.asarray(
    np.count_nonzero(x, axis=axis)).astype(np.int32)))


def logsumexp(x, axis=None, keepdims=False):
    return apply(_LOGSUMEXP, [x], {"axis": _axis_arg(axis), "keepdims": bool(keepdims)})


def prod(x, axis=None, keepdims=False, dtype=None):
    return apply(_PROD, [x], {"axis": _axis_arg(axis), "keepdims": bool(keepdims),
                              "dtype": None if dtype is None else str(np.dtype(dtype))})


def any(x, axis=None, keepdims=False):  # noqa: A001
    return apply(_ANY, [x], {"axis": _axis_arg(axis), "keepdims": bool(keepdims)})


def all(x, axis=None, keepdims=False):  # noqa: A001
    return apply(_ALL, [x], {"axis": _axis_arg(axis), "keepdims": bool(keepdims)})


def count_nonzero(x, axis=None):
    return apply(_COUNT_NONZERO, [x], {"axis": _axis_arg(axis)})


def _cum_prep(x, axis):
    x = np.asarray(x)
    return (x.reshape(-1), 0) if axis is None else (x, axis)


def _cumsum_b(dy, y, v, s, n, axis=None, dtype=None):
    x = np.asarray(v[0])
    if x.dtype.kind != "f":
        return [None]
    ax = 0 if axis is None else axis
    g = np.flip(np.cumsum(np.flip(dy, ax), axis=ax), ax)
    return [g.reshape(x.shape)]


def _cumprod_b(dy, y, v, s, n, axis=None, dtype=None):
    x0 = np.asarray(v[0])
    if x0.dtype.kind != "f":
        return [None]
    x, ax = _cum_prep(x0, axis)
    xm, ym, dm = (np.moveaxis(a, ax, -1) for a in (x, y, dy))
    if np.all(xm != 0):
        g = np.flip(np.cumsum(np.flip(dm * ym, -1), -1), -1) / xm
    else:  # d y_j / d x_i = prod_{k <= j, k != i} x_k, summed over j >= i (exact at zeros)
        k = xm.shape[-1]
        g = np.zeros_like(xm)
        for i in range(k):
            xi = xm.copy()
            xi[..., i] = 1
            cp = np.cumprod(xi, -1)
            g[..., i] = np.sum(dm[..., i:] * cp[..., i:], -1)
    return [np.moveaxis(g, -1, ax).reshape(x0.shape)]


_CUMSUM = Op("cumsum", _plain(lambda x, axis=None, dtype=None: np.cumsum(x, axis=axis,
                                                                          dtype=dtype)),
             _cumsum_b)
_CUMPROD = Op("cumprod", _plain(lambda x, axis=None, dtype=None: np.cumprod(x, axis=axis,
                                                                             dtype=dtype)),
              _cumprod_b)


def cumsum(x, axis=None, dtype=None):
    return apply(_CUMSUM, [x], {"axis": axis, "dtype": None if dtype is None else
                                str(np.dtype(dtype))})


def cumprod(x, axis=None, dtype=None):
    return apply(_CUMPROD, [x], {"axis": axis, "dtype": None if dtype is None else
                                 str(np.dtype(dtype))})


def _norm_f(x, ord=None, axis=None, keepdims=False):  # noqa: A002 (Keras's name)
    x = _float(x)
    return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims), None


def _norm_b(dy, y, v, s, n, ord=None, axis=None, keepdims=False):  # noqa: A002
    x = _float(v[0])
    nd = x.ndim
    matrix = (axis is None and nd == 2) or (isinstance(axis, tuple) and len(axis) == 2)
    if axis is None:
        axes = tuple(range(nd))
    else:
        axes = _norm_axes(axis, nd)
    ye = np.asarray(y) if keepdims else np.expand_dims(y, axes)
    dye = np.asarray(dy) if keepdims else np.expand_dims(dy, axes)
    if (matrix and ord in (None, "fro")) or (not matrix and ord in (None, 2)):
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.where(ye > 0, x / ye, 0)
        return [dye * g]
    if matrix:
        raise NotImplementedError(f"norm: the gradient of the matrix norm ord={ord!r} is not "
                                  "supported (ord='fro' is)")
    if ord == 1:
        return [dye * np.sign(x)]
    if ord in (np.inf, -np.inf):
        m = np.abs(x) == ye
        return [dye * np.sign(x) * m / np.sum(m, axis=axes, keepdims=True)]
    if ord == 0:
        return [None]
    p = float(ord)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.sign(x) * np.abs(x) ** (p - 1) / ye ** (p - 1)
    return [dye * np.where(np.isfinite(g), g, 0)]


_NORM = Op("norm", _norm_f, _norm_b)


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002
    if isinstance(ord, str) and ord not in ("fro", "nuc"):
        raise ValueError(f"norm: unknown ord {ord!r}")
    return apply(_NORM, [x], {"ord": ord, "axis": _axis_arg(axis), "keepdims": bool(keepdims)})


def normalize(x, axis=-1, order=2, epsilon=None):
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"normalize: order must be an int >= 1, got {order!r}")
    if epsilon is None:
        from ..backend import epsilon as _eps

        epsilon = _eps()
    if order == 2:
        inv = _np_ops.minimum(rsqrt(_np_ops.sum(_np_ops.square(x), axis=axis, keepdims=True)),
                              1.0 / epsilon)
        return _np_ops.multiply(x, inv)
    return _np_ops.divide(x, _np_ops.maximum(norm(x, ord=order, axis=axis, keepdims=True),
                                             epsilon))


def moments(x, axes, keepdims=False, synchronized=False):
    """(mean, variance) over `axes` (Keras's nn.moments)."""
    return (_np_ops.mean(x, axis=axes, keepdims=keepdims),
            _np_ops.var(x, axis=axes, keepdims=keepdims))


def celu(x, alpha=1.0):
    alpha = float(alpha)
    # the negative branch on min(x, 0): no overflow (and no NaN gradient) where it is not taken
    neg = _np_ops.multiply(expm1(_np_ops.divide(_np_ops.minimum(x, 0.0), alpha)), alpha)
    return _np_ops.where(_np_ops.greater(x, 0.0), x, neg)


def glu(x, axis=-1):
    a, b = _np_ops.split(x, 2, axis=axis)
    return _np_ops.multiply(a, _np_ops.sigmoid(b))


def _eps():
    from ..backend import epsilon as _e

    return _e()


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise, as Keras's ops.binary_crossentropy (no reduction)."""
    if from_logits:  # max(x, 0) - x z + log(1 + exp(-|x|))
        return _np_ops.subtract(softplus(output), _np_ops.multiply(target, output))
    e = _eps()
    out = _np_ops.clip(output, e, 1.0 - e)
    return _np_ops.negative(_np_ops.add(
        _np_ops.multiply(target, _np_ops.log(out)),
        _np_ops.multiply(_np_ops.subtract(1.0, target), _np_ops.log(
            _np_ops.subtract(1.0, out)))))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    if from_logits:
        logp = _np_ops.log_softmax(output, axis=axis)
    else:
        e = _eps()
        out = _np_ops.divide(output, _np_ops.sum(output, axis=axis, keepdims=True))
        logp = _np_ops.log(_np_ops.clip(out, e, 1.0 - e))
    return _np_ops.negative(_np_ops.sum(_np_ops.multiply(target, logp), axis=axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    n = _shape(output)[axis]
    if n is None:
        raise ValueError("sparse_categorical_crossentropy: the class axis size is unknown")
    if len(_shape(target)) == len(_shape(output)) and _shape(target)[-1] == 1:
        target = _np_ops.squeeze(target, axis=-1)
    return categorical_crossentropy(_np_ops.one_hot(target, n, axis=axis), output,
                                    from_logits=from_logits, axis=axis)


def _diagonal_b(dy, y, v, s, n, offset=0, axis1=0, axis2=1):
    x = np.asarray(v[0])
    g = np.zeros(x.shape, dy.dtype)
    gv = np.moveaxis(g, (axis1, axis2), (-2, -1))  # a view: writes land in g
    r, c = _diag_index(gv.shape[-2:], offset)
    gv[..., r, c] = dy
    return [g]


_DIAGONAL = Op("diagonal", _plain(lambda x, offset=0, axis1=0, axis2=1: np.array(np.diagonal(
    x, offset, axis1, axis2))), _diagonal_b)


def diagonal(x, offset=0, axis1=0, axis2=1):
    return apply(_DIAGONAL, [x], {"offset": int(offset), "axis1": int(axis1),
                                  "axis2": int(axis2)})


def trace(x, offset=0, axis1=0, axis2=1):
    return _np_ops.sum(diagonal(x, offset, axis1, axis2), axis=-1)


_ISCLOSE = Op("isclose", _plain(lambda a, b, rtol=1e-5, atol=1e-8, equal_nan=False: np.isclose(
    a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)))


def isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    return apply(_ISCLOSE, [x1, x2], {"rtol": float(rtol), "atol": float(atol),
                                      "equal_nan": bool(equal_nan)})


def average(x, axis=None, weights=None):
    if weights is None:
        return _np_ops.mean(x, axis=axis)
    nd = len(_shape(x))
    wnd = len(_shape(weights))
    if wnd == 1 and nd > 1:
        if axis is None:
            raise ValueError("average: 1-D weights need an axis")
        shp = [1] * nd
        shp[axis % nd] = -1
        weights = _np_ops.reshape(weights, tuple(shp))
    return _np_ops.divide(_np_ops.sum(_np_ops.multiply(x, weights), axis=axis),
                          _np_ops.sum(_np_ops.multiply(_np_ops.ones_like(x), weights),
                                      axis=axis))


# ---- shapes, indexing, rearrangement ------------------------------------------------------------
def _tile_b(dy, y, v, s, n, repeats):
    x = np.asarray(v[0])
    reps = tuple(repeats)
    nd = _builtins.max(x.ndim, len(reps))
    reps = (1,) * (nd - len(reps)) + reps
    xs = (1,) * (nd - x.ndim) + x.shape
    inter = []
    for r, d in zip(reps, xs):
        inter += [r, d]
    g = dy.reshape(inter).sum(axis=tuple(range(0, 2 * nd, 2)))
    return [g.reshape(x.shape)]


_TILE = Op("tile", _plain(lambda x, repeats: np.tile(x, repeats)), _tile_b)


def tile(x, repeats):
    reps = (int(repeats),) if isinstance(repeats, (int, np.integer)) else tuple(
        int(r) for r in repeats)
    return apply(_TILE, [x], {"repeats": reps})


def _repeat_b(dy, y, v, s, n, repeats, axis=None):
    x = np.asarray(v[0])
    src = x.reshape(-1) if axis is None else x
    ax = 0 if axis is None else axis % x.ndim
    reps = np.broadcast_to(np.asarray(repeats, np.intp), (src.shape[ax],))
    ends = np.cumsum(reps)
    starts = ends - reps
    dmv = np.moveaxis(dy, ax, 0)
    cs = np.concatenate([np.zeros((1,) + dmv.shape[1:], dmv.dtype), np.cumsum(dmv, 0)], 0)
    g = cs[ends] - cs[starts]
    return [np.moveaxis(g, 0, ax).reshape(x.shape)]


_REPEAT = Op("repeat", _plain(lambda x, repeats, axis=None: np.repeat(x, repeats, axis)),
             _repeat_b)


def repeat(x, repeats, axis=None):
    reps = int(repeats) if isinstance(repeats, (int, np.integer)) else tuple(
        int(r) for r in repeats)
    return apply(_REPEAT, [x], {"repeats": reps, "axis": axis})


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def _pad_f(x, pad_width, mode="constant", constant_values=None):
    if mode == "constant":
        return np.pad(x, pad_width, mode="constant",
                      constant_values=0 if constant_values is None else constant_values), None
    return np.pad(x, pad_width, mode=mode), None


def _pad_b(dy, y, v, s, n, pad_width, mode="constant", constant_values=None):
    x = np.asarray(v[0])
    # pad is linear in x: pad the flat index of every entry the same way and scatter back
    idx = np.arange(x.size, dtype=np.intp).reshape(x.shape)
    if mode == "constant":
        pidx = np.pad(idx, pad_width, mode="constant", constant_values=-1)
    else:
        pidx = np.pad(idx, pad_width, mode=mode)
    keep = pidx >= 0
    g = np.zeros(x.size, dy.dtype)
    np.add.at(g, pidx[keep], dy[keep])
    return [g.reshape(x.shape)]


_PAD = Op("pad", _pad_f, _pad_b)


def pad(x, pad_width, mode="constant", constant_values=None):
    mode = str(mode).lower()
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {_PAD_MODES}, got {mode!r}")
    if constant_values is not None and mode != "constant":
        raise ValueError("pad: constant_values is only valid with mode='constant'")
    pw = np.asarray(pad_width, dtype=np.intp)
    nd = len(_shape(x))
    pw = np.broadcast_to(pw, (nd, 2))
    return apply(_PAD, [x], {"pad_width": tuple(tuple(int(a) for a in r) for r in pw),
                             "mode": mode,
                             "constant_values": None if constant_values is None else
                             float(constant_values)})


_FLIP = Op("flip", _plain(lambda x, axis=None: np.flip(x, axis)),
           lambda dy, y, v, s, n, axis=None: [np.flip(dy, axis)])
_ROLL = Op("roll", _plain(lambda x, shift, axis=None: np.roll(x, shift, axis)),
           lambda dy, y, v, s, n, shift, axis=None: [np.roll(
               dy, tuple(-a for a in shift) if isinstance(shift, tuple) else -shift, axis)])
_MOVEAXIS = Op("moveaxis", _plain(lambda x, source, destination: np.moveaxis(
    x, source, destination)), lambda dy, y, v, s, n, source, destination: [
    np.moveaxis(dy, destination, source)])
_SWAPAXES = Op("swapaxes", _plain(lambda x, axis1, axis2: np.swapaxes(x, axis1, axis2)),
               lambda dy, y, v, s, n, axis1, axis2: [np.swapaxes(dy, axis1, axis2)])
_RAVEL = Op("ravel", _plain(np.ravel), _reshape_b)
_TRIL = Op("tril", _plain(lambda x, k=0: np.tril(x, k)),
           lambda dy, y, v, s, n, k=0: [np.tril(dy, k)])
_TRIU = Op("triu", _plain(lambda x, k=0: np.triu(x, k)),
           lambda dy, y, v, s, n, k=0: [np.triu(dy, k)])


def _int_or_tuple(a):
    return int(a) if isinstance(a, (int, np.integer)) else tuple(int(b) for b in a)


def flip(x, axis=None):
    return apply(_FLIP, [x], {"axis": None if axis is None else _int_or_tuple(axis)})


def roll(x, shift, axis=None):
    return apply(_ROLL, [x], {"shift": _int_or_tuple(shift),
                              "axis": None if axis is None else _int_or_tuple(axis)})


def moveaxis(x, source, destination):
    return apply(_MOVEAXIS, [x], {"source": _int_or_tuple(source),
                                  "destination": _int_or_tuple(destination)})


def swapaxes(x, axis1, axis2):
    return apply(_SWAPAXES, [x], {"axis1": int(axis1), "axis2": int(axis2)})


def ravel(x):
    return apply(_RAVEL, [x])


_ROT90 = Op("rot90", _plain(lambda x, k=1, axes=(0, 1): np.rot90(x, k, axes)),
            lambda dy, y, v, s, n, k=1, axes=(0, 1): [np.rot90(dy, -k, axes)])


def rot90(array, k=1, axes=(0, 1)):
    return apply(_ROT90, [array], {"k": int(k), "axes": _int_or_tuple(axes)})


def fliplr(x):
    return flip(x, axis=1)


def flipud(x):
    return flip(x, axis=0)


def diff(a, n=1, axis=-1):
    nd = len(_shape(a))
    ax = axis % nd
    for _ in range(int(n)):
        hi = tuple(_builtins.slice(1, None) if i == ax else _builtins.slice(None)
                   for i in range(nd))
        lo = tuple(_builtins.slice(None, -1) if i == ax else _builtins.slice(None)
                   for i in range(nd))
        a = _np_ops.subtract(_np_ops.getitem(a, hi), _np_ops.getitem(a, lo))
    return a


def inner(x1, x2):
    if len(_shape(x1)) == 0 or len(_shape(x2)) == 0:
        return _np_ops.multiply(x1, x2)
    return tensordot(x1, x2, axes=((-1,), (-1,)))


def vdot(x1, x2):
    return _np_ops.sum(_np_ops.multiply(ravel(x1), ravel(x2)))


def tril(x, k=0):
    return apply(_TRIL, [x], {"k": int(k)})


def triu(x, k=0):
    return apply(_TRIU, [x], {"k": int(k)})


def _diag_index(shp, k):
    r0, c0 = (0, k) if k >= 0 else (-k, 0)
    m = _builtins.max(0, _builtins.min(shp[0] - r0, shp[1] - c0))
    i = np.arange(m)
    return r0 + i, c0 + i


def _diag_b(dy, y, v, s, n, k=0):
    x = np.asarray(v[0])
    if x.ndim == 1:
        return [dy[_diag_index(dy.shape, k)]]
    g = np.zeros(x.shape, dy.dtype)
    g[_diag_index(x.shape, k)] = dy
    return [g]


_DIAG = Op("diag", _plain(lambda x, k=0: np.diag(x, k)), _diag_b)


def diag(x, k=0):
    if len(_shape(x)) not in (1, 2):
        raise ValueError(f"diag: input must be 1-D or 2-D, got rank {len(_shape(x))}")
    return apply(_DIAG, [x], {"k": int(k)})


def _outer_b(dy, y, v, s, n):
    a, b = np.ravel(v[0]), np.ravel(v[1])
    return [(dy @ b).reshape(np.shape(v[0])) if n[0] else None,
            (a @ dy).reshape(np.shape(v[1])) if n[1] else None]


_OUTER = Op("outer", _plain(np.outer), _outer_b)


def outer(x1, x2):
    return apply(_OUTER, [x1, x2])


def _td_axes(axes, na, nb):
    if isinstance(axes, int):
        return list(range(na - axes, na)), list(range(axes))
    a_ax, b_ax = axes
    a_ax = [a_ax] if isinstance(a_ax, int) else list(a_ax)
    b_ax = [b_ax] if isinstance(b_ax, int) else list(b_ax)
    return [a % na for a in a_ax], [b % nb for b in b_ax]


def _tensordot_b(dy, y, v, s, n, axes=2):
    a, b = np.asarray(v[0]), np.asarray(v[1])
    a_ax, b_ax = _td_axes(axes, a.ndim, b.ndim)
    a_free = [i for i in range(a.ndim) if i not in a_ax]
    b_free = [i for i in range(b.ndim) if i not in b_ax]
    nfa = len(a_free)
    da = db = None
    if n[0]:  # dy (a_free, b_free) . b (b_ax, b_free) -> (a_free, b_ax) in a_ax's order
        # t's axes: a_free, then b's contracted axes in b's order, each paired with an a axis
        t = np.tensordot(dy, b, axes=(list(range(nfa, dy.ndim)), b_free))
        da = np.transpose(t, np.argsort(a_free + [a_ax[b_ax.index(j)] for j in sorted(b_ax)]))
    if n[1]:  # a (a_free, a_ax) . dy -> (a's contracted axes in a's order, b_free)
        t = np.tensordot(a, dy, axes=(a_free, list(range(nfa))))
        db = np.transpose(t, np.argsort([b_ax[a_ax.index(i)] for i in sorted(a_ax)] + b_free))
    return [da, db]


_TENSORDOT = Op("tensordot", _plain(lambda a, b, axes=2: np.tensordot(a, b, axes)),
                _tensordot_b)


def tensordot(x1, x2, axes=2):
    if not isinstance(axes, int):
        axes = tuple(_int_or_tuple(a) for a in axes)
    return apply(_TENSORDOT, [x1, x2], {"axes": axes})


def _sort_f(x, axis=-1):
    idx = np.argsort(x, axis=axis, kind="stable")
    return np.take_along_axis(x, idx, axis=axis), idx


def _scatter_along(dy, idx, xshape, axis):
    g = np.zeros(xshape, dy.dtype)
    np.put_along_axis(g, idx, dy, axis=axis)
    return g


_SORT = Op("sort", _sort_f, lambda dy, y, v, s, n, axis=-1: [
    _scatter_along(dy, s, np.shape(v[0]), axis)])
_ARGSORT = Op("argsort", _plain(lambda x, axis=-1: np.argsort(x, axis=axis, kind="stable")
                                .astype(np.int32)))


def sort(x, axis=-1):
    return apply(_SORT, [x], {"axis": axis})


def argsort(x, axis=-1):
    return apply(_ARGSORT, [x], {"axis": axis})


def _top_k_f(x, k, sorted=True):  # noqa: A002 (Keras's name)
    x = np.asarray(x)
    # largest first; ties keep the lower index first (as TensorFlow's top_k)
    idx = np.argsort(-x if x.dtype.kind != "b" else ~x, axis=-1, kind="stable")[..., :k]
    return [np.take_along_axis(x, idx, -1), idx.astype(np.int32)], idx


def _top_k_b(dy, y, v, s, n, k, sorted=True):  # noqa: A002
    x = np.asarray(v[0])
    if x.dtype.kind != "f":
        return [None]
    g = np.zeros(x.shape, dy[0].dtype)
    np.put_along_axis(g, s, dy[0], axis=-1)
    return [g]


_TOP_K = Op("top_k", _top_k_f, _top_k_b, nout=2)


def top_k(x, k, sorted=True):  # noqa: A002
    """(values, indices) of the k largest entries along the last axis."""
    k = int(k)
    last = _shape(x)[-1]
    if last is not None and not 0 <= k <= last:
        raise ValueError(f"top_k: k={k} is outside [0, {last}]")
    out = apply(_TOP_K, [x], {"k": k, "sorted": bool(sorted)})
    return tuple(out)


def _broadcast_to_b(dy, y, v, s, n, shape):
    return [dy]  # the node sums it back to the operand's shape


_BROADCAST_TO = Op("broadcast_to", _plain(lambda x, shape: np.array(np.broadcast_to(
    x, shape))), _broadcast_to_b)


def broadcast_to(x, shape):
    return apply(_BROADCAST_TO, [x], {"shape": _shape_arg(shape)})


def _slice_f(x, start_indices, shape):
    idx = tuple(_builtins.slice(b, b + s) for b, s in zip(start_indices, shape))
    return np.array(x[idx]), None


def _slice_b(dy, y, v, s, n, start_indices, shape):
    g = np.zeros(np.shape(v[0]), dy.dtype)
    idx = tuple(_builtins.slice(b, b + s) for b, s in zip(start_indices, shape))
    g[idx] = dy
    return [g]


_SLICE = Op("slice", _slice_f, _slice_b)


def slice(inputs, start_indices, shape):  # noqa: A001 (Keras's name)
    """inputs[start:start + shape] on every axis (Keras's ops.slice)."""
    st = tuple(int(a) for a in start_indices)
    sh = tuple(int(a) for a in shape)
    if len(st) != len(sh):
        raise ValueError("slice: start_indices and shape must have one entry per axis")
    return apply(_SLICE, [inputs], {"start_indices": st, "shape": sh})


def _select_f(*ops_, n):
    conds, choices, default = ops_[:n], ops_[n:2 * n], ops_[2 * n]
    shp = np.broadcast_shapes(*[np.shape(c) for c in conds + choices], np.shape(default))
    return np.select([np.broadcast_to(np.asarray(c, bool), shp) for c in conds],
                     [np.broadcast_to(c, shp) for c in choices],
                     np.broadcast_to(default, shp)), None


def _select_b(dy, y, v, s, needs, n):
    conds = [np.asarray(c, bool) for c in v[:n]]
    taken = np.zeros(dy.shape, bool)
    out = [None] * n
    for c, need in zip(conds, needs[n:2 * n]):
        first = np.broadcast_to(c, dy.shape) & ~taken
        out.append(dy * first if need else None)
        taken = taken | first
    out.append(dy * ~taken if needs[2 * n] else None)
    return out


_SELECT = Op("select", _select_f, _select_b)


def select(condlist, choicelist, default=0):
    condlist, choicelist = list(condlist), list(choicelist)
    if len(condlist) != len(choicelist) or not condlist:
        raise ValueError("select: condlist and choicelist must be non-empty and of one length")
    return apply(_SELECT, condlist + choicelist + [default], {"n": len(condlist)})


def _meshgrid_op(k):
    def f(*xs, indexing="xy"):
        return list(np.meshgrid(*xs, indexing=indexing)), None

    def b(dy, y, v, s, n, indexing="xy"):
        out = []
        for i, (g, need) in enumerate(zip(dy, n)):
            if not need:
                out.append(None)
                continue
            ax = i if indexing == "ij" or k < 2 or i > 1 else 1 - i
            out.append(np.sum(g, axis=tuple(a for a in range(g.ndim) if a != ax)))
        return out

    return Op("meshgrid", f, b, nout=k)


def meshgrid(*x, indexing="xy"):
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    return list(apply(_meshgrid_op(len(x)), list(x), {"indexing": indexing}))


def vstack(xs):
    xs = [x if len(_shape(x)) >= 2 else _np_ops.reshape(x, (1, -1)) for x in xs]
    return _np_ops.concatenate(xs, axis=0)


def hstack(xs):
    return _np_ops.concatenate(list(xs), axis=0 if len(_shape(xs[0])) == 1 else 1)


def unstack(x, num=None, axis=0):
    n = _shape(x)[axis]
    if n is None:
        if num is None:
            raise ValueError("unstack: the axis size is unknown; pass num")
        n = int(num)
    parts = _np_ops.split(x, n, axis=axis) if n > 1 else [x]
    return [_np_ops.squeeze(p, axis=axis) for p in parts]


def full_like(x, fill_value, dtype=None):
    return apply(_FULL_LIKE, [x], {"fill_value": fill_value, "dtype": None if dtype is None
                                   else str(np.dtype(dtype))})


_FULL_LIKE = Op("full_like", _plain(lambda x, fill_value, dtype=None: np.full_like(
    x, fill_value, dtype=dtype)))


# ---- creation (values, never symbolic) ----------------------------------------------------------
def eye(N, M=None, k=0, dtype=None):
    return np.eye(int(N), None if M is None else int(M), int(k), dtype=_std_dtype(dtype))


def identity(n, dtype=None):
    return np.identity(int(n), dtype=_std_dtype(dtype))


def tri(N, M=None, k=0, dtype=None):
    return np.tri(int(N), None if M is None else int(M), int(k), dtype=_std_dtype(dtype))


def logspace(start, stop, num=50, endpoint=True, base=10, dtype=None, axis=0):
    return np.logspace(start, stop, int(num), endpoint=endpoint, base=base,
                       dtype=_std_dtype(dtype), axis=axis)


def empty_like(x, dtype=None):
    return full_like(x, 0, dtype=dtype)


def empty(shape, dtype=None):
    return np.empty(_shape_arg(shape), _std_dtype(dtype))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    return np.linspace(start, stop, int(num), endpoint=endpoint, retstep=retstep,
                       dtype=_std_dtype(dtype), axis=axis)


def array(x, dtype=None):
    return _np_ops.convert_to_tensor(x, dtype=dtype)


def _shape(x):
    """The static shape (None for an unknown size)."""
    return tuple(x.shape) if isinstance(x, KerasTensor) else np.shape(x)


# ---- the op table -------------------------------------------------------------------------------
def _table():
    ops_ = list(_UNARY_OPS.values()) + list(_BINARY_OPS.values())
    ops_ += [v for v in globals().values() if isinstance(v, Op)]
    return {op.name: op for op in ops_}


MORE_OPS = _table()
MULTI_OUTPUT = {"meshgrid": _meshgrid_op}

__all__ = sorted(n for n, v in globals().items() if not n.startswith("_") and callable(v)
                 and getattr(v, "__module__", None) == __name__) + ["swish", "hard_swish"]
