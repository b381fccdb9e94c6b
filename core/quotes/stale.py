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
``python -m core.cli stale --calibrate`` writes it; ``python -m core.cli stale --auc`` measures the AUC
on the benchmark's stale-quote test (``core.evaluation.benchmark.stale_test`` inputs) and writes
``results/stale_auc.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from core import pipeline
from core.engine.grid import N_K, N_T, T_GRID, iv_to_w, w_to_iv
from core.evaluation.seeds import FRESH_NOISE_OFFSET, STALE_CALIBRATION_CHAINS
from core.quotes.gridding import Gridded, iv_at, leave_one_out
from core.settings import RESULTS_DIR
from core.synth.chains import noise_sd_at
from core.synth.families import generate
from core.synth.missingness import inject_stale, make_masks, noise_sd_iv, observe

CALIBRATION_JSON = RESULTS_DIR / "stale_calibration.json"
AUC_JSON = RESULTS_DIR / "stale_auc.json"
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
    from core.quotes.gridding import values_at

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


# --------------------------------------------------------------------------- measurement

def stale_cell_data(family: str, mask: str, surface_seed: int, mask_seed: int, stale_seed: int, n: int) -> tuple:
    """The benchmark's stale test inputs: (w_obs, observed, is_stale) for n surfaces."""
    w_true = generate(family, n, surface_seed)
    observed = make_masks(mask, n, mask_seed)
    iv_noisy = observe(w_true, observed, stale_seed + FRESH_NOISE_OFFSET)
    iv_stale, is_stale = inject_stale(iv_noisy, stale_seed)
    obs = np.isfinite(iv_stale)
    w_obs = np.where(obs, iv_to_w(np.nan_to_num(iv_stale, nan=1.0)), 0.0)
    return w_obs, obs, is_stale


def _auc(labels, scores) -> float:
    from core.evaluation.metrics import auc

    ok = np.isfinite(scores)
    return auc(labels[ok], scores[ok])


CALIBRATION_STALE_FRACTION = 0.05


def calibration_chains(n: int) -> list:
    """Synthetic quote chains for the threshold: n per family, seeds disjoint from the benchmark's.

    Each is a listed chain (core.synth.chains) with the benchmark's quote noise, 5 % stale
    quotes (+-50..110 bp) and a random share (30-100 %) of its strikes kept, so dense and thin
    chains both count. Returns [(T, k, iv, is_stale)] of the quotes inside the grid's reach.
    """
    from core.quotes.gridding import inside_grid
    from core.synth.chains import ChainSpec, make_chain, surface_function

    out = []
    for family, seed0 in STALE_CALIBRATION_CHAINS:
        for i in range(n):
            seed = seed0 * 100 + i
            rng = np.random.default_rng(seed)
            spec = ChainSpec(stale_fraction=CALIBRATION_STALE_FRACTION, weeklies=0)
            df = make_chain(surface_function(family, seed), spec, seed=seed)
            keep = rng.random(len(df)) < rng.uniform(0.3, 1.0)
            T, k, iv, st = (df[c].to_numpy()[keep] for c in ("T", "k", "iv", "is_stale"))
            ins = inside_grid(T, k)
            out.append((T[ins], k[ins], iv[ins], st[ins].astype(bool)))
    return out


def chain_scores(repairer, chains) -> tuple:
    """(labels, scores) pooled over chains, each gridded and scored as the quote workflow does."""
    from core.quotes.gridding import grid_quotes

    labels, scores = [], []
    for T, k, iv, is_stale in chains:
        g = grid_quotes(T, k, iv)
        if g.observed.sum() < MIN_NODES:
            continue
        labels.append(is_stale)
        scores.append(quote_scores(repairer, g, T, k, iv)["score"])
    return np.concatenate(labels), np.concatenate(scores)


def calibrate(methods, n: int = 20, compare: bool = True) -> dict:
    """Per detector (``detector_for`` of each method): the flag threshold at
    TARGET_FALSE_FLAG_RATE on the clean quotes of synthetic chains (``calibration_chains``), with
    the AUC and the share of stale quotes caught there. ``compare`` also scores every method's
    own leave-out (the evidence for DETECTOR), under "leave_out_by_method"."""
    from core.repairers.registry import get_repairer

    chains = calibration_chains(n)
    out = {"target_false_flag_rate": TARGET_FALSE_FLAG_RATE, "chains_per_family": n,
           "families_and_seeds": [list(c) for c in STALE_CALIBRATION_CHAINS],
           "stale_fraction": CALIBRATION_STALE_FRACTION, "n_quotes": int(sum(c[0].size for c in chains)),
           "detector": DETECTOR, "detectors": {}, "leave_out_by_method": {}}
    jobs = {}
    for method in methods:
        repairer, key = detector_for(method)
        jobs.setdefault(key, (repairer, "detectors"))
        if compare and method != DETECTOR and not get_repairer(method).has_stale_score:
            jobs.setdefault(f"{method}-leave-out-only", (get_repairer(method), "leave_out_by_method"))
    for key, (repairer, section) in jobs.items():
        t0 = time.time()
        labels, scores = chain_scores(repairer, chains)
        ok = np.isfinite(scores)
        thr = float(np.quantile(scores[ok & ~labels], 1 - TARGET_FALSE_FLAG_RATE))
        flag = scores > thr
        out[section][key.replace("-only", "")] = {"threshold": round(thr, 4), "auc": _auc(labels, scores),
                                  "false_flag_rate": float(flag[ok & ~labels].mean()),
                                  "stale_caught": float(flag[ok & labels].mean()),
                                  "precision": float(labels[flag].mean()) if flag.any() else float("nan"),
                                  "basis": "method" if repairer.has_stale_score else "leave-out",
                                  "seconds": round(time.time() - t0, 1)}
    return out


def measure_auc(methods, n: int = 200) -> dict:
    """AUC on the benchmark's stale-quote test (test seeds; on-grid quotes, so a quote's leave-out
    hides its node): per cell and method, the flag's score (``detector_for``), the method's own
    leave-out score, and the benchmark's score (|observed w - repaired w|), with flag rates at
    the calibrated thresholds."""
    from core.evaluation.benchmark import TEST_CELLS
    from core.repairers.registry import get_repairer

    out = {"n_per_cell": n, "detector": DETECTOR, "cells": []}
    cache = {}
    for cell in TEST_CELLS:
        w_true = generate(cell.family, n, cell.surface_seed)
        observed = make_masks(cell.mask, n, cell.mask_seed)
        iv_noisy = observe(w_true, observed, cell.fresh_noise_seed)
        iv_stale, is_stale = inject_stale(iv_noisy, cell.stale_seed)
        w_obs, obs = pipeline.w_observed(iv_stale)
        labels = is_stale[obs]
        record = {"family": cell.family, "mask": cell.mask, "methods": {}}
        cache.clear()
        for method in methods:
            t0 = time.time()
            repairer = get_repairer(method)
            own = node_scores(repairer, w_obs, obs)
            detector, key = detector_for(method)
            if key not in cache:
                cache[key] = own if key == method or method == DETECTOR else node_scores(detector, w_obs, obs)
            flag_score = cache[key]
            w_fit = pipeline.run(repairer, w_obs, obs).w_raw
            entry = {"auc": _auc(labels, flag_score[obs]), "detector": key,
                     "auc_own_score": _auc(labels, own[obs]),
                     "auc_benchmark_score": _auc(labels, np.abs(w_obs - w_fit)[obs]),
                     "seconds": round(time.time() - t0, 1)}
            thr, calibrated = threshold_for(key)
            ok = np.isfinite(flag_score[obs])
            flag = flag_score[obs] > thr
            entry.update(threshold=thr, calibrated=calibrated, false_flag_rate=float(flag[ok & ~labels].mean()),
                         stale_caught=float(flag[ok & labels].mean()))
            record["methods"][method] = entry
        out["cells"].append(record)
    return out


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def main(argv=None) -> int:
    from core.repairers.registry import METHODS

    parser = argparse.ArgumentParser(description="Calibrate the stale-quote flag and measure its AUC.")
    parser.add_argument("--calibrate", action="store_true", help=f"write {CALIBRATION_JSON.name} (calibration seeds)")
    parser.add_argument("--auc", action="store_true", help=f"write {AUC_JSON.name} (benchmark test seeds)")
    parser.add_argument("--n", type=int, default=None,
                        help="chains per family for --calibrate (default 20), surfaces per cell for --auc (default 200)")
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    if not (args.calibrate or args.auc):
        parser.error("give --calibrate and/or --auc")
    if args.calibrate:
        result = calibrate(methods, args.n or 20)
        old = _read(CALIBRATION_JSON)
        same = all(old.get(key) == result[key] for key in ("chains_per_family", "families_and_seeds", "stale_fraction"))
        if same:   # keep the detectors this run did not redo
            for section in ("detectors", "leave_out_by_method"):
                result[section] = {**old.get(section, {}), **result[section]}
        CALIBRATION_JSON.parent.mkdir(parents=True, exist_ok=True)
        CALIBRATION_JSON.write_text(json.dumps(result, indent=2) + "\n")
        for m, v in list(result["detectors"].items()) + list(result["leave_out_by_method"].items()):
            print(f"{m:24s} threshold {v['threshold']:.3f}  AUC {v['auc']:.3f}  false flags "
                  f"{100 * v['false_flag_rate']:.1f}%  stale caught {100 * v['stale_caught']:.1f}%  "
                  f"precision {100 * v['precision']:.0f}%")
        print(f"wrote {CALIBRATION_JSON}")
    if args.auc:
        result = measure_auc(methods, args.n or 200)
        old = _read(AUC_JSON)
        if old.get("n_per_cell") == result["n_per_cell"] and len(old.get("cells", [])) == len(result["cells"]):
            for new_cell, old_cell in zip(result["cells"], old["cells"]):   # keep methods not rerun
                new_cell["methods"] = {**old_cell.get("methods", {}), **new_cell["methods"]}
        AUC_JSON.write_text(json.dumps(result, indent=2) + "\n")
        for c in result["cells"]:
            print(f"{c['family']}/{c['mask']}: " + "  ".join(
                f"{m}: flag AUC {v['auc']:.3f}, own score {v['auc_own_score']:.3f}, benchmark score "
                f"{v['auc_benchmark_score']:.3f}" for m, v in c["methods"].items()))
        print(f"wrote {AUC_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
