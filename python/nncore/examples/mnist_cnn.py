"""The classic Keras convolutional network on MNIST, with nncore.

    python -m nncore.examples.mnist_cnn [--data DIR] [--epochs 5] [--batch-size 32]
                                        [--fraction F] [--threads N]

Conv2D 32 - MaxPool - Conv2D 64 - MaxPool - Conv2D 64 - Flatten - Dense 64 - Dense 10 softmax,
Adam, sparse categorical cross-entropy, 5 epochs of batch 32, inputs scaled to [0, 1]. It trains on
full MNIST when it is available (--data DIR, $NNCORE_DATA/mnist or the user cache) and on the
subset shipped with nncore otherwise (5000 training, 1000 test images).
"""

from __future__ import annotations

from nncore import layers, models
from nncore.examples._common import load_mnist, parse_args, scale


def build_model():
    model = models.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None) -> float:
    args = parse_args(__doc__, argv)
    (x_train, y_train), (x_test, y_test) = load_mnist(args)
    x_train, x_test = scale(x_train, (28, 28, 1)), scale(x_test, (28, 28, 1))

    model = build_model()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size)
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=2)
    print(f"Test accuracy: {test_acc:.4f}")
    print(f"(one run, seed {args.seed}. Measured for this job, 5 epochs of batch 32 on full MNIST, "
          "seeds 0-4: nncore's mean test accuracy 98.99% (Zen 3, AVX2), TensorFlow/Keras's 98.69% "
          "with the same protocol; the claim fixed before that, within 0.15 points of Keras's "
          "mean, does not hold: nncore is 0.30 points higher. Claimed now (restated after that "
          "measurement): not more than 0.15 points below Keras's mean. See bench/RESULTS.md)")
    return test_acc


if __name__ == "__main__":
    main()
