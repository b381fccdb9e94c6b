"""Raw-SVI slices, w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2)), fitted with no-arbitrage
constraints checked on a dense k set.

``fit_slice`` is a least squares in implied vol with penalty rows that hold, on the dense set:
Durrleman's g(k) >= G_MARGIN and call prices falling with the strike (butterfly), w >= w_floor (from below, e.g. the previous expiry, for
calendar order) and Roger Lee's wing bound b (1 + |rho|) <= 2. ``slice_ok`` re-checks a fitted slice
on a finer set; the surface builder refits or falls back when it fails.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.special import erfcx

PARAMS = ("a", "b", "rho", "m", "sigma")
G_MARGIN = 1e-3          # target for g on the penalty set: keeps g > 0 between its points
PENALTY = 1e3            # weight of a unit breach of a constraint, relative to a 1-vol-point misfit
LEE_BOUND = 2.0          # b (1 + |rho|) <= 2: w grows at most like 2 |k| (Lee 2004)
RIDGE = 1e-4             # pull towards the start point: keeps slices with few quotes well posed
_SIGMA_MIN = 1e-4
_BIG = 1e6               # stands in for a non-finite penalty row
_W_EPS = 1e-12           # w below this counts as this in g and the slope test (w >= floor is held apart)
MAX_NFEV = 150         # polish evaluations per start


def svi_w(p, k) -> np.ndarray:
    a, b, rho, m, sigma = p
    x = np.asarray(k, np.float64) - m
    return a + b * (rho * x + np.sqrt(x * x + sigma * sigma))


def svi_g(p, k) -> np.ndarray:
    """Durrleman's g(k) for a raw-SVI slice; g >= 0 everywhere means no butterfly arbitrage."""
    a, b, rho, m, sigma = p
    x = np.asarray(k, np.float64) - m
    r = np.sqrt(x * x + sigma * sigma)
    w = np.maximum(a + b * (rho * x + r), _W_EPS)
    w1 = b * (rho + x / r)
    w2 = b * sigma * sigma / r**3
    return (1.0 - np.asarray(k) * w1 / (2.0 * w)) ** 2 - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2


def svi_decreasing(p, k) -> np.ndarray:
    """1 - (dC/dk from w') / (dC/dk from k): >= 0 exactly where the call price does not rise with
    the strike. dC/dK = -N(d2) + phi(d2) w' / (2 sqrt w), so the margin is
    1 - w' / (2 sqrt(w) R(d2)) with Mills' ratio R(d2) = N(d2) / phi(d2) = sqrt(pi / 2) erfcx(-d2 / sqrt 2).
    g >= 0 alone does not imply it on a finite strike range."""
    a, b, rho, m, sigma = p
    k = np.asarray(k, np.float64)
    x = k - m
    w = np.maximum(a + b * (rho * x + np.sqrt(x * x + sigma * sigma)), _W_EPS)
    w1 = b * (rho + x / np.sqrt(x * x + sigma * sigma))
    s = np.sqrt(w)
    d2 = -k / s - 0.5 * s
    mills = np.sqrt(np.pi / 2.0) * erfcx(-d2 / np.sqrt(2.0))
    return 1.0 - w1 / (2.0 * s * mills)


@dataclass(frozen=True)
class SliceData:
    """What a slice is fitted to: expiry T (years), quotes (k, iv, weight) and the dense k set."""

    T: float
    k: np.ndarray
    iv: np.ndarray
    weight: np.ndarray
    k_dense: np.ndarray


def _linear_part(k, w, wt, m, sigma) -> tuple:
    """For each (m, sigma) pair, the weighted least-squares (a, b rho, b) with b >= 0, |rho| < 1
    (Zeliade's quasi-explicit step): (G, 3) coefficients and (G,) sums of squares."""
    x = k[None, :] - m[:, None]
    X = np.stack([np.ones_like(x), x, np.sqrt(x * x + sigma[:, None] ** 2)], -1) * wt[None, :, None]
    y = w * wt
    A = np.einsum("gni,gnj->gij", X, X) + 1e-14 * np.eye(3)
    coef = np.linalg.solve(A, np.einsum("gni,n->gi", X, y)[..., None])[..., 0]
    b = np.maximum(coef[:, 2], 0.0)
    coef = np.column_stack([coef[:, 0], np.clip(coef[:, 1], -0.99 * b, 0.99 * b), b])
    return coef, ((np.einsum("gnj,gj->gn", X, coef) - y[None, :]) ** 2).sum(1)


def quasi_explicit(d: SliceData) -> np.ndarray:
    """Unconstrained raw-SVI start: (m, sigma) on a grid, then Nelder-Mead, (a, b, rho) linear."""
    w = d.iv**2 * d.T
    wt = d.weight / (2.0 * np.sqrt(w * d.T))       # w misfit -> vol misfit, to first order
    lo, hi = float(d.k.min()), float(d.k.max())
    M, S = np.meshgrid(np.linspace(lo, hi, 15), np.geomspace(1e-3, 2.0, 15))
    _, sse = _linear_part(d.k, w, wt, M.ravel(), S.ravel())
    j = int(np.argmin(sse))

    def cost(z):
        m, s = np.clip(z[0], lo - 0.5, hi + 0.5), np.exp(np.clip(z[1], np.log(1e-3), np.log(3.0)))
        return _linear_part(d.k, w, wt, np.array([m]), np.array([s]))[1][0]

    z = minimize(cost, [M.ravel()[j], np.log(S.ravel()[j])], method="Nelder-Mead",
                 options={"xatol": 1e-5, "fatol": 1e-14, "maxiter": 200}).x
    m, s = float(np.clip(z[0], lo - 0.5, hi + 0.5)), float(np.exp(np.clip(z[1], np.log(1e-3), np.log(3.0))))
    (a, brho, b), = _linear_part(d.k, w, wt, np.array([m]), np.array([s]))[0]
    return np.array([a, b, brho / b if b > 0 else 0.0, m, s])


def _starts(d: SliceData) -> list:
    """Start points: the unconstrained quasi-explicit fit and a flat, gently skewed smile."""
    w = d.iv**2 * d.T
    w_atm = float(np.interp(0.0, d.k, w)) if d.k.size > 1 else float(w.mean())
    sigma = max(0.3 * float(np.ptp(d.k)), 0.05)
    b = min(0.1 * w_atm / sigma, 0.5)
    flat = np.array([w_atm - b * sigma * np.sqrt(1 - 0.25), b, -0.5, 0.0, sigma])
    return ([quasi_explicit(d)] if d.k.size >= 5 else []) + [flat]


def _bounds(d: SliceData) -> tuple:
    w_max = float((d.iv**2 * d.T).max())
    lo_k, hi_k = float(d.k_dense.min()), float(d.k_dense.max())
    return (np.array([-2.0 * w_max - 1.0, 0.0, -0.999, lo_k - 1.0, _SIGMA_MIN]),
            np.array([4.0 * w_max + 1.0, LEE_BOUND, 0.999, hi_k + 1.0, 5.0]))


def _residuals(p, d: SliceData, w_floor, w_cap, x0, sqrt_T) -> np.ndarray:
    w = svi_w(p, d.k)
    fit = d.weight * (np.sqrt(np.maximum(w, 1e-14)) / sqrt_T - d.iv)
    with np.errstate(all="ignore"):
        g = svi_g(p, d.k_dense)
    w_dense = svi_w(p, d.k_dense)
    butterfly = PENALTY * np.maximum(G_MARGIN - g, 0.0)
    rising = PENALTY * np.maximum(G_MARGIN - svi_decreasing(p, d.k_dense), 0.0)
    with np.errstate(all="ignore"):
        butterfly = np.nan_to_num(butterfly, nan=_BIG, posinf=_BIG)
        rising = np.nan_to_num(rising, nan=_BIG, posinf=_BIG)
    # calendar and positivity breaches in vol units at this expiry
    below = PENALTY * np.maximum(w_floor - w_dense, 0.0) / (np.sqrt(np.maximum(w_floor, 1e-14)) * sqrt_T)
    above = PENALTY * np.maximum(w_dense - w_cap, 0.0) / (np.sqrt(np.maximum(w_cap, 1e-14)) * sqrt_T)
    lee = PENALTY * max(p[1] * (1.0 + abs(p[2])) - LEE_BOUND, 0.0)
    ridge = RIDGE * (p - x0)
    return np.concatenate([fit, butterfly, rising, below, above, [lee], ridge])


def fit_slice(d: SliceData, w_floor: np.ndarray, w_cap: np.ndarray | None = None,
              start: np.ndarray | None = None) -> np.ndarray:
    """Raw-SVI params (a, b, rho, m, sigma) fitted to one expiry's quotes.

    w_floor / w_cap: (len(d.k_dense),) lowest / highest allowed w on the dense set (a positive
    floor; the neighbouring expiry's w for calendar order; cap None = no cap). start: an extra
    start point (e.g. the neighbouring expiry's fit).
    """
    w_cap = np.full(d.k_dense.shape, np.inf) if w_cap is None else w_cap
    lo, hi = _bounds(d)
    sqrt_T = np.sqrt(d.T)
    starts = _starts(d) + ([np.asarray(start, float)] if start is not None else [])
    best, best_cost = None, np.inf
    for x0 in starts:
        x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
        res = least_squares(_residuals, x0, bounds=(lo, hi), args=(d, w_floor, w_cap, x0, sqrt_T),
                            x_scale="jac", max_nfev=MAX_NFEV, xtol=1e-10, ftol=1e-10)
        if res.cost < best_cost:
            best, best_cost = res.x, res.cost
    return best


def slice_ok(p, k_check: np.ndarray, w_floor: np.ndarray, w_cap: np.ndarray | None = None) -> bool:
    """True when g >= 0, w_floor <= w <= w_cap and Lee's bound hold on the check set k_check."""
    w = svi_w(p, k_check)
    cap_ok = True if w_cap is None else bool((w <= w_cap).all())
    return bool(cap_ok and (svi_g(p, k_check) >= 0.0).all() and (svi_decreasing(p, k_check) >= 0.0).all()
                and (w >= w_floor).all()
                and p[1] * (1.0 + abs(p[2])) <= LEE_BOUND + 1e-12)
