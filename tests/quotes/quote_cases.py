"""Quote files shared by the quote tests (API, CLI and page): a good chain and every malformed kind."""
from __future__ import annotations

import io

import pandas as pd

from core.engine.grid import K_GRID, T_GRID
from core.synth.chains import ChainSpec, make_chain, surface_function


def good_chain(seed: int = 3, family: str = "shifted_ssvi", **spec) -> pd.DataFrame:
    """A small listed chain in implied vol (T, strike, forward, iv, bid, ask, ...)."""
    base = dict(weeklies=0, monthlies=6, horizon_years=2.0)
    base.update(spec)
    return make_chain(surface_function(family, 4000 + seed), ChainSpec(**base), seed=seed)


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def grid_quotes_csv(rows) -> bytes:
    """CSV of (T, k, iv) rows."""
    return ("T,k,iv\n" + "".join(f"{T},{k},{iv}\n" for T, k, iv in rows)).encode()


_GOOD = [(T_GRID[i], K_GRID[j], 0.2) for i in (2, 5, 8) for j in (6, 8, 10)]


def _with(rows_text: str) -> bytes:
    return ("T,k,iv\n" + "".join(f"{T},{k},{iv}\n" for T, k, iv in _GOOD) + rows_text).encode()


# name -> (file bytes, file name, regex the one-line message must match)
MALFORMED = {
    "empty file": (b"", "q.csv", r"q\.csv is empty"),
    "blank lines only": (b"\n \n\n", "q.csv", r"is empty"),
    "header only": (b"T,k,iv\n", "q.csv", r"header but no data rows"),
    "wrong columns": (b"maturity_days,moneyness,vol\n30,1.0,0.2\n", "q.csv", r"no moneyness column|no maturity column"),
    "no maturity column": (b"k,iv\n0,0.2\n", "q.csv", r"no maturity column; need T \(years\) or expiry"),
    "no value column": (b"T,k,volume\n0.5,0,10\n", "q.csv", r"no quote column; need iv, or price"),
    "strike without forward": (b"T,strike,iv\n0.5,100,0.2\n", "q.csv", r"strike given without a forward column"),
    "price without type": (b"T,k,forward,price\n0.5,0,100,5\n", "q.csv", r"price quotes need a type column"),
    "non-numeric cells": (b"T,k,iv\n" + b"".join(f"{T},{k},abc\n".encode() for T, k, _ in _GOOD),
                          "q.csv", r"no usable quotes in 9 row\(s\) \(non-numeric value in iv: 9\)"),
    "NaN vols": (grid_quotes_csv([(T, k, "nan") for T, k, _ in _GOOD]), "q.csv", r"no usable quotes .*missing iv: 9"),
    "inf vols": (grid_quotes_csv([(T, k, "inf") for T, k, _ in _GOOD]), "q.csv", r"no usable quotes .*infinite iv: 9"),
    "negative vols": (grid_quotes_csv([(T, k, -0.2) for T, k, _ in _GOOD]), "q.csv", r"no usable quotes .*iv <= 0: 9"),
    "vols above 5 after percent reading": (grid_quotes_csv([(T, k, 600.0) for T, k, _ in _GOOD]), "q.csv",
                                           r"iv above 5 \(percentages\? give 0\.20 for 20 %\): 9"),
    "single expiry": (grid_quotes_csv([(0.5, k, 0.2) for k in (-0.1, 0.0, 0.1, 0.2)]), "q.csv",
                      r"single expiry \(T = 0\.500 years\)"),
    "one quote": (grid_quotes_csv([(0.5, 0.0, 0.2)]), "q.csv", r"only 1 usable quote\(s\); at least 4"),
    "three quotes": (grid_quotes_csv([(0.5, 0.0, 0.2), (1.0, 0.0, 0.2), (1.5, 0.0, 0.2)]), "q.csv",
                     r"only 3 usable quote\(s\); at least 4"),
    "duplicates only": (grid_quotes_csv([(0.5, 0.0, 0.2)] * 3 + [(1.0, 0.0, 0.2)] * 3), "q.csv",
                        r"only 2 usable quote\(s\)"),
    "dates in the wrong order": (b"expiry,valuation_date,k,iv\n2024-01-19,2025-01-02,0,0.2\n2024-03-15,2025-01-02,0.1,0.2\n",
                                 "q.csv", r"every expiry is on or before the valuation date 2025-01-02; are expiry and "
                                          r"valuation_date swapped\?"),
    "two valuation dates": (b"expiry,valuation_date,k,iv\n2025-06-20,2025-01-02,0,0.2\n2025-09-19,2025-01-03,0.1,0.2\n",
                            "q.csv", r"valuation_date has 2 different values"),
    "expiry without valuation date": (b"expiry,k,iv\n2025-06-20,0,0.2\n", "q.csv", r"without a valuation date"),
    # slashed dates read both ways when no day is above 12: refused as ambiguous, in a file as on the CLI
    "ambiguous slashed dates": (b"expiry,valuation_date,k,iv\n" + b"".join(f"06/{d:02d}/2025,2025-01-02,0,0.2\n".encode()
                                                                        for d in range(1, 9)),
                                "q.csv", r"column expiry is ambiguous \(day/month or month/day\)"),
    "dates that are not dates": (b"expiry,valuation_date,k,iv\n" + b"soon,2025-01-02,0,0.2\n" * 8,
                                 "q.csv", r"expiry is not an ISO date \(YYYY-MM-DD\): 8"),
    "ragged rows": (b"T,k,iv\n0.5,0,0.2\n0.5,0.1,0.2,9,9\n", "q.csv", r"cannot parse q\.csv as CSV"),
    "binary junk": (b"\x00\x01\x02\x03garbage" * 10, "q.csv", r"binary, not a CSV"),
    "not UTF-8": ("T,k,iv\n0.5,0,0.2\n0.5,0.1,0.2 \xe9\n".encode("latin-1"), "q.csv", r"not UTF-8 text"),
    "corrupt parquet": (b"PAR1" + b"\x00" * 64 + b"PAR1", "q.parquet", r"cannot read q\.parquet as Parquet"),
    "spreadsheet": (b"PK\x03\x04" + b"\x00" * 32, "q.xlsx", r"looks like a spreadsheet; save it as CSV"),
    "duplicate column": (b"T,t,k,iv\n0.5,0.5,0,0.2\n", "q.csv", r"columns 'T' and 't' both give T"),
}

# read fine (a chain repair takes any expiry and strike), refused by a grid repair
OUTSIDE_GRID = {
    "all outside the grid": (grid_quotes_csv([(3.0 + i, 0.0, 0.2) for i in range(5)]), "q.csv",
                             r"all 5 valid quotes lie outside the grid .*--chain"),
    "one expiry inside the grid": (grid_quotes_csv([(0.5, k, 0.2) for k in (-0.2, -0.1, 0.0, 0.1)]
                                                   + [(3.0, k, 0.2) for k in (-0.1, 0.0, 0.1)]), "q.csv",
                                   r"quotes inside the grid span a single expiry \(T = 0\.500 years\).*--chain"),
}
