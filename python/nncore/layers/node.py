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
        self.dtype = "string" if dtype == "string" else str(np.dtype(dtype))
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

    # Keras records arithmetic on symbolic tensors as ops. Tensor (+ - *) tensor of one shape
    # stays a merge layer (a serializable node, as before); everything else (broadcasting) -- scalars, arrays, weights inside
    # a custom layer's call, / @ ** and the unary and comparison operators -- is a keras_ops node.
    __array_ufunc__ = None  # ndarray (op) KerasTensor defers to the reflected operator below

    def __add__(self, other):
        if isinstance(other, KerasTensor) and other.shape == self.shape:
            from .merge import add
            return add([self, other])
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        if isinstance(other, KerasTensor) and other.shape == self.shape:
            from .merge import subtract
            return subtract([self, other])
        return _ops().subtract(self, other)

    def __rsub__(self, other):
        return _ops().subtract(other, self)

    def __mul__(self, other):
        if isinstance(other, KerasTensor) and other.shape == self.shape:
            from .merge import multiply
            return multiply([self, other])
        return _ops().multiply(self, other)

    def __rmul__(self, other):
        return _ops().multiply(other, self)

    def __truediv__(self, other):
        return _ops().divide(self, other)

    def __rtruediv__(self, other):
        return _ops().divide(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __pow__(self, other):
        return _ops().power(self, other)

    def __rpow__(self, other):
        return _ops().power(other, self)

    def __neg__(self):
        return _ops().negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops().abs(self)

    def __lt__(self, other):
        return _ops().less(self, other)

    def __le__(self, other):
        return _ops().less_equal(self, other)

    def __gt__(self, other):
        return _ops().greater(self, other)

    def __ge__(self, other):
        return _ops().greater_equal(self, other)

    def __getitem__(self, key):
        return _ops().getitem(self, key)

    @property
    def T(self):  # noqa: N802
        return _ops().transpose(self)


def _ops():
    from .. import ops as keras_ops

    return keras_ops


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
