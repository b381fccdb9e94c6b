"""A Gaussian-process residual on one expiry's smile, with each quote's noise from its bid-ask.

The GP lives on warped normalised moneyness u = Z_WARP asinh(z / Z_WARP), z = k / sqrt(theta)
(theta the expiry's ATM total variance): the length scale is in ATM standard moves, so one value
serves a one-week and a two-year smile, and the asinh warp makes the length scale in k grow with
|k| beyond Z_WARP moves, where strikes are sparse and a short length scale would only chase noise.

The residual has a second, non-smooth component: a put-call step, a jump at the forward (puts
below it, calls above) that fades over STEP_DECAY_U on either side. Real chains carry one (American early
exercise, a forward a few bp off): on SPY the OTM put and call vols at the money differ by 25 bp.
No continuous smile can follow it, and a smooth GP that tries bends the smile into butterfly
arbitrage, so the step is fitted and then left out of the surface (``mean``); ``step_mean`` is it.

Residuals are in implied-vol units. Quote noise sd = NOISE_SCALE * half bid-ask spread (vol),
floored, divided by sqrt(merged count); where a chain has no bid-ask, one noise level per chain
chosen by marginal likelihood. The amplitude and length scale are chosen per chain by marginal
likelihood over a small grid (summed over expiries), so nothing here is tuned on test chains.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular

LENGTHS_U = (0.15, 0.3, 0.6, 1.2)             # candidate length scales (ATM standard moves)
AMPS_IV = (2e-4, 5e-4, 1.5e-3, 4e-3, 1e-2)      # candidate residual amplitudes (vol)
NOISE_DEFAULTS_IV = (2e-4, 1e-3, 3e-3)          # candidate noise where no quote has a bid-ask (vol)
STEPS_IV = (0.0, 5e-4, 2e-3)                    # candidate put-call step amplitudes (vol)


@dataclass(frozen=True)
class GPConfig:
    """Structure of the residual GP; chosen on the validation split (docs/chain_estimator.md)."""

    noise_scale: float = 0.5        # mid-quote noise sd per unit of half-spread (uniform in the spread: 0.58)
    noise_floor_iv: float = 1e-4    # no quote is trusted beyond 1 bp of vol
    z_warp: float = 2.0             # ATM moves beyond which the k length scale grows
    taper_u: float = 0.5            # outside the quoted range the mean decays over this many u
    asked_expiries: bool = True     # a slice at each asked T between quoted expiries (core.chain.svi_gp)
    theta_interp: str = "pchip"     # ATM total variance between expiries (core.chain.surface)
    wing_sd_rel: float = 0.1        # beyond the quoted range the sd grows by this x ATM vol per unit of u
                                    # where a side has too few tested wing quotes to calibrate its own rate
    wing_sd_floor: float = 0.05     # ... and by at least this where it has them (core.chain.svi_gp._wing_rates)


def warp(z, z_warp: float) -> np.ndarray:
    return z_warp * np.arcsinh(np.asarray(z, np.float64) / z_warp)


def quote_noise_iv(iv_bid, iv_ask, weight, cfg: GPConfig, default_iv: float) -> np.ndarray:
    """Per-quote noise sd (vol): from the half spread where known, else ``default_iv``."""
    half = 0.5 * (np.asarray(iv_ask) - np.asarray(iv_bid))
    sd = np.where(np.isfinite(half) & (half > 0), cfg.noise_scale * half, default_iv)
    return np.maximum(sd, cfg.noise_floor_iv) / np.sqrt(np.maximum(weight, 1.0))


def _kernel(u1, u2, amp: float, length: float) -> np.ndarray:
    """amp^2 exp(-d^2 / 2), d = (u1 - u2) / length, built in place: the same operations, in the
    same order, as ``amp * amp * np.exp(-0.5 * d * d)``, without its four temporaries."""
    d = np.subtract.outer(np.asarray(u1), np.asarray(u2))
    d /= length
    q = np.multiply(-0.5, d)
    q *= d
    np.exp(q, out=q)
    q *= amp * amp
    return q


_ROWS = 256               # row block of _kernel_mean (a multiple of 4: BLAS's gemv groups rows by 4)


def _kernel_mean(u1, u2, amp: float, length: float, alpha: np.ndarray) -> np.ndarray:
    """``_kernel(u1, u2, amp, length) @ alpha`` by blocks of _ROWS rows, each built in place in two
    reused buffers: the same floating-point operations on every element and the same matrix-vector
    product per row (block starts are multiples of 4 and the last block keeps at least 8 rows, so
    BLAS groups the rows as in one call), hence the same numbers, without the six full-size
    temporaries (the dense re-check evaluates 2001 x n kernels; this halved its time, measured)."""
    u1, u2 = np.asarray(u1), np.asarray(u2)
    m = u1.shape[0]
    if m <= _ROWS + 8:
        return _kernel(u1, u2, amp, length) @ alpha
    out = np.empty(m, np.result_type(u1, u2, alpha))
    rows = _ROWS + 8
    d_buf, q_buf = np.empty((rows, u2.shape[0]), out.dtype), np.empty((rows, u2.shape[0]), out.dtype)
    a2 = amp * amp
    s = 0
    while s < m:
        e = m if m - s <= _ROWS + 8 else s + _ROWS
        d, q = d_buf[:e - s], q_buf[:e - s]
        np.subtract(u1[s:e, None], u2[None, :], out=d)
        d /= length                      # d = (u1 - u2) / length
        np.multiply(-0.5, d, out=q)
        q *= d                           # -0.5 * d * d, evaluated left to right
        np.exp(q, out=q)
        np.multiply(a2, q, out=q)        # amp * amp * exp(...)
        out[s:e] = q @ alpha
        s = e
    return out


LIVE_TAPER = 1e-12        # where the taper is at most this, the mean is taken as nil (SliceGP.mean)
CHEB_MAX = 1025           # most Chebyshev nodes of a GP mean's interpolant (else the direct sum)
CHEB_TOL = 8.0            # ... converged when its tail coefficients are within this many rounding
                          # units (2^-52) of the sum of |terms| at the nodes


class _ChebMean:
    """The kernel sum ``_kernel_mean(u, u_q, amp, length, alpha)`` on [a, b] as its Chebyshev
    interpolant: the sum at N Chebyshev-Lobatto nodes (N = 17, 33, ... doubling, each set holding
    the previous), coefficients by a type-1 DCT, values by Clenshaw's recurrence. A sum of Gaussians
    is entire, so its coefficients fall faster than geometrically once N passes the interval's
    width in length scales; the interpolant is accepted once its top quarter of coefficients is
    below CHEB_TOL rounding units of the sum of |terms| (the direct sum's own rounding scale), so
    it differs from the direct sum by about as much as two orders of summation do. ``ok`` False:
    not converged by CHEB_MAX nodes (the caller then sums directly)."""

    def __init__(self, a: float, b: float, u_q, amp: float, length: float, alpha):
        from scipy.fft import dct

        self.a, self.b, self.ok, self.coef = a, b, False, None
        n = 17
        while n <= CHEB_MAX:
            x = 0.5 * (a + b) + 0.5 * (b - a) * np.cos(np.pi * np.arange(n) / (n - 1))
            K = _kernel(x, u_q, amp, length)
            f = K @ alpha
            scale = float((K @ np.abs(alpha)).max())
            c = dct(f, type=1) / (n - 1)
            c[0] *= 0.5
            c[-1] *= 0.5
            if np.abs(c[n - (n - 1) // 4:]).max() <= CHEB_TOL * 2.0**-52 * scale:
                self.ok, self.coef = True, c
                return
            n = 2 * n - 1

    def __call__(self, u) -> np.ndarray:
        t = (2.0 * np.asarray(u, np.float64) - (self.a + self.b)) / (self.b - self.a)
        t2 = 2.0 * t
        b1, b2 = np.zeros(t.shape), np.zeros(t.shape)
        for c in self.coef[:0:-1]:
            b1, b2 = t2 * b1 - b2 + c, b1
        return t * b1 - b2 + self.coef[0]


STEP_DECAY_U = 0.3        # the put-call step fades over this many ATM standard moves


def _side(u) -> np.ndarray:
    u = np.asarray(u, np.float64)
    return np.where(u < 0.0, 1.0, -1.0) * np.exp(-np.abs(u) / STEP_DECAY_U)


def _step_kernel(u1, u2, step: float) -> np.ndarray:
    """One jump at the forward, fading on both sides: step^2 s(u1) s(u2), s = +-exp(-|u| / decay)."""
    return step * step * np.outer(_side(u1), _side(u2))


@dataclass
class SliceGP:
    """The posterior of one expiry's residual: training inputs u, weights alpha, Cholesky factor."""

    u: np.ndarray
    alpha: np.ndarray
    chol: tuple
    amp: float
    length: float
    z_warp: float
    sqrt_theta: float
    u_lo: float
    u_hi: float
    taper_u: float
    noise_iv: np.ndarray
    step: float = 0.0
    cheb: object = None          # the mean's _ChebMean, built on first use; False: sum directly (SliceGP.mean)

    def _u(self, k) -> np.ndarray:
        return warp(np.asarray(k, np.float64) / self.sqrt_theta, self.z_warp)

    def _taper(self, u) -> np.ndarray:
        # beyond the quoted range the residual says nothing about the wing: fade to the backbone
        d = np.maximum(self.u_lo - u, 0.0) + np.maximum(u - self.u_hi, 0.0)
        return np.exp(-0.5 * (d / self.taper_u) ** 2) if self.taper_u > 0 else np.where(d > 0, 0.0, 1.0)

    def _live_range(self) -> tuple:
        """The u interval where the taper exceeds LIVE_TAPER."""
        reach = self.taper_u * np.sqrt(-2.0 * np.log(LIVE_TAPER)) if self.taper_u > 0 else 0.0
        return self.u_lo - reach, self.u_hi + reach

    def mean(self, k) -> np.ndarray:
        """Posterior mean residual (vol) at k: the kernel sum times the taper, the sum from its
        Chebyshev interpolant on the live range (one per GP, so every caller gets the same
        function; the re-check asks for it at 3 x 2001 points per candidate) or, where that did not
        converge, summed directly."""
        u = self._u(k)
        taper = self._taper(u)
        out = np.zeros(u.shape)
        live = taper > LIVE_TAPER   # far beyond the quotes the mean is nil: skip the kernel there
        if self.cheb is None:
            a, b = self._live_range()
            cheb = _ChebMean(a, b, self.u, self.amp, self.length, self.alpha) if b > a else None
            self.cheb = cheb if cheb is not None and cheb.ok else False
        if self.cheb:
            out[live] = self.cheb(u[live]) * taper[live]
        else:
            out[live] = _kernel_mean(u[live], self.u, self.amp, self.length, self.alpha) * taper[live]
        return out

    def step_mean(self, k) -> np.ndarray:
        """Posterior mean of the put-call step (vol) at k: not part of the surface."""
        return _step_kernel(self._u(k), self.u, self.step) @ self.alpha

    def sd(self, k) -> np.ndarray:
        """Posterior sd of the smooth latent residual (vol) at k; back to the prior amplitude far
        away."""
        u = self._u(k)
        Ks = _kernel(self.u, u, self.amp, self.length)
        # Ks' K^-1 Ks = |L^-1 Ks|^2 (K = L L'): one triangular solve, not cho_solve's two
        v = solve_triangular(self.chol[0], Ks, lower=self.chol[1], trans=0 if self.chol[1] else 1,
                             overwrite_b=True, check_finite=False)
        var = self.amp**2 - np.einsum("ij,ij->j", v, v)
        return np.sqrt(np.maximum(var, 0.0))

    def loo(self, r: np.ndarray) -> np.ndarray:
        """Closed-form leave-one-out errors of the whole GP (smooth part and step) against the
        quotes (Rasmussen 5.12): the error of predicting each quote with its side's step."""
        # diag(K^-1) = column sums of (L^-1)^2: one triangular solve, not cho_solve's two
        inv = solve_triangular(self.chol[0], np.eye(self.u.size), lower=self.chol[1], trans=0 if self.chol[1] else 1,
                               overwrite_b=True, check_finite=False)
        return self.alpha / np.einsum("ij,ij->j", inv, inv)

    def with_taper(self, factor: float) -> "SliceGP":
        """The same GP whose mean fades beyond the quoted range over ``factor`` times the distance:
        the same mean inside the range (the quotes say nothing about how it fades outside)."""
        return SliceGP(**{**self.__dict__, "taper_u": self.taper_u * factor, "cheb": None})

    def with_length(self, factor: float, r_iv: np.ndarray) -> "SliceGP":
        """The same GP refitted with the length scale times ``factor`` (a smoother mean)."""
        c = _factor(self.u, self.noise_iv, self.amp, self.length * factor, self.step)
        return SliceGP(**{**self.__dict__, "alpha": cho_solve(c, r_iv), "chol": c, "length": self.length * factor,
                          "cheb": None})


def _factor(u, noise, amp, length, step=0.0):
    K = _kernel(u, u, amp, length) + _step_kernel(u, u, step) + np.diag(noise**2)
    return cho_factor(K, lower=True)


def log_marginal(slices: list, amp: float, length: float, noise_mult: float = 1.0, step: float = 0.0) -> float:
    """Sum over slices of the GP log marginal likelihood of residuals; slices: (u, r, noise)."""
    total = 0.0
    for u, r, noise in slices:
        c = _factor(u, noise * noise_mult, amp, length, step)
        total += -0.5 * r @ cho_solve(c, r) - np.log(np.diag(c[0])).sum()
    return float(total)


HYPER_RECHECK = 1e-6    # relative margin of choose_hyper_and_factors' exact re-evaluation (see there)


_TRI_ROWS = 64            # row block of _unit


def _unit(u: np.ndarray, length: float) -> np.ndarray:
    """``_kernel(u, u, 1.0, length)`` bit for bit, from the exponentials of its lower triangle
    only (row blocks up to the diagonal block), mirrored: the matrix is exactly symmetric, since
    u_j - u_i = -(u_i - u_j) in floating point and the rest of each element's operations keep
    that sign symmetry (1.0 * 1.0 * x == x). Half the exponentials, which were most of its time."""
    u = np.asarray(u, np.float64)
    n = u.shape[0]
    out = np.empty((n, n))
    for s in range(0, n, _TRI_ROWS):
        e = min(s + _TRI_ROWS, n)
        d = out[s:e, :e]
        np.subtract(u[s:e, None], u[None, :e], out=d)
        d /= length
        q = np.multiply(-0.5, d)
        q *= d
        np.exp(q, out=d)
    for s in range(0, n, _TRI_ROWS):
        e = min(s + _TRI_ROWS, n)
        out[s:e, e:] = out[e:, s:e].T
    return out


def _units(slices: list, length: float) -> list:
    """Per slice, the unit-amplitude kernel matrix at this length."""
    return [_unit(u, length) for u, _, _ in slices]


def _screen_units(slices: list, lengths) -> dict:
    """{length: per-slice unit kernels} for choose_hyper_and_factors' screening only: the longest length's
    exactly (``_units``), and a length half of one already there as that one's fourth power,
    exp(-d^2 / (2 (l / 2)^2)) = exp(-d^2 / (2 l^2))^4, two squarings instead of an exponential per
    element (a few 1e-14 relative off the exponentials, far inside choose_hyper_and_factors' re-check margin);
    any other length exactly."""
    out = {}
    for length in sorted(set(lengths), reverse=True):
        twice = 2.0 * length
        if twice in out:
            sq = [np.multiply(x, x) for x in out[twice]]
            out[length] = [np.multiply(x, x, out=x) for x in sq]
        else:
            out[length] = _units(slices, length)
    return out


def _exact_ll(slices: list, units: list, sides: list, amp: float, nz: float, step: float,
              factors: list | None = None) -> float:
    """The log marginal likelihood (less constants) of one grid point, assembled in place: the
    reference computation whose numbers choose_hyper_and_factors' choice rests on. factors: a list that
    receives each slice's Cholesky factor (the one fit_slice_gp would compute at this point)."""
    total = 0.0
    for (u, r, noise), unit, side in zip(slices, units, sides):
        K = np.multiply(amp * amp, unit)
        K += step * step * side
        K[np.diag_indices_from(K)] += (noise * nz) ** 2
        c = cho_factor(K, lower=True, overwrite_a=True, check_finite=False)
        if factors is not None:
            factors.append(c)
        total += -0.5 * r @ cho_solve(c, r, check_finite=False) - np.log(np.diag(c[0])).sum()
    return float(total)


def _fast_lls(slices: list, units: list, side_vecs: list, amps, nz: float, steps) -> dict:
    """{(amp, step): log marginal likelihood} at one length and noise multiplier, one Cholesky per
    amplitude: the step adds the rank-one step^2 s s' to K0 = amp^2 U + D, so by the matrix
    determinant lemma and Sherman-Morrison, with y = L0^-1 r and v = L0^-1 s,
    r' K^-1 r = y'y - step^2 (v'y)^2 / (1 + step^2 v'v) and log det K = log det K0 + log(1 + step^2 v'v).
    Equal to _exact_ll's values up to rounding (a few 1e-12 relative, measured)."""
    out = {}
    for amp in amps:
        tot = dict.fromkeys(steps, 0.0)
        for (u, r, noise), unit, s in zip(slices, units, side_vecs):
            K = np.multiply(amp * amp, unit)
            K[np.diag_indices_from(K)] += (noise * nz) ** 2
            L = cho_factor(K, lower=True, overwrite_a=True, check_finite=False)[0]
            yv = solve_triangular(L, np.column_stack([r, s]), lower=True, check_finite=False)
            y, v = yv[:, 0], yv[:, 1]
            yy, vv, vy = y @ y, v @ v, v @ y
            logdet = np.log(np.diag(L)).sum()
            for step in steps:
                s2 = step * step
                tot[step] += -0.5 * (yy - s2 * vy * vy / (1.0 + s2 * vv)) - logdet - 0.5 * np.log1p(s2 * vv)
        for step in steps:
            out[(amp, step)] = float(tot[step])
    return out


HYPER_MAX_QUOTES = 500  # an expiry with more quotes is thinned (evenly in u) for the choice only


def choose_hyper_and_factors(slices: list, has_spread: bool) -> tuple:
    """``_choose_hyper`` (below), with each expiry of more than HYPER_MAX_QUOTES quotes thinned to
    that many, evenly in u, for the choice: four hyper-parameters are set by a few hundred quotes,
    and every grid point costs a factorisation cubic in an expiry's count (a 1,448-quote expiry made
    the choice 3.8 s of a 7.5 s fit). The chosen point's factors are then computed on every quote.
    No shared chain has an expiry that large (SPX 2022-06-10: 400), so none of them moves."""
    big = [u.size > HYPER_MAX_QUOTES for u, _, _ in slices]
    if not any(big):
        return _choose_hyper(slices, has_spread)
    thin = [_thinned(sl) if b else sl for sl, b in zip(slices, big)]
    (amp, length, nz, step), factors = _choose_hyper(thin, has_spread)
    for i in np.flatnonzero(big):
        sl = slices[i]
        side = _side(sl[0])
        full = []
        _exact_ll([sl], _units([sl], length), [np.outer(side, side)], amp, nz, step, full)
        factors[i] = full[0]
    return (amp, length, nz, step), factors


def _thinned(sl: tuple) -> tuple:
    """HYPER_MAX_QUOTES of one expiry's (u, r, noise), evenly spaced in the order of u."""
    u = sl[0]
    keep = np.argsort(u, kind="stable")[np.round(np.linspace(0, u.size - 1, HYPER_MAX_QUOTES)).astype(int)]
    keep.sort()
    return tuple(np.asarray(x)[keep] for x in sl)


def _choose_hyper(slices: list, has_spread: bool) -> tuple:
    """(amp, length, noise multiplier, step) by marginal likelihood over the candidate grid (ties:
    the first in amp, length, noise, step order). Without bid-ask the slices' noise arrays are
    ones, scaled by the candidate noise.

    The choice is the one the exact per-grid-point Cholesky (_exact_ll) gives, at a third of its
    cost: every grid point is first scored by _fast_lls (one factorisation per amplitude, the step
    by a rank-one update), and only the points within HYPER_RECHECK (relative) of the best score,
    far above the two computations' difference, are scored again exactly and compared as before.
    Where the fast scores are not all finite, every point is scored exactly. The screening builds
    the kernel's exponentials once per length, the shorter lengths from the longer (_screen_units);
    the exact scores use the exact ones.

    Returns ((amp, length, noise multiplier, step), factors): factors are the slices' Cholesky
    factors at the chosen point, as fit_slice_gp would compute them (the same matrix, assembled
    by the same operations), so that it need not factorise again."""
    noises = (1.0,) if has_spread else NOISE_DEFAULTS_IV
    grid = [(amp, length, nz, step) for amp in AMPS_IV for length in LENGTHS_U for nz in noises for step in STEPS_IV]
    # the kernel's exponentials depend on the length only and the step's outer product on no
    # hyperparameter: computed once per length, not per grid point (per grid point they were most
    # of the svi_gp fit's time, measured)
    side_vecs = [_side(u) for u, _, _ in slices]
    sides = [np.outer(s, s) for s in side_vecs]
    screen = _screen_units(slices, LENGTHS_U)
    fast = {}
    for length in LENGTHS_U:
        for nz in noises:
            for (amp, step), ll in _fast_lls(slices, screen[length], side_vecs, AMPS_IV, nz, STEPS_IV).items():
                fast[(amp, length, nz, step)] = ll
    del screen
    values = np.array([fast[h] for h in grid])
    if np.isfinite(values).all():
        top = float(values.max())
        near = [h for h in grid if fast[h] >= top - HYPER_RECHECK * (1.0 + abs(top))]
    else:
        near = grid
    units = {}
    best, best_ll, best_factors = None, -np.inf, None
    for h in near:                      # grid order, so ties go to the first as before
        amp, length, nz, step = h
        if length not in units:
            units[length] = _units(slices, length)
        factors = []
        ll = _exact_ll(slices, units[length], sides, amp, nz, step, factors)
        if ll > best_ll:
            best, best_ll, best_factors = h, ll, factors
    return best, best_factors


def fit_slice_gp(k, r_iv, noise_iv, sqrt_theta: float, amp: float, length: float, cfg: GPConfig,
                 step: float = 0.0, chol=None) -> SliceGP:
    """The residual GP of one expiry: quotes at k with residuals r_iv and noise sd noise_iv (vol);
    chol: the Cholesky factor of this GP's covariance when the caller has it (choose_hyper_and_factors)."""
    u = warp(np.asarray(k, np.float64) / sqrt_theta, cfg.z_warp)
    c = _factor(u, noise_iv, amp, length, step) if chol is None else chol
    return SliceGP(u=u, alpha=cho_solve(c, r_iv), chol=c, amp=amp, length=length, z_warp=cfg.z_warp,
                   sqrt_theta=sqrt_theta, u_lo=float(u.min()), u_hi=float(u.max()), taper_u=cfg.taper_u,
                   noise_iv=noise_iv, step=step)
