"""Keras-style layers. LAYER_REGISTRY is the closed set of types a model file may name."""

from .base import Layer
from .conv import Conv2D
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .pooling import AveragePooling2D, AvgPool2D, MaxPool2D, MaxPooling2D
from .recurrent import GRU, LSTM, SimpleRNN

LAYER_REGISTRY = {
    cls.__name__: cls
    for cls in (InputLayer, Dense, Flatten, Reshape, Dropout, Activation, Conv2D, MaxPooling2D,
                AveragePooling2D, SimpleRNN, LSTM, GRU)
}

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Flatten", "Reshape", "Dropout", "Activation",
           "Conv2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D", "SimpleRNN",
           "LSTM", "GRU", "LAYER_REGISTRY"]
