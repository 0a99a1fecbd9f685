"""IMDB movie-review sentiment, as ``keras.datasets.imdb``: ``load_data(num_words=None,
skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2, index_from=3)`` returns
``(x_train, y_train), (x_test, y_test)``: x object arrays of word-index lists, y int labels, with
Keras's shuffling (RandomState(seed), train then test) and index transformation.

imdb.npz stores the ragged sequences as pickled object arrays. They are read with an unpickler
that may only name numpy's array reconstruction (no other class or function, so no code runs),
then checked to be lists of non-negative ints; numeric members are read with pickle disabled."""

from __future__ import annotations

import numpy as np

from . import _loader

MIRRORS = ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/"]
FILE = "imdb.npz"
SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
INDEX_FILE = "imdb_word_index.json"
INDEX_MD5 = "bfafd718b763782e994055a2d397834f"


def _arrays(d, where):
    arrays = _loader.load_npz(d / FILE, objects=True)
    try:
        return [arrays[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except KeyError as e:
        raise ValueError(f"{where}: missing array {e}") from None


def load_data(path=None, num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1,
              oov_char=2, index_from=3, *, download=True, mirrors=None):
    d = _loader.locate("imdb", {FILE: (SHA256, "sha256")}, path, download,
                       MIRRORS if mirrors is None else mirrors)
    where = str(d / FILE)
    x_train, y_train, x_test, y_test = _arrays(d, where)
    x_train = _loader.int_sequences(x_train, where + ":x_train")
    x_test = _loader.int_sequences(x_test, where + ":x_test")
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test) \
            or y_train.dtype.kind not in "iu" or y_test.dtype.kind not in "iu":
        raise ValueError(f"{where}: sequences and integer labels differ in number")
    dtype = y_train.dtype
    rng = np.random.RandomState(seed)
    idx = np.arange(len(x_train))
    rng.shuffle(idx)
    x_train, y_train = [x_train[i] for i in idx], y_train[idx]
    idx = np.arange(len(x_test))
    rng.shuffle(idx)
    x_test, y_test = [x_test[i] for i in idx], y_test[idx]
    x_train = _loader.shift(x_train, start_char, index_from)
    x_test = _loader.shift(x_test, start_char, index_from)
    y_train, y_test = list(y_train), list(y_test)
    if maxlen:
        x_train, y_train = _loader.drop_long(x_train, y_train, maxlen)
        x_test, y_test = _loader.drop_long(x_test, y_test, maxlen)
        if not x_train or not x_test:
            raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no "
                             "sequence was kept. Increase maxlen.")
    xs = _loader.vocab(x_train + x_test, num_words, skip_top, oov_char)
    n = len(x_train)
    labels = np.concatenate([np.asarray(y_train, dtype), np.asarray(y_test, dtype)])
    return ((_loader.object_array(xs[:n]), labels[:n]),
            (_loader.object_array(xs[n:]), labels[n:]))


def get_word_index(path=None, *, download=True, mirrors=None) -> dict:
    """{word: index} (before index_from is added), from imdb_word_index.json."""
    d = _loader.locate("imdb", {INDEX_FILE: (INDEX_MD5, "md5")}, path, download,
                       MIRRORS if mirrors is None else mirrors)
    return _loader.load_word_index(d / INDEX_FILE)
