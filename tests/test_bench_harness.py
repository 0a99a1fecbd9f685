"""bench/_harness.py: frameworks alternate A B C A B C ..., and the spread is what it says."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import _harness  # noqa: E402


def test_alternate_runs_blocks_in_rotation():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "ABC"}
    res = _harness.alternate(fns, rounds=3, samples=2, warmup=1)
    # each block: 1 warm-up + 2 samples of one name; blocks rotate A B C A B C A B C
    assert calls == [n for _ in range(3) for n in "ABC" for _ in range(3)]
    for name in "ABC":
        assert res[name]["n"] == 6 and len(res[name]["loads"]) == 3
        assert res[name]["min"] <= res[name]["q1"] <= res[name]["median"] <= res[name]["q3"]
        assert res[name]["q3"] <= res[name]["max"]


def test_spread():
    s = _harness.spread([5.0, 1.0, 3.0, 2.0, 4.0])
    assert s == {"median": 3.0, "min": 1.0, "max": 5.0, "q1": 2.0, "q3": 4.0, "n": 5}
    assert _harness.spread([7.0]) == {"median": 7.0, "min": 7.0, "max": 7.0, "q1": 7.0,
                                      "q3": 7.0, "n": 1}
    assert _harness.fmt_spread(s, ".1f") == "3.0 (1.0-5.0, n=5)"
