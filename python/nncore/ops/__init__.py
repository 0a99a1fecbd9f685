"""Keras's ``keras.ops``: numpy-like functions that compute on arrays and, on symbolic tensors,
record graph nodes that the model core runs and differentiates (see numpy_ops.py, _graph.py).

    from nncore import ops
    y = ops.relu(ops.matmul(x, w) + b)
"""

from .numpy_ops import (  # noqa: F401
    abs, absolute, add, amax, amin, arange, argmax, argmin, average_pool, cast, clip,
    concatenate, conv, convert_to_numpy, convert_to_tensor, divide, dot, einsum, equal, exp,
    expand_dims, full, getitem, greater, greater_equal, less, less_equal, log, log1p,
    log_softmax, logical_and, logical_or, matmul, max, max_pool, maximum, mean, min, minimum,
    multiply, ndim, negative, not_equal, one_hot, ones, ones_like, power, relu, reshape, shape,
    sigmoid, size, softmax, split, sqrt, square, squeeze, stack, std, stop_gradient, subtract,
    sum, take, take_along_axis, tanh, transpose, true_divide, var, where, zeros, zeros_like,
)

__all__ = [n for n in dir() if not n.startswith("_")]
