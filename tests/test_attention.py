"""MultiHeadAttention: forward against a float64 NumPy reference, backward against central
differences of that reference, Keras parity on identical weights (eager, functional with
Embedding masks, a traced TransformerBlock, training steps), 1 vs 2 threads, nncore's own file,
bad input. Keras files and ONNX: tests/test_attention_files.py."""

from __future__ import annotations

import os

import nncore as nk
import numpy as np
import pytest
from conftest import require
from nncore import layers

# ---- float64 reference ----------------------------------------------------------------------


def ref_mha(ws, q, v, k=None, mask=None, use_bias=True, num_heads=1, key_dim=1, zero_rows=True):
    """Keras's MultiHeadAttention in float64 (einsum), mask (B,T,S) bool or None. A query row
    with every position masked: P = 0 where Keras computes the scores explicitly (zero_rows),
    1/S on its fused dot_product_attention path."""
    k = v if k is None else k
    ws = [np.asarray(w, np.float64) for w in ws]
    if use_bias:
        wq, bq, wk, bk, wv, bv, wo, bo = ws
    else:
        wq, wk, wv, wo = ws
        bq = bk = bv = bo = 0.0
    qp = (np.einsum("bte,ehd->bthd", q, wq) + bq) / np.sqrt(key_dim)
    kp = np.einsum("bse,ehd->bshd", k, wk) + bk
    vp = np.einsum("bse,ehd->bshd", v, wv) + bv
    logits = np.einsum("bshd,bthd->bhts", kp, qp)
    if mask is not None:
        logits = np.where(mask[:, None], logits, -1e9)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    if mask is not None and zero_rows:
        p = np.where(mask[:, None], p, 0.0)
    o = np.einsum("bhts,bshd->bthd", p, vp)
    y = np.tensordot(o, wo, axes=([2, 3], [0, 1])) + bo
    return y, p


def _make(rng, h, dk, dv=None, out_shape=None, use_bias=True, e=(6, 5, 4), b=2, t=5, s=4,
          with_key=True):
    mha = layers.MultiHeadAttention(h, dk, value_dim=dv, output_shape=out_shape,
                                    use_bias=use_bias, bias_initializer="random_normal")
    q = rng.normal(size=(b, t, e[0])).astype(np.float32)
    v = rng.normal(size=(b, s, e[1])).astype(np.float32)
    k = rng.normal(size=(b, s, e[2])).astype(np.float32) if with_key else None
    mha(q, v, key=k)
    return mha, q, v, k


CONFIGS = [dict(h=1, dk=4), dict(h=2, dk=3, dv=5), dict(h=4, dk=2, dv=3, out_shape=7),
           dict(h=2, dk=3, out_shape=(2, 3)), dict(h=2, dk=2, use_bias=False)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
@pytest.mark.parametrize("masked", [False, True])
def test_forward_matches_float64_reference(cfg, masked, rng):
    mha, q, v, k = _make(rng, **cfg)
    mask = None
    if masked:
        mask = rng.random((2, 5, 4)) > 0.4
        mask[0, 1] = False  # a query row with every position masked: zeros, as Keras
    y, p = mha(q, v, key=k, attention_mask=mask, return_attention_scores=True)
    yr, pr = ref_mha(mha.get_weights(), q.astype(np.float64), v.astype(np.float64),
                     k.astype(np.float64), mask, cfg.get("use_bias", True), cfg["h"], cfg["dk"])
    out_shape = cfg.get("out_shape")
    tail = (6,) if out_shape is None else ((out_shape,) if isinstance(out_shape, int)
                                            else out_shape)
    assert y.shape == (2, 5) + tuple(tail) and y.dtype == np.float32
    assert p.shape == (2, cfg["h"], 5, 4)
    np.testing.assert_allclose(y, yr, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(p, pr, rtol=1e-5, atol=1e-7)
    if masked:
        assert np.all(p[0, :, 1] == 0)
        assert np.all(p[np.broadcast_to(~mask[:, None], p.shape)] == 0)
        # without the scores, a fully masked row averages every value (Keras's fused path)
        y2 = mha(q, v, key=k, attention_mask=mask)
        yr2, _ = ref_mha(mha.get_weights(), q.astype(np.float64), v.astype(np.float64),
                         k.astype(np.float64), mask, cfg.get("use_bias", True), cfg["h"],
                         cfg["dk"], zero_rows=False)
        np.testing.assert_allclose(y2, yr2, rtol=1e-5, atol=2e-6)
        assert not np.allclose(y2[0, 1], y[0, 1])


def test_causal_mask_and_self_attention_reference(rng):
    mha, q, _, _ = _make(rng, 2, 3, e=(6, 6, 6), s=5, with_key=False)
    y, p = mha(q, q, use_causal_mask=True, return_attention_scores=True)
    tri = np.tri(5, 5, dtype=bool)[None].repeat(2, 0)
    yr, pr = ref_mha(mha.get_weights(), q.astype(np.float64), q.astype(np.float64), None, tri,
                     True, 2, 3)
    np.testing.assert_allclose(y, yr, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(p, pr, rtol=1e-5, atol=1e-7)
    assert np.all(np.triu(p[0, 0], 1) == 0)


# ---- backward: central differences of the float64 reference ---------------------------------

def _fd_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        g[idx] = (f(xp) - f(xm)) / (2 * eps)
    return g


@pytest.mark.parametrize("cfg", CONFIGS[:4] + [dict(h=2, dk=2, use_bias=False)],
                         ids=[str(i) for i in range(5)])
@pytest.mark.parametrize("kind", ["key", "no_key_masked", "scores"])
def test_backward_matches_finite_differences(cfg, kind, rng):
    with_key = kind == "key"
    mha, q, v, k = _make(rng, b=2, t=3, s=4, e=(4, 3, 2), with_key=with_key, **cfg)
    mask = None
    if kind == "no_key_masked":
        mask = rng.random((2, 3, 4)) > 0.3
        mask[1, 2] = False
    ub, h, dk = cfg.get("use_bias", True), cfg["h"], cfg["dk"]
    parts = [q, v] + ([k] if with_key else [])
    scores = kind == "scores"
    mha._call_sig = (with_key, mask is not None, False, scores)
    out, ctx = mha.forward(parts + ([mask] if mask is not None else []), need_ctx=True)
    y = out[0] if scores else out
    r = rng.normal(size=y.shape)
    rp = rng.normal(size=(2, h, 3, 4)) if scores else None
    mha._zero_grads()
    dys = [r.astype(np.float32), rp.astype(np.float32)] if scores else r.astype(np.float32)
    dx = mha.backward(ctx, dys)
    mha._finish_grads()
    ws = [w.astype(np.float64) for w in mha.get_weights()]
    xs = [a.astype(np.float64) for a in parts]

    def objective(ws_, xs_):
        yr, pr = ref_mha(ws_, xs_[0], xs_[1], xs_[2] if with_key else None, mask, ub, h, dk,
                         zero_rows=scores)
        val = np.sum(yr * r)
        return val + (np.sum(pr * rp) if scores else 0.0)

    for i in range(len(xs)):
        num = _fd_grad(lambda a, i=i: objective(ws, xs[:i] + [a] + xs[i + 1:]), xs[i])
        np.testing.assert_allclose(dx[i], num, rtol=2e-4, atol=2e-5, err_msg=f"input {i}")
    if mask is not None:
        assert dx[-1] is None  # the attention mask has no gradient
    for i in range(len(ws)):
        num = _fd_grad(lambda a, i=i: objective(ws[:i] + [a] + ws[i + 1:], xs), ws[i])
        np.testing.assert_allclose(mha.grads[i], num, rtol=2e-4, atol=2e-5,
                                   err_msg=f"weight {i} ({mha._weight_names[i]})")


def test_dropout_on_scores_in_training_only(rng):
    mha = layers.MultiHeadAttention(2, 4, dropout=0.5, seed=3)
    x = rng.normal(size=(4, 6, 8)).astype(np.float32)
    y0 = mha(x, x)
    np.testing.assert_array_equal(mha(x, x, training=False), y0)
    _, p = mha(x, x, return_attention_scores=True, training=True)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)  # scores are returned before dropout
    mha._call_sig = (False, False, False, False)
    yt, ctx = mha.forward([x, x], training=True, need_ctx=True)
    keep = ctx[8]
    assert set(np.unique(keep)) == {0.0, 2.0}
    assert 0.35 < np.mean(keep == 0) < 0.65
    assert not np.allclose(yt, y0)
    # backward with that dropout mask: d/dV of sum(r*y) is (dropout(P))^T (r Wo^T)
    r = rng.normal(size=yt.shape).astype(np.float32)
    mha._zero_grads()
    mha.backward(ctx, r)
    mha._finish_grads()
    g_wo = mha.grads[6]
    o = ctx[10].astype(np.float64)
    np.testing.assert_allclose(g_wo.reshape(-1, 8), o.T @ r.reshape(-1, 8), rtol=1e-4,
                               atol=1e-5)


def test_one_and_two_threads_bitwise(rng, threads):
    mha, q, v, k = _make(rng, 4, 8, dv=6, e=(32, 24, 16), b=3, t=17, s=13)
    mask = rng.random((3, 17, 13)) > 0.2
    mha._call_sig = (True, True, True, True)
    res = []
    for nt in (1, 2):
        nk.set_num_threads(nt)
        (y, p), ctx = mha.forward([q, v, k, mask], need_ctx=True)
        mha._zero_grads()
        dx = mha.backward(ctx, [np.ones_like(y), np.ones_like(p)])
        mha._finish_grads()
        res.append([y, p] + dx[:3] + [g.copy() for g in mha.grads])
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


# ---- graphs ---------------------------------------------------------------------------------

def _masked_model(K, vocab=20, t=7, d=8, causal=False, scores=False):
    ids = K.Input((t,), dtype="int32")
    e = K.layers.Embedding(vocab, d, mask_zero=True)(ids)
    att = K.layers.MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3)
    if scores:
        a, s = att(e, e, use_causal_mask=causal, return_attention_scores=True)
    else:
        a = att(e, e, use_causal_mask=causal)
    h = K.layers.LayerNormalization(epsilon=1e-6)(K.layers.Add()([e, a]))
    h = K.layers.GlobalAveragePooling1D()(h)
    out = K.layers.Dense(3, activation="softmax")(h)
    return K.Model(ids, [out, s] if scores else out)


def _ids(rng, n=12, t=7, vocab=20):
    x = rng.integers(1, vocab, size=(n, t)).astype(np.int32)
    for i in range(n):
        x[i, rng.integers(2, t + 1):] = 0  # padded tails
    return x


def _keras():
    require("tensorflow")
    import keras as tk

    return tk


@pytest.mark.parametrize("causal", [False, True])
def test_functional_embedding_mask_matches_keras(causal, rng):
    tk = _keras()
    ours, theirs = _masked_model(nk, causal=causal), _masked_model(tk, causal=causal)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    theirs.set_weights(ours.get_weights())
    x = _ids(rng)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    ours_s, theirs_s = (_masked_model(nk, causal=causal, scores=True),
                        _masked_model(tk, causal=causal, scores=True))
    theirs_s.set_weights(ours_s.get_weights())
    (_, p1), (_, p2) = ours_s.predict(x, verbose=0), theirs_s.predict(x, verbose=0)
    np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-6)


def test_training_steps_match_keras(rng):
    tk = _keras()
    ours, theirs = _masked_model(nk), _masked_model(tk)
    theirs.set_weights(ours.get_weights())
    x, y = _ids(rng, n=32), rng.integers(0, 3, size=32)
    # SGD: on TensorFlow, Keras's Adam gets the Embedding's gradient as IndexedSlices and
    # updates a row once per repeated id (steps above lr), which no dense optimizer reproduces.
    for m, K in ((ours, nk), (theirs, tk)):
        m.compile(optimizer=K.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    h1 = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    h2 = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


def _block_class(K):
    class TransformerBlock(K.layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, **kwargs):
            super().__init__(**kwargs)
            self.att = K.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn1 = K.layers.Dense(ff_dim, activation="relu")
            self.ffn2 = K.layers.Dense(embed_dim)
            self.layernorm1 = K.layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = K.layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = K.layers.Dropout(0.0)
            self.dropout2 = K.layers.Dropout(0.0)

        def call(self, inputs, training=None):
            a = self.dropout1(self.att(inputs, inputs), training=training)
            out1 = self.layernorm1(inputs + a)
            f = self.dropout2(self.ffn2(self.ffn1(out1)), training=training)
            return self.layernorm2(out1 + f)

    return TransformerBlock


def _transformer(K):
    inp = K.Input((6, 8))
    h = _block_class(K)(8, 2, 16)(inp)
    h = K.layers.GlobalAveragePooling1D()(h)
    return K.Model(inp, K.layers.Dense(2, activation="softmax")(h))


def test_transformer_block_in_custom_layer_matches_keras(rng):
    tk = _keras()
    ours, theirs = _transformer(nk), _transformer(tk)
    x = rng.normal(size=(16, 6, 8)).astype(np.float32)
    y = rng.integers(0, 2, size=16)
    ours(x[:2])
    theirs(x[:2])
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    for m, K in ((ours, nk), (theirs, tk)):
        m.compile(optimizer=K.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    h1 = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    h2 = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
def test_eager_matches_keras(cfg, rng):
    tk = _keras()
    mha, q, v, k = _make(rng, **cfg)
    theirs = tk.layers.MultiHeadAttention(cfg["h"], cfg["dk"], value_dim=cfg.get("dv"),
                                          output_shape=cfg.get("out_shape"),
                                          use_bias=cfg.get("use_bias", True))
    theirs(q, v, key=k)
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in mha.get_weights()]
    theirs.set_weights(mha.get_weights())
    mask = rng.random((2, 5, 4)) > 0.3
    mask[0, 2] = False  # a fully masked query row
    for kw in (dict(), dict(attention_mask=mask), dict(use_causal_mask=True),
               dict(attention_mask=mask, use_causal_mask=True)):
        y1, p1 = mha(q, v, key=k, return_attention_scores=True, **kw)
        y2, p2 = theirs(q, v, key=k, return_attention_scores=True, **kw)
        np.testing.assert_allclose(y1, np.asarray(y2), rtol=1e-5, atol=1e-6, err_msg=str(kw))
        np.testing.assert_allclose(p1, np.asarray(p2), rtol=1e-5, atol=1e-6, err_msg=str(kw))
        np.testing.assert_allclose(mha(q, v, key=k, **kw), np.asarray(theirs(q, v, key=k, **kw)),
                                   rtol=1e-5, atol=1e-6, err_msg=str(kw))


def test_two_inputs_cross_attention_graph_gradients(rng):
    """mha(q, v, key=k) with three model inputs: input gradients against the reference."""
    qi, vi, ki = nk.Input((3, 4)), nk.Input((4, 3)), nk.Input((4, 2))
    att = layers.MultiHeadAttention(2, 2, bias_initializer="random_normal")
    model = nk.Model([qi, vi, ki], att(qi, vi, key=ki))
    xs = [rng.normal(size=(2,) + tuple(t.shape[1:])) for t in (qi, vi, ki)]
    r = rng.normal(size=(2, 3, 4))
    dxs = model.input_gradients([a.astype(np.float32) for a in xs], lambda out: r)
    ws = [w.astype(np.float64) for w in att.get_weights()]
    for i in range(3):
        def f(a, i=i):
            args = xs[:i] + [a] + xs[i + 1:]
            return np.sum(ref_mha(ws, args[0], args[1], args[2], None, True, 2, 2)[0] * r)
        np.testing.assert_allclose(dxs[i], _fd_grad(f, xs[i]), rtol=2e-4, atol=2e-5)


# ---- saving -----------------------------------------------------------------------------------

def test_native_save_load_keeps_call_signature(rng, tmp_path):
    model = _masked_model(nk, causal=True, scores=True)
    x = _ids(rng)
    before = model.predict(x, verbose=0)
    path = os.fspath(tmp_path / "m.nncore")
    model.save(path)
    loaded = nk.models.load_model(path)
    after = loaded.predict(x, verbose=0)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    att = [lay for lay in loaded.layers if isinstance(lay, layers.MultiHeadAttention)][0]
    assert att.get_config()["call_args"]["use_causal_mask"] is True
    cfg = layers.MultiHeadAttention(2, 4, value_dim=3, output_shape=5).get_config()
    again = layers.MultiHeadAttention.from_config(cfg).get_config()
    assert again == cfg and cfg["value_dim"] == 3 and cfg["output_shape"] == [5]


# ---- bad input --------------------------------------------------------------------------------

def test_bad_inputs_name_layer_and_shapes(rng):
    with pytest.raises(ValueError, match=r"'att'.*query must have shape.*\(2, 5\)"):
        layers.MultiHeadAttention(2, 4, name="att")(np.zeros((2, 5)), np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"'att2'.*key and value.*\(2, 4, 3\).*\(2, 5, 3\)"):
        layers.MultiHeadAttention(2, 4, name="att2")(
            np.zeros((2, 3, 3)), np.zeros((2, 5, 3)), key=np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="attention_axes"):
        layers.MultiHeadAttention(2, 4, attention_axes=(1,))
    with pytest.raises(ValueError, match=r"attention_mask of shape \(2, 4\)"):
        layers.MultiHeadAttention(1, 2)(np.zeros((2, 3, 3), np.float32),
                                        np.zeros((2, 5, 3), np.float32),
                                        attention_mask=np.ones((2, 4)))
    x = nk.Input((5, 4))
    att = layers.MultiHeadAttention(2, 2, name="att3")
    att(x, x)
    with pytest.raises(ValueError, match="'att3'.*same key/attention_mask"):
        att(x, x, use_causal_mask=True)
    with pytest.raises(ValueError, match=r"'att4'.*\(None, 5, 4\).*\(None, 6\)"):
        layers.MultiHeadAttention(2, 2, name="att4")(x, nk.Input((6,)))


# ---- Attention (Luong) ------------------------------------------------------------------------

def ref_attention(q, v, k, qm, vm, causal, mode, scale, c):
    k = v if k is None else k
    if mode == "dot":
        s = scale * np.einsum("bqd,bvd->bqv", q, k)
    else:
        s = c * np.tanh(scale * (q[:, :, None] + k[:, None])).sum(-1)
    sm = np.ones(s.shape, bool)
    if vm is not None:
        sm &= vm[:, None, :]
    if causal:
        sm &= np.tri(s.shape[1], s.shape[2], dtype=bool)[None]
    s = np.where(sm, s, s - 1e9)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    out = w @ v
    if qm is not None:
        out = np.where(qm[..., None], out, 0.0)
    return out, w


ATT_CASES = [dict(), dict(use_scale=True), dict(score_mode="concat"),
             dict(score_mode="concat", use_scale=True)]


@pytest.mark.parametrize("cfg", ATT_CASES, ids=[str(i) for i in range(len(ATT_CASES))])
@pytest.mark.parametrize("variant", ["plain", "masked_key_causal_scores"])
def test_attention_reference_and_finite_differences(cfg, variant, rng):
    att = layers.Attention(**cfg)
    fancy = variant != "plain"
    q = rng.normal(size=(2, 3, 4))
    v = rng.normal(size=(2, 5, 3 if fancy else 4))  # with a key: value features differ
    k = rng.normal(size=(2, 5, 4)) if fancy else None
    qm = np.array([[1, 1, 0], [1, 0, 1]], bool) if fancy else None
    vm = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], bool) if fancy else None
    parts = [a.astype(np.float32) for a in ([q, v] + ([k] if fancy else []))]
    att(parts)
    for i, w in enumerate(att._weights):
        w[...] = 1.3 + 0.2 * i  # away from 1 so the weight gradients are not trivial
    att._call_sig = (fancy, fancy)
    out, ctx = att.forward(parts, need_ctx=True, mask=[qm, vm] if fancy else None)
    y, p = out if fancy else (out, None)
    ws = [float(w) for w in att._weights]
    scale = ws[0] if cfg.get("use_scale") else 1.0
    c = ws[-1] if cfg.get("score_mode") == "concat" else 1.0

    def ref(xs, scale=scale, c=c):
        return ref_attention(xs[0], xs[1], xs[2] if fancy else None, qm, vm, fancy,
                             cfg.get("score_mode", "dot"), scale, c)

    xs = [a.astype(np.float64) for a in parts]
    yr, pr = ref(xs)
    np.testing.assert_allclose(y, yr, rtol=1e-5, atol=2e-6)
    if fancy:
        np.testing.assert_allclose(p, pr, rtol=1e-5, atol=1e-7)
    r = rng.normal(size=y.shape)
    rp = rng.normal(size=(2, 3, 5))
    att._zero_grads()
    dx = att.backward(ctx, [r.astype(np.float32), rp.astype(np.float32)] if fancy
                      else r.astype(np.float32))
    att._finish_grads()

    def obj(xs_, **kw):
        a, b = ref(xs_, **kw)
        return np.sum(a * r) + (np.sum(b * rp) if fancy else 0.0)

    for i in range(len(xs)):
        num = _fd_grad(lambda a, i=i: obj(xs[:i] + [a] + xs[i + 1:]), xs[i])
        np.testing.assert_allclose(dx[i], num, rtol=2e-4, atol=2e-5, err_msg=f"input {i}")
    if cfg.get("use_scale"):
        num = (obj(xs, scale=scale + 1e-6) - obj(xs, scale=scale - 1e-6)) / 2e-6
        np.testing.assert_allclose(att.grads[0], num, rtol=2e-4, atol=2e-5)
    if cfg.get("score_mode") == "concat":
        num = (obj(xs, c=c + 1e-6) - obj(xs, c=c - 1e-6)) / 2e-6
        np.testing.assert_allclose(att.grads[-1], num, rtol=2e-4, atol=2e-5)


def _att_model(K, mode="dot", causal=False):
    ids = K.Input((6,), dtype="int32")
    e = K.layers.Embedding(15, 4, mask_zero=True)(ids)
    a = K.layers.Attention(use_scale=True, score_mode=mode)([e, e], use_causal_mask=causal)
    h = K.layers.GlobalAveragePooling1D()(K.layers.Add()([e, a]))
    return K.Model(ids, K.layers.Dense(2, activation="softmax")(h))


@pytest.mark.parametrize("mode,causal", [("dot", False), ("concat", True)])
def test_attention_matches_keras(mode, causal, rng, tmp_path):
    tk = _keras()
    q = rng.normal(size=(2, 3, 4)).astype(np.float32)
    v = rng.normal(size=(2, 5, 4)).astype(np.float32)
    qm = np.array([[1, 1, 0], [1, 0, 1]], bool)
    vm = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], bool)
    ours, theirs = layers.Attention(score_mode=mode), tk.layers.Attention(score_mode=mode)
    for kw in (dict(), dict(mask=[qm, vm]), dict(use_causal_mask=True, mask=[qm, vm])):
        y1, p1 = ours([q, v], return_attention_scores=True, **kw)
        y2, p2 = theirs([q, v], return_attention_scores=True, **kw)
        np.testing.assert_allclose(y1, np.asarray(y2), rtol=1e-5, atol=1e-6, err_msg=str(kw))
        np.testing.assert_allclose(p1, np.asarray(p2), rtol=1e-5, atol=1e-6, err_msg=str(kw))
    m1, m2 = _att_model(nk, mode, causal), _att_model(tk, mode, causal)
    m2.set_weights(m1.get_weights())
    x = _ids(rng, n=16, t=6, vocab=15)
    y = rng.integers(0, 2, size=16)
    np.testing.assert_allclose(m1.predict(x, verbose=0), m2.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    for m, K in ((m1, nk), (m2, tk)):
        m.compile(optimizer=K.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    h1 = m1.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    h2 = m2.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-4)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
    path = os.fspath(tmp_path / "att.nncore")
    m1.save(path)
    np.testing.assert_array_equal(nk.models.load_model(path).predict(x, verbose=0),
                                  m1.predict(x, verbose=0))


def test_attention_bad_inputs():
    with pytest.raises(ValueError, match="score_mode"):
        layers.Attention(score_mode="add")
    with pytest.raises(ValueError, match=r"'a1'.*list"):
        layers.Attention(name="a1")(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"'a2'.*\(2, 3, 4\).*\(2, 5, 3\)"):
        layers.Attention(name="a2")([np.zeros((2, 3, 4)), np.zeros((2, 5, 3)),
                                     np.zeros((2, 5, 3))])


def test_attention_threads_bitwise(rng, threads):
    att = layers.Attention(use_scale=True)
    q = rng.normal(size=(3, 17, 24)).astype(np.float32)
    v = rng.normal(size=(3, 13, 24)).astype(np.float32)
    att([q, v])
    att._call_sig = (True, True)
    res = []
    for nt in (1, 2):
        nk.set_num_threads(nt)
        (y, p), ctx = att.forward([q, v], need_ctx=True)
        att._zero_grads()
        dx = att.backward(ctx, [np.ones_like(y), np.ones_like(p)])
        att._finish_grads()
        res.append([y, p] + dx + [g.copy() for g in att.grads])
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)
