"""Utilities: random seeding, the progress bar, input validation."""

from .progbar import Progbar
from .random import get_rng, set_random_seed

__all__ = ["Progbar", "get_rng", "set_random_seed"]
