"""Surface families whose terminal law is a mixture of lognormals, priced in closed form.

Two families that no prior of ``best`` is fitted on: the synthetic benchmark's "outside the
prior" section (core.seeds.OUTSIDE_CELLS) scores the shipped model on them. Issue 11 names both
kinds of shape ("stochastic vol with jumps and steep short-end skews", "regime mixtures"); putting
them into the prior was measured and not shipped (docs/best_research_log.md, stage 5).

- ``merton_jump``  Merton jump-diffusion with a deterministic, mean-reverting diffusive variance.
                   Given n jumps the log-forward is normal, so the price is a Poisson-weighted sum
                   of Black prices: steep short-end skews that flatten with T, fat wings. A model,
                   so ``merton_w`` is arbitrage-free at every T and k (chains from one day).
- ``lognormal_mixture``  a static regime mixture (uncertain volatility, Brigo-Mercurio style): two
                   or three lognormal regimes, each with its own vol term structure and drift, the
                   mixture's forward kept at 1. A high-vol, low-drift regime gives skew, vol
                   dispersion gives curvature and W-shaped event smiles.

Both are proper terminal densities at each T (no butterfly arbitrage by construction); the
regime drifts can break calendar monotonicity slightly, so on the grid w is made non-decreasing in
T by a cumulative maximum, as the other families are (core.synth.families applies their common
floor). Prices are summed in linear space: a mixture's out-of-the-money price on the grid is at
least ~1e-12 for these ranges (fat tails), and the sum is inverted with
core.engine.black.implied_total_vol_otm.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from core.engine.black import implied_total_vol_otm, normalised_log_price
from core.engine.grid import K_GRID, T_GRID

IV_MIN = 0.01          # where the inversion fails (prices under ~1e-300): a floor in vol, not in w,
                       # so that it means the same at one day and at five years
POISSON_TERMS = 25     # jumps counted, 0..24: the tail beyond is < 1e-10 at lam T = 4 (0.8 a year, 5 years)

MERTON_RANGES: Dict[str, tuple] = {
    "vol_short": (0.08, 0.40),    # diffusive vol at T = 0
    "vol_long": (0.10, 0.30),     # long-run diffusive vol
    "kappa": (0.5, 6.0),          # speed at which the diffusive variance reverts, per year
    "lam": (0.05, 0.80),          # jump intensity, per year
    "jump_mean": (-0.22, 0.02),   # mean log jump
    "jump_sd": (0.04, 0.20),      # sd of the log jump
}
MIXTURE_RANGES: Dict[str, tuple] = {
    "vol_short": (0.06, 0.45),    # each regime's vol at T = 0 ...
    "vol_long": (0.08, 0.35),     # ... and long-run
    "kappa": (0.3, 5.0),
    "drift": (-0.35, 0.15),       # regime log-drift per year before the mixture is re-centred
    "three_regimes": (0.0, 1.0),  # < 0.35: a third regime
}
EQUITY_SHARE = 0.8     # mixture surfaces whose drifts fall as their regimes' vols rise


def _integrated_variance(vol_short, vol_long, kappa, T) -> np.ndarray:
    """int_0^T sigma^2(t) dt for sigma^2(t) = vol_long^2 + (vol_short^2 - vol_long^2) e^(-kappa t):
    non-decreasing in T whatever the parameters (sigma^2(t) > 0)."""
    a, b = vol_long**2, vol_short**2 - vol_long**2
    return a * T + b * (-np.expm1(-kappa * T)) / kappa


def mixture_otm_price(k: np.ndarray, weights: np.ndarray, log_forward: np.ndarray, total_var: np.ndarray) -> np.ndarray:
    """Out-of-the-money price (call for k >= 0, put for k < 0; mixture forward 1, undiscounted) of
    a mixture of lognormals: component j has weight weights[..., j], forward exp(log_forward[..., j])
    and total variance total_var[..., j]. k broadcasts against the leading axes."""
    k = np.asarray(k, np.float64)[..., None]
    call = k >= 0
    x = log_forward - k                                    # ln(F_j / K)
    s = np.sqrt(np.maximum(total_var, 1e-12))
    # a component's out-of-the-money option (relative to its own forward): sqrt(F_j K) b(-|x|, s)
    otm_own = np.exp(0.5 * (log_forward + k) + normalised_log_price(-np.abs(x), s))
    # same side as the mixture's OTM option: where the component's forward is beyond the strike,
    # the option is in the money for it and parity adds the intrinsic value
    intrinsic = np.where(call, np.maximum(np.exp(log_forward) - np.exp(k), 0.0),
                         np.maximum(np.exp(k) - np.exp(log_forward), 0.0))
    return np.sum(weights * (otm_own + intrinsic), axis=-1)


def implied_w(price: np.ndarray, T, k) -> np.ndarray:
    """Total variance of out-of-the-money prices at (T, k) (broadcast against price's shape); a
    1 % vol floor where the inversion fails (prices under ~1e-300), in proportion to T: a fixed
    floor in w would be a vol of 19 % at one day."""
    with np.errstate(divide="ignore"):
        s = implied_total_vol_otm(np.broadcast_to(k, price.shape), np.log(price))
    return np.where(np.isfinite(s), s * s, IV_MIN**2 * np.broadcast_to(T, price.shape))


def merton_w(p: dict, T, k) -> np.ndarray:
    """Total variance of Merton surfaces at any T > 0 and k: p holds MERTON_RANGES' parameters,
    each broadcastable against T and k (scalars for one surface; (n, 1, 1) against a grid)."""
    q = {name: np.asarray(p[name], np.float64) for name in MERTON_RANGES}
    T, k = (np.asarray(a, np.float64) for a in (T, k))
    j = np.arange(POISSON_TERMS)                                       # jump count, last axis
    lamT = (q["lam"] * T)[..., None]
    mu, sd = (np.broadcast_to(q[name], np.broadcast_shapes(q[name].shape, T.shape))[..., None]
              for name in ("jump_mean", "jump_sd"))
    v = _integrated_variance(q["vol_short"], q["vol_long"], q["kappa"], T)[..., None]
    log_poisson = -lamT + j * np.log(lamT) - np.cumsum(np.r_[0.0, np.log(np.arange(1, POISSON_TERMS))])
    weights = np.exp(log_poisson)
    weights = weights / weights.sum(-1, keepdims=True)                 # the truncated tail, < 1e-9
    log_forward = -lamT * np.expm1(mu + 0.5 * sd**2) + j * (mu + 0.5 * sd**2)
    log_forward = log_forward - np.log(np.sum(weights * np.exp(log_forward), -1, keepdims=True))   # forward 1 exactly
    return implied_w(mixture_otm_price(k, weights, log_forward, v + j * sd**2), T, k)


def merton_total_variance(n: int, seed: int, return_params: bool = False):
    """Merton jump-diffusion surfaces (n, 13, 17) with a term-structured diffusive variance."""
    rng = np.random.default_rng(seed)
    p = {name: rng.uniform(*box, size=n) for name, box in MERTON_RANGES.items()}
    shaped = {name: v[:, None, None] for name, v in p.items()}
    w = merton_w(shaped, T_GRID[None, :, None], K_GRID[None, None, :])
    # a proper model: w already rises with T; the maximum only guards the inversion's last digits
    w = np.maximum.accumulate(w, axis=1)
    return (w, p) if return_params else w


def lognormal_mixture_total_variance(n: int, seed: int, return_params: bool = False):
    """Regime-mixture surfaces (n, 13, 17): two or three lognormal regimes (module doc)."""
    rng = np.random.default_rng(seed)
    regimes = 3
    p = {name: rng.uniform(*MIXTURE_RANGES[name], size=(n, regimes)) for name in ("vol_short", "vol_long", "kappa", "drift")}
    three = rng.uniform(*MIXTURE_RANGES["three_regimes"], size=n) < 0.35
    # equity-like on most surfaces: the higher a regime's vol, the lower its drift (negative skew);
    # the rest keep independent drifts (either sign of skew, as single names and commodities show)
    equity = rng.random(n) < EQUITY_SHARE
    ranked = -np.sort(-p["drift"], axis=1)[np.arange(n)[:, None], np.argsort(np.argsort(p["vol_long"], axis=1), axis=1)]
    p["drift"] = np.where(equity[:, None], ranked, p["drift"])
    weights = rng.dirichlet(np.ones(regimes), size=n)
    weights[~three, 2] = 0.0
    weights = weights / weights.sum(-1, keepdims=True)
    T = T_GRID[None, :, None]
    v = _integrated_variance(p["vol_short"][:, None, :], p["vol_long"][:, None, :], p["kappa"][:, None, :], T)
    log_forward = p["drift"][:, None, :] * T
    wt = np.broadcast_to(weights[:, None, :], log_forward.shape)
    log_forward = log_forward - np.log(np.sum(wt * np.exp(log_forward), -1, keepdims=True))
    price = mixture_otm_price(K_GRID[None, None, :], wt[:, :, None, :], log_forward[:, :, None, :], v[:, :, None, :])
    w = np.maximum.accumulate(implied_w(price, T_GRID[None, :, None], K_GRID), axis=1)
    p.update(weights=weights, three_regimes=three)
    return (w, p) if return_params else w
