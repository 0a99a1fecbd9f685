"""nncore: a small, fast deep-learning library for the CPU.

Hand-optimised C++ kernels (GEMM, convolution, pooling, recurrent layers) parallelised by nncore's own thread pool,
under a Keras-style API. numpy is the only runtime dependency.
"""

from __future__ import annotations

import importlib
import os

from . import _core

__version__: str = _core.__version__  # defined once, in pyproject.toml
__all__ = ["__version__", "get_num_threads", "set_num_threads", "show_config"]

_SUBMODULES = {
    "ops", "layers", "models", "losses", "optimizers", "regularizers", "constraints",
    "initializers", "activations", "metrics", "callbacks", "datasets", "utils", "backend",
    "saving", "trainers", "preprocessing", "onnx", "kernels", "distributed", "explain",
    "wrappers", "plot", "config", "random",
}
# `import nncore as keras`: keras.Input, keras.Model, keras.Sequential... load on first use.
_ATTRS = {"Input": ("layers", "Input"), "Model": ("models", "Model"),
          "Sequential": ("models", "Sequential"), "Layer": ("layers", "Layer"),
          "KerasTensor": ("layers", "KerasTensor")}


def get_num_threads() -> int:
    """Threads nncore's kernels use: OMP_NUM_THREADS if set, else the usable cores, unless changed
    by set_num_threads. OMP_NUM_THREADS is read as an OpenMP runtime reads it (nncore links none;
    its own pool honours the variable): a positive integer or the first of a list ("4,2"), capped
    at 1024; any other value ("2abc", "0") is ignored, as libgomp ignores it, and the default
    applies. A process forked from
    one that imported nncore (as multiprocessing does on Linux) uses 1: thread pools do not survive
    fork()."""
    return 1 if _core.in_forked_child() else _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads nncore's own parallel regions use (1 <= n <= 1024, the cap that
    also applies to OMP_NUM_THREADS). Results do not depend on it: every kernel is bitwise
    identical for any thread count."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads expects an int, got {type(n).__name__}")
    if not 1 <= n <= _core.max_threads:
        raise ValueError(f"number of threads must be in [1, {_core.max_threads}], got {n}")
    _core.set_num_threads(n)


def show_config() -> dict:
    """Print and return how this nncore was built and what it will run on."""
    cfg = {
        "version": __version__,
        "isa": _core.get_isa(),
        "cpu_isa": _core.cpu_isa(),
        "supported_isas": list(_core.supported_isas()),
        "gemm_kernel": _core.sgemm_kernel_name(),
        # data caches from CPUID and the GEMM blocks chosen from them (active ISA)
        "caches": dict(_core.cpu_caches()),
        "gemm_blocks": dict(_core.gemm_blocks(_core.get_isa())),
        # the kernel each family runs under the active ISA (the C++ dispatch tables)
        "kernels": dict(_core.kernels(_core.get_isa())),
        "threads": get_num_threads(),
        "forked_child": bool(_core.in_forked_child()),
        "compiler": _core.compiler,
        # nncore runs its own thread pool (csrc/common/parallel.*); it links no OpenMP runtime
        "thread_pool": "nncore",
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
