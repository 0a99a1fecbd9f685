"""A SimpleRNN on MNIST with nncore: each image is read as a sequence of its 28 rows.

    python -m nncore.examples.mnist_rnn [--data DIR] [--epochs 5] [--batch-size 32]
                                        [--fraction F] [--threads N]

SimpleRNN(128) over the 28 rows of 28 pixels, then Dense 10 softmax; Adam, sparse categorical
cross-entropy, inputs scaled to [0, 1]. Full MNIST when available, else the embedded subset.
"""

from __future__ import annotations

from nncore import layers, models
from nncore.examples._common import load_mnist, parse_args, scale


def build_model():
    model = models.Sequential([
        layers.SimpleRNN(128, input_shape=(28, 28)),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None) -> float:
    args = parse_args(__doc__, argv)
    (x_train, y_train), (x_test, y_test) = load_mnist(args)
    x_train, x_test = scale(x_train, (28, 28)), scale(x_test, (28, 28))

    model = build_model()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size)
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=2)
    print(f"Test accuracy: {test_acc:.4f}")
    return test_acc


if __name__ == "__main__":
    main()
