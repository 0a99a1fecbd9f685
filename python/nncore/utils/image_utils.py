"""load_img, img_to_array, array_to_img, save_img, as keras.utils; they need Pillow."""

from __future__ import annotations

import os

import numpy as np


def _pil():
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("nncore's image utilities need the Pillow package to read and write "
                          "images: pip install pillow") from e
    return Image


_RESAMPLE = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC",
             "lanczos": "LANCZOS", "box": "BOX", "hamming": "HAMMING"}


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest",
             keep_aspect_ratio=False):
    """A PIL image from a file, converted to 'grayscale' (L), 'rgb' or 'rgba' and resized to
    target_size (height, width) with `interpolation`."""
    Image = _pil()
    if interpolation not in _RESAMPLE:
        raise ValueError(f"Invalid interpolation method {interpolation!r}; supported: "
                         f"{sorted(_RESAMPLE)}")
    if keep_aspect_ratio:
        raise ValueError("load_img: keep_aspect_ratio is not supported")
    from ..saving.files import FileRefused, open_regular

    try:
        f, _ = open_regular(path)  # regular files only: a FIFO or a device is refused
    except FileRefused as e:
        raise ValueError(f"load_img: {e}") from None
    with f:
        try:
            img = Image.open(f)
            img.load()
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
            # Pillow's decoders report a corrupt file through these (UnidentifiedImageError is
            # an OSError; SyntaxError from some header parsers); name the user's path.
            raise ValueError(f"load_img: {os.fspath(path)!r} is not a readable image "
                             f"({type(e).__name__}: {e})") from None
    mode = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}.get(color_mode)
    if mode is None:
        raise ValueError('color_mode must be "grayscale", "rgb", or "rgba"')
    if img.mode != mode:
        img = img.convert(mode)
    if target_size is not None:
        size = (int(target_size[1]), int(target_size[0]))
        if img.size != size:
            img = img.resize(size, getattr(Image.Resampling, _RESAMPLE[interpolation]))
    return img


def img_to_array(img, data_format=None, dtype="float32"):
    """(height, width, channels) array of a PIL image (channels 1 for grayscale)."""
    x = np.asarray(img, dtype=dtype)
    if x.ndim == 2:
        x = x[..., None]
    elif x.ndim != 3:
        raise ValueError(f"Unsupported image shape: {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(2, 0, 1)
    elif data_format not in (None, "channels_last"):
        raise ValueError(f"Unknown data_format: {data_format}")
    return x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A PIL image from a (height, width, channels) array with 1, 3 or 4 channels; scale maps
    the array's [min, max] to [0, 255]."""
    Image = _pil()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"Expected image array to have rank 3 (single image). Got array with "
                         f"shape: {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    elif data_format not in (None, "channels_last"):
        raise ValueError(f"Unknown data_format: {data_format}")
    if scale:
        x = x - np.min(x)
        top = np.max(x)
        if top != 0:
            x = x / top
        x = x * 255
    c = x.shape[2]
    if c not in (1, 3, 4):
        raise ValueError(f"Unsupported channel number: {c}")
    x = np.clip(x, 0, 255).astype(np.uint8)  # truncation, as Keras
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    return Image.fromarray(x[..., 0] if c == 1 else x, mode)


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and (file_format in ("jpg", "jpeg") or str(path).lower().endswith(
            (".jpg", ".jpeg"))):
        img = img.convert("RGB")
    Image = _pil()
    fmt = file_format
    if fmt is None:
        ext = os.path.splitext(os.fspath(path))[1].lower()
        fmt = Image.registered_extensions().get(ext)
        if fmt is None:
            raise ValueError(f"save_img: unknown file extension {ext!r} in {os.fspath(path)!r}; "
                             "pass file_format")
    from ..saving.files import atomic_write

    atomic_write(path, lambda f: img.save(f, format=fmt, **kwargs))  # nncore's one writer
