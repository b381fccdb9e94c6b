"""Quote files in: read an option chain, in any layout we know, into one normalised quote table.

Layouts (detected from the content, see core.quotes.layouts): our generic one quote per row
(below); yfinance ``option_chain`` dumps; Cboe DataShop end-of-day and intraday files; Cboe's
delayed-quotes download (calls and puts side by side); OptionMetrics IvyDB; QuantLib-style vol
matrices. Vendor layouts go through the chain importer (core.quotes.chain_import): forwards and
discounts from put-call parity (else spot + rate), vols recomputed from prices, the vendor's vol
kept for comparison, every decision stated in the report's notes.

The generic layout. Column names are case-insensitive; surrounding spaces are ignored.

===============  =====================================================================
maturity         ``T`` in years (ACT/365), or ``expiry`` with ``valuation_date`` (dates as
                 YYYY-MM-DD, with or without a time and timezone; also 20250620, and
                 day/month/year only where the day shows it; ``valuation_date`` may also be
                 passed as an argument, read by the same rules), or ``days``/``dte``
moneyness        ``k`` = ln(strike / forward), or ``strike`` with ``forward``
value            ``iv`` (decimal Black vol: 0.20 for 20 %; a column whose median is 1 or more
                 is read as percent, and said so), or ``price`` with ``type`` (call/put, c/p)
                 and ``forward`` (or, without a forward, call/put pairs for parity, or spot and
                 rate) and optional ``discount`` (default 1)
bid / ask        optional; prices or vols, decided from the data when a vol column sits
                 beside them (and said so); the mid is the quote, ask - bid the spread
===============  =====================================================================

Nothing is dropped silently. Every quote stays in the table with a ``status``: ``used``,
``outside`` (valid, but beyond the model grid's reach), ``skipped`` (valid, set aside by a rule)
or ``dropped`` (bad data), and a ``reason``; the :class:`ValidationReport` counts them by reason
with row numbers (1 = the first data row). Whole-file problems (empty, unreadable, too wide, wrong
columns, too large, fewer than ``MIN_QUOTES`` usable quotes) raise
:class:`QuoteError`, a ``ValueError`` whose one-line message names the problem.

Rules worth knowing
- Price quotes are inverted with ``core.engine.black.implied_vol``; a price that breaks (or sits on)
  a no-arbitrage bound is dropped with the bound named.
- Where a call and a put share an expiry and strike, the out-of-the-money one is used (the
  put for k < 0, the call for k >= 0): the in-the-money price carries the same vol information
  buried under intrinsic value (and, for American options, early exercise).
- Duplicate quotes (same expiry, strike and, for prices, type) are averaged into the first
  such row; the others are set aside as duplicates.
"""
from __future__ import annotations

import pandas as pd

from core.quotes.chain_import import import_laid_out
from core.quotes.forwards import carry_problem
from core.quotes.from_chain import quote_set_from_chain
from core.quotes.layouts import LaidOut, map_frame, read_layout
from core.quotes.normalise import ALIASES, NUMERIC, normalise_quotes  # noqa: F401  (re-exported)
from core.quotes.quoteset import (  # noqa: F401
    K_RANGE,
    MAX_IV,
    MIN_EXPIRIES,
    MIN_QUOTES,
    T_RANGE,
    QuoteError,
    QuoteSet,
    ValidationReport,
)
from core.quotes.source import MAX_FILE_BYTES, MAX_ROWS, SourceError
from core.quotes.units import bidask_units, numeric

COLUMNS_HELP = """\
Columns (one quote per row; names case-insensitive):
  maturity   T (years, ACT/365)  or  expiry + valuation_date (YYYY-MM-DD)  or  days / dte
  moneyness  k = ln(strike/forward)  or  strike + forward
  value      iv (decimal Black vol, 0.20 = 20%; percent is detected and said)
             or  price + type (call/put) + forward [+ discount, default 1]
             or  bid/ask prices + type with call/put pairs (forward from put-call parity)
  optional   bid, ask (vols or prices, decided from the data): the mid is used, ask - bid the spread
Vendor layouts read as they come: yfinance option_chain dumps, Cboe DataShop (EOD, intraday),
Cboe's quote download, OptionMetrics IvyDB, QuantLib-style vol matrices.
Grid: T in [0.08, 2.0] years, k in [-0.45, 0.45]. Quotes within half a grid step beyond it
(T up to 2.08, |k| up to 0.478) inform the edge nodes; quotes further out are reported, not used.
Caps: 50 MiB, 200,000 rows; at least 4 usable quotes on at least 2 expiries."""


def refuse_dropped_rows(quotes) -> None:
    """``--strict``: QuoteError naming the first drop reason when the importer dropped any row."""
    if quotes.report.n_dropped:
        first = next(iter(quotes.report.dropped.items()))
        raise QuoteError(f"--strict: {quotes.report.n_dropped} row(s) dropped, first reason: {first[0]} "
                         f"({len(first[1])} row(s), first row {first[1][0]})")


def read_quotes(source, name: str | None = None, valuation_date=None, max_bytes: int = MAX_FILE_BYTES,
                max_rows: int = MAX_ROWS, spot=None, rate=None, dividend_yield=None) -> QuoteSet:
    """Read a quote file (path, bytes or file-like; CSV, Parquet or a known text layout) into a
    validated QuoteSet.

    ``name`` is used in messages and, by its suffix, to tell CSV from Parquet (Parquet is also
    recognised by its magic bytes). ``valuation_date`` (date or text, see the module doc) applies
    when the file has expiries but no quote date. ``spot``, ``rate`` (continuous, per year) and
    ``dividend_yield`` give forwards where parity cannot. Raises QuoteError (a ValueError) with a
    one-line message for a file that cannot be used.
    """
    try:
        laid, name = read_layout(source, name, max_bytes=max_bytes, max_rows=max_rows)
    except QuoteError:
        raise
    except ValueError as exc:          # SourceError and the text layouts' own
        raise QuoteError(str(exc)) from None
    return _from_laid_out(laid, name, valuation_date, spot, rate, dividend_yield)


def quotes_from_frame(df: pd.DataFrame, source: str = "quotes", valuation_date=None, spot=None, rate=None,
                      dividend_yield=None) -> QuoteSet:
    """The same as read_quotes for a table already in memory (any layout)."""
    if not isinstance(df, pd.DataFrame) or len(df.columns) == 0 or len(df) == 0:
        return normalise_quotes(df, source=source, valuation_date=valuation_date)   # its messages
    try:
        laid = map_frame(df)
    except SourceError as exc:
        raise QuoteError(f"{source}: {exc}") from None
    return _from_laid_out(laid, source, valuation_date, spot, rate, dividend_yield)


def as_quoteset(source, name: str | None = None, valuation_date=None) -> QuoteSet:
    """A QuoteSet as is; a DataFrame through ``quotes_from_frame`` (with the file's row cap); anything
    else (path, bytes, upload) through ``read_quotes``."""
    if isinstance(source, QuoteSet):
        return source
    if isinstance(source, pd.DataFrame):
        if len(source) > MAX_ROWS:   # the same cap as a file, which read_quotes applies
            raise QuoteError(f"{name or 'quotes'}: {len(source):,} rows; at most {MAX_ROWS:,} are accepted")
        return quotes_from_frame(source, source=name or "quotes", valuation_date=valuation_date)
    return read_quotes(source, name=name, valuation_date=valuation_date)


def _from_laid_out(laid: LaidOut, name: str, valuation_date, spot, rate, dividend_yield) -> QuoteSet:
    if laid.layout == "generic" and laid.raw is not None and not _needs_chain_path(laid):
        # the chain importer checks the options itself; here they are refused even though the
        # file's own forwards win
        problem = carry_problem(spot, rate, dividend_yield)
        if problem:
            raise QuoteError(f"{name}: {problem}")
        return normalise_quotes(laid.raw, source=name, valuation_date=valuation_date)
    chain = import_laid_out(laid, name, valuation_date, spot, rate, dividend_yield)
    return quote_set_from_chain(chain)


def _needs_chain_path(laid: LaidOut) -> bool:
    """Whether a generic-layout table needs what only the chain importer does: columns the plain
    reader does not know (days, spot, rate, vendor vol names), prices without a forward (parity),
    or bid/ask prices beside a vol column (the units decided from the data)."""
    old = {ALIASES[str(c).strip().lower()] for c in laid.raw.columns if str(c).strip().lower() in ALIASES}
    new = set(laid.frame.columns) - {"row"}
    if new - old:
        return True
    prices = "price" in new or "type" in new
    if prices and "forward" not in new and "k" not in new:
        return True
    if {"iv", "bid", "ask", "type"} <= new:
        f = laid.frame
        vals = [numeric(f[c])[0] for c in ("bid", "ask", "iv")]
        try:
            units, _ = bidask_units(*vals, True, "price" in new, False)
        except ValueError:
            return True
        return units == "price"
    return False
