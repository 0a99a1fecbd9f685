"""Losses with Keras's formulas and its reduction (mean over the batch).

Each loss gives per-sample values and d(mean loss)/d(output) in one call. Cross-entropies on a
softmax/sigmoid output are computed from the logits (the model fuses the last activation into the
loss, as Keras does with its `_keras_logits`), in one C++ pass for softmax.
"""

from __future__ import annotations

import numpy as np

from .ops import train as _train

EPSILON = 1e-7


def _rows(a, n):
    return a.reshape(n, -1).mean(axis=1, dtype=np.float64).astype(np.float32)


class Loss:
    name = "loss"
    fusable = None  # the output activation this loss can take logits from

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size", dtype=None):
        # reduction / dtype: Keras's Loss arguments, which user subclasses pass on
        self.from_logits = bool(from_logits)
        self.reduction = reduction
        if name is not None:
            self.name = name

    def check_targets(self, y, out_shape, where):
        """Raise ValueError if labels/targets y (whole data set) do not fit outputs out_shape."""
        if y.shape[1:] != tuple(out_shape[1:]):
            raise ValueError(f"{where}: {self.name} needs targets of shape (n, "
                             f"{', '.join(map(str, out_shape[1:]))}) like the model output "
                             f"{tuple(out_shape)}, got {y.shape}")

    def prepare_targets(self, y):
        return np.ascontiguousarray(y, dtype=np.float32)

    def __call__(self, y_true, y_pred):
        """Mean loss (float)."""
        y_pred = np.ascontiguousarray(y_pred, dtype=np.float32)
        per, _ = self.compute(y_pred, self.prepare_targets(np.asarray(y_true)), False)
        return float(np.mean(per, dtype=np.float64))

    def compute(self, out, y, need_grad, logits=False):
        """(per-sample loss (N,), gradient of the batch-mean loss w.r.t. `out` or None).
        logits=True: `out` is the pre-activation of the fusable activation."""
        raise NotImplementedError

    def get_config(self):
        return {"from_logits": self.from_logits}


class _CrossEntropy(Loss):
    fusable = "softmax"
    sparse = False

    def compute(self, out, y, need_grad, logits=False):
        n, c = out.shape[0], out.shape[-1]
        z = out.reshape(-1, c)
        t = y.reshape(-1) if self.sparse else y.reshape(-1, c)
        rows = z.shape[0]
        if logits or self.from_logits:
            per, d = _train.softmax_cross_entropy(z, t, grad_scale=1.0 / rows,
                                                  need_grad=need_grad)
        else:
            per, d = self._on_probs(z, t, rows, need_grad)
        return _rows(per, n) if rows != n else per, (d.reshape(out.shape) if need_grad else None)

    def _on_probs(self, p, t, rows, need_grad):
        # Keras (from_logits=False): normalise by the row sum, clip to [eps, 1-eps], log.
        s = p.sum(axis=1, keepdims=True)
        q = p / s
        qc = np.clip(q, EPSILON, 1 - EPSILON)
        if self.sparse:
            idx = np.arange(rows)
            picked = qc[idx, t]
            per = -np.log(picked)
            if not need_grad:
                return per.astype(np.float32), None
            inside = (q[idx, t] > EPSILON) & (q[idx, t] < 1 - EPSILON)
            d = np.repeat((inside / s[:, 0])[:, None], p.shape[1], axis=1)
            d[idx, t] -= inside / p[idx, t]
        else:
            per = -(t * np.log(qc)).sum(axis=1)
            if not need_grad:
                return per.astype(np.float32), None
            inside = (q > EPSILON) & (q < 1 - EPSILON)
            g = np.where(inside, -t / qc, 0.0)  # dL/dq
            d = (g - (g * q).sum(axis=1, keepdims=True)) / s
        return per.astype(np.float32), (d / rows).astype(np.float32)


class SparseCategoricalCrossentropy(_CrossEntropy):
    """loss = -log softmax(z)[label]; labels are integers in [0, classes)."""

    name = "sparse_categorical_crossentropy"
    sparse = True

    def check_targets(self, y, out_shape, where):
        c = out_shape[-1]
        want = tuple(out_shape[1:-1])
        shape = y.shape[1:]
        if shape not in (want, want + (1,)):
            raise ValueError(f"{where}: sparse_categorical_crossentropy needs integer labels of "
                             f"shape {(y.shape[0],) + want} for model output {tuple(out_shape)}, "
                             f"got {y.shape}")
        if y.dtype.kind not in "iub":
            if y.dtype.kind != "f" or not np.all(np.isfinite(y)) or np.any(np.floor(y) != y):
                raise ValueError(f"{where}: sparse_categorical_crossentropy needs integer labels, "
                                 f"got dtype {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= c):
            raise ValueError(f"{where}: labels must be in [0, {c}) for a model with {c} outputs, "
                             f"got labels in [{y.min()}, {y.max()}]")

    def prepare_targets(self, y):
        return np.ascontiguousarray(y, dtype=np.int32)


class CategoricalCrossentropy(_CrossEntropy):
    """loss = -sum_j t_j log softmax(z)_j; targets one-hot (or probabilities)."""

    name = "categorical_crossentropy"


class BinaryCrossentropy(Loss):
    """loss = mean over the last axis of -(t log p + (1-t) log(1-p)), p = sigmoid(z)."""

    name = "binary_crossentropy"
    fusable = "sigmoid"

    def compute(self, out, y, need_grad, logits=False):
        n = out.shape[0]
        size = out.size
        if logits or self.from_logits:
            z = out.astype(np.float64)
            elem = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
            d = None
            if need_grad:
                d = ((_train.activation(out, "sigmoid") - y) / np.float32(size))
        else:
            p = out.astype(np.float64)
            pc = np.clip(p, EPSILON, 1 - EPSILON)
            elem = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
            d = None
            if need_grad:
                inside = (p > EPSILON) & (p < 1 - EPSILON)
                d = np.where(inside, (pc - y) / (pc * (1 - pc)), 0.0) / size
                d = d.astype(np.float32)
        return _rows(elem, n), d


class MeanSquaredError(Loss):
    """loss = mean over the last axis of (p - t)^2."""

    name = "mean_squared_error"

    def compute(self, out, y, need_grad, logits=False):
        diff = out - y
        per = _rows(np.square(diff, dtype=np.float64), out.shape[0])
        return per, (diff * np.float32(2.0 / out.size) if need_grad else None)


class MeanAbsoluteError(Loss):
    """loss = mean over the last axis of |p - t|."""

    name = "mean_absolute_error"

    def compute(self, out, y, need_grad, logits=False):
        diff = out - y
        per = _rows(np.abs(diff, dtype=np.float64), out.shape[0])
        return per, (np.sign(diff) * np.float32(1.0 / out.size) if need_grad else None)


_REGISTRY = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
}
_BY_CLASS = {cls.__name__: cls for cls in _REGISTRY.values()}


def get(identifier) -> Loss:
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _REGISTRY:
        return _REGISTRY[identifier]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"unknown loss {identifier!r}; expected one of {sorted(_REGISTRY)} or a "
                     "nncore.losses.Loss")


def serialize(loss: Loss) -> dict:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(d) -> Loss:
    if (not isinstance(d, dict) or set(d) != {"class_name", "config"}
            or d["class_name"] not in _BY_CLASS or not isinstance(d["config"], dict)
            or set(d["config"]) - {"from_logits"}):
        raise ValueError(f"invalid loss config {d!r}")
    return _BY_CLASS[d["class_name"]](**d["config"])


# Keras's function-style names.
def sparse_categorical_crossentropy(y_true, y_pred):
    return SparseCategoricalCrossentropy()(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred):
    return CategoricalCrossentropy()(y_true, y_pred)


def binary_crossentropy(y_true, y_pred):
    return BinaryCrossentropy()(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    return MeanSquaredError()(y_true, y_pred)


mse = mean_squared_error
