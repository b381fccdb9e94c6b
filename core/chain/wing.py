"""How a chain's smiles continue beyond their quotes, measured on the chain's own outer quotes.

A raw-SVI slice extrapolates with total variance linear in k, so its implied vol grows like
sqrt(|k|) beyond the quotes. Index put wings often keep a steadier slope in vol: on SPY 2026-08-13
(the validation chain) with each expiry's outer quarter hidden, the SVI wing sat 0.5-1 vol point
below the hidden puts (held-out RMSE 0.0050), and a straight line in vol from the edge of the
visible quotes missed them by 0.0020. Jump-driven wings do the opposite (the synthetic Merton chains: the line overshoots).
Neither rule suits every chain, so each chain picks its own blend, per side:

- every expiry's own outer quotes (the outer INNER_FRACTION by |k|) are set aside;
- a raw SVI fitted to the rest (``core.chain.svi.fit_slice``, held butterfly-free as the backbone's
  slices are; the unconstrained least squares' wings went anywhere: on the Merton chains it asked
  for a blend of 0.4 where the surface's own test said 0) predicts them, and so does the line in
  vol from its edge with the fitted slope there;
- the blend alpha in [0, 1] between the two that fits those quotes best (least squares, pooled
  over expiries) is the side's weight of the line.

``continuation`` then moves each svi_gp slice (core.chain.svi_gp), once its GP correction is chosen,
towards that blend beyond its quotes; the dense re-check (core.chain.corrected) keeps the result
arbitrage-free and cuts it where it is not. Inside the quoted range nothing moves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.chain.build import N_LOCAL_PENALTY, W_FLOOR, dense_k
from core.chain.svi import SliceData, fit_slice, svi_w
from core.chain.types import ChainQuotes

INNER_FRACTION = 0.25     # the share of each expiry's quotes (outermost by |k|) that tests the wing rules
MIN_FIT = 6               # quotes left for the inner SVI fit of an expiry, at least
MIN_TESTED = 10           # held-out wing quotes a side needs, pooled over expiries, for a blend other than 0
HOLD_U = 1.0              # the continuation is held whole this many warped units beyond the edge, then
                          # fades (Gaussian, as wide) back to the slice's own wing: a line in vol grows
                          # like k^2 in w and would break butterfly far out
RATE_LEVELS = (0.8, 0.95)  # the interval levels the beyond-the-quotes rate is calibrated at (``rate``)
_SLOPE_STEP = 1e-6        # k step of the one-sided slope at an edge: small, so that the line leaves the
                          # edge with the smile's own slope (a secant over a wider step left a kink that
                          # bent the wrong way, a local butterfly arbitrage finer than the re-check's step)


def edge_slope(iv_fn, k_edge: float, side: int) -> tuple:
    """(iv, d iv / d k) of iv_fn at k_edge, the slope from inside the quoted range (one-sided)."""
    iv_e, iv_in = iv_fn(np.array([k_edge, k_edge - side * _SLOPE_STEP]))
    return float(iv_e), float((iv_e - iv_in) / (side * _SLOPE_STEP))


def line_iv(k, T: float, k_edge: float, iv_edge: float, slope: float) -> np.ndarray:
    """The straight line in vol from the edge, held within Lee's bound w <= 2 |k| and at or above
    zero."""
    k = np.asarray(k, np.float64)
    line = iv_edge + slope * (k - k_edge)
    return np.clip(line, 0.0, np.sqrt(2.0 * np.abs(k) / T))


def outer_mask(k: np.ndarray, fraction: float, keep: int) -> np.ndarray:
    """True for the outer ``fraction`` of one expiry's quotes by |k| (rounded up; ties in input
    order), leaving at least ``keep`` of them. The benchmark's wing protocol hides the same way
    (core.evaluation.real.wing_mask)."""
    k = np.asarray(k, np.float64)
    n_out = min(int(np.ceil(fraction * k.size)), max(k.size - keep, 0))
    out = np.zeros(k.size, bool)
    out[np.argsort(-np.abs(k), kind="stable")[:n_out]] = True
    return out


@dataclass(frozen=True)
class WingFit:
    """The chain's own wing test: each side's blend, and every tested outer quote's miss under it.

    alpha: (put, call) weight of the line. The tested quotes (arrays of equal length): ``idx`` their
    rows in the chain, ``side`` -1 put / +1 call, ``T``, ``k``, ``k_edge`` the visible edge they lie
    beyond, ``sqrt_theta`` the inner fit's ATM sqrt total variance at their expiry, ``miss`` quote iv
    minus the blended prediction (vol). They calibrate how far a quote beyond the quotes may sit
    off the surface (``rate``)."""

    alpha: tuple
    idx: np.ndarray
    side: np.ndarray
    T: np.ndarray
    k: np.ndarray
    k_edge: np.ndarray
    sqrt_theta: np.ndarray
    miss: np.ndarray


def wing_fit(quotes: ChainQuotes) -> WingFit:
    """The wing test of the module doc: the blend per side (alpha: each side's weight in [0, 1] of
    the line in vol against the SVI wing, 0 where the chain has too few outer quotes on that side
    to tell) and the tested quotes' misses under it."""
    d_sum, r_sum, n = np.zeros(2), np.zeros(2), np.zeros(2, int)
    rows = []          # per tested group: (idx, side, T, k, k_edge, sqrt_theta, svi iv, line - svi, quote iv)
    for i, T_i in enumerate(quotes.expiries):
        sel = np.flatnonzero(quotes.slice(i))
        order = sel[np.argsort(quotes.k[sel])]
        k, iv, wt = quotes.k[order], quotes.iv[order], np.sqrt(quotes.weight[order])
        out = outer_mask(k, INNER_FRACTION, MIN_FIT)
        if not out.any():
            continue
        T = float(T_i)
        inner = k[~out]                       # sorted: its ends are the edges
        k_dense = dense_k(float(inner[0]), float(inner[-1]), N_LOCAL_PENALTY)
        d = SliceData(T=T, k=inner, iv=iv[~out], weight=wt[~out], k_dense=k_dense)
        p = fit_slice(d, np.full(k_dense.shape, W_FLOOR))
        svi_iv = lambda x: np.sqrt(np.maximum(svi_w(p, x), 1e-14) / T)     # noqa: E731
        sqrt_theta = float(np.sqrt(max(svi_w(p, np.zeros(1))[0], W_FLOOR)))
        for j, side in enumerate((-1, 1)):
            k_edge = float(inner[0] if side < 0 else inner[-1])
            test = out & (side * k > side * k_edge)
            if not test.any() or side * k_edge <= 0:
                continue
            iv_e, slope = edge_slope(svi_iv, k_edge, side)
            a = svi_iv(k[test])
            diff = line_iv(k[test], T, k_edge, iv_e, slope) - a
            m = int(test.sum())
            d_sum[j] += diff @ diff
            r_sum[j] += diff @ (iv[test] - a)
            n[j] += m
            rows.append((order[test], np.full(m, side), np.full(m, T), k[test], np.full(m, k_edge),
                         np.full(m, sqrt_theta), a, diff, iv[test]))
    ok = (n >= MIN_TESTED) & (d_sum > 0)
    alpha = np.nan_to_num(np.where(ok, np.clip(r_sum / np.where(ok, d_sum, 1.0), 0.0, 1.0), 0.0))
    alpha = (float(alpha[0]), float(alpha[1]))
    if not rows:
        empty = np.zeros(0)
        return WingFit(alpha, np.zeros(0, int), empty, empty, empty, empty, empty, empty)
    idx, side, T, k, k_edge, sqrt_theta, a, diff, iv = (np.concatenate(c) for c in zip(*rows))
    blend = np.where(side < 0, alpha[0], alpha[1])
    return WingFit(alpha, idx, side, T, k, k_edge, sqrt_theta, iv - (a + blend * diff))


def rate(miss_rel: np.ndarray, base_rel: np.ndarray, d_u: np.ndarray, multiple) -> float | None:
    """How fast the interval must widen beyond the quotes, from the wing test's misses: the rate c
    (per unit of distance d_u beyond the edge, in the misses' units) for which |miss| <=
    multiple(level) (base + c d_u) holds on a share ``level`` of the tested quotes, averaged over
    the 80 % and 95 % levels (each level's c in closed form: the level's quantile of every quote's
    own break-even c). None with fewer than MIN_TESTED tested quotes."""
    miss_rel, base_rel, d_u = (np.asarray(x, np.float64) for x in (miss_rel, base_rel, d_u))
    ok = np.isfinite(miss_rel) & np.isfinite(base_rel) & (d_u > 0)
    if ok.sum() < MIN_TESTED:
        return None
    m, b, d = np.abs(miss_rel[ok]), base_rel[ok], d_u[ok]
    out = []
    for level in RATE_LEVELS:
        need = (m / multiple(level) - b) / d          # the c at which this quote is just covered
        out.append(max(float(np.quantile(need, level, method="higher")), 0.0))
    return float(np.mean(out))


def continuation(iv_fn, u_fn, T: float, k_lo: float, k_hi: float, alpha: tuple):
    """The residual (vol, callable of k) that moves a slice with implied vol iv_fn beyond its quoted
    range [k_lo, k_hi] towards the blended wing: nil inside the range; beyond an edge on a side
    with blend a > 0, a times the gap from iv_fn to the line in vol from that edge (``line_iv``,
    with iv_fn's level and slope there), faded beyond HOLD_U units of u_fn (the GP's warped
    moneyness) from the edge. None when neither side asks for the line."""
    edges = [(side, k_e, a, *edge_slope(iv_fn, k_e, side), float(u_fn(np.array([k_e]))[0]))
             for side, k_e, a in ((-1, k_lo, alpha[0]), (1, k_hi, alpha[1])) if a > 0.0 and side * k_e > 0.0]
    if not edges:
        return None

    def residual(k):
        k = np.asarray(k, np.float64)
        out = np.zeros(k.shape)
        for side, k_e, a, iv_e, slope, u_e in edges:
            beyond = side * k > side * k_e
            if not beyond.any():
                continue
            kb = k[beyond]
            du = np.maximum(side * (u_fn(kb) - u_e) - HOLD_U, 0.0)
            fade = np.exp(-0.5 * (du / HOLD_U) ** 2)
            out[beyond] = a * fade * (line_iv(kb, T, k_e, iv_e, slope) - iv_fn(kb))
        return out

    return residual


def note(alpha, kinds) -> str:
    """One summary line for a chain repair: the blend each side chose and on how many of the
    surface's slices (``kinds``: params()['kind']) a continuation was kept."""
    kept = sum("+wing" in str(kind) for kind in kinds)
    return (f"wing beyond the quotes (chosen on the chain's own outer quotes): puts {alpha[0]:.2f}, "
            f"calls {alpha[1]:.2f} of a straight line in vol, the rest the SVI wing; "
            f"continued on {kept} of {len(kinds)} expiries")
