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


# ---------------------------------------------------------------------------------------------
# Backward: _core.depthwise2d_backward (the layers' training pass)


def _reference_backward(x, k, dy, strides, same, dil):
    """float64 (dx, dk, db) of the depthwise conv by zero padding, and their |.| magnitudes."""
    (oh, ow), (pt, pl) = _core.conv2d_geometry(x.shape[1:3], k.shape[:2], strides, same, dil)
    n, h, w, c = x.shape
    kh, kw, _, m = k.shape
    hp = max((oh - 1) * strides[0] + (kh - 1) * dil[0] + 1, h + pt)
    wp = max((ow - 1) * strides[1] + (kw - 1) * dil[1] + 1, w + pl)
    xp = np.zeros((n, hp, wp, c))
    xp[:, pt:pt + h, pl:pl + w] = x
    dy5 = dy.astype(np.float64).reshape(n, oh, ow, c, m)
    k64 = k.astype(np.float64)
    dk, dk_mag = np.zeros(k.shape), np.zeros(k.shape)
    dxp, dx_mag = np.zeros_like(xp), np.zeros_like(xp)
    for i in range(kh):
        for j in range(kw):
            sl = (slice(None), slice(i * dil[0], i * dil[0] + (oh - 1) * strides[0] + 1, strides[0]),
                  slice(j * dil[1], j * dil[1] + (ow - 1) * strides[1] + 1, strides[1]))
            dk[i, j] = np.einsum("nhwc,nhwcm->cm", xp[sl], dy5)
            dk_mag[i, j] = np.einsum("nhwc,nhwcm->cm", np.abs(xp[sl]), np.abs(dy5))
            dxp[sl] += np.einsum("nhwcm,cm->nhwc", dy5, k64[i, j])
            dx_mag[sl] += np.einsum("nhwcm,cm->nhwc", np.abs(dy5), np.abs(k64[i, j]))
    db = dy5.sum(axis=(0, 1, 2)).reshape(-1)
    db_mag = np.abs(dy5).sum(axis=(0, 1, 2)).reshape(-1)
    rows = n * oh * ow
    return ((dxp[:, pt:pt + h, pl:pl + w], (kh * kw * m + 2) * F32_EPS * dx_mag[:, pt:pt + h, pl:pl + w]),
            (dk, (rows + 2) * F32_EPS * dk_mag), (db, (rows + 2) * F32_EPS * db_mag))


@pytest.mark.parametrize("shape,ks,m,strides,same,dil", CASES)
def test_depthwise_backward_matches_float64(isa, rng, threads, shape, ks, m, strides, same, dil):
    """dx, dk and db within the float32 error bound of the float64 sums, on every ISA path (strides
    1 with M = 1 run the forward kernel on dy; one input channel the broadcast weight-gradient path;
    the rest the portable loops); 1 vs 2 threads bitwise; the plain-loop oracle too."""
    x = rng.normal(size=shape).astype(np.float32)
    k = rng.normal(size=ks + (shape[3], m)).astype(np.float32)
    y = _core.depthwise2d_forward(x, k, None, strides, same, dil, False)
    dy = rng.normal(size=y.shape).astype(np.float32)
    want = _reference_backward(x, k, dy, strides, same, dil)
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        outs.append(_core.depthwise2d_backward(dy, x, k, strides, same, dil, True, True))
    ref = _core.depthwise2d_backward(dy, x, k, strides, same, dil, True, True, reference=True)
    for a, b, r, (w, bound), name in zip(outs[0], outs[1], ref, want, ("dx", "dk", "db")):
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert a.shape == w.shape, name
        assert_within_bound(a, w, bound)
        assert_within_bound(r, w, bound)
    dx, dk, db = _core.depthwise2d_backward(dy, x, k, strides, same, dil, False, False)
    assert dx is None and db is None
    np.testing.assert_array_equal(dk, outs[0][1])


def test_depthwise_backward_many_chunks_threads_bitwise_and_nan(isa, rng, threads):
    """Enough rows for every work chunk of the weight gradient: 1 vs 2 threads bitwise, the
    float64 bound, and a NaN in dy reaches exactly the dx pixels and the dk/db channel it feeds."""
    x = rng.normal(size=(9, 23, 21, 20)).astype(np.float32)
    k = rng.normal(size=(3, 3, 20, 1)).astype(np.float32)
    dy = rng.normal(size=(9, 23, 21, 20)).astype(np.float32)
    want = _reference_backward(x, k, dy, (1, 1), True, (1, 1))
    outs = []
    for nt in (1, 2, 1):
        nncore.set_num_threads(nt)
        outs.append(_core.depthwise2d_backward(dy, x, k, (1, 1), True, (1, 1), True, True))
    for a, b, c, (w, bound) in zip(*outs, want):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
        assert_within_bound(a, w, bound)
    dy[4, 10, 10, 7] = np.nan
    dx, dk, db = _core.depthwise2d_backward(dy, x, k, (1, 1), True, (1, 1), True, True)
    nan = np.isnan(dx)
    assert nan[4, 9:12, 9:12, 7].all() and nan.sum() == 9
    assert np.isnan(dk[..., 7, 0]).all() and np.isnan(dk).sum() == 9
    assert np.isnan(db[7]) and np.isnan(db).sum() == 1


def test_depthwise_backward_checks_its_arguments():
    x = np.zeros((2, 5, 5, 4), np.float32)
    k = np.zeros((3, 3, 4, 2), np.float32)
    dy = np.zeros((2, 5, 5, 8), np.float32)
    with pytest.raises(ValueError, match=r"dy has shape \(2, 5, 5, 4\).*\(2, 5, 5, 8\)"):
        _core.depthwise2d_backward(dy[..., :4].copy(), x, k, (1, 1), True, (1, 1), True, True)
    with pytest.raises(ValueError, match=r"dy has shape \(2, 5, 5, 8\).*\(2, 3, 3, 8\)"):
        _core.depthwise2d_backward(dy, x, k, (1, 1), False, (1, 1), True, True)
    with pytest.raises(ValueError, match="does not fit"):
        _core.depthwise2d_backward(dy, x, np.zeros((3, 3, 3, 2), np.float32), (1, 1), True,
                                   (1, 1), True, True)
    with pytest.raises(ValueError, match=">= 1"):
        _core.depthwise2d_backward(dy, x, k, (1, 0), True, (1, 1), True, True)
    with pytest.raises(TypeError):
        _core.depthwise2d_backward(dy.astype(np.float64), x, k, (1, 1), True, (1, 1), True, True)


def test_depthwise_layer_trains_as_keras(rng):
    """DepthwiseConv2D (depth multiplier 2, strides, relu) and SeparableConv2D in one model: the
    same weights after three SGD steps as Keras's from the same start (its training pass is the
    C++ forward and backward)."""
    from conftest import require

    require("tensorflow")
    import keras

    import nncore as nk

    def build(lib):
        return lib.Sequential([
            lib.Input((9, 8, 3)),
            lib.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                                       activation="relu"),
            lib.layers.SeparableConv2D(4, 2, dilation_rate=2, padding="same", activation="tanh"),
            lib.layers.DepthwiseConv2D((2, 3)),
            lib.layers.Flatten(), lib.layers.Dense(1)])

    theirs, ours = build(keras), build(nk)
    ours.set_weights(theirs.get_weights())
    x = rng.normal(size=(12, 9, 8, 3)).astype(np.float32)
    y = rng.normal(size=(12, 1)).astype(np.float32)
    for m, lib in ((theirs, keras), (ours, nk)):
        m.compile(lib.optimizers.SGD(0.05), "mse")
        m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
