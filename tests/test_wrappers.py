"""TimeDistributed, Bidirectional (every merge mode), and the RNN flags go_backwards and
return_state: Keras parity of outputs and gradients, finite differences, training, saving."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from _layer_checks import fd_check, keras_parity
from nncore import layers
from conftest import require


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    import keras as k

    return k


def _randomize(theirs, rng):
    theirs.set_weights([0.5 * rng.normal(size=w.shape).astype(np.float32)
                        for w in theirs.get_weights()])


@pytest.mark.parametrize("rnn", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_keras_parity(keras, rnn, merge_mode, return_sequences, rng):
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    theirs = keras.layers.Bidirectional(getattr(keras.layers, rnn)(
        3, return_sequences=return_sequences), merge_mode=merge_mode)
    ours = layers.Bidirectional(getattr(layers, rnn)(3, return_sequences=return_sequences),
                                merge_mode=merge_mode)
    theirs(x)
    _randomize(theirs, rng)
    keras_parity(ours, theirs, x, rng, training=True, rtol=1e-4, atol=1e-5)
    assert ours.compute_output_shape((None, 5, 4)) == tuple(theirs.compute_output_shape(
        (None, 5, 4)))


def test_bidirectional_merge_none_returns_both(keras, rng):
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    theirs = keras.layers.Bidirectional(keras.layers.GRU(2, return_sequences=True),
                                        merge_mode=None)
    ours = layers.Bidirectional(layers.GRU(2, return_sequences=True), merge_mode=None)
    theirs(x)
    _randomize(theirs, rng)
    ours._maybe_build((None, 4, 3))
    ours.set_weights(theirs.get_weights())
    ys, ctx = ours.forward(x, need_ctx=True, training=True)
    for a, b in zip(ys, theirs(x)):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)
    # gradient with only the backward half in the loss
    import tensorflow as tf

    xt = tf.constant(x)
    r = rng.normal(size=ys[1].shape).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        obj = tf.reduce_sum(theirs(xt)[1] * r)
    want = tape.gradient(obj, xt).numpy()
    ours._zero_grads()
    np.testing.assert_allclose(ours.backward(ctx, [None, r]), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rnn", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_go_backwards_keras_parity(keras, rnn, return_sequences, rng):
    x = rng.normal(size=(3, 6, 2)).astype(np.float32)
    kw = dict(units=4, go_backwards=True, return_sequences=return_sequences)
    theirs, ours = getattr(keras.layers, rnn)(**kw), getattr(layers, rnn)(**kw)
    theirs(x)
    _randomize(theirs, rng)
    keras_parity(ours, theirs, x, rng, training=True, rtol=1e-4, atol=1e-5)
    assert ours.get_config()["go_backwards"] is True


@pytest.mark.parametrize("rnn", ["SimpleRNN", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_return_state_keras_parity(keras, rnn, return_sequences, rng):
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    kw = dict(units=3, return_state=True, return_sequences=return_sequences)
    theirs, ours = getattr(keras.layers, rnn)(**kw), getattr(layers, rnn)(**kw)
    theirs(x)
    _randomize(theirs, rng)
    ours._maybe_build((None, 5, 3))
    ours.set_weights(theirs.get_weights())
    (out, state), ctx = ours.forward(x, training=True, need_ctx=True)
    t_out, t_state = theirs(x)
    np.testing.assert_allclose(out, t_out.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state, t_state.numpy(), rtol=1e-5, atol=1e-6)
    # the loss uses both the output and the state
    import tensorflow as tf

    xt = tf.constant(x)
    r1 = rng.normal(size=out.shape).astype(np.float32)
    r2 = rng.normal(size=state.shape).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        o, s = theirs(xt)
        obj = tf.reduce_sum(o * r1) + tf.reduce_sum(s * r2)
    g = tape.gradient(obj, [xt] + theirs.trainable_weights)
    ours._zero_grads()
    dx = ours.backward(ctx, [r1, r2])
    np.testing.assert_allclose(dx, g[0].numpy(), rtol=1e-4, atol=1e-5)
    for a, b in zip(ours.grads, g[1:]):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("inner,shape", [
    (lambda: layers.Dense(3, activation="tanh"), (2, 4, 5)),
    (lambda: layers.Conv2D(2, 3, padding="same"), (2, 3, 5, 5, 2)),
    (lambda: layers.Conv1D(2, 2), (2, 3, 4, 2)),
])
def test_time_distributed_keras_parity(keras, inner, shape, rng):
    x = rng.normal(size=shape).astype(np.float32)
    ours = layers.TimeDistributed(inner())
    kinner = inner()
    theirs = keras.layers.TimeDistributed(getattr(keras.layers, type(kinner).__name__)(
        **{k: v for k, v in kinner.get_config().items()
           if k in ("filters", "kernel_size", "padding", "units", "activation")}))
    theirs(x)
    _randomize(theirs, rng)
    keras_parity(ours, theirs, x, rng, rtol=1e-4, atol=1e-5)


def test_wrappers_finite_differences(rng):
    fd_check(layers.TimeDistributed(layers.Dense(3, activation="tanh")),
             rng.normal(size=(2, 3, 4)).astype(np.float32), rng)
    for mode in ("concat", "mul"):
        fd_check(layers.Bidirectional(layers.GRU(2, return_sequences=True), merge_mode=mode),
                 rng.normal(size=(2, 4, 3)).astype(np.float32), rng, training=True)


def test_wrappers_train_save_and_load(tmp_path, rng):
    model = nk.Sequential([nk.Input((6, 3)),
                           layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
                           layers.TimeDistributed(layers.Dense(2)),
                           layers.Bidirectional(layers.GRU(3), merge_mode="sum"),
                           layers.Dense(1)])
    assert len(model.weights) == 6 + 2 + 6 + 2
    model.compile("adam", "mse")
    x = rng.normal(size=(16, 6, 3)).astype(np.float32)
    y = rng.normal(size=(16, 1)).astype(np.float32)
    w0 = [w.copy() for w in model.weights]
    h = model.fit(x, y, epochs=3, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert all(not np.array_equal(a, b) for a, b in zip(w0, model.weights))
    model.save(tmp_path / "w.nncore")
    loaded = nk.models.load_model(tmp_path / "w.nncore")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[0].backward_layer.go_backwards is True


def test_wrapper_bad_input():
    with pytest.raises(ValueError, match="Bidirectional wraps SimpleRNN, LSTM or GRU"):
        layers.Bidirectional(layers.Dense(2))
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        layers.Bidirectional(layers.GRU(2), merge_mode="max")
    with pytest.raises(ValueError, match=r"\(TimeDistributed\) needs input \(batch, steps"):
        layers.TimeDistributed(layers.Dense(2))(nk.Input((3,)))
