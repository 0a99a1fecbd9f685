"""Runnable examples: ``python -m nncore.examples.mnist_cnn`` (the classic Keras CNN on MNIST) and
``python -m nncore.examples.mnist_rnn``."""
