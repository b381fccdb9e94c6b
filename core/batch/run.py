"""``repair_dataset``: repair every chain of a dataset on Dask, resumably; returns the summary."""
from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import pyarrow as pa

from core.batch.chain import ROW_COLUMNS, ROW_TYPES, Options, run_chain
from core.batch.cluster import ALLOWED_FAILURES, dashboard_link, open_client, register_warm_weights
from core.batch.inputs import discover
from core.batch.layout import clear_staging, completed_row, write_summary
from core.batch.progress import Progress


def _options(method, arbitrage, stale, valuation_date, weights, strict, chain=False) -> Options:
    from core.repairers.registry import METHODS, get_repairer, repairer_class

    if chain:   # as `repair --chain`: a chain method, no grid projection, the shipped weights
        from core.chain.methods import CHAIN_METHODS

        if method not in CHAIN_METHODS:
            raise ValueError(f"unknown chain method {method!r}; choose one of {', '.join(CHAIN_METHODS)}")
        for flag, value in (("--arbitrage", arbitrage), ("--weights", weights)):
            if value:
                raise ValueError(f"{flag} does not apply with --chain")
        return Options(method=method, stale=stale, valuation_date=valuation_date, strict=strict, chain=True)
    if method not in METHODS:
        from core.chain.methods import CHAIN_METHODS

        if method in CHAIN_METHODS:
            raise ValueError(f"method {method} works on the chain's own domain: add --chain")
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if arbitrage not in (None, "calendar", "full", "none"):
        raise ValueError(f"unknown arbitrage mode {arbitrage!r}; choose calendar, full or none")
    if weights and not repairer_class(method).needs_weights:
        raise ValueError(f"--weights applies to methods with weights files, not {method}")
    options = Options(method=method, arbitrage=arbitrage, stale=stale, valuation_date=valuation_date,
                      weights=str(Path(weights).resolve()) if weights else None, strict=strict)
    if repairer_class(method).needs_weights:   # fail once, here, rather than once per chain
        path = Path(get_repairer(method, **options.config).weights)
        if not path.is_file():
            raise ValueError(f"weights file not found: {path} (the {method} method cannot run)")
    return options


def _lost_row(chain, options: Options, exc: BaseException) -> dict:
    """Summary row of a chain whose task never returned (its worker died ALLOWED_FAILURES + 1 times)."""
    row = dict.fromkeys(ROW_COLUMNS)
    detail = " ".join(str(exc).split())[:300]
    row.update(status="error", method=options.method, source=chain.label,
               reason=f"{type(exc).__name__}: the chain's worker died or failed (at most {ALLOWED_FAILURES + 1} "
                      f"tries; over the memory limit?): {detail}")
    return row


def _run(client, todo: list, options: Options, root: Path, progress: bool, on_result) -> dict:
    """Submit ``todo`` [(index, chain)], collect {index: row} as chains finish."""
    from distributed import as_completed

    register_warm_weights(client, options.method, options.config)   # returns once current workers loaded
    bar = Progress(len(todo), enabled=progress)                       # so the rate leaves out start-up
    futures = {client.submit(run_chain, chain, options, str(root), pure=False): (i, chain) for i, chain in todo}
    rows, failed = {}, 0
    try:
        for future in as_completed(futures):
            i, chain = futures[future]
            try:
                row = future.result()
            except Exception as exc:   # KilledWorker after too many deaths, a worker-side import error
                row = _lost_row(chain, options, exc)
            rows[i] = row
            failed += row["status"] != "ok"
            bar.update(len(rows), failed)
            if on_result is not None:
                on_result(len(rows), len(todo), row)
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        bar.close()
    return rows


def repair_dataset(source, out, method: str | None = None, *, partition_keys=None, workers: int | None = None,
                   scheduler: str | None = None, memory_limit="auto", arbitrage: str | None = None,
                   stale: bool = True, valuation_date=None, weights=None, strict: bool = False, chain: bool = False,
                   client=None, progress: bool = True, on_result=None, processes: bool = True) -> pd.DataFrame:
    """Repair every chain of ``source`` into the Parquet dataset ``out``; returns the summary.

    source: a folder or glob of quote files, or (with ``partition_keys``, a list of names) a Parquet
    dataset with one chain per key combination (core.batch.inputs). Each chain goes through the
    same steps as ``python -m core.cli repair`` with ``method``, ``arbitrage``, ``stale``,
    ``valuation_date``, ``weights`` and ``strict`` (core.batch.chain); with ``chain``, the steps of
    ``repair --chain`` (a chain method, default DEFAULT_CHAIN_METHOD; no ``arbitrage`` or ``weights``). Chains already complete in
    ``out`` with the same options are skipped (``resumed`` True in the summary). Runs on ``client`` if given, else on a
    Client to ``scheduler``, else on a LocalCluster of ``workers`` processes (``processes=False``:
    threads in this process) with ``memory_limit`` each. ``progress`` draws the bar on stderr;
    ``on_result(done, total, row)`` is called after each chain.

    Returns one row per chain in input order: the key columns, then status (ok / arbitrage / failed / error),
    reason, counts, fit and arbitrage figures, seconds, method, source, worker, resumed; also
    written to ``out/summary.parquet``. Bad options or input raise ValueError (one line).
    """
    from core.chain.methods import DEFAULT_CHAIN_METHOD
    from core.quotes.workflow import DEFAULT_METHOD

    default = DEFAULT_CHAIN_METHOD if chain else DEFAULT_METHOD
    options = _options(method or default, arbitrage, stale, valuation_date, weights, strict, chain)
    chains = discover(source, partition_keys)
    clash = sorted(set(chains[0].keys) & set(ROW_COLUMNS + ("resumed",)))
    if clash:
        raise ValueError(f"partition key(s) {', '.join(clash)} clash with summary columns; rename them")
    root = Path(out).resolve()     # workers may run elsewhere: absolute paths
    if root.exists() and not root.is_dir():
        raise ValueError(f"output path {root} exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    clear_staging(root)
    done = {i: completed_row(root, c.keys, options.as_dict()) for i, c in enumerate(chains)}
    todo = [(i, c) for i, c in enumerate(chains) if done[i] is None]
    rows = {}
    if todo:
        if progress and len(todo) < len(chains):
            sys.stderr.write(f"resuming: {len(chains) - len(todo)} of {len(chains)} chains already done\n")
        if progress and client is None and scheduler and memory_limit not in (None, "auto"):
            sys.stderr.write("note: --memory-limit applies to a local cluster; the scheduler's workers keep theirs\n")
        context = nullcontext(client) if client is not None else open_client(scheduler, workers, memory_limit, processes)
        with context as active:
            link = dashboard_link(active, local=client is None and not scheduler)
            if progress and link:
                sys.stderr.write(f"dashboard: {link}\n")
            rows = _run(active, todo, options, root, progress, on_result)
        clear_staging(root)
    records = []
    for i, chain in enumerate(chains):
        row = rows.get(i) if done[i] is None else done[i]
        records.append({**chain.keys, **{c: row.get(c) for c in ROW_COLUMNS}, "resumed": done[i] is not None})
    summary = pd.DataFrame.from_records(records)
    for column, kind in ROW_TYPES.items():   # nullable types: a failed chain's counts stay integers
        if pa.types.is_integer(kind):
            summary[column] = summary[column].astype("Int64")
        elif pa.types.is_boolean(kind):
            summary[column] = summary[column].astype("boolean")
        elif pa.types.is_floating(kind):
            summary[column] = summary[column].astype("float64")
    write_summary(root, summary)
    return summary
