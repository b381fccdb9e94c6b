"""The classical repairers: interpolation, per-slice SVI, and interpolation then SVI."""
from __future__ import annotations

import numpy as np

from core.engine.baselines import SVIGrid, fit_svi_slices, interpolate_w
from core.repairers.base import Prediction, Repairer


def _check_grid(grid) -> SVIGrid:
    if not isinstance(grid, SVIGrid):
        raise ValueError(f"option grid must be a core.engine.baselines.SVIGrid, got {type(grid).__name__}")
    return grid


class InterpRepairer(Repairer):
    """Calendar-projected triangulated linear interpolation (the post's first baseline)."""

    name = "interp"

    def predict(self, w_obs, observed):
        return Prediction(interpolate_w(w_obs, observed))


class SVIRepairer(Repairer):
    """Per-slice raw-SVI by coarse shape search with closed-form (a, b) (the post's second baseline)."""

    name = "svi"
    options = ("grid",)

    def __init__(self, grid: SVIGrid = SVIGrid()):
        self.grid = _check_grid(grid)

    def predict(self, w_obs, observed):
        return Prediction(fit_svi_slices(w_obs, observed, self.grid))


class InterpSVIRepairer(Repairer):
    """Interpolate, then SVI-project every slice of the full surface (the classical pipeline).

    Every node of the interpolated surface counts as quoted in the slice fit, so the SVI shape
    search smooths interpolation's kinks and extrapolates its flat nearest-neighbour wings.
    """

    name = "interp_svi"
    options = ("grid",)

    def __init__(self, grid: SVIGrid = SVIGrid()):
        self.grid = _check_grid(grid)

    def predict(self, w_obs, observed):
        w_interp = np.maximum.accumulate(interpolate_w(w_obs, observed), axis=-2)  # calendar first, as the post
        return Prediction(fit_svi_slices(w_interp, np.ones(w_interp.shape, dtype=bool), self.grid))
