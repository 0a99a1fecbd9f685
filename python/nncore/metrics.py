"""Metrics accumulated over batches as running (sum, count) means, like Keras's stateful metrics."""

from __future__ import annotations

import numpy as np

from .metric_variables import MetricVariables


class Metric(MetricVariables):
    """Base of every metric. User subclasses (Keras's protocol): add_variable in __init__,
    update_state(y_true, y_pred, sample_weight=None), result(), and reset_state (by default
    every variable back to its initial value)."""

    def __init__(self, name=None, dtype=None):
        import re

        self.name = name or re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()
        self.dtype = dtype
        self.reset_state()

    def reset_state(self):
        if self._reset_variables():
            return
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


def get(identifier, y_true_shape, y_pred_shape) -> Metric:
    """A metric from its name.

    'accuracy' / 'acc' picks the flavour from the shapes only, exactly as Keras 3 does
    (keras/src/trainers/compile_utils.py, get_metric / is_binary_or_sparse_categorical); the loss
    plays no part:

    - the output's last dimension is 1                      -> BinaryAccuracy (threshold 0.5);
    - else the targets have lower rank than the output, or their last dimension is 1 while the
      output's is larger                                    -> SparseCategoricalAccuracy;
    - else                                                  -> CategoricalAccuracy (argmax of both).

    So binary_crossentropy on a multi-unit (multi-label) output reports categorical accuracy, as
    in Keras; ask for 'binary_accuracy' to get the per-element one. The metric keeps the name it
    was asked for ('accuracy' or 'acc').
    """
    if isinstance(identifier, Metric):
        return identifier
    if not isinstance(identifier, str):
        raise ValueError(f"unknown metric {identifier!r}")
    if identifier.lower() in ("accuracy", "acc"):
        is_binary = y_pred_shape[-1] == 1
        is_sparse = len(y_true_shape) < len(y_pred_shape) or (
            y_true_shape[-1] == 1 and y_pred_shape[-1] > 1)
        if is_binary:
            cls = BinaryAccuracy
        elif is_sparse:
            cls = SparseCategoricalAccuracy
        else:
            cls = CategoricalAccuracy
        return cls(name=identifier)
    if identifier in _REGISTRY:
        return _REGISTRY[identifier](name=identifier)
    raise ValueError(f"unknown metric {identifier!r}; expected 'accuracy' or one of "
                     f"{sorted(_REGISTRY)}")
