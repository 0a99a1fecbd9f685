"""Every metric against Keras 3 (several update_state calls, sample weights, reset) and against its
written formula in NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from nncore import layers, metrics, models, utils
from conftest import require


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    return require("keras")


def _batches(kind, rng, n_batches=3, n=11, c=4):
    out = []
    for _ in range(n_batches):
        if kind == "binary":
            p = rng.uniform(0, 1, (n, c)).astype(np.float32)
            t = rng.integers(0, 2, (n, c)).astype(np.float32)
        elif kind == "binary1":
            p = rng.uniform(0, 1, (n, 1)).astype(np.float32)
            t = (rng.uniform(0, 1, (n, 1)) < 0.5 * p + 0.25).astype(np.float32)
        elif kind == "onehot":
            p = rng.uniform(0.01, 1, (n, c)).astype(np.float32)
            p /= p.sum(1, keepdims=True)
            t = np.eye(c, dtype=np.float32)[rng.integers(0, c, n)]
        elif kind == "sparse":
            p = rng.uniform(0.01, 1, (n, c)).astype(np.float32)
            p /= p.sum(1, keepdims=True)
            t = rng.integers(0, c, n)
        elif kind == "positive":
            p = rng.uniform(0.1, 3, (n, c)).astype(np.float32)
            t = rng.uniform(0.1, 3, (n, c)).astype(np.float32)
        else:
            p = rng.normal(size=(n, c)).astype(np.float32)
            t = (p + rng.normal(0, 0.7, (n, c))).astype(np.float32)
        w = rng.uniform(0.1, 2, n).astype(np.float32)
        out.append((t, p, w))
    return out


CASES = [
    ("BinaryAccuracy", {}, "binary"), ("BinaryAccuracy", {"threshold": 0.3}, "binary"),
    ("CategoricalAccuracy", {}, "onehot"), ("SparseCategoricalAccuracy", {}, "sparse"),
    ("TopKCategoricalAccuracy", {"k": 2}, "onehot"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "sparse"),
    ("SparseTopKCategoricalAccuracy", {}, "sparse"),
    ("MeanAbsoluteError", {}, "reg"), ("MeanSquaredError", {}, "reg"),
    ("RootMeanSquaredError", {}, "reg"), ("MeanAbsolutePercentageError", {}, "reg"),
    ("MeanSquaredLogarithmicError", {}, "positive"), ("R2Score", {}, "reg"),
    ("R2Score", {"class_aggregation": "variance_weighted_average"}, "reg"),
    ("R2Score", {"class_aggregation": None}, "reg"),
    ("R2Score", {"num_regressors": 2}, "reg"),
    ("CategoricalCrossentropy", {}, "onehot"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot"),
    ("SparseCategoricalCrossentropy", {}, "sparse"), ("BinaryCrossentropy", {}, "binary"),
    ("TruePositives", {}, "binary"), ("FalsePositives", {"thresholds": 0.3}, "binary"),
    ("TrueNegatives", {"thresholds": [0.2, 0.5, 0.8]}, "binary"),
    ("FalseNegatives", {}, "binary"),
    ("Precision", {}, "binary"), ("Precision", {"thresholds": [0.1, 0.6]}, "binary"),
    ("Precision", {"top_k": 2}, "binary"), ("Precision", {"class_id": 1}, "binary"),
    ("Precision", {"top_k": 1, "class_id": 2}, "onehot"),
    ("Recall", {}, "binary"), ("Recall", {"thresholds": 0.7, "class_id": 3}, "binary"),
    ("Recall", {"top_k": 2}, "onehot"),
    ("AUC", {}, "binary1"), ("AUC", {"num_thresholds": 17}, "binary"),
    ("AUC", {"curve": "PR"}, "binary1"), ("AUC", {"curve": "PR", "num_thresholds": 9}, "binary"),
    ("AUC", {"summation_method": "minoring"}, "binary1"),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, "binary"),
    ("AUC", {"thresholds": [0.2, 0.4, 0.5, 0.9]}, "binary"),
    ("F1Score", {}, "onehot"), ("F1Score", {"average": "macro"}, "onehot"),
    ("F1Score", {"average": "micro", "threshold": 0.3}, "binary"),
    ("F1Score", {"average": "weighted", "threshold": 0.5}, "binary"),
    ("FBetaScore", {"beta": 2.0, "average": "macro", "threshold": 0.4}, "binary"),
]
IDS = [f"{n}-{i}" for i, (n, _, _) in enumerate(CASES)]


@pytest.mark.parametrize("name,kw,kind", CASES, ids=IDS)
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_keras(keras, rng, name, kw, kind, weighted):
    ours = getattr(metrics, name)(**kw)
    theirs = getattr(keras.metrics, name)(**kw)
    data = _batches(kind, rng)
    for t, p, w in data:
        ours.update_state(t, p, sample_weight=w if weighted else None)
        theirs.update_state(t, p, sample_weight=w if weighted else None)
        np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), rtol=2e-5,
                                   atol=1e-6)
    ours.reset_state()
    theirs.reset_state()
    t, p, _ = data[0]
    ours.update_state(t, p)
    theirs.update_state(t, p)
    np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), rtol=2e-5, atol=1e-6)


def test_mean_and_sum_match_keras(keras, rng):
    for cls in ("Mean", "Sum"):
        ours, theirs = getattr(metrics, cls)(), getattr(keras.metrics, cls)()
        for _ in range(3):
            v = rng.normal(size=5).astype(np.float32)
            w = rng.uniform(0, 2, 5).astype(np.float32)
            ours.update_state(v, sample_weight=w)
            theirs.update_state(v, sample_weight=w)
        assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-5)


# ---- the written formulas in NumPy --------------------------------------------------------------
def test_formulas_in_numpy(rng):
    (t, p, w), = _batches("binary", rng, 1, n=40)
    pred = p > 0.5
    tp = np.sum(pred & (t > 0))
    fp = np.sum(pred & (t == 0))
    fn = np.sum(~pred & (t > 0))
    tn = np.sum(~pred & (t == 0))
    for cls, want in ((metrics.TruePositives, tp), (metrics.FalsePositives, fp),
                      (metrics.TrueNegatives, tn), (metrics.FalseNegatives, fn),
                      (metrics.Precision, tp / (tp + fp)), (metrics.Recall, tp / (tp + fn))):
        m = cls()
        m.update_state(t, p)
        assert m.result() == pytest.approx(want)
    # Weighted precision: sums of weights instead of counts.
    m = metrics.Precision()
    m.update_state(t, p, sample_weight=w)
    ww = np.broadcast_to(w[:, None], t.shape)
    assert m.result() == pytest.approx(ww[pred & (t > 0)].sum() / ww[pred].sum())
    # ROC AUC with many thresholds approaches the rank statistic (Mann-Whitney U).
    (t1, p1, _), = _batches("binary1", rng, 1, n=300)
    auc = metrics.AUC(num_thresholds=2000)
    auc.update_state(t1, p1)
    pos, neg = p1[t1 > 0], p1[t1 == 0]
    u = np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])
    assert auc.result() == pytest.approx(u, abs=2e-3)
    # Regression metrics.
    (t, p, w), = _batches("reg", rng, 1)
    for cls, want in ((metrics.MeanAbsoluteError, np.mean(np.abs(p - t))),
                      (metrics.MeanSquaredError, np.mean((p - t) ** 2)),
                      (metrics.RootMeanSquaredError, np.sqrt(np.mean((p - t) ** 2))),
                      (metrics.MeanAbsolutePercentageError,
                       100 * np.mean(np.abs(t - p) / np.maximum(np.abs(t), 1e-7))),
                      (metrics.R2Score, np.mean(1 - ((t - p) ** 2).sum(0)
                                                / ((t - t.mean(0)) ** 2).sum(0)))):
        m = cls()
        m.update_state(t, p)
        assert m.result() == pytest.approx(float(want), rel=1e-5)
    # Top-k: the label is in the k highest scores.
    (t, p, _), = _batches("sparse", rng, 1, n=30)
    m = metrics.SparseTopKCategoricalAccuracy(k=2)
    m.update_state(t, p)
    top2 = np.argsort(-p, 1)[:, :2]
    assert m.result() == pytest.approx(np.mean([t[i] in top2[i] for i in range(30)]))
    # F1 per class.
    (t, p, _), = _batches("binary", rng, 1, n=50)
    m = metrics.F1Score(threshold=0.5)
    m.update_state(t, p)
    pr = (p > 0.5).astype(np.float64)
    tp, fp, fn = (pr * t).sum(0), (pr * (1 - t)).sum(0), ((1 - pr) * t).sum(0)
    np.testing.assert_allclose(m.result(), 2 * tp / (2 * tp + fp + fn), rtol=1e-5)


def test_existing_numbers_kept_and_get(rng):
    t = rng.integers(0, 3, 10)
    p = rng.uniform(size=(10, 3)).astype(np.float32)
    m = metrics.get("accuracy", t.shape, p.shape)
    assert isinstance(m, metrics.SparseCategoricalAccuracy) and m.name == "accuracy"
    m.update_state(t, p)
    assert m.result() == np.mean(p.argmax(1) == t)
    for name, cls in (("precision", metrics.Precision), ("recall", metrics.Recall),
                      ("auc", metrics.AUC), ("mape", metrics.MeanAbsolutePercentageError),
                      ("rmse", metrics.RootMeanSquaredError),
                      ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy),
                      ("f1_score", metrics.F1Score), ("r2_score", metrics.R2Score),
                      ("categorical_crossentropy", metrics.CategoricalCrossentropy),
                      ("true_positives", metrics.TruePositives)):
        got = metrics.get(name, (1, 1), (1, 2))
        assert isinstance(got, cls) and got.name == name
    with pytest.raises(ValueError):
        metrics.get("f1", (1,), (1, 2))
    for m in (metrics.Precision(thresholds=[0.2, 0.4], class_id=1), metrics.AUC(curve="PR"),
              metrics.F1Score(average="macro"), metrics.TopKCategoricalAccuracy(k=3),
              metrics.CategoricalCrossentropy(label_smoothing=0.1)):
        back = metrics.deserialize(metrics.serialize(m))
        assert type(back) is type(m) and back.get_config() == m.get_config()
    with pytest.raises(ValueError):
        metrics.Precision(thresholds=1.5)
    with pytest.raises(ValueError):
        metrics.AUC(curve="XY")


def test_metrics_in_fit_logs(rng):
    utils.set_random_seed(0)
    x = rng.normal(size=(80, 3)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    model = models.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(3,))])
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=["accuracy", metrics.Precision(), metrics.Recall(), metrics.AUC(),
                           "mse"])
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_data=(x, y))
    for key in ("precision", "recall", "auc", "val_auc", "val_precision", "mse"):
        assert len(hist.history[key]) == 3 and 0.0 <= hist.history[key][-1] <= 1.0
    # evaluate's AUC equals the metric run directly over the predictions.
    auc = metrics.AUC()
    auc.update_state(y, model.predict(x, verbose=0))
    assert model.evaluate(x, y, verbose=0)[4] == pytest.approx(auc.result(), rel=1e-6)
