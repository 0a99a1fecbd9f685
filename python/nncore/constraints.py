"""Weight constraints, Keras 3 semantics: a constraint is a function of a weight array that
returns its projection (e.g. each column's norm clipped). A layer's ``kernel_constraint=`` (and
the other ``*_constraint`` arguments, or ``add_weight(constraint=...)``) attaches one to a
trainable weight; every optimizer step then sets ``w <- constraint(w)`` in place right after that
weight's update (after the EMA step too, as Keras's ``BaseOptimizer.apply``). Norms are computed
in float32 with ``backend.epsilon()`` (1e-7) in the denominator, as Keras."""

from __future__ import annotations

import inspect
import math
import re
import weakref

import numpy as np

from . import backend
from ._entries import from_entry

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "max_norm",
           "min_max_norm", "non_neg", "unit_norm", "get", "serialize", "deserialize"]

_f32 = np.float32


def _number(v, cls, name, lo=None):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise TypeError(f"{cls}: {name} must be a number, got {v!r}")
    if not math.isfinite(float(v)) or (lo is not None and float(v) < lo):
        bound = f" and >= {lo}" if lo is not None else ""
        raise ValueError(f"{cls}: {name} must be finite{bound}, got {v!r}")
    return v


def _axis(v, cls):
    ok = (isinstance(v, (int, np.integer)) and not isinstance(v, bool)) or (
        isinstance(v, (list, tuple)) and len(v) > 0 and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in v))
    if not ok:
        raise TypeError(f"{cls}: axis must be an integer or a non-empty list of integers, "
                        f"got {v!r}")
    return list(v) if isinstance(v, tuple) else v


def _as_weight(w, cls):
    w = np.asarray(w)
    if not np.issubdtype(w.dtype, np.floating):
        raise TypeError(f"{cls}: expected a float weight array, got dtype {w.dtype}")
    return w.astype(np.float32, copy=False)


def _norms(w, axis, cls):
    """sqrt(sum(w^2)) over axis (kept), in float32 as Keras."""
    axes = axis if isinstance(axis, list) else [axis]
    nd = w.ndim
    if any(not -nd <= int(a) < nd for a in axes) or nd == 0:
        raise ValueError(f"{cls}: axis={axis!r} is out of range for a weight of shape "
                         f"{tuple(w.shape)}")
    return np.sqrt(np.sum(np.square(w), axis=tuple(int(a) for a in axes), keepdims=True))


class Constraint:
    """Base class: callable on a weight, returning it projected (here unchanged). Subclass and
    override ``__call__(self, w)`` (w is a float32 NumPy array; return an array of its shape)."""

    def __call__(self, w):
        return w

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class MaxNorm(Constraint):
    """Each slice's L2 norm along ``axis`` is at most ``max_value``:
    ``w * clip(n, 0, max_value) / (epsilon + n)``."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = _number(max_value, "MaxNorm", "max_value", lo=0.0)
        self.axis = _axis(axis, "MaxNorm")

    def __call__(self, w):
        w = _as_weight(w, "MaxNorm")
        norms = _norms(w, self.axis, "MaxNorm")
        desired = np.clip(norms, _f32(0), _f32(self.max_value))
        return w * (desired / (_f32(backend.epsilon()) + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """``maximum(w, 0)``."""

    def __call__(self, w):
        return np.maximum(_as_weight(w, "NonNeg"), _f32(0))


class UnitNorm(Constraint):
    """Each slice along ``axis`` divided by ``epsilon + its L2 norm``."""

    def __init__(self, axis=0):
        self.axis = _axis(axis, "UnitNorm")

    def __call__(self, w):
        w = _as_weight(w, "UnitNorm")
        return w / (_f32(backend.epsilon()) + _norms(w, self.axis, "UnitNorm"))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Each slice's norm n along ``axis`` moved to
    ``rate * clip(n, min_value, max_value) + (1 - rate) * n``."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number(min_value, "MinMaxNorm", "min_value", lo=0.0)
        self.max_value = _number(max_value, "MinMaxNorm", "max_value", lo=0.0)
        if float(self.min_value) > float(self.max_value):
            raise ValueError(f"MinMaxNorm: min_value ({min_value!r}) must be <= max_value "
                             f"({max_value!r})")
        self.rate = _number(rate, "MinMaxNorm", "rate")
        self.axis = _axis(axis, "MinMaxNorm")

    def __call__(self, w):
        w = _as_weight(w, "MinMaxNorm")
        norms = _norms(w, self.axis, "MinMaxNorm")
        rate = _f32(self.rate)
        desired = (rate * np.clip(norms, _f32(self.min_value), _f32(self.max_value))
                   + (_f32(1) - rate) * norms)
        return w * (desired / (_f32(backend.epsilon()) + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


# Keras 3 aliases: keras.constraints.max_norm etc. ARE the classes.
max_norm = MaxNorm
min_max_norm = MinMaxNorm
non_neg = NonNeg
unit_norm = UnitNorm

_CLASSES = {c.__name__: c for c in (Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm)}


def _snake(name):  # Keras's to_snake_case for these names: MaxNorm -> max_norm
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# Keras 3's get looks strings up among the class names and their snake case.
_NAMES = {**_CLASSES, **{_snake(k): c for k, c in _CLASSES.items()}}


def get(identifier):
    """A constraint from None, an instance (or any callable), a class, a serialized dict or a
    name as Keras 3 accepts it ('MaxNorm' / 'max_norm', 'NonNeg' / 'non_neg', ...)."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier not in _NAMES:
            raise ValueError(f"Could not interpret constraint identifier: {identifier!r} "
                             f"(known: {sorted(_NAMES)})")
        return _NAMES[identifier]()
    if inspect.isclass(identifier):
        if not issubclass(identifier, Constraint):
            raise ValueError(f"Could not interpret constraint identifier: {identifier!r} "
                             "(a class must subclass nncore.constraints.Constraint)")
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")


def serialize(c):
    """{'class_name', 'config'} for a Constraint (None for None)."""
    if c is None:
        return None
    if not isinstance(c, Constraint):
        raise ValueError(f"cannot serialize constraint {c!r}: only nncore.constraints."
                         "Constraint instances can be saved")
    from .saving.registry import registered_name

    name = type(c).__name__ if type(c).__name__ in _CLASSES and \
        _CLASSES[type(c).__name__] is type(c) else registered_name(type(c))
    return {"class_name": name, "config": c.get_config()}


def deserialize(d, custom_objects=None):
    if d is None:
        return None
    table = dict(_CLASSES)
    name = d.get("class_name") if isinstance(d, dict) else None
    if isinstance(name, str) and name not in table:
        from .saving.registry import get_class

        # A user's Constraint subclass: registered, or passed in custom_objects / a scope.
        cls = get_class(name, custom_objects)
        if inspect.isclass(cls) and issubclass(cls, Constraint):
            table[name] = cls
    return from_entry(d, table, "constraint", errors=(TypeError, ValueError))


# ---- which weights carry a constraint (read by every optimizer step) -------------------------
# id(weight array) -> (weakref to the array, constraint). A layer registers each trainable
# weight made with a constraint; the entry goes when the array does.
_BY_WEIGHT: dict = {}


def _attach(w, constraint) -> None:
    key = id(w)

    def forget(_ref, key=key):
        entry = _BY_WEIGHT.get(key)
        if entry is not None and entry[0] is _ref:
            del _BY_WEIGHT[key]

    _BY_WEIGHT[key] = (weakref.ref(w, forget), constraint)


def _detach(w) -> None:
    entry = _BY_WEIGHT.get(id(w))
    if entry is not None and entry[0]() is w:
        del _BY_WEIGHT[id(w)]


def constraint_of(w):
    """The constraint attached to weight array w, or None."""
    entry = _BY_WEIGHT.get(id(w))
    if entry is None or entry[0]() is not w:
        return None
    return entry[1]


def _apply(w, c) -> None:
    """w <- c(w), in place."""
    out = np.asarray(c(w))
    if out.shape != w.shape:
        raise ValueError(f"constraint {type(c).__name__} returned shape {out.shape} for a "
                         f"weight of shape {w.shape}")
    w[...] = out
