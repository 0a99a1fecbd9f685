"""Masks: Embedding(mask_zero=True) and Masking make them, the graph carries them, the recurrent
layers (and Bidirectional, GlobalAveragePooling1D) honour them as Keras: a masked step keeps the
previous state, repeats the previous output and gets no gradient."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from nncore import layers
from conftest import require


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    import keras as k

    return k


def _padded_ids(rng, n=12, t=7, vocab=9):
    x = rng.integers(1, vocab, size=(n, t))
    for i in range(n):
        k = rng.integers(0, t)  # some rows fully unmasked, some nearly empty
        if i % 2:
            x[i, t - k:] = 0  # post-padding
        else:
            x[i, :k] = 0  # pre-padding
    x[0, 3] = 0  # a hole in the middle
    return x.astype(np.int32)


def _model(lib, rnn, return_sequences, bidirectional=False, pool=False):
    L = lib.layers
    inp = lib.Input((7,), dtype="int32")
    h = L.Embedding(9, 4, mask_zero=True)(inp)
    h = L.Dropout(0.0)(h)  # passes the mask on
    r = getattr(L, rnn)(5, return_sequences=return_sequences or pool)
    h = (L.Bidirectional(r) if bidirectional else r)(h)
    if pool:
        h = L.GlobalAveragePooling1D()(h)
    elif return_sequences:  # a second recurrent layer reads the propagated mask
        h = L.SimpleRNN(3)(h)
    return lib.Model(inp, L.Dense(1)(h))


def _predict_and_train_alike(keras, ours, theirs, x, rng):
    """Same predictions, then two epochs of SGD (MSE against random targets) end at the same
    weights."""
    y = rng.normal(size=(12, 1)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)
    theirs.compile(keras.optimizers.SGD(learning_rate=0.1), "mse")
    ours.compile(nk.optimizers.SGD(learning_rate=0.1), "mse")
    theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("rnn", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("variant", ["last", "sequences", "bidirectional", "pool"])
def test_masked_recurrent_models_match_keras_and_train_alike(keras, rnn, variant, rng):
    kw = dict(return_sequences=variant == "sequences", bidirectional=variant == "bidirectional",
              pool=variant == "pool")
    theirs, ours = _model(keras, rnn, **kw), _model(nk, rnn, **kw)
    ours.set_weights(theirs.get_weights())
    x = _padded_ids(rng)
    _predict_and_train_alike(keras, ours, theirs, x, rng)


def test_masking_layer_matches_keras(keras, rng):
    def make(lib):
        inp = lib.Input((6, 3))
        h = lib.layers.Masking(mask_value=-1.0)(inp)
        h = lib.layers.LSTM(4, return_sequences=True)(h)
        return lib.Model(inp, h)

    theirs, ours = make(keras), make(nk)
    ours.set_weights(theirs.get_weights())
    x = rng.normal(size=(5, 6, 3)).astype(np.float32)
    x[1, 2:] = -1.0
    x[3, :4] = -1.0
    x[4, 1] = -1.0
    got = ours.predict(x, verbose=0)
    np.testing.assert_allclose(got, theirs.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got[1, 2:], np.broadcast_to(got[1, 1], got[1, 2:].shape))
    np.testing.assert_array_equal(got[3, :4], 0.0)


@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.LSTM, layers.GRU])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_recurrent_backward_finite_differences(cls, return_sequences, rng):
    lay = cls(3, return_sequences=return_sequences, bias_initializer="random_normal")
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    mask = np.array([[1, 1, 0, 1, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    lay._maybe_build((None, 5, 2))
    y, ctx = lay.forward(x, training=True, need_ctx=True, mask=mask)
    r = rng.normal(size=y.shape)
    lay._zero_grads()
    dx = lay.backward(ctx, r.astype(np.float32))
    grads = [g.copy() for g in lay.grads]

    def f():
        out, _ = lay.forward(x64.astype(np.float32), mask=mask)
        return float(np.sum(out * r))

    eps = 1e-3
    x64 = x.astype(np.float64)
    for idx in np.ndindex(x.shape):
        x64[idx] += eps
        fp = f()
        x64[idx] -= 2 * eps
        fm = f()
        x64[idx] += eps
        np.testing.assert_allclose(dx[idx], (fp - fm) / (2 * eps), rtol=2e-2, atol=2e-3)
    assert np.all(dx[~mask] == 0)  # masked steps get no gradient
    for w, g in zip(lay._weights, grads):
        for idx in list(np.ndindex(w.shape))[::3]:
            w0 = w[idx]
            w[idx] = w0 + eps
            fp = f()
            w[idx] = w0 - eps
            fm = f()
            w[idx] = w0
            np.testing.assert_allclose(g[idx], (fp - fm) / (2 * eps), rtol=2e-2, atol=2e-3)


@pytest.mark.filterwarnings("ignore:Layer 'flatten.*does not support masking:UserWarning")
@pytest.mark.parametrize("merge", ["concat", "mul"])
def test_bidirectional_sequences_zero_masked_steps_as_keras(keras, merge, rng):
    """Keras's Bidirectional outputs zeros at masked steps when it returns sequences (a plain
    recurrent layer repeats its previous output there); Flatten drops the mask, so the Dense
    reads those steps: predictions and two epochs of training match."""
    def make(lib):
        L = lib.layers
        inp = lib.Input((7,), dtype="int32")
        h = L.Embedding(9, 4, mask_zero=True)(inp)
        h = L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode=merge)(h)
        return lib.Model(inp, L.Dense(1)(L.Flatten()(h)))

    theirs, ours = make(keras), make(nk)
    ours.set_weights(theirs.get_weights())
    x = _padded_ids(rng)
    x[2] = [1, 2, 0, 3, 4, 0, 5]  # holes: where carrying and zeroing differ for every merge
    _predict_and_train_alike(keras, ours, theirs, x, rng)


def test_unmasked_input_takes_the_fast_path_and_matches(rng):
    lay = layers.GRU(4, return_sequences=True)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    lay._maybe_build((None, 5, 3))
    fast, _ = lay.forward(x)
    slow, _ = lay.forward(x, mask=np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], bool))
    np.testing.assert_allclose(slow[0], fast[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(slow[1, 4], slow[1, 3])
    with pytest.raises(ValueError, match=r"mask has shape \(2, 4\), expected"):
        lay.forward(x, mask=np.ones((2, 4), bool))


def test_masking_round_trips(tmp_path, rng):
    model = _model(nk, "LSTM", return_sequences=False)
    x = _padded_ids(rng)
    model.save(tmp_path / "m.nncore")
    loaded = nk.models.load_model(tmp_path / "m.nncore")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def _two_masks_model(K, vocab=9, t=6):
    a, b = K.Input((t,), dtype="int32"), K.Input((t,), dtype="int32")
    ea = K.layers.Embedding(vocab, 3, mask_zero=True, name="ea")(a)
    eb = K.layers.Embedding(vocab, 3, mask_zero=True, name="eb")(b)
    eu = K.layers.Embedding(vocab, 3, name="eu")(b)  # no mask
    h = K.layers.Add()([ea, eb])
    g = K.layers.Add()([ea, eu])  # one input without a mask: no mask
    pool = K.layers.GlobalAveragePooling1D()
    return K.Model([a, b], [pool(h), K.layers.GlobalAveragePooling1D()(g)])


def test_elementwise_merge_masks_are_keras_or(rng):
    """Keras's Merge.compute_mask: the OR of the inputs' masks, none when one input has none."""
    add = layers.Add()
    m1 = np.array([[1, 0, 0, 1]], bool)
    m2 = np.array([[1, 1, 0, 0]], bool)
    xs = [np.zeros((1, 4, 2), np.float32)] * 2
    np.testing.assert_array_equal(add.compute_mask(xs, [m1, m2]), m1 | m2)
    assert add.compute_mask(xs, [m1, None]) is None
    x = [rng.integers(0, 9, size=(8, 6)).astype(np.int32) for _ in range(2)]
    x[0][:, 3:] = 0
    x[1][:, :2] = 0
    ours = _two_masks_model(nk)
    require("tensorflow")
    import keras as tk

    theirs = _two_masks_model(tk)
    for name in ("ea", "eb", "eu"):
        theirs.get_layer(name).set_weights(ours.get_layer(name).get_weights())
    for a, b in zip(ours.predict(x, verbose=0), theirs.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
