"""Learning-rate schedules against Keras 3's at many steps, and against their written formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nncore import optimizers
from nncore.optimizers import schedules
from conftest import require

STEPS = list(range(0, 60)) + [99, 100, 101, 250, 999, 1000, 1001, 5000, 123457]

CASES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.9}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.5,
                          "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [5, 20, 100], "values": [1.0, 0.5, 0.1, 0.01]}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 50}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 30, "power": 2.0,
                         "end_learning_rate": 0.01, "cycle": True}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5,
                          "staircase": True}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 40}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 40, "alpha": 0.1,
                     "warmup_target": 0.2, "warmup_steps": 10}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 10}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 7, "t_mul": 1.0,
                             "m_mul": 0.8, "alpha": 0.05}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 5, "t_mul": 1.5,
                             "m_mul": 0.9}),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    return require("keras")


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_matches_keras_at_many_steps(keras, name, kw):
    ours = getattr(schedules, name)(**kw)
    theirs = getattr(keras.optimizers.schedules, name)(**kw)
    got = np.array([ours(s) for s in STEPS])
    want = np.array([float(theirs(s)) for s in STEPS])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)
    assert ours.get_config() == theirs.get_config()


def _formula(name, kw, s):
    lr0 = kw.get("initial_learning_rate")
    if name == "ExponentialDecay":
        p = s / kw["decay_steps"]
        return lr0 * kw["decay_rate"] ** (math.floor(p) if kw.get("staircase") else p)
    if name == "PiecewiseConstantDecay":
        for b, v in zip(kw["boundaries"], kw["values"]):
            if s <= b:
                return v
        return kw["values"][-1]
    if name == "PolynomialDecay":
        steps, end, power = kw["decay_steps"], kw.get("end_learning_rate", 1e-4), kw.get("power", 1)
        if kw.get("cycle"):
            steps = steps * max(1, math.ceil(s / steps))
        else:
            s = min(s, steps)
        return (lr0 - end) * (1 - s / steps) ** power + end
    if name == "InverseTimeDecay":
        p = s / kw["decay_steps"]
        return lr0 / (1 + kw["decay_rate"] * (math.floor(p) if kw.get("staircase") else p))
    if name == "CosineDecay":
        steps, alpha = kw["decay_steps"], kw.get("alpha", 0.0)
        target, warm = kw.get("warmup_target"), kw.get("warmup_steps", 0)
        if target is None:
            s, top = min(s, steps), lr0
        else:
            s = min(s, steps + warm)
            if s < warm:
                return lr0 + (target - lr0) * s / warm
            s, top = s - warm, target
        return top * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / steps)) + alpha)
    # CosineDecayRestarts: walk the periods.
    period, start, i = kw["first_decay_steps"], 0.0, 0
    t_mul, m_mul, alpha = kw.get("t_mul", 2.0), kw.get("m_mul", 1.0), kw.get("alpha", 0.0)
    while s >= start + period:
        start += period
        period *= t_mul
        i += 1
    frac = (s - start) / period
    return lr0 * ((1 - alpha) * 0.5 * m_mul ** i * (1 + math.cos(math.pi * frac)) + alpha)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_matches_written_formula(name, kw):
    ours = getattr(schedules, name)(**kw)
    for s in STEPS[:70]:
        assert ours(s) == pytest.approx(_formula(name, kw, s), rel=2e-5, abs=1e-8), s


def test_serialize_roundtrip_and_validation():
    for name, kw in CASES:
        s = getattr(schedules, name)(**kw)
        back = schedules.deserialize(schedules.serialize(s))
        assert type(back) is type(s) and back.get_config() == s.get_config()
        assert [back(k) for k in (0, 3, 77)] == [s(k) for k in (0, 3, 77)]
    with pytest.raises(ValueError):
        schedules.ExponentialDecay(0.1, decay_steps=0, decay_rate=0.5)
    with pytest.raises(ValueError):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        schedules.CosineDecayRestarts(0.1, first_decay_steps=-1)
    with pytest.raises(ValueError):
        schedules.deserialize({"class_name": "Nope", "config": {}})


def test_optimizer_evaluates_schedule_at_iterations():
    sched = schedules.PiecewiseConstantDecay([1], [0.5, 0.25])
    opt = optimizers.SGD(learning_rate=sched)
    w = np.zeros(2, np.float32)
    for _ in range(3):
        opt.apply([w], [np.ones(2, np.float32)], [None])
    # steps 0 and 1 at 0.5 (s <= 1), step 2 at 0.25
    np.testing.assert_allclose(w, -(0.5 + 0.5 + 0.25), rtol=1e-6)
