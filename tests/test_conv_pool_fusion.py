"""The depthwise kernel with a 2x2 max pooling in the same pass (`_core.depthwise2d_forward(...,
maxpool2=True)`), and the inference plan's step that uses it for Conv2D on one input channel /
DepthwiseConv2D followed by MaxPooling2D(2): bitwise the two kernels one after the other (the
forward's row kernel, then the pooling layer's value scan), near the float64 result, 1 and 2
threads alike, on every ISA."""

from __future__ import annotations

import nncore
import numpy as np
import pytest
from conftest import assert_within_bound
from nncore import _core, layers
from nncore.models import inference
from test_depthwise_kernel import _reference

CASES = [  # x shape, kernel (KH, KW), M, strides, same, dilation
    ((1, 28, 28, 1), (3, 3), 32, (1, 1), False, (1, 1)),  # the seed CNN's conv1 + pool1
    ((2, 13, 11, 1), (3, 3), 17, (1, 1), True, (1, 1)),  # odd output: the last row/column dropped
    ((1, 9, 30, 1), (5, 4), 40, (1, 2), True, (1, 1)),
    ((3, 11, 10, 37), (3, 3), 1, (1, 1), True, (1, 1)),  # depth multiplier 1, masked channel tail
    ((2, 12, 12, 8), (3, 3), 1, (2, 2), False, (1, 1)),
    ((1, 12, 12, 8), (3, 3), 1, (1, 1), True, (2, 3)),
    ((2, 6, 5, 3), (3, 3), 2, (1, 1), True, (1, 1)),  # other multipliers: the portable row
    ((0, 6, 6, 1), (3, 3), 8, (1, 1), True, (1, 1)),  # empty batch
]


def _two_passes(x, k, b, strides, same, dil, relu, cap=None):
    y = _core.depthwise2d_forward(x, k, b, strides, same, dil, relu, cap)
    return _core.maxpool2d_values(y, (2, 2), (2, 2), False)


def _pool64(y):
    n, h, w, c = y.shape
    y = y[:, :h // 2 * 2, :w // 2 * 2]
    return y.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@pytest.mark.parametrize("shape,ks,m,strides,same,dil", CASES)
@pytest.mark.parametrize("relu,cap", [(False, None), (True, None), (True, 0.5)])
def test_fused_pool_is_the_two_kernels_bitwise(isa, rng, threads, shape, ks, m, strides, same,
                                               dil, relu, cap):
    x = rng.normal(size=shape).astype(np.float32)
    k = rng.normal(size=ks + (shape[3], m)).astype(np.float32)
    b = rng.normal(size=shape[3] * m).astype(np.float32)
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        outs.append(_core.depthwise2d_forward(x, k, b, strides, same, dil, relu, cap,
                                              maxpool2=True))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], _two_passes(x, k, b, strides, same, dil, relu, cap))
    # and near the float64 result: a window's max is within the largest bound of its values
    y64, bound = _reference(x, k, b, strides, same, dil)
    if relu:
        y64 = np.maximum(y64, 0)
    if cap is not None:
        y64 = np.minimum(y64, cap)
    want = _pool64(y64)
    assert outs[0].shape == want.shape
    assert_within_bound(outs[0], want, _pool64(bound))


def test_fused_pool_keeps_nan_as_the_pooling_layer(isa, rng, threads):
    x = rng.normal(size=(2, 20, 18, 1)).astype(np.float32)
    x[1, 6, 7, 0] = np.nan
    k = rng.normal(size=(3, 3, 1, 24)).astype(np.float32)
    got = _core.depthwise2d_forward(x, k, None, (1, 1), False, (1, 1), True, maxpool2=True)
    np.testing.assert_array_equal(got, _two_passes(x, k, None, (1, 1), False, (1, 1), True))
    assert np.isnan(got[1]).any() and not np.isnan(got[0]).any()


def test_fused_pool_checks_its_arguments(rng):
    k = rng.normal(size=(3, 3, 1, 8)).astype(np.float32)
    small = rng.normal(size=(1, 3, 9, 1)).astype(np.float32)  # a 1 x 7 output: nothing to pool
    with pytest.raises(ValueError, match="at least 2x2"):
        _core.depthwise2d_forward(small, k, None, (1, 1), False, (1, 1), True, maxpool2=True)
    x = rng.normal(size=(1, 8, 8, 1)).astype(np.float32)
    with pytest.raises(ValueError, match="no reference path"):
        _core.depthwise2d_forward(x, k, None, (1, 1), False, (1, 1), True, reference=True,
                                  maxpool2=True)


def _model(first, pool):
    nncore.utils.set_random_seed(3)
    inp = nncore.Input((15, 14, 1 if isinstance(first, layers.Conv2D) else 6))
    h = pool(first(inp))
    out = layers.Dense(5, activation="softmax")(layers.Flatten()(layers.Conv2D(8, 3)(h)))
    return nncore.Model(inp, out)


@pytest.mark.parametrize("first", [
    lambda: layers.Conv2D(16, 3, activation="relu"),  # one input channel: the depthwise kernel
    lambda: layers.DepthwiseConv2D(3, padding="same"),
])
def test_plan_fuses_the_pool_and_equals_the_walk(isa, rng, monkeypatch, first):
    model = _model(first(), layers.MaxPooling2D(2))
    x = rng.normal(size=(3,) + model.inputs[0].shape[1:]).astype(np.float32)
    y = model.predict(x, verbose=0)
    plan = inference.plan_for(model)
    names = [[model._steps[j][0].name for j in range(*span)] for span in plan.spans]
    assert any(len(n) == 2 and "max_pooling2d" in n[1] for n in names), names
    with monkeypatch.context() as mp:
        mp.setattr(inference, "plan_for", lambda m: None)
        walk = model.predict(x, verbose=0)
    np.testing.assert_array_equal(y, walk)


@pytest.mark.parametrize("pool", [
    lambda: layers.MaxPooling2D(2, strides=1),
    lambda: layers.MaxPooling2D(3),
    lambda: layers.MaxPooling2D(2, padding="same"),
    lambda: layers.AveragePooling2D(2),
])
def test_plan_leaves_other_pools_apart(rng, pool):
    model = _model(layers.Conv2D(16, 3, activation="relu"), pool())
    x = rng.normal(size=(2, 15, 14, 1)).astype(np.float32)
    model.predict(x, verbose=0)
    plan = inference.plan_for(model)
    assert all(b - a == 1 for a, b in plan.spans), plan.spans


def test_plan_does_not_fuse_a_conv_output_read_twice(rng, monkeypatch):
    nncore.utils.set_random_seed(4)
    inp = nncore.Input((12, 12, 1))
    c = layers.Conv2D(8, 3, activation="relu")(inp)
    p = layers.MaxPooling2D(2)(c)
    out = layers.Concatenate()([layers.Flatten()(p), layers.Flatten()(c)])
    model = nncore.Model(inp, out)
    x = rng.normal(size=(2, 12, 12, 1)).astype(np.float32)
    y = model.predict(x, verbose=0)
    assert all(b - a == 1 for a, b in inference.plan_for(model).spans)
    with monkeypatch.context() as mp:
        mp.setattr(inference, "plan_for", lambda m: None)
        np.testing.assert_array_equal(y, model.predict(x, verbose=0))
