"""The inference plan's Winograd path on weights transformed once (_core.conv2d_winograd_weights,
_core.conv2d_forward_cached): float64 reference within the algorithm's derived bound, the same
bits as the per-call transform, odd shapes, every ISA, threads, the fallbacks (ISA changed since
the transform, shapes Winograd does not cover, forced direct), and the plan using it."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv import _data, ref_conv
from test_winograd import SHAPES, winograd_bound

import nncore
from nncore import _core, utils
from nncore import kernels as ops
from nncore.examples.mnist_cnn import seed_cnn
from nncore.models import inference


@pytest.fixture
def algo():
    yield _core.set_conv2d_algorithm
    _core.set_conv2d_algorithm("auto")


def _cached(x, w, u, b, padding, relu):
    return _core.conv2d_forward_cached(x, w, u, b, (1, 1), padding == "same", (1, 1), relu)


def _per_call(x, w, b, padding, relu):
    return _core.conv2d_forward(x, w, b, (1, 1), padding == "same", (1, 1), relu, False)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])) + "-" + s[5])
@pytest.mark.parametrize("relu", [False, True])
def test_cached_within_bound_and_bitwise_the_per_call_transform(shape, relu, isa, algo, rng):
    n, h, w_, c, f, padding = shape
    x, w, b = _data(rng, n, h, w_, c, 3, 3, f)
    algo("winograd")
    u = _core.conv2d_winograd_weights(w)
    assert u.shape == (3, 3, c, f)
    y = _cached(x, w, u, b, padding, relu)
    want = ref_conv(x, w, b, padding=padding)
    want = np.maximum(want, 0) if relu else want
    assert y.shape == want.shape
    err = np.abs(y.astype(np.float64) - want)
    bound = winograd_bound(x, w, b, padding)
    assert np.all(err <= bound), float((err / bound).max())
    # the same arithmetic as conv2d_forward's Winograd, which transforms w on every call
    np.testing.assert_array_equal(y, _per_call(x, w, b, padding, relu))
    # and really Winograd (the direct kernel gives other bits on these shapes)
    algo("direct")
    yd = _cached(x, w, u, b, padding, relu)
    np.testing.assert_array_equal(yd, _per_call(x, w, b, padding, relu))
    if c > 1 and h * w_ > 9:
        assert not np.array_equal(y, yd)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_auto_runs_winograd_from_batch_1_on_cached_weights(n, isa, algo, rng):
    # The seed CNN's conv2 at batch 1-3 (36-108 tiles): below conv2d_forward's 128-tile minimum
    # (it runs direct), Winograd on the cached transform on a vector ISA.
    x, w, b = _data(rng, n, 13, 13, 32, 3, 3, 64)
    algo("auto")
    u = _core.conv2d_winograd_weights(w)
    y = _cached(x, w, u, b, "valid", True)
    direct = _per_call(x, w, b, "valid", True)
    algo("winograd")
    wino = _per_call(x, w, b, "valid", True)
    algo("auto")
    # On the FMA ISAs the rule takes it, on the portable one never
    pays = _core.conv2d_uses_winograd(1 << 20, 13, 13, 32, 64, 11, 11)
    assert pays == (isa in ("avx2", "avx512"))
    np.testing.assert_array_equal(y, wino if pays else direct)
    if pays and n < 4:
        assert not np.array_equal(y, direct)
    want = np.maximum(ref_conv(x, w, b), 0)
    assert np.all(np.abs(y - want) <= winograd_bound(x, w, b, "valid"))
    # conv3 (64->64 on 5x5: saving 1.27) stays direct whatever the batch
    x3, w3, b3 = _data(rng, n, 5, 5, 64, 3, 3, 64)
    algo("auto")
    u3 = _core.conv2d_winograd_weights(w3)
    np.testing.assert_array_equal(_cached(x3, w3, u3, b3, "valid", True),
                                  _per_call(x3, w3, b3, "valid", True))


def test_none_and_other_geometries_are_conv2d_forward(algo, rng):
    x, w, b = _data(rng, 2, 9, 8, 5, 3, 3, 7)
    algo("winograd")
    np.testing.assert_array_equal(_cached(x, w, None, b, "same", False),
                                  _per_call(x, w, b, "same", False))
    u = _core.conv2d_winograd_weights(w)
    # strided or dilated: not Winograd's geometry, the direct convolution
    for st, dil in (((2, 2), (1, 1)), ((1, 1), (2, 2))):
        got = _core.conv2d_forward_cached(x, w, u, b, st, True, dil, True)
        np.testing.assert_array_equal(got, _core.conv2d_forward(x, w, b, st, True, dil, True))


def test_isa_changed_since_the_transform_falls_back(algo, rng):
    supported = ops.supported_isas()
    x, w, b = _data(rng, 2, 13, 13, 32, 3, 3, 64)
    algo("winograd")
    before = ops.get_isa()
    try:
        for made in supported:
            ops.set_isa(made)
            u = _core.conv2d_winograd_weights(w)  # packed for `made`
            for now in supported:
                ops.set_isa(now)
                np.testing.assert_array_equal(_cached(x, w, u, b, "valid", False),
                                              _per_call(x, w, b, "valid", False))
    finally:
        ops.set_isa(before)


def test_refusals(rng):
    x, w, b = _data(rng, 1, 6, 6, 4, 3, 3, 5)
    with pytest.raises(ValueError, match=r"\(3, 3, C, F\)"):
        _core.conv2d_winograd_weights(np.zeros((5, 5, 4, 5), np.float32))
    u = _core.conv2d_winograd_weights(w)
    x8 = np.zeros((1, 6, 6, 8), np.float32)
    w8 = np.zeros((3, 3, 8, 5), np.float32)
    with pytest.raises(ValueError, match="transformed weights are for 4 -> 5"):
        _core.conv2d_forward_cached(x8, w8, u, b, (1, 1), False, (1, 1), False)
    with pytest.raises(TypeError):
        _core.conv2d_forward_cached(x, w, w, b, (1, 1), False, (1, 1), False)


@pytest.mark.parametrize("shape", [(1, 13, 13, 32, 64, "valid"), (37, 13, 13, 32, 64, "valid"),
                                   (3, 9, 7, 11, 19, "same")])
def test_one_vs_two_threads_bitwise(shape, isa, algo, threads, rng):
    n, h, w_, c, f, padding = shape
    x, w, b = _data(rng, n, h, w_, c, 3, 3, f)
    for mode in ("auto", "winograd"):
        algo(mode)
        u = _core.conv2d_winograd_weights(w)
        out = []
        for nt in (1, 2, 3):
            nncore.set_num_threads(nt)
            out.append(_cached(x, w, u, b, padding, True))
        for o in out[1:]:
            np.testing.assert_array_equal(out[0], o)


def test_plan_caches_the_transform_and_rebuilds_it(isa, algo, rng, monkeypatch):
    """The seed CNN's plan runs conv2 on a transform made at build time (no per-call transform:
    conv2d_winograd_weights is not called again), within the Winograd bound of the walk, and a
    weight change builds a new plan with a new transform."""
    algo("auto")
    utils.set_random_seed(8)
    model = seed_cnn()
    x = rng.normal(size=(1, 28, 28, 1)).astype(np.float32)
    made = []
    real = _core.conv2d_winograd_weights
    monkeypatch.setattr(_core, "conv2d_winograd_weights", lambda w: made.append(w) or real(w))
    y = model.predict(x, verbose=0)
    n_built = len(made)
    # conv2 (32->64 on 13x13) is the one layer Winograd pays for, on the FMA ISAs (the rule above)
    assert n_built == (1 if isa in ("avx2", "avx512") else 0)
    for _ in range(3):
        np.testing.assert_array_equal(model.predict(x, verbose=0), y)
    assert len(made) == n_built
    # against the walk (direct conv2 at batch 1): the softmax outputs agree to float32 rounding of
    # the Winograd bound's size (the layer bound is tested above)
    with monkeypatch.context() as mp:
        mp.setattr(inference, "plan_for", lambda m: None)
        walk = model.predict(x, verbose=0)
    np.testing.assert_allclose(y, walk, rtol=1e-5, atol=1e-7)
    # the transform is of the current weights: changed weights, a new plan and transform
    ws = model.get_weights()
    ws[2] = ws[2] * np.float32(0.5)
    model.set_weights(ws)
    y2 = model.predict(x, verbose=0)
    assert len(made) == 2 * n_built
    if n_built:
        np.testing.assert_array_equal(made[-1], ws[2])
    with monkeypatch.context() as mp:
        mp.setattr(inference, "plan_for", lambda m: None)
        np.testing.assert_allclose(y2, model.predict(x, verbose=0), rtol=1e-5, atol=1e-7)
