"""Hashing (FarmHash fingerprint64 / keyed SipHash-2-4 buckets equal to TensorFlow's, for
strings, integers and floats) and RandomCrop (random window in training, Keras's smart_resize
window otherwise): Keras 3 parity, finite-difference gradients, configs and files."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from _layer_checks import fd_check
from conftest import require
from nncore import layers

pytestmark = pytest.mark.filterwarnings(  # Keras 3 saving under numpy 2
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def _strings(rng, n):
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEF é漢ß0123456789-_"))
    lens = np.concatenate([np.arange(0, 140), rng.integers(0, 300, size=max(0, n - 140))])[:n]
    return np.array(["".join(alphabet[rng.integers(0, len(alphabet), size=k)]) for k in lens])


def _keras():
    require("tensorflow")
    import keras

    return keras


@pytest.mark.parametrize("kw", [dict(num_bins=7), dict(num_bins=1 << 20), dict(num_bins=7, salt=3),
                                dict(num_bins=1000, salt=[11, 1 << 40]),
                                dict(num_bins=5, mask_value="MASK"),
                                dict(num_bins=6, output_mode="multi_hot"),
                                dict(num_bins=6, output_mode="count", salt=[1, 2]),
                                dict(num_bins=4, output_mode="one_hot")])
def test_hashing_strings_match_keras(kw, rng):
    keras = _keras()
    x = _strings(rng, 600).reshape(100, 6)
    x[3, 2] = x[7, 0] = "MASK"
    if kw.get("output_mode") == "one_hot":
        x = x[:, :1]
    np.testing.assert_array_equal(layers.Hashing(**kw)(x),
                                  np.asarray(keras.layers.Hashing(**kw)(x)))


@pytest.mark.parametrize("kw", [dict(num_bins=9), dict(num_bins=9, salt=5),
                                dict(num_bins=4, mask_value=0), dict(num_bins=8, mask_value=-3,
                                                                    output_mode="count")])
def test_hashing_numbers_match_keras(kw, rng):
    keras = _keras()
    ints = rng.integers(-(1 << 62), 1 << 62, size=(50, 4))
    ints[:, 0] = rng.integers(-5, 5, size=50)
    floats = rng.normal(size=(50, 4)) * 1e4
    floats[0, :3] = [-3.0, -2.7, 0.5]  # truncation toward zero, as tf.cast
    bools = [(ints % 2).astype(bool)] if "mask_value" not in kw else []  # Keras: no bool mask
    for x in [ints, ints.astype(np.int32), floats] + bools:
        np.testing.assert_array_equal(layers.Hashing(**kw)(x),
                                      np.asarray(keras.layers.Hashing(**kw)(x)), err_msg=x.dtype)


def test_hashing_without_keras():
    lay = layers.Hashing(3)
    out = lay(np.array([["a", "b"], ["a", "c"]]))
    assert out.dtype == np.int64 and out.shape == (2, 2) and out[0, 0] == out[1, 0]
    assert out.min() >= 0 and out.max() < 3
    masked = layers.Hashing(4, mask_value="")(np.array(["", "x", ""]))
    assert masked[0] == masked[2] == 0 and masked[1] >= 1
    assert layers.Hashing(1)(np.array([5, 7])).tolist() == [0, 0]
    for lay in (layers.Hashing(5, salt=4, output_mode="count"), layers.Hashing(2, mask_value=0)):
        cfg = lay.get_config()
        assert layers.Hashing.from_config(cfg).get_config() == cfg
    with pytest.raises(ValueError, match="num_bins must be an int >= 1"):
        layers.Hashing(0)
    with pytest.raises(ValueError, match="salt must be an int or a pair"):
        layers.Hashing(3, salt="x")
    with pytest.raises(ValueError, match=r"hashing\w*: inputs must be finite"):
        layers.Hashing(3)(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="strings or numbers"):
        layers.Hashing(3)(np.array([object()]))


def _hash_model(K):
    inp = K.Input((4,), dtype="int64")
    h = K.layers.Hashing(8, salt=[3, 4], output_mode="count")(inp)
    i = K.layers.Hashing(5, mask_value=0)(inp)
    e = K.layers.Flatten()(K.layers.Embedding(5, 2)(i))
    return K.Model(inp, K.layers.Dense(2)(K.layers.Concatenate()([h, e])))


def test_hashing_keras_files_both_ways(tmp_path, rng):
    keras = _keras()
    require("h5py")
    x = rng.integers(-50, 50, size=(6, 4))
    km = _hash_model(keras)
    km.save(tmp_path / "k.keras")
    ours = nk.models.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(ours.predict(x, verbose=0), km.predict(x, verbose=0), atol=1e-6)
    mine = _hash_model(nk)
    for ext in (".keras", ".nncore"):
        mine.save(tmp_path / f"n{ext}")
        np.testing.assert_array_equal(nk.models.load_model(tmp_path / f"n{ext}").predict(
            x, verbose=0), mine.predict(x, verbose=0))
    theirs = keras.models.load_model(tmp_path / "n.keras")
    np.testing.assert_allclose(theirs.predict(x, verbose=0), mine.predict(x, verbose=0),
                               atol=1e-6)


# ---- RandomCrop --------------------------------------------------------------------------------
class _Fixed:
    """A generator stand-in returning given offsets (to run Keras's draws through ours)."""

    def __init__(self, values):
        self.values = list(values)

    def integers(self, lo, hi):
        v = self.values.pop(0)
        assert lo <= v < hi
        return v


@pytest.mark.parametrize("shape,size", [((2, 10, 12, 3), (6, 8)), ((2, 5, 7, 1), (6, 8)),
                                        ((1, 9, 9, 2), (4, 4)), ((3, 7, 20, 1), (5, 3)),
                                        ((2, 6, 8, 2), (6, 8))])
def test_random_crop_matches_keras(shape, size, rng):
    keras = _keras()
    x = (rng.random(shape) * 255).astype(np.float32)
    ours = layers.RandomCrop(*size, seed=1)
    # inference (and training on images not larger than the crop): Keras's smart_resize
    want = np.asarray(keras.preprocessing.image.smart_resize(x, size))
    np.testing.assert_allclose(ours(x, training=False), want, rtol=0, atol=1e-4)
    model = nk.Sequential([nk.Input(shape[1:]), layers.RandomCrop(*size)])
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=0, atol=1e-4)
    # training on larger images: Keras's random window, for the offsets Keras drew
    theirs = keras.layers.RandomCrop(*size, seed=5)
    t = theirs.get_random_transformation(x, training=True)
    kt = np.asarray(theirs.transform_images(x, t, training=True))
    if shape[1] > size[0] and shape[2] > size[1]:
        ours._gen = lambda: _Fixed([int(t[0]), int(t[1])])
    got = ours(x, training=True)
    np.testing.assert_allclose(got, kt if shape[1] > size[0] and shape[2] > size[1] else want,
                               rtol=0, atol=1e-4)


def test_random_crop_training_draws_seeded_windows_and_gradients(rng):
    x = rng.normal(size=(3, 9, 11, 2)).astype(np.float32)
    a, b = layers.RandomCrop(4, 5, seed=7), layers.RandomCrop(4, 5, seed=7)
    ya, yb = a(x), b(x)  # a direct call trains (as Keras)
    np.testing.assert_array_equal(ya, yb)
    assert ya.shape == (3, 4, 5, 2)
    # every output is one window of the input, the same window for the whole batch
    found = [(i, j) for i in range(6) for j in range(7)
             if np.array_equal(x[:, i:i + 4, j:j + 5], ya)]
    assert len(found) == 1
    windows = {tuple(np.argwhere(np.isin(x[0, :, :, 0], a(x)[0, 0, 0, 0]))[0]) for _ in range(40)}
    assert len(windows) > 5  # random windows
    # gradients: training window (fixed) and the resize path
    lay = layers.RandomCrop(4, 5)
    lay._gen = lambda: _Fixed([2, 3])
    fd_check(lay, x[:1], rng, training=True)
    fd_check(layers.RandomCrop(4, 6), rng.normal(size=(2, 5, 9, 2)), rng, training=False)
    fd_check(layers.RandomCrop(7, 6), rng.normal(size=(1, 4, 5, 1)), rng, training=True)


def test_random_crop_in_a_model_files_and_errors(tmp_path, rng):
    m = nk.Sequential([nk.Input((10, 12, 3)), layers.RandomCrop(6, 8, seed=2), layers.Flatten(),
                       layers.Dense(2)])
    assert m.output_shape == (None, 2)
    x = rng.normal(size=(8, 10, 12, 3)).astype(np.float32)
    m.compile("sgd", "mse")
    m.fit(x, rng.normal(size=(8, 2)).astype(np.float32), epochs=1, verbose=0)
    p = m.predict(x, verbose=0)
    m.save(tmp_path / "m.nncore")
    np.testing.assert_array_equal(nk.models.load_model(tmp_path / "m.nncore").predict(
        x, verbose=0), p)
    cfg = m.layers[0].get_config()
    assert layers.RandomCrop.from_config(cfg).get_config() == cfg
    with pytest.raises(ValueError, match="height must be an int >= 1"):
        layers.RandomCrop(0, 3)
    with pytest.raises(ValueError, match=r"random_crop\w*' \(RandomCrop\) needs images"):
        layers.RandomCrop(2, 2)(np.zeros((4, 5), np.float32))


def test_random_crop_keras_files_both_ways(tmp_path, rng):
    keras = _keras()
    require("h5py")
    x = rng.normal(size=(4, 10, 12, 3)).astype(np.float32)

    def build(K):
        return K.Sequential([K.Input((10, 12, 3)), K.layers.RandomCrop(6, 8, seed=2),
                             K.layers.Conv2D(2, 3)])

    mine = build(nk)
    mine.save(tmp_path / "n.keras")
    theirs = keras.models.load_model(tmp_path / "n.keras")
    assert theirs.layers[0].get_config()["height"] == 6
    # Keras 3.15 passes images through RandomCrop unchanged at inference; compare the conv
    # weights and the crop's config rather than predictions
    for a, b in zip(theirs.get_weights(), mine.get_weights()):
        np.testing.assert_array_equal(a, b)
    km = build(keras)
    km.save(tmp_path / "k.keras")
    ours = nk.models.load_model(tmp_path / "k.keras")
    assert ours.layers[0].height == 6 and ours.layers[0].width == 8 and ours.layers[0].seed == 2
    for a, b in zip(ours.get_weights(), km.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert ours.predict(x, verbose=0).shape == (4, 4, 6, 2)
