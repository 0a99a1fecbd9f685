"""Layer: Keras's contract (config in __init__, build(input_shape) creating weights with
add_weight, get_config) plus an explicit backward, and no per-call state on the layer.

    forward(inputs, training=False, need_ctx=False) -> (outputs, ctx)
    backward(ctx, dy, need_input_grad=True) -> dx      (adds into the layer's gradient slots)

``ctx`` holds whatever the backward needs from its forward (None when need_ctx is False), so one
layer can be called at several places of a graph (shared weights) and inference from several
threads at once is safe. Gradients *accumulate*: the trainer calls ``_zero_grads()`` before a step
and every backward adds its contribution with ``_add_grad``, so fan-out and shared layers are
right. Each weight carries its own trainable flag (moving statistics are non-trainable state).
Shapes include the batch axis as None: (None, 28, 28, 1). A layer casts its own inputs to what it
accepts (the model never casts).
"""

from __future__ import annotations

import math
import re
import threading

import numpy as np

from .. import activations, constraints, initializers, regularizers
from .node import KerasTensor, Node, flatten, fmt_shape, is_symbolic, pack_like, shapes_of

__all__ = ["Layer", "ActivationMixin", "fmt_shape"]

_name_counts: dict = {}
_name_lock = threading.Lock()
MAX_DIM = 2**31 - 1
# Builds are serialised: the first predict from several threads at once on an unbuilt model must
# build each layer exactly once (re-entrant: a model builds its layers inside its own build).
BUILD_LOCK = threading.RLock()
# Set while a model file is being loaded: caps on what building may allocate (see saving).
_limits = threading.local()


# Attributes of the base class itself (never nested layers).
_INTERNAL_ATTRS = frozenset({
    "_weights", "_weight_names", "_weight_trainable", "_regularizers", "_constraints", "grads",
    "_fresh",
    "_inbound_nodes", "_traces", "_layers", "_build_shape", "_out_shape", "_input_shape_arg",
    "_steps", "_consumers", "_in_slots", "_out_slots", "inputs", "outputs",
    "_inputs_struct", "_outputs_struct", "_input_dtypes", "_gradient_hooks", "_compile_spec",
    "_metric_ids", "_node_ids", "_plan_cache"})


def _unique_name(base: str) -> str:
    with _name_lock:
        n = _name_counts.get(base, 0)
        _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _snake(name: str) -> str:
    # Keras's to_snake_case: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d,
    # SimpleRNN -> simple_rnn
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def positive_int(v, name: str, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < v <= MAX_DIM:
        raise ValueError(f"{where}: {name} must be a positive int, got {v!r}")
    return int(v)


def int_tuple(v, n: int, name: str, where: str) -> tuple:
    """An int or a sequence of n ints, each positive, as a tuple."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (v,) * n
    if not isinstance(v, (tuple, list)) or len(v) != n:
        raise ValueError(f"{where}: {name} must be an int or a tuple of {n} ints, got {v!r}")
    return tuple(positive_int(x, name, where) for x in v)


def shape_tuple(v, name: str, where: str, allow_none=False) -> tuple:
    """A per-sample shape (no batch axis) of positive ints (None allowed where asked)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (v,)
    if not isinstance(v, (tuple, list)) or len(v) > 8:
        raise ValueError(f"{where}: {name} must be a tuple of positive ints, got {v!r}")
    return tuple(None if (d is None and allow_none) else positive_int(d, name, where) for d in v)


def check_dynamic_shape(layer, shape) -> None:
    """For a layer built on a shape with unknown (None) axes: check an actual input's shape as
    the graph checked the symbolic one (too small for a 'valid' kernel, ...), so the error names
    the layer and the shape instead of coming from a kernel."""
    built = layer._build_shape
    if built is not None and not isinstance(built, list) and None in tuple(built)[1:]:
        layer.check_input_shape((None,) + tuple(shape[1:]))


def _known_positive(dims) -> bool:
    """No known output axis is empty (None: unknown until the data comes)."""
    return all(d is None or d > 0 for d in dims)


def as_f32(x):
    """x as a C-contiguous float32 array (no copy when it already is one)."""
    if type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous:
        return x
    return np.ascontiguousarray(x, dtype=np.float32)


def check_load_budget(layer, shape) -> None:
    """While a file is being loaded: refuse weights beyond the parameter cap before allocating."""
    lim = getattr(_limits, "value", None)
    if lim is None:
        return
    n = math.prod(shape)
    lim["params"] += n
    if lim["max_params"] is not None and lim["params"] > lim["max_params"]:
        raise ValueError(f"the config declares more than max_params={lim['max_params']} "
                         f"parameters ({lim['params']} at layer {layer.name!r}); pass "
                         "load_model(..., max_params=N) to allow more")
    if lim["max_bytes"] is not None and 4 * lim["params"] > lim["max_bytes"]:
        raise ValueError(f"the config declares {lim['params']} parameters "
                         f"({4 * lim['params']} bytes) but the weight members hold only "
                         f"{lim['max_bytes']} bytes")


def _allocating() -> bool:
    lim = getattr(_limits, "value", None)
    return lim is None or lim.get("allocate", True)



def copy_checked(weights, own, names, count_message) -> None:
    """Copy `weights` into the arrays `own` in place (references stay valid), after checking
    every one first (count, real dtype, shape against `names`), so a bad list changes nothing.
    count_message(expected, got) words the count error for the owner (layer or model)."""
    weights = list(weights)
    if len(weights) != len(own):
        raise ValueError(count_message(len(own), len(weights)))
    arrs = []
    for wname, cur, new in zip(names, own, weights):
        new = np.asarray(new)
        if new.dtype.kind not in "biuf":
            raise TypeError(f"weight {wname!r}: expected a real array, got dtype {new.dtype}")
        if new.shape != cur.shape:
            raise ValueError(f"weight {wname!r} has shape {cur.shape}, got an array of shape "
                             f"{new.shape}")
        arrs.append(new)
    for cur, new in zip(own, arrs):
        np.copyto(cur, new, casting="unsafe")

_PLAIN = (str, int, float, bool, type(None))


def _auto_config(cls, args, kwargs):
    """Keras's auto config of a user's class: its constructor's arguments, by name, when every
    one is a plain value (str, number, bool, None, or lists/tuples/dicts of them); else None."""
    import inspect

    try:
        spec = inspect.getfullargspec(cls.__init__)
    except TypeError:
        return None
    names = spec.args[1:]
    if len(args) > len(names):
        return None  # a *args constructor: nothing names the extra values

    def plain(v):
        if isinstance(v, (list, tuple)):
            return all(plain(x) for x in v)
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        return isinstance(v, _PLAIN)

    cfg = dict(kwargs)
    cfg.update(zip(names, args))
    return cfg if plain(cfg) else None


class Layer:
    """Base class of every layer. Built-in layers define weight_specs (or build),
    compute_output_shape, forward and backward."""

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        if not cls.__module__.startswith("nncore."):  # a user's class: remember its arguments
            object.__setattr__(self, "_auto_config", _auto_config(cls, args, kwargs))
        return self

    def __init__(self, name=None, trainable=True, input_shape=None, batch_input_shape=None,
                 dtype=None, input_dim=None, batch_size=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected argument(s) {sorted(kwargs)}")
        if dtype not in (None, "float32", np.float32) and not (
                isinstance(dtype, dict) and dtype.get("config", {}).get("name") == "float32"):
            raise ValueError(f"{type(self).__name__}: only float32 is supported, got {dtype!r}")
        if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 256):
            raise ValueError(f"layer name must be a non-empty string, got {name!r}")
        self.name = name if name is not None else _unique_name(_snake(type(self).__name__))
        if not isinstance(trainable, (bool, np.bool_)):
            raise ValueError(f"layer {self.name!r}: trainable must be True or False, got "
                             f"{trainable!r}")
        self._trainable = bool(trainable)
        where = self.name
        if batch_input_shape is not None:
            if not isinstance(batch_input_shape, (tuple, list)) or len(batch_input_shape) < 2:
                raise ValueError(f"{where}: batch_input_shape must be a tuple, "
                                 f"got {batch_input_shape!r}")
            input_shape = tuple(batch_input_shape[1:])
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._input_shape_arg = (None if input_shape is None
                                 else shape_tuple(input_shape, "input_shape", where,
                                                  allow_none=True))
        self.built = False
        self._build_shape = None
        self._out_shape = None
        self._weights: list = []
        self._weight_names: list = []
        self._weight_trainable: list = []
        self._regularizers: list = []
        self._constraints: list = []  # per weight: its constraint (trainable weights), or None
        self.grads: list = []
        self._fresh: list = []       # per weight: no gradient added since _zero_grads
        self._inbound_nodes: list = []

    # ---- masks (Keras's): a layer that makes one (Embedding(mask_zero=True), Masking) sets
    # _makes_mask; one that reads it (the RNNs) sets _consumes_mask and takes forward(..., mask=);
    # supports_masking passes the input's mask on unchanged. The graph carries masks only when
    # some layer makes one.
    supports_masking = False
    _makes_mask = False
    _consumes_mask = False

    def compute_mask(self, inputs, mask=None):
        return mask if self.supports_masking else None

    # ---- construction -------------------------------------------------------------------------
    def weight_specs(self, input_shape) -> list:
        """[(name, shape, initializer, regularizer[, trainable])] for this input shape."""
        return []

    def compute_output_shape(self, input_shape):
        if self._has_call():
            # A user layer: the shapes its call gives on symbolic inputs (Keras's
            # compute_output_spec), float32 inputs assumed.
            from ..ops._graph import layer_graph

            def spec(s):
                if isinstance(s, list):
                    return [spec(x) for x in s]
                if isinstance(s, dict):
                    return {k: spec(v) for k, v in s.items()}
                return ((None,) + tuple(s[1:]), "float32")

            shapes = layer_graph(self, spec(input_shape), False).out_shapes
            return shapes[0] if len(shapes) == 1 else shapes
        return tuple(input_shape)

    # ---- user layers: call traced into a graph of ops ----------------------------------------
    def call(self, inputs, *args, **kwargs):
        """Keras's call. A subclass that defines it (and no forward) is traced: call runs once
        per (input shapes, training) on symbolic tensors, and the graph of keras.ops and layer
        calls it records is what forward runs and backward differentiates."""
        raise NotImplementedError(f"layer {type(self).__name__} defines neither call nor forward")

    @classmethod
    def _has_call(cls) -> bool:
        return cls.call is not Layer.call and cls.forward is Layer.forward

    def add_loss(self, loss) -> None:
        """Keras's add_loss inside call: the value (e.g. an activity penalty) is added to the
        training loss, reported in it, and differentiated."""
        from ..ops._graph import add_loss

        add_loss(self, loss)

    def __setstate__(self, state):
        # A copied or unpickled layer has new weight arrays: attach their constraints again.
        self.__dict__.update(state)
        for w, c in zip(self.__dict__.get("_weights", ()), self.__dict__.get("_constraints", ())):
            if c is not None:
                constraints._attach(w, c)

    def __setattr__(self, name, value):
        # Keras tracks layers set as attributes; remember whether this layer may hold any, so
        # the (frequent) question "which layers are nested in this one" is free for the rest.
        if name not in _INTERNAL_ATTRS and (
                isinstance(value, Layer) or isinstance(value, (list, tuple, dict))):
            object.__setattr__(self, "_may_nest", True)
        object.__setattr__(self, name, value)

    def _sublayers(self) -> list:
        """Layers held as attributes (or in list/tuple/dict attributes), in assignment order:
        Keras's tracking of nested layers."""
        if not self.__dict__.get("_may_nest"):
            return []
        out, seen = [], set()
        for k, v in self.__dict__.items():
            if k in ("_inbound_nodes", "_traces", "_layers"):
                continue
            vals = v.values() if isinstance(v, dict) else (
                v if isinstance(v, (list, tuple)) else (v,))
            for x in vals:
                if isinstance(x, Layer) and x is not self and id(x) not in seen:
                    seen.add(id(x))
                    out.append(x)
        return out

    def check_input_shape(self, input_shape) -> None:
        """Raise ValueError naming the layer and the shape if it cannot take input_shape."""

    def build(self, input_shape) -> None:
        """Create the weights for inputs of input_shape (Keras: override and call add_weight)."""
        for spec in self.weight_specs(input_shape):
            wname, shape, init, reg = spec[:4]
            trainable = spec[4] if len(spec) > 4 else True
            self.add_weight(shape=shape, initializer=init, regularizer=reg, trainable=trainable,
                            constraint=getattr(self, _CONSTRAINT_ARG.get(wname,
                                                                         f"{wname}_constraint"),
                                               None),
                            name=wname)

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True,
                   regularizer=None, constraint=None, name=None, **kwargs):
        """A new float32 weight of `shape` (Keras's add_weight); returns the array itself."""
        shape = () if shape is None else tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"layer {self.name!r}: weight shape {shape} has a negative size")
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"layer {self.name!r}: only float32 weights are supported")
        if callable(initializer) and not isinstance(initializer, (str, dict)) and not isinstance(
                initializer, initializers.Initializer):
            init = initializer  # a plain function of the shape
        else:
            init = initializers.get("glorot_uniform" if initializer is None else initializer)
        reg = regularizers.get(regularizer)
        con = check_constraint(constraint, f"layer {self.name!r}", "constraint")
        check_load_budget(self, shape)
        if _allocating():
            arr = np.asarray(init(shape), dtype=np.float32, order="C")  # keeps 0-d shapes
        else:
            arr = np.zeros(shape, np.float32)  # about to be overwritten by a file's data
        if arr.shape != shape and arr.size == math.prod(shape) and arr.ndim <= 1:
            arr = arr.reshape(shape)  # a scalar weight from an initializer that gives (1,)
        if arr.shape != shape:
            raise ValueError(f"layer {self.name!r}: initializer gave shape {arr.shape}, "
                             f"expected {shape}")
        self._weights.append(arr)
        if name is None:  # Keras's auto names: variable, variable_1, ... (unique in the layer)
            taken = set(self._weight_names)
            name, k = "variable", 0
            while f"{self.name}/{name}" in taken:
                k += 1
                name = f"variable_{k}"
        self._weight_names.append(f"{self.name}/{name}")
        self._weight_trainable.append(bool(trainable))
        self._regularizers.append(reg)
        if not trainable:
            con = None  # Keras constrains trainable weights only
        self._constraints.append(con)
        if con is not None:
            constraints._attach(arr, con)
        self.grads.append(np.zeros(shape, np.float32))
        self._fresh.append(True)
        return arr

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Keras's build wrapper: however build is reached (by a call, or called directly), the
        # layer ends up built, with its shapes recorded and its attribute names bound.
        if "build" in cls.__dict__ and not getattr(cls, "_no_build_wrap", False):
            cls.build = _wrap_build(cls.__dict__["build"])

    def _maybe_build(self, input_shape) -> None:
        if self.built:
            return
        with BUILD_LOCK:
            if self.built:
                return
            self.check_input_shape(input_shape)
            n_before = len(self._weights)
            try:
                self.build(input_shape)
            except BaseException:
                del self._weights[n_before:], self._weight_names[n_before:]
                del self._weight_trainable[n_before:], self._regularizers[n_before:]
                del self._constraints[n_before:]
                del self.grads[n_before:], self._fresh[n_before:]
                self.built = False
                raise

    def _on_built(self) -> None:
        """Hook: bind attribute names (self.kernel...) to the weights."""

    def _check_compatible(self, input_shape) -> None:
        """A built layer called again (a shared layer) must get inputs its weights fit."""
        self.check_input_shape(input_shape)
        if type(self).weight_specs is Layer.weight_specs:
            return
        want = [tuple(spec[1]) for spec in self.weight_specs(input_shape)]
        have = [w.shape for w in self._weights]
        if want != have:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) was built for input "
                             f"shape {_fmt_any(self._build_shape)} and cannot take "
                             f"{_fmt_any(input_shape)} (weights {have} vs {want})")

    # ---- weights ------------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        self._trainable = bool(value)
        _bump_plans()
        for sub in self._sublayers():  # Keras: the flag is set on nested layers too
            sub.trainable = self._trainable

    @property
    def weights(self) -> list:
        subs = self._sublayers()
        if not subs:
            return list(self._weights)
        return distinct(self._weights, *(sub.weights for sub in subs))

    @property
    def trainable_weights(self) -> list:
        if not self._trainable:
            return []
        own = [w for w, t in zip(self._weights, self._weight_trainable) if t]
        return distinct(own, *(sub.trainable_weights for sub in self._sublayers()))

    @property
    def non_trainable_weights(self) -> list:
        train = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in train]

    @property
    def variables(self) -> list:
        return self.weights

    @property
    def trainable_variables(self) -> list:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list:
        return self.non_trainable_weights

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def get_weights(self) -> list:
        return [w.copy() for w in self.weights]

    def _all_weight_names(self) -> list:
        names = {id(w): n for w, n in zip(self._weights, self._weight_names)}
        for sub in self._sublayers():
            for w, n in zip(sub.weights, sub._all_weight_names()):
                names.setdefault(id(w), n)
        return [names.get(id(w), "weight") for w in self.weights]

    def set_weights(self, weights) -> None:
        kind = "model" if getattr(self, "_is_model", False) else "layer"
        copy_checked(weights, self.weights, self._all_weight_names(),
                     lambda n, m: f"{kind} {self.name!r} expects {n} weight arrays, got {m}")
        _bump_plans()

    # ---- gradients ----------------------------------------------------------------------------
    def _zero_grads(self) -> None:
        for i in range(len(self._fresh)):
            self._fresh[i] = True

    def _grad_out(self, i):
        """(array to write weight i's gradient into, beta): beta 0 overwrites, 1 accumulates."""
        if self._fresh[i]:
            self._fresh[i] = False
            return self.grads[i], 0.0
        return self.grads[i], 1.0

    def _add_grad(self, i, g) -> None:
        """Add g to weight i's gradient. The first contribution of a step is taken by reference
        (g must be an array no one else writes to)."""
        if self._fresh[i]:
            self._fresh[i] = False
            if g.dtype == np.float32 and g.shape == self.grads[i].shape \
                    and g.flags.c_contiguous and g.flags.writeable:
                self.grads[i] = g
            else:
                self.grads[i] = np.ascontiguousarray(g, dtype=np.float32).reshape(
                    self._weights[i].shape).copy()
        else:
            self.grads[i] += g

    def _finish_grads(self) -> None:
        """Weights that got no gradient this step (a branch not in the loss) get zeros."""
        for i, fresh in enumerate(self._fresh):
            if fresh:
                self.grads[i] = np.zeros_like(self._weights[i])
                self._fresh[i] = False

    # ---- calling ------------------------------------------------------------------------------
    def __call__(self, inputs, training=None, mask=None, **kwargs):
        """On symbolic tensors: build, record a node, return symbolic outputs. On arrays: run
        eagerly (builds on first use)."""
        if is_symbolic(inputs):
            return self._call_symbolic(inputs, **kwargs)
        if kwargs:
            raise TypeError(f"layer {self.name!r}: unexpected call argument(s) {sorted(kwargs)}")
        if isinstance(inputs, (list, tuple)):
            inputs = [np.asarray(x) for x in inputs]
        else:
            inputs = np.asarray(inputs)
        self._maybe_build(shapes_of(inputs))
        out, _ = self.forward(inputs, training=bool(training))
        return out

    def _call_symbolic(self, inputs, **kwargs):
        if kwargs:
            raise TypeError(f"layer {self.name!r}: unexpected call argument(s) {sorted(kwargs)}")
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        for t in flatten(inputs):
            if not isinstance(t, KerasTensor):
                raise TypeError(f"layer {self.name!r}: cannot mix symbolic tensors and "
                                f"{type(t).__name__} values in one call")
        shapes = shapes_of(inputs)
        try:
            if self.built:
                self._check_compatible(shapes)
            self._maybe_build(shapes)
            traced = self._has_call() and \
                type(self).compute_output_shape is Layer.compute_output_shape
            out_shape = None if traced else self.compute_output_shape(shapes)
        except ValueError as e:
            src = ", ".join(f"{_describe(t)} {fmt_shape(t.shape)}" for t in flatten(inputs))
            msg = str(e)
            if self.name not in msg:
                msg = f"layer {self.name!r} ({type(self).__name__}): {msg}"
            raise ValueError(f"{msg} [inputs: {src}]") from None
        lim = getattr(_limits, "value", None)
        if lim is not None and out_shape is not None:
            _check_sample_size(self, out_shape)
        if traced:
            # Shapes and dtypes as the traced call gives them for these inputs' dtypes.
            from ..ops._graph import in_struct_of, layer_graph

            g = layer_graph(self, in_struct_of(inputs), False)
            outs = [KerasTensor(t.shape, t.dtype, name=self.name if g.n_user == 1 else
                                f"{self.name}_out{i}")
                    for i, t in enumerate(g.outputs[:g.n_user])]
            outputs = outs[0] if g.n_user == 1 else outs
            if not isinstance(g.out_struct, KerasTensor) and g.n_user == 1:
                outputs = [outputs]
            self._out_shape = [t.shape for t in outs] if g.n_user > 1 else outs[0].shape
        else:
            outputs = _make_outputs(out_shape, self, inputs)
        node = Node(self, inputs, outputs)
        self._inbound_nodes.append(node)
        return outputs

    # Keras's layer.input / layer.output: the tensors of its (single) call in a graph.
    def _only_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"layer {self.name!r} has never been called on symbolic tensors "
                                 f"and thus has no defined {what}")
        if len(self._inbound_nodes) > 1:
            raise AttributeError(f"layer {self.name!r} has been called {len(self._inbound_nodes)}"
                                 f" times: its {what} is ambiguous")
        return self._inbound_nodes[0]

    @property
    def input(self):
        return self._only_node("input").inputs

    @property
    def output(self):
        return self._only_node("output").outputs

    @property
    def input_shape(self):
        if self._build_shape is None:
            return None
        return self._build_shape

    @property
    def output_shape(self):
        return self._out_shape

    # ---- computation --------------------------------------------------------------------------
    def forward(self, inputs, training=False, need_ctx=False):
        if type(self).call is not Layer.call:
            from ..ops._graph import traced_forward

            return traced_forward(self, inputs, training, need_ctx)
        raise NotImplementedError(f"layer {type(self).__name__} has no forward")

    def backward(self, ctx, dy, need_input_grad=True):
        if type(self).call is not Layer.call and type(self).forward is Layer.forward:
            from ..ops._graph import traced_backward

            return traced_backward(self, ctx, dy, need_input_grad)
        raise NotImplementedError(f"layer {type(self).__name__} has no backward")

    def regularization_loss(self) -> float:
        return float(sum(r(w) for w, r in zip(self._weights, self._regularizers)
                         if r is not None))

    # ---- config -------------------------------------------------------------------------------
    def get_config(self) -> dict:
        cfg = {"name": self.name, "trainable": self.trainable}
        if self._input_shape_arg is not None:
            cfg["input_shape"] = list(self._input_shape_arg)
        if type(self).get_config is Layer.get_config and "_auto_config" in self.__dict__:
            cfg = self._auto_get_config(cfg)
        return cfg

    def _auto_get_config(self, base):
        """A user's class without get_config: Keras's auto config (its constructor's
        arguments), with the base keys its constructor accepts."""
        import inspect

        auto = self.__dict__["_auto_config"]
        if auto is None:
            raise NotImplementedError(
                f"layer {self.name!r} ({type(self).__name__}) was created with argument values "
                "that are not plain (str, number, bool, None or lists/dicts of them), so it "
                "must define get_config() (and from_config() if needed) to be saved")
        spec = inspect.getfullargspec(type(self).__init__)
        if spec.varkw is None:
            base = {k: v for k, v in base.items() if k in spec.args[1:] + spec.kwonlyargs}
        return {**base, **auto}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def distinct(*lists) -> list:
    """The arrays of `lists`, each once (by identity), in first-seen order: a weight shared by
    layers is one weight."""
    seen, out = set(), []
    for arrays in lists:
        for w in arrays:
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
    return out


def _bump_plans() -> None:
    """Weights or structure changed: compiled inference plans rebuild (models/inference.py)."""
    from ..models import inference

    inference.bump()


def _wrap_build(fn):
    def build(self, input_shape=None, *args, **kwargs):
        if getattr(self, "_in_build", False):
            return fn(self, input_shape, *args, **kwargs)
        with BUILD_LOCK:
            self._in_build = True
            try:
                fn(self, input_shape, *args, **kwargs)
            finally:
                self._in_build = False
            if input_shape is not None:
                self._build_shape = input_shape
                if not self._has_call() or \
                        type(self).compute_output_shape is not Layer.compute_output_shape:
                    self._out_shape = self.compute_output_shape(input_shape)
            self._on_built()
            self.built = True
            _bump_plans()

    build.__name__ = fn.__name__
    build.__doc__ = fn.__doc__
    build.__wrapped__ = fn
    return build


def _fmt_any(shape) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(_fmt_any(s) for s in shape) + "]"
    return fmt_shape(shape) if shape is not None else "None"


def _describe(t: KerasTensor) -> str:
    if t.node is not None:
        return f"tensor {t.name!r} from layer {t.node.layer.name!r}"
    return f"tensor {t.name!r}"


def _check_sample_size(layer, out_shape) -> None:
    for s in (out_shape if isinstance(out_shape, list) else [out_shape]):
        dims = [d for d in s[1:] if d is not None]
        if any(not 0 <= d < 2**31 for d in dims) or math.prod(dims) > 2**31:
            raise ValueError(f"layer {layer.name!r}: output shape {fmt_shape(s)} is too large")


def _make_outputs(out_shape, layer, inputs):
    dtype = getattr(layer, "output_dtype", "float32")
    if isinstance(out_shape, list):
        return [KerasTensor(s, dtype, name=f"{layer.name}_out{i}")
                for i, s in enumerate(out_shape)]
    return KerasTensor(out_shape, dtype, name=layer.name)


class ActivationMixin:
    """Output activation shared by Dense, Conv2D and Activation.

    A model that fuses the output softmax/sigmoid into the loss calls forward(..., logits=True):
    the layer then returns (probabilities, logits) and its backward takes d loss / d logits.
    The activation context is (y, fused): what the activation's backward needs.
    """

    activation: str

    def _activate(self, z, logits, fused_relu=False, inplace=True):
        act = self.activation
        if act == "linear" or fused_relu:
            y = z
        elif act in activations.KERNEL_NAMES:
            from ..kernels import train as _train

            y = _train.activation(z, act, out=z if inplace and not logits else None)
        else:
            # NumPy activations keep their input for the backward: (y, fused, z).
            y = activations.forward(act, z)
            return ((y, z) if logits else y), (y, logits, z)
        return ((y, z) if logits else y), (y, logits)

    def _activation_grad(self, act_ctx, dy):
        y, fused = act_ctx[0], act_ctx[1]
        if fused or self.activation == "linear":
            return dy
        if len(act_ctx) == 3:
            return activations.backward(self.activation, as_f32(dy), act_ctx[2], y)
        from ..kernels import train as _train

        return _train.activation_backward(dy, y, self.activation)


Layer.build = _wrap_build(Layer.build)


def check_regularizer(v):
    return regularizers.get(v)


# The constructor argument holding the constraint of a weight_specs weight, where it is not
# '<weight name>_constraint' (Keras's names).
_CONSTRAINT_ARG = {"recurrent_kernel": "recurrent_constraint",
                   "depthwise_kernel": "depthwise_constraint",
                   "pointwise_kernel": "pointwise_constraint"}


def check_constraint(v, where="layer", name="constraint"):
    """A constraint argument (None, a name, a dict, a Constraint or a callable), checked."""
    try:
        return constraints.get(v)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: invalid {name} {v!r}: {e}") from None


def check_initializer(v):
    return initializers.get(v)


def prod(shape) -> int:
    return math.prod(shape)


__all__ += ["KerasTensor", "Node", "flatten", "pack_like", "as_f32", "positive_int", "int_tuple",
            "shape_tuple", "BUILD_LOCK"]
