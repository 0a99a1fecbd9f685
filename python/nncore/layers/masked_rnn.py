"""Recurrent time loops with a mask (batch, steps), in NumPy: the path taken when some step is
masked (the C++ loops have no mask). As Keras: at a masked step the state is carried over
unchanged (h_t = h_{t-1}, c_t = c_{t-1}), so with return_sequences the step repeats the previous
output, and the step gets no gradient. Cells and weight layouts as nncore.ops.rnn."""

from __future__ import annotations

import numpy as np


def _sig(a):
    return 0.5 * (np.tanh(0.5 * a) + 1.0)


def forward(cell, x, mask, kernel, rkernel, bias, activation="tanh"):
    """-> (hs (B, T, U) states after every step, cache for backward). cell: 'simple', 'lstm',
    'gru'."""
    b, t, _ = x.shape
    u = rkernel.shape[0]
    h = np.zeros((b, u), np.float32)
    c = np.zeros((b, u), np.float32)
    hs = np.empty((b, t, u), np.float32)
    steps = []
    if cell == "gru":
        bi = bias[0] if bias is not None else 0
        br = bias[1] if bias is not None else 0
    else:
        bi = bias if bias is not None else 0
    xw = x @ kernel + bi  # (B, T, G)
    for s in range(t):
        m = mask[:, s, None]
        if cell == "simple":
            a = xw[:, s] + h @ rkernel
            hn = np.tanh(a) if activation == "tanh" else np.maximum(a, 0)
            steps.append((h, hn))
        elif cell == "lstm":
            z = xw[:, s] + h @ rkernel
            i, f = _sig(z[:, :u]), _sig(z[:, u:2 * u])
            g, o = np.tanh(z[:, 2 * u:3 * u]), _sig(z[:, 3 * u:])
            cn = f * c + i * g
            tc = np.tanh(cn)
            hn = o * tc
            steps.append((h, c, i, f, g, o, tc))
            c = np.where(m, cn, c)
        else:
            rz = h @ rkernel + br
            z = _sig(xw[:, s, :u] + rz[:, :u])
            r = _sig(xw[:, s, u:2 * u] + rz[:, u:2 * u])
            hh = np.tanh(xw[:, s, 2 * u:] + r * rz[:, 2 * u:])
            hn = z * h + (1 - z) * hh
            steps.append((h, z, r, hh, rz[:, 2 * u:]))
        h = np.where(m, hn, h).astype(np.float32)
        hs[:, s] = h
    return hs, (cell, x, mask, steps, activation)


def backward(cache, dhs, kernel, rkernel, has_bias):
    """dhs (B, T, U): gradient of every step's state -> (dx, dkernel, drecurrent, dbias)."""
    cell, x, mask, steps, activation = cache
    b, t, _ = x.shape
    u = rkernel.shape[0]
    dxw = np.zeros((b, t, kernel.shape[1]), np.float32)
    drk = np.zeros_like(rkernel)
    dbr = np.zeros(kernel.shape[1], np.float32)
    dh = np.zeros((b, u), np.float32)
    dc = np.zeros((b, u), np.float32)
    for s in range(t - 1, -1, -1):
        m = mask[:, s, None].astype(np.float32)
        dh = dh + dhs[:, s]
        dhn = dh * m  # only an unmasked step's new state carries gradient into the cell
        if cell == "simple":
            hp, hn = steps[s]
            da = dhn * ((1 - hn * hn) if activation == "tanh" else (hn > 0))
            dxw[:, s] = da
            drk += hp.T @ da
            dh = da @ rkernel.T + dh * (1 - m)
        elif cell == "lstm":
            hp, cp, i, f, g, o, tc = steps[s]
            dcn = dc * m + dhn * o * (1 - tc * tc)
            dz = np.concatenate([dcn * g * i * (1 - i), dcn * cp * f * (1 - f),
                                 dcn * i * (1 - g * g), dhn * tc * o * (1 - o)], axis=1)
            dxw[:, s] = dz
            drk += hp.T @ dz
            dh = dz @ rkernel.T + dh * (1 - m)
            dc = dcn * f + dc * (1 - m)
        else:
            hp, z, r, hh, rzh = steps[s]
            dzz = dhn * (hp - hh) * z * (1 - z)
            dah = dhn * (1 - z) * (1 - hh * hh)
            drr = dah * rzh * r * (1 - r)
            dxw[:, s] = np.concatenate([dzz, drr, dah], axis=1)
            drz = np.concatenate([dzz, drr, dah * r], axis=1)
            drk += hp.T @ drz
            dbr += drz.sum(axis=0)
            dh = drz @ rkernel.T + dhn * z + dh * (1 - m)
    x2 = x.reshape(b * t, -1)
    dxw2 = dxw.reshape(b * t, -1)
    dk = (x2.T @ dxw2).astype(np.float32)
    dx = (dxw2 @ kernel.T).reshape(x.shape).astype(np.float32)
    db = None
    if has_bias:
        dbi = dxw2.sum(axis=0)
        db = np.stack([dbi, dbr]) if cell == "gru" else dbi
        db = db.astype(np.float32)
    return dx, dk, drk, db
