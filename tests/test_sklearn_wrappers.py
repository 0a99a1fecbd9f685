"""nncore.wrappers: scikit-learn's estimator checks, cross_val_score / KFold / StratifiedKFold /
GridSearchCV / Pipeline, a fresh model per fold, random_state, and the message without sklearn."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import nncore as keras
import numpy as np
import pytest
from conftest import require
from nncore import layers



@pytest.fixture(scope="module")
def sk():
    return require("sklearn")


def dynamic_model(X, y, loss, hidden=(10,), optimizer="adam"):
    """Keras's example builder: shapes from the data, softmax for a classifier."""
    inp = keras.Input((X.shape[1],))
    h = inp
    for units in hidden:
        h = layers.Dense(units, activation="relu")(h)
    n_out = y.shape[1] if y.ndim > 1 else 1
    act = "softmax" if loss == "categorical_crossentropy" else None
    model = keras.Model(inp, layers.Dense(n_out, activation=act)(h))
    model.compile(loss=loss, optimizer=optimizer)
    return model


# Checks that fail for a reason of the method, not of the wrapper; Keras's wrappers list the same.
EXPECTED_FAILED = {
    "SKLearnClassifier": {
        "check_classifiers_one_label_sample_weights":
            "a zero sample weight removes a class's samples from the loss, but a few epochs of "
            "gradient descent do not make the model predict only the remaining class",
    },
    "SKLearnRegressor": {},
    "SKLearnTransformer": {},
}
# Skips scikit-learn itself makes for a missing optional package or setting.
ALLOWED_SKIPS = ("SCIPY_ARRAY_API is not set", "pandas is not installed")


def _estimators():
    from nncore.wrappers import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer

    return [
        SKLearnClassifier(dynamic_model, model_kwargs={"loss": "categorical_crossentropy",
                                                       "hidden": (20, 20)},
                          fit_kwargs={"epochs": 5}),
        SKLearnRegressor(dynamic_model, model_kwargs={"loss": "mse"}),
        SKLearnTransformer(dynamic_model, model_kwargs={"loss": "mse"}),
    ]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_sklearn_estimator_checks(sk, which):
    from sklearn.utils.estimator_checks import check_estimator

    est = _estimators()[which]
    name = type(est).__name__
    results = check_estimator(est, on_fail=None, on_skip=None)
    assert len(results) > 40
    failed = {r["check_name"]: r["exception"] for r in results if r["status"] == "failed"}
    unexpected = {k: repr(v)[:300] for k, v in failed.items() if k not in EXPECTED_FAILED[name]}
    assert not unexpected, unexpected
    for r in results:
        if r["status"] == "skipped":
            assert any(s in str(r["exception"]) for s in ALLOWED_SKIPS), (r["check_name"],
                                                                          r["exception"])
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    # the checks that need repeatable fits run and pass (random_state seeds every fit)
    assert {"check_fit_idempotent", "check_estimators_pickle", "check_estimators_unfitted",
            "check_n_features_in", "check_fit2d_1sample"} <= passed


def _blobs(sk, n=120, seed=0):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, n_redundant=0,
                               n_classes=3, n_clusters_per_class=1, class_sep=2.0,
                               random_state=seed)
    return X.astype(np.float32), y


def test_cross_val_score_kfold_and_stratified(sk):
    from nncore.wrappers import SKLearnClassifier
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    X, y = _blobs(sk)
    est = SKLearnClassifier(dynamic_model, model_kwargs={"loss": "categorical_crossentropy",
                                                         "hidden": (16,)},
                            fit_kwargs={"epochs": 30, "batch_size": 16}, random_state=0)
    for cv in (KFold(4, shuffle=True, random_state=0), StratifiedKFold(4)):
        scores = cross_val_score(est, X, y, cv=cv)
        assert scores.shape == (4,)
        assert scores.mean() > 0.8, scores  # chance is 1/3


class _InitialWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_begin(self, logs=None):
        self.seen.append((self.model, [w.copy() for w in self.model.get_weights()]))


@pytest.mark.parametrize("given", ["model", "builder"])
def test_each_fold_starts_from_fresh_weights(sk, given):
    from nncore.wrappers import SKLearnClassifier
    from sklearn.model_selection import cross_validate

    X, y = _blobs(sk, n=90)
    rec = _InitialWeights()
    if given == "model":
        keras.utils.set_random_seed(1)
        model = dynamic_model(X, np.eye(3)[y], "categorical_crossentropy", (8,))
        before = [w.copy() for w in model.get_weights()]
        est = SKLearnClassifier(model, fit_kwargs={"epochs": 5, "callbacks": [rec]})
    else:
        est = SKLearnClassifier(dynamic_model, model_kwargs={
            "loss": "categorical_crossentropy", "hidden": (8,)},
            fit_kwargs={"epochs": 5, "callbacks": [rec]})
    out = cross_validate(est, X, y, cv=3, return_estimator=True)
    assert len(rec.seen) == 3
    fitted = [e.model_ for e in out["estimator"]]
    assert len({id(m) for m in fitted}) == 3
    for k, (m, init) in enumerate(rec.seen):
        assert m is fitted[k]
        kernel0, bias0 = init[0], init[1]
        np.testing.assert_array_equal(bias0, 0)  # freshly initialised, not trained
        for j in range(k):  # differs from every earlier fold's start and end
            assert not np.array_equal(kernel0, rec.seen[j][1][0])
            assert not np.array_equal(kernel0, fitted[j].get_weights()[0])
        assert not np.array_equal(fitted[k].get_weights()[1], 0)  # and it trained
    if given == "model":
        for a, b in zip(before, model.get_weights()):
            np.testing.assert_array_equal(a, b)  # the wrapped model is never trained


def test_grid_search_and_pipeline(sk):
    from nncore.wrappers import SKLearnClassifier
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _blobs(sk)
    X = X * 10 + 3  # badly scaled, so the scaler matters
    est = SKLearnClassifier(dynamic_model, model_kwargs={"loss": "categorical_crossentropy"},
                            fit_kwargs={"batch_size": 16}, random_state=0)
    pipe = make_pipeline(StandardScaler(), est)
    grid = GridSearchCV(pipe, {"sklearnclassifier__fit_kwargs": [
        {"epochs": 1, "batch_size": 16}, {"epochs": 40, "batch_size": 16}],
        "sklearnclassifier__model_kwargs": [
        {"loss": "categorical_crossentropy", "hidden": (4,)},
        {"loss": "categorical_crossentropy", "hidden": (16,)}]}, cv=3)
    grid.fit(X, y)
    assert grid.best_params_["sklearnclassifier__fit_kwargs"]["epochs"] == 40
    assert grid.best_score_ > 0.8
    assert grid.cv_results_["mean_test_score"].shape == (4,)
    clf = grid.best_estimator_[-1]
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    proba = grid.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert grid.score(X, y) > 0.8


def test_random_state_repeats_fits_and_restores_the_generator(sk):
    from nncore.utils import get_rng
    from nncore.wrappers import SKLearnRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    kw = {"model_kwargs": {"loss": "mse"}, "fit_kwargs": {"epochs": 3, "batch_size": 8}}
    gen = get_rng()
    p1 = SKLearnRegressor(dynamic_model, random_state=3, **kw).fit(X, y).predict(X)
    p2 = SKLearnRegressor(dynamic_model, random_state=3, **kw).fit(X, y).predict(X)
    p3 = SKLearnRegressor(dynamic_model, random_state=4, **kw).fit(X, y).predict(X)
    assert get_rng() is gen
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(p1, p3)
    assert p1.shape == (64,) and p1.dtype == np.float64


def test_regressor_and_transformer_learn(sk):
    from nncore.wrappers import SKLearnRegressor, SKLearnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3
    reg = SKLearnRegressor(dynamic_model, model_kwargs={"loss": "mse", "hidden": (),
                                                         "optimizer": "sgd"},
                           fit_kwargs={"epochs": 60, "batch_size": 16}, random_state=0)
    assert reg.fit(X, y).score(X, y) > 0.95
    y2 = np.stack([y, -y], 1)
    assert reg.fit(X, y2).predict(X).shape == (200, 2)
    # a transformer trained to regress a 2-D code, feeding a classifier
    labels = (y > 0.3).astype(int)
    trs = SKLearnTransformer(dynamic_model, model_kwargs={"loss": "mse", "hidden": (8,)},
                             fit_kwargs={"epochs": 20}, random_state=0)
    code = trs.fit(X, y2).transform(X)
    assert code.shape == (200, 2)
    pipe = make_pipeline(SKLearnTransformer(dynamic_model, model_kwargs={
        "loss": "mse", "optimizer": "sgd"}, fit_kwargs={"epochs": 40, "batch_size": 16},
        random_state=0),
                         LogisticRegression())
    assert pipe.fit(X, labels).score(X, labels) > 0.8


def test_classifier_labels_single_unit_and_images(sk):
    from nncore.wrappers import SKLearnClassifier
    from sklearn.model_selection import cross_val_score

    X, y = _blobs(sk)
    two = np.where(y == 0, "cat", "dog")

    def sigmoid_model(X, y):
        m = keras.Sequential([keras.Input((X.shape[1],)), layers.Dense(8, activation="relu"),
                              layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer="adam", loss="binary_crossentropy")
        return m

    clf = SKLearnClassifier(sigmoid_model, fit_kwargs={"epochs": 40, "batch_size": 8},
                            random_state=0)
    clf.fit(X, two)
    np.testing.assert_array_equal(clf.classes_, ["cat", "dog"])
    assert set(clf.predict(X)) <= {"cat", "dog"} and clf.score(X, two) > 0.8
    assert clf.predict_proba(X).shape == (len(X), 2)

    # a CNN on (N, H, W, C) images: scikit-learn's splitters take n-d X
    rng = np.random.default_rng(2)
    imgs = rng.normal(size=(60, 6, 6, 1)).astype(np.float32)
    lab = (imgs[:, :3].mean(axis=(1, 2, 3)) > imgs[:, 3:].mean(axis=(1, 2, 3))).astype(int)
    imgs[:, :3] += np.where(lab, 1.0, -1.0)[:, None, None, None]

    def cnn(X, y):
        m = keras.Sequential([keras.Input(X.shape[1:]), layers.Conv2D(4, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(y.shape[1], activation="softmax")])
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return m

    scores = cross_val_score(SKLearnClassifier(cnn, fit_kwargs={"epochs": 20, "batch_size": 8},
                                               random_state=0), imgs, lab, cv=3)
    assert scores.mean() > 0.8, scores


def test_wrapper_errors(sk):
    from nncore.wrappers import SKLearnClassifier, SKLearnRegressor

    X, y = _blobs(sk, n=30)
    raw = keras.Sequential([keras.Input((6,)), layers.Dense(3, activation="softmax")])
    with pytest.raises(RuntimeError, match="must be compiled"):
        SKLearnClassifier(raw).fit(X, y)
    with pytest.raises(TypeError, match="must return an nncore Model"):
        SKLearnRegressor(lambda X, y: "nope").fit(X, y)
    raw.compile(optimizer="adam", loss="categorical_crossentropy")
    bad = keras.Sequential([keras.Input((6,)), layers.Dense(5, activation="softmax")])
    bad.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="5 output unit.*3 classes"):
        SKLearnClassifier(bad).fit(X, y)
    with pytest.raises(ValueError, match="requires y to be passed"):
        SKLearnClassifier(raw).fit(X, None)
    with pytest.raises(ValueError, match="only binary and multiclass"):
        SKLearnClassifier(raw).fit(X, X[:, 0])


def test_without_sklearn_the_message_names_the_extra():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import nncore, nncore.wrappers\n"
            "from nncore.wrappers import SKLearnClassifier\n"
            "try:\n"
            "    SKLearnClassifier(model=lambda X, y: None)\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    # the nncore under test (installed in CI, the dev tree otherwise), not the source folder
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(keras.__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'pip install "nncore[sklearn]"' in out.stdout and "SKLearnClassifier" in out.stdout
