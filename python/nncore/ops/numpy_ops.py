"""Keras's numpy-like ops (keras.ops), with Keras's argument names.

Every op is written once as a forward and, next to it, its backward rule (the gradient with
respect to each operand in the broadcast result's shape; the node sums it back to the operand's
shape). On numpy values an op computes at once; on symbolic tensors it records a graph node
(see _graph.py). matmul on float32 2-D operands runs on nncore's GEMM, convolution and pooling on
nncore's kernels; the rest is vectorised numpy.
"""

from __future__ import annotations

import builtins as _builtins

import numpy as np

from . import _kernels
from ._graph import Op, apply
from ..layers.node import KerasTensor

_F32 = np.float32


def _op(name, fwd, bwd=None, nout=1):
    return Op(name, fwd, bwd, nout)


def _plain(fn):
    """A forward with nothing to save."""
    return lambda *a, **k: (fn(*a, **k), None)


# ---- elementwise binary -------------------------------------------------------------------------
_ADD = _op("add", _plain(np.add), lambda dy, y, v, s, n: [dy, dy])
_SUB = _op("subtract", _plain(np.subtract), lambda dy, y, v, s, n: [dy, -dy if n[1] else None])
_MUL = _op("multiply", _plain(np.multiply),
           lambda dy, y, v, s, n: [dy * v[1] if n[0] else None, dy * v[0] if n[1] else None])


def _div_f(a, b):
    return np.true_divide(a, b), None


def _div_b(dy, y, v, s, n):
    a, b = v
    return [dy / b if n[0] else None, -dy * y / b if n[1] else None]


_DIV = _op("divide", _div_f, _div_b)


def _pow_b(dy, y, v, s, n):
    a, b = v
    ga = dy * b * np.power(a, np.subtract(b, 1)) if n[0] else None
    gb = None
    if n[1]:
        with np.errstate(divide="ignore", invalid="ignore"):
            gb = dy * y * np.where(np.asarray(a) > 0, np.log(np.where(np.asarray(a) > 0, a, 1)),
                                   0)
    return [ga, gb]


_POW = _op("power", _plain(np.power), _pow_b)


def _maximum_b(dy, y, v, s, n):
    m = np.asarray(v[0] >= v[1])
    return [dy * m if n[0] else None, dy * ~m if n[1] else None]


def _minimum_b(dy, y, v, s, n):
    m = np.asarray(v[0] <= v[1])
    return [dy * m if n[0] else None, dy * ~m if n[1] else None]


_MAXIMUM = _op("maximum", _plain(np.maximum), _maximum_b)
_MINIMUM = _op("minimum", _plain(np.minimum), _minimum_b)


def _bin(op, x1, x2):
    return apply(op, [x1, x2])


def add(x1, x2):
    return _bin(_ADD, x1, x2)


def subtract(x1, x2):
    return _bin(_SUB, x1, x2)


def multiply(x1, x2):
    return _bin(_MUL, x1, x2)


def divide(x1, x2):
    return _bin(_DIV, x1, x2)


true_divide = divide


def power(x1, x2):
    return _bin(_POW, x1, x2)


def maximum(x1, x2):
    return _bin(_MAXIMUM, x1, x2)


def minimum(x1, x2):
    return _bin(_MINIMUM, x1, x2)


# Comparisons and logic (no gradient).
def _nograd(name, fn):
    return _op(name, _plain(fn))


_CMP = {name: _nograd(name, fn) for name, fn in (
    ("equal", np.equal), ("not_equal", np.not_equal), ("less", np.less),
    ("less_equal", np.less_equal), ("greater", np.greater), ("greater_equal", np.greater_equal),
    ("logical_and", np.logical_and), ("logical_or", np.logical_or))}


def equal(x1, x2):
    return apply(_CMP["equal"], [x1, x2])


def not_equal(x1, x2):
    return apply(_CMP["not_equal"], [x1, x2])


def less(x1, x2):
    return apply(_CMP["less"], [x1, x2])


def less_equal(x1, x2):
    return apply(_CMP["less_equal"], [x1, x2])


def greater(x1, x2):
    return apply(_CMP["greater"], [x1, x2])


def greater_equal(x1, x2):
    return apply(_CMP["greater_equal"], [x1, x2])


def logical_and(x1, x2):
    return apply(_CMP["logical_and"], [x1, x2])


def logical_or(x1, x2):
    return apply(_CMP["logical_or"], [x1, x2])


# ---- elementwise unary --------------------------------------------------------------------------
def _un(name, fn, grad):
    """grad(dy, y, x) -> dx."""
    return _op(name, _plain(fn), lambda dy, y, v, s, n: [grad(dy, y, v[0])])


def _sigmoid(x):
    x = np.asarray(x)
    out = np.empty_like(x, dtype=x.dtype if x.dtype.kind == "f" else _F32)
    pos = x >= 0
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    np.divide(1, 1 + e, out=out, where=pos)
    np.divide(e, 1 + e, out=out, where=~pos)
    return out


_NEG = _un("negative", np.negative, lambda dy, y, x: -dy)
_SQUARE = _un("square", np.square, lambda dy, y, x: dy * (2 * x))
_SQRT = _un("sqrt", np.sqrt, lambda dy, y, x: dy / (2 * y))
_ABS = _un("abs", np.abs, lambda dy, y, x: dy * np.sign(x))
_EXP = _un("exp", np.exp, lambda dy, y, x: dy * y)
_LOG = _un("log", np.log, lambda dy, y, x: dy / x)
_LOG1P = _un("log1p", np.log1p, lambda dy, y, x: dy / (1 + x))
_TANH = _un("tanh", np.tanh, lambda dy, y, x: dy * (1 - y * y))
_SIGMOID = _un("sigmoid", _sigmoid, lambda dy, y, x: dy * (y * (1 - y)))
_RELU = _un("relu", lambda x: np.maximum(x, 0), lambda dy, y, x: dy * (y > 0))
_STOP = _op("stop_gradient", _plain(lambda x: x), None)


def negative(x):
    return apply(_NEG, [x])


def square(x):
    return apply(_SQUARE, [x])


def sqrt(x):
    return apply(_SQRT, [x])


def abs(x):  # noqa: A001 (Keras's name)
    return apply(_ABS, [x])


absolute = abs


def exp(x):
    return apply(_EXP, [x])


def log(x):
    return apply(_LOG, [x])


def log1p(x):
    return apply(_LOG1P, [x])


def tanh(x):
    return apply(_TANH, [x])


def sigmoid(x):
    return apply(_SIGMOID, [x])


def relu(x):
    return apply(_RELU, [x])


def stop_gradient(variable):
    return apply(_STOP, [variable])


def _softmax_f(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True), None


def _softmax_b(dy, y, v, s, n, axis=-1):
    return [y * (dy - np.sum(dy * y, axis=axis, keepdims=True))]


def _log_softmax_f(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True)), None


def _log_softmax_b(dy, y, v, s, n, axis=-1):
    return [dy - np.exp(y) * np.sum(dy, axis=axis, keepdims=True)]


_SOFTMAX = _op("softmax", _softmax_f, _softmax_b)
_LOG_SOFTMAX = _op("log_softmax", _log_softmax_f, _log_softmax_b)


def _axis_arg(axis):
    if isinstance(axis, list):
        axis = tuple(axis)
    return axis


def softmax(x, axis=-1):
    return apply(_SOFTMAX, [x], {"axis": _axis_arg(axis)})


def log_softmax(x, axis=-1):
    return apply(_LOG_SOFTMAX, [x], {"axis": _axis_arg(axis)})


# ---- matmul, dot, einsum ------------------------------------------------------------------------
def _mm(a, b):
    """a @ b; float32 operands whose product is a 2-D GEMM go to nncore's kernel."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == _F32 and b.dtype == _F32 and b.ndim == 2 and a.ndim >= 2:
        if a.ndim == 2:
            return _kernels.gemm(a, b)
        if a.flags.c_contiguous:
            return _kernels.gemm(a.reshape(-1, a.shape[-1]), b).reshape(
                a.shape[:-1] + (b.shape[1],))
    return np.matmul(a, b)


def _mm_t(a, b, ta, tb):
    """op(a) @ op(b) for 2-D float32 operands on the GEMM (transposes read in place)."""
    if a.dtype == _F32 and b.dtype == _F32 and a.ndim == 2 and b.ndim == 2:
        return _kernels.gemm(a, b, transpose_a=ta, transpose_b=tb)
    return np.matmul(a.T if ta else a, b.T if tb else b)


def _matmul_b(dy, y, v, s, n):
    a, b = np.asarray(v[0]), np.asarray(v[1])
    da = db = None
    a2, b2, dy2 = a, b, dy
    if a.ndim == 1:
        a2 = a[None, :]
        dy2 = dy2[..., None, :]
    if b.ndim == 1:
        b2 = b[:, None]
        dy2 = dy2[..., None]
    if b2.ndim == 2 and a2.ndim >= 2 and dy2.dtype == _F32:
        d2 = np.ascontiguousarray(dy2).reshape(-1, dy2.shape[-1])
        if n[0]:
            da = _mm_t(d2, b2, False, True).reshape(a2.shape[:-2] + (a2.shape[-2],
                                                                   a2.shape[-1]))
        if n[1]:
            a_flat = np.ascontiguousarray(a2).reshape(-1, a2.shape[-1])
            db = _mm_t(a_flat, d2, True, False)
    else:
        if n[0]:
            da = np.matmul(dy2, np.swapaxes(b2, -1, -2))
        if n[1]:
            db = np.matmul(np.swapaxes(a2, -1, -2), dy2)
    if da is not None and a.ndim == 1:
        da = da.reshape(da.shape[:-2] + (a.shape[0],)) if da.ndim > 2 else da.reshape(a.shape)
        if da.ndim > 1:
            da = da.sum(axis=tuple(range(da.ndim - 1)))
    if db is not None and b.ndim == 1:
        db = db.reshape(db.shape[:-1])
        if db.ndim > 1:
            db = db.sum(axis=tuple(range(db.ndim - 1)))
    return [da, db]


_MATMUL = _op("matmul", _plain(_mm), _matmul_b)


def matmul(x1, x2):
    return apply(_MATMUL, [x1, x2])


def _dot_f(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        return np.multiply(a, b), None
    if b.ndim <= 2:
        return _mm(a, b), None
    return np.dot(a, b), None


def _dot_b(dy, y, v, s, n):
    a, b = np.asarray(v[0]), np.asarray(v[1])
    if a.ndim == 0 or b.ndim == 0:
        return _MUL.bwd(dy, y, v, s, n)
    if b.ndim <= 2:
        return _matmul_b(dy, y, v, s, n)
    # dot(a, b)[i.., j.., m] = sum_k a[i.., k] b[j.., k, m]
    na = a.ndim - 1
    nb = b.ndim - 2
    da = db = None
    if n[0]:
        # sum over b's leading axes and m
        axes_dy = list(range(na, na + nb)) + [dy.ndim - 1]
        bt = np.moveaxis(b, -2, -1)  # (..., m, k)
        da = np.tensordot(dy, bt, axes=(axes_dy, list(range(nb)) + [nb]))
    if n[1]:
        db = np.tensordot(a, dy, axes=(list(range(na)), list(range(na))))  # (k, j.., m)
        db = np.moveaxis(db, 0, -2)
    return [da, db]


_DOT = _op("dot", _dot_f, _dot_b)


def dot(x1, x2):
    return apply(_DOT, [x1, x2])


def _parse_einsum(subscripts, n_ops):
    s = subscripts.replace(" ", "")
    if "." in s:
        raise NotImplementedError("einsum: ellipsis ('...') subscripts are not supported yet")
    if "->" in s:
        lhs, out = s.split("->")
    else:
        lhs = s
        letters = lhs.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ins = lhs.split(",")
    if len(ins) != n_ops:
        raise ValueError(f"einsum: {subscripts!r} names {len(ins)} operands, got {n_ops}")
    for sub in ins:
        if len(set(sub)) != len(sub):
            raise NotImplementedError(f"einsum: repeated index within one operand ({sub!r}) is "
                                      "not supported")
    return ins, out


def _einsum_f(*ops_, subscripts):
    ins, out = _parse_einsum(subscripts, len(ops_))
    return np.einsum(f"{','.join(ins)}->{out}", *ops_, optimize=len(ops_) > 2), None


def _einsum_b(dy, y, v, s, n, subscripts):
    ins, out = _parse_einsum(subscripts, len(v))
    grads = []
    for i, sub in enumerate(ins):
        if not n[i]:
            grads.append(None)
            continue
        others = [ins[j] for j in range(len(ins)) if j != i]
        avail = set(out).union(*others) if others else set(out)
        keep = "".join(c for c in sub if c in avail)
        terms = [out] + others
        g = np.einsum(f"{','.join(terms)}->{keep}", dy, *[v[j] for j in range(len(v)) if j != i])
        if keep != sub:
            # indices summed away inside operand i alone: the gradient is broadcast along them
            shape = np.shape(v[i])
            g = np.expand_dims(g, tuple(k for k, c in enumerate(sub) if c not in avail))
            g = np.broadcast_to(g, shape)
        grads.append(np.ascontiguousarray(g))
    return grads


_EINSUM = _op("einsum", _einsum_f, _einsum_b)


def einsum(subscripts, *operands):
    if not isinstance(subscripts, str):
        raise TypeError("einsum: the first argument must be the subscripts string")
    return apply(_EINSUM, list(operands), {"subscripts": subscripts})


# ---- reductions ---------------------------------------------------------------------------------
def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (list, tuple)):
        return tuple(a % ndim for a in axis)
    return (axis % ndim,)


def _expand(dy, shape, axis, keepdims):
    if keepdims:
        return dy
    return np.expand_dims(dy, _norm_axes(axis, len(shape)))


def _sum_b(dy, y, v, s, n, axis=None, keepdims=False):
    x = v[0]
    return [np.broadcast_to(_expand(dy, np.shape(x), axis, keepdims), np.shape(x))]


def _mean_b(dy, y, v, s, n, axis=None, keepdims=False):
    x = v[0]
    cnt = int(np.prod([np.shape(x)[a] for a in _norm_axes(axis, np.ndim(x))]))
    g = _expand(dy, np.shape(x), axis, keepdims) / np.asarray(_builtins.max(cnt, 1),
                                                              dtype=dy.dtype)
    return [np.broadcast_to(g, np.shape(x))]


def _extreme_b(dy, y, v, s, n, axis=None, keepdims=False):
    x = v[0]
    ye = _expand(y, np.shape(x), axis, keepdims)
    mask = (x == ye)
    cnt = np.sum(mask, axis=_norm_axes(axis, np.ndim(x)), keepdims=True)
    return [mask * (_expand(dy, np.shape(x), axis, keepdims) / cnt).astype(dy.dtype)]


def _var_f(x, axis=None, keepdims=False):
    return np.var(x, axis=axis, keepdims=keepdims), None


def _var_b(dy, y, v, s, n, axis=None, keepdims=False):
    x = v[0]
    cnt = int(np.prod([np.shape(x)[a] for a in _norm_axes(axis, np.ndim(x))]))
    mu = np.mean(x, axis=axis, keepdims=True)
    return [_expand(dy, np.shape(x), axis, keepdims) * (2 * (x - mu) / np.asarray(
        cnt, dtype=x.dtype))]


def _std_b(dy, y, v, s, n, axis=None, keepdims=False):
    (g,) = _var_b(dy / (2 * y), y, v, s, n, axis=axis, keepdims=keepdims)
    return [g]


_SUM = _op("sum", _plain(np.sum), _sum_b)
_MEAN = _op("mean", _plain(np.mean), _mean_b)
_MAX = _op("max", _plain(np.max), _extreme_b)
_MIN = _op("min", _plain(np.min), _extreme_b)
_VAR = _op("var", _var_f, _var_b)
_STD = _op("std", _plain(np.std), _std_b)


def _red(op, x, axis, keepdims):
    return apply(op, [x], {"axis": _axis_arg(axis), "keepdims": bool(keepdims)})


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return _red(_SUM, x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    return _red(_MEAN, x, axis, keepdims)


def max(x, axis=None, keepdims=False, initial=None):  # noqa: A001
    if initial is not None:
        return maximum(_red(_MAX, x, axis, keepdims), initial)
    return _red(_MAX, x, axis, keepdims)


def min(x, axis=None, keepdims=False, initial=None):  # noqa: A001
    if initial is not None:
        return minimum(_red(_MIN, x, axis, keepdims), initial)
    return _red(_MIN, x, axis, keepdims)


amax, amin = max, min


def var(x, axis=None, keepdims=False):
    return _red(_VAR, x, axis, keepdims)


def std(x, axis=None, keepdims=False):
    return _red(_STD, x, axis, keepdims)


_ARGMAX = _op("argmax", _plain(lambda x, axis=None, keepdims=False: np.argmax(
    x, axis=axis, keepdims=keepdims).astype(np.int32)))
_ARGMIN = _op("argmin", _plain(lambda x, axis=None, keepdims=False: np.argmin(
    x, axis=axis, keepdims=keepdims).astype(np.int32)))


def argmax(x, axis=None, keepdims=False):
    return apply(_ARGMAX, [x], {"axis": axis, "keepdims": bool(keepdims)})


def argmin(x, axis=None, keepdims=False):
    return apply(_ARGMIN, [x], {"axis": axis, "keepdims": bool(keepdims)})


# ---- shapes -------------------------------------------------------------------------------------
def _reshape_b(dy, y, v, s, n, **k):
    return [dy.reshape(np.shape(v[0]))]


_RESHAPE = _op("reshape", _plain(lambda x, newshape: np.reshape(x, newshape)), _reshape_b)
_EXPAND = _op("expand_dims", _plain(lambda x, axis: np.expand_dims(x, axis)), _reshape_b)
_SQUEEZE = _op("squeeze", _plain(lambda x, axis=None: np.squeeze(x, axis)), _reshape_b)


def reshape(x, newshape):
    if isinstance(newshape, int):
        newshape = (newshape,)
    newshape = tuple(-1 if d is None or _is_dim(d) else int(d) for d in newshape)
    if isinstance(x, KerasTensor) and x.shape and x.shape[0] is None and newshape and \
            newshape[0] != -1 and -1 not in newshape:
        pass  # a fixed leading size on a symbolic batch: numpy checks it when the model runs
    return apply(_RESHAPE, [x], {"newshape": newshape})


def expand_dims(x, axis):
    return apply(_EXPAND, [x], {"axis": _axis_arg(axis)})


def squeeze(x, axis=None):
    return apply(_SQUEEZE, [x], {"axis": _axis_arg(axis)})


def _transpose_b(dy, y, v, s, n, axes=None):
    if axes is None:
        return [np.transpose(dy)]
    return [np.transpose(dy, np.argsort([a % dy.ndim for a in axes]))]


_TRANSPOSE = _op("transpose", _plain(lambda x, axes=None: np.transpose(x, axes)), _transpose_b)


def transpose(x, axes=None):
    return apply(_TRANSPOSE, [x], {"axes": None if axes is None else tuple(axes)})


def _concat_f(*xs, axis=0):
    return np.concatenate(xs, axis=axis), None


def _concat_b(dy, y, v, s, n, axis=0):
    sizes = np.cumsum([np.shape(x)[axis] for x in v])[:-1]
    return np.split(dy, sizes, axis=axis)


_CONCAT = _op("concatenate", _concat_f, _concat_b)


def concatenate(xs, axis=0):
    return apply(_CONCAT, list(xs), {"axis": axis})


def _stack_b(dy, y, v, s, n, axis=0):
    return [np.take(dy, i, axis=axis) for i in range(len(v))]


_STACK = _op("stack", lambda *xs, axis=0: (np.stack(xs, axis=axis), None), _stack_b)


def stack(x, axis=0):
    return apply(_STACK, list(x), {"axis": axis})


def _split_op(n):
    return _op("split", lambda x, ios, axis: (np.split(x, ios, axis=axis), None),
               lambda dy, y, v, s, needs, ios, axis: [np.concatenate(dy, axis=axis)], nout=n)


def split(x, indices_or_sections, axis=0):
    ios = indices_or_sections
    if isinstance(ios, (list, tuple)):
        ios = tuple(int(i) for i in ios)
        n = len(ios) + 1
    else:
        n = int(ios)
    out = apply(_split_op(n), [x], {"ios": ios, "axis": axis})
    return list(out)


def _take_f(x, indices, axis=None):
    return np.take(x, np.asarray(indices).astype(np.intp, copy=False), axis=axis), None


def _take_b(dy, y, v, s, n, axis=None):
    x, idx = v
    idx = np.asarray(idx).astype(np.intp, copy=False)
    g = np.zeros(np.shape(x), dy.dtype)
    if axis is None:
        np.add.at(g.reshape(-1), idx.reshape(-1) % _builtins.max(g.size, 1), dy.reshape(-1))
        return [g, None]
    ax = axis % g.ndim
    gm = np.moveaxis(g, ax, 0)
    dym = np.moveaxis(dy, list(range(ax, ax + idx.ndim)), list(range(idx.ndim)))
    np.add.at(gm, idx.reshape(-1) % gm.shape[0], dym.reshape((-1,) + gm.shape[1:]))
    return [g, None]


_TAKE = _op("take", _take_f, _take_b)


def take(x, indices, axis=None):
    return apply(_TAKE, [x, indices], {"axis": axis})


def _take_along_f(x, indices, axis=None):
    return np.take_along_axis(x, np.asarray(indices).astype(np.intp), axis=axis), None


def _take_along_b(dy, y, v, s, n, axis=None):
    x, idx = v
    g = np.zeros(np.shape(x), dy.dtype)
    if axis is None:
        np.add.at(g.reshape(-1), np.asarray(idx).reshape(-1), dy.reshape(-1))
        return [g, None]
    ix = np.asarray(idx).astype(np.intp)
    full = list(np.indices(ix.shape, sparse=True))
    full[axis % g.ndim] = ix
    np.add.at(g, tuple(full), dy)
    return [g, None]


_TAKE_ALONG = _op("take_along_axis", _take_along_f, _take_along_b)


def take_along_axis(x, indices, axis=None):
    return apply(_TAKE_ALONG, [x, indices], {"axis": axis})


def _getitem_f(x, key):
    return x[key], None


def _getitem_b(dy, y, v, s, n, key):
    g = np.zeros(np.shape(v[0]), dy.dtype)
    advanced = any(isinstance(k, (np.ndarray, list)) for k in (key if isinstance(key, tuple)
                                                               else (key,)))
    if advanced:
        np.add.at(g, key, dy)
    else:
        g[key] += dy
    return [g]


_GETITEM = _op("getitem", _getitem_f, _getitem_b)


def _freeze_key(key):
    if isinstance(key, list):
        return np.asarray(key)
    if isinstance(key, tuple):
        return tuple(np.asarray(k) if isinstance(k, list) else k for k in key)
    return key


def getitem(x, key):
    return apply(_GETITEM, [x], {"key": _freeze_key(key)})


def _where_b(dy, y, v, s, n):
    c = np.asarray(v[0]).astype(bool)
    return [None, dy * c if n[1] else None, dy * ~c if n[2] else None]


_WHERE = _op("where", _plain(np.where), _where_b)
_WHERE1 = _op("where", _plain(lambda c: np.stack(np.nonzero(c), axis=-1)))


def where(condition, x1=None, x2=None):
    if x1 is None and x2 is None:
        if isinstance(condition, KerasTensor):
            raise ValueError("where(condition) (indices of the true entries) has a data-"
                             "dependent shape and cannot be used on symbolic tensors")
        return np.nonzero(np.asarray(condition))
    if x1 is None or x2 is None:
        raise ValueError("where: give both x1 and x2, or neither")
    return apply(_WHERE, [condition, x1, x2])


def _clip_b(dy, y, v, s, n):
    x, lo, hi = v
    m = (x >= lo) & (x <= hi)
    return [dy * m, None, None]


_CLIP = _op("clip", _plain(lambda x, lo, hi: np.clip(x, lo, hi)), _clip_b)


def clip(x, x_min, x_max):
    return apply(_CLIP, [x, x_min, x_max])


def _one_hot_f(x, num_classes, axis=-1, dtype="float32"):
    x = np.asarray(x).astype(np.intp)
    out = (x[..., None] == np.arange(num_classes)).astype(dtype)
    if axis != -1:
        out = np.moveaxis(out, -1, axis)
    return out, None


_ONE_HOT = _op("one_hot", _one_hot_f)


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    if sparse:
        raise ValueError("one_hot: sparse=True is not supported")
    return apply(_ONE_HOT, [x], {"num_classes": int(num_classes), "axis": axis,
                                 "dtype": str(np.dtype(dtype or "float32"))})


def _cast_b(dy, y, v, s, n, dtype):
    x = v[0]
    if np.asarray(x).dtype.kind != "f":
        return [None]
    return [dy.astype(np.asarray(x).dtype)]


_CAST = _op("cast", _plain(lambda x, dtype: np.asarray(x).astype(dtype)), _cast_b)


def cast(x, dtype):
    return apply(_CAST, [x], {"dtype": str(np.dtype(_std_dtype(dtype)))})


def _std_dtype(dtype):
    if dtype is None:
        return "float32"
    if isinstance(dtype, str) and dtype == "float":
        return "float32"
    return dtype


_ZEROS_LIKE = _op("zeros_like", _plain(lambda x, dtype=None: np.zeros_like(x, dtype=dtype)))
_ONES_LIKE = _op("ones_like", _plain(lambda x, dtype=None: np.ones_like(x, dtype=dtype)))


def zeros_like(x, dtype=None):
    return apply(_ZEROS_LIKE, [x], {"dtype": None if dtype is None else str(np.dtype(dtype))})


def ones_like(x, dtype=None):
    return apply(_ONES_LIKE, [x], {"dtype": None if dtype is None else str(np.dtype(dtype))})


# ---- creation and conversion (values, never symbolic) -------------------------------------------
def _shape_arg(shape):
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)


def _is_dim(d):
    from .random_ops import Dim

    return isinstance(d, Dim)


def _dyn_fill(shape, value, dtype):
    """A fill whose shape holds a size known only when the graph runs (ops.shape(x)[0]), or
    None when the shape is concrete."""
    from . import random_ops

    if random_ops.has_dim(shape):
        return random_ops.fill(shape, value, str(np.dtype(_std_dtype(dtype))))
    return None


def zeros(shape, dtype=None):
    d = _dyn_fill(shape, 0, dtype)
    return d if d is not None else np.zeros(_shape_arg(shape), _std_dtype(dtype))


def ones(shape, dtype=None):
    d = _dyn_fill(shape, 1, dtype)
    return d if d is not None else np.ones(_shape_arg(shape), _std_dtype(dtype))


def full(shape, fill_value, dtype=None):
    d = _dyn_fill(shape, fill_value, dtype)
    return d if d is not None else np.full(_shape_arg(shape), fill_value, _std_dtype(dtype))


def arange(start, stop=None, step=1, dtype=None):
    if dtype is None:
        vals = [v for v in (start, stop, step) if v is not None]
        dtype = "float32" if any(isinstance(v, float) for v in vals) else "int32"
    return np.arange(start, stop, step, dtype=dtype) if stop is not None else np.arange(
        start, dtype=dtype)


def convert_to_tensor(x, dtype=None, sparse=None):
    if isinstance(x, KerasTensor):
        return x if dtype is None else cast(x, dtype)
    a = np.asarray(x)
    if dtype is not None:
        return a.astype(_std_dtype(dtype), copy=False)
    if a.dtype == np.float64:  # Keras: Python floats become float32 tensors
        return a.astype(np.float32)
    if a.dtype == np.int64:
        return a.astype(np.int32)
    return a


def convert_to_numpy(x):
    if isinstance(x, KerasTensor):
        raise ValueError(f"convert_to_numpy: {x!r} is symbolic and has no value yet")
    return np.asarray(x)


def shape(x):
    """The shape; of a symbolic tensor, an unknown size (the batch) is a `Dim` that equals None
    and that shape-taking ops (keras.random.*, zeros/ones/full, reshape) read when they run."""
    if isinstance(x, KerasTensor):
        from .random_ops import Dim

        return tuple(Dim(x, i) if d is None else d for i, d in enumerate(x.shape))
    return np.shape(x)


def ndim(x):
    return len(x.shape) if isinstance(x, KerasTensor) else np.ndim(x)


def size(x):
    return int(np.prod(np.shape(x))) if not isinstance(x, KerasTensor) else None


# ---- convolution and pooling (channels_last, 2-D, nncore's kernels) -----------------------------
def _conv_f(x, w, strides=(1, 1), padding="valid", dilation_rate=(1, 1)):
    x = np.asarray(x, _F32)
    return _kernels.conv2d(x, np.asarray(w, _F32), strides, padding, dilation_rate), None


def _conv_b(dy, y, v, s, n, strides=(1, 1), padding="valid", dilation_rate=(1, 1)):
    x, w = np.asarray(v[0], _F32), np.asarray(v[1], _F32)
    dx, dw = _kernels.conv2d_backward(dy, x, w, strides, padding, dilation_rate, need_dx=n[0])
    return [dx if n[0] else None, dw if n[1] else None]


_CONV = _op("conv", _conv_f, _conv_b)


def _pair(v):
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(a) for a in v)


def _check_2d(name, x, data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{name}: only data_format='channels_last' is supported")
    if len(shape(x)) != 4:
        raise ValueError(f"{name}: only 2-D inputs (batch, height, width, channels) are "
                         f"supported, got rank {len(shape(x))}")


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    _check_2d("conv", inputs, data_format)
    return apply(_CONV, [inputs, kernel], {"strides": _pair(strides),
                                           "padding": padding.lower(),
                                           "dilation_rate": _pair(dilation_rate)})


def _max_pool_f(x, pool_size, strides, padding):
    y, arg = _kernels.max_pool(np.asarray(x, _F32), pool_size, strides, padding)
    return y, arg


def _max_pool_b(dy, y, v, s, n, pool_size, strides, padding):
    return [_kernels.max_pool_backward(dy, s, np.shape(v[0]), pool_size, strides, padding)]


def _avg_pool_f(x, pool_size, strides, padding):
    return _kernels.avg_pool(np.asarray(x, _F32), pool_size, strides, padding), None


def _avg_pool_b(dy, y, v, s, n, pool_size, strides, padding):
    return [_kernels.avg_pool_backward(dy, np.shape(v[0]), pool_size, strides, padding)]


_MAX_POOL = _op("max_pool", _max_pool_f, _max_pool_b)
_AVG_POOL = _op("average_pool", _avg_pool_f, _avg_pool_b)


def _pool_args(pool_size, strides, padding):
    ps = _pair(pool_size)
    return {"pool_size": ps, "strides": ps if strides is None else _pair(strides),
            "padding": padding.lower()}


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    _check_2d("max_pool", inputs, data_format)
    return apply(_MAX_POOL, [inputs], _pool_args(pool_size, strides, padding))


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    _check_2d("average_pool", inputs, data_format)
    return apply(_AVG_POOL, [inputs], _pool_args(pool_size, strides, padding))


# ---- the closed table a model file's op nodes are looked up in ---------------------------------
def op_by_name(name, nout=1):
    """The Op named `name` (for rebuilding saved graphs: nothing outside this table loads)."""
    if name == "split":
        if isinstance(nout, bool) or not isinstance(nout, int) or not 1 <= nout <= 1 << 16:
            raise ValueError(f"split: bad output count {nout!r}")
        return _split_op(nout)
    from . import more_ops, random_ops

    if name in more_ops.MULTI_OUTPUT:
        if isinstance(nout, bool) or not isinstance(nout, int) or not 1 <= nout <= 64:
            raise ValueError(f"{name}: bad output count {nout!r}")
        return more_ops.MULTI_OUTPUT[name](nout)
    table = dict(_OP_TABLE, **more_ops.MORE_OPS, **random_ops.RANDOM_OPS)
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"unknown op {name!r} in the model config")
    return table[name]


_OP_TABLE = {op.name: op for op in [v for v in list(globals().values()) if isinstance(v, Op)]
             + list(_CMP.values())}
_OP_TABLE["where"] = _WHERE
