"""k-fold cross-validation of a small network, with and without L2 regularization.

    python -m nncore.examples.cross_validation [--samples 1000] [--folds 5] [--epochs 10]
                                               [--l2 0.005] [--threads N] [--seed 0]

A dense network (784 - 256 ReLU - 10 softmax) learns digits from a small part of the MNIST subset
shipped with nncore. With so few images it can learn them by heart: its accuracy on the images it
trained on runs ahead of its accuracy on images it has not seen. k-fold cross-validation measures
the second one honestly: the data is cut into k folds, each fold is held out once while a freshly
initialised model trains on the others, and the k held-out accuracies give a mean and a spread.
The same is done with an L2 penalty (l2 * sum(w**2) on the weights) added to the loss, which keeps
the weights small; compare the two lines. Needs scikit-learn (pip install "nncore[sklearn]").
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import nncore
from nncore import layers, regularizers


def build_model(X, y, l2=0.0, hidden=256):
    """The wrapper calls this once per fold: every fold starts from fresh random weights."""
    reg = regularizers.L2(l2) if l2 else None
    model = nncore.Sequential([
        nncore.Input(X.shape[1:]),
        layers.Dense(hidden, activation="relu", kernel_regularizer=reg),
        layers.Dense(y.shape[1], activation="softmax", kernel_regularizer=reg),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1000, help="training images used (<= 5000)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--l2", type=float, default=5e-3, help="L2 factor of the regularized run")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0, help="folds and initial weights")
    args = ap.parse_args(argv)
    if not 2 <= args.folds <= args.samples <= 5000:
        ap.error("need 2 <= --folds <= --samples <= 5000")
    if args.threads is not None:
        nncore.set_num_threads(args.threads)
    try:
        from sklearn.model_selection import StratifiedKFold, cross_validate
    except ImportError:
        sys.exit('This example needs scikit-learn: pip install "nncore[sklearn]"')
    from nncore.wrappers import SKLearnClassifier

    (x_train, y_train), _ = nncore.datasets.mnist.load_embedded()
    rng = np.random.default_rng(args.seed)
    pick = rng.permutation(len(x_train))[:args.samples]
    X = x_train[pick].reshape(len(pick), -1).astype(np.float32) / 255.0
    y = y_train[pick]
    print(f"Data: {len(X)} images of the embedded MNIST subset, {args.folds}-fold stratified "
          f"cross-validation, {args.epochs} epochs per fold; {nncore.get_num_threads()} threads",
          flush=True)
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    results = {}
    for name, l2 in (("no regularization", 0.0), (f"L2 {args.l2:g}", args.l2)):
        est = SKLearnClassifier(build_model, model_kwargs={"l2": l2},
                                fit_kwargs={"epochs": args.epochs,
                                            "batch_size": args.batch_size},
                                random_state=args.seed)
        t0 = time.perf_counter()
        cv = cross_validate(est, X, y, cv=folds, return_train_score=True)
        train, test = cv["train_score"], cv["test_score"]
        results[name] = test
        print(f"{name:>18}: held-out accuracy {100 * test.mean():.2f}% ± "
              f"{100 * test.std():.2f}  (training-set accuracy {100 * train.mean():.2f}%, "
              f"gap {100 * (train.mean() - test.mean()):.2f} points; "
              f"{time.perf_counter() - t0:.1f} s)", flush=True)
    print("(mean ± standard deviation over the folds; each fold is scored by a model that never "
          "saw it)")
    return results


if __name__ == "__main__":
    main()
