"""Recurrent time loops in NumPy: the reference twin of the C++ loops (nncore.kernels.rnn), run in
float64 by the tests (the loops compute in the dtype of x), and the layers' loop when their
`_fast` flag is cleared. What it covers beyond the plain cells:

- a mask (batch, steps): as Keras, at a masked step the state is carried over unchanged
  (h_t = h_{t-1}, c_t = c_{t-1}), so with return_sequences the step repeats the previous output,
  and the step gets no gradient;
- Keras 3's recurrent dropout (its `implementation=1` cell): one mask per gate, fixed over the
  time steps of a call; gate k reads (x * in_masks[k]) @ W_k and (h_{t-1} * rec_masks[k]) @ U_k,
  while the state update (LSTM c_t, GRU z*h_{t-1}) uses the unmasked h_{t-1} / c_{t-1};
- GRU reset_after=False: hh = tanh(x W_h + b_h + (r * h_{t-1}) U_h), bias (3*units,).

Cells and weight layouts as nncore.kernels.rnn (LSTM i, f, c, o; GRU z, r, h)."""

from __future__ import annotations

import numpy as np

_GATES = {"simple": 1, "lstm": 4, "gru": 3}


def _sig(a):
    return 0.5 * (np.tanh(0.5 * a) + 1.0)


def _blocks(a, g):
    u = a.shape[-1] // g
    return [a[..., k * u:(k + 1) * u] for k in range(g)]


def forward(cell, x, mask, kernel, rkernel, bias, activation="tanh", in_masks=None,
            rec_masks=None, reset_after=True):
    """x (B,T,F), mask (B,T) bool or None, in_masks (g,B,F) / rec_masks (g,B,U) or None
    -> (hs (B,T,U) states after every step, c_T (B,U) LSTM final cell state else None, cache)."""
    b, t, _ = x.shape
    u = rkernel.shape[0]
    g = _GATES[cell]
    dt = x.dtype
    h = np.zeros((b, u), dt)
    c = np.zeros((b, u), dt)
    hs = np.empty((b, t, u), dt)
    steps = []
    br = None
    if cell == "gru" and reset_after:
        bi = bias[0] if bias is not None else 0
        br = bias[1] if bias is not None else np.zeros(3 * u, dt)
    else:
        bi = bias if bias is not None else 0
    if in_masks is None:
        xw = x @ kernel + bi  # (B, T, G)
    else:
        xw = np.concatenate([(x * m[:, None, :]) @ wk
                             for m, wk in zip(in_masks, _blocks(kernel, g))], axis=-1) + bi
    uk = _blocks(rkernel, g)
    for s in range(t):
        hk = None if rec_masks is None else [h * r for r in rec_masks]
        if cell == "gru" and not reset_after:  # the candidate's recurrent term comes after r
            rec = (h @ rkernel[:, :2 * u] if hk is None
                   else np.concatenate([hk[0] @ uk[0], hk[1] @ uk[1]], axis=1))
        else:
            rec = (h @ rkernel if hk is None
                   else np.concatenate([a @ w for a, w in zip(hk, uk)], axis=1))
        if cell == "simple":
            a = xw[:, s] + rec
            hn = np.tanh(a) if activation == "tanh" else np.maximum(a, 0)
            steps.append((h, hk, hn))
        elif cell == "lstm":
            z = xw[:, s] + rec
            i, f = _sig(z[:, :u]), _sig(z[:, u:2 * u])
            gg, o = np.tanh(z[:, 2 * u:3 * u]), _sig(z[:, 3 * u:])
            cn = f * c + i * gg
            tc = np.tanh(cn)
            hn = o * tc
            steps.append((h, hk, c, i, f, gg, o, tc))
        else:
            if reset_after:
                rec = rec + br
                z = _sig(xw[:, s, :u] + rec[:, :u])
                r = _sig(xw[:, s, u:2 * u] + rec[:, u:2 * u])
                rh = rec[:, 2 * u:]  # h U_h + b_h, multiplied by r
                hh = np.tanh(xw[:, s, 2 * u:] + r * rh)
            else:
                z = _sig(xw[:, s, :u] + rec[:, :u])
                r = _sig(xw[:, s, u:2 * u] + rec[:, u:])
                rh = r * (h if hk is None else hk[2])  # multiplied by U_h
                hh = np.tanh(xw[:, s, 2 * u:] + rh @ uk[2])
            hn = z * h + (1 - z) * hh
            steps.append((h, hk, z, r, hh, rh))
        if mask is None:
            h = hn.astype(dt)
            if cell == "lstm":
                c = cn
        else:
            m = mask[:, s, None]
            h = np.where(m, hn, h).astype(dt)
            if cell == "lstm":
                c = np.where(m, cn, c)
        hs[:, s] = h
    c_last = c.astype(dt) if cell == "lstm" else None
    return hs, c_last, (cell, x, mask, steps, activation, in_masks, rec_masks, reset_after)


def backward(cache, dhs, kernel, rkernel, has_bias, dc_last=None):
    """dhs (B,T,U): gradient of every step's state, dc_last (B,U) of the LSTM's final cell state
    or None -> (dx, dkernel, drecurrent, dbias)."""
    cell, x, mask, steps, activation, in_masks, rec_masks, reset_after = cache
    b, t, _ = x.shape
    u = rkernel.shape[0]
    g = _GATES[cell]
    dt = x.dtype
    uk = _blocks(rkernel, g)
    dxw = np.zeros((b, t, kernel.shape[1]), dt)
    drk = np.zeros_like(rkernel)
    drb = _blocks(drk, g)  # views: per-gate blocks of drk
    dbr = np.zeros(kernel.shape[1], dt)
    dh = np.zeros((b, u), dt)
    dc = np.zeros((b, u), dt) if dc_last is None else np.array(dc_last, dt)

    def rec_back(dgates, hp, hk, nblocks):
        """Gradients through rec = [h*r_k @ U_k] for the first nblocks gates -> d h_{t-1}."""
        if hk is None:
            w = rkernel[:, :nblocks * u]
            drk[:, :nblocks * u] += hp.T @ dgates
            return dgates @ w.T
        out = 0
        for k, dgk in enumerate(_blocks(dgates, nblocks)):
            drb[k] += hk[k].T @ dgk
            out = out + (dgk @ uk[k].T) * rec_masks[k]
        return out

    for s in range(t - 1, -1, -1):
        m = dt.type(1) if mask is None else mask[:, s, None].astype(dt)
        dh = dh + dhs[:, s]
        dhn = dh * m  # only an unmasked step's new state carries gradient into the cell
        keep = dh * (1 - m)
        if cell == "simple":
            hp, hk, hn = steps[s]
            da = dhn * ((1 - hn * hn) if activation == "tanh" else (hn > 0))
            dxw[:, s] = da
            dh = rec_back(da, hp, hk, 1) + keep
        elif cell == "lstm":
            hp, hk, cp, i, f, gg, o, tc = steps[s]
            dcn = dc * m + dhn * o * (1 - tc * tc)
            dz = np.concatenate([dcn * gg * i * (1 - i), dcn * cp * f * (1 - f),
                                 dcn * i * (1 - gg * gg), dhn * tc * o * (1 - o)], axis=1)
            dxw[:, s] = dz
            dh = rec_back(dz, hp, hk, 4) + keep
            dc = dcn * f + dc * (1 - m)
        else:
            hp, hk, z, r, hh, rh = steps[s]
            dzz = dhn * (hp - hh) * z * (1 - z)
            dah = dhn * (1 - z) * (1 - hh * hh)
            if reset_after:
                drr = dah * rh * r * (1 - r)
                dxw[:, s] = np.concatenate([dzz, drr, dah], axis=1)
                drz = np.concatenate([dzz, drr, dah * r], axis=1)
                dbr += drz.sum(axis=0)
                dh = rec_back(drz, hp, hk, 3) + dhn * z + keep
            else:
                hh_in = hp if hk is None else hk[2]
                drb[2] += rh.T @ dah
                dq = dah @ uk[2].T  # d(r * hh_in)
                drr = dq * hh_in * r * (1 - r)
                dxw[:, s] = np.concatenate([dzz, drr, dah], axis=1)
                dhh = dq * r if rec_masks is None else dq * r * rec_masks[2]
                dh = rec_back(np.concatenate([dzz, drr], axis=1), hp, hk, 2) + dhh + dhn * z + keep
    x2 = x.reshape(b * t, -1)
    dxw2 = dxw.reshape(b * t, -1)
    if in_masks is None:
        dk = x2.T @ dxw2
        dx = (dxw2 @ kernel.T).reshape(x.shape)
    else:
        dks, dx = [], 0
        for mk, wk, dk_ in zip(in_masks, _blocks(kernel, g), _blocks(dxw, g)):
            xm = (x * mk[:, None, :]).reshape(b * t, -1)
            dks.append(xm.T @ dk_.reshape(b * t, -1))
            dx = dx + (dk_ @ wk.T) * mk[:, None, :]
        dk = np.concatenate(dks, axis=1)
    db = None
    if has_bias:
        dbi = dxw2.sum(axis=0)
        db = np.stack([dbi, dbr]) if cell == "gru" and reset_after else dbi
        db = db.astype(dt)
    return (np.asarray(dx, dt), dk.astype(dt), drk.astype(dt), db)
