"""Training step of the seed CNN (Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10, batch 32, Adam) on
an idle machine and with other CPU-bound processes running: nncore vs TensorFlow vs PyTorch.

Each framework lives in its own worker process (imported and warmed up once). The driver then
alternates, round after round and framework after framework, an idle measurement and one under
load: it starts --busy plain busy-loop processes (each stops itself after --busy-limit seconds
at the latest, and the driver kills it as soon as the measurement ends), tells the worker to
time --steps training steps, and stops the load. It prints seconds per 1000 steps (median over
the rounds), loaded/idle and nncore/TF per condition.

    flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        PYTHONPATH=python python bench/bench_contention.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

BUSY_LOOP = ("import time\nend = time.monotonic() + {limit}\n"
             "while time.monotonic() < end:\n    pass\n")


# ----------------------------------------------------------------------------------------------
# Worker: one framework, commands on stdin ("run"), one JSON line per command on stdout
# ----------------------------------------------------------------------------------------------

def worker(fw: str, threads: int, steps: int) -> None:
    from bench_e2e import KerasLike, Torch

    rng = np.random.default_rng(0)
    x = rng.random((steps * 32, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, steps * 32).astype(np.int32)
    driver = (Torch if fw == "torch" else KerasLike)(fw, "cnn", threads)
    driver.train(x, y, 32, 1)  # warm-up: builds, traces, allocates
    print(json.dumps({"ready": fw, "version": driver.version}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        # the epoch's own time (a callback for nncore and Keras: fit's per-call set-up is not a
        # training step's cost)
        dt = driver.train(x, y, 32, 1)[0]
        print(json.dumps({"s_per_1000": dt / steps * 1000}), flush=True)


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------

def start_busy(n: int, limit: float) -> list:
    code = BUSY_LOOP.format(limit=limit)
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def stop_busy(procs: list) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frameworks", default="nncore,tf,torch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200, help="training steps per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--busy", type=int, default=1, help="competing busy-loop processes")
    ap.add_argument("--busy-limit", type=float, default=300.0,
                    help="seconds after which a busy loop stops itself in any case")
    ap.add_argument("--compare", metavar="PYTHONPATH",
                    help="also time the nncore found on this path (e.g. an older build), as "
                         "'nncore-old', alternating with the others")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.steps)
        return

    from _harness import cpu_model, markdown_table

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    fws = [f for f in args.frameworks.split(",") if f]
    if args.compare:
        fws.insert(1, "nncore-old")
    workers, versions = {}, {}
    for fw in fws:
        wenv = dict(env, PYTHONPATH=args.compare) if fw == "nncore-old" else env
        p = subprocess.Popen([sys.executable, __file__, "--worker", fw.split("-")[0], "--threads",
                              str(args.threads), "--steps", str(args.steps)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=wenv)
        line = p.stdout.readline()
        if not line:
            print(f"{fw}: worker failed to start, skipped", file=sys.stderr)
            p.wait()
            continue
        workers[fw], versions[fw] = p, json.loads(line)["version"]

    times = {(fw, cond): [] for fw in workers for cond in ("idle", "loaded")}
    busy = []
    try:
        for r in range(args.rounds):
            for fw, p in workers.items():
                # Alternate which condition comes first, so a drift in background load is shared.
                for cond in (("idle", "loaded") if r % 2 == 0 else ("loaded", "idle")):
                    if cond == "loaded":
                        busy = start_busy(args.busy, args.busy_limit)
                        time.sleep(0.2)
                    p.stdin.write("run\n")
                    p.stdin.flush()
                    times[fw, cond].append(json.loads(p.stdout.readline())["s_per_1000"])
                    if busy:
                        stop_busy(busy)
                        busy = []
                    print(f"round {r}: {fw:>6} {cond:>6} {times[fw, cond][-1]:.2f} s/1000 steps",
                          file=sys.stderr, flush=True)
    finally:
        stop_busy(busy)
        for p in workers.values():
            p.stdin.close()
            p.wait()

    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for cond in ("idle", "loaded"):
        row = [cond if cond == "idle" else f"{args.busy} busy process(es)"]
        for fw in workers:
            row.append(f"{med[fw, cond]:.2f}")
        if "nncore" in workers and "tf" in workers:
            row.append(f"{med['nncore', cond] / med['tf', cond]:.2f}")
        rows.append(row)
    ratio = ["loaded / idle"] + [f"{med[fw, 'loaded'] / med[fw, 'idle']:.2f}x" for fw in workers]
    if "nncore" in workers and "tf" in workers:
        ratio.append("")
    rows.append(ratio)
    header = ["condition"] + [f"{fw} {versions[fw]}" for fw in workers]
    if "nncore" in workers and "tf" in workers:
        header.append("nncore / TF")
    load = os.getloadavg()
    print(f"Seed CNN training step, batch 32, Adam, {args.threads} threads, seconds per 1000 steps "
          f"(median of {args.rounds} rounds of {args.steps} steps); CPU {cpu_model()} "
          f"({os.cpu_count()} cores); load average at the end {load[0]:.1f}")
    print(markdown_table(header, rows))
    print("all samples: " + json.dumps({f"{fw} {c}": [round(t, 2) for t in v]
                                        for (fw, c), v in times.items()}))


if __name__ == "__main__":
    main()
