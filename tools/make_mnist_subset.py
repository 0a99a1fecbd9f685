"""Build python/nncore/datasets/mnist_subset.npz, the small subset of real MNIST shipped in nncore.

The first 500 training images of each digit (5000) and the first 100 test images of each digit
(1000), in their original order, stored uint8 in a compressed npz (no pickle).

    python tools/make_mnist_subset.py [MNIST_DIR]      # default: ../shared/data/mnist

The output is deterministic in content: rebuilding it from the same files gives the same arrays.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python" / "nncore" / "datasets"))
import mnist  # noqa: E402  (the loader module alone: no compiled extension needed)

SHARED = ROOT.parent / "shared" / "data" / "mnist"
OUT = ROOT / "python" / "nncore" / "datasets" / "mnist_subset.npz"


def first_per_class(y: np.ndarray, per_class: int) -> np.ndarray:
    idx = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    return np.sort(idx)


def main() -> None:
    src = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else SHARED
    (x_train, y_train), (x_test, y_test) = mnist.load_data(src)
    tr, te = first_per_class(y_train, 500), first_per_class(y_test, 100)
    np.savez_compressed(OUT, x_train=x_train[tr], y_train=y_train[tr],
                        x_test=x_test[te], y_test=y_test[te])
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(tr)} train, {len(te)} test images")


if __name__ == "__main__":
    main()
