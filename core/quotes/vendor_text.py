"""Quote files that are not one quote per row: read into the canonical long table of core.quotes.layouts.

- ``cboe_quotedata``: Cboe's delayed-quotes download. Two lines of underlying data (name and
  ``Last:``; ``Date: <month day, year, time>``, ``Bid:``, ``Ask:``), then one header line, then one
  line per expiry and strike with the call block left of ``Strike`` and the put block right of it.
- ``quantlib_matrix``: a vol matrix as QuantLib's test suite writes it, saved as text: ``#``
  comment lines, ``key,values`` lines (``spot``; ``t_days`` + ``zero_rate`` with ``strikes``, or
  ``maturity_years``), then one line per strike of vols, one column per maturity. A vol of 0 is
  an empty cell (no quote).

Each reader returns (frame, notes): the frame in canonical columns with ``row`` = the 1-based data
line the quote came from; notes are plain statements of what was assumed.
"""
from __future__ import annotations

import csv
import io
import re

import numpy as np
import pandas as pd

_OCC = re.compile(r"^([A-Z]+?)(\d{6})([CP])(\d{8})$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def looks_like_cboe_quotedata(lines: list) -> bool:
    return len(lines) >= 3 and lines[2].lower().startswith("expiration date") and "strike" in lines[2].lower()


def looks_like_quantlib_matrix(lines: list) -> bool:
    keys = {line.split(",", 1)[0].strip().lower() for line in lines if line and not line.startswith("#")}
    return "spot" in keys and ("maturity_years" in keys or "t_days" in keys)


def _number_after(text: str, label: str) -> float | None:
    match = re.search(re.escape(label) + r"\s*:?\s*(" + _NUMBER.pattern + ")", text)
    return float(match.group(1)) if match else None


def _cboe_valuation(line: str, notes: list) -> pd.Timestamp:
    """The quote date of a Cboe download: its ``Date:`` line, rolled back to Friday on a weekend."""
    match = re.search(r"Date:\s*([A-Za-z]+ \d{1,2}, \d{4})", line)
    if not match:
        raise ValueError("Cboe quote download: no 'Date: Month day, year' on its second line")
    stamp = pd.Timestamp(pd.to_datetime(match.group(1), format="%B %d, %Y"))
    if stamp.weekday() >= 5:
        friday = stamp - pd.Timedelta(days=stamp.weekday() - 4)
        notes.append(f"downloaded on a weekend ({stamp:%Y-%m-%d}); the quotes are the close of {friday:%Y-%m-%d}, "
                     "used as the valuation date")
        stamp = friday
    return stamp


def read_cboe_quotedata(text: str) -> tuple:
    """Cboe delayed-quotes download -> (canonical frame, notes). One row per call and per put."""
    lines = text.lstrip("\r\n").splitlines()
    notes: list = []
    spot = _number_after(lines[0], "Last")
    valuation = _cboe_valuation(lines[1], notes)
    header = [h.strip().lower() for h in next(csv.reader([lines[2]]))]
    if "strike" not in header:
        raise ValueError("Cboe quote download: no Strike column in its header line")
    s = header.index("strike")
    body = pd.read_csv(io.StringIO("\n".join(lines[3:])), header=None, dtype=str, skip_blank_lines=True,
                       skipinitialspace=True)
    if body.shape[1] != len(header):
        raise ValueError(f"Cboe quote download: {body.shape[1]} fields per line, header has {len(header)}")

    def block(lo: int, hi: int, kind: str) -> pd.DataFrame:
        names = header[lo:hi]
        pick = lambda name: body.iloc[:, lo + names.index(name)] if name in names else None  # noqa: E731
        symbol = body.iloc[:, lo].astype(str).str.strip()
        out = pd.DataFrame({"row": np.arange(1, len(body) + 1), "expiry": body.iloc[:, 0].str.strip(),
                            "strike": body.iloc[:, s], "type": kind, "bid": pick("bid"), "ask": pick("ask"),
                            "iv_vendor": pick("iv"), "root": symbol.str.extract(_OCC)[0]})
        return out

    frame = pd.concat([block(1, s, "call"), block(s + 1, len(header), "put")], ignore_index=True)
    frame["iv_vendor"] = pd.to_numeric(frame["iv_vendor"], errors="coerce").replace(0.0, np.nan)
    frame["valuation_date"] = valuation
    if spot is not None:
        frame["spot"] = spot
    notes.append("Cboe quote download: calls and puts side by side per strike, read as one row per option; "
                 "its IV column is kept for comparison only")
    return frame.sort_values(["row", "type"], kind="stable").reset_index(drop=True), notes


def _key_lines(lines: list) -> tuple:
    """({key: [floats]}, [matrix rows]) of a QuantLib-data text file (comments skipped)."""
    keyed, matrix = {}, []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        head, _, rest = line.partition(",")
        try:
            matrix.append([float(x) for x in line.split(",")])
        except ValueError:
            keyed[head.strip().lower()] = [float(x) for x in rest.split(",") if x.strip()]
    return keyed, matrix


def read_quantlib_matrix(text: str) -> tuple:
    """QuantLib test-suite vol matrix -> (canonical frame with T, strike, forward, discount, iv; notes)."""
    keyed, matrix = _key_lines(text.splitlines())
    spot = keyed["spot"][0]
    notes: list = []
    if "t_days" in keyed:
        T = np.asarray(keyed["t_days"]) / 365.0
        strikes = np.asarray(keyed["strikes"])
        rates = np.asarray(keyed.get("zero_rate", [0.0] * T.size))
        vols = np.asarray(matrix)                       # one line per strike, one column per maturity
        strike_of_row = strikes
        notes.append("QuantLib vol matrix: T = days / 365; forward = spot exp(r T) and discount exp(-r T) "
                     "from the zero_rate line, no dividends")
    else:
        T = np.asarray(keyed["maturity_years"])
        rates = np.zeros(T.size)
        table = np.asarray(matrix)                      # moneyness, then one vol per maturity
        strike_of_row, vols = spot * table[:, 0], table[:, 1:]
        notes.append("QuantLib vol matrix: strike = spot x moneyness; r = q = 0, so forward = spot and "
                     "discount = 1; a vol of 0 is an empty cell")
    if vols.shape != (strike_of_row.size, T.size):
        raise ValueError(f"QuantLib vol matrix: {vols.shape[0]} x {vols.shape[1]} vols for "
                         f"{strike_of_row.size} strikes x {T.size} maturities")
    i, j = np.meshgrid(np.arange(strike_of_row.size), np.arange(T.size), indexing="ij")
    frame = pd.DataFrame({"row": (i + 1).ravel(), "T": T[j].ravel(), "strike": strike_of_row[i].ravel(),
                          "forward": spot * np.exp(rates[j] * T[j]).ravel(),
                          "discount": np.exp(-rates[j] * T[j]).ravel(), "iv": vols.ravel()})
    frame["iv"] = frame["iv"].where(frame["iv"] != 0.0)
    return frame, notes
