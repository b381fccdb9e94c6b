"""How every table in the app writes a number: one module, so the pages cannot drift apart.

- Vol-valued numbers (implied vols, errors, RMSEs, residuals, sds, band widths) are shown in vol
  points: 100 x the implied vol, so an iv of 0.2153 reads 21.53 and an RMSE of 0.0088 reads 0.88
  (a vol point is one percent of vol).
- Shares (violation rates, the quoted fraction) are shown in percent.
- Ratios without a unit (coverages, AUCs, correlations, multipliers) are shown as they are.
- One number of decimals per table: DECIMALS, unless a table states its own (the SVI parameters).

Tables go to Streamlit in one of two ways: as text (``text_frame``, for st.table and markdown) or
as numbers scaled to their display unit with a matching column format (``scaled`` and ``columns``,
for st.dataframe, which sorts by value). An absent number is MISSING either way: as text, and in
st.dataframe by ``placeholder=MISSING`` (st.dataframe writes a literal "None" otherwise, as the
explorer's coverage cell of a method without a band read).
"""
from __future__ import annotations

import math

DECIMALS = 2
VOL_POINTS = 100.0   # implied vol -> vol points
VOL_UNIT = "vol pts"
MISSING = "—"
# A column's kind: how its value is scaled and written.
VOL, SIGNED_VOL, RATE, RATIO, COUNT = "vol", "signed vol", "rate", "ratio", "count"
_SCALE = {VOL: VOL_POINTS, SIGNED_VOL: VOL_POINTS, RATE: 100.0, RATIO: 1.0, COUNT: 1.0}


# The per-maturity SVI parameter table (explorer and Your quotes): small numbers in total variance,
# so the table has its own decimals; its fit error is a vol.
SVI_DECIMALS = 4
SVI_KINDS = {c: RATIO for c in ("T", "a", "b", "rho", "m", "sigma")} | {"rmse_iv": VOL}
SVI_RMSE_NAME = f"rmse_iv ({VOL_UNIT})"


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def number(x, decimals: int = DECIMALS, sign: bool = False) -> str:
    """``x`` with ``decimals`` decimals ("+" shown when ``sign``); MISSING when absent or not finite."""
    return f"{float(x):{'+' if sign else ''}.{decimals}f}" if _finite(x) else MISSING


def vol(x, decimals: int = DECIMALS, sign: bool = False) -> str:
    """An implied-vol quantity in vol points: 0.0088 -> "0.88"."""
    return number(VOL_POINTS * float(x), decimals, sign) if _finite(x) else MISSING


def vol_se(mean, se, decimals: int = DECIMALS) -> str:
    """"mean ± SE" in vol points; the mean alone when the SE is absent."""
    if not _finite(mean):
        return MISSING
    return vol(mean, decimals) + (f" ± {vol(se, decimals)}" if _finite(se) else "")


def rate(x, decimals: int = DECIMALS) -> str:
    """A share in percent: 0.0718 -> "7.18 %"."""
    return f"{number(100.0 * float(x), decimals)} %" if _finite(x) else MISSING


def ratio(x, decimals: int = DECIMALS) -> str:
    return number(x, decimals)


def format_value(x, kind: str, decimals: int = DECIMALS) -> str:
    """One cell of a column of ``kind`` as text."""
    if kind == VOL:
        return vol(x, decimals)
    if kind == SIGNED_VOL:
        return vol(x, decimals, sign=True)
    if kind == RATE:
        return rate(x, decimals)
    if kind == COUNT:
        return f"{int(x):,}" if _finite(x) else MISSING
    return ratio(x, decimals)


def text_frame(frame, kinds: dict, decimals: int = DECIMALS):
    """A copy of ``frame`` with each column named in ``kinds`` written as text of that kind (other
    columns, text already, are left as they are)."""
    out = frame.copy()
    for column, kind in kinds.items():
        if column in out.columns:
            out[column] = [format_value(x, kind, decimals) for x in out[column]]
    return out


def scaled(frame, kinds: dict):
    """A copy of ``frame`` with vol columns in vol points and rates in percent (for st.dataframe)."""
    scale = {c: _SCALE[kind] for c, kind in kinds.items() if c in frame.columns and _SCALE[kind] != 1.0}
    # One assign, not a column at a time: this runs on every explorer rerun.
    return frame.assign(**{c: f * frame[c].to_numpy(dtype=float) for c, f in scale.items()})


def printf(kind: str, decimals: int = DECIMALS) -> str:
    """The printf format of a ``scaled`` column of ``kind`` (st.column_config.NumberColumn)."""
    if kind == COUNT:
        return "%d"
    return f"%{'+' if kind == SIGNED_VOL else ''}.{decimals}f{' %%' if kind == RATE else ''}"


def svi_frame(svi_table) -> tuple:
    """(frame, column config) of a per-maturity SVI parameter table for st.dataframe."""
    kinds = {SVI_RMSE_NAME if c == "rmse_iv" else c: k for c, k in SVI_KINDS.items()}
    return (scaled(svi_table, SVI_KINDS).rename(columns={"rmse_iv": SVI_RMSE_NAME}),
            columns(kinds, SVI_DECIMALS))


def columns(kinds: dict, decimals: int = DECIMALS, widths: dict | None = None, labels: dict | None = None) -> dict:
    """st.dataframe column configs for the ``scaled`` columns of ``kinds``: optional widths in px, and
    short header ``labels`` (the column's full name is then its tooltip)."""
    import streamlit as st   # here: the formatting above stays usable without Streamlit

    widths, labels = widths or {}, labels or {}
    return {c: st.column_config.NumberColumn(labels.get(c, c), format=printf(kind, decimals), width=widths.get(c),
                                             help=c if c in labels else None)
            for c, kind in kinds.items()}
