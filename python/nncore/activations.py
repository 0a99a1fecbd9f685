"""Activation functions by name: linear, relu, sigmoid, tanh, softmax (last axis).

Each is a C++ kernel (nncore.ops.activation); the backward uses the forward output.
"""

from __future__ import annotations

import numpy as np

from .ops import train as _train

NAMES = ("linear", "relu", "sigmoid", "tanh", "softmax")


def get(identifier) -> str:
    """Canonical activation name from a string, None (linear) or one of this module's functions."""
    if identifier is None:
        return "linear"
    if callable(identifier) and getattr(identifier, "__name__", None) in NAMES:
        return identifier.__name__
    if isinstance(identifier, str) and identifier in NAMES:
        return identifier
    raise ValueError(f"unknown activation {identifier!r}; nncore supports {list(NAMES)}")


def serialize(name: str) -> str:
    return name


def _apply(name):
    def f(x):
        return _train.activation(np.asarray(x, dtype=np.float32), name)

    f.__name__ = name
    f.__doc__ = f"{name} activation on a float32 array (softmax over the last axis)."
    return f


linear = _apply("linear")
relu = _apply("relu")
sigmoid = _apply("sigmoid")
tanh = _apply("tanh")
softmax = _apply("softmax")
