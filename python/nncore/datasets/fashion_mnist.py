"""Fashion-MNIST (Zalando), as ``keras.datasets.fashion_mnist``: ``load_data()`` returns
``(x_train, y_train), (x_test, y_test)``, uint8 arrays of shapes (60000, 28, 28), (60000,),
(10000, 28, 28), (10000,), read from the four gzip IDX files. Looked for in ``path``,
``$NNCORE_DATA/fashion_mnist/``, then the cache; else downloaded from ``MIRRORS`` in turn with
each file's published md5 checked (nncore.datasets._loader)."""

from __future__ import annotations

from . import _loader
from .mnist import read_idx

MIRRORS = [
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
]
# name -> (md5 of the .gz file, IDX magic), as published by Zalando Research.
FILES = {
    "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", 2051),
    "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", 2049),
    "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", 2051),
    "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", 2049),
}


def load_data(path=None, *, download=True, mirrors=None):
    d = _loader.locate("fashion_mnist", {f: (h, "md5") for f, (h, _) in FILES.items()}, path,
                       download, MIRRORS if mirrors is None else mirrors)
    xtr, ytr, xte, yte = (read_idx(d / f, magic) for f, (_, magic) in FILES.items())
    for x, y, split in ((xtr, ytr, "train"), (xte, yte, "test")):
        if len(x) != len(y):
            raise ValueError(f"{d}: {split} has {len(x)} images but {len(y)} labels")
    return (xtr, ytr), (xte, yte)
