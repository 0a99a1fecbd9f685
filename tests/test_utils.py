"""keras.utils functions: to_categorical, normalize, pad_sequences (also through
nncore.preprocessing.sequence) against Keras 3 and their written behaviour."""

from __future__ import annotations

import numpy as np
import pytest

import nncore
from nncore import utils


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("tensorflow")
    return pytest.importorskip("keras")


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
