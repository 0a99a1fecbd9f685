"""Lambda (a traced function of keras.ops; saved only by a registered function's name, never as
code) and ActivityRegularization (Keras 3's penalty (l1 sum|x| + l2 sum x^2) / batch)."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from _layer_checks import fd_check
from conftest import require
from nncore import layers, ops
from nncore.ops._graph import collect_losses


@nk.saving.register_keras_serializable(package="T11")
def scaled_softplus(x, scale=1.0):
    return ops.log1p(ops.exp(x)) * scale


def test_lambda_forward_and_finite_differences(rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    lay = layers.Lambda(lambda t: ops.square(t) * 0.5 + ops.tanh(t))
    y = lay(x)
    np.testing.assert_allclose(y, 0.5 * x.astype(np.float64) ** 2 + np.tanh(x), rtol=1e-6,
                               atol=1e-6)
    fd_check(layers.Lambda(scaled_softplus, arguments={"scale": 2.0}), x, rng)


def test_lambda_mixing_merge_arithmetic_and_ops(rng):
    """A same-shape `a + b` in a traced call makes a merge layer (a global name such as 'add')
    beside op nodes named per trace ('add' too): the trace's graph must still build."""
    x = rng.normal(size=(3, 4)).astype(np.float32)
    for fn, ref in ((lambda t: (t + 1) + ops.exp(t), lambda v: v + 1 + np.exp(v)),
                    (lambda t: (t * 2) * (t - 1) + (t + 3), lambda v: 2 * v * (v - 1) + v + 3)):
        inp = nk.Input((4,))
        m = nk.Model(inp, layers.Lambda(fn)(inp))
        np.testing.assert_allclose(m.predict(x, verbose=0), ref(x.astype(np.float64)),
                                   rtol=1e-5, atol=1e-5)
        fd_check(layers.Lambda(fn), x, rng)


def test_lambda_in_a_model_trains(rng):
    inp = nk.Input((5,))
    h = layers.Dense(4)(inp)
    h = layers.Lambda(lambda t: ops.concatenate([t, ops.square(t)], axis=-1))(h)
    m = nk.Model(inp, layers.Dense(1)(h))
    assert m.layers[2].output.shape == (None, 8)
    m.compile("adam", "mse")
    x = rng.normal(size=(32, 5)).astype(np.float32)
    y = (x[:, :1] ** 2).astype(np.float32)
    hist = m.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_lambda_saves_only_a_registered_function(tmp_path, rng):
    x = rng.normal(size=(4, 3)).astype(np.float32)
    good = nk.Sequential([nk.Input((3,)), layers.Dense(2),
                          layers.Lambda(scaled_softplus, arguments={"scale": 3.0})])
    good.save(tmp_path / "good.nncore")
    back = nk.models.load_model(tmp_path / "good.nncore")
    np.testing.assert_array_equal(back.predict(x, verbose=0), good.predict(x, verbose=0))
    assert back.layers[1].get_config()["function"] == "T11>scaled_softplus"

    bad = nk.Sequential([nk.Input((3,)), layers.Lambda(lambda t: t * 2)])
    with pytest.raises(ValueError, match="is not registered"):
        bad.save(tmp_path / "bad.nncore")

    cfg = good.layers[1].get_config()
    with pytest.raises(ValueError, match="'T11>nope' is not registered"):
        layers.Lambda.from_config({**cfg, "function": "T11>nope"})
    with pytest.raises(ValueError, match="never loads code"):
        layers.Lambda.from_config({**cfg, "function": {"class_name": "__lambda__",
                                                        "config": {"code": "4wEAAAA="}}})
    with pytest.raises(ValueError, match="is not registered"):  # a class is not a function
        layers.Lambda.from_config({**cfg, "function": "Dense"})

    def local(t):
        return t + 1

    loaded = layers.Lambda.from_config({**cfg, "function": "mine", "arguments": {}},
                                       custom_objects={"mine": local})
    np.testing.assert_array_equal(loaded(x), x + 1)


def test_activity_regularization_penalty_and_gradient(rng):
    x = rng.normal(size=(5, 3, 2)).astype(np.float32)
    lay = layers.ActivityRegularization(l1=0.3, l2=0.7)
    lay._maybe_build((None, 3, 2))
    with collect_losses() as c:
        y, ctx = lay.forward(x, training=True, need_ctx=True)
    np.testing.assert_array_equal(y, x)
    x64 = x.astype(np.float64)

    def penalty(v):
        return (0.3 * np.abs(v).sum() + 0.7 * (v * v).sum()) / v.shape[0]

    np.testing.assert_allclose(c.total, penalty(x64), rtol=1e-6)
    # backward of sum(R * y) + penalty: R + d penalty / dx
    r = rng.normal(size=x.shape).astype(np.float32)
    dx = lay.backward(ctx, r)
    num = np.zeros_like(x64)
    eps = 1e-4
    for i in np.ndindex(x.shape):
        p, m = x64.copy(), x64.copy()
        p[i] += eps
        m[i] -= eps
        num[i] = (penalty(p) - penalty(m)) / (2 * eps)
    np.testing.assert_allclose(dx, r + num, rtol=1e-4, atol=1e-5)
    cfg = lay.get_config()
    assert (cfg["l1"], cfg["l2"]) == (0.3, 0.7)
    assert layers.ActivityRegularization.from_config(cfg).get_config() == cfg
    with pytest.raises(ValueError, match="l1 must be a finite number >= 0"):
        layers.ActivityRegularization(l1=-1)


# ---- Keras 3 parity ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    import keras as k

    return k


def _pair(keras, make_ours, make_theirs, rng):
    theirs = make_theirs()
    ours = make_ours()
    ours.set_weights(theirs.get_weights())
    for m in (theirs, ours):
        m.compile(optimizer=(keras if m is theirs else nk).optimizers.SGD(0.1), loss="mse")
    return ours, theirs


def test_activity_regularization_trains_like_keras(keras, rng):
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = rng.normal(size=(16, 2)).astype(np.float32)

    def build(lib):
        return lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, activation="tanh"),
                               lib.layers.ActivityRegularization(l1=0.05, l2=0.2),
                               lib.layers.Dense(2)])

    ours, theirs = _pair(keras, lambda: build(nk), lambda: build(keras), rng)
    for _ in range(3):
        lo = ours.train_on_batch(x, y)
        lt = theirs.train_on_batch(x, y)
        np.testing.assert_allclose(np.asarray(lo).ravel()[0], np.asarray(lt).ravel()[0],
                                   rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0),
                               rtol=1e-5)


def test_lambda_trains_like_keras(keras, rng):
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = rng.normal(size=(16, 1)).astype(np.float32)

    def build(lib):
        o = lib.ops
        return lib.Sequential([lib.Input((4,)), lib.layers.Dense(3),
                               lib.layers.Lambda(lambda t: o.tanh(t) + o.square(t) * 0.5),
                               lib.layers.Dense(1)])

    ours, theirs = _pair(keras, lambda: build(nk), lambda: build(keras), rng)
    for _ in range(3):
        ours.train_on_batch(x, y)
        theirs.train_on_batch(x, y)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings(  # Keras 3 saving under numpy 2 (as in test_keras_files.py)
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_files_with_lambda_and_activity_regularization(keras, tmp_path, rng):
    require("h5py")

    @keras.saving.register_keras_serializable(package="T11")
    def scaled_softplus(t, scale=1.0):  # the same registered name in both libraries
        return keras.ops.log1p(keras.ops.exp(t)) * scale

    x = rng.normal(size=(4, 3)).astype(np.float32)
    km = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2),
                           keras.layers.Lambda(scaled_softplus, arguments={"scale": 2.0}),
                           keras.layers.ActivityRegularization(0.1, 0.2)])
    km.save(tmp_path / "k.keras")
    ours = nk.models.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(ours.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    ours.save(tmp_path / "n.keras")
    back = keras.models.load_model(tmp_path / "n.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6)
    assert back.layers[2].get_config()["l2"] == 0.2
    # a Lambda holding bytecode is refused
    code = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t * 2.0)])
    code.save(tmp_path / "code.keras")
    with pytest.raises(ValueError, match="Lambda layers hold Python code"):
        nk.models.load_model(tmp_path / "code.keras")
