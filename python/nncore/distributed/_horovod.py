"""Horovod's pieces, for training loops of one's own (train_on_batch) and for Horovod programs
moved to nncore. Inside a distributed fit they are harmless: fit already averages the gradients
and the logs and broadcasts the state, and these notice it (no double averaging)."""

from __future__ import annotations

import copy

import numpy as np

from .. import callbacks as _callbacks


def _ctx():
    from . import _get

    return _get()


class _DistributedApply:
    """Mixed in front of an optimizer class: apply() averages the gradients over the ranks (one
    Allreduce of one flat float32 buffer) before the update."""

    _nncore_distributed = True

    def apply(self, params, grads, regs):
        c = _ctx()
        if c.size > 1 and not c.in_fit:
            grads = list(grads)
            sizes = [int(np.size(g)) for g in grads]
            buf = getattr(self, "_allreduce_buf", None)
            if buf is None or buf.size != sum(sizes):
                buf = self._allreduce_buf = np.empty(sum(sizes), np.float32)
            off = 0
            for g, s in zip(grads, sizes):
                buf[off:off + s] = np.asarray(g, np.float32).reshape(-1)
                off += s
            c.allreduce_(buf, "the gradient allreduce")
            if self._allreduce_op == "average":
                np.divide(buf, np.float32(c.size), out=buf)
            out, off = [], 0
            for g, s in zip(grads, sizes):
                out.append(buf[off:off + s].reshape(np.shape(g)))
                off += s
            grads = out
        return super().apply(params, grads, regs)


def DistributedOptimizer(optimizer, op="average"):
    """A copy of `optimizer` whose apply() first averages (op="sum": sums) the gradients over
    all ranks. It keeps the optimizer's class name and config, so a model compiled with it saves
    as with the plain optimizer. Learning-rate rule (Horovod's): scale the single-process rate
    by size() (the global batch is size() times larger), with LearningRateWarmupCallback for the
    first epochs."""
    from ..optimizers import Optimizer, get

    optimizer = get(optimizer)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"DistributedOptimizer expects an nncore optimizer, got "
                        f"{type(optimizer).__name__}")
    if op not in ("average", "sum"):
        raise ValueError(f"op must be 'average' or 'sum', got {op!r}")
    if getattr(optimizer, "_nncore_distributed", False):
        return optimizer
    cls = type(optimizer)
    sub = type(cls.__name__, (_DistributedApply, cls), {"__module__": cls.__module__,
                                                        "__qualname__": cls.__qualname__})
    new = copy.copy(optimizer)
    new.__class__ = sub
    new._allreduce_op = op
    return new


class BroadcastGlobalVariablesCallback(_callbacks.Callback):
    """At the start of training, every rank takes root_rank's weights and optimizer state."""

    def __init__(self, root_rank=0):
        super().__init__()
        self.root_rank = int(root_rank)

    def on_train_begin(self, logs=None):
        from . import broadcast_variables

        broadcast_variables(self.model, self.root_rank)


class MetricAverageCallback(_callbacks.Callback):
    """At the end of every epoch, every scalar entry of the logs is replaced by its mean over the
    ranks (as Horovod's: unweighted). Put it before callbacks that read the logs. A distributed
    fit averages them itself (weighted by rows), so there it does nothing."""

    def on_epoch_end(self, epoch, logs=None):
        c = _ctx()
        if logs is None or c.size == 1 or c.in_fit:
            return
        names = [k for k, v in logs.items() if isinstance(v, (float, int, np.floating))
                 and not isinstance(v, bool)]
        buf = np.array([float(logs[k]) for k in names], np.float64)
        c.allreduce_(buf, "the metric average")
        for k, v in zip(names, buf):
            logs[k] = float(v / c.size)


class LearningRateWarmupCallback(_callbacks.Callback):
    """Horovod's gradual warm-up (Goyal et al. 2017): over the first warmup_epochs epochs the
    learning rate rises linearly, batch by batch, from initial_lr / size() to initial_lr (the
    size()-scaled rate), then stays there.

        lr(e) = initial_lr / size * (1 + e * (size - 1) / warmup_epochs),  e = epoch + batch/steps

    steps_per_epoch defaults to fit's steps per epoch."""

    def __init__(self, initial_lr, warmup_epochs=5, steps_per_epoch=None, verbose=0):
        super().__init__()
        if not initial_lr > 0:
            raise ValueError(f"initial_lr must be > 0, got {initial_lr!r}")
        if not warmup_epochs > 0:
            raise ValueError(f"warmup_epochs must be > 0, got {warmup_epochs!r}")
        self.initial_lr, self.warmup_epochs = float(initial_lr), float(warmup_epochs)
        self.steps_per_epoch, self.verbose = steps_per_epoch, verbose
        self._epoch = 0

    def _lr(self, e):
        n = _ctx().size
        if e >= self.warmup_epochs:
            return self.initial_lr
        return self.initial_lr / n * (1.0 + e * (n - 1) / self.warmup_epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        steps = self.steps_per_epoch or (self.params or {}).get("steps") or 1
        if self._epoch < self.warmup_epochs:
            self.model.optimizer.learning_rate = self._lr(self._epoch + batch / steps)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.warmup_epochs:
            self.model.optimizer.learning_rate = self.initial_lr
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        if self.verbose and epoch + 1 == int(np.ceil(self.warmup_epochs)) \
                and _ctx().rank == 0:
            print(f"\nEpoch {epoch + 1}: finished gradual learning rate warmup to "
                  f"{self.initial_lr:g}.")
