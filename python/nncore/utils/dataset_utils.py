"""Keras's dataset utilities on NumPy arrays: split_dataset, timeseries_dataset_from_array,
image_dataset_from_directory, text_dataset_from_directory.

Keras returns tf.data datasets; nncore returns an ``ArrayDataset``: a PyDataset-like sequence of
``(x, y)`` batches (``len(ds)`` batches, ``ds[i]``, iteration), whose ``numpy()`` gives the whole
``(x, y)`` arrays that ``fit`` accepts today. The file-based ones read every file eagerly."""

from __future__ import annotations

import math
import os

import numpy as np

from .numerical import to_categorical

IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


class ArrayDataset:
    """Batches of arrays: ds[i] is (x[i*b:(i+1)*b], y[...]) (or x alone without targets);
    batch_size None gives one sample per item, as an unbatched Keras dataset."""

    def __init__(self, x, y=None, batch_size=None, class_names=None):
        self.x, self.y = x, y
        if y is not None and len(x) != len(y):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
        self.batch_size = None if batch_size is None else int(batch_size)
        self.class_names = class_names

    def __len__(self):
        n = len(self.x)
        return n if self.batch_size is None else math.ceil(n / self.batch_size)

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f"batch {i} out of range for {len(self)} batches")
        i %= len(self)
        sl = i if self.batch_size is None else slice(i * self.batch_size,
                                                     (i + 1) * self.batch_size)
        return self.x[sl] if self.y is None else (self.x[sl], self.y[sl])

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def numpy(self):
        """The whole data: (x, y), or x without targets."""
        return self.x if self.y is None else (self.x, self.y)


# ---- split_dataset -----------------------------------------------------------------------------
def _split_sizes(left, right, total):
    for v, name in ((left, "left_size"), (right, "right_size")):
        if v is not None and (isinstance(v, bool) or type(v) not in (int, float)):
            raise TypeError(f"Invalid `{name}` argument: expected int or float, got {v!r}")
        if type(v) is int and not 0 < v < total or type(v) is float and not 0 < v < 1:
            raise ValueError(f"`{name}` should be in (0, {total}) as an int or in (0, 1) as a "
                             f"float, got {v}")
    if left is None and right is None:
        left = 0.5
    if type(left) is float and type(right) is float and left + right > 1:
        raise ValueError("The sum of `left_size` and `right_size` should be smaller than 1")
    left = round(left * total) if type(left) is float else left
    right = round(right * total) if type(right) is float else right
    if left is None:
        left = total - right
    elif right is None:
        right = total - left
    if left + right > total:
        raise ValueError(f"The sum of left_size={left} and right_size={right} exceeds the "
                         f"{total} samples")
    if left == 0 or right == 0:
        raise ValueError("One of the splits is empty; change left_size or right_size")
    return int(left), int(right)


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Split an array, a tuple/list of arrays (split together) or an ArrayDataset into two of the
    same kind; sizes are counts (int) or fractions (float), as keras.utils.split_dataset."""
    batch = None
    if isinstance(dataset, ArrayDataset):
        batch, parts = dataset.batch_size, ([dataset.x] if dataset.y is None
                                           else [dataset.x, dataset.y])
    elif isinstance(dataset, (tuple, list)):
        parts = [np.asarray(a) for a in dataset]
    else:
        parts = [np.asarray(dataset)]
    n = len(parts[0])
    if any(len(p) != n for p in parts):
        raise ValueError("all arrays must have the same number of samples")
    left, right = _split_sizes(left_size, right_size, n)
    idx = np.arange(n)
    if shuffle:
        np.random.RandomState(seed if seed is not None else np.random.randint(1e6)).shuffle(idx)
    li, ri = idx[:left], idx[n - right:]  # as Keras: the right part is the last samples
    lp, rp = [p[li] for p in parts], [p[ri] for p in parts]
    if isinstance(dataset, ArrayDataset):
        return ArrayDataset(*lp, batch_size=batch), ArrayDataset(*rp, batch_size=batch)
    if isinstance(dataset, (tuple, list)):
        return type(dataset)(lp), type(dataset)(rp)
    return lp[0], rp[0]


# ---- timeseries --------------------------------------------------------------------------------
def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None):
    """Sliding windows over data[start_index:end_index]: window k starts at position p_k =
    k * sequence_stride and holds rows p_k, p_k + sampling_rate, ... (sequence_length rows); its
    target is targets[start_index + p_k]. shuffle permutes the windows with RandomState(seed)
    (Keras also reshuffles within a buffer, so shuffled orders differ from Keras's)."""
    data = np.asarray(data)
    n = len(data)
    for v, name in ((sequence_length, "sequence_length"), (sequence_stride, "sequence_stride"),
                    (sampling_rate, "sampling_rate")):
        if isinstance(v, bool) or int(v) != v or v <= 0:
            raise ValueError(f"`{name}` must be a positive integer, got {v!r}")
    if sampling_rate >= n:
        raise ValueError(f"`sampling_rate` must be lower than the length of the data, got "
                         f"{sampling_rate} for {n} rows")
    if sequence_stride >= n:
        raise ValueError(f"`sequence_stride` must be lower than the length of the data, got "
                         f"{sequence_stride} for {n} rows")
    if start_index and not 0 <= start_index < n:
        raise ValueError(f"`start_index` must be in [0, {n}), got {start_index}")
    if end_index and (end_index >= n or end_index <= 0 or (start_index and
                                                            end_index <= start_index)):
        raise ValueError(f"`end_index` must be in ({start_index or 0}, {n}), got {end_index}")
    start = start_index or 0
    end = end_index if end_index is not None else n
    num = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        targets = np.asarray(targets)
        num = min(num, len(targets))
    starts = np.arange(0, max(num, 0), sequence_stride)
    if shuffle:
        np.random.RandomState(seed if seed is not None else np.random.randint(1e6)).shuffle(
            starts)
    rows = starts[:, None] + np.arange(sequence_length)[None, :] * sampling_rate
    x = data[start:end][rows]
    y = None if targets is None else targets[start:end][starts]
    return ArrayDataset(x, y, batch_size)


# ---- from directories --------------------------------------------------------------------------
def _index_directory(directory, labels, formats, class_names, shuffle, seed, follow_links):
    directory = os.fspath(directory)
    if labels == "inferred":
        subdirs = [d for d in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]
        if class_names is not None:
            if not set(class_names) <= set(subdirs):
                raise ValueError(f"The `class_names` passed did not match the names of the "
                                 f"subdirectories of the target directory. Expected: {subdirs} "
                                 f"(or a subset of it), but received: class_names={class_names}")
            subdirs = list(class_names)
    else:
        if class_names is not None:
            raise ValueError("class_names can only be given with labels='inferred'")
        subdirs = [""]
    paths, found = [], []
    for k, sub in enumerate(subdirs):
        walk = os.walk(os.path.join(directory, sub), followlinks=follow_links)
        for root, _, fnames in sorted(walk, key=lambda t: t[0]):
            for f in sorted(fnames):
                if f.lower().endswith(formats):
                    paths.append(os.path.join(root, f))
                    found.append(k)
    if labels == "inferred":
        lab = np.asarray(found, np.int32)
        names = subdirs
    elif labels is None:
        lab, names = None, None
    else:
        lab = np.asarray(labels)
        if len(lab) != len(paths):
            raise ValueError(f"Expected the lengths of `labels` to match the number of files in "
                             f"the target directory. len(labels) is {len(lab)} while we found "
                             f"{len(paths)} files in directory {directory}.")
        names = [str(v) for v in sorted(set(lab.tolist()))]
    if shuffle:
        seed = seed if seed is not None else np.random.randint(1e6)
        order = np.arange(len(paths))
        np.random.RandomState(seed).shuffle(order)  # Keras shuffles both with this seed
        paths = [paths[i] for i in order]
        if lab is not None:
            lab = lab[order]
    return paths, lab, names


def _split(paths, lab, validation_split, subset):
    if not validation_split:
        if subset is not None:
            raise ValueError("`subset` needs `validation_split`")
        return paths, lab
    if not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1, got {validation_split}")
    k = int(validation_split * len(paths))
    if subset == "training":
        return paths[:len(paths) - k], None if lab is None else lab[:len(paths) - k]
    if subset == "validation":
        return paths[len(paths) - k:], None if lab is None else lab[len(paths) - k:]
    raise ValueError(f'`subset` must be either "training" or "validation", received: {subset}')


def _labels(lab, label_mode, num_classes):
    if lab is None or label_mode is None:
        return None
    if label_mode == "int":
        return lab.astype(np.int32)
    if label_mode == "binary":
        if num_classes != 2:
            raise ValueError(f'When passing `label_mode="binary"`, there must be exactly 2 '
                             f"class_names. Received: class_names count={num_classes}")
        return lab.astype(np.float32).reshape(-1, 1)
    if label_mode == "categorical":
        return to_categorical(lab, num_classes)
    raise ValueError(f'`label_mode` argument must be one of "int", "categorical", "binary", or '
                     f"None. Received: label_mode={label_mode}")


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=32, image_size=(256, 256),
                                 shuffle=True, seed=None, validation_split=None, subset=None,
                                 interpolation="bilinear", follow_links=False,
                                 crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
                                 data_format=None, verbose=True):
    """Images under directory (one subdirectory per class with labels='inferred') as float32
    (N, height, width, channels) in [0, 255], resized with Pillow; Keras's file order, shuffling
    and validation split. Needs Pillow."""
    from .image_utils import img_to_array, load_img

    if crop_to_aspect_ratio or pad_to_aspect_ratio:
        raise ValueError("crop_to_aspect_ratio / pad_to_aspect_ratio are not supported")
    if data_format not in (None, "channels_last"):
        raise ValueError("only data_format='channels_last' is supported")
    paths, lab, names = _index_directory(directory, labels, IMAGE_FORMATS, class_names, shuffle,
                                         seed, follow_links)
    paths, lab = _split(paths, lab, validation_split, subset)
    if verbose:
        print(f"Found {len(paths)} files" + ("." if names is None else
                                              f" belonging to {len(names)} classes."))
    channels = {"rgb": 3, "rgba": 4, "grayscale": 1}.get(color_mode)
    if channels is None:
        raise ValueError(f'`color_mode` must be one of {{"rgb", "rgba", "grayscale"}}. '
                         f"Received: color_mode={color_mode}")
    h, w = image_size
    x = np.empty((len(paths), h, w, channels), np.float32)
    for i, p in enumerate(paths):
        x[i] = img_to_array(load_img(p, color_mode=color_mode, target_size=(h, w),
                                     interpolation=interpolation))
    y = _labels(lab, label_mode, len(names) if names else 0)
    return ArrayDataset(x, y, batch_size, class_names=names)


def text_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                batch_size=32, max_length=None, shuffle=True, seed=None,
                                validation_split=None, subset=None, follow_links=False,
                                verbose=True):
    """The .txt files under directory as an object array of str (UTF-8, truncated to max_length
    characters), with Keras's file order, labels, shuffling and validation split."""
    paths, lab, names = _index_directory(directory, labels, (".txt",), class_names, shuffle,
                                         seed, follow_links)
    paths, lab = _split(paths, lab, validation_split, subset)
    if verbose:
        print(f"Found {len(paths)} files" + ("." if names is None else
                                              f" belonging to {len(names)} classes."))
    x = np.empty(len(paths), dtype=object)
    for i, p in enumerate(paths):
        from ..saving.files import open_regular

        f, _ = open_regular(p)  # nncore's one reader: a FIFO or a device is refused
        with f:
            text = f.read().decode("utf-8", errors="replace")
        x[i] = text[:max_length] if max_length is not None else text
    return ArrayDataset(x, _labels(lab, label_mode, len(names) if names else 0), batch_size,
                        class_names=names)
