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
from .more_ops import (  # noqa: F401
    all, any, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, argsort, array,
    broadcast_to, ceil, copy, cos, cosh, count_nonzero, cumprod, cumsum, diag, elu, empty, erf,
    exp2, expm1, eye, flip, floor, floor_divide, full_like, gelu, hard_sigmoid, hard_silu,
    hard_swish, hstack, hypot, identity, isfinite, isinf, isnan, leaky_relu, linspace, log10,
    log2, log_sigmoid, logaddexp, logical_not, logical_xor, logsumexp, meshgrid, mod, moments,
    moveaxis, nan_to_num, norm, normalize, outer, pad, prod, ravel, reciprocal, relu6, repeat,
    roll, round, rsqrt, select, selu, sign, silu, sin, sinh, slice, softplus, softsign, sort,
    swapaxes, swish, tan, tensordot, tile, top_k, tril, triu, trunc, unstack, vstack,
)

__all__ = [n for n in dir() if not n.startswith("_")]
