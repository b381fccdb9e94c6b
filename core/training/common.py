"""What every trainer shares: a text progress bar, a manifest's provenance fields and the
command-line options every trainer takes."""
from __future__ import annotations

import argparse
import datetime as dt
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


def provenance(threads: int | None = None) -> dict:
    """The manifest fields saying how and when a weights file was made: torch version, threads,
    UTC date and the git commit (None outside a checkout)."""
    import torch

    out = {"torch_version": torch.__version__}
    if threads is not None:
        out["threads"] = threads
    out.update(date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), git_commit=git_commit())
    return out


def trainer_parser(description: str, name: str, weights_dir, epochs: int, threads: int) -> argparse.ArgumentParser:
    """A trainer's parser with the options they all take: --name, --out-dir, --epochs, --threads, --quiet."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--name", default=name, help=f"weights file stem (default: {name})")
    parser.add_argument("--out-dir", default=str(weights_dir), help="folder for the weights (default: weights/)")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--threads", type=int, default=threads)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser
