"""Keras's ``keras.random``: seeded draws that work on values and inside traced calls.

    seed_generator = nncore.random.SeedGenerator(1337)
    eps = nncore.random.normal(shape=(ops.shape(z_mean)[0], 2), seed=seed_generator)

Inside a layer's or a subclassed model's call a draw is a graph node: it draws anew at every
forward (the generator's state advances per draw), has no gradient to its seed, and the
gradient flows through what it is combined with. See nncore/ops/random_ops.py.
"""

from __future__ import annotations

from .ops.random_ops import SeedGenerator, _dtype, categorical, draw, dropout, shuffle

__all__ = ["SeedGenerator", "normal", "uniform", "randint", "truncated_normal", "dropout",
           "shuffle", "categorical", "gamma", "beta", "binomial"]


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return draw("normal", shape, {"mean": float(mean), "stddev": float(stddev)},
                _dtype(dtype), seed)


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    return draw("uniform", shape, {"minval": float(minval), "maxval": float(maxval)},
                _dtype(dtype), seed)


def randint(shape, minval, maxval, dtype="int32", seed=None):
    return draw("randint", shape, {"minval": int(minval), "maxval": int(maxval)},
                _dtype(dtype, "int32"), seed)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal draws redrawn until within two standard deviations of the mean (as Keras)."""
    return draw("truncated_normal", shape, {"mean": float(mean), "stddev": float(stddev)},
                _dtype(dtype), seed)


def gamma(shape, alpha, dtype=None, seed=None):
    return draw("gamma", shape, {"alpha": float(alpha)}, _dtype(dtype), seed)


def beta(shape, alpha, beta, dtype=None, seed=None):
    return draw("beta", shape, {"alpha": float(alpha), "beta": float(beta)}, _dtype(dtype), seed)


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    return draw("binomial", shape, {"counts": int(counts),
                                    "probabilities": float(probabilities)}, _dtype(dtype), seed)
