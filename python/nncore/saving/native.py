"""nncore's model files: one uncompressed zip (npz layout, np.savez: every member ZIP_STORED)
  config.npy     the architecture and compile settings as UTF-8 JSON in a uint8 array
  w0000.npy ...  the weights, float32, in model.get_weights() order.
Format "nncore.Model" version 2 records any graph ({"class_name", "config"} of the model, rebuilt
through the registry); files of version 1 ("nncore.Sequential", written before graphs) still load.

Reading never unpickles (allow_pickle is never on), never imports anything named by the file (layer
types come from layers.LAYER_REGISTRY), checks every array header (dtype, order, shape, byte size)
against the architecture before reading data into memory, and turns any corruption into ValueError.
Compressed or encrypted members are refused (np.savez never writes them; a deflated member of zeros
is a zip bomb), the members' declared sizes must fit in the file's real size, the parameter count
the config declares must fit in the bytes the weight members hold and in max_params, and weight
data is read straight into the model's arrays (no second copy).
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import tokenize
import zipfile
import zlib

import numpy as np

from . import files
from .registry import custom_object_scope

FORMAT = "nncore.Model"
VERSION = 2
OLD_FORMAT = "nncore.Sequential"  # version 1: a Sequential's {name, input_shape, layers}
MAX_CONFIG_BYTES = 8 << 20
MAX_CONFIG_ITEMS = 1 << 20
MAX_LAYERS = 4096
MAX_TOTAL_PARAMS = 1 << 28  # elements (1 GiB of float32): load_model's default max_params
MAX_SAMPLE_SIZE = 1 << 31   # elements of one sample's activation


class _Bad(Exception):
    pass


def _weight_key(i: int) -> str:
    return f"w{i:04d}"


def _name(filepath) -> str:
    if isinstance(filepath, (str, bytes, os.PathLike)):
        return repr(os.fsdecode(os.fspath(filepath)))
    if isinstance(filepath, int):
        return f"<file descriptor {filepath}>"
    return repr(getattr(filepath, "name", type(filepath).__name__))


def _write(filepath, arrays: dict, overwrite=True) -> None:
    if not overwrite and os.path.exists(os.path.realpath(os.fspath(filepath))):
        raise FileExistsError(f"{_name(filepath)} exists and overwrite=False")
    # np.savez on a file object: no '.npz' appended to the name; every member ZIP_STORED.
    files.atomic_write(filepath, lambda f: np.savez(f, **arrays))


def _config_array(cfg: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(cfg).encode("utf-8"), dtype=np.uint8)


def _compile_config(model):
    if not model.compiled:
        return None
    from .. import losses, metrics, optimizers

    def ser_loss(v):
        if v is None:
            return None
        if isinstance(v, dict):
            return {k: ser_loss(x) for k, x in v.items()}
        if isinstance(v, list):
            return [ser_loss(x) for x in v]
        return losses.serialize(v)

    def ser_metric(m):
        if isinstance(m, str):
            return m
        if isinstance(m, (list, tuple)):
            return [ser_metric(x) for x in m]
        if isinstance(m, dict):
            return {k: ser_metric(x) for k, x in m.items()}
        if isinstance(m, metrics.Metric):
            cfg = m.get_config() if hasattr(m, "get_config") else {"name": m.name}
            return {"class_name": type(m).__name__, "config": cfg}
        if callable(m) and not isinstance(m, type):
            return metrics.function_name(m)  # read back by name (custom_objects for a user's)
        if isinstance(m, type) and issubclass(m, metrics.Metric):
            return {"class_name": m.__name__, "config": m().get_config()}
        raise ValueError(f"cannot save metric {m!r}")

    spec = model._compile_spec
    return {"optimizer": optimizers.serialize(model.optimizer), "loss": ser_loss(spec["loss"]),
            "loss_weights": spec["loss_weights"], "metrics": ser_metric(spec["metrics"])}


def _weights_of(model):
    return model.weights


def save_model(model, filepath, overwrite=True, **kwargs) -> None:
    from .serialization import serialize_layer

    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; build or fit it before saving")
    cfg = {"format": FORMAT, "version": VERSION, "model": serialize_layer(model),
           "compile": _compile_config(model)}
    state = _optimizer_state(model)
    if state:
        cfg["optimizer_state"] = len(state)
    arrays = {"config": _config_array(cfg)}
    for i, w in enumerate(_weights_of(model)):
        arrays[_weight_key(i)] = w
    for i, a in enumerate(state):
        arrays[_state_key(i)] = a
    _write(filepath, arrays, overwrite)


def _state_key(i: int) -> str:
    return f"o{i:04d}"


def _train_params(model):
    return [layer._weights[i] for layer, i in model._trainable_slots()]


def _optimizer_state(model) -> list:
    """The optimizer's state (step count, moments...) when it has taken a step: saved with the
    model so that training resumes exactly after load_model."""
    opt = getattr(model, "optimizer", None)
    if not model.compiled or opt is None or not getattr(opt, "_slots", None) or \
            not hasattr(opt, "get_state"):
        return []
    return opt.get_state(_train_params(model))


def save_weights(model, filepath, overwrite=True) -> None:
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; nothing to save")
    ws = _weights_of(model)
    cfg = {"format": FORMAT + ".weights", "version": VERSION,
           "weights": [[n, list(w.shape)] for n, w in zip(model._all_weight_names(), ws)]}
    arrays = {"config": _config_array(cfg)}
    for i, w in enumerate(ws):
        arrays[_weight_key(i)] = w
    _write(filepath, arrays, overwrite)


# ---- reading --------------------------------------------------------------------------------
def _header(f, name):
    """(shape, dtype) from an .npy header, validated."""
    try:
        version = np.lib.format.read_magic(f)
    except ValueError as e:
        raise _Bad(f"{name}: not an .npy array ({e})") from None
    if version not in ((1, 0), (2, 0)):
        raise _Bad(f"{name}: unsupported .npy version {version}")
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    try:
        shape, fortran, dtype = read(f)
    except (SyntaxError, tokenize.TokenError, TypeError) as e:
        # numpy parses the header with Python's tokenizer: a garbled one raises these, not
        # ValueError (found by tests/test_fuzz_readers.py)
        raise _Bad(f"{name}: unreadable .npy header ({type(e).__name__}: {e})") from None
    if fortran:
        raise _Bad(f"{name}: Fortran-ordered arrays are not accepted")
    if dtype.hasobject:
        raise _Bad(f"{name}: object arrays are not accepted")
    return tuple(shape), dtype


def _read_array(zf, name, want_dtype, check_shape, out=None):
    """Read member `name` as an array after check_shape(shape) approved its header; into `out`
    (C-contiguous, that shape and dtype) when given."""
    try:
        info = zf.getinfo(name + ".npy")
    except KeyError:
        raise _Bad(f"member {name!r} is missing") from None
    with zf.open(info) as f:
        shape, dtype = _header(f, name)
        if dtype != want_dtype:
            raise _Bad(f"{name}: dtype {dtype}, expected {want_dtype}")
        if any((not isinstance(d, int)) or d < 0 for d in shape):
            raise _Bad(f"{name}: invalid shape {shape}")
        check_shape(shape)
        nbytes = math.prod(shape) * dtype.itemsize
        header_len = f.tell()
        if info.file_size != header_len + nbytes:
            raise _Bad(f"{name}: member holds {info.file_size - header_len} data bytes, "
                       f"its header says {nbytes}")
        if out is None:
            out = np.empty(shape, dtype)
        elif out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
            raise _Bad(f"{name}: cannot read into the destination array")
        view = memoryview(out).cast("B")
        got = 0
        while got < nbytes:
            k = f.readinto(view[got:])
            if not k:
                raise _Bad(f"{name}: truncated data")
            got += k
    return out


def _open_zip(filepath):
    fh, real_size = files.open_regular(filepath)  # FileNotFoundError passes through unchanged
    try:
        files.zip_member_count(fh, real_size)  # before zipfile parses every entry
        data_file = io.BytesIO(fh.read()) if real_size < (64 << 20) else None
    except BaseException:
        fh.close()
        raise
    if data_file is not None:
        fh.close()
    try:
        zf = zipfile.ZipFile(data_file if data_file is not None else fh)
    except NotImplementedError as e:  # zipfile: a header field it does not support
        raise _Bad(f"unsupported zip file: {e}") from None
    try:
        declared = 0
        for info in zf.infolist():
            if info.flag_bits & 0x1:  # zipfile would raise RuntimeError asking for a password
                raise _Bad(f"member {info.filename!r} is encrypted")
            if info.flag_bits & 0x60:  # zipfile.open would raise NotImplementedError
                raise _Bad(f"member {info.filename!r} uses patched data or strong encryption")
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise _Bad(f"member {info.filename!r} is compressed; nncore files are written "
                           "uncompressed (np.savez) and compressed members are refused")
            declared += info.file_size
        if declared > real_size:
            raise _Bad(f"members declare {declared} bytes but the file holds {real_size}")
    except BaseException:
        zf.close()
        raise
    return zf


def _read_config(zf, want_format):
    names = set(zf.namelist())
    if "config.npy" not in names:
        raise _Bad("no 'config' member: not an nncore model file")

    def small(shape):
        if len(shape) != 1 or shape[0] > MAX_CONFIG_BYTES:
            raise _Bad(f"config: bad shape {shape}")

    raw = _read_array(zf, "config", np.dtype(np.uint8), small)
    # Parsing JSON costs ~100x its size in Python objects for small nested containers: bound the
    # number of containers and items from the bytes before parsing.
    b = raw.tobytes()
    items = b.count(b"[") + b.count(b"{") + b.count(b",")
    if items > MAX_CONFIG_ITEMS:
        raise _Bad(f"config has {items} JSON items, more than {MAX_CONFIG_ITEMS}")
    try:
        cfg = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _Bad(f"config is not valid JSON: {e}") from None
    formats = {FORMAT: VERSION, OLD_FORMAT: 1} if want_format == FORMAT else {
        want_format: VERSION, OLD_FORMAT + ".weights": 1}
    if not isinstance(cfg, dict) or not isinstance(cfg.get("format"), str) or \
            cfg["format"] not in formats:
        raise _Bad(f"config does not describe a {want_format}")
    if cfg.get("version") != formats[cfg["format"]]:
        raise _Bad(f"unsupported file version {cfg.get('version')!r}")
    return cfg, names


def _check_members(names, count, n_state=0):
    allowed = {"config.npy"} | {_weight_key(i) + ".npy" for i in range(count)} | {
        _state_key(i) + ".npy" for i in range(n_state)}
    extra = names - allowed
    if extra:
        raise _Bad(f"unexpected members {sorted(extra)[:5]}")
    if len(names) != count + n_state + 1:
        raise _Bad(f"expected {count} weight and {n_state} optimizer arrays, found "
                   f"{len(names) - 1}")


def _read_optimizer_state(zf, model, n_state):
    params = _train_params(model)
    if n_state > 4 * len(params) + 64:
        raise _Bad(f"optimizer_state: {n_state} arrays for {len(params)} weights")
    sizes = {w.shape for w in params} | {()}
    arrays = []
    for i in range(n_state):
        def check(shape, i=i):
            if shape not in sizes:
                raise _Bad(f"optimizer state {i}: shape {shape} matches no weight")
        arrays.append(_read_array(zf, _state_key(i), np.dtype("<i8") if i == 0 else
                                  np.dtype("<f4"), check))
    try:
        model.optimizer.set_state(params, arrays)
    except ValueError as e:
        raise _Bad(f"optimizer state does not fit the model: {e}") from None


def _check_max_params(max_params):
    if max_params is not None and (isinstance(max_params, bool) or not isinstance(
            max_params, (int, np.integer)) or max_params < 1):
        raise TypeError(f"max_params must be a positive int or None, got {max_params!r}")


def _v1_to_v2(mcfg):
    """A version-1 Sequential config {name, input_shape, layers} as a version-2 model entry."""
    from ..layers.base import shape_tuple

    if not isinstance(mcfg, dict) or set(mcfg) != {"name", "input_shape", "layers"}:
        raise _Bad("model config must have exactly 'name', 'input_shape', 'layers'")
    layers_cfg = mcfg["layers"]
    if not isinstance(layers_cfg, list) or not 0 < len(layers_cfg) <= MAX_LAYERS:
        raise _Bad("model config: 'layers' must be a non-empty list")
    if not isinstance(mcfg["name"], str) or mcfg["input_shape"] is None:
        raise _Bad("model config: bad name or missing input shape")
    input_shape = shape_tuple(mcfg["input_shape"], "input_shape", "model")
    for i, entry in enumerate(layers_cfg):
        if not isinstance(entry, dict) or set(entry) != {"class_name", "config"}:
            raise _Bad(f"layer {i}: entry must be {{'class_name', 'config'}}")
        if entry["class_name"] == "InputLayer":
            raise _Bad(f"layer {i}: unknown layer type 'InputLayer'")
    return {"class_name": "Sequential",
            "config": {"name": mcfg["name"],
                       "layers": [{"class_name": "InputLayer",
                                   "config": {"shape": list(input_shape)}}] + layers_cfg}}


def model_from_entry(entry, allocate, max_params=MAX_TOTAL_PARAMS, max_weight_bytes=None,
                     custom_objects=None):
    """A model from its {'class_name', 'config'}, every shape validated while it is rebuilt.
    While building: at most max_params parameters (None: no cap) and, when given, at most
    max_weight_bytes bytes of float32 weights, checked before each weight is allocated; weights
    are left zero unless allocate."""
    from ..layers import base
    from .serialization import deserialize_layer

    prev = getattr(base._limits, "value", None)
    base._limits.value = {"params": 0, "max_params": max_params, "max_bytes": max_weight_bytes,
                          "allocate": allocate}
    try:
        model = deserialize_layer(entry, custom_objects)
    finally:
        base._limits.value = prev
    if not getattr(model, "_is_model", False):
        raise _Bad(f"the file holds a {type(model).__name__}, not a model")
    if not model.built:
        raise _Bad("the model in the file has no input shape")
    return model


def _fill_weights(zf, model, expected_names=None):
    weights = model.weights
    names = model._all_weight_names()
    for i, (w, wname) in enumerate(zip(weights, names)):
        def check(shape, w=w, wname=wname):
            if shape != w.shape:
                raise _Bad(f"weight {wname!r}: file has shape {shape}, model needs {w.shape}")
        _read_array(zf, _weight_key(i), np.dtype("<f4"), check, out=w)  # straight into w


# What a damaged or hostile file can make the readers raise: our own checks (_Bad), zipfile's and
# numpy's format errors. Anything else (KeyError, TypeError, AttributeError, ...) is a bug in the
# loader and propagates as itself instead of passing for "not a valid model file".
_ERRORS = (_Bad, zipfile.BadZipFile, zlib.error, EOFError, struct.error, ValueError, OverflowError)


def _is_zip_error(e):
    # zipfile raises RuntimeError for an encrypted member, NotImplementedError for odd methods.
    return isinstance(e, RuntimeError) and "password" in str(e).lower()


def load_model(filepath, custom_objects=None, compile=True, max_params=MAX_TOTAL_PARAMS):
    _check_max_params(max_params)
    try:
        with _open_zip(filepath) as zf:
            cfg, names = _read_config(zf, FORMAT)
            if not {"format", "version", "model", "compile"} <= set(cfg) <= {
                    "format", "version", "model", "compile", "optimizer_state"}:
                raise _Bad("unexpected top-level keys in config")
            n_state = cfg.get("optimizer_state", 0)
            if isinstance(n_state, bool) or not isinstance(n_state, int) or n_state < 0:
                raise _Bad("optimizer_state must be a count")
            entry = cfg["model"] if cfg["format"] == FORMAT else _v1_to_v2(cfg["model"])
            weight_bytes = sum(i.file_size for i in zf.infolist() if i.filename != "config.npy")
            model = model_from_entry(entry, allocate=False, max_params=max_params,
                                     max_weight_bytes=weight_bytes,
                                     custom_objects=custom_objects)
            _check_members(names, len(model.weights), n_state)
            _fill_weights(zf, model)
            ccfg = cfg["compile"]
            if compile and ccfg is not None:
                with custom_object_scope(custom_objects or {}):  # a user's metric functions
                    _compile_from(model, ccfg, cfg["format"] == OLD_FORMAT)
                if n_state:
                    _read_optimizer_state(zf, model, n_state)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except _ERRORS as e:
        raise ValueError(f"{_name(filepath)} is not a valid nncore model file: {e}") from None
    except RuntimeError as e:
        if not _is_zip_error(e):
            raise
        raise ValueError(f"{_name(filepath)} is not a valid nncore model file: {e}") from None
    except OSError as e:
        raise ValueError(f"{_name(filepath)} could not be read as an nncore model file: "
                         f"{e}") from None
    return model


def _compile_from(model, ccfg, old):
    from .. import losses, metrics, optimizers

    keys = {"optimizer", "loss", "metrics"} if old else {"optimizer", "loss", "loss_weights",
                                                         "metrics"}
    if not isinstance(ccfg, dict) or set(ccfg) != keys:
        raise _Bad("bad compile config")

    def de_loss(v):
        if v is None:
            return None
        if isinstance(v, dict) and set(v) != {"class_name", "config"}:
            return {k: de_loss(x) for k, x in v.items()}
        if isinstance(v, list):
            return [de_loss(x) for x in v]
        return losses.deserialize(v)

    def de_metric(m):
        if isinstance(m, str):
            return metrics.resolve_saved(m)
        if isinstance(m, list):
            return [de_metric(x) for x in m]
        if isinstance(m, dict) and set(m) == {"class_name", "config"}:
            cls = getattr(metrics, str(m["class_name"]), None)
            if not (isinstance(cls, type) and issubclass(cls, metrics.Metric)) or \
                    not isinstance(m["config"], dict):
                raise _Bad(f"unknown metric {m['class_name']!r}")
            return cls(**m["config"])
        if isinstance(m, dict):
            return {k: de_metric(x) for k, x in m.items()}
        raise _Bad(f"bad metric entry {m!r}")

    mets = ccfg["metrics"]
    if not isinstance(mets, (list, dict)):
        raise _Bad("bad compile config: metrics")
    lw = None if old else ccfg["loss_weights"]
    if lw is not None and not isinstance(lw, (list, dict)):
        raise _Bad("bad compile config: loss_weights")
    model.compile(optimizer=optimizers.deserialize(ccfg["optimizer"]),
                  loss=de_loss(ccfg["loss"]), loss_weights=lw, metrics=de_metric(mets))


def load_weights(model, filepath) -> None:
    if not model.built:
        raise ValueError(f"model {model.name!r} must be built before load_weights")
    if isinstance(filepath, (str, os.PathLike)) and os.path.isdir(os.fspath(filepath)):
        raise IsADirectoryError(f"{_name(filepath)} is a directory, not a weights file")
    staged = None
    try:
        with _open_zip(filepath) as zf:
            cfg, names = _read_config(zf, FORMAT + ".weights")
            if not isinstance(cfg.get("weights"), list) or len(cfg["weights"]) != len(
                    model.weights):
                raise _Bad(f"file has {len(cfg.get('weights') or [])} weight arrays, model "
                           f"{model.name!r} has {len(model.weights)}")
            _check_members(names, len(model.weights))
            staged = [np.empty_like(w) for w in model.weights]

            class _Stage:  # read into scratch arrays: the model is untouched on error
                weights = staged

                @staticmethod
                def _all_weight_names():
                    return model._all_weight_names()

            _fill_weights(zf, _Stage)
    except FileNotFoundError:
        raise
    except _ERRORS as e:
        raise ValueError(f"{_name(filepath)} is not a valid nncore weights file: "
                         f"{e}") from None
    except RuntimeError as e:
        if not _is_zip_error(e):
            raise
        raise ValueError(f"{_name(filepath)} is not a valid nncore weights file: "
                         f"{e}") from None
    except OSError as e:
        raise ValueError(f"{_name(filepath)} could not be read: {e}") from None
    for w, s in zip(model.weights, staged):
        w[...] = s
