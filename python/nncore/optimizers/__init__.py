"""Optimizers with Keras 3's defaults and formulas: SGD, Adam, AdamW, RMSprop, Nadam, Adamax,
Adagrad, Adadelta, Ftrl, Lion.

Each step is one fused C++ pass per parameter: the L1/L2 regularization gradient
(``l1 * sign(w) + 2 * l2 * w``) is added to the gradient, the decoupled weight decay
(``w -= weight_decay * lr * w``, before the step, as Keras) is applied, and the weight and its
slots are updated in place.

The options every optimizer takes, as Keras's base optimizer:

- ``learning_rate``: a number or a ``schedules.LearningRateSchedule``, evaluated at
  ``iterations`` (0 for the first step);
- ``weight_decay``: ``w -= weight_decay * lr * w`` before each step (SGD and RMSprop do it in a
  NumPy pass before their kernel; the others inside it);
- ``clipnorm`` (each gradient rescaled to L2 norm at most clipnorm), ``global_clipnorm`` (all
  gradients rescaled together so their joint norm is at most it), ``clipvalue`` (element-wise
  clip to [-v, v]); at most one. In Keras the regularization penalty is part of the loss, so the
  clipped gradient includes the L1/L2 term: when clipping is on, that term is added (un-fused)
  before clipping;
- ``use_ema``, ``ema_momentum``, ``ema_overwrite_frequency``: after each step
  ``ema = m * ema + (1 - m) * w`` (m = 0 on the first step), and every
  ``ema_overwrite_frequency`` steps the weights are replaced by their average.

``get_state(params)`` / ``set_state(params, arrays)`` save and restore the whole optimizer state
(step count, slots, EMA) in a fixed order, so training resumes exactly.

A weight made with a constraint (``kernel_constraint=...``, ``add_weight(constraint=...)``) is
projected, ``w <- constraint(w)`` in place, at the end of every ``apply`` that updates it (after
the EMA step), as Keras 3's ``BaseOptimizer.apply``: in ``fit``, ``train_on_batch`` and custom
loops alike.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from .. import _core
from .. import constraints as _constraints
from .._entries import from_entry
from ..kernels import train as _train
from . import schedules
from .schedules import LearningRateSchedule

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Nadam", "Adamax", "Adagrad",
           "Adadelta", "Ftrl", "Lion", "get", "serialize", "deserialize", "schedules"]

_f32 = np.float32


def _num(v, name, lo=0.0, hi=math.inf, lo_open=False, hi_open=False):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {v!r}")
    v = float(v)
    if (not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo)
            or (hi_open and v == hi)):
        lb = "(" if lo_open else "["
        hb = ")" if hi_open else "]"
        raise ValueError(f"{name} must be in {lb}{lo}, {hi}{hb}, got {v}")
    return v


def _opt_num(v, name, **kw):
    return None if v is None else _num(v, name, **kw)


def _reg_grad(g, w, r):
    """g + the gradient of the L1/L2 penalty of w (a new array)."""
    if r is None or (not r.l1 and not r.l2):
        return g
    out = np.asarray(g, np.float32).copy()
    if r.l1:
        out += _f32(r.l1) * np.sign(w)
    if r.l2:
        out += _f32(2.0 * r.l2) * w
    return out


class _SlotTable(dict):
    """id(weight) -> _SlotEntry (a dict subclass so that entries can refer to it weakly)."""


class _SlotEntry:
    """One weight's slots (and EMA), holding the weight only weakly. No reference cycle: the
    weakref's callback knows the table weakly, so a dropped entry or optimizer is freed at
    once, without waiting for the garbage collector."""

    __slots__ = ("weight", "shape", "dtype", "slots", "ema")

    def __init__(self, w, key, table, slots, ema):
        table_ref = weakref.ref(table)

        def forget(ref):
            t = table_ref()
            e = None if t is None else t.get(key)
            if e is not None and e.weight is ref:  # not a newer entry for another array
                del t[key]
        try:
            self.weight = weakref.ref(w, forget)
        except TypeError:  # an array type without weak references: keep it (the id stays valid)
            self.weight = lambda: w
        self.shape, self.dtype, self.slots, self.ema = w.shape, w.dtype, slots, ema


class Optimizer:
    # True when the subclass's kernel applies the decoupled weight decay itself (wd_lr argument).
    _fused_decay = True

    def __init__(self, learning_rate, name, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None):
        self._schedule = None
        self.learning_rate = learning_rate
        self.name = name
        self.iterations = 0
        self._slots = None
        self.weight_decay = _opt_num(weight_decay, "weight_decay")
        self.clipnorm = _opt_num(clipnorm, "clipnorm", lo_open=True)
        self.clipvalue = _opt_num(clipvalue, "clipvalue", lo_open=True)
        self.global_clipnorm = _opt_num(global_clipnorm, "global_clipnorm", lo_open=True)
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be "
                             f"set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        self.use_ema = bool(use_ema)
        self.ema_momentum = _num(ema_momentum, "ema_momentum", 0.0, 1.0)
        if ema_overwrite_frequency is not None and (
                isinstance(ema_overwrite_frequency, bool)
                or not isinstance(ema_overwrite_frequency, (int, np.integer))
                or ema_overwrite_frequency < 1):
            raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. "
                             f"Received: ema_overwrite_frequency={ema_overwrite_frequency}")
        self.ema_overwrite_frequency = (None if ema_overwrite_frequency is None
                                        else int(ema_overwrite_frequency))

    # ---- learning rate ---------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The learning rate of the next step (the schedule's value at `iterations`)."""
        if self._schedule is not None:
            return float(self._schedule(self.iterations))
        return self._lr

    @learning_rate.setter
    def learning_rate(self, v):
        if isinstance(v, LearningRateSchedule):
            self._schedule = v
            return
        if self._schedule is not None:
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as "
                            "its `learning_rate` constructor argument, hence its learning rate "
                            "is not settable.")
        self._lr = _num(v, "learning_rate")

    # ---- slots -------------------------------------------------------------------------------
    # As Keras ties each slot variable to the model variable it was made from, every entry of
    # the slot table belongs to one weight array: it is keyed by id(w) but holds only a weak
    # reference to w, and is dropped when w is freed (the weakref callback runs before the
    # memory, hence the id, can be reused). So an optimizer reused across models, or kept while
    # models are rebuilt, never keeps an old model's weights or moments alive, and a new array
    # that happens to get a dead one's id starts with fresh slots.
    def _make_slots(self, w) -> tuple:
        return ()

    def build(self, params) -> None:
        """Create the slots (moments) of every parameter not seen before."""
        for w in params:
            self._entry(w)

    @property
    def built(self) -> bool:
        """True once some parameter has slots (a step was taken, or build/set_state ran)."""
        return bool(self._slots)

    def _entry(self, w, slots=None) -> _SlotEntry:
        """w's slot entry, created (fresh, or from `slots`) when w has none yet or its entry
        no longer matches it."""
        if self._slots is None:
            self._slots = _SlotTable()
        table = self._slots
        key = id(w)
        entry = table.get(key)
        if (slots is None and entry is not None and entry.weight() is w
                and entry.shape == w.shape and entry.dtype == w.dtype):
            return entry
        entry = _SlotEntry(w, key, table, self._make_slots(w) if slots is None else slots,
                           w.copy() if self.use_ema else None)
        table[key] = entry
        return entry

    def __getstate__(self):
        # Weak references do not pickle: the slots travel beside their weights. Pickled with the
        # model (pickle, copy.deepcopy), each weight is the same object as the layer's, so the
        # copy's entries belong to the copy's weights.
        state = self.__dict__.copy()
        table = state.pop("_slots", None) or {}
        state["_slots"] = None
        state["_pickled_slots"] = [(e.weight(), e.slots, e.ema) for e in list(table.values())
                                   if e.weight() is not None]
        return state

    def __setstate__(self, state):
        pickled = state.pop("_pickled_slots", ())
        self.__dict__.update(state)
        for w, slots, ema in pickled:
            self._entry(w, tuple(slots)).ema = ema

    def _slots_for(self, w) -> tuple:
        return self._entry(w).slots

    def _set_slots(self, w, slots) -> None:
        """Give w these slot arrays (same kinds as _make_slots returns), e.g. from a file."""
        self._entry(w, tuple(slots))

    # ---- one step ----------------------------------------------------------------------------
    def _clip(self, grads):
        if self.clipnorm:
            out = []
            for g in grads:
                g = np.asarray(g, np.float32)
                l2 = _f32(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
                out.append((g * _f32(self.clipnorm) / max(l2, _f32(self.clipnorm)))
                           .astype(np.float32))
            return out
        if self.global_clipnorm:
            norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
            c = self.global_clipnorm
            scale = _f32(c * min(1.0 / norm, 1.0 / c)) if norm > 0 else _f32(1.0)
            if not math.isfinite(norm):
                scale = _f32(np.nan)
            return [(np.asarray(g, np.float32) * scale).astype(np.float32) for g in grads]
        v = _f32(self.clipvalue)
        return [np.clip(g, -v, v).astype(np.float32) for g in grads]

    def _prepare(self, lr) -> None:
        """Per-step scalars (bias corrections) before the updates; lr is this step's rate."""

    def apply(self, params, grads, regs) -> None:
        """One step: every params[i] updated in place from grads[i] (+ the L1/L2 gradient of
        regs[i], a regularizer with .l1/.l2 or None)."""
        params, grads, regs = list(params), list(grads), list(regs)
        lr = float(_f32(self.learning_rate))
        self._lr_step = lr
        if self.clipnorm or self.global_clipnorm or self.clipvalue:
            grads = self._clip([_reg_grad(g, w, r) for w, g, r in zip(params, grads, regs)])
            regs = [None] * len(params)
        wd_lr = float(_f32(self.weight_decay) * _f32(lr)) if self.weight_decay else 0.0
        self._prepare(lr)
        for w, g, r in zip(params, grads, regs):
            slots = self._slots_for(w)
            l1 = r.l1 if r is not None else 0.0
            l2 = r.l2 if r is not None else 0.0
            if wd_lr and not self._fused_decay:
                g = _reg_grad(g, w, r)  # the penalty's gradient at the weight before the decay
                l1 = l2 = 0.0
                w -= w * _f32(wd_lr)
                self._update(w, g, slots, l1, l2, 0.0)
            else:
                self._update(w, g, slots, l1, l2, wd_lr)
        if self.use_ema:
            m = _f32(self.ema_momentum if self.iterations else 0.0)
            overwrite = (self.ema_overwrite_frequency
                         and (self.iterations + 1) % self.ema_overwrite_frequency == 0)
            for w in params:
                ema = self._entry(w).ema
                ema *= m
                ema += (_f32(1) - m) * w
                if overwrite:
                    w[...] = ema
        # Keras 3 (BaseOptimizer.apply): each updated weight that carries a constraint is
        # projected right after the update, w <- constraint(w), in place.
        for w in params:
            c = _constraints.constraint_of(w)
            if c is not None:
                _constraints._apply(w, c)
        self.iterations += 1

    def _update(self, w, g, slots, l1, l2, wd_lr):
        raise NotImplementedError

    def finalize_variable_values(self, params) -> None:
        """With use_ema: replace the weights by their moving averages (Keras does this at the
        end of fit)."""
        if self.use_ema and self._slots:
            for w in params:
                entry = self._slots.get(id(w))
                if entry is not None and entry.weight() is w:
                    w[...] = entry.ema

    # ---- state for saving --------------------------------------------------------------------
    def _scalar_state(self) -> list:
        return []

    def _set_scalar_state(self, values) -> None:
        pass

    def get_state(self, params) -> list:
        """[iterations (int64 scalar array), optimizer scalars..., then for each param in order
        its slots (None slots skipped) and its EMA (with use_ema)] as copies."""
        self.build(params)
        out = [np.array(self.iterations, np.int64)]
        out += [np.array(v, np.float32) for v in self._scalar_state()]
        for w in params:
            entry = self._entry(w)
            out += [s.copy() for s in entry.slots if s is not None]
            if self.use_ema:
                out.append(entry.ema.copy())
        return out

    def set_state(self, params, arrays) -> None:
        """Restore what get_state(params) returned (for the same parameter shapes)."""
        self.build(params)
        arrays = list(arrays)
        n_scalar = len(self._scalar_state())
        want = 1 + n_scalar + sum(
            sum(s is not None for s in self._entry(w).slots) + self.use_ema for w in params)
        if len(arrays) != want:
            raise ValueError(f"{type(self).__name__}.set_state: expected {want} arrays for "
                             f"{len(params)} parameters, got {len(arrays)}")
        it = np.asarray(arrays[0])
        if it.shape != () or it.dtype.kind not in "iu" or int(it) < 0:
            raise ValueError(f"set_state: iterations must be a non-negative integer scalar, got "
                             f"{arrays[0]!r}")
        self._set_scalar_state([float(a) for a in arrays[1:1 + n_scalar]])
        k = 1 + n_scalar
        for w in params:
            entry = self._entry(w)
            targets = [s for s in entry.slots if s is not None]
            if self.use_ema:
                targets.append(entry.ema)
            for t in targets:
                a = np.asarray(arrays[k])
                if a.shape != t.shape:
                    raise ValueError(f"set_state: array {k} has shape {a.shape}, expected "
                                     f"{t.shape}")
                t[...] = a
                k += 1
        self.iterations = int(it)

    # ---- config ------------------------------------------------------------------------------
    def get_config(self) -> dict:
        lr = (schedules.serialize(self._schedule) if self._schedule is not None else self._lr)
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
                "clipvalue": self.clipvalue, "use_ema": self.use_ema,
                "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = schedules.deserialize(lr)
        return cls(**config)


class SGD(Optimizer):
    """momentum 0: w -= lr*g. Else v = momentum*v - lr*g; w += v
    (nesterov: w += momentum*v - lr*g)."""

    _fused_decay = False

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.momentum = _num(momentum, "momentum", 0.0, 1.0)
        self.nesterov = bool(nesterov)

    def _make_slots(self, w):
        return (np.zeros_like(w),) if self.momentum else (None,)

    def _update(self, w, g, slots, l1, l2, wd_lr):
        _train.sgd_update(w, g, slots[0], learning_rate=self._lr_step, momentum=self.momentum,
                          nesterov=self.nesterov, l1=l1, l2=l2)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


def _beta(v, name):
    # beta = 1 never forgets the zero start: 1 - beta^t = 0 and the step is infinite.
    return _num(v, name, 0.0, 1.0, hi_open=True)


class Adam(Optimizer):
    """alpha = lr*sqrt(1-beta_2^t)/(1-beta_1^t); m += (g-m)(1-beta_1); v += (g^2-v)(1-beta_2);
    amsgrad: vhat = max(vhat, v), used for v; w -= alpha*m/(sqrt(v) + epsilon)
    (Keras: epsilon outside the sqrt, not bias-corrected). beta_1, beta_2 in [0, 1)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 name="adam", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1 = _beta(beta_1, "beta_1")
        self.beta_2 = _beta(beta_2, "beta_2")
        self.epsilon = _num(epsilon, "epsilon")
        self.amsgrad = bool(amsgrad)

    def _make_slots(self, w):
        return (np.zeros_like(w), np.zeros_like(w),
                np.zeros_like(w) if self.amsgrad else None)

    def _prepare(self, lr):
        # The bias-corrected step size, computed once per step in float32 as Keras does.
        t = _f32(self.iterations + 1)
        b1p = _f32(self.beta_1) ** t
        b2p = _f32(self.beta_2) ** t
        self._alpha = float(_f32(lr) * np.sqrt(_f32(1) - b2p) / (_f32(1) - b1p))

    def _update(self, w, g, slots, l1, l2, wd_lr):
        # _core checks dtypes and sizes again; grads come from our own layers.
        if self.amsgrad or wd_lr:
            _core.adamw_update(w, g, slots[0], slots[1], slots[2], self._alpha, self.beta_1,
                               self.beta_2, self.epsilon, wd_lr, l1, l2)
        else:
            _core.adam_update(w, g, slots[0], slots[1], self._alpha, self.beta_1, self.beta_2,
                              self.epsilon, l1, l2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004): w -= weight_decay*lr*w, then Adam."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, name="adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, name,
                         weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """v = rho*v + (1-rho)*g^2; inc = lr*g/sqrt(v + epsilon) (centered: v - avg^2 + epsilon);
    momentum: m = momentum*m + inc, w -= m; else w -= inc."""

    _fused_decay = False

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name="rmsprop", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.rho = _num(rho, "rho", 0.0, 1.0)
        self.momentum = _num(momentum, "momentum", 0.0, 1.0)
        self.epsilon = _num(epsilon, "epsilon")
        self.centered = bool(centered)

    def _make_slots(self, w):
        return (np.zeros_like(w), np.zeros_like(w) if self.momentum else None,
                np.zeros_like(w) if self.centered else None)

    def _update(self, w, g, slots, l1, l2, wd_lr):
        _train.rmsprop_update(w, g, slots[0], slots[1], slots[2], learning_rate=self._lr_step,
                              rho=self.rho, momentum=self.momentum, epsilon=self.epsilon,
                              l1=l1, l2=l2)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Nadam(Optimizer):
    """u_t = beta_1*(1 - 0.5*0.96^t); u_prod_t = prod_{i<=t} u_i; m += (g-m)(1-beta_1);
    v += (g^2-v)(1-beta_2); m_hat = u_{t+1}*m/(1 - u_prod_t*u_{t+1}) + (1-u_t)*g/(1-u_prod_t);
    v_hat = v/(1-beta_2^t); w -= lr*m_hat/(sqrt(v_hat) + epsilon)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="nadam", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1 = _beta(beta_1, "beta_1")
        self.beta_2 = _beta(beta_2, "beta_2")
        self.epsilon = _num(epsilon, "epsilon")
        self._u_product = 1.0

    def _make_slots(self, w):
        return np.zeros_like(w), np.zeros_like(w)

    def _scalar_state(self):
        return [self._u_product]

    def _set_scalar_state(self, values):
        self._u_product = float(_f32(values[0]))

    def _prepare(self, lr):
        t = _f32(self.iterations + 1)
        b1, d = _f32(self.beta_1), _f32(0.96)
        u_t = b1 * (_f32(1) - _f32(0.5) * d ** t)
        u_t1 = b1 * (_f32(1) - _f32(0.5) * d ** (t + _f32(1)))
        up = _f32(self._u_product) * u_t
        self._u_product = float(up)
        up1 = up * u_t1
        self._c = (float(u_t1 / (_f32(1) - up1)), float((_f32(1) - u_t) / (_f32(1) - up)),
                   float(_f32(1) - _f32(self.beta_2) ** t))

    def _update(self, w, g, slots, l1, l2, wd_lr):
        c1, c2, bias2 = self._c
        _core.nadam_update(w, g, slots[0], slots[1], self._lr_step, self.beta_1, self.beta_2,
                           self.epsilon, c1, c2, bias2, wd_lr, l1, l2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adamax(Optimizer):
    """m += (g-m)(1-beta_1); u = max(beta_2*u, |g|); w -= lr*m/((1-beta_1^t)(u + epsilon))."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="adamax", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1 = _beta(beta_1, "beta_1")
        self.beta_2 = _num(beta_2, "beta_2", 0.0, 1.0)
        self.epsilon = _num(epsilon, "epsilon")

    def _make_slots(self, w):
        return np.zeros_like(w), np.zeros_like(w)

    def _prepare(self, lr):
        self._bias1 = float(_f32(1) - _f32(self.beta_1) ** _f32(self.iterations + 1))

    def _update(self, w, g, slots, l1, l2, wd_lr):
        _core.adamax_update(w, g, slots[0], slots[1], self._lr_step, self.beta_1, self.beta_2,
                            self.epsilon, self._bias1, wd_lr, l1, l2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adagrad(Optimizer):
    """acc (starts at initial_accumulator_value) += g^2; w -= lr*g/sqrt(acc + epsilon)."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 name="adagrad", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.initial_accumulator_value = _num(initial_accumulator_value,
                                              "initial_accumulator_value")
        self.epsilon = _num(epsilon, "epsilon")

    def _make_slots(self, w):
        return (np.full_like(w, self.initial_accumulator_value),)

    def _update(self, w, g, slots, l1, l2, wd_lr):
        _core.adagrad_update(w, g, slots[0], self._lr_step, self.epsilon, wd_lr, l1, l2)

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """ag = rho*ag + (1-rho)*g^2; d = -sqrt(adx + epsilon)*g/sqrt(ag + epsilon);
    adx = rho*adx + (1-rho)*d^2; w += lr*d."""

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name="adadelta", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.rho = _num(rho, "rho", 0.0, 1.0)
        self.epsilon = _num(epsilon, "epsilon")

    def _make_slots(self, w):
        return np.zeros_like(w), np.zeros_like(w)

    def _update(self, w, g, slots, l1, l2, wd_lr):
        _core.adadelta_update(w, g, slots[0], slots[1], self._lr_step, self.rho, self.epsilon,
                              wd_lr, l1, l2)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Ftrl(Optimizer):
    """p = -learning_rate_power; a' = a + g^2;
    lin += g + 2*l2_shrinkage*w - (a'^p - a^p)/lr*w;
    w = (clip(lin, -l1, l1) - lin) / (a'^p/lr + 2*(l2 + beta/(2*lr))); a = a'
    (l1, l2: l1_/l2_regularization_strength; accumulators start at initial_accumulator_value)."""

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0, name="ftrl", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.learning_rate_power = _num(learning_rate_power, "learning_rate_power", -math.inf,
                                        0.0)
        self.initial_accumulator_value = _num(initial_accumulator_value,
                                              "initial_accumulator_value")
        self.l1_regularization_strength = _num(l1_regularization_strength,
                                               "l1_regularization_strength")
        self.l2_regularization_strength = _num(l2_regularization_strength,
                                               "l2_regularization_strength")
        self.l2_shrinkage_regularization_strength = _num(
            l2_shrinkage_regularization_strength, "l2_shrinkage_regularization_strength")
        self.beta = _num(beta, "beta")

    def _make_slots(self, w):
        return np.full_like(w, self.initial_accumulator_value), np.zeros_like(w)

    def _update(self, w, g, slots, l1, l2, wd_lr):
        lr = self._lr_step
        if lr <= 0:
            raise ValueError("Ftrl needs a learning rate > 0 (it divides by it)")
        l2s = float(_f32(self.l2_regularization_strength) + _f32(self.beta) / (_f32(2) * _f32(lr)))
        _core.ftrl_update(w, g, slots[0], slots[1], lr, self.learning_rate_power,
                          self.l1_regularization_strength, l2s,
                          self.l2_shrinkage_regularization_strength, wd_lr, l1, l2)

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength":
                    self.l2_shrinkage_regularization_strength,
                "beta": self.beta}


class Lion(Optimizer):
    """w -= lr*sign(beta_1*m + (1-beta_1)*g); m = beta_2*m + (1-beta_2)*g. beta_1 in (0, 1]."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, name="lion", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1 = _num(beta_1, "beta_1", 0.0, 1.0, lo_open=True)
        self.beta_2 = _num(beta_2, "beta_2", 0.0, 1.0)

    def _make_slots(self, w):
        return (np.zeros_like(w),)

    def _update(self, w, g, slots, l1, l2, wd_lr):
        _core.lion_update(w, g, slots[0], self._lr_step, self.beta_1, self.beta_2, wd_lr, l1, l2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


_CLASSES = (SGD, Adam, AdamW, RMSprop, Nadam, Adamax, Adagrad, Adadelta, Ftrl, Lion)
_REGISTRY = {c.__name__.lower(): c for c in _CLASSES}
_BY_CLASS = {c.__name__: c for c in _CLASSES}


def get(identifier) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _REGISTRY:
        return _REGISTRY[identifier.lower()]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"unknown optimizer {identifier!r}; expected one of {sorted(_REGISTRY)} or "
                     "an nncore.optimizers.Optimizer")


def serialize(opt: Optimizer) -> dict:
    return {"class_name": type(opt).__name__, "config": opt.get_config()}


def deserialize(d) -> Optimizer:
    return from_entry(d, _BY_CLASS, "optimizer")
