"""Stale / bad quote scores and flags.

Score. A quote is compared with a repair that never saw it: every grid node the quote moves
(``Gridded.weights``, so one node for an on-grid quote) is hidden, the method is re-run, and the
repaired surface is read at the quote's (T, k). The residual quote - leave-out repair, in vol,
is divided by the benchmark's quote-noise sd at (T, k) (18 bp times the wing/front profile), and
then robustly standardised over the surface's quotes (minus the median, over 1.4826 MAD), so the
score reads as "how many typical misfits away". Quotes whose hiding leaves fewer than four
nodes get NaN. A method that has its own ``stale_score(w_obs, observed)`` (on the grid) is used
instead: each quote takes the score of the node it weighs most on, standardised the same way.

Flag. ``score > threshold``, with the threshold per method read from
``results/stale_calibration.json``: the score's 98th percentile over clean quotes of synthetic
surfaces whose seeds are disjoint from the benchmark's test seeds (a 2 % false-flag rate there).
``python -m core.stale --calibrate`` writes it; ``python -m core.stale --auc`` measures the AUC
on the benchmark's stale-quote test (``core.benchmark.stale_test`` inputs) and writes
``results/stale_auc.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from core.arbitrage import calendar_project
from core.grid import N_K, N_T, T_GRID, K_GRID, iv_to_w, w_to_iv
from core.gridding import Gridded, iv_at
from core.missingness import inject_stale, make_masks, noise_sd_iv, observe
from core.surfaces import generate

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
CALIBRATION_JSON = RESULTS_DIR / "stale_calibration.json"
AUC_JSON = RESULTS_DIR / "stale_auc.json"
TARGET_FALSE_FLAG_RATE = 0.02
DEFAULT_THRESHOLD = 3.5          # used for a method the calibration file does not list
MIN_NODES = 4
_MAD_FLOOR = 1e-6

# Calibration cells: the benchmark's four (family, mask) pairs with seeds disjoint from every
# seed used for training (100/200/118), validation (300/400/219) and testing (1001-1004,
# 2001-2004, 3000-3003, 3401-3404 and +77).
CALIBRATION_CELLS = (
    ("shifted_ssvi", "regular", 5101, 5201, 5301, 5401),
    ("shifted_ssvi", "adversarial", 5102, 5202, 5302, 5402),
    ("sabr_event", "regular", 5103, 5203, 5303, 5403),
    ("sabr_event", "adversarial", 5104, 5204, 5304, 5404),
)


def robust_z(x: np.ndarray, axis=None) -> np.ndarray:
    """(x - median) / (1.4826 MAD), NaNs ignored; the scale is floored so a perfect fit stays finite."""
    med = np.nanmedian(x, axis=axis, keepdims=True)
    mad = 1.4826 * np.nanmedian(np.abs(x - med), axis=axis, keepdims=True)
    return (x - med) / np.maximum(mad, _MAD_FLOOR)


def _fit_w(repairer, w_obs: np.ndarray, observed: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Raw repaired w of a stack of masked surfaces (chunks keep memory flat)."""
    out = np.empty(w_obs.shape)
    for start in range(0, len(w_obs), batch):
        w, _ = repairer.fit(w_obs[start:start + batch], observed[start:start + batch])
        out[start:start + batch] = w
    return out


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
    w_fit = _fit_w(repairer, np.where(masks, w_obs[surf], 0.0), masks)
    w_fit = calendar_project(w_fit)
    iv_fit = w_to_iv(w_fit)[np.arange(surf.size), ti, kj]
    iv_quote = np.sqrt(np.maximum(w_obs[surf, ti, kj], 0.0) / T_GRID[ti])
    out = np.full((n, N_T, N_K), np.nan)
    ok = masks.sum(axis=(1, 2)) >= MIN_NODES
    out[surf[ok], ti[ok], kj[ok]] = (iv_quote - iv_fit)[ok]
    return out


def node_scores(repairer, w_obs: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Stale scores (n, 13, 17) on grid quotes (NaN on missing nodes); see the module doc."""
    if hasattr(repairer, "stale_score"):
        raw = np.where(observed, np.asarray(repairer.stale_score(w_obs, observed), dtype=np.float64), np.nan)
    else:
        raw = loo_node_residuals(repairer, w_obs, observed) / noise_sd_iv()
    return np.abs(robust_z(raw, axis=(1, 2)))


# --------------------------------------------------------------------------- on quotes

def quote_scores(repairer, gridded: Gridded, T: np.ndarray, k: np.ndarray, iv: np.ndarray) -> dict:
    """Stale scores of quotes (1-D T years, k, iv; the quotes ``gridded`` was built from).

    Returns {"score", "residual_loo" (vol), "iv_loo", "basis"}; score NaN where it cannot be
    formed. ``basis`` is "leave-out" or "method" (the repairer's own stale_score).
    """
    T, k, iv = (np.asarray(a, dtype=np.float64).ravel() for a in (T, k, iv))
    observed = gridded.observed
    w_grid = np.where(observed, iv_to_w(np.nan_to_num(gridded.iv_obs, nan=1.0)), 0.0)
    n = T.size
    if hasattr(repairer, "stale_score"):
        node = np.asarray(repairer.stale_score(w_grid[None], observed[None]), dtype=np.float64)[0]
        main = gridded.main_node()
        raw = np.where(main >= 0, node.ravel()[np.maximum(main, 0)], np.nan)
        return {"score": np.abs(robust_z(raw)), "residual_loo": np.full(n, np.nan), "iv_loo": np.full(n, np.nan),
                "basis": "method"}
    influence = gridded.influence()
    keys = [tuple(s.tolist()) for s in influence]
    groups = {}
    for q, key in enumerate(keys):
        groups.setdefault(key, []).append(q)
    group_keys = list(groups)
    masks = np.repeat(observed[None], len(group_keys), axis=0)
    for g, key in enumerate(group_keys):
        if key:
            masks[g].flat[list(key)] = False
    enough = masks.sum(axis=(1, 2)) >= MIN_NODES
    iv_loo = np.full(n, np.nan)
    if enough.any():
        w_fit = calendar_project(_fit_w(repairer, np.where(masks[enough], w_grid[None], 0.0), masks[enough]))
        for w_surface, key in zip(w_fit, [gk for gk, e in zip(group_keys, enough) if e]):
            members = np.array(groups[key])
            iv_loo[members] = iv_at(w_surface, T[members], k[members])
    residual = iv - iv_loo
    from core.synthetic_quotes import noise_sd_at

    raw = residual / noise_sd_at(T, k)
    return {"score": np.abs(robust_z(raw)), "residual_loo": residual, "iv_loo": iv_loo, "basis": "leave-out"}


# --------------------------------------------------------------------------- thresholds

def thresholds() -> dict:
    """{method: threshold} from the calibration file ({} if it is missing or unreadable)."""
    try:
        data = json.loads(CALIBRATION_JSON.read_text())
        return {m: float(v["threshold"]) for m, v in data["methods"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def threshold_for(method: str) -> tuple:
    """(threshold, calibrated?) for a method."""
    table = thresholds()
    if method in table:
        return table[method], True
    return DEFAULT_THRESHOLD, False


# --------------------------------------------------------------------------- measurement

def stale_cell_data(family: str, mask: str, surface_seed: int, mask_seed: int, stale_seed: int, n: int) -> tuple:
    """The benchmark's stale test inputs: (w_obs, observed, is_stale) for n surfaces."""
    w_true = generate(family, n, surface_seed)
    observed = make_masks(mask, n, mask_seed)
    iv_noisy = observe(w_true, observed, stale_seed + 77)
    iv_stale, is_stale = inject_stale(iv_noisy, stale_seed)
    obs = np.isfinite(iv_stale)
    w_obs = np.where(obs, iv_to_w(np.nan_to_num(iv_stale, nan=1.0)), 0.0)
    return w_obs, obs, is_stale


def _auc(labels, scores) -> float:
    from core.metrics import auc

    ok = np.isfinite(scores)
    return auc(labels[ok], scores[ok])


def calibrate(methods, n: int = 100) -> dict:
    """Per method: the threshold at TARGET_FALSE_FLAG_RATE on clean calibration quotes, and the
    AUC and flag rates there."""
    from core.methods import get_repairer

    out = {"target_false_flag_rate": TARGET_FALSE_FLAG_RATE, "n_per_cell": n,
           "cells": [list(c) for c in CALIBRATION_CELLS], "methods": {}}
    for method in methods:
        repairer = get_repairer(method)
        labels, scores = [], []
        for family, mask, s_seed, m_seed, _, stale_seed in CALIBRATION_CELLS:
            w_obs, obs, is_stale = stale_cell_data(family, mask, s_seed, m_seed, stale_seed, n)
            sc = node_scores(repairer, w_obs, obs)
            labels.append(is_stale[obs])
            scores.append(sc[obs])
        labels, scores = np.concatenate(labels), np.concatenate(scores)
        ok = np.isfinite(scores)
        thr = float(np.quantile(scores[ok & ~labels], 1 - TARGET_FALSE_FLAG_RATE))
        flag = scores > thr
        out["methods"][method] = {"threshold": round(thr, 4), "auc": _auc(labels, scores),
                                  "false_flag_rate": float(flag[ok & ~labels].mean()),
                                  "stale_caught": float(flag[ok & labels].mean()),
                                  "basis": "method" if hasattr(repairer, "stale_score") else "leave-out"}
    return out


def measure_auc(methods, n: int = 200) -> dict:
    """AUC of this module's score on the benchmark's stale test (test seeds), per cell and method,
    beside the benchmark's own score (|observed w - repaired w|), and the flag rates at the
    calibrated thresholds."""
    from core.benchmark import TEST_CELLS
    from core.methods import get_repairer

    out = {"n_per_cell": n, "cells": []}
    table = thresholds()
    for cell in TEST_CELLS:
        w_true = generate(cell.family, n, cell.surface_seed)
        observed = make_masks(cell.mask, n, cell.mask_seed)
        iv_noisy = observe(w_true, observed, cell.stale_seed + 77)
        iv_stale, is_stale = inject_stale(iv_noisy, cell.stale_seed)
        obs = np.isfinite(iv_stale)
        w_obs = np.where(obs, iv_to_w(np.nan_to_num(iv_stale, nan=1.0)), 0.0)
        record = {"family": cell.family, "mask": cell.mask, "methods": {}}
        for method in methods:
            repairer = get_repairer(method)
            t0 = time.time()
            sc = node_scores(repairer, w_obs, obs)
            w_fit, _ = repairer.fit(w_obs, obs)
            labels = is_stale[obs]
            entry = {"auc": _auc(labels, sc[obs]), "auc_benchmark_score": _auc(labels, np.abs(w_obs - w_fit)[obs]),
                     "seconds": round(time.time() - t0, 1)}
            if method in table:
                flag = sc[obs] > table[method]
                ok = np.isfinite(sc[obs])
                entry.update(threshold=table[method], false_flag_rate=float(flag[ok & ~labels].mean()),
                             stale_caught=float(flag[ok & labels].mean()),
                             precision=float(labels[flag].mean()) if flag.any() else float("nan"))
            record["methods"][method] = entry
        out["cells"].append(record)
    return out


def main(argv=None) -> int:
    from core.methods import METHODS

    parser = argparse.ArgumentParser(description="Calibrate the stale-quote flag and measure its AUC.")
    parser.add_argument("--calibrate", action="store_true", help=f"write {CALIBRATION_JSON.name} (calibration seeds)")
    parser.add_argument("--auc", action="store_true", help=f"write {AUC_JSON.name} (benchmark test seeds)")
    parser.add_argument("--n", type=int, default=None, help="surfaces per cell (default 100 calibrate, 200 auc)")
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    if not (args.calibrate or args.auc):
        parser.error("give --calibrate and/or --auc")
    if args.calibrate:
        result = calibrate(methods, args.n or 100)
        CALIBRATION_JSON.parent.mkdir(parents=True, exist_ok=True)
        CALIBRATION_JSON.write_text(json.dumps(result, indent=2) + "\n")
        for m, v in result["methods"].items():
            print(f"{m:8s} threshold {v['threshold']:.3f}  AUC {v['auc']:.3f}  false flags "
                  f"{100 * v['false_flag_rate']:.1f}%  stale caught {100 * v['stale_caught']:.1f}%")
        print(f"wrote {CALIBRATION_JSON}")
    if args.auc:
        result = measure_auc(methods, args.n or 200)
        AUC_JSON.write_text(json.dumps(result, indent=2) + "\n")
        for c in result["cells"]:
            print(f"{c['family']}/{c['mask']}: " + "  ".join(
                f"{m} AUC {v['auc']:.3f} (benchmark score {v['auc_benchmark_score']:.3f})" for m, v in c["methods"].items()))
        print(f"wrote {AUC_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
