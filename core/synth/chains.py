"""Synthetic option chains from our generators, at real expiries and listed strikes.

``surface_function(family, seed)`` turns one generated surface into a function w(T, k) defined
off the grid: for the SSVI families and ``merton_jump`` the generator's own closed form at any
(T, k) (equal to the generated grid on its nodes; Merton's is a model, arbitrage-free at every T
and k, so it also serves chains from one day to many years), for ``sabr_event`` the grid read through ``core.engine.grid_read.values_at``
(flat beyond the grid). ``make_chain`` lays a listed-options chain over it: expiries on third
Fridays (plus weeklies and quarterlies), strikes on an exchange-style ladder, quote noise of the
benchmark's profile, bid/ask spreads, optional stale quotes, as iv or as Black prices.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.engine.grid import T_GRID, w_to_iv
from core.engine import ssvi
from core.engine.grid_read import values_at
from core.synth.families import (
    SHIFTED_BUMP,
    sabr_event_total_variance,
    shifted_ssvi_total_variance,
    ssvi_total_variance,
)
from core.synth.missingness import NOISE_BP, STALE_SHIFT_BP, noise_profile

T_MAX = float(T_GRID.max())


def _theta_function(theta0: float, slope: float, curve: float):
    """The generators' ATM total variance theta(T), non-decreasing from the grid's first T as on
    the grid; below it theta shrinks in proportion to T (flat ATM vol), as a real front would."""
    T0 = float(T_GRID[0])
    fine = np.linspace(T0, 4.0, 3921)
    raw = ssvi.theta_quadratic(theta0, slope, curve, fine / T_MAX)
    run = np.maximum.accumulate(raw)
    return lambda T: np.where(T >= T0, np.interp(T, fine, run), run[0] * np.asarray(T) / T0)


def surface_function(family: str, seed: int, index: int = 0):
    """w(T, k) of surface ``index`` of ``generate(family, index + 1, seed)``, off the grid too."""
    n = index + 1
    if family in ("ssvi", "shifted_ssvi"):
        gen = ssvi_total_variance if family == "ssvi" else shifted_ssvi_total_variance
        _, p = gen(n, seed, return_params=True)
        q = {name: float(np.asarray(v)[index]) for name, v in p.items()}
        theta_of = _theta_function(q["theta0"], q["theta_slope"], q["theta_curve"])

        def w(T, k):
            T, k = np.broadcast_arrays(np.asarray(T, float), np.asarray(k, float))
            theta = theta_of(T)
            phi = ssvi.power_law_phi(theta, q["eta"], q["gamma"])
            out = ssvi.ssvi_total_variance(theta, q["rho"], phi, k)
            if family == "shifted_ssvi" and q.get("has_bump"):
                t_index = (T - T_GRID[0]) / (T_GRID[1] - T_GRID[0])
                bump = q["bump_amplitude"] * np.exp(-0.5 * ((t_index - q["bump_T_index"]) / SHIFTED_BUMP["width_nodes"]) ** 2)
                out = out + bump * (1.0 + 0.4 * np.tanh(4.0 * k))
            return np.maximum(out, 1e-4)
        return w
    if family == "sabr_event":
        grid = sabr_event_total_variance(n, seed)[index]

        def w(T, k):
            T, k = np.broadcast_arrays(np.asarray(T, float), np.asarray(k, float))
            iv_edge = np.sqrt(values_at(grid, T, k, clamp=True) / np.clip(T, T_GRID[0], T_GRID[-1]))
            return iv_edge**2 * T          # flat vol beyond the grid
        return w
    if family == "merton_jump":
        from core.synth.mixtures import MERTON_RANGES, merton_total_variance, merton_w

        _, p = merton_total_variance(n, seed, return_params=True)
        q = {name: float(p[name][index]) for name in MERTON_RANGES}

        def w(T, k):
            T, k = np.broadcast_arrays(np.asarray(T, float), np.asarray(k, float))
            return merton_w(q, T, k)          # no floor in w: a 1-day w is ~1e-4 at 19 % vol
        return w
    raise ValueError(f"unknown surface family {family!r}; choose one of ssvi, shifted_ssvi, sabr_event, merton_jump")


def noise_sd_at(T, k, noise_bp: float = NOISE_BP) -> np.ndarray:
    """The benchmark's quote-noise sd (vol units) at any (T, k), flat beyond the grid."""
    profile = values_at(noise_profile(), T, k, clamp=True, monotone=False)
    return noise_bp / 1e4 * profile


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def listed_expiries(valuation: dt.date, weeklies: int = 3, monthlies: int = 12, horizon_years: float = 2.6) -> list:
    """Weekly Fridays, monthly third Fridays for a year, then quarterly third Fridays (Mar/Jun/Sep/Dec)."""
    out = set()
    friday = valuation + dt.timedelta(days=(4 - valuation.weekday()) % 7 or 7)
    for i in range(weeklies):
        out.add(friday + dt.timedelta(weeks=i))
    y, m = valuation.year, valuation.month
    count = 0
    while True:
        date = third_friday(y, m)
        years = (date - valuation).days / 365.0
        if years > horizon_years:
            break
        if date > valuation and (count < monthlies or m in (3, 6, 9, 12)):
            out.add(date)
            count += 1
        m += 1
        if m > 12:
            y, m = y + 1, 1
    return sorted(out)


@dataclass
class ChainSpec:
    """How a synthetic chain looks. Prices in index points; rates continuously compounded."""

    spot: float = 5000.0
    rate: float = 0.04
    dividend_yield: float = 0.015
    valuation: dt.date = dt.date(2025, 3, 14)
    put_sd: float = 3.0            # strikes listed down to put_sd, up to call_sd, ATM-vol standard moves
    call_sd: float = 2.2
    atm_vol: float = 0.2
    noise_bp: float = NOISE_BP
    half_spread_noise: float = 1.5  # half bid/ask spread in vol = this x the quote-noise sd
    stale_fraction: float = 0.0
    stale_bp: tuple = STALE_SHIFT_BP
    tick: float = 0.05             # price tick
    min_price: float = 0.25        # options with an ask below this are not listed
    weeklies: int = 3
    monthlies: int = 12
    horizon_years: float = 2.6
    extra_expiry_days: tuple = ()  # more expiries, in calendar days after valuation (1 = tomorrow)
    k_min: float | None = None     # list puts down to this log-moneyness at every expiry, if lower
    strike_step_factor: float = 1.0  # > 1 lists fewer strikes (a coarser ladder)


def strike_step(T: float, spot: float = 5000.0) -> float:
    """Listed strike spacing: 0.5 % of spot under three months, 1 % to a year, 2 % beyond, rounded
    to a 1 / 2.5 / 5 ladder (25 / 50 / 100 for an index at 5000)."""
    raw = spot * (0.005 if T < 0.25 else 0.01 if T < 1.0 else 0.02)
    scale = 10.0 ** np.floor(np.log10(raw))
    return float(min((1.0, 2.5, 5.0, 10.0), key=lambda m: abs(m * scale - raw)) * scale)


def make_chain(w_fn, spec: ChainSpec = ChainSpec(), seed: int = 0, as_prices: bool = False,
               both_types: bool = False) -> pd.DataFrame:
    """A listed chain over the surface w_fn(T, k): one row per option.

    Columns: valuation_date, expiry, T, strike, forward, discount, k, iv_true, is_stale, and
    either iv/bid/ask in vol (``as_prices`` False) or type/price/bid/ask in price units (mid on
    the tick grid). ``both_types`` lists a call and a put at every strike (prices only).
    """
    rng = np.random.default_rng(seed)
    rows = []
    expiries = set(listed_expiries(spec.valuation, spec.weeklies, spec.monthlies, spec.horizon_years))
    expiries |= {spec.valuation + dt.timedelta(days=int(d)) for d in spec.extra_expiry_days}
    for expiry in sorted(expiries):
        T = (expiry - spec.valuation).days / 365.0
        forward = spec.spot * np.exp((spec.rate - spec.dividend_yield) * T)
        move = spec.atm_vol * np.sqrt(T)
        step = strike_step(T, spec.spot) * spec.strike_step_factor
        k_lo = -spec.put_sd * move if spec.k_min is None else min(-spec.put_sd * move, spec.k_min)
        lo = np.ceil(forward * np.exp(k_lo) / step) * step
        hi = np.floor(forward * np.exp(spec.call_sd * move) / step) * step
        strikes = np.arange(lo, hi + step / 2, step)
        for K in strikes:
            rows.append((expiry, T, float(K), forward, np.exp(-spec.rate * T)))
    df = pd.DataFrame(rows, columns=["expiry", "T", "strike", "forward", "discount"])
    df["k"] = np.log(df["strike"] / df["forward"])
    T, k = df["T"].to_numpy(), df["k"].to_numpy()
    iv_true = w_to_iv(w_fn(T, k), T)
    sd = noise_sd_at(T, k, spec.noise_bp)
    iv = iv_true + rng.normal(size=T.size) * sd
    stale = rng.random(T.size) < spec.stale_fraction
    shift = rng.choice([-1.0, 1.0], size=T.size) * rng.uniform(*spec.stale_bp, size=T.size) / 1e4
    iv = np.where(stale, iv + shift, iv)
    iv = np.maximum(iv, 0.02)
    half = spec.half_spread_noise * sd
    df.insert(0, "valuation_date", spec.valuation.isoformat())
    df["expiry"] = [e.isoformat() for e in df["expiry"]]
    df["iv_true"] = iv_true
    df["is_stale"] = stale
    if not as_prices:
        df["iv"] = iv
        df["bid"] = np.maximum(iv - half, 0.005)
        df["ask"] = iv + half
        return df
    from core.engine.black import black_price

    types = [("call", True), ("put", False)] if both_types else [None]
    parts = []
    for entry in types:
        part = df.copy()
        is_call = (k >= 0) if entry is None else np.full(T.size, entry[1])
        part["type"] = np.where(is_call, "call", "put")
        F, K, D = part["forward"].to_numpy(), part["strike"].to_numpy(), part["discount"].to_numpy()
        mid = black_price(F, K, T, iv, is_call, D)
        bid = black_price(F, K, T, np.maximum(iv - half, 0.005), is_call, D)
        ask = black_price(F, K, T, iv + half, is_call, D)
        # keep the quoted mid on the tick grid: bid rounds down, ask up around it
        part["bid"] = np.floor(np.minimum(bid, mid) / spec.tick) * spec.tick
        part["ask"] = np.ceil(np.maximum(ask, mid) / spec.tick) * spec.tick
        part["price"] = mid
        parts.append(part[part["ask"] >= spec.min_price])
    out = pd.concat(parts).sort_values(["expiry", "strike", "type"]).reset_index(drop=True)
    return out


# A published vol matrix (DAX 2002-like): expiries in days, strikes as fractions of spot, shared; DAX starts
# at 13 days, but the generators start at 0.08 years and their shorter fronts are extrapolations (vols of 100-200 %)
MATRIX_DAYS = (30, 58, 86, 165, 256, 345, 524, 703)   # from the generators' first expiry, 0.08 y
MATRIX_STRIKES = (0.76, 0.81, 0.85, 0.9, 0.94, 0.98, 1.01, 1.03, 1.07, 1.12, 1.16, 1.21, 1.25)


def make_matrix(w_fn, seed: int = 0, noise_bp: float = 8.0, spot: float = 4500.0, rate: float = 0.035,
                days=MATRIX_DAYS, strikes=MATRIX_STRIKES, keep: float = 1.0) -> pd.DataFrame:
    """A published implied-vol matrix over w_fn(T, k): the same strikes (``strikes`` x spot) at
    every expiry (``days`` / 365 years), no bid/ask, roughness noise, one row per node.

    The roughness is normal with sd noise_bp x the benchmark's profile (noise_sd_at: up to 2.5x in
    the wings, 1.6x at the front) x a per-expiry factor uniform in [0.5, 1.5] (published matrices
    are smoother at some expiries than at others); the default 8 bp gives a typical sd of about
    13 bp, against 10-30 bp for the leave-one-out residuals of DAX 2002's expiries after its front. ``keep`` < 1 drops each node with probability
    1 - keep (a sparse matrix, every expiry keeping at least 5). Columns: T, strike, forward,
    discount, k, iv_true, iv, bid and ask (NaN)."""
    rng = np.random.default_rng(seed)
    T = np.repeat(np.asarray(days, float) / 365.0, len(strikes))
    K = np.tile(np.asarray(strikes, float) * spot, len(days))
    forward = spot * np.exp(rate * T)
    k = np.log(K / forward)
    iv_true = w_to_iv(w_fn(T, k), T)
    factor = np.repeat(rng.uniform(0.5, 1.5, len(days)), len(strikes))
    iv = np.maximum(iv_true + rng.normal(size=T.size) * noise_sd_at(T, k, noise_bp) * factor, 0.02)
    on = rng.random(T.size) < keep
    for i in range(len(days)):
        part = slice(i * len(strikes), (i + 1) * len(strikes))
        if on[part].sum() < 5:
            on[part][rng.choice(len(strikes), 5, replace=False)] = True
    df = pd.DataFrame({"T": T, "strike": K, "forward": forward, "discount": np.exp(-rate * T), "k": k,
                       "iv_true": iv_true, "iv": iv, "bid": np.nan, "ask": np.nan})
    return df[on].reset_index(drop=True)
