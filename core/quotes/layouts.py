"""Vendor layouts of option chains: detect which one a file has and map it to canonical columns.

Canonical columns (any subset; the importer decides what they mean together):

==================  ================================================================================
row                 1-based data row of the input the quote came from
valuation_date      quote date (text or Timestamp)        expiry       expiry date (text or Timestamp)
T                   years to expiry                       days         days to expiry (T = days / 365)
strike, k           strike (price units); k = ln(K / F)   type         call / put (any vendor spelling)
bid, ask, price     quotes (prices or vols: the importer decides from the data and says which)
iv                  a vol that is the quote (vol files)   iv_vendor    the vendor's vol, for comparison
forward, discount   per row, when the file gives them     spot, rate, dividend_yield: for carry forwards
root                option root (SPX / SPXW): one per expiry is kept
==================  ================================================================================

Layouts: ``cboe_quotedata`` and ``quantlib_matrix`` (text, see core.quotes.vendor_text),
``yfinance`` (option_chain dumps, and the Yahoo Finance web page's options table: ``Contract Name``,
``Last Trade Date``, ``Strike``, ...), ``cboe_datashop_eod``, ``cboe_datashop_intraday``,
``ivydb`` (OptionMetrics), and ``generic`` (our own format and common aliases).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .source import MAX_FILE_BYTES, MAX_ROWS, SourceError, decode_text, is_parquet, source_bytes
from .vendor_text import (
    looks_like_cboe_quotedata,
    looks_like_quantlib_matrix,
    read_cboe_quotedata,
    read_quantlib_matrix,
)


GENERIC_ALIASES = {
    "t": "T", "tau": "T", "t_years": "T", "years": "T",
    "dte": "days", "days": "days", "t_days": "days", "days_to_expiry": "days", "days_to_expiration": "days",
    "expiry": "expiry", "expiration": "expiry", "expiration_date": "expiry", "maturity": "expiry",
    "exdate": "expiry",
    "valuation_date": "valuation_date", "quote_date": "valuation_date", "trade_date": "valuation_date",
    "as_of": "valuation_date", "asof": "valuation_date",
    "k": "k", "log_moneyness": "k", "strike": "strike",
    "forward": "forward", "forward_price": "forward", "discount": "discount", "discount_factor": "discount",
    "spot": "spot", "underlying_price": "spot", "stockprice": "spot", "rate": "rate", "risk_free_rate": "rate",
    "dividend_yield": "dividend_yield", "div_yield": "dividend_yield",
    "iv": "iv", "implied_vol": "iv", "implied_volatility": "iv", "impliedvolatility": "iv",
    "price": "price", "mid": "price", "type": "type", "option_type": "type", "cp": "type",
    "call_put": "type", "cp_flag": "type", "putcall": "type", "bid": "bid", "ask": "ask", "root": "root",
    "strike_price": "strike",   # in price units here: IvyDB's thousandths are detected as that layout first
}


@dataclass
class LaidOut:
    """A chain in canonical columns: the layout's name, the frame, what was assumed (notes) and
    the input columns not read."""

    layout: str
    frame: pd.DataFrame
    notes: list = field(default_factory=list)
    ignored: list = field(default_factory=list)
    raw: pd.DataFrame | None = None     # the table as read, for table layouts


def _read_table(text: str, name: str, max_rows: int) -> pd.DataFrame:
    header = next(line for line in text.splitlines() if line.strip())
    sep = max([",", ";", "\t", "|"], key=header.count)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep if header.count(sep) else ",", dtype=str,
                         skipinitialspace=True, nrows=max_rows + 1, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise SourceError(f"{name} is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise SourceError(f"cannot parse {name} as CSV: {' '.join(str(exc).split())}") from None
    if len(df) > max_rows:
        raise SourceError(f"{name} has more than {max_rows:,} rows, the cap on a quote file")
    return df


def _read_parquet(data: bytes, name: str, max_rows: int) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(io.BytesIO(data))
        if handle.metadata.num_rows > max_rows:
            raise SourceError(f"{name} has {handle.metadata.num_rows:,} rows; the cap is {max_rows:,}")
        table = handle.read()
    except SourceError:
        raise
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise SourceError(f"cannot read {name} as Parquet: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    try:
        return table.to_pandas()
    except Exception as exc:
        raise SourceError(f"cannot convert {name} to a table: {' '.join(str(exc).split())}") from None


def read_layout(source, name: str | None = None, max_bytes: int = MAX_FILE_BYTES, max_rows: int = MAX_ROWS) -> tuple:
    """(LaidOut, display name) from a path, bytes or upload in any layout this module knows."""
    data, name = source_bytes(source, name, max_bytes)
    if len(data) == 0 or not data.strip():
        raise SourceError(f"{name} is empty")
    if is_parquet(data, name):
        return map_frame(_read_parquet(data, name, max_rows)), name
    text = decode_text(data, name)
    lines = text.lstrip("\r\n").splitlines()[:400]
    for layout, looks, reader in (("cboe_quotedata", looks_like_cboe_quotedata, read_cboe_quotedata),
                                  ("quantlib_matrix", looks_like_quantlib_matrix, read_quantlib_matrix)):
        if looks(lines):
            try:
                frame, notes = reader(text)
            except (ValueError, KeyError, IndexError) as exc:
                raise SourceError(f"{name}: cannot read it as a {layout} file: {' '.join(str(exc).split())}") from None
            return LaidOut(layout, frame, notes), name
    return map_frame(_read_table(text, name, max_rows)), name


def detect_layout(columns) -> str:
    """The layout name for a table with these column names (case-insensitive)."""
    cols = {str(c).strip().lower() for c in columns}
    if {"contractsymbol", "contractname"} & {_squash(c) for c in cols}:
        return "yfinance"
    if {"cp_flag", "strike_price"} <= cols or {"best_bid", "best_offer"} <= cols:
        return "ivydb"
    if "quote_datetime" in cols:
        return "cboe_datashop_intraday"
    if "quote_date" in cols and (any(c.endswith(("_1545", "_eod")) for c in cols)
                                 or {"option_type", "underlying_bid"} <= cols
                                 or {"option_type", "active_underlying_price"} <= cols):
        return "cboe_datashop_eod"
    return "generic"


def map_frame(df: pd.DataFrame) -> LaidOut:
    """Map a table in any known layout to canonical columns (see the module doc)."""
    if not isinstance(df, pd.DataFrame):
        raise SourceError(f"quotes must be a table (pandas DataFrame), not {type(df).__name__}")
    df = df.rename(columns=lambda c: str(c).strip()).reset_index(drop=True)
    layout = detect_layout(df.columns)
    mapper = {"yfinance": _yfinance, "ivydb": _ivydb, "cboe_datashop_intraday": _cboe_datashop,
              "cboe_datashop_eod": _cboe_datashop, "generic": _generic}[layout]
    try:
        laid = mapper(df)
    except KeyError as exc:
        raise SourceError(f"{layout} layout without its {exc.args[0]!r} column") from None
    laid.layout, laid.raw = layout, df
    if "row" not in laid.frame:
        laid.frame.insert(0, "row", np.arange(1, len(df) + 1))
    return laid


def _lower(df: pd.DataFrame) -> dict:
    return {c.lower(): c for c in df.columns}


def _squash(name) -> str:
    """A column name lower-cased with everything but letters and digits removed: yfinance's
    ``impliedVolatility`` and the web table's ``Implied Volatility`` are the same key."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _generic(df: pd.DataFrame) -> LaidOut:
    """Our own columns and common aliases, matched without case, spaces or punctuation (so
    "Expiration Date", "Implied Volatility" and "Option Type" of a broker's export are read)."""
    out, seen, ignored = {}, {}, []
    aliases = {_squash(name): canon for name, canon in GENERIC_ALIASES.items()}
    for col in df.columns:
        canon = aliases.get(_squash(col))
        if canon is None:
            ignored.append(col)
            continue
        if canon in seen:
            raise SourceError(f"columns {seen[canon]!r} and {col!r} both give {canon}; keep one")
        seen[canon] = col
        out[canon] = df[col]
    return LaidOut("generic", pd.DataFrame(out), [], ignored)


_OCC = re.compile(r"^([A-Z.]+?)(\d{6})([CP])(\d{8})$")


_US_STAMP = re.compile(r"^\s*(\d{1,2}/\d{1,2}/\d{4})\s+\d{1,2}:\d{2}\s*[AP]M\b", re.IGNORECASE)


def _yahoo_web(df: pd.DataFrame, c: dict, notes: list) -> pd.DataFrame:
    """The Yahoo Finance web page's options table as copied out, in yfinance's terms: strikes and
    prices with thousands separators ("5,000.00"), "-" for no bid or ask, vols as "25.30%", and
    US trade stamps ("3/14/2025 3:59 PM EDT", month first on the US site)."""
    df = df.copy()
    for key in ("strike", "bid", "ask", "lastprice"):
        if key in c:
            text = df[c[key]].astype("string").str.strip().str.replace(",", "", regex=False)
            df[c[key]] = text.mask(text.isin(["-", "--"]), "")
    if "impliedvolatility" in c:
        text = df[c["impliedvolatility"]].astype("string").str.strip()
        pct = text.str.endswith("%", na=False)
        vol = pd.to_numeric(text.str.rstrip("%").str.replace(",", "", regex=False), errors="coerce")
        df[c["impliedvolatility"]] = vol.where(~pct, vol / 100.0)
    if "lasttradedate" in c:
        day = df[c["lasttradedate"]].astype("string").str.extract(_US_STAMP)[0]
        if day.notna().any():
            df[c["lasttradedate"]] = pd.to_datetime(day, format="%m/%d/%Y", errors="coerce").dt.strftime("%Y-%m-%d")
            notes.append("Last Trade Date read as the US site writes it (month/day/year)")
    notes.append("Yahoo Finance web table: 'Contract Name' is the OCC symbol; '-' is no quote")
    return df


def _yfinance(df: pd.DataFrame) -> LaidOut:
    """yfinance option_chain frames (calls and puts, stacked), or the Yahoo Finance web table: type
    and expiry from their columns or from the OCC contract symbol (ROOT YYMMDD C|P strike x 1000)."""
    c = {_squash(col): col for col in df.columns}
    notes = ["yfinance option_chain dump: lastPrice (a last trade, not a quote) is not used; "
             "impliedVolatility is kept for comparison only"]
    if "contractsymbol" not in c:
        c["contractsymbol"] = c["contractname"]
        df = _yahoo_web(df, c, notes)
    occ = df[c["contractsymbol"]].astype(str).str.strip().str.extract(_OCC)
    out = pd.DataFrame({"root": occ[0], "bid": df.get(c.get("bid")), "ask": df.get(c.get("ask"))})
    out["strike"] = df[c["strike"]] if "strike" in c else pd.to_numeric(occ[3], errors="coerce") / 1000.0
    if "type" in c:
        out["type"] = df[c["type"]]
    else:
        out["type"] = occ[2].map({"C": "call", "P": "put"})
        notes.append("option type read from contractSymbol")
    expiry_col = c.get("expiration") or c.get("expiry")
    if expiry_col:
        out["expiry"] = df[expiry_col]
    else:
        out["expiry"] = pd.to_datetime("20" + occ[1], format="%Y%m%d", errors="coerce")
        notes.append("expiry read from contractSymbol")
    if "impliedvolatility" in c:
        out["iv_vendor"] = df[c["impliedvolatility"]]
    for name in ("stockprice", "underlyingprice", "spot"):
        if name in c:
            out["spot"] = df[c[name]]
            break
    _yfinance_valuation(df, c, out, notes)
    used = {c.get(x) for x in ("contractsymbol", "bid", "ask", "strike", "type", "expiration", "expiry",
                               "impliedvolatility", "stockprice", "underlyingprice", "spot", "date",
                               "lasttradedate")}
    return LaidOut("yfinance", out, notes, [x for x in df.columns if x not in used])


def _yfinance_valuation(df: pd.DataFrame, c: dict, out: pd.DataFrame, notes: list) -> None:
    """A yfinance dump has no quote date: the day of the latest trade is the close the quotes
    belong to; a download-date column later than that (a weekend pull) is not the quote date."""
    from .dates import parse_date_column

    last = None
    if "lasttradedate" in c:
        stamps, _, _ = parse_date_column(df[c["lasttradedate"]], "lastTradeDate")
        if stamps.notna().any():
            last = stamps.max().normalize()
    given = None
    if "date" in c:
        stamps, _, _ = parse_date_column(df[c["date"]], "date")
        given = stamps.max().normalize() if stamps.notna().any() else None
    if last is not None and (given is None or given > last):
        out["valuation_date"] = last
        extra = f" (the date column says {given:%Y-%m-%d}, a later download day)" if given is not None else ""
        notes.append(f"valuation date {last:%Y-%m-%d}: the day of the latest lastTradeDate{extra}")
    elif given is not None:
        out["valuation_date"] = df[c["date"]]


def _cboe_datashop(df: pd.DataFrame) -> LaidOut:
    """Cboe DataShop option files. End of day: the 15:45 snapshot (bid_1545, ask_1545, with the
    underlying and the vendor vol taken at the same time) where present, else bid_eod/ask_eod.
    Intraday: one snapshot per quote_datetime; the latest is kept by the importer."""
    c = _lower(df)
    notes, out = [], pd.DataFrame(index=df.index)
    intraday = "quote_datetime" in c
    suffix = "" if intraday else ("_1545" if "bid_1545" in c else "_eod" if "bid_eod" in c else "")
    if intraday:
        out["snapshot"] = df[c["quote_datetime"]]
        notes.append("Cboe DataShop intraday: the latest quote_datetime snapshot is used; T runs from its time")
    else:
        out["valuation_date"] = df[c["quote_date"]]
        snapshot = {"_1545": "the 15:45 snapshot", "_eod": "the end-of-day snapshot", "": "its bid and ask"}[suffix]
        notes.append(f"Cboe DataShop end of day: quotes from {snapshot}")
    out["expiry"] = df[c["expiration"]]
    out["strike"] = df[c["strike"]]
    out["type"] = df[c["option_type"]]
    out["bid"], out["ask"] = df[c["bid" + suffix]], df[c["ask" + suffix]]
    if "root" in c:
        out["root"] = df[c["root"]]
    vendor = c.get("implied_volatility" + suffix)
    if vendor:
        out["iv_vendor"] = df[vendor]
        notes.append(f"{vendor} kept for comparison only")
    active = c.get("active_underlying_price" + suffix)
    ub, ua = c.get("underlying_bid" + suffix), c.get("underlying_ask" + suffix)
    if active:
        out["spot"] = df[active]
    elif ub and ua:
        out["spot"] = 0.5 * (pd.to_numeric(df[ub], errors="coerce") + pd.to_numeric(df[ua], errors="coerce"))
    used = {c[x] for x in c if x in {"quote_datetime", "quote_date", "expiration", "strike", "option_type",
                                    "root", "bid" + suffix, "ask" + suffix}}
    used |= {v for v in (vendor, active, ub, ua) if v}
    return LaidOut("", out, notes, [x for x in df.columns if x not in used])


def _ivydb(df: pd.DataFrame) -> LaidOut:
    """OptionMetrics IvyDB option prices: strike_price in thousandths, cp_flag C/P, best_bid and
    best_offer, impl_volatility (-99.99 = none; kept for comparison), forward_price per expiry."""
    c = _lower(df)
    out = pd.DataFrame({"valuation_date": df[c["date"]], "expiry": df[c["exdate"]], "type": df[c["cp_flag"]],
                        "strike": pd.to_numeric(df[c["strike_price"]], errors="coerce") / 1000.0,
                        "bid": df[c["best_bid"]], "ask": df[c["best_offer"]]})
    notes = ["OptionMetrics IvyDB: strike_price / 1000 is the strike"]
    if "impl_volatility" in c:
        vendor = pd.to_numeric(df[c["impl_volatility"]], errors="coerce")
        out["iv_vendor"] = vendor.where(vendor > 0)
        notes.append("impl_volatility kept for comparison only (-99.99 read as none)")
    if "forward_price" in c:
        out["forward"] = df[c["forward_price"]]
    if "root" in c:
        out["root"] = df[c["root"]]
    used = {c.get(x) for x in ("date", "exdate", "cp_flag", "strike_price", "best_bid", "best_offer",
                               "impl_volatility", "forward_price", "root")}
    return LaidOut("ivydb", out, notes, [x for x in df.columns if x not in used])
