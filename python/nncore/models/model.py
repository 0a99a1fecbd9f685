"""Model: structure, weights and config. Training lives apart, in nncore.trainers (the Trainer
mixin gives compile / fit / evaluate / predict); saving in nncore.saving.

``keras.Model(inputs, outputs)`` makes a Functional model (as in Keras); Sequential is a
Functional whose graph is a chain.
"""

from __future__ import annotations

from ..layers.base import Layer, _snake, _unique_name, distinct, fmt_shape
from ..trainers.trainer import Trainer
from . import inference


class Model(Trainer, Layer):
    """Base of every model. ``Model(inputs, outputs, name=None)`` builds a Functional model."""

    _no_build_wrap = True  # a model's build builds its graph; it has no weights of its own
    _is_model = True

    def __new__(cls, *args, **kwargs):
        if cls is Model and (len(args) >= 2 or "inputs" in kwargs or "outputs" in kwargs):
            from .functional import Functional

            return Functional.__new__(Functional)
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, name=None, trainable=True, **kwargs):
        if args:
            raise TypeError("Model(inputs, outputs): both are needed for a functional model; "
                            "or subclass keras.Model and define call()")
        if name is None:
            name = _unique_name(_snake(type(self).__name__) if type(self).__name__ not in (
                "Model", "Functional") else "functional")
        Layer.__init__(self, name=name, trainable=trainable, **kwargs)
        Trainer.__init__(self)
        self._layers = []

    # ---- subclassed models --------------------------------------------------------------------
    @classmethod
    def _is_subclassed(cls) -> bool:
        from .functional import Functional

        return not issubclass(cls, Functional) and cls.call is not Layer.call

    def _ensure_built_for(self, shapes):
        if self._is_subclassed() and not self.built:
            self.build(shapes[0] if len(shapes) == 1 else shapes)

    def build(self, input_shape=None):
        """A subclassed model is built as Keras builds it on its first data: call() runs once
        on symbolic inputs of this shape, and the graph it records is the model's graph."""
        if not self._is_subclassed():
            raise ValueError(f"model {self.name!r}: build needs a subclassed model with call()")
        if self.built:
            return
        from ..ops._graph import trace_model
        from ..layers.base import BUILD_LOCK
        from .functional import Functional

        with BUILD_LOCK:
            if self.built:
                return
            multi = isinstance(input_shape, list) and input_shape and isinstance(
                input_shape[0], (tuple, list))
            shapes = [tuple(s) for s in input_shape] if multi else [tuple(input_shape)]
            inputs, outputs = trace_model(self, shapes, multi)
            Functional._init_graph(self, inputs, outputs)
            graph_layers = self._layers
            tracked = [lay for lay in self._sublayers() if not getattr(lay, "_is_op", False)]
            ids = {id(lay) for lay in tracked}
            from ..layers.core import InputLayer

            self._layers = tracked + [lay for lay in graph_layers if id(lay) not in ids
                                      and not getattr(lay, "_is_op", False)
                                      and not isinstance(lay, InputLayer)]

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.Model.from_config(functional_config) builds a Functional, as in Keras; a
        # subclassed model is its constructor called on its config (built later, from the
        # file's build_config).
        from .functional import Functional

        if not cls._is_subclassed():
            return Functional.from_config(config, custom_objects=custom_objects)
        try:
            return cls(**config)
        except TypeError as e:
            raise TypeError(f"cannot make a {cls.__name__} from its config {sorted(config)}: "
                            f"{e}. Its get_config() must return the constructor's arguments "
                            "(the default), or it must define from_config()") from None

    def _build_config(self):
        """{'input_shape': ...} for a built subclassed model (Keras's build_config), or None."""
        if not (self._is_subclassed() and self.built):
            return None
        shapes = [[None if d is None else int(d) for d in t.shape] for t in self.inputs]
        return {"input_shape": shapes[0] if len(shapes) == 1 and not isinstance(
            self._inputs_struct, list) else shapes}

    # ---- structure ----------------------------------------------------------------------------
    @property
    def layers(self) -> list:
        return list(self._layers)

    @Layer.trainable.setter
    def trainable(self, value) -> None:
        # Keras: a model's trainable flag is set on every layer inside it.
        self._trainable = bool(value)
        inference.bump()
        for layer in getattr(self, "_layers", []):
            layer.trainable = self._trainable

    def _leaf_layers(self) -> list:
        """Every layer that is not a model, once each, in model.layers order (nested models
        expanded in place)."""
        seen, out = set(), []

        def walk(model):
            for layer in model._layers:
                visit(layer)

        def visit(layer):
            if isinstance(layer, Model):
                walk(layer)
            elif id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
                for sub in layer._sublayers():  # layers nested in a custom layer
                    visit(sub)

        walk(self)
        return out

    def _unique_layers(self):
        seen = set()
        for layer in self._layers:
            if id(layer) not in seen:
                seen.add(id(layer))
                yield layer

    @property
    def weights(self) -> list:
        return distinct(*(layer.weights for layer in self._unique_layers()))

    @property
    def trainable_weights(self) -> list:
        if not self._trainable:
            return []
        return distinct(*(layer.trainable_weights for layer in self._unique_layers()))

    def _trainable_slots(self) -> list:
        """(layer, weight index) of every trainable weight, in trainable_weights order."""
        if not self._trainable:
            return []
        out, seen = [], set()
        for layer in self._leaf_layers():
            if not layer.trainable:
                continue
            for i, (w, t) in enumerate(zip(layer._weights, layer._weight_trainable)):
                if t and id(w) not in seen:
                    seen.add(id(w))
                    out.append((layer, i))
        return out


    def _all_weight_names(self) -> list:
        """Each of model.weights's names: its name in the first leaf layer that holds it (a model
        has no weights of its own; Layer.set_weights and the file formats use these)."""
        names = {}
        for layer in self._leaf_layers():
            for w, n in zip(layer._weights, layer._weight_names):
                names.setdefault(id(w), n)
        return [names.get(id(w), "weight") for w in self.weights]

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r} in model {self.name!r}; it has "
                         f"{[lay.name for lay in self.layers]}")

    def _zero_grads(self) -> None:
        for layer in self._leaf_layers():
            layer._zero_grads()

    def regularization_loss(self) -> float:
        return float(sum(lay.regularization_loss() for lay in self._leaf_layers()))

    # ---- summary ------------------------------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None) -> None:
        """Keras's model summary as plain text: a row per layer (name, type, output shape,
        parameters; with show_trainable a Y / N / - column, with expand_nested the layers of
        nested models indented under theirs), layer_range=[first, last] the rows from the first
        layer whose name matches `first` (re.match) to the last matching `last`, both inclusive;
        then the parameter totals. Columns widen to fit their longest entry."""
        import re

        if not self.built:
            raise ValueError(f"model {self.name!r} has not been built yet: give the first layer "
                             "an input_shape, call build(input_shape), or fit it on data first")
        out = print_fn or print
        layers = self._summary_layers()
        lo, hi = 0, len(layers)
        if layer_range is not None:
            if len(layer_range) != 2 or not all(isinstance(r, str) for r in layer_range):
                raise ValueError("summary: layer_range must be a list or tuple of 2 strings (the "
                                 f"first and last layer names), got {layer_range!r}")
            first = [i for i, la in enumerate(layers) if re.match(layer_range[0], la.name)]
            last = [i for i, la in enumerate(layers) if re.match(layer_range[1], la.name)]
            if not first or not last:
                raise ValueError("summary: layer_range does not match the layer names of model "
                                 f"{self.name!r}: {layer_range!r}")
            lo, hi = ((min(last), max(first) + 1) if min(first) > max(last)
                      else (min(first), max(last) + 1))

        def rows(layer, level):
            prefix = "   " * level + "└ " if level else ""
            shape = layer.output_shape
            cells = [f" {prefix}{layer.name} ({type(layer).__name__})",
                     fmt_shape(shape) if isinstance(shape, tuple) else str(shape),
                     f"{layer.count_params():,}"]
            if show_trainable:
                cells.append(("Y" if layer.trainable else "N") if layer.weights else "-")
            yield cells
            if expand_nested and getattr(layer, "layers", None):
                for inner in layer.layers:
                    yield from rows(inner, level + 1)

        table = [cells for layer in layers[lo:hi] for cells in rows(layer, 0)]
        header = [" Layer (type)", "Output Shape", "Param #"] + (
            ["Trainable"] if show_trainable else [])
        w = [33, 26, 12] + ([11] if show_trainable else [])
        if line_length:
            w[0] = max(20, line_length - sum(w[1:]))
        for r in [header] + table:  # widen a column to its longest entry (plus a space)
            for k, cell in enumerate(r):
                w[k] = max(w[k], len(cell) + (1 if k in (0, 1) else 2))
        total = sum(w)

        def line(cells):
            text = f"{cells[0]:<{w[0]}}{cells[1]:<{w[1]}}{cells[2]:>{w[2]}}"
            if show_trainable:
                text += f"{cells[3]:^{w[3]}}"
            return text

        out(f'Model: "{self.name}"')
        out("_" * total)
        out(line(header))
        out("=" * total)
        for i, cells in enumerate(table):
            out(line(cells))
            if i != len(table) - 1:
                out("_" * total)
        out("=" * total)
        trainable = int(sum(x.size for x in self.trainable_weights))
        every = self.count_params()

        def size(n):
            b = 4 * n
            for unit in ("B", "KB", "MB", "GB"):
                if b < 1024 or unit == "GB":
                    return f"{b:.2f} {unit}"
                b /= 1024

        out(f" Total params: {every:,} ({size(every)})")
        out(f" Trainable params: {trainable:,} ({size(trainable)})")
        out(f" Non-trainable params: {every - trainable:,} ({size(every - trainable)})")
        out("_" * total)

    def _summary_layers(self):
        return self.layers

    # ---- saving entry points ------------------------------------------------------------------
    def save(self, filepath, overwrite=True, **kwargs) -> None:
        """One file: architecture (JSON, with the compile settings) and weights."""
        from ..saving import save_model

        save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True) -> None:
        from ..saving import save_weights

        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs) -> None:
        from ..saving import load_weights

        try:
            load_weights(self, filepath)
        finally:  # even a failed load may have written some weights
            inference.bump()

    def export(self, filepath, format="tf_saved_model", verbose=True, **kwargs) -> None:
        """Keras 3's export; nncore writes format="onnx" (opset 17, dynamic batch axis)."""
        if format != "onnx":
            raise ValueError(f"export: nncore exports format='onnx' only, got format={format!r}")
        if kwargs:
            raise ValueError(f"export: unsupported argument(s) {sorted(kwargs)}")
        from ..saving.onnx_export import export_onnx

        export_onnx(self, filepath)

    def to_json(self, **kwargs) -> str:
        import json

        from ..saving.serialization import serialize_layer

        return json.dumps(serialize_layer(self), **kwargs)
