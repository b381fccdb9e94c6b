"""The views a vol desk reads off a repaired (13, 17) grid, as tables: the total-variance fan, the
ATM vol and skew term structures with their bands, and g(k) per maturity. Shared by a repaired
chain (core.quotes.workflow) and the app's synthetic explorer, so each is defined once.

``extrapolated(T, k)`` says which (T years, k) lie outside the quoted region (a chain's quote
table); a fully known synthetic grid passes ``nowhere``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.engine.grid import K_GRID, K_MESH, T_GRID, T_MESH, iv_to_w


def nowhere(T, k) -> np.ndarray:
    """No node is extrapolated."""
    return np.zeros(np.shape(T), dtype=bool)


def fan_table(iv: np.ndarray, extrapolated=nowhere) -> pd.DataFrame:
    """One row per grid node, maturity-major: T (years), k, iv, extrapolated and w = iv^2 T; what
    a total-variance fan (w against k, one line per T) draws."""
    T, k = T_MESH.ravel(), K_MESH.ravel()
    table = pd.DataFrame({"T": T, "k": k, "iv": np.asarray(iv, np.float64).ravel(),
                          "extrapolated": extrapolated(T, k)})
    table["w"] = table["iv"] ** 2 * table["T"]
    return table


def atm_table(iv: np.ndarray, half_width: np.ndarray | None = None, extrapolated=nowhere) -> pd.DataFrame:
    """ATM (k = 0) term structure: T (years), atm_iv, atm_half_width (NaN without ``half_width``,
    the band's half-width per node), atm_skew (d iv / d k at k = 0 by a central difference over the
    two neighbouring nodes, vol per unit k), atm_skew_half_width (that difference's band with the two
    nodes' bands taken as independent: an upper bound on the skew's error only in that sense) and
    extrapolated."""
    iv = np.asarray(iv, np.float64)
    j = int(np.argmin(np.abs(K_GRID)))
    dk = float(K_GRID[j + 1] - K_GRID[j - 1])
    half = np.full(iv.shape, np.nan) if half_width is None else np.asarray(half_width, np.float64)
    return pd.DataFrame({
        "T": T_GRID, "atm_iv": iv[:, j], "atm_half_width": half[:, j],
        "atm_skew": (iv[:, j + 1] - iv[:, j - 1]) / dk,
        "atm_skew_half_width": np.sqrt(half[:, j + 1] ** 2 + half[:, j - 1] ** 2) / dk,
        "extrapolated": extrapolated(T_GRID, np.zeros(T_GRID.size)),
    })


def density_table(iv: np.ndarray, extrapolated=nowhere) -> pd.DataFrame:
    """The discrete Gatheral-Roper g(k) per maturity on the interior k nodes: T (years), k, g,
    extrapolated. g < 0 is a negative risk-neutral density (butterfly arbitrage); g is proportional
    to the density in k up to a positive factor."""
    from core.engine.arbitrage import g_field

    g = g_field(iv_to_w(np.asarray(iv, np.float64)))
    TT, KK = np.meshgrid(T_GRID, K_GRID[1:-1], indexing="ij")
    return pd.DataFrame({"T": TT.ravel(), "k": KK.ravel(), "g": g.ravel(),
                         "extrapolated": extrapolated(TT.ravel(), KK.ravel())})
