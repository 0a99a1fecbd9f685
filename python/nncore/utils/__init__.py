"""Utilities: random seeding, the progress bar, input validation."""

from .progbar import Progbar
from .random import get_rng, set_random_seed

__all__ = ["Progbar", "get_rng", "set_random_seed", "PyDataset"]


def __getattr__(name):
    # PyDataset lives with the data adapters (nncore.trainers); loaded on first use.
    if name in ("PyDataset", "Sequence"):
        from ..trainers.data_adapters import PyDataset

        return PyDataset
    raise AttributeError(f"module 'nncore.utils' has no attribute {name!r}")
