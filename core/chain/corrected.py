"""Slices corrected by a smooth residual, kept butterfly- and calendar-free by a dense re-check.

``CorrectedSlice``: a butterfly-free base slice (SVI) plus ``factor`` times a smooth residual in
implied vol (a GP mean, core.chain.gp_residual). ``correct_surface`` swaps a backbone surface's
slices for corrected ones, longest first. Each corrected slice is held to the re-check the SVI
slices pass (core.chain.svi.slice_ok) on the backbone's dense k set: Durrleman's g >= 0, call
prices falling with the strike, w at or above the floor, strictly below the next longer slice
(the cap) and above the next shorter *base* slice (the floor from below).

Why the floor from below: the backbone is ordered, so with every corrected slice held above the
next shorter base slice, the bare base is always a valid fallback under any corrected longer
slice. A correction that crosses its neighbour is then shrunk on that slice alone; no pass ever
has to restart with every longer slice bare (the old rule cascaded on chains with expiries days
apart and left nearly every slice bare).

Why a continuous share: each candidate residual (the GP mean, then smoother ones) gets the
largest share in [0, 1] that passes, by bisection, instead of the old all-or-nothing ladder
1, 0.5, 0.25, 0. Among the candidates, the one whose applied correction best fits the slice's own
quote residuals (noise-weighted) wins. Shares found at the edge of the check are held to small
margins (G_SAFE, DEC_SAFE, CAP_SAFE) so that the surface also passes the dense check on points
between the re-check's.

The result is a SliceSurface, so prices between and beyond the expiries follow the chain
surface's rules and the dense check holds as for every chain method.

``best_correction`` is that choice for one slice; core.chain.asked uses it as well, to correct an
asked expiry's base slice towards its neighbours' mixed smile against both neighbours.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from core.chain.build import CAL_CHECK_MARGIN, N_LOCAL_CHECK, N_RECHECK, W_FLOOR, dense_k, with_local
from core.chain.prices import log_otm_price
from core.chain.svi import decreasing_margin, durrleman_g
from core.chain.surface import SliceSurface

N_BISECT = 6          # bisection steps on a candidate's share: resolution 1/64
G_SAFE = 1e-3         # g a corrected slice must keep (or BASE_KEEP of the base's own g, where lower) ...
DEC_SAFE = 1e-3       # ... the same for the call-decreasing margin ...
CAP_SAFE = 1e-4       # ... and the relative gap to its neighbours: a share at the check's edge
                      # must not fail between the re-check's points (dense-check points differ)
BASE_KEEP = 0.5       # where the base itself is within G_SAFE / DEC_SAFE of the edge: the share of its
                      # own margin a correction must keep (_keep)
KNOT_Z = 0.5          # local shares: knots this many ATM standard moves apart, Gaussian weights as wide
LOCAL_CUT = 0.5       # each round, the knots near a failing point keep this share of their value ...
N_LOCAL = 10          # ... for at most this many rounds (0.5^10: all but gone)
_H_K = 1e-3           # finite-difference step in k for w' and w'' (w is smooth)
_R_TINY = 1e-7        # vol: a residual below this is zero for placing knots
_ROUND = 1e-12        # rounding allowed against the base's own values in the re-check


@dataclass(frozen=True)
class CorrectedSlice:
    """base.w(k) moved by factor * residual_iv(k) in vol: w = (sqrt(base.w / T) + f r)^2 T."""

    base: object
    T: float
    residual_iv: object            # callable k -> vol residual
    factor: float = 1.0
    share: object = None           # optional LocalShare: the factor varies with k (times this)
    label: str = "gp"              # what the residual is, in the slice's row (core.chain.asked: "asked")

    def applied(self, k) -> np.ndarray:
        """The correction applied at k (vol), with the base's own where the base is itself a
        corrected slice (a wing continuation on top of a GP correction)."""
        k = np.asarray(k, np.float64)
        inner = self.base.applied(k) if isinstance(self.base, CorrectedSlice) else 0.0
        return inner + self.own(k)

    def own(self, k) -> np.ndarray:
        """This layer's correction at k (vol), without the base's."""
        k = np.asarray(k, np.float64)
        if self.factor == 0.0:
            return np.zeros(k.shape)
        f = self.factor if self.share is None else self.factor * self.share(k)
        return f * self.residual_iv(k)

    def w(self, k) -> np.ndarray:
        k = np.asarray(k, np.float64)
        w0 = self.base.w(k)
        if self.factor == 0.0:
            return w0
        iv = np.sqrt(np.maximum(w0, 0.0) / self.T) + self.own(k)
        return np.maximum(iv, 0.0) ** 2 * self.T

    def log_otm(self, k) -> np.ndarray:
        return log_otm_price(k, self.w(k))

    def row(self) -> dict:
        row = self.base.row()
        # with a local share, the factor alone overstates what is applied: report the knots' mean
        share = self.factor if self.share is None else self.factor * float(np.mean(self.share.s))
        if isinstance(self.base, CorrectedSlice):
            return {**row, "kind": f"{row['kind']}+wing" if self.factor else row["kind"], "wing_factor": share}
        return {**row, "kind": f"{row['kind']}+{self.label}" if self.factor else row["kind"], f"{self.label}_factor": share}


@dataclass(frozen=True)
class LocalShare:
    """A smooth share of the correction in [0, 1] along k: Gaussian-weighted average of values s
    at knots (a partition of unity, so its slope and curvature stay of order s / width)."""

    knots: np.ndarray
    s: np.ndarray
    width: float

    def weights(self, k) -> np.ndarray:
        # in place, the same operations in the same order as
        # phi = exp(-0.5 * d * d) + 1e-300, phi / phi.sum(-1): the same numbers, fewer temporaries
        d = np.subtract(np.asarray(k, np.float64)[..., None], self.knots)
        d /= self.width
        phi = np.multiply(-0.5, d)
        phi *= d
        np.exp(phi, out=phi)
        phi += 1e-300
        phi /= phi.sum(-1, keepdims=True)
        return phi

    def __call__(self, k) -> np.ndarray:
        return self.weights(k) @ self.s


def _g_and_dec(k, w, wp, wm):
    w1 = (wp - wm) / (2 * _H_K)
    w2 = (wp - 2 * w + wm) / _H_K**2
    with np.errstate(all="ignore"):
        return durrleman_g(k, w, w1, w2), decreasing_margin(k, w, w1)


def _keep(base: np.ndarray, safe: float) -> np.ndarray:
    """The least margin (g or call-decreasing) a corrected slice must keep, given the base's own:
    ``safe`` where the base has it; where the base is closer to the edge, BASE_KEEP of the base's
    own margin (less the finite differences' rounding), so that a small enough correction passes
    there too (held to the base's whole margin, a residual of 1e-9 vol failed the whole slice
    where an SVI wing sat at g = 1e-3, measured on SPY)."""
    return np.where(base >= safe, safe, np.minimum(base, BASE_KEEP * base)) - _ROUND


def smile_ok(slice_, k_check: np.ndarray, w_floor: float, w_cap: np.ndarray | None) -> bool:
    """The SVI re-check for any smooth slice: g >= 0, calls falling in strike, floor and cap."""
    w = slice_.w(k_check)
    wp, wm = slice_.w(k_check + _H_K), slice_.w(k_check - _H_K)
    if not (np.isfinite(w).all() and np.isfinite(wp).all() and np.isfinite(wm).all()):
        return False
    if (w < w_floor).any() or (w_cap is not None and (w > w_cap).any()):
        return False
    g, dec = _g_and_dec(k_check, w, wp, wm)
    return bool((g >= 0.0).all() and (dec >= 0.0).all())


class _SliceCheck:
    """The re-check of one slice's corrected candidates at any share, on precomputed arrays: the
    base's vol and the candidate residuals at k_check and k_check +- _H_K are evaluated once, and
    only the points where a candidate is non-zero are checked (elsewhere it is the base, which
    passed). lo / hi: the floor and cap from the neighbours, or None."""

    def __init__(self, base, T: float, k: np.ndarray, lo, hi):
        self.T, self.k = T, k
        ws = [base.w(x) for x in (k, k + _H_K, k - _H_K)]
        self.vol = [np.sqrt(np.maximum(w, 0.0) / T) for w in ws]
        g, dec = _g_and_dec(k, *ws)
        # where the base itself is closer to the edge than the safety margin, hold it to a share of
        # its own value (less the finite differences' rounding): a small correction passes
        self.g_min = _keep(np.nan_to_num(g, nan=0.0), G_SAFE)
        self.dec_min = _keep(np.nan_to_num(dec, nan=0.0), DEC_SAFE)
        # the same for the neighbours: the base passed them with the backbone's own margin
        self.hi = None if hi is None else np.maximum(hi, ws[0] * (1.0 + _ROUND))
        self.lo = None if lo is None else np.minimum(lo, ws[0] * (1.0 - _ROUND))

    def failing(self, res: list, f3, idx: np.ndarray) -> np.ndarray:
        """Which of the points idx of k_check fail with shares f3 (at k, k + h, k - h on idx)."""
        w, wp, wm = (np.maximum(v[idx] + f * r[idx], 0.0) ** 2 * self.T for v, r, f in zip(self.vol, res, f3))
        g, dec = _g_and_dec(self.k[idx], w, wp, wm)
        bad = ~(np.isfinite(w) & np.isfinite(wp) & np.isfinite(wm)) | (w < W_FLOOR)
        bad |= ~(g >= self.g_min[idx]) | ~(dec >= self.dec_min[idx])
        if self.hi is not None:
            bad |= w > self.hi[idx]
        if self.lo is not None:
            bad |= w < self.lo[idx]
        return bad

    @staticmethod
    def live(res: list) -> np.ndarray:
        return np.flatnonzero((res[0] != 0.0) | (res[1] != 0.0) | (res[2] != 0.0))

    def best_share(self, res: list) -> float:
        """The largest share in [0, 1] that passes (bisection; 0 when none does)."""
        idx = self.live(res)
        ok = lambda f: not self.failing(res, (f, f, f), idx).any()   # noqa: E731
        if ok(1.0):
            return 1.0
        a, b = 0.0, 1.0
        for _ in range(N_BISECT):
            mid = 0.5 * (a + b)
            a, b = (mid, b) if ok(mid) else (a, mid)
        return a

    def local_share(self, res: list, width: float):
        """A LocalShare that passes, cut only near the failing points (None when none is found):
        knots every ``width`` over where the residual is not negligible, all at 1; each round the
        knots within 1.5 widths of a failing point are multiplied by LOCAL_CUT."""
        idx = self.live(res)
        big = np.abs(res[0]) > _R_TINY
        if not big.any():
            return None
        a, b = self.k[big].min() - width, self.k[big].max() + width
        knots = np.linspace(a, b, int(np.ceil((b - a) / width)) + 1)
        share = LocalShare(knots, np.ones(knots.size), width)
        W = [share.weights(x[idx]) for x in (self.k, self.k + _H_K, self.k - _H_K)]
        s = share.s.copy()
        for _ in range(N_LOCAL + 1):
            bad = self.failing(res, [Wx @ s for Wx in W], idx)
            if not bad.any():
                return LocalShare(knots, s, width)
            near = (np.abs(knots[:, None] - self.k[idx][bad][None, :]) <= 1.5 * width).any(1)
            s[near] *= LOCAL_CUT
        return None


def _misfit(sl: CorrectedSlice, target) -> float:
    """Noise-weighted squared misfit of the applied correction to the slice's quote residuals
    (target = (k, r, noise)); without a target, prefer the larger share, then the earlier one."""
    if target is None:
        return -sl.factor
    k, r, noise = target
    return float(np.sum(((sl.applied(k) - r) / noise) ** 2))


def _with_wing(chosen, wing, T: float, k_slice: np.ndarray, lo, hi, width: float):
    """``chosen`` continued beyond its quotes by wing(its iv function), on top of it: whole where
    that passes the re-check, else with a local share cut near the failing points, else with the
    largest constant share that passes, else not at all. The continuation is nil inside the quoted
    range, so the chosen slice's fit to its quotes is untouched (as a candidate among the GP means
    it lost to them on quote misfit wherever its cut leaked inside the range)."""
    residual = wing(lambda k: np.sqrt(np.maximum(chosen.w(k), 0.0) / T))
    if residual is None:
        return chosen
    res = [residual(x) for x in (k_slice, k_slice + _H_K, k_slice - _H_K)]
    if not any(np.any(r != 0.0) for r in res):
        return chosen
    check = _SliceCheck(chosen, T, k_slice, lo, hi)
    f = check.best_share(res)
    if f == 1.0:
        return CorrectedSlice(chosen, T, residual, 1.0)
    share = check.local_share(res, width)
    if share is not None:
        return CorrectedSlice(chosen, T, residual, 1.0, share)
    return CorrectedSlice(chosen, T, residual, f) if f > 0.0 else chosen


def best_correction(base, T: float, k_slice: np.ndarray, lo, hi, candidates: list, target, width: float,
                    label: str = "gp"):
    """``base`` corrected by the candidate residual (callables k -> vol, in order) and share that
    fit ``target`` best (``_misfit``) among those passing the re-check on k_slice between lo and hi
    (w arrays there, or None): each candidate's largest passing constant share, and a local share
    where that is below 1; the bare base where none improves on it. A candidate that passes whole
    ends the search: the later (smoother) ones are only for a slice that fails. label: the
    corrected slice's (CorrectedSlice.label)."""
    check = _SliceCheck(base, T, k_slice, lo, hi)
    best = CorrectedSlice(base, T, None, 0.0, label=label)
    best_score = _misfit(best, target)
    for cand in candidates:
        res = [cand(x) for x in (k_slice, k_slice + _H_K, k_slice - _H_K)]
        f = check.best_share(res)
        tries = [CorrectedSlice(base, T, cand, f, label=label)] if f > 0.0 else []
        if f < 1.0:
            share = check.local_share(res, width)
            tries += [] if share is None else [CorrectedSlice(base, T, cand, 1.0, share, label=label)]
        for sl in tries:
            score = _misfit(sl, target)
            if score < best_score:
                best, best_score = sl, score
        if f == 1.0:
            break
    return best


def correct_surface(backbone: SliceSurface, residuals: list, method: str = "", sd_fn=None,
                    theta_interp: str = "linear", targets: list | None = None, wings: list | None = None) -> SliceSurface:
    """backbone's slices each corrected by the best passing share of one of residuals[i] (a list
    of callables k -> vol, or None); targets[i]: optional (k, r, noise) quote residuals of slice i
    that pick among the candidates; wings[i]: optional callable (the corrected slice's iv function
    -> a residual callable, nil inside the quoted range) continuing the chosen slice beyond its
    quotes, on top of it, with its own share (``_with_wing``). See the module doc. Returns a new
    SliceSurface on the same expiries and quoted ranges."""
    lo_k, hi_k = backbone.k_domain
    k_check = dense_k(lo_k, hi_k, N_RECHECK)
    m = backbone.expiries.size
    out = [None] * m
    for i in range(m - 1, -1, -1):
        base, T = backbone.slices[i], float(backbone.expiries[i])
        # the chain-wide set, plus the slice's own scale where it is too sparse (build.with_local)
        k_slice = with_local(k_check, float(backbone.k_bounds[i, 0]), float(backbone.k_bounds[i, 1]),
                             float(backbone.theta[i]), N_LOCAL_CHECK)
        longer = None if i == m - 1 else out[i + 1].w(k_slice)
        if longer is not None and not (base.w(k_slice) <= longer * (1.0 - CAL_CHECK_MARGIN)).all():
            # only if the backbone itself is unordered (it is by construction): keep it bare
            return SliceSurface(expiries=backbone.expiries, k_bounds=backbone.k_bounds, slices=list(backbone.slices),
                                method=method, sd_fn=sd_fn, theta_interp=theta_interp)
        out[i] = CorrectedSlice(base, T, None, 0.0)
        if not residuals[i]:
            continue
        hi = None if longer is None else longer * (1.0 - CAP_SAFE)
        lo = None if i == 0 else backbone.slices[i - 1].w(k_slice) * (1.0 + CAP_SAFE)
        target = None if targets is None else targets[i]
        width = KNOT_Z * np.sqrt(max(float(backbone.theta[i]), 1e-8))
        best = best_correction(base, T, k_slice, lo, hi, residuals[i], target, width)
        out[i] = best
        if wings is not None and wings[i] is not None:
            out[i] = _with_wing(best, wings[i], T, k_slice, lo, hi, width)
    return SliceSurface(expiries=backbone.expiries, k_bounds=backbone.k_bounds, slices=out, method=method,
                        sd_fn=sd_fn, theta_interp=theta_interp)
