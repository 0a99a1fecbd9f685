"""Keras's files in and out: models trained in Keras 3 (TensorFlow 2.21) read by nncore (.keras,
legacy .h5, .weights.h5), nncore's models read by Keras, and hostile files refused."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import nncore
import numpy as np
import pytest
from conftest import require
from nncore import layers, models, optimizers

h5py = require("h5py")
tf = require("tensorflow")
keras = require("keras", minversion="3.0")
KL = keras.layers

TOL = 1e-5
# TensorFlow 2.21's tensors predate NumPy 2's __array__(copy=) protocol: Keras's own calls warn.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def _k_cnn():
    return keras.Sequential([
        keras.Input((8, 8, 2)),
        KL.Conv2D(4, 3, padding="same", activation="relu"),
        KL.MaxPooling2D(),
        KL.Conv2D(3, 2, strides=1, activation="tanh"),
        KL.AveragePooling2D(2, padding="same"),
        KL.Dropout(0.0), KL.Flatten(), KL.Dense(6, activation="relu"),
        KL.Reshape((3, 2)), KL.Flatten(), KL.Activation("sigmoid"),
        KL.Dense(3, activation="softmax")])


def _k_rnn():
    inp = keras.Input((5, 3))
    a = KL.LSTM(4, return_sequences=True)(inp)
    b = KL.GRU(4, return_sequences=True)(a)
    c = KL.SimpleRNN(3)(b)
    return keras.Model(inp, KL.Dense(3, activation="softmax")(c))


def _k_merge():
    a_in = keras.Input((6,), name="a")
    b_in = keras.Input((6,), name="b")
    inner = keras.Sequential([keras.Input((6,)), KL.Dense(6, activation="tanh"), KL.Dense(6)],
                             name="inner")
    a = KL.Dense(6)(a_in)
    b = inner(b_in)
    b2 = inner(a)  # the nested model is shared: two calls, one set of weights
    s = KL.Add()([a, b, b2])
    d = KL.Subtract()([a, b])
    m = KL.Multiply()([a, b2])
    av = KL.Average()([s, d])
    mx = KL.Maximum()([m, av])
    mn = KL.Minimum()([m, av])
    dot = KL.Dot(axes=1, normalize=True)([mx, mn])
    cat = KL.Concatenate()([mx, mn, dot])
    return keras.Model([a_in, b_in], KL.Dense(3, activation="softmax")(cat))


def _data(kind, rng, n=16):
    y = rng.integers(0, 3, size=n)
    if kind == "cnn":
        return rng.normal(size=(n, 8, 8, 2)).astype(np.float32), y
    if kind == "rnn":
        return rng.normal(size=(n, 5, 3)).astype(np.float32), y
    return [rng.normal(size=(n, 6)).astype(np.float32) for _ in range(2)], y


_BUILD = {"cnn": _k_cnn, "rnn": _k_rnn, "merge": _k_merge}


def _keras_trained(kind, rng, opt):
    keras.utils.set_random_seed(1)
    m = _BUILD[kind]()
    m.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data(kind, rng)
    m.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    return m, x, y


def _pred(m, x):
    return np.asarray(m.predict(x, verbose=0))


@pytest.mark.parametrize("kind", ["cnn", "rnn", "merge"])
@pytest.mark.parametrize("ext,opt", [(".keras", "adam"), (".h5", "sgd")])
def test_keras_trained_model_loads_predicts_and_keeps_training(kind, ext, opt, rng, tmp_path):
    k_opt = keras.optimizers.Adam(0.01) if opt == "adam" else keras.optimizers.SGD(0.05)
    km, x, y = _keras_trained(kind, rng, k_opt)
    path = tmp_path / f"m{ext}"
    km.save(path)
    ours = models.load_model(path)
    np.testing.assert_allclose(_pred(ours, x), _pred(km, x), atol=TOL, rtol=0)
    assert [lay.name for lay in ours.layers] == [lay.name for lay in km.layers]
    # Compiled from the file (the .keras one with Adam's moments and step count): one more
    # epoch on both sides ends at the same weights.
    assert ours.compiled
    assert type(ours.optimizer).__name__.lower() == opt
    if ext == ".keras":
        assert ours.optimizer.iterations == km.optimizer.iterations.numpy()
    ours.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    km.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(ours.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5)


def _n_cnn():
    return models.Sequential([
        layers.Input((8, 8, 2)),
        layers.Conv2D(4, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(3, 2, activation="tanh"), layers.AveragePooling2D(2, padding="same"),
        layers.Dropout(0.0), layers.Flatten(), layers.Dense(6, activation="relu"),
        layers.Reshape((3, 2)), layers.Flatten(), layers.Activation("sigmoid"),
        layers.Dense(3, activation="softmax")])


def _n_rnn():
    inp = nncore.Input((5, 3))
    a = layers.LSTM(4, return_sequences=True)(inp)
    b = layers.GRU(4, return_sequences=True)(a)
    c = layers.SimpleRNN(3)(b)
    return nncore.Model(inp, layers.Dense(3, activation="softmax")(c))


def _n_merge():
    a_in = nncore.Input((6,), name="a")
    b_in = nncore.Input((6,), name="b")
    inner = models.Sequential([layers.Input((6,)), layers.Dense(6, activation="tanh"),
                               layers.Dense(6)], name="inner")
    a = layers.Dense(6)(a_in)
    b = inner(b_in)
    b2 = inner(a)
    s = layers.Add()([a, b, b2])
    d = layers.Subtract()([a, b])
    m = layers.Multiply()([a, b2])
    av = layers.Average()([s, d])
    mx = layers.Maximum()([m, av])
    mn = layers.Minimum()([m, av])
    dot = layers.Dot(axes=1, normalize=True)([mx, mn])
    cat = layers.Concatenate()([mx, mn, dot])
    return nncore.Model([a_in, b_in], layers.Dense(3, activation="softmax")(cat))


_NBUILD = {"cnn": _n_cnn, "rnn": _n_rnn, "merge": _n_merge}


@pytest.mark.parametrize("kind", ["cnn", "rnn", "merge"])
@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_nncore_model_loads_in_keras(kind, ext, rng, tmp_path):
    ours = _NBUILD[kind]()
    ours.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    x, y = _data(kind, rng)
    ours.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / f"m{ext}"
    ours.save(path)
    km = keras.models.load_model(path)
    np.testing.assert_allclose(_pred(km, x), _pred(ours, x), atol=TOL, rtol=0)
    if ext == ".keras":  # Adam's state went with it: both continue identically
        assert km.optimizer.iterations.numpy() == ours.optimizer.iterations
        ours.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
        km.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
        for a, b in zip(ours.get_weights(), km.get_weights()):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5)
    # And back again.
    ours.save(tmp_path / "again.keras")
    again = models.load_model(tmp_path / "again.keras")
    np.testing.assert_array_equal(_pred(again, x), _pred(ours, x))


@pytest.mark.parametrize("kind", ["cnn", "rnn", "merge"])
def test_weights_files_both_ways(kind, rng, tmp_path):
    km = _BUILD[kind]()
    ours = _NBUILD[kind]()
    x, _ = _data(kind, rng)
    km.save_weights(tmp_path / "k.weights.h5")
    ours.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(_pred(ours, x), _pred(km, x), atol=TOL, rtol=0)
    ours2 = _NBUILD[kind]()
    ours2.save_weights(tmp_path / "n.weights.h5")
    km.load_weights(tmp_path / "n.weights.h5")
    np.testing.assert_allclose(_pred(km, x), _pred(ours2, x), atol=TOL, rtol=0)
    # Legacy .h5 weights (layer_names / weight_names).
    ours2.save_weights(tmp_path / "n.h5")
    ours.load_weights(tmp_path / "n.h5")
    np.testing.assert_array_equal(_pred(ours, x), _pred(ours2, x))


def test_native_format_stays_default_and_old_keras_named_files_load(rng, tmp_path):
    from nncore.saving import native

    m = _n_cnn()
    x, _ = _data("cnn", rng, 3)
    m.save(tmp_path / "m.nncore")
    m.save(tmp_path / "noext")
    assert zipfile.ZipFile(tmp_path / "m.nncore").namelist()[0] == "config.npy"
    native.save_model(m, tmp_path / "old.keras")  # what earlier nncore wrote under '.keras'
    for p in ("m.nncore", "noext", "old.keras"):
        np.testing.assert_array_equal(_pred(models.load_model(tmp_path / p), x), _pred(m, x))


def test_import_does_not_load_h5py_and_missing_h5py_names_the_extra(tmp_path, monkeypatch):
    code = "import sys, nncore; nncore.layers; nncore.models; assert 'h5py' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    m = _n_cnn()
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"nncore\[keras\]"):
        m.save(tmp_path / "m.keras")


# ---- hostile and unsupported files ------------------------------------------------------------
def _members(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write_zip(path, members, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compress) as z:
        for n, d in members.items():
            z.writestr(n, d)


def _edit_config(src, dst, fn):
    mem = _members(src)
    cfg = json.loads(mem["config.json"])
    fn(cfg)
    mem["config.json"] = json.dumps(cfg).encode()
    _write_zip(dst, mem)


def _edit_h5(src, dst, fn):
    mem = _members(src)
    buf = io.BytesIO(mem["model.weights.h5"])
    with h5py.File(buf, "a") as f:
        fn(f)
    mem["model.weights.h5"] = buf.getvalue()
    _write_zip(dst, mem)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    p = tmp_path_factory.mktemp("k") / "good.keras"
    m = keras.Sequential([keras.Input((4,)), KL.Dense(3), KL.Dense(2)])
    m.save(p)
    return p


def _first_dense(cfg):
    return cfg["config"]["layers"][1]


_CONFIG_EDITS = {
    "module elsewhere": (lambda c: _first_dense(c).update(module="os"), "module"),
    "unknown layer": (lambda c: _first_dense(c).update(class_name="LayerNormalizationX"),
                      "no layer"),
    "unregistered custom": (lambda c: _first_dense(c).update(registered_name="Custom>Evil"),
                            "not registered"),
    "unknown argument": (lambda c: _first_dense(c)["config"].update(evil=1), "evil"),
    "unknown constraint": (lambda c: _first_dense(c)["config"].update(kernel_constraint={
        "module": "keras.constraints", "class_name": "Evil", "config": {}}), "constraint"),
    "constraint module elsewhere": (lambda c: _first_dense(c)["config"].update(
        kernel_constraint={"module": "os", "class_name": "NonNeg", "config": {}}), "module"),
    "bad constraint config": (lambda c: _first_dense(c)["config"].update(kernel_constraint={
        "module": "keras.constraints", "class_name": "MaxNorm", "config": {"evil": 1}}),
        "constraint"),
    "mixed precision": (lambda c: _first_dense(c)["config"].update(dtype={
        "module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}),
        "dtype"),
    "huge units": (lambda c: _first_dense(c)["config"].update(units=2**40), "units"),
    "big but valid units": (lambda c: _first_dense(c)["config"].update(units=2**27), "param"),
    "unknown initializer": (lambda c: _first_dense(c)["config"].update(kernel_initializer={
        "module": "keras.initializers", "class_name": "Evil", "config": {}}), "initializer"),
    "not a model": (lambda c: c.update(class_name="Dense"), "Sequential or Functional"),
}


@pytest.mark.parametrize("case", sorted(_CONFIG_EDITS))
def test_hostile_keras_configs_raise_value_error(case, good, tmp_path):
    fn, match = _CONFIG_EDITS[case]
    p = tmp_path / "bad.keras"
    _edit_config(good, p, fn)
    with pytest.raises(ValueError, match=match):
        models.load_model(p)


def test_unsupported_argument_values_are_refused(tmp_path):
    for layer, match in [(KL.LSTM(3, recurrent_activation="hard_sigmoid"),
                          "recurrent_activation"),
                         (KL.Conv2D(2, 1, groups=1, data_format="channels_first"), "data_format")]:
        shape = (4, 4, 2) if isinstance(layer, KL.Conv2D) else (5, 2)
        m = keras.Sequential([keras.Input(shape), layer])
        m.save(tmp_path / "m.keras")
        with pytest.raises(ValueError, match=match):
            models.load_model(tmp_path / "m.keras")


def test_lambda_layer_is_refused_and_never_run(tmp_path):
    # Keras stores the Lambda's function as marshalled bytecode; nncore must not touch it.
    m = keras.Sequential([keras.Input((3,)), KL.Lambda(lambda t: t * 2.0)])
    p = tmp_path / "lam.keras"
    m.save(p)
    assert "function" in json.dumps(json.loads(_members(p)["config.json"]))
    with pytest.raises(ValueError, match="Lambda"):
        models.load_model(p)


def _set_dataset(path, data):
    def fn(f):
        del f[path]
        f[path] = data
    return fn


_H5_EDITS = {
    "wrong shape": (_set_dataset("layers/dense/vars/0", np.zeros((5, 3), np.float32)), "shape"),
    "wrong dtype": (_set_dataset("layers/dense/vars/0", np.zeros((4, 3), np.float64)), "dtype"),
    "missing dataset": (lambda f: f.__delitem__("layers/dense/vars/1"), "missing"),
    "extra dataset": (lambda f: f.create_dataset("layers/dense/vars/9", data=np.zeros(3)),
                      "unexpected"),
    "extra group": (lambda f: f.create_dataset("layers/evil/vars/0", data=np.zeros(3)),
                    "unexpected"),
    "soft link": (lambda f: f.__setitem__("layers/dense/vars/link",
                                          h5py.SoftLink("/layers/dense/vars/0")), "SoftLink"),
    "external link": (lambda f: f.__setitem__("layers/ext", h5py.ExternalLink("/etc/passwd",
                                                                               "/")),
                      "ExternalLink"),
    "nan": (_set_dataset("layers/dense/vars/1", np.full(3, np.nan, np.float32)), "NaN"),
    "compressed dataset": (lambda f: (f.__delitem__("layers/dense/vars/0"), f.create_dataset(
        "layers/dense/vars/0", data=np.zeros((4, 3), np.float32), compression="gzip")),
        "filtered"),
}


@pytest.mark.parametrize("case", sorted(_H5_EDITS))
def test_hostile_weight_files_raise_value_error(case, good, tmp_path):
    fn, match = _H5_EDITS[case]
    p = tmp_path / "bad.keras"
    _edit_h5(good, p, fn)
    with pytest.raises(ValueError, match=match):
        models.load_model(p)


def test_hostile_zips_raise_value_error(good, tmp_path):
    mem = _members(good)
    cases = {
        "compressed": (lambda p: _write_zip(p, mem, zipfile.ZIP_DEFLATED), "compressed"),
        "extra member": (lambda p: _write_zip(p, {**mem, "evil.py": b"import os"}),
                         "unexpected member"),
        "no weights": (lambda p: _write_zip(p, {k: v for k, v in mem.items()
                                                if k != "model.weights.h5"}), "missing"),
        "bad json": (lambda p: _write_zip(p, {**mem, "config.json": b"{not json"}), "JSON"),
        "weights not hdf5": (lambda p: _write_zip(p, {**mem, "model.weights.h5": b"x" * 400}),
                             "HDF5"),
        "truncated": (lambda p: p.write_bytes(good.read_bytes()[:300]), "not a valid"),
    }
    for name, (make, match) in cases.items():
        p = tmp_path / f"{name.replace(' ', '_')}.keras"
        make(p)
        with pytest.raises(ValueError, match=match):
            models.load_model(p)


def test_hostile_legacy_h5(tmp_path):
    m = keras.Sequential([keras.Input((4,)), KL.Dense(3)])
    p = tmp_path / "m.h5"
    m.save(p)
    ours = models.load_model(p)
    assert ours.layers[0].kernel.shape == (4, 3)

    def edit(fn):
        q = tmp_path / "bad.h5"
        q.write_bytes(p.read_bytes())
        with h5py.File(q, "a") as f:
            fn(f)
        return q

    name = m.layers[0].name
    with h5py.File(p) as f:
        kpath = f"model_weights/{name}/" + f[f"model_weights/{name}"].attrs["weight_names"][0]
    bad = {
        "wrong shape": lambda f: (f.__delitem__(kpath), f.create_dataset(
            kpath, data=np.zeros((9, 3), np.float32))),
        "wrong dtype": lambda f: (f.__delitem__(kpath), f.create_dataset(
            kpath, data=np.zeros((4, 3), np.float64))),
        "external link": lambda f: f.__setitem__(kpath + "_x", h5py.ExternalLink("/etc/x", "/")),
        "missing layer": lambda f: f["model_weights"].__delitem__(name),
        "bad config": lambda f: f.attrs.__setitem__("model_config", "{]"),
        "lambda": lambda f: f.attrs.__setitem__("model_config", json.dumps(
            {"class_name": "Sequential", "config": {"name": "s", "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, 4]}},
                {"class_name": "Lambda", "config": {"name": "l", "function": "4wEAAAA="}}]}})),
    }
    for _case, fn in bad.items():
        with pytest.raises(ValueError, match="not a valid"):
            models.load_model(edit(fn))


def test_keras2_style_legacy_file_loads(rng, tmp_path):
    """A tf.keras 2.x layout (batch_input_shape, list-style inbound nodes, ':0' weight names),
    written by hand since TensorFlow 2.21 no longer ships Keras 2."""
    kern = rng.normal(size=(4, 3)).astype(np.float32)
    bias = rng.normal(size=(3,)).astype(np.float32)
    cfg = {"class_name": "Functional", "config": {"name": "model", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4],
                                                "dtype": "float32", "sparse": False,
                                                "ragged": False, "name": "input_1"},
         "name": "input_1", "inbound_nodes": []},
        {"class_name": "Dense", "config": {
            "name": "dense", "trainable": True, "dtype": "float32", "units": 3,
            "activation": "relu", "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None},
         "name": "dense", "inbound_nodes": [[["input_1", 0, 0, {}]]]}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}
    p = tmp_path / "k2.h5"
    with h5py.File(p, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg)
        f.attrs["keras_version"] = "2.15.0"
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"input_1", b"dense"]
        g.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        d = g.create_group("dense")
        d.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        d["dense/kernel:0"] = kern
        d["dense/bias:0"] = bias
    m = models.load_model(p)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(m.predict(x, verbose=0), np.maximum(x @ kern + bias, 0),
                               rtol=1e-6, atol=1e-6)


# The layers of issue 11 landed together with these converters and have no entry yet (issue 14
# stays open for them). The test fails for any other layer without one, and for a listed layer that
# has gained one (then drop it from this list).
# Every built-in layer converts (the issue-11 layers: tests/test_keras_files_layers.py).
# (TextVectorization joined with its assets/ vocabulary: tests/test_keras_files_vocab.py.)
def test_every_builtin_layer_is_in_the_keras_table():
    from nncore.layers import _BUILTIN
    from nncore.saving.keras_format import KERAS_LAYERS

    assert [c.__name__ for c in _BUILTIN if c.__name__ not in KERAS_LAYERS and
            c.__name__ != "InputLayer"] == []


def _scale_classes():
    from nncore.layers.base import Layer

    class Scale(Layer):
        """y = x * w (one weight per feature): a user's layer, registered by name."""

        def weight_specs(self, s):
            return [("w", (s[-1],), nncore.initializers.get("ones"), None)]

        def compute_output_shape(self, s):
            return s

        def forward(self, x, training=False, need_ctx=False):
            x = np.asarray(x, np.float32)
            return x * self.weights[0], (x if need_ctx else None)

        def backward(self, ctx, dy, need_input_grad=True):
            self._add_grad(0, (dy * ctx).reshape(-1, dy.shape[-1]).sum(0))
            return dy * self.weights[0] if need_input_grad else None

    @keras.saving.register_keras_serializable(package="T14")
    class KScale(KL.Layer):
        def build(self, s):
            self.w = self.add_weight(shape=(s[-1],), initializer="ones")

        def call(self, x):
            return x * self.w

    return Scale, KScale


def test_registered_custom_layers_both_ways(rng, tmp_path):
    Scale, KScale = _scale_classes()
    x = rng.normal(size=(3, 4)).astype(np.float32)
    # A Keras file naming a custom class nncore does not know: refused, nothing imported.
    km = keras.Sequential([keras.Input((4,)), KScale(name="s"), KL.Dense(2)])
    km.layers[0].w.assign(rng.normal(size=4).astype(np.float32))
    km.save(tmp_path / "k.keras")
    reg = json.loads(_members(tmp_path / "k.keras")["config.json"])["config"]["layers"][1]
    with pytest.raises(ValueError, match="not registered"):
        models.load_model(tmp_path / "k.keras")
    # Registered with nncore under the name Keras recorded: it loads, weights included.
    nncore.saving.register_keras_serializable(package="T14", name="KScale")(Scale)
    ours = models.load_model(tmp_path / "k.keras")
    assert reg["registered_name"] == "T14>KScale"
    np.testing.assert_allclose(ours.predict(x, verbose=0), _pred(km, x), atol=TOL, rtol=0)
    # nncore writes the custom layer with its registered name; both ends read it back.
    ours.save(tmp_path / "n.keras")
    np.testing.assert_array_equal(models.load_model(tmp_path / "n.keras").predict(x, verbose=0),
                                  ours.predict(x, verbose=0))
    np.testing.assert_allclose(_pred(keras.models.load_model(tmp_path / "n.keras"), x),
                               ours.predict(x, verbose=0), atol=TOL, rtol=0)


def _ops_dense_classes():
    """The same user layer written in each library's ops, registered with neither: two unnamed
    weights (Keras names them variable, variable_1), a config entry of its own."""
    from nncore import ops

    def make(base, o):
        class OpsDense(base):
            def __init__(self, units, **kw):
                super().__init__(**kw)
                self.units = units

            def build(self, s):
                self.w = self.add_weight(shape=(s[-1], self.units), initializer="random_normal")
                self.b = self.add_weight(shape=(self.units,), initializer="zeros")

            def call(self, x):
                return o.tanh(o.matmul(x, self.w) + self.b)

            def get_config(self):
                return {**super().get_config(), "units": self.units}

        return OpsDense

    return make(layers.Layer, ops), make(KL.Layer, keras.ops)


def test_unregistered_custom_layer_both_ways(rng, tmp_path):
    """As in Keras: a model with an unregistered custom layer saves (.keras and legacy .h5); it
    loads only when the caller names the class (custom_objects= or a custom_object_scope)."""
    Ours, Theirs = _ops_dense_classes()
    x = rng.normal(size=(5, 4)).astype(np.float32)
    mine = models.Sequential([nncore.Input((4,)), Ours(3, name="od"), layers.Dense(2)])
    mine.layers[0].b[...] = rng.normal(size=3)
    for ext in ("keras", "h5"):
        mine.save(tmp_path / f"n.{ext}")
        with pytest.raises(ValueError, match="OpsDense"):
            models.load_model(tmp_path / f"n.{ext}")
        back = models.load_model(tmp_path / f"n.{ext}", custom_objects={"OpsDense": Ours})
        np.testing.assert_array_equal(back.predict(x, verbose=0), mine.predict(x, verbose=0))
        with nncore.saving.custom_object_scope({"OpsDense": Ours}):
            back = models.load_model(tmp_path / f"n.{ext}")
        np.testing.assert_array_equal(back.predict(x, verbose=0), mine.predict(x, verbose=0))
        theirs = keras.models.load_model(tmp_path / f"n.{ext}", custom_objects={"OpsDense": Theirs})
        np.testing.assert_allclose(_pred(theirs, x), mine.predict(x, verbose=0), atol=TOL, rtol=0)
    # Keras's own file of the same model reads back the same way, weights by position.
    km = keras.Sequential([keras.Input((4,)), Theirs(3, name="od"), KL.Dense(2)])
    km.layers[0].b.assign(rng.normal(size=3).astype(np.float32))
    for ext in ("keras", "h5"):
        km.save(tmp_path / f"k.{ext}")
        entry = None
        if ext == "keras":
            entry = json.loads(_members(tmp_path / "k.keras")["config.json"])["config"]["layers"][1]
            assert entry["registered_name"] == entry["class_name"] == "OpsDense"
        ours = models.load_model(tmp_path / f"k.{ext}", custom_objects={"OpsDense": Ours})
        np.testing.assert_allclose(ours.predict(x, verbose=0), _pred(km, x), atol=TOL, rtol=0)


def _subclassed_models():
    """The same subclassed model in each library: constructor arguments only (no get_config),
    layers held as attributes, a list of layers and a user layer holding a layer."""
    from nncore import ops

    def make(lib, L, o):
        class Block(L.Layer):
            def __init__(self, units=4, **kw):
                super().__init__(**kw)
                self.inner = L.Dense(units)

            def build(self, s):
                self.scale = self.add_weight(shape=(s[-1],), initializer="ones")

            def call(self, x):
                return o.tanh(self.inner(x * self.scale))

        class Net(lib.Model):
            def __init__(self, units=16, depth=2, **kw):
                super().__init__(**kw)
                self.stem = L.Dense(units, activation="relu")
                self.blocks = [L.Dense(8) for _ in range(depth)]
                self.head = Block(3)

            def call(self, x, training=False):
                x = self.stem(x)
                for b in self.blocks:
                    x = b(x)
                return self.head(x)

        return Net, Block

    return make(nncore, layers, ops), make(keras, KL, keras.ops)


def test_subclassed_model_both_ways(rng, tmp_path):
    """Keras 3 saves a subclassed model as its class, constructor config and build shape, with
    variables under its attribute names; nncore writes and reads the same, optimizer state
    included, and refuses the legacy .h5 as Keras does."""
    (Net, Block), (KNet, KBlock) = _subclassed_models()
    x = rng.normal(size=(6, 5)).astype(np.float32)
    y = rng.normal(size=(6, 3)).astype(np.float32)
    ours = {"Net": Net, "Block": Block}
    theirs = {"Net": KNet, "Block": KBlock}
    mine = Net(units=12, depth=3)
    mine.compile(optimizer="adam", loss="mse")
    mine.fit(x, y, epochs=2, batch_size=3, verbose=0)
    assert mine.get_config() == {"name": mine.name, "trainable": True, "units": 12, "depth": 3}
    for ext in ("keras", "nncore"):
        mine.save(tmp_path / f"n.{ext}")
        with pytest.raises(ValueError, match="Net"):
            models.load_model(tmp_path / f"n.{ext}")
        back = models.load_model(tmp_path / f"n.{ext}", custom_objects=ours)
        assert type(back) is Net and back.get_config() == mine.get_config()
        np.testing.assert_array_equal(back.predict(x, verbose=0), mine.predict(x, verbose=0))
        # training resumes where it stopped: one more step on both, the same weights
        back.fit(x, y, epochs=1, batch_size=6, verbose=0, shuffle=False)
        twin = models.load_model(tmp_path / f"n.{ext}", custom_objects=ours)
        twin.fit(x, y, epochs=1, batch_size=6, verbose=0, shuffle=False)
        for a, b in zip(back.get_weights(), twin.get_weights()):
            np.testing.assert_array_equal(a, b)
    paths = set()
    with zipfile.ZipFile(tmp_path / "n.keras") as z, h5py.File(
            io.BytesIO(z.read("model.weights.h5"))) as f:
        f.visititems(lambda n, o: paths.add(n) if isinstance(o, h5py.Dataset) else None)
    # attributes in natural order, `layers` among them: stem is first met in model.layers
    assert paths == {f"{g}/vars/{i}" for g in ("layers/dense", "blocks/dense", "blocks/dense_1",
                                               "blocks/dense_2", "head/inner") for i in (0, 1)
                     } | {"head/vars/0"} | {p for p in paths if p.startswith("optimizer/")}
    k = keras.models.load_model(tmp_path / "n.keras", custom_objects=theirs)
    np.testing.assert_allclose(_pred(k, x), mine.predict(x, verbose=0), atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="subclassed"):
        mine.save(tmp_path / "n.h5")
    assert not (tmp_path / "n.h5").exists()
    # Keras's own file of the subclassed model (Keras 3.15's auto config of a Model records the
    # constructor's defaults, not the values passed: built with the defaults here)
    km = KNet()
    km.compile(optimizer="adam", loss="mse")
    km.fit(x, y, epochs=1, batch_size=3, verbose=0)
    km.save(tmp_path / "k.keras")
    got = models.load_model(tmp_path / "k.keras", custom_objects=ours)
    np.testing.assert_allclose(got.predict(x, verbose=0), _pred(km, x), atol=TOL, rtol=0)
    assert got.optimizer.iterations == 2


def test_user_layer_without_get_config(tmp_path):
    """Keras's auto config: a user's layer whose constructor takes plain values saves without
    get_config; one given a non-plain value must define get_config, and says so."""
    (_, Block), (_, KBlock) = _subclassed_models()
    m = models.Sequential([nncore.Input((5,)), Block(7, name="blk")])
    assert m.layers[0].get_config() == {"name": "blk", "trainable": True, "units": 7}
    m.layers[0].scale[...] = np.arange(5)
    m.save(tmp_path / "b.keras")
    back = models.load_model(tmp_path / "b.keras", custom_objects={"Block": Block})
    x = np.ones((2, 5), np.float32)
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    # its own variable and its Dense's sit where Keras puts them: Keras reads the same model
    k = keras.models.load_model(tmp_path / "b.keras", custom_objects={"Block": KBlock})
    np.testing.assert_allclose(_pred(k, x), m.predict(x, verbose=0), atol=TOL, rtol=0)
    odd = Block(np.int32(3))  # a NumPy scalar is not a plain value (Keras: the same)
    with pytest.raises(NotImplementedError, match="get_config"):
        odd.get_config()


def test_nncore_layer_without_keras_converter_refused(tmp_path):
    """A layer of nncore's own that Keras has no class for is refused by name, not written."""
    from nncore.layers.base import Layer

    class Internal(Layer):
        def compute_output_shape(self, s):
            return s

        def forward(self, x, training=False, need_ctx=False):
            return np.asarray(x, np.float32), None

    Internal.__module__ = "nncore.layers.internal_test"
    m = models.Sequential([nncore.Input((4,)), Internal(name="inner")])
    with pytest.raises(ValueError, match="inner.*converter"):
        m.save(tmp_path / "i.keras")
    assert not (tmp_path / "i.keras").exists()


def test_sequential_built_without_input_layer(rng, tmp_path):
    km = keras.Sequential([KL.Dense(3, activation="relu"), KL.Dense(2)])
    x = rng.normal(size=(4, 5)).astype(np.float32)
    km(x)  # built by a call: the config has build_input_shape and no InputLayer
    km.save(tmp_path / "s.keras")
    ours = models.load_model(tmp_path / "s.keras")
    np.testing.assert_allclose(ours.predict(x, verbose=0), _pred(km, x), atol=TOL, rtol=0)


def test_nested_functional_both_ways(rng, tmp_path):
    """A Functional inside a Functional, called twice (shared weights), in both directions."""
    def build(lib, Lx, Input, Model):
        i = Input((5,))
        sub = Model(i, Lx.Dense(5, activation="tanh")(Lx.Dense(4)(i)), name="sub")
        a = Input((5,), name="a")
        return Model(a, Lx.Dense(2)(Lx.Add()([sub(a), sub(sub(a))])))

    x = rng.normal(size=(4, 5)).astype(np.float32)
    km = build(keras, KL, keras.Input, keras.Model)
    km.save(tmp_path / "k.keras")
    ours = models.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(ours.predict(x, verbose=0), _pred(km, x), atol=TOL, rtol=0)
    mine = build(nncore, layers, nncore.Input, nncore.Model)
    mine.save(tmp_path / "n.keras")
    np.testing.assert_allclose(_pred(keras.models.load_model(tmp_path / "n.keras"), x),
                               mine.predict(x, verbose=0), atol=TOL, rtol=0)
    mine.save(tmp_path / "n.h5")
    np.testing.assert_allclose(_pred(keras.models.load_model(tmp_path / "n.h5"), x),
                               mine.predict(x, verbose=0), atol=TOL, rtol=0)
    km.save(tmp_path / "k.h5")
    np.testing.assert_allclose(models.load_model(tmp_path / "k.h5").predict(x, verbose=0),
                               _pred(km, x), atol=TOL, rtol=0)
