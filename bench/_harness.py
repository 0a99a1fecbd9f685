"""The one small harness every benchmark shares: warm-up, median of N, frameworks alternated
A B C A B C ... with their spread and the machine's load, machine facts."""

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


def spread(values) -> dict:
    """Median with min, max and the quartiles of a list of measurements."""
    v = sorted(values)
    if len(v) >= 2:
        q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    else:
        q1 = q3 = v[0]
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "q1": q1, "q3": q3,
            "n": len(v)}


def fmt_spread(s: dict, spec: str = ".3g", scale: float = 1.0) -> str:
    """'median (min-max, n=N)' of a spread() dict."""
    return (f"{format(s['median'] * scale, spec)} ({format(s['min'] * scale, spec)}-"
            f"{format(s['max'] * scale, spec)}, n={s['n']})")


def alternate(fns: dict, *, rounds: int, samples: int, warmup: int = 1, min_time: float = 0.0,
              pause: float = 0.0) -> dict:
    """Time several implementations in alternating blocks, A B C A B C ... for `rounds` rounds.
    Each block (after `pause` s, so the previous library's idle threads stop spinning) runs
    `warmup` untimed calls and `samples` timed ones (each looping for >= min_time). Returns, per
    name, the spread() of all its samples (seconds per call) plus 'loads': the 1-minute load
    average at the start of each of its blocks."""
    out = {name: {"samples": [], "loads": []} for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            if pause:
                time.sleep(pause)
            out[name]["loads"].append(load_1min())
            for _ in range(warmup):
                fn()
            out[name]["samples"] += [sample_time(fn, min_time) for _ in range(samples)]
    return {name: dict(spread(r["samples"]), loads=r["loads"]) for name, r in out.items()}


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
