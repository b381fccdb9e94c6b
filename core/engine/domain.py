"""Where a surface rests on quotes and where it is extrapolated: one rule for every output.

A point (T years, k log-moneyness) is extrapolated when it lies before the first quoted expiry,
after the last, or outside the quoted strikes at its T: below the lowest or above the highest
quoted k, both interpolated linearly in T between expiries. A T within T_EPS of an expiry is at
that expiry (float round-off in T must not flip the flag).
"""
from __future__ import annotations

import numpy as np

T_EPS = 1e-9      # years
K_EPS = 1e-12     # log-moneyness
MIN_CHECK_WIDTH = 0.1   # log-moneyness: the narrowest k span a surface is exported and checked on


def check_domain(k_lo: float, k_hi: float) -> tuple:
    """(lo, hi): the quoted k span [k_lo, k_hi], widened about its centre to at least
    MIN_CHECK_WIDTH. A chain quoted at one strike only still gets dense points that differ: with
    a zero span the dense check's strikes coincide, its slopes divide by zero and every butterfly
    comparison with NaN passes, silently."""
    if k_hi - k_lo >= MIN_CHECK_WIDTH:
        return float(k_lo), float(k_hi)
    mid = 0.5 * (k_lo + k_hi)
    return mid - 0.5 * MIN_CHECK_WIDTH, mid + 0.5 * MIN_CHECK_WIDTH


def quoted_bounds(T_quotes, k_quotes) -> tuple:
    """(expiries, k_lo, k_hi): each distinct quoted expiry (rounded to 1e-9 years) with its lowest
    and highest quoted k; finite quotes only. Empty arrays when there is none."""
    T_q, k_q = np.asarray(T_quotes, np.float64), np.asarray(k_quotes, np.float64)
    ok = np.isfinite(T_q) & np.isfinite(k_q)
    expiries, which = np.unique(np.round(T_q[ok], 9), return_inverse=True)
    k_lo = np.full(expiries.size, np.inf)
    k_hi = np.full(expiries.size, -np.inf)
    np.minimum.at(k_lo, which, k_q[ok])
    np.maximum.at(k_hi, which, k_q[ok])
    return expiries, k_lo, k_hi


def outside_quoted(expiries, k_lo, k_hi, T, k) -> np.ndarray:
    """Bool array (the broadcast of T and k): True where (T, k) is extrapolated (module doc). With
    no expiry every point is."""
    T, k = np.broadcast_arrays(np.asarray(T, np.float64), np.asarray(k, np.float64))
    E = np.asarray(expiries, np.float64)
    if E.size == 0:
        return np.ones(T.shape, bool)
    near = np.clip(np.searchsorted(E, T), 0, E.size - 1)
    for cand in (near, np.maximum(near - 1, 0)):      # snap to an expiry within T_EPS
        T = np.where(np.abs(T - E[cand]) <= T_EPS, E[cand], T)
    lo, hi = np.interp(T, E, k_lo), np.interp(T, E, k_hi)
    return (T < E[0] - T_EPS) | (T > E[-1] + T_EPS) | (k < lo - K_EPS) | (k > hi + K_EPS)
