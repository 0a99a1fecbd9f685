"""Attribution: which parts of an input a model's output for one class depends on.

Every method takes a single-input model with float inputs, a batch ``x`` (batch axis first) and a
``target``: the output unit explained, one int for the whole batch or one int per sample (the
model's output is read as (N, -1), so a (N, K) classifier's target is a class; None: the class the
model predicts, or unit 0 for a single-output model). The score explained is the model's output as
it is (probabilities after a softmax layer). Maps are signed and have x's shape (Grad-CAM: the
layer's spatial shape); nothing takes an absolute value unless asked.

Gradients come from the model core's reverse pass (``Model.input_gradients``,
``Model.tensor_gradients``), a batch at a time; the kernels under them are multithreaded.

    saliency(model, x, target)                     d score / d x
    gradient_x_input(model, x, target)             x * d score / d x
    smoothgrad(model, x, target, samples, noise)   mean gradient over noisy copies of x
    integrated_gradients(model, x, target)         (attributions, completeness residual)
    grad_cam(model, x, target, layer_name)         ReLU(sum_c mean(dS/dA_c) A_c) at that layer
    occlusion(model, x, target, window, stride)    score drop when a window is blanked
"""

from __future__ import annotations

import numpy as np

__all__ = ["saliency", "gradient_x_input", "smoothgrad", "integrated_gradients", "grad_cam",
           "occlusion"]

DEFAULT_BATCH = 128


# ---- shared pieces ------------------------------------------------------------------------------
def _check_model(model, where):
    if not hasattr(model, "input_gradients"):
        raise TypeError(f"{where}: expected an nncore model, got {type(model).__name__}")


def _as_input(x, where):
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{where}: x must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{where}: x must be a batch (batch axis first), got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _forward(model, x, batch_size):
    """Model outputs as (N, units) float64."""
    out = model.predict(x, batch_size=batch_size, verbose=0)
    if isinstance(out, (list, tuple, dict)):
        raise ValueError("attribution explains a single-output model; this one has "
                         f"{len(out)} outputs")
    out = np.asarray(out, dtype=np.float64)
    return out.reshape(len(x), -1)


def _targets(model, x, target, batch_size, where):
    """One output unit per sample (int64, shape (N,))."""
    n = len(x)
    if target is None:
        out = _forward(model, x, batch_size)
        return np.argmax(out, axis=1) if out.shape[1] > 1 else np.zeros(n, np.int64)
    t = np.asarray(target)
    if t.dtype.kind not in "iu" and not (t.dtype.kind == "f" and np.all(t == np.round(t))):
        raise TypeError(f"{where}: target must be an int or an array of ints, got {target!r}")
    t = t.astype(np.int64)
    if t.ndim == 0:
        t = np.full(n, int(t), np.int64)
    if t.shape != (n,):
        raise ValueError(f"{where}: target must be an int or one int per sample ({n}), got "
                         f"shape {t.shape}")
    return t


def _check_units(t, units, where):
    if t.size and (t.min() < 0 or t.max() >= units):
        raise ValueError(f"{where}: target {int(t.max() if t.max() >= units else t.min())} is "
                         f"out of range for a model with {units} output unit(s)")


def _seed(out, t, where):
    """d(sum_i out[i, t_i]) / d out, and the scores out[i, t_i]."""
    if isinstance(out, (list, tuple)):
        raise ValueError(f"{where}: attribution explains a single-output model; this one has "
                         f"{len(out)} outputs")
    flat = np.asarray(out).reshape(len(out), -1)
    _check_units(t, flat.shape[1], where)
    d = np.zeros(flat.shape, np.float32)
    rows = np.arange(len(flat))
    d[rows, t] = 1.0
    return d.reshape(np.shape(out)), flat[rows, t].astype(np.float64)


def _gradients(model, x, t, batch_size, where):
    """(d score_i / d x_i for every row, score_i), batch_size rows per reverse pass."""
    grads = np.empty_like(x)
    scores = np.empty(len(x), np.float64)
    for lo in range(0, len(x), batch_size):
        hi = min(lo + batch_size, len(x))
        got = {}

        def seed(out, lo=lo, hi=hi, got=got):
            d, got["s"] = _seed(out, t[lo:hi], where)
            return d

        g = model.input_gradients(x[lo:hi], seed)
        if isinstance(g, list):
            raise ValueError(f"{where}: attribution explains a single-input model; this one has "
                             f"{len(g)} inputs")
        grads[lo:hi] = g
        scores[lo:hi] = got["s"]
    return grads, scores


def _prepare(model, x, target, batch_size, where):
    _check_model(model, where)
    x = _as_input(x, where)
    if batch_size is None:
        batch_size = DEFAULT_BATCH
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive int, got {batch_size!r}")
    return x, _targets(model, x, target, int(batch_size), where), int(batch_size)


# ---- gradient methods ---------------------------------------------------------------------------
def saliency(model, x, target=None, absolute=False, batch_size=None):
    """Vanilla gradients d score / d x (Simonyan et al. 2014), signed unless absolute=True."""
    x, t, bs = _prepare(model, x, target, batch_size, "saliency")
    g, _ = _gradients(model, x, t, bs, "saliency")
    return np.abs(g) if absolute else g


def gradient_x_input(model, x, target=None, batch_size=None):
    """x * d score / d x (Shrikumar et al. 2016)."""
    x, t, bs = _prepare(model, x, target, batch_size, "gradient_x_input")
    g, _ = _gradients(model, x, t, bs, "gradient_x_input")
    return x * g


def smoothgrad(model, x, target=None, samples=50, noise=0.15, seed=None, batch_size=None):
    """SmoothGrad (Smilkov et al. 2017): the mean gradient over `samples` copies of each input
    with Gaussian noise of standard deviation noise * (max(x_i) - min(x_i)) added (noise is a
    fraction of each sample's range). The target is fixed from the clean input."""
    x, t, bs = _prepare(model, x, target, batch_size, "smoothgrad")
    if not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"smoothgrad: samples must be a positive int, got {samples!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"smoothgrad: noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    axes = tuple(range(1, x.ndim))
    sigma = noise * (x.max(axis=axes, keepdims=True) - x.min(axis=axes, keepdims=True))
    total = np.zeros(x.shape, np.float64)
    for _ in range(int(samples)):
        xn = (x + sigma * rng.standard_normal(x.shape)).astype(np.float32)
        g, _ = _gradients(model, xn, t, bs, "smoothgrad")
        total += g
    return (total / samples).astype(np.float32)


def _quadrature(method, steps):
    """Nodes in [0, 1] and weights summing to 1 for the path integral."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1.0) / 2.0, weights / 2.0
    if method == "trapezoid":
        if steps < 2:
            raise ValueError("integrated_gradients: the trapezoid rule needs steps >= 2")
        nodes = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2.0
        return nodes, weights
    if method == "midpoint":
        return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)
    raise ValueError(f"integrated_gradients: method must be 'gausslegendre', 'trapezoid' or "
                     f"'midpoint', got {method!r}")


def integrated_gradients(model, x, target=None, baseline=None, steps=64,
                         method="gausslegendre", batch_size=None):
    """Integrated Gradients (Sundararajan et al. 2017): (x - b) * integral over a in [0, 1] of
    d score / d x at b + a (x - b), by a quadrature rule of `steps` points (Gauss-Legendre by
    default; 'trapezoid' and 'midpoint' also converge; the right-hand Riemann sum does not
    within 1% at 64 steps and is not offered).

    baseline: None (zeros), a scalar, one input (x's shape without the batch axis) or one per
    sample. Returns (attributions, residual): residual[i] = sum(attributions[i]) -
    (score(x_i) - score(b_i)), the completeness error, to check against the score difference.
    """
    where = "integrated_gradients"
    x, t, bs = _prepare(model, x, target, batch_size, where)
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"{where}: steps must be a positive int, got {steps!r}")
    nodes, weights = _quadrature(method, int(steps))
    if baseline is None:
        b = np.zeros_like(x)
    else:
        b = np.asarray(baseline, dtype=np.float32)
        if b.shape not in ((), x.shape[1:], x.shape):
            raise ValueError(f"{where}: baseline shape {b.shape} fits neither x {x.shape} nor "
                             f"one sample {x.shape[1:]}")
        b = np.ascontiguousarray(np.broadcast_to(b, x.shape))
    delta = (x - b).astype(np.float64)
    n, k = len(x), len(nodes)
    total = np.zeros(x.shape, np.float64)
    # Rows (sample i, node j), flattened sample-major and cut into batches of bs rows.
    order_i = np.repeat(np.arange(n), k)
    order_j = np.tile(np.arange(k), n)
    for lo in range(0, n * k, bs):
        ii, jj = order_i[lo:lo + bs], order_j[lo:lo + bs]
        shape = (len(ii),) + (1,) * (x.ndim - 1)
        pts = (b[ii] + nodes[jj].reshape(shape) * delta[ii]).astype(np.float32)
        g, _ = _gradients(model, pts, t[ii], bs, where)
        np.add.at(total, ii, weights[jj].reshape(shape) * g)
    attributions = delta * total
    ends = np.concatenate([x, b])
    scores = _forward(model, ends, bs)
    _check_units(t, scores.shape[1], where)
    rows = np.arange(n)
    diff = scores[rows, t] - scores[n + rows, t]
    residual = attributions.reshape(n, -1).sum(axis=1) - diff
    return attributions.astype(np.float32), residual


# ---- Grad-CAM -----------------------------------------------------------------------------------
def grad_cam(model, x, target=None, layer_name=None, relu=True, batch_size=None):
    """Grad-CAM (Selvaraju et al. 2017) at the output A of layer `layer_name` (channels last,
    shape (N, ..., C)): weights alpha_c = mean over the spatial positions of d score / d A_c,
    map = ReLU(sum_c alpha_c A_c), at that layer's own resolution (N, ...). relu=False gives
    the signed map. The layer is named as in ``model.get_layer`` (a layer of this model, called
    once in its graph)."""
    where = "grad_cam"
    x, t, bs = _prepare(model, x, target, batch_size, where)
    if not isinstance(layer_name, str):
        raise TypeError(f"{where}: layer_name must be a layer's name, got {layer_name!r}")
    if not hasattr(model, "tensor_gradients"):
        raise TypeError(f"{where}: {type(model).__name__} has no graph to look inside")
    maps = []
    for lo in range(0, len(x), bs):
        tt = t[lo:lo + bs]
        a, g = model.tensor_gradients(x[lo:lo + bs], layer_name,
                                      lambda out, tt=tt: _seed(out, tt, where)[0])
        if a.ndim < 3:
            raise ValueError(f"{where}: layer {layer_name!r} outputs shape {a.shape[1:]} per "
                             "sample; Grad-CAM needs a spatial layer (..., channels)")
        axes = tuple(range(1, a.ndim - 1))
        alpha = g.astype(np.float64).mean(axis=axes, keepdims=True)
        cam = (alpha * a).sum(axis=-1)
        maps.append(np.maximum(cam, 0.0) if relu else cam)
    return np.concatenate(maps).astype(np.float32)


# ---- occlusion ----------------------------------------------------------------------------------
def _per_axis(value, ndim, name):
    v = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not v or len(v) > ndim or any(not isinstance(a, (int, np.integer)) or a < 1 for a in v):
        raise ValueError(f"occlusion: {name} must be a positive int or up to {ndim} positive "
                         f"ints (one per leading input axis), got {value!r}")
    return tuple(int(a) for a in v)


def occlusion(model, x, target=None, window=8, stride=None, baseline=0.0, batch_size=None):
    """Occlusion (Zeiler & Fergus 2014): slide a window over the input, set it to `baseline`,
    and attribute the score drop score(x) - score(x occluded) to every element of the window;
    each element gets the mean over the windows that cover it (0 if none does).

    window, stride: an int or one int per leading sample axis (e.g. (h, w) for images (N, H,
    W, C)); axes not named are covered whole (an image's channels are occluded together).
    stride defaults to the window. Windows start at 0, stride, ... while they fit."""
    where = "occlusion"
    x, t, bs = _prepare(model, x, target, batch_size, where)
    sample = x.shape[1:]
    win = _per_axis(window, len(sample), "window")
    win = win + sample[len(win):]
    stride = win if stride is None else _per_axis(stride, len(sample), "stride")
    stride = stride + (1,) * (len(sample) - len(stride))
    if any(w > s for w, s in zip(win, sample)):
        raise ValueError(f"occlusion: window {win} is larger than a sample {sample}")
    b = np.asarray(baseline, dtype=np.float32)
    if b.shape not in ((), sample, x.shape):
        raise ValueError(f"occlusion: baseline shape {b.shape} fits neither x {x.shape} nor one "
                         f"sample {sample}")
    b = np.broadcast_to(b, x.shape)
    base = _forward(model, x, bs)
    _check_units(t, base.shape[1], where)
    rows = np.arange(len(x))
    base = base[rows, t]
    starts = np.stack(np.meshgrid(*[np.arange(0, s - w + 1, st) for s, w, st in
                                    zip(sample, win, stride)], indexing="ij"), -1)
    starts = starts.reshape(-1, len(sample))
    total = np.zeros(x.shape, np.float64)
    count = np.zeros(sample, np.float64)
    per = max(1, bs // max(1, len(x)))  # windows per forward batch
    for lo in range(0, len(starts), per):
        chunk = starts[lo:lo + per]
        boxes = [tuple(slice(s, s + w) for s, w in zip(st, win)) for st in chunk]
        xs = np.repeat(x[None], len(chunk), axis=0)  # (windows, N, ...)
        for k, box in enumerate(boxes):
            xs[(k, slice(None)) + box] = b[(slice(None),) + box]
        out = _forward(model, xs.reshape((-1,) + sample), bs).reshape(len(chunk), len(x), -1)
        drop = base[None] - out[:, rows, t]  # (windows, N)
        for k, box in enumerate(boxes):
            total[(slice(None),) + box] += drop[k].reshape((-1,) + (1,) * len(sample))
            count[box] += 1.0
    return (total / np.maximum(count, 1.0)).astype(np.float32)
