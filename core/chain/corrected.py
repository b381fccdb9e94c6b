"""Slices corrected by a smooth residual, kept butterfly- and calendar-free by a dense re-check.

``CorrectedSlice``: a butterfly-free base slice (SVI) plus ``factor`` times a smooth residual in
implied vol (a GP mean, core.chain.gp_residual). ``correct_surface`` swaps a backbone surface's
slices for corrected ones, longest first, each held to the same re-check the SVI slices pass
(core.chain.svi.slice_ok): Durrleman's g >= 0, call prices falling with the strike, w at or above
the floor and strictly below the next longer slice, on the backbone's dense k set. A slice that
fails is retried with each smoother candidate residual in turn (longer GP length scales), then
with the smoothest one halved and quartered, then without it; if even the bare base slice crosses
a corrected longer slice, the pass restarts with every longer slice bare (the backbone is ordered
by construction, so this ends). The result is a SliceSurface, so prices between and beyond the
expiries follow the chain surface's rules and the dense check holds as for every chain method.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from core.chain.build import CAL_CHECK_MARGIN, N_RECHECK, W_FLOOR, dense_k
from core.chain.prices import log_otm_price
from core.chain.svi import decreasing_margin, durrleman_g
from core.chain.surface import SliceSurface

FACTORS = (1.0, 0.5, 0.25, 0.0)   # shares of the correction tried, in order
_H_K = 1e-3                       # finite-difference step in k for w' and w'' (w is smooth)


@dataclass(frozen=True)
class CorrectedSlice:
    """base.w(k) moved by factor * residual_iv(k) in vol: w = (sqrt(base.w / T) + f r)^2 T."""

    base: object
    T: float
    residual_iv: object            # callable k -> vol residual
    factor: float = 1.0

    def w(self, k) -> np.ndarray:
        k = np.asarray(k, np.float64)
        w0 = self.base.w(k)
        if self.factor == 0.0:
            return w0
        iv = np.sqrt(np.maximum(w0, 0.0) / self.T) + self.factor * self.residual_iv(k)
        return np.maximum(iv, 0.0) ** 2 * self.T

    def log_otm(self, k) -> np.ndarray:
        return log_otm_price(k, self.w(k))

    def row(self) -> dict:
        row = self.base.row()
        return {**row, "kind": f"{row['kind']}+gp" if self.factor else row["kind"], "gp_factor": self.factor}


def smile_ok(slice_, k_check: np.ndarray, w_floor: float, w_cap: np.ndarray | None) -> bool:
    """The SVI re-check for any smooth slice: g >= 0, calls falling in strike, floor and cap."""
    w = slice_.w(k_check)
    wp, wm = slice_.w(k_check + _H_K), slice_.w(k_check - _H_K)
    if not (np.isfinite(w).all() and np.isfinite(wp).all() and np.isfinite(wm).all()):
        return False
    if (w < w_floor).any() or (w_cap is not None and (w > w_cap).any()):
        return False
    w1 = (wp - wm) / (2 * _H_K)
    w2 = (wp - 2 * w + wm) / _H_K**2
    return bool((durrleman_g(k_check, w, w1, w2) >= 0.0).all() and (decreasing_margin(k_check, w, w1) >= 0.0).all())


def _tries(cands) -> list:
    """(residual, factor) pairs in the order tried; the bare base last."""
    if not cands:
        return [(None, 0.0)]
    return [(c, 1.0) for c in cands] + [(cands[-1], f) for f in FACTORS[1:]]


def correct_surface(backbone: SliceSurface, residuals: list, method: str = "", sd_fn=None,
                    theta_interp: str = "linear") -> SliceSurface:
    """backbone's slices each corrected by the first of residuals[i] (a list of callables
    k -> vol, smoothest last, or None) that passes; see the module doc. Returns a new SliceSurface
    on the same expiries and quoted ranges."""
    lo, hi = backbone.k_domain
    k_check = dense_k(lo, hi, N_RECHECK)
    m = backbone.expiries.size
    bare_from = m                   # slices at index >= bare_from are kept bare
    while True:
        out = [None] * m
        restart = None
        for i in range(m - 1, -1, -1):
            base, r = backbone.slices[i], residuals[i]
            cap = None if i == m - 1 else out[i + 1].w(k_check) * (1.0 - CAL_CHECK_MARGIN)
            for r_f, f in _tries(r if i < bare_from else None):
                cand = CorrectedSlice(base, float(backbone.expiries[i]), r_f, f)
                if f == 0.0 and (cap is None or (base.w(k_check) <= cap).all()):
                    out[i] = cand           # the bare base: butterfly-free already
                    break
                if f > 0.0 and smile_ok(cand, k_check, W_FLOOR, cap):
                    out[i] = cand
                    break
            if out[i] is None:
                restart = i
                break
        if restart is None:
            break
        if bare_from == restart + 1:     # only if the backbone itself is unordered: keep it bare
            return SliceSurface(expiries=backbone.expiries, k_bounds=backbone.k_bounds, slices=list(backbone.slices),
                                method=method, sd_fn=sd_fn, theta_interp=theta_interp)
        bare_from = restart + 1
    return SliceSurface(expiries=backbone.expiries, k_bounds=backbone.k_bounds, slices=out, method=method,
                        sd_fn=sd_fn, theta_interp=theta_interp)
