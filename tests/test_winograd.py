"""Winograd F(2x2,3x3) Conv2D (forward, and dx and dW in the backward) vs a float64 NumPy reference,
with an error bound derived for the algorithm; odd shapes, every ISA, threads, finite differences,
and the per-shape rule."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv import _data, ref_conv, ref_conv_backward

import nncore
from nncore import _core
from nncore import kernels as ops

# The transform matrices, as in csrc/kernels/conv2d_winograd_impl.hpp.
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
U32 = np.finfo(np.float32).eps / 2  # unit roundoff


@pytest.fixture
def algo():
    """Sets the Conv2D algorithm for a test, restoring 'auto' after it."""
    yield _core.set_conv2d_algorithm
    _core.set_conv2d_algorithm("auto")


def winograd_bound(x, w, b, padding):
    """Worst-case float32 error bound of F(2x2,3x3), per output (Higham-style, as in Barabasz et
    al., "Error analysis and improving the accuracy of Winograd convolution", 2020): every float
    operation of the algorithm is replaced by its absolute value,
        S = sum_c |Aᵀ| [ (|G| |g| |Gᵀ|) ⊙ (|Bᵀ| |d| |B|) ] |A|  (+ |b|),
    and the computed y satisfies |y - y_exact| <= gamma_n S with n the longest chain of roundings
    one output goes through: 2 + 2 in the input transform, 2 + 2 in the weight transform (the
    halvings are exact), 1 for the product, C for the GEMM's sum over channels, 3 + 3 in the
    output transform and 1 for the bias: n = C + 16."""
    x, w = np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64))
    n, h, wd, c = x.shape
    if padding == "same":
        oh, ow, pt, pl = h, wd, 1, 1
    else:
        oh, ow, pt, pl = h - 2, wd - 2, 0, 0
    th, tw = -(-oh // 2), -(-ow // 2)
    xp = np.zeros((n, 2 * th + 2, 2 * tw + 2, c))
    xp[:, pt:pt + h, pl:pl + wd][:, :2 * th + 2 - pt, :2 * tw + 2 - pl] = \
        x[:, :2 * th + 2 - pt, :2 * tw + 2 - pl]
    # patches (n, th, tw, 4, 4, c)
    d = np.stack([np.stack([xp[:, a:a + 2 * th:2, bb:bb + 2 * tw:2] for bb in range(4)], 3)
                  for a in range(4)], 3)
    v = np.einsum("ia,ntwabc,jb->ntwijc", np.abs(BT), d, np.abs(BT))
    u = np.einsum("ia,abcf,jb->ijcf", np.abs(G), w, np.abs(G))
    m = np.einsum("ntwijc,ijcf->ntwijf", v, u)
    s = np.einsum("pi,ntwijf,qj->ntpwqf", np.abs(AT), m, np.abs(AT))
    s = s.reshape(n, 2 * th, 2 * tw, -1)[:, :oh, :ow]
    if b is not None:
        s = s + np.abs(b.astype(np.float64))
    k = c + 16
    return s * (k * U32 / (1 - k * U32))


def winograd_dw_bound(x, g, padding):
    """Worst-case float32 error bound of the Winograd weight gradient, per weight (as above):
        S = sum_tiles |Gᵀ| [ (|A| |dY| |Aᵀ|) ⊙ (|Bᵀ| |d| |B|) ] |G|
    with dY a tile's 2x2 output gradient. Longest chain of roundings one weight goes through:
    2 + 2 in the input transform, 1 + 1 in the gradient transform (each element is at most one
    addition per stage), 1 for the product, at most T - 1 additions for the sum over the T tiles of
    the batch (the GEMM's K loop, the blocks, the images' tiles and the chunks' partials are one
    sequential sum each, together at most T terms), 2 + 2 in the back-transform (the halvings are
    exact) and 1 when the back-transformed partial is added to the running dW: n = T + 16."""
    x, g = np.abs(x.astype(np.float64)), np.abs(g.astype(np.float64))
    n, h, wd, c = x.shape
    pt = pl = 1 if padding == "same" else 0
    oh, ow = g.shape[1:3]
    th, tw = -(-oh // 2), -(-ow // 2)
    xp = np.zeros((n, 2 * th + 2 + h, 2 * tw + 2 + wd, c))
    xp[:, pt:pt + h, pl:pl + wd] = x
    xp = xp[:, :2 * th + 2, :2 * tw + 2]
    d = np.stack([np.stack([xp[:, a:a + 2 * th:2, bb:bb + 2 * tw:2] for bb in range(4)], 3)
                  for a in range(4)], 3)
    v = np.einsum("ia,ntwabc,jb->ntwijc", np.abs(BT), d, np.abs(BT))
    gp = np.zeros((n, 2 * th, 2 * tw, g.shape[3]))
    gp[:, :oh, :ow] = g
    gt = gp.reshape(n, th, 2, tw, 2, -1).transpose(0, 1, 3, 2, 4, 5)  # (n, th, tw, 2, 2, f)
    mg = np.einsum("ia,ntwabf,jb->ntwijf", np.abs(AT.T), gt, np.abs(AT.T))
    z = np.einsum("ntwijc,ntwijf->ijcf", v, mg)
    s = np.einsum("ai,ijcf,bj->abcf", np.abs(G.T), z, np.abs(G.T))
    k = n * th * tw + 16
    return s * (k * U32 / (1 - k * U32))


# (N, H, W, C, F, padding): odd sizes, channels off every vector width, batch 1, many blocks.
SHAPES = [
    (1, 5, 5, 3, 2, "valid"),
    (2, 7, 9, 5, 3, "same"),
    (1, 3, 3, 1, 1, "valid"),       # one output pixel, one channel
    (3, 6, 5, 9, 17, "valid"),
    (2, 4, 7, 13, 33, "same"),
    (1, 13, 13, 32, 64, "valid"),   # the seed CNN's conv2 at batch 1
    (2, 8, 8, 64, 70, "same"),
    (40, 12, 11, 16, 24, "valid"),  # many blocks, a partial last one
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])) + "-" + s[5])
@pytest.mark.parametrize("relu", [False, True])
def test_forward_within_derived_bound(shape, relu, isa, algo, rng):
    n, h, w_, c, f, padding = shape
    x, w, b = _data(rng, n, h, w_, c, 3, 3, f)
    algo("winograd")
    act = "relu" if relu else None
    y = ops.conv2d(x, w, b, padding=padding, activation=act)
    want = ref_conv(x, w, b, padding=padding)
    bound = winograd_bound(x, w, b, padding)
    err = np.abs(y.astype(np.float64) - (np.maximum(want, 0) if relu else want))
    assert y.shape == want.shape
    assert np.all(err <= bound), float((err / bound).max())
    # The bound is loose (worst case); the measured error is a small fraction of it and within
    # the tolerance the direct kernel is held to.
    np.testing.assert_allclose(y, np.maximum(want, 0) if relu else want, rtol=1e-4,
                               atol=1e-4 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])) + "-" + s[5])
def test_backward_dx_within_derived_bound(shape, isa, algo, rng):
    # dx is the Winograd forward of dy (full padding) with the flipped, transposed kernel: the
    # same bound applies with C -> F and the kernel w[::-1, ::-1].transpose(0, 1, 3, 2).
    n, h, w_, c, f, padding = shape
    x, w, b = _data(rng, n, h, w_, c, 3, 3, f)
    algo("winograd")
    y = ops.conv2d(x, w, b, padding=padding, activation="relu")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = ops.conv2d_backward(dy, x, w, y=y, padding=padding, activation="relu")
    rdx, rdw, rdb = ref_conv_backward(dy, x, w, y, padding=padding)
    g = (dy * (y > 0)).astype(np.float32)
    wf = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
    # dx (H, W) = conv of g padded by 2 - pad on each side: as a 'valid' conv of the padded g.
    pad = 1 if padding == "same" else 2
    gp = np.pad(g, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    bound = winograd_bound(gp, wf, None, "valid")
    assert np.all(np.abs(dx - rdx) <= bound), float((np.abs(dx - rdx) / bound).max())
    scale = max(1.0, float(np.abs(rdw).max()))
    np.testing.assert_allclose(dw, rdw, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(db, rdb, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(rdb).max())))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])) + "-" + s[5])
def test_backward_dw_within_derived_bound(shape, isa, algo, rng):
    n, h, w_, c, f, padding = shape
    x, w, b = _data(rng, n, h, w_, c, 3, 3, f)
    algo("direct")
    y = ops.conv2d(x, w, b, padding=padding, activation="relu")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    rdx, rdw, rdb = ref_conv_backward(dy, x, w, y, padding=padding)
    g = (dy * (y > 0)).astype(np.float32)
    bound = winograd_dw_bound(x, g, padding)
    algo("winograd")
    for need_dx in (False, True):
        dx, dw, db = ops.conv2d_backward(dy, x, w, y=y, padding=padding, activation="relu",
                                         need_dx=need_dx)
        err = np.abs(dw - rdw)
        assert np.all(err <= bound), float((err / bound).max())
        # The worst case is loose; the measured error stays near the direct kernel's tolerance.
        scale = max(1.0, float(np.abs(rdw).max()))
        np.testing.assert_allclose(dw, rdw, rtol=1e-4, atol=1e-4 * scale)
        np.testing.assert_allclose(db, rdb, rtol=1e-4,
                                   atol=1e-4 * max(1.0, float(np.abs(rdb).max())))


def test_winograd_dw_is_a_different_algorithm(algo, rng):
    x, w, b = _data(rng, 4, 13, 13, 32, 3, 3, 64)
    dy = rng.standard_normal((4, 11, 11, 64)).astype(np.float32)
    algo("direct")
    _, dwd, _ = ops.conv2d_backward(dy, x, w, need_dx=False)
    algo("winograd")
    _, dww, _ = ops.conv2d_backward(dy, x, w, need_dx=False)
    assert not np.array_equal(dwd, dww)
    np.testing.assert_allclose(dww, dwd, rtol=1e-4, atol=1e-4 * float(np.abs(dwd).max()))


def test_winograd_is_a_different_algorithm(algo, rng):
    # The forced setting really changes the arithmetic (else the tests above would test the
    # direct kernel), and both stay within the reference tolerance of each other.
    x, w, b = _data(rng, 2, 13, 13, 32, 3, 3, 64)
    algo("direct")
    yd = ops.conv2d(x, w, b)
    algo("winograd")
    yw = ops.conv2d(x, w, b)
    assert not np.array_equal(yd, yw)
    np.testing.assert_allclose(yw, yd, rtol=1e-4, atol=1e-4 * float(np.abs(yd).max()))


@pytest.mark.parametrize("mode", ["winograd", "auto"])
@pytest.mark.parametrize("shape", [(37, 13, 13, 32, 64, "valid"), (3, 9, 7, 11, 19, "same"),
                                   (64, 6, 6, 64, 64, "valid")])
def test_one_vs_two_threads_bitwise(shape, mode, isa, algo, threads, rng):
    n, h, w_, c, f, padding = shape
    x, w, b = _data(rng, n, h, w_, c, 3, 3, f)
    algo(mode)
    nncore.set_num_threads(1)
    y = ops.conv2d(x, w, b, padding=padding, activation="relu")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    results = []
    for nt in (1, 2, 3):
        nncore.set_num_threads(nt)
        yy = ops.conv2d(x, w, b, padding=padding, activation="relu")
        results.append((yy, *ops.conv2d_backward(dy, x, w, y=yy, padding=padding,
                                                 activation="relu")))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_gradients_vs_finite_differences(padding, isa, algo, rng):
    # Central differences of the Winograd forward itself (the loss is linear in x, w, b).
    algo("winograd")
    x, w, b = _data(rng, 2, 7, 6, 5, 3, 3, 9)
    r = rng.standard_normal(ops.conv2d(x, w, b, padding=padding).shape)

    def loss():
        return float((ops.conv2d(x, w, b, padding=padding).astype(np.float64) * r).sum())

    dx, dw, db = ops.conv2d_backward(r.astype(np.float32), x, w, padding=padding)
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        flat = arr.reshape(-1)
        for i in rng.choice(flat.size, size=min(12, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + 1e-2
            up = loss()
            flat[i] = old - 1e-2
            down = loss()
            flat[i] = old
            num = (up - down) / 2e-2
            assert abs(num - grad.reshape(-1)[i]) <= 2e-3 + 2e-2 * abs(num), (i, num)


def test_rule(algo):
    algo("auto")
    isa = ops.get_isa()
    seed_conv2 = (32, 13, 13, 32, 64, 11, 11)
    if isa in ("avx2", "avx512"):
        # As measured on Zen 3 and Zen 5 (conv2d_winograd.cpp): the seed CNN's conv2 forward and
        # the CIFAR CNN's 64->64 layer; not conv3 (saving 1.27), the 64->32 dx, narrow layers,
        # batch 1.
        assert _core.conv2d_uses_winograd(*seed_conv2)
        assert _core.conv2d_uses_winograd(32, 6, 6, 64, 64, 4, 4)
        assert not _core.conv2d_uses_winograd(32, 5, 5, 64, 64, 3, 3)
        assert not _core.conv2d_uses_winograd(32, 11, 11, 64, 32, 13, 13)
        assert not _core.conv2d_uses_winograd(32, 16, 16, 16, 16, 16, 16)
        assert not _core.conv2d_uses_winograd(32, 16, 16, 16, 64, 16, 16)
        assert not _core.conv2d_uses_winograd(1, 13, 13, 32, 64, 11, 11)
    else:
        assert not _core.conv2d_uses_winograd(*seed_conv2)
    # The backward's dx never takes Winograd under 'auto' (measured slower), only when forced.
    assert not _core.conv2d_uses_winograd(32, 4, 4, 64, 64, 6, 6, dx=True)
    # dW follows the forward's rule (measured on Zen 3), on AVX-512 from 64 input channels only
    # (measured on Zen 5, conv2d_winograd.cpp).
    for shape in (seed_conv2, (32, 6, 6, 64, 64, 4, 4), (32, 5, 5, 64, 64, 3, 3),
                  (1, 13, 13, 32, 64, 11, 11), (32, 16, 16, 16, 16, 16, 16)):
        want = _core.conv2d_uses_winograd(*shape) and (isa != "avx512" or shape[3] >= 64)
        assert _core.conv2d_uses_winograd(*shape, dw=True) == want, shape
    if isa == "avx512":
        assert not _core.conv2d_uses_winograd(*seed_conv2, dw=True)
        assert _core.conv2d_uses_winograd(32, 6, 6, 64, 64, 4, 4, dw=True)
    algo("direct")
    assert not _core.conv2d_uses_winograd(*seed_conv2)
    algo("winograd")
    assert _core.conv2d_uses_winograd(1, 3, 3, 1, 1, 1, 1)
    assert _core.conv2d_uses_winograd(32, 4, 4, 64, 64, 6, 6, dx=True)
    assert _core.conv2d_uses_winograd(1, 5, 5, 3, 2, 3, 3, dw=True)
    assert _core.get_conv2d_algorithm() == "winograd"
    with pytest.raises(ValueError, match="expected 'auto'"):
        _core.set_conv2d_algorithm("fft")


def test_forced_winograd_leaves_other_geometries_direct(algo, rng):
    # Strided, dilated and non-3x3 convolutions never take Winograd: still correct when forced.
    algo("winograd")
    for kh, strides, dil in [(3, (2, 1), (1, 1)), (3, (1, 1), (2, 1)), (5, (1, 1), (1, 1))]:
        x, w, b = _data(rng, 2, 11, 10, 4, kh, kh, 6)
        y = ops.conv2d(x, w, b, strides=strides, dilation_rate=dil, padding="same")
        want = ref_conv(x, w, b, strides, "same", dil)
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
