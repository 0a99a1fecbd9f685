"""Image augmentation layers: shapes, inference identity, seeded reproducibility, finite
differences of every backward, the affine resampler against TensorFlow's
ImageProjectiveTransformV3 and each layer against Keras 3's transform for the same parameters."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from _layer_checks import fd_check
from conftest import require
from nncore import layers
from nncore.layers import augmentation as A

MAKERS = {
    "RandomFlip": lambda **k: layers.RandomFlip(**k),
    "RandomTranslation": lambda **k: layers.RandomTranslation(0.2, (-0.1, 0.3), **k),
    "RandomRotation": lambda **k: layers.RandomRotation(0.15, **k),
    "RandomZoom": lambda **k: layers.RandomZoom((-0.3, 0.2), **k),
    "RandomContrast": lambda **k: layers.RandomContrast(0.4, **k),
    "RandomBrightness": lambda **k: layers.RandomBrightness(0.2, **k),
}


def _images(rng, shape=(3, 7, 9, 2)):
    return rng.uniform(0, 255, size=shape).astype(np.float32)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_shapes_identity_in_inference_and_seeded(name, rng):
    x = _images(rng)
    a, b = MAKERS[name](seed=5), MAKERS[name](seed=5)
    np.testing.assert_array_equal(a(x, training=False), x)
    ya = a(x)  # called directly: augments (as Keras)
    assert ya.shape == x.shape and ya.dtype == np.float32
    np.testing.assert_array_equal(ya, b(x))
    assert not np.array_equal(ya, x)
    np.testing.assert_array_equal(a(x[0]).shape, x[0].shape)  # one unbatched image
    m = nk.Sequential([nk.Input((7, 9, 2)), MAKERS[name](seed=1)])
    np.testing.assert_array_equal(m.predict(x, verbose=0), x)
    cfg = a.get_config()
    assert type(a).from_config(cfg).get_config() == cfg


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_backward_finite_differences(name, rng):
    x = _images(rng, (2, 5, 6, 2)) / 255.0
    kw = {"value_range": (0, 1)} if name in ("RandomContrast", "RandomBrightness") else {}
    lay = MAKERS[name](seed=3, **kw)
    lay._maybe_build((None, 5, 6, 2))
    params = lay._draw(np.random.default_rng(9), (2, 5, 6, 2))
    lay._draw = lambda rng, shape: params  # fixed parameters: a deterministic function
    fd_check(lay, x, rng, training=True)


@pytest.mark.parametrize("fill", A._FILL)
@pytest.mark.parametrize("interp", A._INTERP)
def test_affine_resampler_matches_tensorflow(fill, interp, rng):
    tf = require("tensorflow")
    x = _images(rng)
    for _ in range(4):
        a = rng.uniform(-3, 3, size=3)
        t = np.zeros((3, 8), np.float32)
        t[:, 0] = np.cos(a) * rng.uniform(0.5, 2.0, 3)
        t[:, 1], t[:, 3], t[:, 4] = -np.sin(a), np.sin(a), np.cos(a)
        t[:, 2], t[:, 5] = rng.uniform(-12, 12, 3), rng.uniform(-12, 12, 3)
        want = tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=t, output_shape=[7, 9], fill_value=3.5,
            interpolation=interp.upper(), fill_mode=fill.upper()).numpy()
        got = A.affine_apply(x, A.affine_plan(7, 9, t, fill, interp), 3.5)
        np.testing.assert_allclose(got, want, rtol=0, atol=3e-4)  # values up to 255


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="fill_mode must be one of"):
        layers.RandomRotation(0.1, fill_mode="mirror")
    with pytest.raises(ValueError, match="mode must be"):
        layers.RandomFlip("diagonal")
    with pytest.raises(ValueError, match="factor must be a number or a pair in"):
        layers.RandomContrast(1.5)
    with pytest.raises(ValueError, match="needs images"):
        layers.RandomFlip()(np.zeros((2, 3), np.float32))


def test_augmentation_in_a_training_model_and_round_trip(tmp_path, rng):
    nk.utils.set_random_seed(2)
    m = nk.Sequential([nk.Input((8, 8, 1)), layers.RandomFlip("horizontal"),
                       layers.RandomRotation(0.05, fill_mode="nearest"),
                       layers.RandomZoom(0.1), layers.RandomTranslation(0.1, 0.1),
                       layers.RandomContrast(0.1, value_range=(0, 1)),
                       layers.RandomBrightness(0.1, value_range=(0, 1)),
                       layers.Flatten(), layers.Dense(1)])
    m.compile("adam", "mse")
    x = rng.uniform(size=(16, 8, 8, 1)).astype(np.float32)
    y = x.mean(axis=(1, 2))
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    m.save(tmp_path / "m.nncore")
    back = nk.models.load_model(tmp_path / "m.nncore")
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))


# ---- Keras 3: the same parameters give the same images ------------------------------------

@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    import keras as k

    return k


KERAS_CASES = [
    ("RandomFlip", dict(mode="horizontal_and_vertical")),
    ("RandomFlip", dict(mode="vertical")),
    ("RandomTranslation", dict(height_factor=0.3, width_factor=(-0.2, 0.4))),
    ("RandomTranslation", dict(height_factor=0.3, width_factor=0.3, fill_mode="constant",
                               fill_value=7.0, interpolation="nearest")),
    ("RandomRotation", dict(factor=0.2)),
    ("RandomRotation", dict(factor=(-0.3, 0.1), fill_mode="nearest")),
    ("RandomRotation", dict(factor=0.5, fill_mode="constant", interpolation="nearest")),
    ("RandomRotation", dict(factor=0.4, fill_mode="wrap")),
    ("RandomTranslation", dict(height_factor=0.5, width_factor=0.6, fill_mode="wrap",
                               interpolation="nearest")),
    ("RandomZoom", dict(height_factor=(-0.4, 0.6), fill_mode="wrap")),
    ("RandomZoom", dict(height_factor=(-0.4, 0.3))),
    ("RandomZoom", dict(height_factor=0.3, width_factor=(-0.2, 0.5), fill_mode="constant")),
    ("RandomContrast", dict(factor=0.5)),
    ("RandomContrast", dict(factor=(0.2, 0.7), value_range=(0, 1))),
    ("RandomBrightness", dict(factor=0.3)),
    ("RandomBrightness", dict(factor=(-0.5, 0.2), value_range=(0, 1))),
]


@pytest.mark.parametrize("name,kw", KERAS_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(KERAS_CASES)])
def test_keras_transform_parity(keras, name, kw, rng):
    theirs = getattr(keras.layers, name)(seed=4, **kw)
    ours = getattr(layers, name)(seed=4, **kw)
    x = _images(rng, (4, 7, 9, 3))
    if kw.get("value_range") == (0, 1):
        x = x / 255.0
    t = theirs.get_random_transformation(x, training=True)
    want = np.asarray(theirs.transform_images(x, t, training=True))
    if name == "RandomFlip":
        # Keras draws one flag per image; 'horizontal_and_vertical' flips both axes together
        f = np.asarray(t["flips"]).reshape(-1).astype(bool)
        p = {"h": f if "horizontal" in kw["mode"] else np.zeros_like(f),
             "v": f if "vertical" in kw["mode"] else np.zeros_like(f)}
    else:
        p = {k: np.asarray(v) for k, v in t.items() if k in (
            "translations", "angle", "height_zoom", "width_zoom", "contrast_factor",
            "rgb_delta")}
    got, _ = ours._apply(x, p)
    np.testing.assert_allclose(got, want, rtol=0, atol=3e-4 * float(x.max()))
    # our parameter ranges are Keras's
    for key in ("factor", "height_factor", "width_factor"):
        if key in kw:
            mine, keras_cfg = ours.get_config()[key], theirs.get_config()[key]
            assert (list(mine) if isinstance(mine, (list, tuple)) else mine) == (
                list(keras_cfg) if isinstance(keras_cfg, (list, tuple)) else keras_cfg)


@pytest.mark.filterwarnings(  # Keras 3 saving under numpy 2 (as in test_keras_files.py)
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_files_with_augmentation(keras, tmp_path, rng):
    require("h5py")
    km = keras.Sequential([keras.Input((7, 9, 3)), keras.layers.RandomFlip("horizontal"),
                           keras.layers.RandomRotation(0.1, fill_mode="constant"),
                           keras.layers.RandomTranslation(0.1, 0.2),
                           keras.layers.RandomZoom(0.2, seed=3),
                           keras.layers.RandomContrast(0.3),
                           keras.layers.RandomBrightness(0.1),
                           keras.layers.Conv2D(2, 3)])
    km.save(tmp_path / "k.keras")
    ours = nk.models.load_model(tmp_path / "k.keras")
    assert [type(la).__name__ for la in ours.layers[:6]] == [
        "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast",
        "RandomBrightness"]
    assert ours.layers[1].fill_mode == "constant" and ours.layers[3].seed == 3
    x = _images(rng, (2, 7, 9, 3))
    np.testing.assert_allclose(ours.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-4,
                               atol=1e-3)
    ours.save(tmp_path / "n.keras")
    back = keras.models.load_model(tmp_path / "n.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-4)


def test_parameter_ranges_are_keras_ranges(keras, rng):
    """Keras 3's factor rules: RandomContrast(0.5) draws f in [1, 1.5] (its factor becomes
    (0, 0.5)); RandomBrightness(0.3) deltas in [-0.3, 0.3] * 255; rotation angles f * 360."""
    shape = (4000, 2, 2, 1)
    x = np.zeros(shape, np.float32)
    cases = [("RandomContrast", dict(factor=0.5), "contrast_factor"),
             ("RandomBrightness", dict(factor=0.3), "rgb_delta"),
             ("RandomRotation", dict(factor=(-0.1, 0.25)), "angle"),
             ("RandomZoom", dict(height_factor=(-0.4, 0.3)), "height_zoom")]
    for name, kw, key in cases:
        ours = np.asarray(getattr(layers, name)(seed=1, **kw)._draw(rng, shape)[key])
        theirs = np.asarray(getattr(keras.layers, name)(seed=1, **kw)
                            .get_random_transformation(x, training=True)[key])
        span = theirs.max() - theirs.min()
        assert abs(ours.min() - theirs.min()) < 0.01 * span, name
        assert abs(ours.max() - theirs.max()) < 0.01 * span, name
