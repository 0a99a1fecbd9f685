"""The compiled inference plan (models/inference.py): bitwise the per-layer walk, rebuilt when the
model or its weights change, safe from several threads; max pooling without argmax; the one-row
GEMM kernels it reaches at batch 1."""

from __future__ import annotations

import threading

import nncore
import numpy as np
import pytest
from conftest import F32_EPS, assert_within_bound, gemm_error_bound, require
from nncore import _core, layers, models, utils
from nncore.examples.mnist_cnn import seed_cnn
from nncore.models import inference


def _cnn():
    return seed_cnn()  # the main job's network


def _rnn():
    return models.Sequential([layers.SimpleRNN(128, input_shape=(28, 28)),
                              layers.Dense(10, activation="softmax")])


def _branches():
    """A functional graph with fan-out and merges, 'same' padding, non-ReLU activations."""
    inp = nncore.Input((9, 11, 3))
    a = layers.Conv2D(8, 3, padding="same", activation="tanh")(inp)
    b = layers.Conv2D(8, 1, activation="relu")(inp)
    m = layers.Add()([a, b])
    p = layers.MaxPooling2D(2, padding="same")(m)
    q = layers.AveragePooling2D(2, padding="same")(m)
    c = layers.Concatenate()([p, q])
    f = layers.Flatten()(c)
    d1 = layers.Dense(7, activation="sigmoid")(f)
    d2 = layers.Dense(5)(f)
    return models.Model(inp, [d1, layers.Concatenate()([d1, d2])])


def _walk(model, x, monkeypatch, how="predict"):
    """The per-layer forward walk (the plan switched off)."""
    with monkeypatch.context() as mp:
        mp.setattr(inference, "plan_for", lambda m: None)
        if how == "call":
            return model(x)
        if how == "on_batch":
            return model.predict_on_batch(x)
        return model.predict(x, verbose=0)


def _inputs(model, rng, n):
    shape = model.inputs[0].shape[1:]
    return rng.normal(size=(n,) + tuple(shape)).astype(np.float32)


def _equal(a, b):
    a = a if isinstance(a, list) else [a]
    b = b if isinstance(b, list) else [b]
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def _cnn3():
    return seed_cnn(input_shape=(28, 28, 3))  # every Conv2D a GEMM-path one (C > 1)


@pytest.fixture
def conv_algo():
    """Sets the Conv2D algorithm for a test, restoring 'auto' after it."""
    yield _core.set_conv2d_algorithm
    _core.set_conv2d_algorithm("auto")


# Both sides on one Conv2D algorithm: under 'auto' the plan, whose Winograd weights are transformed
# once, runs Winograd from batch 1 on where the walk runs it from 128 tiles on
# (tests/test_inference_winograd.py bounds that difference). Forced Winograd: the plan on its
# cached transform, the walk transforming per call, the same bits (the seed CNN's one-channel
# first layer runs the depthwise kernel in the plan, so the three-channel twin here).
@pytest.mark.parametrize("make,algo", [(_cnn, "direct"), (_rnn, "direct"), (_branches, "direct"),
                                       (_cnn3, "winograd"), (_branches, "winograd")],
                         ids=["cnn", "rnn", "branches", "cnn3-winograd", "branches-winograd"])
@pytest.mark.parametrize("n", [1, 2, 7, 33])
def test_plan_bitwise_equals_the_walk(isa, rng, monkeypatch, make, n, algo, conv_algo):
    conv_algo(algo)
    utils.set_random_seed(3)
    model = make()
    x = _inputs(model, rng, n)
    got = model.predict(x, verbose=0)
    assert isinstance(model._infer_plan, inference.InferencePlan)
    _equal(got, _walk(model, x, monkeypatch))
    # __call__ and predict_on_batch run the whole batch at once (predict: batches of 32), through
    # the plan too
    _equal(model(x), _walk(model, x, monkeypatch, "call"))
    _equal(model.predict_on_batch(x), _walk(model, x, monkeypatch, "on_batch"))


def test_plan_prepares_kernel_calls_and_chains():
    utils.set_random_seed(1)
    model = _cnn()
    model.predict(np.zeros((1, 28, 28, 1), np.float32), verbose=0)
    plan = model._infer_plan
    assert plan.chain is not None and all(plan.fast)
    utils.set_random_seed(1)
    g = _branches()
    g.predict(np.zeros((1, 9, 11, 3), np.float32), verbose=0)
    assert g._infer_plan.chain is None  # branches run over slots
    assert all(g._infer_plan.fast)  # Add, Concatenate, AveragePooling2D too
    # a layer the plan has no kernel call for runs its own forward
    utils.set_random_seed(1)
    ln = models.Sequential([layers.Dense(4, input_shape=(3,)), layers.LayerNormalization()])
    ln.predict(np.zeros((1, 3), np.float32), verbose=0)
    assert ln._infer_plan.fast == [True, False]


def test_plan_inside_a_nested_model(rng, monkeypatch):
    utils.set_random_seed(2)
    inner = _cnn()
    outer = models.Sequential([layers.InputLayer((28, 28, 1)), inner, layers.Dense(3)])
    x = _inputs(outer, rng, 5)
    _equal(outer.predict(x, verbose=0), _walk(outer, x, monkeypatch))


def test_plan_rebuilds_when_weights_or_structure_change(rng, tmp_path, monkeypatch):
    """Every way weights or structure change makes the next predict build a new plan (loading
    weights: nncore's own file here, the Keras .weights.h5 file in the next test)."""
    utils.set_random_seed(4)
    model = _cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = _inputs(model, rng, 4)
    y = rng.integers(0, 10, size=4)

    def plan_after(step):
        before = model.predict(x, verbose=0)
        plan = model._infer_plan
        step()
        after = model.predict(x, verbose=0)
        assert model._infer_plan is not plan, "the plan was not rebuilt"
        _equal(after, _walk(model, x, monkeypatch))
        return before, after

    model.save_weights(tmp_path / "w.nncore")
    b, a = plan_after(lambda: model.train_on_batch(x, y))  # an optimizer step
    assert not np.array_equal(a, b)
    b, a = plan_after(lambda: model.load_weights(tmp_path / "w.nncore"))
    assert not np.array_equal(a, b)
    new = [w * 0.5 for w in model.get_weights()]
    b, a = plan_after(lambda: model.set_weights(new))
    assert not np.array_equal(a, b)
    lay = model.layers[-2]
    b, a = plan_after(lambda: lay.set_weights([w + 0.25 for w in lay.get_weights()]))
    assert not np.array_equal(a, b)
    plan_after(lambda: setattr(model.layers[0], "trainable", False))
    plan_after(lambda: setattr(model, "trainable", True))
    # Structure: a popped and re-added layer gives a new graph, so a new plan.
    last = model.pop()
    model.add(layers.Dense(3))
    out = model.predict(x, verbose=0)
    assert out.shape == (4, 3)
    _equal(out, _walk(model, x, monkeypatch))
    del last
    # Unchanged model: the same plan is reused.
    plan = model._infer_plan
    model.predict(x, verbose=0)
    assert model._infer_plan is plan


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5"])
def test_plan_rebuilds_after_loading_keras_weights(rng, tmp_path, name):
    require("h5py")
    utils.set_random_seed(4)
    model = _cnn()
    x = _inputs(model, rng, 4)
    model.save_weights(tmp_path / name)
    saved = model.predict(x, verbose=0)
    model.set_weights([w * 0.5 for w in model.get_weights()])
    halved = model.predict(x, verbose=0)
    plan = model._infer_plan
    model.load_weights(tmp_path / name)
    again = model.predict(x, verbose=0)
    assert model._infer_plan is not plan, "the plan was not rebuilt"
    assert not np.array_equal(halved, saved)
    _equal(again, saved)


def test_plan_first_build_race_from_many_threads(rng, monkeypatch):
    """Eight threads predict at once on a model that has no plan yet (and on one whose plan goes
    stale while they run): every result equals the walk's."""
    utils.set_random_seed(6)
    model = _cnn()
    x = _inputs(model, rng, 3)
    # (batch 1 and 2 take the one-row GEMM kernels: bits differ from batch 3's, so per size; the
    # plan runs Winograd on cached weights where the walk runs direct: a twin's plan is the truth,
    # itself equal to the walk under one algorithm, test_plan_bitwise_equals_the_walk)
    utils.set_random_seed(6)
    twin = _cnn()
    want = {n: twin.predict(x[:n], verbose=0) for n in (1, 2, 3)}
    assert getattr(model, "_infer_plan", None) is None
    barrier = threading.Barrier(8)
    got = [None] * 8
    errors = []

    def run(i):
        try:
            barrier.wait()
            for j in range(20):
                if i == 0 and j % 5 == 0:
                    inference.bump()  # plans go stale mid-run: threads rebuild or use the old one
                got[i] = model.predict(x[: 1 + i % 3], verbose=0)
                np.testing.assert_array_equal(got[i], want[1 + i % 3])
        except BaseException as e:  # reported below, in the main thread
            errors.append(e)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[0]


def test_masked_models_keep_the_walk(rng):
    utils.set_random_seed(7)
    model = models.Sequential([layers.Embedding(20, 4, mask_zero=True, input_shape=(6,)),
                               layers.SimpleRNN(5)])
    x = np.array([[1, 2, 0, 0, 0, 0], [3, 4, 5, 6, 7, 8]])
    model.predict(x, verbose=0)
    assert inference.plan_for(model) is None


@pytest.mark.parametrize("shape,pool,strides,same", [
    ((1, 26, 26, 32), (2, 2), (2, 2), False), ((3, 11, 11, 64), (2, 2), (2, 2), False),
    ((2, 7, 9, 13), (3, 2), (2, 1), True), ((1, 5, 5, 1), (2, 2), (1, 1), False),
    ((2, 8, 6, 19), (3, 3), (3, 3), True), ((1, 4, 4, 40), (4, 4), (4, 4), False)])
def test_maxpool_values_bitwise_equal_forward(isa, rng, threads, shape, pool, strides, same):
    x = rng.normal(size=shape).astype(np.float32)
    x.flat[rng.integers(0, x.size, size=max(1, x.size // 50))] = np.nan
    x.flat[rng.integers(0, x.size, size=max(1, x.size // 20))] = 0.5  # ties
    x.flat[rng.integers(0, x.size, size=max(1, x.size // 50))] = -np.inf
    want, _ = _core.maxpool2d_forward(x, pool, strides, same)
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        got = _core.maxpool2d_values(x, pool, strides, same)
        np.testing.assert_array_equal(got, want)
    # and against a float64 loop reference (a NaN in the window wins, as PyTorch)
    ((oh, ow), (pt, pl)) = _core.pool2d_geometry(shape[1:3], pool, strides, same)
    x64 = x.astype(np.float64)
    ref = np.empty((shape[0], oh, ow, shape[3]))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * strides[0] - pt, j * strides[1] - pl
            win = x64[:, max(h0, 0):h0 + pool[0], max(w0, 0):w0 + pool[1]]
            ref[:, i, j] = win.max(axis=(1, 2))
    np.testing.assert_array_equal(got.astype(np.float64), ref)


@pytest.mark.parametrize("k,n", [(1, 1), (576, 64), (64, 10), (7, 33), (300, 8), (129, 100),
                                 (1100, 37), (5, 31)])
@pytest.mark.parametrize("m", [1, 2])
def test_one_row_gemm_matches_float64(isa, rng, threads, m, k, n):
    """A batch-1 (or 2) Dense: the one-row kernel (row-major B, no packing), with bias and ReLU,
    against the float64 product; 1 and 2 threads bitwise equal."""
    a = rng.normal(size=(m, k)).astype(np.float32)
    b = rng.normal(size=(k, n)).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        c = np.full((m, n), np.nan, np.float32)
        _core.sgemm(c, a, b, False, False, 1.0, 0.0, bias, True)
        outs.append(c)
    np.testing.assert_array_equal(outs[0], outs[1])
    want = np.maximum(a.astype(np.float64) @ b.astype(np.float64) + bias, 0.0)
    assert_within_bound(outs[0], want, gemm_error_bound(a, b, bias=bias))


# ---- BatchNormalization folding, depthwise/separable convolutions, pooling, ReLU layers -------

def _bn_dw():
    """A MobileNet-style model: every layer kind the plan prepares, BatchNormalization folded
    into Conv2D / DepthwiseConv2D / SeparableConv2D / Dense, and once left standalone (after a
    ReLU-activated Conv2D, which cannot absorb it)."""
    return models.Sequential([
        layers.Conv2D(8, 3, use_bias=False, input_shape=(15, 14, 1)),
        layers.BatchNormalization(), layers.ReLU(max_value=6.0),
        layers.DepthwiseConv2D(3, padding="same"), layers.BatchNormalization(), layers.ReLU(),
        layers.SeparableConv2D(12, 3, strides=2, depth_multiplier=2), layers.BatchNormalization(),
        layers.Activation("relu"), layers.Dropout(0.3),
        layers.Conv2D(6, 1, activation="relu"), layers.BatchNormalization(),
        layers.AveragePooling2D(2, padding="same"), layers.GlobalAveragePooling2D(),
        layers.Dense(10), layers.BatchNormalization(), layers.Dense(5),
    ])


def _randomize_bn(model, rng):
    """Moving statistics and scales far from the identity, so that folding them matters."""
    for lay in model.layers:
        if isinstance(lay, layers.BatchNormalization):
            c = lay.moving_mean.shape[0]
            lay.set_weights([rng.uniform(0.5, 2.0, c).astype(np.float32),
                             rng.normal(size=c).astype(np.float32),
                             rng.normal(size=c).astype(np.float32),
                             rng.uniform(0.2, 3.0, c).astype(np.float32)])


def _conv64(x, w, strides, same, dil):
    """float64 x (N,H,W,C) (*) w (KH,KW,C,F), and the same with |x|, |w| (error magnitudes)."""
    (oh, ow), (pt, pl) = _core.conv2d_geometry(x.shape[1:3], w.shape[:2], strides, same, dil)
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    hp = max((oh - 1) * strides[0] + (kh - 1) * dil[0] + 1, h + pt)
    wp = max((ow - 1) * strides[1] + (kw - 1) * dil[1] + 1, wd + pl)
    xp = np.zeros((n, hp, wp, c))
    xp[:, pt:pt + h, pl:pl + wd] = x
    y = np.zeros((n, oh, ow, w.shape[3]))
    mag = np.zeros_like(y)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dil[0], j * dil[1]
            win = xp[:, r0:r0 + (oh - 1) * strides[0] + 1:strides[0],
                     c0:c0 + (ow - 1) * strides[1] + 1:strides[1]]
            y += win @ w[i, j]
            mag += np.abs(win) @ np.abs(w[i, j])
    return y, mag


def _dw64(x, k, strides, same, dil):
    """float64 depthwise convolution (channel c*M + m), and its magnitude."""
    c, m = k.shape[2:]
    eye = np.zeros(k.shape[:2] + (c, c * m))
    for ci in range(c):
        eye[:, :, ci, ci * m:(ci + 1) * m] = k[:, :, ci, :]
    return _conv64(x, eye, strides, same, dil)


def _bn64(lay):
    inv = 1.0 / np.sqrt(lay.moving_variance.astype(np.float64) + lay.epsilon)
    scale = inv * lay.gamma
    return scale, lay.beta - lay.moving_mean * scale


def _reference_span(lays, x):
    """float64 reference of a run of layers starting with a Conv2D, DepthwiseConv2D,
    SeparableConv2D or Dense followed by its folded BatchNormalization and ReLU, and the float32
    error bound of any summation order, the BatchNormalization folded into the weights or not."""
    x = x.astype(np.float64)
    head, rest = lays[0], list(lays[1:])
    st = getattr(head, "strides", None)
    same, dil = getattr(head, "padding", "") == "same", getattr(head, "dilation_rate", None)
    extra = 0.0  # a bound inherited from the depthwise stage of a separable convolution
    if isinstance(head, layers.SeparableConv2D):
        d, dmag = _dw64(x, head.depthwise_kernel.astype(np.float64), st, same, dil)
        taps = head.kernel_size[0] * head.kernel_size[1]
        pw = head.pointwise_kernel[0, 0].astype(np.float64)
        extra = ((taps + 2) * F32_EPS * dmag) @ np.abs(pw)
        y, mag = d @ pw, np.abs(d) @ np.abs(pw)
        k = pw.shape[0]
    elif isinstance(head, layers.DepthwiseConv2D):
        y, mag = _dw64(x, head.depthwise_kernel.astype(np.float64), st, same, dil)
        k = head.kernel_size[0] * head.kernel_size[1]
    elif isinstance(head, layers.Conv2D):
        y, mag = _conv64(x, head.kernel.astype(np.float64), st, same, dil)
        k = np.prod(head.kernel.shape[:3])
    else:
        y, mag = x @ head.kernel.astype(np.float64), np.abs(x) @ np.abs(head.kernel)
        k = head.kernel.shape[0]
    if head.bias is not None:
        y, mag = y + head.bias, mag + np.abs(head.bias.astype(np.float64))
    assert head.activation in ("linear", "relu")
    if head.activation == "relu":  # 1-Lipschitz: the bound stays
        y = np.maximum(y, 0)
    if rest and isinstance(rest[0], layers.BatchNormalization):
        scale, shift = _bn64(rest.pop(0))
        y, mag, extra = y * scale + shift, mag * np.abs(scale) + np.abs(shift), extra * np.abs(
            scale)
    # k products and the bias per sum, the folded weight and bias rounded once more each
    bound = (k + 4) * F32_EPS * mag + extra
    for lay in rest:  # ReLU / ReLU6 / Activation('relu'): 1-Lipschitz, the bound stays
        y = np.maximum(y, 0)
        if getattr(lay, "max_value", None) is not None:
            y = np.minimum(y, lay.max_value)
    return y, bound


def _layer_inputs(model, x):
    """The input of every layer on the per-layer walk (float32)."""
    ins, h = [], x
    for lay in model.layers:
        ins.append(h)
        h = lay.forward(h, training=False, need_ctx=False)[0]
    return ins, h


@pytest.mark.parametrize("n", [1, 3])
def test_bn_fold_and_depthwise_steps_within_the_float64_bound(isa, rng, threads, n):
    """Every fused plan step (affine layer + its BatchNormalization + its ReLU) against the
    float64 reference of those layers from the same input, within the float32 bound; the walk's
    layers too; the other steps equal to the walk's layers (global pooling: within its bound);
    1 and 2 threads bitwise."""
    utils.set_random_seed(11)
    model = _bn_dw()
    _randomize_bn(model, rng)
    x = _inputs(model, rng, n)
    model.predict(x, verbose=0)
    plan = model._infer_plan
    assert all(plan.fast) and plan.chain is not None
    spans = [b - a for a, b in plan.spans]
    # conv+BN+ReLU6, dw+BN+ReLU, sep+BN+relu, dropout, conv(relu), BN, avgpool, GAP, dense+BN, dense
    assert spans == [3, 3, 3, 1, 1, 1, 1, 1, 2, 1], spans
    ins, _ = _layer_inputs(model, x)
    for (a, b), call in zip(plan.spans, plan.chain):
        lays, xin = model.layers[a:b], ins[a]
        outs = []
        for nt in (1, 2):
            nncore.set_num_threads(nt)
            outs.append(call(xin))
        np.testing.assert_array_equal(outs[0], outs[1])
        got = outs[0]
        walk = xin
        for lay in lays:
            walk = lay.forward(walk, training=False, need_ctx=False)[0]
        if b - a > 1 or inference._affine(lays[0]) is not None:
            want, bound = _reference_span(lays, xin)
            assert_within_bound(got, want, bound)
            assert_within_bound(walk, want, bound)
        elif isinstance(lays[0], layers.GlobalAveragePooling2D):
            x64 = xin.astype(np.float64)
            hw = x64.shape[1] * x64.shape[2]
            assert_within_bound(got, x64.mean(axis=(1, 2)),
                                (hw + 2) * F32_EPS * np.abs(x64).mean(axis=(1, 2)))
        else:
            np.testing.assert_array_equal(got, walk)
    # and end to end, predict against the walk (several layers of float32 rounding apart)
    np.testing.assert_allclose(model.predict(x, verbose=0), _walk(model, x, pytest.MonkeyPatch()),
                               rtol=1e-4, atol=1e-4)


def test_bn_is_not_folded_when_its_input_has_another_reader(rng, monkeypatch):
    """A conv output that is also a model output (or read by another layer) keeps its own step;
    the BatchNormalization then runs standalone, bitwise the walk's."""
    utils.set_random_seed(12)
    inp = nncore.Input((8, 8, 3))
    c = layers.Conv2D(4, 3)(inp)
    bn = layers.BatchNormalization()
    out = layers.ReLU()(bn(c))
    model = models.Model(inp, [out, c])
    _randomize_bn(model, rng)
    x = _inputs(model, rng, 2)
    got = model.predict(x, verbose=0)
    assert [b - a for a, b in model._infer_plan.spans] == [1, 1, 1]
    _equal(got, _walk(model, x, monkeypatch))
    # a BatchNormalization over another axis than the channels is not folded either
    utils.set_random_seed(12)
    m2 = models.Sequential([layers.Conv2D(4, 3, input_shape=(8, 8, 3)),
                            layers.BatchNormalization(axis=1)])
    m2.predict(x, verbose=0)
    assert [b - a for a, b in m2._infer_plan.spans] == [1, 1]
    assert m2._infer_plan.fast == [True, False]
    _equal(m2.predict(x, verbose=0), _walk(m2, x, monkeypatch))


def test_folded_plan_rebuilds_when_bn_statistics_or_weights_change(rng, tmp_path, monkeypatch):
    """The folded copies follow every change: a training step (moving statistics and weights),
    a training-mode call alone (moving statistics only), set_weights of the BatchNormalization or
    of the conv, load_weights."""
    utils.set_random_seed(13)
    model = _bn_dw()
    _randomize_bn(model, rng)
    model.compile(optimizer="sgd", loss="mse")
    x = _inputs(model, rng, 4)
    y = rng.normal(size=(4, 5)).astype(np.float32)

    def check(step):
        before = model.predict(x, verbose=0)
        plan = model._infer_plan
        step()
        after = model.predict(x, verbose=0)
        assert model._infer_plan is not plan, "the plan was not rebuilt"
        assert not np.array_equal(after, before)
        np.testing.assert_allclose(after, _walk(model, x, monkeypatch), rtol=1e-4, atol=1e-4)

    model.save_weights(tmp_path / "w.nncore")
    check(lambda: model.train_on_batch(x, y))
    check(lambda: model(x, training=True))  # moving statistics move, no optimizer step
    bn = model.layers[1]
    check(lambda: bn.set_weights([w * 1.5 for w in bn.get_weights()]))
    dw = model.layers[3]
    check(lambda: dw.set_weights([w + 0.25 for w in dw.get_weights()]))
    check(lambda: model.load_weights(tmp_path / "w.nncore"))


@pytest.mark.parametrize("make", [_cnn, _bn_dw])
def test_large_batches_run_in_chunks(rng, monkeypatch, make):
    """A chain runs a large batch CHUNK images at a time (the last chunk takes the remainder):
    the same bits as the whole batch at once, and (no folding) as the walk."""
    utils.set_random_seed(8)
    model = make()
    x = _inputs(model, rng, 75)
    whole = model.predict_on_batch(x)  # 75 >= 2 * 16: chunks of 16, 16, 16, 27
    calls = []
    with monkeypatch.context() as mp:
        mp.setattr(inference, "CHUNK", 4)
        chain = model._infer_plan.chain
        first = chain[0]
        chain[0] = lambda h: calls.append(len(h)) or first(h)
        try:
            chunked = model.predict_on_batch(x)
        finally:
            chain[0] = first
        mp.setattr(inference, "CHUNK", 1000)
        single = model.predict_on_batch(x)
    assert calls == [4] * 17 + [7]
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_array_equal(single, whole)
    if make is _cnn:
        np.testing.assert_array_equal(whole, _walk(model, x, monkeypatch, "on_batch"))
