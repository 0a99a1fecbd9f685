"""Max/average pooling kernels vs a plain float64 NumPy reference, finite differences, threads,
ISAs, PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st

import nncore
from nncore import kernels as ops


# ----------------------------------------------------------------------------- float64 reference
def _axis(size, k, s, padding):
    if padding == "same":
        out = -(-size // s)
        return out, max((out - 1) * s + k - size, 0) // 2
    return (size - k) // s + 1, 0


def ref_windows(shape, pool, strides, padding):
    """Yields (i, j, rows, cols): the input cells (inside the input) of output (i, j)."""
    oh, pt = _axis(shape[1], pool[0], strides[0], padding)
    ow, pl = _axis(shape[2], pool[1], strides[1], padding)
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * strides[0] - pt, j * strides[1] - pl
            rows = [r for r in range(h0, h0 + pool[0]) if 0 <= r < shape[1]]
            cols = [c for c in range(w0, w0 + pool[1]) if 0 <= c < shape[2]]
            yield i, j, rows, cols
    return oh, ow


def _out_shape(shape, pool, strides, padding):
    return (shape[0], _axis(shape[1], pool[0], strides[0], padding)[0],
            _axis(shape[2], pool[1], strides[1], padding)[0], shape[3])


def ref_max_pool(x, pool, strides, padding):
    x = x.astype(np.float64)
    y = np.zeros(_out_shape(x.shape, pool, strides, padding))
    am = np.zeros(y.shape, dtype=np.int32)
    for i, j, rows, cols in ref_windows(x.shape, pool, strides, padding):
        for n in range(x.shape[0]):
            for c in range(x.shape[3]):
                cells = [(r, q) for r in rows for q in cols]
                vals = [x[n, r, q, c] for r, q in cells]
                k = int(np.argmax(vals))  # first maximum
                y[n, i, j, c] = vals[k]
                am[n, i, j, c] = cells[k][0] * x.shape[2] + cells[k][1]
    return y, am


def ref_max_pool_backward(dy, am, shape):
    dx = np.zeros(shape)
    n, oh, ow, c = dy.shape
    for a in range(n):
        for i in range(oh):
            for j in range(ow):
                for k in range(c):
                    idx = am[a, i, j, k]
                    dx[a, idx // shape[2], idx % shape[2], k] += dy[a, i, j, k]
    return dx


def ref_avg_pool(x, pool, strides, padding):
    x = x.astype(np.float64)
    y = np.zeros(_out_shape(x.shape, pool, strides, padding))
    for i, j, rows, cols in ref_windows(x.shape, pool, strides, padding):
        y[:, i, j, :] = x[:, rows][:, :, cols].mean(axis=(1, 2))
    return y


def ref_avg_pool_backward(dy, shape, pool, strides, padding):
    dx = np.zeros(shape)
    for i, j, rows, cols in ref_windows(shape, pool, strides, padding):
        share = dy[:, i, j, :].astype(np.float64) / (len(rows) * len(cols))
        for r in rows:
            for q in cols:
                dx[:, r, q, :] += share
    return dx


# (N, H, W, C, pool, strides, padding)
CASES = [
    (2, 8, 8, 3, (2, 2), None, "valid"),
    (1, 7, 9, 5, (2, 2), None, "same"),       # odd sizes: 'same' pads bottom/right
    (3, 9, 7, 17, (3, 2), (2, 1), "valid"),   # overlapping windows
    (2, 5, 6, 4, (3, 3), (2, 2), "same"),     # overlapping, padding on both sides
    (2, 3, 2, 2, (5, 4), (1, 1), "same"),     # pool larger than the input
    (1, 6, 6, 1, (2, 3), (3, 3), "valid"),    # stride larger than the pool
    (2, 26, 26, 32, (2, 2), None, "valid"),   # the MNIST CNN's pool
]


def _ids(c):
    return f"{c[0]}x{c[1]}x{c[2]}x{c[3]}-p{c[4][0]}{c[4][1]}-s{c[5]}-{c[6]}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_max_pool_matches_reference(case, isa, rng):
    n, h, w, c, pool, strides, padding = case
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    y, am = ops.max_pool2d(x, pool, strides, padding)
    ry, ram = ref_max_pool(x, pool, strides or pool, padding)
    assert y.shape == ry.shape and am.dtype == np.int32
    assert y.shape[1:3] == ops.pool2d_output_shape((h, w), pool, strides, padding)
    np.testing.assert_array_equal(y, ry.astype(np.float32))
    np.testing.assert_array_equal(am, ram)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = ops.max_pool2d_backward(dy, am, x.shape)
    np.testing.assert_allclose(dx, ref_max_pool_backward(dy, ram, x.shape), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", CASES + [
    (3, 11, 11, 64, (2, 2), None, "valid"),   # the MNIST CNN's second pool: a row/column unused
    (2, 10, 13, 9, (2, 3), (3, 4), "same"),   # gaps between windows, padding, C not a vector
    (2, 7, 5, 3, (1, 1), None, "valid"),      # 1x1: every cell its own window
], ids=_ids)
def test_max_pool_backward_with_geometry(case, isa, threads, rng):
    """The backward given the forward's geometry (one pass for disjoint windows): the float64
    reference, and bit for bit the general scatter, with 1 and 2 threads; signed zeros too."""
    n, h, w, c, pool, strides, padding = case
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    y, am = ops.max_pool2d(x, pool, strides, padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy.reshape(-1)[::7] = -0.0  # the general path's 0 + (-0.0) is +0.0
    general = ops.max_pool2d_backward(dy, am, x.shape)
    want = ref_max_pool_backward(dy, am, x.shape).astype(np.float32)
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        dx = ops.max_pool2d_backward(dy, am, x.shape, pool, strides, padding)
        np.testing.assert_array_equal(dx.view(np.uint32), general.view(np.uint32))
        st = strides or pool
        if st[0] >= pool[0] and st[1] >= pool[1]:  # disjoint: each dx is one dy or zero, exact
            np.testing.assert_array_equal(dx, want)
        else:  # overlapping windows sum in float32
            np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-6)


def test_max_pool_backward_geometry_argmax_outside_its_window(rng):
    """An argmax (from elsewhere) inside the input but not in its own window: the image runs the
    general scatter, so the result is still dy added at each argmax; out of range still raises."""
    x = rng.standard_normal((3, 6, 6, 5)).astype(np.float32)
    y, am = ops.max_pool2d(x, 2)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    am = am.copy()
    am[1, 0, 0, 2] = 35   # another window's cell (also collects that window's own dy there)
    am[1, 2, 1, 4] = 0
    dx = ops.max_pool2d_backward(dy, am, x.shape, 2)
    np.testing.assert_array_equal(dx, ops.max_pool2d_backward(dy, am, x.shape))
    np.testing.assert_allclose(dx, ref_max_pool_backward(dy, am, x.shape), rtol=1e-6, atol=1e-7)
    am[2, 1, 1, 0] = 36
    with pytest.raises(ValueError, match="outside"):
        ops.max_pool2d_backward(dy, am, x.shape, 2)
    with pytest.raises(ValueError, match="not the output"):
        ops.max_pool2d_backward(dy, am, x.shape, 3)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_avg_pool_matches_reference(case, isa, rng):
    n, h, w, c, pool, strides, padding = case
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    y = ops.avg_pool2d(x, pool, strides, padding)
    np.testing.assert_allclose(y, ref_avg_pool(x, pool, strides or pool, padding), rtol=1e-5,
                               atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = ops.avg_pool2d_backward(dy, x.shape, pool, strides, padding)
    want = ref_avg_pool_backward(dy, x.shape, pool, strides or pool, padding)
    np.testing.assert_allclose(dx, want, rtol=1e-5, atol=1e-6)


def test_max_ties_go_to_the_first_maximum():
    x = np.zeros((1, 4, 4, 3), np.float32)
    x[0, 1, 1, 1] = 1.0
    x[0, 0, 1, 1] = 1.0  # tie in channel 1: the first in row-major order, (0, 1), wins
    y, am = ops.max_pool2d(x, 2)
    assert am[0, 0, 0].tolist() == [0, 1, 0]
    assert am[0, 1, 1].tolist() == [2 * 4 + 2] * 3
    dx = ops.max_pool2d_backward(np.ones_like(y), am, x.shape)
    assert dx[0, 0, 1, 1] == 1.0 and dx[0, 1, 1, 1] == 0.0 and dx.sum() == y.size


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 9),
       ph=st.integers(1, 4), pw=st.integers(1, 4), sh=st.integers(1, 4), sw=st.integers(1, 4),
       padding=st.sampled_from(["valid", "same"]), seed=st.integers(0, 99))
def test_random_shapes(n, h, w, c, ph, pw, sh, sw, padding, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    if padding == "valid" and (ph > h or pw > w):
        with pytest.raises(ValueError, match="larger than the input"):
            ops.max_pool2d(x, (ph, pw), (sh, sw), padding)
        return
    y, am = ops.max_pool2d(x, (ph, pw), (sh, sw), padding)
    ry, ram = ref_max_pool(x, (ph, pw), (sh, sw), padding)
    np.testing.assert_array_equal(y, ry.astype(np.float32))
    np.testing.assert_array_equal(am, ram)
    ya = ops.avg_pool2d(x, (ph, pw), (sh, sw), padding)
    np.testing.assert_allclose(ya, ref_avg_pool(x, (ph, pw), (sh, sw), padding), rtol=1e-5,
                               atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(ops.avg_pool2d_backward(dy, x.shape, (ph, pw), (sh, sw), padding),
                               ref_avg_pool_backward(dy, x.shape, (ph, pw), (sh, sw), padding),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.max_pool2d_backward(dy, am, x.shape),
                               ref_max_pool_backward(dy, ram, x.shape), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_gradients_vs_finite_differences(kind, rng):
    # Distinct, well-separated values so a small step never changes the argmax.
    shape = (2, 7, 6, 3)
    x = (rng.permutation(np.prod(shape)).reshape(shape) * 0.1).astype(np.float32)
    pool, strides, padding = (3, 2), (2, 2), "same"
    if kind == "max":
        fwd = lambda: ops.max_pool2d(x, pool, strides, padding)[0]  # noqa: E731
    else:
        fwd = lambda: ops.avg_pool2d(x, pool, strides, padding)  # noqa: E731
    r = rng.standard_normal(fwd().shape)
    if kind == "max":
        dx = ops.max_pool2d_backward(r.astype(np.float32), ops.max_pool2d(x, pool, strides,
                                                                        padding)[1], shape)
    else:
        dx = ops.avg_pool2d_backward(r.astype(np.float32), shape, pool, strides, padding)
    flat = x.reshape(-1)
    eps = 1e-2
    for i in rng.choice(flat.size, size=30, replace=False):
        old = flat[i]
        flat[i] = old + eps
        up = (fwd().astype(np.float64) * r).sum()
        flat[i] = old - eps
        down = (fwd().astype(np.float64) * r).sum()
        flat[i] = old
        num = (up - down) / (2 * eps)
        assert abs(num - dx.reshape(-1)[i]) <= 1e-3 + 1e-2 * abs(num)


def test_one_vs_two_threads_bitwise(threads, rng):
    x = rng.standard_normal((33, 26, 26, 32)).astype(np.float32)
    results = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        y, am = ops.max_pool2d(x, 3, 2, "same")
        ya = ops.avg_pool2d(x, 3, 2, "same")
        dy = np.ones_like(y)
        y2, am2 = ops.max_pool2d(x, 2)  # disjoint windows: the one-pass backward
        dy2 = np.arange(y2.size, dtype=np.float32).reshape(y2.shape)
        results.append((y, am, ya, ops.max_pool2d_backward(dy, am, x.shape),
                        ops.avg_pool2d_backward(dy, x.shape, 3, 2, "same"),
                        ops.max_pool2d_backward(dy, am, x.shape, 3, 2, "same"),
                        ops.max_pool2d_backward(dy2, am2, x.shape, 2)))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_bad_inputs(rng):
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="4-D"):
        ops.max_pool2d(x[0], 2)
    with pytest.raises(ValueError, match="larger than the input"):
        ops.avg_pool2d(x, 7)
    with pytest.raises(ValueError, match="padding"):
        ops.max_pool2d(x, 2, padding="causal")
    with pytest.raises(ValueError, match="pool_size"):
        ops.max_pool2d(x, 0)
    with pytest.raises(TypeError, match="strides"):
        ops.avg_pool2d(x, 2, strides="2")
    with pytest.raises(TypeError, match="x must be a real"):
        ops.max_pool2d(x.astype(object), 2)
    y, am = ops.max_pool2d(x, 2)
    with pytest.raises(TypeError, match="int32"):
        ops.max_pool2d_backward(y, am.astype(np.int64), x.shape)
    with pytest.raises(ValueError, match="argmax has shape"):
        ops.max_pool2d_backward(y, am[:1], x.shape)
    with pytest.raises(ValueError, match="input_shape"):
        ops.max_pool2d_backward(y, am, (2, 6, 6, 4))
    with pytest.raises(TypeError, match="input_shape"):
        ops.max_pool2d_backward(y, am, (2, 6, 6))
    bad = am.copy()
    bad[0, 0, 0, 0] = 36
    with pytest.raises(ValueError, match="outside"):
        ops.max_pool2d_backward(y, bad, x.shape)
    bad[0, 0, 0, 0] = -1
    with pytest.raises(ValueError, match="outside"):
        ops.max_pool2d_backward(y, bad, x.shape)
    with pytest.raises(ValueError, match="dy has shape"):
        ops.avg_pool2d_backward(y[:, :2], x.shape, 2)


# -------------------------------------------------------------------------------------- PyTorch
def _torch_pad(tx, shape, pool, strides, padding, value, F):
    if padding != "same":
        return tx
    pads = []
    for size, k, s in ((shape[2], pool[1], strides[1]), (shape[1], pool[0], strides[0])):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(tx, pads, value=value)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_pytorch_parity(case, rng):
    torch = require("torch")
    F = torch.nn.functional
    n, h, w, c, pool, strides, padding = case
    st_ = strides or pool
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    dy_shape = _out_shape(x.shape, pool, st_, padding)
    dy = rng.standard_normal(dy_shape).astype(np.float32)
    to_t = lambda a: torch.tensor(a.transpose(0, 3, 1, 2).astype(np.float64))  # noqa: E731
    to_np = lambda t: t.detach().numpy().transpose(0, 2, 3, 1)  # noqa: E731

    tx = to_t(x).requires_grad_(True)
    ty = F.max_pool2d(_torch_pad(tx, x.shape, pool, st_, padding, -np.inf, F), pool, st_)
    ty.backward(to_t(dy))
    y, am = ops.max_pool2d(x, pool, strides, padding)
    np.testing.assert_array_equal(y, to_np(ty).astype(np.float32))
    np.testing.assert_allclose(ops.max_pool2d_backward(dy, am, x.shape), to_np(tx.grad),
                               rtol=1e-6, atol=1e-6)

    # Average over the valid cells only: torch's zero-padded sum divided by the count of real cells.
    tx = to_t(x).requires_grad_(True)
    ones = torch.ones_like(tx)
    count = F.avg_pool2d(_torch_pad(ones, x.shape, pool, st_, padding, 0.0, F), pool, st_,
                         divisor_override=1)
    ty = F.avg_pool2d(_torch_pad(tx, x.shape, pool, st_, padding, 0.0, F), pool, st_,
                      divisor_override=1) / count
    ty.backward(to_t(dy))
    np.testing.assert_allclose(ops.avg_pool2d(x, pool, strides, padding), to_np(ty), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(ops.avg_pool2d_backward(dy, x.shape, pool, strides, padding),
                               to_np(tx.grad), rtol=1e-5, atol=1e-6)


def test_same_output_size_huge_strides():
    """'same' output size was (in + s - 1) / s: signed overflow for s near 2**63 (wrong shape or a
    SIGFPE). The ops cap strides and pool sizes at 2**31 - 1, as the layers do."""
    from nncore import _core
    x = np.arange(50, dtype=np.float32).reshape(1, 5, 5, 2)
    big = 2**63 - 1
    y, am = _core.maxpool2d_forward(x, (1, 1), (big, big), True)
    assert y.shape == (1, 1, 1, 2)
    np.testing.assert_array_equal(y[0, 0, 0], x[0, 0, 0])
    assert _core.avgpool2d_forward(x, (1, 1), (big, big), True).shape == (1, 1, 1, 2)
    y, _ = _core.maxpool2d_forward(x, (big, big), (1, 1), True)  # pad over the whole plane
    assert y.shape == (1, 5, 5, 2)
    np.testing.assert_array_equal(y[0, 0, 0], x[0].max(axis=(0, 1)))
    for kw in ({"strides": big}, {"strides": 2**31}, {"pool_size": 2**31}):
        args = {"pool_size": 1, **kw}
        with pytest.raises(ValueError, match="<= 2147483647"):
            ops.max_pool2d(x, args["pool_size"], strides=args.get("strides"), padding="same")
        with pytest.raises(ValueError, match="<= 2147483647"):
            ops.avg_pool2d(x, args["pool_size"], strides=args.get("strides"), padding="same")
    y, _ = ops.max_pool2d(x, 1, strides=2**31 - 1, padding="same")
    assert y.shape == (1, 1, 1, 2)
    assert ops.pool2d_output_shape((2**40, 5), 1, strides=(2**31 - 1, 2), padding="same") == (
        513, 3)
