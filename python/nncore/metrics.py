"""Metrics accumulated over batches as running (sum, count) means, like Keras's stateful metrics."""

from __future__ import annotations

import numpy as np


class Metric:
    def __init__(self, name):
        self.name = name
        self.reset_state()

    def reset_state(self):
        self.total = 0.0
        self.count = 0

    def update_state(self, y_true, y_pred):
        s, c = self.batch(np.asarray(y_true), np.asarray(y_pred))
        self.total += float(s)
        self.count += int(c)

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def batch(self, y_true, y_pred):
        raise NotImplementedError


class SparseCategoricalAccuracy(Metric):
    def __init__(self, name="sparse_categorical_accuracy"):
        super().__init__(name)

    def batch(self, y_true, y_pred):
        pred = y_pred.argmax(axis=-1).reshape(-1)
        return np.count_nonzero(pred == y_true.reshape(-1)), pred.size


class CategoricalAccuracy(Metric):
    def __init__(self, name="categorical_accuracy"):
        super().__init__(name)

    def batch(self, y_true, y_pred):
        pred = y_pred.argmax(axis=-1)
        return np.count_nonzero(pred == y_true.argmax(axis=-1)), pred.size


class BinaryAccuracy(Metric):
    def __init__(self, name="binary_accuracy", threshold=0.5):
        self.threshold = threshold
        super().__init__(name)

    def batch(self, y_true, y_pred):
        pred = y_pred > self.threshold
        return np.count_nonzero(pred == (y_true.reshape(pred.shape) > 0.5)), pred.size


class MeanAbsoluteError(Metric):
    def __init__(self, name="mean_absolute_error"):
        super().__init__(name)

    def batch(self, y_true, y_pred):
        d = y_pred - y_true.reshape(y_pred.shape)
        return np.abs(d, dtype=np.float64).sum(), d.size


class MeanSquaredError(Metric):
    def __init__(self, name="mean_squared_error"):
        super().__init__(name)

    def batch(self, y_true, y_pred):
        d = y_pred - y_true.reshape(y_pred.shape)
        return np.square(d, dtype=np.float64).sum(), d.size


_REGISTRY = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy, "binary_accuracy": BinaryAccuracy,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
}


def get(identifier, loss_name: str, y_true_shape, y_pred_shape) -> Metric:
    """A metric from its name. 'accuracy'/'acc' picks binary, categorical or sparse accuracy as
    Keras does: from the loss when it says, else from the target and output shapes."""
    if isinstance(identifier, Metric):
        return identifier
    if not isinstance(identifier, str):
        raise ValueError(f"unknown metric {identifier!r}")
    if identifier in ("accuracy", "acc"):
        if loss_name == "binary_crossentropy" or y_pred_shape[-1] == 1:
            cls = BinaryAccuracy
        elif loss_name == "sparse_categorical_crossentropy":
            cls = SparseCategoricalAccuracy
        elif loss_name == "categorical_crossentropy":
            cls = CategoricalAccuracy
        elif len(y_true_shape) < len(y_pred_shape) or y_true_shape[-1] == 1:
            cls = SparseCategoricalAccuracy
        else:
            cls = CategoricalAccuracy
        return cls(name=identifier)
    if identifier in _REGISTRY:
        return _REGISTRY[identifier](name=identifier)
    raise ValueError(f"unknown metric {identifier!r}; expected 'accuracy' or one of "
                     f"{sorted(_REGISTRY)}")
