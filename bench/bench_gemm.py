"""GFLOP/s of nncore's sgemm vs numpy (OpenBLAS) side by side, on 1 and 2 threads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_gemm.py [--reps 9] [--quick]

Square sizes, and the GEMMs of the Keras MNIST CNN's convolutions at batch 32 (im2col M x K x N)
with their backward products (dW = P^T dY: K x M x N with a long inner dimension; dP = dY W^T).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _harness import (  # noqa: E402
    alternate,
    machine_header,
    markdown_table,
    openblas_env_warning,
)

import nncore  # noqa: E402
from nncore import kernels as ops  # noqa: E402

# (label, m, n, k, transpose_a, transpose_b)
CNN = [
    ("conv1 fwd P@W", 21632, 32, 9, False, False),
    ("conv2 fwd P@W", 3872, 64, 288, False, False),
    ("conv3 fwd P@W", 288, 64, 576, False, False),
    ("conv1 dW P^T@dY", 9, 32, 21632, True, False),
    ("conv2 dW P^T@dY", 288, 64, 3872, True, False),
    ("conv3 dW P^T@dY", 576, 64, 288, True, False),
    ("conv2 dP dY@W^T", 3872, 288, 64, False, True),
    ("conv3 dP dY@W^T", 288, 576, 64, False, True),
]


def bench_case(m, n, k, ta, tb, nt, reps, rounds):
    """GFLOP/s spreads of nncore and numpy, measured in alternating blocks (nncore, numpy, nncore,
    numpy, ...: `rounds` blocks of `reps` samples each) after a pause. Blocks, not sample by sample:
    OpenBLAS's idle threads spin for a long while after a call and nncore's pool's for ~50 µs, so
    alternating single calls would measure the two pools fighting over the two cores."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    out = np.empty((m, n), np.float32)
    aa, bb = (a.T if ta else a), (b.T if tb else b)
    flops = 2.0 * m * n * k
    min_time = 0.02
    nncore.set_num_threads(nt)

    def run_nn():
        ops.matmul(a, b, out, transpose_a=ta, transpose_b=tb)

    def run_np():
        np.matmul(aa, bb, out=out)

    with threadpool_limits(nt, user_api="blas"):
        res = alternate({"nncore": run_nn, "numpy": run_np}, rounds=rounds, samples=reps,
                        warmup=1, min_time=min_time, pause=0.3)
    gflops = {}
    for name, r in res.items():  # seconds -> GFLOP/s (the fastest time is the highest rate)
        gflops[name] = {"median": flops / r["median"] / 1e9, "min": flops / r["max"] / 1e9,
                        "max": flops / r["min"] / 1e9, "loads": r["loads"]}
    return gflops


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=3, help="samples per block")
    ap.add_argument("--rounds", type=int, default=3, help="alternating blocks per library")
    ap.add_argument("--quick", action="store_true", help="fewer sizes and reps (smoke run)")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).with_name("results_gemm.md")))
    args = ap.parse_args()
    if (w := openblas_env_warning()):
        print(w, file=sys.stderr)
    squares = [64, 256, 1024] if args.quick else [64, 128, 256, 512, 1024, 2048]
    reps, rounds = (2, 2) if args.quick else (args.reps, args.rounds)
    cases = [(f"square {n}", n, n, n, False, False) for n in squares] + CNN
    rows = []
    for nt in (1, 2):
        for label, m, n, k, ta, tb in cases:
            g = bench_case(m, n, k, ta, tb, nt, reps, rounds)
            nn, nP = g["nncore"], g["numpy"]
            loads = nn["loads"] + nP["loads"]
            rows.append([label, f"{m}x{k}x{n}", nt,
                         f"{nn['median']:.1f} ({nn['min']:.3g}-{nn['max']:.3g})",
                         f"{nP['median']:.1f} ({nP['min']:.3g}-{nP['max']:.3g})",
                         f"{100 * nn['median'] / nP['median']:.0f}%",
                         f"{min(loads):.1f}-{max(loads):.1f}"])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    header = ["case", "M x K x N", "threads", "nncore GFLOP/s (min-max)",
              "numpy GFLOP/s (min-max)", "nncore/numpy (medians)", "1-min load"]
    text = (f"## GEMM (bench/bench_gemm.py)\n\n{machine_header()}\n\n"
            f"Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_gemm.py`"
            f"{' --quick' if args.quick else ''}; the libraries alternate in blocks (nncore, "
            f"numpy, nncore, numpy, ...: {rounds} blocks each of {reps} samples of >= 20 ms, each "
            "block after a 0.3 s pause and one warm-up call); median of the "
            f"{rounds * reps} samples with their range; 1-min load average at the blocks' starts "
            "(2 cores: above ~0.5 means contention).\n\n"
            + markdown_table(header, rows) + "\n")
    pathlib.Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
