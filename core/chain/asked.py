"""Slices at asked expiries: a T asked for (a held-out expiry, query rows) strictly between two
quoted expiries gets a smile of its own, inserted into a fitted surface without refitting it.

The smile is the two neighbouring slices mixed at fixed normalised moneyness z = k / sqrt(theta)
(``mixed_smile``), theta(T) from the surface's ATM term structure. Smiles scale with sqrt(theta),
so fixed z compares like with like, where the surface's own price mix at fixed k mixes one
slice's wing with the other's centre (on the validation split's held-out expiries, RMSE 0.00167
against 0.00515 on SPY 2026-08-13).

``insert_asked`` puts it in as a base slice between the two neighbours corrected towards the
smile (core.chain.corrected.best_correction, re-checked against both neighbours as they are), so
the quoted expiries' slices, and with them every quote's fit, stay exactly what they were. The
base is a raw SVI through the smile's nodes held between the neighbours, or, where no SVI fit
passes, the neighbours' price mix at the smile's ATM level (ordered by construction).
"""
from __future__ import annotations

import copy
from functools import partial

import numpy as np

from core.chain.build import (CAL_CHECK_MARGIN, CAL_FIT_MARGIN, CHAIN_FLOOR_IV, N_LOCAL_CHECK, N_LOCAL_PENALTY, N_PENALTY,
                              N_RECHECK, W_FLOOR, dense_k, with_local)
from core.chain.corrected import CAP_SAFE, KNOT_Z, best_correction
from core.chain.prices import mix_log, w_from_log_otm
from core.chain.surface import SVISlice, atm_price, shorter_share
from core.chain.svi import PARAMS, SliceData, fit_slice, slice_ok

N_NODES = 41        # nodes of an asked smile across the z range both neighbours quote
MAX_ASKED = 48      # asked expiries that get a slice of their own; more get evenly spaced ones and
                    # are read between them (5,000 query rows at distinct T took 112 s and wrote a
                    # 230 MB grid, one inserted slice each)
FADE_MOVES = 1.0    # beyond the nodes, the correction fades over this many ATM standard moves


def mixed_smile(slices, th: np.ndarray, i: int, a: float, T: float, theta: float, k) -> np.ndarray:
    """iv at k of a smile at T between expiries i and i + 1 (ATM total variances th): at fixed
    normalised moneyness z = k / sqrt(theta), w / theta mixed from the two slices with weight a
    toward i + 1."""
    z = np.asarray(k, np.float64) / np.sqrt(theta)
    shape = (1 - a) * slices[i].w(z * np.sqrt(th[i])) / th[i] + a * slices[i + 1].w(z * np.sqrt(th[i + 1])) / th[i + 1]
    return np.sqrt(np.maximum(theta * shape, 1e-12) / T)


def asked_expiry_smiles(surface, ask) -> list:
    """For each asked T (ask: (T, k) arrays) strictly between two of ``surface``'s expiries (at
    most MAX_ASKED, evenly spaced among them), (T, k nodes, smile, theta): smile(k) the mixed
    smile with ATM total variance theta = theta(T) from the surface's term structure (weight a by
    theta), the nodes spanning the z range both neighbours quote. Empty when no asked T needs a
    slice."""
    E, th = surface.expiries, surface.theta
    T_ask = np.unique(np.round(np.asarray(ask[0], np.float64).ravel(), 9))
    new = [T for T in T_ask if E[0] < T < E[-1] and np.abs(E - T).min() > 1e-9]
    if not new:
        return []
    if len(new) > MAX_ASKED:
        new = [new[i] for i in np.unique(np.round(np.linspace(0, len(new) - 1, MAX_ASKED)).astype(int))]
    out = []
    for T in new:
        i = int(np.searchsorted(E, T) - 1)
        theta = float(np.clip(surface.w(T, 0.0), th[i], th[i + 1]))
        a = (theta - th[i]) / (th[i + 1] - th[i]) if th[i + 1] > th[i] else (T - E[i]) / (E[i + 1] - E[i])
        z_lo = max(surface.k_bounds[i, 0] / np.sqrt(th[i]), surface.k_bounds[i + 1, 0] / np.sqrt(th[i + 1]))
        z_hi = min(surface.k_bounds[i, 1] / np.sqrt(th[i]), surface.k_bounds[i + 1, 1] / np.sqrt(th[i + 1]))
        if not z_hi > z_lo:
            continue
        smile = partial(mixed_smile, surface.slices, th, i, a, float(T), theta)
        out.append((float(T), np.linspace(z_lo, z_hi, N_NODES) * np.sqrt(theta), smile, theta))
    return out


class BetweenSlice:
    """The price mix of two ordered slices at fixed k, ``weight`` on the shorter: between them in
    price at every k and butterfly-free (a convex combination of convex, decreasing call curves)."""

    def __init__(self, shorter, longer, weight: float):
        self.shorter, self.longer, self.weight = shorter, longer, float(weight)   # weight: the shorter's

    def log_otm(self, k) -> np.ndarray:
        return mix_log(self.shorter.log_otm(k), self.longer.log_otm(k), self.weight)

    def w(self, k) -> np.ndarray:
        k = np.asarray(k, np.float64)
        return w_from_log_otm(k, self.log_otm(k))

    def row(self) -> dict:
        # beta as for the other mix slices: the share moved, here from the shorter towards the longer
        return {"kind": "mix-between", **{name: np.nan for name in PARAMS}, "beta": 1.0 - self.weight}


def _smile_residual(smile, base, T: float, k, fade=None) -> np.ndarray:
    """smile(k) less the base slice's iv at k (vol): an asked slice's correction; fade: optional
    (k_lo, k_hi, width): whole over [k_lo, k_hi] and fading beyond it over ``width`` (a Gaussian
    in the distance), so that the base through the nodes takes over there."""
    k = np.asarray(k, np.float64)
    res = smile(k) - np.sqrt(np.maximum(base.w(k), 0.0) / T)
    if fade is None:
        return res
    k_lo, k_hi, width = fade
    out = np.maximum(k_lo - k, 0.0) + np.maximum(k - k_hi, 0.0)
    return np.exp(-0.5 * (out / width) ** 2) * res


def _base(T: float, k_a: np.ndarray, iv_a: np.ndarray, theta: float, shorter, longer, k_pen, k_slice):
    """An asked slice's base between its neighbours: a raw SVI through the nodes held between
    them (fit margin CAL_FIT_MARGIN, check margin CAL_CHECK_MARGIN, as build_surface holds its
    slices), else their price mix at ATM total variance theta."""
    floor_pen = np.maximum(max(W_FLOOR, CHAIN_FLOOR_IV**2 * T), shorter.w(k_pen) * (1.0 + CAL_FIT_MARGIN))
    d = SliceData(T=T, k=k_a, iv=iv_a, weight=np.ones(k_a.size), k_dense=k_pen)
    p = fit_slice(d, floor_pen, longer.w(k_pen) * (1.0 - CAL_FIT_MARGIN))
    floor = np.maximum(W_FLOOR, shorter.w(k_slice) * (1.0 + CAL_CHECK_MARGIN))
    if slice_ok(p, k_slice, floor, longer.w(k_slice) * (1.0 - CAL_CHECK_MARGIN)):
        return SVISlice(tuple(map(float, p)))
    price_lo, price_hi = (float(np.exp(s.log_otm(np.array([0.0]))[0])) for s in (shorter, longer))
    price_atm = float(atm_price(theta))
    weight = shorter_share(price_lo, price_hi, price_atm) if price_hi > price_lo else 0.5
    return BetweenSlice(shorter, longer, float(np.clip(weight, 1e-6, 1.0 - 1e-6)))


def insert_asked(surface, asked: list):
    """A copy of ``surface`` with a slice at each asked expiry (``asked_expiry_smiles``): see the
    module doc. Every other attribute (intervals, offsets, the backbone) is the surface's own."""
    E, slices, bounds = list(surface.expiries), list(surface.slices), [tuple(b) for b in surface.k_bounds]
    lo_k, hi_k = surface.k_domain
    k_pen, k_check = dense_k(lo_k, hi_k, N_PENALTY), dense_k(lo_k, hi_k, N_RECHECK)
    for T, k_a, smile, theta in sorted(asked, key=lambda x: x[0]):
        iv_a = smile(k_a)
        if not np.isfinite(iv_a).all():
            continue              # no slice from a smile that is not finite: the price mix stays there
        i = int(np.searchsorted(E, T)) - 1
        shorter, longer = slices[i], slices[i + 1]
        k_a_pen = with_local(k_pen, float(k_a[0]), float(k_a[-1]), theta, N_LOCAL_PENALTY)
        k_slice = with_local(k_check, float(k_a[0]), float(k_a[-1]), theta, N_LOCAL_CHECK)
        base = _base(T, k_a, iv_a, theta, shorter, longer, k_a_pen, k_slice)
        # the smile everywhere, or where that fails the re-check (the mix of a short smile's wing
        # can cross a neighbour far out), the smile over the nodes' range only
        res = partial(_smile_residual, smile, base, T)
        faded = partial(_smile_residual, smile, base, T, fade=(float(k_a[0]), float(k_a[-1]), FADE_MOVES * np.sqrt(theta)))
        lo, hi = shorter.w(k_slice) * (1.0 + CAP_SAFE), longer.w(k_slice) * (1.0 - CAP_SAFE)
        chosen = best_correction(base, T, k_slice, lo, hi, [res, faded], (k_a, res(k_a), np.ones(k_a.size)),
                                 KNOT_Z * np.sqrt(max(theta, 1e-8)), label="asked")
        E.insert(i + 1, T)
        slices.insert(i + 1, chosen)
        bounds.insert(i + 1, (float(k_a[0]), float(k_a[-1])))
    out = copy.copy(surface)
    out.expiries, out.k_bounds, out.slices = np.asarray(E), np.asarray(bounds), slices
    out.__post_init__()
    return out
