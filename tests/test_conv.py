"""Conv2D kernels vs a plain float64 NumPy reference, finite differences, threads, ISAs, PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st

import nncore
from nncore import _core
from nncore import kernels as ops


# ----------------------------------------------------------------------------- float64 reference
def _pads(size, k, s, d, padding):
    ek = (k - 1) * d + 1
    if padding == "same":
        out = -(-size // s)
        total = max((out - 1) * s + ek - size, 0)
        return out, total // 2, total - total // 2
    return (size - ek) // s + 1, 0, 0


def ref_geometry(x_shape, w_shape, strides, padding, dilation):
    oh, pt, pb = _pads(x_shape[1], w_shape[0], strides[0], dilation[0], padding)
    ow, pl, pr = _pads(x_shape[2], w_shape[1], strides[1], dilation[1], padding)
    return oh, ow, (pt, pb), (pl, pr)


def _window(kh, kw, oh, ow, strides, dilation):
    """Slices of the padded input read by kernel tap (kh, kw) for every output pixel."""
    h0, w0 = kh * dilation[0], kw * dilation[1]
    return (slice(None), slice(h0, h0 + (oh - 1) * strides[0] + 1, strides[0]),
            slice(w0, w0 + (ow - 1) * strides[1] + 1, strides[1]), slice(None))


def ref_conv(x, w, b=None, strides=(1, 1), padding="valid", dilation=(1, 1), relu=False):
    x, w = x.astype(np.float64), w.astype(np.float64)
    oh, ow, ph, pw = ref_geometry(x.shape, w.shape, strides, padding, dilation)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    y = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for kh in range(w.shape[0]):
        for kw in range(w.shape[1]):
            y += xp[_window(kh, kw, oh, ow, strides, dilation)] @ w[kh, kw]
    if b is not None:
        y += b.astype(np.float64)
    return np.maximum(y, 0.0) if relu else y


def ref_conv_backward(dy, x, w, y=None, strides=(1, 1), padding="valid", dilation=(1, 1)):
    """(dx, dw, db); dy is masked by y > 0 when y is given (ReLU)."""
    x, w, dz = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    if y is not None:
        dz = dz * (y > 0)
    oh, ow, ph, pw = ref_geometry(x.shape, w.shape, strides, padding, dilation)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for kh in range(w.shape[0]):
        for kw in range(w.shape[1]):
            win = _window(kh, kw, oh, ow, strides, dilation)
            dw[kh, kw] = np.einsum("nijc,nijf->cf", xp[win], dz)
            dxp[win] += dz @ w[kh, kw].T
    dx = dxp[:, ph[0]:ph[0] + x.shape[1], pw[0]:pw[0] + x.shape[2], :]
    return dx, dw, dz.sum(axis=(0, 1, 2))


def _data(rng, n, h, w_, c, kh, kw, f):
    x = rng.standard_normal((n, h, w_, c)).astype(np.float32)
    w = (rng.standard_normal((kh, kw, c, f)) / np.sqrt(kh * kw * c)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    return x, w, b


def _assert_close(got, want, rtol=1e-4, atol=1e-4):
    scale = max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale)


# (N, H, W, C, KH, KW, F, strides, padding, dilation)
CASES = [
    (2, 7, 9, 3, 3, 3, 5, (1, 1), "valid", (1, 1)),
    (1, 28, 28, 1, 3, 3, 32, (1, 1), "valid", (1, 1)),        # batch 1, Cin = 1 (first layer)
    (3, 8, 6, 1, 2, 4, 3, (2, 1), "same", (1, 1)),            # even kernel: asymmetric 'same'
    (2, 5, 4, 2, 7, 6, 3, (1, 1), "same", (1, 1)),            # kernel larger than the input
    (2, 11, 10, 4, 3, 2, 7, (2, 3), "valid", (2, 1)),         # strides and dilation
    (1, 9, 9, 3, 3, 3, 2, (3, 2), "same", (2, 2)),
    (4, 6, 5, 8, 1, 1, 17, (1, 1), "valid", (1, 1)),          # pointwise 1x1 (no im2col)
    (2, 6, 5, 8, 1, 1, 3, (2, 2), "same", (1, 1)),            # 1x1 with stride
    (40, 20, 20, 16, 3, 3, 8, (1, 1), "valid", (1, 1)),       # many tiles and dW chunks
    (2, 10, 9, 3, 3, 2, 45, (1, 1), "valid", (2, 2)),         # filters = 32 + 13 (lane tails)
    (5, 5, 5, 64, 3, 3, 64, (1, 1), "valid", (1, 1)),         # pixel blocks straddle images
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-{c[8]}")
@pytest.mark.parametrize("relu", [False, True])
def test_forward_backward_match_reference(case, relu, isa, rng):
    n, h, w_, c, kh, kw, f, strides, padding, dil = case
    x, w, b = _data(rng, n, h, w_, c, kh, kw, f)
    act = "relu" if relu else None
    y = ops.conv2d(x, w, b, strides=strides, padding=padding, dilation_rate=dil, activation=act)
    want = ref_conv(x, w, b, strides, padding, dil, relu)
    assert y.shape == want.shape == (n, *ops.conv2d_output_shape((h, w_), (kh, kw), strides,
                                                                 padding, dil), f)
    assert y.dtype == np.float32
    _assert_close(y, want)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = ops.conv2d_backward(dy, x, w, y=y if relu else None, strides=strides,
                                     padding=padding, dilation_rate=dil, activation=act)
    rdx, rdw, rdb = ref_conv_backward(dy, x, w, y if relu else None, strides, padding, dil)
    _assert_close(dx, rdx)
    _assert_close(dw, rdw)
    _assert_close(db, rdb)


def test_cxx_reference_kernels_agree(rng):
    x, w, b = _data(rng, 2, 9, 8, 3, 3, 2, 4)
    args = ((2, 1), True, (1, 2), True)
    y = _core.conv2d_forward(x, w, b, *args)
    _assert_close(y, _core.conv2d_forward(x, w, b, *args, reference=True))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = _core.conv2d_backward(dy, x, w, y, *args, True, True)
    want = _core.conv2d_backward(dy, x, w, y, *args, True, True, reference=True)
    for g, r in zip(got, want):
        _assert_close(g, r)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 9), w_=st.integers(1, 9), c=st.integers(1, 5),
       kh=st.integers(1, 4), kw=st.integers(1, 4), f=st.integers(1, 6), sh=st.integers(1, 3),
       sw=st.integers(1, 3), dh=st.integers(1, 2), dw_=st.integers(1, 2),
       padding=st.sampled_from(["valid", "same"]), relu=st.booleans(), seed=st.integers(0, 99))
def test_random_shapes(n, h, w_, c, kh, kw, f, sh, sw, dh, dw_, padding, relu, seed):
    rng = np.random.default_rng(seed)
    x, w, b = _data(rng, n, h, w_, c, kh, kw, f)
    kw_args = dict(strides=(sh, sw), padding=padding, dilation_rate=(dh, dw_))
    act = "relu" if relu else None
    if padding == "valid" and ((kh - 1) * dh + 1 > h or (kw - 1) * dw_ + 1 > w_):
        with pytest.raises(ValueError, match="larger than the input"):
            ops.conv2d(x, w, b, **kw_args)
        return
    y = ops.conv2d(x, w, b, activation=act, **kw_args)
    _assert_close(y, ref_conv(x, w, b, (sh, sw), padding, (dh, dw_), relu))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = ops.conv2d_backward(dy, x, w, y=y, activation=act, **kw_args)
    want = ref_conv_backward(dy, x, w, y if relu else None, (sh, sw), padding, (dh, dw_))
    for g, r in zip(got, want):
        _assert_close(g, r)


# --------------------------------------------------------------------------- finite differences
def _fd_check(loss, analytic, arr, rng, eps, samples=12, rtol=2e-2, atol=2e-3):
    flat = arr.reshape(-1)
    for i in rng.choice(flat.size, size=min(samples, flat.size), replace=False):
        old = flat[i]
        flat[i] = old + eps
        up = loss()
        flat[i] = old - eps
        down = loss()
        flat[i] = old
        num = (up - down) / (2 * eps)
        assert abs(num - analytic.reshape(-1)[i]) <= atol + rtol * abs(num), (i, num)


@pytest.mark.parametrize("padding,strides,dil", [("valid", (1, 1), (1, 1)),
                                                 ("same", (2, 1), (1, 2))])
def test_kernel_gradients_vs_finite_differences(padding, strides, dil, rng):
    # Central differences of the float32 kernel forward; the loss is linear in x, w, b.
    x, w, b = _data(rng, 2, 7, 6, 3, 3, 2, 4)
    kw_args = dict(strides=strides, padding=padding, dilation_rate=dil)
    r = rng.standard_normal(ops.conv2d(x, w, b, **kw_args).shape)

    def loss():
        return float((ops.conv2d(x, w, b, **kw_args).astype(np.float64) * r).sum())

    dx, dw, db = ops.conv2d_backward(r.astype(np.float32), x, w, **kw_args)
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        _fd_check(loss, grad, arr, rng, eps=1e-2)


def test_relu_gradients_vs_finite_differences(rng):
    # float64 reference forward with ReLU; the kernel's masked gradients must match it.
    x, w, b = _data(rng, 2, 6, 7, 2, 3, 3, 3)
    x64, w64, b64 = x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
    kw_args = dict(strides=(1, 2), padding="same", dilation_rate=(1, 1))
    y = ops.conv2d(x, w, b, activation="relu", **kw_args)
    r = rng.standard_normal(y.shape)

    def loss():
        return float((ref_conv(x64, w64, b64, (1, 2), "same", (1, 1), True) * r).sum())

    dx, dw, db = ops.conv2d_backward(r.astype(np.float32), x, w, y=y, activation="relu", **kw_args)
    for arr, grad in ((x64, dx), (w64, dw), (b64, db)):
        _fd_check(loss, grad, arr, rng, eps=1e-6, rtol=1e-3, atol=1e-4)


# -------------------------------------------------------------------------------- options, threads
@pytest.mark.parametrize("shape", [(3, 10, 10, 1, 3, 3, 8), (5, 9, 8, 1, 3, 3, 37),
                                   (2, 8, 8, 3, 2, 2, 5), (4, 7, 7, 6, 3, 3, 9)])
@pytest.mark.parametrize("act", [None, "relu"])
def test_need_dx_and_has_bias_flags(shape, act, isa, rng):
    # need_dx=False with K <= one register tile takes the fused single-pass weight gradient.
    x, w, b = _data(rng, *shape)
    y = ops.conv2d(x, w, b, activation=act)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    full = ops.conv2d_backward(dy, x, w, y=y, activation=act)
    dx, dw, db = ops.conv2d_backward(dy, x, w, y=y, activation=act, need_dx=False)
    assert dx is None
    np.testing.assert_array_equal(dw, full[1])
    np.testing.assert_array_equal(db, full[2])
    rdx, rdw, rdb = ref_conv_backward(dy, x, w, y if act else None)
    _assert_close(dw, rdw)
    _assert_close(db, rdb)
    dx, dw2, db = ops.conv2d_backward(dy, x, w, y=y, activation=act, need_dx=False,
                                      has_bias=False)
    assert dx is None and db is None
    np.testing.assert_array_equal(dw2, full[1])
    assert ops.conv2d(x, w).shape == y.shape  # no bias


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("shape", [(37, 13, 11, 3, 3, 3, 16), (256, 12, 12, 2, 3, 3, 5),
                                   (1, 28, 28, 1, 3, 3, 32), (3, 12, 12, 64, 3, 3, 64),
                                   (32, 5, 5, 64, 3, 3, 64)])
def test_one_vs_two_threads_bitwise(shape, padding, threads, isa, rng):
    x, w, b = _data(rng, *shape)
    y = ops.conv2d(x, w, b, activation="relu", padding=padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    results = []
    for nt in (1, 2, 3):
        nncore.set_num_threads(nt)
        yy = ops.conv2d(x, w, b, activation="relu", padding=padding)
        results.append((yy, *ops.conv2d_backward(dy, x, w, y=yy, activation="relu",
                                                 padding=padding),
                        *ops.conv2d_backward(dy, x, w, y=yy, activation="relu", padding=padding,
                                             need_dx=False)[1:]))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_output_shape_helper():
    assert ops.conv2d_output_shape((28, 28), 3) == (26, 26)
    assert ops.conv2d_output_shape((28, 28), 3, padding="same", strides=2) == (14, 14)
    assert ops.conv2d_output_shape((10, 9), (3, 2), strides=(2, 1), dilation_rate=(2, 3)) == (3, 6)
    assert ops.conv2d_output_shape((2, 2), 5, padding="same") == (2, 2)
    with pytest.raises(ValueError, match="larger than the input"):
        ops.conv2d_output_shape((2, 2), 3)


# ------------------------------------------------------------------------------------- bad inputs
def test_bad_inputs(rng):
    x, w, b = _data(rng, 2, 5, 5, 3, 3, 3, 4)
    with pytest.raises(ValueError, match="4-D"):
        ops.conv2d(x[0], w)
    with pytest.raises(ValueError, match="4-D"):
        ops.conv2d(x, w[0])
    with pytest.raises(ValueError, match="channels|Cin"):
        ops.conv2d(x[..., :2], w)
    with pytest.raises(ValueError, match="b has shape"):
        ops.conv2d(x, w, b[:3])
    with pytest.raises(TypeError, match="x must be a real"):
        ops.conv2d(x.astype(np.complex64), w)
    with pytest.raises(ValueError, match="larger than the input"):
        ops.conv2d(x[:, :2], w)
    with pytest.raises(ValueError, match="padding"):
        ops.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match="strides"):
        ops.conv2d(x, w, strides=0)
    with pytest.raises(TypeError, match="dilation_rate"):
        ops.conv2d(x, w, dilation_rate=(1, 2, 3))
    with pytest.raises(TypeError, match="strides"):
        ops.conv2d(x, w, strides=1.5)
    with pytest.raises(ValueError, match="activation"):
        ops.conv2d(x, w, activation="tanh")
    with pytest.raises(ValueError, match="dilation_rate must be <= 2147483647"):
        ops.conv2d(x, w, dilation_rate=10**12, padding="same")
    with pytest.raises(ValueError, match="overflows"):  # the binding checks on its own
        _core.conv2d_forward(x, w, None, (1, 1), True, (10**18, 10**18), False, False)
    y = ops.conv2d(x, w, b)
    with pytest.raises(ValueError, match="dy has shape"):
        ops.conv2d_backward(y[:, :2], x, w)
    with pytest.raises(ValueError, match="needs y"):
        ops.conv2d_backward(y, x, w, activation="relu")
    with pytest.raises(ValueError, match="y has shape"):
        ops.conv2d_backward(y, x, w, y=y[:1], activation="relu")
    # The C++ entry points check again.
    with pytest.raises(TypeError, match="float32"):
        _core.conv2d_forward(x.astype(np.float64), w, None, (1, 1), False, (1, 1), False)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.conv2d_forward(np.asfortranarray(x), w, None, (1, 1), False, (1, 1), False)
    with pytest.raises(ValueError, match="dy must have shape"):
        _core.conv2d_backward(y[:1], x, w, None, (1, 1), False, (1, 1), False, True, True)
    with pytest.raises(ValueError, match="strides"):
        _core.conv2d_forward(x, w, None, (0, 1), False, (1, 1), False)


def test_non_float32_inputs_are_converted(rng):
    x, w, b = _data(rng, 1, 5, 5, 2, 3, 3, 2)
    y = ops.conv2d(x.astype(np.float64), w.tolist(), b)
    np.testing.assert_array_equal(y, ops.conv2d(x, w, b))


# -------------------------------------------------------------------------------------- PyTorch
def _torch_same_pad(x_nchw, w_shape, strides, dilation, padding, F):
    if padding != "same":
        return x_nchw
    _, _, ph, pw = ref_geometry((0, x_nchw.shape[2], x_nchw.shape[3]), w_shape, strides, padding,
                                dilation)
    return F.pad(x_nchw, (pw[0], pw[1], ph[0], ph[1]))


@pytest.mark.parametrize("case", CASES[:6], ids=lambda c: "x".join(map(str, c[:7])) + f"-{c[8]}")
def test_pytorch_parity(case, rng):
    torch = require("torch")
    F = torch.nn.functional
    n, h, w_, c, kh, kw, f, strides, padding, dil = case
    x, w, b = _data(rng, n, h, w_, c, kh, kw, f)
    tx = torch.tensor(x.transpose(0, 3, 1, 2).astype(np.float64), requires_grad=True)
    tw = torch.tensor(w.transpose(3, 2, 0, 1).astype(np.float64), requires_grad=True)
    tb = torch.tensor(b.astype(np.float64), requires_grad=True)
    ty = torch.relu(F.conv2d(_torch_same_pad(tx, w.shape, strides, dil, padding, F), tw, tb,
                             stride=strides, dilation=dil))
    y = ops.conv2d(x, w, b, strides=strides, padding=padding, dilation_rate=dil,
                   activation="relu")
    _assert_close(y, ty.detach().numpy().transpose(0, 2, 3, 1))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.tensor(dy.transpose(0, 3, 1, 2).astype(np.float64)))
    dx, dw, db = ops.conv2d_backward(dy, x, w, y=y, strides=strides, padding=padding,
                                     dilation_rate=dil, activation="relu")
    _assert_close(dx, tx.grad.numpy().transpose(0, 2, 3, 1))
    _assert_close(dw, tw.grad.numpy().transpose(2, 3, 1, 0))
    _assert_close(db, tb.grad.numpy())


def test_pooled_outputs_are_independent_writable_arrays(rng):
    # Large outputs come from nncore's recycled-block pool: each must be its own writable array.
    x, w, b = _data(rng, 8, 20, 20, 4, 3, 3, 16)
    y1 = ops.conv2d(x, w, b)
    y2 = ops.conv2d(x, w, b)
    assert y1.nbytes >= 1 << 16 and y1.flags.writeable and y1.flags.c_contiguous
    assert not np.may_share_memory(y1, y2)
    np.testing.assert_array_equal(y1, y2)
    view = y1[1:3]
    del y1
    y3 = ops.conv2d(x, w, b)  # may reuse a freed block, never one still referenced by `view`
    assert not np.may_share_memory(view, y3)
    y3[:] = 0.0
    np.testing.assert_array_equal(view, y2[1:3])
    for _ in range(30):  # steady state: blocks are recycled, nothing accumulates
        ops.conv2d_backward(ops.conv2d(x, w, b), x, w)


def _conv_in_child(seed):
    rng = np.random.default_rng(seed)
    x, w, b = _data(rng, 16, 12, 12, 8, 3, 3, 16)
    y = ops.conv2d(x, w, b, activation="relu")
    dx, dw, db = ops.conv2d_backward(y, x, w, y=y, activation="relu")
    return float(y.sum() + dx.sum() + dw.sum() + db.sum())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads (Python >= 3.12)
def test_forked_child_does_not_hang(threads):
    # A thread pool does not survive fork(): the child must run serially, with the same results.
    import multiprocessing

    nncore.set_num_threads(2)
    want = _conv_in_child(3)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_conv_in_child, (3,)).get(timeout=60) == want


def test_same_output_size_huge_strides_and_dilations():
    """'same' output size was (in + s - 1) / s and the padded size an unchecked add: signed
    overflow for strides / dilated kernels near 2**63. The ops cap them at 2**31 - 1."""
    x = np.arange(50, dtype=np.float32).reshape(1, 5, 5, 2)
    w = np.ones((1, 1, 2, 3), np.float32)
    big = 2**63 - 1
    y = _core.conv2d_forward(x, w, None, (big, big), True, (1, 1), False, False)
    assert y.shape == (1, 1, 1, 3)
    np.testing.assert_allclose(y[0, 0, 0], np.full(3, x[0, 0, 0].sum()))
    # A dilated kernel of exactly INT64_MAX cells: the zero-padded input would be larger.
    w4 = np.ones((4, 1, 2, 1), np.float32)
    d = (2**63 - 2) // 3
    with pytest.raises(ValueError, match="overflows"):
        _core.conv2d_forward(x, w4, None, (1, 1), True, (d, 1), False, False)
    for kw in ({"strides": big}, {"strides": 2**31}, {"dilation_rate": (1, 2**31)}):
        with pytest.raises(ValueError, match="<= 2147483647"):
            ops.conv2d(x, w, padding="same", **kw)
        with pytest.raises(ValueError, match="<= 2147483647"):
            ops.conv2d_backward(np.zeros((1, 1, 1, 3), np.float32), x, w, padding="same", **kw)
    assert ops.conv2d(x, w, strides=2**31 - 1, padding="same").shape == (1, 1, 1, 3)
    assert ops.conv2d_output_shape((2**40, 5), 1, strides=(2**31 - 1, 1), padding="same") == (
        513, 5)


def test_empty_batch_huge_plane_checked():
    """With N = 0 the output-size check passes whatever OH*OW is: the patch matrix is checked on
    its own (ValueError, never an overflowed size)."""
    x = np.zeros((0, 2**29, 2**29, 4), np.float32)
    w = np.ones((3, 3, 4, 2), np.float32)
    with pytest.raises(ValueError, match="overflows"):
        _core.conv2d_forward(x, w, None, (1, 1), True, (1, 1), False, False)
