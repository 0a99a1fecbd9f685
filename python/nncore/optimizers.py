"""SGD, Adam and RMSprop with Keras's defaults and formulas. Each step is one fused C++ pass per
parameter: the L1/L2 gradient is added and the weight and its slots are updated in place."""

from __future__ import annotations

import math

import numpy as np

from . import _core
from .ops import train as _train


def _num(v, name, lo=0.0, hi=math.inf, lo_open=False):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
        raise ValueError(f"{name} out of range: {v}")
    return v


class Optimizer:
    def __init__(self, learning_rate, name):
        self.learning_rate = learning_rate
        self.name = name
        self.iterations = 0
        self._slots = None

    @property
    def learning_rate(self) -> float:
        return self._lr

    @learning_rate.setter
    def learning_rate(self, v):
        self._lr = _num(v, "learning_rate")

    def _make_slots(self, w) -> tuple:
        return ()

    def build(self, params) -> None:
        """Create the slots (moments) of every parameter not seen before."""
        if self._slots is None:
            self._slots = {}
        for w in params:
            self._slots_for(w)

    def _slots_for(self, w) -> tuple:
        # Keyed by the identity of the weight array, like Keras keys slots by variable: an
        # optimizer reused on another model, or after trainable changes, never hands one weight's
        # moments to another. The entry keeps a reference to w so its id cannot be reused.
        entry = self._slots.get(id(w))
        if entry is None or entry[0] is not w or entry[1] != (w.shape, w.dtype):
            entry = (w, (w.shape, w.dtype), self._make_slots(w))
            self._slots[id(w)] = entry
        return entry[2]

    def apply(self, params, grads, regs) -> None:
        """One step: every params[i] -= update(grads[i] + regularization gradient) in place."""
        if self._slots is None:
            self._slots = {}
        self.iterations += 1
        for w, g, r in zip(params, grads, regs):
            slots = self._slots_for(w)
            l1 = r.l1 if r is not None else 0.0
            l2 = r.l2 if r is not None else 0.0
            self._update(w, g, slots, l1, l2)

    def get_config(self) -> dict:
        return {"name": self.name, "learning_rate": self.learning_rate}


class SGD(Optimizer):
    """momentum 0: w -= lr*g. Else v = momentum*v - lr*g; w += v
    (nesterov: w += momentum*v - lr*g)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD"):
        super().__init__(learning_rate, name)
        self.momentum = _num(momentum, "momentum", 0.0, 1.0)
        self.nesterov = bool(nesterov)

    def _make_slots(self, w):
        return (np.zeros_like(w),) if self.momentum else (None,)

    def _update(self, w, g, slots, l1, l2):
        _train.sgd_update(w, g, slots[0], learning_rate=self._lr, momentum=self.momentum,
                          nesterov=self.nesterov, l1=l1, l2=l2)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """alpha = lr*sqrt(1-beta_2^t)/(1-beta_1^t); m += (g-m)(1-beta_1); v += (g^2-v)(1-beta_2);
    w -= alpha*m/(sqrt(v) + epsilon)  (Keras: epsilon outside the sqrt, not bias-corrected)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 name="adam"):
        super().__init__(learning_rate, name)
        self.beta_1 = _num(beta_1, "beta_1", 0.0, 1.0)
        self.beta_2 = _num(beta_2, "beta_2", 0.0, 1.0)
        self.epsilon = _num(epsilon, "epsilon")
        if amsgrad:
            raise ValueError("Adam(amsgrad=True) is not supported")

    def _make_slots(self, w):
        return np.zeros_like(w), np.zeros_like(w)

    def apply(self, params, grads, regs):
        # The bias-corrected step size, computed once per step in float32 as Keras does.
        t = np.float32(self.iterations + 1)
        b1p = np.float32(self.beta_1) ** t
        b2p = np.float32(self.beta_2) ** t
        self._alpha = float(np.float32(self._lr) * np.sqrt(np.float32(1) - b2p)
                            / (np.float32(1) - b1p))
        super().apply(params, grads, regs)

    def _update(self, w, g, slots, l1, l2):
        # _core checks dtypes and sizes again; grads come from our own layers.
        _core.adam_update(w, g, slots[0], slots[1], self._alpha, self.beta_1, self.beta_2,
                          self.epsilon, l1, l2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """v = rho*v + (1-rho)*g^2; inc = lr*g/sqrt(v + epsilon) (centered: v - avg^2 + epsilon);
    momentum: m = momentum*m + inc, w -= m; else w -= inc."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name="rmsprop"):
        super().__init__(learning_rate, name)
        self.rho = _num(rho, "rho", 0.0, 1.0)
        self.momentum = _num(momentum, "momentum", 0.0, 1.0)
        self.epsilon = _num(epsilon, "epsilon")
        self.centered = bool(centered)

    def _make_slots(self, w):
        return (np.zeros_like(w), np.zeros_like(w) if self.momentum else None,
                np.zeros_like(w) if self.centered else None)

    def _update(self, w, g, slots, l1, l2):
        _train.rmsprop_update(w, g, slots[0], slots[1], slots[2], learning_rate=self._lr,
                              rho=self.rho, momentum=self.momentum, epsilon=self.epsilon,
                              l1=l1, l2=l2)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


_REGISTRY = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}
_BY_CLASS = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}


def get(identifier) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _REGISTRY:
        return _REGISTRY[identifier.lower()]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"unknown optimizer {identifier!r}; expected 'sgd', 'adam', 'rmsprop' or an "
                     "nncore.optimizers.Optimizer")


def serialize(opt: Optimizer) -> dict:
    return {"class_name": type(opt).__name__, "config": opt.get_config()}


def deserialize(d) -> Optimizer:
    if (not isinstance(d, dict) or set(d) != {"class_name", "config"}
            or d["class_name"] not in _BY_CLASS or not isinstance(d["config"], dict)):
        raise ValueError(f"invalid optimizer config {d!r}")
    try:
        return _BY_CLASS[d["class_name"]](**d["config"])
    except TypeError as e:
        raise ValueError(f"invalid optimizer config {d!r}: {e}") from None
