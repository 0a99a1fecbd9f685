"""Layer benchmarks: nncore vs PyTorch on the same machine, in the same run.

    flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        PYTHONPATH=python python bench/bench_layers.py [--section conv|rnn|all] [--reps 30]

One function per section (bench_conv, ...); each returns markdown lines, printed and written to
bench/results_layers_<section>.md. Times are medians of --reps runs after warm-up, in milliseconds;
ratio = nncore / PyTorch (below 1.0: nncore is faster). PyTorch runs its native NCHW layout.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

import nncore
from nncore import kernels as ops

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import load_1min, machine_header, openblas_env_warning, spread  # noqa: E402


def median_ms(*fns, reps: int, block: int = 5) -> list:
    """spread() of each function's wall time (ms) over `reps` calls. The functions take turns in
    blocks of `block` calls (the first of each block untimed, to warm the caches as a training loop
    would), so a burst of load from elsewhere on the machine hits all of them alike."""
    times = [[] for _ in fns]
    while len(times[0]) < reps:
        for fn, t in zip(fns, times):
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                t.append(time.perf_counter() - t0)
    return [spread([1e3 * x for x in t]) for t in times]


def cell(s: dict) -> str:
    """'median [q1-q3]' in ms."""
    return f"{s['median']:.3f} [{s['q1']:.3f}-{s['q3']:.3f}]"


def header(threads: int) -> list:
    import torch

    return [f"{machine_header()}; nncore {threads} threads, torch {torch.__version__} "
            f"{torch.get_num_threads()} threads", ""]


# ------------------------------------------------------------------------------------------ conv
# The Keras MNIST CNN's feature extractor: (name, kind, config, input HWC).
MNIST_CNN = [
    ("conv1 32@3x3 relu", "conv", dict(filters=32, k=3), (28, 28, 1)),
    ("maxpool1 2x2", "pool", dict(pool=2), (26, 26, 32)),
    ("conv2 64@3x3 relu", "conv", dict(filters=64, k=3), (13, 13, 32)),
    ("maxpool2 2x2", "pool", dict(pool=2), (11, 11, 64)),
    ("conv3 64@3x3 relu", "conv", dict(filters=64, k=3), (5, 5, 64)),
]


def _nncore_layer(kind, cfg, x, first, rng):
    """(forward, forward_backward) closures for one layer on input x (NHWC)."""
    if kind == "conv":
        w = (rng.standard_normal((cfg["k"], cfg["k"], x.shape[3], cfg["filters"])) * 0.1).astype(
            np.float32)
        b = np.zeros(cfg["filters"], np.float32)

        def fwd():
            return ops.conv2d(x, w, b, activation="relu")

        y = fwd()
        dy = np.ones_like(y)

        def fwd_bwd():
            yy = ops.conv2d(x, w, b, activation="relu")
            return ops.conv2d_backward(dy, x, w, y=yy, activation="relu", need_dx=not first)
        return fwd, fwd_bwd

    def fwd():
        return ops.max_pool2d(x, cfg["pool"])[0]

    dy = np.ones_like(fwd())

    def fwd_bwd():
        _, am = ops.max_pool2d(x, cfg["pool"])
        return ops.max_pool2d_backward(dy, am, x.shape)
    return fwd, fwd_bwd


def _torch_layer(kind, cfg, x, first, torch):
    F = torch.nn.functional
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    if kind == "conv":
        tw = (torch.randn(cfg["filters"], x.shape[3], cfg["k"], cfg["k"]) * 0.1).requires_grad_()
        tb = torch.zeros(cfg["filters"], requires_grad=True)
        op = lambda t: F.relu(F.conv2d(t, tw, tb))  # noqa: E731
    else:
        op = lambda t: F.max_pool2d(t, cfg["pool"])  # noqa: E731
    txg = tx.clone().requires_grad_(not first or kind != "conv")
    with torch.no_grad():
        dy = torch.ones_like(op(tx))

    def fwd():
        with torch.no_grad():
            return op(tx)

    def fwd_bwd():
        y = op(txg)
        y.backward(dy)
    return fwd, fwd_bwd


def _stack(x, rng, torch):
    """Whole conv stack fwd+bwd (every layer chained), nncore and torch closures."""
    F = torch.nn.functional
    shapes = [(3, 3, 1, 32), (3, 3, 32, 64), (3, 3, 64, 64)]
    ws = [(rng.standard_normal(s) * 0.1).astype(np.float32) for s in shapes]
    bs = [np.zeros(s[3], np.float32) for s in shapes]

    def nn_step():
        a0 = x
        y1 = ops.conv2d(a0, ws[0], bs[0], activation="relu")
        p1, am1 = ops.max_pool2d(y1, 2)
        y2 = ops.conv2d(p1, ws[1], bs[1], activation="relu")
        p2, am2 = ops.max_pool2d(y2, 2)
        y3 = ops.conv2d(p2, ws[2], bs[2], activation="relu")
        g = np.ones_like(y3)
        g, _, _ = ops.conv2d_backward(g, p2, ws[2], y=y3, activation="relu")
        g = ops.max_pool2d_backward(g, am2, y2.shape)
        g, _, _ = ops.conv2d_backward(g, p1, ws[1], y=y2, activation="relu")
        g = ops.max_pool2d_backward(g, am1, y1.shape)
        ops.conv2d_backward(g, a0, ws[0], y=y1, activation="relu", need_dx=False)

    tws = [torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).requires_grad_() for w in ws]
    tbs = [torch.zeros(s[3], requires_grad=True) for s in shapes]
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def torch_step():
        h = F.relu(F.conv2d(tx, tws[0], tbs[0]))
        h = F.max_pool2d(h, 2)
        h = F.relu(F.conv2d(h, tws[1], tbs[1]))
        h = F.max_pool2d(h, 2)
        h = F.relu(F.conv2d(h, tws[2], tbs[2]))
        h.sum().backward()
    return nn_step, torch_step


def bench_conv(args) -> list:
    import torch

    torch.set_num_threads(args.threads)
    nncore.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    lines = ["## Conv/pool layers of the Keras MNIST CNN (forward; forward+backward)", "",
             f"Medians [interquartile range] of {args.reps} reps taken in alternating warm "
             "blocks of 5, ms; ratio = "
             "nncore / torch (< 1: nncore faster). nncore NHWC, torch NCHW (its native layout). "
             "f+b of conv1 skips dx "
             "(need_dx=False / input without grad), as in training.", "",
             "Command: `flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
             f"PYTHONPATH=python python bench/bench_layers.py --section conv --reps {args.reps} "
             f"--threads {args.threads}`", ""]
    lines += header(args.threads)
    lines += ["| batch | layer | nncore fwd ms | torch fwd ms | ratio | nncore f+b ms | "
              "torch f+b ms | ratio | 1-min load |", "|---|---|---|---|---|---|---|---|---|"]
    for batch in args.batches:
        for idx, (name, kind, cfg, hwc) in enumerate(MNIST_CNN):
            x = rng.standard_normal((batch, *hwc)).astype(np.float32)
            if kind == "pool":
                x = np.maximum(x, 0)
            nf, nfb = _nncore_layer(kind, cfg, x, idx == 0, rng)
            tf, tfb = _torch_layer(kind, cfg, x, idx == 0, torch)
            load = load_1min()
            r = median_ms(nf, tf, reps=args.reps) + median_ms(nfb, tfb, reps=args.reps)
            m = [s["median"] for s in r]
            lines.append(f"| {batch} | {name} | {cell(r[0])} | {cell(r[1])} | {m[0] / m[1]:.2f} | "
                         f"{cell(r[2])} | {cell(r[3])} | {m[2] / m[3]:.2f} | {load:.1f} |")
            print(lines[-1], flush=True)
        x = rng.standard_normal((batch, 28, 28, 1)).astype(np.float32)
        ns, ts = _stack(x, rng, torch)
        load = load_1min()
        sa, sb = median_ms(ns, ts, reps=args.reps)
        a, b = sa["median"], sb["median"]
        lines.append(f"| {batch} | **conv stack f+b** (all 5 layers) | | | | {cell(sa)} | "
                     f"{cell(sb)} | {a / b:.2f} ({b / a:.2f}x faster) | {load:.1f} |")
        print(lines[-1], flush=True)
    return lines


def bench_rnn(args):
    """SimpleRNN/LSTM/GRU(128) forward+backward at MNIST-as-sequences shapes (bench_rnn.py)."""
    import bench_rnn as rnn

    nncore.set_num_threads(args.threads)
    table = rnn.format_table(rnn.run_rnn_section())
    return ["## Recurrent layers (batch 32, 28 steps x 28 features, forward+backward)", "",
            machine_header(), "",
            "Command: `flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
            f"PYTHONPATH=python python bench/bench_layers.py --section rnn --threads {args.threads}`;"
            " medians of 200 interleaved rounds.", "", table]


SECTIONS = {"conv": bench_conv, "rnn": bench_rnn}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--section", choices=sorted(SECTIONS) + ["all"], default="all")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    names = sorted(SECTIONS) if args.section == "all" else [args.section]
    for name in names:
        lines = SECTIONS[name](args)
        text = "\n".join(lines) + "\n"
        print(text)
        if not args.no_write:
            (HERE / f"results_layers_{name}.md").write_text(text)
    warning = openblas_env_warning()
    if warning:
        print(warning)


if __name__ == "__main__":
    main()
