"""GEMM paths changed by the RNN work: the partial-row edge kernel (fewer rows than the micro-tile)
and the register-transposed packing of non-transposed A. Checked on every ISA against float64, with
1 vs 2 threads bitwise."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_within_bound, gemm_error_bound

import nncore
from nncore import kernels as ops

SHAPES = [(1, 1, 1), (4, 32, 128), (13, 64, 9), (15, 33, 7), (17, 40, 6), (29, 65, 300),
          (32, 512, 128), (5, 3, 258), (3, 700, 515)]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_edges_match_reference_and_threads(m, n, k, ta, tb, isa, rng, threads):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    outs = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        c = c0.copy()
        ops.matmul(a, b, c, transpose_a=ta, transpose_b=tb, alpha=0.7, beta=0.3)
        outs.append(c)
    ref = 0.7 * ((a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64))
    ref += 0.3 * c0
    assert_within_bound(outs[0], ref, gemm_error_bound(a, b, ta=ta, tb=tb, alpha=0.7, beta=0.3,
                                                         c=c0))
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("reference", [False, True])
def test_sgemm_rejects_strided_row_vector_out(isa, reference):
    """A 1-row out with a column stride of 2 floats used to pass as 'column-major' and the kernel
    wrote 5 contiguous floats: past the view, over the cells between its elements."""
    from nncore import _core
    big = np.full((1, 10), -7.0, np.float32)
    out = big[:, ::2]
    a, b = np.ones((1, 3), np.float32), np.ones((3, 5), np.float32)
    with pytest.raises(ValueError, match="contiguous"):
        _core.sgemm(out, a, b, reference=reference)
    np.testing.assert_array_equal(big, np.full((1, 10), -7.0, np.float32))
    # Strided rows stay allowed (row stride >= cols), as do single columns with any row stride.
    rows = np.full((3, 8), -7.0, np.float32)
    _core.sgemm(rows[:, :5], np.ones((3, 3), np.float32), b, reference=reference)
    np.testing.assert_array_equal(rows[:, :5], np.full((3, 5), 3.0, np.float32))
    np.testing.assert_array_equal(rows[:, 5:], np.full((3, 3), -7.0, np.float32))
    col = np.full((6, 2), -7.0, np.float32)
    _core.sgemm(col[::2, :1], np.ones((3, 3), np.float32), np.ones((3, 1), np.float32),
                reference=reference)
    np.testing.assert_array_equal(col[::2, 0], np.full(3, 3.0, np.float32))
    np.testing.assert_array_equal(col[1::2, 0], np.full(3, -7.0, np.float32))
    np.testing.assert_array_equal(col[:, 1], np.full(6, -7.0, np.float32))
