"""The one repair pipeline: validate -> predict -> project -> sd -> interval -> stale scores.

``run`` does one pass for a configured repairer on total variance; ``repair`` is the public entry
point on implied-vol grids. The benchmark, the stale scores, the quote workflow and the pages all go
through ``run``, so no caller re-implements the sequence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from core.engine.arbitrage import MODES, calendar_exact_iv, project
from core.engine.envelope import clamp_to_envelope, keep_in_envelope
from core.engine.grid import K_GRID, MAX_IV, MIN_QUOTES, N_K, N_T, T_GRID, W_FLOOR, iv_to_w, w_to_iv
from core.repairers.base import Repairer
from core.repairers.registry import DEFAULT_METHOD, get_repairer
from core.settings import ensure_thread_policy



@dataclass
class RepairResult:
    """A repaired surface (or batch). Arrays are (13, 17) or (n, 13, 17) like the input.

    iv: repaired implied vol after the arbitrage projection; finite, > 0, calendar-free.
    sd: predictive sd in implied-vol units, or None for a method without one.
    iv_raw: the method's output before any projection (clamped to the envelope of the quotes).
    observed: True where the input held a quote.
    clamped: (n,) or scalar bool, True where the output envelope (core.engine.envelope) had to bind.
    """

    iv: np.ndarray
    sd: np.ndarray | None
    iv_raw: np.ndarray
    observed: np.ndarray
    method: str
    arbitrage: str
    half_width_fn: Callable | None = field(default=None, repr=False)
    clamped: np.ndarray | bool = False

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


class Repaired:
    """One pass of the pipeline over a stack of surfaces (n, 13, 17), in total variance.

    ``w`` / ``sd`` are the repair after the ``mode`` projection; ``projected(m)`` gives any other
    projection of the same raw output without re-running the method. Non-finite raw surfaces stay
    NaN after projection.
    """

    def __init__(self, repairer: Repairer, w_obs: np.ndarray, observed: np.ndarray, mode: str | None = None,
                 batch: int | None = None):
        mode = mode or repairer.default_arbitrage
        if mode not in MODES:
            raise ValueError(f"unknown arbitrage mode {mode!r:.60}; choose one of {', '.join(MODES)}")
        self.repairer, self.w_obs, self.observed, self.mode = repairer, w_obs, observed, mode
        parts = [repairer.predict(w_obs[s], observed[s]) for s in _chunks(len(w_obs), batch)]
        # The envelope (core.engine.envelope) bounds what any method returns on absurd inputs;
        # ``clamped`` says which surfaces it moved, so a caller can say so.
        self.w_raw, self.clamped = clamp_to_envelope(np.concatenate([p.w for p in parts]), w_obs, observed)
        self.sd_raw = None if parts[0].sd is None else np.concatenate([p.sd for p in parts])
        self.own_stale = None if parts[0].stale is None else np.concatenate([p.stale for p in parts])
        self._projected, self._brought_back = {}, {}

    def projected(self, mode: str) -> np.ndarray:
        """The raw repair projected with ``mode`` (cached)."""
        if mode not in self._projected:
            out = np.full(self.w_raw.shape, np.nan)
            ok = np.isfinite(self.w_raw).all(axis=(-2, -1))
            if ok.any():
                out[ok] = project(self.w_raw[ok], mode)
                if mode == "full":   # its butterfly step may leave the envelope: core.engine.envelope
                    back = np.zeros(len(out), dtype=bool)
                    out[ok], back[ok] = keep_in_envelope(out[ok], self.w_obs[ok], self.observed[ok])
                    self._brought_back[mode] = back
            self._projected[mode] = out
        return self._projected[mode]

    @property
    def w(self) -> np.ndarray:
        return self.projected(self.mode)

    @property
    def clamped_any(self) -> np.ndarray:
        """(n,) True where the envelope bound the raw output or brought the projection back."""
        w = self.projected(self.mode)
        return self.clamped | self._brought_back.get(self.mode, np.zeros(len(w), dtype=bool))

    def sd_for(self, mode: str) -> np.ndarray | None:
        """The predictive sd (iv units) around the ``mode``-projected repair."""
        if self.sd_raw is None:
            return None
        return self.repairer.adjust_sd(self.sd_raw, w_to_iv(self.w_raw), w_to_iv(self.projected(mode)))

    @property
    def sd(self) -> np.ndarray | None:
        return self.sd_for(self.mode)

    def half_width(self, sd: np.ndarray, level: float) -> np.ndarray:
        return self.repairer.half_width(sd, level)

    def stale_scores(self) -> np.ndarray:
        """Per-quote stale score (n, 13, 17): the method's own where it has one, else the raw misfit
        |observed w - raw repaired w|."""
        if self.own_stale is not None:
            return self.own_stale
        return np.abs(self.w_obs - self.w_raw)


def _chunks(n: int, batch: int | None) -> list:
    step = batch or max(n, 1)
    return [slice(s, s + step) for s in range(0, max(n, 1), step)]


def run(repairer: Repairer, w_obs: np.ndarray, observed: np.ndarray, mode: str | None = None,
        batch: int | None = None) -> Repaired:
    """One pipeline pass: ``repairer`` on observed w (n, 13, 17) with mask ``observed``; ``mode`` is
    the projection (None: the method's default); ``batch`` bounds the surfaces per predict call."""
    return Repaired(repairer, w_obs, observed, mode, batch)


def w_observed(iv_obs: np.ndarray) -> tuple:
    """(w_obs, observed) from quoted vols with NaN where missing (w_obs is 0 off the mask)."""
    observed = np.isfinite(iv_obs)
    return np.where(observed, iv_to_w(np.where(observed, iv_obs, 1.0)), 0.0), observed


def _where(index: tuple) -> str:
    *surface, t, k = index
    prefix = f"surface {surface[0]}, " if surface else ""
    return f"{prefix}T={T_GRID[t]:.2f}, k={K_GRID[k]:+.3f}"


def _has_complex(values) -> bool:
    """Whether a (nested) list or tuple holds a complex number anywhere."""
    return any(_has_complex(v) if isinstance(v, (list, tuple)) else isinstance(v, complex) for v in values)


def validate_iv_obs(iv_obs) -> np.ndarray:
    """Check a quoted-vol grid and return it as float64 (n, 13, 17); ValueError naming the problem.

    NaN (or a masked value of a numpy masked array) marks a missing quote. Rejected: non-numeric,
    complex, boolean or text input, a shape other than (13, 17) or (n, 13, 17), infinities, vols <= 0
    or > MAX_IV, vols whose total variance is below the engine's floor W_FLOOR, and surfaces with
    fewer than MIN_QUOTES quotes.
    """
    if isinstance(iv_obs, np.ma.MaskedArray):   # a masked value is a missing quote, whatever lies under it
        iv_obs = np.ma.filled(iv_obs.astype(np.float64) if iv_obs.dtype.kind in "iuf" else iv_obs, np.nan)
    if isinstance(iv_obs, (list, tuple)):
        kind = "c" if _has_complex(iv_obs) else "f"
    else:
        kind = np.asarray(iv_obs).dtype.kind
    if kind == "O":   # an object array: what its elements are decides (numpy would parse "0.2" silently)
        kinds = {np.asarray(v).dtype.kind for v in np.asarray(iv_obs).ravel()[:N_T * N_K * 10_000]}
        kind = next((k for k in "cUSb" if k in kinds), "f")
    if kind in "cbUSMmV":
        what = {"c": "complex", "b": "boolean", "U": "text", "S": "bytes", "M": "datetime", "m": "timedelta"}
        raise ValueError(f"iv_obs must be a real numeric array of implied vols, got {what.get(kind, 'structured')} "
                         "values" + (" (the imaginary part would be dropped)" if kind == "c" else ""))
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
    with np.errstate(over="ignore", invalid="ignore"):
        w_batch = iv_to_w(batch)
    checks = [
        (np.isinf(batch), "infinite value(s); mark a missing quote with NaN, not inf"),
        (batch <= 0, "vol(s) <= 0; implied vols must be positive"),
        (batch > MAX_IV, f"vol(s) above {MAX_IV:g}; implied vols must be at most {MAX_IV:g} (are these percentages?)"),
        (w_batch < W_FLOOR, f"vol(s) below the floor: total variance iv^2 T must be at least {W_FLOOR:g} "
                                   f"(iv {np.sqrt(W_FLOOR / T_GRID[0]):.3f} at T={T_GRID[0]:.2f}), else it would "
                                   "be floored silently"),
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


def repair(iv_obs, method: str = DEFAULT_METHOD, arbitrage: str | None = None, **config) -> RepairResult:
    """Repair a quoted implied-vol grid.

    iv_obs: (13, 17) or (n, 13, 17) implied vols on (core.T_GRID, core.K_GRID), NaN where not quoted.
    method: one of core.METHODS (default: the recommended one). arbitrage: "calendar" (cumulative
    max of w along T), "full", or "none"; None picks the method's default. ``config`` goes to the
    method's constructor (ValueError for an option it does not take).
    """
    ensure_thread_policy()
    repairer = get_repairer(method, **config)
    if arbitrage is not None and arbitrage not in MODES:
        raise ValueError(f"unknown arbitrage mode {arbitrage!r:.60}; choose one of {', '.join(MODES)}")
    w_obs, observed = w_observed(validate_iv_obs(iv_obs))
    out = run(repairer, w_obs, observed, arbitrage)
    sd = out.sd
    shape = np.shape(iv_obs)
    iv = w_to_iv(out.w) if out.mode == "none" else calendar_exact_iv(out.w)
    return RepairResult(iv=iv.reshape(shape), sd=None if sd is None else sd.reshape(shape),
                        iv_raw=w_to_iv(out.w_raw).reshape(shape), observed=observed.reshape(shape),
                        method=method, arbitrage=out.mode, half_width_fn=repairer.half_width,
                        clamped=out.clamped_any if len(shape) == 3 else bool(out.clamped_any[0]))
