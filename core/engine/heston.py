"""Heston stochastic-volatility surfaces on the model grid, vectorised over surfaces.

One dense subject in one module on purpose: the characteristic function, the integration contour
and the quadrature are tuned together.

Model (forward measure, forward F = 1, no discounting), with X_T = ln(F_T / F):

    dX = -v/2 dt + sqrt(v) dW1,    dv = kappa (theta - v) dt + xi sqrt(v) dW2,    d<W1,W2> = rho dt

Parameters per surface, in ``PARAM_NAMES`` order: v0 (initial variance, per year), theta
(long-run variance, per year), kappa (mean-reversion speed, per year), xi (vol of variance,
per sqrt year), rho (spot/vol correlation).

``heston_total_variance(n, seed)`` draws n parameter sets from ``HESTON_RANGES``, prices
out-of-the-money options on the 13 x 17 grid, and inverts them with ``core.engine.black`` to total
variance w = iv^2 T, shape (n, 13, 17).

Pricing method (why it looks like this)
---------------------------------------
Realistic Heston smiles have grid-corner OTM prices as small as 1e-30 (T = 0.08, k = +0.45, 10%
vol, rho = -0.8).  An absolute-accuracy method (COS, Lewis quadrature on the standard contour)
loses every digit of those, so the implied vol there would be noise.  Instead each OTM price is

    P(k) = (1/pi) int_0^inf Re[ exp(-(z - 1) k) M(z) / (z (z - 1)) ] dv,   z = w + i v,

with M(z) = E[exp(z X_T)] and a real contour shift w > 1 for calls (k >= 0), w < 0 for puts
(Carr-Madan / Lee).  At the saddle point of exp(-(w-1)k) M(w) / (w(w-1)) the integrand at v = 0
is within a modest factor of the price itself (Lord & Kahl 2007), so the quadrature error is
*relative* and prices of 1e-30 come out with ~10 good digits.  Everything is kept in log space
and handed to ``core.engine.black.implied_total_vol_otm``, so nothing underflows.

Per (surface, maturity, side):

1. Contours: ln M is evaluated on a coarse geometric grid of real w (it is +inf past the moment
   explosion, which bounds the admissible strip), then on a fine per-slice grid spanning the
   strikes' optima.  A strike's integrand peak exp(L(w; k)) may exceed its own optimum by at
   most e^6 (the factor that multiplies the quadrature's relative error); the fewest contours
   that achieve this (one for most slices, at most four) are found by a greedy interval cover
   and centred by minimax.  The ATM strike goes to whichever side's contour suits it better.
2. Segment A, [0, v_a]: exponentially mapped Gauss-Legendre nodes resolving the peak at v = 0
   (width: the tilted std sigma = 1/sqrt(ln M''(w)), or the distance to the pole of 1/(z(z-1))
   when that is smaller) and its algebraic shoulders near a moment explosion, measured with
   probe evaluations; capped at a few oscillation periods.
3. Segments B and C, uniform Gauss-Legendre: the rest of the tilted Gaussian, then Heston's
   slowly decaying tail.  The CF decays only like exp(-c v), c = (v0 + kappa theta T)
   sqrt(1 - rho^2)/xi, and the integrand oscillates at up to |k| + |rho| (v0 + kappa theta T)/xi,
   so for short maturities with low v0 and high xi the tail is long and must be resolved; its
   length comes from probes in the asymptotic regime, its node count (bucketed 16..512) from the
   number of periods it spans.  On average a slice costs ~145 CF evaluations.

The characteristic function uses the "little Heston trap" form (Albrecher et al. 2007), written
so that nothing cancels as xi -> 0; it is checked against a numerical Riccati solve, on and off
the real axis, in the tests.

Accuracy (implied vol vs a per-strike adaptive-quadrature reference that agrees with 40-digit
mpmath to ~1e-15): worst 7e-9 over 92 random surfaces, 4e-7 over the 32 corners of the
parameter box, 1e-11 on the hardest short-maturity wings found (prices ~1e-23).
``workers=2`` prices on both cores (``python -m core.engine.heston --n 10000 --workers 2`` times it).
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import roots_legendre

from core.engine.black import implied_total_vol_otm
from core.engine.grid import K_GRID, T_GRID, iv_to_w, w_to_iv

__all__ = [
    "HESTON_RANGES",
    "PARAM_NAMES",
    "QuadConfig",
    "HestonSurfaces",
    "draw_heston_params",
    "heston_call_prices",
    "heston_implied_vol",
    "heston_log_cf",
    "heston_log_mgf",
    "heston_otm_log_prices",
    "heston_surfaces",
    "heston_total_variance",
]

PARAM_NAMES = ("v0", "theta", "kappa", "xi", "rho")

# Uniform ranges for each parameter, drawn independently.  They are the brief's ranges, kept
# as they are.  Measured on 2000 surfaces: ATM vol 0.08-0.39 at T = 0.08 (1st-99th percentile
# 0.11-0.38) and 0.06-0.35 at T = 2 (0.10-0.33); 1.3% of surfaces dip below 0.10 somewhere (low
# theta with high xi: Feller ratio ~0.04 pulls long-dated ATM vol down); grid vols 0.04-0.58;
# ATM skew -dIV/dk 0.02-0.84 at T = 0.08, negative on every surface.  Feller ratios
# 2 kappa theta / xi^2 run from 0.007 to 30 (5% below 0.1, as in many index calibrations).
# Nothing had to be narrowed for numerical reasons: the pricer keeps relative accuracy down to
# 1e-120 wing prices and inverts in log space, so the Black inversion is well conditioned on the
# whole grid (see the module docstring).
HESTON_RANGES = {
    "v0": (0.01, 0.16),      # initial variance: spot vol 10%-40%
    "theta": (0.01, 0.12),   # long-run variance: 10%-35% vol
    "kappa": (0.5, 5.0),     # mean reversion, per year: half-life 0.14-1.4 y
    "xi": (0.2, 1.2),        # vol of variance
    "rho": (-0.9, -0.1),     # spot/vol correlation: equity-index negative skew
}


@dataclass(frozen=True)
class QuadConfig:
    """Quadrature settings.  The defaults keep implied vols within ~4e-7 of the slow reference
    over the whole parameter box (see the module docstring); loosening them buys little speed."""

    n_candidates: int = 16         # coarse contour candidates per side (geometric in |w - pole|)
    n_fine: int = 24               # fine per-slice candidates between the strikes' optima
    max_excess: float = 6.0        # a strike's integrand peak may exceed its optimum by e^this
    max_contours: int = 4          # contours per side and slice, at most
    n_core: int = 24               # exp-mapped nodes on the peak segment [0, v_a]
    core_widths: float = 8.0       # v_a in units of the peak width ...
    core_periods: float = 3.0      # ... but at most this many oscillation periods
    core_rel_level: float = 1e-4   # the core extends until the integrand stays below this
    n_core_probes: int = 5         # probes at sigma * base^j, j = 1..n, to find that point
    core_probe_base: float = 4.0
    tail_rel_tol: float = 1e-10    # tail truncated where the integrand falls below this
    nodes_per_period: float = 3.0  # tail node density, per oscillation period
    tail_buckets: tuple = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
    chunk_slices: int = 4096       # (surface, maturity) slices per vectorised block


DEFAULT_QUAD = QuadConfig()


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------

def _param_array(params) -> np.ndarray:
    """dict name -> (n,) arrays, or an array (n, 5) / (5,) in PARAM_NAMES order -> (n, 5)."""
    if isinstance(params, dict):
        cols = [np.atleast_1d(np.asarray(params[name], dtype=np.float64)) for name in PARAM_NAMES]
        arr = np.stack(np.broadcast_arrays(*cols), axis=-1)
    else:
        arr = np.asarray(params, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != len(PARAM_NAMES):
        raise ValueError(f"params must be a dict of {PARAM_NAMES} or an array (n, 5); got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("params contain NaN or inf")
    v0, theta, kappa, xi, rho = arr.T
    if (v0 <= 0).any() or (theta <= 0).any() or (kappa <= 0).any() or (xi <= 0).any():
        raise ValueError("v0, theta, kappa and xi must be > 0")
    if (np.abs(rho) >= 1).any():
        raise ValueError("rho must lie in (-1, 1)")
    return arr


def draw_heston_params(n: int, rng: np.random.Generator) -> dict:
    """n parameter sets, each parameter uniform on HESTON_RANGES; dict name -> (n,) float64."""
    return {name: rng.uniform(*HESTON_RANGES[name], size=n) for name in PARAM_NAMES}


# --------------------------------------------------------------------------------------------
# Moment and characteristic functions
# --------------------------------------------------------------------------------------------

def _beta_minus_d(beta, d, xi2_zz):
    """beta - d without cancellation: beta^2 - d^2 = xi^2 (z^2 - z) = xi2_zz, so when beta and d
    are close (small xi, or z near 0 or 1) use xi2_zz / (beta + d) instead of the difference."""
    with np.errstate(all="ignore"):
        plus = beta + d
        use_ratio = np.abs(plus) >= np.abs(beta - d)
        return np.where(use_ratio, xi2_zz / np.where(use_ratio, plus, 1.0), beta - d)


def _log1p_complex(q):
    """log(1 + q) for complex q, accurate for small |q| (numpy's complex log1p is not)."""
    qr, qi = q.real, q.imag
    return 0.5 * np.log1p(qr * (2.0 + qr) + qi * qi) + 1j * np.arctan2(qi, 1.0 + qr)


def heston_log_mgf(w, T, v0, theta, kappa, xi, rho) -> np.ndarray:
    """ln E[exp(w X_T)] for real w (broadcast); +inf where that moment has exploded by T.

    Real arithmetic only: with q = beta^2 - xi^2 w (w-1), beta = kappa - rho xi w, the Riccati
    solution is hyperbolic for q >= 0 and trigonometric for q < 0; the moment is finite while
    the denominator den = cosh(dT/2) + beta sinh(dT/2)/d stays positive on [0, T].  Each branch
    is evaluated only where it applies (this function sits in the contour search's inner loop).
    """
    args = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in
                                 (w, T, v0, theta, kappa, xi, rho)])
    shape = args[0].shape
    w, T, v0, theta, kappa, xi, rho = [a.ravel() for a in args]
    xi2 = xi * xi
    beta = kappa - rho * xi * w
    ww = w * (w - 1.0)
    q = beta * beta - xi2 * ww
    d = np.sqrt(np.abs(q))
    out = np.full(w.shape, np.inf)
    hyper = q >= 0
    with np.errstate(all="ignore"):
        i = np.nonzero(hyper)[0]
        if i.size:
            # e^{-dT/2} den = 1 + (1 - e^{-dT})(beta - d)/(2d); (1 - e^{-dT})/d -> T as d -> 0
            di, Ti = d[i], T[i]
            dT = di * Ti
            ome_d = np.where(dT > 1e-8, -np.expm1(-dT) / np.where(di > 0, di, 1.0), Ti)
            bmd = _beta_minus_d(beta[i], di, xi2[i] * ww[i])
            half_shift = 0.5 * ome_d * bmd
            bracket = 1.0 + half_shift
            val = (kappa[i] * theta[i] / xi2[i] * (bmd * Ti - 2.0 * np.log1p(half_shift))
                   + v0[i] * ww[i] * 0.5 * ome_d / bracket)
            out[i] = np.where((bracket > 0) & np.isfinite(val), val, np.inf)
        i = np.nonzero(~hyper)[0]
        if i.size:
            # den = cos(dT/2) + beta sin(dT/2)/d, first zero at dT/2 = pi/2 + atan(beta/d)
            di, Ti, bi = d[i], T[i], beta[i]
            half = 0.5 * di * Ti
            den = np.cos(half) + bi * np.sin(half) / di          # d > 0 here since q < 0
            ok = (half < 0.5 * np.pi + np.arctan2(bi, di)) & (den > 0)
            val = (kappa[i] * theta[i] / xi2[i] * (bi * Ti - 2.0 * np.log(den))
                   + v0[i] * ww[i] * np.sin(half) / (di * den))
            out[i] = np.where(ok & np.isfinite(val), val, np.inf)
    return out.reshape(shape)


def heston_log_cf(z, T, v0, theta, kappa, xi, rho) -> np.ndarray:
    """ln E[exp(z X_T)] for complex z inside the moment strip (broadcast), little-trap form.

    With beta = kappa - rho xi z, d = sqrt(beta^2 - xi^2 (z^2 - z)) (principal root, Re d >= 0),
    g = (beta - d)/(beta + d), e = exp(-dT):
        ln M = kappa theta/xi^2 [(beta - d) T - 2 ln((1 - g e)/(1 - g))]
               + v0 (beta - d)(1 - e) / (xi^2 (1 - g e)).
    |e| <= 1 keeps it finite.  Written as r = (beta - d)/xi^2 and log1p(g (1-e)/(1-g)) so that
    nothing cancels as xi -> 0 (the deterministic-variance limit is then exact to rounding).
    """
    xi2 = xi * xi
    zz = z * z - z
    beta = kappa - rho * xi * z
    d = np.sqrt(beta * beta - xi2 * zz)
    bmd = _beta_minus_d(beta, d, xi2 * zz)
    r = bmd / xi2
    g = bmd / (beta + d)
    e = np.exp(-d * T)
    one_e = 1.0 - e
    big_d = r * one_e / (1.0 - g * e)
    big_c = kappa * theta * (r * T - 2.0 * _log1p_complex(g * one_e / (1.0 - g)) / xi2)
    return big_c + v0 * big_d


# --------------------------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _gauss_legendre_01(n: int):
    """n-point Gauss-Legendre nodes and weights on [0, 1] (cached)."""
    y, wy = roots_legendre(n)
    y, wy = 0.5 * (y + 1.0), 0.5 * wy
    y.flags.writeable = False
    wy.flags.writeable = False
    return y, wy


def _plan_contours(T, p, ks, side, cfg):
    """Contours for one side's strikes ks (ks[0] == 0 is the ATM strike), per slice.

    Candidates are geometric in the distance from the pole (w = 1 for calls, 0 for puts);
    exploded moments are +inf and never chosen.  For strike k and candidate w the integrand at
    v = 0 is exp(L), L = ln M(w) - (w - 1) k - ln(w (w - 1)); its excess over the strike's best
    candidate multiplies the quadrature's relative error.  Each slice gets the fewest contours
    (at most max_contours) that keep every OTM strike's excess <= max_excess: the acceptable
    candidates of a strike form an interval that moves outward with |k|, so taking the outer
    end of the first uncovered strike's interval, repeatedly, is optimal.

    Returns (cand (m, G), ln M on cand (m, G), picks (m, C) candidate index or -1, and for each
    strike the slot of the contour it is priced on (m, nk) and its L there (m, nk)).
    """
    pc = [x[:, None] for x in p]
    m = T.size

    def peak_logs(cand):                   # (m, G) candidates -> ln M (m, G), L (m, nk, G)
        lm = heston_log_mgf(cand, T[:, None], *pc)
        big_l = (lm[:, None, :] - (cand - 1.0)[:, None, :] * ks[None, :, None]
                 - np.log(cand * (cand - 1.0))[:, None, :])
        return lm, big_l

    # coarse grid shared by all slices, then a fine per-slice grid spanning the strikes' optima:
    # in a low-vol short-maturity wing L is sharply curved (L'' ~ total variance, optimum near
    # k / total variance ~ 1e3), so the coarse spacing alone would leave every candidate e^20 off
    offsets = np.geomspace(0.005, 2e4, cfg.n_candidates)
    coarse = np.broadcast_to(1.0 + offsets if side > 0 else -offsets, (m, offsets.size))
    _, big_l = peak_logs(coarse)
    best = np.argmin(big_l, axis=2)                                                 # (m, nk)
    lo = offsets[np.maximum(best.min(axis=1) - 1, 0)]
    hi = offsets[np.minimum(best.max(axis=1) + 1, offsets.size - 1)]
    fine = lo[:, None] * (hi / lo)[:, None] ** np.linspace(0.0, 1.0, cfg.n_fine)[None, :]
    cand = 1.0 + fine if side > 0 else -fine
    lm, big_l = peak_logs(cand)                                                     # (m, G)
    excess = big_l - big_l.min(axis=2, keepdims=True)
    n_k, n_c = excess.shape[1:]
    otm = excess[:, 1:, :] if n_k > 1 else excess        # the ATM strike does not steer
    ok = otm <= cfg.max_excess
    outer_end = n_c - 1 - np.argmax(ok[:, :, ::-1], axis=2)
    outer_end = np.where(ok.any(axis=2), outer_end, np.argmin(otm, axis=2))
    group = np.full(otm.shape[:2], -1)              # greedy cover: which contour takes a strike
    picks = np.full((m, cfg.max_contours), -1)
    for j in range(cfg.max_contours):
        r = np.nonzero((group < 0).any(axis=1))[0]  # slices with strikes still uncovered
        if r.size == 0:
            break
        g = group[r]
        first = np.argmax(g < 0, axis=1)
        pick = outer_end[r, first]
        take = (g < 0) & ok[r, :, pick]
        take[np.arange(r.size), first] = True
        if j == cfg.max_contours - 1:
            take = g < 0                            # the last contour takes whatever is left
        g[take] = j
        group[r] = g
        # the cover fixes the groups; centre each group's contour (minimax excess over it)
        worst = np.where(take[:, :, None], otm[r], -np.inf).max(axis=1)
        picks[r, j] = np.argmin(worst, axis=1)
    # every strike (ATM included) goes to the chosen contour where its integrand peak is lowest
    l_at = np.where(picks[:, None, :] >= 0,
                    np.take_along_axis(big_l, np.maximum(picks, 0)[:, None, :].repeat(n_k, 1), 2),
                    np.inf)                                                        # (m, nk, C)
    slot = np.argmin(l_at, axis=2)
    return cand, lm, picks, slot, np.take_along_axis(l_at, slot[:, :, None], 2)[:, :, 0]


def _tilted_variance(w, lm_w, T, p, side):
    """ln M''(w) by a second difference toward the pole (those points are inside the strip)."""
    h = 1e-3 * np.abs(w)
    step = -side * h
    lm1 = heston_log_mgf(w + step, T, *p)
    lm2 = heston_log_mgf(w + 2 * step, T, *p)
    curv = (lm_w - 2.0 * lm1 + lm2) / (h * h)
    return np.where(np.isfinite(curv) & (curv > 1e-12), curv, 1e-12)


def _strike_phase_sums(F, v, ks):
    """S[:, j] = sum_n Re(F[:, n] exp(-i v[:, n] ks[j])), via a recurrence over sorted strikes.

    ks must be sorted by |k| from 0 outwards on one side; equal steps (a uniform grid) cost one
    complex exp per node in total instead of one per strike.
    """
    out = np.empty((F.shape[0], ks.size))
    cur = F
    prev_k = 0.0
    cache = {}
    for j, kj in enumerate(ks):
        dk = round(float(kj - prev_k), 14)
        if dk != 0.0:
            if dk not in cache:
                cache[dk] = np.exp(-1j * dk * v)
            cur = cur * cache[dk]
        out[:, j] = cur.real.sum(axis=1)
        prev_k = kj
    return out


def _integrand(w, lm_w, v, T, p):
    """Integrand scaled to 1 at v = 0: M(z)/M(w) * w(w-1)/(z(z-1)), z = w + i v; v (m, N)."""
    z = w[:, None] + 1j * v
    norm = w * (w - 1.0)
    log_m = heston_log_cf(z, T[:, None], *[x[:, None] for x in p])
    return np.exp(log_m - lm_w[:, None]) * (norm[:, None] / (z * (z - 1.0)))


def _probe_envelope(w, lm_w, sigma, T, p, cfg):
    """Probe |integrand| to size the segments, per slice.

    Returns (v_eff, v_end): v_eff is where the integrand has dropped below core_rel_level for
    good (a tilted Gaussian reaches it near 4 sigma; near a moment explosion or a pole the decay
    is algebraic and takes far longer); v_end is where the envelope falls below tail_rel_tol.
    Probes sit at sigma 4^j and, for Heston's asymptotic exp(-c v)/v^2 regime (c = (v0 + kappa
    theta T) sqrt(1 - rho^2)/xi, reached for v >> 1/(xi T)), at (2/(xi T)) 2^j; each probe is
    extrapolated with that decay and the largest estimate is kept.
    """
    v0, theta, kappa, xi, rho = p
    log_tol = np.log(cfg.tail_rel_tol)
    c_inf = (v0 + kappa * theta * T) * np.sqrt(1.0 - rho * rho) / xi
    probes = np.concatenate([sigma[:, None] * cfg.core_probe_base ** np.arange(1, cfg.n_core_probes + 1),
                             (2.0 / (xi * T))[:, None] * np.array([1.0, 2.0, 4.0])], axis=1)
    amp = np.abs(_integrand(w, lm_w, probes, T, p))
    big = amp >= cfg.core_rel_level
    v_eff = np.max(np.where(big, 2.0 * probes, 8.0 * sigma[:, None]), axis=1)
    # the exp(-c v) extrapolation is only valid in the asymptotic regime: last three probes
    tail_probes, tail_amp = probes[:, -3:], amp[:, -3:]
    v_end = tail_probes.copy()
    for _ in range(3):                     # fixed point for the (v_j / v)^2 factor
        log_a = (np.log(np.maximum(tail_amp, 1e-300)) - np.log(c_inf)[:, None]
                 - 2.0 * np.log(np.maximum(v_end, tail_probes) / tail_probes))
        v_end = tail_probes + np.maximum(log_a - log_tol, 0.0) / c_inf[:, None]
    v_gauss = sigma * np.sqrt(-2.0 * log_tol)
    return v_eff, np.maximum(v_end.max(axis=1), np.maximum(v_gauss, v_eff))


def _uniform_segment(w, lm_w, lo, length, need, T, p, ks, cfg):
    """Strike sums of the integrand over [lo, lo + length] with uniform Gauss-Legendre nodes.

    Slices are grouped by node count (the smallest bucket >= need) so each group is one
    vectorised call; slices with nothing to integrate are skipped.
    """
    sums = np.zeros((w.size, ks.size))
    buckets = np.asarray(cfg.tail_buckets)
    bucket = np.minimum(np.searchsorted(buckets, need), buckets.size - 1)
    bucket = np.where(length > 1e-12 * (lo + length), bucket, -1)
    for b in np.unique(bucket):
        if b < 0:
            continue
        rows = np.nonzero(bucket == b)[0]
        y, wy = _gauss_legendre_01(int(buckets[b]))
        v = lo[rows, None] + length[rows, None] * y
        dv = length[rows, None] * wy
        sub = tuple(x[rows] for x in p)
        F = _integrand(w[rows], lm_w[rows], v, T[rows], sub)
        sums[rows] = _strike_phase_sums(F * dv, v, ks)
    return sums


def _contour_log_prices(T, p, ks, w, lm_w, side, cfg):
    """ln OTM prices of strikes ks (one side, sorted by |k|) on contour w, per slice (m, nk).

    Segment A, [0, v_a]: exponentially mapped Gauss-Legendre resolving the peak at v = 0, whose
    width is the tilted std sigma or, if smaller, the distance from the contour to the pole of
    1/(z(z-1)), and its slower shoulders near a moment explosion.  Segments B (rest of the
    tilted Gaussian) and C (asymptotic tail) up to v_end: uniform Gauss-Legendre, node counts
    bucketed by the oscillation periods (and, in B, tilted widths) they span.
    """
    v0, theta, kappa, xi, rho = p
    sigma = 1.0 / np.sqrt(_tilted_variance(w, lm_w, T, p, side))
    peak = np.minimum(sigma, np.minimum(np.abs(w), np.abs(w - 1.0)))
    # oscillation: |k - k_matched| <= max|k|, plus the CF's own asymptotic phase rate
    omega = np.abs(ks).max() + np.abs(rho) * (v0 + kappa * theta * T) / xi
    v_eff, v_end = _probe_envelope(w, lm_w, sigma, T, p, cfg)
    # segment A covers the peak and its algebraic shoulders, but at most a few periods: beyond
    # that uniform nodes resolve the oscillation more cheaply
    v_a = np.minimum(np.maximum(v_eff, cfg.core_widths * peak),
                     cfg.core_periods * 2.0 * np.pi / omega)
    v_a = np.minimum(v_a, v_end)
    a = np.log1p(v_a / peak)
    y, wy = _gauss_legendre_01(cfg.n_core)
    v = peak[:, None] * np.expm1(a[:, None] * y)
    dv = (peak * a)[:, None] * np.exp(a[:, None] * y) * wy
    sums = _strike_phase_sums(_integrand(w, lm_w, v, T, p) * dv, v, ks)

    # segment B: rest of the tilted Gaussian (~3 nodes per sigma); segment C: the asymptotic
    # tail, small and smooth apart from the oscillation, which sets the spacing
    v_b = np.clip(sigma * np.sqrt(-2.0 * np.log(cfg.tail_rel_tol)), v_a, v_end)
    for lo, hi, per_sigma in ((v_a, v_b, 3.0), (v_b, v_end, 0.0)):
        length = hi - lo
        need = 8.0 + np.maximum(cfg.nodes_per_period * omega * length / (2.0 * np.pi),
                                per_sigma * length / sigma)
        sums += _uniform_segment(w, lm_w, lo, length, need, T, p, ks, cfg)

    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.log(sums)          # NaN if the quadrature failed (sum <= 0): caught upstream
    log_peak0 = lm_w - np.log(w * (w - 1.0))      # ln of the k = 0 integrand at v = 0
    return log_s + (log_peak0 - np.log(np.pi))[:, None] - np.outer(w - 1.0, ks)


def _side_log_prices(T, p, ks, side, cfg):
    """ln OTM prices for one side's strikes ks (sorted by |k|, ks[0] == 0) on m slices.

    Returns (log prices (m, nk), ln of the ATM integrand's peak on its contour (m,)): the ATM
    price is taken from whichever side has the lower peak.
    """
    cand, lm, picks, slot, l_used = _plan_contours(T, p, ks, side, cfg)
    out = np.full((T.size, ks.size), np.nan)
    for j in range(picks.shape[1]):
        rows = np.nonzero(picks[:, j] >= 0)[0]
        if rows.size == 0:
            continue
        pick = picks[rows, j]
        sub = tuple(x[rows] for x in p)
        lp = _contour_log_prices(T[rows], sub, ks, cand[rows, pick], lm[rows, pick], side, cfg)
        use = slot[rows] == j
        out[rows[:, None].repeat(ks.size, 1)[use], np.nonzero(use)[1]] = lp[use]
    return out, l_used[:, 0]


def _log_prices_block(P, T, k, cfg):
    """ln OTM prices for m slices: P (m, 5) parameters, T (m,), k (nk,) -> (m, nk)."""
    p = tuple(P[:, i] for i in range(5))
    out = np.full((T.size, k.size), np.nan)
    calls = np.sort(k[k > 0])
    puts = -np.sort(-k[k < 0])                      # from 0 outwards
    ks_c = np.concatenate([[0.0], calls])
    ks_p = np.concatenate([[0.0], puts])
    lp_c, peak_c = _side_log_prices(T, p, ks_c, +1, cfg)
    lp_p, peak_p = _side_log_prices(T, p, ks_p, -1, cfg)
    for kj, col in zip(calls, range(1, ks_c.size)):
        out[:, k == kj] = lp_c[:, col:col + 1]
    for kj, col in zip(puts, range(1, ks_p.size)):
        out[:, k == kj] = lp_p[:, col:col + 1]
    if (k == 0).any():
        # both contours priced k = 0: the relative error scales with the integrand's peak over
        # the price, so take the side with the lower peak (a NaN never wins over a number)
        use_call = (peak_c <= peak_p) | ~np.isfinite(lp_p[:, 0])
        out[:, k == 0] = np.where(use_call, lp_c[:, 0], lp_p[:, 0])[:, None]
    return out


def _validate_grid(T, k):
    T = np.atleast_1d(np.asarray(T, dtype=np.float64))
    k = np.atleast_1d(np.asarray(k, dtype=np.float64))
    if T.ndim != 1 or k.ndim != 1 or not (np.isfinite(T).all() and (T > 0).all()):
        raise ValueError("T must be a 1-D array of positive maturities")
    if not np.isfinite(k).all() or np.unique(k).size != k.size:
        raise ValueError("k must be a 1-D array of distinct finite log-moneyness values")
    return T, k


def _over_slices(params, T, k, block_fn, quad, workers):
    """Apply block_fn(P (m, 5), T (m,)) -> (m, nk) to every (surface, maturity) slice, in
    blocks of quad.chunk_slices (bounded memory), on `workers` threads; returns (n, nT, nk)."""
    P = _param_array(params)
    T, k = _validate_grid(T, k)
    n, nT = P.shape[0], T.size
    P_s = np.repeat(P, nT, axis=0)                  # one row per (surface, maturity) slice
    T_s = np.tile(T, n)
    m = n * nT
    step = max(1, quad.chunk_slices)
    blocks = [(i, min(i + step, m)) for i in range(0, m, step)]
    out = np.empty((m, k.size))

    def run(b):
        i, j = b
        out[i:j] = block_fn(P_s[i:j], T_s[i:j])

    if workers > 1 and len(blocks) > 1:
        # numpy releases the GIL inside its loops, so threads use both cores
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, blocks))
    else:
        for b in blocks:
            run(b)
    return out.reshape(n, nT, k.size)


def heston_otm_log_prices(params, T, k, quad: QuadConfig = DEFAULT_QUAD, workers: int = 1):
    """ln of undiscounted out-of-the-money option prices (forward 1): call for k >= 0, put k < 0.

    Inputs: params (dict of PARAM_NAMES -> (n,) arrays, or array (n, 5)), T (nT,) years > 0,
    k (nk,) log-moneyness ln(K/F).  Output (n, nT, nk) float64, ln(price / F).  Entries where
    the quadrature failed (never seen in the parameter box; see tests) are NaN.
    """
    T, k = _validate_grid(T, k)
    return _over_slices(params, T, k, lambda P, t: _log_prices_block(P, t, k, quad), quad, workers)


def heston_call_prices(params, T, k, quad: QuadConfig = DEFAULT_QUAD) -> np.ndarray:
    """Undiscounted Heston call prices with forward 1, shape (n, nT, nk).

    Inputs as ``heston_otm_log_prices``.  Strikes K = exp(k); for k < 0 the call comes from the
    OTM put by parity, C = P + 1 - K.
    """
    T, k = _validate_grid(T, k)
    otm = np.exp(heston_otm_log_prices(params, T, k, quad))
    return np.where(k >= 0, otm, otm + 1.0 - np.exp(k))


def heston_implied_vol(params, T, k, quad: QuadConfig = DEFAULT_QUAD, workers: int = 1):
    """Black implied vol of Heston prices, shape (n, nT, nk); inputs as heston_otm_log_prices."""
    T, k = _validate_grid(T, k)

    def block(P, t):
        s = implied_total_vol_otm(k[None, :], _log_prices_block(P, t, k, quad))
        return s / np.sqrt(t)[:, None]

    return _over_slices(params, T, k, block, quad, workers)


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------

@dataclass
class HestonSurfaces:
    """w: (n, 13, 17) total variance; params: dict name -> (n,); calendar_fixed: number of grid
    cells the cumulative-max safety net changed (expected 0: Heston w is increasing in T)."""

    w: np.ndarray
    params: dict
    calendar_fixed: int
    max_calendar_fix: float        # largest change the safety net made, in total variance


def heston_surfaces(n: int, seed: int, quad: QuadConfig = DEFAULT_QUAD,
                    workers: int = 1) -> HestonSurfaces:
    """Draw n Heston surfaces with numpy default_rng(seed); see heston_total_variance."""
    if n < 1:
        raise ValueError("n must be >= 1")
    rng = np.random.default_rng(seed)
    params = draw_heston_params(n, rng)
    iv = heston_implied_vol(params, T_GRID, K_GRID, quad, workers)
    bad = ~np.isfinite(iv)
    if bad.any():
        # never observed in the parameter box; retry those surfaces with a denser core
        rows = np.nonzero(bad.any(axis=(1, 2)))[0]
        dense = QuadConfig(n_core=4 * quad.n_core, tail_buckets=(64, 128, 256, 512, 1024))
        sub = {name: vals[rows] for name, vals in params.items()}
        iv[rows] = heston_implied_vol(sub, T_GRID, K_GRID, dense)
        if not np.isfinite(iv).all():
            raise RuntimeError("Heston pricing failed for some surfaces even on the dense rule")
    w = iv_to_w(iv)
    w_mono = np.maximum.accumulate(w, axis=-2)
    changed = w_mono != w
    return HestonSurfaces(w=w_mono, params=params, calendar_fixed=int(changed.sum()),
                          max_calendar_fix=float((w_mono - w).max()))


def heston_total_variance(n: int, seed: int, return_params: bool = False,
                          workers: int = 1, quad: QuadConfig = DEFAULT_QUAD):
    """n Heston surfaces as total variance on the grid.

    Inputs: n surfaces, seed for numpy default_rng (same seed -> identical output),
    return_params to also get the drawn parameters, workers threads (1 or 2 on our machines).
    Output: w (n, 13, 17) float64, finite, > 0, non-decreasing along T (axis -2); with
    return_params=True, (w, params) where params maps PARAM_NAMES to (n,) arrays.
    """
    res = heston_surfaces(n, seed, quad, workers)
    return (res.w, res.params) if return_params else res.w


# --------------------------------------------------------------------------------------------
# Timing entry point: python -m core.engine.heston --n 10000 --workers 2
# --------------------------------------------------------------------------------------------

def _main(argv=None):
    parser = argparse.ArgumentParser(description="Time the Heston surface generator.")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    wall, cpu = time.perf_counter(), time.process_time()
    res = heston_surfaces(args.n, args.seed, workers=args.workers)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    iv = w_to_iv(res.w)
    print(f"{args.n} surfaces in {wall:.2f} s wall, {cpu:.2f} s CPU ({args.workers} worker(s)); "
          f"calendar safety net changed {res.calendar_fixed} cells "
          f"(max {res.max_calendar_fix:.1e} in w); ATM vol range "
          f"{iv[:, :, 8].min():.3f}-{iv[:, :, 8].max():.3f}")


if __name__ == "__main__":
    _main()
