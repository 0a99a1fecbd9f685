"""Weight regularizers, Keras semantics: penalty = l1 * sum(|w|) + l2 * sum(w^2) is added to the
reported loss; its gradient l1 * sign(w) + 2 * l2 * w is added to the weight's gradient inside the
fused optimizer update."""

from __future__ import annotations

import math

import numpy as np

from ._entries import from_entry


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
    """l1 * sum(|w|) + l2 * sum(w^2). Keras 3 defaults: L1L2() (= l1_l2() = 'l1l2') is 0, 0."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _coef(0.0 if l1 is None else l1, "l1")
        self.l2 = _coef(0.0 if l2 is None else l2, "l2")

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """l1 * sum(|w|); default l1=0.01 (Keras 3)."""

    def __init__(self, l1=0.01):
        self.l1 = _coef(0.01 if l1 is None else l1, "l1")

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """l2 * sum(w^2); default l2=0.01 (Keras 3)."""

    def __init__(self, l2=0.01):
        self.l2 = _coef(0.01 if l2 is None else l2, "l2")

    def get_config(self):
        return {"l2": self.l2}


# Keras 3 aliases: keras.regularizers.l1 / l2 / l1_l2 ARE the classes L1 / L2 / L1L2, so
# l1_l2() has Keras 3's L1L2 defaults l1=0.0, l2=0.0 (Keras 2's function defaulted to 0.01, 0.01).
l1 = L1
l2 = L2
l1_l2 = L1L2

_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
# Keras 3's keras.regularizers.get looks strings up among the class names and their snake case
# (to_snake_case("L1L2") == "l1l2"); 'l1_l2' is not among them and raises there too.
_NAMES = {**_CLASSES, "l1": L1, "l2": L2, "l1l2": L1L2}


def get(identifier):
    """A Regularizer from None, an instance, a serialized dict or a name as Keras 3 accepts it:
    'l1' / 'L1' (0.01), 'l2' / 'L2' (0.01), 'l1l2' / 'L1L2' (l1=0, l2=0)."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in _NAMES:
        return _NAMES[identifier]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    hint = ("; Keras 3 does not accept 'l1_l2' either: use 'l1l2' (l1=l2=0) or "
            "regularizers.L1L2(l1=0.01, l2=0.01)") if identifier == "l1_l2" else ""
    raise ValueError(f"unknown regularizer {identifier!r}; expected 'l1', 'l2', 'l1l2', 'L1', "
                     f"'L2', 'L1L2' or an instance of nncore.regularizers.Regularizer{hint}")


def serialize(reg):
    if reg is None:
        return None
    return {"class_name": type(reg).__name__, "config": reg.get_config()}


def deserialize(d):
    if d is None:
        return None
    return from_entry(d, _CLASSES, "regularizer", call=True)
