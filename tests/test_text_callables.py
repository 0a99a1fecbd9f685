"""TextVectorization with a callable standardize / split, as Keras accepts: the same function
gives Keras's vocabulary and outputs (in memory, adapt, call, training); a model saves it by its
registered name only, and an unregistered one is a clear error naming the layer."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from conftest import require

CORPUS = np.array(["The Cat-sat ON the mat", "a DOG-ate 12 cats", "cat-dog-cat", "", "Mat 7"])
QUERY = np.array(["the dog-sat", "Q-12 cat", "mat"])


def _tf_fns():
    tf = require("tensorflow")

    def std(x):
        return tf.strings.regex_replace(tf.strings.lower(x), "[0-9]", "#")

    def spl(x):
        return tf.strings.split(x, sep="-")

    return std, spl


def _py_std(batch):
    """Plain Python on the NumPy batch nncore passes (a Keras user's function may be either)."""
    return np.vectorize(lambda s: "".join("#" if c.isdigit() else c.lower() for c in s),
                        otypes=[object])(batch)


def _py_split(batch):
    return [s.split("-") for s in batch]


CONFIGS = [dict(), dict(output_mode="count"), dict(output_mode="multi_hot", ngrams=2),
           dict(output_mode="tf_idf", max_tokens=6), dict(output_sequence_length=4)]


@pytest.mark.parametrize("which", ["standardize", "split", "both"])
@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
def test_callables_match_keras(which, cfg):
    require("tensorflow")
    import keras

    std, spl = _tf_fns()
    kw = dict(CONFIGS[cfg])
    if which in ("standardize", "both"):
        kw["standardize"] = std
    if which in ("split", "both"):
        kw["split"] = spl
    theirs = keras.layers.TextVectorization(**kw)
    ours = nk.layers.TextVectorization(**kw)
    theirs.adapt(CORPUS)
    ours.adapt(CORPUS)
    assert ours.get_vocabulary() == [str(v) for v in theirs.get_vocabulary()]
    for q in (QUERY, QUERY[:, None]):
        want = np.asarray(theirs(q))
        got = ours(q)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_python_callables_give_what_the_tf_ones_give():
    std, spl = _tf_fns()
    a = nk.layers.TextVectorization(standardize=std, split=spl, output_mode="count")
    b = nk.layers.TextVectorization(standardize=_py_std, split=_py_split, output_mode="count")
    a.adapt(CORPUS)
    b.adapt(CORPUS)
    assert a.get_vocabulary() == b.get_vocabulary()
    assert "ate ## cats" in b.get_vocabulary() and "cat" in b.get_vocabulary()
    np.testing.assert_array_equal(a(QUERY), b(QUERY))


def test_callables_in_a_trained_model_match_keras(rng):
    require("tensorflow")
    import keras

    std, spl = _tf_fns()

    def build(lib):
        tv = lib.layers.TextVectorization(standardize=std, split=spl, output_sequence_length=5)
        tv.adapt(CORPUS)
        inp = lib.Input((1,), dtype="string")
        h = lib.layers.Embedding(tv.vocabulary_size(), 3, mask_zero=True)(tv(inp))
        return lib.Model(inp, lib.layers.Dense(1)(lib.layers.GRU(2)(h)))

    keras.utils.set_random_seed(4)
    theirs, ours = build(keras), build(nk)
    ours.set_weights(theirs.get_weights())
    import tensorflow as tf

    x = np.concatenate([CORPUS, QUERY])[:, None]
    xt = tf.constant(x)  # Keras takes string tensors
    y = rng.normal(size=(len(x), 1)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(xt, verbose=0),
                               rtol=1e-4, atol=1e-6)
    theirs.compile(keras.optimizers.SGD(0.1), "mse")
    ours.compile(nk.optimizers.SGD(0.1), "mse")
    theirs.fit(xt, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def _model(std, spl):
    tv = nk.layers.TextVectorization(standardize=std, split=spl, output_mode="count",
                                     name="tv")
    tv.adapt(CORPUS)
    inp = nk.Input((1,), dtype="string")
    return nk.Model(inp, tv(inp))


def test_registered_callables_save_by_name_only(tmp_path):
    def std(batch):
        return _py_std(batch)

    std = nk.saving.register_keras_serializable(package="texttest", name="std")(std)
    spl = nk.saving.register_keras_serializable(package="texttest", name="spl")(_py_split)
    model = _model(std, spl)
    cfg = model.get_layer("tv").get_config()
    assert cfg["standardize"] == {"module": "builtins", "class_name": "function",
                                  "config": "texttest>std", "registered_name": "function"}
    assert cfg["split"]["config"] == "texttest>spl"
    path = tmp_path / "m.nncore"
    model.save(path)
    back = nk.models.load_model(path)
    assert back.get_layer("tv").standardize is std and back.get_layer("tv").split is spl
    np.testing.assert_array_equal(back.predict(QUERY[:, None], verbose=0),
                                  model.predict(QUERY[:, None], verbose=0))


def test_unregistered_callable_is_a_clear_error_naming_the_layer(tmp_path):
    model = _model(_py_std, "whitespace")
    with pytest.raises(ValueError, match="TextVectorization layer 'tv': its standardize function"
                                         ".*not registered"):
        model.save(tmp_path / "m.nncore")
    assert not (tmp_path / "m.nncore").exists()


def test_a_file_naming_an_unknown_function_never_loads_code():
    cfg = nk.layers.TextVectorization(name="tv2").get_config()
    bad = dict(cfg, standardize={"module": "builtins", "class_name": "function",
                                 "config": "nowhere>fn", "registered_name": "function"})
    with pytest.raises(ValueError, match="'tv2'.*'nowhere>fn' is not registered"):
        nk.layers.TextVectorization.from_config(bad)
    code = dict(cfg, split={"class_name": "__lambda__", "config": {"code": "4wEAAAA="}})
    with pytest.raises(ValueError, match="never loads code"):
        nk.layers.TextVectorization.from_config(code)
    # by custom_objects, as Keras
    fn = nk.layers.TextVectorization.from_config(
        bad, custom_objects={"nowhere>fn": _py_std}).standardize
    assert fn is _py_std


def test_callable_results_of_the_wrong_size_are_clear_errors():
    tv = nk.layers.TextVectorization(standardize=lambda b: b[:1], vocabulary=["a"], name="tv3")
    with pytest.raises(ValueError, match="'tv3'.*standardize function gave 1 strings for 3"):
        tv(QUERY)
    tv = nk.layers.TextVectorization(split=lambda b: [["a"]], vocabulary=["a"], name="tv4")
    with pytest.raises(ValueError, match="'tv4'.*3 token lists"):
        tv(QUERY)
    tv = nk.layers.TextVectorization(standardize=lambda b: np.zeros(b.shape), vocabulary=["a"],
                                     name="tv5")
    with pytest.raises(ValueError, match="'tv5'.*must give strings"):
        tv(QUERY)
