"""Thin, validating functions over the C++ kernels. Every kernel is reached through this package."""

from .gemm import get_isa, matmul, set_isa, supported_isas
from .rnn import gru, gru_backward, lstm, lstm_backward, simple_rnn, simple_rnn_backward

__all__ = [
    "matmul", "get_isa", "set_isa", "supported_isas",
    "simple_rnn", "simple_rnn_backward", "lstm", "lstm_backward", "gru", "gru_backward",
]
