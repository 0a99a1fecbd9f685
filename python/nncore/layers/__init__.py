"""Keras-style layers. Every built-in layer is registered (nncore.saving.registry): the closed
set of types a model file may name."""

from ..saving.registry import register
from .base import Layer
from .conv import Conv2D
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .merge import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .node import KerasTensor
from .pooling import AveragePooling2D, AvgPool2D, MaxPool2D, MaxPooling2D
from .recurrent import GRU, LSTM, SimpleRNN

_BUILTIN = (InputLayer, Dense, Flatten, Reshape, Dropout, Activation, Conv2D, MaxPooling2D,
            AveragePooling2D, SimpleRNN, LSTM, GRU, Add, Subtract, Multiply, Average, Maximum,
            Minimum, Concatenate, Dot)
for _cls in _BUILTIN:
    register(_cls)
LAYER_REGISTRY = {cls.__name__: cls for cls in _BUILTIN}

__all__ = ["Layer", "Input", "InputLayer", "KerasTensor", "Dense", "Flatten", "Reshape",
           "Dropout", "Activation", "Conv2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D",
           "AvgPool2D", "SimpleRNN", "LSTM", "GRU", "Add", "Subtract", "Multiply", "Average",
           "Maximum", "Minimum", "Concatenate", "Dot", "add", "subtract", "multiply", "average",
           "maximum", "minimum", "concatenate", "dot", "LAYER_REGISTRY"]
