"""Issue 11 layer benchmarks: nncore layers vs PyTorch modules at batch 32, forward and
forward+backward, side by side in one run (alternating blocks of calls).

    flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        PYTHONPATH=python python bench/bench_layers_more.py [--reps 30] [--only Conv1D]

Times are medians in milliseconds; ratio = nncore / PyTorch (below 1.0: nncore is faster).
PyTorch runs its native layouts (NCL / NCHW for convolutions, channels-first batch norm on
(N, C, H, W)); nncore runs channels last. Writes bench/results_layers_more.md (the full table
only: --only NAME runs the rows whose name contains NAME and writes nothing).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import nncore
import numpy as np
from nncore import layers

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import machine_header, openblas_env_warning  # noqa: E402
from bench_layers import cell, median_ms  # noqa: E402


def _ours(layer, x, training=True):
    layer._maybe_build((None,) + x.shape[1:])
    y, _ = layer.forward(x, training=training)
    dy = np.ones_like(np.asarray(y))

    def fwd():
        return layer.forward(x, training=training)

    def fwd_bwd():
        layer._zero_grads()
        out, ctx = layer.forward(x, training=training, need_ctx=True)
        return layer.backward(ctx, dy)

    return fwd, fwd_bwd


def _theirs(module, x, grad_input=True):
    import torch

    xt = torch.from_numpy(x)
    if grad_input and xt.is_floating_point():
        xt.requires_grad_(True)
    module.train()
    with torch.no_grad():
        dy = torch.ones_like(module(xt))

    def fwd():
        with torch.no_grad():
            return module(xt)

    def fwd_bwd():
        module.zero_grad(set_to_none=True)
        if xt.grad is not None:
            xt.grad = None
        out = module(xt)
        out.backward(dy)

    return fwd, fwd_bwd


def cases(rng):
    import torch
    from torch import nn

    n = 32
    x_img = rng.normal(size=(n, 32, 32, 64)).astype(np.float32)
    x_seq = rng.normal(size=(n, 100, 128)).astype(np.float32)
    x_tok = rng.integers(0, 10000, size=(n, 100)).astype(np.int64)
    x_dw = rng.normal(size=(n, 28, 28, 32)).astype(np.float32)
    x_rnn = rng.normal(size=(n, 50, 64)).astype(np.float32)

    def nchw(a):
        return np.ascontiguousarray(a.transpose(0, 3, 1, 2))

    def ncl(a):
        return np.ascontiguousarray(a.transpose(0, 2, 1))

    bilstm = nn.LSTM(64, 64, batch_first=True, bidirectional=True)

    class Last(nn.Module):  # Keras's Bidirectional(LSTM) without return_sequences
        def forward(self, x):
            return bilstm(x)[0][:, -1]

    return [
        ("BatchNormalization (32,32,32,64) train", layers.BatchNormalization(), x_img,
         nn.BatchNorm2d(64, eps=1e-3, momentum=0.01), nchw(x_img)),
        ("LayerNormalization (32,100,128)", layers.LayerNormalization(), x_seq,
         nn.LayerNorm(128, eps=1e-3), x_seq),
        ("Embedding 10000x128, (32,100)", layers.Embedding(10000, 128), x_tok,
         nn.Embedding(10000, 128), x_tok),
        ("Conv1D 128@5 same (32,100,128)", layers.Conv1D(128, 5, padding="same"), x_seq,
         nn.Conv1d(128, 128, 5, padding=2), ncl(x_seq)),
        ("DepthwiseConv2D 3x3 same (32,28,28,32)", layers.DepthwiseConv2D(3, padding="same"),
         x_dw, nn.Conv2d(32, 32, 3, padding=1, groups=32), nchw(x_dw)),
        ("Bidirectional LSTM 64 (32,50,64)", layers.Bidirectional(layers.LSTM(64)), x_rnn,
         Last(), x_rnn),
    ], torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--only", default=None, help="run only the rows whose name contains this")
    args = ap.parse_args()
    openblas_env_warning()
    rng = np.random.default_rng(0)
    rows, torch = cases(rng)
    lines = [f"{machine_header()}; nncore {nncore.get_num_threads()} threads, torch "
             f"{torch.__version__} {torch.get_num_threads()} threads", "",
             "| layer (batch 32) | pass | nncore ms, median [q1-q3] | torch ms, median [q1-q3] | ratio |",
             "|---|---|---|---|---|"]
    if args.only is not None:
        rows = [r for r in rows if args.only in r[0]]
    for name, ours, x, theirs, xt in rows:
        of, ofb = _ours(ours, x)
        tf_, tfb = _theirs(theirs, xt, grad_input=x.dtype.kind == "f")
        for label, a, b in (("forward", of, tf_), ("fwd+bwd", ofb, tfb)):
            mo, mt = median_ms(a, b, reps=args.reps)
            lines.append(f"| {name} | {label} | {cell(mo)} | {cell(mt)} | "
                         f"{mo['median'] / mt['median']:.2f} |")
            print(lines[-1], flush=True)
    if args.only is None:
        (HERE / "results_layers_more.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
