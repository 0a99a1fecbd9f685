"""RNN section of the layer benchmarks: SimpleRNN/LSTM/GRU(128) forward+backward on
MNIST-as-sequences shapes (batch 32, 28 steps x 28 features), nncore vs PyTorch in the same run.

Run: flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
       PYTHONPATH=python python bench/bench_rnn.py
Writes bench/results_layers_rnn.md. Both libraries compute every gradient (input, weights, bias).
"""

from __future__ import annotations

import pathlib
import platform
import sys
import time

import numpy as np

import nncore
from nncore import kernels as ops

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _harness import load_1min, spread  # noqa: E402

BATCH, STEPS, FEATURES, UNITS = 32, 28, 28, 128
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def _median_seconds(fns, repeats=60, warmup=10):
    """spread() of each function's wall time (s), timed in interleaved rounds so that both
    libraries see the same machine load (this 2-core box is shared)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [spread(ts) for ts in times]


def _nncore_step(kind, rng):
    g = GATES[kind] * UNITS
    x = rng.standard_normal((BATCH, STEPS, FEATURES)).astype(np.float32)
    w = (rng.standard_normal((FEATURES, g)) * 0.1).astype(np.float32)
    u = (rng.standard_normal((UNITS, g)) * 0.1).astype(np.float32)
    b = np.zeros((2, g) if kind == "GRU" else (g,), np.float32)
    dout = np.ones((BATCH, UNITS), np.float32)
    fwd, bwd = {"SimpleRNN": (ops.simple_rnn, ops.simple_rnn_backward),
                "LSTM": (ops.lstm, ops.lstm_backward),
                "GRU": (ops.gru, ops.gru_backward)}[kind]

    def step():
        _, cache = fwd(x, w, u, b)
        bwd(dout, cache)

    return step


def _torch_step(torch, kind, rng):
    cls = {"SimpleRNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[kind]
    m = cls(FEATURES, UNITS, batch_first=True)
    x = torch.from_numpy(rng.standard_normal((BATCH, STEPS, FEATURES)).astype(np.float32))
    x.requires_grad_(True)
    dout = torch.ones(BATCH, UNITS)

    def step():
        m.zero_grad(set_to_none=True)
        x.grad = None
        y, _ = m(x)
        y[:, -1].backward(dout)

    return step


def run_rnn_section(repeats=200):
    """Rows (layer, nncore ms, torch ms or None, speed-up) for forward+backward of one batch."""
    rng = np.random.default_rng(0)
    try:
        import torch
        torch.set_num_threads(2)
    except ImportError:
        torch = None
    rows = []
    for kind in GATES:
        fns = [_nncore_step(kind, rng)] + ([_torch_step(torch, kind, rng)] if torch else [])
        load = load_1min()
        t_nn, t_pt = (_median_seconds(fns, repeats) + [None])[:2]
        rows.append((f"{kind}({UNITS}) fwd+bwd", t_nn, t_pt,
                     None if t_pt is None else t_pt["median"] / t_nn["median"],
                     (load, load_1min())))
    return rows


def format_table(rows):
    lines = [f"RNN layers, batch {BATCH}, {STEPS} steps x {FEATURES} features, median ms per "
             f"forward+backward; nncore {nncore.get_num_threads()} threads "
             f"({ops.get_isa()}), PyTorch 2 threads, {platform.machine()}",
             "",
             "| layer | nncore ms [IQR] | PyTorch ms [IQR] | speed-up (medians) "
             "| 1-min load (start, end) |",
             "|---|---:|---:|---:|---:|"]

    def ms(s):
        if s is None:
            return "-"
        return f"{1e3 * s['median']:.3f} [{1e3 * s['q1']:.3f}-{1e3 * s['q3']:.3f}]"
    for name, a, b, r, (l0, l1) in rows:
        lines.append(f"| {name} | {ms(a)} | {ms(b)} | {'-' if r is None else f'{r:.2f}x'} "
                     f"| {l0:.1f}, {l1:.1f} |")
    return "\n".join(lines)


COMMAND = ("flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
           "PYTHONPATH=python python bench/bench_rnn.py")

if __name__ == "__main__":
    table = format_table(run_rnn_section())
    print(table)
    out = pathlib.Path(__file__).with_name("results_layers_rnn.md")
    out.write_text(f"{table}\n\nMedians of 200 interleaved rounds; command: `{COMMAND}`\n")
