"""Shared fixtures: every ISA path this machine has, thread counts, a seeded RNG, the data dir."""

from __future__ import annotations

import os
import pathlib

import nncore
import numpy as np
import pytest
from nncore import ops

ROOT = pathlib.Path(__file__).resolve().parents[1]


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


@pytest.fixture(params=ops.supported_isas())
def isa(request):
    """Runs the test once per instruction set this CPU supports, restoring the default after."""
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
    """Directory holding the full MNIST IDX files, or skip."""
    path = pathlib.Path(os.environ.get("NNCORE_TEST_MNIST", SHARED_MNIST))
    if "NNCORE_TEST_MNIST" not in os.environ and not path.exists():
        # A git worktree one level deeper (e.g. /work/wt/<name>) shares the same data directory.
        path = ROOT.parents[1] / "shared" / "data" / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"full MNIST not found at {path}")
    return path
