"""The accuracy claim, measured: nncore's main job against TensorFlow/Keras with the same protocol.

The claim (fixed before any run): the seed CNN of the main job (Conv2D 32 - MaxPool - Conv2D 64 -
MaxPool - Conv2D 64 - Flatten - Dense 64 - Dense 10 softmax), trained 5 epochs on full MNIST with
batch 32 and Adam (Keras defaults), inputs scaled to [0, 1], reaches Keras's accuracy: over seeds
0-4, nncore's mean test accuracy is within 0.15 percentage points of TensorFlow/Keras's mean
measured with the same protocol. That failed (nncore 0.30 points above). The second claim, fixed in
bench/accuracy_claim.md before its runs, uses fresh seeds (Keras 5-14, nncore 5-9) and is
one-sided (`--claim at-least`): nncore's mean >= Keras's mean - 0.15 points.

Both frameworks run the same Keras program (nncore through its main job,
`python -m nncore.examples.mnist_cnn --seed S`, exactly as tests/test_examples.py runs it; Keras
the same layers, compile and fit call, seeded with keras.utils.set_random_seed(S) and op
determinism on). Each run is its own subprocess; Keras on --threads threads, nncore on
--nncore-threads (its results are bitwise identical for any thread count, so this changes only
its speed). The runs alternate frameworks (Keras seed 0, nncore seed 0, Keras seed 1, ...), or
with --concurrent run as two streams side by side (Keras seeds, nncore seeds), for a loaded
machine. Every run is appended to --runs (JSON lines) as it finishes, and a run already recorded
there with the same protocol is not repeated; the report is built from those records. Accuracy,
not time, is the result here (times only show what a run cost, with the load at its start).

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
import threading
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
    from nncore.examples.mnist_cnn import seed_cnn

    (x_train, y_train), (x_test, y_test) = mnist.load_data(data)
    x_train = (x_train.astype("float32") / 255.0).reshape(-1, 28, 28, 1)
    x_test = (x_test.astype("float32") / 255.0).reshape(-1, 28, 28, 1)
    model = seed_cnn(keras)  # the main job's network, built by Keras
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)
    return float(model.evaluate(x_test, y_test, verbose=0)[1])


def _key(r: dict) -> tuple:
    """Runs with equal keys are the same measurement (nncore: any thread count, same bits)."""
    threads = r["threads"] if r["framework"] == "keras" else None
    return (r["framework"], r["seed"], r["epochs"], r["batch_size"], threads)


def run(fw: str, args, seed: int) -> dict:
    threads = args.threads if fw == "keras" else args.nncore_threads
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"),
                                                      env.get("PYTHONPATH")]))
    env.pop("NNCORE_DATA", None)
    if fw == "nncore":
        cmd = [sys.executable, "-m", "nncore.examples.mnist_cnn", "--data", args.data,
               "--seed", str(seed), "--threads", str(threads), "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size), "--no-figures"]  # figures change nothing trained
    else:
        cmd = [sys.executable, __file__, "--keras-worker", "--data", args.data, "--seed",
               str(seed), "--threads", str(threads), "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size)]
    load, t0 = load_1min(), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    m = re.search(r"Test accuracy: (\d\.\d+)", p.stdout)
    if p.returncode != 0 or not m:
        raise SystemExit(f"{fw} seed {seed} failed (exit {p.returncode}):\n"
                         + p.stdout[-2000:] + p.stderr[-3000:])
    return {"framework": fw, "seed": seed, "acc": float(m.group(1)), "wall_s": wall,
            "load_1min": load, "threads": threads, "epochs": args.epochs,
            "batch_size": args.batch_size, "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="directory with the full MNIST IDX files")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--keras-seeds", default=None, help="Keras's seeds (default: --seeds)")
    ap.add_argument("--nncore-seeds", default=None, help="nncore's seeds (default: --seeds)")
    ap.add_argument("--claim", choices=("within", "at-least"), default="within",
                    help="within: |nncore mean - Keras mean| <= the mark (the first claim); "
                         "at-least: nncore mean >= Keras mean - the mark (the second claim, "
                         "bench/accuracy_claim.md)")
    ap.add_argument("--threads", type=int, default=2, help="Keras's threads")
    ap.add_argument("--nncore-threads", type=int, default=None, help="default: --threads")
    ap.add_argument("--frameworks", default="keras,nncore",
                    help="measure only these (to spread seeds over processes); the report "
                         "needs both, from --runs")
    ap.add_argument("--concurrent", action="store_true",
                    help="run the Keras seeds and the nncore seeds as two parallel streams")
    ap.add_argument("--runs", default=str(ROOT / "bench" / "accuracy_runs.jsonl"),
                    help="JSON-lines record of every run (read to resume, appended to)")
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
    if args.nncore_threads is None:
        args.nncore_threads = args.threads
    seeds_of = {fw: [int(s) for s in (getattr(args, fw + "_seeds") or args.seeds).split(",")]
                for fw in ("keras", "nncore")}
    runs_file = pathlib.Path(args.runs)
    known = {}
    if runs_file.exists():
        for line in runs_file.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                known[_key(r)] = r
    lock = threading.Lock()

    def measure(fw, seed):
        probe = {"framework": fw, "seed": seed, "epochs": args.epochs,
                 "batch_size": args.batch_size, "threads": args.threads}
        if _key(probe) in known:
            print(f"{fw} seed {seed}: recorded in {runs_file.name}, not repeated", flush=True)
            return
        r = run(fw, args, seed)
        with lock:
            known[_key(r)] = r
            with runs_file.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(json.dumps(r), flush=True)

    frameworks = [f for f in ("keras", "nncore") if f in args.frameworks.split(",")]
    if args.concurrent:
        streams = [threading.Thread(target=lambda fw=fw: [measure(fw, s) for s in seeds_of[fw]])
                   for fw in frameworks]
        for t in streams:
            t.start()
        for t in streams:
            t.join()
    else:
        for seed in sorted(set(seeds_of["keras"]) | set(seeds_of["nncore"])):
            for fw in frameworks:
                if seed in seeds_of[fw]:
                    measure(fw, seed)

    def key_of(fw, s):
        return _key({"framework": fw, "seed": s, "epochs": args.epochs,
                     "batch_size": args.batch_size, "threads": args.threads})

    missing = [(fw, s) for fw in ("keras", "nncore") for s in seeds_of[fw]
               if key_of(fw, s) not in known]
    if missing:
        print(f"not reporting yet: no record of {missing} in {runs_file}")
        return
    runs = [known[key_of(fw, s)] for fw in ("keras", "nncore") for s in seeds_of[fw]]
    seeds = sorted(set(seeds_of["keras"]) | set(seeds_of["nncore"]))

    import tensorflow as tf

    import nncore
    from nncore import _core

    acc = {fw: [r["acc"] for r in runs if r["framework"] == fw] for fw in ("keras", "nncore")}
    mean = {fw: statistics.mean(v) for fw, v in acc.items()}
    diff_points = (mean["nncore"] - mean["keras"]) * 100
    if args.claim == "within":
        holds = abs(diff_points) <= PASS_MARK_POINTS
        claim_text = (f"nncore's mean over the seeds is within {PASS_MARK_POINTS} points of "
                      "Keras's mean")
        rule = f"|difference| <= {PASS_MARK_POINTS}"
    else:
        holds = diff_points >= -PASS_MARK_POINTS
        claim_text = (f"nncore's mean over its seeds is at least Keras's mean over its seeds "
                      f"minus {PASS_MARK_POINTS} points (fixed in bench/accuracy_claim.md)")
        rule = f"difference >= -{PASS_MARK_POINTS}"
    verdict = "holds" if holds else "FAILS"

    def spread(v):
        return statistics.stdev(v) * 100 if len(v) > 1 else float("nan")
    lines = [
        "# Accuracy: nncore's main job against TensorFlow/Keras (bench/accuracy_vs_keras.py)",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs; nncore {nncore.__version__} "
        f"on its {_core.get_isa()} path ({_core.sgemm_kernel_name()}); "
        f"TensorFlow {tf.__version__}; Python {platform.python_version()}",
        f"- command: `{command}` (with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
        "PYTHONPATH=python`; accuracy is the result, so on a shared machine it may run outside "
        "the benchmark lock)",
        f"- protocol: the main job's CNN, {args.epochs} epochs, full MNIST (60000 train, 10000 "
        f"test), batch {args.batch_size}, Adam defaults, inputs / 255, Keras seeds "
        f"{','.join(map(str, seeds_of['keras']))}, nncore seeds "
        f"{','.join(map(str, seeds_of['nncore']))}, one "
        f"subprocess per run; Keras on {args.threads} threads, nncore on the threads shown per "
        "run (same bits for any count); "
        + ("Keras and nncore seeds as two concurrent streams" if args.concurrent
           else "Keras and nncore alternating")
        + f"; runs recorded in bench/{runs_file.name} (dates there)",
        f"- claim (fixed before the run): {claim_text}",
        "",
        "| seed | Keras test acc | nncore test acc | Keras run (s, load at start) "
        "| nncore run (s, load at start, threads) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for seed in seeds:
        k = next((r for r in runs if r["framework"] == "keras" and r["seed"] == seed), None)
        n = next((r for r in runs if r["framework"] == "nncore" and r["seed"] == seed), None)
        kc = (f"{k['acc']:.4f} | {k['wall_s']:.0f} ({k['load_1min']:.1f})" if k
              else "- | -").split(" | ")
        nc = (f"{n['acc']:.4f} | {n['wall_s']:.0f} ({n['load_1min']:.1f}, {n['threads']})" if n
              else "- | -").split(" | ")
        lines.append(f"| {seed} | {kc[0]} | {nc[0]} | {kc[1]} | {nc[1]} |")
    lines += [
        f"| **mean** | **{mean['keras']:.5f}** | **{mean['nncore']:.5f}** | | |",
        "",
        f"nncore - Keras = {diff_points:+.3f} points; the claim ({rule}) {verdict}. Keras "
        f"ranges {min(acc['keras']):.4f}-{max(acc['keras']):.4f} (standard deviation "
        f"{spread(acc['keras']):.2f} points over {len(acc['keras'])} seeds), nncore "
        f"{min(acc['nncore']):.4f}-{max(acc['nncore']):.4f} ({spread(acc['nncore']):.2f} "
        f"points over {len(acc['nncore'])}).",
        "",
    ]
    text = "\n".join(lines)
    pathlib.Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
