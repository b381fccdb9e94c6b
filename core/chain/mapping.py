"""How a chain maps to and from the 13 x 17 model grid, for the grid methods on a chain.

Moneyness: normalised, z = k / (sigma_atm(T) sqrt(T)), the strike in ATM standard moves, then
scaled linearly so that the chain's largest |z| (over its quotes and the points asked for) lands on
the grid's edge |k| = 0.45: k_grid = 0.45 z / z_max. One scale for both sides keeps the smile's
shape (its skew sign and symmetry) as the models were trained on it; every quote lands on the grid,
so nothing is set aside as outside. sigma_atm(T) is each expiry's quoted vol at k = 0 (linear in
k between the two nearest quotes, the nearest quote's vol where k = 0 is not bracketed), with ATM
total variance linear in T between expiries and flat ATM vol beyond them.

Maturity: log-linear, ln T from the chain's shortest to its longest expiry onto the grid's
0.08 to 2.0 years, so a chain from one day to five years fills the grid and its short end keeps
several grid rows. Vols are carried unchanged: the model sees the chain's vol at the mapped
point, its total variance being iv^2 T_grid.

Values come back by reading the repaired grid (PCHIP in T, cubic spline in k; core.engine.grid_read)
at each chain point's mapped coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.engine.grid import K_GRID, T_GRID

K_EDGE = float(K_GRID[-1])
T_LO, T_HI = float(T_GRID[0]), float(T_GRID[-1])


def atm_total_variance(T: np.ndarray, k: np.ndarray, iv: np.ndarray) -> tuple:
    """(expiries, ATM total variance per expiry) from quotes."""
    key = np.round(T, 9)
    expiries = np.unique(key)
    w_atm = np.empty(expiries.size)
    for i, T_i in enumerate(expiries):
        sel = key == T_i
        order = np.argsort(k[sel])
        w_atm[i] = np.interp(0.0, k[sel][order], iv[sel][order]) ** 2 * T_i
    return expiries, w_atm


@dataclass(frozen=True)
class GridMap:
    """chain (T years, k = ln K/F) -> model grid (T_grid, k_grid); see the module doc."""

    atm_T: np.ndarray
    atm_w: np.ndarray
    T_min: float
    T_max: float
    z_max: float

    def atm_iv(self, T) -> np.ndarray:
        T = np.asarray(T, np.float64)
        w = np.interp(T, self.atm_T, self.atm_w)
        w = np.where(T < self.atm_T[0], self.atm_w[0] * T / self.atm_T[0], w)
        w = np.where(T > self.atm_T[-1], self.atm_w[-1] * T / self.atm_T[-1], w)
        return np.sqrt(np.maximum(w, 1e-12) / T)

    def z(self, T, k) -> np.ndarray:
        T, k = np.broadcast_arrays(np.asarray(T, np.float64), np.asarray(k, np.float64))
        return k / (self.atm_iv(T) * np.sqrt(T))

    def chain_T(self, T_grid) -> np.ndarray:
        """The chain expiry (years) that the grid maturity T_grid stands for (to_grid's inverse in T)."""
        u = (np.asarray(T_grid, np.float64) - T_LO) / (T_HI - T_LO)
        if self.T_max <= self.T_min:
            return np.full(u.shape, self.T_min)
        return np.exp(np.log(self.T_min) + u * (np.log(self.T_max) - np.log(self.T_min)))

    def to_grid(self, T, k) -> tuple:
        T, k = np.broadcast_arrays(np.asarray(T, np.float64), np.asarray(k, np.float64))
        span = np.log(self.T_max) - np.log(self.T_min)
        u = 0.5 if span <= 0 else (np.log(T) - np.log(self.T_min)) / span
        return T_LO + (T_HI - T_LO) * u, K_EDGE * self.z(T, k) / self.z_max


def fit_map(T, k, iv, T_ask=None, k_ask=None) -> GridMap:
    """The map of a chain's quotes (T, k, iv), covering the points asked for (T_ask, k_ask) too."""
    T, k, iv = (np.asarray(a, np.float64).ravel() for a in (T, k, iv))
    atm_T, atm_w = atm_total_variance(T, k, iv)
    T_all = T if T_ask is None else np.r_[T, np.asarray(T_ask, np.float64).ravel()]
    k_all = k if k_ask is None else np.r_[k, np.asarray(k_ask, np.float64).ravel()]
    partial = GridMap(atm_T, atm_w, float(T_all.min()), float(T_all.max()), 1.0)
    z_max = max(float(np.abs(partial.z(T_all, k_all)).max()), 1e-6)
    return GridMap(atm_T, atm_w, float(T_all.min()), float(T_all.max()), z_max)


def grid_values(T, k, iv, T_ask, k_ask, method: str) -> tuple:
    """Run grid method ``method`` on a chain: quotes (T, k, iv) -> grid -> core.pipeline.repair
    (unprojected) -> the calendar projection in the chain's own total variance -> back at the points
    asked for (the chain surface then makes the values arbitrage-free everywhere). Returns (iv at
    (T_ask, k_ask), sd_fn(T, k) -> sd in vol units, or None).

    Why the projection is not the grid's own: the map compresses ln T and carries vols unchanged, so
    the grid's total variance iv^2 T_grid is not the chain's iv^2 T, and calendar order on the grid
    is not calendar order on the chain. A chain whose vol falls with T (backwardation, after a shock)
    looked calendar-arbitraged on the grid, and the grid's projection lifted its long end: held-out
    RMSE 0.11 for interp and best on a synthetic 90 % -> 25 % vol chain (docs/chain_path.md). Each
    grid row is projected at the chain expiry it stands for instead."""
    from core.pipeline import repair
    from core.engine.arbitrage import calendar_project
    from core.engine.grid_read import iv_at, values_at
    from core.quotes.gridding import grid_quotes

    gmap = fit_map(T, k, iv, T_ask, k_ask)
    gridded = grid_quotes(*gmap.to_grid(T, k), iv)
    res = repair(gridded.iv_obs, method=method, arbitrage="none")
    T_rows = gmap.chain_T(T_GRID)[:, None]
    iv_grid = np.sqrt(calendar_project(res.iv**2 * T_rows) / T_rows)
    w_grid = iv_grid**2 * T_GRID[:, None]
    iv_ask = iv_at(w_grid, *gmap.to_grid(T_ask, k_ask), clamp=True)
    if res.sd is None:
        return iv_ask, None
    sd_grid = res.sd

    def sd_fn(T_q, k_q):
        return values_at(sd_grid, *gmap.to_grid(T_q, k_q), clamp=True, monotone=False)
    return iv_ask, sd_fn
