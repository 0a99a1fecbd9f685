"""Datasets, as keras.datasets: ``nncore.datasets.mnist.load_data()``, fashion_mnist, cifar10,
cifar100, imdb, reuters, boston_housing (imported on first use)."""

import importlib

__all__ = ["mnist", "fashion_mnist", "cifar10", "cifar100", "imdb", "reuters", "boston_housing"]


def __getattr__(name):
    if name in __all__:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'nncore.datasets' has no attribute {name!r}")
