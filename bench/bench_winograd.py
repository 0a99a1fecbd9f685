"""Winograd F(2x2,3x3) vs the direct Conv2D kernel, layer by layer, on this CPU.

    flock /tmp/nncore-bench.lock PYTHONPATH=python python bench/bench_winograd.py [--threads 2]
        [--dx-ab | --dw-ab]

For each 3x3 stride-1 shape: forward and backward (dx, dW, db) times with the algorithm forced to
'direct' and to 'winograd' (alternating, medians of --reps calls after warm-up, ms), their ratio,
and what 'auto' picks (_core.conv2d_uses_winograd). The rule in csrc/kernels/conv2d_winograd.cpp
was set from this table.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

import nncore
from nncore import _core
from nncore import kernels as ops

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import machine_header  # noqa: E402
from bench_layers import median_ms  # noqa: E402

# (name, N, H, W, C, F, padding)
SHAPES = [
    ("seed conv2", 32, 13, 13, 32, 64, "valid"),
    ("seed conv3", 32, 5, 5, 64, 64, "valid"),
    ("seed conv2 b1", 1, 13, 13, 32, 64, "valid"),
    ("cifar conv2 b32", 32, 15, 15, 32, 64, "valid"),
    ("cifar conv3 b32", 32, 6, 6, 64, 64, "valid"),
    ("cifar conv2 b256", 256, 15, 15, 32, 64, "valid"),
    ("cifar conv3 b256", 256, 6, 6, 64, 64, "valid"),
    ("same 16x16 32->32", 32, 16, 16, 32, 32, "same"),
    ("same 8x8 64->128", 32, 8, 8, 64, 128, "same"),
    ("same 16x16 8->16", 32, 16, 16, 8, 16, "same"),
    ("same 16x16 16->16", 32, 16, 16, 16, 16, "same"),
    ("valid 7x7 32->32", 32, 7, 7, 32, 32, "valid"),
]


def dx_ab(threads: int) -> None:
    import time

    nncore.set_num_threads(threads)
    rng = np.random.default_rng(0)
    print(f"{machine_header()}; nncore {threads} threads, ISA {ops.get_isa()}")
    for n in (32, 256):
        x = rng.standard_normal((n, 6, 6, 64)).astype(np.float32)
        k = (rng.standard_normal((3, 3, 64, 64)) / 24).astype(np.float32)
        b = np.zeros(64, np.float32)
        y = ops.conv2d(x, k, b, activation="relu")
        dy = rng.standard_normal(y.shape).astype(np.float32)
        res = {"direct": [], "winograd": []}
        for _ in range(15):
            for algo, t in res.items():
                _core.set_conv2d_algorithm(algo)
                ops.conv2d_backward(dy, x, k, y=y, activation="relu")
                t0 = time.perf_counter()
                for _ in range(5):
                    ops.conv2d_backward(dy, x, k, y=y, activation="relu")
                t.append((time.perf_counter() - t0) / 5)
        _core.set_conv2d_algorithm("auto")
        d, w = (float(np.median(v)) * 1e3 for v in res.values())
        print(f"backward ({n},6,6,64)->64: direct dx {d:.3f} ms, Winograd dx {w:.3f} ms, "
              f"ratio {w / d:.2f}")


def dw_ab(threads: int, reps: int) -> None:
    """The weight gradient alone (need_dx=False: dW and db) with dW direct vs Winograd."""
    nncore.set_num_threads(threads)
    rng = np.random.default_rng(0)
    print(f"{machine_header()}; nncore {threads} threads, ISA {ops.get_isa()}")
    print()
    print("| shape | dW direct (ms) | dW winograd (ms) | ratio | auto dW |")
    print("|---|---:|---:|---:|---|")
    for name, n, h, w, c, f, pad in SHAPES:
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        k = (rng.standard_normal((3, 3, c, f)) / np.sqrt(9 * c)).astype(np.float32)
        b = np.zeros(f, np.float32)
        _core.set_conv2d_algorithm("direct")
        y = ops.conv2d(x, k, b, padding=pad, activation="relu")
        dy = rng.standard_normal(y.shape).astype(np.float32)

        def bwd(algo):
            def run():
                _core.set_conv2d_algorithm(algo)
                ops.conv2d_backward(dy, x, k, y=y, padding=pad, activation="relu", need_dx=False)
            return run

        d, wg = median_ms(bwd("direct"), bwd("winograd"), reps=reps)
        _core.set_conv2d_algorithm("auto")
        oh, ow = y.shape[1:3]
        auto = _core.conv2d_uses_winograd(n, h, w, c, f, oh, ow, dw=True)
        print(f"| {name} ({n},{h},{w},{c})->{f} {pad} | {d['median']:.3f} | {wg['median']:.3f} | "
              f"{wg['median'] / d['median']:.2f} | {'W' if auto else 'D'} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--dx-ab", action="store_true",
                    help="instead: the whole backward (dx, dW, db) with the dx forced direct vs "
                         "Winograd, 15 alternating rounds of 5 calls, for the CIFAR CNN's 64->64 "
                         "layer at batch 32 and 256")
    ap.add_argument("--dw-ab", action="store_true",
                    help="instead: the weight gradient alone (need_dx=False), dW forced direct vs "
                         "Winograd, per shape")
    args = ap.parse_args()
    if args.dw_ab:
        dw_ab(args.threads, args.reps)
        return
    if args.dx_ab:
        dx_ab(args.threads)
        return
    nncore.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{machine_header()}; nncore {args.threads} threads, ISA {ops.get_isa()}")
    print()
    print("| shape | fwd direct | fwd winograd | ratio | fwd+bwd direct | fwd+bwd winograd | ratio"
          " | auto fwd / dx |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, n, h, w, c, f, pad in SHAPES:
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        k = (rng.standard_normal((3, 3, c, f)) / np.sqrt(9 * c)).astype(np.float32)
        b = np.zeros(f, np.float32)
        y = ops.conv2d(x, k, b, padding=pad, activation="relu")
        dy = rng.standard_normal(y.shape).astype(np.float32)

        def fwd(algo):
            def run():
                _core.set_conv2d_algorithm(algo)
                ops.conv2d(x, k, b, padding=pad, activation="relu")
            return run

        def both(algo):
            def run():
                _core.set_conv2d_algorithm(algo)
                yy = ops.conv2d(x, k, b, padding=pad, activation="relu")
                ops.conv2d_backward(dy, x, k, y=yy, padding=pad, activation="relu")
            return run

        fd, fw = median_ms(fwd("direct"), fwd("winograd"), reps=args.reps)
        bd, bw = median_ms(both("direct"), both("winograd"), reps=args.reps)
        _core.set_conv2d_algorithm("auto")
        oh, ow = y.shape[1:3]
        auto_f = _core.conv2d_uses_winograd(n, h, w, c, f, oh, ow)
        auto_dx = _core.conv2d_uses_winograd(n, oh, ow, f, c, h, w, dx=True)
        print(f"| {name} ({n},{h},{w},{c})->{f} {pad} | {fd['median']:.3f} | {fw['median']:.3f} | "
              f"{fw['median'] / fd['median']:.2f} | {bd['median']:.3f} | {bw['median']:.3f} | "
              f"{bw['median'] / bd['median']:.2f} | {'W' if auto_f else 'D'} / "
              f"{'W' if auto_dx else 'D'} |")


if __name__ == "__main__":
    main()
