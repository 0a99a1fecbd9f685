"""One optimizer step on a 4M-parameter float32 weight: nncore's fused kernels vs PyTorch
(torch.optim, foreach) and Keras 3 (TensorFlow backend, apply inside tf.function), samples
alternating between frameworks; medians of 15.

    flock /tmp/nncore-bench.lock python bench/bench_optim.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _harness import cpu_model  # noqa: E402

N = 4 << 20
REPS = 15
CASES = [  # (nncore / keras name, torch name or None, kwargs shared by all)
    ("SGD", "SGD", {"learning_rate": 0.01, "momentum": 0.9}),
    ("Adam", "Adam", {"learning_rate": 1e-3}),
    ("AdamW", "AdamW", {"learning_rate": 1e-3}),
    ("Nadam", None, {"learning_rate": 1e-3}),
    ("Adamax", "Adamax", {"learning_rate": 1e-3}),
    ("Adagrad", "Adagrad", {"learning_rate": 1e-3}),
    ("Adadelta", "Adadelta", {"learning_rate": 1e-3}),
    ("Ftrl", None, {"learning_rate": 1e-3}),
    ("Lion", None, {"learning_rate": 1e-3}),
]


def once(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    import nncore
    from nncore import optimizers

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    import torch

    rng = np.random.default_rng(0)
    w0 = rng.normal(size=N).astype(np.float32)
    g = rng.normal(size=N).astype(np.float32)
    print(f"CPU: {cpu_model()}, nncore threads {nncore.get_num_threads()}, torch threads "
          f"{torch.get_num_threads()}, {N} parameters, median of {REPS}")
    print(f"{'optimizer':>10} {'nncore ms':>10} {'torch ms':>9} {'keras ms':>9} "
          f"{'torch/nncore':>13} {'keras/nncore':>13}")
    for name, tname, kw in CASES:
        ours = getattr(optimizers, name)(**kw)
        w = w0.copy()
        run_ours = lambda: ours.apply([w], [g], [None])  # noqa: E731
        tw = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        tw.grad = torch.from_numpy(g.copy())
        topt = None
        if tname:
            tkw = {"lr": kw["learning_rate"]}
            if name == "SGD":
                tkw["momentum"] = 0.9
            topt = getattr(torch.optim, tname)([tw], **tkw)
        kopt = getattr(keras.optimizers, name)(**kw)
        kv = keras.Variable(w0.copy())
        kg = tf.constant(g)
        kstep = tf.function(lambda: kopt.apply([kg], [kv]))
        for _ in range(3):
            run_ours()
            kstep()
            if topt:
                topt.step()
        t_o, t_t, t_k = [], [], []
        for _ in range(REPS):
            t_o.append(once(run_ours))
            if topt:
                t_t.append(once(topt.step))
            t_k.append(once(kstep))
        mo, mk = statistics.median(t_o) * 1e3, statistics.median(t_k) * 1e3
        mt = statistics.median(t_t) * 1e3 if t_t else float("nan")
        print(f"{name:>10} {mo:10.2f} {mt:9.2f} {mk:9.2f} {mt / mo:13.2f} {mk / mo:13.2f}")


if __name__ == "__main__":
    main()
