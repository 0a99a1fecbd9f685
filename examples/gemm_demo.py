"""Multiply matrices with nncore and numpy, check they agree, and time both (median of 5)."""

import time

import numpy as np

import nncore
from nncore import kernels as ops


def median_seconds(fn, reps=5):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main():
    nncore.show_config()
    rng = np.random.default_rng(0)
    for n in (256, 1024):
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        err = np.abs(ops.matmul(a, b) - a.astype(np.float64) @ b).max()
        t_nn = median_seconds(lambda: ops.matmul(a, b))
        t_np = median_seconds(lambda: a @ b)
        gf = 2.0 * n**3 / 1e9
        print(f"n={n}: nncore {gf / t_nn:6.1f} GFLOP/s, numpy {gf / t_np:6.1f} GFLOP/s, "
              f"max |error| vs float64 {err:.2e}")


if __name__ == "__main__":
    main()
