"""Utilities, as keras.utils: random seeding, the progress bar, to_categorical, normalize,
pad_sequences, get_file, split_dataset, timeseries/image/text datasets, image files, plot_model.
Pillow and pydot are optional and imported only when used."""

from .dataset_utils import (ArrayDataset, image_dataset_from_directory, split_dataset,
                            text_dataset_from_directory, timeseries_dataset_from_array)
from .files import get_file
from .image_utils import array_to_img, img_to_array, load_img, save_img
from .model_visualization import model_to_dot, plot_model
from .numerical import normalize, to_categorical
from .progbar import Progbar
from .random import get_rng, set_random_seed
from .sequence import pad_sequences

__all__ = ["ArrayDataset", "Progbar", "PyDataset", "array_to_img", "get_file", "get_rng",
           "image_dataset_from_directory", "img_to_array", "load_img", "model_to_dot",
           "normalize", "pad_sequences", "plot_model", "save_img", "set_random_seed",
           "split_dataset", "text_dataset_from_directory", "timeseries_dataset_from_array",
           "to_categorical"]


def __getattr__(name):
    # PyDataset lives with the data adapters (nncore.trainers); loaded on first use.
    if name in ("PyDataset", "Sequence"):
        from ..trainers.data_adapters import PyDataset

        return PyDataset
    raise AttributeError(f"module 'nncore.utils' has no attribute {name!r}")
