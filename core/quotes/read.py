"""Quote files in: read a CSV or Parquet option chain into one normalised quote table.

One quote per row. Column names are case-insensitive; surrounding spaces are ignored.

===============  =====================================================================
maturity         ``T`` in years (ACT/365), or ``expiry`` with ``valuation_date`` (ISO
                 dates, YYYY-MM-DD; ``valuation_date`` may also be passed as an argument)
moneyness        ``k`` = ln(strike / forward), or ``strike`` with ``forward``
value            ``iv`` (decimal Black vol: 0.20 for 20 %), or ``price`` with ``type``
                 (call/put, c/p), ``forward`` and optional ``discount`` (default 1)
bid / ask        optional, in the units of the value (vols or prices); where both are
                 present the mid is the quote and ask - bid is kept as the spread
===============  =====================================================================

Nothing is dropped silently. Every input row stays in the table with a ``status``:
``used``, ``outside`` (valid, but beyond the model grid's reach), ``skipped`` (valid, set aside
by a rule below) or ``dropped`` (bad data), and a ``reason``; the :class:`ValidationReport` counts them by reason with row numbers (1 = the
first data row). Whole-file problems (empty, unreadable, wrong columns, too large, fewer than
``MIN_QUOTES`` usable quotes, a single expiry) raise :class:`QuoteError`, a ``ValueError``
whose one-line message names the problem.

Rules worth knowing
- Price quotes are inverted with ``core.engine.black.implied_vol``; a price that breaks (or sits on)
  a no-arbitrage bound is dropped with the bound named.
- Where a call and a put share an expiry and strike, the out-of-the-money one is used (the
  put for k < 0, the call for k >= 0; both averaged at k = 0): the in-the-money price carries
  the same vol information buried under intrinsic value.
- Duplicate quotes (same expiry, strike and, for prices, type) are averaged into the first
  such row; the others are marked ``dropped`` as duplicates.
- A vol must be in (0, MAX_IV]; values that look like percentages are called out.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.quotes.gridding import K_CATCHMENT, T_CATCHMENT

MAX_FILE_BYTES = 50 * 1024 * 1024      # 50 MiB: a full listed chain is a few MB
MAX_ROWS = 200_000                     # far above any single-underlying chain
MAX_IV = 5.0                           # same bound as core.pipeline
MIN_QUOTES = 4                         # same as core.pipeline
MIN_EXPIRIES = 2
# Quotes within half a grid step of the grid's box inform its edge nodes (core.quotes.gridding).
T_RANGE = T_CATCHMENT                  # (0.08, 2.08) years
K_RANGE = K_CATCHMENT                  # (-0.478, 0.478)
_RANGE_EPS = 1e-9

ALIASES = {
    "t": "T", "tau": "T", "expiry": "expiry", "expiration": "expiry", "maturity": "expiry",
    "valuation_date": "valuation_date", "quote_date": "valuation_date", "k": "k",
    "log_moneyness": "k", "strike": "strike", "forward": "forward", "iv": "iv",
    "implied_vol": "iv", "price": "price", "type": "type", "option_type": "type", "cp": "type",
    "call_put": "type", "discount": "discount", "bid": "bid", "ask": "ask",
}
NUMERIC = ("T", "k", "strike", "forward", "iv", "price", "discount", "bid", "ask")

COLUMNS_HELP = """\
Columns (one quote per row; names case-insensitive):
  maturity   T (years, ACT/365)  or  expiry + valuation_date (ISO dates YYYY-MM-DD)
  moneyness  k = ln(strike/forward)  or  strike + forward
  value      iv (decimal Black vol, 0.20 = 20%)  or  price + type (call/put) + forward
             [+ discount, default 1]
  optional   bid, ask (vols or prices): the mid is used, ask - bid kept as the spread
Grid: T in [0.08, 2.0] years, k in [-0.45, 0.45]. Quotes within half a grid step beyond it
(T up to 2.08, |k| up to 0.478) inform the edge nodes; quotes further out are reported, not used.
Caps: 50 MiB, 200,000 rows; at least 4 usable quotes on at least 2 expiries."""


class QuoteError(ValueError):
    """A quote file that cannot be used; the message is one line naming the problem."""


def _rows_text(rows, limit: int = 8) -> str:
    rows = list(rows)
    head = ", ".join(str(r) for r in rows[:limit])
    return f"row {head}" if len(rows) == 1 else f"rows {head}" + (f", ... (+{len(rows) - limit})" if len(rows) > limit else "")


@dataclass
class ValidationReport:
    """What happened to every row. Row numbers are 1-based data rows (header excluded)."""

    source: str
    kind: str                                   # "iv" or "price"
    n_rows: int
    n_used: int
    dropped: dict = field(default_factory=dict)  # reason -> [rows]
    outside: dict = field(default_factory=dict)  # reason -> [rows]
    skipped: dict = field(default_factory=dict)  # valid quotes set aside by rule: reason -> [rows]
    warnings: list = field(default_factory=list)
    columns_used: list = field(default_factory=list)
    columns_ignored: list = field(default_factory=list)
    n_expiries: int = 0

    @property
    def n_dropped(self) -> int:
        return sum(len(r) for r in self.dropped.values())

    @property
    def n_skipped(self) -> int:
        return sum(len(r) for r in self.skipped.values())

    @property
    def n_outside(self) -> int:
        return sum(len(r) for r in self.outside.values())

    def lines(self) -> list:
        """Human-readable summary, one line each."""
        out = [f"{self.source}: {self.n_rows} row(s) read ({self.kind} quotes); {self.n_used} used on "
               f"{self.n_expiries} expiries, {self.n_outside} outside the grid, {self.n_skipped} set aside by rule, "
               f"{self.n_dropped} dropped"]
        for reason, rows in self.outside.items():
            out.append(f"outside the grid, {reason}: {len(rows)} ({_rows_text(rows)})")
        for reason, rows in self.skipped.items():
            out.append(f"set aside, {reason}: {len(rows)} ({_rows_text(rows)})")
        for reason, rows in self.dropped.items():
            out.append(f"dropped, {reason}: {len(rows)} ({_rows_text(rows)})")
        out += [f"warning: {w}" for w in self.warnings]
        if self.columns_ignored:
            out.append(f"ignored column(s): {', '.join(self.columns_ignored)}")
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per (status, reason): status, reason, count, rows (text)."""
        records = [("outside", r, rows) for r, rows in self.outside.items()]
        records += [("skipped", r, rows) for r, rows in self.skipped.items()]
        records += [("dropped", r, rows) for r, rows in self.dropped.items()]
        return pd.DataFrame({"status": [x[0] for x in records], "reason": [x[1] for x in records],
                             "count": [len(x[2]) for x in records],
                             "rows": [_rows_text(x[2], limit=20) for x in records]},
                            columns=["status", "reason", "count", "rows"])

    def to_dict(self) -> dict:
        return {"source": self.source, "kind": self.kind, "n_rows": self.n_rows, "n_used": self.n_used,
                "n_outside": self.n_outside, "n_skipped": self.n_skipped, "n_dropped": self.n_dropped,
                "n_expiries": self.n_expiries,
                "outside": {k: list(map(int, v)) for k, v in self.outside.items()},
                "skipped": {k: list(map(int, v)) for k, v in self.skipped.items()},
                "dropped": {k: list(map(int, v)) for k, v in self.dropped.items()},
                "warnings": list(self.warnings), "columns_used": list(self.columns_used),
                "columns_ignored": list(self.columns_ignored)}


@dataclass
class QuoteSet:
    """A normalised quote table and its validation report.

    ``table`` has one row per input row, in file order, with columns
    row (1-based), T (years), k (ln K/F), iv (the quote, decimal vol), iv_bid, iv_ask,
    spread_iv (ask - bid in vol), status (used / outside / skipped / dropped), reason, n_merged
    (quotes averaged into this row), and the input columns that were read (expiry, strike,
    forward, type, price, discount, bid, ask) where present.
    """

    table: pd.DataFrame
    report: ValidationReport

    @property
    def used(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "used"]

    @property
    def kind(self) -> str:
        return self.report.kind


# --------------------------------------------------------------------------- reading bytes

def _source_bytes(source, name: str | None, max_bytes: int) -> tuple:
    """(raw bytes, display name) from a path, bytes, or a file-like object (e.g. an upload)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise QuoteError(f"quote file not found: {path}")
        if path.is_dir():
            raise QuoteError(f"{path} is a directory, not a quote file")
        size = path.stat().st_size
        if size > max_bytes:
            raise QuoteError(f"{path.name} is {size / 2**20:.1f} MiB; the cap is {max_bytes / 2**20:.0f} MiB")
        return path.read_bytes(), name or path.name
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "getvalue"):
        data = source.getvalue()
    elif hasattr(source, "read"):
        data = source.read(max_bytes + 1)
    else:
        raise QuoteError(f"cannot read quotes from a {type(source).__name__}; give a path, bytes or a file")
    if isinstance(data, str):
        data = data.encode("utf-8")
    name = name or getattr(source, "name", None) or "quotes"
    if len(data) > max_bytes:
        raise QuoteError(f"{name} is over {max_bytes / 2**20:.0f} MiB, the cap on a quote file")
    return data, str(name)


def _detect_format(data: bytes, name: str) -> str:
    suffix = Path(name).suffix.lower()
    if data[:4] == b"PAR1" or suffix in (".parquet", ".pq"):
        return "parquet"
    if data[:2] == b"PK" or suffix in (".xlsx", ".xls"):
        raise QuoteError(f"{name} looks like a spreadsheet; save it as CSV or Parquet")
    return "csv"


def _read_csv(data: bytes, name: str, max_rows: int) -> pd.DataFrame:
    if b"\x00" in data[:4096]:
        raise QuoteError(f"{name} is binary, not a CSV text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise QuoteError(f"{name} is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    if not text.strip():
        raise QuoteError(f"{name} is empty")
    header = next(line for line in text.splitlines() if line.strip())
    sep = max([",", ";", "\t", "|"], key=header.count)
    if header.count(sep) == 0:
        sep = ","
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, skipinitialspace=True, nrows=max_rows + 1,
                         skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise QuoteError(f"{name} is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise QuoteError(f"cannot parse {name} as CSV: {detail}") from None
    if len(df) > max_rows:
        raise QuoteError(f"{name} has more than {max_rows:,} rows, the cap on a quote file")
    return df


def _read_parquet(data: bytes, name: str, max_rows: int) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(io.BytesIO(data))
        if handle.metadata.num_rows > max_rows:
            raise QuoteError(f"{name} has {handle.metadata.num_rows:,} rows; the cap is {max_rows:,}")
        table = handle.read()
    except QuoteError:
        raise
    except Exception as exc:  # pyarrow raises several types for corrupt files
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise QuoteError(f"cannot read {name} as Parquet: {detail}") from None
    try:
        return table.to_pandas()
    except Exception as exc:
        raise QuoteError(f"cannot convert {name} to a table: {' '.join(str(exc).split())}") from None


def read_quotes(source, name: str | None = None, valuation_date=None, max_bytes: int = MAX_FILE_BYTES,
                max_rows: int = MAX_ROWS) -> QuoteSet:
    """Read a quote file (path, bytes or file-like; CSV or Parquet) into a validated QuoteSet.

    ``name`` is used in messages and, by its suffix, to tell CSV from Parquet (Parquet is also
    recognised by its magic bytes). ``valuation_date`` (ISO string or date) applies when the file
    has ``expiry`` but no ``valuation_date`` column. Raises QuoteError (a ValueError) with a
    one-line message for a file that cannot be used.
    """
    data, name = _source_bytes(source, name, max_bytes)
    if len(data) == 0 or not data.strip():
        raise QuoteError(f"{name} is empty")
    fmt = _detect_format(data, name)
    df = _read_parquet(data, name, max_rows) if fmt == "parquet" else _read_csv(data, name, max_rows)
    return normalise_quotes(df, source=name, valuation_date=valuation_date)


# --------------------------------------------------------------------------- normalising

class _Rows:
    """Collects row-level problems: reason -> boolean mask, first reason wins."""

    def __init__(self, n: int):
        self.n = n
        self.bad = np.zeros(n, dtype=bool)
        self.reason = np.full(n, "", dtype=object)
        self.order: list = []
        self.benign: set = set()       # reasons that skip a valid quote by rule, not for bad data

    def mark(self, mask, reason: str, benign: bool = False) -> None:
        mask = np.asarray(mask, dtype=bool) & ~self.bad
        if mask.any():
            self.bad |= mask
            self.reason[mask] = reason
            if reason not in self.order:
                self.order.append(reason)
            if benign:
                self.benign.add(reason)


def _numeric(df: pd.DataFrame, col: str, rows: _Rows) -> np.ndarray:
    """Column as float64; non-numeric cells are marked (and become NaN)."""
    raw = df[col]
    if pd.api.types.is_bool_dtype(raw):
        rows.mark(np.ones(len(raw), bool), f"non-numeric value in {col}")
        return np.full(len(raw), np.nan)
    if pd.api.types.is_numeric_dtype(raw):
        return raw.to_numpy(dtype=np.float64, na_value=np.nan)
    text = raw.astype("string").str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    given = text.notna().to_numpy() & (text.fillna("").to_numpy() != "")
    rows.mark(given & np.isnan(values), f"non-numeric value in {col}")
    return values


def _dates(df: pd.DataFrame, col: str, rows: _Rows) -> pd.Series:
    raw = df[col]
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw.dt.tz_localize(None) if getattr(raw.dt, "tz", None) is not None else raw
    else:
        text = raw.astype("string").str.strip()
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        bad = text.notna().to_numpy() & parsed.isna().to_numpy()
        rows.mark(bad, f"{col} is not an ISO date (YYYY-MM-DD)")
    rows.mark(parsed.isna().to_numpy(), f"missing {col}")
    return parsed


def _one_valuation_date(valuation_date, name: str):
    try:
        value = pd.Timestamp(valuation_date)
    except (TypeError, ValueError):
        raise QuoteError(f"valuation date {valuation_date!r} is not an ISO date (YYYY-MM-DD)") from None
    if pd.isna(value):
        raise QuoteError(f"valuation date {valuation_date!r} is not an ISO date (YYYY-MM-DD)")
    return value.tz_localize(None) if value.tzinfo is not None else value


def _option_type(df: pd.DataFrame, rows: _Rows) -> np.ndarray:
    text = df["type"].astype("string").str.strip().str.lower().fillna("")
    is_call = text.isin(["c", "call", "calls"]).to_numpy()
    is_put = text.isin(["p", "put", "puts"]).to_numpy()
    rows.mark((text == "").to_numpy(), "missing type")
    rows.mark(~(is_call | is_put), "type is not call or put")
    return is_call


def _black():
    try:
        from core.engine import black
    except ImportError:
        raise QuoteError("price quotes need core.engine.black (Black inversion), which this checkout lacks; "
                         "give iv instead of price") from None
    return black


def _check_columns(df: pd.DataFrame, name: str) -> tuple:
    """Map the file's columns to canonical names; QuoteError naming what is missing."""
    mapping, seen = {}, {}
    for col in df.columns:
        key = str(col).strip().lower()
        canon = ALIASES.get(key)
        if canon is None:
            continue
        if canon in seen:
            raise QuoteError(f"{name}: columns {seen[canon]!r} and {col!r} both give {canon}; keep one")
        seen[canon] = col
        mapping[col] = canon
    found = ", ".join(map(str, df.columns[:12])) + (", ..." if len(df.columns) > 12 else "")
    have = set(mapping.values())
    if "T" not in have and "expiry" not in have:
        raise QuoteError(f"{name}: no maturity column; need T (years) or expiry + valuation_date "
                         f"(found: {found})")
    if "k" not in have and "strike" not in have:
        raise QuoteError(f"{name}: no moneyness column; need k = ln(K/F) or strike + forward (found: {found})")
    has_value = {"iv", "price"} & have or {"bid", "ask"} <= have
    if not has_value:
        raise QuoteError(f"{name}: no quote column; need iv, or price with type and forward, "
                         f"or bid and ask (found: {found})")
    ignored = [str(c) for c in df.columns if c not in mapping]
    return mapping, ignored


def normalise_quotes(df: pd.DataFrame, source: str = "quotes", valuation_date=None) -> QuoteSet:
    """Validate an in-memory quote table (raw file columns) into a QuoteSet; see the module doc."""
    if not isinstance(df, pd.DataFrame):
        raise QuoteError(f"quotes must be a table (pandas DataFrame), not {type(df).__name__}")
    if len(df.columns) == 0:
        raise QuoteError(f"{source} has no columns")
    if len(df) == 0:
        raise QuoteError(f"{source} has a header but no data rows")
    mapping, ignored = _check_columns(df, source)
    df = df[list(mapping)].rename(columns=mapping).reset_index(drop=True)
    have = set(df.columns)
    n = len(df)
    rows = _Rows(n)
    warnings: list = []
    out = pd.DataFrame({"row": np.arange(1, n + 1)})

    # Value kind. iv wins over price when both are given.
    kind = "iv" if "iv" in have else "price" if ("price" in have or "type" in have) else "iv"
    if kind == "iv" and "price" in have:
        warnings.append("both iv and price given: iv used, price ignored")
    if kind == "price":
        for col in ("type", "forward"):
            if col not in have:
                raise QuoteError(f"{source}: price quotes need a {col} column")

    num = {col: _numeric(df, col, rows) for col in NUMERIC if col in have}

    # Maturity.
    if "T" in have:
        if "expiry" in have:
            warnings.append("both T and expiry given: T used")
        T = num["T"]
        rows.mark(np.isnan(T), "missing T")
        rows.mark(np.isinf(T), "infinite T")
        rows.mark(T <= 0, "T <= 0")
    else:
        expiry = _dates(df, "expiry", rows)
        if "valuation_date" in have:
            vdates = _dates(df, "valuation_date", rows)
            distinct = vdates.dropna().unique()
            if len(distinct) > 1:
                raise QuoteError(f"{source}: valuation_date has {len(distinct)} different values; "
                                 "one file holds one surface (one valuation date)")
            if len(distinct) == 0:
                raise QuoteError(f"{source}: valuation_date holds no valid ISO date (YYYY-MM-DD)")
            vdate = pd.Timestamp(distinct[0])
        elif valuation_date is not None:
            vdate = _one_valuation_date(valuation_date, source)
        else:
            raise QuoteError(f"{source}: expiry given without a valuation date; add a valuation_date column "
                             "or pass the valuation date (CLI: --valuation-date YYYY-MM-DD)")
        T = ((expiry - vdate).dt.total_seconds() / (365.0 * 86400.0)).to_numpy(dtype=np.float64, na_value=np.nan)
        out["expiry"] = expiry.dt.strftime("%Y-%m-%d")
        out["valuation_date"] = vdate.strftime("%Y-%m-%d")
        before = T <= 0
        if before.all():
            raise QuoteError(f"{source}: every expiry is on or before the valuation date "
                             f"{vdate:%Y-%m-%d}; are expiry and valuation_date swapped?")
        rows.mark(before, "expiry on or before the valuation date")

    # Moneyness.
    forward = num.get("forward")
    if forward is not None:
        rows.mark(np.isinf(forward), "infinite forward")
        rows.mark(forward <= 0, "forward <= 0")
        forward = np.where(forward > 0, forward, np.nan)
    if "k" in have:
        k = num["k"]
        if "strike" in have:
            warnings.append("both k and strike given: k used")
        rows.mark(np.isnan(k), "missing k")
        rows.mark(np.isinf(k), "infinite k")
        strike = forward * np.exp(k) if forward is not None else None
    else:
        if forward is None:
            raise QuoteError(f"{source}: strike given without a forward column; add forward (per expiry) or give k")
        strike = num["strike"]
        rows.mark(np.isnan(strike), "missing strike")
        rows.mark(np.isinf(strike), "infinite strike")
        rows.mark(strike <= 0, "strike <= 0")
        rows.mark(np.isnan(forward), "missing forward")
        with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
            k = np.log(strike / forward)
        rows.mark(~np.isfinite(k), "strike / forward out of range")
    out["T"] = T
    out["k"] = k
    if "strike" in have or strike is not None:
        out["strike"] = strike
    if forward is not None:
        out["forward"] = forward

    # Value: the mid of bid/ask where both are given, else the value column.
    value_col = "iv" if kind == "iv" else "price"
    bid, ask = num.get("bid"), num.get("ask")
    value = num.get(value_col, np.full(n, np.nan)).copy()
    has_ba = np.zeros(n, bool)
    if bid is not None and ask is not None:
        has_ba = np.isfinite(bid) & np.isfinite(ask)
        crossed = has_ba & (bid > ask)
        rows.mark(crossed, "bid above ask")
        rows.mark(has_ba & (bid < 0), "negative bid")
        use_mid = has_ba & ~crossed
        value = np.where(use_mid, 0.5 * (bid + ask), value)
    elif (bid is None) != (ask is None):
        warnings.append(f"only {'bid' if bid is not None else 'ask'} given: it is ignored (a mid needs both)")
    missing_label = value_col if value_col in have else "bid/ask"
    rows.mark(np.isnan(value), f"missing {missing_label}")
    rows.mark(np.isinf(value), f"infinite {missing_label}")

    iv_bid = np.full(n, np.nan)
    iv_ask = np.full(n, np.nan)
    if kind == "iv":
        iv = value
        rows.mark(iv <= 0, "iv <= 0")
        rows.mark(iv > MAX_IV, f"iv above {MAX_IV:g} (percentages? give 0.20 for 20 %)")
        if bid is not None and ask is not None:
            iv_bid, iv_ask = np.where(has_ba, bid, np.nan), np.where(has_ba, ask, np.nan)
        out["iv_input"] = value
    else:
        is_call = _option_type(df, rows)
        discount = num.get("discount")
        if discount is None:
            discount = np.ones(n)
            warnings.append("no discount column: prices taken as undiscounted (discount = 1)")
        else:
            rows.mark(np.isnan(discount), "missing discount")
            rows.mark(np.isinf(discount), "infinite discount")
            rows.mark((discount <= 0) | (discount > 2), "discount outside (0, 2]")
        black = _black()
        ok = ~rows.bad
        iv = np.full(n, np.nan)
        if ok.any():
            with np.errstate(all="ignore"):
                iv_ok, status = black.implied_vol(value[ok], forward[ok], strike[ok], T[ok], is_call[ok],
                                                  discount[ok], return_status=True)
            iv[ok] = iv_ok
            code = np.zeros(n, dtype=int)
            code[ok] = status
            names = {3: "price below intrinsic value (no-arbitrage lower bound)",
                     4: "price at intrinsic value (no time value, no implied vol)",
                     5: "price above the no-arbitrage upper bound (forward or strike)",
                     6: "price at the no-arbitrage upper bound (no finite implied vol)"}
            for c, label in names.items():
                rows.mark(code == c, label)
            rows.mark(ok & ~np.isfinite(iv), "price has no implied vol")
            if bid is not None and ask is not None:
                both = ok & has_ba
                if both.any():
                    with np.errstate(all="ignore"):
                        iv_bid[both] = black.implied_vol(bid[both], forward[both], strike[both], T[both],
                                                         is_call[both], discount[both])
                        iv_ask[both] = black.implied_vol(ask[both], forward[both], strike[both], T[both],
                                                         is_call[both], discount[both])
        rows.mark(iv > MAX_IV, f"implied vol above {MAX_IV:g}")
        out["type"] = np.where(is_call, "call", "put")
        out["discount"] = discount
        out["price_input"] = value
    out["iv"] = iv
    if bid is not None:
        out["bid"] = bid
    if ask is not None:
        out["ask"] = ask
    out["iv_bid"] = iv_bid
    out["iv_ask"] = iv_ask
    out["spread_iv"] = iv_ask - iv_bid
    out["n_merged"] = 1

    # Duplicates and call/put pairs, among rows that are otherwise fine.
    good = ~rows.bad
    _merge_duplicates(out, good, rows, kind)

    # Outside the grid: valid quotes, reported and not used.
    good = ~rows.bad
    skipped_mask = np.isin(rows.reason, list(rows.benign)) if rows.benign else np.zeros(n, bool)
    status = np.where(good, "used", np.where(skipped_mask, "skipped", "dropped")).astype(object)
    reason = rows.reason.copy()
    outside = {}
    for mask, label in ((T < T_RANGE[0] - _RANGE_EPS, f"T below {T_RANGE[0]:.2f} years"),
                        (T > T_RANGE[1] + _RANGE_EPS, f"T above {T_RANGE[1]:.2f} years"),
                        (k < K_RANGE[0] - _RANGE_EPS, f"k below {K_RANGE[0]:.3f}"),
                        (k > K_RANGE[1] + _RANGE_EPS, f"k above {K_RANGE[1]:.3f}")):
        mask = mask & good & (status == "used")
        if mask.any():
            status[mask] = "outside"
            reason[mask] = label
            outside[label] = out["row"].to_numpy()[mask].tolist()
    out["status"] = status
    out["reason"] = reason
    by_reason = {r: out["row"].to_numpy()[rows.reason == r].tolist() for r in rows.order}
    dropped = {r: v for r, v in by_reason.items() if v and r not in rows.benign}
    skipped = {r: v for r, v in by_reason.items() if v and r in rows.benign}

    used = status == "used"
    n_exp = int(np.unique(np.round(T[used], 9)).size) if used.any() else 0
    if (good & np.isfinite(T)).any() and np.median(T[good & np.isfinite(T)]) > 5:
        warnings.append(f"median T is {np.median(T[good & np.isfinite(T)]):.3g}: T is in years (days / 365)")
    if kind == "iv" and used.any() and np.median(iv[used]) > 1.5:
        warnings.append(f"median iv is {np.median(iv[used]):.2f}: are these percentages? (0.20 = 20 %)")
    report = ValidationReport(source=source, kind=kind, n_rows=n, n_used=int(used.sum()), dropped=dropped,
                              outside=outside, skipped=skipped, warnings=warnings,
                              columns_used=sorted(set(mapping.values()), key=str.lower),
                              columns_ignored=ignored, n_expiries=n_exp)
    _check_enough(report, T[used], source)
    return QuoteSet(table=out, report=report)


def _merge_duplicates(out: pd.DataFrame, good: np.ndarray, rows: _Rows, kind: str) -> None:
    """Average duplicate quotes into their first row; prefer OTM where a call and a put share a strike."""
    # Only quotes within reach of the grid can be duplicates that matter (and rounding 1e308 overflows).
    sane = (np.abs(out["T"].to_numpy()) < 1e3) & (np.abs(out["k"].to_numpy()) < 1e3)
    idx = np.flatnonzero(good & sane)
    if idx.size < 2:
        return
    T = np.round(out["T"].to_numpy()[idx], 9)
    k = np.round(out["k"].to_numpy()[idx], 9)
    key = pd.DataFrame({"T": T, "k": k, "i": idx})
    if kind == "price":
        is_call = out["type"].to_numpy()[idx] == "call"
        key["call"] = is_call
        pair = key.groupby(["T", "k"])["call"].transform("nunique").to_numpy() > 1
        itm = pair & ((is_call & (k < 0)) | (~is_call & (k > 0)))
        rows.mark(np.isin(np.arange(rows.n), idx[itm]),
                  "in the money; the out-of-the-money option at the same strike is used", benign=True)
        key = key[~itm]
    # Same expiry and strike (for prices after the OTM rule, so only same-type repeats and the
    # call/put pair at k = 0 remain): one quote, the mean vol.
    cols = ["T", "k"]
    dup = key.duplicated(cols, keep=False)
    if not dup.any():
        return
    iv = out["iv"].to_numpy()
    merged_iv = iv.copy()
    n_merged = out["n_merged"].to_numpy().copy()
    for _, group in key[dup].groupby(cols):
        members = group["i"].to_numpy()
        first, rest = members[0], members[1:]
        merged_iv[first] = iv[members].mean()
        n_merged[first] = members.size
        marker = np.zeros(rows.n, bool)
        marker[rest] = True
        rows.mark(marker, "duplicate (averaged into the first row at the same expiry and strike)", benign=True)
    out["iv"] = merged_iv
    out["n_merged"] = n_merged


def _check_enough(report: ValidationReport, T_used: np.ndarray, source: str) -> None:
    n_used = T_used.size
    parts = [f"{reason}: {len(r)}" for reason, r in list(report.dropped.items())[:3]]
    if report.n_outside:
        parts.append(f"outside the grid: {report.n_outside}")
    detail = f" ({'; '.join(parts)})" if parts else ""
    if n_used == 0:
        if report.n_outside and not report.n_dropped:
            hint = "; is T in days? give years" if any("T is in years" in w for w in report.warnings) else ""
            raise QuoteError(f"{source}: all {report.n_outside} valid quotes lie outside the grid "
                             f"(T in [{T_RANGE[0]:.2f}, {T_RANGE[1]:.2f}] years, k in [{K_RANGE[0]:.3f}, "
                             f"{K_RANGE[1]:.3f}]){hint}")
        raise QuoteError(f"{source}: no usable quotes in {report.n_rows} row(s){detail}")
    if n_used < MIN_QUOTES:
        raise QuoteError(f"{source}: only {n_used} usable quote(s); at least {MIN_QUOTES} are needed for a "
                         f"repair{detail}")
    if report.n_expiries < MIN_EXPIRIES:
        raise QuoteError(f"{source}: the usable quotes span a single expiry (T = {T_used[0]:.3f} years); a surface "
                         f"needs at least {MIN_EXPIRIES} expiries in T [{T_RANGE[0]:.2f}, {T_RANGE[1]:.2f}] years")
