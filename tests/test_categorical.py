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
    got = inv(np.array([[1, 2, 0]]))  # Keras's kind: an object array of UTF-8 bytes
    assert got.dtype == object and got.tolist() == [[b"a", b"b", b"[UNK]"]]
    strict = layers.IntegerLookup(vocabulary=[4, 8], num_oov_indices=0)
    np.testing.assert_array_equal(strict(np.array([8, 4])), [1, 0])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        strict(np.array([5]))
    with pytest.raises(ValueError, match="values must be in"):
        layers.CategoryEncoding(3)(np.array([[0, 3]]))
    with pytest.raises(ValueError, match="repeated entries"):
        layers.StringLookup(vocabulary=["a", "a"])
    with pytest.raises(ValueError, match="num_oov_indices must be an int >= 0"):
        layers.StringLookup(num_oov_indices=-1)
    with pytest.raises(ValueError, match="salt can only be used with oov_method='farmhash'"):
        layers.IntegerLookup(num_oov_indices=3, salt=4)
    with pytest.raises(ValueError, match="pad_to_max_tokens=True needs max_tokens"):
        layers.StringLookup(output_mode="count", pad_to_max_tokens=True)
    with pytest.raises(ValueError, match="tf_idf.*needs idf_weights"):
        layers.StringLookup(output_mode="tf_idf", vocabulary=["a"])
    with pytest.raises(ValueError, match=r"idf_weights of shape \(1,\) for 2"):
        layers.StringLookup(output_mode="tf_idf", vocabulary=["a", "b"], idf_weights=[1.0])
    with pytest.raises(ValueError, match="needs adapt"):
        layers.StringLookup(output_mode="tf_idf")(np.array([["a"]]))
    for lay in (layers.StringLookup(vocabulary=["x", "y"], output_mode="count"),
                layers.IntegerLookup(max_tokens=5), layers.CategoryEncoding(4, "one_hot"),
                layers.Discretization([0.0, 1.5]), layers.Discretization(num_bins=3),
                layers.IntegerLookup(vocabulary=[1, 5], num_oov_indices=3,
                                     oov_method="farmhash", salt=[1, 2]),
                layers.StringLookup(vocabulary=["a", "b"], output_mode="tf_idf",
                                    idf_weights=[0.5, 1.5], max_tokens=6,
                                    pad_to_max_tokens=True)):
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


# ---- Discretization.adapt: Keras 3's approximate quantile summaries, repeated exactly ----------
def test_discretization_adapt_without_keras(rng):
    d = rng.normal(size=5000)
    lay = layers.Discretization(num_bins=4, epsilon=0.001)
    lay.adapt(d)
    # Keras's scheme is approximate: each boundary within epsilon-ish rank error of the exact
    # quantile (the bound asserted: 2 epsilon of the data's rank)
    exact = np.quantile(d, [0.25, 0.5, 0.75])
    ranks = np.searchsorted(np.sort(d), lay.bin_boundaries) / d.size
    np.testing.assert_allclose(ranks, [0.25, 0.5, 0.75], atol=2 * 0.001)
    assert np.all(np.abs(np.asarray(lay.bin_boundaries) - exact) < 0.05)
    counts = np.bincount(lay(d), minlength=4)
    assert counts.min() > 0.24 * d.size
    back = layers.Discretization.from_config(lay.get_config())
    assert back.bin_boundaries == lay.bin_boundaries and back.num_bins == 4
    with pytest.raises(ValueError, match="cannot adapt a Discretization made with"):
        layers.Discretization([0.0]).adapt(d)
    with pytest.raises(ValueError, match="call adapt"):
        layers.Discretization(num_bins=3)(d)
    with pytest.raises(ValueError, match="finite"):
        layers.Discretization(num_bins=3).adapt(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="not both"):
        layers.Discretization([0.0], num_bins=2)


@pytest.mark.parametrize("n,num_bins,eps", [(1000, 4, 0.01), (37, 5, 0.01), (5000, 10, 0.001),
                                            (10, 20, 0.01), (3001, 7, 0.05), (257, 1, 0.1)])
def test_discretization_adapt_keras_parity(keras, n, num_bins, eps, rng):
    d = rng.normal(size=n) * 3 + 1
    d[: n // 10] = 2.0  # ties
    for data in (d, [d[i:i + 97] for i in range(0, n, 97)], d.reshape(-1, 1)):
        theirs = keras.layers.Discretization(num_bins=num_bins, epsilon=eps)
        ours = layers.Discretization(num_bins=num_bins, epsilon=eps)
        theirs.adapt(data)
        ours.adapt(data)
        assert ours.bin_boundaries == [float(v) for v in theirs.bin_boundaries]
        for mode in ("int", "count"):
            theirs.output_mode = ours.output_mode = mode
            q = np.resize(d, 40).reshape(8, 5)
            _same(ours(q), theirs(q))
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(d.astype(np.float32)).batch(50)
    theirs = keras.layers.Discretization(num_bins=num_bins, epsilon=eps)
    ours = layers.Discretization(num_bins=num_bins, epsilon=eps)
    theirs.adapt(ds, steps=3)
    ours.adapt(ds, steps=3)
    assert ours.bin_boundaries == [float(v) for v in theirs.bin_boundaries]


# ---- lookups: several OOV slots, tf_idf, pad_to_max_tokens ------------------------------------
@pytest.mark.parametrize("kw", [dict(oov_method="floormod"), dict(oov_method="farmhash"),
                                dict(oov_method="farmhash", salt=7),
                                dict(oov_method="farmhash", salt=(3, 1 << 40)),
                                dict(oov_method="floormod", mask_token=0)])
def test_integer_lookup_oov_buckets_match_keras(keras, kw, rng):
    vocab = [3, 9, 12, 40]
    q = rng.integers(-(1 << 40), 1 << 40, size=(50, 8))
    q[:, :4] = rng.integers(-60, 60, size=(50, 4))
    q[0, :4] = vocab
    for n in (2, 5, 17):
        theirs = keras.layers.IntegerLookup(vocabulary=vocab, num_oov_indices=n, **kw)
        ours = layers.IntegerLookup(vocabulary=vocab, num_oov_indices=n, **kw)
        assert ours.get_vocabulary() == [int(v) for v in theirs.get_vocabulary()]
        _same(ours(q), theirs(q))


@pytest.mark.parametrize("salt", [None, 5, [11, 12]])
def test_string_lookup_oov_buckets_match_keras(keras, salt, rng):
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz é漢0123456789"))
    words = ["".join(alphabet[rng.integers(0, len(alphabet), size=k)])
             for k in rng.integers(0, 90, size=400)]
    q = np.array(words).reshape(40, 10)
    theirs = keras.layers.StringLookup(vocabulary=words[:5], num_oov_indices=9, salt=salt)
    ours = layers.StringLookup(vocabulary=words[:5], num_oov_indices=9, salt=salt)
    _same(ours(q), theirs(q))


def test_farmhash_and_siphash_match_tensorflow_on_every_length(rng):
    require("tensorflow")
    import tensorflow as tf
    from nncore.layers import _hash

    data = [bytes(rng.integers(0, 256, size=n, dtype=np.uint8)) for n in
            list(range(0, 160)) + [191, 192, 193, 255, 256, 257, 1000, 4099]]
    big = (1 << 63) - 25  # a bucket count near 2**63 keeps almost the whole hash
    _same(_hash.buckets(data, big), tf.strings.to_hash_bucket_fast(data, big).numpy())
    key = [0x0123456789ABCDEF, 0x7EDCBA9876543210]  # TF takes int64 keys
    _same(_hash.buckets(data, big, salt=key),
          tf.strings.to_hash_bucket_strong(data, big, key=key).numpy())


@pytest.mark.parametrize("kw", [dict(), dict(max_tokens=5), dict(num_oov_indices=2),
                                dict(max_tokens=9, pad_to_max_tokens=True)])
def test_string_lookup_tf_idf_matches_keras(keras, kw, rng):
    words = np.array(list("abcdefg"))
    docs = words[rng.integers(0, 7, size=(9, 6)) // rng.integers(1, 3, size=(9, 6))]
    theirs = keras.layers.StringLookup(output_mode="tf_idf", **kw)
    ours = layers.StringLookup(output_mode="tf_idf", **kw)
    theirs.adapt(docs)
    ours.adapt(docs)
    assert ours.get_vocabulary() == [str(v) for v in theirs.get_vocabulary()]
    q = np.array([["a", "a", "zz", "f", "b"], ["e", "b", "c", "q", "g"]])
    np.testing.assert_allclose(ours(q), theirs(q), rtol=1e-6, atol=1e-7)
    # a given vocabulary with its weights, and the config round trip of an adapted layer
    back = layers.StringLookup.from_config(ours.get_config())
    np.testing.assert_allclose(back(q), ours(q), rtol=1e-6)
    given = dict(vocabulary=["a", "b", "c"], idf_weights=[0.5, 2.0, 1.25])
    np.testing.assert_allclose(layers.StringLookup(output_mode="tf_idf", **given)(q),
                               keras.layers.StringLookup(output_mode="tf_idf", **given)(q),
                               rtol=1e-6)


@pytest.mark.parametrize("mode", ["multi_hot", "count", "one_hot"])
def test_lookup_pad_to_max_tokens_matches_keras(keras, mode, rng):
    kw = dict(vocabulary=[4, 8, 15], max_tokens=7, pad_to_max_tokens=True, output_mode=mode)
    q = np.array([[4, 16], [8, 8]]) if mode != "one_hot" else np.array([[4], [99]])
    _same(layers.IntegerLookup(**kw)(q), keras.layers.IntegerLookup(**kw)(q))


@pytest.mark.filterwarnings(  # Keras 3 saving under numpy 2 (as in test_keras_files.py)
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_files_with_adapted_discretization_and_hashed_lookups(keras, tmp_path, rng):
    require("h5py")
    d = rng.normal(size=300)

    def build(K, disc):
        num = K.Input((3,))
        ids = K.Input((4,), dtype="int64")
        a = K.layers.CategoryEncoding(5, output_mode="count")(disc(num))
        look = K.layers.IntegerLookup(vocabulary=[5, 10, 15], num_oov_indices=3,
                                      oov_method="farmhash", salt=9, output_mode="count")
        b = look(ids)
        return K.Model([num, ids], K.layers.Dense(2)(K.layers.Concatenate()([a, b])))

    ours_disc = layers.Discretization(num_bins=5)
    ours_disc.adapt(d)
    ours = build(nk, ours_disc)
    x = [rng.normal(size=(6, 3)).astype(np.float32), rng.integers(0, 30, size=(6, 4))]
    for ext in (".keras", ".nncore"):
        ours.save(tmp_path / f"n{ext}")
        back = nk.models.load_model(tmp_path / f"n{ext}")
        _same(back.predict(x, verbose=0), ours.predict(x, verbose=0))
    theirs = keras.models.load_model(tmp_path / "n.keras")
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
    k_disc = keras.layers.Discretization(num_bins=5)
    k_disc.adapt(d)
    km = build(keras, k_disc)
    km.save(tmp_path / "k.keras")
    mine = nk.models.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(mine.predict(x, verbose=0), km.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)
