"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot, and Keras's
functional forms (layers.add([a, b]), layers.concatenate([a, b], axis=-1), ...).

Inputs are a list of tensors. Elementwise merges broadcast as numpy does (Keras allows a size-1
axis against a larger one); the backward sums each input's gradient back to its own shape.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, as_f32, fmt_shape


def _unbroadcast(g, shape):
    """Sum g down to `shape` (which broadcast to g.shape)."""
    if g.shape == tuple(shape):
        return g
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    axes = tuple(i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return np.ascontiguousarray(g, dtype=np.float32)


class _Merge(Layer):
    _min_inputs = 2

    def _where(self):
        return f"layer {self.name!r} ({type(self).__name__})"

    def _check_list(self, shapes):
        if not isinstance(shapes, list) or len(shapes) < self._min_inputs or \
                any(not isinstance(s, tuple) for s in shapes):
            raise ValueError(f"{self._where()} needs a list of at least {self._min_inputs} "
                             f"inputs, got {shapes!r}")

    def check_input_shape(self, shapes):
        self._check_list(shapes)
        self._broadcast(shapes)

    def _broadcast(self, shapes):
        out = [None] + [1] * (max(len(s) for s in shapes) - 1)
        for s in shapes:
            if len(s) != len(out):
                self._mismatch(shapes)
            for i, d in enumerate(s[1:], 1):
                if d is None or out[i] is None:
                    out[i] = None if (d is None and out[i] in (1, None)) else (out[i] or d)
                elif d != out[i] and 1 not in (d, out[i]):
                    self._mismatch(shapes)
                else:
                    out[i] = max(d, out[i])
        return tuple(out)

    def _mismatch(self, shapes):
        raise ValueError(f"{self._where()}: inputs must have the same shape (or broadcast), got "
                         f"{', '.join(fmt_shape(s) for s in shapes)}")

    def compute_output_shape(self, shapes):
        return self._broadcast(shapes)

    def _arrays(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < self._min_inputs:
            raise ValueError(f"{self._where()} needs a list of at least {self._min_inputs} "
                             "inputs")
        xs = [as_f32(x) for x in inputs]
        try:
            np.broadcast_shapes(*(x.shape for x in xs))
        except ValueError:
            self._mismatch([x.shape for x in xs])
        return xs


class _Elementwise(_Merge):
    """Keras's Merge.compute_mask: the elementwise merges pass on the OR of their inputs' masks,
    and no mask when one input has none (a residual Add after an Embedding(mask_zero=True) and a
    layer keeping its mask keeps the padding mask)."""

    def compute_mask(self, inputs, mask=None):
        if mask is None or not isinstance(mask, (list, tuple)) or any(m is None for m in mask):
            return None
        ms = [np.asarray(m, bool) for m in mask]
        return ms[0] if len(ms) == 1 else np.logical_or.reduce(np.broadcast_arrays(*ms))


class Add(_Elementwise):
    """y = x_1 + x_2 + ... + x_n."""

    def forward(self, inputs, training=False, need_ctx=False):
        xs = self._arrays(inputs)
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y += x
        return y, ([x.shape for x in xs] if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        return [_unbroadcast(dy, s) for s in ctx] if need_input_grad else None


class Subtract(_Elementwise):
    """y = x_1 - x_2 (exactly two inputs)."""

    def check_input_shape(self, shapes):
        super().check_input_shape(shapes)
        if len(shapes) != 2:
            raise ValueError(f"{self._where()} needs exactly 2 inputs, got {len(shapes)}")

    def forward(self, inputs, training=False, need_ctx=False):
        a, b = self._arrays(inputs)
        return a - b, ((a.shape, b.shape) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return [_unbroadcast(dy, ctx[0]), _unbroadcast(-dy, ctx[1])]


class Multiply(_Elementwise):
    """y = x_1 * x_2 * ... * x_n (elementwise)."""

    def forward(self, inputs, training=False, need_ctx=False):
        xs = self._arrays(inputs)
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y = y * x
        return y, (xs if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        out = []
        for i, x in enumerate(ctx):
            g = dy
            for j, other in enumerate(ctx):
                if j != i:
                    g = g * other
            out.append(_unbroadcast(g, x.shape))
        return out


class Average(_Elementwise):
    """y = (x_1 + ... + x_n) / n."""

    def forward(self, inputs, training=False, need_ctx=False):
        xs = self._arrays(inputs)
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y += x
        y *= np.float32(1.0 / len(xs))
        return y, ([x.shape for x in xs] if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        g = dy * np.float32(1.0 / len(ctx))
        return [_unbroadcast(g, s) for s in ctx]


class _Extremum(_Elementwise):
    _pick = None  # np.greater for Maximum

    def forward(self, inputs, training=False, need_ctx=False):
        xs = self._arrays(inputs)
        y = xs[0]
        which = np.zeros(np.broadcast_shapes(*(x.shape for x in xs)), np.int32)
        for i, x in enumerate(xs[1:], 1):
            # Pairwise like TensorFlow: on a tie the earlier input keeps the gradient; NaN wins.
            take = type(self)._pick(x, y) | np.isnan(x)
            y = np.where(take, x, y)
            which = np.where(take, i, which)
        y = np.ascontiguousarray(y, dtype=np.float32)
        return y, (([x.shape for x in xs], which) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        shapes, which = ctx
        return [_unbroadcast(np.where(which == i, dy, np.float32(0)), s)
                for i, s in enumerate(shapes)]


class Maximum(_Extremum):
    """y = elementwise max of the inputs."""

    _pick = np.greater


class Minimum(_Extremum):
    """y = elementwise min of the inputs."""

    _pick = np.less


class Concatenate(_Merge):
    """Joins the inputs along `axis` (default -1, the features); other axes must match."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"{self._where()}: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def _ax(self, rank):
        ax = self.axis if self.axis >= 0 else rank + self.axis
        if not 1 <= ax < rank:
            raise ValueError(f"{self._where()}: axis {self.axis} is out of range for inputs of "
                             f"rank {rank} (the batch axis cannot be concatenated)")
        return ax

    def check_input_shapes_equal_rank(self, shapes):
        if len({len(s) for s in shapes}) != 1:
            self._mismatch_concat(shapes)

    def _mismatch_concat(self, shapes):
        raise ValueError(f"{self._where()}: inputs must match on every axis but the "
                         f"concatenation axis {self.axis}, got "
                         f"{', '.join(fmt_shape(s) for s in shapes)}")

    def check_input_shape(self, shapes):
        self._check_list(shapes)
        self.check_input_shapes_equal_rank(shapes)
        ax = self._ax(len(shapes[0]))
        for s in shapes[1:]:
            for i in range(1, len(s)):
                if i != ax and None not in (s[i], shapes[0][i]) and s[i] != shapes[0][i]:
                    self._mismatch_concat(shapes)

    def compute_output_shape(self, shapes):
        ax = self._ax(len(shapes[0]))
        out = list(shapes[0])
        out[ax] = None if any(s[ax] is None for s in shapes) else sum(s[ax] for s in shapes)
        return tuple(out)

    def forward(self, inputs, training=False, need_ctx=False):
        xs = [as_f32(x) for x in inputs]
        shapes = [x.shape for x in xs]
        if len({len(s) for s in shapes}) != 1:
            self._mismatch_concat(shapes)
        ax = self._ax(xs[0].ndim)
        try:
            y = np.concatenate(xs, axis=ax)
        except ValueError:
            self._mismatch_concat(shapes)
        return y, ([s[ax] for s in shapes] if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        ax = self._ax(dy.ndim)
        cuts = np.cumsum(ctx)[:-1]
        return [np.ascontiguousarray(g) for g in np.split(dy, cuts, axis=ax)]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(_Merge):
    """Keras's batch dot product of two inputs over `axes` (an int or a pair, batch axis not
    counted as 0... i.e. axes index the full shape with the batch axis at 0, as Keras);
    normalize=True takes the cosine (each input L2-normalised along its axis first)."""

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
            axes = (int(axes), int(axes))
        if not isinstance(axes, (list, tuple)) or len(axes) != 2 or not all(
                isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
            raise ValueError(f"{self._where()}: axes must be an int or a pair of ints, "
                             f"got {axes!r}")
        self.axes = tuple(int(a) for a in axes)
        self.normalize = bool(normalize)

    def _axes(self, shapes):
        out = []
        for a, s in zip(self.axes, shapes):
            ax = a if a >= 0 else len(s) + a
            if not 1 <= ax < len(s):
                raise ValueError(f"{self._where()}: axis {a} is out of range for input "
                                 f"{fmt_shape(s)}")
            out.append(ax)
        return out

    def check_input_shape(self, shapes):
        self._check_list(shapes)
        if len(shapes) != 2 or any(len(s) not in (2, 3) for s in shapes):
            raise ValueError(f"{self._where()} needs 2 inputs of rank 2 or 3, got "
                             f"{', '.join(fmt_shape(s) for s in shapes)}")
        a0, a1 = self._axes(shapes)
        if None not in (shapes[0][a0], shapes[1][a1]) and shapes[0][a0] != shapes[1][a1]:
            raise ValueError(f"{self._where()}: dimension {a0} of {fmt_shape(shapes[0])} and "
                             f"dimension {a1} of {fmt_shape(shapes[1])} must be equal")

    def compute_output_shape(self, shapes):
        a0, a1 = self._axes(shapes)
        rest = [d for i, d in enumerate(shapes[0]) if i not in (0, a0)] + \
               [d for i, d in enumerate(shapes[1]) if i not in (0, a1)]
        return (shapes[0][0],) + (tuple(rest) if rest else (1,))

    @staticmethod
    def _letters(ndim, ax, first):
        base = "ijk" if first else "lmn"
        out = ["b"] + [base[i] for i in range(ndim - 1)]
        out[ax] = "z"
        return "".join(out)

    def _spec(self, a, b):
        a0, a1 = self._axes([a.shape, b.shape])
        sa, sb = self._letters(a.ndim, a0, True), self._letters(b.ndim, b1 := a1, False)
        so = "b" + "".join(c for c in sa[1:] if c != "z") + "".join(c for c in sb[1:] if c != "z")
        return sa, sb, so, a0, b1

    def forward(self, inputs, training=False, need_ctx=False):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"{self._where()} needs exactly 2 inputs")
        a, b = (as_f32(x) for x in inputs)
        self.check_input_shape([a.shape, b.shape])
        sa, sb, so, a0, a1 = self._spec(a, b)
        an, bn, na, nb = a, b, None, None
        if self.normalize:
            na = np.sqrt(np.maximum(np.sum(a * a, axis=a0, keepdims=True), 1e-12))
            nb = np.sqrt(np.maximum(np.sum(b * b, axis=a1, keepdims=True), 1e-12))
            an, bn = a / na, b / nb
        y = np.einsum(f"{sa},{sb}->{so}", an, bn).astype(np.float32)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        return y, ((an, bn, na, nb, a.shape) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        an, bn, na, nb, a_shape = ctx
        sa, sb, so, a0, a1 = self._spec(an, bn)
        g = dy.reshape(dy.shape[0]) if len(so) == 1 else dy
        da = np.einsum(f"{so},{sb}->{sa}", g, bn)
        db = np.einsum(f"{so},{sa}->{sb}", g, an)
        if self.normalize:
            da = (da - an * np.sum(da * an, axis=a0, keepdims=True)) / na
            db = (db - bn * np.sum(db * bn, axis=a1, keepdims=True)) / nb
        return [np.ascontiguousarray(da, np.float32), np.ascontiguousarray(db, np.float32)]

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes), "normalize": self.normalize}


def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
