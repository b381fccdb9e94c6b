"""The dense static-arbitrage check of a ChainSurface, between nodes as well as at them.

Check set: every fitted expiry and every midpoint between two expiries; at each, ``n_strikes``
log-moneyness points evenly across the surface's whole quoted domain (lowest to highest quoted k
over all expiries), so short expiries are checked on the long expiries' strike range too.

- butterfly: the forward-normalised call C(K) (K = e^k, F = 1) must be non-increasing and convex
  in K: C[j+1] - C[j] <= PRICE_TOL, and the slope (C[j+1] - C[j]) / (K[j+1] - K[j]) must not fall
  by more than SLOPE_TOL from one strike interval to the next;
- calendar: total variance must be non-decreasing in T at every fixed k:
  w[i+1] - w[i] >= -(W_REL_TOL * w[i] + W_ABS_TOL).

A violation is one (T, k) point failing one condition. The tolerances only absorb floating-point
rounding of prices and of the price-to-variance inversion, not modelling error.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.engine.domain import check_domain

PRICE_TOL = 1e-12        # forward-normalised price units
SLOPE_TOL = 1e-9         # call-price slope dC/dK (dimensionless)
W_REL_TOL = 1e-9         # relative rounding of an implied total variance
W_ABS_TOL = 1e-12        # absolute floor of the calendar tolerance (w units)
N_STRIKES = 200


@dataclass
class DenseReport:
    """Counts of dense-check violations and where the worst ones are."""

    n_butterfly: int
    n_calendar: int
    n_points: int
    T: np.ndarray = field(repr=False)
    k: np.ndarray = field(repr=False)
    worst_butterfly: dict = field(default_factory=dict)
    worst_calendar: dict = field(default_factory=dict)
    n_nonfinite: int = 0

    @property
    def ok(self) -> bool:
        return self.n_butterfly == 0 and self.n_calendar == 0 and self.n_nonfinite == 0

    def failure(self) -> str:
        """One line saying how the check failed (for a report that did not pass)."""
        return (f"the repaired surface fails the dense arbitrage check ({self.n_butterfly} butterfly, "
                f"{self.n_calendar} calendar, {self.n_nonfinite} non-finite of {self.n_points} points)")

    @property
    def n_violations(self) -> int:
        return self.n_butterfly + self.n_calendar + self.n_nonfinite

    def to_dict(self) -> dict:
        return {"ok": self.ok, "butterfly": self.n_butterfly, "calendar": self.n_calendar,
                "nonfinite": self.n_nonfinite, "points": self.n_points,
                "worst_butterfly": self.worst_butterfly, "worst_calendar": self.worst_calendar}


def check_times(expiries) -> np.ndarray:
    """The fitted expiries and the midpoints between consecutive ones, sorted."""
    E = np.unique(np.asarray(expiries, np.float64))
    return np.sort(np.r_[E, 0.5 * (E[1:] + E[:-1])])


def check_strikes(k_bounds, n_strikes: int = N_STRIKES) -> np.ndarray:
    """n_strikes k points evenly from the lowest to the highest quoted k (widened to
    MIN_CHECK_WIDTH where narrower: core.engine.domain.check_domain)."""
    kb = np.asarray(k_bounds, np.float64).reshape(-1, 2)
    return np.linspace(*check_domain(float(kb[:, 0].min()), float(kb[:, 1].max())), n_strikes)


def _worst(values: np.ndarray, T: np.ndarray, k: np.ndarray, name: str) -> dict:
    i, j = np.unravel_index(int(np.argmin(values)), values.shape)
    return {"T": float(T[i]), "k": float(k[j]), name: float(values[i, j])}


def butterfly_counts(call: np.ndarray, k: np.ndarray) -> tuple:
    """(violation mask (nT, nK - 1) for increasing prices, mask (nT, nK - 2) for concavity, slope
    changes) of call prices (nT, nK) on strikes K = e^k."""
    K = np.exp(k)
    dC = np.diff(call, axis=1)
    slope = dC / np.diff(K)[None, :]
    dslope = np.diff(slope, axis=1)
    return dC > PRICE_TOL, dslope < -SLOPE_TOL, dslope


def dense_check(surface, n_strikes: int = N_STRIKES) -> DenseReport:
    """Butterfly and calendar violations of ``surface`` (a ChainSurface) on the dense check set."""
    if n_strikes < 3:
        raise ValueError(f"dense_check: n_strikes must be at least 3, got {n_strikes}")
    T = check_times(surface.expiries)
    k = check_strikes(surface.k_bounds, n_strikes)
    TT, KK = np.meshgrid(T, k, indexing="ij")
    if hasattr(surface, "call_and_w"):            # one pricing pass where the surface offers it
        return check_values(T, k, *surface.call_and_w(TT, KK))
    return check_values(T, k, surface.call(TT, KK), surface.w(TT, KK))


def check_values(T, k, call, w) -> DenseReport:
    """The dense check on values already computed: call prices and total variance (nT, nK) at the
    sorted times T and strikes k (e.g. a surface's dense export, which has them on its own set)."""
    T, k = np.asarray(T, np.float64), np.asarray(k, np.float64)
    call, w = np.asarray(call, np.float64), np.asarray(w, np.float64)
    finite = np.isfinite(call) & np.isfinite(w)
    rising, concave, dslope = butterfly_counts(np.where(finite, call, 0.0), k)
    dw = np.diff(w, axis=0)
    tol = W_REL_TOL * np.abs(w[:-1]) + W_ABS_TOL
    calendar = np.isfinite(dw) & (dw < -tol)
    report = DenseReport(n_butterfly=int(rising.sum() + concave.sum()), n_calendar=int(calendar.sum()),
                         n_points=int(T.size * k.size), T=T, k=k, n_nonfinite=int((~finite).sum()))
    if concave.any():
        report.worst_butterfly = _worst(dslope, T, k[1:-1], "slope_change")
    if calendar.any():
        report.worst_calendar = _worst(np.where(np.isfinite(dw), dw, 0.0), T[:-1], k, "dw")
    return report
