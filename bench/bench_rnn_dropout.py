"""Recurrent dropout in training: LSTM(64), recurrent_dropout=0.2, on (32, 50, 64), one
forward+backward (a training step's layer work), nncore's C++ time loop vs the NumPy loop it
replaced (the same layer forced onto it) vs TensorFlow Keras (GradientTape, training=True), in
alternating rounds in one process.

    flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        PYTHONPATH=python python bench/bench_rnn_dropout.py [--rounds 7] [--no-tf] [--threads N]

Prints medians in milliseconds. PyTorch's LSTM has no recurrent dropout, so it is not compared.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import nncore
from nncore import layers


def _step(layer, x, dy):
    layer._zero_grads()
    _, ctx = layer.forward(x, training=True, need_ctx=True)
    layer.backward(ctx, dy)


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
    x = rng.standard_normal((32, 50, 64)).astype(np.float32)
    dy = rng.standard_normal((32, 64)).astype(np.float32)
    fast = layers.LSTM(64, recurrent_dropout=0.2, seed=1)
    slow = layers.LSTM(64, recurrent_dropout=0.2, seed=1)
    for lay in (fast, slow):
        lay._maybe_build((None, 50, 64))
    slow.set_weights(fast.get_weights())
    slow._fast = False  # the NumPy time loop, as every recurrent_dropout call ran before
    nodrop = layers.LSTM(64)
    nodrop._maybe_build((None, 50, 64))
    nodrop.set_weights(fast.get_weights())
    runs = {"nncore C++ loop": lambda: _step(fast, x, dy),
            "nncore NumPy loop (before)": lambda: _step(slow, x, dy),
            "nncore, recurrent_dropout=0": lambda: _step(nodrop, x, dy)}
    if not a.no_tf:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        if a.threads:
            tf.config.threading.set_intra_op_parallelism_threads(a.threads)
            tf.config.threading.set_inter_op_parallelism_threads(a.threads)
        import keras
        tl = keras.layers.LSTM(64, recurrent_dropout=0.2, seed=1)
        tl(x[:1])
        tl.set_weights(fast.get_weights())
        xt, dyt = tf.constant(x), tf.constant(dy)

        @tf.function
        def tf_step():
            with tf.GradientTape() as tape:
                tape.watch(xt)
                y = tl(xt, training=True)
                loss = tf.reduce_sum(y * dyt)
            return tape.gradient(loss, [xt] + tl.trainable_weights)

        runs["TF Keras 3 (tf.function)"] = lambda: tf_step()
    for f in runs.values():  # warm up
        f()
        f()
    times = {k: [] for k in runs}
    for _ in range(a.rounds):
        for k, f in runs.items():
            t0 = time.perf_counter()
            for _ in range(a.reps):
                f()
            times[k].append((time.perf_counter() - t0) / a.reps * 1e3)
    print(f"threads={nncore.get_num_threads()} load={os.getloadavg()[0]:.2f}")
    base = np.median(times["nncore C++ loop"])
    for k, v in times.items():
        print(f"{k:28s} {np.median(v):8.2f} ms   x{np.median(v) / base:5.2f} of the C++ loop")


if __name__ == "__main__":
    main()
