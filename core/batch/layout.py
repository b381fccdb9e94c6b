"""Where a batch writes, and how one chain's outputs become complete in one step.

Under the output root DIR every table is a Hive-partitioned Parquet dataset keyed like the input
(``<key>=<value>`` folders, values URI-quoted, which ``pyarrow.dataset(..., partitioning="hive")``
decodes):

    DIR/quotes/<keys>/part-0.parquet    the per-quote table  (``repair``'s quotes.parquet)
    DIR/surface/<keys>/part-0.parquet   the repaired grid     (``repair``'s grid.parquet)
    DIR/params/<keys>/part-0.parquet    per-expiry SVI params (``repair``'s svi_params.parquet)
    DIR/report/<keys>/report.json       ``repair``'s report.json

With ``--chain`` (``repair --chain``'s tables, CHAIN_TABLES): quotes/ holds its quotes table,
surface/ its dense grid, params/ its per-expiry parameters, and report/<keys>/dense_check.json its
dense check and summary.
    DIR/summary/<keys>/part-0.parquet   the chain's summary row (failed chains too)
    DIR/summary.parquet                 every chain's summary row, written at the end of a run
    DIR/_done/<keys>/done.json          completion marker: written last, lists files and sizes
    DIR/_tmp/                           staging; readers skip names starting with "_"

A chain is complete only when its marker exists, every file it lists has the listed size, and it
was written with the run's repair options (another --method redoes every chain). Each
file reaches its place by ``os.replace`` from the staging folder (atomic on one filesystem), and the
marker is replaced in last, so a crash at any point leaves either no marker (the chain is redone)
or a complete chain. One run per DIR at a time: a run clears the staging folder when it starts.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# staging file written by core.quotes.export.write_outputs -> (table folder, file name in the partition)
TABLES = {"quotes.parquet": ("quotes", "part-0.parquet"), "grid.parquet": ("surface", "part-0.parquet"),
          "svi_params.parquet": ("params", "part-0.parquet"), "report.json": ("report", "report.json")}
# staging file written by core.chain.workflow.chain_files(..., "parquet") -> the same folders
CHAIN_TABLES = {"quotes.parquet": ("quotes", "part-0.parquet"), "grid.parquet": ("surface", "part-0.parquet"),
                "params.parquet": ("params", "part-0.parquet"), "dense_check.json": ("report", "dense_check.json")}
SUMMARY_DIR, DONE_DIR, TMP_DIR = "summary", "_done", "_tmp"
SUMMARY_FILE = "summary.parquet"
MARKER = "done.json"


def partition_path(keys: dict) -> Path:
    """Relative folder of one chain: ``k1=v1/k2=v2`` in key order, values URI-quoted."""
    return Path(*[f"{k}={quote(str(v), safe='')}" for k, v in keys.items()])


STAGING_TOKEN = ".owned"   # in a staging folder while the task that made it still owns it


def staging_dir(root: Path) -> Path:
    """A fresh staging folder under ``root/_tmp``, holding only its ownership token."""
    path = Path(root) / TMP_DIR / uuid.uuid4().hex
    path.mkdir(parents=True)
    (path / STAGING_TOKEN).touch()
    return path


def check_staging(staging: Path) -> None:
    """FileNotFoundError unless ``staging`` still holds its token. A newer run clears root/_tmp
    first, under any task an interrupted run left running, and writers recreate missing folders
    (``mkdir(parents=True)``), so the folder existing proves nothing: outputs staged in it may be
    partial, and a write error in it is not the chain's fault."""
    if not (Path(staging) / STAGING_TOKEN).is_file():
        raise FileNotFoundError(f"staging folder {staging} was cleared by another run")


def clear_staging(root: Path) -> None:
    """Remove what crashed runs left in ``root/_tmp`` (never read as output)."""
    shutil.rmtree(Path(root) / TMP_DIR, ignore_errors=True)


def _marker_path(root: Path, rel: Path) -> Path:
    return Path(root) / DONE_DIR / rel / MARKER


def completed_row(root: Path, keys: dict, options: dict | None = None) -> dict | None:
    """The stored summary row of a complete chain, or None when it must be (re)done: no marker, an
    unreadable marker, a listed file missing or of another size (half-written), or (when
    ``options`` is given) a marker written with other options."""
    root, rel = Path(root), partition_path(keys)
    try:
        marker = json.loads(_marker_path(root, rel).read_text())
        files = marker["files"]
        row = marker["row"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if options is not None and marker.get("options") != options:
        return None
    for name, size in files.items():
        path = root / name
        if not path.is_file() or path.stat().st_size != size:
            return None
    return row


def _replace_text(path: Path, text: str, staging: Path) -> None:
    tmp = staging / f".{path.name}.{uuid.uuid4().hex}"
    tmp.write_text(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, path)


def commit(root: Path, keys: dict, staging: Path, row: dict, schema, options: dict | None = None,
           tables: dict = TABLES) -> None:
    """Move a chain's staged outputs into place, then write its summary part and marker last.

    ``staging`` holds what ``write_outputs(..., "parquet")`` wrote (``tables`` TABLES) or what
    ``chain_files(..., "parquet")`` gave (CHAIN_TABLES), nothing for a failed chain;
    ``row`` is the chain's summary row without the keys, ``schema`` its pyarrow schema, ``options``
    the repair options (JSON-ready) recorded in the marker. A failed chain's old table files are
    removed so the tables never hold outputs that its summary row does not describe.
    """
    root, rel = Path(root), partition_path(keys)
    check_staging(staging)
    _marker_path(root, rel).unlink(missing_ok=True)      # first: no old marker may vouch for new files
    files = {}
    written = set()
    for staged, (table, name) in tables.items():
        dest, src = root / table / rel / name, staging / staged
        if src.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
            files[str(Path(table) / rel / name)] = dest.stat().st_size
            written.add(dest)
    for table, name in (*TABLES.values(), *CHAIN_TABLES.values()):   # either mode's: a mode switch leaves none stale
        if root / table / rel / name not in written:
            (root / table / rel / name).unlink(missing_ok=True)
    summary = root / SUMMARY_DIR / rel / "part-0.parquet"
    tmp = staging / f".summary.{uuid.uuid4().hex}.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema=schema), tmp)
    summary.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, summary)
    files[str(Path(SUMMARY_DIR) / rel / "part-0.parquet")] = summary.stat().st_size
    marker = json.dumps({"files": files, "row": row, "options": options}, default=str)
    _replace_text(_marker_path(root, rel), marker, staging)


def write_summary(root: Path, summary: pd.DataFrame) -> Path:
    """Write the run's summary table to ``root/summary.parquet`` atomically; returns the path."""
    root = Path(root)
    path = root / SUMMARY_FILE
    tmp = root / f".{SUMMARY_FILE}.{uuid.uuid4().hex}"
    summary.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path
