"""Saving: nncore's own format (native.py), the class registry (registry.py) and configs
(serialization.py). Everything a file holds is data."""

from .native import load_model, load_weights, save_model, save_weights
from .registry import (
    CustomObjectScope,
    custom_object_scope,
    get_registered_object,
    register_keras_serializable,
)
from .serialization import deserialize_layer as deserialize_keras_object
from .serialization import serialize_layer as serialize_keras_object

__all__ = ["load_model", "save_model", "load_weights", "save_weights",
           "register_keras_serializable", "custom_object_scope", "CustomObjectScope",
           "get_registered_object", "serialize_keras_object", "deserialize_keras_object"]
