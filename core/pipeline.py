"""The public entry point: ``repair(iv_obs, method)`` for every method, with input checks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from core.engine.arbitrage import MODES, project
from core.engine.grid import K_GRID, N_K, N_T, T_GRID, iv_to_w, w_to_iv
from core.repairers.registry import get_repairer
from core.settings import ensure_thread_policy

MIN_QUOTES = 4
MAX_IV = 5.0


@dataclass
class RepairResult:
    """A repaired surface (or batch). Arrays are (13, 17) or (n, 13, 17) like the input.

    iv: repaired implied vol after the arbitrage projection; finite, > 0, calendar-free.
    sd: predictive sd in implied-vol units, or None for a method without one.
    iv_raw: the method's output before any projection.
    observed: True where the input held a quote.
    """

    iv: np.ndarray
    sd: np.ndarray | None
    iv_raw: np.ndarray
    observed: np.ndarray
    method: str
    arbitrage: str
    half_width_fn: Callable | None = field(default=None, repr=False)

    def interval(self, level: float = 0.95) -> tuple | None:
        """(low, high) implied vols of the central ``level`` interval around ``iv`` (the method's own
        calibration: conformal for "best", Gaussian z * sd otherwise); None without an sd."""
        if self.sd is None or self.half_width_fn is None:
            return None
        half = self.half_width_fn(self.sd, level)
        return np.maximum(self.iv - half, 0.0), self.iv + half

    @property
    def w(self) -> np.ndarray:
        """Repaired total variance."""
        return iv_to_w(self.iv)


def _where(index: tuple) -> str:
    *surface, t, k = index
    prefix = f"surface {surface[0]}, " if surface else ""
    return f"{prefix}T={T_GRID[t]:.2f}, k={K_GRID[k]:+.3f}"


def validate_iv_obs(iv_obs) -> np.ndarray:
    """Check a quoted-vol grid and return it as float64 (n, 13, 17); ValueError naming the problem.

    NaN marks a missing quote. Rejected: non-numeric input, a shape other than (13, 17) or
    (n, 13, 17), infinities, vols <= 0 or > MAX_IV, and surfaces with fewer than MIN_QUOTES quotes.
    """
    try:
        iv = np.array(iv_obs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"iv_obs must be a numeric array of implied vols: {exc}") from None
    if iv.ndim not in (2, 3) or iv.shape[-2:] != (N_T, N_K):
        raise ValueError(f"iv_obs must have shape ({N_T}, {N_K}) or (n, {N_T}, {N_K}); got {iv.shape}")
    batch = iv.reshape(-1, N_T, N_K)
    if batch.shape[0] == 0:
        raise ValueError("iv_obs holds no surfaces (n = 0)")
    single = iv.ndim == 2
    checks = [
        (np.isinf(batch), "infinite value(s); mark a missing quote with NaN, not inf"),
        (batch <= 0, "vol(s) <= 0; implied vols must be positive"),
        (batch > MAX_IV, f"vol(s) above {MAX_IV:g}; implied vols must be at most {MAX_IV:g} (are these percentages?)"),
    ]
    for bad, what in checks:
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            index = first[1:] if single else first
            raise ValueError(f"iv_obs has {int(bad.sum())} {what}: first {batch[first]:g} at {_where(index)}")
    counts = np.isfinite(batch).sum(axis=(1, 2))
    if (counts < MIN_QUOTES).any():
        i = int(np.argmin(counts))
        where = "iv_obs" if single else f"surface {i} of iv_obs"
        raise ValueError(f"{where} has {int(counts[i])} quote(s); at least {MIN_QUOTES} are needed for a repair")
    return batch


def repair(iv_obs, method: str = "cnn", arbitrage: str | None = None, **config) -> RepairResult:
    """Repair a quoted implied-vol grid.

    iv_obs: (13, 17) or (n, 13, 17) implied vols on (core.T_GRID, core.K_GRID), NaN where not quoted.
    method: one of core.METHODS. arbitrage: "calendar" (cumulative max of w along T), "full", or
    "none"; None picks the method's default. ``config`` goes to the method's constructor.
    """
    ensure_thread_policy()
    repairer = get_repairer(method, **config)
    mode = arbitrage or getattr(repairer, "default_arbitrage", "calendar")
    if mode not in MODES:
        raise ValueError(f"unknown arbitrage mode {mode!r}; choose one of {', '.join(MODES)}")
    iv = validate_iv_obs(iv_obs)
    observed = np.isfinite(iv)
    w_obs = np.where(observed, iv_to_w(np.nan_to_num(iv, nan=1.0)), 0.0)
    w_raw, sd = repairer.fit(w_obs, observed)
    w_out = project(w_raw, mode)
    iv_raw, iv_out = w_to_iv(w_raw), w_to_iv(w_out)
    sd = repairer.adjust_sd(sd, iv_raw, iv_out)
    shape = np.shape(iv_obs)
    return RepairResult(iv=iv_out.reshape(shape), sd=None if sd is None else sd.reshape(shape),
                        iv_raw=iv_raw.reshape(shape), observed=observed.reshape(shape),
                        method=method, arbitrage=mode, half_width_fn=repairer.half_width)
