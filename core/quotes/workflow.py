"""Repair a real option chain: quotes -> grid -> core.repair -> back to every quote.

``repair_quotes(source, method)`` is the one call behind the CLI and the "Your quotes" page:

    from core.quotes.workflow import repair_quotes
    out = repair_quotes("samples/quotes_iv.csv")          # method: best (DEFAULT_METHOD)
    out.grid_table     # 221 rows: T, k, iv, sd, method, observed, iv_quoted, n_quotes, extrapolated
    out.quote_table    # one row per input row: input, repaired, residual, stale score and flag
    out.svi_table      # per-slice raw-SVI (a, b, rho, m, sigma) of the downstream SVI fit
    out.report.lines() # rows used / outside / set aside / dropped, and why

Bad input raises ``ValueError`` (``QuoteError`` for the file, ``core.pipeline`` checks for the grid)
with a one-line message; a missing or corrupt weights file of a learned method (cnn, vae, best)
raises ``core.repairers.cnn.WeightsError`` whose message names the baselines, which still work.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.engine.baselines import fit_svi_slices
from core.engine.domain import outside_quoted, quoted_bounds
from core.engine.envelope import ENVELOPE_HIGH, ENVELOPE_LOW
from core.engine.grid import K_GRID, K_MESH, T_GRID, T_MESH, iv_to_w, w_to_iv
from core.pipeline import RepairResult, repair
from core.engine.grid_read import iv_at, values_at
from core.quotes import desk
from core.quotes import stale as stale_mod
from core.quotes.gridding import Gridded, GridRule, grid_quotes
from core.quotes.quoteset import check_grid
from core.quotes.read import QuoteError, QuoteSet, ValidationReport, as_quoteset
from core.repairers.registry import DEFAULT_METHOD, METHODS, repairer_class
from core.repairers.weights import WeightsError
from core.settings import SAMPLES_DIR

# The most accurate on the sample chains (tools/measure_samples.py); interp where best is absent.

BAND_LEVEL = 0.95   # the level of the band the quotes page draws: the explorer's (ui.presenters.explore)

SAMPLES = {"implied vols (index chain)": "quotes_iv.csv", "prices with dates (single stock)": "quotes_prices.csv"}


def sample_bytes(label: str) -> tuple:
    """(bytes, file name) of a shipped sample file by its label in SAMPLES."""
    name = SAMPLES[label]
    return (SAMPLES_DIR / name).read_bytes(), name


@dataclass
class QuoteRepair:
    """Everything one repair of a quote file produced."""

    quotes: QuoteSet
    gridded: Gridded
    result: RepairResult
    quote_table: pd.DataFrame
    grid_table: pd.DataFrame
    svi_table: pd.DataFrame
    stale_threshold: float
    stale_calibrated: bool
    stale_basis: str                  # "interp-leave-out", or the method's name when it has stale_score
    notes: list = field(default_factory=list)

    @property
    def report(self) -> ValidationReport:
        return self.quotes.report

    @property
    def method(self) -> str:
        return self.result.method

    @property
    def n_flagged(self) -> int:
        return int(self.quote_table["stale_flag"].sum())

    def expiries(self) -> np.ndarray:
        """Sorted distinct T (years) of the used quotes."""
        t = self.quote_table.loc[self.quote_table["status"] == "used", "T"].to_numpy(dtype=np.float64)
        return np.unique(np.round(t, 9))

    def band(self, level: float = BAND_LEVEL) -> tuple | None:
        """(q, label) of the method's own central ``level`` interval, half-width = q x sd (conformal
        for a calibrated method such as best, Gaussian z otherwise: the explorer's band); None
        without an sd."""
        if self.result.sd is None or self.result.half_width_fn is None:
            return None
        q = float(np.ravel(self.result.half_width_fn(np.ones(1), level))[0])
        kind = repairer_class(self.method).interval_kind
        pct = f"{100 * level:g} %"
        return q, (f"conformal {pct} band" if kind == "conformal" else f"±{q:.2f} sd (Gaussian {pct}) band")

    def smile(self, T: float, n: int = 121) -> tuple:
        """(curve, quotes) at maturity T (years): the repaired smile on n points of k across the grid
        (columns k, iv, sd, half_width of the BAND_LEVEL band, extrapolated) and this expiry's quotes
        (every status) from ``quote_table``."""
        k = np.linspace(K_GRID[0], K_GRID[-1], n)
        t = np.full(n, float(T))
        w_rep = iv_to_w(self.result.iv)
        curve = pd.DataFrame({"k": k, "iv": iv_at(w_rep, t, k)})
        curve["sd"] = values_at(self.result.sd, t, k, monotone=False) if self.result.sd is not None else np.nan
        band = self.band()
        curve["half_width"] = band[0] * curve["sd"] if band else np.nan
        curve["extrapolated"] = self.extrapolated(t, k)
        quotes = self.quote_table[np.isclose(self.quote_table["T"].to_numpy(dtype=np.float64), T, atol=1e-9)]
        return curve, quotes

    def term_structure(self, k_index: int) -> pd.DataFrame:
        """Repaired iv (sd, half_width of the BAND_LEVEL band) along T at grid node k_index, with the
        gridded quote where there is one and whether each node is extrapolated."""
        band = self.band()
        sd = self.result.sd[:, k_index] if self.result.sd is not None else np.full(T_GRID.size, np.nan)
        return pd.DataFrame({"T": T_GRID, "iv": self.result.iv[:, k_index], "sd": sd,
                             "half_width": band[0] * sd if band else np.nan,
                             "iv_quoted": self.gridded.iv_obs[:, k_index],
                             "extrapolated": self.extrapolated(T_GRID, np.full(T_GRID.size, K_GRID[k_index]))})

    def extrapolated(self, T, k) -> np.ndarray:
        """True where (T years, k) lies outside the quoted region: before the first or after the last
        used expiry, or outside that maturity's quoted k range (linear in T between expiries), the
        rule of core.engine.domain, which the chain path uses too."""
        return extrapolated_mask(self.quote_table, T, k)

    def expiry_labels(self) -> dict:
        """{T: "0.767 y · 2025-09-19"} for each of ``expiries()``; the date only where the file gave one."""
        used = self.quote_table[self.quote_table["status"] == "used"]
        T_used = used["T"].to_numpy(dtype=np.float64)
        dates = used["expiry"].astype(str).to_numpy() if "expiry" in used.columns else None
        out = {}
        for T in self.expiries():
            label = f"{T:.3f} y"
            if dates is not None:
                hit = np.flatnonzero(np.isclose(T_used, T, atol=1e-9))   # expiries() rounds T: match, not ==
                date = dates[hit[0]] if hit.size else ""
                if date and date.lower() not in ("nan", "none", "nat"):
                    label += f" · {date[:10]}"
            out[T] = label
        return out

    def fan(self) -> pd.DataFrame:
        """The repaired grid as lines, one per maturity (core.quotes.desk.fan_table): T (years), k, iv,
        extrapolated and w (total variance)."""
        return desk.fan_table(self.result.iv, self.extrapolated)

    def atm(self) -> pd.DataFrame:
        """ATM vol and skew term structures with the BAND_LEVEL band (core.quotes.desk.atm_table)."""
        band = self.band()
        half = band[0] * self.result.sd if band and self.result.sd is not None else None
        return desk.atm_table(self.result.iv, half, self.extrapolated)

    def density(self) -> pd.DataFrame:
        """g(k) of the repaired grid per maturity (core.quotes.desk.density_table)."""
        return desk.density_table(self.result.iv, self.extrapolated)

    def quote_fit(self) -> dict:
        """How the repair meets the used quotes (in sample: they went into the repair): n_used;
        rmse_iv, the root mean square of quote mid minus repair (vol units); n_bid_ask, the used
        quotes with a bid and an ask in vol; inside_bid_ask, the share of those where the repair
        lies within [iv_bid, iv_ask] (NaN when none has both)."""
        used = self.quote_table[self.quote_table["status"] == "used"]
        residual = used["residual"].to_numpy(dtype=np.float64)
        rmse = float(np.sqrt(np.nanmean(residual ** 2))) if np.isfinite(residual).any() else float("nan")
        if {"iv_bid", "iv_ask"} <= set(used.columns):
            bid, ask = used["iv_bid"].to_numpy(dtype=np.float64), used["iv_ask"].to_numpy(dtype=np.float64)
        else:
            bid = ask = np.full(len(used), np.nan)
        iv = used["iv_repaired"].to_numpy(dtype=np.float64)
        known = np.isfinite(bid) & np.isfinite(ask) & np.isfinite(iv)
        inside = (iv[known] >= bid[known]) & (iv[known] <= ask[known])
        return {"n_used": len(used), "rmse_iv": rmse, "n_bid_ask": int(known.sum()),
                "inside_bid_ask": float(inside.mean()) if known.any() else float("nan")}

    def flagged(self) -> pd.DataFrame:
        """The flagged quotes, highest score first."""
        return self.quote_table[self.quote_table["stale_flag"]].sort_values("stale_score", ascending=False)

    def summary_lines(self) -> list:
        out = list(self.report.lines())
        obs = int(self.result.observed.sum())
        out.append(f"grid: {obs} of {self.result.observed.size} nodes quoted; repaired with {self.method}")
        if self.stale_basis == "none":
            out.append("stale flags: not computed")
        else:
            cal = "" if self.stale_calibrated else ", default: not calibrated"
            out.append(f"stale flags: {self.n_flagged} quote(s) with score above {self.stale_threshold:.2f} "
                       f"({self.stale_basis}{cal})")
        out += self.notes
        return out


def compare_table(repairs: dict) -> pd.DataFrame:
    """Several methods' repairs of one chain side by side, ``repairs`` = {method: QuoteRepair}: one
    row per method with its ``QuoteRepair.quote_fit`` (method, n_used, rmse_iv, n_bid_ask,
    inside_bid_ask)."""
    return pd.DataFrame([{"method": m} | r.quote_fit() for m, r in repairs.items()],
                        columns=["method", "n_used", "rmse_iv", "n_bid_ask", "inside_bid_ask"])


def extrapolated_mask(quote_table: pd.DataFrame, T, k) -> np.ndarray:
    """Bool array (broadcast of T years, k log-moneyness): outside the region the used quotes of
    ``quote_table`` span (core.engine.domain, the chain path's rule). A repair there is a model's
    guess, not an interpolation between quotes, and the page and grid.csv say so."""
    used = quote_table[quote_table["status"] == "used"]
    return outside_quoted(*quoted_bounds(used["T"].to_numpy(np.float64), used["k"].to_numpy(np.float64)), T, k)


def _with_weights_hint(exc: WeightsError, method: str) -> WeightsError:
    baselines = ", ".join(m for m in METHODS if not repairer_class(m).needs_weights)
    return WeightsError(f"{exc} -- the {method} method cannot run; the baselines ({baselines}) still work")


def repair_quotes(source, method: str = DEFAULT_METHOD, stale: bool = True, rule: GridRule = GridRule(),
                  valuation_date=None, name: str | None = None, arbitrage: str | None = None,
                  **config) -> QuoteRepair:
    """Read (if needed), grid, repair and map back a quote file.

    source: a QuoteSet, a pandas DataFrame of raw quote columns, or anything ``read_quotes``
    accepts (path, bytes, upload). method: one of core.METHODS. stale: compute stale scores
    (a leave-out repair per quote; costs a batch of repairs). arbitrage: core.repair's projection
    ("calendar", "full", "none"; None = the method's default). ``config`` goes to the method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    quotes = as_quoteset(source, name, valuation_date)
    table = quotes.table
    used = (table["status"] == "used").to_numpy()
    T_u, k_u, iv_u = (table.loc[used, c].to_numpy(dtype=np.float64) for c in ("T", "k", "iv"))
    check_grid(quotes.report, T_u, quotes.report.source)
    gridded = grid_quotes(T_u, k_u, iv_u, rule)
    n_nodes = int(gridded.observed.sum())
    if n_nodes < 4:
        raise QuoteError(f"{quotes.report.source}: the {used.sum()} usable quotes reach only {n_nodes} grid node(s); "
                         "at least 4 are needed (quotes must lie within half a grid step of a node)")
    large = used.sum() > stale_mod.EXACT_MAX_QUOTES
    try:
        result = repair(gridded.iv_obs, method, arbitrage=arbitrage, **config)
        detector, key = stale_mod.detector_for(method, **config)
        scores = None
        if stale:
            key, scores = _stale_scores(detector, key, gridded, (T_u, k_u, iv_u), result, large)
    except WeightsError as exc:
        raise _with_weights_hint(exc, method) from None
    threshold, calibrated = stale_mod.threshold_for(key)
    qt = _quote_table(quotes, used, gridded, result, scores, threshold)
    notes = []
    if np.any(result.clamped):
        notes.append(f"note: the repair was held within the envelope of the quotes ({ENVELOPE_LOW:g} x the lowest "
                     f"to {ENVELOPE_HIGH:g} x the highest quoted vol; docs/robustness.md)")
    if stale and large:
        notes.append(f"note: {int(used.sum()):,} quotes (over {stale_mod.EXACT_MAX_QUOTES:,}): stale scores are "
                     "in-sample residuals against the repair, not leave-one-out refits")
    if not calibrated and stale:
        notes.append(f"note: the stale threshold for {key} is the default {threshold:g}; "
                     "run `python -m core.cli stale --calibrate` to calibrate it")
    return QuoteRepair(quotes=quotes, gridded=gridded, result=result, quote_table=qt,
                       grid_table=_grid_table(result, gridded, method, qt),
                       svi_table=svi_params_table(iv_to_w(result.iv), method), stale_threshold=threshold,
                       stale_calibrated=calibrated, stale_basis=key if stale else "none", notes=notes)


def _stale_scores(detector, key: str, gridded: Gridded, quotes: tuple, result, large: bool) -> tuple:
    """(score key, {"score", "iv_loo"} per used quote): ``detector``'s exact leave-out scores, or
    in-sample residuals for a chain over EXACT_MAX_QUOTES (bounded cost; see core.quotes.stale)."""
    T_u, k_u, iv_u = quotes
    w_rep = iv_to_w(result.iv)
    if large:
        return stale_mod.IN_SAMPLE, stale_mod.in_sample_scores(T_u, k_u, iv_u, w_rep)
    return key, stale_mod.quote_scores(detector, gridded, T_u, k_u, iv_u, w_repaired=w_rep)


def _quote_table(quotes: QuoteSet, used: np.ndarray, gridded: Gridded, result, scores, threshold: float) -> pd.DataFrame:
    """The importer's table plus, per row: the repaired vol and sd wherever (T, k) is valid and in
    the grid's catchment, the residual and stale score of each used quote, its flag, the repaired
    price of a price quote and the quote's main grid node."""
    table = quotes.table
    w_rep = iv_to_w(result.iv)
    T_all = table["T"].to_numpy(dtype=np.float64)
    k_all = table["k"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        iv_rep = iv_at(w_rep, T_all, k_all)
        sd_rep = values_at(result.sd, T_all, k_all, monotone=False) if result.sd is not None else np.full(len(table), np.nan)
    qt = table.copy()
    qt["iv_repaired"] = iv_rep
    qt["sd_repaired"] = sd_rep
    qt["residual"] = np.where(used, qt["iv"].to_numpy() - iv_rep, np.nan)
    qt["stale_score"] = np.nan
    qt["iv_leave_out"] = np.nan
    if scores is not None:
        qt.loc[used, "stale_score"] = scores["score"]
        qt.loc[used, "iv_leave_out"] = scores["iv_loo"]
    qt["stale_flag"] = (qt["stale_score"] > threshold).fillna(False).astype(bool)
    if quotes.kind == "price":
        from core.engine.black import black_price

        is_call = (qt["type"] == "call").to_numpy()
        with np.errstate(all="ignore"):
            qt["price_repaired"] = black_price(qt["forward"].to_numpy(), qt["strike"].to_numpy(), T_all,
                                               iv_rep, is_call, qt["discount"].to_numpy())
    main = np.full(len(qt), -1)
    main[used] = gridded.main_node()
    qt["node_T"] = np.where(main >= 0, T_MESH.ravel()[np.maximum(main, 0)], np.nan)
    qt["node_k"] = np.where(main >= 0, K_MESH.ravel()[np.maximum(main, 0)], np.nan)
    qt["extrapolated"] = extrapolated_mask(qt, T_all, k_all)
    return qt


def _grid_table(result, gridded: Gridded, method: str, quote_table: pd.DataFrame) -> pd.DataFrame:
    """One row per grid node: the repaired vol and sd, what was quoted there, the raw fit and
    whether the node lies outside the quoted region (``extrapolated_mask`` of the quote table)."""
    return pd.DataFrame({
        "T": T_MESH.ravel(), "k": K_MESH.ravel(), "iv": result.iv.ravel(),
        "sd": result.sd.ravel() if result.sd is not None else np.nan, "method": method,
        "observed": gridded.observed.ravel(), "iv_quoted": gridded.iv_obs.ravel(),
        "n_quotes": gridded.n_quotes.ravel(), "iv_raw": result.iv_raw.ravel(),
        "extrapolated": extrapolated_mask(quote_table, T_MESH.ravel(), K_MESH.ravel()),
    })


def svi_params_table(w_repaired: np.ndarray, method: str) -> pd.DataFrame:
    """Per-slice raw-SVI fit of a full repaired (13, 17) w grid (every node counts as quoted).

    Columns: T, a, b, rho, m, sigma (raw SVI: w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2))),
    rmse_iv (fit error over the slice's 17 nodes, vol units), method.
    """
    full = np.ones(w_repaired.shape, dtype=bool)
    fitted, params = fit_svi_slices(w_repaired, full, return_params=True)
    iv_fit, iv_rep = w_to_iv(fitted), w_to_iv(w_repaired)
    return pd.DataFrame({"T": T_GRID, "a": params[:, 0], "b": params[:, 1], "rho": params[:, 2],
                         "m": params[:, 3], "sigma": params[:, 4],
                         "rmse_iv": np.sqrt(np.mean((iv_fit - iv_rep) ** 2, axis=1)), "method": method})
