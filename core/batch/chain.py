"""Repair one chain of a batch, on a worker: the same steps as ``python -m core.cli repair``.

``run_chain(chain, options, root)`` reads the chain (``read_quotes``: the file, or the dataset
chain's rows as Parquet bytes), applies ``--strict`` like the CLI, repairs with
``core.quotes.workflow.repair_quotes``, writes the tables with ``core.quotes.export.write_outputs`` into a
staging folder and commits them (core.batch.layout). With ``chain`` (``repair --chain``) the
chain workflow (core.chain.workflow.repair_chain) repairs it instead and its tables are committed. It never raises: it returns the chain's
summary row (without the keys):

- status "ok": the counts of the validation report, ``fit_rmse_iv`` (RMSE of quote - repaired over
  the used quotes, vol units), ``params_rmse_iv_max`` (worst per-expiry SVI fit RMSE, vol units),
  ``calendar_rate`` and ``butterfly_rate`` (violation rates of the repaired grid,
  core.engine.arbitrage.arbitrage_report) and ``arbitrage_ok`` (both zero);
- status "arbitrage" (``--chain`` only): repaired and written, but the dense check found a
  violation (``repair --chain`` exits 3 on it); ``reason`` gives the counts; recorded as done;
- status "failed": bad input or weights (a ValueError or WeightsError, as ``repair`` exits 2 on),
  ``reason`` is the one-line message ``repair`` prints; recorded as done, a rerun skips it;
- status "error": anything else (``reason`` names the type); not recorded as done, so a rerun
  tries again.
``seconds`` is the chain's wall time on the worker; ``worker`` the worker that ran it.
"""
from __future__ import annotations

import io
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from core.batch.inputs import Chain, read_chain_rows
from core.batch.layout import CHAIN_TABLES, TABLES, check_staging, commit, staging_dir

_COUNTS = ("n_rows", "n_used", "n_outside", "n_skipped", "n_dropped", "n_expiries", "grid_nodes_quoted", "n_flagged")
_FLOATS = ("fit_rmse_iv", "params_rmse_iv_max", "calendar_rate", "butterfly_rate")
ROW_COLUMNS = ("status", "reason", *_COUNTS, *_FLOATS, "arbitrage_ok", "seconds", "method", "source", "worker")
# One schema for every chain's row, so the partitioned summary reads as one table (a failed chain's
# empty counts are nulls of the same types, not columns of type null).
ROW_TYPES = {**{c: pa.string() for c in ("status", "reason", "method", "source", "worker")},
             **{c: pa.int64() for c in _COUNTS}, **{c: pa.float64() for c in _FLOATS},
             "arbitrage_ok": pa.bool_(), "seconds": pa.float64()}
ROW_SCHEMA = pa.schema([(c, ROW_TYPES[c]) for c in ROW_COLUMNS])


@dataclass(frozen=True)
class Options:
    """The ``repair`` options a batch applies to every chain (see ``python -m core.cli repair -h``)."""

    method: str
    arbitrage: str | None = None
    stale: bool = True
    valuation_date: str | None = None
    weights: str | None = None
    strict: bool = False
    chain: bool = False          # repair --chain: the chain's own domain, a chain method

    def as_dict(self) -> dict:
        """JSON-ready, as recorded in each chain's completion marker."""
        return dict(asdict(self))

    @property
    def config(self) -> dict:
        return {"weights": self.weights} if self.weights else {}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _read(chain: Chain, options: Options):
    from core.quotes.read import read_quotes, refuse_dropped_rows

    if chain.kind == "file":
        quotes = read_quotes(chain.source, valuation_date=options.valuation_date)
    else:   # the chain's rows as the Parquet file a user would have passed to `repair`
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(read_chain_rows(chain), buf)
        quotes = read_quotes(buf.getvalue(), name=f"{chain.label}.parquet", valuation_date=options.valuation_date)
    if options.strict:      # as core.cli
        refuse_dropped_rows(quotes)
    return quotes


def _ok_row(result) -> dict:
    from core.engine.arbitrage import arbitrage_report
    from core.engine.grid import iv_to_w
    from core.quotes.export import report_dict

    info = report_dict(result)["report"]
    qt = result.quote_table
    residual = qt.loc[qt["status"] == "used", "residual"].to_numpy(dtype=np.float64)
    arb = arbitrage_report(iv_to_w(result.result.iv))
    return {"status": "ok", "reason": None, **{k: int(info[k]) for k in ("n_rows", "n_used", "n_outside",
                                                                          "n_skipped", "n_dropped", "n_expiries")},
            "grid_nodes_quoted": int(result.gridded.observed.sum()), "n_flagged": int(result.n_flagged),
            "fit_rmse_iv": float(np.sqrt(np.nanmean(residual**2))) if residual.size else float("nan"),
            "params_rmse_iv_max": float(result.svi_table["rmse_iv"].max()),
            "calendar_rate": float(arb["calendar_rate"]), "butterfly_rate": float(arb["g_negative_rate"]),
            "arbitrage_ok": bool(arb["calendar_rate"] == 0 and arb["g_negative_rate"] == 0)}


def _ok_chain_row(result) -> dict:
    """The summary row of a ``--chain`` repair: the same columns, from the chain workflow's outputs
    (arbitrage figures from its dense check; no grid, so no grid nodes; no SVI table of the grid)."""
    report = result.quotes.report
    qt = result.quote_table
    used = (qt["status"] == "used").to_numpy()
    residual = (qt["iv_repaired"] - pd.to_numeric(qt["iv"], errors="coerce")).to_numpy(np.float64)[used]
    residual = residual[np.isfinite(residual)]
    dense = result.dense
    points = max(int(dense.n_points), 1)
    # the surface is arbitrage-free by construction; a chain whose outputs still fail the dense
    # check is not "ok" (its tables are written for inspection, as `repair --chain` does)
    status, reason = ("ok", None) if dense.ok else ("arbitrage", dense.failure())
    return {"status": status, "reason": reason, "n_rows": int(report.n_rows), "n_used": int(report.n_used),
            "n_outside": int(report.n_outside), "n_skipped": int(report.n_skipped),
            "n_dropped": int(report.n_dropped), "n_expiries": int(report.n_expiries), "grid_nodes_quoted": None,
            "n_flagged": int(qt["stale_flag"].sum()) if "stale_flag" in qt.columns else 0,
            "fit_rmse_iv": float(np.sqrt(np.mean(residual**2))) if residual.size else float("nan"),
            "params_rmse_iv_max": float("nan"),
            "calendar_rate": dense.n_calendar / points, "butterfly_rate": dense.n_butterfly / points,
            "arbitrage_ok": bool(dense.ok)}


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def repair_chain(chain: Chain, options: Options, staging: Path) -> dict:
    """Read, repair and write one chain's tables into ``staging`` (raises like ``repair``); returns
    its summary row."""
    from core.quotes.export import write_files, write_outputs
    from core.quotes.workflow import repair_quotes

    quotes = _read(chain, options)
    if options.chain:
        from core.chain.workflow import chain_files, repair_chain as repair_on_domain

        result = repair_on_domain(quotes, method=options.method, stale=options.stale)
        write_files(staging, chain_files(result, "parquet"))
        return _ok_chain_row(result)
    result = repair_quotes(quotes, method=options.method, stale=options.stale, arbitrage=options.arbitrage,
                           **options.config)
    write_outputs(result, staging, "parquet")
    return _ok_row(result)


def run_chain(chain: Chain, options: Options, root: str) -> dict:
    """Repair one chain into the batch output ``root``; returns its summary row (never raises)."""
    from core.repairers.weights import WeightsError

    start = time.perf_counter()
    row = dict.fromkeys(ROW_COLUMNS)
    staging = None
    try:
        staging = staging_dir(Path(root))
        try:
            row.update(repair_chain(chain, options, staging))
        except (ValueError, WeightsError) as exc:
            # a newer run cleared root/_tmp under this (interrupted, orphaned) task: its write
            # error is not the chain's fault, so an "error" (not recorded), never a "failed"
            # marker that a rerun would trust
            check_staging(staging)
            shutil.rmtree(staging, ignore_errors=True)
            staging = staging_dir(Path(root))     # empty: a failed chain commits no table
            row.update(status="failed", reason=_one_line(exc))
        row.update(seconds=time.perf_counter() - start, method=options.method, source=chain.label,
                   worker=_worker_name())
        commit(Path(root), chain.keys, staging, row, ROW_SCHEMA, options.as_dict(),
               CHAIN_TABLES if options.chain else TABLES)
    except Exception as exc:  # disk full, a bug: report it, leave the chain undone for a rerun
        row.update(status="error", reason=f"unexpected {type(exc).__name__}: {_one_line(exc)}",
                   seconds=time.perf_counter() - start, method=options.method, source=chain.label,
                   worker=_worker_name())
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return row
