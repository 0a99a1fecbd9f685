"""Keras's keras.config: the global settings a program reads or sets.

nncore computes in float32, channels_last; asking for anything else is a ValueError naming what
nncore supports. The settings shared with keras.backend live there (one copy)."""

from __future__ import annotations

from .backend import (backend, epsilon, floatx, image_data_format, set_epsilon, set_floatx,
                      set_image_data_format)

_traceback_filtering = True


def dtype_policy() -> str:
    return "float32"


def set_dtype_policy(policy) -> None:
    name = policy if isinstance(policy, str) else getattr(policy, "name", policy)
    if name != "float32":
        raise ValueError(f"nncore computes in float32 only, got dtype policy {policy!r}")


def enable_unsafe_deserialization() -> None:
    """Accepted for Keras programs that call it. nncore never runs code from a model file (a
    Lambda's bytecode stays refused); register the function instead."""


def enable_traceback_filtering() -> None:
    global _traceback_filtering
    _traceback_filtering = True


def disable_traceback_filtering() -> None:
    global _traceback_filtering
    _traceback_filtering = False


def is_traceback_filtering_enabled() -> bool:
    return _traceback_filtering


__all__ = ["backend", "epsilon", "floatx", "image_data_format", "set_epsilon", "set_floatx",
           "set_image_data_format", "dtype_policy", "set_dtype_policy",
           "enable_unsafe_deserialization", "enable_traceback_filtering",
           "disable_traceback_filtering", "is_traceback_filtering_enabled"]
