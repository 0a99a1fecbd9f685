"""The distributed side of Model.fit: data shards, the fused gradient allreduce, state broadcast,
averaged logs and the common stopping decision. trainers/trainer.py calls these at fixed points
of its loop when nncore.distributed is initialised with more than one process."""

from __future__ import annotations

import math

import numpy as np

from . import broadcast_variables


class ShardedArrays:
    """Arrays every rank holds whole; rank r of S takes the r-th contiguous slice of B rows of
    each global batch of B*S rows. With shuffle, the rows are first permuted by one permutation
    per epoch, the same on every rank (a seed broadcast from rank 0). A last, partial global
    batch of m rows is split into S contiguous near-equal slices (dropped when m < S), and the
    gradient average is weighted by the rows each rank had, so a step is the step one process
    would take on the whole global batch."""

    def __init__(self, inner, rank, size, seed, steps_limit):
        self.inner, self.rank, self.size, self.seed = inner, rank, size, seed
        self.n, self.batch_size = inner.n, inner.batch_size
        g = self.batch_size * size
        full, rest = divmod(self.n, g)
        steps = full + (1 if rest >= size else 0)
        self.steps = steps if steps_limit is None else min(steps, steps_limit)
        if self.steps == 0:
            raise ValueError(f"fit: {self.n} samples cannot give every one of the {size} ranks "
                             "a row")
        self._epoch = 0

    def __len__(self):
        return self.steps

    def _slice(self, step):
        g = self.batch_size * self.size
        lo = step * g
        m = min(g, self.n - lo)
        a = lo + self.rank * m // self.size
        b = lo + (self.rank + 1) * m // self.size
        return a, b

    def epoch(self):
        inner = self.inner
        order = None
        if inner.shuffle:
            order = np.random.default_rng([self.seed, self._epoch]).permutation(self.n)
        self._epoch += 1
        for step in range(self.steps):
            a, b = self._slice(step)
            idx = None if order is None else order[a:b]
            xb = [_rows(x, a, b, idx) for x in inner.xs]
            yb = None if inner.ys is None else [_rows(y, a, b, idx) for y in inner.ys]
            sb = None if inner.sw is None else _rows(inner.sw, a, b, idx)
            yield xb, yb, sb

    def on_epoch_end(self):
        pass


def _rows(arr, a, b, idx):
    return arr[a:b] if idx is None else np.take(arr, idx, axis=0)


_RANK0_ONLY = ("ModelCheckpoint", "BackupAndRestore", "CSVLogger", "TensorBoard",
               "ProgbarLogger")


class FitRun:
    def __init__(self, ctx, model):
        self.ctx, self.model = ctx, model
        self.primary = ctx.rank == 0
        self.rows = 0            # global rows of the last step
        self.stop_now = False    # a rank asked to stop: the step was not applied
        self._pending_stop = 0.0
        self._buf = None
        self._remove_hook = None

    # ---- before the loop -------------------------------------------------------------------
    def train_data(self, data, steps_limit):
        from ..trainers.data_adapters import ArrayAdapter

        c = self.ctx
        if isinstance(data, ArrayAdapter) and c.shard_data:
            from ..utils.random import get_rng

            seed = np.array([get_rng().integers(2 ** 62) if self.primary and data.shuffle
                             else 0], np.int64)
            c.bcast_(seed, 0, "broadcast of the shuffle seed")
            return ShardedArrays(data, c.rank, c.size, int(seed[0]), steps_limit)
        steps = getattr(data, "steps", None)
        if steps is None:
            raise ValueError("fit: in a distributed fit a generator or iterator needs "
                             "steps_per_epoch (every rank must take the same number of steps)")
        lim = np.array([steps, -steps], np.int64)
        c.allreduce_(lim, "check of the steps per epoch", op="max")
        if lim[0] != -lim[1]:
            raise ValueError(f"fit: the ranks' data give different numbers of steps per epoch "
                             f"(from {-lim[1]} to {lim[0]}; this rank: {steps}); give every "
                             "rank the same number of batches or set steps_per_epoch")
        return data

    def val_data(self, val):
        """Rank r validates on the r-th contiguous 1/S of validation arrays (all of them when
        there are fewer rows than ranks); other kinds of data: what the rank was given."""
        from ..trainers.data_adapters import ArrayAdapter

        c = self.ctx
        if not isinstance(val, ArrayAdapter) or not c.shard_data or val.n < c.size:
            return val
        a, b = val.n * c.rank // c.size, val.n * (c.rank + 1) // c.size
        return ArrayAdapter([x[a:b] for x in val.xs],
                            None if val.ys is None else [y[a:b] for y in val.ys],
                            None if val.sw is None else val.sw[a:b], val.batch_size, False,
                            "fit validation_data")

    def callbacks(self, cbs):
        if self.primary:
            return cbs
        return [cb for cb in cbs if type(cb).__name__ not in _RANK0_ONLY]

    def start(self, st, initial_epoch):
        """After on_train_begin (a BackupAndRestore on rank 0 may have restored the state):
        rank 0's weights, optimizer state and first epoch everywhere; the gradient hook on."""
        c = self.ctx
        broadcast_variables(self.model, 0)
        ep = np.array([initial_epoch], np.int64)
        c.bcast_(ep, 0, "broadcast of the first epoch")
        self._sizes = [int(w.size) for w in st.params]
        self._n = sum(self._sizes)
        self._remove_hook = self.model.add_gradient_hook(self._hook)
        c.in_fit = True
        return int(ep[0])

    def end(self):
        self.ctx.in_fit = False
        if self._remove_hook is not None:
            self._remove_hook()
            self._remove_hook = None

    # ---- every step ------------------------------------------------------------------------
    def request_stop(self):
        self._pending_stop = 1.0

    def _hook(self, grads, params):
        """One Allreduce of [grad_1 * m, ..., grad_k * m, m, loss * m, output losses * m, stop]
        (m = this rank's rows): the row-weighted mean gradient and loss of the global batch, and
        whether any rank asked to stop."""
        from ..trainers.trainer import SKIP_STEP

        rows, loss, means = self.model._step_info
        n, k = self._n, len(means)
        if self._buf is None or self._buf.size != n + 3 + k:
            self._buf = np.empty(n + 3 + k, np.float32)
        buf = self._buf
        m = np.float32(rows)
        off = 0
        for g, s in zip(grads, self._sizes):
            np.multiply(np.asarray(g, np.float32).reshape(-1), m, out=buf[off:off + s])
            off += s
        buf[n] = m
        buf[n + 1] = loss * rows
        buf[n + 2:n + 2 + k] = [v * rows for v in means]
        buf[n + 2 + k] = self._pending_stop
        self.ctx.allreduce_(buf, "the gradient allreduce")
        total = float(buf[n])
        self.rows = int(round(total))
        if buf[n + 2 + k] > 0:
            self.stop_now = True
            return SKIP_STEP
        np.divide(buf[:n], buf[n], out=buf[:n])
        self.model._step_info = (self.rows, float(buf[n + 1]) / total,
                                 [float(v) / total for v in buf[n + 2:n + 2 + k]])
        out, off = [], 0
        for p, s in zip(params, self._sizes):
            out.append(buf[off:off + s].reshape(p.shape))
            off += s
        return out

    # ---- epoch end -------------------------------------------------------------------------
    def average_logs(self, logs, seen, keys=None):
        """Every scalar entry of logs (or those in keys) averaged over ranks, weighted by the
        rows each rank saw; identical on every rank."""
        names = [k for k, v in logs.items() if (keys is None or k in keys)
                 and isinstance(v, (float, int, np.floating, np.integer))
                 and not isinstance(v, bool)]
        buf = np.array([float(seen)] + [float(logs[k]) * seen for k in names], np.float64)
        self.ctx.allreduce_(buf, "the metric average")
        out = dict(logs)
        for i, k in enumerate(names):
            out[k] = float(buf[i + 1] / buf[0]) if buf[0] else math.nan
        return out

    def epoch_logs(self, logs, st, local_seen):
        """The loss entries are already global (they came through the gradient allreduce);
        the metrics are this rank's and are averaged here."""
        return self.average_logs(logs, local_seen, {label for _, _, label in st.metrics})

    def any(self, flag):
        buf = np.array([1.0 if flag else 0.0], np.float64)
        self.ctx.allreduce_(buf, "the stop decision", op="max")
        return bool(buf[0] > 0)
