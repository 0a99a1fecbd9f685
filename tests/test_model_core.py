"""The model core: namespace, Functional graphs, the trainer's data kinds and Keras details,
callbacks, errors by message, graph files (old format, hostile graphs), thread safety."""

from __future__ import annotations

import io
import json
import threading
import zipfile

import nncore as keras
import numpy as np
import pytest
from nncore import callbacks, layers, utils
from conftest import require


def _mlp_graph():
    inp = keras.Input(shape=(5,), name="x")
    h = layers.Dense(4, activation="tanh", name="h")(inp)
    out = layers.Dense(3, activation="softmax", name="out")(h)
    return keras.Model(inp, out, name="mlp")


def _data(rng, n=40, f=5, classes=3):
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return x, y


def test_namespace_as_keras():
    for name in ("Input", "Model", "Sequential", "layers", "models", "optimizers", "losses",
                 "metrics", "callbacks", "regularizers", "initializers", "activations", "utils",
                 "datasets", "saving", "backend"):
        assert getattr(keras, name) is not None, name
    assert keras.backend.image_data_format() == "channels_last"
    assert keras.backend.floatx() == "float32" and keras.backend.epsilon() == 1e-7
    keras.backend.clear_session()
    assert keras.utils.set_random_seed is utils.set_random_seed
    assert issubclass(keras.utils.PyDataset, object)


def test_symbolic_tensors_and_model_attributes():
    inp = keras.Input(shape=(28, 28, 1), name="img")
    assert inp.shape == (None, 28, 28, 1) and inp.dtype == "float32" and inp.name == "img"
    conv = layers.Conv2D(4, 3)
    y = conv(inp)
    assert y.shape == (None, 26, 26, 4)
    assert conv.input is inp and conv.output is y
    model = keras.Model(inp, layers.Flatten()(y))
    assert isinstance(model, keras.models.Functional) and isinstance(model, keras.Model)
    assert model.inputs == [inp] and model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 26 * 26 * 4)
    assert isinstance(model.layers[0], layers.InputLayer)  # functional: InputLayer listed
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(inp)


def test_disconnected_output_and_merge_mismatch_errors():
    a = keras.Input(shape=(3,), name="a")
    b = keras.Input(shape=(4,), name="b")
    out_b = layers.Dense(2, name="from_b")(b)
    with pytest.raises(ValueError, match=r"from_b.*'b'.*not among the model's inputs"):
        keras.Model(a, out_b)
    with pytest.raises(ValueError, match=r"add.*\(None, 3\).*\(None, 4\)"):
        layers.add([a, b])
    with pytest.raises(ValueError, match=r"concat.*\(None, 3\).*\(None, 2, 2\)"):
        layers.Concatenate(axis=1, name="concat")([a, keras.Input(shape=(2, 2))])
    shared = layers.Dense(2, name="shared")
    shared(a)
    with pytest.raises(ValueError, match=r"shared.*built for input shape \(None, 3\)"):
        shared(b)


def test_fan_out_and_shared_layer_gradients_sum(rng):
    """A tensor read twice gets the sum of both gradients; a layer called twice sums its weight
    gradients. Checked against the same model written with two separate layers."""
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 3)).astype(np.float32)
    inp = keras.Input(shape=(3,))
    d = layers.Dense(3, activation="tanh")
    out = layers.add([d(inp), d(d(inp))])
    shared = keras.Model(inp, out)
    inp2 = keras.Input(shape=(3,))
    d1, d2, d3 = (layers.Dense(3, activation="tanh") for _ in range(3))
    split = keras.Model(inp2, layers.add([d1(inp2), d3(d2(inp2))]))
    for lay in (d1, d2, d3):
        lay.set_weights(d.get_weights())
    for m in (shared, split):
        m.compile(optimizer="sgd", loss="mse")
    l1, g1 = shared._gradients(x, y)
    l2, g2 = split._gradients(x, y)
    assert l1 == pytest.approx(l2, rel=1e-6)
    np.testing.assert_allclose(g1[0], g2[0] + g2[2] + g2[4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g1[1], g2[1] + g2[3] + g2[5], rtol=1e-5, atol=1e-6)


def test_multi_input_output_dicts_loss_weights_and_logs(rng):
    title = keras.Input(shape=(6,), name="title")
    body = keras.Input(shape=(4,), name="body")
    x = layers.concatenate([layers.Dense(5, activation="relu")(title),
                            layers.Dense(5, activation="relu")(body)])
    pri = layers.Dense(1, name="priority")(x)
    dep = layers.Dense(3, activation="softmax", name="department")(x)
    model = keras.Model([title, body], [pri, dep])
    model.compile(optimizer=keras.optimizers.SGD(0.0),
                  loss={"priority": keras.losses.BinaryCrossentropy(from_logits=True),
                        "department": "categorical_crossentropy"},
                  loss_weights=[1.0, 0.2], metrics={"department": ["accuracy"]})
    n = 32
    data = {"title": rng.random((n, 6), dtype=np.float32),
            "body": rng.random((n, 4), dtype=np.float32)}
    targets = {"priority": rng.integers(0, 2, (n, 1)).astype(np.float32),
               "department": np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]}
    h = model.fit(data, targets, epochs=1, batch_size=8, verbose=0, shuffle=False)
    assert set(h.history) == {"loss", "priority_loss", "department_loss", "department_accuracy"}
    p, d = model.predict(data, verbose=0)
    want_p = float(np.mean(keras.losses.BinaryCrossentropy(from_logits=True).compute(
        p, targets["priority"], False)[0]))
    want_d = float(np.mean(-np.log(np.sum(d * targets["department"], axis=1))))
    assert h.history["priority_loss"][0] == pytest.approx(want_p, rel=1e-5)
    assert h.history["department_loss"][0] == pytest.approx(want_d, rel=1e-4)
    assert h.history["loss"][0] == pytest.approx(want_p + 0.2 * want_d, rel=1e-4)
    res = model.evaluate(data, targets, verbose=0, return_dict=True)
    assert res["loss"] == pytest.approx(want_p + 0.2 * want_d, rel=1e-4)
    with pytest.raises(ValueError, match=r"missing \['body'\]"):
        model.predict({"title": data["title"]}, verbose=0)


def test_batch_logs_carry_the_running_mean(rng):
    x, y = _data(rng, n=30)
    model = _mlp_graph()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    seen = []

    class Rec(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])

    model.fit(x, y, batch_size=10, epochs=1, verbose=0, shuffle=False, callbacks=[Rec()])
    per = [model.evaluate(x[i:i + 10], y[i:i + 10], verbose=0) for i in (0, 10, 20)]
    np.testing.assert_allclose(seen, np.cumsum(per) / np.arange(1, 4), rtol=1e-5)


def test_callback_hooks_in_fit_evaluate_predict(rng):
    x, y = _data(rng, n=20)
    model = _mlp_graph()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    events = []

    class Rec(callbacks.Callback):
        def __getattribute__(self, name):
            if name.startswith("on_"):
                def hook(*args):
                    assert isinstance(args[-1], dict)  # logs is always a dict
                    events.append(name)
                return hook
            return super().__getattribute__(name)

    model.fit(x, y, batch_size=10, epochs=1, verbose=0, validation_data=(x, y),
              callbacks=[Rec()])
    assert events[:3] == ["on_train_begin", "on_epoch_begin", "on_train_batch_begin"]
    i = events.index("on_test_begin")
    assert events[i:i + 3] == ["on_test_begin", "on_test_batch_begin", "on_test_batch_end"]
    assert events[-2:] == ["on_epoch_end", "on_train_end"]
    events.clear()
    model.evaluate(x, y, batch_size=10, verbose=0, callbacks=[Rec()])
    assert events == ["on_test_begin"] + ["on_test_batch_begin", "on_test_batch_end"] * 2 + [
        "on_test_end"]
    events.clear()
    model.predict(x, batch_size=20, verbose=0, callbacks=[Rec()])
    assert events == ["on_predict_begin", "on_predict_batch_begin", "on_predict_batch_end",
                      "on_predict_end"]


def test_on_batch_aliases_are_called(rng):
    x, y = _data(rng, n=20)
    model = _mlp_graph()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    count = []

    class Old(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            count.append(batch)

    model.fit(x, y, batch_size=5, epochs=1, verbose=0, callbacks=[Old()])
    assert count == [0, 1, 2, 3]


def test_generator_and_pydataset(rng):
    x, y = _data(rng, n=40)

    class Data(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epochs = 0

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return x[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10]

        def on_epoch_end(self):
            self.epochs += 1

    utils.set_random_seed(1)
    a = _mlp_graph()
    a.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    ds = Data()
    ha = a.fit(ds, epochs=2, verbose=0)
    assert ds.epochs == 2

    def gen():
        while True:
            for i in range(4):
                yield x[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10]

    utils.set_random_seed(1)
    b = _mlp_graph()
    b.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    hb = b.fit(gen(), steps_per_epoch=4, epochs=2, verbose=0)
    utils.set_random_seed(1)
    c = _mlp_graph()
    c.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    hc = c.fit(x, y, batch_size=10, epochs=2, verbose=0, shuffle=False)
    assert ha.history["loss"] == hc.history["loss"] == hb.history["loss"]
    for wa, wb, wc in zip(a.get_weights(), b.get_weights(), c.get_weights()):
        np.testing.assert_array_equal(wa, wc)
        np.testing.assert_array_equal(wb, wc)
    assert c.evaluate(ds, verbose=0) == pytest.approx(c.evaluate(x, y, verbose=0), rel=1e-6)
    np.testing.assert_array_equal(c.predict(gen(), steps=4, verbose=0), c.predict(x, verbose=0))


def test_sample_weight_and_class_weight(rng):
    x, y = _data(rng, n=24)
    cw = {0: 2.0, 1: 0.5, 2: 1.0}
    sw = np.array([cw[int(v)] for v in y], np.float32)
    results = []
    for kwargs in ({"sample_weight": sw}, {"class_weight": cw}):
        utils.set_random_seed(2)
        m = _mlp_graph()
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        h = m.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, **kwargs)
        results.append((h.history["loss"], m.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
    # Keras's reduction: sum(per_sample * w) / batch size.
    m = _mlp_graph()
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    per = -np.log(m.predict(x, verbose=0)[np.arange(len(y)), y])
    got = m.evaluate(x, y, sample_weight=sw, batch_size=24, verbose=0)
    assert got == pytest.approx(float(np.sum(per * sw) / len(y)), rel=1e-5)


def test_validation_freq_initial_epoch_and_rank1_input(rng):
    x = rng.normal(size=(20,)).astype(np.float32)
    y = 2 * x + 1
    model = keras.Sequential([layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    h = model.fit(x, y, epochs=4, initial_epoch=1, validation_data=(x, y), validation_freq=2,
                  verbose=0)
    assert model.input_shape == (None, 1)
    assert h.epoch == [1, 2, 3] and len(h.history["val_loss"]) == 2  # epochs 2 and 4 (1-based)
    assert model.predict(x, verbose=0).shape == (20, 1)


def test_compile_accepts_keras_options_and_loss_functions(rng):
    x, y = _data(rng)
    model = _mlp_graph()
    model.compile(optimizer="adam", loss=keras.losses.sparse_categorical_crossentropy,
                  jit_compile=True, steps_per_execution=1, run_eagerly=False)
    model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="unknown argument"):
        model.compile(optimizer="adam", loss="mse", jit=True)


def test_evaluate_refuses_empty_data(rng):
    model = _mlp_graph()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="no samples"):
        model.evaluate(np.zeros((0, 5), np.float32), np.zeros(0, int), verbose=0)
    x, y = _data(rng)
    with pytest.raises(ValueError, match="no samples"):
        model.fit(x, y, verbose=0, validation_data=(x[:0], y[:0]))
    with pytest.raises(ValueError, match="empty"):
        model.train_on_batch(x[:0], y[:0])


def test_model_checkpoint_formats_paths_and_save_freq(rng, tmp_path, capsys):
    x, y = _data(rng, n=20)
    model = _mlp_graph()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ck = callbacks.ModelCheckpoint(str(tmp_path / "sub" / "ck-{epoch:02d}-{val_loss:.2f}.nncore"),
                                   save_best_only=True, monitor="val_loss", verbose=1)
    h = model.fit(x, y, epochs=3, verbose=0, validation_data=(x, y), callbacks=[ck])
    names = sorted(p.name for p in (tmp_path / "sub").iterdir())
    assert names and all(n.startswith("ck-0") and n.endswith(".nncore") for n in names)
    best = min(h.history["val_loss"])
    assert f"{best:.2f}" in names[-1]
    assert "val_loss improved from inf to" in capsys.readouterr().out
    ck2 = callbacks.ModelCheckpoint(str(tmp_path / "b" / "w-{epoch}-{batch}.nncore"),
                                    save_weights_only=True, save_freq=3)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[ck2])  # 5 batches
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["w-1-3.nncore"]
    model.load_weights(tmp_path / "b" / "w-1-3.nncore")


def test_sequential_nesting_pop_and_feature_model(rng):
    x, _ = _data(rng)
    base = _mlp_graph()
    seq = keras.Sequential([base, layers.Activation("linear")])
    np.testing.assert_allclose(seq.predict(x, verbose=0), base.predict(x, verbose=0))
    assert seq.pop().name.startswith("activation") and len(seq.layers) == 1
    feat = keras.Model(base.inputs, [lay.output for lay in base.layers[1:]])
    h, out = feat.predict(x, verbose=0)
    assert h.shape == (40, 4)
    np.testing.assert_array_equal(out, base.predict(x, verbose=0))


def test_frozen_nested_model_gets_no_update(rng):
    x, y = _data(rng)
    inner = keras.Sequential([keras.Input(shape=(5,)), layers.Dense(4, activation="relu")])
    inner.trainable = False
    inp = keras.Input(shape=(5,))
    model = keras.Model(inp, layers.Dense(3, activation="softmax")(inner(inp)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = inner.get_weights()
    assert len(model.trainable_weights) == 2 and len(model.weights) == 4
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(before, inner.get_weights()):
        np.testing.assert_array_equal(a, b)


def _old_format_file(tmp_path):
    """A model file as nncore wrote it before graphs existed (format 1: a Sequential)."""
    cfg = {"format": "nncore.Sequential", "version": 1,
           "model": {"name": "old", "input_shape": [3],
                     "layers": [{"class_name": "Dense", "config": {
                         "name": "d", "trainable": True, "units": 2, "activation": "relu",
                         "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform",
                                                                  "config": {"seed": None}},
                         "bias_initializer": {"class_name": "Zeros", "config": {}},
                         "kernel_regularizer": None, "bias_regularizer": None}}]},
           "compile": {"optimizer": {"class_name": "SGD", "config": {
               "name": "SGD", "learning_rate": 0.1, "momentum": 0.0, "nesterov": False}},
               "loss": {"class_name": "MeanSquaredError", "config": {"from_logits": False}},
               "metrics": []}}
    k = np.arange(6, dtype=np.float32).reshape(3, 2) / 10
    b = np.array([0.5, -1.0], np.float32)
    path = tmp_path / "old.npz"
    with open(path, "wb") as f:
        np.savez(f, config=np.frombuffer(json.dumps(cfg).encode(), np.uint8), w0000=k, w0001=b)
    return path, k, b


def test_old_format_files_still_load(tmp_path):
    path, k, b = _old_format_file(tmp_path)
    model = keras.models.load_model(path)
    assert isinstance(model, keras.Sequential) and model.name == "old"
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.maximum(x @ k + b, 0), rtol=1e-6)
    assert model.optimizer.learning_rate == pytest.approx(0.1)


def _graph_file(tmp_path, mutate):
    inp = keras.Input(shape=(3,), name="inp")
    a = layers.Dense(2, name="a")(inp)
    b = layers.Dense(2, name="b")(a)
    model = keras.Model(inp, layers.add([a, b], name="sum"), name="g")
    path = tmp_path / "g.nncore"
    model.save(path)
    raw = path.read_bytes()
    cfg = json.loads(np.load(io.BytesIO(raw))["config"].tobytes())
    mutate(cfg["model"]["config"])
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = tmp_path / "bad.nncore"
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if name == "config.npy":
                buf = io.BytesIO()
                np.save(buf, np.frombuffer(json.dumps(cfg).encode(), np.uint8))
                dst.writestr(name, buf.getvalue())
            else:
                dst.writestr(name, src.read(name))
    return out


def _layer(cfg, name):
    return next(e for e in cfg["layers"] if e["name"] == name)


@pytest.mark.parametrize("case, message", [
    ("cycle", "cycle"),
    ("missing_layer", r"not defined: \['ghost'\]"),
    ("huge_fan_in", "1 to 1024 inputs"),
    ("bad_ref", "tensor reference"),
    ("duplicate_name", "two layers are named 'a'"),
    ("unknown_class", "unknown layer type 'Lambda2'"),
    ("output_missing", "does not exist"),
])
def test_hostile_graph_files(tmp_path, case, message):
    def mutate(c):
        if case == "cycle":  # a reads b, b reads a
            _layer(c, "a")["inbound_nodes"] = [{"args": [["b", 0, 0]], "list": False}]
        elif case == "missing_layer":
            _layer(c, "b")["inbound_nodes"] = [{"args": [["ghost", 0, 0]], "list": False}]
        elif case == "huge_fan_in":
            _layer(c, "sum")["inbound_nodes"] = [{"args": [["a", 0, 0]] * 5000, "list": True}]
        elif case == "bad_ref":
            _layer(c, "b")["inbound_nodes"] = [{"args": [["a", "zero", 0]], "list": False}]
        elif case == "duplicate_name":
            _layer(c, "b")["name"] = "a"
        elif case == "unknown_class":
            _layer(c, "b")["class_name"] = "Lambda2"
        elif case == "output_missing":
            c["output_layers"] = ["sum", 3, 0]
    path = _graph_file(tmp_path, mutate)
    with pytest.raises(ValueError, match=message):
        keras.models.load_model(path)


def test_shared_and_nested_graphs_round_trip(tmp_path, rng):
    inp = keras.Input(shape=(4,))
    shared = layers.Dense(4, activation="tanh", name="shared")
    inner = keras.Sequential([layers.Dense(3, name="inner_d")], name="inner")
    out = inner(layers.add([shared(inp), shared(shared(inp))]))
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    x = rng.normal(size=(6, 4)).astype(np.float32)
    model.save(tmp_path / "m.nncore")
    again = keras.models.load_model(tmp_path / "m.nncore")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [lay.name for lay in again.layers] == [lay.name for lay in model.layers]
    s = again.get_layer("shared")
    assert len(s._inbound_nodes) == 3  # still one layer at three places
    s.set_weights([w * 0 for w in s.get_weights()])
    np.testing.assert_allclose(again.predict(x, verbose=0),
                               np.tile(inner.layers[0].get_weights()[1], (6, 1)), atol=1e-6)


def test_concurrent_predict_on_functional_model_and_first_build(rng):
    x = rng.normal(size=(16, 5)).astype(np.float32)
    model = _mlp_graph()
    want = model.predict(x, verbose=0)
    got = [None] * 8

    def run(i):
        for _ in range(20):
            got[i] = model.predict(x, verbose=0)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for g in got:
        np.testing.assert_array_equal(g, want)
    # The first predict from several threads on an unbuilt model builds each layer once.
    seq = keras.Sequential([layers.Dense(7), layers.Dense(2)])
    barrier = threading.Barrier(8)

    def first():
        barrier.wait()
        seq.predict(x, verbose=0)

    ts = [threading.Thread(target=first) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(seq.weights) == 4 and seq.count_params() == 5 * 7 + 7 + 7 * 2 + 2


def test_second_concurrent_fit_is_refused(rng):
    x, y = _data(rng, n=400)
    model = _mlp_graph()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    started = threading.Event()
    errors = []

    class Slow(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            started.set()
            if batch == 0:
                threading.Event().wait(0.5)

    t = threading.Thread(target=lambda: model.fit(x, y, epochs=1, verbose=0,
                                                  callbacks=[Slow()]))
    t.start()
    started.wait(10)
    try:
        model.fit(x, y, epochs=1, verbose=0)
    except RuntimeError as e:
        errors.append(str(e))
    t.join()
    assert errors and "already being trained" in errors[0]


def test_metric_objects_and_loss_dicts_survive_save_and_load(tmp_path, rng):
    x, y = _data(rng)
    model = _mlp_graph()
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss={"out": keras.losses.SparseCategoricalCrossentropy()},
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.nncore")
    again = keras.models.load_model(tmp_path / "m.nncore")
    assert again.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True))
    assert set(again.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "acc"}


def test_tf_data_and_torch_dataloader_are_iterated_as_numpy(rng):
    tf = require("tensorflow")
    torch = require("torch")
    x, y = _data(rng, n=40)
    model = _mlp_graph()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    want = model.evaluate(x, y, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
    assert model.evaluate(ds, verbose=0) == pytest.approx(want, rel=1e-6)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=10)
    assert model.evaluate(loader, verbose=0) == pytest.approx(want, rel=1e-6)
    model.fit(ds, epochs=2, verbose=0)
    model.fit(loader, epochs=1, verbose=0)


@pytest.mark.parametrize("cls, kwargs, shapes", [
    (layers.Add, {}, [(3, 4), (3, 4), (3, 4)]),
    (layers.Add, {}, [(3, 4), (3, 1)]),
    (layers.Subtract, {}, [(3, 4), (3, 4)]),
    (layers.Multiply, {}, [(3, 4), (3, 4), (3, 4)]),
    (layers.Average, {}, [(3, 2, 4), (3, 2, 4)]),
    (layers.Maximum, {}, [(3, 4), (3, 4), (3, 4)]),
    (layers.Minimum, {}, [(3, 4), (3, 4)]),
    (layers.Concatenate, {"axis": -1}, [(3, 2), (3, 5)]),
    (layers.Concatenate, {"axis": 1}, [(3, 2, 4), (3, 1, 4)]),
    (layers.Dot, {"axes": 1}, [(3, 4), (3, 4)]),
    (layers.Dot, {"axes": (2, 1)}, [(3, 2, 4), (3, 4, 5)]),
    (layers.Dot, {"axes": 1, "normalize": True}, [(3, 4), (3, 4)]),
])
def test_merge_layers_forward_and_finite_differences(cls, kwargs, shapes, rng):
    """Each merge's backward against float64 central differences of sum(R * y), and its forward
    against numpy."""
    xs = [rng.normal(size=s).astype(np.float32) for s in shapes]
    lay = cls(**kwargs)
    y, ctx = lay.forward(xs, need_ctx=True)
    assert tuple(lay.compute_output_shape([(None,) + s[1:] for s in shapes]))[1:] == y.shape[1:]
    x64 = [x.astype(np.float64) for x in xs]
    ref = {layers.Add: lambda a: sum(a), layers.Subtract: lambda a: a[0] - a[1],
           layers.Multiply: lambda a: np.prod(np.broadcast_arrays(*a), axis=0),
           layers.Average: lambda a: sum(a) / len(a),
           layers.Maximum: lambda a: np.max(np.broadcast_arrays(*a), axis=0),
           layers.Minimum: lambda a: np.min(np.broadcast_arrays(*a), axis=0)}
    if cls in ref:
        np.testing.assert_allclose(y, ref[cls](x64), rtol=1e-6, atol=1e-6)
    elif cls is layers.Concatenate:
        np.testing.assert_array_equal(y, np.concatenate(xs, axis=kwargs["axis"]))
    r = rng.normal(size=y.shape)
    dxs = lay.backward(ctx, r.astype(np.float32))

    def f(vals):
        out, _ = lay.forward([v.astype(np.float32) for v in vals])
        return float(np.sum(out.astype(np.float64) * r))

    eps = 1e-3
    for k, x in enumerate(x64):
        num = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            for sgn in (1, -1):
                vals = [v.copy() for v in x64]
                vals[k][idx] += sgn * eps
                num[idx] += sgn * f(vals) / (2 * eps)
        np.testing.assert_allclose(dxs[k], num, rtol=2e-2, atol=2e-3)


def test_input_gradients_match_finite_differences(rng):
    inp = keras.Input(shape=(4,))
    h = layers.Dense(5, activation="tanh")(inp)
    model = keras.Model(inp, layers.Dense(2)(layers.add([h, layers.Dense(5)(inp)])))
    x = rng.normal(size=(3, 4)).astype(np.float32)
    r = rng.normal(size=(3, 2)).astype(np.float32)
    g = model.input_gradients(x, lambda out: r)
    eps = 1e-2
    num = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        for sgn in (1, -1):
            xx = x.astype(np.float64).copy()
            xx[idx] += sgn * eps
            num[idx] += sgn * np.sum(model.predict(xx, verbose=0) * r) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-2, atol=1e-3)
