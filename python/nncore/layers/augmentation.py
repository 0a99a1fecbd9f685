"""Image augmentation layers (Keras 3 names, arguments and defaults), NHWC:
RandomFlip, RandomTranslation, RandomRotation, RandomZoom, RandomContrast, RandomBrightness.

Active in training and when the layer is called directly on data (as Keras: training defaults
to True there); identity in predict / evaluate and with training=False. Each layer draws its
per-image parameters from its own generator when `seed` is given (reproducible), else from
nncore's global one (nncore.utils.set_random_seed). `_draw` makes the parameters and `_apply`
uses them, so a transform can be checked for fixed parameters.

The geometric layers share one affine resampler with TensorFlow's ImageProjectiveTransformV3
semantics (what Keras 3 calls): an output pixel (x, y) reads the input at
((a0 x + a1 y + a2), (b0 x + b1 y + b2)); fill_mode 'constant' (fill_value outside), 'nearest'
(clamp), 'reflect' (d c b a | a b c d | d c b a), 'wrap' (TF's periodic rule); interpolation
'bilinear' or 'nearest'. A k = c0 x + c1 y + 1 of 0 reads the fill value, as TF does.
The resampler is C++ (`_core.affine_transform` / `affine_transform_backward`,
csrc/kernels/affine.cpp: coordinates and weights in double, parallel over image rows, bitwise
equal for any thread count); affine_plan / affine_apply / affine_backward below are its NumPy
twin (the tests compare the two). Only the resampling is C++: the random parameters are drawn
here, from the layer's generator.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from ..utils.random import get_rng
from .base import Layer, as_f32, fmt_shape
from .node import is_symbolic

_FILL = ("constant", "nearest", "reflect", "wrap")
_INTERP = ("bilinear", "nearest")


def _map_coord(v, n, mode):
    """TF's coordinate mapping for fill modes other than 'constant'."""
    if n <= 1:
        return np.zeros_like(v)
    if mode == "reflect":
        p = 2.0 * n
        v = np.mod(v, p)  # in [0, 2n): the second half is the mirror image
        v = np.where(v >= n, p - v - 1, v)
    elif mode == "wrap":
        # TF's rule (not a plain modulo): whole periods of n counted in units of n - 1
        # (integer truncation), then the clamp below
        sz = n - 1
        v = np.where(v < 0, v + n * (np.trunc(-v / sz) + 1),
                     np.where(v > n - 1, v - n * np.trunc(v / sz), v))
    return np.clip(v, 0, n - 1)


def _round_half_away(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def affine_plan(h, w, transform, fill_mode="constant", interpolation="bilinear"):
    """transform (B, 8) (TF's [a0 a1 a2 b0 b1 b2 c0 c1], c0 = c1 = 0) -> (idx, wts, fillw):
    idx (B, H*W, K) int source pixels (-1: outside), wts (B, H*W, K) float64 weights, so that
    y[b, p] = sum_k wts * x[b, idx] (+ fill_value * fillw[b, p] for the outside taps)."""
    t = np.asarray(transform, np.float64).reshape(-1, 8)
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                         indexing="ij")
    xs, ys = xs.ravel()[None], ys.ravel()[None]
    k = t[:, 6:7] * xs + t[:, 7:8] * ys + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        sx = (t[:, 0:1] * xs + t[:, 1:2] * ys + t[:, 2:3]) / k
        sy = (t[:, 3:4] * xs + t[:, 4:5] * ys + t[:, 5:6]) / k
    # k == 0 (an infinite coordinate) reads the fill value, as TF; so does any non-finite one
    bad = (k == 0) | ~np.isfinite(sx) | ~np.isfinite(sy)
    sx, sy = np.where(bad, -2.0, sx), np.where(bad, -2.0, sy)
    if fill_mode != "constant":
        sx, sy = _map_coord(sx, w, fill_mode), _map_coord(sy, h, fill_mode)
    if interpolation == "nearest":
        cx, cy = _round_half_away(sx), _round_half_away(sy)
        taps = [(cy, cx, np.ones_like(sx))]
    else:
        x0, y0 = np.floor(sx), np.floor(sy)
        fx, fy = sx - x0, sy - y0
        taps = [(y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
                (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)]
    if bad.any():  # one outside tap of weight 1
        taps = [(np.where(bad, -1.0, ty), tx, np.where(bad, 1.0 if i == 0 else 0.0, wt))
                for i, (ty, tx, wt) in enumerate(taps)]
    idx, wts = [], []
    fillw = np.zeros_like(sx)
    for ty, tx, wt in taps:
        inside = (ty >= 0) & (ty <= h - 1) & (tx >= 0) & (tx <= w - 1)
        idx.append(np.where(inside, ty * w + tx, -1).astype(np.int64))
        wts.append(np.where(inside, wt, 0.0))
        fillw += np.where(inside, 0.0, wt)
    return np.stack(idx, -1), np.stack(wts, -1), fillw


def affine_apply(x, plan, fill_value=0.0, dtype=np.float32):
    """x (B, H, W, C) with a plan from affine_plan -> (B, H, W, C). The NumPy twin of
    _core.affine_transform (which the layers run); float64 throughout with dtype=np.float64."""
    idx, wts, fillw = plan
    b, h, w, c = x.shape
    flat = x.reshape(b, h * w, c)
    safe = np.maximum(idx, 0)
    rows = np.arange(b)[:, None, None]
    y = np.einsum("bpk,bpkc->bpc", wts.astype(dtype), flat[rows, safe].astype(dtype))
    if fill_value:
        y = y + dtype(fill_value) * fillw.astype(dtype)[..., None]
    return y.reshape(b, h, w, c).astype(dtype)


def affine_backward(dy, plan, shape, dtype=np.float32):
    """The adjoint of affine_apply: dx (B, H, W, C) = scatter-add of the tap weights (the NumPy
    twin of _core.affine_transform_backward)."""
    idx, wts, _ = plan
    b, h, w, c = shape
    dflat = dy.reshape(b, h * w, c).astype(dtype)
    dx = np.zeros((b, h * w + 1, c), dtype)  # row h*w collects the outside taps
    tgt = np.where(idx < 0, h * w, idx)
    contrib = wts.astype(dtype)[..., None] * dflat[:, :, None, :]  # (B, P, K, C)
    for i in range(b):  # np.add.at per image: deterministic, sums repeated sources
        np.add.at(dx[i], tgt[i].ravel(), contrib[i].reshape(-1, c))
    return dx[:, :h * w].reshape(shape)


def _check_seed(seed, where):
    if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(
            seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"{where}: seed must be an int >= 0 or None, got {seed!r}")
    return None if seed is None else int(seed)


def _pair(v, where, name, sym):
    """Keras's factor: a number f -> (-f, f) (sym) or (f, f); a pair stays as given."""
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ValueError(f"{where}: {name} must be a number or a pair, got {v!r}")
        lo, hi = float(v[0]), float(v[1])
    elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        lo, hi = (-float(v), float(v)) if sym else (float(v), float(v))
    else:
        raise ValueError(f"{where}: {name} must be a number or a pair, got {v!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or (sym and lo > hi):
        raise ValueError(f"{where}: {name} {v!r} is not a valid range")
    return lo, hi


def _keras_factor(v, bounds, where):
    """Keras 3's _set_factor: a number f -> (max(-|f|, low bound), |f|), a pair -> sorted; both
    inside the layer's bounds. The result is what Keras stores (and serializes) as `factor`."""
    msg = f"{where}: factor must be a number or a pair in [{bounds[0]}, {bounds[1]}], got {v!r}"
    if isinstance(v, (list, tuple)):
        if len(v) != 2 or not all(isinstance(a, (int, float, np.integer, np.floating)) and
                                  not isinstance(a, bool) and math.isfinite(a) for a in v):
            raise ValueError(msg)
        lo, hi = sorted(float(a) for a in v)
        if lo > bounds[1] or hi < bounds[0]:
            raise ValueError(msg)
        return (lo, hi)
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or \
            not math.isfinite(v) or not bounds[0] <= v <= bounds[1]:
        raise ValueError(msg)
    f = abs(float(v))
    return (max(-f, bounds[0]), f)


class _Augment(Layer):
    supports_masking = False

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{self.name}: only data_format='channels_last' is supported")
        self.seed = _check_seed(seed, self.name)
        self._rng = None if self.seed is None else np.random.default_rng(self.seed)

    def __call__(self, inputs, training=None, mask=None, **kwargs):
        if training is None and not is_symbolic(inputs):
            training = True  # Keras: a direct call on data augments
        return super().__call__(inputs, training=training, mask=mask, **kwargs)

    def _gen(self):
        return self._rng if self._rng is not None else get_rng()

    def check_input_shape(self, s):
        if len(s) not in (3, 4):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) needs images "
                             f"(batch, height, width, channels), got {fmt_shape(s)}")

    def compute_output_shape(self, s):
        return s

    def forward(self, x, training=False, need_ctx=False):
        if not training:
            return x, None
        x = as_f32(x)
        single = x.ndim == 3
        xb = x[None] if single else x
        params = self._draw(self._gen(), xb.shape)
        y, ctx = self._apply(xb, params)
        return (y[0] if single else y), ((ctx, single, xb.shape) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        if ctx is None:
            return dy
        c, single, shape = ctx
        dyb = as_f32(dy)[None] if single else as_f32(dy)
        dx = self._apply_backward(dyb, c, shape)
        return dx[0] if single else dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(seed=self.seed, data_format="channels_last")
        return cfg


class RandomFlip(_Augment):
    """Flip each image left-right and/or up-down with probability 1/2 (mode 'horizontal',
    'vertical' or 'horizontal_and_vertical')."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if mode not in ("horizontal", "vertical", "horizontal_and_vertical"):
            raise ValueError(f"{self.name}: mode must be 'horizontal', 'vertical' or "
                             f"'horizontal_and_vertical', got {mode!r}")
        self.mode = mode

    def _draw(self, rng, shape):
        b = shape[0]
        hz = "horizontal" in self.mode
        vt = "vertical" in self.mode
        return {"h": rng.random(b) < 0.5 if hz else np.zeros(b, bool),
                "v": rng.random(b) < 0.5 if vt else np.zeros(b, bool)}

    @staticmethod
    def _flip(x, p):
        y = np.where(p["h"][:, None, None, None], x[:, :, ::-1], x)
        return np.where(p["v"][:, None, None, None], y[:, ::-1], y)

    def _apply(self, x, p):
        return self._flip(x, p).astype(np.float32), p

    def _apply_backward(self, dy, p, shape):
        return self._flip(dy, p).astype(np.float32)  # a flip is its own adjoint

    def get_config(self):
        cfg = super().get_config()
        cfg["mode"] = self.mode
        return cfg


class _Affine(_Augment):
    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 **kwargs):
        super().__init__(seed=seed, **kwargs)
        if fill_mode not in _FILL:
            raise ValueError(f"{self.name}: fill_mode must be one of {_FILL}, got {fill_mode!r}")
        if interpolation not in _INTERP:
            raise ValueError(f"{self.name}: interpolation must be one of {_INTERP}, got "
                             f"{interpolation!r}")
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = float(fill_value)

    def _apply(self, x, p):
        t = np.ascontiguousarray(self._matrix(p, x.shape), np.float64)
        y = _core.affine_transform(np.ascontiguousarray(x, np.float32), t, self.fill_mode,
                                   self.interpolation, self.fill_value)
        return y, t

    def _apply_backward(self, dy, t, shape):
        return _core.affine_transform_backward(np.ascontiguousarray(dy, np.float32), t,
                                               self.fill_mode, self.interpolation)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(fill_mode=self.fill_mode, interpolation=self.interpolation,
                   fill_value=self.fill_value)
        return cfg


class RandomTranslation(_Affine):
    """Shift by height_factor * H and width_factor * W pixels, uniform in the factor ranges
    (a number f means (-f, f))."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._h = _pair(height_factor, self.name, "height_factor", True)
        self._w = _pair(width_factor, self.name, "width_factor", True)

    def _draw(self, rng, shape):
        b, h, w = shape[:3]
        return {"translations": np.stack([rng.uniform(*self._w, size=b) * w,
                                          rng.uniform(*self._h, size=b) * h], axis=1)}

    @staticmethod
    def _matrix(p, shape):
        t = np.asarray(p["translations"], np.float64)
        n = t.shape[0]
        one, zero = np.ones((n, 1)), np.zeros((n, 1))
        return np.concatenate([one, zero, -t[:, :1], zero, one, -t[:, 1:], zero, zero], axis=1)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(height_factor=self.height_factor, width_factor=self.width_factor)
        return cfg


class RandomRotation(_Affine):
    """Rotate by factor * 360 degrees about the image centre, uniform in the factor range."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.factor = _keras_factor(factor, (-1.0, 1.0), self.name)
        self._f = self.factor

    def _draw(self, rng, shape):
        return {"angle": rng.uniform(self._f[0] * 360.0, self._f[1] * 360.0, size=shape[0])}

    @staticmethod
    def _matrix(p, shape):
        h, w = shape[1], shape[2]
        a = np.deg2rad(np.asarray(p["angle"], np.float64))
        cx, cy = 0.5 * (w - 1), 0.5 * (h - 1)
        c, s = np.cos(a), np.sin(a)
        z = np.zeros_like(a)
        return np.stack([c, -s, cx - cx * c + cy * s, s, c, cy - cx * s - cy * c, z, z], axis=1)

    def get_config(self):
        cfg = super().get_config()
        cfg["factor"] = list(self.factor)
        return cfg


class RandomZoom(_Affine):
    """Zoom by 1 + u, u uniform in the factor range (positive: zoom out); width_factor=None
    keeps the aspect ratio (the height draw is used for both axes)."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._h = _pair(height_factor, self.name, "height_factor", True)
        self._w = None if width_factor is None else _pair(width_factor, self.name,
                                                          "width_factor", True)
        if min(self._h[0], self._w[0] if self._w else 0) < -1:
            raise ValueError(f"{self.name}: zoom factors must be >= -1")

    def _draw(self, rng, shape):
        b = shape[0]
        hz = 1.0 + rng.uniform(*self._h, size=b)
        wz = hz if self._w is None else 1.0 + rng.uniform(*self._w, size=b)
        return {"height_zoom": hz, "width_zoom": wz}

    @staticmethod
    def _matrix(p, shape):
        h, w = shape[1], shape[2]
        zx = np.asarray(p["width_zoom"], np.float64).reshape(-1)
        zy = np.asarray(p["height_zoom"], np.float64).reshape(-1)
        z = np.zeros_like(zx)
        return np.stack([zx, z, (w - 1) / 2.0 * (1 - zx), z, zy, (h - 1) / 2.0 * (1 - zy),
                         z, z], axis=1)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(height_factor=self.height_factor, width_factor=self.width_factor)
        return cfg


class _ValueAugment(_Augment):
    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(value_range, (list, tuple)) or len(value_range) != 2 or \
                not value_range[0] < value_range[1]:
            raise ValueError(f"{self.name}: value_range must be (low, high) with low < high, "
                             f"got {value_range!r}")
        self.factor = _keras_factor(factor, self._bounds, self.name)
        self._f = self.factor
        self.value_range = (float(value_range[0]), float(value_range[1]))

    def _apply_backward(self, dy, ctx, shape):
        keep, scale, _ = ctx  # the clip passes gradient only where it did not clip
        d = dy * keep
        if scale is None:
            return d.astype(np.float32)
        # y = (x - mean) * f + mean: dx = f * d + (1 - f) * mean_hw(d)
        return (scale * d + (1 - scale) * d.mean(axis=(1, 2), keepdims=True)).astype(np.float32)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(factor=list(self.factor), value_range=list(self.value_range))
        return cfg


class RandomContrast(_ValueAugment):
    """y = clip((x - mean_hw(x)) * f + mean_hw(x), value_range), f uniform in
    [1 - lower, 1 + upper] per image; as Keras 3, a number f gives (lower, upper) = (0, f)."""

    _bounds = (0.0, 1.0)

    def _draw(self, rng, shape):
        return {"contrast_factor": rng.uniform(1.0 - self._f[0], 1.0 + self._f[1],
                                               size=(shape[0], 1, 1, 1))}

    def _apply(self, x, p):
        f = np.asarray(p["contrast_factor"], np.float32).reshape(-1, 1, 1, 1)
        mean = x.mean(axis=(1, 2), keepdims=True)
        z = (x - mean) * f + mean
        lo, hi = self.value_range
        return np.clip(z, lo, hi).astype(np.float32), ((z >= lo) & (z <= hi), f, None)


class RandomBrightness(_ValueAugment):
    """y = clip(x + d * (high - low), value_range), d uniform in the factor range per image
    (a number f means (-f, f))."""

    _bounds = (-1.0, 1.0)

    def _draw(self, rng, shape):
        lo, hi = self.value_range
        return {"rgb_delta": rng.uniform(*self._f, size=(shape[0], 1, 1, 1)) * (hi - lo)}

    def _apply(self, x, p):
        z = x + np.asarray(p["rgb_delta"], np.float32).reshape(-1, 1, 1, 1)
        lo, hi = self.value_range
        return np.clip(z, lo, hi).astype(np.float32), ((z >= lo) & (z <= hi), None, None)


def _resize_matrix(n_in, n_out):
    """(n_out, n_in) weights of tf.image.resize 'bilinear' (half-pixel centers, edges clamped,
    no antialiasing) along one axis."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    lo = np.floor(src)
    w = src - lo
    lo = lo.astype(np.int64)
    a = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(a, (rows, np.clip(lo, 0, n_in - 1)), 1 - w)
    np.add.at(a, (rows, np.clip(lo + 1, 0, n_in - 1)), w)
    return a


def _window(n, start, size):
    a = np.zeros((size, n))
    a[np.arange(size), start + np.arange(size)] = 1.0
    return a


class RandomCrop(_Augment):
    """Crop images to (height, width). Training, on images larger than that in both
    dimensions: one random window for the whole batch (Keras 3 draws one offset per call),
    offsets uniform in [0, H - height] and [0, W - width]. Otherwise (inference, or images not
    larger): the central window of the target's aspect ratio, resized bilinearly to (height,
    width) -- Keras's smart_resize, which is what Keras documents. (Keras 3.15's code returns
    the images unchanged at inference, whatever its output shape says; nncore keeps the
    documented, shape-consistent behaviour.) Both are linear maps: y = A_h x A_w^T per channel,
    and the backward is the transposed map."""

    def __init__(self, height, width, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        for n, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{self.name}: {n} must be an int >= 1, got {v!r}")
        self.height, self.width = int(height), int(width)

    def check_input_shape(self, s):
        super().check_input_shape(s)
        if s[-3] is None or s[-2] is None:
            raise ValueError(f"layer {self.name!r} (RandomCrop) needs a known height and width, "
                             f"got {fmt_shape(s)}")

    def compute_output_shape(self, s):
        return tuple(s[:-3]) + (self.height, self.width, s[-1])

    def _maps(self, h, w, training, rng):
        th, tw = self.height, self.width
        if training and h > th and w > tw:
            hs = int(rng.integers(0, h - th + 1))
            ws = int(rng.integers(0, w - tw + 1))
            return _window(h, hs, th), _window(w, ws, tw)
        ch = max(min(h, int(float(w * th) / tw)), 1)  # smart_resize's central window
        cw = max(min(w, int(float(h * tw) / th)), 1)
        hs, ws = int(float(h - ch) / 2), int(float(w - cw) / 2)
        return (_resize_matrix(ch, th) @ _window(h, hs, ch),
                _resize_matrix(cw, tw) @ _window(w, ws, cw))

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        if x.ndim not in (3, 4):
            raise ValueError(f"layer {self.name!r} (RandomCrop) needs images (batch, height, "
                             f"width, channels), got shape {x.shape}")
        ah, aw = self._maps(x.shape[-3], x.shape[-2], training, self._gen())
        ah32, aw32 = ah.astype(np.float32), aw.astype(np.float32)
        y = np.einsum("ih,...hwc,jw->...ijc", ah32, x, aw32, optimize=True)
        return np.ascontiguousarray(y, np.float32), ((ah32, aw32) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        ah, aw = ctx
        dx = np.einsum("ih,...ijc,jw->...hwc", ah, as_f32(dy), aw, optimize=True)
        return np.ascontiguousarray(dx, np.float32)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(height=self.height, width=self.width)
        return cfg
