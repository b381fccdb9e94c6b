"""Write a quote repair's tables: the grid, the per-quote table, the SVI parameters, the report.

Files in ``out_dir`` (``fmt`` "csv", "parquet" or "both"):

- ``grid.{csv,parquet}``    221 rows: T, k, iv, sd, method, observed, iv_quoted, n_quotes, iv_raw
- ``quotes.{csv,parquet}``  one row per input row: status, reason, T, k, iv (the quote), iv_repaired,
                            sd_repaired, residual (quote - repaired, vol), stale_score, stale_flag, ...
- ``svi_params.{csv,parquet}`` per slice T: a, b, rho, m, sigma, rmse_iv, method
- ``report.json``           the validation report, the method, the stale threshold and counts
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

FORMATS = ("csv", "parquet", "both")


def _frames(result) -> dict:
    return {"grid": result.grid_table, "quotes": result.quote_table, "svi_params": result.svi_table}


def report_dict(result) -> dict:
    """The run's summary as JSON-ready data."""
    return {"method": result.method, "report": result.report.to_dict(),
            "grid_nodes_quoted": int(result.gridded.observed.sum()),
            "stale": {"threshold": result.stale_threshold, "calibrated": result.stale_calibrated,
                      "basis": result.stale_basis, "n_flagged": result.n_flagged},
            "summary": result.summary_lines()}


def table_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """One table as CSV or Parquet bytes (for download buttons)."""
    if fmt == "csv":
        return frame.to_csv(index=False).encode("utf-8")
    if fmt == "parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    raise ValueError(f"unknown table format {fmt!r}; choose csv or parquet")


def write_outputs(result, out_dir, fmt: str = "both") -> list:
    """Write every table of ``result`` (a QuoteRepair) into ``out_dir``; returns the paths written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    kinds = ("csv", "parquet") if fmt == "both" else (fmt,)
    written = []
    for name, frame in _frames(result).items():
        for kind in kinds:
            path = out / f"{name}.{kind}"
            path.write_bytes(table_bytes(frame, kind))
            written.append(path)
    path = out / "report.json"
    path.write_text(json.dumps(report_dict(result), indent=2) + "\n")
    written.append(path)
    return written


def download_files(result) -> list:
    """[(file name, bytes, MIME type)] of every table in CSV and Parquet, and the report JSON."""
    out = []
    for name, frame in _frames(result).items():
        out.append((f"{name}.csv", table_bytes(frame, "csv"), "text/csv"))
        out.append((f"{name}.parquet", table_bytes(frame, "parquet"), "application/octet-stream"))
    out.append(("report.json", (json.dumps(report_dict(result), indent=2) + "\n").encode(), "application/json"))
    return out
