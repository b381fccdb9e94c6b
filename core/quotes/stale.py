"""Stale / bad quote scores and flags.

Score. A quote is compared with a repair that never saw it: the quotes are gridded again
without it (exactly, ``core.quotes.gridding.leave_one_out``: an on-grid quote's node goes missing, a
quote among many at a node just leaves the average), the method is re-run on that grid, and the
repaired surface is read at the quote's (T, k). The residual quote - leave-out repair, in vol,
is divided by the benchmark's quote-noise sd at (T, k) (18 bp times the wing/front profile), and
then robustly standardised over the surface's quotes (minus the median, over 1.4826 MAD), so the
score reads as "how many typical misfits away". Quotes whose removal leaves fewer than four
nodes get NaN. The leave-out repair is interpolation (``DETECTOR``) whatever method repairs the
surface: on the calibration chains it separates stale quotes better than the svi and cnn
leave-outs, whose residuals are dominated by model misfit (``python -m core.cli stale --calibrate``
prints each), and the flags then do not change with the method. A method with its own stale score
(``has_stale_score``) is used instead, per quote: the quote alone on its main node of its
leave-one-out grid (``_transplant_scores``); its raw score is the flag's score (for ``best``, a log
likelihood ratio). Reading the node's score for every quote on it instead separates far worse on
the chains: each quote of a dense node would share one score.

Flag. ``score > threshold``, with the threshold per method read from
``results/stale_calibration.json``: the score's 98th percentile over the clean quotes of synthetic
listed chains (our generators, 5 % stale quotes, seeds disjoint from every benchmark seed), so a
2 % false-flag rate there. Chains, not grid masks, because the flag is applied to quote files.
``python -m core.cli stale --calibrate`` writes it and ``--auc`` measures the AUC on the
benchmark's stale-quote test (both in core.evaluation.stale_study, which measures these scores).
"""
from __future__ import annotations

import json

import numpy as np

from core import pipeline
from core.engine.grid import N_K, N_T, T_GRID, iv_to_w, w_to_iv
from core.engine.grid_read import iv_at
from core.quotes.gridding import Gridded, leave_one_out
from core.settings import RESULTS_DIR
from core.synth.chains import noise_sd_at
from core.synth.missingness import noise_sd_iv

CALIBRATION_JSON = RESULTS_DIR / "stale_calibration.json"
TARGET_FALSE_FLAG_RATE = 0.02
DETECTOR = "interp"              # the leave-out repair behind the score, for methods without stale_score
DEFAULT_THRESHOLD = 3.5          # used for a method the calibration file does not list
MIN_NODES = 4
_MAD_FLOOR = 1e-6

def robust_z(x: np.ndarray, axis=None) -> np.ndarray:
    """(x - median) / (1.4826 MAD), NaNs ignored; the scale is floored so a perfect fit stays finite."""
    import warnings

    with warnings.catch_warnings():      # an all-NaN surface stays all NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(x, axis=axis, keepdims=True)
        mad = 1.4826 * np.nanmedian(np.abs(x - med), axis=axis, keepdims=True)
    return (x - med) / np.maximum(mad, _MAD_FLOOR)


_BATCH = 2048   # surfaces per predict call in leave-out stacks: keeps memory flat
# Above this many used quotes the leave-out score (one refit per quote: 4 ms each for interp, so
# minutes for 50,000 quotes) gives way to the in-sample score, whose cost is one read of the
# repaired surface. In a chain that large a quote is one of many on its nodes, so removing it
# barely moves the grid and the in-sample residual is close to the leave-out one. The sample
# chains and the calibration chains stay below it, so their scores (and the thresholds) are exact.
EXACT_MAX_QUOTES = 2_000
IN_SAMPLE = "in-sample"


def in_sample_scores(T: np.ndarray, k: np.ndarray, iv: np.ndarray, w_repaired: np.ndarray) -> dict:
    """Stale scores of many quotes in linear time: each quote's residual against the repaired
    (13, 17) w grid, over the quote-noise sd at (T, k), robustly standardised (as ``quote_scores``)."""
    iv_fit = iv_at(w_repaired, T, k)
    residual = iv - iv_fit
    score = np.abs(robust_z(residual / noise_sd_at(T, k)))
    return {"score": score, "residual_loo": np.full(T.size, np.nan), "iv_loo": np.full(T.size, np.nan),
            "basis": IN_SAMPLE}


def _leave_out_w(repairer, w_obs: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Calendar-projected repairs of a stack of leave-out surfaces (NaN surfaces stay NaN)."""
    return pipeline.run(repairer, w_obs, observed, mode="calendar", batch=_BATCH).w


# --------------------------------------------------------------------------- on the grid

def loo_node_residuals(repairer, w_obs: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Leave-one-node-out residuals in vol, (n, 13, 17): quote iv - iv of the repair without it.

    For each surface and each observed node, the method is re-run with that node hidden. NaN
    on missing nodes, and where hiding leaves fewer than MIN_NODES quotes.
    """
    n = w_obs.shape[0]
    surf, ti, kj = np.nonzero(observed)
    masks = observed[surf].copy()
    masks[np.arange(surf.size), ti, kj] = False
    w_fit = _leave_out_w(repairer, np.where(masks, w_obs[surf], 0.0), masks)
    iv_fit = w_to_iv(w_fit)[np.arange(surf.size), ti, kj]
    iv_quote = w_to_iv(w_obs[surf, ti, kj], T_GRID[ti])
    out = np.full((n, N_T, N_K), np.nan)
    ok = masks.sum(axis=(1, 2)) >= MIN_NODES
    out[surf[ok], ti[ok], kj[ok]] = (iv_quote - iv_fit)[ok]
    return out


def node_scores(repairer, w_obs: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Stale scores (n, 13, 17) on grid quotes (NaN on missing nodes); see the module doc."""
    if repairer.has_stale_score:     # the method's own score, as the quote path uses it
        return np.where(observed, pipeline.run(repairer, w_obs, observed).own_stale, np.nan)
    raw = loo_node_residuals(repairer, w_obs, observed) / noise_sd_iv()
    return np.abs(robust_z(raw, axis=(1, 2)))


# --------------------------------------------------------------------------- on quotes

def quote_scores(repairer, gridded: Gridded, T: np.ndarray, k: np.ndarray, iv: np.ndarray,
                 w_repaired: np.ndarray | None = None) -> dict:
    """Stale scores of quotes (1-D T years, k, iv; the quotes ``gridded`` was built from).

    Returns {"score", "residual_loo" (vol), "iv_loo", "basis"}; score NaN where it cannot be
    formed. ``basis`` is "leave-out" or "method" (the repairer's own stale_score, which needs the
    method's repaired (13, 17) w grid ``w_repaired``; it is computed when not given).
    """
    T, k, iv = (np.asarray(a, dtype=np.float64).ravel() for a in (T, k, iv))
    n = T.size
    if repairer.has_stale_score:
        if w_repaired is None:
            w_grid, observed = pipeline.w_observed(gridded.iv_obs)
            w_repaired = _leave_out_w(repairer, w_grid[None], observed[None])[0]
        return {"score": _transplant_scores(repairer, gridded, T, k, iv, w_repaired),
                "residual_loo": np.full(n, np.nan), "iv_loo": np.full(n, np.nan), "basis": "method"}
    iv_loo = np.full(n, np.nan)
    for part, stack in leave_one_out(gridded):
        obs = np.isfinite(stack)
        enough = obs.sum(axis=(1, 2)) >= MIN_NODES
        if not enough.any():
            continue
        w_stack = np.where(obs, iv_to_w(np.nan_to_num(stack, nan=1.0)), 0.0)
        w_fit = _leave_out_w(repairer, w_stack[enough], obs[enough])
        for w_surface, q in zip(w_fit, part[enough]):
            if np.isfinite(w_surface).all():
                iv_loo[q] = iv_at(w_surface, T[q], k[q])
    residual = iv - iv_loo
    raw = residual / noise_sd_at(T, k)
    return {"score": np.abs(robust_z(raw)), "residual_loo": residual, "iv_loo": iv_loo, "basis": "leave-out"}


def detector_for(method: str, **config):
    """(repairer that scores quotes, key of its threshold): the method itself when it has a
    stale_score, else the leave-out DETECTOR."""
    from core.repairers.registry import get_repairer

    repairer = get_repairer(method, **config)
    if repairer.has_stale_score:
        return repairer, method
    return get_repairer(DETECTOR), f"{DETECTOR}-leave-out"


def _transplant_scores(repairer, gridded: Gridded, T, k, iv, w_repaired) -> np.ndarray:
    """A method's own node-level stale_score, made per quote: each quote is put alone on the node
    it weighs most on (its w moved there along the repaired surface, w + w_rep(node) -
    w_rep(T, k)), into the grid the other quotes give without it (``leave_one_out``), and the
    method scores that node. Without this a dense chain's quotes would share their node's score.
    """
    from core.engine.grid_read import values_at

    main = gridded.main_node()
    if not np.isfinite(w_repaired).all():
        return np.full(T.size, np.nan)
    with np.errstate(invalid="ignore"):
        w_moved = iv * iv * T + (w_repaired.ravel()[np.maximum(main, 0)] - values_at(w_repaired, T, k))
    scores = np.full(T.size, np.nan)
    for part, stack in leave_one_out(gridded):
        ok = (main[part] >= 0) & np.isfinite(w_moved[part]) & (w_moved[part] > 0)
        if not ok.any():
            continue
        rows, nodes = np.flatnonzero(ok), main[part][ok]
        obs = np.isfinite(stack).reshape(part.size, -1)
        w = np.where(obs, iv_to_w(np.nan_to_num(stack, nan=1.0)).reshape(part.size, -1), 0.0)
        w[rows, nodes] = w_moved[part][ok]
        obs[rows, nodes] = True
        enough = obs.sum(axis=1) >= MIN_NODES
        use = rows[enough[rows]]
        if use.size == 0:
            continue
        node_scores_ = pipeline.run(repairer, w[use].reshape(-1, N_T, N_K),
                                    obs[use].reshape(-1, N_T, N_K)).own_stale.reshape(use.size, -1)
        scores[part[use]] = node_scores_[np.arange(use.size), main[part][use]]
    return scores


# --------------------------------------------------------------------------- thresholds

def thresholds() -> dict:
    """{detector key: threshold} from the calibration file ({} if it is missing or unreadable)."""
    try:
        data = json.loads(CALIBRATION_JSON.read_text())
        return {m: float(v["threshold"]) for m, v in data["detectors"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def threshold_for(key: str) -> tuple:
    """(threshold, calibrated?) for a detector key (see ``detector_for``)."""
    table = thresholds()
    if key in table:
        return table[key], True
    return DEFAULT_THRESHOLD, False
