"""Weight regularizers, Keras semantics: penalty = l1 * sum(|w|) + l2 * sum(w^2) is added to the
reported loss; its gradient l1 * sign(w) + 2 * l2 * w is added to the weight's gradient inside the
fused optimizer update."""

from __future__ import annotations

import math

import numpy as np


def _coef(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)):
        raise TypeError(f"{name} must be a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {v}")
    return v


class Regularizer:
    l1 = 0.0
    l2 = 0.0

    def __call__(self, w) -> float:
        w = np.asarray(w, dtype=np.float64)
        out = 0.0
        if self.l1:
            out += self.l1 * float(np.abs(w).sum())
        if self.l2:
            out += self.l2 * float(np.square(w).sum())
        return out

    def get_config(self):
        raise NotImplementedError


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _coef(l1, "l1"), _coef(l2, "l2")

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    def __init__(self, l1=0.01):
        self.l1 = _coef(l1, "l1")

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        self.l2 = _coef(l2, "l2")

    def get_config(self):
        return {"l2": self.l2}


def l1(l1=0.01):  # noqa: D103 - Keras alias
    return L1(l1)


def l2(l2=0.01):  # noqa: D103
    return L2(l2)


def l1_l2(l1=0.01, l2=0.01):  # noqa: D103
    return L1L2(l1, l2)


_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_NAMES = {"l1": L1, "l2": L2, "l1_l2": lambda: L1L2(0.01, 0.01)}


def get(identifier):
    """A Regularizer from None, a name ('l1', 'l2', 'l1_l2'), an instance or a serialized dict."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in _NAMES:
        return _NAMES[identifier]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"unknown regularizer {identifier!r}; expected 'l1', 'l2', 'l1_l2' or an "
                     "instance of nncore.regularizers.Regularizer")


def serialize(reg):
    if reg is None:
        return None
    return {"class_name": type(reg).__name__, "config": reg.get_config()}


def deserialize(d):
    if d is None:
        return None
    if (not isinstance(d, dict) or set(d) != {"class_name", "config"}
            or d["class_name"] not in _CLASSES or not isinstance(d["config"], dict)):
        raise ValueError(f"invalid regularizer config {d!r}")
    try:
        return _CLASSES[d["class_name"]](**d["config"])
    except TypeError as e:
        raise ValueError(f"invalid regularizer config {d!r}: {e}") from None
