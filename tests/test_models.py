"""Sequential: the Keras MNIST program, fit/evaluate/predict, callbacks, progress output,
reproducibility, thread safety, the errors users hit daily, and Keras parity when TF is present."""

from __future__ import annotations

import gzip
import io
import math
import os
import threading

import numpy as np
import pytest
from conftest import platform_skipif, require

import nncore
from nncore import callbacks, layers, models, optimizers, utils


def read_idx(path):
    """Tiny IDX reader (MNIST's format): magic, dims (big-endian int32), uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def keras_cnn():
    model = models.Sequential()
    model.add(layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.Flatten())
    model.add(layers.Dense(64, activation="relu"))
    model.add(layers.Dense(10, activation="softmax"))
    return model


def test_keras_mnist_program_on_subset(mnist_dir, capsys):
    train_images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")[:3000]
    train_labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")[:3000]
    test_images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[:1000]
    test_labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")[:1000]
    train_images = train_images.reshape((3000, 28, 28, 1)).astype("float32") / 255
    test_images = test_images.reshape((1000, 28, 28, 1)).astype("float32") / 255
    utils.set_random_seed(0)
    # --- the program, import line aside ---
    model = keras_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_images, train_labels, epochs=2)
    test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=2)
    # ---
    assert test_acc > 0.90 and test_loss < 0.35
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "94/94" in out and "32/32 - " in out
    assert out.count("\n") < 10  # not a tty: no bar flood


def _blobs(rng, n=120, classes=3, dim=4):
    centers = rng.normal(size=(classes, dim)) * 3
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.normal(size=(n, dim))).astype(np.float32)
    return x, y


def test_tiny_model_overfits(rng):
    utils.set_random_seed(0)
    x = rng.normal(size=(16, 5)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    model = models.Sequential([layers.Dense(64, activation="tanh", input_shape=(5,)),
                               layers.Dense(4, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=150, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < 0.02
    assert hist.history["accuracy"][-1] == 1.0
    assert model.evaluate(x, y, verbose=0)[1] == 1.0


def test_regression_and_binary(rng):
    utils.set_random_seed(1)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    t = x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3
    reg = models.Sequential([layers.Dense(1, input_shape=(3,))])
    reg.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="mse", metrics=["mae"])
    reg.fit(x, t, epochs=60, verbose=0)
    loss, mae = reg.evaluate(x, t, verbose=0)
    assert loss < 1e-4 and mae < 1e-2
    yb = (x[:, 0] > 0).astype(np.float32)
    clf = models.Sequential([layers.Dense(8, activation="relu", input_shape=(3,)),
                             layers.Dense(1, activation="sigmoid")])
    clf.compile(optimizer=optimizers.Adam(0.03), loss="binary_crossentropy", metrics=["accuracy"])
    h = clf.fit(x, yb, epochs=60, verbose=0)
    assert h.history["accuracy"][-1] > 0.9
    assert clf.predict(x).shape == (64, 1)


def test_history_validation_and_evaluate_forms(rng):
    x, y = _blobs(rng)
    utils.set_random_seed(2)
    model = models.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    h = model.fit(x, y, epochs=3, verbose=0, validation_split=0.25)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert h.epoch == [0, 1, 2] and len(h.history["val_loss"]) == 3
    vl, va = model.evaluate(x[90:], y[90:], verbose=0)
    assert vl == pytest.approx(h.history["val_loss"][-1], rel=1e-6)
    h2 = model.fit(x, y, epochs=1, verbose=0, validation_data=(x[:10], y[:10]))
    assert "val_accuracy" in h2.history
    assert model.evaluate(x, y, verbose=0, return_dict=True).keys() == {"loss", "accuracy"}
    plain = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert isinstance(plain.evaluate(x, y, verbose=0), float)


def test_accuracy_flavour_follows_keras(rng):
    x, y = _blobs(rng, n=30)
    onehot = np.eye(3, dtype=np.float32)[y]
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    loss, acc = model.evaluate(x, onehot, verbose=0)
    pred = model.predict(x).argmax(1)
    assert acc == pytest.approx(np.mean(pred == y))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["acc"])
    assert model.evaluate(x, y, verbose=0)[1] == pytest.approx(np.mean(pred == y))


def test_accuracy_choice_matches_keras_get_metric(rng):
    """Keras 3 picks the accuracy flavour from the shapes only (compile_utils.get_metric)."""
    from nncore import metrics

    cases = [((8,), (8, 3), metrics.SparseCategoricalAccuracy),
             ((8, 1), (8, 3), metrics.SparseCategoricalAccuracy),
             ((8, 3), (8, 3), metrics.CategoricalAccuracy),
             ((8, 1), (8, 1), metrics.BinaryAccuracy),
             ((8,), (8, 1), metrics.BinaryAccuracy),
             ((8, 5), (8, 4, 1), metrics.BinaryAccuracy),
             ((8, 4), (8, 4, 6), metrics.SparseCategoricalAccuracy),
             ((8, 4, 6), (8, 4, 6), metrics.CategoricalAccuracy)]
    for yt, yp, cls in cases:
        m = metrics.get("accuracy", yt, yp)
        assert type(m) is cls and m.name == "accuracy", (yt, yp)
    assert metrics.get("acc", (8, 3), (8, 3)).name == "acc"
    # binary_crossentropy on a multi-label output: Keras reports categorical accuracy (argmax of
    # targets and outputs), not the per-element binary accuracy.
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (rng.random((40, 3)) < 0.5).astype(np.float32)
    model = models.Sequential([layers.Dense(3, activation="sigmoid", input_shape=(4,))])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    _, acc = model.evaluate(x, y, verbose=0)
    p = model.predict(x)
    assert acc == pytest.approx(np.mean(p.argmax(1) == y.argmax(1)))


def test_progress_output_modes(rng, capsys):
    x, y = _blobs(rng, n=64)
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "Epoch 1/2" and lines[1].startswith("2/2 - ") and "loss: " in lines[1]
    assert len(lines) == 4
    buf = io.StringIO()
    buf.isatty = lambda: True
    bar = utils.Progbar(10, verbose=1, stream=buf, interval=0.0)
    for i in range(1, 11):
        bar.update(i, {"loss": 1.0 / i})
    bar.update(10, {"loss": 0.1}, finalize=True)
    text = buf.getvalue()
    assert text.count("\r") >= 10 and text.endswith("\n") and "10/10" in text


def test_callbacks(rng, tmp_path):
    x, y = _blobs(rng)
    utils.set_random_seed(3)
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer=optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    es = callbacks.EarlyStopping(monitor="loss", patience=2)
    h = model.fit(x, y, epochs=20, verbose=0, callbacks=[es])
    assert len(h.epoch) == 3  # lr 0: never improves after the first epoch
    seen = []
    sched = callbacks.LearningRateScheduler(lambda e, lr: seen.append(lr) or 0.1 * (e + 1))
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}.npz"))
    model.compile(optimizer=optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched, ckpt])
    assert seen == [0.5, 0.1, 0.2] and model.optimizer.learning_rate == pytest.approx(0.3)
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.2, 0.3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-01.npz", "m-02.npz", "m-03.npz"]
    again = models.load_model(tmp_path / "m-03.npz")
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_early_stopping_restores_best_weights(rng):
    x, y = _blobs(rng)
    utils.set_random_seed(4)
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer=optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    snaps = []

    class Snap(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snaps.append((logs["val_loss"], self.model.get_weights()))

    # From epoch 2 on the lr explodes, so val_loss gets worse: restore the best epoch's weights.
    sched = callbacks.LearningRateScheduler(lambda e, lr: 0.05 if e < 2 else 50.0)
    es = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    model.fit(x, y, epochs=30, verbose=0, validation_split=0.2, callbacks=[sched, Snap(), es])
    best = min(snaps, key=lambda s: s[0])[1]
    for a, b in zip(model.get_weights(), best):
        np.testing.assert_array_equal(a, b)


def test_nan_guard_stops_training(rng, capsys):
    x, y = _blobs(rng)
    x[5, 0] = np.nan
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    h = model.fit(x, y, epochs=5, verbose=0, shuffle=False)
    assert len(h.epoch) == 1 and model.stop_training
    assert "invalid loss nan" in capsys.readouterr().err
    assert "batch 0" in model.stop_reason


def _train_weights(seed, nt):
    nncore.set_num_threads(nt)
    utils.set_random_seed(seed)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = models.Sequential([
        layers.Conv2D(4, 3, activation="relu", padding="same", input_shape=(8, 8, 2)),
        layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(0.3),
        layers.Dense(16, activation="relu"), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    return model.get_weights()


def test_set_random_seed_bitwise_reproducible_any_threads(threads):
    a = _train_weights(11, 1)
    b = _train_weights(11, 2)
    c = _train_weights(12, 2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_predict_thread_safe(rng):
    utils.set_random_seed(5)
    model = models.Sequential([layers.Conv2D(8, 3, activation="relu", input_shape=(12, 12, 3)),
                               layers.MaxPooling2D(), layers.Flatten(),
                               layers.Dense(5, activation="softmax")])
    x = rng.normal(size=(64, 12, 12, 3)).astype(np.float32)
    want = model.predict(x, batch_size=16)
    results = [None] * 6

    def work(i):
        for _ in range(5):
            results[i] = model.predict(x, batch_size=7 + i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_allclose(r, want, rtol=1e-6, atol=1e-7)


def _rss_bytes() -> int:
    """Current resident set size (all allocations: Python, numpy and C++ alike)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@platform_skipif(not os.path.exists("/proc/self/statm"), "needs /proc (Linux)")
def test_repeated_predict_does_not_grow_rss(rng):
    """tracemalloc cannot see C++ allocations (kernels, scratch), so watch RSS instead: after a
    warm-up (scratch buffers and the allocator's pools reach their size), many predict calls whose
    activations total ~1 MB per call must not leave resident memory behind."""
    import ctypes

    utils.set_random_seed(5)
    model = models.Sequential([layers.Conv2D(8, 3, activation="relu", input_shape=(12, 12, 3)),
                               layers.MaxPooling2D(), layers.Flatten(),
                               layers.Dense(5, activation="softmax")])
    x = rng.normal(size=(256, 12, 12, 3)).astype(np.float32)
    # The instrument sees memory malloc'ed outside Python (a leak tracemalloc would miss).
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = _rss_bytes()
    # 64 MiB: above glibc's largest dynamic mmap threshold (32 MiB), so the block is always
    # fresh pages, never resident memory an earlier test freed into the heap
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)
    assert _rss_bytes() - before > 48 << 20
    libc.free(block)
    for _ in range(20):
        model.predict(x, batch_size=64)
        model.predict(x[:37], batch_size=16)
    first = _rss_bytes()
    for _ in range(200):
        model.predict(x, batch_size=64)
        model.predict(x[:37], batch_size=16)
    grown = _rss_bytes() - first
    assert grown < 16 << 20, f"RSS grew by {grown / 2**20:.1f} MiB over 400 predict calls"


def test_daily_errors(rng):
    x, y = _blobs(rng, n=20)
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,),
                                            name="out")])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match=r"x has 20 samples but y has 19"):
        model.fit(x, y[:19], verbose=0)
    with pytest.raises(ValueError, match=r"expects input of shape \(None, 4\).*\(20, 5\)"):
        model.fit(np.zeros((20, 5)), y, verbose=0)
    with pytest.raises(ValueError, match=r"expects input of shape \(None, 4\).*\(3, 2, 2\)"):
        model.predict(np.zeros((3, 2, 2)))
    with pytest.raises(TypeError, match="dtype"):
        model.predict(np.array([["a"] * 4]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*\[\d, 7\]"):
        model.fit(x, np.where(y == 0, 7, y), verbose=0)
    with pytest.raises(ValueError, match="integer labels"):
        model.fit(x, y + 0.5, verbose=0)
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile(optimizer="adam", loss="mse", metrics=["f1"])
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile(optimizer="adam", loss="hinge2")
    mse = models.Sequential([layers.Dense(2, input_shape=(4,))])
    mse.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"targets of shape \(n, 2\).*\(20, 3\)"):
        mse.fit(x, np.zeros((20, 3)), verbose=0)
    with pytest.raises(ValueError, match="not been built"):
        models.Sequential([layers.Dense(2)]).summary()


def test_build_on_first_fit_and_summary(rng, capsys):
    x, y = _blobs(rng, n=20)
    model = models.Sequential()
    model.add(layers.Dense(5, activation="relu"))
    model.add(layers.Dense(3, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert model.input_shape == (None, 4)
    model.summary()
    out = capsys.readouterr().out
    assert 'Model: "' in out and "Output Shape" in out and "(None, 5)" in out
    assert "Total params: 43" in out and "Trainable params: 43" in out


def test_get_set_weights_and_trainable_flag(rng):
    utils.set_random_seed(6)
    a = models.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])
    b = models.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])
    b.set_weights(a.get_weights())
    x = rng.normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    with pytest.raises(ValueError, match=r"has shape \(4,\), got an array of shape \(5,\)"):
        b.set_weights([np.zeros((3, 4)), np.zeros(5), np.zeros((4, 2)), np.zeros(2)])
    frozen = a.layers[0].get_weights()
    a.layers[0].trainable = False
    a.compile(optimizer="sgd", loss="mse")
    a.fit(x, np.ones((5, 2)), epochs=2, verbose=0)
    for u, v in zip(frozen, a.layers[0].get_weights()):
        np.testing.assert_array_equal(u, v)
    assert a.layers[0].trainable_weights == [] and len(a.trainable_weights) == 2


def test_sequential_trainable_false_freezes_every_layer(rng, capsys):
    x = rng.normal(size=(5, 3)).astype(np.float32)
    y = np.ones((5, 2), np.float32)
    model = models.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)],
                              trainable=False)
    assert not model.trainable
    assert all(not lay.trainable for lay in model.layers)
    assert model.trainable_weights == [] and len(model.non_trainable_weights) == 4
    model.add(layers.Dense(2))  # added to a frozen model: frozen too
    assert not model.layers[-1].trainable and model.trainable_weights == []
    before = model.get_weights()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    model.train_on_batch(x, y)
    for u, v in zip(before, model.get_weights()):
        np.testing.assert_array_equal(u, v)
    model.summary()
    assert "Trainable params: 0" in capsys.readouterr().out
    # Unfreezing makes every layer trainable again, and training then moves the weights.
    model.trainable = True
    assert all(lay.trainable for lay in model.layers) and len(model.trainable_weights) == 6
    model.train_on_batch(x, y)
    assert any(not np.array_equal(u, v) for u, v in zip(before, model.get_weights()))
    # Setting the attribute later freezes as well.
    model.trainable = False
    assert all(not lay.trainable for lay in model.layers) and model.trainable_weights == []


def test_keras_parity_after_set_weights(rng):
    tf = require("tensorflow")
    keras = tf.keras
    x = rng.normal(size=(6, 10, 10, 1)).astype(np.float32)
    ours = models.Sequential([
        layers.Conv2D(4, (3, 3), activation="relu", padding="same", input_shape=(10, 10, 1)),
        layers.MaxPooling2D((2, 2)), layers.Conv2D(3, 2, strides=2, activation="tanh"),
        layers.AveragePooling2D(1), layers.Flatten(), layers.Dense(5, activation="softmax")])
    theirs = keras.Sequential([
        keras.Input(shape=(10, 10, 1)),
        keras.layers.Conv2D(4, (3, 3), activation="relu", padding="same"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(3, 2, strides=2, activation="tanh"),
        keras.layers.AveragePooling2D(1), keras.layers.Flatten(),
        keras.layers.Dense(5, activation="softmax")])
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), rtol=1e-4,
                               atol=1e-5)
    seq = rng.normal(size=(4, 7, 3)).astype(np.float32)
    for ours_l, keras_l in ((layers.SimpleRNN(5, return_sequences=True),
                             keras.layers.SimpleRNN(5, return_sequences=True)),
                            (layers.LSTM(5), keras.layers.LSTM(5)),
                            (layers.GRU(5), keras.layers.GRU(5))):
        k = keras.Sequential([keras.Input(shape=(7, 3)), keras_l])
        o = models.Sequential([layers.Input(shape=(7, 3)), ours_l])
        o.set_weights(k.get_weights())
        np.testing.assert_allclose(o.predict(seq), k.predict(seq, verbose=0), rtol=1e-4,
                                   atol=1e-5)
    # One Adam training epoch from the same weights, no shuffling: same loss and weights.
    xs = rng.normal(size=(64, 6)).astype(np.float32)
    ys = rng.integers(0, 3, 64)
    k = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(3, activation="softmax")])
    o = models.Sequential([layers.Dense(8, activation="relu", input_shape=(6,)),
                           layers.Dense(3, activation="softmax")])
    o.set_weights(k.get_weights())
    k.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    o.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hk = k.fit(xs, ys, epochs=2, batch_size=16, shuffle=False, verbose=0)
    ho = o.fit(xs, ys, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert math.isclose(ho.history["loss"][-1], hk.history["loss"][-1], rel_tol=1e-4)
    for u, v in zip(o.get_weights(), k.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
