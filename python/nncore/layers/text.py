"""TextVectorization (Keras 3 names, defaults and TensorFlow's string semantics), in Python.

Per string: standardize ('lower_and_strip_punctuation' (default), 'lower', 'strip_punctuation',
None, or a callable on the batch, as Keras), split ('whitespace' (default), 'character', None,
or a callable; a model file names a callable by its registered name only), ngrams (n -> widths 1..n, or a tuple
of widths: per row the ngrams of each width in turn, joined by a space), then a StringLookup
with mask_token '' and one OOV index. As TensorFlow does: 'lower' changes ASCII letters only
(tf.strings.lower), punctuation is Python's string.punctuation (Keras's regex), whitespace is
ASCII whitespace (tf.strings.split), characters are Unicode code points.

output_mode 'int': token indices (0 the padding, 1 OOV), padded with 0 to the longest row, or
cut / padded to output_sequence_length; 'multi_hot', 'count', 'tf_idf' (counts times the
inverse document frequencies of adapt, or idf_weights): one row of vocabulary_size
(max_tokens with pad_to_max_tokens) per string. Output dtypes are Keras's: int64 for int,
multi_hot and count, float32 for tf_idf (a `dtype=` argument is accepted and, as in Keras,
changes nothing). adapt orders the vocabulary by count,
ties by token descending (Keras's), max_tokens counting the special tokens. Strings in, no gradient.
"""

from __future__ import annotations

import re
import string

import numpy as np

from .base import fmt_shape
from .categorical import StringLookup, _NoGrad

_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation", None)
_SPLIT = ("whitespace", "character", None)
_MODES = ("int", "multi_hot", "count", "tf_idf")
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_PUNCT = str.maketrans("", "", string.punctuation)
_SPACE = re.compile(r"[ \t\n\r\v\f]+")


class TextVectorization(_NoGrad):
    """Strings (batch,) or (batch, 1) -> token indices or per-string vectors; see the module
    docstring for the exact rules."""

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation",
                 split="whitespace", ngrams=None, output_mode="int", output_sequence_length=None,
                 pad_to_max_tokens=False, vocabulary=None, idf_weights=None, sparse=False,
                 ragged=False, encoding="utf-8", **kwargs):
        kwargs.pop("vocabulary_size", None)  # Keras records them; nncore recomputes
        kwargs.pop("has_input_vocabulary", None)
        custom_objects = kwargs.pop("custom_objects", None)
        super().__init__(**kwargs)
        w = self.name
        if output_mode == "tf-idf":
            output_mode = "tf_idf"
        standardize = _function_arg(standardize, "standardize", custom_objects, w)
        split = _function_arg(split, "split", custom_objects, w)
        if not callable(standardize) and standardize not in _STANDARDIZE:
            raise ValueError(f"{w}: standardize must be one of {_STANDARDIZE} or a callable, "
                             f"got {standardize!r}")
        if not callable(split) and split not in _SPLIT:
            raise ValueError(f"{w}: split must be one of {_SPLIT} or a callable, got "
                             f"{split!r}")
        if output_mode not in _MODES or sparse or ragged:
            raise ValueError(f"{w}: output_mode must be one of {_MODES} (dense, not ragged)")
        if encoding != "utf-8":
            raise ValueError(f"{w}: only encoding='utf-8' is supported")
        if ngrams is not None and not (
                isinstance(ngrams, int) and not isinstance(ngrams, bool) and ngrams >= 1 or
                isinstance(ngrams, (list, tuple)) and ngrams and all(
                    isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in ngrams)):
            raise ValueError(f"{w}: ngrams must be None, an int >= 1 or a tuple of them, got "
                             f"{ngrams!r}")
        if output_sequence_length is not None:
            if output_mode != "int":
                raise ValueError(f"{w}: output_sequence_length is only for output_mode='int'")
            if isinstance(output_sequence_length, bool) or not isinstance(
                    output_sequence_length, int) or output_sequence_length < 1:
                raise ValueError(f"{w}: output_sequence_length must be an int >= 1 or None")
        self.standardize, self.split, self.output_mode = standardize, split, output_mode
        self.ngrams = list(ngrams) if isinstance(ngrams, (list, tuple)) else ngrams
        self._widths = (tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else
                        None if ngrams is None else tuple(ngrams))
        self.output_sequence_length = output_sequence_length
        self._lookup = StringLookup(max_tokens=max_tokens, vocabulary=vocabulary,
                                    idf_weights=idf_weights, pad_to_max_tokens=pad_to_max_tokens,
                                    mask_token="", output_mode=output_mode,
                                    name=f"{self.name}_lookup")

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, (list, tuple)) and all(isinstance(v, (str, bytes)) for v in inputs):
            inputs = np.asarray(inputs, dtype=object)  # a list of strings is one input (Keras)
        return super().__call__(inputs, *args, **kwargs)

    _any_dtype = True
    _from_config_custom_objects = True  # a registered standardize / split function

    def _out_dtype(self):
        return "float32" if self.output_mode == "tf_idf" else "int64"

    # ---- strings -> tokens ----------------------------------------------------------------
    def _strings(self, x):
        x = np.asarray(x, dtype=object) if isinstance(x, (list, tuple)) else np.asarray(x)
        if x.dtype.kind not in "USO":
            raise ValueError(f"layer {self.name!r} (TextVectorization) needs strings, got dtype "
                             f"{x.dtype}")
        if self.split is not None:
            if x.ndim == 2 and x.shape[1] == 1:
                x = x[:, 0]
            if x.ndim != 1:
                raise ValueError(f"layer {self.name!r} (TextVectorization) needs strings of "
                                 f"shape (batch,) or (batch, 1), got {fmt_shape(x.shape)}")
        out = []
        for v in x.ravel().tolist():
            if isinstance(v, bytes):
                v = v.decode("utf-8")
            elif not isinstance(v, str):
                raise ValueError(f"layer {self.name!r} (TextVectorization) needs strings, got "
                                 f"{type(v).__name__}")
            out.append(v)
        return out, x.shape

    def _tokens(self, s):
        if self.standardize in ("lower", "lower_and_strip_punctuation"):
            s = s.translate(_LOWER)
        if self.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            s = s.translate(_PUNCT)
        if self.split == "whitespace":
            toks = [t for t in _SPACE.split(s) if t]
        elif self.split == "character":
            toks = list(s)
        else:
            toks = [s]
        return self._ngrams(toks)

    def _ngrams(self, toks):
        if self._widths is not None:
            toks = [" ".join(toks[i:i + n]) for n in self._widths
                    for i in range(len(toks) - n + 1)]
        return toks

    def _rows(self, strings, shape):
        """Token lists of a batch of strings. A callable standardize / split is Keras's: it
        gets the whole batch as a NumPy array of Python str (standardize: shaped (batch,)
        when splitting, else as the input; split: the (batch,) strings) and may return what
        NumPy reads as strings (an array, a list, a tf.Tensor) / one token list per string
        (a list of lists, a tf.RaggedTensor)."""
        std, spl = self.standardize, self.split
        if not callable(std) and not callable(spl):
            return [self._tokens(s) for s in strings]
        if callable(std):
            arr = np.empty(len(strings), object)
            arr[:] = strings
            strings = _text_list(std(arr.reshape(shape)), len(strings), self.name, "standardize")
        else:
            strings = [self._tokens_std(s) for s in strings]
        if callable(spl):
            arr = np.empty(len(strings), object)
            arr[:] = strings
            rows = _token_lists(spl(arr), len(strings), self.name)
        else:
            rows = [self._split_one(s) for s in strings]
        return [self._ngrams(r) for r in rows]

    def _tokens_std(self, s):
        if self.standardize in ("lower", "lower_and_strip_punctuation"):
            s = s.translate(_LOWER)
        if self.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            s = s.translate(_PUNCT)
        return s

    def _split_one(self, s):
        if self.split == "whitespace":
            return [t for t in _SPACE.split(s) if t]
        if self.split == "character":
            return list(s)
        return [s]

    # ---- vocabulary -------------------------------------------------------------------------
    def adapt(self, data, batch_size=None, steps=None):
        """The vocabulary (and document frequencies for tf_idf) of the strings in `data`: an
        array or list of strings, or an iterable of batches of them (a tf.data.Dataset too)."""
        if isinstance(data, (list, tuple, np.ndarray)) or not hasattr(data, "__iter__") or \
                hasattr(data, "__array__") and not hasattr(data, "as_numpy_iterator"):
            batches = [data]
        else:
            batches = data

        def rows():
            for i, batch in enumerate(batches):
                if steps is not None and i >= steps:
                    break
                strings, shape = self._strings(batch)
                for toks in self._rows(strings, shape):
                    yield [t for t in toks if t != ""]

        self._lookup._adapt_rows(rows())

    def set_vocabulary(self, vocabulary, idf_weights=None):
        self._lookup.set_vocabulary(vocabulary, idf_weights)

    def get_vocabulary(self, include_special_tokens=True):
        return self._lookup.get_vocabulary(include_special_tokens)

    def vocabulary_size(self):
        return self._lookup.vocabulary_size()

    # ---- running ------------------------------------------------------------------------------
    def compute_output_shape(self, s):
        if self.output_mode == "int":
            if self.split is None:
                return tuple(s)
            return (s[0], self.output_sequence_length)
        return (s[0], self._lookup._depth())

    def forward(self, x, training=False, need_ctx=False):
        strings, shape = self._strings(x)
        look = self._lookup
        if self.output_mode == "tf_idf" and look.idf_weights is None:
            raise ValueError(f"{self.name}: output_mode='tf_idf' needs adapt() or a vocabulary "
                             "with idf_weights first")
        rows = self._rows(strings, shape)
        if self.output_mode != "int":
            depth = look._depth()
            out = np.zeros((len(rows), depth), np.float32)
            for r, toks in enumerate(rows):
                toks = [t for t in toks if t != ""]  # the mask token counts nowhere
                if toks:
                    np.add.at(out[r], look._indices(toks), 1.0)
            if self.output_mode == "multi_hot":
                out = np.minimum(out, 1.0)
            elif self.output_mode == "tf_idf":
                out *= look.idf_weights[:depth]
            return out.astype(self._out_dtype(), copy=False), None
        ids = [look._indices(toks) for toks in rows]
        if self.split is None:
            y = np.concatenate(ids) if ids else np.zeros(0, np.int64)
            y = y.reshape(shape)
            if self.output_sequence_length is not None:
                y = _fit_last(y, self.output_sequence_length)
            return y, None
        width = self.output_sequence_length
        if width is None:
            width = max((len(r) for r in ids), default=0)
        y = np.zeros((len(ids), width), np.int64)
        for r, v in enumerate(ids):
            v = v[:width]
            y[r, :len(v)] = v
        return y, None

    def get_config(self):
        cfg = super().get_config()
        look = self._lookup
        idf = look.get_config().get("idf_weights") if self.output_mode == "tf_idf" else None
        cfg.update(max_tokens=look.max_tokens,
                   standardize=_function_entry(self.standardize, "standardize", self.name),
                   split=_function_entry(self.split, "split", self.name),
                   ngrams=self.ngrams, output_mode=self.output_mode,
                   output_sequence_length=self.output_sequence_length,
                   pad_to_max_tokens=look.pad_to_max_tokens, sparse=False, ragged=False,
                   vocabulary=look.get_vocabulary(include_special_tokens=False) or None,
                   idf_weights=idf, encoding="utf-8")
        return cfg


    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**dict(config, custom_objects=custom_objects))


def _function_entry(fn, what, layer):
    """A callable standardize / split in a config: Keras's entry naming the function by its
    registered name (a model file never holds code)."""
    if not callable(fn):
        return fn
    name = getattr(fn, "_registered_name", None)
    if name is None:
        raise ValueError(
            f"TextVectorization layer {layer!r}: its {what} function {fn!r} is not registered; "
            "a model file holds no code, so register it with "
            "@keras.saving.register_keras_serializable() to save this layer")
    return {"module": "builtins", "class_name": "function", "config": name,
            "registered_name": "function"}


def _function_arg(v, what, custom_objects, layer):
    """standardize / split from a config: a built-in name, a callable, or Keras's entry for a
    registered function, looked up by its name (never code from the file)."""
    if isinstance(v, dict):
        from ..saving.registry import get_class

        name = v.get("config")
        if v.get("class_name") != "function" or not isinstance(name, str):
            raise ValueError(f"TextVectorization layer {layer!r}: {what} must name a "
                             f"registered function; the file gives {v!r}, and nncore never "
                             "loads code from a file")
        fn = get_class(name, custom_objects)
        if fn is None or isinstance(fn, type) or not callable(fn):
            raise ValueError(f"TextVectorization layer {layer!r}: {what} function {name!r} is "
                             "not registered in this program "
                             "(keras.saving.register_keras_serializable, or custom_objects=)")
        return fn
    if callable(v) and isinstance(v, type):
        raise ValueError(f"TextVectorization layer {layer!r}: {what} must be a function, got "
                         f"the class {v!r}")
    return v


def _py_text(v, layer, what):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, str):
        return str(v)
    raise ValueError(f"layer {layer!r} (TextVectorization): the {what} function must give "
                     f"strings, got {type(v).__name__}")


def _as_array(v):
    if hasattr(v, "numpy") and not isinstance(v, np.ndarray):
        v = v.numpy()  # a tf.Tensor
    return v


def _text_list(v, n, layer, what):
    """A standardize function's result -> n Python strings."""
    v = np.asarray(_as_array(v), dtype=object).ravel()
    if v.size != n:
        raise ValueError(f"layer {layer!r} (TextVectorization): the {what} function gave "
                         f"{v.size} strings for {n}")
    return [_py_text(s, layer, what) for s in v.tolist()]


def _token_lists(v, n, layer):
    """A split function's result -> n lists of Python strings."""
    if hasattr(v, "to_list"):
        v = v.to_list()  # a tf.RaggedTensor
    v = _as_array(v)
    if isinstance(v, np.ndarray):
        if v.ndim != 2 and not (v.ndim == 1 and v.dtype == object):
            raise ValueError(f"layer {layer!r} (TextVectorization): the split function gave "
                             f"an array of shape {v.shape}; it must give one token list per "
                             "string")
        v = list(v)
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise ValueError(f"layer {layer!r} (TextVectorization): the split function must give "
                         f"{n} token lists (one per string)")
    return [[_py_text(t, layer, "split") for t in (np.asarray(r, object).ravel().tolist()
                                                  if not isinstance(r, (str, bytes)) else [r])]
            for r in v]


def _fit_last(y, n):
    """Cut or zero-pad the last axis to n."""
    y = y[..., :n]
    if y.shape[-1] < n:
        y = np.concatenate([y, np.zeros(y.shape[:-1] + (n - y.shape[-1],), y.dtype)], -1)
    return y
