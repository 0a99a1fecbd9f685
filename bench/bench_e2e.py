"""End-to-end benchmark: the classic Keras MNIST CNN and a SimpleRNN(128), trained with nncore,
PyTorch and TensorFlow/Keras, the frameworks alternating (nncore, torch, tf, nncore, torch, tf,
... for --repeats rounds).

For each framework and model it reports seconds per training epoch (full MNIST, batch 32, --threads
threads) as the median over the runs with its range, the whole fit call per epoch, test accuracy
after training, peak RSS, import time and single-image predict latency (batch 1, 1 thread, median of
many calls), and the 1-minute load average sampled during each run. Keras and nncore are timed as a
user calls them: one model.fit(epochs=N) per run, epoch times from a callback (Keras pays its fit
set-up once, in the first epoch); PyTorch runs its usual hand-written loop. Every measurement runs
in its own subprocess so imports and thread pools do not interfere; frameworks that are not
installed are skipped.

    flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        PYTHONPATH=python python bench/bench_e2e.py --epochs 5 --repeats 3
    python bench/bench_e2e.py --quick            # a fraction of an epoch, for smoke runs

The markdown table goes to bench/results_e2e.md (--out).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _harness import fmt_spread, spread  # noqa: E402
FRAMEWORKS = ("nncore", "torch", "tf")
MODELS = ("cnn", "rnn")


# ----------------------------------------------------------------------------------------------
# Workers (run in a fresh subprocess each)
# ----------------------------------------------------------------------------------------------

def keras_style_model(keras, kind: str):
    """The same Keras program for keras and nncore (`keras` is either module)."""
    if kind == "cnn":
        from nncore.examples.mnist_cnn import seed_cnn  # the main job's network

        model = seed_cnn(keras)
    else:
        model = keras.Sequential([
            keras.Input((28, 28)),
            keras.layers.SimpleRNN(128),
            keras.layers.Dense(10, activation="softmax"),
        ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _inputs(x: np.ndarray, kind: str) -> np.ndarray:
    x = x.astype(np.float32) / 255.0
    return x.reshape(-1, 28, 28, 1) if kind == "cnn" else x.reshape(-1, 28, 28)


class KerasLike:
    """nncore and TensorFlow/Keras share one driver: the program is the same."""

    def __init__(self, fw: str, kind: str, threads: int):
        t0 = time.perf_counter()
        if fw == "tf":
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import tensorflow as tf
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
            from tensorflow import keras
            self.import_s = time.perf_counter() - t0
            keras.utils.set_random_seed(0)
            self.version = tf.__version__
            self.keras = keras
            self.tf = tf
        else:
            import nncore
            self.import_s = time.perf_counter() - t0
            nncore.set_num_threads(threads)
            self.version = nncore.__version__
            self.keras = nncore
            self.tf = None
            np.random.seed(0)
            if hasattr(nncore, "utils") and hasattr(nncore.utils, "set_random_seed"):
                nncore.utils.set_random_seed(0)
        self.fw, self.kind = fw, kind
        self.model = keras_style_model(self.keras, kind)

    def train(self, x, y, batch_size, epochs) -> list:
        """One model.fit(epochs=...) call, as a user makes it; seconds per epoch from a callback."""
        if self.tf is not None:
            base = self.keras.callbacks.Callback
        else:
            from nncore.callbacks import Callback as base

        class EpochTimer(base):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self.t0)

        timer = EpochTimer()
        self.model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[timer])
        return timer.times

    def accuracy(self, x, y) -> float:
        return float(self.model.evaluate(x, y, batch_size=256, verbose=0)[1])

    def predict_fn(self, x1):
        if self.tf is not None:
            # The fastest way to run a Keras model on one image: a compiled tf.function.
            # model(x) (eager) and model.predict() (large per-call setup) are reported as extras.
            fn = self.tf.function(lambda x: self.model(x, training=False))
            x1t = self.tf.constant(x1)
            return lambda: fn(x1t).numpy()
        return lambda: self.model.predict(x1, verbose=0)

    def extra_predict_fns(self, x1):
        if self.tf is None:
            return {}
        return {"model(x)": lambda: self.model(x1, training=False).numpy(),
                "model.predict": lambda: self.model.predict(x1, verbose=0)}


class Torch:
    def __init__(self, fw: str, kind: str, threads: int):
        t0 = time.perf_counter()
        import torch
        from torch import nn
        self.import_s = time.perf_counter() - t0
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.torch, self.version, self.kind = torch, torch.__version__, kind
        if kind == "cnn":
            self.model = nn.Sequential(
                nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
                nn.Linear(64 * 3 * 3, 64), nn.ReLU(), nn.Linear(64, 10))
            for m in self.model:
                if isinstance(m, (nn.Conv2d, nn.Linear)):  # Keras: glorot_uniform, zero bias
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
        else:
            self.model = _TorchRNN(nn)
        # Softmax + sparse categorical cross-entropy == CrossEntropyLoss on logits.
        self.loss = nn.CrossEntropyLoss()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)

    def _t(self, x):
        t = self.torch.from_numpy(x)
        return t.permute(0, 3, 1, 2).contiguous() if self.kind == "cnn" else t  # NHWC -> NCHW

    def train(self, x, y, batch_size, epochs) -> list:
        times = []
        for _ in range(epochs):
            t0 = time.perf_counter()
            self.train_epoch(x, y, batch_size)
            times.append(time.perf_counter() - t0)
        return times

    def train_epoch(self, x, y, batch_size):
        torch = self.torch
        if not hasattr(self, "_xt") or self._xt_src is not x:
            self._xt, self._yt, self._xt_src = self._t(x), torch.from_numpy(y.astype(np.int64)), x
        self.model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.model(self._xt[idx]), self._yt[idx])
            loss.backward()
            self.opt.step()

    def accuracy(self, x, y) -> float:
        torch = self.torch
        self.model.eval()
        xt, correct = self._t(x), 0
        with torch.inference_mode():
            for i in range(0, len(x), 256):
                correct += int((self.model(xt[i:i + 256]).argmax(1).numpy() == y[i:i + 256]).sum())
        return correct / len(x)

    def predict_fn(self, x1):
        self.model.eval()
        xt = self._t(x1)

        def run():
            with self.torch.inference_mode():
                return self.torch.softmax(self.model(xt), 1)
        return run

    def extra_predict_fns(self, x1):
        return {}


def _TorchRNN(nn):
    class RNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(28, 128, batch_first=True)  # tanh
            self.fc = nn.Linear(128, 10)
            # Keras SimpleRNN: glorot_uniform kernel, orthogonal recurrent kernel, zero bias.
            nn.init.xavier_uniform_(self.rnn.weight_ih_l0)
            nn.init.orthogonal_(self.rnn.weight_hh_l0)
            nn.init.zeros_(self.rnn.bias_ih_l0)
            nn.init.zeros_(self.rnn.bias_hh_l0)
            nn.init.xavier_uniform_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])
    return RNN()


def _make(fw, kind, threads):
    return Torch(fw, kind, threads) if fw == "torch" else KerasLike(fw, kind, threads)


def _median_latency_ms(fn, budget_s=2.0, min_calls=30, max_calls=2000) -> float:
    for _ in range(10):
        fn()
    times, t_end = [], time.perf_counter() + budget_s
    while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def _peak_rss_mb() -> float:
    # VmHWM belongs to this process image (ru_maxrss may carry the parent's peak over fork+exec).
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args) -> dict:
    """One measurement in this (fresh) process; returns a dict that is printed as JSON."""
    fw, kind = args.framework, args.model
    probe = {"nncore": "nncore.layers", "torch": "torch", "tf": "tensorflow"}[fw]
    try:
        if importlib.util.find_spec(probe.split(".")[0]) is None or (
                fw == "nncore" and importlib.util.find_spec(probe) is None):
            return {"skipped": f"{probe} not installed"}
    except ImportError as e:
        return {"skipped": str(e)}
    with np.load(args.data_npz, allow_pickle=False) as z:
        x_train, y_train, x_test, y_test = (z[k] for k in ("x_train", "y_train", "x_test",
                                                              "y_test"))
    n = max(args.batch_size, int(round(len(x_train) * args.fraction)))
    x_train, y_train = _inputs(x_train[:n], kind), y_train[:n]
    x_test = _inputs(x_test, kind)
    if args.phase == "latency":
        runner = _make(fw, kind, 1)
        out = {"latency_ms": _median_latency_ms(runner.predict_fn(x_test[:1]))}
        out["latency_extra_ms"] = {name: _median_latency_ms(fn, budget_s=1.5, min_calls=20)
                                   for name, fn in runner.extra_predict_fns(x_test[:1]).items()}
        return out
    runner = _make(fw, kind, args.threads)
    t0 = time.perf_counter()
    epoch_s = runner.train(x_train, y_train, args.batch_size, args.epochs)
    fit_s = time.perf_counter() - t0
    acc = runner.accuracy(x_test, y_test)
    return {
        "version": runner.version,
        "import_s": runner.import_s,
        "epoch_s": epoch_s,
        "fit_s": fit_s,
        "train_images": n,
        # the median epoch resists a stray busy moment on a shared machine
        "s_per_full_epoch": float(np.median(epoch_s)) * 60000 / n,
        "fit_s_per_full_epoch": fit_s / len(epoch_s) * 60000 / n,
        "test_acc": acc,
        "peak_rss_mb": _peak_rss_mb(),
    }


# ----------------------------------------------------------------------------------------------
# Orchestrator
# ----------------------------------------------------------------------------------------------

def _mnist_module():
    try:
        from nncore.datasets import mnist
        return mnist
    except ImportError:  # nncore not built/installed: the loader itself needs only numpy
        path = ROOT / "python" / "nncore" / "datasets" / "mnist.py"
        spec = importlib.util.spec_from_file_location("_nncore_mnist", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


def _shared_mnist_dirs():
    yield ROOT.parent / "shared" / "data" / "mnist"
    git = ROOT / ".git"
    if git.is_file():  # a git worktree: look beside the main checkout
        gitdir = git.read_text().partition("gitdir:")[2].strip()
        if gitdir:
            yield pathlib.Path(gitdir).resolve().parents[2].parent / "shared" / "data" / "mnist"


def _load_mnist(data, allow_embedded):
    mnist = _mnist_module()
    if data:
        return mnist.load_data(data), str(data)
    found = mnist.find()
    if found is None:
        found = next((d for d in _shared_mnist_dirs() if mnist.find(d) is not None), None)
    if found is not None:
        return mnist.load_data(found), str(found)
    if allow_embedded:
        return mnist.load_embedded(), "embedded subset"
    raise SystemExit("full MNIST not found: pass --data DIR or set NNCORE_DATA (or use --quick)")


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def _run_worker(args, fw, kind, phase, data_npz) -> dict:
    threads = 1 if phase == "latency" else args.threads
    cmd = [args.python or sys.executable, str(pathlib.Path(__file__).resolve()), "--worker",
           "--framework", fw, "--model", kind, "--phase", phase, "--data-npz", data_npz,
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--threads", str(threads), "--fraction", str(args.fraction)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2")
    pp = str(ROOT / "python")
    env["PYTHONPATH"] = pp + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # The 1-minute load average, sampled every 2 s while the worker runs (and once at its start).
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        while True:
            try:
                p.wait(timeout=2.0)
                break
            except subprocess.TimeoutExpired:
                loads.append(os.getloadavg()[0])
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        tail = (stderr or stdout).strip().splitlines()[-5:]
        return {"error": f"exit {p.returncode}: " + " | ".join(tail)}
    return dict(json.loads(lines[-1][len("RESULT "):]),
                **{f"load_{phase}": {"mean": sum(loads) / len(loads), "max": max(loads)}})


def _fmt(v, spec):
    return "–" if v is None else format(v, spec)


def _table(results, kind) -> list[str]:
    """One row per framework from its runs: medians over the runs with their range."""
    rows = [
        "| framework | version | runs | s/epoch: median epoch of each run, median of runs "
        "(range) | fit call / epoch (range) | first epoch (s) | test acc (range) "
        "| 1-min load during the runs | peak RSS (MB) | import (s) "
        "| predict 1 image (ms, 1 thread) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fw in FRAMEWORKS:
        runs = results.get((fw, kind))
        if not runs:
            continue
        bad = [r for r in runs if "skipped" in r or "error" in r]
        if bad:
            rows.append(f"| {fw} | {bad[0].get('skipped') or bad[0].get('error')} "
                        "| | | | | | | | | |")
            continue
        epoch = spread([r["s_per_full_epoch"] for r in runs])
        fit = spread([r["fit_s_per_full_epoch"] for r in runs])
        first = spread([r["epoch_s"][0] * 60000 / r["train_images"] for r in runs])
        acc = spread([r["test_acc"] for r in runs])
        loads = ", ".join(f"{r['load_train']['mean']:.1f}" for r in runs)
        lats = [r["latency_ms"] for r in runs if r.get("latency_ms") is not None]
        lat = fmt_spread(spread(lats), ".3f") if lats else "–"
        extra = runs[0].get("latency_extra_ms") or {}
        if extra:
            lat += " (" + ", ".join(
                f"{k}: {spread([r['latency_extra_ms'][k] for r in runs])['median']:.2f}"
                for k in extra) + ")"
        rows.append(
            f"| {fw} | {runs[0]['version']} | {len(runs)} "
            f"| {epoch['median']:.2f} ({epoch['min']:.2f}-{epoch['max']:.2f}) "
            f"| {fit['median']:.2f} ({fit['min']:.2f}-{fit['max']:.2f}) | {first['median']:.2f} "
            f"| {acc['median']:.4f} ({acc['min']:.4f}-{acc['max']:.4f}) | {loads} "
            f"| {max(r['peak_rss_mb'] for r in runs):.0f} "
            f"| {spread([r['import_s'] for r in runs])['median']:.2f} | {lat} |")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3,
                    help="rounds: each framework runs this many times, alternating")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fraction", type=float, default=None,
                    help="fraction of the training set per epoch (times scaled to a full epoch)")
    ap.add_argument("--quick", action="store_true", help="5%% of an epoch, for smoke runs")
    ap.add_argument("--data", default=None, help="directory with the MNIST IDX files")
    ap.add_argument("--python", default=None, help="workers' interpreter (default: this one)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results_e2e.md"))
    ap.add_argument("--no-latency", action="store_true")
    # worker-only arguments
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--framework", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--phase", default="train", help=argparse.SUPPRESS)
    ap.add_argument("--data-npz", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.fraction is None:
        args.fraction = 0.05 if args.quick else 1.0
    if not 0 < args.fraction <= 1:
        ap.error("--fraction must be in (0, 1]")

    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return

    command = " ".join(shlex.quote(a) for a in ["python", "bench/bench_e2e.py", *sys.argv[1:]])
    frameworks = [f for f in args.frameworks.split(",") if f]
    kinds = [k for k in args.models.split(",") if k]
    for f in frameworks:
        if f not in FRAMEWORKS:
            ap.error(f"unknown framework {f!r} (choose from {FRAMEWORKS})")
    for k in kinds:
        if k not in MODELS:
            ap.error(f"unknown model {k!r} (choose from {MODELS})")
    ((x_train, y_train), (x_test, y_test)), source = _load_mnist(args.data, args.quick)
    print(f"data: {source} ({len(x_train)} train, {len(x_test)} test); fraction {args.fraction}; "
          f"epochs {args.epochs}; batch {args.batch_size}; threads {args.threads}", flush=True)
    results = {(fw, kind): [] for kind in kinds for fw in frameworks}
    with tempfile.TemporaryDirectory() as tmp:
        data_npz = os.path.join(tmp, "mnist.npz")
        np.savez(data_npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        for kind in kinds:
            for rep in range(args.repeats):  # A B C A B C ...: drifting load hits all alike
                for fw in frameworks:
                    if any("skipped" in r or "error" in r for r in results[(fw, kind)]):
                        continue
                    r = _run_worker(args, fw, kind, "train", data_npz)
                    if "skipped" not in r and "error" not in r and not args.no_latency:
                        lat = _run_worker(args, fw, kind, "latency", data_npz)
                        r.update(lat if "error" not in lat else {"latency_error": lat["error"]})
                    results[(fw, kind)].append(r)
                    print(f"{kind} {fw} run {rep + 1}: {json.dumps(r)}", flush=True)

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        "# End-to-end MNIST benchmark (bench/bench_e2e.py)",
        "",
        f"- date: {now}",
        f"- machine: {_cpu_model()}, {os.cpu_count()} logical CPUs, {platform.python_version()}",
        f"- command: `{command}` (run as `flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE "
        f"-u OPENBLAS_L2_SIZE PYTHONPATH=python {args.python or sys.executable} ...`)",
        f"- data: {source}; "
        + (f"{args.fraction:g} of the training set per epoch (s/epoch scaled to 60000 images)"
           if args.fraction < 1 else "the full training set per epoch")
        + f"; batch {args.batch_size}; training on {args.threads} threads; latency on 1 thread "
        "(median of many single-image calls: nncore `model.predict`, PyTorch forward + softmax "
        "under inference_mode, Keras a `tf.function` of `model(x)`; eager `model(x)` and "
        "`model.predict` in brackets)",
        f"- {args.repeats} rounds, frameworks alternating within each ({', '.join(frameworks)}, "
        "then again); every run a fresh process. Keras and nncore: one `model.fit(epochs="
        f"{args.epochs})` per run, epoch times from a callback; PyTorch: its training loop. "
        "'fit call / epoch' is the whole fit call divided by the epochs (set-up included); "
        "'first epoch' shows the set-up",
        "- peak RSS is the worker process's (includes the dataset and the framework)",
        "- 1-min load average: the mean of samples every 2 s during each training run, in run "
        "order (the machine has 2 cores: above ~0.5 means contention)",
        "",
    ]
    names = {"cnn": "CNN (Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10)",
             "rnn": "SimpleRNN(128) over the 28 rows + Dense(10)"}
    for kind in kinds:
        lines += [f"## {names[kind]}", "", *_table(results, kind), ""]
    text = "\n".join(lines)
    pathlib.Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
