"""Smoke runs of the main job and the RNN example: a fraction of the embedded subset, one epoch, in
a subprocess (as a user runs them). They need nncore's Keras API (nncore.layers / nncore.models)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, require


def run_example(script: str, *args: str, timeout: float = 120) -> str:
    # The child imports the same nncore as this process (installed, or the dev tree on PYTHONPATH).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("NNCORE_DATA", None)
    p = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args],
                       capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p.stdout


@pytest.mark.parametrize("script", ["mnist_cnn.py", "mnist_rnn.py"])
def test_example_smoke(script, tmp_path):
    # One thread: on a loaded 2-core CI machine, two spinning pool threads can be 20x slower.
    extra = ("--out-dir", str(tmp_path)) if script == "mnist_cnn.py" else ()
    out = run_example(script, "--embedded", "--epochs", "1", "--fraction", "0.2", "--threads", "1",
                      *extra)
    assert "embedded MNIST subset" in out and "1000 training, 1000 test images" in out
    m = re.search(r"Test accuracy: (\d\.\d+)", out)
    assert m, out
    assert 0.3 < float(m.group(1)) <= 1.0  # 1000 images, 1 epoch: well above chance
    if script == "mnist_cnn.py":
        if importlib.util.find_spec("matplotlib") is None:
            assert 'Figures: none written (they need matplotlib: pip install "nncore[plot]")' in out
            return
        names = ("history", "confusion", "ig")
        for k in names:
            data = (tmp_path / f"mnist_cnn_{k}.png").read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert "Figures: training curves " + str(tmp_path / "mnist_cnn_history.png") in out
        m = re.search(r"completeness residual at most (\d+\.\d+)% of the score difference", out)
        assert m and float(m.group(1)) < 1.0, out


def test_main_job_without_figures(tmp_path):
    out = run_example("mnist_cnn.py", "--embedded", "--epochs", "1", "--fraction", "0.05",
                      "--threads", "1", "--no-figures", "--out-dir", str(tmp_path))
    assert "Test accuracy: " in out and "Figures" not in out
    assert not list(tmp_path.iterdir())


def test_example_help():
    out = run_example("mnist_cnn.py", "--help")
    for flag in ("--data", "--epochs", "--batch-size", "--fraction", "--threads"):
        assert flag in out


def test_package_module_entry_point():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-m", "nncore.examples.mnist_rnn", "--help"],
                       capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert p.returncode == 0 and "SimpleRNN" in p.stdout, p.stderr


# The accuracy claim (README, the main job's output): the main job's CNN, 5 epochs, full MNIST,
# batch 32, Adam: nncore's mean test accuracy is not more than 0.15 percentage points below
# TensorFlow/Keras's mean measured with the same protocol. History, in bench/RESULTS.md: a
# two-sided claim fixed first ("within 0.15 points", seeds 0-4) failed because nncore was 0.298
# points higher; this one-sided claim was then fixed in advance (bench/accuracy_claim.md) and
# held on fresh seeds (nncore 5-9: 0.98994, Keras 5-14: 0.98850). As fixed there, this test's
# reference is Keras's mean over all fifteen seeds 0-14 measured with that protocol.
KERAS_MEAN_ACC = 0.98797  # Keras seeds 0-14, bench/accuracy_runs.jsonl (TensorFlow 2.21)
PASS_MARK_POINTS = 0.15


@pytest.mark.slow
def test_main_job_reaches_keras_accuracy(mnist_dir):
    """All five seeds of the claim, run as a user runs the main job. Each run is bitwise
    reproducible on a given CPU path (AVX-512, AVX2, generic give different roundings, hence
    slightly different accuracies); the test runs on whichever path this CPU takes, including
    ones the Keras comparison was not measured beside. Five runs, because the claim is about the
    five-seed mean (on a quiet 2-core machine about a minute each; not timed on a quiet one yet).
    Deselect with -m "not slow".

    As measured (bench/RESULTS.md) on Zen 3 / AVX2, nncore's mean over seeds 0-4 is 0.98990,
    0.19 points above the Keras reference.
    """
    accs = []
    for seed in range(5):
        out = run_example("mnist_cnn.py", "--data", str(mnist_dir), "--seed", str(seed),
                          timeout=1800)
        assert "60000 training, 10000 test images" in out, out
        accs.append(float(re.search(r"Test accuracy: (\d\.\d+)", out).group(1)))
        # the job states the claim with the same Keras number this test checks against
        assert f"{100 * KERAS_MEAN_ACC:.2f}%" in out and "0.15 points below" in out, out
    mean = sum(accs) / len(accs)
    assert (KERAS_MEAN_ACC - mean) * 100 <= PASS_MARK_POINTS, (accs, mean, KERAS_MEAN_ACC)


def test_cross_validation_example():
    require("sklearn")
    out = run_example("cross_validation.py", "--samples", "300", "--folds", "5", "--epochs", "3",
                      "--threads", "1")
    assert "300 images of the embedded MNIST subset, 5-fold stratified" in out
    rows = re.findall(r"(no regularization|L2 0\.005): held-out accuracy (\d+\.\d+)% ± (\d+\.\d+)"
                      r"  \(training-set accuracy (\d+\.\d+)%", out)
    assert [r[0] for r in rows] == ["no regularization", "L2 0.005"], out
    for _, mean, std, train in rows:
        assert 30 < float(mean) <= 100 and 0 <= float(std) < 30 and float(train) > 30
