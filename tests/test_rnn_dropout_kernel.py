"""Dropout inside the C++ recurrent time loops (nncore.kernels.rnn in_masks / rec_masks, Keras 3's
per-gate cell): against the NumPy loop of layers/masked_rnn.py run in float64 (its reference twin),
finite differences with fixed masks, every ISA here, 1 vs 2 threads bitwise, and the layers taking
the C++ loop with recurrent_dropout in training (go_backwards, return_state, Bidirectional)."""

from __future__ import annotations

import numpy as np
import pytest

import nncore
from nncore import kernels as ops
from nncore import layers
from _layer_checks import RNN_GATES, rnn_inputs, rnn_twin

CELLS = ["simple_tanh", "simple_relu", "lstm", "gru"]
# (input masks, recurrent masks): the layers pass per-gate input masks only with recurrent dropout,
# but the kernel takes either alone.
MASKS = [(False, True), (True, True), (True, False)]


def drop_masks(rng, rate, shape):
    keep = rng.random(shape) >= rate
    return (keep / (1.0 - rate)).astype(np.float32)


def masks_for(cell, rng, bsz, feat, units, use_in, use_rec):
    g = RNN_GATES[cell]
    return (drop_masks(rng, 0.3, (g, bsz, feat)) if use_in else None,
            drop_masks(rng, 0.4, (g, bsz, units)) if use_rec else None)


def run(cell, x, w, u, b, seq, in_masks, rec_masks, h0=None):
    kw = dict(return_sequences=seq, training=True, in_masks=in_masks, rec_masks=rec_masks)
    if cell.startswith("simple"):
        return ops.simple_rnn(x, w, u, b, h0, activation=cell.split("_")[1], **kw)
    if cell == "lstm":
        return ops.lstm(x, w, u, b, h0, **kw)
    return ops.gru(x, w, u, b, h0, **kw)


def run_backward(cell, dout, cache):
    """(dx, dw, du, db)"""
    if cell == "lstm":
        dx, _, _, dw, du, db = ops.lstm_backward(dout, cache)
    else:
        fn = ops.gru_backward if cell == "gru" else ops.simple_rnn_backward
        dx, _, dw, du, db = fn(dout, cache)
    return dx, dw, du, db


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("use_in,use_rec", MASKS)
@pytest.mark.parametrize("seq", [False, True])
def test_matches_float64_numpy_loop(cell, use_in, use_rec, seq, rng, isa):
    bsz, steps, feat, units = 5, 7, 3, 13  # odd sizes: partial micro-tiles everywhere
    x, w, u, b = rnn_inputs(cell, rng, bsz, steps, feat, units)
    im, rm = masks_for(cell, rng, bsz, feat, units, use_in, use_rec)
    out, cache = run(cell, x, w, u, b, seq, im, rm)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    got = (out, *run_backward(cell, dout, cache))
    want = rnn_twin(cell, x, w, u, b, seq, None, im, rm, dout)
    for name, g, r in zip(("out", "dx", "dw", "du", "db"), got, want):
        assert g.dtype == np.float32 and g.shape == r.shape, name
        np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-5, err_msg=name)
    # the masks really enter: without them the result differs
    plain = run(cell, x, w, u, b, seq, None, None)[0]
    assert not np.allclose(plain, out, atol=1e-3)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_masks_deeper_than_gemm_blocks(cell, rng, isa):
    """Units and features past the GEMM's K block: the per-gate packed blocks of U."""
    x, w, u, b = rnn_inputs(cell, rng, 6, 4, 300, 272)
    im, rm = masks_for(cell, rng, 6, 300, 272, True, True)
    out, cache = run(cell, x, w, u, b, True, im, rm)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    got = (out, *run_backward(cell, dout, cache))
    want = rnn_twin(cell, x, w, u, b, True, None, im, rm, dout)
    for name, g, r in zip(("out", "dx", "dw", "du", "db"), got, want):
        np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_finite_differences_with_fixed_masks(cell, rng):
    bsz, steps, feat, units = 3, 5, 3, 4
    x, w, u, b = rnn_inputs(cell, rng, bsz, steps, feat, units, scale=1.0)
    im, rm = masks_for(cell, rng, bsz, feat, units, True, True)
    out, cache = run(cell, x, w, u, b, True, im, rm)
    wts = rng.standard_normal(out.shape)
    grads = run_backward(cell, wts.astype(np.float32), cache)
    args = [x, w, u, b]
    eps = 1e-2
    for k, (a, g) in enumerate(zip(args, grads)):
        flat = a.reshape(-1)
        for idx in rng.choice(flat.size, size=min(8, flat.size), replace=False):
            old = flat[idx]
            vals = []
            for v in (old + eps, old - eps):
                flat[idx] = v
                y = run(cell, *args, True, im, rm)[0]
                vals.append(float((np.float64(y) * wts).sum()))
            flat[idx] = old
            num = (vals[0] - vals[1]) / (2 * eps)
            assert abs(g.reshape(-1)[idx] - num) <= 2e-2 * max(1.0, abs(num)), (k, idx)


@pytest.mark.parametrize("cell", CELLS)
def test_one_vs_two_threads_bitwise(cell, rng, threads, isa):
    bsz, units = 37, 80  # large enough that the recurrence runs on two threads (test_rnn.py)
    x, w, u, b = rnn_inputs(cell, rng, bsz, 9, 11, units)
    im, rm = masks_for(cell, rng, bsz, 11, units, True, True)
    h0 = rng.standard_normal((bsz, units)).astype(np.float32)
    results = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        out, cache = run(cell, x, w, u, b, True, im, rm, h0)
        dout = np.linspace(-1, 1, out.size, dtype=np.float32).reshape(out.shape)
        results.append((out, *run_backward(cell, dout, cache)))
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


def test_bad_mask_shapes_are_clear_errors(rng):
    x, w, u, b = rnn_inputs("lstm", rng, 2, 3, 4, 5)
    with pytest.raises(ValueError, match="rec_masks must have shape"):
        ops.lstm(x, w, u, b, rec_masks=np.ones((1, 2, 5), np.float32))
    with pytest.raises(ValueError, match="in_masks must have shape"):
        ops.lstm(x, w, u, b, in_masks=np.ones((4, 2, 5), np.float32))


# ---- the layers: recurrent dropout in training runs the C++ loop, same numbers as the NumPy loop

def _pair(name, rng, **kw):
    """The same layer twice, identical weights and seed; the second forced onto the NumPy loop."""
    lays = []
    for _ in range(2):
        lay = getattr(layers, name)(6, seed=5, **kw)
        lay._maybe_build((None, 7, 3))
        lays.append(lay)
    lays[0].set_weights([(0.5 * rng.standard_normal(v.shape)).astype(np.float32)
                         for v in lays[0].get_weights()])
    lays[1].set_weights(lays[0].get_weights())
    lays[1]._fast = False
    return lays


def _grads(lay, x, ys, ctx, rng_seed=3):
    r = np.random.default_rng(rng_seed)
    dys = [r.standard_normal(y.shape).astype(np.float32) for y in ys]
    lay._zero_grads()
    dx = lay.backward(ctx, dys if isinstance(ys, list) and len(ys) > 1 else dys[0])
    lay._finish_grads()
    return [dx] + [g.copy() for g in lay.grads]


@pytest.mark.parametrize("name,kw", [
    ("LSTM", {}), ("GRU", {}), ("SimpleRNN", {}),
    ("LSTM", {"dropout": 0.3}), ("GRU", {"dropout": 0.3, "go_backwards": True}),
    ("LSTM", {"return_state": True, "return_sequences": True}),
    ("LSTM", {"return_state": True, "go_backwards": True}),
    ("SimpleRNN", {"dropout": 0.2, "return_sequences": True}),
])
def test_layer_fast_path_matches_numpy_loop(name, kw, rng):
    fast, slow = _pair(name, rng, recurrent_dropout=0.25, **kw)
    x = rng.standard_normal((4, 7, 3)).astype(np.float32)
    yf, cf = fast.forward(x, training=True, need_ctx=True)
    ys, cs = slow.forward(x, training=True, need_ctx=True)  # same seed: the same masks
    assert cf[0] == "fast" and cs[0] == "loop"
    yf = yf if isinstance(yf, list) else [yf]
    ys = ys if isinstance(ys, list) else [ys]
    for a, c in zip(yf, ys):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    for a, c in zip(_grads(fast, x, yf, cf), _grads(slow, x, ys, cs)):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)


def test_bidirectional_recurrent_dropout_trains_through_the_c_loop(rng):
    nncore.utils.set_random_seed(2)
    m = nncore.Sequential([nncore.Input((7, 3)),
                           layers.Bidirectional(layers.LSTM(5, recurrent_dropout=0.2)),
                           layers.Dense(1)])
    m.compile(nncore.optimizers.Adam(0.02), "mse")
    x = rng.standard_normal((32, 7, 3)).astype(np.float32)
    y = 0.3 * x[:, :, :1].sum(axis=1)
    bi = m.layers[0]
    seen = []
    for sub in (bi.forward_layer, bi.backward_layer):
        orig = sub._run

        def spy(*a, _orig=orig, **k):
            seen.append(a[3] is not None)  # rec_masks reached the C++ loop
            return _orig(*a, **k)
        sub._run = spy
    before = m.evaluate(x, y, verbose=0)  # inference: no masks
    assert seen and not any(seen)
    seen.clear()
    m.fit(x, y, epochs=8, batch_size=8, verbose=0)
    assert all(seen) and len(seen) == 2 * 8 * 4  # two directions, 8 epochs of 4 steps
    assert m.evaluate(x, y, verbose=0) < 0.7 * before


def test_mask_and_recurrent_dropout_together(rng):
    """mask_zero plus recurrent dropout (the C++ loop): padded steps carry the state over and the
    gradient stays finite and zero for the padded inputs."""
    emb = layers.Embedding(10, 3, mask_zero=True)
    lstm = layers.LSTM(4, recurrent_dropout=0.3, return_sequences=True, seed=1)
    m = nncore.Sequential([nncore.Input((6,), dtype="int32"), emb, lstm])
    tok = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9]], np.int32)
    y = m(tok, training=True)
    y = np.asarray(y)
    np.testing.assert_array_equal(y[0, 3:], np.broadcast_to(y[0, 2], (3, 4)))
    m.compile("sgd", "mse")
    m.fit(tok, np.zeros((2, 6, 4), np.float32), epochs=1, verbose=0)
    assert all(np.isfinite(w).all() for w in m.get_weights())
