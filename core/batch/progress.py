"""A progress line on stderr: chains done of total, rate (chains/s), time left, failures.

On a terminal the line redraws in place; into a file or pipe it prints a line at most every
``LOG_EVERY_S`` seconds (and at the end), so logs of long runs stay short.
"""
from __future__ import annotations

import sys
import time

LOG_EVERY_S = 10.0
_BAR = 24


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """``update(done, failed)`` after each chain; ``close()`` at the end. total: chains to run."""

    def __init__(self, total: int, stream=None, enabled: bool = True):
        self.total, self.enabled = total, enabled and total > 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self._last = -LOG_EVERY_S
        self.done = self.failed = 0

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        filled = int(_BAR * self.done / self.total) if self.total else _BAR
        eta = _clock(left) if left == left else "?"
        failed = f" | {self.failed} failed" if self.failed else ""
        return (f"[{'#' * filled}{'.' * (_BAR - filled)}] {self.done}/{self.total} chains | "
                f"{rate:.2f} chains/s | {_clock(elapsed)} elapsed, {eta} left{failed}")

    def update(self, done: int, failed: int = 0) -> None:
        self.done, self.failed = done, failed
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty:
            self.stream.write("\r" + self.line())
        elif now - self._last >= LOG_EVERY_S or done == self.total:
            self.stream.write(self.line() + "\n")
            self._last = now
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
