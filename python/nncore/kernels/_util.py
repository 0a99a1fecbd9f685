"""Input checks and conversions shared by the ops modules."""

from __future__ import annotations

import numpy as np

_REAL_KINDS = "biuf"


def as_f32(x, name: str, *, ndim: int | None = None, where: str = "") -> np.ndarray:
    """x as a C-contiguous float32 array. Real inputs of other dtypes are converted (a copy);
    anything else raises TypeError. A rank mismatch raises ValueError naming the shape."""
    arr = np.asarray(x)
    prefix = f"{where}: " if where else ""
    if arr.dtype.kind not in _REAL_KINDS:
        raise TypeError(f"{prefix}{name} must be a real numeric array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{prefix}{name} must be {ndim}-D, got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    # ascontiguousarray makes a 0-d array 1-d: a scalar weight (Attention's scale) keeps ().
    return out.reshape(()) if arr.ndim == 0 else out


def check_out(out, shape: tuple, name: str = "out", where: str = "") -> np.ndarray:
    """`out` must be a writable, C-contiguous float32 array of exactly `shape`."""
    prefix = f"{where}: " if where else ""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{prefix}{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise TypeError(f"{prefix}{name} must be float32, got {out.dtype}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{prefix}{name} has shape {out.shape}, expected {tuple(shape)}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{prefix}{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{prefix}{name} is read-only")
    return out
