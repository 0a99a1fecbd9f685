"""Keras step masks and GRU reset_after=False in the C++ recurrent time loops (nncore.kernels.rnn
mask= / gru(reset_after=False)): against the NumPy loop of layers/masked_rnn.py run in float64 (its
reference twin) for every cell, with and without dropout masks; a masked row equals the unmasked
kernel run on its unmasked steps only (initial states included); finite differences; 1 vs 2
threads bitwise; inference; bad masks; and the layers taking the C++ loop for masked inputs and
GRU(reset_after=False), trained against the NumPy loop and against Keras."""

from __future__ import annotations

import numpy as np
import pytest

import nncore
from nncore import _core
from nncore import kernels as ops
from nncore import layers

from _layer_checks import RNN_GATES, rnn_inputs, rnn_twin
from conftest import require

CELLS = ["simple_tanh", "simple_relu", "lstm", "gru", "gru_reset_before"]
DROP = ["none", "rec", "in_rec"]


def step_mask(rng, bsz, steps):
    """Rows: leading, trailing and middle padding, all masked, none masked, then random."""
    m = rng.random((bsz, steps)) > 0.35
    m[0] = np.arange(steps) >= 3          # leading
    m[1] = np.arange(steps) < steps - 3   # trailing
    m[2] = True
    m[2, 2:4] = False                     # middle
    m[3] = False                          # all masked
    m[4] = True                           # none masked
    return m


def drop_masks(cell, rng, kind, bsz, feat, units):
    g = RNN_GATES[cell]
    im = rm = None
    if kind == "in_rec":
        im = ((rng.random((g, bsz, feat)) >= 0.3) / 0.7).astype(np.float32)
    if kind in ("rec", "in_rec"):
        rm = ((rng.random((g, bsz, units)) >= 0.4) / 0.6).astype(np.float32)
    return im, rm


def run(cell, x, w, u, b, seq, mask, in_masks=None, rec_masks=None, h0=None, c0=None,
        training=True):
    kw = dict(return_sequences=seq, training=training, in_masks=in_masks, rec_masks=rec_masks,
              mask=mask)
    if cell.startswith("simple"):
        return ops.simple_rnn(x, w, u, b, h0, activation=cell.split("_")[1], **kw)
    if cell == "lstm":
        return ops.lstm(x, w, u, b, h0, c0, **kw)
    return ops.gru(x, w, u, b, h0, reset_after=cell == "gru", **kw)


def run_backward(cell, dout, cache):
    """(dx, dh0, dw, du, db)"""
    if cell == "lstm":
        dx, dh0, _, dw, du, db = ops.lstm_backward(dout, cache)
    else:
        fn = ops.simple_rnn_backward if cell.startswith("simple") else ops.gru_backward
        dx, dh0, dw, du, db = fn(dout, cache)
    return dx, dh0, dw, du, db


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("drop", DROP)
@pytest.mark.parametrize("seq", [False, True])
def test_masked_matches_float64_numpy_loop(cell, drop, seq, rng, isa):
    bsz, steps, feat, units = 7, 9, 3, 13  # odd sizes: partial micro-tiles everywhere
    x, w, u, b = rnn_inputs(cell, rng, bsz, steps, feat, units)
    mask = step_mask(rng, bsz, steps)
    im, rm = drop_masks(cell, rng, drop, bsz, feat, units)
    out, cache = run(cell, x, w, u, b, seq, mask, im, rm)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx, _, dw, du, db = run_backward(cell, dout, cache)
    want = rnn_twin(cell, x, w, u, b, seq, mask, im, rm, dout)
    for name, g, r in zip(("out", "dx", "dw", "du", "db"), (out, dx, dw, du, db), want):
        assert g.dtype == np.float32 and g.shape == r.shape, name
        np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-5, err_msg=name)
    # Keras's semantics, read off directly: masked steps get no input gradient, the all-masked row
    # stays at the zero initial state, and with return_sequences a masked step repeats the state
    assert not dx[~mask].any() and dx[mask].any()
    assert not out[3].any()
    if seq:
        np.testing.assert_array_equal(out[1, steps - 3:], np.broadcast_to(out[1, steps - 4],
                                                                           (3, units)))
        np.testing.assert_array_equal(out[2, 2:4], np.broadcast_to(out[2, 1], (2, units)))
        assert not out[0, :3].any()
    # the mask really enters: without it the result differs
    plain = run(cell, x, w, u, b, seq, None, im, rm)[0]
    assert not np.allclose(plain, out, atol=1e-3)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("drop", ["none", "rec"])
def test_masked_row_equals_its_unmasked_steps_alone(cell, drop, rng):
    """With initial states: each row's final state, the gradients of its unmasked steps and of its
    initial states equal the unmasked kernel run on that row's unmasked steps alone; the weight
    gradients are the sums over rows; the masked steps' dx is zero."""
    bsz, steps, feat, units = 5, 8, 4, 6
    x, w, u, b = rnn_inputs(cell, rng, bsz, steps, feat, units)
    mask = step_mask(rng, bsz, steps)
    mask[3, 5] = True  # one live step in the otherwise all-masked row
    _, rm = drop_masks(cell, rng, drop, bsz, feat, units)
    h0 = rng.standard_normal((bsz, units)).astype(np.float32)
    c0 = rng.standard_normal((bsz, units)).astype(np.float32) if cell == "lstm" else None
    dout = rng.standard_normal((bsz, units)).astype(np.float32)
    dcl = rng.standard_normal((bsz, units)).astype(np.float32)
    kw = dict(return_cell_state=True) if cell == "lstm" else {}
    res = (ops.lstm(x, w, u, b, h0, c0, training=True, mask=mask, rec_masks=rm, **kw)
           if cell == "lstm" else run(cell, x, w, u, b, False, mask, None, rm, h0))
    out, cache = res[0], res[-1]
    if cell == "lstm":
        dx, dh0, dc0, dw, du, db = ops.lstm_backward(dout, cache, dc_last=dcl)
    else:
        dx, dh0, dw, du, db = run_backward(cell, dout, cache)
    sums = [np.zeros_like(a, dtype=np.float64) for a in (dw, du, db)]
    for r in range(bsz):
        keep = mask[r]
        if not keep.any():
            continue
        xr = np.ascontiguousarray(x[r:r + 1, keep])
        rmr = None if rm is None else np.ascontiguousarray(rm[:, r:r + 1])
        if cell == "lstm":
            o, c_r, cr = ops.lstm(xr, w, u, b, h0[r:r + 1], c0[r:r + 1], training=True,
                                  rec_masks=rmr, return_cell_state=True)
            np.testing.assert_allclose(res[1][r], c_r[0], rtol=1e-5, atol=1e-6)
            gx, gh, gc, gw, gu, gb = ops.lstm_backward(dout[r:r + 1], cr, dc_last=dcl[r:r + 1])
            np.testing.assert_allclose(dc0[r], gc[0], rtol=1e-4, atol=1e-5)
        else:
            o, cr = run(cell, xr, w, u, b, False, None, None, rmr, h0[r:r + 1])
            gx, gh, gw, gu, gb = run_backward(cell, dout[r:r + 1], cr)
        np.testing.assert_allclose(out[r], o[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dx[r, keep], gx[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(dh0[r], gh[0], rtol=1e-4, atol=1e-5)
        for s_, g in zip(sums, (gw, gu, gb)):
            s_ += g
    assert not dx[~mask].any()
    for name, g, s_ in zip(("dw", "du", "db"), (dw, du, db), sums):
        np.testing.assert_allclose(g, s_, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("drop", ["none", "in_rec"])
def test_masked_finite_differences(cell, drop, rng):
    bsz, steps, feat, units = 5, 6, 3, 4
    x, w, u, b = rnn_inputs(cell, rng, bsz, steps, feat, units, scale=1.0)
    mask = step_mask(rng, bsz, steps)
    im, rm = drop_masks(cell, rng, drop, bsz, feat, units)
    h0 = rng.standard_normal((bsz, units)).astype(np.float32)
    out, cache = run(cell, x, w, u, b, True, mask, im, rm, h0)
    wts = rng.standard_normal(out.shape)
    dx, dh0, dw, du, db = run_backward(cell, wts.astype(np.float32), cache)
    args = [x, w, u, b, h0]
    grads = [dx, dw, du, db, dh0]
    eps = 2e-3 if cell == "simple_relu" else 1e-2  # relu: fewer kinks inside the interval
    for k, (a, g) in enumerate(zip(args, grads)):
        flat = a.reshape(-1)
        for idx in rng.choice(flat.size, size=min(10, flat.size), replace=False):
            old = flat[idx]
            vals = []
            for v in (old + eps, old - eps):
                flat[idx] = v
                y = run(cell, x, w, u, b, True, mask, im, rm, h0)[0]
                vals.append(float((np.float64(y) * wts).sum()))
            flat[idx] = old
            num = (vals[0] - vals[1]) / (2 * eps)
            assert abs(g.reshape(-1)[idx] - num) <= 2e-2 * max(1.0, abs(num)), (k, idx)


@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_reset_before"])
def test_deeper_than_gemm_blocks(cell, rng, isa):
    """Units and features past the GEMM's K block: GRU reset_before's (U, 2U) and U_h packs."""
    x, w, u, b = rnn_inputs(cell, rng, 6, 4, 300, 272)
    mask = step_mask(rng, 6, 4)
    out, cache = run(cell, x, w, u, b, True, mask)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx, _, dw, du, db = run_backward(cell, dout, cache)
    want = rnn_twin(cell, x, w, u, b, True, mask, None, None, dout)
    for name, g, r in zip(("out", "dx", "dw", "du", "db"), (out, dx, dw, du, db), want):
        np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("drop", ["none", "in_rec"])
def test_one_vs_two_threads_bitwise(cell, drop, rng, threads, isa):
    bsz, units = 37, 80  # large enough that the recurrence runs on two threads (test_rnn.py)
    x, w, u, b = rnn_inputs(cell, rng, bsz, 9, 11, units)
    mask = step_mask(rng, bsz, 9)
    im, rm = drop_masks(cell, rng, drop, bsz, 11, units)
    h0 = rng.standard_normal((bsz, units)).astype(np.float32)
    results = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        out, cache = run(cell, x, w, u, b, True, mask, im, rm, h0)
        dout = np.linspace(-1, 1, out.size, dtype=np.float32).reshape(out.shape)
        inf = run(cell, x, w, u, b, False, mask, im, rm, h0, training=False)[0]
        results.append((out, inf, *run_backward(cell, dout, cache)))
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("seq", [False, True])
def test_inference_equals_training_forward(cell, seq, rng):
    """training=False keeps two state slots (ping-pong): same outputs, LSTM same final c."""
    x, w, u, b = rnn_inputs(cell, rng, 6, 7, 3, 5)
    mask = step_mask(rng, 6, 7)
    if cell == "lstm":
        a, ca, _ = ops.lstm(x, w, u, b, return_sequences=seq, mask=mask, return_cell_state=True)
        i, ci, cache = ops.lstm(x, w, u, b, return_sequences=seq, mask=mask, training=False,
                                return_cell_state=True)
        np.testing.assert_array_equal(ca, ci)
    else:
        a = run(cell, x, w, u, b, seq, mask)[0]
        i, cache = run(cell, x, w, u, b, seq, mask, training=False)
    assert cache is None
    np.testing.assert_array_equal(a, i)


def test_all_true_mask_is_the_unmasked_loop_and_masks_of_any_int_dtype(rng):
    x, w, u, b = rnn_inputs("gru", rng, 6, 5, 3, 6)
    plain = ops.gru(x, w, u, b)[0]
    np.testing.assert_array_equal(ops.gru(x, w, u, b, mask=np.ones((6, 5), bool))[0], plain)
    mask = step_mask(rng, 6, 5)
    want = ops.gru(x, w, u, b, mask=mask)[0]
    np.testing.assert_array_equal(ops.gru(x, w, u, b, mask=mask.astype(np.int64))[0], want)
    np.testing.assert_array_equal(ops.gru(x, w, u, b, mask=np.asfortranarray(mask))[0], want)


def test_empty_batch_with_mask(rng):
    x, w, u, b = rnn_inputs("lstm", rng, 0, 5, 3, 4)
    out, cache = ops.lstm(x, w, u, b, return_sequences=True, mask=np.zeros((0, 5), bool))
    assert out.shape == (0, 5, 4)
    dx, dh0, dc0, dw, du, db = ops.lstm_backward(out, cache)
    assert dx.shape == (0, 5, 3) and not dw.any() and not du.any() and not db.any()


def test_bad_masks_and_biases_are_clear_errors(rng):
    x, w, u, b = rnn_inputs("lstm", rng, 2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"lstm: mask must have shape \(batch, timesteps\)"):
        ops.lstm(x, w, u, b, mask=np.ones((2, 4), bool))
    with pytest.raises(TypeError, match="lstm: mask must be a boolean"):
        ops.lstm(x, w, u, b, mask=np.ones((2, 3), np.float32))
    # the binding checks again, whoever calls it
    code = _core.rnn_cell_codes["lstm"]
    with pytest.raises(TypeError, match="mask must be a bool or uint8 array"):
        _core.rnn_forward(code, x, w, u, b, None, None, False, True, mask=np.ones((2, 3), np.int32))
    with pytest.raises(ValueError, match="mask must have shape"):
        _core.rnn_forward(code, x, w, u, b, None, None, False, True, mask=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="mask must be C-contiguous"):
        _core.rnn_forward(code, x, w, u, b, None, None, False, True,
                          mask=np.ones((2, 6), bool)[:, ::2])
    xg, wg, ug, bg = rnn_inputs("gru", rng, 2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"gru: bias must have shape \(15,\)"):
        ops.gru(xg, wg, ug, bg, reset_after=False)
    with pytest.raises(ValueError, match=r"gru: bias must have shape \(2, 15\)"):
        ops.gru(xg, wg, ug, bg[0])


# ---- the layers: masks and GRU reset_after=False take the C++ loop ----------------------------

def _pair(name, rng, shape=(None, 7, 3), **kw):
    """The same layer twice, identical weights and seed; the second forced onto the NumPy loop."""
    lays = []
    for _ in range(2):
        lay = getattr(layers, name)(6, seed=5, **kw)
        lay._maybe_build(shape)
        lays.append(lay)
    lays[0].set_weights([(0.5 * rng.standard_normal(v.shape)).astype(np.float32)
                         for v in lays[0].get_weights()])
    lays[1].set_weights(lays[0].get_weights())
    lays[1]._fast = False
    return lays


def _grads(lay, ys, ctx):
    r = np.random.default_rng(3)
    dys = [r.standard_normal(y.shape).astype(np.float32) for y in ys]
    lay._zero_grads()
    dx = lay.backward(ctx, dys if len(ys) > 1 else dys[0])
    lay._finish_grads()
    return [dx] + [g.copy() for g in lay.grads]


@pytest.mark.parametrize("name,kw", [
    ("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False}), ("SimpleRNN", {}),
    ("SimpleRNN", {"activation": "relu", "return_sequences": True}),
    ("GRU", {"reset_after": False, "return_sequences": True, "go_backwards": True}),
    ("LSTM", {"return_state": True, "return_sequences": True}),
    ("LSTM", {"return_state": True, "go_backwards": True, "dropout": 0.3}),
    ("GRU", {"reset_after": False, "recurrent_dropout": 0.25, "dropout": 0.2}),
    ("LSTM", {"recurrent_dropout": 0.25, "return_sequences": True}),
])
@pytest.mark.parametrize("masked", [False, True])
def test_layer_takes_the_c_loop_and_matches_the_numpy_loop(name, kw, masked, rng):
    fast, slow = _pair(name, rng, **kw)
    x = rng.standard_normal((5, 7, 3)).astype(np.float32)
    mask = step_mask(rng, 5, 7) if masked else None
    yf, cf = fast.forward(x, training=True, need_ctx=True, mask=mask)
    ys, cs = slow.forward(x, training=True, need_ctx=True, mask=mask)  # same seed: same masks
    assert cf[0] == "fast" and cs[0] == "loop"
    yf = yf if isinstance(yf, list) else [yf]
    ys = ys if isinstance(ys, list) else [ys]
    for a, c in zip(yf, ys):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    for a, c in zip(_grads(fast, yf, cf), _grads(slow, ys, cs)):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)


def _text_data(rng, n=48, steps=50, vocab=1000):
    """Token ids with ~30% padding (0), before or after the tokens."""
    tok = rng.integers(1, vocab, size=(n, steps)).astype(np.int32)
    for i in range(n):
        pad = int(rng.integers(0, int(0.6 * steps)))
        if i % 2:
            tok[i, :pad] = 0
        else:
            tok[i, steps - pad:] = 0
    y = (tok[:, :10].astype(np.float32).mean(axis=1, keepdims=True) / vocab).astype(np.float32)
    return tok, y


def _text_model(rnn, vocab=60, steps=12, dim=5):
    return nncore.Sequential([nncore.Input((steps,), dtype="int32"),
                              layers.Embedding(vocab, dim, mask_zero=True), rnn,
                              layers.Dense(1)])


def _rnn_layers(model):
    """The recurrent layers of a model, Bidirectional's two directions included."""
    out = []
    for lay in model.layers:
        out += [lay.forward_layer, lay.backward_layer] if hasattr(lay, "forward_layer") else [lay]
    return [lay for lay in out if hasattr(lay, "_fast")]


@pytest.mark.parametrize("rnn", ["lstm", "gru_reset_before", "bidirectional_gru_reset_before"])
def test_masked_model_trains_like_the_numpy_loop(rnn, rng):
    def make_rnn():
        if rnn == "lstm":
            return layers.LSTM(7)
        g = layers.GRU(7, reset_after=False)
        return layers.Bidirectional(g) if rnn.startswith("bi") else g

    tok, y = _text_data(rng, n=32, steps=12, vocab=60)
    models = [_text_model(make_rnn()) for _ in range(2)]
    models[1].set_weights(models[0].get_weights())
    for lay in _rnn_layers(models[1]):
        lay._fast = False
    seen = []
    for m in models:
        m.compile(nncore.optimizers.Adam(0.01), "mse")
        for lay in _rnn_layers(m):
            orig = lay.forward

            def spy(*a, _orig=orig, **k):
                y_, ctx = _orig(*a, **k)
                if ctx is not None:
                    seen.append(ctx[0])
                return y_, ctx
            lay.forward = spy
        m.fit(tok, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    n = len(seen) // 2
    assert n == 12 * len(_rnn_layers(models[0]))  # 3 epochs of 4 steps, per recurrent layer
    assert set(seen[:n]) == {"fast"} and set(seen[n:]) == {"loop"}
    for a, c in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, c, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("rnn", ["lstm", "gru_reset_before"])
def test_masked_model_trains_like_keras(rnn, rng):
    require("tensorflow")
    import keras

    def pair():
        if rnn == "lstm":
            return layers.LSTM(7), keras.layers.LSTM(7)
        return layers.GRU(7, reset_after=False), keras.layers.GRU(7, reset_after=False)

    tok, y = _text_data(rng, n=32, steps=12, vocab=60)
    ours_rnn, their_rnn = pair()
    ours = _text_model(ours_rnn)
    theirs = keras.Sequential([keras.Input((12,), dtype="int32"),
                               keras.layers.Embedding(60, 5, mask_zero=True), their_rnn,
                               keras.layers.Dense(1)])
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(tok, verbose=0), theirs.predict(tok, verbose=0),
                               rtol=1e-5, atol=1e-6)
    ours.compile(nncore.optimizers.SGD(0.5), "mse")
    theirs.compile(keras.optimizers.SGD(0.5), "mse")
    ours.fit(tok, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    theirs.fit(tok, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    for a, c in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.predict(tok, verbose=0), theirs.predict(tok, verbose=0),
                               rtol=1e-4, atol=1e-5)
