"""Training kernels: activations, fused softmax cross-entropy, fused optimizer updates.

All are element- or row-wise in C++, so results are bitwise identical for any thread count.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from ._util import as_f32, check_out

ACTIVATION_CODES = dict(_core.activation_codes)  # defined once, in the C++ enum


def _act_code(name: str) -> int:
    try:
        return ACTIVATION_CODES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(ACTIVATION_CODES)}"
        ) from None


def activation(x, name: str, out=None) -> np.ndarray:
    """y = act(x): linear, relu = max(x, 0), sigmoid = 1 / (1 + exp(-x)), tanh, softmax over the
    last axis (max subtracted). `out` may be x itself (in place)."""
    code = _act_code(name)
    x = as_f32(x, "x", where="activation")
    if x.ndim == 0:
        raise ValueError("activation: x must have at least 1 dimension")
    out = np.empty_like(x) if out is None else check_out(out, x.shape, where="activation")
    _core.activation_forward(out, x, code)
    return out


def activation_backward(dy, y, name: str, out=None) -> np.ndarray:
    """dx from dy and the forward output y: relu dy*(y>0), sigmoid dy*y*(1-y), tanh dy*(1-y^2),
    softmax y*(dy - sum(dy*y, last axis)). `out` may be dy itself."""
    code = _act_code(name)
    dy = as_f32(dy, "dy", where="activation_backward")
    y = as_f32(y, "y", where="activation_backward")
    if dy.shape != y.shape:
        raise ValueError(f"activation_backward: dy has shape {dy.shape}, y has shape {y.shape}")
    if y.ndim == 0:
        raise ValueError("activation_backward: y must have at least 1 dimension")
    out = np.empty_like(y) if out is None else check_out(out, y.shape, where="activation_backward")
    _core.activation_backward(out, dy, y, code)
    return out


def softmax_cross_entropy(logits, targets, *, grad_scale=1.0, need_grad=True, loss_out=None,
                          dlogits_out=None):
    """Fused softmax + cross-entropy on logits (N, C).

    targets: int labels (N,) in [0, C) (sparse) or a float array (N, C) (categorical).
    loss[i] = logsumexp(z_i) - sum_j t_ij z_ij / sum_j t_ij  (i.e. -sum_j t_ij log softmax(z_i)_j),
    dlogits = (softmax(z) * sum_j t_ij - t) * grad_scale. Returns (loss (N,), dlogits or None).
    """
    where = "softmax_cross_entropy"
    logits = as_f32(logits, "logits", ndim=2, where=where)
    n, c = logits.shape
    t = np.asarray(targets)
    if t.ndim == 1:
        if t.dtype.kind not in "iu":
            if t.dtype.kind != "f" or not np.all(np.floor(t) == t):
                raise TypeError(f"{where}: sparse labels must be integers, got dtype {t.dtype}")
        if t.shape[0] != n:
            raise ValueError(f"{where}: labels have shape {t.shape}, logits {logits.shape}")
        if n and (t.min() < 0 or t.max() >= c):
            raise ValueError(f"{where}: labels must be in [0, {c}), got range "
                             f"[{t.min()}, {t.max()}]")
        t = np.ascontiguousarray(t, dtype=np.int32)
        fn = _core.softmax_xent_sparse
    else:
        t = as_f32(t, "targets", ndim=2, where=where)
        if t.shape != logits.shape:
            raise ValueError(f"{where}: targets have shape {t.shape}, logits {logits.shape}")
        fn = _core.softmax_xent_dense
    loss = np.empty(n, np.float32) if loss_out is None else check_out(loss_out, (n,), "loss_out")
    dlogits = None
    if need_grad:
        dlogits = (np.empty((n, c), np.float32) if dlogits_out is None
                   else check_out(dlogits_out, (n, c), "dlogits_out"))
    fn(loss, dlogits, logits, t, float(grad_scale))
    return loss, dlogits


def _param(w, g, where):
    if not isinstance(w, np.ndarray) or w.dtype != np.float32 or not w.flags.c_contiguous:
        raise TypeError(f"{where}: w must be a C-contiguous float32 numpy array")
    g = as_f32(g, "g", where=where)
    if g.shape != w.shape:
        raise ValueError(f"{where}: gradient has shape {g.shape}, parameter {w.shape}")
    return g


def sgd_update(w, g, m=None, *, learning_rate, momentum=0.0, nesterov=False, l1=0.0, l2=0.0):
    """In place, Keras SGD: g += l1*sign(w) + 2*l2*w; momentum 0: w -= lr*g; else
    m = momentum*m - lr*g and w += m (nesterov: w += momentum*m - lr*g)."""
    g = _param(w, g, "sgd_update")
    _core.sgd_update(w, g, m, float(learning_rate), float(momentum), bool(nesterov), float(l1),
                     float(l2))


def adam_update(w, g, m, v, *, step, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                l1=0.0, l2=0.0):
    """In place, Keras Adam at 1-based `step`: g += l1*sign(w) + 2*l2*w;
    alpha = lr*sqrt(1-beta_2^step)/(1-beta_1^step); m += (g-m)(1-beta_1);
    v += (g^2-v)(1-beta_2); w -= alpha*m/(sqrt(v)+epsilon)."""
    g = _param(w, g, "adam_update")
    if step < 1:
        raise ValueError(f"adam_update: step must be >= 1, got {step}")
    # float32 like Keras computes it.
    t = np.float32(step)
    b1p = np.float32(beta_1) ** t
    b2p = np.float32(beta_2) ** t
    alpha = np.float32(learning_rate) * np.sqrt(np.float32(1) - b2p) / (np.float32(1) - b1p)
    _core.adam_update(w, g, m, v, float(alpha), float(beta_1), float(beta_2), float(epsilon),
                      float(l1), float(l2))


def rmsprop_update(w, g, v, mom=None, avg=None, *, learning_rate, rho=0.9, momentum=0.0,
                   epsilon=1e-7, l1=0.0, l2=0.0):
    """In place, Keras RMSprop: v = rho*v + (1-rho)*g^2; centered (avg given):
    avg = rho*avg + (1-rho)*g, den = v - avg^2 + eps, else den = v + eps; inc = lr*g/sqrt(den);
    momentum > 0 (mom given): mom = momentum*mom + inc, w -= mom; else w -= inc."""
    g = _param(w, g, "rmsprop_update")
    _core.rmsprop_update(w, g, v, mom, avg, float(learning_rate), float(rho), float(momentum),
                         float(epsilon), float(l1), float(l2))
