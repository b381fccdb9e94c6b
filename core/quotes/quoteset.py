"""The importer's result: a normalised quote table with a report of what happened to every row.

Shared by the two readers of core.quotes.read: the generic one-quote-per-row path
(core.quotes.normalise) and the vendor-layout chain path (core.quotes.chain_import, converted by
core.quotes.from_chain). Both mark valid quotes beyond the model grid's reach as ``outside``
(``mark_outside``) and refuse a file with too few usable quotes (``check_enough``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from core.engine.grid import MAX_IV, MIN_QUOTES  # noqa: F401  (one place for both; re-exported)
from core.engine.grid_read import K_CATCHMENT, T_CATCHMENT

# A vol under 0.1 % is no market's: w = iv^2 T underflows or rounds to the floor downstream.
MIN_IV = 1e-3
MIN_EXPIRIES = 2
# Quotes within half a grid step of the grid's box inform its edge nodes (core.quotes.gridding).
T_RANGE = T_CATCHMENT                  # (0.08, 2.08) years
K_RANGE = K_CATCHMENT                  # (-0.478, 0.478)
_RANGE_EPS = 1e-9
# The chain path's own domain (``QuoteSet.on_own_domain``): beyond these bounds a row is no quote a
# surface can hold, and it is dropped with its reason. Under MIN_CHAIN_T (5 minutes) w = iv^2 T sits
# at the chain surface's floor (core.chain.build.W_FLOOR = 1e-8, a 3 % vol at T = 1e-5): quotes at
# T = 1e-9 came out at 317 % vol. Beyond MAX_CHAIN_T the T column is in days (548 "years" was a
# 1.5-year expiry). Beyond MAX_CHAIN_ABS_K a strike is over e^5 = 148 times the forward or under
# 1/148 of it: quotes at k = +-20 stretched the dense check's 201 strikes over [-20, 20] and it failed.
# More than MAX_CHAIN_EXPIRIES is several chains or dates in one file (SPX lists about 60): 3,000
# expiries wrote a 160 MB grid.
MIN_CHAIN_T = 1e-5
MAX_CHAIN_T = 30.0
MAX_CHAIN_ABS_K = 5.0
MAX_CHAIN_EXPIRIES = 250


class QuoteError(ValueError):
    """A quote file that cannot be used; the message is one line naming the problem."""


def _rows_text(rows, limit: int = 8) -> str:
    rows = list(rows)
    head = ", ".join(str(r) for r in rows[:limit])
    return f"row {head}" if len(rows) == 1 else f"rows {head}" + (f", ... (+{len(rows) - limit})" if len(rows) > limit else "")


@dataclass
class ValidationReport:
    """What happened to every row. Row numbers are 1-based data rows (header excluded)."""

    source: str
    kind: str                                   # "iv" or "price"
    n_rows: int
    n_used: int
    dropped: dict = field(default_factory=dict)  # reason -> [rows]
    outside: dict = field(default_factory=dict)  # reason -> [rows]
    skipped: dict = field(default_factory=dict)  # valid quotes set aside by rule: reason -> [rows]
    warnings: list = field(default_factory=list)
    columns_used: list = field(default_factory=list)
    columns_ignored: list = field(default_factory=list)
    n_expiries: int = 0
    layout: str = "generic"                     # the vendor layout read (core.quotes.layouts)
    notes: list = field(default_factory=list)   # what was decided about the data (units, forwards)
    forwards: list = field(default_factory=list)  # per expiry: T, forward, discount, source, rate, residual, n_pairs
    own_domain: bool = False                    # read for a chain repair: no grid box, nothing "outside"

    @property
    def n_dropped(self) -> int:
        return sum(len(r) for r in self.dropped.values())

    @property
    def n_skipped(self) -> int:
        return sum(len(r) for r in self.skipped.values())

    @property
    def n_outside(self) -> int:
        return sum(len(r) for r in self.outside.values())

    def on_own_domain(self, n_used: int, n_expiries: int, dropped: dict) -> "ValidationReport":
        """The report as a chain repair (``--chain``) reads it: the quotes outside the grid's box
        are used like the others (it has no box), ``n_used`` of them on ``n_expiries`` expiries,
        with the drops ``dropped`` (the importer's and the chain domain's)."""
        return replace(self, n_used=int(n_used), outside={}, n_expiries=int(n_expiries), dropped=dropped,
                       own_domain=True)

    def lines(self) -> list:
        """Human-readable summary, one line each."""
        box = "" if self.own_domain else f"{self.n_outside} outside the grid, "
        out = [f"{self.source}: {self.n_rows} row(s) read ({self.kind} quotes); {self.n_used} used on "
               f"{self.n_expiries} expiries, {box}{self.n_skipped} set aside by rule, {self.n_dropped} dropped"]
        for reason, rows in self.outside.items():
            out.append(f"outside the grid, {reason}: {len(rows)} ({_rows_text(rows)})")
        for reason, rows in self.skipped.items():
            out.append(f"set aside, {reason}: {len(rows)} ({_rows_text(rows)})")
        for reason, rows in self.dropped.items():
            out.append(f"dropped, {reason}: {len(rows)} ({_rows_text(rows)})")
        out += [f"warning: {w}" for w in self.warnings]
        out += [f"note: {n}" for n in self.notes]
        if self.columns_ignored:
            out.append(f"ignored column(s): {', '.join(self.columns_ignored)}")
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per (status, reason): status, reason, count, rows (text)."""
        records = [("outside", r, rows) for r, rows in self.outside.items()]
        records += [("skipped", r, rows) for r, rows in self.skipped.items()]
        records += [("dropped", r, rows) for r, rows in self.dropped.items()]
        return pd.DataFrame({"status": [x[0] for x in records], "reason": [x[1] for x in records],
                             "count": [len(x[2]) for x in records],
                             "rows": [_rows_text(x[2], limit=20) for x in records]},
                            columns=["status", "reason", "count", "rows"])

    def to_dict(self) -> dict:
        return {"source": self.source, "kind": self.kind, "n_rows": self.n_rows, "n_used": self.n_used,
                "n_outside": self.n_outside, "n_skipped": self.n_skipped, "n_dropped": self.n_dropped,
                "n_expiries": self.n_expiries,
                "outside": {k: list(map(int, v)) for k, v in self.outside.items()},
                "skipped": {k: list(map(int, v)) for k, v in self.skipped.items()},
                "dropped": {k: list(map(int, v)) for k, v in self.dropped.items()},
                "warnings": list(self.warnings), "notes": list(self.notes), "layout": self.layout,
                "forwards": list(self.forwards),
                "columns_used": list(self.columns_used),
                "columns_ignored": list(self.columns_ignored)}


@dataclass
class QuoteSet:
    """A normalised quote table and its validation report.

    ``table`` has one row per input row, in file order, with columns
    row (1-based), T (years), k (ln K/F), iv (the quote, decimal vol), iv_bid, iv_ask,
    spread_iv (ask - bid in vol), status (used / outside / skipped / dropped), reason, n_merged
    (quotes averaged into this row), and the input columns that were read (expiry, strike,
    forward, type, price, discount, bid, ask) where present. A vendor layout whose line holds a
    call and a put (Cboe's download) gives two table rows with the same ``row``.
    """

    table: pd.DataFrame
    report: ValidationReport
    forwards: pd.DataFrame | None = None    # per expiry (T, forward, discount, source, ...) when derived

    @property
    def used(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "used"]

    def on_own_domain(self) -> "QuoteSet":
        """The quote set as a chain repair uses it: rows ``outside`` the grid's box become ``used``
        (reason cleared), used rows beyond the chain's own bounds (MIN_CHAIN_T, MAX_CHAIN_T,
        MAX_CHAIN_ABS_K) are dropped with their reason, and the report says so
        (ValidationReport.on_own_domain). QuoteError when too few quotes are left or when they
        span more than MAX_CHAIN_EXPIRIES expiries."""
        table = self.table.copy()
        outside = (table["status"] == "outside").to_numpy()
        table.loc[outside, "status"] = "used"
        table.loc[outside, "reason"] = ""
        T = pd.to_numeric(table["T"], errors="coerce").to_numpy(np.float64)
        k = pd.to_numeric(table["k"], errors="coerce").to_numpy(np.float64)
        used = (table["status"] == "used").to_numpy().copy()     # pandas hands out read-only views
        dropped = dict(self.report.dropped)
        for beyond, label in ((T < MIN_CHAIN_T, f"T below {MIN_CHAIN_T:g} years (under 5 minutes to expiry)"),
                              (T > MAX_CHAIN_T, f"T above {MAX_CHAIN_T:g} years (is T in days?)"),
                              (np.abs(k) > MAX_CHAIN_ABS_K, f"|k| above {MAX_CHAIN_ABS_K:g} (strike over "
                                                             f"{np.exp(MAX_CHAIN_ABS_K):.0f}x or under 1/"
                                                             f"{np.exp(MAX_CHAIN_ABS_K):.0f} of the forward)")):
            beyond &= used
            if beyond.any():
                table.loc[beyond, "status"] = "dropped"
                table.loc[beyond, "reason"] = label
                dropped[label] = table.loc[beyond, "row"].tolist()
                used &= ~beyond
        source = self.report.source
        E = np.unique(np.round(T[used], 9))
        n_expiries = E.size
        if n_expiries > MAX_CHAIN_EXPIRIES:
            raise QuoteError(f"{source}: the quotes span {n_expiries} expiries; one chain has at most "
                             f"{MAX_CHAIN_EXPIRIES} (several chains or valuation dates in one file?)")
        report = self.report.on_own_domain(int(used.sum()), n_expiries, dropped)
        if E.size >= 2 and E[-1] > 5.0 and E[-1] > 10.0 * E[-2]:
            # one expiry written in days among years (30 for 0.08) was taken as a 30-year expiry
            report = replace(report, warnings=[*report.warnings, f"the longest expiry (T = {E[-1]:.4g}) is "
                                               f"{E[-1] / E[-2]:.0f} times the next ({E[-2]:.4g}): days given as years?"])
        check_enough(report, T[used], source)
        return replace(self, table=table, report=report)

    @property
    def kind(self) -> str:
        return self.report.kind


def mark_outside(T: np.ndarray, k: np.ndarray, rows: np.ndarray, status: np.ndarray, reason: np.ndarray) -> dict:
    """Set status "outside" (with the bound as reason) on used quotes beyond the grid's reach, in
    place; returns {reason: [rows]}. The grid path cannot use them; the full-range chain path can."""
    outside = {}
    for mask, label in ((T < T_RANGE[0] - _RANGE_EPS, f"T below {T_RANGE[0]:.2f} years"),
                        (T > T_RANGE[1] + _RANGE_EPS, f"T above {T_RANGE[1]:.2f} years"),
                        (k < K_RANGE[0] - _RANGE_EPS, f"k below {K_RANGE[0]:.3f}"),
                        (k > K_RANGE[1] + _RANGE_EPS, f"k above {K_RANGE[1]:.3f}")):
        mask = mask & (status == "used")
        if mask.any():
            status[mask] = "outside"
            reason[mask] = label
            outside[label] = rows[mask].tolist()
    return outside


def _detail(report: ValidationReport) -> str:
    """The top drop reasons, and the maturity warning (T in days? expiries centuries away?) that
    usually explains a file with too few quotes."""
    parts = [f"{reason}: {len(r)}" for reason, r in list(report.dropped.items())[:3]]
    parts += [w for w in report.warnings if w.startswith("median T")]
    return f" ({'; '.join(parts)})" if parts else ""


def check_enough(report: ValidationReport, T_usable: np.ndarray, source: str) -> None:
    """At read time: refuse a file with too few quotes for any surface. Usable quotes are the used
    ones and those outside the 13 x 17 grid's box: a chain repair (``--chain``) takes every expiry
    and strike, so a file of weeklies, of 5-year expiries or of one smile is not refused here; a
    grid repair checks its own box and its two expiries (``check_grid``)."""
    n = T_usable.size
    if n == 0:
        raise QuoteError(f"{source}: no usable quotes in {report.n_rows} row(s){_detail(report)}")
    if n < MIN_QUOTES:
        raise QuoteError(f"{source}: only {n} usable quote(s); at least {MIN_QUOTES} are needed for a "
                         f"repair{_detail(report)}")


def check_grid(report: ValidationReport, T_used: np.ndarray, source: str) -> None:
    """Before a grid repair: enough of the quotes inside the grid's box (T_RANGE, K_RANGE)."""
    n_used = T_used.size
    box = f"T in [{T_RANGE[0]:.2f}, {T_RANGE[1]:.2f}] years, k in [{K_RANGE[0]:.3f}, {K_RANGE[1]:.3f}]"
    if n_used == 0:
        hint = "; is T in days? give years" if any("T is in years" in w for w in report.warnings) else ""
        raise QuoteError(f"{source}: all {report.n_outside} valid quotes lie outside the grid ({box}){hint}; "
                         "--chain repairs a chain on its own domain")
    if n_used < MIN_QUOTES:
        raise QuoteError(f"{source}: only {n_used} quote(s) inside the grid ({box}); at least {MIN_QUOTES} are "
                         "needed for a grid repair; --chain repairs a chain on its own domain")
    expiries = np.unique(np.round(T_used, 9))
    if expiries.size < MIN_EXPIRIES:
        raise QuoteError(f"{source}: the quotes inside the grid span a single expiry (T = {expiries[0]:.3f} years); "
                         f"a grid repair needs at least {MIN_EXPIRIES} expiries inside it ({box}); --chain repairs "
                         "a chain on its own domain, one smile included")
