"""to_categorical and normalize, as keras.utils."""

from __future__ import annotations

import numpy as np


def to_categorical(x, num_classes=None):
    """One-hot float32 array of shape x.shape + (num_classes,) (a trailing axis of size 1 in x is
    dropped first, as Keras does). num_classes defaults to max(x) + 1. Labels must be integers in
    [0, num_classes)."""
    a = np.asarray(x)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(np.floor(a) != a):
            raise ValueError("to_categorical: labels must be integers")
    elif a.dtype.kind not in "iub":
        raise TypeError(f"to_categorical: labels must be integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    shape = a.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = a.reshape(-1)
    if num_classes is None:
        if flat.size == 0:
            raise ValueError("to_categorical: num_classes is required for empty input")
        num_classes = int(flat.max()) + 1
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be a positive integer, got "
                         f"{num_classes!r}")
    num_classes = int(num_classes)
    if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must be in [0, {num_classes}), got labels in "
                         f"[{flat.min()}, {flat.max()}]")
    out = np.zeros((flat.size, num_classes), np.float32)
    out[np.arange(flat.size), flat] = 1.0
    return out.reshape(shape + (num_classes,))


def normalize(x, axis=-1, order=2):
    """x / ||x||_order along axis (rows with norm 0 are left as they are), as keras.utils."""
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"normalize: expected a numeric array, got dtype {a.dtype}")
    if a.dtype.kind != "f":
        a = a.astype(np.float32)
    norm = np.atleast_1d(np.linalg.norm(a, order, axis))
    norm[norm == 0] = 1
    return a / np.expand_dims(norm, axis)
