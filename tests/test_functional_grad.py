"""Finite-difference gradient checks of Functional graphs (issue 9): fan-out, a shared layer (on two
branches and twice in series), a nested model and a Sequential, a nested model called twice, and
every merge layer.

The reference is a float64 NumPy re-implementation of each small model's forward (Dense, tanh or
linear, add/concatenate, MSE), run on the weights read back from the model; its central
differences must match nncore's float32 gradients from `model._gradients(x, y)` (batch-mean data
loss and the gradients in model.trainable_weights order). nncore itself is never called in the
reference.
"""

from __future__ import annotations

import numpy as np
import pytest

import nncore as keras_nn
from nncore import layers

EPS = 1e-6
RTOL = 1e-3  # of max |gradient| of each weight


def _dense(p, path, h, act=None):
    w, b = p[path]
    z = h @ w + b
    return np.tanh(z) if act == "tanh" else z


# ---- the cases: (build the nncore model, the float64 forward, input shapes, output width) -------
def build_fan_out():
    """stem feeds three consumers and the input feeds two."""
    x = keras_nn.Input(shape=(5,), name="x")
    stem = layers.Dense(6, activation="tanh", name="stem")(x)
    a = layers.Dense(4, activation="tanh", name="a")(stem)
    b = layers.Dense(4, name="b")(stem)
    skip = layers.Dense(2, activation="tanh", name="skip")(x)
    h = layers.concatenate([layers.add([a, b]), stem, skip])
    return keras_nn.Model(x, layers.Dense(3, name="out")(h))


def ref_fan_out(p, xs):
    (x,) = xs
    stem = _dense(p, ("stem",), x, "tanh")
    s = _dense(p, ("a",), stem, "tanh") + _dense(p, ("b",), stem)
    h = np.concatenate([s, stem, _dense(p, ("skip",), x, "tanh")], axis=1)
    return _dense(p, ("out",), h)


def build_shared():
    """`shared` on two branches (the right one through a projection); `square` twice in series."""
    left = keras_nn.Input(shape=(3,), name="left")
    right = keras_nn.Input(shape=(5,), name="right")
    shared = layers.Dense(4, activation="tanh", name="shared")
    square = layers.Dense(4, activation="tanh", name="square")
    proj = layers.Dense(3, activation="tanh", name="proj")(right)
    s = layers.add([shared(left), shared(proj)])
    return keras_nn.Model([left, right], layers.Dense(2, name="out")(square(square(s))))


def ref_shared(p, xs):
    left, right = xs
    proj = _dense(p, ("proj",), right, "tanh")
    s = _dense(p, ("shared",), left, "tanh") + _dense(p, ("shared",), proj, "tanh")
    h = _dense(p, ("square",), _dense(p, ("square",), s, "tanh"), "tanh")
    return _dense(p, ("out",), h)


def _inner():
    i = keras_nn.Input(shape=(4,), name="inner_in")
    h = layers.Dense(5, activation="tanh", name="inner_a")(i)
    return keras_nn.Model(i, layers.Dense(3, name="inner_b")(h), name="inner")


def build_nested():
    inner = _inner()
    seq = keras_nn.Sequential([keras_nn.Input(shape=(3,)),
                               layers.Dense(3, activation="tanh", name="seq_a")], name="seq")
    x = keras_nn.Input(shape=(6,), name="x")
    h = seq(inner(layers.Dense(4, activation="tanh", name="pre")(x)))
    return keras_nn.Model(x, layers.Dense(2, name="out")(h))


def ref_nested(p, xs):
    (x,) = xs
    h = _dense(p, ("pre",), x, "tanh")
    h = _dense(p, ("inner", "inner_b"), _dense(p, ("inner", "inner_a"), h, "tanh"))
    h = _dense(p, ("seq", "seq_a"), h, "tanh")
    return _dense(p, ("out",), h)


def build_nested_twice():
    """One nested model called on two inputs: its weights are shared by both calls."""
    inner = _inner()
    x1 = keras_nn.Input(shape=(4,), name="x1")
    x2 = keras_nn.Input(shape=(4,), name="x2")
    h = layers.add([inner(x1), inner(layers.Dense(4, activation="tanh", name="pre")(x2))])
    return keras_nn.Model([x1, x2], layers.Dense(2, name="out")(h))


def ref_nested_twice(p, xs):
    x1, x2 = xs

    def inner(h):
        return _dense(p, ("inner", "inner_b"), _dense(p, ("inner", "inner_a"), h, "tanh"))

    h = inner(x1) + inner(_dense(p, ("pre",), x2, "tanh"))
    return _dense(p, ("out",), h)


def build_deep_nested():
    """A model inside a model inside a model, the innermost also called directly at the top."""
    i1 = keras_nn.Input(shape=(4,), name="i1")
    level1 = keras_nn.Model(i1, layers.Dense(4, activation="tanh", name="d1")(i1), name="level1")
    i2 = keras_nn.Input(shape=(4,), name="i2")
    h2 = layers.Dense(3, activation="tanh", name="d2")(level1(i2))
    level2 = keras_nn.Model(i2, h2, name="level2")
    x = keras_nn.Input(shape=(4,), name="x")
    h = layers.concatenate([level2(x), level1(x)])
    return keras_nn.Model(x, layers.Dense(2, name="out")(h))


def ref_deep_nested(p, xs):
    (x,) = xs
    l1 = _dense(p, ("level1", "d1"), x, "tanh")
    l2 = _dense(p, ("level2", "d2"), _dense(p, ("level1", "d1"), x, "tanh"), "tanh")
    return _dense(p, ("out",), np.concatenate([l2, l1], axis=1))


def build_merges():
    """Every merge layer (with the same tensor twice in one average) on two branches."""
    x1 = keras_nn.Input(shape=(5,), name="x1")
    x2 = keras_nn.Input(shape=(5,), name="x2")
    a = layers.Dense(4, activation="tanh", name="a")(x1)
    b = layers.Dense(4, activation="tanh", name="b")(x2)
    parts = [layers.subtract([a, b]), layers.multiply([a, b]), layers.average([a, b, a]),
             layers.maximum([a, b]), layers.minimum([a, b]), layers.dot([a, b], axes=1),
             layers.Concatenate(axis=1)([b, a])]
    return keras_nn.Model([x1, x2], layers.Dense(2, name="out")(layers.concatenate(parts)))


def ref_merges(p, xs):
    x1, x2 = xs
    a = _dense(p, ("a",), x1, "tanh")
    b = _dense(p, ("b",), x2, "tanh")
    parts = [a - b, a * b, (2 * a + b) / 3, np.maximum(a, b), np.minimum(a, b),
             np.sum(a * b, axis=1, keepdims=True), np.concatenate([b, a], axis=1)]
    return _dense(p, ("out",), np.concatenate(parts, axis=1))


CASES = {
    "fan_out": (build_fan_out, ref_fan_out, [(5,)], 3,
                [("stem",), ("a",), ("b",), ("skip",), ("out",)]),
    "shared": (build_shared, ref_shared, [(3,), (5,)], 2,
               [("proj",), ("shared",), ("square",), ("out",)]),
    "nested": (build_nested, ref_nested, [(6,)], 2,
               [("pre",), ("inner", "inner_a"), ("inner", "inner_b"), ("seq", "seq_a"),
                ("out",)]),
    "nested_twice": (build_nested_twice, ref_nested_twice, [(4,), (4,)], 2,
                     [("pre",), ("inner", "inner_a"), ("inner", "inner_b"), ("out",)]),
    "merges": (build_merges, ref_merges, [(5,), (5,)], 2, [("a",), ("b",), ("out",)]),
    "deep_nested": (build_deep_nested, ref_deep_nested, [(4,)], 2,
                    [("level1", "d1"), ("level2", "d2"), ("out",)]),
}


def _layer(model, path):
    for name in path:
        model = model.get_layer(name)
    return model


def _setup(case, seed=0):
    build, ref, in_shapes, out_dim, paths = CASES[case]
    rng = np.random.default_rng(seed)
    model = build()
    model.compile(optimizer="sgd", loss="mse")
    # Non-zero biases, so that their gradients and the paths through them are exercised.
    for path in paths:
        w, b = _layer(model, path).get_weights()
        _layer(model, path).set_weights([w, rng.normal(0.0, 0.3, b.shape).astype(np.float32)])
    n = 7  # an odd batch
    xs = [rng.normal(size=(n, *s)).astype(np.float32) for s in in_shapes]
    y = rng.normal(size=(n, out_dim)).astype(np.float32)
    x = xs if len(xs) > 1 else xs[0]
    return model, ref, paths, x, xs, y


def _reference(model, ref, paths, xs, y):
    """float64 parameters {path: [w, b]} read from the model, and the loss closure over them."""
    params = {path: [w.astype(np.float64) for w in _layer(model, path).get_weights()]
              for path in paths}
    xs64 = [x.astype(np.float64) for x in xs]
    y64 = y.astype(np.float64)

    def loss():
        return float(np.mean((ref(params, xs64) - y64) ** 2))

    return params, loss


def _fd(params, loss, path, i):
    arr = params[path][i]
    g = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + EPS
        up = loss()
        arr[idx] = old - EPS
        down = loss()
        arr[idx] = old
        g[idx] = (up - down) / (2 * EPS)
    return g


def _weight_paths(model, paths):
    """(path, index) of each entry of model.trainable_weights, by identity with the layers'."""
    owners = []
    for w in model.trainable_weights:
        hits = [(path, i) for path in paths
                for i, lw in enumerate(_layer(model, path).trainable_weights) if lw is w]
        assert len(hits) == 1, ("each model.trainable_weights entry must be one layer's weight "
                                f"object; got {len(hits)} owners for a weight of shape "
                                f"{tuple(np.shape(w))}")
        owners.append(hits[0])
    return owners


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_float64_finite_differences(case, isa):
    model, ref, paths, x, xs, y = _setup(case)
    params, loss = _reference(model, ref, paths, xs, y)
    got_loss, grads = model._gradients(x, y)
    np.testing.assert_allclose(got_loss, loss(), rtol=1e-5)
    owners = _weight_paths(model, paths)
    # shared layers (and a nested model called twice) count their weights once
    assert len(grads) == len(owners) == 2 * len(paths)
    assert sorted(owners) == sorted((path, i) for path in paths for i in (0, 1))
    for g, (path, i) in zip(grads, owners):
        ref_g = _fd(params, loss, path, i)
        assert np.shape(g) == ref_g.shape, (path, i)
        scale = np.max(np.abs(ref_g))
        assert scale > 1e-6, f"{path}[{i}]: the reference gradient is zero, the check is void"
        err = np.max(np.abs(np.asarray(g, np.float64) - ref_g))
        assert err <= RTOL * scale, f"{'/'.join(path)}[{i}]: max error {err:.3g} vs {scale:.3g}"


def test_frozen_nested_model_has_no_gradients_and_passes_them_through():
    """inner.trainable = False: its weights leave trainable_weights, `pre` (below it) still gets
    the gradient that flows through it."""
    model, ref, paths, x, xs, y = _setup("nested")
    model.get_layer("inner").trainable = False
    params, loss = _reference(model, ref, paths, xs, y)
    _, grads = model._gradients(x, y)
    live = [p for p in paths if p[0] != "inner"]
    owners = _weight_paths(model, live)
    assert len(grads) == len(owners) == 2 * len(live)
    for g, (path, i) in zip(grads, owners):
        ref_g = _fd(params, loss, path, i)
        err = np.max(np.abs(np.asarray(g, np.float64) - ref_g))
        assert err <= RTOL * np.max(np.abs(ref_g)), f"{'/'.join(path)}[{i}]"


def test_multi_output_with_an_output_that_is_also_consumed():
    """h is a model output and the input of the second output's layer: both losses reach it."""
    x_in = keras_nn.Input(shape=(5,), name="x")
    h = layers.Dense(4, activation="tanh", name="h")(x_in)
    z = layers.Dense(2, name="z")(h)
    model = keras_nn.Model(x_in, [h, z])
    model.compile(optimizer="sgd", loss=["mse", "mse"], loss_weights=[1.0, 0.5])
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    y = [rng.normal(size=(7, 4)).astype(np.float32), rng.normal(size=(7, 2)).astype(np.float32)]
    paths = [("h",), ("z",)]
    params = {p: [w.astype(np.float64) for w in _layer(model, p).get_weights()] for p in paths}

    def loss():
        hh = _dense(params, ("h",), x.astype(np.float64), "tanh")
        zz = _dense(params, ("z",), hh)
        return float(np.mean((hh - y[0]) ** 2) + 0.5 * np.mean((zz - y[1]) ** 2))

    got_loss, grads = model._gradients(x, y)
    np.testing.assert_allclose(got_loss, loss(), rtol=1e-5)
    owners = _weight_paths(model, paths)
    assert len(grads) == 4
    for g, (path, i) in zip(grads, owners):
        ref_g = _fd(params, loss, path, i)
        err = np.max(np.abs(np.asarray(g, np.float64) - ref_g))
        assert err <= RTOL * np.max(np.abs(ref_g)), f"{'/'.join(path)}[{i}]"


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_do_not_leak_between_calls(case):
    """Accumulators are summed within one backward pass, never across passes."""
    model, _, _, x, _, y = _setup(case)
    loss1, g1 = model._gradients(x, y)
    loss2, g2 = model._gradients(x, y)
    assert loss1 == loss2
    for u, v in zip(g1, g2):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("case", list(CASES))
def test_sgd_step_applies_the_summed_gradients(case):
    """One train_on_batch with plain SGD moves each weight by -lr * its (summed) gradient."""
    model, _, paths, x, _, y = _setup(case)
    model.compile(optimizer=keras_nn.optimizers.SGD(learning_rate=0.1), loss="mse")
    _, grads = model._gradients(x, y)
    before = [np.array(w, copy=True) for w in model.trainable_weights]
    model.train_on_batch(x, y)
    for w0, g, w1 in zip(before, grads, model.trainable_weights):
        np.testing.assert_allclose(np.asarray(w1), w0 - 0.1 * np.asarray(g), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_input_gradients_match_float64_finite_differences(case):
    """model.input_gradients(x, output_grads): d(sum(outputs * gout))/d(inputs) for a fixed gout."""
    model, ref, paths, x, xs, y = _setup(case)
    params, _ = _reference(model, ref, paths, xs, y)
    gout = np.random.default_rng(4).normal(size=y.shape)
    xs64 = [a.astype(np.float64) for a in xs]
    _, before = model._gradients(x, y)
    got = model.input_gradients(x, lambda out: gout.astype(np.float32))
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(xs64)
    for k, (g, a) in enumerate(zip(got, xs64)):
        ref_g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + EPS
            up = np.sum(ref(params, xs64) * gout)
            a[idx] = old - EPS
            down = np.sum(ref(params, xs64) * gout)
            a[idx] = old
            ref_g[idx] = (up - down) / (2 * EPS)
        assert np.shape(g) == a.shape
        err = np.max(np.abs(np.asarray(g, np.float64) - ref_g))
        assert err <= RTOL * np.max(np.abs(ref_g)), f"input {k}: {err:.3g}"
    # and the weight gradients of a training step are untouched by it
    _, after = model._gradients(x, y)
    for u, v in zip(before, after):
        np.testing.assert_array_equal(u, v)
