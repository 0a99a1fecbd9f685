"""Embedding: integer indices (any int dtype, or integral floats) -> rows of a (input_dim,
output_dim) table. The gradient is a scatter-add of the output gradient into the rows used
(sequential, so deterministic)."""

from __future__ import annotations

import numpy as np

from .. import _core, constraints, initializers, regularizers
from .base import (Layer, check_constraint, check_initializer, check_regularizer, fmt_shape,
                   positive_int)


def embedding_scatter_add(de, idx, dy2, accumulate):
    """de (V, D) (+)= the rows of dy2 (N, D) added at idx (N,), in index order (C++ kernel; the
    np.add.at line is its reference)."""
    if hasattr(_core, "embedding_backward"):
        _core.embedding_backward(de, np.ascontiguousarray(idx, np.int64), dy2, accumulate)
        return
    if not accumulate:
        de[...] = 0
    np.add.at(de, idx, dy2)


class Embedding(Layer):
    """y[..., :] = embeddings[x[...]]. With mask_zero=True, index 0 is padding: the layer's
    compute_mask gives x != 0 (the row still exists, so input_dim counts it)."""

    output_dtype = "float32"

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 weights=None, lora_rank=None, input_length=None, **kwargs):
        super().__init__(**kwargs)
        w = self.name
        self.input_dim = positive_int(input_dim, "input_dim", w)
        self.output_dim = positive_int(output_dim, "output_dim", w)
        if lora_rank is not None:
            raise ValueError(f"{w}: lora_rank is not supported")
        self.embeddings_constraint = check_constraint(
            embeddings_constraint, f"layer {w!r} (Embedding)", "embeddings_constraint")
        self.embeddings_initializer = check_initializer(embeddings_initializer)
        self.embeddings_regularizer = check_regularizer(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self._initial_weights = weights

    def weight_specs(self, s):
        return [("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer,
                 self.embeddings_regularizer)]

    def check_input_shape(self, s):
        if len(s) < 1:
            raise ValueError(f"layer {self.name!r} (Embedding) needs an input with a batch axis, "
                             f"got {fmt_shape(s)}")

    def compute_output_shape(self, s):
        return tuple(s) + (self.output_dim,)

    def _on_built(self):
        self.embeddings = self.weights[0]
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    @property
    def _makes_mask(self):
        return self.mask_zero

    def compute_mask(self, x, mask=None):
        return None if not self.mask_zero else np.asarray(x) != 0

    def _indices(self, x, check_range=True):
        x = np.asarray(x)
        where = f"layer {self.name!r} (Embedding)"
        if x.dtype.kind == "f":
            if x.size and not np.all(np.isfinite(x) & (np.floor(x) == x)):
                raise ValueError(f"{where}: indices must be integers; got a float input of shape "
                                 f"{x.shape} with non-integral or non-finite values")
        elif x.dtype.kind not in "iu":
            raise TypeError(f"{where}: indices must be integers, got dtype {x.dtype} "
                            f"(input shape {x.shape})")
        if x.size and check_range:
            lo, hi = x.min(), x.max()
            if lo < 0 or hi >= self.input_dim:
                raise ValueError(f"{where}: indices must be in [0, {self.input_dim}) "
                                 f"(input_dim={self.input_dim}), got values in [{lo:.20g}, "
                                 f"{hi:.20g}] (input shape {x.shape})")
        return x.astype(np.intp, copy=False)

    def forward(self, x, training=False, need_ctx=False):
        # The C++ gather checks the range itself (and a failure reruns the check here for the
        # message naming the layer); its output comes from the binding's array pool.
        idx = self._indices(x, check_range=False)
        flat = np.ascontiguousarray(idx.reshape(-1), np.int64)
        try:
            y = _core.embedding_forward(self.embeddings, flat)
        except ValueError:
            self._indices(x)
            raise
        return y.reshape(idx.shape + (self.output_dim,)), (idx if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        idx = ctx.reshape(-1)
        g, beta = self._grad_out(0)
        dy2 = np.ascontiguousarray(dy, np.float32).reshape(idx.size, self.output_dim)
        embedding_scatter_add(g, idx, dy2, accumulate=bool(beta))
        return None  # no gradient for integer indices

    def get_config(self):
        cfg = super().get_config()
        cfg.update(input_dim=self.input_dim, output_dim=self.output_dim,
                   embeddings_initializer=initializers.serialize(self.embeddings_initializer),
                   embeddings_regularizer=regularizers.serialize(self.embeddings_regularizer),
                   embeddings_constraint=constraints.serialize(self.embeddings_constraint),
                   mask_zero=self.mask_zero)
        return cfg
