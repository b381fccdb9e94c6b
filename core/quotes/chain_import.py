"""A chain file in any known layout -> one row per quote in model units (T, k, iv, bid/ask iv, F, D).

Steps, each a small function below:
1. layout: detect and map to canonical columns (core.quotes.layouts);
2. numbers and dates: parse, counting cells that are not numbers or dates;
3. maturity: T from expiry and valuation date (ACT/365), or T, or days / 365;
4. one snapshot (intraday files: the latest) and one option root per expiry (SPX/SPXW listings
   of the same expiry: the root with more two-sided quotes);
5. units: vols in percent and bid/ask in prices or vols, decided from the data and stated;
6. forwards and discounts per expiry (core.quotes.forwards): the file's forward column, else
   put-call parity, else spot + rate (+ dividend yield);
7. quotes: price chains keep out-of-the-money two-sided quotes and invert the mid (and bid, ask)
   to Black vols; the vendor's vol is kept beside for comparison. Vol chains take the vol.

The full range is kept: nothing is dropped for its T or k. A row is dropped only for a reason a
quant would accept (one-sided, crossed, no time value, in the money, expired, ...), and every reason
is counted. A row with an expiry and a strike but no quote at all is a ``query`` row, kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .dates import far_dates, parse_date_column, parse_one_date, year_fraction
from .forwards import N_NEAR, carry_problem
from .layouts import LaidOut, map_frame, read_layout
from .quoteset import QuoteError
from .to_vols import merge_duplicates, price_quotes, vol_quotes
from .units import bidask_units, column_numbers, moneyness_hint, vol_scale

NUMERIC = ("T", "days", "strike", "k", "bid", "ask", "price", "iv", "iv_vendor", "forward", "discount",
           "spot", "rate", "dividend_yield")
PRICE_LAYOUTS = ("yfinance", "cboe_quotedata", "cboe_datashop_eod", "cboe_datashop_intraday", "ivydb")
# vendors whose vol column is documented as decimal (yfinance impliedVolatility, Cboe DataShop
# implied_volatility, IvyDB impl_volatility): a 150 % vol there is 1.5, never a percent to rescale
DECIMAL_VOL_LAYOUTS = ("yfinance", "cboe_datashop_eod", "cboe_datashop_intraday", "ivydb")
CHAIN_FIELDS = ("T", "k", "iv", "iv_bid", "iv_ask", "forward", "discount", "weight")


class ChainImportError(QuoteError):
    """A chain that cannot be imported; the message is one line."""


class _Drops:
    """reason per row; the first reason given to a row wins; counts kept in order of first use."""

    def __init__(self, n: int):
        self.reason = np.full(n, "", dtype=object)
        self.order: list = []

    @property
    def bad(self) -> np.ndarray:
        return self.reason != ""

    def mark(self, mask, reason: str) -> None:
        mask = np.asarray(mask, bool) & ~self.bad
        if mask.any():
            self.reason[mask] = reason
            if reason not in self.order:
                self.order.append(reason)

    def counts(self) -> dict:
        return {r: int(np.sum(self.reason == r)) for r in self.order}


@dataclass
class ImportReport:
    """What the import did: layout, kind (price or iv quotes), counts, drop reasons, notes."""

    source: str
    layout: str
    kind: str
    n_rows: int                 # input data rows
    n_quotes: int               # quotes read (a side-by-side row gives two)
    n_used: int
    n_query: int
    drops: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    ignored: list = field(default_factory=list)

    def lines(self) -> list:
        out = [f"{self.source}: layout {self.layout}, {self.kind} quotes; {self.n_rows} row(s), {self.n_quotes} "
               f"quote(s) read, {self.n_used} used, {sum(self.drops.values())} dropped, {self.n_query} query row(s)"]
        out += [f"dropped, {reason}: {count}" for reason, count in self.drops.items()]
        out += [f"note: {note}" for note in self.notes]
        if self.ignored:
            out.append(f"ignored column(s): {', '.join(map(str, self.ignored))}")
        return out


@dataclass
class ImportedChain:
    """``table``: one row per quote read (row, type, T, strike, k, forward, discount, bid, ask, iv,
    iv_bid, iv_ask, iv_vendor, weight, status used/dropped/query, reason); ``forwards``: one row
    per expiry (T, forward, discount, source, rate, residual, n_pairs); ``report``."""

    table: pd.DataFrame
    forwards: pd.DataFrame
    report: ImportReport

    @property
    def used(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "used"]

    def arrays(self) -> dict:
        """The used quotes as float arrays keyed like ChainQuotes' fields."""
        used = self.used
        return {name: used[name].to_numpy(dtype=np.float64) for name in CHAIN_FIELDS}


# Intraday files: options taken to settle at the close of their expiry date (PM settlement, the US
# equity and index weekly convention; the file's clock, US/Eastern for Cboe DataShop).
SETTLEMENT = pd.Timedelta(hours=16)
SETTLEMENT_TEXT = f"{SETTLEMENT.seconds // 3600:02d}:{SETTLEMENT.seconds // 60 % 60:02d}"


def import_chain(source, name: str | None = None, valuation_date=None, spot=None, rate=None,
                 dividend_yield=None, n_near: int = N_NEAR) -> ImportedChain:
    """Import a chain file (path, bytes or upload; CSV, Parquet or a known text layout).

    ``valuation_date`` applies when the file has expiries but no quote date; ``spot``, ``rate``
    (continuous, per year) and ``dividend_yield`` give forwards where parity cannot. Raises a
    ValueError with a one-line message for a file that cannot be used.
    """
    laid, name = read_layout(source, name)
    return import_laid_out(laid, name, valuation_date, spot, rate, dividend_yield, n_near)


def import_laid_out(laid, name: str = "quotes", valuation_date=None, spot=None, rate=None,
                    dividend_yield=None, n_near: int = N_NEAR) -> ImportedChain:
    """Import a chain already in memory: a LaidOut, or a DataFrame in any known layout."""
    # Absurd cells (1e308, inf) are dropped by the finiteness checks, not by warnings on the way.
    with np.errstate(all="ignore"):
        return _import(laid, name, valuation_date, spot, rate, dividend_yield, n_near)


def _import(laid, name, valuation_date, spot, rate, dividend_yield, n_near) -> ImportedChain:
    problem = carry_problem(spot, rate, dividend_yield)
    if problem:
        raise ChainImportError(f"{name}: {problem}")
    if isinstance(laid, pd.DataFrame):
        laid = map_frame(laid)
    if not isinstance(laid, LaidOut):
        raise ChainImportError(f"quotes must be a table (pandas DataFrame), not {type(laid).__name__}")
    f = laid.frame.reset_index(drop=True)
    if len(f) == 0:
        raise ChainImportError(f"{name} has a header but no data rows")
    drops, notes = _Drops(len(f)), list(laid.notes)
    num = _numbers(f, drops, notes)
    snapshot = _latest_snapshot(f, drops, notes)
    T, expiry = _maturity(f, num, drops, notes, valuation_date, name, snapshot)
    try:
        kind = _units(f, num, laid.layout, notes, T)
    except ValueError as exc:
        raise ChainImportError(f"{name}: {exc}") from None
    carry = (spot, rate, dividend_yield)
    try:
        if kind == "price":
            query_ok = laid.layout not in PRICE_LAYOUTS
            table, fwd = price_quotes(f, num, T, drops, notes, carry, n_near, name, query_ok)
        else:
            table, fwd = vol_quotes(f, num, T, drops, notes, carry, laid.layout, name)
    except ChainImportError:
        raise
    except ValueError as exc:
        raise ChainImportError(str(exc)) from None
    table.insert(1, "expiry", expiry)
    merge_duplicates(table, drops)
    status = np.where(drops.reason == "query", "query", np.where(drops.bad, "dropped", "used"))
    table["status"], table["reason"] = status, drops.reason
    counts = {r: c for r, c in drops.counts().items() if r != "query"}
    report = ImportReport(source=name, layout=laid.layout, kind=kind, n_rows=int(f["row"].max()), n_quotes=len(f),
                          n_used=int(np.sum(status == "used")), n_query=int(np.sum(status == "query")),
                          drops=counts, notes=notes, ignored=list(laid.ignored))
    if report.n_used == 0:
        raise ChainImportError(f"{name}: no usable quotes in {report.n_quotes} read ("
                           + "; ".join(f"{r}: {c}" for r, c in list(counts.items())[:3]) + ")")
    return ImportedChain(table=table, forwards=fwd, report=report)


def _numbers(f: pd.DataFrame, drops: _Drops, notes: list) -> dict:
    out = {}
    for col in NUMERIC:
        if col not in f:
            continue
        values, bad, hint = column_numbers(f[col], col, notes)
        if col != "iv_vendor":           # a vendor's vol is for comparison; a bad one drops nothing
            drops.mark(bad, f"non-numeric value in {col}{hint}")
        out[col] = values
    return out


def _latest_snapshot(f: pd.DataFrame, drops: _Drops, notes: list):
    """Intraday files hold many snapshots: keep the latest, its date is the valuation date. Returns
    its time stamp (None for a file without snapshots)."""
    if "snapshot" not in f:
        return None
    stamps, bad, _ = parse_date_column(f["snapshot"], "quote_datetime")
    drops.mark(bad | stamps.isna().to_numpy(), "quote_datetime is not a date-time")
    latest = stamps.max()
    if pd.isna(latest):
        raise ChainImportError("quote_datetime holds no date-time; an intraday file needs one per quote")
    drops.mark((stamps < latest).to_numpy(), "an earlier intraday snapshot (the latest is used)")
    f["valuation_date"] = latest.normalize()
    notes.append(f"snapshot {latest:%Y-%m-%d %H:%M} used")
    return latest


def _maturity(f, num, drops, notes, valuation_date, name, snapshot=None) -> tuple:
    """(T in years, expiry as ISO text or None) per row; T from expiry + valuation date, T, or days.
    snapshot: an intraday file's quote time; T then runs from it to the expiry's settlement."""
    n = len(f)
    if "expiry" in f and ("valuation_date" in f or valuation_date is not None):
        expiry, bad, problem = parse_date_column(f["expiry"], "expiry")
        if problem:
            raise ChainImportError(f"{name}: column expiry {problem}")
        drops.mark(far_dates(f["expiry"], bad), "expiry after 2262 (past the last date a timestamp holds)")
        drops.mark(bad, "expiry is not a date")
        vdate = _valuation(f, valuation_date, name)
        if snapshot is None:
            T = year_fraction(expiry, vdate)
        else:
            # counted from midnight, a 10:00 quote on a 1-day option would get 24 hours instead of
            # 30 (its vol read about 12 % too high), and a same-day (0DTE) expiry would be dropped
            T = year_fraction(expiry.dt.normalize() + SETTLEMENT, snapshot)
            notes.append(f"T from the snapshot time to {SETTLEMENT_TEXT} on the expiry date (ACT/365 in calendar "
                         "time); AM-settled roots (SPX monthlies) settle 6.5 hours earlier")
        drops.mark(np.isfinite(T) & (T <= 0), "expired (expiry on or before the valuation date)")
        if "T" in num or "days" in num:
            notes.append("T from expiry and valuation date (ACT/365); the file's own T/days column is not used")
        return T, expiry.dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    if "T" in num:
        T = num["T"]
    elif "days" in num:
        T = num["days"] / 365.0
        notes.append("T = days / 365 from the days-to-expiry column")
    elif "expiry" in f:
        raise ChainImportError(f"{name}: expiry given without a valuation date; add a valuation_date column or "
                           "pass the valuation date (YYYY-MM-DD)")
    else:
        raise ChainImportError(f"{name}: no maturity column; need T (years), days, or expiry + valuation_date")
    drops.mark(~np.isfinite(T), "missing maturity")
    drops.mark(np.isfinite(T) & (T <= 0), "expired (T <= 0)")
    return T, (f["expiry"].astype(str).to_numpy(dtype=object) if "expiry" in f else np.full(n, None))


def _valuation(f: pd.DataFrame, valuation_date, name: str):
    if valuation_date is not None:
        try:
            return parse_one_date(valuation_date)
        except ValueError as exc:
            raise ChainImportError(f"{name}: {exc}") from None
    stamps, bad, problem = parse_date_column(f["valuation_date"], "valuation_date")
    distinct = stamps.dropna().unique()
    if problem or bad.any() or len(distinct) == 0:
        raise ChainImportError(f"{name}: valuation_date {problem or 'holds a value that is not a date (YYYY-MM-DD)'}")
    if len(distinct) > 1:
        raise ChainImportError(f"{name}: valuation_date has {len(distinct)} different values; one file holds one "
                           "chain on one date")
    return stamps.where(stamps.notna(), distinct[0])


def _units(f: pd.DataFrame, num: dict, layout: str, notes: list, T: np.ndarray) -> str:
    """'price' or 'iv': what the quotes are. Scales percent vols in place; states every decision.
    T: the rows' expiries in years (with the strikes, they tell percent from decimal vols)."""
    kind = "price" if "price" in num else "iv"
    if "bid" in num and "ask" in num:
        vol = num.get("iv", num.get("iv_vendor"))       # compared as written, before any percent scaling
        units, note = bidask_units(num["bid"], num["ask"], vol, "type" in f, "price" in num,
                                   layout in PRICE_LAYOUTS)
        notes.append(note)
        kind = "price" if units == "price" else "iv"
        if kind == "price" and "iv" in num:
            num["iv_vendor"] = num.pop("iv")
    cols = ("iv", "iv_vendor") if kind == "price" else ("iv", "iv_vendor", "bid", "ask")
    for col in cols:
        if col == "iv_vendor" and layout in DECIMAL_VOL_LAYOUTS:
            continue
        if col in num:
            scale, note = vol_scale(num[col], {"iv_vendor": "the vendor vol"}.get(col, col), moneyness_hint(num), T)
            num[col] = num[col] * scale
            if note:
                notes.append(note)
    return kind
