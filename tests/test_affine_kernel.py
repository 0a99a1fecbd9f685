"""The C++ projective image resampler (_core.affine_transform / affine_transform_backward,
csrc/kernels/affine.cpp) that RandomRotation/Translation/Zoom run: against its float64 NumPy
twin (layers.augmentation.affine_plan/apply/backward) for every fill_mode x interpolation, odd
sizes, 1/3/5 channels, float32 and float64, affine and projective maps; the backward as the
exact adjoint and by central differences; 1 vs 2 threads bitwise; TensorFlow/Keras's own
keras.ops.image.affine_transform on identical transforms; bad input."""

from __future__ import annotations

import nncore
import numpy as np
import pytest
from conftest import require
from nncore import _core
from nncore.layers import augmentation as A

SHAPES = [(2, 5, 7), (1, 1, 4), (3, 6, 1), (2, 9, 8)]


def _transforms(rng, b, h, w, projective):
    a = rng.uniform(-np.pi, np.pi, b)
    s = rng.uniform(0.6, 1.6, (b, 2))
    t = np.zeros((b, 8))
    t[:, 0], t[:, 1] = np.cos(a) * s[:, 0], -np.sin(a)
    t[:, 3], t[:, 4] = np.sin(a), np.cos(a) * s[:, 1]
    t[:, 2] = rng.uniform(-1.5 * w, 1.5 * w, b)
    t[:, 5] = rng.uniform(-1.5 * h, 1.5 * h, b)
    if projective:
        t[:, 6:] = rng.uniform(-0.05, 0.05, (b, 2))
    return t


def _reference(x, t, fill, interp, fill_value):
    plan = A.affine_plan(x.shape[1], x.shape[2], t, fill, interp)
    return A.affine_apply(np.asarray(x, np.float64), plan, fill_value, np.float64)


@pytest.mark.parametrize("fill", A._FILL)
@pytest.mark.parametrize("interp", A._INTERP)
@pytest.mark.parametrize("channels", [1, 3, 5])
@pytest.mark.parametrize("projective", [False, True], ids=["affine", "projective"])
def test_forward_matches_the_float64_reference(fill, interp, channels, projective, rng):
    for b, h, w in SHAPES:
        x64 = rng.uniform(-2, 3, (b, h, w, channels))
        t = _transforms(rng, b, h, w, projective)
        want = _reference(x64, t, fill, interp, 0.75)
        got64 = _core.affine_transform(x64, t, fill, interp, 0.75)
        assert got64.dtype == np.float64 and got64.shape == x64.shape
        np.testing.assert_allclose(got64, want, rtol=1e-12, atol=1e-12)
        x32 = x64.astype(np.float32)
        got32 = _core.affine_transform(x32, t, fill, interp, 0.75)
        assert got32.dtype == np.float32
        # the same taps and weights; only the input's and the output's rounding differ
        np.testing.assert_allclose(got32, _reference(x32, t, fill, interp, 0.75),
                                   rtol=1e-6, atol=1e-6)
        assert not np.array_equal(got64, x64) or (h, w) == (1, 1)


@pytest.mark.parametrize("fill", A._FILL)
@pytest.mark.parametrize("interp", A._INTERP)
def test_backward_is_the_adjoint(fill, interp, rng):
    for b, h, w in SHAPES:
        c = 3
        x = rng.normal(size=(b, h, w, c))
        dy = rng.normal(size=(b, h, w, c))
        t = _transforms(rng, b, h, w, True)
        dx = _core.affine_transform_backward(dy, t, fill, interp)
        plan = A.affine_plan(h, w, t, fill, interp)
        np.testing.assert_allclose(dx, A.affine_backward(dy, plan, x.shape, np.float64),
                                   rtol=1e-12, atol=1e-12)
        y = _core.affine_transform(x, t, fill, interp, 0.0)  # linear in x when fill_value = 0
        np.testing.assert_allclose(np.sum(y * dy), np.sum(x * dx), rtol=1e-12)
        dx32 = _core.affine_transform_backward(dy.astype(np.float32), t, fill, interp)
        assert dx32.dtype == np.float32
        np.testing.assert_allclose(dx32, dx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fill", A._FILL)
def test_backward_central_differences(fill, rng):
    x = rng.normal(size=(2, 4, 5, 2))
    t = _transforms(rng, 2, 4, 5, True)
    r = rng.normal(size=x.shape)
    dx = _core.affine_transform_backward(r, t, fill, "bilinear")
    eps = 1e-6
    for flat in rng.choice(x.size, 25, replace=False):
        e = np.zeros(x.size)
        e[flat] = eps
        e = e.reshape(x.shape)
        f = [np.sum(_core.affine_transform(x + s * e, t, fill, "bilinear", 2.5) * r)
             for s in (1, -1)]
        np.testing.assert_allclose((f[0] - f[1]) / (2 * eps), dx.flat[flat], rtol=1e-6,
                                   atol=1e-8)


def test_one_and_two_threads_bitwise(rng):
    x = rng.normal(size=(5, 64, 61, 3)).astype(np.float32)
    t = _transforms(rng, 5, 64, 61, True)
    old = nncore.get_num_threads()
    out = {}
    try:
        for nt in (1, 2):
            nncore.set_num_threads(nt)
            out[nt] = [(_core.affine_transform(x, t, f, i, 1.5),
                        _core.affine_transform_backward(x, t, f, i))
                       for f in A._FILL for i in A._INTERP]
    finally:
        nncore.set_num_threads(old)
    for (y1, d1), (y2, d2) in zip(out[1], out[2]):
        assert y1.tobytes() == y2.tobytes() and d1.tobytes() == d2.tobytes()


def test_zero_denominator_and_non_finite_coordinates_read_the_fill_value():
    x = np.arange(12, dtype=np.float64).reshape(1, 3, 4, 1)
    t = np.array([[1.0, 0, 0, 0, 1.0, 0, -1.0, 0]])  # k = 1 - x: 0 in column 1
    for fill in A._FILL:
        for interp in A._INTERP:
            y = _core.affine_transform(x, t, fill, interp, -7.0)
            np.testing.assert_array_equal(y[0, :, 1, 0], -7.0)
            np.testing.assert_allclose(y, _reference(x, t, fill, interp, -7.0), rtol=1e-12)
    t_nan = np.array([[np.nan, 0, 0, 0, 1.0, 0, 0, 0]])
    y = _core.affine_transform(x, t_nan, "reflect", "bilinear", 4.0)
    np.testing.assert_array_equal(y, 4.0)
    t_huge = np.array([[1.0, 0, 1e300, 0, 1.0, -1e300, 0, 0]])  # no overflow in the mapping
    for fill in A._FILL:
        y = _core.affine_transform(x, t_huge, fill, "nearest", 4.0)
        np.testing.assert_allclose(y, _reference(x, t_huge, fill, "nearest", 4.0))


def test_bad_input_is_refused():
    x = np.zeros((2, 3, 4, 1), np.float32)
    t = np.zeros((2, 8))
    with pytest.raises(ValueError, match="fill_mode must be"):
        _core.affine_transform(x, t, "mirror")
    with pytest.raises(ValueError, match="interpolation must be"):
        _core.affine_transform(x, t, "constant", "bicubic")
    with pytest.raises(ValueError, match=r"transforms must have shape \(2, 8\)"):
        _core.affine_transform(x, np.zeros((1, 8)))
    with pytest.raises(TypeError, match="transforms must be a float64"):
        _core.affine_transform(x, t.astype(np.float32))
    with pytest.raises(ValueError, match="must be 4-D"):
        _core.affine_transform(x[0], t)
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.affine_transform(x.astype(np.int32), t)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.affine_transform_backward(np.zeros((2, 4, 3, 1), np.float32).transpose(0, 2, 1, 3), t)


@pytest.mark.parametrize("fill", A._FILL)
@pytest.mark.parametrize("interp", A._INTERP)
@pytest.mark.parametrize("projective", [False, True], ids=["affine", "projective"])
def test_matches_keras_ops_image_affine_transform(fill, interp, projective, rng):
    require("tensorflow")
    import keras

    for b, h, w in [(3, 7, 9), (2, 6, 5)]:
        for c in (1, 3, 5):
            x = rng.uniform(0, 255, (b, h, w, c)).astype(np.float32)
            t = _transforms(rng, b, h, w, projective).astype(np.float32)  # Keras's dtype
            want = np.asarray(keras.ops.image.affine_transform(
                x, t, interpolation=interp, fill_mode=fill, fill_value=3.5))
            got = _core.affine_transform(x, t.astype(np.float64), fill, interp, 3.5)
            # TF maps coordinates in float32, nncore in float64: values up to 255
            np.testing.assert_allclose(got, want, rtol=0, atol=3e-4 * 255)


@pytest.mark.parametrize("fill", A._FILL)
@pytest.mark.parametrize("interp", A._INTERP)
def test_exact_halves_and_integers_round_and_floor_as_the_reference(fill, interp, rng):
    """Shifts of whole and half pixels put every coordinate on a rounding or floor edge
    (nearest: half away from zero; bilinear: the floor of negative integers)."""
    x = rng.normal(size=(1, 5, 6, 3))
    for dx in (0.5, -0.5, 1.5, -1.5, -2.5, 3.0, -3.0, 0.0, 7.5, -8.0, 12.5):
        for dy in (0.5, -1.5, 2.0, -4.5):
            t = np.array([[1.0, 0, dx, 0, 1.0, dy, 0, 0]])
            # the same taps (a wrong one is off by O(1)); the sums' order differs (an ulp)
            np.testing.assert_allclose(_core.affine_transform(x, t, fill, interp, 0.25),
                                       _reference(x, t, fill, interp, 0.25), rtol=1e-14,
                                       atol=1e-14)
