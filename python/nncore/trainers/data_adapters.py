"""Data adapters: whatever fit / evaluate / predict are given, as batches of numpy arrays.

Every adapter yields (xs, ys, sample_weight) per batch, with xs and ys flat lists aligned with the
model's inputs and outputs (ys None without targets). Kinds, as Keras 3's data adapters:
arrays (one, a list/tuple, or a dict keyed by input/output names), Python generators and
iterators, PyDataset-style objects (__len__, __getitem__), and - only when such an object is
passed, never imported otherwise - tf.data.Dataset and torch DataLoader, iterated as numpy.
Arrays are converted per batch (a uint8 data set is never copied whole to float32).
"""

from __future__ import annotations

import math

import numpy as np

from ..utils.random import get_rng


class PyDataset:
    """Keras's PyDataset: subclass it, define __len__ (batches per epoch) and __getitem__(i)
    returning (x, y) or (x, y, sample_weight); on_epoch_end() is called after every epoch.
    workers / use_multiprocessing / max_queue_size are accepted; batches are read in order on
    the calling thread."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __len__(self):
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError

    @property
    def num_batches(self):
        return len(self)

    def on_epoch_end(self):
        pass


def _is_array_like(v) -> bool:
    return isinstance(v, np.ndarray) or (
        hasattr(v, "__array__") and not hasattr(v, "__next__") and not _is_tf_or_torch(v))


def _is_tf_or_torch(v) -> bool:
    mod = type(v).__module__ or ""
    return mod.startswith(("tensorflow", "keras", "torch"))


def _to_numpy(v):
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        return v
    if hasattr(v, "numpy") and _is_tf_or_torch(v):
        try:
            return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v.numpy())
        except Exception as e:  # noqa: BLE001 - an unexpected tensor type
            raise TypeError(f"cannot convert {type(v).__name__} to a numpy array: {e}") from None
    return np.asarray(v)


def align(data, names, what, where):
    """A flat list of arrays aligned with `names` (the model's inputs or outputs)."""
    if data is None:
        return None
    if isinstance(data, dict):
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"{where}: {what} dict has keys {sorted(data)}, but the model's "
                             f"{what} are named {names} (missing {missing})")
        extra = sorted(set(data) - set(names))
        if extra:
            raise ValueError(f"{where}: {what} dict has unknown keys {extra}; the model's "
                             f"{what} are named {names}")
        return [_to_numpy(data[n]) for n in names]
    if isinstance(data, (list, tuple)):
        if len(names) == 1 and len(data) != 1:
            return [_to_numpy(data)]
        if len(data) != len(names):
            raise ValueError(f"{where}: the model has {len(names)} {what} ({names}), got a list "
                             f"of {len(data)}")
        return [_to_numpy(d) for d in data]
    if len(names) != 1:
        raise ValueError(f"{where}: the model has {len(names)} {what} ({names}); give a list or "
                         f"a dict of arrays, got one {type(data).__name__}")
    return [_to_numpy(data)]


def unpack(batch):
    """(x, y, sample_weight) from what a generator or PyDataset yields."""
    if isinstance(batch, tuple):
        if len(batch) == 1:
            return batch[0], None, None
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return batch
        raise ValueError(f"a data batch must be x, (x,), (x, y) or (x, y, sample_weight); got a "
                         f"tuple of {len(batch)}")
    return batch, None, None


class ArrayAdapter:
    """Arrays in memory, batched (and shuffled each epoch with nncore's generator)."""

    def __init__(self, xs, ys, sw, batch_size, shuffle, where, steps=None):
        n = {len(a) for a in xs + (ys or []) + ([sw] if sw is not None else [])}
        if len(n) != 1:
            nx = [len(a) for a in xs]
            ny = [len(a) for a in ys or []]
            fx = nx[0] if len(set(nx)) == 1 else nx
            fy = ny[0] if len(set(ny)) == 1 else ny
            extra = "" if sw is None else f", sample_weight has {len(sw)}"
            raise ValueError(f"{where}: x has {fx} samples but y has {fy}{extra} (x shape "
                             f"{xs[0].shape}, y shape {ys[0].shape if ys else None}): inputs "
                             "and targets must have the same number of samples")
        self.n = n.pop()
        self.xs, self.ys, self.sw = xs, ys, sw
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.steps = -(-self.n // batch_size) if steps is None else min(
            steps, -(-self.n // batch_size))
        self._bufs = None

    def __len__(self):
        return self.steps

    def epoch(self):
        order = get_rng().permutation(self.n) if self.shuffle else None
        bs = self.batch_size
        for step in range(self.steps):
            lo, hi = step * bs, min(self.n, (step + 1) * bs)
            if order is None:
                xb = [x[lo:hi] for x in self.xs]
                yb = None if self.ys is None else [y[lo:hi] for y in self.ys]
                sb = None if self.sw is None else self.sw[lo:hi]
            else:
                idx = order[lo:hi]
                xb = [self._take(k, x, idx) for k, x in enumerate(self.xs)]
                yb = None if self.ys is None else [
                    self._take(len(self.xs) + k, y, idx) for k, y in enumerate(self.ys)]
                sb = None if self.sw is None else self.sw[idx]
            yield xb, yb, sb

    def _take(self, k, a, idx):
        # A reused buffer per array: no fresh pages every batch.
        if self._bufs is None:
            self._bufs = {}
        buf = self._bufs.get(k)
        m = len(idx)
        if buf is None or buf.shape[0] < m:
            buf = np.empty((min(self.batch_size, self.n),) + a.shape[1:], a.dtype)
            self._bufs[k] = buf
        return np.take(a, idx, axis=0, out=buf[:m])

    def on_epoch_end(self):
        pass


class PyDatasetAdapter:
    def __init__(self, ds, steps):
        self.ds = ds
        self.steps = len(ds) if steps is None else min(int(steps), len(ds))

    def __len__(self):
        return self.steps

    def epoch(self):
        for i in range(self.steps):
            yield unpack(self.ds[i])

    def on_epoch_end(self):
        if hasattr(self.ds, "on_epoch_end"):
            self.ds.on_epoch_end()


class IteratorAdapter:
    """A generator or iterator (or a re-iterable such as tf.data / DataLoader). With steps, each
    epoch takes that many batches from one running iterator (Keras's steps_per_epoch); without,
    an epoch ends when the iterator does (re-iterables start again each epoch)."""

    def __init__(self, data, steps, where):
        self.data = data
        self.steps = None if steps is None else int(steps)
        self.reiterable = not hasattr(data, "__next__")
        self._it = None
        self.where = where
        if self.steps is None and not self.reiterable:
            self.steps_known = False
        self.seen = None

    def __len__(self):
        return self.steps if self.steps is not None else (self.seen or 0)

    def _iterator(self):
        if self._it is None or (self.reiterable and self.steps is None):
            it = iter(self.data.as_numpy_iterator()) if hasattr(
                self.data, "as_numpy_iterator") else iter(self.data)
            self._it = it
        return self._it

    def epoch(self):
        it = self._iterator()
        count = 0
        while self.steps is None or count < self.steps:
            try:
                batch = next(it)
            except StopIteration:
                if self.steps is not None and count == 0:
                    raise ValueError(f"{self.where}: the data ran out (no batch for this "
                                     "epoch); give a generator that loops, or fewer steps") \
                        from None
                self._it = None
                break
            count += 1
            x, y, sw = unpack(batch if not isinstance(batch, list) or len(batch) not in (2, 3)
                              else tuple(batch))
            yield x, y, sw
        self.seen = count

    def on_epoch_end(self):
        pass


def make_adapter(x, y, sample_weight, batch_size, steps, shuffle, where, input_names,
                 output_names, class_weight=None):
    """An adapter over (x, y, sample_weight) for a model with these input and output names."""
    if isinstance(x, PyDataset) or (hasattr(x, "__getitem__") and hasattr(x, "__len__")
                                    and not isinstance(x, (np.ndarray, list, tuple, dict))
                                    and not _is_array_like(x) and not _is_tf_or_torch(x)):
        if y is not None:
            raise ValueError(f"{where}: y must not be given when x is a dataset")
        return _Structured(PyDatasetAdapter(x, steps), input_names, output_names, where,
                           class_weight)
    if hasattr(x, "__next__") or hasattr(x, "as_numpy_iterator") or (
            _is_tf_or_torch(x) and hasattr(x, "__iter__") and not hasattr(x, "shape")):
        if y is not None:
            raise ValueError(f"{where}: y must not be given when x is a generator or dataset")
        return _Structured(IteratorAdapter(x, steps, where), input_names, output_names, where,
                           class_weight)
    xs = align(x, input_names, "inputs", where)
    ys = align(y, output_names, "outputs", where)
    for a in xs + (ys or []):
        # strings only as inputs (the model checks that the input takes them)
        if a.dtype.kind not in "biuf" and not (a.dtype.kind in "USO" and any(
                a is b for b in xs)):
            raise TypeError(f"{where}: data must be real numeric arrays, got dtype {a.dtype}")
        if a.ndim == 0:
            raise ValueError(f"{where}: data must have a batch axis, got a scalar")
    sw = None
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float32).reshape(-1)
    if class_weight is not None:
        sw = class_weights_to_sample_weights(class_weight, ys, sw, where)
    return ArrayAdapter(xs, ys, sw, batch_size, shuffle, where, steps)


class _Structured:
    """Aligns what a dataset or generator yields with the model's inputs and outputs."""

    def __init__(self, inner, input_names, output_names, where, class_weight):
        self.inner, self.where = inner, where
        self.input_names, self.output_names = input_names, output_names
        self.class_weight = class_weight

    def __len__(self):
        return len(self.inner)

    @property
    def steps(self):
        return self.inner.steps

    def epoch(self):
        for x, y, sw in self.inner.epoch():
            xs = align(x, self.input_names, "inputs", self.where)
            ys = align(y, self.output_names, "outputs", self.where)
            if sw is not None:
                sw = np.asarray(_to_numpy(sw), np.float32).reshape(-1)
            if self.class_weight is not None:
                sw = class_weights_to_sample_weights(self.class_weight, ys, sw, self.where)
            yield xs, ys, sw

    def on_epoch_end(self):
        self.inner.on_epoch_end()


def class_weights_to_sample_weights(class_weight, ys, sw, where):
    """Keras's class_weight: each sample weighs class_weight[its class] (the integer label, or
    the argmax of a one-hot target); multiplied into sample_weight when both are given."""
    if ys is None or len(ys) != 1:
        raise ValueError(f"{where}: class_weight needs a model with exactly one output")
    if not isinstance(class_weight, dict):
        raise TypeError(f"{where}: class_weight must be a dict {{class: weight}}")
    y = ys[0]
    if y.ndim >= 2 and y.shape[-1] > 1:
        labels = np.argmax(y.reshape(len(y), -1), axis=-1)
    else:
        labels = y.reshape(len(y), -1)[:, 0]
        if labels.dtype.kind == "f":
            labels = np.round(labels)
        labels = labels.astype(np.int64)
    table = np.ones(int(max(max(class_weight), labels.max(initial=0))) + 1, np.float32)
    for k, v in class_weight.items():
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"{where}: class_weight keys must be class indices, got {k!r}")
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"{where}: class_weight[{k}] is not finite")
        table[k] = v
    w = table[labels]
    return w if sw is None else sw * w
