"""The classical baselines' numerics: triangulated linear interpolation of w and per-slice raw-SVI fits.

Both work on total variance (..., 13, 17) with a boolean ``observed`` mask and are vectorised over
surfaces where the method allows (the triangulation depends on each surface's mask).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import QhullError, cKDTree

from core.engine.grid import K_GRID, K_MESH, N_K, N_T, T_MESH, W_FLOOR

_POINTS = np.column_stack([T_MESH.ravel(), K_MESH.ravel()])            # (221, 2) in (years, k)


def _line_fill(w_obs: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(13, 17) fill when every quote lies on one line: linear along its direction, flat across."""
    points, values = _POINTS[observed.ravel()], w_obs[observed]
    direction = points[-1] - points[0]
    direction = direction / np.linalg.norm(direction)
    along = points @ direction
    order = np.argsort(along)
    return np.interp(_POINTS @ direction, along[order], values[order]).reshape(N_T, N_K)


def interpolate_w(w_obs: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Triangulated linear interpolation of observed w in (T, k), nearest fill outside the hull.

    Distance for the nearest fill is Euclidean in raw (years, log-moneyness) units, as in the
    reference, and ties go the way scipy's k-d tree breaks them, so the baseline matches it cell
    for cell. The triangulation is per surface (the masks differ), hence the loop. A surface with
    fewer than four quotes is filled with its mean quote.
    """
    n = w_obs.shape[0]
    out = np.full((n, N_T, N_K), np.nan)
    for i in range(n):
        obs = observed[i].ravel()
        if obs.sum() < 4:
            out[i] = w_obs[i][observed[i]].mean() if obs.any() else 0.02
            continue
        try:
            lin = LinearNDInterpolator(_POINTS[obs], w_obs[i].ravel()[obs], fill_value=np.nan)
        except QhullError:
            out[i] = _line_fill(w_obs[i], observed[i])
            continue
        pred = lin(_POINTS)
        outside = np.isnan(pred)
        if outside.any():
            _, nearest = cKDTree(_POINTS[obs]).query(_POINTS[outside])
            pred[outside] = w_obs[i].ravel()[obs][nearest]
        out[i] = pred.reshape(N_T, N_K)
    return np.maximum(out, W_FLOOR)



@dataclass(frozen=True)
class SVIGrid:
    """The coarse raw-SVI shape library: (rho, m, sigma) on a grid; (a, b) solved in closed form."""

    rhos: tuple = tuple(np.linspace(-0.90, 0.40, 9))
    ms: tuple = tuple(np.linspace(-0.22, 0.22, 7))
    sigmas: tuple = (0.04, 0.07, 0.11, 0.17, 0.26, 0.40)
    b_bounds: tuple = (1e-6, 10.0)
    a_bounds: tuple = (1e-6, 5.0)
    min_quotes: int = 3        # fewer quotes on a slice: flat fill at their mean
    empty_fill_w: float = 0.02


def svi_shapes(grid: SVIGrid, k: np.ndarray = K_GRID) -> tuple:
    """Shape functions f(k) = rho (k - m) + sqrt((k - m)^2 + sigma^2): (S, nK) and params (S, 3)."""
    rho, m, sigma = (a.ravel() for a in np.meshgrid(grid.rhos, grid.ms, grid.sigmas, indexing="ij"))
    x = k[None, :] - m[:, None]
    return rho[:, None] * x + np.sqrt(x * x + sigma[:, None] ** 2), np.column_stack([rho, m, sigma])


_SVI_CHUNK = 512


def fit_svi_slices(w: np.ndarray, observed: np.ndarray, grid: SVIGrid = SVIGrid(),
                   return_params: bool = False):
    """Per-slice raw-SVI fit by shape search, vectorised over every slice of every surface.

    w, observed: (..., nK). For each slice and each library shape f, the least-squares (a, b) of
    w ~ a + b f on the observed nodes is closed form; b and a are clipped to their bounds and the
    shape with the smallest mean squared residual wins. Returns the fitted slices (..., nK) and,
    with ``return_params``, raw-SVI parameters (..., 5) as (a, b, rho, m, sigma) (NaN where a slice
    had too few quotes for a fit).
    """
    lead = w.shape[:-1]
    if np.prod(lead, dtype=int) > _SVI_CHUNK:
        # Chunks keep the (slices, shapes) work arrays in cache; several times faster on big batches.
        flat_w, flat_obs = w.reshape(-1, w.shape[-1]), observed.reshape(-1, w.shape[-1])
        parts = [fit_svi_slices(flat_w[i:i + _SVI_CHUNK], flat_obs[i:i + _SVI_CHUNK], grid, True)
                 for i in range(0, flat_w.shape[0], _SVI_CHUNK)]
        fitted = np.concatenate([p[0] for p in parts]).reshape(w.shape)
        params = np.concatenate([p[1] for p in parts]).reshape(lead + (5,))
        return (fitted, params) if return_params else fitted
    shapes, shape_params = svi_shapes(grid)
    obs = observed.astype(np.float64)
    y = np.where(observed, w, 0.0)
    n_obs = obs.sum(-1)
    safe_n = np.maximum(n_obs, 1.0)
    f_mean = (obs @ shapes.T) / safe_n[..., None]                          # (..., S)
    y_mean = y.sum(-1) / safe_n                                            # (...,)
    s_ff = (obs @ (shapes**2).T) - safe_n[..., None] * f_mean**2           # centred sums
    s_fy = (y @ shapes.T) - safe_n[..., None] * f_mean * y_mean[..., None]
    b = np.clip(s_fy / (s_ff + 1e-10), *grid.b_bounds)
    a = np.clip(y_mean[..., None] - b * f_mean, *grid.a_bounds)
    # Mean squared residual on observed nodes, expanded so no (..., S, nK) tensor is formed.
    s_ff_raw = obs @ (shapes**2).T
    s_fy_raw = y @ shapes.T
    s_yy = (y * y).sum(-1)[..., None]
    sse = (safe_n[..., None] * a * a + b * b * s_ff_raw + s_yy + 2 * a * b * f_mean * safe_n[..., None]
           - 2 * a * y_mean[..., None] * safe_n[..., None] - 2 * b * s_fy_raw) / safe_n[..., None]
    best = sse.argmin(-1)
    a_best = np.take_along_axis(a, best[..., None], -1)
    b_best = np.take_along_axis(b, best[..., None], -1)
    fitted = a_best + b_best * shapes[best]
    too_few = n_obs < grid.min_quotes
    flat = np.where(n_obs > 0, y_mean, grid.empty_fill_w)
    fitted = np.where(too_few[..., None], flat[..., None], fitted)
    fitted = np.maximum(fitted, W_FLOOR)
    if not return_params:
        return fitted
    params = np.concatenate([a_best, b_best, shape_params[best]], axis=-1)
    params[too_few] = np.nan
    return fitted, params
