"""GFLOP/s of nncore's sgemm vs numpy (OpenBLAS) side by side, on 1 and 2 threads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_gemm.py [--reps 9] [--quick]

Square sizes, and the GEMMs of the Keras MNIST CNN's convolutions at batch 32 (im2col M x K x N)
with their backward products (dW = P^T dY: K x M x N with a long inner dimension; dP = dY W^T).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _harness import (  # noqa: E402
    machine_header,
    markdown_table,
    openblas_env_warning,
    sample_time,
)

import nncore  # noqa: E402
from nncore import ops  # noqa: E402

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


def bench_case(m, n, k, ta, tb, nt, reps):
    """Median GFLOP/s of nncore and numpy, each measured in its own block after a pause. Not
    interleaved sample by sample: OpenBLAS's idle threads spin for a long while after a call and
    libgomp's for a short one, so alternating calls would measure the two pools fighting over the
    two cores rather than either library."""
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

    medians = []
    with threadpool_limits(nt, user_api="blas"):
        for fn in (run_nn, run_np):
            time.sleep(0.3)  # let the other library's idle threads stop spinning
            sample_time(fn, min_time)  # warm-up
            medians.append(statistics.median(sample_time(fn, min_time) for _ in range(reps)))
    return flops / medians[0] / 1e9, flops / medians[1] / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="fewer sizes and reps (smoke run)")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).with_name("results_gemm.md")))
    args = ap.parse_args()
    if (w := openblas_env_warning()):
        print(w, file=sys.stderr)
    squares = [64, 256, 1024] if args.quick else [64, 128, 256, 512, 1024, 2048]
    reps = 3 if args.quick else args.reps
    cases = [(f"square {n}", n, n, n, False, False) for n in squares] + CNN
    rows = []
    for nt in (1, 2):
        for label, m, n, k, ta, tb in cases:
            g_nn, g_np = bench_case(m, n, k, ta, tb, nt, reps)
            rows.append([label, f"{m}x{k}x{n}", nt, f"{g_nn:.1f}", f"{g_np:.1f}",
                         f"{100 * g_nn / g_np:.0f}%"])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    header = ["case", "M x K x N", "threads", "nncore GFLOP/s", "numpy GFLOP/s", "nncore/numpy"]
    text = (f"## GEMM (bench/bench_gemm.py)\n\n{machine_header()}\n\n"
            f"Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_gemm.py`"
            f"{' --quick' if args.quick else ''}; median of {reps} samples of >= 20 ms each, each "
            "library in its own block after a 0.3 s pause.\n\n"
            + markdown_table(header, rows) + "\n")
    pathlib.Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
