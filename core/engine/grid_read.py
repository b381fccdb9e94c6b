"""A repaired 13 x 17 grid read at any (T, k): the way back from the grid to each quote.

A repaired grid is read at any (T, k) by a monotone cubic (PCHIP) in T of w at each k node, then
a not-a-knot cubic spline in k. PCHIP keeps w non-decreasing in T along each node column, as the
calendar projection leaves it. Points in the half-step margin take the end polynomials'
extrapolation; points beyond it get NaN.
"""
from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline, PchipInterpolator

from core.engine.grid import DK, DT, K_GRID, N_K, T_GRID, W_FLOOR

_K_BASIS = CubicSpline(K_GRID, np.eye(N_K), bc_type="not-a-knot")
# The grid's catchment: every point within half a step of some node (the nearest-node cells).
# Not below the first maturity: the front smile changes too fast in T to lend it to 0.08 years.
T_CATCHMENT = (float(T_GRID[0]), float(T_GRID[-1] + DT / 2))
K_CATCHMENT = (float(K_GRID[0] - DK / 2), float(K_GRID[-1] + DK / 2))


def inside_grid(T: np.ndarray, k: np.ndarray) -> np.ndarray:
    """True where (T, k) lies in the grid's catchment: within half a step of the grid's box."""
    T = np.asarray(T, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    return ((T >= T_CATCHMENT[0] - 1e-9) & (T <= T_CATCHMENT[1] + 1e-9) & (k >= K_CATCHMENT[0] - 1e-9)
            & (k <= K_CATCHMENT[1] + 1e-9))


def values_at(grid: np.ndarray, T: np.ndarray, k: np.ndarray, clamp: bool = False, monotone: bool = True) -> np.ndarray:
    """Read a (13, 17) grid (w, or any field) at points (T, k): PCHIP in T, cubic spline in k.

    Returns an array of the points' shape. A point in the grid's catchment but beyond its box
    (at most half a step) takes the end polynomials' extrapolation; points beyond the catchment
    get NaN, unless ``clamp`` (then every point is first moved onto the box: flat extrapolation).
    ``monotone=False`` uses a cubic spline in T too (for fields, such as sd, with no order to keep).
    """
    grid = np.asarray(grid, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    T, k = np.broadcast_arrays(T, k)
    shape = T.shape
    Tf, kf = T.ravel(), k.ravel()
    inside = inside_grid(Tf, kf) & np.isfinite(Tf) & np.isfinite(kf)
    out = np.full(Tf.shape, np.nan)
    if clamp:
        inside = np.isfinite(Tf) & np.isfinite(kf)
    if not inside.any():
        return out.reshape(shape)
    Tc, kc = Tf[inside], kf[inside]
    if clamp:
        Tc, kc = np.clip(Tc, T_GRID[0], T_GRID[-1]), np.clip(kc, K_GRID[0], K_GRID[-1])
    interp_T = PchipInterpolator(T_GRID, grid, axis=0) if monotone else CubicSpline(T_GRID, grid, axis=0)
    columns = interp_T(Tc)                                      # (m, 17)
    out[inside] = np.einsum("mj,mj->m", columns, _K_BASIS(kc))
    return out.reshape(shape)


def w_at(w_grid: np.ndarray, T: np.ndarray, k: np.ndarray, clamp: bool = False) -> np.ndarray:
    """Total variance of a (13, 17) w grid at (T, k), floored at W_FLOOR (NaN outside unless clamp)."""
    w = values_at(w_grid, T, k, clamp=clamp)
    return np.where(np.isfinite(w), np.maximum(w, W_FLOOR), np.nan)


def iv_at(w_grid: np.ndarray, T: np.ndarray, k: np.ndarray, clamp: bool = False) -> np.ndarray:
    """Implied vol of a (13, 17) w grid at (T, k); NaN beyond the catchment unless ``clamp`` (then
    the edge's vol: flat extrapolation)."""
    T = np.asarray(T, dtype=np.float64)
    w = w_at(w_grid, T, k, clamp=clamp)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(w / (np.clip(T, T_GRID[0], T_GRID[-1]) if clamp else T))
