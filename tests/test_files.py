"""Reading and writing model files safely: only regular files, descriptors the caller owns stay
open, atomic writes that keep the mode and follow symlinks, headers checked before parsing,
weights that went NaN load as data (and never replace a good checkpoint)."""

from __future__ import annotations

import io
import os
import stat
import threading
import zipfile

import nncore as keras
import numpy as np
import pytest
from nncore import callbacks, layers
from nncore.saving import files


def _model():
    m = keras.Sequential([layers.Dense(2, input_shape=(3,))])
    m.compile(optimizer="sgd", loss="mse")
    return m


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero (POSIX)")
def test_device_is_refused_without_reading():
    with pytest.raises(ValueError, match="a device, not a regular file"):
        keras.models.load_model("/dev/zero")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.nncore"
    os.mkfifo(fifo)
    result = []
    t = threading.Thread(target=lambda: result.append(
        pytest.raises(ValueError, keras.models.load_model, fifo)), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "load_model blocked on a FIFO"
    assert "FIFO" in str(result[0].value)


def test_descriptor_and_file_object_stay_open(tmp_path):
    m = _model()
    p = tmp_path / "m.nncore"
    m.save(p)
    m.save_weights(tmp_path / "w.nncore")
    fd = os.open(p, os.O_RDONLY)
    wfd = os.open(tmp_path / "w.nncore", os.O_RDONLY)
    try:
        keras.models.load_model(fd)
        m.load_weights(wfd)
        os.fstat(fd)  # both still open
        os.fstat(wfd)
    finally:
        os.close(fd)
        os.close(wfd)
    with open(p, "rb") as f:
        keras.models.load_model(f)
        assert not f.closed
    keras.models.load_model(io.BytesIO(p.read_bytes()))


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes and links")
def test_save_keeps_mode_and_follows_symlinks(tmp_path):
    m = _model()
    target = tmp_path / "real.nncore"
    m.save(target)
    os.chmod(target, 0o600)
    m.save(target)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    link = tmp_path / "link.nncore"
    link.symlink_to(target)
    m.layers[0].set_weights([np.ones((3, 2)), np.zeros(2)])
    m.save(link)
    assert link.is_symlink()
    np.testing.assert_array_equal(keras.models.load_model(target).get_weights()[0], np.ones((3, 2)))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_failed_save_keeps_old_file_and_names_the_path(tmp_path, monkeypatch):
    m = _model()
    p = tmp_path / "m.nncore"
    m.save(p)
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="m.nncore"):
        m.save(p)
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.nncore"]


def test_zip_member_count_is_checked_before_parsing(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_ZIP_MEMBERS", 10)
    p = tmp_path / "many.nncore"
    with zipfile.ZipFile(p, "w") as z:
        for i in range(11):
            z.writestr(f"m{i}", b"")
    parsed = []
    real = zipfile.ZipFile._RealGetContents
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents",
                        lambda self: parsed.append(1) or real(self))
    with pytest.raises(ValueError, match="declares 11 members"):
        keras.models.load_model(p)
    assert not parsed


def test_nan_weights_load_and_do_not_replace_a_good_checkpoint(tmp_path, capsys):
    m = _model()
    good = tmp_path / "ck.nncore"
    m.save(good)
    w = m.get_weights()
    m.layers[0].set_weights([np.full((3, 2), np.nan), w[1]])
    m.save(tmp_path / "nan.nncore")
    assert np.isnan(keras.models.load_model(tmp_path / "nan.nncore").get_weights()[0]).all()
    before = good.read_bytes()
    ck = callbacks.ModelCheckpoint(str(good))
    ck.set_model(m)
    ck.on_epoch_end(0, {"loss": float("nan")})
    assert good.read_bytes() == before
    assert "not finite" in capsys.readouterr().err
