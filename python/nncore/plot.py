"""Pictures of training and of attributions: plot_history, plot_confusion_matrix, plot_attribution.

Each returns a matplotlib Figure and, given a path, also writes it there as a PNG. Figures are made
with matplotlib's object API on the Agg canvas: nothing touches pyplot's global state (no figure
is left open, no backend is switched), so this is safe in scripts, tests and servers.
matplotlib is optional: ``pip install "nncore[plot]"``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_history", "plot_confusion_matrix", "plot_attribution", "confusion_matrix"]

_EXTRA = ('matplotlib is needed for nncore.plot: pip install "nncore[plot]" '
          '(or pip install matplotlib)')


def _figure(width, height):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(_EXTRA) from e
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    if path is not None:
        from .saving.files import atomic_write

        atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return fig


# ---- training curves ----------------------------------------------------------------------------
def plot_history(history, path=None, title=None):
    """Loss and metrics per epoch, training and validation (``val_*``) on one panel per quantity.
    history: the History ``fit`` returns, or its ``.history`` dict."""
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError("plot_history: expected a History or a non-empty dict of per-epoch "
                         f"values, got {type(history).__name__}")
    names = [k for k in logs if not k.startswith("val_")]
    names += [k[4:] for k in logs if k.startswith("val_") and k[4:] not in names]
    order = list(names)
    names.sort(key=lambda k: (k != "loss", order.index(k)))
    fig = _figure(4.2 * len(names), 3.4)
    from matplotlib.ticker import MaxNLocator

    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for key, label, style in ((name, "training", "-o"), ("val_" + name, "validation", "-s")):
            if key in logs:
                v = np.asarray(logs[key], dtype=np.float64)
                ax.plot(np.arange(1, len(v) + 1), v, style, markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


# ---- confusion matrix ---------------------------------------------------------------------------
def confusion_matrix(y_true, y_pred, labels=None):
    """(matrix, labels): matrix[i, j] counts samples of true label i predicted as j."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: y_true has {y_true.size} labels, y_pred "
                         f"{y_pred.size}")
    labels = np.unique(np.concatenate([y_true, y_pred])) if labels is None else np.asarray(
        labels)
    index = {v: i for i, v in enumerate(labels.tolist())}
    m = np.zeros((len(labels), len(labels)), np.int64)
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        if t in index and p in index:
            m[index[t], index[p]] += 1
    return m, labels


def plot_confusion_matrix(y_true, y_pred, path=None, labels=None, normalize=False, title=None):
    """The confusion matrix as an image with its counts written in (rows: true labels, columns:
    predicted). normalize=True shows each row as fractions of that true label."""
    m, labels = confusion_matrix(y_true, y_pred, labels)
    shown = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalize else m
    k = len(labels)
    size = min(2.0 + 0.55 * k, 14.0)
    fig = _figure(size + 1.0, size)
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), [str(v) for v in labels])
    ax.set_yticks(range(k), [str(v) for v in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = shown.max() if shown.size else 0
    if k <= 30:
        for i in range(k):
            for j in range(k):
                text = f"{shown[i, j]:.2f}" if normalize else str(m[i, j])
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > top / 2 else "black")
    acc = np.trace(m) / max(m.sum(), 1)
    ax.set_title(title or f"accuracy {acc:.4f} ({m.sum()} samples)")
    return _save(fig, path)


# ---- attribution maps ---------------------------------------------------------------------------
def _as_images(a, name):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3 and a.shape[-1] in (1, 3, 4) and name == "image":
        a = a[None]  # one (H, W, C) image
    elif a.ndim == 3 and a.shape[-1] == 1:
        a = a[None]
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (3, 4):
        raise ValueError(f"plot_attribution: {name} must be (H, W), (H, W, C) or a batch of "
                         f"them, got shape {np.shape(a)}")
    return a


def plot_attribution(image, attribution, path=None, titles=None, overlay=True, title=None):
    """Images (top row) and their signed attribution maps (bottom row, red positive, blue
    negative, one symmetric scale per map). image and attribution: (H, W), (H, W, C) or a batch
    of them (channels are summed into one map; a map at a coarser resolution, e.g. Grad-CAM's,
    is stretched over the image). overlay: draw the image faintly under the map."""
    imgs = _as_images(image, "image")
    maps = _as_images(attribution, "attribution")
    if maps.ndim == 4:
        maps = maps.sum(axis=-1)
    if len(imgs) != len(maps):
        raise ValueError(f"plot_attribution: {len(imgs)} image(s) but {len(maps)} map(s)")
    n = len(imgs)
    fig = _figure(2.2 * n + 0.8, 4.6)
    axes = fig.subplots(2, n, squeeze=False)
    h, w = imgs.shape[1:3]
    for k in range(n):
        img = imgs[k]
        gray = img.ndim == 2
        shown = img if gray else (img - img.min()) / max(np.ptp(img), 1e-12)
        axes[0, k].imshow(shown, cmap="gray" if gray else None)
        if titles is not None:
            axes[0, k].set_title(str(titles[k]), fontsize=9)
        lim = float(np.max(np.abs(maps[k]))) or 1.0
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)
        if overlay:
            axes[1, k].imshow(img if gray else img.mean(-1), cmap="gray", alpha=0.35,
                              extent=extent)
        im = axes[1, k].imshow(maps[k], cmap="bwr", vmin=-lim, vmax=lim, extent=extent,
                               alpha=0.75 if overlay else 1.0, interpolation="nearest")
        for ax in axes[:, k]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label="attribution (last map's scale)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
