"""Keras's keras.backend essentials: nncore computes in float32, channels_last."""

from __future__ import annotations

_EPSILON = 1e-7


def image_data_format() -> str:
    return "channels_last"


def set_image_data_format(data_format) -> None:
    if data_format != "channels_last":
        raise ValueError("nncore supports only data_format='channels_last' (NHWC)")


def floatx() -> str:
    return "float32"


def set_floatx(value) -> None:
    if value != "float32":
        raise ValueError("nncore computes in float32 only")


def epsilon() -> float:
    return _EPSILON


def set_epsilon(value) -> None:
    global _EPSILON
    _EPSILON = float(value)


def backend() -> str:
    return "nncore"


def clear_session(free_memory=True) -> None:
    """Reset the automatic layer names (as Keras's clear_session does)."""
    from .layers import base

    with base._name_lock:
        base._name_counts.clear()


def is_keras_tensor(x) -> bool:
    from .layers.node import KerasTensor

    return isinstance(x, KerasTensor)
