"""Reuters newswire topics, as ``keras.datasets.reuters``: ``load_data(num_words=None,
skip_top=0, maxlen=None, test_split=0.2, seed=113, start_char=1, oov_char=2, index_from=3)``:
word-index sequences (object arrays) and topic labels (46 topics), shuffled with
RandomState(seed), transformed and split as Keras does. reuters.npz is read like imdb.npz (object
arrays through an unpickler that may only rebuild numpy arrays)."""

from __future__ import annotations

import numpy as np

from . import _loader

MIRRORS = ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/"]
FILE = "reuters.npz"
SHA256 = "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"
INDEX_FILE = "reuters_word_index.json"
INDEX_MD5 = "4d44cc38712099c9e383dc6e5f11a921"

_LABELS = ("cocoa grain veg-oil earn acq wheat copper housing money-supply coffee sugar trade "
           "reserves ship cotton carcass crude nat-gas cpi money-fx interest gnp meal-feed alum "
           "oilseed gold tin strategic-metal livestock retail ipi iron-steel rubber heat jobs lei "
           "bop zinc orange pet-chem dlr gas silver wpi hog lead").split()


def load_data(path=None, num_words=None, skip_top=0, maxlen=None, test_split=0.2, seed=113,
              start_char=1, oov_char=2, index_from=3, *, download=True, mirrors=None):
    d = _loader.locate("reuters", {FILE: (SHA256, "sha256")}, path, download,
                       MIRRORS if mirrors is None else mirrors)
    where = str(d / FILE)
    arrays = _loader.load_npz(d / FILE, objects=True)
    if "x" not in arrays or "y" not in arrays:
        raise ValueError(f"{where}: missing arrays x, y")
    xs = _loader.int_sequences(arrays["x"], where + ":x")
    labels = np.asarray(arrays["y"])
    if len(xs) != len(labels) or labels.dtype.kind not in "iu":
        raise ValueError(f"{where}: sequences and integer labels differ in number")
    idx = np.arange(len(xs))
    np.random.RandomState(seed).shuffle(idx)
    xs, labels = [xs[i] for i in idx], labels[idx]
    dtype = labels.dtype
    xs = _loader.shift(xs, start_char, index_from)
    labels = list(labels)
    if maxlen:
        xs, labels = _loader.drop_long(xs, labels, maxlen)
    xs = _loader.vocab(xs, num_words, skip_top, oov_char)
    labels = np.asarray(labels, dtype)
    cut = int(len(xs) * (1 - test_split))
    return ((_loader.object_array(xs[:cut]), labels[:cut]),
            (_loader.object_array(xs[cut:]), labels[cut:]))


def get_word_index(path=None, *, download=True, mirrors=None) -> dict:
    """{word: index} (before index_from is added), from reuters_word_index.json."""
    d = _loader.locate("reuters", {INDEX_FILE: (INDEX_MD5, "md5")}, path, download,
                       MIRRORS if mirrors is None else mirrors)
    return _loader.load_word_index(d / INDEX_FILE)


def get_label_names():
    """The 46 topic names, in label order."""
    return tuple(_LABELS)
