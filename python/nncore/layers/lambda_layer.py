"""Lambda: a layer from a function of nncore.ops (keras.ops) tensors.

The function is traced like a custom layer's call (so nncore differentiates it: it must be
written in keras.ops / tensor arithmetic, not NumPy calls on the values). Saving records the
function by its registered name only: a model file never carries code, so a Lambda saves only
when its function was registered with ``keras.saving.register_keras_serializable`` and loads
only when that name is registered (or passed in ``custom_objects``) in the loading program.
Keras's serialized Python bytecode (``__lambda__`` entries) is refused, as Keras's safe mode does.
"""

from __future__ import annotations

import inspect

from ..saving.registry import get_class
from .base import Layer


class Lambda(Layer):
    """y = function(x, **arguments); with `mask=` a fixed mask or a function(inputs, mask)."""

    _from_config_custom_objects = True

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function) or isinstance(function, type):
            raise TypeError(f"{self.name}: function must be a function, got {function!r}")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(f"{self.name}: arguments must be a dict, got {arguments!r}")
        if mask is not None and not callable(mask):
            raise ValueError(f"{self.name}: only mask=None or a function is supported")
        self.function = function
        self.arguments = dict(arguments or {})
        self._output_shape = output_shape
        self._mask_fn = mask
        try:
            self._takes_training = "training" in inspect.signature(function).parameters
        except (TypeError, ValueError):
            self._takes_training = False
        self._makes_mask = mask is not None

    def call(self, inputs, training=None):
        kw = dict(self.arguments)
        if self._takes_training:
            kw["training"] = training
        return self.function(inputs, **kw)

    def compute_mask(self, inputs, mask=None):
        return None if self._mask_fn is None else self._mask_fn(inputs, mask)

    def get_config(self):
        cfg = super().get_config()
        name = getattr(self.function, "_registered_name", None)
        if name is None:
            raise ValueError(
                f"Lambda layer {self.name!r}: its function {self.function!r} is not registered; "
                "a model file holds no code, so register it with "
                "@keras.saving.register_keras_serializable() to save this model")
        if self._mask_fn is not None or self._output_shape is not None:
            raise ValueError(f"Lambda layer {self.name!r}: saving `mask` or `output_shape` is "
                             "not supported (the traced function gives the output shape)")
        for k, v in self.arguments.items():
            if not isinstance(v, (int, float, str, bool, type(None), list)):
                raise ValueError(f"Lambda layer {self.name!r}: argument {k!r} = {v!r} cannot be "
                                 "saved (numbers, strings, booleans, None and lists only)")
        cfg.update(function=name, arguments=dict(self.arguments))
        return cfg

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        name = config.pop("function", None)
        if not isinstance(name, str):
            raise ValueError("Lambda: the file names its function by something other than a "
                             f"registered name ({type(name).__name__}); nncore never loads "
                             "code from a file")
        fn = get_class(name, custom_objects)
        if fn is None or isinstance(fn, type) or not callable(fn):
            raise ValueError(f"Lambda: function {name!r} is not registered in this program "
                             "(keras.saving.register_keras_serializable, or custom_objects=)")
        return cls(fn, **config)
