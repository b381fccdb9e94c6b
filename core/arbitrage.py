"""No-arbitrage diagnostics and projections (placeholder: calendar only; butterfly lands from its branch)."""
from __future__ import annotations

import numpy as np

from core.grid import DK, K_GRID, W_FLOOR

CALENDAR_TOL = 1e-8
G_TOL = 1e-6


def calendar_project(w: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(np.maximum(w, W_FLOOR), axis=-2)


def calendar_violations(w: np.ndarray) -> np.ndarray:
    return np.diff(w, axis=-2) < -CALENDAR_TOL


def calendar_violation_rate(w: np.ndarray) -> float:
    return float(np.mean(calendar_violations(w)))


def g_field(w: np.ndarray) -> np.ndarray:
    wi = np.maximum(w[..., 1:-1], 1e-6)
    wp = (w[..., 2:] - w[..., :-2]) / (2.0 * DK)
    wpp = (w[..., 2:] - 2.0 * w[..., 1:-1] + w[..., :-2]) / DK**2
    k = K_GRID[1:-1]
    return (1.0 - k * wp / (2.0 * wi)) ** 2 - (wp * wp / 4.0) * (1.0 / wi + 0.25) + 0.5 * wpp


def butterfly_violations(w: np.ndarray) -> np.ndarray:
    return g_field(w) < -G_TOL


def butterfly_violation_rate(w: np.ndarray) -> float:
    return float(np.mean(butterfly_violations(w)))


def project(w: np.ndarray, mode: str = "calendar") -> np.ndarray:
    if mode == "none":
        return np.asarray(w, dtype=np.float64)
    if mode == "calendar":
        return calendar_project(w)
    raise ValueError(f"unknown arbitrage mode {mode!r}; choose one of none, calendar")
