"""Boston housing prices, as ``keras.datasets.boston_housing``: ``load_data(test_split=0.2,
seed=113)`` returns ``(x_train, y_train), (x_test, y_test)`` (float64, 13 features), shuffled
with numpy's RandomState(seed) exactly as Keras does. The npz is read with pickle disabled."""

from __future__ import annotations

import numpy as np

from . import _loader

MIRRORS = ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/"]
FILE = "boston_housing.npz"
SHA256 = "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"


def load_data(path=None, test_split=0.2, seed=113, *, download=True, mirrors=None):
    if not 0 <= test_split < 1:
        raise ValueError(f"Invalid `test_split` argument: {test_split}. It must be between 0 "
                         "and 1 (exclusive of 1).")
    d = _loader.locate("boston_housing", {FILE: (SHA256, "sha256")}, path, download,
                       MIRRORS if mirrors is None else mirrors)
    arrays = _loader.load_npz(d / FILE)
    x, y = arrays.get("x"), arrays.get("y")
    if (not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray) or x.dtype.kind != "f"
            or y.dtype.kind != "f" or x.ndim != 2 or y.ndim != 1 or len(x) != len(y)):
        raise ValueError(f"{d / FILE}: expected float arrays x (n, features) and y (n,)")
    indices = np.arange(len(x))
    np.random.RandomState(seed).shuffle(indices)
    x, y = x[indices], y[indices]
    cut = int(len(x) * (1 - test_split))
    return (x[:cut].copy(), y[:cut].copy()), (x[cut:].copy(), y[cut:].copy())
