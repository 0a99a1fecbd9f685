"""ReduceLROnPlateau, CSVLogger, LambdaCallback, BackupAndRestore and TensorBoard: against Keras 3's
callbacks on the same log sequences, and inside fit."""

from __future__ import annotations

import csv
import sys
import warnings

import numpy as np
import pytest

from nncore import callbacks as cbx
from nncore import layers, models, optimizers, utils
from conftest import require


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    return require("keras")


class _Stub:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.metrics = []


def _model(seed=0, lr=0.05):
    utils.set_random_seed(seed)
    m = models.Sequential([layers.Dense(8, activation="relu", input_shape=(3,)),
                           layers.Dense(1)])
    m.compile(optimizer=optimizers.Adam(lr), loss="mse")
    return m


def _data(rng, n=48):
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-1.0], [0.5]], np.float32)).astype(np.float32)


@pytest.mark.parametrize("kw", [{"patience": 2}, {"patience": 1, "cooldown": 2, "factor": 0.5},
                                {"patience": 0, "min_lr": 0.004, "min_delta": 0.05},
                                {"monitor": "val_accuracy", "patience": 1, "mode": "max"}])
def test_reduce_lr_on_plateau_matches_keras(keras, kw):
    rng = np.random.default_rng(3)
    seq = list(np.cumsum(rng.normal(0, 1, 30)) * 0.1 + 5)
    monitor = kw.get("monitor", "val_loss")
    ours_opt, their_opt = optimizers.SGD(0.1), keras.optimizers.SGD(0.1)
    ours, theirs = cbx.ReduceLROnPlateau(**kw), keras.callbacks.ReduceLROnPlateau(**kw)
    ours.set_model(_Stub(ours_opt))
    theirs.set_model(_Stub(their_opt))
    ours.on_train_begin({})
    theirs.on_train_begin({})
    for epoch, v in enumerate(seq):
        ol, tl = {monitor: float(v)}, {monitor: float(v)}
        ours.on_epoch_end(epoch, ol)
        with warnings.catch_warnings():  # Keras converts its variable with np.array(copy=False)
            warnings.simplefilter("ignore", DeprecationWarning)
            theirs.on_epoch_end(epoch, tl)
        assert ol["learning_rate"] == pytest.approx(tl["learning_rate"], rel=1e-6)
        assert ours_opt.learning_rate == pytest.approx(float(their_opt.learning_rate), rel=1e-6)
    assert ours_opt.learning_rate < 0.1  # it did reduce


def test_reduce_lr_on_plateau_in_fit(rng):
    x, y = _data(rng)
    model = _model()
    cb = cbx.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=1e9)
    hist = model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[cb])
    # As Keras, the logged rate is the one the epoch ran with (before this epoch's reduction).
    assert hist.history["learning_rate"] == pytest.approx([0.05, 0.05, 0.025, 0.0125])
    assert model.optimizer.learning_rate == pytest.approx(0.00625)
    with pytest.raises(ValueError):
        cbx.ReduceLROnPlateau(factor=1.0)


def test_csv_logger(tmp_path, rng):
    x, y = _data(rng)
    path = tmp_path / "log.csv"
    model = _model()
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_data=(x, y),
                     callbacks=[cbx.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert list(rows[0]) == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    for key in ("loss", "mae", "val_loss", "val_mae"):
        np.testing.assert_allclose([float(r[key]) for r in rows], hist.history[key], rtol=1e-6)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_data=(x, y),
              callbacks=[cbx.CSVLogger(path, append=True, separator=",")])
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 3 + 2 and lines.count(lines[0]) == 1  # one header


def test_csv_logger_matches_keras_on_same_logs(keras, tmp_path):
    logs = [{"loss": 0.5, "acc": 0.25}, {"loss": 0.25, "acc": 0.5}]
    for i, (mod, name) in enumerate(((cbx, "ours.csv"), (keras.callbacks, "theirs.csv"))):
        cb = mod.CSVLogger(str(tmp_path / name))
        cb.on_train_begin({})
        for e, lg in enumerate(logs):
            cb.on_epoch_end(e, dict(lg))
        cb.on_train_end({})
    assert (tmp_path / "ours.csv").read_text() == (tmp_path / "theirs.csv").read_text()


def test_lambda_callback(rng):
    x, y = _data(rng)
    seen = {"tb": 0, "te": 0, "eb": [], "ee": [], "bb": 0, "be": 0}
    cb = cbx.LambdaCallback(
        on_train_begin=lambda logs: seen.__setitem__("tb", seen["tb"] + 1),
        on_train_end=lambda logs: seen.__setitem__("te", seen["te"] + 1),
        on_epoch_begin=lambda e, logs: seen["eb"].append(e),
        on_epoch_end=lambda e, logs: seen["ee"].append((e, round(logs["loss"], 9))),
        on_train_batch_begin=lambda b, logs: seen.__setitem__("bb", seen["bb"] + 1),
        on_train_batch_end=lambda b, logs: seen.__setitem__("be", seen["be"] + 1))
    hist = _model().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    assert seen["tb"] == seen["te"] == 1 and seen["eb"] == [0, 1]
    assert seen["bb"] == seen["be"] == 6
    assert [v for _, v in seen["ee"]] == [round(v, 9) for v in hist.history["loss"]]
    with pytest.raises(TypeError):
        cbx.LambdaCallback(on_epoch_end=3)


class _Interrupt(Exception):
    pass


def _protocol_fit(model, x, y, epochs, callbacks, batch_size=16):
    """A minimal trainer following Keras 3's protocol, including model._initial_epoch read after
    on_train_begin (the current Sequential.fit does not read it yet)."""
    model._initial_epoch = None
    for c in callbacks:
        c.set_model(model)
        c.set_params({"epochs": epochs, "steps": -(-len(x) // batch_size), "verbose": 0})
    for c in callbacks:
        c.on_train_begin({})
    start = model._initial_epoch or 0
    for epoch in range(start, epochs):
        for c in callbacks:
            c.on_epoch_begin(epoch, {})
        order = utils.get_rng().permutation(len(x))
        for b, lo in enumerate(range(0, len(x), batch_size)):
            idx = order[lo:lo + batch_size]
            loss = model.train_on_batch(x[idx], y[idx])
            for c in callbacks:
                c.on_train_batch_end(b, {"loss": loss})
        for c in callbacks:
            c.on_epoch_end(epoch, {"loss": loss})
    for c in callbacks:
        c.on_train_end({})


def test_backup_and_restore_resumes_exactly(tmp_path, rng):
    x, y = _data(rng)
    straight = _model(seed=5)
    _protocol_fit(straight, x, y, 6, [])

    class StopAt(cbx.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 3:
                raise _Interrupt

    backup = tmp_path / "backup"
    model = _model(seed=5)
    with pytest.raises(_Interrupt):
        _protocol_fit(model, x, y, 6, [cbx.BackupAndRestore(backup), StopAt()])
    assert (backup / "latest.npz").is_file()
    # A new process would rebuild the model from scratch: other weights, other RNG state.
    resumed = _model(seed=99)
    utils.set_random_seed(1234)
    epochs_run = []
    spy = cbx.LambdaCallback(on_epoch_begin=lambda e, logs: epochs_run.append(e))
    _protocol_fit(resumed, x, y, 6, [cbx.BackupAndRestore(backup), spy])
    assert epochs_run == [3, 4, 5]
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 18
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not backup.exists()  # delete_checkpoint after a completed fit


def test_backup_and_restore_rejects_a_corrupt_backup(tmp_path, rng):
    backup = tmp_path / "b"
    backup.mkdir()
    (backup / "latest.npz").write_bytes(b"PK\x03\x04 not a zip")
    model = _model()
    cb = cbx.BackupAndRestore(backup)
    cb.set_model(model)
    with pytest.raises(ValueError, match="unreadable backup"):
        cb.on_train_begin({})
    with pytest.raises(ValueError):
        cbx.BackupAndRestore(backup, save_freq=10)


def test_tensorboard_needs_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        cbx.TensorBoard("logs")


def test_tensorboard_writes_readable_events(tmp_path, rng):
    require("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = _data(rng)
    model = _model()
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_data=(x, y),
                     callbacks=[cbx.TensorBoard(tmp_path, update_freq=2)])
    train = EventAccumulator(str(tmp_path / "train"))
    train.Reload()
    val = EventAccumulator(str(tmp_path / "validation"))
    val.Reload()
    assert [e.step for e in train.Scalars("epoch_loss")] == [0, 1, 2]
    np.testing.assert_allclose([e.value for e in train.Scalars("epoch_loss")],
                               hist.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in val.Scalars("epoch_mae")],
                               hist.history["val_mae"], rtol=1e-6)
    assert len(train.Scalars("batch_loss")) == 9 // 2
