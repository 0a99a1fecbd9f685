"""Activation functions by name, with Keras 3's definitions.

linear, relu, sigmoid, tanh and softmax (last axis) are C++ kernels (nncore.ops.activation) whose
backward uses the forward output. The others are elementwise NumPy (dtype-preserving), each with
its derivative written next to it:

    gelu(x)         = x * Phi(x)          (Phi the standard normal CDF; approximate=False)
    elu(x)          = x if x > 0 else exp(x) - 1
    selu(x)         = 1.0507009873554805 * (x if x > 0 else 1.6732632423543772 * (exp(x) - 1))
    softplus(x)     = log(1 + exp(x))
    softsign(x)     = x / (1 + |x|)
    silu(x)         = x * sigmoid(x)                 (alias swish)
    hard_sigmoid(x) = clip(x / 6 + 1/2, 0, 1)         (Keras 3: relu6(x + 3) / 6)
    hard_silu(x)    = x * hard_sigmoid(x)            (alias hard_swish)
    leaky_relu(x)   = x if x > 0 else 0.2 * x
    relu6(x)        = min(max(x, 0), 6)
    exponential(x)  = exp(x)
    mish(x)         = x * tanh(softplus(x))
    log_softmax(x)  = x - logsumexp(x)               (last axis)

`activation=` on Dense, Conv2D and Activation accepts any of these names or the functions below.
"""

from __future__ import annotations

import math

import numpy as np

from .kernels import train as _train

KERNEL_NAMES = ("linear", "relu", "sigmoid", "tanh", "softmax")
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}
_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # never overflows


def _erf(x):
    # Abramowitz & Stegun 7.1.26 in float64 (|error| < 1.5e-7, below float32's resolution).
    x64 = np.asarray(x, np.float64)
    a = np.abs(x64)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                          + t * 1.061405429))))
    return np.sign(x64) * (1.0 - poly * np.exp(-a * a))


def _phi_cdf(x):
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _expm1_neg(x):
    return np.expm1(np.minimum(x, 0))  # exp(x) - 1 on the negative side only (no overflow)


# name -> (forward(x), backward(dy, x, y)), both elementwise (log_softmax: last axis).
def _gelu_f(x):
    return (x * _phi_cdf(x)).astype(x.dtype)


def _gelu_b(dy, x, y):
    x64 = np.asarray(x, np.float64)
    d = _phi_cdf(x64) + x64 * np.exp(-0.5 * x64 * x64) / math.sqrt(2.0 * math.pi)
    return (dy * d).astype(x.dtype)


def _softplus_f(x):
    return np.logaddexp(np.zeros((), x.dtype), x)


def _log_softmax_f(x):
    m = np.max(x, axis=-1, keepdims=True)
    return x - (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))


def _log_softmax_b(dy, x, y):
    return dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True)


def _mish_b(dy, x, y):
    t = np.tanh(_softplus_f(x))
    return dy * (t + x * (1 - t * t) * _sigmoid(x))


def _exp_f(x):
    with np.errstate(over="ignore"):
        return np.exp(x)


_NUMPY = {
    "gelu": (_gelu_f, _gelu_b),
    "elu": (lambda x: np.where(x > 0, x, _expm1_neg(x)),
            lambda dy, x, y: dy * np.where(x > 0, 1, y + 1).astype(x.dtype)),
    "selu": (lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * _expm1_neg(x)),
             lambda dy, x, y: dy * np.where(x > 0, _SELU_SCALE,
                                            y + _SELU_SCALE * _SELU_ALPHA).astype(x.dtype)),
    "softplus": (_softplus_f, lambda dy, x, y: dy * _sigmoid(x)),
    "softsign": (lambda x: x / (1 + np.abs(x)), lambda dy, x, y: dy / (1 + np.abs(x)) ** 2),
    "silu": (lambda x: x * _sigmoid(x),
             lambda dy, x, y: dy * (_sigmoid(x) * (1 + x * (1 - _sigmoid(x))))),
    "hard_sigmoid": (lambda x: np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype),
                     lambda dy, x, y: dy * (((x > -3) & (x < 3)) / 6).astype(x.dtype)),
    "hard_silu": (lambda x: x * np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype),
                  lambda dy, x, y: dy * (np.clip(x / 6 + 0.5, 0, 1)
                                         + x * ((x > -3) & (x < 3)) / 6).astype(x.dtype)),
    "leaky_relu": (lambda x: np.where(x > 0, x, x * x.dtype.type(0.2)),
                   lambda dy, x, y: dy * np.where(x > 0, 1, 0.2).astype(x.dtype)),
    "relu6": (lambda x: np.clip(x, 0, 6),
              lambda dy, x, y: dy * ((x > 0) & (x < 6)).astype(x.dtype)),
    "exponential": (_exp_f, lambda dy, x, y: dy * y),
    "mish": (lambda x: x * np.tanh(_softplus_f(x)), _mish_b),
    "log_softmax": (_log_softmax_f, _log_softmax_b),
}
NAMES = KERNEL_NAMES + tuple(_NUMPY)


def get(identifier) -> str:
    """Canonical activation name from a string, None (linear) or one of this module's functions."""
    if identifier is None:
        return "linear"
    if callable(identifier) and not isinstance(identifier, str):
        name = getattr(identifier, "__name__", None)
        if globals().get(name) is identifier or (name in NAMES and getattr(
                identifier, "__module__", None) == __name__):
            return _ALIASES.get(name, name)
        raise ValueError(f"activation {identifier!r} is not one of nncore's activation functions "
                         f"(nncore needs their derivatives); use one of {sorted(NAMES)} or a "
                         "layer")
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier, identifier)
        if name in NAMES:
            return name
    raise ValueError(f"unknown activation {identifier!r}; nncore supports {sorted(NAMES)} "
                     f"(and the aliases {sorted(_ALIASES)})")


def serialize(name: str) -> str:
    return name


def forward(name: str, x: np.ndarray) -> np.ndarray:
    """y = name(x) for the NumPy activations (x's dtype kept)."""
    with np.errstate(under="ignore"):
        return np.asarray(_NUMPY[name][0](x), x.dtype)


def backward(name: str, dy: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d loss / d x from dy, the input x and the output y (NumPy activations)."""
    with np.errstate(under="ignore"):
        return np.asarray(_NUMPY[name][1](dy, x, y), dy.dtype)


def _apply(name):
    if name in KERNEL_NAMES:
        def f(x):
            return _train.activation(np.asarray(x, dtype=np.float32), name)
    else:
        def f(x):
            x = np.asarray(x)
            return forward(name, x if x.dtype.kind == "f" else x.astype(np.float32))

    f.__name__ = name
    f.__doc__ = f"{name} activation (softmax / log_softmax over the last axis)."
    return f


linear = _apply("linear")
sigmoid = _apply("sigmoid")
tanh = _apply("tanh")
softmax = _apply("softmax")
gelu = _apply("gelu")
elu = _apply("elu")
selu = _apply("selu")
softplus = _apply("softplus")
softsign = _apply("softsign")
silu = _apply("silu")
swish = silu
hard_sigmoid = _apply("hard_sigmoid")
hard_silu = _apply("hard_silu")
hard_swish = hard_silu
leaky_relu = _apply("leaky_relu")
relu6 = _apply("relu6")
exponential = _apply("exponential")
mish = _apply("mish")
log_softmax = _apply("log_softmax")
_relu_kernel = _apply("relu")


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's relu: x for x > threshold (capped at max_value), negative_slope * (x - threshold)
    below it."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return _relu_kernel(x)
    x = np.asarray(x)
    x = x if x.dtype.kind == "f" else x.astype(np.float32)
    return relu_general(x, negative_slope, max_value, threshold)


def relu_general(x, negative_slope, max_value, threshold):
    t = x.dtype.type
    y = np.where(x > t(threshold), x, t(negative_slope) * (x - t(threshold)))
    if max_value is not None:
        y = np.minimum(y, t(max_value))
    return y.astype(x.dtype, copy=False)


def relu_general_grad(dy, x, negative_slope, max_value, threshold):
    t = x.dtype.type
    d = np.where(x > t(threshold), t(1), t(negative_slope))
    if max_value is not None:
        d = np.where(x >= t(max_value), t(0), d)
    return (dy * d).astype(dy.dtype, copy=False)
