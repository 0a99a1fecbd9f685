"""MNIST handwritten digits, as ``keras.datasets.mnist``.

``load_data()`` returns ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes
``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)``, read from the original IDX
files (gzip-compressed or not). Where it looks, in order:

1. ``path`` (a directory holding the four files or a ``mnist/`` subdirectory with them, or a
   Keras-style ``mnist.npz``); when given, nothing else is searched;
2. ``$NNCORE_DATA/mnist/``;
3. the user cache, ``$XDG_CACHE_HOME/nncore/mnist`` (default ``~/.cache/nncore/mnist``).

If none has the files, they are downloaded from ``MIRRORS`` (tried in turn), the md5 of the
decompressed bytes is checked, and each file is written to the cache atomically (a temporary file
then ``os.replace``, so an interrupted download never leaves a half file). ``load_embedded()``
returns the small subset of real MNIST shipped inside the package (5000 training, 1000 test
images), which needs neither files nor network.

The MNIST database is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges (CC BY-SA 3.0).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import os
import pathlib
import zlib

import numpy as np

from ..saving.files import FileRefused as _FileRefused
from ..saving.files import open_regular as _open_regular
from ..utils import files as _files
from . import _loader

__all__ = ["MIRRORS", "FILES", "load_data", "load_embedded", "find", "cache_dir", "read_idx"]

# Public mirrors of the original files (gzip-compressed), tried in order. Tests replace this list.
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
]

# name -> (IDX magic, md5 of the DECOMPRESSED bytes). Mirrors recompress the .gz wrappers, so only
# the decompressed content has a stable checksum.
FILES = {
    "train-images-idx3-ubyte": (2051, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (2049, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (2051, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (2049, "27ae3e4e09519cfbb04c329615203637"),
}
_TRAIN_X, _TRAIN_Y, _TEST_X, _TEST_Y = FILES

_EMBEDDED = pathlib.Path(__file__).with_name("mnist_subset.npz")
_MAX_DOWNLOAD = 64 << 20  # the largest file is ~10 MB compressed; anything far bigger is wrong
_MAX_IDX_BYTES = 1 << 30  # decompressed IDX data (full MNIST is 47 MB; EMNIST-sized files fit)
_DEFLATE_RATIO = 1032  # deflate never expands more than ~1032:1


def cache_dir() -> pathlib.Path:
    """The user cache directory for MNIST: $XDG_CACHE_HOME/nncore/mnist or ~/.cache/nncore/mnist."""
    return _files.cache_root() / "mnist"


def _candidates(directory: pathlib.Path, name: str) -> list[pathlib.Path]:
    return [directory / name, directory / (name + ".gz")]


def _file_in(directory: pathlib.Path, name: str) -> pathlib.Path | None:
    for p in _candidates(directory, name):
        if p.is_file():
            return p
    return None


def _has_all(directory: pathlib.Path) -> bool:
    return all(_file_in(directory, name) is not None for name in FILES)


def _search_dirs(path) -> list[pathlib.Path]:
    # path: the files themselves, or a data root like $NNCORE_DATA; else $NNCORE_DATA/mnist, cache.
    return _files.search_dirs("mnist", path)


def find(path=None) -> pathlib.Path | None:
    """The first directory (in load_data's search order) holding all four MNIST files, else None.
    Never downloads."""
    for d in _search_dirs(path):
        if d.is_file() and d.suffix == ".npz":
            return d
        if d.is_dir() and _has_all(d):
            return d
    return None


_read_bounded = _files.read_bounded


def _parse_idx(stream, what: str, expect_magic: int | None = None, bound=None) -> np.ndarray:
    """Parse an IDX stream (uint8 data, 1-D labels or 3-D images) into a numpy array.
    bound: (most bytes the stream can hold, exact total size or None), known from the file
    before decompressing; a header announcing more is refused before anything is read."""
    head = _read_bounded(stream, 8)
    if len(head) < 8:
        raise ValueError(f"{what}: truncated IDX header ({len(head)} bytes)")
    magic = int.from_bytes(head[:4], "big")
    if magic not in (2049, 2051) or (expect_magic is not None and magic != expect_magic):
        want = expect_magic if expect_magic is not None else "2049 or 2051"
        raise ValueError(f"{what}: bad IDX magic number {magic} (expected {want}); "
                         "not an MNIST uint8 label/image file")
    count = int.from_bytes(head[4:8], "big")
    dims = [count]
    if magic == 2051:
        more = _read_bounded(stream, 8)
        if len(more) < 8:
            raise ValueError(f"{what}: truncated IDX header")
        dims += [int.from_bytes(more[:4], "big"), int.from_bytes(more[4:], "big")]
        if dims[1:] != [28, 28]:
            raise ValueError(f"{what}: images are {dims[1]}x{dims[2]}, expected 28x28")
    size = math.prod(dims)
    header = 8 + (8 if magic == 2051 else 0)
    if bound is not None:
        most, exact = bound
        if header + size > most:
            raise ValueError(f"{what}: truncated: header says {count} records ({size} bytes of "
                             f"data), the file can hold at most {max(most - header, 0)} "
                             "(refused before reading)")
        if exact is not None and header + size < exact:
            raise ValueError(f"{what}: unexpected data after the {count} records the header "
                             "announces")
    if size > _MAX_IDX_BYTES:
        raise ValueError(f"{what}: header says {count} records ({size} bytes of data), more "
                         f"than the {_MAX_IDX_BYTES} bytes nncore reads from an IDX file")
    data = _read_bounded(stream, size)
    if len(data) < size:
        raise ValueError(f"{what}: truncated: header says {count} records ({size} bytes of data), "
                         f"file holds {len(data)}")
    if stream.read(1):
        raise ValueError(f"{what}: unexpected data after the {count} records the header announces")
    arr = np.frombuffer(data, dtype=np.uint8).reshape(dims)
    if magic == 2049 and count and int(arr.max()) > 9:
        raise ValueError(f"{what}: label value {int(arr.max())} out of range 0..9")
    return arr


def read_idx(source, expect_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (a path, or the raw bytes), gzip-compressed or not, validating the magic
    number, the record count and the size. Raises ValueError on a corrupt or truncated file."""
    if isinstance(source, (bytes, bytearray)):
        what, raw = "MNIST data", io.BytesIO(source)
        stored = len(source)
    else:
        what = str(os.fspath(source) if isinstance(source, os.PathLike) else source)
        try:  # nncore's one reader: regular files only, size known before reading
            raw, stored = _open_regular(source)  # closed below
        except _FileRefused as e:
            raise ValueError(f"{what}: {e}") from None
    try:
        gz = raw.read(2) == b"\x1f\x8b"
        bound = (stored, stored)
        if gz:
            # Deflate expands at most ~1032:1, so the compressed size bounds the content before
            # anything is decompressed (the gzip trailer's ISIZE is not used: it is the size mod
            # 2^32 of the last member only).
            bound = (stored * _DEFLATE_RATIO, None)
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        try:
            return _parse_idx(stream, what, expect_magic, bound).copy()
        except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            if not gz:
                raise
            raise ValueError(f"{what}: corrupt or truncated gzip data ({e})") from None
    finally:
        raw.close()


def _load_dir(directory: pathlib.Path):
    arrays = {}
    for name, (magic, _) in FILES.items():
        f = _file_in(directory, name)
        if f is None:
            raise FileNotFoundError(f"MNIST file {name}[.gz] not found in {directory}")
        arrays[name] = read_idx(f, magic)
    return _assemble(arrays, str(directory))


def _assemble(arrays: dict, where: str):
    x_train, y_train = arrays[_TRAIN_X], arrays[_TRAIN_Y]
    x_test, y_test = arrays[_TEST_X], arrays[_TEST_Y]
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise ValueError(f"{where}: {split} has {len(x)} images but {len(y)} labels")
    return (x_train, y_train), (x_test, y_test)


def _load_npz(file: pathlib.Path, where: str | None = None):
    """A Keras-style mnist.npz (x_train, y_train, x_test, y_test), read without pickle."""
    where = where or str(file)
    keys = ("x_train", "y_train", "x_test", "y_test")
    arrays = {k: a for k, a in _loader.load_npz(file, where).items() if k in keys}
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise ValueError(f"{where}: missing arrays {missing}")
    for k, a in arrays.items():
        if a.dtype != np.uint8:
            raise ValueError(f"{where}: {k} has dtype {a.dtype}, expected uint8")
        want_ndim = 3 if k.startswith("x") else 1
        if a.ndim != want_ndim or (want_ndim == 3 and a.shape[1:] != (28, 28)):
            raise ValueError(f"{where}: {k} has shape {a.shape}")
    for y in ("y_train", "y_test"):
        if arrays[y].size and int(arrays[y].max()) > 9:
            raise ValueError(f"{where}: {y} has label {int(arrays[y].max())} out of range 0..9")
    return _assemble({_TRAIN_X: arrays["x_train"], _TRAIN_Y: arrays["y_train"],
                      _TEST_X: arrays["x_test"], _TEST_Y: arrays["y_test"]}, where)


def _fetch(url: str) -> bytes:
    return _files.fetch(url, _MAX_DOWNLOAD)


def _decompressed(data: bytes) -> bytes:
    # Bounded streaming decompression: a hostile mirror cannot make us allocate more than this.
    return _files.gunzip_bounded(data, 4 * _MAX_DOWNLOAD)


_write_atomic = _files.write_atomic


def _download(directory: pathlib.Path, mirrors) -> list[str]:
    """Download the missing files into directory; returns the failure messages (empty: success)."""
    failures = []
    for name, (_, md5) in FILES.items():
        if _file_in(directory, name) is not None:
            continue
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name + ".gz"
            try:
                data = _fetch(url)
                digest = hashlib.md5(_decompressed(data), usedforsecurity=False).hexdigest()
                if digest != md5:
                    raise ValueError(f"md5 of the decompressed content is {digest}, expected {md5}")
            except (OSError, ValueError, http.client.HTTPException) as e:
                # URLError/HTTPError and timeouts are OSErrors; IncompleteRead (a connection cut
                # mid-transfer) is an HTTPException.
                failures.append(f"{url}: {type(e).__name__}: {e}")
                continue
            gz = data[:2] == b"\x1f\x8b"
            _write_atomic(directory / (name + ".gz" if gz else name), data)
            break
        else:
            return failures
    return []


def load_data(path=None, *, subset: str = "full", download: bool = True, mirrors=None):
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)`` (uint8, as keras.datasets.mnist).

    path: a directory with the four IDX files (``train-images-idx3-ubyte[.gz]`` etc.), or with a
        ``mnist/`` subdirectory holding them, or a Keras-style ``mnist.npz``. When given, nothing
        else is searched.
    subset: ``"full"`` (default) or ``"embedded"`` (the small subset shipped in the package).
    download: when the files are found nowhere, fetch them into the user cache (default True).
    mirrors: base URLs to download from, tried in turn (default: the module-level ``MIRRORS``).

    Raises FileNotFoundError (saying where it looked) when the files cannot be found or downloaded,
    ValueError when a file is corrupt or truncated.
    """
    if subset == "embedded":
        return load_embedded()
    if subset != "full":
        raise ValueError(f"subset must be 'full' or 'embedded', got {subset!r}")
    found = find(path)
    if found is not None:
        return _load_npz(found) if found.is_file() else _load_dir(found)
    looked = [str(d) for d in _search_dirs(path)]
    hint = ("Point nncore at local copies of the four MNIST IDX files (train-images-idx3-ubyte.gz, "
            "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) "
            "with "
            "load_data(path='DIR') or by putting them in $NNCORE_DATA/mnist/, or use "
            "load_data(subset='embedded') for the small subset shipped with nncore.")
    if path is not None:
        raise FileNotFoundError(f"MNIST not found at {looked[0]} (nor in {looked[1]}). {hint}")
    if not download:
        raise FileNotFoundError(f"MNIST not found; looked in: {', '.join(looked)}. {hint}")
    target = cache_dir()
    failures = _download(target, MIRRORS if mirrors is None else list(mirrors))
    if failures:
        raise FileNotFoundError(
            f"MNIST not found (looked in: {', '.join(looked)}) and the download failed:\n  "
            + "\n  ".join(failures) + f"\n{hint}")
    return _load_dir(target)


def load_embedded():
    """The subset of real MNIST shipped inside nncore: 5000 training images (500 per digit) and
    1000 test images (100 per digit), same format as load_data()."""
    return _load_npz(_EMBEDDED, "embedded MNIST subset")
