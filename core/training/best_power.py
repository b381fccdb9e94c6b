"""Choose BestConfig.surprise_power (the exponent of the sd widening max(1, chi2) ** p) by nested
leave-one-family-out among training families only.

For a held-out family F the two other families A, B are the only ones looked at: a prior is fitted
on A alone and calibrated on A's calibration cells, and its conformal coverage is measured on B's
*validation* cells (seeds BEST_VALIDATION, never the test seeds of core.seeds), and vice versa. The
p whose nested coverages are closest to nominal (smallest mean |coverage - level| over the two
directions, two regimes and the 80 % / 95 % levels; ties: the smaller p) is the one F's own LOFO
model uses. The model trained on all three families takes the p chosen the same way over all six
directions. F's cells (calibration, validation or test) never enter F's choice.

The posterior mean and the unwidened sd do not depend on p, so each single-family prior runs once
per cell with p = 0 and the widening is applied afterwards from the same leave-one-out residuals
the model uses (``check_shortcut`` compares with the model run at a p > 0).

``python -m core.training.best_power [--json results/best_surprise_power.json]``
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from core.engine.conformal import ConformalCalibrator
from core.repairers.best import BestConfig, MixturePrior, projected_sd, surprise_factor
from core.seeds import BEST_CALIBRATION, BEST_VALIDATION
from core.training.best import CALIBRATION_CELLS, LOFO_FAMILIES, cell_data, held_out_cells, scored_cell
from core.settings import RESULTS_DIR

POWERS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
LEVELS = (0.8, 0.95)
FAMILIES = ("shifted_ssvi", "sabr_event", "heston")
LOFO_KEY = {"shifted_ssvi": "ssvi", "sabr_event": "sabr_event", "heston": "heston"}   # core.training.best names
DEFAULT_JSON = RESULTS_DIR / "best_surprise_power.json"


def _scored(prior: MixturePrior, w, observed, iv_obs) -> dict:
    """Per missing cell: |error| of the delivered repair, the unwidened sd, the surface's chi2 and
    the displacement of the projection (what projected_sd needs), from one p = 0 run."""
    cell = scored_cell(prior, w, observed, iv_obs)
    out, delivered = cell["out"], cell["delivered"]
    n = len(w)
    z = out["loo_z"].reshape(n, -1)
    chi2 = (z**2).sum(-1) / np.maximum(observed.reshape(n, -1).sum(-1), 1.0)
    miss = ~observed
    return {"err": cell["err"], "sd": out["sd"][miss],
            "shift": (delivered - out["mean"])[miss],
            "chi2": np.broadcast_to(chi2[:, None, None], observed.shape)[miss]}


def _sd(scored: dict, power: float) -> np.ndarray:
    """The projection-aware sd at widening exponent ``power``."""
    sd = scored["sd"] * surprise_factor(scored["chi2"], power)
    return projected_sd(sd, 0.0, scored["shift"])


def nested_study(n_cal: int = 500, n_val: int = 500, powers=POWERS, progress=print) -> dict:
    """Every ordered pair (A -> B) of the training families: coverage on B's validation cells of a prior
    fitted and calibrated on A alone, for each power."""
    base = BestConfig()
    pairs = {}
    for a in FAMILIES:
        cfg = dataclasses.replace(base, families=(a,), surprise_power=0.0)
        t0 = time.time()
        prior = MixturePrior.fit(cfg, lambda msg: progress(f"[{a}] {msg}"))
        progress(f"[{a}] fitted in {time.time() - t0:.1f} s; calibrating and scoring")
        cal = [_scored(prior, *cell_data(f, r, n_cal, BEST_CALIBRATION, i))
               for i, (f, r) in enumerate(held_out_cells(cfg.families))]
        for b in FAMILIES:
            if b == a:
                continue
            cells = {}
            for j, (f, r) in enumerate(CALIBRATION_CELLS):
                if f == b:
                    cells[r] = _scored(prior, *cell_data(f, r, n_val, BEST_VALIDATION, j))
            rows = {}
            for p in powers:
                calibrator = ConformalCalibrator().fit(np.concatenate([c["err"] for c in cal]),
                                                       np.concatenate([_sd(c, p) for c in cal]))
                rows[str(p)] = {r: {str(lv): float(np.mean(s["err"] <= calibrator.half_width(_sd(s, p), lv)))
                                    for lv in LEVELS} for r, s in cells.items()}
            pairs[f"{a}->{b}"] = rows
            progress(f"[{a} -> {b}] " + "  ".join(
                f"p={p}: " + " ".join(f"{rows[str(p)][r]['0.8']:.3f}/{rows[str(p)][r]['0.95']:.3f}" for r in cells)
                for p in powers))
    return pairs


def choose(pairs: dict, families, powers=POWERS) -> dict:
    """The power closest to nominal (mean |coverage - level|) over the pairs among ``families``."""
    keys = [k for k in pairs if all(f in families for f in k.split("->"))]
    table = {}
    for p in powers:
        devs = [abs(pairs[k][str(p)][r][str(lv)] - lv) for k in keys for r in pairs[k][str(p)] for lv in LEVELS]
        table[str(p)] = {"mean_abs_dev": float(np.mean(devs)), "max_abs_dev": float(np.max(devs))}
    best = min(powers, key=lambda p: (round(table[str(p)]["mean_abs_dev"], 6), p))
    return {"pairs": keys, "criterion": table, "power": best}


def check_shortcut(power: float = 1.0, n: int = 60) -> float:
    """Largest relative difference between the widened sd applied afterwards (as the study does) and
    the model's own at ``power``, on a few validation surfaces of a small prior."""
    cfg = dataclasses.replace(BestConfig(), families=("sabr_event",), n_default=4000, surprise_power=0.0)
    prior = MixturePrior.fit(cfg)
    w, observed, iv_obs = cell_data("heston", "adversarial", n, BEST_VALIDATION, 5)
    scored = _scored(prior, w, observed, iv_obs)
    widened = dataclasses.replace(cfg, surprise_power=power)
    own = MixturePrior(prior.mu, prior.V, prior.tau2, torch.exp(prior.log_weight), widened, prior.names)
    out = own.run(np.nan_to_num(iv_obs), observed)
    sd_own = out["sd"][~observed]
    sd_short = scored["sd"] * surprise_factor(scored["chi2"], power)
    return float(np.max(np.abs(sd_short / sd_own - 1.0)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Choose the surprise-widening power by nested "
                                                 "leave-one-family-out on training families' validation cells.")
    parser.add_argument("--json", default=str(DEFAULT_JSON))
    parser.add_argument("--n-cal", type=int, default=500)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    load_before = os.getloadavg()[0]
    shortcut = check_shortcut()
    print(f"shortcut vs model sd at p = 1: max relative difference {shortcut:.2e}", flush=True)
    pairs = nested_study(args.n_cal, args.n_val, progress=lambda m: print(m, flush=True))
    choices = {LOFO_KEY[held]: choose(pairs, [f for f in FAMILIES if f != held]) for held in FAMILIES}
    choices["all"] = choose(pairs, FAMILIES)
    assert all(set(LOFO_FAMILIES[k]) == set(f for f in FAMILIES if LOFO_KEY[f] != k) for k in LOFO_FAMILIES)
    for name, c in choices.items():
        print(f"{name:12s} chosen p = {c['power']}  (" + ", ".join(
            f"{p}: {v['mean_abs_dev']:.4f}/{v['max_abs_dev']:.3f}" for p, v in c["criterion"].items()) + ")")
    result = {"description": __doc__.split("\n\n")[0], "procedure": __doc__.split("\n\n")[1],
              "powers": list(POWERS), "levels": list(LEVELS), "n_cal_per_cell": args.n_cal,
              "n_val_per_cell": args.n_val, "calibration_seeds": BEST_CALIBRATION,
              "validation_seeds": BEST_VALIDATION, "shortcut_max_rel_diff": shortcut,
              "pairs": pairs, "choices": choices, "seconds": round(time.time() - start, 1),
              "load_before": load_before, "load_after": os.getloadavg()[0],
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json} in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
