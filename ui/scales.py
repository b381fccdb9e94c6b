"""Colour and axis limits that a single extreme value cannot set (presentation only: which part of
the data a scale spans, not any number shown).

A worst method's front row, an extrapolated corner or a CNN spike used to set a shared scale and
flatten everything else to one colour. Every scale here is stated where it is drawn: values beyond
it saturate (heatmaps) or run off the axis (lines); hover still gives them.
"""
from __future__ import annotations

import numpy as np

ROBUST_K = 4.0   # a colour scale spans median +/- 4 robust sd (1.4826 MAD) of what it shows


def robust_range(*arrays, k: float = ROBUST_K, floor: float | None = None) -> tuple:
    """(low, high) colour limits from the finite values of ``arrays`` pooled: the median +/- ``k``
    robust sd (1.4826 x the median absolute deviation), within the data's min and max. Not
    quantiles: a steep front row is 17 of 221 cells (8 %), more than a 95th percentile drops, while
    it lies far outside the bulk's robust spread. ``floor`` pins low (0 for errors). A degenerate
    range is widened a little so a colour scale stays valid."""
    pooled = np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in arrays]) if arrays else np.array([])
    pooled = pooled[np.isfinite(pooled)]
    if pooled.size == 0:
        return (0.0 if floor is None else floor), 1.0
    med = float(np.median(pooled))
    spread = 1.4826 * float(np.median(np.abs(pooled - med)))
    low = max(float(pooled.min()), med - k * spread)
    high = min(float(pooled.max()), med + k * spread)
    if floor is not None:
        low = floor
    if high <= low:
        high = max(float(pooled.max()), low + max(abs(low) * 0.05, 1e-6))
    return low, high


def focus_range(anchor, others=(), slack: float = 0.5, pad: float = 0.05) -> list:
    """An axis range that always shows ``anchor`` (the truth, the quotes) and shows ``others`` (the
    repairs, their bands) only as far as ``slack`` x the anchor's span beyond it: one method's spike
    cannot squash the rest. Padded by ``pad`` of the span."""
    a = np.ravel(np.asarray(anchor, np.float64))
    a = a[np.isfinite(a)]
    o = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in others]) if len(others) else np.array([])
    o = o[np.isfinite(o)]
    if a.size == 0:
        a = o
    if a.size == 0:
        return [0.0, 1.0]
    low, high = float(a.min()), float(a.max())
    span = max(high - low, 0.02 * max(abs(high), 1e-3))
    if o.size:
        low = max(min(low, float(o.min())), low - slack * span)
        high = min(max(high, float(o.max())), high + slack * span)
    span = high - low
    return [low - pad * span, high + pad * span]
