"""An empty batch (N=0) through every kernel: the right empty shapes, zero weight gradients, no
crash (the pooling kernels divided by a zero work-unit size: SIGFPE)."""

from __future__ import annotations

import numpy as np
import pytest
from nncore import _core, layers
from nncore import kernels as ops


def z(*shape):
    return np.zeros(shape, np.float32)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_pool_ops_empty_batch(isa, padding):
    x = z(0, 5, 4, 3)
    y, am = ops.max_pool2d(x, 2, padding=padding)
    oh, ow = (3, 2) if padding == "same" else (2, 2)
    assert y.shape == (0, oh, ow, 3) and am.shape == (0, oh, ow, 3)
    dx = ops.max_pool2d_backward(z(0, oh, ow, 3), am, x.shape)
    assert dx.shape == (0, 5, 4, 3)
    y = ops.avg_pool2d(x, 2, padding=padding)
    assert y.shape == (0, oh, ow, 3)
    dx = ops.avg_pool2d_backward(z(0, oh, ow, 3), x.shape, 2, padding=padding)
    assert dx.shape == (0, 5, 4, 3)


def test_pool_core_empty_batch(isa):
    y, am = _core.maxpool2d_forward(z(0, 4, 4, 3), (2, 2), (2, 2), False)
    assert y.shape == (0, 2, 2, 3)
    assert _core.maxpool2d_backward(z(0, 2, 2, 3), am, [0, 4, 4, 3]).shape == (0, 4, 4, 3)
    assert _core.avgpool2d_forward(z(0, 4, 4, 3), (2, 2), (2, 2), True).shape == (0, 2, 2, 3)
    assert _core.avgpool2d_backward(z(0, 2, 2, 3), [0, 4, 4, 3], (2, 2), (2, 2),
                                    True).shape == (0, 4, 4, 3)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_conv_empty_batch(isa, padding, activation):
    x, w, b = z(0, 6, 5, 3), np.ones((3, 3, 3, 4), np.float32), np.ones(4, np.float32)
    y = ops.conv2d(x, w, b, padding=padding, activation=activation)
    oh, ow = (6, 5) if padding == "same" else (4, 3)
    assert y.shape == (0, oh, ow, 4)
    dx, dw, db = ops.conv2d_backward(z(0, oh, ow, 4), x, w, y=y, padding=padding,
                                     activation=activation, has_bias=True)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros_like(w))
    np.testing.assert_array_equal(db, np.zeros(4, np.float32))


@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (0, 0, 3), (4, 0, 3), (0, 5, 0)])
def test_matmul_empty(isa, m, n, k):
    a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
    out = ops.matmul(a, b, bias=np.ones(n, np.float32), relu=True)
    assert out.shape == (m, n)
    c = z(m, n)
    _core.sgemm(c, a, b)
    assert c.shape == (m, n)


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_rnn_empty_batch(isa, name, return_sequences):
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[name]
    t, f, u = 3, 4, 5
    x = z(0, t, f)
    kernel, rec = np.ones((f, gates * u), np.float32), np.ones((u, gates * u), np.float32)
    bias = np.ones((2, gates * u) if name == "gru" else gates * u, np.float32)
    fwd, bwd = getattr(ops, name), getattr(ops, name + "_backward")
    out, cache = fwd(x, kernel, rec, bias, return_sequences=return_sequences)
    assert out.shape == ((0, t, u) if return_sequences else (0, u))
    grads = bwd(z(*out.shape), cache)
    assert grads[0].shape == (0, t, f) and grads[1].shape == (0, u)
    dw, du, db = grads[-3:]
    np.testing.assert_array_equal(dw, np.zeros_like(kernel))
    np.testing.assert_array_equal(du, np.zeros_like(rec))
    np.testing.assert_array_equal(db, np.zeros_like(bias))
    out, _ = fwd(x, kernel, rec, bias, return_sequences=return_sequences, training=False)
    assert out.shape == ((0, t, u) if return_sequences else (0, u))


@pytest.mark.parametrize("layer,in_shape,out_shape", [
    (lambda: layers.MaxPooling2D(2), (0, 4, 4, 3), (0, 2, 2, 3)),
    (lambda: layers.AveragePooling2D(2, padding="same"), (0, 5, 5, 3), (0, 3, 3, 3)),
    (lambda: layers.Conv2D(4, 3), (0, 6, 6, 3), (0, 4, 4, 4)),
    (lambda: layers.Conv2D(4, 3, padding="same", activation="relu"), (0, 6, 6, 3), (0, 6, 6, 4)),
    (lambda: layers.Dense(7, activation="relu"), (0, 5), (0, 7)),
    (lambda: layers.SimpleRNN(6), (0, 3, 4), (0, 6)),
    (lambda: layers.LSTM(6, return_sequences=True), (0, 3, 4), (0, 3, 6)),
    (lambda: layers.GRU(6), (0, 3, 4), (0, 6)),
])
def test_layers_empty_batch(isa, layer, in_shape, out_shape):
    lay = layer()
    y = lay(np.zeros(in_shape, np.float32))
    assert y.shape == out_shape
    y = lay(np.zeros(in_shape, np.float32), training=True)
    assert y.shape == out_shape
