"""The machinery under nncore.ops (Keras's ops): op nodes in the model graph, and tracing of user code.

An op applied to numpy values computes at once. An op applied to a symbolic tensor (KerasTensor)
records an ``OpNode`` -- a small Layer holding the op, its static arguments and its constant
operands -- in the same graph the model core runs, so ``Functional._run`` / ``_backprop``
execute and differentiate fine-grained ops exactly as they do built-in layers.

Tracing: a user Layer with a ``call`` (and no hand-written forward) is called once per
(input shapes, training) on symbolic tensors; the graph recorded is kept and run from then on.
While a trace runs, the layer's weight arrays are known by identity: an op operand that *is* a
weight becomes a parameter reference (owner layer, weight index) instead of a constant, so the
op node reads the live weight on every forward and adds its gradient into the owner's slot.
"""

from __future__ import annotations

import inspect
import threading

import numpy as np

from ..layers.base import BUILD_LOCK, Layer
from ..layers.node import KerasTensor, Node, flatten, pack_like
from ..saving.registry import register

_tls = threading.local()


# ---- trace context ------------------------------------------------------------------------------
def _params():
    """{id(weight array): (owner layer, index)} of the innermost trace, or None."""
    stack = getattr(_tls, "trace", None)
    return stack[-1]["params"] if stack else None


def _trace_losses():
    stack = getattr(_tls, "trace", None)
    return stack[-1]["losses"] if stack else None


class _LossCollector:
    """Activity losses (add_loss) of the layers run inside a training/test step."""

    def __enter__(self):
        prev = getattr(_tls, "collect", None)
        self._prev = prev
        self.values = []
        _tls.collect = self.values
        return self

    def __exit__(self, *exc):
        _tls.collect = self._prev
        return False

    @property
    def total(self) -> float:
        return float(sum(float(np.sum(v, dtype=np.float64)) for v in self.values))


def collect_losses():
    return _LossCollector()


def _collector():
    return getattr(_tls, "collect", None)


def add_loss(layer, value):
    """Layer.add_loss: inside a trace, a symbolic value becomes an extra output of the traced
    graph; its sum is added to the training loss and differentiated."""
    losses = _trace_losses()
    if isinstance(value, KerasTensor):
        if losses is None:
            raise ValueError(f"layer {layer.name!r}: add_loss got a symbolic tensor outside the "
                             "layer's call")
        losses.append(value)
        return
    if losses is not None:
        losses.append(("const", float(np.sum(np.asarray(value, dtype=np.float64)))))
        return
    coll = _collector()
    if coll is not None:
        coll.append(np.asarray(value, dtype=np.float64))


# ---- op nodes -----------------------------------------------------------------------------------
class Op:
    """An op: fwd(*values, **static) -> (output, saved); bwd(dy, y, values, saved, needs,
    **static) -> one gradient (or None) per operand, in the shape of the broadcast result (the
    caller sums them back to each operand's shape)."""

    __slots__ = ("name", "fwd", "bwd", "nout")

    def __init__(self, name, fwd, bwd=None, nout=1):
        self.name, self.fwd, self.bwd, self.nout = name, fwd, bwd, nout


def unbroadcast(g, shape):
    """Sum g (shape of a broadcast result) back to `shape`."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    if lead > 0:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


_CONST, _TENSOR, _PARAM = 0, 1, 2


@register
class OpNode(Layer):
    """One op call in a graph. spec: per operand (kind, payload): (_TENSOR, k) the node's k-th
    input tensor, (_CONST, value), (_PARAM, (owner layer, weight index))."""

    _is_op = True

    def __init__(self, op, spec, static, name=None):
        super().__init__(name=name or op.name)
        self.op, self.spec, self.static = op, spec, static
        self.built = True
        self._nt = sum(1 for k, _ in spec if k == _TENSOR)
        self._has_param = any(k == _PARAM for k, _ in spec)

    @property
    def trainable_weights(self) -> list:
        if not self._has_param:
            return []
        out = []
        for kind, p in self.spec:
            if kind == _PARAM:
                owner, i = p
                if owner.trainable and owner._weight_trainable[i]:
                    out.append(owner._weights[i])
        return out

    def _values(self, inputs):
        vals = []
        for kind, p in self.spec:
            if kind == _TENSOR:
                vals.append(inputs[p])
            elif kind == _CONST:
                vals.append(p)
            else:
                vals.append(p[0]._weights[p[1]])
        return vals

    def forward(self, inputs, training=False, need_ctx=False):
        vals = self._values(inputs)
        y, saved = self.op.fwd(*vals, **self.static)
        return y, ((vals, y, saved) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        vals, y, saved = ctx
        bwd = self.op.bwd
        needs = [need_input_grad if kind == _TENSOR else (
            kind == _PARAM and p[0].trainable and p[0]._weight_trainable[p[1]])
            for kind, p in self.spec]
        dx = [None] * self._nt
        if bwd is None or not any(needs):
            return dx if need_input_grad else None
        if self.op.nout != 1:
            dy = [np.zeros_like(v) if d is None else d for d, v in zip(dy, y)]
        grads = bwd(dy, y, vals, saved, needs, **self.static)
        for (kind, p), g, v, need in zip(self.spec, grads, vals, needs):
            if g is None or not need:
                continue
            vshape = np.shape(v)
            if g.shape != vshape:
                g = unbroadcast(g, vshape)
            if kind == _TENSOR:
                dx[p] = g.astype(v.dtype, copy=False) if v.dtype.kind == "f" else None
            else:
                owner, i = p
                if g is dy or g.base is not None or g.dtype != np.float32:
                    g = np.array(g, dtype=np.float32)
                owner._add_grad(i, g)
        return dx if need_input_grad else None

    # ---- saving: ops applied to a model's symbolic tensors are part of its config ----------
    def get_config(self):
        spec = []
        for kind, p in self.spec:
            if kind == _PARAM:
                raise ValueError(f"op {self.op.name!r} reads a layer's weight outside that "
                                 "layer's call and cannot be saved")
            spec.append(["t", p] if kind == _TENSOR else ["c", _encode(p)])
        return {"name": self.name, "op": self.op.name, "spec": spec,
                "static": {k: _encode(v) for k, v in self.static.items()},
                "nout": self.op.nout}

    @classmethod
    def from_config(cls, config):
        from . import numpy_ops

        if not isinstance(config, dict) or not {"op", "spec", "static"} <= set(config):
            raise ValueError("an op node config needs 'op', 'spec' and 'static'")
        op = numpy_ops.op_by_name(config["op"], config.get("nout", 1))
        spec = []
        for item in config["spec"]:
            if not (isinstance(item, list) and len(item) == 2 and item[0] in ("t", "c")):
                raise ValueError(f"op node {config.get('name')!r}: bad operand {item!r}")
            if item[0] == "t":
                if not isinstance(item[1], int) or isinstance(item[1], bool) or item[1] < 0:
                    raise ValueError(f"op node {config.get('name')!r}: bad tensor index")
                spec.append((_TENSOR, item[1]))
            else:
                spec.append((_CONST, _decode(item[1])))
        if not isinstance(config["static"], dict):
            raise ValueError("op node static arguments must be a dict")
        static = {str(k): _decode(v, tuples=True) for k, v in config["static"].items()}
        if op.name == "one_hot" and not 0 < int(static.get("num_classes", 0)) <= 1 << 20:
            raise ValueError("one_hot: num_classes out of range in the model config")
        return cls(op, spec, static, name=config.get("name"))

    def _call_symbolic(self, inputs, **kwargs):
        tensors = inputs if isinstance(inputs, list) else [inputs]
        if len(tensors) != self._nt:
            raise ValueError(f"op node {self.name!r} takes {self._nt} tensors, got {len(tensors)}")
        try:
            info = _infer(self.op, self.spec, self.static, tensors)
        except (TypeError, ValueError, IndexError, np.exceptions.AxisError) as e:
            raise ValueError(f"op node {self.name!r} ({self.op.name}): {e}") from None
        if self.op.nout == 1:
            outputs = KerasTensor(info[0][0], info[0][1], name=self.name)
        else:
            outputs = [KerasTensor(sh, dt, name=f"{self.name}_{i}")
                       for i, (sh, dt) in enumerate(info)]
        node = Node(self, list(tensors), outputs)
        self._inbound_nodes.append(node)
        return outputs

    def __repr__(self):
        return f"<OpNode {self.op.name}>"


def _probe_shape(shape, fill):
    return tuple(fill if d is None else d for d in shape)


def _probe_value(t, fill):
    shape = _probe_shape(t.shape, fill)
    dt = np.dtype(t.dtype)
    if dt.kind == "f":
        return np.full(shape, 0.5, dt)
    return np.zeros(shape, dt)


def _probe_run(op, spec, static, tensors, fill):
    vals = []
    for kind, p in spec:
        if kind == _TENSOR:
            vals.append(_probe_value(tensors[p], fill))
        elif kind == _CONST:
            vals.append(p)
        else:
            vals.append(p[0]._weights[p[1]])
    with np.errstate(all="ignore"):
        y, _ = op.fwd(*vals, **static)
    return y


def _infer(op, spec, static, tensors):
    """Output shape(s) and dtype(s) by running the op on small probe values; an axis whose size
    follows the unknown (None) input sizes stays None."""
    has_none = any(d is None for t in tensors for d in t.shape)
    outs = []
    probing = getattr(_tls, "probing", False)
    _tls.probing = True  # random ops draw from no generator while shapes are inferred
    try:
        for fill in ((2, 3) if has_none else (1,)):
            outs.append(_probe_run(op, spec, static, tensors, fill))
    finally:
        _tls.probing = probing
    res = []
    for k in range(op.nout if op.nout != 1 else 1):
        ys = [o if op.nout == 1 else o[k] for o in outs]
        shape = list(np.shape(ys[0]))
        if len(ys) == 2:
            if np.ndim(ys[0]) != np.ndim(ys[1]):
                raise ValueError(f"{op.name}: the output rank depends on the unknown batch size")
            shape = [a if a == b else None for a, b in zip(np.shape(ys[0]), np.shape(ys[1]))]
        res.append((tuple(shape), str(np.asarray(ys[0]).dtype)))
    return res


def apply(op, operands, static=None):
    """Run op on operands now (no symbolic operand), or record an OpNode and return its
    symbolic output(s)."""
    static = static or {}
    if not any(isinstance(x, KerasTensor) for x in operands):
        return op.fwd(*[_eager(x) for x in operands], **static)[0]
    params = _params()
    spec, tensors = [], []
    for x in operands:
        if isinstance(x, KerasTensor):
            spec.append((_TENSOR, len(tensors)))
            tensors.append(x)
        elif params is not None and isinstance(x, np.ndarray) and id(x) in params:
            spec.append((_PARAM, params[id(x)]))
        else:
            spec.append((_CONST, _const(x)))
    # Outside a trace the node is part of a user graph: a unique name, as Keras gives its ops.
    if params is None:
        from ..layers.base import _unique_name

        name = _unique_name(op.name)
    else:  # unique within the trace, without touching the global name counters
        counts = _tls.trace[-1]["names"]
        k = counts.get(op.name, 0)
        counts[op.name] = k + 1
        name = op.name if k == 0 else f"{op.name}_{k}"
    node_layer = OpNode(op, spec, static, name=name)
    info = _infer(op, spec, static, tensors)
    if op.nout == 1:
        shape, dtype = info[0]
        outputs = KerasTensor(shape, dtype, name=op.name)
    else:
        outputs = [KerasTensor(s, d, name=f"{op.name}_{i}") for i, (s, d) in enumerate(info)]
    node = Node(node_layer, list(tensors), outputs)
    node_layer._inbound_nodes.append(node)
    return outputs


_MAX_CONST = 1 << 16  # elements of an array constant a config may hold


def _encode(v):
    """A JSON-able form of an op's constant or static argument."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    if isinstance(v, slice):
        return {"slice": [_encode(v.start), _encode(v.stop), _encode(v.step)]}
    if v is Ellipsis:
        return {"ellipsis": True}
    if isinstance(v, np.ndarray):
        if v.size > _MAX_CONST:
            raise ValueError(f"an op's constant of shape {v.shape} is too large to save in a "
                             "config; make it a layer weight")
        return {"array": v.tolist(), "dtype": str(v.dtype), "shape": list(v.shape)}
    from .random_ops import SeedGenerator

    if isinstance(v, SeedGenerator):  # a random op's generator: its seed and draws so far
        return {"seed_generator": [int(v.state[0]), int(v.state[1])]}
    if isinstance(v, (tuple, list)):
        return {"tuple": [_encode(x) for x in v]} if isinstance(v, tuple) else [
            _encode(x) for x in v]
    raise ValueError(f"an op argument of type {type(v).__name__} cannot be saved")


def _decode(v, tuples=False):
    if isinstance(v, dict):
        if "slice" in v and isinstance(v["slice"], list) and len(v["slice"]) == 3:
            return slice(*[_decode(x) for x in v["slice"]])
        if v.get("ellipsis") is True:
            return Ellipsis
        if "array" in v:
            dt = np.dtype(str(v.get("dtype")))
            if dt.kind not in "biuf":
                raise ValueError(f"op constant of dtype {dt} is not allowed")
            a = np.asarray(v["array"], dtype=dt)
            if a.size > _MAX_CONST or list(a.shape) != list(v.get("shape", a.shape)):
                raise ValueError("op constant does not match its declared shape")
            return a
        if "seed_generator" in v:
            from .random_ops import SeedGenerator

            st = v["seed_generator"]
            if not (isinstance(st, list) and len(st) == 2 and all(
                    isinstance(a, int) and not isinstance(a, bool) and 0 <= a < 2 ** 62
                    for a in st)):
                raise ValueError(f"bad seed generator state {st!r}")
            gen = SeedGenerator(st[0])
            gen.state[1] = st[1]
            return gen
        if "tuple" in v and isinstance(v["tuple"], list):
            return tuple(_decode(x, tuples) for x in v["tuple"])
        raise ValueError(f"bad op argument {v!r}")
    if isinstance(v, list):
        out = [_decode(x, tuples) for x in v]
        return tuple(out) if tuples else out
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise ValueError(f"bad op argument {v!r}")


def _eager(x):
    if isinstance(x, np.ndarray) or np.isscalar(x) or x is None:
        return x
    if hasattr(x, "__array__") and not isinstance(x, (list, tuple)):
        return np.asarray(x)
    return x


def _const(x):
    if isinstance(x, (bool, int, float)) or x is None:
        return x  # weakly typed scalar: float32 tensors stay float32 (NEP 50)
    if isinstance(x, (list, tuple)):
        return np.asarray(x) if not any(isinstance(v, KerasTensor) for v in x) else x
    a = np.asarray(x)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    return a


# ---- the graph a trace records ------------------------------------------------------------------
class Graph:
    """A recorded graph (the same steps Functional runs) with its output structure and the
    activity-loss outputs that follow the user outputs."""

    def __init__(self, inputs, outputs, n_user, out_struct, in_struct, const_losses):
        from ..models.functional import Functional

        self._fn = Functional
        self.name = "traced call"
        _rename_clashing_ops(inputs, outputs)
        Functional._init_graph(self, inputs, outputs)
        self.n_user = n_user
        self.out_struct = out_struct
        self.in_struct = in_struct
        self.const_losses = const_losses
        self.out_shapes = [t.shape for t in flatten(out_struct)]

    def _struct_shapes(self, struct):
        return self._fn._struct_shapes(struct)

    def run(self, xs, training, need_ctx):
        return self._fn._run(self, xs, training=training, need_ctx=need_ctx)

    def plan(self, input_grads):
        return self._fn._grad_plan(self, input_grads=input_grads)

    def backprop(self, ctxs, douts, plan):
        return self._fn._backprop(self, ctxs, douts, plan)


def _rename_clashing_ops(inputs, outputs) -> None:
    """A trace names its op nodes by trace-local counters ('add', 'add_1'), while layers made in
    the same call -- the merge layer a same-shape `a + b` makes, say -- take global names: an op
    node whose name a layer of the trace already has gets the next free one."""
    from ..models.functional import _struct_of, map_graph

    _, layers = map_graph(flatten(_struct_of(inputs, "inputs")),
                          flatten(_struct_of(outputs, "outputs")))
    taken = {lay.name for lay in layers}
    others = {lay.name for lay in layers if not isinstance(lay, OpNode)}
    for lay in layers:
        if isinstance(lay, OpNode) and lay.name in others:
            k = 1
            while f"{lay.name}_{k}" in taken:
                k += 1
            lay.name = f"{lay.name}_{k}"
            taken.add(lay.name)


def call_signature(fn):
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def _all_params(layer, out, seen):
    if id(layer) in seen:
        return
    seen.add(id(layer))
    for i, w in enumerate(layer._weights):
        out.setdefault(id(w), (layer, i))
    for sub in layer._sublayers():
        _all_params(sub, out, seen)


def _traced(layer, fn, sym, training, kwargs=None):
    """fn(sym, training=...) inside a trace frame: (output structure, frame)."""
    params: dict = {}
    _all_params(layer, params, set())
    frame = {"params": params, "losses": [], "names": {}, "inputs": flatten(sym)}
    stack = getattr(_tls, "trace", None)
    if stack is None:
        stack = _tls.trace = []
    with BUILD_LOCK:
        stack.append(frame)
        try:
            kw = dict(kwargs or {})
            if "training" in call_signature(fn):
                kw["training"] = training
            out = fn(sym, **kw)
        finally:
            stack.pop()
    for t in flatten(out):
        if not isinstance(t, KerasTensor):
            raise TypeError(f"layer {layer.name!r}: call must return tensors computed from its "
                            f"inputs (with keras.ops or layers), got {type(t).__name__}")
    return out, frame


def trace_model(model, shapes, multi):
    """A subclassed model's call on symbolic inputs of these shapes: (inputs, outputs)."""
    from ..layers.core import Input

    sym = [Input(shape=tuple(s[1:]), name=f"{model.name}_input" + (f"_{i}" if multi else ""))
           for i, s in enumerate(shapes)]
    arg = sym if multi else sym[0]
    out, frame = _traced(model, model.call, arg, None)
    if "training" in call_signature(model.call):
        # One graph serves training and inference (layers such as Dropout read the flag when
        # they run). A call whose Python code branches on `training` would need two graphs:
        # refuse it rather than train the wrong one.
        sym2 = [Input(shape=tuple(s[1:]), name=f"{model.name}_input_t{i}")
                for i, s in enumerate(shapes)]
        out_t, _ = _traced(model, model.call, sym2 if multi else sym2[0], True)
        if _layout_of(sym, out) != _layout_of(sym2, out_t):
            raise NotImplementedError(
                f"model {model.name!r}: call builds a different graph for training=True than "
                "for training=None; pass `training` on to layers (e.g. Dropout) instead of "
                "branching on it in Python")
    if frame["losses"]:
        raise NotImplementedError(f"model {model.name!r}: add_loss in a subclassed model's call "
                                  "is not supported yet; call it in a layer's call instead")
    if isinstance(out, tuple):
        out = list(out)
    return arg, out


def _dense_fwd(x, w, b, relu):
    from . import _kernels

    x2 = x.reshape(-1, x.shape[-1])
    z = _kernels.gemm_bias(x2, w, b, relu)
    return (z.reshape(x.shape[:-1] + (w.shape[1],)) if x.ndim != 2 else z), None


def _dense_bwd(dy, y, v, s, needs, relu):
    from . import _kernels

    x, w, b = v
    n = w.shape[1]
    dz = dy.reshape(-1, n)
    if relu:
        dz = dz * (y.reshape(-1, n) > 0)
    dz = np.ascontiguousarray(dz, dtype=np.float32)
    x2 = x.reshape(-1, x.shape[-1])
    dx = _kernels.gemm(dz, w, transpose_b=True).reshape(x.shape) if needs[0] else None
    dw = _kernels.gemm(x2, dz, transpose_a=True) if needs[1] else None
    db = dz.sum(axis=0) if needs[2] else None
    return [dx, dw, db]


FUSE = True  # rewrite matmul + bias (+ relu) in traced calls into one GEMM node
_DENSE_OPS = {r: Op("dense_bias_relu" if r else "dense_bias", _dense_fwd, _dense_bwd)
              for r in (False, True)}


def _fuse_dense(inputs, outputs):
    """Graph rewrite of a trace: matmul(x, W) -> add(., b) [-> relu] on float32 operands, each
    intermediate read by nothing else, becomes one node on the GEMM with its fused bias (+ReLU)
    epilogue -- what the built-in Dense runs. The result is the same computation."""
    from ..models.functional import map_graph

    nodes, _ = map_graph(inputs, outputs)
    uses: dict = {}
    for n in nodes:
        for t in n.flat_inputs:
            uses[id(t)] = uses.get(id(t), 0) + 1
    for t in outputs:
        uses[id(t)] = uses.get(id(t), 0) + 1
    consumer = {}
    for n in nodes:
        for t in n.flat_inputs:
            consumer[id(t)] = n

    def is_op(n, name):
        return n is not None and getattr(n.layer, "_is_op", False) and n.layer.op.name == name

    def operand_ok(kind, p, ndim):
        v = p[0]._weights[p[1]] if kind == _PARAM else p
        return kind in (_PARAM, _CONST) and isinstance(v, np.ndarray) and v.ndim == ndim and \
            v.dtype == np.float32

    for n in nodes:
        if not is_op(n, "matmul"):
            continue
        (k0, p0), (k1, p1) = n.layer.spec
        x = n.flat_inputs[0] if k0 == _TENSOR else None
        if x is None or k1 == _TENSOR or x.dtype != "float32" or len(x.shape) < 2 or \
                not operand_ok(k1, p1, 2):
            continue
        mm_out = n.flat_outputs[0]
        add = consumer.get(id(mm_out))
        if uses.get(id(mm_out)) != 1 or not is_op(add, "add"):
            continue
        spec = add.layer.spec
        other = spec[1] if spec[0] == (_TENSOR, 0) else spec[0]
        if other[0] == _TENSOR or not operand_ok(other[0], other[1], 1):
            continue
        w = p1[0]._weights[p1[1]] if k1 == _PARAM else p1
        bias = other[1][0]._weights[other[1][1]] if other[0] == _PARAM else other[1]
        if bias.shape[0] != w.shape[1]:
            continue
        last = add
        relu = False
        add_out = add.flat_outputs[0]
        nxt = consumer.get(id(add_out))
        if uses.get(id(add_out)) == 1 and is_op(nxt, "relu"):
            last, relu = nxt, True
        out_t = last.flat_outputs[0]
        fused = OpNode(_DENSE_OPS[relu], [(_TENSOR, 0), (k1, p1), other], {"relu": relu},
                       name=f"{last.layer.name}_fused")
        node = Node(fused, [x], out_t)  # the tensor consumers read is now made by the fused node
        fused._inbound_nodes.append(node)


def _layout_of(inputs, out):
    from ..models.functional import map_graph

    nodes, _ = map_graph(inputs, flatten(out))
    return [(id(n.layer) if not getattr(n.layer, "_is_op", False) else n.layer.op.name)
            for n in nodes if not n.is_input]


def trace_call(layer, fn, in_struct, training, kwargs=None):
    """Call fn(symbolic inputs like in_struct, training=...) and record its graph."""
    from ..layers.core import Input

    count = [0]

    def make(s):
        if isinstance(s, list):
            return [make(x) for x in s]
        if isinstance(s, dict):
            return {k: make(v) for k, v in s.items()}
        shape, dtype = s
        count[0] += 1
        return Input(shape=tuple(shape[1:]), batch_size=shape[0], dtype=dtype,
                     name=f"{layer.name}_input_{count[0]}")

    sym = make(in_struct)
    out, frame = _traced(layer, fn, sym, training, kwargs)
    outs = flatten(out)
    sym_losses = [t for t in frame["losses"] if isinstance(t, KerasTensor)]
    const_losses = sum(t[1] for t in frame["losses"] if isinstance(t, tuple))
    if FUSE:
        _fuse_dense(flatten(sym), outs + sym_losses)
    # A graph output may also be an input (an identity call); the Functional core handles that.
    return Graph(flatten(sym), outs + sym_losses, len(outs), out, sym, const_losses)


def in_struct_of(inputs):
    """(shape with batch None, dtype) structure of concrete or symbolic inputs."""
    if isinstance(inputs, (list, tuple)):
        return [in_struct_of(x) for x in inputs]
    if isinstance(inputs, dict):
        return {k: in_struct_of(v) for k, v in inputs.items()}
    if isinstance(inputs, KerasTensor):
        return ((None,) + tuple(inputs.shape[1:]), inputs.dtype)
    a = inputs
    dt = a.dtype
    if dt.kind == "f":
        dt = np.dtype(np.float32)
    return ((None,) + tuple(a.shape[1:]), str(dt))


def _key(struct):
    if isinstance(struct, list):
        return tuple(_key(s) for s in struct)
    if isinstance(struct, dict):
        return tuple((k, _key(v)) for k, v in struct.items())
    return struct


def layer_graph(layer, in_struct, training):
    """The traced graph of a user layer's call for these input shapes (cached)."""
    cache = layer.__dict__.get("_traces")
    if cache is None:
        cache = layer.__dict__["_traces"] = {}
    key = (_key(in_struct), bool(training))
    g = cache.get(key)
    if g is None:
        with BUILD_LOCK:
            g = cache.get(key)
            if g is None:
                g = trace_call(layer, layer.call, in_struct, bool(training))
                cache[key] = g
    return g


def _cast_inputs(inputs):
    if isinstance(inputs, (list, tuple)):
        return [_cast_inputs(x) for x in inputs]
    if isinstance(inputs, dict):
        return {k: _cast_inputs(v) for k, v in inputs.items()}
    a = np.asarray(inputs)
    if a.dtype.kind == "f" and a.dtype != np.float32:
        a = a.astype(np.float32)
    return a


def traced_forward(layer, inputs, training=False, need_ctx=False):
    training = bool(training)
    if type(inputs) is np.ndarray and inputs.dtype == np.float32:
        # the common case, looked up without building the shape structure
        fast = layer.__dict__.get("_fast_traces")
        if fast is None:
            fast = layer.__dict__["_fast_traces"] = {}
        key = (inputs.shape[1:], training)
        g = fast.get(key)
        if g is None:
            g = fast[key] = layer_graph(layer, in_struct_of(inputs), training)
    else:
        inputs = _cast_inputs(inputs)
        g = layer_graph(layer, in_struct_of(inputs), training)
    outs, ctxs, _ = g.run(flatten(inputs), bool(training), need_ctx)
    coll = _collector()
    seeded = None  # shapes of the activity-loss outputs, when they count in this step's loss
    if g.n_user < len(outs) or g.const_losses:
        if coll is not None:
            coll.extend(outs[g.n_user:])
            if g.const_losses:
                coll.append(np.float64(g.const_losses))
            seeded = [np.shape(v) for v in outs[g.n_user:]]
        outs = outs[:g.n_user]
    y = pack_like(g.out_struct, outs)
    return y, ((g, ctxs, seeded) if need_ctx else None)


def traced_backward(layer, ctx, dy, need_input_grad=True):
    g, ctxs, seeded = ctx
    douts = flatten(dy) if isinstance(g.out_struct, (list, tuple, dict)) else [dy]
    douts = list(douts)
    if len(g.outputs) > g.n_user:
        douts += ([np.ones(sh, np.float32) for sh in seeded] if seeded is not None
                  else [None] * (len(g.outputs) - g.n_user))
    if all(d is None for d in douts):
        return None
    dxs = g.backprop(ctxs, douts, g.plan(need_input_grad))
    if not need_input_grad:
        return None
    return pack_like(g.in_struct, dxs) if isinstance(g.in_struct, (list, dict)) else dxs[0]


__all__ = ["Op", "OpNode", "apply", "unbroadcast", "trace_call", "layer_graph",
           "traced_forward", "traced_backward", "collect_losses", "add_loss", "Graph",
           "pack_like"]
