"""nncore.ops: every op's forward against numpy (eagerly and through a graph) and its backward
against float64 central finite differences, broadcasting included."""

from __future__ import annotations

import numpy as np
import pytest

import nncore as keras
from nncore import ops
from nncore.ops._graph import Graph
from _layer_checks import fd_sum_grads

RNG = np.random.default_rng(0)


def _a(*shape, lo=-1.0, hi=1.0, dtype=np.float64):
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


def _pos(*shape):
    return _a(*shape, lo=0.5, hi=2.0)


def _away(*shape):
    """Values at least 0.1 from zero (abs, relu: no kink within the finite-difference step)."""
    x = _a(*shape)
    return np.where(np.abs(x) < 0.1, 0.1 * np.sign(x) + 0.1 * (x == 0), x)


def _graph(fn, arrays):
    ins = [keras.Input(shape=a.shape[1:], batch_size=a.shape[0], dtype=str(a.dtype))
           for a in arrays]
    out = fn(*ins)
    return Graph(ins, [out], 1, out, ins, 0)


def _vjp(fn, arrays, r=None):
    """(fn(arrays) through a recorded graph, d sum(out * r) / d arrays)."""
    g = _graph(fn, arrays)
    outs, ctxs, _ = g.run(list(arrays), False, True)
    y = outs[0]
    if r is None:
        r = RNG.uniform(-1, 1, size=np.shape(y)).astype(np.asarray(y).dtype)
    dxs = g.backprop(ctxs, [r], g.plan(True))
    dxs = [np.zeros_like(a) if d is None else d for a, d in zip(arrays, dxs)]
    return y, dxs, r


_fd = fd_sum_grads


# (id, ops function, numpy reference, inputs)
CASES = [
    ("add_bcast", lambda a, b: ops.add(a, b), np.add, [_a(3, 4), _a(4)]),
    ("add_bcast2", lambda a, b: a + ops.add(b, 0.0), lambda a, b: a + b, [_a(2, 1, 4), _a(3, 1)]),
    ("subtract_bcast", ops.subtract, np.subtract, [_a(3, 1), _a(1, 5)]),
    ("multiply_bcast", ops.multiply, np.multiply, [_a(2, 3, 4), _a(3, 1)]),
    ("divide_bcast", ops.divide, np.divide, [_a(3, 4), _pos(4)]),
    ("power_tensor_exp", ops.power, np.power, [_pos(3, 4), _a(4)]),
    ("power_scalar", lambda a: ops.power(a, 3.0), lambda a: a ** 3.0, [_a(3, 4)]),
    ("rsub_scalar", lambda a: 2.0 - a, lambda a: 2.0 - a, [_a(3, 2)]),
    ("rdiv_scalar", lambda a: 1.0 / a, lambda a: 1.0 / a, [_pos(3, 2)]),
    ("matmul_op", lambda a, b: a @ b, np.matmul, [_a(3, 4), _a(4, 2)]),
    ("neg_op", lambda a: -a, np.negative, [_a(3, 2)]),
    ("maximum_bcast", ops.maximum, np.maximum, [_a(3, 4), _a(4)]),
    ("minimum_bcast", ops.minimum, np.minimum, [_a(3, 4), _a(3, 1)]),
    ("negative", ops.negative, np.negative, [_a(3, 4)]),
    ("square", ops.square, np.square, [_a(3, 4)]),
    ("sqrt", ops.sqrt, np.sqrt, [_pos(3, 4)]),
    ("abs", ops.abs, np.abs, [_away(3, 4)]),
    ("exp", ops.exp, np.exp, [_a(3, 4)]),
    ("log", ops.log, np.log, [_pos(3, 4)]),
    ("log1p", ops.log1p, np.log1p, [_pos(3, 4)]),
    ("tanh", ops.tanh, np.tanh, [_a(3, 4)]),
    ("sigmoid", ops.sigmoid, lambda x: 1 / (1 + np.exp(-x)), [_a(3, 4, lo=-8, hi=8)]),
    ("relu", ops.relu, lambda x: np.maximum(x, 0), [_away(3, 4)]),
    ("softmax", ops.softmax, lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
     [_a(3, 5)]),
    ("softmax_axis0", lambda x: ops.softmax(x, axis=0),
     lambda x: np.exp(x) / np.exp(x).sum(0, keepdims=True), [_a(3, 5)]),
    ("log_softmax", ops.log_softmax, lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True)),
     [_a(3, 5)]),
    ("matmul_2d", ops.matmul, np.matmul, [_a(3, 4), _a(4, 5)]),
    ("matmul_3d_2d", ops.matmul, np.matmul, [_a(2, 3, 4), _a(4, 5)]),
    ("matmul_batched", ops.matmul, np.matmul, [_a(2, 3, 4), _a(2, 4, 5)]),
    ("matmul_bcast_batch", ops.matmul, np.matmul, [_a(2, 3, 4), _a(1, 4, 5)]),
    ("matmul_vec_mat", ops.matmul, np.matmul, [_a(4), _a(4, 5)]),
    ("matmul_mat_vec", ops.matmul, np.matmul, [_a(3, 4), _a(4)]),
    ("dot_2d", ops.dot, np.dot, [_a(3, 4), _a(4, 2)]),
    ("dot_nd", ops.dot, np.dot, [_a(2, 3, 4), _a(2, 4, 3)]),
    ("einsum_ij_jk", lambda a, b: ops.einsum("ij,jk->ik", a, b),
     lambda a, b: np.einsum("ij,jk->ik", a, b), [_a(3, 4), _a(4, 2)]),
    ("einsum_batched", lambda a, b: ops.einsum("bij,bjk->bik", a, b),
     lambda a, b: np.einsum("bij,bjk->bik", a, b), [_a(2, 3, 4), _a(2, 4, 2)]),
    ("einsum_rowdot", lambda a, b: ops.einsum("ij,ij->i", a, b),
     lambda a, b: np.einsum("ij,ij->i", a, b), [_a(3, 4), _a(3, 4)]),
    ("einsum_outer", lambda a, b: ops.einsum("i,j->ij", a, b),
     lambda a, b: np.einsum("i,j->ij", a, b), [_a(3), _a(4)]),
    ("einsum_sum_only", lambda a, b: ops.einsum("ij,k->i", a, b),
     lambda a, b: np.einsum("ij,k->i", a, b), [_a(3, 4), _a(2)]),
    ("einsum_implicit", lambda a, b: ops.einsum("ij,kj", a, b),
     lambda a, b: np.einsum("ij,kj", a, b), [_a(3, 4), _a(2, 4)]),
    ("sum_all", ops.sum, np.sum, [_a(3, 4)]),
    ("sum_axis", lambda x: ops.sum(x, axis=1), lambda x: x.sum(1), [_a(3, 4, 2)]),
    ("sum_axes_keep", lambda x: ops.sum(x, axis=(0, 2), keepdims=True),
     lambda x: x.sum((0, 2), keepdims=True), [_a(3, 4, 2)]),
    ("mean_axis", lambda x: ops.mean(x, axis=-1), lambda x: x.mean(-1), [_a(3, 4)]),
    ("mean_all_keep", lambda x: ops.mean(x, keepdims=True), lambda x: x.mean(keepdims=True),
     [_a(3, 4)]),
    ("max_axis", lambda x: ops.max(x, axis=1), lambda x: x.max(1), [_a(3, 4)]),
    ("min_all", ops.min, np.min, [_a(3, 4)]),
    ("std_axis", lambda x: ops.std(x, axis=0), lambda x: x.std(0), [_a(5, 3)]),
    ("var_all", ops.var, np.var, [_a(5, 3)]),
    ("reshape", lambda x: ops.reshape(x, (4, -1)), lambda x: x.reshape(4, -1), [_a(2, 6)]),
    ("transpose", lambda x: ops.transpose(x, (2, 0, 1)), lambda x: x.transpose(2, 0, 1),
     [_a(2, 3, 4)]),
    ("transpose_default", ops.transpose, np.transpose, [_a(2, 3)]),
    ("expand_dims", lambda x: ops.expand_dims(x, 1), lambda x: x[:, None], [_a(2, 3)]),
    ("squeeze", lambda x: ops.squeeze(x, axis=1), lambda x: x[:, 0], [_a(3, 1, 2)]),
    ("concatenate", lambda a, b: ops.concatenate([a, b], axis=1),
     lambda a, b: np.concatenate([a, b], 1), [_a(3, 2), _a(3, 4)]),
    ("stack", lambda a, b: ops.stack([a, b], axis=1), lambda a, b: np.stack([a, b], 1),
     [_a(3, 2), _a(3, 2)]),
    ("split", lambda x: (lambda p: ops.add(p[0], ops.multiply(p[2], 3.0)))(ops.split(x, 3, 1)),
     lambda x: x[:, 0:2] + 3 * x[:, 4:6], [_a(3, 6)]),
    ("split_indices", lambda x: ops.split(x, [1, 3], axis=1)[1],
     lambda x: x[:, 1:3], [_a(3, 5)]),
    ("take_flat", lambda x: ops.take(x, np.array([0, 5, 5, 2])),
     lambda x: np.take(x, [0, 5, 5, 2]), [_a(3, 4)]),
    ("take_axis", lambda x: ops.take(x, np.array([[2, 0], [2, 2]]), axis=1),
     lambda x: np.take(x, [[2, 0], [2, 2]], axis=1), [_a(3, 4)]),
    ("take_along_axis", lambda x: ops.take_along_axis(x, np.array([[0], [3], [1]]), axis=1),
     lambda x: np.take_along_axis(x, np.array([[0], [3], [1]]), 1), [_a(3, 4)]),
    ("getitem_slices", lambda x: x[:, 1:3], lambda x: x[:, 1:3], [_a(3, 4)]),
    ("getitem_int_newaxis", lambda x: x[1, None, ::2], lambda x: x[1, None, ::2], [_a(3, 4)]),
    ("getitem_advanced", lambda x: x[[0, 2, 0]], lambda x: x[[0, 2, 0]], [_a(3, 4)]),
    ("where", lambda c, a, b: ops.where(c > 0, a, b), lambda c, a, b: np.where(c > 0, a, b),
     [_away(3, 4), _a(3, 4), _a(4)]),
    ("clip", lambda x: ops.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), [_a(4, 5)]),
    ("stop_gradient", lambda a, b: ops.add(ops.stop_gradient(a), ops.square(b)),
     lambda a, b: a + b * b, [_a(3, 2), _a(3, 2)]),
    ("cast_roundtrip", lambda x: ops.multiply(ops.cast(ops.cast(x, "float32"), "float64"), 2.0),
     lambda x: 2.0 * x.astype(np.float32).astype(np.float64), [_a(3, 2)]),
    ("zeros_ones_like", lambda x: ops.add(ops.multiply(ops.ones_like(x), x), ops.zeros_like(x)),
     lambda x: x, [_a(3, 2)]),
]


@pytest.mark.parametrize("name,fn,ref,arrays", CASES, ids=[c[0] for c in CASES])
def test_forward_matches_numpy(name, fn, ref, arrays):
    want = ref(*arrays)
    eager = fn(*arrays)
    np.testing.assert_allclose(np.asarray(eager), want, rtol=1e-12, atol=1e-12)
    y, _, _ = _vjp(fn, [a.copy() for a in arrays])
    assert np.shape(y) == np.shape(want)
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,fn,ref,arrays", CASES, ids=[c[0] for c in CASES])
def test_backward_matches_finite_differences(name, fn, ref, arrays):
    arrays = [a.copy() for a in arrays]
    _, grads, r = _vjp(fn, arrays)
    if name == "stop_gradient":
        assert np.all(grads[0] == 0)
    if name == "cast_roundtrip":  # float32 rounding defeats finite differences: d/dx = 2
        np.testing.assert_allclose(grads[0], 2 * r.astype(np.float32), rtol=1e-7)
        return
    num = _fd(ref, arrays, r)
    for k, (g, n) in enumerate(zip(grads, num)):
        if name == "stop_gradient" and k == 0:
            continue
        if name == "where" and k == 0:
            continue  # the condition has no gradient
        assert g.shape == arrays[k].shape, (k, g.shape)
        np.testing.assert_allclose(g, n, rtol=1e-5, atol=1e-7, err_msg=f"operand {k}")


def test_symbolic_shapes_keep_unknown_batch():
    x = keras.Input((6,))
    assert ops.reshape(x, (-1, 2, 3)).shape == (None, 2, 3)
    assert ops.sum(x, axis=0).shape == (6,)
    assert ops.mean(x, axis=-1).shape == (None,)
    assert ops.matmul(x, np.zeros((6, 4), np.float32)).shape == (None, 4)
    assert ops.argmax(x, axis=-1).dtype == "int32"
    assert ops.one_hot(ops.argmax(x, axis=-1), 5).shape == (None, 5)
    assert [t.shape for t in ops.split(x, 3, axis=1)] == [(None, 2)] * 3
    assert (x * 2.0).shape == (None, 6) and (x / 2).dtype == "float32"


def test_creation_and_conversion():
    assert ops.zeros((2, 3)).dtype == np.float32 and ops.ones(4).shape == (4,)
    assert np.all(ops.full((2,), 7.0) == 7.0)
    np.testing.assert_array_equal(ops.arange(5), np.arange(5))
    assert ops.arange(0.0, 1.0, 0.5).dtype == np.float32
    assert ops.convert_to_tensor([1.0, 2.0]).dtype == np.float32
    assert ops.convert_to_tensor([1, 2]).dtype == np.int32
    assert ops.convert_to_numpy(np.ones(2)).shape == (2,)
    np.testing.assert_array_equal(ops.one_hot(np.array([0, 2]), 3),
                                  np.array([[1, 0, 0], [0, 0, 1]], np.float32))
    with pytest.raises(ValueError, match="symbolic"):
        ops.convert_to_numpy(keras.Input((2,)))


def test_matmul_runs_on_the_gemm_float32():
    a = _a(33, 17, dtype=np.float32)
    b = _a(17, 9, dtype=np.float32)
    y, (da, db), r = _vjp(ops.matmul, [a, b])
    assert y.dtype == np.float32 and da.dtype == np.float32
    a64, b64, r64 = a.astype(np.float64), b.astype(np.float64), r.astype(np.float64)
    np.testing.assert_allclose(y, a64 @ b64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(da, r64 @ b64.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, a64.T @ r64, rtol=1e-5, atol=1e-5)


def _conv_ref(x, w, stride, same):
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    if same:
        oh, ow = -(-h // stride), -(-wd // stride)
        ph = max((oh - 1) * stride + kh - h, 0)
        pw = max((ow - 1) * stride + kw - wd, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out


@pytest.mark.parametrize("stride,padding", [(1, "valid"), (2, "same")])
def test_conv_forward_and_backward(stride, padding):
    x = _a(2, 6, 5, 3, dtype=np.float32)
    w = _a(3, 3, 3, 4, dtype=np.float32)
    fn = lambda a, b: ops.conv(a, b, strides=stride, padding=padding)  # noqa: E731
    y, (dx, dw), r = _vjp(fn, [x, w])
    ref = lambda a, b: _conv_ref(a, b, stride, padding == "same")  # noqa: E731
    np.testing.assert_allclose(y, ref(x.astype(np.float64), w.astype(np.float64)), rtol=1e-4,
                               atol=1e-5)
    num = _fd(ref, [x.astype(np.float64), w.astype(np.float64)], r.astype(np.float64))
    np.testing.assert_allclose(dx, num[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, num[1], rtol=1e-4, atol=1e-4)


def _pool_ref(x, k, kind):
    n, h, w, c = x.shape
    oh, ow = h // k, w // k
    v = x[:, :oh * k, :ow * k].reshape(n, oh, k, ow, k, c)
    return v.max(axis=(2, 4)) if kind == "max" else v.mean(axis=(2, 4))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_forward_and_backward(kind):
    x = RNG.permutation(2 * 5 * 4 * 3).reshape(2, 5, 4, 3).astype(np.float32) / 10
    fn = (lambda a: ops.max_pool(a, 2)) if kind == "max" else (
        lambda a: ops.average_pool(a, 2, strides=2))
    y, (dx,), r = _vjp(fn, [x])
    ref = lambda a: _pool_ref(a, 2, kind)  # noqa: E731
    np.testing.assert_allclose(y, ref(x.astype(np.float64)), rtol=1e-6)
    num = _fd(ref, [x.astype(np.float64)], r.astype(np.float64), eps=1e-3)
    np.testing.assert_allclose(dx, num[0], rtol=1e-4, atol=1e-5)


def test_ops_in_a_functional_model_train():
    w = np.linspace(-1, 1, 12).reshape(4, 3).astype(np.float32)
    x = keras.Input((4,))
    h = ops.tanh(ops.matmul(x, w)) * 0.5 + 1.0
    out = keras.layers.Dense(1)(h)
    model = keras.Model(x, out)
    assert [type(lay).__name__ for lay in model.layers] == ["InputLayer", "Dense"]
    data = _a(16, 4, dtype=np.float32)
    np.testing.assert_allclose(model.predict(data, verbose=0),
                               (np.tanh(data @ w) * 0.5 + 1.0) @ model.get_weights()[0]
                               + model.get_weights()[1], rtol=1e-5, atol=1e-6)
    model.compile("sgd", "mse")
    model.fit(data, data[:, :1], epochs=1, verbose=0)


def test_bad_arguments_say_what():
    with pytest.raises(NotImplementedError, match="ellipsis"):
        ops.einsum("...ij,jk->...ik", _a(2, 3), _a(3, 2))
    with pytest.raises(ValueError, match="channels_last"):
        ops.conv(_a(1, 3, 3, 1, dtype=np.float32), _a(1, 1, 1, 1, dtype=np.float32),
                 data_format="channels_first")
    with pytest.raises(ValueError, match="data-dependent"):
        ops.where(keras.Input((2,)))


def test_functional_model_with_ops_saves_and_loads(tmp_path):
    x = keras.Input((6,), name="x")
    h = keras.layers.Dense(4, name="d")(x / 2.0 + 1.0)
    parts = ops.split(h, 2, axis=-1)
    out = ops.concatenate([ops.tanh(parts[0]), ops.square(parts[1][:, ::-1])], axis=-1)
    out = ops.sum(out * np.array([1.0, 2.0, 3.0, 4.0], np.float32), axis=-1, keepdims=True)
    model = keras.Model(x, out)
    data = _a(5, 6, dtype=np.float32)
    want = model.predict(data, verbose=0)
    model.save(tmp_path / "m.nncore")
    again = keras.saving.load_model(tmp_path / "m.nncore")
    np.testing.assert_allclose(again.predict(data, verbose=0), want, rtol=1e-6)
    assert [type(lay).__name__ for lay in again.layers] == ["InputLayer", "Dense"]


def test_hostile_op_configs_are_refused():
    from nncore.ops._graph import OpNode

    with pytest.raises(ValueError, match="unknown op"):
        OpNode.from_config({"op": "__import__", "spec": [["t", 0]], "static": {}})
    with pytest.raises(ValueError, match="dtype"):
        OpNode.from_config({"op": "add", "spec": [["t", 0], ["c", {"array": [1], "dtype": "O",
                                                                  "shape": [1]}]],
                            "static": {}})
    node = OpNode.from_config({"op": "sum", "spec": [["t", 0]], "static": {"bogus": 1}})
    with pytest.raises(ValueError, match="op node"):
        node(keras.Input((3,)))


def test_index_and_comparison_ops_forward():
    x = _a(4, 5)
    np.testing.assert_array_equal(ops.argmax(x, axis=1), np.argmax(x, axis=1))
    np.testing.assert_array_equal(ops.argmin(x, axis=0, keepdims=True),
                                  np.argmin(x, axis=0, keepdims=True))
    assert ops.argmax(x) == np.argmax(x)
    for name in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"):
        np.testing.assert_array_equal(getattr(ops, name)(x, x[0]), getattr(np, name)(x, x[0]))
    y, _, _ = _vjp(lambda a: ops.where(ops.greater(a, 0.0), a, ops.zeros_like(a)), [x.copy()])
    np.testing.assert_array_equal(y, np.where(x > 0, x, 0))
