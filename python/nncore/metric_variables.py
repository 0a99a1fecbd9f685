"""State for user Metric subclasses: Keras's ``add_variable`` and the variables it returns.

A Keras metric keeps its state in variables (``self.total = self.add_variable(shape=(),
initializer="zeros")``) updated with ``assign`` / ``assign_add`` in ``update_state``, and its
default ``reset_state`` puts every variable back to its initial value. ``MetricVariables`` gives
a Metric class those methods; ``Variable`` is a float32 (or given dtype) numpy value that
numpy, keras_ops and arithmetic accept directly.
"""

from __future__ import annotations

import numpy as np

from . import initializers


class Variable:
    """A mutable array with Keras's Variable methods (assign, assign_add, assign_sub, numpy)."""

    __array_priority__ = 100

    def __init__(self, value, name=None, initializer=None):
        self._value = np.array(value)
        self.name = name
        self._initializer = initializer

    # value access
    @property
    def value(self):
        return self._value

    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return str(self._value.dtype)

    @property
    def ndim(self):
        return self._value.ndim

    def numpy(self):
        return self._value.copy()

    def __array__(self, dtype=None, copy=None):
        return self._value if dtype is None else self._value.astype(dtype)

    def __float__(self):
        return float(self._value)

    def __int__(self):
        return int(self._value)

    def __bool__(self):
        return bool(self._value)

    def __len__(self):
        return len(self._value)

    def __getitem__(self, key):
        return self._value[key]

    def __repr__(self):
        return f"<Variable name={self.name!r} shape={self.shape} value={self._value!r}>"

    # updates (in place, keeping the dtype)
    def assign(self, value):
        self._value[...] = np.asarray(value)
        return self

    def assign_add(self, delta):
        self._value[...] = self._value + np.asarray(delta)
        return self

    def assign_sub(self, delta):
        self._value[...] = self._value - np.asarray(delta)
        return self

    def _reset(self):
        self._value[...] = self._initializer(self._value.shape) if self._initializer else 0

    # arithmetic on the current value
    def __add__(self, o):
        return self._value + np.asarray(o)

    def __radd__(self, o):
        return np.asarray(o) + self._value

    def __sub__(self, o):
        return self._value - np.asarray(o)

    def __rsub__(self, o):
        return np.asarray(o) - self._value

    def __mul__(self, o):
        return self._value * np.asarray(o)

    def __rmul__(self, o):
        return np.asarray(o) * self._value

    def __truediv__(self, o):
        return self._value / np.asarray(o)

    def __rtruediv__(self, o):
        return np.asarray(o) / self._value

    def __pow__(self, o):
        return self._value ** np.asarray(o)

    def __neg__(self):
        return -self._value

    def __lt__(self, o):
        return self._value < np.asarray(o)

    def __le__(self, o):
        return self._value <= np.asarray(o)

    def __gt__(self, o):
        return self._value > np.asarray(o)

    def __ge__(self, o):
        return self._value >= np.asarray(o)


class MetricVariables:
    """Mixin for Metric: add_variable, variables, and resetting them to their initial values."""

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum",
                     name=None):
        shape = tuple(int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        init = initializers.get(initializer) if isinstance(initializer, (str, dict)) or \
            initializer is None else initializer
        dt = np.dtype(dtype or "float32")
        var = Variable(np.asarray(init(shape), dt).reshape(shape), name=name, initializer=init)
        self.__dict__.setdefault("_variables", []).append(var)
        return var

    add_weight = add_variable

    @property
    def variables(self) -> list:
        return list(self.__dict__.get("_variables", []))

    def _reset_variables(self) -> bool:
        """Reset every variable; False when the metric has none."""
        vs = self.__dict__.get("_variables")
        if not vs:
            return False
        for v in vs:
            v._reset()
        return True
