"""Masked losses and metrics: an output that carries a Keras mask (Embedding(mask_zero=True) or
Masking before a return_sequences RNN, then Dense / TimeDistributed) has its loss reduced as
Keras 3 does (losses/loss.py apply_mask: sum(v * m * sw) / sum(m), 0 when nothing is valid), and
its mean-of-values metrics weighted by the mask; masked steps get no gradient."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from conftest import require

N, T, V = 7, 6, 9


def _ids(rng):
    x = rng.integers(1, V, size=(N, T)).astype(np.int32)
    x[0, 3:] = 0  # post-padding
    x[1, :4] = 0  # pre-padding
    x[2, 2] = 0  # a hole
    x[3, 1:] = 0  # one valid step
    return x


def _model(lib, head, rnn="LSTM", masking=False, td=True):
    L = lib.layers
    if masking:
        inp = lib.Input((T, 3))
        h = L.Masking(0.0)(inp)
    else:
        inp = lib.Input((T,), dtype="int32")
        h = L.Embedding(V, 4, mask_zero=True)(inp)
    h = getattr(L, rnn)(5, return_sequences=True)(h)
    units, act = head
    d = L.Dense(units, activation=act)
    out = (L.TimeDistributed(d) if td else d)(h)
    return lib.Model(inp, out)


# (head units, activation, loss, target kind, metrics)
CASES = {
    "sparse_ce_softmax": ((4, "softmax"), "sparse_categorical_crossentropy", "sparse",
                          ["accuracy", "sparse_categorical_crossentropy"]),
    "ce_softmax": ((4, "softmax"), "categorical_crossentropy", "onehot",
                   ["categorical_accuracy"]),
    "bce_sigmoid": ((1, "sigmoid"), "binary_crossentropy", "binary", ["binary_accuracy"]),
    "mse_linear": ((2, None), "mse", "real", ["mae", "root_mean_squared_error"]),
    "huber_linear": ((2, None), "huber", "real", ["mse"]),
}


def _targets(kind, rng):
    if kind == "sparse":
        return rng.integers(0, 4, size=(N, T))
    if kind == "onehot":
        return np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(N, T))]
    if kind == "binary":
        return rng.integers(0, 2, size=(N, T, 1)).astype(np.float32)
    return rng.normal(size=(N, T, 2)).astype(np.float32)


def _inputs(masking, rng):
    if not masking:
        return _ids(rng)
    x = rng.normal(size=(N, T, 3)).astype(np.float32)
    x[_ids(rng) == 0] = 0.0
    return x


def _pair(keras, case, rng, rnn="LSTM", masking=False, td=True, lr=0.3):
    head, loss, kind, metrics = CASES[case]
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    theirs, ours = _model(keras, head, rnn, masking, td), _model(nk, head, rnn, masking, td)
    # larger weights: outputs far from uniform, so masked and unmasked losses differ clearly
    theirs.set_weights([3 * w for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    theirs.compile(keras.optimizers.SGD(learning_rate=lr), loss, metrics=metrics)
    ours.compile(nk.optimizers.SGD(learning_rate=lr), loss, metrics=metrics)
    return theirs, ours, _inputs(masking, rng), _targets(kind, rng)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("variant", ["embedding_td", "masking_dense_gru"])
def test_masked_loss_metrics_and_step_match_keras(case, variant, rng):
    require("tensorflow")
    import keras

    kw = dict(rnn="GRU", masking=True, td=False) if variant == "masking_dense_gru" else {}
    theirs, ours, x, y = _pair(keras, case, rng, **kw)
    want = theirs.evaluate(x, y, verbose=0, return_dict=True)
    got = ours.evaluate(x, y, verbose=0, return_dict=True)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=1e-6, err_msg=k)
    # the mask changes the loss by more than the tolerance (else this test could not tell)
    unmasked = nk.losses.get(CASES[case][1])(y, ours.predict(x, verbose=0))
    assert abs(unmasked - want["loss"]) > 3 * (2e-5 * abs(want["loss"]) + 1e-6)
    # one training step from identical weights: same loss, same new weights (gradients)
    lt = theirs.train_on_batch(x, y, return_dict=True)["loss"]
    lo = ours.train_on_batch(x, y, return_dict=True)["loss"]
    np.testing.assert_allclose(lo, lt, rtol=2e-5, atol=1e-6)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


def test_masked_fit_history_matches_keras(rng):
    require("tensorflow")
    import keras

    theirs, ours, x, y = _pair(keras, "sparse_ce_softmax", rng)
    ht = theirs.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0).history
    ho = ours.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0).history
    for k in ht:
        np.testing.assert_allclose(ho[k], ht[k], rtol=5e-5, atol=1e-6, err_msg=k)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=5e-6)


def test_sample_weights_with_a_mask_match_keras_temporal_weights(rng):
    # Keras 3.15 raises for per-sample weights (N,) on a (N, T) mask (it broadcasts them against
    # the steps axis); nncore applies them to every step of their sample, which is Keras with
    # the same weights repeated over the steps.
    require("tensorflow")
    import keras

    theirs, ours, x, y = _pair(keras, "sparse_ce_softmax", rng)
    sw = rng.uniform(0.2, 2.0, size=N).astype(np.float32)
    sw_t = np.repeat(sw[:, None], T, axis=1)
    want = theirs.test_on_batch(x, y, sample_weight=sw_t, return_dict=True)["loss"]
    got = ours.test_on_batch(x, y, sample_weight=sw, return_dict=True)["loss"]
    np.testing.assert_allclose(got, want, rtol=2e-5)
    theirs.train_on_batch(x, y, sample_weight=sw_t)
    ours.train_on_batch(x, y, sample_weight=sw)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


def test_custom_function_loss_is_masked_as_keras(rng):
    require("tensorflow")
    import keras

    def sq(y_true, y_pred, ops):
        return ops.mean(ops.square(y_pred - y_true) * 0.5, axis=-1)

    theirs, ours, x, y = _pair(keras, "mse_linear", rng)
    theirs.compile(keras.optimizers.SGD(0.3), lambda t, p: sq(t, p, keras.ops))
    ours.compile(nk.optimizers.SGD(0.3), lambda t, p: sq(t, p, nk.ops))
    want = theirs.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), want, rtol=2e-5)
    theirs.train_on_batch(x, y)
    ours.train_on_batch(x, y)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


@pytest.mark.parametrize("case", ["sparse_ce_softmax", "bce_sigmoid", "mse_linear"])
def test_masked_loss_gradient_by_finite_differences(case, rng):
    head, loss, kind, _ = CASES[case]
    model = _model(nk, head)
    model.compile(nk.optimizers.SGD(0.1), loss)
    x, y = _ids(rng), _targets(kind, rng)
    sw = rng.uniform(0.5, 2.0, size=N).astype(np.float32)
    total, grads = model._gradients(x, y, sample_weight=sw)
    weights = model.trainable_weights
    eps = 1e-3

    def f():
        return model._gradients(x, y, sample_weight=sw)[0]

    for w, g in zip(weights, grads):
        arr = w if isinstance(w, np.ndarray) else w.numpy()
        flat = arr.reshape(-1)
        for i in rng.choice(flat.size, min(flat.size, 12), replace=False):
            old = flat[i]
            flat[i] = old + eps
            fp = f()
            flat[i] = old - eps
            fm = f()
            flat[i] = old
            np.testing.assert_allclose(g.reshape(-1)[i], (fp - fm) / (2 * eps), rtol=3e-2,
                                       atol=2e-4)
    assert np.isclose(f(), total)


def test_masked_steps_contribute_nothing(rng):
    model = _model(nk, (4, "softmax"))
    model.compile(nk.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = _ids(rng)
    y = rng.integers(0, 4, size=(N, T))
    y2 = y.copy()
    y2[x == 0] = (y[x == 0] + 1) % 4  # other labels at the masked steps only
    l1, g1 = model._gradients(x, y)
    l2, g2 = model._gradients(x, y2)
    assert l1 == l2
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    e1 = model.evaluate(x, y, verbose=0)
    e2 = model.evaluate(x, y2, verbose=0)
    assert e1 == e2
    # The loss is the mean over the valid steps only (Keras's sum(v m) / sum(m)).
    p = model.predict(x, verbose=0).astype(np.float64)
    v = -np.log(np.take_along_axis(p, y[..., None], -1)[..., 0])
    m = x != 0
    np.testing.assert_allclose(e1[0], (v * m).sum() / m.sum(), rtol=1e-5)
    acc = (p.argmax(-1) == y)
    np.testing.assert_allclose(e1[1], (acc * m).sum() / m.sum(), rtol=1e-6)


def test_fully_masked_batch_has_zero_loss_and_gradient(rng):
    model = _model(nk, (2, None))
    model.compile(nk.optimizers.SGD(0.1), "mse")
    x = np.zeros((3, T), np.int32)
    y = rng.normal(size=(3, T, 2)).astype(np.float32)
    loss, grads = model._gradients(x, y)
    assert loss == 0.0
    assert all(not np.any(g) for g in grads)


def test_masked_reductions_and_bad_mask_shapes():
    out = np.array([[[0.5], [1.0], [2.0]], [[1.5], [0.0], [3.0]]], np.float32)  # (2, 3, 1)
    y = np.zeros_like(out)
    mask = np.array([[True, True, False], [True, False, False]])
    v = out[..., 0].astype(np.float64) ** 2
    mse = nk.losses.MeanSquaredError()
    per, d = mse.compute_masked(out, y, mask, None, True)
    np.testing.assert_allclose(per.mean(), (v * mask).sum() / mask.sum(), rtol=1e-6)
    np.testing.assert_allclose(d[..., 0], 2 * out[..., 0] * mask / mask.sum(), rtol=1e-6)
    summed = nk.losses.MeanSquaredError(reduction="sum")
    per, _ = summed.compute_masked(out, y, mask, None, False)
    np.testing.assert_allclose(per.mean(), (v * mask).sum(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"mean_squared_error.*\(2, 4\).*\(2, 3\)"):
        mse.compute_masked(out, y, np.ones((2, 4), bool), None, False)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("loss", ["MeanSquaredError", "SparseCategoricalCrossentropy"])
def test_sum_reduction_in_training_matches_keras(loss, masked, rng):
    # reduction="sum" is the sum of the (masked, weighted) values, in fit as in Keras.
    require("tensorflow")
    import keras

    keras.utils.set_random_seed(3)
    head = (4, "softmax") if loss.startswith("Sparse") else (2, None)
    if masked:
        theirs, ours = _model(keras, head), _model(nk, head)
        x = _ids(rng)
    else:
        theirs, ours = (lib.Sequential([lib.Input((5,)), lib.layers.Dense(head[0], head[1])])
                        for lib in (keras, nk))
        x = rng.normal(size=(N, 5)).astype(np.float32)
    ours.set_weights(theirs.get_weights())
    out_shape = theirs.output_shape[1:-1]
    y = (rng.integers(0, 4, size=(N,) + out_shape) if loss.startswith("Sparse")
         else rng.normal(size=(N,) + out_shape + (2,)).astype(np.float32))
    theirs.compile(keras.optimizers.SGD(0.01), getattr(keras.losses, loss)(reduction="sum"))
    ours.compile(nk.optimizers.SGD(0.01), getattr(nk.losses, loss)(reduction="sum"))
    np.testing.assert_allclose(ours.evaluate(x, y, batch_size=4, verbose=0),
                               theirs.evaluate(x, y, batch_size=4, verbose=0), rtol=2e-5)
    theirs.train_on_batch(x, y)
    ours.train_on_batch(x, y)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)
