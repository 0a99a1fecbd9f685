"""keras.preprocessing: only ``sequence.pad_sequences``."""

from . import sequence

__all__ = ["sequence"]
