"""Build an arbitrage-free SliceSurface from values at a chain's nodes.

``build_surface(T, k, iv)`` fits one raw-SVI slice per expiry, longest first. Each slice is held
butterfly-free (g >= 0) and at or below the next longer slice's total variance on a dense k set
that spans the whole chain's quoted domain with a margin. Longest first, because quoted strike
ranges widen with T: the cap a longer slice sets falls mostly on the shorter slice's unquoted
wings, and inside the quoted range it binds only where the quotes themselves carry calendar
arbitrage, so the short end stays at its quotes (a forward pass instead let a short slice's
extrapolated wings push every later slice off its quotes). A slice that still fails the finer
re-check is replaced by the longer slice moved in price towards intrinsic value to the fitted ATM
level (free by construction), recorded in ``params()['kind']``. The fits hold every slice at or
above CHAIN_FLOOR_IV on the dense set: with only w >= W_FLOOR a fit could ride w = 0 in its unquoted wing,
fail the re-check there, and its fallback then capped every shorter slice (two of ten cold SPX
hold-out fits); CHAIN_FLOOR_IV was set once to remove that, not tuned (SPY 2026-08-13 draws unchanged).
"""
from __future__ import annotations

import numpy as np

from core.chain.surface import SliceSurface, SVISlice, mix_to_atm
from core.chain.svi import SliceData, fit_slice, slice_ok

N_PENALTY = 121          # dense k points holding the constraints during the fit
N_RECHECK = 2001         # finer k points of the re-check
DOMAIN_MARGIN = 0.1      # share of the quoted k width added on each side of the constraint set
CAL_FIT_MARGIN = 1e-3    # the fit aims each slice's w this share below the next one ...
CAL_CHECK_MARGIN = 1e-9  # ... and the re-check demands at least this share (strict order)
W_FLOOR = 1e-8           # lowest total variance of any slice
CHAIN_FLOOR_IV = 0.02      # the fits hold every slice at or above this implied vol on the dense set
N_RETRY = 481            # penalty points of the refit a slice gets before it falls back (``_slice``)
LOCAL_MOVES = 3.0        # a slice's own scale: its quoted range widened by this many ATM standard moves ...
N_LOCAL_PENALTY = 61             # ... holds at least this many penalty points (N_LOCAL_CHECK re-check points)
N_LOCAL_CHECK = 401


def dense_k(k_lo: float, k_hi: float, n: int) -> np.ndarray:
    margin = DOMAIN_MARGIN * max(k_hi - k_lo, 0.05)
    return np.linspace(k_lo - margin, k_hi + margin, n)


def with_local(k_set: np.ndarray, k_lo: float, k_hi: float, w_atm: float, n: int) -> np.ndarray:
    """k_set (sorted, chain-wide) plus, where it is too sparse, n points across the slice's own
    scale: its quoted range [k_lo, k_hi] widened by LOCAL_MOVES ATM standard moves sqrt(w_atm).
    A chain-wide set spaced for a 5-year smile (0.017 apart over |k| <= 1) has one or two points
    inside a 1-day smile (an ATM move of 0.006), so a fit could bend g below 0 between them."""
    move = LOCAL_MOVES * np.sqrt(max(w_atm, 1e-12))
    lo, hi = max(k_lo - move, float(k_set[0])), min(k_hi + move, float(k_set[-1]))
    if not hi > lo or np.count_nonzero((k_set >= lo) & (k_set <= hi)) >= n:
        return k_set
    return np.union1d(k_set, np.linspace(lo, hi, n))


def _cap(longer, k, margin: float):
    return None if longer is None else longer.w(k) * (1.0 - margin)


def _slice(d: SliceData, longer, start, k_check, warm: bool = False, n_retry: int = 0):
    """One expiry's slice below ``longer`` (None for the longest): SVI, or the fallback. With
    n_retry > 0 a slice failing the re-check is refitted once on n_retry penalty points first."""
    floor = max(W_FLOOR, CHAIN_FLOOR_IV**2 * d.T)
    p = fit_slice(d, np.full(d.k_dense.shape, floor), _cap(longer, d.k_dense, CAL_FIT_MARGIN), start, warm)
    if slice_ok(p, k_check, W_FLOOR, _cap(longer, k_check, CAL_CHECK_MARGIN)):
        return SVISlice(tuple(map(float, p))), p
    if n_retry:
        # a narrow short-expiry smile can dip below g = 0 between the penalty points: hold it on
        # a denser set (measured on SPY's 7-day expiry: g = -2e-4 just beyond the quotes)
        k_retry = with_local(np.linspace(k_check[0], k_check[-1], n_retry), float(d.k[0]), float(d.k[-1]),
                             _w_atm(d), N_LOCAL_PENALTY)
        d = SliceData(T=d.T, k=d.k, iv=d.iv, weight=d.weight, k_dense=k_retry)
        p = fit_slice(d, np.full(k_retry.shape, floor), _cap(longer, d.k_dense, CAL_FIT_MARGIN), p)
        if slice_ok(p, k_check, W_FLOOR, _cap(longer, k_check, CAL_CHECK_MARGIN)):
            return SVISlice(tuple(map(float, p))), p
    if longer is None:
        return SVISlice((float(np.mean(d.iv**2) * d.T), 0.0, 0.0, 0.0, 0.1)), None   # flat: free
    w_atm = float(SVISlice(tuple(p)).w(np.array([0.0]))[0])
    w_cap = float(longer.w(np.array([0.0]))[0]) * (1.0 - 1e-4)
    return mix_to_atm(longer, min(max(w_atm, W_FLOOR), w_cap)), None


def _w_atm(d: SliceData) -> float:
    """The slice's ATM total variance, from its quotes (nearest the money; the lowest w if none
    is within 0.05 of it)."""
    w = d.iv**2 * d.T
    near = np.abs(d.k) <= 0.05
    return float(np.interp(0.0, d.k, w) if near.any() and d.k.size > 1 else w.min())


def _warm_start(warm, T_i: float):
    """The raw-SVI params of ``warm``'s slice at expiry T_i, or None."""
    if warm is None:
        return None
    hit = np.flatnonzero(np.abs(warm.expiries - T_i) < 1e-9)
    if hit.size == 0 or not isinstance(warm.slices[hit[0]], SVISlice):
        return None
    return np.asarray(warm.slices[hit[0]].p)


def build_surface(T, k, iv, weight=None, method: str = "", sd_fn=None, k_bounds=None,
                  warm: SliceSurface | None = None, n_retry: int = N_RETRY) -> SliceSurface:
    """An arbitrage-free surface through values iv (decimal vol) at nodes (T years, k = ln K/F).

    weight: optional per-node weight of the misfit (default 1). k_bounds: optional (m, 2) quoted k
    range per expiry (default: the nodes' own range). warm: a surface fitted to similar data (e.g.
    the whole chain, when refitting with quotes held out); its slices are the starting points and
    each is only briefly polished, which is many times faster. n_retry: see ``_slice`` (0 falls
    back at once: a narrow 7-day smile that dips below g = 0 between the penalty points then
    becomes a mix slice 3 vol points off its quotes, as on SPY 2026-08-21 for a grid method's
    output). Needs at least one finite node.
    """
    T = np.asarray(T, np.float64).ravel()
    k = np.asarray(k, np.float64).ravel()
    iv = np.asarray(iv, np.float64).ravel()
    weight = np.ones_like(T) if weight is None else np.asarray(weight, np.float64).ravel()
    ok = np.isfinite(T) & np.isfinite(k) & np.isfinite(iv) & (iv > 0) & (T > 0) & np.isfinite(weight)
    if not ok.any():
        raise ValueError("build_surface: no finite node (T > 0, iv > 0)")
    T, k, iv, weight = T[ok], k[ok], iv[ok], weight[ok]
    key = np.round(T, 9)
    expiries = np.unique(key)
    k_dense = dense_k(float(k.min()), float(k.max()), N_PENALTY)
    k_check = dense_k(float(k.min()), float(k.max()), N_RECHECK)
    slices, bounds, longer, start = [], [], None, None
    for T_i in expiries[::-1]:
        sel = key == T_i
        order = np.argsort(k[sel])
        d = SliceData(T=float(T_i), k=k[sel][order], iv=iv[sel][order], weight=weight[sel][order], k_dense=k_dense)
        w_atm = _w_atm(d)
        d = SliceData(T=d.T, k=d.k, iv=d.iv, weight=d.weight,
                      k_dense=with_local(k_dense, float(d.k[0]), float(d.k[-1]), w_atm, N_LOCAL_PENALTY))
        k_slice = with_local(k_check, float(d.k[0]), float(d.k[-1]), w_atm, N_LOCAL_CHECK)
        w0 = _warm_start(warm, float(T_i))
        longer, p = _slice(d, longer, start if w0 is None else w0, k_slice, warm=w0 is not None, n_retry=n_retry)
        start = p if p is not None else start
        slices.append(longer)
        bounds.append((float(d.k.min()), float(d.k.max())))
    kb = np.asarray(bounds[::-1]) if k_bounds is None else np.asarray(k_bounds, np.float64)
    return SliceSurface(expiries=expiries, k_bounds=kb, slices=slices[::-1], method=method, sd_fn=sd_fn)
