"""nncore.datasets.mnist: search order, checked atomic download from a real local HTTP server,
cache reuse, corrupt-file handling and the embedded subset."""

from __future__ import annotations

import functools
import gzip
import http.server
import os
import pathlib
import shutil
import socket
import threading

import numpy as np
import pytest
from conftest import mnist_path, require_mnist
from nncore.datasets import mnist

# From ../shared/data/mnist/README.md
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
NAMES = list(mnist.FILES)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Never touch the real user cache or a real NNCORE_DATA."""
    monkeypatch.delenv("NNCORE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    magic = magic if magic is not None else (2051 if arr.ndim == 3 else 2049)
    head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return head + arr.tobytes()


def write_set(directory: pathlib.Path, n_train=7, n_test=3, gz=True, seed=0) -> None:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        NAMES[0]: rng.integers(0, 256, (n_train, 28, 28)), NAMES[1]: rng.integers(0, 10, n_train),
        NAMES[2]: rng.integers(0, 256, (n_test, 28, 28)), NAMES[3]: rng.integers(0, 10, n_test),
    }
    for name, a in arrays.items():
        data = idx_bytes(a)
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)


# ---------------------------------------------------------------------------------------------
# Local mirrors: a real HTTP server on 127.0.0.1
# ---------------------------------------------------------------------------------------------

class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        type(self).requests.append(self.path)
        if self.path.startswith("/cut/"):  # promises 1 MB, sends 100 bytes, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + b"\x00" * 98)
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Serves /good/ (the real files), /bad/ (wrong content, right names), /empty/ (404s)."""
    src = require_mnist()
    root = tmp_path_factory.mktemp("www")
    (root / "good").mkdir()
    (root / "bad").mkdir()
    (root / "empty").mkdir()
    for n in NAMES:
        os.symlink(src / (n + ".gz"), root / "good" / (n + ".gz"))
        (root / "bad" / (n + ".gz")).write_bytes(gzip.compress(b"these are not the bytes you want"))
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield base
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def refused_url():
    """A local port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def cache_listing() -> list[str]:
    d = mnist.cache_dir()
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_download_tries_mirrors_in_turn(server, refused_url, monkeypatch):
    _Handler.requests.clear()
    mirrors = [refused_url, server + "empty/", server + "cut/", server + "bad/", server + "good/"]
    (x_train, y_train), (x_test, y_test) = mnist.load_data(mirrors=mirrors)
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert np.bincount(y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == TEST_COUNTS
    # every file: refused, 404, cut mid-transfer, wrong checksum (rejected), then the good mirror
    for n in NAMES:
        assert [p for p in _Handler.requests if p.endswith(n + ".gz")] == [
            f"/empty/{n}.gz", f"/cut/{n}.gz", f"/bad/{n}.gz", f"/good/{n}.gz"]
    assert cache_listing() == sorted(n + ".gz" for n in NAMES)  # nothing half written

    # second call: served from the cache, no network at all
    def no_network(url):
        raise AssertionError(f"network used: {url}")

    monkeypatch.setattr(mnist, "_fetch", no_network)
    (x2, y2), _ = mnist.load_data(mirrors=mirrors)
    assert np.array_equal(x2, x_train) and np.array_equal(y2, y_train)


def test_module_level_mirrors_and_failure_message(server, refused_url, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", [refused_url, server + "bad/"])
    with pytest.raises(FileNotFoundError) as e:
        mnist.load_data()
    msg = str(e.value)
    assert str(mnist.cache_dir()) in msg and "NNCORE_DATA" in msg and "path=" in msg
    assert "md5" in msg and refused_url in msg
    assert cache_listing() == []  # the rejected file was never written


def test_partial_download_resumes_missing_files_only(server, monkeypatch):
    cache = mnist.cache_dir()
    cache.mkdir(parents=True)
    src = mnist_path()
    for n in NAMES[1:]:
        shutil.copy(src / (n + ".gz"), cache / (n + ".gz"))
    _Handler.requests.clear()
    mnist.load_data(mirrors=[server + "good/"])
    assert _Handler.requests == [f"/good/{NAMES[0]}.gz"]


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        mnist._write_atomic(tmp_path / "x.gz", b"payload")
    assert list(tmp_path.iterdir()) == []


def test_offline_nothing_found_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCORE_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError) as e:
        mnist.load_data(download=False)
    msg = str(e.value)
    assert str(tmp_path / "data" / "mnist") in msg and str(mnist.cache_dir()) in msg
    assert "path=" in msg and "NNCORE_DATA" in msg and "embedded" in msg
    with pytest.raises(FileNotFoundError, match="not found at"):
        mnist.load_data(tmp_path / "nowhere")
    assert mnist.find() is None


# ---------------------------------------------------------------------------------------------
# Search order, local files
# ---------------------------------------------------------------------------------------------

def test_search_order_path_env_cache(tmp_path, monkeypatch):
    write_set(tmp_path / "p", n_train=5, seed=1)
    write_set(tmp_path / "env" / "mnist", n_train=6, seed=2)
    write_set(mnist.cache_dir(), n_train=7, seed=3)
    assert len(mnist.load_data()[0][0]) == 7  # cache
    monkeypatch.setenv("NNCORE_DATA", str(tmp_path / "env"))
    assert mnist.find() == tmp_path / "env" / "mnist"
    assert len(mnist.load_data()[0][0]) == 6  # NNCORE_DATA before the cache
    assert len(mnist.load_data(str(tmp_path / "p"))[0][0]) == 5  # path first
    assert len(mnist.load_data(tmp_path / "env")[0][0]) == 6  # path may be a data root


def test_cache_dir_honours_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert mnist.cache_dir() == tmp_path / "x" / "nncore" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert mnist.cache_dir() == tmp_path / "home" / ".cache" / "nncore" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: must be absolute
    assert mnist.cache_dir() == tmp_path / "home" / ".cache" / "nncore" / "mnist"


def test_uncompressed_and_gzipped_give_the_same(tmp_path):
    write_set(tmp_path / "gz", gz=True)
    write_set(tmp_path / "raw", gz=False)
    a, b = mnist.load_data(tmp_path / "gz"), mnist.load_data(tmp_path / "raw")
    for u, v in zip(a[0] + a[1], b[0] + b[1]):
        assert u.dtype == np.uint8 and np.array_equal(u, v)


def test_full_mnist_from_shared_dir(mnist_dir):
    (x_train, y_train), (x_test, y_test) = mnist.load_data(mnist_dir)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == TEST_COUNTS
    assert x_train.flags.writeable and x_train.flags.c_contiguous


def test_keras_npz(tmp_path):
    (x, y), (xt, yt) = mnist.load_embedded()
    np.savez(tmp_path / "mnist.npz", x_train=x[:10], y_train=y[:10], x_test=xt[:4], y_test=yt[:4])
    (a, b), (c, d) = mnist.load_data(tmp_path / "mnist.npz")
    assert np.array_equal(a, x[:10]) and np.array_equal(d, yt[:4])
    np.savez(tmp_path / "obj.npz", x_train=np.array([object()]), y_train=y, x_test=xt, y_test=yt)
    with pytest.raises(ValueError):
        mnist.load_data(tmp_path / "obj.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        mnist.load_data(tmp_path / "junk.npz")


# ---------------------------------------------------------------------------------------------
# Corrupt or truncated files: always ValueError, never a crash
# ---------------------------------------------------------------------------------------------

_GOOD_IMAGES = idx_bytes(np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256)
_GOOD_LABELS = idx_bytes(np.array([1, 2, 3]))


@pytest.mark.parametrize("data, match", [
    (b"", "truncated IDX header"),
    (_GOOD_IMAGES[:6], "truncated IDX header"),
    (_GOOD_IMAGES[:12], "truncated IDX header"),
    (_GOOD_IMAGES[:-1], "truncated"),
    (_GOOD_LABELS[:-1], "truncated"),
    (_GOOD_IMAGES + b"\x00", "unexpected data"),
    (b"\x00\x00\x0d\x03" + _GOOD_IMAGES[4:], "magic"),  # float32 IDX: not ours
    (idx_bytes(np.zeros((2, 27, 28))), "27x28"),
    (idx_bytes(np.array([1, 10])), "out of range"),
    (b"\x00\x00\x08\x03\x7f\xff\xff\xff\x00\x00\x00\x1c\x00\x00\x00\x1c", "truncated"),  # 2^31 imgs
    (gzip.compress(_GOOD_IMAGES)[:-20], "gzip"),
    (b"\x1f\x8b" + b"\x00" * 40, "gzip"),
])
def test_corrupt_idx_raises_value_error(data, match):
    with pytest.raises(ValueError, match=match):
        mnist.read_idx(data)


def test_good_idx_roundtrip():
    assert np.array_equal(mnist.read_idx(_GOOD_LABELS), [1, 2, 3])
    assert mnist.read_idx(gzip.compress(_GOOD_IMAGES)).shape == (3, 28, 28)


def test_corrupt_file_in_dir(tmp_path):
    write_set(tmp_path)
    f = tmp_path / (NAMES[2] + ".gz")
    f.write_bytes(f.read_bytes()[:-30])  # truncated gzip
    with pytest.raises(ValueError, match=NAMES[2]):
        mnist.load_data(tmp_path)
    write_set(tmp_path)
    (tmp_path / (NAMES[1] + ".gz")).write_bytes(gzip.compress(idx_bytes(np.zeros(6))))
    with pytest.raises(ValueError, match="7 images but 6 labels"):
        mnist.load_data(tmp_path)
    write_set(tmp_path)
    (tmp_path / (NAMES[1] + ".gz")).write_bytes(gzip.compress(_GOOD_IMAGES))  # images as labels
    with pytest.raises(ValueError, match="magic"):
        mnist.load_data(tmp_path)


# ---------------------------------------------------------------------------------------------
# The embedded subset
# ---------------------------------------------------------------------------------------------

def test_embedded_subset():
    assert mnist._EMBEDDED.stat().st_size < 2 * 1024 * 1024
    (x, y), (xt, yt) = mnist.load_data(subset="embedded")
    assert x.shape == (5000, 28, 28) and xt.shape == (1000, 28, 28)
    assert x.dtype == y.dtype == xt.dtype == yt.dtype == np.uint8
    assert np.bincount(y).tolist() == [500] * 10 and np.bincount(yt).tolist() == [100] * 10
    with pytest.raises(ValueError, match="subset"):
        mnist.load_data(subset="tiny")


def test_embedded_subset_is_real_mnist(mnist_dir):
    """The committed file is what tools/make_mnist_subset.py builds: the first 500/100 per digit."""
    (x, y), (xt, yt) = mnist.load_data(mnist_dir)
    (sx, sy), (sxt, syt) = mnist.load_embedded()
    tr = np.sort(np.concatenate([np.flatnonzero(y == c)[:500] for c in range(10)]))
    te = np.sort(np.concatenate([np.flatnonzero(yt == c)[:100] for c in range(10)]))
    assert np.array_equal(sx, x[tr]) and np.array_equal(sy, y[tr])
    assert np.array_equal(sxt, xt[te]) and np.array_equal(syt, yt[te])
