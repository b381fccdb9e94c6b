"""Write a quote repair's tables: the grid, the per-quote table, the SVI parameters, the report.

Files in ``out_dir`` (``fmt`` "csv", "parquet" or "both"):

- ``grid.{csv,parquet}``    221 rows: T, k, iv, sd, method, observed, iv_quoted, n_quotes, iv_raw,
                            extrapolated (outside the quoted region: a model's guess)
- ``quotes.{csv,parquet}``  one row per input row: status, reason, T, k, iv (the quote), iv_repaired,
                            sd_repaired, residual (quote - repaired, vol), stale_score, stale_flag, ...
- ``svi_params.{csv,parquet}`` per slice T: a, b, rho, m, sigma, rmse_iv, method
- ``report.json``           the validation report, the method, the stale threshold and counts
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
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


_CSV_SPECIAL = (",", '"', "\n", "\r")   # a text value holding one of these needs quotes in CSV


def _pandas_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def _arrow_column(col: pd.Series):
    """One column as an Arrow array that writes unquoted as pandas writes it, or None where it
    cannot (a nullable boolean, a column of mixed or non-text objects, text that needs quotes)."""
    import pyarrow as pa

    if col.dtype == np.bool_:
        return pa.array(np.where(col.to_numpy(), "True", "False"))
    if pd.api.types.is_bool_dtype(col.dtype) or not (pd.api.types.is_numeric_dtype(col.dtype)
                                                     or pd.api.types.is_string_dtype(col.dtype)):
        return None
    try:
        arr = pa.array(col, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        text = col.dropna().astype(str)
        return None if any(text.str.contains(c, regex=False).any() for c in _CSV_SPECIAL) else arr
    return arr if (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)) else None


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The table as CSV, by Arrow's writer where it can: ten times faster than pandas' on a
    6,500-quote chain's tables (0.03 s against 0.3-0.4 s, a sixth of the chain repair's end-to-end
    time, measured). The text is pandas' own (header and text unquoted, True / False, empty for a
    missing value, the same float values), except that Arrow spells floats its own way: a whole
    number without ".0" (a column of them reads back as integers), a small one in fixed point
    (0.0000129 for 1.29e-05). pandas writes whatever Arrow cannot write that way (``_arrow_column``),
    a table of one column (pandas writes its missing value as "", where a blank line would be
    skipped by readers) and a table with no rows or repeated column names."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    names = [str(c) for c in frame.columns]
    if (frame.shape[1] < 2 or frame.shape[0] == 0 or len(set(names)) != len(names)
            or any(c in n for n in names for c in _CSV_SPECIAL)):
        return _pandas_csv(frame)
    arrays = [_arrow_column(frame.iloc[:, j]) for j in range(frame.shape[1])]
    if any(a is None for a in arrays):
        return _pandas_csv(frame)
    buf = io.BytesIO()
    buf.write((",".join(names) + "\n").encode("utf-8"))
    try:
        pa_csv.write_csv(pa.table(arrays, names=names), buf,
                         pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    except (pa.ArrowException, TypeError, ValueError):
        return _pandas_csv(frame)
    return buf.getvalue()


def table_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """One table as CSV or Parquet bytes (for download buttons)."""
    if fmt == "csv":
        return csv_bytes(frame)
    if fmt == "parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    raise ValueError(f"unknown table format {fmt!r}; choose csv or parquet")


NAME_MAX = 255   # bytes per path component on the file systems we write to (ext4, APFS, NTFS)


def check_out_dir(out_dir, create: bool = True) -> Path:
    """The output directory as a Path; ValueError with a one-line reason when it is empty, names a
    file, has a component too long, or cannot be created or written. ``create=False`` only checks
    (the CLI checks before the work, and creates nothing for a run that fails)."""
    if out_dir is None or not str(out_dir).strip():
        raise ValueError("output directory is empty; name one (e.g. --out out/)")
    out = Path(out_dir)
    long = [part for part in out.parts if len(os.fsencode(part)) > NAME_MAX]
    if long:
        raise ValueError(f"output directory name is too long ({len(os.fsencode(long[0]))} bytes; at most {NAME_MAX})")
    try:
        if out.exists() and not out.is_dir():
            raise ValueError(f"output path {out} exists and is not a directory")
        existing = next(p for p in (out, *out.absolute().parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"output directory {out} is not writable ({existing} does not allow writing)")
        if create:
            out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    return out


def _write_temp(directory: Path, name: str, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``name`` in ``directory``, flushed to disk."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_files(out_dir, files: dict) -> list:
    """Write {file name: bytes} into ``out_dir`` atomically; returns the paths written.

    Every file goes to a temporary name first and is renamed over its target only once all of
    them are on disk, so a failed write (full disk, permissions) leaves every previous output as
    it was and no partial file. A target that is a symlink (or not a regular file) is refused:
    following it would overwrite whatever it points to.
    """
    out = check_out_dir(out_dir)
    for name in files:
        target = out / name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise ValueError(f"refusing to write {target}: it is a symlink or not a regular file")
    temps = {}
    try:
        for name, data in files.items():
            temps[name] = _write_temp(out, name, data)
        written = []
        for name, tmp in temps.items():
            os.replace(tmp, out / name)
            written.append(out / name)
        return written
    except OSError as exc:
        raise ValueError(f"cannot write to {out}: {exc.strerror or exc}; previous outputs are unchanged") from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def earlier_outputs(written: list) -> list:
    """Files beside ``written`` (paths just written) with one of their names in the other table
    format, left from an earlier run: a --format csv run into a folder holding a --format both
    run's quotes.parquet left it there, 60 rows beside the new 9."""
    if not written:
        return []
    names = {p.name for p in written}
    stems = {p.stem for p in written if p.suffix in (".csv", ".parquet")}
    folder = written[0].parent
    return sorted(folder / f"{stem}{ext}" for stem in stems for ext in (".csv", ".parquet")
                  if f"{stem}{ext}" not in names and (folder / f"{stem}{ext}").is_file())


def table_files(frames: dict, fmt: str) -> dict:
    """{"<name>.<csv|parquet>": bytes} for each {name: DataFrame}, in ``fmt`` ("csv", "parquet" or "both")."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    kinds = ("csv", "parquet") if fmt == "both" else (fmt,)
    return {f"{name}.{kind}": table_bytes(frame, kind) for name, frame in frames.items() for kind in kinds}


def write_outputs(result, out_dir, fmt: str = "both") -> list:
    """Write every table of ``result`` (a QuoteRepair) into ``out_dir``; returns the paths written
    (atomically, symlinks refused: see write_files)."""
    files = table_files(_frames(result), fmt)
    files["report.json"] = (json.dumps(report_dict(result), indent=2) + "\n").encode("utf-8")
    return write_files(out_dir, files)


def download_files(result) -> list:
    """[(file name, bytes, MIME type)] of every table in CSV and Parquet, and the report JSON."""
    out = []
    for name, frame in _frames(result).items():
        out.append((f"{name}.csv", table_bytes(frame, "csv"), "text/csv"))
        out.append((f"{name}.parquet", table_bytes(frame, "parquet"), "application/octet-stream"))
    out.append(("report.json", (json.dumps(report_dict(result), indent=2) + "\n").encode(), "application/json"))
    return out
