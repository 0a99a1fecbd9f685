"""nncore.plot: each function returns a Figure, writes a real non-empty PNG when given a path,
and leaves pyplot's global state alone; the message without matplotlib names the extra."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import nncore as keras
import numpy as np
import pytest
from conftest import require
from nncore import layers

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def mpl():
    return require("matplotlib")


def _png(path):
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000
    return data


def _pixels(path):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.05  # something is drawn, not a blank canvas
    return img


def _no_pyplot_figures():
    pyplot = sys.modules.get("matplotlib.pyplot")
    return pyplot is None or not pyplot.get_fignums()


def test_plot_history_from_fit(mpl, tmp_path):
    from nncore import plot

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=4, validation_split=0.25, verbose=0)
    fig = plot.plot_history(hist, tmp_path / "h.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]  # training and validation
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), hist.history["loss"])
    _png(tmp_path / "h.png")
    _pixels(tmp_path / "h.png")
    assert plot.plot_history(hist.history) is not None  # a dict works too
    assert _no_pyplot_figures()
    with pytest.raises(ValueError, match="History"):
        plot.plot_history({})


def test_confusion_matrix_counts_and_png(mpl, tmp_path):
    from nncore import plot

    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 2, 2, 1, 2])
    m, labels = plot.confusion_matrix(y_true, y_pred)
    want = np.zeros((3, 3), int)
    for t, p in zip(y_true, y_pred):
        want[t, p] += 1
    np.testing.assert_array_equal(m, want)
    np.testing.assert_array_equal(labels, [0, 1, 2])
    fig = plot.plot_confusion_matrix(y_true, y_pred, tmp_path / "cm.png")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [str(v) for v in want.ravel()]
    assert "accuracy 0.6667" in fig.axes[0].get_title()
    _pixels(tmp_path / "cm.png")
    fig = plot.plot_confusion_matrix(y_true, y_pred, normalize=True, labels=[0, 1, 2])
    assert fig.axes[0].texts[0].get_text() == "0.50"
    assert _no_pyplot_figures()


def test_plot_attribution_signed_maps(mpl, tmp_path):
    from nncore import plot

    rng = np.random.default_rng(1)
    imgs = rng.random((3, 12, 12, 1))
    maps = rng.normal(size=(3, 12, 12, 1))
    fig = plot.plot_attribution(imgs, maps, tmp_path / "a.png", titles=["a", "b", "c"])
    assert len(fig.axes) == 7  # 2 x 3 panels and a colour bar
    im = fig.axes[3].images[-1]  # the first map: symmetric scale around 0
    lo, hi = im.get_clim()
    assert lo == -hi and hi == pytest.approx(np.abs(maps[0]).max())
    _pixels(tmp_path / "a.png")
    # one image, a coarser Grad-CAM-like map, RGB input
    fig = plot.plot_attribution(rng.random((12, 12, 3)), rng.random((4, 4)), tmp_path / "b.png",
                                overlay=False)
    _png(tmp_path / "b.png")
    with pytest.raises(ValueError, match="2 image"):
        plot.plot_attribution(imgs[:2], maps)
    assert _no_pyplot_figures()


def test_without_matplotlib_the_message_names_the_extra():
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "import numpy as np, nncore.plot as p\n"
            "try:\n"
            "    p.plot_confusion_matrix([0, 1], [0, 1])\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    # the nncore under test (installed in CI, the dev tree otherwise), not the source folder
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(keras.__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'pip install "nncore[plot]"' in out.stdout
