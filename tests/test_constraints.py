"""nncore.constraints: the formulas (float64 references and Keras's own), get/serialize, the layer
arguments, the projection after every optimizer step, and saving."""

from __future__ import annotations

import numpy as np
import pytest

import nncore as keras
from nncore import constraints, layers, optimizers
from conftest import require

EPS = 1e-7


def _norm64(w, axis):
    ax = tuple(axis) if isinstance(axis, list) else (axis,)
    return np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=ax, keepdims=True))


def ref_max_norm(w, m, axis):
    n = _norm64(w, axis)
    return w.astype(np.float64) * (np.clip(n, 0, m) / (EPS + n))


def ref_min_max_norm(w, lo, hi, rate, axis):
    n = _norm64(w, axis)
    return w.astype(np.float64) * ((rate * np.clip(n, lo, hi) + (1 - rate) * n) / (EPS + n))


def ref_unit_norm(w, axis):
    return w.astype(np.float64) / (EPS + _norm64(w, axis))


CASES = [  # (shape, axis)
    ((7, 5), 0), ((7, 5), 1), ((3, 3, 2, 5), [0, 1, 2]), ((11,), 0), ((4, 1, 3), -1),
    ((3, 5, 6), [0, 1]),
]


def _weight(shape, seed=0, scale=2.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("shape,axis", CASES)
def test_formulas_match_float64_references(shape, axis):
    w = _weight(shape)
    w[..., 0] *= 1e-3  # some slices below the bounds, some above
    cases = [
        (constraints.MaxNorm(max_value=1.5, axis=axis), ref_max_norm(w, 1.5, axis)),
        (constraints.MinMaxNorm(0.5, 1.2, 0.7, axis=axis),
         ref_min_max_norm(w, 0.5, 1.2, 0.7, axis)),
        (constraints.MinMaxNorm(axis=axis), ref_min_max_norm(w, 0.0, 1.0, 1.0, axis)),
        (constraints.UnitNorm(axis=axis), ref_unit_norm(w, axis)),
        (constraints.NonNeg(), np.maximum(w.astype(np.float64), 0)),
    ]
    for c, ref in cases:
        out = c(w)
        assert out.dtype == np.float32 and out.shape == w.shape, type(c).__name__
        np.testing.assert_allclose(out, ref, rtol=2e-6, atol=1e-7, err_msg=type(c).__name__)
    # MaxNorm's bound holds; a slice already inside it is left (nearly) as it was.
    out = constraints.MaxNorm(1.5, axis)(w)
    assert np.all(_norm64(out, axis) <= 1.5 * (1 + 1e-6))
    np.testing.assert_allclose(constraints.Constraint()(w), w)


def test_defaults_and_aliases_are_keras3():
    assert constraints.max_norm is constraints.MaxNorm
    assert constraints.min_max_norm is constraints.MinMaxNorm
    assert constraints.non_neg is constraints.NonNeg
    assert constraints.unit_norm is constraints.UnitNorm
    assert keras.constraints.MaxNorm().get_config() == {"max_value": 2, "axis": 0}
    assert constraints.MinMaxNorm().get_config() == {"min_value": 0.0, "max_value": 1.0,
                                                     "rate": 1.0, "axis": 0}
    assert constraints.UnitNorm().get_config() == {"axis": 0}
    assert constraints.NonNeg().get_config() == {}


@pytest.mark.parametrize("shape,axis", CASES)
def test_formulas_match_keras(shape, axis):
    require("tensorflow")
    k = require("keras")
    w = _weight(shape, seed=3)
    for ours, theirs in [
        (constraints.MaxNorm(0.8, axis), k.constraints.MaxNorm(0.8, axis)),
        (constraints.MaxNorm(), k.constraints.MaxNorm()),
        (constraints.MinMaxNorm(0.3, 0.9, 0.5, axis), k.constraints.MinMaxNorm(0.3, 0.9, 0.5,
                                                                               axis)),
        (constraints.UnitNorm(axis), k.constraints.UnitNorm(axis)),
        (constraints.NonNeg(), k.constraints.NonNeg()),
    ]:
        want = np.asarray(k.ops.convert_to_numpy(theirs(k.ops.convert_to_tensor(w))))
        np.testing.assert_allclose(ours(w), want, rtol=1e-6, atol=1e-7,
                                   err_msg=type(ours).__name__)
        assert ours.get_config() == theirs.get_config()


def test_get_serialize_deserialize():
    for name, cls in [("max_norm", constraints.MaxNorm), ("MaxNorm", constraints.MaxNorm),
                      ("non_neg", constraints.NonNeg), ("NonNeg", constraints.NonNeg),
                      ("unit_norm", constraints.UnitNorm), ("min_max_norm",
                                                            constraints.MinMaxNorm)]:
        assert type(constraints.get(name)) is cls
    assert constraints.get(None) is None
    c = constraints.MaxNorm(3, axis=[0, 1])
    assert constraints.get(c) is c
    assert type(constraints.get(constraints.UnitNorm)) is constraints.UnitNorm
    d = constraints.serialize(c)
    assert d == {"class_name": "MaxNorm", "config": {"max_value": 3, "axis": [0, 1]}}
    back = constraints.get(d)
    assert type(back) is constraints.MaxNorm and back.get_config() == c.get_config()
    assert constraints.deserialize(None) is None
    with pytest.raises(ValueError, match="constraint identifier"):
        constraints.get("maxnorm3")
    with pytest.raises(ValueError, match="constraint identifier"):
        constraints.get(3)
    with pytest.raises(ValueError, match="invalid constraint config"):
        constraints.deserialize({"class_name": "Os", "config": {}})
    with pytest.raises(ValueError, match="invalid constraint config"):
        constraints.deserialize({"class_name": "MaxNorm", "config": {"max_valu": 2}})


def test_bad_constraint_arguments():
    with pytest.raises(TypeError, match="MaxNorm: max_value"):
        constraints.MaxNorm("3")
    with pytest.raises(ValueError, match="MaxNorm: max_value"):
        constraints.MaxNorm(-1)
    with pytest.raises(TypeError, match="UnitNorm: axis"):
        constraints.UnitNorm(axis=1.5)
    with pytest.raises(ValueError, match="min_value"):
        constraints.MinMaxNorm(2.0, 1.0)
    with pytest.raises(ValueError, match=r"axis=2 is out of range .* shape \(3, 4\)"):
        constraints.MaxNorm(axis=2)(np.ones((3, 4), np.float32))


def test_bad_layer_arguments_name_the_layer():
    with pytest.raises(ValueError, match=r"layer 'd1' \(Dense\): invalid kernel_constraint"):
        layers.Dense(3, kernel_constraint="max_norm_2", name="d1")
    with pytest.raises(ValueError, match=r"layer 'c1' \(Conv2D\): invalid bias_constraint"):
        layers.Conv2D(2, 3, bias_constraint=5, name="c1")
    with pytest.raises(ValueError, match=r"layer 'e1' \(Embedding\): invalid embeddings_"):
        layers.Embedding(5, 2, embeddings_constraint="nope", name="e1")
    with pytest.raises(ValueError, match=r"layer 'l1' \(LSTM\): invalid recurrent_constraint"):
        layers.LSTM(2, recurrent_constraint={"class_name": "X", "config": {}}, name="l1")
    # A constraint returning the wrong shape is refused at the step, naming the constraint.
    lay = layers.Dense(2, kernel_constraint=lambda w: w[0])
    m = keras.Sequential([keras.Input((3,)), lay])
    m.compile(optimizers.SGD(0.1), "mse")
    with pytest.raises(ValueError, match=r"returned shape \(2,\) for a weight of shape \(3, 2\)"):
        m.train_on_batch(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32))


def _data(rng, n=16, d=6, u=4):
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (rng.standard_normal((n, u)) * 5).astype(np.float32)
    return x, y


def test_fit_bounds_every_step_and_none_is_accepted():
    rng = np.random.default_rng(1)
    x, y = _data(rng, n=32)
    lay = layers.Dense(4, kernel_constraint=constraints.MaxNorm(0.5), bias_constraint=None)
    m = keras.Sequential([keras.Input((6,)), lay])
    m.compile(optimizers.Adam(0.05), "mse")
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(np.linalg.norm(lay.kernel.astype(np.float64), axis=0))

    m.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[Watch()])
    assert len(seen) == 12
    assert all(np.all(n <= 0.5 * (1 + 1e-6)) for n in seen)
    assert max(float(n.max()) for n in seen) > 0.49  # the bound was reached, not avoided
    assert lay.bias_constraint is None and np.abs(lay.bias).max() > 0.3  # bias moved freely
    cfg = lay.get_config()
    assert cfg["kernel_constraint"] == {"class_name": "MaxNorm",
                                        "config": {"max_value": 0.5, "axis": 0}}
    assert cfg["bias_constraint"] is None
    assert layers.Dense(2).get_config()["kernel_constraint"] is None


def test_dense_max_norm_sgd_matches_keras():
    require("tensorflow")
    k = require("keras")
    rng = np.random.default_rng(2)
    x, y = _data(rng)
    w0 = (rng.standard_normal((6, 4)) * 0.8).astype(np.float32)
    b0 = rng.standard_normal(4).astype(np.float32)
    ours = keras.Sequential([keras.Input((6,)), layers.Dense(
        4, kernel_constraint=constraints.MaxNorm(0.5), bias_constraint=constraints.NonNeg())])
    theirs = k.Sequential([k.Input((6,)), k.layers.Dense(
        4, kernel_constraint=k.constraints.MaxNorm(0.5), bias_constraint=k.constraints.NonNeg())])
    ours.set_weights([w0, b0])
    theirs.set_weights([w0, b0])
    ours.compile(optimizers.SGD(0.1, momentum=0.5), "mse")
    theirs.compile(k.optimizers.SGD(0.1, momentum=0.5), "mse")
    for step in range(5):
        lo = ours.train_on_batch(x, y)
        lt = theirs.train_on_batch(x, y)
        np.testing.assert_allclose(lo, float(lt), rtol=1e-5)
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
        assert np.all(np.linalg.norm(ours.layers[0].kernel, axis=0) <= 0.5 * (1 + 1e-6))
        assert np.all(ours.layers[0].bias >= 0)


@pytest.mark.parametrize("opt", ["SGD", "Adam", "RMSprop", "AdamW", "Adagrad", "Nadam",
                                 "Adamax", "Adadelta", "Ftrl", "Lion"])
def test_custom_loop_apply_every_optimizer(opt):
    """opt.apply on layer weights projects constrained ones (as Keras's apply), not others."""
    lay = layers.Dense(3, kernel_constraint=constraints.UnitNorm(), bias_constraint="non_neg")
    lay.build((None, 5))
    lay.set_weights([_weight((5, 3), 4), -np.ones(3, np.float32)])
    o = getattr(optimizers, opt)(learning_rate=0.1)
    loose = _weight((5, 3), 5)
    grads = [_weight((5, 3), 6), np.ones(3, np.float32)]
    o.apply([lay.kernel, lay.bias, loose], grads + [grads[0]], [None] * 3)
    np.testing.assert_allclose(np.linalg.norm(lay.kernel, axis=0), 1.0, rtol=1e-6)
    assert np.all(lay.bias == 0)
    assert np.linalg.norm(loose, axis=0).max() > 1.5  # an unconstrained array is left alone


def test_constraint_follows_the_update_and_ema():
    """w <- c(update(w)) exactly, after the EMA step (Keras's order)."""
    lay = layers.Dense(3, kernel_constraint=constraints.MaxNorm(0.3))
    lay.build((None, 4))
    w0 = _weight((4, 3), 8)
    lay.set_weights([w0, np.zeros(3, np.float32)])
    g = _weight((4, 3), 9)
    free = w0.copy()
    optimizers.SGD(0.05).apply([free], [g], [None])
    o = optimizers.SGD(0.05, use_ema=True, ema_momentum=0.9)
    o.apply([lay.kernel], [g], [None])
    np.testing.assert_array_equal(lay.kernel, constraints.MaxNorm(0.3)(free))
    np.testing.assert_array_equal(o._entry(lay.kernel).ema, free)  # the EMA saw the update


def test_non_trainable_weights_are_not_constrained():
    class Two(layers.Layer):
        def build(self, input_shape):
            self.a = self.add_weight(shape=(3,), initializer="ones", constraint="non_neg")
            self.f = self.add_weight(shape=(3,), initializer="ones", constraint="non_neg",
                                     trainable=False)

        def call(self, x):
            return x * self.a + self.f

    lay = Two()
    lay.build((None, 3))
    big = np.full(3, 10.0, np.float32)
    optimizers.SGD(1.0).apply([lay.a, lay.f], [big, big], [None, None])
    np.testing.assert_array_equal(lay.a, 0.0)  # projected
    np.testing.assert_array_equal(lay.f, -9.0)  # a non-trainable weight never is
    # add_weight's constraint works in fit too (a user layer).
    m = keras.Sequential([keras.Input((3,)), Two()])
    m.compile(optimizers.SGD(0.5), "mse")
    m.fit(np.ones((8, 3), np.float32), np.full((8, 3), -5.0, np.float32), epochs=3, verbose=0)
    assert np.all(m.layers[0].a >= 0) and m.layers[0].a.min() == 0.0


def test_user_constraint_subclass(tmp_path):
    class Clip(constraints.Constraint):
        def __init__(self, c=0.1):
            self.c = c

        def __call__(self, w):
            return np.clip(w, -self.c, self.c)

        def get_config(self):
            return {"c": self.c}

    keras.saving.register_keras_serializable("ConstrTest")(Clip)
    lay = layers.Dense(3, kernel_constraint=Clip(0.05))
    m = keras.Sequential([keras.Input((4,)), lay])
    m.compile(optimizers.SGD(0.5), "mse")
    x, y = _data(np.random.default_rng(3), d=4, u=3)
    m.fit(x, y, epochs=2, verbose=0)
    assert np.abs(lay.kernel).max() <= 0.05 and np.abs(lay.kernel).max() == np.float32(0.05)
    d = constraints.serialize(Clip(0.2))
    assert d["config"] == {"c": 0.2}
    back = constraints.deserialize(d, custom_objects={d["class_name"]: Clip})
    assert isinstance(back, Clip) and back.c == 0.2
    # nncore's own format keeps a registered user constraint; a Keras file cannot name it.
    m.save(tmp_path / "clip.nnc")
    again = keras.models.load_model(tmp_path / "clip.nnc").layers[0].kernel_constraint
    assert isinstance(again, Clip) and again.c == 0.05
    with pytest.raises(ValueError, match=r"kernel_constraint 'ConstrTest>Clip' is not one of "):
        m.save(tmp_path / "clip.keras")


def _one_step(layer, x, y, loss="mse"):
    m = keras.Sequential([keras.Input(x.shape[1:]), layer])
    m.compile(optimizers.SGD(0.5), loss)
    m.train_on_batch(x, y)
    return m


def test_other_layers_take_and_apply_constraints():
    rng = np.random.default_rng(4)
    mx = constraints.MaxNorm(0.2, axis=[0, 1, 2])
    c2 = layers.Conv2D(3, 3, kernel_constraint=mx, bias_constraint="non_neg")
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    _one_step(c2, x, np.full((2, 4, 4, 3), -9.0, np.float32))
    assert np.all(_norm64(c2.kernel, [0, 1, 2]) <= 0.2 * (1 + 1e-6)) and np.all(c2.bias >= 0)
    assert c2.get_config()["kernel_constraint"]["config"]["axis"] == [0, 1, 2]

    c1 = layers.Conv1D(2, 3, kernel_constraint=constraints.UnitNorm([0, 1]))
    _one_step(c1, rng.standard_normal((2, 7, 3)).astype(np.float32),
              rng.standard_normal((2, 5, 2)).astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(c1.kernel.reshape(-1, 2), axis=0), 1, rtol=1e-6)

    ct = layers.Conv2DTranspose(2, 3, kernel_constraint="non_neg", bias_constraint="non_neg")
    _one_step(ct, x, np.full((2, 8, 8, 2), -9.0, np.float32))
    assert ct.kernel.min() >= 0 and ct.bias.min() == 0
    assert ct.get_config()["bias_constraint"] == {"class_name": "NonNeg", "config": {}}

    emb = layers.Embedding(7, 3, embeddings_constraint=constraints.MaxNorm(0.1, axis=1))
    m = keras.Sequential([keras.Input((4,), dtype="int32"), emb, layers.Flatten()])
    m.compile(optimizers.SGD(1.0), "mse")
    m.train_on_batch(rng.integers(0, 7, (5, 4)).astype(np.int32),
                     np.full((5, 12), 3.0, np.float32))
    assert np.all(np.linalg.norm(emb.embeddings, axis=1) <= 0.1 * (1 + 1e-6))
    assert emb.get_config()["embeddings_constraint"]["class_name"] == "MaxNorm"

    for cls in (layers.SimpleRNN, layers.LSTM, layers.GRU):
        r = cls(3, kernel_constraint="unit_norm", recurrent_constraint=constraints.MaxNorm(0.3),
                bias_constraint="non_neg")
        _one_step(r, rng.standard_normal((2, 5, 4)).astype(np.float32),
                  np.full((2, 3), -2.0, np.float32))
        np.testing.assert_allclose(np.linalg.norm(r.kernel, axis=0), 1, rtol=1e-6)
        assert np.all(np.linalg.norm(r.recurrent_kernel, axis=0) <= 0.3 * (1 + 1e-6))
        assert r.bias.min() >= 0
        cfg = r.get_config()
        assert cfg["recurrent_constraint"] == {"class_name": "MaxNorm",
                                               "config": {"max_value": 0.3, "axis": 0}}
        assert type(cls.from_config(cfg).kernel_constraint) is constraints.UnitNorm


@pytest.mark.parametrize("cls", ["BatchNormalization", "LayerNormalization",
                                 "GroupNormalization"])
def test_normalization_gamma_beta_constraints(cls):
    kw = {"groups": 2} if cls == "GroupNormalization" else {}
    lay = getattr(layers, cls)(gamma_constraint=constraints.MaxNorm(0.5),
                               beta_constraint="non_neg", **kw)
    rng = np.random.default_rng(7)
    _one_step(lay, rng.standard_normal((8, 4)).astype(np.float32),
              np.full((8, 4), -3.0, np.float32))
    assert np.linalg.norm(lay.gamma) <= 0.5 * (1 + 1e-6) and lay.beta.min() == 0.0
    cfg = lay.get_config()
    assert cfg["beta_constraint"] == {"class_name": "NonNeg", "config": {}}
    back = type(lay).from_config(cfg)
    assert back.gamma_constraint.get_config() == {"max_value": 0.5, "axis": 0}
    with pytest.raises(ValueError, match=rf"layer 'n1' \({cls}\): invalid gamma_constraint"):
        getattr(layers, cls)(gamma_constraint="nope", name="n1", **kw)


def test_depthwise_and_separable_constraints(tmp_path):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    dw = layers.DepthwiseConv2D(3, depth_multiplier=2, bias_constraint="non_neg",
                                depthwise_constraint=constraints.MaxNorm(0.1, [0, 1]))
    _one_step(dw, x, np.full((2, 4, 4, 6), -5.0, np.float32))
    assert np.all(_norm64(dw.depthwise_kernel, [0, 1]) <= 0.1 * (1 + 1e-6))
    assert dw.bias.min() == 0.0
    sep = layers.SeparableConv2D(4, 3, depthwise_constraint="non_neg",
                                 pointwise_constraint=constraints.UnitNorm([0, 1, 2]),
                                 bias_constraint="non_neg")
    m = _one_step(sep, x, np.full((2, 4, 4, 4), -5.0, np.float32))
    assert sep.depthwise_kernel.min() >= 0 and sep.bias.min() == 0.0
    np.testing.assert_allclose(_norm64(sep.pointwise_kernel, [0, 1, 2]), 1, rtol=1e-6)
    with pytest.raises(ValueError, match=r"layer 's1' \(SeparableConv2D\): invalid pointwise"):
        layers.SeparableConv2D(2, 3, pointwise_constraint=7, name="s1")
    require("h5py")  # the round trip through a .keras file
    m.save(tmp_path / "sep.keras")
    back = keras.models.load_model(tmp_path / "sep.keras").layers[0]
    assert type(back.depthwise_constraint) is constraints.NonNeg
    assert back.pointwise_constraint.get_config() == {"axis": [0, 1, 2]}
    assert type(back.bias_constraint) is constraints.NonNeg


def test_copies_and_pickles_keep_constraining():
    import copy
    import pickle

    m = keras.Sequential([keras.Input((4,)), layers.Dense(3, kernel_constraint="non_neg")])
    for m2 in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        m2.compile(optimizers.SGD(1.0), "mse")
        m2.train_on_batch(np.ones((2, 4), np.float32), np.full((2, 3), -10.0, np.float32))
        assert m2.layers[0].kernel.min() == 0.0
        assert type(m2.layers[0].kernel_constraint) is constraints.NonNeg


def test_wrapped_layer_keeps_its_constraints():
    inner = layers.LSTM(3, kernel_constraint=constraints.MaxNorm(0.2), return_sequences=True)
    bi = layers.Bidirectional(inner)
    rng = np.random.default_rng(8)
    _one_step(bi, rng.standard_normal((2, 4, 5)).astype(np.float32),
              np.full((2, 4, 6), 3.0, np.float32))
    kernels = [w for w, n in zip(bi.weights, bi._all_weight_names())
               if n.endswith("/kernel") and "recurrent" not in n]
    assert len(kernels) == 2
    for k in kernels:
        assert np.all(np.linalg.norm(k, axis=0) <= 0.2 * (1 + 1e-6))


def test_threads_bitwise_equal():
    rng = np.random.default_rng(5)
    x, y = _data(rng, n=64, d=33, u=17)
    out = []
    before = keras.get_num_threads()
    try:
        for n in (1, 2):
            keras.set_num_threads(n)
            keras.utils.set_random_seed(0)
            m = keras.Sequential([keras.Input((33,)), layers.Dense(
                17, kernel_constraint=constraints.MinMaxNorm(0.1, 0.4, 0.8))])
            m.compile(optimizers.Adam(0.05), "mse")
            m.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
            out.append(m.get_weights())
    finally:
        keras.set_num_threads(before)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def _constrained_model():
    return keras.Sequential([
        keras.Input((5,)),
        layers.Dense(4, kernel_constraint=constraints.MaxNorm(3), bias_constraint="non_neg"),
        layers.Dense(2, kernel_constraint=constraints.MinMaxNorm(0.2, 0.6, 0.5, axis=[0]))])


def _check_loaded(m):
    k0, k1 = m.layers[0].kernel_constraint, m.layers[1].kernel_constraint
    assert type(k0) is constraints.MaxNorm and k0.get_config() == {"max_value": 3, "axis": 0}
    assert type(m.layers[0].bias_constraint) is constraints.NonNeg
    assert k1.get_config() == {"min_value": 0.2, "max_value": 0.6, "rate": 0.5, "axis": [0]}
    # and it keeps constraining after loading
    m.compile(optimizers.SGD(1.0), "mse")
    x, y = _data(np.random.default_rng(6), d=5, u=2)
    m.train_on_batch(x, y * 20)
    assert np.all(np.linalg.norm(m.layers[0].kernel, axis=0) <= 3 * (1 + 1e-6))
    assert m.layers[0].bias.min() >= 0


@pytest.mark.parametrize("ext", ["nnc", "keras", "h5"])
def test_round_trip_files(tmp_path, ext):
    if ext != "nnc":  # .keras holds its weights in an HDF5 file too
        require("h5py")
    m = _constrained_model()
    path = tmp_path / f"m.{ext}"
    m.save(path)
    back = keras.models.load_model(path)
    for a, b in zip(m.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    _check_loaded(back)


# TensorFlow 2.21's tensors predate NumPy 2's __array__(copy=) protocol: Keras's h5 writer warns.
@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_file_entry_and_keras_written_file(tmp_path):
    require("tensorflow")
    k = require("keras")
    import json
    import zipfile

    ours = _constrained_model()
    ours.save(tmp_path / "ours.keras")
    with zipfile.ZipFile(tmp_path / "ours.keras") as z:
        cfg = json.loads(z.read("config.json"))
    lay = cfg["config"]["layers"][-2]["config"] if cfg["config"]["layers"][0][
        "class_name"] != "InputLayer" else cfg["config"]["layers"][1]["config"]
    assert lay["kernel_constraint"] == {"module": "keras.constraints", "class_name": "MaxNorm",
                                        "config": {"max_value": 3, "axis": 0},
                                        "registered_name": None}
    km = k.models.load_model(tmp_path / "ours.keras")  # Keras reads what we write
    assert km.layers[0].kernel_constraint.get_config() == {"max_value": 3, "axis": 0}

    theirs = k.Sequential([
        k.Input((5,)),
        k.layers.Dense(4, kernel_constraint=k.constraints.MaxNorm(3),
                       bias_constraint=k.constraints.NonNeg()),
        k.layers.Dense(2, kernel_constraint=k.constraints.MinMaxNorm(0.2, 0.6, 0.5, axis=[0]))])
    for ext in ("keras", "h5"):
        if ext == "h5":
            require("h5py")
        path = tmp_path / f"theirs.{ext}"
        theirs.save(path)
        _check_loaded(keras.models.load_model(path))
