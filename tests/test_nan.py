"""NaN propagates as in TensorFlow / PyTorch: ReLU keeps NaN (fused in conv2d and matmul, the
activation op, SimpleRNN relu) and a NaN in a max-pooling window makes that output NaN, argmax at
the window's first NaN. Every ISA path."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require
from nncore import _core
from nncore import kernels as ops


def test_matmul_relu_keeps_nan(isa, rng):
    m, n, k = 37, 45, 29  # past one register tile, odd edges
    a = rng.uniform(0.5, 1.0, (m, k)).astype(np.float32)
    b = -rng.uniform(0.5, 1.0, (k, n)).astype(np.float32)  # every finite product is negative
    a[3, 7] = np.nan
    for bias in (None, np.zeros(n, np.float32)):
        out = ops.matmul(a, b, bias=bias, relu=True)
        assert np.isnan(out[3]).all()
        out[3] = 0
        np.testing.assert_array_equal(out, np.zeros((m, n), np.float32))
        for reference in (False, True):
            c = np.empty((m, n), np.float32)
            _core.sgemm(c, a, b, bias=bias, relu=True, reference=reference)
            assert np.isnan(c[3]).all() and not np.isnan(np.delete(c, 3, axis=0)).any()
    # k == 0: the epilogue alone
    out = ops.matmul(np.ones((2, 0), np.float32), np.ones((0, 3), np.float32),
                     bias=np.array([np.nan, -1, 1], np.float32), relu=True)
    np.testing.assert_array_equal(out, np.array([[np.nan, 0, 1]] * 2, np.float32))


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_relu_keeps_nan(isa, rng, padding):
    x = rng.uniform(0.5, 1.0, (2, 7, 6, 3)).astype(np.float32)
    w = -rng.uniform(0.5, 1.0, (3, 3, 3, 20)).astype(np.float32)
    x[1, 3, 2, 1] = np.nan
    y = ops.conv2d(x, w, np.zeros(20, np.float32), padding=padding, activation="relu")
    y_ref = ops.conv2d(np.nan_to_num(x, nan=1e30), w, padding=padding)  # -huge where NaN reached
    want_nan = y_ref < -1e20
    assert want_nan.any()
    np.testing.assert_array_equal(np.isnan(y), want_nan)
    np.testing.assert_array_equal(np.where(want_nan, 0, y), np.zeros_like(y))


def test_activation_relu_keeps_nan(isa):
    x = np.array([[np.nan, -1.0, 2.0, -0.0, np.inf, -np.inf]] * 40, np.float32)  # >= 1 chunk
    y = ops.activation(x, "relu")
    np.testing.assert_array_equal(y, np.array([[np.nan, 0, 2, 0, np.inf, 0]] * 40, np.float32))


def test_simple_rnn_relu_keeps_nan(isa):
    x = np.full((2, 3, 4), -1.0, np.float32)
    x[1, 0, 0] = np.nan
    out, _ = ops.simple_rnn(x, np.ones((4, 5), np.float32), np.zeros((5, 5), np.float32), None,
                            activation="relu", return_sequences=True)
    assert np.isnan(out[1]).all()
    np.testing.assert_array_equal(out[0], np.zeros((3, 5), np.float32))


def maxpool_ref(x, k, s):
    """Plain reference: first NaN, else first maximum, per window and channel."""
    n, h, w, c = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    y = np.empty((n, oh, ow, c), np.float32)
    am = np.empty((n, oh, ow, c), np.int32)
    for i in range(n):
        for r in range(oh):
            for q in range(ow):
                for ch in range(c):
                    best, arg = None, None
                    for dr in range(k):
                        for dq in range(k):
                            v = x[i, r * s + dr, q * s + dq, ch]
                            cell = (r * s + dr) * w + q * s + dq
                            if best is None or (not np.isnan(best) and (np.isnan(v) or v > best)):
                                best, arg = v, cell
                    y[i, r, q, ch], am[i, r, q, ch] = best, arg
    return y, am


@pytest.mark.parametrize("c", [1, 3, 8, 21])  # scalar, SSE/AVX2 tails, AVX-512 masked lanes
def test_max_pool_nan(isa, rng, c):
    x = rng.integers(-3, 4, (2, 6, 6, c)).astype(np.float32)  # many ties
    mask = rng.random(x.shape) < 0.15
    x[mask] = np.nan
    x[0, 1, 1, :] = np.nan  # a NaN in a window's last cell
    x[1, 0, 1, :] = np.nan  # and in a first row, not first cell
    for k, s in ((2, 2), (3, 1), (3, 3)):
        y, am = ops.max_pool2d(x, k, strides=s)
        y_ref, am_ref = maxpool_ref(x, k, s)
        np.testing.assert_array_equal(y, y_ref)  # NaN positions equal too
        np.testing.assert_array_equal(am, am_ref)
    # Window [[1, nan], [5, 2]]: NaN, argmax at cell 1.
    x = np.array([1, np.nan, 5, 2], np.float32).reshape(1, 2, 2, 1)
    y, am = ops.max_pool2d(np.repeat(x, c, axis=3), 2)
    assert np.isnan(y).all() and (am == 1).all()


def test_max_pool_nan_matches_torch_values(isa, rng):
    torch = require("torch")
    x = rng.standard_normal((2, 9, 8, 19)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    y, _ = ops.max_pool2d(x, 3, strides=2)
    t = torch.nn.functional.max_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), 3, 2)
    np.testing.assert_array_equal(y, t.permute(0, 2, 3, 1).numpy())
