"""Thin, validating functions over the C++ kernels. Every kernel is reached through this package."""

from .gemm import get_isa, matmul, set_isa, supported_isas

__all__ = ["matmul", "get_isa", "set_isa", "supported_isas"]
