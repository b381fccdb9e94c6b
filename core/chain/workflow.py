"""Repair a quote file on the chain's own domain: quotes -> chain method -> arbitrage-free surface.

``repair_chain(source, method)`` reads the file with the quote importer, keeps every usable quote
(the ones the grid workflow sets aside as "outside" too), fits ``method`` (core.chain.methods),
and returns the tables:

- ``quote_table``: one row per input row, the importer's columns plus ``iv_repaired`` and
  ``sd_repaired`` (vol units, NaN for a method without sd) at the row's (T, k), ``extrapolated``
  (beyond the quoted strikes of its expiry, or before the first / after the last expiry) and
  ``is_query``. A query row has an expiry and a strike but no iv, price, bid or ask: it is not used
  as a quote and gets its repaired value, sd and flag like any other row.
- ``grid_table``: the surface's dense export (core.chain.surface.SliceSurface.table), with marks;
- ``params``: per-expiry slice parameters; ``dense``: the dense-check report.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.chain.methods import DEFAULT_CHAIN_METHOD, get_chain_method
from core.chain.types import from_quoteset

VALUE_COLUMNS = ("iv", "price_input", "bid", "ask")


def query_rows(table: pd.DataFrame) -> np.ndarray:
    """Rows with a valid (T, k) and no value at all (iv, price, bid and ask empty)."""
    T = pd.to_numeric(table["T"], errors="coerce").to_numpy(np.float64)
    k = pd.to_numeric(table["k"], errors="coerce").to_numpy(np.float64)
    empty = np.ones(len(table), bool)
    for col in VALUE_COLUMNS:
        if col in table.columns:
            empty &= pd.to_numeric(table[col], errors="coerce").isna().to_numpy()
    return empty & np.isfinite(T) & (T > 0) & np.isfinite(k) & (table["status"] != "used").to_numpy()


@dataclass
class ChainRepair:
    """Everything one chain repair produced."""

    quotes: object                 # the importer's QuoteSet
    surface: object                # a ChainSurface
    quote_table: pd.DataFrame
    grid_table: pd.DataFrame
    params: pd.DataFrame
    dense: object                  # core.engine.dense_check.DenseReport
    method: str
    notes: list = field(default_factory=list)

    def summary_lines(self) -> list:
        q = self.quote_table
        lines = list(self.quotes.report.lines())
        lines.append(f"method {self.method}: surface on {self.surface.expiries.size} expiries, T "
                     f"{self.surface.expiries[0]:.4f} to {self.surface.expiries[-1]:.3f} years")
        lines.append(f"dense check: {self.dense.n_butterfly} butterfly, {self.dense.n_calendar} calendar "
                     f"violation(s) on {self.dense.n_points} points")
        if q["is_query"].any():
            lines.append(f"{int(q['is_query'].sum())} query row(s) answered, "
                         f"{int((q['is_query'] & q['extrapolated']).sum())} of them extrapolated")
        return lines + self.notes


def _read(source, valuation_date=None, name=None):
    from core.quotes.read import QuoteSet, normalise_quotes, read_quotes

    if isinstance(source, QuoteSet):
        return source
    if isinstance(source, pd.DataFrame):
        return normalise_quotes(source, source=name or "quotes", valuation_date=valuation_date)
    return read_quotes(source, name=name, valuation_date=valuation_date)


def repair_chain(source, method: str = DEFAULT_CHAIN_METHOD, valuation_date=None, name: str | None = None) -> ChainRepair:
    """Read (if needed) and repair a quote file on its own domain; see the module doc."""
    from core.engine.dense_check import dense_check

    chain_method = get_chain_method(method)
    quotes = _read(source, valuation_date, name)
    chain = from_quoteset(quotes)
    table = quotes.table
    query = query_rows(table)
    T_all = pd.to_numeric(table["T"], errors="coerce").to_numpy(np.float64)
    k_all = pd.to_numeric(table["k"], errors="coerce").to_numpy(np.float64)
    surface = chain_method.fit(chain, ask=(T_all[query], k_all[query]) if query.any() else None)
    ok = np.isfinite(T_all) & (T_all > 0) & np.isfinite(k_all)
    iv_rep, sd_rep = np.full(len(table), np.nan), np.full(len(table), np.nan)
    flag = np.zeros(len(table), bool)
    if ok.any():
        iv_rep[ok] = surface.iv(T_all[ok], k_all[ok])
        sd = surface.sd(T_all[ok], k_all[ok])
        if sd is not None:
            sd_rep[ok] = sd
        flag[ok] = surface.extrapolated(T_all[ok], k_all[ok])
    qt = table.copy()
    qt["iv_repaired"] = iv_rep
    qt["sd_repaired"] = sd_rep
    qt["extrapolated"] = flag
    qt["is_query"] = query
    qt.loc[query, "status"] = "query"
    qt.loc[query, "reason"] = "query: no quote, a repaired value asked for"
    notes = [f"warning: {chain_method.warning}"] if chain_method.warning else []
    return ChainRepair(quotes=quotes, surface=surface, quote_table=qt, grid_table=surface.table(),
                       params=surface.params(), dense=dense_check(surface), method=method, notes=notes)


def write_chain_outputs(result: ChainRepair, out_dir) -> list:
    """quotes.csv, grid.csv (the dense surface with extrapolation marks), params.csv and
    dense_check.json into ``out_dir``, all or none (core.quotes.export.write_files: temporary
    names then renames, symlinked targets refused); returns the paths."""
    import json

    from core.quotes.export import write_files

    files = {f"{name}.csv": frame.to_csv(index=False).encode()
             for name, frame in (("quotes", result.quote_table), ("grid", result.grid_table), ("params", result.params))}
    files["dense_check.json"] = (json.dumps(result.dense.to_dict(), indent=2) + "\n").encode()
    return write_files(out_dir, files)


def read_chain(path, include_outside: bool = True):
    """Read a quote file with the importer (``core.quotes.read.read_quotes``) into ChainQuotes."""
    from core.quotes.read import read_quotes

    return from_quoteset(read_quotes(path), include_outside=include_outside)
