"""CIFAR-10, as ``keras.datasets.cifar10``: ``(x_train, y_train), (x_test, y_test)`` with x uint8
(N, 32, 32, 3) and y uint8 (N, 1); 50000 training and 10000 test images. Read from the binary
distribution (no pickle): ``cifar-10-binary.tar.gz`` or its extracted ``cifar-10-batches-bin/``,
looked for in ``path``, ``$NNCORE_DATA/cifar10/`` and the cache, else downloaded from MIRRORS with
the published md5 checked."""

from __future__ import annotations

import numpy as np

from . import cifar

MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]
ARCHIVE = "cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
FOLDER = "cifar-10-batches-bin"
TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST = ["test_batch.bin"]


def load_data(path=None, *, download=True, mirrors=None):
    src = cifar._find("cifar10", ARCHIVE, FOLDER, MD5, path, download,
                      MIRRORS if mirrors is None else mirrors)
    parts = cifar.read_members(src, TRAIN + TEST, 1)
    x_train = np.concatenate([p[0] for p in parts[:5]])
    y_train = np.concatenate([p[1] for p in parts[:5]])
    x_test, y_test = parts[5]
    for y in (y_train, y_test):
        if y.size and int(y.max()) > 9:
            raise ValueError(f"{src}: label {int(y.max())} out of range 0..9")
    return (x_train, y_train), (x_test, y_test)
