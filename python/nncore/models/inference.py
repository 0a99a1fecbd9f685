"""The compiled inference plan: a model's graph flattened once into kernel calls.

``Functional._run`` at inference (training=False, no contexts, no fused loss: predict, __call__,
predict_on_batch, a nested model inside another's inference) runs the plan instead of the
per-layer ``forward`` walk. Per step the plan holds one prepared call: the kernel binding with its
arguments (weight arrays, strides, flags) resolved at build time for the layers it knows
(Conv2D, Dense, MaxPooling2D without argmax, Flatten), the layer's own ``forward`` for every
other layer. The kernels are the ones ``forward`` calls, with the same arguments, so the outputs
are bitwise those of the per-layer walk (tests/test_inference_plan.py); max pooling scans for the
values only (``_core.maxpool2d_values``, the same maxima without the argmax bookkeeping).

The plan is rebuilt when the model or its weights may have changed: it records the global
generation (``bump()``: set_weights, weight loading, an optimizer step, a trainable change,
a layer (re)build) and the model's graph (``_steps``), and a call that finds either changed
builds a new plan first. Intermediate arrays come from the kernels' own pooled allocations
(common/array_pool.hpp), so a plan holds no per-call buffers and several threads may run the
same plan at once; building is under a lock and publishes the finished plan in one assignment.
"""

from __future__ import annotations

import threading

import numpy as np

from .. import _core, activations

_GENERATION = [0]
_LOCK = threading.Lock()


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

        return lambda z: _train.activation(z, act, out=z)
    return lambda z: activations.forward(act, z)


def _conv2d_call(layer):
    from ..layers.conv import Conv2D

    if type(layer) is not Conv2D or layer.groups != 1:
        return None
    kernel, bias = layer.kernel, layer.bias
    strides, same, dil = layer.strides, layer.padding == "same", layer.dilation_rate
    relu = layer.activation == "relu"
    post = None if relu else _activation_call(layer.activation)
    conv = _core.conv2d_forward
    if post is None:
        return lambda x: conv(_as_f32(x), kernel, bias, strides, same, dil, relu, False)
    return lambda x: post(conv(_as_f32(x), kernel, bias, strides, same, dil, False, False))


def _dense_call(layer):
    from ..layers.core import Dense

    if type(layer) is not Dense:
        return None
    kernel, bias, units = layer.kernel, layer.bias, layer.units
    relu = layer.activation == "relu"
    post = None if relu else _activation_call(layer.activation)
    sgemm, empty, f32 = _core.sgemm, np.empty, np.float32

    def call(x):
        x = _as_f32(x)
        x2 = x.reshape(-1, x.shape[-1])
        z = empty((x2.shape[0], units), f32)
        sgemm(z, x2, kernel, False, False, 1.0, 0.0, bias, relu)
        if x.ndim != 2:
            z = z.reshape(x.shape[:-1] + (units,))
        return z if post is None else post(z)

    return call


def _maxpool2d_call(layer):
    from ..layers.pooling import MaxPooling2D

    if type(layer) is not MaxPooling2D:
        return None
    pool, strides, same = layer.pool_size, layer.strides, layer.padding == "same"
    values = _core.maxpool2d_values
    return lambda x: values(_as_f32(x), pool, strides, same)


def _flatten_call(layer):
    from ..layers.core import Flatten

    if type(layer) is not Flatten:
        return None
    return lambda x: x.reshape(x.shape[0], -1)


_COMPILERS = (_conv2d_call, _dense_call, _maxpool2d_call, _flatten_call)


def compile_step(layer):
    """(call, fast): call(x) -> y for one single-input, single-output step; fast tells whether a
    kernel call was prepared (False: the layer's own forward)."""
    for make in _COMPILERS:
        call = make(layer)
        if call is not None:
            return call, True
    fwd = layer.forward
    return (lambda x: fwd(x, training=False, need_ctx=False)[0]), False


class InferencePlan:
    """One model's steps as prepared calls over value slots (a chain runs without slots)."""

    __slots__ = ("gen", "steps_id", "chain", "calls", "in_slots", "out_slots", "n_slots",
                 "fast")

    def __init__(self, model, gen):
        from ..layers.node import flatten

        self.gen, self.steps_id = gen, id(model._steps)
        self.in_slots, self.out_slots = list(model._in_slots), list(model._out_slots)
        self.n_slots = model._n_slots
        calls, fast = [], []
        for layer, ins, outs, single_in, single_out, _ in model._steps:
            if single_in and single_out:
                call, f = compile_step(layer)
            else:
                fwd = layer.forward

                def call(arg, fwd=fwd, single_out=single_out):
                    y = fwd(arg, training=False, need_ctx=False)[0]
                    return y if single_out else flatten(y)

                f = False
            calls.append((call, ins, outs, single_in, single_out))
            fast.append(f)
        self.calls = calls
        self.fast = fast
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

    def run(self, xs):
        chain = self.chain
        if chain is not None:
            x = xs[0]
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
