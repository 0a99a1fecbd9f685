"""keras.config and the Keras variable-list names, as a program written for Keras uses them."""

from __future__ import annotations

import nncore
import numpy as np
import pytest
from conftest import require
from nncore import layers


def test_config_matches_keras_defaults():
    keras = require("keras", minversion="3.0")
    for name in ("floatx", "epsilon", "image_data_format", "is_traceback_filtering_enabled"):
        assert getattr(nncore.config, name)() == getattr(keras.config, name)(), name
    assert nncore.config.dtype_policy() == keras.config.dtype_policy().name
    assert nncore.config.backend() == "nncore"


def test_config_setters():
    nncore.config.set_floatx("float32")
    nncore.config.set_image_data_format("channels_last")
    nncore.config.set_dtype_policy("float32")
    for bad, setter in (("float64", nncore.config.set_floatx),
                        ("mixed_float16", nncore.config.set_dtype_policy),
                        ("channels_first", nncore.config.set_image_data_format)):
        with pytest.raises(ValueError, match="float32|channels_last"):
            setter(bad)
    old = nncore.config.epsilon()
    try:
        nncore.config.set_epsilon(1e-5)
        assert nncore.config.epsilon() == nncore.backend.epsilon() == 1e-5
    finally:
        nncore.config.set_epsilon(old)
    nncore.config.disable_traceback_filtering()
    assert not nncore.config.is_traceback_filtering_enabled()
    nncore.config.enable_traceback_filtering()
    assert nncore.config.is_traceback_filtering_enabled()


def test_unsafe_deserialization_still_runs_no_file_code(tmp_path):
    """enable_unsafe_deserialization is accepted, and a Lambda holding Python code is still
    refused when its file is read."""
    keras = require("keras", minversion="3.0")
    km = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t * 2)])
    km.save(tmp_path / "l.keras")
    nncore.config.enable_unsafe_deserialization()
    with pytest.raises(ValueError, match="Lambda"):
        nncore.models.load_model(tmp_path / "l.keras")


def test_variable_lists():
    m = nncore.Sequential([nncore.Input((4,)), layers.Dense(3), layers.BatchNormalization()])
    for layer in [m] + m.layers:
        assert [id(w) for w in layer.trainable_variables] == [id(w) for w in
                                                              layer.trainable_weights]
        assert [id(w) for w in layer.non_trainable_variables] == [
            id(w) for w in layer.non_trainable_weights]
        assert [id(w) for w in layer.variables] == [id(w) for w in layer.weights]
    assert len(m.trainable_variables) == 4 and len(m.non_trainable_variables) == 2
    assert all(isinstance(w, np.ndarray) for w in m.variables)
