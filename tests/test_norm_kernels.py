"""C++ normalization and embedding-gradient kernels against float64 NumPy references, odd shapes,
on every ISA path this CPU has (the `isa` fixture), and 1 vs 2 threads bitwise equal."""

from __future__ import annotations

import nncore
import numpy as np
import pytest
from nncore import _core


# Column counts around the 16-column blocks and the 8 partial sums of a row (1, 3, 8, 16, 17, 35,
# 130, 1001), rows from 1 up.
SHAPES = [(1, 1), (7, 3), (2, 8), (33, 17), (64, 16), (257, 35), (5, 130), (3, 1001)]


def _ref_bn(x, g, b, eps, dy):
    x = x.astype(np.float64)
    mean, var = x.mean(0), x.var(0)
    inv = 1 / np.sqrt(var + eps)
    xh = (x - mean) * inv
    y = xh * (1 if g is None else g) + (0 if b is None else b)
    dbeta, dgamma = dy.sum(0), (dy * xh).sum(0)
    dx = (1 if g is None else g) * inv / len(x) * (len(x) * dy - dbeta - xh * dgamma)
    return y, mean, var, inv, dx, dgamma, dbeta


def _ref_ln(x, g, b, eps, dy):
    x = x.astype(np.float64)
    mean, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
    inv = 1 / np.sqrt(var + eps)
    xh = (x - mean) * inv
    y = xh * (1 if g is None else g) + (0 if b is None else b)
    gg = dy * (1 if g is None else g)
    dx = inv * (gg - gg.mean(1, keepdims=True) - xh * (gg * xh).mean(1, keepdims=True))
    return y, mean[:, 0], inv[:, 0], dx, (dy * xh).sum(0), dy.sum(0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_kernels_against_float64(shape, affine, isa, rng):
    m, c = shape
    x = (3 * rng.normal(size=shape) + 5).astype(np.float32)
    g = rng.normal(size=c).astype(np.float32) if affine else None
    b = rng.normal(size=c).astype(np.float32) if affine else None
    dy = rng.normal(size=shape).astype(np.float32)
    y, mean, var, inv = _core.batchnorm_forward_train(x, g, b, 1e-3)
    dx, dg, db = _core.batchnorm_backward_train(dy, x, mean, inv, g)
    ry, rm, rv, ri, rdx, rdg, rdb = _ref_bn(x, g, b, 1e-3, dy.astype(np.float64))
    for got, want in ((y, ry), (mean, rm), (var, rv), (inv, ri), (dx, rdx), (dg, rdg),
                      (db, rdb)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_layernorm_kernels_against_float64(shape, affine, isa, rng):
    m, k = shape
    x = (2 * rng.normal(size=shape) - 1).astype(np.float32)
    g = rng.normal(size=k).astype(np.float32) if affine else None
    b = rng.normal(size=k).astype(np.float32) if affine else None
    dy = rng.normal(size=shape).astype(np.float32)
    y, mean, inv = _core.layernorm_forward(x, g, b, 1e-3)
    dx, dg, db = _core.layernorm_backward(dy, x, mean, inv, g)
    ry, rm, ri, rdx, rdg, rdb = _ref_ln(x, g, b, 1e-3, dy.astype(np.float64))
    for got, want in ((y, ry), (mean, rm), (inv, ri), (dx, rdx), (dg, rdg), (db, rdb)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("n,v,d", [(1, 1, 1), (50, 7, 3), (1000, 30, 70), (4096, 5, 16),
                                   (300, 11, 129)])
def test_embedding_backward_equals_add_at_bitwise(n, v, d, isa, rng):
    idx = rng.integers(0, v, size=n).astype(np.int64)
    dy = rng.normal(size=(n, d)).astype(np.float32)
    de = np.full((v, d), np.nan, np.float32)  # accumulate=False must not read it
    _core.embedding_backward(de, idx, dy, False)
    ref = np.zeros((v, d), np.float32)
    np.add.at(ref, idx, dy)  # the same float32 additions in the same order
    np.testing.assert_array_equal(de, ref)
    _core.embedding_backward(de, idx, dy, True)
    np.add.at(ref, idx, dy)
    np.testing.assert_array_equal(de, ref)


@pytest.mark.parametrize("n,v,d", [(0, 3, 4), (1, 1, 1), (50, 7, 3), (3200, 10000, 128),
                                   (300, 11, 129)])
def test_embedding_forward_is_the_gather(n, v, d, threads, rng):
    """_core.embedding_forward equals np.take bitwise (copies, so also NaN rows), 1 or 2 threads."""
    e = rng.normal(size=(v, d)).astype(np.float32)
    e[0, 0] = np.nan
    idx = rng.integers(0, v, size=n).astype(np.int64)
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        y = _core.embedding_forward(e, idx)
        assert y.shape == (n, d) and y.dtype == np.float32
        np.testing.assert_array_equal(y, np.take(e, idx, axis=0))


def test_kernels_check_their_inputs():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="gamma must have shape"):
        _core.batchnorm_forward_train(x, np.ones(2, np.float32), None, 1e-3)
    with pytest.raises(ValueError, match="at least one row"):
        _core.batchnorm_forward_train(np.zeros((0, 3), np.float32), None, None, 1e-3)
    with pytest.raises(ValueError, match=r"index 5 is outside \[0, 3\)"):
        _core.embedding_backward(np.zeros((3, 2), np.float32), np.array([0, 5]),
                                 np.zeros((2, 2), np.float32), False)
    with pytest.raises(ValueError, match=r"index -1 is outside \[0, 3\)"):
        _core.embedding_forward(np.zeros((3, 2), np.float32), np.array([0, -1]))
    with pytest.raises(ValueError, match=r"index 3 is outside \[0, 3\)"):
        _core.embedding_forward(np.zeros((3, 2), np.float32), np.array([3]))
    with pytest.raises(TypeError, match="int64"):
        _core.embedding_forward(np.zeros((3, 2), np.float32), np.array([0, 1], np.int32))
    with pytest.raises(TypeError, match="int64"):
        _core.embedding_backward(np.zeros((3, 2), np.float32), np.array([0, 1], np.int32),
                                 np.zeros((2, 2), np.float32), False)


def test_one_and_two_threads_bitwise_equal(isa, threads, rng):
    x = rng.normal(size=(2048, 97)).astype(np.float32)  # large enough to go parallel
    g, b = rng.normal(size=97).astype(np.float32), rng.normal(size=97).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    idx = rng.integers(0, 50, size=2048).astype(np.int64)

    def run():
        y, mean, var, inv = _core.batchnorm_forward_train(x, g, b, 1e-3)
        out = [y, mean, var, inv, *_core.batchnorm_backward_train(dy, x, mean, inv, g)]
        y2, m2, i2 = _core.layernorm_forward(x, g, b, 1e-3)
        out += [y2, m2, i2, *_core.layernorm_backward(dy, x, m2, i2, g)]
        de = np.zeros((50, 97), np.float32)
        _core.embedding_backward(de, idx, dy, False)
        return out + [de]

    nncore.set_num_threads(1)
    one = run()
    nncore.set_num_threads(2)
    two = run()
    for a, b_ in zip(one, two):
        np.testing.assert_array_equal(a, b_)


def _norm_outputs(rng):
    x = (3 * rng.normal(size=(300, 67)) + 1).astype(np.float32)
    g, b = rng.normal(size=67).astype(np.float32), rng.normal(size=67).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    y, mean, var, inv = _core.batchnorm_forward_train(x, g, b, 1e-3)
    dx, dg, db = _core.batchnorm_backward_train(dy, x, mean, inv, g)
    y2, m2, i2 = _core.layernorm_forward(x, g, b, 1e-3)
    dx2, dg2, db2 = _core.layernorm_backward(dy, x, m2, i2, g)
    return [y, var, inv, dx, dg, y2, i2, dx2]


def test_every_isa_runs_its_own_norm_kernels(rng):
    # The dispatch table follows set_isa: each ISA names its own kernel, and the FMA builds round
    # differently from the portable one (all close).
    from nncore import kernels as ops
    before = ops.get_isa()
    names, results = {}, {}
    try:
        for isa in ops.supported_isas():
            ops.set_isa(isa)
            names[isa] = {f: nncore.show_config()["kernels"][f]
                          for f in ("batchnorm", "layernorm", "embedding_backward")}
            results[isa] = _norm_outputs(np.random.default_rng(1))
    finally:
        ops.set_isa(before)
    for isa in names:
        assert set(names[isa].values()) == {isa}, names
    isas = list(results)
    for first, second in zip(isas, isas[1:]):
        for r0, r1 in zip(results[first], results[second]):
            np.testing.assert_allclose(r0, r1, rtol=1e-4, atol=1e-4)
    # the FMA builds round apart from the portable one (two FMA builds may agree bit for bit:
    # these kernels sum in the same order at every vector width)
    for isa in isas[1:]:
        assert any(not np.array_equal(r0, r1) for r0, r1 in zip(results["generic"], results[isa]))
