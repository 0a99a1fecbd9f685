"""Shared checks for single layers: finite differences of a layer's backward and Keras parity."""

from __future__ import annotations

import numpy as np


def run_layer(layer, x, training=False):
    layer._maybe_build(tuple([None] + list(np.shape(x)[1:])))
    return layer.forward(x, training=training, need_ctx=True)


def fd_check(layer, x, rng, training=False, eps=1e-3, rtol=2e-2, atol=3e-3, check_x=True,
             max_entries=60):
    """The layer's input and trainable-weight gradients of sum(R * y) against float64 central
    differences (the layer runs in float32; perturbations are applied to float64 copies)."""
    x = np.asarray(x, np.float32)
    y, ctx = run_layer(layer, x, training)
    r = rng.normal(size=y.shape)
    layer._zero_grads()
    dx = layer.backward(ctx, r.astype(np.float32), need_input_grad=True)
    layer._finish_grads()
    grads = [g.copy() for g in layer.grads]

    def f(xv):
        out, _ = layer.forward(xv.astype(np.float32), training=training)
        return float(np.sum(np.asarray(out, np.float64) * r))

    def entries(shape):
        idx = list(np.ndindex(shape))
        if len(idx) > max_entries:
            pick = rng.choice(len(idx), max_entries, replace=False)
            idx = [idx[i] for i in pick]
        return idx

    if check_x:
        x64 = x.astype(np.float64)
        for idx in entries(x.shape):
            xp, xm = x64.copy(), x64.copy()
            xp[idx] += eps
            xm[idx] -= eps
            num = (f(xp) - f(xm)) / (2 * eps)
            np.testing.assert_allclose(dx[idx], num, rtol=rtol, atol=atol,
                                       err_msg=f"{layer.name} dx{idx}")
    for i, w in enumerate(layer._weights):
        if not layer._weight_trainable[i]:
            continue
        w0 = w.copy()
        for idx in entries(w.shape):
            w[idx] = w0[idx] + eps
            fp = f(x.astype(np.float64))
            w[idx] = w0[idx] - eps
            fm = f(x.astype(np.float64))
            w[idx] = w0[idx]
            np.testing.assert_allclose(grads[i][idx], (fp - fm) / (2 * eps), rtol=rtol, atol=atol,
                                       err_msg=f"{layer.name} weight {i} {idx}")
    return y


def keras_parity(ours, theirs, x, rng, training=False, rtol=1e-5, atol=1e-5, grads=True,
                 weights_from="keras", x_grad=True):
    """Same weights (Keras's copied into ours, or ours into Keras's), then identical outputs, and
    identical input/weight gradients of sum(R * y) (tf.GradientTape)."""
    import tensorflow as tf

    theirs.build((None,) + tuple(np.shape(x)[1:])) if not theirs.built else None
    ours._maybe_build((None,) + tuple(np.shape(x)[1:]))
    if weights_from == "keras":
        ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    else:
        theirs.set_weights(ours.get_weights())
    y, ctx = ours.forward(x, training=training, need_ctx=True)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        if x_grad and xt.dtype.is_floating:
            tape.watch(xt)
        yt = theirs(xt, training=training)
        r = rng.normal(size=tuple(yt.shape)).astype(np.float32)
        obj = tf.reduce_sum(yt * r)
    np.testing.assert_allclose(y, yt.numpy(), rtol=rtol, atol=atol, err_msg=f"{ours.name} y")
    if not grads:
        return y
    srcs = ([xt] if x_grad else []) + list(theirs.trainable_weights)
    g_t = tape.gradient(obj, srcs)
    ours._zero_grads()
    dx = ours.backward(ctx, r, need_input_grad=True)
    ours._finish_grads()
    if x_grad:
        np.testing.assert_allclose(dx, g_t[0].numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"{ours.name} dx")
        g_t = g_t[1:]
    mine = [g for g, t in zip(ours.grads, ours._weight_trainable) if t]
    assert len(mine) == len(g_t)
    for a, b in zip(mine, g_t):
        np.testing.assert_allclose(a, tf.convert_to_tensor(b).numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"{ours.name} weight grads")
    return y


def fd_sum_grads(fn, arrays, r, eps=1e-6):
    """Central differences of sum(fn(*arrays) * r) with respect to each array (float64), the
    arrays perturbed in place and restored."""
    grads = []
    for a in arrays:
        g = np.zeros_like(a, dtype=np.float64)
        flat = a.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = np.sum(np.asarray(fn(*arrays), np.float64) * r)
            flat[i] = old - eps
            down = np.sum(np.asarray(fn(*arrays), np.float64) * r)
            flat[i] = old
            g.reshape(-1)[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def rnn_twin(cell, x, w, u, b, seq, mask, in_masks, rec_masks, dout):
    """The NumPy recurrent loop (nncore.layers.masked_rnn) in float64, the reference of the C++
    loops: cell 'simple_tanh' / 'simple_relu' / 'lstm' / 'gru' / 'gru_reset_before', mask (B,T) or
    None, dropout masks or None, dout the gradient of the output (all steps if seq, else the last)
    -> (out, dx, dw, du, db)."""
    from nncore.layers import masked_rnn

    x, w, u, b, im, rm = [None if a is None else np.float64(a)
                          for a in (x, w, u, b, in_masks, rec_masks)]
    name = "simple" if cell.startswith("simple") else "gru" if cell.startswith("gru") else cell
    act = "relu" if cell == "simple_relu" else "tanh"
    hs, _, cache = masked_rnn.forward(name, x, mask, w, u, b, act, im, rm,
                                      cell != "gru_reset_before")
    dhs = np.zeros_like(hs)
    if seq:
        dhs[:] = dout
    else:
        dhs[:, -1] = dout
    dx, dw, du, db = masked_rnn.backward(cache, dhs, w, u, True)
    return (hs if seq else hs[:, -1]), dx, dw, du, db


RNN_GATES = {"simple_tanh": 1, "simple_relu": 1, "lstm": 4, "gru": 3, "gru_reset_before": 3}


def rnn_inputs(cell, rng, bsz, steps, feat, units, scale=0.6):
    """Float32 x (B,T,F), kernel (F,G), recurrent kernel (U,G) and bias (GRU reset_after: (2,G))
    for a recurrent kernel test, scaled so the states stay away from saturation."""
    g = RNN_GATES[cell] * units
    x = rng.standard_normal((bsz, steps, feat)).astype(np.float32)
    w = (rng.standard_normal((feat, g)) * scale / np.sqrt(feat)).astype(np.float32)
    u = (rng.standard_normal((units, g)) * scale / np.sqrt(units)).astype(np.float32)
    b = (rng.standard_normal((2, g) if cell == "gru" else (g,)) * 0.3).astype(np.float32)
    return x, w, u, b
