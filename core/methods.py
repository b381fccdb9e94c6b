"""Repair methods behind one interface.

A repairer holds its configuration, and ``fit(w_obs, observed)`` maps observed total variance
(n, 13, 17) (any value where ``observed`` is False) to a raw repaired total variance (n, 13, 17)
and, for methods that have one, a predictive sd in implied-vol units. Projections onto the
no-arbitrage set happen afterwards (core.arbitrage), so every method is scored the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import QhullError, cKDTree
from scipy.stats import norm

from core.grid import IV_FLOOR, K_GRID, K_MESH, N_K, N_T, T_MESH, W_FLOOR, iv_to_w, w_to_iv
from core.model import WEIGHTS_DIR, load_cnn, predict, sd_w_to_iv


class Repairer:
    """Base class: a name, a constructor holding configuration, one ``fit`` call."""

    name = "base"
    has_sd = False
    default_arbitrage = "calendar"   # the projection core.repair applies unless told otherwise

    def fit(self, w_obs: np.ndarray, observed: np.ndarray) -> tuple:
        """(n, 13, 17) observed w and boolean mask -> (raw repaired w, sd in iv units or None)."""
        raise NotImplementedError

    def adjust_sd(self, sd: np.ndarray | None, iv_raw: np.ndarray, iv_out: np.ndarray) -> np.ndarray | None:
        """The sd to report once the raw repair ``iv_raw`` has been projected to ``iv_out``."""
        return sd

    def half_width(self, sd: np.ndarray, level: float) -> np.ndarray:
        """Half-width of the central ``level`` interval: Gaussian z * sd unless a method calibrates."""
        return norm.ppf(0.5 + level / 2.0) * np.asarray(sd)


# --------------------------------------------------------------------------- interpolation

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


class InterpRepairer(Repairer):
    """Calendar-projected triangulated linear interpolation (the post's first baseline)."""

    name = "interp"

    def fit(self, w_obs, observed):
        return interpolate_w(w_obs, observed), None


# --------------------------------------------------------------------------- per-slice SVI

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


class SVIRepairer(Repairer):
    """Per-slice raw-SVI by coarse shape search with closed-form (a, b) (the post's second baseline)."""

    name = "svi"

    def __init__(self, grid: SVIGrid = SVIGrid()):
        self.grid = grid

    def fit(self, w_obs, observed):
        return fit_svi_slices(w_obs, observed, self.grid), None


class InterpSVIRepairer(Repairer):
    """Interpolate, then SVI-project every slice of the full surface (the classical pipeline).

    Every node of the interpolated surface counts as quoted in the slice fit, so the SVI shape
    search smooths interpolation's kinks and extrapolates its flat nearest-neighbour wings.
    """

    name = "interp_svi"

    def __init__(self, grid: SVIGrid = SVIGrid()):
        self.grid = grid

    def fit(self, w_obs, observed):
        w_interp = np.maximum.accumulate(interpolate_w(w_obs, observed), axis=-2)  # calendar first, as the post
        return fit_svi_slices(w_interp, np.ones(w_interp.shape, dtype=bool), self.grid), None


# --------------------------------------------------------------------------- the post's CNN

@lru_cache(maxsize=4)
def _cached_cnn(path: str):
    return load_cnn(Path(path))


class CNNRepairer(Repairer):
    """The post's mask-conditional CNN; sd from its log-variance head by the delta method."""

    name = "cnn"
    has_sd = True

    def __init__(self, weights: str | Path = WEIGHTS_DIR / "cnn.pt"):
        self.weights = Path(weights)

    @property
    def model(self):
        return _cached_cnn(str(self.weights.resolve()))

    def fit(self, w_obs, observed):
        w_mean, sd_w = predict(self.model, w_obs, observed)
        return w_mean, sd_w_to_iv(sd_w, w_mean)


# --------------------------------------------------------------------------- the team's estimator

@lru_cache(maxsize=4)
def _cached_best(path: str):
    from core import best

    return best.load(Path(path))


class BestRepairer(Repairer):
    """Bayesian repair with a learned mixture-of-Gaussians prior (core.best).

    sd is the posterior sd; intervals are conformally calibrated (``half_width``); each quote gets a
    leave-one-out stale score. Default projection: "full" (butterfly + calendar).
    """

    name = "best"
    has_sd = True
    default_arbitrage = "full"

    def __init__(self, weights: str | Path = WEIGHTS_DIR / "best.pt", noise_bp: float | None = None):
        self.weights = Path(weights)
        self.noise_bp = noise_bp

    @property
    def prior(self):
        prior = _cached_best(str(self.weights.resolve()))[0]
        return prior if self.noise_bp is None else prior.with_noise(self.noise_bp)

    @property
    def calibrator(self):
        return _cached_best(str(self.weights.resolve()))[1]

    def _run(self, w_obs, observed):
        iv_obs = np.where(observed, w_to_iv(np.where(observed, w_obs, 1.0)), 0.0)
        return self.prior.run(iv_obs, observed)

    def fit(self, w_obs, observed):
        out = self._run(w_obs, observed)
        return iv_to_w(np.maximum(out["mean"], IV_FLOOR)), out["sd"]

    def adjust_sd(self, sd, iv_raw, iv_out):
        from core.best import projected_sd

        return projected_sd(sd, iv_raw, iv_out)

    def stale_score(self, w_obs, observed):
        """Per quote, the log likelihood ratio of 'stale' vs 'noise' (higher = more suspect); 0 where missing."""
        return self._run(w_obs, observed)["stale"]

    def half_width(self, sd, level):
        calibrator = self.calibrator
        if calibrator is None or float(level) not in calibrator.quantiles[next(iter(calibrator.quantiles))]:
            return super().half_width(sd, level)
        return calibrator.half_width(sd, level)



# --------------------------------------------------------------------------- the generative baseline

@lru_cache(maxsize=4)
def _cached_vae(path: str):
    from core.vae import load_vae

    return load_vae(Path(path))


class VAERepairer(Repairer):
    """Mask-conditional VAE (core.vae): decoder mean at the prior mean of z; sd from z draws and
    the decoder variance, scaled on its validation set."""

    name = "vae"
    has_sd = True

    def __init__(self, weights: str | Path = WEIGHTS_DIR / "vae.pt"):
        self.weights = Path(weights)

    @property
    def model(self):
        return _cached_vae(str(self.weights.resolve()))

    def fit(self, w_obs, observed):
        from core.vae import predict as predict_vae

        model, sd_scale = self.model
        iv_obs = np.sqrt(np.maximum(w_obs, W_FLOOR) / T_MESH)
        iv_mean, sd_iv = predict_vae(model, iv_obs, observed, sd_scale)
        return np.maximum(iv_mean**2 * T_MESH, W_FLOOR), sd_iv


REPAIRERS = {cls.name: cls for cls in (InterpRepairer, SVIRepairer, InterpSVIRepairer, CNNRepairer, VAERepairer,
                                      BestRepairer)}
METHODS = tuple(REPAIRERS)


def get_repairer(method: str, **config) -> Repairer:
    """A repairer by name; ValueError naming the choices for an unknown one."""
    if method not in REPAIRERS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return REPAIRERS[method](**config)
