"""The output envelope: a repair stays within a stated band around its own quotes.

For a surface whose quotes lie in [v_min, v_max] (implied vol), every repaired vol lies in
[ENVELOPE_LOW * v_min, ENVELOPE_HIGH * v_max]. Methods that extrapolate (SVI wings, the learned
models far from any quote) can leave that band on absurd inputs, e.g. a few quotes spread from
0.012 to 4.99; the raw output is clamped to it before the arbitrage projection
(``clamp_to_envelope``), and a fully projected surface that left it is brought back
(``keep_in_envelope``). The calendar projection keeps the band by itself: a cumulative max of w
along T cannot exceed ENVELOPE_HIGH^2 v_max^2 T, nor fall below the raw value. The band is wide
enough for plausible surfaces (docs/robustness.md: where it binds on the benchmark, and why).
"""
from __future__ import annotations

import numpy as np

from core.engine.grid import T_MESH

ENVELOPE_LOW = 0.25    # repaired vol >= 0.25 x the smallest quote of its surface
ENVELOPE_HIGH = 5.0    # repaired vol <= 5 x the largest quote of its surface


def quote_range(w_obs: np.ndarray, observed: np.ndarray) -> tuple:
    """(v_min, v_max), each (n, 1, 1): the smallest and largest quoted vol of every surface."""
    iv = np.sqrt(np.maximum(w_obs, 0.0) / T_MESH)
    v_min = np.where(observed, iv, np.inf).min(axis=(-2, -1), keepdims=True)
    v_max = np.where(observed, iv, -np.inf).max(axis=(-2, -1), keepdims=True)
    return v_min, v_max


def clamp_to_envelope(w: np.ndarray, w_obs: np.ndarray, observed: np.ndarray) -> tuple:
    """(w clamped to the envelope of each surface's quotes, boolean (n,) where the clamp moved it).

    In: raw repaired total variance w (n, 13, 17), observed total variance and mask of the quotes.
    Surfaces without a quote are returned unchanged; NaN stays NaN.
    """
    v_min, v_max = quote_range(w_obs, observed)
    has = observed.any(axis=(-2, -1), keepdims=True)
    low = np.where(has, (ENVELOPE_LOW * v_min) ** 2 * T_MESH, -np.inf)
    high = np.where(has, (ENVELOPE_HIGH * v_max) ** 2 * T_MESH, np.inf)
    with np.errstate(invalid="ignore"):
        out = np.clip(w, low, high)
        moved = ((out != w) & np.isfinite(w)).any(axis=(-2, -1))
    return out, moved


_BLENDS = (0.25, 0.5, 0.75, 1.0)   # steps towards the flat, in-envelope surface


def keep_in_envelope(w_proj: np.ndarray, w_obs: np.ndarray, observed: np.ndarray) -> tuple:
    """(w, moved): fully projected surfaces (n, 13, 17) brought back into their quotes' envelope,
    and a boolean (n,) of those that had to be.

    The butterfly step of the "full" projection may move a node of an absurd smile out of the
    envelope (up or down). Such a surface is blended towards its per-maturity flat level (the
    slice mean, clipped into the envelope: non-decreasing in T, and a flat smile is free of
    butterfly arbitrage) by the smallest step of _BLENDS whose result passes the full check and
    lies inside; the flat surface itself always does. Other surfaces are returned as they are.
    """
    from core.engine.arbitrage import surfaces_pass

    v_min, v_max = quote_range(w_obs, observed)
    low, high = (ENVELOPE_LOW * v_min) ** 2 * T_MESH, (ENVELOPE_HIGH * v_max) ** 2 * T_MESH
    tol = 1e-12 * high
    outside = ((w_proj < low - tol) | (w_proj > high + tol)).any(axis=(-2, -1)) & observed.any(axis=(-2, -1))
    if not outside.any():
        return w_proj, outside
    out = w_proj.copy()
    stuck = w_proj[outside]
    lo, hi, tol = low[outside], high[outside], tol[outside]
    flat = np.clip(stuck.mean(axis=-1, keepdims=True), lo[..., :1], hi[..., :1])
    flat = np.maximum.accumulate(np.broadcast_to(flat, stuck.shape), axis=-2)
    left = np.ones(len(stuck), dtype=bool)
    for lam in _BLENDS:
        blend = (1.0 - lam) * stuck + lam * flat
        inside = ((blend >= lo - tol) & (blend <= hi + tol)).all(axis=(-2, -1))
        take = left & ((inside & surfaces_pass(blend)) | (lam == 1.0))
        stuck[take] = blend[take]
        left &= ~take
    out[outside] = stuck
    return out, outside
