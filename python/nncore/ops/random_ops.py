"""Random ops (keras.random) as graph nodes, and shapes whose sizes are only known when the
graph runs.

A draw on concrete arguments happens at once. A draw whose shape names an unknown size (a
`Dim` from ``ops.shape`` of a symbolic tensor, e.g. the batch), whose operand is symbolic
(dropout, shuffle, categorical), or that is made inside a traced call, records a node: the
draw happens anew every time the graph runs, never once at trace time. Such a node has no
gradient to its seed or shape; dropout and shuffle pass the gradient of their input through.

Seeds follow Keras: a `SeedGenerator` gives a new key per draw (its state advances); an int
seed gives the same values at every call; None draws from nncore's global generator (reseeded
by ``nncore.utils.set_random_seed``).
"""

from __future__ import annotations

import numpy as np

from ..layers.node import KerasTensor
from . import _graph
from ._graph import Op, apply


class Dim:
    """A size of a symbolic tensor that is unknown until the graph runs (ops.shape(x)[0] of a
    batch-less x). It equals None, and sizes made from it are read from `tensor` at run time."""

    __slots__ = ("tensor", "axis")

    def __init__(self, tensor, axis):
        self.tensor, self.axis = tensor, axis

    def __eq__(self, other):
        return other is None or (isinstance(other, Dim) and other.tensor is self.tensor
                                 and other.axis == self.axis)

    def __hash__(self):
        return hash((id(self.tensor), self.axis))

    def __int__(self):
        raise TypeError(f"axis {self.axis} of {self.tensor!r} is unknown until the model runs; "
                        "pass it to ops that take a shape (keras.random.*, ops.zeros, "
                        "ops.reshape) as it is")

    __index__ = __int__

    def __repr__(self):
        return "None"


class SeedGenerator:
    """Keras's SeedGenerator: seeded (or from nncore's global generator), reproducible, its
    state [seed, counter] advancing by one per draw."""

    def __init__(self, seed=None, name=None, **kwargs):
        if seed is None:
            from ..utils.random import get_rng

            seed = int(get_rng().integers(0, 2 ** 31 - 1))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"SeedGenerator: seed must be an int or None, got "
                            f"{type(seed).__name__}")
        self.name = name or "seed_generator"
        self.state = np.array([int(seed), 0], dtype=np.int64)

    def next(self, ordered=True):
        key = self.state.copy()
        self.state[1] += 1
        return key

    def get_config(self):
        return {"seed": int(self.state[0])}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<SeedGenerator seed={int(self.state[0])} draws={int(self.state[1])}>"


def _rng(seed):
    if getattr(_graph._tls, "probing", False):
        return np.random.default_rng(0)  # shape inference: no draw from any generator
    if isinstance(seed, SeedGenerator):
        return np.random.default_rng([int(k) for k in seed.next()])
    if seed is None:
        from ..utils.random import get_rng

        return get_rng()
    return np.random.default_rng([int(seed), 0])


def _check_seed(seed):
    if seed is None or isinstance(seed, SeedGenerator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, a SeedGenerator or None, got "
                         f"{seed!r}")
    return int(seed)


def _template(shape):
    """(template, source tensors) of a shape that may hold Dims: a Dim becomes
    ('dim', k, axis) -- axis `axis` of the k-th source tensor."""
    if isinstance(shape, (int, np.integer, Dim)):
        shape = (shape,)
    tmpl, srcs = [], []
    for d in shape:
        if isinstance(d, Dim):
            k = next((i for i, t in enumerate(srcs) if t is d.tensor), None)
            if k is None:
                k = len(srcs)
                srcs.append(d.tensor)
            tmpl.append(("dim", k, d.axis))
        elif d is None:
            raise ValueError("a shape given to a random op or a fill has an unknown size "
                             "(None); take it from the tensor, e.g. ops.shape(x)[0]")
        else:
            tmpl.append(int(d))
    return tuple(tmpl), srcs


def _resolve(tmpl, srcs):
    return tuple(np.shape(srcs[d[1]])[d[2]] if isinstance(d, tuple) else d for d in tmpl)


def _dtype(dtype, default="float32"):
    return str(np.dtype(default if dtype is None or dtype == "float" else dtype))


# ---- draws of a shape ---------------------------------------------------------------------------
def _truncated(rng, shape, mean, stddev):
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return mean + stddev * out


_DRAWS = {
    "normal": lambda r, s, p: p["mean"] + p["stddev"] * r.standard_normal(s),
    "uniform": lambda r, s, p: r.uniform(p["minval"], p["maxval"], s),
    "randint": lambda r, s, p: r.integers(p["minval"], p["maxval"], s),
    "truncated_normal": lambda r, s, p: _truncated(r, s, p["mean"], p["stddev"]),
    "gamma": lambda r, s, p: r.gamma(p["alpha"], 1.0, s),
    "beta": lambda r, s, p: r.beta(p["alpha"], p["beta"], s),
    "binomial": lambda r, s, p: r.binomial(p["counts"], p["probabilities"], s),
    "fill": lambda r, s, p: np.full(s, p["value"]),
}


def _draw_f(*srcs, kind, shape, params, dtype, seed=None):
    s = _resolve(shape, srcs)
    rng = _rng(seed) if kind != "fill" else None
    return np.asarray(_DRAWS[kind](rng, s, dict(params))).astype(dtype), None


_DRAW = Op("random_draw", _draw_f)


def _anchor():
    """Inside a trace, a symbolic input of the traced call: a draw of a fixed shape made in a
    call hangs from it so that it runs (and draws) at every forward."""
    stack = getattr(_graph._tls, "trace", None)
    if stack and stack[-1].get("inputs"):
        return stack[-1]["inputs"][0]
    return None


def draw(kind, shape, params, dtype, seed):
    tmpl, srcs = _template(shape)
    static = {"kind": kind, "shape": tmpl, "params": tuple(sorted(params.items())),
              "dtype": dtype, "seed": _check_seed(seed) if kind != "fill" else None}
    if not srcs and kind != "fill":
        a = _anchor()
        if a is not None:
            srcs = [a]
    if not srcs:
        return _draw_f(kind=kind, **{k: v for k, v in static.items() if k != "kind"})[0]
    return apply(_DRAW, srcs, static)


# ---- draws from an input ------------------------------------------------------------------------
def _dropout_f(x, rate, noise_shape=None, seed=None):
    x = np.asarray(x)
    ns = np.shape(x) if noise_shape is None else tuple(
        np.shape(x)[i] if d is None else d for i, d in enumerate(noise_shape))
    keep = _rng(seed).uniform(size=ns) >= rate
    scale = np.zeros((), x.dtype) if rate >= 1 else np.asarray(1 / (1 - rate), x.dtype)
    mask = keep.astype(x.dtype) * scale
    return x * mask, mask


_DROPOUT = Op("random_dropout", _dropout_f,
              lambda dy, y, v, s, n, **k: [dy * s])


def _shuffle_f(x, axis=0, seed=None):
    x = np.asarray(x)
    perm = _rng(seed).permutation(x.shape[axis])
    return np.take(x, perm, axis=axis), perm


def _shuffle_b(dy, y, v, s, n, axis=0, seed=None):
    if np.asarray(v[0]).dtype.kind != "f":
        return [None]
    return [np.take(dy, np.argsort(s), axis=axis)]


_SHUFFLE = Op("random_shuffle", _shuffle_f, _shuffle_b)


def _categorical_f(logits, num_samples, dtype="int32", seed=None):
    lg = np.asarray(logits, np.float64)
    g = -np.log(-np.log(_rng(seed).uniform(np.finfo(np.float64).tiny, 1.0,
                                           lg.shape[:1] + (num_samples,) + lg.shape[1:])))
    return np.argmax(lg[:, None, :] + g, axis=-1).astype(dtype), None


_CATEGORICAL = Op("random_categorical", _categorical_f)

RANDOM_OPS = {op.name: op for op in (_DRAW, _DROPOUT, _SHUFFLE, _CATEGORICAL)}


def dropout(inputs, rate, noise_shape=None, seed=None):
    rate = float(rate)
    if not 0 <= rate <= 1:
        raise ValueError(f"dropout: rate must be in [0, 1], got {rate}")
    ns = None if noise_shape is None else tuple(None if d is None or isinstance(d, Dim)
                                                else int(d) for d in noise_shape)
    return apply(_DROPOUT, [inputs], {"rate": rate, "noise_shape": ns,
                                      "seed": _check_seed(seed)})


def shuffle(x, axis=0, seed=None):
    return apply(_SHUFFLE, [x], {"axis": int(axis), "seed": _check_seed(seed)})


def categorical(logits, num_samples, dtype="int32", seed=None):
    sh = logits.shape if isinstance(logits, KerasTensor) else np.shape(logits)
    if len(sh) != 2:
        raise ValueError(f"categorical: logits must be 2-D (batch, classes), got rank {len(sh)}")
    return apply(_CATEGORICAL, [logits], {"num_samples": int(num_samples),
                                          "dtype": _dtype(dtype, "int32"),
                                          "seed": _check_seed(seed)})


def fill(shape, value, dtype):
    """zeros/ones/full of a shape that holds Dims: a node reading the sizes when it runs."""
    return draw("fill", shape, {"value": value}, dtype, None)


def has_dim(shape):
    if isinstance(shape, Dim):
        return True
    return isinstance(shape, (tuple, list)) and any(isinstance(d, Dim) for d in shape)
