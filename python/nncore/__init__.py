"""nncore: a small, fast deep-learning library for the CPU.

Hand-optimised C++ kernels (GEMM, convolution, pooling, recurrent layers) parallelised with OpenMP,
under a Keras-style API. numpy is the only runtime dependency.
"""

from __future__ import annotations

import importlib
import os

from . import _core

__version__ = "0.1.0"
__all__ = ["__version__", "get_num_threads", "set_num_threads", "show_config"]

_SUBMODULES = {
    "ops", "layers", "models", "losses", "optimizers", "regularizers", "initializers",
    "activations", "metrics", "callbacks", "datasets", "utils", "backend", "saving", "trainers",
    "keras_ops",
}
# `import nncore as keras`: keras.Input, keras.Model, keras.Sequential... load on first use.
_ATTRS = {"Input": ("layers", "Input"), "Model": ("models", "Model"),
          "Sequential": ("models", "Sequential"), "Layer": ("layers", "Layer"),
          "KerasTensor": ("layers", "KerasTensor")}


def get_num_threads() -> int:
    """Threads nncore's kernels use: OMP_NUM_THREADS if set, else the usable cores, unless changed by
    set_num_threads. A process forked from one that imported nncore (as multiprocessing does on
    Linux) uses 1: OpenMP thread pools do not survive fork()."""
    return 1 if _core.in_forked_child() else _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads nncore's own parallel regions use (n >= 1). Results do not depend
    on it: every kernel is bitwise identical for any thread count."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads expects an int, got {type(n).__name__}")
    _core.set_num_threads(n)


def show_config() -> dict:
    """Print and return how this nncore was built and what it will run on."""
    cfg = {
        "version": __version__,
        "isa": _core.get_isa(),
        "cpu_isa": _core.cpu_isa(),
        "supported_isas": list(_core.supported_isas()),
        "gemm_kernel": _core.sgemm_kernel_name(),
        "threads": get_num_threads(),
        "forked_child": bool(_core.in_forked_child()),
        "compiler": _core.compiler,
        "openmp": _core.openmp_version(),
        "NNCORE_ISA": os.environ.get("NNCORE_ISA"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    for key, value in cfg.items():
        print(f"{key:>15}: {value}")
    return cfg


def __getattr__(name: str):
    # Submodules load on first use so that `import nncore` stays fast.
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name in _ATTRS:
        mod, attr = _ATTRS[name]
        value = getattr(importlib.import_module(f".{mod}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nncore' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES) + list(_ATTRS))
