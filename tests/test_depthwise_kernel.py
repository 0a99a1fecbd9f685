"""_core.depthwise2d_forward (the inference plan's DepthwiseConv2D kernel): every ISA path against
a float64 NumPy reference within the float32 error bound, odd shapes, padding, strides, dilation,
depth multipliers, fused ReLU / ReLU6; 1 and 2 threads bitwise equal; the plain-loop oracle too."""

from __future__ import annotations

import nncore
import numpy as np
import pytest
from conftest import F32_EPS, assert_within_bound
from nncore import _core


def _reference(x, k, b, strides, same, dil):
    """float64 depthwise conv by zero padding, and the |.| magnitude for the error bound."""
    (oh, ow), (pt, pl) = _core.conv2d_geometry(x.shape[1:3], k.shape[:2], strides, same, dil)
    n, h, w, c = x.shape
    kh, kw, _, m = k.shape
    x64, k64 = x.astype(np.float64), k.astype(np.float64)
    hp = max((oh - 1) * strides[0] + (kh - 1) * dil[0] + 1, h + pt)
    wp = max((ow - 1) * strides[1] + (kw - 1) * dil[1] + 1, w + pl)
    xp = np.zeros((n, hp, wp, c))
    xp[:, pt:pt + h, pl:pl + w] = x64
    y = np.zeros((n, oh, ow, c, m))
    mag = np.zeros_like(y)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dil[0], j * dil[1]
            win = xp[:, r0:r0 + (oh - 1) * strides[0] + 1:strides[0],
                     c0:c0 + (ow - 1) * strides[1] + 1:strides[1]][..., None]
            y += win * k64[i, j]
            mag += np.abs(win * k64[i, j])
    y, mag = y.reshape(n, oh, ow, c * m), mag.reshape(n, oh, ow, c * m)
    if b is not None:
        y, mag = y + b, mag + np.abs(b.astype(np.float64))
    return y, (kh * kw + 2) * F32_EPS * mag


CASES = [  # x shape, kernel (KH, KW), M, strides, same, dilation
    ((1, 26, 26, 32), (3, 3), 1, (1, 1), True, (1, 1)),
    ((1, 26, 26, 32), (3, 3), 1, (2, 2), False, (1, 1)),
    ((2, 7, 9, 13), (3, 2), 1, (1, 2), True, (1, 1)),
    ((3, 11, 10, 37), (5, 5), 1, (2, 1), True, (1, 1)),
    ((1, 12, 12, 8), (3, 3), 1, (1, 1), True, (2, 3)),
    ((2, 6, 5, 3), (3, 3), 2, (1, 1), True, (1, 1)),
    ((1, 9, 8, 5), (2, 3), 3, (2, 2), False, (1, 1)),
    ((1, 1, 1, 1), (1, 1), 1, (1, 1), False, (1, 1)),
    ((2, 4, 4, 70), (3, 3), 1, (3, 3), True, (1, 1)),
    ((1, 5, 17, 33), (1, 7), 1, (1, 1), True, (1, 1)),
    ((0, 5, 5, 8), (3, 3), 1, (1, 1), True, (1, 1)),
    # one input channel, M outputs (the vector path that also runs Conv2D on one channel)
    ((1, 28, 28, 1), (3, 3), 32, (1, 1), False, (1, 1)),
    ((2, 13, 11, 1), (3, 3), 17, (2, 1), True, (1, 2)),
    ((1, 9, 30, 1), (5, 4), 40, (1, 3), True, (1, 1)),
    ((1, 3, 3, 1), (3, 3), 8, (1, 1), True, (1, 1)),
]


@pytest.mark.parametrize("shape,ks,m,strides,same,dil", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_depthwise_matches_float64(isa, rng, threads, shape, ks, m, strides, same, dil, bias):
    x = rng.normal(size=shape).astype(np.float32)
    k = rng.normal(size=ks + (shape[3], m)).astype(np.float32)
    b = rng.normal(size=shape[3] * m).astype(np.float32) if bias else None
    want, bound = _reference(x, k, b, strides, same, dil)
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        y = _core.depthwise2d_forward(x, k, b, strides, same, dil, False)
        outs.append(y)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert outs[0].shape == want.shape
    assert_within_bound(outs[0], want, bound)
    ref = _core.depthwise2d_forward(x, k, b, strides, same, dil, False, reference=True)
    assert_within_bound(ref, want, bound)
    # fused ReLU, and ReLU6 (cap): the same sums, then max(0, .) and min(6, .)
    relu = _core.depthwise2d_forward(x, k, b, strides, same, dil, True)
    np.testing.assert_array_equal(relu, np.maximum(outs[0], 0))
    relu6 = _core.depthwise2d_forward(x, k, b, strides, same, dil, True, cap=0.5)
    np.testing.assert_array_equal(relu6, np.minimum(np.maximum(outs[0], 0), np.float32(0.5)))
    capped = _core.depthwise2d_forward(x, k, b, strides, same, dil, False, cap=-0.25)
    np.testing.assert_array_equal(capped, np.minimum(outs[0], np.float32(-0.25)))


def test_depthwise_keeps_nan_and_threads_bitwise_on_large_input(isa, rng, threads):
    x = rng.normal(size=(4, 33, 31, 24)).astype(np.float32)
    x[1, 5, 7, 3] = np.nan
    k = rng.normal(size=(3, 3, 24, 1)).astype(np.float32)
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        outs.append(_core.depthwise2d_forward(x, k, None, (1, 1), True, (1, 1), True, cap=6.0))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert np.isnan(outs[0][1, 4:7, 6:9, 3]).all()
    assert np.isfinite(np.delete(outs[0][..., 3].ravel(), np.flatnonzero(
        np.isnan(outs[0][..., 3].ravel())))).all()


@pytest.mark.parametrize("shape,ks,strides,same,dil", [
    ((1, 28, 28, 1), (3, 3), (1, 1), False, (1, 1)), ((3, 10, 9, 1), (3, 2), (2, 1), True, (1, 1)),
    ((2, 12, 12, 1), (3, 3), (1, 1), True, (2, 2)), ((1, 7, 7, 1), (7, 7), (1, 1), False, (1, 1))])
@pytest.mark.parametrize("f", [1, 32, 20])
def test_conv2d_on_one_channel_is_the_depthwise_kernel(isa, rng, threads, shape, ks, strides, same,
                                                       dil, f):
    """Conv2D with one input channel runs as a depthwise convolution with depth multiplier F:
    within the float32 bound of the float64 convolution, bitwise the depthwise kernel, and 1 vs 2
    threads bitwise."""
    x = rng.normal(size=shape).astype(np.float32)
    w = rng.normal(size=ks + (1, f)).astype(np.float32)
    b = rng.normal(size=f).astype(np.float32)
    want, bound = _reference(x, w, b, strides, same, dil)
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        outs.append(_core.conv2d_forward(x, w, b, strides, same, dil, True))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert_within_bound(outs[0], np.maximum(want, 0), bound)
    np.testing.assert_array_equal(
        outs[0], _core.depthwise2d_forward(x, w, b, strides, same, dil, True))


def test_depthwise_checks_its_arguments(rng):
    x = np.zeros((1, 5, 5, 4), np.float32)
    k = np.zeros((3, 3, 4, 1), np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        _core.depthwise2d_forward(x, np.zeros((3, 3, 3, 1), np.float32), None, (1, 1), True,
                                  (1, 1), False)
    with pytest.raises(ValueError, match="must have shape"):
        _core.depthwise2d_forward(x, k, np.zeros(3, np.float32), (1, 1), True, (1, 1), False)
    with pytest.raises(ValueError, match="larger than the input"):
        _core.depthwise2d_forward(x, np.zeros((7, 3, 4, 1), np.float32), None, (1, 1), False,
                                  (1, 1), False)
    with pytest.raises(ValueError, match=">= 1"):
        _core.depthwise2d_forward(x, k, None, (0, 1), True, (1, 1), False)
    with pytest.raises(TypeError):
        _core.depthwise2d_forward(x.astype(np.float64), k, None, (1, 1), True, (1, 1), False)
