"""Matrix multiply on the nncore GEMM kernel."""

from __future__ import annotations

import numpy as np

from .. import _core
from ._util import as_f32, check_out


_F32 = np.dtype(np.float32)


def _operand(x, name: str) -> np.ndarray:
    if type(x) is np.ndarray and x.dtype == _F32 and x.ndim == 2:  # the common case, fast
        flags = x.flags
        if flags.c_contiguous or flags.f_contiguous:
            return x
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"matmul: {name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"matmul: {name} must be 2-D, got shape {arr.shape}")
    # C- and Fortran-ordered float32 arrays go to the kernel as they are (a Fortran array is read as
    # a transposed C array); anything else is copied to C order float32.
    if arr.dtype == np.float32 and (arr.flags.c_contiguous or arr.flags.f_contiguous):
        return arr
    return as_f32(arr, name, where="matmul")


def matmul(a, b, out=None, *, transpose_a=False, transpose_b=False, alpha=1.0, beta=0.0,
           bias=None, relu=False):
    """out = alpha * op(a) @ op(b) + beta * out  (op = transpose when asked), float32.

    `a`, `b`: 2-D real arrays; float32 C- or Fortran-ordered arrays are used without a copy, other
    dtypes and layouts are copied to float32. `out`, if given, must be a writable C-contiguous
    float32 array of the result shape and is written in place; with beta != 0 it is accumulated
    into, and with beta == 0 its old contents are never read. Without `out`, beta must be 0.
    `bias` (N,) and `relu` apply the fused epilogue: out = relu(... + bias).
    Results are bitwise identical for any thread count.
    """
    a = _operand(a, "a")
    b = _operand(b, "b")
    m, k = (a.shape[1], a.shape[0]) if transpose_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if transpose_b else b.shape
    if k != kb:
        raise ValueError(
            f"matmul: shapes {a.shape}{'ᵀ' if transpose_a else ''} and "
            f"{b.shape}{'ᵀ' if transpose_b else ''} are not aligned: {k} != {kb}"
        )
    if out is None:
        if beta != 0.0:
            raise ValueError("matmul: beta != 0 needs an `out` array to accumulate into")
        out = np.empty((m, n), dtype=np.float32)
    else:
        check_out(out, (m, n), where="matmul")
        # The kernel writes out while reading a and b: an overlapping operand is copied first.
        if np.may_share_memory(out, a):
            a = a.copy()
        if np.may_share_memory(out, b):
            b = b.copy()
    if bias is not None:
        bias = as_f32(bias, "bias", ndim=1, where="matmul")
        if bias.shape[0] != n:
            raise ValueError(f"matmul: bias has shape {bias.shape}, expected ({n},)")
    _core.sgemm(out, a, b, bool(transpose_a), bool(transpose_b), float(alpha), float(beta), bias,
                bool(relu))
    return out


def get_isa() -> str:
    """The instruction set the kernels use now: 'avx512', 'avx2' or 'generic'."""
    return _core.get_isa()


def set_isa(name: str) -> None:
    """Force the kernels onto one instruction set ('generic', 'avx2', 'avx512'); ValueError if this
    CPU lacks it. The NNCORE_ISA environment variable does the same at import time."""
    _core.set_isa(str(name))


def supported_isas() -> list:
    """The instruction sets this CPU can run, slowest first."""
    return list(_core.supported_isas())
