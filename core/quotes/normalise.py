"""The generic layout (one quote per row, our column names) into a QuoteSet; see core.quotes.read.

Steps, one function each: columns -> value kind -> numbers -> maturity -> moneyness -> the quote
(mid of bid/ask, else the value column) -> vols (as given, or Black-inverted prices) ->
duplicates and call/put pairs -> statuses, the grid's reach and the report.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.quotes.dates import far_dates, parse_date_column, parse_one_date, year_fraction
from core.quotes.forwards import MAX_CARRY, MIN_RATE_SPAN
from core.quotes.quoteset import MAX_IV, MIN_IV, QuoteError, QuoteSet, ValidationReport, check_enough, mark_outside
from core.quotes.units import bidask_units, column_numbers, vol_scale

ALIASES = {
    "t": "T", "tau": "T", "expiry": "expiry", "expiration": "expiry", "maturity": "expiry",
    "valuation_date": "valuation_date", "quote_date": "valuation_date", "k": "k",
    "log_moneyness": "k", "strike": "strike", "forward": "forward", "iv": "iv",
    "implied_vol": "iv", "price": "price", "type": "type", "option_type": "type", "cp": "type",
    "call_put": "type", "discount": "discount", "bid": "bid", "ask": "ask",
}
NUMERIC = ("T", "k", "strike", "forward", "iv", "price", "discount", "bid", "ask")
_PRICE_STATUS = {3: "price below intrinsic value (no-arbitrage lower bound)",
                 4: "price at intrinsic value (no time value, no implied vol)",
                 5: "price above the no-arbitrage upper bound (forward or strike)",
                 6: "price at the no-arbitrage upper bound (no finite implied vol)"}


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


@dataclass
class _Ctx:
    """One normalisation: the renamed input, what it has, row reasons, warnings, the output table."""

    df: pd.DataFrame
    source: str
    rows: _Rows
    out: pd.DataFrame
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    num: dict = field(default_factory=dict)

    @property
    def have(self) -> set:
        return set(self.df.columns)

    @property
    def n(self) -> int:
        return len(self.df)


def normalise_quotes(df: pd.DataFrame, source: str = "quotes", valuation_date=None) -> QuoteSet:
    """Validate an in-memory quote table (raw file columns) into a QuoteSet; see core.quotes.read."""
    _frame_checks(df, source)
    mapping, ignored = _check_columns(df, source)
    df = df[list(mapping)].rename(columns=mapping).reset_index(drop=True)
    c = _Ctx(df=df, source=source, rows=_Rows(len(df)), out=pd.DataFrame({"row": np.arange(1, len(df) + 1)}))
    kind = _value_kind(c)
    c.num = {col: _numeric(c, col) for col in NUMERIC if col in c.have}
    T, from_dates = _maturity(c, valuation_date)
    k, strike, forward = _moneyness(c)
    c.out["T"], c.out["k"] = T, k
    if strike is not None:
        c.out["strike"] = strike
    if forward is not None:
        c.out["forward"] = forward
    value, has_ba = _quote_value(c, kind)
    if kind == "iv":
        iv, iv_bid, iv_ask = _iv_values(c, value, has_ba)
    else:
        iv, iv_bid, iv_ask = _price_values(c, value, has_ba, T, strike, forward)
    for col in ("bid", "ask"):
        if col in c.num:
            c.out[col] = c.num[col]
    c.out["iv"], c.out["iv_bid"], c.out["iv_ask"] = iv, iv_bid, iv_ask
    c.out["spread_iv"] = iv_ask - iv_bid
    c.out["n_merged"] = 1
    _merge_duplicates(c.out, ~c.rows.bad, c.rows, kind)
    return _finish(c, kind, T, k, sorted(set(mapping.values()), key=str.lower), ignored, from_dates)


def _frame_checks(df, source: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise QuoteError(f"quotes must be a table (pandas DataFrame), not {type(df).__name__}")
    if len(df.columns) == 0:
        raise QuoteError(f"{source} has no columns")
    if len(df) == 0:
        raise QuoteError(f"{source} has a header but no data rows")


def _check_columns(df: pd.DataFrame, name: str) -> tuple:
    """Map the file's columns to canonical names; QuoteError naming what is missing."""
    mapping, seen = {}, {}
    for col in df.columns:
        canon = ALIASES.get(str(col).strip().lower())
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
    if not ({"iv", "price"} & have or {"bid", "ask"} <= have):
        raise QuoteError(f"{name}: no quote column; need iv, or price with type and forward, "
                         f"or bid and ask (found: {found})")
    return mapping, [str(col) for col in df.columns if col not in mapping]


def _value_kind(c: _Ctx) -> str:
    """iv wins over price when both are given; a type column without iv means prices."""
    kind = "iv" if "iv" in c.have else "price" if ({"price", "type"} & c.have) else "iv"
    if kind == "iv" and "price" in c.have:
        c.warnings.append("both iv and price given: iv used, price ignored")
    if kind == "price":
        for col in ("type", "forward"):
            if col not in c.have:
                raise QuoteError(f"{c.source}: price quotes need a {col} column")
    return kind


def _numeric(c: _Ctx, col: str) -> np.ndarray:
    """Column as float64; non-numeric cells are marked (and become NaN), with a hint for 0,25 and 25%."""
    values, bad, hint = column_numbers(c.df[col], col, c.notes)
    c.rows.mark(bad, f"non-numeric value in {col}{hint}")
    return values


def _dates(c: _Ctx, col: str) -> pd.Series:
    parsed, bad, problem = parse_date_column(c.df[col], col)
    if problem:
        raise QuoteError(f"{c.source}: column {col} {problem}")
    c.rows.mark(far_dates(c.df[col], bad), f"{col} after 2262 (past the last date a timestamp holds)")
    c.rows.mark(bad, f"{col} is not an ISO date (YYYY-MM-DD)")
    c.rows.mark(parsed.isna().to_numpy(), f"missing {col}")
    return parsed


def _maturity(c: _Ctx, valuation_date) -> tuple:
    """(T in years, whether it came from dates)."""
    if "T" in c.have:
        if "expiry" in c.have:
            c.warnings.append("both T and expiry given: T used")
        T = c.num["T"]
        c.rows.mark(np.isnan(T), "missing T")
        c.rows.mark(np.isinf(T), "infinite T")
        c.rows.mark(T <= 0, "T <= 0")
        return T, False
    expiry = _dates(c, "expiry")
    vdate = _valuation_date(c, valuation_date)
    T = year_fraction(expiry, vdate)
    c.out["expiry"] = expiry.dt.strftime("%Y-%m-%d")
    c.out["valuation_date"] = vdate.strftime("%Y-%m-%d")
    before = T <= 0
    if before.all():
        raise QuoteError(f"{c.source}: every expiry is on or before the valuation date "
                         f"{vdate:%Y-%m-%d}; are expiry and valuation_date swapped?")
    c.rows.mark(before, "expiry on or before the valuation date")
    return T, True


def _valuation_date(c: _Ctx, valuation_date) -> pd.Timestamp:
    if "valuation_date" in c.have:
        distinct = _dates(c, "valuation_date").dropna().unique()
        if len(distinct) > 1:
            raise QuoteError(f"{c.source}: valuation_date has {len(distinct)} different values; "
                             "one file holds one surface (one valuation date)")
        if len(distinct) == 0:
            raise QuoteError(f"{c.source}: valuation_date holds no valid ISO date (YYYY-MM-DD)")
        return pd.Timestamp(distinct[0])
    if valuation_date is not None:
        try:
            return parse_one_date(valuation_date)
        except ValueError as exc:
            raise QuoteError(str(exc)) from None
    raise QuoteError(f"{c.source}: expiry given without a valuation date; add a valuation_date column "
                     "or pass the valuation date (CLI: --valuation-date YYYY-MM-DD)")


def _moneyness(c: _Ctx) -> tuple:
    """(k, strike or None, forward or None); strike from k and forward when both are given."""
    rows, forward = c.rows, c.num.get("forward")
    if forward is not None:
        rows.mark(np.isinf(forward), "infinite forward")
        rows.mark(forward <= 0, "forward <= 0")
        forward = np.where(forward > 0, forward, np.nan)
    if "k" in c.have:
        k = c.num["k"]
        if "strike" in c.have:
            c.warnings.append("both k and strike given: k used")
        rows.mark(np.isnan(k), "missing k")
        rows.mark(np.isinf(k), "infinite k")
        return k, (forward * np.exp(k) if forward is not None else None), forward
    if forward is None:
        raise QuoteError(f"{c.source}: strike given without a forward column; add forward (per expiry) or give k")
    strike = c.num["strike"]
    rows.mark(np.isnan(strike), "missing strike")
    rows.mark(np.isinf(strike), "infinite strike")
    rows.mark(strike <= 0, "strike <= 0")
    rows.mark(np.isnan(forward), "missing forward")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        k = np.log(strike / forward)
    rows.mark(~np.isfinite(k), "strike / forward out of range")
    return k, strike, forward


def _quote_value(c: _Ctx, kind: str) -> tuple:
    """(the quote per row: bid/ask mid where both are given, else the value column; has_ba mask)."""
    value_col = "iv" if kind == "iv" else "price"
    bid, ask = c.num.get("bid"), c.num.get("ask")
    value = c.num.get(value_col, np.full(c.n, np.nan)).copy()
    has_ba = np.zeros(c.n, bool)
    if bid is not None and ask is not None:
        _state_units(c, kind, bid, ask)
        has_ba = np.isfinite(bid) & np.isfinite(ask)
        crossed = has_ba & (bid > ask)
        c.rows.mark(crossed, "bid above ask")
        c.rows.mark(has_ba & (bid < 0), "negative bid")
        value = np.where(has_ba & ~crossed, 0.5 * (bid + ask), value)
    elif (bid is None) != (ask is None):
        c.warnings.append(f"only {'bid' if bid is not None else 'ask'} given: it is ignored (a mid needs both)")
    label = value_col if value_col in c.have else "bid/ask"
    c.rows.mark(np.isnan(value), f"missing {label}")
    c.rows.mark(np.isinf(value), f"infinite {label}")
    return value, has_ba


def _state_units(c: _Ctx, kind: str, bid: np.ndarray, ask: np.ndarray) -> None:
    """Say what bid/ask were read as (read.py routes the files where the data say otherwise)."""
    if kind == "price":
        c.notes.append("bid/ask are option prices (quotes with a type column)")
        return
    try:
        _, note = bidask_units(bid, ask, c.num.get("iv"), has_type=False, has_price=False, layout_prices=False)
        c.notes.append(note)
    except ValueError as exc:       # without a type column they can only be vols: read so, and warn why
        c.warnings.append(f"bid/ask read as vols, but {exc}")


def _iv_values(c: _Ctx, value: np.ndarray, has_ba: np.ndarray) -> tuple:
    """Vol quotes: percent vols (median 1 or more) are read as percent and said so."""
    good = ~c.rows.bad
    scale, note = vol_scale(value[good], "iv" if "iv" in c.have else "bid/ask",
                            np.asarray(c.out["k"], float)[good], np.asarray(c.out["T"], float)[good])
    if note:
        c.notes.append(note)
    iv = value * scale
    c.rows.mark(iv <= 0, "iv <= 0")
    c.rows.mark(iv < MIN_IV, f"iv below {MIN_IV:g} (not a market vol)")
    c.rows.mark(iv > MAX_IV, f"iv above {MAX_IV:g} (percentages? give 0.20 for 20 %)")
    c.out["iv_input"] = value
    if "bid" in c.num and "ask" in c.num:
        return iv, np.where(has_ba, c.num["bid"] * scale, np.nan), np.where(has_ba, c.num["ask"] * scale, np.nan)
    return iv, np.full(c.n, np.nan), np.full(c.n, np.nan)


def _price_values(c: _Ctx, value, has_ba, T, strike, forward) -> tuple:
    """Price quotes inverted to Black vols (mid, bid, ask); bound violations named."""
    from core.engine.black import implied_vol

    rows, n = c.rows, c.n
    is_call = _option_type(c)
    discount = _discount(c)
    with np.errstate(all="ignore"):
        # a discount of 1.5 at half a year is a rate of -81 %: a wrong column, not a market. Over
        # at least a week: a 0DTE option's discount runs to its premium's settlement, a day or a
        # weekend past an expiry minutes away (a fair 5 % rate over 30 minutes read as 240 %)
        rate = -np.log(discount) / np.maximum(T, MIN_RATE_SPAN)
    rows.mark(np.isfinite(rate) & (np.abs(rate) > MAX_CARRY),
              f"discount implies a rate beyond {100 * MAX_CARRY:g} % a year")
    iv, iv_bid, iv_ask = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    ok = ~rows.bad
    if ok.any():
        args = (forward[ok], strike[ok], T[ok], is_call[ok], discount[ok])
        with np.errstate(all="ignore"):
            iv[ok], status = implied_vol(value[ok], *args, return_status=True)
        code = np.zeros(n, dtype=int)
        code[ok] = status
        for cd, label in _PRICE_STATUS.items():
            rows.mark(code == cd, label)
        rows.mark(ok & ~np.isfinite(iv), "price has no implied vol")
        both = ok & has_ba
        if both.any() and "bid" in c.num and "ask" in c.num:
            args = (forward[both], strike[both], T[both], is_call[both], discount[both])
            with np.errstate(all="ignore"):
                iv_bid[both] = implied_vol(c.num["bid"][both], *args)
                iv_ask[both] = implied_vol(c.num["ask"][both], *args)
    rows.mark(iv > MAX_IV, f"implied vol above {MAX_IV:g}")
    # as for vols given as such: a price of 1e-12 at the money is a 4e-14 vol, no market's
    rows.mark(iv < MIN_IV, f"implied vol below {MIN_IV:g} (not a market vol)")
    c.out["type"] = np.where(is_call, "call", "put")
    c.out["discount"] = discount
    c.out["price_input"] = value
    return iv, iv_bid, iv_ask


def _option_type(c: _Ctx) -> np.ndarray:
    text = c.df["type"].astype("string").str.strip().str.lower().fillna("")
    is_call = text.isin(["c", "call", "calls"]).to_numpy()
    is_put = text.isin(["p", "put", "puts"]).to_numpy()
    c.rows.mark((text == "").to_numpy(), "missing type")
    c.rows.mark(~(is_call | is_put), "type is not call or put")
    return is_call


def _discount(c: _Ctx) -> np.ndarray:
    discount = c.num.get("discount")
    if discount is None:
        c.warnings.append("no discount column: prices taken as undiscounted (discount = 1)")
        return np.ones(c.n)
    c.rows.mark(np.isnan(discount), "missing discount")
    c.rows.mark(np.isinf(discount), "infinite discount")
    c.rows.mark((discount <= 0) | (discount > 2), "discount outside (0, 2]")
    return discount


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
    dup = key.duplicated(["T", "k"], keep=False)
    if not dup.any():
        return
    iv = out["iv"].to_numpy()
    merged_iv, n_merged = iv.copy(), out["n_merged"].to_numpy().copy()
    marker = np.zeros(rows.n, bool)
    for _, group in key[dup].groupby(["T", "k"]):
        members = group["i"].to_numpy()
        merged_iv[members[0]] = iv[members].mean()
        n_merged[members[0]] = members.size
        marker[members[1:]] = True
    rows.mark(marker, "duplicate (averaged into the first row at the same expiry and strike)", benign=True)
    out["iv"], out["n_merged"] = merged_iv, n_merged


def _finish(c: _Ctx, kind: str, T, k, columns_used: list, ignored: list, from_dates: bool) -> QuoteSet:
    """Statuses (used / outside / skipped / dropped), reasons, warnings, and the report."""
    rows, n = c.rows, c.n
    good = ~rows.bad
    skipped_mask = np.isin(rows.reason, list(rows.benign)) if rows.benign else np.zeros(n, bool)
    status = np.where(good, "used", np.where(skipped_mask, "skipped", "dropped")).astype(object)
    reason = rows.reason.copy()
    row_numbers = c.out["row"].to_numpy()
    outside = mark_outside(T, k, row_numbers, status, reason)
    c.out["status"], c.out["reason"] = status, reason
    by_reason = {r: row_numbers[rows.reason == r].tolist() for r in rows.order}
    dropped = {r: v for r, v in by_reason.items() if v and r not in rows.benign}
    skipped = {r: v for r, v in by_reason.items() if v and r in rows.benign}
    used = status == "used"
    finite = good & np.isfinite(T)
    # a large T from a T column is likely days; from dates it is a far expiry, said as such
    if finite.any() and np.median(T[finite]) > 5:
        c.warnings.append(f"median T is {np.median(T[finite]):.3g}: " + (
            "expiries lie far beyond the valuation date" if from_dates else "T is in years (days / 365)"))
    iv = c.out["iv"].to_numpy()
    if kind == "iv" and used.any() and np.median(iv[used]) > 1.5:
        c.warnings.append(f"median iv is {np.median(iv[used]):.2f}: are these percentages? (0.20 = 20 %)")
    report = ValidationReport(source=c.source, kind=kind, n_rows=n, n_used=int(used.sum()), dropped=dropped,
                              outside=outside, skipped=skipped, warnings=c.warnings, columns_used=columns_used,
                              columns_ignored=ignored,
                              n_expiries=int(np.unique(np.round(T[used], 9)).size) if used.any() else 0,
                              notes=c.notes)
    check_enough(report, T[used | (status == "outside")], c.source)
    return QuoteSet(table=c.out, report=report)
