"""ONNX export of nncore.ops nodes: the op graph a Lambda's function traces into (and ops applied
to a Functional model's tensors directly), written op by op.

An op node (ops/_graph.py OpNode) holds the op's name, its operands (the node's tensors,
constants, or a layer weight) and its static arguments; the trace gives every value's dtype
(NumPy's promotion already applied), so each op is emitted on operands cast to the dtype the
op computes in: the result dtype for arithmetic, the operands' common dtype for comparisons.
``ONNX_OPS`` maps an op name to its emitter; an op without one raises ValueError naming the op
and the layer.
"""

from __future__ import annotations

import numpy as np

_BIG = np.iinfo(np.int64).max


def _tensor_dtype(g, v):
    return g.dtype.get(v, np.dtype(np.float32))


_CF_OPS = ("conv", "max_pool", "average_pool")  # read their input channels-first


def _operands(g, layer, xs):
    """[(value name or None, dtype or None, constant or None)] per operand of the op node."""
    from ..ops._graph import _PARAM, _TENSOR

    out = []
    for kind, p in layer.spec:
        if kind == _TENSOR:
            v = xs[p] if layer.op.name in _CF_OPS else g.nhwc(xs[p])
            out.append((v, _tensor_dtype(g, v), None))
        elif kind == _PARAM:
            w = np.asarray(p[0]._weights[p[1]])
            out.append((None, w.dtype, w))
        else:
            out.append((None, None if np.isscalar(p) or p is None else np.asarray(p).dtype, p))
    return out


def _ranks(layer, node):
    from ..ops._graph import _PARAM, _TENSOR

    out = []
    for kind, p in layer.spec:
        if kind == _TENSOR:
            out.append(len(node.flat_inputs[p].shape))
        elif kind == _PARAM:
            out.append(np.ndim(p[0]._weights[p[1]]))
        else:
            out.append(np.ndim(p))
    return out


def _value(g, operand, dtype):
    """The operand as an ONNX value of `dtype` (a Cast of a tensor, or a constant)."""
    v, dt, c = operand
    dtype = np.dtype(dtype)
    if v is None:
        return g.const(np.asarray(c).astype(dtype), "k")
    if dt == dtype:
        return v
    y = g.op("Cast", [v], "cast", to=_onnx_type(g, dtype))
    _set(g, y, dtype)
    return y


def _onnx_type(g, dtype):
    return g.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _set(g, y, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        g.dtype.pop(y, None)
    else:
        g.dtype[y] = dtype
    return y


def _common(ops_):
    """NumPy's result dtype of the operands (Python scalars weak, as NEP 50)."""
    return np.result_type(*[c if v is None and dt is None else np.empty(0, dt)
                            for v, dt, c in ops_])


class _Ctx:
    def __init__(self, g, layer, xs, node, where):
        self.g, self.layer, self.node, self.where = g, layer, node, where
        self.ops = _operands(g, layer, xs)
        self.ranks = _ranks(layer, node)
        self.s = layer.static
        outs = node.flat_outputs
        self.out_dtypes = [np.dtype(t.dtype) for t in outs]
        self.out = self.out_dtypes[0]
        self.in_shape = [tuple(t.shape) for t in node.flat_inputs]

    def bad(self, msg):
        raise ValueError(f"{self.where}: op {self.layer.op.name!r} {msg}")

    def vals(self, dtype=None):
        return [_value(self.g, o, self.out if dtype is None else dtype) for o in self.ops]

    def emit(self, op_type, ins, dtype=None, **attrs):
        y = self.g.op(op_type, ins, self.layer.name, **attrs)
        return _set(self.g, y, self.out if dtype is None else dtype)

    def rank(self, k=0):
        """Rank of operand k."""
        return self.ranks[k]

    def axes(self, axis, rank):
        if axis is None:
            return None
        ax = list(axis) if isinstance(axis, (tuple, list)) else [axis]
        return [int(a) % rank for a in ax]


def _elementwise(op_type):
    def f(c):
        return [c.emit(op_type, c.vals())]
    return f


def _compare(op_type, negate=False):
    def f(c):
        y = c.emit(op_type, c.vals(_common(c.ops)), dtype=np.bool_)
        return [c.emit("Not", [y], dtype=np.bool_)] if negate else [y]
    return f


def _logical(op_type):
    def f(c):
        return [c.emit(op_type, c.vals(np.bool_), dtype=np.bool_)]
    return f


def _unary(op_type, **attrs):
    def f(c):
        return [c.emit(op_type, c.vals()[:1], **attrs)]
    return f


def _square(c):
    x = c.vals()[0]
    return [c.emit("Mul", [x, x])]


def _log1p(c):
    x = c.vals()[0]
    one = c.g.const(np.array(1, c.out), "one")
    return [c.emit("Log", [c.emit("Add", [x, one])])]


def _identity(c):
    return [c.vals()[0]]


def _softmax(op_type):
    def f(c):
        ax = c.s.get("axis", -1)
        if not isinstance(ax, (int, np.integer)):
            c.bad(f"axis={ax!r}: only one axis has an ONNX export")
        return [c.emit(op_type, c.vals()[:1], axis=int(ax))]
    return f


def _matmul(c):
    return [c.emit("MatMul", c.vals())]


def _dot(c):
    if any(c.rank(k) > 2 for k in range(2)):
        c.bad("of arrays of rank > 2 (np.dot's semantics) has no ONNX export; use matmul")
    if any(c.rank(k) == 0 for k in range(2)):
        return [c.emit("Mul", c.vals())]
    return [c.emit("MatMul", c.vals())]


def _dense(c):
    x, w, b = c.vals()
    y = c.emit("Add", [c.emit("MatMul", [x, w]), b])
    return [c.emit("Relu", [y])] if c.s.get("relu") else [y]


def _einsum(c):
    return [c.emit("Einsum", c.vals(), equation=str(c.s["subscripts"]).replace(" ", ""))]


def _reduce(op_type, attr_axes):
    def f(c):
        r = c.rank()
        axes = c.axes(c.s.get("axis"), r)
        x = c.vals()[0]
        kd = int(bool(c.s.get("keepdims", False)))
        if axes is None:
            axes = list(range(r))
        if attr_axes:
            return [c.emit(op_type, [x], axes=axes, keepdims=kd)]
        return [c.emit(op_type, [x, c.g.i64(axes, "axes")], keepdims=kd)]
    return f


def _var(c, std=False):
    r = c.rank()
    axes = c.axes(c.s.get("axis"), r) or list(range(r))
    kd = int(bool(c.s.get("keepdims", False)))
    x = c.vals()[0]
    m = c.emit("ReduceMean", [x], axes=axes, keepdims=1)
    d = c.emit("Sub", [x, m])
    v = c.emit("ReduceMean", [c.emit("Mul", [d, d])], axes=axes, keepdims=kd)
    return [c.emit("Sqrt", [v]) if std else v]


def _arg(op_type):
    def f(c):
        ax = c.s.get("axis")
        if ax is None:
            c.bad("with axis=None (over the flattened batch) has no ONNX export; give an axis")
        x = c.ops[0][0] if c.ops[0][0] is not None else _value(c.g, c.ops[0], c.ops[0][1])
        y = c.emit(op_type, [x], dtype=np.int64, axis=int(ax),
                   keepdims=int(bool(c.s.get("keepdims", False))), select_last_index=0)
        return [c.emit("Cast", [y], to=_onnx_type(c.g, c.out))]
    return f


def _reshape(c):
    shape = [int(d) for d in c.s["newshape"]]
    if 0 in shape:
        c.bad("to a zero-size axis has no ONNX export")
    return [c.emit("Reshape", [c.vals()[0], c.g.i64(shape, "shape")])]


def _expand_dims(c):
    ax = c.s["axis"]
    ax = list(ax) if isinstance(ax, (tuple, list)) else [ax]
    return [c.emit("Unsqueeze", [c.vals()[0], c.g.i64([int(a) for a in ax], "axes")])]


def _squeeze(c):
    shape = c.in_shape[0]
    ax = c.s.get("axis")
    axes = [i for i, d in enumerate(shape) if d == 1] if ax is None else c.axes(ax, len(shape))
    if not axes:
        return [c.vals()[0]]
    return [c.emit("Squeeze", [c.vals()[0], c.g.i64(axes, "axes")])]


def _transpose(c):
    r = c.rank()
    axes = c.s.get("axes")
    perm = list(range(r))[::-1] if axes is None else [int(a) % r for a in axes]
    return [c.emit("Transpose", c.vals()[:1], perm=perm)]


def _concat(c):
    r = len(c.in_shape[0]) if c.in_shape else np.ndim(c.ops[0][2])
    return [c.emit("Concat", c.vals(), axis=int(c.s.get("axis", 0)) % r)]


def _stack(c):
    r = len(c.node.flat_outputs[0].shape)
    ax = int(c.s.get("axis", 0)) % r
    us = [c.emit("Unsqueeze", [v, c.g.i64([ax], "axes")]) for v in c.vals()]
    return [c.emit("Concat", us, axis=ax)]


def _split(c):
    shape = c.in_shape[0]
    ax = int(c.s["axis"]) % len(shape)
    n = shape[ax]
    if n is None:
        c.bad("along an axis of unknown size (the batch) has no ONNX export")
    ios = c.s["ios"]
    if isinstance(ios, (int, np.integer)):
        sizes = [n // int(ios)] * int(ios)
    else:
        cuts = [0] + [min(max(int(i) if i >= 0 else n + int(i), 0), n) for i in ios] + [n]
        sizes = [max(b - a, 0) for a, b in zip(cuts[:-1], cuts[1:])]
    outs = c.g.op("Split", [c.vals()[0], c.g.i64(sizes, "split")], c.layer.name,
                  n_out=len(sizes), axis=ax)
    outs = outs if isinstance(outs, list) else [outs]
    return [_set(c.g, y, c.out) for y in outs]


def _take(c):
    ax = c.s.get("axis")
    if ax is None:
        c.bad("with axis=None (a flattened take) has no ONNX export; give an axis")
    x = _value(c.g, c.ops[0], c.out)
    idx = _value(c.g, c.ops[1], np.int64)
    return [c.emit("Gather", [x, idx], axis=int(ax))]


def _take_along(c):
    ax = c.s.get("axis")
    if ax is None:
        c.bad("with axis=None has no ONNX export; give an axis")
    x = _value(c.g, c.ops[0], c.out)
    idx = _value(c.g, c.ops[1], np.int64)
    r = c.rank()
    if c.rank(1) != r:
        c.bad("needs indices of the array's rank")
    ax = int(ax) % r
    g = c.g
    keep = np.ones(r, np.int64)
    keep[ax] = 0
    k, one_k = g.const(keep, "keep"), g.const(1 - keep, "axis")

    def other_axes(v):  # Shape(v) with the gather axis set to 1: Expand broadcasts the rest
        sh = c.emit("Shape", [v], dtype=np.int64)
        return c.emit("Add", [c.emit("Mul", [sh, k], dtype=np.int64), one_k], dtype=np.int64)

    idx2 = c.emit("Expand", [idx, other_axes(x)], dtype=np.int64)  # NumPy broadcasts both
    x2 = c.emit("Expand", [x, other_axes(idx2)])
    return [c.emit("GatherElements", [x2, idx2], axis=ax)]


def _getitem(c):
    """Basic indexing (ints, slices, None, Ellipsis) as Slice, Squeeze and Unsqueeze; an array
    index has no ONNX export here."""
    key = c.s["key"]
    key = key if isinstance(key, tuple) else (key,)
    shape = c.in_shape[0]
    if any(isinstance(k, (np.ndarray, list, bool, np.bool_)) for k in key):
        c.bad("with an array index has no ONNX export (basic indexing only)")
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    if sum(1 for k in key if k is Ellipsis) > 1 or n_real > len(shape):
        c.bad(f"key {key!r} does not index a rank-{len(shape)} value")
    full = []
    for k in key:
        if k is Ellipsis:
            full += [slice(None)] * (len(shape) - n_real)
        else:
            full.append(k)
    full += [slice(None)] * (len(shape) - sum(1 for k in full if k is not None))
    starts, ends, axes, steps, squeeze, new = [], [], [], [], [], []
    ax = out_ax = 0
    for k in full:
        if k is None:
            new.append(out_ax)
            out_ax += 1
            continue
        if isinstance(k, (int, np.integer)):
            i = int(k)
            starts.append(i)
            ends.append(i + 1 if i != -1 else _BIG)
            axes.append(ax)
            steps.append(1)
            squeeze.append(ax)
        else:
            st = 1 if k.step is None else int(k.step)
            if st == 0:
                c.bad("with a zero step")
            lo = (0 if st > 0 else _BIG) if k.start is None else int(k.start)
            hi = (_BIG if st > 0 else -_BIG) if k.stop is None else int(k.stop)
            if (lo, hi, st) != (0, _BIG, 1):
                starts.append(lo)
                ends.append(hi)
                axes.append(ax)
                steps.append(st)
            out_ax += 1
        ax += 1
    x = c.vals()[0]
    g = c.g
    if axes:
        x = c.emit("Slice", [x, g.i64(starts, "starts"), g.i64(ends, "ends"), g.i64(axes, "axes"),
                             g.i64(steps, "steps")])
    if squeeze:
        x = c.emit("Squeeze", [x, g.i64(squeeze, "axes")])
    if new:
        x = c.emit("Unsqueeze", [x, g.i64(new, "axes")])
    return [x]


def _where(c):
    cond = _value(c.g, c.ops[0], np.bool_)
    return [c.emit("Where", [cond, _value(c.g, c.ops[1], c.out), _value(c.g, c.ops[2], c.out)])]


def _clip(c):
    x, lo, hi = c.vals()
    return [c.emit("Min", [c.emit("Max", [x, lo]), hi])]  # np.clip = minimum(maximum(x, lo), hi)


def _one_hot(c):
    if c.s.get("axis", -1) not in (-1, len(c.node.flat_outputs[0].shape) - 1):
        c.bad("with an axis other than the last has no ONNX export")
    n = int(c.s["num_classes"])
    x = _value(c.g, c.ops[0], np.int64)
    eq = c.emit("Equal", [c.emit("Unsqueeze", [x, c.g.i64([-1], "axes")], dtype=np.int64),
                          c.g.i64(list(range(n)), "classes")], dtype=np.bool_)
    return [c.emit("Cast", [eq], to=_onnx_type(c.g, c.out))]


def _cast(c):
    v, dt, k = c.ops[0]
    return [_value(c.g, c.ops[0], c.out) if v is not None else c.g.const(
        np.asarray(k).astype(c.out), "k")]


def _fill_like(value):
    def f(c):
        x = c.ops[0][0] if c.ops[0][0] is not None else _value(c.g, c.ops[0], c.ops[0][1])
        t = c.g.onnx.numpy_helper.from_array(np.array([value], c.out))
        return [c.emit("ConstantOfShape", [c.emit("Shape", [x], dtype=np.int64)], value=t)]
    return f


def _conv(c):
    """keras.ops.conv (2-D, channels_last, kernel (KH, KW, Cin, F)) as ONNX Conv on the NCHW
    view; 'same' is TF's split of the padding (the odd pixel after), as nncore's kernel."""
    from .onnx_export import _same_pads

    g = c.g
    x = g.nchw(_value(g, c.ops[0], np.float32))
    v, dt, k = c.ops[1]
    if v is None:
        k = np.asarray(k, np.float32)
        w = g.const(np.ascontiguousarray(np.transpose(k, (3, 2, 0, 1))), "kernel")
        ks = list(k.shape[:2])
    else:
        shp = c.in_shape[[i for i, o in enumerate(c.ops) if o[0] is not None].index(1)]
        if any(d is None for d in shp):
            c.bad("with a kernel of unknown shape has no ONNX export")
        w = g.op("Transpose", [_value(g, c.ops[1], np.float32)], "kernel", perm=[3, 2, 0, 1])
        ks = list(shp[:2])
    st, dl = [int(a) for a in c.s["strides"]], [int(a) for a in c.s["dilation_rate"]]
    pads = _same_pads(c.in_shape[0][1:3], ks, st, dl) if c.s["padding"] == "same" else [0] * 4
    y = c.emit("Conv", [x, w], kernel_shape=ks, strides=st, dilations=dl, pads=pads)
    g.layout[y] = "NCHW"
    return [y]


def _pool(op_type):
    def f(c):
        from .onnx_export import _same_pads

        g = c.g
        x = g.nchw(_value(g, c.ops[0], np.float32))
        ps, st = [int(a) for a in c.s["pool_size"]], [int(a) for a in c.s["strides"]]
        pads = _same_pads(c.in_shape[0][1:3], ps, st, [1, 1]) if c.s["padding"] == "same" \
            else [0] * 4
        extra = {"count_include_pad": 0} if op_type == "AveragePool" else {}
        y = c.emit(op_type, [x], kernel_shape=ps, strides=st, pads=pads, **extra)
        g.layout[y] = "NCHW"
        return [y]
    return f


ONNX_OPS: dict = {
    "conv": _conv, "max_pool": _pool("MaxPool"), "average_pool": _pool("AveragePool"),
    "add": _elementwise("Add"), "subtract": _elementwise("Sub"),
    "multiply": _elementwise("Mul"), "divide": _elementwise("Div"),
    "power": _elementwise("Pow"), "maximum": _elementwise("Max"),
    "minimum": _elementwise("Min"),
    "equal": _compare("Equal"), "not_equal": _compare("Equal", negate=True),
    "less": _compare("Less"), "less_equal": _compare("LessOrEqual"),
    "greater": _compare("Greater"), "greater_equal": _compare("GreaterOrEqual"),
    "logical_and": _logical("And"), "logical_or": _logical("Or"),
    "negative": _unary("Neg"), "square": _square, "sqrt": _unary("Sqrt"),
    "abs": _unary("Abs"), "exp": _unary("Exp"), "log": _unary("Log"), "log1p": _log1p,
    "tanh": _unary("Tanh"), "sigmoid": _unary("Sigmoid"), "relu": _unary("Relu"),
    "stop_gradient": _identity,
    "softmax": _softmax("Softmax"), "log_softmax": _softmax("LogSoftmax"),
    "matmul": _matmul, "dot": _dot, "einsum": _einsum,
    "dense_bias": _dense, "dense_bias_relu": _dense,
    "sum": _reduce("ReduceSum", False), "mean": _reduce("ReduceMean", True),
    "max": _reduce("ReduceMax", True), "min": _reduce("ReduceMin", True),
    "var": _var, "std": lambda c: _var(c, std=True),
    "argmax": _arg("ArgMax"), "argmin": _arg("ArgMin"),
    "reshape": _reshape, "expand_dims": _expand_dims, "squeeze": _squeeze,
    "transpose": _transpose, "concatenate": _concat, "stack": _stack, "split": _split,
    "take": _take, "take_along_axis": _take_along, "getitem": _getitem,
    "where": _where, "clip": _clip, "one_hot": _one_hot, "cast": _cast,
    "zeros_like": _fill_like(0), "ones_like": _fill_like(1),
}


def export_op_node(g, layer, xs, node, where):
    """The ONNX values of one op node's outputs (where: the layer named in errors)."""
    fn = ONNX_OPS.get(layer.op.name)
    if fn is None:
        raise ValueError(f"{where}: op {layer.op.name!r} has no ONNX export in nncore "
                         f"(exported ops: {', '.join(sorted(ONNX_OPS))})")
    return fn(_Ctx(g, layer, xs, node, where))


def export_lambda(g, layer, xs, node, single_in, emit):
    """A Lambda as the op graph its function traces into for these inputs (the graph nncore
    runs at inference: traced for the ONNX values' own dtypes, as nncore traces the arrays it
    is given), emitted op by op with `emit` (onnx_export._emit)."""
    from ..ops._graph import layer_graph

    where = f"layer {layer.name!r} (Lambda)"
    if layer._mask_fn is not None:
        raise ValueError(f"{where}: a mask function has no ONNX export in nncore")
    struct = [((None,) + tuple(t.shape[1:]), str(_tensor_dtype(g, x)))
              for t, x in zip(node.flat_inputs, xs)]
    graph = layer_graph(layer, struct[0] if single_in else struct, False)
    prev = getattr(g, "scope", None)
    g.scope = where
    try:
        outs = emit(g, graph, xs)
    finally:
        g.scope = prev
    return outs[:graph.n_user]
