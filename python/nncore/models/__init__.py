"""Models: Model (keras.Model(inputs, outputs) is Functional), Sequential, and the saving entry
points Keras keeps here (load_model, save_model, clone_model)."""

from .functional import Functional
from .model import Model
from .sequential import Sequential


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, max_params=2**28):
    """Rebuild a model written by model.save (see nncore.saving.load_model)."""
    from ..saving import load_model as _load

    return _load(filepath, custom_objects=custom_objects, compile=compile, max_params=max_params)


def save_model(model, filepath, overwrite=True, **kwargs):
    from ..saving import save_model as _save

    _save(model, filepath, overwrite=overwrite, **kwargs)


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model with the same architecture and freshly initialised weights."""
    from ..saving.serialization import deserialize_layer, serialize_layer

    return deserialize_layer(serialize_layer(model))


def model_from_json(json_string, custom_objects=None):
    import json

    from ..saving.serialization import deserialize_layer

    return deserialize_layer(json.loads(json_string), custom_objects)


__all__ = ["Model", "Functional", "Sequential", "load_model", "save_model", "clone_model",
           "model_from_json"]
