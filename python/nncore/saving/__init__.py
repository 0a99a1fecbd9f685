"""Saving: nncore's own format (native.py), Keras's files (keras_format.py: .keras, .h5,
.weights.h5), the class registry (registry.py) and configs (serialization.py). Everything a
file holds is data.

Writing picks the format from the name: '.keras' -> Keras 3 zip, '.h5' / '.hdf5' -> Keras's
legacy HDF5, '.weights.h5' -> Keras 3 weights; anything else (e.g. '.nncore') -> nncore's own.
Reading looks at the content (a Keras zip, an HDF5 file or an nncore zip), so nncore files
written under a Keras name by older versions still load.
"""

import os

from . import native
from .native import MAX_TOTAL_PARAMS
from .registry import (
    CustomObjectScope,
    custom_object_scope,
    get_registered_object,
    register_keras_serializable,
)
from .serialization import deserialize_layer as deserialize_keras_object
from .serialization import serialize_layer as serialize_keras_object


def _ext(filepath) -> str:
    if not isinstance(filepath, (str, bytes, os.PathLike)):
        return ""  # a descriptor or a file object: nncore's own format unless the content says
    name = os.fsdecode(os.fspath(filepath)).lower()
    if name.endswith(".weights.h5"):
        return "weights.h5"
    for ext in ("keras", "h5", "hdf5"):
        if name.endswith("." + ext):
            return ext
    return ""


def _kind(filepath) -> str:
    from .keras_format import file_kind

    if isinstance(filepath, (str, bytes, os.PathLike)) and not os.path.exists(
            os.fspath(filepath)):
        return "native"  # the native loader raises FileNotFoundError
    return file_kind(filepath)


def save_model(model, filepath, overwrite=True, **kwargs) -> None:
    """model.save: by extension, a Keras file or nncore's own."""
    ext = _ext(filepath)
    if ext == "keras":
        from .keras_format import save_keras

        return save_keras(model, filepath, overwrite=overwrite)
    if ext in ("h5", "hdf5"):
        from .keras_format import save_h5

        return save_h5(model, filepath, overwrite=overwrite)
    if ext == "weights.h5":
        raise ValueError(f"{os.fspath(filepath)!r}: a '.weights.h5' name is for save_weights; "
                         "save the model as '.keras'")
    return native.save_model(model, filepath, overwrite=overwrite, **kwargs)


def load_model(filepath, custom_objects=None, compile=True, max_params=MAX_TOTAL_PARAMS):
    kind = _kind(filepath)
    if kind == "keras":
        from .keras_format import load_keras

        native._check_max_params(max_params)
        return load_keras(filepath, custom_objects=custom_objects, compile=compile,
                          max_params=max_params)
    if kind == "h5":
        from .keras_format import load_h5

        native._check_max_params(max_params)
        return load_h5(filepath, custom_objects=custom_objects, compile=compile,
                       max_params=max_params)
    return native.load_model(filepath, custom_objects=custom_objects, compile=compile,
                             max_params=max_params)


def save_weights(model, filepath, overwrite=True) -> None:
    ext = _ext(filepath)
    if ext == "weights.h5":
        from .keras_format import save_weights_h5

        return save_weights_h5(model, filepath, overwrite=overwrite)
    if ext in ("h5", "hdf5"):
        from .keras_format import save_h5

        return save_h5(model, filepath, overwrite=overwrite, weights_only=True)
    return native.save_weights(model, filepath, overwrite=overwrite)


def load_weights(model, filepath) -> None:
    if _kind(filepath) == "h5":
        from .keras_format import load_weights_h5

        return load_weights_h5(model, filepath)
    return native.load_weights(model, filepath)


__all__ = ["load_model", "save_model", "load_weights", "save_weights",
           "register_keras_serializable", "custom_object_scope", "CustomObjectScope",
           "get_registered_object", "serialize_keras_object", "deserialize_keras_object"]
