"""User code on the model core: custom layers (build/add_weight/call, nested layers, add_loss,
get_config), custom losses (functions and Loss subclasses), Metric subclasses, subclassed
models, and custom objects in saving -- with Keras parity where Keras defines the numbers."""

from __future__ import annotations

import numpy as np
import pytest

import nncore as keras
from nncore import ops
from nncore import layers
from conftest import require


# ---- user code, written as for Keras ------------------------------------------------------------
def _user_classes(K, O, register=False):
    """The same user classes against a Keras-like namespace K and its ops O."""

    class MyDense(K.layers.Layer):
        def __init__(self, units, activation=None, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.activation = activation

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                     initializer="glorot_uniform", trainable=True, name="w")
            self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True,
                                     name="b")

        def call(self, inputs):
            y = O.matmul(inputs, self.w) + self.b
            return O.relu(y) if self.activation == "relu" else y

        def get_config(self):
            return {**super().get_config(), "units": self.units, "activation": self.activation}

    class Block(K.layers.Layer):
        """Nested layers as attributes, an activity penalty, ops between them."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.inner = MyDense(units, activation="relu")
            self.proj = K.layers.Dense(units)

        def call(self, inputs):
            h = self.inner(inputs)
            self.add_loss(0.01 * O.mean(O.square(h)))
            return O.tanh(self.proj(h)) * 0.5 + h

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class Net(K.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.d1 = K.layers.Dense(6, activation="tanh")
            self.d2 = MyDense(3)

        def call(self, inputs, training=None):
            h = self.d1(inputs)
            return self.d2(O.concatenate([h, O.square(h)], axis=-1))

    if register:
        reg = K.saving.register_keras_serializable(package="test_custom")
        MyDense = reg(MyDense)
        Block = reg(Block)
    return MyDense, Block, Net


def _loss_fn(O):
    def scaled_huber(y_true, y_pred):
        d = O.abs(y_pred - y_true)
        quad = O.minimum(d, 1.0)
        return O.mean(0.5 * O.square(quad) + (d - quad), axis=-1)

    return scaled_huber


def _loss_class(K, O):
    class WeightedSquare(K.losses.Loss):
        def __init__(self, scale=2.0, name="weighted_square", **kwargs):
            super().__init__(name=name, **kwargs)
            self.scale = scale

        def call(self, y_true, y_pred):
            return self.scale * O.mean(O.square(y_pred - y_true), axis=-1) + O.mean(
                O.abs(y_pred), axis=-1) * 0.1

    return WeightedSquare


def _metric_class(K, O):
    class MeanAbsPlusOne(K.metrics.Metric):
        def __init__(self, name="mean_abs_plus_one", **kwargs):
            super().__init__(name=name, **kwargs)
            self.total = self.add_variable(shape=(), initializer="zeros", name="total")
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")

        def update_state(self, y_true, y_pred, sample_weight=None):
            err = O.abs(O.convert_to_tensor(y_pred) - O.convert_to_tensor(y_true))
            self.total.assign_add(O.sum(err))
            self.count.assign_add(O.cast(O.size(err), "float32"))

        def result(self):
            return self.total / self.count + 1.0

    return MeanAbsPlusOne


def _data(rng, n=48, f=5, out=3):
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = (np.tanh(x[:, :out] * 1.5) + 0.1 * rng.normal(size=(n, out))).astype(np.float32)
    return x, y


def _keras():
    require("tensorflow")
    import keras as tk

    return tk


def _fit_both(build, rng, loss_ours, loss_keras, metrics_ours=None, metrics_keras=None,
              epochs=2, x=None, y=None):
    """Build the model in both libraries (build(K, O) -> model, with the same initial weights),
    train each with SGD for `epochs` without shuffling; return (ours, theirs, histories)."""
    tk = _keras()
    if x is None:
        x, y = _data(rng)
    ours = build(keras, ops)
    theirs = build(tk, tk.ops)
    ours(x[:2])
    theirs(x[:2])
    assert len(ours.get_weights()) == len(theirs.get_weights())
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.shape == b.shape
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss_ours, metrics=metrics_ours)
    theirs.compile(optimizer=tk.optimizers.SGD(0.1), loss=loss_keras, metrics=metrics_keras)
    h1 = ours.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0).history
    h2 = theirs.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0).history
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
    for k in h2:
        np.testing.assert_allclose(h1[k], h2[k], rtol=2e-3, err_msg=k)
    return ours, theirs, h1


def _functional(kind):
    def build(K, O):
        MyDense, Block, Net = _user_classes(K, O)
        inp = K.Input((5,))
        if kind == "dense":
            h = MyDense(8, activation="relu")(inp)
            out = K.layers.Dense(3)(h)
        elif kind == "block":
            out = K.layers.Dense(3)(Block(4)(inp))
        else:
            out = K.layers.Dense(3)(inp)
        return K.Model(inp, out)

    return build


# ---- Keras parity -------------------------------------------------------------------------------
def test_custom_layer_matches_keras(rng):
    ours, _, h = _fit_both(_functional("dense"), rng, "mse", "mse")
    assert [type(lay).__name__ for lay in ours.layers] == ["InputLayer", "MyDense", "Dense"]
    assert h["loss"][1] < h["loss"][0]


def test_nested_layers_and_add_loss_match_keras(rng):
    ours, theirs, _ = _fit_both(_functional("block"), rng, "mse", "mse")
    block = ours.layers[1]
    assert len(block.weights) == 4 and len(block.trainable_weights) == 4
    assert [w.shape for w in block.weights] == [(5, 4), (4,), (4, 4), (4,)]
    x, y = _data(rng, n=8)
    tk = _keras()
    # evaluate reports the activity penalty inside the loss, as Keras does
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0),
                               theirs.evaluate(x, y, verbose=0), rtol=2e-4)
    del tk


def test_custom_loss_function_matches_keras(rng):
    tk = _keras()
    _fit_both(_functional("plain"), rng, _loss_fn(ops), _loss_fn(tk.ops))


def test_loss_subclass_matches_keras(rng):
    tk = _keras()
    _fit_both(_functional("plain"), rng, _loss_class(keras, ops)(scale=1.5),
              _loss_class(tk, tk.ops)(scale=1.5))


def test_metric_subclass_matches_keras(rng):
    tk = _keras()
    ours, _, h = _fit_both(_functional("plain"), rng, "mse", "mse",
                           [_metric_class(keras, ops)()], [_metric_class(tk, tk.ops)()])
    assert "mean_abs_plus_one" in h and h["mean_abs_plus_one"][0] > 1.0
    x, y = _data(rng, n=16)
    res = ours.evaluate(x, y, verbose=0, return_dict=True)
    pred = ours.predict(x, verbose=0)
    assert res["mean_abs_plus_one"] == pytest.approx(float(np.mean(np.abs(pred - y))) + 1.0,
                                                     rel=1e-5)


def test_subclassed_model_matches_keras(rng):
    def build(K, O):
        return _user_classes(K, O)[2]()

    ours, _, _ = _fit_both(build, rng, "mse", "mse")
    assert [type(lay).__name__ for lay in ours.layers] == ["Dense", "MyDense"]
    x, _ = _data(rng, n=4)
    np.testing.assert_allclose(ours.predict(x, verbose=0), ours(x), rtol=1e-6)


# ---- gradients ----------------------------------------------------------------------------------
def test_custom_dense_gradients_equal_builtin_dense(rng):
    MyDense = _user_classes(keras, ops)[0]
    x, y = _data(rng, n=20)
    inp = keras.Input((5,))
    a = keras.Model(inp, layers.Dense(3)(MyDense(7, activation="relu")(inp)))
    inp2 = keras.Input((5,))
    b = keras.Model(inp2, layers.Dense(3)(layers.Dense(7, activation="relu")(inp2)))
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile("sgd", "mse")
    la, ga = a._gradients(x, y)
    lb, gb = b._gradients(x, y)
    assert la == pytest.approx(lb, rel=1e-6)
    for u, v in zip(ga, gb):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)


def test_custom_layer_gradients_match_finite_differences(rng):
    keras.utils.set_random_seed(3)
    Block = _user_classes(keras, ops)[1]
    x, y = _data(rng, n=6, out=4)
    inp = keras.Input((5,))
    model = keras.Model(inp, Block(4)(inp))
    model.compile("sgd", "mse")
    _, grads = model._gradients(x, y)
    weights = model.get_weights()

    def loss_at(ws):
        model.set_weights(ws)
        return model.evaluate(x, y, batch_size=len(x), verbose=0)

    eps = 1e-3
    for k in range(len(weights)):
        for idx in list(np.ndindex(weights[k].shape))[:6]:
            up = [w.astype(np.float64).copy() for w in weights]
            down = [w.astype(np.float64).copy() for w in weights]
            up[k][idx] += eps
            down[k][idx] -= eps
            num = (loss_at(up) - loss_at(down)) / (2 * eps)
            assert grads[k][idx] == pytest.approx(num, rel=2e-2, abs=5e-4), (k, idx)
    model.set_weights(weights)


def test_training_argument_reaches_call(rng):
    class Noise(keras.layers.Layer):
        def call(self, inputs, training=None):
            return inputs * 3.0 if training else inputs

    layer = Noise()
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer(x, training=True), 3 * x)


def test_compute_output_shape_and_layer_without_build(rng):
    class Scale(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.s = self.add_weight(shape=(), initializer="ones", name="s")

        def call(self, x):
            return ops.reshape(x * self.s, (-1, 2, 3))

    inp = keras.Input((6,))
    out = Scale()(inp)
    assert out.shape == (None, 2, 3)
    m = keras.Model(inp, out)
    assert m.count_params() == 1
    m.compile("sgd", "mse")
    x = rng.normal(size=(4, 6)).astype(np.float32)
    _, g = m._gradients(x, np.zeros((4, 2, 3), np.float32))
    np.testing.assert_allclose(g[0], np.mean(2 * x * x), rtol=1e-5)


# ---- saving -------------------------------------------------------------------------------------
def _saved_model(tmp_path, rng, register):
    MyDense, Block, _ = _user_classes(keras, ops, register=register)
    inp = keras.Input((5,))
    out = layers.Dense(2)(Block(4)(MyDense(3, activation="relu", name="mine")(inp)))
    model = keras.Model(inp, out)
    model.compile("sgd", "mse")
    x, _ = _data(rng, n=8)
    path = tmp_path / "m.nncore"
    model.save(path)
    return model, path, x, (MyDense, Block)


def test_registered_custom_layers_save_and_load(tmp_path, rng):
    model, path, x, _ = _saved_model(tmp_path, rng, register=True)
    again = keras.saving.load_model(path)
    assert type(again.get_layer("mine")).__name__ == "MyDense"
    assert again.get_layer("mine").units == 3
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


def test_custom_objects_and_scope(tmp_path, rng):
    model, path, x, (MyDense, Block) = _saved_model(tmp_path, rng, register=False)
    with pytest.raises(ValueError, match="MyDense"):
        keras.saving.load_model(path)
    objs = {"MyDense": MyDense, "Block": Block}
    again = keras.saving.load_model(path, custom_objects=objs)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
    with keras.saving.custom_object_scope(objs):
        scoped = keras.saving.load_model(path)
    np.testing.assert_allclose(scoped.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


def test_subclassed_model_save_and_load_weights(tmp_path, rng):
    require("h5py")  # a Keras .weights.h5 file
    Net = _user_classes(keras, ops)[2]
    x, y = _data(rng, n=16)
    a = Net()
    a.compile("adam", "mse")
    a.fit(x, y, epochs=1, verbose=0)
    a.save_weights(tmp_path / "w.weights.h5")
    b = Net()
    b(x[:1])
    b.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_allclose(b.predict(x, verbose=0), a.predict(x, verbose=0), rtol=1e-6)
    assert a.evaluate(x, y, verbose=0) == pytest.approx(
        (b.compile("adam", "mse"), b.evaluate(x, y, verbose=0))[1], rel=1e-6)


def test_subclassed_model_with_dropout_and_python_branch_on_training(rng):
    class WithDropout(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(4)
            self.drop = layers.Dropout(0.5)

        def call(self, x, training=None):
            return self.drop(self.d(x), training=training)

    class Branchy(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(4)

        def call(self, x, training=None):
            h = self.d(x)
            return ops.relu(h) if training else h

    x, _ = _data(rng, n=8)
    m = WithDropout()
    out = m.predict(x, verbose=0)
    np.testing.assert_allclose(out, x @ m.get_weights()[0] + m.get_weights()[1], rtol=1e-5,
                               atol=1e-6)
    m.compile("sgd", "mse")
    m.fit(x, out, epochs=1, verbose=0)
    with pytest.raises(NotImplementedError, match="training"):
        Branchy().predict(x, verbose=0)


@pytest.mark.parametrize("variant", ["relu", "bias", "bias_first", "reused", "3d"])
def test_dense_fusion_in_traces_changes_nothing(rng, variant, monkeypatch):
    from nncore.ops import _graph

    class L(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 4), name="w")
            self.b = self.add_weight(shape=(4,), initializer="random_normal", name="b")

        def call(self, x):
            if variant == "bias_first":
                return ops.relu(self.b + ops.matmul(x, self.w))
            z = ops.matmul(x, self.w) + self.b
            if variant == "reused":
                return ops.relu(z) + z * 0.5
            return z if variant == "bias" else ops.relu(z)

    shape = (3, 5) if variant == "3d" else (5,)
    x = rng.normal(size=(7,) + shape).astype(np.float32)
    results = []
    for fuse in (True, False):
        monkeypatch.setattr(_graph, "FUSE", fuse)
        keras.utils.set_random_seed(1)
        inp = keras.Input(shape)
        layer = L()
        model = keras.Model(inp, layer(inp))
        model.compile("sgd", "mse")
        graph = layer._traces[next(iter(layer._traces))]
        names = [getattr(s[0], "op", s[0]).name for s in graph._steps]
        loss, grads = model._gradients(x, np.ones(x.shape[:-1] + (4,), np.float32))
        results.append((model.predict(x, verbose=0), loss, grads, names))
    (y1, l1, g1, n1), (y2, l2, g2, n2) = results
    assert n2[0] == "matmul" and ("dense_bias" in n1[0])
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-6)
    assert l1 == pytest.approx(l2, rel=1e-6)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_loss_function_equals_builtin_mse_with_sample_weights(rng):
    def my_mse(y_true, y_pred):
        return ops.mean(ops.square(y_pred - y_true), axis=-1)

    x, y = _data(rng, n=12)
    sw = rng.uniform(0.1, 2.0, size=12).astype(np.float32)
    models_ = []
    for loss in (my_mse, "mse"):
        keras.utils.set_random_seed(5)
        m = _functional("plain")(keras, ops)
        m.compile("sgd", loss)
        models_.append(m)
    models_[1].set_weights(models_[0].get_weights())
    (la, ga), (lb, gb) = (m._gradients(x, y, sample_weight=sw) for m in models_)
    assert la == pytest.approx(lb, rel=1e-6)
    for u, v in zip(ga, gb):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)
    assert models_[0].evaluate(x, y, sample_weight=sw, verbose=0) == pytest.approx(
        models_[1].evaluate(x, y, sample_weight=sw, verbose=0), rel=1e-6)


def test_loss_subclass_sum_reduction_and_refusals():
    class SumSq(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return ops.sum(ops.square(y_pred - y_true), axis=-1)

    from nncore.trainers.custom_loss import FunctionLoss, resolve

    loss = resolve(SumSq(reduction="sum"))
    assert isinstance(loss, FunctionLoss) and loss.reduction == "sum"
    out = np.array([[1.0, 2.0], [0.0, 1.0]], np.float32)
    per, d = loss.compute(out, np.zeros_like(out), True)
    assert float(np.mean(per)) == pytest.approx(6.0)  # the sum over the batch
    np.testing.assert_allclose(d, 2 * out)
    with pytest.raises(ValueError, match="reduction"):
        FunctionLoss(lambda t, p: p, reduction="none")
    bad = FunctionLoss(lambda t, p: ops.sum(t, axis=-1))
    with pytest.raises(ValueError, match="y_pred"):
        bad.compute(out, out, True)
