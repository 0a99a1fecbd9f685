"""Axes of unknown length (Input(shape=(None,)), Input((None, None, 3))), as Keras allows: the
graph is built with None dims, every run takes its sizes from the data. The results equal a
model built for the fixed size with the same weights (bitwise: the same kernels run), and an
input too small for a 'valid' kernel is refused naming the layer and the shape."""

from __future__ import annotations

import nncore
import numpy as np
import pytest
from conftest import require
from nncore import layers


def _text(lib, L, steps=None):
    inp = lib.Input(shape=(steps,), dtype="int64")
    x = L.Embedding(300, 12)(inp)
    x = L.Conv1D(10, 5, padding="valid", activation="relu", strides=2)(x)
    x = L.Conv1D(8, 3, padding="causal", activation="relu")(x)
    x = L.MaxPooling1D(2)(x)
    x = L.Cropping1D((1, 1))(L.UpSampling1D(2)(L.ZeroPadding1D(1)(x)))
    x = L.GlobalMaxPooling1D()(x)
    return lib.Model(inp, L.Dense(1, activation="sigmoid")(x))


def _fcn(lib, L, hw=(None, None)):
    inp = lib.Input(shape=hw + (3,))
    y = L.Conv2D(6, 3, activation="relu")(inp)
    y = L.MaxPooling2D(padding="same")(y)
    y = L.DepthwiseConv2D(3, padding="same")(y)
    y = L.SeparableConv2D(5, 3, strides=2, padding="same")(y)
    y = L.Conv2DTranspose(4, 3, strides=2)(y)
    y = L.AveragePooling2D(2, padding="same")(y)
    y = L.UpSampling2D(interpolation="bilinear")(L.ZeroPadding2D(1)(y))
    y = L.Cropping2D(((1, 0), (0, 2)))(y)
    y = L.GlobalAveragePooling2D()(y)
    return lib.Model(inp, L.Dense(2)(y))


def _seq(lib, L, steps=None):
    inp = lib.Input(shape=(steps, 6))
    e = L.Bidirectional(L.GRU(5, return_sequences=True))(inp)
    e = L.TimeDistributed(L.Dense(4))(e)
    e = L.LayerNormalization()(e)
    e = L.LSTM(3, return_sequences=True)(e)
    e = L.AveragePooling1D(2, padding="same")(e)
    e = L.GlobalAveragePooling1D()(e)
    return lib.Model(inp, L.Dense(1)(e))


def _data(kind, rng, n, size):
    if kind == "text":
        return rng.integers(0, 300, size=(n, size))
    if kind == "fcn":
        return rng.normal(size=(n,) + size + (3,)).astype(np.float32)
    return rng.normal(size=(n, size, 6)).astype(np.float32)


CASES = {"text": (_text, [40, 23]), "fcn": (_fcn, [(17, 12), (9, 9)]), "seq": (_seq, [7, 12])}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_unknown_axes_equal_fixed_twin(kind, rng):
    build, sizes = CASES[kind]
    model = build(nncore, layers)
    model.compile(optimizer="adam", loss="mse")
    for size in sizes:
        twin = build(nncore, layers, size if kind != "fcn" else size)
        twin.set_weights(model.get_weights())
        x = _data(kind, rng, 4, size)
        np.testing.assert_array_equal(model.predict(x, verbose=0), twin.predict(x, verbose=0))
        np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(twin(x)))
    # one training step on each size from the same weights: the same weights after it
    for size in sizes:
        twin = build(nncore, layers, size)
        twin.set_weights(model.get_weights())
        twin.compile(optimizer="adam", loss="mse")
        fresh = build(nncore, layers)
        fresh.set_weights(model.get_weights())
        fresh.compile(optimizer="adam", loss="mse")
        x, y = _data(kind, rng, 6, size), rng.normal(size=(6, model.output_shape[-1]))
        fresh.fit(x, y, batch_size=6, epochs=1, verbose=0, shuffle=False)
        twin.fit(x, y, batch_size=6, epochs=1, verbose=0, shuffle=False)
        for a, b in zip(fresh.get_weights(), twin.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind,size,where", [("text", 3, "conv1d"), ("text", 6, "max_pooling1d"),
                                             ("fcn", (2, 5), "conv2d")])
def test_too_small_input_names_the_layer(kind, size, where, rng):
    build, _ = CASES[kind]
    model = build(nncore, layers)
    model.compile(optimizer="adam", loss="mse")
    x = _data(kind, rng, 2, size)
    for run in (lambda: model.predict(x, verbose=0), lambda: model(x),
                lambda: model.evaluate(x, np.zeros((2, model.output_shape[-1])), verbose=0)):
        with pytest.raises(ValueError, match=rf"layer '{where}[_0-9]*' .*(shorter|smaller)"):
            run()


def test_symbolic_shapes_keep_none():
    m = _fcn(nncore, layers)
    assert [tuple(lay.output.shape) for lay in m.layers[1:6]] == [
        (None, None, None, 6), (None, None, None, 6), (None, None, None, 6),
        (None, None, None, 5), (None, None, None, 4)]
    assert _text(nncore, layers).layers[2].output.shape == (None, None, 10)
    with pytest.raises(ValueError, match="channels"):
        layers.Conv2D(3, 3)(nncore.Input((None, None, None)))


# TensorFlow 2.21's tensors predate NumPy 2's __array__(copy=) protocol: Keras's own calls warn.
@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
@pytest.mark.parametrize("kind", sorted(CASES))
def test_keras_parity_unknown_axes(kind, rng, tmp_path):
    keras = require("keras", minversion="3.0")
    require("tensorflow")
    build, sizes = CASES[kind]
    km = build(keras, keras.layers)
    ours = build(nncore, layers)
    ours.set_weights(km.get_weights())
    km.save(tmp_path / "k.keras")
    for size in sizes:
        # Keras's own call: Keras 3.15's predict at a second sequence length can reuse the
        # first length's traced function and give other numbers (seen with the "seq" model)
        x = _data(kind, rng, 3, size)
        np.testing.assert_allclose(ours.predict(x, verbose=0), np.asarray(km(x)),
                                   rtol=1e-4, atol=2e-5)
    back = nncore.models.load_model(tmp_path / "k.keras")
    assert back.inputs[0].shape == ours.inputs[0].shape
    ours.save(tmp_path / "n.keras")
    kb = keras.models.load_model(tmp_path / "n.keras")
    x = _data(kind, rng, 2, sizes[-1])
    np.testing.assert_allclose(np.asarray(kb(x)), ours.predict(x, verbose=0),
                               rtol=1e-4, atol=2e-5)
    np.testing.assert_array_equal(back.predict(x, verbose=0),
                                  nncore.models.load_model(tmp_path / "n.keras").predict(
                                      x, verbose=0))


@pytest.mark.parametrize("kind", sorted(CASES))
def test_onnx_dynamic_axes(kind, rng, tmp_path):
    require("onnx")
    ort = require("onnxruntime")
    build, sizes = CASES[kind]
    model = build(nncore, layers)
    model.export(tmp_path / "m.onnx", format="onnx", verbose=False)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    i = sess.get_inputs()[0]
    assert sum(isinstance(d, str) for d in i.shape) == len(model.inputs[0].shape) - (
        1 if kind == "seq" else 0) - (1 if kind == "fcn" else 0)
    for size in sizes:
        x = _data(kind, rng, 3, size)
        got = sess.run(None, {i.name: x.astype(np.int64 if kind == "text" else np.float32)})[0]
        np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_onnx_masks_over_unknown_steps_refused(tmp_path):
    require("onnx")
    inp = nncore.Input((None,), dtype="int64")
    x = layers.Embedding(20, 4, mask_zero=True)(inp)
    m = nncore.Model(inp, layers.Bidirectional(layers.LSTM(3))(x))
    with pytest.raises(ValueError, match="bidirectional.*unknown length"):
        m.export(tmp_path / "m.onnx", format="onnx", verbose=False)
    assert not (tmp_path / "m.onnx").exists()
