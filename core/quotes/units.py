"""What the numbers in a chain mean: numeric cells, percent vols, bid/ask in prices or in vols.

Every decision here is stated (a note in the import report), never silent:
- ``numeric``: a column as float64; cells that are not numbers are reported by the caller with a
  hint for the usual causes (a decimal comma ``0,25``, a percent sign ``25%``).
- ``percent_signed``: a vol column (or bid/ask) whose every cell ends in ``%`` is read as percent,
  and said.
- ``vol_scale``: a vol column whose median is PERCENT_SURE or more is read as percent (500 %
  vols across a whole chain do not occur). A median between 1 and PERCENT_SURE is either percent
  (a low-vol chain at 1 .. 5 %) or decimal (a chain at 100 .. 500 %: meme and biotech names,
  short-dated crypto proxies). Where the strikes are known the data decide: listed strikes reach a
  few standard moves iv sqrt(T) from the money, so under the wrong reading they sit 100 times
  too far out (percent read for decimal) or within a hundredth of a move (decimal for percent).
  Decimal when 90 % of |k| / (iv sqrt(T)) read as decimal exceed Z_DECIMAL (percent would put
  them beyond 100 Z_DECIMAL moves); percent otherwise, and without strikes.
- ``bidask_units``: when a vol column sits beside bid/ask, the data decide: vol units if the vol
  lies inside [bid, ask] on most rows, price units otherwise (given an option type to price with).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

PERCENT_MEDIAN = 1.0     # median vol at or above this may be percent (below: decimal) ...
PERCENT_SURE = 5.0       # ... and at or above this is percent
Z_DECIMAL = 0.2          # 90th percentile of |k| / (iv sqrt T) (iv as written) above this: decimal
INSIDE_SHARE = 0.5       # share of rows with bid <= vol <= ask for bid/ask to be vols


def numeric(values) -> tuple:
    """(float64 array, bad mask, hint) for one column; ``bad`` marks non-empty non-numbers and
    ``hint`` names a likely cause ('' when none is recognised)."""
    series = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_bool_dtype(series):
        return np.full(len(series), np.nan), np.ones(len(series), bool), " (true/false, not a number)"
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(series), bool), ""
    text = series.astype("string").str.strip()
    out = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    given = (text.notna() & (text != "")).to_numpy()
    bad = given & np.isnan(out)
    hint = ""
    if bad.any():
        sample = text[bad].iloc[0]
        if "%" in sample:
            hint = f" (e.g. {sample!r}: give 0.25 for 25 %, without the percent sign)"
        elif "," in sample:
            hint = f" (e.g. {sample!r}: a decimal comma; use a point, 0.25)"
    return out, bad, hint


# the columns whose "25.3%" cells are read as percent vols (a price is never written with a percent sign)
PERCENT_COLUMNS = ("iv", "iv_vendor", "bid", "ask")


def percent_signed(values, column: str) -> tuple:
    """(values, note): a vol column written with percent signs ("25.30%", as broker and web exports
    do) as numbers divided by 100, and a note saying so; anything else as given and None. Only
    when every non-empty cell carries the sign: a column mixing 25% and 0.25 is left for
    ``numeric`` to report."""
    series = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series, None
    text = series.astype("string").str.strip()
    given = text.notna() & (text != "")
    if not given.any() or not text[given].str.endswith("%").all():
        return series, None
    out = pd.to_numeric(text.str.rstrip("%").str.strip(), errors="coerce") / 100.0
    # a cell that still is no number stays text, so ``numeric`` reports it as before
    return out.astype(object).where(out.notna() | ~given, text), f"{column} written with percent signs: read as percent vols"


def column_numbers(values, column: str, notes: list) -> tuple:
    """``numeric`` of a file's column, a percent-signed vol or bid/ask column (PERCENT_COLUMNS) read
    as percent first, its note appended to ``notes``: what both readers do with each number column."""
    if column in PERCENT_COLUMNS:
        values, note = percent_signed(values, column)
        notes += [note] if note else []
    return numeric(values)


def vol_scale(values: np.ndarray, column: str, k=None, T=None) -> tuple:
    """(scale, note): 0.01 and a note when the column reads as percent vols, else 1.0 (with a note
    when a median of 1 or more was read as decimal). k, T: the rows' log-moneyness and expiry in
    years, where known (see the module doc)."""
    v = np.asarray(values, float)
    ok = np.isfinite(v) & (v > 0)
    if not ok.any():
        return 1.0, None
    med = float(np.median(v[ok]))
    if med < PERCENT_MEDIAN:
        return 1.0, None
    percent = (f"{column} read as percent vols (median {med:.4g}; 0.20 would be 20 %); divided by 100")
    if med >= PERCENT_SURE or k is None or T is None:
        return 0.01, percent
    k, T = np.asarray(k, float), np.asarray(T, float)
    m = ok & np.isfinite(k) & np.isfinite(T) & (T > 0)
    if np.count_nonzero(m) < 5:
        return 0.01, percent
    z90 = float(np.quantile(np.abs(k[m]) / (v[m] * np.sqrt(T[m])), 0.9))
    if z90 > Z_DECIMAL:
        return 1.0, (f"{column} read as decimal vols although its median is {med:.4g} ({100 * med:.0f} %): "
                     f"read as percent, 90 % of the strikes would lie beyond {100 * z90:.0f} standard moves")
    return 0.01, percent + f" (as decimal, 90 % of the strikes would lie within {z90:.2f} standard moves)"


def moneyness_hint(num: dict):
    """The rows' log-moneyness where the columns give it before forwards are settled: k, or
    ln(strike / forward), or ln(strike / spot) (close enough to judge units by); None otherwise."""
    if "k" in num:
        return num["k"]
    ref = num.get("forward", num.get("spot"))
    if "strike" in num and ref is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log(num["strike"] / ref)
    return None


def bidask_units(bid: np.ndarray, ask: np.ndarray, iv: np.ndarray | None, has_type: bool,
                 has_price: bool, layout_prices: bool) -> tuple:
    """('price' | 'vol', note) for the bid/ask columns, or raise ValueError when it cannot be told.

    Inputs: bid, ask (as read), iv (a vol column of the same rows, or None), whether an option type
    and a price column exist, and whether the layout defines bid/ask as prices.
    """
    if layout_prices:
        return "price", "bid/ask are option prices (the layout's definition)"
    two = np.isfinite(bid) & np.isfinite(ask)
    if iv is not None and (two & np.isfinite(iv)).any():
        m = two & np.isfinite(iv)
        inside = float(np.mean((bid[m] <= iv[m] * (1 + 1e-9)) & (iv[m] <= ask[m] * (1 + 1e-9))))
        if inside >= INSIDE_SHARE:
            return "vol", f"bid/ask are vols: the iv column lies inside [bid, ask] on {inside:.0%} of rows"
        if has_type:
            return "price", (f"bid/ask are prices, not vols: the iv column lies inside [bid, ask] on only "
                             f"{inside:.0%} of rows; vols are recomputed from the bid/ask prices, the file's "
                             "iv is kept for comparison")
        raise ValueError("bid/ask do not bracket the iv column, and without an option type they cannot be "
                         "read as prices; add a type column (call/put) or give bid/ask as vols")
    if has_type or has_price:
        return "price", "bid/ask are option prices (a type column and no vol column)"
    mid = 0.5 * (bid[two] + ask[two])
    if mid.size and np.median(mid) > 5.0:
        raise ValueError(f"bid/ask have a median mid of {np.median(mid):.4g}, too high for vols; if they are "
                         "prices, add a type column (call/put) and a forward")
    return "vol", "bid/ask are vols (no type column to price them with)"
