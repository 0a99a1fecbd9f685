"""Layers: shapes, configs, errors, and whole-model gradients against finite differences of a
float64 NumPy reference of the model's loss."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nncore import layers, losses, models, utils

# ---- float64 NumPy reference of a Sequential model ---------------------------------------------


def _act(name, z):
    if name == "relu":
        return np.maximum(z, 0)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "softmax":
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return z


def _pad_same(x, k, s, d):
    # Keras/TF 'same': pad_total = max((out-1)*s + (k-1)*d + 1 - n, 0), the smaller half first.
    pads = []
    for ax in range(2):
        n = x.shape[1 + ax]
        out = -(-n // s[ax])
        tot = max((out - 1) * s[ax] + (k[ax] - 1) * d[ax] + 1 - n, 0)
        pads.append((tot // 2, tot - tot // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))


def ref_conv(x, w, b, strides, padding, dil):
    kh, kw = w.shape[:2]
    if padding == "same":
        x = _pad_same(x, (kh, kw), strides, dil)
    oh = (x.shape[1] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (x.shape[2] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    y = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i * dil[0]: i * dil[0] + strides[0] * (oh - 1) + 1: strides[0],
                      j * dil[1]: j * dil[1] + strides[1] * (ow - 1) + 1: strides[1], :]
            y += patch @ w[i, j]
    return y + (0 if b is None else b)


def ref_pool(x, size, strides, kind):
    oh = (x.shape[1] - size[0]) // strides[0] + 1
    ow = (x.shape[2] - size[1]) // strides[1] + 1
    wins = np.stack([x[:, i: i + strides[0] * (oh - 1) + 1: strides[0],
                       j: j + strides[1] * (ow - 1) + 1: strides[1], :]
                     for i in range(size[0]) for j in range(size[1])])
    return wins.max(0) if kind == "max" else wins.mean(0)


def ref_rnn(kind, x, k, rk, b, units, act="tanh", return_sequences=False):
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    n, steps, _ = x.shape
    h = np.zeros((n, units))
    c = np.zeros((n, units))
    if b is None:
        b = np.zeros((2, 3 * units)) if kind == "GRU" else np.zeros(k.shape[1])
    outs = []
    for t in range(steps):
        xt = x[:, t]
        if kind == "SimpleRNN":
            h = _act(act, xt @ k + h @ rk + b)
        elif kind == "LSTM":
            z = xt @ k + h @ rk + b
            i, f, g, o = (z[:, q * units:(q + 1) * units] for q in range(4))
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
        else:  # GRU, reset_after=True
            xz = xt @ k + b[0]
            hz = h @ rk + b[1]
            u = units
            z = sig(xz[:, :u] + hz[:, :u])
            r = sig(xz[:, u:2 * u] + hz[:, u:2 * u])
            hh = np.tanh(xz[:, 2 * u:] + r * hz[:, 2 * u:])
            h = z * h + (1 - z) * hh
        outs.append(h)
    return np.stack(outs, 1) if return_sequences else h


def ref_forward(model, weights, x):
    """float64 output of `model` with `weights` (list in model.weights order)."""
    h = np.asarray(x, np.float64)
    pos = 0
    for layer in model.layers:
        ws = weights[pos:pos + len(layer.weights)]
        pos += len(layer.weights)
        name = type(layer).__name__
        if name == "Dense":
            h = _act(layer.activation, h @ ws[0] + (ws[1] if layer.use_bias else 0))
        elif name == "Conv2D":
            h = _act(layer.activation, ref_conv(h, ws[0], ws[1] if layer.use_bias else None,
                                                layer.strides, layer.padding,
                                                layer.dilation_rate))
        elif name in ("MaxPooling2D", "AveragePooling2D"):
            h = ref_pool(h, layer.pool_size, layer.strides, "max" if name[0] == "M" else "avg")
        elif name == "Flatten":
            h = h.reshape(h.shape[0], -1)
        elif name == "Reshape":
            shape = list(layer.target_shape)
            if -1 in shape:  # resolved here, independently of the layer's own code
                shape[shape.index(-1)] = h[0].size // -math.prod(shape)
            h = h.reshape([h.shape[0]] + shape)
        elif name == "Activation":
            h = _act(layer.activation, h)
        elif name in ("SimpleRNN", "LSTM", "GRU"):
            h = ref_rnn(name, h, ws[0], ws[1], ws[2] if layer.use_bias else None, layer.units,
                        getattr(layer, "activation", "tanh"), layer.return_sequences)
        elif name == "Dropout":
            pass
        else:
            raise AssertionError(name)
    return h


def ref_loss(loss, p, y):
    if isinstance(loss, losses.Loss) and loss.from_logits:
        p = _act("softmax", p)
        loss = loss.name
    if "categorical" in loss:
        p = p / p.sum(-1, keepdims=True)  # Keras normalises non-softmax outputs
    if loss == "sparse_categorical_crossentropy":
        return float(np.mean(-np.log(p[np.arange(len(y)), y])))
    if loss == "categorical_crossentropy":
        return float(np.mean(-(y * np.log(p)).sum(-1)))
    if loss == "binary_crossentropy":
        return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))
    return float(np.mean((p - y) ** 2))


def check_model_gradients(model, x, y, loss, samples=12, seed=0):
    model.compile(optimizer="sgd", loss=loss)
    val, grads = model._gradients(x, y)
    w64 = [w.astype(np.float64) for w in model.weights]
    ref = ref_loss(loss, ref_forward(model, w64, x), y)
    assert abs(val - ref) <= 1e-4 * max(1.0, abs(ref))
    rng = np.random.default_rng(seed)
    eps = 1e-6
    for wi, (w, g) in enumerate(zip(w64, grads)):
        scale = max(np.abs(g).max(), 1e-3)
        for flat in rng.choice(w.size, size=min(samples, w.size), replace=False):
            idx = np.unravel_index(flat, w.shape)
            old = w[idx]
            w[idx] = old + eps
            lp = ref_loss(loss, ref_forward(model, w64, x), y)
            w[idx] = old - eps
            lm = ref_loss(loss, ref_forward(model, w64, x), y)
            w[idx] = old
            fd = (lp - lm) / (2 * eps)
            assert abs(fd - g[idx]) <= 2e-3 * scale + 1e-5, (
                f"weight {model.weights[wi].shape} {model.layers} idx {idx}: fd {fd} vs {g[idx]}")


# ---- gradient checks ----------------------------------------------------------------------------


def test_dense_model_gradients(rng):
    utils.set_random_seed(1)
    model = models.Sequential([
        layers.Dense(7, activation="tanh", input_shape=(5,)),
        layers.Dense(6, activation="relu"),
        layers.Dense(4, activation="sigmoid"),
        layers.Dense(3, use_bias=False),
        layers.Activation("softmax"),
    ])
    x = rng.normal(size=(9, 5)).astype(np.float32)
    y = rng.integers(0, 3, 9)
    check_model_gradients(model, x, y, "sparse_categorical_crossentropy")


def test_unfused_cross_entropy_gradients(rng):
    utils.set_random_seed(6)
    x = rng.normal(size=(7, 4)).astype(np.float32)
    y = rng.integers(0, 3, 7)
    probs = models.Sequential([layers.Dense(3, activation="sigmoid", input_shape=(4,))])
    check_model_gradients(probs, x, y, "sparse_categorical_crossentropy")
    onehot = np.eye(3, dtype=np.float32)[y]
    check_model_gradients(probs, x, onehot, "categorical_crossentropy")
    logits = models.Sequential([layers.Dense(3, input_shape=(4,))])
    check_model_gradients(logits, x, y, losses.SparseCategoricalCrossentropy(from_logits=True))


@pytest.mark.parametrize("loss", ["mse", "binary_crossentropy"])
def test_dense_regression_gradients(rng, loss):
    utils.set_random_seed(2)
    model = models.Sequential([layers.Dense(5, activation="relu", input_shape=(4,)),
                               layers.Dense(2, activation="sigmoid")])
    x = rng.normal(size=(6, 4)).astype(np.float32)
    y = rng.random((6, 2)).astype(np.float32)
    check_model_gradients(model, x, y, loss)


def test_conv_pool_model_gradients(rng):
    utils.set_random_seed(3)
    model = models.Sequential([
        layers.Conv2D(4, (3, 3), padding="same", activation="relu", input_shape=(9, 8, 2)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(5, (2, 3), strides=(1, 2), activation="tanh"),
        layers.AveragePooling2D((2, 1)),
        layers.Flatten(),
        layers.Dense(6, activation="relu"),
        layers.Dense(3, activation="softmax"),
    ])
    x = rng.normal(size=(3, 9, 8, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 3)]
    check_model_gradients(model, x, y, "categorical_crossentropy")


def test_recurrent_model_gradients(rng):
    utils.set_random_seed(4)
    model = models.Sequential([
        layers.SimpleRNN(5, return_sequences=True, input_shape=(4, 3)),
        layers.LSTM(4, return_sequences=True),
        layers.GRU(3),
        layers.Dense(3, activation="softmax"),
    ])
    x = rng.normal(size=(5, 4, 3)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    check_model_gradients(model, x, y, "sparse_categorical_crossentropy")


def test_dense_conv_rnn_model_gradients(rng):
    """Issue 5: one model with Dense + Conv + Pool + RNN. Conv2D -> MaxPooling2D -> Reshape to
    (timesteps, features) -> SimpleRNN -> LSTM -> Dense; every weight's analytic gradient against
    central differences of the float64 NumPy reference of the whole model."""
    utils.set_random_seed(5)
    model = models.Sequential([
        layers.Input(shape=(8, 7, 2)),
        layers.Conv2D(3, 3, activation="relu"),       # (6, 5, 3)
        layers.MaxPooling2D(2),                       # (3, 2, 3)
        layers.Reshape((3, -1)),                      # 3 steps of 6 features
        layers.SimpleRNN(5, return_sequences=True),
        layers.LSTM(4),
        layers.Dense(3, activation="softmax"),
    ])
    assert model.output_shape == (None, 3) and model.layers[2].output_shape == (None, 3, 6)
    x = rng.normal(size=(4, 8, 7, 2)).astype(np.float32)
    y = rng.integers(0, 3, 4)
    check_model_gradients(model, x, y, "sparse_categorical_crossentropy")
    # The first layer's gradient is part of the check (not cut off by Reshape/backward stops).
    _, grads = model._gradients(x, y)
    assert len(grads) == len(model.weights) and np.abs(grads[0]).max() > 0


def test_reshape_layer(rng, tmp_path):
    lay = layers.Reshape((-1, 4))
    assert lay.compute_output_shape((None, 2, 3, 4)) == (None, 6, 4)
    x = rng.normal(size=(5, 2, 3, 4)).astype(np.float32)
    y = lay(x)
    np.testing.assert_array_equal(y, x.reshape(5, 6, 4))
    dy = rng.normal(size=y.shape).astype(np.float32)
    _, ctx = lay.forward(x, need_ctx=True)
    np.testing.assert_array_equal(lay.backward(ctx, dy), dy.reshape(x.shape))
    assert layers.Reshape(6).compute_output_shape((None, 2, 3)) == (None, 6)
    assert layers.Reshape([3, 2]).compute_output_shape((None, 6)) == (None, 3, 2)
    cfg = lay.get_config()
    assert cfg["target_shape"] == [-1, 4] and "Reshape" in layers.LAYER_REGISTRY
    assert layers.Reshape.from_config({**cfg, "name": "r2"}).target_shape == (-1, 4)
    for bad in [(-1, -1), (0, 3), (2, -2), (2.0, 3), (True, 3), (), "ab", None, (1,) * 9]:
        with pytest.raises(ValueError, match="Reshape"):
            layers.Reshape(bad)
    with pytest.raises(ValueError, match="24 values per sample"):
        models.Sequential([layers.Reshape((5, 5), input_shape=(2, 3, 4))])
    with pytest.raises(ValueError, match="not a multiple of 5"):
        models.Sequential([layers.Reshape((5, -1), input_shape=(2, 3, 4))])
    # In a model: trains, saves and loads.
    utils.set_random_seed(8)
    model = models.Sequential([layers.Dense(6, input_shape=(4,)), layers.Reshape((3, 2)),
                               layers.SimpleRNN(3), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    xs = rng.normal(size=(8, 4)).astype(np.float32)
    model.fit(xs, rng.normal(size=(8, 2)).astype(np.float32), epochs=2, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = models.load_model(tmp_path / "m.npz")
    assert loaded.layers[1].target_shape == (3, 2)
    np.testing.assert_array_equal(loaded.predict(xs), model.predict(xs))


# ---- shapes, configs, errors ---------------------------------------------------------------------


def test_output_shapes_and_params():
    model = models.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), padding="same", strides=2),
        layers.AveragePooling2D(),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    shapes = [lay.output_shape for lay in model.layers]
    assert shapes == [(None, 26, 26, 32), (None, 13, 13, 32), (None, 7, 7, 64), (None, 3, 3, 64),
                      (None, 576), (None, 576), (None, 10)]
    assert [lay.count_params() for lay in model.layers] == [320, 0, 18496, 0, 0, 0, 5770]
    assert model.layers[0].name.startswith("conv2d")
    rnn = models.Sequential([layers.LSTM(8, return_sequences=True, input_shape=(5, 3)),
                             layers.GRU(4)])
    assert [w.shape for w in rnn.weights] == [(3, 32), (8, 32), (32,), (8, 12), (4, 12), (2, 12)]
    lstm_bias = rnn.layers[0].bias
    assert np.all(lstm_bias[8:16] == 1) and np.all(lstm_bias[:8] == 0)  # unit_forget_bias


def test_keras_defaults_and_config_round_trip():
    d = layers.Dense(3)
    assert d.activation == "linear" and d.use_bias
    assert type(d.kernel_initializer).__name__ == "GlorotUniform"
    c = layers.Conv2D(8, 3)
    assert c.kernel_size == (3, 3) and c.strides == (1, 1) and c.padding == "valid"
    r = layers.SimpleRNN(4)
    assert type(r.recurrent_initializer).__name__ == "Orthogonal"
    for layer in (layers.Dense(3, activation="relu", kernel_regularizer="l2"),
                  layers.Conv2D(4, (2, 3), strides=2, padding="same"),
                  layers.MaxPooling2D(3), layers.AveragePooling2D((2, 1)), layers.Flatten(),
                  layers.Dropout(0.25), layers.Activation("tanh"),
                  layers.SimpleRNN(3, return_sequences=True), layers.LSTM(2), layers.GRU(2)):
        cfg = layer.get_config()
        clone = type(layer).from_config(cfg)
        assert clone.get_config() == cfg


def test_glorot_uniform_and_zero_bias():
    utils.set_random_seed(0)
    d = layers.Dense(300)
    d.build((None, 200))
    limit = np.sqrt(6 / 500)
    assert np.abs(d.kernel).max() <= limit and np.abs(d.kernel).max() > 0.95 * limit
    assert np.all(d.bias == 0)
    r = layers.SimpleRNN(16)
    r.build((None, 3, 5))
    rk = r.recurrent_kernel.astype(np.float64)
    np.testing.assert_allclose(rk.T @ rk, np.eye(16), atol=1e-5)


def test_incompatible_layers_name_layer_and_shapes():
    model = models.Sequential([layers.Dense(4, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"dense.*\(None, 4\).*conv|conv.*\(None, 4\)"):
        model.add(layers.Conv2D(2, 3, name="conv"))
    assert len(model.layers) == 1
    with pytest.raises(ValueError, match="smaller than the kernel"):
        models.Sequential([layers.Conv2D(2, 5, input_shape=(3, 3, 1))])
    with pytest.raises(ValueError, match="timesteps"):
        models.Sequential([layers.LSTM(2, input_shape=(3,))])
    built = layers.Dense(2)
    models.Sequential([layers.Input(shape=(5,)), built])
    with pytest.raises(ValueError, match=r"built for input shape \(None, 5\).*\(None, 3\)"):
        models.Sequential([layers.Input(shape=(3,)), built])


@pytest.mark.parametrize("bad", [
    lambda: layers.Dense(0), lambda: layers.Dense(3, activation="swoosh"),
    lambda: layers.Conv2D(2, (3, 3, 3)), lambda: layers.Conv2D(2, 3, padding="full"),
    lambda: layers.Dropout(1.0), lambda: layers.Dense(2, kernel_initializer="nope"),
    lambda: layers.Dense(2, kernel_regularizer="l3"),
])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        bad()


def test_unknown_keyword_is_type_error():
    with pytest.raises(TypeError, match="unexpected"):
        layers.Dense(3, unit=4)


def test_dropout_scaling_and_inference_identity():
    utils.set_random_seed(0)
    drop = layers.Dropout(0.25)
    x = np.ones((200, 50), np.float32)
    drop.build((None, 50))
    assert drop.forward(x, training=False)[0] is x
    y, ctx = drop.forward(x, training=True, need_ctx=True)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(drop.backward(ctx, x), y)


def test_flatten_output_shape_is_exact_on_hostile_shapes():
    """np.prod wrapped around int64: (2**16,)*4 flattened to 0 features and Dense got a (0, 1)
    kernel. The size is now exact and too large a size is a clear ValueError."""
    big = (None,) + (2**16,) * 4
    assert layers.Flatten().compute_output_shape(big) == (None, 2**64)
    assert layers.Flatten().compute_output_shape((None, 2**31 - 1, 2**31 - 1, 2**31 - 1)) == \
        (None, (2**31 - 1) ** 3)
    with pytest.raises(ValueError, match="Flatten"):
        models.Sequential([layers.Flatten(input_shape=(2**16,) * 4), layers.Dense(1)])
    assert layers.Flatten().compute_output_shape((None, 3, 5, 7)) == (None, 105)
