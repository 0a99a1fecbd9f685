"""A Dense written as a user layer (nncore.ops.matmul + bias + nncore.ops.relu, traced into op
nodes) against the built-in fused Dense, per training step of the same MLP.

    flock /tmp/nncore-bench.lock python bench/bench_custom_layer.py [--rounds 7]

Both models run in one process, alternating A B A B ... per round (machine drift hits both
alike); prints the median seconds per train_on_batch step and the ratio custom / built-in.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _harness import machine_header, markdown_table  # noqa: E402

import nncore as keras  # noqa: E402
from nncore import ops  # noqa: E402
from nncore import layers  # noqa: E402


class MyDense(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="glorot_uniform", name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

    def call(self, inputs):
        return ops.relu(ops.matmul(inputs, self.w) + self.b)


def _model(custom, width, depth, n_in):
    inp = keras.Input((n_in,))
    h = inp
    for _ in range(depth):
        h = MyDense(width)(h) if custom else layers.Dense(width, activation="relu")(h)
    out = layers.Dense(10, activation="softmax")(h)
    m = keras.Model(inp, out)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return m


def _step_time(m, x, y, steps):
    t0 = time.perf_counter()
    for _ in range(steps):
        m.train_on_batch(x, y)
    return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    cases = [(784, 256, 2, 128, 20), (784, 512, 2, 256, 10), (32, 64, 2, 32, 200)]
    rows = []
    for n_in, width, depth, batch, steps in cases:
        keras.utils.set_random_seed(0)
        a = _model(False, width, depth, n_in)
        b = _model(True, width, depth, n_in)
        b.set_weights(a.get_weights())
        x = rng.random((batch, n_in), dtype=np.float32)
        y = rng.integers(0, 10, batch)
        for m in (a, b):  # warm-up (the custom model traces its call here)
            _step_time(m, x, y, 3)
        ta, tb = [], []
        for _ in range(args.rounds):
            ta.append(_step_time(a, x, y, steps))
            tb.append(_step_time(b, x, y, steps))
        ma, mb = statistics.median(ta), statistics.median(tb)
        rows.append([f"MLP {n_in}-{'-'.join([str(width)] * depth)}-10, batch {batch}",
                     f"{ma * 1e3:.3f}", f"{mb * 1e3:.3f}", f"{mb / ma:.2f}"])
    print(machine_header())
    print(f"threads {keras.get_num_threads()}, rounds {args.rounds}, median ms per "
          "train_on_batch step")
    print(markdown_table(["model", "built-in Dense (ms)", "custom-layer Dense (ms)",
                          "custom / built-in"], rows))


if __name__ == "__main__":
    main()
