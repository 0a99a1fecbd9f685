"""BatchNormalization, LayerNormalization, UnitNormalization (Keras 3 numerics).

Both normalizations work on a 2-D view (rows, features) with the normalized features last:

    BatchNormalization (training, trainable): mean, var = moments over rows (biased variance)
        y = (x - mean) / sqrt(var + epsilon) * gamma + beta
        moving = moving * momentum + batch statistic * (1 - momentum)     (in place)
    otherwise (inference, or trainable=False as Keras 3): the moving statistics instead.
    LayerNormalization: the same per row, over the `axis` features.

The fused passes are C++ kernels when nncore was built with them (_core.batchnorm_*); the NumPy
code below is their reference and fallback.
"""

from __future__ import annotations

import numpy as np

from .. import _core, constraints, initializers, regularizers
from .base import (Layer, _bump_plans, as_f32, check_constraint, check_initializer,
                   check_regularizer, fmt_shape)

_HAS_BN_KERNEL = hasattr(_core, "batchnorm_forward_train")


def _norm_axis(axis, ndim, where):
    a = int(axis)
    if not -ndim <= a < ndim:
        raise ValueError(f"{where}: axis {axis} is out of range for an input of rank {ndim}")
    return a % ndim


# ---- the math on (M, C) float32 views; C++ twins in csrc/kernels/batchnorm.cpp ---------------
def bn_train_forward(x2, gamma, beta, eps):
    """x2 (M, C) -> (y2, mean, var, inv): batch statistics over the rows."""
    if _HAS_BN_KERNEL:
        return _core.batchnorm_forward_train(x2, gamma, beta, float(eps))
    x64 = x2.astype(np.float64)
    mean = x64.mean(axis=0)
    var = np.square(x64 - mean).mean(axis=0)
    inv = 1.0 / np.sqrt(var + eps)
    scale = inv if gamma is None else inv * gamma
    shift = -mean * scale if beta is None else beta - mean * scale
    y = (x64 * scale + shift).astype(np.float32)
    return y, mean.astype(np.float32), var.astype(np.float32), inv.astype(np.float32)


def bn_train_backward(dy2, x2, mean, inv, gamma):
    """-> (dx2, dgamma, dbeta) for y = gamma * (x - mean) * inv + beta with batch statistics."""
    if _HAS_BN_KERNEL:
        return _core.batchnorm_backward_train(dy2, x2, mean, inv, gamma)
    dy = dy2.astype(np.float64)
    xhat = (x2.astype(np.float64) - mean) * inv
    m = x2.shape[0]
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    g = 1.0 if gamma is None else gamma.astype(np.float64)
    dx = (g * inv / m) * (m * dy - dbeta - xhat * dgamma)
    return dx.astype(np.float32), dgamma.astype(np.float32), dbeta.astype(np.float32)


class BatchNormalization(Layer):
    """Keras 3 BatchNormalization (int `axis`, default the last). Weights in Keras's order:
    gamma (if scale), beta (if center), moving_mean, moving_variance (non-trainable)."""

    supports_masking = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        w = self.name
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"{w}: axis must be an int, got {axis!r}")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        if not self.epsilon > 0:
            raise ValueError(f"{w}: epsilon must be > 0, got {epsilon!r}")
        where = f"layer {self.name!r} ({type(self).__name__})"
        self.beta_constraint = check_constraint(beta_constraint, where, "beta_constraint")
        self.gamma_constraint = check_constraint(gamma_constraint, where, "gamma_constraint")
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = check_initializer(beta_initializer)
        self.gamma_initializer = check_initializer(gamma_initializer)
        self.moving_mean_initializer = check_initializer(moving_mean_initializer)
        self.moving_variance_initializer = check_initializer(moving_variance_initializer)
        self.beta_regularizer = check_regularizer(beta_regularizer)
        self.gamma_regularizer = check_regularizer(gamma_regularizer)
        self.synchronized = bool(synchronized)

    def check_input_shape(self, s):
        where = f"layer {self.name!r} (BatchNormalization)"
        if len(s) < 2:
            raise ValueError(f"{where} needs an input of rank >= 2, got {fmt_shape(s)}")
        a = _norm_axis(self.axis, len(s), f"{where}: input {fmt_shape(s)}")
        if a == 0 or s[a] is None:
            raise ValueError(f"{where}: axis {self.axis} of input {fmt_shape(s)} must be a known, "
                             "non-batch dimension")

    def weight_specs(self, s):
        c = (s[_norm_axis(self.axis, len(s), self.name)],)
        specs = []
        if self.scale:
            specs.append(("gamma", c, self.gamma_initializer, self.gamma_regularizer))
        if self.center:
            specs.append(("beta", c, self.beta_initializer, self.beta_regularizer))
        specs.append(("moving_mean", c, self.moving_mean_initializer, None, False))
        specs.append(("moving_variance", c, self.moving_variance_initializer, None, False))
        return specs

    def _on_built(self):
        ws = list(self.weights)
        self.gamma = ws.pop(0) if self.scale else None
        self.beta = ws.pop(0) if self.center else None
        self.moving_mean, self.moving_variance = ws

    def _view(self, x):
        """x -> (x2 (M, C) C-contiguous, the axis) with the normalized axis last."""
        a = _norm_axis(self.axis, x.ndim, self.name)
        c = self.moving_mean.shape[0]
        if x.ndim < 2 or x.shape[a] != c:
            raise ValueError(f"layer {self.name!r} (BatchNormalization) was built for {c} "
                             f"features on axis {self.axis}, got input shape {x.shape}")
        xt = x if a == x.ndim - 1 else np.moveaxis(x, a, -1)
        return np.ascontiguousarray(xt).reshape(-1, c), a

    @staticmethod
    def _unview(y2, x_shape, a):
        moved = list(x_shape)
        moved.append(moved.pop(a))
        y = y2.reshape(moved)
        return y if a == len(x_shape) - 1 else np.ascontiguousarray(np.moveaxis(y, -1, a))

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        x2, a = self._view(x)
        if training and self.trainable and x2.shape[0] > 0:
            y2, mean, var, inv = bn_train_forward(x2, self.gamma, self.beta, self.epsilon)
            m = np.float32(self.momentum)
            self.moving_mean[...] = self.moving_mean * m + mean * (np.float32(1) - m)
            self.moving_variance[...] = self.moving_variance * m + var * (np.float32(1) - m)
            _bump_plans()  # inference plans fold the moving statistics into conv/dense weights
            ctx = ("train", x2, mean, inv, x.shape, a) if need_ctx else None
        else:
            inv = (1.0 / np.sqrt(self.moving_variance.astype(np.float64) + self.epsilon))
            scale = inv if self.gamma is None else inv * self.gamma
            shift = -self.moving_mean * scale
            if self.beta is not None:
                shift = shift + self.beta
            y2 = (x2 * scale.astype(np.float32) + shift.astype(np.float32)).astype(np.float32)
            ctx = ("infer", x2, inv.astype(np.float32), x.shape, a) if need_ctx else None
        return self._unview(y2, x.shape, a), ctx

    def backward(self, ctx, dy, need_input_grad=True):
        kind = ctx[0]
        dy = as_f32(dy)
        if kind == "train":
            _, x2, mean, inv, shape, a = ctx
            dy2, _ = self._view(dy)
            dx2, dgamma, dbeta = bn_train_backward(dy2, x2, mean, inv, self.gamma)
        else:
            _, x2, inv, shape, a = ctx
            dy2, _ = self._view(dy)
            xhat = (x2 - self.moving_mean) * inv
            dgamma = np.einsum("mc,mc->c", dy2, xhat, dtype=np.float64).astype(np.float32)
            dbeta = dy2.sum(axis=0, dtype=np.float64).astype(np.float32)
            scale = inv if self.gamma is None else inv * self.gamma
            dx2 = dy2 * scale
        i = 0
        if self.scale:
            self._add_grad(i, dgamma)
            i += 1
        if self.center:
            self._add_grad(i, dbeta)
        return self._unview(dx2, shape, a) if need_input_grad else None

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axis=self.axis, momentum=self.momentum, epsilon=self.epsilon,
                   center=self.center, scale=self.scale,
                   beta_initializer=initializers.serialize(self.beta_initializer),
                   gamma_initializer=initializers.serialize(self.gamma_initializer),
                   moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
                   moving_variance_initializer=initializers.serialize(
                       self.moving_variance_initializer),
                   beta_regularizer=regularizers.serialize(self.beta_regularizer),
                   gamma_regularizer=regularizers.serialize(self.gamma_regularizer),
                   beta_constraint=constraints.serialize(self.beta_constraint),
                   gamma_constraint=constraints.serialize(self.gamma_constraint),
                   synchronized=self.synchronized)
        return cfg


def ln_forward(x2, gamma, beta, eps):
    """Rows of x2 (M, K) normalized: -> (y2, mean (M,), inv (M,))."""
    if hasattr(_core, "layernorm_forward"):
        return _core.layernorm_forward(x2, gamma, beta, float(eps))
    x64 = x2.astype(np.float64)
    mean = x64.mean(axis=1, keepdims=True)
    var = np.square(x64 - mean).mean(axis=1, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    y = (x64 - mean) * inv
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y.astype(np.float32), mean[:, 0].astype(np.float32), inv[:, 0].astype(np.float32)


def ln_backward(dy2, x2, mean, inv, gamma):
    if hasattr(_core, "layernorm_backward"):
        return _core.layernorm_backward(dy2, x2, mean, inv, gamma)
    dy = dy2.astype(np.float64)
    xhat = (x2.astype(np.float64) - mean[:, None]) * inv[:, None]
    dgamma = (dy * xhat).sum(axis=0)
    dbeta = dy.sum(axis=0)
    g = dy if gamma is None else dy * gamma
    dx = inv[:, None] * (g - g.mean(axis=1, keepdims=True)
                         - xhat * (g * xhat).mean(axis=1, keepdims=True))
    return dx.astype(np.float32), dgamma.astype(np.float32), dbeta.astype(np.float32)


class _AxesLayer(Layer):
    """Shared by LayerNormalization and UnitNormalization: `axis` an int or a list of ints;
    the view puts those axes last (in increasing order) and flattens them."""

    def _axes(self, ndim):
        where = f"layer {self.name!r} ({type(self).__name__})"
        axes = sorted({_norm_axis(a, ndim, where) for a in self.axis})
        if 0 in axes:
            raise ValueError(f"{where}: cannot normalize over the batch axis")
        return axes

    def _view(self, x):
        """x (C-contiguous float32) -> ((M, K) rows, perm). When the axes are the trailing ones
        (the default axis=-1) this is a reshape, no copy; the general case transposes."""
        axis = self.axis
        if len(axis) == 1 and (axis[0] == -1 or axis[0] == x.ndim - 1) and x.ndim >= 2:
            return x.reshape(-1, x.shape[-1]), None
        axes = self._axes(x.ndim)
        rest = [d for d in range(x.ndim) if d not in axes]
        perm = rest + axes
        xt = x if perm == list(range(x.ndim)) else np.transpose(x, perm)
        k = int(np.prod([x.shape[a] for a in axes]))
        return np.ascontiguousarray(xt).reshape(-1, k), perm

    @staticmethod
    def _unview(y2, shape, perm):
        if perm is None:
            return y2.reshape(shape)
        tshape = [shape[p] for p in perm]
        y = y2.reshape(tshape)
        if perm == list(range(len(shape))):
            return y
        return np.ascontiguousarray(np.transpose(y, np.argsort(perm)))

    def check_input_shape(self, s):
        where = f"layer {self.name!r} ({type(self).__name__})"
        if len(s) < 2:
            raise ValueError(f"{where} needs an input of rank >= 2, got {fmt_shape(s)}")
        axes = self._axes(len(s))
        if any(s[a] is None for a in axes):
            raise ValueError(f"{where}: the normalized axes {self.axis} of input {fmt_shape(s)} "
                             "must be known")


def _axis_list(axis, where):
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return [int(axis)]
    if isinstance(axis, (list, tuple)) and axis and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis):
        return [int(a) for a in axis]
    raise ValueError(f"{where}: axis must be an int or a list of ints, got {axis!r}")


class LayerNormalization(_AxesLayer):
    """Keras 3 LayerNormalization: per sample over `axis` (default -1), epsilon 1e-3; gamma and
    beta of the normalized axes' shape."""

    supports_masking = True

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        w = self.name
        self._axis_arg = axis
        self.axis = _axis_list(axis, w)
        self.epsilon = float(epsilon)
        if rms_scaling:
            raise ValueError(f"{w}: rms_scaling=True is not supported")
        where = f"layer {self.name!r} ({type(self).__name__})"
        self.beta_constraint = check_constraint(beta_constraint, where, "beta_constraint")
        self.gamma_constraint = check_constraint(gamma_constraint, where, "gamma_constraint")
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = check_initializer(beta_initializer)
        self.gamma_initializer = check_initializer(gamma_initializer)
        self.beta_regularizer = check_regularizer(beta_regularizer)
        self.gamma_regularizer = check_regularizer(gamma_regularizer)

    def weight_specs(self, s):
        shape = tuple(s[a % len(s)] for a in self.axis)
        specs = []
        if self.scale:
            specs.append(("gamma", shape, self.gamma_initializer, self.gamma_regularizer))
        if self.center:
            specs.append(("beta", shape, self.beta_initializer, self.beta_regularizer))
        return specs

    def _on_built(self):
        ws = list(self.weights)
        self.gamma = ws.pop(0) if self.scale else None
        self.beta = ws.pop(0) if self.center else None

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        where = f"layer {self.name!r} (LayerNormalization)"
        if x.ndim != len(self._build_shape):
            raise ValueError(f"{where} was built for inputs {fmt_shape(self._build_shape)}, got "
                             f"shape {x.shape}")
        x2, perm = self._view(x)
        g = None if self.gamma is None else self.gamma.reshape(-1)
        b = None if self.beta is None else self.beta.reshape(-1)
        if (g if g is not None else b) is not None and x2.shape[1] != (
                g if g is not None else b).size:
            raise ValueError(f"{where} was built for inputs {fmt_shape(self._build_shape)}, got "
                             f"shape {x.shape}")
        y2, mean, inv = ln_forward(x2, g, b, self.epsilon)
        ctx = (x2, mean, inv, x.shape, perm) if need_ctx else None
        return self._unview(y2, x.shape, perm), ctx

    def backward(self, ctx, dy, need_input_grad=True):
        x2, mean, inv, shape, perm = ctx
        dy2, _ = self._view(as_f32(dy))
        g = None if self.gamma is None else self.gamma.reshape(-1)
        dx2, dgamma, dbeta = ln_backward(dy2, x2, mean, inv, g)
        i = 0
        if self.scale:
            self._add_grad(i, dgamma.reshape(self.gamma.shape))
            i += 1
        if self.center:
            self._add_grad(i, dbeta.reshape(self.beta.shape))
        return self._unview(dx2, shape, perm) if need_input_grad else None

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axis=self.axis[0] if len(self.axis) == 1 and not isinstance(
            self._axis_arg, (list, tuple)) else list(self.axis),
                   epsilon=self.epsilon, center=self.center, scale=self.scale,
                   rms_scaling=False,
                   beta_initializer=initializers.serialize(self.beta_initializer),
                   gamma_initializer=initializers.serialize(self.gamma_initializer),
                   beta_regularizer=regularizers.serialize(self.beta_regularizer),
                   gamma_regularizer=regularizers.serialize(self.gamma_regularizer),
                   beta_constraint=constraints.serialize(self.beta_constraint),
                   gamma_constraint=constraints.serialize(self.gamma_constraint))
        return cfg


class UnitNormalization(_AxesLayer):
    """y = x / sqrt(max(sum(x^2 over axis), 1e-12)) (Keras 3)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self._axis_arg = axis
        self.axis = _axis_list(axis, self.name)

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        if x.ndim < 2:
            raise ValueError(f"layer {self.name!r} (UnitNormalization) needs an input of rank "
                             f">= 2, got shape {x.shape}")
        x2, perm = self._view(x)
        ss = np.einsum("mk,mk->m", x2, x2, dtype=np.float64)
        inv = 1.0 / np.sqrt(np.maximum(ss, 1e-12))
        y2 = (x2 * inv[:, None]).astype(np.float32)
        ctx = (y2, inv, ss > 1e-12, x.shape, perm) if need_ctx else None
        return self._unview(y2, x.shape, perm), ctx

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        y2, inv, active, shape, perm = ctx
        dy2, _ = self._view(as_f32(dy))
        proj = np.einsum("mk,mk->m", dy2, y2, dtype=np.float64) * active
        dx2 = (inv[:, None] * (dy2 - y2 * proj[:, None])).astype(np.float32)
        return self._unview(dx2, shape, perm)

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis[0] if len(self.axis) == 1 and not isinstance(
            self._axis_arg, (list, tuple)) else list(self.axis)
        return cfg


class GroupNormalization(Layer):
    """Keras 3 GroupNormalization, channels last (axis -1): the channels split into `groups`
    groups, each sample's group normalized over its spatial positions and channels (the layer
    norm kernel on rows (N*groups, S*C/groups)), then gamma/beta per channel."""

    supports_masking = True

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        w = self.name
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"{w}: groups must be a positive int, got {groups!r}")
        if axis != -1:
            raise ValueError(f"{w}: only axis=-1 (channels last) is supported")
        where = f"layer {self.name!r} ({type(self).__name__})"
        self.beta_constraint = check_constraint(beta_constraint, where, "beta_constraint")
        self.gamma_constraint = check_constraint(gamma_constraint, where, "gamma_constraint")
        self.groups, self.axis, self.epsilon = int(groups), -1, float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = check_initializer(beta_initializer)
        self.gamma_initializer = check_initializer(gamma_initializer)
        self.beta_regularizer = check_regularizer(beta_regularizer)
        self.gamma_regularizer = check_regularizer(gamma_regularizer)

    def check_input_shape(self, s):
        where = f"layer {self.name!r} (GroupNormalization)"
        if len(s) < 2 or any(d is None for d in s[1:]):
            raise ValueError(f"{where} needs a known input shape of rank >= 2, got "
                             f"{fmt_shape(s)}")
        if s[-1] % self.groups:
            raise ValueError(f"{where}: {s[-1]} channels of input {fmt_shape(s)} cannot be split "
                             f"into {self.groups} groups")

    def weight_specs(self, s):
        specs = []
        if self.scale:
            specs.append(("gamma", (s[-1],), self.gamma_initializer, self.gamma_regularizer))
        if self.center:
            specs.append(("beta", (s[-1],), self.beta_initializer, self.beta_regularizer))
        return specs

    def _on_built(self):
        ws = list(self.weights)
        self.gamma = ws.pop(0) if self.scale else None
        self.beta = ws.pop(0) if self.center else None

    def _rows(self, x):
        n, c = x.shape[0], x.shape[-1]
        g = self.groups
        x4 = x.reshape(n, -1, g, c // g)
        return np.ascontiguousarray(x4.transpose(0, 2, 1, 3)).reshape(n * g, -1)

    def _unrows(self, r, shape):
        n, c = shape[0], shape[-1]
        g = self.groups
        r4 = r.reshape(n, g, -1, c // g).transpose(0, 2, 1, 3)
        return np.ascontiguousarray(r4).reshape(shape)

    def forward(self, x, training=False, need_ctx=False):
        x = as_f32(x)
        self.check_input_shape((None,) + x.shape[1:])
        xr = self._rows(x)
        hr, mean, inv = ln_forward(xr, None, None, self.epsilon)
        xhat = self._unrows(hr, x.shape)
        y = xhat
        if self.gamma is not None:
            y = y * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return y.astype(np.float32, copy=False), ((xr, mean, inv, xhat) if need_ctx else None)

    def backward(self, ctx, dy, need_input_grad=True):
        xr, mean, inv, xhat = ctx
        dy = as_f32(dy)
        red = tuple(range(dy.ndim - 1))
        i = 0
        if self.scale:
            self._add_grad(i, np.sum(dy * xhat, axis=red, dtype=np.float64).astype(np.float32))
            i += 1
        if self.center:
            self._add_grad(i, np.sum(dy, axis=red, dtype=np.float64).astype(np.float32))
        if not need_input_grad:
            return None
        dh = dy * self.gamma if self.gamma is not None else dy
        dxr, _, _ = ln_backward(self._rows(as_f32(dh)), xr, mean, inv, None)
        return self._unrows(dxr, dy.shape)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(groups=self.groups, axis=-1, epsilon=self.epsilon, center=self.center,
                   scale=self.scale,
                   beta_initializer=initializers.serialize(self.beta_initializer),
                   gamma_initializer=initializers.serialize(self.gamma_initializer),
                   beta_regularizer=regularizers.serialize(self.beta_regularizer),
                   gamma_regularizer=regularizers.serialize(self.gamma_regularizer),
                   beta_constraint=constraints.serialize(self.beta_constraint),
                   gamma_constraint=constraints.serialize(self.gamma_constraint))
        return cfg
