"""Keras files for the issue-11 layers, both ways against Keras 3 (TensorFlow 2.21): the same model
built from the same code with `keras` and with `nncore as keras`, random weights, saved by one
side as .keras, legacy .h5 and .weights.h5 and read by the other; predictions within 1e-5."""

from __future__ import annotations

import nncore
import numpy as np
import pytest
from conftest import require
from nncore.saving.keras_format import keras_layer_order

h5py = require("h5py")
tf = require("tensorflow")
keras = require("keras", minversion="3.0")

TOL = 1e-5
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning",
    "ignore:You are saving your model as an HDF5 file:UserWarning")


def _image(K):
    L = K.layers
    inp = K.Input((8, 8, 3))
    x = L.Rescaling(0.5, offset=0.1)(inp)
    x = L.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 0.5])(x)
    x = L.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(max_value=6.0)(x)
    x = L.SeparableConv2D(4, 3, padding="same")(x)
    x = L.LeakyReLU(negative_slope=0.2)(x)
    x = L.Conv2DTranspose(4, 3, strides=2)(x)
    x = L.ELU()(x)
    x = L.Cropping2D(((1, 2), (2, 1)))(x)
    x = L.UpSampling2D((1, 2))(x)
    x = L.SpatialDropout2D(0.3)(x)
    x = L.GaussianNoise(0.1)(x)
    x = L.GaussianDropout(0.2)(x)
    x = L.PReLU(shared_axes=[1, 2])(x)
    x = L.GroupNormalization(groups=2)(x)
    a = L.GlobalAveragePooling2D()(x)
    b = L.GlobalMaxPooling2D()(x)
    y = L.UnitNormalization()(L.Concatenate()([a, b]))
    return K.Model(inp, L.Softmax()(L.Dense(3)(y)))


def _seq(K):
    L = K.layers
    inp = K.Input((10, 4))
    x = L.Normalization()(inp)
    x = L.Conv1D(6, 3, dilation_rate=2)(x)
    x = L.ZeroPadding1D((1, 2))(x)
    x = L.Cropping1D((1, 0))(x)
    x = L.MaxPooling1D(2)(x)
    x = L.UpSampling1D(3)(x)
    x = L.AveragePooling1D(2, padding="same")(x)
    x = L.LayerNormalization()(x)
    x = L.SpatialDropout1D(0.2)(x)
    x = L.Identity()(x)
    x = L.Permute((2, 1))(L.Permute((2, 1))(x))
    x = L.TimeDistributed(L.Dense(5))(x)
    x = L.Bidirectional(L.LSTM(3, return_sequences=True))(x)
    y = L.Concatenate()([L.GlobalAveragePooling1D()(x), L.GlobalMaxPooling1D()(x)])
    y = L.RepeatVector(3)(y)
    y = L.Bidirectional(L.GRU(2), backward_layer=L.GRU(2, go_backwards=True),
                        merge_mode="ave")(y)
    return K.Model(inp, L.Dense(2)(y))


def _text(K):
    L = K.layers
    ids = K.Input((7,), dtype="int32", name="ids")
    x = L.Embedding(12, 4, mask_zero=True)(ids)
    x = L.Bidirectional(L.SimpleRNN(3, return_sequences=True), merge_mode="sum")(x)
    x = L.LSTM(2)(x)
    seq = K.Input((5, 3), name="seq")
    m = L.GRU(2)(L.Masking(0.0)(seq))
    return K.Model([ids, seq], L.Dense(2)(L.Concatenate()([x, m])))


_BUILD = {"image": _image, "seq": _seq, "text": _text}


def _inputs(kind, rng):
    if kind == "image":
        return rng.normal(size=(4, 8, 8, 3)).astype(np.float32)
    if kind == "seq":
        return rng.normal(size=(4, 10, 4)).astype(np.float32)
    ids = rng.integers(1, 12, size=(4, 7)).astype(np.int32)
    ids[1, 4:] = 0
    ids[2, 2:] = 0
    seq = rng.normal(size=(4, 5, 3)).astype(np.float32)
    seq[0, 3:] = 0.0
    seq[3, 1] = 0.0
    return [ids, seq]


def _value(name, shape, rng):
    if "variance" in name:
        return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
    return (rng.normal(size=shape) * 0.4).astype(np.float32)


def _randomize_keras(km, rng):
    for v in km.weights:
        if "int" not in str(v.dtype):
            v.assign(_value(v.path, tuple(v.shape), rng))
    for lay in km.layers:
        if isinstance(lay, keras.layers.Normalization):
            lay.finalize_state()  # Keras derives the mean/variance it applies from its variables


def _randomize_nncore(m, rng):
    m.set_weights([_value(n, w.shape, rng) for n, w in zip(m._all_weight_names(), m.weights)])


def _pred(m, x):
    return np.asarray(m.predict(x, verbose=0))


def _classes(m):
    out = set()
    for lay in m.layers:
        out.add(type(lay).__name__)
        for inner in ("layer", "forward_layer", "backward_layer"):
            if hasattr(lay, inner):
                out.add(type(getattr(lay, inner)).__name__)
    return out


FORMERLY_UNCONVERTED = {
    "AveragePooling1D", "BatchNormalization", "Bidirectional", "Conv1D", "Conv2DTranspose",
    "Cropping1D", "Cropping2D", "DepthwiseConv2D", "ELU", "Embedding", "GaussianDropout",
    "GaussianNoise", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GroupNormalization", "Identity", "LayerNormalization", "LeakyReLU",
    "Masking", "MaxPooling1D", "Normalization", "PReLU", "Permute", "ReLU", "RepeatVector",
    "Rescaling", "SeparableConv2D", "Softmax", "SpatialDropout1D", "SpatialDropout2D",
    "TimeDistributed", "UnitNormalization", "UpSampling1D", "UpSampling2D", "ZeroPadding1D",
    "ZeroPadding2D",
}


def test_the_models_cover_every_formerly_unconverted_layer():
    used = set().union(*(_classes(b(nncore)) for b in _BUILD.values()))
    assert sorted(FORMERLY_UNCONVERTED - used) == []


def test_every_config_key_of_the_new_layers_is_written():
    """The writer passes a key only when the table lists it: every key nncore's get_config
    gives must be in the table (or handled as a nested layer), or Keras would get a default."""
    from nncore.saving.keras_format import KERAS_LAYERS

    for b in _BUILD.values():
        for lay in b(nncore).layers:
            spec = KERAS_LAYERS.get(type(lay).__name__)
            if spec is None:
                assert type(lay).__name__ == "InputLayer"
                continue
            extra = set(lay.get_config()) - {"name", "trainable"} - spec.args - spec.nested
            assert extra == set(), (type(lay).__name__, extra)


@pytest.mark.parametrize("kind", sorted(_BUILD))
@pytest.mark.parametrize("ext", [".keras", ".h5", ".weights.h5"])
def test_keras_model_of_new_layers_read_by_nncore(kind, ext, rng, tmp_path):
    keras.utils.set_random_seed(3)
    km = _BUILD[kind](keras)
    _randomize_keras(km, rng)
    x = _inputs(kind, rng)
    path = tmp_path / f"m{ext}"
    if ext == ".weights.h5":
        km.save_weights(path)
        ours = _BUILD[kind](nncore)
        ours.load_weights(path)
    else:
        km.save(path)
        ours = nncore.models.load_model(path)
        # Keras's order (a masked graph's mask operations move it: the reader keeps the file's)
        order = keras_layer_order(ours)
        assert [lay.name for lay in order] == [lay.name for lay in km.layers]
        assert [type(lay).__name__ for lay in order] == [type(lay).__name__ for lay in km.layers]
    np.testing.assert_allclose(_pred(ours, x), _pred(km, x), atol=TOL, rtol=0)


@pytest.mark.parametrize("kind", sorted(_BUILD))
@pytest.mark.parametrize("ext", [".keras", ".h5", ".weights.h5"])
def test_nncore_model_of_new_layers_read_by_keras(kind, ext, rng, tmp_path):
    ours = _BUILD[kind](nncore)
    _randomize_nncore(ours, rng)
    x = _inputs(kind, rng)
    path = tmp_path / f"m{ext}"
    if ext == ".weights.h5":
        ours.save_weights(path)
        km = _BUILD[kind](keras)
        km.load_weights(path)
    else:
        ours.save(path)
        km = keras.models.load_model(path)
    np.testing.assert_allclose(_pred(km, x), _pred(ours, x), atol=TOL, rtol=0)
    # and back: the file nncore wrote reads into nncore to the same predictions
    if ext != ".weights.h5":
        np.testing.assert_allclose(_pred(nncore.models.load_model(path), x), _pred(ours, x),
                                   atol=0, rtol=0)


def test_adapted_normalization_count_is_checked(rng, tmp_path):
    m = _seq(nncore)
    m.layers[1].adapt(rng.normal(size=(20, 10, 4)).astype(np.float32))
    path = tmp_path / "m.keras"
    m.save(path)
    k = keras.models.load_model(path)
    x = _inputs("seq", rng)
    np.testing.assert_allclose(_pred(k, x), _pred(m, x), atol=TOL, rtol=0)
    # a count that is not an integer scalar is refused, naming the dataset
    import io
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    buf = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buf, "r+") as f:
        del f["layers/normalization/vars/2"]
        f["layers/normalization/vars/2"] = np.float32(3.5)
    members["model.weights.h5"] = buf.getvalue()
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_STORED) as z:
        for n, d in members.items():
            z.writestr(n, d)
    with pytest.raises(ValueError, match="normalization/vars/2.*integer scalar"):
        nncore.models.load_model(bad)


def test_keras_values_nncore_cannot_honour_are_named(tmp_path):
    L = keras.layers
    km = keras.Sequential([keras.Input((6, 3)), L.Conv1D(4, 3, groups=1),
                           L.BatchNormalization(renorm=True)])
    km.save(tmp_path / "r.keras")
    with pytest.raises(ValueError, match="renorm=True is not supported"):
        nncore.models.load_model(tmp_path / "r.keras")
    # a value refused inside a wrapper is named too (RNN dropout is honoured since issue 11)
    km = keras.Sequential([keras.Input((6, 3)), L.LSTM(2, return_state=False),
                           L.RepeatVector(2),
                           L.Bidirectional(L.LSTM(2, recurrent_activation="hard_sigmoid"))])
    km.save(tmp_path / "d.keras")
    with pytest.raises(ValueError, match="recurrent_activation"):
        nncore.models.load_model(tmp_path / "d.keras")
    km = keras.Sequential([keras.Input((6, 3)), L.Bidirectional(L.LSTM(2, dropout=0.5))])
    km.save(tmp_path / "e.keras")
    back = nncore.models.load_model(tmp_path / "e.keras").layers[-1]
    assert back.forward_layer.dropout == back.backward_layer.dropout == 0.5


def test_keras_operations_other_than_the_masks_are_refused(tmp_path):
    import json
    import zipfile

    km = _text(keras)
    km.save(tmp_path / "t.keras")
    with zipfile.ZipFile(tmp_path / "t.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(members["config.json"])
    ops = [e for e in cfg["config"]["layers"] if e["class_name"] == "NotEqual"]
    assert len(ops) == 2  # Keras 3 records the Embedding's and the Masking's masks as operations
    ops[0]["inbound_nodes"][0]["args"][1] = 1  # not the mask Embedding(mask_zero=True) computes
    members["config.json"] = json.dumps(cfg).encode()
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_STORED) as z:
        for n, d in members.items():
            z.writestr(n, d)
    with pytest.raises(ValueError, match=f"operation '{ops[0]['name']}' .NotEqual. is not "
                       "supported"):
        nncore.models.load_model(bad)


def _masked_grus(K):
    """Three GRUs (same class: their h5 groups gru, gru_1, gru_2 depend on Keras's order), two
    fed through masks Keras records as operations."""
    L = K.layers
    ids = K.Input((6,), dtype="int32", name="ids")
    a = L.GRU(3)(L.Embedding(10, 4, mask_zero=True)(ids))
    seq = K.Input((5, 2), name="seq")
    b = L.GRU(3)(L.Masking()(seq))
    c = L.GRU(3)(seq)
    return K.Model([ids, seq], L.Dense(2)(L.Concatenate()([a, b, c])))


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_masked_graph_with_same_class_layers_both_ways(ext, rng, tmp_path):
    x = [rng.integers(1, 10, (3, 6)).astype(np.int32),
         rng.normal(size=(3, 5, 2)).astype(np.float32)]
    x[0][0, 3:] = 0
    x[1][1, 2:] = 0
    ours = _masked_grus(nncore)
    _randomize_nncore(ours, rng)
    ours.save(tmp_path / f"n{ext}")
    np.testing.assert_allclose(_pred(keras.models.load_model(tmp_path / f"n{ext}"), x),
                               _pred(ours, x), atol=TOL, rtol=0)
    km = _masked_grus(keras)
    _randomize_keras(km, rng)
    km.save(tmp_path / f"k{ext}")
    np.testing.assert_allclose(_pred(nncore.models.load_model(tmp_path / f"k{ext}"), x),
                               _pred(km, x), atol=TOL, rtol=0)
