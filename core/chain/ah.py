"""QuantLib's Andreasen-Huge volatility interpolation on a chain, in forward-normalised units.

Spot 1, zero rates (so the forward is 1 and prices are C / (D F)), calls at strikes e^k. QuantLib
works in whole days, so time is stretched by TIME_SCALE before rounding to days (a 3-hour
resolution) and each quote's vol is rescaled so that its total variance is exact at the rounded
time. The PDE's strike range is the chain's quoted k range widened by K_MARGIN on each side. Dense
expiries are thinned to MAX_PER_EXPIRY strikes evenly across their range: with more quotes than
PDE grid cells per unit of k, the per-expiry calibration failed on whole slices (measured on SPY).
"""
from __future__ import annotations

import numpy as np

TIME_SCALE = 1.0          # no stretch: measured, AH's calibration is not invariant to one
GRID_POINTS = 400         # AH's strike grid
CALIBRATION = "Call"      # QuantLib calibration type: Call, Put or CallPut
OTM_OPTIONS = False       # calibration options: OTM (puts below the forward) or calls throughout
K_MARGIN = 0.5            # log-strike margin of the PDE's strike range
MAX_PER_EXPIRY = 40       # calibration strikes per expiry: denser than the PDE grid is ill-posed
MAX_ITERATIONS = 1000     # per-expiry Levenberg-Marquardt iterations (QuantLib's default stopped early)
_DAYS_PER_YEAR = 365.0


def thin(T, k, per_expiry: int) -> np.ndarray:
    """Indices keeping at most ``per_expiry`` quotes per expiry, the nearest to evenly spaced k."""
    keep = []
    key = np.round(T, 9)
    for T_i in np.unique(key):
        idx = np.flatnonzero(key == T_i)
        if idx.size <= per_expiry:
            keep.append(idx)
            continue
        targets = np.linspace(k[idx].min(), k[idx].max(), per_expiry)
        keep.append(np.unique(idx[np.abs(k[idx][None, :] - targets[:, None]).argmin(1)]))
    return np.concatenate(keep)


def _calibration_set(ql, today, T, k, iv):
    days = np.maximum(np.round(T * TIME_SCALE * _DAYS_PER_YEAR).astype(int), 1)
    # one quote per (day, strike): merge quotes that round together, averaging total variance
    key = {}
    for d, kk, w in zip(days, np.round(k, 10), iv**2 * T):
        key.setdefault((int(d), float(kk)), []).append(w)
    cal = ql.CalibrationSet()
    for (d, kk), ws in key.items():
        t = d / _DAYS_PER_YEAR
        vol = np.sqrt(np.mean(ws) / t)
        kind = ql.Option.Put if (OTM_OPTIONS and kk < 0) else ql.Option.Call
        option = ql.VanillaOption(ql.PlainVanillaPayoff(kind, float(np.exp(kk))),
                                  ql.EuropeanExercise(today + d))
        cal.append(ql.CalibrationPair(option, ql.SimpleQuote(float(vol))))
    return cal


def ah_values(T, k, iv, T_ask, k_ask) -> np.ndarray:
    """Andreasen-Huge fitted to quotes (T years, k, iv), read at (T_ask, k_ask): implied vols
    (NaN where QuantLib cannot give one)."""
    import QuantLib as ql

    T, k, iv = (np.asarray(a, np.float64).ravel() for a in (T, k, iv))
    keep = thin(T, k, MAX_PER_EXPIRY)
    T, k, iv = T[keep], k[keep], iv[keep]
    today = ql.Date(2, 1, 2020)
    ql.Settings.instance().evaluationDate = today
    flat = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, ql.Actual365Fixed()))
    spot = ql.QuoteHandle(ql.SimpleQuote(1.0))
    ah = ql.AndreasenHugeVolatilityInterpl(
        _calibration_set(ql, today, T, k, iv), spot, flat, flat, ql.AndreasenHugeVolatilityInterpl.CubicSpline,
        getattr(ql.AndreasenHugeVolatilityInterpl, CALIBRATION), GRID_POINTS, float(np.exp(k.min() - K_MARGIN)),
        float(np.exp(k.max() + K_MARGIN)), ql.LevenbergMarquardt(), ql.EndCriteria(MAX_ITERATIONS, 100, 1e-12, 1e-12, 1e-12))
    surface = ql.AndreasenHugeVolatilityAdapter(ah)
    out = np.full(np.size(T_ask), np.nan)
    for i, (t, kk) in enumerate(zip(np.ravel(T_ask), np.ravel(k_ask))):
        try:
            out[i] = surface.blackVol(float(t * TIME_SCALE), float(np.exp(kk)), True) * np.sqrt(TIME_SCALE)
        except RuntimeError:       # QuantLib refuses a vol where its price leaves the bounds
            pass
    return out
