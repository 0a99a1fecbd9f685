"""The loader design every dataset shares (MNIST's): look in ``path`` (when given, only there),
``$NNCORE_DATA/<name>/``, then the user cache ``$XDG_CACHE_HOME/nncore/<name>``; when the files
are nowhere, download them into the cache from the dataset's mirrors in turn, checking each
file's published checksum, written atomically; offline, a FileNotFoundError that says where it
looked and how to point nncore at local copies."""

from __future__ import annotations

import io
import pathlib
import pickle
import zipfile

import numpy as np

from ..utils import files as _files


def locate(name: str, wanted: dict, path=None, download=True, mirrors=()) -> pathlib.Path:
    """The directory holding every file of `wanted` ({file name: (hash, 'md5'|'sha256')}),
    downloading the missing ones into the cache when allowed."""
    dirs = _files.search_dirs(name, path)
    for d in dirs:
        if d.is_dir() and all((d / f).is_file() for f in wanted):
            return d
    looked = ", ".join(str(d) for d in dirs)
    hint = (f"Put local copies of {', '.join(wanted)} in a directory and pass "
            f"load_data(path='DIR'), or put them in $NNCORE_DATA/{name}/.")
    if path is not None:
        raise FileNotFoundError(f"{name} not found at {dirs[0]} (nor in {dirs[1]}). {hint}")
    if not download:
        raise FileNotFoundError(f"{name} not found; looked in: {looked}. {hint}")
    target = _files.cache_root() / name
    failures = []
    for fname, (digest, algorithm) in wanted.items():
        if (target / fname).is_file():
            continue
        fails = _files.download_to(target / fname, [m.rstrip("/") + "/" + fname for m in mirrors],
                                   digest, algorithm)
        if fails:
            failures += fails
            break
    if failures:
        raise FileNotFoundError(f"{name} not found (looked in: {looked}) and the download "
                                "failed:\n  " + "\n  ".join(failures) + f"\n{hint}")
    return target


# ---- npz with ragged object arrays (imdb, reuters), without running arbitrary pickles ----------
_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct")}
MAX_NPZ_MEMBER = 512 << 20
MAX_NPZ_MEMBERS = 16


class _ArraysOnly(pickle.Unpickler):
    """Only numpy's array reconstruction may be named by the pickle: no other class or function
    can be created or called, so a hostile file cannot run code (the lists and ints inside are
    built by the pickle opcodes themselves)."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def _read_npy(buf: bytes, what: str):
    fp = io.BytesIO(buf)
    try:
        return np.lib.format.read_array(fp, allow_pickle=False)
    except ValueError:
        pass  # an object array: its data is a pickle
    fp.seek(0)
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise ValueError(f"{what}: unsupported .npy version {version}")
    if dtype != np.dtype(object):
        raise ValueError(f"{what}: unreadable .npy member")
    try:
        arr = _ArraysOnly(fp).load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{what}: refused or corrupt object array ({e})") from None
    if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
        raise ValueError(f"{what}: malformed object array")
    return arr


def load_npz(path) -> dict:
    """An npz's arrays: numeric members read with pickle disabled, object members (ragged
    sequences) through _ArraysOnly; member count and sizes checked from the zip directory first."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise ValueError(f"{path}: {len(infos)} members, expected at most "
                                 f"{MAX_NPZ_MEMBERS}")
            for info in infos:
                if not info.filename.endswith(".npy"):
                    continue
                if info.file_size > MAX_NPZ_MEMBER:
                    raise ValueError(f"{path}: member {info.filename} is {info.file_size} bytes")
                with z.open(info) as f:
                    buf = _files.read_bounded(f, MAX_NPZ_MEMBER + 1)
                arrays[info.filename[:-4]] = _read_npy(buf, f"{path}:{info.filename}")
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"{path}: corrupt or unreadable npz ({e})") from None
    return arrays


def int_sequences(arr, what: str) -> list:
    """Validate an object array of integer sequences (lists of non-negative ints)."""
    if not isinstance(arr, np.ndarray) or arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array of sequences")
    out = []
    for s in arr:
        s = s.tolist() if isinstance(s, np.ndarray) else s
        if not isinstance(s, list) or not all(type(w) is int and w >= 0 for w in s):
            raise ValueError(f"{what}: sequences must be lists of non-negative integers")
        out.append(s)
    return out


def shift(xs, start_char, index_from):
    """Keras: start_char prepended (unless None) and every index shifted by index_from."""
    if start_char is not None:
        return [[start_char] + [w + index_from for w in x] for x in xs]
    if index_from:
        return [[w + index_from for w in x] for x in xs]
    return [list(x) for x in xs]


def drop_long(xs, ys, maxlen):
    """Keras's remove_long_seq: keep the sequences shorter than maxlen."""
    keep = [i for i, x in enumerate(xs) if len(x) < maxlen]
    return [xs[i] for i in keep], [ys[i] for i in keep]


def vocab(xs, num_words, skip_top, oov_char):
    """Words outside [skip_top, num_words) become oov_char (or are dropped when it is None);
    num_words defaults to the largest index present."""
    if not num_words:
        num_words = max((max(x) for x in xs if x), default=0)
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


def object_array(seqs) -> np.ndarray:
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = s
    return out
