"""SHA-256 of the seed CNN's weights after 20 training steps on fixed data, one line per optimizer.

A refactor that must not change results (bindings, dispatch, threading) keeps every line equal:
run it against two builds and compare, e.g.

    PYTHONPATH=OLD/python python tools/train_hash.py > old.txt
    PYTHONPATH=NEW/python python tools/train_hash.py > new.txt
    diff old.txt new.txt

The hashes depend on the ISA path (printed first); results do not depend on the thread count.
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np

OPTIMIZERS = ["adam", "sgd", "rmsprop", "adamw", "nadam", "adamax", "adagrad", "adadelta", "ftrl",
              "lion"]


def weight_hash(optimizer: str, steps: int, batch: int) -> str:
    import nncore
    from nncore.examples.mnist_cnn import build_model

    model = build_model()  # Keras's MNIST CNN, compiled with Adam
    if optimizer == "sgd":
        optimizer = nncore.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True)
    elif optimizer == "rmsprop":
        optimizer = nncore.optimizers.RMSprop(momentum=0.5, centered=True)
    elif optimizer == "adamw":
        optimizer = nncore.optimizers.AdamW(amsgrad=True)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.set_weights([(0.1 * rng.standard_normal(w.shape)).astype(np.float32)
                       for w in model.get_weights()])
    x = rng.random((steps * batch, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, steps * batch).astype(np.int32)
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w, np.float32).tobytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--optimizers", nargs="*", default=OPTIMIZERS)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    import nncore
    print("isa", nncore.kernels.get_isa() if hasattr(nncore.kernels, "get_isa") else "?")
    for name in args.optimizers:
        print(name, weight_hash(name, args.steps, args.batch))


if __name__ == "__main__":
    main()
