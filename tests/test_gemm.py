"""sgemm against a float64 NumPy reference, on every ISA path, for adversarial shapes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_within_bound, gemm_error_bound, require
from hypothesis import given, settings
from hypothesis import strategies as st

import nncore
from nncore import _core
from nncore import kernels as ops

# 1, primes, one off the micro-tile edges of every ISA (MR 4/6/14, NR 16/32), KC (256/512) + 3.
SIZES = [1, 2, 3, 5, 7, 13, 15, 17, 31, 33, 47, 97, 259]
SHAPES = [(m, n, k) for m, n, k in zip(SIZES, SIZES[3:] + SIZES[:3], SIZES[6:] + SIZES[:6])]
SHAPES += [(1, 1, 1), (1, 300, 1), (300, 1, 1), (29, 33, 1), (3, 5, 1100), (700, 3, 11),
           (2, 700, 19), (343, 65, 257), (15, 4100, 3), (21632 // 8, 32, 9),
           (29, 45, 515), (170, 33, 1027), (13, 600, 520)]  # KC 512 + 3, 2 KC + 3; N > 512


def _ref(a, b, ta=False, tb=False, alpha=1.0, beta=0.0, c=None):
    a64 = a.astype(np.float64).T if ta else a.astype(np.float64)
    b64 = b.astype(np.float64).T if tb else b.astype(np.float64)
    r = alpha * (a64 @ b64)
    if beta != 0.0:
        r += beta * c.astype(np.float64)
    return r


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_matches_float64(isa, rng, m, n, k, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    got = ops.matmul(a, b, transpose_a=ta, transpose_b=tb)
    assert got.shape == (m, n) and got.dtype == np.float32
    assert_within_bound(got, _ref(a, b, ta, tb), gemm_error_bound(a, b, ta=ta, tb=tb))


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.0), (0.0, 0.75), (2.0, 1.0)])
def test_alpha_beta_out(isa, rng, alpha, beta):
    m, n, k = 37, 45, 300
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    out = c0.copy()
    res = ops.matmul(a, b, out, alpha=alpha, beta=beta)
    assert res is out
    assert_within_bound(out, _ref(a, b, alpha=alpha, beta=beta, c=c0),
                        gemm_error_bound(a, b, alpha=alpha, beta=beta, c=c0))


def test_beta_zero_never_reads_out(isa, rng):
    a = rng.standard_normal((33, 70)).astype(np.float32)
    b = rng.standard_normal((70, 41)).astype(np.float32)
    out = np.full((33, 41), np.nan, dtype=np.float32)
    ops.matmul(a, b, out, beta=0.0)
    assert np.isfinite(out).all()
    assert_within_bound(out, _ref(a, b), gemm_error_bound(a, b))
    out[:] = np.inf
    ops.matmul(a, b, out, alpha=0.0, beta=0.0)  # alpha == 0 and beta == 0: exactly zero
    assert (out == 0).all()


def test_k_zero_scales_out(rng):
    out = rng.standard_normal((4, 5)).astype(np.float32)
    want = 3.0 * out
    ops.matmul(np.zeros((4, 0), np.float32), np.zeros((0, 5), np.float32), out, beta=3.0)
    np.testing.assert_array_equal(out, want)
    assert (ops.matmul(np.zeros((4, 0), np.float32), np.zeros((0, 5), np.float32)) == 0).all()


@pytest.mark.parametrize("shape", [(0, 5, 3), (4, 0, 3), (0, 0, 0)])
def test_empty_dims(shape):
    m, n, k = shape
    assert ops.matmul(np.zeros((m, k), np.float32), np.zeros((k, n), np.float32)).shape == (m, n)


@pytest.mark.parametrize("m,n,k", [(13, 17, 7), (31, 29, 259), (9, 11, 1100)])
def test_error_bound_catches_a_dropped_term(rng, m, n, k):
    """The bound is tight enough to fail a kernel that loses one of the k products (for most
    elements: it is a worst case, and grows with k; the exact small-integer test below catches
    every lost term)."""
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bound = gemm_error_bound(a, b)
    wrong = (a[:, 1:].astype(np.float64) @ b[1:]).astype(np.float32)
    err = np.abs(wrong - _ref(a, b))
    assert (err > bound).mean() > 0.8
    with pytest.raises(AssertionError, match="exceed the float32 error bound"):
        assert_within_bound(wrong, _ref(a, b), bound)


def test_small_integers_exact(isa, rng):
    # Products and sums of small integers are exact in float32: any deviation is a kernel bug.
    a = rng.integers(-8, 9, size=(131, 517)).astype(np.float32)
    b = rng.integers(-8, 9, size=(517, 67)).astype(np.float32)
    np.testing.assert_array_equal(ops.matmul(a, b), (a.astype(np.int64) @ b.astype(np.int64)))


def test_fused_bias_relu(isa, rng):
    a = rng.standard_normal((50, 29)).astype(np.float32)
    b = rng.standard_normal((29, 35)).astype(np.float32)
    bias = rng.standard_normal(35).astype(np.float32)
    got = ops.matmul(a, b, bias=bias, relu=True)
    bound = gemm_error_bound(a, b, bias=bias)  # relu is 1-Lipschitz: the same bound holds
    assert_within_bound(got, np.maximum(_ref(a, b) + bias, 0), bound)
    got = ops.matmul(a, b, bias=bias)
    assert_within_bound(got, _ref(a, b) + bias, bound)


def test_reference_kernel_agrees(rng):
    a = rng.standard_normal((23, 19)).astype(np.float32)
    b = rng.standard_normal((19, 41)).astype(np.float32)
    out = np.empty((23, 41), np.float32)
    _core.sgemm(out, a, b, reference=True)
    assert_within_bound(out, _ref(a, b), gemm_error_bound(a, b))


def test_layouts_and_dtypes(rng):
    a = rng.standard_normal((40, 30))
    b = rng.standard_normal((30, 20))
    want, bound = a @ b, gemm_error_bound(a, b)
    # float64 and int inputs are converted (documented copy); Fortran order and views are used as is.
    assert_within_bound(ops.matmul(a, b), want, bound)
    assert_within_bound(ops.matmul(np.asfortranarray(a, np.float32), b), want, bound)
    assert_within_bound(ops.matmul(a[::2], b), want[::2], bound[::2])
    af = a.astype(np.float32)
    lhs, rhs = af[:, 3:].T, af[:, :27]
    assert_within_bound(ops.matmul(lhs, rhs), lhs.astype(np.float64) @ rhs,
                        gemm_error_bound(lhs, rhs))
    ints = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(ops.matmul(ints, ints.T), ints @ ints.T)


def test_out_aliasing_input(rng):
    a = rng.standard_normal((16, 16)).astype(np.float32)
    b = rng.standard_normal((16, 16)).astype(np.float32)
    want, bound = _ref(a, b), gemm_error_bound(a, b)
    ops.matmul(a, b, out=a)  # numpy semantics: as if the inputs were read first
    assert_within_bound(a, want, bound)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (600, 500, 300), (3, 2000, 257), (2000, 7, 33),
                                   (97, 97, 97)])
def test_threads_bitwise_identical(isa, threads, rng, m, n, k):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    results = []
    for nt in (1, 2, 3):
        nncore.set_num_threads(nt)
        results.append(ops.matmul(a, b, bias=bias, relu=True))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 80), n=st.integers(1, 80), k=st.integers(1, 300),
       ta=st.booleans(), tb=st.booleans(), seed=st.integers(0, 2**31))
def test_hypothesis_shapes(m, n, k, ta, tb, seed):
    r = np.random.default_rng(seed)
    a = r.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = r.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    got = ops.matmul(a, b, transpose_a=ta, transpose_b=tb)
    assert_within_bound(got, _ref(a, b, ta, tb), gemm_error_bound(a, b, ta=ta, tb=tb))


def test_torch_parity(rng):
    torch = require("torch")
    a = rng.standard_normal((123, 77)).astype(np.float32)
    b = rng.standard_normal((77, 55)).astype(np.float32)
    want = (torch.from_numpy(a).double() @ torch.from_numpy(b).double()).numpy()
    assert_within_bound(ops.matmul(a, b), want, gemm_error_bound(a, b))
    # and torch's own float32 product is within the same bound of the same reference
    assert_within_bound((torch.from_numpy(a) @ torch.from_numpy(b)).numpy(), want,
                        gemm_error_bound(a, b))


class TestBadInput:
    def test_shape_mismatch_names_both(self):
        with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 6\)"):
            ops.matmul(np.zeros((3, 4), np.float32), np.zeros((5, 6), np.float32))

    def test_rank(self):
        with pytest.raises(ValueError, match="2-D"):
            ops.matmul(np.zeros((3, 4, 1), np.float32), np.zeros((4, 2), np.float32))
        with pytest.raises(ValueError, match="2-D"):
            ops.matmul(np.zeros(3, np.float32), np.zeros((3, 2), np.float32))

    def test_dtype(self):
        with pytest.raises(TypeError, match="dtype"):
            ops.matmul(np.zeros((2, 2), np.complex64), np.zeros((2, 2), np.float32))
        with pytest.raises(TypeError):
            ops.matmul(np.array([["a", "b"]]), np.zeros((2, 2), np.float32))

    def test_bad_out(self):
        a = np.zeros((3, 4), np.float32)
        b = np.zeros((4, 5), np.float32)
        with pytest.raises(ValueError, match=r"\(3, 5\)"):
            ops.matmul(a, b, np.zeros((5, 3), np.float32))
        with pytest.raises(TypeError, match="float32"):
            ops.matmul(a, b, np.zeros((3, 5), np.float64))
        with pytest.raises(ValueError, match="contiguous"):
            ops.matmul(a, b, np.zeros((3, 10), np.float32)[:, ::2])
        ro = np.zeros((3, 5), np.float32)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            ops.matmul(a, b, ro)
        with pytest.raises(ValueError, match="beta"):
            ops.matmul(a, b, beta=1.0)

    def test_core_rechecks(self):
        # The C++ binding validates on its own: a direct call with wrong shapes raises, no crash.
        with pytest.raises(ValueError):
            _core.sgemm(np.zeros((3, 3), np.float32), np.zeros((3, 4), np.float32),
                        np.zeros((5, 3), np.float32))
        with pytest.raises(ValueError):
            _core.sgemm(np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32),
                        np.zeros((4, 3), np.float32))
        with pytest.raises(TypeError):
            _core.sgemm(np.zeros((3, 3), np.float64), np.zeros((3, 3), np.float32),
                        np.zeros((3, 3), np.float32))
        with pytest.raises(ValueError):
            _core.sgemm(np.zeros((3, 3), np.float32), np.zeros((3, 3), np.float32)[::2, ::2],
                        np.zeros((3, 3), np.float32))
        with pytest.raises(ValueError):
            _core.sgemm(np.zeros((3, 3), np.float32), np.zeros((3, 3), np.float32),
                        np.zeros((3, 3), np.float32), bias=np.zeros(4, np.float32))

    def test_huge_sizes(self, rng):
        # m * n * k = 2**32 overflows a 32-bit product; the result must still be right.
        a = rng.integers(-2, 3, size=(4096, 256)).astype(np.float32)
        b = rng.integers(-2, 3, size=(256, 4096)).astype(np.float32)
        got = ops.matmul(a, b)
        np.testing.assert_array_equal(got[::511], a[::511].astype(np.int64) @ b.astype(np.int64))
        # An output too large to allocate is a clean MemoryError/ValueError before any kernel runs.
        a = np.ones((2**20, 1), np.float32)
        b = np.ones((1, 2**24), np.float32)
        with pytest.raises((MemoryError, ValueError)):
            ops.matmul(a, b)  # 2**44 floats = 64 TiB

    def test_broadcast_views(self):
        # Zero-stride (broadcast) operands are copied, and give the right answer.
        a = np.broadcast_to(np.float32(2.0), (5, 7))
        b = np.broadcast_to(np.arange(3, dtype=np.float32), (7, 3))
        np.testing.assert_array_equal(ops.matmul(a, b), np.asarray(a) @ np.asarray(b))
