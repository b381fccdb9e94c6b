"""Slow, independent Heston references for the tests (scipy quad, one price at a time).

- ``gatheral_cf``: the characteristic function E[exp(i u X_T)] written in Gatheral's notation
  (The Volatility Surface, ch. 2), coded separately from core.engine.heston's z-form.
- ``riccati_log_mgf``: ln E[exp(z X_T)] by integrating the Riccati ODEs numerically -- no closed
  form, so no branch choice to get wrong.
- ``lewis_call_price``: Lewis (2001) formula on the Im u = -1/2 contour with adaptive quad.
  Absolute accuracy ~1e-10; useless for 1e-20 wing prices (that is why core.engine.heston shifts).
- ``saddle_otm_price``: the OTM price with a per-strike saddle-point contour and adaptive quad;
  relative accuracy ~1e-13 even for 1e-30 prices.  Agrees with 40-digit mpmath to ~1e-15.

Run as a script to measure core.engine.heston's implied-vol error on random surfaces:
    python -m tests.engine.heston_reference --surfaces 20 --seed 1
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy.integrate import IntegrationWarning, quad, solve_ivp
from scipy.optimize import minimize_scalar


def gatheral_cf(u, T, v0, theta, kappa, xi, rho):
    """E[exp(i u X_T)], X_T = ln(F_T/F), complex u (scalar or array)."""
    u = np.asarray(u, dtype=complex)
    alpha = -0.5 * u * u - 0.5j * u
    beta = kappa - 1j * rho * xi * u
    gamma = 0.5 * xi * xi
    d = np.sqrt(beta * beta - 4.0 * alpha * gamma)
    r_minus = (beta - d) / (xi * xi)
    r_plus = (beta + d) / (xi * xi)
    g = r_minus / r_plus
    ed = np.exp(-d * T)
    big_d = r_minus * (1.0 - ed) / (1.0 - g * ed)
    big_c = kappa * (r_minus * T - 2.0 / (xi * xi) * np.log((1.0 - g * ed) / (1.0 - g)))
    return np.exp(big_c * theta + big_d * v0)


def riccati_log_mgf(z, T, v0, theta, kappa, xi, rho):
    """ln E[exp(z X_T)] from dD/dt = (z^2 - z)/2 - (kappa - rho xi z) D + xi^2 D^2 / 2,
    dC/dt = kappa theta D, C(0) = D(0) = 0; the imaginary part is the continuous branch."""
    z = complex(z)

    def rhs(_, y):
        big_d = y[0] + 1j * y[1]
        dd = 0.5 * (z * z - z) - (kappa - rho * xi * z) * big_d + 0.5 * xi * xi * big_d * big_d
        dc = kappa * theta * big_d
        return [dd.real, dd.imag, dc.real, dc.imag]

    sol = solve_ivp(rhs, (0.0, T), [0.0, 0.0, 0.0, 0.0], method="DOP853", rtol=1e-12, atol=1e-14)
    if not sol.success:
        return complex(np.inf)
    d_re, d_im, c_re, c_im = sol.y[:, -1]
    return complex(c_re + v0 * d_re, c_im + v0 * d_im)


def lewis_call_price(k, T, params):
    """Undiscounted call, forward 1, strike exp(k): 1 - sqrt(K)/pi int Re[e^{-iuk} phi(u - i/2)]/(u^2 + 1/4)."""
    def f(u):
        return (np.exp(-1j * u * k) * gatheral_cf(u - 0.5j, T, *params)).real / (u * u + 0.25)

    total = 0.0
    edges = [0.0, 2.0, 10.0, 50.0, 200.0, 1000.0, 5000.0, np.inf]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        for a, b in zip(edges[:-1], edges[1:]):
            total += quad(f, a, b, limit=500, epsabs=1e-13, epsrel=1e-12)[0]
    return 1.0 - np.exp(0.5 * k) / np.pi * total


def explosion_time(w, params):
    """Time at which E[exp(w X_t)] becomes infinite (Andersen & Piterbarg 2007), real w."""
    v0, theta, kappa, xi, rho = params
    b = kappa - rho * xi * w
    q = b * b - xi * xi * w * (w - 1.0)
    if q >= 0.0:
        d = np.sqrt(q)
        if b >= -d:
            return np.inf
        return np.log((-b + d) / (-b - d)) / d
    delta = np.sqrt(-q)
    return 2.0 / delta * (0.5 * np.pi + np.arctan(b / delta))


def _moment_bound(side, T, params):
    """Edge of the finite-moment strip on one side at maturity T, by bisection in w."""
    lo, hi = (1.0, 1.0 + 1e4) if side > 0 else (0.0, -1e4)
    if explosion_time(hi, params) > T:
        return hi
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if explosion_time(mid, params) > T else (lo, mid)
    return lo


def saddle_otm_price(k, T, params):
    """OTM price (call if k >= 0, put if k < 0), forward 1, on the strike's own saddle contour."""
    side = 1 if k >= 0 else -1
    edge = _moment_bound(side, T, params)

    def log_mgf(w):
        return np.log(gatheral_cf(-1j * w, T, *params).real)

    def big_l(w):
        return log_mgf(w) - (w - 1.0) * k - np.log(w * (w - 1.0))

    a, b = (1.0 + 1e-9, 1.0 + 0.995 * (edge - 1.0)) if side > 0 else (0.995 * edge, -1e-9)
    res = minimize_scalar(big_l, bounds=(a, b), method="bounded",
                          options={"xatol": 1e-10 * max(1.0, abs(b))})
    w, l_min = res.x, res.fun

    def f(v):
        z = w + 1j * v
        val = np.exp(-(z - 1.0) * k - l_min) * gatheral_cf(-1j * z, T, *params) / (z * (z - 1.0))
        return val.real

    edges = np.concatenate([[0.0], np.geomspace(1e-2, 1e5, 50)])
    total = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        for lo, hi in zip(edges[:-1], edges[1:]):
            total += quad(f, lo, hi, limit=400, epsabs=1e-15, epsrel=1e-13)[0]
    return total * np.exp(l_min) / np.pi


def _main(argv=None):
    from core.engine.black import implied_vol
    from core.engine.grid import K_GRID, T_GRID
    from core.engine.heston import PARAM_NAMES, draw_heston_params, heston_implied_vol

    parser = argparse.ArgumentParser(description="core.engine.heston implied vols vs the saddle reference")
    parser.add_argument("--surfaces", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    params = draw_heston_params(args.surfaces, np.random.default_rng(args.seed))
    P = np.column_stack([params[name] for name in PARAM_NAMES])
    t0 = time.perf_counter()
    ref = np.empty((args.surfaces, T_GRID.size, K_GRID.size))
    for s in range(args.surfaces):
        for i, T in enumerate(T_GRID):
            for j, k in enumerate(K_GRID):
                price = saddle_otm_price(k, T, tuple(P[s]))
                ref[s, i, j] = implied_vol(price, 1.0, np.exp(k), T, k >= 0)
    t_ref = time.perf_counter() - t0
    iv = heston_implied_vol(P, T_GRID, K_GRID)
    err = np.abs(iv - ref)
    print(f"{args.surfaces} surfaces (seed {args.seed}), reference took {t_ref:.0f} s")
    print(f"max |iv - ref| = {np.nanmax(err):.2e}; NaN in reference: {int(np.isnan(ref).sum())}")
    print("max by maturity:", " ".join(f"{x:.0e}" for x in np.nanmax(err, axis=(0, 2))))


if __name__ == "__main__":
    _main()
