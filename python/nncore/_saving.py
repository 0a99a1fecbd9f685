"""Model files: one uncompressed zip (npz layout, np.savez: every member ZIP_STORED) holding
  config.npy     the architecture and compile settings as UTF-8 JSON in a uint8 array
  w0000.npy ...  the weights, float32, in model.get_weights() order.

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
import tempfile
import zipfile
import zlib

import numpy as np

FORMAT = "nncore.Sequential"
VERSION = 1
MAX_CONFIG_BYTES = 16 << 20
MAX_LAYERS = 4096
MAX_TOTAL_PARAMS = 1 << 28  # elements (1 GiB of float32): load_model's default max_params
MAX_SAMPLE_SIZE = 1 << 31   # elements of one sample's activation


class _Bad(Exception):
    pass


def _weight_key(i: int) -> str:
    return f"w{i:04d}"


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would race with other threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write(filepath, arrays: dict) -> None:
    filepath = os.fspath(filepath)
    d = os.path.dirname(os.path.abspath(filepath))
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # file object: no '.npz' appended to the name
        # mkstemp creates 0600; give the file the mode open(filepath, "wb") would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, filepath)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _config_array(cfg: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(cfg).encode("utf-8"), dtype=np.uint8)


def _compile_config(model):
    if not model.compiled:
        return None
    from . import losses, optimizers

    metrics = [m for m in model._metric_ids if isinstance(m, str)]
    return {"optimizer": optimizers.serialize(model.optimizer),
            "loss": losses.serialize(model.loss), "metrics": metrics}


def save_model(model, filepath) -> None:
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; build or fit it before saving")
    cfg = {"format": FORMAT, "version": VERSION, "model": model.get_config(),
           "compile": _compile_config(model)}
    arrays = {"config": _config_array(cfg)}
    for i, w in enumerate(model.weights):
        arrays[_weight_key(i)] = w
    _write(filepath, arrays)


def save_weights(model, filepath) -> None:
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; nothing to save")
    names = [n for lay in model.layers for n in lay._weight_names]
    cfg = {"format": FORMAT + ".weights", "version": VERSION,
           "weights": [[n, list(w.shape)] for n, w in zip(names, model.weights)]}
    arrays = {"config": _config_array(cfg)}
    for i, w in enumerate(model.weights):
        arrays[_weight_key(i)] = w
    _write(filepath, arrays)


# ---- reading --------------------------------------------------------------------------------
def _header(f, name):
    """(shape, dtype) from an .npy header, validated."""
    try:
        version = np.lib.format.read_magic(f)
    except ValueError as e:
        raise _Bad(f"{name}: not an .npy array ({e})") from None
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise _Bad(f"{name}: unsupported .npy version {version}")
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
    with open(filepath, "rb") as fh:  # FileNotFoundError passes through unchanged
        data_file = io.BytesIO(fh.read()) if os.path.getsize(filepath) < (64 << 20) else None
    real_size = os.path.getsize(filepath)
    try:
        zf = zipfile.ZipFile(data_file if data_file is not None else os.fspath(filepath))
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
    try:
        cfg = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _Bad(f"config is not valid JSON: {e}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != want_format:
        raise _Bad(f"config does not describe a {want_format}")
    if cfg.get("version") != VERSION:
        raise _Bad(f"unsupported file version {cfg.get('version')!r}")
    return cfg, names


def _check_members(names, count):
    allowed = {"config.npy"} | {_weight_key(i) + ".npy" for i in range(count)}
    extra = names - allowed
    if extra:
        raise _Bad(f"unexpected members {sorted(extra)[:5]}")
    if len(names) != count + 1:
        raise _Bad(f"expected {count} weight arrays, found {len(names) - 1}")


def _check_max_params(max_params):
    if max_params is not None and (isinstance(max_params, bool) or not isinstance(
            max_params, (int, np.integer)) or max_params < 1):
        raise TypeError(f"max_params must be a positive int or None, got {max_params!r}")


def model_from_config(mcfg, allocate, max_params=MAX_TOTAL_PARAMS, max_weight_bytes=None):
    """Sequential from model.get_config(), every shape validated; weights zero unless allocate.
    Before any weight is allocated: at most max_params parameters (None: no cap) and, when given,
    at most max_weight_bytes bytes of float32 weights."""
    from . import models
    from .layers import LAYER_REGISTRY
    from .layers.base import shape_tuple

    if not isinstance(mcfg, dict) or set(mcfg) != {"name", "input_shape", "layers"}:
        raise _Bad("model config must have exactly 'name', 'input_shape', 'layers'")
    layers_cfg = mcfg["layers"]
    if not isinstance(layers_cfg, list) or not 0 < len(layers_cfg) <= MAX_LAYERS:
        raise _Bad("model config: 'layers' must be a non-empty list")
    if not isinstance(mcfg["name"], str) or mcfg["input_shape"] is None:
        raise _Bad("model config: bad name or missing input shape")
    input_shape = shape_tuple(mcfg["input_shape"], "input_shape", "model")
    layers = []
    for i, entry in enumerate(layers_cfg):
        if not isinstance(entry, dict) or set(entry) != {"class_name", "config"}:
            raise _Bad(f"layer {i}: entry must be {{'class_name', 'config'}}")
        cls = LAYER_REGISTRY.get(entry["class_name"]) if isinstance(entry["class_name"], str) \
            else None
        if cls is None or entry["class_name"] == "InputLayer":
            raise _Bad(f"layer {i}: unknown layer type {entry['class_name']!r}")
        lcfg = entry["config"]
        if not isinstance(lcfg, dict) or not all(isinstance(k, str) for k in lcfg):
            raise _Bad(f"layer {i}: config must be a dict")
        lcfg = dict(lcfg)
        try:
            layers.append(cls(**lcfg))
        except (TypeError, ValueError) as e:
            raise _Bad(f"layer {i} ({entry['class_name']}): {e}") from None
    # Shapes, parameter counts: all computed before any weight is allocated.
    shape = (None,) + input_shape
    total = 0
    for layer in layers:
        layer.check_input_shape(shape)
        for _, wshape, _, _ in layer.weight_specs(shape):
            total += math.prod(wshape)
        shape = tuple(layer.compute_output_shape(shape))
        if any(d is not None and not 0 < d < MAX_SAMPLE_SIZE for d in shape) or \
                math.prod(d for d in shape[1:] if d is not None) > MAX_SAMPLE_SIZE:
            raise _Bad(f"layer {layer.name!r}: output shape {shape} is too large")
        if max_params is not None and total > max_params:
            raise _Bad(f"the config declares more than max_params={max_params} parameters "
                       f"({total} so far); pass load_model(..., max_params=N) to allow more")
        if max_weight_bytes is not None and 4 * total > max_weight_bytes:
            raise _Bad(f"the config declares {total} parameters ({4 * total} bytes) but the "
                       f"weight members hold only {max_weight_bytes} bytes")
    model = models.Sequential(name=mcfg["name"])
    model._input_shape = input_shape
    for layer in layers:
        model._layers.append(layer)
        model._build_layer(len(model._layers) - 1, allocate=allocate)
    model.built = True
    return model


def _fill_weights(zf, model, expected_names=None):
    weights = model.weights
    names = [n for lay in model.layers for n in lay._weight_names]
    for i, (w, wname) in enumerate(zip(weights, names)):
        def check(shape, w=w, wname=wname):
            if shape != w.shape:
                raise _Bad(f"weight {wname!r}: file has shape {shape}, model needs {w.shape}")
        _read_array(zf, _weight_key(i), np.dtype("<f4"), check, out=w)  # straight into w
        if not np.all(np.isfinite(w)):
            raise _Bad(f"weight {wname!r} holds NaN or inf")


# What a damaged or hostile file can make the readers raise: our own checks (_Bad), zipfile's and
# numpy's format errors. Anything else (KeyError, TypeError, AttributeError, ...) is a bug in the
# loader and propagates as itself instead of passing for "not a valid model file".
_ERRORS = (_Bad, zipfile.BadZipFile, zlib.error, EOFError, struct.error, ValueError, OverflowError)


def load_model(filepath, compile=True, max_params=MAX_TOTAL_PARAMS):
    _check_max_params(max_params)
    try:
        with _open_zip(filepath) as zf:
            cfg, names = _read_config(zf, FORMAT)
            if set(cfg) != {"format", "version", "model", "compile"}:
                raise _Bad("unexpected top-level keys in config")
            weight_bytes = sum(i.file_size for i in zf.infolist() if i.filename != "config.npy")
            model = model_from_config(cfg["model"], allocate=False, max_params=max_params,
                                      max_weight_bytes=weight_bytes)
            _check_members(names, len(model.weights))
            _fill_weights(zf, model)
            ccfg = cfg["compile"]
            if compile and ccfg is not None:
                if not isinstance(ccfg, dict) or set(ccfg) != {"optimizer", "loss", "metrics"} \
                        or not isinstance(ccfg["metrics"], list) \
                        or not all(isinstance(m, str) for m in ccfg["metrics"]):
                    raise _Bad("bad compile config")
                from . import losses, optimizers

                model.compile(optimizer=optimizers.deserialize(ccfg["optimizer"]),
                              loss=losses.deserialize(ccfg["loss"]), metrics=ccfg["metrics"])
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise
    except _ERRORS as e:
        raise ValueError(f"{os.fspath(filepath)!r} is not a valid nncore model file: {e}") from None
    except OSError as e:
        raise ValueError(f"{os.fspath(filepath)!r} could not be read as an nncore model file: "
                         f"{e}") from None
    return model


def load_weights(model, filepath) -> None:
    if not model.built:
        raise ValueError(f"model {model.name!r} must be built before load_weights")
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
                layers = model.layers

            _Stage.weights = staged
            _fill_weights(zf, _Stage)
    except FileNotFoundError:
        raise
    except _ERRORS as e:
        raise ValueError(f"{os.fspath(filepath)!r} is not a valid nncore weights file: "
                         f"{e}") from None
    except OSError as e:
        raise ValueError(f"{os.fspath(filepath)!r} could not be read: {e}") from None
    for w, s in zip(model.weights, staged):
        w[...] = s
