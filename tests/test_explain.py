"""nncore.explain: Integrated Gradients completeness (CNN, RNN, functional), saliency against
float64 finite differences of a NumPy model, Grad-CAM against a NumPy reference from the layer's
activations and gradients, occlusion against a direct loop; Model.tensor_gradients."""

from __future__ import annotations

import nncore as keras
import numpy as np
import pytest
from nncore import explain, layers


def _cnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((9, 9, 2)),
        layers.Conv2D(4, 3, activation="relu", name="c1"),
        layers.MaxPooling2D(2),
        layers.Conv2D(5, 2, activation="tanh", padding="same", name="c2"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])


def _rnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6, 3)), layers.LSTM(5, return_sequences=True),
                             layers.SimpleRNN(4), layers.Dense(3, activation="softmax")])


def _functional(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1))
    a = layers.Conv2D(3, 3, padding="same", activation="relu", name="trunk")(inp)
    b = layers.Conv2D(3, 3, padding="same", activation="tanh", name="branch")(a)
    s = layers.add([a, b])  # fan-out: the trunk's output feeds two consumers
    g = layers.GlobalAveragePooling2D()(s)
    out = layers.Dense(4, activation="softmax")(layers.concatenate([g, layers.Flatten()(
        layers.MaxPooling2D(4)(a))]))
    return keras.Model(inp, out)


def _randomize(model, rng, scale=0.6):
    model.set_weights([scale * rng.normal(size=w.shape).astype(np.float32)
                       for w in model.get_weights()])


CASES = {"cnn": (_cnn, (9, 9, 2)), "rnn": (_rnn, (6, 3)), "functional": (_functional, (8, 8, 1))}


def _score_diff(model, x, base, target):
    """score(x) - score(baseline), computed here from predict, not from explain's numbers."""
    n = len(x)
    p = model.predict(np.concatenate([x, np.broadcast_to(base, x.shape)]), verbose=0)
    return p[np.arange(n), target] - p[n + np.arange(n), target]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("method", ["gausslegendre", "midpoint"])
def test_integrated_gradients_completeness_within_1_percent(case, method, rng):
    """Keras's default initialisation, the usual zero (black) baseline, 64 steps."""
    build, shape = CASES[case]
    model = build()
    x = rng.normal(size=(6,) + shape).astype(np.float32)
    target = np.arange(6) % 3
    attr, residual = explain.integrated_gradients(model, x, target, steps=64, method=method)
    assert attr.shape == x.shape and residual.shape == (6,)
    diff = _score_diff(model, x, np.zeros(shape, np.float32), target)
    assert np.min(np.abs(diff)) > 1e-3, "test inputs must move the score"
    np.testing.assert_allclose(residual, attr.reshape(6, -1).sum(1) - diff, atol=1e-5)
    assert np.all(np.abs(residual) <= 0.01 * np.abs(diff)), (residual, diff)


@pytest.mark.parametrize("case", list(CASES))
def test_integrated_gradients_converge_through_relu_kinks(case, rng):
    """Non-zero biases and baseline: ReLUs and max-pools switch along the path, the integrand
    jumps and every rule converges as 1/steps; the residual shows it, more steps close it."""
    build, shape = CASES[case]
    model = build()
    model.set_weights([w if w.ndim > 1 else 0.1 * rng.normal(size=w.shape).astype(np.float32)
                       for w in model.get_weights()])
    x = rng.normal(size=(6,) + shape).astype(np.float32)
    base = 0.1 * rng.normal(size=shape).astype(np.float32)
    target = np.arange(6) % 3
    diff = _score_diff(model, x, base, target)
    rel = {}
    for steps in (16, 512):
        attr, residual = explain.integrated_gradients(model, x, target, baseline=base,
                                                      steps=steps)
        np.testing.assert_allclose(residual, attr.reshape(6, -1).sum(1) - diff, atol=1e-5)
        rel[steps] = np.max(np.abs(residual) / np.abs(diff))
    assert rel[512] <= 0.01, rel
    assert rel[512] <= rel[16] or rel[16] <= 1e-4, rel


def test_integrated_gradients_residual_reports_a_coarse_rule(rng):
    """The residual is a real check: a 2-point midpoint rule misses completeness visibly."""
    model = _cnn()
    _randomize(model, rng)
    x = rng.normal(size=(4, 9, 9, 2)).astype(np.float32)
    _, fine = explain.integrated_gradients(model, x, 0, steps=64)
    _, coarse = explain.integrated_gradients(model, x, 0, steps=2, method="midpoint")
    assert np.max(np.abs(coarse)) > 10 * np.max(np.abs(fine))


def test_integrated_gradients_of_a_linear_model_is_exact(rng):
    model = keras.Sequential([keras.Input((5,)), layers.Dense(2)])
    w, b = model.get_weights()
    x = rng.normal(size=(3, 5)).astype(np.float32)
    attr, residual = explain.integrated_gradients(model, x, 1, steps=3)
    np.testing.assert_allclose(attr, x * w[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(residual, 0, atol=1e-5)


def test_integrated_gradients_batches_do_not_change_the_result(rng):
    model = _cnn()
    x = rng.normal(size=(3, 9, 9, 2)).astype(np.float32)
    a1, r1 = explain.integrated_gradients(model, x, 2, steps=8, batch_size=5)
    a2, r2 = explain.integrated_gradients(model, x, 2, steps=8, batch_size=1000)
    np.testing.assert_allclose(a1, a2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(r1, r2, atol=1e-6)


# ---- saliency against float64 finite differences of a NumPy twin of the model -------------------
def _np_conv_valid(x, k, b):
    win = np.lib.stride_tricks.sliding_window_view(x, k.shape[:2], axis=(1, 2))
    return np.einsum("nhwcij,ijcf->nhwf", win, k) + b  # (N,OH,OW,C,KH,KW) x (KH,KW,C,F)


def _np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_saliency_equals_float64_finite_differences(rng):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="tanh"),
                              layers.Flatten(), layers.Dense(4, activation="tanh"),
                              layers.Dense(3, activation="softmax")])
    _randomize(model, rng, 0.5)
    k, kb, w1, b1, w2, b2 = [w.astype(np.float64) for w in model.get_weights()]

    def f(x64):  # the same network in float64
        h = np.tanh(_np_conv_valid(x64, k, kb)).reshape(len(x64), -1)
        return _np_softmax(np.tanh(h @ w1 + b1) @ w2 + b2)

    x = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
    target = np.array([2, 0, 1])
    np.testing.assert_allclose(model.predict(x, verbose=0), f(x.astype(np.float64)), atol=1e-5)
    got = explain.saliency(model, x, target)
    eps = 1e-6
    num = np.zeros(x.shape)
    rows = np.arange(3)
    for idx in np.ndindex(x.shape[1:]):
        xp, xm = x.astype(np.float64), x.astype(np.float64)
        xp[(slice(None),) + idx] += eps
        xm[(slice(None),) + idx] -= eps
        num[(slice(None),) + idx] = (f(xp)[rows, target] - f(xm)[rows, target]) / (2 * eps)
    np.testing.assert_allclose(got, num, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(explain.saliency(model, x, target, absolute=True), np.abs(got))
    np.testing.assert_allclose(explain.gradient_x_input(model, x, target), x * got, rtol=1e-6)


def test_saliency_default_target_is_the_predicted_class(rng):
    model = _cnn()
    _randomize(model, rng)
    x = rng.normal(size=(5, 9, 9, 2)).astype(np.float32)
    pred = model.predict(x, verbose=0).argmax(1)
    np.testing.assert_array_equal(explain.saliency(model, x), explain.saliency(model, x, pred))


def test_smoothgrad_is_the_mean_gradient_of_noisy_copies(rng):
    model = _cnn()
    _randomize(model, rng)
    x = rng.normal(size=(2, 9, 9, 2)).astype(np.float32)
    np.testing.assert_allclose(explain.smoothgrad(model, x, 1, samples=3, noise=0.0),
                               explain.saliency(model, x, 1), rtol=1e-6)
    got = explain.smoothgrad(model, x, 1, samples=4, noise=0.2, seed=7)
    r = np.random.default_rng(7)
    sigma = 0.2 * (x.max(axis=(1, 2, 3), keepdims=True) - x.min(axis=(1, 2, 3), keepdims=True))
    want = np.mean([explain.saliency(model, (x + sigma * r.standard_normal(x.shape)).astype(
        np.float32), 1) for _ in range(4)], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# ---- Grad-CAM and tensor_gradients --------------------------------------------------------------
def test_grad_cam_matches_numpy_reference(rng):
    """Activations A from a NumPy conv, dS/dA from the softmax-dense head written out."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((7, 7, 2)),
                              layers.Conv2D(4, 3, activation="relu", name="feat"),
                              layers.Flatten(), layers.Dense(3, activation="softmax")])
    _randomize(model, rng, 0.5)
    k, kb, w, b = [v.astype(np.float64) for v in model.get_weights()]
    x = rng.normal(size=(4, 7, 7, 2)).astype(np.float32)
    target = np.array([0, 1, 2, 1])
    a = np.maximum(_np_conv_valid(x.astype(np.float64), k, kb), 0)  # (4, 5, 5, 4)
    p = _np_softmax(a.reshape(4, -1) @ w + b)
    rows = np.arange(4)
    dz = -p * p[rows, target][:, None]
    dz[rows, target] += p[rows, target]  # d p_t / d z = p_t (e_t - p)
    da = (dz @ w.T).reshape(a.shape)
    acts, grads = model.tensor_gradients(x, "feat", lambda out: np.eye(3)[target])
    np.testing.assert_allclose(acts, a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads, da, rtol=1e-3, atol=1e-6)
    cam_ref = np.maximum((da.mean(axis=(1, 2), keepdims=True) * a).sum(-1), 0)
    cam = explain.grad_cam(model, x, target, "feat")
    assert cam.shape == (4, 5, 5)  # the layer's own resolution
    np.testing.assert_allclose(cam, cam_ref, rtol=1e-3, atol=1e-6)
    signed = explain.grad_cam(model, x, target, "feat", relu=False)
    np.testing.assert_allclose(signed, (da.mean(axis=(1, 2), keepdims=True) * a).sum(-1),
                               rtol=1e-3, atol=1e-6)
    assert np.any(signed < 0) and np.all(cam >= 0)


def test_tensor_gradients_sum_over_fan_out(rng):
    """At a tensor with two consumers the gradient is the sum over both: compared with the
    input gradient of the head (same layers, called again on a new input)."""
    model = _functional()
    _randomize(model, rng)
    x = rng.normal(size=(3, 8, 8, 1)).astype(np.float32)
    gout = rng.normal(size=(3, 4)).astype(np.float32)
    acts, grads = model.tensor_gradients(x, "trunk", lambda out: gout)
    trunk = model.get_layer("trunk")
    np.testing.assert_allclose(acts, keras.Model(model.inputs, trunk.output).predict(
        x, verbose=0), rtol=1e-6)
    inp = keras.Input((8, 8, 3))
    b = model.get_layer("branch")(inp)
    s = layers.add([inp, b])
    by_type = {type(lay).__name__: lay for lay in model.layers}
    g = by_type["GlobalAveragePooling2D"](s)
    m = by_type["Flatten"](by_type["MaxPooling2D"](inp))
    head = keras.Model(inp, by_type["Dense"](by_type["Concatenate"]([g, m])))
    want = head.input_gradients(acts, lambda out: gout)
    np.testing.assert_allclose(grads, want, rtol=1e-5, atol=1e-7)
    # a tensor given directly, and several at once
    (a2, a3), (g2, g3) = model.tensor_gradients(x, [trunk.output, "branch"], lambda out: gout)
    np.testing.assert_allclose(g2, grads, rtol=1e-6)
    assert a3.shape == (3, 8, 8, 3) and g3.shape == a3.shape
    # the model input itself: the same as input_gradients
    _, gx = model.tensor_gradients(x, model.inputs[0], lambda out: gout)
    np.testing.assert_allclose(gx, model.input_gradients(x, lambda out: gout), rtol=1e-6)


def test_tensor_gradients_leave_training_gradients_alone(rng):
    model = _cnn()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = rng.normal(size=(4, 9, 9, 2)).astype(np.float32)
    y = np.array([0, 1, 2, 0])
    before = [w.copy() for w in model.get_weights()]
    model.tensor_gradients(x, "c2", lambda out: np.ones_like(out))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.fit(x, y, epochs=1, verbose=0)  # still trains


def test_bad_layer_and_target_messages(rng):
    model = _cnn()
    x = rng.normal(size=(2, 9, 9, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="no layer named 'nope'.*layers"):
        explain.grad_cam(model, x, 0, "nope")
    with pytest.raises(ValueError, match="Grad-CAM needs a spatial layer"):
        explain.grad_cam(model, x, 0, model.layers[-1].name)
    with pytest.raises(ValueError, match="target 3 is out of range for a model with 3"):
        explain.saliency(model, x, 3)
    with pytest.raises(ValueError, match="one int per sample"):
        explain.saliency(model, x, [0, 1, 2])
    with pytest.raises(ValueError, match="method must be"):
        explain.integrated_gradients(model, x, 0, method="right")
    with pytest.raises(TypeError, match="expected an nncore model"):
        explain.saliency(object(), x, 0)


# ---- occlusion ----------------------------------------------------------------------------------
def _occlusion_loop(model, x, target, win, stride, fill):
    n, h, w, _ = x.shape
    rows = np.arange(n)
    base = model.predict(x, verbose=0)[rows, target]
    total = np.zeros(x.shape)
    count = np.zeros(x.shape[1:])
    for i in range(0, h - win[0] + 1, stride[0]):
        for j in range(0, w - win[1] + 1, stride[1]):
            xo = x.copy()
            xo[:, i:i + win[0], j:j + win[1], :] = fill
            drop = base - model.predict(xo, verbose=0)[rows, target]
            total[:, i:i + win[0], j:j + win[1], :] += drop[:, None, None, None]
            count[i:i + win[0], j:j + win[1], :] += 1
    return total / np.maximum(count, 1)


@pytest.mark.parametrize("win,stride,batch", [((3, 3), (2, 2), None), ((2, 4), (3, 1), 7),
                                              ((9, 9), (1, 1), None)])
def test_occlusion_matches_a_direct_loop(win, stride, batch, rng):
    model = _cnn()
    _randomize(model, rng)
    x = rng.normal(size=(3, 9, 9, 2)).astype(np.float32)
    target = np.array([1, 0, 2])
    got = explain.occlusion(model, x, target, window=win, stride=stride, baseline=0.5,
                            batch_size=batch)
    np.testing.assert_allclose(got, _occlusion_loop(model, x, target, win, stride, 0.5),
                               rtol=1e-5, atol=1e-6)
    assert np.any(got != 0)


def test_subclassed_model_saliency_and_grad_cam(rng):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = layers.Conv2D(3, 3, activation="tanh", name="feat")
            self.flat = layers.Flatten()
            self.out = layers.Dense(2, activation="softmax")

        def call(self, x):
            return self.out(self.flat(self.conv(x)))

    keras.utils.set_random_seed(2)
    model = Net()
    x = rng.normal(size=(2, 6, 6, 1)).astype(np.float32)
    model.predict(x, verbose=0)  # builds the traced graph
    sal = explain.saliency(model, x, 1)
    eps = 1e-2
    num = np.zeros(x.shape)
    for idx in np.ndindex(x.shape[1:]):
        xp, xm = x.astype(np.float64), x.astype(np.float64)
        xp[(slice(None),) + idx] += eps
        xm[(slice(None),) + idx] -= eps
        num[(slice(None),) + idx] = (model.predict(xp, verbose=0)[:, 1] -
                                     model.predict(xm, verbose=0)[:, 1]) / (2 * eps)
    np.testing.assert_allclose(sal, num, rtol=2e-2, atol=2e-4)
    cam = explain.grad_cam(model, x, 1, "feat", relu=False)
    a, g = model.tensor_gradients(x, "feat", lambda out: np.eye(2, dtype=np.float32)[[1, 1]])
    np.testing.assert_allclose(cam, (g.mean(axis=(1, 2), keepdims=True) * a).sum(-1),
                               rtol=1e-5, atol=1e-7)
    assert cam.shape == (2, 4, 4)
