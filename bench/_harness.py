"""The one small harness every benchmark shares: warm-up, median of N, machine facts."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import time


def sample_time(fn, min_time: float = 0.0) -> float:
    """Seconds per call of fn, calling it until at least min_time has passed (once if 0)."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return dt / n


def median_time(fn, *, reps: int = 7, warmup: int = 2, min_time: float = 0.0) -> float:
    """Median seconds of `reps` timed calls after `warmup` untimed ones. With min_time > 0 each
    sample loops until it lasts that long (for microsecond-scale calls)."""
    for _ in range(warmup):
        fn()
    return statistics.median(sample_time(fn, min_time) for _ in range(reps))


def load_1min() -> float:
    """The 1-minute load average now (the machine has 2 cores: above ~0.5 means contention)."""
    return os.getloadavg()[0]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def machine_header() -> str:
    import nncore
    from nncore import _core

    return (
        f"date {datetime.date.today().isoformat()}, CPU {cpu_model()} ({os.cpu_count()} cores), "
        f"nncore {nncore.__version__} ({_core.get_isa()}, {_core.sgemm_kernel_name()}), "
        f"numpy {__import__('numpy').__version__}, Python {platform.python_version()}"
    )


def openblas_env_warning() -> str | None:
    bad = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if bad:
        return (f"warning: {', '.join(bad)} set; numpy's OpenBLAS is slowed by them here. Run with "
                "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`.")
    return None


def markdown_table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
