"""Stale / off-market quote scores and flags for a chain, scaled by each quote's own uncertainty.

Score. Per expiry, quotes sorted by k. Each quote is compared with a robust local quadratic in k
fitted to its WINDOW nearest neighbours on the same expiry, the quote itself left out (an exact
leave-one-out by construction: the fit never sees the quote). The fit is weighted by the
neighbours' precision (1 / half-spread^2), a tricube kernel in k distance and Tukey biweights
from ROBUST_PASSES re-fits, so one stale neighbour does not drag it. The residual quote - fit (vol)
is divided by the quote's own uncertainty

    u^2 = h^2 + var_fit + misfit^2

with h the quote's bid-ask half-spread in vol (floored at MIN_HALF_SPREAD; NO_SPREAD_HALF for a
quote without bid/ask), var_fit the fit's variance at the quote and misfit^2 the robust mean square
residual of the neighbours around their own fit (how well a quadratic describes the smile
there). Given a repaired ``surface``, the local fit is applied to quote - surface instead, so the
surface's shape carries the wings and the short windows only have to fit what it leaves.

Flag. ``|score| > FLAG_Z``. The constant was chosen on synthetic chains (core.synth.chains, their
bid-ask spreads) and the validation split of the real chains named in tools/measure_chain_stale.py,
never on all shared chains at once. Cost: one sort plus O(n WINDOW) batched 3 x 3 solves.
"""
from __future__ import annotations

import numpy as np

from core.chain.types import ChainQuotes

WINDOW = 8               # neighbours per local fit (4 each side away from the edges)
MIN_NEIGHBOURS = 4       # fewer on the expiry -> no score (NaN), never flagged
MIN_HALF_SPREAD = 0.0005  # vol: a quoted spread is never trusted below 5 bp
NO_SPREAD_HALF = 0.0025  # vol: the half-spread assumed for a quote without bid/ask (published grids)
MIN_SCATTER = 0.4        # the chain's scatter is taken as at least this fraction of the uncertainty
ROBUST_PASSES = 2        # Tukey re-weightings of the neighbours inside each window
TUKEY_C = 4.685          # biweight constant (95 % efficiency under normal noise)
RIDGE = 1e-9             # keeps a degenerate window's 3 x 3 system solvable
FLAG_Z = 3.0             # flag |score| above this


def half_spread(quotes: ChainQuotes) -> np.ndarray:
    """Each quote's half bid-ask spread in vol, floored; NO_SPREAD_HALF where bid or ask is unknown."""
    h = 0.5 * (quotes.iv_ask - quotes.iv_bid)
    h = np.where(np.isfinite(h) & (h >= 0), h, NO_SPREAD_HALF)
    return np.maximum(h, MIN_HALF_SPREAD)


def _windows(group: np.ndarray, n: int) -> tuple:
    """Neighbour indices (n, WINDOW) into the (group, k)-sorted arrays, and a validity mask.

    Each quote takes the WINDOW + 1 consecutive quotes of its expiry centred on it where
    possible (shifted at the ends), itself then dropped: it never enters its own fit."""
    pos = np.arange(n)
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    sizes = np.diff(np.r_[starts, n])
    lo = np.repeat(starts, sizes)
    size = np.repeat(sizes, sizes)
    span = np.minimum(WINDOW + 1, size)
    start = np.clip(pos - WINDOW // 2, lo, lo + size - span)
    idx = start[:, None] + np.arange(WINDOW + 1)[None, :]
    valid = (np.arange(WINDOW + 1)[None, :] < span[:, None]) & (idx != pos[:, None])
    idx = np.minimum(idx, (lo + size - 1)[:, None])
    # drop the quote's own column: every row has exactly one idx == pos among its span
    own = np.argmax(idx == pos[:, None], axis=1)
    keep = np.ones(idx.shape, bool)
    keep[pos, own] = False
    return idx[keep].reshape(n, WINDOW), valid[keep].reshape(n, WINDOW), size


def _solve(x: np.ndarray, y: np.ndarray, wt: np.ndarray) -> tuple:
    """Batched weighted least squares of y on [1, x, x^2]: coefficients (n, 3) and (X'WX)^-1 (n, 3, 3)."""
    X = np.stack([np.ones_like(x), x, x * x], axis=-1)
    A = np.einsum("nw,nwi,nwj->nij", wt, X, X)
    A += RIDGE * np.eye(3) * np.maximum(A[:, :1, :1], 1.0)
    b = np.einsum("nw,nwi,nw->ni", wt, X, y)
    inv = np.linalg.inv(A)
    return np.einsum("nij,nj->ni", inv, b), inv, X


def _local_fit(k: np.ndarray, y: np.ndarray, h: np.ndarray, idx: np.ndarray, valid: np.ndarray) -> tuple:
    """Leave-one-out prediction of y at each k from its window, its variance and the local misfit^2."""
    dk = k[idx] - k[:, None]
    scale = np.max(np.where(valid, np.abs(dk), 0.0), axis=1, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0)
    x = dk / scale                       # in [-1, 1]: the 3 x 3 systems stay well conditioned
    kernel = np.where(valid, (1.0 - np.clip(np.abs(x) / 1.05, 0, 1) ** 3) ** 3, 0.0)
    prec = 1.0 / h[idx] ** 2
    yn = y[idx]
    robust = np.ones_like(x)
    for _ in range(ROBUST_PASSES + 1):
        wt = kernel * prec * robust
        beta, inv, X = _solve(x, yn, wt)
        resid = yn - np.einsum("nwi,ni->nw", X, beta)
        u = resid / (TUKEY_C * _robust_scale(resid, h[idx], kernel))
        robust = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
    wt = kernel * prec * robust
    # chi^2 per degree of freedom of the window's own fit: > 1 where a quadratic does not describe
    # the neighbours to within their spreads; it inflates the fit's variance and adds a misfit term
    dof = np.maximum((wt > 0).sum(axis=1) - 3, 1)
    chi2 = (wt * resid**2).sum(axis=1) / dof
    h2 = (wt * h[idx] ** 2).sum(axis=1) / np.maximum(wt.sum(axis=1), 1e-300)
    return beta[:, 0], inv[:, 0, 0] * np.maximum(chi2, 1.0), chi2 * h2


def _robust_scale(resid: np.ndarray, h: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Per window: the larger of the neighbours' typical half-spread and 1.4826 MAD of the residuals."""
    r = np.where(kernel > 0, np.abs(resid), np.nan)
    mad = 1.4826 * np.nanmedian(r, axis=1, keepdims=True)
    typical = np.nanmedian(np.where(kernel > 0, h, np.nan), axis=1, keepdims=True)
    return np.maximum(np.nan_to_num(mad), typical)


def chain_scatter(z: np.ndarray) -> float:
    """The chain's typical |z| (1.4826 MAD about 0), floored at MIN_SCATTER.

    Mids usually sit well inside their spreads, by a margin that differs from chain to chain; a
    chain whose quotes scatter more than that (a rough published grid) widens every quote's
    uncertainty by the same factor, so its ordinary roughness is not flagged."""
    finite = np.abs(z[np.isfinite(z)])
    if finite.size == 0:
        return MIN_SCATTER
    return max(MIN_SCATTER, 1.4826 * float(np.median(finite)))


def stale_scores(quotes: ChainQuotes, surface=None) -> tuple:
    """Per-quote stale score and flag for a chain.

    In: ``quotes`` (ChainQuotes); optionally ``surface`` (a ChainSurface) whose iv is subtracted
    before the local fits. Out: ``(score, flag)``, both (n,) in the quotes' order. ``score`` is
    signed, in units of the quote's own uncertainty (positive: quote above its neighbours' fit),
    NaN where the expiry has fewer than MIN_NEIGHBOURS + 1 quotes; ``flag`` = |score| > FLAG_Z.
    """
    n = len(quotes)
    score = np.full(n, np.nan)
    if n == 0:
        return score, np.zeros(0, bool)
    y = quotes.iv.copy()
    if surface is not None:
        base = np.asarray(surface.iv(quotes.T, quotes.k), dtype=float)
        if base.shape != y.shape or not np.isfinite(base).all():
            raise ValueError("stale_scores: the surface's iv at the quotes is not finite")
        y = y - base
    group = np.round(quotes.T, 9)
    order = np.lexsort((quotes.k, group))
    g, k, ys, h = group[order], quotes.k[order], y[order], half_spread(quotes)[order]
    _, inverse = np.unique(g, return_inverse=True)
    idx, valid, size = _windows(inverse, n)
    pred, var_unit, misfit2 = _local_fit(k, ys, h, idx, valid)
    # var_unit is (X'WX)^-1 with weights 1/h^2: the fit's variance if the neighbours' noise were h
    u2 = h**2 + var_unit + misfit2
    z = (ys - pred) / np.sqrt(u2)
    z[size < MIN_NEIGHBOURS + 1] = np.nan
    score[order] = z / chain_scatter(z)
    flag = np.abs(np.nan_to_num(score)) > FLAG_Z
    return score, flag
