"""keras.utils functions: to_categorical, normalize, pad_sequences (also through
nncore.preprocessing.sequence) against Keras 3 and their written behaviour."""

from __future__ import annotations

import numpy as np
import pytest

import nncore
from nncore import utils
from conftest import require


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    return require("keras")


def test_to_categorical(keras, rng):
    for y, n in ((rng.integers(0, 5, 9), None), (rng.integers(0, 5, (9, 1)), 7),
                 (rng.integers(0, 3, (2, 4)), None), (np.array([2.0, 0.0, 1.0]), None)):
        got = utils.to_categorical(y, n)
        want = keras.utils.to_categorical(y, n)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(utils.to_categorical([1, 0], 3), [[0, 1, 0], [1, 0, 0]])
    for bad, n in (([0, 3], 3), ([-1, 0], None), ([0.5], None)):
        with pytest.raises(ValueError):
            utils.to_categorical(bad, n)
    with pytest.raises(TypeError):
        utils.to_categorical(np.array(["a"]))


def test_normalize(keras, rng):
    x = rng.normal(size=(6, 5)).astype(np.float32)
    x[2] = 0.0
    for axis, order in ((-1, 2), (1, 2), (-1, 1)):
        got = utils.normalize(x, axis=axis, order=order)
        np.testing.assert_allclose(got, keras.utils.normalize(x, axis=axis, order=order),
                                   rtol=1e-6)
    # axis=0 (Keras 3 turns it into -1 by `axis or -1` and then fails to broadcast).
    cols = np.linalg.norm(x, axis=0, keepdims=True)
    np.testing.assert_allclose(utils.normalize(x, axis=0), x / cols, rtol=1e-6)
    got = utils.normalize(x)
    np.testing.assert_allclose(np.linalg.norm(got[[0, 1, 3]], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(got[2], 0.0)


SEQS = [[1, 2, 3], [4, 5], [], [6, 7, 8, 9, 10], [11]]


@pytest.mark.parametrize("kw", [{}, {"maxlen": 3}, {"maxlen": 3, "padding": "post"},
                                {"maxlen": 4, "truncating": "post", "value": -1},
                                {"dtype": "float32", "value": 0.5,
                                                "padding": "post"}])
def test_pad_sequences_matches_keras(keras, kw):
    got = utils.pad_sequences(SEQS, **kw)
    want = keras.utils.pad_sequences(SEQS, **kw)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(nncore.preprocessing.sequence.pad_sequences(SEQS, **kw), got)


def test_pad_sequences_written_behaviour():
    assert utils.pad_sequences(SEQS, maxlen=0).shape == (5, 0)  # Keras 3 raises here
    got = utils.pad_sequences(SEQS, maxlen=2)
    np.testing.assert_array_equal(got, [[2, 3], [4, 5], [0, 0], [9, 10], [0, 11]])
    got = utils.pad_sequences(SEQS, maxlen=2, padding="post", truncating="post")
    np.testing.assert_array_equal(got, [[1, 2], [4, 5], [0, 0], [6, 7], [11, 0]])
    vec = utils.pad_sequences([np.ones((2, 3)), np.ones((1, 3))], dtype="float32")
    assert vec.shape == (2, 2, 3) and vec[1, 0].sum() == 0 and vec[1, 1].sum() == 3
    strs = utils.pad_sequences([["a", "b"], ["c"]], dtype=object, value="")
    assert strs.tolist() == [["a", "b"], ["", "c"]]
    with pytest.raises(ValueError):
        utils.pad_sequences(SEQS, padding="middle")
    with pytest.raises(ValueError):
        utils.pad_sequences([1, 2])
    with pytest.raises(ValueError):
        utils.pad_sequences([["a"]], value="x")
    with pytest.raises(ValueError):
        utils.pad_sequences([np.ones((2, 3)), np.ones((1, 4))])


# ---- dataset utilities -------------------------------------------------------------------------
def _batches_of(ds):
    out = []
    for b in ds.as_numpy_iterator():
        out.append(b)
    return out


@pytest.mark.parametrize("kw", [
    {"sequence_length": 5},
    {"sequence_length": 4, "sequence_stride": 3, "sampling_rate": 2, "batch_size": 4},
    {"sequence_length": 3, "start_index": 5, "end_index": 40, "batch_size": 7},
    {"sequence_length": 6, "batch_size": None},
])
def test_timeseries_dataset_matches_keras(keras, kw):
    data = np.arange(60 * 2, dtype=np.float32).reshape(60, 2)
    targets = np.arange(60) * 10
    ours = utils.timeseries_dataset_from_array(data, targets, **kw)
    theirs = _batches_of(keras.utils.timeseries_dataset_from_array(data, targets, **kw))
    assert len(ours) == len(theirs)
    for (ox, oy), (tx, ty) in zip(ours, theirs):
        np.testing.assert_array_equal(ox, tx)
        np.testing.assert_array_equal(oy, ty)
    no_t = utils.timeseries_dataset_from_array(data, None, **kw)
    np.testing.assert_array_equal(no_t.numpy(), ours.numpy()[0])


def test_timeseries_shuffle_permutes_windows():
    data = np.arange(50)
    a = utils.timeseries_dataset_from_array(data, data, 4, shuffle=True, seed=3, batch_size=8)
    b = utils.timeseries_dataset_from_array(data, data, 4, shuffle=False, batch_size=8)
    xa, ya = a.numpy()
    xb, _ = b.numpy()
    assert sorted(map(tuple, xa)) == sorted(map(tuple, xb)) and not np.array_equal(xa, xb)
    np.testing.assert_array_equal(xa[:, 0], ya)  # each window keeps its target
    with pytest.raises(ValueError):
        utils.timeseries_dataset_from_array(data, None, 0)


def test_split_dataset_matches_keras(keras, rng):
    x = rng.normal(size=(20, 3)).astype(np.float32)
    y = np.arange(20)
    for kw in ({"left_size": 0.8}, {"right_size": 5}, {"left_size": 7, "right_size": 0.25}):
        (lx, ly), (rx, ry) = utils.split_dataset((x, y), **kw)
        kl, kr = keras.utils.split_dataset((x, y), **kw)
        klx = np.stack([a for a, _ in kl.as_numpy_iterator()])
        krx = np.stack([a for a, _ in kr.as_numpy_iterator()])
        np.testing.assert_array_equal(lx, klx)
        np.testing.assert_array_equal(rx, krx)
        np.testing.assert_array_equal(ly, [b for _, b in kl.as_numpy_iterator()])
    left, right = utils.split_dataset(x, left_size=0.5, shuffle=True, seed=1)
    assert len(left) == len(right) == 10
    assert sorted(map(tuple, np.concatenate([left, right]))) == sorted(map(tuple, x))
    with pytest.raises(ValueError):
        utils.split_dataset(x, left_size=1.5)


def _image_tree(tmp_path, rng):
    Image = require("PIL.Image")
    root = tmp_path / "imgs"
    arrays = {}
    for cls, n in (("cats", 3), ("dogs", 4)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
            p = root / cls / f"{i}.png"
            Image.fromarray(a).save(p)
            arrays[str(p)] = a
    (root / "dogs" / "notes.txt").write_text("not an image")
    return root, arrays


@pytest.mark.parametrize("kw", [{"label_mode": "int"}, {"label_mode": "categorical"},
                                {"label_mode": "binary", "color_mode": "grayscale"},
                                {"validation_split": 0.3, "subset": "validation"},
                                {"validation_split": 0.3, "subset": "training",
                                 "label_mode": None}])
def test_image_dataset_from_directory_matches_keras(keras, tmp_path, rng, kw):
    root, _ = _image_tree(tmp_path, rng)
    ours = utils.image_dataset_from_directory(root, image_size=(6, 8), shuffle=False,
                                              batch_size=3, verbose=False, **kw)
    theirs = keras.utils.image_dataset_from_directory(root, image_size=(6, 8), shuffle=False,
                                                      batch_size=3, verbose=False, **kw)
    if kw.get("label_mode", "int") is not None:
        assert ours.class_names == theirs.class_names == ["cats", "dogs"]
    tb = _batches_of(theirs)
    assert len(ours) == len(tb)
    for o, t in zip(ours, tb):
        o, t = (o, t) if kw.get("label_mode", "int") is not None else ((o,), (t,))
        for a, b in zip(o, t):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1 if kw.get("color_mode") else 0)


def test_image_dataset_resizes_and_trains(tmp_path, rng):
    root, _ = _image_tree(tmp_path, rng)
    ds = utils.image_dataset_from_directory(root, image_size=(4, 4), seed=1, verbose=False)
    x, y = ds.numpy()
    assert x.shape == (7, 4, 4, 3) and x.dtype == np.float32 and sorted(y) == [0] * 3 + [1] * 4
    from nncore import layers, models

    model = models.Sequential([layers.Flatten(input_shape=(4, 4, 3)),
                               layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x / 255.0, y, epochs=1, verbose=0)


def test_text_dataset_from_directory_matches_keras(keras, tmp_path):
    root = tmp_path / "txt"
    for cls, texts in (("neg", ["bad", "awful film"]), ("pos", ["good", "great", "fine"])):
        (root / cls).mkdir(parents=True)
        for i, t in enumerate(texts):
            (root / cls / f"{i}.txt").write_text(t)
    for kw in ({}, {"max_length": 3, "label_mode": "categorical"},
               {"validation_split": 0.4, "subset": "training"}):
        ours = utils.text_dataset_from_directory(root, shuffle=False, verbose=False,
                                                 batch_size=2, **kw)
        theirs = _batches_of(keras.utils.text_dataset_from_directory(
            root, shuffle=False, verbose=False, batch_size=2, **kw))
        assert len(ours) == len(theirs)
        for (ox, oy), (tx, ty) in zip(ours, theirs):
            assert list(ox) == [t.decode() for t in tx]
            np.testing.assert_array_equal(oy, ty)


def test_image_file_helpers_match_keras(keras, tmp_path, rng):
    require("PIL")
    a = rng.uniform(-3, 7, (5, 7, 3)).astype(np.float32)
    img = utils.array_to_img(a)
    np.testing.assert_array_equal(np.asarray(img), np.asarray(keras.utils.array_to_img(a)))
    p = tmp_path / "x.png"
    utils.save_img(p, a)
    for kw in ({}, {"color_mode": "grayscale"}, {"target_size": (3, 4), "interpolation": "bilinear"}):
        np.testing.assert_array_equal(utils.img_to_array(utils.load_img(p, **kw)),
                                      keras.utils.img_to_array(keras.utils.load_img(p, **kw)))
    assert utils.img_to_array(utils.load_img(p), data_format="channels_first").shape == (3, 5, 7)


def test_pillow_and_pydot_are_optional(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="Pillow"):
        utils.load_img(tmp_path / "x.png")
    monkeypatch.setitem(sys.modules, "pydot", None)
    with pytest.raises(ImportError, match="pydot"):
        utils.plot_model(object(), to_file=tmp_path / "m.png")


def test_model_to_dot_with_pydot():
    require("pydot")
    from nncore import layers, models

    model = models.Sequential([layers.Dense(3, activation="relu", input_shape=(2,)),
                               layers.Dense(1)])
    src = utils.model_to_dot(model, show_shapes=True, show_layer_activations=True).to_string()
    for lay in model.layers:
        assert lay.name in src
    assert "activation: relu" in src and "->" in src
