"""Output dtypes of the categorical and text preprocessing layers, compared with Keras 3's own
(TensorFlow backend) in every output_mode, with and without `dtype=`: values and dtypes."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from conftest import require

DTYPES = [None, "float64", "int32", "int64"]


def _case(lib, layer, mode, dtype):
    """(layer, input) for one configuration."""
    L = lib.layers
    kw = {} if dtype is None else {"dtype": dtype}
    strings = np.array([["a"], ["b"], ["zz"], ["a"]])
    if layer == "StringLookup":
        idf = {"idf_weights": [1.5, 0.5]} if mode == "tf_idf" else {}
        return L.StringLookup(vocabulary=["a", "b"], output_mode=mode, **idf, **kw), strings
    if layer == "IntegerLookup":
        idf = {"idf_weights": [1.5, 0.5]} if mode == "tf_idf" else {}
        return (L.IntegerLookup(vocabulary=[3, 7], output_mode=mode, **idf, **kw),
                np.array([[3], [7], [9], [3]]))
    if layer == "CategoryEncoding":
        return (L.CategoryEncoding(num_tokens=5, output_mode=mode, **kw),
                np.array([[1], [4], [1], [0]]))
    if layer == "Hashing":
        return L.Hashing(num_bins=5, output_mode=mode, **kw), strings
    if layer == "Discretization":
        return (L.Discretization(bin_boundaries=[0.0, 1.0, 2.5], output_mode=mode, **kw),
                np.array([[-1.0], [0.5], [2.0], [3.0]], np.float32))
    if layer == "TextVectorization":
        idf = {"idf_weights": [1.5, 0.5, 2.0]} if mode == "tf_idf" else {}
        return (L.TextVectorization(vocabulary=["a", "b", "c"], output_mode=mode, **idf, **kw),
                np.array(["a b c", "c zz", "b b", ""]))
    raise AssertionError(layer)


MODES = {"StringLookup": ["int", "one_hot", "multi_hot", "count", "tf_idf"],
         "IntegerLookup": ["int", "one_hot", "multi_hot", "count", "tf_idf"],
         "CategoryEncoding": ["one_hot", "multi_hot", "count"],
         "Hashing": ["int", "one_hot", "multi_hot", "count"],
         "Discretization": ["int", "one_hot", "multi_hot", "count"],
         "TextVectorization": ["int", "multi_hot", "count", "tf_idf"]}
CASES = [(lay, m, d) for lay, modes in MODES.items() for m in modes for d in DTYPES
         if not (lay == "Hashing" and m == "int" and d == "float64")]  # an error in both


@pytest.mark.parametrize("layer,mode,dtype", CASES)
def test_output_dtype_and_values_are_keras(layer, mode, dtype):
    require("tensorflow")
    import keras

    theirs, x = _case(keras, layer, mode, dtype)
    ours, _ = _case(nk, layer, mode, dtype)
    want = np.asarray(theirs(x))
    got = ours(x)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want)
    # through a model: the symbolic output's dtype and predict's
    inp = nk.Input(x.shape[1:], dtype="string" if x.dtype.kind == "U" else str(x.dtype))
    model = nk.Model(inp, ours(inp))
    assert str(model.outputs[0].dtype) == str(want.dtype)
    assert model.predict(x, verbose=0).dtype == want.dtype


def test_inverted_lookups_give_keras_kinds():
    require("tensorflow")
    import keras

    ids = np.array([[1], [2], [0]])
    k = np.asarray(keras.layers.IntegerLookup(vocabulary=[5, 6], invert=True)(ids))
    n = nk.layers.IntegerLookup(vocabulary=[5, 6], invert=True)(ids)
    assert n.dtype == k.dtype == np.int64
    np.testing.assert_array_equal(n, k)
    vocab = ["a", "bé", ""]
    ids = np.array([[1, 2], [0, 3], [3, 1]])
    kl = keras.layers.StringLookup(vocabulary=vocab[:2], mask_token="", invert=True)
    nl = nk.layers.StringLookup(vocabulary=vocab[:2], mask_token="", invert=True)
    # Keras gives a tf.string tensor: NumPy sees an object array of UTF-8 bytes; nncore gives
    # that array itself, for a direct call, predict and a Functional model called on data
    ks = np.asarray(kl(ids))
    ns = nl(ids)
    assert ks.dtype == ns.dtype == object
    assert [type(v) for v in ns.ravel()] == [bytes] * ids.size
    assert ns.tolist() == ks.tolist() == [[b"[UNK]", b"a"], [b"", "bé".encode()],
                                          ["bé".encode(), b"[UNK]"]]
    for K, lay in ((keras, kl), (nk, nl)):
        inp = K.Input((2,), dtype="int64")
        seq = K.Sequential([K.Input((2,), dtype="int64"), lay])
        fun = K.Model(inp, lay(inp))
        outs = [seq.predict(ids, verbose=0), fun.predict(ids, verbose=0, batch_size=2),
                np.asarray(fun(ids))]
        for o in outs:
            assert o.dtype == object and o.tolist() == ks.tolist(), (K.__name__, o)


@pytest.mark.parametrize("cls,vocab,kw", [
    ("StringLookup", ["a", "b", "c"], {}),
    ("StringLookup", ["a", "b", "c"], {"num_oov_indices": 0}),
    ("StringLookup", ["a", "b", "c"], {"mask_token": ""}),
    ("StringLookup", ["a", "b"], {"oov_token": "?", "num_oov_indices": 2}),
    ("IntegerLookup", [5, 6, 7], {}),
    ("IntegerLookup", [5, 6, 7], {"num_oov_indices": 0}),
    ("IntegerLookup", [5, 6], {"mask_token": 0, "oov_token": -9})])
def test_inverted_lookup_out_of_range_reads_the_oov_token_as_keras(cls, vocab, kw):
    # Keras 3.15: an index past the vocabulary, or a negative one, gives oov_token (also with
    # num_oov_indices=0, where no OOV slot exists); nncore once raised instead.
    require("tensorflow")
    import keras

    ids = np.array([[0, 1, 2], [3, 4, 7], [-1, -5, 100]])
    k = np.asarray(getattr(keras.layers, cls)(vocabulary=vocab, invert=True, **kw)(ids))
    n = getattr(nk.layers, cls)(vocabulary=vocab, invert=True, **kw)(ids)
    assert n.dtype == k.dtype
    assert n.tolist() == k.tolist()


@pytest.mark.parametrize("make", [
    lambda: nk.layers.Hashing(3, dtype="float16"),
    lambda: nk.layers.Hashing(3, dtype="float32"),  # output_mode='int' needs an integer type
    lambda: nk.layers.CategoryEncoding(3, dtype="bool"),
    lambda: nk.layers.Discretization(bin_boundaries=[0.0], output_mode="count", dtype="uint8")])
def test_unsupported_output_dtypes_are_clear_errors(make):
    with pytest.raises(ValueError, match="dtype"):
        make()


@pytest.mark.parametrize("layer,mode,dtype", [("CategoryEncoding", "count", "int32"),
                                              ("Hashing", "int", "int32"),
                                              ("Discretization", "one_hot", "float64"),
                                              ("StringLookup", "count", "float64")])
def test_dtype_survives_saving(layer, mode, dtype, tmp_path):
    lay, x = _case(nk, layer, mode, dtype)
    inp = nk.Input(x.shape[1:], dtype="string" if x.dtype.kind == "U" else str(x.dtype))
    model = nk.Model(inp, lay(inp))
    model.save(tmp_path / "m.nncore")
    back = nk.models.load_model(tmp_path / "m.nncore")
    a, b = model.predict(x, verbose=0), back.predict(x, verbose=0)
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
    # a Keras DTypePolicy entry (as in a .keras file) is read as its name
    cfg = dict(lay.get_config(), dtype={"module": "keras", "class_name": "DTypePolicy",
                                        "config": {"name": dtype}})
    assert type(lay).from_config(cfg)(x).dtype == lay(x).dtype


@pytest.mark.parametrize("layer,mode,dtype", [("CategoryEncoding", "count", "int32"),
                                              ("CategoryEncoding", "one_hot", "float64"),
                                              ("Discretization", "int", None),
                                              ("Discretization", "multi_hot", "int64"),
                                              ("IntegerLookup", "multi_hot", None),
                                              ("StringLookup", "count", None),
                                              ("StringLookup", "tf_idf", None)])
def test_onnx_outputs_have_the_layers_dtype(layer, mode, dtype, tmp_path):
    require("onnx")  # nncore.onnx.load reads the file with it
    require("onnxruntime")
    import onnxruntime as ort

    lay, x = _case(nk, layer, mode, dtype)
    inp = nk.Input(x.shape[1:], dtype="string" if x.dtype.kind == "U" else str(x.dtype))
    model = nk.Model(inp, lay(inp))
    nk.onnx.export(model, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    feed = x.astype(object) if x.dtype.kind == "U" else x
    got = sess.run(None, {sess.get_inputs()[0].name: feed})[0]
    want = model.predict(x, verbose=0)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    back = nk.onnx.load(tmp_path / "m.onnx")
    np.testing.assert_array_equal(back.predict(x, verbose=0), want)
