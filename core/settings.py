"""Where things live, which environment variables the engine reads, and the thread policy.

Nothing here runs on import: entry points (the CLI, the benchmark, the app, the batch workers)
call ``apply_thread_policy()``; ``core.repair`` calls it once on first use.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = REPO_ROOT / "weights"
RESULTS_DIR = REPO_ROOT / "results"
SAMPLES_DIR = REPO_ROOT / "samples"

# Environment variables the app and the CLI read (paths of the weights and results they use).
CNN_WEIGHTS_ENV = "REPAIR_CNN_WEIGHTS"
BEST_WEIGHTS_ENV = "REPAIR_BEST_WEIGHTS"
RESULTS_ENV = "REPAIR_BENCHMARK_JSON"

# One thread per process: every matrix in the engine is tiny (13 x 17 grids, small chains), so
# threads only add hand-off cost, and several processes each spawning one thread per core
# oversubscribe the machine (measured on 2 cores: a threaded OpenBLAS made scipy's interpolation
# 10-50x slower under load; torch's intra-op threads cut best's throughput 8x across 2 processes).
THREADS = 1
_applied = False


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _env_threads() -> int:
    """The user's OMP_NUM_THREADS when it is a positive integer, else THREADS (a malformed value
    must not stop the CLI: torch and OpenMP would reject it too)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else THREADS


def apply_thread_policy(threads: int | None = None) -> None:
    """Cap OpenMP, BLAS and torch intra-op threads for this process (idempotent).

    ``threads`` None: the user's OMP_NUM_THREADS if set, else THREADS. torch is not imported here:
    when it loads later it reads OMP_NUM_THREADS; when it is already loaded it is set directly."""
    global _applied
    if threads is None:
        threads = _env_threads()
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS so the cap below reaches it too)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    _applied = True


def ensure_thread_policy() -> None:
    """Apply the default policy once, unless an entry point already chose one."""
    if not _applied:
        apply_thread_policy()
