"""Every Python example in README.md runs as written (in a fresh interpreter). The MNIST CNN
block trains 5 epochs on full MNIST; it is the main job's program and is run by
tests/test_examples.py instead, so here it is only compiled."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
from conftest import require

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_example_runs(i, tmp_path):
    code = BLOCKS[i]
    if "mnist.load_data()" in code:
        compile(code, f"README block {i}", "exec")
        return
    # Blocks showing an optional extra need its package (CI installs them all).
    for marker, module in (("nncore.wrappers", "sklearn"), ("nncore import explain, layers, plot",
                                                            "matplotlib")):
        if marker in code:
            require(module)
    # The child imports the same nncore as this process (installed, or the dev tree).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
