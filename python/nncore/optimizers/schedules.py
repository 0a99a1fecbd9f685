"""Learning-rate schedules, as ``keras.optimizers.schedules``: callables of the optimizer step
(``optimizer.iterations``, 0-based, read before the step) returning the learning rate.

Each is computed in float32 like Keras (whose schedules run on float32 tensors), and returned as
a Python float. Formulas, with ``s`` the step:

- ExponentialDecay: ``lr0 * rate ** (s / steps)`` (``floor(s / steps)`` if staircase).
- PiecewiseConstantDecay: ``values[0]`` for ``s <= b[0]``, ``values[i]`` for
  ``b[i-1] < s <= b[i]``, ``values[-1]`` for ``s > b[-1]``.
- PolynomialDecay: ``(lr0 - end) * (1 - s' / steps') ** power + end`` with ``s' = min(s, steps)``;
  with cycle, ``steps' = steps * max(1, ceil(s / steps))`` and ``s' = s``.
- InverseTimeDecay: ``lr0 / (1 + rate * s / steps)`` (floored ratio if staircase).
- CosineDecay: without warmup ``lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * s' / steps)) + alpha)``,
  ``s' = min(s, steps)``; with ``warmup_target``, ``s' = min(s, warmup + steps)``; for
  ``s' < warmup``: ``lr0 + (target - lr0) * s' / warmup``, else the cosine decay of ``target``
  over ``s' - warmup``.
- CosineDecayRestarts: ``f = s / first``; t_mul == 1: ``i = floor(f)``, ``f -= i``; else
  ``i = floor(log(1 - f (1 - t_mul)) / log(t_mul))``,
  ``f = (f - (1 - t_mul**i) / (1 - t_mul)) / t_mul**i``;
  ``lr = lr0 * ((1 - alpha) * 0.5 * m_mul**i * (1 + cos(pi f)) + alpha)``.
"""

from __future__ import annotations

import math

import numpy as np

from .._entries import from_entry

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay",
           "PolynomialDecay", "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts",
           "serialize", "deserialize"]

_f = np.float32


def _positive(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(v)) or v <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={v!r}")
    return v


def _number(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(v)):
        raise ValueError(f"Argument `{name}` must be a finite number. Received: {name}={v!r}")
    return v


class LearningRateSchedule:
    """Base class: subclasses define ``__call__(step) -> float`` and ``get_config()``."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _RateDecay(LearningRateSchedule):
    """The shared part of ExponentialDecay and InverseTimeDecay: the same arguments, and the
    decay progress ``s / steps`` (floored if staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase, name):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _positive(decay_steps, "decay_steps")
        self.decay_rate = _number(decay_rate, "decay_rate")
        self.staircase = bool(staircase)
        self.name = name

    def _progress(self, step):
        p = _f(step) / _f(self.decay_steps)
        return np.floor(p) if self.staircase else p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_RateDecay):
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        return float(_f(self.initial_learning_rate)
                     * np.power(_f(self.decay_rate), self._progress(step)))


class PiecewiseConstantDecay(LearningRateSchedule):
    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of "
                             f"values. Received: boundaries={boundaries} of length "
                             f"{len(boundaries)}, and values={values} of length {len(values)}.")
        for b in boundaries:
            _number(b, "boundaries")
        for v in values:
            _number(v, "values")
        if any(a > b for a, b in zip(boundaries, boundaries[1:])):
            raise ValueError(f"boundaries must be increasing, got {boundaries}")
        self.boundaries, self.values, self.name = boundaries, values, name

    def __call__(self, step):
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return float(_f(v))
        return float(_f(self.values[-1]))

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _positive(decay_steps, "decay_steps")
        self.end_learning_rate = _number(end_learning_rate, "end_learning_rate")
        self.power = _number(power, "power")
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step):
        s, steps = _f(step), _f(self.decay_steps)
        if self.cycle:
            mult = _f(1.0) if s == 0 else np.ceil(s / steps)
            steps = steps * mult
        else:
            s = min(s, steps)
        p = s / steps
        lr0, end = _f(self.initial_learning_rate), _f(self.end_learning_rate)
        return float((lr0 - end) * np.power(_f(1) - p, _f(self.power)) + end)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(_RateDecay):
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        return float(_f(self.initial_learning_rate)
                     / (_f(1) + _f(self.decay_rate) * self._progress(step)))


def _cosine(frac, alpha):
    return (_f(1) - _f(alpha)) * (_f(0.5) * (_f(1) + np.cos(_f(math.pi) * frac))) + _f(alpha)


class CosineDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _positive(decay_steps, "decay_steps")
        self.alpha = _number(alpha, "alpha")
        self.name = name
        self.warmup_target = None if warmup_target is None else _number(warmup_target,
                                                                         "warmup_target")
        self.warmup_steps = _number(warmup_steps, "warmup_steps")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")

    def __call__(self, step):
        lr0, steps, s = _f(self.initial_learning_rate), _f(self.decay_steps), _f(step)
        if self.warmup_target is None:
            return float(lr0 * _cosine(min(s, steps) / steps, self.alpha))
        target, warm = _f(self.warmup_target), _f(self.warmup_steps)
        s = min(s, steps + warm)
        if s < warm:
            return float((target - lr0) * (s / warm) + lr0)
        return float(target * _cosine((s - warm) / steps, self.alpha))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.first_decay_steps = _positive(first_decay_steps, "first_decay_steps")
        self._t_mul = _positive(t_mul, "t_mul")
        self._m_mul = _number(m_mul, "m_mul")
        self.alpha = _number(alpha, "alpha")
        self.name = name

    def __call__(self, step):
        frac = _f(step) / _f(self.first_decay_steps)
        t_mul = _f(self._t_mul)
        if t_mul == 1:
            i = np.floor(frac)
            frac = frac - i
        else:
            i = np.floor(np.log(_f(1) - frac * (_f(1) - t_mul)) / np.log(t_mul))
            sum_r = (_f(1) - np.power(t_mul, i)) / (_f(1) - t_mul)
            frac = (frac - sum_r) / np.power(t_mul, i)
        m_fac = np.power(_f(self._m_mul), i)
        cos = _f(0.5) * m_fac * (_f(1) + np.cos(_f(math.pi) * frac))
        return float(_f(self.initial_learning_rate)
                     * ((_f(1) - _f(self.alpha)) * cos + _f(self.alpha)))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


_BY_CLASS = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
                                     InverseTimeDecay, CosineDecay, CosineDecayRestarts)}


def serialize(schedule) -> dict:
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(d) -> LearningRateSchedule:
    return from_entry(d, _BY_CLASS, "learning rate schedule", exact=False)
