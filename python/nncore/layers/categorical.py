"""Categorical preprocessing (Keras 3 names and defaults): CategoryEncoding, Discretization,
IntegerLookup, StringLookup. They run in NumPy on integer / string arrays, have no weights to
train and pass no gradient to their input (their outputs are indices or counts, as in Keras).

Lookup index layout (Keras's): [mask_token if given] + [num_oov_indices OOV slots] +
vocabulary. `adapt` orders the vocabulary by count, descending, ties by token descending (what
Keras 3 produces), then keeps max_tokens entries in total. output_mode 'int' (indices),
'one_hot', 'multi_hot', 'count', 'tf_idf' (counts times the inverse document frequencies
adapt computes, or idf_weights given with a vocabulary). With num_oov_indices > 1 an unknown
token's slot is Keras's: floormod(token, n) for integers (oov_method 'floormod'), else
FarmHash fingerprint64 of its text mod n (SipHash-2-4 keyed by `salt`), see _hash.py.
"""

from __future__ import annotations

import numpy as np

from . import _hash
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


# Output dtypes, Keras 3.15's (TensorFlow backend) rules:
# - StringLookup / IntegerLookup / TextVectorization: int64 for int, one_hot, multi_hot and count,
#   float32 for tf_idf, whatever `dtype=` says (Keras accepts it and ignores it there); an
#   inverted StringLookup gives an object array of UTF-8 bytes (what NumPy makes of a
#   tf.string tensor), an inverted IntegerLookup int64;
# - CategoryEncoding, and Hashing / Discretization in one_hot / multi_hot / count: `dtype=`
#   (float32 when not given);
# - Hashing's int mode: `dtype=` if an integer type, else int64; Discretization's int mode: int32.
_OUT_DTYPES = ("float32", "float64", "int32", "int64")


def _dtype_name(dtype, where, any_dtype=False):
    """The numpy name of a Keras `dtype=` argument (a string, a numpy dtype or a DTypePolicy
    entry of a Keras file), or None."""
    if dtype is None:
        return None
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name")
    try:
        name = np.dtype(dtype).name
    except TypeError:
        raise ValueError(f"{where}: dtype {dtype!r} is not a dtype") from None
    if not any_dtype and name not in _OUT_DTYPES:
        raise ValueError(f"{where}: dtype must be one of {_OUT_DTYPES}, got {dtype!r}")
    return name


class _NoGrad(Layer):
    _any_dtype = False  # the lookups take any dtype= and ignore it (as Keras)

    def __init__(self, dtype=None, **kwargs):
        super().__init__(**kwargs)
        self._dtype_arg = _dtype_name(dtype, f"layer {self.name!r} ({type(self).__name__})",
                                      self._any_dtype)

    def _out_dtype(self):
        """The dtype of this layer's output (see _OUT_DTYPES' comment)."""
        return self._dtype_arg or "float32"

    @property
    def output_dtype(self):
        return self._out_dtype()

    def _as_out(self, y):
        return np.asarray(y).astype(self._out_dtype(), copy=False)

    def get_config(self):
        cfg = super().get_config()
        if self._dtype_arg is not None:
            cfg["dtype"] = self._dtype_arg
        return cfg

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
        return self._as_out(_encode(x, self.num_tokens, self.output_mode, self.name)), None

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_tokens=self.num_tokens, output_mode=self.output_mode, sparse=False)
        return cfg


class Discretization(_NoGrad):
    """Bucket index of each value: i such that boundaries[i-1] <= x < boundaries[i] (int
    output), or its one_hot / multi_hot / count encoding over len(boundaries) + 1 bins.

    `adapt(data)` (with num_bins, not bin_boundaries) computes the boundaries from quantiles by
    Keras 3's own approximate scheme, so the boundaries are Keras's, bit for bit: each batch is
    sorted (float32) and summarised by every step-th value (step = max(n * epsilon, 1)) with
    weight step; summaries are merged by value and compressed to 1 / epsilon points by linear
    interpolation of their cumulative weights; the boundaries are the summary compressed to
    num_bins points, the last dropped (fewer points than num_bins: the summary's own values).
    Keras's is itself approximate (epsilon bounds the rank error of a summary point: within
    about epsilon * n of its target);
    nncore repeats its arithmetic rather than computing exact quantiles."""

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int",
                 sparse=False, **kwargs):
        super().__init__(**kwargs)
        if num_bins is not None and bin_boundaries is not None:
            raise ValueError(f"{self.name}: give bin_boundaries or num_bins, not both")
        if num_bins is None and bin_boundaries is None:
            raise ValueError(f"{self.name}: give bin_boundaries or num_bins (then adapt)")
        if num_bins is not None and (isinstance(num_bins, bool) or
                                     not isinstance(num_bins, (int, np.integer)) or num_bins < 0):
            raise ValueError(f"{self.name}: num_bins must be an int >= 0, got {num_bins!r}")
        if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or \
                not 0 < epsilon <= 1:
            raise ValueError(f"{self.name}: epsilon must be in (0, 1], got {epsilon!r}")
        if output_mode not in _MODES or sparse:
            raise ValueError(f"{self.name}: output_mode must be one of {_MODES} (dense)")
        self.epsilon, self.output_mode = float(epsilon), output_mode
        self.num_bins = None if num_bins is None else int(num_bins)
        self.bin_boundaries = None
        if bin_boundaries is not None:
            self._set_boundaries(bin_boundaries)
        self._summary = np.zeros((2, 0), np.float32)

    def _set_boundaries(self, b):
        b = np.asarray(b, np.float64)
        if b.ndim != 1 or not np.all(np.isfinite(b)) or np.any(np.diff(b) < 0):
            raise ValueError(f"{self.name}: bin_boundaries must be a sorted list of numbers")
        self.bin_boundaries = [float(v) for v in b]

    def _depth(self):
        if self.bin_boundaries is not None:
            return len(self.bin_boundaries) + 1
        return self.num_bins

    # ---- adapt (Keras 3's summaries; see the class docstring) --------------------------------
    def adapt(self, data, steps=None):
        """Boundaries from the quantiles of `data`: an array (one batch), or an iterable of
        batches (a list, a generator, a tf.data.Dataset), `steps` batches at most."""
        if self.num_bins is None:
            raise ValueError(f"{self.name}: cannot adapt a Discretization made with "
                             "bin_boundaries; give num_bins instead")
        self._summary = np.zeros((2, 0), np.float32)
        if isinstance(data, np.ndarray) or not hasattr(data, "__iter__") or \
                hasattr(data, "__array__") and not hasattr(data, "as_numpy_iterator"):
            self.update_state(data)
        else:
            for i, batch in enumerate(data):
                if steps is not None and i >= steps:
                    break
                self.update_state(batch)
        self.finalize_state()

    def update_state(self, data):
        v = np.sort(np.asarray(data, dtype=np.float32).reshape(-1))
        if v.size and not np.all(np.isfinite(v)):
            raise ValueError(f"{self.name}: adapt data must be finite (got NaN or inf)")
        step = max(v.size / (1.0 / self.epsilon), 1)  # Keras's expression, for its bits
        points = v[int(step - 1)::int(step)]
        batch = np.stack([points, np.full(points.shape, step, np.float32)])
        merged = np.concatenate([batch, self._summary], axis=1)
        merged = merged[:, np.argsort(merged[0])]
        self._summary = _compress(merged, self.epsilon)

    def finalize_state(self):
        if self.num_bins is not None:
            if self._summary.shape[1] == 0:
                raise ValueError(f"{self.name}: adapt got no data")
            self._set_boundaries(_compress(self._summary, 1.0 / self.num_bins)[0, :-1])

    def compute_output_shape(self, s):
        depth = self._depth()
        return tuple(s) if self.output_mode == "int" else _encoded_shape(s, depth,
                                                                          self.output_mode)

    def forward(self, x, training=False, need_ctx=False):
        if self.bin_boundaries is None:
            raise ValueError(f"{self.name}: call adapt(data) first (or give bin_boundaries)")
        # float32 values against float32 boundaries, as Keras (float32 inputs, TF Bucketize)
        x = np.asarray(x, np.float32)
        idx = np.digitize(x, np.asarray(self.bin_boundaries, np.float32),
                          right=False).astype(np.int64)
        if self.output_mode == "int":
            return idx.astype(np.int32), None
        return self._as_out(_encode(idx, len(self.bin_boundaries) + 1, self.output_mode,
                                    self.name)), None

    def _out_dtype(self):
        return "int32" if self.output_mode == "int" else super()._out_dtype()

    def get_config(self):
        cfg = super().get_config()
        cfg.update(bin_boundaries=None if self.bin_boundaries is None else
                   list(self.bin_boundaries), num_bins=self.num_bins,
                   epsilon=self.epsilon, output_mode=self.output_mode, sparse=False)
        return cfg

    @classmethod
    def from_config(cls, config):
        # An adapted layer's config holds both (as Keras's): boundaries set after creation.
        config = dict(config)
        if config.get("bin_boundaries") is not None and config.get("num_bins") is not None:
            b = config.pop("bin_boundaries")
            lay = cls(**config)
            lay._set_boundaries(b)
            return lay
        return cls(**config)


def _compress(summary, epsilon):
    """Keras's compress_summary: (values, weights) to the points at cumulative-weight fractions
    epsilon, 2 epsilon, ..., by linear interpolation; unchanged when already that small."""
    if summary.shape[1] * epsilon < 1:
        return summary
    percents = epsilon + np.arange(0.0, 1.0, epsilon)
    cum = summary[1].cumsum()
    frac = cum / cum[-1]
    values = np.interp(percents, frac, summary[0])
    cum = np.interp(percents, frac, cum)
    weights = cum - np.concatenate([[0.0], cum[:-1]])
    return np.stack([values, weights]).astype(np.float32)


def _encoded_shape(s, depth, mode):
    if mode == "one_hot" and not (len(s) == 2 and s[1] == 1):
        return tuple(s) + (depth,)
    return (s[0], depth)


class _Lookup(_NoGrad):
    _default_oov = None
    _kind = ""
    _integer = False

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=None,
                 vocabulary=None, invert=False, output_mode="int", sparse=False,
                 pad_to_max_tokens=False, idf_weights=None, oov_method="floormod", salt=None,
                 **kwargs):
        vocabulary_dtype = kwargs.pop("vocabulary_dtype", None)
        kwargs.pop("vocabulary_size", None)  # Keras records it; nncore recomputes it
        encoding = kwargs.pop("encoding", "utf-8")
        super().__init__(**kwargs)
        w = self.name
        if output_mode == "tf-idf":
            output_mode = "tf_idf"
        if isinstance(num_oov_indices, bool) or not isinstance(num_oov_indices, (int, np.integer)) \
                or num_oov_indices < 0:
            raise ValueError(f"{w}: num_oov_indices must be an int >= 0, got {num_oov_indices!r}")
        if output_mode not in _MODES + ("tf_idf",) or sparse:
            raise ValueError(f"{w}: output_mode must be one of {_MODES + ('tf_idf',)} (dense)")
        if encoding != "utf-8":
            raise ValueError(f"{w}: only encoding='utf-8' is supported")
        if invert and output_mode != "int":
            raise ValueError(f"{w}: invert=True needs output_mode='int'")
        if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens < 1):
            raise ValueError(f"{w}: max_tokens must be None or >= 1")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(f"{w}: pad_to_max_tokens=True needs max_tokens")
        if oov_method not in ("floormod", "farmhash"):
            raise ValueError(f"{w}: oov_method must be 'floormod' or 'farmhash', got "
                             f"{oov_method!r}")
        if salt is not None:
            if self._integer and oov_method != "farmhash":
                raise ValueError(f"{w}: salt can only be used with oov_method='farmhash'")
            salt = _salt(salt, w)
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError(f"{w}: idf_weights are only for output_mode='tf_idf'")
        self.max_tokens, self.num_oov_indices = max_tokens, int(num_oov_indices)
        self.mask_token = mask_token if output_mode == "int" else None  # as Keras's vocabulary
        self.oov_token = self._default_oov if oov_token is None else oov_token
        self.invert, self.output_mode = bool(invert), output_mode
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self.oov_method, self.salt = oov_method, salt
        self.vocabulary_dtype = vocabulary_dtype
        self._vocab = []
        self.idf_weights = None  # float32, one per index (tf_idf)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        elif idf_weights is not None:
            raise ValueError(f"{w}: idf_weights need a vocabulary")

    def _cast(self, v):
        return v

    def _specials(self):
        out = [self.mask_token] if self.mask_token is not None else []
        return out + [self.oov_token] * self.num_oov_indices

    def set_vocabulary(self, vocabulary, idf_weights=None):
        vocab = [self._cast(v) for v in np.asarray(vocabulary).ravel().tolist()]
        if len(set(vocab)) != len(vocab):
            raise ValueError(f"{self.name}: the vocabulary has repeated entries")
        if any(v in (self.mask_token, self.oov_token) for v in vocab):
            raise ValueError(f"{self.name}: the vocabulary must not hold the mask or OOV token")
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError(f"{self.name}: output_mode='tf_idf' needs idf_weights with "
                                 "a vocabulary")
            idf = np.asarray(idf_weights, np.float64)
            if idf.shape != (len(vocab),):
                raise ValueError(f"{self.name}: idf_weights of shape {idf.shape} for "
                                 f"{len(vocab)} vocabulary entries")
            self._vocab = vocab
            # The special indices get the mean weight (Keras has no document counts for them).
            self._set_idf(idf.astype(np.float32), float(np.average(idf)))
            self._input_idf = [float(v) for v in idf]
        elif idf_weights is not None:
            raise ValueError(f"{self.name}: idf_weights are only for output_mode='tf_idf'")
        self._vocab = vocab

    def _set_idf(self, idf, front):
        w = np.concatenate([np.full(len(self._specials()), front, np.float32), idf])
        if self.pad_to_max_tokens:
            w = np.concatenate([w, np.zeros(max(0, self.max_tokens - len(w)), np.float32)])
        self.idf_weights = w.astype(np.float32)

    def adapt(self, data, steps=None):
        """The vocabulary (and, for tf_idf, the inverse document frequencies) of `data`: an
        array (rows are documents) or an iterable of batches."""
        batches = [data] if isinstance(data, np.ndarray) or not hasattr(data, "__iter__") or (
            hasattr(data, "__array__") and not hasattr(data, "as_numpy_iterator")) else data

        def rows():
            for i, batch in enumerate(batches):
                if steps is not None and i >= steps:
                    break
                b = np.asarray(batch)
                b = b.reshape(1, -1) if b.ndim <= 1 else b.reshape(b.shape[0], -1)
                yield from ([self._cast(v) for v in row] for row in b.tolist())

        self._adapt_rows(rows())

    def _adapt_rows(self, rows):
        """The vocabulary from documents given as lists of tokens (TextVectorization's too)."""
        counts, docs, n_docs = {}, {}, 0
        for row in rows:
            for v in row:
                counts[v] = counts.get(v, 0) + 1
            for v in set(row):
                docs[v] = docs.get(v, 0) + 1
            n_docs += 1
        keep = [(c, v) for v, c in counts.items() if v not in (self.mask_token, self.oov_token)]
        keep.sort(reverse=True)  # count descending, ties by token descending (as Keras 3)
        vocab = [v for _, v in keep]
        if self.max_tokens is not None:
            vocab = vocab[:max(0, self.max_tokens - len(self._specials()))]
        self._vocab = vocab
        if self.output_mode == "tf_idf":
            # Keras: idf = log(1 + documents / (1 + documents holding the token)), float32;
            # the special indices get their mean.
            idf = np.log(1.0 + n_docs / (1.0 + np.array([docs[v] for v in vocab], np.float64)))
            idf = idf.astype(np.float32)
            self._set_idf(idf, np.float32(idf.mean(dtype=np.float32)) if idf.size else 0.0)
            self._input_idf = None

    def get_vocabulary(self, include_special_tokens=True):
        return (self._specials() if include_special_tokens else []) + list(self._vocab)

    def vocabulary_size(self):
        return len(self.get_vocabulary())

    def _depth(self):
        return self.max_tokens if self.pad_to_max_tokens else self.vocabulary_size()

    def compute_output_shape(self, s):
        if self.output_mode == "int":
            return tuple(s)
        mode = "count" if self.output_mode == "tf_idf" else self.output_mode
        return _encoded_shape(s, self._depth(), mode)

    def _oov_index(self, v, start):
        # Keras: several OOV slots are chosen by floormod (integers) or a string hash.
        n = self.num_oov_indices
        if n == 1:
            return start
        if self._integer and self.oov_method == "floormod":
            return start + v % n
        return start + _hash.buckets([v], n, self.salt)[0]

    def forward(self, x, training=False, need_ctx=False):
        x = np.asarray(x)
        if self.invert:
            # Keras: an index outside the vocabulary (negative ones too) reads the oov_token,
            # with or without OOV slots; the table gets it as one extra entry at the end.
            table = self.get_vocabulary()
            n = len(table)
            table = np.asarray(table + [self.oov_token], dtype=object)
            idx = x.astype(np.int64)
            idx = np.where((idx < 0) | (idx >= n), n, idx)
            return self._out_array(table[idx]), None
        if self.output_mode == "tf_idf" and self.idf_weights is None:
            raise ValueError(f"{self.name}: output_mode='tf_idf' needs adapt() or a vocabulary "
                             "with idf_weights first")
        idx = self._indices([self._cast(v) for v in x.ravel().tolist()]).reshape(x.shape)
        if self.output_mode == "int":
            return idx, None
        if self.output_mode == "tf_idf":
            counts = _encode(idx, self._depth(), "count", self.name)
            return (counts * self.idf_weights[:counts.shape[-1]]).astype(np.float32), None
        return _encode(idx, self._depth(), self.output_mode, self.name).astype(np.int64), None

    _any_dtype = True

    def _out_dtype(self):
        if self.invert:
            return "int64" if self._integer else "string"
        return "float32" if self.output_mode == "tf_idf" else "int64"

    def _indices(self, flat):
        """Indices (int64) of a list of (cast) tokens."""
        cache = getattr(self, "_table_cache", None)  # rebuilt when the vocabulary is replaced
        if cache is None or cache[0] is not self._vocab or cache[1] != len(self._specials()):
            n = len(self._specials())
            cache = (self._vocab, n, {v: i + n for i, v in enumerate(self._vocab)})
            self._table_cache = cache
        table = cache[2]
        start = 1 if self.mask_token is not None else 0
        idx = np.empty(len(flat), np.int64)
        for i, v in enumerate(flat):
            if self.mask_token is not None and v == self.mask_token:
                idx[i] = 0
                continue
            j = table.get(v)
            if j is None:
                if not self.num_oov_indices:
                    raise ValueError(f"{self.name}: {v!r} is not in the vocabulary and "
                                     "num_oov_indices=0")
                j = self._oov_index(v, start)
            idx[i] = j
        return idx

    def _out_array(self, a):
        return a

    def get_config(self):
        cfg = super().get_config()
        idf = getattr(self, "_input_idf", None)
        if self.output_mode == "tf_idf" and idf is None and self.idf_weights is not None:
            idf = [float(v) for v in self.idf_weights[len(self._specials()):
                                                      len(self.get_vocabulary())]]
        cfg.update(max_tokens=self.max_tokens, num_oov_indices=self.num_oov_indices,
                   mask_token=self.mask_token, oov_token=self.oov_token,
                   vocabulary=list(self._vocab) or None, invert=self.invert,
                   output_mode=self.output_mode, sparse=False,
                   pad_to_max_tokens=self.pad_to_max_tokens, oov_method=self.oov_method,
                   salt=None if self.salt is None else list(self.salt),
                   idf_weights=idf if self._vocab else None)
        if self.vocabulary_dtype is not None:
            cfg["vocabulary_dtype"] = self.vocabulary_dtype
        return cfg


def _salt(salt, who):
    if isinstance(salt, (list, tuple)) and len(salt) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in salt):
        return [int(salt[0]), int(salt[1])]
    if isinstance(salt, (int, np.integer)) and not isinstance(salt, bool):
        return [int(salt), int(salt)]
    raise ValueError(f"{who}: salt must be an int or a pair of ints, got {salt!r}")


class IntegerLookup(_Lookup):
    """Integers -> indices into a vocabulary (oov_token -1, default mask_token None)."""

    _default_oov = -1
    _integer = True

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
        # Keras 3.15 (TensorFlow) gives a tf.string tensor, which NumPy sees as an object array
        # of UTF-8 bytes (np.asarray of a direct call, and what predict returns): the same here
        out = np.empty(a.shape, object)
        out.ravel()[:] = [v.encode("utf-8") for v in a.ravel().tolist()]
        return out


class Hashing(_NoGrad):
    """Each value -> a bin in [0, num_bins): FarmHash fingerprint64 of its text mod num_bins
    (SipHash-2-4 keyed by `salt` when given), as Keras's Hashing (through TensorFlow). Integers
    are hashed as their decimal text, floats truncated to integers first, booleans as
    'true' / 'false', strings as UTF-8.
    With mask_value (and num_bins > 1), that value goes to bin 0 and the others to
    1 + hash mod (num_bins - 1). output_mode 'int' (int64 bins, or dtype= int32), 'one_hot',
    'multi_hot', 'count' (float32, or dtype=). The hashes run in C++ over the batch
    (_hash.py: csrc/kernels/hash.cpp, with the Python reference twin)."""

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode="int", sparse=False,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or \
                num_bins < 1:
            raise ValueError(f"{self.name}: num_bins must be an int >= 1, got {num_bins!r}")
        if output_mode not in _MODES or sparse:
            raise ValueError(f"{self.name}: output_mode must be one of {_MODES} (dense)")
        if isinstance(mask_value, np.generic):
            mask_value = mask_value.item()
        self.num_bins, self.mask_value, self.output_mode = int(num_bins), mask_value, output_mode
        self.salt = None if salt is None else _salt(salt, self.name)
        if output_mode == "int" and self._dtype_arg not in (None, "int32", "int64"):
            raise ValueError(f"{self.name}: with output_mode='int' dtype must be an integer "
                             f"type, 'int32' or 'int64', got {self._dtype_arg!r}")

    def compute_output_shape(self, s):
        if self.output_mode == "int":
            return tuple(s)
        return _encoded_shape(s, self.num_bins, self.output_mode)

    def _bins(self, x):
        if x.dtype.kind == "f":
            if not np.all(np.isfinite(x)):
                raise ValueError(f"{self.name}: inputs must be finite, got NaN or inf")
            vals = np.trunc(x).astype(np.int64).ravel().tolist()  # tf.cast to int64
        elif x.dtype.kind == "b":
            vals = ["true" if v else "false" for v in x.ravel().tolist()]  # tf.as_string
        elif x.dtype.kind in "iu":
            vals = x.astype(np.int64).ravel().tolist()
        elif x.dtype.kind in "US":
            vals = x.ravel().tolist()
        elif x.dtype.kind == "O":
            vals = x.ravel().tolist()
            if not set(map(type, vals)) <= {str, bytes} and \
                    any(not isinstance(v, (str, bytes)) for v in vals):
                raise ValueError(f"{self.name}: inputs must be strings or numbers")
        else:
            raise ValueError(f"{self.name}: inputs must be strings or numbers, got dtype "
                             f"{x.dtype}")
        n = self.num_bins
        masked = self.mask_value is not None and n > 1
        out = _hash.buckets(vals, n - 1 if masked else n, self.salt)
        if masked:
            m = np.asarray([v == self.mask_value for v in x.ravel().tolist()], bool)
            out = np.where(m, 0, out + 1)
        return out.reshape(x.shape)

    def forward(self, x, training=False, need_ctx=False):
        x = np.asarray(x)
        if self.output_mode == "one_hot" and x.ndim and x.shape[-1] == 1:
            x = x[..., 0]
        idx = self._bins(x)
        if self.output_mode == "int":
            return self._as_out(idx), None
        return self._as_out(_encode(idx, self.num_bins, self.output_mode, self.name)), None

    def _out_dtype(self):
        if self.output_mode == "int":
            return self._dtype_arg or "int64"
        return super()._out_dtype()

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_bins=self.num_bins, mask_value=self.mask_value,
                   salt=None if self.salt is None else list(self.salt),
                   output_mode=self.output_mode, sparse=False)
        return cfg
