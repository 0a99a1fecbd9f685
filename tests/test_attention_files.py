"""MultiHeadAttention and Attention in Keras files (.keras, legacy .h5) both ways against Keras 3
(outputs, attention scores, the h5 layout Keras writes, optimizer state), and in ONNX against
ONNX Runtime; what cannot be converted is a ValueError naming the layer and the reason."""

from __future__ import annotations

import io
import json
import os
import zipfile

import nncore as nk
import numpy as np
import pytest
from conftest import require
from nncore import layers
from test_attention import _att_model, _ids, _masked_model

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning",
    "ignore:You are saving your model as an HDF5 file:UserWarning")


def _keras():
    require("h5py")
    require("tensorflow")
    return require("keras", minversion="3.0")


def _close(a, b):
    a, b = (a if isinstance(a, list) else [a]), (b if isinstance(b, list) else [b])
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-5, atol=1e-6)


def _h5_paths(path):
    """Every group and dataset (with shape) of a .keras file's weights; for a legacy .h5, each
    layer of layer_names in order with its weight_names (the layer's own name cut off, as layer
    names depend on what else the session made) and their datasets' shapes."""
    h5py = require("h5py")
    if str(path).endswith(".keras"):
        out = []

        def visit(name, obj):
            out.append((name, tuple(obj.shape) if isinstance(obj, h5py.Dataset) else None))

        with zipfile.ZipFile(path) as z:
            raw = z.read("model.weights.h5")
        with h5py.File(io.BytesIO(raw), "r") as f:
            f.visititems(visit)
        return sorted(p for p in out if not p[0].startswith("optimizer"))

    def text(x):
        return x.decode() if isinstance(x, bytes) else str(x)

    out = []
    with h5py.File(path, "r") as f:
        g = f["model_weights"]
        for lname in map(text, g.attrs["layer_names"]):
            wn = [text(n) for n in g[lname].attrs["weight_names"]]
            out.append([(n.split("/", 1)[1], g[lname][n].shape) for n in wn])
    return out


def _cross(K):
    """Three inputs and an attention mask: mha(q, v, key=k, attention_mask=am) without biases
    and a (2, 3) output, next to Attention([v, v, k2]) (concat, scale, causal, scores)."""
    q, v, k, am = K.Input((5, 6)), K.Input((4, 3)), K.Input((4, 2)), K.Input((5, 4))
    mha = K.layers.MultiHeadAttention(num_heads=2, key_dim=3, output_shape=(2, 3),
                                      use_bias=False)
    y = mha(q, v, key=k, attention_mask=am)
    att = K.layers.Attention(use_scale=True, score_mode="concat")
    y2, s2 = att([v, v, v], return_attention_scores=True, use_causal_mask=True)
    return K.Model([q, v, k, am], [y, y2, s2])


def _cross_data(rng, n=3):
    xs = [rng.normal(size=(n, 5, 6)), rng.normal(size=(n, 4, 3)), rng.normal(size=(n, 4, 2)),
          (rng.random((n, 5, 4)) > 0.3).astype(np.float64)]
    xs[3][0, 1] = 0.0  # a fully masked query row
    return [a.astype(np.float32) for a in xs]


def _randomize(model, rng):
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) * 0.5
                       for w in model.get_weights()])


MASKED = [(False, False), (True, False), (True, True)]


@pytest.mark.parametrize("ext", [".keras", ".h5"])
@pytest.mark.parametrize("causal,scores", MASKED, ids=["plain", "causal", "causal_scores"])
def test_masked_functional_both_ways(ext, causal, scores, rng, tmp_path):
    """Embedding(mask_zero) -> MHA -> Add -> LayerNormalization: nncore's file in Keras and
    Keras's file in nncore give the same outputs (and scores); both write the same layout."""
    tk = _keras()
    x = _ids(rng)
    ours = _masked_model(nk, causal=causal, scores=scores)
    _randomize(ours, rng)
    p1 = os.fspath(tmp_path / f"ours{ext}")
    ours.save(p1)
    theirs = tk.models.load_model(p1)
    _close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    att = [lay for lay in theirs.layers if isinstance(lay, tk.layers.MultiHeadAttention)][0]
    assert (att.num_heads, att.key_dim, att.value_dim) == (2, 4, 3)

    theirs = _masked_model(tk, causal=causal, scores=scores)
    _randomize(theirs, rng)
    p2 = os.fspath(tmp_path / f"theirs{ext}")
    theirs.save(p2)
    back = nk.models.load_model(p2)
    _close(theirs.predict(x, verbose=0), back.predict(x, verbose=0))
    mha = [lay for lay in back.layers if isinstance(lay, layers.MultiHeadAttention)][0]
    assert mha._call_sig == (False, False, causal, scores)
    assert _h5_paths(p1) == _h5_paths(p2)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_key_attention_mask_and_luong_attention_both_ways(ext, rng, tmp_path):
    tk = _keras()
    xs = _cross_data(rng)
    ours = _cross(nk)
    _randomize(ours, rng)
    p1 = os.fspath(tmp_path / f"ours{ext}")
    ours.save(p1)
    _close(ours.predict(xs, verbose=0), tk.models.load_model(p1).predict(xs, verbose=0))
    theirs = _cross(tk)
    _randomize(theirs, rng)
    p2 = os.fspath(tmp_path / f"theirs{ext}")
    theirs.save(p2)
    back = nk.models.load_model(p2)
    _close(theirs.predict(xs, verbose=0), back.predict(xs, verbose=0))
    assert back.get_layer(theirs.layers[4].name)._call_sig == (True, True, False, False)
    assert _h5_paths(p1) == _h5_paths(p2)
    # nncore's file read back by nncore: bitwise
    again = nk.models.load_model(p1)
    for a, b in zip(ours.predict(xs, verbose=0), again.predict(xs, verbose=0)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
@pytest.mark.parametrize("mode,causal", [("dot", False), ("concat", True)])
def test_luong_attention_with_embedding_mask_both_ways(mode, causal, ext, rng, tmp_path):
    """Keras records Attention's output mask (convert_to_tensor) and the Add's (logical_or) as
    operations; nncore reads them as the masks its layers propagate."""
    tk = _keras()
    x = _ids(rng, n=16, t=6, vocab=15)
    ours = _att_model(nk, mode, causal)
    _randomize(ours, rng)
    p1 = os.fspath(tmp_path / f"ours{ext}")
    ours.save(p1)
    _close(ours.predict(x, verbose=0), tk.models.load_model(p1).predict(x, verbose=0))
    theirs = _att_model(tk, mode, causal)
    _randomize(theirs, rng)
    p2 = os.fspath(tmp_path / f"theirs{ext}")
    theirs.save(p2)
    _close(theirs.predict(x, verbose=0), nk.models.load_model(p2).predict(x, verbose=0))
    assert _h5_paths(p1) == _h5_paths(p2)


def _block(K):
    inp = K.Input((6, 8))
    a = K.layers.MultiHeadAttention(num_heads=2, key_dim=4)(inp, inp, use_causal_mask=True)
    h = K.layers.LayerNormalization()(K.layers.Add()([inp, a]))
    a2 = K.layers.Attention(use_scale=True)([h, inp])
    out = K.layers.Dense(2, activation="softmax")(K.layers.GlobalAveragePooling1D()(a2))
    return K.Model(inp, out)


def _weight_index(model, cls, k):
    """Index in model.get_weights() of weight k of the first layer of type cls."""
    offset = 0
    for layer in model.layers:
        if isinstance(layer, cls):
            return offset + k
        offset += len(layer.get_weights())
    raise AssertionError(f"no {cls.__name__} in the model")


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_optimizer_state_round_trip(ext, rng, tmp_path):
    """Adam trained in Keras, resumed in nncore (and back): the same slots, and one more epoch
    at the same weights on both ends."""
    tk = _keras()
    x = rng.normal(size=(16, 6, 8)).astype(np.float32)
    y = rng.integers(0, 2, size=16)
    theirs = _block(tk)
    theirs.compile(optimizer=tk.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    p = os.fspath(tmp_path / f"theirs{ext}")
    theirs.save(p)
    ours = nk.models.load_model(p)
    assert ours.optimizer.iterations == 4
    kv = [np.asarray(v) for v in theirs.optimizer.variables]
    from nncore.saving.keras_format import optimizer_vars

    nv = optimizer_vars(ours, ours.optimizer)
    assert len(kv) == len(nv)
    for a, b in zip(kv, nv):
        np.testing.assert_array_equal(a, b)
    for m in (ours, theirs):
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    # The key projection's bias adds q . b_k to all of a query's scores alike, which the softmax
    # cancels: its gradient is zero but for rounding, and Adam scales that noise up to steps of
    # about the learning rate, in each framework its own: the two may part by up to the learning
    # rate per step of the extra epoch on each side (2 steps).
    skip = _weight_index(ours, nk.layers.MultiHeadAttention, 3)
    for i, (a, b) in enumerate(zip(ours.get_weights(), theirs.get_weights())):
        if i == skip:
            assert np.abs(a - b).max() <= 2 * 2 * 0.01, np.abs(a - b).max()
        else:
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
    # and nncore's state read by Keras
    p2 = os.fspath(tmp_path / f"ours{ext}")
    ours.save(p2)
    again = tk.models.load_model(p2)
    nv = optimizer_vars(ours, ours.optimizer)
    for a, b in zip([np.asarray(v) for v in again.optimizer.variables], nv):
        np.testing.assert_array_equal(a, b)


# ---- what is refused ---------------------------------------------------------------------------

def _edit_keras_config(src, dst, edit):
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(members["config.json"])
    edit(cfg)
    members["config.json"] = json.dumps(cfg).encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        for n, data in members.items():
            z.writestr(n, data)


def _mha_entry(cfg):
    return next(e for e in cfg["config"]["layers"] if e["class_name"] == "MultiHeadAttention")


def test_unsupported_keras_mha_files_refused_by_name(rng, tmp_path):
    tk = _keras()
    theirs = _masked_model(tk, causal=True)
    src = os.fspath(tmp_path / "t.keras")
    theirs.save(src)
    cases = {
        "use_gate": (lambda c: _mha_entry(c)["config"].update(use_gate=True),
                     r"multi_head_attention.*use_gate=True is not supported"),
        "axes": (lambda c: _mha_entry(c)["config"].update(attention_axes=[2]),
                 r"multi_head_attention.*attention_axes=\[2\] is not supported"),
        "window": (lambda c: _mha_entry(c)["config"].update(sliding_window=3),
                   r"multi_head_attention.*sliding_window=3 is not supported"),
        "query_mask": (lambda c: _mha_entry(c)["inbound_nodes"][0]["kwargs"].update(
            query_mask=_mha_entry(c)["inbound_nodes"][0]["args"][0]),
            r"multi_head_attention.*query_mask passed explicitly is not supported"),
        "kwarg": (lambda c: _mha_entry(c)["inbound_nodes"][0]["kwargs"].update(foo=1),
                  r"multi_head_attention.*call argument 'foo' is not known"),
        "flag": (lambda c: _mha_entry(c)["inbound_nodes"][0]["kwargs"].update(
            use_causal_mask="yes"), r"use_causal_mask must be a bool"),
        "training": (lambda c: _mha_entry(c)["inbound_nodes"][0]["kwargs"].update(
            training=True), r"training=True is not supported"),
        "positional": (lambda c: _mha_entry(c)["inbound_nodes"][0]["args"].extend(
            _mha_entry(c)["inbound_nodes"][0]["args"] * 1),
            r"mha\(query, value, key=None, \.\.\.\); the node has 4 positional"),
    }
    for name, (edit, msg) in cases.items():
        dst = os.fspath(tmp_path / f"{name}.keras")
        _edit_keras_config(src, dst, edit)
        with pytest.raises(ValueError, match=msg):
            nk.models.load_model(dst)


def test_shared_mha_called_two_ways_refused(tmp_path):
    tk = _keras()
    x = tk.Input((5, 4))
    mha = tk.layers.MultiHeadAttention(num_heads=1, key_dim=2)
    out = tk.layers.Add()([mha(x, x), mha(x, x, use_causal_mask=True)])
    src = os.fspath(tmp_path / "shared.keras")
    tk.Model(x, out).save(src)
    with pytest.raises(ValueError, match=r"multi_head_attention.*different arguments.*"
                                         r"same way at every node"):
        nk.models.load_model(src)


def test_mask_operation_other_than_merges_refused(tmp_path):
    """A LogicalOr over something else than Embedding/Masking masks stays refused."""
    tk = _keras()
    theirs = _att_model(tk)
    src = os.fspath(tmp_path / "a.keras")
    theirs.save(src)

    def edit(cfg):
        lo = next(e for e in cfg["config"]["layers"] if e["class_name"] == "LogicalOr")
        lo["inbound_nodes"][0]["args"][1]["config"]["keras_history"] = ["input_layer", 0, 0]

    dst = os.fspath(tmp_path / "b.keras")
    _edit_keras_config(src, dst, edit)
    with pytest.raises(ValueError, match=r"'logical_or\w*' \(LogicalOr\) is not supported"):
        nk.models.load_model(dst)


# ---- ONNX ------------------------------------------------------------------------------------

def _ort_session(model, path):
    require("onnx")
    ort = require("onnxruntime")
    model.export(os.fspath(path), format="onnx")
    return ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])


def _ort_matches(sess, model, xs):
    xs = xs if isinstance(xs, list) else [xs]
    got = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs)})
    ref = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    ref = ref if isinstance(ref, list) else [ref]
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("causal,scores", MASKED, ids=["plain", "causal", "causal_scores"])
def test_onnx_masked_mha_matches_ort(causal, scores, rng, tmp_path):
    """Embedding(mask_zero) -> MHA -> Add -> LayerNormalization -> GlobalAveragePooling1D: the
    padding mask travels through the attention and the Add into the pooling."""
    model = _masked_model(nk, causal=causal, scores=scores)
    _randomize(model, rng)
    sess = _ort_session(model, tmp_path / "m.onnx")
    for n in (1, 12):
        x = _ids(rng, n=n)
        x[0, 3:] = 0
        if n > 1:
            x[1, :] = 0  # every position masked: uniform rows, or zero scores
        _ort_matches(sess, model, x)


def test_onnx_key_attention_mask_and_luong_matches_ort(rng, tmp_path):
    model = _cross(nk)
    _randomize(model, rng)
    sess = _ort_session(model, tmp_path / "c.onnx")
    for n in (1, 5):
        _ort_matches(sess, model, _cross_data(rng, n))


@pytest.mark.parametrize("mode,causal", [("dot", False), ("concat", True)])
def test_onnx_luong_attention_with_masks_matches_ort(mode, causal, rng, tmp_path):
    model = _att_model(nk, mode, causal)
    _randomize(model, rng)
    sess = _ort_session(model, tmp_path / "a.onnx")
    for n in (2, 16):
        _ort_matches(sess, model, _ids(rng, n=n, t=6, vocab=15))


def _dynamic(K, kind):
    ids = K.Input((None,), dtype="int32")
    e = K.layers.Embedding(20, 8, mask_zero=True)(ids)
    if kind == "luong":
        a = K.layers.Attention(use_scale=True, score_mode="concat")([e, e], use_causal_mask=True)
        extra = None
    else:
        a, extra = K.layers.MultiHeadAttention(2, 4, value_dim=3)(
            e, e, use_causal_mask=kind == "causal", return_attention_scores=True)
    h = K.layers.LayerNormalization()(K.layers.Add()([e, a]))
    out = K.layers.Dense(3)(K.layers.GlobalAveragePooling1D()(h))
    return K.Model(ids, [out, h] if extra is None else [out, h, extra])


@pytest.mark.parametrize("kind", ["plain", "causal", "luong"])
def test_onnx_dynamic_sequence_length(kind, rng, tmp_path):
    """Input((None,)): the graph takes its lengths (and the causal triangle) at run time."""
    model = _dynamic(nk, kind)
    _randomize(model, rng)
    sess = _ort_session(model, tmp_path / "d.onnx")
    assert isinstance(sess.get_inputs()[0].shape[1], str)  # a named dynamic axis
    for n, t in ((3, 5), (6, 9)):
        _ort_matches(sess, model, _ids(rng, n=n, t=t))


def test_onnx_import_of_attention_is_a_clear_error(rng, tmp_path):
    """nncore's importer reads layer patterns with constant weights; an attention's products
    of two computed values are not one of them: a ValueError naming the node."""
    model = _masked_model(nk)
    _randomize(model, rng)
    _ort_session(model, tmp_path / "m.onnx")
    import nncore.onnx

    with pytest.raises(ValueError, match=r"ONNX import: .*MatMul.*must be a constant"):
        nncore.onnx.load(tmp_path / "m.onnx")


@pytest.mark.filterwarnings("ignore:`build\\(\\)` was called on layer:UserWarning")
def test_transformer_block_custom_layer_keras_file_both_ways(rng, tmp_path):
    """A user's layer holding a MultiHeadAttention: its groups under <block>/att/..."""
    tk = _keras()
    from test_attention import _block_class

    ours_cls, theirs_cls = _block_class(nk), _block_class(tk)

    def build(K, cls):
        inp = K.Input((6, 8))
        h = cls(8, 2, 16)(inp)
        return K.Model(inp, K.layers.Dense(2)(K.layers.GlobalAveragePooling1D()(h)))

    x = rng.normal(size=(4, 6, 8)).astype(np.float32)
    theirs = build(tk, theirs_cls)
    p = os.fspath(tmp_path / "t.keras")
    theirs.save(p)
    ours = nk.models.load_model(p, custom_objects={"TransformerBlock": ours_cls})
    _close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    p2 = os.fspath(tmp_path / "o.keras")
    ours.save(p2)
    again = tk.models.load_model(p2, custom_objects={"TransformerBlock": theirs_cls})
    _close(ours.predict(x, verbose=0), again.predict(x, verbose=0))
    assert _h5_paths(p) == _h5_paths(p2)
