"""An imported vendor chain (core.quotes.chain_import) as the QuoteSet the grid workflow reads.

Statuses: the chain's used quotes are ``used`` (or ``outside`` beyond the model grid's reach, as
for the generic path); quotes set aside by a market rule (the in-the-money side, a second root,
an earlier snapshot, a duplicate, an empty matrix cell, a query row) are ``skipped``; bad quotes
(one-sided, crossed, no time value, ...) are ``dropped``. The chain's notes (layout, units,
forwards) become the report's notes; its per-expiry forwards ride along.
"""
from __future__ import annotations

import numpy as np

from core.quotes.chain_import import ImportedChain
from core.quotes.quoteset import QuoteSet, ValidationReport, check_enough, mark_outside

# Reasons that set a valid quote aside by rule (the rest are bad data).
SKIPPED = ("in the money", "second option root", "an earlier intraday snapshot", "duplicate", "empty cell", "query")


def _is_skip(reason: str) -> bool:
    return reason.startswith(SKIPPED)


def _forward_records(chain: ImportedChain) -> list:
    """The per-expiry forwards as JSON-ready records (NaN as None)."""
    fwd = chain.forwards.astype(object).where(chain.forwards.notna(), None)
    return [{key: (float(v) if isinstance(v, (float, np.floating)) else int(v) if isinstance(v, (np.integer,))
                   else v) for key, v in row.items()} for row in fwd.to_dict("records")]


def quote_set_from_chain(chain: ImportedChain) -> QuoteSet:
    """QuoteSet (one table row per quote read, with row = its input line) of an ImportedChain."""
    t = chain.table.copy()
    reason = t["reason"].to_numpy(dtype=object).copy()
    reason[t["status"].to_numpy() == "query"] = "query: no quote (iv, price, bid and ask empty)"
    status = np.where(t["status"].to_numpy() == "used", "used",
                      np.where([_is_skip(r) for r in reason], "skipped", "dropped")).astype(object)
    rows = t["row"].to_numpy()
    T, k = t["T"].to_numpy(float), t["k"].to_numpy(float)
    outside = mark_outside(T, k, rows, status, reason)
    t["status"], t["reason"] = status, reason
    t["spread_iv"] = t["iv_ask"] - t["iv_bid"]
    t = t.rename(columns={"weight": "n_merged"})
    by_reason: dict = {}
    for r, s, row in zip(reason, status, rows):
        if s in ("dropped", "skipped"):
            by_reason.setdefault((s, r), []).append(int(row))
    used = status == "used"
    rep = chain.report
    report = ValidationReport(
        source=rep.source, kind=rep.kind, n_rows=len(t), n_used=int(used.sum()),
        dropped={r: v for (s, r), v in by_reason.items() if s == "dropped"}, outside=outside,
        skipped={r: v for (s, r), v in by_reason.items() if s == "skipped"},
        columns_used=[c for c in ("T", "expiry", "strike", "type", "bid", "ask", "iv", "forward", "discount")
                      if c in t and t[c].notna().any()],
        columns_ignored=list(rep.ignored), layout=rep.layout, notes=list(rep.notes),
        n_expiries=int(np.unique(np.round(T[used], 9)).size) if used.any() else 0,
        forwards=_forward_records(chain))
    check_enough(report, T[used | (status == "outside")], rep.source)
    return QuoteSet(table=t, report=report, forwards=chain.forwards)
