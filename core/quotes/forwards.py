"""Per-expiry forward F and discount factor D for an option chain.

Put-call parity for European options: C - P = D (F - K). Over strikes where both a call and a put
have a two-sided quote, y = C_mid - P_mid is linear in K with intercept a = D F and slope b = -D,
so D = -b and F = a / D. The fit uses the strikes nearest the money (smallest |y|), where both legs
are liquid and, for American options, the early-exercise premium of either leg is smallest. It is
robust: iteratively re-weighted least squares with Huber weights on residuals scaled by their
median absolute deviation, so one stale leg does not move F.

Otherwise F = S exp((r - q) T), D = exp(-r T) from a spot S, a continuously compounded rate r and
a dividend yield q given as columns or options.

Units: prices and strikes in the chain's currency units, T in years, rates per year (continuous).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

N_NEAR = 12            # strikes nearest the money used by the parity fit (as many as there are, if fewer)
MIN_PAIRS = 2          # a line needs two strikes
HUBER_C = 1.345        # the usual 95 %-efficiency Huber constant
MAX_IRLS = 20
# A parity slope outside this range is not a discount factor (rates beyond about -20 % .. +70 %
# a year at one year): the fit is rejected and the fallback used.
D_RANGE = (0.5, 1.2)


@dataclass(frozen=True)
class ParityFit:
    """One expiry's parity regression: F, D, the implied rate -ln(D)/T, residual RMS (price
    units, robust-weighted) and the number of strikes used."""

    forward: float
    discount: float
    rate: float
    residual: float
    n_pairs: int


def _huber_line(x: np.ndarray, y: np.ndarray) -> tuple:
    """Robust straight line y = a + b x by IRLS with Huber weights; returns (a, b, weighted RMS)."""
    w = np.ones_like(x)
    a = b = 0.0
    for _ in range(MAX_IRLS):
        sw = np.sqrt(w)
        A = np.column_stack([sw, sw * x])
        (a_new, b_new), *_ = np.linalg.lstsq(A, sw * y, rcond=None)
        resid = y - a_new - b_new * x
        scale = 1.4826 * np.median(np.abs(resid - np.median(resid)))
        # a (near) exact fit has no scale: stop with equal weights
        if not scale > 1e-12 * max(1.0, np.abs(y).max()):
            a, b = a_new, b_new
            break
        u = np.abs(resid) / (HUBER_C * scale)
        w = np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1e-300))
        done = abs(a_new - a) <= 1e-12 * max(1.0, abs(a_new)) and abs(b_new - b) <= 1e-14
        a, b = a_new, b_new
        if done:
            break
    resid = y - a - b * x
    rms = float(np.sqrt(np.sum(w * resid**2) / np.sum(w)))
    return float(a), float(b), rms


def parity_fit(strike, call_mid, put_mid, T: float, n_near: int = N_NEAR) -> ParityFit | None:
    """Forward and discount of one expiry from call and put mid prices at the same strikes.

    Inputs: arrays of strike, call mid and put mid (price units, one entry per strike, NaN where a
    leg is missing), T in years (> 0). Output: a ParityFit, or None when fewer than MIN_PAIRS
    strikes have both legs or the fitted slope is not a discount factor in D_RANGE.
    """
    K = np.asarray(strike, float)
    with np.errstate(all="ignore"):
        y = np.asarray(call_mid, float) - np.asarray(put_mid, float)
    ok = np.isfinite(K) & np.isfinite(y) & (K > 0)
    K, y = K[ok], y[ok]
    if np.unique(K).size < MIN_PAIRS:
        return None
    near = np.argsort(np.abs(y), kind="stable")[:max(n_near, MIN_PAIRS)]
    K, y = K[near], y[near]
    if np.unique(K).size < MIN_PAIRS:
        return None
    # centre and scale strikes so the 2 x 2 system is well conditioned at index levels
    K0, Ks = float(np.mean(K)), float(np.std(K)) or 1.0
    with np.errstate(all="ignore"):          # absurd prices (1e308) fail the D_RANGE test below
        a, b, rms = _huber_line((K - K0) / Ks, y)
    D = -b / Ks
    if not (np.isfinite(D) and D_RANGE[0] <= D <= D_RANGE[1]):
        return None
    F = (a + D * K0) / D
    if not (np.isfinite(F) and F > 0):
        return None
    return ParityFit(forward=float(F), discount=float(D), rate=float(-np.log(D) / T), residual=rms,
                     n_pairs=int(K.size))


MAX_CARRY = 1.0   # |rate| or |dividend yield| per year above 100 %: a percent typed for a decimal
                  # (--rate 4 gave forwards up to 400 times the spot and vols of 100-350 %)
MIN_RATE_SPAN = 7.0 / 365.0   # years: a discount is read as a rate over at least a week (normalise)


def carry_problem(spot=None, rate=None, dividend_yield=None) -> str | None:
    """What is wrong with a spot / rate / dividend yield given as options, in words, or None."""
    if spot is not None and not (np.isfinite(spot) and spot > 0):
        return f"spot {spot} is not a positive number"
    for label, x in (("rate", rate), ("dividend yield", dividend_yield)):
        if x is None:
            continue
        if not np.isfinite(x):
            return f"{label} {x} is not a finite number"
        if abs(x) > MAX_CARRY:
            return f"{label} {x:g} is {100 * x:g} % a year; give it as a decimal (0.04 = 4 %)"
    return None


def carry_forward(spot: float, rate: float, T, dividend_yield: float = 0.0) -> tuple:
    """(F, D) = (S exp((r - q) T), exp(-r T)) for T in years, continuous r and q per year."""
    T = np.asarray(T, float)
    return spot * np.exp((rate - dividend_yield) * T), np.exp(-rate * T)


def _pair_table(quotes: pd.DataFrame) -> pd.DataFrame:
    """Per (T, strike): call mid and put mid from two-sided quotes (bid > 0, ask >= bid)."""
    bid, ask = quotes["bid"].to_numpy(float), quotes["ask"].to_numpy(float)
    two = np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask >= bid)
    q = quotes.loc[two, ["T", "strike", "is_call"]].copy()
    q["mid"] = 0.5 * (bid[two] + ask[two])
    table = q.pivot_table(index=["T", "strike"], columns="is_call", values="mid", aggfunc="mean")
    return table.rename(columns={True: "call", False: "put"}).reindex(columns=["call", "put"])


def expiry_forwards(quotes: pd.DataFrame, spot=None, rate=None, dividend_yield=None,
                    n_near: int = N_NEAR) -> pd.DataFrame:
    """Forward and discount per expiry of a price chain.

    ``quotes`` has columns T (years), strike, is_call (bool), bid, ask (price units); optional
    per-row columns spot, rate, dividend_yield (used where the option of the same name is None).
    Returns one row per expiry: T, forward, discount, source ("parity" or "spot+rate" or "none"),
    rate (implied by D, per year), residual (parity RMS, price units; NaN otherwise), n_pairs.
    Parity is used where it fits; otherwise spot + rate (+ dividend yield, default 0).
    """
    pairs = _pair_table(quotes) if {"bid", "ask", "is_call"} <= set(quotes.columns) else None
    rows = []
    for T, group in quotes.groupby("T", sort=True):
        fit = None
        if pairs is not None and T in pairs.index.get_level_values(0):
            p = pairs.xs(T, level="T")
            fit = parity_fit(p.index.to_numpy(float), p["call"].to_numpy(), p["put"].to_numpy(), T, n_near)
        if fit is not None:
            rows.append((T, fit.forward, fit.discount, "parity", fit.rate, fit.residual, fit.n_pairs))
            continue
        S = spot if spot is not None else _first(group, "spot")
        r = rate if rate is not None else _first(group, "rate")
        q = dividend_yield if dividend_yield is not None else _first(group, "dividend_yield")
        if S is not None and r is not None:
            F, D = carry_forward(S, r, T, q or 0.0)
            rows.append((T, float(F), float(D), "spot+rate", float(r), np.nan, 0))
        else:
            rows.append((T, np.nan, np.nan, "none", np.nan, np.nan, 0))
    return pd.DataFrame(rows, columns=["T", "forward", "discount", "source", "rate", "residual", "n_pairs"])


def _first(group: pd.DataFrame, col: str):
    """The first finite value of a per-row column, or None."""
    if col not in group.columns:
        return None
    values = pd.to_numeric(group[col], errors="coerce").to_numpy(float)
    values = values[np.isfinite(values)]
    return float(values[0]) if values.size else None
