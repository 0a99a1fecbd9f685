"""The CIFAR-sized CNN of the TensorFlow tutorial (32x32x3, Conv32-Pool-Conv64-Pool-Conv64-Dense64-
Dense10, Adam, random data): training time per sample at batch 32 and 256, nncore vs TensorFlow vs
PyTorch, the frameworks alternating (one subprocess per framework, batch and round: nncore, torch,
tf, nncore, ...). Reports the median milliseconds per sample over the rounds, the range, the
ratio to TensorFlow and the 1-minute load average sampled around each run.

    flock /tmp/nncore-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        PYTHONPATH=python python bench/bench_cifar.py --rounds 3 --steps 30 [--compare OLD_PYTHONPATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np

FRAMEWORKS = ("nncore", "torch", "tf")


def worker(fw: str, batch: int, steps: int, threads: int) -> float:
    """Seconds per sample of `steps` training steps (after 3 warm-up steps)."""
    rng = np.random.default_rng(0)
    x = rng.random((batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, size=batch)
    if fw == "torch":
        import torch
        from torch import nn

        torch.set_num_threads(threads)
        m = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(64, 64, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))
        opt = torch.optim.Adam(m.parameters())
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        yt = torch.from_numpy(y)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            loss_fn(m(xt), yt).backward()
            opt.step()
    else:
        if fw == "tf":
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            keras = tf.keras
        else:
            import nncore as keras

            keras.set_num_threads(threads)
        from nncore.examples.mnist_cnn import seed_cnn  # the same network on 32x32x3, logits

        model = seed_cnn(keras, input_shape=(32, 32, 3), softmax=False)
        model.compile(optimizer="adam",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

        def step():
            model.train_on_batch(x, y)
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / (steps * batch)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    ap.add_argument("--batches", default="32,256")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare", metavar="PYTHONPATH",
                    help="also time the nncore found on this PYTHONPATH (column nncore-old), "
                         "alternating with the others")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        fw, batch = args.worker.split(":")
        print(json.dumps({"s": worker(fw, int(batch), args.steps, args.threads)}))
        return
    fws = [f for f in args.frameworks.split(",")
           if f == "nncore" or importlib.util.find_spec({"tf": "tensorflow"}.get(f, f))]
    if args.compare:
        fws.insert(1, "nncore-old")
    batches = [int(b) for b in args.batches.split(",")]
    res: dict = {}
    loads = []
    for _ in range(args.rounds):
        for batch in batches:
            # fewer steps at the larger batch, about the same samples per run
            steps = max(3, args.steps * 32 // batch) if batch > 32 else args.steps
            for fw in fws:
                loads.append(os.getloadavg()[0])
                env = dict(os.environ, PYTHONPATH=args.compare) if fw == "nncore-old" else None
                run_as = "nncore" if fw == "nncore-old" else fw
                out = subprocess.run([sys.executable, __file__, "--worker", f"{run_as}:{batch}",
                                      "--steps", str(steps), "--threads", str(args.threads)],
                                     capture_output=True, text=True, check=True, env=env)
                res.setdefault((fw, batch), []).append(json.loads(out.stdout.splitlines()[-1])["s"])
    print(f"CIFAR-sized CNN, training ms per sample, {args.threads} threads, median of "
          f"{args.rounds} alternating rounds; 1-min load {min(loads):.1f}-{max(loads):.1f}")
    print("| batch | " + " | ".join(fws) + " | nncore / tf |")
    print("|---:|" + "---:|" * (len(fws) + 1))
    for batch in batches:
        med = {fw: float(np.median(res[(fw, batch)])) * 1e3 for fw in fws}
        cells = [f"{med[fw]:.3f} ({min(res[(fw, batch)]) * 1e3:.3f}-"
                 f"{max(res[(fw, batch)]) * 1e3:.3f})" for fw in fws]
        ratio = f"{med['nncore'] / med['tf']:.2f}" if "tf" in med else "-"
        if "nncore-old" in med:
            ratio += f" (old {med['nncore-old'] / med['tf']:.2f})" if "tf" in med else ""
        print(f"| {batch} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    main()
