"""Scores: missing-point RMSE with standard errors, interval coverage, error-sd correlation,
rank AUC, and the downstream per-slice SVI projection. All errors are in implied-vol units."""
from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata

from core.engine.arbitrage import calendar_project
from core.engine.baselines import fit_svi_slices
from core.engine.grid import w_to_iv
from core.synth.missingness import STALE_SHIFT_BP

RELIABILITY_LEVELS = (0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 0.99)


def mean_se(values: np.ndarray) -> dict:
    """{"mean", "se"} of a 1-D sample (se = sample sd / sqrt(n)), NaNs dropped."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"mean": float("nan"), "se": float("nan")}
    se = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else float("nan")
    return {"mean": float(values.mean()), "se": float(se)}


def missing_rmse(iv_pred: np.ndarray, iv_true: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per-surface RMSE over missing cells, (n,); NaN for a surface with no missing cell."""
    missing = ~observed
    sq = np.where(missing, (iv_pred - iv_true) ** 2, 0.0).sum(axis=(-2, -1))
    count = missing.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(sq / count)


def coverage(iv_pred: np.ndarray, sd_iv: np.ndarray, iv_true: np.ndarray, cells: np.ndarray,
             levels=(0.80, 0.95), half_width=None) -> dict:
    """Empirical coverage of central intervals iv_pred +- half_width(sd, level) on ``cells``, per level.

    ``half_width`` defaults to the Gaussian z * sd; a calibrated method passes its own.
    """
    err = np.abs(iv_pred - iv_true)[cells]
    sd = np.maximum(sd_iv[cells], 1e-6)
    if half_width is None:
        def half_width(s, level):
            return norm.ppf(0.5 + level / 2) * s
    return {float(level): float(np.mean(err <= half_width(sd, level))) for level in levels}


def err_sd_corr(iv_pred: np.ndarray, sd_iv: np.ndarray, iv_true: np.ndarray, cells: np.ndarray) -> float:
    """Pearson correlation of |error| and predicted sd over ``cells``."""
    err = np.abs(iv_pred - iv_true)[cells]
    sd = sd_iv[cells]
    if err.size < 3 or err.std() == 0 or sd.std() == 0:
        return float("nan")
    return float(np.corrcoef(err, sd)[0, 1])


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula (ties get average ranks)."""
    labels = np.asarray(labels, dtype=bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray, points: int = 101) -> tuple:
    """(false positive rate, true positive rate) at ``points`` score thresholds, for plotting."""
    labels = np.asarray(labels, dtype=bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    thresholds = np.quantile(scores, np.linspace(1.0, 0.0, points))
    above = scores[None, :] >= thresholds[:, None]
    tpr = (above & labels).sum(1) / max(labels.sum(), 1)
    fpr = (above & ~labels).sum(1) / max((~labels).sum(), 1)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def downstream_svi(w_repaired: np.ndarray, w_true: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Fit per-slice SVI to the full repaired surface, calendar-project, score on missing cells.

    Returns per-surface missing-point RMSE (n,) in implied-vol units.
    """
    full = np.ones(w_repaired.shape, dtype=bool)
    projected = calendar_project(fit_svi_slices(w_repaired, full))
    return missing_rmse(w_to_iv(projected), w_to_iv(w_true), observed)


def oracle_stale_scores(iv_quoted: np.ndarray, iv_true: np.ndarray, noise_sd: np.ndarray,
                        shift_bp: tuple = STALE_SHIFT_BP, nodes: int = 64) -> np.ndarray:
    """The Neyman-Pearson optimal stale score when the true surface is known.

    Per quote, the likelihood ratio of "noise + a stale move of +-U(shift_bp)" against "noise
    only", with the residual x = quoted - true and Gaussian noise of sd ``noise_sd``. No method
    that sees only the quotes can rank stale quotes better than this (in AUC) on average, so its
    AUC bounds every method's stale-quote AUC on the same test.
    """
    x = np.asarray(iv_quoted - iv_true, dtype=np.float64)[..., None]
    sd = np.broadcast_to(noise_sd, iv_quoted.shape)[..., None]
    shifts = np.linspace(shift_bp[0], shift_bp[1], nodes) / 1e4
    shifts = np.concatenate([shifts, -shifts])
    # log mean over shifts of phi((x - s)/sd) / phi(x/sd), in a stable form
    log_ratio = (x * shifts - 0.5 * shifts**2) / sd**2
    top = log_ratio.max(-1, keepdims=True)
    return (top + np.log(np.exp(log_ratio - top).mean(-1, keepdims=True)))[..., 0]
