"""RNN options: LSTM return_state (final cell state and its gradient through the C++ loop),
dropout / recurrent_dropout (Keras 3 semantics: masks drawn once per call, one per gate with
recurrent dropout, training only), GRU reset_after=False. Finite differences for every backward,
the C++ path against the NumPy loop, Keras 3 parity with the dropout masks injected into both."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from _layer_checks import fd_check
from conftest import require
from nncore import layers
from nncore.layers import masked_rnn

GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def _build(layer, shape, rng, scale=0.5):
    layer._maybe_build((None,) + tuple(shape[1:]))
    layer.set_weights([(scale * rng.normal(size=w.shape)).astype(np.float32)
                       for w in layer.get_weights()])
    return layer


def _fix_masks(layer, masks):
    """Make the layer draw the given dropout masks (in the order it draws them) on every call."""
    def draw(rate, shape):
        for m in masks:
            if m.shape == shape:
                return m
        raise AssertionError(f"no mask of shape {shape}")
    layer._drop_masks = draw


def _make_masks(rng, rate, shape):
    keep = rng.random(shape) >= rate
    return (keep / (1 - rate)).astype(np.float32)


def _multi_fd(layer, x, rng, training=False, eps=1e-3, rtol=2e-2, atol=3e-3, max_entries=40):
    """fd_check for layers with several outputs: objective sum_i sum(R_i * y_i)."""
    ys, ctx = layer.forward(x, training=training, need_ctx=True)
    rs = [rng.normal(size=y.shape) for y in ys]
    layer._zero_grads()
    dx = layer.backward(ctx, [r.astype(np.float32) for r in rs])
    layer._finish_grads()
    grads = [g.copy() for g in layer.grads]

    def f():
        out, _ = layer.forward(x64.astype(np.float32), training=training)
        return sum(float(np.sum(np.asarray(o, np.float64) * r)) for o, r in zip(out, rs))

    x64 = x.astype(np.float64)
    for target, grad in [(x64, dx)] + list(zip(layer._weights, grads)):
        idx = list(np.ndindex(target.shape))
        pick = rng.choice(len(idx), min(max_entries, len(idx)), replace=False)
        for i in pick:
            j = idx[i]
            v = target[j]
            target[j] = v + eps
            fp = f()
            target[j] = v - eps
            fm = f()
            target[j] = v
            np.testing.assert_allclose(grad[j], (fp - fm) / (2 * eps), rtol=rtol, atol=atol,
                                       err_msg=f"{layer.name} {j}")


# ---- LSTM return_state ------------------------------------------------------------------------

@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_lstm_return_state_finite_differences(return_sequences, go_backwards, rng):
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    lay = _build(layers.LSTM(3, return_state=True, return_sequences=return_sequences,
                             go_backwards=go_backwards), x.shape, rng)
    out, h, c = lay.forward(x)[0]
    assert h.shape == c.shape == (3, 3)
    np.testing.assert_array_equal(h, out[:, -1] if return_sequences else out)
    _multi_fd(lay, x, rng, training=True)


def test_lstm_final_cell_state_and_its_gradient_match_the_numpy_loop(rng, threads):
    """The C++ loop's c_T (training and inference slots) and its dc_last seed against the NumPy
    loop, and bitwise equal at 1 and 2 threads."""
    b, t, f, u = 5, 7, 3, 4
    x = rng.normal(size=(b, t, f)).astype(np.float32)
    k = (0.5 * rng.normal(size=(f, 4 * u))).astype(np.float32)
    rk = (0.5 * rng.normal(size=(u, 4 * u))).astype(np.float32)
    bias = rng.normal(size=4 * u).astype(np.float32)
    hs, c_ref, cache = masked_rnn.forward("lstm", x, None, k, rk, bias)
    dout = rng.normal(size=(b, u)).astype(np.float32)
    dc = rng.normal(size=(b, u)).astype(np.float32)
    dhs = np.zeros_like(hs)
    dhs[:, -1] = dout
    ref = masked_rnn.backward(cache, dhs, k, rk, True, dc)
    results = []
    for n in (1, 2):
        nk.set_num_threads(n)
        for steps in (t, t - 1):  # both parities of the inference ping-pong slot
            _, c_inf, _ = nk.kernels.lstm(x[:, :steps], k, rk, bias, training=False,
                                          return_cell_state=True)
            _, c_steps, _ = masked_rnn.forward("lstm", x[:, :steps], None, k, rk, bias)
            np.testing.assert_allclose(c_inf, c_steps, rtol=1e-5, atol=1e-6)
        out, c_last, kc = nk.kernels.lstm(x, k, rk, bias, training=True, return_cell_state=True)
        np.testing.assert_allclose(c_last, c_ref, rtol=1e-5, atol=1e-6)
        got = nk.kernels.lstm_backward(dout, kc, dc_last=dc)
        for a, r in zip((got[0], got[3], got[4], got[5]), ref):
            np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)
        results.append([np.asarray(a) for a in got])
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)
    with pytest.raises(ValueError, match="dc_last must have shape"):
        nk.kernels.lstm_backward(dout, kc, dc_last=dc[:, :2])


def test_lstm_return_state_in_a_model_trains_and_round_trips(tmp_path, rng):
    inp = nk.Input((6, 3))
    seq, h, c = layers.LSTM(4, return_sequences=True, return_state=True)(inp)
    out = layers.Dense(1)(layers.Concatenate()([h, c, layers.GlobalAveragePooling1D()(seq)]))
    m = nk.Model(inp, out)
    m.compile("adam", "mse")
    x = rng.normal(size=(16, 6, 3)).astype(np.float32)
    y = rng.normal(size=(16, 1)).astype(np.float32)
    hist = m.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    m.save(tmp_path / "m.nncore")
    m2 = nk.models.load_model(tmp_path / "m.nncore")
    np.testing.assert_array_equal(m2.predict(x, verbose=0), m.predict(x, verbose=0))


# ---- GRU reset_after=False --------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(), dict(return_sequences=True), dict(use_bias=False),
                                dict(go_backwards=True, return_sequences=True)])
def test_gru_reset_before_finite_differences(kw, rng):
    x = rng.normal(size=(3, 4, 2)).astype(np.float32)
    lay = _build(layers.GRU(3, reset_after=False, **kw), x.shape, rng)
    if lay.use_bias:
        assert lay.bias.shape == (9,)
    fd_check(lay, x, rng, training=True)


def test_gru_reset_before_masked_finite_differences(rng):
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    x[0, 3:] = 0
    x[2, :2] = 0
    gru = _build(layers.GRU(3, reset_after=False, return_sequences=True), x.shape, rng)
    mask = np.any(x != 0, axis=-1)
    fd_check(_Masked(gru, mask), x, rng, training=True)


class _Masked:
    """A layer view that always passes the given mask (for fd_check)."""

    def __init__(self, layer, mask):
        self.__dict__.update(layer=layer, mask=mask)

    def __getattr__(self, name):
        return getattr(self.layer, name)

    def forward(self, x, training=False, need_ctx=False):
        return self.layer.forward(x, training=training, need_ctx=need_ctx, mask=self.mask)


# ---- dropout ------------------------------------------------------------------------------------

CASES = [(name, d, r) for name in GATES for d, r in ((0.3, 0.0), (0.0, 0.4), (0.3, 0.4))]


@pytest.mark.parametrize("name,dropout,rec", CASES)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_dropout_finite_differences_with_fixed_masks(name, dropout, rec, return_sequences, rng):
    b, t, f, u = 3, 4, 2, 3
    x = rng.normal(size=(b, t, f)).astype(np.float32)
    lay = _build(getattr(layers, name)(u, dropout=dropout, recurrent_dropout=rec,
                                       return_sequences=return_sequences), x.shape, rng)
    g = GATES[name]
    masks = [_make_masks(rng, dropout, (g, b, f) if rec else (b, f)),
             _make_masks(rng, rec or 0.5, (g, b, u))]
    _fix_masks(lay, masks)
    fd_check(lay, x, rng, training=True)


@pytest.mark.parametrize("name", sorted(GATES))
def test_dropout_only_in_training_seeded_and_fixed_over_time(name, rng):
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    plain = _build(getattr(layers, name)(5, return_sequences=True), x.shape, rng)
    w = plain.get_weights()

    def make(seed):
        lay = getattr(layers, name)(5, return_sequences=True, dropout=0.4,
                                    recurrent_dropout=0.3, seed=seed)
        lay._maybe_build((None, 6, 3))
        lay.set_weights(w)
        return lay

    a, b = make(7), make(7)
    ref = plain.forward(x)[0]
    np.testing.assert_array_equal(a.forward(x, training=False)[0], ref)
    ya = a.forward(x, training=True)[0]
    np.testing.assert_array_equal(ya, b.forward(x, training=True)[0])  # same seed
    assert not np.allclose(ya, ref, atol=1e-3)
    assert not np.array_equal(a.forward(x, training=True)[0], ya)  # a fresh mask per call
    cfg = a.get_config()
    assert (cfg["dropout"], cfg["recurrent_dropout"], cfg["seed"]) == (0.4, 0.3, 7)
    assert type(a).from_config(cfg).get_config() == cfg


def test_input_dropout_mask_is_fixed_over_time_steps(rng):
    """SimpleRNN with W = I, U = 0, b = 0: h_t = tanh(x_t * m), so with x_t = 1 the dropped units
    are the same at every step (one mask per sequence, as Keras), and differ between sequences."""
    lay = layers.SimpleRNN(8, dropout=0.5, return_sequences=True, seed=3)
    lay._maybe_build((None, 5, 8))
    lay.set_weights([np.eye(8, dtype=np.float32), np.zeros((8, 8), np.float32),
                     np.zeros(8, np.float32)])
    y = lay.forward(np.ones((16, 5, 8), np.float32), training=True)[0]
    zero = y == 0
    assert zero.any() and not zero.all()
    np.testing.assert_array_equal(zero, np.broadcast_to(zero[:, :1], zero.shape))
    assert len({tuple(r) for r in zero[:, 0]}) > 1
    np.testing.assert_allclose(y[~zero], np.tanh(2.0), rtol=1e-6)


def test_dropout_model_trains_and_round_trips(tmp_path, rng):
    nk.utils.set_random_seed(1)
    m = nk.Sequential([nk.Input((6, 3)), layers.GRU(4, dropout=0.2, recurrent_dropout=0.2,
                                                    reset_after=False),
                       layers.Dense(1)])
    m.compile(nk.optimizers.Adam(0.01), "mse")
    x = rng.normal(size=(32, 6, 3)).astype(np.float32)
    y = 0.3 * x[:, :, :1].sum(axis=1)
    before = m.evaluate(x, y, verbose=0)  # inference: no dropout
    m.fit(x, y, epochs=10, batch_size=8, verbose=0)
    assert m.evaluate(x, y, verbose=0) < 0.7 * before
    m.save(tmp_path / "m.nncore")
    m2 = nk.models.load_model(tmp_path / "m.nncore")
    assert m2.layers[0].get_config() == m.layers[0].get_config()
    np.testing.assert_array_equal(m2.predict(x, verbose=0), m.predict(x, verbose=0))


def test_bad_dropout_arguments_are_refused():
    with pytest.raises(ValueError, match="dropout must be a number"):
        layers.LSTM(3, dropout="a")
    with pytest.raises(ValueError, match="seed must be an int"):
        layers.GRU(3, dropout=0.1, seed=-1)


# ---- Keras 3 parity ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    import keras as k

    return k


def _randomize(layer, rng):
    layer.set_weights([(0.5 * rng.normal(size=w.shape)).astype(np.float32)
                       for w in layer.get_weights()])


def _keras_grads(theirs, x, rs, training):
    import tensorflow as tf

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        ys = theirs(xt, training=training)
        ys = ys if isinstance(ys, (list, tuple)) else [ys]
        obj = sum(tf.reduce_sum(y * r) for y, r in zip(ys, rs))
    return [y.numpy() for y in ys], [g.numpy() for g in
                                     tape.gradient(obj, [xt] + theirs.trainable_weights)]


def _compare(ours, theirs, x, rng, training, tol=1e-4):
    ours._maybe_build((None,) + x.shape[1:])
    ours.set_weights(theirs.get_weights())
    ys, ctx = ours.forward(x, training=training, need_ctx=True)
    ys = ys if isinstance(ys, list) else [ys]
    rs = [rng.normal(size=y.shape).astype(np.float32) for y in ys]
    kys, kg = _keras_grads(theirs, x, rs, training)
    for a, b in zip(ys, kys):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    ours._zero_grads()
    dx = ours.backward(ctx, rs if len(rs) > 1 else rs[0])
    ours._finish_grads()
    np.testing.assert_allclose(dx, kg[0], rtol=tol, atol=tol)
    for a, b in zip(ours.grads, kg[1:]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_lstm_return_state_keras_parity(keras, return_sequences, masked, rng):
    x = rng.normal(size=(3, 6, 2)).astype(np.float32)
    kw = dict(units=4, return_state=True, return_sequences=return_sequences)
    theirs, ours = keras.layers.LSTM(**kw), layers.LSTM(**kw)
    theirs(x)
    _randomize(theirs, rng)
    if not masked:
        _compare(ours, theirs, x, rng, training=True)
        return
    mask = np.ones((3, 6), bool)
    mask[0, 4:] = False
    mask[1, :2] = False
    ours._maybe_build((None, 6, 2))
    ours.set_weights(theirs.get_weights())
    ys = ours.forward(x, mask=mask)[0]
    kys = theirs(x, mask=mask)
    for a, b in zip(ys, kys):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(), dict(return_sequences=True), dict(use_bias=False),
                                dict(return_state=True, return_sequences=True)])
def test_gru_reset_before_keras_parity(keras, kw, rng):
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    theirs = keras.layers.GRU(4, reset_after=False, **kw)
    ours = layers.GRU(4, reset_after=False, **kw)
    theirs(x)
    _randomize(theirs, rng)
    _compare(ours, theirs, x, rng, training=False)
    assert ours.get_config()["reset_after"] is False


@pytest.mark.parametrize("name,dropout,rec", CASES)
def test_dropout_keras_parity_with_injected_masks(keras, name, dropout, rec, rng):
    """Keras's cell with our masks in place of its random ones: identical outputs and gradients
    (so the masks enter where Keras puts them: per gate, fixed over time, h_{t-1} only in U)."""
    import tensorflow as tf

    b, t, f, u = 3, 5, 2, 4
    x = rng.normal(size=(b, t, f)).astype(np.float32)
    kw = dict(units=u, dropout=dropout, recurrent_dropout=rec, return_sequences=True)
    if name == "GRU":
        kw["reset_after"] = bool(rng.integers(2))
    theirs, ours = getattr(keras.layers, name)(**kw), getattr(layers, name)(**kw)
    theirs(x)
    _randomize(theirs, rng)
    g = GATES[name]
    per_gate = rec > 0 and name != "SimpleRNN"  # Keras's implementation=1 (SimpleRNN: one mask)
    din = _make_masks(rng, dropout or 0.5, (g, b, f) if rec else (b, f))
    drec = _make_masks(rng, rec or 0.5, (g, b, u))
    _fix_masks(ours, [din, drec])
    cell = theirs.cell
    if per_gate:
        cell.get_dropout_mask = lambda _: [tf.constant(m) for m in din] if dropout else None
        cell.get_recurrent_dropout_mask = lambda _: [tf.constant(m) for m in drec]
    else:
        cell.get_dropout_mask = lambda _: tf.constant(din[0] if rec else din) if dropout else None
        cell.get_recurrent_dropout_mask = lambda _: tf.constant(drec[0]) if rec else None
    _compare(ours, theirs, x, rng, training=True)


@pytest.mark.filterwarnings(  # Keras 3 saving under numpy 2 (as in test_keras_files.py)
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_files_carry_dropout_and_reset_after(keras, tmp_path, rng):
    require("h5py")
    km = keras.Sequential([keras.Input((5, 3)),
                           keras.layers.GRU(4, reset_after=False, dropout=0.2,
                                            recurrent_dropout=0.1, return_sequences=True, seed=2),
                           keras.layers.SimpleRNN(3, recurrent_dropout=0.25,
                                                  return_sequences=True),
                           keras.layers.LSTM(3, dropout=0.3), keras.layers.Dense(2)])
    x = rng.normal(size=(4, 5, 3)).astype(np.float32)
    km.save(tmp_path / "k.keras")
    ours = nk.models.load_model(tmp_path / "k.keras")
    gru, simple, lstm = ours.layers[:3]
    assert (gru.reset_after, gru.dropout, gru.recurrent_dropout, gru.seed) == (False, 0.2, 0.1, 2)
    assert (simple.recurrent_dropout, lstm.dropout) == (0.25, 0.3)
    np.testing.assert_allclose(ours.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    ours.save(tmp_path / "n.keras")
    back = keras.models.load_model(tmp_path / "n.keras")
    assert back.layers[0].get_config()["reset_after"] is False
    assert back.layers[0].get_config()["recurrent_dropout"] == 0.1
    np.testing.assert_allclose(back.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6)
