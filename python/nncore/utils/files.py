"""Download, checksum, cache and atomic-write machinery shared by utils.get_file and every
dataset loader (nncore.datasets.*).

- ``cache_root()``: ``$XDG_CACHE_HOME/nncore`` (default ``~/.cache/nncore``); each dataset keeps
  its files in a subdirectory.
- ``fetch(url)``: the whole body of one URL, read in chunks and refused beyond ``max_bytes`` (a
  hostile or broken mirror cannot make us allocate more).
- ``download_to(target, urls, ...)``: try the URLs in turn, streaming each through
  ``saving.files.atomic_write`` while hashing it, keep the first whose checksum matches (an
  interrupted download never leaves a half file). Returns the failure messages.
- Every file read here goes through ``saving.files.open_regular`` (regular files only).
- ``write_atomic(target, data)``: the same guarantee for bytes already in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pathlib
import zlib

# http.client and urllib are imported where used: they cost ~30 ms at import.

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
    import urllib.request

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


def write_atomic(target, data: bytes) -> None:
    """Write data to target so that target is either absent (or its old self) or complete, never
    half written: nncore's one writer (mode kept, a symlink's target replaced, the user's path
    in errors)."""
    from ..saving.files import atomic_write

    pathlib.Path(target).parent.mkdir(parents=True, exist_ok=True)  # a cache folder may be new
    atomic_write(target, lambda f: f.write(data))


def pick_algorithm(expected: str | None, algorithm: str = "auto") -> str:
    if algorithm not in ("auto", "md5", "sha256"):
        raise ValueError(f"hash_algorithm must be 'auto', 'md5' or 'sha256', got {algorithm!r}")
    if algorithm == "auto":
        return "sha256" if expected is None or len(expected) == 64 else "md5"
    return algorithm


def hash_file(path, algorithm: str = "sha256") -> str:
    from ..saving.files import open_regular

    h = hashlib.new(algorithm)
    f, _ = open_regular(path)  # regular files only: a FIFO or a device is refused, not read
    with f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download_to(target, urls, expected_hash: str | None = None, algorithm: str = "auto",
                max_bytes: int = 1 << 30, timeout: float = TIMEOUT, opener=None) -> list[str]:
    """Download the first of `urls` that works (and matches expected_hash, md5 or sha256 of the
    downloaded bytes) into target, atomically. Returns the failure messages: empty on success."""
    import http.client
    import urllib.request

    from ..saving.files import atomic_write

    target = pathlib.Path(target)
    algorithm = pick_algorithm(expected_hash, algorithm)
    opener = opener or (lambda u: urllib.request.urlopen(u, timeout=timeout))  # noqa: S310
    target.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        def write(f, url=url):
            # Streamed into nncore's one writer: the old file stays until the whole download
            # is on disk and its checksum matched.
            h = hashlib.new(algorithm)
            got = 0
            with opener(url) as r:
                while chunk := r.read(CHUNK):
                    got += len(chunk)
                    if got > max_bytes:
                        raise ValueError(f"more than {max_bytes} bytes")
                    h.update(chunk)
                    f.write(chunk)
            digest = h.hexdigest()
            if expected_hash is not None and digest != expected_hash.lower():
                raise ValueError(f"{algorithm} of the download is {digest}, expected "
                                 f"{expected_hash}")
        try:
            atomic_write(target, write)
            return []
        except (OSError, ValueError, http.client.HTTPException) as e:
            # URLError/HTTPError and timeouts are OSErrors; IncompleteRead (a connection cut
            # mid-transfer) is an HTTPException.
            failures.append(f"{url}: {type(e).__name__}: {e}")
    return failures


MAX_MEMBERS = 200_000
MAX_EXTRACTED = 8 << 30


def _safe_members(names_sizes, where):
    total = 0
    count = 0
    for name, size in names_sizes:
        count += 1
        if count > MAX_MEMBERS:
            raise ValueError(f"{where}: more than {MAX_MEMBERS} members")
        parts = pathlib.PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise ValueError(f"{where}: member {name!r} would be written outside the target")
        total += max(int(size), 0)
        if total > MAX_EXTRACTED:
            raise ValueError(f"{where}: more than {MAX_EXTRACTED} bytes when extracted")


def extract_archive(path, target, archive_format="auto") -> bool:
    """Extract a tar(.gz/.bz2/.xz) or zip archive into target, refusing members that would land
    outside it, links out of it, device files, more than MAX_MEMBERS members or more than
    MAX_EXTRACTED bytes. Returns False when path is not an archive of the asked format."""
    import tarfile
    import zipfile

    formats = {"auto": ("tar", "zip"), "tar": ("tar",), "zip": ("zip",), None: ()}
    if archive_format not in formats:
        raise ValueError(f"archive_format must be 'auto', 'tar', 'zip' or None, got "
                         f"{archive_format!r}")
    from ..saving.files import open_regular, zip_member_count

    path, target = pathlib.Path(path), pathlib.Path(target)
    fh, size = open_regular(path)  # regular files only; one descriptor for every look below
    with fh:
        for fmt in formats[archive_format]:
            fh.seek(0)
            if fmt == "tar" and tarfile.is_tarfile(fh):
                fh.seek(0)
                try:
                    with tarfile.open(fileobj=fh) as tf:
                        members = tf.getmembers()
                        _safe_members(((m.name, m.size) for m in members), str(path))
                        target.mkdir(parents=True, exist_ok=True)
                        tf.extractall(target, filter="data")  # no links out, devices, setuid
                except (tarfile.TarError, EOFError, zlib.error) as e:
                    raise ValueError(f"{path}: corrupt archive ({type(e).__name__}: {e})") \
                        from None
                return True
            fh.seek(0)
            if fmt == "zip" and zipfile.is_zipfile(fh):
                try:
                    if zip_member_count(fh, size) > MAX_MEMBERS:  # before zipfile parses them
                        raise ValueError(f"{path}: more than {MAX_MEMBERS} members")
                    with zipfile.ZipFile(fh) as zf:
                        infos = zf.infolist()
                        _safe_members(((i.filename, i.file_size) for i in infos), str(path))
                        target.mkdir(parents=True, exist_ok=True)
                        zf.extractall(target)
                except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError,
                        RuntimeError) as e:
                    raise ValueError(f"{path}: corrupt archive ({type(e).__name__}: {e})") \
                        from None
                return True
    return False


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None,
             cache_subdir="datasets", hash_algorithm="auto", extract=False,
             archive_format="auto", cache_dir=None, force_download=False):
    """Download a file from origin unless it is already in the cache; as keras.utils.get_file.

    The file is ``cache_dir/cache_subdir/fname`` (cache_dir defaults to nncore's cache,
    ``$XDG_CACHE_HOME/nncore`` or ``~/.cache/nncore``; an absolute cache_subdir is used as is).
    origin may also be a list of mirror URLs, tried in turn. With file_hash (sha256 or md5,
    'auto' picks by length) a cached file that does not match is downloaded again, and a
    download that does not match is rejected. The download is streamed to a temporary file and
    moved into place atomically. extract=True (or untar) also extracts a tar or zip archive next
    to it (safely: see extract_archive) and returns the extracted directory. Raises
    FileNotFoundError naming the path and every URL tried when nothing could be fetched.
    """
    import urllib.parse

    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    urls = [origin] if isinstance(origin, str) else list(origin)
    if not urls or not all(isinstance(u, str) and u for u in urls):
        raise ValueError(f"origin must be a URL or a list of URLs, got {origin!r}")
    if fname is None:
        fname = os.path.basename(urllib.parse.urlsplit(urls[0]).path)
        if not fname:
            raise ValueError(f"Can't parse the file name from the origin provided: '{origin}'."
                             " Please specify the `fname` argument.")
    fname = os.fspath(fname)
    if untar:
        extract = True
    expected = file_hash or md5_hash
    algorithm = pick_algorithm(expected, "md5" if md5_hash and not file_hash else hash_algorithm)
    root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    datadir = pathlib.Path(cache_subdir) if os.path.isabs(cache_subdir) else \
        root / cache_subdir
    fpath = datadir / fname
    need = force_download or not fpath.is_file()
    if not need and expected is not None and hash_file(fpath, algorithm) != expected.lower():
        need = True  # a stale or corrupt cached copy
    if need:
        failures = download_to(fpath, urls, expected, algorithm)
        if failures:
            raise FileNotFoundError(f"{fname} is not in {datadir} and could not be downloaded:\n  "
                                    + "\n  ".join(failures))
    if extract:
        stem = fname
        for suffix in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        out = datadir / (stem + "_extracted" if stem == fname else stem)
        marker = out / ".nncore-extracted"
        if need or not marker.is_file():
            if not extract_archive(fpath, out, archive_format):
                raise ValueError(f"{fpath} is not a {archive_format} archive")
            write_atomic(marker, (expected or "").encode())
        return str(out)
    return str(fpath)

