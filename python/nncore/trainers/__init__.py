"""The training loop, apart from the model: data adapters, the epoch loop with its callbacks,
train_step / test_step / predict_step, and the one place where the complete gradient list exists
before the optimizer applies it (``Trainer.apply_gradients``; see ``add_gradient_hook``)."""

from .data_adapters import PyDataset
from .trainer import Trainer

__all__ = ["Trainer", "PyDataset"]
