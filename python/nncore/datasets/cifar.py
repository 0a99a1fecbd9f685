"""CIFAR-10 and CIFAR-100 from their *binary* distributions (cifar-10-binary.tar.gz,
cifar-100-binary.tar.gz): fixed-size records of label byte(s) + 3072 pixel bytes (CHW), read
straight out of the tar without extracting it and without pickle (the "python" versions Keras
downloads are pickles). Each member must be a regular file whose size, known from the tar
header before reading, is a whole number of records."""

from __future__ import annotations

import pathlib
import tarfile
import zlib

import numpy as np

from ..saving.files import FileRefused, open_regular
from ..utils import files as _files
from . import _loader

PIXELS = 3 * 32 * 32
MAX_MEMBER = 400 << 20


def _records(data: bytes, label_bytes: int, what: str):
    rec = label_bytes + PIXELS
    if len(data) == 0 or len(data) % rec:
        raise ValueError(f"{what}: {len(data)} bytes is not a whole number of {rec}-byte records")
    a = np.frombuffer(data, np.uint8).reshape(-1, rec)
    x = a[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # channels_last
    return np.ascontiguousarray(x), a[:, :label_bytes].copy()


def read_members(source: pathlib.Path, names: list[str], label_bytes: int) -> list:
    """[(x, labels)] for each member name, from a .tar.gz or from a directory of the files."""
    source = pathlib.Path(source)
    out = []
    if source.is_dir():
        for n in names:
            f = source / n
            try:  # nncore's one reader: regular files only, size checked before reading
                fh, size = open_regular(f, MAX_MEMBER)
            except (FileNotFoundError, FileRefused) as e:
                raise ValueError(f"{f}: missing, not a regular file or too large ({e})") \
                    from None
            with fh:
                data = _files.read_bounded(fh, size + 1)
            out.append(_records(data, label_bytes, str(f)))
        return out
    try:
        fh, _ = open_regular(source)
    except FileRefused as e:
        raise ValueError(f"{source}: {e}") from None
    by_name = {}
    try:
        with fh, tarfile.open(fileobj=fh, mode="r:*") as tf:
            for m in tf:
                base = m.name.split("/")[-1]
                if base in names:
                    if not m.isfile() or m.size > MAX_MEMBER:
                        raise ValueError(f"{source}: member {m.name} is not a regular file of a "
                                         "plausible size")
                    by_name[base] = _records(_files.read_bounded(tf.extractfile(m), m.size),
                                             label_bytes, f"{source}:{m.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{source}: corrupt or unreadable archive ({type(e).__name__}: {e})") \
            from None
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"{source}: members {missing} not found")
    return [by_name[n] for n in names]


def _find(name, archive, folder, digest, path, download, mirrors):
    # A directory that already holds the extracted folder is accepted too.
    for d in _files.search_dirs(name, path):
        if (d / folder).is_dir():
            return d / folder
    return _loader.locate(name, {archive: (digest, "md5")}, path, download, mirrors) / archive
