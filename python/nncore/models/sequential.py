"""Sequential: a Functional model whose graph is a chain, built as layers are added (or on the
first data when no input shape was given)."""

from __future__ import annotations

from ..layers.base import BUILD_LOCK, KerasTensor, Layer, fmt_shape
from ..layers.core import Input, InputLayer
from ..saving.registry import register
from .functional import Functional
from .model import Model


@register
class Sequential(Functional):
    """A linear stack of layers: Sequential([layers...]) or Sequential() then add(layer).

    trainable=False (or setting model.trainable = False later) freezes the model as Keras does:
    every layer's trainable is set to False (layers added later too)."""

    def __init__(self, layers=None, name=None, trainable=True, **kwargs):
        Model.__init__(self, name=name, trainable=True, **kwargs)
        self._stack: list = []
        self._input_layer = None
        self.built = False
        self._trainable = bool(trainable)
        for layer in layers or []:
            self.add(layer)

    # ---- structure ----------------------------------------------------------------------------
    @property
    def layers(self) -> list:
        return list(self._stack)

    @Model.trainable.setter
    def trainable(self, value) -> None:
        self._trainable = bool(value)
        for layer in getattr(self, "_stack", []):
            layer.trainable = self._trainable

    def add(self, layer, rebuild=True) -> None:
        if isinstance(layer, KerasTensor) and layer.node is not None and layer.node.is_input:
            layer = layer.node.layer  # model.add(keras.Input(...))
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects an nncore layer, got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._stack or self._input_layer is not None:
                raise ValueError("an Input layer must come first in a Sequential model")
            self._input_layer = layer
            return
        if any(lay.name == layer.name for lay in self._stack):
            raise ValueError(f"a layer named {layer.name!r} is already in model {self.name!r}; "
                             "layer names must be unique")
        if not self._stack and self._input_layer is None:
            shape = layer._input_shape_arg
            if shape is None and isinstance(layer, Model) and layer.built and \
                    len(getattr(layer, "inputs", [])) == 1:
                shape = layer.inputs[0].shape[1:]  # a built model first: its input shape
            if shape is not None:
                self._input_layer = InputLayer(shape=shape)
        if not self._trainable:
            layer.trainable = False
        self._stack.append(layer)
        if self._input_layer is not None:
            try:
                self._build_graph()
            except Exception:
                self._stack.pop()
                if self._stack:
                    self._build_graph()
                raise

    def pop(self, rebuild=True):
        if not self._stack:
            raise ValueError(f"model {self.name!r} has no layers to pop")
        layer = self._stack.pop()
        self._drop_nodes()
        self.built = False
        if self._stack and self._input_layer is not None:
            self._build_graph()
        return layer

    def _drop_nodes(self):
        mine = {id(s[5]) for s in getattr(self, "_steps", [])}
        for lay in self._stack + [getattr(self, "_popped", None)]:
            if lay is not None:
                lay._inbound_nodes = [n for n in lay._inbound_nodes if id(n) not in mine]

    def _build_graph(self):
        """(Re)build the chain Input -> layers from the current stack."""
        with BUILD_LOCK:
            old_steps = getattr(self, "_steps", [])
            mine = {id(s[5]) for s in old_steps}
            for lay in self._stack:
                lay._inbound_nodes = [n for n in lay._inbound_nodes if id(n) not in mine]
            x = self._input_layer._tensor
            for i, layer in enumerate(self._stack):
                prev = x
                try:
                    x = layer(x)
                except ValueError as e:
                    src = ("the model input" if i == 0 else
                           f"layer {self._stack[i - 1].name!r} "
                           f"({type(self._stack[i - 1]).__name__})")
                    raise ValueError(
                        f"cannot connect {src}, output shape {fmt_shape(prev.shape)}, to layer "
                        f"{layer.name!r} ({type(layer).__name__}): {e}") from None
                if isinstance(x, (list, dict)):
                    raise ValueError(f"layer {layer.name!r} has several outputs: it cannot be "
                                     "followed by another layer in a Sequential model")
            self._init_graph(self._input_layer._tensor, x)
            self._layers_all = self._layers
            self._layers = [lay for lay in self._layers if not isinstance(lay, InputLayer)]

    def build(self, input_shape=None) -> None:
        """Create every layer's weights for batches of shape input_shape (batch axis first)."""
        if input_shape is not None:
            shape = tuple(input_shape)
            if len(shape) < 2:
                raise ValueError(f"build: input_shape must include the batch axis, e.g. "
                                 f"(None, 28, 28, 1); got {input_shape!r}")
            if self._input_layer is not None:
                have = tuple(self._input_layer._input_shape_arg)
                if tuple(shape[1:]) != have:
                    raise ValueError(f"build: model {self.name!r} already has input shape "
                                     f"{fmt_shape((None,) + have)}, got {fmt_shape(shape)}")
            else:
                self._input_layer = InputLayer(shape=tuple(shape[1:]))
        if self._input_layer is None:
            raise ValueError(f"model {self.name!r} has no input shape: pass input_shape= to the "
                             "first layer, add an Input layer, or call build(input_shape)")
        if not self._stack:
            raise ValueError(f"model {self.name!r} has no layers")
        if not self.built:
            self._build_graph()

    def _ensure_built_for(self, shapes):
        """Deferred build on the first data (Keras builds a Sequential without an input shape
        from the first batch it sees)."""
        if self.built:
            return
        with BUILD_LOCK:
            if self.built:
                return
            if self._input_layer is None:
                if len(shapes) != 1:
                    raise ValueError(f"model {self.name!r} takes one input, got {len(shapes)}")
                shape = tuple(shapes[0][1:])
                if any(d == 0 for d in shape):
                    raise ValueError(f"model {self.name!r}: cannot build for data of shape "
                                     f"{fmt_shape((None,) + shape)} (a zero-sized feature axis)")
                self._input_layer = InputLayer(shape=shape)
            self.build()

    def _maybe_build(self, input_shape) -> None:
        if not self.built:
            shapes = input_shape if isinstance(input_shape, list) else [input_shape]
            self._ensure_built_for([tuple(s) for s in shapes])

    @property
    def input_shape(self):
        if self._input_layer is None:
            return None
        return (None,) + tuple(self._input_layer._input_shape_arg)

    @property
    def output_shape(self):
        return self.outputs[0].shape if self.built else None

    @property
    def weights(self) -> list:
        if not self.built:
            return [w for lay in self._stack for w in lay.weights]
        return super().weights

    def _leaf_layers(self):
        if not self.built:
            return [lay for lay in self._stack if not isinstance(lay, Model)]
        return super()._leaf_layers()

    def _summary_layers(self):
        return self._stack

    # ---- config -------------------------------------------------------------------------------
    def get_config(self) -> dict:
        from ..saving.serialization import serialize_layer

        layers = []
        if self._input_layer is not None:
            layers.append(serialize_layer(self._input_layer))
        layers += [serialize_layer(lay) for lay in self._stack]
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from ..saving.serialization import sequential_from_config

        return sequential_from_config(cls, config, custom_objects)
