"""Two nncore source trees side by side: the seed CNN's training step (batch 32), its
single-image predict latency (1 thread) and the SimpleRNN(128) training step, each measured in a
fresh subprocess per tree, the trees alternating A B A B ... so machine drift hits both alike.

    flock /tmp/nncore-bench.lock python bench/bench_core_ab.py OLD_TREE/python NEW_TREE/python \\
        --rounds 5

Prints medians (and min-max) per tree and the ratio of medians new/old.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time
import numpy as np
import nncore
from nncore import layers, models, utils
what = sys.argv[1]
rng = np.random.default_rng(0)
utils.set_random_seed(0)
if what in ("cnn", "predict"):
    m = models.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)), layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)), layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(), layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax")])
    x = rng.random((3200, 28, 28, 1), dtype=np.float32)
else:
    m = models.Sequential([layers.SimpleRNN(128, input_shape=(28, 28)),
                           layers.Dense(10, activation="softmax")])
    x = rng.random((3200, 28, 28), dtype=np.float32)
y = rng.integers(0, 10, 3200)
m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
if what == "predict":
    nncore.set_num_threads(1)
    one = x[:1]
    for _ in range(200):
        m.predict(one, verbose=0)
    ts = []
    for _ in range(2000):
        t = time.perf_counter(); m.predict(one, verbose=0); ts.append(time.perf_counter() - t)
    print(json.dumps(sorted(ts)[len(ts) // 2] * 1e6))
else:
    nncore.set_num_threads(2)
    m.fit(x[:320], y[:320], batch_size=32, epochs=1, verbose=0)
    t = time.perf_counter()
    m.fit(x, y, batch_size=32, epochs=1, verbose=0)
    print(json.dumps((time.perf_counter() - t) / 100 * 1e3))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    res = {(t, w): [] for t in ("old", "new") for w in ("cnn", "predict", "rnn")}
    for _ in range(args.rounds):
        for what in ("cnn", "predict", "rnn"):
            for tree in ("old", "new"):
                env = dict(os.environ, PYTHONPATH=getattr(args, tree))
                out = subprocess.run([sys.executable, "-c", WORKER, what], env=env,
                                     capture_output=True, text=True, check=True).stdout
                res[(tree, what)].append(json.loads(out.strip().splitlines()[-1]))
    units = {"cnn": "ms/step", "predict": "us/image", "rnn": "ms/step"}
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print("| measure | old median (min-max) | new median (min-max) | new/old |")
    print("|---|---:|---:|---:|")
    for what in ("cnn", "predict", "rnn"):
        o, n = res[("old", what)], res[("new", what)]
        mo, mn = statistics.median(o), statistics.median(n)
        print(f"| {what} ({units[what]}) | {mo:.3f} ({min(o):.3f}-{max(o):.3f}) | "
              f"{mn:.3f} ({min(n):.3f}-{max(n):.3f}) | {mn / mo:.3f} |")


if __name__ == "__main__":
    main()
