"""Download, checksum, cache and atomic-write machinery shared by utils.get_file and every
dataset loader (nncore.datasets.*).

- ``cache_root()``: ``$XDG_CACHE_HOME/nncore`` (default ``~/.cache/nncore``); each dataset keeps
  its files in a subdirectory.
- ``fetch(url)``: the whole body of one URL, read in chunks and refused beyond ``max_bytes`` (a
  hostile or broken mirror cannot make us allocate more).
- ``download_to(target, urls, ...)``: try the URLs in turn, streaming each into a temporary file
  beside ``target`` while hashing it, keep the first whose checksum matches, ``os.replace`` it into
  place (an interrupted download never leaves a half file). Returns the failure messages.
- ``write_atomic(target, data)``: the same guarantee for bytes already in memory.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import gzip
import os
import pathlib
import tempfile
import urllib.request
import zlib

CHUNK = 1 << 20
TIMEOUT = 30.0


def cache_root() -> pathlib.Path:
    """$XDG_CACHE_HOME/nncore (when absolute) or ~/.cache/nncore."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = pathlib.Path(xdg) if xdg and os.path.isabs(xdg) else pathlib.Path.home() / ".cache"
    return base / "nncore"


def search_dirs(name: str, path=None) -> list[pathlib.Path]:
    """Where a dataset is looked for, in order: ``path`` (the files themselves, or a data root
    holding ``name/``) when given, else ``$NNCORE_DATA/name`` then the cache."""
    if path is not None:
        p = pathlib.Path(path).expanduser()
        return [p, p / name]
    dirs = []
    env = os.environ.get("NNCORE_DATA")
    if env:
        dirs.append(pathlib.Path(env).expanduser() / name)
    dirs.append(cache_root() / name)
    return dirs


def read_bounded(stream, n: int) -> bytes:
    """Up to n bytes from stream, read in chunks so a lying header cannot make us allocate more
    than the data really holds."""
    parts, got = [], 0
    while got < n:
        chunk = stream.read(min(CHUNK, n - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def fetch(url: str, max_bytes: int = 64 << 20, timeout: float = TIMEOUT) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (http(s) mirrors)
        data = read_bounded(r, max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"more than {max_bytes} bytes")
    return data


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """The decompressed bytes of gzip data (data itself if not gzip), refused beyond limit."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
            out = read_bounded(g, limit + 1)
    except (EOFError, OSError, zlib.error) as e:
        raise ValueError(f"corrupt gzip data ({e})") from None
    if len(out) > limit:
        raise ValueError("decompressed data too large")
    return out


def _tmp_beside(target: pathlib.Path):
    target.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=target.parent, prefix="." + target.name + ".", suffix=".part")


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_atomic(target, data: bytes) -> None:
    """Write data to target so that target is either absent (or its old self) or complete, never
    half written."""
    target = pathlib.Path(target)
    fd, tmp = _tmp_beside(target)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:  # includes KeyboardInterrupt: never leave the temporary file behind
        _unlink(tmp)
        raise


def hash_algorithm(expected: str | None, algorithm: str = "auto") -> str:
    if algorithm not in ("auto", "md5", "sha256"):
        raise ValueError(f"hash_algorithm must be 'auto', 'md5' or 'sha256', got {algorithm!r}")
    if algorithm == "auto":
        return "sha256" if expected is None or len(expected) == 64 else "md5"
    return algorithm


def file_hash(path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm, usedforsecurity=False) if algorithm == "md5" else \
        hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download_to(target, urls, expected_hash: str | None = None, algorithm: str = "auto",
                max_bytes: int = 1 << 30, timeout: float = TIMEOUT, opener=None) -> list[str]:
    """Download the first of `urls` that works (and matches expected_hash, md5 or sha256 of the
    downloaded bytes) into target, atomically. Returns the failure messages: empty on success."""
    target = pathlib.Path(target)
    algorithm = hash_algorithm(expected_hash, algorithm)
    opener = opener or (lambda u: urllib.request.urlopen(u, timeout=timeout))  # noqa: S310
    failures = []
    for url in urls:
        fd, tmp = _tmp_beside(target)
        try:
            h = hashlib.new(algorithm)
            got = 0
            with os.fdopen(fd, "wb") as f, opener(url) as r:
                while chunk := r.read(CHUNK):
                    got += len(chunk)
                    if got > max_bytes:
                        raise ValueError(f"more than {max_bytes} bytes")
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            digest = h.hexdigest()
            if expected_hash is not None and digest != expected_hash.lower():
                raise ValueError(f"{algorithm} of the download is {digest}, expected "
                                 f"{expected_hash}")
            os.replace(tmp, target)
            return []
        except (OSError, ValueError, http.client.HTTPException) as e:
            # URLError/HTTPError and timeouts are OSErrors; IncompleteRead (a connection cut
            # mid-transfer) is an HTTPException.
            _unlink(tmp)
            failures.append(f"{url}: {type(e).__name__}: {e}")
        except BaseException:
            _unlink(tmp)
            raise
    return failures
