"""Optimizer steps, regularizers and the training kernels (activations, fused softmax
cross-entropy) against plain NumPy formulas; thread-count independence."""

from __future__ import annotations

import numpy as np
import pytest

import nncore
from nncore import layers, losses, models, ops, optimizers, regularizers, utils

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
    assert optimizers.get("sgd").get_config() == {"name": "SGD", "learning_rate": 0.01,
                                                  "momentum": 0.0, "nesterov": False}
    adam = optimizers.get("adam")
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999,
                                                                           1e-7)
    rms = optimizers.get("rmsprop")
    assert (rms.learning_rate, rms.rho, rms.momentum, rms.epsilon) == (0.001, 0.9, 0.0, 1e-7)
    with pytest.raises(ValueError):
        optimizers.get("adagrad")
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
