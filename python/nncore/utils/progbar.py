"""Keras-style progress output for fit / evaluate.

verbose=1: one self-overwriting bar line per epoch on a terminal; when stdout is not a
terminal, only the final line (no bar flood in logs). verbose=2: one line per epoch.
verbose=0: nothing.
"""

from __future__ import annotations

import sys
import time


def _fmt_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(round(seconds))}s"


def _fmt_per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def _fmt_value(v) -> str:
    v = float(v)
    return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"


class Progbar:
    """Progress for `target` steps. update(step, values) with the running metric values."""

    def __init__(self, target: int, verbose: int = 1, width: int = 20, stream=None,
                 interval: float = 0.05):
        self.target = int(target)
        self.verbose = verbose
        self.width = width
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        isatty = getattr(self.stream, "isatty", None)
        self.dynamic = bool(isatty and isatty())
        self.start = time.perf_counter()
        self._last = 0.0
        self._prev_len = 0

    def _line(self, step: int, values: dict, final: bool) -> str:
        elapsed = time.perf_counter() - self.start
        digits = len(str(self.target))
        head = f"{step:>{digits}}/{self.target}"
        per_step = elapsed / max(step, 1)
        parts = []
        if self.verbose == 1:
            filled = int(self.width * step / max(self.target, 1))
            bar = "\u2501" * filled + " " * (self.width - filled) if self.dynamic else ""
            if not self.dynamic:
                bar = "\u2501" * self.width
            timing = _fmt_time(elapsed if final else per_step * (self.target - step))
            parts.append(f"{head} {bar} {timing} {_fmt_per_step(per_step)}")
        else:
            parts.append(f"{head} - {_fmt_time(elapsed)} - {_fmt_per_step(per_step)}")
        parts += [f"{k}: {_fmt_value(v)}" for k, v in sorted(values.items())]
        return " - ".join(parts)

    def update(self, step: int, values: dict | None = None, finalize: bool = False) -> None:
        if self.verbose == 0:
            return
        values = values or {}
        if finalize:
            line = self._line(step, values, True)
            if self.verbose == 1 and self.dynamic:
                self.stream.write("\r" + line + " " * max(0, self._prev_len - len(line)) + "\n")
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
            return
        if self.verbose != 1 or not self.dynamic:
            return
        now = time.perf_counter()
        if now - self._last < self.interval:
            return
        self._last = now
        line = self._line(step, values, False)
        self.stream.write("\r" + line + " " * max(0, self._prev_len - len(line)))
        self._prev_len = len(line)
        self.stream.flush()
