"""Preprocessing kernels: nncore's C++ against its Python reference twin and TensorFlow/Keras on
the same input, side by side (alternating blocks of calls, medians).

    flock /tmp/nncore-bench.lock PYTHONPATH=python python bench/bench_preprocessing.py \
        [--n 4096] [--rounds 5] [--no-tf]

Rows: the affine image resampler of RandomRotation/Translation/Zoom (a batch of --images
NHWC images, forward; C++ `_core.affine_transform` against the NumPy path the layers ran before it
and Keras's `ops.image.affine_transform` on TensorFlow), then the Hashing layer's string hashes (FarmHash fingerprint64, and SipHash-2-4 with a salt)
and its integer path, as milliseconds per batch of --n values (medians over rounds x samples);
'C++ / Python' and 'C++ / TF' are ratios of those medians (below 1: the C++ path is faster).
Writes bench/results_preprocessing.md.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import alternate, load_1min, machine_header, markdown_table  # noqa: E402


def _data(n, rng):
    words = [bytes(rng.integers(97, 123, int(k), dtype=np.uint8)).decode()
             for k in rng.integers(3, 20, n)]
    ints = rng.integers(-(1 << 40), 1 << 40, n)
    return np.array(words, dtype=object)[:, None], ints[:, None]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--no-tf", action="store_true")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    import nncore
    from nncore import layers
    from nncore.layers import _hash

    rng = np.random.default_rng(0)
    words, ints = _data(args.n, rng)
    tf = keras = None
    if not args.no_tf:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
        import tensorflow as tf

    from nncore import _core
    from nncore.layers import augmentation as aug

    arows = []
    b, n = args.images, args.size
    x = rng.uniform(0, 255, (b, n, n, 3)).astype(np.float32)
    rot = layers.RandomRotation(0.2, seed=0)
    t = np.ascontiguousarray(rot._matrix(rot._draw(np.random.default_rng(1), x.shape), x.shape))
    for fill, interp in (("reflect", "bilinear"), ("constant", "nearest")):
        fns = {"numpy": lambda: aug.affine_apply(x, aug.affine_plan(n, n, t, fill, interp), 0.0),
               "c++": lambda: _core.affine_transform(x, t, fill, interp, 0.0)}
        if tf is not None:
            tx, tt = tf.constant(x), tf.constant(t.astype(np.float32))
            want = np.asarray(keras.ops.image.affine_transform(
                tx, tt, interpolation=interp, fill_mode=fill))
            assert np.abs(fns["c++"]() - want).max() < 0.1  # the same images, then time
            fns["keras"] = lambda: keras.ops.image.affine_transform(
                tx, tt, interpolation=interp, fill_mode=fill)
        res = alternate(fns, rounds=args.rounds, samples=args.samples, warmup=1, min_time=0.02)
        ms = {k: v["median"] * 1e3 for k, v in res.items()}
        row = [f"rotation, {fill} / {interp}", f"{ms['numpy']:.3f}", f"{ms['c++']:.3f}",
               f"{ms['keras']:.3f}" if "keras" in ms else "–",
               f"{ms['c++'] / ms['numpy']:.3f}",
               f"{ms['c++'] / ms['keras']:.2f}" if "keras" in ms else "–"]
        arows.append(row)
        print(" | ".join(row), flush=True)
    atable = markdown_table([f"{b} images {n}x{n}x3 float32", "NumPy path (ms)",
                             "nncore C++ (ms)", "Keras/TF (ms)", "C++ / NumPy", "C++ / Keras"],
                            arows)

    rows = []
    cases = [("Hashing strings (fingerprint64)", words, None),
             ("Hashing strings, salt (SipHash-2-4)", words, (7, 9)),
             ("Hashing int64 (fingerprint64 of the decimal text)", ints, None)]
    for title, x, salt in cases:
        ours = layers.Hashing(1000, salt=salt)
        flat = x.ravel().tolist()
        fns = {"python": lambda: _hash.buckets_reference(flat, 1000, salt),
               "c++": lambda: ours(x)}
        if tf is not None:
            tx = tf.constant(x.astype(str) if x.dtype == object else x)
            theirs = keras.layers.Hashing(1000, salt=list(salt) if salt else None)
            assert np.array_equal(np.asarray(theirs(tx)), ours(x))  # same bins, then time
            fns["keras"] = lambda: theirs(tx)
        res = alternate(fns, rounds=args.rounds, samples=args.samples, warmup=1, min_time=0.02)
        ms = {k: v["median"] * 1e3 for k, v in res.items()}
        row = [title, f"{ms['python']:.3f}", f"{ms['c++']:.3f}",
               f"{ms['keras']:.3f}" if "keras" in ms else "–",
               f"{ms['c++'] / ms['python']:.3f}",
               f"{ms['c++'] / ms['keras']:.2f}" if "keras" in ms else "–"]
        rows.append(row)
        print(" | ".join(row), flush=True)
    header = ["batch of %d values" % args.n, "Python ref (ms)", "nncore C++ (ms)",
              "Keras/TF layer (ms)", "C++ / Python", "C++ / Keras"]
    table = markdown_table(header, rows)
    text = (f"# Preprocessing kernels\n\n{machine_header()}, threads "
            f"{nncore.get_num_threads()}, 1-min load at the end {load_1min():.2f}\n\n"
            f"`flock /tmp/nncore-bench.lock PYTHONPATH=python python bench/bench_preprocessing.py"
            f" --n {args.n} --rounds {args.rounds} --images {args.images} --size {args.size}`"
            f"\n\n{atable}\n\n{table}\n")
    (HERE / "results_preprocessing.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
