"""Losses with Keras 3's names, defaults, formulas and reductions.

Every loss is a class (``keras.losses.MeanAbsoluteError()``) and a function
(``keras.losses.mean_absolute_error(y_true, y_pred)``) that returns Keras's unreduced values: one
per sample, of shape ``y_pred.shape[:-1]`` (the last axis is reduced by the formula).

``Loss.__call__(y_true, y_pred, sample_weight=None)`` multiplies those values by the sample
weights and reduces them by ``reduction``: ``"sum_over_batch_size"`` (default: sum / number of
values), ``"sum"``, or ``None`` / ``"none"`` (the values themselves).

For training, ``Loss.compute(out, y, need_grad, logits=False)`` gives per-sample losses (N,) and
the gradient of their batch mean with respect to ``out`` in one call (times ``batch_scale`` for
reduction 'sum'); ``compute_masked`` does the same for an output that carries a Keras mask. Cross-entropies on a
softmax/sigmoid output are computed from the logits (the model fuses the last activation into the
loss, as Keras does with its ``_keras_logits``), in one C++ pass for softmax.

Formulas (t = y_true, p = y_pred, eps = 1e-7, means and sums over the last axis):
each class's docstring gives its own.
"""

from __future__ import annotations

import numpy as np

from ._entries import from_entry
from .kernels import train as _train

EPSILON = 1e-7
_REDUCTIONS = ("sum_over_batch_size", "sum", "none", None, "mean")


def _rows(a, n):
    return a.reshape(n, -1).mean(axis=1, dtype=np.float64).astype(np.float32)


def _same_rank(t, p):
    """Keras's squeeze_or_expand_to_same_rank: (N,) targets with (N, 1) outputs and back."""
    if t.ndim == p.ndim - 1 and p.shape[-1] == 1:
        t = t[..., None]
    elif t.ndim == p.ndim + 1 and t.shape[-1] == 1:
        t = t[..., 0]
    return t


def _sigmoid(z):
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))),
                    np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _reduce(values, sample_weight, reduction):
    values = np.asarray(values, np.float64)
    if sample_weight is not None:
        sw = np.asarray(sample_weight, np.float64)
        while sw.ndim > values.ndim and sw.shape[-1] == 1:
            sw = sw[..., 0]
        while sw.ndim < values.ndim:
            sw = sw[..., None]
        values = values * sw
    if reduction in (None, "none") or values.ndim == 0 or values.shape == (0,):
        return values.astype(np.float32)
    total = float(np.sum(values))
    if reduction == "sum":
        return total
    return total / values.size if values.size else 0.0


def mask_weights(mask, shape, reduction, who):
    """Keras 3's apply_mask: the mask as float64 weights of the values' shape; for the mean
    reductions valid entries weigh total / valid (so the mean over every entry is the mean over
    the valid ones), 0 when no entry is valid."""
    m = _broadcast_weights(np.asarray(mask, bool), shape, who)
    if reduction in ("sum", None, "none"):
        return m
    valid = m.sum()
    return m * (m.size / valid) if valid else m


def _broadcast_weights(w, shape, who):
    """Weights (a mask or sample weights) over the leading axes of `shape`, or of the same size
    (values flattened over those axes), as float64 of that shape; a clear error otherwise."""
    w = np.asarray(w)
    shape = tuple(shape)
    if w.shape != shape:
        if w.ndim and shape and w.size == int(np.prod(shape)):
            w = w.reshape(shape)
        else:
            while w.ndim > len(shape) and w.shape[-1] == 1:
                w = w[..., 0]
            if w.shape != shape[:w.ndim]:
                raise ValueError(f"{who}: the mask or sample weights of shape {w.shape} do not "
                                 f"fit the loss values of shape {shape}")
            w = w.reshape(w.shape + (1,) * (len(shape) - w.ndim))
    return np.broadcast_to(w.astype(np.float64), shape)


class Loss:
    name = "loss"
    fusable = None  # the output activation this loss can take logits from

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size",
                 dtype=None):  # dtype: Keras's argument, which user subclasses pass on
        self.from_logits = bool(from_logits)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"Invalid value for argument `reduction`. Expected one of "
                             f"{_REDUCTIONS[:4]}. Received: reduction={reduction!r}")
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

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The weighted values reduced by self.reduction (a float, or an array for None)."""
        return _reduce(self.values(y_true, y_pred), sample_weight, self.reduction)

    def values(self, y_true, y_pred) -> np.ndarray:
        """Keras's unreduced values, shape y_pred.shape[:-1] (float32)."""
        p = np.asarray(y_pred, dtype=np.float32)
        t = _same_rank(np.asarray(y_true), p)
        vals, _ = self._fwd(p, self.prepare_targets(t), False, self.from_logits)
        return np.asarray(vals, np.float32)

    def compute(self, out, y, need_grad, logits=False):
        """(per-sample loss (N,), gradient of the batch-mean loss w.r.t. `out` or None).
        logits=True: `out` is the pre-activation of the fusable activation."""
        n = out.shape[0]
        vals, d = self._fwd(out, y, need_grad, logits or self.from_logits)
        vals = np.asarray(vals)
        per = _rows(vals, n) if vals.ndim != 1 else vals.astype(np.float32)
        if not need_grad:
            return per, None
        return per, (d / max(vals.size, 1)).astype(np.float32).reshape(out.shape)

    def compute_masked(self, out, y, mask, sample_weight, need_grad, logits=False):
        """Keras 3's loss of an output that carries a mask (Loss.__call__ ->
        reduce_weighted_values -> apply_mask): with v the unreduced values and m the mask,
        'sum_over_batch_size' gives sum(v * m * sw) / sum(m) (0 when nothing is valid) and 'sum'
        gives sum(v * m * sw); masked values contribute nothing, gradients included. Per-sample
        weights sw (N,) apply to every step of their sample. Returns (per-sample losses (N,)
        whose batch mean is that loss, d loss / d out or None), as compute does, or None when
        the values are already reduced over the batch (the mask then changes nothing)."""
        n = out.shape[0]
        v, vjp = self._values_vjp(out, y, need_grad, logits or self.from_logits)
        if v.ndim == 0 or v.shape[0] != n:
            return None  # values already reduced over the batch: Keras's mask changes nothing
        w = mask_weights(mask, v.shape, self.reduction, self.name)
        if sample_weight is not None:
            w = w * _broadcast_weights(sample_weight, v.shape, self.name)
        if self.reduction != "sum":
            w = w / max(v.size, 1)  # the reduction's divisor, folded into the weights
        vw = v * w
        per = (vw.reshape(n, -1).sum(axis=1) * n if n else np.zeros(0)).astype(np.float32)
        return per, (vjp(w) if need_grad else None)

    def batch_scale(self, out):
        """What compute's batch mean is multiplied by to give the reduced loss: 1 for the
        mean reductions, the number of values (out.shape[:-1]) for 'sum'."""
        if self.reduction != "sum" or out.ndim == 0:
            return 1
        return out.size // max(out.shape[-1], 1) if out.ndim > 1 else out.size

    def _values_vjp(self, out, y, need_grad, logits):
        """(unreduced values (float64), w -> d sum(w * values) / d out as float32)."""
        vals, d = self._fwd(out, y, need_grad, logits)
        v = np.asarray(vals, np.float64)

        def vjp(w):
            return (np.asarray(d, np.float64) * w[..., None]).astype(np.float32).reshape(
                out.shape)

        return v, vjp

    def _fwd(self, p, t, need_grad, logits):
        """(values of shape p.shape[:-1], d sum(values) / dp or None), both float64."""
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _MeanLast(Loss):
    """values = mean over the last axis of elem(t, p)."""

    def _fwd(self, p, t, need_grad, logits):
        p64 = p.astype(np.float64)
        t64 = np.broadcast_to(t, p.shape).astype(np.float64)
        e, de = self._elem(p64, t64, need_grad)
        c = p.shape[-1] if p.ndim else 1
        return e.mean(axis=-1), (de / c if need_grad else None)

    def _elem(self, p, t, need_grad):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


class MeanSquaredError(_MeanLast):
    """loss = mean((p - t)^2)."""

    name = "mean_squared_error"

    def compute(self, out, y, need_grad, logits=False):
        diff = out - y
        per = _rows(np.square(diff, dtype=np.float64), out.shape[0])
        return per, (diff * np.float32(2.0 / out.size) if need_grad else None)

    def _elem(self, p, t, need_grad):
        d = p - t
        return d * d, (2 * d if need_grad else None)


class MeanAbsoluteError(_MeanLast):
    """loss = mean(|p - t|)."""

    name = "mean_absolute_error"

    def compute(self, out, y, need_grad, logits=False):
        diff = out - y
        per = _rows(np.abs(diff, dtype=np.float64), out.shape[0])
        return per, (np.sign(diff) * np.float32(1.0 / out.size) if need_grad else None)

    def _elem(self, p, t, need_grad):
        d = p - t
        return np.abs(d), (np.sign(d) if need_grad else None)


class MeanAbsolutePercentageError(_MeanLast):
    """loss = 100 * mean(|t - p| / max(|t|, eps))."""

    name = "mean_absolute_percentage_error"

    def _elem(self, p, t, need_grad):
        den = np.maximum(np.abs(t), EPSILON)
        return 100.0 * np.abs(t - p) / den, (100.0 * np.sign(p - t) / den if need_grad else None)


class MeanSquaredLogarithmicError(_MeanLast):
    """loss = mean((log(max(p, eps) + 1) - log(max(t, eps) + 1))^2)."""

    name = "mean_squared_logarithmic_error"

    def _elem(self, p, t, need_grad):
        pc = np.maximum(p, EPSILON)
        a = np.log(pc + 1.0) - np.log(np.maximum(t, EPSILON) + 1.0)
        return a * a, (2 * a / (pc + 1.0) * (p > EPSILON) if need_grad else None)


class Huber(_MeanLast):
    """e = p - t; loss = mean(0.5 e^2 if |e| <= delta else delta |e| - 0.5 delta^2)."""

    name = "huber_loss"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        self.delta = float(delta)
        if not self.delta >= 0:
            raise ValueError(f"Huber: delta must be >= 0, got {delta}")

    def _elem(self, p, t, need_grad):
        e = p - t
        a = np.abs(e)
        small = a <= self.delta
        v = np.where(small, 0.5 * e * e, self.delta * a - 0.5 * self.delta ** 2)
        return v, (np.where(small, e, self.delta * np.sign(e)) if need_grad else None)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class LogCosh(_MeanLast):
    """x = p - t; loss = mean(x + softplus(-2x) - log 2)  (= mean(log cosh x)); d/dp = tanh x."""

    name = "log_cosh"

    def _elem(self, p, t, need_grad):
        x = p - t
        return x + np.logaddexp(0.0, -2.0 * x) - np.log(2.0), (np.tanh(x) if need_grad else None)


class Poisson(_MeanLast):
    """loss = mean(p - t log(p + eps))."""

    name = "poisson"

    def _elem(self, p, t, need_grad):
        return p - t * np.log(p + EPSILON), (1.0 - t / (p + EPSILON) if need_grad else None)


def _hinge_labels(t):
    # Keras: labels that are all 0/1 are mapped to -1/1; others are used as given.
    return 2.0 * t - 1.0 if np.all((t == 0) | (t == 1)) else t


class Hinge(_MeanLast):
    """loss = mean(max(1 - t p, 0)); t in {-1, 1} (0/1 labels are mapped to -1/1)."""

    name = "hinge"

    def _elem(self, p, t, need_grad):
        t = _hinge_labels(t)
        m = 1.0 - t * p
        return np.maximum(m, 0.0), (-t * (m > 0) if need_grad else None)


class SquaredHinge(_MeanLast):
    """loss = mean(max(1 - t p, 0)^2); t in {-1, 1} (0/1 labels are mapped to -1/1)."""

    name = "squared_hinge"

    def _elem(self, p, t, need_grad):
        t = _hinge_labels(t)
        m = np.maximum(1.0 - t * p, 0.0)
        return m * m, (-2.0 * t * m if need_grad else None)


class KLDivergence(Loss):
    """loss = sum(t' log(t' / p')), t' = clip(t, eps, 1), p' = clip(p, eps, 1)."""

    name = "kl_divergence"

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)

    def _fwd(self, p, t, need_grad, logits):
        p64 = p.astype(np.float64)
        tc = np.clip(np.broadcast_to(t, p.shape).astype(np.float64), EPSILON, 1.0)
        pc = np.clip(p64, EPSILON, 1.0)
        v = np.sum(tc * np.log(tc / pc), axis=-1)
        return v, (-tc / pc * ((p64 >= EPSILON) & (p64 <= 1.0)) if need_grad else None)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


class CategoricalHinge(Loss):
    """loss = max(max((1 - t) p) - sum(t p) + 1, 0)."""

    name = "categorical_hinge"

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)

    def _fwd(self, p, t, need_grad, logits):
        p64 = p.astype(np.float64)
        t64 = np.broadcast_to(t, p.shape).astype(np.float64)
        pos = np.sum(t64 * p64, axis=-1)
        negs = (1.0 - t64) * p64
        neg = negs.max(axis=-1)
        v = np.maximum(neg - pos + 1.0, 0.0)
        if not need_grad:
            return v, None
        onehot = np.zeros_like(p64)
        np.put_along_axis(onehot, negs.argmax(axis=-1)[..., None], 1.0, axis=-1)
        d = (onehot * (1.0 - t64) - t64) * (v > 0)[..., None]
        return v, d

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


class CosineSimilarity(Loss):
    """loss = -sum(t / max(|t|, eps) * p / max(|p|, eps)) over `axis` (|.| the L2 norm)."""

    name = "cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        if axis != -1:
            raise ValueError("CosineSimilarity: only axis=-1 is supported")
        self.axis = axis

    def _fwd(self, p, t, need_grad, logits):
        p64 = p.astype(np.float64)
        t64 = np.broadcast_to(t, p.shape).astype(np.float64)
        tn = t64 / np.maximum(np.sqrt(np.sum(t64 * t64, -1, keepdims=True)), EPSILON)
        norm = np.sqrt(np.sum(p64 * p64, -1, keepdims=True))
        big = norm > EPSILON
        den = np.where(big, norm, EPSILON)
        dot = np.sum(tn * p64, -1, keepdims=True)
        v = -(dot / den)[..., 0]
        if not need_grad:
            return v, None
        d = -(tn / den - np.where(big, dot * p64 / den ** 3, 0.0))
        return v, d

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "axis": self.axis}


class _CrossEntropy(Loss):
    fusable = "softmax"
    sparse = False

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None,
                 reduction="sum_over_batch_size"):
        super().__init__(from_logits=from_logits, name=name, reduction=reduction)
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")

    def _smooth(self, t, c):
        if self.sparse or not self.label_smoothing:
            return t
        ls = np.float32(self.label_smoothing)
        return (t * (np.float32(1) - ls) + ls / np.float32(c)).astype(np.float32)

    def compute(self, out, y, need_grad, logits=False):
        n = out.shape[0]
        per, d = self._flat(out, y, need_grad, logits or self.from_logits, None)
        return _rows(per, n) if per.shape[0] != n else per, d

    def _flat(self, out, y, need_grad, logits, scale):
        c = out.shape[-1]
        z = out.reshape(-1, c)
        t = y.reshape(-1) if self.sparse else self._smooth(y.reshape(-1, c), c)
        rows = z.shape[0]
        scale = 1.0 / rows if scale is None else scale
        if logits:
            per, d = _train.softmax_cross_entropy(z, t, grad_scale=scale, need_grad=need_grad)
        else:
            per, d = self._on_probs(z, t, rows, need_grad, scale)
        return per, (d.reshape(out.shape) if need_grad else None)

    def _fwd(self, p, t, need_grad, logits):
        per, d = self._flat(p, t, need_grad, logits, 1.0)
        return per.reshape(p.shape[:-1]), d

    def _on_probs(self, p, t, rows, need_grad, scale):
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
        return per.astype(np.float32), (d * scale).astype(np.float32)

    def get_config(self):
        cfg = {**super().get_config()}
        if not self.sparse:
            cfg["label_smoothing"] = self.label_smoothing
        return cfg


class SparseCategoricalCrossentropy(_CrossEntropy):
    """loss = -log q[label], q = softmax(z) (from_logits or fused), else q = clip(p / sum(p),
    eps, 1 - eps); labels are integers in [0, classes)."""

    name = "sparse_categorical_crossentropy"
    sparse = True

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size"):
        super().__init__(from_logits=from_logits, name=name, reduction=reduction)

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

    def values(self, y_true, y_pred):
        p = np.asarray(y_pred, dtype=np.float32)
        t = np.asarray(y_true)
        if t.ndim == p.ndim and t.shape[-1] == 1:
            t = t[..., 0]
        vals, _ = self._fwd(p, self.prepare_targets(t), False, self.from_logits)
        return np.asarray(vals, np.float32)


class CategoricalCrossentropy(_CrossEntropy):
    """loss = -sum(t' log q); q = softmax(z) (from_logits or fused), else
    q = clip(p / sum(p), eps, 1 - eps); t' = t (1 - label_smoothing) + label_smoothing / C."""

    name = "categorical_crossentropy"


class BinaryCrossentropy(Loss):
    """loss = mean(-(t' log p + (1-t') log(1-p))); t' = t (1 - ls) + 0.5 ls; on probabilities p is
    clipped to [eps, 1-eps]; from logits z: mean(max(z, 0) - z t' + log(1 + exp(-|z|)))."""

    name = "binary_crossentropy"
    fusable = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None,
                 reduction="sum_over_batch_size"):
        super().__init__(from_logits=from_logits, name=name, reduction=reduction)
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")

    def compute(self, out, y, need_grad, logits=False):
        n = out.shape[0]
        elem, d = self._elementwise(out, y, need_grad, logits or self.from_logits, out.size)
        return _rows(elem, n), d

    def _elementwise(self, out, y, need_grad, logits, size):
        if self.label_smoothing:
            ls = np.float32(self.label_smoothing)
            y = (y * (np.float32(1) - ls) + np.float32(0.5) * ls).astype(np.float32)
        d = None
        if logits:
            z = out.astype(np.float64)
            elem = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
            if need_grad:
                d = ((_train.activation(out, "sigmoid") - y) / np.float32(size))
        else:
            p = out.astype(np.float64)
            pc = np.clip(p, EPSILON, 1 - EPSILON)
            elem = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
            if need_grad:
                inside = (p > EPSILON) & (p < 1 - EPSILON)
                d = np.where(inside, (pc - y) / (pc * (1 - pc)), 0.0) / size
                d = d.astype(np.float32)
        return elem, d

    def _fwd(self, p, t, need_grad, logits):
        t = np.broadcast_to(t, p.shape).astype(np.float32)
        elem, d = self._elementwise(p, t, need_grad, logits, p.shape[-1])
        return elem.mean(axis=-1), d

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class BinaryFocalCrossentropy(Loss):
    """p = sigmoid(z) if from_logits; t' = t (1 - ls) + 0.5 ls;
    bce = -(t' log p' + (1-t') log(1-p')), p' = clip(p, eps, 1-eps); p_t = t' p + (1-t')(1-p);
    loss = mean(w (1 - p_t)^gamma bce), w = t' alpha + (1-t')(1-alpha) if apply_class_balancing
    else 1."""

    name = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, reduction="sum_over_batch_size", name=None):
        super().__init__(from_logits=from_logits, name=name, reduction=reduction)
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")

    def _fwd(self, p, t, need_grad, logits):
        x = p.astype(np.float64)
        t = np.broadcast_to(t, p.shape).astype(np.float64)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        q = _sigmoid(x) if logits else x
        qc = np.clip(q, EPSILON, 1 - EPSILON)
        bce = -(t * np.log(qc) + (1 - t) * np.log(1 - qc))
        pt = t * q + (1 - t) * (1 - q)
        base = 1.0 - pt
        fac = base ** self.gamma
        w = (t * self.alpha + (1 - t) * (1 - self.alpha)) if self.apply_class_balancing else 1.0
        v = (w * fac * bce).mean(axis=-1)
        if not need_grad:
            return v, None
        inside = (q > EPSILON) & (q < 1 - EPSILON)
        dbce = np.where(inside, (qc - t) / (qc * (1 - qc)), 0.0)
        dfac = (-self.gamma * base ** (self.gamma - 1) * (2 * t - 1) if self.gamma != 0
                else 0.0)
        d = w * (dfac * bce + fac * dbce)
        if logits:
            d = d * q * (1 - q)
        return v, d / p.shape[-1]

    def get_config(self):
        return {**super().get_config(), "apply_class_balancing": self.apply_class_balancing,
                "alpha": self.alpha, "gamma": self.gamma,
                "label_smoothing": self.label_smoothing}


class CategoricalFocalCrossentropy(Loss):
    """q = softmax(z) if from_logits else p; q' = clip(q / sum(q), eps, 1 - eps);
    t' = t (1 - ls) + ls / C; loss = sum(-alpha (1 - q')^gamma t' log q')."""

    name = "categorical_focal_crossentropy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                 reduction="sum_over_batch_size", name=None):
        super().__init__(from_logits=from_logits, name=name, reduction=reduction)
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")

    def _fwd(self, p, t, need_grad, logits):
        x = p.astype(np.float64)
        t = np.broadcast_to(t, p.shape).astype(np.float64)
        c = p.shape[-1]
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + self.label_smoothing / c
        q0 = _softmax(x) if logits else x
        s = q0.sum(axis=-1, keepdims=True)
        q = q0 / s
        qc = np.clip(q, EPSILON, 1 - EPSILON)
        base = 1.0 - qc
        lq = np.log(qc)
        v = np.sum(-self.alpha * base ** self.gamma * t * lq, axis=-1)
        if not need_grad:
            return v, None
        inside = (q > EPSILON) & (q < 1 - EPSILON)
        dmod = self.gamma * base ** (self.gamma - 1) if self.gamma != 0 else 0.0
        g = np.where(inside, self.alpha * t * (dmod * lq - base ** self.gamma / qc), 0.0)
        gq = (g - (g * q).sum(axis=-1, keepdims=True))  # through q = q0 / s ...
        d = gq * q0 if logits else gq / s  # ... and q0 = softmax(z) when from logits
        return v, d

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma,
                "label_smoothing": self.label_smoothing}


_CLASSES = (SparseCategoricalCrossentropy, CategoricalCrossentropy, BinaryCrossentropy,
            MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
            MeanSquaredLogarithmicError, Huber, LogCosh, KLDivergence, Poisson, Hinge,
            SquaredHinge, CategoricalHinge, CosineSimilarity, BinaryFocalCrossentropy,
            CategoricalFocalCrossentropy)
_REGISTRY = {cls.name: cls for cls in _CLASSES}
_REGISTRY.update({
    "mse": MeanSquaredError, "mae": MeanAbsoluteError, "mape": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "huber": Huber, "logcosh": LogCosh, "kld": KLDivergence,
    "kullback_leibler_divergence": KLDivergence,
})
_BY_CLASS = {cls.__name__: cls for cls in _CLASSES}


def get(identifier) -> Loss:
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _REGISTRY:
        return _REGISTRY[identifier]()
    if isinstance(identifier, str) and identifier in _BY_CLASS:
        return _BY_CLASS[identifier]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"unknown loss {identifier!r}; expected one of {sorted(_REGISTRY)} or a "
                     "nncore.losses.Loss")


def serialize(loss: Loss) -> dict:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(d) -> Loss:
    return from_entry(d, _BY_CLASS, "loss", errors=(TypeError, ValueError))


# ---- Keras's function-style losses: unreduced values, shape y_pred.shape[:-1] -----------------
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    return SparseCategoricalCrossentropy(from_logits=from_logits).values(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    return CategoricalCrossentropy(from_logits, label_smoothing).values(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    return BinaryCrossentropy(from_logits, label_smoothing).values(y_true, y_pred)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                              from_logits=False, label_smoothing=0.0):
    return BinaryFocalCrossentropy(apply_class_balancing, alpha, gamma, from_logits,
                                   label_smoothing).values(y_true, y_pred)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0):
    return CategoricalFocalCrossentropy(alpha, gamma, from_logits,
                                        label_smoothing).values(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    return MeanSquaredError().values(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    return MeanAbsoluteError().values(y_true, y_pred)


def mean_absolute_percentage_error(y_true, y_pred):
    return MeanAbsolutePercentageError().values(y_true, y_pred)


def mean_squared_logarithmic_error(y_true, y_pred):
    return MeanSquaredLogarithmicError().values(y_true, y_pred)


def huber(y_true, y_pred, delta=1.0):
    return Huber(delta).values(y_true, y_pred)


def log_cosh(y_true, y_pred):
    return LogCosh().values(y_true, y_pred)


def kl_divergence(y_true, y_pred):
    return KLDivergence().values(y_true, y_pred)


def poisson(y_true, y_pred):
    return Poisson().values(y_true, y_pred)


def hinge(y_true, y_pred):
    return Hinge().values(y_true, y_pred)


def squared_hinge(y_true, y_pred):
    return SquaredHinge().values(y_true, y_pred)


def categorical_hinge(y_true, y_pred):
    return CategoricalHinge().values(y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    return CosineSimilarity(axis).values(y_true, y_pred)


mse = mean_squared_error
mae = mean_absolute_error
mape = mean_absolute_percentage_error
msle = mean_squared_logarithmic_error
logcosh = log_cosh
kld = kl_divergence
