"""One rank of the distributed tests (tests/test_distributed.py launches it with mpirun).

    mpirun -n 2 python tests/_distributed_worker.py MODE OUTDIR [options]

(nncore is imported as the launching test imports it: the test passes its sys.path as
PYTHONPATH.)
Each rank writes OUTDIR/rank<r>.npz (weights after training, plus whatever the mode records) and
prints one line "done <rank>" at the end. The reference (one process on the global batch) runs in
the test process with the same helpers (build, data).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import nncore as keras
import numpy as np
from nncore.examples.mnist_cnn import seed_cnn


def build(kind: str, seed: int, opt: str, lr: float):
    keras.utils.set_random_seed(seed)
    L = keras.layers
    if kind == "cnn":
        model = seed_cnn()
    elif kind == "lstm":
        model = keras.Sequential([keras.Input((12, 6)), L.LSTM(24),
                                  L.Dense(4, activation="softmax")])
    else:  # a small dense model for the quick tests
        model = keras.Sequential([keras.Input((8,)), L.Dense(16, activation="relu"),
                                  L.Dense(3, activation="softmax")])
    optimizer = keras.optimizers.SGD(lr) if opt == "sgd" else keras.optimizers.Adam(lr)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def data(kind: str, n: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    shape = {"cnn": (28, 28, 1), "lstm": (12, 6), "dense": (8,)}[kind]
    classes = {"cnn": 10, "lstm": 4, "dense": 3}[kind]
    x = rng.standard_normal((n,) + shape).astype(np.float32)
    y = rng.integers(0, classes, n).astype(np.int32)
    return x, y


class Shard(keras.utils.PyDataset):
    """Rank r's rows of every global batch of B*S rows, as its own dataset."""

    def __init__(self, x, y, b, r, s, steps):
        super().__init__()
        self.x, self.y, self.b, self.r, self.s, self.steps = x, y, b, r, s, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, k):
        lo = (k * self.s + self.r) * self.b
        return self.x[lo:lo + self.b], self.y[lo:lo + self.b]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("out")
    ap.add_argument("--kind", default="dense")
    ap.add_argument("--configs", default="dense:sgd")
    ap.add_argument("--opt", default="sgd")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--shuffle", action="store_true")
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    out = pathlib.Path(a.out)

    from nncore import distributed

    distributed.init(timeout=a.timeout)
    r, s = distributed.rank(), distributed.size()
    rec = {"size": np.array(s), "local_size": np.array(distributed.local_size()),
           "threads": np.array(keras.get_num_threads()),
           "affinity": np.array(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                else os.cpu_count())}
    # Different seeds per rank: the weights must still start (and so end) as rank 0's.
    model = build(a.kind, 100 + r, a.opt, a.lr)
    rec.update({f"init{i}": w.copy() for i, w in enumerate(model.get_weights())})
    n = a.n or a.batch * s * a.steps
    x, y = data(a.kind, n)

    if a.mode == "equiv":  # several trainings in one launch: kind:opt[:shuffle],...
        for cfg in a.configs.split(","):
            kind, opt, *flags = cfg.split(":")
            model = build(kind, 100 + r, opt, a.lr if opt == "sgd" else 1e-3)
            rec.update({f"{cfg}/init{i}": w.copy() for i, w in enumerate(model.get_weights())})
            # partial: a last global batch of 7 rows (3 on rank 0, 4 on rank 1)
            x, y = data(kind, a.batch * s * a.steps + (7 if "partial" in flags else 0))
            # the weights after every step, for the step-by-step comparison of SGD runs
            cbs = [keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda b, logs, m=model, c=cfg: rec.update(
                    {f"{c}/step{b}/w{i}": w.copy() for i, w in enumerate(m.get_weights())}))]
            if "stop" in flags:  # rank 1 alone asks to stop at the end of batch 1
                cbs.append(keras.callbacks.LambdaCallback(
                    on_train_batch_end=lambda b, logs, m=model: setattr(
                        m, "stop_training", True) if (r == 1 and b == 1) else None))
            feed = (x, y)
            if "dataset" in flags:  # each rank reads its own shard through a PyDataset
                feed = (Shard(x, y, a.batch, r, s, a.steps),)
            h = model.fit(*feed, batch_size=a.batch, epochs=a.epochs, verbose=0,
                          shuffle="shuffle" in flags, validation_data=data(kind, 10, seed=8),
                          callbacks=cbs)
            rec[f"{cfg}/history"] = np.array(json.dumps(h.history))
            rec.update({f"{cfg}/w{i}": w for i, w in enumerate(model.get_weights())})
    elif a.mode == "mismatch":  # rank 1's dataset has one batch more than rank 0's
        model.fit(Shard(x, y, a.batch, r, s, a.steps - 1 + r), epochs=1, verbose=0)
    elif a.mode == "files":
        # Paths per rank: only rank 0's may appear.
        cbs = [keras.callbacks.ModelCheckpoint(str(out / f"ckpt{r}.nncore")),
               keras.callbacks.CSVLogger(str(out / f"log{r}.csv")),
               keras.callbacks.BackupAndRestore(str(out / f"backup{r}"),
                                                delete_checkpoint=False),
               keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)]
        h = model.fit(x, y, batch_size=a.batch, epochs=a.epochs, verbose=1, callbacks=cbs)
        rec["history"] = np.array(json.dumps(h.history))
    elif a.mode == "fail":  # rank 1 raises in the middle of training
        class Boom(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if r == 1 and batch == 1:
                    raise ValueError("boom on purpose")
        model.fit(x, y, batch_size=a.batch, epochs=a.epochs, verbose=0, callbacks=[Boom()])
    elif a.mode == "kill":  # rank 1 is killed in the middle of training
        class Kill(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if r == 1 and batch == 1:
                    os.kill(os.getpid(), 9)
        model.fit(x, y, batch_size=a.batch, epochs=a.epochs, verbose=0, callbacks=[Kill()])
    elif a.mode == "hang":  # rank 1 stops taking part (it sleeps): rank 0 must time out
        class Hang(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if r == 1 and batch == 1:
                    time.sleep(600)
        model.fit(x, y, batch_size=a.batch, epochs=a.epochs, verbose=0, callbacks=[Hang()])
    elif a.mode == "loop":  # Horovod style: own loop over own shard, the Horovod pieces
        model.compile(optimizer=distributed.DistributedOptimizer(model.optimizer),
                      loss="sparse_categorical_crossentropy")
        cb = distributed.BroadcastGlobalVariablesCallback(0)
        cb.set_model(model)
        cb.on_train_begin({})
        b = a.batch
        for k in range(a.steps):
            lo = (k * s + r) * b
            model.train_on_batch(x[lo:lo + b], y[lo:lo + b])
        avg = distributed.MetricAverageCallback()
        avg.set_model(model)
        logs = {"value": float(r + 1)}
        avg.on_epoch_end(0, logs)
        rec["avg_value"] = np.array(logs["value"])
    else:
        raise SystemExit(f"unknown mode {a.mode}")
    rec.update({f"w{i}": w for i, w in enumerate(model.get_weights())})
    rec["allreduce_seconds"] = np.array(distributed.timing()["seconds"])
    np.savez(out / f"rank{r}.npz", **rec)
    print(f"done {r}", flush=True)


if __name__ == "__main__":
    main()
