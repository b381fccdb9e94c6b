"""The model grid and unit conversions.

Every surface in the engine lives on a fixed 13 x 17 grid: maturities ``T_GRID`` (years) along
axis -2 and log-moneyness ``K_GRID`` along axis -1. Total variance ``w = iv**2 * T``.
All conversions broadcast over any leading batch shape.
"""
from __future__ import annotations

import numpy as np

N_T = 13
N_K = 17
T_GRID = np.linspace(0.08, 2.0, N_T)          # maturity, years
K_GRID = np.linspace(-0.45, 0.45, N_K)        # log-moneyness ln(K/F)
DK = float(K_GRID[1] - K_GRID[0])
DT = float(T_GRID[1] - T_GRID[0])
T_MESH, K_MESH = np.meshgrid(T_GRID, K_GRID, indexing="ij")   # (13, 17) each
ATM_INDEX = N_K // 2

# What a quoted grid must hold before any method repairs it (core.pipeline, core.quotes.read).
MIN_QUOTES = 4
MAX_IV = 5.0         # larger quoted vols are refused (500 %: percentages given as vols, usually)

# Floors used wherever a variance must stay strictly positive.
W_FLOOR = 1e-5
IV_FLOOR = 1e-4


def w_to_iv(w: np.ndarray, T=None) -> np.ndarray:
    """Total variance -> implied vol, floored at IV_FLOOR (the one conversion in the engine).

    T: maturities in years broadcast against ``w``; None means the model grid (w is (..., 13, 17)).
    """
    w = np.asarray(w, dtype=np.float64)
    return np.sqrt(np.maximum(w / (T_MESH if T is None else np.asarray(T, dtype=np.float64)), IV_FLOOR**2))


def iv_to_w(iv: np.ndarray, T=None) -> np.ndarray:
    """Implied vol -> total variance; T as in ``w_to_iv`` (None: the model grid)."""
    iv = np.asarray(iv, dtype=np.float64)
    return iv * iv * (T_MESH if T is None else np.asarray(T, dtype=np.float64))
