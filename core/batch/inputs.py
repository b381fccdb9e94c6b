"""Find the chains of a batch input: quote files, or one Parquet dataset split by partition keys.

``discover(source, partition_keys)`` returns one ``Chain`` per chain, in a stable order:

- without ``partition_keys``: ``source`` is a folder (searched recursively) or a glob pattern of
  quote files (.csv, .tsv, .txt, .parquet, .pq; names starting with "." or "_" are skipped). Each
  file is one chain. When every file sits under Hive folders with the same key names
  (``underlying=SPX/quote_date=2025-03-14/chain.csv``) those are the keys, else the one key
  ``chain`` holds the file's path relative to the folder.
- with ``partition_keys``: ``source`` is a Parquet dataset (Hive folders and/or columns) holding
  one chain per combination of the keys; a chain's rows are read on the worker
  (``read_chain_rows``) from the files that hold that combination.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

QUOTE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
_MAGIC = set("*?[")


@dataclass(frozen=True)
class Chain:
    """One chain of a batch. keys: partition key -> value (unique per chain). kind: "file" (source
    is the quote file) or "dataset" (source is the dataset root, files the Parquet files to read)."""

    keys: dict
    source: str
    kind: str = "file"
    files: tuple = field(default=())

    @property
    def label(self) -> str:
        """A short name for messages: the file name, or k=v pairs of a dataset chain."""
        if self.kind == "file":
            return Path(self.source).name
        return ",".join(f"{k}={v}" for k, v in self.keys.items())


def _hidden(rel: Path) -> bool:
    return any(part.startswith((".", "_")) for part in rel.parts)


def _quote_files(source: str) -> tuple:
    """(base folder, sorted quote files) of a folder or a glob pattern."""
    if _MAGIC & set(source):
        files = [Path(p) for p in glob.glob(source, recursive=True)]
        parts = Path(source).parts
        fixed = next(i for i, part in enumerate(parts) if _MAGIC & set(part))
        base = Path(*parts[:fixed]) if fixed else Path(".")   # the pattern's folder before any wildcard
    else:
        base = Path(source)
        if not base.exists():
            raise ValueError(f"batch input not found: {source}")
        if not base.is_dir():
            raise ValueError(f"batch input {source} is a file; give a folder or glob of quote files "
                             "(or a Parquet dataset with --partition-keys)")
        files = [p for p in base.rglob("*")]
    files = sorted(p for p in files if p.is_file() and p.suffix.lower() in QUOTE_SUFFIXES
                   and not _hidden(p.relative_to(base)))
    if not files:
        raise ValueError(f"no quote files ({', '.join(QUOTE_SUFFIXES)}) found in {source}")
    return base, files


def _hive_keys(rel: Path) -> dict:
    pairs = [part.split("=", 1) for part in rel.parent.parts]
    return {k: unquote(v) for k, v in pairs} if pairs and all(len(p) == 2 and p[0] for p in pairs) else {}


def file_chains(source: str) -> list:
    """One Chain per quote file of a folder or glob (see the module docstring for the keys)."""
    base, files = _quote_files(str(source))
    rels = [p.relative_to(base) for p in files]
    hive = [_hive_keys(r) for r in rels]
    names = {tuple(h) for h in hive}
    values = [tuple(h.values()) for h in hive]
    if len(names) == 1 and names != {()} and len(set(values)) == len(values):
        return [Chain(keys=h, source=str(p.resolve())) for h, p in zip(hive, files)]
    return [Chain(keys={"chain": r.as_posix()}, source=str(p.resolve())) for r, p in zip(rels, files)]


def dataset_chains(source: str, partition_keys: list) -> list:
    """One Chain per combination of ``partition_keys`` in the Parquet dataset at ``source``."""
    import pyarrow.dataset as ds

    if not Path(source).is_dir():
        raise ValueError(f"--partition-keys needs a Parquet dataset folder; {source} is not a folder")
    try:
        data = ds.dataset(source, format="parquet", partitioning="hive")
    except Exception as exc:
        raise ValueError(f"cannot read {source} as a Parquet dataset: {' '.join(str(exc).split())}") from None
    missing = [k for k in partition_keys if k not in data.schema.names]
    if missing:
        raise ValueError(f"partition key(s) {', '.join(missing)} not in {source}; it has columns "
                         f"{', '.join(data.schema.names)}")
    groups: dict = {}
    for fragment in data.get_fragments():
        fixed = ds.get_partition_keys(fragment.partition_expression)
        inner = [k for k in partition_keys if k not in fixed]
        combos = [dict(fixed)]
        if inner:   # keys stored as columns: read just those columns of this file
            table = fragment.to_table(columns=inner).group_by(inner).aggregate([])
            combos = [{**fixed, **row} for row in table.to_pylist()]
        for combo in combos:
            key = tuple((k, combo[k]) for k in partition_keys)
            groups.setdefault(key, []).append(fragment.path)
    if not groups:
        raise ValueError(f"no rows in the Parquet dataset {source}")
    order = sorted(groups, key=lambda key: tuple(str(v) for _, v in key))
    root = str(Path(source).resolve())
    return [Chain(keys=dict(key), source=root, kind="dataset", files=tuple(str(Path(f).resolve()) for f in groups[key]))
            for key in order]


def discover(source, partition_keys=None) -> list:
    """The chains of a batch input (see the module docstring)."""
    if partition_keys:
        return dataset_chains(str(source), list(partition_keys))
    return file_chains(str(source))


def read_chain_rows(chain: Chain):
    """A dataset chain's rows as a pyarrow Table, without its key columns (a chain file's content)."""
    import pyarrow.dataset as ds

    data = ds.dataset(list(chain.files), format="parquet", partitioning="hive", partition_base_dir=chain.source)
    expr = None
    for k, v in chain.keys.items():
        term = ds.field(k) == v
        expr = term if expr is None else expr & term
    table = data.to_table(filter=expr)
    return table.drop_columns([k for k in chain.keys if k in table.column_names])
