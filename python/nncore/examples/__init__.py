"""Runnable examples: ``python -m nncore.examples.mnist_cnn`` and ``python -m nncore.examples.mnist_rnn``."""
