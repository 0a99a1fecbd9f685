"""Shared fixtures (every ISA path, thread counts, a seeded RNG, the data dir) and the skip policy.

Skip policy. A test that needs something optional asks for it through one of the helpers here,
never with pytest.importorskip / pytest.skip / skipif directly (tests/test_suite_policy.py checks):

- ``require("torch")`` imports an optional package (a reference framework, an extra) or skips;
- ``require_mnist()`` / the ``mnist_dir`` fixture give the full MNIST directory or skip;
- ``missing(reason)`` skips for any other absent prerequisite;
- ``platform_skip(reason)`` / ``platform_skipif(cond, reason)`` skip where the *platform* cannot
  run the test (a CPU feature this machine lacks, an OS facility).

With ``NNCORE_REQUIRE_ALL=1`` (CI sets it) the first three are failures, not skips, and so is any
other skip or xfail that is not a platform skip: the suite cannot go green while checking less.
Platform skips stay skips, and the terminal summary lists every skip with its reason.
"""

from __future__ import annotations

import importlib
import re
import os
import pathlib

import nncore
import numpy as np
import pytest
from nncore import kernels as ops

ROOT = pathlib.Path(__file__).resolve().parents[1]
REQUIRE_ALL = os.environ.get("NNCORE_REQUIRE_ALL", "") == "1"
PLATFORM = "platform: "
# Every instruction set nncore has kernels for; ops.supported_isas() is this CPU's subset.
ALL_ISAS = ("generic", "avx2", "avx512")


# ---------------------------------------------------------------------------------------------
# Skip helpers
# ---------------------------------------------------------------------------------------------

def missing(reason: str):
    """Skip for an absent prerequisite; under NNCORE_REQUIRE_ALL=1 fail instead."""
    if REQUIRE_ALL:
        pytest.fail(f"NNCORE_REQUIRE_ALL=1 and {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)  # also at a test module's top level


def require(module: str, minversion: str | None = None):
    """Import and return an optional package the test needs (at least `minversion` when given),
    or `missing` it."""
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        missing(f"optional package {module!r} is not importable ({e})")
    if minversion is not None:
        have = getattr(mod, "__version__", "0")

        def key(v):
            return tuple(int(p) for p in re.findall(r"\d+", v)[:3])

        if key(have) < key(minversion):
            missing(f"optional package {module!r} is {have}, {minversion} or newer is needed")
    return mod


def platform_skip(reason: str):
    """Skip because this platform cannot run the test; allowed (and listed) under
    NNCORE_REQUIRE_ALL=1."""
    pytest.skip(PLATFORM + reason, allow_module_level=True)


def platform_skipif(condition: bool, reason: str):
    """The mark form of platform_skip."""
    return pytest.mark.skipif(condition, reason=PLATFORM + reason)


def _shared_mnist() -> pathlib.Path:
    """Full MNIST lives beside the checkout on the project's machines (../shared/data/mnist). In a
    git worktree (.git is a file "gitdir: MAIN/.git/worktrees/NAME"), look beside the main
    checkout."""
    here = ROOT.parent / "shared" / "data" / "mnist"
    git = ROOT / ".git"
    if not here.exists() and git.is_file():
        gitdir = git.read_text().partition("gitdir:")[2].strip()
        if gitdir:
            main = pathlib.Path(gitdir).resolve().parents[2]
            return main.parent / "shared" / "data" / "mnist"
    return here


SHARED_MNIST = _shared_mnist()


def mnist_path() -> pathlib.Path:
    """Where the tests look for full MNIST: $NNCORE_TEST_MNIST, else beside the checkout."""
    return pathlib.Path(os.environ.get("NNCORE_TEST_MNIST", SHARED_MNIST))


def require_mnist() -> pathlib.Path:
    """The directory holding the four full-MNIST IDX files, or `missing` it."""
    path = mnist_path()
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
    if not all((path / (n + ".gz")).exists() for n in names):
        missing(f"full MNIST not found at {path} (set NNCORE_TEST_MNIST)")
    return path


# ---------------------------------------------------------------------------------------------
# The float32 GEMM error bound
# ---------------------------------------------------------------------------------------------

F32_EPS = float(np.finfo(np.float32).eps)  # 2**-23, twice float32's unit roundoff u


def gemm_error_bound(a, b, *, ta=False, tb=False, alpha=1.0, beta=0.0, c=None, bias=None):
    """Elementwise bound on |float32 result - exact result| of alpha*op(A)@op(B) + beta*C (+ bias).

    Any summation order of k float32 products, with or without FMA, errs by at most
    gamma_k * (|A| @ |B|), gamma_k = k*u / (1 - k*u) (Higham, Accuracy and Stability, Thm 3.1);
    alpha, beta*C and a bias add a rounding each. (k + 2) * eps = 2 (k + 2) u covers all of that
    and the rounding of float64 inputs, alpha and beta to float32, and nothing more."""
    a64 = np.abs(np.asarray(a, np.float64))
    b64 = np.abs(np.asarray(b, np.float64))
    a64 = a64.T if ta else a64
    b64 = b64.T if tb else b64
    k = a64.shape[1]
    mag = abs(alpha) * (a64 @ b64)
    if beta != 0.0 and c is not None:
        mag = mag + abs(beta) * np.abs(np.asarray(c, np.float64))
    if bias is not None:
        mag = mag + np.abs(np.asarray(bias, np.float64))
    return (k + 2) * F32_EPS * mag


def assert_within_bound(got, want, bound):
    """Every element of got within its error bound of the float64 reference want."""
    err = np.abs(np.asarray(got, np.float64) - want)
    bad = err > bound
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), err.shape)
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} elements exceed the float32 error bound; worst at "
            f"{tuple(int(j) for j in i)}: got {got[i]!r}, want {want[i]!r}, bound {bound[i]:.3g}")


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

@pytest.fixture(params=ALL_ISAS)
def isa(request):
    """Runs the test once per instruction set nncore has: on the ones this CPU lacks it is a
    platform skip (listed in the summary), so a run says which kernels it did not execute."""
    supported = ops.supported_isas()
    assert set(supported) <= set(ALL_ISAS), f"update ALL_ISAS: {supported}"
    if request.param not in supported:
        platform_skip(f"this CPU lacks {request.param} (its kernels are not run here)")
    before = ops.get_isa()
    ops.set_isa(request.param)
    yield request.param
    ops.set_isa(before)


@pytest.fixture
def threads():
    """Restores nncore's thread count after a test that changes it."""
    before = nncore.get_num_threads()
    yield
    nncore.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def mnist_dir():
    """Directory holding the full MNIST IDX files (see require_mnist)."""
    return require_mnist()


# ---------------------------------------------------------------------------------------------
# Enforcement under NNCORE_REQUIRE_ALL=1, and the list of skips
# ---------------------------------------------------------------------------------------------

def _not_allowed(reason: str) -> str:
    return (f"NNCORE_REQUIRE_ALL=1: only platform skips are allowed, and this skip is not one "
            f"(use conftest's helpers): {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not (REQUIRE_ALL and rep.skipped):
        return
    if hasattr(rep, "wasxfail"):
        reason = f"xfail ({rep.wasxfail})"
    else:
        reason = str(getattr(call.excinfo.value, "msg", "")) if call.excinfo else ""
        if reason.startswith(PLATFORM):
            return
    rep.outcome = "failed"
    rep.longrepr = _not_allowed(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if REQUIRE_ALL and rep.outcome == "skipped":
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if not reason.startswith(PLATFORM):
            rep.outcome = "failed"
            rep.longrepr = _not_allowed(f"{collector.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter):
    """Every skip by test id and reason (pytest's -ra folds them per source line), then the
    counts, so a CI log ends with what was and was not checked."""
    tr = terminalreporter
    skipped = [r for r in tr.stats.get("skipped", []) if not hasattr(r, "wasxfail")]
    tr.section("skipped tests (each with its reason)")
    for r in skipped:
        reason = r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)
        tr.line(f"SKIP {r.nodeid}: {reason.removeprefix('Skipped: ')}")
    if not skipped:
        tr.line("none")
    calls = {k: {r.nodeid for r in tr.stats.get(k, []) if r.when == "call"}
             for k in ("passed", "failed")}
    errors = {r.nodeid for r in tr.stats.get("error", []) if hasattr(r, "nodeid")}
    tr.line(f"nncore suite: {len(calls['passed'] | calls['failed'])} tests run "
            f"({len(calls['passed'])} passed, {len(calls['failed'])} failed), "
            f"{len(errors)} errors, {len(skipped)} skipped "
            f"(NNCORE_REQUIRE_ALL={'1' if REQUIRE_ALL else 'unset'})")
