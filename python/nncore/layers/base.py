"""Layer: Keras's contract (config in __init__, build(input_shape) creating weights, get_config)
plus an explicit backward.

Shapes include the batch axis as None: (None, 28, 28, 1).
forward(x, training) -> y. With training=True the layer keeps what backward needs; with
training=False it keeps nothing (so inference is thread-safe). backward(dy) -> dx fills self.grads
(one array per entry of self.weights, same order) and returns the input gradient, or None when
need_input_grad is False (the first layer).
"""

from __future__ import annotations

import math
import re

import numpy as np

from .. import initializers, regularizers

_name_counts: dict = {}
MAX_DIM = 2**31 - 1


def _unique_name(base: str) -> str:
    n = _name_counts.get(base, 0)
    _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _snake(name: str) -> str:
    # Keras's to_snake_case: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d,
    # SimpleRNN -> simple_rnn
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def fmt_shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (
        ",)" if len(shape) == 1 else ")")


def positive_int(v, name: str, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < v <= MAX_DIM:
        raise ValueError(f"{where}: {name} must be a positive int, got {v!r}")
    return int(v)


def int_tuple(v, n: int, name: str, where: str) -> tuple:
    """An int or a sequence of n ints, each positive, as a tuple."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (v,) * n
    if not isinstance(v, (tuple, list)) or len(v) != n:
        raise ValueError(f"{where}: {name} must be an int or a tuple of {n} ints, got {v!r}")
    return tuple(positive_int(x, name, where) for x in v)


def shape_tuple(v, name: str, where: str) -> tuple:
    """A per-sample shape (no batch axis) of positive ints."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (v,)
    if not isinstance(v, (tuple, list)) or len(v) == 0 or len(v) > 8:
        raise ValueError(f"{where}: {name} must be a tuple of positive ints, got {v!r}")
    return tuple(positive_int(x, name, where) for x in v)


class Layer:
    """Base class. Subclasses define weight_specs, compute_output_shape, forward, backward."""

    def __init__(self, name=None, trainable=True, input_shape=None, batch_input_shape=None,
                 dtype=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected argument(s) {sorted(kwargs)}")
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{type(self).__name__}: only float32 is supported, got {dtype!r}")
        if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 256):
            raise ValueError(f"layer name must be a non-empty string, got {name!r}")
        self.name = name if name is not None else _unique_name(_snake(type(self).__name__))
        self.trainable = bool(trainable)
        where = self.name
        if batch_input_shape is not None:
            if not isinstance(batch_input_shape, (tuple, list)) or len(batch_input_shape) < 2:
                raise ValueError(f"{where}: batch_input_shape must be a tuple, "
                                 f"got {batch_input_shape!r}")
            input_shape = tuple(batch_input_shape[1:])
        self._input_shape_arg = (None if input_shape is None
                                 else shape_tuple(input_shape, "input_shape", where))
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self.weights: list = []
        self.grads: list = []
        self._weight_names: list = []
        self._regularizers: list = []
        self.need_input_grad = True

    # ---- Keras-style construction -------------------------------------------------------------
    def weight_specs(self, input_shape) -> list:
        """[(name, shape, initializer, regularizer)] for this input shape; no allocation."""
        return []

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def check_input_shape(self, input_shape) -> None:
        """Raise ValueError naming the layer and the shape if it cannot take input_shape."""

    def build(self, input_shape, allocate=True) -> None:
        input_shape = tuple(input_shape)
        self.check_input_shape(input_shape)
        specs = self.weight_specs(input_shape)
        out = self.compute_output_shape(input_shape)
        self.weights, self.grads, self._weight_names, self._regularizers = [], [], [], []
        for wname, shape, init, reg in specs:
            arr = (np.ascontiguousarray(init(shape), dtype=np.float32) if allocate
                   else np.zeros(shape, np.float32))
            self.weights.append(arr)
            self.grads.append(np.zeros(shape, np.float32))
            self._weight_names.append(f"{self.name}/{wname}")
            self._regularizers.append(reg)
        self.input_shape, self.output_shape = input_shape, tuple(out)
        self.built = True
        self._on_built()

    def _on_built(self) -> None:
        """Hook: bind attribute names (self.kernel...) to self.weights entries."""

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    @property
    def trainable_weights(self) -> list:
        return list(self.weights) if self.trainable else []

    @property
    def non_trainable_weights(self) -> list:
        return [] if self.trainable else list(self.weights)

    def get_weights(self) -> list:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"layer {self.name!r} expects {len(self.weights)} weight arrays, "
                             f"got {len(weights)}")
        arrs = []
        for wname, cur, new in zip(self._weight_names, self.weights, weights):
            new = np.asarray(new)
            if new.dtype.kind not in "biuf":
                raise TypeError(f"weight {wname!r}: expected a real array, got dtype {new.dtype}")
            if new.shape != cur.shape:
                raise ValueError(f"weight {wname!r} has shape {cur.shape}, "
                                 f"got an array of shape {new.shape}")
            arrs.append(new)
        for cur, new in zip(self.weights, arrs):
            np.copyto(cur, new, casting="unsafe")  # in place: references stay valid

    def get_config(self) -> dict:
        cfg = {"name": self.name, "trainable": self.trainable}
        if self._input_shape_arg is not None:
            cfg["input_shape"] = list(self._input_shape_arg)
        return cfg

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    # ---- computation --------------------------------------------------------------------------
    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, x, training=False):
        """Eager call on a numpy array (builds the layer on first use)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not self.built:
            self.build((None,) + x.shape[1:])
        return self.forward(x, training=training)

    def regularization_loss(self) -> float:
        return float(sum(r(w) for w, r in zip(self.weights, self._regularizers) if r is not None))

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class ActivationMixin:
    """Output activation handling shared by Dense, Conv2D and Activation.

    A model that fuses the output softmax/sigmoid into the loss calls forward(..., logits=True):
    the layer then returns (probabilities, logits) and its backward takes d loss / d logits.
    """

    activation: str

    def _activate(self, z, training, logits, fused_relu=False, inplace=True):
        act = self.activation
        if act == "linear" or fused_relu:
            y = z
        else:
            from ..ops import train as _train

            y = _train.activation(z, act, out=z if inplace and not logits else None)
        if training:
            self._y = y
            self._fused_out = logits
        return (y, z) if logits else y

    def _activation_grad(self, dy):
        if self._fused_out or self.activation == "linear":
            return dy
        from ..ops import train as _train

        return _train.activation_backward(dy, self._y, self.activation)


def check_regularizer(v):
    return regularizers.get(v)


def check_initializer(v):
    return initializers.get(v)


def prod(shape) -> int:
    return math.prod(shape)
