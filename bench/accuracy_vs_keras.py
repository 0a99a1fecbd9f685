"""The accuracy claim, measured: nncore's main job against TensorFlow/Keras with the same protocol.

The claim (fixed before any run): the seed CNN of the main job (Conv2D 32 - MaxPool - Conv2D 64 -
MaxPool - Conv2D 64 - Flatten - Dense 64 - Dense 10 softmax), trained 5 epochs on full MNIST with
batch 32 and Adam (Keras defaults), inputs scaled to [0, 1], reaches Keras's accuracy: over seeds
0-4, nncore's mean test accuracy is within 0.15 percentage points of TensorFlow/Keras's mean
measured with the same protocol.

Both frameworks run the same Keras program (nncore through its main job,
`python -m nncore.examples.mnist_cnn --seed S`, exactly as tests/test_examples.py runs it; Keras
the same layers, compile and fit call, seeded with keras.utils.set_random_seed(S) and op
determinism on). Each run is its own subprocess on --threads threads; the runs alternate
frameworks (Keras seed 0, nncore seed 0, Keras seed 1, ...), and the 1-minute load average at the
start of each run is recorded with it. Accuracy, not time, is the result here (times are printed
only to show what a run costs).

    flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        PYTHONPATH=python python bench/accuracy_vs_keras.py --data DIR

The markdown goes to bench/results_accuracy.md (--out); bench/make_results.py folds it into
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _harness import cpu_model, load_1min  # noqa: E402

PASS_MARK_POINTS = 0.15  # the claim's tolerance, in percentage points of test accuracy


def keras_worker(data: str, seed: int, threads: int, epochs: int, batch_size: int) -> float:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow import keras

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    sys.path.insert(0, str(ROOT / "python"))
    from nncore.datasets import mnist  # the numpy-only IDX loader: the same arrays for both

    (x_train, y_train), (x_test, y_test) = mnist.load_data(data)
    x_train = (x_train.astype("float32") / 255.0).reshape(-1, 28, 28, 1)
    x_test = (x_test.astype("float32") / 255.0).reshape(-1, 28, 28, 1)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)
    return float(model.evaluate(x_test, y_test, verbose=0)[1])


def run(fw: str, args, seed: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"),
                                                      env.get("PYTHONPATH")]))
    env.pop("NNCORE_DATA", None)
    if fw == "nncore":
        cmd = [sys.executable, "-m", "nncore.examples.mnist_cnn", "--data", args.data,
               "--seed", str(seed), "--threads", str(args.threads), "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size)]
    else:
        cmd = [sys.executable, __file__, "--keras-worker", "--data", args.data, "--seed",
               str(seed), "--threads", str(args.threads), "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size)]
    load, t0 = load_1min(), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    m = re.search(r"Test accuracy: (\d\.\d+)", p.stdout)
    if p.returncode != 0 or not m:
        raise SystemExit(f"{fw} seed {seed} failed (exit {p.returncode}):\n"
                         + p.stdout[-2000:] + p.stderr[-3000:])
    return {"framework": fw, "seed": seed, "acc": float(m.group(1)), "wall_s": wall,
            "load_1min": load}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="directory with the full MNIST IDX files")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results_accuracy.md"))
    ap.add_argument("--keras-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.keras_worker:
        acc = keras_worker(args.data, args.seed, args.threads, args.epochs, args.batch_size)
        print(f"Test accuracy: {acc:.4f}")
        return

    command = " ".join(shlex.quote(a) for a in ["python", "bench/accuracy_vs_keras.py",
                                                 *sys.argv[1:]])
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    for seed in seeds:
        for fw in ("keras", "nncore"):
            r = run(fw, args, seed)
            runs.append(r)
            print(json.dumps(r), flush=True)

    import tensorflow as tf

    import nncore
    from nncore import _core

    acc = {fw: [r["acc"] for r in runs if r["framework"] == fw] for fw in ("keras", "nncore")}
    mean = {fw: statistics.mean(v) for fw, v in acc.items()}
    diff_points = (mean["nncore"] - mean["keras"]) * 100
    verdict = "holds" if abs(diff_points) <= PASS_MARK_POINTS else "FAILS"
    lines = [
        "# Accuracy: nncore's main job against TensorFlow/Keras (bench/accuracy_vs_keras.py)",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs; nncore {nncore.__version__} "
        f"on its {_core.get_isa()} path ({_core.sgemm_kernel_name()}); "
        f"TensorFlow {tf.__version__}; Python {platform.python_version()}",
        f"- command: `{command}` (run as `flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE "
        f"-u OPENBLAS_L2_SIZE PYTHONPATH=python python ...`)",
        f"- protocol: the main job's CNN, {args.epochs} epochs, full MNIST (60000 train, 10000 "
        f"test), batch {args.batch_size}, Adam defaults, inputs / 255, seeds {args.seeds}, "
        f"{args.threads} threads, one subprocess per run, Keras and nncore alternating",
        f"- claim (fixed before the run): nncore's mean over the seeds is within "
        f"{PASS_MARK_POINTS} points of Keras's mean",
        "",
        "| seed | Keras test acc | nncore test acc | Keras run (s, load) | nncore run (s, load) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for seed in seeds:
        k = next(r for r in runs if r["framework"] == "keras" and r["seed"] == seed)
        n = next(r for r in runs if r["framework"] == "nncore" and r["seed"] == seed)
        lines.append(f"| {seed} | {k['acc']:.4f} | {n['acc']:.4f} | {k['wall_s']:.0f} "
                     f"({k['load_1min']:.1f}) | {n['wall_s']:.0f} ({n['load_1min']:.1f}) |")
    lines += [
        f"| **mean** | **{mean['keras']:.5f}** | **{mean['nncore']:.5f}** | | |",
        "",
        f"nncore - Keras = {diff_points:+.3f} points; the claim (|difference| <= "
        f"{PASS_MARK_POINTS}) {verdict}. Keras ranges {min(acc['keras']):.4f}-"
        f"{max(acc['keras']):.4f}, nncore {min(acc['nncore']):.4f}-{max(acc['nncore']):.4f}.",
        "",
    ]
    text = "\n".join(lines)
    pathlib.Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
