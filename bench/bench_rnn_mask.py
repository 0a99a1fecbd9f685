"""Masked sequences in training: Embedding(1000, 64, mask_zero=True) -> LSTM(64) or
GRU(64, reset_after=False) -> Dense(1), one train_on_batch on (32, 50) token ids with ~30% padding
(half the rows padded before, half after), nncore's C++ time loop vs the NumPy loop masked steps
and reset_after=False took before (the same model forced onto it) vs the same model without
padding (mask_zero=False: the unmasked C++ loop) vs TensorFlow Keras train_on_batch, in
alternating rounds in one process.

    flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        PYTHONPATH=python python bench/bench_rnn_mask.py [--rounds 7] [--no-tf] [--threads N]

Prints medians in milliseconds per training step.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

import nncore
from nncore import layers

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _harness import alternate  # noqa: E402

B, T, VOCAB, DIM, UNITS = 32, 50, 1000, 64, 64


def tokens(rng):
    """(B, T) ids in [1, VOCAB) with ~30% padding: even rows padded at the end, odd at the start."""
    tok = rng.integers(1, VOCAB, size=(B, T)).astype(np.int32)
    for i in range(B):
        pad = int(rng.integers(0, int(0.6 * T) + 1))  # mean 0.3 * T
        if i % 2:
            tok[i, :pad] = 0
        else:
            tok[i, T - pad:] = 0
    return tok


def rnn_layer(kind, lib):
    if kind == "lstm":
        return lib.layers.LSTM(UNITS)
    return lib.layers.GRU(UNITS, reset_after=False)


def model(kind, mask_zero, lib=nncore):
    m = lib.Sequential([lib.Input((T,), dtype="int32"),
                        lib.layers.Embedding(VOCAB, DIM, mask_zero=mask_zero),
                        rnn_layer(kind, lib), lib.layers.Dense(1)])
    m.compile(lib.optimizers.SGD(0.01), "mse")
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-tf", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="nncore and TF threads (0: default)")
    a = ap.parse_args()
    if a.threads:
        nncore.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    tok = tokens(rng)
    y = rng.standard_normal((B, 1)).astype(np.float32)
    print(f"padding {np.mean(tok == 0):.0%}")
    if not a.no_tf:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        if a.threads:
            tf.config.threading.set_intra_op_parallelism_threads(a.threads)
            tf.config.threading.set_inter_op_parallelism_threads(a.threads)
        import keras
    runs = {}
    for kind in ("lstm", "gru_reset_before"):
        fast, slow, plain = model(kind, True), model(kind, True), model(kind, False)
        for m in (slow, plain):
            m.set_weights(fast.get_weights())
        slow.layers[1]._fast = False  # the NumPy time loop, as masked steps ran before
        runs[f"{kind}: C++ loop, masked"] = lambda m=fast: m.train_on_batch(tok, y)
        runs[f"{kind}: NumPy loop, masked (before)"] = lambda m=slow: m.train_on_batch(tok, y)
        runs[f"{kind}: C++ loop, no mask"] = lambda m=plain: m.train_on_batch(tok, y)
        if not a.no_tf:
            km = model(kind, True, keras)
            km.set_weights(fast.get_weights())
            runs[f"{kind}: TF Keras 3, masked"] = lambda m=km: m.train_on_batch(tok, y)
    res = alternate(runs, rounds=a.rounds, samples=a.reps, warmup=1)
    print(f"threads={nncore.get_num_threads()} load={os.getloadavg()[0]:.2f}")
    for k, r in res.items():
        base = res[k.split(":")[0] + ": C++ loop, masked"]["median"]
        print(f"{k:42s} {r['median'] * 1e3:8.2f} ms   x{r['median'] / base:5.2f} of the masked "
              f"C++ loop")

if __name__ == "__main__":
    main()
