"""CIFAR-100, as ``keras.datasets.cifar100``: ``load_data(label_mode='fine')`` returns x uint8
(N, 32, 32, 3) and y int64 (N, 1) (fine labels 0..99, or coarse 0..19), 50000 training and 10000
test images. Read from the binary distribution (no pickle): ``cifar-100-binary.tar.gz`` or its
extracted ``cifar-100-binary/``, found or downloaded like cifar10."""

from __future__ import annotations

import numpy as np

from . import cifar

MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]
ARCHIVE = "cifar-100-binary.tar.gz"
MD5 = "03b5dce01913d631647c71ecec9e9cb8"
FOLDER = "cifar-100-binary"


def load_data(label_mode="fine", path=None, *, download=True, mirrors=None):
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f'`label_mode` must be one of `"fine"`, `"coarse"`. Received: '
                         f"label_mode={label_mode}.")
    src = cifar._find("cifar100", ARCHIVE, FOLDER, MD5, path, download,
                      MIRRORS if mirrors is None else mirrors)
    (x_train, l_train), (x_test, l_test) = cifar.read_members(src, ["train.bin", "test.bin"], 2)
    col, top = (1, 99) if label_mode == "fine" else (0, 19)
    y_train = l_train[:, col:col + 1].astype(np.int64)
    y_test = l_test[:, col:col + 1].astype(np.int64)
    for y in (y_train, y_test):
        if y.size and int(y.max()) > top:
            raise ValueError(f"{src}: {label_mode} label {int(y.max())} out of range 0..{top}")
    return (x_train, y_train), (x_test, y_test)
