"""One global random generator for weight initialisation, dropout and shuffling.

set_random_seed(seed) makes training bitwise reproducible: every random draw nncore makes comes from
this generator in a fixed order, and every kernel is bitwise identical for any thread count.
"""

from __future__ import annotations

import random as _pyrandom

import numpy as np

_rng = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Seed nncore's generator (and, like Keras, Python's `random` and NumPy's legacy global)."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"set_random_seed expects an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    seed = int(seed)
    _rng = np.random.default_rng(seed)
    _pyrandom.seed(seed)
    np.random.seed(seed % 2**32)


def get_rng() -> np.random.Generator:
    """The generator nncore draws from."""
    return _rng
