"""An arbitrage-free ChainSurface from per-expiry slices.

Slices are butterfly-free smiles at the fitted expiries, ordered in price (each one's OTM price is
at least the previous one's at every k of the domain). Between two expiries the forward-normalised
call prices at fixed k are a convex combination of the two slices' (Gatheral & Jacquier 2014,
sec. 5), with the weight set so that ATM total variance theta is linear in T: a convex combination
of convex, decreasing call curves is convex and decreasing (no butterfly), and a weight moving
monotonically towards the later, higher slice never lowers a price (no calendar). (Weights linear
in T instead would make the ATM vol sag between expiries: the ATM price is concave in theta.)

Outside the fitted expiries:
- before the first, w(T, k) = w_1(k) T / T_1 (the same smile in vol; scaling a butterfly-free w
  down keeps g >= 0, because g is concave in the scale and non-negative at 0 and 1);
- after the last, the call curve moves towards its infinite-variance limit C = 1 in price,
  C(T) = (1 - beta) C_m + beta, with beta set so that ATM total variance grows like theta_m T / T_m
  (a convex combination again, so both conditions hold).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from core.chain.prices import (call_from_log_otm, log_otm_price, mix_log, otm_upper_log, w_from_log_otm)
from core.chain.svi import PARAMS, svi_w
from core.engine.domain import check_domain, outside_quoted

_T_EPS = 1e-9            # years: a T this close to an expiry is at the expiry


def atm_price(w) -> np.ndarray:
    """Forward-normalised ATM call price at total variance w: 2 N(sqrt(w) / 2) - 1."""
    return 2.0 * ndtr(0.5 * np.sqrt(np.maximum(w, 0.0))) - 1.0


def shorter_share(p_lo, p_hi, p):
    """The shorter slice's weight in a price mix of two slices (ATM prices p_lo < p_hi) whose ATM
    price is p: the mix then has exactly the wanted ATM level (the caller guards p_hi > p_lo)."""
    return (p_hi - p) / (p_hi - p_lo)


@dataclass(frozen=True)
class SVISlice:
    """A raw-SVI smile (a, b, rho, m, sigma) in total variance."""

    p: tuple

    def w(self, k) -> np.ndarray:
        return np.maximum(svi_w(self.p, k), 0.0)

    def log_otm(self, k) -> np.ndarray:
        return log_otm_price(k, self.w(k))

    def row(self) -> dict:
        return {"kind": "svi", **dict(zip(PARAMS, map(float, self.p))), "beta": np.nan}


@dataclass(frozen=True)
class MixSlice:
    """A fallback smile: ``base``'s call curve moved a share ``beta`` in price towards its
    intrinsic value (``towards="intrinsic"``, a smile below base) or towards C = 1
    (``towards="infinite"``, above base). Butterfly-free by construction (a convex combination of
    convex, decreasing call curves); used where no SVI fit passes the re-check."""

    base: object
    beta: float
    towards: str = "intrinsic"

    def log_otm(self, k) -> np.ndarray:
        lp = self.base.log_otm(k)
        if self.towards == "intrinsic":        # the intrinsic curve has OTM price 0
            with np.errstate(divide="ignore"):
                return lp + np.log1p(-self.beta)
        return mix_log(otm_upper_log(k), lp, self.beta)

    def w(self, k) -> np.ndarray:
        return w_from_log_otm(k, self.log_otm(k))

    def row(self) -> dict:
        return {"kind": f"mix-{self.towards}", **{name: np.nan for name in PARAMS}, "beta": float(self.beta)}


def mix_to_atm(base, w_atm_target: float) -> MixSlice:
    """A MixSlice from ``base`` whose ATM total variance is ``w_atm_target``: below base's
    ATM level it moves towards intrinsic, above it towards C = 1."""
    p_base = float(np.exp(base.log_otm(np.array([0.0]))[0]))
    p_target = float(atm_price(w_atm_target))
    if p_target <= p_base:
        return MixSlice(base, float(np.clip(1.0 - p_target / p_base, 0.0, 1.0 - 1e-12)), "intrinsic")
    beta = np.clip((p_target - p_base) / max(1.0 - p_base, 1e-300), 0.0, 1.0 - 1e-12)
    return MixSlice(base, float(beta), "infinite")


@dataclass
class SliceSurface:
    """ChainSurface over price-ordered, butterfly-free slices; see the module doc for between and
    outside the expiries. sd_fn(T, k) -> sd in vol units, or None. calibrator: an optional
    core.engine.conformal.ConformalCalibrator of |error| / sd per level (``half_width``)."""

    expiries: np.ndarray
    k_bounds: np.ndarray
    slices: list
    method: str = ""
    sd_fn: Callable | None = field(default=None, repr=False)
    theta_interp: str = "linear"     # ATM total variance between expiries: "linear" or "pchip" in T
    calibrator: object = field(default=None, repr=False)
    quote_offset_fn: Callable | None = field(default=None, repr=False)   # (T, k) -> vol, see quote_iv

    def __post_init__(self):
        self.expiries = np.asarray(self.expiries, np.float64)
        self.k_bounds = np.asarray(self.k_bounds, np.float64).reshape(-1, 2)
        self.theta = np.array([float(s.w(np.array([0.0]))[0]) for s in self.slices])
        self._theta_fn = None
        if self.theta_interp == "pchip" and self.expiries.size >= 3:
            from scipy.interpolate import PchipInterpolator

            # monotone cubic through every expiry's theta: the term structure's curvature from the
            # neighbours, still monotone between two expiries, so the price weights stay monotone
            self._theta_fn = PchipInterpolator(self.expiries, self.theta)

    @property
    def k_domain(self) -> tuple:
        """(lowest, highest) quoted k over all expiries, widened to MIN_CHECK_WIDTH where narrower
        (core.engine.domain.check_domain)."""
        return check_domain(float(self.k_bounds[:, 0].min()), float(self.k_bounds[:, 1].max()))

    # ------------------------------------------------------------------ evaluation
    def _segments(self, T: np.ndarray):
        """Per point: -1 before the first expiry, m - 1 after the last, else the left expiry index."""
        E = self.expiries
        i = np.searchsorted(E, T, side="right") - 1
        return np.where(T < E[0] - _T_EPS, -1, np.clip(i, 0, E.size - 1))

    def _log_otm_and_w(self, T: np.ndarray, k: np.ndarray, need_w: bool, need_lp: bool = True) -> tuple:
        """(log OTM price, w) at flat (T, k); need_lp False (w only, ``w`` and ``iv``): a segment
        whose points all sit at its expiry takes w from the slice and skips the price mix, whose
        value it would not use (lp is then NaN there). A segment with any point off the expiry
        mixes all its points as before, so every returned w is the same number either way."""
        E, m = self.expiries, self.expiries.size
        lp = np.full(T.shape, np.nan)
        w = np.full(T.shape, np.nan)
        seg = self._segments(T)
        for i in np.unique(seg):
            sel = seg == i
            Ts, ks = T[sel], k[sel]
            if i < 0:                                     # before the first expiry: scale w
                ws = self.slices[0].w(ks) * Ts / E[0]
                lp[sel], w[sel] = log_otm_price(ks, ws), ws
                continue
            at = np.abs(Ts - E[i]) <= _T_EPS
            if need_w and not need_lp and at.all():
                w[sel] = self.slices[i].w(ks)
                continue
            if i == m - 1:                                # after the last: move towards C = 1
                theta_T = self.theta[-1] * np.maximum(Ts, E[-1]) / E[-1]
                p_m = atm_price(self.theta[-1])
                beta = np.clip((atm_price(theta_T) - p_m) / max(1.0 - p_m, 1e-300), 0.0, 1.0)
                lp_s = mix_log(otm_upper_log(ks), self.slices[-1].log_otm(ks), beta)
            else:
                alpha = self._weights(i, Ts)
                lp_s = mix_log(self.slices[i].log_otm(ks), self.slices[i + 1].log_otm(ks), alpha)
            lp[sel] = lp_s
            if need_w:
                ws = np.where(at, 0.0, np.nan)
                if at.any():
                    ws[at] = self.slices[i].w(ks[at])
                if (~at).any():
                    ws[~at] = w_from_log_otm(ks[~at], lp_s[~at])
                w[sel] = ws
        return lp, w

    def _weights(self, i: int, T: np.ndarray) -> np.ndarray:
        """Weight of slice i in the price mix at T in [T_i, T_i+1]: the one that makes the ATM total
        variance linear in T between theta_i and theta_i+1 (Gatheral & Jacquier's theta
        interpolation, with the ATM price matched exactly); it falls from 1 to 0 as T rises."""
        E, th = self.expiries, self.theta
        lin = np.clip((E[i + 1] - T) / (E[i + 1] - E[i]), 0.0, 1.0)
        p_lo, p_hi = atm_price(th[i]), atm_price(th[i + 1])
        if not p_hi > p_lo:
            return lin
        theta_T = th[i + 1] - lin * (th[i + 1] - th[i])
        if self._theta_fn is not None:
            theta_T = np.clip(self._theta_fn(T), th[i], th[i + 1])
        return np.clip(shorter_share(p_lo, p_hi, atm_price(theta_T)), 0.0, 1.0)

    @staticmethod
    def _flat(T, k):
        T, k = np.broadcast_arrays(np.asarray(T, np.float64), np.asarray(k, np.float64))
        return T.shape, T.ravel(), k.ravel()

    def w(self, T, k) -> np.ndarray:
        shape, Tf, kf = self._flat(T, k)
        return self._log_otm_and_w(Tf, kf, True, need_lp=False)[1].reshape(shape)

    def iv(self, T, k) -> np.ndarray:
        shape, Tf, kf = self._flat(T, k)
        w = self._log_otm_and_w(Tf, kf, True, need_lp=False)[1]
        return np.sqrt(np.maximum(w, 0.0) / Tf).reshape(shape)

    def call(self, T, k) -> np.ndarray:
        shape, Tf, kf = self._flat(T, k)
        return call_from_log_otm(kf, self._log_otm_and_w(Tf, kf, False)[0]).reshape(shape)

    def call_and_w(self, T, k) -> tuple:
        """(call, w) at (T, k) from one pass: ``call`` and ``w`` each price every point again."""
        shape, Tf, kf = self._flat(T, k)
        lp, w = self._log_otm_and_w(Tf, kf, True)
        return call_from_log_otm(kf, lp).reshape(shape), w.reshape(shape)

    def sd(self, T, k) -> np.ndarray | None:
        if self.sd_fn is None:
            return None
        T, k = np.broadcast_arrays(np.asarray(T, np.float64), np.asarray(k, np.float64))
        return np.asarray(self.sd_fn(T, k), np.float64)

    def quote_offset(self, T, k) -> np.ndarray:
        """The method's quote offset at (T, k) in vol, 0 where it fits none (svi_gp: the put-call
        step at the forward, a jump in the quotes that an arbitrage-free surface cannot carry)."""
        if self.quote_offset_fn is None:
            return np.zeros(np.broadcast(np.asarray(T), np.asarray(k)).shape)
        return np.asarray(self.quote_offset_fn(T, k), np.float64)

    def quote_iv(self, T, k) -> np.ndarray:
        """The predicted quote at (T, k): the surface's iv plus ``quote_offset``. Held-out quotes
        are scored against it; ``sd`` and ``half_width`` are around it."""
        return self.iv(T, k) + self.quote_offset(T, k)

    def level_multiple(self, level: float) -> float:
        """q with half-width = q x sd for the central ``level`` interval: the calibrator's quantile
        of |error| / sd where one was fitted for the level (a heavy-tailed error needs a wider
        multiple at 95 % than at 80 %: one Gaussian sd cannot cover both); else the Gaussian z."""
        cal = self.calibrator
        if cal is not None and float(level) in cal.levels:
            return float(cal.multiplier(level))
        return float(ndtri(0.5 + 0.5 * float(level)))

    def half_width(self, T, k, level: float) -> np.ndarray | None:
        """Half-width (vol) of the central ``level`` interval at (T, k); None without an sd."""
        sd = self.sd(T, k)
        return None if sd is None else sd * self.level_multiple(level)

    def k_range(self, T) -> tuple:
        """(lowest, highest) quoted k at T: linear in T between expiries, flat outside."""
        T = np.asarray(T, np.float64)
        near = np.clip(np.searchsorted(self.expiries, T), 1, max(self.expiries.size - 1, 1))
        for cand in (near - 1, np.minimum(near, self.expiries.size - 1)):   # snap T onto an expiry it rounds to
            T = np.where(np.abs(T - self.expiries[cand]) <= _T_EPS, self.expiries[cand], T)
        return (np.interp(T, self.expiries, self.k_bounds[:, 0]), np.interp(T, self.expiries, self.k_bounds[:, 1]))

    def extrapolated(self, T, k) -> np.ndarray:
        return outside_quoted(self.expiries, self.k_bounds[:, 0], self.k_bounds[:, 1], T, k)

    # ------------------------------------------------------------------ export
    def params(self) -> pd.DataFrame:
        """One row per expiry: T, kind (svi / mix-intrinsic / mix-infinite / mix-between, with
        +gp, +wing or +asked for a correction on top), a, b, rho, m, sigma (raw SVI, w units), beta
        (a mix slice's share in price: towards intrinsic or C = 1, or towards the longer neighbour
        for mix-between), the correction's share (gp_factor, wing_factor, asked_factor), theta
        (ATM total variance), k_lo, k_hi (the quoted range; an asked slice's: its nodes')."""
        rows = [{"T": float(T), **s.row(), "theta": float(th), "k_lo": float(b[0]), "k_hi": float(b[1])}
                for T, s, th, b in zip(self.expiries, self.slices, self.theta, self.k_bounds)]
        return pd.DataFrame(rows)

    def table(self, n_k: int = 201, T=None, k_margin: float = 0.0) -> pd.DataFrame:
        """The dense export: at each T (default: the expiries and the midpoints between them),
        n_k points of k across the quoted domain (widened by k_margin): T, k, w, iv, call, sd,
        extrapolated."""
        if T is None:
            E = self.expiries
            T = np.sort(np.r_[E, 0.5 * (E[1:] + E[:-1])])
        lo, hi = self.k_domain
        k = np.linspace(lo - k_margin, hi + k_margin, n_k)
        TT, KK = np.meshgrid(np.asarray(T, np.float64), k, indexing="ij")
        call, w = self.call_and_w(TT, KK)
        sd = self.sd(TT, KK)
        return pd.DataFrame({"T": TT.ravel(), "k": KK.ravel(), "w": w.ravel(),
                             "iv": np.sqrt(np.maximum(w, 0) / TT).ravel(), "call": call.ravel(),
                             "sd": np.full(TT.size, np.nan) if sd is None else sd.ravel(),
                             "extrapolated": self.extrapolated(TT, KK).ravel()})


@dataclass
class FunctionSurface:
    """A ChainSurface from a total-variance function w_fn(T, k) (a synthetic truth, a test
    surface): no repair, no guarantee; expiries and k_bounds say where it is checked."""

    w_fn: Callable
    expiries: np.ndarray
    k_bounds: np.ndarray

    def __post_init__(self):
        self.expiries = np.asarray(self.expiries, np.float64)
        self.k_bounds = np.broadcast_to(np.asarray(self.k_bounds, np.float64), (self.expiries.size, 2)).copy()

    def w(self, T, k) -> np.ndarray:
        T, k = np.broadcast_arrays(np.asarray(T, np.float64), np.asarray(k, np.float64))
        return np.asarray(self.w_fn(T, k), np.float64)

    def iv(self, T, k) -> np.ndarray:
        return np.sqrt(np.maximum(self.w(T, k), 0.0) / np.asarray(T, np.float64))

    def quote_iv(self, T, k) -> np.ndarray:
        return self.iv(T, k)

    def quote_offset(self, T, k) -> np.ndarray:
        return np.zeros(np.broadcast(np.asarray(T), np.asarray(k)).shape)

    def call(self, T, k) -> np.ndarray:
        w = self.w(T, k)
        k = np.broadcast_to(np.asarray(k, np.float64), w.shape)
        return call_from_log_otm(k, log_otm_price(k, w))

    def sd(self, T, k):
        return None

    def extrapolated(self, T, k) -> np.ndarray:
        return outside_quoted(self.expiries, self.k_bounds[:, 0], self.k_bounds[:, 1], T, k)

    def params(self) -> pd.DataFrame:
        return pd.DataFrame({"T": self.expiries, "k_lo": self.k_bounds[:, 0], "k_hi": self.k_bounds[:, 1]})
