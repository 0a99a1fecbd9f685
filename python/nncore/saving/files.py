"""One way to open a file for reading and one way to write one, for every reader and writer
(nncore's format, Keras files, ONNX, data sets).

Reading: only regular files (after links are resolved; a FIFO or a device such as /dev/zero is
refused without blocking or reading), the size known before anything is read, and a descriptor
the caller passed is never closed (it is duplicated). Writing: to a temporary file beside the
target, flushed to disk, then renamed over the target — the symlink's *target* when the path is a
link —, keeping an existing file's mode; on any failure the old file is intact and the error names
the user's path.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tempfile

MAX_ZIP_MEMBERS = 1 << 16


class FileRefused(ValueError):
    """The path is not a regular file, or its headers promise more than the caps allow."""


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


def open_regular(source, max_bytes=None):
    """(binary file object positioned at 0, size in bytes) for a path, a path-like, an int file
    descriptor (duplicated: the caller's stays open) or a seekable binary file object.
    Raises FileNotFoundError / IsADirectoryError as open() does, FileRefused for anything that is
    not a regular file or is larger than max_bytes."""
    if isinstance(source, (io.IOBase,)) or (hasattr(source, "read") and hasattr(source, "seek")):
        pos = source.seek(0, os.SEEK_END)
        source.seek(0)
        if max_bytes is not None and pos > max_bytes:
            raise FileRefused(f"the file holds {pos} bytes, more than the {max_bytes} allowed")
        return _Borrowed(source), pos
    if isinstance(source, bool) or not isinstance(source, (int, str, bytes, os.PathLike)):
        raise TypeError(f"expected a path, a file descriptor or a binary file object, got "
                        f"{type(source).__name__}")
    if isinstance(source, int):
        fd = os.dup(source)  # shares the caller's offset: read from the start
        name = f"<fd {source}>"
    else:
        name = os.fspath(source)
        if isinstance(name, bytes):
            name = os.fsdecode(name)
        if os.path.isdir(name):
            raise IsADirectoryError(f"{name!r} is a directory, not a file")
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC",
                                                                               0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(
                st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(
                st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a file")
            raise FileRefused(f"{name!r} is {kind}, not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise FileRefused(f"{name!r} holds {st.st_size} bytes, more than the {max_bytes} "
                              "allowed")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        os.lseek(fd, 0, os.SEEK_SET)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f, st.st_size


class _Borrowed:
    """A caller's file object: used, never closed."""

    def __init__(self, f):
        self._f = f

    def __getattr__(self, name):
        return getattr(self._f, name)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def zip_member_count(f, size) -> int:
    """The member count a zip's end-of-central-directory record declares, read before the
    central directory is parsed (zipfile parses every entry first). FileRefused when there is
    no such record or the count is over MAX_ZIP_MEMBERS."""
    tail = min(size, 22 + 65535)
    f.seek(size - tail)
    data = f.read(tail)
    f.seek(0)
    i = data.rfind(b"PK\x05\x06")
    if i < 0 or len(data) - i < 22:
        raise FileRefused("not a zip file (no end-of-central-directory record)")
    _, disk, cd_disk, n_here, n_total, cd_size, cd_off, _ = struct.unpack(
        "<4s4H2LH", data[i:i + 22])
    if n_total == 0xFFFF or cd_off == 0xFFFFFFFF:  # zip64: look at its own record
        j = data.rfind(b"PK\x06\x06")
        if j < 0 or len(data) - j < 56:
            raise FileRefused("zip64 file without a zip64 end record")
        n_total = struct.unpack("<Q", data[j + 32:j + 40])[0]
    if n_total > MAX_ZIP_MEMBERS:
        raise FileRefused(f"the zip declares {n_total} members, more than {MAX_ZIP_MEMBERS}")
    return n_total


def atomic_write(path, write, binary=True):
    """write(file) into a temporary file beside path's target, then rename it over the target.
    Keeps the existing file's mode; follows a symlink to replace its target; on failure the old
    file is untouched and the temporary file removed; errors name `path`."""
    user_path = os.fspath(path)
    target = os.path.realpath(user_path)
    folder = os.path.dirname(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    except OSError as e:
        raise OSError(e.errno, f"cannot save to {user_path!r}: {e.strerror}") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".nncore-", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, f"cannot save to {user_path!r}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.strerror and user_path not in str(e):
            raise OSError(e.errno, f"cannot save to {user_path!r}: {e.strerror}") from None
        raise
