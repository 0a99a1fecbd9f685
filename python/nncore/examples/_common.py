"""Command line and data selection shared by the MNIST examples."""

from __future__ import annotations

import argparse

import numpy as np

import nncore
from nncore.datasets import mnist


def parse_args(description: str, argv=None, epochs: int = 5, batch_size: int = 32,
               figures: bool = False):
    ap = argparse.ArgumentParser(description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    if figures:
        ap.add_argument("--out-dir", metavar="DIR", default=".",
                        help="where the PNG figures go (default: the current directory)")
        ap.add_argument("--no-figures", action="store_true",
                        help="write no figures (they need matplotlib: pip install "
                             '"nncore[plot]")')
    ap.add_argument("--data", metavar="DIR",
                    help="directory with the MNIST IDX files (default: $NNCORE_DATA/mnist, then "
                         "the user cache, then the small subset shipped with nncore)")
    ap.add_argument("--download", action="store_true",
                    help="download full MNIST into the user cache if it is found nowhere")
    ap.add_argument("--embedded", action="store_true",
                    help="use the embedded subset (5000 train / 1000 test images) even if full "
                         "MNIST is available")
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--fraction", type=float, default=1.0,
                    help="use only this fraction of the training images (for smoke runs)")
    ap.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=0,
                    help="random seed (weights, shuffling); runs are bitwise reproducible for any "
                         "thread count. -1: unseeded")
    args = ap.parse_args(argv)
    if not 0 < args.fraction <= 1:
        ap.error("--fraction must be in (0, 1]")
    if args.epochs < 1 or args.batch_size < 1:
        ap.error("--epochs and --batch-size must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be >= 1")
        nncore.set_num_threads(args.threads)
    if args.seed >= 0:
        nncore.utils.set_random_seed(args.seed)
    return args


def load_mnist(args):
    """Full MNIST when available (--data, $NNCORE_DATA, the cache, or --download), else the embedded
    subset; says which. Applies --fraction to the training set."""
    if args.embedded:
        data, source = mnist.load_embedded(), "the embedded MNIST subset (--embedded)"
    elif args.data or mnist.find() is not None or args.download:
        data = mnist.load_data(args.data)
        source = f"full MNIST from {args.data or mnist.find()}"
    else:
        data = mnist.load_embedded()
        source = ("the embedded MNIST subset shipped with nncore (full MNIST not found: pass "
                  "--data DIR, set NNCORE_DATA, or --download)")
    (x_train, y_train), (x_test, y_test) = data
    n = max(1, int(round(len(x_train) * args.fraction)))
    x_train, y_train = x_train[:n], y_train[:n]
    print(f"Data: {source}: {len(x_train)} training, {len(x_test)} test images; "
          f"{nncore.get_num_threads()} threads", flush=True)
    return (x_train, y_train), (x_test, y_test)


def scale(x: np.ndarray, shape: tuple) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], reshaped to (N, *shape)."""
    return (x.astype(np.float32) / 255.0).reshape((-1, *shape))
