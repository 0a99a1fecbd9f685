"""Conv1D's own kernels (csrc/kernels/conv1d.hpp): the Winograd F(8-K+1, K) forward and input
gradient and the padded-batch GEMM weight gradient, against a float64 NumPy reference on odd
shapes under every ISA here; 1/2/3 threads bitwise equal; the layer's routing, finite differences
through the layer and Keras parity on the shapes that take this path; bad-input messages.

Error bound (test_against_float64). In float32, V = Bᵀd sums 8 products, U = Gg K products,
M = Σ_c U V C products, y = AᵀM + b 9 terms; with every transform coefficient rounded once to
float32 as well, each output errs by at most gamma_{C+K+20} · S, with
S = |Aᵀ| Σ_c (|G||g|)(|Bᵀ||d|) + |b| (the same algorithm on absolute values, in float64);
(C + K + 20) · eps covers that. dx is the same algorithm on dz with the flipped, transposed
kernel (C -> F). dW is one GEMM over the padded rows (zero rows add nothing): the GEMM bound of
conftest; db a sum of N·OL rows. Elsewhere (layer, Keras, PyTorch) the tolerance is TOL of
max|ref|: measured errors are below 1e-6 of it."""

from __future__ import annotations

import nncore
import numpy as np
import pytest
from _layer_checks import fd_check, keras_parity, run_layer
from conftest import F32_EPS, assert_within_bound, gemm_error_bound, require
from nncore import _core, initializers, layers

TOL = 2e-5


def reference(x, w, b, dz, padding, relu):
    """float64 (y, dx, dw, db) of y = act(conv1d(x, w) + b) and sum(dz * y)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, length, _ = x.shape
    k = w.shape[0]
    pl = {"same": (k - 1) // 2, "causal": k - 1, "valid": 0}[padding]
    ol = length - k + 1 if padding == "valid" else length
    xp = np.zeros((n, ol + k - 1, x.shape[2]))
    lo, hi = pl, min(ol + k - 1, pl + length)
    xp[:, lo:hi] = x[:, :hi - lo]
    z = sum(xp[:, j:j + ol] @ w[j] for j in range(k))
    if b is not None:
        z = z + b
    y = np.maximum(z, 0) if relu else z
    g = dz.astype(np.float64) * (z > 0) if relu else dz.astype(np.float64)
    dw = np.stack([np.einsum("ntc,ntf->cf", xp[:, j:j + ol], g) for j in range(k)])
    dxp = np.zeros_like(xp)
    for j in range(k):
        dxp[:, j:j + ol] += g @ w[j].T
    dx = np.zeros_like(x)
    dx[:, :hi - lo] = dxp[:, lo:hi]
    return y, dx, dw, g.sum((0, 1))


def toom_cook(k):
    """(Bᵀ, G, Aᵀ) of F(9 - k, k) on the points 0, 1, -1, 2, -2, 1/2, -1/2, ∞ (float64)."""
    n, m = 8, 9 - k
    pts = np.array([0, 1, -1, 2, -2, 0.5, -0.5][:n - 1])

    def evaluation(cols):  # rows: the finite points' powers, then ∞ (the leading coefficient)
        e = np.vander(pts, cols, increasing=True)
        return np.vstack([e, np.eye(cols)[-1]])

    return np.linalg.inv(evaluation(n)).T, evaluation(k), evaluation(m).T


def winograd_magnitude(x, w, pl, ol):
    """S of the bound: the Winograd algorithm of conv1d.hpp run on |x|, |w| and |transforms|."""
    bt, g, at = (np.abs(t) for t in toom_cook(w.shape[0]))
    n, length, _ = x.shape
    m = at.shape[0]
    tiles = -(-ol // m)
    xp = np.zeros((n, tiles * m + 7, x.shape[2]))
    lo, hi = pl, min(xp.shape[1], pl + length)
    xp[:, lo:hi] = np.abs(x[:, :hi - lo])
    d = np.stack([xp[:, q:q + tiles * m:m] for q in range(8)], axis=2)  # (n, tiles, 8, C)
    v = np.einsum("eq,ntqc->ntec", bt, d)
    u = np.einsum("ek,kcf->ecf", g, np.abs(w.astype(np.float64)))
    y = np.einsum("oe,ntef->ntof", at, np.einsum("ntec,ecf->ntef", v, u))
    return y.reshape(n, tiles * m, -1)[:, :ol]


def close(got, want, what):
    scale = max(float(np.abs(want).max()), 1.0)
    err = float(np.abs(np.asarray(got, np.float64) - want).max())
    assert err <= TOL * scale, f"{what}: max error {err:.3g} > {TOL} * {scale:.3g}"


# (N, L, C, F, K, padding): L = 1 and L < K with 'same'/'causal', odd C and F, batch 1, every K.
SHAPES = [
    (2, 17, 19, 21, 5, "same"),
    (1, 1, 16, 17, 5, "same"),
    (3, 3, 17, 16, 5, "same"),
    (2, 4, 16, 16, 7, "causal"),
    (1, 1, 18, 16, 3, "causal"),
    (2, 9, 16, 33, 3, "valid"),
    (2, 11, 17, 33, 7, "causal"),
    (2, 10, 16, 16, 2, "same"),
    (3, 10, 23, 16, 4, "valid"),
    (2, 10, 16, 19, 4, "same"),
    (2, 10, 16, 16, 6, "causal"),
    (1, 7, 16, 16, 7, "valid"),
    (4, 29, 40, 24, 5, "valid"),
]


@pytest.mark.parametrize("relu,bias", [(False, True), (True, True), (False, False)])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[5]}-K{s[4]}-{s[0]}x{s[1]}x{s[2]}to{s[3]}"
                                               for s in SHAPES])
def test_against_float64(isa, shape, relu, bias, rng):
    n, length, c, f, k, padding = shape
    x = rng.normal(size=(n, length, c)).astype(np.float32)
    w = rng.normal(size=(k, c, f)).astype(np.float32)
    b = rng.normal(size=f).astype(np.float32) if bias else None
    y = _core.conv1d_forward(x, w, b, padding, relu)
    dz = rng.normal(size=y.shape).astype(np.float32)
    yr, dxr, dwr, dbr = reference(x, w, b, dz, padding, relu)
    pl = {"same": (k - 1) // 2, "causal": k - 1, "valid": 0}[padding]
    ol = y.shape[1]
    mag = winograd_magnitude(x, w, pl, ol) + (np.abs(b) if bias else 0)
    assert_within_bound(y, yr, (c + k + 20) * F32_EPS * mag)
    dx, dw, db = _core.conv1d_backward(dz, x, w, y if relu else None, padding, relu, True, bias)
    g = dz * (yr > 0) if relu else dz
    wflip = w[::-1].transpose(0, 2, 1)
    assert_within_bound(dx, dxr, (f + k + 20) * F32_EPS * winograd_magnitude(g, wflip, k - 1 - pl,
                                                                             length))
    # dW (K*C, F) = Pᵀ g over the padded rows (P's row t: the K*C window starting at row t).
    xp = np.zeros((n, ol + k - 1, c), np.float32)
    lo, hi = pl, min(ol + k - 1, pl + length)
    xp[:, lo:hi] = x[:, :hi - lo]
    patches = np.stack([xp[:, j:j + ol] for j in range(k)], axis=2).reshape(n * ol, k * c)
    assert_within_bound(dw.reshape(k * c, f), dwr.reshape(k * c, f),
                        gemm_error_bound(patches.T, g.reshape(n * ol, f)))
    if bias:  # a sum of the N*OL rows in order
        assert_within_bound(db, dbr, (n * ol + 2) * F32_EPS * np.abs(g).sum((0, 1)))
    else:
        assert db is None
    dx2, dw2, _ = _core.conv1d_backward(dz, x, w, y if relu else None, padding, relu, False, bias)
    assert dx2 is None and np.array_equal(dw2, dw)


def test_relu_mask_uses_y(rng):
    """The backward's relu mask reads y (> 0), not the sign of dz."""
    x = rng.normal(size=(2, 12, 16)).astype(np.float32)
    w = rng.normal(size=(5, 16, 16)).astype(np.float32)
    y = _core.conv1d_forward(x, w, None, "same", True)
    assert (y == 0).any() and (y > 0).any()
    dz = np.ones_like(y)
    _, _, db = _core.conv1d_backward(dz, x, w, y, "same", True, False, True)
    np.testing.assert_array_equal(db, (y > 0).sum((0, 1)).astype(np.float32))


@pytest.mark.parametrize("padding", ["same", "valid", "causal"])
def test_threads_bitwise(threads, padding, rng):
    # Enough flops for 3 threads (threads_for: 1e6 per thread), tiles in several blocks.
    x = rng.normal(size=(16, 64, 32)).astype(np.float32)
    w = rng.normal(size=(5, 32, 40)).astype(np.float32)
    b = rng.normal(size=40).astype(np.float32)
    dz = None
    outs = []
    for nt in (1, 2, 3):
        nncore.set_num_threads(nt)
        y = _core.conv1d_forward(x, w, b, padding, True)
        if dz is None:
            dz = rng.normal(size=y.shape).astype(np.float32)
        outs.append((y,) + _core.conv1d_backward(dz, x, w, y, padding, True, True, True))
    for other in outs[1:]:
        for a, o in zip(outs[0], other):
            assert np.array_equal(a, o)


def test_zero_batch():
    x = np.zeros((0, 5, 16), np.float32)
    w = np.ones((3, 16, 16), np.float32)
    assert _core.conv1d_forward(x, w, None, "same", False).shape == (0, 5, 16)
    dx, dw, db = _core.conv1d_backward(np.zeros((0, 5, 16), np.float32), x, w, None, "same",
                                       False, True, True)
    assert dx.shape == (0, 5, 16) and not dw.any() and not db.any()


def test_kernel_errors():
    x = np.zeros((2, 5, 16), np.float32)
    with pytest.raises(ValueError, match=r"kernel size must be in \[2, 7\], got 8"):
        _core.conv1d_forward(x, np.zeros((8, 16, 16), np.float32), None, "same", False)
    with pytest.raises(ValueError, match=r"w has shape \(3, 15, 16\) but x \(2, 5, 16\)"):
        _core.conv1d_forward(x, np.zeros((3, 15, 16), np.float32), None, "same", False)
    with pytest.raises(ValueError, match="'valid', 'same' or 'causal', got 'full'"):
        _core.conv1d_forward(x, np.zeros((3, 16, 16), np.float32), None, "full", False)
    with pytest.raises(ValueError, match="input length 5 is shorter than the kernel 6"):
        _core.conv1d_forward(x, np.zeros((6, 16, 16), np.float32), None, "valid", False)
    with pytest.raises(ValueError, match=r"b must have shape \(16,\)"):
        _core.conv1d_forward(x, np.zeros((3, 16, 16), np.float32), np.zeros(3, np.float32),
                             "same", False)
    w = np.zeros((3, 16, 16), np.float32)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 16\), got \(2, 5, 16\)"):
        _core.conv1d_backward(x, x, w, None, "valid", False, True, True)
    with pytest.raises(ValueError, match="relu=True needs y"):
        _core.conv1d_backward(x, x, w, None, "same", True, True, True)


def test_rule():
    assert _core.conv1d_uses_winograd(5, 128, 128)
    assert not _core.conv1d_uses_winograd(1, 128, 128)
    assert not _core.conv1d_uses_winograd(8, 128, 128)
    assert not _core.conv1d_uses_winograd(5, 8, 128)
    assert not _core.conv1d_uses_winograd(5, 128, 16)
    assert not _core.conv1d_uses_winograd(3, 32, 32)
    assert _core.conv1d_uses_winograd(5, 16, 128)


# ---- the layer -----------------------------------------------------------------------------------

def test_layer_takes_the_path(rng):
    """A stride-1 layer on a shape of the rule runs conv1d_forward (the same bits); a strided one
    keeps the Conv2D kernels (its ctx holds the (N, 1, L, C) view)."""
    x = rng.normal(size=(3, 20, 32)).astype(np.float32)
    lay = layers.Conv1D(64, 5, padding="causal", activation="relu")
    y, ctx = run_layer(lay, x)
    assert ctx[0].ndim == 3
    np.testing.assert_array_equal(y, _core.conv1d_forward(x, lay.kernel, lay.bias, "causal", True))
    strided = layers.Conv1D(64, 5, strides=2, padding="same")
    _, ctx = run_layer(strided, x)
    assert ctx[0].ndim == 4


# Shapes of the rule (C = 32, F >= 64), so these run the Conv1D kernels (checked).
LAYER_CASES = [
    dict(filters=65, kernel_size=5, padding="same", activation="relu"),
    dict(filters=64, kernel_size=3, padding="causal", activation="tanh"),
    dict(filters=67, kernel_size=7, padding="valid", use_bias=False),
    dict(filters=64, kernel_size=4, padding="same", activation="gelu"),
]
LAYER_IDS = [f"{kw['padding']}-K{kw['kernel_size']}" for kw in LAYER_CASES]


@pytest.mark.parametrize("kwargs", LAYER_CASES, ids=LAYER_IDS)
def test_layer_finite_differences(kwargs, rng):
    # Seeded weights: the relu case's kinks then lie where they lie on every run.
    lay = layers.Conv1D(**kwargs, kernel_initializer=initializers.GlorotUniform(seed=3),
                        bias_initializer=initializers.RandomNormal(stddev=0.5, seed=4))
    x = rng.normal(size=(2, 9, 32)).astype(np.float32)
    assert run_layer(lay, x)[1][0].ndim == 3  # the Conv1D kernels' ctx
    fd_check(lay, x, rng, max_entries=30)


@pytest.mark.parametrize("kwargs", LAYER_CASES, ids=LAYER_IDS)
def test_layer_keras_parity(kwargs, rng):
    require("tensorflow")
    import keras

    x = rng.normal(size=(3, 13, 32)).astype(np.float32)
    theirs = keras.layers.Conv1D(**kwargs)
    theirs(x)
    theirs.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in theirs.get_weights()])
    ours = layers.Conv1D(**kwargs)
    keras_parity(ours, theirs, x, rng, rtol=1e-4, atol=1e-4)
    assert run_layer(ours, x)[1][0].ndim == 3


def test_layer_short_input_names_the_layer():
    lay = layers.Conv1D(64, 5, name="c1")
    lay._maybe_build((None, 9, 32))  # a later call may be shorter
    with pytest.raises(ValueError, match=r"'c1' \(Conv1D\): input \(2, 3, 32\) is shorter than "
                                         r"the kernel 5"):
        lay.forward(np.zeros((2, 3, 32), np.float32))


@pytest.mark.parametrize("padding", ["same", "valid", "causal"])
def test_layer_torch_parity(padding, rng):
    """Output, input gradient and weight gradients of sum(R * y) against torch.nn.functional
    .conv1d (NCL, kernel (F, C, K); 'causal' as a left zero pad of K - 1)."""
    torch = require("torch")
    k = 5
    x = rng.normal(size=(4, 21, 48)).astype(np.float32)
    lay = layers.Conv1D(80, k, padding=padding)
    y, ctx = run_layer(lay, x)
    assert ctx[0].ndim == 3
    r = rng.normal(size=y.shape).astype(np.float32)
    lay._zero_grads()
    dx = lay.backward(ctx, r)
    lay._finish_grads()
    xt = torch.tensor(x.transpose(0, 2, 1), dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(lay.kernel.transpose(2, 1, 0), dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(lay.bias, dtype=torch.float64, requires_grad=True)
    xin = torch.nn.functional.pad(xt, (k - 1, 0)) if padding == "causal" else xt
    mode = "valid" if padding == "causal" else padding
    yt = torch.nn.functional.conv1d(xin, wt, bt, padding=mode)
    (yt * torch.tensor(r.transpose(0, 2, 1), dtype=torch.float64)).sum().backward()
    close(y, yt.detach().numpy().transpose(0, 2, 1), "y")
    close(dx, xt.grad.numpy().transpose(0, 2, 1), "dx")
    close(lay.grads[0], wt.grad.numpy().transpose(2, 1, 0), "dkernel")
    close(lay.grads[1], bt.grad.numpy(), "dbias")


def test_model_fit_predict_save(tmp_path, rng):
    """A model with the Conv1D kernels trains, predicts the walk's bits, and reloads."""
    inp = nncore.Input((30, 32))
    h = layers.Conv1D(64, 5, padding="causal", activation="relu")(inp)
    h = layers.Conv1D(64, 3, padding="same")(h)
    out = layers.Dense(1)(layers.GlobalAveragePooling1D()(h))
    model = nncore.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    x = rng.normal(size=(64, 30, 32)).astype(np.float32)
    y = x[:, :, :4].mean(axis=(1, 2))[:, None]
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    p = model.predict(x, verbose=0)
    path = tmp_path / "m.nncore"  # nncore's own format: no optional package needed
    model.save(path)
    again = nncore.models.load_model(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), p)
