"""Any model the API accepts round-trips through save / load_model: same config, same
predictions (hypothesis over layer arguments, numpy scalar types and names included)."""

from __future__ import annotations

import nncore as keras
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nncore import layers

ints = st.integers(1, 6)
np_ints = st.one_of(ints, ints.map(np.int64), ints.map(np.int32))
rates = st.one_of(st.floats(0, 0.9), st.floats(0, 0.9).map(np.float32))
acts = st.sampled_from([None, "relu", "tanh", "sigmoid", "linear", "softmax"])
names = st.one_of(st.none(), st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF),
                                     min_size=1, max_size=12))


@st.composite
def dense_stack(draw):
    n = draw(st.integers(1, 4))
    out = []
    for i in range(n):
        kind = draw(st.sampled_from(["dense", "dropout", "activation"]))
        name = draw(names)
        name = None if name is None else f"{name}_{i}"
        if kind == "dense":
            out.append(layers.Dense(draw(np_ints), activation=draw(acts),
                                    use_bias=draw(st.booleans()), name=name))
        elif kind == "dropout":
            out.append(layers.Dropout(draw(rates), name=name))
        else:
            out.append(layers.Activation(draw(acts), name=name))
    return draw(np_ints), out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=dense_stack(), functional=st.booleans(), mname=names)
def test_any_accepted_model_round_trips(tmp_path, spec, functional, mname):
    features, stack = spec
    if functional:
        inp = keras.Input(shape=(int(features),))
        x = inp
        for lay in stack:
            x = lay(x)
        model = keras.Model(inp, x, name=mname)
    else:
        model = keras.Sequential([keras.Input(shape=(features,))] + stack, name=mname)
    model.compile(optimizer="adam", loss="mse")
    x = np.linspace(-1, 1, 3 * int(features), dtype=np.float32).reshape(3, -1)
    path = tmp_path / "m.nncore"
    model.save(path)
    again = keras.models.load_model(path)
    assert again.get_config() == model.get_config()
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
