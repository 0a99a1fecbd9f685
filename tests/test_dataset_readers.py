"""Every data-set and utility reader goes through nncore's one reader
(saving.files.open_regular): a FIFO is refused without blocking and a device without reading;
every writer through saving.files.atomic_write (mode kept, old file intact on failure)."""

from __future__ import annotations

import os
import stat
import threading

import numpy as np
import pytest
from nncore import callbacks, layers, models, utils
from nncore.datasets import _loader, cifar, mnist
from nncore.utils import files as ufiles
from nncore.utils import image_utils
from conftest import platform_skipif, require


def _text_dir(tmp_path, fifo):
    d = tmp_path / "texts" / "a"
    d.mkdir(parents=True)
    (d / "ok.txt").write_text("fine")
    os.rename(fifo, d / "pipe.txt")
    return lambda _: utils.text_dataset_from_directory(tmp_path / "texts", verbose=False)


def _cifar_dir(tmp_path, fifo):
    os.rename(fifo, tmp_path / "data_batch_1.bin")
    return lambda _: cifar.read_members(tmp_path, ["data_batch_1.bin"], 1)


READERS = {
    "mnist.read_idx": lambda tp, f: lambda p: mnist.read_idx(p),
    "datasets npz": lambda tp, f: lambda p: _loader.load_npz(p),
    "word index": lambda tp, f: lambda p: _loader.load_word_index(p),
    "cifar tar": lambda tp, f: lambda p: cifar.read_members(p, ["x"], 1),
    "cifar directory": _cifar_dir,
    "load_img": lambda tp, f: lambda p: image_utils.load_img(p),
    "text_dataset_from_directory": _text_dir,
    "hash_file": lambda tp, f: lambda p: ufiles.hash_file(p),
    "extract_archive": lambda tp, f: lambda p: ufiles.extract_archive(p, tp / "out"),
}
NEEDS = {"load_img": "PIL"}  # the optional package a reader needs (checked before it runs)


@platform_skipif(not hasattr(os, "mkfifo"), "needs FIFOs (POSIX)")
@pytest.mark.parametrize("name", sorted(READERS))
def test_fifo_is_refused_without_blocking(tmp_path, name):
    if name in NEEDS:
        require(NEEDS[name])  # here, not in the reader's thread (a skip there is lost)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    call = READERS[name](tmp_path, fifo)
    result = []

    def run():
        try:
            call(fifo)
        except ValueError as e:
            result.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader so the thread can end, then fail
        with open(fifo if fifo.exists() else os.devnull, "wb"):
            pass
        pytest.fail(f"{name} blocked on a FIFO")
    assert result and "FIFO" in str(result[0]), f"{name}: {result}"


@platform_skipif(not os.path.exists("/dev/zero"), "needs /dev/zero (POSIX)")
@pytest.mark.parametrize("name", sorted(set(READERS) - {"cifar directory",
                                                        "text_dataset_from_directory"}))
def test_device_is_refused_without_reading(tmp_path, name):
    if name in NEEDS:
        require(NEEDS[name])
    call = READERS[name](tmp_path, None)
    with pytest.raises(ValueError, match="a device, not a regular file"):
        call("/dev/zero")


def test_save_img_is_atomic_and_keeps_the_mode(tmp_path):
    require("PIL")
    path = tmp_path / "img.png"
    x = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    image_utils.save_img(path, x)
    os.chmod(path, 0o600)
    before = path.read_bytes()
    with pytest.raises(OSError):  # Pillow's encoder refuses the option midway through writing
        image_utils.save_img(path, x, compress_level=99)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["img.png"]  # no temporary file left
    image_utils.save_img(path, x[::-1])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    np.testing.assert_array_equal(image_utils.img_to_array(image_utils.load_img(path)),
                                  np.clip(x[::-1] / x.max() * 255, 0, 255).astype(np.uint8))
    with pytest.raises(ValueError, match="unknown file extension"):
        image_utils.save_img(tmp_path / "img.unknown", x)


def test_backup_double_checkpoint_rotates_by_rename(tmp_path, rng):
    """The previous backup is the last good file renamed, never a half copy; both restore."""
    m = models.Sequential([layers.Dense(2, input_shape=(3,))])
    m.compile(optimizer="sgd", loss="mse")
    x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32)
    cb = callbacks.BackupAndRestore(tmp_path / "b", double_checkpoint=True,
                                    delete_checkpoint=False)
    m.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    names = sorted(os.listdir(tmp_path / "b"))
    assert names == ["latest.npz", "latest.npz.bkp"]
    for n in names:
        arrays = _loader.load_npz(tmp_path / "b" / n, max_members=1 << 16)
        assert "meta" in arrays
