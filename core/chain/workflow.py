"""Repair a quote file on the chain's own domain: quotes -> chain method -> arbitrage-free surface.

``repair_chain(source, method)`` reads the file with the quote importer, keeps every usable quote
(the ones the grid workflow sets aside as "outside" too: their status is ``used`` here, and the
report counts them as used; rows beyond the chain's own domain dropped, QuoteSet.on_own_domain),
fits ``method`` (core.chain.methods) to them less their gross outliers (``fit_screened``), and
returns the tables:

- ``quote_table``: one row per input row, the importer's columns plus ``iv_repaired`` (the
  surface), ``iv_quote_model`` (the predicted quote: the surface plus the method's put-call
  offset, SliceSurface.quote_iv), ``sd_repaired`` and ``half_width_95`` (vol units, NaN for a
  method without sd; the 95 % interval is iv_quote_model +- half_width_95, each level calibrated
  on its own) at the row's (T, k), ``extrapolated``
  (beyond the quoted strikes of its expiry, or before the first / after the last expiry) and
  ``is_query``. A query row has an expiry and a strike but no iv, price, bid or ask: it is not used
  as a quote and gets its repaired value, sd and flag like any other row. With ``stale`` (the
  default), ``stale_score`` and ``stale_flag`` (core.chain.stale: the quote against its expiry
  neighbours, after the surface is subtracted; NaN / False on rows that are not quotes).
- ``grid_table``: the surface's dense export (core.chain.surface.SliceSurface.table), with marks;
- ``params``: per-expiry slice parameters; ``dense``: the dense-check report.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from core.chain.build import CHAIN_FLOOR_IV, W_FLOOR
from core.chain.methods import DEFAULT_CHAIN_METHOD, get_chain_method
from core.chain.types import CHAIN_STATUSES, from_quoteset
from core.chain.wing import note as wing_note
from core.engine.dense_check import N_STRIKES
from core.engine.grid import MIN_QUOTES
from core.quotes.quoteset import MAX_CHAIN_ABS_K, MAX_CHAIN_T, MIN_CHAIN_T
from core.quotes.read import as_quoteset
from core.settings import ensure_thread_policy

GRID_STRIKES = max(201, N_STRIKES)   # strikes per time of the dense export, which the dense check reuses

VALUE_COLUMNS = ("iv", "price_input", "bid", "ask")


def query_rows(table: pd.DataFrame) -> tuple:
    """(queries, out of domain): rows with a valid (T, k) and no value at all (iv, price, bid and
    ask empty; a cell the importer found non-numeric is a bad quote, not a question), split by
    whether (T, k) lies within the chain path's bounds (core.quotes.quoteset: MIN_CHAIN_T,
    MAX_CHAIN_T, MAX_CHAIN_ABS_K). A query beyond them gets no value: at k = 1e300 it got inf."""
    T = pd.to_numeric(table["T"], errors="coerce").to_numpy(np.float64)
    k = pd.to_numeric(table["k"], errors="coerce").to_numpy(np.float64)
    empty = np.ones(len(table), bool)
    for col in VALUE_COLUMNS:
        if col in table.columns:
            empty &= pd.to_numeric(table[col], errors="coerce").isna().to_numpy()
    bad_text = table["reason"].astype(str).str.startswith("non-numeric").to_numpy()
    asked = empty & ~bad_text & np.isfinite(T) & (T > 0) & np.isfinite(k) & (table["status"] != "used").to_numpy()
    inside = in_domain(T, k)
    return asked & inside, asked & ~inside


def in_domain(T: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Points within the chain path's bounds, where a row gets a repaired value."""
    with np.errstate(invalid="ignore"):
        return (T >= MIN_CHAIN_T) & (T <= MAX_CHAIN_T) & (np.abs(k) <= MAX_CHAIN_ABS_K)


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
        if "stale_flag" in q.columns:
            lines.append(f"stale check: {int(q['stale_flag'].sum())} quote(s) flagged of "
                         f"{int(q['stale_score'].notna().sum())} scored")
        return lines + self.notes


def _stale_columns(table: pd.DataFrame, chain, surface) -> tuple:
    """Chain stale scores (core.chain.stale) of ``chain`` (from_quoteset of ``table``: its rows with
    status used or outside, in order) mapped back onto the table's rows."""
    from core.chain.stale import stale_scores

    rows = np.flatnonzero(table["status"].isin(CHAIN_STATUSES).to_numpy())
    score, flag = np.full(len(table), np.nan), np.zeros(len(table), bool)
    score[rows], flag[rows] = stale_scores(chain, surface)
    return score, flag


GROSS_Z = 12.0   # |stale score| before any fit beyond which a quote is left out of the fit (below)


def fit_screened(chain_method, chain, ask=None) -> tuple:
    """(surface, gross, scores): ``chain_method`` fitted to ``chain`` without its gross outliers
    (the mask ``gross``): the quotes whose stale score before any fit (``scores``; core.chain.stale:
    each against a robust local fit of its own expiry's neighbours, in units of its own bid-ask)
    exceeds GROSS_Z. One such quote (a 1 % vol among 23 % ones) pulled its slice down 14 vol
    points at the money, and with it, through the calendar order, every shorter expiry (a 41 %
    ATM vol repaired to 21 %). GROSS_Z is twice the
    largest such score on the validation chains (AAPL 6.3, SPY 2026-08-13 4.1, DAX 3.9, synthetic
    chains at most 5.0); the held-out chains' largest are 2.3-7.0, so no clean quote of the
    shared chains is left out. A moved quote is still scored after the surface like any other."""
    from core.chain.stale import stale_scores

    before, _ = stale_scores(chain, None)
    gross = np.abs(np.nan_to_num(before)) > GROSS_Z
    if not gross.any() or len(chain) - gross.sum() < MIN_QUOTES:     # too few left: fit them all
        return chain_method.fit(chain, ask=ask), np.zeros(len(chain), bool), before
    return chain_method.fit(chain.subset(~gross), ask=ask), gross, before


def _without_queries(report, table: pd.DataFrame, asked: np.ndarray):
    """``report`` with the rows ``asked`` (table positions) out of its dropped and set-aside lists:
    a line number stays under a reason while any other row of that line has that reason."""
    rows, reasons = table["row"].to_numpy(), table["reason"].astype(str).to_numpy()

    def keep(lists: dict) -> dict:
        out = {}
        for reason, ids in lists.items():
            others = set(rows[(reasons == reason) & ~asked].tolist())
            kept = [x for x in ids if x in others]
            if kept:
                out[reason] = kept
        return out

    return replace(report, dropped=keep(report.dropped), skipped=keep(report.skipped))


def repair_chain(source, method: str | None = None, valuation_date=None, name: str | None = None,
                 stale: bool = True) -> ChainRepair:
    """Read (if needed) and repair a quote file on its own domain (``method`` default
    DEFAULT_CHAIN_METHOD); see the module doc."""
    ensure_thread_policy()      # as core.repair: a threaded BLAS on tiny matrices is 10x slower under load
    method = method or DEFAULT_CHAIN_METHOD
    chain_method = get_chain_method(method)
    # no grid box here: the rows the grid workflow sets aside as "outside" are used, and say so
    quotes = as_quoteset(source, name, valuation_date).on_own_domain()
    chain = from_quoteset(quotes)
    table = quotes.table
    query, beyond = query_rows(table)
    beyond_reason = (f"query beyond the chain's domain (T in [{MIN_CHAIN_T:g}, {MAX_CHAIN_T:g}] years, "
                     f"|k| <= {MAX_CHAIN_ABS_K:g}): not answered")
    if query.any() or beyond.any():
        # a query row is answered, not dropped or set aside: the importer's counts leave it out,
        # and one beyond the domain is counted under its own reason. By table row, not by input
        # line: a line of a side-by-side or matrix layout holds several rows (a query beside a
        # crossed quote must not take the crossed one out of the count)
        quotes = replace(quotes, report=_without_queries(quotes.report, table, query | beyond))
        if beyond.any():
            dropped = {**quotes.report.dropped, beyond_reason: table.loc[beyond, "row"].tolist()}
            quotes = replace(quotes, report=replace(quotes.report, dropped=dropped))
    T_all = pd.to_numeric(table["T"], errors="coerce").to_numpy(np.float64)
    k_all = pd.to_numeric(table["k"], errors="coerce").to_numpy(np.float64)
    ask = (T_all[query], k_all[query]) if query.any() else None
    if stale:
        surface, gross, before = fit_screened(chain_method, chain, ask)
    else:
        surface, gross = chain_method.fit(chain, ask=ask), np.zeros(len(chain), bool)
    ok = in_domain(T_all, k_all)
    iv_rep, iv_quote, sd_rep, hw_rep = (np.full(len(table), np.nan) for _ in range(4))
    flag = np.zeros(len(table), bool)
    if ok.any():
        iv_rep[ok] = surface.iv(T_all[ok], k_all[ok])
        iv_quote[ok] = iv_rep[ok] + surface.quote_offset(T_all[ok], k_all[ok])   # quote_iv, priced once
        sd = surface.sd(T_all[ok], k_all[ok])
        if sd is not None:
            sd_rep[ok] = sd
            hw_rep[ok] = sd * surface.level_multiple(0.95)
        flag[ok] = surface.extrapolated(T_all[ok], k_all[ok])
    qt = table.copy()
    qt["iv_repaired"] = iv_rep
    qt["iv_quote_model"] = iv_quote
    qt["sd_repaired"] = sd_rep
    qt["half_width_95"] = hw_rep
    qt["extrapolated"] = flag
    qt["is_query"] = query
    qt.loc[query, "status"] = "query"
    qt.loc[query, "reason"] = "query: no quote, a repaired value asked for"
    qt.loc[beyond, "status"] = "dropped"
    qt.loc[beyond, "reason"] = beyond_reason
    # a query at an expiry with no quotes has no forward there (none to take from put-call parity)
    no_forward = qt["reason"].astype(str).str.startswith("query").to_numpy() & ~np.isfinite(k_all) & ~query
    qt.loc[no_forward, "reason"] = ("query at an expiry without a forward (no quotes there for put-call parity; "
                                    "give a forward column, or --spot and --rate): not answered")
    if stale:
        qt["stale_score"], qt["stale_flag"] = _stale_columns(table, chain, surface)
    if gross.any():
        rows = np.flatnonzero(table["status"].isin(CHAIN_STATUSES).to_numpy())[gross]
        qt.iloc[rows, qt.columns.get_loc("status")] = "dropped"
        qt.iloc[rows, qt.columns.get_loc("reason")] = [f"stale: {z:+.1f} sd off its expiry's other quotes before the "
                                                        f"fit (beyond {GROSS_Z:g}): left out of the fit" for z in before[gross]]
        label = f"stale: over {GROSS_Z:g} sd off its expiry's other quotes, left out of the fit"
        quotes = replace(quotes, report=replace(quotes.report, n_used=quotes.report.n_used - int(gross.sum()),
                                                dropped={**quotes.report.dropped, label: qt["row"].iloc[rows].tolist()}))
    notes = [f"warning: {chain_method.warning}"] if chain_method.warning else []
    # the floor: CHAIN_FLOOR_IV, or higher where w = iv^2 T would sit under W_FLOOR (minutes to expiry)
    low = int(np.sum(chain.iv < np.maximum(CHAIN_FLOOR_IV, np.sqrt(W_FLOOR / chain.T))))
    if low:
        # quotes of 0.1 % vol came out near 1 %, with no word: the surface cannot go that low
        notes.append(f"warning: {low} quote(s) below the chain surface's floor ({100 * CHAIN_FLOOR_IV:g} % vol, more within "
                     "minutes of expiry): it does not follow them there")
    params = surface.params()
    if getattr(surface, "wing_alpha", None) is not None:
        # how the smiles were continued beyond the quotes is a modelling choice a user should see
        notes.append(wing_note(surface.wing_alpha, params["kind"]))
    grid = surface.table(n_k=GRID_STRIKES)
    return ChainRepair(quotes=quotes, surface=surface, quote_table=qt, grid_table=grid,
                       params=params, dense=dense_from_table(surface, grid), method=method, notes=notes)


def dense_from_table(surface, grid: pd.DataFrame):
    """The dense check read off the dense export: the table's times are the check's (every expiry
    and every midpoint) and its GRID_STRIKES >= N_STRIKES strikes span the same quoted domain, so
    the check reuses its prices instead of pricing the surface again. Falls back to
    ``dense_check`` when the table's set is not the check's."""
    from core.engine.dense_check import check_times, check_values, dense_check

    T, k = np.unique(grid["T"].to_numpy()), np.unique(grid["k"].to_numpy())
    lo, hi = surface.k_domain
    if (T.size * k.size != len(grid) or k.size < N_STRIKES or not np.array_equal(T, check_times(surface.expiries))
            or not np.isclose(k[0], lo, rtol=0, atol=1e-12) or not np.isclose(k[-1], hi, rtol=0, atol=1e-12)):
        return dense_check(surface)
    shape = (T.size, k.size)
    return check_values(T, k, grid["call"].to_numpy().reshape(shape), grid["w"].to_numpy().reshape(shape))


def chain_report(result: ChainRepair) -> dict:
    """The run's summary as JSON-ready data: the dense-check report's fields, the method and the
    summary lines."""
    return {**result.dense.to_dict(), "method": result.method, "summary": result.summary_lines()}


def chain_files(result: ChainRepair, fmt: str = "csv") -> dict:
    """{file name: bytes}: quotes, grid (the dense surface with extrapolation marks) and params as
    ``fmt`` ("csv", "parquet" or "both"), and dense_check.json (the summary and the dense check)."""
    import json

    from core.quotes.export import table_files

    files = table_files({"quotes": result.quote_table, "grid": result.grid_table, "params": result.params}, fmt)
    files["dense_check.json"] = (json.dumps(chain_report(result), indent=2, default=str) + "\n").encode()
    return files


def write_chain_outputs(result: ChainRepair, out_dir, fmt: str = "csv") -> list:
    """``chain_files`` into ``out_dir``, all or none (core.quotes.export.write_files: temporary
    names then renames, symlinked targets refused); returns the paths."""
    from core.quotes.export import write_files

    return write_files(out_dir, chain_files(result, fmt))


def read_chain(path, include_outside: bool = True):
    """Read a quote file with the importer (``core.quotes.read.read_quotes``) into ChainQuotes."""
    from core.quotes.read import read_quotes

    return from_quoteset(read_quotes(path), include_outside=include_outside)
