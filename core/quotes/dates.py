"""Dates in quote files: one parser for file columns and for a valuation date given as an option.

Accepted, per column (a column uses one format; the first that reads every non-empty cell wins):
- ISO 8601 dates and date-times, with or without a timezone (2025-06-20, 2025-06-20T16:00:00+00:00);
  a timezone is converted to UTC and dropped, a naive time is taken as UTC, so aware and naive
  columns subtract cleanly;
- compact 20250620 (IvyDB and many exports), 20JUN2025 (SAS), ``Fri Jun 20 2025`` / ``Jun 20 2025``
  (Cboe downloads);
- slashed dates only when the day is unambiguous (some day above 12): 20/06/2025 is day-first,
  06/20/2025 month-first; 04/03/2025 alone is refused, since it reads both ways.
Output: naive pandas Timestamps (UTC wall time).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

YEAR_RANGE = (1900, 2262)     # 2262-04-11 is the last date a nanosecond timestamp holds
_FORMATS = ("%Y%m%d", "%d%b%Y", "%a %b %d %Y", "%b %d %Y", "%d-%b-%Y", "%Y/%m/%d")
_SLASHED = ("%d/%m/%Y", "%m/%d/%Y")


def _iso(text: pd.Series) -> pd.Series:
    # utc=True converts aware values and localises naive ones, so a mixed column parses
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    return parsed.dt.tz_localize(None)


def _slashed(text: pd.Series) -> tuple:
    """(parsed, note) for d/m/Y or m/d/Y text, or (None, reason) when ambiguous or not slashed."""
    parts = text.str.extract(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*$").astype(float)
    if parts.isna().any(axis=None):
        return None, None
    first_day = (parts[0] > 12).any()
    second_day = (parts[1] > 12).any()
    if first_day == second_day:
        return None, "is ambiguous (day/month or month/day); write dates as YYYY-MM-DD"
    fmt = _SLASHED[0] if first_day else _SLASHED[1]
    return pd.to_datetime(text, format=fmt, errors="coerce"), None


def parse_date_column(values, col: str) -> tuple:
    """(parsed Series of naive Timestamps, bad mask, problem) for one column of dates.

    ``bad`` marks non-empty cells that do not parse; ``problem`` is None or a phrase naming why
    the column as a whole cannot be read (an ambiguous slashed format).
    """
    series = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(series):
        tz = getattr(series.dt, "tz", None)
        parsed = series.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else series
        return parsed, np.zeros(len(series), bool), None
    text = series.astype("string").str.strip()
    given = text.notna() & (text != "")
    text = text.where(given, None)
    if not given.any():
        return pd.Series(pd.NaT, index=series.index), np.zeros(len(series), bool), None
    best, problem = _iso(text), None
    if best[given].isna().any():
        candidates = [pd.to_datetime(text, format=fmt, errors="coerce") for fmt in _FORMATS]
        slashed, problem = _slashed(text[given].reindex(text.index).fillna(""))
        if slashed is not None:
            candidates.append(slashed.where(given))
        for cand in candidates:
            if cand[given].notna().sum() > best[given].notna().sum():
                best = cand
    # A year outside what a quote file can mean (a junk "0", a 9999 placeholder) is not a date here;
    # far_dates names the late ones.
    implausible = best.notna() & ((best.dt.year < YEAR_RANGE[0]) | (best.dt.year > YEAR_RANGE[1]))
    best = best.where(~implausible)
    bad = (given & best.isna()).to_numpy()
    return best, bad, (problem if bad.any() else None)


def far_dates(values, bad: np.ndarray) -> np.ndarray:
    """Cells among ``bad`` that are ISO-shaped dates after 2262-04-11, the last date pandas holds
    (so the caller can say that, not "not a date")."""
    text = pd.Series(values).reset_index(drop=True).astype("string").str.strip()
    year = pd.to_numeric(text.str.extract(r"^(\d{4})-\d{2}-\d{2}")[0], errors="coerce")
    return np.asarray(bad, bool) & (year > 2262).fillna(False).to_numpy(dtype=bool)


def parse_one_date(value, what: str = "valuation date") -> pd.Timestamp:
    """One date given as an option (string, date or Timestamp), by the same rules as a column.

    Raises ValueError with a one-line message when it does not read as one date.
    """
    if isinstance(value, pd.Timestamp) or hasattr(value, "year"):
        stamp = pd.Timestamp(value)
        return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp
    parsed, bad, problem = parse_date_column([str(value)], what)
    if bad.any() or pd.isna(parsed.iloc[0]):
        raise ValueError(f"{what} {value!r} {problem or 'is not an ISO date (YYYY-MM-DD)'}")
    return pd.Timestamp(parsed.iloc[0])


def year_fraction(expiry: pd.Series, valuation: pd.Series | pd.Timestamp) -> np.ndarray:
    """ACT/365 years from valuation to expiry (fractional days kept), as float64 (NaN where missing)."""
    delta = pd.Series(expiry).reset_index(drop=True) - (valuation if isinstance(valuation, pd.Timestamp)
                                                       else pd.Series(valuation).reset_index(drop=True))
    return (delta.dt.total_seconds() / (365.0 * 86400.0)).to_numpy(dtype=np.float64, na_value=np.nan)
