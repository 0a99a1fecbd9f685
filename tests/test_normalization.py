"""BatchNormalization, LayerNormalization: Keras parity (outputs, gradients, moving statistics,
two epochs of training), finite differences in both modes, frozen statistics, bad input."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from _layer_checks import fd_check, keras_parity, run_layer
from nncore import layers
from conftest import require


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    import keras as k

    return k


BN_CASES = [
    (dict(), (6, 5)),
    (dict(), (3, 4, 4, 2)),
    (dict(axis=1), (3, 4, 5)),
    (dict(axis=-2, momentum=0.9, epsilon=1e-5), (4, 3, 2)),
    (dict(center=False), (5, 3)),
    (dict(scale=False, axis=2), (2, 3, 4, 2)),
]


def _random_bn_weights(lay, rng):
    names = lay._weight_names if hasattr(lay, "_weight_names") else [w.path for w in lay.weights]
    ws = []
    for name, w in zip(names, lay.get_weights()):
        v = rng.normal(size=w.shape).astype(np.float32)
        ws.append(np.abs(v) + 0.5 if name.endswith("variance") else v)
    return ws


@pytest.mark.parametrize("kwargs,shape", BN_CASES)
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_keras_parity(keras, kwargs, shape, training, rng):
    theirs, ours = keras.layers.BatchNormalization(**kwargs), layers.BatchNormalization(**kwargs)
    x = (2 * rng.normal(size=shape) + 1).astype(np.float32)
    theirs.build((None,) + shape[1:])
    theirs.set_weights(_random_bn_weights(theirs, rng))
    ours._maybe_build((None,) + shape[1:])
    assert [w.path.split("/")[-1] for w in theirs.weights] == [
        n.split("/")[-1] for n in ours._weight_names]  # Keras's order and names
    keras_parity(ours, theirs, x, rng, training=training, rtol=1e-4, atol=1e-4)
    # the moving statistics moved (training) or stayed (inference) exactly as Keras's
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert len(ours.trainable_weights) == len(theirs.trainable_weights)
    assert len(ours.non_trainable_weights) == len(theirs.non_trainable_weights) == 2


def test_batchnorm_frozen_uses_and_keeps_moving_statistics(keras, rng):
    """Keras 3: trainable=False runs in inference mode even with training=True."""
    theirs, ours = keras.layers.BatchNormalization(), layers.BatchNormalization()
    x = rng.normal(size=(8, 3)).astype(np.float32)
    theirs.build((None, 3))
    theirs.set_weights(_random_bn_weights(theirs, rng))
    theirs.trainable = ours.trainable = False
    before = theirs.get_weights()
    ours._maybe_build((None, 3))
    ours.set_weights(before)
    y, _ = ours.forward(x, training=True)
    np.testing.assert_allclose(y, theirs(x, training=True).numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(ours.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert ours.trainable_weights == [] and len(ours.non_trainable_weights) == 4


@pytest.mark.parametrize("kwargs,shape", BN_CASES[:4])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_finite_differences(kwargs, shape, training, rng):
    lay = layers.BatchNormalization(**kwargs)
    lay._maybe_build((None,) + shape[1:])
    lay.set_weights(_random_bn_weights(lay, rng))
    fd_check(lay, rng.normal(size=shape).astype(np.float32), rng, training=training)


def _bn_models(keras, rng, conv):
    def make(lib):
        L = lib.layers
        if conv:
            return lib.Sequential([lib.Input((5, 5, 2)), L.Conv2D(3, 3, padding="same"),
                                   L.BatchNormalization(momentum=0.9), L.ReLU(),
                                   L.GlobalAveragePooling2D(), L.Dense(1)])
        return lib.Sequential([lib.Input((6,)), L.Dense(5), L.BatchNormalization(),
                               L.Activation("tanh"), L.Dense(1)])

    theirs, ours = make(keras), make(nk)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


@pytest.mark.parametrize("conv", [False, True])
def test_batchnorm_two_epochs_of_training_match_keras(keras, conv, rng):
    theirs, ours = _bn_models(keras, rng, conv)
    shape = (48, 5, 5, 2) if conv else (48, 6)
    x = (3 * rng.normal(size=shape) + 2).astype(np.float32)
    y = rng.normal(size=(48, 1)).astype(np.float32)
    theirs.compile(keras.optimizers.SGD(learning_rate=0.05), "mse")
    ours.compile(nk.optimizers.SGD(learning_rate=0.05), "mse")
    h_t = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    h_o = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
    np.testing.assert_allclose(h_o.history["loss"], h_t.history["loss"], rtol=2e-3)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=2e-3, atol=1e-4)


def test_batchnorm_saves_moving_statistics(tmp_path, rng):
    model = nk.Sequential([nk.Input((4,)), layers.BatchNormalization(), layers.Dense(1)])
    model.compile("sgd", "mse")
    x = rng.normal(size=(32, 4)).astype(np.float32) + 3
    model.fit(x, rng.normal(size=(32, 1)), epochs=1, verbose=0)
    mm = model.layers[0].moving_mean
    assert np.all(mm > 0)  # moved toward the data mean of about 3
    model.save(tmp_path / "bn.nncore")
    loaded = nk.models.load_model(tmp_path / "bn.nncore")
    np.testing.assert_array_equal(loaded.layers[0].moving_mean, mm)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_batchnorm_bad_input_names_layer_and_shape():
    with pytest.raises(ValueError, match=r"'bn' \(BatchNormalization\).*axis 3 is out of range "
                                         r"for an input of rank 3"):
        layers.BatchNormalization(axis=3, name="bn")(nk.Input((4, 2)))
    lay = layers.BatchNormalization(name="bn2")
    lay._maybe_build((None, 4))
    with pytest.raises(ValueError, match=r"'bn2' \(BatchNormalization\) was built for 4 features "
                                         r"on axis -1, got input shape \(2, 3\)"):
        lay.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="axis must be an int"):
        layers.BatchNormalization(axis=(1, 2))
    with pytest.raises(ValueError, match="non-batch"):
        layers.BatchNormalization(axis=0)(nk.Input((4,)))


LN_CASES = [
    (dict(), (4, 7)),
    (dict(), (2, 3, 5)),
    (dict(axis=[1, 2]), (2, 3, 4)),
    (dict(axis=1, epsilon=1e-5), (3, 4, 2)),
    (dict(center=False), (3, 6)),
    (dict(scale=False, axis=(-2, -1)), (2, 2, 3, 2)),
]


@pytest.mark.parametrize("kwargs,shape", LN_CASES)
def test_layernorm_keras_parity(keras, kwargs, shape, rng):
    theirs, ours = keras.layers.LayerNormalization(**kwargs), layers.LayerNormalization(**kwargs)
    x = (2 * rng.normal(size=shape) - 1).astype(np.float32)
    theirs.build((None,) + shape[1:])
    theirs.set_weights([rng.normal(size=w.shape).astype(np.float32)
                        for w in theirs.get_weights()])
    keras_parity(ours, theirs, x, rng, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kwargs,shape", LN_CASES)
def test_layernorm_finite_differences(kwargs, shape, rng):
    lay = layers.LayerNormalization(gamma_initializer="random_normal",
                                    beta_initializer="random_normal", **kwargs)
    fd_check(lay, rng.normal(size=shape).astype(np.float32), rng)


def test_layernorm_against_float64_reference(rng):
    x = rng.normal(size=(5, 3, 4))
    lay = layers.LayerNormalization(axis=[1, 2], gamma_initializer="random_normal",
                                    beta_initializer="random_normal")
    y, _ = run_layer(lay, x.astype(np.float32))
    m = x.mean(axis=(1, 2), keepdims=True)
    v = x.var(axis=(1, 2), keepdims=True)
    ref = (x - m) / np.sqrt(v + 1e-3) * lay.gamma + lay.beta
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_layernorm_trailing_axis_view_matches_transposed_path(rng):
    """The default axis=-1 reshapes without a copy; normalizing axis 1 of the transposed input
    goes through the transposing view: both must give the same bits, forward and backward,
    and match the float64 reference."""
    x = rng.normal(size=(4, 7, 13)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    fast = layers.LayerNormalization(gamma_initializer="random_normal",
                                     beta_initializer="random_normal")
    slow = layers.LayerNormalization(axis=1)
    fast._maybe_build((None, 7, 13))
    slow._maybe_build((None, 13, 7))
    slow.set_weights(fast.get_weights())
    xt = np.ascontiguousarray(x.transpose(0, 2, 1))
    y1, c1 = fast.forward(x, training=True, need_ctx=True)
    y2, c2 = slow.forward(xt, training=True, need_ctx=True)
    np.testing.assert_array_equal(y1, y2.transpose(0, 2, 1))
    fast._zero_grads()
    slow._zero_grads()
    dx1 = fast.backward(c1, dy)
    dx2 = slow.backward(c2, np.ascontiguousarray(dy.transpose(0, 2, 1)))
    np.testing.assert_array_equal(dx1, dx2.transpose(0, 2, 1))
    for g1, g2 in zip(fast.grads, slow.grads):
        np.testing.assert_array_equal(g1, g2)
    x64 = x.astype(np.float64)
    g, b = (w.astype(np.float64) for w in fast.get_weights())
    ref = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(y1, ref * g + b, rtol=1e-5, atol=1e-5)
    assert y1.shape == x.shape and y1.flags.c_contiguous


def test_layernorm_bad_input():
    with pytest.raises(ValueError, match="cannot normalize over the batch axis"):
        layers.LayerNormalization(axis=0)(nk.Input((3,)))
    with pytest.raises(ValueError, match="axis 5 is out of range"):
        layers.LayerNormalization(axis=5)(nk.Input((3,)))


GN_CASES = [(dict(groups=2), (3, 6)), (dict(groups=3), (2, 4, 5, 6)),
            (dict(groups=1, center=False), (2, 5, 4)), (dict(groups=4, scale=False), (2, 3, 8))]


@pytest.mark.parametrize("kwargs,shape", GN_CASES)
def test_groupnorm_keras_parity(keras, kwargs, shape, rng):
    theirs, ours = keras.layers.GroupNormalization(**kwargs), layers.GroupNormalization(**kwargs)
    x = (2 * rng.normal(size=shape) + 1).astype(np.float32)
    theirs.build((None,) + shape[1:])
    theirs.set_weights([rng.normal(size=w.shape).astype(np.float32)
                        for w in theirs.get_weights()])
    keras_parity(ours, theirs, x, rng, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kwargs,shape", GN_CASES)
def test_groupnorm_finite_differences(kwargs, shape, rng):
    lay = layers.GroupNormalization(gamma_initializer="random_normal",
                                    beta_initializer="random_normal", **kwargs)
    fd_check(lay, rng.normal(size=shape).astype(np.float32), rng)


def test_groupnorm_bad_input():
    with pytest.raises(ValueError, match="6 channels .* cannot be split into 4 groups"):
        layers.GroupNormalization(groups=4)(nk.Input((3, 6)))
