"""model.save / models.load_model and save_weights / load_weights: identical predictions after a
round trip; corrupt, truncated and hostile files raise ValueError (never anything else)."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile

import numpy as np
import pytest
from conftest import platform_skipif
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nncore import layers, models, optimizers, regularizers, utils


def _model():
    utils.set_random_seed(0)
    model = models.Sequential([
        layers.Conv2D(3, 3, activation="relu", padding="same", input_shape=(6, 6, 2),
                      kernel_regularizer=regularizers.l2(1e-3)),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(5, activation="tanh"),
        layers.Dense(3, activation="softmax", name="probs"),
    ])
    model.compile(optimizer=optimizers.Adam(0.005), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = _model()
    path = tmp_path_factory.mktemp("m") / "model.nncore"
    model.save(path)
    return model, path, path.read_bytes()


def test_round_trip_identical_predictions(saved, rng, tmp_path):
    model, path, _ = saved
    x = rng.normal(size=(7, 6, 6, 2)).astype(np.float32)
    again = models.load_model(path)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    assert [type(lay) for lay in again.layers] == [type(lay) for lay in model.layers]
    assert again.layers[-1].name == "probs"
    assert again.get_config() == model.get_config()
    # Compiled on load: it can keep training.
    assert isinstance(again.optimizer, optimizers.Adam) and again.optimizer.learning_rate == 0.005
    again.fit(x, np.arange(7) % 3, epochs=1, verbose=0)
    path2 = tmp_path / "noext"
    again.save(path2)  # no extension appended
    assert path2.exists()


def test_recurrent_round_trip(rng, tmp_path):
    utils.set_random_seed(1)
    model = models.Sequential([layers.GRU(4, return_sequences=True, input_shape=(5, 3)),
                               layers.LSTM(3, return_sequences=True), layers.SimpleRNN(2)])
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    model.save(tmp_path / "r.npz")
    np.testing.assert_array_equal(models.load_model(tmp_path / "r.npz").predict(x),
                                  model.predict(x))


def test_save_load_weights(saved, rng, tmp_path):
    model, _, _ = saved
    model.save_weights(tmp_path / "w.npz")
    other = _model()
    utils.set_random_seed(9)
    other = models.Sequential([layers.Conv2D(3, 3, activation="relu", padding="same",
                                             input_shape=(6, 6, 2)), layers.MaxPooling2D(),
                               layers.Flatten(), layers.Dropout(0.2),
                               layers.Dense(5, activation="tanh"),
                               layers.Dense(3, activation="softmax")])
    other.load_weights(tmp_path / "w.npz")
    x = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    wrong = models.Sequential([layers.Dense(3, input_shape=(4,))])
    before = wrong.get_weights()
    with pytest.raises(ValueError, match=r"not a valid nncore weights file: file has 6 weight "
                                         r"arrays, model '\w+' has 2"):
        wrong.load_weights(tmp_path / "w.npz")
    for a, b in zip(before, wrong.get_weights()):
        np.testing.assert_array_equal(a, b)  # untouched on error
    with pytest.raises(ValueError, match="not a valid nncore model file: config does not "
                                         "describe a "):
        models.load_model(tmp_path / "w.npz")  # a weights file is not a model file


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "nope.npz")


def _rewrite(raw: bytes, **replace) -> bytes:
    """Copy of the zip with members replaced (name -> bytes) or removed (name -> None)."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = replace.pop(name, src.read(name))
            if data is not None:
                dst.writestr(name, data)
        for name, data in replace.items():
            dst.writestr(name, data)
    return out.getvalue()


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _config(raw):
    return json.loads(np.load(io.BytesIO(raw))["config"].tobytes())


def _with_config(raw, cfg):
    return _rewrite(raw, **{"config.npy": _npy(np.frombuffer(json.dumps(cfg).encode(),
                                                             np.uint8))})


def _hostile_cases(raw):
    cfg = _config(raw)
    cases = {}

    def variant(name, mutate):
        c = json.loads(json.dumps(cfg))
        mutate(c)
        cases[name] = _with_config(raw, c)

    layers_of = lambda c: c["model"]["config"]["layers"]  # noqa: E731
    variant("unknown_class", lambda c: layers_of(c)[1].update(class_name="Lambda2"))
    variant("module_path", lambda c: layers_of(c)[1].update(class_name="os.system"))
    variant("huge_units", lambda c: c["model"]["config"]["layers"][5]["config"].update(units=2**30))
    variant("neg_units", lambda c: c["model"]["config"]["layers"][5]["config"].update(units=-3))
    variant("bool_units", lambda c: c["model"]["config"]["layers"][5]["config"].update(units=True))
    variant("huge_input", lambda c: c["model"]["config"]["layers"][0]["config"].update(
        shape=[2**30, 2**30, 2]))
    variant("bad_kwarg", lambda c: c["model"]["config"]["layers"][5]["config"].update(evil="x"))
    variant("bad_act", lambda c: layers_of(c)[5]["config"].update(activation="exec"))
    variant("bad_init", lambda c: c["model"]["config"]["layers"][5]["config"].update(
        kernel_initializer={"class_name": "builtins.eval", "config": {}}))
    variant("bad_version", lambda c: c.update(version=99))
    variant("no_layers", lambda c: c["model"]["config"].update(layers=[]))
    variant("layers_not_list", lambda c: c["model"]["config"].update(layers={"a": 1}))
    variant("bad_optimizer", lambda c: c["compile"].update(optimizer={"class_name": "X",
                                                                      "config": {}}))
    cases["not_json"] = _rewrite(raw, **{"config.npy": _npy(np.frombuffer(b"{nope", np.uint8))})
    cases["deep_json"] = _rewrite(raw, **{"config.npy": _npy(np.frombuffer(b"[" * 100000,
                                                                            np.uint8))})
    cases["pickled_config"] = _rewrite(raw, **{"config.npy": _npy(np.array([{"a": 1}],
                                                                          dtype=object))})
    cases["pickled_weight"] = _rewrite(raw, **{"w0000.npy": _npy(np.array([1], dtype=object))})
    cases["wrong_shape"] = _rewrite(raw, **{"w0000.npy": _npy(np.zeros((3, 3, 2, 4),
                                                                      np.float32))})
    cases["wrong_dtype"] = _rewrite(raw, **{"w0000.npy": _npy(np.zeros((3, 3, 2, 3)))})
    cases["fortran"] = _rewrite(raw, **{"w0000.npy": _npy(np.asfortranarray(
        np.zeros((3, 3, 2, 3), np.float32)))})
    hdr = _npy(np.zeros((3, 3, 2, 3), np.float32))
    cases["short_data"] = _rewrite(raw, **{"w0000.npy": hdr[:-8]})
    cases["lying_header"] = _rewrite(raw, **{"w0000.npy": hdr.replace(b"(3, 3, 2, 3)",
                                                                      b"(3, 3, 9, 3)")})
    cases["missing_weight"] = _rewrite(raw, **{"w0003.npy": None})
    cases["extra_member"] = _rewrite(raw, **{"evil.py": b"import os"})
    cases["no_config"] = _rewrite(raw, **{"config.npy": None})
    cases["empty"] = b""
    cases["garbage"] = b"PK\x03\x04" + b"\x00" * 100
    cases["truncated"] = raw[: len(raw) // 2]
    return cases


# Each hostile file is refused for its own reason (a loader bug that raised something else, or
# refused for a different reason, would not pass for a correct refusal). Layer names carry a
# process-wide counter suffix (dense_7), hence the \w* in them.
REASONS = {
    "unknown_class": (r"sequential model config, layer 1: unknown layer type 'Lambda2': it is "
                      r"neither built into nncore"),
    "module_path": (r"sequential model config, layer 1: unknown layer type 'os.system': it is "
                    r"neither built into nncore"),
    "huge_units": r"cannot connect layer 'dropout\w*' \(Dropout\), output shape \(None, 27\), "
                  r"to layer 'dense\w*' \(Dense\): the config declares more than "
                  r"max_params=268435456 parameters",
    "neg_units": r"dense\w*: units must be a positive int, got -3",
    "bool_units": r"dense\w*: units must be a positive int, got True",
    "huge_input": (r"cannot connect the model input, output shape \(None, 1073741824, "
                   r"1073741824, 2\), to layer 'conv2d\w*' \(Conv2D\): layer 'conv2d\w*': output shape \(None, 1073741824, 1073741824, 3\) "
                   r"is too large"),
    "bad_kwarg": r"sequential model config, layer 5: layer 'dense\w*' \(Dense\): Dense: unexpected argument\(s\) "
                 r"\['evil'\]",
    "bad_act": r"unknown activation 'exec'",
    "bad_init": r"invalid initializer config \{'class_name': 'builtins.eval'",
    "bad_version": r"unsupported file version 99",
    "no_layers": r"sequential model config: 'layers' must be a non-empty list",
    "layers_not_list": r"sequential model config: 'layers' must be a non-empty list",
    "bad_optimizer": r"invalid optimizer config \{'class_name': 'X'",
    "not_json": r"config is not valid JSON: Expecting property name",
    "deep_json": r"config is not valid JSON: maximum recursion depth exceeded",
    "pickled_config": r"config: object arrays are not accepted",
    "pickled_weight": r"w0000: object arrays are not accepted",
    "wrong_shape": (r"weight 'conv2d\w*/kernel': file has shape \(3, 3, 2, 4\), model needs "
                    r"\(3, 3, 2, 3\)"),
    "wrong_dtype": r"w0000: dtype float64, expected float32",
    "fortran": r"w0000: Fortran-ordered arrays are not accepted",
    "short_data": r"w0000: member holds 208 data bytes, its header says 216",
    "lying_header": (r"weight 'conv2d\w*/kernel': file has shape \(3, 3, 9, 3\), model needs "
                     r"\(3, 3, 2, 3\)"),
    "missing_weight": r"expected 6 weight and 0 optimizer arrays, found 5",
    "extra_member": r"unexpected members \['evil.py'\]",
    "no_config": r"no 'config' member: not an nncore model file",
    "empty": r"not a zip file \(no end-of-central-directory record\)",
    "garbage": r"not a zip file \(no end-of-central-directory record\)",
    "truncated": r"not a zip file \(no end-of-central-directory record\)",
}


def test_hostile_files_raise_value_error(saved, tmp_path):
    _, _, raw = saved
    cases = _hostile_cases(raw)
    assert set(cases) == set(REASONS)
    for name, data in cases.items():
        p = tmp_path / f"{name}.npz"
        p.write_bytes(data)
        with pytest.raises(ValueError, match="not a valid nncore model file: " + REASONS[name]):
            models.load_model(p)


@pytest.mark.parametrize("exc", [KeyError("bug"), AttributeError("bug"), TypeError("bug"),
                                 IndexError("bug"), RuntimeError("bug")])
def test_loader_bug_is_not_disguised_as_invalid_file(saved, monkeypatch, exc):
    """An internal error while loading a valid file propagates as itself, not as a refusal."""
    from nncore.saving import native as _saving

    _, path, _ = saved

    def broken(*args, **kwargs):
        raise exc
    monkeypatch.setattr(_saving, "_fill_weights", broken)
    with pytest.raises(type(exc), match="bug"):
        models.load_model(path)
    monkeypatch.setattr(_saving, "_read_config", broken)
    with pytest.raises(type(exc), match="bug"):
        models.Sequential([layers.Dense(2, input_shape=(3,))]).load_weights(path)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_model_file_raises_value_error_or_loads(saved, tmp_path_factory, data):
    model, _, raw = saved
    buf = bytearray(raw)
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if kind == "truncate":
        buf = buf[: data.draw(st.integers(0, len(buf) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] = data.draw(st.integers(0, 255))
    else:
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i:i] = data.draw(st.binary(min_size=1, max_size=64))
    p = tmp_path_factory.mktemp("fz") / "m.npz"
    p.write_bytes(bytes(buf))
    try:
        loaded = models.load_model(p)
    except ValueError:
        return
    # A mutation that hit nothing meaningful (e.g. a zip timestamp) still loads the same model.
    x = np.ones((1, 6, 6, 2), np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def _set_encrypted_flag(raw: bytes) -> bytes:
    """The zip with the 'encrypted' bit set on every member (local and central headers)."""
    buf = bytearray(raw)
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = buf.find(sig)
        while i >= 0:
            buf[i + flag_at] |= 0x01
            i = buf.find(sig, i + 4)
    return bytes(buf)


def test_encrypted_member_raises_value_error(saved, tmp_path):
    _, _, raw = saved
    p = tmp_path / "encrypted.npz"
    p.write_bytes(_set_encrypted_flag(raw))
    with pytest.raises(ValueError, match="not a valid nncore model file: member .* is encrypted"):
        models.load_model(p)
    with pytest.raises(ValueError, match="not a valid nncore weights file: member .* is encrypted"):
        models.Sequential([layers.Dense(2, input_shape=(3,))]).load_weights(p)


def _recompress(raw: bytes, replace=None) -> bytes:
    """Copy of the zip with every member deflated (as np.savez_compressed would write it)."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, (replace or {}).get(name, src.read(name)))
    return out.getvalue()


def test_compressed_members_are_refused(saved, tmp_path):
    """A deflated member of zeros is a zip bomb: tiny on disk, huge in memory. np.savez writes
    stored members only, so any compressed member is refused before anything is read."""
    _, _, raw = saved
    p = tmp_path / "deflated.npz"
    p.write_bytes(_recompress(raw))
    with pytest.raises(ValueError, match="compressed"):
        models.load_model(p)
    # A bigger bomb: a 2**22-parameter Dense whose kernel of zeros deflates to a few KB.
    model = models.Sequential([layers.Dense(2**11, input_shape=(2**11,))])
    path = tmp_path / "big.npz"
    model.save(path)
    bomb = _recompress(path.read_bytes(), {"w0000.npy": _npy(np.zeros((2**11, 2**11),
                                                                      np.float32))})
    assert len(bomb) < 100_000
    p.write_bytes(bomb)
    with pytest.raises(ValueError, match="compressed"):
        models.load_model(p)


def test_max_params_cap(saved, tmp_path):
    model, path, raw = saved
    with pytest.raises(ValueError, match="max_params=10"):
        models.load_model(path, max_params=10)
    loaded = models.load_model(path, max_params=model.count_params())
    assert loaded.count_params() == model.count_params()
    assert models.load_model(path, max_params=None).count_params() == model.count_params()
    with pytest.raises(TypeError):
        models.load_model(path, max_params=0)
    # 2**29 parameters declared (under the old 2**31 cap): refused by the default cap before any
    # allocation, with a message naming max_params.
    cfg = _config(raw)
    cfg["model"]["config"]["layers"][5]["config"]["units"] = 2**29 // 18
    p = tmp_path / "huge.npz"
    p.write_bytes(_with_config(raw, cfg))
    with pytest.raises(ValueError, match="max_params"):
        models.load_model(p)
    # Under the cap but more parameters than the file holds bytes: refused before allocation.
    cfg["model"]["config"]["layers"][5]["config"]["units"] = 2**20
    p.write_bytes(_with_config(raw, cfg))
    with pytest.raises(ValueError, match="weight members hold only"):
        models.load_model(p)


@platform_skipif(not hasattr(os, "umask") or os.name != "posix", "POSIX modes")
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_saved_files_honour_umask(saved, tmp_path, mask):
    model = saved[0]
    old = os.umask(mask)
    try:
        model.save(tmp_path / "m.npz")
        model.save_weights(tmp_path / "w.npz")
    finally:
        os.umask(old)
    for name in ("m.npz", "w.npz"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~mask
