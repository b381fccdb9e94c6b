"""Split-conformal calibration of predictive sds.

Scores are normalised residuals s = |iv_pred - iv_true| / sd on held-out cells. For a level a the
calibrated half-width is q_a * sd, with q_a the ceil((n + 1) a)-th smallest score: for
exchangeable data the interval then covers with probability >= a (and < a + 1/(n + 1)).
Optionally the scores are split into groups (Mondrian conformal), e.g. by how far a cell is from
the nearest quote, so that coverage holds within each group and not only on average.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Two-sided normal quantiles of the 80 % and 95 % intervals: norm.ppf(0.9), norm.ppf(0.975).
Z80, Z95 = 1.2815515655446004, 1.959963984540054
DEFAULT_LEVELS = (0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 0.99)


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ceil((n + 1) level)-th smallest score (inf when n is too small for the level)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    rank = int(np.ceil((scores.size + 1) * level))
    return float(scores[rank - 1]) if 1 <= rank <= scores.size else float("inf")


@dataclass
class ConformalCalibrator:
    """Per-group, per-level multipliers of the predictive sd.

    quantiles[group][level] = q such that iv_pred +- q sd covers a fresh cell of that group with
    probability >= level. Group 0 is used when no groups are given.
    """

    levels: tuple = DEFAULT_LEVELS
    quantiles: dict = field(default_factory=dict)
    n_scores: dict = field(default_factory=dict)

    def fit(self, abs_err: np.ndarray, sd: np.ndarray, groups: np.ndarray | None = None) -> "ConformalCalibrator":
        abs_err, sd = np.asarray(abs_err, float).ravel(), np.asarray(sd, float).ravel()
        if abs_err.shape != sd.shape:
            raise ValueError(f"abs_err and sd differ in size: {abs_err.size} vs {sd.size}")
        if not (np.isfinite(abs_err).all() and np.isfinite(sd).all()) or (sd <= 0).any():
            raise ValueError("conformal calibration needs finite errors and positive finite sds")
        groups = np.zeros(abs_err.size, int) if groups is None else np.asarray(groups).ravel()
        scores = abs_err / sd
        self.quantiles, self.n_scores = {}, {}
        for g in np.unique(groups):
            in_group = scores[groups == g]
            self.quantiles[int(g)] = {float(a): conformal_quantile(in_group, a) for a in self.levels}
            self.n_scores[int(g)] = int(in_group.size)
        return self

    def multiplier(self, level: float, groups: np.ndarray | None = None) -> np.ndarray | float:
        """q for ``level`` (one of ``levels``), per element of ``groups`` (or the single group 0)."""
        level = float(level)
        if not self.quantiles:
            raise ValueError("the calibrator is not fitted")
        if level not in self.quantiles[next(iter(self.quantiles))]:
            raise ValueError(f"level {level} was not calibrated; calibrated levels: {sorted(self.levels)}")
        if groups is None:
            return self.quantiles[0][level]
        table = np.array([self.quantiles.get(int(g), {}).get(level, np.inf) for g in range(max(self.quantiles) + 1)])
        return table[np.clip(np.asarray(groups, int), 0, table.size - 1)]

    def half_width(self, sd: np.ndarray, level: float, groups: np.ndarray | None = None) -> np.ndarray:
        """Calibrated interval half-width in the units of ``sd``."""
        return np.asarray(sd) * self.multiplier(level, groups)

    def to_dict(self) -> dict:
        return {"levels": list(self.levels), "n_scores": {str(g): n for g, n in self.n_scores.items()},
                "quantiles": {str(g): {str(a): q for a, q in qs.items()} for g, qs in self.quantiles.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "ConformalCalibrator":
        cal = cls(levels=tuple(float(a) for a in data["levels"]))
        cal.quantiles = {int(g): {float(a): float(q) for a, q in qs.items()} for g, qs in data["quantiles"].items()}
        cal.n_scores = {int(g): int(n) for g, n in data.get("n_scores", {}).items()}
        return cal

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "ConformalCalibrator":
        return cls.from_dict(json.loads(Path(path).read_text()))
