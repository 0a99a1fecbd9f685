"""Optimizer steps, regularizers and the training kernels (activations, fused softmax
cross-entropy) against plain NumPy formulas; thread-count independence."""

from __future__ import annotations

import os

import numpy as np
import pytest

import nncore
from nncore import kernels as ops
from nncore import layers, losses, models, optimizers, regularizers, utils
from conftest import platform_skipif, require

# ---- optimizer steps vs hand-written NumPy -----------------------------------------------------


def np_sgd(w, g, m, lr, mu, nesterov):
    if mu == 0:
        return w - lr * g, m
    m = mu * m - lr * g
    return (w + mu * m - lr * g if nesterov else w + m), m


def np_adam(w, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-7):
    alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    m = m + (g - m) * (1 - b1)
    v = v + (g * g - v) * (1 - b2)
    return w - alpha * m / (np.sqrt(v) + eps), m, v


def np_rmsprop(w, g, v, mom, avg, lr, rho, mu, eps, centered):
    v = rho * v + (1 - rho) * g * g
    if centered:
        avg = rho * avg + (1 - rho) * g
        den = v - avg * avg + eps
    else:
        den = v + eps
    inc = lr * g / np.sqrt(den)
    if mu:
        mom = mu * mom + inc
        return w - mom, v, mom, avg
    return w - inc, v, mom, avg


def _steps(opt, n_steps, rng, reg=None):
    w = rng.normal(size=(37, 5)).astype(np.float32)
    w[0, :3] = 0.0  # sign(0) = 0 for L1
    gs = [rng.normal(size=w.shape).astype(np.float32) for _ in range(n_steps)]
    work = w.copy()
    for g in gs:
        opt.apply([work], [g], [reg])
    return w.astype(np.float64), [g.astype(np.float64) for g in gs], work


def _reg_grad(w, reg):
    if reg is None:
        return 0.0
    return reg.l1 * np.sign(w) + 2 * reg.l2 * w


@pytest.mark.parametrize("mu,nesterov", [(0.0, False), (0.9, False), (0.8, True)])
def test_sgd_matches_numpy(rng, mu, nesterov):
    reg = regularizers.l1_l2(l1=0.01, l2=0.02)
    opt = optimizers.SGD(learning_rate=0.1, momentum=mu, nesterov=nesterov)
    w, gs, got = _steps(opt, 3, rng, reg)
    m = np.zeros_like(w)
    for g in gs:
        w, m = np_sgd(w, g + _reg_grad(w, reg), m, 0.1, mu, nesterov)
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


def test_adam_matches_numpy(rng):
    reg = regularizers.l2(0.05)
    opt = optimizers.Adam(learning_rate=0.01)
    w, gs, got = _steps(opt, 4, rng, reg)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(gs, 1):
        w, m, v = np_adam(w, g + _reg_grad(w, reg), m, v, t, 0.01)
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
    assert opt.iterations == 4


@pytest.mark.parametrize("mu,centered", [(0.0, False), (0.5, True), (0.0, True), (0.7, False)])
def test_rmsprop_matches_numpy(rng, mu, centered):
    reg = regularizers.l1(0.01)
    opt = optimizers.RMSprop(learning_rate=0.01, momentum=mu, centered=centered)
    w, gs, got = _steps(opt, 3, rng, reg)
    v, mom, avg = (np.zeros_like(w) for _ in range(3))
    for g in gs:
        w, v, mom, avg = np_rmsprop(w, g + _reg_grad(w, reg), v, mom, avg, 0.01, 0.9, mu, 1e-7,
                                    centered)
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


def test_keras_defaults_and_strings():
    assert optimizers.get("sgd").get_config() == {
        "name": "SGD", "learning_rate": 0.01, "momentum": 0.0, "nesterov": False,
        "weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
        "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None}
    adam = optimizers.get("adam")
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999,
                                                                           1e-7)
    rms = optimizers.get("rmsprop")
    assert (rms.learning_rate, rms.rho, rms.momentum, rms.epsilon) == (0.001, 0.9, 0.0, 1e-7)
    with pytest.raises(ValueError):
        optimizers.get("adagrad2")
    with pytest.raises(ValueError):
        optimizers.SGD(learning_rate=float("nan"))


def test_update_bitwise_equal_for_any_thread_count(rng, threads):
    w0 = rng.normal(size=300_001).astype(np.float32)
    g = rng.normal(size=w0.shape).astype(np.float32)
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
        ops.adam_update(w, g, m, v, step=3, learning_rate=0.01, l1=0.01, l2=0.1)
        outs.append(w)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_update_rejects_bad_inputs():
    w = np.zeros(4, np.float32)
    with pytest.raises(ValueError):
        ops.sgd_update(w, np.zeros(5, np.float32), learning_rate=0.1)
    with pytest.raises(TypeError):
        ops.sgd_update(np.zeros(4), np.zeros(4), learning_rate=0.1)
    with pytest.raises(ValueError):
        ops.adam_update(w, w.copy(), np.zeros(3, np.float32), np.zeros(4, np.float32), step=1,
                        learning_rate=0.1)


# ---- regularization: penalty in the loss, gradient in the update --------------------------------


def test_regularization_penalty_and_gradient(rng):
    utils.set_random_seed(0)
    model = models.Sequential([
        layers.Dense(4, input_shape=(3,), kernel_regularizer=regularizers.l2(0.1),
                     bias_regularizer=regularizers.l1(0.05), bias_initializer="ones"),
        layers.Dense(2, kernel_regularizer=regularizers.l1_l2(l1=0.01, l2=0.02)),
    ])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    k1, b1, k2, b2 = (w.astype(np.float64) for w in model.get_weights())
    pred = (x @ k1 + b1) @ k2 + b2
    penalty = (0.1 * (k1 ** 2).sum() + 0.05 * np.abs(b1).sum() + 0.01 * np.abs(k2).sum()
               + 0.02 * (k2 ** 2).sum())
    data = np.mean((pred - y) ** 2)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(data + penalty, rel=1e-5)
    _, grads = model._gradients(x, y)
    before = model.get_weights()
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(data + penalty, rel=1e-5)
    regs = [(0.0, 0.1), (0.05, 0.0), (0.01, 0.02), (0.0, 0.0)]
    for w0, g, w1, (l1, l2) in zip(before, grads, model.get_weights(), regs):
        want = w0 - 0.1 * (g + l1 * np.sign(w0) + 2 * l2 * w0)
        np.testing.assert_allclose(w1, want, rtol=1e-5, atol=1e-6)


def test_regularizer_objects():
    assert regularizers.l2()(np.array([1.0, -2.0])) == pytest.approx(0.05)
    assert regularizers.l1(0.5)(np.array([1.0, -2.0])) == pytest.approx(1.5)
    # Keras 3: l1_l2 is the class L1L2, whose defaults are 0.0, 0.0; 'l1l2'/'L1L2' name it and
    # 'l1_l2' is not a valid string identifier; l1/l2 default to 0.01.
    assert regularizers.l1_l2 is regularizers.L1L2
    assert regularizers.l1 is regularizers.L1 and regularizers.l2 is regularizers.L2
    assert regularizers.l1_l2().get_config() == {"l1": 0.0, "l2": 0.0}
    assert regularizers.L1L2(l2=0.1).get_config() == {"l1": 0.0, "l2": 0.1}
    assert regularizers.l1_l2(l1=0.01, l2=0.01).get_config() == {"l1": 0.01, "l2": 0.01}
    for name in ("l1l2", "L1L2"):
        assert regularizers.get(name).get_config() == {"l1": 0.0, "l2": 0.0}
    for name in ("l1", "L1"):
        assert regularizers.get(name).get_config() == {"l1": 0.01}
    for name in ("l2", "L2"):
        assert regularizers.get(name).get_config() == {"l2": 0.01}
    assert regularizers.l1().get_config() == {"l1": 0.01}
    assert regularizers.l2().get_config() == {"l2": 0.01}
    with pytest.raises(ValueError, match="l1l2"):
        regularizers.get("l1_l2")
    with pytest.raises(ValueError):
        regularizers.L2(-1.0)


# ---- activations and fused losses --------------------------------------------------------------


@pytest.mark.parametrize("name", ["linear", "relu", "sigmoid", "tanh", "softmax"])
def test_activation_forward_backward(rng, name):
    x = (rng.normal(size=(13, 7)) * 3).astype(np.float32)
    x64 = x.astype(np.float64)
    ref = {"linear": x64, "relu": np.maximum(x64, 0), "sigmoid": 1 / (1 + np.exp(-x64)),
           "tanh": np.tanh(x64),
           "softmax": np.exp(x64 - x64.max(1, keepdims=True))
           / np.exp(x64 - x64.max(1, keepdims=True)).sum(1, keepdims=True)}[name]
    y = ops.activation(x, name)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    dy = rng.normal(size=x.shape).astype(np.float32)
    dx = ops.activation_backward(dy, y, name)
    eps = 1e-6
    fd = np.zeros_like(x64)
    for j in range(x.shape[1]):  # softmax rows couple; perturb one column at a time per row
        for i in range(x.shape[0]):
            xp, xm = x64.copy(), x64.copy()
            xp[i, j] += eps
            xm[i, j] -= eps
            f = {"linear": lambda v: v, "relu": lambda v: np.maximum(v, 0),
                 "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh,
                 "softmax": lambda v: np.exp(v - v.max(1, keepdims=True))
                 / np.exp(v - v.max(1, keepdims=True)).sum(1, keepdims=True)}[name]
            fd[i, j] = ((f(xp) - f(xm)) * dy).sum() / (2 * eps)
    np.testing.assert_allclose(dx, fd, rtol=1e-3, atol=1e-4)


def test_fused_softmax_xent_stable_and_correct(rng):
    z = (rng.normal(size=(11, 10)) * 5).astype(np.float32)
    z[0, 3] = 1e4  # would overflow exp without the max shift
    z[1, :] = -1e4
    y = rng.integers(0, 10, 11)
    loss, d = ops.softmax_cross_entropy(z, y, grad_scale=1 / 11)
    z64 = z.astype(np.float64)
    lse = np.log(np.exp(z64 - z64.max(1, keepdims=True)).sum(1)) + z64.max(1)
    np.testing.assert_allclose(loss, lse - z64[np.arange(11), y], rtol=1e-5, atol=1e-4)
    p = np.exp(z64 - lse[:, None])
    np.testing.assert_allclose(d, (p - np.eye(10)[y]) / 11, atol=1e-6)
    onehot = np.eye(10, dtype=np.float32)[y]
    loss2, d2 = ops.softmax_cross_entropy(z, onehot, grad_scale=1 / 11)
    np.testing.assert_allclose(loss2, loss, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(d2, d, atol=1e-6)
    with pytest.raises(ValueError, match="labels must be in"):
        ops.softmax_cross_entropy(z, np.full(11, 10), grad_scale=1.0)


def test_nonfused_losses_match_formulas(rng):
    p = rng.uniform(0.05, 0.95, (6, 4)).astype(np.float32)
    p /= p.sum(1, keepdims=True)
    y = rng.integers(0, 4, 6)
    onehot = np.eye(4)[y]
    # The functions return per-sample values, as Keras's; the classes reduce to the batch mean.
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(y, p),
                               -np.log(p[np.arange(6), y]), rtol=1e-5)
    assert losses.SparseCategoricalCrossentropy()(y, p) == pytest.approx(
        np.mean(-np.log(p[np.arange(6), y])), rel=1e-5)
    np.testing.assert_allclose(losses.categorical_crossentropy(onehot, p),
                               -np.log(p[np.arange(6), y]), rtol=1e-5)
    t = rng.random((6, 4))
    np.testing.assert_allclose(losses.binary_crossentropy(t, p),
                               np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)), -1), rtol=1e-5)
    np.testing.assert_allclose(losses.mean_squared_error(t, p), np.mean((t - p) ** 2, -1),
                               rtol=1e-5)
    assert losses.MeanSquaredError()(t, p) == pytest.approx(np.mean((t - p) ** 2), rel=1e-5)


def test_training_kernels_bitwise_equal_for_any_thread_count(rng, threads):
    z = rng.normal(size=(5003, 10)).astype(np.float32)
    y = rng.integers(0, 10, 5003)
    x = rng.normal(size=(301, 1013)).astype(np.float32)
    results = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        out = list(ops.softmax_cross_entropy(z, y, grad_scale=0.5))
        for name in ("relu", "sigmoid", "tanh", "softmax"):
            a = ops.activation(x, name)
            out += [a, ops.activation_backward(x, a, name)]
        results.append(out)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_core_rejects_bad_inputs_without_crashing():
    from nncore import _core

    z = np.zeros((3, 4), np.float32)
    loss = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="out of range"):
        _core.softmax_xent_sparse(loss, None, z, np.array([0, 4, 1], np.int32), 1.0)
    with pytest.raises(TypeError):
        _core.softmax_xent_sparse(loss, None, z, np.array([0, 1, 1], np.int64), 1.0)
    with pytest.raises(ValueError):
        _core.softmax_xent_dense(np.zeros(2, np.float32), None, z, z, 1.0)
    with pytest.raises(ValueError):
        _core.activation_forward(np.zeros(5, np.float32), np.zeros(4, np.float32), 1)
    with pytest.raises(ValueError):
        _core.activation_forward(np.zeros(4, np.float32), np.zeros(4, np.float32), 9)
    with pytest.raises(ValueError):
        _core.adam_update(np.zeros(4, np.float32), np.zeros(4, np.float32),
                          np.zeros(4, np.float32), np.zeros(3, np.float32), 0.1, 0.9, 0.999,
                          1e-7, 0.0, 0.0)
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.sgd_update(ro, np.zeros(4, np.float32), None, 0.1, 0.0, False, 0.0, 0.0)
    with pytest.raises(ValueError):
        ops.activation(np.zeros((2, 2)), "gelu")
    with pytest.raises(TypeError):
        ops.activation(np.array(["a"]), "relu")
    with pytest.raises(ValueError):
        ops.softmax_cross_entropy(z, np.zeros(4, np.int64))


# ---- optimizer slots belong to one weight ------------------------------------------------------


def test_slots_keyed_by_weight_identity(rng):
    """Reusing an optimizer on other arrays of the same shapes starts fresh moments for them."""
    opt = optimizers.SGD(learning_rate=0.1, momentum=0.9)
    wa = rng.normal(size=(4, 3)).astype(np.float32)
    wb = rng.normal(size=(4, 3)).astype(np.float32)
    ga = rng.normal(size=(4, 3)).astype(np.float32)
    gb = rng.normal(size=(4, 3)).astype(np.float32)
    wb0 = wb.copy()
    opt.apply([wa], [ga], [None])
    opt.apply([wb], [gb], [None])
    np.testing.assert_allclose(wb, wb0 - 0.1 * gb, rtol=1e-6)  # not 0.9 * (a's velocity)
    wa1 = wa.copy()
    opt.apply([wa], [ga], [None])  # a's own velocity is still there
    np.testing.assert_allclose(wa, wa1 + 0.9 * (-0.1 * ga) - 0.1 * ga, rtol=1e-5, atol=1e-7)


def _three_dense(seed):
    utils.set_random_seed(seed)
    return models.Sequential([layers.Dense(3, input_shape=(3,)), layers.Dense(3),
                              layers.Dense(3)])


@pytest.mark.parametrize("make_opt", [lambda: optimizers.SGD(0.1, momentum=0.9),
                                      lambda: optimizers.Adam(0.01),
                                      lambda: optimizers.RMSprop(0.01, momentum=0.5)])
def test_shared_optimizer_and_trainable_changes_keep_slots_apart(rng, make_opt):
    x = rng.normal(size=(6, 3)).astype(np.float32)
    y = rng.normal(size=(6, 3)).astype(np.float32)
    # Model m: train layer 0 only, then layer 1 only (same shapes: the old shape-list matching
    # handed layer 0's moments to layer 1). Reference r: a fresh optimizer for the second phase,
    # with the same iteration count.
    m, r = _three_dense(1), _three_dense(1)
    opt = make_opt()
    m.compile(optimizer=opt, loss="mse")
    for lay in m.layers[1:]:
        lay.trainable = False
    m.train_on_batch(x, y)
    r.set_weights(m.get_weights())
    m.layers[0].trainable, m.layers[1].trainable = False, True
    m.train_on_batch(x, y)
    ropt = make_opt()
    ropt.iterations = 1
    r.compile(optimizer=ropt, loss="mse")
    r.layers[0].trainable = r.layers[2].trainable = False
    r.train_on_batch(x, y)
    for a, b in zip(m.get_weights(), r.get_weights()):
        np.testing.assert_array_equal(a, b)
    # One optimizer shared by two models of the same architecture: the second model's first
    # step uses fresh moments.
    a, b, c = _three_dense(2), _three_dense(3), _three_dense(3)
    shared = make_opt()
    a.compile(optimizer=shared, loss="mse")
    b.compile(optimizer=shared, loss="mse")
    a.train_on_batch(x, y)
    b.train_on_batch(x, y)
    fresh = make_opt()
    fresh.iterations = 1
    c.compile(optimizer=fresh, loss="mse")
    c.train_on_batch(x, y)
    for u, v in zip(b.get_weights(), c.get_weights()):
        np.testing.assert_array_equal(u, v)


# ---- every optimizer against Keras 3: 20-step trajectories from identical weights ----------------
@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    return require("keras")


def _target_grad(w, k, c):
    # A weight-dependent gradient (a quadratic bowl plus a step-dependent wobble), so the
    # trajectory, not just one step, has to agree.
    return (2.0 * (w - c) + np.float32(0.3) * np.sin(np.float32(k) + c)).astype(np.float32)


OPT_CASES = [
    ("SGD", {"learning_rate": 0.05}),
    ("SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"learning_rate": 0.01}),
    ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("Adam", {"learning_rate": 0.01, "clipnorm": 0.5}),
    ("Adam", {"learning_rate": 0.01, "global_clipnorm": 0.8}),
    ("Adam", {"learning_rate": 0.01, "clipvalue": 0.2, "weight_decay": 0.05}),
    ("AdamW", {"learning_rate": 0.01}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True,
                 "weight_decay": 0.02}),
    ("Nadam", {"learning_rate": 0.01}),
    ("Nadam", {"learning_rate": 0.02, "beta_1": 0.8, "weight_decay": 0.01}),
    ("Adamax", {"learning_rate": 0.02}),
    ("Adamax", {"learning_rate": 0.02, "global_clipnorm": 1.0}),
    ("Adagrad", {"learning_rate": 0.1}),
    ("Adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.5, "weight_decay": 0.01}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Adadelta", {"learning_rate": 0.5, "rho": 0.9, "clipnorm": 1.0}),
    ("Ftrl", {"learning_rate": 0.1}),
    ("Ftrl", {"learning_rate": 0.1, "learning_rate_power": -0.7, "l1_regularization_strength": 0.01,
              "l2_regularization_strength": 0.02, "l2_shrinkage_regularization_strength": 0.01,
              "beta": 0.3}),
    ("Lion", {"learning_rate": 0.003}),
    ("Lion", {"learning_rate": 0.003, "beta_1": 0.95, "beta_2": 0.98, "weight_decay": 0.1}),
    ("Adam", {"learning_rate": 0.01, "use_ema": True, "ema_momentum": 0.9}),
    ("SGD", {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.8,
             "ema_overwrite_frequency": 3}),
]


@pytest.mark.parametrize("name,kw", OPT_CASES,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"
                              for n, kw in OPT_CASES])
@pytest.mark.parametrize("with_reg", [False, True])
def test_trajectory_matches_keras(keras, rng, name, kw, with_reg):
    shapes = [(13, 7), (7,)]
    w0 = [rng.normal(size=s).astype(np.float32) for s in shapes]
    cs = [rng.normal(size=s).astype(np.float32) for s in shapes]
    reg = regularizers.l1_l2(l1=0.003, l2=0.01) if with_reg else None
    ours = getattr(optimizers, name)(**kw)
    theirs = getattr(keras.optimizers, name)(**kw)
    mine = [w.copy() for w in w0]
    kvars = [keras.Variable(w.copy()) for w in w0]
    for k in range(20):
        gs = [_target_grad(w, k, c) for w, c in zip(mine, cs)]
        ours.apply(mine, gs, [reg, reg])
        kg = []
        for v, c in zip(kvars, cs):
            wv = np.asarray(v.numpy())
            g = _target_grad(wv, k, c)
            if reg is not None:  # Keras: the penalty is in the loss, its gradient in g
                g = g + np.float32(reg.l1) * np.sign(wv) + np.float32(2 * reg.l2) * wv
            kg.append(g.astype(np.float32))
        theirs.apply(kg, kvars)
        for a, v in zip(mine, kvars):
            np.testing.assert_allclose(a, v.numpy(), rtol=1e-4, atol=1e-5,
                                       err_msg=f"step {k + 1}")
    assert ours.iterations == 20


@pytest.mark.parametrize("kw", [{"learning_rate": 0.01}, {"learning_rate": 0.01, "amsgrad": True,
                                                           "weight_decay": 0.01}])
def test_adam_fused_matches_numpy_with_amsgrad_and_decay(rng, kw):
    w, gs, got = _steps(optimizers.Adam(**kw), 5, rng)
    m, v, vhat = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, 1):
        w = w - w * kw.get("weight_decay", 0.0) * 0.01
        alpha = 0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        m = m + (g - m) * 0.1
        v = v + (g * g - v) * 0.001
        vhat = np.maximum(vhat, v) if kw.get("amsgrad") else v
        w = w - alpha * m / (np.sqrt(vhat) + 1e-7)
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["AdamW", "Nadam", "Adamax", "Adagrad", "Adadelta", "Ftrl",
                                  "Lion"])
def test_new_kernels_bitwise_equal_for_any_thread_count(rng, threads, name):
    w0 = rng.normal(size=300_001).astype(np.float32)
    g = rng.normal(size=w0.shape).astype(np.float32)
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        w = w0.copy()
        opt = getattr(optimizers, name)(learning_rate=0.01)
        for _ in range(2):
            opt.apply([w], [g], [regularizers.l1_l2(l1=0.01, l2=0.1)])
        outs.append(w)
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("name", ["Nadam", "Adamax", "Adagrad", "Adadelta", "Ftrl", "Lion"])
def test_new_kernels_reject_bad_inputs(name):
    w = np.zeros(4, np.float32)
    opt = getattr(optimizers, name)()
    with pytest.raises(ValueError):
        opt.apply([w], [np.zeros(5, np.float32)], [None])
    with pytest.raises(TypeError):
        opt.apply([w], [np.zeros(4, np.float64).astype(np.int32)], [None])


def test_degenerate_hyperparameters_are_refused():
    # Issue 17 item 14: beta_1 = 1 gave 1 - beta_1^t = 0 and an infinite step.
    for cls in (optimizers.Adam, optimizers.AdamW, optimizers.Nadam, optimizers.Adamax):
        for bad in (1.0, 1.5, -0.1, float("nan")):
            with pytest.raises(ValueError, match="beta_1"):
                cls(beta_1=bad)
    for cls in (optimizers.Adam, optimizers.AdamW, optimizers.Nadam):
        with pytest.raises(ValueError, match="beta_2"):
            cls(beta_2=1.0)
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Lion(beta_1=0.0)
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.SGD(clipnorm=1.0, clipvalue=0.5)
    with pytest.raises(ValueError):
        optimizers.Adam(clipnorm=0.0)
    with pytest.raises(ValueError):
        optimizers.SGD(use_ema=True, ema_overwrite_frequency=0)
    with pytest.raises(TypeError):
        optimizers.Adam(beta_1=True)
    assert optimizers.Adam(beta_1=0.0).beta_1 == 0.0


def test_schedule_as_learning_rate(rng):
    sched = optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    opt = optimizers.SGD(learning_rate=sched)
    w = np.ones(3, np.float32)
    seen = []
    for _ in range(4):
        seen.append(opt.learning_rate)
        before = w.copy()
        opt.apply([w], [np.ones(3, np.float32)], [None])
        np.testing.assert_allclose(before - w, np.float32(seen[-1]), rtol=1e-6)
    np.testing.assert_allclose(seen, [0.1 * 0.5 ** (k / 2) for k in range(4)], rtol=1e-6)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.5
    back = optimizers.deserialize(optimizers.serialize(opt))
    assert isinstance(back._schedule, optimizers.schedules.ExponentialDecay)
    assert back.get_config() == opt.get_config()


@pytest.mark.parametrize("name,kw", [("SGD", {"momentum": 0.9}), ("Adam", {"amsgrad": True}),
                                     ("RMSprop", {"centered": True, "momentum": 0.3}),
                                     ("Nadam", {}), ("Adamax", {}), ("Adagrad", {}),
                                     ("Adadelta", {}), ("Ftrl", {}), ("Lion", {}),
                                     ("AdamW", {"use_ema": True, "ema_overwrite_frequency": 4})])
def test_state_roundtrip_resumes_exactly(rng, name, kw):
    shapes = [(5, 3), (3,)]
    w0 = [rng.normal(size=s).astype(np.float32) for s in shapes]
    cs = [rng.normal(size=s).astype(np.float32) for s in shapes]
    reg = regularizers.l2(0.01)

    def run(opt, ws, steps, start):
        for k in range(start, start + steps):
            opt.apply(ws, [_target_grad(w, k, c) for w, c in zip(ws, cs)], [reg, None])

    straight = [w.copy() for w in w0]
    run(getattr(optimizers, name)(learning_rate=0.01, **kw), straight, 12, 0)

    first = [w.copy() for w in w0]
    opt = getattr(optimizers, name)(learning_rate=0.01, **kw)
    run(opt, first, 5, 0)
    state = opt.get_state(first)
    saved_w = [w.copy() for w in first]
    run(opt, first, 3, 5)  # diverge, then restore into a fresh optimizer and new arrays
    resumed = [w.copy() for w in saved_w]
    fresh = optimizers.deserialize(optimizers.serialize(opt))
    fresh.set_state(resumed, state)
    assert fresh.iterations == 5
    run(fresh, resumed, 7, 5)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        fresh.set_state(resumed, state[:-1])


def test_every_optimizer_trains_a_model(rng):
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 1.5], np.float32))[:, None]
    for name in ("AdamW", "Nadam", "Adamax", "Adagrad", "Adadelta", "Ftrl", "Lion"):
        utils.set_random_seed(0)
        model = models.Sequential([layers.Dense(1, input_shape=(4,))])
        lr = {"Adadelta": 1.0, "Adagrad": 0.5, "Ftrl": 0.5, "Lion": 0.01}.get(name, 0.05)
        model.compile(optimizer=getattr(optimizers, name)(learning_rate=lr), loss="mse")
        first = model.evaluate(x, y, verbose=0)
        model.fit(x, y, epochs=20, batch_size=16, verbose=0)
        # Adadelta starts with tiny steps (sqrt(epsilon)-sized), as in Keras.
        assert model.evaluate(x, y, verbose=0) < (0.95 if name == "Adadelta" else 0.5) * first, \
            name


# ---- the new fused kernels against their formulas in float64 NumPy, odd sizes -------------------
def _np_step(name, w, g, s, t, lr, wd):
    """One step of `name` in float64 from the docstring formulas; s holds the slots."""
    w = w - w * wd * lr
    if name == "Nadam":
        b1, b2 = 0.9, 0.999
        u = lambda k: b1 * (1 - 0.5 * 0.96 ** k)  # noqa: E731
        s["up"] = s.get("up", 1.0) * u(t)
        s["m"] = s["m"] + (g - s["m"]) * (1 - b1)
        s["v"] = s["v"] + (g * g - s["v"]) * (1 - b2)
        m_hat = u(t + 1) * s["m"] / (1 - s["up"] * u(t + 1)) + (1 - u(t)) * g / (1 - s["up"])
        return w - lr * m_hat / (np.sqrt(s["v"] / (1 - b2 ** t)) + 1e-7)
    if name == "Adamax":
        s["m"] = s["m"] + (g - s["m"]) * 0.1
        s["v"] = np.maximum(0.999 * s["v"], np.abs(g))
        return w - lr * s["m"] / ((1 - 0.9 ** t) * (s["v"] + 1e-7))
    if name == "Adagrad":
        s["m"] = s["m"] + g * g
        return w - lr * g / np.sqrt(s["m"] + 1e-7)
    if name == "Adadelta":
        s["m"] = 0.95 * s["m"] + 0.05 * g * g
        d = -np.sqrt(s["v"] + 1e-7) * g / np.sqrt(s["m"] + 1e-7)
        s["v"] = 0.95 * s["v"] + 0.05 * d * d
        return w + lr * d
    if name == "Ftrl":
        p, l1, l2, shrink, beta = 0.7, 0.01, 0.02, 0.03, 0.3
        a_new = s["m"] + g * g
        s["v"] = s["v"] + g + 2 * shrink * w - (a_new ** p - s["m"] ** p) / lr * w
        s["m"] = a_new
        quad = a_new ** p / lr + 2 * (l2 + beta / (2 * lr))
        return (np.clip(s["v"], -l1, l1) - s["v"]) / quad
    if name == "Lion":
        c = 0.9 * s["m"] + 0.1 * g
        s["m"] = 0.99 * s["m"] + 0.01 * g
        return w - lr * np.sign(c)
    raise AssertionError(name)


_NEW = {"Nadam": {}, "Adamax": {}, "Adagrad": {}, "Adadelta": {},
        "Ftrl": {"learning_rate_power": -0.7, "l1_regularization_strength": 0.01,
                 "l2_regularization_strength": 0.02,
                 "l2_shrinkage_regularization_strength": 0.03, "beta": 0.3},
        "Lion": {}}


@pytest.mark.parametrize("name", list(_NEW))
@pytest.mark.parametrize("size", [1, 7, 65, 1000])
def test_new_kernels_match_float64_formulas(rng, name, size):
    lr, wd = 0.05, 0.01
    reg = regularizers.l1_l2(l1=0.01, l2=0.02)
    opt = getattr(optimizers, name)(learning_rate=lr, weight_decay=wd, **_NEW[name])
    w = rng.normal(size=size).astype(np.float32)
    w[0] = 0.0
    ref = w.astype(np.float64)
    init = 0.1 if name in ("Adagrad", "Ftrl") else 0.0
    s = {"m": np.full(size, init), "v": np.zeros(size)}
    for t in range(1, 6):
        g = rng.normal(size=size).astype(np.float32)
        g64 = g.astype(np.float64) + 0.01 * np.sign(ref) + 2 * 0.02 * ref
        opt.apply([w], [g], [reg])
        ref = _np_step(name, ref, g64, s, t, lr, wd)
        np.testing.assert_allclose(w, ref, rtol=2e-5, atol=2e-6, err_msg=f"step {t}")


# ---- the slot table holds weights weakly (issue 17, item 8) ----------------------------------


def _dense_model(n, seed):
    utils.set_random_seed(seed)
    return models.Sequential([layers.Dense(n, input_shape=(n,)), layers.Dense(n)])


@pytest.mark.parametrize("make_opt", [lambda: optimizers.SGD(0.1, momentum=0.9),
                                      lambda: optimizers.Adam(0.01, use_ema=True)])
def test_reused_optimizer_keeps_no_old_model_alive(rng, make_opt):
    """An optimizer reused across models holds neither their weights nor their moments: once
    a model is gone, its entries leave the slot table (at once: no reference cycle), and the
    weights themselves are freed."""
    import gc
    import weakref

    opt = make_opt()
    x = rng.normal(size=(4, 8)).astype(np.float32)
    y = rng.normal(size=(4, 8)).astype(np.float32)
    keep = _dense_model(8, 0)
    keep.compile(optimizer=opt, loss="mse")
    keep.train_on_batch(x, y)
    assert len(opt._slots) == 4
    refs = []
    for seed in range(5):
        m = _dense_model(8, seed + 1)
        m.compile(optimizer=opt, loss="mse")
        m.train_on_batch(x, y)
        refs += [weakref.ref(w) for w in m.trainable_weights]
        del m
        gc.collect()  # a model's layers and graph nodes form cycles
        assert len(opt._slots) == 4, "the old model's slots are still in the table"
    assert all(r() is None for r in refs)
    # The live model's moments are untouched by all that: its next step still uses them.
    assert all(opt._entry(w).weight() is w for w in keep.trainable_weights)
    # An entry dropped when its array dies, without the garbage collector.
    w = np.ones(3, np.float32)
    opt.apply([w], [np.ones(3, np.float32)], [None])
    assert len(opt._slots) == 5
    gc.disable()
    try:
        del w
        assert len(opt._slots) == 4
    finally:
        gc.enable()


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@platform_skipif(not os.path.exists("/proc/self/statm"), "needs /proc/self/statm (Linux)")
def test_reused_optimizer_memory_stays_bounded(rng):
    """Twelve 1024x1024 models trained in turn with one Adam (each ~12 MB of weights and
    moments): the resident size after them stays within three models' worth of the size after
    the first two (without weak slots it grows by ~120 MB)."""
    import gc

    opt = optimizers.Adam(1e-3)
    x = rng.normal(size=(2, 1024)).astype(np.float32)
    y = rng.normal(size=(2, 1024)).astype(np.float32)

    def one():
        utils.set_random_seed(0)
        m = models.Sequential([layers.Dense(1024, input_shape=(1024,))])
        m.compile(optimizer=opt, loss="mse")
        m.train_on_batch(x, y)

    for _ in range(2):
        one()
    gc.collect()
    base = _rss_bytes()
    for _ in range(10):
        one()
        gc.collect()
    grown = _rss_bytes() - base
    assert grown < 3 * 12 * 2 ** 20, f"RSS grew by {grown / 2 ** 20:.0f} MB"
    assert len(opt._slots) == 0


def test_reused_id_gets_fresh_slots(rng):
    """A new weight array that CPython places at a freed array's address (same id) must not
    inherit the dead array's moments."""
    opt = optimizers.SGD(learning_rate=0.1, momentum=0.9)
    g = rng.normal(size=(4, 3)).astype(np.float32)
    for _ in range(1000):
        a = np.ones((4, 3), np.float32)
        opt.apply([a], [g], [None])  # a's velocity is now -0.1 * g
        key = id(a)
        del a
        b = np.ones((4, 3), np.float32)
        if id(b) == key:
            break
    else:
        raise AssertionError("CPython never reused a freed array's id in 1000 tries")
    opt.apply([b], [g], [None])
    np.testing.assert_allclose(b, 1 - 0.1 * g, rtol=1e-6)  # fresh velocity, not 0.9 * old
    assert len(opt._slots) == 1 and opt._slots[key].weight() is b


@pytest.mark.parametrize("opt", ["adam", "sgd_momentum"])
def test_pickled_model_keeps_its_optimizer_state(opt, rng):
    """The slot table holds weights weakly (weak references do not pickle); a pickled or
    deep-copied trained model carries its moments with it, tied to the copy's own weights, and
    the copy's next steps equal the original's."""
    import copy
    import pickle

    utils.set_random_seed(3)
    m = models.Sequential([layers.Input((6,)), layers.Dense(5, activation="relu"),
                           layers.Dense(3)])
    m.compile(optimizer=optimizers.Adam(0.01) if opt == "adam"
              else optimizers.SGD(0.05, momentum=0.9), loss="mse")
    x = rng.normal(size=(16, 6)).astype(np.float32)
    y = rng.normal(size=(16, 3)).astype(np.float32)
    m.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    for twin in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert twin.optimizer.iterations == m.optimizer.iterations == 4
        got = twin.optimizer.get_state(twin.trainable_weights)
        want = m.optimizer.get_state(m.trainable_weights)
        assert len(got) == len(want) > 3
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
        assert all(s is not t for s, t in zip(got[1:], want[1:]))
    twin = pickle.loads(pickle.dumps(m))
    m.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    twin.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(twin.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
