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
from conftest import mnist_path, require, require_mnist
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


def test_lying_gzip_header_refused_before_allocating(tmp_path):
    # Issue 17 item 9: a small .gz whose header claims 2^32 - 1 images (followed by megabytes of
    # zeros that compress to almost nothing) cost ~600 MB before it was found truncated. The
    # claim is now checked against what the compressed size can hold, before reading the data.
    import tracemalloc

    head = (2051).to_bytes(4, "big") + (2**32 - 1).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    bomb = gzip.compress(head + bytes(8 << 20), compresslevel=9)
    assert len(bomb) < 64 << 10
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="truncated.*refused before reading"):
            mnist.read_idx(path)
        with pytest.raises(ValueError, match="truncated"):
            mnist.read_idx(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    # A claim the compressed size could hold but the content does not still fails as before.
    lie = gzip.compress(head[:4] + (50).to_bytes(4, "big") + head[8:] + bytes(49 * 784))
    with pytest.raises(ValueError, match="truncated"):
        mnist.read_idx(lie)


# ---------------------------------------------------------------------------------------------
# The other datasets and utils.get_file: one shared loader, tested with small files the tests
# make, served by a local HTTP server.
# ---------------------------------------------------------------------------------------------
import hashlib  # noqa: E402
import io  # noqa: E402
import pickle  # noqa: E402
import tarfile  # noqa: E402

from nncore import utils  # noqa: E402
from nncore.datasets import (boston_housing, cifar10, cifar100, fashion_mnist,  # noqa: E402
                             imdb, reuters)
from nncore.utils import files as nfiles  # noqa: E402


@pytest.fixture
def www(tmp_path):
    """(base URL, root dir) of a local HTTP server over a fresh directory; /cut/ hangs up."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()
    httpd.server_close()


def _md5(b):
    return hashlib.md5(b).hexdigest()


def _sha256(b):
    return hashlib.sha256(b).hexdigest()


def _serve(root, sub, files: dict):
    (root / sub).mkdir(exist_ok=True)
    for name, data in files.items():
        (root / sub / name).write_bytes(data)


def _no_network(*args, **kwargs):
    raise AssertionError("network used")


def test_fashion_mnist_mirrors_checksum_cache(www, refused_url, monkeypatch):
    base, root = www
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (9, 28, 28)), rng.integers(0, 10, 9),
              rng.integers(0, 256, (4, 28, 28)), rng.integers(0, 10, 4)]
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    good = {n: gzip.compress(idx_bytes(a)) for n, a in zip(names, arrays)}
    _serve(root, "good", good)
    _serve(root, "bad", {n: gzip.compress(b"wrong") for n in names})
    monkeypatch.setattr(fashion_mnist, "FILES", {n: (_md5(good[n]), m) for n, m in
                                                 zip(names, (2051, 2049, 2051, 2049))})
    _Handler.requests.clear()
    (xtr, ytr), (xte, yte) = fashion_mnist.load_data(
        mirrors=[refused_url, base + "empty/", base + "cut/", base + "bad/", base + "good/"])
    for got, want in zip((xtr, ytr, xte, yte), arrays):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.uint8
    assert [p for p in _Handler.requests if p.endswith(names[0])] == [
        f"/empty/{names[0]}", f"/cut/{names[0]}", f"/bad/{names[0]}", f"/good/{names[0]}"]
    cache = nfiles.cache_root() / "fashion_mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(names)  # no .part left over
    monkeypatch.setattr(nfiles, "download_to", _no_network)
    np.testing.assert_array_equal(fashion_mnist.load_data()[0][0], arrays[0])


def test_offline_errors_say_where_they_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCORE_DATA", str(tmp_path / "data"))
    for mod in (fashion_mnist, cifar10, cifar100, imdb, reuters, boston_housing):
        with pytest.raises(FileNotFoundError) as e:
            mod.load_data(download=False)
        msg = str(e.value)
        assert str(tmp_path / "data") in msg and str(nfiles.cache_root()) in msg
        assert "path=" in msg and "NNCORE_DATA" in msg
        with pytest.raises(FileNotFoundError, match="not found at"):
            mod.load_data(path=tmp_path / "nowhere")


def test_download_failure_lists_every_mirror(www, refused_url, monkeypatch):
    base, root = www
    _serve(root, "bad", {"boston_housing.npz": b"junk"})
    with pytest.raises(FileNotFoundError) as e:
        boston_housing.load_data(mirrors=[refused_url, base + "bad/"])
    msg = str(e.value)
    assert refused_url in msg and "sha256" in msg and "expected" in msg
    assert not (nfiles.cache_root() / "boston_housing").exists() or not any(
        (nfiles.cache_root() / "boston_housing").iterdir())


# ---- CIFAR: binary records, no pickle -----------------------------------------------------------
def _cifar_tar(members: dict, top: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _cifar10_parts(rng, per_batch=3):
    parts = []
    for _ in range(6):
        x = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, per_batch, dtype=np.uint8)
        parts.append((x, y))
    return parts


def _bin(x, *labels):
    cols = [np.asarray(lab, np.uint8)[:, None] for lab in labels] + [x.reshape(len(x), -1)]
    return np.concatenate(cols, axis=1).tobytes()


@pytest.fixture(scope="module")
def keras():
    require("tensorflow")
    return require("keras")


def test_cifar10_binary_download_and_layout(www, tmp_path, monkeypatch):
    base, root = www
    rng = np.random.default_rng(1)
    parts = _cifar10_parts(rng)
    names = cifar10.TRAIN + cifar10.TEST
    archive = _cifar_tar({n: _bin(x, y) for n, (x, y) in zip(names, parts)},
                         "cifar-10-batches-bin")
    _serve(root, "good", {cifar10.ARCHIVE: archive})
    monkeypatch.setattr(cifar10, "MD5", _md5(archive))
    (xtr, ytr), (xte, yte) = cifar10.load_data(mirrors=[base + "good/"])
    assert xtr.shape == (15, 32, 32, 3) and ytr.shape == (15, 1) and ytr.dtype == np.uint8
    # Keras's layout: CHW records transposed to channels_last, labels as (N, 1).
    np.testing.assert_array_equal(xtr, np.concatenate([x for x, _ in parts[:5]]).transpose(
        0, 2, 3, 1))
    np.testing.assert_array_equal(ytr[:, 0], np.concatenate([y for _, y in parts[:5]]))
    np.testing.assert_array_equal(xte, parts[5][0].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(yte[:, 0], parts[5][1])
    # The extracted folder works too, and a corrupt member is refused.
    ext = tmp_path / "ext"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        tf.extractall(ext, filter="data")
    np.testing.assert_array_equal(cifar10.load_data(path=ext)[1][0], xte)
    bad = _cifar_tar({n: _bin(x, y)[:-5] for n, (x, y) in zip(names, parts)},
                     "cifar-10-batches-bin")
    (tmp_path / "badc").mkdir()
    (tmp_path / "badc" / cifar10.ARCHIVE).write_bytes(bad)
    with pytest.raises(ValueError, match="whole number"):
        cifar10.load_data(path=tmp_path / "badc")


def test_cifar100_fine_and_coarse_match_keras(tmp_path, keras, monkeypatch):
    rng = np.random.default_rng(2)
    parts = {}
    for split, n in (("train.bin", 5), ("test.bin", 2)):
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        coarse, fine = rng.integers(0, 20, n), rng.integers(0, 100, n)
        parts[split] = (x, coarse, fine)
    d = tmp_path / "c100"
    d.mkdir()
    (d / cifar100.ARCHIVE).write_bytes(_cifar_tar(
        {k: _bin(x, c, f) for k, (x, c, f) in parts.items()}, "cifar-100-binary"))
    (xtr, ytr), (xte, yte) = cifar100.load_data(path=d)
    np.testing.assert_array_equal(xtr, parts["train.bin"][0].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(ytr[:, 0], parts["train.bin"][2])
    assert ytr.shape == (5, 1) and ytr.dtype == np.int64
    (_, ytr_c), _ = cifar100.load_data("coarse", path=d)
    np.testing.assert_array_equal(ytr_c[:, 0], parts["train.bin"][1])
    with pytest.raises(ValueError, match="label_mode"):
        cifar100.load_data("medium", path=d)
    # Keras reads the python (pickle) version of the same images.
    py = tmp_path / "keras" / "cifar-100-python"
    py.mkdir(parents=True)
    for split, name in (("train.bin", "train"), ("test.bin", "test")):
        x, c, f = parts[split]
        (py / name).write_bytes(pickle.dumps({b"data": x.reshape(len(x), -1),
                                              b"coarse_labels": [int(v) for v in c],
                                              b"fine_labels": [int(v) for v in f]}))
    import keras.src.datasets.cifar100 as kc100

    monkeypatch.setattr(kc100, "get_file", lambda *a, **k: str(tmp_path / "keras"))
    for mode in ("fine", "coarse"):
        for got, want in zip(cifar100.load_data(mode, path=d), kc100.load_data(mode)):
            for a, b in zip(got, want):
                assert a.dtype == b.dtype and a.shape == b.shape
                np.testing.assert_array_equal(a, b)


# ---- imdb / reuters / boston: Keras's transformations on the same files --------------------------
def _ragged(rng, n, vocab=40):
    out = np.empty(n, dtype=object)
    for i in range(n):
        out[i] = [int(w) for w in rng.integers(1, vocab, rng.integers(1, 12))]
    return out


@pytest.fixture
def imdb_file(tmp_path):
    rng = np.random.default_rng(3)
    d = tmp_path / "imdb"
    d.mkdir()
    np.savez(d / "imdb.npz", x_train=_ragged(rng, 30), y_train=rng.integers(0, 2, 30),
             x_test=_ragged(rng, 20), y_test=rng.integers(0, 2, 20))
    return d


KW = [{}, {"num_words": 20}, {"num_words": 25, "skip_top": 5, "maxlen": 9},
      {"start_char": None, "index_from": 0, "oov_char": None, "num_words": 15},
      {"seed": 7, "index_from": 2, "start_char": 0}]


@pytest.mark.parametrize("kw", KW)
def test_imdb_matches_keras(keras, imdb_file, monkeypatch, kw):
    import keras.src.datasets.imdb as kimdb

    monkeypatch.setattr(kimdb, "get_file", lambda *a, **k: str(imdb_file / "imdb.npz"))
    want = kimdb.load_data(**kw)
    got = imdb.load_data(path=imdb_file, **kw)
    for (gx, gy), (wx, wy) in zip(got, want):
        assert [list(s) for s in gx] == [list(s) for s in wx]
        np.testing.assert_array_equal(gy, wy)
        assert gx.dtype == object and gy.dtype == wy.dtype


@pytest.mark.parametrize("kw", KW[:3] + [{"test_split": 0.5, "maxlen": 7}])
def test_reuters_matches_keras(keras, tmp_path, monkeypatch, kw):
    import keras.src.datasets.reuters as kreuters

    rng = np.random.default_rng(4)
    d = tmp_path / "reuters"
    d.mkdir()
    np.savez(d / "reuters.npz", x=_ragged(rng, 40), y=rng.integers(0, 46, 40))
    monkeypatch.setattr(kreuters, "get_file", lambda *a, **k: str(d / "reuters.npz"))
    want = kreuters.load_data(**kw)
    got = reuters.load_data(path=d, **kw)
    for (gx, gy), (wx, wy) in zip(got, want):
        assert [list(s) for s in gx] == [list(s) for s in wx]
        np.testing.assert_array_equal(gy, wy)
    assert reuters.get_label_names() == kreuters.get_label_names()


def test_boston_housing_matches_keras(keras, tmp_path, monkeypatch):
    import keras.src.datasets.boston_housing as kb

    rng = np.random.default_rng(5)
    d = tmp_path / "boston"
    d.mkdir()
    np.savez(d / "boston_housing.npz", x=rng.normal(size=(51, 13)), y=rng.normal(size=51))
    monkeypatch.setattr(kb, "get_file", lambda *a, **k: str(d / "boston_housing.npz"))
    for kw in ({}, {"test_split": 0.3, "seed": 1}):
        for (gx, gy), (wx, wy) in zip(boston_housing.load_data(path=d, **kw), kb.load_data(**kw)):
            np.testing.assert_array_equal(gx, wx)
            np.testing.assert_array_equal(gy, wy)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_object_arrays_cannot_run_code(tmp_path):
    d = tmp_path / "evil"
    d.mkdir()
    x = np.empty(2, dtype=object)
    x[0], x[1] = [1, 2], _Evil()
    np.savez(d / "imdb.npz", x_train=x, y_train=np.zeros(2, np.int64), x_test=x,
             y_test=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="refus"):
        imdb.load_data(path=d)
    # Lists of something other than non-negative ints are refused too.
    x[1] = [1, "two"]
    np.savez(d / "imdb.npz", x_train=x, y_train=np.zeros(2, np.int64), x_test=x,
             y_test=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="non-negative integers"):
        imdb.load_data(path=d)


# ---- utils.get_file ----------------------------------------------------------------------------
def test_get_file_download_hash_cache_and_redownload(www, refused_url, monkeypatch, tmp_path):
    base, root = www
    payload = b"hello nncore" * 100
    _serve(root, "good", {"data.bin": payload})
    _serve(root, "bad", {"data.bin": b"tampered"})
    sha = _sha256(payload)
    path = utils.get_file("data.bin", [refused_url + "data.bin", base + "bad/data.bin",
                                       base + "good/data.bin"], file_hash=sha)
    assert path == str(nfiles.cache_root() / "datasets" / "data.bin")
    assert pathlib.Path(path).read_bytes() == payload
    _Handler.requests.clear()
    assert utils.get_file("data.bin", base + "good/data.bin", file_hash=sha) == path
    assert _Handler.requests == []  # from the cache
    pathlib.Path(path).write_bytes(b"corrupted")  # a stale cached copy is fetched again
    utils.get_file("data.bin", base + "good/data.bin", file_hash=sha)
    assert pathlib.Path(path).read_bytes() == payload
    # md5 by length, a custom cache dir and subdir, fname from the URL.
    p2 = utils.get_file(origin=base + "good/data.bin", md5_hash=_md5(payload),
                        cache_dir=tmp_path / "c", cache_subdir="sub")
    assert p2 == str(tmp_path / "c" / "sub" / "data.bin")
    with pytest.raises(FileNotFoundError) as e:
        utils.get_file("other.bin", [refused_url + "x", base + "bad/data.bin"], file_hash=sha)
    assert refused_url in str(e.value) and "sha256" in str(e.value)
    assert not (nfiles.cache_root() / "datasets" / "other.bin").exists()


def test_get_file_extracts_safely(www):
    base, root = www
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("pkg/a.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    _serve(root, "good", {"pkg.tar.gz": buf.getvalue()})
    out = utils.get_file("pkg.tar.gz", base + "good/pkg.tar.gz", extract=True)
    assert (pathlib.Path(out) / "pkg" / "a.txt").read_bytes() == b"abc"
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tf:
        info = tarfile.TarInfo("../../escape.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    _serve(root, "good", {"evil.tar.gz": evil.getvalue()})
    with pytest.raises(ValueError, match="outside"):
        utils.get_file("evil.tar.gz", base + "good/evil.tar.gz", extract=True)
    assert not (root.parent / "escape.txt").exists()
