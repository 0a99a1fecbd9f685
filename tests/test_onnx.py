"""ONNX export (checked by onnx.checker, run by ONNX Runtime) and import of nncore models."""

from __future__ import annotations

import os
import subprocess
import sys

import nncore
import numpy as np
import pytest
from nncore import layers as L
from nncore import models
from conftest import require

onnx = require("onnx")
ort = require("onnxruntime")

TOL = 1e-5


def _run_ort(path, xs):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {i.name: x for i, x in zip(s.get_inputs(), xs)})


def _ours(m, xs):
    out = m.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    return out if isinstance(out, list) else [out]


def _randomise(m, rng):
    # Non-trivial biases (zeros by default would hide a bias-layout bug).
    # Variances positive: a NaN output would compare equal to a NaN and hide a bug.
    m.set_weights([(np.abs(v) + 0.5 if "variance" in n else v).astype(np.float32) for n, v in
                   ((n, rng.normal(scale=0.5, size=w.shape))
                    for n, w in zip(m._weight_paths(), m.get_weights()))])


def _cnn():
    return models.Sequential([
        L.Input((17, 17, 2)),
        L.Conv2D(4, 3, padding="same", activation="relu"),
        L.MaxPooling2D(3, strides=2, padding="same"),
        L.Conv2D(3, 2, strides=2),
        L.Conv2D(3, 3, padding="same", dilation_rate=2, activation="sigmoid", use_bias=False),
        L.AveragePooling2D(2, padding="same"),
        L.MaxPooling2D(1),
        L.AveragePooling2D((1, 2), strides=1),
        L.Activation("tanh"), L.Flatten(), L.Dropout(0.3),
        L.Dense(6, activation="softmax"), L.Reshape((3, 2)), L.Dense(2, activation="tanh")])


def _rnn():
    i = nncore.Input((5, 3))
    a = L.LSTM(4, return_sequences=True)(i)
    b = L.GRU(3, return_sequences=True)(a)
    c = L.SimpleRNN(2, activation="relu")(b)
    d = L.GRU(2, use_bias=False)(a)
    e = L.LSTM(2)(b)
    return nncore.Model(i, [L.Concatenate()([c, d, e]),
                            L.SimpleRNN(3, return_sequences=True)(b)])


def _merge():
    a_in = nncore.Input((6,), name="a")
    b_in = nncore.Input((6,), name="b")
    img = nncore.Input((4, 4, 2), name="img")
    inner = models.Sequential([L.Input((6,)), L.Dense(6, activation="tanh"), L.Dense(6)],
                              name="inner")
    a = L.Dense(6)(a_in)
    b = inner(b_in)
    b2 = inner(a)
    s = L.Add()([a, b, b2])
    d = L.Subtract()([a, b])
    m = L.Multiply()([a, b2, b])
    av = L.Average()([s, d, m])
    mx = L.Maximum()([m, av])
    mn = L.Minimum()([m, av, d])
    dot = L.Dot(axes=1)([mx, mn])
    cos = L.Dot(axes=-1, normalize=True)([mx, s])
    conv = L.Conv2D(3, 2, activation="relu")(img)
    conv2 = L.Conv2D(3, 2, padding="same")(conv)
    joined = L.Add()([conv, conv2])  # NCHW values merged
    catc = L.Concatenate(axis=-1)([conv, joined])
    seq = L.Reshape((9, 6))(L.Flatten()(catc))
    dseq = L.Dot(axes=(2, 2))([seq, seq])
    cat = L.Concatenate()([mx, mn, dot, cos, L.Flatten()(dseq)])
    return nncore.Model([a_in, b_in, img], L.Dense(3, activation="softmax")(cat))


def _inputs(kind, rng, n):
    if kind == "cnn":
        return [rng.normal(size=(n, 17, 17, 2)).astype(np.float32)]
    if kind == "rnn":
        return [rng.normal(size=(n, 5, 3)).astype(np.float32)]
    if kind == "layers11":
        return [rng.normal(size=(n, 6, 6, 2)).astype(np.float32),
                rng.normal(size=(n, 5, 3)).astype(np.float32),
                rng.integers(0, 9, size=(n, 4)).astype(np.int32)]
    return [rng.normal(size=(n, 6)).astype(np.float32),
            rng.normal(size=(n, 6)).astype(np.float32),
            rng.normal(size=(n, 4, 4, 2)).astype(np.float32)]


def _layers11():
    img = nncore.Input((6, 6, 2), name="img")
    c = L.Conv2D(4, 3, padding="same")(img)
    c = L.LeakyReLU(negative_slope=0.2)(c)  # on an NCHW value: no transpose
    c = L.ELU(alpha=0.7)(L.GaussianNoise(0.3)(c))
    c = L.ReLU(max_value=0.5)(L.SpatialDropout2D(0.4)(c))
    c = L.ZeroPadding2D(((1, 0), (2, 1)))(L.BatchNormalization(epsilon=0.01)(c))
    c = L.UpSampling2D((2, 1))(L.Cropping2D(((0, 1), (1, 2)))(c))
    c = L.PReLU(shared_axes=[1, 2])(c)
    c = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu")(c)
    c = L.SeparableConv2D(4, 2, strides=2, padding="same", depth_multiplier=2)(c)
    c = L.DepthwiseConv2D(2, use_bias=False, dilation_rate=2, padding="same")(c)
    c = L.Conv2D(3, 2)(L.GaussianDropout(0.2)(c))
    g = L.Concatenate()([L.GlobalAveragePooling2D()(c), L.GlobalMaxPooling2D()(c)])
    seq = nncore.Input((5, 3), name="seq")
    s = L.Identity()(L.SpatialDropout1D(0.3)(L.ReLU()(seq)))
    s = L.LayerNormalization()(s)
    s = L.Cropping1D((2, 1))(L.UpSampling1D(3)(L.ZeroPadding1D((1, 2))(s)))
    s = L.PReLU()(s)
    s = L.Rescaling(0.5, offset=0.25)(L.Permute((2, 1))(L.Rescaling(2.0)(s)))
    s = L.Normalization(mean=[1.0, -1.0, 0.5], variance=[2.0, 0.5, 1.0], axis=1)(s)
    s = L.Permute((2, 1))(L.Normalization(mean=0.5, variance=3.0, axis=None, invert=True)(s))
    ids = nncore.Input((4,), name="ids", dtype="int32")
    e = L.GlobalAveragePooling1D()(L.Embedding(9, 3)(ids))
    h = L.Concatenate()([L.GlobalAveragePooling1D()(s), L.GlobalMaxPooling1D()(s), g, e])
    h = L.BatchNormalization()(L.Dense(5)(h))
    return nncore.Model([img, seq, ids], L.Softmax()(L.Dense(4)(h)))


_MODELS = {"cnn": _cnn, "rnn": _rnn, "merge": _merge, "layers11": _layers11}


@pytest.mark.parametrize("kind", sorted(_MODELS))
def test_export_runs_in_onnx_runtime(kind, rng, tmp_path):
    m = _MODELS[kind]()
    _randomise(m, rng)
    path = tmp_path / "m.onnx"
    m.export(path, format="onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for n in (1, 7):  # the batch axis is dynamic
        xs = _inputs(kind, rng, n)
        for got, want in zip(_run_ort(path, xs), _ours(m, xs)):
            assert np.all(np.isfinite(want))
            np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


# The issue-11 layers whose ONNX export is not written yet (their ONNX ops exist: this is work
# left, not a limit); exporting one raises a ValueError naming the layer.
ONNX_NOT_YET = {
    "AveragePooling1D", "Bidirectional", "Conv1D", "Conv2DTranspose", "GroupNormalization",
    "Masking", "MaxPooling1D", "RepeatVector", "TimeDistributed", "UnitNormalization",
}


def test_every_builtin_layer_has_an_exporter():
    from nncore.layers import _BUILTIN
    from nncore.saving.onnx_export import ONNX_EXPORTERS

    # Lambda: an arbitrary traced graph of ops (nncore.ops has no ONNX table yet); the
    # categorical preprocessing layers (lookup tables, counts): not exported yet
    not_exported = ("InputLayer", "Lambda", "CategoryEncoding", "Discretization",
                    "IntegerLookup", "StringLookup", "Hashing", "RandomCrop",
                    "TextVectorization")
    missing = [c.__name__ for c in _BUILTIN if c.__name__ not in ONNX_EXPORTERS and
               c.__name__ not in not_exported and c.__name__ not in ONNX_NOT_YET]
    assert missing == []
    assert sorted(ONNX_NOT_YET & set(ONNX_EXPORTERS)) == []


def test_layers_without_onnx_export_are_named(tmp_path):
    m = models.Sequential([L.Input((4,)), L.RepeatVector(2)])
    with pytest.raises(ValueError,
                       match=r"layer 'repeat_vector\w*' \(RepeatVector\) has no ONNX export"):
        m.export(tmp_path / "p.onnx", format="onnx")


def test_gru_reset_before_and_activity_regularization_export(tmp_path, rng):
    i = nncore.Input((5, 3))
    h = L.ActivityRegularization(l2=0.1)(L.GRU(4, reset_after=False, return_sequences=True)(i))
    m = nncore.Model(i, L.GRU(2, reset_after=False, use_bias=False)(h))
    _randomise(m, rng)
    m.export(tmp_path / "g.onnx", format="onnx")
    x = rng.normal(size=(3, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(_run_ort(tmp_path / "g.onnx", [x])[0], _ours(m, [x])[0],
                               atol=TOL, rtol=0)
    lstm = nncore.Sequential([nncore.Input((5, 3)), L.LSTM(2, go_backwards=True)])
    with pytest.raises(ValueError, match="go_backwards and return_state are not exported"):
        lstm.export(tmp_path / "b.onnx", format="onnx")


def test_recurrent_ops_are_onnx_rnn_lstm_gru_not_loops(tmp_path):
    m = _rnn()
    m.export(tmp_path / "r.onnx", format="onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "r.onnx")).graph.node]
    assert {"LSTM", "GRU", "RNN"} <= set(ops) and "Loop" not in ops and "Scan" not in ops
    gru = [n for n in onnx.load(str(tmp_path / "r.onnx")).graph.node if n.op_type == "GRU"][0]
    assert {a.name: a.i for a in gru.attribute}["linear_before_reset"] == 1


def test_conv_chain_has_no_transposes_between_convs(tmp_path):
    m = models.Sequential([L.Input((8, 8, 3)), L.Conv2D(4, 3, activation="relu"),
                           L.MaxPooling2D(), L.Conv2D(4, 2), L.Activation("relu"),
                           L.Flatten(), L.Dense(2)])
    m.export(tmp_path / "c.onnx", format="onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "c.onnx")).graph.node]
    assert ops.count("Transpose") == 2  # into NCHW once, back to NHWC before Flatten


def test_export_argument_errors(tmp_path):
    m = _cnn()
    with pytest.raises(ValueError, match="onnx"):
        m.export(tmp_path / "x")
    with pytest.raises(ValueError, match="not built"):
        models.Sequential([L.Dense(2)]).export(tmp_path / "y.onnx", format="onnx")


def test_import_does_not_load_onnx_and_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    code = ("import sys, nncore; nncore.layers; nncore.models; nncore.saving; "
            "assert 'onnx' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    m = _cnn()
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"nncore\[onnx\]"):
        m.export(tmp_path / "m.onnx", format="onnx")


# ---- import -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(_MODELS))
def test_export_import_round_trip(kind, rng, tmp_path):
    m = _MODELS[kind]()
    _randomise(m, rng)
    m.export(tmp_path / "m.onnx", format="onnx")
    back = nncore.onnx.load(tmp_path / "m.onnx")
    xs = _inputs(kind, rng, 5)
    for got, want in zip(_ours(back, xs), _ours(m, xs)):
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    # Exported again, the imported model still runs in ONNX Runtime.
    back.export(tmp_path / "again.onnx", format="onnx")
    for got, want in zip(_run_ort(tmp_path / "again.onnx", xs), _ours(m, xs)):
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def _trainable_models():
    cnn = models.Sequential([L.Input((8, 8, 2)), L.Conv2D(3, 3, activation="relu"),
                             L.MaxPooling2D(), L.Flatten(), L.Dense(4, activation="tanh"),
                             L.Dense(3, activation="softmax")])
    i = nncore.Input((6, 3))
    h = L.GRU(4, return_sequences=True)(i)
    h = L.LSTM(4, return_sequences=True)(h)
    rnn = nncore.Model(i, L.Dense(3, activation="softmax")(L.SimpleRNN(3)(h)))
    return {"cnn": (cnn, (8, 8, 2)), "rnn": (rnn, (6, 3))}


@pytest.mark.parametrize("kind", ["cnn", "rnn"])
def test_imported_model_trains_like_the_original(kind, rng, tmp_path):
    m, shape = _trainable_models()[kind]
    _randomise(m, rng)
    m.export(tmp_path / "m.onnx", format="onnx")
    back = nncore.onnx.load(tmp_path / "m.onnx")
    x = rng.normal(size=(16,) + shape).astype(np.float32)
    y = rng.integers(0, 3, size=16)
    for model in (m, back):
        model.compile(optimizer=nncore.optimizers.SGD(0.1),
                      loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    np.testing.assert_allclose(back.predict(x, verbose=0), m.predict(x, verbose=0),
                               atol=1e-5, rtol=0)
    assert back.count_params() == m.count_params()


def _tiny_graph(nodes, inits=(), inp_shape=("batch", 4), out="y", opset=17):
    h = onnx.helper
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                           list(inp_shape))],
                     [h.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)],
                     initializer=list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def test_hostile_and_unsupported_onnx_files(tmp_path):
    h = onnx.helper
    nph = onnx.numpy_helper
    w = nph.from_array(np.ones((4, 2), np.float32), "w")
    ext = onnx.TensorProto()
    ext.CopyFrom(w)
    ext.ClearField("raw_data")
    ext.data_location = onnx.TensorProto.EXTERNAL
    e = ext.external_data.add()
    e.key, e.value = "location", "/etc/passwd"
    lying = onnx.TensorProto(name="w", dims=[1 << 20, 1 << 20], data_type=onnx.TensorProto.FLOAT,
                             raw_data=b"\0" * 16)
    cases = {
        "unknown op": (_tiny_graph([h.make_node("Gelu", ["x"], ["y"])]), "Gelu"),
        "external data": (_tiny_graph([h.make_node("MatMul", ["x", "w"], ["y"])], [ext]),
                          "external"),
        "huge initializer": (_tiny_graph([h.make_node("MatMul", ["x", "w"], ["y"])], [lying]),
                             "more than"),
        "nchw input": (_tiny_graph([h.make_node("Conv", ["x", "k"], ["y"])],
                                   [nph.from_array(np.ones((2, 3, 1, 1), np.float32), "k")],
                                   ("batch", 3, 4, 4)), "nchw"),
        "old opset": (_tiny_graph([h.make_node("Relu", ["x"], ["y"])], opset=9), "opset"),
        "custom domain": (_tiny_graph([h.make_node("Relu", ["x"], ["y"], domain="evil")]),
                          "domain"),
        "dynamic feature axis": (_tiny_graph([h.make_node("Relu", ["x"], ["y"])],
                                             inp_shape=("batch", "n")), "static"),
        "bad gemm attribute": (_tiny_graph([h.make_node("Gemm", ["x", "w"], ["y"], alpha=2.0)],
                                           [w]), "alpha"),
        "nan weights": (_tiny_graph([h.make_node("Gemm", ["x", "w"], ["y"])],
                                    [nph.from_array(np.full((4, 2), np.nan, np.float32), "w")]),
                        "NaN"),
        "wrong weight shape": (_tiny_graph([h.make_node("Gemm", ["x", "w"], ["y"])],
                                           [nph.from_array(np.ones((5, 2), np.float32), "w")]),
                               "shape"),
    }
    for name, (proto, match) in cases.items():
        p = tmp_path / f"{name.replace(' ', '_')}.onnx"
        p.write_bytes(proto.SerializeToString())
        with pytest.raises(ValueError, match=match):
            nncore.onnx.load(p)
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ValueError, match="ONNX"):
        nncore.onnx.load(tmp_path / "junk.onnx")
    with pytest.raises(FileNotFoundError):
        nncore.onnx.load(tmp_path / "missing.onnx")
