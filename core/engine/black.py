"""Black (forward) option prices and implied-volatility inversion, vectorised.

One dense subject in one module on purpose: prices, their asymptotics and the inversion share the
same scaled-variable numerics.

Conventions
-----------
Every function broadcasts its array arguments against each other (numpy rules; shapes that do
not broadcast raise numpy's ValueError). Units:

- ``F`` forward, ``K`` strike: same currency units as the price, > 0.
- ``T`` time to expiry in years, > 0.  ``iv`` Black implied vol, per sqrt(year), >= 0.
- ``discount`` D: discount factor to expiry, > 0 (may exceed 1 for negative rates).
- ``is_call``: bool (True = call, False = put).

Invalid inputs never raise: an element with a NaN/inf input, or a non-positive F, K, T or D
(or a negative iv in ``black_price``) gives NaN in that element only.  ``quote_status`` says
why, so quote import can report every bad quote at once instead of failing on the first.

Method
------
Everything is reduced to the normalised out-of-the-money call

    b(x, s) = exp(x/2) N(x/s + s/2) - exp(-x/2) N(x/s - s/2),   x = -|ln(F/K)| <= 0,

with total vol s = iv * sqrt(T) and b = time value / (D sqrt(F K)).  An in-the-money option is
intrinsic value plus this out-of-the-money part (put-call parity), so the time value -- the only
part of an ITM price that carries information about vol -- is never lost in cancellation.

``b`` is evaluated in log space, in one of three regions chosen to avoid cancellation:

- small s (t = s/2 < 0.1): Taylor series in t of the scaled form (below), no subtraction;
- h + t <= 0 (h = x/s): difference of scaled complementary error functions (erfcx), which
  cannot underflow however deep out of the money the option is;
- otherwise the plain formula above (the two terms are then well separated).

The scaled form is  b = exp(-(h^2 + t^2)/2) / sqrt(2 pi) * [Y(h + t) - Y(h - t)]  with the Mills
ratio Y(z) = N(z)/n(z) = sqrt(pi/2) erfcx(-z/sqrt2).  Inversion runs Halley's method on
ln b(s) - ln b_target (good conditioning from 1e-300 prices up to the upper bound), started from
a closed-form guess, with a bracket and bisection in total variance s^2 as a safeguard, and a
fixed iteration cap.  Converged elements leave the working set, so the cost is a handful of
evaluations of b per element.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np
from scipy.special import erfcx, log_ndtr, ndtri

__all__ = [
    "QuoteStatus",
    "black_price",
    "implied_total_vol_otm",
    "implied_vol",
    "normalised_log_price",
    "price_bounds_violation",
    "quote_status",
]

_SQRT_2PI = np.sqrt(2.0 * np.pi)
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
_SQRT_PI_2 = np.sqrt(0.5 * np.pi)
_INV_SQRT2 = 1.0 / np.sqrt(2.0)

# Below this half total vol the two terms of b nearly cancel; the series in t avoids that.
# 7 odd terms reach 1e-17 relative at t = 0.1 (checked against mpmath in tests).
_T_SERIES = 0.1
_N_SERIES_TERMS = 7
# Y' = 1 + h Y loses ~ h^2 eps; the erfcx difference loses ~ |h|/t eps.  The series wins
# (measured) down to h = -100; below -40 b < exp(-800) underflows anyway, and the recurrence
# must not be pushed to where 1 + h Y rounds to zero.
_H_SERIES_MIN = -40.0

MAX_ITER = 40          # Halley/bisection iterations; typical convergence takes 2-4
_REL_STEP_TOL = 1e-9   # Halley is cubic: a step this small leaves an error ~1e-25


class QuoteStatus(IntEnum):
    """Why a quoted price has (or lacks) an implied vol.  ``OK`` is the only usable code."""

    OK = 0
    NONFINITE_INPUT = 1       # NaN or +-inf in price, F, K, T or discount
    NONPOSITIVE_INPUT = 2     # F, K, T or discount <= 0
    BELOW_INTRINSIC = 3       # price < D * max(F - K, 0) (call) / D * max(K - F, 0) (put)
    AT_INTRINSIC = 4          # price == intrinsic: zero time value, implied vol would be 0
    ABOVE_UPPER = 5           # price > D * F (call) / D * K (put)
    AT_UPPER = 6              # price == upper bound (to rounding): implied vol would be inf


# --------------------------------------------------------------------------------------------
# Normalised Black function
# --------------------------------------------------------------------------------------------

def _mills(z: np.ndarray) -> np.ndarray:
    """Mills ratio Y(z) = N(z)/n(z) for z <= 0 (erfcx argument >= 0: no overflow)."""
    return _SQRT_PI_2 * erfcx(-z * _INV_SQRT2)


def _delta_mills_series(h: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Y(h+t) - Y(h-t) = 2 sum_m t^(2m+1) Y^(2m+1)(h) / (2m+1)!  for small t, h <= 0.

    Derivatives come from Y' = 1 + z Y and Y^(n+1) = z Y^(n) + n Y^(n-1); every term is
    positive, so nothing cancels.
    """
    y_prev = _mills(h)                 # Y
    y_cur = 1.0 + h * y_prev           # Y'
    t2 = t * t
    power = t.copy()                   # t^(2m+1) / (2m+1)!
    total = power * y_cur
    n = 1
    for m in range(1, _N_SERIES_TERMS):
        # advance two derivative orders: n -> n+1 -> n+2
        y_prev, y_cur = y_cur, h * y_cur + n * y_prev
        n += 1
        y_prev, y_cur = y_cur, h * y_cur + n * y_prev
        n += 1
        power = power * t2 / ((2 * m) * (2 * m + 1))
        total = total + power * y_cur
    return 2.0 * total


def _log_and_inverse(dy, log_vega):
    """(log_vega + ln dy, 1/dy); a Mills difference that rounded to <= 0 (only where b is far
    below 1e-300) counts as b = 0, ln b = -inf, so the inversion's bracket stays consistent."""
    pos = dy > 0
    safe = np.where(pos, dy, 1.0)
    return np.where(pos, log_vega + np.log(safe), -np.inf), np.where(pos, 1.0 / safe, np.inf)


def _log_b_and_ratio(x: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ln b(x, s) and vega/price = (db/ds)/b for x <= 0, s > 0 (1-D arrays, same shape).

    Returns (log_b, v_over_b).  log_b is finite even where b underflows (deep OTM, tiny s).
    """
    h = x / s
    t = 0.5 * s
    # ln of the Gaussian factor exp(-(h^2 + t^2)/2)/sqrt(2 pi) = ln(vega); h*h may be inf
    with np.errstate(over="ignore"):
        log_vega = -0.5 * (h * h + t * t) - _LOG_SQRT_2PI
    log_b = np.empty_like(s)
    ratio = np.empty_like(s)

    series = (t < _T_SERIES) & (h >= _H_SERIES_MIN)
    scaled = ~series & (h + t <= 0.0)
    plain = ~series & ~scaled

    if series.any():
        dy = _delta_mills_series(h[series], t[series])
        log_b[series], ratio[series] = _log_and_inverse(dy, log_vega[series])
    if scaled.any():
        hs, ts = h[scaled], t[scaled]
        dy = _mills(hs + ts) - _mills(hs - ts)
        log_b[scaled], ratio[scaled] = _log_and_inverse(dy, log_vega[scaled])
    if plain.any():
        hp, tp, xp = h[plain], t[plain], x[plain]
        # each term in log form so that exp(-x/2) cannot overflow against a tiny N(.)
        a = np.exp(0.5 * xp + log_ndtr(hp + tp))
        c = np.exp(-0.5 * xp + log_ndtr(hp - tp))
        diff = a - c
        lb = np.where(diff > 0, np.log(np.where(diff > 0, diff, 1.0)), -np.inf)
        log_b[plain] = lb
        ratio[plain] = np.exp(log_vega[plain] - lb)
    return log_b, ratio


def normalised_log_price(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ln of the normalised OTM Black price b(x, s), x <= 0, s > 0 (any broadcastable shapes)."""
    x, s = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(s, np.float64))
    log_b, _ = _log_b_and_ratio(x.ravel(), s.ravel())
    return log_b.reshape(x.shape)


# --------------------------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------------------------

def _broadcast(*args):
    arrays = np.broadcast_arrays(*[np.asarray(a) for a in args])
    return [np.array(a, dtype=np.float64) for a in arrays]


def _log_moneyness(F, K):
    """ln(F/K), accurate to a few ulps relative even when F ~ K (where ln F - ln K is not)."""
    ratio = F / K
    near = (ratio > 0.5) & (ratio < 2.0)
    out = np.log(F) - np.log(K)
    # F - K is exact near the money (Sterbenz), so log1p keeps every digit of a small x
    out[near] = np.log1p((F[near] - K[near]) / K[near])
    return out


def _intrinsic(F, K, is_call):
    """Undiscounted intrinsic value max(F-K, 0) for calls, max(K-F, 0) for puts."""
    return np.where(is_call, np.maximum(F - K, 0.0), np.maximum(K - F, 0.0))


def black_price(F, K, T, iv, is_call, discount=1.0) -> np.ndarray:
    """Black (forward) option price.

    Inputs (broadcast): forward F > 0, strike K > 0, expiry T > 0 (years), implied vol
    iv >= 0 (per sqrt year), is_call (bool), discount factor D > 0.
    Output: D * E[(F_T - K)^+] (call) or D * E[(K - F_T)^+] (put), in price units, float64 of
    the broadcast shape.  iv = 0 gives the discounted intrinsic value.  Invalid elements
    (non-finite input, F/K/T/D <= 0, iv < 0) are NaN.
    """
    F, K, T, iv, D = _broadcast(F, K, T, iv, discount)
    is_call = np.broadcast_to(np.asarray(is_call, dtype=bool), F.shape)
    with np.errstate(invalid="ignore"):
        valid = (np.isfinite(F) & np.isfinite(K) & np.isfinite(T) & np.isfinite(iv)
                 & np.isfinite(D) & (F > 0) & (K > 0) & (T > 0) & (D > 0) & (iv >= 0))
    price = np.full(F.shape, np.nan)
    if not valid.any():
        return price
    Fv, Kv, Tv, ivv, Dv, cv = F[valid], K[valid], T[valid], iv[valid], D[valid], is_call[valid]
    x = -np.abs(_log_moneyness(Fv, Kv))
    s = ivv * np.sqrt(Tv)
    otm = np.zeros_like(s)
    pos = s > 0
    if pos.any():
        log_b, _ = _log_b_and_ratio(x[pos], s[pos])
        # sqrt(F K) in log form: no overflow for huge F, K
        otm[pos] = np.exp(log_b + 0.5 * (np.log(Fv[pos]) + np.log(Kv[pos])))
    price[valid] = Dv * (_intrinsic(Fv, Kv, cv) + otm)
    return price


# --------------------------------------------------------------------------------------------
# Bounds and quote status
# --------------------------------------------------------------------------------------------

def _prepare(price, F, K, T, is_call, discount):
    """Broadcast inputs; return (arrays..., status, x, log_beta) for the inversion.

    x = -|ln(F/K)| and log_beta = ln(time value / (D sqrt(F K))) are only meaningful where
    status == OK.
    """
    price, F, K, T, D = _broadcast(price, F, K, T, discount)
    is_call = np.broadcast_to(np.asarray(is_call, dtype=bool), price.shape)
    status = np.full(price.shape, QuoteStatus.OK, dtype=np.int8)
    x = np.zeros(price.shape)
    log_beta = np.zeros(price.shape)

    finite = (np.isfinite(price) & np.isfinite(F) & np.isfinite(K) & np.isfinite(T)
              & np.isfinite(D))
    status[~finite] = QuoteStatus.NONFINITE_INPUT
    with np.errstate(invalid="ignore"):
        positive = (F > 0) & (K > 0) & (T > 0) & (D > 0)
    status[finite & ~positive] = QuoteStatus.NONPOSITIVE_INPUT
    ok = finite & positive
    if not ok.any():
        return price, F, K, T, D, is_call, status, x, log_beta

    p, f, k, d, c = price[ok], F[ok], K[ok], D[ok], is_call[ok]
    lower = d * _intrinsic(f, k, c)
    upper = d * np.where(c, f, k)
    st = np.zeros(p.shape, dtype=np.int8)
    st[p < lower] = QuoteStatus.BELOW_INTRINSIC
    st[p == lower] = QuoteStatus.AT_INTRINSIC
    st[p > upper] = QuoteStatus.ABOVE_UPPER
    st[p == upper] = QuoteStatus.AT_UPPER

    inside = st == QuoteStatus.OK
    log_f, log_k = np.log(f[inside]), np.log(k[inside])
    xi = -np.abs(_log_moneyness(f[inside], k[inside]))
    # time value = the OTM option's price (parity); p > lower guarantees it is > 0
    lb = np.log(p[inside] - lower[inside]) - np.log(d[inside]) - 0.5 * (log_f + log_k)
    # sup of b over s is exp(x/2); a price within rounding of it has no finite vol
    at_sup = lb >= 0.5 * xi
    st_inside = np.zeros(lb.shape, dtype=np.int8)
    st_inside[at_sup] = QuoteStatus.AT_UPPER
    st[inside] = st_inside

    status[ok] = st
    xs, lbs = np.zeros(p.shape), np.zeros(p.shape)
    xs[inside], lbs[inside] = xi, lb
    x[ok], log_beta[ok] = xs, lbs
    return price, F, K, T, D, is_call, status, x, log_beta


def quote_status(price, F, K, T, is_call, discount=1.0) -> np.ndarray:
    """Per-quote QuoteStatus code (int8 array of the broadcast shape); 0 == QuoteStatus.OK.

    Bounds are checked exactly: a call must satisfy D max(F-K, 0) < price < D F, a put
    D max(K-F, 0) < price < D K.  A price equal to a bound has no finite positive implied vol
    and gets its own AT_* code so callers can tell "stale at intrinsic" from "arbitrage".
    """
    return _prepare(price, F, K, T, is_call, discount)[6]


def price_bounds_violation(price, F, K, T, is_call, discount=1.0) -> np.ndarray:
    """Boolean mask, True where a quote has no implied vol (any status other than OK).

    Use ``quote_status`` for the reason code of each flagged quote.
    """
    return quote_status(price, F, K, T, is_call, discount) != QuoteStatus.OK


# --------------------------------------------------------------------------------------------
# Inversion
# --------------------------------------------------------------------------------------------

def _initial_guess(x, log_beta):
    """Closed-form starting total vol s0 and the bracket [lo, hi] it lies in.

    Split at the inflection point s_c = sqrt(2|x|) of b(s).  Below it ln b ~ -x^2/(2 s^2), so
    s^2 ~ s_c^2 ln b_c / ln beta (exact as s -> 0).  Above it the upper tail
    b_max - b ~ (e^{x/2} + e^{-x/2}) N(-s/2) is inverted directly.
    """
    s_c = np.sqrt(-2.0 * x)
    lo = np.zeros_like(x)
    hi = np.full_like(x, np.inf)
    s0 = np.empty_like(x)

    atm = s_c == 0.0
    log_b_c = np.full_like(x, -np.inf)
    if (~atm).any():
        log_b_c[~atm], _ = _log_b_and_ratio(x[~atm], s_c[~atm])
    lower = ~atm & (log_beta <= log_b_c)
    upper = ~lower

    # refine with Newton in ln s on the h -> -inf asymptote ln b ~ ln(s^3/x^2) - x^2/(2 s^2)
    # - s^2/8 - ln sqrt(2 pi) (no special functions; exact where the crude guess is worst)
    xl, lbl = x[lower], log_beta[lower]
    crude = np.log(s_c[lower] * np.sqrt(log_b_c[lower] / lbl))
    ln_s = crude.copy()
    with np.errstate(all="ignore"):
        for _ in range(3):
            e2 = np.exp(2.0 * ln_s)
            f = 3.0 * ln_s - np.log(xl * xl) - 0.5 * xl * xl / e2 - 0.125 * e2 - _LOG_SQRT_2PI - lbl
            fp = 3.0 + xl * xl / e2 - 0.25 * e2
            ln_s = np.where(fp > 1.0, ln_s - f / fp, ln_s)
    ok = np.isfinite(ln_s) & (np.abs(ln_s - crude) < np.log(10.0))
    s0[lower] = np.minimum(np.exp(np.where(ok, ln_s, crude)), s_c[lower])
    hi[lower] = s_c[lower]

    xu, lbu = x[upper], log_beta[upper]
    b_max = np.exp(0.5 * xu)
    gap = -np.expm1(lbu - 0.5 * xu) * b_max            # b_max - beta, without cancellation
    q = np.clip(gap / (b_max + np.exp(-0.5 * xu)), 1e-300, 0.5)
    su = np.maximum(-2.0 * ndtri(q), s_c[upper])
    # near the money with a tiny price, N(-s/2) ~ 1/2 is useless; b ~ s/sqrt(2 pi) is right
    su = np.where(q > 0.49, np.maximum(np.exp(lbu) * _SQRT_2PI, s_c[upper]), su)
    s0[upper] = su
    lo[upper] = s_c[upper]
    s0 = np.where(s0 > 0, s0, 1e-3)
    return s0, lo, hi


def _implied_total_vol(x: np.ndarray, log_beta: np.ndarray) -> np.ndarray:
    """Total vol s with ln b(x, s) = log_beta, for 1-D arrays x <= 0, log_beta < x/2."""
    s, lo, hi = _initial_guess(x, log_beta)
    active = np.arange(x.size)
    for _ in range(MAX_ITER):
        if active.size == 0:
            break
        xa, ta, sa, loa, hia = x[active], log_beta[active], s[active], lo[active], hi[active]
        log_b, r = _log_b_and_ratio(xa, sa)
        g = log_b - ta
        # keep the bracket: b is increasing in s
        below = g < 0
        loa = np.where(below, sa, loa)
        hia = np.where(below, hia, sa)
        # Halley on g(s) = ln b - target: g' = r, g'' = r (x^2/s^3 - s/4) - r^2
        g1 = r
        g2 = r * (xa * xa / sa**3 - 0.25 * sa) - r * r
        newton = -g / g1
        denom = 1.0 + 0.5 * newton * g2 / g1
        step = np.where(denom > 0.5, newton / denom, newton)
        # ln b is concave in s, so a step from the right of the root can overshoot far to the
        # left (where ln b ~ -x^2/(2 s^2) is steep and the next steps are tiny): never go more
        # than halfway down to the bracket's lower end in one step
        s_new = np.maximum(sa + step, 0.5 * (sa + loa))
        # safeguard: bisect in total variance when the step leaves the bracket
        # (a zero step lands on the bracket end it just set: that is not leaving it)
        bad = ~np.isfinite(s_new) | (s_new <= 0) | (s_new < loa) | (s_new > hia)
        finite_hi = np.isfinite(hia)
        bisect = np.where(finite_hi, np.sqrt(0.5 * (loa * loa + hia * hia)), 2.0 * sa)
        s_new = np.where(bad, bisect, s_new)
        # converged when the Newton step (the local error; Halley's may be shrunk far from the
        # root) is negligible: the Halley step just taken leaves an error ~ its cube
        done = (~bad & (np.abs(newton) <= _REL_STEP_TOL * sa)) | (g == 0)
        s[active], lo[active], hi[active] = s_new, loa, hia
        active = active[~done]
    return s


def implied_vol(price, F, K, T, is_call, discount=1.0, return_status=False):
    """Black implied vol of option prices.

    Inputs (broadcast): price (same units as F, K), forward F > 0, strike K > 0, expiry
    T > 0 (years), is_call (bool), discount factor D > 0.
    Output: iv (per sqrt year), float64 of the broadcast shape; NaN wherever
    ``quote_status`` is not OK (bound violated or attained, invalid input).  With
    return_status=True returns (iv, status).

    Accuracy: the returned iv reprices to ~1e-13 relative in the time value wherever that
    time value is above ~1e-14 of F (otherwise the price holds no more digits of vol).
    """
    price, F, K, T, D, is_call, status, x, log_beta = _prepare(price, F, K, T, is_call, discount)
    iv = np.full(price.shape, np.nan)
    ok = status == QuoteStatus.OK
    if ok.any():
        s = _implied_total_vol(x[ok], log_beta[ok])
        iv[ok] = s / np.sqrt(T[ok])
    if return_status:
        return iv, status
    return iv


def implied_total_vol_otm(k, log_price) -> np.ndarray:
    """Total implied vol s = iv * sqrt(T) of out-of-the-money options given the log of the price.

    For model code that prices in log space (so that 1e-300 prices lose nothing): forward 1, no
    discounting, the option is a call for k >= 0 and a put for k < 0.
    Inputs (broadcast): k = ln(K/F), log_price = ln(price / F).
    Output: s (dimensionless; iv = s / sqrt(T)); NaN where the price is non-finite or not below
    the upper bound (F for calls, K for puts) -- there is no lower-bound failure for a finite log.
    """
    k, log_price = np.broadcast_arrays(np.asarray(k, np.float64), np.asarray(log_price, np.float64))
    x = -np.abs(k)
    log_beta = log_price - 0.5 * k          # b = price / sqrt(K), with F = 1
    s = np.full(k.shape, np.nan)
    ok = np.isfinite(log_beta) & np.isfinite(x) & (log_beta < 0.5 * x)
    if ok.any():
        s[ok] = _implied_total_vol(x[ok], log_beta[ok])
    return s

