"""Two nncore builds side by side on the seed CNN's kernels (batch 32), a few square GEMMs and the
normalization / embedding-gradient kernels: the no-slowdown check for a C++ change on a noisy
machine.

Each build runs in its own worker process (PYTHONPATH --a / --b). The driver has them take turns,
case by case, in short blocks (only one runs at a time), --blocks times, and prints the median
time per call of each and the ratio b / a (below 1.0: b is faster).

    flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python bench/bench_ab.py --a /path/to/old/python --b python
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def cases():
    """name -> function of the nncore package returning a zero-argument call."""
    rng = np.random.default_rng(0)

    def f32(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    out = {}

    def gemm(m, n, k):
        a, b, c = f32(m, k), f32(k, n), np.empty((m, n), np.float32)
        return lambda core: (lambda: core.sgemm(c, a, b))

    for name, (m, n, k) in {"gemm 256^3": (256, 256, 256), "gemm 1024^3": (1024, 1024, 1024),
                            "dense1 fwd 32x576x64": (32, 64, 576),
                            "dense1 dW 576x32x64": (576, 64, 32),
                            "dense1 dX 32x64x576": (32, 576, 64)}.items():
        out[name] = gemm(m, n, k)

    def conv(n, h, c, f, backward):
        x, w, b = f32(n, h, h, c), f32(3, 3, c, f), f32(f)

        def make(core):
            y = core.conv2d_forward(x, w, b, (1, 1), False, (1, 1), True)
            dy = f32(*y.shape)
            if backward:
                return lambda: core.conv2d_backward(dy, x, w, y, (1, 1), False, (1, 1), True,
                                                    c > 1, True)
            return lambda: core.conv2d_forward(x, w, b, (1, 1), False, (1, 1), True)
        return make

    for i, (h, c, f) in enumerate([(28, 1, 32), (13, 32, 64), (5, 64, 64)]):
        out[f"conv{i + 1} fwd"] = conv(32, h, c, f, False)
        out[f"conv{i + 1} bwd"] = conv(32, h, c, f, True)

    def pool(h, c):
        x = np.abs(f32(32, h, h, c))
        return lambda core: (lambda: core.maxpool2d_forward(x, (2, 2), (2, 2), False))

    out["maxpool1 fwd"] = pool(26, 32)
    out["maxpool2 fwd"] = pool(11, 64)

    # Normalization and the embedding gradient (rows = batch x positions, the layers' 2-D view).
    def norm(kind, m, c):
        x, dy, g, b = f32(m, c), f32(m, c), f32(c), f32(c)

        def make(core):
            if kind == "bn fwd":
                return lambda: core.batchnorm_forward_train(x, g, b, 1e-3)
            if kind == "bn bwd":
                _, mean, _, inv = core.batchnorm_forward_train(x, g, b, 1e-3)
                return lambda: core.batchnorm_backward_train(dy, x, mean, inv, g)
            if kind == "ln fwd":
                return lambda: core.layernorm_forward(x, g, b, 1e-3)
            _, mean, inv = core.layernorm_forward(x, g, b, 1e-3)
            return lambda: core.layernorm_backward(dy, x, mean, inv, g)
        return make

    out["batchnorm fwd 21632x32"] = norm("bn fwd", 32 * 26 * 26, 32)
    out["batchnorm bwd 21632x32"] = norm("bn bwd", 32 * 26 * 26, 32)
    out["layernorm fwd 4096x256"] = norm("ln fwd", 4096, 256)
    out["layernorm bwd 4096x256"] = norm("ln bwd", 4096, 256)

    def embedding(n, v, d):
        idx = rng.integers(0, v, n).astype(np.int64)
        dy, de = f32(n, d), np.zeros((v, d), np.float32)
        return lambda core: (lambda: core.embedding_backward(de, idx, dy, False))

    out["embedding bwd 8192x(1000,128)"] = embedding(8192, 1000, 128)
    return out


def worker(threads: int) -> None:
    from nncore import _core

    _core.set_num_threads(threads)
    calls = {name: make(_core) for name, make in cases().items()}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        name, seconds = line.rstrip("\n").rsplit(" ", 1)
        fn = calls[name]
        fn()
        times, t_end = [], time.perf_counter() + float(seconds)
        while time.perf_counter() < t_end or len(times) < 3:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        print(json.dumps(times), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, help="PYTHONPATH of build a (the reference)")
    ap.add_argument("--b", required=True, help="PYTHONPATH of build b")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=6, help="turns per build and case")
    ap.add_argument("--block-time", type=float, default=0.25, help="seconds per turn")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.threads)
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from _harness import cpu_model, markdown_table

    procs = {}
    for tag, path in (("a", args.a), ("b", args.b)):
        procs[tag] = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--a", "-", "--b", "-", "--threads",
             str(args.threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=str(pathlib.Path(path).resolve())))
        json.loads(procs[tag].stdout.readline())
    rows = []
    for name in cases():
        samples = {"a": [], "b": []}
        for block in range(args.blocks):
            for tag in (("a", "b") if block % 2 == 0 else ("b", "a")):
                procs[tag].stdin.write(f"{name} {args.block_time}\n")
                procs[tag].stdin.flush()
                samples[tag] += json.loads(procs[tag].stdout.readline())
        ma, mb = statistics.median(samples["a"]), statistics.median(samples["b"])
        rows.append([name, f"{ma * 1e3:.3f}", f"{mb * 1e3:.3f}", f"{mb / ma:.2f}"])
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    for p in procs.values():
        p.stdin.close()
        p.wait()
    print(f"CPU {cpu_model()} ({os.cpu_count()} cores), {args.threads} threads, median ms per "
          f"call over {args.blocks} alternating turns of {args.block_time} s each; load average "
          f"{os.getloadavg()[0]:.1f}; a = {args.a}, b = {args.b}")
    print(markdown_table(["case", "a ms", "b ms", "b / a"], rows))


if __name__ == "__main__":
    main()
