"""The 2 x 2 benchmark: {shifted SSVI, SABR-event} x {regular, adversarial}.

``python -m core.benchmark`` scores every method on 200 test surfaces per cell (``--n-test``),
prints the post's three tables (missing-point RMSE, diagnostics, downstream SVI) with the best in
each row marked, and writes the JSON of the GUIDE's contract (``--json PATH``). ``--train``
retrains the CNN first; ``--speed`` times every method instead; ``--speed-chain`` times the chain
path end to end on a synthetic chain of about 6,500 quotes (issue 11's target).

Test seeds are the reference's (surfaces 1001-1004, masks 2001-2004, noise 3000-3003, stale
injection 3401-3404); no training or model selection uses them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from core import pipeline
from core.engine.arbitrage import (
    butterfly_violations,
    calendar_violations,
)
from core.engine.grid import w_to_iv
from core.evaluation.metrics import (
    RELIABILITY_LEVELS,
    auc,
    coverage,
    downstream_svi,
    err_sd_corr,
    mean_se,
    missing_rmse,
    oracle_stale_scores,
    roc_curve,
)
from core.seeds import HESTON_CELLS, OUTSIDE_CELLS, TEST_CELLS, Cell
from core.pipeline import w_observed
from core.repairers.registry import METHODS, get_repairer
from core.settings import RESULTS_DIR, WEIGHTS_DIR, apply_thread_policy
from core.synth.families import generate
from core.synth.missingness import inject_stale, make_masks, noise_sd_iv, observe

DEFAULT_JSON = RESULTS_DIR / "benchmark.json"   # the shipped results the app shows (tracked in git)
# Where a plain run writes: out/ is untracked, so a newcomer's quick run never overwrites the
# shipped results; --ship writes DEFAULT_JSON on purpose.
RUN_JSON = RESULTS_DIR.parent / "out" / "benchmark.json"


SD_METHOD = "cnn"  # the post's diagnostics table describes the CNN

# Leave-one-family-out: "best" refitted without a family (weights/best_lofo_<family>.pt, made by
# `python -m core.cli train best --lofo <family>`) is scored on that family's cells. Heston has test cells of
# its own here (seeds disjoint from every training, calibration and validation seed).
LOFO_CELLS = {"ssvi": TEST_CELLS[:2], "sabr_event": TEST_CELLS[2:], "heston": HESTON_CELLS}
LOFO_METHODS = ("interp", "svi", "interp_svi", "best")


def test_data(cell: Cell, n: int) -> tuple:
    """(w_true, observed, iv_obs) for the first n test surfaces of a cell."""
    w_true = generate(cell.family, n, cell.surface_seed)
    observed = make_masks(cell.mask, n, cell.mask_seed)
    return w_true, observed, observe(w_true, observed, cell.noise_seed)


def stale_test(repairer, w_true: np.ndarray, observed: np.ndarray, cell: Cell) -> tuple:
    """The post's stale-quote test: (labels, scores) over observed cells.

    Fresh noise (seed + 77), 8 % of each surface's quotes shifted by +-50..110 bp, the method
    re-run on the corrupted quotes; score = |observed w - repaired w| (raw output), or the
    method's own ``stale_score`` when it has one.
    """
    iv_noisy = observe(w_true, observed, cell.fresh_noise_seed)
    iv_stale, is_stale = inject_stale(iv_noisy, cell.stale_seed)
    w_obs, obs = w_observed(iv_stale)
    scores = pipeline.run(repairer, w_obs, obs).stale_scores()
    return is_stale[obs], scores[obs]


def oracle_stale_auc(w_true: np.ndarray, observed: np.ndarray, cell: Cell) -> float:
    """AUC of the optimal stale score that knows the true surface, on the same stale test: the
    ceiling of every method's stale-quote AUC in this cell."""
    iv_noisy = observe(w_true, observed, cell.fresh_noise_seed)
    iv_stale, is_stale = inject_stale(iv_noisy, cell.stale_seed)
    scores = oracle_stale_scores(iv_stale, w_to_iv(w_true), noise_sd_iv())
    return auc(is_stale[observed], scores[observed])


def _rate(flags: np.ndarray) -> float:
    return float(np.mean(flags))


def _arbitrage_diagnostics(out, detail: dict | None, name: str) -> dict:
    """Calendar and butterfly violation rates of the raw, calendar- and fully-projected repairs;
    with ``detail``, their per-node maps too."""
    w_raw, w_cal, w_full = out.w_raw, out.projected("calendar"), out.projected("full")
    cal_raw, cal_post, g_neg = calendar_violations(w_raw), calendar_violations(w_cal), butterfly_violations(w_cal)
    if detail is not None:
        detail["g_negative_map"][name] = g_neg.mean(0).round(4).tolist()
        detail["calendar_raw_map"][name] = cal_raw.mean(0).round(4).tolist()
        detail["calendar_post_map"][name] = cal_post.mean(0).round(4).tolist()
    return {"raw_calendar": _rate(cal_raw), "post_calendar": _rate(cal_post),
            "g_negative": _rate(g_neg), "g_negative_raw": _rate(butterfly_violations(w_raw)),
            "g_negative_full": _rate(butterfly_violations(w_full)),
            "calendar_full": _rate(calendar_violations(w_full))}


def _interval_diagnostics(out, iv_true: np.ndarray, missing: np.ndarray, detail: dict | None, name: str) -> dict:
    """Coverage, width and error-sd correlation of the intervals around the repair the user gets
    (the method's default projection); with ``detail``, the reliability curve and a sample."""
    iv_out, sd_iv, half_width = w_to_iv(out.w), out.sd, out.half_width
    cov = coverage(iv_out, sd_iv, iv_true, missing, half_width=half_width)
    diag = dict(cov80=cov[0.8], cov95=cov[0.95], err_sd_corr=err_sd_corr(iv_out, sd_iv, iv_true, missing),
                avg_sd=float(sd_iv[missing].mean()),
                width80=float(2 * np.mean(half_width(sd_iv[missing], 0.8))),
                width95=float(2 * np.mean(half_width(sd_iv[missing], 0.95))))
    if detail is not None:
        levels = coverage(iv_out, sd_iv, iv_true, missing, RELIABILITY_LEVELS, half_width)
        err = np.abs(iv_out - iv_true)[missing]
        pick = np.random.default_rng(0).permutation(err.size)[:1500]
        detail.setdefault("reliability", {})[name] = {"nominal": list(levels), "empirical": list(levels.values())}
        detail.setdefault("err_sd_sample", {})[name] = {"abs_err": err[pick].round(6).tolist(),
                                                        "sd": sd_iv[missing][pick].round(6).tolist()}
    return diag


def evaluate_cell(cell: Cell, n: int, methods=METHODS, repairers: dict | None = None,
                  details: bool = True) -> dict:
    """Score ``methods`` on the first n surfaces of ``cell``; returns the cell's JSON record."""
    repairers = repairers or {m: get_repairer(m) for m in methods}
    w_true, observed, iv_obs = test_data(cell, n)
    iv_true = w_to_iv(w_true)
    w_obs, _ = w_observed(iv_obs)
    missing = ~observed
    record = {"family": cell.family, "mask": cell.mask, "n": n, "observed_fraction": float(observed.mean()),
              "rmse": {}, "rmse_calendar": {}, "rmse_full": {}, "downstream_svi": {},
              "diagnostics_by_method": {}}
    per_surface = {}
    detail = {"g_negative_map": {}, "calendar_raw_map": {}, "calendar_post_map": {}}
    for name in methods:
        repairer = repairers[name]
        out = pipeline.run(repairer, w_obs, observed)
        rmse_cal = missing_rmse(w_to_iv(out.projected("calendar")), iv_true, observed)
        rmse_full = missing_rmse(w_to_iv(out.projected("full")), iv_true, observed)
        # The headline column is each method at its default projection ("calendar" for the
        # post's methods); both variants are reported for every method.
        if out.mode == "full":
            record.setdefault("full_default", []).append(name)
        per_surface[name] = rmse_full if out.mode == "full" else rmse_cal
        record["rmse"][name] = mean_se(per_surface[name])
        record["rmse_calendar"][name] = mean_se(rmse_cal)
        record["rmse_full"][name] = mean_se(rmse_full)
        record["downstream_svi"][name] = mean_se(downstream_svi(out.w, w_true, observed))
        diag = _arbitrage_diagnostics(out, detail if details else None, name)
        labels, scores = stale_test(repairer, w_true, observed, cell)
        diag["stale_auc"] = auc(labels, scores)
        if repairer.has_sd:
            diag.update(_interval_diagnostics(out, iv_true, missing, detail if details else None, name))
        if details:
            fpr, tpr = roc_curve(labels, scores)
            detail.setdefault("stale_roc", {})[name] = {"fpr": fpr.round(4).tolist(), "tpr": tpr.round(4).tolist()}
        record["diagnostics_by_method"][name] = diag
    if SD_METHOD in record["diagnostics_by_method"]:
        record["diagnostics"] = record["diagnostics_by_method"][SD_METHOD]
    record["stale_auc_oracle"] = oracle_stale_auc(w_true, observed, cell)
    record["best"] = best_in_row(record["rmse"])
    record["per_surface_rmse"] = {m: np.round(v, 6).tolist() for m, v in per_surface.items()}
    if details:
        record["details"] = detail
    return record


def best_in_row(scores: dict) -> list:
    """Names of the best method and of every method tied with it.

    Tie rule: a method ties the best when their means differ by no more than the larger of the
    two standard errors.
    """
    finite = {m: s for m, s in scores.items() if np.isfinite(s["mean"])}
    if not finite:
        return []
    best = min(finite, key=lambda m: finite[m]["mean"])
    b = finite[best]
    return [m for m, s in finite.items()
            if s["mean"] - b["mean"] <= max(np.nan_to_num(s["se"]), np.nan_to_num(b["se"]))]


def run(n_test: int = 200, methods=METHODS, weights: Path | None = None, progress=None,
        details: bool = True) -> dict:
    """The whole 2 x 2. ``progress(done, total, label)`` is called after each cell."""
    start = time.time()
    config = {"weights": str(weights)} if weights else {}
    repairers = {m: get_repairer(m, **(config if m == "cnn" else {})) for m in methods}
    cells, seconds = [], {}
    for i, cell in enumerate(TEST_CELLS):
        t0 = time.time()
        cells.append(evaluate_cell(cell, n_test, methods, repairers, details))
        seconds[f"{cell.family}/{cell.mask}"] = round(time.time() - t0, 2)
        if progress:
            progress(i + 1, len(TEST_CELLS), cell.label)
    seconds["total"] = round(time.time() - start, 2)
    weights_path = Path(weights) if weights else WEIGHTS_DIR / "cnn.pt"
    try:
        weights_label = str(weights_path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        weights_label = str(weights_path)
    return {
        "config": {"n_test": n_test, "weights": weights_label, "methods": list(methods),
                   "test_seeds": [vars(c) for c in TEST_CELLS], "threads": torch.get_num_threads(),
                   "cpu_count": os.cpu_count(),
                   "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                   "tie_rule": "tied with the best when the means differ by <= the larger SE"},
        "cells": cells,
        "seconds": seconds,
    }


def run_lofo(n_test: int = 200, progress=None) -> list:
    """The leave-one-family-out table: per held-out family, its cells scored by the baselines, by
    "best" trained on every family, and by "best_lofo" trained without the held-out one."""
    out = []
    for held, cells in LOFO_CELLS.items():
        path = WEIGHTS_DIR / f"best_lofo_{held}.pt"
        if not path.is_file():
            out.append({"held_out": held, "error": f"no weights {path.name}; make them with "
                                                    f"`python -m core.cli train best --lofo {held}`"})
            continue
        repairers = {m: get_repairer(m) for m in LOFO_METHODS}
        repairers["best_lofo"] = get_repairer("best", weights=path)
        records = _side_cells(cells, n_test, LOFO_METHODS + ("best_lofo",), repairers,
                              progress and (lambda label, held=held: progress(held, label)))
        out.append({"held_out": held, "weights": f"weights/{path.name}", "cells": records})
    return out


def _side_cells(cells, n_test: int, methods, repairers: dict, progress=None) -> list:
    """The cells of a side section (leave-one-family-out, outside), without per-surface detail."""
    records = []
    for cell in cells:
        record = evaluate_cell(cell, n_test, methods, repairers, details=False)
        record.pop("per_surface_rmse", None)
        records.append(record)
        if progress:
            progress(cell.label)
    return records


def run_outside(n_test: int = 200, progress=None) -> list:
    """Families and a mask "best" never trained on (core.seeds.OUTSIDE_CELLS): the shipped model
    beside the classical baselines. Unlike the leave-one-family-out test, no family here was ever in
    any prior, and the liquidity mask (wings unquoted, the short end narrow) is none of the post's."""
    return _side_cells(OUTSIDE_CELLS, n_test, LOFO_METHODS, {m: get_repairer(m) for m in LOFO_METHODS}, progress)


def format_outside(outside: list) -> str:
    lines = ["", "Outside the prior: families and a mask 'best' never trained on "
                 "(RMSE after each method's default projection; coverage of best)"]
    lines.append(f"{'cell':34s} " + " ".join(f"{m:>17s}" for m in LOFO_METHODS) + f" {'cov80':>6s} {'cov95':>6s}")
    for c in outside:
        d = c["diagnostics_by_method"]["best"]
        lines.append(f"{c['family'] + '/' + c['mask']:34s} "
                     + " ".join(f"{_fmt(c['rmse'][m], m in c['best']):>17s}" for m in LOFO_METHODS)
                     + f" {d['cov80']:6.3f} {d['cov95']:6.3f}")
    return "\n".join(lines)


def format_lofo(lofo: list) -> str:
    lines = ["", "Leave-one-family-out: 'best' refitted without the family, scored on it "
                 "(RMSE after each method's default projection; coverage of best_lofo)"]
    methods = LOFO_METHODS + ("best_lofo",)
    lines.append(f"{'held out / cell':34s} " + " ".join(f"{m:>17s}" for m in methods) + f" {'cov80':>6s} {'cov95':>6s}")
    for block in lofo:
        if "error" in block:
            lines.append(f"{block['held_out']:34s} {block['error']}")
            continue
        for c in block["cells"]:
            d = c["diagnostics_by_method"]["best_lofo"]
            name = f"{block['held_out']}: {c['family']}/{c['mask']}"
            lines.append(f"{name:34s} " + " ".join(f"{_fmt(c['rmse'][m], m in c['best']):>17s}" for m in methods)
                         + f" {d['cov80']:6.3f} {d['cov95']:6.3f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- printing

def _fmt(score: dict, marked: bool) -> str:
    text = f"{score['mean']:.4f} ± {score['se']:.4f}"
    return ("*" if marked else " ") + text


def format_tables(result: dict) -> str:
    """The post's three tables as text; '*' marks the best in a row and any method tied with it."""
    cells = result["cells"]
    methods = list(cells[0]["rmse"])
    label = {c.family + c.mask: c.label for c in TEST_CELLS}
    lines = ["", "Missing-point RMSE, implied-vol units (mean ± SE over surfaces; * best in row, ties within one SE)"]
    lines.append(f"{'cell':30s} {'obs %':>6s} " + " ".join(f"{m:>17s}" for m in methods))
    for c in cells:
        lines.append(f"{label[c['family'] + c['mask']]:30s} {100 * c['observed_fraction']:5.1f}% "
                     + " ".join(f"{_fmt(c['rmse'][m], m in c['best']):>17s}" for m in methods))
    sd_methods = [m for m in methods if "cov80" in cells[0]["diagnostics_by_method"][m]]
    for m in sd_methods:
        mode = "full" if m in cells[0].get("full_default", []) else "calendar"
        lines += ["", f"Diagnostics of {m} (intervals around its {mode}-projected repair)"]
        lines.append(f"{'cell':30s} {'raw cal%':>9s} {'post cal%':>9s} {'g<0 %':>7s} {'cov80':>6s} {'cov95':>6s} "
                     f"{'corr':>6s} {'AUC':>6s}")
        for c in cells:
            d = c["diagnostics_by_method"][m]
            post_cal, g_neg = (d["calendar_full"], d["g_negative_full"]) if mode == "full" else \
                (d["post_calendar"], d["g_negative"])
            lines.append(f"{label[c['family'] + c['mask']]:30s} {100 * d['raw_calendar']:8.2f}% "
                         f"{100 * post_cal:8.2f}% {100 * g_neg:6.2f}% {d['cov80']:6.3f} "
                         f"{d['cov95']:6.3f} {d['err_sd_corr']:6.3f} {d['stale_auc']:6.3f}")
    lines += ["", "Stale-quote AUC, every method (oracle: the optimal score knowing the true surface, "
                  "the ceiling for any method)"]
    lines.append(f"{'cell':30s} " + " ".join(f"{m:>10s}" for m in methods) + f" {'oracle':>8s}")
    for c in cells:
        d = c["diagnostics_by_method"]
        lines.append(f"{label[c['family'] + c['mask']]:30s} " + " ".join(
            f"{d[m]['stale_auc']:10.3f}" for m in methods) + f" {c.get('stale_auc_oracle', float('nan')):8.3f}")
    lines += ["", "Missing-point RMSE by projection: calendar only -> full (butterfly + calendar); "
                  "g(k) < 0 % raw -> calendar -> full"]
    lines.append(f"{'cell':30s} " + " ".join(f"{m:>34s}" for m in methods))
    for c in cells:
        d = c["diagnostics_by_method"]
        lines.append(f"{label[c['family'] + c['mask']]:30s} " + " ".join(
            f"{c['rmse_calendar'][m]['mean']:.4f}->{c['rmse_full'][m]['mean']:.4f} "
            f"{100 * d[m]['g_negative_raw']:4.1f}/{100 * d[m]['g_negative']:4.1f}/{100 * d[m]['g_negative_full']:3.1f}%".rjust(34)
            for m in methods))
    lines += ["", "Downstream per-slice SVI projection of the repaired surface: missing-point RMSE"]
    lines.append(f"{'cell':30s} " + " ".join(f"{'SVI after ' + m:>17s}" for m in methods))
    for c in cells:
        best = best_in_row(c["downstream_svi"])
        lines.append(f"{label[c['family'] + c['mask']]:30s} "
                     + " ".join(f"{_fmt(c['downstream_svi'][m], m in best):>17s}" for m in methods))
    lines.append("")
    lines.append(f"{result['config']['n_test']} surfaces per cell; {result['seconds']['total']:.1f} s "
                 f"on {result['config']['cpu_count']} cores ({result['config']['threads']} torch threads)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- speed

def speed(methods=METHODS, batch: int = 1000, repeats: int = 20) -> dict:
    """Per-surface latency (median over ``repeats`` single-surface ``core.repair`` calls) and batched
    throughput (surfaces/s over one call on ``batch`` surfaces), adversarial SABR-event inputs."""
    from core.pipeline import repair

    cell = TEST_CELLS[3]
    _, _, iv_obs = test_data(cell, batch)
    out = {"cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "batch": batch, "methods": {}}
    for m in methods:
        repair(iv_obs[0], m)  # warm-up: weights load, caches
        times = []
        for i in range(repeats):
            t0 = time.perf_counter()
            repair(iv_obs[i % batch], m)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        repair(iv_obs, m)
        elapsed = time.perf_counter() - t0
        out["methods"][m] = {"latency_ms": 1e3 * float(np.median(times)), "throughput_per_s": batch / elapsed}
    return out


def format_speed(result: dict) -> str:
    lines = [f"Speed on {result['cpu_count']} cores ({result['threads']} torch threads), core.repair end to end",
             f"{'method':12s} {'1 surface (ms)':>15s} {'batch ' + str(result['batch']) + ' (surfaces/s)':>26s}"]
    for m, s in result["methods"].items():
        lines.append(f"{m:12s} {s['latency_ms']:15.2f} {s['throughput_per_s']:26.0f}")
    return "\n".join(lines)


# the issue 11 speed target: a chain of about this many quotes, read to outputs written
CHAIN_SPEED_ROWS = 6500
CHAIN_SPEED_BASE_ROWS = 1453       # quotes of core.synth.chains' default spec (strike_step_factor 1)


def speed_chain_file(directory, rows: int = CHAIN_SPEED_ROWS) -> Path:
    """A synthetic SSVI chain of about ``rows`` quotes (a finer strike ladder than the default
    spec, bid-ask in vol) written as a quote CSV in ``directory``; returns its path."""
    from core.synth.chains import ChainSpec, make_chain, surface_function

    spec = ChainSpec(noise_bp=5.0, half_spread_noise=3.0, strike_step_factor=CHAIN_SPEED_BASE_ROWS / rows)
    df = make_chain(surface_function("ssvi", 1), spec, seed=1)
    path = Path(directory) / f"speed_chain_{rows}.csv"
    df.drop(columns=["iv_true", "is_stale"]).to_csv(path, index=False)
    return path


def speed_chain(methods=("svi_gp", "svi_fit"), rows: int = CHAIN_SPEED_ROWS, repeats: int = 3) -> dict:
    """Seconds per chain repair end to end (core.chain.workflow: read the file, fit, quote table with
    stale scores, dense export, dense check, outputs written), median over ``repeats`` after one
    warm-up run (imports, caches), on a synthetic chain of about ``rows`` quotes; with the load
    average (1 min) before and after, since shared cores make absolute seconds noisy."""
    import tempfile

    from core.chain.workflow import repair_chain, write_chain_outputs

    out = {"cpu_count": os.cpu_count(), "rows": rows, "repeats": repeats, "methods": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = speed_chain_file(tmp, rows)
        out["load_before"] = os.getloadavg()[0]
        for m in methods:
            times = []
            for i in range(repeats + 1):
                t0 = time.perf_counter()
                result = repair_chain(path, method=m)
                write_chain_outputs(result, Path(tmp) / f"out_{m}")
                if i:                                      # run 0 is the warm-up
                    times.append(time.perf_counter() - t0)
            out["n_quotes"] = len(result.quote_table)
            out["methods"][m] = {"seconds": float(np.median(times)), "dense_ok": bool(result.dense.ok),
                                 "n_expiries": int(result.surface.expiries.size)}
        out["load_after"] = os.getloadavg()[0]
    return out


def format_speed_chain(result: dict) -> str:
    lines = [f"Chain speed: a synthetic chain of {result['n_quotes']} quotes, read to outputs written "
             f"(median of {result['repeats']}), {result['cpu_count']} cores, load average "
             f"{result['load_before']:.2f} before / {result['load_after']:.2f} after",
             f"{'method':12s} {'seconds':>8s} {'expiries':>9s} {'dense ok':>9s}"]
    for m, s in result["methods"].items():
        lines.append(f"{m:12s} {s['seconds']:8.2f} {s['n_expiries']:9d} {s['dense_ok']!s:>9s}")
    return "\n".join(lines)


def main(argv=None, train_cnn=None) -> int:
    """The benchmark command; ``train_cnn`` (core.training.cnn.main, given by core.benchmark) runs
    ``--train``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--real" or a.startswith("--real=") for a in argv):
        from core.evaluation.real import (
            main as real_main,  # the real-chain benchmark has its own options
        )

        return real_main(argv)
    parser = argparse.ArgumentParser(description="Run the 2x2 surface-repair benchmark. With --real DIR: the "
                                                 "real-chain benchmark (python -m core.benchmark --real DIR --help).")
    parser.add_argument("--n-test", type=int, default=200, help="test surfaces per cell (default 200)")
    parser.add_argument("--json", default=None, help=f"where to write results (default {RUN_JSON}, untracked)")
    parser.add_argument("--ship", action="store_true",
                        help=f"write the shipped results the app shows, {DEFAULT_JSON} (tracked in git)")
    parser.add_argument("--weights", default=None, help="CNN weights file (default weights/cnn.pt)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument("--train", action="store_true", help="retrain the CNN first (writes weights/cnn.pt)")
    parser.add_argument("--speed", action="store_true", help="time each method instead of scoring")
    parser.add_argument("--speed-chain", action="store_true",
                        help="time the chain path end to end on a synthetic chain of --chain-rows quotes instead")
    parser.add_argument("--chain-rows", type=int, default=CHAIN_SPEED_ROWS,
                        help=f"quotes of the --speed-chain chain (default {CHAIN_SPEED_ROWS})")
    parser.add_argument("--chain-methods", default="svi_gp,svi_fit", help="chain methods --speed-chain times")
    parser.add_argument("--repeats", type=int, default=3, help="--speed-chain runs per method (median)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a busy 2-core machine two threads oversubscribe "
                             "and ran several times slower, measured)")
    parser.add_argument("--no-lofo", action="store_true", help="skip the leave-one-family-out section")
    parser.add_argument("--no-outside", action="store_true",
                        help="skip the section on families and a mask best never trained on")
    args = parser.parse_args(argv)
    apply_thread_policy(args.threads)
    methods = tuple(m for m in args.methods.split(",") if m)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if args.n_test < 2:
        parser.error("--n-test must be at least 2 (a standard error needs two surfaces)")
    if args.speed:
        print(format_speed(speed(methods)))
        return 0
    if args.speed_chain:
        print(format_speed_chain(speed_chain(tuple(m for m in args.chain_methods.split(",") if m),
                                             args.chain_rows, args.repeats)))
        return 0
    if args.train:
        if train_cnn is None:
            parser.error("--train runs through python -m core.benchmark (which wires in the trainer)")
        train_cnn(["--threads", str(args.threads)] + (["--out-dir", str(Path(args.weights).parent),
                                                              "--name", Path(args.weights).stem] if args.weights else []))

    def report(done, total, label):
        sys.stderr.write(f"\r[{done}/{total}] {label} done     ")
        sys.stderr.flush()
        if done == total:
            sys.stderr.write("\n")

    result = run(args.n_test, methods, Path(args.weights) if args.weights else None, progress=report)
    print(format_tables(result))
    sections = (("lofo", "leave-one-family-out", run_lofo, format_lofo, args.no_lofo),
                ("outside", "outside", run_outside, format_outside, args.no_outside))
    for key, title, run_section, fmt, skip in sections:
        if skip:
            continue
        t0 = time.time()
        result[key] = run_section(args.n_test)
        result["seconds"][key] = round(time.time() - t0, 2)
        print(fmt(result[key]))
        print(f"{title} section: {result['seconds'][key]:.1f} s")
    path = Path(args.json) if args.json else DEFAULT_JSON if args.ship else RUN_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
