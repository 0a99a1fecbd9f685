"""Categorical preprocessing: CategoryEncoding, Discretization, IntegerLookup, StringLookup —
outputs and adapted vocabularies identical to Keras 3's, configs round trip, bad input."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from conftest import require
from nncore import layers


def test_lookup_semantics_without_keras():
    lay = layers.StringLookup(vocabulary=["a", "b"], mask_token="")
    assert lay.get_vocabulary() == ["", "[UNK]", "a", "b"]
    np.testing.assert_array_equal(lay(np.array([["a", "", "q", "b"]])), [[2, 0, 1, 3]])
    inv = layers.StringLookup(vocabulary=["a", "b"], invert=True)
    np.testing.assert_array_equal(inv(np.array([[1, 2, 0]])), [["a", "b", "[UNK]"]])
    strict = layers.IntegerLookup(vocabulary=[4, 8], num_oov_indices=0)
    np.testing.assert_array_equal(strict(np.array([8, 4])), [1, 0])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        strict(np.array([5]))
    with pytest.raises(ValueError, match="values must be in"):
        layers.CategoryEncoding(3)(np.array([[0, 3]]))
    with pytest.raises(ValueError, match="repeated entries"):
        layers.StringLookup(vocabulary=["a", "a"])
    with pytest.raises(ValueError, match="num_oov_indices must be 0 or 1"):
        layers.StringLookup(num_oov_indices=2)
    for lay in (layers.StringLookup(vocabulary=["x", "y"], output_mode="count"),
                layers.IntegerLookup(max_tokens=5), layers.CategoryEncoding(4, "one_hot"),
                layers.Discretization([0.0, 1.5])):
        cfg = lay.get_config()
        assert type(lay).from_config(cfg).get_config() == cfg


def test_integer_lookup_feeds_an_embedding_model(tmp_path, rng):
    lookup = layers.IntegerLookup()
    lookup.adapt(rng.integers(0, 20, size=200) * 7)
    inp = nk.Input((3,), dtype="int64")
    m = nk.Model(inp, layers.Dense(1)(layers.Flatten()(
        layers.Embedding(lookup.vocabulary_size(), 2)(lookup(inp)))))
    m.compile("adam", "mse")
    x = rng.integers(0, 25, size=(16, 3)) * 7
    m.fit(x, rng.normal(size=(16, 1)).astype(np.float32), epochs=1, verbose=0)
    m.save(tmp_path / "m.nncore")
    back = nk.models.load_model(tmp_path / "m.nncore")
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    import keras as k

    return k


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("mode", ["int", "one_hot", "multi_hot", "count"])
@pytest.mark.parametrize("kw", [dict(), dict(mask_token="", max_tokens=5),
                                dict(num_oov_indices=0)])
def test_string_lookup_keras_parity(keras, mode, kw, rng):
    words = np.array(list("abcdefgh"))
    data = words[rng.integers(0, 8, size=(12, 5)) // rng.integers(1, 3, size=(12, 5))]
    theirs = keras.layers.StringLookup(output_mode=mode, **kw)
    ours = layers.StringLookup(output_mode=mode, **kw)
    theirs.adapt(data)
    ours.adapt(data)
    assert ours.get_vocabulary() == [str(v) for v in theirs.get_vocabulary()]
    query = data[:4] if kw.get("num_oov_indices") == 0 else np.array(
        [["a", "zz", "c", "h", "b"], ["q", "q", "a", "g", "e"]])
    if mode == "one_hot":
        query = query[:, :1]
    _same(ours(query), theirs(query))
    if kw.get("mask_token") is not None and mode == "int":
        _same(ours(np.array([["", "a"]])), theirs(np.array([["", "a"]])))


@pytest.mark.parametrize("mode", ["int", "multi_hot", "count"])
def test_integer_lookup_keras_parity(keras, mode, rng):
    data = rng.integers(0, 9, size=(20, 4)) * 3
    theirs = keras.layers.IntegerLookup(output_mode=mode, max_tokens=6)
    ours = layers.IntegerLookup(output_mode=mode, max_tokens=6)
    theirs.adapt(data)
    ours.adapt(data)
    assert ours.get_vocabulary() == [int(v) for v in theirs.get_vocabulary()]
    q = np.array([[0, 3, 99, 24], [6, 6, 1, 9]])
    _same(ours(q), theirs(q))
    inv_t = keras.layers.IntegerLookup(vocabulary=[3, 9, 12], invert=True)
    inv_o = layers.IntegerLookup(vocabulary=[3, 9, 12], invert=True)
    _same(inv_o(np.array([[1, 0, 3]])), inv_t(np.array([[1, 0, 3]])))


@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count"])
def test_category_encoding_and_discretization_keras_parity(keras, mode, rng):
    x = rng.integers(0, 6, size=(7, 3))
    for q in (x, x[:, :1]) if mode == "one_hot" else (x,):
        _same(layers.CategoryEncoding(6, output_mode=mode)(q),
              keras.layers.CategoryEncoding(6, output_mode=mode)(q))
    v = rng.normal(size=(5, 4)) * 2
    v[0, :3] = [-1.0, 0.0, 1.0]  # values on the boundaries
    b = [-1.0, 0.0, 0.5, 1.0]
    _same(layers.Discretization(b)(v), keras.layers.Discretization(bin_boundaries=b)(v))
    _same(layers.Discretization(b, output_mode=mode)(v if mode != "one_hot" else v[:, :1]),
          keras.layers.Discretization(bin_boundaries=b, output_mode=mode)(
              v if mode != "one_hot" else v[:, :1]))


@pytest.mark.filterwarnings(  # Keras 3 saving under numpy 2 (as in test_keras_files.py)
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_files_with_lookup_layers(keras, tmp_path, rng):
    require("h5py")
    inp = keras.Input((3,), dtype="int64")
    look = keras.layers.IntegerLookup(vocabulary=[5, 10, 15, 20])
    enc = keras.layers.CategoryEncoding(5, output_mode="count")(look(inp))
    km = keras.Model(inp, keras.layers.Dense(2)(enc))
    km.save(tmp_path / "k.keras")
    ours = nk.models.load_model(tmp_path / "k.keras")
    x = np.array([[5, 20, 7], [10, 10, 15]])
    np.testing.assert_allclose(ours.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6)
    ours.save(tmp_path / "n.keras")
    back = keras.models.load_model(tmp_path / "n.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6)
