"""The compiled inference plan: a model's graph flattened once into kernel calls.

``Functional._run`` at inference (training=False, no contexts, no fused loss: predict, __call__,
predict_on_batch, a nested model inside another's inference) runs the plan instead of the
per-layer ``forward`` walk. Per step the plan holds one prepared call: the kernel binding with its
arguments (weight arrays, strides, flags) resolved at build time for the layers it knows
(Conv2D, Dense, DepthwiseConv2D, SeparableConv2D, BatchNormalization, Max/AveragePooling2D,
GlobalAverage/GlobalMaxPooling2D, ReLU and Activation('relu'), Flatten, Add, Concatenate, the
dropout/noise layers as the identity), the layer's own ``forward`` for every other layer.

Most calls are the kernels ``forward`` calls, with the same arguments, so their outputs are
bitwise those of the walk (tests/test_inference_plan.py); max pooling scans for the values only
(``_core.maxpool2d_values``). Three kinds of steps differ from the walk in the last bits, within
the float32 error bound of the float64 result (tested so): DepthwiseConv2D / SeparableConv2D
with a fused step below; global pooling is one pooling window; and a peephole pass fuses
Conv2D / Dense / DepthwiseConv2D / SeparableConv2D (linear activation) + BatchNormalization on
the channels + ReLU (max_value: a cap), when each output is read by the next layer only:
the normalization is folded into scaled copies of the kernel and bias (w * gamma/sqrt(var+eps),
(b - mean) * gamma/sqrt(var+eps) + beta, in float64 then float32) and the ReLU into the kernel. A
depthwise-kernel step (DepthwiseConv2D, or Conv2D on one input channel) read only by a
MaxPooling2D(2) 'valid' pools in the same pass (``depthwise2d_forward(..., maxpool2=True)``: the
forward's rows, then the pooling layer's value scan, so the same bits as the two steps).

The plan is rebuilt when the model or its weights may have changed: it records the global
generation (``bump()``: set_weights, weight loading, an optimizer step, a BatchNormalization
training step moving its statistics, a trainable change, a layer (re)build) and the model's graph
(``_steps``), and a call that finds either changed builds a new plan first. A 3x3 stride-1
Conv2D the Winograd rule can take gets its weight transform once per plan
(``_core.conv2d_winograd_weights``), so no predict call transforms weights, and runs Winograd from
batch 1 on (the layer's forward needs 128 tiles, paying the transform per call): there the plan
differs from the walk within the Winograd error bound (tests/test_inference_winograd.py). Intermediate arrays
come from the kernels' own pooled allocations (common/array_pool.hpp), so a plan holds no
per-call buffers and several threads may run the same plan at once; building is under a lock and
publishes the finished plan in one assignment. A chain runs a large batch CHUNK images at a time,
so that each layer's output is still in cache when the next layer reads it.
"""

from __future__ import annotations

import threading

import numpy as np

from .. import _core, activations

_GENERATION = [0]
_LOCK = threading.Lock()
CHUNK = 16  # images per pass through a chain when the batch is large (InferencePlan.run)


def bump() -> None:
    """Invalidate every inference plan (weights or structure may have changed)."""
    _GENERATION[0] += 1


def generation() -> int:
    return _GENERATION[0]


def _as_f32(x):
    if type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous:
        return x
    return np.ascontiguousarray(x, dtype=np.float32)


def _activation_call(act):
    """z -> activation(z), exactly as ActivationMixin._activate(z, logits=False) computes it
    (None: the identity, e.g. linear, or a ReLU fused into the kernel)."""
    if act == "linear":
        return None
    if act in activations.KERNEL_NAMES:
        from ..kernels import train as _train

        # the kernel that _train.activation(z, act, out=z) calls, without its argument checks:
        # z is a step's own fresh float32 C-contiguous output
        code, fwd = _train._act_code(act), _core.activation_forward

        def call(z):
            fwd(z, z, code)
            return z

        return call
    return lambda z: activations.forward(act, z)


class _Affine:
    """A step computing act(x (*) w + b) per output channel (the last axis): Conv2D, Dense,
    DepthwiseConv2D, SeparableConv2D. The plan may fold a following BatchNormalization into w and
    b (scaled copies: the layer's own arrays are never written) and fuse a following ReLU
    (with max_value: a cap) into the kernel call."""

    __slots__ = ("kind", "layer", "w", "b", "act", "relu", "cap", "folded", "pool2")

    def __init__(self, kind, layer, w, b):
        self.kind, self.layer, self.w, self.b = kind, layer, w, b
        self.act = layer.activation
        self.relu = self.act == "relu"
        self.act = "linear" if self.relu else self.act
        self.cap, self.folded, self.pool2 = None, False, False

    def fold(self, scale, shift):
        """w, b <- w * scale, b * scale + shift over the output channels (float64, then float32)."""
        scale64, shift64 = scale, shift
        if self.kind == "dw":  # output channel c*M + m of the (KH, KW, C, M) kernel
            w = self.w.astype(np.float64) * scale64.reshape(self.w.shape[2:])
        else:
            w = self.w.astype(np.float64) * scale64
        b = shift64 if self.b is None else self.b.astype(np.float64) * scale64 + shift64
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self.b = np.ascontiguousarray(b, dtype=np.float32)
        self.folded = True

    def call(self):
        layer, w, b, relu, cap = self.layer, self.w, self.b, self.relu, self.cap
        post = _activation_call(self.act)
        if self.kind in ("dw", "sep"):
            dw = _core.depthwise2d_forward
            st, same, dil = layer.strides, layer.padding == "same", layer.dilation_rate
            if self.kind == "dw":
                pool2 = self.pool2

                def run(x):
                    return dw(_as_f32(x), w, b, st, same, dil, relu, cap, False, pool2)
            else:
                dk, conv = layer.depthwise_kernel, _core.conv2d_forward

                def run(x):
                    d = dw(_as_f32(x), dk, None, st, same, dil, False)
                    z = conv(d, w, b, (1, 1), False, (1, 1), relu, False)
                    return z if cap is None else np.minimum(z, cap, out=z)
        elif self.kind == "conv":
            st, same, dil = layer.strides, layer.padding == "same", layer.dilation_rate
            u = _winograd_weights(layer, w)
            if u is None:
                def conv(x):
                    return _core.conv2d_forward(x, w, b, st, same, dil, relu, False)
            else:
                def conv(x):
                    return _core.conv2d_forward_cached(x, w, u, b, st, same, dil, relu)

            def run(x):
                z = conv(_as_f32(x))
                return z if cap is None else np.minimum(z, cap, out=z)
        else:
            units = layer.units
            sgemm, empty, f32 = _core.sgemm, np.empty, np.float32

            def run(x):
                x = _as_f32(x)
                x2 = x.reshape(-1, x.shape[-1])
                z = empty((x2.shape[0], units), f32)
                sgemm(z, x2, w, False, False, 1.0, 0.0, b, relu)
                if cap is not None:
                    np.minimum(z, cap, out=z)
                return z if x.ndim == 2 else z.reshape(x.shape[:-1] + (units,))
        if post is None:
            return run
        return lambda x: post(run(x))


def _winograd_weights(layer, w):
    """w's Winograd transform, made once per plan, for a Conv2D that runs as Winograd at some batch
    size under the current algorithm setting and ISA (the C++ side checks both again per call and
    falls back to conv2d_forward, the same bits); else None."""
    if tuple(w.shape[:2]) != (3, 3) or w.shape[2] < 2 or tuple(layer.strides) != (1, 1) \
            or tuple(layer.dilation_rate) != (1, 1):
        return None
    shape = getattr(layer, "_build_shape", None)
    if shape is not None and len(shape) == 4 and shape[1] and shape[2]:
        h, wd = int(shape[1]), int(shape[2])
        (oh, ow), _ = _core.conv2d_geometry((h, wd), (3, 3), (1, 1), layer.padding == "same",
                                            (1, 1))
        if not _core.conv2d_uses_winograd(1 << 20, h, wd, w.shape[2], w.shape[3], oh, ow):
            return None
    return _core.conv2d_winograd_weights(w)


def _affine(layer):
    from ..layers.conv import Conv2D, DepthwiseConv2D, SeparableConv2D
    from ..layers.core import Dense

    t = type(layer)
    if t is Conv2D and layer.groups == 1:
        # One input channel: conv2d_forward runs the depthwise kernel (depth multiplier F, the
        # same bits); called directly, a cap (ReLU6) is fused too.
        kind = "dw" if layer.kernel.shape[2] == 1 else "conv"
        return _Affine(kind, layer, layer.kernel, layer.bias)
    if t is Dense:
        return _Affine("dense", layer, layer.kernel, layer.bias)
    if t is DepthwiseConv2D:
        return _Affine("dw", layer, layer.depthwise_kernel, layer.bias)
    if t is SeparableConv2D:
        return _Affine("sep", layer, layer.pointwise_kernel, layer.bias)
    return None


def _bn_scale_shift(layer):
    """(scale, shift) float64 of an inference BatchNormalization on the last axis, computed as its
    forward does (y = x * scale + shift), or None when it normalizes another axis."""
    from ..layers.normalization import BatchNormalization, _norm_axis

    if type(layer) is not BatchNormalization:
        return None
    rank = len(layer._build_shape)
    if _norm_axis(layer.axis, rank, layer.name) != rank - 1:
        return None
    inv = 1.0 / np.sqrt(layer.moving_variance.astype(np.float64) + layer.epsilon)
    scale = inv if layer.gamma is None else inv * layer.gamma
    shift = -layer.moving_mean * scale
    if layer.beta is not None:
        shift = shift + layer.beta
    return scale, shift


def _is_maxpool2(layer):
    """True for MaxPooling2D(pool_size=2, strides=2, padding='valid') on channels_last."""
    from ..layers.pooling import MaxPooling2D

    return (type(layer) is MaxPooling2D and tuple(layer.pool_size) == (2, 2)
            and tuple(layer.strides) == (2, 2) and layer.padding == "valid"
            and getattr(layer, "data_format", "channels_last") == "channels_last")


def _relu_cap(layer):
    """(True, cap or None) when layer is a plain ReLU (max(x, 0), maybe capped), else None."""
    from ..layers.activation_layers import ReLU
    from ..layers.core import Activation

    if type(layer) is ReLU and layer.negative_slope == 0.0 and layer.threshold == 0.0:
        return True, (None if layer.max_value is None else np.float32(layer.max_value))
    if type(layer) is Activation and layer.activation == "relu":
        return True, None
    return None


def _bn_call(layer):
    ss = _bn_scale_shift(layer)
    if ss is None:
        return None
    scale, shift = (np.ascontiguousarray(v, dtype=np.float32) for v in ss)
    return lambda x: (_as_f32(x) * scale + shift).astype(np.float32, copy=False)


def _maxpool2d_call(layer):
    from ..layers.pooling import MaxPooling2D

    if type(layer) is not MaxPooling2D:
        return None
    pool, strides, same = layer.pool_size, layer.strides, layer.padding == "same"
    values = _core.maxpool2d_values
    return lambda x: values(_as_f32(x), pool, strides, same)


def _avgpool2d_call(layer):
    from ..layers.pooling import AveragePooling2D

    if type(layer) is not AveragePooling2D:
        return None
    pool, strides, same = layer.pool_size, layer.strides, layer.padding == "same"
    avg = _core.avgpool2d_forward
    return lambda x: avg(_as_f32(x), pool, strides, same)


def _global_pool_call(layer):
    """Global pooling as one pooling window over the whole image (the pooling kernels: the mean
    is the sum times 1/(H*W), so its bits may differ from the layer's np.mean)."""
    from ..layers.pooling import GlobalAveragePooling2D, GlobalMaxPooling2D

    t = type(layer)
    if t is GlobalAveragePooling2D:
        pool = _core.avgpool2d_forward
    elif t is GlobalMaxPooling2D:
        pool = _core.maxpool2d_values
    else:
        return None
    keep = layer.keepdims

    def call(x):
        x = _as_f32(x)
        n, h, w, c = x.shape
        y = pool(x, (h, w), (h, w), False)
        return y if keep else y.reshape(n, c)

    return call


def _relu_call(layer):
    rc = _relu_cap(layer)
    if rc is None:
        return None
    from ..kernels import train as _train

    cap, act = rc[1], _train.activation
    if cap is None:
        return lambda x: act(x, "relu")
    return lambda x: np.minimum(act(x, "relu"), cap)


def _identity_call(layer):
    from ..layers import core
    from ..layers import regularization as reg

    if type(layer) in (core.Dropout, reg.GaussianDropout, reg.GaussianNoise, reg.SpatialDropout1D,
                       reg.SpatialDropout2D):
        return lambda x: x  # the forward at inference returns its input
    return None


def _flatten_call(layer):
    from ..layers.core import Flatten

    if type(layer) is not Flatten:
        return None
    return lambda x: x.reshape(x.shape[0], -1)


def _merge_call(layer):
    """Add and Concatenate over a list of inputs."""
    from ..layers.merge import Add, Concatenate

    if type(layer) is Add:
        def add(xs):  # as Add.forward: x_1 + x_2, then += the others
            y = _as_f32(xs[0]) + _as_f32(xs[1])
            for x in xs[2:]:
                y += x
            return y

        return add
    if type(layer) is Concatenate:
        ax, cat = layer.axis, np.concatenate
        return lambda xs: cat([_as_f32(x) for x in xs], axis=ax)
    return None


_COMPILERS = (_maxpool2d_call, _avgpool2d_call, _global_pool_call, _flatten_call, _bn_call,
              _relu_call, _identity_call)


def compile_step(layer):
    """(call, fast): call(x) -> y for one single-input, single-output step; fast tells whether a
    kernel call was prepared (False: the layer's own forward)."""
    aff = _affine(layer)
    if aff is not None:
        return aff.call(), True
    for make in _COMPILERS:
        call = make(layer)
        if call is not None:
            return call, True
    fwd = layer.forward
    return (lambda x: fwd(x, training=False, need_ctx=False)[0]), False


class InferencePlan:
    """One model's steps as prepared calls over value slots (a chain runs without slots)."""

    __slots__ = ("gen", "steps_id", "chain", "calls", "in_slots", "out_slots", "n_slots",
                 "fast", "spans")

    def __init__(self, model, gen):
        from ..layers.node import flatten

        self.gen, self.steps_id = gen, id(model._steps)
        self.in_slots, self.out_slots = list(model._in_slots), list(model._out_slots)
        self.n_slots = model._n_slots
        steps = [list(st[:5]) for st in model._steps]  # layer, ins, outs, single_in, single_out
        readers = [0] * self.n_slots  # steps reading each slot; the model's outputs count too
        for _, ins, *_ in steps:
            for i in ins:
                readers[i] += 1
        for s in self.out_slots:
            readers[s] += 1
        calls, fast, spans = [], [], []  # spans: the model steps [first, end) of each call
        k = 0
        while k < len(steps):
            layer, ins, outs, single_in, single_out = steps[k]
            first = k
            k += 1
            if single_in and single_out:
                aff = _affine(layer)
                if aff is not None:
                    # Peephole: BatchNormalization, then a ReLU, reading this step's output alone.
                    k, outs = self._fuse(aff, steps, k, outs, readers)
                    call, f = aff.call(), True
                else:
                    call, f = compile_step(layer)
            else:
                call = _merge_call(layer)
                f = call is not None
                if call is None:
                    fwd = layer.forward

                    def call(arg, fwd=fwd, single_out=single_out):
                        y = fwd(arg, training=False, need_ctx=False)[0]
                        return y if single_out else flatten(y)

            calls.append((call, ins, outs, single_in, single_out))
            fast.append(f)
            spans.append((first, k))
        self.calls, self.fast, self.spans = calls, fast, spans
        # A chain: every step reads the previous step's single output (Sequential models).
        slots = list(self.in_slots)
        chain = len(slots) == 1 and len(self.out_slots) == 1
        prev = slots[0] if chain else None
        for _, ins, outs, si, so in calls:
            if not chain:
                break
            if not (si and so and ins == [prev]):
                chain = False
                break
            prev = outs[0]
        self.chain = [c[0] for c in calls] if chain and prev == self.out_slots[0] else None

    @staticmethod
    def _fuse(aff, steps, k, outs, readers):
        """Folds steps[k] into aff if it is an inference BatchNormalization (on the channels) of
        aff's output and nothing else reads that output, then likewise a plain ReLU. Returns the
        next step to compile and the output slots of the fused step."""
        def sole_reader(k):
            if k >= len(steps):
                return None
            layer, ins, nouts, si, so = steps[k]
            if si and so and ins == outs and readers[outs[0]] == 1:
                return layer, nouts
            return None

        nxt = sole_reader(k)
        if nxt is not None and aff.act == "linear" and not aff.relu:
            ss = _bn_scale_shift(nxt[0])
            if ss is not None:
                aff.fold(*ss)
                k, outs = k + 1, nxt[1]
                nxt = sole_reader(k)
        if nxt is not None and aff.act == "linear" and not aff.relu:
            rc = _relu_cap(nxt[0])
            if rc is not None:
                aff.relu, aff.cap = rc
                k, outs = k + 1, nxt[1]
                nxt = sole_reader(k)
        # then a 2x2 stride-2 'valid' max pooling, pooled in the depthwise kernel's pass
        if nxt is not None and aff.kind == "dw" and aff.act == "linear" and _is_maxpool2(nxt[0]):
            aff.pool2 = True
            k, outs = k + 1, nxt[1]
        return k, outs

    def run(self, xs):
        chain = self.chain
        if chain is not None:
            x = xs[0]
            n = len(x) if getattr(x, "ndim", 0) else 0
            if n >= 2 * CHUNK:
                # Large batches go through the whole chain CHUNK images at a time (the last
                # chunk takes the remainder, so every chunk has CHUNK..2*CHUNK-1 images): each
                # layer's output then stays in cache for the next layer instead of a round trip
                # to memory per layer (measured on Zen 3, bn_dw_cnn at batch 256: 87 -> 52 us per
                # image on one thread; the seed CNN 166 -> 102).
                cuts = list(range(0, n // CHUNK * CHUNK, CHUNK)) + [n]
                parts = []
                for a, b in zip(cuts, cuts[1:]):
                    h = x[a:b]
                    for call in chain:
                        h = call(h)
                    parts.append(h)
                return [np.concatenate(parts)]
            for call in chain:
                x = call(x)
            return [x]
        vals = [None] * self.n_slots
        for s, x in zip(self.in_slots, xs):
            vals[s] = x
        for call, ins, outs, single_in, single_out in self.calls:
            y = call(vals[ins[0]] if single_in else [vals[i] for i in ins])
            if single_out:
                vals[outs[0]] = y
            else:
                for s, v in zip(outs, y):
                    vals[s] = v
        return [vals[s] for s in self.out_slots]


def plan_for(model):
    """The model's current plan, built (or rebuilt) when missing or stale; None when the graph
    carries Keras masks (the per-layer walk handles those)."""
    plan = getattr(model, "_infer_plan", None)
    gen = _GENERATION[0]
    if plan is not None and plan.gen == gen and plan.steps_id == id(model._steps):
        return plan
    if any(layer._makes_mask for layer, *_ in model._steps):
        return None
    with _LOCK:
        plan = getattr(model, "_infer_plan", None)
        if plan is not None and plan.gen == gen and plan.steps_id == id(model._steps):
            return plan
        plan = InferencePlan(model, gen)
        model._infer_plan = plan  # one assignment: other threads see the old or the new plan
    return plan


__all__ = ["InferencePlan", "bump", "compile_step", "generation", "plan_for"]
