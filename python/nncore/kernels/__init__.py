"""Thin, validating functions over the C++ kernels. Every kernel is reached through this package."""

from .conv import conv2d, conv2d_backward, conv2d_output_shape
from .gemm import get_isa, matmul, set_isa, supported_isas
from .pool import (
    avg_pool2d,
    avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
    pool2d_output_shape,
)
from .rnn import gru, gru_backward, lstm, lstm_backward, simple_rnn, simple_rnn_backward
from .train import (
    activation,
    activation_backward,
    adam_update,
    rmsprop_update,
    sgd_update,
    softmax_cross_entropy,
)

__all__ = [
    "matmul", "get_isa", "set_isa", "supported_isas",
    "conv2d_output_shape", "conv2d", "conv2d_backward",
    "pool2d_output_shape", "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "activation", "activation_backward", "softmax_cross_entropy", "sgd_update", "adam_update",
    "rmsprop_update",
    "simple_rnn", "simple_rnn_backward", "lstm", "lstm_backward", "gru", "gru_backward",
]
