"""keras.random (nncore.random): seeding and generator state, the distributions' statistics,
draws inside traced calls happening anew at every forward, gradients through a VAE's
reparameterisation, and saving a graph that holds random ops."""

from __future__ import annotations

import numpy as np
import pytest

import nncore as keras
from nncore import ops

N = 40000


def test_seeds_like_keras():
    a = keras.random.normal((3, 5), seed=4)
    np.testing.assert_array_equal(a, keras.random.normal((3, 5), seed=4))  # int: fixed
    assert a.dtype == np.float32 and a.shape == (3, 5)
    g = keras.random.SeedGenerator(4)
    first = keras.random.normal((3, 5), seed=g)
    np.testing.assert_array_equal(first, a)  # an int seed is a generator's first draw
    second = keras.random.normal((3, 5), seed=g)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(g.state, [4, 2])
    g2 = keras.random.SeedGenerator(4)
    keras.random.normal((3, 5), seed=g2)
    np.testing.assert_array_equal(keras.random.normal((3, 5), seed=g2), second)
    keras.utils.set_random_seed(11)
    u = keras.random.uniform((4,))
    keras.utils.set_random_seed(11)
    np.testing.assert_array_equal(keras.random.uniform((4,)), u)
    with pytest.raises(ValueError, match="seed"):
        keras.random.normal((2,), seed=-1)
    with pytest.raises(TypeError, match="seed"):
        keras.random.SeedGenerator("x")


def test_distributions():
    g = keras.random.SeedGenerator(0)
    x = keras.random.normal((N,), mean=2.0, stddev=3.0, seed=g)
    assert abs(x.mean() - 2) < 0.05 and abs(x.std() - 3) < 0.05
    u = keras.random.uniform((N,), minval=-1, maxval=3, seed=g)
    assert u.min() >= -1 and u.max() < 3 and abs(u.mean() - 1) < 0.03
    r = keras.random.randint((N,), 2, 7, seed=g)
    assert r.dtype == np.int32 and set(np.unique(r)) == {2, 3, 4, 5, 6}
    t = keras.random.truncated_normal((N,), mean=1.0, stddev=0.5, seed=g)
    assert t.min() >= 0.0 and t.max() <= 2.0 and abs(t.mean() - 1) < 0.01
    # standard normal truncated to [-2, 2] has variance 1 - 4 phi(2) / (2 Phi(2) - 1)
    phi2 = np.exp(-2.0) / np.sqrt(2 * np.pi)
    assert abs(t.std() / 0.5 - np.sqrt(1 - 4 * phi2 / 0.9544997361036416)) < 0.01
    ga = keras.random.gamma((N,), alpha=3.0, seed=g)
    assert abs(ga.mean() - 3) < 0.05 and abs(ga.var() - 3) < 0.15
    be = keras.random.beta((N,), alpha=2.0, beta=5.0, seed=g)
    assert abs(be.mean() - 2 / 7) < 0.01
    bi = keras.random.binomial((N,), counts=10, probabilities=0.3, seed=g)
    assert abs(bi.mean() - 3) < 0.05 and bi.min() >= 0 and bi.max() <= 10
    logits = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]], np.float32))
    c = keras.random.categorical(logits, N, seed=g)
    assert c.shape == (2, N) and c.dtype == np.int32
    np.testing.assert_allclose(np.bincount(c[0], minlength=3) / N, [0.1, 0.6, 0.3], atol=0.01)
    np.testing.assert_allclose(np.bincount(c[1], minlength=3) / N, [0.5, 0.25, 0.25],
                               atol=0.01)


def test_dropout_and_shuffle_values():
    x = np.ones((200, 50), np.float32)
    y = keras.random.dropout(x, 0.3, seed=1)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    ys = keras.random.dropout(x, 0.5, noise_shape=(1, 50), seed=2)
    assert np.all(ys == ys[:1])  # one mask row shared along the batch
    z = np.arange(30, dtype=np.float32).reshape(10, 3)
    s = keras.random.shuffle(z, seed=3)
    assert not np.array_equal(s, z)
    np.testing.assert_array_equal(np.sort(s[:, 0]), z[:, 0])
    np.testing.assert_array_equal(s[:, 1] - s[:, 0], 1)  # rows stay whole


def _graph_vjp(fn, x, r):
    from nncore.ops._graph import Graph

    inp = keras.Input(shape=x.shape[1:], batch_size=x.shape[0], dtype=str(x.dtype))
    out = fn(inp)
    g = Graph([inp], [out], 1, out, [inp], 0)
    outs, ctxs, _ = g.run([x], False, True)
    return outs[0], g.backprop(ctxs, [r], g.plan(True))[0]


def test_dropout_and_shuffle_gradients():
    x = np.random.default_rng(0).normal(size=(7, 5))
    r = np.random.default_rng(1).normal(size=(7, 5))
    y, dx = _graph_vjp(lambda t: keras.random.dropout(t, 0.4, seed=5), x, r)
    mask = y / x
    np.testing.assert_allclose(dx, r * mask, rtol=1e-12)
    assert set(np.round(np.unique(mask), 6)) <= {0.0, round(1 / 0.6, 6)}
    y, dx = _graph_vjp(lambda t: keras.random.shuffle(t, seed=5), x, r)
    perm = [int(np.nonzero((x == row).all(1))[0][0]) for row in y]
    want = np.zeros_like(x)
    want[perm] = r
    np.testing.assert_allclose(dx, want, rtol=1e-12)


def _sampling_class(seed):
    class Sampling(keras.layers.Layer):
        """The classic Keras VAE example's layer, unchanged."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = seed() if callable(seed) else seed

        def call(self, inputs):
            z_mean, z_log_var = inputs
            batch = ops.shape(z_mean)[0]
            dim = ops.shape(z_mean)[1]
            epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    return Sampling


def _vae(seed, latent=2):
    Sampling = _sampling_class(seed)
    inp = keras.Input((6,))
    h = keras.layers.Dense(8, activation="relu")(inp)
    z_mean = keras.layers.Dense(latent, name="z_mean")(h)
    z_log_var = keras.layers.Dense(latent, name="z_log_var")(h)
    z = Sampling()([z_mean, z_log_var])
    out = keras.layers.Dense(6)(keras.layers.Dense(8, activation="relu")(z))
    return keras.Model(inp, out)


def test_sampling_draws_anew_at_every_forward():
    keras.utils.set_random_seed(0)
    model = _vae(lambda: keras.random.SeedGenerator(1337))
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    a = model.predict(x, verbose=0)
    b = model.predict(x, verbose=0)
    assert a.shape == (5, 6) and not np.allclose(a, b)
    layer = [lay for lay in model.layers if type(lay).__name__ == "Sampling"][0]
    assert int(layer.seed_generator.state[1]) == 2  # one draw per forward, none at trace time
    # an int seed draws the same epsilon at every forward
    keras.utils.set_random_seed(0)
    fixed = _vae(7)
    np.testing.assert_array_equal(fixed.predict(x, verbose=0), fixed.predict(x, verbose=0))
    x9 = np.random.default_rng(1).normal(size=(9, 6)).astype(np.float32)
    assert fixed.predict(x9, verbose=0).shape == (9, 6)  # the batch size read at run time


def test_vae_gradients_flow_through_the_reparameterisation():
    keras.utils.set_random_seed(2)
    model = _vae(3)  # int seed: the same epsilon at every forward, so differences are valid
    model.compile("sgd", "mse")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 6)).astype(np.float32)
    y = rng.normal(size=(6, 6)).astype(np.float32)
    _, grads = model._gradients(x, y)
    weights = model.get_weights()
    names = [lay.name for lay in model.layers for _ in lay.weights]
    assert len(names) == len(weights)
    checked = 0

    def loss_at(ws):
        model.set_weights(ws)
        return model.evaluate(x, y, batch_size=len(x), verbose=0)

    eps = 1e-3  # small: the decoder's ReLUs have kinks
    for k, name in enumerate(names):
        if not ("z_mean" in name or "z_log_var" in name):
            continue
        assert np.any(grads[k] != 0), name
        for idx in list(np.ndindex(weights[k].shape))[:4]:
            up = [w.astype(np.float64).copy() for w in weights]
            down = [w.astype(np.float64).copy() for w in weights]
            up[k][idx] += eps
            down[k][idx] -= eps
            num = (loss_at(up) - loss_at(down)) / (2 * eps)
            assert grads[k][idx] == pytest.approx(num, rel=3e-2, abs=2e-4), (name, idx)
            checked += 1
    assert checked >= 8
    model.set_weights(weights)


def _train_vae(seed):
    keras.utils.set_random_seed(seed)
    model = _vae(lambda: keras.random.SeedGenerator(1337))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    hist = model.fit(x, x, epochs=15, batch_size=16, verbose=0, shuffle=False)
    return hist.history["loss"], model.get_weights()


def test_vae_trains_and_is_reproducible():
    loss, w = _train_vae(5)
    assert loss[-1] < 0.8 * loss[0]
    loss2, w2 = _train_vae(5)
    assert loss == loss2
    for a, b in zip(w, w2):
        np.testing.assert_array_equal(a, b)


def test_random_in_a_subclassed_model_call():
    class Noisy(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(3)
            self.gen = keras.random.SeedGenerator(9)

        def call(self, x):
            h = self.d(x)
            return keras.random.dropout(h, 0.5, seed=self.gen) + \
                keras.random.uniform((2, 3), seed=self.gen)[:1]

    m = Noisy()
    x = np.ones((4, 5), np.float32)
    a, b = m.predict(x, verbose=0), m.predict(x, verbose=0)
    assert a.shape == (4, 3) and not np.array_equal(a, b)


def test_saving_a_graph_with_random_ops(tmp_path):
    keras.utils.set_random_seed(1)
    gen = keras.random.SeedGenerator(21)
    inp = keras.Input((4,))
    h = keras.layers.Dense(3)(inp)
    out = h + keras.random.normal(ops.shape(h), stddev=0.1, seed=gen) + \
        keras.random.dropout(h, 0.25, seed=5)
    model = keras.Model(inp, out)
    x = np.ones((3, 4), np.float32)
    model.predict(x, verbose=0)
    path = tmp_path / "r.nncore"
    model.save(path)
    back = keras.saving.load_model(path)
    # the generator's state is saved: the reloaded model's next draw is the original's next draw
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert not np.array_equal(back.predict(x, verbose=0), back.predict(x, verbose=0))
