"""Stale / off-market quote scores and flags for a chain, scaled by each quote's own uncertainty.

Score. Per expiry, quotes sorted by k. Each quote is compared with a robust local quadratic in k
fitted to its WINDOW nearest neighbours on the same expiry, the quote itself left out (an exact
leave-one-out by construction: the fit never sees the quote). The fit is weighted by the
neighbours' precision (1 / half-spread^2), a tricube kernel in k distance and Tukey biweights
(ROBUST_PASSES re-fits against a kernel-weighted MAD), so a stale neighbour does not drag it. The
fit may step at k = 0, where an OTM chain switches from puts to calls (put and call vols of
American options differ there), under a STEP_PRIOR prior; the quote is predicted on its own side.
The residual quote - fit (vol) is divided by the quote's own uncertainty

    u^2 = h^2 + var_fit + misfit^2 + (fit - near)^2

with h the quote's bid-ask half-spread in vol (floored at MIN_HALF_SPREAD; NO_SPREAD_HALF for a
quote without bid/ask), var_fit the fit's variance at the quote (inflated by the window's chi^2
when above 1), misfit^2 the neighbours' weighted mean square residual around their own fit, and
(fit - near)^2 the disagreement with a line through the NEAR_WINDOW nearest neighbours: a model
uncertainty that grows where the smile bends fast or the quote is an extrapolation (an expiry's
outermost strikes). None of these terms sees the quote's own value. The score is then divided by
a scatter scale (``scatter``): 1.4826 MAD of the expiry's scores shrunk toward the chain's,
floored at MIN_SCATTER, so quotes that scatter more than their spreads suggest (a rough published
grid, a noisy front week) are judged against their own roughness. A second pass drops the quotes
the first found beyond TRUST_CUT from every window they sit in and refits those windows.
Given a repaired ``surface``, the fits are applied to quote - surface instead, so the surface's
shape carries the wings and the windows fit what it leaves. A surface with a parametric
``backbone`` (svi_gp's SVI slices under its GP) is judged by the backbone: the GP is fitted
through the quotes, moved ones included, and bends toward them. ``weight`` (merged quotes) is unused.

Chains without bid/ask (published vol matrices such as DAX 2002 or Andreasen-Huge 2010: no quote
has a spread). The path above gives every quote the same assumed NO_SPREAD_HALF and judges it
against 8-13 strikes of its own expiry. These matrices share their strikes across expiries, so
``_grid_scores`` adds the calendar direction: each quote against a leave-one-out fit of its
GRID_OWN own-expiry neighbours and the GRID_ADJ nearest quotes in x = k / sqrt(T) on the previous and
the next expiry (weight GRID_ADJ_WEIGHT), in log-vol of the quotes themselves, with a level per
expiry and a shared smile shape (dx, dx^2, dx dt with t = ln T): the adjacent expiries lend the
shape, the own expiry sets the level. Its quote noise is estimated from the chain (the median of
the windows' mean square residuals, s^2); u^2 = s^2 (1 + var_fit) + GRID_NEAR (fit - near)^2; then
the per-expiry scatter scale and the trust pass as above, and division by GRID_SCALE. The score is
the geometric mean of the two directions' sizes, signed as the strike direction's: a rough matrix
misleads each direction at different quotes, while a moved quote stands out in both. A chain
where some quotes have a spread stays on the spread path (NO_SPREAD_HALF for the others).

Flag. ``|score| > FLAG_Z``. The constants were chosen on clean synthetic chains with planted moves
(core.synth.chains, spreads three times the mid noise) and the validation chains named in
tools/measure_chain_stale.py (``python tools/measure_chain_stale.py`` prints the table); the
no-spread path on synthetic published matrices (core.synth.chains.make_matrix, surface seeds
800-802: the geometric mean ranked moves better than either direction alone on 4 of 5), then
checked on DAX 2002 and AH 2010. On a rough matrix the 50-110 bp moves are not all catchable:
DAX's leave-one-out residuals are 10-80 bp per expiry (its front expiry's wings 170-180 bp), so
the flags there catch under half of such moves while ranking them well (docs/chain_path.md).
Cost: one sort plus O(n WINDOW) batched small solves, vectorised across expiries (the no-spread
path adds O(n (GRID_OWN + 2 GRID_ADJ)), a loop over expiries for the neighbour search).
"""
from __future__ import annotations

import numpy as np

from core.chain.types import ChainQuotes

WINDOW = 10              # neighbours per local fit (5 each side away from the edges)
KERNEL_REACH = 1.05      # tricube reach, in units of the window's farthest neighbour
MIN_NEIGHBOURS = 4       # fewer on the expiry -> no score (NaN), never flagged
MIN_HALF_SPREAD = 0.0005  # vol: a quoted spread is never trusted below 5 bp
NO_SPREAD_HALF = 0.0025  # vol: the half-spread assumed for a quote without bid/ask (published grids)
SCATTER_PRIOR = 30       # quotes' worth of weight the chain's scatter has in an expiry's
MIN_SCATTER = 0.4        # the chain's scatter is taken as at least this fraction of the uncertainty
ROBUST_PASSES = 2        # Tukey re-weightings of the neighbours inside each window
TUKEY_C = 4.685          # biweight constant (95 % efficiency under normal noise)
RIDGE = 1e-9             # keeps a degenerate window's 3 x 3 system solvable
NEAR_WINDOW = 2          # the nearest-neighbour line behind the model-uncertainty term
STEP_PRIOR = 0.01        # vol: prior sd of a put/call step at k = 0
STIFF_STEP = 1e-5        # vol: the same in the first, non-robust pass (practically no step)
TRUST_CUT = 5.0          # first-pass |score| above which a quote is no one's neighbour
FLAG_Z = 2.5             # flag |score| above this
# chains without any bid/ask (published vol matrices): the calendar-direction path
GRID_OWN = 6             # neighbours on the quote's own expiry
GRID_ADJ = 6             # neighbours (nearest in x = k / sqrt(T)) on each adjacent expiry
GRID_ADJ_WEIGHT = 0.5    # an adjacent expiry's neighbour counts this much of an own-expiry one
GRID_SCALE = 1.3         # a no-spread score is divided by this: its noise is estimated from the chain
GRID_NEAR = 0.5          # weight of the (fit - near)^2 model-uncertainty term on the no-spread path


def half_spread(quotes: ChainQuotes) -> np.ndarray:
    """Each quote's half bid-ask spread in vol, floored; NO_SPREAD_HALF where bid or ask is unknown."""
    h = 0.5 * (quotes.iv_ask - quotes.iv_bid)
    h = np.where(np.isfinite(h) & (h >= 0), h, NO_SPREAD_HALF)
    return np.maximum(h, MIN_HALF_SPREAD)


def _windows(group: np.ndarray, n: int, window: int) -> tuple:
    """Neighbour indices (n, window) into the (group, k)-sorted arrays, a validity mask, and each
    quote's expiry size.

    Each quote takes the window + 1 consecutive quotes of its expiry centred on it where
    possible (shifted at the ends), itself then dropped: it never enters its own fit."""
    pos = np.arange(n)
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    sizes = np.diff(np.r_[starts, n])
    lo = np.repeat(starts, sizes)
    size = np.repeat(sizes, sizes)
    span = np.minimum(window + 1, size)
    start = np.clip(pos - window // 2, lo, lo + size - span)
    idx = start[:, None] + np.arange(window + 1)[None, :]
    valid = (np.arange(window + 1)[None, :] < span[:, None]) & (idx != pos[:, None])
    idx = np.minimum(idx, (lo + size - 1)[:, None])
    # drop the quote's own column: every row has exactly one idx == pos among its span
    own = np.argmax(idx == pos[:, None], axis=1)
    keep = np.ones(idx.shape, bool)
    keep[pos, own] = False
    return idx[keep].reshape(n, window), valid[keep].reshape(n, window), size


def _solve(x: np.ndarray, y: np.ndarray, wt: np.ndarray, degree: int, step: np.ndarray,
           step_prior: float) -> tuple:
    """Batched weighted least squares of y on [1, x, .., x^degree, step]: coefficients (n, p),
    (X'WX)^-1 (n, p, p) and the design (n, w, p). The step coefficient has a normal prior of sd
    ``step_prior`` (vol) about 0, which keeps it defined when the window has one side only."""
    X = np.stack([x**d for d in range(degree + 1)] + [step], axis=-1)
    A = np.einsum("nw,nwi,nwj->nij", wt, X, X)
    A += RIDGE * np.eye(degree + 2) * np.maximum(A[:, :1, :1], 1.0)
    A[:, -1, -1] += 1.0 / step_prior**2
    b = np.einsum("nw,nwi,nw->ni", wt, X, y)
    inv = np.linalg.inv(A)
    return np.einsum("nij,nj->ni", inv, b), inv, X


def _local_fit(k: np.ndarray, y: np.ndarray, h: np.ndarray, rows: np.ndarray, idx: np.ndarray,
               valid: np.ndarray, trust: np.ndarray, degree: int = 2) -> tuple:
    """Leave-one-out prediction of y at k[rows] from each row's window (idx, valid: (len(rows), w)
    indices into k, y, h), its variance and the local misfit^2. ``trust`` (0..1 per quote)
    multiplies a neighbour's weight in every window it is in."""
    dk = k[idx] - k[rows][:, None]
    scale = np.max(np.where(valid, np.abs(dk), 0.0), axis=1, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0)
    x = dk / scale                       # in [-1, 1]: the 3 x 3 systems stay well conditioned
    kernel = np.where(valid, (1.0 - np.clip(np.abs(x) / KERNEL_REACH, 0, 1) ** 3) ** 3, 0.0)
    # OTM chains switch from puts to calls at k = 0, and put and call vols of American options (or
    # with a slightly wrong forward) differ by a step there: the fit may jump at k = 0, and the
    # prediction is the level on the quote's own side (step = 0 at the quote)
    step = (k[idx] >= 0).astype(float) - (k[rows] >= 0)[:, None]
    prec = 1.0 / h[idx] ** 2
    yn = y[idx]
    kernel = kernel * trust[idx]
    robust = np.ones_like(x)
    for i in range(ROBUST_PASSES + 1):
        wt = kernel * prec * robust
        # the first pass has no step: a free step would let an outlier beside k = 0 pull it along
        # and escape the Tukey weights; the later passes free it once outliers are down-weighted
        beta, inv, X = _solve(x, yn, wt, degree, step, STEP_PRIOR if i else STIFF_STEP)
        resid = yn - np.einsum("nwi,ni->nw", X, beta)
        u = resid / (TUKEY_C * _robust_scale(resid, h[idx], kernel))
        robust = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
    wt = kernel * prec * robust
    # chi^2 per degree of freedom of the window's own fit: > 1 where a quadratic does not describe
    # the neighbours to within their spreads; it inflates the fit's variance and adds a misfit term
    dof = np.maximum((wt > 0).sum(axis=1) - degree - 1, 1)
    chi2 = (wt * resid**2).sum(axis=1) / dof
    h2 = (wt * h[idx] ** 2).sum(axis=1) / np.maximum(wt.sum(axis=1), 1e-300)
    # (X'WX)^-1 with weights 1/h^2 is the fit's variance if the neighbours' noise were their h
    return beta[:, 0], inv[:, 0, 0] * np.maximum(chi2, 1.0), chi2 * h2


def _robust_scale(resid: np.ndarray, h: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Per window: the larger of the neighbours' typical half-spread and the kernel-weighted
    1.4826 MAD of the residuals (weighted, so the far, barely fitted neighbours do not inflate it)."""
    r = np.abs(resid)
    order = np.argsort(r, axis=1)
    r_sorted = np.take_along_axis(r, order, axis=1)
    w_sorted = np.take_along_axis(kernel, order, axis=1)
    cum = np.cumsum(w_sorted, axis=1)
    half = 0.5 * cum[:, -1:]
    at = np.minimum(np.argmax(cum >= half, axis=1), r.shape[1] - 1)
    mad = 1.4826 * r_sorted[np.arange(r.shape[0]), at][:, None]
    typical = (kernel * h).sum(axis=1, keepdims=True) / np.maximum(kernel.sum(axis=1, keepdims=True), 1e-300)
    return np.maximum(mad, typical)


def scatter(z: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Each quote's scatter scale: its expiry's typical |z| (1.4826 MAD about 0) shrunk toward the
    chain's with the weight of SCATTER_PRIOR quotes, floored at MIN_SCATTER; (n,) per quote.

    Mids usually sit well inside their spreads, by a margin that differs from chain to chain and
    from the front expiries to the back; where quotes scatter more than that (a rough published
    grid, a noisy front week) every quote there is judged against that roughness."""
    ok = np.isfinite(z)
    if not ok.any():
        return np.full(z.shape, MIN_SCATTER)
    chain = 1.4826 * float(np.median(np.abs(z[ok])))
    out = np.full(z.shape, MIN_SCATTER)
    for g in np.unique(group[ok]):
        on = ok & (group == g)
        own = 1.4826 * float(np.median(np.abs(z[on])))
        n = on.sum()
        mixed = np.sqrt((n * own**2 + SCATTER_PRIOR * chain**2) / (n + SCATTER_PRIOR))
        out[group == g] = max(MIN_SCATTER, mixed)
    return out


def _trust_pass(raw: np.ndarray, group: np.ndarray, rows: np.ndarray, idx: np.ndarray, valid: np.ndarray,
                rescore) -> np.ndarray:
    """The second pass of both paths: the quotes the first pass found beyond TRUST_CUT (in scatter
    units) count for nothing as neighbours, since a big outlier can pull a short window enough to
    escape its Tukey weights. Only the windows (idx, valid: per quote) holding such a quote are
    refitted: ``rescore(again, trust)`` gives their new raw scores. A quote without a score (NaN)
    stays a trusted neighbour."""
    trust = (np.abs(np.nan_to_num(raw / scatter(raw, group))) <= TRUST_CUT).astype(float)
    again = rows[((trust[idx[rows]] == 0) & valid[rows]).any(axis=1)]
    if again.size:
        raw[again] = rescore(again, trust)
    return raw


def _raw_scores(k, y, h, rows, windows, trust) -> np.ndarray:
    """Leave-one-out residuals over their uncertainty for the (group, k)-sorted quotes ``rows``."""
    (idx, valid, _), (near_idx, near_valid, _) = windows
    pred, var_unit, misfit2 = _local_fit(k, y, h, rows, idx[rows], valid[rows], trust)
    # the line through the two nearest quotes is a model-uncertainty proxy: it trusts both
    near = _local_fit(k, y, h, rows, near_idx[rows], near_valid[rows], np.ones(k.size), degree=1)[0]
    u2 = h[rows] ** 2 + var_unit + misfit2 + (pred - near) ** 2
    return (y[rows] - pred) / np.sqrt(u2)


def _adjacent_windows(eidx: np.ndarray, x: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> tuple:
    """For the (expiry, k)-sorted quotes: GRID_OWN nearest on the own expiry (the quote left out),
    then GRID_ADJ nearest in x on the previous and on the next expiry. Indices (n, GRID_OWN +
    2 GRID_ADJ), a validity mask (False where the expiry has fewer quotes or no such neighbour)."""
    n = x.size
    own_idx, own_valid, _ = _windows(eidx, n, GRID_OWN)
    idx, valid = [own_idx], [own_valid]
    for step in (-1, 1):
        side_idx = np.zeros((n, GRID_ADJ), int)
        side_valid = np.zeros((n, GRID_ADJ), bool)
        for e in range(starts.size):
            f = e + step
            if not 0 <= f < starts.size:
                continue
            rows = slice(starts[e], starts[e] + sizes[e])
            xs = x[starts[f]:starts[f] + sizes[f]]
            span = min(GRID_ADJ, sizes[f])
            first = np.clip(np.searchsorted(xs, x[rows]) - GRID_ADJ // 2, 0, sizes[f] - span)
            side_idx[rows] = starts[f] + np.minimum(first[:, None] + np.arange(GRID_ADJ), sizes[f] - 1)
            side_valid[rows] = np.arange(GRID_ADJ)[None, :] < span
        idx.append(side_idx)
        valid.append(side_valid)
    return np.concatenate(idx, axis=1), np.concatenate(valid, axis=1)


def _grid_fit(x, t, eidx, y, rows, idx, valid, trust) -> tuple:
    """Leave-one-out prediction of y at the (expiry, k)-sorted quotes ``rows`` from their own and adjacent
    expiries: y = level of each expiry (own, previous, next) + b dx + c dx^2 + d dx dt, so the
    neighbouring expiries lend the smile's shape while the own expiry sets the level. Tricube
    kernel in dx, Tukey re-weighting. Returns the prediction, its variance in units of the
    neighbours' noise variance, and the window's mean square residual (dof-corrected)."""
    dx = x[idx] - x[rows][:, None]
    dt = t[idx] - t[rows][:, None]
    sx = np.max(np.where(valid, np.abs(dx), 0.0), axis=1, keepdims=True)
    st = np.max(np.where(valid, np.abs(dt), 0.0), axis=1, keepdims=True)
    u = dx / np.where(sx > 0, sx, 1.0)
    v = dt / np.where(st > 0, st, 1.0)
    same = eidx[idx] == eidx[rows][:, None]
    kernel = np.where(valid, (1.0 - np.clip(np.abs(u) / KERNEL_REACH, 0, 1) ** 3) ** 3, 0.0)
    kernel = kernel * np.where(same, 1.0, GRID_ADJ_WEIGHT) * trust[idx]
    X = np.stack([same, ~same & (dt < 0), ~same & (dt > 0), u, u * u, u * v], axis=-1).astype(float)
    p = X.shape[-1]
    yn = y[idx]
    robust = np.ones_like(u)
    for _ in range(ROBUST_PASSES + 1):
        wt = kernel * robust
        A = np.einsum("nwi,nwj->nij", wt[:, :, None] * X, X) + 1e-6 * np.eye(p)
        inv = np.linalg.inv(A)
        beta = np.einsum("nij,nj->ni", inv, np.einsum("nwi,nw->ni", X, wt * yn))
        resid = yn - np.einsum("nwi,ni->nw", X, beta)
        scale = _robust_scale(resid, np.full(resid.shape, 1e-6), kernel)
        z = resid / (TUKEY_C * scale)
        robust = np.where(np.abs(z) < 1, (1 - z * z) ** 2, 0.0)
    wt = kernel * robust
    # Var(prediction) / noise variance for weights that are not precisions: e0' A^-1 X'W^2X A^-1 e0
    var = ((wt * np.einsum("nwi,ni->nw", X, inv[:, 0, :])) ** 2).sum(axis=1)
    used = (wt > 0).sum(axis=1)
    ms = (wt * resid**2).sum(axis=1) / np.maximum(wt.sum(axis=1), 1e-300) * used / np.maximum(used - p, 1)
    return beta[:, 0], var, ms


def _grid_scores(T, k, iv, eidx, log_fit: bool) -> np.ndarray:
    """Calendar-direction scores for a chain without any bid/ask (a published vol matrix),
    (expiry, k)-sorted.

    Published matrices are sparse per expiry (8-13 strikes) but share their strikes across
    expiries, so each quote is judged against a leave-one-out fit of its own and its adjacent
    expiries' quotes (``_grid_fit``; in x = k / sqrt(T), t = ln T; log-vol where ``log_fit``). With
    no spreads the quote noise is estimated from the chain: the median of the windows' mean square
    residuals, s^2. Uncertainty u^2 = s^2 (1 + var_fit) + GRID_NEAR (fit - near)^2, near the line through the
    two nearest quotes of the expiry (the model-uncertainty term of the spread path: large at an
    expiry's extrapolated edges and where the smile bends fast). Then the per-expiry scatter scale,
    a trust pass as on the spread path, and division by GRID_SCALE."""
    n = T.size
    starts = np.r_[0, np.flatnonzero(np.diff(eidx)) + 1]
    sizes = np.diff(np.r_[starts, n])
    x, t = k / np.sqrt(T), np.log(T)
    y = np.log(iv) if log_fit else iv
    idx, valid = _adjacent_windows(eidx, x, starts, sizes)
    near_idx, _, _ = _windows(eidx, n, NEAR_WINDOW)
    k1, k2 = k[near_idx[:, 0]], k[near_idx[:, 1]]
    y1, y2 = iv[near_idx[:, 0]], iv[near_idx[:, 1]]
    near = y1 + (y2 - y1) * (k - k1) / np.where(k2 != k1, k2 - k1, 1.0)

    rows = np.arange(n)
    pred, var, ms = _grid_fit(x, t, eidx, y, rows, idx, valid, np.ones(n))
    # the chain's noise variance: one number, from every window's misfit (few quotes per window),
    # never below MIN_HALF_SPREAD^2 (a model-made matrix can be smooth to rounding)
    s2 = max(float(np.median(ms * (iv**2 if log_fit else 1.0))), MIN_HALF_SPREAD**2)

    def score(rows, pred, var):
        fit = np.exp(pred) if log_fit else pred
        return (iv[rows] - fit) / np.sqrt(s2 * (1.0 + var) + GRID_NEAR * (fit - near[rows]) ** 2 + 1e-300)

    def rescore(again, trust):
        pred, var, _ = _grid_fit(x, t, eidx, y, again, idx[again], valid[again], trust)
        return score(again, pred, var)

    raw = _trust_pass(score(rows, pred, var), eidx, rows, idx, valid, rescore)
    return raw / scatter(raw, eidx) / GRID_SCALE


def stale_scores(quotes: ChainQuotes, surface=None) -> tuple:
    """Per-quote stale score and flag for a chain.

    In: ``quotes`` (ChainQuotes); optionally ``surface`` (a ChainSurface) whose quote_iv is subtracted
    before the local fits. Out: ``(score, flag)``, both (n,) in the quotes' order. ``score`` is
    signed, in units of the quote's own uncertainty (positive: quote above its neighbours' fit),
    NaN where the expiry has fewer than MIN_NEIGHBOURS + 1 quotes; ``flag`` = |score| > FLAG_Z.
    """
    if not isinstance(quotes, ChainQuotes):
        raise ValueError(f"stale_scores: quotes must be a ChainQuotes, got {type(quotes).__name__}")
    n = len(quotes)
    score = np.full(n, np.nan)
    if n == 0:
        return score, np.zeros(0, bool)
    y = quotes.iv.copy()
    if surface is not None:
        # a surface with a parametric backbone under a flexible correction (svi_gp: SVI slices plus
        # a GP fitted through the quotes, moved ones included) is judged by the backbone: the
        # correction bends toward a moved quote and hid a fifth of the planted moves on AAPL 2025
        # (caught 78 % -> 89 %); the windows' own step at k = 0 takes the put-call offset
        backbone = getattr(surface, "backbone", None)
        base = np.asarray(backbone.iv(quotes.T, quotes.k) if backbone is not None
                          else surface.quote_iv(quotes.T, quotes.k), dtype=float)
        if base.shape != y.shape or not np.isfinite(base).all():
            raise ValueError("stale_scores: the surface's quote_iv at the quotes is not finite")
        y = y - base
    group = np.round(quotes.T, 9)
    order = np.lexsort((quotes.k, group))
    g, k, ys, h = group[order], quotes.k[order], y[order], half_spread(quotes)[order]
    _, inverse = np.unique(g, return_inverse=True)
    windows = _windows(inverse, n, WINDOW), _windows(inverse, n, NEAR_WINDOW)
    rows = np.flatnonzero(windows[0][2] >= MIN_NEIGHBOURS + 1)   # sparser expiries get no score
    no_spread = not (np.isfinite(quotes.iv_bid) | np.isfinite(quotes.iv_ask)).any() and rows.size > 0
    if no_spread:
        # a published vol matrix: no quote has a spread, so the strike direction below rests on
        # an assumed one (NO_SPREAD_HALF; the chain's own noise estimate in its place flagged 5 %
        # of AH 2010) and is checked against the calendar direction: own and adjacent expiries,
        # on the quotes themselves, noise from the chain
        _, sub_exp = np.unique(inverse[rows], return_inverse=True)
        iv_sorted = quotes.iv[order][rows]
        calendar = _grid_scores(quotes.T[order][rows], k[rows], iv_sorted, sub_exp,
                                log_fit=bool((iv_sorted > 0).all()))
    raw = np.full(n, np.nan)
    raw[rows] = _raw_scores(k, ys, h, rows, windows, np.ones(n))
    raw = _trust_pass(raw, inverse, rows, windows[0][0], windows[0][1],
                      lambda again, trust: _raw_scores(k, ys, h, again, windows, trust))
    z = raw / scatter(raw, inverse)
    if no_spread:
        # both directions must disagree with the quote: the geometric mean of the two sizes, signed
        # as the strike direction's. A rough matrix misleads each direction at different quotes, a
        # moved quote stands out in both
        z[rows] = np.sign(z[rows]) * np.sqrt(np.abs(z[rows] * calendar))
    score[order] = z
    flag = np.abs(np.nan_to_num(score)) > FLAG_Z
    return score, flag
