"""ONNX import: ``nncore.onnx.load("m.onnx")`` -> a Functional model of nncore layers (which
predicts and trains), for the operator set nncore's exporter writes (nncore.saving.onnx_export).

nncore is channels-last, so an ONNX value is read as an nncore tensor plus a *view*: "nhwc" (the
tensor itself), "nchw" / "ncw" (its channels-first transpose, which 2-D / 1-D Conv,
ConvTranspose and pooling consume and produce), "tmajor" (its time-major transpose, which RNN /
LSTM / GRU consume), and a few partial patterns (a MatMul waiting for its bias Add, a (0, 2, 1)
transpose that is a Conv1D view or a Permute depending on its reader, a reverse-direction
sequence waiting for its time reversal, a bidirectional op waiting for its merge, the steps of
an L2 normalisation). Transposes only change views; a layer is made when a value is used. Per-op
handlers sit in ``ONNX_IMPORTERS`` (op type -> function); an operator not there, or an
attribute value nncore cannot honour, raises ValueError naming the node. The file is data:
external tensor data is refused, weights must be finite float32, every shape is re-checked
when the layers are built. Constants of other dtypes (float64 boundaries, int32 bins, string
vocabularies) are read only by the categorical patterns (Discretization, the encodings, the
lookups' LabelEncoder / vocabulary Gather), never as weights.
"""

from __future__ import annotations

import os

import numpy as np

ONNX_HINT = 'ONNX import needs the onnx package: pip install "nncore[onnx]"'
MAX_FILE_BYTES = 2 << 30
MAX_PARAMS = 1 << 28
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(ONNX_HINT) from None
    return onnx


class _V:
    """An ONNX value as nncore sees it: a view of a tensor, or a pending pattern."""

    def __init__(self, kind, t=None, **extra):
        self.kind, self.t, self.extra = kind, t, extra


class _Importer:
    def __init__(self, onnx, proto):
        self.onnx = onnx
        self.proto = proto
        self.consts: dict = {}
        self.xconsts: dict = {}  # other dtypes (float64, int32, strings): categorical layers only
        self.vals: dict = {}
        self._cf: dict = {}  # (value, view) -> the channels-first view made of a plain tensor
        self.node = None

    # ---- helpers ------------------------------------------------------------------------------
    def bad(self, msg):
        n = self.node
        where = f"node {n.name!r} ({n.op_type})" if n is not None else "graph"
        raise ValueError(f"ONNX import: {where}: {msg}")

    def attrs(self, node):
        h = self.onnx.helper
        return {a.name: h.get_attribute_value(a) for a in node.attribute}

    def const(self, name, dtype=None):
        if name not in self.consts:
            self.bad(f"input {name!r} must be a constant (an initializer)")
        a = self.consts[name]
        if dtype is not None and a.dtype != dtype:
            self.bad(f"constant {name!r} has dtype {a.dtype}, expected {dtype}")
        return a

    def tensor(self, name, view="nhwc"):
        """The nncore tensor behind value `name`, which must be in `view`."""
        v = self.vals.get(name)
        if v is None:
            self.bad(f"input {name!r} is not a tensor nncore can compute")
        if v.kind == "matmul":  # a MatMul not followed by a bias Add: Dense without bias
            v = self.dense(name, v, None)
        if v.kind == "swap":  # (batch, a, b) -> (batch, b, a): a Conv1D/pool view or a Permute
            if view == "ncw":
                return v.t
            v = self.permute(name, v)
        if v.kind == "l2n" and view == "nhwc":  # an L2 normalisation not read by a Dot
            v = self.unit_norm(name, v)
        if v.kind == "cat":  # a categorical layer's indices not read by an encoding
            v = self.categorical(name, v, "int")
        if v.kind == "gn":  # a GroupNormalization, its gamma / beta folded in
            v = self.group_norm(name, v)
        if v.kind in ("bidi_half", "bidi_add"):  # a masked Bidirectional's merge
            t = _bidi_layer(self, v, None if v.kind == "bidi_half" else "sum")
            v = _V("nhwc", t[v.extra["half"]] if v.kind == "bidi_half" else t)
            self.vals[name] = v
        if v.kind == "zeros" and view == "nhwc" and v.extra.get("src"):
            # zeros of a tensor's whole Shape read as a tensor (ops.zeros_like): made so
            from . import layers as L, ops

            v = _V("nhwc", self.layer(L.Lambda(lambda x: ops.zeros_like(x),
                                               name=self.fresh_name("ConstantOfShape")),
                                      self.tensor(v.extra["src"])))
            self.vals[name] = v
        if v.kind == "unsq1" and view == "nhwc":  # (batch, F) -> (batch, 1, F) not tiled
            from . import layers as L

            v = _V("nhwc", self.layer(L.Reshape((1, v.t.shape[1])), v.t))
            self.vals[name] = v
        if v.kind == "nhwc" and view in ("nchw", "ncw") and \
                len(v.t.shape) == (4 if view == "nchw" else 3):
            # a plain tensor read by a channels-first op (another exporter's NCHW graph): its
            # channels-last transpose, made once
            key = (name, view)
            if key not in self._cf:
                from . import layers as L

                dims = (2, 3, 1) if view == "nchw" else (2, 1)
                self._cf[key] = self.layer(L.Permute(dims), v.t)
            return self._cf[key]
        if v.kind in ("nchw", "ncw") and view == "nhwc":
            # a channels-first value read as a plain tensor (another exporter's layout, or a
            # transpose nncore's own patterns do not consume): an explicit Permute
            from . import layers as L

            dims = (3, 1, 2) if v.kind == "nchw" else (2, 1)
            v = _V("nhwc", self.layer(L.Permute(dims), v.t))
            self.vals[name] = v
        if v.kind != view:
            self.bad(f"input {name!r} is a {v.kind} value where a {view} one is needed "
                     "(nncore reads channels-last graphs as nncore's exporter writes them)")
        return v.t

    def fresh_name(self, op_type):
        self._n_ops = getattr(self, "_n_ops", 0) + 1
        return f"onnx_{op_type.lower()}_{self._n_ops}"

    def layer(self, layer, inputs, weights=None):
        out = layer(inputs)
        if weights is not None:
            ws = [np.asarray(w, np.float32) for w in weights]
            if any(not np.all(np.isfinite(w)) for w in ws):
                self.bad("weights hold NaN or inf")
            try:
                layer.set_weights(ws)
            except (ValueError, TypeError) as e:
                self.bad(str(e))
        return out

    def dense(self, name, v, bias):
        from .layers import Dense

        w = v.extra["w"]
        lay = Dense(w.shape[1], use_bias=bias is not None)
        t = self.layer(lay, v.t, [w] + ([bias] if bias is not None else []))
        nv = _V("nhwc", t, layer=lay)
        self.vals[name] = nv
        return nv

    def permute(self, name, v):
        from .layers import Permute

        if "made" not in v.extra:
            v.extra["made"] = _V("nhwc", self.layer(Permute((2, 1)), v.t))
        self.vals[name] = v.extra["made"]
        return v.extra["made"]

    def unit_norm(self, name, v):
        from .layers import UnitNormalization

        if "made" not in v.extra:
            axes = v.extra["axis"]
            lay = UnitNormalization(axis=axes if isinstance(axes, list) else [axes])
            v.extra["made"] = _V("nhwc", self.layer(lay, v.t))
        self.vals[name] = v.extra["made"]
        return v.extra["made"]

    def group_norm(self, name, v):
        from .layers import GroupNormalization

        if "made" not in v.extra:
            e = v.extra
            lay = GroupNormalization(groups=e["groups"], epsilon=e["eps"],
                                     scale=e["gamma"] is not None, center=e["beta"] is not None)
            ws = [w for w in (e["gamma"], e["beta"]) if w is not None]
            e["made"] = _V("nhwc", self.layer(lay, v.t, ws))
        self.vals[name] = v.extra["made"]
        return v.extra["made"]

    def categorical(self, name, v, mode):
        """A pending Discretization / IntegerLookup made with output_mode `mode` ('int' when
        its indices are read as they are, an encoding when its own encoding reads them)."""
        if mode not in v.extra["made"]:
            v.extra["made"][mode] = _V("nhwc", self.layer(v.extra["make"](mode), v.t))
        if mode == "int":
            self.vals[name] = v.extra["made"][mode]
        return v.extra["made"][mode]

    def set(self, name, kind, t=None, **extra):
        self.vals[name] = _V(kind, t, **extra)

    # ---- the walk -----------------------------------------------------------------------------
    def run(self):
        from . import layers as L
        from .models import Model

        g = self.proto.graph
        n_params = 0
        for init in g.initializer:
            if init.data_location == self.onnx.TensorProto.EXTERNAL or init.external_data:
                self.bad(f"initializer {init.name!r} points to external data, which nncore "
                         "never reads")
            dims = list(init.dims)
            if any(d < 0 for d in dims):
                self.bad(f"initializer {init.name!r} has a negative dimension")
            n = int(np.prod(dims, dtype=np.float64))
            n_params += n
            if n_params > MAX_PARAMS:
                self.bad(f"the initializers hold more than {MAX_PARAMS} values")
            try:
                arr = self.onnx.numpy_helper.to_array(init)
            except Exception as e:  # a tensor whose data does not match its dims
                self.bad(f"initializer {init.name!r} cannot be read: {e}")
            if arr.dtype in (np.float32, np.int64):
                self.consts[init.name] = arr
            elif arr.dtype.kind in "iuO" or arr.dtype == np.float64:
                # read only by the categorical patterns (boundaries, bins, vocabularies)
                self.xconsts[init.name] = arr
            else:
                self.bad(f"initializer {init.name!r} has dtype {arr.dtype}")
        init_names = set(self.consts) | set(self.xconsts)
        self.uses = {}
        self.td = {}  # id(inner Input) -> (inner Input, outer tensor): open TimeDistributed
        for node in g.node:
            for x in node.input:
                self.uses[x] = self.uses.get(x, 0) + 1
        for o in g.output:
            self.uses[o.name] = self.uses.get(o.name, 0) + 1
        self.motifs = _Motifs(self, list(g.node))
        inputs = []
        for vi in g.input:
            if vi.name in init_names:
                continue
            tt = vi.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if len(dims) < 2 or any(d is None or d <= 0 for d in dims[1:]):
                self.bad(f"input {vi.name!r} must have a batch axis and static other axes, "
                         f"got {dims}")
            try:
                dt = np.dtype(self.onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
            except (KeyError, TypeError):
                self.bad(f"input {vi.name!r} has an unsupported element type")
            dtype = "string" if dt.kind == "O" else str(dt)  # tensor(string): strings
            t = L.Input(shape=tuple(dims[1:]), name=vi.name, dtype=dtype)
            inputs.append(t)
            self.set(vi.name, "nhwc", t)
        for node in g.node:
            self.node = node
            if node.domain not in ("", "ai.onnx") and (node.domain, node.op_type) != (
                    "ai.onnx.ml", "LabelEncoder"):
                self.bad(f"operator domain {node.domain!r} is not supported")
            if id(node) in self.motifs.absorbed:  # read by the anchor of its motif
                continue
            motif = self.motifs.anchor.get(id(node))
            if motif is not None:
                motif[0](self, node, motif[1])
                continue
            fn = ONNX_IMPORTERS.get(node.op_type)
            attrs = self.attrs(node)
            if fn is None:
                if _generic(self, node, attrs):
                    continue
                self.bad(f"operator {node.op_type!r} is not supported by nncore's ONNX import "
                         f"(it reads {sorted(set(ONNX_IMPORTERS) | set(_GENERIC))})")
            n_in, n_out, required = _ARITY.get(node.op_type, (1, 1, ()))
            if len(node.input) < n_in or len(node.output) < n_out:
                self.bad(f"needs at least {n_in} input(s) and {n_out} output(s), has "
                         f"{len(node.input)} and {len(node.output)}")
            for name in required:
                if name not in attrs:
                    self.bad(f"attribute {name!r} is required")
            try:
                fn(self, node, attrs)
            except ValueError:  # not one of the patterns the handler reads: exactly, as ops?
                if not _generic(self, node, attrs):
                    raise
        self.node = None
        outs = [self.tensor(o.name) for o in g.output]
        if not inputs or not outs:
            self.bad("the graph has no inputs or no outputs")
        return Model(inputs, outs if len(outs) > 1 else outs[0], name=g.name or None)


def _only(imp, a, allowed):
    for k, v in a.items():
        if k not in allowed or (allowed[k] is not None and v not in allowed[k]):
            imp.bad(f"attribute {k}={v!r} is not supported")


def _op_identity(imp, node, a):
    imp.vals[node.output[0]] = imp.vals.get(node.input[0]) or imp.bad("unknown input")


_CATEGORICAL = ("CategoryEncoding", "Discretization", "IntegerLookup", "StringLookup")


def _op_cast(imp, node, a):
    T = imp.onnx.TensorProto
    v = imp.vals.get(node.input[0])
    if v is not None and v.kind == "shape" and a.get("to") in (T.INT32, T.INT64):
        imp.vals[node.output[0]] = v  # a shape's integer type does not matter
        return
    if v is None:
        imp.bad(f"input {node.input[0]!r} is not a tensor nncore can compute")
    t = getattr(v, "t", None)
    made_by = type(t.node.layer).__name__ if getattr(t, "node", None) is not None else None
    if a.get("to") in (T.INT32, T.DOUBLE) and (v.kind == "cat" or made_by in _CATEGORICAL):
        pass  # a categorical layer's indices / counts in its output dtype (int32, float64)
    elif a.get("to") not in (T.FLOAT, T.INT64):
        imp.bad("only casts to float32 (and int64 indices, read by Gather) are supported")
    imp.vals[node.output[0]] = v  # nncore layers cast their inputs


def _op_constant(imp, node, a):
    if "value" not in a:
        imp.bad("only Constant(value=tensor) is supported")
    imp.consts[node.output[0]] = imp.onnx.numpy_helper.to_array(a["value"])


def _op_transpose(imp, node, a):
    perm = list(a.get("perm", []))
    v = imp.vals.get(node.input[0])
    if v is None:
        imp.bad("unknown input")
    if v.kind == "matmul":
        v = imp.dense(node.input[0], v, None)
    if v.kind == "swap":
        v = imp.permute(node.input[0], v)
    if v.kind == "l2n":
        v = imp.unit_norm(node.input[0], v)
    if v.kind == "gn_t" and tuple(perm) == (0, 2, 1, 3):
        imp.set(node.output[0], "gn_r", v.t, **v.extra)
        return
    if (v.kind, tuple(perm)) in (("bidi_y", (2, 0, 1, 3)), ("bidi_yh", (1, 0, 2))):
        imp.set(node.output[0], "bidi_bm", pending=v.extra["pending"], seq=v.kind == "bidi_y")
        return
    table = {("nhwc", tuple(NHWC_TO_NCHW)): "nchw", ("nchw", tuple(NCHW_TO_NHWC)): "nhwc",
             ("nhwc", (1, 0, 2)): "tmajor", ("rnn_seq_tm", (1, 0, 2)): "nhwc",
             ("ncw", (0, 2, 1)): "nhwc"}
    if v.kind == "nhwc" and tuple(perm) == (0, 2, 1) and len(v.t.shape) == 3:
        imp.set(node.output[0], "swap", v.t)  # decided by its reader (Conv1D view or Permute)
        return
    kind = table.get((v.kind, tuple(perm)))
    if kind is None and v.kind == "nhwc" and len(perm) == len(v.t.shape) >= 3 and \
            perm[0] == 0 and sorted(perm) == list(range(len(perm))) and \
            imp.uses.get(node.output[0], 0) >= 1 and not _is_view_perm(imp, node):
        from . import layers as L  # any other batch-keeping transpose is a Permute

        imp.set(node.output[0], "nhwc", imp.layer(L.Permute(tuple(perm[1:])), v.t))
        return
    if kind is None or (v.kind == "nhwc" and len(v.t.shape) != len(perm)):
        imp.bad(f"a transpose {perm} of a {v.kind} value has no nncore equivalent")
    imp.set(node.output[0], kind, v.t)


def _is_view_perm(imp, node):
    """True when a transpose's perm is one the importer reads as a view change (NHWC<->NCHW
    or time-major for a recurrent op), so it must not be taken for a Permute."""
    perm = tuple(imp.attrs(node).get("perm", ()))
    return perm in (tuple(NHWC_TO_NCHW), (1, 0, 2), (0, 2, 1))


def _op_gemm(imp, node, a):
    _only(imp, a, {"alpha": (1.0,), "beta": (1.0,), "transA": (0,), "transB": (0, 1)})
    w = imp.const(node.input[1], np.float32)
    if w.ndim != 2:
        imp.bad("Gemm weight must be a matrix")
    if a.get("transB", 0):
        w = w.T
    bias = imp.const(node.input[2], np.float32) if len(node.input) > 2 and node.input[2] else None
    if bias is not None and bias.shape != (w.shape[1],):
        imp.bad(f"Gemm bias shape {bias.shape} does not match the {w.shape[1]} units")
    imp.vals[node.output[0]] = _V("matmul", imp.tensor(node.input[0]), w=w)
    if bias is not None:
        imp.dense(node.output[0], imp.vals[node.output[0]], bias)


def _op_matmul(imp, node, a):
    w = imp.const(node.input[1], np.float32)
    if w.ndim != 2:
        imp.bad("MatMul weight must be a matrix")
    imp.set(node.output[0], "matmul", imp.tensor(node.input[0]), w=w)


def _binary(cls_name):
    def f(imp, node, a):
        from . import layers as L

        ins = list(node.input)
        if _bidi_halves(imp, ins):
            v0 = imp.vals[ins[0]]
            if cls_name == "Add":  # a sum, or the ave's sum when a Mul by 0.5 follows
                imp.set(node.output[0], "bidi_add", pending=v0.extra["pending"],
                        seq=v0.extra["seq"])
                return
            if cls_name == "Multiply":
                return _bidi_merge(imp, node, v0, "mul")
        v0 = imp.vals.get(ins[0]) if ins else None
        if cls_name == "Multiply" and len(ins) == 2 and v0 is not None and \
                v0.kind == "bidi_add" and imp.uses.get(ins[0]) == 1 and \
                ins[1] in imp.consts and imp.consts[ins[1]].dtype == np.float32 and \
                imp.consts[ins[1]].size == 1 and float(imp.consts[ins[1]].reshape(-1)[0]) == 0.5:
            return _bidi_merge(imp, node, v0, "ave")
        if cls_name == "Add" and len(ins) == 2:
            v0 = imp.vals.get(ins[0])
            if v0 is not None and v0.kind == "matmul" and ins[1] in imp.consts:
                b = imp.const(ins[1], np.float32)
                if b.shape != (v0.extra["w"].shape[1],):
                    imp.bad(f"bias shape {b.shape} does not match the MatMul")
                imp.vals[node.output[0]] = imp.dense(ins[0], v0, b)
                return
        v0 = imp.vals.get(ins[0])
        if v0 is not None and v0.kind == "gn" and len(ins) == 2 and ins[1] in imp.consts and \
                imp.uses.get(ins[0]) == 1 and cls_name in ("Multiply", "Add"):
            c = imp.const(ins[1], np.float32)
            key = "gamma" if cls_name == "Multiply" else "beta"
            if c.shape == (v0.t.shape[-1],) and v0.extra[key] is None and \
                    (key == "beta" or v0.extra["beta"] is None):
                e = {k: x for k, x in v0.extra.items() if k != "made"}
                imp.set(node.output[0], "gn", v0.t, **dict(e, **{key: c}))
                return
        if cls_name == "Maximum" and len(ins) == 2 and ins[1] in imp.consts:
            v0 = imp.vals.get(ins[0])
            if v0 is not None and v0.kind == "sumsq" and np.allclose(imp.consts[ins[1]], 1e-12,
                                                                    rtol=1e-3, atol=0):
                imp.set(node.output[0], "maxeps", v0.t, axis=v0.extra["axis"])
                return
        if len(ins) == 2 and ins[1] in imp.consts and ins[0] not in imp.consts and \
                cls_name in ("Multiply", "Add", "Subtract", "Divide"):
            # x op constant: a Rescaling (Rescaling and Normalization export this way)
            c = imp.const(ins[1], np.float32).astype(np.float64)
            if not np.all(np.isfinite(c)) or (cls_name == "Divide" and np.any(c == 0)):
                imp.bad("the constant must be finite (and non-zero for Div)")
            kw = {"Multiply": lambda: {"scale": c}, "Add": lambda: {"scale": 1.0, "offset": c},
                  "Subtract": lambda: {"scale": 1.0, "offset": -c},
                  "Divide": lambda: {"scale": 1.0 / c}}[cls_name]()
            t = imp.tensor(ins[0])
            if c.ndim > len(t.shape):
                imp.bad("the constant has more axes than the tensor")
            imp.set(node.output[0], "nhwc", imp.layer(L.Rescaling(**kw), t))
            return
        if cls_name == "Divide":
            v0, v1 = imp.vals.get(ins[0]), imp.vals.get(ins[1])
            if v0 is not None and v1 is not None and v1.kind == "norm" and v0.kind == "nhwc" \
                    and v0.t is v1.t:
                imp.set(node.output[0], "l2n", v0.t, axis=v1.extra["axis"])
                return
        consts = [x for x in ins if x in imp.consts]
        if cls_name == "Divide" or consts:
            return _binary_ops(imp, node, cls_name, ins)
        if len(ins) < 2:
            imp.bad("needs at least two inputs")
        xs = [imp.tensor(x) for x in ins]
        imp.set(node.output[0], "nhwc", imp.layer(getattr(L, cls_name)(), xs))
    return f


def _binary_ops(imp, node, cls_name, ins):
    """Tensor arithmetic no merge layer or Rescaling covers (a tensor divided by a tensor, a
    constant minus or over a tensor...): a Lambda of nncore.ops, constants captured."""
    from . import ops

    if len(ins) != 2 or all(x in imp.consts for x in ins):
        imp.bad(f"{node.op_type} needs two inputs, at least one a tensor")
    fn = {"Divide": ops.divide, "Subtract": ops.subtract, "Add": ops.add,
          "Multiply": ops.multiply, "Maximum": ops.maximum, "Minimum": ops.minimum}.get(cls_name)
    if fn is None:
        imp.bad(f"{node.op_type} of these inputs has no nncore equivalent")
    for k in (0, 1):
        if ins[k] in imp.consts:
            c = np.asarray(imp.const(ins[k], np.float32))
            if not np.all(np.isfinite(c)):
                imp.bad("the constant must be finite")
            op = (lambda t, c=c: fn(c, t)) if k == 0 else (lambda t, c=c: fn(t, c))
            view, y = _ops_lambda(imp, node, op, [ins[1 - k]])
            break
    else:
        view, y = _ops_lambda(imp, node, lambda ts: fn(ts[0], ts[1]), ins)
    imp.set(node.output[0], view, y)


def _bidi_halves(imp, ins):
    """True when ins are the forward then the backward half of one masked Bidirectional."""
    vs = [imp.vals.get(x) for x in ins]
    return len(vs) == 2 and all(v is not None and v.kind == "bidi_half" for v in vs) and \
        vs[0].extra["pending"] is vs[1].extra["pending"] and \
        [v.extra["half"] for v in vs] == [0, 1]


def _op_concat(imp, node, a):
    from . import layers as L

    if _bidi_halves(imp, list(node.input)) and int(a["axis"]) == -1:
        return _bidi_merge(imp, node, imp.vals[node.input[0]], "concat")

    if any(imp.vals.get(x) is not None and imp.vals[x].kind == "shape" for x in node.input):
        dims = []  # a shape being assembled (another exporter's initial RNN state)
        for x in node.input:
            v = imp.vals.get(x)
            if v is not None and v.kind == "shape" and not v.extra["scalar"]:
                dims += v.extra["dims"]
            elif imp.consts.get(x, imp.xconsts.get(x)) is not None and \
                    imp.consts.get(x, imp.xconsts.get(x)).dtype in (np.int64, np.int32) and \
                    imp.consts.get(x, imp.xconsts.get(x)).ndim == 1:
                dims += [int(d) for d in imp.consts.get(x, imp.xconsts.get(x))]
            else:
                imp.bad("a shape is concatenated from shape values and int64 constants only")
        imp.set(node.output[0], "shape", dims=dims, scalar=False)
        return
    xs = [imp.tensor(x) for x in node.input]
    imp.set(node.output[0], "nhwc", imp.layer(L.Concatenate(axis=int(a["axis"])), xs))


def _act(name):
    def f(imp, node, a):
        from . import layers as L

        v = imp.vals.get(node.input[0])
        lay = v.extra.get("layer") if v is not None else None
        if lay is not None and lay.activation == "linear" and imp.uses.get(node.input[0]) == 1:
            lay.activation = name  # fuse into the Dense / Conv2D that made the value
            imp.vals[node.output[0]] = v
            return
        if name == "softmax":
            t = imp.tensor(node.input[0])
            rank = len(t.shape)
            ax = a.get("axis", -1)
            if not -rank < ax < rank or ax % rank == 0:
                imp.bad(f"Softmax over axis {ax} of a rank-{rank} value (nncore's Softmax "
                        "takes a non-batch axis)")
            lay = L.Activation("softmax") if ax % rank == rank - 1 else L.Softmax(axis=ax % rank)
            imp.set(node.output[0], "nhwc", imp.layer(lay, t))
            return
        if v is not None and v.kind in ("nchw", "ncw"):  # elementwise: keeps the view
            imp.set(node.output[0], v.kind, imp.layer(L.Activation(name), v.t))
            return
        imp.set(node.output[0], "nhwc", imp.layer(L.Activation(name), imp.tensor(node.input[0])))
    return f


def _padding(imp, a, in_hw, k, s, d, causal=False):
    """Keras's padding name of ONNX pads: 'valid', 'same' (TF's split) or, for a 1-D
    convolution, 'causal' (dilation*(k-1) before the first step, nothing after)."""
    from .saving.onnx_export import _same_pads

    if a.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET", "VALID", b"VALID"):
        imp.bad(f"auto_pad={a['auto_pad']!r} is not supported")
    pads = [int(p) for p in a.get("pads", [0] * (2 * len(in_hw)))]
    if pads == [0] * (2 * len(in_hw)):
        return "valid"
    if pads == _same_pads(in_hw, k, s, d):
        return "same"
    if causal and len(in_hw) == 1 and pads == [d[0] * (k[0] - 1), 0]:
        return "causal"
    imp.bad(f"pads {pads} are neither 'valid' nor Keras's 'same'"
            f"{' or causal' if causal else ''} for input {tuple(in_hw)}")


def _op_conv(imp, node, a):
    from . import layers as L

    _only(imp, a, {"kernel_shape": None, "strides": None, "dilations": None, "pads": None,
                   "group": None, "auto_pad": None})
    w = imp.const(node.input[1], np.float32)
    if w.ndim not in (3, 4):
        imp.bad("Conv weight must be 3-D or 4-D (a 1-D or 2-D convolution)")
    n = w.ndim - 2
    view = "nchw" if n == 2 else "ncw"
    t = imp.tensor(node.input[0], view)
    group = int(a.get("group", 1))
    if group != 1 and n == 2 and w.shape[1] == 1 and group == t.shape[-1]:
        return _op_depthwise(imp, node, a, t, w, group)
    if group < 1 or t.shape[-1] != w.shape[1] * group or w.shape[0] % group or \
            (group != 1 and n == 1):
        imp.bad(f"group={group} with a weight of shape {w.shape} does not fit "
                f"{t.shape[-1]} input channels")
    b = imp.const(node.input[2], np.float32) if len(node.input) > 2 and node.input[2] else None
    if b is not None and b.shape != (w.shape[0],):
        imp.bad(f"bias shape {b.shape} does not match the {w.shape[0]} filters")
    k = tuple(int(x) for x in a.get("kernel_shape", w.shape[2:]))
    s = tuple(int(x) for x in a.get("strides", (1,) * n))
    d = tuple(int(x) for x in a.get("dilations", (1,) * n))
    if k != tuple(w.shape[2:]) or len(s) != n or len(d) != n:
        imp.bad("kernel_shape, strides or dilations do not match the weight")
    pad = _padding(imp, a, t.shape[1:-1], k, s, d, causal=n == 1)
    if n == 2:
        lay = L.Conv2D(w.shape[0], k, strides=s, padding=pad, dilation_rate=d, groups=group,
                       use_bias=b is not None)
        kern = np.transpose(w, (2, 3, 1, 0))
    else:
        lay = L.Conv1D(w.shape[0], k, strides=s, padding=pad, dilation_rate=d,
                       use_bias=b is not None)
        kern = np.transpose(w, (2, 1, 0))
    imp.set(node.output[0], view, imp.layer(lay, t, [kern] + ([b] if b is not None else [])),
            layer=lay)


def _op_conv_transpose(imp, node, a):
    """ConvTranspose as nncore's exporter writes a Conv2DTranspose (see _transpose_geometry)."""
    from . import layers as L
    from .saving.onnx_export import _transpose_geometry

    _only(imp, a, {"kernel_shape": None, "strides": None, "dilations": None, "pads": None,
                   "output_padding": None, "group": (1,), "auto_pad": ("NOTSET", b"NOTSET")})
    w = imp.const(node.input[1], np.float32)
    if w.ndim != 4:
        imp.bad("ConvTranspose is read only in 2-D (a 4-D weight)")
    t = imp.tensor(node.input[0], "nchw")
    if t.shape[-1] != w.shape[0]:
        imp.bad(f"the weight's {w.shape[0]} input channels do not match the input's "
                f"{t.shape[-1]}")
    b = imp.const(node.input[2], np.float32) if len(node.input) > 2 and node.input[2] else None
    if b is not None and b.shape != (w.shape[1],):
        imp.bad(f"bias shape {b.shape} does not match the {w.shape[1]} filters")
    k = tuple(int(x) for x in a.get("kernel_shape", w.shape[2:]))
    s = tuple(int(x) for x in a.get("strides", (1, 1)))
    d = tuple(int(x) for x in a.get("dilations", (1, 1)))
    if k != tuple(w.shape[2:]) or len(s) != 2 or len(d) != 2:
        imp.bad("kernel_shape, strides or dilations do not match the weight")
    got = ([int(p) for p in a.get("pads", [0] * 4)],
           [int(p) for p in a.get("output_padding", [0, 0])])
    for pad in ("valid", "same"):
        pb, pa, op = _transpose_geometry(pad, k, s, d)
        if got == (pb + pa, op):
            break
    else:
        imp.bad(f"pads {got[0]} / output_padding {got[1]} are not Keras's 'valid' or 'same' "
                "Conv2DTranspose")
    lay = L.Conv2DTranspose(w.shape[1], k, strides=s, padding=pad, dilation_rate=d,
                            use_bias=b is not None)
    kern = np.transpose(w, (2, 3, 1, 0))
    imp.set(node.output[0], "nchw", imp.layer(lay, t, [kern] + ([b] if b is not None else [])),
            layer=lay)


def _op_depthwise(imp, node, a, t, w, group):
    """Conv with group = input channels and one input channel per filter: DepthwiseConv2D."""
    from . import layers as L

    c = t.shape[-1]
    if group != c or w.shape[1] != 1 or w.shape[0] % c:
        imp.bad(f"grouped Conv (group={group}) is read only as a depthwise convolution (group "
                f"= {c} input channels, one input channel per filter)")
    m = w.shape[0] // c
    b = imp.const(node.input[2], np.float32) if len(node.input) > 2 and node.input[2] else None
    k = tuple(int(x) for x in a.get("kernel_shape", w.shape[2:]))
    s = tuple(int(x) for x in a.get("strides", (1, 1)))
    d = tuple(int(x) for x in a.get("dilations", (1, 1)))
    if k != tuple(w.shape[2:]):
        imp.bad("kernel_shape does not match the weight")
    pad = _padding(imp, a, t.shape[1:3], k, s, d)
    lay = L.DepthwiseConv2D(k, strides=s, padding=pad, depth_multiplier=m, dilation_rate=d,
                            use_bias=b is not None)
    kern = np.transpose(w[:, 0], (1, 2, 0)).reshape(k[0], k[1], c, m)
    imp.set(node.output[0], "nchw", imp.layer(lay, t, [kern] + ([b] if b is not None else [])),
            layer=lay)


def _pool(cls_name):
    def f(imp, node, a):
        from . import layers as L

        allowed = {"kernel_shape": None, "strides": None, "pads": None, "auto_pad": None,
                   "ceil_mode": (0,)}
        if cls_name == "AveragePooling":  # (the count matters only where there is padding)
            allowed["count_include_pad"] = (0, 1)
        else:
            allowed["storage_order"] = (0,)
            allowed["dilations"] = ([1, 1], [1])
        _only(imp, a, allowed)
        k = tuple(int(x) for x in a["kernel_shape"])
        n = len(k)
        if n not in (1, 2):
            imp.bad("only 1-D and 2-D pooling are supported")
        t = imp.tensor(node.input[0], "nchw" if n == 2 else "ncw")
        s = tuple(int(x) for x in a.get("strides", (1,) * n))
        if len(s) != n:
            imp.bad("strides do not match kernel_shape")
        pad = _padding(imp, a, t.shape[1:-1], k, s, (1,) * n)
        if a.get("count_include_pad", 0) and (pad != "valid" or any(a.get("pads", []))):
            imp.bad("count_include_pad=1 with padding (nncore's average skips the padding)")
        lay = getattr(L, f"{cls_name}{n}D")(pool_size=k, strides=s, padding=pad)
        if len(node.output) > 1 and node.output[1]:
            imp.bad("MaxPool indices are not supported")
        imp.set(node.output[0], "nchw" if n == 2 else "ncw", imp.layer(lay, t))
    return f


def _op_flatten(imp, node, a):
    from . import layers as L

    if a.get("axis", 1) != 1:
        imp.bad("only Flatten(axis=1) is supported")
    imp.set(node.output[0], "nhwc", imp.layer(L.Flatten(), imp.tensor(node.input[0])))


def _op_reshape(imp, node, a):
    from . import layers as L

    _only(imp, a, {"allowzero": (0,)})
    sv = imp.vals.get(node.input[1])
    if sv is not None and sv.kind == "shape" and not sv.extra["scalar"]:
        dims = sv.extra["dims"]  # a target computed from a Shape: the batch axis kept
        if not dims or dims[0] is not None or None in dims[1:]:
            imp.bad("a computed reshape target must keep the batch axis and nothing else "
                    "dynamic")
        shape = np.array([0] + dims[1:], np.int64)
    else:
        shape = imp.const(node.input[1], np.int64)
    v = imp.vals.get(node.input[0])
    if v is not None and v.kind == "gn_r":
        if shape.tolist() != [0] + list(v.t.shape[1:]):
            imp.bad("an instance normalisation of channel groups is read back only to the "
                    "input's shape (a GroupNormalization)")
        imp.set(node.output[0], "gn", v.t, **v.extra)
        return
    if v is not None and v.kind == "bidi_bm":
        u2 = 2 * v.extra["pending"]["u"]
        want = [0, v.extra["pending"]["x"].shape[1], u2] if v.extra["seq"] else [0, u2]
        if shape.tolist() != want:
            imp.bad(f"a bidirectional op's outputs are read only concatenated (shape {want})")
        return _bidi_merge(imp, node, v, "concat")
    if shape.ndim == 1 and len(shape) >= 2 and shape[0] == -1 and np.all(shape[1:] > 0):
        return _td_reshape(imp, node, [int(d) for d in shape[1:]])
    if shape.ndim != 1 or len(shape) < 2 or shape[0] != 0 or 0 in shape[1:]:
        imp.bad(f"only reshapes that keep the batch axis (shape [0, ...]) are supported, "
                f"got {shape.tolist()}")
    target = tuple(int(x) for x in shape[1:])
    imp.set(node.output[0], "nhwc", imp.layer(L.Reshape(target), imp.tensor(node.input[0])))


def _td_scope(imp, t):
    """The open TimeDistributed scope (inner Input, outer tensor) that t is computed in, None
    when t is computed from the graph's inputs only."""
    stack, seen, found, outer = [t], set(), [], False
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if x.node.is_input:
            if id(x) in imp.td:
                found.append(imp.td[id(x)])
            else:
                outer = True
            continue
        stack.extend(x.node.flat_inputs)
    if found and (outer or len(found) > 1):
        imp.bad("a value mixes the steps of a TimeDistributed with other tensors")
    return found[0] if found else None


def _td_reshape(imp, node, dims):
    """Reshape [-1, ...]: (B, T, *inner) -> (B*T, *inner) opens a TimeDistributed (the ops
    after it are read on a fresh Input of the inner shape); (B*T, *out) -> (B, T, *out) closes
    it: the layers between, one layer or a Model of them, wrapped in a TimeDistributed of the
    tensor the scope was opened on."""
    from . import layers as L
    from .models import Model

    t = imp.tensor(node.input[0])
    scope = _td_scope(imp, t)
    if scope is not None and len(dims) == len(t.shape) and dims[0] == scope[1].shape[1] and \
            dims[1:] == list(t.shape[1:]):
        inner, outer = scope
        if t is inner:
            imp.set(node.output[0], "nhwc", outer)
            return
        prod = t.node
        if len(prod.flat_inputs) == 1 and prod.flat_inputs[0] is inner and \
                len(prod.flat_outputs) == 1:
            lay = prod.layer
        else:
            lay = Model(inner, t)
        imp.set(node.output[0], "nhwc", imp.layer(L.TimeDistributed(lay), outer))
        return
    if len(t.shape) >= 3 and list(t.shape[2:]) == dims:
        inner = L.Input(shape=tuple(dims), dtype=str(t.dtype))
        imp.td[id(inner)] = (inner, t)
        imp.set(node.output[0], "nhwc", inner)
        return
    imp.bad(f"a reshape to {[-1] + dims} of {tuple(t.shape)} is neither the start (batch and "
            "steps merged) nor the end of a TimeDistributed")


def _op_squeeze_step(imp, node, v):
    from . import layers as L

    t, k = v.t, v.extra["k"]
    if imp.const(node.input[1], np.int64).tolist() != [0]:
        imp.bad("one step of a time-major sequence is read with its steps axis squeezed")
    y = imp.layer(L.Cropping1D((k, t.shape[1] - 1 - k)), t)
    imp.set(node.output[0], "nhwc", imp.layer(L.Reshape((t.shape[2],)), y))


def _op_squeeze(imp, node, a):
    v = imp.vals.get(node.input[0])
    if v is not None and v.kind == "tm_step" and len(node.input) > 1:
        return _op_squeeze_step(imp, node, v)
    axes = imp.const(node.input[1], np.int64).tolist() if len(node.input) > 1 else \
        list(a.get("axes", []))
    if v is not None and v.kind in ("rnn_y", "rnn_yh"):
        seq = v.kind == "rnn_y"
        if list(axes) != ([1] if seq else [0]):
            imp.bad(f"unexpected squeeze axes {axes} of an RNN output")
        kind = ("rnn_seq_tm_rev" if v.extra.get("reverse") else "rnn_seq_tm") if seq else "nhwc"
        imp.set(node.output[0], kind, v.t)
        return
    imp.bad("Squeeze is only read on the outputs of RNN / LSTM / GRU")


def _op_unsqueeze(imp, node, a):
    v = imp.vals.get(node.input[0])
    axes = imp.const(node.input[1], np.int64).tolist()
    if v is not None and v.kind == "shape" and v.extra["scalar"] and axes == [0]:
        imp.set(node.output[0], "shape", dims=v.extra["dims"], scalar=False)
        return
    if v is not None and v.kind == "zeros" and axes == [0]:
        imp.set(node.output[0], "zeros", dims=[1] + v.extra["dims"])
        return
    if v is not None and v.kind == "dot1" and axes == [1]:
        imp.set(node.output[0], "nhwc", v.t)
        return
    if v is not None and v.kind == "nhwc" and len(v.t.shape) == 2 and axes == [1]:
        imp.set(node.output[0], "unsq1", v.t)  # a RepeatVector when a Tile reads it
        return
    imp.bad("Unsqueeze is only read after a batch dot product or before a Tile (RepeatVector)")


def _op_tile(imp, node, a):
    from . import layers as L

    v = imp.vals.get(node.input[0])
    reps = imp.const(node.input[1], np.int64).tolist()
    if v is None or v.kind != "unsq1" or len(reps) != 3 or reps[0] != 1 or reps[2] != 1 or \
            reps[1] < 1:
        imp.bad("Tile is only read as a RepeatVector (Unsqueeze(axis 1) then Tile [1, n, 1])")
    imp.set(node.output[0], "nhwc", imp.layer(L.RepeatVector(int(reps[1])), v.t))


def _op_reduce_sum_square(imp, node, a):
    _only(imp, a, {"axes": None, "keepdims": (1,)})
    t = imp.tensor(node.input[0])
    axes = sorted({int(x) % len(t.shape) for x in a.get("axes", [])})
    if not axes or 0 in axes or any(x >= len(t.shape) for x in a.get("axes", [])):
        imp.bad("ReduceSumSquare is only read over non-batch axes (an L2 normalisation)")
    imp.set(node.output[0], "sumsq", t, axis=axes[0] if len(axes) == 1 else axes)


def _op_sqrt(imp, node, a):
    v = imp.vals.get(node.input[0])
    if v is None or v.kind != "maxeps":
        return _unary_ops("sqrt")(imp, node, a)
    imp.set(node.output[0], "norm", v.t, axis=v.extra["axis"])


def _op_einsum(imp, node, a):
    from . import layers as L

    eq = a["equation"]
    eq = eq.decode() if isinstance(eq, bytes) else eq
    try:
        lhs, out = eq.replace(" ", "").split("->")
        sa, sb = lhs.split(",")
        if not (sa and sb and out):
            raise ValueError
    except (ValueError, AttributeError):  # AttributeError: not a string
        imp.bad(f"equation {eq!r} is not a two-input einsum")
    shared = [c for c in sa[1:] if c in sb[1:]]
    if not (sa[0] == sb[0] == out[0]) or len(shared) != 1 or \
            out != sa[0] + "".join(c for c in sa[1:] if c != shared[0]) + \
            "".join(c for c in sb[1:] if c != shared[0]) or len(set(sa)) != len(sa) or \
            len(set(sb)) != len(sb):
        imp.bad(f"equation {eq!r} is not a Keras batch dot product")
    axes = (sa.index(shared[0]), sb.index(shared[0]))
    vs = [imp.vals.get(x) for x in node.input]
    normalize = all(v is not None and v.kind == "l2n" for v in vs)
    if normalize:
        if (vs[0].extra["axis"], vs[1].extra["axis"]) != axes:
            imp.bad("the L2 normalisation axes differ from the dot product's")
        xs = [vs[0].t, vs[1].t]
    else:
        xs = [imp.tensor(x) for x in node.input]
    t = imp.layer(L.Dot(axes=axes, normalize=normalize), xs)
    imp.set(node.output[0], "dot1" if len(out) == 1 else "nhwc", t)


def _rnn_op(kind):
    """RNN / LSTM / GRU as nncore's exporter writes them: direction 'forward', 'reverse'
    (go_backwards) or 'bidirectional' (a Bidirectional, its merge read from the op that
    consumes the outputs); which outputs are used decides return_sequences / return_state.
    packed: a masked layer's motif (_Motifs.packed_rnn), the op read on the unpacked input."""
    def f(imp, node, a, packed=None):
        allowed = {"hidden_size": None,
                   "direction": ("forward", b"forward", "reverse", b"reverse",
                                 "bidirectional", b"bidirectional"),
                   "activations": None, "linear_before_reset": (0, 1), "layout": (0,)}
        _only(imp, a, allowed)
        ins = list(node.input) + [""] * (8 - len(node.input))
        if ins[4] and packed is None:
            imp.bad("sequence_lens is read only as nncore's export of a masked layer")
        n_dir0 = 2 if a.get("direction", "forward") in ("bidirectional", b"bidirectional") else 1
        for k in (5, 6):  # zero initial states (as other exporters write them) are no state
            z = imp.vals.get(ins[k]) if ins[k] else None
            if z is not None and z.kind == "zeros" and \
                    z.extra["dims"] == [n_dir0, None, int(a.get("hidden_size", -1))]:
                ins[k] = ""
        if any(ins[5:]):
            imp.bad("initial states (other than zeros) and peepholes are not supported")
        direction = a.get("direction", "forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        n_dir = 2 if direction == "bidirectional" else 1
        if packed is not None:
            x = imp.tensor(packed["x"])
            if direction not in ("forward", "bidirectional") or \
                    (direction == "bidirectional" and packed["rev"]):
                imp.bad("a masked recurrent op is read only in the forward direction (or as a "
                        "Bidirectional of the unreversed input)")
            _check_mask_source(imp, x, packed["mask"])
            if direction == "forward" and packed["rev"]:
                direction = "reverse"  # go_backwards
        else:
            x = imp.tensor(ins[0], "tmajor")
            if _mask_source(x) is not None:
                imp.bad("a recurrent op without sequence_lens reads a masked tensor (nncore's "
                        "layer would skip the masked steps)")
        w = imp.const(ins[1], np.float32)
        r = imp.const(ins[2], np.float32)
        b = imp.const(ins[3], np.float32) if ins[3] else None
        u = int(a["hidden_size"])
        g = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind]
        if w.shape != (n_dir, g * u, x.shape[2]) or r.shape != (n_dir, g * u, u) or (
                b is not None and b.shape != (n_dir, 2 * g * u)):
            imp.bad("weight shapes do not match hidden_size, the direction and the input")
        acts = [s.decode() if isinstance(s, bytes) else s for s in a.get("activations", [])]
        defaults = {"RNN": ["Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"],
                    "GRU": ["Sigmoid", "Tanh"]}[kind] * n_dir
        activation = "tanh"
        if acts and kind == "RNN" and acts in (["Relu"] * n_dir, ["Tanh"] * n_dir):
            activation = acts[0].lower()
        elif acts and acts != defaults:
            imp.bad(f"activations {acts} are not supported")
        lbr = int(a.get("linear_before_reset", 0))
        if kind != "GRU" and lbr:
            imp.bad("linear_before_reset is a GRU attribute")
        outs = list(node.output) + ["", ""]
        used = [bool(o) and imp.uses.get(o, 0) > 0 for o in outs[:3]]
        if used[2] and kind != "LSTM":
            imp.bad("only an LSTM has a third (cell state) output")
        spec = {"kind": kind, "x": x, "w": w, "r": r, "b": b, "u": u, "lbr": lbr,
                "activation": activation}
        if n_dir == 2:
            if used[2] or (used[0] and used[1]):
                imp.bad("a bidirectional op is read only through one output (no states)")
            p = dict(spec, made=None)
            tag = "_packed" if packed is not None else ""  # packed: read only by the motifs
            if used[0]:
                imp.set(outs[0], "bidi_y" + tag, pending=p)
            if used[1]:
                imp.set(outs[1], "bidi_yh" + tag, pending=p)
            return
        seq, state = used[0], used[2] or (used[0] and used[1])
        if not (used[0] or used[1] or used[2]):
            return
        lay, ws = _rnn_layer(imp, spec, 0, seq, direction == "reverse", state)
        res = imp.layer(lay, x, ws)
        if state:
            y, h, c = (list(res) + [None])[:3]
        else:
            y = h = res
            c = None
        if used[0] and packed is not None:  # in packed order: read only by its motif
            imp.set(outs[0], "rnn_y_packed", y)
        elif used[0]:
            imp.set(outs[0], "rnn_y", y, reverse=direction == "reverse")
        if used[1]:
            imp.set(outs[1], "rnn_yh", h)
        if used[2]:
            imp.set(node.output[2], "rnn_yh", c)
    return f


def _rnn_layer(imp, p, d, return_sequences, go_backwards, return_state):
    """The nncore layer of direction d of a recurrent op and its Keras weights."""
    from . import layers as L
    from .saving.onnx_export import _gates

    u, kind = p["u"], p["kind"]
    k, rk = p["w"][d].T, p["r"][d].T
    b = None if p["b"] is None else p["b"][d]
    g = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind]
    use_bias = b is not None
    kw = dict(return_sequences=return_sequences, use_bias=use_bias, go_backwards=go_backwards,
              return_state=return_state)
    one = None if b is None else b[:g * u] + b[g * u:]  # Wb + Rb: one bias in Keras's layers
    if kind == "LSTM":
        back = [0, 2, 3, 1]  # ONNX i, o, f, c -> Keras i, f, c, o
        k, rk = _gates(k, back, u), _gates(rk, back, u)
        bias = None if b is None else _gates(one, back, u)
        lay = L.LSTM(u, **kw)
    elif kind == "GRU":
        if p["lbr"]:
            bias = None if b is None else b.reshape(2, 3 * u)
        else:  # Keras reset_after=False: ONNX adds Rb_h outside the reset product too
            bias = one
        lay = L.GRU(u, reset_after=bool(p["lbr"]), **kw)
    else:
        bias = one
        lay = L.SimpleRNN(u, activation=p["activation"], **kw)
    return lay, [k, rk] + ([bias] if use_bias else [])


def _bidi_layer(imp, v, merge_mode):
    """The Bidirectional behind a bidi_bm value, made once (merge None: its two outputs)."""
    from . import layers as L

    p = v.extra["pending"]
    if p["made"] is None:
        seq = v.extra["seq"]
        fw, wf = _rnn_layer(imp, p, 0, seq, False, False)
        bw, wb = _rnn_layer(imp, p, 1, seq, True, False)
        lay = L.Bidirectional(fw, merge_mode=merge_mode, backward_layer=bw)
        p["made"] = (merge_mode, imp.layer(lay, p["x"], wf + wb))
    elif p["made"][0] != merge_mode:
        imp.bad("the two directions of a bidirectional op are merged in two ways")
    return p["made"][1]


def _bidi_merge(imp, node, v, mode, axes=None, index=None):
    ok = ([2], [-2]) if v.extra["seq"] else ([1], [-2])
    if axes is not None and [int(x) for x in axes] not in ok:
        imp.bad(f"axes {list(axes)} are not the direction axis of a bidirectional op")
    t = _bidi_layer(imp, v, mode)
    imp.set(node.output[0], "nhwc", t[index] if index is not None else t)


def _elementwise_layer(make):
    """An elementwise op as an nncore layer; keeps the value's view (NCHW stays NCHW)."""
    def f(imp, node, a):
        v = imp.vals.get(node.input[0])
        lay = make(imp, node, a)
        view = v.kind if v is not None and v.kind in ("nchw", "ncw") else "nhwc"
        imp.set(node.output[0], view, imp.layer(lay, imp.tensor(node.input[0], view)))
    return f


def _leaky(imp, node, a):
    from . import layers as L

    _only(imp, a, {"alpha": None})
    return L.LeakyReLU(negative_slope=float(a.get("alpha", 0.01)))


def _elu(imp, node, a):
    from . import layers as L

    _only(imp, a, {"alpha": None})
    return L.ELU(alpha=float(a.get("alpha", 1.0)))


def _clip(imp, node, a):
    from . import layers as L

    _only(imp, a, {})
    if len(node.input) != 3 or not node.input[1] or not node.input[2]:
        imp.bad("Clip needs constant min and max")
    lo = imp.const(node.input[1], np.float32)
    hi = imp.const(node.input[2], np.float32)
    if lo.shape != () or hi.shape != () or float(lo) != 0.0 or not float(hi) > 0:
        imp.bad("only Clip(0, max) (a ReLU with max_value) is supported")
    return L.ReLU(max_value=float(hi))


def _reduce_pool(kind):
    def f(imp, node, a):
        from . import layers as L

        _only(imp, a, {"axes": None, "keepdims": (0, 1)})
        v = imp.vals.get(node.input[0])
        if v is not None and v.kind == "bidi_bm" and kind == "Average":
            return _bidi_merge(imp, node, v, "ave", axes=a.get("axes", []))
        t = imp.tensor(node.input[0])
        rank = len(t.shape)
        if len(node.input) > 1 or list(a.get("axes", [])) != list(range(1, rank - 1)) or \
                rank not in (3, 4):
            return _op_reduce_ops(imp, node, a)
        if kind == "Average" and rank == 3 and _mask_source(t) is not None:
            imp.bad("a plain average of a masked tensor (nncore's would skip the masked steps)")
        cls = f"Global{kind}Pooling{rank - 2}D"
        keep = bool(a.get("keepdims", 1))  # ONNX's default keeps them
        imp.set(node.output[0], "nhwc", imp.layer(getattr(L, cls)(keepdims=keep), t))
    return f


def _op_batch_norm(imp, node, a):
    from . import layers as L

    _only(imp, a, {"epsilon": None, "momentum": None, "training_mode": (0,)})
    if len(node.input) != 5 or len(node.output) != 1:
        imp.bad("only inference BatchNormalization (5 inputs, 1 output) is supported")
    v = imp.vals.get(node.input[0])
    view = v.kind if v is not None and v.kind in ("nchw", "ncw", "swap") else "nhwc"
    view = "ncw" if view == "swap" else view
    t = imp.tensor(node.input[0], view)
    if view == "nhwc" and len(t.shape) != 2:
        imp.bad("BatchNormalization of a channels-last value is read only for 2-D inputs")
    ws = [imp.const(x, np.float32) for x in node.input[1:]]
    lay = L.BatchNormalization(epsilon=float(a.get("epsilon", 1e-5)))
    imp.set(node.output[0], view, imp.layer(lay, t, ws))


def _op_layer_norm(imp, node, a):
    from . import layers as L

    _only(imp, a, {"axis": None, "epsilon": None, "stash_type": (1,)})
    if len(node.output) != 1 or len(node.input) != 3:
        imp.bad("only LayerNormalization(X, scale, bias) with one output is supported")
    v = imp.vals.get(node.input[0])
    view = v.kind if v is not None and v.kind in ("nchw", "ncw") else "nhwc"
    t = imp.tensor(node.input[0], view)
    rank = len(t.shape)
    # the value's axis i is the tensor's axis to_t[i] (a channels-first view is a transpose)
    to_t = {"nchw": [0, 3, 1, 2], "ncw": [0, 2, 1]}.get(view, list(range(rank)))
    ax = a.get("axis", -1)
    if not -rank < ax < rank or ax % rank == 0:
        imp.bad(f"axis {ax} of a rank-{rank} value (nncore normalizes non-batch axes)")
    v_axes = list(range(ax % rank, rank))  # ONNX: the trailing axes from `axis` on
    t_axes = [to_t[i] for i in v_axes]
    axes = sorted(t_axes)
    order = [t_axes.index(i) for i in axes]
    shape = tuple(t.shape[to_t[i]] for i in v_axes)
    ws = []
    for x in node.input[1:]:
        w = imp.const(x, np.float32)
        if w.shape != shape:
            imp.bad(f"scale/bias {x!r} of shape {w.shape} for normalized axes of shape "
                    f"{shape} (a broadcast one is not read)")
        ws.append(np.ascontiguousarray(np.transpose(w, order)))
    lay = L.LayerNormalization(axis=axes[0] if len(axes) == 1 else axes,
                               epsilon=float(a.get("epsilon", 1e-5)))
    imp.set(node.output[0], view, imp.layer(lay, t, ws))


def _op_bidi_reduce(mode):
    """ReduceSum (axes an input) / ReduceProd (axes an attribute): read only as the sum / mul
    merge of a bidirectional op."""
    def f(imp, node, a):
        v = imp.vals.get(node.input[0])
        if v is None or v.kind != "bidi_bm":
            if node.op_type == "ReduceSum":
                return _op_reduce_ops(imp, node, a)
            imp.bad(f"{node.op_type} is read only as the merge of a bidirectional recurrent op")
        _only(imp, a, {"axes": None, "keepdims": (0,)})
        axes = imp.const(node.input[1], np.int64).tolist() if len(node.input) > 1 else \
            a.get("axes", [])
        _bidi_merge(imp, node, v, mode, axes=axes)
    return f


def _op_instance_norm(imp, node, a):
    """InstanceNormalization (unit scale, zero bias) of x (N, ..., C) viewed as (N, G, S, C/G)
    by Reshape [0, -1, G, C/G] and Transpose [0, 2, 1, 3]: a GroupNormalization of x (its
    gamma / beta from the Mul / Add that follow the view back)."""
    from . import layers as L

    _only(imp, a, {"epsilon": None})
    if len(node.input) != 3 or len(node.output) != 1:
        imp.bad("InstanceNormalization needs X, scale and bias")
    t = imp.tensor(node.input[0])
    sc, bi = (imp.const(x, np.float32) for x in node.input[1:])
    perm_node = t.node
    src = perm_node.flat_inputs[0] if not perm_node.is_input else None
    if not (isinstance(perm_node.layer, L.Permute) and tuple(perm_node.layer.dims) == (2, 1, 3)
            and src is not None and not src.node.is_input and
            isinstance(src.node.layer, L.Reshape)):
        imp.bad("InstanceNormalization is read only on channel groups (Reshape [0, -1, G, C/G] "
                "then Transpose [0, 2, 1, 3]): a GroupNormalization")
    x = src.node.flat_inputs[0]
    target = tuple(src.node.layer.target_shape)
    c = x.shape[-1]
    if len(target) != 3 or target[0] != -1 or target[1] * target[2] != c or \
            sc.shape != (target[1],) or bi.shape != (target[1],) or np.any(sc != 1) or \
            np.any(bi != 0):
        imp.bad("InstanceNormalization is read only on channel groups with unit scale and "
                "zero bias (a GroupNormalization)")
    imp.set(node.output[0], "gn_t", x, groups=int(target[1]), eps=float(a.get("epsilon", 1e-5)),
            gamma=None, beta=None)


def _op_gather(imp, node, a):
    from . import layers as L

    v = imp.vals.get(node.input[0])
    if v is not None and v.kind == "bidi_yh_packed":  # a masked Bidirectional's final states
        _only(imp, a, {"axis": (0,)})
        k = imp.const(node.input[1], np.int64)
        if k.shape != () or int(k) not in (0, 1):
            imp.bad("a bidirectional op's states are read only one direction at a time")
        imp.set(node.output[0], "bidi_half", pending=v.extra["pending"], seq=False,
                half=int(k))
        return
    if v is not None and v.kind == "bidi_bm":  # merge_mode=None: one direction each
        _only(imp, a, {"axis": None})
        k = imp.const(node.input[1], np.int64)
        ax = int(a.get("axis", 0))
        if k.shape != () or int(k) not in (0, 1) or ax not in ((2, -2) if v.extra["seq"]
                                                               else (1, -2)):
            imp.bad("a bidirectional op's outputs are read only one direction at a time")
        return _bidi_merge(imp, node, v, None, index=int(k))
    if v is not None and v.kind == "shape":  # one dimension of a Shape
        _only(imp, a, {"axis": (0,)})
        k = imp.const(node.input[1], np.int64)
        dims = v.extra["dims"]
        if k.ndim > 1 or v.extra["scalar"] or \
                not all(-len(dims) <= int(i) < len(dims) for i in k.reshape(-1)):
            imp.bad("a Shape's dimensions are read with constant indices")
        imp.set(node.output[0], "shape", dims=[dims[int(i)] for i in k.reshape(-1)],
                scalar=k.ndim == 0)
        return
    if v is not None and v.kind == "nhwc" and node.input[1] in imp.consts and \
            int(a.get("axis", 0)) in (1, -2) and len(v.t.shape) == 3:
        return _take_step(imp, node, v.t)
    table = imp.consts.get(node.input[0])
    table = imp.xconsts.get(node.input[0]) if table is None else table
    if table is not None and table.ndim == 1 and (table.dtype == np.int64 or
                                                  table.dtype.kind == "O"):
        return _gather_vocabulary(imp, node, a, table)
    _only(imp, a, {"axis": (0,)})
    w = imp.const(node.input[0], np.float32)
    if w.ndim != 2:
        imp.bad("Gather is read only as an Embedding (a 2-D constant table)")
    t = imp.tensor(node.input[1])
    lay = L.Embedding(w.shape[0], w.shape[1],
                      mask_zero=node.output[0] in imp.motifs.mask_zero)
    imp.set(node.output[0], "nhwc", imp.layer(lay, t, [w]))


def _op_shape(imp, node, a):
    _only(imp, a, {})
    v = imp.vals.get(node.input[0])
    if v is None or v.kind not in ("nhwc", "nchw", "ncw", "tmajor"):
        imp.bad("Shape is read only of a tensor")
    t = v.t
    if v.kind == "nhwc":
        t = imp.tensor(node.input[0])
    dims = [None] + [int(d) for d in t.shape[1:]]
    if v.kind in ("nchw", "ncw"):  # the value is the tensor's channels-first transpose
        dims = [dims[0], dims[-1]] + dims[1:-1]
    elif v.kind == "tmajor":  # (steps, batch, features)
        dims = [dims[1], None, dims[2]]
    imp.set(node.output[0], "shape", dims=dims, scalar=False, src=node.input[0])


def _op_constant_of_shape(imp, node, a):
    _only(imp, a, {"value": None})
    v = imp.vals.get(node.input[0])
    val = imp.onnx.numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
    if v is None or v.kind != "shape" or v.extra["scalar"] or val.size != 1 or \
            val.dtype != np.float32 or float(val.reshape(-1)[0]) != 0.0:
        imp.bad("ConstantOfShape is read only as float32 zeros of a shape computed from a "
                "tensor (an RNN's initial state)")
    imp.set(node.output[0], "zeros", dims=v.extra["dims"], src=v.extra.get("src"))


def _op_expand(imp, node, a):
    _only(imp, a, {})
    c = imp.consts.get(node.input[0])
    v = imp.vals.get(node.input[1])
    if c is None or c.dtype != np.float32 or c.size != 1 or float(c.reshape(-1)[0]) != 0.0 \
            or v is None or v.kind != "shape" or v.extra["scalar"]:
        imp.bad("Expand is read only as float32 zeros of a shape computed from a tensor (an "
                "RNN's initial state)")
    imp.set(node.output[0], "zeros", dims=v.extra["dims"])


# ---- ops that are no nncore layer: a Lambda of nncore.ops (predicts and trains; such a model is
# saved only to ONNX again, since a Lambda's function is saved by a registered name) ----------
_UNARY = {"Exp": "exp", "Log": "log", "Abs": "abs", "Neg": "negative", "Reciprocal": None,
          "Sqrt": "sqrt"}


def _ops_lambda(imp, node, fn, xs_names):
    """A Lambda running fn on the tensors of xs_names (channels-first views kept for a single
    elementwise input)."""
    from . import layers as L

    v = imp.vals.get(xs_names[0])
    view = v.kind if len(xs_names) == 1 and v is not None and v.kind in ("nchw", "ncw") \
        else "nhwc"
    ts = [imp.tensor(x, view) for x in xs_names]
    lay = L.Lambda(fn if len(ts) > 1 else (lambda t: fn(t)), name=imp.fresh_name(node.op_type))
    return view, imp.layer(lay, ts if len(ts) > 1 else ts[0])


def _unary_ops(name):
    def f(imp, node, a):
        from . import ops

        _only(imp, a, {})
        op = (lambda t: ops.divide(1.0, t)) if name is None else getattr(ops, name)
        view, y = _ops_lambda(imp, node, op, [node.input[0]])
        imp.set(node.output[0], view, y)
    return f


def _op_pow(imp, node, a):
    from . import ops

    _only(imp, a, {})
    if node.input[1] not in imp.consts or imp.consts[node.input[1]].size != 1:
        imp.bad("Pow is read with a constant scalar exponent")
    e = float(imp.consts[node.input[1]].reshape(-1)[0])
    view, y = _ops_lambda(imp, node, lambda t: ops.power(t, e), [node.input[0]])
    imp.set(node.output[0], view, y)


def _op_reduce_ops(imp, node, a):
    """ReduceMean/Max/Min/Sum over any axes of a channels-last tensor (not a global pooling)."""
    from . import ops

    _only(imp, a, {"axes": None, "keepdims": (0, 1), "noop_with_empty_axes": (0,)})
    t = imp.tensor(node.input[0])
    rank = len(t.shape)
    axes = imp.const(node.input[1], np.int64).tolist() if len(node.input) > 1 and \
        node.input[1] else list(a.get("axes", range(rank)))
    axes = sorted({int(x) % rank for x in axes})
    if 0 in axes:
        imp.bad(f"{node.op_type} over the batch axis (a layer computes per sample)")
    keep = bool(a.get("keepdims", 1))
    fn = {"ReduceMean": ops.mean, "ReduceMax": ops.max, "ReduceMin": ops.min,
          "ReduceSum": ops.sum}[node.op_type]
    _, y = _ops_lambda(imp, node, lambda x: fn(x, axis=tuple(axes), keepdims=keep),
                       [node.input[0]])
    imp.set(node.output[0], "nhwc", y)


def _op_nary_ops(name):
    """Comparisons, logical and/or, Where: a Lambda of nncore.ops over the tensor inputs, the
    constant ones captured (scalars or arrays)."""
    def f(imp, node, a):
        from . import ops

        _only(imp, a, {})
        fn = getattr(ops, name)
        ins = list(node.input)
        tensors = [x for x in ins if x not in imp.consts and x not in imp.xconsts]
        if not tensors:
            imp.bad(f"{node.op_type} of constants only")
        fixed = {k: np.asarray(imp.consts.get(x, imp.xconsts.get(x))) for k, x in
                 enumerate(ins) if x not in tensors}

        tensors = list(dict.fromkeys(tensors))  # one Lambda input per distinct tensor
        slot = {k: tensors.index(x) for k, x in enumerate(ins) if k not in fixed}

        def run(ts):
            ts = ts if isinstance(ts, (list, tuple)) else [ts]
            return fn(*[fixed[k] if k in fixed else ts[slot[k]] for k in range(len(ins))])
        view, y = _ops_lambda(imp, node, run, tensors)
        imp.set(node.output[0], "nhwc" if len(tensors) > 1 else view, y)
    return f


def _op_axis_ops(name):
    """LogSoftmax / ArgMax / ArgMin along one axis of a channels-last tensor."""
    def f(imp, node, a):
        from . import ops

        allowed = {"axis": None} if name == "log_softmax" else \
            {"axis": None, "keepdims": (0, 1), "select_last_index": (0,)}
        _only(imp, a, allowed)
        t = imp.tensor(node.input[0])
        rank = len(t.shape)
        ax = int(a.get("axis", -1 if name == "log_softmax" else 0))
        if not -rank <= ax < rank or ax % rank == 0:
            imp.bad(f"{node.op_type} over axis {ax} (a layer computes per sample)")
        ax %= rank
        if name == "log_softmax":
            fn = lambda x: ops.log_softmax(x, axis=ax)  # noqa: E731
        else:
            keep = bool(a.get("keepdims", 1))
            op = getattr(ops, name)
            fn = (lambda x: ops.expand_dims(op(x, axis=ax), ax)) if keep else \
                (lambda x: op(x, axis=ax))
        _, y = _ops_lambda(imp, node, fn, [node.input[0]])
        imp.set(node.output[0], "nhwc", y)
    return f


def _generic_fn(imp, node, a, consts, shape):
    """The function computing `node` exactly as ONNX defines it, with nncore.ops, on the node's
    tensor inputs (constants captured from `consts`, input index -> array); None when the op or
    one of its attributes is outside what it knows, or when it would mix the samples of a batch
    (the tensor input's `shape` has the batch axis first). A list of functions for several
    outputs."""
    from . import ops

    op, n_in = node.op_type, len(node.input)
    shape = list(shape)
    rank = len(shape)

    def c(k, default=None):
        return consts.get(k, default) if k < n_in and node.input[k] else default

    def ints(v):
        return [int(x) for x in np.asarray(v).reshape(-1)]

    if op == "Not" and not a:
        return lambda x: ops.equal(ops.cast(x, "float32"), 0.0)
    if op == "Cast" and set(a) == {"to"}:
        try:
            dt = np.dtype(imp.onnx.helper.tensor_dtype_to_np_dtype(a["to"]))
        except (KeyError, TypeError):
            return None
        if dt.kind not in "biuf":
            return None
        return lambda x: ops.cast(x, dt.name)
    if op == "Transpose" and set(a) == {"perm"} and list(a["perm"])[:1] == [0]:
        perm = list(a["perm"])
        return lambda x: ops.transpose(x, perm)
    if op in ("Squeeze", "Unsqueeze") and not a and c(1) is not None:
        axes = ints(c(1))
        out_rank = rank - len(axes) if op == "Squeeze" else rank + len(axes)
        if any(k % (rank if op == "Squeeze" else out_rank) == 0 for k in axes):
            return None  # the batch axis stays first
        if op == "Squeeze":
            return lambda x: ops.squeeze(x, axis=tuple(axes))

        def unsqueeze(x):
            rank = len(x.shape) + len(axes)
            for ax in sorted(int(k) % rank for k in axes):
                x = ops.expand_dims(x, ax)
            return x
        return unsqueeze
    if op == "Reshape" and set(a) <= {"allowzero"} and not a.get("allowzero") and \
            c(1) is not None and rank and None not in shape[1:]:
        target = ints(c(1))
        target = [shape[k] if d == 0 and 0 < k < rank else d for k, d in enumerate(target)]
        rest, per = target[1:], int(np.prod(shape[1:]))
        if not target or target[0] not in (0, -1) or 0 in rest or rest.count(-1) > \
                (1 if target[0] == 0 else 0) or -1 not in rest and int(np.prod(rest)) != per:
            return None  # the batch axis stays first, each sample keeps its values
        rest = [per // int(np.prod([d for d in rest if d != -1])) if d == -1 else d
                for d in rest]
        return lambda x: ops.reshape(x, (-1, *rest))
    if op == "Slice" and not a and c(1) is not None and c(2) is not None:
        starts, ends = ints(c(1)), ints(c(2))
        axes = ints(c(3)) if c(3) is not None else list(range(len(starts)))
        steps = ints(c(4)) if c(4) is not None else [1] * len(starts)
        if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps or \
                any(ax % rank == 0 for ax in axes):
            return None
        axes = [ax % rank for ax in axes]
        big = 2 ** 62

        def sl(x):
            idx = [slice(None)] * len(x.shape)
            for b, e, ax, st in zip(starts, ends, axes, steps):
                b = None if (st > 0 and b <= -big) or (st < 0 and b >= big) else b
                e = None if (st > 0 and e >= big) or (st < 0 and e <= -big) else e
                idx[ax] = slice(b, e, st)
            return x[tuple(idx)]
        return sl
    if op in ("Gather", "GatherElements") and set(a) <= {"axis"} and c(1) is not None and \
            np.asarray(c(1)).dtype.kind in "iu":
        idx, ax = np.asarray(c(1)).astype(np.int64), int(a.get("axis", 0))
        if ax % rank == 0 or op == "GatherElements" and (idx.ndim != rank or idx.shape[0] != 1):
            return None
        if op == "Gather":
            return lambda x: ops.take(x, idx, axis=ax)
        return lambda x: ops.take_along_axis(x, idx, axis=ax)
    if op == "Split" and set(a) <= {"axis", "num_outputs"}:
        ax, n_out = int(a.get("axis", 0)), len(node.output)
        if ax % rank == 0:
            return None
        sizes = ints(c(1)) if c(1) is not None else None

        def part(k):
            def f(x):
                if sizes is not None:
                    cuts = list(np.cumsum(sizes)[:-1])
                else:
                    size = x.shape[ax]
                    if size is None:
                        raise ValueError("ONNX Split of an axis of unknown length")
                    per = -(-size // n_out)
                    cuts = [per * (i + 1) for i in range(n_out - 1)]
                return ops.split(x, [int(u) for u in cuts], axis=ax)[k]
            return f
        return [part(k) for k in range(n_out)]
    return None


def _generic(imp, node, a):
    """An op nncore's layer patterns do not read: when all its inputs are plain tensors or
    constants and `_generic_fn` knows the op, a Lambda of nncore.ops per output (predicts and
    trains through nncore.ops; saved only to ONNX again, as the other op Lambdas). True if
    made."""
    from . import layers as L

    v = imp.vals.get(node.input[0]) if node.input else None
    if node.op_type == "ConstantOfShape" and v is not None and v.kind == "shape" and \
            v.extra.get("src") and set(a) <= {"value"}:  # a full-like of the Shape's tensor
        from . import ops

        val = imp.onnx.numpy_helper.to_array(a["value"]) if "value" in a else \
            np.zeros(1, np.float32)
        if val.size != 1 or val.dtype.kind not in "biuf":
            return False
        fill, dt = float(val.reshape(-1)[0]), val.dtype.name
        y = imp.layer(L.Lambda(lambda x: ops.cast(ops.ones_like(x), dt) * np.array(fill, dt),
                               name=imp.fresh_name(node.op_type)), imp.tensor(v.extra["src"]))
        imp.set(node.output[0], "nhwc", y)
        return True
    consts, tensors = {}, []
    for k, name in enumerate(node.input):
        if not name:
            continue
        if name in imp.consts:
            consts[k] = imp.consts[name]
        elif k == 0 and name in imp.vals:
            tensors.append(name)
        else:
            return False  # a tensor where only a constant is read (shapes, indices...)
    if len(tensors) != 1:
        return False
    try:
        t = imp.tensor(tensors[0])
    except ValueError:
        return False
    fns = _generic_fn(imp, node, a, consts, t.shape)
    if fns is None:
        return False
    made = []
    for out, fn in zip(node.output, fns if isinstance(fns, list) else [fns]):
        try:
            y = imp.layer(L.Lambda(fn, name=imp.fresh_name(node.op_type)), t)
        except Exception:  # the op does not apply to this tensor: the pattern's own error
            return False
        made.append((out, y))
    for out, y in made:
        imp.set(out, "nhwc", y)
    return True


_GENERIC = ("Not", "Cast", "Transpose", "Squeeze", "Unsqueeze", "Reshape", "Slice", "Gather",
            "GatherElements", "Split")


def _take_step(imp, node, t):
    """x[:, k] of a (batch, steps, features) tensor: the step cut out (Cropping1D) and the
    steps axis dropped (Reshape)."""
    from . import layers as L

    k = imp.const(node.input[1], np.int64)
    steps = t.shape[1]
    if k.shape != () or steps is None or not -steps <= int(k) < steps:
        imp.bad("a step of a sequence is read with one constant index of a known length")
    k = int(k) % steps
    y = imp.layer(L.Cropping1D((k, steps - 1 - k)), t)
    imp.set(node.output[0], "nhwc", imp.layer(L.Reshape((t.shape[2],)), y))


def _spatial(imp, t, what):
    n = len(t.shape) - 2
    if n not in (1, 2):
        imp.bad(f"{what} is read only on (batch, steps, channels) or (batch, H, W, channels)")
    return n


def _op_pad(imp, node, a):
    from . import layers as L

    _only(imp, a, {"mode": ("constant", b"constant")})
    t = imp.tensor(node.input[0])
    n = _spatial(imp, t, "Pad")
    pads = imp.const(node.input[1], np.int64).tolist()
    if len(node.input) > 2 and node.input[2]:
        cv = imp.const(node.input[2], np.float32)
        if cv.size != 1 or float(cv.reshape(())) != 0.0:
            imp.bad("only zero padding is supported")
    if len(node.input) > 3 or len(pads) != 2 * (n + 2) or pads[0] or pads[n + 1] or \
            pads[n + 2] or pads[-1] or min(pads) < 0:
        imp.bad(f"pads {pads} are not a zero padding of the spatial axes")
    pairs = tuple((pads[1 + i], pads[n + 3 + i]) for i in range(n))
    lay = getattr(L, f"ZeroPadding{n}D")(pairs[0] if n == 1 else pairs)
    imp.set(node.output[0], "nhwc", imp.layer(lay, t))


def _op_slice(imp, node, a):
    from . import layers as L

    _only(imp, a, {})
    v = imp.vals.get(node.input[0])
    if v is not None and v.kind == "rnn_seq_tm_rev":  # go_backwards: read in reading order
        if len(node.input) != 5 or [imp.const(x, np.int64).tolist() for x in node.input[1:]] \
                != [[-1], [-np.iinfo(np.int64).max], [0], [-1]]:
            imp.bad("a reverse-direction sequence is read only reversed along time")
        imp.set(node.output[0], "rnn_seq_tm", v.t)
        return
    if v is not None and v.kind == "rnn_seq_tm" and len(node.input) in (4, 5) and \
            imp.const(node.input[3], np.int64).tolist() == [0] and (
                len(node.input) == 4 or imp.const(node.input[4], np.int64).tolist() == [1]):
        # one step of a time-major sequence (another exporter's last output step)
        steps = v.t.shape[1]
        (b,), (e,) = (imp.const(x, np.int64).reshape(1).tolist() for x in node.input[1:3])
        k = b % steps if steps is not None and -steps <= b < steps else None
        if k is None or min(e, steps) - (k if e >= 0 else k - steps) != 1 and \
                not (e >= steps and k == steps - 1):
            imp.bad("a time-major sequence is sliced only to one step")
        imp.set(node.output[0], "tm_step", v.t, k=k)
        return
    if v is not None and v.kind == "shape" and not v.extra["scalar"]:  # part of a Shape
        if len(node.input) not in (3, 4, 5) or len(node.input) > 3 and \
                imp.const(node.input[3], np.int64).tolist() != [0] or len(node.input) == 5 \
                and imp.const(node.input[4], np.int64).tolist() != [1]:
            imp.bad("a Shape is sliced only along its one axis, step 1")
        (b,), (e,) = (imp.const(x, np.int64).reshape(1).tolist() for x in node.input[1:3])
        imp.set(node.output[0], "shape", dims=v.extra["dims"][b:e], scalar=False)
        return
    t = imp.tensor(node.input[0])
    n = _spatial(imp, t, "Slice")
    if len(node.input) not in (4, 5):
        imp.bad("Slice needs constant starts, ends and axes")
    starts, ends, axes = (imp.const(x, np.int64).tolist() for x in node.input[1:4])
    if len(node.input) == 5 and node.input[4] and \
            imp.const(node.input[4], np.int64).tolist() != [1] * len(axes):
        imp.bad("only Slice with steps 1 is supported")
    if axes != list(range(1, n + 1)) or len(starts) != n or len(ends) != n:
        imp.bad("Slice is read only as a cropping of every spatial axis")
    pairs = []
    for i in range(n):
        dim = t.shape[1 + i]
        b, e = starts[i], ends[i]
        if not 0 <= b <= e <= dim or b == e:
            imp.bad(f"Slice bounds {b}:{e} of axis {1 + i} (size {dim}) are not a cropping")
        pairs.append((b, dim - e))
    lay = getattr(L, f"Cropping{n}D")(pairs[0] if n == 1 else tuple(pairs))
    imp.set(node.output[0], "nhwc", imp.layer(lay, t))


def _op_resize(imp, node, a):
    from . import layers as L

    mode = a.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode == "linear":  # nncore's bilinear UpSampling2D: half-pixel centres, edges clamped
        _only(imp, a, {"mode": None,
                       "coordinate_transformation_mode": ("half_pixel", b"half_pixel")})
    else:
        _only(imp, a, {"mode": ("nearest", b"nearest"),
                       "coordinate_transformation_mode": ("asymmetric", b"asymmetric"),
                       "nearest_mode": ("floor", b"floor")})
    if len(node.input) == 4 and not node.input[2] and mode == "linear":
        return _resize_to_size(imp, node)
    t = imp.tensor(node.input[0])
    n = _spatial(imp, t, "Resize")
    if len(node.input) != 3 or (node.input[1] and node.input[1] not in imp.consts):
        imp.bad("only Resize(x, roi='', scales) is supported")
    sc = imp.const(node.input[2], np.float32).tolist()
    if len(sc) != n + 2 or sc[0] != 1 or sc[-1] != 1 or \
            any(v != int(v) or v < 1 for v in sc[1:-1]):
        imp.bad(f"scales {sc} are not an integer upsampling of the spatial axes")
    size = [int(v) for v in sc[1:-1]]
    if mode == "linear" and n != 2:
        imp.bad("a linear Resize is read only as a 2-D bilinear upsampling")
    lay = (L.UpSampling2D(tuple(size), interpolation="bilinear") if mode == "linear" else
           getattr(L, f"UpSampling{n}D")(size[0] if n == 1 else tuple(size)))
    imp.set(node.output[0], "nhwc", imp.layer(lay, t))


def _resize_to_size(imp, node):
    """A bilinear Resize to a fixed (height, width), of an image or of its Slice: read only as
    RandomCrop at inference (its centre window of the target's aspect ratio, then the resize),
    checked against that rule for the image's size."""
    from . import layers as L

    sz = imp.vals.get(node.input[3])
    x = node.input[0]
    if node.input[1] or sz is None or sz.kind != "shape" or len(sz.extra["dims"]) != 4 or \
            sz.extra["dims"][0] is not None or None in sz.extra["dims"][1:]:
        imp.bad("a Resize to sizes is read only with sizes (batch, height, width, channels) "
                "computed from its input (RandomCrop's export)")
    _, th, tw, c = sz.extra["dims"]
    sl = imp.motifs.prod.get(x)
    window = None
    if sl is not None and sl.op_type == "Slice" and len(sl.input) == 4 and \
            imp.const(sl.input[3], np.int64).tolist() == [1, 2]:
        window = [imp.const(v, np.int64).tolist() for v in sl.input[1:3]]
        x = sl.input[0]
    t = imp.tensor(x)
    if len(t.shape) != 4 or t.shape[3] != c or None in t.shape[1:3]:
        imp.bad("the resized value is not a batch of images of known size")
    h, w = t.shape[1], t.shape[2]
    ch = max(min(h, int(float(w * th) / tw)), 1)  # RandomCrop's centre window
    cw = max(min(w, int(float(h * tw) / th)), 1)
    hs, ws = int(float(h - ch) / 2), int(float(w - cw) / 2)
    want = [[hs, ws], [hs + ch, ws + cw]] if (ch, cw) != (h, w) else None
    if window != want:
        imp.bad(f"a Resize to {th}x{tw} of the window {window} of a {h}x{w} image is not "
                "RandomCrop's centre window")
    imp.set(node.output[0], "nhwc", imp.layer(L.RandomCrop(th, tw), t))


def _op_prelu(imp, node, a):
    from . import layers as L

    _only(imp, a, {})
    t = imp.tensor(node.input[0])
    slope = imp.const(node.input[1], np.float32)
    feat = tuple(t.shape[1:])
    if slope.ndim != len(feat) or any(d not in (1, f) for d, f in zip(slope.shape, feat)):
        imp.bad(f"PRelu slope of shape {slope.shape} is not a per-feature alpha for {feat}")
    shared = [i + 1 for i, (d, f) in enumerate(zip(slope.shape, feat)) if d == 1 and f != 1]
    lay = L.PReLU(shared_axes=shared or None)
    imp.set(node.output[0], "nhwc", imp.layer(lay, t, [slope]))

# ---- masks: multi-node motifs read as one ---------------------------------------------------
# nncore's exporter writes a mask as ONNX ops beside the values (saving/onnx_export.py). nncore's
# graph carries masks itself, so reading one back is recognising the ops that make it (Masking,
# Embedding mask_zero) and the ops that apply it (a packed recurrent layer, a masked average):
# each motif is matched whole, node by node, before the walk; its nodes are then skipped and its
# anchor node makes the layer. A mask is read only where nncore's own propagation gives the
# same mask to the same tensor (_check_mask_source); anything else stays an error.
class _Motifs:
    def __init__(self, imp, nodes):
        self.imp = imp
        self.prod = {o: n for n in nodes for o in n.output if o}
        self.cons: dict = {}
        for n in nodes:
            for x in n.input:
                self.cons.setdefault(x, []).append(n)
        self.absorbed: set = set()
        self.anchor: dict = {}
        self.mask_owner: dict = {}   # mask value -> the value whose tensor carries it in nncore
        self.mask_zero: set = set()  # Gather outputs that are Embedding(mask_zero=True)
        self.packed: dict = {}       # id(RNN node) -> its motif
        for n in nodes:
            if n.op_type == "Mul":
                self._masking(n)
            elif n.op_type == "Not":
                self._embedding_mask(n)
            elif n.op_type == "Where":
                self._discretization(n)
                self._relu(n)
            elif n.op_type == "Cast":
                self._encoding(n)
        for n in nodes:
            if n.op_type in ("RNN", "LSTM", "GRU") and len(n.input) > 4 and n.input[4]:
                imp.node = n
                if not self._packed_rnn(n):
                    imp.bad("sequence_lens is read only as nncore's export of a masked "
                            "single-direction layer")
                imp.node = None
        for n in nodes:
            if n.op_type == "Mul":
                self._packed_seq(n)
            elif n.op_type == "ReduceSum":
                self._masked_average(n)

    # matching helpers: P(name, op, attr=value...) -> the producing node or None; C -> const
    def P(self, name, op, **want):
        n = self.prod.get(name)
        if n is None or n.op_type != op:
            return None
        a = self.imp.attrs(n)
        for k, v in want.items():
            got = a.get(k)
            got = got.decode() if isinstance(got, bytes) else got
            if isinstance(v, list):
                got = None if got is None else [int(x) for x in got]
            if got != v:
                return None
        return n

    def C(self, name, value, dtype):
        c = self.imp.consts.get(name)
        return c is not None and c.dtype == dtype and \
            np.array_equal(c.reshape(-1), np.asarray(value, dtype).reshape(-1))

    def _take(self, anchor, fn, info, nodes):
        if id(anchor) in self.anchor or any(id(n) in self.absorbed for n in nodes):
            return False
        self.anchor[id(anchor)] = (fn, info)
        self.absorbed.update(id(n) for n in nodes)
        return True

    def _masking(self, mul):
        T = self.imp.onnx.TensorProto
        if len(mul.input) != 2:
            return
        x, kf = mul.input
        rmax = self.P(kf, "ReduceMax", keepdims=1, axes=[-1])
        cast = rmax and self.P(rmax.input[0], "Cast", to=T.FLOAT)
        nt = cast and self.P(cast.input[0], "Not")
        eq = nt and self.P(nt.input[0], "Equal")
        if not eq or eq.input[0] != x or len(eq.input) != 2:
            return
        mv = self.imp.consts.get(eq.input[1])
        if mv is None or mv.dtype != np.float32 or mv.size != 1:
            return
        nodes, masks = [eq, nt, cast, rmax], []
        for sq in self.cons.get(kf, []):
            if sq is mul:
                continue
            cb = self._only_consumer(sq.output[0], "Cast")
            if sq.op_type != "Squeeze" or len(sq.input) != 2 or \
                    not self.C(sq.input[1], [-1], np.int64) or cb is None or \
                    self.imp.attrs(cb).get("to") != T.BOOL:
                return
            nodes += [sq, cb]
            masks.append(cb.output[0])
        info = {"x": x, "mask_value": float(mv.reshape(-1)[0]), "and": []}
        for m in list(masks):
            for an in self.cons.get(m, []):  # keep & the incoming mask (Masking after masking)
                if an.op_type == "And" and len(an.input) == 2 and an.input[0] == m:
                    nodes.append(an)
                    info["and"].append(an.input[1])
                    masks.append(an.output[0])
        if self._take(mul, _motif_masking, info, nodes):
            for m in masks:
                self.mask_owner[m] = mul.output[0]

    def _xconst(self, name):
        c = self.imp.consts.get(name)
        return c if c is not None else self.imp.xconsts.get(name)

    def _sole(self, name, node):
        """`node` is the only reader of `name` (an inner value of a motif)."""
        return self.cons.get(name, []) == [node] and self.imp.uses.get(name) == 1

    def _discretization(self, where):
        """nncore's Discretization: Where(IsNaN(xd), K, ReduceSum(Cast<int64>(GreaterOrEqual(
        Unsqueeze(xd, -1), boundaries)), -1)) with xd = Cast<double>(x)."""
        T = self.imp.onnx.TensorProto
        if len(where.input) != 3:
            return
        isnan = self.P(where.input[0], "IsNaN")
        rs = self.P(where.input[2], "ReduceSum", keepdims=0)
        ci = rs and len(rs.input) == 2 and self.C(rs.input[1], [-1], np.int64) and \
            self.P(rs.input[0], "Cast", to=T.INT64)
        ge = ci and self.P(ci.input[0], "GreaterOrEqual")
        un = ge and self.P(ge.input[0], "Unsqueeze")
        if not (isnan and un and len(un.input) == 2 and self.C(un.input[1], [-1], np.int64)):
            return
        xd = un.input[0]
        cd = self.P(xd, "Cast", to=T.DOUBLE)
        b = self._xconst(ge.input[1])
        k = self.imp.consts.get(where.input[1])
        if not cd or isnan.input[0] != xd or b is None or b.dtype != np.float64 or \
                b.ndim != 1 or not np.all(np.isfinite(b)) or np.any(np.diff(b) < 0) or \
                k is None or k.dtype != np.int64 or k.size != 1 or int(k.reshape(-1)[0]) != b.size:
            return
        if sorted(id(n) for n in self.cons.get(xd, [])) != sorted((id(isnan), id(un))) or \
                not all(self._sole(v, n) for v, n in ((un.output[0], ge), (ge.output[0], ci),
                                                      (ci.output[0], rs),
                                                      (rs.output[0], where),
                                                      (isnan.output[0], where))):
            return
        self._take(where, _motif_discretization, {"x": cd.input[0], "b": b.tolist()},
                   [cd, isnan, un, ge, ci, rs])

    def _scalar(self, name):
        c = self.imp.consts.get(name)
        if c is None or c.dtype != np.float32 or c.size != 1 or not np.isfinite(c).all():
            return None
        return float(c.reshape(-1)[0])

    def _relu(self, where):
        """nncore's ReLU with a threshold, a slope and/or a cap: Where(Greater(x, t), x,
        Mul(Sub(x, t) (or x when t = 0), slope)), then Min(., max_value) when capped."""
        if len(where.input) != 3 or id(where) in self.absorbed:
            return
        ge = self.P(where.input[0], "Greater")
        mul = self.P(where.input[2], "Mul")
        if not ge or not mul or len(ge.input) != 2 or len(mul.input) != 2:
            return
        x, thr, slope = ge.input[0], self._scalar(ge.input[1]), self._scalar(mul.input[1])
        if where.input[1] != x or thr is None or slope is None:
            return
        own = [ge, mul]
        if thr != 0.0:
            sub = self.P(mul.input[0], "Sub")
            if not sub or list(sub.input) != [x, ge.input[1]]:
                return
            own.append(sub)
        elif mul.input[0] != x:
            return
        if not all(self._sole(n.output[0], c) for n, c in
                   zip(own, [where, where] + ([mul] if thr != 0.0 else []))):
            return
        top, anchor = None, where
        users = self.cons.get(where.output[0], [])
        if len(users) == 1 and users[0].op_type == "Min" and len(users[0].input) == 2 and \
                users[0].input[0] == where.output[0] and \
                self._scalar(users[0].input[1]) is not None:
            top, anchor = self._scalar(users[0].input[1]), users[0]
            own.append(where)
        self._take(anchor, _motif_relu, {"x": x, "negative_slope": slope, "threshold": thr,
                                         "max_value": top}, own)

    def _encoding(self, cast):
        """nncore's one_hot / multi_hot / count: Cast<float>(Equal(Unsqueeze(idx', -1),
        0..depth-1)) with idx' = Squeeze(idx, 1) (one_hot of (B, 1)) or Reshape(idx, (0, -1))
        then ReduceMax / ReduceSum over axis 1 (multi_hot / count), or idx itself (one_hot)."""
        T = self.imp.onnx.TensorProto
        if self.imp.attrs(cast).get("to") != T.FLOAT:
            return
        eq = self.P(cast.input[0], "Equal")
        un = eq and len(eq.input) == 2 and self.P(eq.input[0], "Unsqueeze")
        if not un or len(un.input) != 2 or not self.C(un.input[1], [-1], np.int64):
            return
        bins = self._xconst(eq.input[1])
        if bins is None or bins.ndim != 1 or bins.dtype.kind not in "iuf" or bins.size < 1 or \
                not np.array_equal(bins, np.arange(bins.size)):
            return
        nodes, idx, squeezed = [eq, un], un.input[0], False
        sq = self.P(idx, "Squeeze")
        rs = self.P(idx, "Reshape")
        if sq and len(sq.input) == 2 and self.C(sq.input[1], [1], np.int64) and \
                self._sole(idx, un):
            nodes.append(sq)
            idx, squeezed = sq.input[0], True
        anchor, mode = cast, "one_hot"
        if rs and len(rs.input) == 2 and self.C(rs.input[1], [0, -1], np.int64) and \
                self._sole(idx, un):
            red = self.cons.get(cast.output[0], [])
            if len(red) != 1 or not self._sole(cast.output[0], red[0]):
                return
            if self.P(red[0].output[0], "ReduceMax", keepdims=0, axes=[1]):
                mode = "multi_hot"
            elif self.P(red[0].output[0], "ReduceSum", keepdims=0) and \
                    len(red[0].input) == 2 and self.C(red[0].input[1], [1], np.int64):
                mode = "count"
            else:
                return
            nodes += [rs, cast]
            idx, anchor = rs.input[0], red[0]
        if not (self._sole(un.output[0], eq) and self._sole(eq.output[0], cast)):
            return
        self._take(anchor, _motif_encoding, {"idx": idx, "depth": int(bins.size), "mode": mode,
                                             "squeezed": squeezed}, nodes)

    def _only_consumer(self, name, op):
        c = self.cons.get(name, [])
        return c[0] if len(c) == 1 and c[0].op_type == op else None

    def _embedding_mask(self, nt):
        T = self.imp.onnx.TensorProto
        eq = self.P(nt.input[0], "Equal")
        if not eq or len(eq.input) != 2 or not self.C(eq.input[1], [0], np.int64):
            return
        c2 = self.P(eq.input[0], "Cast", to=T.INT64)
        if not c2:
            return
        casts = [c for c in self.cons.get(c2.input[0], []) if c is not c2 and
                 c.op_type == "Cast" and self.imp.attrs(c).get("to") == T.INT64]
        owners = [n for c in casts for n in self.cons.get(c.output[0], [])
                  if n.op_type == "Gather" and len(n.input) == 2 and n.input[1] == c.output[0]]
        if len(owners) != 1:
            return
        if self._take(nt, _motif_skip, None, [eq, c2]):
            self.mask_owner[nt.output[0]] = owners[0].output[0]
            self.mask_zero.add(owners[0].output[0])

    def _reversed(self, name):
        """The value read backwards along axis 1 (nncore's go_backwards Slice), or None."""
        sl = self.P(name, "Slice")
        if sl and len(sl.input) == 5 and self.C(sl.input[1], [-1], np.int64) and \
                self.C(sl.input[2], [-np.iinfo(np.int64).max], np.int64) and \
                self.C(sl.input[3], [1], np.int64) and self.C(sl.input[4], [-1], np.int64):
            return sl
        return None

    def _packed_rnn(self, rnn):
        T = self.imp.onnx.TensorProto
        tr = self.P(rnn.input[0], "Transpose", perm=[1, 0, 2])
        ge = tr and self.P(tr.input[0], "GatherElements", axis=1)
        if not ge:
            return False
        x0, idx = ge.input
        ex = self.P(idx, "Expand")
        un = ex and self.P(ex.input[0], "Unsqueeze")
        sh = ex and self.P(ex.input[1], "Shape")
        tk = un and self.P(un.input[0], "TopK", axis=1, largest=0, sorted=1)
        if not (tk and sh and sh.input[0] == x0 and un.input[0] == tk.output[1] and
                self.C(un.input[1], [2], np.int64)):
            return False
        k = self.imp.consts.get(tk.input[1])
        if k is None or k.dtype != np.int64 or k.size != 1:
            return False
        steps = int(k.reshape(-1)[0])
        add = self.P(tk.input[0], "Add")
        mul = add and self.P(add.input[0], "Mul")
        sub = mul and self.P(mul.input[0], "Sub")
        cf = sub and self.P(sub.input[1], "Cast", to=T.FLOAT)
        cl = self.P(rnn.input[4], "Cast", to=T.INT32)
        rs = cl and self.P(cl.input[0], "ReduceSum", keepdims=0)
        ki = rs and self.P(rs.input[0], "Cast", to=T.INT64)
        if not (cf and ki and ki.input[0] == cf.input[0] and
                self.C(add.input[1], np.arange(steps), np.float32) and
                self.C(mul.input[1], [steps], np.float32) and
                self.C(sub.input[0], [1.0], np.float32) and self.C(rs.input[1], [1], np.int64)):
            return False
        keep, nodes = cf.input[0], [tr, ge, ex, un, sh, tk, add, mul, sub, cf, cl, rs, ki]
        rev = False
        if keep not in self.mask_owner:  # go_backwards: the input and the mask reversed
            sk, sx = self._reversed(keep), self._reversed(x0)
            if not (sk and sx and sk.input[0] in self.mask_owner):
                return False
            keep, x0, rev = sk.input[0], sx.input[0], True
            nodes += [sk, sx]
        info = {"x": x0, "mask": keep, "rev": rev, "ki": ki.output[0], "steps": steps,
                "count": rs.output[0], "kf": cf.output[0]}
        if not self._take(rnn, _motif_packed_rnn, info, nodes):
            return False
        self.packed[id(rnn)] = info
        return True

    def _packed_seq(self, mul):
        """Per-step outputs of a packed op: Mul(GatherElements(y, idx), valid) where y is the
        op's sequence (one direction: Squeeze + Transpose; a Bidirectional's half: Transpose
        [1, 2, 0, 3] + Gather) and idx comes from the mask's running count: cum - 1 (forward)
        or the unmasked steps before t (the backward half); valid is cum > 0 for one direction,
        the mask itself for a Bidirectional's halves (Keras zeros their masked steps)."""
        T = self.imp.onnx.TensorProto
        if len(mul.input) != 2:
            return
        ge = self.P(mul.input[0], "GatherElements", axis=1)
        if not ge:
            return
        ybm, idx = ge.input
        nodes, half = [ge], None
        tr = self.P(ybm, "Transpose", perm=[1, 0, 2])
        sq = tr and self.P(tr.input[0], "Squeeze")
        if sq and self.C(sq.input[1], [1], np.int64):
            y, nodes = sq.input[0], nodes + [tr, sq]
        else:
            ga = self.P(ybm, "Gather", axis=0)
            tr = ga and self.P(ga.input[0], "Transpose", perm=[1, 2, 0, 3])
            if not tr or ga.input[1] not in self.imp.consts:
                return
            k = self.imp.consts[ga.input[1]]
            if k.shape != () or k.dtype != np.int64 or int(k) not in (0, 1):
                return
            y, half, nodes = tr.input[0], int(k), nodes + [ga, tr]  # tr: shared by the halves
        rnn = self.prod.get(y)
        info = rnn is not None and self.packed.get(id(rnn))
        if not info or y != rnn.output[0]:
            return
        ex = self.P(idx, "Expand")
        un = ex and self.P(ex.input[0], "Unsqueeze")
        sh = ex and self.P(ex.input[1], "Shape")
        un2 = self.P(mul.input[1], "Unsqueeze")
        if not (sh and un2 and sh.input[0] == ybm and self.C(un.input[1], [2], np.int64) and
                self.C(un2.input[1], [2], np.int64)):
            return
        nodes += [ex, un, sh, un2]
        if half is not None:  # Keras's Bidirectional: zeros at the masked steps (keep factor)
            if un2.input[0] != info["kf"]:
                return
        else:  # zeros only before the first unmasked step: cum > 0
            ca = self.P(un2.input[0], "Cast", to=T.FLOAT)
            gt = ca and self.P(ca.input[0], "Greater")
            if not (gt and self.C(gt.input[1], [0], np.int64)):
                return
            nodes += [ca, gt]
        if half == 1:  # before = cum - keep
            sb = self.P(un.input[0], "Sub")
            cs = sb and self.P(sb.input[0], "CumSum")
            if not (cs and sb.input[1] == info["ki"]):
                return
            nodes += [sb, cs]
        else:  # pos = max(cum - 1, 0)
            mx = self.P(un.input[0], "Max")
            sb = mx and self.P(mx.input[0], "Sub")
            cs = sb and self.P(sb.input[0], "CumSum")
            if not (cs and self.C(mx.input[1], [0], np.int64) and
                    self.C(sb.input[1], [1], np.int64) and
                    (half is not None or gt.input[0] == sb.input[0])):
                return
            nodes += [mx, sb, cs]
        if cs.input[0] != info["ki"] or not self.C(cs.input[1], [1], np.int64):
            return
        # the CumSum and the bidirectional Transpose are shared by the two halves
        shared = [n for n in nodes if n is cs or (half is not None and n.op_type == "Transpose")]
        own = [n for n in nodes if n not in shared]
        if id(mul) in self.anchor or any(id(n) in self.absorbed for n in own):
            return
        self.anchor[id(mul)] = (_motif_packed_seq, {"y": y, "half": half})
        self.absorbed.update(id(n) for n in nodes)

    def _masked_average(self, rs):
        T = self.imp.onnx.TensorProto
        if len(rs.input) != 2 or not self.C(rs.input[1], [1], np.int64) or \
                self.imp.attrs(rs).get("keepdims", 1) != 0:
            return
        mul = self.P(rs.input[0], "Mul")
        dv = mul and len(mul.input) == 2 and self.P(mul.input[1], "Div")
        un = dv and self.P(dv.input[0], "Unsqueeze")
        mx = dv and self.P(dv.input[1], "Max")
        cnt = mx and self.P(mx.input[0], "ReduceSum", keepdims=1)
        cf = un and self.P(un.input[0], "Cast", to=T.FLOAT)
        if not (cf and cnt and cnt.input[0] == dv.input[0] and len(cnt.input) == 2 and
                self.C(cnt.input[1], [1], np.int64) and self.C(un.input[1], [2], np.int64) and
                self.C(mx.input[1], [1e-7], np.float32) and cf.input[0] in self.mask_owner):
            return
        self._take(rs, _motif_masked_average, {"x": mul.input[0], "mask": cf.input[0]},
                   [mul, dv, un, mx, cnt, cf])


def _mask_source(t):
    """The tensor whose mask nncore's graph gives t (its Masking / Embedding(mask_zero) output,
    passed on by the layers that support masking), or None."""
    from .layers.base import Layer
    from .layers.recurrent import _RNN
    from .layers.wrappers import Bidirectional

    while not t.node.is_input:
        lay = t.node.layer
        if lay._makes_mask:
            return t
        if isinstance(lay, (_RNN, Bidirectional)):  # the sequence output keeps the mask
            if not lay.return_sequences or (isinstance(lay, _RNN) and t.index != 0):
                return None
        elif lay._consumes_mask or type(lay).compute_mask is not Layer.compute_mask or \
                not lay.supports_masking:
            return None
        if len(t.node.flat_inputs) != 1:
            return None
        t = t.node.flat_inputs[0]
    return None


def _check_mask_source(imp, t, mask):
    owner = imp.tensor(imp.motifs.mask_owner[mask])
    if _mask_source(t) is not owner:
        imp.bad("the mask this op applies is not the one nncore's graph gives its input")


def _motif_skip(imp, node, info):
    return


def _motif_masking(imp, node, info):
    from . import layers as L

    t = imp.tensor(info["x"])
    src = _mask_source(t)
    for m in info["and"]:  # Masking after masking: keep & the mask its input carries
        if m not in imp.motifs.mask_owner or src is not imp.tensor(imp.motifs.mask_owner[m]):
            imp.bad("a Masking combines its mask with one its input does not carry")
    if not info["and"] and src is not None:
        imp.bad("a Masking of an already masked tensor must combine the two masks")
    imp.set(node.output[0], "nhwc", imp.layer(L.Masking(mask_value=info["mask_value"]), t))


def _motif_relu(imp, node, info):
    from . import layers as L

    v = imp.vals.get(info["x"])
    view = v.kind if v is not None and v.kind in ("nchw", "ncw") else "nhwc"
    lay = L.ReLU(negative_slope=info["negative_slope"], threshold=info["threshold"],
                 max_value=info["max_value"])
    imp.set(node.output[0], view, imp.layer(lay, imp.tensor(info["x"], view)))


def _motif_discretization(imp, node, info):
    from . import layers as L

    t = imp.tensor(info["x"])
    b = info["b"]
    imp.set(node.output[0], "cat", t, made={}, depth=len(b) + 1, fuse=True,
            make=lambda mode: L.Discretization(bin_boundaries=b, output_mode=mode))


def _motif_encoding(imp, node, info):
    """The encoding of a Discretization / IntegerLookup's indices is that layer's own
    output_mode when nothing else reads the indices; otherwise a CategoryEncoding."""
    from . import layers as L

    idx, depth, mode = info["idx"], info["depth"], info["mode"]
    v = imp.vals.get(idx)
    if v is None:
        imp.bad(f"input {idx!r} is not a tensor nncore can compute")
    shape = v.t.shape if v.kind == "cat" else imp.tensor(idx).shape
    if mode == "one_hot" and info["squeezed"] != (len(shape) == 2 and shape[1] == 1):
        imp.bad("a one-hot encoding squeezes exactly the (batch, 1) inputs (nncore's rule)")
    if v.kind == "cat" and v.extra["fuse"] and v.extra["depth"] == depth and \
            imp.uses.get(idx) == 1:
        imp.set(node.output[0], "nhwc", imp.categorical(idx, v, mode).t)
        return
    t = imp.tensor(idx)
    imp.set(node.output[0], "nhwc", imp.layer(L.CategoryEncoding(depth, output_mode=mode), t))


def _op_label_encoder(imp, node, a):
    """ai.onnx.ml LabelEncoder int64 -> int64 as nncore's IntegerLookup writes it: the mask
    token -> 0 (when the OOV index is 1), the vocabulary -> consecutive indices after the
    specials, the default the OOV index (-1: num_oov_indices=0)."""
    from . import layers as L

    strings = "keys_strings" in a  # a StringLookup's table (the model reads strings)
    _only(imp, a, {"keys_strings" if strings else "keys_int64s": None, "values_int64s": None,
                   "default_int64": None})
    if strings:
        keys = [k.decode("utf-8") if isinstance(k, bytes) else str(k)
                for k in a.get("keys_strings", [])]
    else:
        keys = [int(k) for k in a.get("keys_int64s", [])]
    vals = [int(v) for v in a.get("values_int64s", [])]
    oov = int(a.get("default_int64", -1))
    if len(keys) != len(vals) or len(set(keys)) != len(keys):
        imp.bad("keys and values must pair one to one")
    pairs = sorted(zip(vals, keys))
    mask = None
    if oov == 1 and pairs and pairs[0][0] == 0:
        mask = pairs.pop(0)[1]
    start = {0: 1, 1: 2, -1: 0}.get(oov)
    if start is None or (oov == 1 and mask is None) or \
            [v for v, _ in pairs] != list(range(start, start + len(pairs))):
        imp.bad(f"the table is not an {'String' if strings else 'Integer'}Lookup's (mask "
                "token 0, OOV index 0 or 1 or -1, then the vocabulary's consecutive indices)")
    vocab = [k for _, k in pairs]
    t = imp.tensor(node.input[0])
    if strings != (t.dtype == "string"):
        imp.bad(f"a LabelEncoder of {'string' if strings else 'integer'} keys reads a "
                f"{t.dtype} tensor")
    if strings:
        oov_token = "[UNK]" if "[UNK]" not in keys else "[UNK]" + "_" * max(map(len, keys))
    else:
        oov_token = -1 if -1 not in keys else min(keys) - 1
    kw = dict(vocabulary=vocab or None, mask_token=mask, oov_token=oov_token,
              num_oov_indices=0 if oov == -1 else 1)
    cls = L.StringLookup if strings else L.IntegerLookup
    imp.set(node.output[0], "cat", t, made={}, depth=len(vocab) + (oov >= 0),
            fuse=mask is None, make=lambda mode: cls(output_mode=mode, **kw))


def _gather_vocabulary(imp, node, a, table):
    """Gather from a 1-D int64 / string constant: an IntegerLookup / StringLookup with
    invert=True whose whole vocabulary (specials included) is the table."""
    from . import layers as L

    _only(imp, a, {"axis": (0,)})
    strings = table.dtype.kind == "O"
    vocab = [v.decode("utf-8") if isinstance(v, bytes) else v for v in table.tolist()]
    if table.ndim != 1 or not vocab or len(set(vocab)) != len(vocab) or \
            (strings and not all(isinstance(v, str) for v in vocab)):
        imp.bad("a Gather from a constant vocabulary needs a 1-D table of distinct tokens")
    cls = L.StringLookup if strings else L.IntegerLookup
    lay = cls(vocabulary=vocab[1:] or None, oov_token=vocab[0], invert=True)
    imp.set(node.output[0], "nhwc", imp.layer(lay, imp.tensor(node.input[1])))


def _motif_packed_rnn(imp, node, info):
    ONNX_IMPORTERS[node.op_type](imp, node, imp.attrs(node), packed=info)


def _motif_packed_seq(imp, node, info):
    v = imp.vals.get(info["y"])
    if info["half"] is not None and v is not None and v.kind == "bidi_y_packed":
        imp.set(node.output[0], "bidi_half", pending=v.extra["pending"], seq=True,
                half=info["half"])
        return
    if v is None or v.kind != "rnn_y_packed":
        imp.bad("a packed sequence is read back only from its masked recurrent op")
    imp.set(node.output[0], "nhwc", v.t)


def _motif_masked_average(imp, node, info):
    from . import layers as L

    t = imp.tensor(info["x"])
    _check_mask_source(imp, t, info["mask"])
    if len(t.shape) != 3:
        imp.bad("a masked average is read only over the steps of (batch, steps, features)")
    imp.set(node.output[0], "nhwc", imp.layer(L.GlobalAveragePooling1D(), t))


# op type -> (fewest inputs, fewest outputs, required attributes) read by its importer, checked
# before it runs (a damaged graph must not make it index past a node's lists). Others: (1, 1, ()).
_ARITY = {"Constant": (0, 1, ("value",)), "Gemm": (2, 1, ()), "MatMul": (2, 1, ()),
          "Conv": (2, 1, ()), "ConvTranspose": (2, 1, ()), "Tile": (2, 1, ()),
          "Reshape": (2, 1, ()), "Concat": (1, 1, ("axis",)),
          "MaxPool": (1, 1, ("kernel_shape",)), "AveragePool": (1, 1, ("kernel_shape",)),
          "Einsum": (2, 1, ("equation",)), "Gather": (2, 1, ()),
          "InstanceNormalization": (3, 1, ()),
          "Squeeze": (1, 1, ()), "Slice": (3, 1, ()), "Div": (2, 1, ()), "Unsqueeze": (2, 1, ()),
          "RNN": (3, 1, ("hidden_size",)),
          "LSTM": (3, 1, ("hidden_size",)), "GRU": (3, 1, ("hidden_size",))}

ONNX_IMPORTERS: dict = {
    "Identity": _op_identity, "Cast": _op_cast, "Constant": _op_constant,
    "Transpose": _op_transpose, "Gemm": _op_gemm, "MatMul": _op_matmul,
    "Shape": _op_shape, "ConstantOfShape": _op_constant_of_shape, "Expand": _op_expand,
    **{k: _unary_ops(v) for k, v in _UNARY.items() if k != "Sqrt"}, "Pow": _op_pow,
    "ReduceMin": _op_reduce_ops,
    **{k: _op_nary_ops(v) for k, v in (
        ("Greater", "greater"), ("Less", "less"), ("GreaterOrEqual", "greater_equal"),
        ("LessOrEqual", "less_equal"), ("Equal", "equal"), ("Where", "where"),
        ("And", "logical_and"), ("Or", "logical_or"))},
    "LogSoftmax": _op_axis_ops("log_softmax"), "ArgMax": _op_axis_ops("argmax"),
    "ArgMin": _op_axis_ops("argmin"),
    "Add": _binary("Add"), "Sub": _binary("Subtract"), "Mul": _binary("Multiply"),
    "Mean": _binary("Average"), "Max": _binary("Maximum"), "Min": _binary("Minimum"),
    "Div": _binary("Divide"), "Concat": _op_concat,
    "Relu": _act("relu"), "Sigmoid": _act("sigmoid"), "Tanh": _act("tanh"),
    "Softmax": _act("softmax"), "Conv": _op_conv, "MaxPool": _pool("MaxPooling"),
    "AveragePool": _pool("AveragePooling"), "ConvTranspose": _op_conv_transpose,
    "Tile": _op_tile, "Flatten": _op_flatten, "Reshape": _op_reshape,
    "Squeeze": _op_squeeze, "Unsqueeze": _op_unsqueeze,
    "ReduceSumSquare": _op_reduce_sum_square, "Sqrt": _op_sqrt, "Einsum": _op_einsum,
    "RNN": _rnn_op("RNN"), "LSTM": _rnn_op("LSTM"), "GRU": _rnn_op("GRU"),
    "LeakyRelu": _elementwise_layer(_leaky), "Elu": _elementwise_layer(_elu),
    "Clip": _elementwise_layer(_clip), "ReduceMean": _reduce_pool("Average"),
    "ReduceMax": _reduce_pool("Max"), "BatchNormalization": _op_batch_norm,
    "LayerNormalization": _op_layer_norm, "Gather": _op_gather, "Pad": _op_pad,
    "Slice": _op_slice, "Resize": _op_resize, "PRelu": _op_prelu,
    "ReduceSum": _op_bidi_reduce("sum"), "ReduceProd": _op_bidi_reduce("mul"),
    "InstanceNormalization": _op_instance_norm, "LabelEncoder": _op_label_encoder,
}


def load(filepath):
    """An nncore Functional model from an ONNX file (the operator set nncore exports)."""
    onnx = _onnx()
    from .saving import files

    path = os.fspath(filepath) if isinstance(filepath, (str, bytes, os.PathLike)) else filepath
    try:  # nncore's one reader: regular files only, size known first (FileNotFoundError passes)
        fh, _ = files.open_regular(filepath, MAX_FILE_BYTES)
    except files.FileRefused as e:
        raise ValueError(f"ONNX import: {e}".replace(f"more than the {MAX_FILE_BYTES} allowed",
                                                      f"larger than {MAX_FILE_BYTES} bytes")) \
            from None
    with fh:
        data = fh.read()
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError has no common base worth naming
        raise ValueError(f"ONNX import: {path!r} is not an ONNX model: {e}") from None
    ops = [o for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if not ops or not 13 <= ops[0].version <= 22:
        raise ValueError(f"ONNX import: {path!r}: opset {ops[0].version if ops else None} is "
                         "not supported (13 to 22)")
    try:
        return _Importer(onnx, proto).run()
    except ValueError as e:  # name the user's file in every refusal
        msg = str(e)
        if isinstance(path, str) and path not in msg:
            msg = msg.replace("ONNX import: ", f"ONNX import: {path!r}: ", 1) \
                if msg.startswith("ONNX import: ") else f"ONNX import: {path!r}: {msg}"
        raise ValueError(msg) from None


def export(model, filepath):
    """The same as model.export(filepath, format='onnx')."""
    from .saving.onnx_export import export_onnx

    export_onnx(model, filepath)


__all__ = ["load", "export", "ONNX_IMPORTERS"]
