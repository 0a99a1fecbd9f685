"""Data-parallel training of the seed CNN (Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10 on
28x28x1, Adam) on this machine: 1 process x 2 threads vs 2 MPI ranks x 1 thread, at the same global
batch (32 by default: one rank of 32 rows, or two ranks of 16), so both do the same arithmetic per
step. The two configurations alternate, round after round; each round is a fresh launch that warms
up (one short fit) and then times one fit of --steps steps.

Reported per configuration (median over rounds, with the range): steps/s, ms per step, the time
per step spent in the gradient allreduce (wait + transfer, which includes waiting for the
slower rank; shown for the rank that waited least and the one that waited most), and, for the
2-rank launch, an allreduce microbenchmark of the gradient buffer (its size in bytes) and of
8 bytes on this host (shared memory), the inputs of the time-per-step model in
docs/DISTRIBUTED.md.

    flock /tmp/nncore-bench.lock env PYTHONPATH=python \\
        python bench/bench_distributed.py --rounds 3

(needs mpirun and mpi4py; the markdown table goes to stdout and --out.)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def worker(args) -> None:
    import nncore as keras
    from nncore import distributed
    from nncore.examples.mnist_cnn import seed_cnn

    distributed.init(threads=args.threads, timeout=300)
    r, s = distributed.rank(), distributed.size()
    keras.utils.set_random_seed(0)
    model = seed_cnn(keras)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    per_rank = args.global_batch // s
    rng = np.random.default_rng(0)
    n = args.global_batch * args.steps
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int32)
    model.fit(x[:args.global_batch * 5], y[:args.global_batch * 5], batch_size=per_rank,
              epochs=1, verbose=0, shuffle=False)  # warm-up
    t_ar0 = distributed.timing()["seconds"]
    distributed.barrier()
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=per_rank, epochs=1, verbose=0, shuffle=False)
    dt = time.perf_counter() - t0
    ar = distributed.timing()["seconds"] - t_ar0
    grad_bytes = 4 * sum(int(w.size) for w in model.trainable_weights)
    rec = {"ranks": s, "threads": keras.get_num_threads(), "steps": args.steps,
           "s_per_step": dt / args.steps, "allreduce_s_per_step": ar / args.steps,
           "grad_bytes": grad_bytes}
    if s > 1:  # the allreduce itself, both ranks waiting for it
        ctx = distributed._ctx
        for name, size in (("grad", grad_bytes // 4), ("small", 2)):
            buf = np.ones(size, np.float32)
            times = []
            for _ in range(args.micro):
                distributed.barrier()
                t = time.perf_counter()
                ctx.allreduce_(buf, "microbenchmark")
                times.append(time.perf_counter() - t)
            rec[f"allreduce_{name}_s"] = statistics.median(times)
    rec["rank"] = r
    (pathlib.Path(args.result_dir) / f"rank{r}.json").write_text(json.dumps(rec))


def launch(ranks: int, threads: int, args) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return _launch(ranks, threads, args, d)


def _launch(ranks, threads, args, result_dir):
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker",
           "--result-dir", result_dir,
           "--threads", str(threads), "--steps", str(args.steps),
           "--global-batch", str(args.global_batch), "--micro", str(args.micro)]
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), "--oversubscribe", "--bind-to", "none",
               "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo"] + (
            ["--allow-run-as-root"] if os.geteuid() == 0 else []) + cmd
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    files = sorted(pathlib.Path(result_dir).glob("rank*.json"))
    recs = [json.loads(f.read_text()) for f in files]
    if p.returncode != 0 or len(recs) != ranks:
        raise RuntimeError(f"no result from {' '.join(cmd)}:\n{p.stdout}\n{p.stderr}")
    out = dict(next(r for r in recs if r["rank"] == 0))
    # the step time is the slowest rank's; the allreduce time of the rank that waited least is
    # closest to the transfer itself, the other one's includes waiting for its peer
    out["s_per_step"] = max(r["s_per_step"] for r in recs)
    out["allreduce_min_s_per_step"] = min(r["allreduce_s_per_step"] for r in recs)
    out["allreduce_max_s_per_step"] = max(r["allreduce_s_per_step"] for r in recs)
    return out


def med(vals):
    return statistics.median(vals), min(vals), max(vals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--result-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--global-batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--micro", type=int, default=200, help="allreduce microbenchmark calls")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    configs = [(1, 2), (2, 1)]
    runs = {c: [] for c in configs}
    for _ in range(args.rounds):
        for ranks, threads in configs:
            runs[(ranks, threads)].append(launch(ranks, threads, args))
    load = os.getloadavg()[0]
    cpu = platform.processor() or platform.machine()
    lines = [f"Seed CNN, Adam, global batch {args.global_batch}, {args.steps} timed steps, "
             f"{args.rounds} rounds (median [min-max]); {cpu}, {os.cpu_count()} cores, "
             f"1-min load {load:.1f} at the end", "",
             "| configuration | steps/s | ms/step | in allreduce, ms/step: least-waiting rank | "
             "most-waiting rank |",
             "|---|---|---|---|---|"]
    for (ranks, threads), rs in runs.items():
        sps = med([1.0 / r["s_per_step"] for r in rs])
        ms = med([1e3 * r["s_per_step"] for r in rs])
        ar = med([1e3 * r["allreduce_min_s_per_step"] for r in rs])
        ar2 = med([1e3 * r["allreduce_max_s_per_step"] for r in rs])
        lines.append(f"| {ranks} rank x {threads} thread{'s' if threads > 1 else ''} "
                     f"(batch {args.global_batch // ranks}/rank) | {sps[0]:.1f} "
                     f"[{sps[1]:.1f}-{sps[2]:.1f}] | {ms[0]:.1f} [{ms[1]:.1f}-{ms[2]:.1f}] | "
                     f"{ar[0]:.2f} [{ar[1]:.2f}-{ar[2]:.2f}] | "
                     f"{ar2[0]:.2f} [{ar2[1]:.2f}-{ar2[2]:.2f}] |")
    two = runs[(2, 1)]
    g = two[0]["grad_bytes"]
    big = med([1e6 * r["allreduce_grad_s"] for r in two])
    small = med([1e6 * r["allreduce_small_s"] for r in two])
    ratio = med([a["s_per_step"] / b["s_per_step"] for a, b in zip(runs[(1, 2)], two)])
    lines += ["", f"2 ranks / 1 rank speed (same round, time per step ratio): {ratio[0]:.2f} "
              f"[{ratio[1]:.2f}-{ratio[2]:.2f}]",
              f"gradient buffer {g} bytes; allreduce on this host, 2 ranks: {big[0]:.0f} us "
              f"[{big[1]:.0f}-{big[2]:.0f}] for the gradient, {small[0]:.0f} us "
              f"[{small[1]:.0f}-{small[2]:.0f}] for 8 bytes"]
    text = "\n".join(lines)
    print(text)
    for ranks_threads, rs in runs.items():
        print(json.dumps({"config": ranks_threads, "runs": rs}))
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
