"""The one interface every repair method implements, in scikit-learn's spirit.

- The constructor holds the configuration and checks it: a bad or unknown option raises a
  ValueError that names it (``Repairer.check_options``; the registry calls it before construction).
- One call, ``predict(w_obs, observed)``: observed total variance (n, 13, 17) (any value where
  ``observed`` is False) -> a ``Prediction``: raw repaired total variance (n, 13, 17), a predictive
  sd in implied-vol units (or None), and the method's own per-quote stale score (or None).
- Capabilities are declared as class attributes, never probed: ``has_sd``, ``has_stale_score``,
  ``needs_weights``, ``models_noise`` (takes ``noise_bp``), ``default_arbitrage``.

Projections onto the no-arbitrage set, the sd after projection and intervals happen in
core.pipeline, so every method is used and scored the same way.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtri


@dataclass
class Prediction:
    """One method's raw output on a stack of surfaces (all (n, 13, 17))."""

    w: np.ndarray                      # raw repaired total variance, before any projection
    sd: np.ndarray | None = None       # predictive sd, implied-vol units
    stale: np.ndarray | None = None    # the method's own stale score per quote (higher = more suspect)


class Repairer:
    """Base class: a name, declared capabilities and options, one ``predict`` call."""

    name = "base"
    options: tuple = ()              # keyword options the constructor takes
    has_sd = False
    has_stale_score = False
    needs_weights = False
    models_noise = False             # takes noise_bp (quote noise at the money, basis points)
    default_arbitrage = "calendar"   # the projection core.repair applies unless told otherwise
    interval_kind = "gaussian"       # how half_width turns sd into an interval: "gaussian" or "conformal"

    @classmethod
    def check_options(cls, config: dict) -> None:
        """ValueError naming any option this method does not take."""
        unknown = sorted(set(config) - set(cls.options))
        if unknown:
            takes = ", ".join(cls.options) if cls.options else "no options"
            raise ValueError(f"method {cls.name!r} does not take option(s) {', '.join(unknown)} (it takes {takes})")

    def load(self) -> None:
        """Load what the method needs (its weights), so a bad file fails here with a WeightsError."""

    def predict(self, w_obs: np.ndarray, observed: np.ndarray) -> Prediction:
        """(n, 13, 17) observed w and boolean mask -> Prediction."""
        raise NotImplementedError

    def adjust_sd(self, sd: np.ndarray | None, iv_raw: np.ndarray, iv_out: np.ndarray) -> np.ndarray | None:
        """The sd to report once the raw repair ``iv_raw`` has been projected to ``iv_out``."""
        return sd

    def half_width(self, sd: np.ndarray, level: float) -> np.ndarray:
        """Half-width of the central ``level`` interval: Gaussian z * sd unless a method calibrates."""
        # ndtri is norm.ppf (the same values) without importing scipy.stats, a second of every cold start
        return ndtri(0.5 + level / 2.0) * np.asarray(sd)


def check_weights(weights) -> Path:
    """A weights option as a Path; ValueError unless it is a path (str or os.PathLike)."""
    if isinstance(weights, (str, Path)) and str(weights).strip():
        return weights if isinstance(weights, Path) else Path(weights)
    raise ValueError(f"option weights must be a file path, got {type(weights).__name__} {weights!r:.60}")


def check_noise_bp(noise_bp) -> float | None:
    """The noise_bp option: None (the method's default) or a finite number of basis points > 0."""
    if noise_bp is None:
        return None
    if isinstance(noise_bp, bool) or not isinstance(noise_bp, numbers.Real):
        raise ValueError(f"option noise_bp must be a number of basis points, got {type(noise_bp).__name__} "
                         f"{noise_bp!r:.60}")
    if not (np.isfinite(noise_bp) and 0 < noise_bp <= 10_000):
        raise ValueError(f"option noise_bp must be finite and in (0, 10000] basis points, got {noise_bp!r}")
    return float(noise_bp)
