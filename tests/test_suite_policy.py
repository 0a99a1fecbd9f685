"""The suite's own rules: skips go through conftest's helpers, and NNCORE_REQUIRE_ALL=1 turns every
skip that is not a platform skip into a failure (see tests/conftest.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

TESTS = ROOT / "tests"
# Direct pytest skip/xfail machinery bypasses the policy; conftest.py alone may use it.
FORBIDDEN = re.compile(r"importorskip|pytest\.skip\b|pytest\.xfail\b|mark\.skipif|mark\.skip\b"
                       r"|mark\.xfail\b")


def test_tests_skip_only_through_the_helpers():
    offenders = []
    for path in sorted(TESTS.glob("test_*.py")):
        if path.name == "test_suite_policy.py":
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if FORBIDDEN.search(line):
                offenders.append(f"{path.name}:{no}: {line.strip()}")
    assert offenders == []


SAMPLE = '''
import pytest
from conftest import missing, platform_skip, platform_skipif, require

def test_needs_absent_package():
    require("nncore_no_such_package")

def test_needs_absent_data():
    missing("no data here")

def test_on_other_platform():
    platform_skip("this CPU lacks the feature")

@platform_skipif(True, "no such OS facility")
def test_marked_platform():
    pass

def test_plain_skip_bypassing_helpers():
    pytest.skip("raw skip")

@pytest.mark.xfail(reason="known bad")
def test_xfail():
    assert False

def test_passes():
    require("numpy")

def test_isa(isa):
    pass
'''


def _run_sample(tmp_path, require_all: bool) -> tuple[int, str]:
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("NNCORE_REQUIRE_ALL", None)
    if require_all:
        env["NNCORE_REQUIRE_ALL"] = "1"
    p = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA",
                        "-W", "error", "test_sample.py"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


def _outcomes(out: str) -> dict:
    """test name -> outcomes, from the -rA short summary and conftest's list of skips."""
    got = {}
    for m in re.finditer(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIP) test_sample\.py::"
                         r"(\w+(?:\[\w+\])?)", out, re.M):
        got.setdefault(m.group(2), set()).add(m.group(1).replace("SKIP", "SKIPPED"))
    return got


def _isa_ids():
    from conftest import ALL_ISAS
    from nncore import kernels as ops
    return {f"test_isa[{i}]": ("PASSED" if i in ops.supported_isas() else "SKIPPED")
            for i in ALL_ISAS}


def test_without_require_all_absent_things_skip(tmp_path):
    rc, out = _run_sample(tmp_path, require_all=False)
    got = _outcomes(out)
    want = {"test_needs_absent_package": "SKIPPED", "test_needs_absent_data": "SKIPPED",
            "test_on_other_platform": "SKIPPED", "test_marked_platform": "SKIPPED",
            "test_plain_skip_bypassing_helpers": "SKIPPED", "test_xfail": "XFAIL",
            "test_passes": "PASSED", **_isa_ids()}
    assert got == {k: {v} for k, v in want.items()}, out
    assert rc == 0, out
    assert "SKIP test_sample.py::test_needs_absent_package: optional package" in out
    assert re.search(r"nncore suite: \d+ tests run \(\d+ passed, 0 failed\), 0 errors, "
                     r"\d+ skipped \(NNCORE_REQUIRE_ALL=unset\)", out), out


def test_require_all_fails_everything_but_platform_skips(tmp_path):
    rc, out = _run_sample(tmp_path, require_all=True)
    got = _outcomes(out)
    want = {"test_needs_absent_package": "FAILED", "test_needs_absent_data": "FAILED",
            "test_on_other_platform": "SKIPPED", "test_marked_platform": "SKIPPED",
            "test_plain_skip_bypassing_helpers": "FAILED", "test_xfail": "FAILED",
            "test_passes": "PASSED", **_isa_ids()}
    assert got == {k: {v} for k, v in want.items()}, out
    assert rc == 1, out
    assert "NNCORE_REQUIRE_ALL=1 and optional package 'nncore_no_such_package'" in out
    assert "only platform skips are allowed" in out and "raw skip" in out
    assert "SKIP test_sample.py::test_on_other_platform: platform: this CPU lacks" in out


@pytest.mark.parametrize("require_all", [False, True])
def test_collection_skip(tmp_path, require_all):
    (tmp_path / "test_mod.py").write_text('import pytest\npytest.skip("whole module", '
                                          'allow_module_level=True)\n')
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("NNCORE_REQUIRE_ALL", None)
    if require_all:
        env["NNCORE_REQUIRE_ALL"] = "1"
    p = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-ra",
                        "test_mod.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    out = p.stdout + p.stderr
    if require_all:
        assert p.returncode == 2 and "only platform skips are allowed" in out, out
    else:
        assert p.returncode == 5 and "whole module" in out, out  # 5: no tests ran
