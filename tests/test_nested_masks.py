"""Masks crossing the boundary of a model used as a layer, as Keras 3 carries them: a nested
Functional/Sequential whose output has a mask (Embedding(mask_zero) / Masking, through layers that
pass masks) hands it to the outer layers (RNNs, pooling, the loss), and a mask made outside reaches
the layers inside."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from conftest import require


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    import keras as k

    return k


def _ids(rng, n=12, t=7, vocab=9, empty_row=True):
    x = rng.integers(1, vocab, size=(n, t))
    for i in range(n):
        k = rng.integers(0, t)
        if i % 2:
            x[i, t - k:] = 0
        else:
            x[i, :k] = 0
    x[0, 3] = 0
    if empty_row:  # (Keras's GlobalAveragePooling1D gives NaN there, nncore 0: not compared)
        x[5, :] = 0
    return x.astype(np.int32)


def _embed_dense(lib, sequential):
    L = lib.layers
    if sequential:
        return lib.Sequential([lib.Input((7,), dtype="int32"), L.Embedding(9, 4, mask_zero=True),
                               L.Dense(3)], name="inner")
    i = lib.Input((7,), dtype="int32")
    return lib.Model(i, L.Dense(3)(L.Dropout(0.0)(L.Embedding(9, 4, mask_zero=True)(i))),
                     name="inner")


def _build(lib, variant):
    """(model, input kind, target shape)."""
    L = lib.layers
    if variant in ("functional_lstm", "sequential_lstm"):
        inner = _embed_dense(lib, variant.startswith("sequential"))
        i = lib.Input((7,), dtype="int32")
        return lib.Model(i, L.Dense(1)(L.LSTM(5)(inner(i)))), "ids", (1,)
    if variant == "sequential_of_sequential_pool":
        inner = _embed_dense(lib, True)
        return lib.Sequential([lib.Input((7,), dtype="int32"), inner, L.GlobalAveragePooling1D(),
                               L.Dense(1)]), "ids", (1,)
    if variant == "masking_gru_sequences":
        i = lib.Input((7, 3))
        inner = lib.Model(i, L.SimpleRNN(4, return_sequences=True)(L.Masking(0.0)(i)),
                          name="inner")
        o = lib.Input((7, 3))
        return lib.Model(o, L.Dense(1)(L.GRU(3)(inner(o)))), "dense", (1,)
    if variant == "twice_nested_bidirectional":
        inner = _embed_dense(lib, False)
        i = lib.Input((7,), dtype="int32")
        middle = lib.Model(i, L.Dense(3)(inner(i)), name="middle")
        o = lib.Input((7,), dtype="int32")
        h = L.Bidirectional(L.GRU(3, return_sequences=True))(middle(o))
        return lib.Model(o, L.Dense(1)(L.LSTM(2)(h))), "ids", (1,)
    if variant == "mask_enters":
        i = lib.Input((7, 4))
        inner = lib.Model(i, L.LSTM(5)(L.Dense(4)(i)), name="inner")
        o = lib.Input((7,), dtype="int32")
        return lib.Model(o, L.Dense(1)(inner(L.Embedding(9, 4, mask_zero=True)(o)))), "ids", (1,)
    if variant == "masked_loss":  # the nested model's masked sequence is the model's output
        inner = _embed_dense(lib, True)
        i = lib.Input((7,), dtype="int32")
        return lib.Model(i, inner(i)), "ids", (7, 3)
    raise AssertionError(variant)


VARIANTS = ["functional_lstm", "sequential_lstm", "sequential_of_sequential_pool",
            "masking_gru_sequences", "twice_nested_bidirectional", "mask_enters", "masked_loss"]


def _data(kind, rng, variant=""):
    if kind == "ids":
        return _ids(rng, empty_row="pool" not in variant)
    x = rng.normal(size=(12, 7, 3)).astype(np.float32)
    x[1, 4:] = 0
    x[2, :3] = 0
    x[3, 2] = 0
    return x


# Keras warns that a Functional "destroys" the mask it is given; it still hands it to the layers
# inside (the mask_enters predictions differ without it).
@pytest.mark.filterwarnings("ignore:Layer 'inner' .of type Functional. was passed an input with a "
                            "mask:UserWarning")
@pytest.mark.parametrize("variant", VARIANTS)
def test_nested_model_masks_match_keras_in_predict_and_two_epochs(keras, variant, rng):
    keras.utils.set_random_seed(1)
    theirs, kind, yshape = _build(keras, variant)
    ours, _, _ = _build(nk, variant)
    ours.set_weights(theirs.get_weights())
    x = _data(kind, rng, variant)
    y = rng.normal(size=(12,) + yshape).astype(np.float32)
    p_theirs = theirs.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x, verbose=0), p_theirs, rtol=1e-4, atol=1e-5)
    # the mask matters: the same graph read without it gives other predictions
    if variant != "masked_loss":
        x_nomask = np.where(x == 0, 1, x) if kind == "ids" else x + np.float32(1e-3)
        assert not np.allclose(theirs.predict(x_nomask, verbose=0), p_theirs, atol=1e-4)
    theirs.compile(keras.optimizers.SGD(learning_rate=0.1), "mse")
    ours.compile(nk.optimizers.SGD(learning_rate=0.1), "mse")
    h_theirs = theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    h_ours = ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_ours.history["loss"], h_theirs.history["loss"], rtol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0),
                               rtol=1e-4)


def test_nested_model_output_masks_are_the_inner_ones(rng):
    inner = _embed_dense(nk, False)
    x = _ids(rng)
    np.testing.assert_array_equal(inner.compute_mask(x), x != 0)
    i = nk.Input((7,), dtype="int32")
    outer = nk.Model(i, nk.layers.Flatten()(inner(i)))  # Flatten drops the mask
    assert inner._makes_mask and outer._makes_mask
    assert outer.compute_mask(x) is None
    # a model with no mask maker and no mask coming in gives none
    j = nk.Input((7, 3))
    plain = nk.Model(j, nk.layers.Dense(2)(j))
    assert not plain._makes_mask and plain.compute_mask(rng.normal(size=(2, 7, 3))) is None
    m = np.ones((2, 7), bool)
    m[1, 3:] = False
    np.testing.assert_array_equal(plain.compute_mask(rng.normal(size=(2, 7, 3)), m), m)


def test_masked_nested_model_gradients_match_finite_differences(rng):
    """The outer LSTM's gradient through the nested model's mask (float64 differences of the
    float32 model, on the inner Dense kernel)."""
    inner = _embed_dense(nk, False)
    i = nk.Input((7,), dtype="int32")
    model = nk.Model(i, nk.layers.LSTM(3)(inner(i)))
    x = _ids(rng)[:4]
    g = rng.normal(size=(4, 3)).astype(np.float32)
    dense = inner.layers[-1]
    k0 = dense.get_weights()[0].astype(np.float64)

    def objective(kernel):
        dense.set_weights([kernel.astype(np.float32), dense.get_weights()[1]])
        return float(np.sum(model.predict(x, verbose=0).astype(np.float64) * g))

    outs, ctxs, _ = model._run([x], training=False, need_ctx=True)
    model._zero_grads()
    model._backprop(ctxs, [g], model._grad_plan())
    for lay in model._leaf_layers():
        lay._finish_grads()
    analytic = dense.grads[0].astype(np.float64)
    eps = 1e-2
    numeric = np.zeros_like(k0)
    for idx in np.ndindex(k0.shape):
        kp, km = k0.copy(), k0.copy()
        kp[idx] += eps
        km[idx] -= eps
        numeric[idx] = (objective(kp) - objective(km)) / (2 * eps)
    dense.set_weights([k0.astype(np.float32), dense.get_weights()[1]])
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-4)
    assert np.abs(analytic).sum() > 0
    # the padding's embedding row (id 0) gets no gradient: every masked step is skipped
    emb = inner.layers[1] if isinstance(inner.layers[0], nk.layers.InputLayer) else inner.layers[0]
    model._zero_grads()
    model._backprop(ctxs, [g], model._grad_plan())
    for lay in model._leaf_layers():
        lay._finish_grads()
    assert np.all(emb.grads[0][0] == 0) and np.abs(emb.grads[0][1:]).sum() > 0


@pytest.mark.parametrize("variant", ["functional_lstm", "sequential_of_sequential_pool",
                                     "mask_enters", "twice_nested_bidirectional"])
def test_nested_masked_models_round_trip_natively(variant, rng, tmp_path):
    model, kind, _ = _build(nk, variant)
    x = _data(kind, rng)
    model.save(tmp_path / "m.nncore")
    back = nk.models.load_model(tmp_path / "m.nncore")
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))


# TensorFlow 2.21's tensors predate NumPy 2's __array__(copy=) protocol: Keras's own save warns.
@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:Layer 'inner' .of type Functional. was passed an input with a "
                            "mask:UserWarning")
@pytest.mark.parametrize("variant", ["functional_lstm", "sequential_of_sequential_pool",
                                     "mask_enters"])
def test_nested_masked_models_in_keras_files_both_ways(keras, variant, rng, tmp_path):
    x = _data("ids", rng, variant)
    ours, _, _ = _build(nk, variant)
    ours.save(tmp_path / "n.keras")
    km = keras.models.load_model(tmp_path / "n.keras")
    np.testing.assert_allclose(km.predict(x, verbose=0), ours.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    keras.utils.set_random_seed(2)
    theirs, _, _ = _build(keras, variant)
    theirs.save(tmp_path / "k.keras")
    back = nk.models.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


# the layers after the nested boundary that read its mask, by the ONNX op only the masked form has
_MASK_OPS = {"sequential_of_sequential_pool": "ReduceSum", "masked_loss": None}


@pytest.mark.parametrize("variant", VARIANTS)
def test_onnx_export_carries_masks_across_a_nested_model(variant, tmp_path, rng):
    """The ONNX writer emits a nested model inline and carries the masks across its boundary
    as within one graph: ONNX Runtime gives nncore's predictions (full checker), and the file
    reads back to a model with the same predictions."""
    require("onnx")
    require("onnxruntime")
    import onnx
    import onnxruntime as ort

    model, kind, _ = _build(nk, variant)
    x = _data(kind, rng, variant)
    want = model.predict(x, verbose=0)
    path = tmp_path / "m.onnx"
    nk.onnx.export(model, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    op = _MASK_OPS.get(variant, "TopK")  # the recurrent layers' exact masked form
    if op is not None:
        assert op in {n.op_type for n in proto.graph.node}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    back = nk.onnx.load(path)
    np.testing.assert_allclose(back.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_onnx_export_of_a_nested_model_whose_mask_stops_inside_still_works(tmp_path, rng):
    require("onnx")
    i = nk.Input((7,), dtype="int32")
    inner = nk.Model(i, nk.layers.Dense(2)(nk.layers.LSTM(3)(
        nk.layers.Embedding(9, 4, mask_zero=True)(i))), name="inner")
    o = nk.Input((7,), dtype="int32")
    model = nk.Model(o, nk.layers.Dense(1)(inner(o)))
    assert inner._makes_mask
    nk.onnx.export(model, tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").stat().st_size > 0
