"""Functional: a model that is a directed acyclic graph of layer calls.

The graph is read once from the output tensors back to the input tensors (Keras's map_graph: nodes
get depths, layers are ordered by depth and then by traversal order, so ``model.layers`` and the
weight order are Keras's). Execution walks the nodes in that order over a flat list of value slots;
the backward walks them in reverse and *adds* the gradients of every consumer of a tensor (fan-out),
while each layer adds its weight gradients into its own slots (shared layers).
"""

from __future__ import annotations

import numpy as np

from ..layers.base import Layer, _describe, fmt_shape
from ..layers.core import InputLayer
from ..layers.node import KerasTensor, flatten, pack_like
from ..saving.registry import register
from . import inference as _inference
from .model import Model

MAX_NODES = 1 << 16


def _struct_of(value, what):
    """Normalise a Keras inputs/outputs argument: a tensor, a list/tuple or a dict of tensors."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list) and len(value) == 1 and what == "inputs":
        pass
    for t in flatten(value):
        if not isinstance(t, KerasTensor):
            raise TypeError(f"Model {what} must be symbolic tensors (from keras.Input or a layer "
                            f"called on one), got {type(t).__name__}")
    if not flatten(value):
        raise ValueError(f"Model {what} are empty")
    return value


def map_graph(inputs: list, outputs: list):
    """(nodes in execution order, layers in Keras's order). Raises ValueError when an output
    depends on a tensor that is not among the inputs."""
    in_set = {id(t) for t in inputs}
    finished, in_progress = set(), set()
    layer_index: dict = {}
    post: list = []  # nodes in decreasing depth order, as Keras's build_map

    def start(t, stack, out_t):
        node = t.node
        if node is None:
            raise ValueError(f"tensor {t.name!r} was not made by a layer")
        if id(node) in finished:
            return
        if id(node) in in_progress:
            raise ValueError(f"the graph has a cycle at layer {node.layer.name!r}")
        layer_index.setdefault(id(node.layer), (len(layer_index), node.layer))
        if node.is_input and id(t) not in in_set:
            names = ", ".join(repr(x.name) for x in inputs)
            raise ValueError(f"output {_describe(out_t)} depends on input {t.name!r} (layer "
                             f"{node.layer.name!r}), which is not among the model's inputs "
                             f"[{names}]: the graph is disconnected")
        in_progress.add(id(node))
        children = [] if (node.is_input or id(t) in in_set) else list(node.flat_inputs)
        stack.append([node, children, 0])
        if len(in_progress) > MAX_NODES:
            raise ValueError(f"the graph has more than {MAX_NODES} nodes")

    for out_t in outputs:
        stack: list = []
        start(out_t, stack, out_t)
        while stack:
            frame = stack[-1]
            node, children, pos = frame
            if pos < len(children):
                frame[2] += 1
                start(children[pos], stack, out_t)
            else:
                stack.pop()
                in_progress.discard(id(node))
                finished.add(id(node))
                post.append(node)
    # Depths, as Keras: an output node has depth 0, a node's inputs are deeper than it.
    node_depth: dict = {}
    layer_depth: dict = {}
    for node in reversed(post):
        depth = node_depth.setdefault(id(node), 0)
        depth = max(depth, layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        for t in node.flat_inputs:
            if id(t) in in_set and not t.node.is_input:
                continue
            parent = t.node
            node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    pos_of = {id(n): i for i, n in enumerate(post)}
    nodes = sorted(post, key=lambda n: (-node_depth[id(n)], pos_of[id(n)]))
    layers = sorted((lay for _, lay in layer_index.values()),
                    key=lambda lay: (-layer_depth[id(lay)], layer_index[id(lay)][0]))
    return nodes, layers


@register
class Functional(Model):
    """keras.Model(inputs, outputs): inputs and outputs one tensor, a list or a dict of them."""

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=True, **kwargs)
        self._init_graph(inputs, outputs)
        if not trainable:
            self.trainable = False

    # ---- the graph ----------------------------------------------------------------------------
    def _init_graph(self, inputs, outputs):
        inputs = _struct_of(inputs, "inputs")
        outputs = _struct_of(outputs, "outputs")
        flat_in, flat_out = flatten(inputs), flatten(outputs)
        if len({id(t) for t in flat_in}) != len(flat_in):
            raise ValueError("the same tensor is given twice among the model's inputs")
        nodes, layers = map_graph(flat_in, flat_out)
        seen = {}
        for lay in layers:
            if lay.name in seen:
                raise ValueError(f"the name {lay.name!r} is used by two layers of model "
                                 f"{self.name!r} ({type(seen[lay.name]).__name__} and "
                                 f"{type(lay).__name__}); layer names must be unique")
            seen[lay.name] = lay
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self.inputs, self.outputs = flat_in, flat_out
        self._layers = layers
        slot: dict = {}
        for t in flat_in:
            slot[id(t)] = len(slot)
        steps = []
        for node in nodes:
            if node.is_input:
                continue
            ins = []
            for t in node.flat_inputs:
                if id(t) not in slot:
                    raise ValueError(f"layer {node.layer.name!r} needs tensor {t.name!r}, "
                                     "which is computed after it")
                ins.append(slot[id(t)])
            outs = []
            for t in node.flat_outputs:
                slot.setdefault(id(t), len(slot))
                outs.append(slot[id(t)])
            steps.append((node.layer, ins, outs, not isinstance(node.inputs, list),
                          not isinstance(node.outputs, list), node))
        self._steps = steps
        self._n_slots = len(slot)
        self._in_slots = [slot[id(t)] for t in flat_in]
        self._out_slots = [slot[id(t)] for t in flat_out]
        # Who consumes each slot (for fusing an output activation into the loss).
        self._consumers = [0] * self._n_slots
        for _, ins, _, _, _, _ in steps:
            for s in ins:
                self._consumers[s] += 1
        self._input_dtypes = [str(t.dtype) for t in flat_in]
        self._plan_cache = None
        self.built = True
        self._build_shape = self._struct_shapes(inputs)
        self._out_shape = self._struct_shapes(outputs)

    @staticmethod
    def _struct_shapes(struct):
        if isinstance(struct, dict):
            return {k: v.shape for k, v in struct.items()}
        if isinstance(struct, list):
            return [t.shape for t in struct]
        return struct.shape

    @property
    def layers(self) -> list:
        # keras.ops nodes are operations, not layers (as in Keras)
        return [lay for lay in self._layers if not getattr(lay, "_is_op", False)]

    @property
    def input_names(self) -> list:
        if isinstance(self._inputs_struct, dict):
            return list(self._inputs_struct)
        return [t.node.layer.name if t.node.is_input else t.name for t in self.inputs]

    @property
    def output_names(self) -> list:
        if isinstance(self._outputs_struct, dict):
            return list(self._outputs_struct)
        return [t.node.layer.name for t in self.outputs]

    @property
    def input_shape(self):
        return self._struct_shapes(self._inputs_struct) if not isinstance(
            self._inputs_struct, dict) else self._struct_shapes(self._inputs_struct)

    @property
    def output_shape(self):
        return self._struct_shapes(self._outputs_struct)

    @property
    def input(self):
        return self._inputs_struct

    @property
    def output(self):
        return self._outputs_struct

    # ---- running ------------------------------------------------------------------------------
    def _run(self, xs, training=False, need_ctx=False, fuse=None, keep=(), out_masks=None,
             in_masks=None):
        """Flat input values -> (flat output values, per-step contexts, {slot: logits}). The
        values of the slots in `keep` (intermediate tensors) are appended to the outputs.
        `out_masks` (a list) receives the Keras mask of each output (None where it has none),
        which the trainer applies to the losses and metrics; `in_masks` (one per input, None
        for none) are the masks of the inputs when this model is a layer of another one.
        At inference (no training, no contexts, no fused loss, nothing kept) the compiled plan
        runs (models/inference.py): the same kernels, bitwise the same outputs."""
        if in_masks is not None and all(m is None for m in in_masks):
            in_masks = None
        if not training and not need_ctx and fuse is None and not keep and out_masks is None \
                and in_masks is None:
            plan = _inference.plan_for(self)
            if plan is not None:
                try:
                    return plan.run(xs), None, {}
                except ValueError:
                    if not self._dynamic_shapes():
                        raise
                    # an input the plan's kernels refuse (too small for a 'valid' kernel on
                    # an axis of unknown length): the layer-by-layer run below raises the
                    # error naming the layer, or computes what the layers can
        vals = [None] * self._n_slots
        for s, x in zip(self._in_slots, xs):
            vals[s] = x
        ctxs = [None] * len(self._steps) if need_ctx else None
        logits = {}
        masks = None  # per slot, once a layer has made a mask
        if in_masks is not None:
            masks = [None] * self._n_slots
            for s, m in zip(self._in_slots, in_masks):
                masks[s] = m
        for k, (layer, ins, outs, single_in, single_out, _) in enumerate(self._steps):
            arg = vals[ins[0]] if single_in else [vals[i] for i in ins]
            m_in = None
            if masks is not None:
                m_in = masks[ins[0]] if single_in else [masks[i] for i in ins]
                if not single_in and all(m is None for m in m_in):
                    m_in = None
            m_out = None  # the output masks, one per output
            if getattr(layer, "_is_model", False) and (m_in is not None or layer._makes_mask):
                # A nested model: masks go in and come out as Keras's tensors carry them
                # (its inner layers set its outputs' masks; the model itself adds none).
                y, ctx, m_out = layer._forward_masked(
                    arg, training, need_ctx, fuse is not None and k in fuse, m_in)
                if isinstance(y, tuple):
                    y, logits[outs[0]] = y
            else:
                if fuse is not None and k in fuse:
                    (y, z), ctx = layer.forward(arg, training=training, need_ctx=need_ctx,
                                                logits=True)
                    logits[outs[0]] = z
                elif m_in is not None and layer._consumes_mask:
                    y, ctx = layer.forward(arg, training=training, need_ctx=need_ctx,
                                           mask=m_in)
                else:
                    y, ctx = layer.forward(arg, training=training, need_ctx=need_ctx)
                if m_in is not None or layer._makes_mask:
                    m_out = layer.compute_mask(arg, m_in)
                    if m_out is not None and single_out:
                        m_out = [m_out]
            if m_out is not None:
                if masks is None:
                    masks = [None] * self._n_slots
                for s, m in zip(outs, m_out):
                    masks[s] = m
            if single_out:
                vals[outs[0]] = y
            else:
                for s, v in zip(outs, flatten(y)):
                    vals[s] = v
            if need_ctx:
                ctxs[k] = ctx
        if out_masks is not None:
            out_masks[:] = [None if masks is None else masks[s] for s in self._out_slots]
        if keep:
            return [vals[s] for s in self._out_slots] + [vals[s] for s in keep], ctxs, logits
        return [vals[s] for s in self._out_slots], ctxs, logits

    def _grad_plan(self, input_grads=False, slots=()):
        """Per step: whether it must compute its input gradients (some input leads back to a
        trainable weight, to a model input whose gradient is asked for, or to one of `slots`)."""
        req = [False] * self._n_slots
        if input_grads:
            for s in self._in_slots:
                req[s] = True
        for s in slots:
            req[s] = True
        plan = []
        for layer, ins, outs, _, _, _ in self._steps:
            need = any(req[s] for s in ins)
            out_req = need or bool(layer.trainable_weights)
            for s in outs:
                req[s] = out_req
            plan.append(need)
        return plan

    def _backprop(self, ctxs, douts, plan, at=None):
        """Reverse pass: output gradients (None: no gradient) -> input gradients (or the
        gradients at the slots `at`); weight gradients are added into each layer's slots."""
        g = [None] * self._n_slots
        for s, d in zip(self._out_slots, douts):
            if d is not None:
                g[s] = d if g[s] is None else g[s] + d
        for k in range(len(self._steps) - 1, -1, -1):
            layer, ins, outs, single_in, single_out, _ = self._steps[k]
            if single_out:
                dy = g[outs[0]]
                if dy is None:
                    continue
            else:
                dy = [g[s] for s in outs]
                if all(d is None for d in dy):
                    continue
            need = plan[k]
            dx = layer.backward(ctxs[k], dy, need_input_grad=need)
            if not need:
                continue
            for s, d in zip(ins, [dx] if single_in else dx):
                if d is not None:
                    g[s] = d if g[s] is None else g[s] + d
        return [g[s] for s in (self._in_slots if at is None else at)]

    def input_gradients(self, x, output_grads, training=False):
        """Gradients of the model's outputs with respect to its inputs: runs the model on x,
        calls output_grads(outputs) -> d(objective)/d(outputs) (one array per output, None for
        none) and returns d(objective)/d(inputs), one float32 array per input (a single array for
        a single-input model). Weights are not updated. For attribution methods (saliency,
        integrated gradients) and tools."""
        xs, _ = self._inputs_targets(x, None, "input_gradients")
        xs = self._prepare_inputs(xs, "input_gradients")
        xs = [np.ascontiguousarray(a, dtype=np.float32) for a in xs]
        outs, ctxs, _ = self._run(xs, training=training, need_ctx=True)
        douts = output_grads(outs if len(outs) > 1 else outs[0])
        douts = list(douts) if isinstance(douts, (list, tuple)) else [douts]
        douts = [None if d is None else np.ascontiguousarray(d, dtype=np.float32) for d in douts]
        with self._grad_scratch():
            dxs = self._backprop(ctxs, douts, self._grad_plan(input_grads=True))
        dxs = [np.zeros_like(a) if d is None else np.asarray(d, np.float32).reshape(a.shape)
               for a, d in zip(xs, dxs)]
        return dxs if len(dxs) > 1 else dxs[0]

    def tensor_gradients(self, x, tensors, output_grads, training=False):
        """Values of intermediate tensors and the gradients of an objective with respect to them.

        `tensors`: one or a list of layer names (the layer's output at its single call in this
        graph) or symbolic tensors of this graph (e.g. ``model.get_layer("conv").output``).
        Runs the model on x, calls output_grads(outputs) -> d(objective)/d(outputs) as
        `input_gradients` does, and returns (values, gradients): one float32 array per tensor
        each (single arrays for a single tensor). Weights are not updated. Grad-CAM and other
        tools that look inside a model use it."""
        single = not isinstance(tensors, (list, tuple))
        slots = [self._tensor_slot(t) for t in ([tensors] if single else tensors)]
        xs, _ = self._inputs_targets(x, None, "tensor_gradients")
        xs = self._prepare_inputs(xs, "tensor_gradients")
        xs = [np.ascontiguousarray(a, dtype=np.float32) for a in xs]
        vals, ctxs, _ = self._run(xs, training=training, need_ctx=True, keep=slots)
        n_out = len(self._out_slots)
        outs, taps = vals[:n_out], vals[n_out:]
        douts = output_grads(outs if len(outs) > 1 else outs[0])
        douts = list(douts) if isinstance(douts, (list, tuple)) else [douts]
        douts = [None if d is None else np.ascontiguousarray(d, dtype=np.float32) for d in douts]
        with self._grad_scratch():
            gs = self._backprop(ctxs, douts, self._grad_plan(slots=slots), at=slots)
        taps = [np.asarray(v, np.float32) for v in taps]
        gs = [np.zeros_like(v) if d is None else np.asarray(d, np.float32).reshape(v.shape)
              for v, d in zip(taps, gs)]
        return (taps[0], gs[0]) if single else (taps, gs)

    def _tensor_slot(self, t):
        """The value slot of a layer name or a symbolic tensor of this graph."""
        if isinstance(t, str):
            found = [step for step in self._steps if step[0].name == t]
            if not found:
                names = [lay.name for lay in self.layers]
                raise ValueError(f"model {self.name!r} has no layer named {t!r} (layers: "
                                 f"{names}); a layer inside a nested model is reached through "
                                 "that model")
            if len(found) > 1 or len(found[0][2]) != 1:
                raise ValueError(f"layer {t!r} is called {len(found)} times or has several "
                                 f"outputs in model {self.name!r}: pass the tensor itself")
            return found[0][2][0]
        if isinstance(t, KerasTensor):
            for t_in, s in zip(self.inputs, self._in_slots):
                if t_in is t:
                    return s
            for step in self._steps:
                for t_out, s in zip(step[5].flat_outputs, step[2]):
                    if t_out is t:
                        return s
            raise ValueError(f"tensor {t.name!r} is not a tensor of model {self.name!r}")
        raise TypeError(f"tensors are given by layer name or symbolic tensor, got "
                        f"{type(t).__name__}")

    def _grad_scratch(self):
        """Weight gradients added during an input-gradient pass go to scratch slots, so a
        training step's accumulators are never touched."""
        import contextlib

        model = self

        @contextlib.contextmanager
        def scope():
            saved = [(lay, lay.grads, lay._fresh) for lay in model._leaf_layers()]
            for lay, grads, fresh in saved:
                lay.grads = [np.zeros_like(w) for w in lay._weights]
                lay._fresh = [True] * len(fresh)
            try:
                yield
            finally:
                for lay, grads, fresh in saved:
                    lay.grads, lay._fresh = grads, fresh

        return scope()

    def _fuse_step(self, s, act=None):
        """The step whose output activation (softmax/sigmoid; `act` when given) can be fused
        into a loss on slot s: the slot is read by nothing else, and its producer is a layer with
        that activation or a model whose own output is such a layer (fusion through nesting)."""
        if self._consumers[s] or self._out_slots.count(s) != 1:
            return None
        for idx, step in enumerate(self._steps):
            if step[2] == [s] and step[4]:
                layer = step[0]
                a = getattr(layer, "activation", None)
                if hasattr(layer, "_activate") and (a == act or (act is None and a in (
                        "softmax", "sigmoid"))):
                    return idx
                if getattr(layer, "_is_model", False) and hasattr(layer, "_fuse_step") and \
                        len(layer._out_slots) == 1 and \
                        layer._fuse_step(layer._out_slots[0], act) is not None:
                    return idx
                return None
        return None

    # ---- as a layer inside another model --------------------------------------------------------
    def forward(self, inputs, training=False, need_ctx=False, logits=False, mask=None):
        y, ctxs, _ = self._forward_masked(inputs, training, need_ctx, logits, mask)
        return y, ctxs

    def _forward_masked(self, inputs, training, need_ctx, logits, mask):
        """forward, also giving the masks of the outputs (a flat list, or None when none has
        one). `mask`: the input's mask (a list for several inputs), as Keras's Functional.call
        takes it and sets it on its inputs."""
        xs = flatten(inputs)
        if len(xs) != len(self.inputs):
            raise ValueError(f"model {self.name!r} takes {len(self.inputs)} input(s), got "
                             f"{len(xs)}")
        in_masks = None
        if mask is not None:
            in_masks = list(mask) if isinstance(mask, (list, tuple)) else [mask]
            if len(in_masks) != len(xs):
                in_masks = None
        want = in_masks is not None or self._makes_mask
        out_masks = [] if want else None
        if logits:  # the outer loss takes our output's logits (see _fuse_step)
            s = self._out_slots[0]
            outs, ctxs, zs = self._run(xs, training=training, need_ctx=need_ctx,
                                       fuse={self._fuse_step(s)}, out_masks=out_masks,
                                       in_masks=in_masks)
            y = (outs[0], zs[s])
        else:
            outs, ctxs, _ = self._run(xs, training=training, need_ctx=need_ctx,
                                      out_masks=out_masks, in_masks=in_masks)
            y = pack_like(self._outputs_struct, outs)
        if out_masks is not None and all(m is None for m in out_masks):
            out_masks = None
        return y, ctxs, out_masks

    def _dynamic_shapes(self) -> bool:
        """Whether an input has an axis of unknown length besides the batch."""
        return any(None in tuple(t.shape)[1:] for t in self.inputs)

    @property
    def _makes_mask(self):
        """Whether some layer inside makes a Keras mask (Embedding(mask_zero), Masking, a
        nested model that does): then this model's outputs may carry one."""
        return any(lay._makes_mask for lay, *_ in getattr(self, "_steps", ()))

    _consumes_mask = True

    def compute_mask(self, inputs, mask=None):
        """The masks of the outputs for these inputs (Keras's tensors carry them): runs the
        graph."""
        xs = [np.asarray(x) for x in flatten(inputs)]
        _, _, m = self._forward_masked(xs, False, False, False, mask)
        if m is None:
            return None
        return m[0] if len(m) == 1 and not isinstance(self._outputs_struct, (list, dict)) \
            else m

    def backward(self, ctx, dy, need_input_grad=True):
        douts = flatten(dy) if isinstance(self._outputs_struct, (list, dict)) else [dy]
        dxs = self._backprop(ctx, douts, self._grad_plan(input_grads=need_input_grad))
        if not need_input_grad:
            return None
        return pack_like(self._inputs_struct, dxs)

    def check_input_shape(self, shapes):
        got = flatten_shapes(shapes)
        want = [t.shape for t in self.inputs]
        if len(got) != len(want) or any(
                len(g) != len(w) or any(a is not None and b is not None and a != b
                                        for a, b in zip(g[1:], w[1:]))
                for g, w in zip(got, want)):
            raise ValueError(f"model {self.name!r} expects input shape(s) "
                             f"{', '.join(fmt_shape(w) for w in want)}, got "
                             f"{', '.join(fmt_shape(g) for g in got)}")

    def compute_output_shape(self, shapes):
        s = self._struct_shapes(self._outputs_struct)
        return list(s.values()) if isinstance(s, dict) else s

    def _call_symbolic(self, inputs, **kwargs):
        out = super()._call_symbolic(inputs, **kwargs)
        if isinstance(self._outputs_struct, dict) and isinstance(out, list):
            # A dict-output model called as a layer gives a dict, keyed as its outputs.
            node = out[0].node
            keyed = dict(zip(self._outputs_struct, out))
            node.outputs = keyed
            return keyed
        return out

    # ---- config -------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """Keras's functional config: layers with their inbound nodes, input and output refs."""
        node_index: dict = {}
        layer_cfgs = []
        for layer in self._layers:
            own = [n for n in layer._inbound_nodes if self._owns(n)]
            for i, n in enumerate(own):
                node_index[id(n)] = i
        for layer in self._layers:
            from ..saving.serialization import serialize_layer

            entry = serialize_layer(layer)
            entry["name"] = layer.name
            inbound = []
            if not isinstance(layer, InputLayer):
                for n in layer._inbound_nodes:
                    if not self._owns(n) or n.is_input:
                        continue
                    refs = [self._ref(t, node_index) for t in n.flat_inputs]
                    inbound.append({"args": refs, "list": isinstance(n.inputs, list)})
            entry["inbound_nodes"] = inbound
            layer_cfgs.append(entry)

        def refs(struct):
            if isinstance(struct, dict):
                return {k: self._ref(v, node_index) for k, v in struct.items()}
            if isinstance(struct, list):
                return [self._ref(t, node_index) for t in struct]
            return self._ref(struct, node_index)

        return {"name": self.name, "trainable": self.trainable, "layers": layer_cfgs,
                "input_layers": refs(self._inputs_struct),
                "output_layers": refs(self._outputs_struct)}

    def _owns(self, node) -> bool:
        ids = getattr(self, "_node_ids", None)
        if ids is None:
            ids = {id(s[5]) for s in self._steps}
            ids |= {id(t.node) for t in self.inputs}
            self._node_ids = ids
        return id(node) in ids

    def _ref(self, t, node_index):
        return [t.node.layer.name, node_index.get(id(t.node), 0), t.index]

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from ..saving.serialization import functional_from_config

        return functional_from_config(cls, config, custom_objects)


# A subclassed model (keras.Model subclass with call) is built into a graph of its own (see
# Model.build) and runs with the Functional machinery.
for _name in ("_run", "_grad_plan", "_backprop", "input_gradients", "_grad_scratch",
              "tensor_gradients", "_tensor_slot",
              "_struct_shapes", "input_names", "output_names", "input_shape", "output_shape",
              "input", "output", "forward", "_forward_masked", "_makes_mask",
              "_consumes_mask", "compute_mask", "backward", "check_input_shape",
              "compute_output_shape", "_owns", "_ref", "_dynamic_shapes"):
    if _name not in Model.__dict__:
        setattr(Model, _name, Functional.__dict__[_name])
del _name


def flatten_shapes(shapes) -> list:
    if isinstance(shapes, dict):
        return [tuple(v) for v in shapes.values()]
    if isinstance(shapes, list) and shapes and isinstance(shapes[0], (tuple, list)):
        return [tuple(s) for s in shapes]
    return [tuple(shapes)]


__all__ = ["Functional", "map_graph", "Layer"]
