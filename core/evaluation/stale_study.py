"""The stale flag's study: its threshold calibrated on synthetic chains, its AUC on the benchmark.

``python -m core.cli stale --calibrate`` writes results/stale_calibration.json (the thresholds
core.quotes.stale reads); ``--auc`` writes results/stale_auc.json. The scores themselves live in
core.quotes.stale; this module only measures them, on seeds from core.seeds.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from core import pipeline
from core.engine.grid import iv_to_w
from core.quotes.stale import (
    CALIBRATION_JSON, DETECTOR, MIN_NODES, TARGET_FALSE_FLAG_RATE, detector_for, node_scores, quote_scores,
    threshold_for,
)
from core.seeds import FRESH_NOISE_OFFSET, STALE_CALIBRATION_CHAINS, TEST_CELLS
from core.settings import RESULTS_DIR
from core.synth.families import generate
from core.synth.missingness import inject_stale, make_masks, observe

AUC_JSON = RESULTS_DIR / "stale_auc.json"


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
    from core.engine.grid_read import inside_grid
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
