"""Issue 11 layers: Conv1D, 1-D and global pooling, Embedding, activation layers and functions,
reshaping, noise, preprocessing. Each: float32 forward against Keras after set_weights (input and
weight gradients too, through tf.GradientTape), float64 central differences of every backward,
config/saving round trips and bad-input messages."""

from __future__ import annotations

import nncore as nk
import numpy as np
import pytest
from _layer_checks import fd_check, keras_parity, run_layer
from nncore import activations, layers
from conftest import require

# ---- finite differences (no TensorFlow needed) ------------------------------------------------

FD_CASES = [
    (layers.Conv1D, dict(filters=4, kernel_size=3), (2, 9, 3)),
    (layers.Conv1D, dict(filters=3, kernel_size=4, strides=2, padding="same"), (2, 9, 2)),
    (layers.Conv1D, dict(filters=3, kernel_size=3, dilation_rate=2, padding="causal",
                         activation="tanh"), (2, 8, 2)),
    (layers.Conv1D, dict(filters=2, kernel_size=2, padding="causal", activation="gelu",
                         use_bias=False), (1, 5, 3)),
    (layers.MaxPooling1D, dict(pool_size=3, strides=2, padding="same"), (2, 9, 3)),
    (layers.Conv2D, dict(filters=4, kernel_size=2, groups=2, activation="tanh"), (2, 4, 4, 4)),
    (layers.Conv2D, dict(filters=2, kernel_size=2, groups=2, use_bias=False), (1, 3, 3, 2)),
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=3, strides=2), (2, 3, 3, 2)),
    (layers.Conv2DTranspose, dict(filters=3, kernel_size=2, padding="same", activation="tanh"),
     (1, 3, 4, 2)),
    # TF's CPU kernels refuse dilated transposed convolutions: checked here only
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=3, dilation_rate=2), (1, 3, 3, 2)),
    (layers.DepthwiseConv2D, dict(kernel_size=3, depth_multiplier=2), (2, 5, 4, 2)),
    (layers.DepthwiseConv2D, dict(kernel_size=2, strides=2, padding="same"), (2, 5, 5, 3)),
    # smooth activations only here: central differences are wrong across a relu kink
    (layers.SeparableConv2D, dict(filters=3, kernel_size=3, padding="same", dilation_rate=2,
                                  activation="tanh"), (2, 5, 5, 2)),
    (layers.AveragePooling1D, dict(pool_size=2), (2, 7, 3)),
    (layers.AveragePooling1D, dict(pool_size=3, strides=1, padding="same"), (2, 5, 2)),
    (layers.GlobalAveragePooling1D, {}, (2, 5, 3)),
    (layers.GlobalAveragePooling2D, dict(keepdims=True), (2, 3, 4, 3)),
    (layers.GlobalMaxPooling1D, {}, (2, 5, 3)),
    (layers.GlobalMaxPooling2D, dict(keepdims=True), (2, 3, 4, 3)),
    (layers.ReLU, dict(max_value=1.0, negative_slope=0.1, threshold=0.3), (3, 7)),
    (layers.LeakyReLU, {}, (3, 7)),
    (layers.PReLU, dict(alpha_initializer="random_uniform"), (2, 3, 4)),
    (layers.PReLU, dict(alpha_initializer="random_uniform", shared_axes=[1]), (2, 3, 4)),
    (layers.ELU, dict(alpha=0.7), (3, 6)),
    (layers.Softmax, {}, (3, 5)),
    (layers.Softmax, dict(axis=1), (2, 4, 3)),
    (layers.Softmax, dict(axis=(1, 2)), (2, 3, 2)),
    (layers.RepeatVector, dict(n=3), (2, 4)),
    (layers.Permute, dict(dims=(3, 1, 2)), (2, 3, 4, 2)),
    (layers.Identity, {}, (2, 3)),
    (layers.UpSampling1D, dict(size=3), (2, 3, 2)),
    (layers.UpSampling2D, dict(size=(2, 3)), (2, 2, 3, 2)),
    (layers.UpSampling2D, dict(size=(3, 2), interpolation="bilinear"), (2, 3, 2, 2)),
    (layers.ZeroPadding1D, dict(padding=(2, 1)), (2, 3, 2)),
    (layers.ZeroPadding2D, dict(padding=((1, 2), (0, 3))), (2, 2, 3, 2)),
    (layers.Cropping1D, dict(cropping=(1, 2)), (2, 6, 2)),
    (layers.Cropping2D, dict(cropping=((1, 0), (2, 1))), (2, 4, 5, 2)),
    (layers.Rescaling, dict(scale=0.5, offset=-1.0), (2, 3)),
    (layers.Normalization, dict(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.25, 1.0]), (4, 3)),
    (layers.Normalization, dict(mean=2.0, variance=9.0, invert=True), (4, 3)),
    (layers.UnitNormalization, {}, (3, 5)),
    (layers.UnitNormalization, dict(axis=[1, 2]), (2, 3, 2)),
]


@pytest.mark.parametrize("cls,kwargs,shape", FD_CASES,
                         ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(FD_CASES)])
def test_backward_matches_finite_differences(cls, kwargs, shape, rng):
    x = rng.normal(size=shape).astype(np.float32)
    y = fd_check(cls(**kwargs), x, rng)
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("name", sorted(set(activations.NAMES) - {"linear"}))
def test_activation_functions_finite_differences_through_dense(name, rng):
    """Every activation name on Dense (fused kernels and the NumPy ones) against central
    differences of the layer, kernel and bias included."""
    lay = layers.Dense(4, activation=name, bias_initializer="random_normal")
    lay._maybe_build((None, 5))
    kinks = {"relu": [0], "relu6": [0, 6], "leaky_relu": [0], "selu": [0], "hard_sigmoid": [-3, 3],
             "hard_silu": [-3, 3]}.get(name, [])
    for _ in range(100):  # central differences are wrong across a kink: keep clear of them
        x = rng.normal(size=(3, 5)).astype(np.float32)
        z = x @ lay.kernel + lay.bias
        if all(np.min(np.abs(z - k)) > 2e-2 for k in kinks):
            break
    fd_check(lay, x, rng)


def test_activation_names_aliases_and_functions():
    assert activations.get("swish") == "silu" and activations.get(activations.swish) == "silu"
    assert activations.get(activations.relu) == "relu"
    assert layers.Dense(2, activation=activations.gelu).activation == "gelu"
    with pytest.raises(ValueError, match="not one of nncore's activation functions"):
        layers.Dense(2, activation=lambda x: x)
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        layers.Conv1D(2, 3, activation="nope")
    x = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], np.float32)
    np.testing.assert_allclose(activations.relu(x, negative_slope=0.1, max_value=2.0,
                                                threshold=0.5),
                               [-0.35, -0.1, -0.05, 0.7, 2.0], rtol=1e-6)
    np.testing.assert_allclose(activations.hard_sigmoid(x), np.clip(x / 6 + 0.5, 0, 1))
    # no overflow warnings on extreme inputs (the suite turns warnings into errors)
    big = np.array([-1e4, 1e4], np.float32)
    for name in activations.NAMES:
        if name not in ("exponential", "linear"):
            assert np.all(np.isfinite(getattr(activations, name)(big[None])))


def test_conv1d_against_float64_reference(rng):
    x = rng.normal(size=(2, 10, 3))
    for kw in (dict(kernel_size=3, padding="causal", dilation_rate=3),
               dict(kernel_size=4, strides=3, padding="same"), dict(kernel_size=5)):
        lay = layers.Conv1D(4, **kw)
        y, _ = run_layer(lay, x.astype(np.float32))
        k, b = lay.kernel.astype(np.float64), lay.bias.astype(np.float64)
        ks, s, d = kw["kernel_size"], kw.get("strides", 1), kw.get("dilation_rate", 1)
        pad = kw.get("padding", "valid")
        xp = x
        if pad == "causal":
            xp = np.pad(x, ((0, 0), (d * (ks - 1), 0), (0, 0)))
        elif pad == "same":
            out = -(-x.shape[1] // s)
            total = max((out - 1) * s + d * (ks - 1) + 1 - x.shape[1], 0)
            xp = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)))
        out_len = (xp.shape[1] - d * (ks - 1) - 1) // s + 1
        ref = np.stack([sum(xp[:, t * s + j * d] @ k[j] for j in range(ks)) + b
                        for t in range(out_len)], axis=1)
        assert y.shape == ref.shape == (2,) + lay.compute_output_shape((None, 10, 3))[1:]
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_causal_conv1d_does_not_look_ahead(rng):
    lay = layers.Conv1D(2, 3, padding="causal", dilation_rate=2)
    x = rng.normal(size=(1, 9, 2)).astype(np.float32)
    y0, _ = run_layer(lay, x)
    x2 = x.copy()
    x2[:, 6:] += 5.0
    y1, _ = lay.forward(x2)
    np.testing.assert_array_equal(y0[:, :6], y1[:, :6])
    assert not np.allclose(y0[:, 6:], y1[:, 6:])


# ---- Embedding ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["int8", "uint16", "int32", "int64", "float32", "float64"])
def test_embedding_lookup_any_integer_dtype(dtype, rng):
    lay = layers.Embedding(7, 3)
    idx = rng.integers(0, 7, size=(4, 5))
    y, _ = run_layer(lay, idx.astype(dtype))
    np.testing.assert_array_equal(y, lay.embeddings[idx])
    assert y.dtype == np.float32 and y.shape == (4, 5, 3)


def test_embedding_gradient_is_a_deterministic_scatter_add(rng):
    lay = layers.Embedding(6, 4)
    idx = np.array([[0, 2, 2], [5, 2, 0]])
    _, ctx = run_layer(lay, idx)
    dy = rng.normal(size=(2, 3, 4)).astype(np.float32)
    lay._zero_grads()
    assert lay.backward(ctx, dy) is None
    ref = np.zeros((6, 4))
    for (i, j), k in np.ndenumerate(idx):
        ref[k] += dy[i, j]
    np.testing.assert_allclose(lay.grads[0], ref, rtol=1e-6, atol=1e-6)
    first = lay.grads[0].copy()
    lay.backward(ctx, dy)  # accumulates
    np.testing.assert_allclose(lay.grads[0], 2 * first, rtol=1e-6)


def test_embedding_bad_indices_name_the_layer():
    lay = layers.Embedding(5, 2, name="emb")
    with pytest.raises(ValueError, match=r"'emb' \(Embedding\): indices must be in \[0, 5\).*"
                                         r"\[-1, 5\].*\(2, 2\)"):
        run_layer(lay, np.array([[0, 5], [-1, 1]]))
    with pytest.raises(ValueError, match="'emb'.*non-integral or non-finite"):
        lay.forward(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="'emb'.*non-integral or non-finite"):
        lay.forward(np.array([[np.nan, 1.0]]))
    with pytest.raises(TypeError, match="'emb'.*dtype <U1"):
        lay.forward(np.array([["a"]]))


def test_embedding_trains_in_a_model_and_round_trips(tmp_path, rng):
    model = nk.Sequential([nk.Input((6,), dtype="int32"), layers.Embedding(10, 4, mask_zero=True),
                           layers.Conv1D(5, 3, padding="causal", activation="relu"),
                           layers.GlobalMaxPooling1D(), layers.Dense(1)])
    model.compile("adam", "mse")
    x = rng.integers(0, 10, size=(32, 6)).astype(np.int32)
    y = rng.normal(size=(32, 1)).astype(np.float32)
    before = model.layers[0].embeddings.copy()
    model.fit(x, y, epochs=2, verbose=0)
    assert not np.array_equal(before, model.layers[0].embeddings)
    model.save(tmp_path / "m.nncore")
    loaded = nk.models.load_model(tmp_path / "m.nncore")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[0].get_config()["mask_zero"] is True


# ---- config, saving, bad input ------------------------------------------------------------------

def test_every_new_layer_round_trips_through_a_saved_model(tmp_path, rng):
    inp = nk.Input((8, 3))
    h = layers.Conv1D(4, 3, padding="same", activation="swish")(inp)
    h = layers.BatchNormalization()(h)
    h = layers.LayerNormalization()(h)
    h = layers.GroupNormalization(groups=2)(h)
    h = layers.ReLU(max_value=3.0)(h)
    h = layers.ZeroPadding1D(1)(h)
    h = layers.Cropping1D((1, 1))(h)
    h = layers.UpSampling1D(2)(h)
    h = layers.MaxPooling1D(2)(h)
    h = layers.AveragePooling1D(2, strides=1, padding="same")(h)
    h = layers.SpatialDropout1D(0.2)(h)
    h = layers.GaussianNoise(0.1)(h)
    h = layers.GaussianDropout(0.1)(h)
    h = layers.PReLU()(h)
    h = layers.Permute((2, 1))(h)
    h = layers.Permute((2, 1))(h)
    h = layers.UnitNormalization()(h)
    h = layers.Softmax(axis=1)(h)
    h = layers.GlobalAveragePooling1D()(h)
    h = layers.RepeatVector(2)(h)
    h = layers.LeakyReLU(0.1)(h)
    h = layers.ELU()(h)
    h = layers.Identity()(h)
    h = layers.Rescaling(2.0, offset=0.5)(h)
    h = layers.Normalization(mean=0.5, variance=4.0)(h)
    h = layers.GlobalMaxPooling1D()(h)
    model = nk.Model(inp, layers.Dense(2)(h))
    model.compile("sgd", "mse")
    x = rng.normal(size=(16, 8, 3)).astype(np.float32)
    model.fit(x, rng.normal(size=(16, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "all.nncore")
    loaded = nk.models.load_model(tmp_path / "all.nncore")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(model.layers, loaded.layers):
        assert type(a) is type(b) and a.get_config() == b.get_config()


def test_image_layers_in_a_model(rng):
    model = nk.Sequential([nk.Input((6, 6, 2)), layers.ZeroPadding2D(1), layers.Cropping2D(1),
                           layers.UpSampling2D(2, interpolation="bilinear"),
                           layers.SpatialDropout2D(0.3), layers.GlobalAveragePooling2D()])
    assert model.output_shape == (None, 2)
    x = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), x.mean(axis=(1, 2)), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("make,shape,message", [
    (lambda: layers.Conv1D(2, 3), (None, 4, 4, 2), r"'conv1d\w*' \(Conv1D\) needs input "
                                                   r"\(batch, steps, channels\), got \(None, 4"),
    (lambda: layers.Conv1D(2, 5), (None, 4, 2), "shorter than the kernel 5"),
    (lambda: layers.GlobalAveragePooling2D(), (None, 4, 2), r"needs input \(batch, height, "
                                                           r"width, channels\)"),
    (lambda: layers.MaxPooling1D(5), (None, 4, 2), "shorter than pool_size 5"),
    (lambda: layers.RepeatVector(2), (None, 4, 2), r"\(RepeatVector\) needs input"),
    (lambda: layers.Permute((2, 1)), (None, 4, 2, 1), "rank 3"),
    (lambda: layers.Cropping1D((2, 2)), (None, 4, 2), "leaves nothing"),
    (lambda: layers.Softmax(axis=3), (None, 4, 2), "axis 3 is not a non-batch axis"),
    (lambda: layers.PReLU(shared_axes=[3]), (None, 4, 2), "shared axis 3 is out of range"),
])
def test_bad_input_shapes_name_layer_and_shape(make, shape, message):
    with pytest.raises(ValueError, match=message):
        make()(nk.Input(shape[1:]))


@pytest.mark.parametrize("make,message", [
    (lambda: layers.Conv1D(2, 3, padding="full"), "'valid', 'same' or 'causal'"),
    (lambda: layers.Conv1D(2, 3, strides=2, dilation_rate=2), "strides > 1 together"),
    (lambda: layers.Embedding(0, 3), "input_dim must be a positive int"),
    (lambda: layers.Permute((1, 3)), "permutation"),
    (lambda: layers.UpSampling2D(interpolation="bicubic"), "'nearest' or 'bilinear'"),
    (lambda: layers.ZeroPadding2D(((1, 2, 3), (0, 0))), "pairs must have 2 entries"),
    (lambda: layers.SpatialDropout1D(1.0), r"rate must be a number in \[0, 1\)"),
    (lambda: layers.ReLU(negative_slope=-1), "negative_slope must be a finite number >= 0"),
    (lambda: layers.Normalization(mean=1.0), "both mean and variance"),
])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_noise_layers_train_only_and_statistics(rng):
    x = np.ones((200, 10, 50), np.float32)
    for lay in (layers.SpatialDropout1D(0.4, seed=1), layers.GaussianNoise(0.5, seed=2),
                layers.GaussianDropout(0.3, seed=3)):
        y, _ = run_layer(lay, x, training=False)
        assert y is x
    y, ctx = run_layer(layers.SpatialDropout1D(0.4, seed=1), x, training=True)
    per_channel = y[:, 0, :]
    assert np.all(y == per_channel[:, None, :])  # whole channels dropped
    assert abs((per_channel == 0).mean() - 0.4) < 0.03
    np.testing.assert_allclose(np.unique(per_channel), [0.0, 1 / 0.6], rtol=1e-6)
    y, _ = run_layer(layers.GaussianNoise(0.5, seed=2), x, training=True)
    assert abs(float(np.std(y - x)) - 0.5) < 0.01
    y, _ = run_layer(layers.GaussianDropout(0.3, seed=3), x, training=True)
    assert abs(float(np.std(y)) - np.sqrt(0.3 / 0.7)) < 0.01 and abs(float(y.mean()) - 1) < 0.01


def test_normalization_adapt(rng):
    data = rng.normal(loc=[1.0, -2.0, 5.0], scale=[0.5, 2.0, 3.0], size=(500, 3))
    lay = layers.Normalization()
    lay.adapt(data)
    np.testing.assert_allclose(lay.mean, data.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(lay.variance, data.var(axis=0), rtol=1e-5)
    y, _ = lay.forward(data.astype(np.float32))
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=0), 1, rtol=1e-4)
    inv = layers.Normalization(invert=True)
    inv.adapt(data)
    np.testing.assert_allclose(inv.forward(y)[0], data, rtol=1e-4, atol=1e-4)
    assert lay.non_trainable_weights and not lay.trainable_weights
    batches = [data[:200], data[200:]]
    lay2 = layers.Normalization(axis=None)
    lay2.adapt(iter(batches))
    np.testing.assert_allclose(lay2.mean, data.mean(), rtol=1e-5)


# ---- Keras parity -------------------------------------------------------------------------------

KERAS_CASES = [
    ("Conv1D", dict(filters=4, kernel_size=3), (2, 11, 3)),
    ("Conv1D", dict(filters=3, kernel_size=4, strides=2, padding="same"), (2, 11, 3)),
    ("Conv1D", dict(filters=3, kernel_size=3, strides=3, padding="valid"), (3, 10, 2)),
    ("Conv1D", dict(filters=5, kernel_size=3, dilation_rate=2, padding="causal",
                    activation="relu"), (2, 9, 3)),
    ("Conv1D", dict(filters=2, kernel_size=5, dilation_rate=2, padding="same",
                    activation="gelu"), (2, 13, 1)),
    ("Conv1D", dict(filters=2, kernel_size=1, padding="causal", use_bias=False), (2, 4, 3)),
    ("Conv2D", dict(filters=4, kernel_size=3, groups=2), (2, 5, 6, 4)),
    ("Conv2D", dict(filters=6, kernel_size=2, groups=3, padding="same", activation="relu"),
     (2, 5, 5, 3)),
    ("Conv2DTranspose", dict(filters=3, kernel_size=3), (2, 4, 5, 2)),
    ("Conv2DTranspose", dict(filters=2, kernel_size=3, strides=2, padding="same"), (2, 4, 5, 3)),
    ("Conv2DTranspose", dict(filters=2, kernel_size=4, strides=2, activation="relu"),
     (2, 3, 3, 2)),
    ("Conv2DTranspose", dict(filters=2, kernel_size=2, strides=3), (1, 3, 2, 2)),
    ("Conv2DTranspose", dict(filters=2, kernel_size=(3, 2), padding="same", use_bias=False),
     (2, 5, 4, 1)),
    ("DepthwiseConv2D", dict(kernel_size=3), (2, 6, 5, 3)),
    ("DepthwiseConv2D", dict(kernel_size=(2, 3), strides=2, padding="same", depth_multiplier=2,
                             activation="relu"), (2, 7, 6, 2)),
    ("DepthwiseConv2D", dict(kernel_size=3, dilation_rate=2, padding="same"), (1, 6, 6, 2)),
    ("SeparableConv2D", dict(filters=4, kernel_size=3), (2, 6, 5, 3)),
    ("SeparableConv2D", dict(filters=2, kernel_size=3, strides=2, padding="same",
                             depth_multiplier=3, activation="gelu"), (2, 7, 7, 2)),
    ("MaxPooling1D", dict(pool_size=2), (2, 9, 3)),
    ("MaxPooling1D", dict(pool_size=3, strides=2, padding="same"), (2, 10, 3)),
    ("AveragePooling1D", dict(pool_size=3, strides=1, padding="same"), (2, 7, 2)),
    ("AveragePooling1D", dict(pool_size=2, strides=3), (2, 11, 2)),
    ("GlobalAveragePooling1D", {}, (3, 5, 4)),
    ("GlobalAveragePooling1D", dict(keepdims=True), (3, 5, 4)),
    ("GlobalAveragePooling2D", {}, (2, 3, 5, 4)),
    ("GlobalAveragePooling2D", dict(keepdims=True), (2, 3, 5, 4)),
    ("GlobalMaxPooling1D", dict(keepdims=True), (3, 5, 4)),
    ("GlobalMaxPooling2D", {}, (2, 3, 5, 4)),
    ("ReLU", {}, (3, 8)),
    ("ReLU", dict(max_value=1.5, negative_slope=0.1, threshold=0.2), (3, 8)),
    ("LeakyReLU", {}, (3, 8)),
    ("LeakyReLU", dict(negative_slope=0.05), (2, 3, 4)),
    ("PReLU", {}, (2, 3, 4)),
    ("PReLU", dict(shared_axes=[1, 2]), (2, 3, 4, 2)),
    ("ELU", dict(alpha=0.5), (3, 8)),
    ("Softmax", {}, (3, 8)),
    ("Softmax", dict(axis=1), (2, 5, 3)),
    ("Softmax", dict(axis=(1, 2)), (2, 3, 3)),
    ("RepeatVector", dict(n=4), (3, 5)),
    ("Permute", dict(dims=(2, 1)), (2, 3, 4)),
    ("Permute", dict(dims=(3, 1, 2)), (2, 3, 4, 5)),
    ("Identity", {}, (2, 3)),
    ("UpSampling1D", dict(size=3), (2, 4, 3)),
    ("UpSampling2D", {}, (2, 3, 4, 2)),
    ("UpSampling2D", dict(size=(3, 2)), (2, 3, 4, 2)),
    ("UpSampling2D", dict(size=(2, 3), interpolation="bilinear"), (2, 5, 4, 2)),
    ("ZeroPadding1D", dict(padding=(2, 1)), (2, 4, 3)),
    ("ZeroPadding2D", {}, (2, 3, 4, 2)),
    ("ZeroPadding2D", dict(padding=((1, 2), (0, 3))), (2, 3, 4, 2)),
    ("Cropping1D", {}, (2, 5, 3)),
    ("Cropping2D", dict(cropping=((1, 0), (2, 1))), (2, 4, 5, 2)),
    ("Cropping2D", dict(cropping=1), (2, 4, 5, 2)),
    ("Rescaling", dict(scale=1 / 255.0, offset=-0.5), (2, 3, 3)),
    ("Normalization", dict(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.25, 1.0]), (4, 3)),
    ("Normalization", dict(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.25, 1.0], invert=True), (4, 3)),
    ("UnitNormalization", {}, (3, 5)),
    ("UnitNormalization", dict(axis=[1, 2]), (2, 3, 4)),
]


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    import keras as k

    return k


@pytest.mark.parametrize("name,kwargs,shape", KERAS_CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(KERAS_CASES)])
def test_keras_parity(keras, name, kwargs, shape, rng):
    theirs = getattr(keras.layers, name)(**kwargs)
    ours = getattr(layers, name)(**kwargs)
    x = rng.normal(size=shape).astype(np.float32)
    theirs(x)  # build
    ws = theirs.get_weights()
    if ws:  # random weights everywhere (PReLU's alpha starts at zero)
        theirs.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in ws])
    keras_parity(ours, theirs, x, rng, rtol=2e-5, atol=2e-5)
    cfg = ours.get_config()
    assert type(ours).from_config(cfg).get_config() == cfg
    theirs_cfg = theirs.get_config()
    for key in kwargs:  # serialized as Keras does
        if key not in ("axis", "dims", "mean", "variance"):
            assert _lists(cfg[key]) == _lists(theirs_cfg[key]), key


def _lists(v):
    return [_lists(a) for a in v] if isinstance(v, (list, tuple)) else v


@pytest.mark.parametrize("name", sorted(set(activations.NAMES) - {"linear"}))
def test_activation_keras_parity(keras, name, rng):
    theirs = keras.layers.Dense(4, activation=name)
    ours = layers.Dense(4, activation=name)
    x = (3 * rng.normal(size=(5, 6))).astype(np.float32)
    theirs(x)
    tol = 1e-4 if name == "exponential" else 2e-5  # exp of values up to ~10
    keras_parity(ours, theirs, x, rng, rtol=tol, atol=tol)
    np.testing.assert_allclose(getattr(activations, name)(x),
                               getattr(keras.activations, name)(x).numpy(), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("kwargs", [dict(threshold=0.5), dict(threshold=0.5, negative_slope=0.2),
                                    dict(threshold=0.5, negative_slope=0.2, max_value=1.0),
                                    dict(threshold=0.5, max_value=0.5)])
def test_relu_at_its_edges_keras_parity(keras, kwargs):
    # Keras keeps x only above the threshold: at x == threshold it gives 0 (and at the cap the cap)
    x = np.array([[-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5]], np.float32)
    want = keras.layers.ReLU(**kwargs)(x).numpy()
    np.testing.assert_array_equal(layers.ReLU(**kwargs)(x), want)
    np.testing.assert_array_equal(activations.relu(x, **kwargs), want)
    assert activations.relu(x, **kwargs)[0, 3] == 0.0


def test_embedding_keras_parity(keras, rng):
    for kw in (dict(input_dim=9, output_dim=4), dict(input_dim=5, output_dim=3, mask_zero=True)):
        theirs, ours = keras.layers.Embedding(**kw), layers.Embedding(**kw)
        x = rng.integers(0, kw["input_dim"], size=(3, 7)).astype(np.int32)
        theirs(x)
        keras_parity(ours, theirs, x, rng, x_grad=False)
        assert ours.get_config()["mask_zero"] == theirs.get_config()["mask_zero"]
        if kw.get("mask_zero"):
            np.testing.assert_array_equal(ours.compute_mask(x),
                                          theirs.compute_mask(x).numpy())


def test_normalization_adapt_keras_parity(keras, rng):
    data = rng.normal(loc=2.0, scale=3.0, size=(64, 4, 3)).astype(np.float32)
    for axis in (-1, (1, 2), None):
        theirs, ours = keras.layers.Normalization(axis=axis), layers.Normalization(axis=axis)
        theirs.adapt(data)
        ours.adapt(data)
        np.testing.assert_allclose(ours.get_weights()[0], theirs.get_weights()[0].reshape(
            ours.get_weights()[0].shape), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours(data), theirs(data).numpy(), rtol=1e-4, atol=1e-4)


def test_conv_family_trains_saves_and_loads(tmp_path, rng):
    model = nk.Sequential([nk.Input((6, 6, 2)), layers.DepthwiseConv2D(3, padding="same"),
                           layers.SeparableConv2D(4, 3, activation="relu"),
                           layers.Conv2DTranspose(2, 3, strides=2),
                           layers.BatchNormalization(), layers.GlobalAveragePooling2D(),
                           layers.Dense(1)])
    assert model.output_shape == (None, 1)
    assert model.layers[2].output_shape == (None, 9, 9, 2)
    model.compile("adam", "mse")
    x = rng.normal(size=(16, 6, 6, 2)).astype(np.float32)
    w0 = [w.copy() for w in model.trainable_weights]
    model.fit(x, rng.normal(size=(16, 1)), epochs=2, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(w0, model.trainable_weights))
    model.save(tmp_path / "c.nncore")
    loaded = nk.models.load_model(tmp_path / "c.nncore")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
