"""TextVectorization: standardize / split / ngrams / max_tokens / every output mode against
Keras 3 on a small corpus (vocabularies and outputs identical), given vocabularies, configs and
bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from nncore import layers

CORPUS = np.array([
    "The cat sat on the mat.", "The DOG ate my homework!!", "cats and dogs, dogs and cats",
    "Hello,   world\tagain\nand again", "ÉCOLE école naïve café\u00a0x", "",
    "a-b c_d e.f 'quoted' [UNK] x", "the the the cat", "dogs ate; cats sat"])
QUERY = np.array(["the cat and the dog", "unknown words here", "Hello world!", "école",
                  "", "x y z the a-b"])

CASES = [dict(), dict(max_tokens=8), dict(output_sequence_length=4),
         dict(output_sequence_length=9, max_tokens=6), dict(ngrams=2), dict(ngrams=(1, 3)),
         dict(standardize="lower"), dict(standardize="strip_punctuation"),
         dict(standardize=None), dict(split="character", max_tokens=12),
         dict(split="character", ngrams=2, output_sequence_length=7), dict(split=None),
         dict(output_mode="multi_hot"), dict(output_mode="count", ngrams=2),
         dict(output_mode="count", max_tokens=10, pad_to_max_tokens=True),
         dict(output_mode="tf_idf"), dict(output_mode="tf_idf", ngrams=2, max_tokens=15),
         dict(output_mode="tf_idf", max_tokens=30, pad_to_max_tokens=True)]


def _vocab(layer):
    return [v if isinstance(v, str) else v.decode() for v in layer.get_vocabulary()]


@pytest.mark.parametrize("kw", CASES, ids=[str(i) for i in range(len(CASES))])
def test_text_vectorization_matches_keras(kw):
    require("tensorflow")
    import keras

    theirs, ours = keras.layers.TextVectorization(**kw), layers.TextVectorization(**kw)
    theirs.adapt(CORPUS)
    ours.adapt(CORPUS)
    assert ours.get_vocabulary() == _vocab(theirs)
    assert ours.vocabulary_size() == theirs.vocabulary_size()
    for q in (QUERY, QUERY[:, None], list(QUERY[:2])):
        want = np.asarray(theirs(q))
        got = ours(q)
        assert got.shape == want.shape
        assert got.dtype == want.dtype  # Keras's: int64, float32 for tf_idf
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # a layer made from the config (vocabulary and idf weights inside) computes the same
    back = layers.TextVectorization.from_config(ours.get_config())
    np.testing.assert_allclose(back(QUERY), ours(QUERY), rtol=1e-6)
    assert back.get_vocabulary() == ours.get_vocabulary()


def test_given_vocabulary_batches_and_datasets_match_keras():
    require("tensorflow")
    import keras
    import tensorflow as tf

    vocab = ["the", "cat", "dogs", "and"]
    for kw in (dict(vocabulary=vocab), dict(vocabulary=vocab, output_mode="multi_hot"),
               dict(vocabulary=vocab, output_mode="tf_idf", idf_weights=[0.5, 1.0, 1.5, 2.0])):
        np.testing.assert_allclose(layers.TextVectorization(**kw)(QUERY),
                                   np.asarray(keras.layers.TextVectorization(**kw)(QUERY)),
                                   rtol=1e-6)
    ds = tf.data.Dataset.from_tensor_slices(CORPUS).batch(4)
    theirs, ours = keras.layers.TextVectorization(), layers.TextVectorization()
    theirs.adapt(ds, steps=2)
    ours.adapt(ds, steps=2)
    assert ours.get_vocabulary() == _vocab(theirs)
    gen_ours = layers.TextVectorization(max_tokens=7)
    gen_ours.adapt(iter([CORPUS[:3], CORPUS[3:]]))
    one = layers.TextVectorization(max_tokens=7)
    one.adapt(CORPUS)
    assert gen_ours.get_vocabulary() == one.get_vocabulary()


def test_text_vectorization_without_keras():
    lay = layers.TextVectorization(output_sequence_length=5)
    lay.adapt(["b a a", "c a b"])
    assert lay.get_vocabulary() == ["", "[UNK]", "a", "b", "c"]
    np.testing.assert_array_equal(lay(np.array(["a c z", "b b b b b b"])),
                                  [[2, 4, 1, 0, 0], [3, 3, 3, 3, 3]])
    assert lay.compute_output_shape((None,)) == (None, 5)
    lay.set_vocabulary(["q", "r"])
    assert lay.get_vocabulary(include_special_tokens=False) == ["q", "r"]
    counts = layers.TextVectorization(output_mode="count", vocabulary=["x", "y"])
    np.testing.assert_array_equal(counts(["x x y zz", ""]), [[1, 2, 1], [0, 0, 0]])
    cfg = counts.get_config()
    assert layers.TextVectorization.from_config(cfg).get_config() == cfg
    with pytest.raises(ValueError, match="standardize must be one of"):
        layers.TextVectorization(standardize="upper")  # callables: test_text_callables
    with pytest.raises(ValueError, match="output_sequence_length is only for"):
        layers.TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(ValueError, match="ngrams must be"):
        layers.TextVectorization(ngrams=0)
    with pytest.raises(ValueError, match=r"text_vectorization\w*' \(TextVectorization\) needs "
                                         r"strings of shape \(batch,\) or \(batch, 1\), got "
                                         r"\(2, 2\)"):
        lay(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="needs strings, got dtype"):
        lay(np.zeros((2,), np.float32))
    with pytest.raises(ValueError, match="tf_idf.*needs adapt"):
        layers.TextVectorization(output_mode="tf_idf")(["a"])


def _text_model(K, vocab):
    tv = K.layers.TextVectorization(vocabulary=vocab, output_sequence_length=6)
    return K.Sequential([K.Input((1,), dtype="string"), tv, K.layers.Embedding(
        len(vocab) + 2, 4, mask_zero=True), K.layers.LSTM(3, return_sequences=True),
        K.layers.Dense(2)])


def test_string_input_model_matches_keras_and_saves(tmp_path, rng):
    require("tensorflow")
    import keras
    import nncore as nk
    import tensorflow as tf

    vocab = ["the", "cat", "sat", "dog", "ran", "on"]
    theirs, ours = _text_model(keras, vocab), _text_model(nk, vocab)
    ours.set_weights(theirs.get_weights())
    x = np.array(["the cat sat", "a dog ran on the mat", "cat", "the the the the the the the",
                  "", "dog"])[:, None]
    xt = tf.constant(x)  # Keras takes string tensors
    y = rng.normal(size=(6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(xt, verbose=0),
                               rtol=1e-5, atol=1e-6)
    theirs.compile(keras.optimizers.SGD(0.2), "mse")
    ours.compile(nk.optimizers.SGD(0.2), "mse")
    # the padded steps are masked out of the loss (Keras 3's masked reduction)
    np.testing.assert_allclose(ours.train_on_batch(x, y), theirs.train_on_batch(xt, y),
                               rtol=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)
    ours.fit(x, y, epochs=1, batch_size=4, verbose=0)
    ours.save(tmp_path / "t.nncore")
    back = nk.models.load_model(tmp_path / "t.nncore")
    np.testing.assert_array_equal(back.predict(x, verbose=0), ours.predict(x, verbose=0))
    with pytest.raises(TypeError, match="takes strings, got dtype float32"):
        ours.evaluate(np.zeros((6, 1), np.float32), y, verbose=0)
    with pytest.raises(ValueError, match=r"\(TextVectorization\) needs strings, got float"):
        ours.predict(np.zeros((2, 1), np.float32), verbose=0)


def test_keras_files_with_text_vectorization_round_trip(tmp_path):
    # The vocabulary goes to the .keras zip's assets/ as Keras 3 writes it (both directions
    # against Keras: tests/test_keras_files_vocab.py)
    require("h5py")
    import nncore as nk

    m = nk.Sequential([nk.Input((1,), dtype="string"),
                       layers.TextVectorization(vocabulary=["a"], output_sequence_length=2)])
    m.save(tmp_path / "t.keras")
    x = np.array([["a b"], ["b a"]], object)
    np.testing.assert_array_equal(nk.models.load_model(tmp_path / "t.keras").predict(
        x, verbose=0), [[2, 1], [1, 2]])
