"""Smoke runs of the main job and the RNN example: a fraction of the embedded subset, one epoch, in
a subprocess (as a user runs them). They need nncore's Keras API (nncore.layers / nncore.models)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT


def run_example(script: str, *args: str, timeout: float = 120) -> str:
    # The child imports the same nncore as this process (installed, or the dev tree on PYTHONPATH).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("NNCORE_DATA", None)
    p = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args],
                       capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p.stdout


@pytest.mark.parametrize("script", ["mnist_cnn.py", "mnist_rnn.py"])
def test_example_smoke(script):
    # One thread: on a loaded 2-core CI machine, two spinning OpenMP threads can be 20x slower.
    out = run_example(script, "--embedded", "--epochs", "1", "--fraction", "0.2", "--threads", "1")
    assert "embedded MNIST subset" in out and "1000 training, 1000 test images" in out
    m = re.search(r"Test accuracy: (\d\.\d+)", out)
    assert m, out
    assert 0.3 < float(m.group(1)) <= 1.0  # 1000 images, 1 epoch: well above chance


def test_example_help():
    out = run_example("mnist_cnn.py", "--help")
    for flag in ("--data", "--epochs", "--batch-size", "--fraction", "--threads"):
        assert flag in out


def test_package_module_entry_point():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-m", "nncore.examples.mnist_rnn", "--help"],
                       capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert p.returncode == 0 and "SimpleRNN" in p.stdout, p.stderr


@pytest.mark.slow
def test_main_job_reaches_99_percent(mnist_dir):
    """The promise: the Keras MNIST CNN reaches 99.0% test accuracy on full MNIST after 5 epochs.

    Like Keras itself, a single run lands within about 0.1% either side of 99.0% depending on the
    seed (measured on this kernel set: seeds 0-4 gave 98.94, 99.01, 99.19, 98.96, 98.99), so one
    seed proves little either way: the check is the mean over seeds 0-4, with a floor for every
    run. Each run is bitwise reproducible; about 25 s each on a quiet 2-core machine.
    Deselect with -m "not slow"."""
    accs = []
    for seed in range(5):
        out = run_example("mnist_cnn.py", "--data", str(mnist_dir), "--seed", str(seed),
                          timeout=1800)
        accs.append(float(re.search(r"Test accuracy: (\d\.\d+)", out).group(1)))
    assert min(accs) >= 0.985, accs
    assert sum(accs) / len(accs) >= 0.990, accs
