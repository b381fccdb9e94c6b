"""No-arbitrage diagnostics and projections for total-variance surfaces on the model grid.

One dense subject, kept in one module on purpose: the checks and the projection share the price-row
algebra (the discrete butterfly conditions) and must stay consistent with each other.

Every function takes total variance ``w`` (dimensionless, ``iv**2 * T``) shaped (..., 13, 17):
maturities ``T_GRID`` along axis -2, log-moneyness ``K_GRID`` along axis -1, any leading batch.

Two kinds of static arbitrage are checked and removed:

* calendar: at fixed log-moneyness k, w must not decrease with T (``calendar_project``);
* butterfly: along each maturity slice, undiscounted forward-normalised call prices c(K)
  (forward 1, strike K = e^k) must be convex and decreasing in K with max(1 - K, 0) <= c <= 1.
  The project's diagnostic is the post's discrete Gatheral-Roper g(k) (``g_field``), whose sign
  is that of the risk-neutral density.

``butterfly_project`` is a projection, not a penalty: a slice that fails either the g
diagnostic or discrete price convexity is moved to the nearest slice, least squares in implied
vol, that passes both (finite-difference g and price convexity are two discretisations of one
density, and disagree near its zero level, so both are imposed). It is solved by sequential
quadratic programming on the slice's total vols: each step linearises the constraints and
solves the least-change QP exactly (an active-set method on a pentadiagonal dual, batched over
slices). Slices that pass already are returned bit-identical. ``project(w, "full")`` alternates
it with the calendar projection. Call prices are handled as log-price ratios, so the price
inequalities are decided correctly even where prices are 1e-300 or smaller.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import nnls
from scipy.special import erfc

from core.engine.grid import DK, K_GRID, N_K, N_T, T_GRID, W_FLOOR, w_to_iv

CALENDAR_TOL = 1e-8        # dw along T below -CALENDAR_TOL is a calendar violation
G_TOL = 1e-6               # g(k) below -G_TOL is a butterfly violation
_EDGE_TOL = 1e-12          # relative slack on the edge price rows (first/last call spread)
MODES = ("none", "calendar", "full")

# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _as_surfaces(w: np.ndarray) -> np.ndarray:
    """Validate total variance (..., 13, 17) and return it as float64 (no copy if already)."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim < 2 or w.shape[-2:] != (N_T, N_K):
        raise ValueError(f"expected total variance shaped (..., {N_T}, {N_K}), got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("total variance contains NaN or inf; repair the surface before projecting")
    return w


# ---------------------------------------------------------------------------------------------
# Calendar
# ---------------------------------------------------------------------------------------------


def calendar_project(w: np.ndarray) -> np.ndarray:
    """Calendar projection: floor at W_FLOOR, then cumulative max along T (axis -2).

    In: total variance (..., 13, 17). Out: same shape, non-decreasing in T at every k.
    The cumulative max is the smallest calendar-free surface above the input.
    """
    return _calendar(_as_surfaces(w))


def _calendar(w: np.ndarray) -> np.ndarray:
    """calendar_project of checked float64 surfaces (no input check: callers inside this module)."""
    return np.maximum.accumulate(np.maximum(w, W_FLOOR), axis=-2)


def calendar_violations(w: np.ndarray) -> np.ndarray:
    """Boolean (..., 12, 17): True where total variance drops from one maturity to the next."""
    w = np.asarray(w, dtype=np.float64)
    return np.diff(w, axis=-2) < -CALENDAR_TOL


def calendar_violation_rate(w: np.ndarray) -> float:
    """Fraction in [0, 1] of (T, T+1) edges, over all surfaces and k, with a calendar violation."""
    return float(np.mean(calendar_violations(w)))


# ---------------------------------------------------------------------------------------------
# Butterfly diagnostic (the post's discrete Gatheral-Roper g)
# ---------------------------------------------------------------------------------------------


def _g_formula(w_left: np.ndarray, w_mid: np.ndarray, w_right: np.ndarray, k: np.ndarray):
    """The post's discrete g at nodes with neighbours w_left, w_right; shared by every caller
    so that internal checks and g_field agree to the last bit."""
    wi = np.maximum(w_mid, 1e-6)
    wp = (w_right - w_left) / (2.0 * DK)
    wpp = (w_right - 2.0 * w_mid + w_left) / (DK * DK)
    return (1.0 - k * wp / (2.0 * wi)) ** 2 - (wp * wp / 4.0) * (1.0 / wi + 0.25) + 0.5 * wpp


def g_field(w: np.ndarray) -> np.ndarray:
    """Discrete Gatheral-Roper density function g(k) at the 15 interior k nodes.

    In: total variance (..., 13, 17). Out: g, dimensionless, (..., 13, 15); g < 0 means a
    negative risk-neutral density, i.e. butterfly arbitrage. Central differences in k, with w
    floored at 1e-6 where it divides: the post's formula.
    """
    w = np.asarray(w, dtype=np.float64)
    return _g_formula(w[..., :-2], w[..., 1:-1], w[..., 2:], K_GRID[1:-1])


def butterfly_violations(w: np.ndarray) -> np.ndarray:
    """Boolean (..., 13, 15): True where g(k) < -G_TOL."""
    return g_field(w) < -G_TOL


def butterfly_violation_rate(w: np.ndarray) -> float:
    """Fraction in [0, 1] of interior grid nodes with g(k) < -G_TOL."""
    return float(np.mean(butterfly_violations(w)))


def arbitrage_report(w: np.ndarray) -> dict:
    """Violation rates of a surface or batch: {"calendar_rate", "g_negative_rate"}, each in [0, 1]."""
    return {"calendar_rate": calendar_violation_rate(w), "g_negative_rate": butterfly_violation_rate(w)}


# ---------------------------------------------------------------------------------------------
# Black prices on the strike grid (forward 1, undiscounted), node-major arrays (17, N)
# ---------------------------------------------------------------------------------------------
# The butterfly machinery works on a stack of N slices laid out node-major, (17, N), so each
# node is one contiguous row and the short loops over nodes run on long vectors.
# Prices are out of the money (o: puts for k < 0, calls for k >= 0). Deep in a wing, or on a
# near-degenerate slice, o can be 1e-300 or far below, and the no-arbitrage inequalities must
# still be decided there, so prices only ever enter as RATIOS of neighbours, in the scaled form
#   o = K^[k<0] * 0.5 exp(-x1^2) * gap,   gap = erfcx(x1) - erfcx(x2),
#   x1 = (|k|/s - s/2) / sqrt2,  x2 = x1 + s/sqrt2   (the call at |k|, put-call symmetry),
# which never underflows and loses only about log10(x1 / s) digits to the difference.

_K = K_GRID[:, None]                          # (17, 1) log-moneyness
_STRIKE = np.exp(K_GRID)                      # K = F e^k with F = 1
_H = np.diff(_STRIKE)                         # strike spacings, (16,)
_SQRT_2PI = np.sqrt(2.0 * np.pi)
_S_FLOOR = np.sqrt(W_FLOOR)                   # total vol of the variance floor
_BLOCK = 2048                                 # slices per block in big batches (see _in_blocks)
_S_PRICE_CAP = 8.0                            # prices treat total vol above this (w > 64) as it:
# the interior rows are kappa (ratio - 1) with ratio a sum of price ratios near 1 and kappa growing
# like exp(s^2 / 8), so their roundoff grows the same way: ~1e-8 g units at s = 8 (under G_TOL), but
# O(1) by w ~ 210, where exactly flat, arbitrage-free smiles were rejected. Above the cap a slice's
# prices are those of the capped smile, and the finite-difference g rows still apply exactly.
_LOG_K_STEP = np.diff(np.minimum(_K, 0.0), axis=0)   # log of the put factor K between neighbours


def _erfcx(x: np.ndarray) -> np.ndarray:
    """Scaled complementary error function exp(x^2) erfc(x), for x > -26.

    erfc * exp is ~3x faster than scipy's erfcx and accurate to ~1e-13 up to x = 25; beyond,
    the asymptotic series (5 terms, error < 1e-13) takes over before erfc underflows.
    """
    if x.max() <= 25.0:
        return erfc(x) * np.exp(x * x)
    xc = np.minimum(x, 25.0)
    xf = np.maximum(x, 25.0)
    z = 1.0 / (2.0 * xf * xf)
    series = (1.0 - z * (1.0 - 3.0 * z * (1.0 - 5.0 * z * (1.0 - 7.0 * z)))) / (xf * np.sqrt(np.pi))
    return np.where(x > 25.0, series, erfc(xc) * np.exp(xc * xc))


# ---------------------------------------------------------------------------------------------
# No-arbitrage rows of one slice
# ---------------------------------------------------------------------------------------------
# 17 rows per slice, row i touching nodes (i-1, i, i+1); >= 0 means clean:
#   row 0      log(p1/p0) - (k1 - k0): put convexity through the virtual strike 0 (where p = 0),
#              the same inequality as (p1 - p0)/h0 >= p0/K0; so the first call-spread slope is
#              >= -1 and c <= 1;
#   rows 1-15  two discretisations of the density at node i, in g units, both required:
#              the finite-difference g (the project's diagnostic, g_field), and the price-implied
#              g: the call's second divided difference over the density of a flat smile at the
#              node's vol (real butterfly spreads). With c = o + max(1 - K, 0) the second
#              divided difference is 2/(h_{i-1} h_i) (chord_i - c_i), chord_i = alpha c_{i-1} +
#              beta c_{i+1}; the intrinsic part is linear except at K = 1 (node 8), so
#                g_price = kappa (ratio - 1),  ratio = chord_i / o_i  (from neighbour ratios),
#              kappa = o_i / flat density * 2/(h_{i-1} h_i) = 0.5 sqrt(2 pi) gap K^2 s 2/(h h');
#   row 16     log(o15/o16): the last call-spread slope is <= 0.
# Together: call prices convex and decreasing in K with max(1 - K, 0) <= c <= 1, and g >= 0.

_ALPHA = (_H[1:] / (_H[:-1] + _H[1:]))[:, None]      # chord weight on node i-1, (15, 1)
_BETA = 1.0 - _ALPHA                                  # chord weight on node i+1
_KAPPA_FACTOR = 0.5 * _SQRT_2PI * _STRIKE[1:-1, None] ** 2 * 2.0 / (_H[:-1] * _H[1:])[:, None]
_ATM = N_K // 2 - 1                                   # interior index of node 8, K = 1
_HINGE = float(_ALPHA[_ATM, 0] * (1.0 - _STRIKE[N_K // 2 - 1]))   # alpha (1 - K7) in chord 8


def _price_rows(s: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Price rows (17, N) of slices with total vol s (17, N), and what linearising needs."""
    s = np.minimum(s, _S_PRICE_CAP)
    x1 = (np.abs(_K) / s - 0.5 * s) / np.sqrt(2.0)
    gap = _erfcx(x1) - _erfcx(x1 + s / np.sqrt(2.0))
    # log(o_{j+1} / o_j) for the 16 neighbour pairs; clipped before exp, where it decides nothing
    log_step = x1[:-1] * x1[:-1] - x1[1:] * x1[1:] + _LOG_K_STEP + np.log(gap[1:] / gap[:-1])
    step = np.exp(np.clip(log_step, -600.0, 600.0))
    from_left = _ALPHA / step[:-1]                        # alpha o_{i-1} / o_i
    from_right = _BETA * step[1:]                         # beta o_{i+1} / o_i
    ratio = from_left + from_right
    ratio[_ATM] += _HINGE / (0.5 * np.exp(-x1[_ATM + 1] ** 2) * gap[_ATM + 1])
    kappa = _KAPPA_FACTOR * gap[1:-1] * s[1:-1]
    rows = np.empty_like(s)
    rows[1:-1] = kappa * (ratio - 1.0)
    rows[0] = log_step[0] - DK
    rows[-1] = -log_step[-1]
    return rows, (gap, ratio, from_left, from_right, kappa)


def _price_rows_linear(rows: np.ndarray, aux: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The price rows as the projection linearises them: values (17, N), d/ds (17, 3, N).

    Same zero level as _price_rows, but built on differences of log prices, nearly linear in s
    even where prices span hundreds of orders of magnitude across a slice: interior rows are
    kappa log(ratio) (g units near the boundary; kappa (ratio - 1) would saturate at -kappa
    far outside it, with a vanishing gradient), the edge rows are log already.
    """
    gap, ratio, from_left, from_right, kappa = aux
    dlog_ds = 2.0 / (_SQRT_2PI * gap)                    # vega / o = d log o / ds
    values = rows.copy()
    values[1:-1] = kappa * np.log(ratio)
    jac = np.empty((N_K, 3) + gap.shape[1:])
    jac[1:-1, 0] = kappa * from_left / ratio * dlog_ds[:-2]
    jac[1:-1, 1] = -kappa * dlog_ds[1:-1]
    jac[1:-1, 2] = kappa * from_right / ratio * dlog_ds[2:]
    jac[0, 0], jac[0, 1], jac[0, 2] = 0.0, -dlog_ds[0], dlog_ds[1]      # nodes (-, 0, 1)
    jac[-1, 0], jac[-1, 1], jac[-1, 2] = dlog_ds[-2], -dlog_ds[-1], 0.0  # nodes (15, 16, -)
    return values, jac


def _stencil_apply(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Rows (17, N) from per-row coefficients coef (17, 3, N) on nodes (i-1, i, i+1) of x."""
    out = coef[:, 1] * x
    out[1:] += coef[1:, 0] * x[:-1]
    out[:-1] += coef[:-1, 2] * x[1:]
    return out


def _stencil_transpose(coef: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """The adjoint of _stencil_apply: node values (17, N) = coef' mu."""
    out = coef[:, 1] * mu
    out[1:] += coef[:-1, 2] * mu[:-1]
    out[:-1] += coef[1:, 0] * mu[1:]
    return out


def _g_rows(w: np.ndarray) -> np.ndarray:
    """Finite-difference g (15, N) of slices w (17, N), node-major; bit-identical to g_field."""
    return _g_formula(w[:-2], w[1:-1], w[2:], _K[1:-1])


def _g_jac(s: np.ndarray) -> np.ndarray:
    """dg/ds on nodes (i-1, i, i+1) for slices of total vol s (17, N): (15, 3, N)."""
    w = s * s
    b = np.maximum(w[1:-1], 1e-6)
    k = _K[1:-1]
    wp = (w[2:] - w[:-2]) / (2.0 * DK)
    u = 1.0 - k * wp / (2.0 * b)
    dg_dwp = -(k / b) * u - 0.5 * wp * (1.0 / b + 0.25)
    dg_db = np.where(w[1:-1] > 1e-6, u * k * wp / (b * b) + wp * wp / (4.0 * b * b), 0.0)
    jac = np.empty((N_K - 2, 3) + s.shape[1:])               # (np.stack's numbers, without its overhead)
    jac[:, 0] = (1.0 / DK - dg_dwp) / (2.0 * DK)               # dg/dw at i-1, i, i+1 ...
    jac[:, 1] = dg_db - 1.0 / (DK * DK)
    jac[:, 2] = (1.0 / DK + dg_dwp) / (2.0 * DK)
    jac[:, 0] *= 2.0 * s[:-2]                                  # ... times dw/ds = 2 s
    jac[:, 1] *= 2.0 * s[1:-1]
    jac[:, 2] *= 2.0 * s[2:]
    return jac


def _passes(g: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(N,) True where every g (15, N) and interior price row is >= -G_TOL (g units) and the
    edge rows (log price ratios) are >= -_EDGE_TOL: the call prices never increase in K."""
    return ((g >= -G_TOL).all(axis=0) & (rows[1:-1] >= -G_TOL).all(axis=0)
            & (rows[0] >= -_EDGE_TOL) & (rows[-1] >= -_EDGE_TOL))


def _in_blocks(fn, x: np.ndarray) -> np.ndarray:
    """fn applied to blocks of _BLOCK slices (last axis) of x, concatenated back.

    Big batches run about twice as fast in blocks: the temporaries stay in cache, and the
    allocator does not hand back (and page-fault in again) megabytes per numpy operation.
    """
    if x.shape[-1] <= _BLOCK:
        return fn(x)
    return np.concatenate([fn(x[..., i:i + _BLOCK]) for i in range(0, x.shape[-1], _BLOCK)], axis=-1)


def _slices_pass(w: np.ndarray) -> np.ndarray:
    """(N,) True where slice w (17, N) passes the g diagnostic and every price row."""
    return _in_blocks(lambda x: _passes(_g_rows(x), _price_rows(np.sqrt(x))[0]), w)


# ---------------------------------------------------------------------------------------------
# The least-squares step: a small QP per slice, batched
# ---------------------------------------------------------------------------------------------
# min_y 1/2 |y|^2  s.t.  A y >= b,  y = change in total vol s per node (so |y| is an implied-vol
# distance within a slice), A (17 rows x 17 nodes) with 3-node row stencils. With unit-norm rows
# the dual  min_mu 1/2 mu'Q mu - b'mu, mu >= 0, Q = A A'  is pentadiagonal with unit diagonal,
# well scaled whatever the vegas. Block principal pivoting solves it exactly, each pivot one
# banded solve, typically 2-3 of them. Then y = A' mu is exactly 0 on every node that no
# binding row touches: the projection only moves what it must.

_Q_RIDGE = 1e-14          # keeps Q positive definite (rows with no movable node, dependent rows)
_DENSE_BELOW = 48         # batches smaller than this use LAPACK: less Python overhead
_PIVOTS = 12              # pivoting steps before the last slices go to _least_distance


def _raise_singular(err, flag):
    raise np.linalg.LinAlgError("Singular matrix")


try:   # np.linalg.solve's own kernel: its Python wrapper costs as much as the small solves themselves
    from numpy.linalg._umath_linalg import solve as _solve_gufunc
except ImportError:   # pragma: no cover - a numpy without it: the public function, same numbers
    _solve_gufunc = None


def _dense_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.linalg.solve(a, b)`` for float64 stacks a (..., n, n), b (..., n, m), without its wrapper:
    the same LAPACK gufunc under the same error state (LinAlgError on a singular matrix)."""
    if _solve_gufunc is None:
        return np.linalg.solve(a, b)
    with np.errstate(call=_raise_singular, invalid="call", over="ignore", divide="ignore", under="ignore"):
        return _solve_gufunc(a, b, signature="dd->d")


def _banded_solve(d0: np.ndarray, d1: np.ndarray, d2: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve symmetric positive-definite pentadiagonal systems, batched, node-major.

    In: diagonal d0 (n, N), off-diagonals d1 (n-1, N) and d2 (n-2, N), rhs (n, N). Out: (n, N).
    LDL' in n vectorised steps; for small batches a dense batched LAPACK solve is faster.
    """
    n, batch = d0.shape
    if batch < _DENSE_BELOW:
        mat = np.zeros((batch, n * n))
        mat[:, ::n + 1] = d0.T                             # flat positions of each band
        mat[:, 1:n * (n - 1):n + 1] = mat[:, n::n + 1] = d1.T
        mat[:, 2:n * (n - 2):n + 1] = mat[:, 2 * n::n + 1] = d2.T
        return _dense_solve(mat.reshape(batch, n, n), rhs.T[:, :, None])[:, :, 0].T
    diag = np.empty_like(d0)
    l1 = np.zeros_like(d0)
    l2 = np.zeros_like(d0)
    z = np.empty_like(rhs)
    for i in range(n):
        di, zi = d0[i].copy(), rhs[i].copy()
        if i >= 1:
            di -= l1[i - 1] * l1[i - 1] * diag[i - 1]
            zi -= l1[i - 1] * z[i - 1]
        if i >= 2:
            di -= l2[i - 2] * l2[i - 2] * diag[i - 2]
            zi -= l2[i - 2] * z[i - 2]
        diag[i], z[i] = di, zi
        if i + 1 < n:
            l1[i] = (d1[i] - l2[i - 1] * l1[i - 1] * diag[i - 1] if i >= 1 else d1[i]) / di
        if i + 2 < n:
            l2[i] = d2[i] / di
    x = z / diag
    for i in range(n - 2, -1, -1):
        x[i] -= l1[i] * x[i + 1]
        if i + 2 < n:
            x[i] -= l2[i] * x[i + 2]
    return x


def _least_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The same QP as _least_change, for a few slices, by Lawson & Hanson's least-distance
    programming: one NNLS (finite, robust to dependent rows) per slice. Out: y (17, N)."""
    y = np.zeros_like(b)
    rows = np.arange(N_K)
    for j in range(b.shape[1]):                  # only the rare slices the pivoting gave up on
        dense = np.zeros((N_K, N_K + 2))
        dense[rows, rows] = a[:, 0, j]           # padded columns: node i - 1 + t sits at i + t
        dense[rows, rows + 1] = a[:, 1, j]
        dense[rows, rows + 2] = a[:, 2, j]
        g = dense[:, 1:-1]
        e = np.vstack([g.T, b[None, :, j]])     # min |e u - f|, u >= 0, f = (0, ..., 0, 1)
        f = np.zeros(N_K + 1)
        f[-1] = 1.0
        u, _ = nnls(e, f, maxiter=50 * N_K)
        r = e @ u - f
        if r[-1] < -1e-12:                      # else infeasible: leave the slice where it is
            y[:, j] = -r[:-1] / r[-1]
    return y


def _least_change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimum-norm y (17, N) with rows a y >= b; a (17, 3, N) unit-norm row stencils, b (17, N).

    Block principal pivoting on the dual (Judice & Pires): swap every infeasible row between
    the free and the bound set while their count keeps falling, allow a few swaps that do not
    reduce it, then Murty's single swap of the last infeasible row. Vectorised over the slices
    still pivoting; the few (about 1%) still pivoting after _PIVOTS go to _least_distance.
    """
    q0 = np.sum(a * a, axis=1) + _Q_RIDGE
    q1 = a[:-1, 1] * a[1:, 0] + a[:-1, 2] * a[1:, 1]       # rows i, i+1 share nodes i, i+1
    q2 = a[:-2, 2] * a[2:, 0]                              # rows i, i+2 share node i+1
    mu = np.zeros_like(b)
    act = np.arange(b.shape[1])                            # slices still pivoting
    free = b > 0.0                                         # start from the violated rows
    best = np.full(b.shape[1], b.shape[0] + 1)             # fewest infeasible rows so far
    spare = np.full(b.shape[1], 3)                         # full swaps allowed without progress
    rows = np.arange(b.shape[0])[:, None]
    for _ in range(_PIVOTS):
        if act.size == b.shape[1]:                         # every slice still pivoting: no copies
            c0, c1, c2, cb = q0, q1, q2, b
        else:
            c0, c1, c2, cb = q0[:, act], q1[:, act], q2[:, act], b[:, act]
        m = _banded_solve(np.where(free, c0, 1.0), np.where(free[:-1] & free[1:], c1, 0.0),
                          np.where(free[:-2] & free[2:], c2, 0.0), np.where(free, cb, 0.0))
        mu[:, act] = m
        slack = c0 * m - cb                                # = a y - b: >= 0 at the optimum
        slack[:-1] += c1 * m[1:]
        slack[1:] += c1 * m[:-1]
        slack[:-2] += c2 * m[2:]
        slack[2:] += c2 * m[:-2]
        infeasible = np.where(free, m < 0.0, slack < 0.0)
        count = infeasible.sum(axis=0)
        going = count > 0
        if not going.all():
            act, free, infeasible, count = act[going], free[:, going], infeasible[:, going], count[going]
            best, spare = best[going], spare[going]
        if act.size == 0:
            break
        progress = count < best
        best = np.where(progress, count, best)
        spare = np.where(progress, 3, spare - 1)
        last = np.where(infeasible, rows, -1).max(axis=0)
        free = free ^ np.where(spare >= 0, infeasible, rows == last)
    y = _stencil_transpose(a, np.maximum(mu, 0.0))
    if act.size:
        y[:, act] = _least_distance(a[:, :, act], b[:, act])
    return y


# ---------------------------------------------------------------------------------------------
# Butterfly projection
# ---------------------------------------------------------------------------------------------
# Sequential QP on the total vols of the violating slices: linearise the rows at the current
# iterate, take the least-squares step from the INPUT (so the iterates approach its projection)
# onto the linearised rows, repeat until every row passes: one to three steps for most slices.
# The first passing iterate is within 0.2% (RMS) of the converged projection's distance.

_MARGIN = 1e-2            # target for the density rows, g units: covers the linearisation error
_EDGE_MARGIN = 1e-5       # target for the edge rows (log price ratios, near 0 for huge vols)
_TARGET = np.r_[_EDGE_MARGIN, np.full(N_K - 2, _MARGIN), _EDGE_MARGIN][:, None]
_SOFTMIN_G = 0.01         # smoothing of min(g row, price row), g units
_SQP_STEPS = 8
_TRUST = 0.5              # largest relative change in a node's total vol per step
_RESTARTS = (0.25, 0.5, 0.75, 1.0)   # starting points for stuck slices: blends towards flat


def _linearised_rows(s, y, g, rows, aux) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm row stencils a (17, 3, N) and targets b (17, N) for the next step.

    In: iterate s = s_in + y (17, N), its g (15, N), price rows (17, N) and their aux.
    The rows linearised at s: rows(s) + J (y_new - y) >= _TARGET, as a y_new >= b.
    """
    rows, jac = _price_rows_linear(rows, aux)
    # Both density rows of an interior node must hold: merge them into a smooth minimum
    # (<= the min, within _SOFTMIN_G * log 2 of it), whose gradient blends the two. A hard
    # min would flip between them and can make the iteration cycle.
    p = rows[1:-1]
    weight_g = 0.5 * (1.0 + np.tanh((p - g) / (2.0 * _SOFTMIN_G)))     # softmax weight on g
    rows[1:-1] = np.minimum(g, p) - _SOFTMIN_G * np.log1p(np.exp(-np.abs(g - p) / _SOFTMIN_G))
    jac[1:-1] = weight_g[:, None] * _g_jac(s) + (1.0 - weight_g[:, None]) * jac[1:-1]
    b = _TARGET - rows + _stencil_apply(jac, y)
    big = np.max(np.abs(jac), axis=1)                      # normalise without overflow
    big = np.where(big > 0.0, big, 1.0)
    jac /= big[:, None]
    norm = np.sqrt(np.sum(jac * jac, axis=1))
    movable = norm > 0.0
    norm = np.where(movable, norm, 1.0)
    return jac / norm[:, None], np.where(movable, b / (big * norm), 0.0)


def _sqp(w_in: np.ndarray, w_start: np.ndarray | None = None) -> np.ndarray:
    """Project slices w_in (17, N) onto the rows, iterating from w_start (default w_in).

    Out (17, N) total variance, NaN columns where _SQP_STEPS were not enough. Unmoved nodes keep
    their input bits, and every acceptance check runs on exactly the values returned, so an
    accepted slice passes _slices_pass.
    """
    s_in = np.sqrt(w_in)
    out = np.full_like(w_in, np.nan)
    todo = np.arange(w_in.shape[1])
    y = np.zeros_like(w_in) if w_start is None else np.sqrt(w_start) - s_in
    s, w = s_in, w_in
    for step in range(_SQP_STEPS + 1):
        if step or w_start is not None:
            s = np.maximum(s_in[:, todo] + y, _S_FLOOR)
            w = np.where(y == 0.0, w_in[:, todo], s * s)   # sqrt(s*s) == s: rows(s) are w's
        g = _g_rows(w)
        rows, aux = _price_rows(s)
        ok = _passes(g, rows)
        if step == 0 and w_start is None and ok.all():
            return w_in
        out[:, todo[ok]] = w[:, ok]
        if ok.all() or step == _SQP_STEPS:
            break
        bad = ~ok
        todo, s, y = todo[bad], s[:, bad], y[:, bad]
        aux = tuple(x[:, bad] for x in aux)
        step_y = _least_change(*_linearised_rows(s, y, g[:, bad], rows[:, bad], aux)) - y
        # trust region: no node's total vol moves by more than _TRUST of itself per step, so a
        # wild linearisation on a pathological slice cannot throw the iterate far away
        ratio = (np.abs(step_y) / s).max(axis=0)
        y = y + step_y * np.minimum(1.0, _TRUST / np.maximum(ratio, 1e-300))
    return out


def _restart_smoother(w: np.ndarray) -> tuple[np.ndarray, int]:
    """For slices w (17, N) the projection could not fix within _SQP_STEPS (a step-shaped or
    otherwise wild slice, where the first linearisations are poor): project w again, starting
    from blends towards the slice's flat level, least blend first. The flat slice itself
    (g = 1, flat-smile prices) passes, and is the last resort (measured: never needed on noisy
    SSVI or on the benchmark's interpolated surfaces). Returns (slices, number left flat)."""
    out = np.empty_like(w)
    flat = np.broadcast_to(np.mean(w, axis=0), w.shape)
    left = np.arange(w.shape[1])
    for lam in _RESTARTS:
        target, start = w[:, left], (1.0 - lam) * w[:, left] + lam * flat[:, left]
        res = flat[:, left] if lam == 1.0 else _sqp(target, start)
        done = ~np.isnan(res[0])
        out[:, left[done]] = res[:, done]
        left = left[~done]
        if left.size == 0:
            break
    return out, int(np.sum(np.all(out == flat, axis=0)))


def butterfly_project(w: np.ndarray, return_info: bool = False):
    """Remove butterfly arbitrage slice by slice, touching only the slices that have it.

    In: total variance (..., 13, 17), finite. Out: same shape, floored at W_FLOOR, every slice
    passing both g >= -G_TOL (the diagnostic) and the price rows (call prices convex and
    decreasing in strike, within bounds). With return_info=True also returns counts
    {"slices", "projected", "restarted", "flattened"}.

    A slice that passes already is returned bit-identical, so the map is idempotent. A failing
    slice is moved to the nearest passing slice in implied vol, least squares, by sequential
    QP; only nodes next to a binding row move. A slice the projection cannot fix within
    _SQP_STEPS is projected again from smoother starting points (_restart_smoother); the last
    resort, its flat level, always passes, so the output always passes.
    """
    w = np.maximum(_as_surfaces(w), W_FLOOR)
    w_nodes = np.ascontiguousarray(w.reshape(-1, N_K).T)   # node-major (17, N)
    out = _in_blocks(_sqp, w_nodes)                        # passing slices come back as they are
    stuck = np.isnan(out[0])
    n_flat = 0
    if stuck.any():
        out[:, stuck], n_flat = _restart_smoother(w_nodes[:, stuck])
    result = np.ascontiguousarray(out.T).reshape(w.shape)
    if return_info:
        moved = int(np.any(out != w_nodes, axis=0).sum())
        return result, {"slices": w_nodes.shape[1], "projected": moved,
                        "restarted": int(stuck.sum()), "flattened": n_flat}
    return result


# ---------------------------------------------------------------------------------------------
# Both together
# ---------------------------------------------------------------------------------------------

_FULL_ROUNDS = 4          # butterfly/calendar alternations before the surface-level fallback


def _surfaces_pass(w: np.ndarray) -> np.ndarray:
    """(n,) for surfaces w (n, 13, 17): no calendar violation and every slice passing."""
    slices_ok = _slices_pass(np.ascontiguousarray(w.reshape(-1, N_K).T)).reshape(w.shape[:-1])
    return np.all(slices_ok, axis=-1) & ~np.any(calendar_violations(w), axis=(-2, -1))


def surfaces_pass(w: np.ndarray) -> np.ndarray:
    """(n,) True where surface w (n, 13, 17) has no calendar violation and every slice passes the
    butterfly checks (the g diagnostic and the price rows)."""
    return _surfaces_pass(np.asarray(w, dtype=np.float64))


def _full_project(w: np.ndarray) -> np.ndarray:
    """Calendar- and butterfly-free surfaces (..., 13, 17) from finite total variance."""
    out = _calendar(w).reshape(-1, N_T, N_K)          # w: checked by project()
    todo = np.arange(out.shape[0])
    for _ in range(_FULL_ROUNDS):
        # The cummax keeps price convexity (a pointwise max of convex, decreasing call curves is
        # convex and decreasing) but not always the finite-difference g, and the butterfly step
        # may lower a node below the maturity before it: alternate until both hold. Only the
        # slices the cummax moved need checking again; its output is calendar-free.
        before = butterfly_project(out[todo])
        after = _calendar(before)
        out[todo] = after
        moved = np.any(after != before, axis=-1)           # (n, 13)
        ok = np.ones(todo.size, dtype=bool)
        if np.any(moved):
            slices_ok = np.ones(moved.shape, dtype=bool)
            slices_ok[moved] = _slices_pass(np.ascontiguousarray(after[moved].T))
            ok = np.all(slices_ok, axis=-1)
        todo = todo[~ok]
        if todo.size == 0:
            return out.reshape(w.shape)
    # Pathological surfaces only: blend towards per-maturity flat levels. Those levels are
    # non-decreasing in T (means of a calendar-free surface), so every blend is calendar-free,
    # and the flat surface itself (g = 1 everywhere, flat-smile prices) passes.
    stuck = out[todo]
    flat = np.broadcast_to(np.mean(stuck, axis=-1, keepdims=True), stuck.shape)
    left = np.ones(todo.size, dtype=bool)
    for lam in _RESTARTS:
        blend = flat.copy() if lam == 1.0 else (1.0 - lam) * stuck + lam * flat
        take = left & (_surfaces_pass(blend) | (lam == 1.0))
        stuck[take] = blend[take]
        left &= ~take
        if not np.any(left):
            break
    out[todo] = stuck
    return out.reshape(w.shape)


def calendar_exact_iv(w: np.ndarray) -> np.ndarray:
    """Implied vol (..., 13, 17) of a calendar-free total variance w, nudged up by an ulp where the
    w -> iv -> w round trip would otherwise lose the order: ``iv**2 * T`` is non-decreasing along T
    exactly in float64, the units the user receives (the plain round trip can lose an ulp or two)."""
    iv = w_to_iv(w)
    w_back = iv**2 * T_GRID[:, None]                      # the same products as the loop's, all at once
    low = np.any(w_back[..., 1:, :] < w_back[..., :-1, :], axis=tuple(range(iv.ndim - 2)) + (-1,))
    if not low.any():                                     # the loop below would change nothing
        return iv
    dropped, nudged = low, False
    for t in range(1 + int(np.argmax(dropped)), N_T):     # maturities before the first drop stay as they are
        if not (nudged or dropped[t - 1]):                # iv[t - 1] and iv[t] as above: no drop here
            continue
        nudged = False
        before = iv[..., t - 1, :] ** 2 * T_GRID[t - 1]
        for _ in range(64):   # a few ulps suffice (iv^2 T rounds twice); the bound only guards the loop
            low = iv[..., t, :] ** 2 * T_GRID[t] < before
            if not low.any():
                break
            iv[..., t, :] = np.where(low, np.nextafter(iv[..., t, :], np.inf), iv[..., t, :])
            nudged = True
    return iv


def project(w: np.ndarray, mode: str = "calendar") -> np.ndarray:
    """Project total variance (..., 13, 17) onto a no-arbitrage set; same shape out.

    mode "none": unchanged (float64 copy); "calendar": calendar_project; "full": no calendar
    violation and no butterfly violation (g >= -G_TOL, call prices convex and decreasing in
    strike) on every surface. Unknown mode -> ValueError.
    """
    if mode not in MODES:
        raise ValueError(f"unknown arbitrage projection mode {mode!r}; choose one of {', '.join(MODES)}")
    w = _as_surfaces(w)
    if mode == "none":
        return w.copy()
    if mode == "calendar":
        return calendar_project(w)
    return _full_project(w)
