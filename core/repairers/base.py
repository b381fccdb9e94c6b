"""The one interface every repair method implements.

A repairer holds its configuration (checked in the constructor), and ``fit(w_obs, observed)`` maps
observed total variance (n, 13, 17) (any value where ``observed`` is False) to a raw repaired total
variance (n, 13, 17) and, for methods that have one, a predictive sd in implied-vol units.
Projections onto the no-arbitrage set happen afterwards (core.pipeline), so every method is scored
the same way. Capabilities are declared as class attributes, never probed.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import norm


class Repairer:
    """Base class: a name, a constructor holding configuration, one ``fit`` call."""

    name = "base"
    has_sd = False
    default_arbitrage = "calendar"   # the projection core.repair applies unless told otherwise

    def fit(self, w_obs: np.ndarray, observed: np.ndarray) -> tuple:
        """(n, 13, 17) observed w and boolean mask -> (raw repaired w, sd in iv units or None)."""
        raise NotImplementedError

    def adjust_sd(self, sd: np.ndarray | None, iv_raw: np.ndarray, iv_out: np.ndarray) -> np.ndarray | None:
        """The sd to report once the raw repair ``iv_raw`` has been projected to ``iv_out``."""
        return sd

    def half_width(self, sd: np.ndarray, level: float) -> np.ndarray:
        """Half-width of the central ``level`` interval: Gaussian z * sd unless a method calibrates."""
        return norm.ppf(0.5 + level / 2.0) * np.asarray(sd)
