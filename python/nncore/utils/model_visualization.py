"""plot_model / model_to_dot, as keras.utils: a Graphviz drawing of the model's layers through
pydot (and Graphviz's `dot` program to render it), both optional like in Keras."""

from __future__ import annotations

import os


def _pydot():
    try:
        import pydot
    except ImportError as e:
        raise ImportError("plot_model needs the pydot package (and the Graphviz programs) to "
                          "draw the model: pip install pydot, and install Graphviz "
                          "(https://graphviz.org/download/)") from e
    return pydot


def _shape(s):
    return "?" if s is None else str(tuple(s)).replace("None", "None")


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True,
                 rankdir="TB", expand_nested=False, dpi=200, subgraph=False,
                 show_layer_activations=False, show_trainable=False, **kwargs):
    """A pydot.Dot with one node per layer (name, class, optionally shapes, activation,
    trainable) and edges in the order data flows."""
    pydot = _pydot()
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"rankdir must be 'TB' or 'LR', got {rankdir!r}")
    dot = pydot.Dot(graph_type="digraph", rankdir=rankdir, dpi=str(dpi))
    dot.set_node_defaults(shape="record")
    prev = None
    for i, layer in enumerate(getattr(model, "layers", [])):
        label = type(layer).__name__
        if show_layer_names:
            label = f"{layer.name} ({label})"
        act = getattr(layer, "activation", None)
        if show_layer_activations and isinstance(act, str):
            label += f"|activation: {act}"
        if show_shapes:
            ins = getattr(layer, "input_shape", None)
            outs = getattr(layer, "output_shape", None)
            label += f"|input: {_shape(ins)}|output: {_shape(outs)}"
        if show_dtype:
            label += "|dtype: float32"
        if show_trainable:
            label += f"|trainable: {getattr(layer, 'trainable', True)}"
        node = pydot.Node(f"layer{i}", label="{" + label.replace(">", "\\>").replace(
            "<", "\\<") + "}")
        dot.add_node(node)
        if prev is not None:
            dot.add_edge(pydot.Edge(prev, node))
        prev = node
    return dot


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=True, rankdir="TB", expand_nested=False, dpi=200,
               show_layer_activations=False, show_trainable=False, **kwargs):
    """Render model_to_dot(model, ...) to to_file (format from its extension; needs Graphviz's
    `dot` program). Returns the path."""
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype,
                       show_layer_names=show_layer_names, rankdir=rankdir, dpi=dpi,
                       show_layer_activations=show_layer_activations,
                       show_trainable=show_trainable)
    to_file = os.fspath(to_file)
    ext = os.path.splitext(to_file)[1][1:] or "png"
    try:
        dot.write(to_file, format=ext)
    except FileNotFoundError as e:
        raise ImportError("plot_model needs the Graphviz programs (`dot`) to render the "
                          "drawing: install Graphviz (https://graphviz.org/download/)") from e
    return to_file
