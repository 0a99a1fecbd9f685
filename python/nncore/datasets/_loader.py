"""The loader design every dataset shares (MNIST's): look in ``path`` (when given, only there),
``$NNCORE_DATA/<name>/``, then the user cache ``$XDG_CACHE_HOME/nncore/<name>``; when the files
are nowhere, download them into the cache from the dataset's mirrors in turn, checking each
file's published checksum, written atomically; offline, a FileNotFoundError that says where it
looked and how to point nncore at local copies."""

from __future__ import annotations

import io
import math
import os
import pathlib
import pickle
import tokenize
import zipfile
import zlib

import numpy as np

from ..saving.files import open_regular as _open_regular
from ..saving.files import zip_member_count as _zip_member_count
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


def _read_npy(buf: bytes, what: str, objects: bool):
    """One .npy member from its bytes. The header is checked before anything is allocated: a
    numeric array's size must be what the member holds (so a lying shape cannot allocate more);
    an object array (objects=True only) goes through _ArraysOnly."""
    fp = io.BytesIO(buf)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, SyntaxError, TypeError, EOFError, tokenize.TokenError) as e:
        # numpy parses the header with tokenize and ast: their errors for a garbled header.
        raise ValueError(f"{what}: not a readable .npy array ({e})") from None
    if dtype.hasobject:
        if not objects or dtype != np.dtype(object):
            raise ValueError(f"{what}: object arrays are refused in this file")
        try:
            arr = _ArraysOnly(fp).load()
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
                IndexError, KeyError, MemoryError, RecursionError, OverflowError) as e:
            # The unpickler's own errors on a corrupt stream (its memo is a dict, its stack a
            # list): the file is malformed, whatever the exception class.
            raise ValueError(f"{what}: refused or corrupt object array "
                             f"({type(e).__name__}: {e})") from None
        if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
            raise ValueError(f"{what}: malformed object array")
        return arr
    offset = fp.tell()
    nbytes = math.prod(shape) * dtype.itemsize
    if dtype.itemsize == 0 or nbytes != len(buf) - offset:
        raise ValueError(f"{what}: the header promises {nbytes} bytes of {dtype} data, the "
                         f"member holds {len(buf) - offset}")
    arr = np.frombuffer(buf, dtype, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C").copy()


def load_npz(source, what=None, objects=False, max_members=MAX_NPZ_MEMBERS,
             max_member=MAX_NPZ_MEMBER) -> dict:
    """{name: array} of every .npy member of an npz, through nncore's one reader
    (saving.files.open_regular: regular files only, size known first). Before any member is
    read: the member count from the zip's end record, stored members within the file's size,
    compressed ones within max_member once decompressed; numeric members are read with pickle
    disabled, object members (ragged sequences, objects=True) through _ArraysOnly. Every
    failure is a ValueError (or FileNotFoundError / IsADirectoryError) naming the file."""
    what = what or str(os.fspath(source) if isinstance(source, os.PathLike) else source)
    arrays = {}
    try:
        fh, size = _open_regular(source)
    except ValueError as e:  # FileRefused
        raise ValueError(f"{what}: {e}") from None
    with fh:
        try:
            n = _zip_member_count(fh, size)
            if n > max_members:
                raise ValueError(f"{n} members, expected at most {max_members}")
            with zipfile.ZipFile(fh) as z:
                infos = z.infolist()
                if len(infos) > max_members:
                    raise ValueError(f"{len(infos)} members, expected at most {max_members}")
                for info in infos:
                    if info.flag_bits & 0x61:  # encrypted, patched or strongly encrypted
                        raise ValueError(f"member {info.filename!r} is encrypted or patched")
                    if info.compress_type == zipfile.ZIP_STORED:
                        if info.file_size != info.compress_size or info.file_size > size:
                            raise ValueError(f"member {info.filename!r} declares {info.file_size}"
                                             f" bytes in a {size}-byte file")
                    elif info.compress_type != zipfile.ZIP_DEFLATED:
                        raise ValueError(f"member {info.filename!r}: compression method "
                                         f"{info.compress_type} is not accepted")
                    elif info.file_size > max_member:
                        raise ValueError(f"member {info.filename!r} is {info.file_size} bytes "
                                         f"once decompressed, more than {max_member}")
                    if not info.filename.endswith(".npy"):
                        continue
                    with z.open(info) as f:
                        buf = _files.read_bounded(f, info.file_size + 1)
                    if len(buf) != info.file_size:
                        raise ValueError(f"member {info.filename!r} holds {len(buf)} bytes, "
                                         f"its entry says {info.file_size}")
                    arrays[info.filename[:-4]] = _read_npy(buf, f"{what}:{info.filename}",
                                                           objects)
        except ValueError as e:
            msg = str(e)
            raise ValueError(msg if msg.startswith(what) else f"{what}: {msg}") from None
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError,
                RuntimeError) as e:
            # RuntimeError/NotImplementedError: zipfile on an encrypted or odd member.
            raise ValueError(f"{what}: corrupt or unreadable npz ({type(e).__name__}: {e})") \
                from None
    return arrays


MAX_INDEX_BYTES = 16 << 20  # imdb's word index is 1.6 MB, reuters's 0.5 MB


def load_word_index(source) -> dict:
    """{word: index} from a JSON word-index file (a flat object of str -> non-negative int),
    read through nncore's one reader with its size capped before parsing."""
    import json

    what = str(source)
    try:
        fh, _ = _open_regular(source, MAX_INDEX_BYTES)
    except ValueError as e:  # FileRefused
        raise ValueError(f"{what}: {e}") from None
    with fh:
        raw = fh.read()
    try:
        index = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{what}: not a JSON word index ({e})") from None
    if not isinstance(index, dict) or not all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in index.items()):
        raise ValueError(f"{what}: a word index maps words to non-negative integers")
    return index


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
