"""Symbolic tensors and nodes: the graph that Functional models are made of.

Calling a layer on symbolic tensors (``layer(keras_tensor)``) builds the layer for their shapes and
records a Node: (layer, its input tensors, its output tensors). A Functional model is the set of
nodes between its input and output tensors, run in topological order. Nothing here computes.
"""

from __future__ import annotations

import numpy as np


def fmt_shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (
        ",)" if len(shape) == 1 else ")")


class KerasTensor:
    """A symbolic tensor: shape (batch axis None unless fixed), dtype and name, and the node that
    makes it (``node``, ``index`` = which output of that node)."""

    __slots__ = ("shape", "dtype", "name", "node", "index", "__weakref__")

    def __init__(self, shape, dtype="float32", name=None, node=None, index=0):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(np.dtype(dtype))
        self.name = name
        self.node = node
        self.index = index

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self):
        return (f"<KerasTensor shape={fmt_shape(self.shape)}, dtype={self.dtype}, "
                f"name={self.name}>")

    def __len__(self):
        raise TypeError("a symbolic tensor has no length; use .shape")

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic: it has no value until the model runs. Build a "
                        "keras.Model(inputs, outputs) and call predict/fit on data")

    # Keras records arithmetic on symbolic tensors as ops; the merge layers cover + - *.
    def __add__(self, other):
        from .merge import add
        return add([self, other])

    def __sub__(self, other):
        from .merge import subtract
        return subtract([self, other])

    def __mul__(self, other):
        from .merge import multiply
        return multiply([self, other])


class Node:
    """One call of a layer inside a graph. inputs: the call's argument structure (one tensor or a
    list of tensors); outputs: one tensor or a list."""

    __slots__ = ("layer", "inputs", "outputs", "flat_inputs", "flat_outputs")

    def __init__(self, layer, inputs, outputs):
        self.layer = layer
        self.inputs = inputs
        self.outputs = outputs
        self.flat_inputs = flatten(inputs)
        self.flat_outputs = flatten(outputs)
        for i, t in enumerate(self.flat_outputs):
            t.node, t.index = self, i

    @property
    def is_input(self) -> bool:
        return not self.flat_inputs

    def __repr__(self):
        return f"<Node {self.layer.name} {len(self.flat_inputs)} -> {len(self.flat_outputs)}>"


def flatten(struct) -> list:
    """Tensors (or arrays) of a structure of lists, tuples and dicts, in order."""
    if isinstance(struct, (list, tuple)):
        out = []
        for s in struct:
            out.extend(flatten(s))
        return out
    if isinstance(struct, dict):
        out = []
        for k in struct:
            out.extend(flatten(struct[k]))
        return out
    return [struct]


def pack_like(struct, flat: list):
    """The inverse of flatten: values of `flat` arranged as `struct`."""
    it = iter(flat)

    def build(s):
        if isinstance(s, (list, tuple)):
            return type(s)(build(x) for x in s) if isinstance(s, tuple) else [build(x) for x in s]
        if isinstance(s, dict):
            return {k: build(v) for k, v in s.items()}
        return next(it)

    return build(struct)


def is_symbolic(struct) -> bool:
    return any(isinstance(t, KerasTensor) for t in flatten(struct))


def shapes_of(struct):
    """Shape structure of a tensor structure (symbolic tensors or arrays)."""
    if isinstance(struct, (list, tuple)):
        return [shapes_of(s) for s in struct]
    if isinstance(struct, dict):
        return {k: shapes_of(v) for k, v in struct.items()}
    if isinstance(struct, KerasTensor):
        return struct.shape
    return (None,) + tuple(np.shape(struct)[1:])
