"""Metrics with Keras 3's stateful API: ``update_state(y_true, y_pred, sample_weight=None)``,
``result()``, ``reset_state()``, ``name``, ``get_config()``.

Mean metrics accumulate a weighted (sum, count) of their per-element values, as Keras's
``MeanMetricWrapper`` does; confusion metrics (TruePositives ... Precision, Recall, AUC) count
weighted true/false positives/negatives at thresholds, a prediction being positive when it is
strictly above the threshold, as Keras.
"""

from __future__ import annotations

import math
import re

import numpy as np

from . import losses as _losses
from ._entries import from_entry
from .metric_variables import MetricVariables

EPSILON = 1e-7
NEG_INF = -1e10


def _snake(name):
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def _same_rank(t, p):
    if t.ndim == p.ndim - 1 and p.shape[-1] == 1:
        t = t[..., None]
    elif t.ndim == p.ndim + 1 and t.shape[-1] == 1:
        t = t[..., 0]
    return t


def _weights_like(sample_weight, shape):
    """sample_weight broadcast to `shape` (trailing axes added), float64."""
    sw = np.asarray(sample_weight, np.float64)
    while sw.ndim > len(shape) and sw.shape[-1] == 1:
        sw = sw[..., 0]
    while sw.ndim < len(shape):
        sw = sw[..., None]
    return np.broadcast_to(sw, shape)


class Metric(MetricVariables):
    """Base of every metric. User subclasses (Keras's protocol): add_variable in __init__,
    update_state(y_true, y_pred, sample_weight=None), result(), and reset_state (by default
    every variable back to its initial value)."""

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        self.dtype = dtype
        self.reset_state()

    def reset_state(self):
        if self._reset_variables():
            return

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def _update_masked(self, y_true, y_pred, mask):
        """The trainer's update for an output that carries a Keras mask: as Keras, only the
        metrics that average per-entry values (its MeanMetricWrapper family) honour it."""
        self.update_state(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _MeanValues(Metric):
    """result = sum(w * values) / sum(w) over every update; values from _values()."""

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        v = np.asarray(self._values(np.asarray(y_true), np.asarray(y_pred)), np.float64)
        if sample_weight is None:
            self.total += float(v.sum())
            self.count += v.size
        else:
            w = _weights_like(sample_weight, v.shape)
            self.total += float((v * w).sum())
            self.count += float(w.sum())

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def _values(self, y_true, y_pred):
        raise NotImplementedError

    def _update_masked(self, y_true, y_pred, mask):
        # Keras: the mask becomes 0/1 weights of the values (apply_mask, reduction "sum").
        v = np.asarray(self._values(np.asarray(y_true), np.asarray(y_pred)), np.float64)
        w = _losses.mask_weights(mask, v.shape, "sum", self.name)
        self.total += float((v * w).sum())
        self.count += float(w.sum())


class Mean(Metric):
    """The weighted mean of the values given to update_state(values, sample_weight=None)."""

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        v = np.asarray(values, np.float64)
        if sample_weight is None:
            self.total += float(v.sum())
            self.count += v.size
        else:
            w = _weights_like(sample_weight, v.shape)
            self.total += float((v * w).sum())
            self.count += float(w.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


class Sum(Metric):
    """The weighted sum of the values given to update_state(values, sample_weight=None)."""

    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        v = np.asarray(values, np.float64)
        if sample_weight is not None:
            v = v * _weights_like(sample_weight, v.shape)
        self.total += float(v.sum())

    def result(self):
        return self.total


class MeanMetricWrapper(_MeanValues):
    """The weighted mean of fn(y_true, y_pred, **kwargs) (per-sample values)."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name or getattr(fn, "__name__", "mean_metric_wrapper"), dtype)

    def _values(self, y_true, y_pred):
        return self._fn(y_true, y_pred, **self._fn_kwargs)


# ---- accuracies ---------------------------------------------------------------------------------
class SparseCategoricalAccuracy(_MeanValues):
    """mean(argmax(p) == label)."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        pred = y_pred.argmax(axis=-1)
        return pred.reshape(-1) == y_true.reshape(-1)


class CategoricalAccuracy(_MeanValues):
    """mean(argmax(p) == argmax(t))."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        return y_pred.argmax(axis=-1) == y_true.argmax(axis=-1)


class BinaryAccuracy(_MeanValues):
    """mean((p > threshold) == (t > 0.5)) over every element."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        self.threshold = threshold
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        pred = y_pred > self.threshold
        return pred == (y_true.reshape(pred.shape) > 0.5)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


def _in_top_k(p, target, k):
    # TF's in_top_k: the target is in the top k if fewer than k classes score strictly higher
    # (ties at the boundary count as in).
    score = np.take_along_axis(p, target[:, None], axis=1)
    return (p > score).sum(axis=1) < k


class TopKCategoricalAccuracy(_MeanValues):
    """mean(argmax(t) in the k highest p) (ties at the k-th score count as in)."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        self.k = int(k)
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        c = y_pred.shape[-1]
        return _in_top_k(y_pred.reshape(-1, c), y_true.reshape(-1, c).argmax(axis=1), self.k)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(_MeanValues):
    """mean(label in the k highest p) (ties at the k-th score count as in)."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        self.k = int(k)
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        c = y_pred.shape[-1]
        return _in_top_k(y_pred.reshape(-1, c), y_true.reshape(-1).astype(np.int64), self.k)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


# ---- regression ---------------------------------------------------------------------------------
class MeanAbsoluteError(_MeanValues):
    """mean(|p - t|)."""

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        return np.abs(y_pred - y_true.reshape(y_pred.shape), dtype=np.float64)


class MeanSquaredError(_MeanValues):
    """mean((p - t)^2)."""

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        return np.square(y_pred - y_true.reshape(y_pred.shape), dtype=np.float64)


class RootMeanSquaredError(MeanSquaredError):
    """sqrt(mean((p - t)^2))."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name, dtype)

    def result(self):
        return math.sqrt(super().result())

    def _update_masked(self, y_true, y_pred, mask):
        # Keras's RootMeanSquaredError is a Mean of a fresh tensor: the mask does not reach it.
        self.update_state(y_true, y_pred)


class MeanAbsolutePercentageError(_MeanValues):
    """100 * mean(|t - p| / max(|t|, eps))."""

    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        t = y_true.reshape(y_pred.shape).astype(np.float64)
        return 100.0 * np.abs(t - y_pred) / np.maximum(np.abs(t), EPSILON)


class MeanSquaredLogarithmicError(_MeanValues):
    """mean((log(max(p, eps) + 1) - log(max(t, eps) + 1))^2)."""

    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        t = y_true.reshape(y_pred.shape).astype(np.float64)
        a = np.log(np.maximum(y_pred.astype(np.float64), EPSILON) + 1)
        return np.square(a - np.log(np.maximum(t, EPSILON) + 1))


class R2Score(Metric):
    """Per output column: 1 - sum(w (t - p)^2) / (sum(w t^2) - sum(w t)^2 / sum(w)), then
    averaged ('uniform_average'), weighted by the column variance ('variance_weighted_average')
    or returned per column (None); num_regressors > 0 gives the adjusted score
    1 - (1 - r2) (n - 1) / (n - k - 1), n the number of values."""

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score",
                 dtype=None):
        if class_aggregation not in ("uniform_average", "variance_weighted_average", None):
            raise ValueError(f"Invalid value for argument `class_aggregation`: "
                             f"{class_aggregation!r}")
        self.class_aggregation = class_aggregation
        self.num_regressors = int(num_regressors)
        if self.num_regressors < 0:
            raise ValueError("num_regressors must be >= 0")
        super().__init__(name, dtype)

    def reset_state(self):
        self._s = self._sq = self._mse = self._count = None
        self._n = 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = np.asarray(y_pred, np.float64)
        t = _same_rank(np.asarray(y_true, np.float64), p)
        if p.ndim == 1:
            p, t = p[:, None], t[:, None]
        w = (np.ones_like(t) if sample_weight is None
             else _weights_like(sample_weight, t.shape))
        vals = (np.sum(w * t, 0), np.sum(t * w * t, 0), np.sum((t - p) ** 2 * w, 0),
                np.sum(w, 0))
        if self._s is None:
            self._s, self._sq, self._mse, self._count = (np.zeros_like(v) for v in vals)
        self._s += vals[0]
        self._sq += vals[1]
        self._mse += vals[2]
        self._count += vals[3]
        self._n += t.size

    def result(self):
        if self._s is None:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self._s / self._count
            total = self._sq - self._s * mean
            raw = 1 - self._mse / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            r2 = float(np.mean(raw))
        elif self.class_aggregation == "variance_weighted_average":
            r2 = float(np.sum(total * raw) / np.sum(total))
        else:
            r2 = raw
        n, k = self._n, self.num_regressors
        if k and k < n - 1:
            r2 = 1 - (1 - r2) * (n - 1) / (n - k - 1)
        return r2

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}


# ---- losses as metrics --------------------------------------------------------------------------
class _LossMetric(_MeanValues):
    _loss = None

    def __init__(self, name=None, dtype=None, **kwargs):
        self._kwargs = kwargs
        self._fn = self._loss(**kwargs)
        super().__init__(name or self._fn.name, dtype)

    def _values(self, y_true, y_pred):
        return self._fn.values(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), **self._kwargs}


class CategoricalCrossentropy(_LossMetric):
    """The mean of losses.categorical_crossentropy (from_logits, label_smoothing)."""

    _loss = _losses.CategoricalCrossentropy

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0.0):
        super().__init__(name, dtype, from_logits=from_logits, label_smoothing=label_smoothing)


class SparseCategoricalCrossentropy(_LossMetric):
    """The mean of losses.sparse_categorical_crossentropy (from_logits)."""

    _loss = _losses.SparseCategoricalCrossentropy

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False):
        super().__init__(name, dtype, from_logits=from_logits)


class BinaryCrossentropy(_LossMetric):
    """The mean of losses.binary_crossentropy (from_logits, label_smoothing)."""

    _loss = _losses.BinaryCrossentropy

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0.0):
        super().__init__(name, dtype, from_logits=from_logits, label_smoothing=label_smoothing)


# ---- confusion-matrix metrics -------------------------------------------------------------------
def _filter_top_k(p, k):
    # Keras: everything outside each row's top k becomes NEG_INF.
    idx = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    out = np.full_like(p, NEG_INF)
    np.put_along_axis(out, idx, np.take_along_axis(p, idx, axis=-1), axis=-1)
    return out


class _Confusion(Metric):
    """Weighted counts tp, fp, tn, fn at each threshold (prediction > threshold is positive)."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None,
                 check=True):
        if thresholds is None:
            thresholds = 0.5 if top_k is None else NEG_INF
        self._scalar = np.ndim(thresholds) == 0
        self.thresholds = [float(t) for t in np.atleast_1d(thresholds)]
        for t in self.thresholds:
            if check and not (t == NEG_INF or 0.0 <= t <= 1.0):
                raise ValueError(f"Threshold values must be in [0, 1]. Received: {t}")
        self.top_k = None if top_k is None else int(top_k)
        self.class_id = None if class_id is None else int(class_id)
        self._thr = np.asarray(self.thresholds, np.float64)
        super().__init__(name, dtype)

    def reset_state(self):
        k = len(self._thr)
        self.tp, self.fp, self.tn, self.fn = (np.zeros(k) for _ in range(4))

    def _prepare(self, y_true, y_pred):
        return y_pred

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = np.asarray(y_pred, np.float64)
        t = _same_rank(np.asarray(y_true), p)
        t = np.broadcast_to(t, p.shape)
        p = self._prepare(t, p)
        if self.top_k is not None:
            p = _filter_top_k(p, self.top_k)
        w = None if sample_weight is None else _weights_like(sample_weight, p.shape)
        if self.class_id is not None:
            t, p = t[..., self.class_id], p[..., self.class_id]
            w = None if w is None else w[..., self.class_id]
        t = t.reshape(-1).astype(bool)
        p = p.reshape(-1)
        w = np.ones(p.shape) if w is None else np.asarray(w, np.float64).reshape(-1)
        for mask, above, below in ((t, self.tp, self.fn), (~t, self.fp, self.tn)):
            ps, ws = p[mask], w[mask]
            order = np.argsort(ps, kind="stable")
            ps, cw = ps[order], np.concatenate([[0.0], np.cumsum(ws[order])])
            n_le = np.searchsorted(ps, self._thr, side="right")  # count of p <= threshold
            above += cw[-1] - cw[n_le]
            below += cw[n_le]

    def _out(self, v):
        return float(v[0]) if self._scalar else v.copy()

    def get_config(self):
        return {**super().get_config(), "thresholds": (self.thresholds[0] if self._scalar
                                                       else self.thresholds)}


def _div(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


class TruePositives(_Confusion):
    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds, name=name, dtype=dtype)

    def result(self):
        return self._out(self.tp)


class FalsePositives(TruePositives):
    def result(self):
        return self._out(self.fp)


class TrueNegatives(TruePositives):
    def result(self):
        return self._out(self.tn)


class FalseNegatives(TruePositives):
    def result(self):
        return self._out(self.fn)


class Precision(_Confusion):
    """tp / (tp + fp) (0 when nothing is predicted positive)."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._out(_div(self.tp, self.tp + self.fp))

    def get_config(self):
        return {**super().get_config(), "top_k": self.top_k, "class_id": self.class_id}


class Recall(Precision):
    """tp / (tp + fn) (0 when there are no positives)."""

    def result(self):
        return self._out(_div(self.tp, self.tp + self.fn))


class AUC(_Confusion):
    """Area under the ROC or PR curve from the counts at num_thresholds thresholds
    (0 - eps, i/(num_thresholds-1) for i = 1..num_thresholds-2, 1 + eps), or at
    [0 - eps] + thresholds + [1 + eps]. ROC: x = fp/(fp+tn), y = tp/(tp+fn); PR: x = recall,
    y = precision; sum over intervals of (x_i - x_{i+1}) * height, height the mean
    ('interpolation'), min ('minoring') or max ('majoring') of y_i, y_{i+1}. PR with
    'interpolation' uses Davis & Goadrich's interpolation, as Keras."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        curve = str(curve).upper()
        if curve not in ("ROC", "PR"):
            raise ValueError(f'Invalid `curve` argument value "{curve}"; expected "ROC" or "PR"')
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"Invalid `summation_method` argument value {summation_method!r}")
        if multi_label or label_weights is not None:
            raise ValueError("AUC: multi_label and label_weights are not supported")
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
            num_thresholds = len(inner) + 2
        else:
            if num_thresholds <= 1:
                raise ValueError("Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds}")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.num_thresholds = int(num_thresholds)
        self.curve, self.summation_method = curve, summation_method
        self.from_logits, self.multi_label = bool(from_logits), False
        self._inner = inner
        for t in inner:
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"Threshold values must be in [0, 1]. Received: {t}")
        super().__init__([0.0 - EPSILON] + inner + [1.0 + EPSILON], name=name or "auc",
                         dtype=dtype, check=False)

    def _prepare(self, y_true, y_pred):
        if self.from_logits:
            return 1.0 / (1.0 + np.exp(-y_pred))
        return y_pred

    def _out(self, v):
        return float(v)

    def result(self):
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:-1] - tp[1:]
            p = tp + fp
            dp = p[:-1] - p[1:]
            slope = _div(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * p[1:]
            ratio = np.where((p[:-1] > 0) & (p[1:] > 0), _div(p[:-1], np.maximum(p[1:], 0)),
                             1.0)
            return float(np.sum(_div(slope * (dtp + intercept * np.log(ratio)),
                                     np.maximum(tp[1:] + fn[1:], 0))))
        recall = _div(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _div(fp, fp + tn), recall
        else:
            x, y = recall, _div(tp, tp + fp)
        if self.summation_method == "interpolation":
            h = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            h = np.minimum(y[:-1], y[1:])
        else:
            h = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * h))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_thresholds": self.num_thresholds,
                "curve": self.curve, "summation_method": self.summation_method,
                "thresholds": self._inner if len(self._inner) != self.num_thresholds - 2
                or self._inner != [(i + 1) / (self.num_thresholds - 1)
                                   for i in range(self.num_thresholds - 2)] else None,
                "multi_label": False, "from_logits": self.from_logits}


class FBetaScore(Metric):
    """Per class: precision = tp/(tp+fp+eps), recall = tp/(tp+fn+eps),
    f = (1+beta^2) * precision*recall / (beta^2*precision + recall + eps); prediction positive
    when p > threshold, or (threshold None) when p is its row's maximum (and |p| > 1e-9).
    average: None (per class), 'micro' (counts summed over classes), 'macro' (mean),
    'weighted' (weighted by the class support)."""

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: None, "
                             f"'micro', 'macro', 'weighted'. Received: average={average!r}")
        if not (isinstance(beta, (int, float)) and beta > 0):
            raise ValueError(f"`beta` should be a float > 0. Received: beta={beta!r}")
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise ValueError(f"`threshold` should be a float in (0, 1]. Received: {threshold}")
        self.average, self.beta, self.threshold = average, float(beta), threshold
        super().__init__(name, dtype)

    def reset_state(self):
        self.tp = self.fp = self.fn = self.support = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = np.asarray(y_pred, np.float64)
        t = np.asarray(y_true, np.float64).reshape(p.shape)
        if self.threshold is None:
            pred = (p >= p.max(axis=-1, keepdims=True)) & (np.abs(p) > 1e-9)
        else:
            pred = p > self.threshold
        pred = pred.astype(np.float64)
        w = 1.0 if sample_weight is None else np.asarray(sample_weight, np.float64)[:, None]
        axis = None if self.average == "micro" else 0
        vals = [np.sum(v * w, axis=axis) for v in (pred * t, pred * (1 - t), (1 - pred) * t, t)]
        if self.tp is None:
            self.tp, self.fp, self.fn, self.support = (np.zeros_like(v) for v in vals)
        self.tp = self.tp + vals[0]
        self.fp = self.fp + vals[1]
        self.fn = self.fn + vals[2]
        self.support = self.support + vals[3]

    def result(self):
        if self.tp is None:
            return 0.0
        precision = self.tp / (self.tp + self.fp + EPSILON)
        recall = self.tp / (self.tp + self.fn + EPSILON)
        b2 = self.beta ** 2
        f = precision * recall / (b2 * precision + recall + EPSILON) * (1 + b2)
        if self.average == "weighted":
            return float(np.sum(f * self.support / (np.sum(self.support) + EPSILON)))
        if self.average is not None:
            return float(np.mean(f))
        return f

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """FBetaScore with beta = 1."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average, 1.0, threshold, name, dtype)

    def get_config(self):
        cfg = super().get_config()
        del cfg["beta"]
        return cfg


class Accuracy(_MeanValues):
    """mean(y_true == y_pred): exact matches (labels against predicted labels)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        return _same_rank(y_true, y_pred).reshape(y_pred.shape) == y_pred


def _loss_metric(loss_cls, default_name, doc, **defaults):
    """A metric class averaging one of nncore's losses per sample (Keras's metric twins of
    hinge, KL divergence, Poisson, ...)."""
    def __init__(self, name=default_name, dtype=None, **kwargs):
        _LossMetric.__init__(self, name, dtype, **{**defaults, **kwargs})

    cls = type(loss_cls.__name__ if not default_name.endswith("error") else "LogCoshError",
               (_LossMetric,), {"_loss": loss_cls, "__init__": __init__, "__doc__": doc})
    cls.__module__ = __name__
    return cls


Hinge = _loss_metric(_losses.Hinge, "hinge", "The mean of losses.hinge.")
SquaredHinge = _loss_metric(_losses.SquaredHinge, "squared_hinge",
                            "The mean of losses.squared_hinge.")
CategoricalHinge = _loss_metric(_losses.CategoricalHinge, "categorical_hinge",
                                "The mean of losses.categorical_hinge.")
KLDivergence = _loss_metric(_losses.KLDivergence, "kl_divergence",
                            "The mean of losses.kl_divergence.")
Poisson = _loss_metric(_losses.Poisson, "poisson", "The mean of losses.poisson.")
LogCoshError = _loss_metric(_losses.LogCosh, "logcosh", "The mean of losses.log_cosh.")


class CosineSimilarity(_MeanValues):
    """mean of the cosine similarity of t and p along `axis` (Keras's metric: +1 for the same
    direction; the loss is its negative)."""

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        self.axis = axis
        super().__init__(name, dtype)

    def _values(self, y_true, y_pred):
        return -np.asarray(_losses.cosine_similarity(y_true, y_pred, axis=self.axis))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


# ---- Keras's metric functions: per-sample values (keras.metrics.binary_accuracy, ...) --------
def _per_sample(values):
    """The metric's values as float32 (Keras 3: per element for binary_accuracy, per sample
    for the others), before any averaging."""
    def fn(y_true, y_pred, **kwargs):
        return np.asarray(values(np.asarray(y_true), np.asarray(y_pred), **kwargs), np.float32)
    return fn


binary_accuracy = _per_sample(lambda t, p, threshold=0.5: BinaryAccuracy(
    threshold=threshold)._values(t, p))
categorical_accuracy = _per_sample(lambda t, p: CategoricalAccuracy()._values(t, p))
sparse_categorical_accuracy = _per_sample(lambda t, p: SparseCategoricalAccuracy()._values(t, p))
top_k_categorical_accuracy = _per_sample(lambda t, p, k=5: TopKCategoricalAccuracy(
    k)._values(t, p))
sparse_top_k_categorical_accuracy = _per_sample(
    lambda t, p, k=5: SparseTopKCategoricalAccuracy(k)._values(t, p))
for _n in ("binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
           "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy"):
    globals()[_n].__name__ = globals()[_n].__qualname__ = _n
del _n
# the losses, by the names keras.metrics gives them
mean_squared_error = _losses.mean_squared_error
mean_absolute_error = _losses.mean_absolute_error
mean_absolute_percentage_error = _losses.mean_absolute_percentage_error
mean_squared_logarithmic_error = _losses.mean_squared_logarithmic_error
binary_crossentropy = _losses.binary_crossentropy
categorical_crossentropy = _losses.categorical_crossentropy
sparse_categorical_crossentropy = _losses.sparse_categorical_crossentropy
binary_focal_crossentropy = _losses.binary_focal_crossentropy
categorical_focal_crossentropy = _losses.categorical_focal_crossentropy
hinge, squared_hinge, categorical_hinge = _losses.hinge, _losses.squared_hinge, \
    _losses.categorical_hinge
kl_divergence, poisson, log_cosh, huber = _losses.kl_divergence, _losses.poisson, \
    _losses.log_cosh, _losses.huber
_FUNCTIONS = {n: globals()[n] for n in (
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "mean_squared_error",
    "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "binary_focal_crossentropy", "categorical_focal_crossentropy", "hinge", "squared_hinge",
    "categorical_hinge", "kl_divergence", "poisson", "log_cosh", "huber")}


def function_name(fn) -> str:
    """The name a compile config records for a function metric: a metric function's own name,
    or a user's function by its registered name (its __name__ if unregistered)."""
    from .saving.registry import registered_name

    name = registered_name(fn) if not isinstance(fn, type) else None
    if not name or not name.replace(">", "").replace("_", "").isalnum():
        raise ValueError(f"metric {fn!r} has no name a file can record: define it with def "
                         "(a lambda cannot be saved), or use a Metric subclass")
    return name


def resolve_saved(name):
    """A metric name read from a file, for compile: a user's function is looked up now (the
    caller's custom_objects scope is open while a file loads, not later when metrics are made)."""
    if not isinstance(name, str) or name.lower() in ("accuracy", "acc") or name in _REGISTRY \
            or name in _FUNCTIONS:
        return name
    fn = _named_function(name)
    return name if fn is None else fn


def _named_function(name):
    """The metric function a name stands for: one of Keras's, else a user's function passed in
    custom_objects / a custom_object_scope or registered with register_keras_serializable."""
    from .saving.registry import get_class

    fn = _FUNCTIONS.get(name)
    if fn is None:
        obj = get_class(name)
        fn = obj if callable(obj) and not isinstance(obj, type) else None
    return fn


_CLASSES = (SparseCategoricalAccuracy, CategoricalAccuracy, BinaryAccuracy,
            TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanAbsoluteError,
            MeanSquaredError, RootMeanSquaredError, MeanAbsolutePercentageError,
            MeanSquaredLogarithmicError, R2Score, CategoricalCrossentropy,
            SparseCategoricalCrossentropy, BinaryCrossentropy, TruePositives, FalsePositives,
            TrueNegatives, FalseNegatives, Precision, Recall, AUC, F1Score, FBetaScore,
            Accuracy, Hinge, SquaredHinge, CategoricalHinge, KLDivergence, Poisson,
            LogCoshError, CosineSimilarity)
_REGISTRY = {_snake(c.__name__): c for c in _CLASSES}
_REGISTRY.update({c.__name__: c for c in _CLASSES})
_REGISTRY.update({
    "mae": MeanAbsoluteError, "mse": MeanSquaredError, "mape": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "rmse": RootMeanSquaredError, "auc": AUC,
    "r2_score": R2Score, "f1_score": F1Score, "fbeta_score": FBetaScore,
})


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
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier) and not isinstance(identifier, str):
        # a function of (y_true, y_pred): its weighted mean, under its own name (Keras)
        return MeanMetricWrapper(identifier, name=getattr(identifier, "__name__", None))
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
    fn = _named_function(identifier)
    if fn is not None:
        return MeanMetricWrapper(fn, name=identifier.split(">")[-1])
    raise ValueError(f"unknown metric {identifier!r}; expected 'accuracy' or one of "
                     f"{sorted(k for k in _REGISTRY if k.islower())} (a function of yours: "
                     "pass it in custom_objects= or register it)")


def serialize(metric: Metric) -> dict:
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(d) -> Metric:
    return from_entry(d, _REGISTRY, "metric", exact=False)
