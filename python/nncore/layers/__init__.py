"""Keras-style layers. Every built-in layer is registered (nncore.saving.registry): the closed
set of types a model file may name."""

from ..saving.registry import register
from .activation_layers import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .attention import Attention, MultiHeadAttention
from .augmentation import (
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from .base import Layer
from .categorical import (
    CategoryEncoding,
    Discretization,
    Hashing,
    IntegerLookup,
    StringLookup,
)
from .conv import (
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Convolution1D,
    Convolution2DTranspose,
    DepthwiseConv2D,
    SeparableConv2D,
    SeparableConvolution2D,
)
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .embedding import Embedding
from .lambda_layer import Lambda
from .masking import Masking
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
from .normalization import (
    BatchNormalization,
    GroupNormalization,
    LayerNormalization,
    UnitNormalization,
)
from .pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AvgPool1D,
    AvgPool2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPool1D,
    MaxPool2D,
    MaxPooling1D,
    MaxPooling2D,
)
from .preprocessing import Normalization, Rescaling
from .recurrent import GRU, LSTM, SimpleRNN
from .regularization import (
    ActivityRegularization,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout1D,
    SpatialDropout2D,
)
from .reshaping import (
    Cropping1D,
    Cropping2D,
    Identity,
    Permute,
    RepeatVector,
    UpSampling1D,
    UpSampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
)
from .text import TextVectorization
from .wrappers import Bidirectional, TimeDistributed

_BUILTIN = (InputLayer, Dense, Flatten, Reshape, Dropout, Activation, Conv2D, MaxPooling2D,
            AveragePooling2D, SimpleRNN, LSTM, GRU, Add, Subtract, Multiply, Average, Maximum,
            Minimum, Concatenate, Dot,
            # issue 11: the layers real models use
            Conv1D, MaxPooling1D, AveragePooling1D, GlobalAveragePooling1D,
            GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D, Embedding,
            BatchNormalization, LayerNormalization, UnitNormalization, ReLU, LeakyReLU, PReLU, ELU,
            Softmax, Identity, RepeatVector, Permute, UpSampling1D, UpSampling2D, ZeroPadding1D,
            ZeroPadding2D, Cropping1D, Cropping2D, SpatialDropout1D, SpatialDropout2D,
            GaussianNoise, GaussianDropout, Rescaling, Normalization, TimeDistributed,
            Bidirectional, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D,
            Masking, GroupNormalization, Lambda, ActivityRegularization, RandomFlip,
            RandomTranslation, RandomRotation, RandomZoom, RandomContrast, RandomBrightness,
            CategoryEncoding, Discretization, IntegerLookup, StringLookup, Hashing, RandomCrop,
            TextVectorization, MultiHeadAttention, Attention)
for _cls in _BUILTIN:
    register(_cls)
LAYER_REGISTRY = {cls.__name__: cls for cls in _BUILTIN}

__all__ = ["Layer", "Input", "InputLayer", "KerasTensor", "Dense", "Flatten", "Reshape",
           "Dropout", "Activation", "Conv2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D",
           "AvgPool2D", "SimpleRNN", "LSTM", "GRU", "Add", "Subtract", "Multiply", "Average",
           "Maximum", "Minimum", "Concatenate", "Dot", "add", "subtract", "multiply", "average",
           "maximum", "minimum", "concatenate", "dot", "LAYER_REGISTRY",
           "Convolution1D", "MaxPool1D", "AvgPool1D", "GlobalAvgPool1D", "GlobalAvgPool2D",
           "GlobalMaxPool1D", "GlobalMaxPool2D", "Convolution2DTranspose",
           "SeparableConvolution2D"]
__all__ += [cls.__name__ for cls in _BUILTIN[20:]]
