"""ONNX export (opset 17) of nncore models: ``model.export("m.onnx", format="onnx")``.

Built with onnx.helper from a per-layer table (``ONNX_EXPORTERS``: Keras class name -> function
emitting the layer's nodes); a new layer is one entry. The graph has a dynamic batch axis.

Layout: nncore is channels-last (NHWC); ONNX's Conv, ConvTranspose and pooling are channels-
first. Every value carries a layout tag ("NCHW", or "NCW" for Conv1D and the 1-D poolings),
conv/pool work channels-first and everything else channels-last, and a Transpose is inserted
only where the tag changes (so Conv -> ReLU -> MaxPool -> Conv runs without transposes).
Recurrent layers become ONNX RNN / LSTM / GRU on a time-major view: Keras's LSTM gate order
(i, f, c, o) is reordered to ONNX's (i, o, f, c); Keras's GRU (z, r, h, reset_after=True) is ONNX's
GRU with linear_before_reset=1 and the input and recurrent biases as Wb and Rb. go_backwards is
direction="reverse", Bidirectional one direction="bidirectional" op, return_state the Y_h / Y_c
outputs. Masks (Masking, Embedding mask_zero) travel beside the values (``_MASK_EXPORTERS``:
the layers that make or read one); a masked recurrent layer is exact for any mask (_Compacted).
Values keep their dtype (GraphBuilder.dtype: integer inputs, the categorical layers' int64
indices, string vocabularies); layers not in _TYPED read a float32 Cast, as nncore casts.
"""

from __future__ import annotations

import os

import numpy as np

ONNX_HINT = 'ONNX export needs the onnx package: pip install "nncore[onnx]"'
OPSET = 17
ML_DOMAIN, ML_OPSET = "ai.onnx.ml", 3  # LabelEncoder (IntegerLookup)
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(ONNX_HINT) from None
    return onnx


class GraphBuilder:
    """Nodes, initializers and layout tags of the graph being written."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.helper = onnx.helper
        self.nodes: list = []
        self.inits: list = []
        self.layout: dict = {}      # value name -> "NCHW" / "NCW" for conv/pool values
        self._cache: dict = {}      # (value, layout) -> transposed value
        self.dtype: dict = {}       # value name -> numpy dtype of a value that is not float32
        self.ml = False             # an ai.onnx.ml operator (LabelEncoder) was written
        self._n = 0

    def fresh(self, base):
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, arr, base="c"):
        name = self.fresh(base)
        arr = np.asarray(arr)  # (np.ascontiguousarray would make a 0-d scalar 1-d)
        self.inits.append(self.onnx.numpy_helper.from_array(
            arr if arr.flags.c_contiguous else np.ascontiguousarray(arr), name))
        return name

    def op(self, op_type, inputs, base=None, n_out=1, **attrs):
        outs = [self.fresh(base or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs,
                                                name=self.fresh("n_" + op_type), **attrs))
        return outs if n_out > 1 else outs[0]

    def as_float(self, v):
        """v as float32 (a Cast of an integer value, once), what the float layers read."""
        dt = self.dtype.get(v)
        if dt is None:
            return v
        if dt.kind not in "biuf":
            kind = "string" if dt.kind == "O" else str(dt)
            raise ValueError(f"its input is a {kind} value, and it reads numbers")
        key = (v, "float")
        if key not in self._cache:
            self._cache[key] = self.op("Cast", [v], "cast", to=self.onnx.TensorProto.FLOAT)
        return self._cache[key]

    def is_cf(self, v):
        """True when v is channels-first (a conv/pool value: NCHW, or NCW for 1-D)."""
        return self.layout.get(v) in ("NCHW", "NCW")

    def same_layout(self, src, dst):
        """dst (an elementwise result of src) keeps src's layout tag."""
        if self.is_cf(src):
            self.layout[dst] = self.layout[src]
        return dst

    def nhwc(self, v):
        """v in channels-last (the layout everything but conv/pool uses)."""
        tag = self.layout.get(v)
        if tag not in ("NCHW", "NCW"):
            return v
        key = (v, "NHWC")
        if key not in self._cache:
            self._cache[key] = self.op("Transpose", [v], "nhwc",
                                       perm=NCHW_TO_NHWC if tag == "NCHW" else [0, 2, 1])
        return self._cache[key]

    def ncw(self, v):
        """A (batch, steps, channels) value as ONNX's (batch, channels, steps)."""
        if self.layout.get(v) == "NCW":
            return v
        key = (v, "NCW")
        if key not in self._cache:
            t = self.op("Transpose", [v], "ncw", perm=[0, 2, 1])
            self.layout[t] = "NCW"
            self._cache[key] = t
        return self._cache[key]

    def channels_first(self, v, rank):
        return self.nchw(v) if rank == 4 else self.ncw(v)

    def i64(self, values, base="i"):
        return self.const(np.array(values, np.int64), base)

    def nchw(self, v):
        if self.layout.get(v) == "NCHW":
            return v
        key = (v, "NCHW")
        if key not in self._cache:
            t = self.op("Transpose", [v], "nchw", perm=NHWC_TO_NCHW)
            self.layout[t] = "NCHW"
            self._cache[key] = t
        return self._cache[key]


def _activation(g, x, name, keep_layout=False):
    if name == "linear":
        return x
    op = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}.get(name)
    if op is not None:
        y = g.op(op, [x])
        return g.same_layout(x, y) if keep_layout else y
    if name == "softmax":
        return g.op("Softmax", [g.nhwc(x)], axis=-1)
    raise ValueError(f"activation {name!r} has no ONNX export")


# ---- per-layer exporters: (builder, layer, input names, node) -> output names ----------------
def _dense(g, layer, xs, node):
    x = g.nhwc(xs[0])
    w = g.const(layer.kernel, f"{layer.name}_kernel")
    if len(node.flat_inputs[0].shape) == 2:
        ins = [x, w] + ([g.const(layer.bias, f"{layer.name}_bias")] if layer.use_bias else [])
        y = g.op("Gemm", ins, layer.name)
    else:
        y = g.op("MatMul", [x, w], layer.name)
        if layer.use_bias:
            y = g.op("Add", [y, g.const(layer.bias, f"{layer.name}_bias")], layer.name)
    return [_activation(g, y, layer.activation)]


def _same_pads(in_hw, k, s, d):
    """TF's 'same' pads (the odd pixel after) for known sizes; None when an axis has unknown
    length, where ONNX's auto_pad SAME_UPPER computes the same split at run time."""
    if any(n is None for n in in_hw):
        return None
    pads_b, pads_a = [], []
    for n, kk, ss, dd in zip(in_hw, k, s, d):
        out = -(-n // ss)
        total = max((out - 1) * ss + (kk - 1) * dd + 1 - n, 0)
        pads_b.append(total // 2)
        pads_a.append(total - total // 2)
    return pads_b + pads_a


def _pads(pads):
    """A node's padding attribute: explicit pads, or SAME_UPPER for axes of unknown length."""
    return {"auto_pad": "SAME_UPPER"} if pads is None else {"pads": pads}


def _conv_pads(layer, spatial, k, s, d):
    """ONNX pads (begins then ends) of Keras's padding: 'valid', 'same' (TF's split: the odd
    pixel after) or Conv1D's 'causal' (everything before the first step)."""
    if layer.padding == "same":
        return _same_pads(spatial, k, s, d)
    if layer.padding == "causal":
        return [d[0] * (k[0] - 1), 0]
    return [0] * (2 * len(spatial))


def _conv(g, layer, xs, node):
    """Conv2D (groups: ONNX's group, the same filter blocks) and Conv1D (a 1-D ONNX Conv on
    (batch, channels, steps))."""
    shp = node.flat_inputs[0].shape
    rank = len(shp)
    x = g.channels_first(xs[0], rank)
    perm = (3, 2, 0, 1) if rank == 4 else (2, 1, 0)  # Keras (*k, Cin, F) -> ONNX (F, Cin, *k)
    w = g.const(np.transpose(np.asarray(layer.kernel, np.float32), perm), f"{layer.name}_kernel")
    ins = [x, w] + ([g.const(layer.bias, f"{layer.name}_bias")] if layer.use_bias else [])
    k, s, d = list(layer.kernel_size), list(layer.strides), list(layer.dilation_rate)
    y = g.op("Conv", ins, layer.name, kernel_shape=k, strides=s, dilations=d,
             **_pads(_conv_pads(layer, shp[1:-1], k, s, d)),
             group=int(getattr(layer, "groups", 1)))
    g.layout[y] = "NCHW" if rank == 4 else "NCW"
    return [_activation(g, y, layer.activation, keep_layout=True)]


def _pool(op_type):
    """Max/AveragePooling 1-D and 2-D; Keras's 'same' average excludes the padding from the
    count (count_include_pad=0), as nncore's kernels do."""
    def f(g, layer, xs, node):
        shp = node.flat_inputs[0].shape
        rank = len(shp)
        x = g.channels_first(xs[0], rank)
        ones = [1] * (rank - 2)
        pads = (_same_pads(shp[1:-1], layer.pool_size, layer.strides, ones)
                if layer.padding == "same" else [0] * (2 * (rank - 2)))
        extra = {"count_include_pad": 0} if op_type == "AveragePool" else {}
        y = g.op(op_type, [x], layer.name, kernel_shape=list(layer.pool_size),
                 strides=list(layer.strides), **_pads(pads), **extra)
        g.layout[y] = "NCHW" if rank == 4 else "NCW"
        return [y]
    return f


def _conv_transpose(g, layer, xs, node):
    """Conv2DTranspose as ONNX ConvTranspose: the kernel (KH, KW, filters, Cin) is ONNX's
    (Cin, filters, KH, KW); Keras's output size (H*s for 'same', H*s + max(k_eff - s, 0) for
    'valid') is ONNX's s*(H-1) + k_eff - pads + output_padding, with 'same' cropping TF's
    split (the odd pixel at the end) and output_padding = s - k_eff where the kernel is
    shorter than the stride."""
    x = g.nchw(xs[0])
    w = g.const(np.transpose(np.asarray(layer.kernel, np.float32), (3, 2, 0, 1)),
                f"{layer.name}_kernel")
    ins = [x, w] + ([g.const(layer.bias, f"{layer.name}_bias")] if layer.use_bias else [])
    pb, pa, op = _transpose_geometry(layer.padding, layer.kernel_size, layer.strides,
                                     layer.dilation_rate)
    y = g.op("ConvTranspose", ins, layer.name, kernel_shape=list(layer.kernel_size),
             strides=list(layer.strides), dilations=list(layer.dilation_rate), pads=pb + pa,
             output_padding=op)
    g.layout[y] = "NCHW"
    return [_activation(g, y, layer.activation, keep_layout=True)]


def _transpose_geometry(padding, ks, ss, ds):
    """(pads begin, pads end, output_padding) of a Keras Conv2DTranspose as ONNX writes it."""
    pb, pa, op = [], [], []
    for k, s, d in zip(ks, ss, ds):
        eff = d * (k - 1) + 1
        total = eff - s if padding == "same" else 0
        if total < 0 or (padding == "valid" and eff < s):
            op.append(s - eff)
            total = 0
        else:
            op.append(0)
        pb.append(total // 2)
        pa.append(total - total // 2)
    return pb, pa, op


def _flatten(g, layer, xs, node):
    return [g.op("Flatten", [g.nhwc(xs[0])], layer.name, axis=1)]


def _reshape(g, layer, xs, node):
    shape = g.const(np.array([0] + list(layer.target_shape), np.int64), f"{layer.name}_shape")
    return [g.op("Reshape", [g.nhwc(xs[0]), shape], layer.name)]


def _identity(g, layer, xs, node):
    return [xs[0]]  # Dropout: the identity at inference


def _activation_layer(g, layer, xs, node):
    return [_activation(g, xs[0], layer.activation, keep_layout=True)]


def _chain(op_type):
    def f(g, layer, xs, node):
        xs = [g.nhwc(x) for x in xs]
        y = g.op(op_type, xs[:2], layer.name)
        for x in xs[2:]:
            y = g.op(op_type, [y, x], layer.name)
        return [y]
    return f


def _variadic(op_type):
    def f(g, layer, xs, node):
        return [g.op(op_type, [g.nhwc(x) for x in xs], layer.name)]
    return f


def _concat(g, layer, xs, node):
    return [g.op("Concat", [g.nhwc(x) for x in xs], layer.name, axis=layer.axis)]


def _l2_normalize(g, x, axis, base="l2n"):
    """x / sqrt(max(sum(x^2 over axis), 1e-12)); axis an int or a list."""
    axes = [axis] if isinstance(axis, int) else list(axis)
    ss = g.op("ReduceSumSquare", [x], "sumsq", axes=axes, keepdims=1)
    n = g.op("Sqrt", [g.op("Max", [ss, g.const(np.array(1e-12, np.float32), "eps")])])
    return g.op("Div", [x, n], base)


def _unit_norm(g, layer, xs, node):
    rank = len(node.flat_inputs[0].shape)
    return [_l2_normalize(g, g.nhwc(xs[0]), layer._axes(rank), layer.name)]


def _repeat_vector(g, layer, xs, node):
    y = g.op("Unsqueeze", [g.nhwc(xs[0]), g.i64([1], "axes")], layer.name)
    return [g.op("Tile", [y, g.i64([1, layer.n, 1], "repeats")], layer.name)]


def _group_norm(g, layer, xs, node):
    """Keras's GroupNormalization (channels last, `groups` groups of C/groups channels, each
    sample's group normalized over its positions and channels, epsilon inside the square
    root, then gamma/beta per channel): (N, ..., C) viewed as (N, G, S, C/G), ONNX's
    InstanceNormalization with G unit channels, viewed back, then gamma and beta. (ONNX's own
    GroupNormalization is opset 18 with a per-group scale, per-channel only from opset 21.)"""
    shp = node.flat_inputs[0].shape
    c, gr = shp[-1], layer.groups
    x = g.nhwc(xs[0])
    x4 = g.op("Reshape", [x, g.i64([0, -1, gr, c // gr], "shape")], layer.name)
    x4 = g.op("Transpose", [x4], layer.name, perm=[0, 2, 1, 3])
    y = g.op("InstanceNormalization", [x4, g.const(np.ones(gr, np.float32), "ones"),
                                       g.const(np.zeros(gr, np.float32), "zeros")],
             layer.name, epsilon=float(layer.epsilon))
    y = g.op("Transpose", [y], layer.name, perm=[0, 2, 1, 3])
    y = g.op("Reshape", [y, g.i64([0] + list(shp[1:]), "shape")], layer.name)
    if layer.scale:
        y = g.op("Mul", [y, g.const(np.asarray(layer.gamma, np.float32), f"{layer.name}_gamma")],
                 layer.name)
    if layer.center:
        y = g.op("Add", [y, g.const(np.asarray(layer.beta, np.float32), f"{layer.name}_beta")],
                 layer.name)
    return [y]


def _dot(g, layer, xs, node):
    a, b = (g.nhwc(x) for x in xs)
    shapes = [t.shape for t in node.flat_inputs]
    a0, a1 = layer._axes(shapes)
    if layer.normalize:
        a, b = _l2_normalize(g, a, a0), _l2_normalize(g, b, a1)
    sa = layer._letters(len(shapes[0]), a0, True)
    sb = layer._letters(len(shapes[1]), a1, False)
    so = "b" + "".join(c for c in sa[1:] if c != "z") + "".join(c for c in sb[1:] if c != "z")
    y = g.op("Einsum", [a, b], layer.name, equation=f"{sa},{sb}->{so}")
    if len(so) == 1:
        y = g.op("Unsqueeze", [y, g.const(np.array([1], np.int64), "axes")], layer.name)
    return [y]


def _gates(m, order, units):
    """Reorder the gate blocks of the last axis of m (blocks of `units`)."""
    blocks = [m[..., k * units:(k + 1) * units] for k in range(m.shape[-1] // units)]
    return np.concatenate([blocks[k] for k in order], axis=-1)


_RNN_OPS = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}
_N_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
_BIG = np.iinfo(np.int64).max


def _rnn_weights(layer, op_type):
    """One direction's ONNX W (G*U, F), R (G*U, U) and B (2*G*U,) of a Keras recurrent layer."""
    u, n_g = layer.units, _N_GATES[op_type]
    k, rk = np.asarray(layer.kernel, np.float32), np.asarray(layer.recurrent_kernel, np.float32)
    order = [0, 3, 1, 2]  # Keras LSTM i, f, c, o -> ONNX i, o, f, c
    if op_type == "LSTM":
        k, rk = _gates(k, order, u), _gates(rk, order, u)
    zeros = np.zeros(n_g * u, np.float32)
    if not layer.use_bias:
        bias = np.concatenate([zeros, zeros])
    elif op_type == "GRU" and layer.reset_after:
        bias = np.concatenate([layer.bias[0], layer.bias[1]])
    else:  # one Keras bias (GRU reset_after=False included): ONNX's Rb is zero
        b = layer.bias if op_type != "LSTM" else _gates(layer.bias, order, u)
        bias = np.concatenate([b, zeros])
    return k.T, rk.T, bias.astype(np.float32)


def _rnn_node(g, x_tm, cells, op_type, direction, seq_lens, base, n_out):
    """The ONNX RNN / LSTM / GRU node of one layer (or of a Bidirectional pair stacked on the
    direction axis): -> [Y (T, D, B, U), Y_h (D, B, U)] (+ Y_c for an LSTM when n_out = 3)."""
    ws = [_rnn_weights(c, op_type) for c in cells]
    w = g.const(np.stack([a for a, _, _ in ws]), f"{base}_W")
    r = g.const(np.stack([b for _, b, _ in ws]), f"{base}_R")
    ins = [x_tm, w, r]
    if any(c.use_bias for c in cells) or seq_lens is not None:
        ins.append(g.const(np.stack([b for _, _, b in ws]), f"{base}_B"))
    if seq_lens is not None:
        ins.append(seq_lens)
    attrs = {"hidden_size": cells[0].units, "direction": direction}
    if op_type == "RNN":
        attrs["activations"] = ["Relu" if c.activation == "relu" else "Tanh" for c in cells]
    if op_type == "GRU":
        attrs["linear_before_reset"] = int(cells[0].reset_after)
    return g.op(op_type, ins, base, n_out=n_out, **attrs)


def _reverse(g, x, axis):
    """x read backwards along `axis` (a Slice with step -1)."""
    return g.op("Slice", [x, g.i64([-1], "starts"), g.i64([-_BIG], "ends"), g.i64([axis], "axes"),
                          g.i64([-1], "steps")], "reversed")


def _gather_steps(g, y_bm, pos):
    """y_bm (B, T, U) read at the steps pos (B, T) int64 of each row."""
    idx = g.op("Expand", [g.op("Unsqueeze", [pos, g.i64([2], "axes")]),
                          g.op("Shape", [y_bm])], "idx")
    return g.op("GatherElements", [y_bm, idx], "steps", axis=1)


class _Compacted:
    """A mask (B, T) made exact for ONNX's sequence_lens: at a masked step a Keras recurrent
    layer keeps its state, so it computes what it would on the unmasked steps alone, packed to
    the front of each row in their order (a stable TopK of (masked * T + t)); sequence_lens is
    their count. The output at step t is the packed output number cum(t) - 1 (zeros before the
    first unmasked step): exact for any mask, not only right-padded ones."""

    def __init__(self, g, x_bm, keep, steps):
        ki = g.op("Cast", [keep], "keep_i", to=g.onnx.TensorProto.INT64)
        kf = g.op("Cast", [keep], "keep_f", to=g.onnx.TensorProto.FLOAT)
        masked = g.op("Sub", [g.const(np.array(1.0, np.float32), "one"), kf], "masked")
        key = g.op("Add", [g.op("Mul", [masked, g.const(np.array(float(steps), np.float32), "t")]),
                           g.const(np.arange(steps, dtype=np.float32), "t")], "key")
        _, order = g.op("TopK", [key, g.i64([steps], "k")], "packed", n_out=2, axis=1,
                        largest=0, sorted=1)
        self.x = _gather_steps(g, x_bm, order)
        count = g.op("ReduceSum", [ki, g.i64([1], "axes")], "count", keepdims=0)
        self.lens = g.op("Cast", [count], "seq_lens", to=g.onnx.TensorProto.INT32)
        self.ki, self.count, self.kf = ki, count, kf
        self.g = g
        self._cum = None

    @property
    def cum(self):
        """Unmasked steps up to and including t (emitted only when a sequence is read)."""
        if self._cum is None:
            g = self.g
            self._cum = g.op("CumSum", [self.ki, g.const(np.array(1, np.int64), "axis")], "cum")
        return self._cum

    def _valid(self, pos_ok):
        g = self.g
        return g.op("Unsqueeze", [g.op("Cast", [pos_ok], "ok", to=g.onnx.TensorProto.FLOAT),
                                  g.i64([2], "axes")])

    def _keep3(self):
        return self.g.op("Unsqueeze", [self.kf, self.g.i64([2], "axes")], "keep3")

    def forward_steps(self, y_bm, zero_masked=False):
        """Forward outputs (B, T, U) at every original step: packed output cum(t) - 1 (zeros
        before the first unmasked step; zeros at every masked step with zero_masked, as
        Keras's Bidirectional)."""
        g = self.g
        zero = g.const(np.array(0, np.int64), "zero")
        pos = g.op("Max", [g.op("Sub", [self.cum, g.const(np.array(1, np.int64), "one")]),
                           zero], "pos")
        factor = self._keep3() if zero_masked else \
            self._valid(g.op("Greater", [self.cum, zero], "started"))
        return g.op("Mul", [_gather_steps(g, y_bm, pos), factor], "masked_seq")

    def backward_steps(self, y_bm):
        """A Bidirectional's reverse half (B, T, U) at every original step t: the packed output
        number (unmasked steps before t); zeros at masked steps (Keras's Bidirectional)."""
        g = self.g
        before = g.op("Sub", [self.cum, self.ki], "before")
        return g.op("Mul", [_gather_steps(g, y_bm, before), self._keep3()], "masked_seq")


def _steps_of(node, unknown=None):
    """The input's number of steps; `unknown` (e.g. -1 for a Reshape) when it has none, or a
    ValueError naming the layer where the graph needs the number itself."""
    steps = node.flat_inputs[0].shape[1]
    if steps is None:
        if unknown is None:
            raise ValueError(f"layer {node.layer.name!r} ({type(node.layer).__name__}): ONNX "
                             "export of masks over sequences of unknown length is not "
                             "supported; give the model's Input a fixed number of steps")
        return unknown
    return int(steps)


def _rnn_layer(g, layer, xs, node, mask=None):
    """SimpleRNN / LSTM / GRU as ONNX RNN / LSTM / GRU. go_backwards: direction 'reverse' (its
    Y is in the input's time order; Keras returns the sequence in reading order, so it is read
    back reversed). return_state: Y_h (and the LSTM's Y_c) as further outputs. A mask: see
    _Compacted (the layer's reversed reading order applied first)."""
    op_type = _RNN_OPS[type(layer).__name__]
    x = g.nhwc(xs[0])
    sq = lambda v, ax: g.op("Squeeze", [v, g.i64([ax], "axes")], layer.name)  # noqa: E731
    n_out = 3 if op_type == "LSTM" and layer.return_state else 2
    if mask is None:
        direction = "reverse" if layer.go_backwards else "forward"
        outs = _rnn_node(g, g.op("Transpose", [x], "time_major", perm=[1, 0, 2]), [layer],
                         op_type, direction, None, layer.name, n_out)
        h = sq(outs[1], 0)
        out = h
        if layer.return_sequences:
            y = sq(outs[0], 1)
            if layer.go_backwards:
                y = _reverse(g, y, 0)
            out = g.op("Transpose", [y], layer.name, perm=[1, 0, 2])
    else:
        keep = mask
        if layer.go_backwards:  # Keras reverses the inputs and the mask, then reads forward
            x, keep = _reverse(g, x, 1), _reverse(g, mask, 1)
        pk = _Compacted(g, x, keep, _steps_of(node))
        outs = _rnn_node(g, g.op("Transpose", [pk.x], "time_major", perm=[1, 0, 2]), [layer],
                         op_type, "forward", pk.lens, layer.name, n_out)
        h = sq(outs[1], 0)
        out = h
        if layer.return_sequences:
            out = pk.forward_steps(g.op("Transpose", [sq(outs[0], 1)], "bm", perm=[1, 0, 2]))
    ys = [out]
    if layer.return_state:
        ys += [h] + ([sq(outs[2], 0)] if op_type == "LSTM" else [])
    out_mask = mask if layer.return_sequences else None
    return ys, ([out_mask] + [None] * (len(ys) - 1) if layer.return_state else [out_mask])


def _bidirectional(g, layer, xs, node, mask=None):
    """Bidirectional as one ONNX op with direction 'bidirectional' (forward layer's weights
    first, the backward layer's second): its Y[:, 1] is already in time order, as Keras flips
    the backward sequence back. Merge modes: concat (Reshape of the direction and unit axes),
    sum / ave / mul (ReduceSum / ReduceMean / ReduceProd over the direction axis), None (the
    two directions, Gather). With a mask, the packed sequence (_Compacted) read backward by
    the op's reverse half is exactly Keras's backward pass over the unmasked steps."""
    f, b = layer.forward_layer, layer.backward_layer
    name = type(f).__name__
    same = (type(b) is type(f) and b.units == f.units and b.activation == f.activation and
            getattr(b, "reset_after", True) == getattr(f, "reset_after", True))
    if name not in _RNN_OPS or not same or f.go_backwards or not b.go_backwards or \
            f.return_state or b.return_state:
        raise ValueError(f"layer {layer.name!r} (Bidirectional): only a forward layer with its "
                         "backward twin (same type, units, activation and GRU reset_after; "
                         "go_backwards on the backward layer only) has an ONNX export")
    op_type = _RNN_OPS[name]
    x = g.nhwc(xs[0])
    seq = layer.return_sequences
    u, steps = f.units, _steps_of(node, unknown=-1 if mask is None else None)
    if mask is None:
        y, yh = _rnn_node(g, g.op("Transpose", [x], "time_major", perm=[1, 0, 2]), [f, b],
                          op_type, "bidirectional", None, layer.name, 2)
        if seq:
            both = g.op("Transpose", [y], layer.name, perm=[2, 0, 1, 3])  # (B, T, 2, U)
        else:
            both = g.op("Transpose", [yh], layer.name, perm=[1, 0, 2])  # (B, 2, U)
        ax = 2 if seq else 1
        m = layer.merge_mode
        if m == "concat":
            shape = [0, steps, 2 * u] if seq else [0, 2 * u]
            ys = [g.op("Reshape", [both, g.i64(shape, "shape")], layer.name)]
        elif m is None:
            ys = [g.op("Gather", [both, g.const(np.array(k, np.int64), "dir")], layer.name,
                       axis=ax) for k in (0, 1)]
        elif m == "sum":
            ys = [g.op("ReduceSum", [both, g.i64([ax], "axes")], layer.name, keepdims=0)]
        else:
            ys = [g.op({"ave": "ReduceMean", "mul": "ReduceProd"}[m], [both], layer.name,
                       axes=[ax], keepdims=0)]
    else:
        pk = _Compacted(g, x, mask, steps)
        y, yh = _rnn_node(g, g.op("Transpose", [pk.x], "time_major", perm=[1, 0, 2]), [f, b],
                          op_type, "bidirectional", pk.lens, layer.name, 2)
        if seq:
            ybm = g.op("Transpose", [y], layer.name, perm=[1, 2, 0, 3])  # (D, B, T, U)
            halves = [g.op("Gather", [ybm, g.const(np.array(k, np.int64), "dir")], layer.name,
                           axis=0) for k in (0, 1)]
            yf, yb = pk.forward_steps(halves[0], zero_masked=True), pk.backward_steps(halves[1])
        else:
            yf, yb = (g.op("Gather", [yh, g.const(np.array(k, np.int64), "dir")], layer.name,
                           axis=0) for k in (0, 1))
        m = layer.merge_mode
        if m == "concat":
            ys = [g.op("Concat", [yf, yb], layer.name, axis=-1)]
        elif m == "sum":
            ys = [g.op("Add", [yf, yb], layer.name)]
        elif m == "ave":
            ys = [g.op("Mul", [g.op("Add", [yf, yb], layer.name),
                               g.const(np.array(0.5, np.float32), "half")], layer.name)]
        elif m == "mul":
            ys = [g.op("Mul", [yf, yb], layer.name)]
        else:
            ys = [yf, yb]
    out_mask = mask if seq else None
    return ys, [out_mask] * len(ys)


def _masking(g, layer, xs, node, mask=None):
    """keep = any(x != mask_value over the last axis); y = x * keep; the mask (keep, and the
    incoming mask) goes to the layers that read it."""
    x = g.nhwc(xs[0])
    neq = g.op("Not", [g.op("Equal", [x, g.const(np.array(layer.mask_value, np.float32),
                                                         "mask_value")])], layer.name)
    kf = g.op("ReduceMax", [g.op("Cast", [neq], layer.name, to=g.onnx.TensorProto.FLOAT)],
              layer.name, axes=[-1], keepdims=1)
    y = g.op("Mul", [x, kf], layer.name)
    keep = g.op("Cast", [g.op("Squeeze", [kf, g.i64([-1], "axes")], layer.name)], "mask",
                to=g.onnx.TensorProto.BOOL)
    if mask is not None:
        keep = g.op("And", [keep, mask], "mask")
    return [y], [keep]


def _embedding_masked(g, layer, xs, node, mask=None):
    ys = _embedding(g, layer, xs, node)
    if not layer.mask_zero:
        return ys, [None]
    ids = g.op("Cast", [g.nhwc(xs[0])], "ids", to=g.onnx.TensorProto.INT64)
    return ys, [g.op("Not", [g.op("Equal", [ids, g.const(np.array(0, np.int64), "zero")])],
                     "mask")]


def _global_avg_masked(g, layer, xs, node, mask=None):
    """GlobalAveragePooling1D over the unmasked steps (nncore's weights: mask / max(count,
    1e-7))."""
    if mask is None:
        return _global_pool("ReduceMean")(g, layer, xs, node), [None]
    if layer.keepdims:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}): keepdims=True "
                         "has no ONNX export in nncore")
    x = g.nhwc(xs[0])
    w = g.op("Unsqueeze", [g.op("Cast", [mask], "w", to=g.onnx.TensorProto.FLOAT),
                           g.i64([2], "axes")])
    cnt = g.op("Max", [g.op("ReduceSum", [w, g.i64([1], "axes")], "cnt", keepdims=1),
                       g.const(np.array(1e-7, np.float32), "tiny")], "cnt")
    y = g.op("ReduceSum", [g.op("Mul", [x, g.op("Div", [w, cnt])]), g.i64([1], "axes")],
             layer.name, keepdims=0)
    return [y], [None]


def _time_distributed(g, layer, xs, node):
    """y[:, t] = layer(x[:, t]): (B, T, ...) reshaped to (B*T, ...), the inner layer's own
    exporter, reshaped back to (B, T, ...)."""
    from types import SimpleNamespace as NS

    inner = layer.layer
    shp = tuple(node.flat_inputs[0].shape)
    out_shape = tuple(node.flat_outputs[0].shape)
    x = g.op("Reshape", [g.nhwc(xs[0]), g.i64([-1] + list(shp[2:]), "shape")], layer.name)
    fake = NS(flat_inputs=[NS(shape=(None,) + shp[2:])],
              flat_outputs=[NS(shape=(None,) + out_shape[2:])])
    if getattr(inner, "_is_model", False):
        if len(inner.inputs) != 1 or len(inner.outputs) != 1:
            raise ValueError(f"layer {layer.name!r} (TimeDistributed): the inner model must "
                             "have one input and one output")
        ys = _emit(g, inner, [x])
    else:
        fn = ONNX_EXPORTERS.get(type(inner).__name__)
        if fn is None:
            raise ValueError(f"layer {layer.name!r} (TimeDistributed): the inner layer "
                             f"{inner.name!r} ({type(inner).__name__}) has no ONNX export")
        ys = fn(g, inner, [x], fake)  # (a mask the inner layer makes stays inside, as nncore)
    if len(ys) != 1:
        raise ValueError(f"layer {layer.name!r} (TimeDistributed): the inner layer must have "
                         "one output")
    if shp[1] is not None:
        back = g.i64([-1, shp[1]] + list(out_shape[2:]), "shape")
    else:  # steps of unknown length: (B, T) read from the input at run time
        bt = g.op("Slice", [g.op("Shape", [g.nhwc(xs[0])], "shp"), g.i64([0], "s0"),
                            g.i64([2], "s2")], "batch_steps")
        back = g.op("Concat", [bt, g.i64(list(out_shape[2:]), "rest")], "shape", axis=0)
    return [g.op("Reshape", [g.nhwc(ys[0]), back], layer.name)]


def _elementwise(g, x, op_type, base, **attrs):
    return g.same_layout(x, g.op(op_type, [x], base, **attrs))


def _relu_layer(g, layer, xs, node):
    x = xs[0]
    slope, thr, top = float(layer.negative_slope), float(layer.threshold), layer.max_value
    if slope == 0.0 and thr == 0.0 and top is None:
        return [_elementwise(g, x, "Relu", layer.name)]
    if thr == 0.0 and top is None:  # Keras: a plain leaky ReLU
        return [_elementwise(g, x, "LeakyRelu", layer.name, alpha=slope)]
    if slope == 0.0 and thr == 0.0:
        lo, hi = g.fresh("lo"), g.fresh("hi")  # Clip's bounds are scalars (0-d)
        g.inits.append(g.onnx.numpy_helper.from_array(np.array(0.0, np.float32), lo))
        g.inits.append(g.onnx.numpy_helper.from_array(np.array(top, np.float32), hi))
        return [g.same_layout(x, g.op("Clip", [x, lo, hi], layer.name))]
    # nncore's ReLU (activations.relu_general): x where x > threshold, else
    # negative_slope * (x - threshold); then at most max_value.
    thr_c = g.const(np.array(thr, np.float32), "thr")
    below = g.op("Mul", [g.op("Sub", [x, thr_c], "shifted") if thr != 0.0 else x,
                         g.const(np.array(slope, np.float32), "slope")], "below")
    y = g.op("Where", [g.op("Greater", [x, thr_c], "above"), x, below],
             layer.name if top is None else "relu")
    if top is not None:
        y = g.op("Min", [y, g.const(np.array(top, np.float32), "top")], layer.name)
    return [g.same_layout(x, y)]


def _leaky_relu(g, layer, xs, node):
    return [_elementwise(g, xs[0], "LeakyRelu", layer.name, alpha=float(layer.negative_slope))]


def _elu(g, layer, xs, node):
    return [_elementwise(g, xs[0], "Elu", layer.name, alpha=float(layer.alpha))]


def _softmax_layer(g, layer, xs, node):
    rank = len(node.flat_inputs[0].shape)
    ax = layer.axis
    if isinstance(ax, (list, tuple)) and len(ax) == 1:
        ax = ax[0]
    if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)) or not -rank < ax < rank \
            or ax % rank == 0:
        raise ValueError(f"layer {layer.name!r} (Softmax): axis {layer.axis!r} has no ONNX "
                         "export (ONNX's Softmax takes one non-batch axis)")
    ax = int(ax) % rank
    return [g.op("Softmax", [g.nhwc(xs[0])], layer.name, axis=-1 if ax == rank - 1 else ax)]


def _global_pool(op_type):
    def f(g, layer, xs, node):
        rank = len(node.flat_inputs[0].shape)
        return [g.op(op_type, [g.nhwc(xs[0])], layer.name, axes=list(range(1, rank - 1)),
                     keepdims=int(bool(getattr(layer, "keepdims", False))))]
    return f


def _batch_norm(g, layer, xs, node):
    rank = len(node.flat_inputs[0].shape)
    if layer.axis not in (-1, rank - 1) or rank not in (2, 3, 4):
        raise ValueError(f"layer {layer.name!r} (BatchNormalization): only the last axis of a "
                         "2-D, 3-D or 4-D input has an ONNX export in nncore")
    c = layer.moving_mean.shape[0]
    gamma = layer.gamma if layer.scale else np.ones(c, np.float32)
    beta = layer.beta if layer.center else np.zeros(c, np.float32)
    x = g.channels_first(xs[0], rank) if rank > 2 else g.nhwc(xs[0])
    ins = [x] + [g.const(np.asarray(v, np.float32), f"{layer.name}_{n}") for n, v in
                 (("scale", gamma), ("bias", beta), ("mean", layer.moving_mean),
                  ("var", layer.moving_variance))]
    y = g.op("BatchNormalization", ins, layer.name, epsilon=float(layer.epsilon))
    if rank > 2:
        g.layout[y] = "NCHW" if rank == 4 else "NCW"
    return [y]


def _layer_norm(g, layer, xs, node):
    """ONNX LayerNormalization normalizes the trailing axes from `axis` on: other axes are
    moved to the end around it (two Transposes)."""
    shape = node.flat_inputs[0].shape
    rank = len(shape)
    axes = sorted({a % rank for a in layer.axis})
    if 0 in axes or getattr(layer, "rms_scaling", False):
        raise ValueError(f"layer {layer.name!r} (LayerNormalization): "
                         f"{'rms_scaling' if 0 not in axes else 'the batch axis'} has no ONNX "
                         "export in nncore")
    nshape = [shape[a] for a in axes]

    def param(w, fill):  # nncore applies gamma/beta flattened over the axes in increasing order
        return (np.full(nshape, fill, np.float32) if w is None else
                np.asarray(w, np.float32).reshape(nshape))
    ins = [param(layer.gamma if layer.scale else None, 1.0),
           param(layer.beta if layer.center else None, 0.0)]
    x = g.nhwc(xs[0])
    trailing = axes == list(range(rank - len(axes), rank))
    perm = [a for a in range(rank) if a not in axes] + axes
    if not trailing:
        x = g.op("Transpose", [x], "ln_in", perm=perm)
    y = g.op("LayerNormalization", [x, g.const(ins[0], f"{layer.name}_scale"),
                                    g.const(ins[1], f"{layer.name}_bias")],
             layer.name if trailing else "ln", axis=-len(axes),
             epsilon=float(layer.epsilon))
    if not trailing:
        y = g.op("Transpose", [y], layer.name, perm=[int(i) for i in np.argsort(perm)])
    return [y]


def _embedding(g, layer, xs, node):
    ids = g.op("Cast", [g.nhwc(xs[0])], "ids", to=g.onnx.TensorProto.INT64)
    w = g.const(np.asarray(layer.embeddings, np.float32), f"{layer.name}_embeddings")
    return [g.op("Gather", [w, ids], layer.name, axis=0)]


def _depthwise_conv(g, layer, xs, node, bias=True):
    """DepthwiseConv2D as ONNX Conv with group = channels: Keras's output channel c*M + m is
    ONNX's filter c*M + m of group c."""
    x = g.nchw(xs[0])
    shp = node.flat_inputs[0].shape
    k = np.asarray(layer.depthwise_kernel, np.float32)
    kh, kw, c, m = k.shape
    w = g.const(np.transpose(k.reshape(kh, kw, c * m), (2, 0, 1))[:, None],
                f"{layer.name}_depthwise")
    ins = [x, w] + ([g.const(layer.bias, f"{layer.name}_bias")]
                    if bias and layer.use_bias else [])
    pads = (_same_pads(shp[1:3], layer.kernel_size, layer.strides, layer.dilation_rate)
            if layer.padding == "same" else [0, 0, 0, 0])
    y = g.op("Conv", ins, layer.name, kernel_shape=list(layer.kernel_size),
             strides=list(layer.strides), dilations=list(layer.dilation_rate), **_pads(pads),
             group=int(c))
    g.layout[y] = "NCHW"
    return y


def _depthwise(g, layer, xs, node):
    return [_activation(g, _depthwise_conv(g, layer, xs, node), layer.activation,
                        keep_layout=True)]


def _separable(g, layer, xs, node):
    d = _depthwise_conv(g, layer, xs, node, bias=False)
    w = g.const(np.transpose(np.asarray(layer.pointwise_kernel, np.float32), (3, 2, 0, 1)),
                f"{layer.name}_pointwise")
    ins = [d, w] + ([g.const(layer.bias, f"{layer.name}_bias")] if layer.use_bias else [])
    y = g.op("Conv", ins, layer.name, kernel_shape=[1, 1], strides=[1, 1], dilations=[1, 1],
             pads=[0, 0, 0, 0])
    g.layout[y] = "NCHW"
    return [_activation(g, y, layer.activation, keep_layout=True)]


def _rescaling(g, layer, xs, node):
    x = g.nhwc(xs[0])
    y = g.op("Mul", [x, g.const(np.asarray(layer.scale, np.float32), f"{layer.name}_scale")],
             layer.name)
    if np.any(np.asarray(layer.offset) != 0):
        y = g.op("Add", [y, g.const(np.asarray(layer.offset, np.float32),
                                    f"{layer.name}_offset")], layer.name)
    return [y]


def _normalization(g, layer, xs, node):
    """(x - mean) / max(sqrt(variance), eps) with the layer's broadcast shapes as constants
    (invert: mean + x * sd)."""
    from ..layers.preprocessing import _EPS

    rank = len(node.flat_inputs[0].shape)
    m = np.asarray(layer._broadcast(layer.mean, rank), np.float32)
    sd = np.maximum(np.sqrt(np.asarray(layer._broadcast(layer.variance, rank), np.float32)),
                    np.float32(_EPS)).astype(np.float32)
    x = g.nhwc(xs[0])
    mc, sc = g.const(m, f"{layer.name}_mean"), g.const(sd, f"{layer.name}_sd")
    if layer.invert:
        return [g.op("Add", [g.op("Mul", [x, sc], layer.name), mc], layer.name)]
    return [g.op("Div", [g.op("Sub", [x, mc], layer.name), sc], layer.name)]


def _permute(g, layer, xs, node):
    return [g.op("Transpose", [g.nhwc(xs[0])], layer.name, perm=[0] + list(layer.dims))]


def _zero_pad(g, layer, xs, node):
    pairs = [tuple(int(v) for v in p) for p in layer.padding]
    pads = [0] + [b for b, _ in pairs] + [0, 0] + [a for _, a in pairs] + [0]
    return [g.op("Pad", [g.nhwc(xs[0]), g.const(np.array(pads, np.int64), "pads")], layer.name,
                 mode="constant")]


def _crop(g, layer, xs, node):
    shape = node.flat_inputs[0].shape
    pairs = [tuple(int(v) for v in p) for p in layer.cropping]
    starts = [b for b, _ in pairs]
    # an axis of unknown length is cut from its end (a negative end; none to cut: to the end)
    ends = [(-a if a else _BIG) if shape[1 + i] is None else shape[1 + i] - a
            for i, (_, a) in enumerate(pairs)]
    axes = list(range(1, 1 + len(pairs)))
    ins = [g.nhwc(xs[0])] + [g.const(np.array(v, np.int64), n) for n, v in
                             (("starts", starts), ("ends", ends), ("axes", axes))]
    return [g.op("Slice", ins, layer.name)]


def _upsample(g, layer, xs, node):
    interp = getattr(layer, "interpolation", "nearest")
    if interp not in ("nearest", "bilinear"):
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}): interpolation "
                         f"{layer.interpolation!r} has no ONNX export in nncore")
    size = [layer.size] if isinstance(layer.size, int) else list(layer.size)
    scales = g.const(np.array([1.0] + [float(v) for v in size] + [1.0], np.float32), "scales")
    if interp == "bilinear":  # half-pixel centres, edges clamped (tf.image.resize's bilinear)
        return [g.op("Resize", [g.nhwc(xs[0]), "", scales], layer.name, mode="linear",
                     coordinate_transformation_mode="half_pixel")]
    return [g.op("Resize", [g.nhwc(xs[0]), "", scales], layer.name, mode="nearest",
                 coordinate_transformation_mode="asymmetric", nearest_mode="floor")]


def _random_crop(g, layer, xs, node):
    """RandomCrop at inference: the central window of the target's aspect ratio (Slice), resized
    bilinearly to (height, width) (Resize, half-pixel centres, edges clamped; the output size
    from the input's batch and channels and the target)."""
    shape = node.flat_inputs[0].shape
    if len(shape) != 4:
        raise ValueError(f"layer {layer.name!r} (RandomCrop): only a batch of images "
                         "(batch, height, width, channels) has an ONNX export")
    h, w, c = shape[1], shape[2], shape[3]
    th, tw = layer.height, layer.width
    ch = max(min(h, int(float(w * th) / tw)), 1)  # as layers.augmentation.RandomCrop._maps
    cw = max(min(w, int(float(h * tw) / th)), 1)
    hs, ws = int(float(h - ch) / 2), int(float(w - cw) / 2)
    x = g.nhwc(xs[0])
    if (ch, cw) != (h, w):
        x = g.op("Slice", [x, g.i64([hs, ws], "starts"), g.i64([hs + ch, ws + cw], "ends"),
                           g.i64([1, 2], "axes")], "crop")
    if (ch, cw) == (th, tw):
        return [g.op("Identity", [x], layer.name)]
    n = g.op("Slice", [g.op("Shape", [x], "shp"), g.i64([0], "s0"), g.i64([1], "s1")], "batch")
    sizes = g.op("Concat", [n, g.i64([th, tw, c], "hwc")], "sizes", axis=0)
    return [g.op("Resize", [x, "", "", sizes], layer.name, mode="linear",
                 coordinate_transformation_mode="half_pixel")]


def _prelu(g, layer, xs, node):
    a = g.const(np.asarray(layer.alpha, np.float32), f"{layer.name}_alpha")
    return [g.op("PRelu", [g.nhwc(xs[0]), a], layer.name)]  # alpha broadcasts from the right


# ---- categorical preprocessing (layers/categorical.py) ----------------------------------------
# Integer values keep their type (g.dtype); where nncore raises on an input (a value outside
# the tokens, an OOV value with num_oov_indices=0, an index outside the vocabulary), a graph
# cannot: the ONNX model gives a zero row (encodings) or -1 (int lookups) instead.
def _encode(g, idx, depth, mode, shape, base):
    """nncore's _encode: one_hot ((B, 1) -> (B, depth), else idx.shape + (depth,)), or
    multi_hot / count of each row's values over depth bins ((B, ...) -> (B, depth)), as
    Equal against 0..depth-1 (a value outside that range gives a zero row, never a wrap)."""
    dt = g.dtype.get(idx, np.dtype(np.float32))
    bins = g.const(np.arange(depth, dtype=dt), f"{base}_bins")
    if mode == "one_hot":
        if len(shape) == 2 and shape[1] == 1:
            idx = g.op("Squeeze", [idx, g.i64([1], "axes")], base)
    else:
        idx = g.op("Reshape", [idx, g.i64([0, -1], "shape")], base)  # (B, n)
    hot = g.op("Cast", [g.op("Equal", [g.op("Unsqueeze", [idx, g.i64([-1], "axes")], base), bins],
                             base)], base, to=g.onnx.TensorProto.FLOAT)
    if mode == "one_hot":
        return hot
    if mode == "multi_hot":
        return g.op("ReduceMax", [hot], base, axes=[1], keepdims=0)
    return g.op("ReduceSum", [hot, g.i64([1], "axes")], base, keepdims=0)


def _as_layer_dtype(g, layer, y):
    """y cast to the layer's output dtype (Keras's: int64 lookup encodings, int32 Discretization
    indices, a `dtype=` argument) when the graph made it another type."""
    want = np.dtype(layer.output_dtype)
    if g.dtype.get(y, np.dtype(np.float32)) == want:
        return y
    T = g.onnx.TensorProto
    to = {np.dtype(np.float32): T.FLOAT, np.dtype(np.float64): T.DOUBLE,
          np.dtype(np.int32): T.INT32, np.dtype(np.int64): T.INT64}[want]
    y = g.op("Cast", [y], layer.name, to=to)
    g.dtype[y] = want
    return y


def _category_encoding(g, layer, xs, node):
    return [_as_layer_dtype(g, layer, _encode(g, g.nhwc(xs[0]), layer.num_tokens,
                                              layer.output_mode, node.flat_inputs[0].shape,
                                              layer.name))]


def _discretization(g, layer, xs, node):
    """np.digitize(x, boundaries) (nncore's and Keras's rule: i with b[i-1] <= x < b[i]) as the
    count of boundaries <= x, in float64 as nncore compares; NaN is the last bin (digitize)."""
    T = g.onnx.TensorProto
    x = g.op("Cast", [g.nhwc(xs[0])], layer.name, to=T.DOUBLE)
    b = g.const(np.asarray(layer.bin_boundaries, np.float64), f"{layer.name}_boundaries")
    ge = g.op("GreaterOrEqual", [g.op("Unsqueeze", [x, g.i64([-1], "axes")], layer.name), b],
              layer.name)
    idx = g.op("ReduceSum", [g.op("Cast", [ge], layer.name, to=T.INT64), g.i64([-1], "axes")],
               layer.name, keepdims=0)
    idx = g.op("Where", [g.op("IsNaN", [x], layer.name),
                         g.const(np.array(len(layer.bin_boundaries), np.int64), "nan_bin"), idx],
               layer.name)
    g.dtype[idx] = np.dtype(np.int64)
    if layer.output_mode == "int":
        return [_as_layer_dtype(g, layer, idx)]
    return [_as_layer_dtype(g, layer, _encode(g, idx, layer._depth(), layer.output_mode,
                                              node.flat_inputs[0].shape, layer.name))]


def _integer_lookup(g, layer, xs, node):
    """IntegerLookup: an ai.onnx.ml LabelEncoder (int64 keys -> int64 indices: the mask token
    -> 0, the vocabulary -> its index; default the OOV index, -1 with num_oov_indices=0), then
    the output_mode's encoding; invert=True a Gather from the whole vocabulary."""
    T = g.onnx.TensorProto
    x = g.nhwc(xs[0])
    ids = x if g.dtype.get(x) == np.int64 else g.op("Cast", [x], layer.name, to=T.INT64)
    if layer.invert:
        vocab = g.const(np.array(layer.get_vocabulary(), np.int64), f"{layer.name}_vocabulary")
        y = g.op("Gather", [vocab, ids], layer.name, axis=0)
        g.dtype[y] = np.dtype(np.int64)
        return [y]
    y = _label_encoder(g, layer, ids, [int(v) for v in layer._vocab], "int64")
    return _lookup_output(g, layer, y, node)


def _lookup_output(g, layer, y, node):
    """A lookup's indices in its output_mode: as they are ('int'), encoded, or tf_idf (the
    counts times the layer's inverse document frequencies)."""
    if layer.output_mode == "int":
        return [y]
    depth = layer._depth()
    mode = "count" if layer.output_mode == "tf_idf" else layer.output_mode
    out = _encode(g, y, depth, mode, node.flat_inputs[0].shape, layer.name)
    if layer.output_mode == "tf_idf":
        idf = np.asarray(layer.idf_weights[:depth], np.float32)
        out = g.op("Mul", [out, g.const(idf, f"{layer.name}_idf")], layer.name)
    return [_as_layer_dtype(g, layer, out)]


def _label_encoder(g, layer, ids, vocab, kind):
    """keys (mask token, vocabulary) -> their indices; anything else -> the OOV index (-1
    with num_oov_indices=0, where nncore raises). Several OOV slots: integers by floormod
    (Keras's oov_method 'floormod', ONNX Mod's integer rule); hashed slots have no operator."""
    n_sp = len(layer._specials())
    n_oov = layer.num_oov_indices
    if n_oov > 1 and (kind != "int64" or layer.oov_method != "floormod"):
        why = "string tokens are hashed into them" if kind != "int64" else \
            f"oov_method={layer.oov_method!r} hashes into them"
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}): num_oov_indices="
                         f"{n_oov} has no ONNX export ({why}; ONNX has no such hash)")
    keys = ([layer.mask_token] if layer.mask_token is not None else []) + list(vocab)
    values = ([0] if layer.mask_token is not None else []) + list(range(n_sp, n_sp + len(vocab)))
    start = 1 if layer.mask_token is not None else 0
    oov = start if n_oov == 1 else -1
    g.ml = True
    y = g.op("LabelEncoder", [ids], layer.name, domain="ai.onnx.ml",
             **{f"keys_{kind}s": keys, "values_int64s": values, "default_int64": oov})
    if n_oov > 1:
        slot = g.op("Add", [g.op("Mod", [ids, g.i64([n_oov], f"{layer.name}_n_oov")],
                                 layer.name),
                            g.i64([start], f"{layer.name}_oov_start")], layer.name)
        unknown = g.op("Equal", [y, g.i64([-1], "minus_one")], layer.name)
        y = g.op("Where", [unknown, slot, y], layer.name)
    g.dtype[y] = np.dtype(np.int64)
    return y


def _string_lookup(g, layer, xs, node):
    """StringLookup: the model's string input (ONNX tensor(string)) through a LabelEncoder of
    string keys, then the output_mode's encoding; invert=True: indices -> the vocabulary's
    strings (a Gather from a string constant; the model's output is tensor(string))."""
    x = g.nhwc(xs[0])
    if not layer.invert:
        if g.dtype.get(x) is None or g.dtype[x].kind != "O":
            raise ValueError(f"layer {layer.name!r} (StringLookup) reads strings: export it "
                             "on a model Input of dtype 'string'")
        y = _label_encoder(g, layer, x, [str(v) for v in layer._vocab], "string")
        return _lookup_output(g, layer, y, node)
    ids = x if g.dtype.get(x) == np.int64 else g.op("Cast", [x], layer.name,
                                                    to=g.onnx.TensorProto.INT64)
    vocab = g.const(np.array(layer.get_vocabulary(), dtype=object), f"{layer.name}_vocabulary")
    y = g.op("Gather", [vocab, ids], layer.name, axis=0)
    g.dtype[y] = np.dtype(object)
    return [y]


# Layers that read their inputs' own dtypes (the others get float32, as nncore casts them).
_TYPED = {"CategoryEncoding", "Discretization", "IntegerLookup", "StringLookup", "Embedding",
          "Lambda", "OpNode"}


ONNX_EXPORTERS: dict = {
    "Dense": _dense, "Conv2D": _conv, "MaxPooling2D": _pool("MaxPool"),
    "AveragePooling2D": _pool("AveragePool"), "Flatten": _flatten, "Reshape": _reshape,
    "Dropout": _identity, "Activation": _activation_layer,
    "ActivityRegularization": _identity,  # its penalty is a training loss only
    # augmentation: identity outside training
    "RandomFlip": _identity, "RandomTranslation": _identity, "RandomRotation": _identity,
    "RandomZoom": _identity, "RandomContrast": _identity, "RandomBrightness": _identity,
    "Add": _chain("Add"), "Subtract": _chain("Sub"), "Multiply": _chain("Mul"),
    "Average": _variadic("Mean"), "Maximum": _variadic("Max"), "Minimum": _variadic("Min"),
    "Concatenate": _concat, "Dot": _dot,
    # issue-11 layers; the identities at inference export to nothing
    "Identity": _identity, "GaussianNoise": _identity, "GaussianDropout": _identity,
    "SpatialDropout1D": _identity, "SpatialDropout2D": _identity,
    "ReLU": _relu_layer, "LeakyReLU": _leaky_relu, "ELU": _elu, "Softmax": _softmax_layer,
    "GlobalAveragePooling2D": _global_pool("ReduceMean"),
    "GlobalMaxPooling1D": _global_pool("ReduceMax"),
    "GlobalMaxPooling2D": _global_pool("ReduceMax"),
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm,
    "DepthwiseConv2D": _depthwise, "SeparableConv2D": _separable,
    "Rescaling": _rescaling, "Normalization": _normalization, "Permute": _permute,
    "ZeroPadding1D": _zero_pad, "ZeroPadding2D": _zero_pad, "Cropping1D": _crop,
    "Cropping2D": _crop, "UpSampling1D": _upsample, "UpSampling2D": _upsample,
    "PReLU": _prelu, "RandomCrop": _random_crop,
    "Conv1D": _conv, "MaxPooling1D": _pool("MaxPool"), "AveragePooling1D": _pool("AveragePool"),
    "RepeatVector": _repeat_vector, "UnitNormalization": _unit_norm,
    "GroupNormalization": _group_norm, "Conv2DTranspose": _conv_transpose,
    "TimeDistributed": _time_distributed,
    "CategoryEncoding": _category_encoding, "Discretization": _discretization,
    "IntegerLookup": _integer_lookup, "StringLookup": _string_lookup,
    "Lambda": lambda g, layer, xs, node: _lambda(g, layer, xs, node),
}


def _lambda(g, layer, xs, node):
    """A Lambda: its traced op graph, op by op (saving/onnx_ops.py)."""
    from .onnx_ops import export_lambda

    return export_lambda(g, layer, xs, node, len(xs) == 1, _emit)

# ---- attention ---------------------------------------------------------------------------------
# MultiHeadAttention and Attention as MatMul / Reshape / Transpose / Softmax, shapes taken at run
# time (Reshape's 0 keeps an axis), so the batch and sequence lengths may be unknown. The masks
# are nncore's (layers/attention.py): the query's (B, T), the value's (and key's) (B, S), the
# attention_mask input and the causal lower triangle, and-ed into a bool (B, T, S) value; masked
# logits become Keras's -1e9 through Where (MHA) or get it subtracted (Attention).
_NEG = np.float32(-1e9)


def _causal(g, q, v, node, i_q=0, i_v=1):
    """The (T, S) lower-triangular bool mask: a constant when both lengths are known, else
    Trilu of a ConstantOfShape (T, S) of ones."""
    t, s = node.flat_inputs[i_q].shape[1], node.flat_inputs[i_v].shape[1]
    if t is not None and s is not None:
        return g.const(np.tri(t, s, dtype=bool), "causal")
    dims = g.op("Concat", [g.op("Slice", [g.op("Shape", [x]), g.i64([1]), g.i64([2])])
                           for x in (q, v)], "ts", axis=0)
    ones = g.op("ConstantOfShape", [dims], "ones",
                value=g.onnx.numpy_helper.from_array(np.ones(1, np.float32)))
    return g.op("Cast", [g.op("Trilu", [ones], "tri", upper=0)], "causal",
                to=g.onnx.TensorProto.BOOL)


def _and(g, a, b):
    return b if a is None else g.op("And", [a, b], "mask")


def _step_mask(g, m, axis):
    """A (B, L) mask as (B, L, 1) (axis 2: the query's) or (B, 1, L) (axis 1: the value's)."""
    return g.op("Unsqueeze", [m, g.i64([axis], "axes")], "mask")


def _heads_of(g, x, w, b, heads, dim, perm, scale=None, base="proj"):
    """x (B, L, E) @ W (E, H, D) + b -> (B, L, H, D) transposed by perm."""
    y = g.op("MatMul", [x, g.const(np.ascontiguousarray(w.reshape(w.shape[0], -1)),
                                   f"{base}_kernel")], base)
    if b is not None:
        y = g.op("Add", [y, g.const(np.ascontiguousarray(b.reshape(-1)), f"{base}_bias")], base)
    if scale is not None:
        y = g.op("Mul", [y, g.const(np.array(scale, np.float32), "scale")], base)
    y = g.op("Reshape", [y, g.i64([0, 0, heads, dim], "shape")], base)
    return g.op("Transpose", [y], base, perm=perm)


def _mha_masked(g, layer, xs, node, masks=None):
    """MultiHeadAttention: Q (B,H,T,Dk) @ K^T (B,H,Dk,S) -> Where(mask, ., -1e9) -> Softmax
    (rows with every position masked: zero when the scores are returned, uniform otherwise, as
    nncore and Keras) @ V (B,H,S,Dv) -> (B,T,H*Dv) @ Wo + bo."""
    sig = layer._call_sig or (len(xs) > 2, False, False, False)
    xs = [g.nhwc(x) for x in xs]
    q, v = xs[0], xs[1]
    k = xs[2] if sig[0] else v
    h, dk, dv = layer.num_heads, layer.key_dim, layer.value_dim
    ws = list(layer.weights)
    per = 2 if layer.use_bias else 1
    wq, wk, wv, wo = (ws[i * per] for i in range(4))
    bq, bk, bv, bo = ((ws[i * per + 1] for i in range(4)) if layer.use_bias else [None] * 4)
    n = layer.name
    qh = _heads_of(g, q, wq, bq, h, dk, [0, 2, 1, 3], layer._scale, f"{n}_query")
    kt = _heads_of(g, k, wk, bk, h, dk, [0, 2, 3, 1], None, f"{n}_key")
    vh = _heads_of(g, v, wv, bv, h, dv, [0, 2, 1, 3], None, f"{n}_value")
    logits = g.op("MatMul", [qh, kt], f"{n}_logits")                    # (B, H, T, S)
    m = None
    masks = list(masks or [])
    if masks and masks[0] is not None:
        m = _step_mask(g, masks[0], 2)
    for i in (1, 2 if sig[0] else None):
        if i is not None and len(masks) > i and masks[i] is not None:
            m = _and(g, m, _step_mask(g, masks[i], 1))
    if sig[2]:
        m = _and(g, m, _causal(g, q, v, node))
    if sig[1]:
        m = _and(g, m, g.op("Cast", [xs[2 + sig[0]]], "attention_mask",
                            to=g.onnx.TensorProto.BOOL))
    m4 = None
    if m is not None:
        m4 = g.op("Unsqueeze", [m, g.i64([1], "axes")], "mask")         # (B, 1, T, S)
        logits = g.op("Where", [m4, logits, g.const(_NEG, "neg")], f"{n}_logits")
    p = g.op("Softmax", [logits], f"{n}_scores", axis=-1)
    if m4 is not None and sig[3]:
        p = g.op("Mul", [p, g.op("Cast", [m4], "maskf", to=g.onnx.TensorProto.FLOAT)],
                 f"{n}_scores")
    o = g.op("MatMul", [p, vh], f"{n}_mix")                              # (B, H, T, Dv)
    o = g.op("Reshape", [g.op("Transpose", [o], f"{n}_mix", perm=[0, 2, 1, 3]),
                         g.i64([0, 0, h * dv], "shape")], f"{n}_mix")
    od = tuple(wo.shape[2:])
    y = g.op("MatMul", [o, g.const(np.ascontiguousarray(wo.reshape(h * dv, -1)),
                                   f"{n}_out_kernel")], n)
    if bo is not None:
        y = g.op("Add", [y, g.const(np.ascontiguousarray(bo.reshape(-1)), f"{n}_out_bias")], n)
    if len(od) > 1:
        y = g.op("Reshape", [y, g.i64([0, 0] + list(od), "shape")], n)
    qm = masks[0] if masks else None
    if sig[3]:
        return [y, p], [qm, None]
    return [y], [qm]


def _luong_masked(g, layer, xs, node, masks=None):
    """Attention: scores (dot: scale * q k^T; concat: c * sum tanh(scale * (q_i + k_j))), the
    value's mask and the causal mask subtract 1e9, Softmax, @ value, zero at masked queries."""
    ret, causal = layer._call_sig
    xs = [g.nhwc(x) for x in xs]
    q, v = xs[0], xs[1]
    k = xs[2] if len(xs) > 2 else v
    n = layer.name
    ws = list(layer.weights)
    scale = g.const(np.asarray(ws[0], np.float32), f"{n}_scale") if layer.use_scale else None
    if layer.score_mode == "dot":
        scores = g.op("MatMul", [q, g.op("Transpose", [k], f"{n}_kt", perm=[0, 2, 1])],
                      f"{n}_scores")
        if scale is not None:
            scores = g.op("Mul", [scores, scale], f"{n}_scores")
    else:
        u = g.op("Add", [g.op("Unsqueeze", [q, g.i64([2], "axes")], f"{n}_q"),
                         g.op("Unsqueeze", [k, g.i64([1], "axes")], f"{n}_k")], f"{n}_u")
        if scale is not None:
            u = g.op("Mul", [u, scale], f"{n}_u")
        t = g.op("ReduceSum", [g.op("Tanh", [u], f"{n}_t"), g.i64([-1], "axes")], f"{n}_t",
                 keepdims=0)
        c = g.const(np.asarray(ws[-1], np.float32), f"{n}_concat_score_weight")
        scores = g.op("Mul", [t, c], f"{n}_scores")
    masks = list(masks or [])
    qm = masks[0] if masks else None
    vm = masks[1] if len(masks) > 1 else None
    sm = None if vm is None else _step_mask(g, vm, 1)
    if causal:
        sm = _and(g, sm, _causal(g, q, v, node))
    if sm is not None:
        scores = g.op("Where", [sm, scores, g.op("Sub", [scores, g.const(-_NEG, "big")])],
                      f"{n}_scores")
    w = g.op("Softmax", [scores], f"{n}_weights", axis=-1)
    out = g.op("MatMul", [w, v], n)
    if qm is not None:
        out = g.op("Where", [_step_mask(g, qm, 2), out, g.const(np.float32(0.0), "zero")], n)
    if ret:
        return [out, w], [qm, None]
    return [out], [qm]


def _merge_masked(cls):
    """An elementwise merge: its values as without masks, and Keras's mask: the OR of its
    inputs' masks, none when one input has none."""
    def f(g, layer, xs, node, masks=None):
        ys = ONNX_EXPORTERS[cls](g, layer, xs, node)
        masks = list(masks or [])
        if not masks or any(m is None for m in masks):
            return ys, [None]
        m = masks[0]
        for x in masks[1:]:
            m = g.op("Or", [m, x], "mask")
        return ys, [m]
    return f


# Layers that read or make a mask: fn(builder, layer, inputs, node, mask=None) ->
# (outputs, output masks). A mask is an ONNX bool (batch, steps) value beside the tensor.
_MASK_EXPORTERS: dict = {
    "SimpleRNN": _rnn_layer, "LSTM": _rnn_layer, "GRU": _rnn_layer,
    "Bidirectional": _bidirectional, "Masking": _masking, "Embedding": _embedding_masked,
    "GlobalAveragePooling1D": _global_avg_masked,
}
# Layers of several inputs that read or pass on their masks: fn(builder, layer, inputs, node,
# masks=[one per input, None where none]) -> (outputs, output masks).
_MULTI_MASK_EXPORTERS: dict = {
    "MultiHeadAttention": _mha_masked, "Attention": _luong_masked,
    **{k: _merge_masked(k) for k in ("Add", "Subtract", "Multiply", "Average", "Maximum",
                                     "Minimum")},
}
ONNX_EXPORTERS.update({k: (lambda fn: lambda g, layer, xs, node: fn(g, layer, xs, node)[0])(v)
                       for k, v in _MASK_EXPORTERS.items()})
ONNX_EXPORTERS.update({k: (lambda fn: lambda g, layer, xs, node: fn(g, layer, xs, node)[0])(v)
                       for k, v in _MULTI_MASK_EXPORTERS.items()
                       if k in ("MultiHeadAttention", "Attention")})


def _emit(g, model, input_values, in_masks=None, out_masks=None):
    """The model's nodes; masks travel beside the values as nncore's graph runs them
    (models/functional.py): made by Masking / Embedding(mask_zero), read by the recurrent
    layers and GlobalAveragePooling1D, passed on by the layers that support masking. A nested
    model is emitted inline, and masks cross its boundary as Keras's tensors carry them:
    `in_masks` (one ONNX bool (batch, steps) value or None per input) are its inputs' masks,
    and `out_masks` (a list) receives its outputs' masks (None where an output has none)."""
    from ..layers.base import Layer

    vals = dict(enumerate(input_values))
    masks: dict = {}
    for i, m in enumerate(in_masks or ()):
        if m is not None:
            masks[i] = m
    for layer, ins, outs, single_in, _, node in model._steps:
        xs = [vals[i] for i in ins]
        m_in = masks.get(ins[0]) if single_in else None
        cls = type(layer).__name__
        if cls not in _TYPED and not getattr(layer, "_is_model", False) and \
                not getattr(layer, "_is_op", False):
            try:
                xs = [g.as_float(x) for x in xs]
            except ValueError as e:
                raise ValueError(f"layer {layer.name!r} ({cls}): {e}") from None
        if not single_in and cls in _MULTI_MASK_EXPORTERS:
            ys, m_out = _MULTI_MASK_EXPORTERS[cls](g, layer, xs, node,
                                                   masks=[masks.get(i) for i in ins])
            for s, y, m in zip(outs, ys, m_out):
                vals[s] = y
                if m is not None:
                    masks[s] = m
            continue
        if not single_in and any(masks.get(i) is not None for i in ins) and (
                layer._consumes_mask or type(layer).compute_mask is not Layer.compute_mask):
            raise ValueError(f"layer {layer.name!r} ({cls}) reads masks on several inputs, "
                             "which nncore does not export to ONNX")
        m_out = [None] * len(outs)
        if getattr(layer, "_is_model", False):
            inner_masks: list = []
            ys = _emit(g, layer, xs, [m_in] if m_in is not None else None, inner_masks)
            m_out = inner_masks
        elif getattr(layer, "_is_op", False) or cls == "Lambda":
            from .onnx_ops import export_lambda, export_op_node

            if m_in is not None:
                raise ValueError(f"layer {layer.name!r} ({cls}) reads a masked tensor, which "
                                 "nncore does not export to ONNX for an op")
            ys = export_lambda(g, layer, xs, node, single_in, _emit) if cls == "Lambda" else \
                export_op_node(g, layer, xs, node, getattr(g, "scope", None) or
                               f"layer {layer.name!r} (an op on the model's tensors)")
        elif cls in _MASK_EXPORTERS:
            ys, m_out = _MASK_EXPORTERS[cls](g, layer, xs, node, mask=m_in)
        else:
            fn = ONNX_EXPORTERS.get(cls)
            if fn is None:
                raise ValueError(f"layer {layer.name!r} ({cls}) has no ONNX export in nncore")
            if m_in is not None and (layer._consumes_mask or layer._makes_mask or
                                     type(layer).compute_mask is not Layer.compute_mask):
                raise ValueError(f"layer {layer.name!r} ({cls}) reads or makes a mask, which "
                                 "nncore does not export to ONNX for this layer")
            ys = fn(g, layer, xs, node)
            if m_in is not None and layer.supports_masking:
                m_out = [m_in] * len(outs)
        for s, y, m in zip(outs, ys, m_out):
            vals[s] = y
            if m is not None:
                masks[s] = m
    if out_masks is not None:
        out_masks[:] = [masks.get(s) for s in model._out_slots]
    return [vals[s] for s in model._out_slots]


def to_onnx(model):
    """The onnx.ModelProto of a built model."""
    onnx = _onnx()
    h = onnx.helper
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; build or fit it before export")
    g = GraphBuilder(onnx)
    inputs, in_vals = [], []
    for t, name in zip(model.inputs, model.input_names):
        dims = ["batch"] + [d if d is not None else f"{name}_d{i}"
                            for i, d in enumerate(t.shape[1:], 1)]
        dt = np.dtype(object) if t.dtype == "string" else np.dtype(t.dtype)
        et = onnx.TensorProto.STRING if dt.kind == "O" else h.np_dtype_to_tensor_dtype(dt)
        inputs.append(h.make_tensor_value_info(name, et, dims))
        if dt != np.float32:  # cast where a float layer reads it (g.as_float)
            g.dtype[name] = dt
        in_vals.append(name)
    outs = _emit(g, model, in_vals)
    outputs = []
    for i, (v, t, name) in enumerate(zip(outs, model.outputs, model.output_names)):
        v = g.nhwc(v)
        if v in in_vals:  # an input passed through: float32, as before
            v = g.as_float(v)
        dt = g.dtype.get(v)
        et = onnx.TensorProto.FLOAT if dt is None else (
            onnx.TensorProto.STRING if dt.kind == "O" else h.np_dtype_to_tensor_dtype(dt))
        oname = name if name not in [o.name for o in outputs] else f"{name}_{i}"
        g.nodes.append(h.make_node("Identity", [v], [oname], name=g.fresh("n_out")))
        dims = ["batch"] + [d if d is not None else f"{oname}_d{i}"
                            for i, d in enumerate(t.shape[1:], 1)]
        outputs.append(h.make_tensor_value_info(oname, et, dims))
    graph = h.make_graph(g.nodes, model.name, inputs, outputs, initializer=g.inits)
    opsets = [h.make_opsetid("", OPSET)] + ([h.make_opsetid(ML_DOMAIN, ML_OPSET)] if g.ml else [])
    proto = h.make_model(graph, producer_name="nncore", opset_imports=opsets)
    proto.ir_version = 8  # what ONNX Runtime 1.1x reads for opset 17
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, filepath):
    proto = to_onnx(model)
    from .keras_format import _atomic_write

    _atomic_write(os.fspath(filepath), proto.SerializeToString())
    return proto


__all__ = ["ONNX_EXPORTERS", "to_onnx", "export_onnx", "OPSET"]
