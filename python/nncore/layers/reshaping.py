"""Reshaping layers (channels last): Identity, RepeatVector, Permute, UpSampling1D/2D,
ZeroPadding1D/2D, Cropping1D/2D. All are index shuffles; each backward is the adjoint."""

from __future__ import annotations

import numpy as np

from .base import Layer, as_f32, fmt_shape, int_tuple, positive_int
from .conv import check_data_format


def _need_rank(layer, s, rank, what):
    """The rank, and a known channel axis (the others may be None: unknown until the data)."""
    if len(s) != rank or s[-1] is None:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) needs input ({what}), "
                         f"got {fmt_shape(s)}")


def _scaled(n, f):
    return None if n is None else f(n)


def _check_rank(layer, x, rank, what):
    if x.ndim != rank:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) expects input ({what}), "
                         f"got shape {x.shape}")


class Identity(Layer):
    """y = x."""

    supports_masking = True

    def forward(self, x, training=False, need_ctx=False):
        return x, None

    def backward(self, ctx, dy, need_input_grad=True):
        return dy if need_input_grad else None


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = positive_int(n, "n", self.name)

    def check_input_shape(self, s):
        _need_rank(self, s, 2, "batch, features")

    def compute_output_shape(self, s):
        return (s[0], self.n, s[1])

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        _check_rank(self, x, 2, "batch, features")
        return np.repeat(x[:, None, :], self.n, axis=1), None

    def backward(self, ctx, dy, need_input_grad=True):
        return as_f32(dy).sum(axis=1) if need_input_grad else None

    def get_config(self):
        cfg = super().get_config()
        cfg["n"] = self.n
        return cfg


class Permute(Layer):
    """Permute the non-batch axes: dims is a permutation of 1..rank-1 (1-based, as Keras)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        d = tuple(int(a) for a in dims) if isinstance(dims, (list, tuple)) else None
        if not d or sorted(d) != list(range(1, len(d) + 1)):
            raise ValueError(f"{self.name}: dims must be a permutation of 1..{len(d or ())} "
                             f"(the non-batch axes), got {dims!r}")
        self.dims = d

    def check_input_shape(self, s):
        if len(s) != len(self.dims) + 1:
            raise ValueError(f"layer {self.name!r} (Permute) with dims {self.dims} needs an input "
                             f"of rank {len(self.dims) + 1}, got {fmt_shape(s)}")

    def compute_output_shape(self, s):
        return (s[0],) + tuple(s[d] for d in self.dims)

    def forward(self, x, training=False, need_ctx=False):
        _check_rank(self, np.asarray(x), len(self.dims) + 1, f"rank {len(self.dims) + 1}")
        return np.ascontiguousarray(np.transpose(x, (0,) + self.dims)), None

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        inv = np.argsort((0,) + self.dims)
        return np.ascontiguousarray(np.transpose(dy, inv))

    def get_config(self):
        cfg = super().get_config()
        cfg["dims"] = list(self.dims)
        return cfg


def _bilinear_matrix(n_in, scale):
    """(n_in*scale, n_in) interpolation weights, half-pixel centers, edges clamped (as
    tf.image.resize 'bilinear')."""
    n_out = n_in * scale
    src = (np.arange(n_out) + 0.5) / scale - 0.5
    lo = np.floor(src)
    w = src - lo
    lo = lo.astype(np.int64)
    a = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(a, (rows, np.clip(lo, 0, n_in - 1)), 1 - w)
    np.add.at(a, (rows, np.clip(lo + 1, 0, n_in - 1)), w)
    return a.astype(np.float32)


class UpSampling1D(Layer):
    """Repeat each step `size` times: (batch, L, C) -> (batch, L*size, C)."""

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        self.size = positive_int(size, "size", self.name)

    def check_input_shape(self, s):
        _need_rank(self, s, 3, "batch, steps, channels")

    def compute_output_shape(self, s):
        return (s[0], _scaled(s[1], lambda n: n * self.size), s[2])

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        _check_rank(self, x, 3, "batch, steps, channels")
        return np.repeat(x, self.size, axis=1), None

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        n, steps, c = dy.shape
        return as_f32(dy).reshape(n, steps // self.size, self.size, c).sum(axis=2)

    def get_config(self):
        cfg = super().get_config()
        cfg["size"] = self.size
        return cfg


class UpSampling2D(Layer):
    """(batch, H, W, C) -> (batch, H*sh, W*sw, C); interpolation 'nearest' (repeat) or 'bilinear'
    (half-pixel centers, as tf.image.resize)."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = int_tuple(size, 2, "size", self.name)
        check_data_format(data_format, self.name)
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"{self.name}: interpolation must be 'nearest' or 'bilinear', got "
                             f"{interpolation!r}")
        self.interpolation = interpolation

    def check_input_shape(self, s):
        _need_rank(self, s, 4, "batch, height, width, channels")

    def compute_output_shape(self, s):
        return (s[0], _scaled(s[1], lambda n: n * self.size[0]),
                _scaled(s[2], lambda n: n * self.size[1]), s[3])

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        _check_rank(self, x, 4, "batch, height, width, channels")
        sh, sw = self.size
        if self.interpolation == "nearest":
            return np.repeat(np.repeat(x, sh, axis=1), sw, axis=2), None
        ah, aw = _bilinear_matrix(x.shape[1], sh), _bilinear_matrix(x.shape[2], sw)
        y = np.einsum("ih,nhwc->niwc", ah, x)
        y = np.einsum("jw,niwc->nijc", aw, y)
        return np.ascontiguousarray(y, np.float32), (x.shape if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dy = as_f32(dy)
        sh, sw = self.size
        n, h, w, c = dy.shape
        if self.interpolation == "nearest":
            return dy.reshape(n, h // sh, sh, w // sw, sw, c).sum(axis=(2, 4))
        ah, aw = _bilinear_matrix(h // sh, sh), _bilinear_matrix(w // sw, sw)
        g = np.einsum("jw,nijc->niwc", aw, dy)
        return np.ascontiguousarray(np.einsum("ih,niwc->nhwc", ah, g), np.float32)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(size=list(self.size), data_format="channels_last",
                   interpolation=self.interpolation)
        return cfg


def _pairs(v, n, name, where, allow_zero=True):
    """Keras padding/cropping argument -> n (before, after) pairs of non-negative ints."""
    def nonneg(a):
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 0:
            raise ValueError(f"{where}: {name} must hold non-negative ints, got {v!r}")
        return int(a)

    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return ((nonneg(v),) * 2,) * n
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"{where}: {name} must be an int or a tuple, got {v!r}")
    if n == 1 and len(v) == 2 and all(not isinstance(a, (list, tuple)) for a in v):
        return ((nonneg(v[0]), nonneg(v[1])),)
    if len(v) != n:
        raise ValueError(f"{where}: {name} must be an int, a tuple of {n} ints or {n} pairs, got "
                         f"{v!r}")
    out = []
    for a in v:
        if isinstance(a, (list, tuple)):
            if len(a) != 2:
                raise ValueError(f"{where}: {name} pairs must have 2 entries, got {v!r}")
            out.append((nonneg(a[0]), nonneg(a[1])))
        else:
            out.append((nonneg(a), nonneg(a)))
    return tuple(out)


class _Pad(Layer):
    _n = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if self._n == 2 and padding == 1:
            padding = (1, 1)
        self.padding = _pairs(padding, self._n, "padding", self.name)
        check_data_format(data_format, self.name)

    def check_input_shape(self, s):
        _need_rank(self, s, self._n + 2, "batch, " + ("steps" if self._n == 1 else
                                                       "height, width") + ", channels")

    def compute_output_shape(self, s):
        return (s[0],) + tuple(_scaled(s[i + 1], lambda n, p=p: n + sum(p))
                               for i, p in enumerate(self.padding)) + (s[-1],)

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        _check_rank(self, x, self._n + 2, f"rank {self._n + 2}")
        return np.pad(x, ((0, 0),) + self.padding + ((0, 0),)), None

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        sl = (slice(None),) + tuple(slice(a, dy.shape[i + 1] - b)
                                    for i, (a, b) in enumerate(self.padding))
        return np.ascontiguousarray(dy[sl])

    def get_config(self):
        cfg = super().get_config()
        cfg["padding"] = ([list(p) for p in self.padding] if self._n > 1
                          else list(self.padding[0]))
        if self._n > 1:
            cfg["data_format"] = "channels_last"
        return cfg


class ZeroPadding1D(_Pad):
    """Zeros before and after the steps axis: padding int or (left, right)."""
    _n = 1


class ZeroPadding2D(_Pad):
    """Zeros around H and W: padding int, (h, w) or ((top, bottom), (left, right))."""
    _n = 2


class _Crop(Layer):
    _n = 1

    def __init__(self, cropping=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if cropping is None:
            cropping = (1, 1) if self._n == 1 else ((0, 0), (0, 0))
        self.cropping = _pairs(cropping, self._n, "cropping", self.name)
        check_data_format(data_format, self.name)

    def check_input_shape(self, s):
        _need_rank(self, s, self._n + 2, "batch, " + ("steps" if self._n == 1 else
                                                       "height, width") + ", channels")
        for i, (a, b) in enumerate(self.cropping):
            if s[i + 1] is not None and a + b >= s[i + 1]:
                raise ValueError(f"layer {self.name!r} ({type(self).__name__}): cropping "
                                 f"{self.cropping} leaves nothing of input {fmt_shape(s)}")

    def compute_output_shape(self, s):
        return (s[0],) + tuple(_scaled(s[i + 1], lambda n, c=c: n - sum(c))
                               for i, c in enumerate(self.cropping)) + (s[-1],)

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        _check_rank(self, x, self._n + 2, f"rank {self._n + 2}")
        self.check_input_shape((None,) + x.shape[1:])
        sl = (slice(None),) + tuple(slice(a, x.shape[i + 1] - b)
                                    for i, (a, b) in enumerate(self.cropping))
        return np.ascontiguousarray(x[sl]), None

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return np.pad(as_f32(dy), ((0, 0),) + self.cropping + ((0, 0),))

    def get_config(self):
        cfg = super().get_config()
        cfg["cropping"] = ([list(c) for c in self.cropping] if self._n > 1
                           else list(self.cropping[0]))
        if self._n > 1:
            cfg["data_format"] = "channels_last"
        return cfg


class Cropping1D(_Crop):
    """Drop steps at the start and end: cropping int or (start, end); default (1, 1)."""
    _n = 1


class Cropping2D(_Crop):
    """Drop rows/columns: cropping int, (h, w) or ((top, bottom), (left, right))."""
    _n = 2
