"""The Dask side of a batch: a local cluster or an existing scheduler, and weights loaded once.

``open_client(...)`` yields a ``distributed.Client``: to ``scheduler`` (an address such as
``tcp://host:8786``) when given, else to a new ``LocalCluster`` of ``workers`` single-threaded
worker processes with ``memory_limit`` each (Dask's nanny restarts a worker that exceeds it or
dies; the scheduler retries the chains it was running, up to ``ALLOWED_FAILURES`` deaths per
chain, then reports it as failed). ``WarmWeights`` applies core.settings' thread policy and
loads a learned method's weights when a worker starts (and restarts); the loaders are
``functools.lru_cache``d per process in core.repairers, so each worker process loads them once,
however many chains it runs.
"""
from __future__ import annotations

import importlib.util
import logging
from contextlib import contextmanager

from distributed.diagnostics.plugin import WorkerPlugin

# Worker deaths a chain may see before the scheduler gives up on it. A chain that kills its worker
# every time (e.g. over the memory limit) is tried this many times; a one-off death costs one retry.
# Workers log at CRITICAL only: at shutdown they print tracebacks of closed connections, and the
# CLI prints no tracebacks; memory-limit restarts still reach the summary as failed chains.
ALLOWED_FAILURES = 3
CONNECT_TIMEOUT_S = 30


def default_workers() -> int:
    """The cores this process may use."""
    from core.settings import usable_cores

    return usable_cores()


def warm_weights(method: str, config: dict) -> None:
    """Load ``method``'s weights into this process's cache (nothing for a method without weights)."""
    from core.repairers.registry import get_repairer

    repairer = get_repairer(method, **config)
    for name in ("model", "prior", "calibrator"):       # the cached-loader properties of core.repairers
        if isinstance(getattr(type(repairer), name, None), property):
            getattr(repairer, name)


def weight_loads_by_model() -> dict:
    """{model: weights files this process has loaded} (cache misses of core.repairers' loaders)."""
    from core.repairers.best import _cached_best
    from core.repairers.cnn import _cached_cnn
    from core.repairers.vae import _cached_vae

    loaders = {"cnn": _cached_cnn, "best": _cached_best, "vae": _cached_vae}
    return {name: f.cache_info().misses for name, f in loaders.items()}


class WarmWeights(WorkerPlugin):
    """Loads the batch method's weights as each worker starts, so no chain pays for it."""

    name = "core-batch-warm-weights"

    def __init__(self, method: str, config: dict):
        self.method, self.config = method, dict(config)

    def setup(self, worker):
        from core.settings import apply_thread_policy

        apply_thread_policy()    # one BLAS/torch thread per worker process: workers are the parallelism
        try:
            import core.batch.chain, core.quotes.export, core.quotes.workflow  # noqa: F401,E401 (imports off the clock)

            warm_weights(self.method, self.config)
        except Exception:   # a bad weights file: every chain then fails with repair's own message
            pass


def register_warm_weights(client, method: str, config: dict) -> None:
    """Install the weights plugin on every current and future worker of ``client``."""
    client.register_plugin(WarmWeights(method, config))


def parse_memory_limit(value) -> str | int:
    """``auto``, a byte count, or a size such as ``2GiB``; ValueError naming the value otherwise."""
    from dask.utils import parse_bytes

    if value in (None, "auto"):
        return "auto"
    try:
        size = parse_bytes(value)
    except (ValueError, TypeError):
        raise ValueError(f"--memory-limit {value!r} is not a size (examples: 2GiB, 1500MB, auto)") from None
    if size < 2**26:
        raise ValueError(f"--memory-limit {value!r} is below 64 MiB, too small for a worker")
    return size


def dashboard_link(client, local: bool) -> str | None:
    """The dashboard URL, or None where there is none: the scheduler's HTTP server always runs, but
    the dashboard pages need bokeh, which we can check only for a local cluster."""
    if local and importlib.util.find_spec("bokeh") is None:
        return None
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:
        return None
    return client.dashboard_link if "dashboard" in services else None


@contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None, memory_limit="auto",
                processes: bool = True):
    """A Client to ``scheduler``, or to a LocalCluster of ``workers`` (default: every core)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {' '.join(str(exc).split())}") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or default_workers()
    if n < 1:
        raise ValueError(f"--workers must be at least 1, got {n}")
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                               memory_limit=parse_memory_limit(memory_limit), dashboard_address=":0",
                               silence_logs=logging.CRITICAL)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
