"""Thin, validating functions over the C++ kernels. Every kernel is reached through this package."""

from .gemm import get_isa, matmul, set_isa, supported_isas
from .train import (
    activation,
    activation_backward,
    adam_update,
    rmsprop_update,
    sgd_update,
    softmax_cross_entropy,
)

__all__ = ["matmul", "get_isa", "set_isa", "supported_isas", "activation", "activation_backward",
           "softmax_cross_entropy", "sgd_update", "adam_update", "rmsprop_update"]
