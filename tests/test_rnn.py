"""Recurrent kernels (nncore.kernels.rnn) against a float64 NumPy reference written as plain time loops,
finite differences, PyTorch's RNN/LSTM/GRU, across ISAs and thread counts."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from conftest import platform_skipif, require
from hypothesis import given, settings
from hypothesis import strategies as st

import nncore
from nncore import kernels as ops

CELLS = ["simple_tanh", "simple_relu", "lstm", "gru"]
GATES = {"simple_tanh": 1, "simple_relu": 1, "lstm": 4, "gru": 3}


# ---- float64 reference

def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def ref_forward(cell, x, w, u, b, h0=None, c0=None):
    """Plain time loop in float64. Returns (hs (B,T,U), cache for ref_backward)."""
    x, w, u = (np.asarray(a, np.float64) for a in (x, w, u))
    bsz, steps, _ = x.shape
    n = u.shape[0]
    b = np.zeros((2, 3 * n) if cell == "gru" else (w.shape[1],)) if b is None else np.float64(b)
    h = np.zeros((bsz, n)) if h0 is None else np.float64(h0)
    c = np.zeros((bsz, n)) if c0 is None else np.float64(c0)
    hs, saved = [], []
    for t in range(steps):
        xt = x[:, t]
        if cell.startswith("simple"):
            z = xt @ w + h @ u + b
            h_new = np.tanh(z) if cell == "simple_tanh" else np.maximum(z, 0.0)
            saved.append((h, z))
        elif cell == "lstm":
            z = xt @ w + h @ u + b
            i, f, cc, o = (z[:, k * n:(k + 1) * n] for k in range(4))
            i, f, cc, o = sigmoid(i), sigmoid(f), np.tanh(cc), sigmoid(o)
            c_new = f * c + i * cc
            h_new = o * np.tanh(c_new)
            saved.append((h, c, i, f, cc, o, c_new))
            c = c_new
        else:
            xz = xt @ w + b[0]
            rz = h @ u + b[1]
            z = sigmoid(xz[:, :n] + rz[:, :n])
            r = sigmoid(xz[:, n:2 * n] + rz[:, n:2 * n])
            hh = np.tanh(xz[:, 2 * n:] + r * rz[:, 2 * n:])
            h_new = z * h + (1 - z) * hh
            saved.append((h, z, r, hh, rz[:, 2 * n:]))
        h = h_new
        hs.append(h)
    return np.stack(hs, axis=1), (cell, x, w, u, saved)


def ref_backward(dhs, cache):
    """Hand-written BPTT in float64; dhs (B,T,U) is the gradient on every h_t.
    Returns (dx, dh0, dc0, dw, du, db)."""
    cell, x, w, u, saved = cache
    bsz, steps, _ = x.shape
    n = u.shape[0]
    dx = np.zeros_like(x)
    dw, du = np.zeros_like(w), np.zeros_like(u)
    db = np.zeros((2, 3 * n)) if cell == "gru" else np.zeros(w.shape[1])
    dh = np.zeros((bsz, n))
    dc = np.zeros((bsz, n))
    for t in reversed(range(steps)):
        d = dh + dhs[:, t]
        if cell.startswith("simple"):
            h_prev, z = saved[t]
            dz = d * (1 - np.tanh(z) ** 2) if cell == "simple_tanh" else d * (z > 0)
            dzx = dzr = dz
        elif cell == "lstm":
            h_prev, c_prev, i, f, cc, o, c_new = saved[t]
            tc = np.tanh(c_new)
            dcv = dc + d * o * (1 - tc ** 2)
            dzx = np.concatenate([dcv * cc * i * (1 - i), dcv * c_prev * f * (1 - f),
                                  dcv * i * (1 - cc ** 2), d * tc * o * (1 - o)], axis=1)
            dzr = dzx
            dc = dcv * f
        else:
            h_prev, z, r, hh, rh = saved[t]
            dzz = d * (h_prev - hh) * z * (1 - z)
            dah = d * (1 - z) * (1 - hh ** 2)
            drr = dah * rh * r * (1 - r)
            dzx = np.concatenate([dzz, drr, dah], axis=1)
            dzr = np.concatenate([dzz, drr, dah * r], axis=1)
        dx[:, t] = dzx @ w.T
        dw += x[:, t].T @ dzx
        du += h_prev.T @ dzr
        if cell == "gru":
            db[0] += dzx.sum(0)
            db[1] += dzr.sum(0)
            dh = d * z + dzr @ u.T
        else:
            db += dzx.sum(0)
            dh = dzr @ u.T
    return dx, dh, dc, dw, du, db


# ---- helpers

def make(cell, rng, bsz, steps, feat, units, scale=0.5, bias=True):
    g = GATES[cell] * units
    x = rng.standard_normal((bsz, steps, feat)).astype(np.float32)
    w = (rng.standard_normal((feat, g)) * scale / np.sqrt(feat)).astype(np.float32)
    u = (rng.standard_normal((units, g)) * scale / np.sqrt(units)).astype(np.float32)
    b = None
    if bias:
        shape = (2, g) if cell == "gru" else (g,)
        b = (rng.standard_normal(shape) * 0.3).astype(np.float32)
    return x, w, u, b


def run(cell, x, w, u, b, h0=None, c0=None, seq=False, training=True):
    if cell.startswith("simple"):
        return ops.simple_rnn(x, w, u, b, h0, activation=cell.split("_")[1], return_sequences=seq,
                              training=training)
    if cell == "lstm":
        return ops.lstm(x, w, u, b, h0, c0, return_sequences=seq, training=training)
    return ops.gru(x, w, u, b, h0, return_sequences=seq, training=training)


def run_backward(cell, dout, cache):
    """Always (dx, dh0, dc0 or None, dw, du, db)."""
    if cell == "lstm":
        return ops.lstm_backward(dout, cache)
    fn = ops.gru_backward if cell == "gru" else ops.simple_rnn_backward
    dx, dh0, dw, du, db = fn(dout, cache)
    return dx, dh0, None, dw, du, db


def full_dhs(dout, seq, steps):
    if seq:
        return np.float64(dout)
    d = np.zeros((dout.shape[0], steps, dout.shape[1]))
    d[:, -1] = dout
    return d


def check_against_reference(cell, rng, bsz, steps, feat, units, seq, states=True, bias=True,
                            atol=2e-5):
    x, w, u, b = make(cell, rng, bsz, steps, feat, units, bias=bias)
    h0 = rng.standard_normal((bsz, units)).astype(np.float32) * 0.5 if states else None
    c0 = rng.standard_normal((bsz, units)).astype(np.float32) * 0.5 \
        if states and cell == "lstm" else None
    out, cache = run(cell, x, w, u, b, h0, c0, seq)
    hs, rcache = ref_forward(cell, x, w, u, b, h0, c0)
    want = hs if seq else hs[:, -1]
    assert out.dtype == np.float32 and out.shape == want.shape
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=atol)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    got = run_backward(cell, dout, cache)
    ref = ref_backward(full_dhs(dout, seq, steps), rcache)
    for name, g, r in zip(["dx", "dh0", "dc0", "dw", "du", "db"], got, ref):
        if name == "dc0" and cell != "lstm":
            assert g is None
            continue
        if name == "db" and not bias:
            assert g is None
            continue
        assert g.dtype == np.float32 and g.shape == r.shape, name
        scale = max(1.0, float(np.abs(r).max()))
        np.testing.assert_allclose(g, r, rtol=2e-4, atol=5 * atol * scale, err_msg=name)


# ---- the reference itself is right: float64 finite differences

@pytest.mark.parametrize("cell", CELLS)
def test_reference_backward_matches_finite_differences(cell, rng):
    bsz, steps, feat, units = 2, 4, 3, 3
    x, w, u, b = (np.float64(a) for a in make(cell, rng, bsz, steps, feat, units, scale=1.0))
    h0 = rng.standard_normal((bsz, units))
    c0 = rng.standard_normal((bsz, units))
    wts = rng.standard_normal((bsz, steps, units))
    args = [x, h0, c0, w, u, b]

    def loss():
        hs, _ = ref_forward(cell, *[args[i] for i in (0, 3, 4, 5, 1, 2)])
        return float((hs * wts).sum())

    _, rcache = ref_forward(cell, x, w, u, b, h0, c0)
    grads = ref_backward(wts, rcache)
    eps = 1e-6
    for k, (a, g) in enumerate(zip(args, grads)):
        if k == 2 and cell != "lstm":
            continue
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            lp = loss()
            a[idx] = old - eps
            lm = loss()
            a[idx] = old
            num[idx] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7, err_msg=f"grad {k}")


# ---- kernel vs reference

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("dims", [(3, 5, 7, 6), (1, 1, 1, 1), (1, 4, 2, 1), (5, 1, 3, 17),
                                  (2, 3, 1, 33), (16, 3, 4, 70)])
def test_matches_reference(cell, seq, dims, rng, isa):
    check_against_reference(cell, rng, *dims, seq)


@pytest.mark.parametrize("cell", CELLS)
def test_deeper_than_gemm_k_block(cell, rng, isa):
    """features and units beyond the GEMM's K block (KC: 256 generic/AVX2, 512 AVX-512):
    projection, step and BPTT GEMMs all loop over K blocks, including the per-call packed
    recurrent weights."""
    check_against_reference(cell, rng, 3, 2, 520, 521, True)


@pytest.mark.parametrize("cell", CELLS)
def test_no_bias_no_initial_state(cell, rng):
    check_against_reference(cell, rng, 3, 4, 5, 7, seq=True, states=False, bias=False)


@pytest.mark.parametrize("cell", CELLS)
def test_long_sequence(cell, rng):
    check_against_reference(cell, rng, 2, 300, 3, 8, seq=False, atol=5e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_inference_matches_training(cell, rng):
    x, w, u, b = make(cell, rng, 3, 6, 4, 5)
    for seq in (False, True):
        out_t, cache = run(cell, x, w, u, b, seq=seq)
        out_i, none = run(cell, x, w, u, b, seq=seq, training=False)
        assert none is None and cache is not None
        np.testing.assert_array_equal(out_t, out_i)


@settings(max_examples=12, deadline=None)
@given(cell=st.sampled_from(CELLS), bsz=st.integers(1, 20), steps=st.integers(1, 9),
       feat=st.integers(1, 12), units=st.integers(1, 40), seq=st.booleans(),
       seed=st.integers(0, 2**31))
def test_random_shapes(cell, bsz, steps, feat, units, seq, seed):
    check_against_reference(cell, np.random.default_rng(seed), bsz, steps, feat, units, seq)


@pytest.mark.parametrize("cell", CELLS)
def test_reused_workspaces_do_not_alias_live_caches(cell, rng):
    """Workspaces return to a pool when their cache dies; live caches must never share one."""
    x1, w, u, b = make(cell, rng, 4, 6, 3, 5)
    x2 = rng.standard_normal(x1.shape).astype(np.float32)
    dout = rng.standard_normal((4, 5)).astype(np.float32)
    want = {}
    for name, x in (("a", x1), ("b", x2)):
        out, cache = run(cell, x, w, u, b)
        want[name] = (out.copy(), [g.copy() for g in run_backward(cell, dout, cache)
                                   if g is not None])
        del cache
    _, c1 = run(cell, x1, w, u, b)
    _, c2 = run(cell, x2, w, u, b)
    del c1  # its workspace goes back to the pool ...
    out3, c3 = run(cell, x1, w, u, b)  # ... and is taken here, while c2 stays live
    for _ in range(3):
        run(cell, x2, w, u, b, training=False)
    for name, cache in (("b", c2), ("a", c3)):
        got = [g for g in run_backward(cell, dout, cache) if g is not None]
        for g, r in zip(got, want[name][1]):
            np.testing.assert_array_equal(g, r)
    np.testing.assert_array_equal(out3, want["a"][0])


def test_concurrent_python_threads(rng):
    """The kernels release the GIL; concurrent calls (own scratch per thread, pooled workspaces)
    must give the same results as sequential ones."""
    x, w, u, b = make("lstm", rng, 9, 12, 5, 16)
    inputs = [rng.standard_normal(x.shape).astype(np.float32) for _ in range(4)]

    def work(xi):
        out, cache = ops.lstm(xi, w, u, b, return_sequences=True)
        return (out, *ops.lstm_backward(out, cache))

    want = [work(xi) for xi in inputs]
    got = [None] * len(inputs)

    def target(i):
        for _ in range(5):
            got[i] = work(inputs[i])

    ts = [threading.Thread(target=target, args=(i,)) for i in range(len(inputs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for g, wnt in zip(got, want):
        for a, c in zip(g, wnt):
            np.testing.assert_array_equal(a, c)


@platform_skipif(not hasattr(os, "fork"), "needs fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads (Python >= 3.12)
def test_forked_child_runs_and_matches(rng):
    """After the parent used its threads, a forked child runs serially, same bits, no hang."""
    x, w, u, b = make("gru", rng, 32, 6, 5, 40)
    out, cache = ops.gru(x, w, u, b)
    want = (out, *ops.gru_backward(out, cache))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        ok = False
        try:
            o2, c2 = ops.gru(x, w, u, b)
            got = (o2, *ops.gru_backward(o2, c2))
            ok = all(np.array_equal(a, c) for a, c in zip(got, want))
        finally:
            os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# kernels/rnn.cpp batch_parallel: nt threads run the recurrence when the per-step GEMM has
# 2*B*U*G >= nt * 2e5 flops and B >= 4 * nt rows (G = gates * U).
def splits_into(bsz, units, cell, nt):
    return 2 * bsz * units * GATES[cell] * units >= nt * 2e5 and bsz >= 4 * nt


def test_large_batch_threads_split_rows(rng, threads, isa):
    """Batch large enough for three threads, with rows that do not fill micro-tiles evenly."""
    for cell in CELLS:
        assert splits_into(67, 71, cell, 3)
        x, w, u, b = make(cell, rng, 67, 3, 5, 71)
        res = []
        for nt in (1, 2, 3):
            nncore.set_num_threads(nt)
            out, cache = run(cell, x, w, u, b, seq=True)
            res.append((out, *[g for g in run_backward(cell, out, cache) if g is not None]))
        for other in res[1:]:
            for a, c in zip(res[0], other):
                np.testing.assert_array_equal(a, c)
    check_against_reference("lstm", rng, 67, 3, 5, 71, True)


# ---- the float32 kernel against its own finite differences (sampled entries)

@pytest.mark.parametrize("cell", CELLS)
def test_kernel_finite_differences(cell, rng):
    bsz, steps, feat, units = 2, 5, 3, 4
    x, w, u, b = make(cell, rng, bsz, steps, feat, units, scale=1.0)
    h0 = (rng.standard_normal((bsz, units)) * 0.5).astype(np.float32)
    c0 = (rng.standard_normal((bsz, units)) * 0.5).astype(np.float32) if cell == "lstm" else None
    out, cache = run(cell, x, w, u, b, h0, c0, seq=True)
    wts = rng.standard_normal(out.shape).astype(np.float32)
    grads = run_backward(cell, wts, cache)
    args = [x, h0, c0, w, u, b]
    eps = 1e-2
    for k, (a, g) in enumerate(zip(args, grads)):
        if a is None:
            continue
        flat = a.reshape(-1)
        for idx in rng.choice(flat.size, size=min(6, flat.size), replace=False):
            old = flat[idx]
            flat[idx] = old + eps
            lp = float((run(cell, *args[:1], *args[3:], args[1], args[2], True, False)[0]
                        .astype(np.float64) * wts).sum())
            flat[idx] = old - eps
            lm = float((run(cell, *args[:1], *args[3:], args[1], args[2], True, False)[0]
                        .astype(np.float64) * wts).sum())
            flat[idx] = old
            num = (lp - lm) / (2 * eps)
            assert abs(g.reshape(-1)[idx] - num) <= 2e-2 * max(1.0, abs(num)), (k, idx)


# ---- determinism

@pytest.mark.parametrize("cell", CELLS)
def test_one_vs_two_threads_bitwise(cell, rng, threads, isa):
    assert splits_into(37, 80, cell, 2)  # the recurrence really runs on two threads
    x, w, u, b = make(cell, rng, 37, 9, 11, 80)
    h0 = rng.standard_normal((37, 80)).astype(np.float32)
    results = []
    for nt in (1, 2):
        nncore.set_num_threads(nt)
        out, cache = run(cell, x, w, u, b, h0, seq=True)
        dout = np.linspace(-1, 1, out.size, dtype=np.float32).reshape(out.shape)
        results.append((out, *[g for g in run_backward(cell, dout, cache) if g is not None]))
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


# ---- PyTorch parity

def _torch_module(torch, cell, w, u, b, units):
    feat = w.shape[0]
    n = units
    if cell.startswith("simple"):
        m = torch.nn.RNN(feat, n, batch_first=True, nonlinearity=cell.split("_")[1])
        wi, wh, bi, bh = w.T, u.T, b, np.zeros_like(b)
    elif cell == "lstm":  # Keras i,f,c,o == PyTorch i,f,g,o
        m = torch.nn.LSTM(feat, n, batch_first=True)
        wi, wh, bi, bh = w.T, u.T, b, np.zeros_like(b)
    else:  # Keras z,r,h -> PyTorch r,z,n
        m = torch.nn.GRU(feat, n, batch_first=True)
        perm = np.concatenate([np.arange(n, 2 * n), np.arange(n), np.arange(2 * n, 3 * n)])
        wi, wh, bi, bh = w[:, perm].T, u[:, perm].T, b[0, perm], b[1, perm]
    with torch.no_grad():
        for name, v in (("weight_ih_l0", wi), ("weight_hh_l0", wh), ("bias_ih_l0", bi),
                        ("bias_hh_l0", bh)):
            getattr(m, name).copy_(torch.from_numpy(np.ascontiguousarray(v)))
    return m


@pytest.mark.parametrize("cell", CELLS)
def test_pytorch_parity(cell, rng):
    torch = require("torch")
    bsz, steps, feat, units = 4, 7, 5, 6
    x, w, u, b = make(cell, rng, bsz, steps, feat, units)
    h0 = (rng.standard_normal((bsz, units)) * 0.5).astype(np.float32)
    c0 = (rng.standard_normal((bsz, units)) * 0.5).astype(np.float32)
    out, cache = run(cell, x, w, u, b, h0, c0 if cell == "lstm" else None, seq=True)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx, dh0, dc0, dw, du, db = run_backward(cell, dout, cache)

    m = _torch_module(torch, cell, w, u, b, units)
    tx = torch.from_numpy(x).requires_grad_()
    th0 = torch.from_numpy(h0)[None].clone().requires_grad_()
    tc0 = torch.from_numpy(c0)[None].clone().requires_grad_()
    ty, _ = m(tx, (th0, tc0)) if cell == "lstm" else m(tx, th0)
    ty.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out, ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dh0, th0.grad[0].numpy(), rtol=1e-4, atol=1e-4)
    if cell == "lstm":
        np.testing.assert_allclose(dc0, tc0.grad[0].numpy(), rtol=1e-4, atol=1e-4)
    gwi, gwh = m.weight_ih_l0.grad.numpy(), m.weight_hh_l0.grad.numpy()
    gbi, gbh = m.bias_ih_l0.grad.numpy(), m.bias_hh_l0.grad.numpy()
    if cell == "gru":
        n = units
        inv = np.concatenate([np.arange(n, 2 * n), np.arange(n), np.arange(2 * n, 3 * n)])
        gwi, gwh, gbi, gbh = gwi[inv], gwh[inv], gbi[inv], gbh[inv]  # the swap is its own inverse
        np.testing.assert_allclose(db, np.stack([gbi, gbh]), rtol=1e-4, atol=1e-4)
    else:
        np.testing.assert_allclose(db, gbi, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(db, gbh, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, gwi.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(du, gwh.T, rtol=1e-4, atol=1e-4)


# ---- bad input

def test_bad_inputs(rng):
    x, w, u, b = make("lstm", rng, 2, 3, 4, 5)
    with pytest.raises(ValueError, match="x must be 3-D"):
        ops.lstm(x[0], w, u, b)
    with pytest.raises(TypeError, match="x must be a real numeric array"):
        ops.lstm(x.astype(complex), w, u, b)
    with pytest.raises(ValueError, match="kernel must have shape"):
        ops.lstm(x, w[:3], u, b)
    with pytest.raises(ValueError, match="recurrent_kernel must have shape"):
        ops.lstm(x, w, u[:, :10], b)
    with pytest.raises(ValueError, match="bias must have shape"):
        ops.lstm(x, w, u, b[:-1])
    with pytest.raises(ValueError, match="h0 must have shape"):
        ops.lstm(x, w, u, b, h0=np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="c0 must have shape"):
        ops.lstm(x, w, u, b, c0=np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="x must be"):
        ops.lstm(np.zeros((2, 0, 4), np.float32), w, u, b)
    with pytest.raises(ValueError, match="bias must have shape"):
        ops.gru(x, w[:, :15], u[:, :15], b[:15])
    with pytest.raises(ValueError, match="activation"):
        ops.simple_rnn(x, w[:, :5], u[:, :5], b[:5], activation="sigmoid")
    out, cache = ops.lstm(x, w, u, b)
    with pytest.raises(ValueError, match="dout must have"):
        ops.lstm_backward(out[:1], cache)
    with pytest.raises(TypeError, match="cache"):
        ops.gru_backward(out, cache)
    with pytest.raises(TypeError, match="cache"):
        ops.lstm_backward(out, None)
    # The C++ side checks again, whatever the caller passes.
    _core = nncore._core
    with pytest.raises(ValueError):
        _core.rnn_forward(2, x, w, u[:, :8], b, None, None, False, True)
    with pytest.raises(ValueError):
        xt, gates, hs, cs, aux = cache.workspace
        _core.rnn_backward(2, out, xt, w, u, gates[:1], hs, cs, aux, False, True)
    with pytest.raises(TypeError):
        _core.rnn_forward(2, x.astype(np.float64), w, u, b, None, None, False, True)


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 0.3, 3.0, 30.0])
def test_activation_accuracy(scale, rng, isa):
    """One step with identity weights: out = tanh(x) (SimpleRNN) and the LSTM/GRU gates, to a few
    float32 ulp relative to float64, including tiny inputs where tanh must not cancel."""
    n = 64
    x = (rng.standard_normal((3, 1, n)) * scale).astype(np.float32)
    eye = np.eye(n, dtype=np.float32)
    out, _ = ops.simple_rnn(x, eye, eye, None, training=False)
    np.testing.assert_allclose(out, np.tanh(np.float64(x[:, 0])), rtol=4e-7, atol=1e-30)
    z = np.zeros((n, n), np.float32)
    out, _ = ops.lstm(x, np.concatenate([eye, z, eye, eye], 1), np.zeros((n, 4 * n), np.float32),
                      None, training=False)
    xs = np.float64(x[:, 0])
    want = sigmoid(xs) * np.tanh(sigmoid(xs) * np.tanh(xs))
    np.testing.assert_allclose(out, want, rtol=2e-6, atol=1e-30)


def test_nan_propagates(rng):
    x, w, u, b = make("gru", rng, 2, 3, 4, 5)
    x[0, 1, 2] = np.nan
    out, _ = ops.gru(x, w, u, b)
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


# ---- workspace arrays handed to _core.rnn_forward must not alias anything

def test_core_workspace_overlap_rejected(rng):
    """The kernel writes the workspace (xt, gates, hs, cs, aux) while reading x, the weights and
    the initial states: an overlap would corrupt them (or the results). ValueError instead."""
    from nncore import _core
    bsz, steps, feat, units = 4, 4, 4, 4  # B == T: x has the shape of xt
    x, w, u, b = make("lstm", rng, bsz, steps, feat, units)
    h0 = rng.standard_normal((bsz, units)).astype(np.float32)
    g, lstm = 4 * units, 2
    out, ws = _core.rnn_forward(lstm, x, w, u, b, h0, None, True, True)
    xt, gates, hs, cs, aux = ws
    out2, _ = _core.rnn_forward(lstm, x, w, u, b, h0, None, True, True, ws)  # plain reuse works
    np.testing.assert_array_equal(out, out2)
    big = np.zeros(steps * bsz * g + 8, np.float32)
    cases = [
        ("gates", "hs", (xt, big[8:].reshape(steps, bsz, g),
                         big[:(steps + 1) * bsz * units].reshape(steps + 1, bsz, units), cs, aux),
         h0),
        ("xt", "x", (x.reshape(steps, bsz, feat), gates, hs, cs, aux), h0),
        ("hs", "h0", (xt, gates, hs, cs, aux), hs[1]),
        ("hs", "cs", (xt, gates, hs, hs, aux), h0),
        ("gates", "aux", (xt, gates, hs, cs, gates.reshape(-1)[:aux.size].reshape(aux.shape)),
         h0),
    ]
    for first, second, bad, h0_arg in cases:
        before = (x.copy(), w.copy(), h0_arg.copy())
        with pytest.raises(ValueError, match=f"{first}.* overlap.*{second}|{first} and "
                                             f"workspace {second} overlap"):
            _core.rnn_forward(lstm, x, w, u, b, h0_arg, None, True, True, bad)
        np.testing.assert_array_equal(x, before[0])
        np.testing.assert_array_equal(w, before[1])
        np.testing.assert_array_equal(h0_arg, before[2])


@pytest.mark.parametrize("units", [128, 40])
def test_batch_one_matches_its_row_in_a_batch(isa, units):
    # Batch 1 runs the recurrent product through the one-row GEMM kernel, a larger batch through
    # the tile kernels; both promise the same arithmetic per row, so the bits must agree.
    rng = np.random.default_rng(7)
    for fn, gates in ((ops.simple_rnn, 1), (ops.lstm, 4), (ops.gru, 3)):
        x = rng.standard_normal((3, 7, 5)).astype(np.float32)
        w = (rng.standard_normal((5, gates * units)) * 0.3).astype(np.float32)
        u = (rng.standard_normal((units, gates * units)) * 0.1).astype(np.float32)
        b = rng.standard_normal((2, gates * units) if fn is ops.gru else (gates * units,))
        y3, _ = fn(x, w, u, b.astype(np.float32), training=False)
        y1, _ = fn(x[:1], w, u, b.astype(np.float32), training=False)
        np.testing.assert_array_equal(y1, y3[:1])
