"""Keras's metric functions, the loss-twin metric classes and function metrics in compile:
numbers against Keras (skipped without it) and against float64 NumPy."""

from __future__ import annotations

import nncore
import numpy as np
import pytest
from conftest import require
from nncore import layers

FUNCS = ("binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
         "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "hinge",
         "squared_hinge", "categorical_hinge", "kl_divergence", "poisson", "log_cosh", "huber",
         "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
         "categorical_crossentropy", "sparse_categorical_crossentropy")
CLASSES = ("Accuracy", "Hinge", "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson",
           "LogCoshError", "CosineSimilarity")


def _data(rng):
    p = rng.random((7, 5)).astype(np.float32) + 0.01
    p /= p.sum(-1, keepdims=True)
    labels = rng.integers(0, 5, 7)
    labels[:3] = p[:3].argmax(-1)  # some right, some wrong
    onehot = np.eye(5, dtype=np.float32)[labels]
    pb = rng.random((7, 3)).astype(np.float32)
    tb = (rng.random((7, 3)) > 0.5).astype(np.float32)
    return p, labels, onehot, pb, tb


def _args(name, d):
    p, labels, onehot, pb, tb = d
    if name.startswith("sparse"):
        return labels, p
    if name in ("binary_accuracy", "binary_crossentropy"):
        return tb, pb
    if name == "Accuracy":
        return labels, p.argmax(-1)
    return onehot, p


@pytest.mark.parametrize("name", FUNCS)
def test_metric_functions_match_keras(name, rng):
    keras = require("keras", minversion="3.0")
    a, b = _args(name, _data(rng))
    kw = {"k": 2} if "top_k" in name else {}
    want = np.asarray(getattr(keras.metrics, name)(a, b, **kw))
    got = np.asarray(getattr(nncore.metrics, name)(a, b, **kw))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-7)


@pytest.mark.parametrize("name", CLASSES)
def test_metric_classes_match_keras(name, rng):
    keras = require("keras", minversion="3.0")
    d = _data(rng)
    km, ours = getattr(keras.metrics, name)(), getattr(nncore.metrics, name)()
    assert ours.name == km.name
    for half in (slice(0, 4), slice(4, 7)):  # two updates, with sample weights the second time
        a, b = _args(name, d)
        sw = None if half.start == 0 else np.array([1.0, 0.5, 2.0], np.float32)
        km.update_state(a[half], b[half], sample_weight=sw)
        ours.update_state(a[half], b[half], sample_weight=sw)
    np.testing.assert_allclose(ours.result(), float(km.result()), rtol=2e-6)
    ours.reset_state()
    assert ours.result() == 0.0


def test_accuracy_and_functions_against_numpy(rng):
    p, labels, onehot, pb, tb = _data(rng)
    np.testing.assert_array_equal(nncore.metrics.sparse_categorical_accuracy(labels, p),
                                  (p.argmax(-1) == labels).astype(np.float32))
    np.testing.assert_array_equal(nncore.metrics.binary_accuracy(tb, pb, threshold=0.3),
                                  ((pb > 0.3) == (tb > 0.5)).astype(np.float32))
    m = nncore.metrics.Accuracy()
    m.update_state([1, 2, 3, 4], [1, 2, 0, 4])
    assert m.result() == 0.75
    cos = nncore.metrics.CosineSimilarity()
    cos.update_state(onehot.astype(np.float64), p.astype(np.float64))
    ref = (onehot * p).sum(-1) / np.linalg.norm(onehot, axis=-1) / np.linalg.norm(p, axis=-1)
    np.testing.assert_allclose(cos.result(), ref.mean(), rtol=1e-6)


def test_function_metric_in_compile(rng):
    """metrics=[fn]: the weighted mean of fn(y_true, y_pred), reported under fn's name."""
    def mean_abs_gap(y_true, y_pred):
        return nncore.ops.mean(nncore.ops.abs(y_true - y_pred), axis=-1)

    x = rng.normal(size=(10, 3)).astype(np.float32)
    y = rng.normal(size=(10, 2)).astype(np.float32)
    m = nncore.Sequential([nncore.Input((3,)), layers.Dense(2)])
    m.compile("sgd", "mse", metrics=[mean_abs_gap, nncore.metrics.log_cosh, nncore.metrics.Hinge])
    res = m.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)
    pred = m.predict(x, verbose=0).astype(np.float64)
    np.testing.assert_allclose(res["mean_abs_gap"], np.abs(y - pred).mean(), rtol=1e-6)
    d = y - pred
    np.testing.assert_allclose(res["log_cosh"], np.mean(d + np.log1p(np.exp(-2 * d)) - np.log(2)),
                               rtol=1e-5)
    assert set(res) == {"loss", "mean_abs_gap", "log_cosh", "hinge"}


@pytest.mark.parametrize("ext", ["nncore", "keras", "h5"])
def test_function_metrics_saved_by_name(ext, rng, tmp_path):
    """A compiled model with function metrics saves; Keras's own functions read back by name, a
    user's function only when the caller names it (custom_objects), else a clear error."""
    if ext != "nncore":
        require("h5py")

    def mean_abs_gap(y_true, y_pred):
        return nncore.ops.mean(nncore.ops.abs(y_true - y_pred), axis=-1)

    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    m = nncore.Sequential([nncore.Input((3,)), layers.Dense(2)])
    m.compile("sgd", "mse", metrics=[mean_abs_gap, nncore.metrics.log_cosh,
                                     nncore.metrics.Hinge, "kl_divergence"])
    m.fit(x, y, epochs=1, verbose=0)
    want = m.evaluate(x, y, verbose=0, return_dict=True)
    m.save(tmp_path / f"m.{ext}")
    back = nncore.models.load_model(tmp_path / f"m.{ext}",
                                    custom_objects={"mean_abs_gap": mean_abs_gap})
    assert back.evaluate(x, y, verbose=0, return_dict=True) == want
    with pytest.raises(ValueError, match="mean_abs_gap.*custom_objects"):
        nncore.models.load_model(tmp_path / f"m.{ext}")
    assert nncore.models.load_model(tmp_path / f"m.{ext}", compile=False).predict(
        x, verbose=0).shape == (8, 2)
    with pytest.raises(ValueError, match="lambda"):
        m.compile("sgd", "mse", metrics=[lambda t, p: t - p])
        m.save(tmp_path / "lambda.nncore")
