"""Loss functions written by the user: ``compile(loss=fn)`` with ``fn(y_true, y_pred)`` written
in keras.ops, and ``keras.losses.Loss`` subclasses with a ``call``.

The function is traced once per (target shape, output shape) on symbolic tensors into a graph of
ops (the machinery user layers use); the training step runs that graph on the batch and
differentiates it to get d loss / d output, which the model's backward takes as usual.
"""

from __future__ import annotations

import threading

import numpy as np

from .. import losses as losses_module

_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", None, "none")


class FunctionLoss(losses_module.Loss):
    """A loss computed by fn(y_true, y_pred) -> values; reduced as Keras reduces them
    ('sum_over_batch_size': the mean of every value; 'sum': their sum)."""

    fusable = None

    def __init__(self, fn, name=None, reduction="sum_over_batch_size", wrapper=True):
        losses_module.Loss.__init__(self, name=name or getattr(fn, "__name__", "loss"))
        if reduction not in _REDUCTIONS:
            raise ValueError(f"loss {self.name!r}: reduction must be one of "
                             f"{[r for r in _REDUCTIONS if r]}, got {reduction!r}")
        if reduction in (None, "none"):
            raise ValueError(f"loss {self.name!r}: reduction=None gives unreduced values; "
                             "training needs a reduced loss")
        self.fn = fn
        self.reduction = reduction
        self.wrapper = wrapper  # Keras's LossFunctionWrapper aligns the ranks of y_true, y_pred
        self._graphs: dict = {}
        self._lock = threading.Lock()

    def check_targets(self, y, out_shape, where):
        if y.ndim == 0 or (y.shape[0] != 0 and y.ndim > len(out_shape) + 1):
            raise ValueError(f"{where}: loss {self.name!r}: targets of shape {y.shape} do not "
                             f"fit the model output {tuple(out_shape)}")

    def _align(self, y, out):
        if not self.wrapper:
            return y
        if y.ndim == out.ndim - 1 and out.shape[-1] == 1:
            return y.reshape(y.shape + (1,))
        if y.ndim == out.ndim + 1 and y.shape[-1] == 1:
            return y.reshape(y.shape[:-1])
        return y

    def _graph(self, y, out):
        key = (y.shape[1:], str(y.dtype), out.shape[1:])
        g = self._graphs.get(key)
        if g is None:
            with self._lock:
                g = self._graphs.get(key)
                if g is None:
                    g = _trace_loss(self, y, out)
                    self._graphs[key] = g
        return g

    def compute(self, out, y, need_grad, logits=False):
        y = self._align(y, out)
        g = self._graph(y, out)
        vals, ctxs, _ = g.run([y, out], False, need_grad)
        v = np.asarray(vals[0])
        n = out.shape[0]
        if v.ndim >= 1 and v.shape[0] == n and n:
            rows = v.reshape(n, -1).astype(np.float64)
            per = rows.mean(axis=1) if self.reduction != "sum" else rows.sum(axis=1) * n
        else:  # already reduced over the batch
            per = np.full(n, float(np.sum(v, dtype=np.float64)) * (1 if v.ndim == 0 else 1),
                          np.float64)
        per = per.astype(np.float32)
        if not need_grad:
            return per, None
        if self.reduction == "sum":
            dv = np.ones(v.shape, np.float32)
        else:
            dv = np.full(v.shape, 1.0 / max(v.size, 1), np.float32)
        dxs = g.backprop(ctxs, [dv], _plan_for_pred(g))
        d = dxs[1]
        if d is None:
            raise ValueError(f"loss {self.name!r} does not depend on y_pred: no gradient")
        return per, np.ascontiguousarray(d, dtype=np.float32).reshape(out.shape)

    def batch_scale(self, out):
        return 1  # compute applies the reduction itself

    def _values_vjp(self, out, y, need_grad, logits):
        # The masked reduction (Loss.compute_masked) on the traced function's values.
        y = self._align(y, out)
        g = self._graph(y, out)
        vals, ctxs, _ = g.run([y, out], False, need_grad)
        v = np.asarray(vals[0], np.float64)

        def vjp(w):
            dxs = g.backprop(ctxs, [np.ascontiguousarray(w, dtype=np.float32)],
                             _plan_for_pred(g))
            if dxs[1] is None:
                raise ValueError(f"loss {self.name!r} does not depend on y_pred: no gradient")
            return np.ascontiguousarray(dxs[1], dtype=np.float32).reshape(out.shape)

        return v, vjp

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


def _trace_loss(loss, y, out):
    from ..ops._graph import Graph
    from ..layers.core import Input

    yt = Input(shape=y.shape[1:], dtype=str(y.dtype), name="y_true")
    yp = Input(shape=out.shape[1:], dtype=str(out.dtype), name="y_pred")
    v = loss.fn(yt, yp)
    from ..layers.node import KerasTensor

    if not isinstance(v, KerasTensor):
        raise TypeError(f"loss {loss.name!r} must compute its value from y_true and y_pred with "
                        f"keras.ops, got {type(v).__name__}")
    return Graph([yt, yp], [v], 1, v, [yt, yp], 0.0)


def _plan_for_pred(g):
    """Gradient plan in which only y_pred (the second input) needs a gradient."""
    req = [False] * g._n_slots
    req[g._in_slots[1]] = True
    plan = []
    for layer, ins, outs, _, _, _ in g._steps:
        need = any(req[s] for s in ins)
        for s in outs:
            req[s] = need
        plan.append(need)
    return plan


def resolve(v):
    """What compile does with a loss argument that is not a name: a Loss subclass with call, or
    a function of (y_true, y_pred), becomes a FunctionLoss; None when v is neither."""
    if isinstance(v, losses_module.Loss):
        call = getattr(type(v), "call", None)
        if call is None:
            return None
        reduction = getattr(v, "reduction", "sum_over_batch_size")
        return FunctionLoss(v.call, name=v.name, reduction=reduction, wrapper=False)
    if callable(v) and not isinstance(v, type):
        return FunctionLoss(v)
    return None
