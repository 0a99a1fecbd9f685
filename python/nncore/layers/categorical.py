"""Categorical preprocessing (Keras 3 names and defaults): CategoryEncoding, Discretization,
IntegerLookup, StringLookup. They run in NumPy on integer / string arrays, have no weights to
train and pass no gradient to their input (their outputs are indices or counts, as in Keras).

Lookup index layout (Keras's): [mask_token if given] + [num_oov_indices OOV slots] +
vocabulary. `adapt` orders the vocabulary by count, descending, ties by token descending (what
Keras 3 produces), then keeps max_tokens entries in total. output_mode 'int' (indices),
'one_hot', 'multi_hot', 'count'; 'tf_idf' and num_oov_indices > 1 (hashed OOV slots) are not
supported yet.
"""

from __future__ import annotations

import numpy as np

from .base import Layer

_MODES = ("int", "one_hot", "multi_hot", "count")


def _encode(idx, depth, mode, where):
    """Integer indices (B,) or (B, k) -> Keras's one_hot / multi_hot / count encoding."""
    idx = np.asarray(idx)
    if idx.size and (idx.min() < 0 or idx.max() >= depth):
        raise ValueError(f"{where}: values must be in [0, {depth}), got "
                         f"[{idx.min()}, {idx.max()}]")
    if mode == "one_hot":
        if idx.ndim == 2 and idx.shape[1] == 1:
            idx = idx[:, 0]
        out = np.zeros(idx.shape + (depth,), np.float32)
        np.put_along_axis(out, idx[..., None], 1.0, axis=-1)
        return out
    flat = idx.reshape(idx.shape[0], -1) if idx.ndim > 1 else idx[:, None]
    out = np.zeros((flat.shape[0], depth), np.float32)
    rows = np.repeat(np.arange(flat.shape[0]), flat.shape[1])
    np.add.at(out, (rows, flat.ravel()), 1.0)
    return np.minimum(out, 1.0) if mode == "multi_hot" else out


class _NoGrad(Layer):
    def backward(self, ctx, dy, need_input_grad=True):
        return None  # indices and counts: no gradient reaches the input (as Keras)


class CategoryEncoding(_NoGrad):
    """Integer inputs in [0, num_tokens) -> one_hot / multi_hot (default) / count vectors."""

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, (int, np.integer)) or \
                num_tokens < 1:
            raise ValueError(f"{self.name}: num_tokens must be an int >= 1, got {num_tokens!r}")
        if output_mode not in ("one_hot", "multi_hot", "count"):
            raise ValueError(f"{self.name}: output_mode must be 'one_hot', 'multi_hot' or "
                             f"'count', got {output_mode!r}")
        if sparse:
            raise ValueError(f"{self.name}: sparse=True is not supported")
        self.num_tokens, self.output_mode = int(num_tokens), output_mode

    def compute_output_shape(self, s):
        if self.output_mode == "one_hot" and not (len(s) == 2 and s[1] == 1):
            return tuple(s) + (self.num_tokens,)
        return (s[0], self.num_tokens)

    def forward(self, x, training=False, need_ctx=False):
        x = np.asarray(x)
        if x.dtype.kind == "f":
            if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
                raise ValueError(f"{self.name}: inputs must be integers")
            x = x.astype(np.int64)
        return _encode(x, self.num_tokens, self.output_mode, self.name), None

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_tokens=self.num_tokens, output_mode=self.output_mode, sparse=False)
        return cfg


class Discretization(_NoGrad):
    """Bucket index of each value: i such that boundaries[i-1] <= x < boundaries[i] (int
    output), or its one_hot / multi_hot / count encoding over len(boundaries) + 1 bins.
    (adapt / num_bins: not supported yet; give bin_boundaries.)"""

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int",
                 sparse=False, **kwargs):
        super().__init__(**kwargs)
        if bin_boundaries is None:
            raise ValueError(f"{self.name}: give bin_boundaries (adapt / num_bins is not "
                             "supported yet)")
        b = np.asarray(bin_boundaries, np.float64)
        if b.ndim != 1 or not np.all(np.isfinite(b)) or np.any(np.diff(b) < 0):
            raise ValueError(f"{self.name}: bin_boundaries must be a sorted list of numbers")
        if output_mode not in _MODES or sparse:
            raise ValueError(f"{self.name}: output_mode must be one of {_MODES} (dense)")
        self.bin_boundaries = [float(v) for v in b]
        self.epsilon, self.output_mode = float(epsilon), output_mode
        self.num_bins = len(self.bin_boundaries) + 1

    def compute_output_shape(self, s):
        return tuple(s) if self.output_mode == "int" else _encoded_shape(s, self.num_bins,
                                                                          self.output_mode)

    def forward(self, x, training=False, need_ctx=False):
        x = np.asarray(x, np.float64)
        idx = np.digitize(x, np.asarray(self.bin_boundaries), right=False).astype(np.int64)
        if self.output_mode == "int":
            return idx, None
        return _encode(idx, self.num_bins, self.output_mode, self.name), None

    def get_config(self):
        cfg = super().get_config()
        cfg.update(bin_boundaries=list(self.bin_boundaries), num_bins=None,
                   epsilon=self.epsilon, output_mode=self.output_mode, sparse=False)
        return cfg


def _encoded_shape(s, depth, mode):
    if mode == "one_hot" and not (len(s) == 2 and s[1] == 1):
        return tuple(s) + (depth,)
    return (s[0], depth)


class _Lookup(_NoGrad):
    _default_oov = None
    _kind = ""

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=None,
                 vocabulary=None, invert=False, output_mode="int", sparse=False,
                 pad_to_max_tokens=False, **kwargs):
        vocabulary_dtype = kwargs.pop("vocabulary_dtype", None)
        super().__init__(**kwargs)
        w = self.name
        if num_oov_indices not in (0, 1):
            raise ValueError(f"{w}: num_oov_indices must be 0 or 1 (hashed OOV slots are not "
                             "supported yet)")
        if output_mode not in _MODES or sparse or pad_to_max_tokens:
            raise ValueError(f"{w}: output_mode must be one of {_MODES} (dense, not padded)")
        if invert and output_mode != "int":
            raise ValueError(f"{w}: invert=True needs output_mode='int'")
        if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens < 1):
            raise ValueError(f"{w}: max_tokens must be None or >= 1")
        self.max_tokens, self.num_oov_indices = max_tokens, int(num_oov_indices)
        self.mask_token = mask_token if output_mode == "int" else None  # as Keras's vocabulary
        self.oov_token = self._default_oov if oov_token is None else oov_token
        self.invert, self.output_mode = bool(invert), output_mode
        self.vocabulary_dtype = vocabulary_dtype
        self._vocab = []
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    def _cast(self, v):
        return v

    def _specials(self):
        out = [self.mask_token] if self.mask_token is not None else []
        return out + [self.oov_token] * self.num_oov_indices

    def set_vocabulary(self, vocabulary):
        vocab = [self._cast(v) for v in np.asarray(vocabulary).ravel().tolist()]
        if len(set(vocab)) != len(vocab):
            raise ValueError(f"{self.name}: the vocabulary has repeated entries")
        if any(v in (self.mask_token, self.oov_token) for v in vocab):
            raise ValueError(f"{self.name}: the vocabulary must not hold the mask or OOV token")
        self._vocab = vocab

    def adapt(self, data):
        vals, counts = np.unique(np.asarray(data).ravel(), return_counts=True)
        keep = [(int(c), self._cast(v)) for v, c in zip(vals.tolist(), counts)
                if self._cast(v) not in (self.mask_token, self.oov_token)]
        keep.sort(reverse=True)  # count descending, ties by token descending (as Keras 3)
        vocab = [v for _, v in keep]
        if self.max_tokens is not None:
            vocab = vocab[:max(0, self.max_tokens - len(self._specials()))]
        self._vocab = vocab

    def get_vocabulary(self, include_special_tokens=True):
        return (self._specials() if include_special_tokens else []) + list(self._vocab)

    def vocabulary_size(self):
        return len(self.get_vocabulary())

    def compute_output_shape(self, s):
        if self.output_mode == "int":
            return tuple(s)
        return _encoded_shape(s, self.vocabulary_size(), self.output_mode)

    def forward(self, x, training=False, need_ctx=False):
        x = np.asarray(x)
        if self.invert:
            vocab = np.asarray(self.get_vocabulary(), dtype=object)
            idx = x.astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= len(vocab)):
                raise ValueError(f"{self.name}: indices must be in [0, {len(vocab)})")
            return self._out_array(vocab[idx]), None
        table = {v: i + len(self._specials()) for i, v in enumerate(self._vocab)}
        n_mask = 1 if self.mask_token is not None else 0
        oov = n_mask if self.num_oov_indices else -1
        flat = [self._cast(v) for v in x.ravel().tolist()]
        idx = np.empty(len(flat), np.int64)
        for i, v in enumerate(flat):
            if self.mask_token is not None and v == self.mask_token:
                idx[i] = 0
            else:
                j = table.get(v, oov)
                if j < 0:
                    raise ValueError(f"{self.name}: {v!r} is not in the vocabulary and "
                                     "num_oov_indices=0")
                idx[i] = j
        idx = idx.reshape(x.shape)
        if self.output_mode == "int":
            return idx, None
        return _encode(idx, self.vocabulary_size(), self.output_mode, self.name), None

    def _out_array(self, a):
        return a

    def get_config(self):
        cfg = super().get_config()
        cfg.update(max_tokens=self.max_tokens, num_oov_indices=self.num_oov_indices,
                   mask_token=self.mask_token, oov_token=self.oov_token,
                   vocabulary=list(self._vocab) or None, invert=self.invert,
                   output_mode=self.output_mode, sparse=False, pad_to_max_tokens=False)
        if self.vocabulary_dtype is not None:
            cfg["vocabulary_dtype"] = self.vocabulary_dtype
        return cfg


class IntegerLookup(_Lookup):
    """Integers -> indices into a vocabulary (oov_token -1, default mask_token None)."""

    _default_oov = -1

    def _cast(self, v):
        if isinstance(v, (float, np.floating)) and float(v) != int(v):
            raise ValueError(f"{self.name}: {v!r} is not an integer")
        return None if v is None else int(v)

    def _out_array(self, a):
        return a.astype(np.int64)


class StringLookup(_Lookup):
    """Strings -> indices into a vocabulary (oov_token '[UNK]', default mask_token None)."""

    _default_oov = "[UNK]"

    def _cast(self, v):
        if isinstance(v, bytes):
            return v.decode("utf-8")
        return None if v is None else str(v)

    def _out_array(self, a):
        return a.astype(str)
