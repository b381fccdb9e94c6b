"""Bytes in: a quote file from a path, bytes or an upload, checked before any parser sees it.

Checks, each a one-line ValueError naming the file and the problem:
- size (MAX_FILE_BYTES) and, for text, the widest line (MAX_LINE_CHARS) and the number of fields
  on the header line (MAX_COLUMNS), so a one-line file of millions of columns is refused at once
  instead of holding a parser for minutes;
- encoding: UTF-8 (with or without BOM), UTF-16 with a BOM (decoded; Excel writes it), anything else
  named as such;
- content that is not a table: a spreadsheet, JSON or HTML saved under a .csv name.
"""
from __future__ import annotations

import os
from pathlib import Path

MAX_FILE_BYTES = 50 * 1024 * 1024      # 50 MiB: a full listed chain is a few MB
MAX_ROWS = 200_000                     # rows of a table, far above any single-underlying chain
MAX_LINE_CHARS = 20_000                # a quote line is under 1,000 characters in every layout we read
MAX_COLUMNS = 500                      # vendor layouts carry at most about 60 columns


class SourceError(ValueError):
    """A quote file that cannot be read as a table; the message is one line."""


def source_bytes(source, name: str | None = None, max_bytes: int = MAX_FILE_BYTES) -> tuple:
    """(raw bytes, display name) from a path, bytes, or a file-like object (e.g. an upload)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise SourceError(f"quote file not found: {path}")
        if path.is_dir():
            raise SourceError(f"{path} is a directory, not a quote file")
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(f"{path.name} is {size / 2**20:.1f} MiB; the cap is {max_bytes / 2**20:.0f} MiB")
        return path.read_bytes(), name or path.name
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "getvalue"):
        data = source.getvalue()
    elif hasattr(source, "read"):
        data = source.read(max_bytes + 1)
    else:
        raise SourceError(f"cannot read quotes from a {type(source).__name__}; give a path, bytes or a file")
    if isinstance(data, str):
        data = data.encode("utf-8")
    name = str(name or getattr(source, "name", None) or "quotes")
    if len(data) > max_bytes:
        raise SourceError(f"{name} is over {max_bytes / 2**20:.0f} MiB, the cap on a quote file")
    return data, name


def is_parquet(data: bytes, name: str) -> bool:
    return data[:4] == b"PAR1" or Path(name).suffix.lower() in (".parquet", ".pq")


def decode_text(data: bytes, name: str) -> str:
    """The file as text, or SourceError naming the encoding or content problem."""
    if data[:2] == b"PK" or Path(name).suffix.lower() in (".xlsx", ".xls"):
        raise SourceError(f"{name} looks like a spreadsheet; save it as CSV or Parquet")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise SourceError(f"{name} starts as UTF-16 but does not decode; save the CSV as UTF-8") from None
    else:
        if b"\x00" in data[:4096]:
            hint = "; it looks like UTF-16 without a byte-order mark, save it as UTF-8" \
                if data[1:4096:2].count(0) > 0.4 * len(data[1:4096:2]) else ""
            raise SourceError(f"{name} is binary, not a CSV text file{hint}")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{name} is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    stripped = text.lstrip()
    if not stripped:
        raise SourceError(f"{name} is empty")
    if stripped[0] in "{[":
        raise SourceError(f"{name} holds JSON, not CSV; export the quotes as CSV (one quote per row)")
    if stripped[:1] == "<":
        raise SourceError(f"{name} holds HTML or XML, not CSV; save the table itself as CSV")
    check_width(text, name)
    return text


def check_width(text: str, name: str) -> None:
    """Refuse over-wide lines and headers before a parser builds millions of columns."""
    widest = max((len(line) for line in text.splitlines()), default=0)
    if widest > MAX_LINE_CHARS:
        raise SourceError(f"{name} has a line of {widest:,} characters; quote lines are short "
                          f"(the cap is {MAX_LINE_CHARS:,})")
    header = next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    fields = max(header.count(sep) for sep in (",", ";", "\t", "|")) + 1
    if fields > MAX_COLUMNS:
        raise SourceError(f"{name} has {fields:,} columns on its header line; the cap is {MAX_COLUMNS}")
