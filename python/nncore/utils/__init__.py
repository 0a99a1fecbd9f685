"""Utilities: random seeding, the progress bar, to_categorical, normalize, pad_sequences,
get_file."""

from .files import get_file
from .numerical import normalize, to_categorical
from .progbar import Progbar
from .random import get_rng, set_random_seed
from .sequence import pad_sequences

__all__ = ["Progbar", "get_file", "get_rng", "normalize", "pad_sequences", "set_random_seed",
           "to_categorical"]
