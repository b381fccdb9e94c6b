"""What every trainer shares: a text progress bar and the commit a weights file was made at."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


class Progress:
    """A one-line text progress bar on stderr (no dependency for a bar)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.start = total, enabled, time.time()

    def update(self, done: int, text: str) -> None:
        if not self.enabled:
            return
        filled = int(30 * done / self.total)
        elapsed = time.time() - self.start
        eta = elapsed / max(done, 1) * (self.total - done)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} {text} "
                         f"{elapsed:5.1f}s eta {eta:4.0f}s")
        sys.stderr.flush()
        if done == self.total:
            sys.stderr.write("\n")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
