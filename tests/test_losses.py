"""Every loss against Keras (values, reductions, sample weights, gradients via tf.GradientTape),
against its written formula in NumPy, and its analytic gradient against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from nncore import layers, losses, models, utils
from conftest import require

EPS = 1e-7


@pytest.fixture(scope="module")
def tf():
    return require("tensorflow")


@pytest.fixture(scope="module")
def keras(tf):
    return require("keras")  # Keras 3, installed with TensorFlow


def _data(kind, rng, shape=(7, 5)):
    """(y_true, y_pred) suited to a loss family."""
    p = rng.uniform(0.05, 0.95, shape).astype(np.float32)
    if kind == "prob":  # rows of probabilities / soft targets
        p /= p.sum(-1, keepdims=True)
        t = rng.uniform(0, 1, shape).astype(np.float32)
        t /= t.sum(-1, keepdims=True)
    elif kind == "onehot":
        p /= p.sum(-1, keepdims=True)
        t = np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[:-1])]
    elif kind == "logits":
        p = rng.normal(0, 2, shape).astype(np.float32)
        t = np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[:-1])]
    elif kind == "binary":
        t = rng.integers(0, 2, shape).astype(np.float32)
    elif kind == "pm1":
        p = rng.normal(0, 1.5, shape).astype(np.float32)
        t = rng.choice([-1.0, 1.0], shape).astype(np.float32)
    else:  # regression
        p = rng.normal(0, 2, shape).astype(np.float32)
        t = rng.normal(0, 2, shape).astype(np.float32)
    return t, p


# (our class, keras class name, kwargs, data kind)
CASES = [
    (losses.MeanSquaredError, "MeanSquaredError", {}, "reg"),
    (losses.MeanAbsoluteError, "MeanAbsoluteError", {}, "reg"),
    (losses.MeanAbsolutePercentageError, "MeanAbsolutePercentageError", {}, "reg"),
    (losses.MeanSquaredLogarithmicError, "MeanSquaredLogarithmicError", {}, "prob"),
    (losses.Huber, "Huber", {}, "reg"),
    (losses.Huber, "Huber", {"delta": 0.4}, "reg"),
    (losses.LogCosh, "LogCosh", {}, "reg"),
    (losses.KLDivergence, "KLDivergence", {}, "prob"),
    (losses.Poisson, "Poisson", {}, "prob"),
    (losses.Hinge, "Hinge", {}, "pm1"),
    (losses.Hinge, "Hinge", {}, "binary"),
    (losses.SquaredHinge, "SquaredHinge", {}, "pm1"),
    (losses.CategoricalHinge, "CategoricalHinge", {}, "onehot"),
    (losses.CosineSimilarity, "CosineSimilarity", {}, "reg"),
    (losses.BinaryCrossentropy, "BinaryCrossentropy", {}, "binary"),
    (losses.BinaryCrossentropy, "BinaryCrossentropy", {"label_smoothing": 0.2}, "binary"),
    (losses.BinaryCrossentropy, "BinaryCrossentropy", {"from_logits": True,
                                                       "label_smoothing": 0.1}, "logits"),
    (losses.CategoricalCrossentropy, "CategoricalCrossentropy", {}, "prob"),
    (losses.CategoricalCrossentropy, "CategoricalCrossentropy", {"label_smoothing": 0.3},
     "onehot"),
    (losses.CategoricalCrossentropy, "CategoricalCrossentropy",
     {"from_logits": True, "label_smoothing": 0.1}, "logits"),
    (losses.BinaryFocalCrossentropy, "BinaryFocalCrossentropy", {}, "binary"),
    (losses.BinaryFocalCrossentropy, "BinaryFocalCrossentropy",
     {"apply_class_balancing": True, "alpha": 0.3, "gamma": 1.5, "label_smoothing": 0.1},
     "binary"),
    (losses.BinaryFocalCrossentropy, "BinaryFocalCrossentropy",
     {"from_logits": True, "gamma": 3.0}, "logits"),
    (losses.CategoricalFocalCrossentropy, "CategoricalFocalCrossentropy", {}, "onehot"),
    (losses.CategoricalFocalCrossentropy, "CategoricalFocalCrossentropy",
     {"from_logits": True, "alpha": 0.5, "gamma": 1.0, "label_smoothing": 0.2}, "logits"),
]
IDS = [f"{c[1]}-{'-'.join(f'{k}={v}' for k, v in c[2].items())}-{c[3]}" for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_values_reductions_and_gradients_match_keras(tf, keras, rng, case):
    ours_cls, keras_name, kwargs, kind = case
    t, p = _data(kind, rng)
    w = rng.uniform(0.1, 2.0, t.shape[0]).astype(np.float32)
    for reduction in ("sum_over_batch_size", "sum", None):
        ours = ours_cls(reduction=reduction, **kwargs)
        theirs = getattr(keras.losses, keras_name)(reduction=reduction, **kwargs)
        for sw in (None, w):
            np.testing.assert_allclose(ours(t, p, sample_weight=sw),
                                       np.asarray(theirs(t, p, sample_weight=sw)),
                                       rtol=2e-5, atol=1e-6)
    # Training gradient: d(batch-mean loss)/d(y_pred) vs TensorFlow's.
    pv = tf.Variable(p)
    with tf.GradientTape() as tape:
        value = getattr(keras.losses, keras_name)(**kwargs)(t, pv)
    want = tape.gradient(value, pv).numpy()
    per, got = ours_cls(**kwargs).compute(p, t, True)
    assert per.shape == (t.shape[0],) and got.shape == p.shape and got.dtype == np.float32
    np.testing.assert_allclose(float(np.mean(per, dtype=np.float64)), float(value), rtol=2e-5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


FUNCTIONS = [
    ("mean_squared_error", "reg", {}), ("mean_absolute_error", "reg", {}),
    ("mean_absolute_percentage_error", "reg", {}),
    ("mean_squared_logarithmic_error", "prob", {}), ("huber", "reg", {"delta": 0.7}),
    ("log_cosh", "reg", {}), ("kl_divergence", "prob", {}), ("poisson", "prob", {}),
    ("hinge", "pm1", {}), ("squared_hinge", "binary", {}), ("categorical_hinge", "onehot", {}),
    ("cosine_similarity", "reg", {}), ("binary_crossentropy", "binary", {}),
    ("categorical_crossentropy", "onehot", {"label_smoothing": 0.1}),
    ("binary_focal_crossentropy", "binary", {"gamma": 2.5}),
    ("categorical_focal_crossentropy", "onehot", {}),
]


@pytest.mark.parametrize("name,kind,kwargs", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_functions_return_keras_per_sample_values(keras, rng, name, kind, kwargs):
    t, p = _data(kind, rng, (3, 4, 6))  # rank 3: values have shape (3, 4)
    ours = getattr(losses, name)(t, p, **kwargs)
    theirs = np.asarray(getattr(keras.losses, name)(t, p, **kwargs))
    assert ours.shape == theirs.shape == (3, 4)
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-6)


def test_sparse_categorical_crossentropy_function(keras, rng):
    p = rng.uniform(0.1, 1, (6, 4)).astype(np.float32)
    p /= p.sum(1, keepdims=True)
    y = rng.integers(0, 4, 6)
    for yy in (y, y[:, None]):
        np.testing.assert_allclose(losses.sparse_categorical_crossentropy(yy, p),
                                   keras.losses.sparse_categorical_crossentropy(yy, p),
                                   rtol=1e-5)
    z = rng.normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_allclose(
        losses.sparse_categorical_crossentropy(y, z, from_logits=True),
        keras.losses.sparse_categorical_crossentropy(y, z, from_logits=True), rtol=1e-5)


# ---- the written formulas in NumPy (float64) ----------------------------------------------------
def _np_formulas():
    def hinge_t(t):
        return 2 * t - 1 if np.all((t == 0) | (t == 1)) else t

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), EPS)

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    def bce(t, q):
        q = np.clip(q, EPS, 1 - EPS)
        return -(t * np.log(q) + (1 - t) * np.log(1 - q))

    return {
        "mean_squared_error": lambda t, p: np.mean((p - t) ** 2, -1),
        "mean_absolute_error": lambda t, p: np.mean(np.abs(p - t), -1),
        "mean_absolute_percentage_error":
            lambda t, p: 100 * np.mean(np.abs(t - p) / np.maximum(np.abs(t), EPS), -1),
        "mean_squared_logarithmic_error": lambda t, p: np.mean(
            (np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1)) ** 2, -1),
        "huber": lambda t, p: np.mean(np.where(np.abs(p - t) <= 1, 0.5 * (p - t) ** 2,
                                               np.abs(p - t) - 0.5), -1),
        "log_cosh": lambda t, p: np.mean(np.log(np.cosh(p - t)), -1),
        "kl_divergence": lambda t, p: np.sum(np.clip(t, EPS, 1) * np.log(
            np.clip(t, EPS, 1) / np.clip(p, EPS, 1)), -1),
        "poisson": lambda t, p: np.mean(p - t * np.log(p + EPS), -1),
        "hinge": lambda t, p: np.mean(np.maximum(1 - hinge_t(t) * p, 0), -1),
        "squared_hinge": lambda t, p: np.mean(np.maximum(1 - hinge_t(t) * p, 0) ** 2, -1),
        "categorical_hinge": lambda t, p: np.maximum(
            np.max((1 - t) * p, -1) - np.sum(t * p, -1) + 1, 0),
        "cosine_similarity": lambda t, p: -np.sum(unit(t) * unit(p), -1),
        "binary_crossentropy": lambda t, p: np.mean(bce(t, p), -1),
        "categorical_crossentropy": lambda t, p: -np.sum(
            t * np.log(np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)), -1),
        "binary_focal_crossentropy": lambda t, p: np.mean(
            (1 - (t * p + (1 - t) * (1 - p))) ** 2 * bce(t, p), -1),
        "categorical_focal_crossentropy": lambda t, p: np.sum(
            -0.25 * (1 - np.clip(p, EPS, 1 - EPS)) ** 2 * t * np.log(np.clip(p, EPS, 1 - EPS)),
            -1),
        "binary_crossentropy_logits": lambda t, z: np.mean(bce(t, sigmoid(z)), -1),
    }


@pytest.mark.parametrize("name,kind", [(f[0], f[1]) for f in FUNCTIONS])
def test_functions_match_written_formula(rng, name, kind):
    t, p = _data(kind, rng)
    want = _np_formulas()[name](t.astype(np.float64), p.astype(np.float64))
    # Default arguments (the formulas above are written for them).
    np.testing.assert_allclose(getattr(losses, name)(t, p), want, rtol=1e-5, atol=1e-6)


def test_label_smoothing_formula(rng):
    t, p = _data("onehot", rng)
    ls = 0.2
    ts = t * (1 - ls) + ls / t.shape[-1]
    want = -np.sum(ts * np.log(np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)), -1)
    np.testing.assert_allclose(losses.categorical_crossentropy(t, p, label_smoothing=ls), want,
                               rtol=1e-5)
    tb, pb = _data("binary", rng)
    tbs = tb * (1 - ls) + 0.5 * ls
    pc = np.clip(pb, EPS, 1 - EPS)
    want = np.mean(-(tbs * np.log(pc) + (1 - tbs) * np.log(1 - pc)), -1)
    np.testing.assert_allclose(losses.binary_crossentropy(tb, pb, label_smoothing=ls), want,
                               rtol=1e-5)


# ---- analytic gradients vs central differences (float64) ----------------------------------------
GRAD_CASES = [c for c in CASES if c[0] not in (losses.CategoricalCrossentropy,
                                               losses.BinaryCrossentropy)]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[IDS[CASES.index(c)] for c in GRAD_CASES])
def test_gradient_finite_differences(rng, case):
    cls, _, kwargs, kind = case
    t, p = _data(kind, rng, (4, 5))
    loss = cls(**kwargs)
    logits = loss.from_logits
    p = p.astype(np.float64)
    _, d = loss._fwd(p, t, True, logits)
    h = 1e-6
    num = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        up, dn = p.copy(), p.copy()
        up[i] += h
        dn[i] -= h
        num[i] = (loss._fwd(up, t, False, logits)[0].sum()
                  - loss._fwd(dn, t, False, logits)[0].sum()) / (2 * h)
    np.testing.assert_allclose(d, num, rtol=1e-5, atol=1e-7)


# ---- config, registry, training ----------------------------------------------------------------
def test_get_serialize_roundtrip_and_bad_arguments():
    for name in ("mae", "mape", "msle", "huber", "log_cosh", "kld", "poisson", "hinge",
                 "squared_hinge", "categorical_hinge", "cosine_similarity",
                 "binary_focal_crossentropy", "categorical_focal_crossentropy", "Huber"):
        loss = losses.get(name)
        back = losses.deserialize(losses.serialize(loss))
        assert type(back) is type(loss) and back.get_config() == loss.get_config()
    cfg = losses.serialize(losses.CategoricalCrossentropy(label_smoothing=0.1, reduction="sum"))
    assert cfg["config"]["label_smoothing"] == 0.1 and cfg["config"]["reduction"] == "sum"
    # Files written before reduction existed keep loading.
    assert isinstance(losses.deserialize({"class_name": "MeanSquaredError",
                                          "config": {"from_logits": False}}),
                      losses.MeanSquaredError)
    with pytest.raises(ValueError):
        losses.MeanSquaredError(reduction="avg")
    with pytest.raises(ValueError):
        losses.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError):
        losses.deserialize({"class_name": "Huber", "config": {"bogus": 1}})


@pytest.mark.parametrize("loss", ["huber", "log_cosh", "mape", "msle", "poisson",
                                  losses.BinaryFocalCrossentropy(gamma=2.0)])
def test_new_losses_train_a_model(rng, loss):
    utils.set_random_seed(1)
    x = rng.uniform(0.1, 1, (64, 3)).astype(np.float32)
    y = (x.sum(1, keepdims=True) / 3).astype(np.float32)
    act = "sigmoid"
    model = models.Sequential([layers.Dense(8, activation="tanh", input_shape=(3,)),
                               layers.Dense(1, activation=act)])
    model.compile(optimizer="adam", loss=loss)
    if isinstance(loss, losses.BinaryFocalCrossentropy):
        y = (y > 0.55).astype(np.float32)
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < first
